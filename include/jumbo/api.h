/* jumbo api: the daemon's REST API (docs/api.md). */
#pragma once
#include <jansson.h>

#include "jumbo/config.h"
#include "jumbo/sched.h"
#include "jumbo/xfer.h"

/* Bearer tokens of the API (in the site database, hashed): "jbt_" + 64 hex. */
#define JB_TOKEN_LEN 68

/* What a token may do (docs/api.md, "Scopes"): every token reads (GET),
 * and sees only the jobs and transfers it made unless it is admin. */
enum jb_scope {
	JB_SCOPE_READ = 1 << 0,     /* GET only */
	JB_SCOPE_TRANSFER = 1 << 1, /* durable transfers */
	JB_SCOPE_RUN = 1 << 2,      /* jobs, without the host's network */
	JB_SCOPE_NOTEBOOK = 1 << 3, /* notebook jobs for hub users (a user named: that one only), nothing else */
	JB_SCOPE_ADMIN = 1 << 4,    /* everything: every record, the host's network */
};
/* Who is calling: a token's name and scopes. */
struct jb_token_info {
	char name[65];
	unsigned scopes;
	char user[65]; /* notebook:USER: the one hub user it may start notebooks for ("" any) */
};
/* "read,transfer", "notebook:alice": into scopes (and user); -EINVAL with
 * err naming the word that is not a scope.  jb_scopes_format is the
 * inverse (canonical order). */
JB_EXPORT int jb_scopes_parse(const char *text, unsigned *scopes, char user[65], struct jb_error *err);
JB_EXPORT void jb_scopes_format(unsigned scopes, const char *user, char *out, size_t n);
/* The name of one scope bit ("run"...). */
JB_EXPORT const char *jb_scope_name(unsigned scope);

struct jb_tokens;
JB_EXPORT int jb_tokens_open(const char *state, struct jb_tokens **ret, struct jb_error *err);
JB_EXPORT void jb_tokens_close(struct jb_tokens *t);
/* A new token named name with scopes (jb_scopes_parse's text), into token
 * (shown once: only its hash is kept). */
JB_EXPORT int jb_tokens_create(struct jb_tokens *t, const char *name, const char *scopes,
			       char token[JB_TOKEN_LEN + 1], struct jb_error *err);
/* 0 and who it is when token is valid, -EACCES when not (another negative
 * errno with err set when the database fails). */
JB_EXPORT int jb_tokens_check(struct jb_tokens *t, const char *token, struct jb_token_info *who, struct jb_error *err);
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
