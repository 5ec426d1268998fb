/* API tokens: bearer tokens for the REST API, kept as SHA-256 hashes in
 * the site database.  A token is "jbt_" and 64 hex digits (32 random bytes);
 * it is shown once, when made. */
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "jumbo/api.h"
#include "jumbo/store.h"

struct jb_tokens {
	sqlite3 *db;
};

int jb_tokens_open(const char *state, struct jb_tokens **ret, struct jb_error *err)
{
	struct jb_tokens *t = calloc(1, sizeof *t);
	if (!t)
		return jb_err(err, ENOMEM, "tokens: out of memory");
	int r = jb_store_open(state, &t->db, err);
	if (r < 0) {
		free(t);
		return r;
	}
	*ret = t;
	return 0;
}

void jb_tokens_close(struct jb_tokens *t)
{
	if (!t)
		return;
	sqlite3_close(t->db);
	free(t);
}

static void hash_of(const char *token, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL);
	jb_hex(md, 32, out);
}

static bool valid_name(const char *s)
{
	if (!*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("._-@", *s)))
			return false;
	return true;
}

int jb_tokens_create(struct jb_tokens *t, const char *name, char token[JB_TOKEN_LEN + 1], struct jb_error *err)
{
	if (!valid_name(name))
		return jb_err(err, EINVAL, "'%s' cannot name a token (letters, digits, . _ - @; 64 at most)", name);
	unsigned char rnd[32];
	if (RAND_bytes(rnd, sizeof rnd) != 1)
		return jb_err(err, EIO, "no randomness for a token");
	memcpy(token, "jbt_", 4);
	jb_hex(rnd, sizeof rnd, token + 4);
	char h[65];
	hash_of(token, h);
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(t->db, "INSERT INTO token(name, hash, created) VALUES(?,?,?)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return jb_store_err(err, t->db, rc, "tokens");
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, h, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(st, 3, (double)ts.tv_sec + ts.tv_nsec / 1e9);
	rc = sqlite3_step(st);
	explicit_bzero(rnd, sizeof rnd);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		sqlite3_finalize(st);
		return jb_err(err, EEXIST, "a token named '%s' exists already (jumbo token revoke %s)", name, name);
	}
	if (rc != SQLITE_DONE) {
		int r = jb_store_err(err, t->db, rc, "tokens");
		sqlite3_finalize(st);
		return r;
	}
	sqlite3_finalize(st);
	return 0;
}

int jb_tokens_check(struct jb_tokens *t, const char *token, char name[65])
{
	if (!token || strncmp(token, "jbt_", 4) || strlen(token) != JB_TOKEN_LEN)
		return -EACCES;
	char h[65];
	hash_of(token, h);
	sqlite3_stmt *st;
	int r = -EACCES;
	if (sqlite3_prepare_v2(t->db, "SELECT name FROM token WHERE hash=?", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, h, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(st) == SQLITE_ROW) {
		if (name)
			snprintf(name, 65, "%s", sqlite3_column_text(st, 0));
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

json_t *jb_tokens_list(struct jb_tokens *t)
{
	json_t *a = json_array();
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(t->db, "SELECT name, created FROM token ORDER BY created", -1, &st, NULL) != SQLITE_OK)
		return a;
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(a, json_pack("{s:s, s:f}", "name", sqlite3_column_text(st, 0), "created",
						   sqlite3_column_double(st, 1)));
	sqlite3_finalize(st);
	return a;
}

int jb_tokens_revoke(struct jb_tokens *t, const char *name, struct jb_error *err)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(t->db, "DELETE FROM token WHERE name=?", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return jb_store_err(err, t->db, rc, "tokens");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		int r = jb_store_err(err, t->db, rc, "tokens");
		sqlite3_finalize(st);
		return r;
	}
	sqlite3_finalize(st);
	return sqlite3_changes(t->db) ? 0 : jb_err(err, ENOENT, "no token named '%s'", name);
}

int jb_tokens_site_token(struct jb_tokens *t, const char *state, struct jb_error *err)
{
	/* STATE/api.token: the token of the site's own administrators (root),
	 * which the command line reads when it is given none */
	char p[4200], tmp[4300], tok[JB_TOKEN_LEN + 1] = "";
	snprintf(p, sizeof p, "%s/api.token", state);
	FILE *f = fopen(p, "re");
	if (f) {
		if (!fgets(tok, sizeof tok, f))
			tok[0] = 0;
		fclose(f);
		tok[strcspn(tok, "\r\n")] = 0;
		if (jb_tokens_check(t, tok, NULL) == 0)
			return 0;
	}
	jb_tokens_revoke(t, "site-admin", NULL);
	int r = jb_tokens_create(t, "site-admin", tok, err);
	if (r < 0)
		return r;
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || dprintf(fd, "%s\n", tok) < 0 || fsync(fd) < 0 || close(fd) < 0 || rename(tmp, p) < 0)
		r = jb_err(err, errno, "%s: %s", p, strerror(errno));
	explicit_bzero(tok, sizeof tok);
	return r;
}
