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

void jobs_dir(const struct jb_jobs *j, const char *id, char *out, size_t n) { snprintf(out, n, "%s/%s", j->jobdir, id); }

static bool cancelled(struct jb_jobs *j, const char *id) { return jobs_cancel_flag(j, id) != 0; }

/* ---- watching supervisors ---- */

static void wake(struct jb_jobs *j)
{
	uint64_t one = 1;
	if (write(j->wake, &one, sizeof one) < 0)
		jb_log(JB_LOG_WARN, "jobs: cannot wake the watcher: %s", strerror(errno));
}

static int pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

void jobs_watch(struct jb_jobs *j, const char *id, pid_t pid, bool child)
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
		jobs_retry_ends(j);
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
					pthread_cond_broadcast(&j->slot);
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
	struct start *next; /* in the line for a slot */
};

_Static_assert(JB_MAX_MAX_JOBS <= MAX_RUNNING, "every running job is watched");

static void line_remove(struct jb_jobs *j, struct start *s)
{
	for (struct start **p = &j->line; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			if (j->line_end == &s->next)
				j->line_end = p;
			break;
		}
}

/* One of this host's max_jobs slots, in the order jobs came: true once
 * the job has it (admitted, until its supervisor is watched or it fails
 * to start: slot_release), false when it was cancelled in the line or
 * jumbod is stopping (it stays pending). */
static bool slot_take(struct jb_jobs *j, struct start *s)
{
	pthread_mutex_lock(&j->lock);
	s->next = NULL;
	*j->line_end = s;
	j->line_end = &s->next;
	bool said = false, ok = true;
	while (!(j->line == s && j->nw + j->admitted < j->max_jobs)) {
		if (!said) {
			said = true;
			char why[160];
			snprintf(why, sizeof why, "queued: %u of this host's jobs run at once ([site] max_jobs)", j->max_jobs);
			pthread_mutex_unlock(&j->lock);
			jobs_set_state(j, s->id, JB_JOB_PENDING, why);
			jb_log(JB_LOG_INFO, "job %s: %s", s->id, why);
			pthread_mutex_lock(&j->lock);
			continue;
		}
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&j->slot, &j->lock, &until);
		bool stop = j->closing;
		pthread_mutex_unlock(&j->lock);
		ok = !stop && !cancelled(j, s->id);
		pthread_mutex_lock(&j->lock);
		if (!ok)
			break;
	}
	line_remove(j, s);
	if (ok)
		j->admitted++;
	pthread_cond_broadcast(&j->slot); /* the next in line may be first now */
	pthread_mutex_unlock(&j->lock);
	if (ok && said)
		jobs_set_state(j, s->id, JB_JOB_PENDING, "");
	return ok;
}

static void slot_release(struct jb_jobs *j)
{
	pthread_mutex_lock(&j->lock);
	j->admitted--;
	pthread_cond_broadcast(&j->slot);
	pthread_mutex_unlock(&j->lock);
}


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

/* The job's image, from the store or pulled from its registry if it names one. */
static int job_image(struct jb_jobs *j, struct start *s, struct jb_oci_store *store, struct jb_oci_image *img,
		     struct jb_error *err)
{
	int rc = jb_oci_image_open(store, s->spec.image, img, err);
	struct jb_oci_ref ref;
	if (rc != -ENOENT || !strchr(s->spec.image, '/') || jb_oci_ref_parse(s->spec.image, &ref, NULL) < 0 ||
	    !ref.host[0])
		return rc;
	/* credentials: [registry HOST] for that host, else none */
	struct pull_cancel pc = {.j = j, .id = s->id};
	struct jb_registry_opts o;
	jb_registry_opts_for(j->c, ref.host, NULL, NULL, false, &o);
	o.cancelled = pull_cancelled;
	o.cancel_ud = &pc;
	memset(err, 0, sizeof *err);
	jb_log(JB_LOG_INFO, "job %s: pulling %s", s->id, s->spec.image);
	return jb_oci_pull(store, s->spec.image, &o, img, err);
}

/* The job's directory for an engine that runs its own containers: the
 * workspace and its out/, the notebook user's as in a bundle. */
static int job_workspace(struct jb_jobs *j, struct start *s, const char *dir, struct jb_error *err)
{
	char ws[4300];
	snprintf(ws, sizeof ws, "%s/workspace/out", dir);
	_cleanup_close_ int dfd = open(j->jobdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int w = dfd < 0 ? -errno : jb_mkdirs_beneath(dfd, ws + strlen(j->jobdir) + 1, 0755);
	if (w < 0)
		return jb_err(err, -w, "%s: %s", ws, strerror(-w));
	close(w);
	if (s->spec.home) {
		snprintf(ws, sizeof ws, "%s/workspace", dir);
		if (chown(ws, s->spec.uid, s->spec.gid) < 0 || chown(strcat(ws, "/out"), s->spec.uid, s->spec.gid) < 0)
			jb_log(JB_LOG_WARN, "job %s: %s: %s", s->id, ws, strerror(errno));
	}
	return 0;
}

/* Everything before the hand-off: image and layers (for a backend that
 * runs jumbo's supervisor), the peers' datasets fetched, the inputs
 * recorded, the veth network (unless the engine gives one), the bundle. */
static int prepare(struct jb_jobs *j, struct start *s, struct jobs_backend *be, const char *dir, struct jb_error *err)
{
	/* an engine that runs its own containers (Marathon) takes the image from
	 * a registry: here only the job's directory is made */
	bool own = !be->ops->supervised;
	struct jb_oci_store *store = NULL;
	struct jb_oci_image img = {0};
	char **layers = NULL;
	int rc = own ? 0 : jb_oci_store_open(j->images, &store, err);
	if (rc == 0 && !own && j->c->max_image_size)
		jb_oci_store_set_max_unpacked(store, j->c->max_image_size);
	if (rc == 0 && !own)
		rc = job_image(j, s, store, &img, err);
	if (rc == 0 && !own)
		rc = jb_oci_image_layers(store, &img, &layers, err);
	for (size_t i = 0; rc == 0 && i < s->spec.ndata; i++)
		if (s->spec.data[i].remote)
			rc = jobs_fetch(j, s->id, &s->spec.data[i], err);
	if (rc == 0 && j->cat)
		rc = jobs_record_inputs(j->cat, j->rootreal, s->id, &s->spec, err);
	if (rc == 0 && s->spec.veth && !be->ops->networked)
		rc = jobs_net_setup(j, s->id, &s->spec, err);
	if (rc == 0 && own) {
		rc = job_workspace(j, s, dir, err);
	} else if (rc == 0) {
		pthread_mutex_lock(&j->lock);
		rc = sched_exec(j->db, err, "UPDATE job SET digest=? WHERE id=?", "ss", img.digest, s->id);
		pthread_mutex_unlock(&j->lock);
		char croot[4200];
		snprintf(croot, sizeof croot, "%s/crun", j->state);
		struct jb_bundle_opts bo = {
			.crun = j->crun, .crun_root = croot, .cgroups = j->cgroups, .id0 = j->id0, .ids = j->ids,
			.log_max = j->c->max_job_log ? j->c->max_job_log : JB_DEFAULT_MAX_JOB_LOG};
		if (be != &j->local) {
			bo.map = map_for;
			bo.map_ud = be;
		}
		if (rc == 0)
			rc = jb_bundle_make(dir, s->id, &s->spec, &img, layers, &bo, err);
		if (rc == 0)
			jb_log(JB_LOG_INFO, "job %s: %s (%s) ready", s->id, img.name, img.digest);
	}
	jb_oci_strv_free(layers);
	if (img.manifest_mt)
		jb_oci_image_free(&img);
	jb_oci_store_close(store);
	return rc;
}

/* A job's start thread: prepare, then hand it to its backend (this host's
 * own, or an engine's, which gives it an id recorded with the job). */
static void *start_job(void *arg)
{
	struct start *s = arg;
	struct jb_jobs *j = s->j;
	struct jb_error err = {0};
	char dir[4200], ndir[4400], ext[64] = "";
	jobs_dir(j, s->id, dir, sizeof dir);
	struct jobs_backend *be = jobs_backend_find(j, s->spec.backend);
	/* this host's jobs wait for a slot before anything is prepared; an
	 * engine's queue its own */
	bool slot = be == &j->local;
	if (slot && !slot_take(j, s)) {
		if (cancelled(j, s->id))
			jobs_set_state(j, s->id, JB_JOB_CANCELLED, "cancelled before it started");
		goto out;
	}
	int rc = !be ? jb_err(&err, ENOENT, "backend %s is gone from the configuration", s->spec.backend)
	       : be->error[0] ? jb_err(&err, EHOSTDOWN, "backend %s is not available: %s", be->name, be->error)
			      : prepare(j, s, be, dir, &err);
	bool ournet = be && s->spec.veth && !be->ops->networked;
	if (cancelled(j, s->id)) { /* also when preparing it failed after the cancel (a pull cut short) */
		if (slot)
			slot_release(j);
		if (ournet)
			jobs_net_teardown(s->id);
		jobs_set_state(j, s->id, JB_JOB_CANCELLED, "cancelled before it started");
		goto out;
	}
	if (rc == 0) {
		jobs_backend_map(be, dir, ndir, sizeof ndir);
		struct remote_job rj = {.c = j->c, .images = j->images, .id = s->id, .dir = ndir, .jumbod = be->jumbod,
					.spec = &s->spec};
		rc = be->ops->submit(be, &rj, ext, &err);
	}
	if (slot) /* watched now (its slot is the watch list's), or it failed */
		slot_release(j);
	slot = false;
	if (rc < 0) {
		if (ournet)
			jobs_net_teardown(s->id);
		jobs_set_state(j, s->id, JB_JOB_FAILED, err.msg[0] ? err.msg : strerror(-rc));
		goto out;
	}
	if (ext[0]) { /* queued in an engine: the poller follows it from here */
		char why[160];
		snprintf(why, sizeof why, "queued in %s (%s job %s)", be->name, be->ops->type, ext);
		pthread_mutex_lock(&j->lock);
		rc = sched_exec(j->db, &err, "UPDATE job SET backend=?, ext_id=?, reason=? WHERE id=?", "ssss", be->name, ext,
				why, s->id);
		pthread_mutex_unlock(&j->lock);
		jb_log(JB_LOG_INFO, "job %s: %s", s->id, why);
		if (rc < 0 || cancelled(j, s->id)) { /* unrecorded, it could never be followed; or cancelled meanwhile */
			if (rc < 0)
				jb_log(JB_LOG_ERROR, "job %s: %s; cancelled in %s", s->id, err.msg, be->name);
			be->ops->cancel(be, ext, &err);
		}
	}
out:
	jb_job_spec_free(&s->spec);
	free(s);
	pthread_mutex_lock(&j->lock);
	j->starting--;
	pthread_cond_broadcast(&j->idle);
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

/* s's start thread, detached; j->starting counted it already.  When it
 * cannot be made, the job fails. */
static void start_thread(struct jb_jobs *j, struct start *s)
{
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, start_job, s) != 0) {
		pthread_mutex_lock(&j->lock);
		j->starting--;
		pthread_mutex_unlock(&j->lock);
		jobs_set_state(j, s->id, JB_JOB_FAILED, "cannot start a thread");
		jb_job_spec_free(&s->spec);
		free(s);
	}
	pthread_attr_destroy(&at);
}

/* After a restart: the jobs that were waiting in line for a slot (nothing
 * of them prepared) take their place again, in the order they came; any
 * other pending job failed (reattach). */
static void requeue(struct jb_jobs *j)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(j->db,
			       "SELECT id, spec FROM job WHERE state = 0 AND ext_id IS NULL AND reason LIKE 'queued:%' "
			       "ORDER BY created",
			       -1, &st, NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0), *text = (const char *)sqlite3_column_text(st, 1);
		struct start *s = calloc(1, sizeof *s);
		json_t *req = text ? json_loads(text, 0, NULL) : NULL;
		struct jb_error err = {0};
		int r = !s || !req ? jb_oom(&err) : j->starting >= JOBS_MAX_STARTING ? jb_err(&err, EAGAIN, "too many waiting")
									       : jobs_parse_spec(j, req, &s->spec, &err);
		json_decref(req);
		if (r < 0) {
			jobs_set_state(j, id, JB_JOB_FAILED, err.msg);
			if (s)
				jb_job_spec_free(&s->spec);
			free(s);
			continue;
		}
		s->j = j;
		snprintf(s->id, sizeof s->id, "%s", id);
		j->starting++;
		jb_log(JB_LOG_INFO, "job %s: in line again for a slot", id);
		start_thread(j, s);
	}
	sqlite3_finalize(st);
}

int jb_jobs_submit(struct jb_jobs *j, json_t *req, const char *owner, char id[JB_JOB_ID_LEN + 1], struct jb_error *err)
{
	struct start *s = calloc(1, sizeof *s);
	if (!s)
		return jb_oom(err);
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
	if (j->starting >= JOBS_MAX_STARTING) {
		pthread_mutex_unlock(&j->lock);
		free(spec);
		jb_job_spec_free(&s->spec);
		free(s);
		return jb_err(err, EAGAIN, "%d jobs are waiting to start already: try again later", JOBS_MAX_STARTING);
	}
	r = spec ? sched_exec(j->db, err, "INSERT INTO job(id, state, spec, image, created, output, owner) VALUES(?,?,?,?,?,?,?)",
			      "sissdss", s->id, (int64_t)JB_JOB_PENDING, spec, s->spec.image, jb_wall(), clean, owner)
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
	start_thread(j, s);
	jb_log(JB_LOG_INFO, "job %s: submitted (%s)", id, json_string_value(json_object_get(req, "image")));
	return 0;
}

/* Each input of job must still have the digest it had (-ESTALE). */
static int inputs_unchanged(struct jb_jobs *j, const char *job, struct jb_error *err)
{
	struct jb_job_inputs in;
	int r = jb_catalog_inputs(j->cat, job, &in, err);
	for (size_t i = 0; r == 0 && i < in.n; i++) {
		const char *p = in.v[i].path, *d = in.v[i].digest;
		char now[64];
		struct jb_error e2 = {0};
		if (jobs_dataset_digest(j->cat, j->rootreal, p, now, &e2) < 0)
			r = e2.code == ENOENT ? jb_err(err, ESTALE, "input %s of job %s is gone: %s", p, job, e2.msg)
					      : jb_err(err, e2.code ? e2.code : EIO, "input %s of job %s: %s", p, job, e2.msg);
		else if (strcmp(now, d))
			r = jb_err(err, ESTALE, "input %s of job %s has changed (%s then, %s now)", p, job, d, now);
	}
	jb_job_inputs_free(&in);
	return r;
}

int jb_jobs_rerun(struct jb_jobs *j, const char *job, const char *owner, char id[JB_JOB_ID_LEN + 1],
		  struct jb_error *err)
{
	struct jb_job o;
	int r = jb_jobs_get(j, job, &o, err);
	if (r == -ENOENT)
		return jb_err(err, ENOENT, "no job %s", job);
	if (r < 0)
		return r;
	if (!o.digest || o.state == JB_JOB_PENDING || o.state == JB_JOB_RUNNING) {
		r = jb_err(err, EALREADY, "job %s %s", job, o.digest ? "has not ended" : "never ran: no image to pin");
		goto out;
	}
	/* the same inputs, the same request but for the image, pinned by the
	 * digest it ran with, and its own output directory */
	if (j->cat && (r = inputs_unchanged(j, job, err)) < 0)
		goto out;
	json_t *spec = json_loads(o.request, 0, NULL);
	if (!json_is_object(spec)) {
		json_decref(spec);
		r = jb_err(err, EPROTO, "job %s: its recorded request is not a JSON object", job);
		goto out;
	}
	struct jb_oci_ref ref;
	char pinned[700];
	if (jb_oci_ref_parse(o.image, &ref, NULL) == 0) {
		snprintf(ref.digest, sizeof ref.digest, "%s", o.digest);
		jb_oci_ref_name(&ref, pinned, sizeof pinned);
		json_object_set_new(spec, "image", json_string(pinned));
	}
	json_object_del(spec, "output");
	json_object_set_new(spec, "rerun_of", json_string(job));
	r = jb_jobs_submit(j, spec, owner, id, err);
	json_decref(spec);
out:
	jb_job_free(&o);
	return r;
}

int jb_jobs_kill(struct jb_jobs *j, const char *id, struct jb_error *err)
{
	struct jb_job o;
	int r = jb_jobs_get(j, id, &o, err);
	if (r == -ENOENT)
		return jb_err(err, ENOENT, "no job %s", id);
	if (r < 0)
		return r;
	struct jobs_backend *be = o.backend ? jobs_backend_find(j, o.backend) : NULL; /* an engine's */
	if (o.state == JB_JOB_PENDING || (o.state == JB_JOB_RUNNING && be)) {
		pthread_mutex_lock(&j->lock);
		r = sched_exec(j->db, err, "UPDATE job SET cancel=1 WHERE id=?", "s", id);
		pthread_mutex_unlock(&j->lock);
		/* handed to a backend already: it cancels it (the supervisor then
		 * writes its result), else the start thread sees the flag */
		if (r == 0 && be && o.backend_id && !be->error[0])
			r = be->ops->cancel(be, o.backend_id, err);
	} else if (o.state == JB_JOB_RUNNING) {
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
		r = jb_err(err, EALREADY, "job %s has ended (%s)", id, jb_job_state_name(o.state));
	}
	jb_job_free(&o);
	return r;
}

int jb_jobs_log_path(struct jb_jobs *j, const char *id, const char *stream, char *out, size_t n, struct jb_error *err)
{
	if (strcmp(stream, "stdout") && strcmp(stream, "stderr"))
		return jb_err(err, EINVAL, "stream is stdout or stderr");
	for (const char *p = id; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return -ENOENT;
	struct jb_job o;
	int r = jb_jobs_get(j, id, &o, err);
	if (r < 0)
		return r;
	jb_job_free(&o);
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
	bool queued[MAX_RUNNING];
	size_t n = 0;
	if (sqlite3_prepare_v2(j->db,
			       "SELECT id, state, coalesce(reason LIKE 'queued:%', 0) FROM job "
			       "WHERE state IN (0, 1) AND ext_id IS NULL",
			       -1, &st, NULL) != SQLITE_OK)
		return;
	while (n < MAX_RUNNING && sqlite3_step(st) == SQLITE_ROW) {
		snprintf(ids[n], sizeof ids[n], "%s", sqlite3_column_text(st, 0));
		queued[n] = sqlite3_column_int(st, 2) != 0;
		states[n++] = sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	for (size_t i = 0; i < n; i++) {
		char dir[4200], p[4300];
		jobs_dir(j, ids[i], dir, sizeof dir);
		if (states[i] == JB_JOB_PENDING) { /* (those in line are requeue's) */
			if (!queued[i])
				jobs_set_state(j, ids[i], JB_JOB_FAILED, "jumbod stopped before the job started");
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
			jobs_watch(j, ids[i], pid, false);
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
	if (j->nunrec)
		jb_log(JB_LOG_WARN, "jobs: %zu job end%s not recorded; read again at the next start", j->nunrec,
		       j->nunrec == 1 ? "" : "s");
	for (size_t i = 0; i < j->nunrec; i++)
		jobs_outputs_free(&j->unrec[i].outs);
	j->nunrec = 0;
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
	pthread_cond_destroy(&j->slot);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

int jb_jobs_open(const struct jb_config *c, const char *self_exe, struct jb_catalog *cat, struct jb_jobs **ret,
		 struct jb_error *err)
{
	struct jb_jobs *j = calloc(1, sizeof *j);
	if (!j)
		return jb_oom(err);
	j->c = c;
	j->cat = cat;
	j->wake = -1;
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->idle, NULL);
	pthread_cond_init(&j->slot, NULL);
	j->line_end = &j->line;
	j->max_jobs = c->max_jobs ? (unsigned)c->max_jobs : JB_DEFAULT_MAX_JOBS;
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
	if (!c->subuid_off) {
		j->id0 = c->subuid_start;
		j->ids = c->subuid_count;
	}
	char p[4200];
	snprintf(p, sizeof p, "%s/crun", c->state);
	if ((mkdir(j->jobdir, 0700) < 0 && errno != EEXIST) || (mkdir(p, 0700) < 0 && errno != EEXIST)) {
		r = jb_err(err, errno, "%s: %s", j->jobdir, strerror(errno));
		goto fail;
	}
	if ((r = jobs_pass_through(j, c->state, err)) < 0 || (r = jobs_pass_through(j, j->jobdir, err)) < 0)
		goto fail;
	if (j->ids && ((r = jobs_reach(j, c->state, false, err)) < 0 || (r = jobs_reach(j, j->rootreal, true, err)) < 0))
		goto fail;
	if ((r = jb_store_open(c->state, &j->db, err)) < 0)
		goto fail;
	if ((j->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		r = jb_err(err, errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	reattach(j);
	if ((r = jobs_backends_open(j, err)) < 0)
		goto fail;
	if (pthread_create(&j->watcher, NULL, watcher, j) != 0) {
		r = jb_err(err, EAGAIN, "jobs: cannot start the watcher");
		goto fail;
	}
	if (j->nbackends && pthread_create(&j->poller, NULL, jobs_poller, j) == 0)
		j->poller_started = true;
	jb_log(JB_LOG_INFO, "jobs: crun %s, cgroups %s, images in %s", j->crun, jb_cgroup_mode_name(j->cgroups),
	       j->images);
	requeue(j);
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
	/* the jobs in line for a slot stay pending (and leave the line) */
	j->closing = true;
	pthread_cond_broadcast(&j->slot);
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
