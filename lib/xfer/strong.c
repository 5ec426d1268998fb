/* The strong digest: what a relay cannot forge (relays, issue 18).
 *
 * XXH3-128 catches what a network or a disk does to bytes, not what a site
 * in the middle does on purpose: it can alter a block and compute the XXH3 of
 * what it sends.  So a relayed file also carries sha256t: SHA-256 of each
 * block, and for the file SHA-256 over
 *
 *     "jumbo sha256t 1\n" || u64 size || u32 block size || the block digests
 *
 * (big-endian numbers; the block digests in order, 32 bytes each).  Like
 * xxh3t it is a one-level tree, so both ends compute it as blocks come, out
 * of order, without a second pass; a block whose SHA-256 differs is fetched
 * again alone; and the size and block size are in it, so a file cut short
 * or blocked another way has another digest.  OpenSSL's SHA-256 uses the
 * CPU's SHA extensions where it has them (tests/bench/digest measures it). */
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "xfer-internal.h"

#define DOMAIN "jumbo sha256t 1\n"

int jb_strong_begin(struct jb_strong *s)
{
	if (!s->md && !(s->md = EVP_MD_CTX_new()))
		return -ENOMEM;
	return EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}

void jb_strong_update(struct jb_strong *s, const void *p, size_t n) { EVP_DigestUpdate(s->md, p, n); }

void jb_strong_end(struct jb_strong *s, uint8_t out[JB_STRONG_LEN])
{
	unsigned int len = 0;
	EVP_DigestFinal_ex(s->md, out, &len);
}

void jb_strong_free(struct jb_strong *s)
{
	EVP_MD_CTX_free(s->md);
	s->md = NULL;
}

int jb_strong_root(const uint8_t *blocks, uint64_t nblocks, uint64_t size, uint32_t bs, uint8_t out[JB_STRONG_LEN])
{
	uint8_t head[sizeof DOMAIN - 1 + 12];
	memcpy(head, DOMAIN, sizeof DOMAIN - 1);
	for (int i = 0; i < 8; i++)
		head[sizeof DOMAIN - 1 + i] = (uint8_t)(size >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		head[sizeof DOMAIN - 1 + 8 + i] = (uint8_t)(bs >> (24 - 8 * i));
	struct jb_strong s = {0};
	int r = jb_strong_begin(&s);
	if (r == 0) {
		jb_strong_update(&s, head, sizeof head);
		jb_strong_update(&s, blocks, (size_t)nblocks * JB_STRONG_LEN);
		jb_strong_end(&s, out);
	}
	jb_strong_free(&s);
	return r;
}

/* One block's SHA-256, read from fd through chunk (file_digests' way). */
static int strong_file_block(int fd, uint8_t *chunk, off_t off, uint64_t len, uint8_t *out)
{
	struct jb_strong s = {0};
	int r = jb_strong_begin(&s);
	for (uint64_t done = 0; r == 0 && done < len;) {
		size_t n = (size_t)JB_MIN((uint64_t)STREAM_CHUNK, len - done);
		if ((r = jb_pread_full(fd, chunk, n, off + (off_t)done)) == 0) {
			jb_strong_update(&s, chunk, n);
			done += n;
		}
	}
	if (r == 0)
		jb_strong_end(&s, out);
	jb_strong_free(&s);
	return r;
}

int jb_file_strong(const char *path, uint32_t bs, char out[JB_STRONG_HEX], struct jb_error *err)
{
	uint8_t *dg, root[JB_STRONG_LEN];
	uint64_t nb, size;
	int r = file_digests(path, bs, JB_STRONG_LEN, strong_file_block, &dg, &nb, &size, err);
	if (r < 0)
		return r;
	r = jb_strong_root(dg, nb, size, bs, root);
	free(dg);
	if (r < 0)
		return jb_err(err, -r, "%s: %s", path, strerror(-r));
	memcpy(out, "sha256t:", 8);
	jb_hex(root, JB_STRONG_LEN, out + 8);
	return 0;
}
