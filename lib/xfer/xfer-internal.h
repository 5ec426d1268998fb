/* Internal to lib/xfer: the session shared by both ends and both roles. */
#pragma once
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>
#if defined(__x86_64__) && defined(HAVE_XXH_X86DISPATCH)
/* Redirects XXH3 to the widest vector unit the CPU has (AVX-512/AVX2):
 * 3 to 4 times the SSE2 baseline the library is compiled for. */
#include <xxh_x86dispatch.h>
#endif

#include "jumbo/xfer.h"

/* ---- control channel: one TLS connection, driven by one thread ---- */
struct ctl {
	SSL *ssl;
	int fd;
	struct jb_buf out;
	size_t out_off;      /* out[0, out_off) has been written */
	uint8_t *in;
	size_t start, inlen;  /* unread input is in[start, inlen) */
	struct jb_msg msg;   /* last decoded message; its pointers refer to in */
	size_t consumed;     /* bytes of in belonging to msg, dropped on next recv */
	char peer[JB_WIRE_MAX_NAME + 1];
	bool peer_error;     /* the last error came from the peer's ERROR frame */
};
int ctl_init(struct ctl *c, SSL *ssl, int fd);
void ctl_close(struct ctl *c);
/* Frames are built by the caller with jb_frame_begin/end on c->out.
 * ctl_flush writes them all, waiting as long as it takes (up to 60 s without
 * progress); ctl_send writes what the socket takes now and leaves the rest
 * to be written while ctl_recv waits (or by the next ctl_flush), so that an
 * end sending a long manifest or many NEEDs still reads what comes in. */
int ctl_flush(struct ctl *c, struct jb_error *err);
int ctl_send(struct ctl *c, struct jb_error *err);
/* Bytes queued and not yet written. */
static inline size_t ctl_queued(const struct ctl *c) { return c->out.len - c->out_off; }
/* Wait up to timeout_ms for a message (or for extra_fd to become readable).
 * 1: c->msg holds a message; 0: timeout or extra_fd ready; <0: error. */
int ctl_recv(struct ctl *c, int timeout_ms, int extra_fd, struct jb_error *err);
int ctl_send_error(struct ctl *c, int code, const char *text);

/* ---- journal: verified blocks and committed files, for resume (SQLite) ---- */
struct journal;
int journal_open(const char *path, struct journal **ret, struct jb_error *err);
void journal_close(struct journal *j);
struct journal_rec {
	int64_t id;          /* 0: no usable record */
	bool committed;
	uint8_t root[JB_DIGEST_LEN];
};
/* Look key up.  A record whose size, mtime, block size and origin all match
 * is returned: committed, with its root; or with its blocks marked in have
 * and their digests.  A record that does not match is deleted. */
int journal_find(struct journal *j, const char *key, uint64_t size, int64_t mtime_ns, uint32_t bs,
		 const char *origin, uint64_t nblocks, uint8_t *digests, uint8_t *have, struct journal_rec *ret,
		 struct jb_error *err);
/* A new record, for a file whose blocks will be journalled as they come. */
int journal_new(struct journal *j, const char *key, uint64_t size, int64_t mtime_ns, uint32_t bs,
		const char *origin, int64_t *ret_id, struct jb_error *err);
int journal_add(struct journal *j, int64_t id, uint64_t idx, const uint8_t digest[JB_DIGEST_LEN]);
/* The file is committed: record id (its blocks are dropped), or, for a file
 * that had no record (id 0), a committed record under key. */
int journal_commit(struct journal *j, int64_t id, const char *key, uint64_t size, int64_t mtime_ns, uint32_t bs,
		   const char *origin, const uint8_t root[JB_DIGEST_LEN]);
int journal_drop(struct journal *j, int64_t id);
/* Transactions nest; only the outermost pair is one. */
int journal_tx(struct journal *j, bool begin);
/* Expiry (expire.c): up to max records of files being received that no
 * session has begun since before (Unix seconds), id > after, by id (keys
 * malloc'd); the record of a file being received under key dropped (1, or 0
 * when there is none); committed records older than before deleted (how
 * many). */
struct journal_old {
	int64_t id;
	char *key;
};
int journal_stale(struct journal *j, int64_t before, int64_t after, struct journal_old *out, int max, int *ret_n);
int journal_drop_key(struct journal *j, const char *key);
int64_t journal_expire_committed(struct journal *j, int64_t before);
/* A client's own journal (jumbo get; keys are absolute paths): its
 * committed records older than c->max_journal_age, and those of files being
 * received whose partial file is gone after max_partial_age, dropped; how
 * many (expire.c).  Partial files are the user's, and stay. */
int expire_client_journal(struct journal *j, const struct jb_config *c);

/* ---- the window of entries in flight ---- */

/* Entry i lives in slot i % WINDOW from when it is offered (sender) or
 * received (receiver) until it has had its FILE_DONE and no stream thread
 * uses it; then the slot is freed for entry i + WINDOW. */
#define WINDOW JB_WIRE_WINDOW
#define WMASK (WINDOW - 1u)

struct claim;
/* A file's identity: its device, inode and birth time (0: not kept). */
struct part_id {
	dev_t dev;
	ino_t ino;
	int64_t born_ns;
};

struct xfile {
	uint32_t index;      /* the entry this slot holds, while live */
	bool live;
	uint8_t type;
	uint32_t mode;
	uint32_t src;        /* sender: which source the entry came from (walker) */
	char *path;          /* manifest path; the receiver's as placed */
	uint64_t size;
	int64_t mtime_ns;
	uint64_t nblocks;
	bool blocks;         /* digests and have are set up */
	uint8_t *digests;    /* nblocks x 16: d1 for one block */
	uint8_t *have;       /* bitmap: &have1 for up to 8 blocks */
	uint8_t *taken;      /* relay forwarder: blocks its plan handed out ahead of the next (NULL: none) */
	uint8_t d1[JB_DIGEST_LEN];
	uint8_t have1;
	atomic_uint_fast64_t remaining; /* blocks not yet hashed (sender) / verified (receiver) */
	atomic_int users;    /* stream threads inside one of its blocks */
	atomic_bool closed;  /* receiver: refused, aborted or failed: blocks are dropped */
	atomic_bool failed;  /* sender: the source failed: its blocks are skipped */
	/* the open-file cache (files.c), under s->fc.lock */
	int fd, fdusers;
	uint32_t lru_prev, lru_next; /* slot number + 1; 0: none */
	bool in_lru;
	/* receiver: set by the stream thread that verified the last block,
	 * before it posts EV_FILE_VERIFIED */
	bool prepared;       /* size, mode and mtime applied to the partial file */
	bool synced;         /* and its data synced (files of more than one block) */
	/* receiver: the partial file (partial.c), set by whoever opens it
	 * first (planning, a stream under the open-file cache's lock, the
	 * committer), each after the last */
	bool part_ours;      /* its inode is this session's: made or adopted */
	struct part_id part; /* which file that is */
	/* the control thread's */
	struct claim *claim; /* receiver: the destination path is this session's */
	int64_t jid;         /* receiver: journal record, 0: none */
	bool have_root, verified, done, ok, skip_write, refetched, committing;
	/* receiver at a relay: its FILE_DONE waits for the next hop's answer
	 * (held: it is ready here; relayed: that answer is in, in ok, errcode
	 * and error) */
	bool held, relayed;
	/* sealed transfers (seal.c): the origin's SHA-256 of each block
	 * (nblocks x 32, sender); the destination's wait for the seal */
	uint8_t *strong;
	bool sealed, want_seal;
	uint8_t seal_root[JB_STRONG_LEN];
	uint8_t *seal_body;  /* its SEAL as it came (for the catalog), or NULL */
	size_t seal_len;
	uint8_t xroot[JB_DIGEST_LEN]; /* the sender's XXH3 root, while want_seal */
	double want_since;   /* when want_seal was set */
	uint8_t root[JB_DIGEST_LEN];
	int errcode;
	char *error;
};

struct work {
	uint32_t file;
	uint64_t block;
	bool send;           /* false: hash only (the receiver has it) */
};

enum ev_kind {
	EV_FILE_HASHED,      /* sender: every block of the file hashed */
	EV_FILE_FAILED,      /* a file failed (code, text); the session goes on */
	EV_BLOCK_BAD,        /* receiver: a block failed its digest */
	EV_FILE_VERIFIED,    /* receiver: every block verified (code: preparing it failed) */
	EV_COMMITTED,        /* receiver: the committer is done with the file (code: the failure) */
	EV_FATAL,
	EV_RELAYED,          /* relay receiver: the next hop's FILE_DONE (code, text) for a file */
	EV_BLOCK_HELD,       /* routed receiver: a block is durable here (HELD to the sender) */
	EV_RECEIPT,          /* relay receiver: receipts from beyond wait in the feed (feed_put_receipts) */
};
struct event {
	enum ev_kind kind;
	uint32_t file;
	uint64_t block;
	int code;
	char text[256];
};

struct stream {
	int fd;
	SSL *ssl;
	int index;
	struct session *s;
	pthread_t thread;
	bool started;
	bool join_pending;   /* JOIN sent, its JOINED not read yet (client) */
};

#define LOCK_STRIPES 64
_Static_assert(WINDOW % LOCK_STRIPES == 0, "a slot's entries share a stripe");

/* Open files, at most cap at once for the session (files.c). */
struct filecache {
	pthread_mutex_t lock;
	int cap, n;
	uint32_t head, tail; /* LRU list of slots holding a descriptor, most recent first */
};
#define DIRCACHE 4
/* Directories at the destination, resolved beneath it (receiver). */
struct dircache {
	pthread_mutex_t lock;
	struct {
		char *path;  /* relative to destdir */
		int fd;
		dev_t dev;   /* the directory's identity */
		ino_t ino;
		uint64_t used;
	} e[DIRCACHE];
	uint64_t tick;
};

/* ---- walking the sources (walk.c) ---- */
struct walker;
struct walk_entry {
	uint8_t type;
	uint32_t mode;
	uint64_t size;
	int64_t mtime_ns;
	const char *path;    /* manifest path, valid until the next walker_next */
	uint32_t src;
	int err;             /* a directory whose contents could not be listed */
	char errmsg[200];
};
/* A walker of local paths (under NULL: the user's own, opened as given,
 * relative to rootfd), or of paths below a daemon's data root: rootfd is
 * then the directory under (below the data root; "" for the root itself),
 * and every source is a path at or below under, opened beneath rootfd. */
int walker_new(int rootfd, const char *under, bool recursive, struct walker **ret);
/* A top-level source: src, opened relative to rootfd, arriving as top.
 * children_only: list the directory's children (LIST), not the directory. */
int walker_add(struct walker *w, const char *src, const char *top, bool children_only, struct jb_error *err);
/* Sort the sources by their top name; two with the same name are refused. */
int walker_start(struct walker *w, struct jb_error *err);
/* 1: the next entry in manifest order; 0: none left; <0: error. */
int walker_next(struct walker *w, struct walk_entry *e, struct jb_error *err);
/* Where to open an entry of source src whose manifest path is path. */
int walker_src_path(const struct walker *w, uint32_t src, const char *path, char *buf, size_t len);
/* Open src (a path walker_src_path gave) as the walker opens its own. */
int walker_open(const struct walker *w, const char *src, int flags);
void walker_free(struct walker *w);

struct committer;

struct session {
	bool sender;
	struct ctl *ctl;
	uint32_t block_size;
	bool encrypt;
	int nstreams;
	struct stream streams[JB_WIRE_MAX_STREAMS];
	char origin[JB_WIRE_MAX_NAME + 1]; /* the sending site's name */
	char cc[16];         /* congestion control of the data streams */
	int fds;             /* descriptors taken from the process's budget */

	/* the window: JB_WIRE_WINDOW slots, reserved once, never moved */
	struct xfile *files;
	uint32_t lo;         /* entries below lo are finished and their slots free */
	uint32_t nfiles;     /* entries offered (sender) or received (receiver) */
	bool manifest_done;  /* FILES_END sent (sender) or received (receiver) */
	uint64_t bytes_total;  /* sizes of the entries so far */
	uint64_t blocks_live;  /* blocks of the entries in the window */
	uint64_t entries_done, entries_ok, files_ok;

	int scopefd;         /* the server's: the directory a peer's pull is confined to, or -1 */
	/* relay.c: a transfer passing through this site; the receiver
	 * stages it, the sender forwards it (entries from the feed, from
	 * feed_next on; an entry's src is its index in the feed) */
	struct feed *feed;
	uint32_t feed_next;
	bool routed;         /* receiver: its HELLO had a route: HELD for each block made durable */
	/* seal.c: the origin of a relayed push signs each file's sha256t
	 * (signer); its destination checks it (seal_check, against the
	 * origin's pinned fingerprint) */
	struct jb_signer *signer;
	uint8_t transfer[16];
	bool seal_check;
	uint8_t origin_fp[32];
	struct seal_wait *seals; /* destination: seals of entries not here yet */
	uint32_t nwant;      /* files waiting for their seal */
	double seal_scan;    /* when they were last looked at */
	size_t nseals, capseals;
	uint64_t seal_cursor; /* relay forwarder: the feed's seals below it are sent */
	int tamper_block;    /* test hook (a relay's forwarder): alter this block of file 0 and hash it as altered */
	/* custody.c: receipts of a routed push.  Both ends fold each entry,
	 * in manifest order, into cust once it is held (receiver) or hashed
	 * (sender); a receiver that holds them all signs a RECEIPT */
	struct evp_md_ctx_st *cust;
	uint32_t cust_lo;    /* entries below it are folded */
	uint64_t cust_bytes;
	bool cust_broken;    /* an entry failed: no receipt is sent, none is awaited */
	bool cust_done;      /* every entry folded: cust_content is set */
	uint8_t cust_content[32];
	bool have_transfer;  /* receiver: transfer is the origin's id, from its seals */
	bool receipt_sent;
	struct jb_signer *hop_signer; /* receiver: the site key its receipt is signed with */
	atomic_uint_fast64_t *receipts_signed; /* receiver: the server's count of them */
	char hop_name[JB_WIRE_MAX_NAME + 1];
	const struct jb_config *pins; /* sender: whose [peer] fingerprints receipts are checked with */
	bool until_custody, in_custody, got_final;
	bool sealed_any;     /* origin: a SEAL has gone out (receipts then name its transfer id) */
	bool custody_asked;  /* relay receiver: its HELLO's route has CUSTODY (the origin may leave at its receipt) */
	struct jb_xfer_receipt rcpt[JB_XFER_MAX_RECEIPTS];
	size_t nrcpt;

	/* sender */
	struct walker *walk;
	struct walk_entry pend; /* walked, not yet offered (its frame was full) */
	bool walk_pending;
	uint32_t plan_upto;  /* entries below it have all their NEEDs */
	uint32_t plan_next;  /* the next block handed out: under qlock */
	uint64_t plan_block;
	uint32_t need_file;  /* the file the last NEED was for */
	bool got_need;       /* a NEED has arrived */
	bool needs_done;     /* NEED_END has arrived */
	struct work *resend;
	size_t nresend, capresend;
	uint64_t resend_total;
	uint64_t blocks_planned;
	bool stopping;
	bool offered;        /* the manifest has started */
	bool window_set;     /* the user chose the socket buffers (--window) */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	int corrupt_block;   /* test hook: flip a byte in this block of file 0, once */

	/* receiver */
	int destdir;         /* O_PATH directory the manifest is placed in */
	char *rename_top;    /* replace the first path component with this */
	char *top;           /* the first path component being replaced */
	char *last_path;     /* JB_PATH_MAX bytes: the last manifest entry's path, as sent */
	char *keybase;       /* journal key prefix: the destination below the data root */
	struct journal *journal;
	atomic_uint ready;   /* entries below it have had their NEEDs: blocks may come */
	bool workers;        /* the stream threads run */
	/* the server's: have all data streams joined? (workers may start) */
	bool (*streams_ready)(void *ud, int *ret_joined);
	void *streams_ready_ud;
	double join_deadline; /* the server's: when the streams must have joined */
	bool no_bye;         /* a receiving client: done at the last FILE_DONE */
	jb_commit_fn on_commit; /* the server's: told of each batch committed */
	void *on_commit_ud;
	char session_id[17]; /* hex of the first 8 bytes of the session id */
	mode_t umask;        /* receiver: bits cleared from the modes it gives ([site] umask) */
	struct dircache dc;
	struct committer *cm;
	uint32_t *closing;   /* files whose FILE_DONE waits for their stream threads to leave */
	size_t nclosing, capclosing;
	atomic_bool finished; /* every entry has its FILE_DONE */

	const volatile int *cancel; /* a client's: end when it becomes non-zero */
	bool cancelled;
	struct filecache fc;
	int max_open;        /* the open-file cache's size */
	pthread_mutex_t stripes[LOCK_STRIPES];
	pthread_mutex_t wlocks[LOCK_STRIPES];

	/* worker -> loop events */
	int evfd;
	pthread_mutex_t evlock;
	struct event *ev;
	size_t nev, capev;

	atomic_uint_fast64_t bytes_moved;   /* payload sent (sender) / verified (receiver) */
	atomic_uint_fast64_t blocks_bad;
	atomic_bool fatal;

	jb_progress_fn progress;
	void *progress_ud;
	jb_file_fn on_file;
	void *on_file_ud;
	struct jb_xfer_result *res;  /* failures are collected here as they happen */
	double t0, last_progress;
	uint64_t bytes_planned;
};

static inline struct xfile *slot(struct session *s, uint32_t i) { return &s->files[i & WMASK]; }
/* The slot of entry i if it is still in the window, else NULL. */
static inline struct xfile *live_file(struct session *s, uint32_t i)
{
	if (i < s->lo || i >= s->nfiles)
		return NULL;
	struct xfile *f = slot(s, i);
	return f->live && f->index == i ? f : NULL;
}

int session_init(struct session *s, bool sender);
void session_free(struct session *s);
/* Descriptors a session of n streams asks of the process's budget. */
int session_fds_wanted(int nstreams, int max_open);
/* Take descriptors for up to *nstreams streams; fewer streams when the
 * budget is short, -EMFILE when not even one fits. */
int session_take_fds(struct session *s, int *nstreams, int max_open_files, struct jb_error *err);
/* A new entry in the next slot (the window must have room). */
int session_add_file(struct session *s, const struct jb_wire_entry *e, uint32_t src, struct jb_error *err);
/* Set up block state once the block size is known. */
int file_blocks(struct session *s, struct xfile *f, struct jb_error *err);
/* Free the slots of finished entries from lo on; returns how many. */
uint32_t window_advance(struct session *s);
bool window_full(const struct session *s);
/* An entry is finished: counts, its result to the caller. */
void session_file_result(struct session *s, struct xfile *f);
void session_post(struct session *s, const struct event *e);
void session_post_file(struct session *s, enum ev_kind kind, uint32_t file, int code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* The session cannot go on: EV_FATAL to the control loop (the first only),
 * the stream threads woken.  From any thread. */
void session_fatal(struct session *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A receiver's failure to write, in words ("path escapes the data root"...) */
const char *session_write_error(int r);
size_t session_take_events(struct session *s, struct event **ret);
int stream_read(struct stream *st, void *buf, size_t n);
int stream_write(struct stream *st, const void *buf, size_t n);
void stream_close(struct stream *st);
/* Join the stream threads (they must be ending or idle). */
void session_join_workers(struct session *s);
void session_close_streams(struct session *s);
/* ctl_recv for the control loops: see session.c. */
int session_wait(struct session *s, bool busy, struct jb_error *err);
void session_tick(struct session *s, bool force);
bool session_peer_error(struct session *s, struct jb_error *err);
/* Errors that end the whole session rather than one file: the destination
 * cannot take more (space, quota, a read-only or failing device) or the
 * process is out of memory or descriptors. */
bool error_ends_session(int code);

/* XXH3-128 in canonical (big-endian) bytes */
void digest_block(const void *p, size_t n, uint8_t out[JB_DIGEST_LEN]);
/* The same digest computed piecewise, while the piece is still in cache. */
static inline void digest_start(XXH3_state_t *h) { XXH3_128bits_reset(h); }
static inline void digest_update(XXH3_state_t *h, const void *p, size_t n) { XXH3_128bits_update(h, p, n); }
void digest_end(XXH3_state_t *h, uint8_t out[JB_DIGEST_LEN]);
/* The digest of a block read from a file, through a STREAM_CHUNK buffer;
 * with strong, its SHA-256 too in the same pass (sh: a context to use). */
int digest_file_block(int fd, uint8_t *chunk, off_t off, uint64_t len, uint8_t out[JB_DIGEST_LEN]);
int digest_file_block_strong(int fd, uint8_t *chunk, off_t off, uint64_t len, uint8_t out[JB_DIGEST_LEN],
			     struct jb_strong *sh, uint8_t strong[JB_STRONG_LEN]);
/* ms from now on CLOCK_REALTIME, for pthread_cond_timedwait. */
void cond_deadline(struct timespec *ts, int ms);
/* The digest (dlen bytes, by block) of every block of the regular file at
 * path: *ret (malloc'd, *ret_n of them) and its size; jb_file_digest's and
 * jb_file_strong's one loop. */
int file_digests(const char *path, uint32_t bs, size_t dlen,
		 int (*block)(int fd, uint8_t *chunk, off_t off, uint64_t len, uint8_t *out), uint8_t **ret,
		 uint64_t *ret_n, uint64_t *ret_size, struct jb_error *err);
/* Blocks are moved through a buffer this large: it stays in the L2 cache
 * between the copy and the hash. */
#define STREAM_CHUNK (256u * 1024)
void digest_root(const uint8_t *digests, uint64_t n, uint8_t out[JB_DIGEST_LEN]);
void digest_format(const uint8_t d[JB_DIGEST_LEN], char out[40]);
uint64_t block_len(const struct xfile *f, uint64_t b, uint32_t bs);
static inline bool have_block(const struct xfile *f, uint64_t b) { return f->have[b / 8] & (1u << (b % 8)); }

/* ---- open files and destination directories (files.c) ---- */
void files_init(struct session *s, int cap);
void files_free(struct session *s);
/* A descriptor of f's source (sender) or partial file (receiver), opened on
 * first use, with a use counted until files_put.  Least recently used
 * descriptors without users are closed to stay within the cache. */
int files_get(struct session *s, struct xfile *f);
void files_put(struct session *s, struct xfile *f);
/* Close f's descriptor (now, or when its last user puts it). */
void files_close(struct session *s, struct xfile *f);
/* An fd of the destination directory of path's parent (created if missing),
 * the caller's to close: O_RDONLY where it may, else O_PATH. */
int dir_open(struct session *s, const char *path);
/* The same, and the directory's device and inode. */
int dir_open_id(struct session *s, const char *path, dev_t *ret_dev, ino_t *ret_ino);
const char *base_name(const char *p);

/* ---- partial files and who owns them (partial.c) ---- */
/* ".NAME.jumbo-part" for f; false when it would be too long. */
bool partial_name(const struct xfile *f, char *buf, size_t len);
/* Is this path component (len bytes) a partial file's name? */
bool partial_reserved(const char *name, size_t len);
/* The first component of path that is a partial file's name, or NULL. */
const char *partial_component(const char *path, int *ret_len);
#define PARTIAL_REFUSED "is the name of a partial file (.NAME.jumbo-part is kept for files being received)"
/* Claim f's destination path (in the directory dev, ino) for s until claim_release:
 * 0; -EBUSY with the holder named in why; -EINPROGRESS when the holder is
 * failing (call again with wait, the journal's transaction released: it
 * waits up to 5 s for the holder to let go); another -errno. */
int claim_take(struct session *s, struct xfile *f, dev_t dev, ino_t ino, bool wait, char *why, size_t whylen);
void claim_release(struct xfile *f);
/* Whether a session of this process holds the path name in the directory dev, ino. */
bool claim_held(dev_t dev, ino_t ino, const char *name);
/* A descriptor of f's partial file in d, with its OFD lock (-EBUSY when
 * another holds it): the inode this session made or adopted (-ESTALE when
 * the name holds another now); else, with adopt, the existing one (to
 * resume it); else a new one (O_EXCL). */
int partial_open(struct xfile *f, int d, bool adopt);
/* Remove f's partial file, if it is this session's. */
void partial_drop(struct session *s, struct xfile *f);
/* Rename f's partial file to its name, holding it open and locked, and
 * check that the name then holds that inode. */
int partial_commit(struct xfile *f, int d);
/* The permission bits a received file gets. */
static inline mode_t file_mode(const struct session *s, const struct xfile *f) { return f->mode & 0777 & ~s->umask; }

/* ---- the receiver's committer (commit.c): one thread making files
 * durable and giving them their names, in groups ---- */
int committer_start(struct session *s, struct jb_error *err);
void committer_add(struct session *s, uint32_t file);
/* Commit what is queued, then end the thread. */
void committer_stop(struct session *s);
/* The destination key of f in the journal. */
void journal_key(const struct session *s, const struct xfile *f, char *key, size_t len);

/* ---- manifests (manifest.c) ---- */
int manifest_add_local(struct session *s, const char *src, bool recursive, struct jb_error *err);
/* A daemon's source: rel below the data root, at or below under (the
 * directory rootfd is; see walker_new). */
int manifest_add_beneath(struct session *s, int rootfd, const char *under, const char *rel, bool recursive,
			 bool children_only, struct jb_error *err);
/* Sender: offer more entries while the window and the control queue have
 * room; FILES_END once the walk is over. */
int manifest_pump(struct session *s, struct jb_error *err);
/* Sender: the sources are all added; sort them (two arriving under one
 * name are refused). */
int manifest_sort(struct session *s, struct jb_error *err);
/* Receiver: the entries of one FILES frame (validated, renamed), added to
 * the window; check FILES_END against what was added. */
int manifest_take(struct session *s, const struct jb_msg *m, uint32_t *ret_from, struct jb_error *err);
int manifest_end(struct session *s, const struct jb_msg *m, struct jb_error *err);
/* Where an entry the sender named path is placed here: as named, or with
 * its first component (s->top, that of every entry) replaced by
 * s->rename_top.  0; -ENOTDIR (another first component), -ENAMETOOLONG. */
int manifest_placed(const struct session *s, const char *path, char *out, size_t len);
/* destination resolution (receiver): under NULL for the user's own local
 * dest, else dest is below the data root at or below under, the directory
 * rootfd is (see walker_new) */
int dest_setup(struct session *s, int rootfd, const char *under, const char *dest, bool dest_is_dir,
	       struct jb_error *err);
/* ---- what a peer may (access.c) ---- */
/* The directory a peer's request for path (clean) is confined to: the
 * widest of its read or write prefixes that holds path, opened beneath
 * rootfd (the data root) with no symbolic link on the way, made first for
 * a write; path checked not to lead out of it.  *ret_fd (O_PATH) is the
 * caller's, *ret_under the prefix ("" for the whole root).  A refusal is
 * EACCES naming the peer and the path. */
int access_scope(int rootfd, const struct jb_peer *peer, enum jb_access a, const char *path, int *ret_fd,
		 const char **ret_under, struct jb_error *err);
/* Is path (clean) above one of the peer's read prefixes? */
bool access_leads_to(const struct jb_peer *peer, const char *path);
/* Answer a LIST of such a path: WELCOME, then only the way to the
 * prefixes below it (their next components that are directories). */
int access_list_ways(int rootfd, struct ctl *ctl, const struct jb_peer *peer, const char *path, const char *site,
		     struct jb_error *err);

/* How a refusal names where paths are confined: "the data root", or the
 * prefix below it. */
static inline const char *confinement(const char *under) { return under && *under ? under : "the data root"; }

/* Set-up that needs no data stream, so that it overlaps the streams' own
 * set-up: the sender offers its manifest; the receiver answers what has
 * come of it with NEEDs until its streams have joined. */
int sender_offer(struct session *s, struct jb_error *err);
int sender_run(struct session *s, struct jb_error *err);
/* send_stream.c: a data stream's thread (arg: its struct stream), and the
 * JOINED answers the streams still owe, read once their threads are gone */
void *sender_stream_main(void *arg);
void sender_read_joined(struct session *s);
/* recv_stream.c: a receiving data stream's thread (arg: its struct stream) */
void *receiver_stream_main(void *arg);
int receiver_run(struct session *s, struct jb_error *err);
/* Read the JOINED a stream's JOIN was answered with: 0, -EACCES when the
 * stream was refused, -errno. */
int stream_joined(struct stream *st);
void session_result(struct session *s, struct jb_xfer_result *r);
/* 2^24 blocks in the window at once: 256 MiB of digests; a file of up to
 * 128 TiB at the default block size. */
#define SESSION_MAX_BLOCKS (UINT64_C(1) << 24)

/* ---- relays (relay.c) ---- */
struct feed;
struct jb_server;
/* A push whose route goes on past this site: checked (a relay, for this
 * origin, to a peer it has), staged under [relay] staging, the forwarder
 * started and the next hop's WELCOME waited for (its refusal is ours). */
int relay_prepare(struct jb_server *srv, struct session *s, const struct jb_peer *peer, const struct jb_msg *hello,
		  const char *path, struct jb_error *err);
/* The receiving session is over (r < 0: it failed): the forwarder too. */
void relay_finish(struct session *s, int r);
/* the receiving session's: what it has taken and verified */
void feed_add(struct feed *fd, const struct xfile *f);
void feed_planned(struct feed *fd, const struct xfile *f);
void feed_block(struct feed *fd, uint32_t file, uint64_t block, const uint8_t digest[JB_DIGEST_LEN]);
/* [relay] quota: wait until staging has room for a block of len bytes
 * (back-pressure: the stream stops reading), and count it; false when the
 * session fails meanwhile.  feed_unreserve gives back a block that was
 * not staged after all. */
bool feed_reserve(struct session *s, uint32_t file, uint64_t block, uint64_t len);
void feed_unreserve(struct feed *fd, uint64_t len);
void feed_fail(struct feed *fd, uint32_t file, int code, const char *text);
void feed_end(struct feed *fd);
/* the forwarding session's: 1 an entry, 0 the end, -EAGAIN none yet */
int feed_next_entry(struct session *s, struct walk_entry *w, struct jb_error *err);
/* 1: durable in staging, 0: not yet, -errno: failed upstream (text in buf) */
int feed_ready(struct feed *fd, uint32_t i, uint64_t b, char *buf, size_t len);
int feed_open(struct feed *fd, uint32_t i);
/* The digest block b of entry i was verified with here, if it is staged. */
bool feed_digest(struct feed *fd, uint32_t i, uint64_t b, uint8_t out[JB_DIGEST_LEN]);
/* Was block b of entry i freed here (the next hop said it held it)? */
bool feed_gone(struct feed *fd, uint32_t i, uint64_t b);
/* The next hop holds block b of entry i durably: its staged copy goes. */
void feed_held(struct feed *fd, uint32_t i, uint64_t b);
void feed_result(struct feed *fd, uint32_t i, int status, const char *text);
void feed_attach(struct feed *fd, int wake_fd, atomic_uint_fast64_t *bytes);
void feed_welcomed(struct feed *fd);
/* The first block in [from, to) of entry i that is staged and not marked in
 * taken (which may be NULL), or -1. */
int64_t feed_first_ready(struct feed *fd, uint32_t i, uint64_t from, uint64_t to, const uint8_t *taken);
/* A test's: the block of entry 0 the forwarder is to alter (once), or -1. */
int feed_take_tamper(struct feed *fd);
/* client.c: push a feed to the next hop, with the route past it */
struct route;
int client_push_feed(struct jb_client *cl, const struct jb_remote *dst, struct feed *fd, const struct route *rt,
		     bool dest_dir, const struct jb_xfer_opts *o, struct jb_xfer_result *ret, struct jb_error *err);

/* ---- seals (seal.c) ---- */
/* Origin: a SEAL for entry i (its sha256t root, signed), queued on the
 * control connection ahead of its FILE_END. */
int seal_send(struct session *s, struct xfile *f, struct jb_error *err);
/* Destination: a SEAL from the route: checked against the origin's pin,
 * its entries matched to files (or kept until they come). */
int seal_take(struct session *s, const struct jb_msg *m, struct jb_error *err);
/* Destination: a new entry might have its seal waiting. */
void seal_match(struct session *s, struct xfile *f);
/* Does the sha256t of what arrived (each block's SHA-256, taken as it
 * came: recv_stream.c, or on a resume plan_resume) match the seal?  0, or
 * -EKEYREJECTED. */
int seal_verify(const struct session *s, const struct xfile *f);
void seal_free(struct session *s);
/* Relay: a SEAL passed on as it came (feed_seal), and sent on by the
 * forwarder (feed_put_seals) */
void feed_seal(struct feed *fd, const struct jb_msg *m);
void feed_put_seals(struct session *s, struct jb_buf *out);

/* ---- custody receipts (custody.c) ---- */
/* A routed push's session, either end: folding starts (0, or -ENOMEM). */
int custody_start(struct session *s);
/* Fold the entries that are now held (receiver) or hashed (sender), in
 * manifest order; window_advance calls it before it frees slots. */
void custody_fold(struct session *s);
/* Receiver: every entry held and the manifest over: its RECEIPT, once. */
int custody_send_if_due(struct session *s, struct jb_error *err);
/* Sender: a RECEIPT from the route, checked and kept (and, at a relay,
 * passed on). */
int custody_take(struct session *s, const struct jb_msg *m, struct jb_error *err);
/* Sender: what the receipts say about what was sent, into the result. */
void custody_result(struct session *s, struct jb_xfer_result *r);
void custody_free(struct session *s);
/* Relay: a receipt from beyond the next hop, passed back as it came */
void feed_receipt(struct feed *fd, const struct jb_msg *m);
void feed_put_receipts(struct session *s, struct jb_buf *out);
/* Relay: the origin left once custody was given (a BYE with entries
 * still on their way): the forwarder goes on alone. */
void feed_custody(struct feed *fd);

/* proto.c */
void join_token(const uint8_t secret[32], const uint8_t session[16], uint16_t index, uint8_t out[32]);
bool join_token_ok(const uint8_t secret[32], const uint8_t session[16], uint16_t index, const uint8_t tok[32]);
/* A route (JB_HELLO_ROUTE) for put_hello: where the transfer comes from and
 * the hops after the receiver, the destination last. */
struct route {
	const char *origin;
	uint8_t flags;       /* JB_ROUTE_* */
	int nhops;
	const char *hops[JB_WIRE_MAX_HOPS];
	const char *cc;      /* JB_ROUTE_CC: every hop's congestion control */
};
void put_hello(struct jb_buf *b, uint8_t op, uint8_t flags, uint16_t streams, uint32_t bs, uint64_t rate,
	       const char *path, const char *name, const struct route *rt);
void put_welcome(struct jb_buf *b, uint8_t flags, uint16_t streams, uint32_t bs, const uint8_t session[16],
		 const uint8_t secret[32], const char *name);
