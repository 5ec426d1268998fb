/* Connection set-up shared by both ends: HELLO, WELCOME, JOIN tokens. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "xfer-internal.h"

void join_token(const uint8_t secret[32], const uint8_t session[16], uint16_t index, uint8_t out[32])
{
	uint8_t msg[18];
	memcpy(msg, session, 16);
	msg[16] = (uint8_t)(index >> 8);
	msg[17] = (uint8_t)index;
	unsigned int n = 32;
	HMAC(EVP_sha256(), secret, 32, msg, sizeof msg, out, &n);
}

bool join_token_ok(const uint8_t secret[32], const uint8_t session[16], uint16_t index, const uint8_t tok[32])
{
	uint8_t want[32];
	join_token(secret, session, index, want);
	return CRYPTO_memcmp(want, tok, 32) == 0;
}

void put_hello(struct jb_buf *b, uint8_t op, uint8_t flags, uint16_t streams, uint32_t bs, uint64_t rate,
	       const char *path, const char *name, const struct route *rt)
{
	size_t m = jb_frame_begin(b, JB_MSG_HELLO);
	jb_buf_u32(b, JB_WIRE_MAGIC);
	jb_buf_u16(b, JB_WIRE_VERSION);
	jb_buf_u8(b, op);
	jb_buf_u8(b, (uint8_t)(flags | (rt ? JB_HELLO_ROUTE : 0)));
	jb_buf_u16(b, streams);
	jb_buf_u32(b, bs);
	jb_buf_u64(b, rate);
	jb_buf_str(b, path);
	jb_buf_str(b, name);
	if (rt) {
		jb_buf_str(b, rt->origin);
		jb_buf_u8(b, rt->flags);
		jb_buf_u8(b, (uint8_t)rt->nhops);
		for (int i = 0; i < rt->nhops; i++)
			jb_buf_str(b, rt->hops[i]);
		if (rt->flags & JB_ROUTE_CC)
			jb_buf_str(b, rt->cc);
	}
	jb_frame_end(b, m);
}

void put_welcome(struct jb_buf *b, uint8_t flags, uint16_t streams, uint32_t bs, const uint8_t session[16],
		 const uint8_t secret[32], const char *name)
{
	size_t m = jb_frame_begin(b, JB_MSG_WELCOME);
	jb_buf_u16(b, JB_WIRE_VERSION);
	jb_buf_u8(b, flags);
	jb_buf_u16(b, streams);
	jb_buf_u32(b, bs);
	jb_buf_put(b, session, 16);
	jb_buf_put(b, secret, 32);
	jb_buf_str(b, name);
	jb_frame_end(b, m);
}
