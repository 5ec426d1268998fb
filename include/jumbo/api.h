/* jumbo api: the daemon's REST API (docs/api.md). */
#pragma once
#include "jumbo/config.h"
#include "jumbo/sched.h"
#include "jumbo/xfer.h"

struct jb_api;
/* jobs may be NULL: the jobs endpoints answer 503. */
JB_EXPORT int jb_api_start(const struct jb_config *c, struct jb_server *srv, struct jb_jobs *jobs,
			   struct jb_catalog *cat, struct jb_api **ret, struct jb_error *err);
JB_EXPORT int jb_api_port(const struct jb_api *a);
JB_EXPORT void jb_api_stop(struct jb_api *a);

/* The client side, for the CLI: hostport is the daemon's [site] api. */
struct jb_api_client;
JB_EXPORT int jb_api_client_open(const char *hostport, struct jb_api_client **ret, struct jb_error *err);
JB_EXPORT void jb_api_client_close(struct jb_api_client *c);
/* A JSON request (body may be NULL) and its JSON answer; an HTTP error
 * becomes err with the daemon's message. */
JB_EXPORT int jb_api_call(struct jb_api_client *c, const char *method, const char *path, json_t *body, long *status,
			  json_t **ret, struct jb_error *err);
/* Bytes of a job's stdout or stderr from offset: *buf (caller frees), the
 * offset after them, and the job's state when they were read. */
JB_EXPORT int jb_api_logs(struct jb_api_client *c, const char *id, const char *stream, uint64_t offset, char **buf,
			  size_t *len, uint64_t *next, char state[32], struct jb_error *err);
