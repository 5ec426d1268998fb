#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "jumbo/net.h"

int jb_cert_fingerprint(X509 *cert, uint8_t ret_fp[32])
{
	unsigned int n = 32;
	if (!X509_digest(cert, EVP_sha256(), ret_fp, &n) || n != 32)
		return -EIO;
	return 0;
}

static int write_pem(const char *path, mode_t mode, int (*fn)(FILE *, void *), void *obj,
		     struct jb_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return jb_err(err, errno, "%s: %s", path, strerror(errno));
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return jb_oom(err);
	}
	int ok = fn(f, obj);
	if (fclose(f) != 0 || !ok) {
		unlink(path);
		return jb_err(err, EIO, "%s: write failed", path);
	}
	return 0;
}

static int pem_key(FILE *f, void *k) { return PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL); }
static int pem_cert(FILE *f, void *c) { return PEM_write_X509(f, c); }

int jb_identity_generate(const char *dir, const char *name, uint8_t ret_fp[32], struct jb_error *err)
{
	char kpath[4200], cpath[4200];
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return jb_err(err, errno, "%s: %s", dir, strerror(errno));
	snprintf(kpath, sizeof kpath, "%s/key.pem", dir);
	snprintf(cpath, sizeof cpath, "%s/cert.pem", dir);
	if (access(kpath, F_OK) == 0 || access(cpath, F_OK) == 0)
		return jb_err(err, EEXIST, "%s: an identity already exists (key.pem or cert.pem); refusing to overwrite it", dir);

	int r = -EIO;
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	X509 *x = X509_new();
	if (!key || !x)
		goto out;
	X509_set_version(x, 2);
	uint8_t serial[16];
	FILE *ur = fopen("/dev/urandom", "re");
	if (!ur || fread(serial, 1, sizeof serial, ur) != sizeof serial) {
		if (ur)
			fclose(ur);
		goto out;
	}
	fclose(ur);
	serial[0] &= 0x7f;
	BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 20L * 365 * 24 * 3600);
	X509_NAME *xn = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(xn, "O", MBSTRING_ASC, (const unsigned char *)"jumbo", -1, -1, 0);
	X509_NAME_add_entry_by_txt(xn, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
	X509_set_issuer_name(x, xn);
	X509_set_pubkey(x, key);
	if (!X509_sign(x, key, NULL)) /* Ed25519 signs without a separate digest */
		goto out;
	if ((r = write_pem(kpath, 0600, pem_key, key, err)) < 0)
		goto out;
	if ((r = write_pem(cpath, 0644, pem_cert, x, err)) < 0) {
		unlink(kpath);
		goto out;
	}
	r = jb_cert_fingerprint(x, ret_fp);
out:
	if (r == -EIO && err && !err->code)
		jb_err(err, EIO, "generating identity failed");
	EVP_PKEY_free(key);
	X509_free(x);
	return r;
}

int jb_identity_fingerprint(const char *dir, uint8_t ret_fp[32], struct jb_error *err)
{
	char cpath[4200];
	snprintf(cpath, sizeof cpath, "%s/cert.pem", dir);
	FILE *f = fopen(cpath, "re");
	if (!f)
		return jb_err(err, errno, "%s: %s", cpath, strerror(errno));
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		return jb_err(err, EINVAL, "%s: not a PEM certificate", cpath);
	int r = jb_cert_fingerprint(x, ret_fp);
	X509_free(x);
	return r;
}
