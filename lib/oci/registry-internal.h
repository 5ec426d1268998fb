/* Internal to lib/oci: a registry's connection and one response, shared
 * by registry.c (the requests) and registry_auth.c (answering a 401). */
#pragma once
#include <curl/curl.h>

#include "oci-internal.h"

#define MAX_TOKEN_BODY (64 * 1024)

struct jb_registry {
	char host[256];
	char base[300];          /* scheme://host */
	char *user, *password;
	bool insecure;
	void (*creds_for)(const void *ud, const char *host, const char **user, const char **password);
	const void *creds_ud;
	char *ca_file;
	long timeout_s;
	CURL *curl;
	char *authz;             /* the Authorization header in use, or NULL */
	bool basic_sent;
	jb_registry_progress_fn progress;
	void *progress_ud;
	bool (*cancelled)(void *ud);
	void *cancel_ud;
};

/* One response: headers kept, the body into memory (bounded) or into a blob
 * writer when the status is 200. */
struct resp {
	long status;
	char ctype[256];
	char digest[JB_OCI_DIGEST_MAX + 8];
	char location[2048];
	char challenge[1024];
	int64_t clen;
	struct jb_buf body;  /* in memory: manifests, tokens, error bodies (bounded) */
	struct jb_oci_blob_writer *w;
	struct jb_error werr;
	int wfail;
	/* upload from a descriptor */
	int fd;
	off_t off, end;
	const char *ubuf;
	size_t ulen, upos;
	/* progress */
	struct jb_registry *r;
	uint64_t done, total;
};


/* One request as it is (no 401 answered), the response in rs. */
int registry_perform(struct jb_registry *r, const char *method, const char *url, struct curl_slist *hdrs,
		     struct resp *rs, bool upload, int64_t upload_len, struct jb_error *err);
/* Answer a 401's challenge: r->authz set for the request made again. */
int registry_authenticate(struct jb_registry *r, const char *challenge, struct jb_error *err);
/* host's name without its port ("[v6]:port" -> "v6"); false when too long */
bool registry_host_name(const char *host, char name[256]);
