/* The site daemon's transfer service: accepts control connections and data
 * streams on one port, authenticates peers by pinned fingerprint, and runs
 * each session in its own thread. */
#include <fcntl.h>
#include <netdb.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "xfer-internal.h"

#define JOIN_TIMEOUT 30
#define MAX_SESSIONS 256
/* Connection threads at once, counted from accept (before any
 * authentication) until the thread ends; beyond it a new connection is
 * closed at once.  A session's data streams count only until they join. */
#define MAX_CONNS 512

struct live {
	struct live *next;
	struct jb_server *srv;
	uint8_t id[16], secret[32], peer_fp[32];
	struct session *s;
	int expected, joined;
	bool encrypt;
	uint64_t rate_bps;
};

/* One accepted connection and its thread, listed so that a stopping server
 * can end them all (jb_server_drain).  The threads are joined, not detached:
 * a thread that has said it is done still runs its thread-exit handlers
 * (OpenSSL's among them), and the server must not be freed, nor the process
 * exit, under them. */
enum conn_state { CONN_NEW, CONN_JOINING, CONN_RUNNING };
struct conn {
	struct conn *next, **pprev;
	pthread_t thread;
	struct jb_server *srv;
	int fd;              /* -1 once closed or handed to a session */
	enum conn_state state;
	struct session *s;   /* CONN_RUNNING: the session this thread runs */
};

struct jb_server {
	const struct jb_config *c;
	int corrupt_block;      /* jb_server_test_corrupt_block */
	SSL_CTX *ctx;
	int lfd, rootfd;
	struct journal *journal;
	atomic_bool stop;
	pthread_mutex_t lock;
	pthread_cond_t joined;
	pthread_cond_t idle;    /* a connection thread ended */
	struct live *live;
	int nlive;
	struct conn *conns;     /* under lock */
	struct conn *done;      /* under lock: threads that ended, to be joined */
	atomic_int nconns;      /* written under lock, read without */
	uint64_t conns_refused; /* accept loop only: over MAX_CONNS */
	double conns_warned;
	atomic_uint_fast64_t sessions, refused, bytes_in, bytes_out, streams_active, blocks_bad;
	jb_commit_fn on_commit;
	void *on_commit_ud;
};

void jb_server_test_corrupt_block(struct jb_server *s, int block) { s->corrupt_block = block; }

void jb_server_on_commit(struct jb_server *s, jb_commit_fn fn, void *ud)
{
	s->on_commit = fn;
	s->on_commit_ud = ud;
}

/* Take a connection off the list of running ones; srv->lock held. */
static void conn_unlink(struct conn *cn)
{
	if ((*cn->pprev = cn->next))
		cn->next->pprev = cn->pprev;
	atomic_fetch_sub(&cn->srv->nconns, 1);
	pthread_cond_broadcast(&cn->srv->idle);
}

/* The end of a connection thread: hand it to reap_conns. */
static void conn_end(struct conn *cn)
{
	struct jb_server *srv = cn->srv;
	jb_fds_give(1);
	pthread_mutex_lock(&srv->lock);
	conn_unlink(cn);
	cn->next = srv->done;
	srv->done = cn;
	pthread_mutex_unlock(&srv->lock);
}

/* Join the threads that ended.  Only the thread that creates them calls it
 * (the accept loop, then jb_server_drain and jb_server_free after it). */
static void reap_conns(struct jb_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	struct conn *c = srv->done;
	srv->done = NULL;
	pthread_mutex_unlock(&srv->lock);
	while (c) {
		struct conn *next = c->next;
		pthread_join(c->thread, NULL);
		free(c);
		c = next;
	}
}

int jb_server_new(const struct jb_config *c, struct jb_server **ret, struct jb_error *err)
{
	int r = jb_config_check_daemon(c, err);
	if (r < 0)
		return r;
	struct jb_server *s = calloc(1, sizeof *s);
	if (!s)
		return jb_oom(err);
	s->c = c;
	s->corrupt_block = -1;
	s->lfd = s->rootfd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->joined, NULL);
	pthread_cond_init(&s->idle, NULL);
	char path[4200];
	if (!(s->ctx = jb_tls_ctx(c->identity, true, err))) {
		r = -EINVAL;
		goto fail;
	}
	s->rootfd = open(c->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->rootfd < 0) {
		r = jb_err(err, errno, "data root %s: %s", c->root, strerror(errno));
		goto fail;
	}
	if (mkdir(c->state, 0700) < 0 && errno != EEXIST) {
		r = jb_err(err, errno, "state directory %s: %s", c->state, strerror(errno));
		goto fail;
	}
	snprintf(path, sizeof path, "%s/journal.db", c->state);
	if ((r = journal_open(path, &s->journal, err)) < 0)
		goto fail;
	if ((s->lfd = jb_sock_listen(c->listen, 128, err)) < 0) {
		r = s->lfd;
		goto fail;
	}
	*ret = s;
	return 0;
fail:
	jb_server_free(s);
	return r;
}

int jb_server_port(const struct jb_server *s) { return jb_sock_local_port(s->lfd); }
void jb_server_stop(struct jb_server *s) { atomic_store(&s->stop, true); }

void jb_server_free(struct jb_server *s)
{
	if (!s)
		return;
	if (atomic_load(&s->nconns) > 0) {
		/* threads still use the journal, the data root and the TLS context:
		 * leave them to the process's exit rather than pull them away */
		jb_log(JB_LOG_WARN, "site %s: %d connections still running; not freeing the server", s->c->name,
		       atomic_load(&s->nconns));
		return;
	}
	reap_conns(s);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->rootfd >= 0)
		close(s->rootfd);
	journal_close(s->journal);
	SSL_CTX_free(s->ctx);
	pthread_cond_destroy(&s->idle);
	pthread_cond_destroy(&s->joined);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void jb_server_stats(const struct jb_server *s, struct jb_server_stats *r)
{
	r->sessions = atomic_load(&s->sessions);
	r->refused = atomic_load(&s->refused);
	r->bytes_in = atomic_load(&s->bytes_in);
	r->bytes_out = atomic_load(&s->bytes_out);
	r->sessions_active = (uint64_t)s->nlive;
	r->streams_active = atomic_load(&s->streams_active);
	r->blocks_bad = atomic_load(&s->blocks_bad);
}

static void joined_reply(int fd, SSL *ssl, uint16_t status)
{
	uint8_t a[JB_JOINED_LEN];
	jb_wire_joined_encode(status, a);
	if (ssl)
		jb_tls_write_full(ssl, a, sizeof a);
	else
		jb_write_full(fd, a, sizeof a);
}

/* The connection's descriptor is about to be closed or handed on: a stopping
 * server must no longer shut it down. */
static void conn_forget_fd(struct conn *cn)
{
	pthread_mutex_lock(&cn->srv->lock);
	cn->fd = -1;
	pthread_mutex_unlock(&cn->srv->lock);
}

/* Have all of a session's streams joined?  Its receiver then starts reading
 * them while it still plans the manifest. */
/* Take a session off the list of those waiting for streams; srv->lock held. */
static void live_unlink(struct jb_server *srv, struct live *l)
{
	for (struct live **pp = &srv->live; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			srv->nlive--;
			break;
		}
}

static bool streams_ready(void *ud, int *ret_joined)
{
	struct live *l = ud;
	pthread_mutex_lock(&l->srv->lock);
	bool all = l->joined == l->expected;
	*ret_joined = l->joined;
	if (all)
		live_unlink(l->srv, l); /* no more joins */
	pthread_mutex_unlock(&l->srv->lock);
	return all;
}

/* A data stream presenting its JOIN: hand it to its session or refuse it. */
static void handle_join(struct conn *cn, SSL *ssl, const uint8_t *fp, const uint8_t raw[JB_JOIN_LEN])
{
	struct jb_server *srv = cn->srv;
	int fd = cn->fd;
	struct jb_join j;
	char why_buf[96];
	const char *why = "malformed JOIN";
	int dr = jb_wire_join_decode(raw, &j);
	if (dr == 0 && j.version != JB_WIRE_VERSION) {
		snprintf(why_buf, sizeof why_buf, "JOIN version %u is not supported (this site speaks %u)", j.version,
			 JB_WIRE_VERSION);
		why = why_buf;
	} else if (dr == 0) {
		why = "unknown session";
		pthread_mutex_lock(&srv->lock);
		for (struct live *l = srv->live; l; l = l->next) {
			if (memcmp(l->id, j.session, 16))
				continue;
			struct stream *st = j.index < l->expected ? &l->s->streams[j.index] : NULL;
			if (!st || st->fd >= 0 || !join_token_ok(l->secret, l->id, j.index, j.token))
				why = "bad token or stream index";
			else if (l->encrypt && (!ssl || memcmp(fp, l->peer_fp, 32)))
				why = "stream must be encrypted by the same peer";
			else {
				st->fd = fd;
				st->ssl = ssl;
				st->index = j.index;
				cn->fd = -1; /* the session's now */
				jb_sock_tune(fd, &(struct jb_tune){.rate_bps = l->rate_bps});
				l->joined++;
				why = NULL;
				joined_reply(fd, ssl, 0);
				pthread_cond_broadcast(&srv->joined);
			}
			break;
		}
		pthread_mutex_unlock(&srv->lock);
	}
	if (why) {
		jb_log(JB_LOG_WARN, "data stream refused: %s", why);
		joined_reply(fd, ssl, 1);
		if (ssl)
			SSL_free(ssl);
		conn_forget_fd(cn);
		close(fd);
	}
}

/* Refuse a session being set up: log it and tell the peer why, with the
 * errno-style code of the cause (EACCES, EINVAL, ENOENT, ...). */
static void refuse(struct ctl *ctl, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void refuse(struct ctl *ctl, int code, const char *fmt, ...)
{
	char msg[JB_WIRE_MAX_MSG];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	jb_log(JB_LOG_WARN, "%s: refused: %s", ctl->peer, msg);
	ctl_send_error(ctl, code ? code : EIO, msg);
}

/* LIST: a directory's children, or a file itself, one level only, however
 * large the directory. */
static int do_list(struct jb_server *srv, struct ctl *ctl, const char *path)
{
	struct jb_error err = {0};
	struct walker *w = NULL;
	struct jb_wire_entry *e = malloc(sizeof *e);
	const char *sl = strrchr(path, '/');
	int r = e ? walker_new(srv->rootfd, true, false, &w) : -ENOMEM;
	if (r == 0)
		r = walker_add(w, path, sl ? sl + 1 : *path ? path : srv->c->name, true, &err);
	if (r == 0)
		r = walker_start(w, &err);
	if (r == 0) {
		uint8_t z[32] = {0};
		put_welcome(&ctl->out, 0, 1, JB_WIRE_DEFAULT_BLOCK, z, z, srv->c->name);
	}
	uint32_t n = 0;
	uint64_t bytes = 0;
	struct walk_entry we;
	while (r == 0) {
		struct jb_buf *b = &ctl->out;
		size_t mark = jb_frame_begin(b, JB_MSG_FILES);
		jb_buf_u32(b, n);
		size_t cpos = b->len;
		jb_buf_u32(b, 0);
		uint32_t count = 0;
		int more = 1;
		while (count < 400 && (more = walker_next(w, &we, &err)) == 1) {
			*e = (struct jb_wire_entry){.type = we.type, .size = we.size, .mode = we.mode, .mtime_ns = we.mtime_ns};
			strcpy(e->path, we.path);
			jb_wire_put_entry(b, e);
			bytes += we.size;
			count++;
		}
		if (more < 0) {
			r = more;
			break;
		}
		if (!b->oom) {
			b->p[cpos] = (uint8_t)(count >> 24), b->p[cpos + 1] = (uint8_t)(count >> 16);
			b->p[cpos + 2] = (uint8_t)(count >> 8), b->p[cpos + 3] = (uint8_t)count;
		}
		jb_frame_end(b, mark);
		n += count;
		if (more == 0) {
			size_t m = jb_frame_begin(b, JB_MSG_FILES_END);
			jb_buf_u32(b, n);
			jb_buf_u64(b, bytes);
			jb_frame_end(b, m);
			r = ctl_flush(ctl, &err); /* all of it before the close */
			break;
		}
		if ((r = ctl_queued(ctl) > (1u << 20) ? ctl_flush(ctl, &err) : ctl_send(ctl, &err)) < 0)
			break;
	}
	if (r < 0)
		ctl_send_error(ctl, err.code ? err.code : -r, err.msg[0] ? err.msg : strerror(-r));
	walker_free(w);
	free(e);
	return r;
}

/* A session's settings from the HELLO, its descriptors, what it sends
 * (the manifest) or where it writes, its id and secret. */
static int session_prepare(struct jb_server *srv, struct session *s, struct live *l, struct ctl *ctl,
			   const struct jb_peer *peer, const uint8_t fp[32], const struct jb_msg *hello, const char *path,
			   struct jb_error *err)
{
	s->ctl = ctl;
	s->block_size = hello->u.hello.block_size;
	s->nstreams = JB_MAX(1, JB_MIN((int)hello->u.hello.streams, JB_WIRE_MAX_STREAMS));
	s->encrypt = hello->u.hello.flags & JB_HELLO_ENCRYPT;
	s->journal = srv->journal;
	/* descriptors first: fewer streams than asked, or a clear refusal,
	 * rather than EMFILE half way */
	int r = session_take_fds(s, &s->nstreams, srv->c->max_open_files, err);
	if (r < 0)
		return jb_err_prefix(err, "site %s is busy", srv->c->name);
	if (hello->u.hello.op == JB_OP_PUSH) {
		snprintf(s->origin, sizeof s->origin, "%s", peer->name);
		s->umask = (mode_t)srv->c->umask;
		r = dest_setup(s, srv->rootfd, path, hello->u.hello.flags & JB_HELLO_DEST_DIR, true, err);
	} else {
		snprintf(s->origin, sizeof s->origin, "%s", srv->c->name);
		s->corrupt_block = srv->corrupt_block;
		r = manifest_add_beneath(s, srv->rootfd, path, hello->u.hello.flags & JB_HELLO_RECURSIVE, false, err);
		if (r == 0)
			r = manifest_sort(s, err);
	}
	if (r < 0)
		return r;
	l->s = s;
	l->srv = srv;
	l->expected = s->nstreams;
	if (!s->sender) {
		s->on_commit = srv->on_commit;
		s->on_commit_ud = srv->on_commit_ud;
		s->streams_ready = streams_ready;
		s->streams_ready_ud = l;
		s->join_deadline = jb_now() + JOIN_TIMEOUT;
	}
	l->encrypt = s->encrypt;
	l->rate_bps = hello->u.hello.op == JB_OP_PULL ? hello->u.hello.rate_bps : 0;
	memcpy(l->peer_fp, fp, 32);
	if (RAND_bytes(l->id, 16) != 1 || RAND_bytes(l->secret, 32) != 1)
		return jb_err(err, EIO, "cannot make a session secret");
	return 0;
}

/* A sender's streams join while its manifest goes out (a client sends its
 * JOINs without waiting); then it leaves the joining sessions. */
static int sender_join(struct jb_server *srv, struct conn *cn, struct session *s, struct live *l, struct ctl *ctl,
		       struct jb_error *err)
{
	/* The manifest goes while the streams are still joining: a
	 * client sends its JOINs without waiting, so the first block
	 * follows the WELCOME by one round trip, not three. */
	int r = sender_offer(s, err);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += JOIN_TIMEOUT;
	pthread_mutex_lock(&srv->lock);
	while (r == 0 && l->joined < l->expected && !atomic_load(&srv->stop)) {
		if (ctl_queued(ctl)) {
			/* the manifest is still going out: keep writing it
			 * while the streams join */
			pthread_mutex_unlock(&srv->lock);
			r = ctl_send(ctl, err);
			if (r == 0 && ctl_queued(ctl))
				poll(&(struct pollfd){.fd = ctl->fd, .events = POLLOUT}, 1, 5);
			pthread_mutex_lock(&srv->lock);
			struct timespec now;
			clock_gettime(CLOCK_REALTIME, &now);
			if (r == 0 && l->joined < l->expected && now.tv_sec >= until.tv_sec)
				r = jb_err(err, ETIMEDOUT, "only %d of %d data streams joined", l->joined, l->expected);
			continue;
		}
		if (pthread_cond_timedwait(&srv->joined, &srv->lock, &until) == ETIMEDOUT)
			r = jb_err(err, ETIMEDOUT, "only %d of %d data streams joined", l->joined, l->expected);
	}
	live_unlink(srv, l); /* no more joins: the session is about to run */
	if (atomic_load(&srv->stop))
		r = jb_err(err, ESHUTDOWN, "site %s is shutting down", srv->c->name);
	if (r == 0) {
		/* from here jb_server_drain ends the session through its event queue */
		cn->state = CONN_RUNNING;
		cn->s = s;
	} else {
		cn->state = CONN_NEW;
	}
	pthread_mutex_unlock(&srv->lock);
	return r;
}

static void run_session(struct conn *cn, struct ctl *ctl, const struct jb_peer *peer, const uint8_t fp[32],
			const struct jb_msg *hello)
{
	struct jb_server *srv = cn->srv;
	struct jb_error err = {0};
	char *path = NULL;
	int r;
	const char *opname = hello->u.hello.op == JB_OP_PUSH ? "push" : hello->u.hello.op == JB_OP_PULL ? "pull" : "list";
	if (hello->u.hello.version != JB_WIRE_VERSION) {
		refuse(ctl, EPROTONOSUPPORT, "protocol version %u is not supported (this site speaks %u)",
		       hello->u.hello.version, JB_WIRE_VERSION);
		return;
	}
	if (jb_path_clean(hello->u.hello.path, &path, &err) < 0) {
		refuse(ctl, err.code, "%s", err.msg);
		return;
	}
	if (hello->u.hello.op == JB_OP_LIST) {
		do_list(srv, ctl, path);
		free(path);
		return;
	}
	uint32_t bs = hello->u.hello.block_size;
	if (bs < JB_WIRE_MIN_BLOCK || bs > JB_WIRE_MAX_BLOCK) {
		refuse(ctl, EINVAL, "block size %u outside %u..%u", bs, JB_WIRE_MIN_BLOCK, JB_WIRE_MAX_BLOCK);
		free(path);
		return;
	}
	struct session *s = calloc(1, sizeof *s);
	struct live *l = calloc(1, sizeof *l);
	r = s && l ? session_init(s, hello->u.hello.op == JB_OP_PULL) : -ENOMEM;
	if (r < 0) {
		refuse(ctl, -r, "cannot start a session: %s", strerror(-r));
		if (s && l)
			session_free(s);
		free(s);
		free(l);
		free(path);
		return;
	}
	bool linked = false;
	if ((r = session_prepare(srv, s, l, ctl, peer, fp, hello, path, &err)) < 0) {
		refuse(ctl, err.code, "%s", err.msg);
		goto out;
	}
	jb_hex(l->id, 8, s->session_id);
	pthread_mutex_lock(&srv->lock);
	if (srv->nlive >= MAX_SESSIONS) {
		pthread_mutex_unlock(&srv->lock);
		refuse(ctl, EAGAIN, "too many sessions (limit %d)", MAX_SESSIONS);
		goto out;
	}
	l->next = srv->live;
	srv->live = l;
	srv->nlive++;
	linked = true;
	/* A receiver plans the manifest while its streams join (receiver_run
	 * waits for them itself), so jb_server_drain ends it through its event
	 * queue from here; a sender waits for them below. */
	cn->state = s->sender ? CONN_JOINING : CONN_RUNNING;
	cn->s = s->sender ? NULL : s;
	pthread_mutex_unlock(&srv->lock);
	put_welcome(&ctl->out, s->encrypt ? JB_HELLO_ENCRYPT : 0, (uint16_t)s->nstreams, bs, l->id, l->secret,
		    srv->c->name);
	r = ctl_flush(ctl, &err);
	if (r == 0 && s->sender) {
		r = sender_join(srv, cn, s, l, ctl, &err);
		linked = false; /* no more joins: the session is about to run */
	}
	if (r < 0) {
		refuse(ctl, err.code, "%s", err.msg);
		goto out;
	}
	atomic_fetch_add(&srv->sessions, 1);
	jb_log(JB_LOG_INFO, "%s: %s %s with %d streams", peer->name, opname, *path ? path : "/", s->nstreams);
	atomic_fetch_add(&srv->streams_active, (uint64_t)s->nstreams);
	r = s->sender ? sender_run(s, &err) : receiver_run(s, &err);
	atomic_fetch_sub(&srv->streams_active, (uint64_t)s->nstreams);
	atomic_fetch_add(&srv->blocks_bad, atomic_load(&s->blocks_bad));
	pthread_mutex_lock(&srv->lock);
	if (linked)
		live_unlink(srv, l); /* a receiver whose streams never all joined */
	linked = false;
	cn->state = CONN_NEW;
	cn->s = NULL;
	pthread_mutex_unlock(&srv->lock);
	uint64_t moved = atomic_load(&s->bytes_moved);
	atomic_fetch_add(s->sender ? &srv->bytes_out : &srv->bytes_in, moved);
	double secs = jb_now() - s->t0;
	if (r < 0)
		jb_log(JB_LOG_WARN, "%s: %s %s failed: %s", peer->name, opname, *path ? path : "/", err.msg);
	else
		jb_log(JB_LOG_INFO, "%s: %s %s done: %u entries (%llu failed), %llu bytes in %.2f s (%.2f Gbit/s)",
		       peer->name, opname, *path ? path : "/", s->nfiles,
		       (unsigned long long)(s->entries_done - s->entries_ok), (unsigned long long)moved, secs,
		       secs > 0 ? moved * 8 / secs / 1e9 : 0.0);
out:
	if (linked) {
		pthread_mutex_lock(&srv->lock);
		live_unlink(srv, l);
		cn->state = CONN_NEW;
		cn->s = NULL;
		pthread_mutex_unlock(&srv->lock);
	}
	s->ctl = NULL;
	session_free(s);
	free(s);
	free(l);
	free(path);
}

static void serve_conn(struct conn *cn)
{
	struct jb_server *srv = cn->srv;
	int fd = cn->fd;
	struct timeval tv = {.tv_sec = JOIN_TIMEOUT};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	uint8_t first;
	if (recv(fd, &first, 1, MSG_PEEK) != 1)
		goto drop;
	if (first == 0x4a) { /* 'J': a data stream in the clear */
		uint8_t raw[JB_JOIN_LEN];
		if (jb_read_full(fd, raw, sizeof raw) < 0)
			goto drop;
		struct timeval z = {0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &z, sizeof z);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &z, sizeof z);
		handle_join(cn, NULL, NULL, raw);
		return;
	}
	if (first != 0x16) /* not a TLS handshake either */
		goto drop;
	struct jb_error err = {0};
	uint8_t fp[32];
	SSL *ssl = jb_tls_handshake(srv->ctx, fd, true, fp, &err);
	if (!ssl) {
		jb_log(JB_LOG_WARN, "connection dropped: %s", err.msg);
		goto drop;
	}
	const struct jb_peer *peer = jb_config_peer_by_fp(srv->c, fp);
	uint8_t head[4];
	if (peer && SSL_peek(ssl, head, 4) == 4 &&
	    ((uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3]) == JB_JOIN_MAGIC) {
		/* an encrypted data stream */
		uint8_t raw[JB_JOIN_LEN];
		if (jb_tls_read_full(ssl, raw, sizeof raw) < 0) {
			SSL_free(ssl);
			goto drop;
		}
		struct timeval z = {0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &z, sizeof z);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &z, sizeof z);
		handle_join(cn, ssl, fp, raw);
		return;
	}
	struct ctl ctl;
	if (ctl_init(&ctl, ssl, fd) < 0) {
		SSL_free(ssl);
		goto drop;
	}
	if (!peer) {
		char f[72];
		jb_fp_format(fp, f);
		snprintf(ctl.peer, sizeof ctl.peer, "unknown peer");
		atomic_fetch_add(&srv->refused, 1);
		refuse(&ctl, EACCES, "site %s does not know you: certificate %s is not pinned in any [peer] section",
		       srv->c->name, f);
		conn_forget_fd(cn);
		ctl_close(&ctl);
		return;
	}
	snprintf(ctl.peer, sizeof ctl.peer, "%s", peer->name);
	int r = ctl_recv(&ctl, JOIN_TIMEOUT * 1000, -1, &err);
	if (r == 1 && ctl.msg.type == JB_MSG_HELLO) {
		struct jb_msg *hello = malloc(sizeof *hello);
		if (hello) {
			*hello = ctl.msg;
			run_session(cn, &ctl, peer, fp, hello);
			free(hello);
		}
	} else if (r == 0) {
		jb_log(JB_LOG_WARN, "%s: no HELLO within %d s", peer->name, JOIN_TIMEOUT);
	} else if (r > 0) {
		refuse(&ctl, EPROTO, "expected HELLO");
	} else {
		jb_log(JB_LOG_WARN, "%s: session closed: %s", peer->name, err.msg);
		ctl_send_error(&ctl, err.code, err.msg);
	}
	conn_forget_fd(cn);
	ctl_close(&ctl);
	return;
drop:
	conn_forget_fd(cn);
	close(fd);
}

static void *conn_main(void *arg)
{
	struct conn *cn = arg;
	serve_conn(cn);
	conn_end(cn);
	return NULL;
}

/* Over MAX_CONNS: close at once.  A flood is logged once a second, not once a
 * connection. */
static void refuse_conn(struct jb_server *srv, int fd, const struct sockaddr_storage *sa, socklen_t salen)
{
	char host[NI_MAXHOST] = "?";
	getnameinfo((const struct sockaddr *)sa, salen, host, sizeof host, NULL, 0, NI_NUMERICHOST);
	close(fd);
	srv->conns_refused++;
	double now = jb_now();
	if (now - srv->conns_warned >= 1) {
		jb_log(JB_LOG_WARN, "connection from %s closed: too many connections (limit %d, or the file descriptors "
		       "RLIMIT_NOFILE allows; %llu closed so far)", host, MAX_CONNS, (unsigned long long)srv->conns_refused);
		srv->conns_warned = now;
	}
}

int jb_server_run(struct jb_server *srv)
{
	while (!atomic_load(&srv->stop)) {
		struct pollfd p = {.fd = srv->lfd, .events = POLLIN};
		int pr = poll(&p, 1, 250);
		reap_conns(srv);
		if (pr <= 0)
			continue;
		struct sockaddr_storage sa;
		socklen_t salen = sizeof sa;
		int fd = accept4(srv->lfd, (struct sockaddr *)&sa, &salen, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				/* the connection waits in the backlog: do not spin on it */
				double now = jb_now();
				if (now - srv->conns_warned >= 1) {
					jb_log(JB_LOG_WARN, "cannot accept a connection: %s", strerror(errno));
					srv->conns_warned = now;
				}
				poll(NULL, 0, 50);
			}
			continue;
		}
		/* every connection holds a descriptor of the process's budget
		 * until its thread ends (a data stream's is the session's then) */
		if (atomic_load(&srv->nconns) >= MAX_CONNS || !jb_fds_take(1, 1)) {
			refuse_conn(srv, fd, &sa, salen);
			continue;
		}
		int r = jb_sock_setup(fd);
		if (r < 0)
			jb_log(JB_LOG_WARN, "setting up an accepted connection: %s", strerror(-r));
		struct conn *cn = calloc(1, sizeof *cn);
		if (!cn) {
			close(fd);
			continue;
		}
		cn->srv = srv;
		cn->fd = fd;
		pthread_mutex_lock(&srv->lock);
		if ((cn->next = srv->conns))
			cn->next->pprev = &cn->next;
		cn->pprev = &srv->conns;
		srv->conns = cn;
		atomic_fetch_add(&srv->nconns, 1);
		pthread_mutex_unlock(&srv->lock);
		if ((r = pthread_create(&cn->thread, NULL, conn_main, cn)) != 0) {
			jb_log(JB_LOG_WARN, "cannot start a connection thread: %s", strerror(r));
			close(fd);
			jb_fds_give(1);
			pthread_mutex_lock(&srv->lock);
			conn_unlink(cn);
			pthread_mutex_unlock(&srv->lock);
			free(cn);
		}
	}
	return 0;
}

static void deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* Wait, holding srv->lock, until no connection thread is left or until. */
static int wait_idle(struct jb_server *srv, const struct timespec *until)
{
	while (atomic_load(&srv->nconns) > 0)
		if (pthread_cond_timedwait(&srv->idle, &srv->lock, until) == ETIMEDOUT)
			break;
	return atomic_load(&srv->nconns);
}

int jb_server_drain(struct jb_server *srv, int timeout_ms)
{
	atomic_store(&srv->stop, true);
	if (srv->lfd >= 0) {
		close(srv->lfd);
		srv->lfd = -1;
	}
	struct timespec half, until;
	deadline(&half, timeout_ms / 2);
	deadline(&until, timeout_ms);
	struct event ev = {.kind = EV_FATAL, .code = ESHUTDOWN};
	snprintf(ev.text, sizeof ev.text, "site %s is shutting down", srv->c->name);
	pthread_mutex_lock(&srv->lock);
	/* sessions waiting for their streams see the stop flag */
	pthread_cond_broadcast(&srv->joined);
	/* running sessions end the way a failed stream ends them: ERROR to the
	 * peer, streams closed, journal left consistent for a resume */
	for (struct conn *c = srv->conns; c; c = c->next) {
		if (c->state == CONN_RUNNING) {
			atomic_store(&c->s->fatal, true);
			session_post(c->s, &ev);
		} else if (c->state == CONN_NEW && c->fd >= 0) {
			shutdown(c->fd, SHUT_RDWR); /* handshake, HELLO, listing */
		} else if (c->state == CONN_JOINING && c->fd >= 0) {
			/* reading the manifest or NEEDs: stop the reading, keep
			 * the writing to say why */
			shutdown(c->fd, SHUT_RD);
		}
	}
	/* whatever has not ended by half time is cut off */
	if (wait_idle(srv, &half) > 0)
		for (struct conn *c = srv->conns; c; c = c->next)
			if (c->fd >= 0)
				shutdown(c->fd, SHUT_RDWR);
	int left = wait_idle(srv, &until);
	pthread_mutex_unlock(&srv->lock);
	reap_conns(srv);
	if (left)
		jb_log(JB_LOG_WARN, "site %s: %d connections did not end within %d ms", srv->c->name, left, timeout_ms);
	return left ? -ETIMEDOUT : 0;
}
