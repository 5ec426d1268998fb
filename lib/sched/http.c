/* One JSON request to a cluster engine's REST API (slurmrestd, Marathon),
 * over a curl handle the caller keeps and serializes. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "jobs-internal.h"

struct buf {
	char *p;
	size_t n;
};

static size_t sink(char *d, size_t sz, size_t nm, void *ud)
{
	struct buf *b = ud;
	size_t n = sz * nm;
	if (b->n + n > (8u << 20))
		return 0; /* an answer over 8 MiB ends the request */
	char *q = realloc(b->p, b->n + n + 1);
	if (!q)
		return 0;
	memcpy(q + b->n, d, n);
	b->p = q;
	b->n += n;
	q[b->n] = 0;
	return n;
}

long sched_http(CURL *c, pthread_mutex_t *lock, const char *method, const char *url, struct curl_slist *headers,
		const char *user, const char *password, const char *body, json_t **ret, struct jb_error *err)
{
	struct buf b = {0};
	long code = -1;
	*ret = NULL;
	pthread_mutex_lock(lock);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (user) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, password ? password : "");
	}
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	CURLcode cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	pthread_mutex_unlock(lock);
	if (cc != CURLE_OK) {
		free(b.p);
		jb_err(err, ECONNREFUSED, "%s: %s", url, curl_easy_strerror(cc));
		return -1;
	}
	*ret = b.p ? json_loads(b.p, 0, NULL) : NULL; /* NULL: no body, or not JSON (a web server's HTML 401) */
	free(b.p);
	return code;
}
