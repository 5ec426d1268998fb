/* Unit tests: every message encodes and decodes; limits are enforced. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jumbo/net.h"
#include "jumbo/wire.h"
#include "tap.h"

static int decode_frame(struct jb_buf *b, struct jb_msg *m)
{
	/* skip the 4-byte length, check it matches */
	uint32_t n = (uint32_t)b->p[0] << 24 | (uint32_t)b->p[1] << 16 | (uint32_t)b->p[2] << 8 | b->p[3];
	if (n + 4 != b->len)
		return -999;
	return jb_wire_decode(b->p + 4, n, m);
}

/* A SEAL of n entries built as given: a file of 3 blocks (64 KiB) in two
 * pieces, then a directory; signature a given one. */
static size_t seal_build(struct jb_buf *b, const uint8_t *cert, uint16_t certlen, const struct jb_seal_entry *v, int n)
{
	static const uint8_t transfer[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	size_t k = jb_wire_seal_begin(b, transfer, cert, certlen, (uint32_t)n);
	for (int i = 0; i < n; i++)
		jb_wire_put_seal_entry(b, &v[i]);
	return k;
}


/* A HELLO's frame up to and including the sender's name: its frame mark. */
static size_t hello_head(struct jb_buf *b, uint16_t version, uint8_t op, uint8_t flags, uint16_t streams, uint64_t rate,
			 const char *path, const char *name)
{
	size_t k = jb_frame_begin(b, JB_MSG_HELLO);
	jb_buf_u32(b, JB_WIRE_MAGIC);
	jb_buf_u16(b, version);
	jb_buf_u8(b, op);
	jb_buf_u8(b, flags);
	jb_buf_u16(b, streams);
	jb_buf_u32(b, 8u << 20);
	jb_buf_u64(b, rate);
	jb_buf_str(b, path);
	jb_buf_str(b, name);
	return k;
}
static void test_seal(void)
{
	struct jb_buf b = {.limit = 2u << 20};
	static struct jb_msg m;
	static uint8_t dg[3 * JB_STRONG_LEN], sig[JB_WIRE_SIG_LEN];
	for (size_t i = 0; i < sizeof dg; i++)
		dg[i] = (uint8_t)i;
	memset(sig, 0x5a, sizeof sig);
	struct jb_wire_entry fe = {.type = JB_ENTRY_FILE, .path = "run7/a.h5", .size = 150000, .mode = 0644, .mtime_ns = 7};
	struct jb_wire_entry de = {.type = JB_ENTRY_DIR, .path = "run7", .mode = 0755};
	struct jb_seal_entry v[3] = {
		{.file = 1, .e = fe, .block_size = 65536, .first = 0, .n = 2, .digests = dg},
		{.file = 1, .e = fe, .block_size = 65536, .first = 2, .n = 1, .digests = dg + 64, .has_root = true},
		{.file = 0, .e = de, .block_size = 65536},
	};
	memset(v[1].root, 0xee, JB_STRONG_LEN);
	static const uint8_t fakecert[4] = "CERT";
	size_t k = seal_build(&b, fakecert, 4, v, 3);
	jb_wire_sign_end(&b, k, sig);
	ok(decode_frame(&b, &m) == 0 && m.type == JB_MSG_SEAL && m.u.seal.count == 3, "SEAL decodes");
	ok(m.u.seal.certlen == 4 && !memcmp(m.u.seal.cert, "CERT", 4) && !memcmp(m.u.seal.sig, sig, 64) &&
	   m.u.seal.transfer[15] == 16, "SEAL transfer, certificate and signature");
	ok(m.u.seal.signed_p == b.p + 5 && m.u.seal.signed_n == b.len - 5 - JB_WIRE_SIG_LEN,
	   "it signs everything from the transfer to the last entry");
	struct jb_wire_iter it = {m.u.seal.entries, m.u.seal.len};
	struct jb_seal_entry se;
	ok(jb_wire_seal_next(&it, &se) == 0 && se.file == 1 && se.n == 2 && !se.has_root && !memcmp(se.digests, dg, 64) &&
	   !strcmp(se.e.path, "run7/a.h5") && se.e.size == 150000, "first piece: blocks 0 and 1");
	ok(jb_wire_seal_next(&it, &se) == 0 && se.first == 2 && se.n == 1 && se.has_root && se.root[0] == 0xee,
	   "second piece: block 2 and the file's sha256t");
	ok(jb_wire_seal_next(&it, &se) == 0 && se.e.type == JB_ENTRY_DIR && se.n == 0 && it.n == 0, "the directory");
	/* truncated, trailing */
	ok(jb_wire_decode(b.p + 4, b.len - 5, &m) == -EBADMSG, "a SEAL cut short by a byte refused");
	jb_buf_u8(&b, 0);
	ok(jb_wire_decode(b.p + 4, b.len - 4, &m) == -EBADMSG, "a SEAL with a byte after its signature refused");
	b.len = 0;

	/* what a seal may not say */
	static const struct {
		int entry;
		uint32_t first, n;
		bool root;
		const char *what;
	} bad[] = {
		{0, 0, 4, false, "digests of more blocks than the file has"},
		{0, 3, 1, false, "a first block past the file's end"},
		{0, 0, 2, true, "a root before the last block"},
		{2, 0, 1, false, "a directory with block digests"},
		{2, 0, 0, true, "a directory with a root"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct jb_seal_entry w[3] = {v[0], v[1], v[2]};
		w[bad[i].entry].first = bad[i].first;
		w[bad[i].entry].n = bad[i].n;
		w[bad[i].entry].has_root = bad[i].root;
		static uint8_t many[8 * JB_STRONG_LEN];
		w[bad[i].entry].digests = many;
		k = seal_build(&b, fakecert, 4, w, 3);
		jb_wire_sign_end(&b, k, sig);
		ok(decode_frame(&b, &m) == -EBADMSG, "SEAL refused: %s", bad[i].what);
		b.len = 0;
	}
	k = seal_build(&b, fakecert, 0, v, 3);
	jb_wire_sign_end(&b, k, sig);
	ok(decode_frame(&b, &m) == -EBADMSG, "SEAL refused: no certificate");
	b.len = 0;
	k = seal_build(&b, fakecert, 4, v, 0);
	jb_wire_sign_end(&b, k, sig);
	ok(decode_frame(&b, &m) == -EBADMSG, "SEAL refused: no entries");
	b.len = 0;
	k = seal_build(&b, fakecert, 4, v, 3);
	b.p[b.len - 1] = 2; /* the directory's has_root byte: neither 0 nor 1 */
	jb_wire_sign_end(&b, k, sig);
	ok(decode_frame(&b, &m) == -EBADMSG, "SEAL refused: a has_root that is not 0 or 1");
	b.len = 0;
	/* more block digests than a seal may carry, over several entries */
	struct jb_wire_entry huge = {.type = JB_ENTRY_FILE, .path = "big", .size = 1ull << 40, .mode = 0644};
	uint8_t *lots = calloc(JB_SEAL_MAX_BLOCKS, JB_STRONG_LEN);
	struct jb_seal_entry w2[2] = {{.file = 5, .e = huge, .block_size = 65536, .first = 0, .n = JB_SEAL_MAX_BLOCKS, .digests = lots},
				      {.file = 5, .e = huge, .block_size = 65536, .first = JB_SEAL_MAX_BLOCKS, .n = 1, .digests = lots}};
	k = seal_build(&b, fakecert, 4, w2, 1);
	jb_wire_sign_end(&b, k, sig);
	ok(decode_frame(&b, &m) == 0, "SEAL of %d block digests (512 KiB) decodes", JB_SEAL_MAX_BLOCKS);
	b.len = 0;
	k = seal_build(&b, fakecert, 4, w2, 2);
	jb_wire_sign_end(&b, k, sig);
	ok(decode_frame(&b, &m) == -EBADMSG, "one more in a second entry: refused");
	b.len = 0;
	free(lots);

	/* RECEIPT */
	struct jb_wire_receipt rc = {.hop = "relay-r", .time_ns = 1764000000000000000, .files = 2, .bytes = 150000,
				     .final = 0, .cert = fakecert, .certlen = 4};
	memset(rc.transfer, 7, 16);
	memset(rc.content, 0x44, 32);
	k = jb_wire_receipt_begin(&b, &rc);
	jb_wire_sign_end(&b, k, sig);
	ok(decode_frame(&b, &m) == 0 && m.type == JB_MSG_RECEIPT && m.u.receipt.files == 2 && m.u.receipt.bytes == 150000 &&
	   m.u.receipt.time_ns == 1764000000000000000 && !m.u.receipt.final && m.u.receipt.content[31] == 0x44,
	   "RECEIPT decodes");
	is_str(m.u.receipt.hop, "relay-r", "RECEIPT hop");
	ok(m.u.receipt.signed_n == b.len - 5 - JB_WIRE_SIG_LEN && !memcmp(m.u.receipt.sig, sig, 64), "RECEIPT signed region");
	b.len = 0;
	rc.final = 2;
	k = jb_wire_receipt_begin(&b, &rc);
	jb_wire_sign_end(&b, k, sig);
	ok(decode_frame(&b, &m) == -EBADMSG, "RECEIPT refused: final neither 0 nor 1");
	b.len = 0;
	rc.final = 1;
	rc.hop = "";
	k = jb_wire_receipt_begin(&b, &rc);
	jb_wire_sign_end(&b, k, sig);
	ok(decode_frame(&b, &m) == -EBADMSG, "RECEIPT refused: no hop");
	b.len = 0;

	/* signed for real: a seal by one site's key checks against its pin, and
	 * fails when a relay changes one digest */
	char dir[] = "/tmp/jbseal.XXXXXX";
	ok(mkdtemp(dir) != NULL, "temp dir");
	char id[128];
	snprintf(id, sizeof id, "%s/id", dir);
	uint8_t fp[32];
	struct jb_error err = {0};
	struct jb_signer *sg = NULL;
	ok(jb_identity_generate(id, "alpha", fp, &err) == 0 && jb_signer_open(id, &sg, &err) == 0, "an origin's signer");
	if (sg) {
		size_t cl;
		const uint8_t *cert = jb_signer_cert(sg, &cl);
		k = seal_build(&b, cert, (uint16_t)cl, v, 3);
		size_t rn;
		const uint8_t *reg = jb_wire_signed_region(&b, k, &rn);
		ok(jb_sign(sg, "jumbo seal 1", reg, rn, sig, &err) == 0, "the origin signs its seal");
		jb_wire_sign_end(&b, k, sig);
		ok(decode_frame(&b, &m) == 0 &&
		   jb_sig_verify(m.u.seal.cert, m.u.seal.certlen, fp, "jumbo seal 1", m.u.seal.signed_p, m.u.seal.signed_n,
				 m.u.seal.sig, &err) == 0, "the destination checks it against the origin's pin");
		uint8_t *d2 = memmem(b.p, b.len, dg + 64, JB_STRONG_LEN); /* block 2's digest */
		ok(d2 != NULL, "block 2's digest is in the frame");
		if (d2)
			d2[5] ^= 1;
		ok(decode_frame(&b, &m) == 0 &&
		   jb_sig_verify(m.u.seal.cert, m.u.seal.certlen, fp, "jumbo seal 1", m.u.seal.signed_p, m.u.seal.signed_n,
				 m.u.seal.sig, &err) == -EPERM, "a digest a relay changed: the seal no longer checks");
		jb_signer_free(sg);
		b.len = 0;
	}
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	ok(system(cmd) == 0, "cleanup");
	jb_buf_free(&b);
}

int main(void)
{
	test_seal();
	struct jb_buf b = {.limit = 1u << 20};
	static struct jb_msg m;

	size_t k = hello_head(&b, 1, JB_OP_PUSH, JB_HELLO_ENCRYPT, 8, 10000000000ull, "run7/a.h5", "kisti");
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == 0, "HELLO decodes");
	ok(m.u.hello.op == JB_OP_PUSH && m.u.hello.streams == 8 && m.u.hello.rate_bps == 10000000000ull,
	   "HELLO fields");
	is_str(m.u.hello.path, "run7/a.h5", "HELLO path");
	is_str(m.u.hello.name, "kisti", "HELLO name");

	/* truncated by one byte */
	ok(jb_wire_decode(b.p + 4, b.len - 5, &m) == -EBADMSG, "truncated HELLO refused");
	/* trailing garbage */
	jb_buf_u8(&b, 0);
	ok(jb_wire_decode(b.p + 4, b.len - 4, &m) == -EBADMSG, "HELLO with trailing bytes refused");
	b.len = 0;

	/* a routed PUSH: origin, flags, the hops still to go */
	k = hello_head(&b, 2, JB_OP_PUSH, JB_HELLO_ROUTE, 4, 0, "in/x", "alpha");
	jb_buf_str(&b, "alpha");
	jb_buf_u8(&b, JB_ROUTE_CUSTODY);
	jb_buf_u8(&b, 2);
	jb_buf_str(&b, "relay2");
	jb_buf_str(&b, "beta");
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == 0 && m.u.hello.nhops == 2 && m.u.hello.route_flags == JB_ROUTE_CUSTODY,
	   "routed HELLO decodes");
	is_str(m.u.hello.origin, "alpha", "route origin");
	is_str(m.u.hello.hops[1], "beta", "route destination last");
	b.p[b.len - 15] = 5; /* five hops: more than a route may have */
	ok(decode_frame(&b, &m) == -EBADMSG, "a route of more than JB_WIRE_MAX_HOPS hops refused");
	b.len = 0;
	k = hello_head(&b, 2, JB_OP_PULL, JB_HELLO_ROUTE, 4, 0, "in/x", "alpha");
	jb_buf_str(&b, "alpha");
	jb_buf_u8(&b, 0);
	jb_buf_u8(&b, 0);
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == -EBADMSG, "a route on a PULL refused");
	b.len = 0;
	/* the route's congestion control, after the hops */
	static const struct {
		const char *cc;
		int want;
	} ccs[] = {{"cubic", 0}, {"bbr", 0}, {"", -EBADMSG}, {"CUBIC", -EBADMSG}, {"a b", -EBADMSG},
		   {"sixteen_bytes_xx", -EBADMSG}};
	for (size_t i = 0; i < sizeof ccs / sizeof ccs[0]; i++) {
		k = hello_head(&b, 2, JB_OP_PUSH, JB_HELLO_ROUTE, 4, 0, "in/x", "alpha");
		jb_buf_str(&b, "alpha");
		jb_buf_u8(&b, JB_ROUTE_CC);
		jb_buf_u8(&b, 1);
		jb_buf_str(&b, "beta");
		jb_buf_str(&b, ccs[i].cc);
		jb_frame_end(&b, k);
		int r = decode_frame(&b, &m);
		ok(r == ccs[i].want && (r < 0 || !strcmp(m.u.hello.route_cc, ccs[i].cc)), "route cc '%s': %s", ccs[i].cc,
		   ccs[i].want ? "refused" : "taken");
		b.len = 0;
	}
	k = hello_head(&b, 2, JB_OP_PUSH, JB_HELLO_ROUTE, 4, 0, "in/x", "alpha");
	jb_buf_str(&b, "alpha");
	jb_buf_u8(&b, 4); /* a flag no one has defined */
	jb_buf_u8(&b, 0);
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == -EBADMSG, "an unknown route flag refused");
	b.len = 0;

	k = jb_frame_begin(&b, JB_MSG_HELLO);
	jb_buf_u32(&b, 0xdeadbeef);
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == -EBADMSG, "HELLO with a wrong magic refused");
	b.len = 0;

	/* FILES with two entries, then a bad one */
	k = jb_frame_begin(&b, JB_MSG_FILES);
	jb_buf_u32(&b, 0);
	jb_buf_u32(&b, 2);
	struct jb_wire_entry e = {.type = JB_ENTRY_DIR, .path = "d", .mode = 0755};
	jb_wire_put_entry(&b, &e);
	e = (struct jb_wire_entry){.type = JB_ENTRY_FILE, .path = "d/x", .size = 1ull << 40, .mode = 0644,
				   .mtime_ns = 123456789};
	jb_wire_put_entry(&b, &e);
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == 0 && m.u.files.count == 2, "FILES decodes");
	struct jb_wire_iter it = {m.u.files.entries, m.u.files.len};
	struct jb_wire_entry got;
	ok(jb_wire_entry_next(&it, &got) == 0 && got.type == JB_ENTRY_DIR, "first entry is the dir");
	ok(jb_wire_entry_next(&it, &got) == 0 && got.size == 1ull << 40 && got.mtime_ns == 123456789,
	   "second entry fields");
	is_str(got.path, "d/x", "entry path");
	b.len = 0;

	k = jb_frame_begin(&b, JB_MSG_FILES);
	jb_buf_u32(&b, 0);
	jb_buf_u32(&b, 3); /* claims 3, carries 1 */
	jb_wire_put_entry(&b, &e);
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == -EBADMSG, "FILES with fewer entries than announced refused");
	b.len = 0;

	k = jb_frame_begin(&b, JB_MSG_FILES);
	jb_buf_u32(&b, 0);
	jb_buf_u32(&b, 1);
	e.type = JB_ENTRY_DIR; /* a dir with a size */
	jb_wire_put_entry(&b, &e);
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == -EBADMSG, "directory entry with a size refused");
	b.len = 0;

	k = jb_frame_begin(&b, JB_MSG_FILES);
	jb_buf_u32(&b, 0);
	jb_buf_u32(&b, 1);
	jb_buf_u8(&b, JB_ENTRY_FILE);
	jb_buf_u16(&b, 3);
	jb_buf_put(&b, "a\0b", 3);
	jb_buf_u64(&b, 1);
	jb_buf_u32(&b, 0644);
	jb_buf_u64(&b, 0);
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == -EBADMSG, "path with a NUL byte refused");
	b.len = 0;

	/* NEED */
	k = jb_frame_begin(&b, JB_MSG_NEED);
	jb_buf_u32(&b, 7);
	jb_buf_u32(&b, 2);
	jb_buf_u64(&b, 0);
	jb_buf_u64(&b, 10);
	jb_buf_u64(&b, 20);
	jb_buf_u64(&b, 5);
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == 0 && m.u.need.file == 7 && m.u.need.nranges == 2, "NEED decodes");
	uint64_t first, count;
	jb_wire_need_range(&m, 1, &first, &count);
	ok(first == 20 && count == 5, "NEED second range");
	b.len = 0;
	k = jb_frame_begin(&b, JB_MSG_NEED);
	jb_buf_u32(&b, 7);
	jb_buf_u32(&b, 0x10000000); /* more ranges than bytes */
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == -EBADMSG, "NEED with an impossible range count refused");
	b.len = 0;

	/* NEED_AGAIN has the layout of NEED */
	k = jb_frame_begin(&b, JB_MSG_NEED_AGAIN);
	jb_buf_u32(&b, 9);
	jb_buf_u32(&b, 1);
	jb_buf_u64(&b, 0);
	jb_buf_u64(&b, 3);
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == 0 && m.type == JB_MSG_NEED_AGAIN && m.u.need.file == 9 && m.u.need.nranges == 1,
	   "NEED_AGAIN decodes");
	b.len = 0;
	/* so has HELD */
	k = jb_frame_begin(&b, JB_MSG_HELD);
	jb_buf_u32(&b, 4);
	jb_buf_u32(&b, 1);
	jb_buf_u64(&b, 7);
	jb_buf_u64(&b, 1);
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == 0 && m.type == JB_MSG_HELD && m.u.need.file == 4 && m.u.need.nranges == 1,
	   "HELD decodes");
	b.len--;
	b.p[3]--;
	ok(decode_frame(&b, &m) == -EBADMSG, "a HELD one byte short refused");
	b.len = 0;

	/* FILE_ABORT: a file, an errno (never 0) and a text */
	k = jb_frame_begin(&b, JB_MSG_FILE_ABORT);
	jb_buf_u32(&b, 70000);
	jb_buf_u16(&b, EACCES);
	jb_buf_str(&b, "d0007/f7: cannot open: Permission denied");
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == 0 && m.u.file_abort.file == 70000 && m.u.file_abort.code == EACCES, "FILE_ABORT decodes");
	is_str(m.u.file_abort.text, "d0007/f7: cannot open: Permission denied", "FILE_ABORT text");
	b.len = 0;
	k = jb_frame_begin(&b, JB_MSG_FILE_ABORT);
	jb_buf_u32(&b, 1);
	jb_buf_u16(&b, 0);
	jb_buf_str(&b, "no error");
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == -EBADMSG, "FILE_ABORT with code 0 refused");
	b.len = 0;

	/* the window: indexes past a million are fine, a frame of more
	 * entries than the window is not */
	k = jb_frame_begin(&b, JB_MSG_FILES);
	jb_buf_u32(&b, 4000000000u);
	jb_buf_u32(&b, 1);
	e = (struct jb_wire_entry){.type = JB_ENTRY_FILE, .path = "x", .size = 1, .mode = 0644};
	jb_wire_put_entry(&b, &e);
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == 0 && m.u.files.first == 4000000000u, "FILES far into a large manifest decodes");
	b.len = 0;
	k = jb_frame_begin(&b, JB_MSG_FILES);
	jb_buf_u32(&b, 0xffffffffu);
	jb_buf_u32(&b, 1);
	jb_wire_put_entry(&b, &e);
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == -EBADMSG, "FILES past the last index refused");
	b.len = 0;
	k = jb_frame_begin(&b, JB_MSG_FILES);
	jb_buf_u32(&b, 0);
	jb_buf_u32(&b, JB_WIRE_WINDOW + 1);
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == -EBADMSG, "FILES of more entries than the window refused");
	b.len = 0;
	k = jb_frame_begin(&b, JB_MSG_FILES_END);
	jb_buf_u32(&b, 3000000);
	jb_buf_u64(&b, 3000000ull << 10);
	jb_frame_end(&b, k);
	ok(decode_frame(&b, &m) == 0 && m.u.files_end.count == 3000000, "FILES_END of three million entries decodes");
	b.len = 0;

	/* oversized */
	uint8_t *big = calloc(1, JB_WIRE_MAX_FRAME + 1);
	big[0] = JB_MSG_BYE;
	ok(jb_wire_decode(big, JB_WIRE_MAX_FRAME + 1, &m) == -E2BIG, "oversized frame refused");
	free(big);
	uint8_t unknown = 200;
	ok(jb_wire_decode(&unknown, 1, &m) == -EBADMSG, "unknown message type refused");

	/* data stream headers */
	struct jb_join j = {.version = JB_WIRE_VERSION, .index = 3}, j2;
	memset(j.session, 0xab, 16);
	memset(j.token, 0xcd, 32);
	uint8_t jraw[JB_JOIN_LEN];
	jb_wire_join_encode(&j, jraw);
	ok(jb_wire_join_decode(jraw, &j2) == 0 && j2.index == 3 && !memcmp(j2.token, j.token, 32), "JOIN round trip");
	jraw[23] = 200; /* stream index 200 > 64 */
	ok(jb_wire_join_decode(jraw, &j2) < 0, "JOIN with a stream index over the limit refused");
	uint8_t ack[JB_JOINED_LEN];
	jb_wire_joined_encode(0, ack);
	ok(!memcmp(ack, "JMBK\0\0\0\0", 8) && jb_wire_joined_decode(ack) == 0, "JOINED 0 is the documented 8 bytes");
	jb_wire_joined_encode(1, ack);
	ok(jb_wire_joined_decode(ack) == -EACCES, "JOINED 1 is a refusal");
	ack[0] = 'X';
	ok(jb_wire_joined_decode(ack) == -EBADMSG, "a JOINED with a wrong magic is not one");
	struct jb_block_hdr h = {.file = 9, .block = 1ull << 33, .len = 8u << 20}, h2;
	memset(h.digest, 0x11, 16);
	uint8_t hraw[JB_BLOCK_HDR_LEN];
	jb_wire_block_encode(&h, hraw);
	ok(jb_wire_block_decode(hraw, &h2) == 0 && h2.block == 1ull << 33 && h2.len == 8u << 20, "BLOCK round trip");
	h.len = JB_WIRE_MAX_BLOCK + 1;
	jb_wire_block_encode(&h, hraw);
	ok(jb_wire_block_decode(hraw, &h2) < 0, "BLOCK longer than the limit refused");
	h.len = 0;
	jb_wire_block_encode(&h, hraw);
	ok(jb_wire_block_decode(hraw, &h2) < 0, "empty BLOCK refused");

	/* a capped buffer fails cleanly */
	struct jb_buf capped = {.limit = 16};
	jb_buf_put(&capped, "0123456789abcdef0", 17);
	ok(capped.oom, "buffer cap enforced");
	jb_buf_free(&capped);
	ok(jb_buf_add(&capped, "0123456789abcdef", 16) == 0 && capped.len == 16 && capped.p[16] == 0,
	   "up to the cap it takes, NUL-terminated");
	ok(jb_buf_add(&capped, "x", 1) == -E2BIG && capped.oom, "one byte more: E2BIG");
	jb_buf_free(&capped);
	struct jb_buf nolimit = {0};
	ok(jb_buf_add(&nolimit, "x", 1) == -E2BIG && !nolimit.p, "a buffer without a limit takes nothing");
	jb_buf_free(&b);
	return tap_done();
}
