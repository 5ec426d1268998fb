/* The feed of a relayed transfer (docs/ARCHITECTURE.md, "Relays"): what the
 * receiving session has staged, entry by entry and block by block, and what
 * the forwarder takes from it; the origin's seals and the later hops'
 * receipts passed along; a snapshot for GET /api/v1/relays.  The relay's
 * lifecycle (checks, the forwarder thread, staging) is relay.c. */
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "relay-internal.h"

/* Seals a relay holds at once for one transfer, at most (bytes; entries:
 * WINDOW): the origin seals a file once, in a few KiB */
#define SEALQ_MAX (64u << 20)

/* Block b of a feed entry: in a bitmap (ready, gone), its length. */
static bool bit(const uint8_t *map, uint64_t b) { return map && (map[b / 8] & (1u << (b % 8))); }
static void set_bit(uint8_t *map, uint64_t b) { map[b / 8] |= (uint8_t)(1u << (b % 8)); }
static uint64_t fblock_len(const struct feed *fd, const struct fentry *e, uint64_t b)
{
	return JB_MIN(e->size - b * fd->bs, (uint64_t)fd->bs);
}

static struct fentry *fent(struct feed *fd, uint32_t i)
{
	if (i >= fd->n)
		return NULL;
	struct fentry *e = &fd->e[i & WMASK];
	return e->live && e->index == i ? e : NULL;
}

void fentry_free(struct feed *fd, struct fentry *e)
{
	atomic_fetch_sub(&fd->srv->relay_staged, e->staged);
	free(e->path);
	free(e->ready);
	free(e->gone);
	free(e->digests);
	free(e->failtext);
	memset(e, 0, sizeof *e);
}

static void wake(struct feed *fd)
{
	if (fd->wake_fd >= 0) {
		uint64_t one = 1;
		if (write(fd->wake_fd, &one, sizeof one) < 0) {
			/* it is awake already (the counter is full) */
		}
	}
}


static int staged_open(struct feed *fd, uint32_t i, int mode);

/* ---- the receiving session's side ---- */

void feed_add(struct feed *fd, const struct xfile *f)
{
	pthread_mutex_lock(&fd->lock);
	struct fentry *e = &fd->e[f->index & WMASK];
	if (e->live)
		fentry_free(fd, e); /* entry index - WINDOW: it has had its result */
	*e = (struct fentry){.live = true, .index = f->index, .type = f->type, .mode = f->mode, .size = f->size,
			     .mtime_ns = f->mtime_ns, .path = strdup(f->path)};
	if (f->type == JB_ENTRY_FILE) {
		e->nblocks = (f->size + fd->bs - 1) / fd->bs;
		e->ready = calloc(e->nblocks / 8 + 1, 1);
		e->gone = calloc(e->nblocks / 8 + 1, 1);
		e->digests = calloc(e->nblocks + 1, JB_DIGEST_LEN);
	}
	if (!e->path || (f->type == JB_ENTRY_FILE && (!e->ready || !e->gone || !e->digests))) {
		e->failcode = ENOMEM;
		e->failtext = NULL;
	}
	fd->n = f->index + 1;
	wake(fd);
	pthread_mutex_unlock(&fd->lock);
}

/* Planned: the blocks staging has from before (f->have, verified against
 * the journal) may go on at once. */
void feed_planned(struct feed *fd, const struct xfile *f)
{
	pthread_mutex_lock(&fd->lock);
	struct fentry *e = fent(fd, f->index);
	if (e && e->ready && f->blocks) {
		for (uint64_t b = 0; b < e->nblocks; b++)
			if (have_block(f, b) && !bit(e->ready, b)) {
				set_bit(e->ready, b);
				e->nready++;
				memcpy(e->digests + b * JB_DIGEST_LEN, f->digests + b * JB_DIGEST_LEN, JB_DIGEST_LEN);
				/* staged by an earlier attempt: counted, not reserved */
				uint64_t len = fblock_len(fd, e, b);
				e->staged += len;
				atomic_fetch_add(&fd->srv->relay_staged, len);
			}
	}
	pthread_mutex_unlock(&fd->lock);
}

/* Block `block` is verified and durable in staging; its bytes were
 * counted in the relay's staged bytes by feed_reserve. */
void feed_block(struct feed *fd, uint32_t file, uint64_t block, const uint8_t digest[JB_DIGEST_LEN])
{
	pthread_mutex_lock(&fd->lock);
	struct fentry *e = fent(fd, file);
	uint64_t len = e && block < e->nblocks ? fblock_len(fd, e, block) : 0;
	if (e && e->ready && block < e->nblocks && !bit(e->ready, block)) {
		set_bit(e->ready, block);
		e->nready++;
		memcpy(e->digests + block * JB_DIGEST_LEN, digest, JB_DIGEST_LEN);
		e->staged += len;
	} else {
		atomic_fetch_sub(&fd->srv->relay_staged, len); /* not this feed's to hold */
	}
	pthread_mutex_unlock(&fd->lock);
}

bool feed_reserve(struct session *s, uint32_t file, uint64_t block, uint64_t len)
{
	struct feed *fd = s->feed;
	struct jb_server *srv = fd->srv;
	uint64_t quota = srv->c->relay_quota;
	if (!quota) {
		atomic_fetch_add(&srv->relay_staged, len);
		return true;
	}
	for (;;) {
		/* the block the forwarder waits for may take the last block's
		 * worth of the quota; others leave it free, so that the hops
		 * always move on */
		pthread_mutex_lock(&fd->lock);
		bool wanted = fd->want_file == file && fd->want_block == block;
		pthread_mutex_unlock(&fd->lock);
		uint64_t limit = wanted || quota <= fd->bs ? quota : quota - fd->bs;
		uint64_t cur = atomic_load(&srv->relay_staged);
		while (cur + len <= limit)
			if (atomic_compare_exchange_weak(&srv->relay_staged, &cur, cur + len))
				return true;
		if (atomic_load(&s->fatal))
			return false;
		usleep(5000);
	}
}

void feed_unreserve(struct feed *fd, uint64_t len) { atomic_fetch_sub(&fd->srv->relay_staged, len); }

bool feed_gone(struct feed *fd, uint32_t i, uint64_t b)
{
	pthread_mutex_lock(&fd->lock);
	struct fentry *e = fent(fd, i);
	bool gone = e && b < e->nblocks && bit(e->gone, b);
	pthread_mutex_unlock(&fd->lock);
	return gone;
}

bool feed_digest(struct feed *fd, uint32_t i, uint64_t b, uint8_t out[JB_DIGEST_LEN])
{
	pthread_mutex_lock(&fd->lock);
	struct fentry *e = fent(fd, i);
	bool ok = e && b < e->nblocks && bit(e->ready, b);
	if (ok)
		memcpy(out, e->digests + b * JB_DIGEST_LEN, JB_DIGEST_LEN);
	pthread_mutex_unlock(&fd->lock);
	return ok;
}

/* The next hop has block b durably: a hole is punched where it was in
 * staging, and its bytes leave the staged count (the quota has room again).
 * After a crash here the journal still lists it, and the check on resume
 * finds it gone: it is asked of the hop before again. */
void feed_held(struct feed *fd, uint32_t i, uint64_t b)
{
	pthread_mutex_lock(&fd->lock);
	struct fentry *e = fent(fd, i);
	bool drop = e && b < e->nblocks && bit(e->ready, b) && !bit(e->gone, b);
	uint64_t len = drop ? fblock_len(fd, e, b) : 0;
	if (drop) {
		set_bit(e->gone, b);
		e->staged -= len;
	}
	pthread_mutex_unlock(&fd->lock);
	if (!drop)
		return;
	int f = staged_open(fd, i, O_WRONLY);
	if (f >= 0) {
		if (fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(b * fd->bs), (off_t)len) < 0 &&
		    errno != EOPNOTSUPP)
			jb_log(JB_LOG_WARN, "staging: cannot free block %llu: %s", (unsigned long long)b, strerror(errno));
		close(f);
	}
	atomic_fetch_sub(&fd->srv->relay_staged, len);
}

void feed_fail(struct feed *fd, uint32_t file, int code, const char *text)
{
	pthread_mutex_lock(&fd->lock);
	struct fentry *e = fent(fd, file);
	if (e && !e->failcode) {
		e->failcode = code ? code : EIO;
		e->failtext = text ? strdup(text) : NULL;
	}
	pthread_mutex_unlock(&fd->lock);
}

void feed_end(struct feed *fd)
{
	pthread_mutex_lock(&fd->lock);
	fd->ended = true;
	wake(fd);
	pthread_mutex_unlock(&fd->lock);
}

/* ---- the forwarding session's side ---- */

int feed_next_entry(struct session *s, struct walk_entry *w, struct jb_error *err)
{
	struct feed *fd = s->feed;
	(void)err;
	pthread_mutex_lock(&fd->lock);
	if (s->feed_next < fd->lo)
		s->feed_next = fd->lo;
	struct fentry *e;
	while ((e = fent(fd, s->feed_next)) && e->resulted)
		s->feed_next++; /* this entry's result came in an earlier attempt */
	int r;
	if (e) {
		/* the path stays in the slot until the entry has its result */
		*w = (struct walk_entry){.type = e->type, .mode = e->mode, .size = e->size, .mtime_ns = e->mtime_ns,
					 .path = e->path, .src = s->feed_next};
		s->feed_next++;
		r = 1;
	} else {
		r = fd->ended && s->feed_next >= fd->n ? 0 : -EAGAIN;
	}
	pthread_mutex_unlock(&fd->lock);
	return r;
}

/* 1: block b of feed entry i is durable in staging; 0: not yet; <0: the
 * entry failed upstream (code in *ret_code, its text in buf). */
int feed_ready(struct feed *fd, uint32_t i, uint64_t b, char *buf, size_t len)
{
	pthread_mutex_lock(&fd->lock);
	struct fentry *e = fent(fd, i);
	int r;
	if (!e || e->failcode) {
		snprintf(buf, len, "%s", e && e->failtext ? e->failtext : "failed at the relay");
		r = -(e ? e->failcode : EIO);
	} else {
		r = b < e->nblocks && bit(e->ready, b);
		if (!r) {
			fd->want_file = i; /* feed_reserve lets it in first */
			fd->want_block = b;
		}
	}
	pthread_mutex_unlock(&fd->lock);
	return r;
}

int64_t feed_first_ready(struct feed *fd, uint32_t i, uint64_t from, uint64_t to, const uint8_t *taken)
{
	pthread_mutex_lock(&fd->lock);
	struct fentry *e = fent(fd, i);
	int64_t r = -1;
	for (uint64_t b = from; e && !e->failcode && b < to && b < e->nblocks; b++)
		if (bit(e->ready, b) && !bit(taken, b)) {
			r = (int64_t)b;
			break;
		}
	pthread_mutex_unlock(&fd->lock);
	return r;
}

/* The staged copy of feed entry i: its partial file (a relay does not
 * commit, receiver.c's finalize), else the file an older build committed. */
static int staged_open(struct feed *fd, uint32_t i, int mode)
{
	char path[JB_PATH_MAX], part[JB_NAME_MAX + 1], full[JB_PATH_MAX * 2 + 8];
	pthread_mutex_lock(&fd->lock);
	struct fentry *e = fent(fd, i);
	snprintf(path, sizeof path, "%s", e && e->path ? e->path : "");
	pthread_mutex_unlock(&fd->lock);
	if (!*path)
		return -ENOENT;
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (!jb_partial_name(base, part, sizeof part))
		return -ENAMETOOLONG;
	for (int k = 0; k < 3; k++) {
		if (k == 1)
			snprintf(full, sizeof full, "%s/%s", fd->dir, path);
		else
			snprintf(full, sizeof full, "%s/%.*s%s", fd->dir, (int)(base - path), path, part);
		int f = open(full, mode | O_NOFOLLOW | O_CLOEXEC);
		if (f >= 0 || errno != ENOENT)
			return f >= 0 ? f : -errno;
	}
	return -ENOENT;
}

int feed_open(struct feed *fd, uint32_t i) { return staged_open(fd, i, O_RDONLY); }

/* The next hop's FILE_DONE for feed entry i: the receiving session answers
 * upstream with it. */
void feed_result(struct feed *fd, uint32_t i, int status, const char *text)
{
	pthread_mutex_lock(&fd->lock);
	struct fentry *e = fent(fd, i);
	if (e && !e->resulted) {
		e->resulted = true;
		if (!status)
			fd->nok++;
		if (!status) {
			atomic_fetch_sub(&fd->srv->relay_staged, e->staged); /* its staged copy goes now */
			e->staged = 0;
		}
		struct event ev = {.kind = EV_RELAYED, .file = i, .code = status};
		if (status)
			snprintf(ev.text, sizeof ev.text, "%s (through %s)", text && *text ? text : "failed",
				 fd->srv->c->name);
		session_post(fd->up, &ev);
		while ((e = fent(fd, fd->lo)) && e->resulted)
			fd->lo++;
	}
	pthread_mutex_unlock(&fd->lock);
}

void feed_seal(struct feed *fd, const struct jb_msg *m)
{
	pthread_mutex_lock(&fd->lock);
	/* the entry it seals: the origin's index, which is the feed's at the
	 * first relay, else found by path */
	uint32_t idx = UINT32_MAX;
	struct jb_wire_iter it = {m->u.seal.entries, m->u.seal.len};
	struct jb_seal_entry *se = malloc(sizeof *se);
	if (se && m->u.seal.count && jb_wire_seal_next(&it, se) == 0) {
		struct fentry *e = fent(fd, se->file);
		if (e && e->path && !strcmp(e->path, se->e.path))
			idx = se->file;
		for (uint32_t i = fd->lo; idx == UINT32_MAX && i < fd->n; i++)
			if ((e = fent(fd, i)) && e->path && !strcmp(e->path, se->e.path))
				idx = i;
	}
	free(se);
	if (fd->sq_n == fd->sq_cap) {
		size_t nc = fd->sq_cap ? fd->sq_cap * 2 : 64;
		struct sealq *nq = realloc(fd->sq, nc * sizeof *nq);
		if (!nq)
			goto out;
		fd->sq = nq;
		fd->sq_cap = nc;
	}
	size_t len = m->u.seal.signed_n + JB_WIRE_SIG_LEN;
	if (fd->sq_n >= WINDOW || fd->sq_bytes + len > SEALQ_MAX) {
		session_fatal(fd->up, E2BIG, "%s: more seals than entries in flight (%zu, %zu bytes) sent through %s",
			      fd->origin, fd->sq_n, fd->sq_bytes, fd->srv->c->name);
		goto out;
	}
	uint8_t *body = malloc(len);
	if (!body)
		goto out;
	fd->sq_bytes += len;
	memcpy(body, m->u.seal.signed_p, m->u.seal.signed_n);
	memcpy(body + m->u.seal.signed_n, m->u.seal.sig, JB_WIRE_SIG_LEN);
	fd->sq[fd->sq_n++] = (struct sealq){.idx = idx, .body = body, .len = len};
	wake(fd);
out:
	pthread_mutex_unlock(&fd->lock);
}

void feed_put_seals(struct session *s, struct jb_buf *out)
{
	struct feed *fd = s->feed;
	pthread_mutex_lock(&fd->lock);
	/* drop those whose entries have their result (and no session needs) */
	size_t drop = 0;
	while (drop < fd->sq_n) {
		struct sealq *q = &fd->sq[drop];
		struct fentry *e = q->idx == UINT32_MAX ? NULL : fent(fd, q->idx);
		bool done = q->idx == UINT32_MAX ? fd->sq_head + drop < s->seal_cursor : !e || e->resulted;
		if (!done)
			break;
		fd->sq_bytes -= q->len;
		free(q->body);
		drop++;
	}
	if (drop) {
		memmove(fd->sq, fd->sq + drop, (fd->sq_n - drop) * sizeof *fd->sq);
		fd->sq_n -= drop;
		fd->sq_head += drop;
	}
	if (s->seal_cursor < fd->sq_head)
		s->seal_cursor = fd->sq_head;
	for (; s->seal_cursor < fd->sq_head + fd->sq_n; s->seal_cursor++) {
		struct sealq *q = &fd->sq[s->seal_cursor - fd->sq_head];
		size_t m = jb_frame_begin(out, JB_MSG_SEAL);
		jb_buf_put(out, q->body, q->len);
		jb_frame_end(out, m);
	}
	pthread_mutex_unlock(&fd->lock);
}

void feed_receipt(struct feed *fd, const struct jb_msg *m)
{
	size_t len = m->u.receipt.signed_n + JB_WIRE_SIG_LEN;
	uint8_t *body = malloc(len);
	if (!body)
		return;
	memcpy(body, m->u.receipt.signed_p, m->u.receipt.signed_n);
	memcpy(body + m->u.receipt.signed_n, m->u.receipt.sig, JB_WIRE_SIG_LEN);
	pthread_mutex_lock(&fd->lock);
	if (fd->rq_n < RQ_MAX) {
		fd->rq[fd->rq_n].body = body;
		fd->rq[fd->rq_n++].len = len;
		body = NULL;
	}
	pthread_mutex_unlock(&fd->lock);
	if (body) {
		jb_log(JB_LOG_WARN, "relay: %s: more than %d receipts for one transfer; %s's is not passed back",
		       fd->origin, RQ_MAX, m->u.receipt.hop);
		free(body);
		return;
	}
	struct event ev = {.kind = EV_RECEIPT};
	session_post(fd->up, &ev);
}

void feed_put_receipts(struct session *s, struct jb_buf *out)
{
	struct feed *fd = s->feed;
	pthread_mutex_lock(&fd->lock);
	for (; fd->rq_out < fd->rq_n; fd->rq_out++) {
		size_t m = jb_frame_begin(out, JB_MSG_RECEIPT);
		jb_buf_put(out, fd->rq[fd->rq_out].body, fd->rq[fd->rq_out].len);
		jb_frame_end(out, m);
	}
	pthread_mutex_unlock(&fd->lock);
}

void feed_custody(struct feed *fd)
{
	pthread_mutex_lock(&fd->lock);
	fd->custody = true;
	pthread_mutex_unlock(&fd->lock);
	jb_log(JB_LOG_INFO, "relay: %s left with this site's receipt: forwarding the rest to %s alone", fd->origin,
	       fd->next.label);
}

/* The forwarding session is running (fd: its event fd) or over (-1). */
void feed_attach(struct feed *fd, int wake_fd, atomic_uint_fast64_t *bytes)
{
	pthread_mutex_lock(&fd->lock);
	fd->wake_fd = wake_fd;
	fd->fwd_bytes = bytes;
	pthread_mutex_unlock(&fd->lock);
}

int jb_server_relays(struct jb_server *srv, struct jb_relay_info **ret, size_t *ret_n)
{
	*ret = NULL;
	*ret_n = 0;
	pthread_mutex_lock(&srv->lock);
	size_t n = 0;
	for (struct feed *o = srv->feeds; o; o = o->next_live)
		n++;
	struct jb_relay_info *v = n ? calloc(n, sizeof *v) : NULL;
	if (n && !v) {
		pthread_mutex_unlock(&srv->lock);
		return -ENOMEM;
	}
	size_t k = 0;
	double now = jb_now();
	for (struct feed *o = srv->feeds; o; o = o->next_live, k++) {
		struct jb_relay_info *r = &v[k];
		pthread_mutex_lock(&o->lock);
		snprintf(r->origin, sizeof r->origin, "%s", o->origin);
		snprintf(r->from, sizeof r->from, "%s", o->up && o->up->ctl ? o->up->ctl->peer : "");
		snprintf(r->next, sizeof r->next, "%s", o->next.label ? o->next.label : "");
		snprintf(r->path, sizeof r->path, "%s", o->next.path ? o->next.path : "");
		snprintf(r->key, sizeof r->key, "%s", o->key);
		r->state = o->custody ? "custody" : o->napping ? "retrying" : !o->ended ? "receiving" : "forwarding";
		r->entries = o->n;
		r->delivered = o->nok;
		for (uint32_t i = 0; i < WINDOW; i++)
			if (o->e[i].live)
				r->staged += o->e[i].staged;
		r->forwarded = o->forwarded + (o->fwd_bytes ? atomic_load(o->fwd_bytes) : 0);
		r->attempts = o->attempts;
		r->seconds = now - o->t0;
		pthread_mutex_unlock(&o->lock);
	}
	pthread_mutex_unlock(&srv->lock);
	*ret = v;
	*ret_n = n;
	return 0;
}

/* The next hop answered our HELLO with a WELCOME. */
int feed_take_tamper(struct feed *fd)
{
	pthread_mutex_lock(&fd->lock);
	int b = fd->tamper_block;
	fd->tamper_block = -1;
	pthread_mutex_unlock(&fd->lock);
	return b;
}

void feed_welcomed(struct feed *fd)
{
	pthread_mutex_lock(&fd->lock);
	if (fd->state == 0) {
		fd->state = 1;
		pthread_cond_broadcast(&fd->cond);
	}
	pthread_mutex_unlock(&fd->lock);
}

