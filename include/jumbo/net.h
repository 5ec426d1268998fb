/* jumbo net: sockets, TCP tuning, identities and TLS 1.3 with pinned peers. */
#pragma once
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "jumbo/base.h"

struct jb_tune {
	uint64_t window;       /* SO_SNDBUF/SO_RCVBUF bytes; 0 = kernel autotuning */
	uint64_t rate_bps;     /* per-socket pacing cap in bits/s; 0 = none */
	const char *cc;        /* congestion control, NULL = "bbr" when available */
};

JB_EXPORT int jb_sock_listen(const char *hostport, int backlog, struct jb_error *err);
JB_EXPORT int jb_sock_connect(const char *hostport, struct jb_error *err);
JB_EXPORT int jb_sock_local_port(int fd);
/* Every connected TCP socket, both ends: TCP_NODELAY (control frames are
 * small and each is awaited: Nagle held a server's NEEDs until WELCOME was
 * acknowledged), and dead-peer detection: SO_KEEPALIVE with these
 * TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT, and TCP_USER_TIMEOUT, so a silent
 * peer is given up after about a minute whether the socket is idle or
 * sending.  jb_sock_connect applies it; servers call it on accept. */
#define JB_SOCK_KEEPIDLE 30           /* s idle before the first probe */
#define JB_SOCK_KEEPINTVL 10          /* s between probes */
#define JB_SOCK_KEEPCNT 3             /* unanswered probes before giving up */
#define JB_SOCK_USER_TIMEOUT_MS 60000 /* ms data may stay unacknowledged */
JB_EXPORT int jb_sock_setup(int fd);
/* Apply tuning; failures that only cost speed are logged, not fatal. */
JB_EXPORT void jb_sock_tune(int fd, const struct jb_tune *t);
/* What congestion control the socket ended up with (for reports). */
JB_EXPORT void jb_sock_cc(int fd, char *buf, size_t len);

/* Identity: DIR/key.pem (Ed25519) and DIR/cert.pem (self-signed X.509). */
JB_EXPORT int jb_identity_generate(const char *dir, const char *name, uint8_t ret_fp[32],
				   struct jb_error *err);
JB_EXPORT int jb_identity_fingerprint(const char *dir, uint8_t ret_fp[32], struct jb_error *err);
JB_EXPORT int jb_cert_fingerprint(X509 *cert, uint8_t ret_fp[32]);

/* Signatures (lib/net/sign.c): Ed25519 with DIR's key, on what a site hands
 * on through relays.  A signature covers DOMAIN, a NUL, then the message (at
 * most JB_SIGNED_MAX bytes); it is checked against a certificate (DER, sent
 * along) whose fingerprint must be the pinned one. */
#define JB_SIG_LEN 64
#define JB_CERT_MAX 4096
#define JB_SIGNED_MAX (4u << 20)
struct jb_signer;
JB_EXPORT int jb_signer_open(const char *identity_dir, struct jb_signer **ret, struct jb_error *err);
JB_EXPORT void jb_signer_free(struct jb_signer *s);
JB_EXPORT const uint8_t *jb_signer_cert(const struct jb_signer *s, size_t *len);
JB_EXPORT const uint8_t *jb_signer_fingerprint(const struct jb_signer *s);
JB_EXPORT int jb_sign(const struct jb_signer *s, const char *domain, const void *msg, size_t len,
		      uint8_t sig[JB_SIG_LEN], struct jb_error *err);
/* 0, or -EPERM (not the pinned certificate, not its signature), -EBADMSG
 * (not a certificate), -E2BIG; err says which. */
JB_EXPORT int jb_sig_verify(const uint8_t *cert, size_t certlen, const uint8_t fp[32], const char *domain,
			    const void *msg, size_t len, const uint8_t sig[JB_SIG_LEN], struct jb_error *err);

/* TLS 1.3 contexts presenting DIR's identity and asking for the peer's. */
JB_EXPORT SSL_CTX *jb_tls_ctx(const char *identity_dir, bool server, struct jb_error *err);
/* Handshake on a blocking socket.  ret_fp gets the peer certificate's fingerprint. */
JB_EXPORT SSL *jb_tls_handshake(SSL_CTX *ctx, int fd, bool server, uint8_t ret_fp[32],
				struct jb_error *err);
JB_EXPORT void jb_tls_free(SSL *ssl);
/* Blocking full read/write over TLS. */
JB_EXPORT int jb_tls_read_full(SSL *ssl, void *buf, size_t n);
JB_EXPORT int jb_tls_write_full(SSL *ssl, const void *buf, size_t n);
/* The OpenSSL error queue as one string (consumes it). */
JB_EXPORT const char *jb_tls_errstr(char *buf, size_t len);

/* The gate: connections that have yet to show what they are (a peer's TLS
 * handshake and HELLO or JOIN, an API client's request), each with a
 * deadline, at most max at once and at most per_addr from one address.
 * A newcomer from an address that has per_addr waiting is refused; one that
 * finds max waiting takes the place of the one that has waited longest (a
 * client that works is through in milliseconds, so the oldest is the one
 * least likely to be one; refusing the newcomer instead would let whoever
 * fills the gate keep everyone else out).  The caller locks it and owns
 * the entries, which it embeds in its own records; the gate only links
 * them, oldest first. */
struct jb_addr {
	uint8_t b[16]; /* IPv6; IPv4 as ::ffff:a.b.c.d */
};
JB_EXPORT void jb_addr_from(const struct sockaddr *sa, struct jb_addr *ret);
JB_EXPORT void jb_addr_format(const struct jb_addr *a, char *buf, size_t len); /* 46 bytes hold any */
struct jb_gate_entry {
	struct jb_gate_entry *prev, *next;
	double since;  /* jb_now() when it came in */
	struct jb_addr addr;
	bool in;       /* linked in the gate */
};
struct jb_gate {
	struct jb_gate_entry *head, *tail; /* oldest first */
	int n, max, per_addr;              /* per_addr 0: no limit per address */
	double timeout;                    /* seconds each may wait */
};
JB_EXPORT void jb_gate_init(struct jb_gate *g, int max, int per_addr, double timeout);
/* e (its addr set) comes in at now: 0, with *ret_out the entry taken out to
 * make room (NULL when there was room); -EMFILE when its address has
 * per_addr in already (e stays out). */
JB_EXPORT int jb_gate_enter(struct jb_gate *g, struct jb_gate_entry *e, double now, struct jb_gate_entry **ret_out);
/* e is through (or gone); nothing when it is not in. */
JB_EXPORT void jb_gate_leave(struct jb_gate *g, struct jb_gate_entry *e);
/* The oldest entry whose deadline has passed at now, taken out, or NULL. */
JB_EXPORT struct jb_gate_entry *jb_gate_expired(struct jb_gate *g, double now);
/* Entries in from a. */
JB_EXPORT int jb_gate_count(const struct jb_gate *g, const struct jb_addr *a);
