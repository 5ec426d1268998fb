/* The sending end: offers the manifest, learns which blocks the receiver
 * needs, and lets one thread per data stream read, hash and send blocks. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include "xfer-internal.h"

static bool next_work(struct session *s, struct work *w, bool *resend)
{
	pthread_mutex_lock(&s->qlock);
	for (;;) {
		if (s->stopping || atomic_load(&s->fatal)) {
			pthread_mutex_unlock(&s->qlock);
			return false;
		}
		if (s->nresend) {
			*w = s->resend[--s->nresend];
			*resend = true;
			break;
		}
		if (s->nextplan < s->nplan) {
			*w = s->plan[s->nextplan++];
			*resend = false;
			break;
		}
		pthread_cond_wait(&s->qcond, &s->qlock);
	}
	pthread_mutex_unlock(&s->qlock);
	return true;
}

static void fatal(struct session *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fatal(struct session *s, int code, const char *fmt, ...)
{
	struct event e = {.kind = EV_FATAL, .code = code < 0 ? -code : code};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.text, sizeof e.text, fmt, ap);
	va_end(ap);
	atomic_store(&s->fatal, true);
	session_post(s, &e);
	pthread_mutex_lock(&s->qlock);
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
}

static int source_fd(struct session *s, struct xfile *f, uint32_t idx)
{
	pthread_mutex_t *m = &s->stripes[idx % LOCK_STRIPES];
	pthread_mutex_lock(m);
	if (f->fd < 0) {
		int fd = s->src_beneath ? jb_open_beneath(s->srcdir, f->src, O_RDONLY, 0)
					: openat(s->srcdir, f->src, O_RDONLY | O_CLOEXEC);
		if (fd < 0 && !s->src_beneath)
			fd = -errno;
		if (fd >= 0)
			posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		f->fd = fd;
	}
	int fd = f->fd;
	if (fd < 0)
		f->fd = -1;
	pthread_mutex_unlock(m);
	return fd;
}

static void release_fd(struct session *s, struct xfile *f, uint32_t idx)
{
	pthread_mutex_t *m = &s->stripes[idx % LOCK_STRIPES];
	pthread_mutex_lock(m);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	pthread_mutex_unlock(m);
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
static void read_joined(struct session *s)
{
	for (int i = 0; i < s->nstreams; i++) {
		struct stream *st = &s->streams[i];
		if (!st->join_pending || st->fd < 0)
			continue;
		struct timeval tv = {.tv_sec = 10};
		setsockopt(st->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		if (stream_joined(st) < 0)
			jb_log(JB_LOG_WARN, "%s: data stream %d: no JOINED", s->ctl->peer, i);
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

static void *send_worker(void *arg)
{
	struct stream *st = arg;
	struct session *s = st->s;
	/* Encrypted streams (and the corruption test hook) need the whole block
	 * in user space; clear streams only need a chunk to hash through. */
	size_t cap = ((size_t)s->block_size + 4095) & ~(size_t)4095;
	uint8_t *chunk = aligned_alloc(4096, STREAM_CHUNK), *buf = NULL;
	if (!chunk) {
		fatal(s, ENOMEM, "out of memory");
		return NULL;
	}
	bool zerocopy = !st->ssl && !peer_is_local(st->fd);
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
	struct work w;
	bool resend;
	while (next_work(s, &w, &resend)) {
		struct xfile *f = &s->files[w.file];
		uint64_t len = block_len(f, w.block, s->block_size);
		off_t off = (off_t)(w.block * s->block_size);
		int fd = source_fd(s, f, w.file);
		if (fd < 0) {
			fatal(s, fd, "%s: %s", f->src, strerror(-fd));
			break;
		}
		uint8_t *d = f->digests + w.block * JB_DIGEST_LEN;
		int hook = s->corrupt_block;
		bool corrupt = w.send && hook >= 0 && w.file == 0 && (uint64_t)hook == w.block &&
			       __atomic_compare_exchange_n(&s->corrupt_block, &hook, -1, false, __ATOMIC_SEQ_CST,
							   __ATOMIC_SEQ_CST);
		bool whole = w.send && (st->ssl || corrupt || !zerocopy);
		int r;
		if (whole) {
			if (!buf && !(buf = aligned_alloc(4096, cap))) {
				fatal(s, ENOMEM, "out of memory");
				break;
			}
			if ((r = jb_pread_full(fd, buf, len, off)) == 0)
				digest_block(buf, len, d);
		} else {
			r = digest_file_block(fd, chunk, off, len, d);
		}
		if (r < 0) {
			if (r == -ENODATA)
				fatal(s, EIO, "%s: file shrank while being sent", f->src);
			else
				fatal(s, r, "%s: read: %s", f->src, strerror(-r));
			break;
		}
		if (w.send) {
			struct jb_block_hdr h = {.file = w.file, .block = w.block, .len = (uint32_t)len};
			memcpy(h.digest, d, JB_DIGEST_LEN);
			uint8_t hdr[JB_BLOCK_HDR_LEN];
			jb_wire_block_encode(&h, hdr);
			if (corrupt) {
				buf[len / 2] ^= 0x5a; /* test hook: damage the payload after hashing */
				jb_log(JB_LOG_INFO, "test hook: corrupting block %llu of %s", (unsigned long long)w.block,
				       f->path);
			}
			if (whole) {
				r = stream_write(st, hdr, sizeof hdr);
				if (r == 0)
					r = stream_write(st, buf, len);
			} else {
				r = send_zerocopy(st, hdr, fd, off, len);
			}
			if (r == -ENODATA) {
				fatal(s, EIO, "%s: file shrank while being sent", f->src);
				break;
			}
			if (r < 0 && stream_refused(st)) {
				fatal(s, EACCES, "%s: data stream %d was refused", s->ctl->peer, st->index);
				break;
			}
			if (r < 0) {
				fatal(s, r, "%s: data stream %d: %s", s->ctl->peer, st->index,
				      r == -EPIPE || r == -ECONNRESET ? "connection lost" : strerror(-r));
				break;
			}
			atomic_fetch_add(&s->bytes_moved, len);
		}
		if (!resend && atomic_fetch_sub(&f->remaining, 1) == 1) {
			release_fd(s, f, w.file);
			struct event e = {.kind = EV_FILE_HASHED, .file = w.file};
			session_post(s, &e);
		}
	}
	free(buf);
	free(chunk);
	return NULL;
}

static int send_file_end(struct session *s, uint32_t i)
{
	struct xfile *f = &s->files[i];
	digest_root(f->digests, f->nblocks, f->root);
	f->have_root = true;
	struct jb_buf *b = &s->ctl->out;
	size_t m = jb_frame_begin(b, JB_MSG_FILE_END);
	jb_buf_u32(b, i);
	jb_buf_put(b, f->root, JB_DIGEST_LEN);
	jb_frame_end(b, m);
	return 0;
}

/* Put files [s->plan_upto, upto) in the plan: every block of each, sent if the
 * receiver asked for it, hashed either way (FILE_END needs every digest).
 * The stream threads start on them at once. */
static void plan_files(struct session *s, size_t upto)
{
	pthread_mutex_lock(&s->qlock);
	for (; s->plan_upto < upto; s->plan_upto++) {
		uint32_t i = (uint32_t)s->plan_upto;
		struct xfile *f = &s->files[i];
		if (f->type != JB_ENTRY_FILE)
			continue;
		if (f->nblocks == 0)
			send_file_end(s, i); /* nothing to read */
		for (uint64_t b = 0; b < f->nblocks; b++) {
			bool need = f->have[b / 8] & (1u << (b % 8));
			s->plan[s->nplan++] = (struct work){.file = i, .block = b, .send = need};
			if (need)
				s->bytes_planned += block_len(f, b, s->block_size);
		}
	}
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
}

/* A NEED before NEED_END.  On the sending side f->have marks the blocks the
 * receiver asks for.  NEEDs come in manifest order, a file's possibly in
 * several frames: a NEED for a later file completes the ones before it. */
static int take_need(struct session *s, struct jb_error *err)
{
	struct jb_msg *m = &s->ctl->msg;
	uint32_t fi = m->u.need.file;
	if (fi >= s->nfiles || s->files[fi].type != JB_ENTRY_FILE)
		return jb_err(err, EBADMSG, "%s: NEED for unknown file %u", s->ctl->peer, fi);
	if (fi < s->need_file || fi < s->plan_upto)
		return jb_err(err, EBADMSG, "%s: NEED for file %u out of order", s->ctl->peer, fi);
	if (!s->got_need)
		jb_log(JB_LOG_DEBUG, "%s: first NEED %.0f ms after the streams started", s->ctl->peer,
		       (jb_now() - s->t0) * 1e3);
	s->got_need = true;
	if (fi > s->need_file)
		plan_files(s, fi);
	s->need_file = fi;
	struct xfile *f = &s->files[fi];
	for (uint32_t k = 0; k < m->u.need.nranges; k++) {
		uint64_t first, count;
		jb_wire_need_range(m, k, &first, &count);
		if (first > f->nblocks || count > f->nblocks - first)
			return jb_err(err, EBADMSG, "%s: NEED range outside file %u", s->ctl->peer, fi);
		for (uint64_t b = first; b < first + count; b++)
			f->have[b / 8] |= (uint8_t)(1u << (b % 8));
	}
	return 0;
}

static int alloc_plan(struct session *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->nfiles; i++)
		n += s->files[i].nblocks;
	s->plan = calloc(n ? n : 1, sizeof *s->plan);
	return s->plan ? 0 : -ENOMEM;
}

/* Queue a block to be sent (again); s->qlock held. */
static int queue_resend(struct session *s, uint32_t fi, uint64_t block)
{
	if (s->nresend == s->capresend) {
		size_t nc = s->capresend ? s->capresend * 2 : 16;
		struct work *nw = realloc(s->resend, nc * sizeof *nw);
		if (!nw)
			return -ENOMEM;
		s->resend = nw;
		s->capresend = nc;
	}
	s->resend[s->nresend++] = (struct work){.file = fi, .block = block, .send = true};
	return 0;
}

static int handle_msg(struct session *s, struct jb_error *err)
{
	struct jb_msg *m = &s->ctl->msg;
	switch (m->type) {
	case JB_MSG_RESEND: {
		uint32_t fi = m->u.resend.file;
		if (fi >= s->nfiles || m->u.resend.block >= s->files[fi].nblocks)
			return jb_err(err, EBADMSG, "%s: RESEND outside the manifest", s->ctl->peer);
		if (++s->resend_total > 64 + s->nplan / 8)
			return jb_err(err, EIO, "%s: too many blocks failed verification (%llu); giving up",
				      s->ctl->peer, (unsigned long long)s->resend_total);
		jb_log(JB_LOG_WARN, "%s: %s: block %llu failed verification, sending it again", s->ctl->peer,
		       s->files[fi].path, (unsigned long long)m->u.resend.block);
		pthread_mutex_lock(&s->qlock);
		if (queue_resend(s, fi, m->u.resend.block) < 0) {
			pthread_mutex_unlock(&s->qlock);
			return -ENOMEM;
		}
		pthread_cond_signal(&s->qcond);
		pthread_mutex_unlock(&s->qlock);
		return 0;
	}
	case JB_MSG_NEED_END:
		if (s->needs_done)
			return jb_err(err, EBADMSG, "%s: a second NEED_END", s->ctl->peer);
		s->needs_done = true;
		jb_log(JB_LOG_DEBUG, "%s: NEED_END %.0f ms after the streams started", s->ctl->peer,
		       (jb_now() - s->t0) * 1e3);
		plan_files(s, s->nfiles);
		return 0;
	case JB_MSG_NEED: {
		if (!s->needs_done)
			return take_need(s, err);
		/* After NEED_END: the receiver found that the file it committed
		 * before under this name is not this one after all, and wants it
		 * whole.  Once per file. */
		uint32_t fi = m->u.need.file;
		if (fi >= s->nfiles || s->files[fi].type != JB_ENTRY_FILE || s->files[fi].done ||
		    s->files[fi].refetched)
			return jb_err(err, EBADMSG, "%s: NEED for unknown, finished or already re-sent file %u",
				      s->ctl->peer, fi);
		struct xfile *f = &s->files[fi];
		f->refetched = true;
		pthread_mutex_lock(&s->qlock);
		for (uint32_t k = 0; k < m->u.need.nranges; k++) {
			uint64_t first, count;
			jb_wire_need_range(m, k, &first, &count);
			if (first > f->nblocks || count > f->nblocks - first) {
				pthread_mutex_unlock(&s->qlock);
				return jb_err(err, EBADMSG, "%s: NEED range outside file %u", s->ctl->peer, fi);
			}
			for (uint64_t b = first; b < first + count; b++) {
				if (queue_resend(s, fi, b) < 0) {
					pthread_mutex_unlock(&s->qlock);
					return -ENOMEM;
				}
				s->bytes_planned += block_len(f, b, s->block_size);
			}
		}
		pthread_cond_broadcast(&s->qcond);
		pthread_mutex_unlock(&s->qlock);
		return 0;
	}
	case JB_MSG_FILE_DONE: {
		uint32_t fi = m->u.file_done.file;
		if (fi >= s->nfiles || s->files[fi].done)
			return jb_err(err, EBADMSG, "%s: FILE_DONE for unknown or finished file %u", s->ctl->peer, fi);
		struct xfile *f = &s->files[fi];
		f->done = true;
		f->ok = m->u.file_done.status == 0;
		if (!f->ok)
			f->error = strdup(m->u.file_done.text);
		else if (f->type == JB_ENTRY_FILE && memcmp(f->root, m->u.file_done.digest, JB_DIGEST_LEN)) {
			f->ok = false;
			f->error = strdup("receiver confirmed a different digest");
		}
		s->files_done++;
		return 0;
	}
	default:
		return jb_err(err, EBADMSG, "%s: unexpected message %u during transfer", s->ctl->peer, m->type);
	}
}

int sender_offer(struct session *s, struct jb_error *err)
{
	if (s->offered)
		return 0;
	s->offered = true;
	return manifest_send(s, err);
}

int sender_run(struct session *s, struct jb_error *err)
{
	int r;
	if ((r = sender_offer(s, err)) < 0)
		return r;
	if ((r = session_alloc_blocks(s, 0, err)) < 0)
		return r;
	if ((r = alloc_plan(s)) < 0)
		return r;
	/* The stream threads start before the first NEED and take blocks as
	 * the NEEDs put them in the plan (plan_files). */
	s->t0 = jb_now();
	for (int i = 0; i < s->nstreams; i++) {
		struct stream *st = &s->streams[i];
		st->s = s;
		if (pthread_create(&st->thread, NULL, send_worker, st) != 0)
			return jb_err(err, EAGAIN, "cannot start stream thread");
		st->started = true;
	}
	bool busy = false;
	while (!s->needs_done || s->files_done < s->nfiles) {
		/* A resuming receiver re-reads every block it has of each file
		 * before it answers: minutes for a terabyte.  Until NEED_END, wait
		 * as long as the connection lives (TCP keepalive ends it within
		 * about a minute if the peer dies). */
		r = session_wait(s, busy, err);
		if (r < 0)
			goto fail;
		if (r == 1 && (r = handle_msg(s, err)) < 0)
			goto fail_tell;
		struct event *ev;
		size_t n = session_take_events(s, &ev);
		busy = n > 0;
		for (size_t i = 0; i < n; i++) {
			if (ev[i].kind == EV_FILE_HASHED) {
				send_file_end(s, ev[i].file);
			} else if (ev[i].kind == EV_FATAL) {
				r = jb_err(err, ev[i].code, "%s", ev[i].text);
				free(ev);
				if (session_peer_error(s, err)) {
					r = -err->code;
					goto fail;
				}
				goto fail_tell;
			}
		}
		free(ev);
		if ((r = ctl_send(s->ctl, err)) < 0)
			goto fail;
		session_tick(s, false);
	}
	session_tick(s, true);
	jb_log(JB_LOG_DEBUG, "%s: every FILE_DONE in, %.0f ms after the streams started", s->ctl->peer,
	       (jb_now() - s->t0) * 1e3);
	size_t m = jb_frame_begin(&s->ctl->out, JB_MSG_BYE);
	jb_frame_end(&s->ctl->out, m);
	r = ctl_flush(s->ctl, err);
	pthread_mutex_lock(&s->qlock);
	s->stopping = true;
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
	session_join_workers(s); /* idle: nothing left to send */
	read_joined(s);           /* the workers are gone: the streams are ours */
	session_close_streams(s);
	return r;
fail_tell:
	ctl_send_error(s->ctl, err ? err->code : EIO, err ? err->msg : "transfer failed");
fail:
	pthread_mutex_lock(&s->qlock);
	s->stopping = true;
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
	session_close_streams(s);
	return r;
}
