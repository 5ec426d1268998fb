/* The transfer service's connections: accepted, let through the gate (at
 * most max_handshakes in their handshake at once, handshakes_per_address
 * from one address, each cut off at handshake_timeout; a newcomer to a full
 * gate takes the place of the one waiting longest), each in its thread
 * until it ends, and all ended when the daemon stops. */
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "server-internal.h"

/* Take a connection off the list of running ones; srv->lock held. */
static void conn_unlink(struct conn *cn)
{
	jb_gate_leave(&cn->srv->gate, &cn->gate);
	if ((*cn->pprev = cn->next))
		cn->next->pprev = cn->pprev;
	atomic_fetch_sub(&cn->srv->nconns, 1);
	pthread_cond_broadcast(&cn->srv->idle);
}

/* The end of a connection thread: hand it to reap_conns. */
static void conn_end(struct conn *cn)
{
	struct jb_server *srv = cn->srv;
	jb_fds_give(1);
	pthread_mutex_lock(&srv->lock);
	conn_unlink(cn);
	cn->next = srv->done;
	srv->done = cn;
	pthread_mutex_unlock(&srv->lock);
}

/* Join the threads that ended.  Only the thread that creates them calls it
 * (the accept loop, then jb_server_drain and jb_server_free after it). */
void reap_conns(struct jb_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	struct conn *c = srv->done;
	srv->done = NULL;
	pthread_mutex_unlock(&srv->lock);
	while (c) {
		struct conn *next = c->next;
		pthread_join(c->thread, NULL);
		free(c);
		c = next;
	}
}

/* The connection's descriptor is about to be closed or handed on: a stopping
 * server, or the gate, must no longer shut it down. */
void conn_forget_fd(struct conn *cn)
{
	pthread_mutex_lock(&cn->srv->lock);
	cn->fd = -1;
	jb_gate_leave(&cn->srv->gate, &cn->gate);
	pthread_mutex_unlock(&cn->srv->lock);
}

/* Its HELLO is in: it leaves the gate, unless the gate has just cut it off
 * (false: end quietly, the gate has said why). */
bool conn_through(struct conn *cn)
{
	pthread_mutex_lock(&cn->srv->lock);
	bool ok = !cn->cut;
	jb_gate_leave(&cn->srv->gate, &cn->gate);
	pthread_mutex_unlock(&cn->srv->lock);
	return ok;
}

/* The gate cuts a connection off: its deadline has passed (late), or a
 * newcomer takes its place.  Its thread finds the socket shut down and
 * ends without a word of its own.  srv->lock held. */
static void conn_cut(struct jb_server *srv, struct conn *cn, bool late, double now)
{
	char host[INET6_ADDRSTRLEN];
	jb_addr_format(&cn->gate.addr, host, sizeof host);
	cn->cut = true;
	if (cn->fd >= 0)
		shutdown(cn->fd, SHUT_RDWR);
	atomic_fetch_add(&srv->closed[late ? JB_CLOSED_TIMEOUT : JB_CLOSED_PUSHED], 1);
	if (late)
		jb_log_limited(&srv->log_late, JB_LOG_WARN,
			       "connection from %s closed: no HELLO or JOIN within %g s of connecting "
			       "([site] handshake_timeout)", host, srv->gate.timeout);
	else
		jb_log_limited(&srv->log_pushed, JB_LOG_WARN,
			       "connection from %s closed after %.1f s without HELLO or JOIN: %d connections were in "
			       "their handshake, the most there may be ([site] max_handshakes); the newest took its place",
			       host, now - cn->gate.since, srv->gate.max);
}

/* A line about a connection that failed in its handshake, at most once a
 * second; none for one the gate cut off. */
void conn_dropped(struct conn *cn, const char *why)
{
	char host[INET6_ADDRSTRLEN];
	jb_addr_format(&cn->gate.addr, host, sizeof host);
	if (!cn->cut)
		jb_log_limited(&cn->srv->log_dropped, JB_LOG_WARN, "connection from %s dropped: %s", host, why);
}

static void *conn_main(void *arg)
{
	struct conn *cn = arg;
	serve_conn(cn);
	conn_end(cn);
	return NULL;
}

/* A connection closed at once, for one of two reasons (JB_CLOSED_FULL: over
 * MAX_CONNS or out of descriptors, JB_CLOSED_ADDRESS: its address has
 * handshakes_per_address waiting); a flood is logged once a second, not
 * once a connection. */
static void refuse_conn(struct jb_server *srv, struct conn *cn, enum jb_closed_reason why)
{
	char host[INET6_ADDRSTRLEN];
	jb_addr_format(&cn->gate.addr, host, sizeof host);
	close(cn->fd);
	free(cn);
	atomic_fetch_add(&srv->closed[why], 1);
	if (why == JB_CLOSED_FULL)
		jb_log_limited(&srv->log_full, JB_LOG_WARN,
			       "connection from %s closed: too many connections (limit %d, or the file descriptors "
			       "RLIMIT_NOFILE allows; %llu closed so far)", host, MAX_CONNS,
			       (unsigned long long)atomic_load(&srv->closed[why]));
	else
		jb_log_limited(&srv->log_addr, JB_LOG_WARN,
			       "connection from %s closed at once: %d connections from it are in their handshake "
			       "already ([site] handshakes_per_address)", host, srv->gate.per_addr);
}

/* The connections past their deadline are cut off (the accept loop calls
 * it at least every 250 ms). */
static void sweep(struct jb_server *srv)
{
	double now = jb_now();
	pthread_mutex_lock(&srv->lock);
	for (struct jb_gate_entry *e; (e = jb_gate_expired(&srv->gate, now));)
		conn_cut(srv, conn_of(e), true, now);
	pthread_mutex_unlock(&srv->lock);
}

/* A new connection gets its thread when there is one to spare and its
 * address has room at the gate; when the gate is full it takes the place of
 * the connection that has waited longest. */
static void admit(struct jb_server *srv, int fd, const struct sockaddr_storage *sa)
{
	struct conn *cn = calloc(1, sizeof *cn);
	if (!cn) {
		close(fd);
		return;
	}
	cn->srv = srv;
	cn->fd = fd;
	jb_addr_from((const struct sockaddr *)sa, &cn->gate.addr);
	/* every connection holds a descriptor of the process's budget until
	 * its thread ends (a data stream's is the session's then) */
	if (atomic_load(&srv->nconns) >= MAX_CONNS || !jb_fds_take(1, 1)) {
		refuse_conn(srv, cn, JB_CLOSED_FULL);
		return;
	}
	int r = jb_sock_setup(fd);
	if (r < 0)
		jb_log(JB_LOG_WARN, "setting up an accepted connection: %s", strerror(-r));
	double now = jb_now();
	struct jb_gate_entry *out;
	pthread_mutex_lock(&srv->lock);
	if (jb_gate_enter(&srv->gate, &cn->gate, now, &out) < 0) {
		pthread_mutex_unlock(&srv->lock);
		jb_fds_give(1);
		refuse_conn(srv, cn, JB_CLOSED_ADDRESS);
		return;
	}
	if (out)
		conn_cut(srv, conn_of(out), false, now);
	cn->until = now + srv->gate.timeout;
	if ((cn->next = srv->conns))
		cn->next->pprev = &cn->next;
	cn->pprev = &srv->conns;
	srv->conns = cn;
	atomic_fetch_add(&srv->nconns, 1);
	pthread_mutex_unlock(&srv->lock);
	if ((r = pthread_create(&cn->thread, NULL, conn_main, cn)) != 0) {
		jb_log(JB_LOG_WARN, "cannot start a connection thread: %s", strerror(r));
		close(fd);
		jb_fds_give(1);
		pthread_mutex_lock(&srv->lock);
		jb_gate_leave(&srv->gate, &cn->gate);
		conn_unlink(cn);
		pthread_mutex_unlock(&srv->lock);
		free(cn);
	}
}

int jb_server_run(struct jb_server *srv)
{
	expire_start(srv);
	while (!atomic_load(&srv->stop)) {
		struct pollfd p = {.fd = srv->lfd, .events = POLLIN};
		int pr = poll(&p, 1, 250);
		reap_conns(srv);
		sweep(srv);
		if (pr <= 0)
			continue;
		struct sockaddr_storage sa;
		socklen_t salen = sizeof sa;
		int fd = accept4(srv->lfd, (struct sockaddr *)&sa, &salen, SOCK_CLOEXEC);
		if (fd >= 0) {
			admit(srv, fd, &sa);
		} else if (errno == EMFILE || errno == ENFILE) {
			/* the connection waits in the backlog: do not spin on it */
			jb_log_limited(&srv->log_full, JB_LOG_WARN, "cannot accept a connection: %s", strerror(errno));
			poll(NULL, 0, 50);
		}
	}
	expire_stop(srv);
	return 0;
}

/* Wait, holding srv->lock, until no connection thread is left or until. */
static int wait_idle(struct jb_server *srv, const struct timespec *until)
{
	while (atomic_load(&srv->nconns) > 0)
		if (pthread_cond_timedwait(&srv->idle, &srv->lock, until) == ETIMEDOUT)
			break;
	return atomic_load(&srv->nconns);
}

int jb_server_drain(struct jb_server *srv, int timeout_ms)
{
	atomic_store(&srv->stop, true);
	if (srv->lfd >= 0) {
		close(srv->lfd);
		srv->lfd = -1;
	}
	struct timespec half, until;
	cond_deadline(&half, timeout_ms / 2);
	cond_deadline(&until, timeout_ms);
	struct event ev = {.kind = EV_FATAL, .code = ESHUTDOWN};
	snprintf(ev.text, sizeof ev.text, "site %s is shutting down", srv->c->name);
	pthread_mutex_lock(&srv->lock);
	/* sessions waiting for their streams see the stop flag */
	pthread_cond_broadcast(&srv->joined);
	/* running sessions end the way a failed stream ends them: ERROR to the
	 * peer, streams closed, journal left consistent for a resume */
	for (struct conn *c = srv->conns; c; c = c->next) {
		if (c->state == CONN_RUNNING) {
			atomic_store(&c->s->fatal, true);
			session_post(c->s, &ev);
		} else if (c->state == CONN_NEW && c->fd >= 0) {
			shutdown(c->fd, SHUT_RDWR); /* handshake, HELLO, listing */
		} else if (c->state == CONN_JOINING && c->fd >= 0) {
			/* reading the manifest or NEEDs: stop the reading, keep
			 * the writing to say why */
			shutdown(c->fd, SHUT_RD);
		}
	}
	/* whatever has not ended by half time is cut off */
	if (wait_idle(srv, &half) > 0)
		for (struct conn *c = srv->conns; c; c = c->next)
			if (c->fd >= 0)
				shutdown(c->fd, SHUT_RDWR);
	int left = wait_idle(srv, &until);
	pthread_mutex_unlock(&srv->lock);
	reap_conns(srv);
	if (left)
		jb_log(JB_LOG_WARN, "site %s: %d connections did not end within %d ms", srv->c->name, left, timeout_ms);
	return left ? -ETIMEDOUT : 0;
}
