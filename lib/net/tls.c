#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "jumbo/net.h"

const char *jb_tls_errstr(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (!e)
		snprintf(buf, len, "connection closed");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* Peers are self-signed and pinned by fingerprint: the chain is not judged
 * here; the caller compares the fingerprint after the handshake and answers
 * an unknown peer with a clear refusal. */
static int accept_any(int ok, X509_STORE_CTX *ctx) { return 1; }

SSL_CTX *jb_tls_ctx(const char *dir, bool server, struct jb_error *err)
{
	char kpath[4200], cpath[4200], e[256];
	snprintf(kpath, sizeof kpath, "%s/key.pem", dir);
	snprintf(cpath, sizeof cpath, "%s/cert.pem", dir);
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!ctx) {
		jb_err(err, ENOMEM, "TLS: %s", jb_tls_errstr(e, sizeof e));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_file(ctx, cpath, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, kpath, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		jb_err(err, EINVAL, "identity %s: %s (create one with 'jumbo keygen --dir %s')", dir,
		       jb_tls_errstr(e, sizeof e), dir);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any);
	return ctx;
}

SSL *jb_tls_handshake(SSL_CTX *ctx, int fd, bool server, uint8_t ret_fp[32], struct jb_error *err)
{
	char e[256];
	SSL *ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd)) {
		jb_err(err, ENOMEM, "TLS: %s", jb_tls_errstr(e, sizeof e));
		SSL_free(ssl);
		return NULL;
	}
	int r = server ? SSL_accept(ssl) : SSL_connect(ssl);
	if (r != 1) {
		jb_err(err, EPROTO, "TLS handshake failed: %s", jb_tls_errstr(e, sizeof e));
		SSL_free(ssl);
		return NULL;
	}
	X509 *peer = SSL_get1_peer_certificate(ssl);
	if (!peer) {
		jb_err(err, EACCES, "TLS: peer presented no certificate");
		SSL_free(ssl);
		return NULL;
	}
	jb_cert_fingerprint(peer, ret_fp);
	X509_free(peer);
	return ssl;
}

void jb_tls_free(SSL *ssl)
{
	if (!ssl)
		return;
	SSL_shutdown(ssl);
	SSL_free(ssl);
}

int jb_tls_read_full(SSL *ssl, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n) {
		size_t got = 0;
		if (!SSL_read_ex(ssl, p, n, &got)) {
			int e = SSL_get_error(ssl, 0);
			ERR_clear_error();
			return e == SSL_ERROR_ZERO_RETURN ? -EPIPE : -ECONNRESET;
		}
		p += got;
		n -= got;
	}
	return 0;
}

int jb_tls_write_full(SSL *ssl, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n) {
		size_t put = 0;
		if (!SSL_write_ex(ssl, p, n, &put)) {
			ERR_clear_error();
			return -ECONNRESET;
		}
		p += put;
		n -= put;
	}
	return 0;
}
