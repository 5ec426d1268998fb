/* The client end (jumbo send/get/ls): connects to a site, authenticates it by
 * its pinned fingerprint, and runs the transfer in-process. */
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "xfer-internal.h"

struct jb_client {
	const struct jb_config *c;
	SSL_CTX *ctx;
	struct journal *journal;
	char *journal_dir; /* set by a daemon that fetches; else the user's */
};

int jb_client_set_journal_dir(struct jb_client *cl, const char *dir)
{
	free(cl->journal_dir);
	cl->journal_dir = strdup(dir);
	return cl->journal_dir ? 0 : -ENOMEM;
}

int jb_remote_parse(const struct jb_config *c, const char *s, struct jb_remote *ret, struct jb_error *err)
{
	memset(ret, 0, sizeof *ret);
	const char *path;
	int r;
	if (!strncmp(s, "jumbo://", 8)) {
		const char *hp = s + 8, *sl = strchr(hp, '/');
		size_t hl = sl ? (size_t)(sl - hp) : strlen(hp);
		char host[300];
		int port;
		if (hl == 0 || hl >= sizeof host)
			return jb_err(err, EINVAL, "%s: bad URL (want jumbo://HOST:PORT/PATH)", s);
		memcpy(host, hp, hl);
		host[hl] = 0;
		if (jb_split_hostport(host, (char[256]){0}, 256, &port) < 0)
			return jb_err(err, EINVAL, "%s: bad host:port in URL", s);
		ret->address = strdup(host);
		ret->label = strdup(host);
		path = sl ? sl : "";
	} else {
		const char *colon = strchr(s, ':');
		const char *slash = strchr(s, '/');
		if (!colon || (slash && slash < colon) || colon == s)
			return 0; /* a local path, as scp reads it */
		char name[JB_WIRE_MAX_NAME + 1];
		size_t nl = (size_t)(colon - s);
		if (nl > JB_WIRE_MAX_NAME)
			return jb_err(err, EINVAL, "%.*s: peer name too long", (int)nl, s);
		memcpy(name, s, nl);
		name[nl] = 0;
		ret->peer = jb_config_peer(c, name);
		if (!ret->peer)
			return jb_err(err, ENOENT, "unknown peer '%s' (no [peer %s] section in %s)", name, name, c->path);
		if (!ret->peer->address)
			return jb_err(err, EDESTADDRREQ, "peer '%s' has no address in %s (it only connects in)", name,
				      c->path);
		ret->address = strdup(ret->peer->address);
		ret->label = strdup(name);
		path = colon + 1;
	}
	size_t pl = strlen(path);
	ret->dir_hint = pl && path[pl - 1] == '/';
	if ((r = jb_path_clean(path, &ret->path, err)) < 0) {
		jb_remote_free(ret);
		return jb_err_prefix(err, "%s", s);
	}
	return 1;
}

void jb_remote_free(struct jb_remote *r)
{
	free(r->address);
	free(r->path);
	free(r->label);
	memset(r, 0, sizeof *r);
}

int jb_client_new(const struct jb_config *c, struct jb_client **ret, struct jb_error *err)
{
	struct jb_client *cl = calloc(1, sizeof *cl);
	if (!cl)
		return jb_oom(err);
	cl->c = c;
	cl->ctx = jb_tls_ctx(c->identity, false, err);
	if (!cl->ctx) {
		free(cl);
		return err ? -err->code : -EINVAL;
	}
	*ret = cl;
	return 0;
}

void jb_client_free(struct jb_client *cl)
{
	if (!cl)
		return;
	SSL_CTX_free(cl->ctx);
	journal_close(cl->journal);
	free(cl->journal_dir);
	free(cl);
}

static int check_fp(struct jb_client *cl, const struct jb_remote *rm, const uint8_t fp[32], struct jb_error *err)
{
	char got[72], want[72];
	jb_fp_format(fp, got);
	if (rm->peer) {
		if (memcmp(rm->peer->fp, fp, 32)) {
			jb_fp_format(rm->peer->fp, want);
			return jb_err(err, EACCES,
				      "%s (%s) presented certificate %s, but peer %s is pinned to %s; refusing to talk to it",
				      rm->label, rm->address, got, rm->peer->name, want);
		}
		return 0;
	}
	if (!jb_config_peer_by_fp(cl->c, fp))
		return jb_err(err, EACCES, "%s presented certificate %s, which is not pinned for any peer in %s",
			      rm->address, got, cl->c->path);
	return 0;
}

static int client_connect(struct jb_client *cl, const struct jb_remote *rm, struct ctl *ctl, uint8_t ret_fp[32],
			  struct jb_error *err)
{
	int fd = jb_sock_connect(rm->address, err);
	if (fd < 0)
		return jb_err_prefix(err, "%s", rm->label);
	SSL *ssl = jb_tls_handshake(cl->ctx, fd, false, ret_fp, err);
	if (!ssl) {
		close(fd);
		return jb_err_prefix(err, "%s", rm->label);
	}
	int r = check_fp(cl, rm, ret_fp, err);
	if (r == 0)
		r = ctl_init(ctl, ssl, fd);
	if (r < 0) {
		SSL_free(ssl);
		close(fd);
		return r;
	}
	snprintf(ctl->peer, sizeof ctl->peer, "%s", rm->label);
	return 0;
}

static int expect_welcome(struct ctl *ctl, struct jb_error *err)
{
	int r = ctl_recv(ctl, 120000, -1, err);
	if (r == 0)
		return jb_err(err, ETIMEDOUT, "%s: no answer", ctl->peer);
	if (r < 0)
		return r;
	if (ctl->msg.type != JB_MSG_WELCOME || ctl->msg.u.welcome.version != JB_WIRE_VERSION)
		return jb_err(err, EPROTO, "%s: unexpected answer to HELLO", ctl->peer);
	return 0;
}

/* Data streams are set up in two steps, each stream by its own thread.  The
 * connection (TCP, and TLS with --encrypt) needs nothing from the session, so
 * it starts before the control connection and overlaps its handshake; the
 * JOIN, which needs the session id and secret from WELCOME, goes when they
 * are known, and blocks (or NEEDs) follow it without waiting for JOINED.  At
 * 150 ms that is the difference between the first block leaving one round
 * trip after WELCOME and three. */
struct openers {
	struct jb_client *cl;
	const struct jb_remote *rm;
	const struct jb_xfer_opts *o;
	struct session *s;
	int n;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int go;                 /* 0: wait; 1: join; -1: give up */
	uint8_t server_fp[32], secret[32], session_id[16];
	pthread_t th[JB_WIRE_MAX_STREAMS];
	bool started[JB_WIRE_MAX_STREAMS];
	struct opener {
		struct openers *all;
		struct stream *st;
		uint8_t fp[32];
		struct jb_error err;
		int r;
	} op[JB_WIRE_MAX_STREAMS];
};

static void *open_stream(void *arg)
{
	struct opener *op = arg;
	struct openers *all = op->all;
	struct stream *st = op->st;
	const char *label = all->rm->label;
	int i = st->index;
	struct jb_error *err = &op->err;
	st->fd = jb_sock_connect(all->rm->address, err);
	if (st->fd < 0) {
		op->r = jb_err_prefix(err, "%s: data stream %d", label, i);
		return NULL;
	}
	jb_sock_tune(st->fd, &all->o->tune);
	if (all->o->encrypt) {
		st->ssl = jb_tls_handshake(all->cl->ctx, st->fd, false, op->fp, err);
		if (!st->ssl) {
			op->r = jb_err_prefix(err, "%s: data stream %d", label, i);
			return NULL;
		}
	}
	pthread_mutex_lock(&all->lock);
	while (!all->go)
		pthread_cond_wait(&all->cond, &all->lock);
	int go = all->go;
	pthread_mutex_unlock(&all->lock);
	if (go < 0 || i >= all->s->nstreams)
		return NULL;
	if (st->ssl && memcmp(op->fp, all->server_fp, 32)) {
		op->r = jb_err(err, EACCES, "%s: data stream %d reached a different site", label, i);
		return NULL;
	}
	struct jb_join j = {.version = JB_WIRE_VERSION, .index = (uint16_t)i};
	memcpy(j.session, all->session_id, 16);
	join_token(all->secret, all->session_id, (uint16_t)i, j.token);
	uint8_t buf[JB_JOIN_LEN];
	jb_wire_join_encode(&j, buf);
	int r = stream_write(st, buf, sizeof buf);
	if (r < 0) {
		op->r = jb_err(err, -r, "%s: data stream %d: %s", label, i, strerror(-r));
		return NULL;
	}
	st->join_pending = true;
	return NULL;
}

/* Start connecting as many streams as asked for (the server grants at most
 * that, and at most JB_WIRE_MAX_STREAMS). */
static void streams_start(struct openers *all, struct jb_client *cl, const struct jb_remote *rm, struct session *s,
			  const struct jb_xfer_opts *o)
{
	memset(all, 0, sizeof *all);
	all->cl = cl;
	all->rm = rm;
	all->o = o;
	all->s = s;
	all->n = JB_MAX(1, JB_MIN(s->nstreams, JB_WIRE_MAX_STREAMS));
	pthread_mutex_init(&all->lock, NULL);
	pthread_cond_init(&all->cond, NULL);
	for (int i = 0; i < all->n; i++) {
		s->streams[i].index = i;
		s->streams[i].fd = -1;
		all->op[i] = (struct opener){.all = all, .st = &s->streams[i]};
		all->started[i] = pthread_create(&all->th[i], NULL, open_stream, &all->op[i]) == 0;
	}
}

/* Join the streams to the session WELCOME described (go = 1), or give up on
 * them (go = -1).  Streams beyond what was granted are closed. */
static int streams_finish(struct openers *all, int go, const uint8_t server_fp[32], const struct jb_msg *w,
			  struct jb_error *err)
{
	struct session *s = all->s;
	if (go > 0) {
		memcpy(all->server_fp, server_fp, 32);
		memcpy(all->secret, w->u.welcome.secret, 32);
		memcpy(all->session_id, w->u.welcome.session, 16);
		if (s->nstreams > all->n || !s->encrypt != !all->o->encrypt) {
			go = -1;
			jb_err(err, EPROTO, "%s: WELCOME does not match the request (%d streams, encryption %s)",
			       all->rm->label, s->nstreams, s->encrypt ? "on" : "off");
		}
	}
	pthread_mutex_lock(&all->lock);
	all->go = go;
	pthread_cond_broadcast(&all->cond);
	pthread_mutex_unlock(&all->lock);
	int r = go > 0 ? 0 : -EPROTO;
	for (int i = 0; i < all->n; i++) {
		if (all->started[i])
			pthread_join(all->th[i], NULL);
		else if (go > 0)
			open_stream(&all->op[i]); /* no thread to spare: do it here */
		if (go > 0 && i < s->nstreams && all->op[i].r < 0 && r == 0) {
			r = all->op[i].r;
			*err = all->op[i].err;
		}
	}
	for (int i = go > 0 ? s->nstreams : 0; i < all->n; i++)
		stream_close(&s->streams[i]);
	pthread_mutex_destroy(&all->lock);
	pthread_cond_destroy(&all->cond);
	if (r == 0 && s->nstreams)
		jb_sock_cc(s->streams[0].fd, s->cc, sizeof s->cc);
	return r;
}

static void fill_result(struct session *s, const struct jb_remote *rm, struct jb_xfer_result *ret)
{
	memset(ret, 0, sizeof *ret);
	session_result(s, ret);
	snprintf(ret->peer, sizeof ret->peer, "%s", rm->label);
	snprintf(ret->cc, sizeof ret->cc, "%s", s->cc);
}

/* A session that ran to its end but with entries that failed fails too:
 * the error names the first of them. */
static int finish(struct session *s, struct ctl *ctl, int r, const struct jb_remote *rm, struct jb_xfer_result *ret,
		  struct jb_error *err)
{
	session_close_streams(s);
	if (s->cancelled && r < 0)
		r = jb_err(err, ECANCELED, "cancelled");
	struct jb_xfer_result tmp = {0};
	struct jb_xfer_result *res = ret ? ret : &tmp;
	fill_result(s, rm, res);
	if (r == 0 && res->failed) {
		const struct jb_xfer_failure *x = res->nfailures ? &res->failures[0] : NULL;
		if (res->failed == 1)
			r = jb_err(err, EIO, "%s", x ? x->error : "an entry failed");
		else
			r = jb_err(err, EIO, "%llu of %llu entries failed; the first: %s", (unsigned long long)res->failed,
				   (unsigned long long)res->files, x ? x->error : "?");
	}
	jb_xfer_result_free(&tmp);
	session_free(s);
	ctl_close(ctl);
	return r;
}

static int client_session(struct jb_client *cl, struct session *s, bool sender, const struct jb_xfer_opts *o,
			  struct jb_error *err)
{
	int r = session_init(s, sender);
	if (r < 0)
		return jb_err(err, -r, "cannot start a session: %s", strerror(-r));
	s->progress = o->progress;
	s->progress_ud = o->progress_ud;
	s->on_file = o->on_file;
	s->on_file_ud = o->on_file_ud;
	s->cancel = o->cancel;
	s->block_size = o->block_size;
	s->nstreams = JB_MAX(1, JB_MIN(o->streams, JB_WIRE_MAX_STREAMS));
	return session_take_fds(s, &s->nstreams, o->max_open_files ? o->max_open_files : cl->c->max_open_files, err);
}

/* The data streams start connecting while the control connection is
 * made; on failure the session is freed and nothing is left. */
static int client_open(struct jb_client *cl, const struct jb_remote *rm, struct session *s, const struct jb_xfer_opts *o,
		       struct ctl *ctl, uint8_t fp[32], struct openers **ret, struct jb_error *err)
{
	struct openers *all = malloc(sizeof *all);
	if (!all) {
		session_free(s);
		return jb_oom(err);
	}
	streams_start(all, cl, rm, s, o);
	int r = client_connect(cl, rm, ctl, fp, err);
	if (r < 0) {
		streams_finish(all, -1, NULL, NULL, NULL);
		free(all);
		session_free(s);
		return r;
	}
	*ret = all;
	return 0;
}

/* A push to dst (the first hop of a route, when rt is given): of local
 * sources, or of a relay's feed. */
static int push(struct jb_client *cl, const struct jb_remote *dst, char *const *srcs, size_t nsrc, struct feed *fd,
		const struct route *rt, bool dest_dir, const struct jb_xfer_opts *o, struct jb_xfer_result *ret,
		struct jb_error *err)
{
	struct session s;
	struct ctl ctl = {.fd = -1};
	uint8_t fp[32];
	int r = client_session(cl, &s, true, o, err);
	if (r < 0) {
		session_free(&s);
		return r;
	}
	snprintf(s.origin, sizeof s.origin, "%s", rt ? rt->origin : cl->c->name);
	s.corrupt_block = o->corrupt_block;
	s.window_set = o->tune.window != 0;
	if ((fd || rt) && custody_start(&s) < 0) {
		r = jb_oom(err);
		goto early;
	}
	s.pins = cl->c;
	s.until_custody = o->until_custody && rt && !fd;
	if (fd) {
		s.feed = fd;
		s.tamper_block = feed_take_tamper(fd);
	} else if (rt) {
		/* the origin of a relayed push: it signs each file's sha256t */
		if ((r = jb_signer_open(cl->c->identity, &s.signer, err)) < 0)
			goto early;
		if (RAND_bytes(s.transfer, sizeof s.transfer) != 1) {
			r = jb_err(err, EIO, "cannot make a transfer id");
			goto early;
		}
	}
	for (size_t i = 0; i < nsrc && r == 0; i++)
		r = manifest_add_local(&s, srcs[i], o->recursive, err);
	if (r == 0 && !fd)
		r = manifest_sort(&s, err);
	if (r < 0)
		goto early;
	struct openers *all;
	if ((r = client_open(cl, dst, &s, o, &ctl, fp, &all, err)) < 0)
		return r; /* the session is freed: its event fd is closed */
	if (fd)
		feed_attach(fd, s.evfd, &s.bytes_moved); /* woken from here until it is detached, before the session goes */
	s.ctl = &ctl;
	jb_log(JB_LOG_DEBUG, "%s: control connection up after %.0f ms", dst->label, (jb_now() - s.t0) * 1e3);
	uint8_t flags = (o->encrypt ? JB_HELLO_ENCRYPT : 0) |
			((dest_dir || nsrc > 1 || dst->dir_hint || !*dst->path) ? JB_HELLO_DEST_DIR : 0);
	put_hello(&ctl.out, JB_OP_PUSH, flags, (uint16_t)s.nstreams, o->block_size, o->tune.rate_bps, dst->path,
		  cl->c->name, rt);
	/* the manifest follows HELLO at once: the server reads it after WELCOME */
	if ((r = ctl_flush(&ctl, err)) < 0 || (r = sender_offer(&s, err)) < 0) {
		/* a refused HELLO: the server said why and closed */
		struct jb_error perr = {0};
		if (expect_welcome(&ctl, &perr) < 0 && ctl.peer_error) {
			*err = perr;
			r = -perr.code;
		}
	}
	if (r == 0)
		r = expect_welcome(&ctl, err);
	if (r == 0 && fd && ctl.msg.u.welcome.block_size != o->block_size)
		r = jb_err(err, EPROTO, "%s: answered with a block size of %u, not %u", dst->label,
			   ctl.msg.u.welcome.block_size, o->block_size);
	if (r < 0) {
		streams_finish(all, -1, NULL, NULL, NULL);
		free(all);
		if (fd)
			feed_attach(fd, -1, NULL);
		return finish(&s, &ctl, r, dst, NULL, err);
	}
	if (fd)
		feed_welcomed(fd);
	struct jb_msg w = ctl.msg;
	s.nstreams = w.u.welcome.streams;
	s.block_size = w.u.welcome.block_size;
	s.encrypt = w.u.welcome.flags & JB_HELLO_ENCRYPT;
	jb_log(JB_LOG_DEBUG, "%s: WELCOME after %.0f ms", dst->label, (jb_now() - s.t0) * 1e3);
	r = streams_finish(all, 1, fp, &w, err);
	free(all);
	if (r == 0)
		r = sender_run(&s, err);
	if (fd)
		feed_attach(fd, -1, NULL);
	return finish(&s, &ctl, r, dst, ret, err);
early:
	if (fd)
		feed_attach(fd, -1, NULL);
	session_free(&s);
	return r;
}

int client_push_feed(struct jb_client *cl, const struct jb_remote *dst, struct feed *fd, const struct route *rt,
		     bool dest_dir, const struct jb_xfer_opts *o, struct jb_xfer_result *ret, struct jb_error *err)
{
	return push(cl, dst, NULL, 0, fd, rt, dest_dir, o, ret, err);
}

int jb_client_push(struct jb_client *cl, const struct jb_remote *dst, char *const *srcs, size_t nsrc,
		   const struct jb_xfer_opts *o, struct jb_xfer_result *ret, struct jb_error *err)
{
	if (!o->nvia)
		return push(cl, dst, srcs, nsrc, NULL, NULL, false, o, ret, err);
	/* through relays: connect to the first; the route names the rest and
	 * the destination, which must be a peer (it checks our pin) */
	if (!dst->peer)
		return jb_err(err, EINVAL, "%s: a transfer through relays names its destination as a peer (PEER:PATH)",
			      dst->label);
	const struct jb_peer *first = jb_config_peer(cl->c, o->via[0]);
	if (!first || !first->address)
		return jb_err(err, ENOENT, "relay '%s' is not a peer with an address in %s", o->via[0], cl->c->path);
	struct route rt = {.origin = cl->c->name, .flags = o->until_custody ? JB_ROUTE_CUSTODY : 0};
	for (int i = 1; i < o->nvia; i++) {
		if (!jb_config_peer(cl->c, o->via[i]))
			return jb_err(err, ENOENT, "relay '%s' is not a peer in %s", o->via[i], cl->c->path);
		rt.hops[rt.nhops++] = o->via[i];
	}
	rt.hops[rt.nhops++] = dst->peer->name;
	const char *cc = o->tune.cc;
	if (cc && jb_wire_cc_ok(cc)) {
		rt.flags |= JB_ROUTE_CC; /* every hop's streams run what this end's do */
		rt.cc = cc;
	}
	struct jb_remote hop = {.address = first->address, .path = dst->path, .peer = first,
				.label = (char *)o->via[0], .dir_hint = dst->dir_hint};
	int r = push(cl, &hop, srcs, nsrc, NULL, &rt, false, o, ret, err);
	if (ret)
		snprintf(ret->peer, sizeof ret->peer, "%s", dst->label);
	return r;
}

static int client_journal(struct jb_client *cl, struct jb_error *err)
{
	if (cl->journal)
		return 0;
	char dir[4096], path[4200];
	if (!cl->journal_dir)
		return jb_err(err, EINVAL, "pulls need a journal directory (jb_client_set_journal_dir)");
	snprintf(dir, sizeof dir, "%s", cl->journal_dir);
	for (char *p = dir + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			mkdir(dir, 0700);
			*p = '/';
		}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return jb_err(err, errno, "%s: %s", dir, strerror(errno));
	snprintf(path, sizeof path, "%s/journal.db", dir);
	return journal_open(path, &cl->journal, err);
}

int jb_client_pull(struct jb_client *cl, const struct jb_remote *src, const char *dest,
		   const struct jb_xfer_opts *o, struct jb_xfer_result *ret, struct jb_error *err)
{
	struct session s;
	struct ctl ctl = {.fd = -1};
	uint8_t fp[32];
	int r = client_journal(cl, err);
	if (r < 0)
		return r;
	expire_client_journal(cl->journal, cl->c);
	if ((r = client_session(cl, &s, false, o, err)) < 0) {
		session_free(&s);
		return r;
	}
	s.journal = cl->journal;
	s.umask = (mode_t)cl->c->umask;
	if ((r = dest_setup(&s, AT_FDCWD, NULL, dest, false, err)) < 0) {
		session_free(&s);
		return r;
	}
	struct openers *all;
	if ((r = client_open(cl, src, &s, o, &ctl, fp, &all, err)) < 0)
		return r;
	s.ctl = &ctl;
	uint8_t flags = (o->encrypt ? JB_HELLO_ENCRYPT : 0) | (o->recursive ? JB_HELLO_RECURSIVE : 0);
	put_hello(&ctl.out, JB_OP_PULL, flags, (uint16_t)s.nstreams, o->block_size, o->tune.rate_bps, src->path,
		  cl->c->name, NULL);
	if ((r = ctl_flush(&ctl, err)) < 0 || (r = expect_welcome(&ctl, err)) < 0) {
		streams_finish(all, -1, NULL, NULL, NULL);
		free(all);
		return finish(&s, &ctl, r, src, NULL, err);
	}
	struct jb_msg w = ctl.msg;
	s.nstreams = w.u.welcome.streams;
	s.block_size = w.u.welcome.block_size;
	s.encrypt = w.u.welcome.flags & JB_HELLO_ENCRYPT;
	snprintf(s.origin, sizeof s.origin, "%s", w.u.welcome.name);
	jb_hex(w.u.welcome.session, 8, s.session_id); /* names this session to one that finds its paths busy */
	r = streams_finish(all, 1, fp, &w, err);
	free(all);
	if (r < 0)
		return finish(&s, &ctl, r, src, NULL, err);
	/* the manifest is on its way already; the streams' JOINED are read by
	 * the stream threads, ahead of the first block */
	s.no_bye = true;
	r = receiver_run(&s, err);
	return finish(&s, &ctl, r, src, ret, err);
}

int jb_client_list(struct jb_client *cl, const struct jb_remote *src, struct jb_list_entry **ret, size_t *ret_n,
		   struct jb_error *err)
{
	struct ctl ctl = {.fd = -1};
	uint8_t fp[32];
	int r = client_connect(cl, src, &ctl, fp, err);
	if (r < 0)
		return r;
	put_hello(&ctl.out, JB_OP_LIST, 0, 1, JB_WIRE_DEFAULT_BLOCK, 0, src->path, cl->c->name, NULL);
	struct jb_list_entry *v = NULL;
	size_t n = 0;
	struct jb_wire_entry *e = malloc(sizeof *e); /* 4 KiB of path: not on the stack */
	if (!e) {
		ctl_close(&ctl);
		return jb_oom(err);
	}
	if ((r = ctl_flush(&ctl, err)) < 0 || (r = expect_welcome(&ctl, err)) < 0)
		goto out;
	for (;;) {
		if ((r = ctl_recv(&ctl, 60000, -1, err)) <= 0) {
			if (r == 0)
				r = jb_err(err, ETIMEDOUT, "%s: listing timed out", src->label);
			goto out;
		}
		if (ctl.msg.type == JB_MSG_FILES_END)
			break;
		if (ctl.msg.type != JB_MSG_FILES || ctl.msg.u.files.first != n) {
			r = jb_err(err, EPROTO, "%s: bad listing", src->label);
			goto out;
		}
		struct jb_list_entry *nv = realloc(v, (n + ctl.msg.u.files.count + 1) * sizeof *nv);
		if (!nv) {
			r = -ENOMEM;
			goto out;
		}
		v = nv;
		struct jb_wire_iter it = {ctl.msg.u.files.entries, ctl.msg.u.files.len};
		for (uint32_t i = 0; i < ctl.msg.u.files.count; i++) {
			jb_wire_entry_next(&it, e);
			v[n] = (struct jb_list_entry){.path = strdup(e->path), .type = e->type, .size = e->size,
						      .mode = e->mode, .mtime_ns = e->mtime_ns};
			n++;
		}
	}
	*ret = v;
	*ret_n = n;
	v = NULL;
	n = 0;
	r = 0;
out:
	free(e);
	jb_list_free(v, n);
	ctl_close(&ctl);
	return r;
}

void jb_list_free(struct jb_list_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].path);
	free(e);
}

int jb_file_digest(const char *path, uint32_t bs, char out[40], struct jb_error *err)
{
	uint8_t *dg, root[JB_DIGEST_LEN];
	uint64_t nb, size;
	int r = file_digests(path, bs, JB_DIGEST_LEN, digest_file_block, &dg, &nb, &size, err);
	if (r < 0)
		return r;
	digest_root(dg, nb, root);
	digest_format(root, out);
	free(dg);
	return 0;
}
