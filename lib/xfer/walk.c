/* Walking a sender's sources in manifest order, one entry at a time.
 *
 * A tree of any size is never held whole: the walker keeps one sorted
 * listing per directory on the way down from the source to the current
 * entry, and no descriptor at all between calls (each directory is read
 * whole, its children stat'ed, and closed before its first child is
 * returned).  Memory is the sum of those listings: about 40 bytes and the
 * name per child of each directory on the path. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "xfer-internal.h"

#define MAX_DEPTH 256

struct wsrc {
	char *src;           /* where to open it, relative to rootfd ("." for the root itself) */
	char *top;           /* its manifest name */
	bool children_only;
	struct stat st;
};

struct went {
	uint32_t name;       /* offset in the level's names */
	uint8_t type;
	uint32_t mode;
	uint64_t size;
	int64_t mtime_ns;
};

struct wlevel {
	char *src;           /* where to open this directory */
	size_t mlen;         /* its manifest path is w->mpath[0, mlen) */
	struct went *e;
	size_t n, next;
	char *names;
};

struct walker {
	int rootfd;
	char *under;         /* NULL: local paths; else the directory rootfd is, below the data root */
	bool recursive;
	struct wsrc *srcs;
	size_t nsrcs, capsrcs, cur;
	struct wlevel lv[MAX_DEPTH + 1];
	int depth;
	char mpath[JB_PATH_MAX];
};

int walker_new(int rootfd, const char *under, bool recursive, struct walker **ret)
{
	struct walker *w = calloc(1, sizeof *w);
	if (!w || (under && !(w->under = strdup(under)))) {
		free(w);
		return -ENOMEM;
	}
	w->rootfd = rootfd;
	w->recursive = recursive;
	*ret = w;
	return 0;
}

/* Below a data root, src is opened beneath the directory it must stay in
 * (rootfd, which is under): a link that leads out of it fails (EXDEV). */
int walker_open(const struct walker *w, const char *src, int flags)
{
	if (w->under) {
		const char *rel = jb_path_under(src, w->under);
		return rel ? jb_open_beneath(w->rootfd, rel, flags, 0) : -EXDEV;
	}
	int fd = openat(w->rootfd, src, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int walker_add(struct walker *w, const char *src, const char *top, bool children_only, struct jb_error *err)
{
	const char *shown = *src ? src : "/";
	if (!*src)
		src = ".";
	int fd = walker_open(w, src, O_PATH);
	if (fd < 0) {
		if (fd == -EXDEV || fd == -ELOOP)
			return jb_err(err, EACCES, "%s: path escapes %s", shown, confinement(w->under));
		return jb_err(err, -fd, "%s: %s", shown, strerror(-fd));
	}
	struct stat st;
	int r = fstat(fd, &st);
	close(fd);
	if (r < 0)
		return jb_err(err, errno, "%s: %s", shown, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		if (!w->recursive && !children_only)
			return jb_err(err, EISDIR, "%s: is a directory (use -r)", shown);
	} else if (!S_ISREG(st.st_mode)) {
		return jb_err(err, EINVAL, "%s: not a regular file or directory", shown);
	} else {
		children_only = false; /* a file lists itself */
	}
	if (strlen(top) >= JB_NAME_MAX + 1 || !*top || strchr(top, '/'))
		return jb_err(err, EINVAL, "%s: cannot arrive as '%s'", shown, top);
	if (w->nsrcs == w->capsrcs) {
		size_t nc = w->capsrcs ? w->capsrcs * 2 : 4;
		struct wsrc *ns = realloc(w->srcs, nc * sizeof *ns);
		if (!ns)
			return jb_oom(err);
		w->srcs = ns;
		w->capsrcs = nc;
	}
	struct wsrc *s = &w->srcs[w->nsrcs];
	s->src = strdup(src);
	s->top = strdup(top);
	if (!s->src || !s->top) {
		free(s->src);
		free(s->top);
		return jb_oom(err);
	}
	s->children_only = children_only;
	s->st = st;
	w->nsrcs++;
	return 0;
}

static int src_cmp(const void *a, const void *b)
{
	return strcmp(((const struct wsrc *)a)->top, ((const struct wsrc *)b)->top);
}

int walker_start(struct walker *w, struct jb_error *err)
{
	if (w->nsrcs)
		qsort(w->srcs, w->nsrcs, sizeof *w->srcs, src_cmp);
	for (size_t i = 1; i < w->nsrcs; i++)
		if (!strcmp(w->srcs[i - 1].top, w->srcs[i].top))
			return jb_err(err, EEXIST, "two sources would both arrive as '%s'", w->srcs[i].top);
	return 0;
}

static int went_cmp(const void *a, const void *b, void *names)
{
	return strcmp((const char *)names + ((const struct went *)a)->name,
		      (const char *)names + ((const struct went *)b)->name);
}

static void level_free(struct wlevel *l)
{
	free(l->src);
	free(l->e);
	free(l->names);
	memset(l, 0, sizeof *l);
}

/* Read directory src whole (regular files and directories, stat'ed; the
 * rest skipped with a warning), sorted by name, as a new level. */
static int push(struct walker *w, const char *src, size_t mlen, bool follow)
{
	if (w->depth > MAX_DEPTH)
		return -ELOOP;
	int fd = walker_open(w, src, O_RDONLY | O_DIRECTORY | (follow ? 0 : O_NOFOLLOW));
	if (fd < 0)
		return fd;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	struct wlevel l = {.mlen = mlen};
	size_t cap = 0, nlen = 0, ncap = 0;
	int r = 0;
	if (!(l.src = strdup(src)))
		r = -ENOMEM;
	struct dirent *de;
	errno = 0;
	while (r == 0 && (de = readdir(d))) {
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT) /* ENOENT: gone since it was listed */
				jb_log(JB_LOG_WARN, "%s/%s: skipped: %s", src, name, strerror(errno));
			continue;
		}
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
			jb_log(JB_LOG_WARN, "%s/%s: skipping %s", src, name,
			       S_ISLNK(st.st_mode) ? "symbolic link" : "special file");
			continue;
		}
		if (partial_reserved(name, strlen(name))) {
			/* not data yet: a file being received here, or one a failed
			 * transfer left for its resume (a receiver refuses the name) */
			jb_log(JB_LOG_INFO, "%s/%s: skipping a partial file", src, name);
			continue;
		}
		size_t len = strlen(name) + 1;
		if (l.n == cap) {
			size_t nc = cap ? cap * 2 : 32;
			struct went *ne = realloc(l.e, nc * sizeof *ne);
			if (!ne) {
				r = -ENOMEM;
				break;
			}
			l.e = ne;
			cap = nc;
		}
		if (nlen + len > ncap) {
			size_t nc = ncap ? ncap * 2 : 1024;
			while (nc < nlen + len)
				nc *= 2;
			char *nn = nc <= UINT32_MAX ? realloc(l.names, nc) : NULL;
			if (!nn) {
				r = -ENOMEM;
				break;
			}
			l.names = nn;
			ncap = nc;
		}
		memcpy(l.names + nlen, name, len);
		l.e[l.n++] = (struct went){
			.name = (uint32_t)nlen,
			.type = S_ISDIR(st.st_mode) ? JB_ENTRY_DIR : JB_ENTRY_FILE,
			.mode = st.st_mode & 07777,
			.size = S_ISDIR(st.st_mode) ? 0 : (uint64_t)st.st_size,
			.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
		};
		nlen += len;
		errno = 0;
	}
	if (r == 0 && errno)
		r = -errno; /* readdir failed */
	closedir(d);
	if (r < 0) {
		level_free(&l);
		return r;
	}
	if (l.n)
		qsort_r(l.e, l.n, sizeof *l.e, went_cmp, l.names);
	w->lv[w->depth++] = l;
	return 0;
}

static void fill(struct walk_entry *e, uint8_t type, uint32_t mode, uint64_t size, int64_t mtime, const char *path,
		 uint32_t src)
{
	*e = (struct walk_entry){.type = type, .mode = mode, .size = size, .mtime_ns = mtime, .path = path, .src = src};
}

/* A directory was returned whose contents cannot be listed: the entry says
 * why, and it arrives empty. */
static void list_failed(const struct walker *w, struct walk_entry *e, const char *src, int r)
{
	e->err = -r;
	if (r == -EXDEV || r == -ELOOP)
		snprintf(e->errmsg, sizeof e->errmsg, "cannot list its contents: it escapes %s or is too deep",
			 confinement(w->under));
	else
		snprintf(e->errmsg, sizeof e->errmsg, "cannot list its contents: %s", strerror(-r));
	jb_log(JB_LOG_WARN, "%s: %s", src, e->errmsg);
}

int walker_next(struct walker *w, struct walk_entry *e, struct jb_error *err)
{
	for (;;) {
		if (w->depth > 0) {
			struct wlevel *l = &w->lv[w->depth - 1];
			if (l->next == l->n) {
				level_free(l);
				w->depth--;
				continue;
			}
			const struct went *c = &l->e[l->next++];
			const char *name = l->names + c->name;
			size_t nl = strlen(name), pos = l->mlen;
			if (pos)
				w->mpath[pos++] = '/';
			if (pos + nl >= JB_PATH_MAX)
				return jb_err(err, ENAMETOOLONG, "%s/%s: path too long for a manifest (limit %d bytes)", l->src,
					      name, JB_PATH_MAX - 1);
			memcpy(w->mpath + pos, name, nl + 1);
			fill(e, c->type, c->mode, c->size, c->mtime_ns, w->mpath, (uint32_t)(w->cur - 1));
			if (c->type == JB_ENTRY_DIR && w->recursive) {
				char *csrc;
				if (asprintf(&csrc, "%s/%s", l->src, name) < 0)
					return jb_oom(err);
				int r = w->depth > MAX_DEPTH ? -ELOOP : push(w, csrc, pos + nl, false);
				if (r == -ELOOP && w->depth > MAX_DEPTH)
					r = jb_err(err, ELOOP, "%s: directory tree deeper than %d", csrc, MAX_DEPTH);
				else if (r == -ENOMEM)
					r = jb_err(err, ENOMEM, "%s: out of memory", csrc);
				else if (r < 0) {
					list_failed(w, e, csrc, r);
					r = 0;
				}
				free(csrc);
				if (r < 0)
					return r;
			}
			return 1;
		}
		if (w->cur == w->nsrcs)
			return 0;
		struct wsrc *s = &w->srcs[w->cur++];
		const struct stat *st = &s->st;
		if (s->children_only) {
			int r = push(w, s->src, 0, true);
			if (r < 0)
				return jb_err(err, -r, "%s: %s%s", s->src,
					      r == -EXDEV || r == -ELOOP ? "path escapes " : strerror(-r),
					      r == -EXDEV || r == -ELOOP ? confinement(w->under) : "");
			continue;
		}
		size_t tl = strlen(s->top);
		memcpy(w->mpath, s->top, tl + 1);
		bool dir = S_ISDIR(st->st_mode);
		fill(e, dir ? JB_ENTRY_DIR : JB_ENTRY_FILE, st->st_mode & 07777, dir ? 0 : (uint64_t)st->st_size,
		     (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec, w->mpath, (uint32_t)(w->cur - 1));
		if (dir) {
			int r = push(w, s->src, tl, true);
			if (r == -ENOMEM)
				return jb_err(err, ENOMEM, "%s: out of memory", s->src);
			if (r < 0)
				list_failed(w, e, s->src, r);
		}
		return 1;
	}
}

int walker_src_path(const struct walker *w, uint32_t src, const char *path, char *buf, size_t len)
{
	if (src >= w->nsrcs)
		return -EINVAL;
	const struct wsrc *s = &w->srcs[src];
	size_t tl = strlen(s->top);
	const char *rest = strncmp(path, s->top, tl) ? path : path + tl;
	if ((size_t)snprintf(buf, len, "%s%s", s->src, rest) >= len)
		return -ENAMETOOLONG;
	return 0;
}

void walker_free(struct walker *w)
{
	if (!w)
		return;
	while (w->depth > 0)
		level_free(&w->lv[--w->depth]);
	for (size_t i = 0; i < w->nsrcs; i++) {
		free(w->srcs[i].src);
		free(w->srcs[i].top);
	}
	free(w->srcs);
	free(w->under);
	free(w);
}
