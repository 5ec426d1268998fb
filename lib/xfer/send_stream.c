/* The sending end's data streams: one thread per stream takes the next
 * block (a resend first, then the plan), reads, hashes and sends it, with
 * a reader thread ahead of it when the streams are few.  (The control side
 * is sender.c.) */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "xfer-internal.h"

static void fail_file(struct session *s, struct xfile *f, int code, const char *what);

/* A relay forwards a block only once it is durable in staging: until then
 * the plan waits on it (looking again every few milliseconds).  False: not
 * yet; a file that failed upstream fails here too. */
static bool staged(struct session *s, struct xfile *f, uint64_t b)
{
	char why[JB_WIRE_MAX_MSG];
	int r = feed_ready(s->feed, f->src, b, why, sizeof why);
	if (r < 0 && !atomic_exchange(&f->failed, true))
		session_post_file(s, EV_FILE_FAILED, f->index, -r, "%s", why);
	return r != 0;
}

/* How far past the block it waits for a relay's forwarder looks for blocks
 * already staged: a block late on one incoming stream then holds back only
 * itself, not every outgoing stream (blocks) */
#define FORWARD_AHEAD 256

/* The next block to read: a block to send again first, then the plan in
 * manifest order (at a relay, staged blocks a little ahead of it too).  The slot is marked in use (users) until the stream
 * thread is done with the block, so that it is not freed meanwhile. */
static bool next_work(struct session *s, struct work *w, bool *resend, struct xfile **ret)
{
	pthread_mutex_lock(&s->qlock);
	for (;;) {
	again:
		if (s->stopping || atomic_load(&s->fatal) || (s->cancel && *s->cancel)) {
			pthread_mutex_unlock(&s->qlock);
			return false;
		}
		while (s->nresend) {
			struct work it = s->resend[--s->nresend];
			struct xfile *f = slot(s, it.file);
			if (!f->live || f->index != it.file || f->done || atomic_load(&f->failed))
				continue;
			*w = it;
			*resend = true;
			*ret = f;
			goto got;
		}
		while (s->plan_next < s->plan_upto) {
			struct xfile *f = slot(s, s->plan_next);
			if (!f->live || f->index != s->plan_next || f->type != JB_ENTRY_FILE || f->done ||
			    atomic_load(&f->failed) || s->plan_block >= f->nblocks) {
				s->plan_next++;
				s->plan_block = 0;
				continue;
			}
			if (f->taken && (f->taken[s->plan_block / 8] & (1u << (s->plan_block % 8)))) {
				s->plan_block++; /* handed out ahead of its turn */
				continue;
			}
			if (s->feed && !staged(s, f, s->plan_block)) {
				int64_t b = atomic_load(&f->failed) ? -1
					    : feed_first_ready(s->feed, f->src, s->plan_block + 1,
							       s->plan_block + 1 + FORWARD_AHEAD, f->taken);
				if (b >= 0 && (f->taken || (f->taken = calloc(f->nblocks / 8 + 1, 1)))) {
					f->taken[b / 8] |= (uint8_t)(1u << (b % 8));
					*w = (struct work){.file = s->plan_next, .block = (uint64_t)b,
							   .send = have_block(f, (uint64_t)b)};
					*resend = false;
					*ret = f;
					goto got;
				}
				struct timespec t;
				cond_deadline(&t, 5);
				pthread_cond_timedwait(&s->qcond, &s->qlock, &t);
				goto again;
			}
			*w = (struct work){.file = s->plan_next, .block = s->plan_block,
					   .send = have_block(f, s->plan_block)};
			s->plan_block++;
			*resend = false;
			*ret = f;
			goto got;
		}
		pthread_cond_wait(&s->qcond, &s->qlock);
	}
got:
	atomic_fetch_add(&(*ret)->users, 1);
	pthread_mutex_unlock(&s->qlock);
	return true;
}

/* A source that cannot be read fails alone: the control loop tells the
 * receiver (FILE_ABORT) and the other files go on.  Running out of memory
 * or descriptors ends the session. */
static void fail_file(struct session *s, struct xfile *f, int code, const char *what)
{
	code = code < 0 ? -code : code;
	if (code == ENOMEM || code == EMFILE || code == ENFILE) {
		session_fatal(s, code, "%s: %s: %s", f->path, what, strerror(code));
		return;
	}
	if (atomic_exchange(&f->failed, true))
		return;
	const char *why = code == ESTALE ? "changed while it was being sent" : code == ENODATA ? "shrank while it was being sent"
						 : strerror(code);
	session_post_file(s, EV_FILE_FAILED, f->index, code == ENODATA ? ESTALE : code, "%s: %s%s%s", f->path,
			  code == ESTALE || code == ENODATA ? "" : what, code == ESTALE || code == ENODATA ? "" : ": ", why);
}

/* After its last block: is the source still what was listed and read? */
static bool unchanged(struct xfile *f, int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && (uint64_t)st.st_size == f->size &&
	       (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec == f->mtime_ns;
}

/* Clear data streams: the payload goes from the page cache to the socket
 * with sendfile(2), never copied through user space.  The block was hashed
 * just before; a source changed in between is caught by the receiver's check. */
static int send_zerocopy(struct stream *st, const uint8_t hdr[JB_BLOCK_HDR_LEN], int fd, off_t off, uint64_t len)
{
	size_t n = JB_BLOCK_HDR_LEN;
	while (n) {
		ssize_t r = send(st->fd, hdr + JB_BLOCK_HDR_LEN - n, n, MSG_NOSIGNAL | MSG_MORE);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		n -= (size_t)r;
	}
	while (len) {
		ssize_t r = sendfile(st->fd, fd, &off, (size_t)JB_MIN(len, (uint64_t)1 << 30));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ENODATA;
		len -= (uint64_t)r;
	}
	return 0;
}

/* sendfile(2) saves the sender a copy (0.51 -> 0.37 CPU-seconds per GiB
 * measured on loopback at -P 4), but the receiver then copies out of page-
 * cache fragments, which cost it more than was saved (0.63 -> 0.85).  When
 * both ends share the host's CPUs (loopback) the plain copy wins; across a
 * network the receiver's CPUs are not ours to spend, so sendfile is used. */
static bool peer_is_local(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return false;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

/* The JOINED answers on a sending client's streams: read at the end, so that
 * blocks follow the JOIN without waiting a round trip for it.  The peer sent
 * them before any block was read; reading them also spares the peer a reset
 * (closing a socket with unread data sends RST). */
void sender_read_joined(struct session *s)
{
	for (int i = 0; i < s->nstreams; i++) {
		struct stream *st = &s->streams[i];
		if (!st->join_pending || st->fd < 0)
			continue;
		struct timeval tv = {.tv_sec = 10};
		setsockopt(st->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		/* (a push without blocks may end before the server took its
		 * streams: nothing rode on them) */
		if (stream_joined(st) < 0)
			jb_log(s->blocks_planned ? JB_LOG_WARN : JB_LOG_DEBUG, "%s: data stream %d: no JOINED",
			       s->ctl->peer, i);
	}
}

/* A stream broke before its JOINED was read: a refusal says why. */
static bool stream_refused(struct stream *st)
{
	if (!st->join_pending || st->ssl)
		return false;
	uint8_t ack[JB_JOINED_LEN];
	return recv(st->fd, ack, sizeof ack, MSG_DONTWAIT | MSG_PEEK) == (ssize_t)sizeof ack &&
	       jb_wire_joined_decode(ack) == -EACCES;
}

/* An untuned host caps every socket's send buffer at tcp_wmem's maximum (4
 * MiB by default), and a sender can have no more than that in flight: at
 * 150 ms, 0.2 Gbit/s a stream.  Holding CAP_NET_ADMIN (a daemon run as root)
 * we lift it with SO_SNDBUFFORCE; TCP_NOTSENT_LOWAT keeps what is actually
 * queued to what is in flight plus a little, and the receiver's window
 * bounds what is in flight. */
#define SNDBUF_UNTUNED (64u << 20)
static void lift_sndbuf(int fd)
{
	unsigned long lo, def, max = 0;
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "re");
	if (f) {
		if (fscanf(f, "%lu %lu %lu", &lo, &def, &max) != 3)
			max = 0;
		fclose(f);
	}
	if (max >= SNDBUF_UNTUNED)
		return; /* a tuned host: leave autotuning alone */
	/* Only a long path needs it: lift when the ceiling is below what 10
	 * Gbit/s needs over the connection's round trip (4 MiB: 3.4 ms).  On
	 * loopback a 64 MiB buffer only cost the receiver cache misses (-P 4:
	 * 0.55 -> 0.85 CPU-seconds per GiB). */
	struct tcp_info ti;
	socklen_t tl = sizeof ti;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) < 0 || (uint64_t)ti.tcpi_rtt * 1250 <= max)
		return;
	int v = SNDBUF_UNTUNED;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) < 0 && errno != EPERM)
		jb_log(JB_LOG_DEBUG, "SO_SNDBUFFORCE: %s", strerror(errno));
}

/* One block on its way: taken from the plan and hashed (the reader's
 * part), then sent and accounted for (the writer's). */
struct item {
	struct work w;
	bool resend, corrupt, whole;
	bool ownbuf;         /* buf was allocated for this block alone */
	struct xfile *f;
	uint8_t *buf;        /* whole: the block, read and hashed */
};

/* Read ahead of the socket: a stream of few streams has a reader thread
 * that takes, reads and hashes the next blocks while the stream thread
 * sends the one before, so that one stream is limited by the network, not
 * by one thread reading, hashing and sending in turn (-P 1 at 150 ms was
 * app-limited: nothing unsent while BBR could have sent more). */
#define AHEAD 2
#define AHEAD_STREAMS 4  /* streams up to which each gets a reader */
#define AHEAD_BYTES (128u << 20) /* buffers of all readers of a session, at most */
struct ahead {
	struct stream *st;
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct item q[AHEAD];
	int head, n;
	bool done;           /* the reader has no more */
	bool dead;           /* the writer has stopped: the reader drains */
	uint8_t *free[AHEAD + 1]; /* buffers for whole blocks (NULL: a place without one) */
	int nfree;
	size_t cap;
	bool zerocopy;
};

struct sendctx {
	struct stream *st;
	struct session *s;
	uint8_t *chunk;
	size_t cap;
	bool zerocopy;
	uint8_t *buf;        /* without a reader: the one buffer */
	struct ahead *ah;
	struct jb_strong sh; /* the origin of a relayed push: SHA-256 of each block */
};

static void release(struct session *s, struct item *it)
{
	atomic_fetch_sub(&it->f->users, 1);
}

/* The reader's part: the next block, read and hashed.  false when there
 * is no more (or the session failed). */
static bool produce(struct sendctx *c, struct item *it, uint8_t *buf)
{
	struct session *s = c->s;
	struct stream *st = c->st;
	for (;;) {
		struct work w;
		bool resend;
		struct xfile *f;
		if (!next_work(s, &w, &resend, &f))
			return false;
		uint64_t len = block_len(f, w.block, s->block_size);
		off_t off = (off_t)(w.block * s->block_size);
		if (s->feed && !w.send && feed_digest(s->feed, f->src, w.block, f->digests + w.block * JB_DIGEST_LEN)) {
			/* the next hop has it: its digest, as verified here, is all
			 * FILE_END needs, and its staged copy may go */
			feed_held(s->feed, f->src, w.block);
			*it = (struct item){.w = w, .resend = resend, .f = f};
			return true;
		}
		if (s->feed && w.send && feed_gone(s->feed, f->src, w.block)) {
			/* the next hop said it held this block, and its staged
			 * copy went: it is not here to send again */
			atomic_fetch_sub(&f->users, 1);
			fail_file(s, f, EIO, "block freed at the relay after the next hop held it, asked for again");
			continue;
		}
		int fd = files_get(s, f);
		if (fd < 0) {
			fail_file(s, f, fd, "cannot open");
			atomic_fetch_sub(&f->users, 1);
			continue;
		}
		uint8_t *d = f->digests + w.block * JB_DIGEST_LEN;
		int hook = s->corrupt_block;
		bool corrupt = w.send && hook >= 0 && w.file == 0 && (uint64_t)hook == w.block &&
			       __atomic_compare_exchange_n(&s->corrupt_block, &hook, -1, false, __ATOMIC_SEQ_CST,
							   __ATOMIC_SEQ_CST);
		hook = s->tamper_block;
		bool tamper = w.send && s->feed && hook >= 0 && f->src == 0 && (uint64_t)hook == w.block &&
			      __atomic_compare_exchange_n(&s->tamper_block, &hook, -1, false, __ATOMIC_SEQ_CST,
							  __ATOMIC_SEQ_CST);
		bool whole = w.send && (st->ssl || corrupt || tamper || !c->zerocopy);
		bool own = false;
		if (whole && !buf) {
			/* a stream that sends from the page cache has no buffers:
			 * only the test hook's block is read whole */
			if (!(buf = aligned_alloc(4096, c->cap))) {
				files_put(s, f);
				atomic_fetch_sub(&f->users, 1);
				session_fatal(s, ENOMEM, "out of memory");
				return false;
			}
			own = true;
		}
		int r;
		if (whole) {
			if ((r = jb_pread_full(fd, buf, len, off)) == 0) {
				if (tamper) {
					/* test hook: a relay that alters a block and hashes it as altered */
					buf[len / 3] ^= 0xa5;
					jb_log(JB_LOG_INFO, "test hook: altering block %llu of %s", (unsigned long long)w.block,
					       f->path);
				}
				digest_block(buf, len, d);
				if (s->signer && (r = jb_strong_begin(&c->sh)) == 0) {
					jb_strong_update(&c->sh, buf, len);
					jb_strong_end(&c->sh, f->strong + w.block * JB_STRONG_LEN);
				}
			}
		} else {
			/* the origin of a relayed push hashes every block with
			 * SHA-256 too, in the same pass */
			r = digest_file_block_strong(fd, c->chunk, off, len, d, &c->sh,
						     s->signer ? f->strong + w.block * JB_STRONG_LEN : NULL);
		}
		files_put(s, f);
		if (r < 0) {
			fail_file(s, f, r, "read");
			atomic_fetch_sub(&f->users, 1);
			if (own) {
				free(buf);
				buf = NULL;
			}
			continue;
		}
		*it = (struct item){.w = w, .resend = resend, .corrupt = corrupt, .whole = whole, .ownbuf = own,
				    .f = f, .buf = buf};
		return true;
	}
}

/* The writer's part: send the block, account for it.  <0: the stream
 * failed (the session is over). */
static int consume(struct sendctx *c, struct item *it)
{
	struct session *s = c->s;
	struct stream *st = c->st;
	struct xfile *f = it->f;
	uint64_t len = block_len(f, it->w.block, s->block_size);
	off_t off = (off_t)(it->w.block * s->block_size);
	int fd = -1, r = 0;
	if (it->w.send) {
		struct jb_block_hdr h = {.file = it->w.file, .block = it->w.block, .len = (uint32_t)len};
		memcpy(h.digest, f->digests + it->w.block * JB_DIGEST_LEN, JB_DIGEST_LEN);
		uint8_t hdr[JB_BLOCK_HDR_LEN];
		jb_wire_block_encode(&h, hdr);
		if (it->corrupt) {
			it->buf[len / 2] ^= 0x5a; /* test hook: damage the payload after hashing */
			jb_log(JB_LOG_INFO, "test hook: corrupting block %llu of %s", (unsigned long long)it->w.block, f->path);
		}
		if (it->whole) {
			r = stream_write(st, hdr, sizeof hdr);
			if (r == 0)
				r = stream_write(st, it->buf, len);
		} else if ((fd = files_get(s, f)) < 0) {
			/* it was open a moment ago: reading it again failed */
			fail_file(s, f, fd, "cannot open");
			release(s, it);
			return 0;
		} else {
			r = send_zerocopy(st, hdr, fd, off, len);
		}
		if (r == -ENODATA) {
			/* the header is out: the stream cannot go on without the
			 * payload it announced */
			files_put(s, f);
			release(s, it);
			session_fatal(s, EIO, "%s: file shrank while being sent", f->path);
			return r;
		}
		if (r < 0) {
			if (fd >= 0)
				files_put(s, f);
			release(s, it);
			if (stream_refused(st))
				session_fatal(s, EACCES, "%s: data stream %d was refused", s->ctl->peer, st->index);
			else
				session_fatal(s, r, "%s: data stream %d: %s", s->ctl->peer, st->index,
				      r == -EPIPE || r == -ECONNRESET ? "connection lost" : strerror(-r));
			return r;
		}
		atomic_fetch_add(&s->bytes_moved, len);
	}
	bool last = !it->resend && atomic_fetch_sub(&f->remaining, 1) == 1;
	if (last && fd < 0)
		fd = files_get(s, f);
	/* (a relay's staged copy is still taking its size and time; what it
	 * holds was verified block by block) */
	bool same = !last || (fd >= 0 && (s->feed || unchanged(f, fd)));
	if (fd >= 0)
		files_put(s, f);
	if (last) {
		files_close(s, f); /* every block read */
		if (same)
			session_post_file(s, EV_FILE_HASHED, it->w.file, 0, "%s", "");
		else
			fail_file(s, f, ESTALE, "read");
	}
	release(s, it);
	return 0;
}

static void *reader_main(void *arg)
{
	struct sendctx *c = arg;
	struct ahead *a = c->ah;
	for (;;) {
		pthread_mutex_lock(&a->lock);
		while (!a->dead && (a->n == AHEAD || !a->nfree))
			pthread_cond_wait(&a->cond, &a->lock);
		bool dead = a->dead;
		uint8_t *buf = dead ? NULL : a->free[--a->nfree];
		pthread_mutex_unlock(&a->lock);
		struct item it;
		if (dead || !produce(c, &it, buf)) {
			pthread_mutex_lock(&a->lock);
			if (!dead)
				a->free[a->nfree++] = buf;
			a->done = true;
			pthread_cond_broadcast(&a->cond);
			pthread_mutex_unlock(&a->lock);
			return NULL;
		}
		pthread_mutex_lock(&a->lock);
		if (a->dead) {
			/* the writer is gone: this block goes nowhere */
			release(c->s, &it);
			if (it.ownbuf)
				free(it.buf);
			a->free[a->nfree++] = buf;
			pthread_mutex_unlock(&a->lock);
			continue;
		}
		a->q[(a->head + a->n++) % AHEAD] = it;
		pthread_cond_broadcast(&a->cond);
		pthread_mutex_unlock(&a->lock);
	}
}

void *sender_stream_main(void *arg)
{
	struct stream *st = arg;
	struct session *s = st->s;
	/* Encrypted streams (and the corruption test hook) need the whole block
	 * in user space; clear streams only need a chunk to hash through. */
	struct sendctx c = {.st = st, .s = s, .cap = ((size_t)s->block_size + 4095) & ~(size_t)4095};
	c.chunk = aligned_alloc(4096, STREAM_CHUNK);
	if (!c.chunk) {
		session_fatal(s, ENOMEM, "out of memory");
		return NULL;
	}
	c.zerocopy = !st->ssl && !peer_is_local(st->fd);
	/* Queue no more unsent bytes than it takes to keep the link busy until
	 * this thread runs again.  Without a limit every stream's unsent queue
	 * grows to tcp_wmem's maximum (256 MiB on a tuned host), which with 8
	 * streams passes the kernel's TCP memory limit (tcp_mem): under that
	 * pressure every window on the host is clamped to a few KiB and the
	 * transfer stalls (seen at 150 ms, -P 8, both ends on one host). */
	int lowat = (int)JB_MAX(4u << 20, JB_MIN(16u << 20, (64u << 20) / (unsigned)JB_MAX(1, s->nstreams)));
	setsockopt(st->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
	if (!s->window_set)
		lift_sndbuf(st->fd);
	/* Whole blocks need buffers: one per block read ahead, and one only
	 * in copy mode (a clear stream to another host sends from the page
	 * cache, and its reader only hashes). */
	bool copy = st->ssl || !c.zerocopy;
	struct ahead *a = NULL;
	bool room = !copy || (uint64_t)s->nstreams * (AHEAD + 1) * c.cap <= AHEAD_BYTES;
	if (s->nstreams <= AHEAD_STREAMS && room && (a = calloc(1, sizeof *a))) {
		pthread_mutex_init(&a->lock, NULL);
		pthread_cond_init(&a->cond, NULL);
		a->st = st;
		bool short_of = false;
		for (int i = 0; i < AHEAD + 1; i++) {
			a->free[a->nfree] = copy ? aligned_alloc(4096, c.cap) : NULL;
			if (copy && !a->free[a->nfree])
				short_of = true;
			else
				a->nfree++;
		}
		c.ah = a;
		if (short_of || pthread_create(&a->th, NULL, reader_main, &c) != 0) {
			for (int i = 0; i < a->nfree; i++)
				free(a->free[i]);
			pthread_mutex_destroy(&a->lock);
			pthread_cond_destroy(&a->cond);
			free(a);
			a = c.ah = NULL;
		}
	}
	if (!a) {
		/* one thread reads, hashes and sends in turn */
		if (!(c.buf = aligned_alloc(4096, c.cap))) {
			session_fatal(s, ENOMEM, "out of memory");
			free(c.chunk);
			return NULL;
		}
		struct item it;
		while (produce(&c, &it, c.buf))
			if (consume(&c, &it) < 0)
				break;
		free(c.buf);
		free(c.chunk);
		jb_strong_free(&c.sh);
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&a->lock);
		while (!a->n && !a->done)
			pthread_cond_wait(&a->cond, &a->lock);
		if (!a->n) {
			pthread_mutex_unlock(&a->lock);
			break;
		}
		struct item it = a->q[a->head];
		a->head = (a->head + 1) % AHEAD;
		a->n--;
		pthread_mutex_unlock(&a->lock);
		int r = consume(&c, &it);
		if (it.ownbuf) {
			free(it.buf);
			it.buf = NULL;
		}
		pthread_mutex_lock(&a->lock);
		a->free[a->nfree++] = it.buf;
		pthread_cond_broadcast(&a->cond);
		pthread_mutex_unlock(&a->lock);
		if (r < 0)
			break;
	}
	/* stop the reader and give back what it had ready */
	pthread_mutex_lock(&a->lock);
	a->dead = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	pthread_mutex_lock(&s->qlock);
	pthread_cond_broadcast(&s->qcond); /* a reader waiting in next_work sees the fatal flag */
	pthread_mutex_unlock(&s->qlock);
	pthread_join(a->th, NULL);
	while (a->n) {
		struct item *it = &a->q[a->head];
		release(s, it);
		if (it->ownbuf)
			free(it->buf), it->buf = NULL;
		a->free[a->nfree++] = it->buf;
		a->head = (a->head + 1) % AHEAD;
		a->n--;
	}
	for (int i = 0; i < a->nfree; i++)
		free(a->free[i]);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a);
	free(c.chunk);
	jb_strong_free(&c.sh); /* the reader's, joined above */
	return NULL;
}
