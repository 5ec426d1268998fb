/* The receiving end: takes the manifest as it comes, answers each frame
 * with the blocks it still needs (resume), verifies every block as it lands,
 * and has the committer give each file its name once its whole-file digest
 * matches.  Entries are planned, received and committed at the same time,
 * within the window: however large the tree, this end holds at most
 * JB_WIRE_WINDOW entries and s->max_open files. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "xfer-internal.h"

/* ---- the control loop's side ---- */

/* A relay: the next hop has the file, verified; its staged copy (kept
 * under its partial name, see finalize) and its journal record go. */
static void unstage(struct session *s, struct xfile *f)
{
	char key[2 * JB_PATH_MAX + 2], part[JB_NAME_MAX + 1];
	int d = dir_open(s, f->path);
	if (d >= 0) {
		if (partial_name(f, part, sizeof part) && unlinkat(d, part, 0) < 0 && errno != ENOENT)
			jb_log(JB_LOG_WARN, "staging: %s: %s", f->path, strerror(errno));
		close(d);
	}
	journal_key(s, f, key, sizeof key);
	journal_drop_key(s->journal, key);
}

static void send_file_done(struct session *s, struct xfile *f)
{
	if (s->feed && !f->relayed) {
		/* staged (or failed here): the next hop's answer is the
		 * origin's, and the feed keeps the entry until it has it */
		f->held = true;
		return;
	}
	if (s->feed && f->relayed && f->ok && f->type == JB_ENTRY_FILE)
		unstage(s, f);
	struct jb_buf *b = &s->ctl->out;
	size_t m = jb_frame_begin(b, JB_MSG_FILE_DONE);
	jb_buf_u32(b, f->index);
	jb_buf_u16(b, (uint16_t)(f->ok ? 0 : f->errcode ? f->errcode : EIO));
	static const uint8_t zero[JB_DIGEST_LEN];
	jb_buf_put(b, f->type == JB_ENTRY_FILE && f->have_root ? f->root : zero, JB_DIGEST_LEN);
	char t[JB_WIRE_MAX_MSG + 1];
	snprintf(t, sizeof t, "%s", f->ok ? "" : f->error ? f->error : "failed");
	jb_buf_str(b, t);
	jb_frame_end(b, m);
	f->done = true;
	claim_release(f); /* no stream thread is inside the file any more */
	session_file_result(s, f);
	if (s->manifest_done && s->entries_done == s->nfiles)
		atomic_store(&s->finished, true);
}

/* An entry's outcome is known: FILE_DONE now, or, while a stream thread is
 * still inside one of its blocks, as soon as it has left. */
static void finish(struct session *s, struct xfile *f, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void finish(struct session *s, struct xfile *f, int code, const char *fmt, ...)
{
	if (f->done || f->held)
		return;
	f->ok = code == 0;
	if (code) {
		f->errcode = code < 0 ? -code : code;
		free(f->error);
		f->error = NULL;
		va_list ap;
		va_start(ap, fmt);
		if (vasprintf(&f->error, fmt, ap) < 0)
			f->error = NULL;
		va_end(ap);
		atomic_store(&f->closed, true);
		if (f->type == JB_ENTRY_FILE)
			jb_log(JB_LOG_WARN, "%s: %s", s->ctl->peer, f->error ? f->error : f->path);
		if (s->feed)
			feed_fail(s->feed, f->index, f->errcode, f->error);
	}
	if (f->type == JB_ENTRY_FILE)
		files_close(s, f);
	if (atomic_load(&f->users) == 0) {
		send_file_done(s, f);
		return;
	}
	if (s->nclosing == s->capclosing) {
		size_t nc = s->capclosing ? s->capclosing * 2 : 16;
		uint32_t *n = realloc(s->closing, nc * sizeof *n);
		if (!n) {
			send_file_done(s, f); /* better early than never */
			return;
		}
		s->closing = n;
		s->capclosing = nc;
	}
	s->closing[s->nclosing++] = f->index;
}

static void closing_scan(struct session *s)
{
	size_t k = 0;
	for (size_t i = 0; i < s->nclosing; i++) {
		struct xfile *f = slot(s, s->closing[i]);
		if (atomic_load(&f->users) == 0)
			send_file_done(s, f);
		else
			s->closing[k++] = s->closing[i];
	}
	s->nclosing = k;
}

static void queue_need(struct session *s, uint8_t type, struct xfile *f)
{
	struct jb_buf *b = &s->ctl->out;
	size_t m = jb_frame_begin(b, type);
	jb_buf_u32(b, f->index);
	size_t cpos = b->len;
	jb_buf_u32(b, 0);
	uint32_t nr = 0;
	for (uint64_t k = 0; k < f->nblocks;) {
		if (have_block(f, k)) {
			k++;
			continue;
		}
		uint64_t first = k;
		while (k < f->nblocks && !have_block(f, k))
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
			m = jb_frame_begin(b, type);
			jb_buf_u32(b, f->index);
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
}

/* The committed copy has the same name, size and mtime as this file but
 * another digest (a quick check cannot tell them apart; rsync would skip
 * it): ask for every block after all. */
static void refetch(struct session *s, struct xfile *f, const uint8_t sender_root[JB_DIGEST_LEN])
{
	char key[2 * JB_PATH_MAX + 2];
	struct jb_error err = {0};
	jb_log(JB_LOG_INFO, "%s: same size and time as the committed copy but another digest; fetching it whole",
	       f->path);
	journal_drop(s->journal, f->jid);
	f->jid = 0;
	journal_key(s, f, key, sizeof key);
	if (f->nblocks > 1 &&
	    journal_new(s->journal, key, f->size, f->mtime_ns, s->block_size, s->origin, &f->jid, &err) < 0) {
		finish(s, f, EIO, "%s", err.msg);
		return;
	}
	pthread_mutex_t *m = &s->stripes[f->index % LOCK_STRIPES];
	pthread_mutex_lock(m);
	memset(f->have, 0, f->nblocks / 8 + 1);
	memset(f->digests, 0, f->nblocks * JB_DIGEST_LEN);
	if (f->strong)
		memset(f->strong, 0, f->nblocks * JB_STRONG_LEN);
	atomic_store(&f->remaining, f->nblocks);
	f->skip_write = false;
	pthread_mutex_unlock(m);
	f->refetched = true;
	f->verified = false;
	f->prepared = f->synced = false;
	f->have_root = true; /* the sender's digest, waiting for the blocks */
	memcpy(f->root, sender_root, JB_DIGEST_LEN);
	queue_need(s, JB_MSG_NEED_AGAIN, f);
}

/* Every block is verified and the sender's digest is in: compare, then
 * hand the file to the committer. */
static void finalize(struct session *s, struct xfile *f, const uint8_t sender_root[JB_DIGEST_LEN])
{
	if (s->seal_check && !f->skip_write && !f->sealed) {
		/* relayed: the origin's seal first (it may still be on its way) */
		f->want_seal = true;
		f->want_since = jb_now();
		s->nwant++;
		memcpy(f->xroot, sender_root, JB_DIGEST_LEN);
		return;
	}
	uint8_t root[JB_DIGEST_LEN];
	if (f->skip_write)
		memcpy(root, f->root, JB_DIGEST_LEN); /* recorded when it was committed */
	else
		digest_root(f->digests, f->nblocks, root);
	memcpy(f->root, root, JB_DIGEST_LEN); /* FILE_DONE confirms what we computed, not what we were told */
	f->have_root = true;
	if (memcmp(root, sender_root, JB_DIGEST_LEN) && f->skip_write && !f->refetched && f->nblocks) {
		refetch(s, f, sender_root);
		return;
	}
	if (memcmp(root, sender_root, JB_DIGEST_LEN)) {
		journal_drop(s->journal, f->jid);
		f->jid = 0;
		if (!f->skip_write)
			partial_drop(s, f);
		finish(s, f, EBADMSG, "%s: whole-file digest mismatch (the source changed, or the destination did); its "
		       "record is dropped, run the transfer again", f->path);
		return;
	}
	if (f->skip_write) {
		finish(s, f, 0, NULL);
		return;
	}
	if (s->seal_check && seal_verify(s, f) < 0) {
		/* altered on the way: nothing of it is kept for a resume */
		journal_drop(s->journal, f->jid);
		f->jid = 0;
		partial_drop(s, f);
		finish(s, f, EKEYREJECTED, "%s: cannot commit: %s", f->path, session_write_error(EKEYREJECTED));
		return;
	}
	if (s->feed) {
		/* A relay does not commit: the staged file keeps its partial name
		 * and its journal record, block by block, until the next hop has
		 * it.  Killed before, it resumes by re-reading each block against
		 * the record; a committed record has no blocks, and those freed
		 * as the next hop took them would pass unseen. */
		finish(s, f, 0, NULL);
		return;
	}
	if (!s->cm)
		return; /* the session is ending: the file stays partial, for the next one */
	f->committing = true;
	committer_add(s, f->index);
}

void receiver_sealed(struct session *s, struct xfile *f);
void receiver_sealed(struct session *s, struct xfile *f)
{
	if (f->want_seal && !f->done && !atomic_load(&f->closed)) {
		f->want_seal = false;
		s->nwant--;
		finalize(s, f, f->xroot);
	}
}

/* A file whose seal has not come SEAL_WAIT seconds after its last block
 * fails: a relay that drops seals does not hold the session forever. */
#define SEAL_WAIT 60
static void seal_timeouts(struct session *s)
{
	double now = jb_now();
	if (!s->nwant || now - s->seal_scan < 1)
		return;
	s->seal_scan = now;
	for (uint32_t i = s->lo; i < s->nfiles && s->nwant; i++) {
		struct xfile *f = live_file(s, i);
		if (!f || !f->want_seal || now - f->want_since < SEAL_WAIT)
			continue;
		f->want_seal = false;
		s->nwant--;
		journal_drop(s->journal, f->jid);
		f->jid = 0;
		partial_drop(s, f);
		finish(s, f, EKEYREJECTED, "%s: no seal from %s came for it within %d s of its last block (a relay "
		       "must pass the origin's seals on)", f->path, s->origin, SEAL_WAIT);
	}
}

/* Claim f's destination path for this session: true; false when it is
 * taken (f is finished with EBUSY, naming the holder) or cannot be. */
static bool plan_claim(struct session *s, struct xfile *f, dev_t dev, ino_t ino, const char *key)
{
	char why[JB_WIRE_MAX_NAME + 40];
	int r = claim_take(s, f, dev, ino, false, why, sizeof why);
	if (r == -EINPROGRESS) {
		/* its holder is failing: it lets go once it has committed what it
		 * has verified, for which it needs the journal */
		journal_tx(s->journal, false);
		r = claim_take(s, f, dev, ino, true, why, sizeof why);
		journal_tx(s->journal, true);
	}
	if (r == -EBUSY)
		finish(s, f, EBUSY, "%s: busy: being received from %s", key, why);
	else if (r < 0)
		finish(s, f, -r, "%s: %s", key, strerror(-r));
	return r == 0;
}

/* Resume: re-check what the journal claims against the partial file, which
 * becomes this session's (its lock taken).  That reads the file; other
 * sessions may use the journal meanwhile.  The blocks still good, or
 * -EBUSY when a session of another process holds the file. */
static int64_t plan_resume(struct session *s, struct xfile *f, int d)
{
	uint64_t had = 0;
	for (uint64_t b = 0; b < f->nblocks; b++)
		had += have_block(f, b);
	journal_tx(s->journal, false);
	int fd = partial_open(f, d, true);
	if (fd == -EBUSY) {
		journal_tx(s->journal, true);
		return -EBUSY;
	}
	uint8_t *buf = fd >= 0 ? malloc(STREAM_CHUNK) : NULL;
	struct jb_strong sh = {0};
	for (uint64_t b = 0; b < f->nblocks; b++) {
		if (!have_block(f, b))
			continue;
		uint64_t len = block_len(f, b, s->block_size);
		uint8_t dg[JB_DIGEST_LEN];
		/* (and, for the origin's seal, each block's SHA-256 in the same read) */
		bool good = buf &&
			    digest_file_block_strong(fd, buf, (off_t)(b * s->block_size), len, dg, &sh,
						     s->seal_check ? f->strong + b * JB_STRONG_LEN : NULL) == 0 &&
			    !memcmp(dg, f->digests + b * JB_DIGEST_LEN, JB_DIGEST_LEN);
		if (!good) {
			f->have[b / 8] &= (uint8_t)~(1u << (b % 8));
			had--;
		}
	}
	free(buf);
	jb_strong_free(&sh);
	if (fd >= 0)
		close(fd);
	journal_tx(s->journal, true);
	jb_log(JB_LOG_INFO, "%s: resuming with %llu of %llu blocks already verified", f->path, (unsigned long long)had,
	       (unsigned long long)f->nblocks);
	return (int64_t)had;
}

/* Plan one regular file: its path claimed for this session, what is still
 * needed of it, its NEED.  A file the destination cannot take is refused
 * alone (FILE_DONE instead of a NEED); only a failing journal ends the
 * session. */
static int plan_file(struct session *s, struct xfile *f, struct jb_error *err)
{
	char key[2 * JB_PATH_MAX + 2], part[JB_NAME_MAX + 1];
	if (!partial_name(f, part, sizeof part)) {
		finish(s, f, ENAMETOOLONG, "%s: name too long", f->path);
		return 0;
	}
	int r = file_blocks(s, f, err);
	if (r < 0)
		return r;
	journal_key(s, f, key, sizeof key);
	dev_t dev;
	ino_t ino;
	int d = dir_open_id(s, f->path, &dev, &ino);
	if (d < 0) {
		finish(s, f, -d, "%s: %s", f->path, session_write_error(d));
		return 0;
	}
	/* before the journal: a record another session is writing is not
	 * this one's to drop */
	if (!plan_claim(s, f, dev, ino, key)) {
		close(d);
		return 0;
	}
	struct journal_rec rec;
	if ((r = journal_find(s->journal, key, f->size, f->mtime_ns, s->block_size, s->origin, f->nblocks, f->digests,
			      f->have, &rec, err)) < 0) {
		close(d);
		return r;
	}
	struct stat st;
	if (rec.committed && s->feed) {
		/* staged by a build that committed at relays: its blocks are not
		 * known one by one (see finalize), so it is received afresh */
		journal_drop(s->journal, rec.id);
		rec = (struct journal_rec){0};
	}
	if (rec.committed) {
		/* Committed before: if the file is still as we left it, only the
		 * digest comparison remains to be done. */
		if (fstatat(d, base_name(f->path), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
		    (uint64_t)st.st_size == f->size &&
		    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec == f->mtime_ns) {
			close(d);
			f->skip_write = true;
			f->jid = rec.id;
			memcpy(f->root, rec.root, JB_DIGEST_LEN);
			memset(f->have, 0xff, f->nblocks / 8 + 1);
			atomic_store(&f->remaining, 0);
			f->verified = true;
			queue_need(s, JB_MSG_NEED, f);
			if (s->feed)
				feed_planned(s->feed, f);
			return 0;
		}
		journal_drop(s->journal, rec.id);
		rec.id = 0;
	}
	int64_t had = 0;
	if (rec.id) {
		f->jid = rec.id;
		if ((had = plan_resume(s, f, d)) < 0) {
			close(d);
			finish(s, f, EBUSY, "%s: busy: %s", key, session_write_error(EBUSY));
			return 0;
		}
	} else if (f->nblocks > 1 &&
		   (r = journal_new(s->journal, key, f->size, f->mtime_ns, s->block_size, s->origin, &f->jid, err)) < 0) {
		close(d);
		return r;
	}
	/* Without a record, a partial file an earlier session left is not
	 * resumed: the first open removes it and makes the file afresh. */
	close(d);
	atomic_store(&f->remaining, f->nblocks - (uint64_t)had);
	if (f->nblocks == (uint64_t)had)
		f->verified = true; /* nothing to receive: the committer prepares it */
	queue_need(s, JB_MSG_NEED, f);
	if (s->feed)
		feed_planned(s->feed, f);
	return 0;
}

/* Plan the entries [from, s->nfiles) of the frame just taken: directories
 * are made and done at once, each regular file gets its NEED. */
static int plan_entries(struct session *s, uint32_t from, struct jb_error *err)
{
	int r = 0;
	journal_tx(s->journal, true);
	for (uint32_t i = from; i < s->nfiles && r == 0; i++) {
		struct xfile *f = slot(s, i);
		int cl;
		const char *c = partial_component(f->path, &cl);
		if (c) {
			finish(s, f, EINVAL, "%s: refused: '%.*s' " PARTIAL_REFUSED, f->path, cl, c);
			continue;
		}
		if (f->type == JB_ENTRY_DIR) {
			int d = jb_mkdirs_beneath(s->destdir, f->path, ((f->mode & 0777) | 0700) & ~s->umask);
			if (d < 0) {
				finish(s, f, -d, "%s: %s", f->path, session_write_error(d));
			} else {
				close(d);
				finish(s, f, 0, NULL);
			}
			continue;
		}
		r = plan_file(s, f, err);
		if (i % 1024 == 1023) { /* let other sessions' writes in now and then */
			journal_tx(s->journal, false);
			journal_tx(s->journal, true);
		}
		if (r == 0 && ctl_queued(s->ctl) > (512u << 10)) {
			/* files [0, i] are planned: their blocks may come once this is out */
			atomic_store_explicit(&s->ready, i + 1, memory_order_release);
			r = ctl_send(s->ctl, err);
		}
	}
	journal_tx(s->journal, false);
	atomic_store_explicit(&s->ready, s->nfiles, memory_order_release);
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
		if (pthread_create(&st->thread, NULL, receiver_stream_main, st) != 0)
			return jb_err(err, EAGAIN, "cannot start stream thread");
		st->started = true;
	}
	return 0;
}

static int on_file_end(struct session *s, struct jb_error *err)
{
	const struct jb_msg *msg = &s->ctl->msg;
	uint32_t fi = msg->u.file_end.file;
	if (fi >= s->nfiles)
		return jb_err(err, EBADMSG, "%s: FILE_END for unknown file %u", s->ctl->peer, fi);
	struct xfile *f = live_file(s, fi);
	if (!f || f->done || atomic_load(&f->closed))
		return 0; /* refused or failed here meanwhile: it crossed our FILE_DONE */
	if (f->type != JB_ENTRY_FILE || f->have_root || f->committing)
		return jb_err(err, EBADMSG, "%s: FILE_END for a directory or a second time, file %u", s->ctl->peer, fi);
	if (f->verified)
		finalize(s, f, msg->u.file_end.digest);
	else {
		/* keep the sender's digest until the last block lands */
		f->have_root = true;
		memcpy(f->root, msg->u.file_end.digest, JB_DIGEST_LEN);
	}
	return 0;
}

static int on_file_abort(struct session *s, struct jb_error *err)
{
	const struct jb_msg *msg = &s->ctl->msg;
	uint32_t fi = msg->u.file_abort.file;
	if (fi >= s->nfiles)
		return jb_err(err, EBADMSG, "%s: FILE_ABORT for unknown file %u", s->ctl->peer, fi);
	struct xfile *f = live_file(s, fi);
	if (!f || f->done || f->committing || f->type != JB_ENTRY_FILE)
		return 0;
	if (!f->jid)
		partial_drop(s, f);
	finish(s, f, msg->u.file_abort.code, "%s", msg->u.file_abort.text);
	return 0;
}

static bool all_done(const struct session *s) { return s->manifest_done && s->entries_done == s->nfiles; }

static int handle_msg(struct session *s, bool *bye, struct jb_error *err)
{
	struct jb_msg *m = &s->ctl->msg;
	int r;
	uint32_t from;
	switch (m->type) {
	case JB_MSG_FILES:
		if ((r = manifest_take(s, m, &from, err)) < 0 || (r = plan_entries(s, from, err)) < 0)
			return r;
		return 0;
	case JB_MSG_FILES_END: {
		if ((r = manifest_end(s, m, err)) < 0)
			return r;
		jb_log(JB_LOG_DEBUG, "%s: manifest of %u entries in, %.0f ms after the start", s->ctl->peer, s->nfiles,
		       (jb_now() - s->t0) * 1e3);
		size_t k = jb_frame_begin(&s->ctl->out, JB_MSG_NEED_END);
		jb_frame_end(&s->ctl->out, k);
		if (all_done(s))
			atomic_store(&s->finished, true);
		return 0;
	}
	case JB_MSG_FILE_END:
		return on_file_end(s, err);
	case JB_MSG_FILE_ABORT:
		return on_file_abort(s, err);
	case JB_MSG_SEAL:
		if (!s->have_transfer) { /* the origin's id, which receipts name */
			memcpy(s->transfer, m->u.seal.transfer, sizeof s->transfer);
			s->have_transfer = true;
		}
		if (s->feed) {
			feed_seal(s->feed, m); /* passed on, as it came */
			return 0;
		}
		return seal_take(s, m, err);
	case JB_MSG_BYE:
		if (s->feed && s->custody_asked && s->receipt_sent && !all_done(s)) {
			/* the origin took this site's receipt as custody and
			 * left: the forwarder delivers the rest alone */
			feed_custody(s->feed);
			*bye = true;
			return 0;
		}
		if (!all_done(s))
			return jb_err(err, EBADMSG, "%s: sender ended with %u entries unfinished", s->ctl->peer,
				      s->nfiles - (uint32_t)s->entries_done + (s->manifest_done ? 0 : 1));
		*bye = true;
		return 0;
	default:
		return jb_err(err, EBADMSG, "%s: unexpected message %u during transfer", s->ctl->peer, m->type);
	}
}

static int handle_events(struct session *s, size_t *ret_n, struct jb_error *err)
{
	struct event *ev;
	size_t n = session_take_events(s, &ev);
	*ret_n = n;
	int r = 0;
	for (size_t k = 0; k < n && r == 0; k++) {
		struct event *e = &ev[k];
		struct xfile *f = e->kind == EV_FATAL ? NULL : live_file(s, e->file);
		switch (e->kind) {
		case EV_BLOCK_BAD: {
			size_t mk = jb_frame_begin(&s->ctl->out, JB_MSG_RESEND);
			jb_buf_u32(&s->ctl->out, e->file);
			jb_buf_u64(&s->ctl->out, e->block);
			jb_frame_end(&s->ctl->out, mk);
			break;
		}
		case EV_FILE_VERIFIED:
			if (!f || f->done || atomic_load(&f->closed))
				break;
			if (e->code) {
				if (error_ends_session(e->code)) {
					r = jb_err(err, e->code, "%s", e->text);
					break;
				}
				finish(s, f, e->code, "%s", e->text);
				break;
			}
			f->verified = true;
			if (f->have_root) {
				uint8_t sr[JB_DIGEST_LEN];
				memcpy(sr, f->root, JB_DIGEST_LEN);
				f->have_root = false;
				finalize(s, f, sr);
			}
			break;
		case EV_FILE_FAILED:
			if (f && !f->done)
				finish(s, f, e->code, "%s", e->text);
			break;
		case EV_COMMITTED:
			if (!f)
				break;
			f->committing = false;
			if (e->code && error_ends_session(e->code)) {
				f->ok = false;
				r = jb_err(err, e->code, "%s", e->text);
				break;
			}
			finish(s, f, e->code, "%s", e->text);
			break;
		case EV_FATAL:
			r = jb_err(err, e->code, "%s", e->text);
			break;
		case EV_RELAYED:
			if (!f || f->done || f->relayed)
				break;
			f->relayed = true;
			if (f->held) {
				/* staged and answered: the origin hears the next hop's word */
				f->held = false;
				if (e->code) {
					f->ok = false;
					f->errcode = e->code;
					free(f->error);
					f->error = strdup(e->text);
				}
				send_file_done(s, f);
			} else if (e->code) {
				finish(s, f, e->code, "%s", e->text); /* still arriving here: it ends now */
			} /* else: answered before its commit here, which sends it */
			break;
		case EV_BLOCK_HELD:
			if (f && !f->done) {
				size_t mk = jb_frame_begin(&s->ctl->out, JB_MSG_HELD);
				jb_buf_u32(&s->ctl->out, e->file);
				jb_buf_u32(&s->ctl->out, 1);
				jb_buf_u64(&s->ctl->out, e->block);
				jb_buf_u64(&s->ctl->out, 1);
				jb_frame_end(&s->ctl->out, mk);
			}
			break;
		case EV_FILE_HASHED:
		case EV_RECEIPT: /* taken from the feed below */
			break;
		}
	}
	free(ev);
	return r;
}

/* The session is failing: what is verified is still committed, and the
 * files whose FILE_DONE was waiting are answered if the control connection
 * still takes it. */
static void wind_down(struct session *s)
{
	size_t n;
	struct jb_error ignore = {0};
	handle_events(s, &n, &ignore);
	committer_stop(s);
	if (handle_events(s, &n, &ignore) == 0 && n)
		ctl_send(s->ctl, &ignore);
}

int receiver_run(struct session *s, struct jb_error *err)
{
	int r;
	if ((r = committer_start(s, err)) < 0)
		return r;
	/* A receiving client's streams have sent their JOINs: the threads
	 * start at once and read the JOINED ahead of the first block. */
	if (!s->streams_ready && (r = start_workers(s, err)) < 0)
		goto fail_tell;
	bool busy = false, bye = false;
	for (;;) {
		if (!s->workers) {
			/* the server's: planning goes on while the streams join */
			int joined;
			if (s->streams_ready(s->streams_ready_ud, &joined)) {
				if ((r = start_workers(s, err)) < 0)
					goto fail_tell;
			} else if (jb_now() > s->join_deadline) {
				r = jb_err(err, ETIMEDOUT, "only %d of %d data streams joined", joined, s->nstreams);
				goto fail_tell;
			}
		}
		r = s->workers ? session_wait(s, busy, err) : ctl_recv(s->ctl, 20, s->evfd, err);
		if (r < 0)
			goto fail;
		/* what has arrived is taken in one turn (up to a bound, so that
		 * events are not starved) */
		for (int k = 1; r == 1 && !bye; k++) {
			if ((r = handle_msg(s, &bye, err)) < 0) {
				if (s->ctl->peer_error)
					goto fail;
				goto fail_tell;
			}
			if (bye || k == 256)
				break;
			if ((r = ctl_recv(s->ctl, 0, -1, err)) < 0)
				goto fail;
		}
		if (bye)
			break;
		size_t n;
		if ((r = handle_events(s, &n, err)) < 0) {
			if (session_peer_error(s, err)) {
				r = -err->code;
				goto fail;
			}
			goto fail_tell;
		}
		busy = n > 0;
		if (s->nclosing)
			closing_scan(s);
		seal_timeouts(s);
		window_advance(s);
		if ((r = custody_send_if_due(s, err)) < 0)
			goto fail_tell;
		if (s->feed)
			feed_put_receipts(s, &s->ctl->out); /* the hops' after this one */
		if ((r = ctl_send(s->ctl, err)) < 0)
			goto fail;
		session_tick(s, false);
		/* Every entry is committed and its FILE_DONE queued: a client
		 * need not wait a round trip for the BYE that confirms it. */
		if (s->no_bye && all_done(s))
			break;
	}
	committer_stop(s);
	if ((r = ctl_flush(s->ctl, err)) < 0) /* the last FILE_DONEs */
		goto fail;
	session_tick(s, true);
	jb_log(JB_LOG_DEBUG, "%s: %u entries committed, %.0f ms after the streams started", s->ctl->peer, s->nfiles,
	       (jb_now() - s->t0) * 1e3);
	session_close_streams(s);
	return 0;
fail_tell:
	atomic_store(&s->fatal, true);
	wind_down(s);
	ctl_send_error(s->ctl, err ? err->code : EIO, err ? err->msg : "transfer failed");
	session_close_streams(s);
	return r;
fail:
	atomic_store(&s->fatal, true);
	session_close_streams(s);
	wind_down(s);
	return r;
}
