/* jumbo store: the site database, and in it the catalog of datasets.
 *
 * A dataset is a file of the data root, as it was at one moment: its path,
 * size, whole-file digest (xxh3t:, as transfers report it; SHA-256 too for
 * the outputs of jobs), where it came from (the site that sent it and the
 * transfer session, or the job that wrote it) and when it arrived.  A path
 * written again gets a new row; the older rows stay (provenance refers to
 * them by digest) but are no longer current.
 *
 * Jobs record what they read (job inputs: path and digest) and what they
 * wrote (datasets whose source is the job), so that the chain from any
 * result back to the transfers that brought its inputs can be followed. */
#pragma once
#include "jumbo/base.h"

/* The site database, STATE/site.db (SQLite, WAL): datasets, job inputs,
 * jobs, durable transfers, API tokens; every durable record of a site but
 * the resume journal, which the data path writes at line rate and keeps
 * apart (docs/ARCHITECTURE.md).  jb_store_open opens a new connection in
 * serialized mode, first bringing the schema up to date (PRAGMA
 * user_version) and taking in the databases of earlier builds (catalog.db,
 * jobs.db, transfers.db, tokens.db, renamed NAME.db.imported after). */
typedef struct sqlite3 sqlite3;
JB_EXPORT int jb_store_open(const char *state, sqlite3 **ret, struct jb_error *err);
/* An SQLite result code as an errno value (SQLITE_FULL: ENOSPC...; 0 for
 * OK, ROW and DONE); jb_store_err sets err to "what: SQLite's message". */
JB_EXPORT int jb_store_errno(int sqlite_rc);
JB_EXPORT int jb_store_err(struct jb_error *err, sqlite3 *db, int sqlite_rc, const char *what);
/* Every row of the prepared statement st (max: at most that many; 0 all)
 * made into an element of size bytes by row(st, elem, ud) (zeroed first; a negative
 * errno fails), in one malloc'd array: 0 with *ret and *n, or a negative
 * errno with err set ("what: ...") and nothing kept (drop releases what
 * the rows made).  st is finalized either way. */
typedef struct sqlite3_stmt sqlite3_stmt;
typedef int (*jb_store_row_fn)(sqlite3_stmt *st, void *elem, void *ud);
typedef void (*jb_store_drop_fn)(void *elem);
JB_EXPORT int jb_store_rows(sqlite3 *db, sqlite3_stmt *st, size_t size, size_t max, jb_store_row_fn row, void *ud,
			    jb_store_drop_fn drop, void **ret, size_t *n, struct jb_error *err, const char *what);
/* The same for the query sql with one text parameter (arg; NULL: none). */
JB_EXPORT int jb_store_select(sqlite3 *db, const char *sql, const char *arg, size_t size, jb_store_row_fn row, void *ud,
			      jb_store_drop_fn drop, void **ret, size_t *n, struct jb_error *err, const char *what);

struct jb_catalog;
/* The catalog, on its own connection to the site database of state. */
JB_EXPORT int jb_catalog_open(const char *state, struct jb_catalog **ret, struct jb_error *err);
JB_EXPORT void jb_catalog_close(struct jb_catalog *c);

/* Where a dataset came from: a transfer (source_id its session), a job
 * (source_id the job) or found in place (its digest computed here). */
enum jb_dataset_source { JB_SOURCE_TRANSFER, JB_SOURCE_JOB, JB_SOURCE_FOUND, JB_SOURCE_N };
JB_EXPORT const char *jb_dataset_source_name(enum jb_dataset_source s);

struct jb_dataset_in {
	const char *path;    /* relative to the data root */
	uint64_t size;
	const char *digest;  /* xxh3t:HEX */
	const char *sha256;  /* may be NULL */
	const char *origin;  /* the site it came from (this site for a job's output) */
	enum jb_dataset_source source;
	const char *source_id;
	int64_t mtime_ns;    /* of the file when it was recorded */
	bool pending;        /* the file is about to get its name: settle it after */
	const char *via;     /* relayed: the relay that delivered it (NULL: none) */
	const uint8_t *seal; /* relayed: the origin's SEAL of it, as it came (NULL: none) */
	size_t seal_len;
};
/* Record a dataset; the path's earlier rows stop being current. */
JB_EXPORT int jb_catalog_add(struct jb_catalog *c, const struct jb_dataset_in *d, struct jb_error *err);
/* A pending dataset's end: ok, it becomes the path's current one; not ok,
 * it goes.  (path and digest name it.) */
JB_EXPORT int jb_catalog_settle(struct jb_catalog *c, const char *path, const char *digest, bool ok,
				struct jb_error *err);
/* Calls between jb_catalog_batch(c, true) and jb_catalog_batch(c, false)
 * are one transaction (a landing's group of files); batches nest, and other
 * threads' calls wait for the end of it. */
JB_EXPORT int jb_catalog_batch(struct jb_catalog *c, bool begin);
/* Inside a batch: the outermost end rolls it back instead (and returns
 * -ECANCELED); for a batch that must be all or nothing. */
JB_EXPORT void jb_catalog_batch_fail(struct jb_catalog *c);
/* The catalog's connection to the site database, for a caller's own writes
 * inside a batch: a job's end writes its row and settles its outputs in one
 * transaction. */
JB_EXPORT sqlite3 *jb_catalog_db(struct jb_catalog *c);
/* After a crash: each pending dataset whose file is there with its size and
 * time is settled ok, the others go.  Returns how many were settled ok. */
JB_EXPORT int jb_catalog_reconcile(struct jb_catalog *c, const char *root, struct jb_error *err);

/* A dataset as recorded. */
struct jb_dataset {
	char *path;
	uint64_t size;
	char digest[64];   /* xxh3t:HEX */
	char sha256[72];   /* sha256:HEX, or "" while unknown */
	char *origin;
	enum jb_dataset_source source;
	char *source_id;   /* NULL when found */
	double arrived;    /* when it was recorded (Unix seconds) */
	bool current;      /* the path's newest */
	int64_t mtime_ns;
	char *via;         /* relayed: the relay that delivered it, or NULL */
	uint8_t *seal;     /* relayed: the origin's SEAL (a SEAL frame's body less its type byte), or NULL */
	size_t seal_len;
};
struct jb_datasets {
	struct jb_dataset *v;
	size_t n;
};
JB_EXPORT void jb_dataset_free(struct jb_dataset *d);
JB_EXPORT void jb_datasets_free(struct jb_datasets *l);

/* Lookups: 0 with *ret filled (the caller frees it), -ENOENT when there is
 * none, another negative errno with err set when the database fails.  Lists
 * are empty rather than -ENOENT. */
/* The current datasets at prefix (a file, or everything below a
 * directory; "" for all), sorted by path. */
JB_EXPORT int jb_catalog_list(struct jb_catalog *c, const char *prefix, struct jb_datasets *ret, struct jb_error *err);
/* The current dataset at path. */
JB_EXPORT int jb_catalog_get(struct jb_catalog *c, const char *path, struct jb_dataset *ret, struct jb_error *err);
/* Any settled dataset (current or not) with this path and digest. */
JB_EXPORT int jb_catalog_find(struct jb_catalog *c, const char *path, const char *digest, struct jb_dataset *ret,
			      struct jb_error *err);

/* The SHA-256 of the current datasets at prefix (or below it) that have
 * none, computed from their files (those whose size or time has changed
 * are left out) and recorded: the datasets, with sha256 where it is known. */
JB_EXPORT int jb_catalog_sha256(struct jb_catalog *c, const char *root, const char *prefix, struct jb_datasets *ret,
				struct jb_error *err);

/* A job's inputs: one row per file it was given, with the digest it had. */
struct jb_job_input {
	char *path;
	char digest[64];
};
struct jb_job_inputs {
	struct jb_job_input *v;
	size_t n;
};
JB_EXPORT void jb_job_inputs_free(struct jb_job_inputs *l);
JB_EXPORT int jb_catalog_add_input(struct jb_catalog *c, const char *job, const char *path, const char *digest,
				   struct jb_error *err);
JB_EXPORT int jb_catalog_inputs(struct jb_catalog *c, const char *job, struct jb_job_inputs *ret, struct jb_error *err);
/* The datasets a job wrote, sorted by path. */
JB_EXPORT int jb_catalog_outputs(struct jb_catalog *c, const char *job, struct jb_datasets *ret, struct jb_error *err);
