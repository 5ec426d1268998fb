/* The one libcurl set-up of the library, and one JSON request over a handle
 * the caller keeps (cluster engines' REST APIs). */
#include <curl/curl.h>
#include <pthread.h>

#include "jumbo/http.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

void jb_http_init(void) { pthread_once(&once, init); }

long jb_http_json(CURL *c, pthread_mutex_t *lock, const struct jb_http_req *rq, json_t **ret, struct jb_error *err)
{
	_cleanup_buf_ struct jb_buf b = {.limit = rq->max_answer ? rq->max_answer : JB_HTTP_MAX_ANSWER};
	long code = -1;
	*ret = NULL;
	if (lock)
		pthread_mutex_lock(lock);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, rq->url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, rq->timeout_s ? rq->timeout_s : 30L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, rq->headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, jb_buf_sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (rq->user) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, rq->user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, rq->password ? rq->password : "");
	}
	if (rq->body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
	CURLcode cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (lock)
		pthread_mutex_unlock(lock);
	if (b.oom) {
		jb_err(err, E2BIG, "%s: the answer is larger than %zu bytes", rq->url, b.limit);
		return -1;
	}
	if (cc != CURLE_OK) {
		jb_err(err, ECONNREFUSED, "%s: %s", rq->url, curl_easy_strerror(cc));
		return -1;
	}
	*ret = b.p ? json_loadb((const char *)b.p, b.len, 0, NULL) : NULL; /* NULL: no body, or not JSON (a web server's HTML 401) */
	return code;
}
