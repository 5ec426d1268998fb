/* Relays (docs/ARCHITECTURE.md, "Relays"): a push whose HELLO names hops
 * beyond this site is received into this site's staging directory and, at
 * the same time, pushed on to the next hop (cut-through).  The receiving
 * session and the forwarding one share a feed: the entries as they arrive,
 * and of each regular file which blocks are verified and durable in
 * staging.  The forwarder offers an entry as soon as it is in the feed and
 * reads a block as soon as it is durable; the receiver answers each entry
 * upstream (FILE_DONE) only with what the next hop answered for it, so the
 * origin learns what the destination verified.
 *
 * The forwarder retries a lost next hop with backoff while the upstream
 * keeps sending into staging: the origin never sends a block twice.  An
 * upstream that is lost ends the forwarder too; staging keeps what it has
 * (with its journal records), so that the origin's next attempt moves only
 * what is missing on each hop. */
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay-internal.h"

static bool all_resulted(struct feed *fd)
{
	pthread_mutex_lock(&fd->lock);
	bool all = fd->ended && fd->lo >= fd->n;
	pthread_mutex_unlock(&fd->lock);
	return all;
}

/* Refusals that another attempt would only get again. */
static bool lasting(int code)
{
	return code == EACCES || code == EPERM || code == EPROTO || code == EPROTONOSUPPORT || code == EINVAL ||
	       code == ENAMETOOLONG || code == EBADMSG;
}

/* Sleep up to secs, or until the forwarder is cancelled. */
static void nap(struct feed *fd, double secs)
{
	for (double t = 0; t < secs && !fd->cancel; t += 0.1)
		usleep(100000);
}

static void *forward_main(void *arg)
{
	struct feed *fd = arg;
	struct jb_server *srv = fd->srv;
	double backoff = 1, down_since = 0; /* the first failed attempt since the last that moved anything */
	uint64_t nok_before = 0;
	struct route rt = {.origin = fd->origin, .nhops = fd->nhops, .flags = fd->cc[0] ? JB_ROUTE_CC : 0, .cc = fd->cc};
	for (int i = 0; i < fd->nhops; i++)
		rt.hops[i] = fd->hops[i];
	for (;;) {
		struct jb_xfer_opts o;
		jb_xfer_opts_init(&o);
		o.streams = fd->streams;
		o.block_size = fd->bs;
		o.encrypt = fd->hello_flags & JB_HELLO_ENCRYPT;
		o.tune.cc = fd->cc[0] ? fd->cc : NULL; /* the origin's --cc, else this site's default */
		o.cancel = &fd->cancel;
		struct jb_xfer_result res = {0};
		struct jb_error err = {0};
		pthread_mutex_lock(&fd->lock);
		bool again = fd->attempts++;
		pthread_mutex_unlock(&fd->lock);
		if (again)
			atomic_fetch_add(&srv->relay_retries, 1);
		int r = client_push_feed(srv->relay_cl, &fd->next, fd, &rt, fd->hello_flags & JB_HELLO_DEST_DIR, &o, &res,
					 &err);
		pthread_mutex_lock(&fd->lock);
		fd->forwarded += res.bytes_sent;
		pthread_mutex_unlock(&fd->lock);
		if (!again && res.cc[0])
			jb_log(JB_LOG_INFO, "relay: %s, next hop %s: data streams ran %s%s", fd->origin, fd->next.label, res.cc,
			       fd->cc[0] ? " (the origin's choice)" : "");
		atomic_fetch_add(&srv->relay_forwarded, res.bytes_sent);
		jb_xfer_result_free(&res);
		if (fd->cancel)
			break;
		if (all_resulted(fd))
			break; /* every entry has its answer, good or bad */
		pthread_mutex_lock(&fd->lock);
		if (fd->state == 0) {
			/* the first attempt: the origin is told why at once */
			fd->state = -1;
			fd->err = err;
			pthread_cond_broadcast(&fd->cond);
			pthread_mutex_unlock(&fd->lock);
			break;
		}
		pthread_mutex_unlock(&fd->lock);
		if (r < 0 && lasting(err.code)) {
			session_fatal(fd->up, err.code, "%s (relaying through %s)", err.msg, srv->c->name);
			break;
		}
		pthread_mutex_lock(&fd->lock);
		bool moved = res.bytes_sent > 0 || fd->nok > nok_before;
		nok_before = fd->nok;
		pthread_mutex_unlock(&fd->lock);
		double now = jb_now();
		if (moved || !down_since)
			down_since = now;
		if (now - down_since >= (double)srv->c->relay_give_up) {
			char shown[JB_WIRE_MAX_MSG];
			jb_log(JB_LOG_WARN, "relay: %s, next hop %s: nothing moved for %.0f s ([relay] give_up): giving up; "
			       "staging kept until it expires (%s)", fd->origin, fd->next.label, now - down_since,
			       jb_log_escape(err.msg, shown, sizeof shown));
			session_fatal(fd->up, ETIMEDOUT, "next hop %s: nothing moved for %.0f s (%s) (relaying through %s)",
				      fd->next.label, now - down_since, err.msg, srv->c->name);
			break;
		}
		char shown[JB_WIRE_MAX_MSG];
		jb_log(JB_LOG_WARN, "relay: %s, next hop %s: %s; trying again in %.0f s", fd->origin, fd->next.label,
		       jb_log_escape(err.msg, shown, sizeof shown), backoff);
		pthread_mutex_lock(&fd->lock);
		fd->napping = true;
		pthread_mutex_unlock(&fd->lock);
		nap(fd, backoff);
		pthread_mutex_lock(&fd->lock);
		fd->napping = false;
		pthread_mutex_unlock(&fd->lock);
		if (fd->cancel)
			break;
		backoff = JB_MIN(backoff * 2, 30);
	}
	return NULL;
}

/* The staging directory of a route: SHA-256 of who sends what where,
 * so that the origin's next attempt finds what this one staged. */
static void staging_key(const struct jb_msg *hello, const char *from, const char *path, char out[33])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t d[32] = {0};
	if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1) {
		const char *parts[4 + JB_WIRE_MAX_HOPS] = {"jumbo staging 2", hello->u.hello.origin, from, path};
		int n = 4;
		for (unsigned i = 0; i < hello->u.hello.nhops; i++)
			parts[n++] = hello->u.hello.hops[i];
		for (int i = 0; i < n; i++)
			EVP_DigestUpdate(md, parts[i], strlen(parts[i]) + 1);
		uint8_t fl = hello->u.hello.flags & JB_HELLO_DEST_DIR;
		EVP_DigestUpdate(md, &fl, 1);
		EVP_DigestFinal_ex(md, d, NULL);
	}
	EVP_MD_CTX_free(md);
	jb_hex(d, 16, out);
}

int relay_prepare(struct jb_server *srv, struct session *s, const struct jb_peer *peer, const struct jb_msg *hello,
		  const char *path, struct jb_error *err)
{
	const struct jb_config *c = srv->c;
	const char *origin = hello->u.hello.origin, *next = hello->u.hello.hops[0];
	const struct jb_peer *op = jb_config_peer(c, origin), *np = jb_config_peer(c, next);
	if (!c->relay_staging)
		return jb_err(err, EACCES, "site %s is not a relay (its jumbo.conf has no [relay] section)", c->name);
	if (!strcmp(next, c->name) || !strcmp(next, peer->name))
		return jb_err(err, EINVAL, "route goes back to %s", next);
	if (!op)
		return jb_err(err, EACCES, "site %s does not relay for %s: it is not a peer of %s", c->name, origin, c->name);
	if (!op->relay)
		return jb_err(err, EACCES, "site %s does not relay for %s ([peer %s] has no relay = yes)", c->name, origin,
			      origin);
	if (strcmp(peer->name, origin) && !peer->relay)
		return jb_err(err, EACCES, "site %s does not take relayed transfers from %s ([peer %s] has no relay = yes)",
			      c->name, peer->name, peer->name);
	if (!np || !np->address)
		return jb_err(err, EACCES, "site %s cannot relay to %s: no [peer %s] with an address", c->name, next, next);
	int r = session_take_fds(s, &s->nstreams, c->max_open_files, err);
	if (r < 0)
		return jb_err_prefix(err, "site %s is busy", c->name);
	if ((r = jb_private_dir(c->relay_staging, err)) < 0)
		return jb_err_prefix(err, "[relay] staging");
	struct feed *fd = calloc(1, sizeof *fd);
	char key[33];
	staging_key(hello, peer->name, path, key);
	if (fd)
		memcpy(fd->key, key, sizeof key);
	if (!fd || !(fd->e = calloc(WINDOW, sizeof *fd->e)) || asprintf(&fd->dir, "%s/%s", c->relay_staging, key) < 0) {
		if (fd)
			free(fd->e);
		free(fd);
		return jb_oom(err);
	}
	pthread_mutex_init(&fd->lock, NULL);
	pthread_cond_init(&fd->cond, NULL);
	fd->wake_fd = -1;
	fd->tamper_block = srv->tamper_block;
	fd->bs = s->block_size;
	fd->up = s;
	fd->srv = srv;
	fd->t0 = jb_now();
	snprintf(fd->origin, sizeof fd->origin, "%s", origin);
	fd->nhops = hello->u.hello.nhops - 1;
	for (int i = 0; i < fd->nhops; i++)
		snprintf(fd->hops[i], sizeof fd->hops[i], "%s", hello->u.hello.hops[i + 1]);
	fd->hello_flags = hello->u.hello.flags & (JB_HELLO_ENCRYPT | JB_HELLO_DEST_DIR);
	snprintf(fd->cc, sizeof fd->cc, "%s", hello->u.hello.route_cc);
	fd->streams = s->nstreams;
	fd->next = (struct jb_remote){.address = strdup(np->address), .path = strdup(path), .peer = np,
				      .label = strdup(np->name)};
	s->feed = fd;
	snprintf(s->origin, sizeof s->origin, "%s", origin);
	s->umask = 077; /* staging is this site's alone */
	if (!fd->next.address || !fd->next.path || !fd->next.label)
		return jb_oom(err);
	/* staging/KEY, trusted as the site's own; journal keys are its
	 * absolute path, apart from the data root's */
	pthread_mutex_lock(&srv->lock);
	for (struct feed *o = srv->feeds; o; o = o->next_live)
		if (!strcmp(o->key, key)) {
			pthread_mutex_unlock(&srv->lock);
			return jb_err(err, EBUSY, "site %s is relaying this transfer already (staging %s)", c->name, key);
		}
	fd->next_live = srv->feeds;
	srv->feeds = fd;
	fd->registered = true;
	pthread_mutex_unlock(&srv->lock);
	if ((r = dest_setup(s, AT_FDCWD, NULL, fd->dir, true, err)) < 0)
		return jb_err_prefix(err, "[relay] staging");
	utimensat(AT_FDCWD, fd->dir, NULL, 0); /* its age is the expirer's measure */
	if (pthread_create(&fd->thread, NULL, forward_main, fd) != 0)
		return jb_err(err, EAGAIN, "cannot start the forwarder");
	fd->started = true;
	atomic_fetch_add(&srv->relay_active, 1);
	atomic_fetch_add(&srv->relay_total, 1);
	/* the next hop's answer first: a refusal there is the origin's */
	pthread_mutex_lock(&fd->lock);
	while (fd->state == 0)
		pthread_cond_wait(&fd->cond, &fd->lock);
	int st = fd->state;
	pthread_mutex_unlock(&fd->lock);
	if (st < 0) {
		r = jb_err(err, fd->err.code ? fd->err.code : EIO, "%s (relaying through %s)", fd->err.msg, c->name);
		return r;
	}
	char shown[JB_WIRE_MAX_MSG];
	jb_log(JB_LOG_INFO, "%s: relaying %s's push of %s to %s%s%s (staging %s)", peer->name, origin,
	       jb_log_escape(*path ? path : "/", shown, sizeof shown), next, fd->nhops ? " and on to " : "",
	       fd->nhops ? fd->hops[fd->nhops - 1] : "", key);
	return 0;
}

/* The receiving session is over (r: how): the forwarder ends with it (at
 * once when the upstream failed), and a transfer that reached its
 * destination whole leaves nothing in staging. */
void relay_finish(struct session *s, int r)
{
	struct feed *fd = s->feed;
	if (!fd)
		return;
	if (r < 0)
		fd->cancel = 1;
	if (fd->started) {
		pthread_join(fd->thread, NULL);
		atomic_fetch_sub(&fd->srv->relay_active, 1);
	}
	/* (after custody the origin has gone: the next hop's answers count) */
	bool clean = r == 0 && all_resulted(fd) && (s->entries_ok == s->nfiles || (fd->custody && fd->nok == fd->n));
	int d = fd->registered ? open(fd->srv->c->relay_staging, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
	if (d >= 0) {
		if (clean)
			jb_remove_tree(d, fd->key);
		else if (unlinkat(d, fd->key, AT_REMOVEDIR) == 0)
			clean = true; /* refused before anything was staged */
		close(d);
	}
	jb_log(JB_LOG_INFO, "relay: %s's transfer through this site: %llu bytes forwarded in %d attempt%s%s",
	       fd->origin, (unsigned long long)fd->forwarded, fd->attempts, fd->attempts == 1 ? "" : "s",
	       clean ? "; staging freed" : "; staging kept for the next attempt");
	pthread_mutex_lock(&fd->srv->lock);
	for (struct feed **pp = &fd->srv->feeds; *pp; pp = &(*pp)->next_live)
		if (*pp == fd) {
			*pp = fd->next_live;
			break;
		}
	pthread_mutex_unlock(&fd->srv->lock);
	for (uint32_t i = 0; i < WINDOW; i++)
		if (fd->e[i].live)
			fentry_free(fd, &fd->e[i]);
	free(fd->e);
	for (size_t i = 0; i < fd->sq_n; i++)
		free(fd->sq[i].body);
	free(fd->sq);
	for (size_t i = 0; i < fd->rq_n; i++)
		free(fd->rq[i].body);
	free(fd->dir);
	jb_remote_free(&fd->next);
	pthread_mutex_destroy(&fd->lock);
	pthread_cond_destroy(&fd->cond);
	free(fd);
	s->feed = NULL;
}

uint64_t relay_expire(struct jb_server *srv, time_t cutoff)
{
	int d = open(srv->c->relay_staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d < 0)
		return 0;
	DIR *dir = fdopendir(d);
	if (!dir) {
		close(d);
		return 0;
	}
	uint64_t n = 0;
	struct dirent *de;
	while ((de = readdir(dir))) {
		struct stat st;
		if (strlen(de->d_name) != 32 || strspn(de->d_name, "0123456789abcdef") != 32 ||
		    fstatat(d, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) || st.st_mtime >= cutoff)
			continue;
		pthread_mutex_lock(&srv->lock);
		bool live = false;
		for (struct feed *o = srv->feeds; o && !live; o = o->next_live)
			live = !strcmp(o->key, de->d_name);
		/* removed under the lock: a transfer starting now waits for it */
		if (!live && jb_remove_tree(d, de->d_name) == 0)
			n++;
		pthread_mutex_unlock(&srv->lock);
	}
	closedir(dir);
	return n;
}
