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
#include <string.h>

#include "xfer-internal.h"

#define DOMAIN "jumbo seal 1"

struct seal_wait {
	char *path;          /* as placed here */
	uint8_t root[JB_STRONG_LEN];
};

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

static void sealed(struct session *s, struct xfile *f, const uint8_t root[JB_STRONG_LEN]);

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
			if (f->size == se->e.size && f->mtime_ns == se->e.mtime_ns)
				sealed(s, f, se->root);
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
			uint8_t root[JB_STRONG_LEN];
			memcpy(root, s->seals[i].root, JB_STRONG_LEN);
			free(s->seals[i].path);
			s->seals[i] = s->seals[--s->nseals];
			sealed(s, f, root);
			return;
		}
}

void seal_free(struct session *s)
{
	for (size_t i = 0; i < s->nseals; i++)
		free(s->seals[i].path);
	free(s->seals);
	s->seals = NULL;
	s->nseals = s->capseals = 0;
	jb_signer_free(s->signer);
	s->signer = NULL;
}

/* finalize() waits for this (receiver.c): the file goes on once sealed. */
void receiver_sealed(struct session *s, struct xfile *f);
static void sealed(struct session *s, struct xfile *f, const uint8_t root[JB_STRONG_LEN])
{
	if (f->sealed)
		return;
	memcpy(f->seal_root, root, JB_STRONG_LEN);
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
