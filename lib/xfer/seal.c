/* Seals (docs/PROTOCOL.md, SEAL): what a relay cannot forge.  The origin
 * of a relayed push computes SHA-256 of each block as it reads it and,
 * once a file is read, sends a SEAL ahead of its FILE_END: the file's
 * manifest entry and its sha256t root (lib/xfer/strong.c), signed with the
 * origin's site key.  Relays pass SEALs on as they came.  The destination
 * checks the signature against the origin's pinned fingerprint and, before
 * a file goes to the committer, the sha256t of what it received (each
 * block's SHA-256 taken as the block came) against the seal's: a
 * relay that altered a block and recomputed every XXH3 is caught there,
 * and nothing it altered is committed.
 *
 * This first form seals each file's root only (no block digests: a
 * mismatch fails the file rather than naming its blocks), one SEAL per
 * file. */
#include <stdio.h>
#include <sys/stat.h>
#include <string.h>

#include "xfer-internal.h"

#define DOMAIN "jumbo seal 1"

struct seal_wait {
	char *path;          /* as placed here */
	uint8_t root[JB_STRONG_LEN];
	uint8_t *body;       /* the SEAL as it came, for the catalog (NULL: too large to keep) */
	size_t len;
};

/* A seal kept with the file it seals, for its provenance (the catalog's
 * dataset row, docs/PROTOCOL.md SEAL): the origin's are a few KiB; a
 * larger one is checked and used but not kept. */
#define SEAL_KEEP_MAX 8192

static uint8_t *seal_copy(const struct jb_msg *m, size_t *len)
{
	*len = m->u.seal.signed_n + JB_WIRE_SIG_LEN;
	if (*len > SEAL_KEEP_MAX) {
		*len = 0;
		return NULL;
	}
	uint8_t *b = malloc(*len);
	if (!b) {
		*len = 0;
		return NULL;
	}
	memcpy(b, m->u.seal.signed_p, m->u.seal.signed_n);
	memcpy(b + m->u.seal.signed_n, m->u.seal.sig, JB_WIRE_SIG_LEN);
	return b;
}

int seal_send(struct session *s, struct xfile *f, struct jb_error *err)
{
	struct jb_seal_entry se = {.file = f->index, .block_size = s->block_size, .has_root = true,
				   .first = (uint32_t)f->nblocks}; /* the root alone: no block digests */
	se.e = (struct jb_wire_entry){.type = f->type, .size = f->size, .mode = f->mode, .mtime_ns = f->mtime_ns};
	snprintf(se.e.path, sizeof se.e.path, "%s", f->path);
	int r = jb_strong_root(f->strong, f->nblocks, f->size, s->block_size, se.root);
	if (r < 0)
		return jb_err(err, -r, "%s: cannot compute its sha256t", f->path);
	size_t certlen;
	const uint8_t *cert = jb_signer_cert(s->signer, &certlen);
	struct jb_buf *b = &s->ctl->out;
	size_t mark = jb_wire_seal_begin(b, s->transfer, cert, (uint16_t)certlen, 1);
	jb_wire_put_seal_entry(b, &se);
	size_t n;
	const uint8_t *p = jb_wire_signed_region(b, mark, &n);
	uint8_t sig[JB_WIRE_SIG_LEN];
	if (!p || (r = jb_sign(s->signer, DOMAIN, p, n, sig, err)) < 0) {
		b->len = mark;
		return p ? r : jb_oom(err);
	}
	jb_wire_sign_end(b, mark, sig);
	s->sealed_any = true;
	return 0;
}

static struct xfile *find(struct session *s, uint32_t hint, const char *path)
{
	struct xfile *f = live_file(s, hint);
	if (f && !strcmp(f->path, path))
		return f;
	for (uint32_t i = s->lo; i < s->nfiles; i++)
		if ((f = live_file(s, i)) && !strcmp(f->path, path))
			return f;
	return NULL;
}

static void sealed(struct session *s, struct xfile *f, const uint8_t root[JB_STRONG_LEN], uint8_t *body,
		   size_t len);

int seal_take(struct session *s, const struct jb_msg *m, struct jb_error *err)
{
	if (!s->seal_check)
		return jb_err(err, EBADMSG, "%s: SEAL on a push that is not relayed", s->ctl->peer);
	int r = jb_sig_verify(m->u.seal.cert, m->u.seal.certlen, s->origin_fp, DOMAIN, m->u.seal.signed_p,
			      m->u.seal.signed_n, m->u.seal.sig, err);
	if (r < 0)
		return jb_err(err, EACCES, "%s: a seal that is not %s's (%s): refusing what %s relays", s->ctl->peer,
			      s->origin, err->msg, s->ctl->peer);
	struct jb_wire_iter it = {m->u.seal.entries, m->u.seal.len};
	struct jb_seal_entry *se = malloc(sizeof *se);
	char *p = malloc(JB_PATH_MAX);
	if (!se || !p) {
		free(se);
		free(p);
		return jb_oom(err);
	}
	for (uint32_t k = 0; k < m->u.seal.count && r == 0; k++) {
		jb_wire_seal_next(&it, se); /* validated by the decoder */
		if (se->e.type != JB_ENTRY_FILE || !se->has_root)
			continue;
		if (se->block_size != s->block_size) {
			r = jb_err(err, EBADMSG, "%s: seal of %s for blocks of %u bytes, not %u", s->ctl->peer, se->e.path,
				   se->block_size, s->block_size);
			break;
		}
		if (manifest_placed(s, se->e.path, p, JB_PATH_MAX) < 0)
			continue; /* not a path of this push */
		struct xfile *f = find(s, se->file, p);
		if (f) {
			if (f->size == se->e.size && f->mtime_ns == se->e.mtime_ns && !f->sealed) {
				size_t len;
				uint8_t *body = seal_copy(m, &len);
				sealed(s, f, se->root, body, len);
			}
			continue;
		}
		/* its entry is still on its way (a relay passes seals on as
		 * they come): kept, at most a window's worth */
		if (s->nseals >= 2 * (size_t)WINDOW) {
			r = jb_err(err, E2BIG, "%s: more than %u seals of entries not sent", s->ctl->peer, 2 * WINDOW);
			break;
		}
		if (s->nseals == s->capseals) {
			size_t nc = s->capseals ? s->capseals * 2 : 16;
			struct seal_wait *nw = realloc(s->seals, nc * sizeof *nw);
			if (!nw) {
				r = jb_oom(err);
				break;
			}
			s->seals = nw;
			s->capseals = nc;
		}
		struct seal_wait *w = &s->seals[s->nseals];
		if (!(w->path = strdup(p))) {
			r = jb_oom(err);
			break;
		}
		memcpy(w->root, se->root, JB_STRONG_LEN);
		w->body = seal_copy(m, &w->len);
		s->nseals++;
	}
	free(se);
	free(p);
	return r;
}

void seal_match(struct session *s, struct xfile *f)
{
	for (size_t i = 0; i < s->nseals; i++)
		if (!strcmp(s->seals[i].path, f->path)) {
			struct seal_wait w = s->seals[i];
			free(w.path);
			s->seals[i] = s->seals[--s->nseals];
			sealed(s, f, w.root, w.body, w.len);
			return;
		}
}

void seal_free(struct session *s)
{
	for (size_t i = 0; i < s->nseals; i++) {
		free(s->seals[i].path);
		free(s->seals[i].body);
	}
	free(s->seals);
	s->seals = NULL;
	s->nseals = s->capseals = 0;
	jb_signer_free(s->signer);
	s->signer = NULL;
}

/* finalize() waits for this (receiver.c): the file goes on once sealed. */
void receiver_sealed(struct session *s, struct xfile *f);
static void sealed(struct session *s, struct xfile *f, const uint8_t root[JB_STRONG_LEN], uint8_t *body,
		   size_t len)
{
	if (f->sealed) {
		free(body);
		return;
	}
	memcpy(f->seal_root, root, JB_STRONG_LEN);
	free(f->seal_body);
	f->seal_body = body;
	f->seal_len = len;
	f->sealed = true;
	receiver_sealed(s, f);
}

int seal_verify(const struct session *s, const struct xfile *f)
{
	uint8_t root[JB_STRONG_LEN];
	if (!f->sealed || !f->strong || jb_strong_root(f->strong, f->nblocks, f->size, s->block_size, root) < 0)
		return -EKEYREJECTED;
	return memcmp(root, f->seal_root, JB_STRONG_LEN) ? -EKEYREJECTED : 0;
}

int jb_seal_check_file(const uint8_t *seal, size_t len, const uint8_t fp[32], const char *path, uint64_t size,
		       int64_t mtime_ns, struct jb_seal_check *out, struct jb_error *err)
{
	*out = (struct jb_seal_check){0};
	if (!seal || !len || len > SEAL_KEEP_MAX)
		return jb_err(err, EBADMSG, "no seal kept for it");
	uint8_t *frame = malloc(len + 1);
	struct jb_msg *m = malloc(sizeof *m);
	struct jb_seal_entry *se = malloc(sizeof *se);
	int r = 0;
	if (!frame || !m || !se) {
		r = jb_oom(err);
		goto out;
	}
	frame[0] = JB_MSG_SEAL;
	memcpy(frame + 1, seal, len);
	if (jb_wire_decode(frame, len + 1, m) < 0 || m->type != JB_MSG_SEAL) {
		r = jb_err(err, EBADMSG, "the seal kept for it is not one");
		goto out;
	}
	struct jb_error e = {0};
	out->signature_ok = jb_sig_verify(m->u.seal.cert, m->u.seal.certlen, fp, DOMAIN, m->u.seal.signed_p,
					  m->u.seal.signed_n, m->u.seal.sig, &e) == 0;
	/* the file it seals: a regular file with its root, of this size */
	struct jb_wire_iter it = {m->u.seal.entries, m->u.seal.len};
	bool found = false;
	for (uint32_t k = 0; k < m->u.seal.count && !found; k++)
		if (jb_wire_seal_next(&it, se) == 0 && se->e.type == JB_ENTRY_FILE && se->has_root &&
		    se->e.size == size)
			found = true;
	if (!found) {
		r = jb_err(err, EKEYREJECTED, "its seal is for no file of %llu bytes", (unsigned long long)size);
		goto out;
	}
	snprintf(out->path, sizeof out->path, "%s", se->e.path);
	memcpy(out->sealed, "sha256t:", 8);
	jb_hex(se->root, JB_STRONG_LEN, out->sealed + 8);
	if (!out->signature_ok) {
		r = jb_err(err, EKEYREJECTED, "its seal is not signed by the origin's pinned key: %s", e.msg);
		goto out;
	}
	if (se->e.mtime_ns != mtime_ns) {
		r = jb_err(err, ESTALE, "it is not the file the origin sealed (another modification time)");
		goto out;
	}
	struct stat st;
	if (stat(path, &st) < 0) {
		r = jb_err(err, errno, "%s", strerror(errno));
		goto out;
	}
	if ((uint64_t)st.st_size != size || (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != mtime_ns) {
		r = jb_err(err, ESTALE, "the file changed since it arrived (size or modification time)");
		goto out;
	}
	if ((r = jb_file_strong(path, se->block_size, out->now, err)) < 0)
		goto out;
	out->content_ok = !strcmp(out->now, out->sealed);
	if (!out->content_ok)
		r = jb_err(err, EKEYREJECTED, "its bytes (%s) are not the ones the origin sealed (%s)", out->now,
			   out->sealed);
out:
	free(frame);
	free(m);
	free(se);
	return r;
}
