/* Relays (docs/ARCHITECTURE.md, "Relays"): a push whose HELLO names hops
 * beyond this site is received into this site's staging directory and, at
 * the same time, pushed on to the next hop (cut-through).  The receiving
 * session and the forwarding one share a feed: the entries as they arrive,
 * and of each regular file which blocks are verified and durable in
 * staging.  The forwarder offers an entry as soon as it is in the feed and
 * reads a block as soon as it is durable; the receiver answers each entry
 * upstream (FILE_DONE) only with what the next hop answered for it, so the
 * origin learns what the destination verified.
 *
 * The forwarder retries a lost next hop with backoff while the upstream
 * keeps sending into staging: the origin never sends a block twice.  An
 * upstream that is lost ends the forwarder too; staging keeps what it has
 * (with its journal records), so that the origin's next attempt moves only
 * what is missing on each hop. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server-internal.h"

/* Seals a relay holds at once for one transfer, at most (bytes; entries:
 * WINDOW): the origin seals a file once, in a few KiB */
#define SEALQ_MAX (64u << 20)
/* Receipts a relay passes back for one transfer, at most: one per hop after
 * it (JB_WIRE_MAX_HOPS), in each of a few attempts */
#define RQ_MAX 16

struct fentry {
	bool live;
	uint32_t index;
	uint8_t type;
	uint32_t mode;
	uint64_t size;
	int64_t mtime_ns;
	char *path;
	uint64_t nblocks;
	uint8_t *ready;      /* bitmap: verified here and durable in staging */
	uint8_t *gone;       /* bitmap: the next hop holds it, and its staged copy is gone */
	uint8_t *digests;    /* nblocks x 16: each ready block's, as verified here */
	uint64_t nready;
	uint64_t staged;     /* bytes of it counted in the relay's staged bytes */
	int failcode;        /* failed upstream (or here): the forwarder aborts it */
	char *failtext;
	bool resulted;       /* the next hop's FILE_DONE is in */
};

struct feed {
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* state changes */
	struct fentry *e;           /* WINDOW slots: entry i in e[i & WMASK] */
	uint32_t n;                 /* entries added */
	bool ended;                 /* FILES_END has come */
	uint32_t lo;                /* entries below it all have their result */
	uint32_t bs;
	uint32_t want_file;         /* the block the forwarder waits for */
	uint64_t want_block;
	int wake_fd;                /* the forwarding session's event fd, -1 */
	struct session *up;         /* the receiving session */
	char *dir;                  /* staging/KEY */
	volatile int cancel;        /* the forwarder's to end */
	int state;                  /* 0: connecting, 1: the next hop welcomed us, -1: it refused */
	struct jb_error err;        /* why it refused */
	/* what the forwarder needs */
	struct jb_server *srv;
	struct jb_remote next;
	char origin[JB_WIRE_MAX_NAME + 1];
	char hops[JB_WIRE_MAX_HOPS][JB_WIRE_MAX_NAME + 1];
	int nhops;                  /* after the next hop */
	uint8_t hello_flags;
	int streams;
	pthread_t thread;
	bool started;
	struct feed *next_live;     /* srv->feeds */
	bool registered;            /* in srv->feeds: its staging directory is its own */
	char key[33];
	uint64_t forwarded;         /* bytes the next hop took, all attempts */
	/* the origin's seals, as they came, until their entries have their
	 * result: each forwarding session sends them all from sq_head on */
	struct sealq {
		uint32_t idx;        /* the feed entry (UINT32_MAX: none found) */
		uint8_t *body;       /* the frame's body less its type byte */
		size_t len;
	} *sq;
	size_t sq_n, sq_cap, sq_bytes;
	uint64_t sq_head;           /* seals dropped from the front, all told */
	int tamper_block;
	int attempts;
	/* receipts of the hops after this one (custody.c), as they came, for
	 * the receiving session to pass back: at most RQ_MAX a transfer */
	struct {
		uint8_t *body;       /* the frame's body less its type byte */
		size_t len;
	} rq[RQ_MAX];
	size_t rq_n, rq_out;        /* taken; passed back */
	uint64_t nok;               /* entries the next hop verified */
	bool custody;               /* the origin left with this site's receipt */
	bool napping;               /* between attempts */
	char cc[JB_WIRE_MAX_CC + 1];    /* the route's congestion control, "" for this site's default */
	double t0;                  /* when it began here */
	atomic_uint_fast64_t *fwd_bytes; /* the running forwarding session's bytes moved, or NULL */
};

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

static void fentry_free(struct feed *fd, struct fentry *e)
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

static bool all_resulted(struct feed *fd)
{
	pthread_mutex_lock(&fd->lock);
	bool all = fd->ended && fd->lo >= fd->n;
	pthread_mutex_unlock(&fd->lock);
	return all;
}

/* Refusals that another attempt would only get again. */
static bool lasting(int code)
{
	return code == EACCES || code == EPERM || code == EPROTO || code == EPROTONOSUPPORT || code == EINVAL ||
	       code == ENAMETOOLONG || code == EBADMSG;
}

/* Sleep up to secs, or until the forwarder is cancelled. */
static void nap(struct feed *fd, double secs)
{
	for (double t = 0; t < secs && !fd->cancel; t += 0.1)
		usleep(100000);
}

static void *forward_main(void *arg)
{
	struct feed *fd = arg;
	struct jb_server *srv = fd->srv;
	double backoff = 1, down_since = 0; /* the first failed attempt since the last that moved anything */
	uint64_t nok_before = 0;
	struct route rt = {.origin = fd->origin, .nhops = fd->nhops, .flags = fd->cc[0] ? JB_ROUTE_CC : 0, .cc = fd->cc};
	for (int i = 0; i < fd->nhops; i++)
		rt.hops[i] = fd->hops[i];
	for (;;) {
		struct jb_xfer_opts o;
		jb_xfer_opts_init(&o);
		o.streams = fd->streams;
		o.block_size = fd->bs;
		o.encrypt = fd->hello_flags & JB_HELLO_ENCRYPT;
		o.tune.cc = fd->cc[0] ? fd->cc : NULL; /* the origin's --cc, else this site's default */
		o.cancel = &fd->cancel;
		struct jb_xfer_result res = {0};
		struct jb_error err = {0};
		pthread_mutex_lock(&fd->lock);
		bool again = fd->attempts++;
		pthread_mutex_unlock(&fd->lock);
		if (again)
			atomic_fetch_add(&srv->relay_retries, 1);
		int r = client_push_feed(srv->relay_cl, &fd->next, fd, &rt, fd->hello_flags & JB_HELLO_DEST_DIR, &o, &res,
					 &err);
		pthread_mutex_lock(&fd->lock);
		fd->forwarded += res.bytes_sent;
		pthread_mutex_unlock(&fd->lock);
		if (!again && res.cc[0])
			jb_log(JB_LOG_INFO, "relay: %s, next hop %s: data streams ran %s%s", fd->origin, fd->next.label, res.cc,
			       fd->cc[0] ? " (the origin's choice)" : "");
		atomic_fetch_add(&srv->relay_forwarded, res.bytes_sent);
		jb_xfer_result_free(&res);
		if (fd->cancel)
			break;
		if (all_resulted(fd))
			break; /* every entry has its answer, good or bad */
		pthread_mutex_lock(&fd->lock);
		if (fd->state == 0) {
			/* the first attempt: the origin is told why at once */
			fd->state = -1;
			fd->err = err;
			pthread_cond_broadcast(&fd->cond);
			pthread_mutex_unlock(&fd->lock);
			break;
		}
		pthread_mutex_unlock(&fd->lock);
		if (r < 0 && lasting(err.code)) {
			session_fatal(fd->up, err.code, "%s (relaying through %s)", err.msg, srv->c->name);
			break;
		}
		pthread_mutex_lock(&fd->lock);
		bool moved = res.bytes_sent > 0 || fd->nok > nok_before;
		nok_before = fd->nok;
		pthread_mutex_unlock(&fd->lock);
		double now = jb_now();
		if (moved || !down_since)
			down_since = now;
		if (now - down_since >= (double)srv->c->relay_give_up) {
			char shown[JB_WIRE_MAX_MSG];
			jb_log(JB_LOG_WARN, "relay: %s, next hop %s: nothing moved for %.0f s ([relay] give_up): giving up; "
			       "staging kept until it expires (%s)", fd->origin, fd->next.label, now - down_since,
			       jb_log_escape(err.msg, shown, sizeof shown));
			session_fatal(fd->up, ETIMEDOUT, "next hop %s: nothing moved for %.0f s (%s) (relaying through %s)",
				      fd->next.label, now - down_since, err.msg, srv->c->name);
			break;
		}
		char shown[JB_WIRE_MAX_MSG];
		jb_log(JB_LOG_WARN, "relay: %s, next hop %s: %s; trying again in %.0f s", fd->origin, fd->next.label,
		       jb_log_escape(err.msg, shown, sizeof shown), backoff);
		pthread_mutex_lock(&fd->lock);
		fd->napping = true;
		pthread_mutex_unlock(&fd->lock);
		nap(fd, backoff);
		pthread_mutex_lock(&fd->lock);
		fd->napping = false;
		pthread_mutex_unlock(&fd->lock);
		if (fd->cancel)
			break;
		backoff = JB_MIN(backoff * 2, 30);
	}
	return NULL;
}

/* The staging directory of a route: SHA-256 of who sends what where,
 * so that the origin's next attempt finds what this one staged. */
static void staging_key(const struct jb_msg *hello, const char *from, const char *path, char out[33])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t d[32] = {0};
	if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1) {
		const char *parts[4 + JB_WIRE_MAX_HOPS] = {"jumbo staging 2", hello->u.hello.origin, from, path};
		int n = 4;
		for (unsigned i = 0; i < hello->u.hello.nhops; i++)
			parts[n++] = hello->u.hello.hops[i];
		for (int i = 0; i < n; i++)
			EVP_DigestUpdate(md, parts[i], strlen(parts[i]) + 1);
		uint8_t fl = hello->u.hello.flags & JB_HELLO_DEST_DIR;
		EVP_DigestUpdate(md, &fl, 1);
		EVP_DigestFinal_ex(md, d, NULL);
	}
	EVP_MD_CTX_free(md);
	jb_hex(d, 16, out);
}

int relay_prepare(struct jb_server *srv, struct session *s, const struct jb_peer *peer, const struct jb_msg *hello,
		  const char *path, struct jb_error *err)
{
	const struct jb_config *c = srv->c;
	const char *origin = hello->u.hello.origin, *next = hello->u.hello.hops[0];
	const struct jb_peer *op = jb_config_peer(c, origin), *np = jb_config_peer(c, next);
	if (!c->relay_staging)
		return jb_err(err, EACCES, "site %s is not a relay (its jumbo.conf has no [relay] section)", c->name);
	if (!strcmp(next, c->name) || !strcmp(next, peer->name))
		return jb_err(err, EINVAL, "route goes back to %s", next);
	if (!op)
		return jb_err(err, EACCES, "site %s does not relay for %s: it is not a peer of %s", c->name, origin, c->name);
	if (!op->relay)
		return jb_err(err, EACCES, "site %s does not relay for %s ([peer %s] has no relay = yes)", c->name, origin,
			      origin);
	if (strcmp(peer->name, origin) && !peer->relay)
		return jb_err(err, EACCES, "site %s does not take relayed transfers from %s ([peer %s] has no relay = yes)",
			      c->name, peer->name, peer->name);
	if (!np || !np->address)
		return jb_err(err, EACCES, "site %s cannot relay to %s: no [peer %s] with an address", c->name, next, next);
	int r = session_take_fds(s, &s->nstreams, c->max_open_files, err);
	if (r < 0)
		return jb_err_prefix(err, "site %s is busy", c->name);
	if ((r = jb_private_dir(c->relay_staging, err)) < 0)
		return jb_err_prefix(err, "[relay] staging");
	struct feed *fd = calloc(1, sizeof *fd);
	char key[33];
	staging_key(hello, peer->name, path, key);
	if (fd)
		memcpy(fd->key, key, sizeof key);
	if (!fd || !(fd->e = calloc(WINDOW, sizeof *fd->e)) || asprintf(&fd->dir, "%s/%s", c->relay_staging, key) < 0) {
		if (fd)
			free(fd->e);
		free(fd);
		return jb_oom(err);
	}
	pthread_mutex_init(&fd->lock, NULL);
	pthread_cond_init(&fd->cond, NULL);
	fd->wake_fd = -1;
	fd->tamper_block = srv->tamper_block;
	fd->bs = s->block_size;
	fd->up = s;
	fd->srv = srv;
	fd->t0 = jb_now();
	snprintf(fd->origin, sizeof fd->origin, "%s", origin);
	fd->nhops = hello->u.hello.nhops - 1;
	for (int i = 0; i < fd->nhops; i++)
		snprintf(fd->hops[i], sizeof fd->hops[i], "%s", hello->u.hello.hops[i + 1]);
	fd->hello_flags = hello->u.hello.flags & (JB_HELLO_ENCRYPT | JB_HELLO_DEST_DIR);
	snprintf(fd->cc, sizeof fd->cc, "%s", hello->u.hello.route_cc);
	fd->streams = s->nstreams;
	fd->next = (struct jb_remote){.address = strdup(np->address), .path = strdup(path), .peer = np,
				      .label = strdup(np->name)};
	s->feed = fd;
	snprintf(s->origin, sizeof s->origin, "%s", origin);
	s->umask = 077; /* staging is this site's alone */
	if (!fd->next.address || !fd->next.path || !fd->next.label)
		return jb_oom(err);
	/* staging/KEY, trusted as the site's own; journal keys are its
	 * absolute path, apart from the data root's */
	pthread_mutex_lock(&srv->lock);
	for (struct feed *o = srv->feeds; o; o = o->next_live)
		if (!strcmp(o->key, key)) {
			pthread_mutex_unlock(&srv->lock);
			return jb_err(err, EBUSY, "site %s is relaying this transfer already (staging %s)", c->name, key);
		}
	fd->next_live = srv->feeds;
	srv->feeds = fd;
	fd->registered = true;
	pthread_mutex_unlock(&srv->lock);
	if ((r = dest_setup(s, AT_FDCWD, NULL, fd->dir, true, err)) < 0)
		return jb_err_prefix(err, "[relay] staging");
	utimensat(AT_FDCWD, fd->dir, NULL, 0); /* its age is the expirer's measure */
	if (pthread_create(&fd->thread, NULL, forward_main, fd) != 0)
		return jb_err(err, EAGAIN, "cannot start the forwarder");
	fd->started = true;
	atomic_fetch_add(&srv->relay_active, 1);
	atomic_fetch_add(&srv->relay_total, 1);
	/* the next hop's answer first: a refusal there is the origin's */
	pthread_mutex_lock(&fd->lock);
	while (fd->state == 0)
		pthread_cond_wait(&fd->cond, &fd->lock);
	int st = fd->state;
	pthread_mutex_unlock(&fd->lock);
	if (st < 0) {
		r = jb_err(err, fd->err.code ? fd->err.code : EIO, "%s (relaying through %s)", fd->err.msg, c->name);
		return r;
	}
	char shown[JB_WIRE_MAX_MSG];
	jb_log(JB_LOG_INFO, "%s: relaying %s's push of %s to %s%s%s (staging %s)", peer->name, origin,
	       jb_log_escape(*path ? path : "/", shown, sizeof shown), next, fd->nhops ? " and on to " : "",
	       fd->nhops ? fd->hops[fd->nhops - 1] : "", key);
	return 0;
}

/* The receiving session is over (r: how): the forwarder ends with it (at
 * once when the upstream failed), and a transfer that reached its
 * destination whole leaves nothing in staging. */
void relay_finish(struct session *s, int r)
{
	struct feed *fd = s->feed;
	if (!fd)
		return;
	if (r < 0)
		fd->cancel = 1;
	if (fd->started) {
		pthread_join(fd->thread, NULL);
		atomic_fetch_sub(&fd->srv->relay_active, 1);
	}
	/* (after custody the origin has gone: the next hop's answers count) */
	bool clean = r == 0 && all_resulted(fd) && (s->entries_ok == s->nfiles || (fd->custody && fd->nok == fd->n));
	int d = fd->registered ? open(fd->srv->c->relay_staging, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
	if (d >= 0) {
		if (clean)
			jb_remove_tree(d, fd->key);
		else if (unlinkat(d, fd->key, AT_REMOVEDIR) == 0)
			clean = true; /* refused before anything was staged */
		close(d);
	}
	jb_log(JB_LOG_INFO, "relay: %s's transfer through this site: %llu bytes forwarded in %d attempt%s%s",
	       fd->origin, (unsigned long long)fd->forwarded, fd->attempts, fd->attempts == 1 ? "" : "s",
	       clean ? "; staging freed" : "; staging kept for the next attempt");
	pthread_mutex_lock(&fd->srv->lock);
	for (struct feed **pp = &fd->srv->feeds; *pp; pp = &(*pp)->next_live)
		if (*pp == fd) {
			*pp = fd->next_live;
			break;
		}
	pthread_mutex_unlock(&fd->srv->lock);
	for (uint32_t i = 0; i < WINDOW; i++)
		if (fd->e[i].live)
			fentry_free(fd, &fd->e[i]);
	free(fd->e);
	for (size_t i = 0; i < fd->sq_n; i++)
		free(fd->sq[i].body);
	free(fd->sq);
	for (size_t i = 0; i < fd->rq_n; i++)
		free(fd->rq[i].body);
	free(fd->dir);
	jb_remote_free(&fd->next);
	pthread_mutex_destroy(&fd->lock);
	pthread_cond_destroy(&fd->cond);
	free(fd);
	s->feed = NULL;
}

uint64_t relay_expire(struct jb_server *srv, time_t cutoff)
{
	int d = open(srv->c->relay_staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d < 0)
		return 0;
	DIR *dir = fdopendir(d);
	if (!dir) {
		close(d);
		return 0;
	}
	uint64_t n = 0;
	struct dirent *de;
	while ((de = readdir(dir))) {
		struct stat st;
		if (strlen(de->d_name) != 32 || strspn(de->d_name, "0123456789abcdef") != 32 ||
		    fstatat(d, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) || st.st_mtime >= cutoff)
			continue;
		pthread_mutex_lock(&srv->lock);
		bool live = false;
		for (struct feed *o = srv->feeds; o && !live; o = o->next_live)
			live = !strcmp(o->key, de->d_name);
		/* removed under the lock: a transfer starting now waits for it */
		if (!live && jb_remove_tree(d, de->d_name) == 0)
			n++;
		pthread_mutex_unlock(&srv->lock);
	}
	closedir(dir);
	return n;
}
