/* The REST API: the site's health, identity and peers, jobs (submit, list,
 * inspect, cancel, logs), and Prometheus metrics.  Listens on loopback
 * unless configured otherwise (docs/api.md). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "jb_version.h"
#include "jumbo/api.h"

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

/* The dashboard's files (web/, embedded at build time by build-aux/embed.py). */
struct jb_web_asset {
	const char *path, *type;
	const unsigned char *data;
	size_t len;
};
extern const struct jb_web_asset jb_web_assets[];

/* true when url is one of them, and *ret is the answer queued */
static bool serve_asset(struct MHD_Connection *conn, const char *url, enum MHD_Result *ret)
{
	if (!strcmp(url, "/") || !strcmp(url, "/ui") || !strcmp(url, "/ui/"))
		url = "/ui/index.html";
	for (const struct jb_web_asset *w = jb_web_assets; w->path; w++) {
		if (strcmp(w->path, url))
			continue;
		struct MHD_Response *r =
			MHD_create_response_from_buffer(w->len, (void *)w->data, MHD_RESPMEM_PERSISTENT);
		MHD_add_response_header(r, "Content-Type", w->type);
		MHD_add_response_header(r, "Cache-Control", "no-cache");
		/* its own scripts and the API only; the token stays in the tab */
		MHD_add_response_header(r, "Content-Security-Policy",
					"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
		MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
		*ret = MHD_queue_response(conn, 200, r);
		MHD_destroy_response(r);
		return true;
	}
	return false;
}

static enum MHD_Result error_json(struct MHD_Connection *conn, unsigned status, const char *msg)
{
	return reply_json(conn, status, json_pack("{s:s}", "error", msg));
}

/* A request's body, gathered across calls (bounded). */
struct body {
	char *buf;
	size_t len;
	bool too_big;
};

static void request_done(void *cls, struct MHD_Connection *conn, void **state, enum MHD_RequestTerminationCode t)
{
	struct body *b = *state;
	if (b) {
		free(b->buf);
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

/* POST to a collection: the body's JSON handed to submit, 201 and the new
 * object (get), or the refusal. */
typedef int (*submit_fn)(void *svc, json_t *req, char id[JB_JOB_ID_LEN + 1], struct jb_error *err);
typedef json_t *(*get_fn)(void *svc, const char *id);

static enum MHD_Result post_new(struct MHD_Connection *conn, struct body *b, void *svc, submit_fn submit, get_fn get)
{
	if (b->too_big)
		return error_json(conn, 413, "the request body is larger than 1 MiB");
	json_error_t je;
	json_t *req = json_loadb(b->buf ? b->buf : "", b->len, JSON_REJECT_DUPLICATES, &je);
	if (!req) {
		char msg[300];
		snprintf(msg, sizeof msg, "the body is not JSON: %s", je.text);
		return error_json(conn, 400, msg);
	}
	char id[JB_JOB_ID_LEN + 1];
	struct jb_error err = {0};
	int r = submit(svc, req, id, &err);
	json_decref(req);
	if (r < 0)
		return error_json(conn, errno_status(-r), err.msg[0] ? err.msg : strerror(-r));
	json_t *o = get(svc, id);
	return reply_json(conn, 201, o ? o : json_pack("{s:s}", "id", id));
}

static int submit_job(void *svc, json_t *req, char id[JB_JOB_ID_LEN + 1], struct jb_error *err)
{
	return jb_jobs_submit(svc, req, id, err);
}
static json_t *get_job(void *svc, const char *id) { return jb_jobs_get(svc, id); }
static int submit_transfer(void *svc, json_t *req, char id[JB_JOB_ID_LEN + 1], struct jb_error *err)
{
	return jb_transfers_submit(svc, req, id, err);
}
static json_t *get_transfer(void *svc, const char *id) { return jb_transfers_get(svc, id); }

/* "/ID[/SUB]" after a collection's path: the id, and *sub at what follows */
static bool split_id(const char *rest, char id[64], const char **sub)
{
	if (*rest != '/')
		return false;
	size_t idl = strcspn(rest + 1, "/");
	if (idl == 0 || idl >= 64)
		return false;
	memcpy(id, rest + 1, idl);
	id[idl] = 0;
	*sub = rest + 1 + idl;
	return true;
}

/* /api/v1/transfers[/ID[/cancel]] */
static enum MHD_Result transfers_route(struct jb_api *a, struct MHD_Connection *conn, const char *rest,
				       const char *method, struct body *b)
{
	struct jb_error err = {0};
	if (!a->transfers)
		return error_json(conn, 503, "transfers are not available on this site (see the daemon's log)");
	if (!*rest) {
		if (!strcmp(method, "GET"))
			return reply_json(conn, 200, json_pack("{s:o}", "transfers", jb_transfers_list(a->transfers)));
		if (strcmp(method, "POST"))
			return error_json(conn, 405, "method not allowed");
		return post_new(conn, b, a->transfers, submit_transfer, get_transfer);
	}
	char id[64];
	const char *sub;
	if (!split_id(rest, id, &sub))
		return error_json(conn, 404, *rest == '/' ? "no such transfer" : "not found");
	json_t *t = jb_transfers_get(a->transfers, id);
	if (!t)
		return error_json(conn, 404, "no such transfer");
	if (!*sub && !strcmp(method, "GET"))
		return reply_json(conn, 200, t);
	json_decref(t);
	if ((!*sub && !strcmp(method, "DELETE")) || (!strcmp(sub, "/cancel") && !strcmp(method, "POST"))) {
		int r = jb_transfers_cancel(a->transfers, id, &err);
		if (r < 0)
			return error_json(conn, errno_status(-r), err.msg);
		return reply_json(conn, 202, json_pack("{s:s, s:s}", "id", id, "status", "cancelling"));
	}
	return error_json(conn, !*sub || !strcmp(sub, "/cancel") ? 405 : 404,
			  !*sub || !strcmp(sub, "/cancel") ? "method not allowed" : "not found");
}

/* /api/v1/jobs[/ID[/kill|/logs]] */
static enum MHD_Result jobs_route(struct jb_api *a, struct MHD_Connection *conn, const char *rest, const char *method,
				  struct body *b)
{
	struct jb_error err = {0};
	if (!a->jobs)
		return error_json(conn, 503, "jobs are not available on this site (see the daemon's log)");
	if (!*rest) {
		if (!strcmp(method, "GET"))
			return reply_json(conn, 200, json_pack("{s:o}", "jobs", jb_jobs_list(a->jobs)));
		if (strcmp(method, "POST"))
			return error_json(conn, 405, "method not allowed");
		return post_new(conn, b, a->jobs, submit_job, get_job);
	}
	char id[64];
	const char *sub;
	if (!split_id(rest, id, &sub))
		return error_json(conn, 404, *rest == '/' ? "no such job" : "not found");
	json_t *job = jb_jobs_get(a->jobs, id);
	if (!job)
		return error_json(conn, 404, "no such job");
	if (!*sub) {
		if (!strcmp(method, "GET")) {
			if (a->cat) {
				json_object_set_new(job, "inputs", jb_catalog_inputs(a->cat, id));
				json_object_set_new(job, "outputs", jb_catalog_outputs(a->cat, id));
			}
			return reply_json(conn, 200, job);
		}
		json_decref(job);
		if (strcmp(method, "DELETE"))
			return error_json(conn, 405, "method not allowed");
		sub = "/kill";
		method = "POST";
	} else {
		json_decref(job);
	}
	if (!strcmp(sub, "/kill")) {
		if (strcmp(method, "POST"))
			return error_json(conn, 405, "method not allowed");
		int r = jb_jobs_kill(a->jobs, id, &err);
		if (r < 0)
			return error_json(conn, errno_status(-r), err.msg);
		return reply_json(conn, 202, json_pack("{s:s, s:s}", "id", id, "status", "cancelling"));
	}
	if (!strcmp(sub, "/rerun")) {
		if (strcmp(method, "POST"))
			return error_json(conn, 405, "method not allowed");
		char nid[JB_JOB_ID_LEN + 1];
		int r = jb_jobs_rerun(a->jobs, id, nid, &err);
		if (r < 0)
			return error_json(conn, errno_status(-r), err.msg);
		json_t *nj = jb_jobs_get(a->jobs, nid);
		return reply_json(conn, 201, nj ? nj : json_pack("{s:s}", "id", nid));
	}
	if (!strcmp(sub, "/logs")) {
		if (strcmp(method, "GET"))
			return error_json(conn, 405, "method not allowed");
		const char *stream = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "stream");
		const char *off = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "offset");
		char path[4300];
		if (jb_jobs_log_path(a->jobs, id, stream ? stream : "stdout", path, sizeof path) < 0)
			return error_json(conn, 400, "stream is stdout or stderr");
		char *end = NULL;
		long long o = off ? strtoll(off, &end, 10) : 0;
		if ((off && (!*off || *end)) || o < 0)
			return error_json(conn, 400, "offset is a byte count");
		/* the state first: bytes read after it are all there are when it is final */
		json_t *j = jb_jobs_get(a->jobs, id);
		char state[32];
		snprintf(state, sizeof state, "%s", json_string_value(json_object_get(j, "state")));
		json_decref(j);
		char *buf = malloc(MAX_LOG_CHUNK);
		if (!buf)
			return MHD_NO;
		ssize_t n = 0;
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			n = pread(fd, buf, MAX_LOG_CHUNK, (off_t)o);
			close(fd);
		}
		if (n < 0)
			n = 0;
		struct MHD_Response *r = MHD_create_response_from_buffer((size_t)n, buf, MHD_RESPMEM_MUST_FREE);
		char next[32];
		snprintf(next, sizeof next, "%lld", o + (long long)n);
		MHD_add_response_header(r, "Content-Type", "application/octet-stream");
		MHD_add_response_header(r, "X-Jumbo-Job-State", state);
		MHD_add_response_header(r, "X-Jumbo-Log-Offset", next);
		enum MHD_Result ret = MHD_queue_response(conn, 200, r);
		MHD_destroy_response(r);
		return ret;
	}
	return error_json(conn, 404, "not found");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_size, void **state)
{
	struct jb_api *a = cls;
	/* a body comes in pieces: keep it, answer once it is whole */
	if (!*state) {
		struct body *b = calloc(1, sizeof *b);
		if (!b)
			return MHD_NO;
		*state = b;
		return MHD_YES;
	}
	struct body *b = *state;
	if (!strcmp(method, "HEAD"))
		method = "GET"; /* libmicrohttpd sends the headers only */
	if (*upload_size) {
		if (b->len + *upload_size > MAX_BODY) {
			b->too_big = true;
		} else {
			char *nb = realloc(b->buf, b->len + *upload_size + 1);
			if (!nb)
				return MHD_NO;
			b->buf = nb;
			memcpy(b->buf + b->len, upload, *upload_size);
			b->len += *upload_size;
			b->buf[b->len] = 0;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	/* everything under /api/v1 but health wants a token */
	if (!strncmp(url, "/api/v1/", 8) && strcmp(url, "/api/v1/health")) {
		const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
		if (!a->tokens || !h || strncasecmp(h, "Bearer ", 7) || jb_tokens_check(a->tokens, h + 7, NULL) < 0) {
			struct MHD_Response *r = MHD_create_response_from_buffer(
				strlen(UNAUTHORIZED), (void *)UNAUTHORIZED, MHD_RESPMEM_PERSISTENT);
			MHD_add_response_header(r, "Content-Type", "application/json");
			MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"jumbo\"");
			enum MHD_Result ret = MHD_queue_response(conn, 401, r);
			MHD_destroy_response(r);
			return ret;
		}
	}
	if (!strncmp(url, "/api/v1/jobs", 12))
		return jobs_route(a, conn, url + 12, method, b);
	if (!strncmp(url, "/api/v1/transfers", 17))
		return transfers_route(a, conn, url + 17, method, b);
	if (!strcmp(url, "/api/v1/datasets/sha256")) {
		/* SHA-256 on demand: computed from the files, recorded */
		if (strcmp(method, "POST"))
			return error_json(conn, 405, "method not allowed");
		const char *path = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "path");
		char *clean = NULL;
		struct jb_error err = {0};
		if (path && jb_path_clean(path, &clean, &err) < 0)
			return error_json(conn, 400, err.msg);
		char rootreal[4096];
		if (!realpath(a->c->root, rootreal))
			snprintf(rootreal, sizeof rootreal, "%s", a->c->root);
		json_t *l = jb_catalog_sha256(a->cat, rootreal, clean ? clean : "", &err);
		free(clean);
		if (!l)
			return error_json(conn, 500, err.msg);
		return reply_json(conn, 200, json_pack("{s:o}", "datasets", l));
	}
	if (!strcmp(url, "/api/v1/datasets") || !strcmp(url, "/api/v1/provenance")) {
		if (strcmp(method, "GET"))
			return error_json(conn, 405, "method not allowed");
		const char *path = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "path");
		char *clean = NULL;
		struct jb_error err = {0};
		if (path && jb_path_clean(path, &clean, &err) < 0)
			return error_json(conn, 400, err.msg);
		json_t *ans;
		if (!strcmp(url, "/api/v1/datasets")) {
			ans = json_pack("{s:o}", "datasets", jb_catalog_list(a->cat, clean ? clean : ""));
		} else if (!clean) {
			free(clean);
			return error_json(conn, 400, "provenance of what? (?path=PATH)");
		} else if (!(ans = jb_provenance(a->jobs, a->cat, clean, &err))) {
			free(clean);
			return error_json(conn, errno_status(err.code), err.msg);
		}
		free(clean);
		return reply_json(conn, 200, ans);
	}
	if (!strcmp(url, "/api/v1/rules")) {
		if (strcmp(method, "GET"))
			return error_json(conn, 405, "method not allowed");
		return reply_json(conn, 200, json_pack("{s:o}", "rules", jb_rules_json(a->c)));
	}
	if (strcmp(method, "GET"))
		return reply_json(conn, 405, json_pack("{s:s}", "error", "method not allowed"));
	if (!strcmp(url, "/") || !strncmp(url, "/ui", 3)) {
		enum MHD_Result r;
		if (serve_asset(conn, url, &r))
			return r;
	}
	if (!strcmp(url, "/api/v1/health")) {
		struct jb_server_stats st;
		jb_server_stats(a->srv, &st);
		return reply_json(conn, 200,
				  json_pack("{s:s, s:s, s:s, s:s, s:I}", "status", "ok", "site", a->c->name, "version",
					    JB_VERSION, "fingerprint", a->fp, "sessions", (json_int_t)st.sessions));
	}
	if (!strcmp(url, "/api/v1/peers")) {
		json_t *arr = json_array();
		for (size_t i = 0; i < a->c->npeers; i++) {
			char f[72];
			jb_fp_format(a->c->peers[i].fp, f);
			json_array_append_new(arr, json_pack("{s:s, s:s?, s:s}", "name", a->c->peers[i].name, "address",
							     a->c->peers[i].address, "fingerprint", f));
		}
		return reply_json(conn, 200, json_pack("{s:o}", "peers", arr));
	}
	if (!strcmp(url, "/metrics")) {
		struct jb_server_stats st;
		jb_server_stats(a->srv, &st);
		char *body;
		if (asprintf(&body,
			     "# HELP jumbo_sessions_total Transfer sessions run.\n# TYPE jumbo_sessions_total counter\n"
			     "jumbo_sessions_total %llu\n"
			     "# HELP jumbo_refused_total Connections refused (unknown peers).\n# TYPE jumbo_refused_total counter\n"
			     "jumbo_refused_total %llu\n"
			     "# HELP jumbo_bytes_received_total Verified payload bytes received.\n# TYPE jumbo_bytes_received_total counter\n"
			     "jumbo_bytes_received_total %llu\n"
			     "# HELP jumbo_bytes_sent_total Payload bytes sent.\n# TYPE jumbo_bytes_sent_total counter\n"
			     "jumbo_bytes_sent_total %llu\n"
			     "# HELP jumbo_streams_active Data streams of the sessions running now.\n# TYPE jumbo_streams_active gauge\n"
			     "jumbo_streams_active %llu\n"
			     "# HELP jumbo_blocks_resent_total Blocks that failed their digest and were sent again.\n"
			     "# TYPE jumbo_blocks_resent_total counter\njumbo_blocks_resent_total %llu\n",
			     (unsigned long long)st.sessions, (unsigned long long)st.refused,
			     (unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out,
			     (unsigned long long)st.streams_active, (unsigned long long)st.blocks_bad) < 0)
			return MHD_NO;
		if (a->transfers) {
			unsigned tc[6];
			uint64_t moving;
			jb_transfers_counts(a->transfers, tc, &moving);
			char *more = NULL;
			size_t ml = 0;
			FILE *f = open_memstream(&more, &ml);
			if (f) {
				fprintf(f, "%s# HELP jumbo_transfers Durable transfers by state.\n# TYPE jumbo_transfers gauge\n", body);
				for (int i = 0; i < 6; i++)
					fprintf(f, "jumbo_transfers{state=\"%s\"} %u\n", jb_transfer_states()[i], tc[i]);
				fprintf(f, "# HELP jumbo_transfer_bytes_in_flight Bytes the running durable transfers have moved.\n"
					   "# TYPE jumbo_transfer_bytes_in_flight gauge\njumbo_transfer_bytes_in_flight %llu\n",
					(unsigned long long)moving);
				/* each running transfer's throughput, and the retries of all */
				json_t *list = jb_transfers_list(a->transfers), *t;
				size_t i;
				unsigned long long retries = 0;
				fprintf(f, "# HELP jumbo_transfer_gbps Throughput of each running durable transfer.\n"
					   "# TYPE jumbo_transfer_gbps gauge\n");
				json_array_foreach (list, i, t) {
					long long at = json_integer_value(json_object_get(t, "attempts"));
					retries += at > 1 ? (unsigned long long)(at - 1) : 0;
					json_t *p = json_object_get(t, "progress");
					double secs = json_number_value(json_object_get(p, "seconds"));
					if (p && secs > 0)
						fprintf(f, "jumbo_transfer_gbps{id=\"%s\",peer=\"%s\"} %.4f\n",
							json_string_value(json_object_get(t, "id")),
							json_string_value(json_object_get(t, "peer")),
							(double)json_integer_value(json_object_get(p, "bytes_done")) * 8 / secs / 1e9);
				}
				fprintf(f, "# HELP jumbo_transfer_retries_total Attempts of durable transfers after their first.\n"
					   "# TYPE jumbo_transfer_retries_total counter\njumbo_transfer_retries_total %llu\n",
					retries);
				json_decref(list);
				fclose(f);
				free(body);
				body = more;
			}
		}
		if (a->jobs) {
			unsigned counts[8];
			jb_jobs_counts(a->jobs, counts);
			char *more = NULL;
			size_t ml = 0;
			FILE *f = open_memstream(&more, &ml);
			if (f) {
				fprintf(f, "%s# HELP jumbo_jobs Jobs by state.\n# TYPE jumbo_jobs gauge\n", body);
				for (int i = 0; i < 8; i++)
					fprintf(f, "jumbo_jobs{state=\"%s\"} %u\n", jb_job_states()[i], counts[i]);
				fclose(f);
				free(body);
				body = more;
			}
		}
		return reply(conn, 200, "text/plain; version=0.0.4", body);
	}
	return reply_json(conn, 404, json_pack("{s:s}", "error", "not found"));
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
		return -ENOMEM;
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
	/* a pool of threads, each with its epoll: a long answer (a table of
	 * transfers) does not hold up the others */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	a->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, a, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
				MHD_OPTION_THREAD_POOL_SIZE, (unsigned)API_THREADS, MHD_OPTION_CONNECTION_LIMIT, 64u,
				MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
				request_done, NULL, MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!a->d) {
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
	MHD_stop_daemon(a->d);
	free(a);
}
