/* The catalog: datasets, current and pending rows, settling after a crash,
 * job inputs and outputs. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "jumbo/store.h"
#include "tap.h"

static int sql(const char *path, const char *q)
{
	sqlite3 *db;
	int rc = sqlite3_open(path, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, q, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

static long long one(sqlite3 *db, const char *q)
{
	sqlite3_stmt *st;
	long long v = -1;
	if (sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* A STATE of the build before the site database: four files, one of them
 * from before a column was added (the import takes the columns both have). */
static void upgrade(void)
{
	char dir[] = "/tmp/jb-test-upgrade-XXXXXX", p[300];
	if (!mkdtemp(dir))
		return;
	snprintf(p, sizeof p, "%s/catalog.db", dir);
	sql(p, "PRAGMA journal_mode=WAL;"
	       "CREATE TABLE dataset(id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER NOT NULL,"
	       " digest TEXT NOT NULL, sha256 TEXT, origin TEXT NOT NULL, source TEXT NOT NULL, source_id TEXT,"
	       " arrived REAL NOT NULL, current INTEGER NOT NULL DEFAULT 1);"
	       "CREATE TABLE job_input(job TEXT NOT NULL, path TEXT NOT NULL, digest TEXT NOT NULL,"
	       " PRIMARY KEY(job, path));"
	       "INSERT INTO dataset VALUES(7, 'a.txt', 3, 'xxh3t:0a', NULL, 'kisti', 'transfer', 's1', 1.5, 1);"
	       "INSERT INTO job_input VALUES('j1', 'a.txt', 'xxh3t:0a');");
	snprintf(p, sizeof p, "%s/jobs.db", dir);
	sql(p, "CREATE TABLE job(id TEXT PRIMARY KEY, state INTEGER NOT NULL, spec TEXT NOT NULL, image TEXT NOT NULL,"
	       " digest TEXT, created REAL NOT NULL, started REAL, finished REAL, exit_code INTEGER, reason TEXT,"
	       " sup_pid INTEGER, max_memory INTEGER, cancel INTEGER NOT NULL DEFAULT 0, output TEXT);"
	       "INSERT INTO job(id, state, spec, image, created, exit_code, output) VALUES"
	       " ('j1', 2, '{}', 'jumbo/minimal', 2.5, 0, 'results/j1');");
	snprintf(p, sizeof p, "%s/tokens.db", dir);
	sql(p, "CREATE TABLE token(name TEXT PRIMARY KEY, hash TEXT UNIQUE NOT NULL, created REAL NOT NULL,"
	       " last_used REAL); INSERT INTO token VALUES('alice', 'ab', 3.5, NULL);");
	/* (no transfers.db: a site that never had one) */
	sqlite3 *db = NULL;
	struct jb_error e = {0};
	ok(jb_store_open(dir, &db, &e) == 0, "a STATE of the earlier build opens (%s)", e.msg);
	if (!db)
		return;
	is_int((int)one(db, "PRAGMA user_version"), 3, "its schema is the newest");
	is_int((int)one(db, "SELECT count(*) FROM token WHERE name='alice' AND scopes='read,admin'"), 1,
	       "a token of the earlier build keeps what it could do (admin)");
	is_int((int)one(db, "SELECT size FROM dataset WHERE id=7 AND path='a.txt' AND pending=0"), 3,
	       "the dataset came over, with the columns added since at their defaults");
	is_int((int)one(db, "SELECT count(*) FROM job_input WHERE job='j1'"), 1, "the job's input too");
	is_int((int)one(db, "SELECT exit_code FROM job WHERE id='j1' AND output='results/j1' AND port IS NULL"), 0,
	       "the job");
	is_int((int)one(db, "SELECT count(*) FROM token WHERE name='alice' AND hash='ab'"), 1, "the token");
	is_int((int)one(db, "SELECT count(*) FROM transfer"), 0, "no transfers: there were none");
	sqlite3_close(db);
	snprintf(p, sizeof p, "%s/catalog.db", dir);
	ok(access(p, F_OK) != 0, "the old catalog.db is gone from its name");
	snprintf(p, sizeof p, "%s/catalog.db.imported", dir);
	ok(access(p, F_OK) == 0, "and kept beside as catalog.db.imported");
	struct stat st;
	snprintf(p, sizeof p, "%s/site.db", dir);
	ok(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600, "site.db is 0600 (token hashes, job environments)");
	/* a second open does nothing more */
	db = NULL;
	ok(jb_store_open(dir, &db, &e) == 0 && one(db, "SELECT count(*) FROM dataset") == 1,
	   "opened again, nothing is taken in twice");
	sqlite3_close(db);
	/* a site database of a newer build is not touched */
	sql(p, "PRAGMA user_version=99");
	db = NULL;
	ok(jb_store_open(dir, &db, &e) == -EPROTO && strstr(e.msg, "newer jumbo"), "a newer schema is refused: %s",
	   e.msg);
	/* a disk that is full says so */
	is_int(jb_store_errno(SQLITE_FULL), ENOSPC, "SQLITE_FULL is ENOSPC");
	is_int(jb_store_errno(SQLITE_IOERR_WRITE), EIO, "an extended I/O error is EIO");
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
}

static int64_t mtime_of(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec : 0;
}

int main(void)
{
	char dir[] = "/tmp/jb-test-store-XXXXXX", db[256], f[256];
	if (!mkdtemp(dir))
		return 1;
	snprintf(db, sizeof db, "%s/site.db", dir);
	struct jb_catalog *c = NULL;
	struct jb_error e = {0};
	ok(jb_catalog_open(dir, &c, &e) == 0, "a catalog opens (%s)", e.msg);
	if (!c)
		return tap_done();
	struct jb_dataset_in d = {.path = "run7/a.h5", .size = 3, .digest = "xxh3t:01", .origin = "kisti",
				  .source = JB_SOURCE_TRANSFER, .source_id = "s1"};
	ok(jb_catalog_add(c, &d, &e) == 0, "a dataset is added");
	d.digest = "xxh3t:02";
	ok(jb_catalog_add(c, &d, &e) == 0, "the same path again");
	struct jb_dataset ds;
	struct jb_datasets l;
	ok(jb_catalog_get(c, "run7/a.h5", &ds, &e) == 0, "it is there");
	is_str(ds.digest, "xxh3t:02", "the newest is current");
	ok(ds.source == JB_SOURCE_TRANSFER && !strcmp(ds.source_id, "s1") && !strcmp(ds.origin, "kisti") && ds.size == 3 &&
		   ds.current && !ds.sha256[0],
	   "with its source, origin and size, no SHA-256 yet");
	jb_dataset_free(&ds);
	is_int(jb_catalog_get(c, "run7/none", &ds, &e), -ENOENT, "a path that is no dataset: -ENOENT");
	ok(jb_catalog_find(c, "run7/a.h5", "xxh3t:01", &ds, &e) == 0 && !ds.current, "the older one is kept, not current");
	jb_dataset_free(&ds);
	ok(jb_catalog_list(c, "run7", &l, &e) == 0 && l.n == 1, "a directory lists its current datasets once");
	jb_datasets_free(&l);
	ok(jb_catalog_list(c, "run", &l, &e) == 0 && l.n == 0, "a prefix is a directory, not a string prefix");
	jb_datasets_free(&l);

	/* pending: invisible until settled */
	d.digest = "xxh3t:03";
	d.pending = true;
	ok(jb_catalog_add(c, &d, &e) == 0, "a pending dataset is added");
	ok(jb_catalog_get(c, "run7/a.h5", &ds, &e) == 0, "the path");
	is_str(ds.digest, "xxh3t:02", "it does not replace the current one yet");
	jb_dataset_free(&ds);
	ok(jb_catalog_settle(c, "run7/a.h5", "xxh3t:03", true, &e) == 0, "settled ok");
	ok(jb_catalog_get(c, "run7/a.h5", &ds, &e) == 0, "the path");
	is_str(ds.digest, "xxh3t:03", "then it is current");
	jb_dataset_free(&ds);
	d.digest = "xxh3t:04";
	jb_catalog_add(c, &d, &e);
	ok(jb_catalog_settle(c, "run7/a.h5", "xxh3t:04", false, &e) == 0, "a pending one settled not ok");
	is_int(jb_catalog_find(c, "run7/a.h5", "xxh3t:04", &ds, &e), -ENOENT, "is gone");

	/* after a crash: the file is there (its rename happened) or not */
	mkdir(strcat(strcpy(f, dir), "/root"), 0755);
	snprintf(f, sizeof f, "%s/root/b.txt", dir);
	FILE *fp = fopen(f, "w");
	fputs("abc", fp);
	fclose(fp);
	struct jb_dataset_in p1 = {.path = "b.txt", .size = 3, .digest = "xxh3t:0b", .origin = "x",
				   .source = JB_SOURCE_TRANSFER, .mtime_ns = mtime_of(f), .pending = true};
	struct jb_dataset_in p2 = {.path = "never.txt", .size = 3, .digest = "xxh3t:0c", .origin = "x",
				   .source = JB_SOURCE_TRANSFER, .mtime_ns = 1, .pending = true};
	jb_catalog_add(c, &p1, &e);
	jb_catalog_add(c, &p2, &e);
	snprintf(f, sizeof f, "%s/root", dir);
	is_int(jb_catalog_reconcile(c, f, &e), 1, "reconcile settles the one whose file is there");
	ok(jb_catalog_get(c, "b.txt", &ds, &e) == 0, "it is current");
	jb_dataset_free(&ds);
	is_int(jb_catalog_find(c, "never.txt", "xxh3t:0c", &ds, &e), -ENOENT,
	       "the one whose file never got its name is dropped");
	is_int(jb_catalog_reconcile(c, f, &e), 0, "nothing is left pending");

	/* SHA-256 on demand: of the file while it is the dataset's */
	ok(jb_catalog_sha256(c, f, "b.txt", &l, &e) == 0 && l.n == 1, "SHA-256 of b.txt");
	is_str(l.n ? l.v[0].sha256 : "", "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	       "is the file's");
	jb_datasets_free(&l);
	ok(jb_catalog_get(c, "b.txt", &ds, &e) == 0 && !strncmp(ds.sha256, "sha256:ba78", 11), "and recorded");
	jb_dataset_free(&ds);

	/* jobs */
	ok(jb_catalog_add_input(c, "job1", "b.txt", "xxh3t:0b", &e) == 0, "a job input is recorded");
	struct jb_job_inputs in;
	ok(jb_catalog_inputs(c, "job1", &in, &e) == 0 && in.n == 1, "and read back");
	is_str(in.n ? in.v[0].digest : "", "xxh3t:0b", "with its digest");
	jb_job_inputs_free(&in);
	struct jb_dataset_in o = {.path = "results/job1/out.txt", .size = 1, .digest = "xxh3t:0d", .sha256 = "sha256:aa",
				  .origin = "here", .source = JB_SOURCE_JOB, .source_id = "job1"};
	jb_catalog_add(c, &o, &e);
	ok(jb_catalog_outputs(c, "job1", &l, &e) == 0 && l.n == 1 && l.v[0].source == JB_SOURCE_JOB &&
		   !strcmp(l.v[0].source_id, "job1"),
	   "a job's outputs name it");
	jb_datasets_free(&l);
	jb_catalog_close(c);
	upgrade();
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	return tap_done();
}
