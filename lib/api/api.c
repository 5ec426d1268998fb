/* The REST API: for now the site's health, identity and peers, and
 * Prometheus metrics.  Listens on loopback unless configured otherwise. */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "jb_version.h"
#include "jumbo/api.h"

struct jb_api {
	const struct jb_config *c;
	struct jb_server *srv;
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
	char *body = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	return reply(conn, status, "application/json", body ? body : strdup("{}"));
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_size, void **state)
{
	struct jb_api *a = cls;
	if (strcmp(method, "GET"))
		return reply_json(conn, 405, json_pack("{s:s}", "error", "method not allowed"));
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
			     "jumbo_bytes_sent_total %llu\n",
			     (unsigned long long)st.sessions, (unsigned long long)st.refused,
			     (unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out) < 0)
			return MHD_NO;
		return reply(conn, 200, "text/plain; version=0.0.4", body);
	}
	return reply_json(conn, 404, json_pack("{s:s}", "error", "not found"));
}

int jb_api_start(const struct jb_config *c, struct jb_server *srv, struct jb_api **ret, struct jb_error *err)
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
	a->srv = srv;
	uint8_t fp[32];
	if (jb_identity_fingerprint(c->identity, fp, NULL) == 0)
		jb_fp_format(fp, a->fp);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	a->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, a, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
				MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
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
