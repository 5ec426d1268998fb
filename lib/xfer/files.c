/* Descriptors of a session: its open files (sources on the sending end,
 * partial files on the receiving end) and the destination directories.
 *
 * However large the tree, a session holds at most s->fc.cap files open:
 * a descriptor is opened when a stream thread first needs the file, kept
 * while the file's blocks keep coming, and the least recently used one
 * without a user is closed when another is needed.  The cache is larger
 * than the number of stream threads, so one without a user always exists. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "xfer-internal.h"

const char *base_name(const char *p)
{
	const char *sl = strrchr(p, '/');
	return sl ? sl + 1 : p;
}

void files_init(struct session *s, int cap)
{
	pthread_mutex_init(&s->fc.lock, NULL);
	s->fc.cap = cap;
	pthread_mutex_init(&s->dc.lock, NULL);
	for (int i = 0; i < DIRCACHE; i++)
		s->dc.e[i].fd = -1;
}

static uint32_t no(struct session *s, struct xfile *f) { return (uint32_t)(f - s->files) + 1; }
static struct xfile *at(struct session *s, uint32_t n) { return n ? &s->files[n - 1] : NULL; }

static void lru_unlink(struct session *s, struct xfile *f)
{
	struct xfile *p = at(s, f->lru_prev), *n = at(s, f->lru_next);
	if (p)
		p->lru_next = f->lru_next;
	else
		s->fc.head = f->lru_next;
	if (n)
		n->lru_prev = f->lru_prev;
	else
		s->fc.tail = f->lru_prev;
	f->lru_prev = f->lru_next = 0;
	f->in_lru = false;
}

static void lru_front(struct session *s, struct xfile *f)
{
	if (f->in_lru)
		lru_unlink(s, f);
	f->lru_next = s->fc.head;
	f->lru_prev = 0;
	if (s->fc.head)
		at(s, s->fc.head)->lru_prev = no(s, f);
	s->fc.head = no(s, f);
	if (!s->fc.tail)
		s->fc.tail = no(s, f);
	f->in_lru = true;
}

static void drop_fd(struct session *s, struct xfile *f)
{
	close(f->fd);
	f->fd = -1;
	f->fdusers = 0;
	if (f->in_lru)
		lru_unlink(s, f);
	s->fc.n--;
}

/* The sender's source: opened beneath the data root on a daemon, and
 * refused when it is no longer what the manifest says. */
static int open_source(struct session *s, struct xfile *f)
{
	if (s->feed)
		return feed_open(s->feed, f->src); /* a relay's staged copy */
	char src[JB_PATH_MAX + 256];
	int r = walker_src_path(s->walk, f->src, f->path, src, sizeof src);
	if (r < 0)
		return r;
	/* a source named by the user is followed if it is a link; what the
	 * walk found inside a directory was a regular file, and is not */
	int nofollow = strchr(f->path, '/') ? O_NOFOLLOW : 0;
	int fd = walker_open(s->walk, src, O_RDONLY | nofollow);
	if (fd < 0)
		return fd;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size ||
	    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != f->mtime_ns) {
		close(fd);
		return -ESTALE;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return fd;
}

/* The receiver's partial file, in its directory at the destination: this
 * session's inode, locked while the descriptor is open (partial.c). */
static int open_partial(struct session *s, struct xfile *f)
{
	int d = dir_open(s, f->path);
	if (d < 0)
		return d;
	int fd = partial_open(f, d, false);
	close(d);
	return fd;
}

int files_get(struct session *s, struct xfile *f)
{
	struct filecache *c = &s->fc;
	pthread_mutex_lock(&c->lock);
	if (f->fd >= 0) {
		f->fdusers++;
		lru_front(s, f);
		pthread_mutex_unlock(&c->lock);
		return f->fd;
	}
	/* make room: the least recently used descriptor nobody uses */
	for (struct xfile *v = at(s, c->tail); v && c->n >= c->cap;) {
		struct xfile *prev = at(s, v->lru_prev);
		if (v->fdusers == 0)
			drop_fd(s, v);
		v = prev;
	}
	int fd = s->sender ? open_source(s, f) : open_partial(s, f);
	if (fd >= 0) {
		f->fd = fd;
		f->fdusers = 1;
		c->n++;
		lru_front(s, f);
	}
	pthread_mutex_unlock(&c->lock);
	return fd;
}

void files_put(struct session *s, struct xfile *f)
{
	pthread_mutex_lock(&s->fc.lock);
	if (f->fd >= 0 && --f->fdusers == 0 && !f->in_lru)
		drop_fd(s, f);
	pthread_mutex_unlock(&s->fc.lock);
}

void files_close(struct session *s, struct xfile *f)
{
	pthread_mutex_lock(&s->fc.lock);
	if (f->fd >= 0) {
		if (f->fdusers == 0)
			drop_fd(s, f);
		else
			lru_unlink(s, f); /* out of the list: the last put closes it */
	}
	pthread_mutex_unlock(&s->fc.lock);
}

void files_free(struct session *s)
{
	pthread_mutex_lock(&s->fc.lock);
	while (s->fc.head)
		drop_fd(s, at(s, s->fc.head));
	pthread_mutex_unlock(&s->fc.lock);
	pthread_mutex_destroy(&s->fc.lock);
	for (int i = 0; i < DIRCACHE; i++) {
		free(s->dc.e[i].path);
		if (s->dc.e[i].fd >= 0)
			close(s->dc.e[i].fd);
	}
	pthread_mutex_destroy(&s->dc.lock);
}

/* Files of a tree arrive directory by directory: the last few directories
 * resolved are kept, since resolving one again (a mkdirat and an openat2 per
 * component) was a large part of the receiver's work with small files. */
int dir_open(struct session *s, const char *path) { return dir_open_id(s, path, NULL, NULL); }

int dir_open_id(struct session *s, const char *path, dev_t *ret_dev, ino_t *ret_ino)
{
	const char *sl = strrchr(path, '/');
	size_t n = sl ? (size_t)(sl - path) : 0;
	struct dircache *c = &s->dc;
	pthread_mutex_lock(&c->lock);
	int lru = 0;
	for (int i = 0; i < DIRCACHE; i++) {
		if (c->e[i].path && strlen(c->e[i].path) == n && !memcmp(c->e[i].path, path, n)) {
			c->e[i].used = ++c->tick;
			int fd = fcntl(c->e[i].fd, F_DUPFD_CLOEXEC, 0);
			if (ret_dev) {
				*ret_dev = c->e[i].dev;
				*ret_ino = c->e[i].ino;
			}
			pthread_mutex_unlock(&c->lock);
			return fd < 0 ? -errno : fd;
		}
		if (c->e[i].used < c->e[lru].used)
			lru = i;
	}
	char *parent = strndup(path, n);
	int fd = parent ? jb_mkdirs_beneath(s->destdir, parent, 0755 & ~s->umask) : -ENOMEM;
	if (fd >= 0) {
		/* readable, so that syncfs(2) takes it; O_PATH where it is not */
		int rd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (rd >= 0) {
			close(fd);
			fd = rd;
		}
	}
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) < 0) {
		int e = -errno;
		close(fd);
		fd = e;
	}
	int dup = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : fd;
	if (fd >= 0 && dup < 0) {
		dup = -errno;
		close(fd);
	} else if (fd >= 0) {
		free(c->e[lru].path);
		if (c->e[lru].fd >= 0)
			close(c->e[lru].fd);
		c->e[lru].path = parent;
		c->e[lru].fd = fd;
		c->e[lru].dev = st.st_dev; /* the claims' key (partial.c) */
		c->e[lru].ino = st.st_ino;
		c->e[lru].used = ++c->tick;
		parent = NULL;
		if (ret_dev) {
			*ret_dev = st.st_dev;
			*ret_ino = st.st_ino;
		}
	}
	pthread_mutex_unlock(&c->lock);
	free(parent);
	return dup;
}
