/* Unit tests: every message encodes and decodes; limits are enforced. */
#include <stdlib.h>

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

int main(void)
{
	struct jb_buf b = {.limit = 1u << 20};
	static struct jb_msg m;

	size_t k = jb_frame_begin(&b, JB_MSG_HELLO);
	jb_buf_u32(&b, JB_WIRE_MAGIC);
	jb_buf_u16(&b, 1);
	jb_buf_u8(&b, JB_OP_PUSH);
	jb_buf_u8(&b, JB_HELLO_ENCRYPT);
	jb_buf_u16(&b, 8);
	jb_buf_u32(&b, 8u << 20);
	jb_buf_u64(&b, 10000000000ull);
	jb_buf_str(&b, "run7/a.h5");
	jb_buf_str(&b, "kisti");
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
