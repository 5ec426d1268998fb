#include <string.h>

#include "jumbo/wire.h"

/* ---- output ---- */

void jb_buf_u8(struct jb_buf *b, uint8_t v) { jb_buf_put(b, &v, 1); }
void jb_buf_u16(struct jb_buf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	jb_buf_put(b, x, 2);
}
void jb_buf_u32(struct jb_buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	jb_buf_put(b, x, 4);
}
void jb_buf_u64(struct jb_buf *b, uint64_t v)
{
	jb_buf_u32(b, (uint32_t)(v >> 32));
	jb_buf_u32(b, (uint32_t)v);
}
void jb_buf_str(struct jb_buf *b, const char *s)
{
	size_t n = strlen(s);
	if (n > 0xffff)
		n = 0xffff;
	jb_buf_u16(b, (uint16_t)n);
	jb_buf_put(b, s, n);
}

size_t jb_frame_begin(struct jb_buf *b, uint8_t type)
{
	size_t mark = b->len;
	jb_buf_u32(b, 0);
	jb_buf_u8(b, type);
	return mark;
}

void jb_frame_end(struct jb_buf *b, size_t mark)
{
	if (b->oom)
		return;
	uint32_t n = (uint32_t)(b->len - mark - 4);
	b->p[mark] = (uint8_t)(n >> 24);
	b->p[mark + 1] = (uint8_t)(n >> 16);
	b->p[mark + 2] = (uint8_t)(n >> 8);
	b->p[mark + 3] = (uint8_t)n;
}

size_t jb_wire_entry_size(const char *path) { return 1 + 2 + strlen(path) + 8 + 4 + 8; }

void jb_wire_put_entry(struct jb_buf *b, const struct jb_wire_entry *e)
{
	jb_buf_u8(b, e->type);
	jb_buf_str(b, e->path);
	jb_buf_u64(b, e->size);
	jb_buf_u32(b, e->mode);
	jb_buf_u64(b, (uint64_t)e->mtime_ns);
}

/* SEAL and RECEIPT: the frame begun, the fields before the entries (or the
 * whole receipt but its signature) written. */
size_t jb_wire_seal_begin(struct jb_buf *b, const uint8_t transfer[16], const uint8_t *cert, uint16_t certlen,
			  uint32_t count)
{
	size_t mark = jb_frame_begin(b, JB_MSG_SEAL);
	jb_buf_put(b, transfer, 16);
	jb_buf_u16(b, certlen);
	if (certlen)
		jb_buf_put(b, cert, certlen);
	jb_buf_u32(b, count);
	return mark;
}

void jb_wire_put_seal_entry(struct jb_buf *b, const struct jb_seal_entry *se)
{
	jb_buf_u32(b, se->file);
	jb_wire_put_entry(b, &se->e);
	jb_buf_u32(b, se->block_size);
	jb_buf_u32(b, se->first);
	jb_buf_u32(b, se->n);
	if (se->n)
		jb_buf_put(b, se->digests, (size_t)se->n * JB_STRONG_LEN);
	jb_buf_u8(b, se->has_root);
	if (se->has_root)
		jb_buf_put(b, se->root, JB_STRONG_LEN);
}

size_t jb_wire_receipt_begin(struct jb_buf *b, const struct jb_wire_receipt *r)
{
	size_t mark = jb_frame_begin(b, JB_MSG_RECEIPT);
	jb_buf_put(b, r->transfer, 16);
	jb_buf_str(b, r->hop);
	jb_buf_u64(b, (uint64_t)r->time_ns);
	jb_buf_u32(b, r->files);
	jb_buf_u64(b, r->bytes);
	jb_buf_put(b, r->content, JB_STRONG_LEN);
	jb_buf_u8(b, r->final);
	jb_buf_u16(b, r->certlen);
	if (r->certlen)
		jb_buf_put(b, r->cert, r->certlen);
	return mark;
}

const uint8_t *jb_wire_signed_region(const struct jb_buf *b, size_t mark, size_t *len)
{
	*len = b->oom || b->len < mark + 5 ? 0 : b->len - mark - 5;
	return b->oom ? NULL : b->p + mark + 5;
}

void jb_wire_sign_end(struct jb_buf *b, size_t mark, const uint8_t sig[JB_WIRE_SIG_LEN])
{
	jb_buf_put(b, sig, JB_WIRE_SIG_LEN);
	jb_frame_end(b, mark);
}

/* ---- input ---- */

struct rd {
	const uint8_t *p;
	size_t n;
	bool bad;
};

static const uint8_t *take(struct rd *r, size_t n)
{
	if (r->bad || r->n < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->n -= n;
	return p;
}
static uint8_t g8(struct rd *r)
{
	const uint8_t *p = take(r, 1);
	return p ? p[0] : 0;
}
static uint16_t g16(struct rd *r)
{
	const uint8_t *p = take(r, 2);
	return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}
static uint32_t g32(struct rd *r)
{
	const uint8_t *p = take(r, 4);
	return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}
static uint64_t g64(struct rd *r)
{
	uint64_t hi = g32(r);
	return hi << 32 | g32(r);
}
static void gbytes(struct rd *r, void *out, size_t n)
{
	const uint8_t *p = take(r, n);
	if (p)
		memcpy(out, p, n);
}
/* A string of at most max bytes, no NUL inside, copied NUL-terminated. */
static void gstr(struct rd *r, char *out, size_t max)
{
	uint16_t n = g16(r);
	const uint8_t *p = take(r, n);
	if (!p || n > max || memchr(p, 0, n)) {
		r->bad = true;
		out[0] = 0;
		return;
	}
	memcpy(out, p, n);
	out[n] = 0;
}

int jb_wire_entry_next(struct jb_wire_iter *it, struct jb_wire_entry *e)
{
	struct rd r = {it->p, it->n, false};
	e->type = g8(&r);
	gstr(&r, e->path, JB_PATH_MAX - 1);
	e->size = g64(&r);
	e->mode = g32(&r);
	e->mtime_ns = (int64_t)g64(&r);
	if (r.bad || (e->type != JB_ENTRY_FILE && e->type != JB_ENTRY_DIR) || !e->path[0] ||
	    (e->type == JB_ENTRY_DIR && e->size) || (e->mode & ~07777u))
		return -EBADMSG;
	it->p = r.p;
	it->n = r.n;
	return 0;
}

int jb_wire_seal_next(struct jb_wire_iter *it, struct jb_seal_entry *se)
{
	struct rd r = {it->p, it->n, false};
	se->file = g32(&r);
	struct jb_wire_iter ei = {r.p, r.n};
	if (r.bad || jb_wire_entry_next(&ei, &se->e) < 0)
		return -EBADMSG;
	r.p = ei.p;
	r.n = ei.n;
	se->block_size = g32(&r);
	se->first = g32(&r);
	se->n = g32(&r);
	if (r.bad || se->block_size < JB_WIRE_MIN_BLOCK || se->block_size > JB_WIRE_MAX_BLOCK ||
	    se->n > JB_SEAL_MAX_BLOCKS)
		return -EBADMSG;
	uint64_t nblocks = se->e.type == JB_ENTRY_FILE ? se->e.size / se->block_size + !!(se->e.size % se->block_size) : 0;
	se->digests = take(&r, (size_t)se->n * JB_STRONG_LEN);
	uint8_t hr = g8(&r);
	se->has_root = hr == 1;
	if (se->has_root)
		gbytes(&r, se->root, JB_STRONG_LEN);
	/* the digests of blocks the file has, the root with the last of them;
	 * a directory has neither */
	if (r.bad || hr > 1 || se->first > nblocks || se->n > nblocks - se->first ||
	    (se->has_root && se->first + se->n != nblocks) || (se->e.type == JB_ENTRY_DIR && se->has_root))
		return -EBADMSG;
	it->p = r.p;
	it->n = r.n;
	return 0;
}

void jb_wire_need_range(const struct jb_msg *m, uint32_t i, uint64_t *first, uint64_t *count)
{
	struct rd r = {m->u.need.ranges + (size_t)i * 16, 16, false};
	*first = g64(&r);
	*count = g64(&r);
}

int jb_wire_decode(const uint8_t *body, size_t len, struct jb_msg *m)
{
	if (len > JB_WIRE_MAX_FRAME)
		return -E2BIG;
	struct rd r = {body, len, false};
	memset(m, 0, offsetof(struct jb_msg, u) + JB_MAX(sizeof(m->u.file_done), sizeof(m->u.file_abort)));
	m->type = g8(&r);
	switch (m->type) {
	case JB_MSG_HELLO:
		if (g32(&r) != JB_WIRE_MAGIC)
			return -EBADMSG;
		m->u.hello.version = g16(&r);
		m->u.hello.op = g8(&r);
		m->u.hello.flags = g8(&r);
		m->u.hello.streams = g16(&r);
		m->u.hello.block_size = g32(&r);
		m->u.hello.rate_bps = g64(&r);
		gstr(&r, m->u.hello.path, JB_PATH_MAX - 1);
		gstr(&r, m->u.hello.name, JB_WIRE_MAX_NAME);
		if (m->u.hello.op < JB_OP_PUSH || m->u.hello.op > JB_OP_LIST ||
		    (m->u.hello.flags & ~JB_HELLO_ALL))
			return -EBADMSG;
		m->u.hello.nhops = 0;
		m->u.hello.origin[0] = 0;
		m->u.hello.route_cc[0] = 0;
		if (m->u.hello.flags & JB_HELLO_ROUTE) {
			if (m->u.hello.op != JB_OP_PUSH)
				return -EBADMSG;
			gstr(&r, m->u.hello.origin, JB_WIRE_MAX_NAME);
			m->u.hello.route_flags = g8(&r);
			m->u.hello.nhops = g8(&r);
			if (r.bad || !m->u.hello.origin[0] || m->u.hello.nhops > JB_WIRE_MAX_HOPS ||
			    (m->u.hello.route_flags & ~(JB_ROUTE_CUSTODY | JB_ROUTE_CC)))
				return -EBADMSG;
			for (unsigned i = 0; i < m->u.hello.nhops; i++) {
				gstr(&r, m->u.hello.hops[i], JB_WIRE_MAX_NAME);
				if (!m->u.hello.hops[i][0])
					return -EBADMSG;
			}
			if (m->u.hello.route_flags & JB_ROUTE_CC) {
				gstr(&r, m->u.hello.route_cc, JB_WIRE_MAX_CC);
				const char *cc = m->u.hello.route_cc;
				if (r.bad || !jb_wire_cc_ok(cc))
					return -EBADMSG;
			}
		}
		break;
	case JB_MSG_WELCOME:
		m->u.welcome.version = g16(&r);
		m->u.welcome.flags = g8(&r);
		m->u.welcome.streams = g16(&r);
		m->u.welcome.block_size = g32(&r);
		gbytes(&r, m->u.welcome.session, 16);
		gbytes(&r, m->u.welcome.secret, 32);
		gstr(&r, m->u.welcome.name, JB_WIRE_MAX_NAME);
		if (!r.bad && (m->u.welcome.streams < 1 || m->u.welcome.streams > JB_WIRE_MAX_STREAMS ||
			       m->u.welcome.block_size < JB_WIRE_MIN_BLOCK ||
			       m->u.welcome.block_size > JB_WIRE_MAX_BLOCK))
			return -EBADMSG;
		break;
	case JB_MSG_ERROR:
		m->u.error.code = g16(&r);
		gstr(&r, m->u.error.text, JB_WIRE_MAX_MSG);
		break;
	case JB_MSG_FILES: {
		m->u.files.first = g32(&r);
		m->u.files.count = g32(&r);
		if (r.bad || m->u.files.count > JB_WIRE_WINDOW || m->u.files.first > UINT32_MAX - m->u.files.count)
			return -EBADMSG;
		m->u.files.entries = r.p;
		m->u.files.len = r.n;
		struct jb_wire_iter it = {r.p, r.n};
		struct jb_wire_entry e;
		for (uint32_t i = 0; i < m->u.files.count; i++)
			if (jb_wire_entry_next(&it, &e) < 0)
				return -EBADMSG;
		r.p = it.p;
		r.n = it.n;
		break;
	}
	case JB_MSG_FILES_END:
		m->u.files_end.count = g32(&r);
		m->u.files_end.bytes = g64(&r);
		break;
	case JB_MSG_NEED:
	case JB_MSG_NEED_AGAIN:
	case JB_MSG_HELD:
		m->u.need.file = g32(&r);
		m->u.need.nranges = g32(&r);
		if (r.bad || m->u.need.nranges > r.n / 16)
			return -EBADMSG;
		m->u.need.ranges = take(&r, (size_t)m->u.need.nranges * 16);
		break;
	case JB_MSG_NEED_END:
	case JB_MSG_BYE:
		break;
	case JB_MSG_FILE_END:
		m->u.file_end.file = g32(&r);
		gbytes(&r, m->u.file_end.digest, JB_DIGEST_LEN);
		break;
	case JB_MSG_FILE_DONE:
		m->u.file_done.file = g32(&r);
		m->u.file_done.status = g16(&r);
		gbytes(&r, m->u.file_done.digest, JB_DIGEST_LEN);
		gstr(&r, m->u.file_done.text, JB_WIRE_MAX_MSG);
		break;
	case JB_MSG_RESEND:
		m->u.resend.file = g32(&r);
		m->u.resend.block = g64(&r);
		break;
	case JB_MSG_FILE_ABORT:
		m->u.file_abort.file = g32(&r);
		m->u.file_abort.code = g16(&r);
		gstr(&r, m->u.file_abort.text, JB_WIRE_MAX_MSG);
		if (!r.bad && m->u.file_abort.code == 0)
			return -EBADMSG;
		break;
	case JB_MSG_SEAL: {
		const uint8_t *start = r.p;
		gbytes(&r, m->u.seal.transfer, 16);
		m->u.seal.certlen = g16(&r);
		m->u.seal.cert = take(&r, m->u.seal.certlen);
		m->u.seal.count = g32(&r);
		if (r.bad || !m->u.seal.certlen || m->u.seal.certlen > JB_WIRE_CERT_MAX || !m->u.seal.count ||
		    m->u.seal.count > JB_SEAL_MAX_FILES)
			return -EBADMSG;
		m->u.seal.entries = r.p;
		struct jb_wire_iter it = {r.p, r.n};
		struct jb_seal_entry se;
		uint64_t blocks = 0;
		for (uint32_t i = 0; i < m->u.seal.count; i++) {
			if (jb_wire_seal_next(&it, &se) < 0 || (blocks += se.n) > JB_SEAL_MAX_BLOCKS)
				return -EBADMSG;
		}
		m->u.seal.len = (size_t)(it.p - r.p);
		r.p = it.p;
		r.n = it.n;
		m->u.seal.signed_p = start;
		m->u.seal.signed_n = (size_t)(r.p - start);
		m->u.seal.sig = take(&r, JB_WIRE_SIG_LEN);
		break;
	}
	case JB_MSG_RECEIPT: {
		const uint8_t *start = r.p;
		gbytes(&r, m->u.receipt.transfer, 16);
		gstr(&r, m->u.receipt.hop, JB_WIRE_MAX_NAME);
		m->u.receipt.time_ns = (int64_t)g64(&r);
		m->u.receipt.files = g32(&r);
		m->u.receipt.bytes = g64(&r);
		gbytes(&r, m->u.receipt.content, JB_STRONG_LEN);
		m->u.receipt.final = g8(&r);
		m->u.receipt.certlen = g16(&r);
		m->u.receipt.cert = take(&r, m->u.receipt.certlen);
		if (r.bad || !m->u.receipt.hop[0] || m->u.receipt.final > 1 || !m->u.receipt.certlen ||
		    m->u.receipt.certlen > JB_WIRE_CERT_MAX)
			return -EBADMSG;
		m->u.receipt.signed_p = start;
		m->u.receipt.signed_n = (size_t)(r.p - start);
		m->u.receipt.sig = take(&r, JB_WIRE_SIG_LEN);
		break;
	}
	default:
		return -EBADMSG;
	}
	if (r.bad || r.n != 0)
		return -EBADMSG;
	return 0;
}

/* ---- data streams ---- */

static void p32(uint8_t *o, uint32_t v)
{
	o[0] = (uint8_t)(v >> 24);
	o[1] = (uint8_t)(v >> 16);
	o[2] = (uint8_t)(v >> 8);
	o[3] = (uint8_t)v;
}

void jb_wire_join_encode(const struct jb_join *j, uint8_t out[JB_JOIN_LEN])
{
	p32(out, JB_JOIN_MAGIC);
	out[4] = (uint8_t)(j->version >> 8);
	out[5] = (uint8_t)j->version;
	memcpy(out + 6, j->session, 16);
	out[22] = (uint8_t)(j->index >> 8);
	out[23] = (uint8_t)j->index;
	memcpy(out + 24, j->token, 32);
}

int jb_wire_join_decode(const uint8_t in[JB_JOIN_LEN], struct jb_join *ret)
{
	struct rd r = {in, JB_JOIN_LEN, false};
	if (g32(&r) != JB_JOIN_MAGIC)
		return -EBADMSG;
	ret->version = g16(&r);
	gbytes(&r, ret->session, 16);
	ret->index = g16(&r);
	gbytes(&r, ret->token, 32);
	return ret->index < JB_WIRE_MAX_STREAMS ? 0 : -EBADMSG;
}

void jb_wire_joined_encode(uint16_t status, uint8_t out[JB_JOINED_LEN])
{
	p32(out, JB_JOINED_MAGIC);
	out[4] = (uint8_t)(status >> 8);
	out[5] = (uint8_t)status;
	out[6] = out[7] = 0;
}

int jb_wire_joined_decode(const uint8_t in[JB_JOINED_LEN])
{
	struct rd r = {in, JB_JOINED_LEN, false};
	if (g32(&r) != JB_JOINED_MAGIC)
		return -EBADMSG;
	return g16(&r) ? -EACCES : 0;
}

void jb_wire_block_encode(const struct jb_block_hdr *h, uint8_t out[JB_BLOCK_HDR_LEN])
{
	p32(out, JB_BLOCK_MAGIC);
	p32(out + 4, h->file);
	p32(out + 8, (uint32_t)(h->block >> 32));
	p32(out + 12, (uint32_t)h->block);
	p32(out + 16, h->len);
	p32(out + 20, h->flags);
	memcpy(out + 24, h->digest, JB_DIGEST_LEN);
}

int jb_wire_block_decode(const uint8_t in[JB_BLOCK_HDR_LEN], struct jb_block_hdr *ret)
{
	struct rd r = {in, JB_BLOCK_HDR_LEN, false};
	if (g32(&r) != JB_BLOCK_MAGIC)
		return -EBADMSG;
	ret->file = g32(&r);
	ret->block = g64(&r);
	ret->len = g32(&r);
	ret->flags = g32(&r);
	gbytes(&r, ret->digest, JB_DIGEST_LEN);
	if (ret->len == 0 || ret->len > JB_WIRE_MAX_BLOCK || ret->flags)
		return -EBADMSG;
	return 0;
}

bool jb_wire_cc_ok(const char *cc)
{
	size_t n = strlen(cc);
	return n && n <= JB_WIRE_MAX_CC && strspn(cc, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}
