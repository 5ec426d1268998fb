/* Session plumbing shared by the sender and the receiver: files, the event
 * queue from stream threads to the control loop, stream I/O, digests. */
#include <fcntl.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "xfer-internal.h"

void digest_block(const void *p, size_t n, uint8_t out[JB_DIGEST_LEN])
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits(p, n));
	memcpy(out, c.digest, JB_DIGEST_LEN);
}

/* Hash len bytes of fd at off through chunk (STREAM_CHUNK bytes, which stay
 * in cache): 0, -ENODATA if the file is shorter, -errno. */
int digest_file_block(int fd, uint8_t *chunk, off_t off, uint64_t len, uint8_t out[JB_DIGEST_LEN])
{
	XXH3_state_t h;
	digest_start(&h);
	for (uint64_t done = 0; done < len;) {
		size_t n = (size_t)JB_MIN((uint64_t)STREAM_CHUNK, len - done);
		int r = jb_pread_full(fd, chunk, n, off + (off_t)done);
		if (r < 0)
			return r;
		digest_update(&h, chunk, n);
		done += n;
	}
	digest_end(&h, out);
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

static size_t files_len(void) { return (size_t)JB_WIRE_MAX_FILES * sizeof(struct xfile); }

int session_init(struct session *s, bool sender)
{
	memset(s, 0, sizeof *s);
	s->sender = sender;
	s->srcdir = AT_FDCWD;
	s->destdir = -1;
	s->corrupt_block = -1;
	pthread_mutex_init(&s->qlock, NULL);
	pthread_cond_init(&s->qcond, NULL);
	pthread_mutex_init(&s->evlock, NULL);
	pthread_mutex_init(&s->pdir_lock, NULL);
	s->pdir_fd = -1;
	for (int i = 0; i < LOCK_STRIPES; i++)
		pthread_mutex_init(&s->stripes[i], NULL), pthread_mutex_init(&s->wlocks[i], NULL);
	for (int i = 0; i < JB_WIRE_MAX_STREAMS; i++)
		s->streams[i].fd = -1;
	s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->t0 = jb_now();
	return s->evfd < 0 ? -errno : 0;
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

void session_free(struct session *s)
{
	session_close_streams(s);
	for (size_t i = 0; i < s->nfiles; i++) {
		struct xfile *f = &s->files[i];
		free(f->path);
		free(f->src);
		free(f->digests);
		free(f->have);
		free(f->partial);
		free(f->error);
		if (f->fd >= 0)
			close(f->fd);
		if (f->dirfd >= 0)
			close(f->dirfd);
	}
	if (s->files)
		munmap(s->files, files_len());
	free(s->plan);
	free(s->resend);
	free(s->ev);
	free(s->rename_top);
	free(s->top);
	free(s->last_path);
	free(s->keybase);
	if (s->destdir >= 0)
		close(s->destdir);
	if (s->evfd >= 0)
		close(s->evfd);
	pthread_mutex_destroy(&s->qlock);
	pthread_cond_destroy(&s->qcond);
	pthread_mutex_destroy(&s->evlock);
	pthread_mutex_destroy(&s->pdir_lock);
	free(s->pdir);
	if (s->pdir_fd >= 0)
		close(s->pdir_fd);
	for (int i = 0; i < LOCK_STRIPES; i++)
		pthread_mutex_destroy(&s->stripes[i]), pthread_mutex_destroy(&s->wlocks[i]);
}

int session_add_file(struct session *s, const struct jb_wire_entry *e, const char *src)
{
	if (s->nfiles >= JB_WIRE_MAX_FILES)
		return -E2BIG;
	if (!s->files) {
		/* The table never moves: a receiver's stream threads read entries
		 * while its control loop adds the next manifest frame's.  Address
		 * space for the largest manifest is reserved once (140 MB); only
		 * the pages entries are written to are ever allocated. */
		void *p = mmap(NULL, files_len(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			       -1, 0);
		if (p == MAP_FAILED)
			return -ENOMEM;
		s->files = p;
	}
	struct xfile *f = &s->files[s->nfiles];
	memset(f, 0, sizeof *f);
	f->fd = f->dirfd = -1;
	f->type = e->type;
	f->mode = e->mode;
	f->size = e->size;
	f->mtime_ns = e->mtime_ns;
	f->path = strdup(e->path);
	f->src = src ? strdup(src) : NULL;
	if (!f->path || (src && !f->src)) {
		free(f->path);
		free(f->src);
		return -ENOMEM;
	}
	s->nfiles++;
	s->bytes_total += e->size;
	return 0;
}

/* Allocate per-file block state once the block size is known. */
int session_alloc_blocks(struct session *s, size_t from, struct jb_error *err)
{
	/* A manifest is only sizes until blocks arrive; cap what its bookkeeping
	 * may cost before allocating it (16 bytes and a bit per block). */
	for (size_t i = from; i < s->nfiles; i++)
		if (s->files[i].type == JB_ENTRY_FILE)
			s->blocks_total += s->files[i].size / s->block_size + 1;
	if (s->blocks_total > SESSION_MAX_BLOCKS)
		return jb_err(err, EFBIG, "%s: the manifest has at least %llu blocks of %u bytes, over the limit of %llu "
			      "for one session; use a larger --block-size or fewer files", s->ctl->peer,
			      (unsigned long long)s->blocks_total, s->block_size, (unsigned long long)SESSION_MAX_BLOCKS);
	for (size_t i = from; i < s->nfiles; i++) {
		struct xfile *f = &s->files[i];
		if (f->type != JB_ENTRY_FILE)
			continue;
		f->nblocks = (f->size + s->block_size - 1) / s->block_size;
		f->digests = calloc(f->nblocks ? f->nblocks : 1, JB_DIGEST_LEN);
		f->have = calloc(f->nblocks / 8 + 1, 1);
		if (!f->digests || !f->have)
			return jb_err(err, ENOMEM, "out of memory for %llu blocks", (unsigned long long)f->nblocks);
		atomic_store(&f->remaining, f->nblocks);
	}
	return 0;
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
		.files_total = (uint32_t)s->nfiles,
		.files_done = s->files_done,
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
	r->files = (uint32_t)s->nfiles;
	r->bytes_total = s->bytes_total;
	r->bytes_sent = atomic_load(&s->bytes_moved);
	r->blocks_resent = s->sender ? s->resend_total : atomic_load(&s->blocks_bad);
	r->seconds = jb_now() - s->t0;
	r->streams = s->nstreams;
	r->block_size = s->block_size;
	r->file = calloc(s->nfiles ? s->nfiles : 1, sizeof *r->file);
	if (!r->file)
		return;
	for (size_t i = 0; i < s->nfiles; i++) {
		struct xfile *f = &s->files[i];
		struct jb_file_result *o = &r->file[i];
		o->path = strdup(f->path);
		o->size = f->size;
		o->dir = f->type == JB_ENTRY_DIR;
		o->ok = f->ok;
		if (f->ok)
			r->files_ok++;
		if (f->type == JB_ENTRY_FILE && f->have_root)
			digest_format(f->root, o->digest);
		if (f->error)
			o->error = strdup(f->error);
	}
}

void jb_xfer_result_free(struct jb_xfer_result *r)
{
	if (!r || !r->file)
		return;
	for (uint32_t i = 0; i < r->files; i++) {
		free(r->file[i].path);
		free(r->file[i].error);
	}
	free(r->file);
	r->file = NULL;
}

void jb_xfer_opts_init(struct jb_xfer_opts *o)
{
	memset(o, 0, sizeof *o);
	o->streams = 4;
	o->block_size = JB_WIRE_DEFAULT_BLOCK;
	o->connect_timeout = 30;
}
