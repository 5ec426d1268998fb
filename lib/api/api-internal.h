/* Internal to lib/api. */
#pragma once
#include "jumbo/api.h"
#include "jumbo/sched.h"
#include "jumbo/xfer.h"

/* The text of GET /metrics (malloc'd), or NULL when out of memory;
 * t and j may be NULL (that service is off). */
char *api_metrics(struct jb_server *srv, struct jb_transfers *t, struct jb_jobs *j);

/* records.c: the site's records as the API shows them (docs/api.md). */
/* env: the request's environment values shown (to its owner and admin;
 * to others only the names) */
json_t *api_job_json(const struct jb_job *job, bool env);
json_t *api_dataset_json(const struct jb_dataset *d);
json_t *api_datasets_json(const struct jb_datasets *l);
json_t *api_inputs_json(const struct jb_job_inputs *l);
json_t *api_transfer_json(const struct jb_transfer *x);
/* viewer: the token asking (NULL: admin, who sees every job's environment) */
json_t *api_provenance_json(const struct jb_provenance *p, const char *viewer);
json_t *api_rules_json(const struct jb_config *c);
