/* The API's connections against slow clients.  libmicrohttpd bounds a
 * connection's silence ([site] api_idle_timeout), the connections at once
 * (JB_API_MAX_CONNECTIONS) and those from one address
 * (api_connections_per_address), but not how long a request may take to
 * arrive: a client sending a byte now and then keeps its connection as long
 * as it likes, and 64 of them stall every other client.
 *
 * So each connection waits at a gate (net.h) from its opening, and again
 * from the end of each answer, until its next request is whole (headers and
 * body): api_request_timeout at most, after which a sweep every 250 ms shuts
 * its socket down and libmicrohttpd closes it.  And when API_WAITING of them
 * are waiting, a new connection takes the place of the one that has waited
 * longest: libmicrohttpd never has all its connections held by clients that
 * send nothing, and a client that sends its request at once always gets in.
 * Answers are not timed: a long one (a job's log, the metrics, a slow
 * reader) has the idle timeout only.
 *
 * The sockets are libmicrohttpd's: one is shut down only while its
 * connection is listed here, under the lock, and libmicrohttpd tells us
 * (MHD_CONNECTION_NOTIFY_CLOSED) before it closes the descriptor. */
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "api-internal.h"
#include "jumbo/net.h"

/* waiting for their request at most: 4 of libmicrohttpd's 64 stay for
 * newcomers and for connections whose answer is on its way */
#define API_WAITING (JB_API_MAX_CONNECTIONS - 4)
#define SWEEP_MS 250

struct guarded {
	struct jb_gate_entry gate;
	int fd;
};

struct api_guard {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t sweeper;
	bool stop;
	struct jb_gate gate; /* under lock */
	int per_addr;        /* libmicrohttpd's, for its messages */
	struct jb_log_limit log_late, log_pushed, log_mhd;
	atomic_uint_fast64_t closed_late, closed_pushed;
};

/* Shut a waiting connection's socket down (it has left the gate); lock held. */
static void cut(struct api_guard *g, struct guarded *c, bool late, double now)
{
	char host[INET6_ADDRSTRLEN];
	jb_addr_format(&c->gate.addr, host, sizeof host);
	shutdown(c->fd, SHUT_RDWR);
	atomic_fetch_add(late ? &g->closed_late : &g->closed_pushed, 1);
	if (late)
		jb_log_limited(&g->log_late, JB_LOG_WARN,
			       "api: connection from %s closed: no whole request within %g s ([site] api_request_timeout)",
			       host, g->gate.timeout);
	else
		jb_log_limited(&g->log_pushed, JB_LOG_WARN,
			       "api: connection from %s closed after waiting %.1f s for its request: %d connections were "
			       "waiting, the most there may be; the newest took its place",
			       host, now - c->gate.since, g->gate.max);
}

/* c waits for its next request from now on. */
static void wait_request(struct api_guard *g, struct guarded *c)
{
	struct jb_gate_entry *out;
	double now = jb_now();
	pthread_mutex_lock(&g->lock);
	if (jb_gate_enter(&g->gate, &c->gate, now, &out) == 0 && out)
		cut(g, (struct guarded *)out, false, now);
	pthread_mutex_unlock(&g->lock);
}

static void *sweep(void *arg)
{
	struct api_guard *g = arg;
	pthread_mutex_lock(&g->lock);
	while (!g->stop) {
		double now = jb_now();
		for (struct jb_gate_entry *e; (e = jb_gate_expired(&g->gate, now));)
			cut(g, (struct guarded *)e, true, now);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += SWEEP_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&g->wake, &g->lock, &ts);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

int api_guard_new(double request_timeout, int per_addr, struct api_guard **ret, struct jb_error *err)
{
	struct api_guard *g = calloc(1, sizeof *g);
	if (!g)
		return jb_oom(err);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&g->lock, NULL);
	jb_gate_init(&g->gate, API_WAITING, 0, request_timeout);
	g->per_addr = per_addr;
	int r = pthread_create(&g->sweeper, NULL, sweep, g);
	if (r) {
		pthread_cond_destroy(&g->wake);
		pthread_mutex_destroy(&g->lock);
		free(g);
		return jb_err(err, r, "api: cannot start a thread: %s", strerror(r));
	}
	*ret = g;
	return 0;
}

void api_guard_free(struct api_guard *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->stop = true;
	pthread_cond_signal(&g->wake);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->sweeper, NULL);
	pthread_cond_destroy(&g->wake);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

void api_guard_notify(void *cls, struct MHD_Connection *conn, void **ctx, enum MHD_ConnectionNotificationCode code)
{
	struct api_guard *g = cls;
	struct guarded *c = *ctx;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		const union MHD_ConnectionInfo *sa = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (!fd || !(c = calloc(1, sizeof *c))) {
			jb_log_limited(&g->log_mhd, JB_LOG_WARN, "api: out of memory: a connection is not timed");
			return;
		}
		c->fd = fd->connect_fd;
		if (sa && sa->client_addr)
			jb_addr_from(sa->client_addr, &c->gate.addr);
		*ctx = c;
		wait_request(g, c);
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED && c) {
		pthread_mutex_lock(&g->lock);
		jb_gate_leave(&g->gate, &c->gate);
		pthread_mutex_unlock(&g->lock);
		free(c);
		*ctx = NULL;
	}
}

static struct guarded *guarded_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *i = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return i ? i->socket_context : NULL;
}

void api_guard_received(struct api_guard *g, struct MHD_Connection *conn)
{
	struct guarded *c = guarded_of(conn);
	if (!c)
		return;
	pthread_mutex_lock(&g->lock);
	jb_gate_leave(&g->gate, &c->gate);
	pthread_mutex_unlock(&g->lock);
}

void api_guard_answered(struct api_guard *g, struct MHD_Connection *conn)
{
	struct guarded *c = guarded_of(conn);
	if (c)
		wait_request(g, c);
}

/* libmicrohttpd's messages, as ours, at most a few a second: it has one for
 * each connection it closes at once, which a flood would repeat */
void api_guard_log(void *cls, const char *fmt, va_list ap)
{
	struct api_guard *g = cls;
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	msg[strcspn(msg, "\n")] = 0;
	if (strstr(msg, "reached connection limit"))
		jb_log_limited(&g->log_mhd, JB_LOG_WARN,
			       "api: a connection closed at once: its address has %d open ([site] "
			       "api_connections_per_address), or the API has %d (libmicrohttpd: %s)",
			       g->per_addr, JB_API_MAX_CONNECTIONS, msg);
	else
		jb_log_limited(&g->log_mhd, JB_LOG_WARN, "api: libmicrohttpd: %s", msg);
}

void api_guard_stats(const struct api_guard *g, uint64_t *ret_late, uint64_t *ret_pushed)
{
	*ret_late = atomic_load(&g->closed_late);
	*ret_pushed = atomic_load(&g->closed_pushed);
}
