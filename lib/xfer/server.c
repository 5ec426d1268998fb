/* The site daemon's transfer service: accepts control connections and data
 * streams on one port, authenticates peers by pinned fingerprint, and runs
 * each session in its own thread. */
#include <fcntl.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "server-internal.h"

#define JOIN_TIMEOUT 30
#define MAX_SESSIONS 256

void jb_server_test_corrupt_block(struct jb_server *s, int block) { s->corrupt_block = block; }
void jb_server_test_tamper_block(struct jb_server *s, int block) { s->tamper_block = block; }

void jb_server_on_commit(struct jb_server *s, jb_commit_fn fn, void *ud)
{
	s->on_commit = fn;
	s->on_commit_ud = ud;
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
	s->tamper_block = -1;
	s->lfd = s->rootfd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->joined, NULL);
	pthread_cond_init(&s->idle, NULL);
	pthread_cond_init(&s->expire_wake, NULL);
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
	if ((r = jb_private_dir(c->state, err)) < 0) {
		jb_err_prefix(err, "state directory");
		goto fail;
	}
	if (c->relay_staging && (r = jb_client_new(c, &s->relay_cl, err)) < 0)
		goto fail;
	snprintf(path, sizeof path, "%s/journal.db", c->state);
	if ((r = journal_open(path, &s->journal, err)) < 0)
		goto fail;
	/* a burst (a session's control connection and its 64 streams, a few
	 * sessions at once, a flood) waits in the backlog instead of having
	 * its SYNs dropped and sent again a second later */
	if ((s->lfd = jb_sock_listen(c->listen, 1024, err)) < 0) {
		r = s->lfd;
		goto fail;
	}
	/* those in their handshake hold at most half the descriptors left for
	 * transfers, so that sessions still get theirs */
	int max = c->max_handshakes ? c->max_handshakes : JB_MAX_HANDSHAKES;
	max = JB_MAX(1, JB_MIN(max, jb_fds_left() / 2));
	int per_addr = c->handshakes_per_address ? c->handshakes_per_address : JB_DEFAULT_HANDSHAKES_PER_ADDRESS;
	jb_gate_init(&s->gate, max, JB_MIN(per_addr, max),
		     c->handshake_timeout > 0 ? c->handshake_timeout : JB_DEFAULT_HANDSHAKE_TIMEOUT);
	jb_log(JB_LOG_INFO, "site %s: at most %d connections in their handshake at once, %d from one address, "
	       "%g s each", c->name, s->gate.max, s->gate.per_addr, s->gate.timeout);
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
	jb_client_free(s->relay_cl);
	SSL_CTX_free(s->ctx);
	pthread_cond_destroy(&s->idle);
	pthread_cond_destroy(&s->expire_wake);
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
	r->expired_partials = atomic_load(&s->expired_partials);
	r->expired_records = atomic_load(&s->expired_records);
	r->relay_active = atomic_load(&s->relay_active);
	r->relay_total = atomic_load(&s->relay_total);
	r->relay_staged = atomic_load(&s->relay_staged);
	r->relay_forwarded = atomic_load(&s->relay_forwarded);
	r->relay_retries = atomic_load(&s->relay_retries);
	r->receipts_signed = atomic_load(&s->receipts_signed);
	pthread_mutex_lock((pthread_mutex_t *)&s->lock);
	r->handshakes = (uint64_t)s->gate.n;
	pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
	for (int i = 0; i < JB_CLOSED_NREASONS; i++)
		r->closed[i] = atomic_load(&s->closed[i]);
}

const char *jb_closed_reason_name(enum jb_closed_reason r)
{
	static const char *const names[] = {"too_many", "per_address", "handshake_timeout", "pushed_out"};
	return r < JB_CLOSED_NREASONS ? names[r] : "?";
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
				jb_gate_leave(&srv->gate, &cn->gate);
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
		char msg[160];
		snprintf(msg, sizeof msg, "data stream refused: %s", why);
		conn_dropped(cn, msg);
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
	char shown[JB_WIRE_MAX_MSG];
	jb_log(JB_LOG_WARN, "%s: refused: %s", ctl->peer, jb_log_escape(msg, shown, sizeof shown));
	ctl_send_error(ctl, code ? code : EIO, msg);
}

/* LIST: a directory's children, or a file itself, one level only, however
 * large the directory; beneath fd, the directory under (access_scope). */
static int do_list(struct jb_server *srv, struct ctl *ctl, int fd, const char *under, const char *path)
{
	struct jb_error err = {0};
	struct walker *w = NULL;
	struct jb_wire_entry *e = malloc(sizeof *e);
	const char *sl = strrchr(path, '/');
	int r = e ? walker_new(fd, under, false, &w) : -ENOMEM;
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

/* A LIST: of what the peer may read, or of a directory above its read
 * prefixes (only the way to them), else refused. */
static void serve_list(struct jb_server *srv, struct ctl *ctl, const struct jb_peer *peer, const char *path)
{
	struct jb_error err = {0};
	const char *under;
	int fd;
	if (!jb_peer_prefix(peer, JB_READ, path) && access_leads_to(peer, path)) {
		if (access_list_ways(srv->rootfd, ctl, peer, path, srv->c->name, &err) < 0)
			jb_log(JB_LOG_WARN, "%s: list: %s", peer->name, err.msg);
	} else if (access_scope(srv->rootfd, peer, JB_READ, path, &fd, &under, &err) < 0) {
		refuse(ctl, err.code, "%s", err.msg);
	} else {
		do_list(srv, ctl, fd, under, path);
		close(fd);
	}
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
	/* what the peer may, first: a refusal takes nothing */
	bool push = hello->u.hello.op == JB_OP_PUSH;
	const char *under;
	const struct jb_peer *rights = peer;
	int r;
	if (hello->u.hello.flags & JB_HELLO_ROUTE) {
		const char *origin = hello->u.hello.origin;
		s->routed = true;
		/* each hop signs for what it holds (custody.c) */
		if (custody_start(s) < 0)
			return jb_oom(err);
		if ((r = jb_signer_open(srv->c->identity, &s->hop_signer, err)) < 0)
			return r;
		snprintf(s->hop_name, sizeof s->hop_name, "%s", srv->c->name);
		s->custody_asked = hello->u.hello.route_flags & JB_ROUTE_CUSTODY;
		s->receipts_signed = &srv->receipts_signed;
		if (hello->u.hello.nhops) {
			if ((r = relay_prepare(srv, s, peer, hello, path, err)) < 0)
				return r;
			goto linked;
		}
		/* the last hop of a route: what lands is the origin's, and must
		 * be allowed to both the origin and the relay that brings it */
		if (strcmp(origin, peer->name)) {
			if (!(rights = jb_config_peer(srv->c, origin)))
				return jb_err(err, EACCES, "site %s does not know %s, whose transfer %s relays", srv->c->name,
					      origin, peer->name);
			if (!jb_peer_prefix(peer, JB_WRITE, path))
				return jb_err(err, EACCES, "relay %s may not write %s here (see its [peer %s] write)",
					      peer->name, *path ? path : "/", peer->name);
			/* what a relay brings is checked against the origin's seals */
			s->seal_check = true;
			memcpy(s->origin_fp, rights->fp, 32);
		}
	}
	if ((r = access_scope(srv->rootfd, rights, push ? JB_WRITE : JB_READ, path, &s->scopefd, &under, err)) < 0)
		return r;
	/* descriptors next: fewer streams than asked, or a clear refusal,
	 * rather than EMFILE half way (a pull keeps scopefd for its walk: one
	 * of the directories a sending session is given and does not use) */
	if ((r = session_take_fds(s, &s->nstreams, srv->c->max_open_files, err)) < 0)
		return jb_err_prefix(err, "site %s is busy", srv->c->name);
	if (push) {
		snprintf(s->origin, sizeof s->origin, "%s", rights->name);
		s->umask = (mode_t)srv->c->umask;
		r = dest_setup(s, s->scopefd, under, path, hello->u.hello.flags & JB_HELLO_DEST_DIR, err);
		close(s->scopefd); /* what arrives goes beneath destdir, which lies in it */
		s->scopefd = -1;
	} else {
		snprintf(s->origin, sizeof s->origin, "%s", srv->c->name);
		s->corrupt_block = srv->corrupt_block;
		r = manifest_add_beneath(s, s->scopefd, under, path, hello->u.hello.flags & JB_HELLO_RECURSIVE, false,
					 err);
		if (r == 0)
			r = manifest_sort(s, err);
	}
	if (r < 0)
		return r;
linked:
	l->s = s;
	l->srv = srv;
	l->expected = s->nstreams;
	if (!s->sender) {
		/* staging is not the data root: what a relay holds is no
		 * dataset of its own (no catalog row, no landing rule) */
		s->on_commit = s->feed ? NULL : srv->on_commit;
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
		serve_list(srv, ctl, peer, path);
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
	char shown[512], why[JB_WIRE_MAX_MSG]; /* the peer's path and messages with names from it, as logged */
	jb_log_escape(*path ? path : "/", shown, sizeof shown);
	jb_log(JB_LOG_INFO, "%s: %s %s with %d streams", peer->name, opname, shown, s->nstreams);
	atomic_fetch_add(&srv->streams_active, (uint64_t)s->nstreams);
	r = s->sender ? sender_run(s, &err) : receiver_run(s, &err);
	relay_finish(s, r);
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
		jb_log(JB_LOG_WARN, "%s: %s %s failed: %s", peer->name, opname, shown,
		       jb_log_escape(err.msg, why, sizeof why));
	else
		jb_log(JB_LOG_INFO, "%s: %s %s done: %u entries (%llu failed), %llu bytes in %.2f s (%.2f Gbit/s)",
		       peer->name, opname, shown, s->nfiles,
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
	relay_finish(s, -1); /* refused while it was being set up */
	s->ctl = NULL;
	session_free(s);
	free(s);
	free(l);
	free(path);
}

/* A stranger's certificate: one ERROR, and a line at most once a second. */
static void refuse_unknown(struct conn *cn, struct ctl *ctl, const uint8_t fp[32])
{
	struct jb_server *srv = cn->srv;
	char f[72], msg[JB_WIRE_MAX_MSG];
	jb_fp_format(fp, f);
	snprintf(ctl->peer, sizeof ctl->peer, "unknown peer");
	atomic_fetch_add(&srv->refused, 1);
	snprintf(msg, sizeof msg, "site %s does not know you: certificate %s is not pinned in any [peer] section",
		 srv->c->name, f);
	char why[JB_WIRE_MAX_MSG + 16];
	snprintf(why, sizeof why, "refused: %s", msg);
	conn_dropped(cn, why);
	ctl_send_error(ctl, EACCES, msg);
}

void serve_conn(struct conn *cn)
{
	struct jb_server *srv = cn->srv;
	int fd = cn->fd;
	/* the gate cuts the connection off at cn->until (and counts and logs
	 * it); no read waits more than a second longer either */
	double t = srv->gate.timeout + 1;
	struct timeval tv = {.tv_sec = (time_t)t, .tv_usec = (suseconds_t)((t - (double)(time_t)t) * 1e6)};
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
		conn_dropped(cn, err.msg);
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
		refuse_unknown(cn, &ctl, fp);
		conn_forget_fd(cn);
		ctl_close(&ctl);
		return;
	}
	snprintf(ctl.peer, sizeof ctl.peer, "%s", peer->name);
	int r = ctl_recv(&ctl, JB_MAX(1, (int)((cn->until + 1 - jb_now()) * 1000)), -1, &err);
	if (r == 1 && ctl.msg.type == JB_MSG_HELLO) {
		struct jb_msg *hello = malloc(sizeof *hello);
		if (hello && conn_through(cn)) {
			*hello = ctl.msg;
			run_session(cn, &ctl, peer, fp, hello);
		}
		free(hello);
	} else if (cn->cut) {
		/* the gate has said why */
	} else if (r == 0) {
		jb_log(JB_LOG_WARN, "%s: no HELLO within %g s of connecting ([site] handshake_timeout)", peer->name,
		       srv->gate.timeout);
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
