/* Custody receipts (docs/PROTOCOL.md, RECEIPT): each hop of a relayed push
 * that holds every entry durably (a relay in staging, the destination
 * committed) signs a RECEIPT with its site key and sends it to the hop
 * before; a relay passes the receipts of the hops after it back as they
 * came.  What a receipt names is a SHA-256 both ends compute alike: the
 * entries in manifest order, each its index, type, size and XXH3 tree root,
 * folded in as it is held (receiver) or hashed (sender).  The origin checks
 * each receipt's signature against the fingerprint it pins for the hop and
 * its content against its own fold; with --until custody its send ends once
 * the first relay has signed for everything, and the relay delivers alone.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "xfer-internal.h"

#define DOMAIN "jumbo receipt 1"
#define TAG "jumbo custody 1\n"

int custody_start(struct session *s)
{
	if (!(s->cust = EVP_MD_CTX_new()) || EVP_DigestInit_ex(s->cust, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(s->cust, TAG, strlen(TAG)) != 1)
		return -ENOMEM;
	return 0;
}

void custody_free(struct session *s)
{
	EVP_MD_CTX_free(s->cust);
	s->cust = NULL;
	jb_signer_free(s->hop_signer);
	s->hop_signer = NULL;
}

/* 1: entry f is held (or hashed) here, fold it; 0: not yet; -1: it failed. */
static int fold_state(const struct session *s, const struct xfile *f)
{
	if (s->sender) {
		if (f->errcode || (f->done && !f->ok))
			return -1;
		return f->type != JB_ENTRY_FILE || f->have_root;
	}
	if (!f->done && !f->held)
		return 0;
	return f->ok ? 1 : -1;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

void custody_fold(struct session *s)
{
	while (s->cust && !s->cust_broken && !s->cust_done && s->cust_lo < s->nfiles) {
		struct xfile *f = slot(s, s->cust_lo);
		int st = fold_state(s, f);
		if (st == 0)
			break;
		if (st < 0) {
			s->cust_broken = true;
			break;
		}
		uint8_t rec[4 + 1 + 8 + JB_DIGEST_LEN] = {0};
		put_be(rec, s->cust_lo, 4);
		rec[4] = f->type;
		put_be(rec + 5, f->size, 8);
		if (f->type == JB_ENTRY_FILE)
			memcpy(rec + 13, f->root, JB_DIGEST_LEN);
		if (EVP_DigestUpdate(s->cust, rec, sizeof rec) != 1)
			s->cust_broken = true;
		s->cust_bytes += f->size;
		s->cust_lo++;
	}
	if (s->cust && !s->cust_broken && !s->cust_done && s->manifest_done && s->cust_lo == s->nfiles) {
		unsigned n = 0;
		if (EVP_DigestFinal_ex(s->cust, s->cust_content, &n) != 1 || n != sizeof s->cust_content)
			s->cust_broken = true;
		else
			s->cust_done = true;
	}
}

int custody_send_if_due(struct session *s, struct jb_error *err)
{
	if (!s->cust || s->receipt_sent || !s->hop_signer)
		return 0;
	custody_fold(s);
	if (!s->cust_done)
		return 0;
	s->receipt_sent = true;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	size_t certlen;
	const uint8_t *cert = jb_signer_cert(s->hop_signer, &certlen);
	struct jb_wire_receipt rc = {.hop = s->hop_name, .time_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec,
				     .files = s->nfiles, .bytes = s->cust_bytes, .final = !s->feed, .cert = cert,
				     .certlen = (uint16_t)certlen};
	memcpy(rc.transfer, s->transfer, sizeof rc.transfer);
	memcpy(rc.content, s->cust_content, sizeof rc.content);
	struct jb_buf *b = &s->ctl->out;
	size_t mark = jb_wire_receipt_begin(b, &rc);
	size_t n;
	const uint8_t *p = jb_wire_signed_region(b, mark, &n);
	uint8_t sig[JB_WIRE_SIG_LEN];
	int r;
	if (!p || (r = jb_sign(s->hop_signer, DOMAIN, p, n, sig, err)) < 0) {
		b->len = mark;
		return p ? r : jb_oom(err);
	}
	jb_wire_sign_end(b, mark, sig);
	if (s->receipts_signed)
		atomic_fetch_add(s->receipts_signed, 1);
	jb_log(JB_LOG_INFO, "%s: %s: receipt signed for %u entries, %llu bytes (%s)", s->ctl->peer, s->origin,
	       s->nfiles, (unsigned long long)s->cust_bytes, s->feed ? "staged here" : "committed here");
	return 0;
}

int custody_take(struct session *s, const struct jb_msg *m, struct jb_error *err)
{
	if (!s->cust)
		return jb_err(err, EBADMSG, "%s: RECEIPT on a push that is not relayed", s->ctl->peer);
	const char *hop = m->u.receipt.hop;
	const struct jb_peer *p = s->pins ? jb_config_peer(s->pins, hop) : NULL;
	struct jb_error e = {0};
	bool verified = p && jb_sig_verify(m->u.receipt.cert, m->u.receipt.certlen, p->fp, DOMAIN, m->u.receipt.signed_p,
					   m->u.receipt.signed_n, m->u.receipt.sig, &e) == 0;
	/* the next hop's own is checked here, always: it is a peer */
	if (!strcmp(hop, s->ctl->peer) && !verified)
		return jb_err(err, EACCES, "%s: a receipt that is not %s's (%s)", s->ctl->peer, hop,
			      p ? e.msg : "no [peer] for it");
	if (s->feed)
		feed_receipt(s->feed, m); /* back to the hop before, as it came */
	custody_fold(s);
	/* (the hops learn the transfer's id from its seals: none for a push
	 * of directories only) */
	bool matches = s->cust_done && !memcmp(m->u.receipt.content, s->cust_content, sizeof s->cust_content) &&
		       (!s->signer || !s->sealed_any || !memcmp(m->u.receipt.transfer, s->transfer, sizeof s->transfer));
	if (s->nrcpt < JB_XFER_MAX_RECEIPTS) {
		struct jb_xfer_receipt *k = &s->rcpt[s->nrcpt++];
		*k = (struct jb_xfer_receipt){.final = m->u.receipt.final, .verified = verified, .matches = matches,
					      .time_ns = m->u.receipt.time_ns, .files = m->u.receipt.files,
					      .bytes = m->u.receipt.bytes};
		snprintf(k->hop, sizeof k->hop, "%s", hop);
	}
	/* the destination's ends the wait: a relay need not pin it */
	if (m->u.receipt.final && matches)
		s->got_final = true;
	if (s->until_custody && !m->u.receipt.final && verified && matches && !strcmp(hop, s->ctl->peer)) {
		s->in_custody = true;
		jb_log(JB_LOG_INFO, "%s: holds all %u entries (%llu bytes) and has signed for them", hop, s->nfiles,
		       (unsigned long long)m->u.receipt.bytes);
	}
	return 0;
}

void custody_result(struct session *s, struct jb_xfer_result *r)
{
	custody_fold(s);
	for (size_t i = 0; i < s->nrcpt && i < JB_XFER_MAX_RECEIPTS; i++)
		r->receipts[i] = s->rcpt[i];
	r->nreceipts = s->nrcpt;
	if (s->in_custody && s->entries_done < s->nfiles) {
		snprintf(r->custody, sizeof r->custody, "%s", s->ctl ? s->ctl->peer : "");
		r->files_ok = s->nfiles; /* held, signed for, on their way */
	}
}
