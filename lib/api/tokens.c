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

static const char *const scope_names[] = {"read", "transfer", "run", "notebook", "admin"};

const char *jb_scope_name(unsigned scope)
{
	for (unsigned i = 0; i < JB_ARRAY_SIZE(scope_names); i++)
		if (scope == 1u << i)
			return scope_names[i];
	return "?";
}

static bool valid_user(const char *s, size_t n)
{
	if (!n || n > 64 || *s == '.' || *s == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      strchr("._@+-", s[i])))
			return false;
	return true;
}

int jb_scopes_parse(const char *text, unsigned *scopes, char user[65], struct jb_error *err)
{
	*scopes = JB_SCOPE_READ; /* every token reads */
	user[0] = 0;
	for (const char *p = text; p && *p;) {
		size_t n = strcspn(p, ", ");
		const char *colon = memchr(p, ':', n);
		size_t w = colon ? (size_t)(colon - p) : n;
		unsigned bit = 0;
		for (unsigned i = 0; i < JB_ARRAY_SIZE(scope_names) && !bit; i++)
			if (strlen(scope_names[i]) == w && !strncmp(p, scope_names[i], w))
				bit = 1u << i;
		if (!bit || (colon && bit != JB_SCOPE_NOTEBOOK))
			return jb_err(err, EINVAL, "'%.*s' is not a scope (read, transfer, run, notebook, notebook:USER, admin)",
				      (int)n, p);
		if (colon) {
			if (!valid_user(colon + 1, n - w - 1))
				return jb_err(err, EINVAL, "'%.*s': a hub user is 1 to 64 letters, digits and ._@+-", (int)n, p);
			snprintf(user, 65, "%.*s", (int)(n - w - 1), colon + 1);
		}
		*scopes |= bit;
		p += n;
		p += strspn(p, ", ");
	}
	return 0;
}

void jb_scopes_format(unsigned scopes, const char *user, char *out, size_t n)
{
	size_t o = 0;
	out[0] = 0;
	for (unsigned i = 0; i < JB_ARRAY_SIZE(scope_names); i++)
		if (scopes & (1u << i) && o < n)
			o += (size_t)snprintf(out + o, n - o, "%s%s%s%s", o ? "," : "", scope_names[i],
					      (1u << i) == JB_SCOPE_NOTEBOOK && user && *user ? ":" : "",
					      (1u << i) == JB_SCOPE_NOTEBOOK && user ? user : "");
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

int jb_tokens_create(struct jb_tokens *t, const char *name, const char *scopes, char token[JB_TOKEN_LEN + 1],
		     struct jb_error *err)
{
	if (!valid_name(name))
		return jb_err(err, EINVAL, "'%s' cannot name a token (letters, digits, . _ - @; 64 at most)", name);
	unsigned mask;
	char user[65], canon[160];
	int r = jb_scopes_parse(scopes, &mask, user, err);
	if (r < 0)
		return r;
	jb_scopes_format(mask, user, canon, sizeof canon);
	unsigned char rnd[32];
	if (RAND_bytes(rnd, sizeof rnd) != 1)
		return jb_err(err, EIO, "no randomness for a token");
	memcpy(token, "jbt_", 4);
	jb_hex(rnd, sizeof rnd, token + 4);
	char h[65];
	hash_of(token, h);
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(t->db, "INSERT INTO token(name, hash, created, scopes) VALUES(?,?,?,?)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return jb_store_err(err, t->db, rc, "tokens");
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, h, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(st, 3, (double)ts.tv_sec + ts.tv_nsec / 1e9);
	sqlite3_bind_text(st, 4, canon, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	explicit_bzero(rnd, sizeof rnd);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		sqlite3_finalize(st);
		return jb_err(err, EEXIST, "a token named '%s' exists already (jumbo token revoke %s)", name, name);
	}
	if (rc != SQLITE_DONE) {
		r = jb_store_err(err, t->db, rc, "tokens");
		sqlite3_finalize(st);
		return r;
	}
	sqlite3_finalize(st);
	return 0;
}

int jb_tokens_check(struct jb_tokens *t, const char *token, struct jb_token_info *who, struct jb_error *err)
{
	if (!token || strncmp(token, "jbt_", 4) || strlen(token) != JB_TOKEN_LEN)
		return -EACCES;
	char h[65];
	hash_of(token, h);
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(t->db, "SELECT name, scopes FROM token WHERE hash=?", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return jb_store_err(err, t->db, rc, "tokens");
	sqlite3_bind_text(st, 1, h, -1, SQLITE_TRANSIENT);
	int r = -EACCES;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct jb_token_info w = {0};
		snprintf(w.name, sizeof w.name, "%s", sqlite3_column_text(st, 0));
		/* a scope this build does not know (a newer one's) grants nothing */
		if (jb_scopes_parse((const char *)sqlite3_column_text(st, 1), &w.scopes, w.user, NULL) < 0)
			w.scopes = JB_SCOPE_READ;
		if (who)
			*who = w;
		r = 0;
	} else if (rc != SQLITE_DONE) {
		r = jb_store_err(err, t->db, rc, "tokens");
	}
	sqlite3_finalize(st);
	return r;
}

json_t *jb_tokens_list(struct jb_tokens *t)
{
	json_t *a = json_array();
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(t->db, "SELECT name, created, scopes FROM token ORDER BY created", -1, &st, NULL) !=
	    SQLITE_OK)
		return a;
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(a, json_pack("{s:s, s:f, s:s}", "name", sqlite3_column_text(st, 0), "created",
						   sqlite3_column_double(st, 1), "scopes", sqlite3_column_text(st, 2)));
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
		struct jb_token_info who;
		if (jb_tokens_check(t, tok, &who, NULL) == 0 && (who.scopes & JB_SCOPE_ADMIN))
			return 0;
	}
	jb_tokens_revoke(t, "site-admin", NULL);
	int r = jb_tokens_create(t, "site-admin", "admin", tok, err);
	if (r < 0)
		return r;
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || dprintf(fd, "%s\n", tok) < 0 || fsync(fd) < 0 || close(fd) < 0 || rename(tmp, p) < 0)
		r = jb_err(err, errno, "%s: %s", p, strerror(errno));
	explicit_bzero(tok, sizeof tok);
	return r;
}
