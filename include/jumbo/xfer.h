/* jumbo xfer: moving files between sites (docs/PROTOCOL.md, docs/ARCHITECTURE.md). */
#pragma once
#include <openssl/ssl.h>

#include "jumbo/base.h"
#include "jumbo/config.h"
#include "jumbo/net.h"
#include "jumbo/wire.h"

struct jb_progress {
	uint64_t bytes_total;    /* payload this run must move, of the entries known so far */
	uint64_t bytes_done;     /* payload moved and (receiver) verified so far */
	uint64_t files_total, files_done; /* entries (files and directories) */
	bool files_known;        /* false while the sender is still walking the tree */
	double seconds;
};
typedef void (*jb_progress_fn)(const struct jb_progress *p, void *ud);

/* The outcome of one manifest entry, told as soon as it is known. */
struct jb_file_result {
	const char *path;        /* the manifest path: as sent (sender) or placed (receiver) */
	uint64_t size;
	bool dir;
	bool ok;                 /* verified and committed at the destination */
	char digest[40];         /* "xxh3t:" + 32 hex; see docs/PROTOCOL.md */
	int code;                /* errno of the failure, when !ok */
	const char *error;       /* its message, when !ok */
};
typedef void (*jb_file_fn)(const struct jb_file_result *f, void *ud);

struct jb_xfer_opts {
	int streams;             /* data connections, 1..64 */
	uint32_t block_size;     /* bytes */
	bool encrypt;            /* data streams under TLS */
	bool recursive;          /* directory sources */
	struct jb_tune tune;
	jb_progress_fn progress;
	void *progress_ud;
	/* told of every entry as it finishes, in the order they finish; may
	 * be NULL */
	jb_file_fn on_file;
	void *on_file_ud;
	double connect_timeout;  /* seconds */
	/* set from another thread to end the transfer (it fails, ECANCELED);
	 * may be NULL */
	const volatile int *cancel;
	int max_open_files;      /* files held open at once; 0: [site] max_open_files, else the default */
	int corrupt_block;       /* a test's: flip a byte of this block of the first file once (-1: none) */
	/* push through these relays, in order (jumbo send --via; a peer's
	 * [peer] via): the destination must then be a peer */
	const char *via[JB_MAX_HOPS];
	int nvia;
	bool until_custody;      /* done once the first relay holds it all and has signed for it */
};
JB_EXPORT void jb_xfer_opts_init(struct jb_xfer_opts *o);
/* The size of a session's open-file cache for n streams. */
JB_EXPORT int jb_xfer_max_open(int max_open_files, int nstreams);

/* The first failures of a transfer, kept for callers without on_file. */
#define JB_XFER_MAX_FAILURES 100
struct jb_xfer_failure {
	char *path;
	int code;
	char *error;
};

/* A hop's signed custody receipt of a relayed push (docs/PROTOCOL.md,
 * RECEIPT), as the origin took it. */
#define JB_XFER_MAX_RECEIPTS 8
struct jb_xfer_receipt {
	char hop[JB_WIRE_MAX_NAME + 1];
	bool final;              /* the destination's (committed); else a relay's (staged) */
	bool verified;           /* signed by the key this site pins for hop */
	bool matches;            /* it names what this site sent: the same entries, sizes and digests */
	int64_t time_ns;         /* when the hop held everything */
	uint64_t files, bytes;
};

struct jb_xfer_result {
	char peer[JB_WIRE_MAX_NAME + 1];
	uint64_t files, files_ok;   /* entries (files and directories) in the manifest; verified */
	uint64_t regular_ok;        /* regular files among files_ok */
	uint64_t bytes_total;    /* all payload in the manifest */
	uint64_t bytes_sent;     /* payload moved in this run (less on a resume) */
	uint64_t blocks_resent;
	double seconds;
	int streams;
	uint32_t block_size;
	char cc[16];
	uint64_t failed;         /* entries that failed */
	struct jb_xfer_failure *failures; /* the first JB_XFER_MAX_FAILURES of them */
	size_t nfailures;
	/* a relayed push: the receipts that came back, in order */
	struct jb_xfer_receipt receipts[JB_XFER_MAX_RECEIPTS];
	size_t nreceipts;
	/* until_custody: the relay that took custody ("" when the
	 * destination's answers came first) */
	char custody[JB_WIRE_MAX_NAME + 1];
};
JB_EXPORT void jb_xfer_result_free(struct jb_xfer_result *r);

/* Where a transfer goes: a configured peer or a jumbo://host:port URL. */
struct jb_remote {
	char *address;           /* host:port */
	char *path;              /* path on the remote, relative to its data root */
	const struct jb_peer *peer; /* pinned peer; NULL = any pinned fingerprint */
	char *label;             /* for messages: "kisti" or "host:port" */
	bool dir_hint;           /* the path ended with a slash */
};
/* Parse "PEER:PATH" or "jumbo://HOST:PORT/PATH".  Returns 1 when s names a
 * remote, 0 when it is a local path, negative on error. */
JB_EXPORT int jb_remote_parse(const struct jb_config *c, const char *s, struct jb_remote *ret,
			      struct jb_error *err);
JB_EXPORT void jb_remote_free(struct jb_remote *r);

struct jb_client;
JB_EXPORT int jb_client_new(const struct jb_config *c, struct jb_client **ret, struct jb_error *err);
JB_EXPORT void jb_client_free(struct jb_client *cl);
/* Where the journal of pulls lives (a pull needs one; jumbo(1) uses the
 * user's: JUMBO_STATE_DIR, else $XDG_STATE_HOME/jumbo, else
 * ~/.local/state/jumbo). */
JB_EXPORT int jb_client_set_journal_dir(struct jb_client *cl, const char *dir);
JB_EXPORT int jb_client_push(struct jb_client *cl, const struct jb_remote *dst, char *const *srcs,
			     size_t nsrc, const struct jb_xfer_opts *o, struct jb_xfer_result *ret,
			     struct jb_error *err);
JB_EXPORT int jb_client_pull(struct jb_client *cl, const struct jb_remote *src, const char *dest,
			     const struct jb_xfer_opts *o, struct jb_xfer_result *ret,
			     struct jb_error *err);
struct jb_list_entry {
	char *path;
	uint8_t type;
	uint64_t size;
	uint32_t mode;
	int64_t mtime_ns;
};
JB_EXPORT int jb_client_list(struct jb_client *cl, const struct jb_remote *src,
			     struct jb_list_entry **ret, size_t *ret_n, struct jb_error *err);
JB_EXPORT void jb_list_free(struct jb_list_entry *e, size_t n);

/* A file's partial name, ".NAME.jumbo-part": where it is received (or a
 * job's output copied) until its commit; false when it is too long. */
JB_EXPORT bool jb_partial_name(const char *name, char *buf, size_t len);
/* That partial file in the directory d, made O_EXCL and OFD-locked as a
 * receiving session's are (lib/xfer/partial.c), a stale one that no lock
 * holds removed first: a descriptor (read-write, mode 0600), or -EBUSY
 * when a session holds it. */
JB_EXPORT int jb_partial_create(int d, const char *part);

/* The digest jumbo reports for a local file, for independent checks. */
JB_EXPORT int jb_file_digest(const char *path, uint32_t block_size, char out[40], struct jb_error *err);

/* The strong digest, sha256t (lib/xfer/strong.c): SHA-256 of each block, and
 * of a file SHA-256 over "jumbo sha256t 1\n", its size (u64), its block size
 * (u32) and its blocks' digests in order.  What a relay cannot forge. */
#define JB_STRONG_HEX 80 /* "sha256t:" + 64 hex digits + NUL fit */
struct evp_md_ctx_st;
struct jb_strong {
	struct evp_md_ctx_st *md; /* zeroed: begin makes it; free gives it back */
};
JB_EXPORT int jb_strong_begin(struct jb_strong *s);
JB_EXPORT void jb_strong_update(struct jb_strong *s, const void *p, size_t n);
JB_EXPORT void jb_strong_end(struct jb_strong *s, uint8_t out[JB_STRONG_LEN]);
JB_EXPORT void jb_strong_free(struct jb_strong *s);
JB_EXPORT int jb_strong_root(const uint8_t *blocks, uint64_t nblocks, uint64_t size, uint32_t bs,
			     uint8_t out[JB_STRONG_LEN]);
/* A local file's, as "sha256t:HEX". */
JB_EXPORT int jb_file_strong(const char *path, uint32_t block_size, char out[JB_STRONG_HEX], struct jb_error *err);

/* A relayed dataset's seal, as the catalog keeps it (jb_commit_file's
 * seal), checked now: the signature against fp (the origin's pinned
 * fingerprint), and the sha256t of the file at path (read again) against the
 * root it seals.  0 when both hold; -EKEYREJECTED (a signature or content
 * that does not), -ESTALE (the file is no longer the size or time sealed),
 * -EBADMSG (not a seal), or an I/O error; err says which.  out gets what
 * could be read. */
struct jb_seal_check {
	bool signature_ok;       /* by the pinned key */
	bool content_ok;         /* the file's sha256t is the sealed one */
	char sealed[JB_STRONG_HEX];  /* the root the origin signed, "sha256t:HEX" */
	char now[JB_STRONG_HEX];     /* the file's, "" when not computed */
	char path[JB_PATH_MAX];  /* as the origin named it */
};
JB_EXPORT int jb_seal_check_file(const uint8_t *seal, size_t len, const uint8_t fp[32], const char *path,
				 uint64_t size, int64_t mtime_ns, struct jb_seal_check *out, struct jb_error *err);

/* Told of the files a session commits into the data root, in groups: each
 * file's path below the data root, size, mtime, whole-file digest
 * ("xxh3t:HEX"), and the site they came from and the session's id (hex).
 * Twice per group: JB_COMMIT_BEFORE when the files are whole and durable
 * under their partial names (status 0), then JB_COMMIT_AFTER with each
 * file's status (0: it has its name; else the errno of the failure), so
 * that what the hook records can be settled after a crash in between. */
enum { JB_COMMIT_BEFORE, JB_COMMIT_AFTER };
struct jb_commit_file {
	const char *path;
	uint64_t size;
	int64_t mtime_ns;
	const char *digest;
	int status;
	/* relayed: the relay that delivered it, and the origin's SEAL of it
	 * as it came (a SEAL frame's body less its type byte; NULL, 0 when
	 * none was kept) */
	const char *via;
	const uint8_t *seal;
	size_t seal_len;
};
typedef void (*jb_commit_fn)(void *ud, int phase, const struct jb_commit_file *files, size_t n, const char *origin,
			     const char *session);

/* The site daemon's transfer service. */
struct jb_server;
JB_EXPORT int jb_server_new(const struct jb_config *c, struct jb_server **ret, struct jb_error *err);
JB_EXPORT int jb_server_port(const struct jb_server *s);
/* Set before jb_server_run: called from the receiving session's thread. */
JB_EXPORT void jb_server_on_commit(struct jb_server *s, jb_commit_fn fn, void *ud);
/* A test's, set before jb_server_run: each pull served flips a byte of this
 * block of its first file once (the receiver must catch it); -1 none. */
JB_EXPORT void jb_server_test_corrupt_block(struct jb_server *s, int block);
/* A test's, set before jb_server_run: a relay whose forwarder alters this
 * block of the first file of each relayed transfer once, after reading it
 * from staging and before hashing it (the destination's seal check must
 * catch it); -1 none. */
JB_EXPORT void jb_server_test_tamper_block(struct jb_server *s, int block);
/* Accepts until jb_server_stop(); returns 0 then.  At most 512 connection
 * threads run at once (authenticated or not); further connections are closed
 * as soon as they are accepted, with a warning in the log.  A connection has
 * [site] handshake_timeout from its accept to its HELLO or JOIN, in all; at
 * most [site] max_handshakes are that far at once (a newcomer takes the
 * place of the one waiting longest), at most handshakes_per_address of them
 * from one address (the next is closed at once). */
JB_EXPORT int jb_server_run(struct jb_server *s);
/* Async-signal-safe: asks jb_server_run to return. */
JB_EXPORT void jb_server_stop(struct jb_server *s);
/* After jb_server_run has returned: close the listener and end every
 * connection (running sessions get an ERROR "site NAME is shutting down" and
 * keep their journal for a resume; after half of timeout_ms the rest have
 * their sockets shut down), waiting up to timeout_ms for their threads.
 * 0 when none is left, -ETIMEDOUT otherwise. */
JB_EXPORT int jb_server_drain(struct jb_server *s, int timeout_ms);
/* Frees nothing while connection threads still run (see jb_server_drain). */
JB_EXPORT void jb_server_free(struct jb_server *s);
/* Why a connection was closed before its handshake was through. */
enum jb_closed_reason {
	JB_CLOSED_FULL,      /* "too_many": 512 connection threads, or no descriptor left */
	JB_CLOSED_ADDRESS,   /* "per_address": [site] handshakes_per_address from its address waiting */
	JB_CLOSED_TIMEOUT,   /* "handshake_timeout": no HELLO or JOIN in time */
	JB_CLOSED_PUSHED,    /* "pushed_out": max_handshakes newer ones came */
	JB_CLOSED_NREASONS
};
JB_EXPORT const char *jb_closed_reason_name(enum jb_closed_reason r);
struct jb_server_stats {
	uint64_t sessions, sessions_active, refused, bytes_in, bytes_out;
	uint64_t streams_active;  /* data streams of the sessions running now */
	uint64_t blocks_bad;      /* blocks that failed their digest and were asked for again */
	uint64_t handshakes;      /* connections in their handshake now */
	uint64_t expired_partials; /* stale partial files removed ([site] max_partial_age) */
	uint64_t expired_records;  /* journal records dropped (max_partial_age, max_journal_age) */
	uint64_t closed[JB_CLOSED_NREASONS]; /* since start, by reason */
	/* a relay's ([relay]): transfers passing through now and since start,
	 * bytes they hold in staging now, bytes forwarded to next hops, and
	 * attempts at a next hop after the first (retries) */
	uint64_t relay_active, relay_total, relay_staged, relay_forwarded, relay_retries;
	uint64_t receipts_signed;  /* custody receipts this site signed, as a relay or a destination */
};
JB_EXPORT void jb_server_stats(const struct jb_server *s, struct jb_server_stats *ret);
/* The transfers relayed through this site now, one hop of each: where it
 * comes from and goes, what this site holds of it and has passed on. */
struct jb_relay_info {
	char origin[JB_WIRE_MAX_NAME + 1];
	char from[JB_WIRE_MAX_NAME + 1];   /* the hop before (the origin, or a relay) */
	char next[JB_WIRE_MAX_NAME + 1];   /* the next hop */
	char path[JB_PATH_MAX];            /* where it goes at the destination */
	char key[33];                      /* its staging directory */
	const char *state;   /* receiving, forwarding, retrying, custody (the origin left; delivering alone) */
	uint64_t entries, delivered;       /* entries so far; of them verified by the next hop */
	uint64_t staged, forwarded;        /* bytes held in staging now; passed on, all attempts */
	int attempts;
	double seconds;                    /* since it began here */
};
/* A snapshot, malloc'd (free it); 0 or -ENOMEM. */
JB_EXPORT int jb_server_relays(struct jb_server *s, struct jb_relay_info **ret, size_t *n);
