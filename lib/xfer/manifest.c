/* Manifests: what the sender offers (walking local trees or a data root) and
 * what the receiver accepts (validated, placed under its destination). */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "xfer-internal.h"

#define MAX_DEPTH 256

/* Path order in which a directory precedes its contents and '/' sorts first:
 * the order a sorted depth-first walk produces.  Receivers require it
 * strictly increasing, which also rules out duplicate names. */
static int path_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned ca = (unsigned char)*a, cb = (unsigned char)*b;
		if (ca == cb) {
			if (!ca)
				return 0;
			continue;
		}
		if (!ca)
			return -1;
		if (!cb)
			return 1;
		if (ca == '/')
			return -1;
		if (cb == '/')
			return 1;
		return ca < cb ? -1 : 1;
	}
}

static int open_src(struct session *s, const char *src, int flags)
{
	if (s->src_beneath)
		return jb_open_beneath(s->srcdir, src, flags, 0);
	int fd = openat(s->srcdir, src, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int add_entry(struct session *s, const char *mpath, const char *src, const struct stat *st,
		     struct jb_error *err)
{
	struct jb_wire_entry e = {
		.type = S_ISDIR(st->st_mode) ? JB_ENTRY_DIR : JB_ENTRY_FILE,
		.size = S_ISDIR(st->st_mode) ? 0 : (uint64_t)st->st_size,
		.mode = st->st_mode & 07777,
		.mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec,
	};
	if (strlen(mpath) >= JB_PATH_MAX)
		return jb_err(err, ENAMETOOLONG, "%s: path too long", src);
	strcpy(e.path, mpath);
	int r = session_add_file(s, &e, src);
	if (r == -E2BIG)
		return jb_err(err, E2BIG, "too many files (limit %u per transfer)", JB_WIRE_MAX_FILES);
	return r;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int walk(struct session *s, const char *src, const char *mpath, int depth, struct jb_error *err)
{
	if (depth > MAX_DEPTH)
		return jb_err(err, ELOOP, "%s: directory tree deeper than %d", src, MAX_DEPTH);
	int fd = open_src(s, src, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return jb_err(err, -fd, "%s: %s", src, strerror(-fd));
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			char **nn = realloc(names, cap * sizeof *nn);
			if (!nn) {
				r = -ENOMEM;
				goto out;
			}
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name))) {
			r = -ENOMEM;
			goto out;
		}
		n++;
	}
	if (n) /* qsort with a null array is undefined, even for n = 0 */
		qsort(names, n, sizeof *names, name_cmp);
	for (size_t i = 0; i < n && r == 0; i++) {
		struct stat st;
		if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* vanished while we looked */
		char *csrc, *cm;
		if (asprintf(&csrc, "%s/%s", src, names[i]) < 0)
			goto oom;
		if (asprintf(&cm, "%s/%s", mpath, names[i]) < 0) {
			free(csrc);
			goto oom;
		}
		if (S_ISREG(st.st_mode)) {
			r = add_entry(s, cm, csrc, &st, err);
		} else if (S_ISDIR(st.st_mode)) {
			r = add_entry(s, cm, csrc, &st, err);
			if (r == 0)
				r = walk(s, csrc, cm, depth + 1, err);
		} else {
			jb_log(JB_LOG_WARN, "%s: skipping %s", csrc, S_ISLNK(st.st_mode) ? "symbolic link" : "special file");
		}
		free(csrc);
		free(cm);
		continue;
	oom:
		r = -ENOMEM;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return r;
}

static int add_top(struct session *s, const char *src, const char *top, bool recursive, struct jb_error *err)
{
	int fd = open_src(s, src, O_PATH);
	if (fd < 0) {
		if (fd == -EXDEV || fd == -ELOOP)
			return jb_err(err, EACCES, "%s: path escapes the data root", src);
		return jb_err(err, -fd, "%s: %s", *src ? src : "/", strerror(-fd));
	}
	struct stat st;
	int r = fstat(fd, &st);
	close(fd);
	if (r < 0)
		return jb_err(err, errno, "%s: %s", src, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		if (!recursive)
			return jb_err(err, EISDIR, "%s: is a directory (use -r)", *src ? src : "/");
		if ((r = add_entry(s, top, src, &st, err)) < 0)
			return r;
		return walk(s, *src ? src : ".", top, 0, err);
	}
	if (!S_ISREG(st.st_mode))
		return jb_err(err, EINVAL, "%s: not a regular file or directory", src);
	return add_entry(s, top, src, &st, err);
}

int manifest_add_local(struct session *s, const char *src, bool recursive, struct jb_error *err)
{
	char *copy = strdup(src);
	if (!copy)
		return -ENOMEM;
	size_t l = strlen(copy);
	while (l > 1 && copy[l - 1] == '/')
		copy[--l] = 0;
	char *base = basename(copy);
	int r;
	if (!strcmp(base, ".") || !strcmp(base, "..") || !strcmp(base, "/")) {
		char *rp = realpath(src, NULL);
		char *b2 = rp ? basename(rp) : NULL;
		if (!b2 || !*b2 || !strcmp(b2, "/"))
			r = jb_err(err, EINVAL, "%s: cannot name a top directory for it; name the directory itself", src);
		else
			r = add_top(s, src, b2, recursive, err);
		free(rp);
	} else {
		r = add_top(s, src, base, recursive, err);
	}
	free(copy);
	return r;
}

int manifest_add_beneath(struct session *s, int rootfd, const char *rel, bool recursive, struct jb_error *err)
{
	s->srcdir = rootfd;
	s->src_beneath = true;
	const char *slash = strrchr(rel, '/');
	const char *top = slash ? slash + 1 : *rel ? rel : s->origin;
	return add_top(s, rel, top, recursive, err);
}

static int xfile_cmp(const void *a, const void *b)
{
	return path_cmp(((const struct xfile *)a)->path, ((const struct xfile *)b)->path);
}
int manifest_sort(struct session *s, struct jb_error *err)
{
	if (s->nfiles)
		qsort(s->files, s->nfiles, sizeof *s->files, xfile_cmp);
	for (size_t i = 1; i < s->nfiles; i++)
		if (!path_cmp(s->files[i - 1].path, s->files[i].path))
			return jb_err(err, EEXIST, "two sources would both arrive as '%s'", s->files[i].path);
	return 0;
}

/* Entries per FILES frame: a frame is used only once it has arrived whole,
 * and a new connection's first round trip carries about ten segments (14
 * KiB).  Small frames let the receiver answer the first files while the
 * rest of a large manifest is still on its way. */
#define MANIFEST_FRAME (12u << 10)

int manifest_send(struct session *s, struct jb_error *err)
{
	struct jb_buf *b = &s->ctl->out;
	size_t i = 0;
	while (i < s->nfiles) {
		size_t mark = jb_frame_begin(b, JB_MSG_FILES);
		jb_buf_u32(b, (uint32_t)i);
		size_t cpos = b->len;
		jb_buf_u32(b, 0);
		uint32_t count = 0, budget = MANIFEST_FRAME;
		while (i < s->nfiles) {
			struct xfile *f = &s->files[i];
			size_t need = jb_wire_entry_size(f->path);
			if (need > budget)
				break;
			budget -= (uint32_t)need;
			jb_buf_u8(b, f->type);
			jb_buf_str(b, f->path);
			jb_buf_u64(b, f->size);
			jb_buf_u32(b, f->mode);
			jb_buf_u64(b, (uint64_t)f->mtime_ns);
			count++;
			i++;
		}
		if (!b->oom) {
			b->p[cpos] = (uint8_t)(count >> 24);
			b->p[cpos + 1] = (uint8_t)(count >> 16);
			b->p[cpos + 2] = (uint8_t)(count >> 8);
			b->p[cpos + 3] = (uint8_t)count;
		}
		jb_frame_end(b, mark);
		int r = ctl_send(s->ctl, err);
		if (r < 0)
			return r;
	}
	size_t mark = jb_frame_begin(b, JB_MSG_FILES_END);
	jb_buf_u32(b, (uint32_t)s->nfiles);
	jb_buf_u64(b, s->bytes_total);
	jb_frame_end(b, mark);
	return ctl_send(s->ctl, err); /* the rest goes while this end waits for answers */
}

static bool canonical(const char *p)
{
	char *c = NULL;
	if (jb_path_clean(p, &c, NULL) < 0)
		return false;
	bool ok = *c && !strcmp(c, p);
	free(c);
	return ok;
}

/* One FILES frame: validate its entries and add them.  A single source
 * placed under a new name (rename_top) has its first path component
 * replaced entry by entry; every entry must then share that component. */
int manifest_take(struct session *s, const struct jb_msg *m, struct jb_error *err)
{
	if (m->u.files.first != s->nfiles)
		return jb_err(err, EBADMSG, "%s: file list out of order", s->ctl->peer);
	struct jb_wire_iter it = {m->u.files.entries, m->u.files.len};
	struct jb_wire_entry *e = malloc(sizeof *e);
	if (!e)
		return -ENOMEM;
	int r = 0;
	for (uint32_t i = 0; i < m->u.files.count && r == 0; i++) {
		jb_wire_entry_next(&it, e); /* validated by the decoder */
		if (!canonical(e->path)) {
			r = jb_err(err, EACCES, "%s: refused path '%s' (absolute, '..' or not canonical)", s->ctl->peer,
				   e->path);
			break;
		}
		/* order is that of the sender's paths (before any renaming) */
		if (s->nfiles && path_cmp(s->last_path, e->path) >= 0) {
			r = jb_err(err, EBADMSG, "%s: file list not in order or has duplicates at '%s'", s->ctl->peer,
				   e->path);
			break;
		}
		if (!s->last_path && !(s->last_path = malloc(JB_PATH_MAX))) {
			r = -ENOMEM;
			break;
		}
		strcpy(s->last_path, e->path); /* the decoder bounds it below JB_PATH_MAX */
		if (s->rename_top) {
			const char *sl = strchr(e->path, '/');
			size_t tl = sl ? (size_t)(sl - e->path) : strlen(e->path);
			if (!s->top)
				s->top = strndup(e->path, tl);
			if (!s->top) {
				r = -ENOMEM;
				break;
			}
			if (strlen(s->top) != tl || strncmp(e->path, s->top, tl)) {
				r = jb_err(err, ENOTDIR, "destination is not a directory and there are several sources");
				break;
			}
			char np[JB_PATH_MAX];
			if ((size_t)snprintf(np, sizeof np, "%s%s", s->rename_top, e->path + tl) >= sizeof np) {
				r = jb_err(err, ENAMETOOLONG, "destination path too long");
				break;
			}
			strcpy(e->path, np);
		}
		if ((r = session_add_file(s, e, NULL)) < 0)
			r = jb_err(err, -r, "%s: file list: %s", s->ctl->peer,
				   r == -E2BIG ? "too many files" : strerror(-r));
	}
	free(e);
	return r;
}

int manifest_end(struct session *s, const struct jb_msg *m, struct jb_error *err)
{
	if (m->u.files_end.count != s->nfiles || m->u.files_end.bytes != s->bytes_total)
		return jb_err(err, EBADMSG, "%s: file list does not add up (%u files announced, %zu received)",
			      s->ctl->peer, m->u.files_end.count, s->nfiles);
	return 0;
}

int dest_setup(struct session *s, int rootfd, const char *dest, bool dest_is_dir, bool beneath,
	       const char *keybase_root, struct jb_error *err)
{
	int fd;
	s->dest_beneath = beneath;
	if (beneath) {
		fd = jb_open_beneath(rootfd, dest, O_PATH | O_DIRECTORY, 0);
		if (fd >= 0) {
			s->destdir = fd;
			s->keybase = strdup(dest);
			return 0;
		}
		if (fd == -EXDEV || fd == -ELOOP)
			return jb_err(err, EACCES, "%s: path escapes the data root", dest);
		if (fd != -ENOENT && fd != -ENOTDIR)
			return jb_err(err, -fd, "%s: %s", dest, strerror(-fd));
		if (dest_is_dir || !*dest) {
			fd = jb_mkdirs_beneath(rootfd, dest, 0755);
			if (fd < 0)
				goto mkfail;
			s->destdir = fd;
			s->keybase = strdup(dest);
			return 0;
		}
		const char *sl = strrchr(dest, '/');
		char *parent = sl ? strndup(dest, (size_t)(sl - dest)) : strdup("");
		fd = jb_mkdirs_beneath(rootfd, parent, 0755);
		if (fd < 0) {
			free(parent);
			goto mkfail;
		}
		s->destdir = fd;
		s->keybase = parent;
		s->rename_top = strdup(sl ? sl + 1 : dest);
		return 0;
	mkfail:
		if (fd == -EXDEV || fd == -ELOOP)
			return jb_err(err, EACCES, "%s: path escapes the data root", dest);
		return jb_err(err, -fd, "%s: %s", dest, strerror(-fd));
	}
	/* local destination: the user's own path, trusted as given */
	struct stat st;
	size_t l = strlen(dest);
	bool slash = l && dest[l - 1] == '/';
	if ((stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) || slash || dest_is_dir) {
		if (mkdir(dest, 0755) < 0 && errno != EEXIST)
			return jb_err(err, errno, "%s: %s", dest, strerror(errno));
		fd = open(dest, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return jb_err(err, errno, "%s: %s", dest, strerror(errno));
		s->destdir = fd;
		s->keybase = realpath(dest, NULL);
		return 0;
	}
	char *c1 = strdup(dest), *c2 = strdup(dest);
	const char *parent = dirname(c1), *name = basename(c2);
	fd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		free(c1);
		free(c2);
		return jb_err(err, e, "%s: %s", parent, strerror(e));
	}
	s->destdir = fd;
	s->keybase = realpath(parent, NULL);
	s->rename_top = strdup(name);
	free(c1);
	free(c2);
	(void)keybase_root;
	return 0;
}
