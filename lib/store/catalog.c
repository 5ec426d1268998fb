/* The catalog: datasets, and what jobs read, in the site database.  One
 * connection in serialized mode (the transfer sessions, the job watcher and
 * the API all write or read it). */
#include <fcntl.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "jumbo/store.h"

/* Statements a landing uses for every file, prepared once: with a
 * million files, preparing them anew was more of the daemon's CPU than
 * the rest of the receiving. */
enum { CS_UNCURRENT, CS_INSERT, CS_SETTLE_ON, CS_SETTLE_DEL, CS_N };
static const char *const cat_sql[CS_N] = {
	[CS_UNCURRENT] = "UPDATE dataset SET current=0 WHERE path=?1 AND current=1",
	[CS_INSERT] = "INSERT INTO dataset(path, size, digest, sha256, origin, source, source_id, arrived, mtime_ns, "
		      "current, pending, via, seal) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
	[CS_SETTLE_ON] = "UPDATE dataset SET current=1, pending=0 WHERE id=(SELECT max(id) FROM dataset WHERE path=?1 "
			 "AND digest=?2 AND pending=1)",
	[CS_SETTLE_DEL] = "DELETE FROM dataset WHERE path=?1 AND digest=?2 AND pending=1",
};

struct jb_catalog {
	sqlite3 *db;
	sqlite3_stmt *st[CS_N];
	int batch;           /* jb_catalog_batch depth, under the connection's mutex */
	bool failed;         /* the batch is to be rolled back (jb_catalog_batch_fail) */
};

/* A cached statement, reset; the connection's mutex held. */
static sqlite3_stmt *cstmt(struct jb_catalog *c, int which)
{
	if (!c->st[which] &&
	    sqlite3_prepare_v3(c->db, cat_sql[which], -1, SQLITE_PREPARE_PERSISTENT, &c->st[which], NULL) != SQLITE_OK)
		return NULL;
	sqlite3_reset(c->st[which]);
	sqlite3_clear_bindings(c->st[which]);
	return c->st[which];
}

int jb_catalog_batch(struct jb_catalog *c, bool begin)
{
	int r = 0;
	if (begin) {
		sqlite3_mutex_enter(sqlite3_db_mutex(c->db));
		if (c->batch++ == 0 && sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			r = -EIO;
		return r;
	}
	if (--c->batch == 0) {
		if (c->failed) {
			sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
			c->failed = false;
			r = -ECANCELED;
		} else if (sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			r = -jb_store_errno(sqlite3_extended_errcode(c->db)) ?: -EIO;
			sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		}
	}
	sqlite3_mutex_leave(sqlite3_db_mutex(c->db));
	return r;
}

void jb_catalog_batch_fail(struct jb_catalog *c)
{
	if (c->batch)
		c->failed = true;
}

sqlite3 *jb_catalog_db(struct jb_catalog *c) { return c->db; }

int jb_catalog_open(const char *state, struct jb_catalog **ret, struct jb_error *err)
{
	struct jb_catalog *c = calloc(1, sizeof *c);
	if (!c)
		return jb_err(err, ENOMEM, "catalog: out of memory");
	int r = jb_store_open(state, &c->db, err);
	if (r < 0) {
		free(c);
		return r;
	}
	*ret = c;
	return 0;
}

void jb_catalog_close(struct jb_catalog *c)
{
	if (!c)
		return;
	for (int i = 0; i < CS_N; i++)
		sqlite3_finalize(c->st[i]);
	sqlite3_close(c->db);
	free(c);
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

int jb_catalog_add(struct jb_catalog *c, const struct jb_dataset_in *d, struct jb_error *err)
{
	int rc = 0;
	/* one transaction: a path is current exactly once */
	if (jb_catalog_batch(c, true) < 0)
		rc = jb_store_err(err, c->db, sqlite3_extended_errcode(c->db), "catalog");
	/* a pending row leaves the current one as it is */
	sqlite3_stmt *a = d->pending ? NULL : cstmt(c, CS_UNCURRENT);
	if (rc == 0 && !d->pending && (!a || (bind_text(a, 1, d->path), sqlite3_step(a) != SQLITE_DONE)))
		rc = jb_store_err(err, c->db, sqlite3_extended_errcode(c->db), "catalog");
	sqlite3_stmt *b = rc == 0 ? cstmt(c, CS_INSERT) : NULL;
	if (rc == 0 && !b)
		rc = jb_store_err(err, c->db, sqlite3_extended_errcode(c->db), "catalog");
	if (rc == 0) {
		bind_text(b, 1, d->path);
		sqlite3_bind_int64(b, 2, (sqlite3_int64)d->size);
		bind_text(b, 3, d->digest);
		bind_text(b, 4, d->sha256);
		bind_text(b, 5, d->origin);
		bind_text(b, 6, jb_dataset_source_name(d->source));
		bind_text(b, 7, d->source_id);
		sqlite3_bind_double(b, 8, jb_wall());
		sqlite3_bind_int64(b, 9, d->mtime_ns);
		sqlite3_bind_int(b, 10, !d->pending);
		sqlite3_bind_int(b, 11, d->pending);
		bind_text(b, 12, d->via);
		if (d->seal && d->seal_len)
			sqlite3_bind_blob(b, 13, d->seal, (int)d->seal_len, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(b, 13);
		if (sqlite3_step(b) != SQLITE_DONE)
			rc = jb_store_err(err, c->db, sqlite3_extended_errcode(c->db), "catalog");
	}
	if (a)
		sqlite3_reset(a);
	if (b)
		sqlite3_reset(b);
	if (jb_catalog_batch(c, false) < 0 && rc == 0)
		rc = jb_store_err(err, c->db, sqlite3_extended_errcode(c->db), "catalog");
	return rc;
}

static const char *const source_names[JB_SOURCE_N] = {"transfer", "job", "found"};

const char *jb_dataset_source_name(enum jb_dataset_source s)
{
	return (unsigned)s < JB_SOURCE_N ? source_names[s] : "found";
}

static enum jb_dataset_source source_of(const char *name)
{
	for (int i = 0; i < JB_SOURCE_N; i++)
		if (name && !strcmp(name, source_names[i]))
			return (enum jb_dataset_source)i;
	return JB_SOURCE_FOUND;
}

void jb_dataset_free(struct jb_dataset *d)
{
	free(d->path);
	free(d->origin);
	free(d->source_id);
	free(d->via);
	free(d->seal);
	memset(d, 0, sizeof *d);
}

void jb_datasets_free(struct jb_datasets *l)
{
	for (size_t i = 0; i < l->n; i++)
		jb_dataset_free(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void jb_job_inputs_free(struct jb_job_inputs *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].path);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NULL : strdup((const char *)sqlite3_column_text(st, i));
}

static void col_copy(sqlite3_stmt *st, int i, char *out, size_t n)
{
	snprintf(out, n, "%s", sqlite3_column_type(st, i) == SQLITE_NULL ? "" : (const char *)sqlite3_column_text(st, i));
}

#define COLS "path, size, digest, sha256, origin, source, source_id, arrived, current, mtime_ns, via, seal"

static void drop_dataset(void *d) { jb_dataset_free(d); }

static int row(sqlite3_stmt *st, void *elem, void *ud)
{
	struct jb_dataset *d = elem;
	(void)ud;
	*d = (struct jb_dataset){.size = (uint64_t)sqlite3_column_int64(st, 1),
				 .source = source_of((const char *)sqlite3_column_text(st, 5)),
				 .arrived = sqlite3_column_double(st, 7),
				 .current = sqlite3_column_int(st, 8) != 0,
				 .mtime_ns = sqlite3_column_int64(st, 9)};
	col_copy(st, 2, d->digest, sizeof d->digest);
	col_copy(st, 3, d->sha256, sizeof d->sha256);
	d->path = col_dup(st, 0);
	d->origin = col_dup(st, 4);
	d->source_id = col_dup(st, 6);
	d->via = col_dup(st, 10);
	int sl = sqlite3_column_bytes(st, 11);
	if (sl > 0 && (d->seal = malloc((size_t)sl))) {
		memcpy(d->seal, sqlite3_column_blob(st, 11), (size_t)sl);
		d->seal_len = (size_t)sl;
	}
	if (!d->path || !d->origin || (!d->source_id && sqlite3_column_type(st, 6) != SQLITE_NULL) ||
	    (!d->via && sqlite3_column_type(st, 10) != SQLITE_NULL) || (sl > 0 && !d->seal)) {
		jb_dataset_free(d);
		return -ENOMEM;
	}
	return 0;
}

/* The rows of a query whose text parameters are given in order; at most
 * one when one is set (a lookup: -ENOENT without a row). */
static int query(struct jb_catalog *c, const char *sql, const char *a, const char *b, bool one, struct jb_datasets *ret,
		 struct jb_error *err)
{
	sqlite3_stmt *st;
	*ret = (struct jb_datasets){0};
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		return jb_store_err(err, c->db, sqlite3_extended_errcode(c->db), "catalog");
	if (a)
		bind_text(st, 1, a);
	if (b)
		bind_text(st, 2, b);
	void *v;
	int r = jb_store_rows(c->db, st, sizeof *ret->v, one, row, NULL, drop_dataset, &v, &ret->n, err, "catalog");
	ret->v = v;
	return r;
}

int jb_catalog_list(struct jb_catalog *c, const char *prefix, struct jb_datasets *ret, struct jb_error *err)
{
	if (!prefix || !*prefix)
		return query(c, "SELECT " COLS " FROM dataset WHERE current=1 ORDER BY path", NULL, NULL, false, ret, err);
	char like[JB_PATH_MAX + 8];
	/* below a directory: "dir/" followed by anything, with LIKE's own
	 * characters escaped */
	size_t o = 0;
	for (const char *p = prefix; *p && o < sizeof like - 4; p++) {
		if (*p == '%' || *p == '_' || *p == '\\')
			like[o++] = '\\';
		like[o++] = *p;
	}
	like[o++] = '/';
	like[o++] = '%';
	like[o] = 0;
	return query(c,
		     "SELECT " COLS " FROM dataset WHERE current=1 AND (path=? OR path LIKE ? ESCAPE '\\') ORDER BY path",
		     prefix, like, false, ret, err);
}

/* The one row of a lookup, moved to *ret. */
static int first(int r, struct jb_datasets *l, struct jb_dataset *ret)
{
	if (r < 0)
		return r;
	if (!l->n) {
		jb_datasets_free(l);
		return -ENOENT;
	}
	*ret = l->v[0];
	free(l->v);
	return 0;
}

int jb_catalog_get(struct jb_catalog *c, const char *path, struct jb_dataset *ret, struct jb_error *err)
{
	struct jb_datasets l;
	return first(query(c, "SELECT " COLS " FROM dataset WHERE current=1 AND path=?", path, NULL, true, &l, err), &l,
		     ret);
}

int jb_catalog_find(struct jb_catalog *c, const char *path, const char *digest, struct jb_dataset *ret,
		    struct jb_error *err)
{
	struct jb_datasets l;
	return first(query(c, "SELECT " COLS " FROM dataset WHERE path=? AND digest=? AND pending=0 ORDER BY id DESC", path,
			   digest, true, &l, err),
		     &l, ret);
}

int jb_catalog_settle(struct jb_catalog *c, const char *path, const char *digest, bool ok, struct jb_error *err)
{
	int rc = 0;
	if (jb_catalog_batch(c, true) < 0)
		rc = jb_store_err(err, c->db, sqlite3_extended_errcode(c->db), "catalog");
	static const int on[] = {CS_UNCURRENT, CS_SETTLE_ON, CS_SETTLE_DEL}, gone[] = {CS_SETTLE_DEL};
	const int *w = ok ? on : gone;
	size_t n = ok ? 3 : 1;
	for (size_t i = 0; i < n && rc == 0; i++) {
		sqlite3_stmt *st = cstmt(c, w[i]);
		if (!st) {
			rc = jb_store_err(err, c->db, sqlite3_extended_errcode(c->db), "catalog");
			break;
		}
		bind_text(st, 1, path);
		if (sqlite3_bind_parameter_count(st) > 1)
			bind_text(st, 2, digest);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = jb_store_err(err, c->db, sqlite3_extended_errcode(c->db), "catalog");
		sqlite3_reset(st);
	}
	if (jb_catalog_batch(c, false) < 0 && rc == 0)
		rc = jb_store_err(err, c->db, sqlite3_extended_errcode(c->db), "catalog");
	return rc;
}

int jb_catalog_reconcile(struct jb_catalog *c, const char *root, struct jb_error *err)
{
	struct jb_datasets pend;
	int r = query(c, "SELECT " COLS " FROM dataset WHERE pending=1", NULL, NULL, false, &pend, err);
	if (r < 0)
		return r;
	int settled = 0;
	for (size_t i = 0; r == 0 && i < pend.n; i++) {
		const struct jb_dataset *d = &pend.v[i];
		char abs[JB_PATH_MAX + 256];
		struct stat sb;
		snprintf(abs, sizeof abs, "%s/%s", root, d->path);
		/* the rename happened when the name holds a file of that size and time */
		bool there = lstat(abs, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == d->size &&
			     (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec == d->mtime_ns;
		r = jb_catalog_settle(c, d->path, d->digest, there, err);
		if (r == 0 && there)
			settled++;
	}
	jb_datasets_free(&pend);
	return r < 0 ? r : settled;
}

int jb_catalog_outputs(struct jb_catalog *c, const char *job, struct jb_datasets *ret, struct jb_error *err)
{
	return query(c, "SELECT " COLS " FROM dataset WHERE source='job' AND source_id=? ORDER BY path", job, NULL, false,
		     ret, err);
}

int jb_catalog_add_input(struct jb_catalog *c, const char *job, const char *path, const char *digest,
			 struct jb_error *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO job_input(job, path, digest) VALUES(?,?,?)", -1, &st,
			       NULL) != SQLITE_OK)
		return jb_store_err(err, c->db, sqlite3_extended_errcode(c->db), "catalog");
	bind_text(st, 1, job);
	bind_text(st, 2, path);
	bind_text(st, 3, digest);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : jb_store_err(err, c->db, sqlite3_extended_errcode(c->db), "catalog");
	sqlite3_finalize(st);
	return rc;
}

static void drop_input(void *elem) { free(((struct jb_job_input *)elem)->path); }

static int input_row(sqlite3_stmt *st, void *elem, void *ud)
{
	struct jb_job_input *in = elem;
	(void)ud;
	col_copy(st, 1, in->digest, sizeof in->digest);
	return (in->path = col_dup(st, 0)) ? 0 : -ENOMEM;
}

int jb_catalog_inputs(struct jb_catalog *c, const char *job, struct jb_job_inputs *ret, struct jb_error *err)
{
	sqlite3_stmt *st;
	*ret = (struct jb_job_inputs){0};
	if (sqlite3_prepare_v2(c->db, "SELECT path, digest FROM job_input WHERE job=? ORDER BY path", -1, &st, NULL) !=
	    SQLITE_OK)
		return jb_store_err(err, c->db, sqlite3_extended_errcode(c->db), "catalog");
	bind_text(st, 1, job);
	void *v;
	int r = jb_store_rows(c->db, st, sizeof *ret->v, 0, input_row, NULL, drop_input, &v, &ret->n, err, "catalog");
	ret->v = v;
	return r;
}

/* The SHA-256 of the file of d as "sha256:HEX": 0, or -ESTALE when the file
 * is gone or no longer the dataset's (its size or time changed). */
static int file_sha256(const char *root, const struct jb_dataset *d, char out[72])
{
	static __thread unsigned char buf[1 << 20];
	char abs[JB_PATH_MAX + 256];
	snprintf(abs, sizeof abs, "%s/%s", root, d->path);
	_cleanup_close_ int fd = open(abs, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size != d->size ||
	    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != d->mtime_ns)
		return -ESTALE;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(md);
		return -ENOMEM;
	}
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		EVP_DigestUpdate(md, buf, (size_t)n);
	unsigned char h[32];
	unsigned int hl = 0;
	int ok = n == 0 && EVP_DigestFinal_ex(md, h, &hl);
	EVP_MD_CTX_free(md);
	if (!ok)
		return -EIO;
	memcpy(out, "sha256:", 7);
	jb_hex(h, 32, out + 7);
	return 0;
}

int jb_catalog_sha256(struct jb_catalog *c, const char *root, const char *prefix, struct jb_datasets *ret,
		      struct jb_error *err)
{
	int r = jb_catalog_list(c, prefix, ret, err);
	for (size_t i = 0; r == 0 && i < ret->n; i++) {
		struct jb_dataset *d = &ret->v[i];
		char sha[72];
		if (d->sha256[0] || file_sha256(root, d, sha) < 0)
			continue; /* known, or its digest would not be the dataset's */
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(c->db, "UPDATE dataset SET sha256=? WHERE path=? AND current=1", -1, &st, NULL) !=
		    SQLITE_OK) {
			r = jb_store_err(err, c->db, sqlite3_extended_errcode(c->db), "catalog");
			break;
		}
		bind_text(st, 1, sha);
		bind_text(st, 2, d->path);
		int rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			r = jb_store_err(err, c->db, rc, "catalog");
		else
			memcpy(d->sha256, sha, sizeof sha);
	}
	if (r < 0)
		jb_datasets_free(ret);
	return r;
}
