/* The job table: records read as struct jb_job, states written, and a
 * job's end recorded in one transaction with its outputs. */
#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "jobs-internal.h"

static const char *const state_names[JB_JOB_NSTATES] = {"pending", "running", "completed", "failed",
							 "cancelled", "timeout", "oom", "lost"};

const char *jb_job_state_name(enum jb_job_state s)
{
	return (unsigned)s < JB_JOB_NSTATES ? state_names[s] : "lost";
}

int jobs_write_state(struct jb_jobs *j, const char *id, enum jb_job_state s, const char *reason)
{
	pthread_mutex_lock(&j->lock);
	/* an end is final: a job that has one keeps it */
	int r = sched_exec(j->db, NULL,
			   "UPDATE job SET state=?, reason=COALESCE(?, reason), finished=CASE WHEN ?>=2 THEN ? ELSE finished END "
			   "WHERE id=? AND state IN (0, 1)",
			   "isids", (int64_t)s, reason, (int64_t)s, jb_wall(), id);
	pthread_mutex_unlock(&j->lock);
	if (r == 0 && s >= JB_JOB_COMPLETED)
		jb_log(JB_LOG_INFO, "job %s: %s%s%s", id, state_names[s], reason ? ": " : "", reason ? reason : "");
	return r;
}

void jobs_set_state(struct jb_jobs *j, const char *id, enum jb_job_state s, const char *reason)
{
	if (jobs_write_state(j, id, s, reason) < 0)
		jobs_keep_state(j, id, s, reason);
}

/* A job's end is one transaction: its row (state, exit, reason, times) and
 * its outputs settled as current datasets, on the catalog's connection
 * (without a catalog, the row alone).  When it cannot be written the job
 * stays as it was, its outputs pending: the next start reads the
 * supervisor's result again and jb_catalog_reconcile settles the files. */
int jobs_record_end(struct jb_jobs *j, const char *id, enum jb_job_state s, const struct jb_job_result *r, const char *reason,
		    const struct jobs_outputs *outs)
{
	/* an end is final: a job that has one keeps it */
	static const char sql[] = "UPDATE job SET state=?, exit_code=?, reason=?, started=COALESCE(started, ?), finished=?, "
				  "max_memory=? WHERE id=? AND state IN (0, 1)";
	struct jb_error err = {0};
	bool tx = j->cat != NULL;
	int rc = tx ? jb_catalog_batch(j->cat, true) : 0;
	if (rc < 0)
		jb_err(&err, -rc, "the site database: no transaction: %s", strerror(-rc));
	for (size_t i = 0; rc == 0 && i < outs->n; i++)
		rc = jb_catalog_settle(j->cat, outs->v[i].path, outs->v[i].digest, true, &err);
	if (!tx)
		pthread_mutex_lock(&j->lock);
	if (rc == 0)
		rc = sched_exec(tx ? jb_catalog_db(j->cat) : j->db, &err, sql, "iisddis", (int64_t)s,
				(int64_t)(r->error[0] ? -1 : r->exit_code), reason[0] ? reason : NULL, r->started, r->finished,
				(int64_t)r->max_memory, id);
	if (!tx)
		pthread_mutex_unlock(&j->lock);
	if (tx) {
		if (rc < 0)
			jb_catalog_batch_fail(j->cat);
		int c = jb_catalog_batch(j->cat, false);
		if (rc == 0 && c < 0)
			rc = jb_err(&err, -c, "the site database: %s", strerror(-c));
	}
	if (rc < 0)
		jb_log(JB_LOG_ERROR, "job %s: its end (%s) is not recorded: %s; written again every second", id,
		       state_names[s], err.msg);
	return rc;
}

void jb_job_free(struct jb_job *job)
{
	char **v[] = {&job->request, &job->image,      &job->digest, &job->reason, &job->output,
		      &job->address, &job->backend, &job->backend_id, &job->node, &job->owner};
	for (size_t i = 0; i < JB_ARRAY_SIZE(v); i++)
		free(*v[i]);
	memset(job, 0, sizeof *job);
}

void jb_job_list_free(struct jb_job *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		jb_job_free(&v[i]);
	free(v);
}

#define COLS                                                                                                      \
	"id, state, spec, image, digest, created, started, finished, exit_code, reason, max_memory, output, address, " \
	"backend, ext_id, node, port, owner"

static void drop_job(void *job) { jb_job_free(job); }

static int row(sqlite3_stmt *st, void *elem, void *ud)
{
	struct jb_job *job = elem;
	(void)ud;
	*job = (struct jb_job){.created = sqlite3_column_double(st, 5),
			       .started = sqlite3_column_double(st, 6),
			       .finished = sqlite3_column_double(st, 7),
			       .has_exit = sqlite3_column_type(st, 8) != SQLITE_NULL,
			       .exit_code = sqlite3_column_int(st, 8),
			       .max_memory = sqlite3_column_type(st, 10) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 10),
			       .port = sqlite3_column_int(st, 16)};
	int s = sqlite3_column_int(st, 1);
	job->state = s >= 0 && s < JB_JOB_NSTATES ? (enum jb_job_state)s : JB_JOB_LOST;
	snprintf(job->id, sizeof job->id, "%s", (const char *)sqlite3_column_text(st, 0));
	static const struct { int col; size_t off; } text[] = {
		{2, offsetof(struct jb_job, request)},	 {3, offsetof(struct jb_job, image)},
		{4, offsetof(struct jb_job, digest)},	 {9, offsetof(struct jb_job, reason)},
		{11, offsetof(struct jb_job, output)},	 {12, offsetof(struct jb_job, address)},
		{13, offsetof(struct jb_job, backend)},	 {14, offsetof(struct jb_job, backend_id)},
		{15, offsetof(struct jb_job, node)},	 {17, offsetof(struct jb_job, owner)},
	};
	for (size_t i = 0; i < JB_ARRAY_SIZE(text); i++) {
		if (sqlite3_column_type(st, text[i].col) == SQLITE_NULL)
			continue;
		char **f = (char **)((char *)job + text[i].off);
		if (!(*f = strdup((const char *)sqlite3_column_text(st, text[i].col)))) {
			jb_job_free(job);
			return -ENOMEM;
		}
	}
	return 0;
}

/* The rows of the query sql (one text parameter, or none), appended to *v. */
/* The rows of the query sql (one text parameter, or none). */
static int rows(struct jb_jobs *j, const char *sql, const char *arg, struct jb_job **v, size_t *n, struct jb_error *err)
{
	void *p;
	pthread_mutex_lock(&j->lock);
	int r = jb_store_select(j->db, sql, arg, sizeof **v, row, NULL, drop_job, &p, n, err, "jobs");
	pthread_mutex_unlock(&j->lock);
	*v = p;
	return r;
}

int jb_jobs_get(struct jb_jobs *j, const char *id, struct jb_job *ret, struct jb_error *err)
{
	struct jb_job *v;
	size_t n;
	int r = rows(j, "SELECT " COLS " FROM job WHERE id=?", id, &v, &n, err);
	if (r < 0)
		return r;
	if (!n) {
		free(v);
		return -ENOENT;
	}
	*ret = v[0];
	for (size_t i = 1; i < n; i++)
		jb_job_free(&v[i]);
	free(v);
	return 0;
}

int jb_jobs_list(struct jb_jobs *j, struct jb_job **ret, size_t *n, struct jb_error *err)
{
	return rows(j, "SELECT " COLS " FROM job ORDER BY created DESC", NULL, ret, n, err);
}

void jb_jobs_counts(struct jb_jobs *j, unsigned counts[JB_JOB_NSTATES])
{
	sqlite3_stmt *st;
	memset(counts, 0, JB_JOB_NSTATES * sizeof *counts);
	pthread_mutex_lock(&j->lock);
	if (sqlite3_prepare_v2(j->db, "SELECT state, count(*) FROM job GROUP BY state", -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW)
			counts[sqlite3_column_int(st, 0) % JB_JOB_NSTATES] = (unsigned)sqlite3_column_int(st, 1);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&j->lock);
}


int jobs_cancel_flag(struct jb_jobs *j, const char *id)
{
	sqlite3_stmt *st;
	int c = 0;
	pthread_mutex_lock(&j->lock);
	if (sqlite3_prepare_v2(j->db, "SELECT cancel FROM job WHERE id=?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) == SQLITE_ROW)
			c = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&j->lock);
	return c;
}
