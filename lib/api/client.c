/* The REST API, client side: what `jumbo run`, `jumbo jobs`, `jumbo logs`
 * and `jumbo kill` say to the local jumbod.  libcurl, one handle kept. */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "jumbo/api.h"
#include "jumbo/http.h"

#define MAX_ANSWER (16u << 20)

struct jb_api_client {
	char base[320];
	char authz[JB_TOKEN_LEN + 32];
	CURL *curl;
};

struct answer {
	struct jb_buf body; /* at most MAX_ANSWER */
	char state[32];
	uint64_t next;
};

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct answer *a = ud;
	size_t len = size * n;
	char line[256];
	snprintf(line, sizeof line, "%.*s", (int)JB_MIN(len, sizeof line - 1), p);
	line[strcspn(line, "\r\n")] = 0;
	if (!strncasecmp(line, "X-Jumbo-Job-State:", 18))
		snprintf(a->state, sizeof a->state, "%s", line + 18 + strspn(line + 18, " "));
	else if (!strncasecmp(line, "X-Jumbo-Log-Offset:", 19))
		a->next = strtoull(line + 19, NULL, 10);
	return len;
}

int jb_api_client_open(const char *hostport, const char *token, struct jb_api_client **ret, struct jb_error *err)
{
	jb_http_init();
	if (!hostport || !*hostport || !strcmp(hostport, "off"))
		return jb_err(err, EINVAL, "no API address: set [site] api, or use --api HOST:PORT or $JUMBO_API");
	struct jb_api_client *c = calloc(1, sizeof *c);
	if (!c || !(c->curl = curl_easy_init())) {
		free(c);
		return jb_oom(err);
	}
	/* "0.0.0.0:P" (listen everywhere) is reached on loopback */
	const char *hp = hostport;
	char fixed[300];
	if (!strncmp(hp, "0.0.0.0:", 8)) {
		snprintf(fixed, sizeof fixed, "127.0.0.1:%s", hp + 8);
		hp = fixed;
	}
	snprintf(c->base, sizeof c->base, "http://%s", hp);
	if (token && *token)
		snprintf(c->authz, sizeof c->authz, "Authorization: Bearer %.*s", JB_TOKEN_LEN, token);
	*ret = c;
	return 0;
}

void jb_api_client_close(struct jb_api_client *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	free(c);
}

static int perform(struct jb_api_client *c, const char *method, const char *path, const char *body, long *status,
		   struct answer *a, struct jb_error *err)
{
	char url[1024];
	snprintf(url, sizeof url, "%s%s", c->base, path);
	CURL *h = c->curl;
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, jb_buf_sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &a->body);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
	struct curl_slist *hd = NULL;
	if (c->authz[0])
		hd = curl_slist_append(hd, c->authz);
	if (body) {
		hd = curl_slist_append(hd, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	}
	if (hd)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	if (strcmp(method, body || !strcmp(method, "POST") ? "POST" : "GET"))
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	CURLcode cc = curl_easy_perform(h);
	curl_slist_free_all(hd);
	if (a->body.oom)
		return jb_err(err, E2BIG, "jumbod at %s: %s %s: an answer larger than %u bytes", c->base + 7, method, path,
			      MAX_ANSWER);
	if (cc != CURLE_OK)
		return jb_err(err, cc == CURLE_COULDNT_CONNECT ? ECONNREFUSED : EIO, "jumbod at %s: %s%s", c->base + 7,
			      curl_easy_strerror(cc), cc == CURLE_COULDNT_CONNECT ? " (is jumbod running?)" : "");
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	return 0;
}

int jb_api_call(struct jb_api_client *c, const char *method, const char *path, json_t *body, long *status,
		json_t **ret, struct jb_error *err)
{
	_cleanup_free_ char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (body && !b)
		return jb_err(err, ENOMEM, "out of memory");
	struct answer a = {.body = {.limit = MAX_ANSWER}};
	int r = perform(c, method, path, b, status, &a, err);
	if (r == 0) {
		json_t *j = json_loadb(a.body.p ? (const char *)a.body.p : "", a.body.len, 0, NULL);
		if (!j)
			r = jb_err(err, EIO, "jumbod at %s: %s %s: an answer that is not JSON (HTTP %ld)", c->base + 7,
				   method, path, *status);
		else if (*status >= 400) {
			const char *m = json_string_value(json_object_get(j, "error"));
			r = jb_err(err,
				   *status == 404   ? ENOENT
				   : *status == 409 ? EALREADY
				   : *status == 401 || *status == 403 ? EACCES
				   : *status == 507 ? ENOSPC
				   : *status >= 500 ? EIO
						    : EINVAL,
				   "%s", m ? m : "an error without a message");
			json_decref(j);
		} else {
			*ret = j;
		}
	}
	jb_buf_free(&a.body);
	return r;
}

int jb_api_logs(struct jb_api_client *c, const char *id, const char *stream, uint64_t offset, char **buf,
		size_t *len, uint64_t *next, char state[32], struct jb_error *err)
{
	char path[256];
	snprintf(path, sizeof path, "/api/v1/jobs/%s/logs?stream=%s&offset=%llu", id, stream,
		 (unsigned long long)offset);
	struct answer a = {.body = {.limit = MAX_ANSWER}, .next = offset};
	long status = 0;
	int r = perform(c, "GET", path, NULL, &status, &a, err);
	if (r == 0 && status != 200) {
		json_t *j = json_loadb(a.body.p ? (const char *)a.body.p : "", a.body.len, 0, NULL);
		const char *m = json_string_value(json_object_get(j, "error"));
		r = jb_err(err, status == 404 ? ENOENT : EIO, "%s", m ? m : "no logs");
		json_decref(j);
	}
	if (r < 0) {
		jb_buf_free(&a.body);
		return r;
	}
	*len = a.body.len;
	*buf = jb_buf_take(&a.body);
	*next = a.next;
	snprintf(state, 32, "%s", a.state);
	return 0;
}
