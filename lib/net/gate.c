/* The gate (net.h): connections waiting to show what they are, oldest
 * first, with a deadline each and caps in all and per address.  Holds no
 * lock and allocates nothing: its caller's records embed the entries and
 * its caller's lock guards it.  Counting an address walks the list: the
 * gate holds a few hundred entries at most. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "jumbo/net.h"

void jb_addr_from(const struct sockaddr *sa, struct jb_addr *ret)
{
	memset(ret, 0, sizeof *ret);
	if (sa->sa_family == AF_INET6) {
		memcpy(ret->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	} else if (sa->sa_family == AF_INET) {
		ret->b[10] = ret->b[11] = 0xff;
		memcpy(ret->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	}
}

void jb_addr_format(const struct jb_addr *a, char *buf, size_t len)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (!memcmp(a->b, v4mapped, 12))
		inet_ntop(AF_INET, a->b + 12, buf, (socklen_t)len);
	else
		inet_ntop(AF_INET6, a->b, buf, (socklen_t)len);
}

void jb_gate_init(struct jb_gate *g, int max, int per_addr, double timeout)
{
	*g = (struct jb_gate){.max = JB_MAX(max, 1), .per_addr = per_addr, .timeout = timeout};
}

int jb_gate_count(const struct jb_gate *g, const struct jb_addr *a)
{
	int n = 0;
	for (const struct jb_gate_entry *e = g->head; e; e = e->next)
		n += !memcmp(e->addr.b, a->b, sizeof a->b);
	return n;
}

void jb_gate_leave(struct jb_gate *g, struct jb_gate_entry *e)
{
	if (!e->in)
		return;
	*(e->prev ? &e->prev->next : &g->head) = e->next;
	*(e->next ? &e->next->prev : &g->tail) = e->prev;
	e->prev = e->next = NULL;
	e->in = false;
	g->n--;
}

int jb_gate_enter(struct jb_gate *g, struct jb_gate_entry *e, double now, struct jb_gate_entry **ret_out)
{
	struct jb_gate_entry *out = NULL;
	jb_gate_leave(g, e);
	if (g->per_addr > 0 && jb_gate_count(g, &e->addr) >= g->per_addr)
		return -EMFILE;
	if (g->n >= g->max) {
		out = g->head;
		jb_gate_leave(g, out);
	}
	e->since = now;
	e->next = NULL;
	e->prev = g->tail;
	*(g->tail ? &g->tail->next : &g->head) = e;
	g->tail = e;
	e->in = true;
	g->n++;
	*ret_out = out;
	return 0;
}

struct jb_gate_entry *jb_gate_expired(struct jb_gate *g, double now)
{
	struct jb_gate_entry *e = g->head;
	if (!e || now < e->since + g->timeout)
		return NULL;
	jb_gate_leave(g, e);
	return e;
}
