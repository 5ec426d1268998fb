/* Internal to lib/api. */
#pragma once
#include <stdarg.h>
#include <sys/socket.h>
#include <microhttpd.h>

#include "jumbo/api.h"
#include "jumbo/sched.h"
#include "jumbo/xfer.h"

/* guard.c: each connection's request timed, from its opening or its last
 * answer to the request whole; the one waiting longest makes room. */
struct api_guard;
int api_guard_new(double request_timeout, int per_addr, struct api_guard **ret, struct jb_error *err);
void api_guard_free(struct api_guard *g); /* after MHD_stop_daemon */
/* MHD_OPTION_NOTIFY_CONNECTION and MHD_OPTION_EXTERNAL_LOGGER, with g */
void api_guard_notify(void *g, struct MHD_Connection *conn, void **ctx, enum MHD_ConnectionNotificationCode code);
void api_guard_log(void *g, const char *fmt, va_list ap);
/* The request is whole (its handler runs), or its answer is out. */
void api_guard_received(struct api_guard *g, struct MHD_Connection *conn);
void api_guard_answered(struct api_guard *g, struct MHD_Connection *conn);
/* Connections closed: no request in time, or pushed out by a newer one. */
void api_guard_stats(const struct api_guard *g, uint64_t *ret_late, uint64_t *ret_pushed);

/* web.c: true when url is one of the dashboard's files, its answer queued in *ret */
bool api_serve_asset(struct MHD_Connection *conn, const char *url, enum MHD_Result *ret);

/* The text of GET /metrics (malloc'd), or NULL when out of memory;
 * t and j may be NULL (that service is off). */
char *api_metrics(struct jb_server *srv, const struct api_guard *g, struct jb_transfers *t, struct jb_jobs *j);

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
