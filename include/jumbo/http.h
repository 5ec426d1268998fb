/* jumbo http: the library's one libcurl set-up, and one JSON request (the
 * cluster engines' REST APIs).  The registry client and the API client
 * keep their own requests (streamed blobs, headers) but start here too. */
#pragma once
#include <jansson.h>
#include <pthread.h>

#include "jumbo/base.h"

typedef void CURL;
struct curl_slist;

/* curl_global_init, once, from any thread. */
JB_EXPORT void jb_http_init(void);

#define JB_HTTP_MAX_ANSWER (8u << 20)
struct jb_http_req {
	const char *method, *url;
	struct curl_slist *headers;
	const char *user, *password; /* Basic, when user is set */
	const char *body;            /* NULL: none */
	long timeout_s;              /* 0: 30 s */
	size_t max_answer;           /* 0: JB_HTTP_MAX_ANSWER; a longer answer fails (E2BIG) */
};
/* One request on c (serialized by lock, may be NULL): the HTTP status, or
 * -1 with err when there was no (whole) answer; *ret is the answer's JSON,
 * NULL when it had none or it was not JSON. */
JB_EXPORT long jb_http_json(CURL *c, pthread_mutex_t *lock, const struct jb_http_req *rq, json_t **ret,
			    struct jb_error *err);
