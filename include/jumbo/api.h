/* jumbo api: the daemon's REST API (docs/api.md). */
#pragma once
#include <jansson.h>

#include "jumbo/config.h"
#include "jumbo/sched.h"
#include "jumbo/xfer.h"

/* Bearer tokens of the API (in the site database, hashed): "jbt_" + 64 hex. */
#define JB_TOKEN_LEN 68
struct jb_tokens;
JB_EXPORT int jb_tokens_open(const char *state, struct jb_tokens **ret, struct jb_error *err);
JB_EXPORT void jb_tokens_close(struct jb_tokens *t);
/* A new token named name, into token (shown once: only its hash is kept). */
JB_EXPORT int jb_tokens_create(struct jb_tokens *t, const char *name, char token[JB_TOKEN_LEN + 1],
			       struct jb_error *err);
/* 0 and its name when token is valid, -EACCES when not. */
JB_EXPORT int jb_tokens_check(struct jb_tokens *t, const char *token, char name[65]);
JB_EXPORT json_t *jb_tokens_list(struct jb_tokens *t);
JB_EXPORT int jb_tokens_revoke(struct jb_tokens *t, const char *name, struct jb_error *err);
/* Make sure STATE/api.token (mode 0600) holds a valid token, "site-admin":
 * the one the command line uses on this host when it is given none. */
JB_EXPORT int jb_tokens_site_token(struct jb_tokens *t, const char *state, struct jb_error *err);

struct jb_api;
/* The services the API answers for; jobs and transfers may be NULL (their
 * endpoints answer 503).  Every /api/v1 path but /api/v1/health wants
 * "Authorization: Bearer TOKEN" of tokens. */
struct jb_api_services {
	struct jb_server *srv;
	struct jb_jobs *jobs;
	struct jb_catalog *cat;
	struct jb_tokens *tokens;
	struct jb_transfers *transfers;
};
JB_EXPORT int jb_api_start(const struct jb_config *c, const struct jb_api_services *sv, struct jb_api **ret,
			   struct jb_error *err);
JB_EXPORT int jb_api_port(const struct jb_api *a);
JB_EXPORT void jb_api_stop(struct jb_api *a);

/* The client side, for the CLI: hostport is the daemon's [site] api, token
 * its bearer token (may be NULL). */
struct jb_api_client;
JB_EXPORT int jb_api_client_open(const char *hostport, const char *token, struct jb_api_client **ret,
				 struct jb_error *err);
JB_EXPORT void jb_api_client_close(struct jb_api_client *c);
/* A JSON request (body may be NULL) and its JSON answer; an HTTP error
 * becomes err with the daemon's message. */
JB_EXPORT int jb_api_call(struct jb_api_client *c, const char *method, const char *path, json_t *body, long *status,
			  json_t **ret, struct jb_error *err);
/* Bytes of a job's stdout or stderr from offset: *buf (caller frees), the
 * offset after them, and the job's state when they were read. */
JB_EXPORT int jb_api_logs(struct jb_api_client *c, const char *id, const char *stream, uint64_t offset, char **buf,
			  size_t *len, uint64_t *next, char state[32], struct jb_error *err);
