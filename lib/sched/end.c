/* A job's end: how it ended (its supervisor's result, or what its engine
 * says), its outputs committed as datasets, all of it recorded in one
 * transaction; an end the site database does not take kept and written
 * again every second. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jobs-internal.h"

static bool end_waiting(struct jb_jobs *j, const char *id)
{
	bool w = false;
	pthread_mutex_lock(&j->lock);
	for (size_t i = 0; i < j->nunrec && !w; i++)
		w = !strcmp(j->unrec[i].id, id);
	pthread_mutex_unlock(&j->lock);
	return w;
}

/* What the job left in /work/out becomes datasets of the data root (the
 * files u->outs lists already have their names: a second try skips
 * them).  -EAGAIN when the site database refused a record: the end waits. */
static int end_outputs(struct jb_jobs *j, struct unrecorded *u, const char *dir)
{
	struct jb_job job = {0};
	struct jb_error err = {0};
	int r = jb_jobs_get(j, u->id, &job, &err);
	char ws[4300];
	snprintf(ws, sizeof ws, "%s/workspace", dir);
	size_t before = u->outs.n;
	u->outs.store_failed = false;
	if (r == 0 && job.output)
		r = jobs_commit_outputs(j->cat, j->rootreal, j->c->name, u->id, ws, job.output, &u->outs, &err);
	if (r < 0 && (u->outs.store_failed || !job.id[0])) {
		jb_log(JB_LOG_ERROR, "job %s: its end (completed) is not recorded: %s; tried again every second", u->id,
		       r == -ENOENT ? "it has no record" : err.msg);
		jb_job_free(&job);
		return -EAGAIN;
	}
	u->commit = false;
	if (r < 0) {
		u->s = JB_JOB_FAILED;
		snprintf(u->reason, sizeof u->reason, "its outputs could not be committed: %s", err.msg);
	} else if (u->outs.n > before) {
		jb_log(JB_LOG_INFO, "job %s: %zu output%s committed under %s", u->id, u->outs.n, u->outs.n == 1 ? "" : "s",
		       job.output);
	}
	jb_job_free(&job);
	return 0;
}

static void end_reason(struct unrecorded *u)
{
	const struct jb_job_result *r = &u->r;
	if (u->reason[0])
		return;
	if (r->error[0])
		snprintf(u->reason, sizeof u->reason, "%s", r->error);
	else if (u->s == JB_JOB_OOM)
		snprintf(u->reason, sizeof u->reason, "out of memory: killed (exit status %d)", r->exit_code);
	else if (u->s == JB_JOB_TIMEOUT)
		snprintf(u->reason, sizeof u->reason, "over its time limit: killed");
	else if (u->s == JB_JOB_CANCELLED)
		snprintf(u->reason, sizeof u->reason, "cancelled");
	else if (r->signal)
		snprintf(u->reason, sizeof u->reason, "killed by signal %d", r->signal);
	else if (r->exit_code)
		snprintf(u->reason, sizeof u->reason, "exit status %d", r->exit_code);
}

/* A job's end, known: its outputs committed, then its row and their
 * datasets in one transaction; the container's writable layer removed.
 * < 0 when the site database did not take it (u is kept for a retry). */
static int end_record(struct jb_jobs *j, struct unrecorded *u)
{
	if (u->state_only)
		return jobs_write_state(j, u->id, u->s, u->reason[0] ? u->reason : NULL);
	char dir[4200];
	jobs_dir(j, u->id, dir, sizeof dir);
	if (u->commit && end_outputs(j, u, dir) < 0)
		return -EAGAIN;
	end_reason(u);
	if (jobs_record_end(j, u->id, u->s, &u->r, u->reason, &u->outs) < 0)
		return -EAGAIN;
	jb_log(JB_LOG_INFO, "job %s: %s%s%s", u->id, jb_job_state_name(u->s), u->reason[0] ? ": " : "", u->reason);
	/* the container's writable layer goes; its workspace and logs stay */
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		jb_remove_tree(dfd, "upper");
		jb_remove_tree(dfd, "work");
		jb_remove_tree(dfd, "l"); /* the id-mapped layers' mount points */
	}
	return 0;
}

/* Kept for retry_ends (u moved in: its outputs are the list's now), or,
 * with MAX_RUNNING kept already, left to the next start. */
static void end_keep(struct jb_jobs *j, struct unrecorded *u)
{
	pthread_mutex_lock(&j->lock);
	if (j->nunrec < MAX_RUNNING) {
		j->unrec[j->nunrec++] = *u;
		u->outs = (struct jobs_outputs){0};
	}
	pthread_mutex_unlock(&j->lock);
	jobs_outputs_free(&u->outs);
}

void jobs_keep_state(struct jb_jobs *j, const char *id, enum jb_job_state s, const char *reason)
{
	struct unrecorded u = {.s = s, .state_only = true};
	snprintf(u.id, sizeof u.id, "%s", id);
	snprintf(u.reason, sizeof u.reason, "%s", reason ? reason : "");
	jb_log(JB_LOG_ERROR, "job %s: its state (%s) is not recorded; written again every second", id,
	       jb_job_state_name(s));
	end_keep(j, &u);
}

/* The watcher, every second: the ends kept are written again. */
void jobs_retry_ends(struct jb_jobs *j)
{
	pthread_mutex_lock(&j->lock);
	size_t n = j->nunrec;
	struct unrecorded *v = n ? malloc(n * sizeof *v) : NULL;
	if (v) {
		memcpy(v, j->unrec, n * sizeof *v);
		j->nunrec = 0;
	}
	pthread_mutex_unlock(&j->lock);
	for (size_t i = 0; v && i < n; i++) {
		if (end_record(j, &v[i]) < 0) {
			end_keep(j, &v[i]);
			continue;
		}
		jb_log(JB_LOG_INFO, "job %s: its end (%s) is recorded now", v[i].id, jb_job_state_name(v[i].s));
		jobs_outputs_free(&v[i].outs);
	}
	free(v);
}

void jobs_finish(struct jb_jobs *j, const char *id, const struct remote_status *remote)
{
	if (end_waiting(j, id))
		return; /* its end is known, and waits for the database */
	char dir[4200];
	struct jb_job_result r;
	struct jb_error err = {0};
	jobs_dir(j, id, dir, sizeof dir);
	char nsp[128];
	snprintf(nsp, sizeof nsp, "/var/run/netns/jb-%s", id);
	if (access(nsp, F_OK) == 0)
		jobs_net_teardown(id); /* its network goes with it */
	int rc = jb_job_result_read(dir, &r, &err);
	int how = remote ? jobs_cancel_flag(j, id) : 0;
	if (rc < 0 && remote && (remote->have_exit || how)) {
		/* the engine ran the container itself and says how it ended, or
		 * jumbod ended it (cancel 1, its timeout 2) */
		memset(&r, 0, sizeof r);
		r.exit_code = how == 2 ? 124 : how == 1 ? 137 : remote->exit_code;
		r.oom = !how && remote->oom;
		r.cancelled = how == 1;
		r.timed_out = how == 2;
		r.finished = jb_wall();
		rc = 0;
	}
	if (rc < 0 && remote) {
		char why[600];
		bool cxl = (jobs_cancel_flag(j, id) != 0);
		snprintf(why, sizeof why, "%s%s%s%s%s", cxl ? "cancelled" : "its backend ended it without a result: ",
			 cxl ? "" : remote->state, remote->reason[0] && !cxl ? " (" : "", cxl ? "" : remote->reason,
			 remote->reason[0] && !cxl ? ")" : "");
		if (!cxl && remote->st == R_UNKNOWN)
			snprintf(why, sizeof why, "lost by its backend: %s, and no result from its supervisor", remote->reason);
		jobs_set_state(j, id, cxl ? JB_JOB_CANCELLED : JB_JOB_LOST, why);
		return;
	}
	if (rc < 0) {
		/* no result: the supervisor died with its job; stop what may be left */
		char *argv[] = {j->crun, (char *)"--root", NULL, (char *)"delete", (char *)"-f", (char *)id, NULL};
		char croot[4200];
		snprintf(croot, sizeof croot, "%s/crun", j->state);
		argv[2] = croot;
		pid_t p = fork();
		if (p == 0) {
			int nul = open("/dev/null", O_RDWR);
			dup2(nul, 1);
			dup2(nul, 2);
			execv(j->crun, argv);
			_exit(127);
		}
		if (p > 0)
			waitpid(p, NULL, 0);
		jobs_set_state(j, id, JB_JOB_LOST, "its supervisor ended without a result (killed?); the container was removed");
		return;
	}
	struct unrecorded u = {.r = r};
	snprintf(u.id, sizeof u.id, "%s", id);
	u.s = r.error[0] ? JB_JOB_FAILED
	      : r.cancelled ? JB_JOB_CANCELLED
	      : r.timed_out ? JB_JOB_TIMEOUT
	      : r.oom ? JB_JOB_OOM
	      : r.exit_code == 0 ? JB_JOB_COMPLETED : JB_JOB_FAILED;
	u.commit = u.s == JB_JOB_COMPLETED && j->cat;
	if (end_record(j, &u) < 0)
		end_keep(j, &u);
	jobs_outputs_free(&u.outs);
}
