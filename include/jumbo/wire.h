/* jumbo wire: transfer-protocol messages (docs/PROTOCOL.md).  Pure functions:
 * no I/O, no allocation in the decoders, every length checked before use. */
#pragma once
#include "jumbo/base.h"

#define JB_WIRE_VERSION 2
#define JB_WIRE_MAGIC 0x4a4d424fu        /* "JMBO": HELLO */
#define JB_WIRE_MAX_FRAME (1u << 20)     /* control frame body, bytes */
#define JB_WIRE_MIN_BLOCK (64u << 10)
#define JB_WIRE_MAX_BLOCK (64u << 20)
#define JB_WIRE_DEFAULT_BLOCK (8u << 20)
#define JB_WIRE_MAX_STREAMS 64
/* Entries in flight: a sender offers entry i only once every entry below
 * i - JB_WIRE_WINDOW has had its FILE_DONE, and a receiver refuses one
 * beyond that.  Each end holds state for at most this many entries, however
 * large the tree; a manifest may have up to 2^32 - 1 entries. */
#define JB_WIRE_WINDOW (1u << 16)
#define JB_WIRE_MAX_NAME 64
#define JB_WIRE_MAX_MSG 1024             /* ERROR / FILE_DONE text */
#define JB_DIGEST_LEN 16                 /* XXH3-128, big-endian canonical form */
#define JB_STRONG_LEN 32                 /* SHA-256: sha256t (lib/xfer/strong.c) */
#define JB_WIRE_SIG_LEN 64               /* Ed25519 (lib/net/sign.c) */
#define JB_WIRE_CERT_MAX 4096            /* a site's certificate, DER */
#define JB_SEAL_MAX_FILES 1024           /* entries of one SEAL */
#define JB_SEAL_MAX_BLOCKS 16384         /* block digests of one SEAL (512 KiB) */

enum jb_op { JB_OP_PUSH = 1, JB_OP_PULL = 2, JB_OP_LIST = 3 };
enum {
	JB_HELLO_ENCRYPT = 1 << 0,   /* data streams under TLS too */
	JB_HELLO_DEST_DIR = 1 << 1,  /* PUSH: destination names a directory */
	JB_HELLO_RECURSIVE = 1 << 2, /* PULL: a directory source is sent whole */
	JB_HELLO_ROUTE = 1 << 3,     /* PUSH: a route follows (relays; docs/PROTOCOL.md) */
	JB_HELLO_ALL = 15,
};
/* A route's hops after the receiver, the destination last: with
 * JB_MAX_HOPS relays, the first has at most this many still to go */
#define JB_WIRE_MAX_HOPS 4
enum {
	JB_ROUTE_CUSTODY = 1 << 0, /* the origin is done once the first relay holds it all */
	JB_ROUTE_CC = 1 << 1,      /* a congestion control follows the hops: every hop's streams run it */
};
#define JB_WIRE_MAX_CC 15          /* bytes of a congestion control's name */
/* A congestion control's name as a route carries it: 1 to 15 of a-z, 0-9, _. */
JB_EXPORT bool jb_wire_cc_ok(const char *cc);
enum jb_entry_type { JB_ENTRY_FILE = 1, JB_ENTRY_DIR = 2 };

enum jb_msg_type {
	JB_MSG_HELLO = 1,
	JB_MSG_WELCOME = 2,
	JB_MSG_ERROR = 3,
	JB_MSG_FILES = 4,
	JB_MSG_FILES_END = 5,
	JB_MSG_NEED = 6,
	JB_MSG_NEED_END = 7,
	JB_MSG_FILE_END = 8,
	JB_MSG_FILE_DONE = 9,
	JB_MSG_RESEND = 10,
	JB_MSG_BYE = 11,
	JB_MSG_FILE_ABORT = 12,  /* sender: this file cannot be sent (code, text) */
	JB_MSG_NEED_AGAIN = 13,  /* receiver: these blocks after all (a committed copy differed) */
	JB_MSG_SEAL = 14,        /* the origin, through relays: files and their strong digests, signed */
	JB_MSG_RECEIPT = 15,     /* a hop, back: it holds a transfer's files durably, signed */
	JB_MSG_HELD = 16,        /* a routed receiver: these blocks are durable here (layout of NEED) */
};

struct jb_wire_entry {
	uint8_t type;
	char path[JB_PATH_MAX];
	uint64_t size;
	uint32_t mode;
	int64_t mtime_ns;
};

struct jb_msg {
	uint8_t type;
	union {
		struct {
			uint16_t version;
			uint8_t op, flags;
			uint16_t streams;
			uint32_t block_size;
			uint64_t rate_bps;   /* pacing cap for the sending end, 0 = none */
			char path[JB_PATH_MAX];
			char name[JB_WIRE_MAX_NAME + 1];
			/* JB_HELLO_ROUTE: the site the transfer comes from, and the
			 * hops still to go after the receiver (the destination last;
			 * none: the receiver is the destination) */
			char origin[JB_WIRE_MAX_NAME + 1];
			uint8_t nhops, route_flags;
			char hops[JB_WIRE_MAX_HOPS][JB_WIRE_MAX_NAME + 1];
			char route_cc[JB_WIRE_MAX_CC + 1]; /* JB_ROUTE_CC: [a-z0-9_], else "" */
		} hello;
		struct {
			uint16_t version;
			uint8_t flags;
			uint16_t streams;
			uint32_t block_size;
			uint8_t session[16];
			uint8_t secret[32];
			char name[JB_WIRE_MAX_NAME + 1];
		} welcome;
		struct {
			uint16_t code;
			char text[JB_WIRE_MAX_MSG + 1];
		} error;
		struct {
			uint32_t first, count;
			const uint8_t *entries; /* count encoded entries, already validated */
			size_t len;
		} files;
		struct {
			uint32_t count;
			uint64_t bytes;
		} files_end;
		struct {
			uint32_t file, nranges;
			const uint8_t *ranges; /* nranges x (u64 first, u64 count) */
		} need;                    /* NEED, NEED_AGAIN and HELD */
		struct {
			uint32_t file;
			uint8_t digest[JB_DIGEST_LEN];
		} file_end;
		struct {
			uint32_t file;
			uint16_t status; /* 0 = verified and committed, else an errno */
			uint8_t digest[JB_DIGEST_LEN];
			char text[JB_WIRE_MAX_MSG + 1];
		} file_done;
		struct {
			uint32_t file;
			uint64_t block;
		} resend;
		struct {
			uint32_t file;
			uint16_t code;   /* an errno, never 0 */
			char text[JB_WIRE_MAX_MSG + 1];
		} file_abort;
		/* SEAL and RECEIPT: signed (jb_sig_verify over signed_p, signed_n
		 * with the domain "jumbo seal 1" or "jumbo receipt 1") by the site
		 * whose certificate they carry */
		struct {
			uint8_t transfer[16];
			const uint8_t *cert;
			uint16_t certlen;
			uint32_t count;           /* entries, 1 to JB_SEAL_MAX_FILES */
			const uint8_t *entries;   /* count seal entries, already validated */
			size_t len;
			const uint8_t *signed_p;  /* the payload before the signature */
			size_t signed_n;
			const uint8_t *sig;       /* JB_WIRE_SIG_LEN bytes */
		} seal;
		struct {
			uint8_t transfer[16];
			char hop[JB_WIRE_MAX_NAME + 1]; /* the site that signs it */
			int64_t time_ns;          /* when it held everything */
			uint32_t files;
			uint64_t bytes;
			uint8_t content[JB_STRONG_LEN]; /* SHA-256 over its entries (PROTOCOL.md, RECEIPT) */
			uint8_t final;            /* 1: the destination, committed; 0: a relay, staged */
			const uint8_t *cert;
			uint16_t certlen;
			const uint8_t *signed_p;
			size_t signed_n;
			const uint8_t *sig;
		} receipt;
	} u;
};

/* One file (or directory) of a SEAL: its manifest index and entry, its block
 * size, the SHA-256 of its blocks [first, first + n), and, in the piece that
 * ends with its last block, its sha256t.  A large file's digests span
 * several SEALs; a directory has none. */
struct jb_seal_entry {
	uint32_t file;
	struct jb_wire_entry e;
	uint32_t block_size, first, n;
	const uint8_t *digests;   /* n x JB_STRONG_LEN */
	bool has_root;
	uint8_t root[JB_STRONG_LEN];
};

/* Encoders into a struct jb_buf (base.h). */
JB_EXPORT void jb_buf_u8(struct jb_buf *b, uint8_t v);
JB_EXPORT void jb_buf_u16(struct jb_buf *b, uint16_t v);
JB_EXPORT void jb_buf_u32(struct jb_buf *b, uint32_t v);
JB_EXPORT void jb_buf_u64(struct jb_buf *b, uint64_t v);
JB_EXPORT void jb_buf_str(struct jb_buf *b, const char *s);

/* Frames: u32 big-endian body length, then the body (u8 type, payload). */
JB_EXPORT size_t jb_frame_begin(struct jb_buf *b, uint8_t type);
JB_EXPORT void jb_frame_end(struct jb_buf *b, size_t mark);
JB_EXPORT size_t jb_wire_entry_size(const char *path);
JB_EXPORT void jb_wire_put_entry(struct jb_buf *b, const struct jb_wire_entry *e);

/* Decode one frame body (type byte first).  0 or -EBADMSG / -E2BIG. */
JB_EXPORT int jb_wire_decode(const uint8_t *body, size_t len, struct jb_msg *ret);
/* Walk the entries of a decoded FILES message. */
struct jb_wire_iter {
	const uint8_t *p;
	size_t n;
};
JB_EXPORT int jb_wire_entry_next(struct jb_wire_iter *it, struct jb_wire_entry *e);
JB_EXPORT void jb_wire_need_range(const struct jb_msg *m, uint32_t i, uint64_t *first, uint64_t *count);
/* Walk the entries of a decoded SEAL. */
JB_EXPORT int jb_wire_seal_next(struct jb_wire_iter *it, struct jb_seal_entry *se);

/* SEAL and RECEIPT out: begin (the frame), for a SEAL its count entries,
 * then sign what jb_wire_signed_region gives and end with the signature. */
JB_EXPORT size_t jb_wire_seal_begin(struct jb_buf *b, const uint8_t transfer[16], const uint8_t *cert,
				    uint16_t certlen, uint32_t count);
JB_EXPORT void jb_wire_put_seal_entry(struct jb_buf *b, const struct jb_seal_entry *se);
struct jb_wire_receipt {
	uint8_t transfer[16];
	const char *hop;
	int64_t time_ns;
	uint32_t files;
	uint64_t bytes;
	uint8_t content[JB_STRONG_LEN];
	uint8_t final;
	const uint8_t *cert;
	uint16_t certlen;
};
JB_EXPORT size_t jb_wire_receipt_begin(struct jb_buf *b, const struct jb_wire_receipt *r);
/* The payload written since mark (jb_frame_begin's), less its type byte. */
JB_EXPORT const uint8_t *jb_wire_signed_region(const struct jb_buf *b, size_t mark, size_t *len);
JB_EXPORT void jb_wire_sign_end(struct jb_buf *b, size_t mark, const uint8_t sig[JB_WIRE_SIG_LEN]);

/* Data streams. */
#define JB_JOIN_MAGIC 0x4a4d424au  /* "JMBJ" */
#define JB_JOINED_MAGIC 0x4a4d424bu /* "JMBK" */
#define JB_BLOCK_MAGIC 0x4a4d4242u /* "JMBB" */
#define JB_JOIN_LEN 56
#define JB_JOINED_LEN 8
#define JB_BLOCK_HDR_LEN 40
/* JOINED: magic, u16 status (0 = joined, 1 = refused), u16 reserved. */
JB_EXPORT void jb_wire_joined_encode(uint16_t status, uint8_t out[JB_JOINED_LEN]);
/* 0 joined, -EACCES refused, -EBADMSG not a JOINED. */
JB_EXPORT int jb_wire_joined_decode(const uint8_t in[JB_JOINED_LEN]);
struct jb_join {
	uint16_t version;
	uint8_t session[16];
	uint16_t index;
	uint8_t token[32];
};
struct jb_block_hdr {
	uint32_t file;
	uint64_t block;
	uint32_t len;
	uint32_t flags;
	uint8_t digest[JB_DIGEST_LEN];
};
JB_EXPORT void jb_wire_join_encode(const struct jb_join *j, uint8_t out[JB_JOIN_LEN]);
JB_EXPORT int jb_wire_join_decode(const uint8_t in[JB_JOIN_LEN], struct jb_join *ret);
JB_EXPORT void jb_wire_block_encode(const struct jb_block_hdr *h, uint8_t out[JB_BLOCK_HDR_LEN]);
JB_EXPORT int jb_wire_block_decode(const uint8_t in[JB_BLOCK_HDR_LEN], struct jb_block_hdr *ret);
