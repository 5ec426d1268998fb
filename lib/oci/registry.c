/* The OCI Distribution API, client side (distribution-spec v1.1): manifests
 * by tag and digest, blobs pulled through the store's digest check, blobs
 * pushed monolithically or in chunks; a 401 answered by registry_auth.c.
 * One libcurl handle per registry, so connections are kept. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "jumbo/config.h"
#include "jumbo/http.h"
#include "registry-internal.h"

#define ACCEPT_MANIFESTS                                                                                         \
	"Accept: " JB_OCI_MT_MANIFEST ", " JB_OCI_MT_INDEX ", " JB_DOCKER_MT_MANIFEST ", " JB_DOCKER_MT_LIST
#define MAX_ERROR_BODY (64 * 1024)

bool registry_host_name(const char *host, char name[256])
{
	size_t n;
	if (host[0] == '[') {
		n = strcspn(host + 1, "]");
		if (host[1 + n] != ']' || n >= 256)
			return false;
		memcpy(name, host + 1, n);
	} else {
		const char *colon = strchr(host, ':');
		/* a bare IPv6 address has more than one colon: no port then */
		n = colon && strchr(colon + 1, ':') ? strlen(host) : strcspn(host, ":");
		if (n >= 256)
			return false;
		memcpy(name, host, n);
	}
	name[n] = 0;
	return true;
}

bool jb_host_is_loopback(const char *host)
{
	char name[256];
	if (!registry_host_name(host, name))
		return false;
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, name, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, name, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return !strcasecmp(name, "localhost");
}

/* A token realm's own credentials: its [registry HOST] section's. */
static void config_creds(const void *ud, const char *host, const char **user, const char **password)
{
	const struct jb_registry_conf *rc = jb_config_registry(ud, host);
	*user = rc ? rc->user : NULL;
	*password = rc ? rc->password : NULL;
}

void jb_registry_opts_for(const struct jb_config *c, const char *host, const char *user, const char *password,
			  bool insecure, struct jb_registry_opts *o)
{
	memset(o, 0, sizeof *o);
	const struct jb_registry_conf *rc = c && host ? jb_config_registry(c, host) : NULL;
	if (user) {
		o->user = user;
		o->password = password;
	} else if (rc) {
		o->user = rc->user;
		o->password = rc->password;
	}
	o->ca_file = rc ? rc->ca : NULL;
	o->insecure = insecure || (rc && rc->insecure);
	if (c) {
		o->creds_for = config_creds;
		o->creds_ud = c;
	}
}

int jb_registry_open(const char *host, const struct jb_registry_opts *o, struct jb_registry **ret,
		     struct jb_error *err)
{
	jb_http_init();
	if (!*host || strlen(host) >= sizeof((struct jb_registry *)0)->host || strpbrk(host, "/?#@ "))
		return jb_err(err, EINVAL, "'%s' is not a registry host", host);
	struct jb_registry *r = calloc(1, sizeof *r);
	if (!r)
		return jb_oom(err);
	snprintf(r->host, sizeof r->host, "%s", host);
	bool plain = o && o->insecure ? true : jb_host_is_loopback(host);
	snprintf(r->base, sizeof r->base, "%s://%s", plain ? "http" : "https", host);
	if (o && o->user && !(r->user = strdup(o->user)))
		goto nomem;
	if (o && o->password && !(r->password = strdup(o->password)))
		goto nomem;
	if (o && o->ca_file && !(r->ca_file = strdup(o->ca_file)))
		goto nomem;
	r->timeout_s = o && o->timeout_s ? o->timeout_s : 30;
	if (o) {
		r->insecure = o->insecure;
		r->creds_for = o->creds_for;
		r->creds_ud = o->creds_ud;
		r->progress = o->progress;
		r->progress_ud = o->progress_ud;
		r->cancelled = o->cancelled;
		r->cancel_ud = o->cancel_ud;
	}
	if (!(r->curl = curl_easy_init()))
		goto nomem;
	*ret = r;
	return 0;
nomem:
	jb_registry_close(r);
	return jb_oom(err);
}

void jb_registry_close(struct jb_registry *r)
{
	if (!r)
		return;
	if (r->curl)
		curl_easy_cleanup(r->curl);
	free(r->user);
	if (r->password)
		explicit_bzero(r->password, strlen(r->password));
	free(r->password);
	free(r->ca_file);
	free(r->authz);
	free(r);
}

const char *jb_registry_host(const struct jb_registry *r) { return r->host; }

/* ---- libcurl callbacks ---- */

static void trim_copy(char *dst, size_t n, const char *src, size_t len)
{
	while (len && (src[len - 1] == '\r' || src[len - 1] == '\n' || src[len - 1] == ' '))
		len--;
	while (len && *src == ' ')
		src++, len--;
	if (len >= n)
		len = n - 1;
	memcpy(dst, src, len);
	dst[len] = 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct resp *rs = ud;
	size_t len = size * n;
	if (len >= 5 && !strncmp(p, "HTTP/", 5)) {
		/* a new response (after a redirect or a 100): forget the last one's */
		rs->ctype[0] = rs->digest[0] = rs->location[0] = rs->challenge[0] = 0;
		rs->clen = -1;
		return len;
	}
	const char *colon = memchr(p, ':', len);
	if (!colon)
		return len;
	size_t klen = (size_t)(colon - p);
	const char *v = colon + 1;
	size_t vlen = len - klen - 1;
#define IS(name) (klen == sizeof(name) - 1 && !strncasecmp(p, name, klen))
	if (IS("Content-Type"))
		trim_copy(rs->ctype, sizeof rs->ctype, v, vlen);
	else if (IS("Docker-Content-Digest"))
		trim_copy(rs->digest, sizeof rs->digest, v, vlen);
	else if (IS("Location"))
		trim_copy(rs->location, sizeof rs->location, v, vlen);
	else if (IS("WWW-Authenticate"))
		trim_copy(rs->challenge, sizeof rs->challenge, v, vlen);
	else if (IS("Content-Length")) {
		char num[32];
		trim_copy(num, sizeof num, v, vlen);
		rs->clen = strtoll(num, NULL, 10);
	}
#undef IS
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct resp *rs = ud;
	size_t len = size * n;
	if (rs->w && rs->status == 0)
		curl_easy_getinfo(rs->r->curl, CURLINFO_RESPONSE_CODE, &rs->status);
	if (rs->w && rs->status == 200) {
		if (jb_oci_blob_write(rs->w, p, len, &rs->werr) < 0) {
			rs->wfail = 1;
			return 0; /* ends the transfer */
		}
		rs->done += len;
		if (rs->r->progress)
			rs->r->progress(rs->r->progress_ud, rs->done, rs->total);
		return len;
	}
	/* into memory: manifests, tokens, error bodies */
	return jb_buf_sink(p, 1, len, &rs->body);
}

static size_t on_upload(char *p, size_t size, size_t n, void *ud)
{
	struct resp *rs = ud;
	size_t want = size * n;
	if (rs->ubuf) {
		size_t k = JB_MIN(want, rs->ulen - rs->upos);
		memcpy(p, rs->ubuf + rs->upos, k);
		rs->upos += k;
		return k;
	}
	if (rs->off >= rs->end)
		return 0;
	size_t k = (size_t)JB_MIN((off_t)want, rs->end - rs->off);
	ssize_t got = pread(rs->fd, p, k, rs->off);
	if (got <= 0)
		return CURL_READFUNC_ABORT;
	rs->off += got;
	rs->done += (uint64_t)got;
	if (rs->r->progress)
		rs->r->progress(rs->r->progress_ud, rs->done, rs->total);
	return (size_t)got;
}

/* ---- errors ---- */

/* The registry's own words, from its {"errors":[{"code","message"}]} body. */
static void registry_words(const struct resp *rs, char *out, size_t n)
{
	out[0] = 0;
	if (!rs->body.len)
		return;
	json_t *j = json_loadb((const char *)rs->body.p, rs->body.len, 0, NULL);
	json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
	const char *code = json_string_value(json_object_get(e0, "code"));
	const char *msg = json_string_value(json_object_get(e0, "message"));
	if (code || msg)
		snprintf(out, n, "%s%s%s", code ? code : "", code && msg ? ": " : "", msg ? msg : "");
	json_decref(j);
}

static int http_error(struct jb_registry *r, const struct resp *rs, const char *what, struct jb_error *err)
{
	char words[300];
	registry_words(rs, words, sizeof words);
	int code = rs->status == 404 ? ENOENT : rs->status == 401 || rs->status == 403 ? EACCES : EIO;
	return jb_err(err, code, "registry %s: %s: HTTP %ld%s%s", r->host, what, rs->status, words[0] ? ", " : "", words);
}

/* ---- requests ---- */

static int xferinfo(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	struct jb_registry *r = ud;
	return r->cancelled(r->cancel_ud) ? 1 : 0;
}

int registry_perform(struct jb_registry *r, const char *method, const char *url, struct curl_slist *hdrs,
		     struct resp *rs, bool upload, int64_t upload_len, struct jb_error *err)
{
	CURL *c = r->curl;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	/* a stalled transfer ends; a slow one does not */
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, r->timeout_s);
	if (r->cancelled) {
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xferinfo);
		curl_easy_setopt(c, CURLOPT_XFERINFODATA, r);
	}
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "jumbo");
	if (r->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, r->ca_file);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, rs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, rs);
	struct curl_slist *h = NULL;
	for (struct curl_slist *x = hdrs; x; x = x->next)
		h = curl_slist_append(h, x->data);
	if (r->authz)
		h = curl_slist_append(h, r->authz);
	if (upload)
		h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (upload) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_upload);
		curl_easy_setopt(c, CURLOPT_READDATA, rs);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)upload_len);
		if (strcmp(method, "PUT"))
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	} else if (strcmp(method, "GET"))
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	rs->status = 0;
	rs->clen = -1;
	CURLcode cc = curl_easy_perform(c);
	curl_slist_free_all(h);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rs->status);
	if (rs->wfail) {
		*err = rs->werr;
		return -(rs->werr.code ? rs->werr.code : EIO);
	}
	if (rs->body.oom)
		return jb_err(err, E2BIG, "registry %s: the answer to %s is larger than %zu bytes", r->host, method,
			      rs->body.limit);
	if (cc == CURLE_ABORTED_BY_CALLBACK)
		return jb_err(err, ECANCELED, "registry %s: %s %s: cancelled", r->host, method, url);
	if (cc != CURLE_OK)
		return jb_err(err, cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ? ECONNREFUSED : EIO,
			      "registry %s: %s", r->host, curl_easy_strerror(cc));
	return 0;
}

/* A request to the registry with the credentials it asks for: on a 401 the
 * challenge is answered once and the request made again. */
static int request(struct jb_registry *r, const char *method, const char *url, struct curl_slist *hdrs,
		   struct resp *rs, bool upload, int64_t upload_len, struct jb_error *err)
{
	off_t off0 = rs->off;
	uint64_t done0 = rs->done;
	int rc = registry_perform(r, method, url, hdrs, rs, upload, upload_len, err);
	if (rc < 0 || rs->status != 401)
		return rc;
	if (!rs->challenge[0])
		return http_error(r, rs, "unauthorized, and no challenge to answer", err);
	char challenge[sizeof rs->challenge];
	strcpy(challenge, rs->challenge);
	if ((rc = registry_authenticate(r, challenge, err)) < 0)
		return rc;
	jb_buf_free(&rs->body);
	rs->off = off0;
	rs->upos = 0;
	rs->done = done0;
	return registry_perform(r, method, url, hdrs, rs, upload, upload_len, err);
}

static int check_repo(const char *repo, struct jb_error *err)
{
	/* distribution-spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+(...)*)* */
	size_t n = strlen(repo);
	if (!n || n > 255 || repo[0] == '/' || repo[n - 1] == '/' || strstr(repo, "//") || strstr(repo, ".."))
		return jb_err(err, EINVAL, "'%s' is not a repository name", repo);
	for (const char *p = repo; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("._-/", *p)))
			return jb_err(err, EINVAL, "'%s' is not a repository name (lowercase letters, digits, . _ - /)",
				      repo);
	return 0;
}

static int check_reference(const char *ref, struct jb_error *err)
{
	if (jb_oci_digest_check(ref) == 0)
		return 0;
	size_t n = strlen(ref);
	if (!n || n > 128 || ref[0] == '.' || ref[0] == '-')
		return jb_err(err, EINVAL, "'%s' is neither a tag nor a digest", ref);
	for (const char *p = ref; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("._-", *p)))
			return jb_err(err, EINVAL, "'%s' is neither a tag nor a digest", ref);
	return 0;
}

int jb_registry_ping(struct jb_registry *r, struct jb_error *err)
{
	char url[400];
	snprintf(url, sizeof url, "%s/v2/", r->base);
	struct resp rs = {.body = {.limit = MAX_ERROR_BODY}, .r = r};
	int rc = request(r, "GET", url, NULL, &rs, false, 0, err);
	if (rc == 0 && rs.status != 200)
		rc = http_error(r, &rs, "/v2/", err);
	jb_buf_free(&rs.body);
	return rc;
}

int jb_registry_manifest_get(struct jb_registry *r, const char *repo, const char *ref, char **ret_buf,
			     size_t *ret_len, char **ret_mt, char ret_digest[JB_OCI_DIGEST_MAX], struct jb_error *err)
{
	int rc;
	if ((rc = check_repo(repo, err)) < 0 || (rc = check_reference(ref, err)) < 0)
		return rc;
	char url[800];
	snprintf(url, sizeof url, "%s/v2/%s/manifests/%s", r->base, repo, ref);
	struct curl_slist h = {.data = (char *)ACCEPT_MANIFESTS};
	struct resp rs = {.body = {.limit = JB_OCI_MAX_DOC}, .r = r};
	rc = request(r, "GET", url, &h, &rs, false, 0, err);
	if (rc == 0 && rs.status != 200) {
		char what[600];
		snprintf(what, sizeof what, "%s%s%s", repo, jb_oci_digest_check(ref) == 0 ? "@" : ":", ref);
		rc = http_error(r, &rs, what, err);
	}
	if (rc < 0) {
		jb_buf_free(&rs.body);
		return rc;
	}
	char got[JB_OCI_DIGEST_MAX];
	jb_oci_digest_of(rs.body.p ? (const char *)rs.body.p : "", rs.body.len, got);
	/* what we hold must be what was asked for, and what the registry says */
	if (jb_oci_digest_check(ref) == 0 && strcmp(ref, got))
		rc = jb_err(err, EBADMSG, "registry %s: %s@%s: the manifest sent hashes to %s", r->host, repo, ref, got);
	else if (rs.digest[0] && !strncmp(rs.digest, "sha256:", 7) && strcmp(rs.digest, got))
		rc = jb_err(err, EBADMSG, "registry %s: %s:%s: the manifest sent hashes to %s, not to the %s announced",
			    r->host, repo, ref, got, rs.digest);
	if (rc < 0) {
		jb_buf_free(&rs.body);
		return rc;
	}
	char *mt = strdup(rs.ctype);
	if (!mt) {
		jb_buf_free(&rs.body);
		return jb_oom(err);
	}
	char *semi = strchr(mt, ';');
	if (semi)
		*semi = 0;
	*ret_len = rs.body.len;
	*ret_buf = rs.body.p ? jb_buf_take(&rs.body) : strdup("");
	*ret_mt = mt;
	strcpy(ret_digest, got);
	return 0;
}

int jb_registry_blob_exists(struct jb_registry *r, const char *repo, const char *digest, struct jb_error *err)
{
	int rc;
	if ((rc = check_repo(repo, err)) < 0)
		return rc;
	if (jb_oci_digest_check(digest) < 0)
		return jb_err(err, EINVAL, "'%s' is not a digest", digest);
	char url[800];
	snprintf(url, sizeof url, "%s/v2/%s/blobs/%s", r->base, repo, digest);
	struct resp rs = {.body = {.limit = MAX_ERROR_BODY}, .r = r};
	rc = request(r, "HEAD", url, NULL, &rs, false, 0, err);
	jb_buf_free(&rs.body);
	if (rc < 0)
		return rc;
	if (rs.status == 200)
		return 1;
	if (rs.status == 404)
		return 0;
	return http_error(r, &rs, digest, err);
}

int jb_registry_blob_get(struct jb_registry *r, const char *repo, const struct jb_oci_desc *d,
			 struct jb_oci_store *s, struct jb_error *err)
{
	int rc;
	if ((rc = check_repo(repo, err)) < 0)
		return rc;
	struct jb_oci_blob_writer *w = NULL;
	if ((rc = jb_oci_blob_begin(s, d->digest, d->size, &w, err)) < 0)
		return rc;
	char url[800];
	snprintf(url, sizeof url, "%s/v2/%s/blobs/%s", r->base, repo, d->digest);
	struct resp rs = {.body = {.limit = MAX_ERROR_BODY}, .r = r, .w = w, .total = d->size > 0 ? (uint64_t)d->size : 0};
	rc = request(r, "GET", url, NULL, &rs, false, 0, err);
	if (rc == 0 && rs.status != 200)
		rc = http_error(r, &rs, d->digest, err);
	jb_buf_free(&rs.body);
	if (rc < 0) {
		jb_oci_blob_abort(w);
		return rc;
	}
	return jb_oci_blob_commit(w, err);
}

/* An upload location made absolute (registries may answer with a path). */
static int absolute(struct jb_registry *r, const char *loc, char *out, size_t n, struct jb_error *err)
{
	if (!*loc)
		return jb_err(err, EIO, "registry %s: an upload without a Location", r->host);
	if (!strncmp(loc, "http://", 7) || !strncmp(loc, "https://", 8))
		snprintf(out, n, "%s", loc);
	else if (loc[0] == '/')
		snprintf(out, n, "%s%s", r->base, loc);
	else
		return jb_err(err, EIO, "registry %s: an upload Location jumbo cannot follow: %.80s", r->host, loc);
	return 0;
}

int jb_registry_blob_put(struct jb_registry *r, const char *repo, const char *digest, int fd, int64_t size,
			 size_t chunk, const char *mount_from, struct jb_error *err)
{
	int rc;
	if ((rc = check_repo(repo, err)) < 0)
		return rc;
	if (jb_oci_digest_check(digest) < 0)
		return jb_err(err, EINVAL, "'%s' is not a digest", digest);
	if ((rc = jb_registry_blob_exists(r, repo, digest, err)) != 0)
		return rc < 0 ? rc : JB_BLOB_PRESENT; /* already there: nothing to send */
	char url[2600], loc[2400];
	struct resp rs = {.body = {.limit = MAX_ERROR_BODY}, .r = r};
	if (mount_from && check_repo(mount_from, NULL) == 0 && strcmp(mount_from, repo)) {
		/* the registry has it in another repository: mounting it there costs
		 * no bytes (201); a registry that will not mount starts an upload (202) */
		char *ed = curl_easy_escape(r->curl, digest, 0);
		snprintf(url, sizeof url, "%s/v2/%s/blobs/uploads/?mount=%s&from=%s", r->base, repo, ed, mount_from);
		curl_free(ed);
		rc = request(r, "POST", url, NULL, &rs, false, 0, err);
		if (rc == 0 && rs.status == 201) {
			jb_buf_free(&rs.body);
			return JB_BLOB_MOUNTED;
		}
	} else {
		snprintf(url, sizeof url, "%s/v2/%s/blobs/uploads/", r->base, repo);
		rc = request(r, "POST", url, NULL, &rs, false, 0, err);
	}
	if (rc == 0 && rs.status != 202)
		rc = http_error(r, &rs, "starting an upload", err);
	if (rc == 0)
		rc = absolute(r, rs.location, loc, sizeof loc, err);
	jb_buf_free(&rs.body);
	if (rc < 0)
		return rc;
	struct curl_slist ct = {.data = (char *)"Content-Type: application/octet-stream"};
	off_t off = 0;
	uint64_t done = 0;
	if (chunk && (uint64_t)size > chunk) {
		/* PATCH chunk by chunk, each answered with the next location */
		while (off < size) {
			off_t end = JB_MIN(size, off + (off_t)chunk);
			char range[80];
			snprintf(range, sizeof range, "Content-Range: %lld-%lld", (long long)off, (long long)end - 1);
			struct curl_slist h2 = {.data = range}, h1 = {.data = ct.data, .next = &h2};
			struct resp ps = {.body = {.limit = MAX_ERROR_BODY}, .r = r, .fd = fd, .off = off, .end = end,
					  .done = done, .total = (uint64_t)size};
			rc = request(r, "PATCH", loc, &h1, &ps, true, end - off, err);
			if (rc == 0 && ps.status != 202)
				rc = http_error(r, &ps, "sending a chunk", err);
			if (rc == 0)
				rc = absolute(r, ps.location, loc, sizeof loc, err);
			jb_buf_free(&ps.body);
			if (rc < 0)
				return rc;
			done = ps.done;
			off = end;
		}
	}
	/* the closing PUT carries the digest and the rest of the bytes (all of
	 * them when monolithic) */
	char *ed = curl_easy_escape(r->curl, digest, 0);
	snprintf(url, sizeof url, "%s%sdigest=%s", loc, strchr(loc, '?') ? "&" : "?", ed);
	curl_free(ed);
	struct resp ps = {.body = {.limit = MAX_ERROR_BODY}, .r = r, .fd = fd, .off = off, .end = size, .done = done,
			  .total = (uint64_t)size};
	rc = request(r, "PUT", url, &ct, &ps, true, size - off, err);
	if (rc == 0 && ps.status != 201)
		rc = http_error(r, &ps, digest, err);
	jb_buf_free(&ps.body);
	return rc;
}

int jb_registry_manifest_put(struct jb_registry *r, const char *repo, const char *ref, const char *buf, size_t len,
			     const char *media_type, char ret_digest[JB_OCI_DIGEST_MAX], struct jb_error *err)
{
	int rc;
	if ((rc = check_repo(repo, err)) < 0 || (rc = check_reference(ref, err)) < 0)
		return rc;
	char url[800], ct[300], d[JB_OCI_DIGEST_MAX];
	jb_oci_digest_of(buf, len, d);
	if (jb_oci_digest_check(ref) == 0 && strcmp(ref, d))
		return jb_err(err, EINVAL, "a manifest put under %s hashes to %s", ref, d);
	snprintf(url, sizeof url, "%s/v2/%s/manifests/%s", r->base, repo, ref);
	snprintf(ct, sizeof ct, "Content-Type: %s", media_type);
	struct curl_slist h = {.data = ct};
	struct resp rs = {.body = {.limit = MAX_ERROR_BODY}, .r = r, .ubuf = buf, .ulen = len};
	rc = request(r, "PUT", url, &h, &rs, true, (int64_t)len, err);
	if (rc == 0 && rs.status != 201)
		rc = http_error(r, &rs, ref, err);
	if (rc == 0 && rs.digest[0] && strcmp(rs.digest, d))
		rc = jb_err(err, EBADMSG, "registry %s: stored the manifest as %s, jumbo sent %s", r->host, rs.digest, d);
	jb_buf_free(&rs.body);
	if (rc == 0 && ret_digest)
		strcpy(ret_digest, d);
	return rc;
}

int jb_registry_manifest_delete(struct jb_registry *r, const char *repo, const char *digest, struct jb_error *err)
{
	int rc;
	if ((rc = check_repo(repo, err)) < 0)
		return rc;
	if (jb_oci_digest_check(digest) < 0)
		return jb_err(err, EINVAL, "a manifest is deleted by digest, not by '%s'", digest);
	char url[800];
	snprintf(url, sizeof url, "%s/v2/%s/manifests/%s", r->base, repo, digest);
	struct resp rs = {.body = {.limit = MAX_ERROR_BODY}, .r = r};
	rc = request(r, "DELETE", url, NULL, &rs, false, 0, err);
	if (rc == 0 && rs.status != 202)
		rc = http_error(r, &rs, digest, err);
	jb_buf_free(&rs.body);
	return rc;
}

int jb_registry_tags(struct jb_registry *r, const char *repo, char ***ret, size_t *ret_n, struct jb_error *err)
{
	int rc;
	if ((rc = check_repo(repo, err)) < 0)
		return rc;
	char url[800];
	snprintf(url, sizeof url, "%s/v2/%s/tags/list?n=10000", r->base, repo);
	struct resp rs = {.body = {.limit = JB_OCI_MAX_DOC}, .r = r};
	rc = request(r, "GET", url, NULL, &rs, false, 0, err);
	if (rc == 0 && rs.status != 200)
		rc = http_error(r, &rs, repo, err);
	json_t *j = rc == 0 ? json_loadb(rs.body.p ? (const char *)rs.body.p : "", rs.body.len, 0, NULL) : NULL;
	jb_buf_free(&rs.body);
	if (rc < 0)
		return rc;
	json_t *tags = json_object_get(j, "tags");
	if (!j || (!json_is_array(tags) && !json_is_null(tags) && tags)) {
		json_decref(j);
		return jb_err(err, EBADMSG, "registry %s: %s: a tag list that is not one", r->host, repo);
	}
	size_t n = json_array_size(tags), k = 0;
	char **v = calloc(n + 1, sizeof *v);
	for (size_t i = 0; v && i < n; i++) {
		const char *t = json_string_value(json_array_get(tags, i));
		if (t && check_reference(t, NULL) == 0 && !(v[k++] = strdup(t))) {
			jb_oci_strv_free(v);
			v = NULL;
		}
	}
	json_decref(j);
	if (!v)
		return jb_oom(err);
	*ret = v;
	*ret_n = k;
	return 0;
}
