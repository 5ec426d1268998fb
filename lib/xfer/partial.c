/* Partial files: the hidden name a file is received under until it is
 * committed, and which session owns a destination path meanwhile.
 *
 * A file is received as .NAME.jumbo-part beside NAME.  A receiving session
 * claims the path when it plans the file (a table of this process's claims,
 * keyed by the destination directory's device and inode and by NAME) and
 * holds the claim until the file's FILE_DONE is queued: another session of
 * the process that asks for the same path meanwhile (another peer, another
 * connection of the same one, a pull of this site's own) is refused with
 * EBUSY, naming the holder.  A claim holds no descriptor, since a session
 * plans up to a window of files ahead of their blocks.  Whenever a
 * descriptor of the partial file is open it holds an OFD write lock on it
 * (F_OFD_SETLK), which keeps other processes' sessions out; the kernel drops
 * it with the descriptor or the process.  A session that is gone therefore
 * leaves neither claim nor lock behind, and the next one resumes its file.
 *
 * The partial file's inode is the session's own: made with O_EXCL (a stale
 * one that no lock holds is removed first) or, to resume, an existing one
 * adopted once its journalled blocks have been hashed again.  Every later
 * open checks that it is still that inode, and the commit renames it while
 * it holds it locked, then checks that the final name holds it: the bytes
 * under the name are the bytes whose digests were verified. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "xfer-internal.h"

#define PART_SUFFIX ".jumbo-part"
/* How long a session waits for a path held by a session that is failing:
 * that one commits what it has verified, then lets go. */
#define CLAIM_WAIT_MS 5000

bool jb_partial_name(const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, ".%s" PART_SUFFIX, name);
	return n > 0 && (size_t)n < len && n <= JB_NAME_MAX;
}

bool partial_name(const struct xfile *f, char *buf, size_t len) { return jb_partial_name(base_name(f->path), buf, len); }

bool partial_reserved(const char *name, size_t len)
{
	const size_t sl = sizeof PART_SUFFIX - 1;
	return len > sl + 1 && name[0] == '.' && !memcmp(name + len - sl, PART_SUFFIX, sl);
}

const char *partial_component(const char *path, int *ret_len)
{
	for (const char *p = path; *p;) {
		const char *e = strchrnul(p, '/');
		if (partial_reserved(p, (size_t)(e - p))) {
			*ret_len = (int)(e - p);
			return p;
		}
		p = *e ? e + 1 : e;
	}
	return NULL;
}

/* ---- claims: which session of this process receives which path ---- */

struct claim {
	struct claim *next, **pprev;
	dev_t dev;           /* the destination directory */
	ino_t ino;
	const struct session *s; /* the holder, which lets go before it is freed */
	char name[];         /* the final name in that directory */
};

/* As many buckets as a session's window has entries: one session's claims
 * (a window at most) fill each bucket about once.  Untouched pages of the
 * table cost nothing. */
#define CLAIM_BUCKETS JB_WIRE_WINDOW

static struct {
	pthread_mutex_t lock;
	pthread_cond_t released;
	struct claim *b[CLAIM_BUCKETS];
} claims = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}};

static struct claim **bucket(const struct claim *c)
{
	uint64_t h = XXH3_64bits_withSeed(c->name, strlen(c->name), (uint64_t)c->ino * UINT64_C(0x9E3779B97F4A7C15) ^
					  (uint64_t)c->dev);
	return &claims.b[h % CLAIM_BUCKETS];
}

static struct claim *claim_find(struct claim **b, const struct claim *c)
{
	for (struct claim *h = *b; h; h = h->next)
		if (h->ino == c->ino && h->dev == c->dev && !strcmp(h->name, c->name))
			return h;
	return NULL;
}

int claim_take(struct session *s, struct xfile *f, dev_t dev, ino_t ino, bool wait, char *why, size_t whylen)
{
	const char *name = base_name(f->path);
	struct claim *c = malloc(sizeof *c + strlen(name) + 1);
	if (!c)
		return -ENOMEM;
	c->dev = dev;
	c->ino = ino;
	c->s = s;
	strcpy(c->name, name);
	struct timespec until;
	if (wait) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += CLAIM_WAIT_MS / 1000;
	}
	int r;
	pthread_mutex_lock(&claims.lock);
	struct claim **b = bucket(c);
	for (;;) {
		struct claim *h = claim_find(b, c);
		if (!h) {
			if ((c->next = *b))
				c->next->pprev = &c->next;
			c->pprev = b;
			*b = c;
			r = 0;
			break;
		}
		snprintf(why, whylen, "peer %s (session %s)", h->s->origin, h->s->session_id);
		bool ending = atomic_load(&h->s->fatal);
		if (!ending || !wait) {
			r = ending ? -EINPROGRESS : -EBUSY;
			break;
		}
		if (pthread_cond_timedwait(&claims.released, &claims.lock, &until) == ETIMEDOUT) {
			r = -EBUSY;
			break;
		}
	}
	pthread_mutex_unlock(&claims.lock);
	if (r < 0)
		free(c);
	else
		f->claim = c;
	return r;
}

void claim_release(struct xfile *f)
{
	struct claim *c = f->claim;
	if (!c)
		return;
	pthread_mutex_lock(&claims.lock);
	if ((*c->pprev = c->next))
		c->next->pprev = c->pprev;
	if (atomic_load(&c->s->fatal))
		pthread_cond_broadcast(&claims.released); /* someone may wait for it */
	pthread_mutex_unlock(&claims.lock);
	free(c);
	f->claim = NULL;
}

bool claim_held(dev_t dev, ino_t ino, const char *name)
{
	size_t n = strlen(name);
	struct claim *c = malloc(sizeof *c + n + 1);
	if (!c)
		return true; /* cannot tell: leave it */
	c->dev = dev;
	c->ino = ino;
	memcpy(c->name, name, n + 1);
	pthread_mutex_lock(&claims.lock);
	bool held = claim_find(bucket(c), c) != NULL;
	pthread_mutex_unlock(&claims.lock);
	free(c);
	return held;
}

/* ---- the partial file itself ---- */

/* Which file a descriptor or a name holds: its device, its inode and, where
 * the filesystem keeps one, its birth time.  The inode alone does not tell
 * a file from one made under the same name after it was removed: ext4 and
 * others give the new file the number just freed. */
static int file_id(int d, const char *name, struct part_id *ret, uint64_t *ret_size)
{
	struct statx sx;
	if (statx(d, name ? name : "", name ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH,
		  STATX_TYPE | STATX_INO | STATX_SIZE | STATX_BTIME, &sx) < 0)
		return -errno;
	*ret = (struct part_id){.dev = makedev(sx.stx_dev_major, sx.stx_dev_minor), .ino = sx.stx_ino};
	if (sx.stx_mask & STATX_BTIME)
		ret->born_ns = sx.stx_btime.tv_sec * 1000000000 + sx.stx_btime.tv_nsec;
	if (ret_size)
		*ret_size = sx.stx_size;
	return S_ISREG(sx.stx_mode) ? 0 : -EEXIST;
}

static bool same_id(const struct part_id *a, const struct part_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->born_ns == b->born_ns;
}

/* An OFD lock on the whole file: held by this open file description, so
 * that it conflicts with every other, in this process or another. */
static int lock_fd(int fd)
{
	struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	if (fcntl(fd, F_OFD_SETLK, &l) == 0)
		return 0;
	return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
}

/* An existing partial file, locked, and which file it is.  It must be a
 * regular file (O_NONBLOCK: opening a FIFO put in its place does not wait
 * for a writer). */
static int open_existing(int d, const char *part, struct part_id *id, uint64_t *size)
{
	int fd = openat(d, part, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == EISDIR ? -EEXIST : -errno;
	int r = file_id(fd, NULL, id, size);
	if (r == 0)
		r = lock_fd(fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* A new partial file, locked, and which file it is.  One left by a session
 * that is gone, and that no journal record resumes, is removed first,
 * unless a session of another process holds it. */
static int create_fresh(int d, const char *part, struct part_id *id, uint64_t *size)
{
	for (int tries = 0; tries < 3; tries++) {
		int fd = openat(d, part, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0) {
			/* another process may have opened it since */
			int r = lock_fd(fd);
			if (r == 0)
				r = file_id(fd, NULL, id, size);
			if (r < 0) {
				close(fd);
				return r;
			}
			return fd;
		}
		if (errno != EEXIST)
			return -errno;
		struct part_id stale;
		int old = open_existing(d, part, &stale, NULL);
		if (old == -ENOENT)
			continue; /* gone meanwhile */
		if (old < 0)
			return old;
		int r = unlinkat(d, part, 0) < 0 && errno != ENOENT ? -errno : 0;
		close(old);
		if (r < 0)
			return r;
	}
	return -EEXIST;
}

int jb_partial_create(int d, const char *part)
{
	struct part_id id;
	return create_fresh(d, part, &id, NULL);
}

/* partial_open, and the file's size */
static int open_sized(struct xfile *f, int d, bool adopt, uint64_t *ret_size)
{
	char part[JB_NAME_MAX + 1];
	if (!partial_name(f, part, sizeof part))
		return -ENAMETOOLONG;
	struct part_id id;
	int fd = f->part_ours || adopt ? open_existing(d, part, &id, ret_size) : create_fresh(d, part, &id, ret_size);
	if (fd < 0)
		return f->part_ours && fd == -ENOENT ? -ESTALE : fd;
	if (f->part_ours && !same_id(&id, &f->part)) {
		close(fd);
		return -ESTALE; /* not the file this session wrote */
	}
	f->part = id;
	f->part_ours = true;
	return fd;
}

int partial_open(struct xfile *f, int d, bool adopt) { return open_sized(f, d, adopt, NULL); }

void partial_drop(struct session *s, struct xfile *f)
{
	char part[JB_NAME_MAX + 1];
	if (!f->part_ours || !partial_name(f, part, sizeof part))
		return; /* nothing of this session's under that name */
	int d = dir_open(s, f->path);
	if (d < 0)
		return;
	struct part_id id;
	if (file_id(d, part, &id, NULL) == 0 && same_id(&id, &f->part))
		unlinkat(d, part, 0);
	close(d);
}

int partial_commit(struct xfile *f, int d)
{
	char part[JB_NAME_MAX + 1];
	if (!f->part_ours)
		return -ESTALE;
	if (!partial_name(f, part, sizeof part))
		return -ENAMETOOLONG;
	uint64_t size;
	int fd = open_sized(f, d, false, &size);
	if (fd < 0)
		return fd;
	const char *name = base_name(f->path);
	struct part_id named;
	int r = 0;
	if (size != f->size)
		r = -ESTALE;
	else if (renameat(d, part, d, name) < 0)
		r = -errno;
	else if ((r = file_id(d, name, &named, NULL)) < 0)
		;
	else if (!same_id(&named, &f->part)) {
		/* only something outside jumbo can have swapped the partial
		 * name between the open and the rename */
		jb_log(JB_LOG_ERROR, "%s: the file under its name is not the one received and verified", f->path);
		r = -ESTALE;
	}
	close(fd); /* the lock goes with it, after the rename */
	return r;
}
