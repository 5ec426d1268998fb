/* Expiry: what a receiving site keeps for transfers that never came back.
 *
 * A session that dies leaves its partial files (.NAME.jumbo-part) and the
 * journal records of their verified blocks, so that the next one resumes;
 * one that never comes would leave them for ever, and every file committed
 * keeps its record (the digest a re-send is checked against).  jumbod's
 * expirer removes, every interval (half the shorter of the two ages, 1 s to
 * an hour):
 *
 *  - a partial file beneath the data root that has not changed (ctime) for
 *    [site] max_partial_age, that no session holds (an OFD lock, which every
 *    open descriptor of a partial file holds, or a claim of this process on
 *    its path) and that is still the inode it looked at; with its record;
 *  - a record of a file being received, older than max_partial_age, whose
 *    partial file is gone (nothing is left to resume);
 *  - a committed record older than [site] max_journal_age (a re-send of
 *    that file is then received whole instead of checked).
 *
 * Both journals: the service's (STATE/journal.db, keys relative to the data
 * root) and the daemon's fetches' (STATE/fetch/journal.db, absolute keys).
 *
 * The walk follows no symbolic link and goes no deeper than a transfer can
 * (MAX_DEPTH); it stops when the daemon does.  It reads the whole data root
 * once an interval: with the default ages, once an hour. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server-internal.h"

#define MAX_DEPTH 256     /* as walk.c: no transfer makes a deeper tree */
#define ROWS_BATCH 256
#define PART_SUFFIX_LEN 11 /* ".jumbo-part" */

struct sweep {
	struct jb_server *srv;    /* jumbod's; NULL for a client's own journal */
	const struct jb_config *c;
	int rootfd;               /* the data root (jumbod) */
	struct journal *j;        /* whose records sweep_records looks at */
	const char *strip;        /* their keys are absolute, below this (the data root's real path) */
	bool absolute;            /* their keys are a client's own absolute paths, taken as they are */
	time_t cutoff;            /* a partial file or record older than this is stale */
	uint64_t partials, records;
};

static bool stopping(const struct sweep *w) { return w->srv && atomic_load(&w->srv->stop); }

/* The final name of the partial file name (".NAME.jumbo-part" -> "NAME"). */
static void final_name(const char *part, char *out, size_t len)
{
	size_t n = strlen(part) - 1 - PART_SUFFIX_LEN;
	snprintf(out, len, "%.*s", (int)n, part + 1);
}

static void record_key(const char *dir, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s%s%s", dir, *dir ? "/" : "", name);
}

/* The partial file part in d (the directory dir of the data root): removed
 * with its record if it is stale and nobody holds it.  1: removed. */
static int try_partial(struct sweep *w, int d, const char *dir, const char *part)
{
	struct stat st, now, dst;
	if (fstatat(d, part, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) || st.st_ctime >= w->cutoff)
		return 0;
	int fd = openat(d, part, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int r = 0;
	char name[JB_NAME_MAX + 1], key[2 * JB_PATH_MAX + 2];
	final_name(part, name, sizeof name);
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	/* held: a session has it open (the lock) or planned (the claim) */
	if (fstat(fd, &now) < 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev ||
	    fcntl(fd, F_OFD_SETLK, &fl) < 0 || fstat(d, &dst) < 0 || claim_held(dst.st_dev, dst.st_ino, name))
		goto out;
	/* still the inode looked at, under that name */
	if (fstatat(d, part, &now, AT_SYMLINK_NOFOLLOW) < 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev ||
	    now.st_ctime >= w->cutoff)
		goto out;
	if (unlinkat(d, part, 0) < 0) {
		jb_log(JB_LOG_WARN, "expiry: cannot remove a stale partial file in '%s': %s", dir, strerror(errno));
		goto out;
	}
	record_key(dir, name, key, sizeof key);
	if (journal_drop_key(w->srv->journal, key) > 0)
		w->records++;
	w->partials++;
	r = 1;
out:
	close(fd);
	return r;
}

/* One directory of the walk: its stale partial files removed, its
 * subdirectories pushed on the stack (paths relative to the data root). */
static int sweep_dir(struct sweep *w, const char *dir, char ***stack, size_t *n, size_t *cap)
{
	int pd = jb_open_dir_nofollow(w->rootfd, *dir ? dir : ".", 0);
	int d = pd >= 0 ? openat(pd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : pd;
	if (pd >= 0)
		close(pd);
	if (d < 0)
		return 0; /* gone, or became a link since it was listed */
	DIR *dp = fdopendir(d);
	if (!dp) {
		close(d);
		return 0;
	}
	int depth = 0;
	for (const char *p = dir; *p; p++)
		depth += *p == '/';
	struct dirent *e;
	while ((e = readdir(dp))) {
		const char *nm = e->d_name;
		if (!strcmp(nm, ".") || !strcmp(nm, ".."))
			continue;
		unsigned char t = e->d_type;
		if (t == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(d, nm, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			t = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
		}
		if (t == DT_REG && partial_reserved(nm, strlen(nm))) {
			try_partial(w, d, dir, nm);
		} else if (t == DT_DIR && depth < MAX_DEPTH) {
			char *sub;
			if (asprintf(&sub, "%s%s%s", dir, *dir ? "/" : "", nm) < 0)
				break;
			if (*n == *cap) {
				size_t nc = *cap ? *cap * 2 : 64;
				char **ns = realloc(*stack, nc * sizeof *ns);
				if (!ns) {
					free(sub);
					break;
				}
				*stack = ns, *cap = nc;
			}
			(*stack)[(*n)++] = sub;
		}
	}
	closedir(dp);
	return 0;
}

static void sweep_tree(struct sweep *w)
{
	char **stack = NULL;
	size_t n = 0, cap = 0;
	sweep_dir(w, "", &stack, &n, &cap);
	while (n && !stopping(w)) {
		char *dir = stack[--n];
		sweep_dir(w, dir, &stack, &n, &cap);
		free(dir);
	}
	while (n)
		free(stack[--n]);
	free(stack);
}

/* A record of a file being received whose partial file is gone, or beyond
 * the data root: nothing can resume it. */
static bool record_dead(struct sweep *w, const char *key)
{
	size_t sn = w->strip ? strlen(w->strip) : 0;
	if (w->strip && !strncmp(key, w->strip, sn) && key[sn] == '/')
		key += sn + 1;
	const char *sl = strrchr(key, '/');
	char dir[JB_PATH_MAX], part[JB_NAME_MAX + 1];
	const char *name = sl ? sl + 1 : key;
	if ((*key == '/') != w->absolute || (sl && (size_t)(sl - key) >= sizeof dir) ||
	    !jb_partial_name(name, part, sizeof part))
		return true;
	snprintf(dir, sizeof dir, "%.*s", sl ? (int)(sl - key) : 0, key);
	int d;
	if (w->absolute) { /* a client's own destination, as its user named it */
		d = open(*dir ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (d < 0)
			d = -errno;
	} else {
		d = jb_open_dir_nofollow(w->rootfd, *dir ? dir : ".", 0);
	}
	if (d < 0)
		return d == -ENOENT || d == -ENOTDIR || d == -ELOOP || d == -EXDEV;
	struct stat st;
	bool dead = fstat(d, &st) == 0 && !claim_held(st.st_dev, st.st_ino, name) &&
		    fstatat(d, part, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT;
	close(d);
	return dead;
}

static void sweep_records(struct sweep *w)
{
	struct journal_old rows[ROWS_BATCH];
	int64_t after = 0;
	int n;
	do {
		if (journal_stale(w->j, (int64_t)w->cutoff, after, rows, ROWS_BATCH, &n) < 0) {
			jb_log(JB_LOG_WARN, "expiry: the journal cannot be read");
			return;
		}
		for (int i = 0; i < n; i++) {
			after = rows[i].id;
			if (!stopping(w) && record_dead(w, rows[i].key) && journal_drop(w->j, rows[i].id) == 0)
				w->records++;
			free(rows[i].key);
		}
	} while (n == ROWS_BATCH && !stopping(w));
}

int expire_interval(const struct jb_config *c)
{
	int64_t a = JB_MIN(c->max_partial_age, c->max_journal_age) / 2;
	return (int)JB_MAX(1, JB_MIN(a, 3600));
}

/* Records of j: the dead ones of files being received, the old committed ones. */
static uint64_t sweep_journal(struct sweep *w, struct journal *j, const char *strip, time_t now)
{
	w->j = j;
	w->strip = strip;
	sweep_records(w);
	int64_t old = stopping(w) ? 0 : journal_expire_committed(j, (int64_t)(now - w->c->max_journal_age));
	if (old < 0) {
		jb_log(JB_LOG_WARN, "expiry: the journal's committed records cannot be deleted");
		old = 0;
	}
	return (uint64_t)old;
}

void expire_once(struct jb_server *srv)
{
	time_t now = time(NULL);
	struct sweep w = {.srv = srv, .c = srv->c, .rootfd = srv->rootfd, .cutoff = now - (time_t)srv->c->max_partial_age};
	sweep_tree(&w);
	uint64_t old = sweep_journal(&w, srv->journal, NULL, now);
	/* the daemon's own fetches (durable transfers that pull) keep theirs
	 * apart, keyed by absolute path */
	char path[4200], *root = realpath(srv->c->root, NULL);
	struct journal *fj = NULL;
	struct jb_error err = {0};
	snprintf(path, sizeof path, "%s/fetch/journal.db", srv->c->state);
	if (root && !stopping(&w) && access(path, F_OK) == 0 && journal_open(path, &fj, &err) == 0) {
		old += sweep_journal(&w, fj, root, now);
		journal_close(fj);
	}
	free(root);
	if (srv->c->relay_staging && !stopping(&w)) {
		uint64_t n = relay_expire(srv, w.cutoff);
		if (n)
			jb_log(JB_LOG_INFO, "expiry: %llu stale staging directories of relayed transfers removed",
			       (unsigned long long)n);
		w.partials += n;
	}
	atomic_fetch_add(&srv->expired_partials, w.partials);
	atomic_fetch_add(&srv->expired_records, w.records + old);
	if (w.partials || w.records || old)
		jb_log(JB_LOG_INFO, "expiry: %llu stale partial files removed, %llu records of files being received "
		       "and %llu committed records dropped", (unsigned long long)w.partials,
		       (unsigned long long)w.records, (unsigned long long)old);
}

static void *expire_main(void *arg)
{
	struct jb_server *srv = arg;
	int every = expire_interval(srv->c);
	pthread_mutex_lock(&srv->lock);
	while (!atomic_load(&srv->stop)) {
		pthread_mutex_unlock(&srv->lock);
		expire_once(srv);
		pthread_mutex_lock(&srv->lock);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += every;
		while (!atomic_load(&srv->stop) &&
		       pthread_cond_timedwait(&srv->expire_wake, &srv->lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

int expire_start(struct jb_server *srv)
{
	int r = pthread_create(&srv->expirer, NULL, expire_main, srv);
	srv->expirer_on = r == 0;
	if (r)
		jb_log(JB_LOG_WARN, "expiry: no thread (%s): stale partial files and old records are kept",
		       strerror(r));
	return -r;
}

void expire_stop(struct jb_server *srv)
{
	if (!srv->expirer_on)
		return;
	pthread_mutex_lock(&srv->lock);
	pthread_cond_broadcast(&srv->expire_wake);
	pthread_mutex_unlock(&srv->lock);
	pthread_join(srv->expirer, NULL);
	srv->expirer_on = false;
}

int expire_client_journal(struct journal *j, const struct jb_config *c)
{
	time_t now = time(NULL);
	struct sweep w = {.c = c, .rootfd = -1, .absolute = true, .cutoff = now - (time_t)c->max_partial_age};
	uint64_t old = sweep_journal(&w, j, NULL, now);
	return (int)JB_MIN(w.records + old, (uint64_t)INT32_MAX);
}
