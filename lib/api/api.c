/* The REST API: the site's health, identity and peers, jobs (submit, list,
 * inspect, cancel, logs), durable transfers, datasets and provenance, the
 * dashboard's files, and Prometheus metrics (metrics.c), routed by one
 * table.  Listens on loopback unless configured otherwise (docs/api.md). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "jb_version.h"
#include "api-internal.h"

#define MAX_BODY (1u << 20)
#define API_THREADS 4
#define UNAUTHORIZED                                                                                            \
	"{\"error\": \"a missing or wrong token: send Authorization: Bearer TOKEN (jumbo token create NAME)\"}"
#define MAX_LOG_CHUNK (1u << 20)

struct jb_api {
	const struct jb_config *c;
	struct jb_server *srv;
	struct jb_jobs *jobs;
	struct jb_catalog *cat;
	struct jb_tokens *tokens;
	struct jb_transfers *transfers;
	struct MHD_Daemon *d;
	struct api_guard *guard;
	int port;
	char fp[72];
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type, char *body)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", type);
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned status, json_t *j)
{
	char *body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return reply(conn, status, "application/json", body ? body : strdup("{}"));
}

static enum MHD_Result error_json(struct MHD_Connection *conn, unsigned status, const char *msg)
{
	return reply_json(conn, status, json_pack("{s:s}", "error", msg));
}

/* A request's body, gathered across calls into a jb_buf of MAX_BODY. */

static void request_done(void *cls, struct MHD_Connection *conn, void **state, enum MHD_RequestTerminationCode t)
{
	struct jb_api *a = cls;
	api_guard_answered(a->guard, conn); /* the next request's time starts */
	struct jb_buf *b = *state;
	if (b) {
		jb_buf_free(b);
		free(b);
		*state = NULL;
	}
}

/* What a refusal's errno is in HTTP; anything else is the request's fault
 * (400).  A site that cannot write its records says so with 507 (the disk
 * is full) or 503, never with a 2xx. */
static const struct {
	int code, status;
} statuses[] = {
	{ENOENT, 404},    {EPERM, 403},     {EACCES, 403}, {EALREADY, 409}, {ESTALE, 409}, {EEXIST, 409},
	{ENODEV, 422},    {EHOSTDOWN, 503}, {EIO, 503},    {EBUSY, 503},    {EROFS, 503},  {ENOMEM, 503},
	{EAGAIN, 503},    {ENOSPC, 507},    {EDQUOT, 507}, {EPROTO, 500},
};

static int errno_status(int code)
{
	for (size_t i = 0; i < JB_ARRAY_SIZE(statuses); i++)
		if (statuses[i].code == code)
			return statuses[i].status;
	return 400;
}

/* A failure's answer: the status of its errno, and its message (strerror
 * where a callee left none: the one place it is added). */
static enum MHD_Result failed(struct MHD_Connection *conn, int r, const struct jb_error *err)
{
	return error_json(conn, errno_status(-r), err->msg[0] ? err->msg : strerror(-r));
}

/* ---- the routes ---- */

/* A request, as a handler sees it. */
struct req {
	struct jb_api *a;
	struct MHD_Connection *conn;
	const char *url, *method;
	struct jb_buf *b;
	char id[64];              /* the pattern's :id segment */
	struct jb_token_info who; /* the caller (routes that want a token) */
};
typedef enum MHD_Result (*handler_fn)(struct req *q);

/* The service a route needs: without it (jobs off for want of crun, say)
 * the route answers 503, checked once in route() */
enum need { NEED_NONE, NEED_JOBS, NEED_TRANSFERS };

static bool is_admin(const struct req *q) { return q->who.scopes & JB_SCOPE_ADMIN; }

/* A record is the caller's to see when it made it, or it is admin. */
static bool sees(const struct req *q, const char *owner) { return is_admin(q) || (owner && !strcmp(owner, q->who.name)); }

/* The caller's view of a record: another's is as if there were none
 * (-ENOENT, the record released). */
static int job_for(struct req *q, const char *id, struct jb_job *job, struct jb_error *err)
{
	int r = jb_jobs_get(q->a->jobs, id, job, err);
	if (r == 0 && !sees(q, job->owner)) {
		jb_job_free(job);
		r = -ENOENT;
	}
	return r;
}

static int transfer_for(struct req *q, const char *id, struct jb_transfer *x, struct jb_error *err)
{
	int r = jb_transfers_get(q->a->transfers, id, x, err);
	if (r == 0 && !sees(q, x->owner)) {
		jb_transfer_free(x);
		r = -ENOENT;
	}
	return r;
}

/* 403: what the token lacks, by name ("scope" in the answer too). */
static enum MHD_Result forbidden(struct req *q, unsigned need, const char *why)
{
	char have[160], msg[600];
	jb_scopes_format(q->who.scopes, q->who.user, have, sizeof have);
	snprintf(msg, sizeof msg, "token '%s' lacks the scope '%s'%s%s (it has %s)", q->who.name, jb_scope_name(need),
		 why ? ": " : "", why ? why : "", have);
	return reply_json(q->conn, 403, json_pack("{s:s, s:s}", "error", msg, "scope", jb_scope_name(need)));
}

/* POST to a collection: the body's JSON, 201 and the new object, or the
 * refusal.  check may refuse it first (a queued answer in *ret). */
typedef bool (*check_fn)(struct req *q, json_t *body, enum MHD_Result *ret);
typedef int (*submit_fn)(struct req *q, json_t *body, char id[JB_JOB_ID_LEN + 1], struct jb_error *err);
typedef json_t *(*get_fn)(struct req *q, const char *id);

static enum MHD_Result post_new(struct req *q, check_fn check, submit_fn submit, get_fn get)
{
	struct jb_buf *b = q->b;
	if (b->oom)
		return error_json(q->conn, 413, "the request body is larger than 1 MiB");
	json_error_t je;
	json_t *body = json_loadb(b->p ? (const char *)b->p : "", b->len, JSON_REJECT_DUPLICATES, &je);
	if (!body) {
		char msg[300];
		snprintf(msg, sizeof msg, "the body is not JSON: %s", je.text);
		return error_json(q->conn, 400, msg);
	}
	enum MHD_Result ret;
	if (check && !check(q, body, &ret)) {
		json_decref(body);
		return ret;
	}
	char id[JB_JOB_ID_LEN + 1];
	struct jb_error err = {0};
	int r = submit(q, body, id, &err);
	json_decref(body);
	if (r < 0)
		return failed(q->conn, r, &err);
	json_t *o = get(q, id);
	return reply_json(q->conn, 201, o ? o : json_pack("{s:s}", "id", id));
}

/* What a job request may ask for with this token: a notebook needs the
 * notebook scope (for the token's hub user, when it names one), any other
 * job run, the host's network admin. */
static bool check_job(struct req *q, json_t *body, enum MHD_Result *ret)
{
	if (is_admin(q))
		return true;
	json_t *net = json_object_get(body, "network"), *nb = json_object_get(body, "notebook");
	if (json_is_true(net) || (json_is_string(net) && !strcmp(json_string_value(net), "host"))) {
		*ret = forbidden(q, JB_SCOPE_ADMIN, "the host's network is for admin tokens");
		return false;
	}
	if (!nb && !(q->who.scopes & JB_SCOPE_RUN)) {
		*ret = forbidden(q, JB_SCOPE_RUN, "this token starts notebooks only");
		return false;
	}
	if (nb && !(q->who.scopes & JB_SCOPE_NOTEBOOK)) {
		*ret = forbidden(q, JB_SCOPE_NOTEBOOK, "a notebook is started by the hub's token");
		return false;
	}
	/* a peer's dataset (PEER:PATH) makes the site fetch it: a transfer */
	json_t *data = json_object_get(body, "data"), *d;
	size_t i;
	json_array_foreach(data, i, d)
	{
		const char *path = json_is_string(d) ? json_string_value(d) : json_string_value(json_object_get(d, "path"));
		struct jb_remote rm;
		if (!path || (q->who.scopes & JB_SCOPE_TRANSFER))
			continue;
		int r = jb_remote_parse(q->a->c, path, &rm, NULL);
		if (r == 0)
			continue; /* a path of the data root */
		if (r > 0)
			jb_remote_free(&rm);
		char why[400];
		snprintf(why, sizeof why, "data '%.300s' would be fetched from a peer", path);
		*ret = forbidden(q, JB_SCOPE_TRANSFER, why);
		return false;
	}
	const char *user = json_string_value(json_object_get(nb, "user"));
	if (nb && q->who.user[0] && (!user || strcmp(user, q->who.user))) {
		char why[200];
		snprintf(why, sizeof why, "it starts notebooks for '%s' only", q->who.user);
		*ret = forbidden(q, JB_SCOPE_NOTEBOOK, why);
		return false;
	}
	return true;
}

static int submit_job(struct req *q, json_t *body, char id[JB_JOB_ID_LEN + 1], struct jb_error *err)
{
	return jb_jobs_submit(q->a->jobs, body, q->who.name, id, err);
}

static json_t *job_json(struct req *q, const struct jb_job *job) { return api_job_json(job, sees(q, job->owner)); }

static json_t *get_job(struct req *q, const char *id)
{
	struct jb_job job;
	if (jb_jobs_get(q->a->jobs, id, &job, NULL) < 0)
		return NULL;
	json_t *o = job_json(q, &job);
	jb_job_free(&job);
	return o;
}

static int submit_transfer(struct req *q, json_t *body, char id[JB_JOB_ID_LEN + 1], struct jb_error *err)
{
	return jb_transfers_submit(q->a->transfers, body, q->who.name, id, err);
}

static json_t *get_transfer(struct req *q, const char *id)
{
	struct jb_transfer x;
	if (jb_transfers_get(q->a->transfers, id, &x, NULL) < 0)
		return NULL;
	json_t *o = api_transfer_json(&x);
	jb_transfer_free(&x);
	return o;
}

static const char *query(struct req *q, const char *key)
{
	return MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, key);
}

static enum MHD_Result h_health(struct req *q)
{
	struct jb_server_stats st;
	jb_server_stats(q->a->srv, &st);
	return reply_json(q->conn, 200,
			  json_pack("{s:s, s:s, s:s, s:s, s:I}", "status", "ok", "site", q->a->c->name, "version", JB_VERSION,
				    "fingerprint", q->a->fp, "sessions", (json_int_t)st.sessions));
}

static enum MHD_Result h_peers(struct req *q)
{
	const struct jb_config *c = q->a->c;
	json_t *arr = json_array();
	for (size_t i = 0; i < c->npeers; i++) {
		char f[72];
		jb_fp_format(c->peers[i].fp, f);
		json_array_append_new(arr, json_pack("{s:s, s:s?, s:s}", "name", c->peers[i].name, "address",
						     c->peers[i].address, "fingerprint", f));
	}
	return reply_json(q->conn, 200, json_pack("{s:o}", "peers", arr));
}

static enum MHD_Result h_metrics(struct req *q)
{
	char *body = api_metrics(q->a->srv, q->a->guard, q->a->transfers, q->a->jobs);
	if (!body)
		return MHD_NO;
	return reply(q->conn, 200, "text/plain; version=0.0.4", body);
}

static enum MHD_Result h_asset(struct req *q)
{
	enum MHD_Result r;
	if (api_serve_asset(q->conn, q->url, &r))
		return r;
	return error_json(q->conn, 404, "not found");
}

/* A lookup's failure as an answer: 404 for none, the errno's status with
 * the database's reason for the rest. */
static enum MHD_Result lookup_failed(struct req *q, int r, const struct jb_error *err, const char *none)
{
	if (r == -ENOENT)
		return error_json(q->conn, 404, none);
	return failed(q->conn, r, err);
}

static enum MHD_Result h_jobs_list(struct req *q)
{
	struct jb_job *v;
	size_t n;
	struct jb_error err = {0};
	int r = jb_jobs_list(q->a->jobs, &v, &n, &err);
	if (r < 0)
		return lookup_failed(q, r, &err, "");
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		if (sees(q, v[i].owner))
			json_array_append_new(a, job_json(q, &v[i]));
	jb_job_list_free(v, n);
	return reply_json(q->conn, 200, json_pack("{s:o}", "jobs", a));
}

static enum MHD_Result h_jobs_new(struct req *q)
{
	return post_new(q, check_job, submit_job, get_job);
}

static enum MHD_Result h_job_get(struct req *q)
{
	struct jb_job job;
	struct jb_error err = {0};
	int r = job_for(q, q->id, &job, &err);
	if (r < 0)
		return lookup_failed(q, r, &err, "no such job");
	json_t *o = job_json(q, &job);
	jb_job_free(&job);
	struct jb_job_inputs in;
	struct jb_datasets out;
	if (o && q->a->cat) {
		if ((r = jb_catalog_inputs(q->a->cat, q->id, &in, &err)) == 0) {
			json_object_set_new(o, "inputs", api_inputs_json(&in));
			jb_job_inputs_free(&in);
		}
		if (r == 0 && (r = jb_catalog_outputs(q->a->cat, q->id, &out, &err)) == 0) {
			json_object_set_new(o, "outputs", api_datasets_json(&out));
			jb_datasets_free(&out);
		}
		if (r < 0) {
			json_decref(o);
			return lookup_failed(q, r, &err, "");
		}
	}
	return reply_json(q->conn, 200, o);
}

/* The job (or transfer) of the path is the caller's to act on: true, or
 * false with the answer queued (404 for another's, as for none). */
static bool owns(struct req *q, bool job, enum MHD_Result *ret)
{
	struct jb_error err = {0};
	struct jb_job j;
	struct jb_transfer x;
	int r = job ? job_for(q, q->id, &j, &err) : transfer_for(q, q->id, &x, &err);
	if (r == 0 && job)
		jb_job_free(&j);
	else if (r == 0)
		jb_transfer_free(&x);
	else
		*ret = lookup_failed(q, r, &err, job ? "no such job" : "no such transfer");
	return r == 0;
}

static enum MHD_Result h_job_kill(struct req *q)
{
	struct jb_error err = {0};
	enum MHD_Result ret;
	if (!owns(q, true, &ret))
		return ret;
	int r = jb_jobs_kill(q->a->jobs, q->id, &err);
	if (r < 0)
		return failed(q->conn, r, &err);
	return reply_json(q->conn, 202, json_pack("{s:s, s:s}", "id", q->id, "status", "cancelling"));
}

static enum MHD_Result h_job_rerun(struct req *q)
{
	struct jb_error err = {0};
	char nid[JB_JOB_ID_LEN + 1];
	enum MHD_Result ret;
	if (!owns(q, true, &ret))
		return ret;
	int r = jb_jobs_rerun(q->a->jobs, q->id, q->who.name, nid, &err);
	if (r < 0)
		return failed(q->conn, r, &err);
	json_t *nj = get_job(q, nid);
	return reply_json(q->conn, 201, nj ? nj : json_pack("{s:s}", "id", nid));
}

/* A chunk of a job's stdout or stderr from ?offset=, with the job's state
 * (read first: bytes read after it are all there are when it is final) and
 * the next offset in headers. */
static enum MHD_Result h_job_logs(struct req *q)
{
	struct jb_job job;
	struct jb_error err = {0};
	int r = job_for(q, q->id, &job, &err);
	if (r < 0)
		return lookup_failed(q, r, &err, "no such job");
	const char *state = jb_job_state_name(job.state);
	jb_job_free(&job);
	const char *stream = query(q, "stream"), *off = query(q, "offset");
	char path[4300];
	if ((r = jb_jobs_log_path(q->a->jobs, q->id, stream ? stream : "stdout", path, sizeof path, &err)) < 0)
		return r == -EINVAL ? error_json(q->conn, 400, err.msg) : lookup_failed(q, r, &err, "no such job");
	char *end = NULL;
	long long o = off ? strtoll(off, &end, 10) : 0;
	if ((off && (!*off || *end)) || o < 0)
		return error_json(q->conn, 400, "offset is a byte count");
	char *buf = malloc(MAX_LOG_CHUNK);
	if (!buf)
		return MHD_NO;
	ssize_t n = 0;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		n = pread(fd, buf, MAX_LOG_CHUNK, (off_t)o);
	if (n < 0)
		n = 0;
	struct MHD_Response *resp = MHD_create_response_from_buffer((size_t)n, buf, MHD_RESPMEM_MUST_FREE);
	char next[32];
	snprintf(next, sizeof next, "%lld", o + (long long)n);
	MHD_add_response_header(resp, "Content-Type", "application/octet-stream");
	MHD_add_response_header(resp, "X-Jumbo-Job-State", state);
	MHD_add_response_header(resp, "X-Jumbo-Log-Offset", next);
	enum MHD_Result ret = MHD_queue_response(q->conn, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result h_transfers_list(struct req *q)
{
	struct jb_transfer *v;
	size_t n;
	struct jb_error err = {0};
	int r = jb_transfers_list(q->a->transfers, &v, &n, &err);
	if (r < 0)
		return lookup_failed(q, r, &err, "");
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		if (sees(q, v[i].owner))
			json_array_append_new(a, api_transfer_json(&v[i]));
	jb_transfer_list_free(v, n);
	return reply_json(q->conn, 200, json_pack("{s:o}", "transfers", a));
}

static enum MHD_Result h_transfers_new(struct req *q)
{
	return post_new(q, NULL, submit_transfer, get_transfer);
}

static enum MHD_Result h_transfer_get(struct req *q)
{
	struct jb_transfer x;
	struct jb_error err = {0};
	int r = transfer_for(q, q->id, &x, &err);
	if (r < 0)
		return lookup_failed(q, r, &err, "no such transfer");
	json_t *o = api_transfer_json(&x);
	jb_transfer_free(&x);
	return reply_json(q->conn, 200, o);
}

static enum MHD_Result h_transfer_cancel(struct req *q)
{
	struct jb_error err = {0};
	enum MHD_Result ret;
	if (!owns(q, false, &ret))
		return ret;
	int r = jb_transfers_cancel(q->a->transfers, q->id, &err);
	if (r < 0)
		return failed(q->conn, r, &err);
	return reply_json(q->conn, 202, json_pack("{s:s, s:s}", "id", q->id, "status", "cancelling"));
}

/* ?path=, cleaned (NULL when not given); false with the answer queued in
 * *ret when it is not a path */
static bool path_arg(struct req *q, char **clean, enum MHD_Result *ret)
{
	const char *path = query(q, "path");
	struct jb_error err = {0};
	*clean = NULL;
	if (path && jb_path_clean(path, clean, &err) < 0) {
		*ret = error_json(q->conn, 400, err.msg);
		return false;
	}
	return true;
}

static enum MHD_Result h_datasets(struct req *q)
{
	_cleanup_free_ char *clean = NULL;
	enum MHD_Result ret;
	if (!path_arg(q, &clean, &ret))
		return ret;
	struct jb_datasets l;
	struct jb_error err = {0};
	int r = jb_catalog_list(q->a->cat, clean ? clean : "", &l, &err);
	if (r < 0)
		return lookup_failed(q, r, &err, "");
	json_t *a = api_datasets_json(&l);
	jb_datasets_free(&l);
	return reply_json(q->conn, 200, json_pack("{s:o}", "datasets", a));
}

/* SHA-256 on demand: computed from the files, recorded */
static enum MHD_Result h_sha256(struct req *q)
{
	_cleanup_free_ char *clean = NULL;
	enum MHD_Result ret;
	if (!path_arg(q, &clean, &ret))
		return ret;
	char rootreal[4096];
	if (!realpath(q->a->c->root, rootreal))
		snprintf(rootreal, sizeof rootreal, "%s", q->a->c->root);
	struct jb_error err = {0};
	struct jb_datasets l;
	int r = jb_catalog_sha256(q->a->cat, rootreal, clean ? clean : "", &l, &err);
	if (r < 0)
		return lookup_failed(q, r, &err, "");
	json_t *a = api_datasets_json(&l);
	jb_datasets_free(&l);
	return reply_json(q->conn, 200, json_pack("{s:o}", "datasets", a));
}

/* ?verify=1: a relayed dataset's file read again and checked against the
 * origin's seal (its signature with the origin's pinned key, the sha256t it
 * signed); one file's read, in this request's thread. */
static json_t *verify_seal(struct req *q, const struct jb_provenance *p)
{
	const struct jb_dataset *d = &p->ds;
	const struct jb_peer *origin = p->known && d->origin ? jb_config_peer(q->a->c, d->origin) : NULL;
	struct jb_error err = {0};
	struct jb_seal_check ck = {0};
	char abs[2 * JB_PATH_MAX + 2];
	int r;
	if (!p->known)
		r = jb_err(&err, ENOENT, "it is not in the catalog");
	else if (!d->seal_len)
		r = jb_err(&err, ENOENT, "it came without a seal (only what comes through relays is sealed)");
	else if (!origin)
		r = jb_err(&err, EACCES, "its origin %s is no [peer] here any more: no key to check its seal with",
			   d->origin);
	else {
		snprintf(abs, sizeof abs, "%s/%s", q->a->c->root, d->path);
		r = jb_seal_check_file(d->seal, d->seal_len, origin->fp, abs, d->size, d->mtime_ns, &ck, &err);
	}
	json_t *o = json_pack("{s:b, s:b, s:b}", "ok", r == 0, "signature", ck.signature_ok, "content", ck.content_ok);
	if (!o)
		return NULL;
	if (p->known && d->origin)
		json_object_set_new(o, "signer", json_string(d->origin));
	if (d->via)
		json_object_set_new(o, "via", json_string(d->via));
	if (ck.sealed[0])
		json_object_set_new(o, "sealed", json_string(ck.sealed));
	if (ck.now[0])
		json_object_set_new(o, "now", json_string(ck.now));
	if (ck.path[0])
		json_object_set_new(o, "sealed_path", json_string(ck.path));
	if (r < 0)
		json_object_set_new(o, "error", json_string(err.msg));
	return o;
}

static enum MHD_Result h_provenance(struct req *q)
{
	_cleanup_free_ char *clean = NULL;
	enum MHD_Result ret;
	if (!path_arg(q, &clean, &ret))
		return ret;
	if (!clean)
		return error_json(q->conn, 400, "provenance of what? (?path=PATH)");
	struct jb_error err = {0};
	struct jb_provenance p;
	int r = jb_provenance(q->a->jobs, q->a->cat, clean, &p, &err);
	if (r < 0)
		return failed(q->conn, r, &err);
	json_t *o = api_provenance_json(&p, is_admin(q) ? NULL : q->who.name);
	const char *v = query(q, "verify");
	if (o && v && !strcmp(v, "1"))
		json_object_set_new(o, "verify", verify_seal(q, &p));
	jb_provenance_free(&p);
	return reply_json(q->conn, 200, o);
}

/* The transfers relayed through this site now: each one's hop here. */
static enum MHD_Result h_relays(struct req *q)
{
	struct jb_relay_info *v;
	size_t n;
	if (!q->a->srv || jb_server_relays(q->a->srv, &v, &n) < 0)
		return error_json(q->conn, 503, "the relayed transfers cannot be listed now");
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++) {
		const struct jb_relay_info *r = &v[i];
		json_array_append_new(
			a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:i, s:f, s:f}", "origin", r->origin,
				     "from", r->from, "next", r->next, "path", r->path, "staging", r->key, "state", r->state,
				     "entries", (json_int_t)r->entries, "delivered", (json_int_t)r->delivered, "staged_bytes",
				     (json_int_t)r->staged, "forwarded_bytes", (json_int_t)r->forwarded, "attempts",
				     r->attempts, "seconds", r->seconds,
				     "gbps", r->seconds > 0 ? r->forwarded * 8.0 / r->seconds / 1e9 : 0.0));
	}
	free(v);
	return reply_json(q->conn, 200, json_pack("{s:o}", "relays", a ? a : json_array()));
}

static enum MHD_Result h_rules(struct req *q)
{
	return reply_json(q->conn, 200, json_pack("{s:o}", "rules", api_rules_json(q->a->c)));
}

/* Patterns: literal bytes, ":id" one segment of 1-63 bytes, a trailing "*"
 * anything.  A path that no pattern takes is 404, one whose pattern wants
 * another method 405.  docs/api.md lists the same. */
/* Who may call a route (scopes): 0 anyone; else a token with one of
 * these (admin always).  Every token reads; the handlers narrow jobs and
 * transfers to the caller's own, and a job request further (check_job). */
#define PUBLIC 0u
#define READ JB_SCOPE_READ
#define TRANSFER JB_SCOPE_TRANSFER
#define RUN JB_SCOPE_RUN
#define NOTEBOOK JB_SCOPE_NOTEBOOK
static const struct route {
	const char *method, *pattern;
	unsigned scopes;
	enum need need;
	handler_fn fn;
} routes[] = {
	{"GET", "/api/v1/health", PUBLIC, NEED_NONE, h_health},
	{"GET", "/api/v1/peers", READ, NEED_NONE, h_peers},
	{"GET", "/api/v1/jobs", READ, NEED_JOBS, h_jobs_list},
	{"POST", "/api/v1/jobs", RUN | NOTEBOOK, NEED_JOBS, h_jobs_new},
	{"GET", "/api/v1/jobs/:id", READ, NEED_JOBS, h_job_get},
	{"DELETE", "/api/v1/jobs/:id", RUN | NOTEBOOK, NEED_JOBS, h_job_kill},
	{"POST", "/api/v1/jobs/:id/kill", RUN | NOTEBOOK, NEED_JOBS, h_job_kill},
	{"POST", "/api/v1/jobs/:id/rerun", RUN, NEED_JOBS, h_job_rerun},
	{"GET", "/api/v1/jobs/:id/logs", READ, NEED_JOBS, h_job_logs},
	{"GET", "/api/v1/transfers", READ, NEED_TRANSFERS, h_transfers_list},
	{"POST", "/api/v1/transfers", TRANSFER, NEED_TRANSFERS, h_transfers_new},
	{"GET", "/api/v1/transfers/:id", READ, NEED_TRANSFERS, h_transfer_get},
	{"DELETE", "/api/v1/transfers/:id", TRANSFER, NEED_TRANSFERS, h_transfer_cancel},
	{"POST", "/api/v1/transfers/:id/cancel", TRANSFER, NEED_TRANSFERS, h_transfer_cancel},
	{"GET", "/api/v1/datasets", READ, NEED_NONE, h_datasets},
	{"POST", "/api/v1/datasets/sha256", RUN | TRANSFER, NEED_NONE, h_sha256},
	{"GET", "/api/v1/provenance", READ, NEED_NONE, h_provenance},
	{"GET", "/api/v1/rules", READ, NEED_NONE, h_rules},
	{"GET", "/api/v1/relays", READ, NEED_NONE, h_relays},
	{"GET", "/metrics", PUBLIC, NEED_NONE, h_metrics},
	{"GET", "/", PUBLIC, NEED_NONE, h_asset},
	{"GET", "/ui", PUBLIC, NEED_NONE, h_asset},
	{"GET", "/ui/*", PUBLIC, NEED_NONE, h_asset},
};

static bool match(const char *pat, const char *url, char id[64])
{
	while (*pat) {
		if (*pat == '*' && !pat[1])
			return true;
		if (!strncmp(pat, ":id", 3)) {
			size_t n = strcspn(url, "/");
			if (n == 0 || n >= 64)
				return false;
			memcpy(id, url, n);
			id[n] = 0;
			url += n;
			pat += 3;
			continue;
		}
		if (*pat++ != *url++)
			return false;
	}
	return !*url;
}

/* The caller's token: 0 and who it is, -EACCES without a valid one,
 * another errno (err set) when the database fails. */
static int authorized(struct req *q, struct jb_error *err)
{
	const char *h = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "Authorization");
	if (!q->a->tokens || !h || strncasecmp(h, "Bearer ", 7))
		return -EACCES;
	return jb_tokens_check(q->a->tokens, h + 7, &q->who, err);
}

static enum MHD_Result unauthorized(struct MHD_Connection *conn)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(UNAUTHORIZED), (void *)UNAUTHORIZED, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type", "application/json");
	MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"jumbo\"");
	enum MHD_Result ret = MHD_queue_response(conn, 401, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result route(struct req *q)
{
	const struct route *found = NULL;
	bool path_known = false;
	for (size_t i = 0; i < JB_ARRAY_SIZE(routes) && !found; i++) {
		if (!match(routes[i].pattern, q->url, q->id))
			continue;
		path_known = true;
		if (!strcmp(routes[i].method, q->method))
			found = &routes[i];
	}
	/* under /api/v1 a token comes first, so that a caller without one
	 * learns nothing of which paths exist */
	bool api = !strncmp(q->url, "/api/v1/", 8);
	bool need = found ? found->scopes != PUBLIC : api && strcmp(q->url, "/api/v1/health");
	struct jb_error err = {0};
	int ar = need ? authorized(q, &err) : 0;
	if (ar == -EACCES)
		return unauthorized(q->conn);
	if (ar < 0)
		return failed(q->conn, ar, &err);
	if (found && need && !is_admin(q) && !(q->who.scopes & found->scopes)) {
		unsigned want = found->scopes & -found->scopes; /* the first of them, to name */
		return forbidden(q, want, found->scopes & (found->scopes - 1) ? "or another the route takes" : NULL);
	}
	if (found && found->need == NEED_JOBS && !q->a->jobs)
		return error_json(q->conn, 503, "jobs are not available on this site (see the daemon's log)");
	if (found && found->need == NEED_TRANSFERS && !q->a->transfers)
		return error_json(q->conn, 503, "transfers are not available on this site (see the daemon's log)");
	if (found)
		return found->fn(q);
	return path_known ? error_json(q->conn, 405, "method not allowed") : error_json(q->conn, 404, "not found");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_size, void **state)
{
	/* a body comes in pieces: keep it, answer once it is whole */
	if (!*state) {
		struct jb_buf *b = calloc(1, sizeof *b);
		if (!b)
			return MHD_NO;
		b->limit = MAX_BODY;
		*state = b;
		return MHD_YES;
	}
	struct jb_buf *b = *state;
	if (*upload_size) {
		/* past MAX_BODY it takes no more: the answer is 413 */
		if (jb_buf_add(b, upload, *upload_size) == -ENOMEM)
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	struct jb_api *a = cls;
	api_guard_received(a->guard, conn); /* whole: its time no longer runs */
	struct req q = {.a = a, .conn = conn, .url = url, .b = b,
			/* libmicrohttpd sends the headers only */
			.method = !strcmp(method, "HEAD") ? "GET" : method};
	return route(&q);
}

int jb_api_start(const struct jb_config *c, const struct jb_api_services *sv, struct jb_api **ret, struct jb_error *err)
{
	char host[256];
	int port;
	if (jb_split_hostport(c->api, host, sizeof host, &port) < 0)
		return jb_err(err, EINVAL, "api: bad address '%s'", c->api);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
	char ps[8];
	snprintf(ps, sizeof ps, "%d", port);
	if (getaddrinfo(host, ps, &hints, &ai))
		return jb_err(err, EINVAL, "api: cannot resolve '%s'", host);
	struct jb_api *a = calloc(1, sizeof *a);
	if (!a) {
		freeaddrinfo(ai);
		return jb_oom(err);
	}
	a->c = c;
	a->srv = sv->srv;
	a->jobs = sv->jobs;
	a->cat = sv->cat;
	a->tokens = sv->tokens;
	a->transfers = sv->transfers;
	uint8_t fp[32];
	if (jb_identity_fingerprint(c->identity, fp, NULL) == 0)
		jb_fp_format(fp, a->fp);
	int per_addr = c->api_connections_per_address ? c->api_connections_per_address : JB_DEFAULT_API_PER_ADDRESS;
	int idle = c->api_idle_timeout ? c->api_idle_timeout : JB_DEFAULT_API_IDLE_TIMEOUT;
	int r = api_guard_new(c->api_request_timeout > 0 ? c->api_request_timeout : JB_DEFAULT_API_REQUEST_TIMEOUT,
			      per_addr, &a->guard, err);
	if (r < 0) {
		freeaddrinfo(ai);
		free(a);
		return r;
	}
	/* a pool of threads, each with its epoll: a long answer (a table of
	 * transfers) does not hold up the others */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	a->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, a, MHD_OPTION_EXTERNAL_LOGGER, api_guard_log, a->guard,
				MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)API_THREADS,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)JB_API_MAX_CONNECTIONS,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)per_addr,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)idle,
				MHD_OPTION_NOTIFY_CONNECTION, api_guard_notify, a->guard,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
				request_done, a, MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!a->d) {
		api_guard_free(a->guard);
		free(a);
		return jb_err(err, EADDRINUSE, "api: cannot listen on %s", c->api);
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
	a->port = info ? info->port : port;
	*ret = a;
	return 0;
}

int jb_api_port(const struct jb_api *a) { return a->port; }

void jb_api_stop(struct jb_api *a)
{
	if (!a)
		return;
	MHD_stop_daemon(a->d); /* every connection closed */
	api_guard_free(a->guard);
	free(a);
}
