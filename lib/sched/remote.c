/* Jobs handed to a backend: every second each engine is asked about its
 * jobs (running, the node, a notebook's address), its ends are taken
 * (jobs_finish), and jumbod keeps the timeout of jobs that run without its
 * supervisor. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "jobs-internal.h"

static void poll_remote(struct jb_jobs *j)
{
	struct {
		char id[JB_JOB_ID_LEN + 1], backend[128], ext[64];
		int state;
		double started, timeout;
	} rows[MAX_RUNNING];
	size_t n = 0;
	sqlite3_stmt *st;
	pthread_mutex_lock(&j->lock);
	if (sqlite3_prepare_v2(j->db, "SELECT id, backend, ext_id, state, started, json_extract(spec, '$.timeout') FROM job "
			       "WHERE state IN (0, 1) AND ext_id IS NOT NULL",
			       -1, &st, NULL) == SQLITE_OK) {
		while (n < MAX_RUNNING && sqlite3_step(st) == SQLITE_ROW) {
			snprintf(rows[n].id, sizeof rows[n].id, "%s", sqlite3_column_text(st, 0));
			snprintf(rows[n].backend, sizeof rows[n].backend, "%s", sqlite3_column_text(st, 1));
			snprintf(rows[n].ext, sizeof rows[n].ext, "%s", sqlite3_column_text(st, 2));
			rows[n].state = sqlite3_column_int(st, 3);
			rows[n].started = sqlite3_column_double(st, 4);
			rows[n++].timeout = sqlite3_column_double(st, 5);
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&j->lock);
	for (size_t i = 0; i < n; i++) {
		struct jobs_backend *be = jobs_backend_find(j, rows[i].backend);
		if (!be || be->error[0])
			continue; /* its backend is gone from the configuration or down: kept as it is */
		struct remote_status rs;
		struct jb_error err = {0};
		if (!be->ops->supervised && rows[i].state == JB_JOB_RUNNING && rows[i].timeout > 0 && rows[i].started > 0 &&
		    jb_wall() - rows[i].started > rows[i].timeout) {
			/* no supervisor of jumbo's there: jumbod keeps the timeout */
			pthread_mutex_lock(&j->lock);
			sched_exec(j->db, NULL, "UPDATE job SET cancel=2 WHERE id=?", "s", rows[i].id);
			pthread_mutex_unlock(&j->lock);
			if (be->ops->cancel(be, rows[i].ext, &err) < 0)
				jb_log(JB_LOG_WARN, "job %s: over its time limit, and %s", rows[i].id, err.msg);
		}
		if (be->ops->status(be, rows[i].ext, &rs, &err) < 0) {
			static time_t last;
			time_t now = time(NULL);
			if (now - last >= 60) { /* a backend that does not answer: said once a minute */
				jb_log(JB_LOG_WARN, "job %s: cannot ask %s about it: %s", rows[i].id, be->conf->name, err.msg);
				last = now;
			}
			continue;
		}
		if (rs.node[0]) {
			pthread_mutex_lock(&j->lock);
			sched_exec(j->db, NULL, "UPDATE job SET node=? WHERE id=?", "ss", rs.node, rows[i].id);
			pthread_mutex_unlock(&j->lock);
		}
		if (rs.address[0] && be->ops->networked) { /* where the engine put its port (a notebook) */
			pthread_mutex_lock(&j->lock);
			sched_exec(j->db, NULL, "UPDATE job SET address=?, port=? WHERE id=?", "sis", rs.address,
				   (int64_t)(rs.port ? rs.port : JB_NOTEBOOK_PORT), rows[i].id);
			pthread_mutex_unlock(&j->lock);
		}
		if (rs.st == R_PENDING && rs.idle && rows[i].state == JB_JOB_RUNNING) {
			/* it ran, and no task is left nor any failure told: it finished */
			rs.st = R_ENDED;
			rs.have_exit = true;
			snprintf(rs.state, sizeof rs.state, "finished");
		}
		if (rs.st == R_RUNNING && rows[i].state == JB_JOB_PENDING) {
			char why[400];
			snprintf(why, sizeof why, "running in %s (%s job %s on %s)", be->conf->name, be->conf->type, rows[i].ext,
				 rs.node[0] ? rs.node : "?");
			pthread_mutex_lock(&j->lock);
			sched_exec(j->db, NULL, "UPDATE job SET state=?, started=?, reason=? WHERE id=? AND state=?", "idssi",
				   (int64_t)JB_JOB_RUNNING, jb_wall(), why, rows[i].id, (int64_t)JB_JOB_PENDING);
			pthread_mutex_unlock(&j->lock);
			jb_log(JB_LOG_INFO, "job %s: %s", rows[i].id, why);
		} else if (rs.st == R_ENDED || rs.st == R_UNKNOWN) {
			jobs_finish(j, rows[i].id, &rs);
			if (be->ops->cleanup && rs.st == R_ENDED)
				be->ops->cleanup(be, rows[i].ext);
		}
	}
}

void *jobs_poller(void *arg)
{
	struct jb_jobs *j = arg;
	for (;;) {
		for (int t = 0; t < 10; t++) {
			pthread_mutex_lock(&j->lock);
			bool stop = j->stop;
			pthread_mutex_unlock(&j->lock);
			if (stop)
				return NULL;
			struct timespec ts = {0, 100000000};
			nanosleep(&ts, NULL);
		}
		poll_remote(j);
	}
}

