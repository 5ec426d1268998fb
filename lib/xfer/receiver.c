/* The receiving end: accepts the manifest, answers with the blocks it still
 * needs (resume), verifies every block as it lands and commits each file by
 * rename only after its whole-file digest matches. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "xfer-internal.h"

#define PART_SUFFIX ".jumbo-part"

static void fatal(struct session *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fatal(struct session *s, int code, const char *fmt, ...)
{
	struct event e = {.kind = EV_FATAL, .code = code < 0 ? -code : code};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.text, sizeof e.text, fmt, ap);
	va_end(ap);
	if (!atomic_exchange(&s->fatal, true))
		session_post(s, &e);
}

static const char *base_name(const char *p)
{
	const char *sl = strrchr(p, '/');
	return sl ? sl + 1 : p;
}

/* The directory a file lands in, created as needed, resolved beneath.  The
 * last one resolved is kept: files of a tree arrive directory by directory,
 * and with small files resolving it again (a mkdirat and an openat2 per
 * component, twice per file) was a large part of the receiver's work. */
static int parent_dir(struct session *s, const char *path)
{
	const char *sl = strrchr(path, '/');
	if (!sl)
	{
		int fd = fcntl(s->destdir, F_DUPFD_CLOEXEC, 0);
		return fd < 0 ? -errno : fd;
	}
	size_t n = (size_t)(sl - path);
	pthread_mutex_lock(&s->pdir_lock);
	if (s->pdir && s->pdir_len == n && !memcmp(s->pdir, path, n)) {
		int fd = fcntl(s->pdir_fd, F_DUPFD_CLOEXEC, 0);
		pthread_mutex_unlock(&s->pdir_lock);
		return fd < 0 ? -errno : fd;
	}
	pthread_mutex_unlock(&s->pdir_lock);
	char *parent = strndup(path, n);
	if (!parent)
		return -ENOMEM;
	int fd = jb_mkdirs_beneath(s->destdir, parent, 0755);
	int keep = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
	if (keep < 0) {
		free(parent);
		return fd;
	}
	pthread_mutex_lock(&s->pdir_lock);
	free(s->pdir);
	if (s->pdir_fd >= 0)
		close(s->pdir_fd);
	s->pdir = parent;
	s->pdir_len = n;
	s->pdir_fd = keep;
	pthread_mutex_unlock(&s->pdir_lock);
	return fd;
}

static bool have(const struct xfile *f, uint64_t b) { return f->have[b / 8] & (1u << (b % 8)); }

static int open_partial(struct session *s, struct xfile *f)
{
	if (f->fd >= 0)
		return 0;
	if (f->dirfd < 0) {
		int d = parent_dir(s, f->path);
		if (d < 0)
			return d;
		f->dirfd = d;
	}
	int fd = jb_open_beneath(f->dirfd, f->partial, O_RDWR | O_CREAT, 0600);
	if (fd < 0)
		return fd;
	f->fd = fd;
	return 0;
}

/* Streams writing the same file take turns: the inode lock they would
 * otherwise meet in the kernel spins (rwsem_spin_on_owner was 15-20% of the
 * receiver's CPU at -P 4 on 2 cores), and concurrent page allocation for one
 * file gains nothing.  Measured: 1.16 -> 0.80 CPU-seconds per GiB received. */
static int write_piece(struct session *s, struct xfile *f, uint32_t fi, const uint8_t *p, size_t n, off_t off)
{
	pthread_mutex_t *m = &s->wlocks[fi % LOCK_STRIPES];
	int r = 0;
	pthread_mutex_lock(m);
	for (size_t w = 0; w < n;) {
		ssize_t k = pwrite(f->fd, p + w, n - w, off + (off_t)w);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = k < 0 ? -errno : -ENOSPC;
			break;
		}
		w += (size_t)k;
	}
	pthread_mutex_unlock(m);
	return r;
}

static void unclaim(struct session *s, struct xfile *f, uint32_t fi, uint64_t b)
{
	pthread_mutex_t *m = &s->stripes[fi % LOCK_STRIPES];
	pthread_mutex_lock(m);
	f->have[b / 8] &= (uint8_t)~(1u << (b % 8));
	pthread_mutex_unlock(m);
}

/* A block is claimed when its header arrives (its bit in f->have is set), so
 * a duplicate in flight on another stream is read and dropped; its payload is
 * received, hashed and written a chunk at a time, so each chunk is hashed and
 * written while it is still in cache.  Bytes of a block that then fails its
 * digest are in the partial file but not journalled: the block is claimed
 * back and asked for again, and its resend overwrites them. */
static void *recv_worker(void *arg)
{
	struct stream *st = arg;
	struct session *s = st->s;
	uint8_t *buf = aligned_alloc(4096, STREAM_CHUNK);
	if (!buf) {
		fatal(s, ENOMEM, "out of memory");
		return NULL;
	}
	if (st->join_pending) { /* the JOINED comes first, then the blocks */
		int r = stream_joined(st);
		if (r < 0) {
			if (!atomic_load(&s->fatal))
				fatal(s, r == -EACCES ? EACCES : -r, "%s: data stream %d %s", s->ctl->peer, st->index,
				      r == -EACCES ? "was refused" : "was lost before it joined");
			goto out;
		}
	}
	for (;;) {
		uint8_t hdr[JB_BLOCK_HDR_LEN];
		struct jb_block_hdr h;
		int r = stream_read(st, hdr, sizeof hdr);
		if (r < 0) {
			if (r != -EPIPE && !atomic_load(&s->fatal) && s->files_done < s->nfiles)
				fatal(s, r, "%s: data stream %d: %s", s->ctl->peer, st->index, strerror(-r));
			break;
		}
		if (jb_wire_block_decode(hdr, &h) < 0) {
			fatal(s, EBADMSG, "%s: data stream %d: malformed block header", s->ctl->peer, st->index);
			break;
		}
		/* Only files whose NEEDs have gone out (acquire: their plan is
		 * visible to this thread). */
		if (h.file >= atomic_load_explicit(&s->ready, memory_order_acquire) ||
		    s->files[h.file].type != JB_ENTRY_FILE ||
		    h.block >= s->files[h.file].nblocks ||
		    h.len != block_len(&s->files[h.file], h.block, s->block_size)) {
			fatal(s, EBADMSG, "%s: data stream %d: block outside the manifest (file %u, block %llu, %u bytes)",
			      s->ctl->peer, st->index, h.file, (unsigned long long)h.block, h.len);
			break;
		}
		struct xfile *f = &s->files[h.file];
		pthread_mutex_t *m = &s->stripes[h.file % LOCK_STRIPES];
		pthread_mutex_lock(m);
		bool claimed = !have(f, h.block);
		if (claimed) {
			f->have[h.block / 8] |= (uint8_t)(1u << (h.block % 8));
			r = open_partial(s, f);
		}
		pthread_mutex_unlock(m);
		if (claimed && r < 0) {
			fatal(s, r, "%s: %s", f->path, r == -EXDEV || r == -ELOOP ? "path escapes the data root" : strerror(-r));
			break;
		}
		XXH3_state_t hs;
		digest_start(&hs);
		off_t off = (off_t)(h.block * s->block_size);
		for (size_t done = 0; done < h.len;) {
			size_t n = JB_MIN((size_t)STREAM_CHUNK, h.len - done);
			if ((r = stream_read(st, buf, n)) < 0) {
				if (!atomic_load(&s->fatal))
					fatal(s, r, "%s: data stream %d: connection lost inside a block", s->ctl->peer,
					      st->index);
				goto out;
			}
			digest_update(&hs, buf, n);
			if (claimed && (r = write_piece(s, f, h.file, buf, n, off + (off_t)done)) < 0) {
				fatal(s, r, "%s: %s", f->path, r == -ENOSPC ? "no space left on device" : strerror(-r));
				goto out;
			}
			done += n;
		}
		uint8_t d[JB_DIGEST_LEN];
		digest_end(&hs, d);
		if (memcmp(d, h.digest, JB_DIGEST_LEN)) {
			if (claimed)
				unclaim(s, f, h.file, h.block);
			atomic_fetch_add(&s->blocks_bad, 1);
			jb_log(JB_LOG_WARN, "%s: %s: digest mismatch in block %llu; asking for it again", s->ctl->peer,
			       f->path, (unsigned long long)h.block);
			struct event e = {.kind = EV_BLOCK_BAD, .file = h.file, .block = h.block};
			session_post(s, &e);
			continue;
		}
		if (!claimed)
			continue; /* a duplicate of a block we have or are receiving */
		/* A block is journalled so that a resume need not fetch it
		 * again; a file of one block is committed (and journalled as
		 * such) as soon as it is here, so its block record would only
		 * cost a transaction per small file. */
		if (f->nblocks > 1 && journal_add(s->journal, f->jid, h.block, d) < 0) {
			fatal(s, EIO, "%s: cannot record block %llu in the journal", f->path, (unsigned long long)h.block);
			break;
		}
		pthread_mutex_lock(m);
		memcpy(f->digests + h.block * JB_DIGEST_LEN, d, JB_DIGEST_LEN);
		pthread_mutex_unlock(m);
		atomic_fetch_add(&s->bytes_moved, h.len);
		if (atomic_fetch_sub(&f->remaining, 1) == 1) {
			struct event e = {.kind = EV_FILE_VERIFIED, .file = h.file};
			session_post(s, &e);
		}
	}
out:
	free(buf);
	return NULL;
}

static void file_done(struct session *s, uint32_t i, int status, const char *text)
{
	struct xfile *f = &s->files[i];
	f->done = true;
	f->ok = status == 0;
	if (text && !f->error)
		f->error = strdup(text);
	s->files_done++;
	struct jb_buf *b = &s->ctl->out;
	size_t m = jb_frame_begin(b, JB_MSG_FILE_DONE);
	jb_buf_u32(b, i);
	jb_buf_u16(b, (uint16_t)status);
	jb_buf_put(b, f->root, JB_DIGEST_LEN);
	jb_buf_str(b, text ? text : "");
	jb_frame_end(b, m);
	if (f->fd >= 0)
		close(f->fd);
	if (f->dirfd >= 0)
		close(f->dirfd);
	f->fd = f->dirfd = -1;
}

static void journal_key(const struct session *s, const struct xfile *f, char *key, size_t len)
{
	snprintf(key, len, "%s%s%s", s->keybase ? s->keybase : "", s->keybase && *s->keybase ? "/" : "", f->path);
}

static void refetch(struct session *s, uint32_t i, const uint8_t sender_root[JB_DIGEST_LEN])
{
	struct xfile *f = &s->files[i];
	char key[2 * JB_PATH_MAX + 2];
	struct jb_error err = {0};
	struct journal_rec rec;
	jb_log(JB_LOG_INFO, "%s: same size and time as the committed copy but another digest; fetching it whole",
	       f->path);
	journal_drop(s->journal, f->jid);
	journal_key(s, f, key, sizeof key);
	memset(f->have, 0, f->nblocks / 8 + 1);
	memset(f->digests, 0, f->nblocks * JB_DIGEST_LEN);
	if (journal_begin(s->journal, key, f->size, f->mtime_ns, s->block_size, s->origin, f->nblocks, f->digests,
			  f->have, &rec, &err) < 0) {
		file_done(s, i, EIO, err.msg);
		return;
	}
	f->jid = rec.id;
	f->skip_write = false;
	f->refetched = true;
	f->verified = false;
	f->have_root = true; /* the sender's digest, waiting for the blocks */
	memcpy(f->root, sender_root, JB_DIGEST_LEN);
	atomic_store(&f->remaining, f->nblocks);
	s->bytes_planned += f->size;
	struct jb_buf *b = &s->ctl->out;
	size_t m = jb_frame_begin(b, JB_MSG_NEED);
	jb_buf_u32(b, i);
	jb_buf_u32(b, 1);
	jb_buf_u64(b, 0);
	jb_buf_u64(b, f->nblocks);
	jb_frame_end(b, m);
}

static void finalize(struct session *s, uint32_t i, const uint8_t sender_root[JB_DIGEST_LEN])
{
	struct xfile *f = &s->files[i];
	uint8_t root[JB_DIGEST_LEN];
	char msg[600];
	if (f->skip_write)
		memcpy(root, f->root, JB_DIGEST_LEN); /* recorded when it was committed */
	else
		digest_root(f->digests, f->nblocks, root);
	memcpy(f->root, root, JB_DIGEST_LEN); /* FILE_DONE confirms what we computed, not what we were told */
	f->have_root = true;
	if (memcmp(root, sender_root, JB_DIGEST_LEN) && f->skip_write && !f->refetched && f->nblocks) {
		/* Same name, size and mtime as a file committed before, but other
		 * contents (a quick check cannot tell them apart; rsync would skip
		 * it): ask for every block after all. */
		refetch(s, i, sender_root);
		return;
	}
	if (memcmp(root, sender_root, JB_DIGEST_LEN)) {
		snprintf(msg, sizeof msg, "%s: whole-file digest mismatch (the source changed, or the destination "
			 "did); its record is dropped, run the transfer again", f->path);
		jb_log(JB_LOG_ERROR, "%s", msg);
		journal_drop(s->journal, f->jid);
		if (f->dirfd >= 0 && !f->skip_write)
			unlinkat(f->dirfd, f->partial, 0);
		file_done(s, i, EBADMSG, msg);
		return;
	}
	if (f->skip_write) {
		file_done(s, i, 0, NULL);
		return;
	}
	char d[40];
	digest_format(root, d);
	bool told = false;
	int r = open_partial(s, f);
	if (r < 0)
		goto fail;
	struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT},
				 {.tv_sec = f->mtime_ns / 1000000000, .tv_nsec = f->mtime_ns % 1000000000}};
	/* Permission bits only: a peer never makes set-user-ID, set-group-ID or sticky files. */
	if (ftruncate(f->fd, (off_t)f->size) < 0 || fdatasync(f->fd) < 0 || fchmod(f->fd, f->mode & 0777) < 0 ||
	    futimens(f->fd, ts) < 0) {
		r = -errno;
		goto fail;
	}
	if (s->on_commit) {
		s->on_commit(s->on_commit_ud, JB_COMMIT_BEFORE, f->dirfd, base_name(f->path), f->size, f->mtime_ns, d, s->origin,
			     s->session_id);
		told = true;
	}
	if (renameat(f->dirfd, f->partial, f->dirfd, base_name(f->path)) < 0) {
		r = -errno;
		goto fail;
	}
	journal_commit(s->journal, f->jid, root);
	if (told)
		s->on_commit(s->on_commit_ud, JB_COMMIT_AFTER, f->dirfd, base_name(f->path), f->size, f->mtime_ns, d, s->origin,
			     s->session_id);
	file_done(s, i, 0, NULL);
	return;
fail:
	if (told)
		s->on_commit(s->on_commit_ud, JB_COMMIT_FAILED, f->dirfd, base_name(f->path), f->size, f->mtime_ns, d, s->origin,
			     s->session_id);
	snprintf(msg, sizeof msg, "%s: cannot commit: %s", f->path, strerror(-r));
	jb_log(JB_LOG_ERROR, "%s", msg);
	file_done(s, i, -r, msg);
}

/* Decide what is still needed of file i; queue its NEED. */
static int plan_file(struct session *s, uint32_t i, struct jb_error *err)
{
	struct xfile *f = &s->files[i];
	char key[2 * JB_PATH_MAX + 2];
	journal_key(s, f, key, sizeof key);
	if (asprintf(&f->partial, ".%s%s", base_name(f->path), PART_SUFFIX) < 0)
		return -ENOMEM;
	if (strlen(f->partial) > JB_NAME_MAX)
		return jb_err(err, ENAMETOOLONG, "%s: name too long", f->path);
	struct journal_rec rec;
	int r = journal_begin(s->journal, key, f->size, f->mtime_ns, s->block_size, s->origin, f->nblocks,
			      f->digests, f->have, &rec, err);
	if (r < 0)
		return r;
	f->jid = rec.id;
	int d = parent_dir(s, f->path);
	if (d < 0)
		return jb_err(err, -d, "%s: %s", f->path,
			      d == -EXDEV || d == -ELOOP ? "path escapes the data root" : strerror(-d));
	f->dirfd = d;
	struct stat st;
	if (rec.committed) {
		/* Committed before: if the file is still as we left it, only the
		 * digest comparison remains to be done. */
		if (fstatat(d, base_name(f->path), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
		    (uint64_t)st.st_size == f->size &&
		    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec == f->mtime_ns) {
			f->skip_write = true;
			memcpy(f->root, rec.root, JB_DIGEST_LEN);
			memset(f->have, 0xff, f->nblocks / 8 + 1);
			atomic_store(&f->remaining, 0);
			goto need;
		}
		journal_drop(s->journal, f->jid);
		if ((r = journal_begin(s->journal, key, f->size, f->mtime_ns, s->block_size, s->origin, f->nblocks,
				       f->digests, f->have, &rec, err)) < 0)
			return r;
		f->jid = rec.id;
	}
	uint64_t had = 0;
	for (uint64_t b = 0; b < f->nblocks; b++)
		had += have(f, b);
	if (had) {
		/* Resume: re-check what the journal claims against the partial file.
		 * That reads the file; other sessions may use the journal meanwhile. */
		journal_tx(s->journal, false);
		int fd = jb_open_beneath(d, f->partial, O_RDONLY, 0);
		uint8_t *buf = fd >= 0 ? malloc(STREAM_CHUNK) : NULL;
		for (uint64_t b = 0; b < f->nblocks; b++) {
			if (!have(f, b))
				continue;
			uint64_t len = block_len(f, b, s->block_size);
			uint8_t dg[JB_DIGEST_LEN];
			bool good = buf && digest_file_block(fd, buf, (off_t)(b * s->block_size), len, dg) == 0 &&
				    !memcmp(dg, f->digests + b * JB_DIGEST_LEN, JB_DIGEST_LEN);
			if (!good) {
				f->have[b / 8] &= (uint8_t)~(1u << (b % 8));
				had--;
			}
		}
		free(buf);
		if (fd >= 0)
			close(fd);
		journal_tx(s->journal, true);
		jb_log(JB_LOG_INFO, "%s: resuming with %llu of %llu blocks already verified", f->path,
		       (unsigned long long)had, (unsigned long long)f->nblocks);
	} else {
		unlinkat(d, f->partial, 0); /* a stale partial with no journal behind it */
	}
	atomic_store(&f->remaining, f->nblocks - had);
need:;
	struct jb_buf *b = &s->ctl->out;
	size_t m = jb_frame_begin(b, JB_MSG_NEED);
	jb_buf_u32(b, i);
	size_t cpos = b->len;
	jb_buf_u32(b, 0);
	uint32_t nr = 0;
	for (uint64_t k = 0; k < f->nblocks;) {
		if (have(f, k)) {
			k++;
			continue;
		}
		uint64_t first = k;
		while (k < f->nblocks && !have(f, k))
			k++;
		jb_buf_u64(b, first);
		jb_buf_u64(b, k - first);
		s->bytes_planned += JB_MIN(k * s->block_size, f->size) - first * s->block_size;
		nr++;
		if (b->len - m > JB_WIRE_MAX_FRAME - 64) {
			/* too fragmented for one frame: split into several NEEDs */
			b->p[cpos] = (uint8_t)(nr >> 24), b->p[cpos + 1] = (uint8_t)(nr >> 16);
			b->p[cpos + 2] = (uint8_t)(nr >> 8), b->p[cpos + 3] = (uint8_t)nr;
			jb_frame_end(b, m);
			m = jb_frame_begin(b, JB_MSG_NEED);
			jb_buf_u32(b, i);
			cpos = b->len;
			jb_buf_u32(b, 0);
			nr = 0;
		}
	}
	if (!b->oom) {
		b->p[cpos] = (uint8_t)(nr >> 24), b->p[cpos + 1] = (uint8_t)(nr >> 16);
		b->p[cpos + 2] = (uint8_t)(nr >> 8), b->p[cpos + 3] = (uint8_t)nr;
	}
	jb_frame_end(b, m);
	if (atomic_load(&f->remaining) == 0)
		f->verified = true;
	/* keep descriptors only while a file is in flight */
	close(f->dirfd);
	f->dirfd = -1;
	if (b->len > (512u << 10)) {
		/* files [0, i] are planned: their blocks may come once this is out */
		atomic_store_explicit(&s->ready, (size_t)i + 1, memory_order_release);
		return ctl_send(s->ctl, err);
	}
	return 0;
}

/* Plan files [from, s->nfiles): create the directories, queue a NEED for
 * every regular file. */
static int plan_files(struct session *s, size_t from, struct jb_error *err)
{
	int r = 0;
	journal_tx(s->journal, true);
	for (size_t i = from; i < s->nfiles && r == 0; i++) {
		struct xfile *f = &s->files[i];
		if (f->type == JB_ENTRY_DIR) {
			int d = jb_mkdirs_beneath(s->destdir, f->path, (f->mode & 0777) | 0700);
			if (d < 0) {
				r = jb_err(err, -d, "%s: %s", f->path,
					   d == -EXDEV || d == -ELOOP ? "path escapes the data root" : strerror(-d));
				break;
			}
			close(d);
			continue;
		}
		r = plan_file(s, (uint32_t)i, err);
		if (i % 1024 == 1023) { /* let other sessions' writes in now and then */
			journal_tx(s->journal, false);
			journal_tx(s->journal, true);
		}
	}
	journal_tx(s->journal, false);
	return r;
}

/* A stream thread failed while the manifest was still being planned. */
static int worker_failure(struct session *s, struct jb_error *err)
{
	struct event *ev;
	size_t n = session_take_events(s, &ev);
	int r = jb_err(err, EIO, "a data stream failed");
	for (size_t i = 0; i < n; i++)
		if (ev[i].kind == EV_FATAL) {
			r = jb_err(err, ev[i].code, "%s", ev[i].text);
			break;
		}
	free(ev);
	return r;
}

static int start_workers(struct session *s, struct jb_error *err)
{
	if (s->workers)
		return 0;
	s->workers = true;
	s->t0 = jb_now();
	for (int i = 0; i < s->nstreams; i++) {
		struct stream *st = &s->streams[i];
		st->s = s;
		if (pthread_create(&st->thread, NULL, recv_worker, st) != 0)
			return jb_err(err, EAGAIN, "cannot start stream thread");
		st->started = true;
	}
	return 0;
}

/* Read the manifest and answer it: a NEED for every regular file, NEED_END,
 * and FILE_DONE for the directories.  Needs no data stream.  Each FILES
 * frame is answered as soon as it has arrived, so that the sender starts on
 * the first files while the rest of a long manifest is still in flight (at
 * 150 ms, 10,000 files take five round trips to arrive). */
int receiver_plan(struct session *s, struct jb_error *err)
{
	int r;
	if (s->planned)
		return 0;
	s->planned = true;
	double t0 = jb_now();
	for (;;) {
		/* Blocks follow the first NEEDs by one round trip: read them as
		 * they come, not once the whole manifest is planned, or they fill
		 * the socket buffers and hold the streams' windows small. */
		if (!s->workers && s->streams_ready && s->streams_ready(s->streams_ready_ud) &&
		    (r = start_workers(s, err)) < 0)
			return r;
		/* wait for the next frame, a quarter second at a time: a stream
		 * thread that failed meanwhile ends the session now */
		for (int waited = 0; (r = ctl_recv(s->ctl, 250, -1, err)) == 0; waited += 250) {
			if (atomic_load(&s->fatal))
				return worker_failure(s, err);
			if (waited >= 60000)
				return jb_err(err, ETIMEDOUT, "%s: timed out waiting for the file list", s->ctl->peer);
		}
		if (r < 0)
			return r;
		if (atomic_load(&s->fatal))
			return worker_failure(s, err);
		struct jb_msg *m = &s->ctl->msg;
		if (m->type == JB_MSG_FILES_END) {
			if ((r = manifest_end(s, m, err)) < 0)
				return r;
			break;
		}
		if (m->type != JB_MSG_FILES)
			return jb_err(err, EBADMSG, "%s: unexpected message %u in the file list", s->ctl->peer, m->type);
		size_t from = s->nfiles;
		if ((r = manifest_take(s, m, err)) < 0 || (r = session_alloc_blocks(s, from, err)) < 0 ||
		    (r = plan_files(s, from, err)) < 0)
			return r;
		atomic_store_explicit(&s->ready, s->nfiles, memory_order_release);
		if ((r = ctl_send(s->ctl, err)) < 0)
			return r;
	}
	jb_log(JB_LOG_DEBUG, "%s: manifest of %zu entries planned in %.0f ms", s->ctl->peer, s->nfiles,
	       (jb_now() - t0) * 1e3);
	size_t m = jb_frame_begin(&s->ctl->out, JB_MSG_NEED_END);
	jb_frame_end(&s->ctl->out, m);
	for (size_t i = 0; i < s->nfiles; i++)
		if (s->files[i].type == JB_ENTRY_DIR)
			file_done(s, (uint32_t)i, 0, NULL);
	return ctl_send(s->ctl, err);
}

int receiver_run(struct session *s, struct jb_error *err)
{
	int r;
	/* A receiving client's streams have sent their JOINs: the threads
	 * start before the plan, which answers the manifest frame by frame. */
	if ((r = start_workers(s, err)) < 0)
		goto fail_tell;
	if (!s->planned && (r = receiver_plan(s, err)) < 0) {
		if (s->ctl->peer_error)
			goto fail;
		goto fail_tell;
	}
	bool busy = false;
	for (;;) {
		r = session_wait(s, busy, err);
		if (r < 0)
			goto fail;
		if (r == 1) {
			struct jb_msg *msg = &s->ctl->msg;
			if (msg->type == JB_MSG_BYE) {
				if (s->files_done != s->nfiles) {
					r = jb_err(err, EBADMSG, "%s: sender ended with %zu files unfinished", s->ctl->peer,
						   s->nfiles - s->files_done);
					goto fail;
				}
				break;
			}
			if (msg->type != JB_MSG_FILE_END) {
				r = jb_err(err, EBADMSG, "%s: unexpected message %u during transfer", s->ctl->peer, msg->type);
				goto fail_tell;
			}
			uint32_t fi = msg->u.file_end.file;
			if (fi >= s->nfiles || s->files[fi].type != JB_ENTRY_FILE || s->files[fi].done ||
			    s->files[fi].have_root) {
				r = jb_err(err, EBADMSG, "%s: FILE_END for unknown or finished file %u", s->ctl->peer, fi);
				goto fail_tell;
			}
			struct xfile *f = &s->files[fi];
			if (f->verified)
				finalize(s, fi, msg->u.file_end.digest);
			else {
				/* keep the sender's digest until the last block lands */
				f->have_root = true;
				memcpy(f->root, msg->u.file_end.digest, JB_DIGEST_LEN);
			}
		}
		struct event *ev;
		size_t n = session_take_events(s, &ev);
		busy = n > 0;
		/* the files this batch commits share one journal transaction */
		if (n > 1)
			journal_tx(s->journal, true);
		for (size_t k = 0; k < n; k++) {
			struct event *e = &ev[k];
			if (e->kind == EV_BLOCK_BAD) {
				size_t mk = jb_frame_begin(&s->ctl->out, JB_MSG_RESEND);
				jb_buf_u32(&s->ctl->out, e->file);
				jb_buf_u64(&s->ctl->out, e->block);
				jb_frame_end(&s->ctl->out, mk);
			} else if (e->kind == EV_FILE_VERIFIED) {
				struct xfile *f = &s->files[e->file];
				f->verified = true;
				if (f->have_root) {
					uint8_t sr[JB_DIGEST_LEN];
					memcpy(sr, f->root, JB_DIGEST_LEN);
					f->have_root = false;
					finalize(s, e->file, sr);
				}
			} else if (e->kind == EV_FATAL) {
				r = jb_err(err, e->code, "%s", e->text);
				if (n > 1)
					journal_tx(s->journal, false);
				free(ev);
				if (session_peer_error(s, err)) {
					r = -err->code;
					goto fail;
				}
				goto fail_tell;
			}
		}
		if (n > 1)
			journal_tx(s->journal, false);
		free(ev);
		if ((r = ctl_send(s->ctl, err)) < 0)
			goto fail;
		session_tick(s, false);
		/* Every file is committed here and its FILE_DONE sent: a client
		 * need not wait a round trip for the BYE that confirms it. */
		if (s->no_bye && s->files_done == s->nfiles)
			break;
	}
	if ((r = ctl_flush(s->ctl, err)) < 0) /* the last FILE_DONEs */
		goto fail;
	session_tick(s, true);
	jb_log(JB_LOG_DEBUG, "%s: %zu entries committed, %.0f ms after the streams started", s->ctl->peer, s->nfiles,
	       (jb_now() - s->t0) * 1e3);
	session_close_streams(s);
	return 0;
fail_tell:
	ctl_send_error(s->ctl, err ? err->code : EIO, err ? err->msg : "transfer failed");
fail:
	atomic_store(&s->fatal, true);
	session_close_streams(s);
	return r;
}
