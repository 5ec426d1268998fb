/* Unit tests: sockets get dead-peer detection at both ends. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jumbo/net.h"
#include "tap.h"

static int get_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof v;
	return getsockopt(fd, level, name, &v, &len) < 0 ? -1 : v;
}

static void check_keepalive(int fd, const char *who)
{
	is_int(get_int(fd, IPPROTO_TCP, TCP_NODELAY), 1, "%s: TCP_NODELAY on", who);
	is_int(get_int(fd, SOL_SOCKET, SO_KEEPALIVE), 1, "%s: SO_KEEPALIVE on", who);
	is_int(get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), JB_SOCK_KEEPIDLE, "%s: TCP_KEEPIDLE %d s", who,
	       JB_SOCK_KEEPIDLE);
	is_int(get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL), JB_SOCK_KEEPINTVL, "%s: TCP_KEEPINTVL %d s", who,
	       JB_SOCK_KEEPINTVL);
	is_int(get_int(fd, IPPROTO_TCP, TCP_KEEPCNT), JB_SOCK_KEEPCNT, "%s: TCP_KEEPCNT %d", who, JB_SOCK_KEEPCNT);
	is_int(get_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), JB_SOCK_USER_TIMEOUT_MS, "%s: TCP_USER_TIMEOUT %d ms", who,
	       JB_SOCK_USER_TIMEOUT_MS);
}

/* The gate: in order, per address, the oldest out when full, deadlines. */
static void test_gate(void)
{
	struct jb_gate g;
	struct jb_gate_entry e[6] = {0}, *out = (struct jb_gate_entry *)1;
	struct sockaddr_in a = {.sin_family = AF_INET};
	jb_gate_init(&g, 4, 2, 10);
	for (int i = 0; i < 6; i++) {
		a.sin_addr.s_addr = htonl(0x7f000001u + (i < 3 ? 0 : (uint32_t)i)); /* 127.0.0.1 thrice, then others */
		jb_addr_from((struct sockaddr *)&a, &e[i].addr);
	}
	char host[64];
	jb_addr_format(&e[0].addr, host, sizeof host);
	is_str(host, "127.0.0.1", "an IPv4 address as IPv6-mapped, printed as IPv4");
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	struct jb_addr x;
	jb_addr_from((struct sockaddr *)&a6, &x);
	jb_addr_format(&x, host, sizeof host);
	is_str(host, "::1", "and an IPv6 one");
	is_int(jb_gate_enter(&g, &e[0], 1.0, &out), 0, "first in");
	ok(!out && g.n == 1 && e[0].in, "nobody taken out, one in");
	is_int(jb_gate_enter(&g, &e[1], 2.0, &out), 0, "second from the same address in");
	is_int(jb_gate_enter(&g, &e[2], 3.0, &out), -EMFILE, "a third from it: refused (2 per address)");
	ok(!e[2].in && g.n == 2, "and not in");
	is_int(jb_gate_count(&g, &e[0].addr), 2, "two from 127.0.0.1");
	jb_gate_enter(&g, &e[3], 4.0, &out);
	jb_gate_enter(&g, &e[4], 5.0, &out);
	ok(g.n == 4 && !out, "four in: full");
	is_int(jb_gate_enter(&g, &e[5], 6.0, &out), 0, "a fifth while full comes in");
	ok(out == &e[0] && !e[0].in && g.n == 4, "taking the place of the one waiting longest");
	jb_gate_leave(&g, &e[3]);
	jb_gate_leave(&g, &e[3]);
	ok(g.n == 3 && !e[3].in, "one leaves (twice: nothing more)");
	ok(!jb_gate_expired(&g, 11.9), "at 11.9 s nobody is past 10 s");
	ok(jb_gate_expired(&g, 12.0) == &e[1] && !jb_gate_expired(&g, 12.0), "at 12 s the one in at 2 s is");
	ok(jb_gate_expired(&g, 100) == &e[4] && jb_gate_expired(&g, 100) == &e[5] && !jb_gate_expired(&g, 100) &&
	   g.n == 0 && !g.head && !g.tail, "then the others, oldest first, and the gate is empty");
	is_int(jb_gate_enter(&g, &e[1], 200, &out), 0, "an entry can come in again");
	ok(g.head == &e[1] && g.tail == &e[1] && e[1].since == 200, "as the newest");
}

int main(void)
{
	test_gate();
	struct jb_error err = {0};
	is_int(JB_SOCK_KEEPIDLE, 30, "keepalive starts after 30 s idle");
	is_int(JB_SOCK_KEEPINTVL * JB_SOCK_KEEPCNT, 30, "and gives up after 3 probes 10 s apart");
	is_int(JB_SOCK_USER_TIMEOUT_MS, 60000, "unacknowledged data fails a send after 60 s");

	int lfd = jb_sock_listen("127.0.0.1:0", 4, &err);
	ok(lfd >= 0, "listen on loopback: %s", lfd >= 0 ? "ok" : err.msg);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", jb_sock_local_port(lfd));
	int cfd = jb_sock_connect(addr, &err);
	ok(cfd >= 0, "connect to %s", addr);
	/* a fresh socket has none of it: the options below are ours */
	is_int(get_int(lfd, SOL_SOCKET, SO_KEEPALIVE), 0, "the listening socket has no keepalive of its own");
	check_keepalive(cfd, "jb_sock_connect");

	int afd = accept(lfd, NULL, NULL);
	ok(afd >= 0, "accept");
	is_int(jb_sock_setup(afd), 0, "jb_sock_setup on an accepted socket");
	check_keepalive(afd, "accepted");

	int sp[2];
	ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair");
	ok(jb_sock_setup(sp[0]) < 0, "not TCP: a negative errno, no crash");
	close(sp[0]);
	close(sp[1]);
	close(afd);
	close(cfd);
	close(lfd);
	return tap_done();
}
