/* Layer unpacking: a layer tarball (plain, gzip or zstd) into a directory in
 * the form overlayfs stacks.  The layer is untrusted input: every path is
 * checked, every file is created relative to a descriptor of its parent
 * directory resolved inside the layer root, links are never followed out of
 * it, and device nodes are refused.  The uncompressed stream is hashed on
 * the way so that the caller can check it against the config's diff_id. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>

#include "oci-internal.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
#define OPAQUE_XATTR "trusted.overlay.opaque"

/* The uncompressed stream: a raw-format archive whose data is the tar, read
 * through the hash. */
struct raw {
	struct archive *a;
	EVP_MD_CTX *md;
	char buf[64 * 1024];
	uint64_t bytes;
	uint64_t max;          /* the tar's bytes may not exceed it */
	int error;             /* set when the decompressor failed, or over max */
	char msg[256];
};

static la_ssize_t raw_read(struct archive *tar, void *ud, const void **out)
{
	struct raw *r = ud;
	la_ssize_t n = archive_read_data(r->a, r->buf, sizeof r->buf);
	if (n < 0) {
		r->error = 1;
		snprintf(r->msg, sizeof r->msg, "%s", archive_error_string(r->a) ? archive_error_string(r->a) : "read error");
		archive_set_error(tar, EIO, "%s", r->msg);
		return -1;
	}
	EVP_DigestUpdate(r->md, r->buf, (size_t)n);
	r->bytes += (uint64_t)n;
	if (r->bytes > r->max) {
		r->error = EFBIG;
		snprintf(r->msg, sizeof r->msg, "it unpacks to more than %llu bytes (the bound on an image's layers)",
			 (unsigned long long)r->max);
		archive_set_error(tar, EFBIG, "%s", r->msg);
		return -1;
	}
	*out = r->buf;
	return n;
}

static int raw_open(struct raw *r, int fd, enum jb_oci_compression c, struct jb_error *err)
{
	r->a = archive_read_new();
	r->md = EVP_MD_CTX_new();
	if (!r->a || !r->md || !EVP_DigestInit_ex(r->md, EVP_sha256(), NULL))
		return jb_oom(err);
	if (c == JB_OCI_GZIP)
		archive_read_support_filter_gzip(r->a);
	else if (c == JB_OCI_ZSTD)
		archive_read_support_filter_zstd(r->a);
	else
		archive_read_support_filter_none(r->a);
	archive_read_support_format_raw(r->a);
	if (archive_read_open_fd(r->a, fd, 64 * 1024) != ARCHIVE_OK)
		return jb_err(err, EINVAL, "layer: %s", archive_error_string(r->a));
	struct archive_entry *e;
	int s = archive_read_next_header(r->a, &e);
	if (s != ARCHIVE_OK)
		return jb_err(err, EINVAL, "layer: %s", s == ARCHIVE_EOF ? "empty" : archive_error_string(r->a));
	/* the filter libarchive found must be the one the media type announced */
	int want = c == JB_OCI_GZIP ? ARCHIVE_FILTER_GZIP : c == JB_OCI_ZSTD ? ARCHIVE_FILTER_ZSTD : ARCHIVE_FILTER_NONE;
	if (archive_filter_code(r->a, 0) != want)
		return jb_err(err, EINVAL, "layer: not %s as its media type says (found: %s)",
			      c == JB_OCI_GZIP ? "gzip" : c == JB_OCI_ZSTD ? "zstd" : "an uncompressed tar",
			      archive_filter_name(r->a, 0));
	return 0;
}

static void raw_close(struct raw *r)
{
	if (r->a)
		archive_read_free(r->a);
	EVP_MD_CTX_free(r->md);
}

/* A layer path made relative and checked: not absolute, no "..", no NUL,
 * not too long ("" for the root itself). */
static int clean_path(const char *in, char *out, size_t outlen)
{
	char *c = NULL;
	if (!in || in[0] == '/' || jb_path_clean(in, &c, NULL) < 0)
		return -EINVAL;
	size_t n = strlen(c);
	int r = n < outlen ? 0 : -ENAMETOOLONG;
	if (r == 0)
		memcpy(out, c, n + 1);
	free(c);
	return r;
}

static int open_in_root(int root, const char *rel, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	int fd;
	do
		fd = (int)syscall(SYS_openat2, root, *rel ? rel : ".", &how, sizeof how);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

/* The parent directory of rel, made when missing (layers need not list
 * every directory), resolved inside root; *name points at the last
 * component of rel. */
static int open_parent(int root, char *rel, const char **name)
{
	char *slash = strrchr(rel, '/');
	*name = slash ? slash + 1 : rel;
	if (!slash)
		return open_in_root(root, "", O_PATH | O_DIRECTORY);
	*slash = 0;
	int fd = open_in_root(root, rel, O_PATH | O_DIRECTORY);
	if (fd == -ENOENT) {
		/* step by step: make the component in the directory resolved so
		 * far, then resolve the longer prefix inside root again */
		int cur = open_in_root(root, "", O_PATH | O_DIRECTORY);
		fd = cur;
		for (char *p = rel; cur >= 0;) {
			char *e = strchrnul(p, '/');
			char c = *e;
			*e = 0;
			if (mkdirat(cur, p, 0755) < 0 && errno != EEXIST)
				fd = -errno;
			else
				fd = open_in_root(root, rel, O_PATH | O_DIRECTORY);
			*e = c;
			close(cur);
			if (fd < 0 || !c)
				break;
			cur = fd;
			p = e + 1;
		}
	}
	*slash = '/';
	return fd;
}

static int set_meta(int dfd, const char *name, struct archive_entry *e, bool is_link)
{
	int fl = AT_SYMLINK_NOFOLLOW;
	if (fchownat(dfd, name, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e), fl) < 0 && errno != EPERM)
		return -errno;
	if (!is_link && fchmodat(dfd, name, archive_entry_mode(e) & 07777, 0) < 0)
		return -errno;
	struct timespec ts[2] = {
		{.tv_sec = archive_entry_mtime(e), .tv_nsec = archive_entry_mtime_nsec(e)},
		{.tv_sec = archive_entry_mtime(e), .tv_nsec = archive_entry_mtime_nsec(e)},
	};
	if (utimensat(dfd, name, ts, fl) < 0)
		return -errno;
	return 0;
}

static int set_xattrs(int fd, struct archive_entry *e)
{
	const char *k;
	const void *v;
	size_t n;
	archive_entry_xattr_reset(e);
	while (archive_entry_xattr_next(e, &k, &v, &n) == ARCHIVE_OK) {
		/* only what a container may carry: file capabilities and user data */
		if (strncmp(k, "security.capability", 19) && strncmp(k, "user.", 5))
			continue;
		if (fsetxattr(fd, k, v, n, 0) < 0 && errno != ENOTSUP)
			return -errno;
	}
	return 0;
}

static int write_file(struct archive *tar, int dfd, const char *name, struct archive_entry *e)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	const void *buf;
	size_t n;
	la_int64_t off;
	int r = 0, s;
	while ((s = archive_read_data_block(tar, &buf, &n, &off)) == ARCHIVE_OK) {
		if (n && (r = pwrite(fd, buf, n, off) == (ssize_t)n ? 0 : -EIO) < 0)
			break;
	}
	if (r == 0 && s != ARCHIVE_EOF)
		r = -EBADMSG;
	if (r == 0 && ftruncate(fd, archive_entry_size(e)) < 0)
		r = -errno;
	if (r == 0)
		r = set_xattrs(fd, e);
	close(fd);
	return r;
}

/* One entry; 0 or a negative errno with err naming the entry. */
static int unpack_entry(struct archive *tar, int root, struct archive_entry *e, struct jb_error *err)
{
	char rel[JB_PATH_MAX];
	const char *path = archive_entry_pathname(e);
	if (!path || clean_path(path, rel, sizeof rel) < 0)
		return jb_err(err, EPERM, "layer entry '%s': absolute or climbing out with '..'", path ? path : "");
	mode_t type = archive_entry_filetype(e);
	if (!*rel) {
		/* the layer's root: its metadata only */
		if (type != AE_IFDIR)
			return jb_err(err, EINVAL, "layer entry '%s': the root is not a directory", path);
		return 0;
	}
	if (type == AE_IFCHR || type == AE_IFBLK)
		return jb_err(err, EPERM, "layer entry '%s': device nodes are not allowed in a layer", path);
	const char *name;
	int dfd = open_parent(root, rel, &name);
	if (dfd < 0)
		return jb_err(err, -dfd, "layer entry '%s': its directory: %s", path, strerror(-dfd));
	int r = 0;
	if (!strcmp(name, WH_OPAQUE)) {
		/* the directory hides what lower layers have in it */
		int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || fsetxattr(fd, OPAQUE_XATTR, "y", 1, 0) < 0)
			r = -errno;
		if (fd >= 0)
			close(fd);
	} else if (!strncmp(name, WH_PREFIX, strlen(WH_PREFIX))) {
		const char *victim = name + strlen(WH_PREFIX);
		if (!*victim || !strcmp(victim, ".") || !strcmp(victim, ".."))
			r = -EINVAL;
		else if ((r = jb_remove_tree(dfd, victim)) == 0 && mknodat(dfd, victim, S_IFCHR | 0, makedev(0, 0)) < 0)
			r = -errno;
	} else {
		struct stat st;
		bool exists = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
		/* a directory entry over an existing directory only updates it */
		if (exists && !(type == AE_IFDIR && S_ISDIR(st.st_mode)))
			r = jb_remove_tree(dfd, name);
		if (r == 0) {
			const char *hl = archive_entry_hardlink(e);
			if (hl) {
				char target[JB_PATH_MAX];
				if (clean_path(hl, target, sizeof target) < 0 || !*target) {
					close(dfd);
					return jb_err(err, EPERM, "layer entry '%s': hard link to '%s' outside the layer",
						      path, hl);
				}
				const char *tname;
				int tfd = open_parent(root, target, &tname);
				if (tfd < 0)
					r = tfd;
				else if (linkat(tfd, tname, dfd, name, 0) < 0)
					r = -errno;
				if (tfd >= 0)
					close(tfd);
				close(dfd);
				if (r < 0)
					return jb_err(err, -r, "layer entry '%s': hard link to '%s': %s", path, hl,
						      strerror(-r));
				return 0;
			}
			switch (type) {
			case AE_IFDIR:
				if (!exists && mkdirat(dfd, name, 0700) < 0)
					r = -errno;
				if (r == 0) {
					int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
					r = fd < 0 ? -errno : set_xattrs(fd, e);
					if (fd >= 0)
						close(fd);
				}
				break;
			case AE_IFREG:
				r = write_file(tar, dfd, name, e);
				break;
			case AE_IFLNK:
				if (symlinkat(archive_entry_symlink(e) ? archive_entry_symlink(e) : "", dfd, name) < 0)
					r = -errno;
				break;
			case AE_IFIFO:
				if (mknodat(dfd, name, S_IFIFO | 0600, 0) < 0)
					r = -errno;
				break;
			default:
				close(dfd);
				return jb_err(err, EPERM, "layer entry '%s': a file type layers may not hold", path);
			}
			if (r == 0)
				r = set_meta(dfd, name, e, type == AE_IFLNK);
		}
	}
	close(dfd);
	if (r < 0)
		return jb_err(err, -r, "layer entry '%s': %s", path, r == -EBADMSG ? "truncated" : strerror(-r));
	return 0;
}

int jb_oci_layer_unpack(int blobfd, enum jb_oci_compression c, int dirfd, char diff_id[JB_OCI_DIGEST_MAX],
			uint64_t *budget, struct jb_error *err)
{
	struct raw raw = {.max = budget ? *budget : UINT64_MAX};
	uint64_t sizes = 0; /* the files' sizes, as their entries say */
	struct archive *tar = NULL;
	struct oci_utf8 u8;
	oci_utf8_begin(&u8);
	int r = raw_open(&raw, blobfd, c, err);
	if (r < 0)
		goto out;
	if (!(tar = archive_read_new())) {
		r = -ENOMEM;
		goto out;
	}
	archive_read_support_format_tar(tar);
	archive_read_support_filter_none(tar);
	if (archive_read_open(tar, &raw, NULL, raw_read, NULL) != ARCHIVE_OK) {
		r = jb_err(err, raw.error == EFBIG ? EFBIG : EINVAL, "layer: %s", raw.error ? raw.msg : archive_error_string(tar));
		goto out;
	}
	struct archive_entry *e;
	int s;
	while ((s = archive_read_next_header(tar, &e)) == ARCHIVE_OK || s == ARCHIVE_WARN) {
		la_int64_t size = archive_entry_size(e);
		sizes += size > 0 ? (uint64_t)size : 0;
		if (sizes > raw.max) {
			r = jb_err(err, EFBIG, "layer entry '%s': the layer unpacks to more than %llu bytes (the bound on an image's layers)",
				   archive_entry_pathname(e) ? archive_entry_pathname(e) : "", (unsigned long long)raw.max);
			goto out;
		}
		if ((r = unpack_entry(tar, dirfd, e, err)) < 0) {
			if (raw.error == EFBIG) /* the bound, not the entry */
				r = jb_err(err, EFBIG, "layer: %s", raw.msg);
			goto out;
		}
	}
	if (s != ARCHIVE_EOF) {
		r = jb_err(err, raw.error == EFBIG ? EFBIG : EINVAL, "layer: %s", raw.error ? raw.msg : archive_error_string(tar));
		goto out;
	}
	/* the tar's end: hash the padding after it too */
	const void *p;
	while (raw_read(tar, &raw, &p) > 0)
		;
	if (raw.error) {
		r = jb_err(err, raw.error == EFBIG ? EFBIG : EINVAL, "layer: %s", raw.msg);
		goto out;
	}
	if (budget)
		*budget -= sizes > raw.bytes ? sizes : raw.bytes;
	if (diff_id) {
		unsigned char md[32];
		unsigned int mdl = 0;
		EVP_DigestFinal_ex(raw.md, md, &mdl);
		oci_sha256_text(md, diff_id);
	}
out:
	if (tar)
		archive_read_free(tar);
	raw_close(&raw);
	oci_utf8_end(&u8);
	return r;
}
