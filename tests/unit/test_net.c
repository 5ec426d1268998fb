/* Unit tests: sockets get dead-peer detection at both ends. */
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

int main(void)
{
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
