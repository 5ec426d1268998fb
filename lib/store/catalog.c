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
		      "current, pending) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
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
		bind_text(b, 6, d->source);
		bind_text(b, 7, d->source_id);
		sqlite3_bind_double(b, 8, jb_wall());
		sqlite3_bind_int64(b, 9, d->mtime_ns);
		sqlite3_bind_int(b, 10, !d->pending);
		sqlite3_bind_int(b, 11, d->pending);
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

#define COLS "path, size, digest, sha256, origin, source, source_id, arrived, current, mtime_ns"

static json_t *row(sqlite3_stmt *st)
{
	json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:f, s:b, s:I}", "path", sqlite3_column_text(st, 0), "size",
			      (json_int_t)sqlite3_column_int64(st, 1), "digest", sqlite3_column_text(st, 2), "origin",
			      sqlite3_column_text(st, 4), "source", sqlite3_column_text(st, 5), "arrived",
			      sqlite3_column_double(st, 7), "current", sqlite3_column_int(st, 8), "mtime_ns",
			      (json_int_t)sqlite3_column_int64(st, 9));
	if (sqlite3_column_type(st, 3) != SQLITE_NULL)
		json_object_set_new(o, "sha256", json_string((const char *)sqlite3_column_text(st, 3)));
	if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
		const char *src = (const char *)sqlite3_column_text(st, 5);
		json_object_set_new(o, !strcmp(src, "job") ? "job" : "transfer",
				    json_string((const char *)sqlite3_column_text(st, 6)));
	}
	return o;
}

/* Rows of a query whose text parameters are given in order. */
static json_t *query(struct jb_catalog *c, const char *sql, int n, const char *a, const char *b)
{
	sqlite3_stmt *st;
	json_t *arr = json_array();
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		return arr;
	if (n > 0)
		bind_text(st, 1, a);
	if (n > 1)
		bind_text(st, 2, b);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(arr, row(st));
	sqlite3_finalize(st);
	return arr;
}

json_t *jb_catalog_list(struct jb_catalog *c, const char *prefix)
{
	if (!prefix || !*prefix)
		return query(c, "SELECT " COLS " FROM dataset WHERE current=1 ORDER BY path", 0, NULL, NULL);
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
		     2, prefix, like);
}

static json_t *first(json_t *arr)
{
	json_t *o = json_incref(json_array_get(arr, 0));
	json_decref(arr);
	return o;
}

json_t *jb_catalog_get(struct jb_catalog *c, const char *path)
{
	return first(query(c, "SELECT " COLS " FROM dataset WHERE current=1 AND path=?", 1, path, NULL));
}

json_t *jb_catalog_find(struct jb_catalog *c, const char *path, const char *digest)
{
	return first(query(c, "SELECT " COLS " FROM dataset WHERE path=? AND digest=? AND pending=0 ORDER BY id DESC", 2,
			   path, digest));
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

int jb_catalog_reconcile(struct jb_catalog *c, const char *root)
{
	sqlite3_stmt *st;
	json_t *rows = json_array();
	if (sqlite3_prepare_v2(c->db, "SELECT path, digest, size, mtime_ns FROM dataset WHERE pending=1", -1, &st, NULL) !=
	    SQLITE_OK) {
		json_decref(rows);
		return -EIO;
	}
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(rows, json_pack("{s:s, s:s, s:I, s:I}", "p", sqlite3_column_text(st, 0), "d",
						      sqlite3_column_text(st, 1), "s", (json_int_t)sqlite3_column_int64(st, 2),
						      "m", (json_int_t)sqlite3_column_int64(st, 3)));
	sqlite3_finalize(st);
	int settled = 0;
	size_t i;
	json_t *r;
	json_array_foreach (rows, i, r) {
		const char *p = json_string_value(json_object_get(r, "p"));
		char abs[JB_PATH_MAX + 256];
		struct stat sb;
		snprintf(abs, sizeof abs, "%s/%s", root, p);
		/* the rename happened when the name holds a file of that size and time */
		bool there = lstat(abs, &sb) == 0 && S_ISREG(sb.st_mode) &&
			     (json_int_t)sb.st_size == json_integer_value(json_object_get(r, "s")) &&
			     (json_int_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec ==
				     json_integer_value(json_object_get(r, "m"));
		if (jb_catalog_settle(c, p, json_string_value(json_object_get(r, "d")), there, NULL) == 0 && there)
			settled++;
	}
	json_decref(rows);
	return settled;
}

json_t *jb_catalog_outputs(struct jb_catalog *c, const char *job)
{
	return query(c, "SELECT " COLS " FROM dataset WHERE source='job' AND source_id=? ORDER BY path", 1, job, NULL);
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

json_t *jb_catalog_inputs(struct jb_catalog *c, const char *job)
{
	sqlite3_stmt *st;
	json_t *arr = json_array();
	if (sqlite3_prepare_v2(c->db, "SELECT path, digest FROM job_input WHERE job=? ORDER BY path", -1, &st, NULL) !=
	    SQLITE_OK)
		return arr;
	bind_text(st, 1, job);
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(arr, json_pack("{s:s, s:s}", "path", sqlite3_column_text(st, 0), "digest",
						     sqlite3_column_text(st, 1)));
	sqlite3_finalize(st);
	return arr;
}

json_t *jb_catalog_sha256(struct jb_catalog *c, const char *root, const char *prefix, struct jb_error *err)
{
	json_t *list = jb_catalog_list(c, prefix);
	size_t i;
	json_t *d;
	static __thread unsigned char buf[1 << 20];
	json_array_foreach (list, i, d) {
		if (json_object_get(d, "sha256"))
			continue;
		const char *p = json_string_value(json_object_get(d, "path"));
		char abs[JB_PATH_MAX + 256];
		snprintf(abs, sizeof abs, "%s/%s", root, p);
		int fd = open(abs, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0 || (json_int_t)st.st_size != json_integer_value(json_object_get(d, "size")) ||
		    (json_int_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec !=
			    json_integer_value(json_object_get(d, "mtime_ns"))) {
			if (fd >= 0)
				close(fd);
			continue; /* gone or changed since it was recorded: its digest would not be the dataset's */
		}
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		EVP_DigestInit_ex(md, EVP_sha256(), NULL);
		ssize_t n;
		while ((n = read(fd, buf, sizeof buf)) > 0)
			EVP_DigestUpdate(md, buf, (size_t)n);
		close(fd);
		unsigned char h[32];
		unsigned int hl = 0;
		EVP_DigestFinal_ex(md, h, &hl);
		EVP_MD_CTX_free(md);
		if (n < 0)
			continue;
		char sha[80];
		memcpy(sha, "sha256:", 7);
		jb_hex(h, 32, sha + 7);
		sqlite3_stmt *st2;
		if (sqlite3_prepare_v2(c->db, "UPDATE dataset SET sha256=? WHERE path=? AND current=1", -1, &st2, NULL) !=
		    SQLITE_OK) {
			jb_store_err(err, c->db, sqlite3_extended_errcode(c->db), "catalog");
			json_decref(list);
			return NULL;
		}
		bind_text(st2, 1, sha);
		bind_text(st2, 2, p);
		sqlite3_step(st2);
		sqlite3_finalize(st2);
		json_object_set_new(d, "sha256", json_string(sha));
	}
	return list;
}
