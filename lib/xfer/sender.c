/* The sending end: offers the manifest, learns which blocks the receiver
 * needs, queues resends, follows each file to its end; the data streams'
 * threads (send_stream.c) read, hash and send the blocks. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "xfer-internal.h"

static int send_file_end(struct session *s, uint32_t i)
{
	struct xfile *f = slot(s, i);
	digest_root(f->digests, f->nblocks, f->root);
	f->have_root = true;
	struct jb_error err = {0};
	if (s->signer && seal_send(s, f, &err) < 0) {
		session_fatal(s, err.code, "%s", err.msg);
		return -err.code;
	}
	struct jb_buf *b = &s->ctl->out;
	size_t m = jb_frame_begin(b, JB_MSG_FILE_END);
	jb_buf_u32(b, i);
	jb_buf_put(b, f->root, JB_DIGEST_LEN);
	jb_frame_end(b, m);
	return 0;
}

/* Put files [s->plan_upto, upto) in the plan: every block of each, sent if
 * the receiver asked for it, hashed either way (FILE_END needs every
 * digest).  The stream threads start on them at once. */
static int plan_files(struct session *s, uint32_t upto, struct jb_error *err)
{
	pthread_mutex_lock(&s->qlock);
	int r = 0;
	for (; s->plan_upto < upto && r == 0; s->plan_upto++) {
		uint32_t i = s->plan_upto;
		struct xfile *f = live_file(s, i);
		if (!f || f->type != JB_ENTRY_FILE || f->done)
			continue; /* a directory, or refused by the receiver */
		if ((r = file_blocks(s, f, err)) < 0)
			break;
		if (f->nblocks == 0)
			send_file_end(s, i); /* nothing to read */
		for (uint64_t b = 0; b < f->nblocks; b++)
			if (have_block(f, b))
				s->bytes_planned += block_len(f, b, s->block_size);
		s->blocks_planned += f->nblocks;
	}
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
	return r;
}

/* A NEED.  On the sending side f->have marks the blocks the receiver asks
 * for.  NEEDs come in manifest order, a file's possibly in several frames: a
 * NEED for a later file completes the ones before it. */
static int take_need(struct session *s, struct jb_error *err)
{
	struct jb_msg *m = &s->ctl->msg;
	uint32_t fi = m->u.need.file;
	struct xfile *f = live_file(s, fi);
	if (!f || f->type != JB_ENTRY_FILE || f->done)
		return jb_err(err, EBADMSG, "%s: NEED for unknown or finished file %u", s->ctl->peer, fi);
	if (fi < s->need_file || fi < s->plan_upto)
		return jb_err(err, EBADMSG, "%s: NEED for file %u out of order", s->ctl->peer, fi);
	if (!s->got_need)
		jb_log(JB_LOG_DEBUG, "%s: first NEED %.0f ms after the streams started", s->ctl->peer,
		       (jb_now() - s->t0) * 1e3);
	s->got_need = true;
	int r;
	if (fi > s->need_file && (r = plan_files(s, fi, err)) < 0)
		return r;
	s->need_file = fi;
	if ((r = file_blocks(s, f, err)) < 0)
		return r;
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

static int file_done(struct session *s, struct jb_error *err)
{
	const struct jb_msg *m = &s->ctl->msg;
	uint32_t fi = m->u.file_done.file;
	struct xfile *f = live_file(s, fi);
	if (!f || f->done)
		return jb_err(err, EBADMSG, "%s: FILE_DONE for unknown or finished file %u", s->ctl->peer, fi);
	pthread_mutex_lock(&s->qlock);
	f->done = true; /* its blocks are skipped from now on */
	pthread_mutex_unlock(&s->qlock);
	f->ok = m->u.file_done.status == 0 && !f->errcode;
	if (f->errcode) {
		/* failed here (a source that could not be read, a directory
		 * that could not be listed): what the receiver says adds nothing */
	} else if (!f->ok) {
		f->errcode = m->u.file_done.status;
		f->error = strdup(m->u.file_done.text);
	} else if (f->type == JB_ENTRY_FILE && (!f->have_root || memcmp(f->root, m->u.file_done.digest, JB_DIGEST_LEN))) {
		f->ok = false;
		f->errcode = EBADMSG;
		if (asprintf(&f->error, "%s: receiver confirmed a different digest", f->path) < 0)
			f->error = NULL;
	}
	files_close(s, f);
	if (s->feed)
		feed_result(s->feed, f->src, f->ok ? 0 : f->errcode ? f->errcode : EIO, f->error);
	session_file_result(s, f);
	return 0;
}

static int handle_msg(struct session *s, struct jb_error *err)
{
	struct jb_msg *m = &s->ctl->msg;
	switch (m->type) {
	case JB_MSG_RESEND: {
		uint32_t fi = m->u.resend.file;
		struct xfile *f = live_file(s, fi);
		if (!f || f->type != JB_ENTRY_FILE || !f->blocks || m->u.resend.block >= f->nblocks)
			return jb_err(err, EBADMSG, "%s: RESEND outside the manifest", s->ctl->peer);
		if (++s->resend_total > 64 + s->blocks_planned / 8)
			return jb_err(err, EIO, "%s: too many blocks failed verification (%llu); giving up",
				      s->ctl->peer, (unsigned long long)s->resend_total);
		jb_log(JB_LOG_WARN, "%s: %s: block %llu failed verification, sending it again", s->ctl->peer,
		       f->path, (unsigned long long)m->u.resend.block);
		pthread_mutex_lock(&s->qlock);
		if (queue_resend(s, fi, m->u.resend.block) < 0) {
			pthread_mutex_unlock(&s->qlock);
			return jb_oom(err);
		}
		pthread_cond_signal(&s->qcond);
		pthread_mutex_unlock(&s->qlock);
		return 0;
	}
	case JB_MSG_NEED_END: {
		if (s->needs_done || !s->manifest_done)
			return jb_err(err, EBADMSG, "%s: NEED_END %s", s->ctl->peer,
				      s->needs_done ? "twice" : "before the end of the file list");
		s->needs_done = true;
		jb_log(JB_LOG_DEBUG, "%s: NEED_END %.0f ms after the streams started", s->ctl->peer,
		       (jb_now() - s->t0) * 1e3);
		return plan_files(s, s->nfiles, err);
	}
	case JB_MSG_NEED:
		if (s->needs_done)
			return jb_err(err, EBADMSG, "%s: NEED after NEED_END", s->ctl->peer);
		return take_need(s, err);
	case JB_MSG_NEED_AGAIN: {
		/* The receiver found that the file it committed before under this
		 * name is not this one after all, and wants it whole.  Once per
		 * file, after its FILE_END. */
		uint32_t fi = m->u.need.file;
		struct xfile *f = live_file(s, fi);
		if (!f || f->type != JB_ENTRY_FILE || f->done || f->refetched || !f->have_root)
			return jb_err(err, EBADMSG, "%s: NEED_AGAIN for unknown, finished or already re-sent file %u",
				      s->ctl->peer, fi);
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
					return jb_oom(err);
				}
				s->bytes_planned += block_len(f, b, s->block_size);
			}
		}
		pthread_cond_broadcast(&s->qcond);
		pthread_mutex_unlock(&s->qlock);
		return 0;
	}
	case JB_MSG_FILE_DONE:
		return file_done(s, err);
	case JB_MSG_RECEIPT:
		return custody_take(s, m, err);
	case JB_MSG_HELD: {
		/* the receiver holds these blocks durably (a routed push): a
		 * relay's staged copies of them may go; the origin keeps its own */
		struct xfile *f = live_file(s, m->u.need.file);
		if (!s->feed || !f || f->type != JB_ENTRY_FILE || !f->blocks)
			return 0; /* the origin's, or crossed with its FILE_DONE */
		for (uint32_t k = 0; k < m->u.need.nranges; k++) {
			uint64_t first, count;
			jb_wire_need_range(m, k, &first, &count);
			if (first > f->nblocks || count > f->nblocks - first)
				return jb_err(err, EBADMSG, "%s: HELD range outside file %u", s->ctl->peer, m->u.need.file);
			for (uint64_t b = first; b < first + count; b++)
				feed_held(s->feed, f->src, b);
		}
		return 0;
	}
	default:
		return jb_err(err, EBADMSG, "%s: unexpected message %u during transfer", s->ctl->peer, m->type);
	}
}

/* A source failed in a stream thread: tell the receiver, which answers
 * with its FILE_DONE. */
static void abort_file(struct session *s, const struct event *e)
{
	struct xfile *f = live_file(s, e->file);
	if (!f || f->done || f->errcode)
		return;
	f->errcode = e->code ? e->code : EIO;
	f->error = strdup(e->text);
	jb_log(JB_LOG_WARN, "%s", e->text);
	files_close(s, f);
	struct jb_buf *b = &s->ctl->out;
	size_t m = jb_frame_begin(b, JB_MSG_FILE_ABORT);
	jb_buf_u32(b, e->file);
	jb_buf_u16(b, (uint16_t)f->errcode);
	char t[JB_WIRE_MAX_MSG + 1];
	snprintf(t, sizeof t, "%s", e->text);
	jb_buf_str(b, t);
	jb_frame_end(b, m);
}

int sender_offer(struct session *s, struct jb_error *err)
{
	if (s->offered)
		return 0;
	s->offered = true;
	return manifest_pump(s, err);
}

/* How long a sender waits, once every file is verified, for the
 * destination's receipt of a relayed push (seconds). */
#define RECEIPT_WAIT 30

static bool all_done(const struct session *s) { return s->manifest_done && s->entries_done == s->nfiles; }

/* What has arrived (r: session_wait's), taken in one turn, up to a bound so
 * that events are not starved.  0; or negative, with *tell when the peer
 * sent something wrong (it is to be told), else the connection failed. */
static int take_msgs(struct session *s, int r, bool *tell, struct jb_error *err)
{
	*tell = false;
	for (int k = 1; r == 1; k++) {
		if ((r = handle_msg(s, err)) < 0) {
			*tell = true;
			return r;
		}
		if (k == 256)
			break;
		if ((r = ctl_recv(s->ctl, 0, -1, err)) < 0)
			return r;
	}
	return 0;
}

int sender_run(struct session *s, struct jb_error *err)
{
	int r;
	if ((r = sender_offer(s, err)) < 0)
		return r;
	/* The stream threads start before the first NEED and take blocks as
	 * the NEEDs put them in the plan (plan_files). */
	s->t0 = jb_now();
	for (int i = 0; i < s->nstreams; i++) {
		struct stream *st = &s->streams[i];
		st->s = s;
		if (pthread_create(&st->thread, NULL, sender_stream_main, st) != 0)
			return jb_err(err, EAGAIN, "cannot start stream thread");
		st->started = true;
	}
	bool busy = false;
	while (!all_done(s) && !s->in_custody) {
		/* A resuming receiver re-reads every block it has of each file
		 * before it answers: minutes for a terabyte.  Wait as long as the
		 * connection lives (TCP keepalive ends it within about a minute if
		 * the peer dies). */
		r = session_wait(s, busy, err);
		if (r < 0)
			goto fail;
		/* what has arrived is taken in one turn (up to a bound, so that
		 * events are not starved) */
		bool tell;
		if ((r = take_msgs(s, r, &tell, err)) < 0) {
			if (tell)
				goto fail_tell;
			goto fail;
		}
		struct event *ev;
		size_t n = session_take_events(s, &ev);
		busy = n > 0;
		for (size_t i = 0; i < n; i++) {
			if (ev[i].kind == EV_FILE_HASHED) {
				struct xfile *f = live_file(s, ev[i].file);
				if (f && !f->done && !f->errcode)
					send_file_end(s, ev[i].file);
			} else if (ev[i].kind == EV_FILE_FAILED) {
				abort_file(s, &ev[i]);
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
		if (window_advance(s) || !s->manifest_done) {
			if ((r = manifest_pump(s, err)) < 0)
				goto fail_tell;
		}
		if (s->feed)
			feed_put_seals(s, &s->ctl->out); /* the origin's, passed on */
		if ((r = ctl_send(s->ctl, err)) < 0)
			goto fail;
		session_tick(s, false);
	}
	/* A relayed push that went through whole: the destination's receipt
	 * comes (through the relays) after the last FILE_DONE */
	custody_fold(s);
	double until = jb_now() + RECEIPT_WAIT;
	bool lost = false; /* every file is verified: a connection lost now costs the receipt only */
	while (s->cust && s->cust_done && !s->in_custody && !s->got_final && s->entries_ok == s->nfiles && !lost) {
		if (jb_now() > until) {
			jb_log(JB_LOG_WARN, "%s: every file verified, but no receipt from the destination came within %d s",
			       s->ctl->peer, RECEIPT_WAIT);
			break;
		}
		bool tell = false;
		lost = (r = session_wait(s, false, err)) < 0 || (r = take_msgs(s, r, &tell, err)) < 0;
		if (tell)
			goto fail_tell;
		if (!lost)
			lost = (r = ctl_send(s->ctl, err)) < 0;
		if (lost)
			jb_log(JB_LOG_WARN, "%s: every file verified, but the connection ended before the destination's "
			       "receipt came: %s", s->ctl->peer, err ? err->msg : "");
	}
	if (lost) {
		if (err)
			*err = (struct jb_error){0};
		r = 0;
		goto done;
	}
	session_tick(s, true);
	jb_log(JB_LOG_DEBUG, "%s: every FILE_DONE in, %.0f ms after the streams started", s->ctl->peer,
	       (jb_now() - s->t0) * 1e3);
	size_t m = jb_frame_begin(&s->ctl->out, JB_MSG_BYE);
	jb_frame_end(&s->ctl->out, m);
	r = ctl_flush(s->ctl, err);
done:
	pthread_mutex_lock(&s->qlock);
	s->stopping = true;
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
	session_join_workers(s); /* idle: nothing left to send */
	sender_read_joined(s);           /* the workers are gone: the streams are ours */
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
