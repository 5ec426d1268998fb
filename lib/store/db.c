/* The site database, STATE/site.db: every durable record of a site but the
 * resume journal (datasets, job inputs, jobs, durable transfers, tokens).
 * One schema, grown by numbered steps recorded in PRAGMA user_version; the
 * first step also takes in the records of the databases a site kept before
 * (catalog.db, jobs.db, transfers.db, tokens.db), which are renamed to
 * NAME.db.imported once their rows are in.
 *
 * Each module opens its own connection (serialized mode: its threads share
 * it), all in WAL mode, so readers never wait for a writer and writers wait
 * for each other through the busy timeout. */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "jumbo/store.h"

/* Step 1 is the schema of the four databases as the last build that kept
 * them wrote them (with every column their ALTERs had added). */
static const char step1[] =
	"CREATE TABLE dataset("
	" id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER NOT NULL, digest TEXT NOT NULL,"
	" sha256 TEXT, origin TEXT NOT NULL, source TEXT NOT NULL, source_id TEXT, arrived REAL NOT NULL,"
	" current INTEGER NOT NULL DEFAULT 1, mtime_ns INTEGER NOT NULL DEFAULT 0,"
	" pending INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX dataset_path ON dataset(path, current);"
	"CREATE INDEX dataset_source ON dataset(source_id);"
	"CREATE TABLE job_input("
	" job TEXT NOT NULL, path TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY(job, path));"
	"CREATE TABLE job("
	" id TEXT PRIMARY KEY, state INTEGER NOT NULL, spec TEXT NOT NULL, image TEXT NOT NULL,"
	" digest TEXT, created REAL NOT NULL, started REAL, finished REAL, exit_code INTEGER,"
	" reason TEXT, sup_pid INTEGER, max_memory INTEGER, cancel INTEGER NOT NULL DEFAULT 0, output TEXT,"
	" address TEXT, backend TEXT, ext_id TEXT, node TEXT, port INTEGER);"
	"CREATE TABLE transfer("
	" id TEXT PRIMARY KEY, op TEXT NOT NULL, request TEXT NOT NULL, peer TEXT NOT NULL, state INTEGER NOT NULL,"
	" attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL, created REAL NOT NULL, started REAL,"
	" finished REAL, bytes_total INTEGER, bytes_sent INTEGER, seconds REAL, gbps REAL, files INTEGER,"
	" error TEXT, cancel INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE token("
	" name TEXT PRIMARY KEY, hash TEXT UNIQUE NOT NULL, created REAL NOT NULL, last_used REAL);";

/* Step 2: who may do what (issue "Who may do what").  Tokens made before
 * could do everything and keep it (admin), so that no site's automation
 * stops at the upgrade; new tokens get what they are given (read by
 * default).  Jobs and transfers record the token that made them (NULL:
 * the site's own, or made before: admin sees them). */
static const char step2[] =
	"ALTER TABLE token ADD COLUMN scopes TEXT NOT NULL DEFAULT 'read,admin';"
	"ALTER TABLE job ADD COLUMN owner TEXT;"
	"ALTER TABLE transfer ADD COLUMN owner TEXT;";

/* Step 3: relayed datasets (issue 18) name the relay that delivered them
 * and keep the origin's signed SEAL, which jumbo provenance --verify checks
 * the file against. */
static const char step3[] =
	"ALTER TABLE dataset ADD COLUMN via TEXT;"
	"ALTER TABLE dataset ADD COLUMN seal BLOB;";

static const struct step {
	const char *what;
	const char *sql;
} steps[] = {
	{"the site's tables", step1},
	{"token scopes, and the owners of jobs and transfers", step2},
	{"the relay and the origin's seal of relayed datasets", step3},
};
#define NSTEPS ((int)JB_ARRAY_SIZE(steps))

/* The databases of earlier builds, and the tables each held. */
static const struct legacy {
	const char *file, *schema;
	const char *tables[3];
} legacies[] = {
	{"catalog.db", "old_catalog", {"dataset", "job_input"}},
	{"jobs.db", "old_jobs", {"job"}},
	{"transfers.db", "old_transfers", {"transfer"}},
	{"tokens.db", "old_tokens", {"token"}},
};
#define NLEGACY JB_ARRAY_SIZE(legacies)

int jb_store_errno(int sqlite_rc)
{
	switch (sqlite_rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE: return 0;
	case SQLITE_FULL: return ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return EBUSY;
	case SQLITE_NOMEM: return ENOMEM;
	case SQLITE_READONLY: return EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH: return EACCES;
	case SQLITE_CONSTRAINT: return EEXIST;
	case SQLITE_NOTFOUND: return ENOENT;
	case SQLITE_CANTOPEN: return ENOENT;
	case SQLITE_TOOBIG: return E2BIG;
	case SQLITE_MISMATCH:
	case SQLITE_RANGE: return EINVAL;
	default: return EIO;
	}
}

int jb_store_err(struct jb_error *err, sqlite3 *db, int sqlite_rc, const char *what)
{
	int code = jb_store_errno(sqlite_rc);
	if (!code)
		code = EIO;
	/* SQLite's own words ("database or disk is full") say more than errno's;
	 * an I/O error says which system call's errno it was ("disk I/O error"
	 * alone is what a full disk gives when the shared-memory index grows) */
	int sys = db ? sqlite3_system_errno(db) : 0;
	const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(sqlite_rc);
	if ((sqlite_rc & 0xff) == SQLITE_IOERR && sys > 0) {
		code = sys;
		return jb_err(err, code, "%s: %s (%s)", what, msg, strerror(sys));
	}
	return jb_err(err, code, "%s: %s", what, msg);
}

static int user_version(sqlite3 *db, int *ret)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret = sqlite3_column_int(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

/* The columns table has in both schemas, as "a, b, c" (empty when the old
 * database has no such table). */
static int common_columns(sqlite3 *db, const char *old, const char *table, char *out, size_t n)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db,
				    "SELECT o.name FROM pragma_table_info(?1, ?2) o"
				    " JOIN pragma_table_info(?1, 'main') m ON m.name = o.name ORDER BY o.cid",
				    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, old, -1, SQLITE_STATIC);
	size_t len = 0;
	out[0] = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *c = (const char *)sqlite3_column_text(st, 0);
		int w = snprintf(out + len, n - len, "%s\"%s\"", len ? ", " : "", c);
		if (w < 0 || (size_t)w >= n - len) {
			rc = SQLITE_TOOBIG;
			break;
		}
		len += (size_t)w;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Copy the rows of the attached old databases into the new tables. */
static int import_legacy(sqlite3 *db, const bool *attached, struct jb_error *err)
{
	for (size_t i = 0; i < NLEGACY; i++) {
		if (!attached[i])
			continue;
		const struct legacy *l = &legacies[i];
		for (int t = 0; t < 3 && l->tables[t]; t++) {
			char cols[2048], sql[4600];
			int rc = common_columns(db, l->schema, l->tables[t], cols, sizeof cols);
			if (rc != SQLITE_OK)
				return jb_store_err(err, db, rc, l->file);
			if (!cols[0])
				continue; /* made before that table was */
			snprintf(sql, sizeof sql, "INSERT OR IGNORE INTO main.\"%s\"(%s) SELECT %s FROM %s.\"%s\"", l->tables[t],
				 cols, cols, l->schema, l->tables[t]);
			if ((rc = sqlite3_exec(db, sql, NULL, NULL, NULL)) != SQLITE_OK)
				return jb_store_err(err, db, rc, l->file);
			jb_log(JB_LOG_INFO, "store: %d %s records taken in from %s", sqlite3_changes(db), l->tables[t],
			       l->file);
		}
	}
	return 0;
}

/* Bring the schema to NSTEPS.  Old databases are attached before the
 * transaction (SQLite attaches outside one); the version is read again
 * inside it, so two processes opening a new STATE at once migrate it once. */
static int migrate(sqlite3 *db, const char *state, struct jb_error *err)
{
	int v = 0, rc = user_version(db, &v);
	if (rc != SQLITE_OK)
		return jb_store_err(err, db, rc, "site.db");
	if (v == NSTEPS)
		return 0;
	if (v > NSTEPS)
		return jb_err(err, EPROTO, "%s/site.db is of a newer jumbo (schema %d; this build knows %d and cannot downgrade it)",
			      state, v, NSTEPS);
	bool attached[NLEGACY] = {0};
	char path[4200];
	if (v == 0)
		for (size_t i = 0; i < NLEGACY; i++) {
			snprintf(path, sizeof path, "%s/%s", state, legacies[i].file);
			if (access(path, F_OK) != 0)
				continue;
			char *uri = sqlite3_mprintf("file:%s?mode=rw", path), *sql = NULL;
			if (uri)
				sql = sqlite3_mprintf("ATTACH DATABASE %Q AS %s", uri, legacies[i].schema);
			rc = sql ? sqlite3_exec(db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
			sqlite3_free(sql);
			sqlite3_free(uri);
			if (rc != SQLITE_OK) {
				int r = jb_store_err(err, db, rc, path);
				for (size_t k = 0; k < i; k++)
					if (attached[k]) {
						sql = sqlite3_mprintf("DETACH DATABASE %s", legacies[k].schema);
						sqlite3_exec(db, sql, NULL, NULL, NULL);
						sqlite3_free(sql);
					}
				return r;
			}
			attached[i] = true;
		}
	int r = 0;
	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		r = jb_store_err(err, db, rc, "site.db");
	else if ((rc = user_version(db, &v)) != SQLITE_OK)
		r = jb_store_err(err, db, rc, "site.db");
	bool imported = false;
	for (int i = v; r == 0 && i < NSTEPS; i++) {
		if ((rc = sqlite3_exec(db, steps[i].sql, NULL, NULL, NULL)) != SQLITE_OK) {
			r = jb_store_err(err, db, rc, steps[i].what);
			break;
		}
		if (i == 0) {
			r = import_legacy(db, attached, err);
			imported = r == 0;
		}
		jb_log(JB_LOG_INFO, "store: %s/site.db schema %d: %s", state, i + 1, steps[i].what);
	}
	if (r == 0 && v < NSTEPS) {
		char sql[64];
		snprintf(sql, sizeof sql, "PRAGMA user_version=%d", NSTEPS);
		if ((rc = sqlite3_exec(db, sql, NULL, NULL, NULL)) != SQLITE_OK)
			r = jb_store_err(err, db, rc, "site.db");
	}
	if (r == 0 && (rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK)
		r = jb_store_err(err, db, rc, "site.db");
	if (r < 0)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	for (size_t i = 0; i < NLEGACY; i++) {
		if (!attached[i])
			continue;
		char *sql = sqlite3_mprintf("DETACH DATABASE %s", legacies[i].schema);
		sqlite3_exec(db, sql, NULL, NULL, NULL);
		sqlite3_free(sql);
		if (!imported)
			continue;
		/* its rows are in site.db: it stays beside, renamed, for whoever
		 * wants to look (nothing reads it again) */
		char to[4300];
		snprintf(path, sizeof path, "%s/%s", state, legacies[i].file);
		snprintf(to, sizeof to, "%s.imported", path);
		if (rename(path, to) < 0)
			jb_log(JB_LOG_WARN, "store: %s: %s (its records are in site.db)", path, strerror(errno));
		for (const char *sfx = "-wal"; sfx; sfx = strcmp(sfx, "-wal") ? NULL : "-shm") {
			char side[4300];
			snprintf(side, sizeof side, "%s%s", path, sfx);
			unlink(side);
		}
	}
	return r;
}

int jb_store_open(const char *state, sqlite3 **ret, struct jb_error *err)
{
	char path[4200];
	int n = snprintf(path, sizeof path, "%s/site.db", state);
	if (n < 0 || (size_t)n >= sizeof path)
		return jb_err(err, ENAMETOOLONG, "%s: the state directory's path is too long", state);
	sqlite3 *db = NULL;
	/* 0600: it holds token hashes and job specs with their environment
	 * (SQLite gives its -wal and -shm the database's mode).  Never open and
	 * close a descriptor of a database another connection of this process
	 * may have open: closing it drops the process's POSIX locks on the file,
	 * theirs included.  Made here only when it is not there (no connection
	 * can have it then); otherwise its mode is set by name. */
	int pr = jb_private_file(path, err);
	if (pr < 0)
		return pr;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_URI, NULL);
	if (rc != SQLITE_OK) {
		int r = jb_store_err(err, db, rc, path);
		sqlite3_close(db);
		return r;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_extended_result_codes(db, 1);
	rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		int r = jb_store_err(err, db, rc, path);
		sqlite3_close(db);
		return r;
	}
	int r = migrate(db, state, err);
	if (r < 0) {
		sqlite3_close(db);
		return r;
	}
	*ret = db;
	return 0;
}

int jb_store_rows(sqlite3 *db, sqlite3_stmt *st, size_t size, size_t max, jb_store_row_fn row, void *ud,
		  jb_store_drop_fn drop, void **ret, size_t *n, struct jb_error *err, const char *what)
{
	char *v = NULL;
	size_t cap = 0;
	int rc = SQLITE_DONE, r = 0;
	*n = 0;
	while (r == 0 && (!max || *n < max) && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			char *nv = reallocarray(v, nc, size);
			if (!nv) {
				r = jb_oom(err);
				break;
			}
			v = nv;
			cap = nc;
		}
		memset(v + *n * size, 0, size);
		if ((r = row(st, v + *n * size, ud)) < 0)
			r = jb_err(err, -r, "%s: %s", what, strerror(-r));
		else
			++*n;
	}
	if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = jb_store_err(err, db, rc, what);
	sqlite3_finalize(st);
	if (r < 0) {
		for (size_t i = 0; drop && i < *n; i++)
			drop(v + i * size);
		free(v);
		v = NULL;
		*n = 0;
	}
	*ret = v;
	return r;
}

int jb_store_select(sqlite3 *db, const char *sql, const char *arg, size_t size, jb_store_row_fn row, void *ud,
		    jb_store_drop_fn drop, void **ret, size_t *n, struct jb_error *err, const char *what)
{
	sqlite3_stmt *st;
	*ret = NULL;
	*n = 0;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return jb_store_err(err, db, rc, what);
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
	return jb_store_rows(db, st, size, 0, row, ud, drop, ret, n, err, what);
}
