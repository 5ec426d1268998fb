/* jumbo net: sockets, TCP tuning, identities and TLS 1.3 with pinned peers. */
#pragma once
#include <openssl/ssl.h>

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
