/* The receiving end's data streams: one thread per stream reads each
 * block's header and payload, writes and hashes it a chunk at a time,
 * and posts its verdict to the control loop (receiver.c). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "xfer-internal.h"

/* A stream thread could not write a file: the file fails alone, unless the
 * destination can take nothing more. */
static void fail_file(struct session *s, struct xfile *f, int r)
{
	if (error_ends_session(r)) {
		session_fatal(s, r, "%s: %s", f->path, session_write_error(r));
		return;
	}
	if (!atomic_exchange(&f->closed, true))
		session_post_file(s, EV_FILE_FAILED, f->index, r, "%s: %s", f->path, session_write_error(r));
}

/* Streams writing the same file take turns: the inode lock they would
 * otherwise meet in the kernel spins (rwsem_spin_on_owner was 15-20% of the
 * receiver's CPU at -P 4 on 2 cores), and concurrent page allocation for one
 * file gains nothing.  Measured: 1.16 -> 0.80 CPU-seconds per GiB received. */
static int write_piece(struct session *s, int fd, uint32_t fi, const uint8_t *p, size_t n, off_t off)
{
	pthread_mutex_t *m = &s->wlocks[fi % LOCK_STRIPES];
	int r = 0;
	pthread_mutex_lock(m);
	for (size_t w = 0; w < n;) {
		ssize_t k = pwrite(fd, p + w, n - w, off + (off_t)w);
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

/* The last block of a file is in: its size, mode and mtime, and, for a file
 * of several blocks, its data made durable here (a file of one block is
 * made durable with the others of its group by the committer). */
static int prepare(struct session *s, struct xfile *f, int fd)
{
	struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT},
				 {.tv_sec = f->mtime_ns / 1000000000, .tv_nsec = f->mtime_ns % 1000000000}};
	/* Permission bits only, less the site's umask: a peer never makes
	 * set-user-ID, set-group-ID or sticky files. */
	if (ftruncate(fd, (off_t)f->size) < 0 || fchmod(fd, file_mode(s, f)) < 0 || futimens(fd, ts) < 0)
		return -errno;
	if (f->nblocks > 1) {
		if (fdatasync(fd) < 0)
			return -errno;
		f->synced = true;
	}
	f->prepared = true;
	return 0;
}

/* A block nobody wants (its file was finished or refused): read past it. */
static int skip_payload(struct stream *st, uint8_t *buf, uint32_t len)
{
	for (uint32_t done = 0; done < len;) {
		size_t n = JB_MIN((size_t)STREAM_CHUNK, (size_t)(len - done));
		int r = stream_read(st, buf, n);
		if (r < 0)
			return r;
		done += (uint32_t)n;
	}
	return 0;
}

/* A block is claimed when its header arrives (its bit in f->have is set), so
 * a duplicate in flight on another stream is read and dropped; its payload is
 * received, hashed and written a chunk at a time, so each chunk is hashed and
 * written while it is still in cache.  Bytes of a block that then fails its
 * digest are in the partial file but not journalled: the block is claimed
 * back and asked for again, and its resend overwrites them.
 * (Longer than the house's 120 lines on purpose: one block's way from the
 * socket to the journal, read top to bottom, with every exit releasing what
 * it holds in the order it took it; split up, the releases would be spread
 * over helpers that each hold half of the state.) */
void *receiver_stream_main(void *arg)
{
	struct stream *st = arg;
	struct session *s = st->s;
	uint8_t *buf = aligned_alloc(4096, STREAM_CHUNK);
	/* a relayed push's destination hashes each block with SHA-256 too,
	 * as it comes, for the origin's seal */
	struct jb_strong sh = {0};
	uint8_t sd[JB_STRONG_LEN];
	if (!buf) {
		session_fatal(s, ENOMEM, "out of memory");
		return NULL;
	}
	if (st->join_pending) { /* the JOINED comes first, then the blocks */
		int r = stream_joined(st);
		if (r < 0) {
			if (!atomic_load(&s->fatal))
				session_fatal(s, r == -EACCES ? EACCES : -r, "%s: data stream %d %s", s->ctl->peer, st->index,
				      r == -EACCES ? "was refused" : "was lost before it joined");
			goto out;
		}
	}
	for (;;) {
		uint8_t hdr[JB_BLOCK_HDR_LEN];
		struct jb_block_hdr h;
		int r = stream_read(st, hdr, sizeof hdr);
		if (r < 0) {
			if (r != -EPIPE && !atomic_load(&s->fatal) && !atomic_load(&s->finished))
				session_fatal(s, r, "%s: data stream %d: %s", s->ctl->peer, st->index, strerror(-r));
			break;
		}
		if (jb_wire_block_decode(hdr, &h) < 0) {
			session_fatal(s, EBADMSG, "%s: data stream %d: malformed block header", s->ctl->peer, st->index);
			break;
		}
		/* Only files whose NEEDs have gone out (acquire: their plan is
		 * visible to this thread). */
		if (h.file >= atomic_load_explicit(&s->ready, memory_order_acquire)) {
			session_fatal(s, EBADMSG, "%s: data stream %d: block outside the manifest (file %u, block %llu, %u bytes)",
			      s->ctl->peer, st->index, h.file, (unsigned long long)h.block, h.len);
			break;
		}
		struct xfile *f = slot(s, h.file);
		pthread_mutex_t *m = &s->stripes[h.file % LOCK_STRIPES];
		pthread_mutex_lock(m);
		if (!f->live || f->index != h.file || f->type != JB_ENTRY_FILE || !f->blocks ||
		    atomic_load(&f->closed)) {
			/* finished, refused or failed meanwhile: nothing to keep */
			pthread_mutex_unlock(m);
			if ((r = skip_payload(st, buf, h.len)) < 0) {
				if (!atomic_load(&s->fatal))
					session_fatal(s, r, "%s: data stream %d: connection lost inside a block", s->ctl->peer,
					      st->index);
				goto out;
			}
			continue;
		}
		if (h.block >= f->nblocks || h.len != block_len(f, h.block, s->block_size)) {
			pthread_mutex_unlock(m);
			session_fatal(s, EBADMSG, "%s: data stream %d: block outside the manifest (file %u, block %llu, %u bytes)",
			      s->ctl->peer, st->index, h.file, (unsigned long long)h.block, h.len);
			break;
		}
		bool claimed = !have_block(f, h.block);
		if (claimed) {
			f->have[h.block / 8] |= (uint8_t)(1u << (h.block % 8));
			atomic_fetch_add(&f->users, 1);
		}
		pthread_mutex_unlock(m);
		/* a relay with a quota: room in staging first, else this stream
		 * stops reading (and TCP stops the sender) until the next hop
		 * holds enough */
		if (claimed && s->feed && !feed_reserve(s, h.file, h.block, h.len)) {
			atomic_fetch_sub(&f->users, 1);
			break;
		}
		uint64_t reserved = claimed && s->feed ? h.len : 0;
		int fd = -1;
		if (claimed && (fd = files_get(s, f)) < 0) {
			fail_file(s, f, fd);
			atomic_fetch_sub(&f->users, 1);
			claimed = false; /* read past it */
		}
		XXH3_state_t hs;
		digest_start(&hs);
		bool strong = s->seal_check && claimed && jb_strong_begin(&sh) == 0;
		off_t off = (off_t)(h.block * s->block_size);
		for (size_t done = 0; done < h.len;) {
			size_t n = JB_MIN((size_t)STREAM_CHUNK, h.len - done);
			if ((r = stream_read(st, buf, n)) < 0) {
				if (!atomic_load(&s->fatal))
					session_fatal(s, r, "%s: data stream %d: connection lost inside a block", s->ctl->peer,
					      st->index);
				if (claimed) {
					files_put(s, f);
					atomic_fetch_sub(&f->users, 1);
				}
				if (reserved)
					feed_unreserve(s->feed, reserved);
				goto out;
			}
			digest_update(&hs, buf, n);
			if (strong)
				jb_strong_update(&sh, buf, n);
			if (claimed && (r = write_piece(s, fd, h.file, buf, n, off + (off_t)done)) < 0) {
				fail_file(s, f, r);
				files_put(s, f);
				atomic_fetch_sub(&f->users, 1);
				claimed = false; /* read the rest past it */
			}
			done += n;
		}
		uint8_t d[JB_DIGEST_LEN];
		digest_end(&hs, d);
		if (strong)
			jb_strong_end(&sh, sd);
		if (s->seal_check && claimed && !strong) {
			fail_file(s, f, -ENOMEM); /* no SHA-256 context: the seal could not be checked */
			files_put(s, f);
			atomic_fetch_sub(&f->users, 1);
			claimed = false;
		}
		if (reserved && (!claimed || memcmp(d, h.digest, JB_DIGEST_LEN))) {
			feed_unreserve(s->feed, reserved); /* not staged after all */
			reserved = 0;
		}
		if (memcmp(d, h.digest, JB_DIGEST_LEN)) {
			if (claimed) {
				pthread_mutex_lock(m);
				f->have[h.block / 8] &= (uint8_t)~(1u << (h.block % 8));
				pthread_mutex_unlock(m);
				files_put(s, f);
				atomic_fetch_sub(&f->users, 1);
			}
			atomic_fetch_add(&s->blocks_bad, 1);
			jb_log(JB_LOG_WARN, "%s: %s: digest mismatch in block %llu; asking for it again", s->ctl->peer,
			       claimed ? f->path : "?", (unsigned long long)h.block);
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
			if (reserved)
				feed_unreserve(s->feed, reserved);
			files_put(s, f);
			atomic_fetch_sub(&f->users, 1);
			session_fatal(s, EIO, "%s: cannot record block %llu in the journal", f->path, (unsigned long long)h.block);
			break;
		}
		pthread_mutex_lock(m);
		memcpy(f->digests + h.block * JB_DIGEST_LEN, d, JB_DIGEST_LEN);
		if (strong)
			memcpy(f->strong + h.block * JB_STRONG_LEN, sd, JB_STRONG_LEN);
		pthread_mutex_unlock(m);
		atomic_fetch_add(&s->bytes_moved, h.len);
		if (s->routed) {
			/* a relay forwards only what it holds durably, and every hop
			 * but the origin tells the one before what it holds (HELD):
			 * a relay frees its staged copy then */
			if (fdatasync(fd) < 0) {
				if (reserved)
					feed_unreserve(s->feed, reserved);
				fail_file(s, f, -errno);
			} else {
				if (s->feed)
					feed_block(s->feed, h.file, h.block, d);
				struct event e = {.kind = EV_BLOCK_HELD, .file = h.file, .block = h.block};
				session_post(s, &e);
			}
		}
		/* The descriptor is put back before the count goes down: when
		 * the last block's thread closes it, no other thread still
		 * holds it (and its lock, which the committer's open of the
		 * partial file would meet). */
		files_put(s, f);
		if (atomic_fetch_sub(&f->remaining, 1) == 1) {
			int pr = (fd = files_get(s, f)) < 0 ? fd : prepare(s, f, fd);
			if (fd >= 0)
				files_put(s, f);
			files_close(s, f); /* every block is in */
			atomic_fetch_sub(&f->users, 1);
			if (pr)
				session_post_file(s, EV_FILE_VERIFIED, h.file, pr, "%s: %s", f->path, session_write_error(pr));
			else
				session_post_file(s, EV_FILE_VERIFIED, h.file, 0, "%s", "");
		} else {
			atomic_fetch_sub(&f->users, 1);
		}
	}
out:
	jb_strong_free(&sh);
	free(buf);
	return NULL;
}
