/* Internal to lib/xfer: the session shared by both ends and both roles. */
#pragma once
#include <pthread.h>
#include <stdatomic.h>
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
/* Wait up to timeout_ms for a message (or for extra_fd to become readable).
 * 1: c->msg holds a message; 0: timeout or extra_fd ready; <0: error. */
int ctl_recv(struct ctl *c, int timeout_ms, int extra_fd, struct jb_error *err);
int ctl_send_error(struct ctl *c, int code, const char *text);

/* ---- journal: verified blocks, for resume (SQLite) ---- */
struct journal;
int journal_open(const char *path, struct journal **ret, struct jb_error *err);
void journal_close(struct journal *j);
struct journal_rec {
	int64_t id;
	bool committed;
	uint8_t root[JB_DIGEST_LEN];
};
/* Look up key; when size/mtime/block size/origin match, return the record and
 * fill digests/have for recorded blocks; otherwise start a fresh record. */
int journal_begin(struct journal *j, const char *key, uint64_t size, int64_t mtime_ns,
		  uint32_t bs, const char *origin, uint64_t nblocks, uint8_t *digests, uint8_t *have,
		  struct journal_rec *ret, struct jb_error *err);
int journal_add(struct journal *j, int64_t id, uint64_t idx, const uint8_t digest[JB_DIGEST_LEN]);
int journal_commit(struct journal *j, int64_t id, const uint8_t root[JB_DIGEST_LEN]);
int journal_drop(struct journal *j, int64_t id);
int journal_tx(struct journal *j, bool begin);

/* ---- the session ---- */
struct xfile {
	char *path;          /* manifest path, relative */
	char *src;           /* sender: where to open it (relative to srcdir) */
	uint8_t type;
	uint32_t mode;
	uint64_t size;
	int64_t mtime_ns;
	uint64_t nblocks;
	uint8_t *digests;    /* nblocks x 16 */
	uint8_t *have;       /* receiver: bitmap of verified blocks */
	atomic_uint_fast64_t remaining;
	int fd;              /* lazily opened, guarded by the file's lock stripe */
	int dirfd;           /* receiver: parent directory (O_PATH) */
	char *partial;       /* receiver: name of the partial file in dirfd */
	int64_t jid;         /* receiver: journal record */
	bool have_root, verified, done, ok, skip_write;
	bool refetched;      /* every block asked for again, after NEED_END (once) */
	uint8_t root[JB_DIGEST_LEN];
	char *error;
};

struct work {
	uint32_t file;
	uint64_t block;
	bool send;           /* false: hash only (the receiver has it) */
};

enum ev_kind { EV_FILE_HASHED, EV_BLOCK_BAD, EV_FILE_VERIFIED, EV_FATAL, EV_STREAM_DONE };
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

struct session {
	bool sender;
	struct ctl *ctl;
	uint32_t block_size;
	bool encrypt;
	int nstreams;
	struct stream streams[JB_WIRE_MAX_STREAMS];
	char origin[JB_WIRE_MAX_NAME + 1]; /* the sending site's name */
	char cc[16];         /* congestion control of the data streams */

	struct xfile *files;  /* reserved for JB_WIRE_MAX_FILES: never moves */
	size_t nfiles;
	uint64_t bytes_total;
	uint64_t blocks_total;  /* counted against SESSION_MAX_BLOCKS */

	/* sender */
	int srcdir;          /* base for xfile.src: a data root or AT_FDCWD */
	bool src_beneath;    /* open sources with RESOLVE_BENEATH */
	struct work *plan;   /* every block, in manifest order, as NEEDs come in */
	size_t nplan, nextplan;
	size_t plan_upto;    /* files [0, plan_upto) are in the plan */
	uint32_t need_file;  /* the file the last NEED was for */
	bool got_need;       /* a NEED has arrived */
	bool needs_done;     /* NEED_END has arrived */
	struct work *resend;
	size_t nresend, capresend;
	uint64_t resend_total;
	bool stopping;
	bool offered;        /* the manifest has been sent */
	bool window_set;     /* the user chose the socket buffers (--window) */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	int corrupt_block;   /* test hook: flip a byte in this block of file 0, once */

	/* receiver */
	int destdir;         /* O_PATH directory the manifest is placed in */
	bool dest_beneath;
	char *rename_top;    /* replace the first path component with this */
	char *top;           /* the first path component being replaced */
	char *last_path;     /* JB_PATH_MAX bytes: the last manifest entry's path, as sent */
	char *keybase;       /* journal key prefix */
	struct journal *journal;
	bool planned;        /* NEED_END has been sent */
	atomic_size_t ready; /* files [0, ready) are planned: blocks may arrive */
	bool workers;        /* the stream threads run */
	/* the server's: have all data streams joined? (workers may start) */
	bool (*streams_ready)(void *ud);
	void *streams_ready_ud;
	bool no_bye;         /* a receiving client: done at the last FILE_DONE */
	/* the server's: told of each file committed (not of those already there) */
	jb_commit_fn on_commit;
	void *on_commit_ud;
	char session_id[17]; /* hex of the first 8 bytes of the session id */
	const volatile int *cancel; /* a client's: end when it becomes non-zero */
	bool cancelled;
	pthread_mutex_t pdir_lock; /* the last parent directory resolved: */
	char *pdir;          /* its path (pdir_len bytes) */
	size_t pdir_len;
	int pdir_fd;

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
	uint32_t files_done;

	jb_progress_fn progress;
	void *progress_ud;
	double t0, last_progress;
	uint64_t bytes_planned;
};

int session_init(struct session *s, bool sender);
void session_free(struct session *s);
int session_add_file(struct session *s, const struct jb_wire_entry *e, const char *src);
void session_post(struct session *s, const struct event *e);
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
/* XXH3-128 in canonical (big-endian) bytes */
void digest_block(const void *p, size_t n, uint8_t out[JB_DIGEST_LEN]);
/* The same digest computed piecewise, while the piece is still in cache. */
static inline void digest_start(XXH3_state_t *h) { XXH3_128bits_reset(h); }
static inline void digest_update(XXH3_state_t *h, const void *p, size_t n) { XXH3_128bits_update(h, p, n); }
void digest_end(XXH3_state_t *h, uint8_t out[JB_DIGEST_LEN]);
/* The digest of a block read from a file, through a STREAM_CHUNK buffer. */
int digest_file_block(int fd, uint8_t *chunk, off_t off, uint64_t len, uint8_t out[JB_DIGEST_LEN]);
/* Blocks are moved through a buffer this large: it stays in the L2 cache
 * between the copy and the hash. */
#define STREAM_CHUNK (256u * 1024)
void digest_root(const uint8_t *digests, uint64_t n, uint8_t out[JB_DIGEST_LEN]);
void digest_format(const uint8_t d[JB_DIGEST_LEN], char out[40]);
uint64_t block_len(const struct xfile *f, uint64_t b, uint32_t bs);

/* manifest building (sender) */
int manifest_add_local(struct session *s, const char *src, bool recursive, struct jb_error *err);
int manifest_add_beneath(struct session *s, int rootfd, const char *rel, bool recursive,
			 struct jb_error *err);
int manifest_send(struct session *s, struct jb_error *err);
/* Receiver: add the entries of one FILES frame (validated, renamed); check
 * FILES_END against what was added. */
int manifest_take(struct session *s, const struct jb_msg *m, struct jb_error *err);
int manifest_end(struct session *s, const struct jb_msg *m, struct jb_error *err);

/* destination resolution (receiver) */
int dest_setup(struct session *s, int rootfd, const char *dest, bool dest_is_dir, bool beneath,
	       const char *keybase_root, struct jb_error *err);

/* Set-up that needs no data stream, so that it overlaps the streams' own
 * set-up: the sender offers its manifest, the receiver answers it with
 * NEEDs.  sender_run and receiver_run do it first if it has not been done. */
int sender_offer(struct session *s, struct jb_error *err);
int receiver_plan(struct session *s, struct jb_error *err);
int sender_run(struct session *s, struct jb_error *err);
int receiver_run(struct session *s, struct jb_error *err);
/* Read the JOINED a stream's JOIN was answered with: 0, -EACCES when the
 * stream was refused, -errno. */
int stream_joined(struct stream *st);
void session_result(struct session *s, struct jb_xfer_result *r);
/* 2^26 blocks: 1 GiB of digests; 512 TiB at the default block size. */
#define SESSION_MAX_BLOCKS (UINT64_C(1) << 26)
/* Allocate block state for files from index 'from' on (the receiver plans a
 * manifest frame by frame). */
int session_alloc_blocks(struct session *s, size_t from, struct jb_error *err);
int manifest_sort(struct session *s, struct jb_error *err);

/* proto.c */
void join_token(const uint8_t secret[32], const uint8_t session[16], uint16_t index, uint8_t out[32]);
bool join_token_ok(const uint8_t secret[32], const uint8_t session[16], uint16_t index, const uint8_t tok[32]);
void put_hello(struct jb_buf *b, uint8_t op, uint8_t flags, uint16_t streams, uint32_t bs, uint64_t rate,
	       const char *path, const char *name);
void put_welcome(struct jb_buf *b, uint8_t flags, uint16_t streams, uint32_t bs, const uint8_t session[16],
		 const uint8_t secret[32], const char *name);
