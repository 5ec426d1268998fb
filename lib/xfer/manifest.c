/* Manifests: what the sender offers (walking local trees or a data root) and
 * what the receiver accepts (validated, placed under its destination). */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "xfer-internal.h"

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

/* The first path component a local source arrives as. */
int manifest_add_local(struct session *s, const char *src, bool recursive, struct jb_error *err)
{
	if (!s->walk && walker_new(AT_FDCWD, NULL, recursive, &s->walk) < 0)
		return jb_oom(err);
	char *copy = strdup(src);
	if (!copy)
		return jb_oom(err);
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
			r = walker_add(s->walk, src, b2, false, err);
		free(rp);
	} else {
		r = walker_add(s->walk, src, base, false, err);
	}
	free(copy);
	return r;
}

int manifest_add_beneath(struct session *s, int rootfd, const char *under, const char *rel, bool recursive,
			 bool children_only, struct jb_error *err)
{
	if (!s->walk && walker_new(rootfd, under, recursive, &s->walk) < 0)
		return jb_oom(err);
	const char *slash = strrchr(rel, '/');
	const char *top = slash ? slash + 1 : *rel ? rel : s->origin;
	return walker_add(s->walk, rel, top, children_only, err);
}

int manifest_sort(struct session *s, struct jb_error *err) { return walker_start(s->walk, err); }

/* Entries per FILES frame: a frame is used only once it has arrived whole,
 * and a new connection's first round trip carries about ten segments (14
 * KiB).  Small frames let the receiver answer the first files while the
 * rest of a large manifest is still on its way. */
#define MANIFEST_FRAME (12u << 10)
/* FILES queued on the control connection at most: the rest of the tree is
 * walked as they go out (and as the window lets more entries in). */
#define MANIFEST_QUEUE (1u << 20)

int manifest_pump(struct session *s, struct jb_error *err)
{
	struct jb_buf *b = &s->ctl->out;
	struct jb_wire_entry *e = NULL;
	int r = 0;
	while (!s->manifest_done && !window_full(s) && ctl_queued(s->ctl) < MANIFEST_QUEUE) {
		if (!e && !(e = malloc(sizeof *e)))
			return jb_oom(err);
		size_t mark = jb_frame_begin(b, JB_MSG_FILES);
		jb_buf_u32(b, s->nfiles);
		size_t cpos = b->len;
		jb_buf_u32(b, 0);
		uint32_t count = 0, budget = MANIFEST_FRAME;
		bool end = false, waiting = false;
		while (!window_full(s)) {
			if (!s->walk_pending) {
				r = s->feed ? feed_next_entry(s, &s->pend, err) : walker_next(s->walk, &s->pend, err);
				if (r == -EAGAIN) {
					r = 0;
					waiting = true; /* a relay's: the entries to come have not come yet */
					break;
				}
				if (r < 0)
					goto out;
				if (r == 0) {
					end = true;
					break;
				}
				s->walk_pending = true;
			}
			const struct walk_entry *w = &s->pend;
			size_t need = jb_wire_entry_size(w->path);
			if (need > budget && count)
				break; /* the next frame's first */
			budget -= (uint32_t)JB_MIN(need, budget);
			*e = (struct jb_wire_entry){.type = w->type, .size = w->size, .mode = w->mode, .mtime_ns = w->mtime_ns};
			strcpy(e->path, w->path); /* the walker bounds it below JB_PATH_MAX */
			if ((r = session_add_file(s, e, w->src, err)) < 0)
				goto out;
			if (w->err) {
				/* a directory whose contents could not be listed: it
				 * arrives, empty, and counts as failed here */
				struct xfile *f = slot(s, s->nfiles - 1);
				f->errcode = w->err;
				if (asprintf(&f->error, "%s: %s", w->path, w->errmsg) < 0)
					f->error = NULL;
			}
			s->walk_pending = false;
			jb_wire_put_entry(b, e);
			count++;
		}
		if (count && !b->oom) {
			b->p[cpos] = (uint8_t)(count >> 24);
			b->p[cpos + 1] = (uint8_t)(count >> 16);
			b->p[cpos + 2] = (uint8_t)(count >> 8);
			b->p[cpos + 3] = (uint8_t)count;
			jb_frame_end(b, mark);
		} else if (!count) {
			b->len = mark; /* nothing in it */
		}
		if (end) {
			size_t m = jb_frame_begin(b, JB_MSG_FILES_END);
			jb_buf_u32(b, s->nfiles);
			jb_buf_u64(b, s->bytes_total);
			jb_frame_end(b, m);
			s->manifest_done = true;
			jb_log(JB_LOG_DEBUG, "manifest of %u entries walked in %.0f ms", s->nfiles, (jb_now() - s->t0) * 1e3);
		}
		if ((r = ctl_send(s->ctl, err)) < 0 || waiting)
			goto out;
	}
out:
	free(e);
	return r < 0 ? r : 0;
}

int manifest_placed(const struct session *s, const char *path, char *out, size_t len)
{
	if (!s->rename_top)
		return (size_t)snprintf(out, len, "%s", path) < len ? 0 : -ENAMETOOLONG;
	size_t tl = strcspn(path, "/");
	if (s->top && (strlen(s->top) != tl || strncmp(path, s->top, tl)))
		return -ENOTDIR; /* (no entry yet: this one's is the first) */
	return (size_t)snprintf(out, len, "%s%s", s->rename_top, path + tl) < len ? 0 : -ENAMETOOLONG;
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
int manifest_take(struct session *s, const struct jb_msg *m, uint32_t *ret_from, struct jb_error *err)
{
	*ret_from = s->nfiles;
	if (s->manifest_done)
		return jb_err(err, EBADMSG, "%s: file list after its end", s->ctl->peer);
	if (m->u.files.first != s->nfiles)
		return jb_err(err, EBADMSG, "%s: file list out of order", s->ctl->peer);
	struct jb_wire_iter it = {m->u.files.entries, m->u.files.len};
	struct jb_wire_entry *e = malloc(sizeof *e);
	if (!e)
		return jb_oom(err);
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
			if (!s->top && !(s->top = strndup(e->path, strcspn(e->path, "/")))) {
				r = -ENOMEM;
				break;
			}
			char np[JB_PATH_MAX];
			if ((r = manifest_placed(s, e->path, np, sizeof np)) < 0) {
				r = jb_err(err, -r, r == -ENOTDIR ? "destination is not a directory and there are several sources"
								   : "destination path too long");
				break;
			}
			strcpy(e->path, np);
		}
		r = session_add_file(s, e, 0, err);
		if (r == 0 && s->feed)
			feed_add(s->feed, slot(s, s->nfiles - 1));
		if (r == 0 && s->nseals)
			seal_match(s, slot(s, s->nfiles - 1));
	}
	free(e);
	return r;
}

int manifest_end(struct session *s, const struct jb_msg *m, struct jb_error *err)
{
	if (s->manifest_done)
		return jb_err(err, EBADMSG, "%s: a second end of the file list", s->ctl->peer);
	if (m->u.files_end.count != s->nfiles || m->u.files_end.bytes != s->bytes_total)
		return jb_err(err, EBADMSG, "%s: file list does not add up (%u files announced, %u received)",
			      s->ctl->peer, m->u.files_end.count, s->nfiles);
	s->manifest_done = true;
	if (s->feed)
		feed_end(s->feed);
	return 0;
}

/* A destination below the data root, confined to under (rootfd): dest
 * itself when it is a directory or is to be one, else its parent with
 * the new name of the single top-level entry.  under itself is always a
 * directory: what lands there goes inside it. */
static int dest_beneath(struct session *s, int rootfd, const char *under, const char *dest, bool dest_is_dir,
			struct jb_error *err)
{
	int cl;
	const char *c = partial_component(dest, &cl);
	if (c)
		return jb_err(err, EINVAL, "%s: '%.*s' " PARTIAL_REFUSED, dest, cl, c);
	mode_t dmode = 0755 & ~s->umask;
	const char *rel = jb_path_under(dest, under);
	int fd = rel ? jb_open_beneath(rootfd, rel, O_PATH | O_DIRECTORY, 0) : -EXDEV;
	if (fd >= 0 || (rel && (fd == -ENOENT || fd == -ENOTDIR) && (dest_is_dir || !*rel))) {
		if (fd < 0 && (fd = jb_mkdirs_beneath(rootfd, rel, dmode)) < 0)
			goto fail;
		s->destdir = fd;
		s->keybase = strdup(dest);
		return 0;
	}
	if (fd != -ENOENT && fd != -ENOTDIR)
		goto fail;
	const char *sl = strrchr(dest, '/');
	char *parent = sl ? strndup(dest, (size_t)(sl - dest)) : strdup("");
	const char *prel = parent ? jb_path_under(parent, under) : NULL;
	fd = !parent ? -ENOMEM : prel ? jb_mkdirs_beneath(rootfd, prel, dmode) : -EXDEV;
	if (fd < 0) {
		free(parent);
		goto fail;
	}
	s->destdir = fd;
	s->keybase = parent;
	s->rename_top = strdup(sl ? sl + 1 : dest);
	return 0;
fail:
	if (fd == -EXDEV || fd == -ELOOP)
		return jb_err(err, EACCES, "%s: path escapes %s", dest, confinement(under));
	return jb_err(err, -fd, "%s: %s", dest, strerror(-fd));
}

int dest_setup(struct session *s, int rootfd, const char *under, const char *dest, bool dest_is_dir,
	       struct jb_error *err)
{
	int fd;
	if (under)
		return dest_beneath(s, rootfd, under, dest, dest_is_dir, err);
	/* local destination: the user's own path, trusted as given */
	mode_t dmode = 0755 & ~s->umask;
	struct stat st;
	size_t l = strlen(dest);
	bool slash = l && dest[l - 1] == '/';
	if ((stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) || slash || dest_is_dir) {
		if (mkdir(dest, dmode) < 0 && errno != EEXIST)
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
	return 0;
}
