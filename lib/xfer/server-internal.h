/* Internal to lib/xfer: the transfer service's records, shared by server.c
 * (what a connection is for: sessions, data streams, listings) and conns.c
 * (accepting them, the gate, their threads, the stop). */
#pragma once
#include "xfer-internal.h"

/* Connection threads at once, counted from accept (before any
 * authentication) until the thread ends; beyond it a new connection is
 * closed at once.  A session's data streams count only until they join.
 * Of these, at most [site] max_handshakes (JB_MAX_HANDSHAKES, half) are
 * still in their handshake (the gate): the rest are always there for
 * peers that have shown their pinned certificate. */
#define MAX_CONNS 512

struct live {
	struct live *next;
	struct jb_server *srv;
	uint8_t id[16], secret[32], peer_fp[32];
	struct session *s;
	int expected, joined;
	bool encrypt;
	uint64_t rate_bps;
};

/* One accepted connection and its thread, listed so that a stopping server
 * can end them all (jb_server_drain).  The threads are joined, not detached:
 * a thread that has said it is done still runs its thread-exit handlers
 * (OpenSSL's among them), and the server must not be freed, nor the process
 * exit, under them. */
enum conn_state { CONN_NEW, CONN_JOINING, CONN_RUNNING };
struct conn {
	struct conn *next, **pprev;
	pthread_t thread;
	struct jb_server *srv;
	int fd;              /* -1 once closed or handed to a session */
	enum conn_state state;
	struct session *s;   /* CONN_RUNNING: the session this thread runs */
	/* Until its HELLO or JOIN is in, it waits at srv->gate (under lock),
	 * by until at the latest; the gate cuts it off then (cut: its socket is
	 * shut down, and the gate said why in the log). */
	struct jb_gate_entry gate;
	double until;
	atomic_bool cut;
};
#define conn_of(e) ((struct conn *)((char *)(e) - offsetof(struct conn, gate)))

struct jb_server {
	const struct jb_config *c;
	int corrupt_block;      /* jb_server_test_corrupt_block */
	int tamper_block;       /* jb_server_test_tamper_block */
	SSL_CTX *ctx;
	int lfd, rootfd;
	struct journal *journal;
	atomic_bool stop;
	pthread_mutex_t lock;
	pthread_cond_t joined;
	pthread_cond_t idle;    /* a connection thread ended */
	struct live *live;
	int nlive;
	struct conn *conns;     /* under lock */
	struct conn *done;      /* under lock: threads that ended, to be joined */
	atomic_int nconns;      /* written under lock, read without */
	struct jb_gate gate;    /* under lock: connections in their handshake */
	/* lines a stranger can cause, each kind at most once a second */
	struct jb_log_limit log_full, log_addr, log_late, log_pushed, log_dropped;
	atomic_uint_fast64_t closed[JB_CLOSED_NREASONS];
	atomic_uint_fast64_t sessions, refused, bytes_in, bytes_out, streams_active, blocks_bad;
	/* expire.c: stale partial files and old journal records */
	pthread_t expirer;
	bool expirer_on;
	pthread_cond_t expire_wake;  /* with lock: the daemon stops */
	atomic_uint_fast64_t expired_partials, expired_records;
	jb_commit_fn on_commit;
	void *on_commit_ud;
	struct jb_client *relay_cl;  /* a relay's: how it pushes on ([relay]) */
	atomic_uint_fast64_t relay_active, relay_total, relay_staged, relay_forwarded, relay_retries;
	atomic_uint_fast64_t receipts_signed;
	struct feed *feeds;          /* under lock: the relayed transfers running (relay.c) */
};

/* conns.c, for server.c */
/* Join the threads that ended (the accept loop, drain and free only). */
void reap_conns(struct jb_server *srv);
/* The connection's descriptor is about to be closed or handed on (it
 * leaves the gate). */
void conn_forget_fd(struct conn *cn);
/* Its HELLO is in: it leaves the gate; false when the gate cut it off. */
bool conn_through(struct conn *cn);
/* A line about a connection that failed its handshake (at most one a second). */
void conn_dropped(struct conn *cn, const char *why);
/* server.c, for conns.c: what a connection thread does. */
void serve_conn(struct conn *cn);
/* expire.c: the expirer thread, started by jb_server_run and stopped
 * before it returns; one sweep; the seconds between sweeps. */
int expire_start(struct jb_server *srv);
void expire_stop(struct jb_server *srv);
void expire_once(struct jb_server *srv);
int expire_interval(const struct jb_config *c);
/* relay.c: staging directories of transfers that have not run since
 * cutoff (Unix seconds) removed; how many. */
uint64_t relay_expire(struct jb_server *srv, time_t cutoff);
