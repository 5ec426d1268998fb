/* Session plumbing shared by the sender and the receiver: files, the event
 * queue from stream threads to the control loop, stream I/O, digests. */
#include <fcntl.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "xfer-internal.h"

void digest_block(const void *p, size_t n, uint8_t out[JB_DIGEST_LEN])
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits(p, n));
	memcpy(out, c.digest, JB_DIGEST_LEN);
}

/* Hash len bytes of fd at off through chunk (STREAM_CHUNK bytes, which stay
 * in cache): 0, -ENODATA if the file is shorter, -errno. */
int digest_file_block_strong(int fd, uint8_t *chunk, off_t off, uint64_t len, uint8_t out[JB_DIGEST_LEN],
			     struct jb_strong *sh, uint8_t strong[JB_STRONG_LEN])
{
	XXH3_state_t h;
	digest_start(&h);
	int r = strong ? jb_strong_begin(sh) : 0;
	for (uint64_t done = 0; r == 0 && done < len;) {
		size_t n = (size_t)JB_MIN((uint64_t)STREAM_CHUNK, len - done);
		if ((r = jb_pread_full(fd, chunk, n, off + (off_t)done)) < 0)
			break;
		digest_update(&h, chunk, n);
		if (strong)
			jb_strong_update(sh, chunk, n);
		done += n;
	}
	if (r < 0)
		return r;
	digest_end(&h, out);
	if (strong)
		jb_strong_end(sh, strong);
	return 0;
}

int digest_file_block(int fd, uint8_t *chunk, off_t off, uint64_t len, uint8_t out[JB_DIGEST_LEN])
{
	return digest_file_block_strong(fd, chunk, off, len, out, NULL, NULL);
}

void cond_deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

int file_digests(const char *path, uint32_t bs, size_t dlen,
		 int (*block)(int fd, uint8_t *chunk, off_t off, uint64_t len, uint8_t *out), uint8_t **ret,
		 uint64_t *ret_n, uint64_t *ret_size, struct jb_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return jb_err(err, errno, "%s: %s", path, strerror(errno));
	struct stat st;
	int fr = fstat(fd, &st) < 0 ? errno : S_ISREG(st.st_mode) ? 0 : EISDIR;
	if (fr) {
		close(fd);
		return jb_err(err, fr, "%s: %s", path, fr == EISDIR ? "not a regular file" : strerror(fr));
	}
	uint64_t size = (uint64_t)st.st_size, nb = (size + bs - 1) / bs;
	uint8_t *dg = calloc(nb ? nb : 1, dlen), *buf = malloc(STREAM_CHUNK);
	int r = dg && buf ? 0 : jb_oom(err);
	for (uint64_t b = 0; r == 0 && b < nb; b++)
		if ((r = block(fd, buf, (off_t)(b * bs), JB_MIN((uint64_t)bs, size - b * bs), dg + b * dlen)) < 0)
			r = jb_err(err, r == -ENODATA ? EIO : -r, "%s: read failed: %s", path,
				   r == -ENODATA ? "the file shrank" : strerror(-r));
	free(buf);
	close(fd);
	if (r < 0) {
		free(dg);
		return r;
	}
	*ret = dg;
	*ret_n = nb;
	*ret_size = size;
	return 0;
}

void digest_end(XXH3_state_t *h, uint8_t out[JB_DIGEST_LEN])
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(h));
	memcpy(out, c.digest, JB_DIGEST_LEN);
}

/* The whole-file digest: XXH3-128 over the concatenated block digests.  Blocks
 * travel out of order over many streams, so a hash list (one level of a
 * Merkle tree) is what both ends can compute without a second pass. */
void digest_root(const uint8_t *digests, uint64_t n, uint8_t out[JB_DIGEST_LEN])
{
	digest_block(digests ? digests : (const uint8_t *)"", n * JB_DIGEST_LEN, out);
}

void digest_format(const uint8_t d[JB_DIGEST_LEN], char out[40])
{
	memcpy(out, "xxh3t:", 6);
	jb_hex(d, JB_DIGEST_LEN, out + 6);
}

uint64_t block_len(const struct xfile *f, uint64_t b, uint32_t bs)
{
	uint64_t off = b * bs;
	return JB_MIN((uint64_t)bs, f->size - off);
}

static size_t files_len(void) { return (size_t)WINDOW * sizeof(struct xfile); }

bool error_ends_session(int code)
{
	switch (code < 0 ? -code : code) {
	case ENOSPC: case EDQUOT: case EIO: case EROFS: case ENOMEM: case EMFILE: case ENFILE:
		return true;
	default:
		return false;
	}
}

int session_init(struct session *s, bool sender)
{
	memset(s, 0, sizeof *s);
	s->evfd = -1;
	s->sender = sender;
	s->destdir = -1;
	s->scopefd = -1;
	s->corrupt_block = -1;
	s->tamper_block = -1;
	s->umask = 022;
	pthread_mutex_init(&s->qlock, NULL);
	pthread_cond_init(&s->qcond, NULL);
	pthread_mutex_init(&s->evlock, NULL);
	for (int i = 0; i < LOCK_STRIPES; i++)
		pthread_mutex_init(&s->stripes[i], NULL), pthread_mutex_init(&s->wlocks[i], NULL);
	for (int i = 0; i < JB_WIRE_MAX_STREAMS; i++)
		s->streams[i].fd = -1;
	files_init(s, 4);
	s->t0 = jb_now();
	/* The window never moves: stream threads read slots while the control
	 * loop fills the next ones.  Its address space is reserved once; only
	 * the pages of slots in use are ever allocated. */
	void *p = mmap(NULL, files_len(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	s->files = p;
	s->res = calloc(1, sizeof *s->res);
	if (!s->res || !(s->res->failures = calloc(JB_XFER_MAX_FAILURES, sizeof *s->res->failures)))
		return -ENOMEM;
	s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return s->evfd < 0 ? -errno : 0;
}

int jb_xfer_max_open(int max_open_files, int n)
{
	int conf = max_open_files > 0 ? max_open_files : 64;
	return JB_MAX(n + 1, JB_MIN(conf, 2 * n + 2));
}

/* control, eventfd, streams, open files, directories kept, and one a
 * thread may hold for a moment (each stream thread, the control loop, the
 * committer) */
int session_fds_wanted(int n, int max_open) { return 2 + n + max_open + DIRCACHE + n + 2; }

int session_take_fds(struct session *s, int *nstreams, int max_open_files, struct jb_error *err)
{
	int conf = max_open_files > 0 ? max_open_files : 64;
	int n = JB_MAX(1, JB_MIN(*nstreams, conf - 1));
	int want = session_fds_wanted(n, jb_xfer_max_open(max_open_files, n));
	int least = session_fds_wanted(1, jb_xfer_max_open(max_open_files, 1));
	int got = jb_fds_take(want, least);
	if (!got)
		return jb_err(err, EMFILE, "out of file descriptors: a session needs %d, %d are left of the %d "
			      "RLIMIT_NOFILE allows (raise it with ulimit -n, or wait for other transfers)",
			      least, jb_fds_left(), jb_fds_limit());
	while (n > 1 && session_fds_wanted(n, jb_xfer_max_open(max_open_files, n)) > got)
		n--;
	int used = session_fds_wanted(n, jb_xfer_max_open(max_open_files, n));
	jb_fds_give(got - used);
	if (n < *nstreams)
		jb_log(JB_LOG_WARN, "%d streams instead of %d: only %d file descriptors are left", n, *nstreams, got);
	s->fds = used;
	s->max_open = jb_xfer_max_open(max_open_files, n);
	s->fc.cap = s->max_open;
	*nstreams = n;
	return 0;
}

void stream_close(struct stream *st)
{
	if (st->ssl)
		SSL_free(st->ssl);
	st->ssl = NULL;
	if (st->fd >= 0)
		close(st->fd);
	st->fd = -1;
}

void session_join_workers(struct session *s)
{
	for (int i = 0; i < JB_WIRE_MAX_STREAMS; i++) {
		struct stream *st = &s->streams[i];
		if (st->started)
			pthread_join(st->thread, NULL);
		st->started = false;
	}
}

void session_close_streams(struct session *s)
{
	for (int i = 0; i < JB_WIRE_MAX_STREAMS; i++)
		if (s->streams[i].fd >= 0)
			shutdown(s->streams[i].fd, SHUT_RDWR);
	session_join_workers(s);
	for (int i = 0; i < JB_WIRE_MAX_STREAMS; i++)
		stream_close(&s->streams[i]);
}

/* Wait for a control frame or, unless busy, a worker event.  While events
 * keep coming (a file finished every few hundred microseconds with small
 * files) they are taken in batches at most once a millisecond instead of
 * waking for each: a wake-up costs more than the work it brings on this
 * paravirtualised host. */
int session_wait(struct session *s, bool busy, struct jb_error *err)
{
	return busy ? ctl_recv(s->ctl, 1, -1, err) : ctl_recv(s->ctl, 200, s->evfd, err);
}

static void slot_free(struct session *s, struct xfile *f)
{
	if (f->fd >= 0)
		files_close(s, f);
	claim_release(f); /* an entry the session ended without */
	free(f->path);
	if (f->digests != f->d1)
		free(f->digests);
	if (f->have != &f->have1)
		free(f->have);
	free(f->error);
	free(f->strong);
	f->strong = NULL;
	free(f->taken);
	f->taken = NULL;
	free(f->seal_body);
	f->seal_body = NULL;
	f->seal_len = 0;
	s->blocks_live -= f->nblocks;
	f->path = NULL;
	f->digests = f->have = NULL;
	f->error = NULL;
	f->live = false;
}

void session_free(struct session *s)
{
	session_close_streams(s);
	if (s->files) {
		for (uint32_t i = s->lo; i < s->nfiles; i++)
			slot_free(s, slot(s, i));
	}
	files_free(s);
	if (s->files)
		munmap(s->files, files_len());
	walker_free(s->walk);
	seal_free(s);
	custody_free(s);
	free(s->resend);
	free(s->ev);
	free(s->closing);
	free(s->rename_top);
	free(s->top);
	free(s->last_path);
	free(s->keybase);
	jb_xfer_result_free(s->res);
	free(s->res);
	if (s->destdir >= 0)
		close(s->destdir);
	if (s->scopefd >= 0)
		close(s->scopefd);
	if (s->evfd >= 0)
		close(s->evfd);
	jb_fds_give(s->fds);
	pthread_mutex_destroy(&s->qlock);
	pthread_cond_destroy(&s->qcond);
	pthread_mutex_destroy(&s->evlock);
	for (int i = 0; i < LOCK_STRIPES; i++)
		pthread_mutex_destroy(&s->stripes[i]), pthread_mutex_destroy(&s->wlocks[i]);
}

bool window_full(const struct session *s) { return s->nfiles - s->lo >= WINDOW; }

int session_add_file(struct session *s, const struct jb_wire_entry *e, uint32_t src, struct jb_error *err)
{
	if (s->nfiles == UINT32_MAX)
		return jb_err(err, E2BIG, "too many entries for one transfer (limit %u)", UINT32_MAX - 1);
	/* the FILE_DONEs that let the sender offer this entry may have gone out
	 * (ctl_recv writes while it waits) before this end freed their slots */
	if (window_full(s) && !s->sender)
		window_advance(s);
	if (window_full(s))
		return jb_err(err, EBADMSG, "%s: entry %u is beyond the window (%u entries in flight)",
			      s->ctl ? s->ctl->peer : "?", s->nfiles, WINDOW);
	struct xfile *f = slot(s, s->nfiles);
	char *path = strdup(e->path);
	if (!path)
		return jb_oom(err);
	/* the sender's stream threads look at slots under the queue's lock,
	 * the receiver's under the slot's stripe */
	pthread_mutex_t *m = s->sender ? &s->qlock : &s->stripes[s->nfiles % LOCK_STRIPES];
	pthread_mutex_lock(m);
	memset(f, 0, sizeof *f);
	f->fd = -1;
	f->index = s->nfiles;
	f->type = e->type;
	f->mode = e->mode;
	f->size = e->size;
	f->mtime_ns = e->mtime_ns;
	f->src = src;
	f->path = path;
	f->live = true;
	pthread_mutex_unlock(m);
	s->nfiles++;
	s->bytes_total += e->size;
	return 0;
}

int file_blocks(struct session *s, struct xfile *f, struct jb_error *err)
{
	if (f->blocks || f->type != JB_ENTRY_FILE)
		return 0;
	uint64_t nb = f->size / s->block_size + (f->size % s->block_size != 0);
	/* A manifest is only sizes until blocks arrive; cap what its
	 * bookkeeping may cost before allocating it (16 bytes and a bit per
	 * block of every file in flight). */
	if (nb > SESSION_MAX_BLOCKS - s->blocks_live)
		return jb_err(err, EFBIG, "%s: %s: %llu blocks of %u bytes, and %llu in flight, is over the limit of %llu "
			      "for one session; use a larger --block-size", s->ctl ? s->ctl->peer : "?", f->path,
			      (unsigned long long)nb, s->block_size, (unsigned long long)s->blocks_live,
			      (unsigned long long)SESSION_MAX_BLOCKS);
	uint8_t *dg = nb <= 1 ? f->d1 : calloc(nb, JB_DIGEST_LEN);
	uint8_t *hv = nb <= 8 ? &f->have1 : calloc(nb / 8 + 1, 1);
	if (!dg || !hv) {
		if (dg != f->d1)
			free(dg);
		if (hv != &f->have1)
			free(hv);
		return jb_err(err, ENOMEM, "out of memory for %llu blocks", (unsigned long long)nb);
	}
	if ((s->signer || s->seal_check) && !(f->strong = calloc(nb + 1, JB_STRONG_LEN))) {
		if (dg != f->d1)
			free(dg);
		if (hv != &f->have1)
			free(hv);
		return jb_err(err, ENOMEM, "out of memory for %llu blocks", (unsigned long long)nb);
	}
	f->nblocks = nb;
	f->digests = dg;
	f->have = hv;
	f->blocks = true;
	s->blocks_live += nb;
	atomic_store(&f->remaining, nb);
	return 0;
}

uint32_t window_advance(struct session *s)
{
	uint32_t n = 0;
	custody_fold(s); /* before their slots go */
	if (s->sender)
		pthread_mutex_lock(&s->qlock);
	while (s->lo < s->nfiles) {
		struct xfile *f = slot(s, s->lo);
		if (!f->done || f->committing || atomic_load(&f->users))
			break;
		pthread_mutex_t *m = &s->stripes[s->lo % LOCK_STRIPES];
		if (!s->sender)
			pthread_mutex_lock(m);
		slot_free(s, f);
		if (!s->sender)
			pthread_mutex_unlock(m);
		s->lo++;
		n++;
	}
	if (s->sender)
		pthread_mutex_unlock(&s->qlock);
	return n;
}

void session_file_result(struct session *s, struct xfile *f)
{
	s->entries_done++;
	if (f->ok) {
		s->entries_ok++;
		if (f->type == JB_ENTRY_FILE)
			s->files_ok++;
	}
	struct jb_file_result r = {
		.path = f->path,
		.size = f->size,
		.dir = f->type == JB_ENTRY_DIR,
		.ok = f->ok,
		.code = f->ok ? 0 : f->errcode ? f->errcode : EIO,
		.error = f->ok ? NULL : f->error ? f->error : "failed",
	};
	if (f->type == JB_ENTRY_FILE && f->have_root)
		digest_format(f->root, r.digest);
	if (!f->ok && s->res) {
		s->res->failed++;
		if (s->res->nfailures < JB_XFER_MAX_FAILURES) {
			struct jb_xfer_failure *x = &s->res->failures[s->res->nfailures];
			x->path = strdup(f->path);
			x->error = strdup(r.error);
			x->code = r.code;
			if (x->path && x->error)
				s->res->nfailures++;
			else
				free(x->path), free(x->error);
		}
	}
	if (s->on_file)
		s->on_file(&r, s->on_file_ud);
}

void session_post(struct session *s, const struct event *e)
{
	pthread_mutex_lock(&s->evlock);
	if (s->nev == s->capev) {
		size_t nc = s->capev ? s->capev * 2 : 64;
		struct event *ne = realloc(s->ev, nc * sizeof *ne);
		if (!ne) {
			pthread_mutex_unlock(&s->evlock);
			atomic_store(&s->fatal, true);
			return;
		}
		s->ev = ne;
		s->capev = nc;
	}
	bool first = s->nev == 0;
	s->ev[s->nev++] = *e;
	pthread_mutex_unlock(&s->evlock);
	/* Only the first event of a batch needs to wake the loop: it reads the
	 * eventfd before it takes the whole list (session_take_events). */
	uint64_t one = 1;
	if (first && write(s->evfd, &one, sizeof one) < 0) {
		/* the counter is saturated or the fd gone: the loop polls anyway */
	}
}

void session_post_file(struct session *s, enum ev_kind kind, uint32_t file, int code, const char *fmt, ...)
{
	struct event e = {.kind = kind, .file = file, .code = code < 0 ? -code : code};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.text, sizeof e.text, fmt, ap);
	va_end(ap);
	session_post(s, &e);
}

void session_fatal(struct session *s, int code, const char *fmt, ...)
{
	struct event e = {.kind = EV_FATAL, .code = code < 0 ? -code : code};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.text, sizeof e.text, fmt, ap);
	va_end(ap);
	if (!atomic_exchange(&s->fatal, true))
		session_post(s, &e); /* the first is the cause; the rest follow from it */
	pthread_mutex_lock(&s->qlock); /* a sender's streams waiting for work see it */
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
}

const char *session_write_error(int r)
{
	switch (r < 0 ? -r : r) {
	case EXDEV: case ELOOP: return "path escapes the data root";
	case ENOSPC: return "no space left on device";
	case EBUSY: return "its partial file is locked by a session of another process";
	case ESTALE: return "its partial file was removed or replaced while it was being received";
	case EEXIST: return "something other than a file has the name of its partial file";
	case EKEYREJECTED: return "its bytes do not match the origin's seal: they were altered on the way";
	default: return strerror(r < 0 ? -r : r);
	}
}

size_t session_take_events(struct session *s, struct event **ret)
{
	uint64_t v;
	if (read(s->evfd, &v, sizeof v) < 0) {
		/* nothing pending */
	}
	pthread_mutex_lock(&s->evlock);
	size_t n = s->nev;
	*ret = NULL;
	if (n) {
		*ret = s->ev;
		s->ev = NULL;
		s->nev = s->capev = 0;
	}
	pthread_mutex_unlock(&s->evlock);
	return n;
}

int stream_read(struct stream *st, void *buf, size_t n)
{
	if (st->ssl)
		return jb_tls_read_full(st->ssl, buf, n);
	uint8_t *p = buf;
	while (n) {
		ssize_t r = recv(st->fd, p, n, MSG_WAITALL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EPIPE;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int stream_write(struct stream *st, const void *buf, size_t n)
{
	if (st->ssl)
		return jb_tls_write_full(st->ssl, buf, n);
	const uint8_t *p = buf;
	while (n) {
		ssize_t r = send(st->fd, p, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int stream_joined(struct stream *st)
{
	uint8_t ack[JB_JOINED_LEN];
	st->join_pending = false;
	int r = stream_read(st, ack, sizeof ack);
	if (r < 0)
		return r;
	return jb_wire_joined_decode(ack) == 0 ? 0 : -EACCES;
}

void session_tick(struct session *s, bool force)
{
	if (s->cancel && *s->cancel && !s->cancelled) {
		/* asked to stop from outside: every connection is shut down, and
		 * the loops end on the failures that follow */
		s->cancelled = true;
		if (s->ctl && s->ctl->fd >= 0)
			shutdown(s->ctl->fd, SHUT_RDWR);
		for (int i = 0; i < s->nstreams; i++)
			if (s->streams[i].fd >= 0)
				shutdown(s->streams[i].fd, SHUT_RDWR);
	}
	double now = jb_now();
	if (!s->progress || (!force && now - s->last_progress < 0.2))
		return;
	s->last_progress = now;
	struct jb_progress p = {
		.bytes_total = s->bytes_planned,
		.bytes_done = atomic_load(&s->bytes_moved),
		.files_total = s->nfiles,
		.files_done = s->entries_done,
		.files_known = s->manifest_done,
		.seconds = now - s->t0,
	};
	s->progress(&p, s->progress_ud);
}

/* A data stream broke: the peer has usually said why on the control
 * connection (no space, a bad path).  Prefer its words to ours. */
bool session_peer_error(struct session *s, struct jb_error *err)
{
	int code = err ? err->code : 0;
	if (code != EPIPE && code != ECONNRESET && code != ENOTCONN && code != ETIMEDOUT)
		return false; /* our own failure: say it at once */
	struct jb_error perr = {0};
	double until = jb_now() + 2;
	while (jb_now() < until) {
		int r = ctl_recv(s->ctl, 250, -1, &perr);
		if (r < 0) {
			if (!s->ctl->peer_error)
				return false;
			if (err)
				*err = perr;
			return true;
		}
	}
	return false;
}

void session_result(struct session *s, struct jb_xfer_result *r)
{
	if (s->res) {
		*r = *s->res;
		free(s->res);
		s->res = NULL;
	}
	r->files = s->nfiles;
	r->files_ok = s->entries_ok;
	r->regular_ok = s->files_ok;
	r->bytes_total = s->bytes_total;
	r->bytes_sent = atomic_load(&s->bytes_moved);
	r->blocks_resent = s->sender ? s->resend_total : atomic_load(&s->blocks_bad);
	r->seconds = jb_now() - s->t0;
	r->streams = s->nstreams;
	r->block_size = s->block_size;
	if (s->cust && s->sender)
		custody_result(s, r);
	/* entries never finished (the session broke) count as failed; not
	 * those a relay took custody of */
	if (s->nfiles > s->entries_done && !r->custody[0])
		r->failed += s->nfiles - s->entries_done;
}

void jb_xfer_result_free(struct jb_xfer_result *r)
{
	if (!r || !r->failures)
		return;
	for (size_t i = 0; i < r->nfailures; i++) {
		free(r->failures[i].path);
		free(r->failures[i].error);
	}
	free(r->failures);
	r->failures = NULL;
	r->nfailures = 0;
}

void jb_xfer_opts_init(struct jb_xfer_opts *o)
{
	memset(o, 0, sizeof *o);
	o->streams = 4;
	o->block_size = JB_WIRE_DEFAULT_BLOCK;
	o->connect_timeout = 30;
	o->corrupt_block = -1;
}
