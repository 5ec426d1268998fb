/* The resume journal: which blocks of which partial file are verified, and
 * the whole-file digest of files already committed.  SQLite in WAL mode with
 * synchronous=NORMAL: a commit survives the process being killed (what
 * resume needs); the data itself is fdatasync()ed before a file is renamed. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "xfer-internal.h"

enum { ST_ADD, ST_FIND, ST_BLOCKS, ST_NEW, ST_COMMIT, ST_PUT, ST_DEL_BLOCKS, ST_DEL, ST_STALE, ST_OPEN_ID, ST_OLD, ST_N };
static const char *const sql_of[ST_N] = {
	[ST_ADD] = "INSERT OR REPLACE INTO block(partial, idx, digest) VALUES(?,?,?)",
	[ST_FIND] = "SELECT id, size, mtime_ns, block_size, origin, committed, root FROM partial WHERE key=?",
	[ST_BLOCKS] = "SELECT idx, digest FROM block WHERE partial=?",
	[ST_NEW] = "INSERT INTO partial(key, size, mtime_ns, block_size, origin, created) VALUES(?,?,?,?,?,?)",
	/* created becomes the commit's time: what max_journal_age counts from */
	[ST_COMMIT] = "UPDATE partial SET committed=1, root=?, created=CAST(strftime('%s','now') AS INTEGER) WHERE id=?",
	[ST_PUT] = "INSERT INTO partial(key, size, mtime_ns, block_size, origin, created, committed, root) "
		   "VALUES(?,?,?,?,?,?,1,?) ON CONFLICT(key) DO UPDATE SET size=excluded.size, "
		   "mtime_ns=excluded.mtime_ns, block_size=excluded.block_size, origin=excluded.origin, "
		   "created=excluded.created, committed=1, root=excluded.root",
	[ST_DEL_BLOCKS] = "DELETE FROM block WHERE partial=?",
	[ST_DEL] = "DELETE FROM partial WHERE id=?",
	/* expiry (expire.c) */
	[ST_STALE] = "SELECT id, key FROM partial WHERE committed=0 AND created<? AND id>? ORDER BY id LIMIT ?",
	[ST_OPEN_ID] = "SELECT id FROM partial WHERE key=? AND committed=0",
	[ST_OLD] = "DELETE FROM partial WHERE id IN (SELECT id FROM partial WHERE committed=1 AND created<? LIMIT ?)",
};

struct journal {
	sqlite3 *db;
	/* One connection serves every session of a daemon, and SQLite
	 * transactions belong to the connection: journal_tx holds this
	 * (recursive) lock from BEGIN to COMMIT, so another session's writes
	 * wait instead of landing inside, or failing to begin, this one's. */
	pthread_mutex_t lock;
	int depth;           /* journal_tx nesting, under lock */
	/* Every statement, prepared once: parsing them for each file was most
	 * of a receiver's CPU with 10,000 small files. */
	sqlite3_stmt *st[ST_N];
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS partial("
	" id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, size INTEGER NOT NULL,"
	" mtime_ns INTEGER NOT NULL, block_size INTEGER NOT NULL, origin TEXT NOT NULL,"
	" committed INTEGER NOT NULL DEFAULT 0, root BLOB, created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS block("
	" partial INTEGER NOT NULL, idx INTEGER NOT NULL, digest BLOB NOT NULL,"
	" PRIMARY KEY(partial, idx)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS partial_age ON partial(committed, created);";

int journal_open(const char *path, struct journal **ret, struct jb_error *err)
{
	struct journal *j = calloc(1, sizeof *j);
	if (!j)
		return jb_oom(err);
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&j->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	/* 0600, as every file of the state directory (its -wal and -shm too) */
	int pr = jb_private_file(path, err);
	if (pr < 0) {
		pthread_mutex_destroy(&j->lock);
		free(j);
		return pr;
	}
	if (sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(j->db, 10000);
	if (sqlite3_exec(j->db, schema, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	for (int i = 0; i < ST_N; i++)
		if (sqlite3_prepare_v3(j->db, sql_of[i], -1, SQLITE_PREPARE_PERSISTENT, &j->st[i], NULL) != SQLITE_OK)
			goto fail;
	*ret = j;
	return 0;
fail:;
	int r = jb_err(err, EIO, "journal %s: %s", path, j->db ? sqlite3_errmsg(j->db) : "cannot open");
	journal_close(j);
	return r;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	for (int i = 0; i < ST_N; i++)
		sqlite3_finalize(j->st[i]);
	sqlite3_close(j->db);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

/* BEGIN takes the lock and keeps it; COMMIT releases it.  Calls must pair,
 * from the same thread, and may nest: only the outermost pair is a
 * transaction (a batch of commits inside it shares one). */
int journal_tx(struct journal *j, bool begin)
{
	int r = SQLITE_OK;
	if (begin) {
		pthread_mutex_lock(&j->lock);
		if (j->depth++ == 0)
			r = sqlite3_exec(j->db, "BEGIN", NULL, NULL, NULL);
	} else {
		if (--j->depth == 0)
			r = sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL);
		pthread_mutex_unlock(&j->lock);
	}
	return r == SQLITE_OK ? 0 : -EIO;
}

/* A prepared statement, reset and cleared for new bindings; lock held. */
static sqlite3_stmt *stmt(struct journal *j, int which)
{
	sqlite3_stmt *st = j->st[which];
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

int journal_find(struct journal *j, const char *key, uint64_t size, int64_t mtime_ns, uint32_t bs,
		 const char *origin, uint64_t nblocks, uint8_t *digests, uint8_t *have, struct journal_rec *ret,
		 struct jb_error *err)
{
	int r = 0;
	memset(ret, 0, sizeof *ret);
	pthread_mutex_lock(&j->lock);
	sqlite3_stmt *st = stmt(j, ST_FIND);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int sr = sqlite3_step(st);
	if (sr == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		bool same = (uint64_t)sqlite3_column_int64(st, 1) == size &&
			    sqlite3_column_int64(st, 2) == mtime_ns &&
			    (uint32_t)sqlite3_column_int64(st, 3) == bs &&
			    !strcmp((const char *)sqlite3_column_text(st, 4), origin);
		if (same) {
			ret->id = id;
			ret->committed = sqlite3_column_int(st, 5);
			if (ret->committed && sqlite3_column_bytes(st, 6) == JB_DIGEST_LEN)
				memcpy(ret->root, sqlite3_column_blob(st, 6), JB_DIGEST_LEN);
			else
				ret->committed = false;
			if (!ret->committed) {
				st = stmt(j, ST_BLOCKS);
				sqlite3_bind_int64(st, 1, id);
				while ((sr = sqlite3_step(st)) == SQLITE_ROW) {
					uint64_t idx = (uint64_t)sqlite3_column_int64(st, 0);
					if (idx < nblocks && sqlite3_column_bytes(st, 1) == JB_DIGEST_LEN) {
						memcpy(digests + idx * JB_DIGEST_LEN, sqlite3_column_blob(st, 1),
						       JB_DIGEST_LEN);
						have[idx / 8] |= (uint8_t)(1u << (idx % 8));
					}
				}
				if (sr != SQLITE_DONE)
					r = -EIO;
			}
		} else {
			st = stmt(j, ST_DEL_BLOCKS);
			sqlite3_bind_int64(st, 1, id);
			if (sqlite3_step(st) != SQLITE_DONE)
				r = -EIO;
			st = stmt(j, ST_DEL);
			sqlite3_bind_int64(st, 1, id);
			if (r == 0 && sqlite3_step(st) != SQLITE_DONE)
				r = -EIO;
		}
	} else if (sr != SQLITE_DONE) {
		r = -EIO;
	}
	if (r < 0)
		jb_err(err, EIO, "journal: %s", sqlite3_errmsg(j->db));
	/* a query left on a row would hold its read lock */
	sqlite3_reset(j->st[ST_FIND]);
	sqlite3_reset(j->st[ST_BLOCKS]);
	pthread_mutex_unlock(&j->lock);
	return r;
}

int journal_new(struct journal *j, const char *key, uint64_t size, int64_t mtime_ns, uint32_t bs,
		const char *origin, int64_t *ret_id, struct jb_error *err)
{
	pthread_mutex_lock(&j->lock);
	sqlite3_stmt *st = stmt(j, ST_NEW);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)size);
	sqlite3_bind_int64(st, 3, mtime_ns);
	sqlite3_bind_int64(st, 4, bs);
	sqlite3_bind_text(st, 5, origin, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (int64_t)time(NULL));
	int r = 0;
	if (sqlite3_step(st) == SQLITE_DONE)
		*ret_id = sqlite3_last_insert_rowid(j->db);
	else
		r = jb_err(err, EIO, "journal: %s", sqlite3_errmsg(j->db));
	sqlite3_reset(st);
	pthread_mutex_unlock(&j->lock);
	return r;
}

int journal_add(struct journal *j, int64_t id, uint64_t idx, const uint8_t digest[JB_DIGEST_LEN])
{
	pthread_mutex_lock(&j->lock);
	sqlite3_stmt *st = stmt(j, ST_ADD);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (int64_t)idx);
	sqlite3_bind_blob(st, 3, digest, JB_DIGEST_LEN, SQLITE_STATIC);
	int r = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_reset(st);
	pthread_mutex_unlock(&j->lock);
	return r;
}

static int exec_id(struct journal *j, int which, int64_t id, const uint8_t *blob)
{
	pthread_mutex_lock(&j->lock);
	sqlite3_stmt *st = stmt(j, which);
	int i = 1;
	if (blob)
		sqlite3_bind_blob(st, i++, blob, JB_DIGEST_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, i, id);
	int r = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_reset(st);
	pthread_mutex_unlock(&j->lock);
	return r;
}

int journal_commit(struct journal *j, int64_t id, const char *key, uint64_t size, int64_t mtime_ns, uint32_t bs,
		   const char *origin, const uint8_t root[JB_DIGEST_LEN])
{
	if (id) {
		journal_tx(j, true); /* one transaction, not two */
		int r = exec_id(j, ST_COMMIT, id, root);
		if (r == 0)
			r = exec_id(j, ST_DEL_BLOCKS, id, NULL);
		if (journal_tx(j, false) < 0 && r == 0)
			r = -EIO;
		return r;
	}
	pthread_mutex_lock(&j->lock);
	sqlite3_stmt *st = stmt(j, ST_PUT);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)size);
	sqlite3_bind_int64(st, 3, mtime_ns);
	sqlite3_bind_int64(st, 4, bs);
	sqlite3_bind_text(st, 5, origin, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (int64_t)time(NULL));
	sqlite3_bind_blob(st, 7, root, JB_DIGEST_LEN, SQLITE_STATIC);
	int r = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_reset(st);
	pthread_mutex_unlock(&j->lock);
	return r;
}

int journal_drop(struct journal *j, int64_t id)
{
	if (!id)
		return 0;
	int r = exec_id(j, ST_DEL_BLOCKS, id, NULL);
	if (r == 0)
		r = exec_id(j, ST_DEL, id, NULL);
	return r;
}

/* ---- expiry (expire.c) ---- */

int journal_stale(struct journal *j, int64_t before, int64_t after, struct journal_old *out, int max, int *ret_n)
{
	*ret_n = 0;
	pthread_mutex_lock(&j->lock);
	sqlite3_stmt *st = stmt(j, ST_STALE);
	sqlite3_bind_int64(st, 1, before);
	sqlite3_bind_int64(st, 2, after);
	sqlite3_bind_int(st, 3, max);
	int r = 0, sr;
	while (*ret_n < max && (sr = sqlite3_step(st)) == SQLITE_ROW) {
		char *k = strdup((const char *)sqlite3_column_text(st, 1));
		if (!k) {
			r = -ENOMEM;
			break;
		}
		out[*ret_n].id = sqlite3_column_int64(st, 0);
		out[(*ret_n)++].key = k;
	}
	if (r == 0 && *ret_n < max && sr != SQLITE_DONE)
		r = -EIO;
	sqlite3_reset(st); /* a query left on a row would hold its read lock */
	pthread_mutex_unlock(&j->lock);
	return r;
}

int journal_drop_key(struct journal *j, const char *key)
{
	pthread_mutex_lock(&j->lock);
	sqlite3_stmt *st = stmt(j, ST_OPEN_ID);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int sr = sqlite3_step(st), r = sr == SQLITE_ROW || sr == SQLITE_DONE ? 0 : -EIO;
	int64_t id = sr == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (r == 0 && id)
		r = journal_drop(j, id) < 0 ? -EIO : 1; /* the lock is recursive */
	pthread_mutex_unlock(&j->lock);
	return r;
}

int64_t journal_expire_committed(struct journal *j, int64_t before)
{
	enum { BATCH = 1000 }; /* so that sessions wait for the lock a moment only */
	for (int64_t total = 0;;) {
		pthread_mutex_lock(&j->lock);
		sqlite3_stmt *st = stmt(j, ST_OLD);
		sqlite3_bind_int64(st, 1, before);
		sqlite3_bind_int(st, 2, BATCH);
		int n = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(j->db) : -1;
		sqlite3_reset(st);
		pthread_mutex_unlock(&j->lock);
		if (n < 0)
			return -EIO;
		total += n;
		if (n < BATCH)
			return total;
	}
}
