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
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int jb_file_strong(const char *path, uint32_t bs, char out[JB_STRONG_HEX], struct jb_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return jb_err(err, errno, "%s: %s", path, strerror(errno));
	struct stat st;
	int fr = fstat(fd, &st) < 0 ? errno : S_ISREG(st.st_mode) ? 0 : EISDIR;
	if (fr) {
		close(fd);
		return jb_err(err, fr, "%s: %s", path, fr == EISDIR ? "not a regular file" : strerror(fr));
	}
	uint64_t size = (uint64_t)st.st_size, nb = (size + bs - 1) / bs;
	uint8_t *dg = calloc(nb ? nb : 1, JB_STRONG_LEN), *buf = malloc(STREAM_CHUNK);
	struct jb_strong s = {0};
	int r = dg && buf ? 0 : -ENOMEM;
	for (uint64_t b = 0; r == 0 && b < nb; b++) {
		uint64_t len = JB_MIN((uint64_t)bs, size - b * bs);
		if ((r = jb_strong_begin(&s)) < 0)
			break;
		for (uint64_t done = 0; r == 0 && done < len;) {
			size_t n = (size_t)JB_MIN((uint64_t)STREAM_CHUNK, len - done);
			if ((r = jb_pread_full(fd, buf, n, (off_t)(b * bs + done))) == 0) {
				jb_strong_update(&s, buf, n);
				done += n;
			}
		}
		if (r == 0)
			jb_strong_end(&s, dg + b * JB_STRONG_LEN);
	}
	uint8_t root[JB_STRONG_LEN];
	if (r == 0)
		r = jb_strong_root(dg, nb, size, bs, root);
	if (r == 0) {
		memcpy(out, "sha256t:", 8);
		jb_hex(root, JB_STRONG_LEN, out + 8);
	} else {
		jb_err(err, r == -ENODATA ? EIO : -r, "%s: %s", path,
		       r == -ENODATA ? "read failed: the file shrank" : strerror(-r));
	}
	jb_strong_free(&s);
	free(dg);
	free(buf);
	close(fd);
	return r;
}
