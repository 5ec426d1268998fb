/* jumbo base: the error contract, logging, cleanup helpers, the bounded
 * buffer, small utilities.
 *
 * Error contract (as in crun): a fallible function returns a negative
 * errno-style int (or NULL) and, when given a non-NULL struct jb_error,
 * fills it with a message.  The library never prints; programs print once. */
#pragma once
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define JB_EXPORT __attribute__((visibility("default")))

struct jb_error {
	int code;        /* positive errno value, 0 when unset */
	char msg[512];
};

/* Set err (if not NULL) and return -code. */
JB_EXPORT int jb_err(struct jb_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* jb_err(err, ENOMEM, "out of memory"): -ENOMEM. */
JB_EXPORT int jb_oom(struct jb_error *err);
/* Prefix an already-set message with context ("ctx: old message"). Returns -code. */
JB_EXPORT int jb_err_prefix(struct jb_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Logging: the library reports through one callback. */
enum jb_log_level { JB_LOG_ERROR, JB_LOG_WARN, JB_LOG_INFO, JB_LOG_DEBUG };
typedef void (*jb_log_fn)(enum jb_log_level lvl, const char *msg, void *ud);
JB_EXPORT void jb_log_set(jb_log_fn fn, void *ud, enum jb_log_level max);
JB_EXPORT void jb_log(enum jb_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
JB_EXPORT void jb_log_stderr(enum jb_log_level lvl, const char *msg, void *ud);
/* s as it may go into a log line: control characters (C0, DEL, C1), the
 * backslash and bytes that are not UTF-8 as \xNN, the rest as it is; cut
 * (never inside an escape) to fit len, which must be at least 1.  Returns
 * out.  For what a peer or a user chose: paths, names. */
JB_EXPORT char *jb_log_escape(const char *s, char *out, size_t len);
/* A line an outsider can cause to be logged (a connection refused or cut
 * off) goes through a limit: a burst of JB_LOG_LIMIT_BURST lines, then one
 * a second from each limit; the next line out says how many were left out.
 * A zeroed limit is ready; any thread may use it. */
#define JB_LOG_LIMIT_BURST 5
struct jb_log_limit {
	_Atomic int64_t tat;      /* ms (jb_now): when the limit is all there again, less a second */
	_Atomic uint64_t dropped;
};
JB_EXPORT void jb_log_limited(struct jb_log_limit *l, enum jb_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Cleanup helpers. */
static inline void jb_freep(void *p) { free(*(void **)p); }
static inline void jb_closep(int *fd) { if (*fd >= 0) close(*fd); }
#define _cleanup_free_ __attribute__((cleanup(jb_freep)))
#define _cleanup_close_ __attribute__((cleanup(jb_closep)))
#define JB_TAKE_PTR(p) ({ __typeof__(p) _t = (p); (p) = NULL; _t; })
#define JB_TAKE_FD(fd) ({ int _t = (fd); (fd) = -1; _t; })
#define JB_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define JB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define JB_MAX(a, b) ((a) > (b) ? (a) : (b))

/* The one growable byte buffer: up to limit bytes, which must be set (an
 * outsider's bytes and the frames for a peer go into these), always
 * followed by a NUL at p[len].  jb_buf_put never fails: past the limit, or
 * out of memory, it sets oom and the buffer takes nothing more (check oom
 * once at the end).  jb_buf_add is the same with a result: 0, -E2BIG past
 * the limit, -ENOMEM; jb_buf_sink the same as a libcurl write callback (0
 * ends the transfer).  The encoders of wire.h put into these. */
struct jb_buf {
	uint8_t *p;
	size_t len, cap, limit;
	bool oom;
};
JB_EXPORT void jb_buf_put(struct jb_buf *b, const void *p, size_t n);
JB_EXPORT int jb_buf_add(struct jb_buf *b, const void *d, size_t n);
JB_EXPORT void jb_buf_free(struct jb_buf *b); /* empty again, the limit kept */
JB_EXPORT char *jb_buf_take(struct jb_buf *b); /* the bytes (NUL-terminated, NULL when none), the buffer empty */
JB_EXPORT size_t jb_buf_sink(char *d, size_t size, size_t n, void *b);
static inline void jb_buf_freep(struct jb_buf *b) { jb_buf_free(b); }
#define _cleanup_buf_ __attribute__((cleanup(jb_buf_freep)))

/* Sizes: "8M", "1G", "4096", "1.5G" (binary multiples).  Rates: "10G" in bits
 * per second with decimal k/M/G/T multiples, as iperf3 -b. */
JB_EXPORT int jb_parse_size(const char *s, uint64_t *ret);
JB_EXPORT int jb_parse_rate(const char *s, uint64_t *ret_bps);
JB_EXPORT void jb_format_bytes(uint64_t n, char *buf, size_t len);
JB_EXPORT void jb_hex(const uint8_t *in, size_t n, char *out); /* out: 2n+1 */
JB_EXPORT double jb_now(void); /* monotonic seconds */
JB_EXPORT double jb_wall(void); /* seconds since the epoch (times kept in records) */

/* The process's descriptors (RLIMIT_NOFILE), shared out among what opens
 * them by the dozen: transfer sessions and their connections.  jb_fds_init
 * sets aside `reserve` for everything else (by default JB_FDS_RESERVE, when
 * a first take comes before any init); jb_fds_take takes between min and
 * want of the rest and returns how many, or 0 when not even min are left. */
#define JB_FDS_RESERVE 32
JB_EXPORT void jb_fds_init(int reserve);
JB_EXPORT int jb_fds_take(int want, int min);
JB_EXPORT void jb_fds_give(int n);
JB_EXPORT int jb_fds_left(void);
JB_EXPORT int jb_fds_limit(void); /* RLIMIT_NOFILE's soft limit */

/* Full reads/writes on blocking descriptors (retry EINTR/short). */
JB_EXPORT int jb_read_full(int fd, void *buf, size_t n);  /* 0, -EPIPE on EOF, -errno */
/* The first line of a small file (a password, a token) into buf, without
 * its line end: 0, -ENODATA when it is empty, -errno. */
JB_EXPORT int jb_read_line_file(const char *path, char *buf, size_t n);
JB_EXPORT int jb_write_full(int fd, const void *buf, size_t n);
JB_EXPORT int jb_pread_full(int fd, void *buf, size_t n, off_t off); /* 0, -ENODATA past EOF, -errno */

/* Paths relative to a data root.  jb_path_clean() turns a user path
 * ("/run7/a.h5", "run7//a.h5/") into a relative one ("run7/a.h5"; "" for the
 * root) and refuses ".." components, NUL bytes and over-long names. */
#define JB_PATH_MAX 4096
#define JB_NAME_MAX 255
JB_EXPORT int jb_path_clean(const char *in, char **ret, struct jb_error *err);
/* openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) below dirfd. */
JB_EXPORT int jb_open_beneath(int dirfd, const char *rel, int flags, mode_t mode);
/* The rest of path below prefix ("" for prefix itself), or NULL when path
 * is neither prefix nor below it.  Whole components count: "a/b" holds
 * "a/b" and "a/b/c" but not "a/bc"; "" (the root) holds every path.  Both
 * are clean (jb_path_clean). */
JB_EXPORT const char *jb_path_under(const char *path, const char *prefix);
/* The directory rel below dirfd, resolved beneath it without following any
 * symbolic link (RESOLVE_NO_SYMLINKS: -ELOOP on one), each missing
 * component made first with mode mkmode unless it is 0: an O_PATH
 * descriptor or -errno. */
JB_EXPORT int jb_open_dir_nofollow(int dirfd, const char *rel, mode_t mkmode);
/* mkdir -p of rel below dirfd, each step resolved beneath. */
JB_EXPORT int jb_mkdirs_beneath(int dirfd, const char *rel, mode_t mode);
/* The state directory's own: a directory made 0700 when missing, else
 * without its group's and others' read and write (a group's or others'
 * passage, x, is kept: the jobs' root has one); a file made 0600 when
 * missing (O_EXCL, never opened when there: closing a descriptor would drop
 * a SQLite connection's locks), else chmod 0600 by name. */
JB_EXPORT int jb_private_dir(const char *path, struct jb_error *err);
JB_EXPORT int jb_private_file(const char *path, struct jb_error *err);
/* rm -rf of name below dirfd, never following a link: 0 (also when it was
 * not there) or -errno. */
JB_EXPORT int jb_remove_tree(int dirfd, const char *name);
