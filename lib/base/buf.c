/* jb_buf: the one growable byte buffer, bounded by the limit its user
 * must set. */
#include <string.h>

#include "jumbo/base.h"

void jb_buf_put(struct jb_buf *b, const void *p, size_t n)
{
	if (b->oom)
		return;
	if (!b->limit || n > b->limit - JB_MIN(b->len, b->limit)) {
		b->oom = true; /* no limit set is a bug: it takes nothing */
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		while (nc < b->len + n + 1)
			nc *= 2;
		nc = JB_MIN(nc, b->limit + 1);
		uint8_t *np = realloc(b->p, nc);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = 0;
}

int jb_buf_add(struct jb_buf *b, const void *d, size_t n)
{
	if (b->oom)
		return -E2BIG;
	bool over = !b->limit || n > b->limit - JB_MIN(b->len, b->limit);
	jb_buf_put(b, d, n);
	return !b->oom ? 0 : over ? -E2BIG : -ENOMEM;
}

void jb_buf_free(struct jb_buf *b)
{
	free(b->p);
	*b = (struct jb_buf){.limit = b->limit};
}

char *jb_buf_take(struct jb_buf *b)
{
	char *p = (char *)b->p;
	*b = (struct jb_buf){.limit = b->limit};
	return p;
}

size_t jb_buf_sink(char *d, size_t size, size_t n, void *ud)
{
	return jb_buf_add(ud, d, size * n) == 0 ? size * n : 0;
}
