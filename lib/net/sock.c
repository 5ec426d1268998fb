#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "jumbo/config.h"
#include "jumbo/net.h"

static int resolve(const char *hostport, bool passive, struct addrinfo **ret, struct jb_error *err)
{
	char host[256], port[8];
	int p;
	if (jb_split_hostport(hostport, host, sizeof host, &p) < 0)
		return jb_err(err, EINVAL, "bad address '%s' (want host:port)", hostport);
	snprintf(port, sizeof port, "%d", p);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0};
	int r = getaddrinfo(host, port, &hints, ret);
	if (r)
		return jb_err(err, EHOSTUNREACH, "%s: %s", hostport, gai_strerror(r));
	return 0;
}

int jb_sock_listen(const char *hostport, int backlog, struct jb_error *err)
{
	struct addrinfo *ai;
	int r = resolve(hostport, true, &ai, err);
	if (r < 0)
		return r;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = jb_err(err, errno, "socket: %s", strerror(errno));
		goto out;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
		r = jb_err(err, errno, "listen on %s: %s", hostport, strerror(errno));
		close(fd);
		goto out;
	}
	r = fd;
out:
	freeaddrinfo(ai);
	return r;
}

/* No Nagle delay: control frames are small and each is awaited.  And a peer
 * that vanishes without a FIN or an RST (a cut link, a host that lost
 * power) would otherwise leave both ends waiting forever once blocks flow:
 * idle sockets send keepalive probes, and unacknowledged data makes a send
 * fail after JB_SOCK_USER_TIMEOUT_MS.  Every control and data socket, at both
 * ends, goes through here. */
int jb_sock_setup(int fd)
{
	int one = 1, idle = JB_SOCK_KEEPIDLE, intvl = JB_SOCK_KEEPINTVL, cnt = JB_SOCK_KEEPCNT;
	unsigned int uto = JB_SOCK_USER_TIMEOUT_MS;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof uto) < 0)
		return -errno;
	return 0;
}

int jb_sock_connect(const char *hostport, struct jb_error *err)
{
	struct addrinfo *ai;
	int r = resolve(hostport, false, &ai, err), last = ECONNREFUSED;
	if (r < 0)
		return r;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			if ((r = jb_sock_setup(fd)) < 0)
				jb_log(JB_LOG_WARN, "%s: socket set-up: %s", hostport, strerror(-r));
			freeaddrinfo(ai);
			return fd;
		}
		last = errno;
		close(fd);
	}
	freeaddrinfo(ai);
	return jb_err(err, last, "connect to %s: %s", hostport, strerror(last));
}

int jb_sock_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static bool cc_available(const char *name)
{
	char buf[512] = "";
	int fd = open("/proc/sys/net/ipv4/tcp_available_congestion_control", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	size_t l = strlen(name);
	for (char *p = buf; (p = strstr(p, name)); p += l)
		if ((p == buf || p[-1] == ' ') && (p[l] == ' ' || p[l] == '\n' || !p[l]))
			return true;
	return false;
}

void jb_sock_tune(int fd, const struct jb_tune *t)
{
	const char *cc = t->cc;
	if (!cc && cc_available("bbr"))
		cc = "bbr";
	if (cc && setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, (socklen_t)strlen(cc)) < 0)
		jb_log(JB_LOG_WARN, "congestion control %s: %s", cc, strerror(errno));
	if (t->window) {
		int w = (int)JB_MIN(t->window, (uint64_t)INT32_MAX / 2);
		/* The FORCE variants pass the sysctl ceilings when we hold CAP_NET_ADMIN. */
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &w, sizeof w) < 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &w, sizeof w);
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &w, sizeof w) < 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &w, sizeof w);
	}
	if (t->rate_bps) {
		uint64_t bytes = t->rate_bps / 8;
		if (setsockopt(fd, SOL_SOCKET, SO_MAX_PACING_RATE, &bytes, sizeof bytes) < 0)
			jb_log(JB_LOG_WARN, "pacing rate: %s", strerror(errno));
	}
}

void jb_sock_cc(int fd, char *buf, size_t len)
{
	socklen_t l = (socklen_t)len;
	if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, buf, &l) < 0)
		snprintf(buf, len, "?");
	else
		buf[JB_MIN((size_t)l, len - 1)] = 0;
}
