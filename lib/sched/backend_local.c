/* Two backends of jumbod's own.  local: this host, the job's supervisor
 * ("jumbod --supervise DIR", in its own session) forked here and watched
 * by its pidfd.  null: takes a job and runs nothing; it "runs" for the
 * section's seconds (0 by default) and ends with exit status 0, or ends
 * when cancelled; for testing the scheduler's states without a container
 * or an engine. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs-internal.h"

static int local_submit(struct jobs_backend *b, const struct remote_job *rj, char ext[64], struct jb_error *err)
{
	struct jb_jobs *j = b->j;
	char *argv[] = {j->self_exe, (char *)"--supervise", (char *)rj->dir, NULL};
	ext[0] = 0;
	pid_t pid = fork();
	if (pid == 0) {
		setsid();
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0);
		dup2(nul, 1);
		/* stderr stays the daemon's log: the supervisor writes nothing there
		 * unless something is badly wrong */
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid < 0)
		return jb_err(err, errno, "cannot start its supervisor: %s", strerror(errno));
	/* it runs whatever the record says: a failed write is logged, and the
	 * end is recorded when the supervisor is gone */
	pthread_mutex_lock(&j->lock);
	sched_exec(j->db, NULL, "UPDATE job SET state=?, sup_pid=?, started=? WHERE id=? AND state=?", "iidsi",
		   (int64_t)JB_JOB_RUNNING, (int64_t)pid, jb_wall(), rj->id, (int64_t)JB_JOB_PENDING);
	pthread_mutex_unlock(&j->lock);
	jb_log(JB_LOG_INFO, "job %s: running (supervisor %d)", rj->id, (int)pid);
	jobs_watch(j, rj->id, pid, true);
	return 0;
}

static int local_cancel(struct jobs_backend *b, const char *ext, struct jb_error *err)
{
	(void)b;
	return jb_err(err, EINVAL, "job %s: this host's jobs are cancelled through their supervisor", ext);
}

const struct backend_ops jobs_local_ops = {
	.type = "local",
	.submit = local_submit,
	.cancel = local_cancel,
	.supervised = true,
};

/* ---- null ---- */

#define NULL_MAX 1024 /* cancelled jobs remembered (then the oldest is forgotten) */

struct null_backend {
	double seconds;
	pthread_mutex_t lock;
	char cancelled[NULL_MAX][64];
	size_t next;
};

static const char *const null_keys[] = {"seconds", NULL};

static int null_open(struct jobs_backend *b, struct jb_error *err)
{
	struct null_backend *n = calloc(1, sizeof *n);
	if (!n)
		return jb_err(err, ENOMEM, "backend %s: out of memory", b->name);
	const char *s = b->conf ? jb_backend_conf_get(b->conf, "seconds") : NULL;
	char *end = NULL;
	n->seconds = s ? strtod(s, &end) : 0;
	if (s && (end == s || *end || n->seconds < 0 || n->seconds > 86400)) {
		free(n);
		return jb_err(err, EINVAL, "backend %s: seconds is a number of seconds from 0 to 86400", b->name);
	}
	pthread_mutex_init(&n->lock, NULL);
	b->priv = n;
	return 0;
}

static void null_close(struct jobs_backend *b)
{
	struct null_backend *n = b->priv;
	if (!n)
		return;
	pthread_mutex_destroy(&n->lock);
	free(n);
	b->priv = NULL;
}

/* ext: "null-ID-END", END the time it ends (centiseconds since the epoch) */
static int null_submit(struct jobs_backend *b, const struct remote_job *rj, char ext[64], struct jb_error *err)
{
	struct null_backend *n = b->priv;
	(void)err;
	snprintf(ext, 64, "null-%s-%lld", rj->id, (long long)((jb_wall() + n->seconds) * 100));
	return 0;
}

static bool null_was_cancelled(struct null_backend *n, const char *ext)
{
	bool c = false;
	pthread_mutex_lock(&n->lock);
	for (size_t i = 0; i < NULL_MAX && !c; i++)
		c = !strcmp(n->cancelled[i], ext);
	pthread_mutex_unlock(&n->lock);
	return c;
}

static int null_status(struct jobs_backend *b, const char *ext, struct remote_status *rs, struct jb_error *err)
{
	struct null_backend *n = b->priv;
	const char *dash = strrchr(ext, '-');
	if (strncmp(ext, "null-", 5) || !dash)
		return jb_err(err, EINVAL, "backend %s: '%s' is not a job of its", b->name, ext);
	double end = strtod(dash + 1, NULL) / 100;
	bool ended = jb_wall() >= end || null_was_cancelled(n, ext);
	*rs = (struct remote_status){.st = ended ? R_ENDED : R_RUNNING, .have_exit = ended, .exit_code = 0};
	snprintf(rs->state, sizeof rs->state, "%s", ended ? "ENDED" : "RUNNING");
	snprintf(rs->node, sizeof rs->node, "null");
	return 0;
}

static int null_cancel(struct jobs_backend *b, const char *ext, struct jb_error *err)
{
	struct null_backend *n = b->priv;
	(void)err;
	pthread_mutex_lock(&n->lock);
	snprintf(n->cancelled[n->next], sizeof n->cancelled[n->next], "%s", ext);
	n->next = (n->next + 1) % NULL_MAX;
	pthread_mutex_unlock(&n->lock);
	return 0;
}

const struct backend_ops jobs_null_ops = {
	.type = "null",
	.keys = null_keys,
	.open = null_open,
	.submit = null_submit,
	.status = null_status,
	.cancel = null_cancel,
	.close = null_close,
	.networked = true,
};
