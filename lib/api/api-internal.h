/* Internal to lib/api. */
#pragma once
#include "jumbo/api.h"
#include "jumbo/sched.h"
#include "jumbo/xfer.h"

/* The text of GET /metrics (malloc'd), or NULL when out of memory;
 * t and j may be NULL (that service is off). */
char *api_metrics(struct jb_server *srv, struct jb_transfers *t, struct jb_jobs *j);

/* records.c: the site's records as the API shows them (docs/api.md). */
json_t *api_job_json(const struct jb_job *job);
json_t *api_dataset_json(const struct jb_dataset *d);
json_t *api_datasets_json(const struct jb_datasets *l);
json_t *api_inputs_json(const struct jb_job_inputs *l);
json_t *api_transfer_json(const struct jb_transfer *x);
json_t *api_provenance_json(const struct jb_provenance *p);
json_t *api_rules_json(const struct jb_config *c);
