/* The receiver's committer: one thread that makes whole, verified files
 * durable and gives them their names.
 *
 * Files come from the control loop once every block is verified and the
 * whole-file digest matches.  The committer takes all that have come since
 * it last looked, as one group: files of one block are made durable
 * together by one syncfs(2) of their filesystem instead of an fdatasync
 * each (a file of several blocks was synced by the stream thread that
 * wrote its last block); then each is renamed into place, the journal
 * records the group as committed in one transaction, and the site's hook
 * hears of it twice.  Under load groups grow by themselves; a lone file is
 * committed at once.  Measured on this machine's disk: an fdatasync per
 * file allowed about 2,000 small files a second, a syncfs per group of
 * 1,000 cost 25 ms. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "xfer-internal.h"

#define GROUP_MAX 1024

struct committer {
	struct session *s;
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint32_t *q;
	size_t n, cap;
	bool stop;
};

void journal_key(const struct session *s, const struct xfile *f, char *key, size_t len)
{
	snprintf(key, len, "%s%s%s", s->keybase ? s->keybase : "", s->keybase && *s->keybase ? "/" : "", f->path);
}

/* Size, mode and time for a file no stream thread finished (empty, or all
 * its blocks were there from an earlier session). */
static int prepare(struct session *s, struct xfile *f, int d)
{
	int fd = partial_open(f, d, false);
	if (fd < 0)
		return fd;
	struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT},
				 {.tv_sec = f->mtime_ns / 1000000000, .tv_nsec = f->mtime_ns % 1000000000}};
	int r = 0;
	/* Permission bits only, less the site's umask: a peer never makes
	 * set-user-ID, set-group-ID or sticky files. */
	if (ftruncate(fd, (off_t)f->size) < 0 || fchmod(fd, file_mode(s, f)) < 0 || futimens(fd, ts) < 0 ||
	    (f->nblocks > 1 && fdatasync(fd) < 0))
		r = -errno;
	close(fd);
	if (r == 0) {
		f->prepared = true;
		f->synced = f->nblocks > 1;
	}
	return r;
}

/* The directory of consecutive files of a group, opened once. */
struct dirhold {
	const char *path;
	size_t len;
	int fd;
};

static int hold_dir(struct session *s, struct dirhold *h, const char *path)
{
	const char *sl = strrchr(path, '/');
	size_t len = sl ? (size_t)(sl - path) : 0;
	if (h->fd >= 0 && h->len == len && !memcmp(h->path, path, len))
		return h->fd;
	if (h->fd >= 0)
		close(h->fd);
	h->path = path;
	h->len = len;
	h->fd = dir_open(s, path);
	return h->fd;
}

struct devs {
	dev_t d[8];
	int n;
};

/* One group's commit, in its phases: durable (one syncfs per filesystem),
 * the site's hook before (pending datasets), renamed, journalled in one
 * transaction, the hook after (settled), one event per file.
 * (Over 120 lines on purpose: the phases share the group's arrays and each
 * file's failure is carried from one phase to the next; the order is the
 * crash-safety argument of docs/ARCHITECTURE.md, kept in one place.) */
static void commit_group(struct committer *c, const uint32_t *idx, size_t n)
{
	struct session *s = c->s;
	struct xfile **fs = calloc(n, sizeof *fs);
	int *st = calloc(n, sizeof *st);
	struct jb_commit_file *cf = s->on_commit ? calloc(n, sizeof *cf) : NULL;
	char (*dg)[40] = s->on_commit ? calloc(n, 40) : NULL;
	char **rel = s->on_commit ? calloc(n, sizeof *rel) : NULL;
	char key[2 * JB_PATH_MAX + 2], part[JB_NAME_MAX + 1];
	if (!fs || !st || (s->on_commit && (!cf || !dg || !rel))) {
		for (size_t i = 0; i < n; i++)
			session_post_file(s, EV_COMMITTED, idx[i], ENOMEM, "out of memory");
		goto out;
	}
	struct dirhold h = {.fd = -1};
	bool unsynced = false;
	for (size_t i = 0; i < n; i++) {
		struct xfile *f = fs[i] = slot(s, idx[i]);
		int d = hold_dir(s, &h, f->path);
		st[i] = d < 0 ? d : f->prepared ? 0 : prepare(s, f, d);
		if (st[i] == 0 && !f->synced)
			unsynced = true;
	}
	if (unsynced) {
		/* one syncfs per filesystem the group's files are on */
		struct devs seen = {0};
		for (size_t i = 0; i < n; i++) {
			if (st[i] || fs[i]->synced)
				continue;
			int d = hold_dir(s, &h, fs[i]->path);
			struct stat sb;
			if (d < 0 || fstat(d, &sb) < 0) {
				st[i] = d < 0 ? d : -errno;
				continue;
			}
			int k = 0;
			while (k < seen.n && seen.d[k] != sb.st_dev)
				k++;
			if (k < seen.n)
				continue;
			if (seen.n < (int)JB_ARRAY_SIZE(seen.d))
				seen.d[seen.n++] = sb.st_dev;
			if (syncfs(d) < 0) {
				/* writeback failed: nothing of this group is durable */
				int e = errno == EBADF ? 0 : -errno;
				for (size_t j = 0; j < n && e; j++)
					if (!st[j] && !fs[j]->synced)
						st[j] = e;
				if (!e) /* an O_PATH directory: sync the files one by one */
					for (size_t j = i; j < n; j++) {
						int pd = hold_dir(s, &h, fs[j]->path);
						int fd = pd >= 0 && partial_name(fs[j], part, sizeof part)
								 ? openat(pd, part, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
						if (fd < 0 || fdatasync(fd) < 0)
							st[j] = -EIO;
						if (fd >= 0)
							close(fd);
					}
				break;
			}
		}
	}
	bool *told = calloc(n, sizeof *told);
	if (s->on_commit && told) {
		size_t k = 0; /* the hook hears of the files that are ready */
		for (size_t i = 0; i < n; i++) {
			if (st[i])
				continue;
			journal_key(s, fs[i], key, sizeof key);
			rel[i] = strdup(key);
			digest_format(fs[i]->root, dg[i]);
			cf[k++] = (struct jb_commit_file){.path = rel[i] ? rel[i] : "", .size = fs[i]->size,
							  .mtime_ns = fs[i]->mtime_ns, .digest = dg[i],
							  .via = s->seal_check ? s->ctl->peer : NULL,
							  .seal = fs[i]->seal_body, .seal_len = fs[i]->seal_len};
			told[i] = true;
		}
		if (k)
			s->on_commit(s->on_commit_ud, JB_COMMIT_BEFORE, cf, k, s->origin, s->session_id);
	}
	for (size_t i = 0; i < n; i++) {
		if (st[i])
			continue;
		int d = hold_dir(s, &h, fs[i]->path);
		st[i] = d < 0 ? d : partial_commit(fs[i], d);
	}
	if (h.fd >= 0)
		close(h.fd);
	journal_tx(s->journal, true);
	for (size_t i = 0; i < n; i++) {
		if (st[i])
			continue;
		struct xfile *f = fs[i];
		journal_key(s, f, key, sizeof key);
		if (journal_commit(s->journal, f->jid, key, f->size, f->mtime_ns, s->block_size, s->origin, f->root) < 0)
			jb_log(JB_LOG_WARN, "%s: committed, but the journal did not record it (it may be sent again)",
			       f->path);
	}
	if (journal_tx(s->journal, false) < 0)
		jb_log(JB_LOG_WARN, "journal: a group of %zu committed files was not recorded", n);
	if (s->on_commit && told) {
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			if (told[i])
				cf[k++].status = -st[i];
		if (k)
			s->on_commit(s->on_commit_ud, JB_COMMIT_AFTER, cf, k, s->origin, s->session_id);
	}
	free(told);
	for (size_t i = 0; i < n; i++) {
		if (st[i] && !fs[i]->jid)
			partial_drop(s, fs[i]); /* no journal record keeps it for a resume */
		if (st[i])
			session_post_file(s, EV_COMMITTED, idx[i], st[i], "%s: cannot commit: %s", fs[i]->path,
					  session_write_error(st[i]));
		else
			session_post_file(s, EV_COMMITTED, idx[i], 0, "%s", "");
	}
out:
	if (rel)
		for (size_t i = 0; i < n; i++)
			free(rel[i]);
	free(rel);
	free(dg);
	free(cf);
	free(st);
	free(fs);
}

static void *committer_main(void *arg)
{
	struct committer *c = arg;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->n && !c->stop)
			pthread_cond_wait(&c->cond, &c->lock);
		if (!c->n)
			break;
		/* at most GROUP_MAX at a time: a crash between the renames and the
		 * journal's record of them costs at most one group sent again */
		size_t n = JB_MIN(c->n, (size_t)GROUP_MAX);
		uint32_t group[GROUP_MAX];
		memcpy(group, c->q, n * sizeof *group);
		memmove(c->q, c->q + n, (c->n - n) * sizeof *c->q);
		c->n -= n;
		pthread_mutex_unlock(&c->lock);
		commit_group(c, group, n);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int committer_start(struct session *s, struct jb_error *err)
{
	if (s->cm)
		return 0;
	struct committer *c = calloc(1, sizeof *c);
	if (!c)
		return jb_oom(err);
	c->s = s;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if (pthread_create(&c->th, NULL, committer_main, c) != 0) {
		pthread_mutex_destroy(&c->lock);
		pthread_cond_destroy(&c->cond);
		free(c);
		return jb_err(err, EAGAIN, "cannot start the committer thread");
	}
	s->cm = c;
	return 0;
}

void committer_add(struct session *s, uint32_t file)
{
	struct committer *c = s->cm;
	pthread_mutex_lock(&c->lock);
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 64;
		uint32_t *nq = realloc(c->q, nc * sizeof *nq);
		if (!nq) {
			pthread_mutex_unlock(&c->lock);
			session_post_file(s, EV_COMMITTED, file, ENOMEM, "out of memory");
			return;
		}
		c->q = nq;
		c->cap = nc;
	}
	c->q[c->n++] = file;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void committer_stop(struct session *s)
{
	struct committer *c = s->cm;
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->th, NULL);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c->q);
	free(c);
	s->cm = NULL;
}
