/* Jobs on this host: the table (SQLite), submission (checked here, started
 * by a thread: the image may need pulling), supervisors started and watched
 * (pidfds in one poll loop), re-attachment after a restart, cancel. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "jobs-internal.h"

static const char *const state_names[NSTATES + 1] = {"pending", "running", "completed", "failed",
						     "cancelled", "timeout", "oom", "lost", NULL};

const char *const *jb_job_states(void) { return state_names; }

static void job_dir(const struct jb_jobs *j, const char *id, char *out, size_t n) { snprintf(out, n, "%s/%s", j->jobdir, id); }

static bool cancelled(struct jb_jobs *j, const char *id);

/* ---- the table ---- */

static void set_state(struct jb_jobs *j, const char *id, enum state s, const char *reason)
{
	pthread_mutex_lock(&j->lock);
	sched_exec(j->db, NULL, "UPDATE job SET state=?, reason=COALESCE(?, reason), finished=CASE WHEN ?>=2 THEN ? ELSE finished END "
		"WHERE id=?",
	     "isids", (int64_t)s, reason, (int64_t)s, jb_wall(), id);
	pthread_mutex_unlock(&j->lock);
	if (s >= COMPLETED)
		jb_log(JB_LOG_INFO, "job %s: %s%s%s", id, state_names[s], reason ? ": " : "", reason ? reason : "");
}

/* A job's end is one transaction: its row (state, exit, reason, times) and
 * its outputs settled as current datasets, on the catalog's connection
 * (without a catalog, the row alone).  When it cannot be written the job
 * stays as it was, its outputs pending: the next start reads the
 * supervisor's result again and jb_catalog_reconcile settles the files. */
static void record_end(struct jb_jobs *j, const char *id, enum state s, const struct jb_job_result *r, const char *reason,
		       const struct jobs_outputs *outs)
{
	static const char sql[] = "UPDATE job SET state=?, exit_code=?, reason=?, started=COALESCE(started, ?), finished=?, "
				  "max_memory=? WHERE id=?";
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
		jb_log(JB_LOG_ERROR, "job %s: its end (%s) is not recorded: %s; it is read again at the next start", id,
		       state_names[s], err.msg);
}

static json_t *row_json(sqlite3_stmt *st)
{
	json_t *spec = json_loads((const char *)sqlite3_column_text(st, 2), 0, NULL);
	json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:f}", "id", sqlite3_column_text(st, 0), "state",
			      state_names[sqlite3_column_int(st, 1) % NSTATES], "image", sqlite3_column_text(st, 3),
			      "spec", spec ? spec : json_object(), "created", sqlite3_column_double(st, 5));
	if (sqlite3_column_type(st, 4) != SQLITE_NULL)
		json_object_set_new(o, "digest", json_string((const char *)sqlite3_column_text(st, 4)));
	if (sqlite3_column_type(st, 6) != SQLITE_NULL)
		json_object_set_new(o, "started", json_real(sqlite3_column_double(st, 6)));
	if (sqlite3_column_type(st, 7) != SQLITE_NULL)
		json_object_set_new(o, "finished", json_real(sqlite3_column_double(st, 7)));
	if (sqlite3_column_type(st, 8) != SQLITE_NULL)
		json_object_set_new(o, "exit_code", json_integer(sqlite3_column_int(st, 8)));
	if (sqlite3_column_type(st, 9) != SQLITE_NULL)
		json_object_set_new(o, "reason", json_string((const char *)sqlite3_column_text(st, 9)));
	if (sqlite3_column_type(st, 11) != SQLITE_NULL)
		json_object_set_new(o, "max_memory", json_integer(sqlite3_column_int64(st, 11)));
	if (sqlite3_column_type(st, 13) != SQLITE_NULL)
		json_object_set_new(o, "output", json_string((const char *)sqlite3_column_text(st, 13)));
	if (sqlite3_column_type(st, 14) != SQLITE_NULL)
		json_object_set_new(o, "address", json_string((const char *)sqlite3_column_text(st, 14)));
	json_object_set_new(o, "backend", json_string(sqlite3_column_type(st, 15) != SQLITE_NULL
							     ? (const char *)sqlite3_column_text(st, 15)
							     : "local"));
	if (sqlite3_column_type(st, 16) != SQLITE_NULL)
		json_object_set_new(o, "backend_id", json_string((const char *)sqlite3_column_text(st, 16)));
	if (sqlite3_column_type(st, 17) != SQLITE_NULL)
		json_object_set_new(o, "node", json_string((const char *)sqlite3_column_text(st, 17)));
	if (sqlite3_column_type(st, 18) != SQLITE_NULL)
		json_object_set_new(o, "port", json_integer(sqlite3_column_int(st, 18)));
	return o;
}

#define COLS                                                                                                      \
	"id, state, spec, image, digest, created, started, finished, exit_code, reason, sup_pid, max_memory, cancel, " \
	"output, address, backend, ext_id, node, port"

json_t *jb_jobs_get(struct jb_jobs *j, const char *id)
{
	sqlite3_stmt *st;
	json_t *o = NULL;
	pthread_mutex_lock(&j->lock);
	if (sqlite3_prepare_v2(j->db, "SELECT " COLS " FROM job WHERE id=?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) == SQLITE_ROW)
			o = row_json(st);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&j->lock);
	return o;
}

json_t *jb_jobs_list(struct jb_jobs *j)
{
	sqlite3_stmt *st;
	json_t *a = json_array();
	pthread_mutex_lock(&j->lock);
	if (sqlite3_prepare_v2(j->db, "SELECT " COLS " FROM job ORDER BY created DESC", -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW)
			json_array_append_new(a, row_json(st));
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&j->lock);
	return a;
}

void jb_jobs_counts(struct jb_jobs *j, unsigned counts[8])
{
	sqlite3_stmt *st;
	memset(counts, 0, 8 * sizeof *counts);
	pthread_mutex_lock(&j->lock);
	if (sqlite3_prepare_v2(j->db, "SELECT state, count(*) FROM job GROUP BY state", -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW)
			counts[sqlite3_column_int(st, 0) % NSTATES] = (unsigned)sqlite3_column_int(st, 1);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&j->lock);
}

/* ---- watching supervisors ---- */

static void wake(struct jb_jobs *j)
{
	uint64_t one = 1;
	if (write(j->wake, &one, sizeof one) < 0)
		jb_log(JB_LOG_WARN, "jobs: cannot wake the watcher: %s", strerror(errno));
}

static int pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

static void watch(struct jb_jobs *j, const char *id, pid_t pid, bool child)
{
	int fd = pidfd_open(pid);
	pthread_mutex_lock(&j->lock);
	if (j->nw < MAX_RUNNING) {
		struct watched *w = &j->w[j->nw++];
		snprintf(w->id, sizeof w->id, "%s", id);
		w->pid = pid;
		w->pidfd = fd;
		w->child = child;
		fd = -1;
	}
	pthread_mutex_unlock(&j->lock);
	if (fd >= 0) {
		jb_log(JB_LOG_WARN, "job %s: more than %d running jobs: not watched", id, MAX_RUNNING);
		close(fd);
	}
	wake(j);
}

void jobs_finish(struct jb_jobs *j, const char *id, const struct remote_status *remote)
{
	char dir[4200];
	struct jb_job_result r;
	struct jb_error err = {0};
	job_dir(j, id, dir, sizeof dir);
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
		bool cxl = cancelled(j, id);
		snprintf(why, sizeof why, "%s%s%s%s%s", cxl ? "cancelled" : "its backend ended it without a result: ",
			 cxl ? "" : remote->state, remote->reason[0] && !cxl ? " (" : "", cxl ? "" : remote->reason,
			 remote->reason[0] && !cxl ? ")" : "");
		if (!cxl && remote->st == R_UNKNOWN)
			snprintf(why, sizeof why, "lost by its backend: %s, and no result from its supervisor", remote->reason);
		set_state(j, id, cxl ? CANCELLED : LOST, why);
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
		set_state(j, id, LOST, "its supervisor ended without a result (killed?); the container was removed");
		return;
	}
	enum state s = r.error[0] ? FAILED
		       : r.cancelled ? CANCELLED
		       : r.timed_out ? TIMEOUT
		       : r.oom ? OOM
		       : r.exit_code == 0 ? COMPLETED : FAILED;
	char reason[700] = "";
	struct jobs_outputs outs = {0};
	if (s == COMPLETED && j->cat) {
		/* what the job left in /work/out becomes datasets of the data root */
		json_t *job = jb_jobs_get(j, id);
		const char *out = json_string_value(json_object_get(job, "output"));
		char ws[4300];
		snprintf(ws, sizeof ws, "%s/workspace", dir);
		struct jb_error oerr = {0};
		int orc = out ? jobs_commit_outputs(j->cat, j->rootreal, j->c->name, id, ws, out, &outs, &oerr) : 0;
		if (orc < 0 && outs.store_failed) {
			/* the site database, not the job: its end waits for the next
			 * start (what has its name is settled by reconcile then) */
			jb_log(JB_LOG_ERROR, "job %s: its end (completed) is not recorded: %s; it is read again at the next start",
			       id, oerr.msg);
			jobs_outputs_free(&outs);
			json_decref(job);
			return;
		} else if (orc < 0) {
			s = FAILED;
			snprintf(reason, sizeof reason, "its outputs could not be committed: %s", oerr.msg);
		} else if (outs.n) {
			jb_log(JB_LOG_INFO, "job %s: %zu output%s committed under %s", id, outs.n, outs.n == 1 ? "" : "s", out);
		}
		json_decref(job);
	}
	if (reason[0])
		;
	else if (r.error[0])
		snprintf(reason, sizeof reason, "%s", r.error);
	else if (s == OOM)
		snprintf(reason, sizeof reason, "out of memory: killed (exit status %d)", r.exit_code);
	else if (s == TIMEOUT)
		snprintf(reason, sizeof reason, "over its time limit: killed");
	else if (s == CANCELLED)
		snprintf(reason, sizeof reason, "cancelled");
	else if (r.signal)
		snprintf(reason, sizeof reason, "killed by signal %d", r.signal);
	else if (r.exit_code)
		snprintf(reason, sizeof reason, "exit status %d", r.exit_code);
	record_end(j, id, s, &r, reason, &outs);
	jobs_outputs_free(&outs);
	jb_log(JB_LOG_INFO, "job %s: %s%s%s", id, state_names[s], reason[0] ? ": " : "", reason);
	/* the container's writable layer goes; its workspace and logs stay */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		jb_remove_tree(dfd, "upper");
		jb_remove_tree(dfd, "work");
		close(dfd);
	}
}

static void *watcher(void *arg)
{
	struct jb_jobs *j = arg;
	for (;;) {
		struct pollfd pf[MAX_RUNNING + 1];
		struct watched copy[MAX_RUNNING];
		pthread_mutex_lock(&j->lock);
		if (j->stop) {
			pthread_mutex_unlock(&j->lock);
			return NULL;
		}
		size_t n = j->nw;
		memcpy(copy, j->w, n * sizeof *copy);
		pthread_mutex_unlock(&j->lock);
		pf[0] = (struct pollfd){.fd = j->wake, .events = POLLIN};
		for (size_t i = 0; i < n; i++)
			pf[i + 1] = (struct pollfd){.fd = copy[i].pidfd, .events = POLLIN};
		if (poll(pf, n + 1, 1000) < 0 && errno != EINTR)
			continue;
		if (pf[0].revents & POLLIN) {
			uint64_t v;
			if (read(j->wake, &v, sizeof v) < 0 && errno != EAGAIN)
				jb_log(JB_LOG_WARN, "jobs: %s", strerror(errno));
		}
		for (size_t i = 0; i < n; i++) {
			/* a pidfd that could not be opened: look at the pid */
			bool gone = copy[i].pidfd >= 0 ? (pf[i + 1].revents & (POLLIN | POLLHUP)) != 0
							: kill(copy[i].pid, 0) < 0;
			if (!gone)
				continue;
			if (copy[i].child)
				waitpid(copy[i].pid, NULL, 0);
			jobs_finish(j, copy[i].id, NULL);
			pthread_mutex_lock(&j->lock);
			for (size_t k = 0; k < j->nw; k++)
				if (!strcmp(j->w[k].id, copy[i].id)) {
					if (j->w[k].pidfd >= 0)
						close(j->w[k].pidfd);
					j->w[k] = j->w[--j->nw];
					break;
				}
			pthread_mutex_unlock(&j->lock);
		}
	}
}

/* ---- starting ---- */

struct start {
	struct jb_jobs *j;
	char id[JB_JOB_ID_LEN + 1];
	struct jb_job_spec spec;
};

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

static bool cancelled(struct jb_jobs *j, const char *id) { return jobs_cancel_flag(j, id) != 0; }

/* A pull asks this while it waits: a job cancelled while pending stops its
 * pull within about 200 ms. */
struct pull_cancel {
	struct jb_jobs *j;
	const char *id;
	struct timespec last;
};
static bool pull_cancelled(void *ud)
{
	struct pull_cancel *pc = ud;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if ((now.tv_sec - pc->last.tv_sec) * 1000000000L + (now.tv_nsec - pc->last.tv_nsec) < 200000000L)
		return false;
	pc->last = now;
	return cancelled(pc->j, pc->id);
}

static void map_for(const void *ud, const char *path, char *out, size_t n) { jobs_backend_map(ud, path, out, n); }

static void *start_job(void *arg)
{
	struct start *s = arg;
	struct jb_jobs *j = s->j;
	struct jb_error err = {0};
	struct jb_oci_store *store = NULL;
	struct jb_oci_image img = {0};
	char **layers = NULL;
	char dir[4200];
	job_dir(j, s->id, dir, sizeof dir);
	struct jobs_backend *be = s->spec.backend ? jobs_backend_find(j, s->spec.backend) : NULL;
	/* an engine that runs its own containers (Marathon) takes the image from
	 * a registry: here only the job's directory is made */
	bool own = be && be->ops && !be->ops->supervised;
	int rc = own ? 0 : jb_oci_store_open(j->images, &store, &err);
	if (rc == 0 && !own) {
		rc = jb_oci_image_open(store, s->spec.image, &img, &err);
		if (rc == -ENOENT && strchr(s->spec.image, '/')) {
			/* not here: from its registry, if it names one */
			struct jb_oci_ref ref;
			if (jb_oci_ref_parse(s->spec.image, &ref, NULL) == 0 && ref.host[0]) {
				/* credentials: [registry HOST] for that host, else none */
				struct pull_cancel pc = {.j = j, .id = s->id};
				struct jb_registry_opts o;
				jb_registry_opts_for(j->c, ref.host, NULL, NULL, false, &o);
				o.cancelled = pull_cancelled;
				o.cancel_ud = &pc;
				memset(&err, 0, sizeof err);
				jb_log(JB_LOG_INFO, "job %s: pulling %s", s->id, s->spec.image);
				rc = jb_oci_pull(store, s->spec.image, &o, &img, &err);
			}
		}
	}
	if (rc == 0 && !own)
		rc = jb_oci_image_layers(store, &img, &layers, &err);
	for (size_t i = 0; rc == 0 && i < s->spec.ndata; i++)
		if (s->spec.data[i].remote)
			rc = jobs_fetch(j, s->id, &s->spec.data[i], &err);
	if (rc == 0 && j->cat)
		rc = jobs_record_inputs(j->cat, j->rootreal, s->id, &s->spec, &err);
	if (rc == 0 && s->spec.veth && !(be && be->ops && be->ops->networked))
		rc = jobs_net_setup(j, s->id, &s->spec, &err);
	if (rc == 0 && own) {
		char ws[4300];
		snprintf(ws, sizeof ws, "%s/workspace/out", dir);
		int dfd = open(j->jobdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		int w = dfd < 0 ? -errno : jb_mkdirs_beneath(dfd, ws + strlen(j->jobdir) + 1, 0755);
		if (dfd >= 0)
			close(dfd);
		if (w < 0)
			rc = jb_err(&err, -w, "%s: %s", ws, strerror(-w));
		else
			close(w);
		if (rc == 0 && s->spec.home) { /* the notebook user's, as in a local job */
			snprintf(ws, sizeof ws, "%s/workspace", dir);
			if (chown(ws, s->spec.uid, s->spec.gid) < 0 || chown(strcat(ws, "/out"), s->spec.uid, s->spec.gid) < 0)
				jb_log(JB_LOG_WARN, "job %s: %s: %s", s->id, ws, strerror(errno));
		}
	} else if (rc == 0) {
		pthread_mutex_lock(&j->lock);
		sched_exec(j->db, NULL, "UPDATE job SET digest=? WHERE id=?", "ss", img.digest, s->id);
		pthread_mutex_unlock(&j->lock);
		char croot[4200];
		snprintf(croot, sizeof croot, "%s/crun", j->state);
		struct jb_bundle_opts bo = {.crun = j->crun, .crun_root = croot, .cgroups = j->cgroups};
		if (be) {
			bo.map = map_for;
			bo.map_ud = be;
		}
		rc = jb_bundle_make(dir, s->id, &s->spec, &img, layers, &bo, &err);
	}
	bool ournet = s->spec.veth && !(be && be->ops && be->ops->networked);
	if (cancelled(j, s->id)) { /* also when preparing it failed after the cancel (a pull cut short) */
		if (ournet)
			jobs_net_teardown(s->id);
		set_state(j, s->id, CANCELLED, "cancelled before it started");
		goto out;
	}
	if (rc < 0) {
		if (ournet)
			jobs_net_teardown(s->id);
		set_state(j, s->id, FAILED, err.msg[0] ? err.msg : strerror(-rc));
		goto out;
	}
	if (be) {
		/* the supervisor where the backend puts it */
		char ndir[4400], ext[64] = "";
		jobs_backend_map(be, dir, ndir, sizeof ndir);
		struct remote_job rj = {.c = j->c, .images = j->images, .id = s->id, .dir = ndir, .jumbod = be->jumbod,
					.spec = &s->spec};
		rc = be->ops ? be->ops->submit(be, &rj, ext, &err)
			     : jb_err(&err, EHOSTDOWN, "backend %s is not available: %s", be->conf->name, be->error);
		if (rc < 0) {
			if (ournet)
				jobs_net_teardown(s->id);
			set_state(j, s->id, FAILED, err.msg[0] ? err.msg : strerror(-rc));
			goto out;
		}
		char why[160];
		snprintf(why, sizeof why, "queued in %s (%s job %s)", be->conf->name, be->conf->type, ext);
		pthread_mutex_lock(&j->lock);
		sched_exec(j->db, NULL, "UPDATE job SET backend=?, ext_id=?, reason=? WHERE id=?", "ssss", be->conf->name, ext, why,
			   s->id);
		pthread_mutex_unlock(&j->lock);
		jb_log(JB_LOG_INFO, "job %s: %s", s->id, why);
		if (cancelled(j, s->id)) /* cancelled while it was being submitted */
			be->ops->cancel(be, ext, &err);
		goto out;
	}
	/* the supervisor: this program again, in its own session */
	char *argv[] = {j->self_exe, (char *)"--supervise", dir, NULL};
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
	if (pid < 0) {
		set_state(j, s->id, FAILED, "cannot start its supervisor");
		goto out;
	}
	pthread_mutex_lock(&j->lock);
	sched_exec(j->db, NULL, "UPDATE job SET state=?, sup_pid=?, started=? WHERE id=? AND state=?", "iidsi", (int64_t)RUNNING,
	     (int64_t)pid, jb_wall(), s->id, (int64_t)PENDING);
	pthread_mutex_unlock(&j->lock);
	jb_log(JB_LOG_INFO, "job %s: running %s (%s)", s->id, img.name, img.digest);
	watch(j, s->id, pid, true);
out:
	jb_oci_strv_free(layers);
	if (img.manifest_mt)
		jb_oci_image_free(&img);
	jb_oci_store_close(store);
	jb_job_spec_free(&s->spec);
	free(s);
	pthread_mutex_lock(&j->lock);
	j->starting--;
	pthread_cond_broadcast(&j->idle);
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

int jb_jobs_submit(struct jb_jobs *j, json_t *req, char id[JB_JOB_ID_LEN + 1], struct jb_error *err)
{
	struct start *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	int r = jobs_parse_spec(j, req, &s->spec, err);
	if (r < 0) {
		jb_job_spec_free(&s->spec);
		free(s);
		return r;
	}
	uint8_t rnd[JB_JOB_ID_LEN / 2];
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
		jb_job_spec_free(&s->spec);
		free(s);
		return jb_err(err, EIO, "no randomness for a job id");
	}
	jb_hex(rnd, sizeof rnd, s->id);
	s->j = j;
	/* where its /work/out goes: the request's directory ({job} is its id), or results/ID */
	const char *ot = json_string_value(json_object_get(req, "output"));
	char output[JB_PATH_MAX + 64];
	size_t o = 0;
	for (const char *p = ot ? ot : "results/{job}"; *p && o < sizeof output - JB_JOB_ID_LEN - 1;)
		if (!strncmp(p, "{job}", 5)) {
			memcpy(output + o, s->id, JB_JOB_ID_LEN);
			o += JB_JOB_ID_LEN;
			p += 5;
		} else {
			output[o++] = *p++;
		}
	output[o] = 0;
	char *clean = NULL;
	if (jb_path_clean(output, &clean, err) < 0 || !*clean) {
		free(clean);
		jb_job_spec_free(&s->spec);
		free(s);
		return jb_err(err, EINVAL, "\"output\" must be a directory below the data root");
	}
	char *spec = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
	pthread_mutex_lock(&j->lock);
	r = spec ? sched_exec(j->db, err, "INSERT INTO job(id, state, spec, image, created, output) VALUES(?,?,?,?,?,?)", "sissds",
			s->id, (int64_t)PENDING, spec, s->spec.image, jb_wall(), clean)
		 : jb_err(err, ENOMEM, "out of memory");
	free(clean);
	if (r == 0)
		j->starting++;
	pthread_mutex_unlock(&j->lock);
	free(spec);
	if (r < 0) {
		jb_job_spec_free(&s->spec);
		free(s);
		return err ? jb_err_prefix(err, "cannot record the job") : r;
	}
	strcpy(id, s->id);
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, start_job, s) != 0) {
		pthread_mutex_lock(&j->lock);
		j->starting--;
		pthread_mutex_unlock(&j->lock);
		set_state(j, id, FAILED, "cannot start a thread");
		jb_job_spec_free(&s->spec);
		free(s);
	}
	pthread_attr_destroy(&at);
	jb_log(JB_LOG_INFO, "job %s: submitted (%s)", id, json_string_value(json_object_get(req, "image")));
	return 0;
}

int jb_jobs_rerun(struct jb_jobs *j, const char *job, char id[JB_JOB_ID_LEN + 1], struct jb_error *err)
{
	json_t *o = jb_jobs_get(j, job);
	if (!o)
		return jb_err(err, ENOENT, "no job %s", job);
	int r = 0;
	const char *digest = json_string_value(json_object_get(o, "digest"));
	const char *state = json_string_value(json_object_get(o, "state"));
	if (!digest || !strcmp(state, "pending") || !strcmp(state, "running")) {
		r = jb_err(err, EALREADY, "job %s %s", job, digest ? "has not ended" : "never ran: no image to pin");
		goto out;
	}
	/* the same inputs: each file must still have the digest it had */
	if (j->cat) {
		json_t *inputs = jb_catalog_inputs(j->cat, job), *in;
		size_t i;
		json_array_foreach (inputs, i, in) {
			const char *p = json_string_value(json_object_get(in, "path"));
			const char *d = json_string_value(json_object_get(in, "digest"));
			char now[64];
			struct jb_error e2 = {0};
			if (jobs_dataset_digest(j->cat, j->rootreal, p, now, &e2) < 0) {
				r = jb_err(err, ESTALE, "input %s of job %s is gone: %s", p, job, e2.msg);
				break;
			}
			if (strcmp(now, d)) {
				r = jb_err(err, ESTALE, "input %s of job %s has changed (%s then, %s now)", p, job, d, now);
				break;
			}
		}
		json_decref(inputs);
		if (r < 0)
			goto out;
	}
	json_t *spec = json_deep_copy(json_object_get(o, "spec"));
	struct jb_oci_ref ref;
	char pinned[700];
	if (jb_oci_ref_parse(json_string_value(json_object_get(spec, "image")), &ref, NULL) == 0) {
		snprintf(ref.digest, sizeof ref.digest, "%s", digest);
		jb_oci_ref_name(&ref, pinned, sizeof pinned);
		json_object_set_new(spec, "image", json_string(pinned));
	}
	json_object_del(spec, "output");
	json_object_set_new(spec, "rerun_of", json_string(job));
	/* the datasets by path: what the original was given, checked above */
	r = jb_jobs_submit(j, spec, id, err);
	json_decref(spec);
out:
	json_decref(o);
	return r;
}

int jb_jobs_kill(struct jb_jobs *j, const char *id, struct jb_error *err)
{
	json_t *o = jb_jobs_get(j, id);
	if (!o)
		return jb_err(err, ENOENT, "no job %s", id);
	const char *st = json_string_value(json_object_get(o, "state"));
	int r = 0;
	const char *bname = json_string_value(json_object_get(o, "backend"));
	const char *ext = json_string_value(json_object_get(o, "backend_id"));
	struct jobs_backend *be = bname && strcmp(bname, "local") ? jobs_backend_find(j, bname) : NULL;
	if (!strcmp(st, "pending") || (!strcmp(st, "running") && be)) {
		pthread_mutex_lock(&j->lock);
		r = sched_exec(j->db, err, "UPDATE job SET cancel=1 WHERE id=?", "s", id);
		pthread_mutex_unlock(&j->lock);
		/* handed to a backend already: it cancels it (the supervisor then
		 * writes its result), else the start thread sees the flag */
		if (r == 0 && be && ext && be->ops)
			r = be->ops->cancel(be, ext, err);
	} else if (!strcmp(st, "running")) {
		/* through the pidfd: never a recycled pid */
		pthread_mutex_lock(&j->lock);
		r = -ESRCH;
		for (size_t i = 0; i < j->nw; i++)
			if (!strcmp(j->w[i].id, id))
				r = j->w[i].pidfd >= 0 ? (int)syscall(SYS_pidfd_send_signal, j->w[i].pidfd, SIGTERM, NULL, 0)
						       : kill(j->w[i].pid, SIGTERM);
		pthread_mutex_unlock(&j->lock);
		if (r < 0)
			r = jb_err(err, ESRCH, "job %s: its supervisor is gone", id);
	} else {
		r = jb_err(err, EALREADY, "job %s has ended (%s)", id, st);
	}
	json_decref(o);
	return r;
}

int jb_jobs_log_path(struct jb_jobs *j, const char *id, const char *stream, char *out, size_t n)
{
	if (strcmp(stream, "stdout") && strcmp(stream, "stderr"))
		return -EINVAL;
	for (const char *p = id; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return -ENOENT;
	json_t *o = jb_jobs_get(j, id);
	if (!o)
		return -ENOENT;
	json_decref(o);
	snprintf(out, n, "%s/%s/%s", j->jobdir, id, stream);
	return 0;
}

/* ---- open and close ---- */

/* After a restart: the jobs the table says run. */
static void reattach(struct jb_jobs *j)
{
	sqlite3_stmt *st;
	char ids[MAX_RUNNING][JB_JOB_ID_LEN + 1];
	int states[MAX_RUNNING];
	size_t n = 0;
	if (sqlite3_prepare_v2(j->db, "SELECT id, state FROM job WHERE state IN (0, 1) AND ext_id IS NULL", -1, &st, NULL) !=
	    SQLITE_OK)
		return;
	while (n < MAX_RUNNING && sqlite3_step(st) == SQLITE_ROW) {
		snprintf(ids[n], sizeof ids[n], "%s", sqlite3_column_text(st, 0));
		states[n++] = sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	for (size_t i = 0; i < n; i++) {
		char dir[4200], p[4300];
		job_dir(j, ids[i], dir, sizeof dir);
		if (states[i] == PENDING) {
			set_state(j, ids[i], FAILED, "jumbod stopped before the job started");
			continue;
		}
		/* the supervisor holds its lock for as long as it lives */
		snprintf(p, sizeof p, "%s/supervisor.lock", dir);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		bool alive = fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
		if (fd >= 0)
			close(fd);
		int pid = 0;
		snprintf(p, sizeof p, "%s/supervisor.pid", dir);
		FILE *f = fopen(p, "re");
		if (f) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (alive && pid > 0) {
			jb_log(JB_LOG_INFO, "job %s: still running, re-attached (supervisor %d)", ids[i], pid);
			watch(j, ids[i], pid, false);
		} else {
			jobs_finish(j, ids[i], NULL);
		}
	}
}

static char *which(const char *prog)
{
	const char *path = getenv("PATH");
	char *dup = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin"), *save = NULL;
	for (char *d = dup ? strtok_r(dup, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
		char *p = NULL;
		if (asprintf(&p, "%s/%s", d, prog) > 0 && access(p, X_OK) == 0) {
			free(dup);
			return p;
		}
		free(p);
	}
	free(dup);
	return NULL;
}

static void jobs_free(struct jb_jobs *j)
{
	jobs_backends_close(j);
	if (j->wake >= 0)
		close(j->wake);
	sqlite3_close(j->db);
	free(j->self_exe);
	free(j->crun);
	free(j->state);
	free(j->jobdir);
	free(j->images);
	free(j->rootreal);
	pthread_cond_destroy(&j->idle);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

int jb_jobs_open(const struct jb_config *c, const char *self_exe, struct jb_catalog *cat, struct jb_jobs **ret,
		 struct jb_error *err)
{
	struct jb_jobs *j = calloc(1, sizeof *j);
	if (!j)
		return -ENOMEM;
	j->c = c;
	j->cat = cat;
	j->wake = -1;
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->idle, NULL);
	int r = 0;
	if (!(j->self_exe = realpath(self_exe, NULL)) || !(j->state = strdup(c->state)) ||
	    asprintf(&j->jobdir, "%s/jobs", c->state) < 0 ||
	    (c->images ? !(j->images = strdup(c->images)) : asprintf(&j->images, "%s/images", c->state) < 0) ||
	    !(j->rootreal = realpath(c->root, NULL))) {
		r = jb_err(err, errno ? errno : ENOMEM, "jobs: %s", strerror(errno ? errno : ENOMEM));
		goto fail;
	}
	j->crun = which("crun");
	if (!j->crun) {
		r = jb_err(err, ENOENT, "jobs: crun is not installed (apt-get install crun)");
		goto fail;
	}
	j->cgroups = jb_cgroup_mode();
	char p[4200];
	snprintf(p, sizeof p, "%s/crun", c->state);
	if ((mkdir(j->jobdir, 0700) < 0 && errno != EEXIST) || (mkdir(p, 0700) < 0 && errno != EEXIST)) {
		r = jb_err(err, errno, "%s: %s", j->jobdir, strerror(errno));
		goto fail;
	}
	if ((r = jb_store_open(c->state, &j->db, err)) < 0)
		goto fail;
	if ((j->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		r = jb_err(err, errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	reattach(j);
	jobs_backends_open(j, err);
	if (pthread_create(&j->watcher, NULL, watcher, j) != 0) {
		r = jb_err(err, EAGAIN, "jobs: cannot start the watcher");
		goto fail;
	}
	if (j->nbackends && pthread_create(&j->poller, NULL, jobs_poller, j) == 0)
		j->poller_started = true;
	jb_log(JB_LOG_INFO, "jobs: crun %s, cgroups %s, images in %s", j->crun, jb_cgroup_mode_name(j->cgroups),
	       j->images);
	*ret = j;
	return 0;
fail:
	jobs_free(j);
	return r;
}

void jb_jobs_close(struct jb_jobs *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	/* start threads hold the table: let them finish (a pull may take a while) */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	while (j->starting && pthread_cond_timedwait(&j->idle, &j->lock, &until) == 0)
		;
	bool busy = j->starting > 0;
	j->stop = true;
	pthread_mutex_unlock(&j->lock);
	wake(j);
	pthread_join(j->watcher, NULL);
	if (j->poller_started)
		pthread_join(j->poller, NULL);
	if (busy) {
		jb_log(JB_LOG_WARN, "jobs: jobs still starting; leaving their state to the next start");
		return;
	}
	for (size_t i = 0; i < j->nw; i++)
		if (j->w[i].pidfd >= 0)
			close(j->w[i].pidfd);
	jobs_free(j);
}
