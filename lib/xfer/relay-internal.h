/* Relays (relay.c, feed.c): a transfer passing through this site, shared by
 * the session that receives it into staging and the forwarder that pushes it
 * on (docs/ARCHITECTURE.md, "Relays"). */
#pragma once
#include "server-internal.h"

/* Receipts a relay passes back for one transfer, at most: one per hop after
 * it (JB_WIRE_MAX_HOPS), in each of a few attempts */
#define RQ_MAX 16

struct fentry {
	bool live;
	uint32_t index;
	uint8_t type;
	uint32_t mode;
	uint64_t size;
	int64_t mtime_ns;
	char *path;
	uint64_t nblocks;
	uint8_t *ready;      /* bitmap: verified here and durable in staging */
	uint8_t *gone;       /* bitmap: the next hop holds it, and its staged copy is gone */
	uint8_t *digests;    /* nblocks x 16: each ready block's, as verified here */
	uint64_t nready;
	uint64_t staged;     /* bytes of it counted in the relay's staged bytes */
	int failcode;        /* failed upstream (or here): the forwarder aborts it */
	char *failtext;
	bool resulted;       /* the next hop's FILE_DONE is in */
};

struct feed {
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* state changes */
	struct fentry *e;           /* WINDOW slots: entry i in e[i & WMASK] */
	uint32_t n;                 /* entries added */
	bool ended;                 /* FILES_END has come */
	uint32_t lo;                /* entries below it all have their result */
	uint32_t bs;
	uint32_t want_file;         /* the block the forwarder waits for */
	uint64_t want_block;
	int wake_fd;                /* the forwarding session's event fd, -1 */
	struct session *up;         /* the receiving session */
	char *dir;                  /* staging/KEY */
	volatile int cancel;        /* the forwarder's to end */
	int state;                  /* 0: connecting, 1: the next hop welcomed us, -1: it refused */
	struct jb_error err;        /* why it refused */
	/* what the forwarder needs */
	struct jb_server *srv;
	struct jb_remote next;
	char origin[JB_WIRE_MAX_NAME + 1];
	char hops[JB_WIRE_MAX_HOPS][JB_WIRE_MAX_NAME + 1];
	int nhops;                  /* after the next hop */
	uint8_t hello_flags;
	int streams;
	pthread_t thread;
	bool started;
	struct feed *next_live;     /* srv->feeds */
	bool registered;            /* in srv->feeds: its staging directory is its own */
	char key[33];
	uint64_t forwarded;         /* bytes the next hop took, all attempts */
	/* the origin's seals, as they came, until their entries have their
	 * result: each forwarding session sends them all from sq_head on */
	struct sealq {
		uint32_t idx;        /* the feed entry (UINT32_MAX: none found) */
		uint8_t *body;       /* the frame's body less its type byte */
		size_t len;
	} *sq;
	size_t sq_n, sq_cap, sq_bytes;
	uint64_t sq_head;           /* seals dropped from the front, all told */
	int tamper_block;
	int attempts;
	/* receipts of the hops after this one (custody.c), as they came, for
	 * the receiving session to pass back: at most RQ_MAX a transfer */
	struct {
		uint8_t *body;       /* the frame's body less its type byte */
		size_t len;
	} rq[RQ_MAX];
	size_t rq_n, rq_out;        /* taken; passed back */
	uint64_t nok;               /* entries the next hop verified */
	bool custody;               /* the origin left with this site's receipt */
	bool napping;               /* between attempts */
	char cc[JB_WIRE_MAX_CC + 1];    /* the route's congestion control, "" for this site's default */
	double t0;                  /* when it began here */
	atomic_uint_fast64_t *fwd_bytes; /* the running forwarding session's bytes moved, or NULL */
};

/* An entry's slot given back (its staged bytes off the count). */
void fentry_free(struct feed *fd, struct fentry *e);
