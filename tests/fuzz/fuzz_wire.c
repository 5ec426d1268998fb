/* libFuzzer target for the wire decoders (control frames, entries, JOIN and
 * BLOCK headers).  Built with clang -fsanitize=fuzzer when -Dfuzz=true; the
 * same file with replay.c runs the saved corpus in every test run. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "jumbo/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct jb_msg m;
	if (jb_wire_decode(data, size, &m) == 0) {
		if (m.type == JB_MSG_FILES) {
			struct jb_wire_iter it = {m.u.files.entries, m.u.files.len};
			struct jb_wire_entry e;
			for (uint32_t i = 0; i < m.u.files.count; i++)
				if (jb_wire_entry_next(&it, &e) < 0)
					__builtin_trap(); /* the decoder validated them all */
		} else if (m.type == JB_MSG_SEAL) {
			struct jb_wire_iter it = {m.u.seal.entries, m.u.seal.len};
			struct jb_seal_entry se;
			for (uint32_t i = 0; i < m.u.seal.count; i++)
				if (jb_wire_seal_next(&it, &se) < 0)
					__builtin_trap(); /* the decoder validated them all */
			if (it.n != 0)
				__builtin_trap();
		} else if (m.type == JB_MSG_NEED) {
			uint64_t a, b, sum = 0;
			for (uint32_t i = 0; i < m.u.need.nranges; i++) {
				jb_wire_need_range(&m, i, &a, &b);
				sum += a ^ b;
			}
			(void)sum;
		}
	}
	if (size >= JB_JOIN_LEN) {
		struct jb_join j;
		jb_wire_join_decode(data, &j);
	}
	if (size >= JB_BLOCK_HDR_LEN) {
		struct jb_block_hdr h;
		jb_wire_block_decode(data, &h);
	}
	return 0;
}
