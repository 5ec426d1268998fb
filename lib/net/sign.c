/* A site's signature on what it hands on through other sites (relays, issue
 * 18): the seal of a transfer's files and their strong digests, a hop's
 * custody receipt.  TLS proves who is at the other end of one connection; a
 * signature proves who wrote something that a relay carried.
 *
 * Ed25519 with the site's identity key (the key of its TLS certificate,
 * made by jumbo keygen).  The signer hands its certificate along; whoever
 * checks takes it only if its SHA-256 fingerprint is the one pinned for that
 * site ([peer] fingerprint), then checks the signature with its public key.
 * Every signature covers a domain string and a NUL before the message
 * ("jumbo seal 1", "jumbo receipt 1"), so a signature on one kind of
 * message never passes for another. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jumbo/config.h"
#include "jumbo/net.h"

struct jb_signer {
	EVP_PKEY *key;
	uint8_t *cert;
	size_t certlen;
	uint8_t fp[32];
};

void jb_signer_free(struct jb_signer *s)
{
	if (!s)
		return;
	EVP_PKEY_free(s->key);
	OPENSSL_free(s->cert);
	free(s);
}

int jb_signer_open(const char *dir, struct jb_signer **ret, struct jb_error *err)
{
	char path[4200];
	struct jb_signer *s = calloc(1, sizeof *s);
	if (!s)
		return jb_oom(err);
	X509 *x = NULL;
	snprintf(path, sizeof path, "%s/key.pem", dir);
	FILE *f = fopen(path, "re");
	if (f) {
		s->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	int r = 0;
	if (!s->key) {
		r = jb_err(err, f ? EINVAL : errno, "%s: %s", path, f ? "not a private key" : strerror(errno));
		goto fail;
	}
	if (EVP_PKEY_id(s->key) != EVP_PKEY_ED25519) {
		r = jb_err(err, EINVAL, "%s: not an Ed25519 key (jumbo keygen makes one)", path);
		goto fail;
	}
	snprintf(path, sizeof path, "%s/cert.pem", dir);
	if ((f = fopen(path, "re"))) {
		x = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	int n = x ? i2d_X509(x, &s->cert) : -1;
	if (n <= 0 || n > JB_CERT_MAX || jb_cert_fingerprint(x, s->fp) < 0) {
		r = jb_err(err, EINVAL, "%s: no certificate of at most %d bytes", path, JB_CERT_MAX);
		goto fail;
	}
	s->certlen = (size_t)n;
	/* the certificate is the key's: a signature checks against it */
	if (EVP_PKEY_eq(X509_get0_pubkey(x), s->key) != 1) {
		r = jb_err(err, EINVAL, "%s: the certificate is not the key's (%s/key.pem)", path, dir);
		goto fail;
	}
	X509_free(x);
	*ret = s;
	return 0;
fail:
	X509_free(x);
	jb_signer_free(s);
	return r;
}

const uint8_t *jb_signer_cert(const struct jb_signer *s, size_t *len)
{
	*len = s->certlen;
	return s->cert;
}

const uint8_t *jb_signer_fingerprint(const struct jb_signer *s) { return s->fp; }

/* domain, NUL, msg: what is signed */
static uint8_t *signed_bytes(const char *domain, const void *msg, size_t len, size_t *ret_len)
{
	size_t dl = strlen(domain) + 1;
	if (len > JB_SIGNED_MAX)
		return NULL;
	uint8_t *b = malloc(dl + len + 1);
	if (!b)
		return NULL;
	memcpy(b, domain, dl);
	if (len)
		memcpy(b + dl, msg, len);
	*ret_len = dl + len;
	return b;
}

int jb_sign(const struct jb_signer *s, const char *domain, const void *msg, size_t len, uint8_t sig[JB_SIG_LEN],
	    struct jb_error *err)
{
	size_t n, siglen = JB_SIG_LEN;
	uint8_t *b = signed_bytes(domain, msg, len, &n);
	if (!b)
		return len > JB_SIGNED_MAX ? jb_err(err, E2BIG, "a signed message is at most %u bytes", JB_SIGNED_MAX)
					   : jb_oom(err);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestSignInit(md, NULL, NULL, NULL, s->key) == 1 &&
		 EVP_DigestSign(md, sig, &siglen, b, n) == 1 && siglen == JB_SIG_LEN;
	EVP_MD_CTX_free(md);
	free(b);
	return ok ? 0 : jb_err(err, EIO, "signing failed (OpenSSL)");
}

int jb_sig_verify(const uint8_t *cert, size_t certlen, const uint8_t fp[32], const char *domain, const void *msg,
		  size_t len, const uint8_t sig[JB_SIG_LEN], struct jb_error *err)
{
	if (!certlen || certlen > JB_CERT_MAX)
		return jb_err(err, EBADMSG, "a certificate of %zu bytes (1 to %d)", certlen, JB_CERT_MAX);
	const uint8_t *p = cert;
	X509 *x = d2i_X509(NULL, &p, (long)certlen);
	if (!x || p != cert + certlen) {
		X509_free(x);
		return jb_err(err, EBADMSG, "not one DER certificate");
	}
	uint8_t got[32];
	int r = 0;
	if (jb_cert_fingerprint(x, got) < 0 || CRYPTO_memcmp(got, fp, 32) != 0) {
		char shown[72];
		jb_fp_format(got, shown);
		r = jb_err(err, EPERM, "the certificate is not the pinned one (it is %s)", shown);
		goto out;
	}
	EVP_PKEY *k = X509_get0_pubkey(x);
	if (!k || EVP_PKEY_id(k) != EVP_PKEY_ED25519) {
		r = jb_err(err, EPERM, "the certificate's key is not Ed25519");
		goto out;
	}
	size_t n;
	uint8_t *b = signed_bytes(domain, msg, len, &n);
	if (!b) {
		r = len > JB_SIGNED_MAX ? jb_err(err, E2BIG, "a signed message is at most %u bytes", JB_SIGNED_MAX)
					: jb_oom(err);
		goto out;
	}
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1 &&
		 EVP_DigestVerify(md, sig, JB_SIG_LEN, b, n) == 1;
	EVP_MD_CTX_free(md);
	free(b);
	if (!ok)
		r = jb_err(err, EPERM, "the signature does not match (%s)", domain);
out:
	X509_free(x);
	return r;
}
