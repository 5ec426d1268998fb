/* The site's image store: an OCI image layout directory whose blobs are
 * written through a check of their digest, so that nothing unverified is
 * ever found under a digest's name. */
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci-internal.h"

struct jb_oci_store {
	char *dir;
	int dfd;
	uint64_t max_unpacked; /* bytes one image's layers unpack to */
};

void jb_oci_store_set_max_unpacked(struct jb_oci_store *s, uint64_t bytes) { s->max_unpacked = bytes; }
uint64_t oci_store_max_unpacked(const struct jb_oci_store *s) { return s->max_unpacked; }

struct jb_oci_blob_writer {
	struct jb_oci_store *s;
	char digest[JB_OCI_DIGEST_MAX];
	int64_t size, written;
	int fd;
	char *tmp, *final;
	EVP_MD_CTX *md;
};

int jb_oci_store_open(const char *dir, struct jb_oci_store **ret, struct jb_error *err)
{
	char p[4096];
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return jb_err(err, errno, "%s: %s", dir, strerror(errno));
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int r = dfd < 0 ? -errno : jb_mkdirs_beneath(dfd, "blobs/sha256", 0755);
	if (dfd >= 0)
		close(dfd);
	if (r < 0)
		return jb_err(err, r, "%s/blobs/sha256: %s", dir, strerror(-r));
	close(r);
	snprintf(p, sizeof p, "%s/oci-layout", dir);
	if (access(p, F_OK) < 0) {
		static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
		FILE *f = fopen(p, "we");
		if (!f || fwrite(layout, 1, sizeof layout - 1, f) != sizeof layout - 1) {
			r = -errno;
			if (f)
				fclose(f);
			return jb_err(err, r ? r : EIO, "%s: cannot write", p);
		}
		if (fclose(f) != 0)
			return jb_err(err, errno, "%s: %s", p, strerror(errno));
	}
	struct jb_oci_store *s = calloc(1, sizeof *s);
	if (!s || !(s->dir = strdup(dir))) {
		free(s);
		return jb_oom(err);
	}
	s->max_unpacked = JB_OCI_MAX_UNPACKED;
	if ((s->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = -errno;
		free(s->dir);
		free(s);
		return jb_err(err, -r, "%s: %s", dir, strerror(-r));
	}
	*ret = s;
	return 0;
}

void jb_oci_store_close(struct jb_oci_store *s)
{
	if (!s)
		return;
	if (s->dfd >= 0)
		close(s->dfd);
	free(s->dir);
	free(s);
}

static char *blob_path(struct jb_oci_store *s, const char *digest)
{
	char *p = NULL;
	if (jb_oci_digest_check(digest) < 0 || strncmp(digest, "sha256:", 7))
		return NULL;
	if (asprintf(&p, "%s/blobs/sha256/%s", s->dir, digest + 7) < 0)
		return NULL;
	return p;
}

char *jb_oci_store_path(struct jb_oci_store *s, const char *digest)
{
	char *p = blob_path(s, digest);
	if (p && access(p, F_OK) < 0) {
		free(p);
		return NULL;
	}
	return p;
}

int jb_oci_blob_begin(struct jb_oci_store *s, const char *digest, int64_t size, struct jb_oci_blob_writer **ret,
		      struct jb_error *err)
{
	struct jb_oci_blob_writer *w = calloc(1, sizeof *w);
	if (!w)
		return jb_oom(err);
	if (digest && !(w->final = blob_path(s, digest))) {
		free(w);
		return jb_err(err, EINVAL, "%s: not a sha256 digest", digest);
	}
	w->s = s;
	w->size = size;
	w->fd = -1;
	snprintf(w->digest, sizeof w->digest, "%s", digest ? digest : "");
	if (asprintf(&w->tmp, "%s/blobs/sha256/.%s.XXXXXX", s->dir, digest ? digest + 7 : "new") < 0) {
		w->tmp = NULL;
		jb_oci_blob_abort(w);
		return jb_oom(err);
	}
	w->fd = mkostemp(w->tmp, O_CLOEXEC);
	if (w->fd < 0) {
		int e = errno;
		free(w->tmp);
		w->tmp = NULL;
		jb_oci_blob_abort(w);
		return jb_err(err, e, "%s: %s", s->dir, strerror(e));
	}
	w->md = EVP_MD_CTX_new();
	if (!w->md || !EVP_DigestInit_ex(w->md, EVP_sha256(), NULL)) {
		jb_oci_blob_abort(w);
		return jb_oom(err);
	}
	*ret = w;
	return 0;
}

int jb_oci_blob_write(struct jb_oci_blob_writer *w, const void *p, size_t n, struct jb_error *err)
{
	if (w->size >= 0 && (uint64_t)w->written + n > (uint64_t)w->size)
		return jb_err(err, EFBIG, "%s: more than the %lld bytes announced", w->digest, (long long)w->size);
	EVP_DigestUpdate(w->md, p, n);
	int r = jb_write_full(w->fd, p, n);
	if (r < 0)
		return jb_err(err, r, "%s: %s", w->digest, strerror(-r));
	w->written += (int64_t)n;
	return 0;
}

int jb_oci_blob_commit_as(struct jb_oci_blob_writer *w, char ret_digest[JB_OCI_DIGEST_MAX], struct jb_error *err)
{
	unsigned char md[32];
	unsigned int mdl = 0;
	char got[JB_OCI_DIGEST_MAX];
	int r = 0;
	EVP_DigestFinal_ex(w->md, md, &mdl);
	oci_sha256_text(md, got);
	const char *name = w->digest[0] ? w->digest : got;
	if (w->size >= 0 && w->written != w->size)
		r = jb_err(err, EIO, "%s: %lld bytes, %lld announced", name, (long long)w->written, (long long)w->size);
	else if (w->digest[0] && strcmp(got, w->digest))
		r = jb_err(err, EBADMSG, "blob %s: the bytes received hash to %s", w->digest, got);
	else if (!w->final && !(w->final = blob_path(w->s, got)))
		r = -ENOMEM;
	else if (fsync(w->fd) < 0)
		r = jb_err(err, errno, "%s: %s", name, strerror(errno));
	if (r == 0 && rename(w->tmp, w->final) < 0)
		r = jb_err(err, errno, "%s: %s", w->final, strerror(errno));
	if (r == 0) {
		free(w->tmp);
		w->tmp = NULL;
		if (ret_digest)
			strcpy(ret_digest, got);
	}
	jb_oci_blob_abort(w);
	return r;
}

int jb_oci_blob_commit(struct jb_oci_blob_writer *w, struct jb_error *err) { return jb_oci_blob_commit_as(w, NULL, err); }

void jb_oci_blob_abort(struct jb_oci_blob_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp)
		unlink(w->tmp);
	free(w->tmp);
	free(w->final);
	EVP_MD_CTX_free(w->md);
	free(w);
}

const char *oci_store_dir(const struct jb_oci_store *s) { return s->dir; }
int oci_store_fd(const struct jb_oci_store *s) { return s->dfd; }
