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

#define MAX_RUNNING 256

enum state { PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, OOM, LOST, NSTATES };
static const char *const state_names[NSTATES + 1] = {"pending", "running", "completed", "failed",
						     "cancelled", "timeout", "oom", "lost", NULL};

const char *const *jb_job_states(void) { return state_names; }

struct watched {
	char id[JB_JOB_ID_LEN + 1];
	pid_t pid;
	int pidfd;
	bool child; /* ours to reap (not after a restart) */
};

struct jb_jobs {
	const struct jb_config *c;
	struct jb_catalog *cat; /* may be NULL: no inputs or outputs recorded */
	char *self_exe, *crun, *state, *jobdir, *images, *rootreal;
	enum jb_cgroup_mode cgroups;
	sqlite3 *db;
	pthread_mutex_t lock;
	struct watched w[MAX_RUNNING];
	size_t nw;
	int wake; /* eventfd: the watch list changed, or stop */
	bool stop;
	pthread_t watcher;
	unsigned starting; /* start threads in flight */
	pthread_cond_t idle;
};

static double wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void job_dir(const struct jb_jobs *j, const char *id, char *out, size_t n) { snprintf(out, n, "%s/%s", j->jobdir, id); }

/* ---- the table ---- */

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS job("
	" id TEXT PRIMARY KEY, state INTEGER NOT NULL, spec TEXT NOT NULL, image TEXT NOT NULL,"
	" digest TEXT, created REAL NOT NULL, started REAL, finished REAL, exit_code INTEGER,"
	" reason TEXT, sup_pid INTEGER, max_memory INTEGER, cancel INTEGER NOT NULL DEFAULT 0, output TEXT,"
	" address TEXT);";

/* One statement with text and numbers bound in order: "s" text, "i" int64,
 * "d" double, "n" null. */
static int exec(struct jb_jobs *j, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK) {
		jb_log(JB_LOG_ERROR, "jobs: %s", sqlite3_errmsg(j->db));
		return -EIO;
	}
	va_list ap;
	va_start(ap, types);
	for (int i = 0; types[i]; i++) {
		switch (types[i]) {
		case 's': sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT); break;
		case 'i': sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t)); break;
		case 'd': sqlite3_bind_double(st, i + 1, va_arg(ap, double)); break;
		default: sqlite3_bind_null(st, i + 1); break;
		}
	}
	va_end(ap);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		jb_log(JB_LOG_ERROR, "jobs: %s", sqlite3_errmsg(j->db));
		return -EIO;
	}
	return 0;
}

static void set_state(struct jb_jobs *j, const char *id, enum state s, const char *reason)
{
	pthread_mutex_lock(&j->lock);
	exec(j, "UPDATE job SET state=?, reason=COALESCE(?, reason), finished=CASE WHEN ?>=2 THEN ? ELSE finished END "
		"WHERE id=?",
	     "isids", (int64_t)s, reason, (int64_t)s, wall(), id);
	pthread_mutex_unlock(&j->lock);
	if (s >= COMPLETED)
		jb_log(JB_LOG_INFO, "job %s: %s%s%s", id, state_names[s], reason ? ": " : "", reason ? reason : "");
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
	return o;
}

#define COLS                                                                                                      \
	"id, state, spec, image, digest, created, started, finished, exit_code, reason, sup_pid, max_memory, cancel, " \
	"output, address"

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

static void net_teardown(const char *id);

/* The supervisor is gone: its result decides the job's end. */
static void finish(struct jb_jobs *j, const char *id)
{
	char dir[4200];
	struct jb_job_result r;
	struct jb_error err = {0};
	job_dir(j, id, dir, sizeof dir);
	char nsp[128];
	snprintf(nsp, sizeof nsp, "/var/run/netns/jb-%s", id);
	if (access(nsp, F_OK) == 0)
		net_teardown(id); /* its network goes with it */
	int rc = jb_job_result_read(dir, &r, &err);
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
	if (s == COMPLETED && j->cat) {
		/* what the job left in /work/out becomes datasets of the data root */
		json_t *job = jb_jobs_get(j, id);
		const char *out = json_string_value(json_object_get(job, "output"));
		char ws[4300];
		snprintf(ws, sizeof ws, "%s/workspace", dir);
		unsigned n = 0;
		struct jb_error oerr = {0};
		if (out && jobs_commit_outputs(j->cat, j->rootreal, j->c->name, id, ws, out, &n, &oerr) < 0) {
			s = FAILED;
			snprintf(reason, sizeof reason, "its outputs could not be committed: %s", oerr.msg);
		} else if (n) {
			jb_log(JB_LOG_INFO, "job %s: %u output%s committed under %s", id, n, n == 1 ? "" : "s", out);
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
	pthread_mutex_lock(&j->lock);
	exec(j, "UPDATE job SET state=?, exit_code=?, reason=?, started=COALESCE(started, ?), finished=?, max_memory=? "
		"WHERE id=?",
	     "iisddis", (int64_t)s, (int64_t)(r.error[0] ? -1 : r.exit_code), reason[0] ? reason : NULL, r.started,
	     r.finished, (int64_t)r.max_memory, id);
	pthread_mutex_unlock(&j->lock);
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
			finish(j, copy[i].id);
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

/* ---- a network of its own, joined to the host (veth) ----
 * The namespace /var/run/netns/jb-ID holds one end of a veth pair, eth0,
 * with 10.213.X.Y+2/30; the host's end, jbID, has +1.  No NAT and no
 * forwarding are set up: the host (a notebook's proxy) reaches the job,
 * the job reaches the host's address on the pair and nothing beyond. */

#define VETH_POOL 0x0ad50000u /* 10.213.0.0/16 */

static int run_ip(const char *const *argv)
{
	pid_t p = fork();
	if (p == 0) {
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0);
		dup2(nul, 1);
		execvp("ip", (char **)argv);
		_exit(127);
	}
	int st = 0;
	if (p < 0 || waitpid(p, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void net_teardown(const char *id)
{
	char ns[32];
	snprintf(ns, sizeof ns, "jb-%s", id);
	const char *del[] = {"ip", "netns", "delete", ns, NULL};
	run_ip(del); /* the veth pair goes with it */
}

static int net_setup(struct jb_jobs *j, const char *id, struct jb_job_spec *sp, struct jb_error *err)
{
	/* the lowest /30 no running job has */
	bool used[16384] = {false};
	sqlite3_stmt *st;
	pthread_mutex_lock(&j->lock);
	if (sqlite3_prepare_v2(j->db, "SELECT address FROM job WHERE state IN (0, 1) AND address IS NOT NULL", -1, &st,
			       NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			unsigned a, b, c, d;
			if (sscanf((const char *)sqlite3_column_text(st, 0), "%u.%u.%u.%u", &a, &b, &c, &d) == 4)
				used[((c << 8) | d) / 4 % 16384] = true;
		}
		sqlite3_finalize(st);
	}
	unsigned idx = 1;
	while (idx < 16384 && used[idx])
		idx++;
	uint32_t base = VETH_POOL + idx * 4;
	char host[24], addr[24], ns[32], hostdev[20], cidr[32], hcidr[32];
	snprintf(host, sizeof host, "10.213.%u.%u", (base >> 8) & 255, (base + 1) & 255);
	snprintf(addr, sizeof addr, "10.213.%u.%u", (base >> 8) & 255, (base + 2) & 255);
	snprintf(cidr, sizeof cidr, "%s/30", addr);
	snprintf(hcidr, sizeof hcidr, "%s/30", host);
	exec(j, "UPDATE job SET address=? WHERE id=?", "ss", addr, id);
	pthread_mutex_unlock(&j->lock);
	if (idx >= 16384)
		return jb_err(err, EADDRNOTAVAIL, "no address left for a job's network");
	snprintf(ns, sizeof ns, "jb-%s", id);
	snprintf(hostdev, sizeof hostdev, "jb%s", id);
	const char *const steps[][12] = {
		{"ip", "netns", "add", ns, NULL},
		{"ip", "link", "add", hostdev, "type", "veth", "peer", "name", "eth0", "netns", ns, NULL},
		{"ip", "addr", "add", hcidr, "dev", hostdev, NULL},
		{"ip", "link", "set", hostdev, "up", NULL},
		{"ip", "-n", ns, "addr", "add", cidr, "dev", "eth0", NULL},
		{"ip", "-n", ns, "link", "set", "eth0", "up", NULL},
		{"ip", "-n", ns, "link", "set", "lo", "up", NULL},
	};
	for (size_t i = 0; i < JB_ARRAY_SIZE(steps); i++)
		if (run_ip(steps[i]) < 0) {
			net_teardown(id);
			return jb_err(err, EIO, "the job's network: 'ip %s %s %s' failed (is iproute2 installed?)", steps[i][1],
				      steps[i][2], steps[i][3]);
		}
	snprintf(sp->netns, sizeof sp->netns, "/var/run/netns/%s", ns);
	snprintf(sp->address, sizeof sp->address, "%s", addr);
	jb_log(JB_LOG_INFO, "job %s: its network: %s, the host at %s", id, addr, host);
	return 0;
}

/* ---- starting ---- */

struct start {
	struct jb_jobs *j;
	char id[JB_JOB_ID_LEN + 1];
	struct jb_job_spec spec;
};

static bool cancelled(struct jb_jobs *j, const char *id)
{
	sqlite3_stmt *st;
	bool c = false;
	pthread_mutex_lock(&j->lock);
	if (sqlite3_prepare_v2(j->db, "SELECT cancel FROM job WHERE id=?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		c = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&j->lock);
	return c;
}

static int data_source(struct jb_jobs *j, const char *path, char **ret, struct jb_error *err);

/* A peer's dataset into the data root, then checked as any local one. */
static int fetch(struct jb_jobs *j, const char *id, struct jb_mount_ro *m, struct jb_error *err)
{
	struct jb_remote rm;
	struct jb_client *cl = NULL;
	struct jb_xfer_result res = {0};
	char dest[JB_PATH_MAX + 256], jd[4200];
	int r = jb_remote_parse(j->c, m->remote, &rm, err);
	if (r < 0)
		return r;
	/* into the directory that will hold it: ROOT/PEER/dirname(PATH)/ */
	snprintf(dest, sizeof dest, "%s/%s", j->rootreal, m->local);
	char *slash = strrchr(dest, '/');
	*slash = 0;
	int root = open(j->rootreal, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int dfd = root < 0 ? -errno : jb_mkdirs_beneath(root, dest + strlen(j->rootreal) + 1, 0755);
	if (root >= 0)
		close(root);
	if (dfd < 0) {
		jb_remote_free(&rm);
		return jb_err(err, -dfd, "data '%s': %s: %s", m->remote, dest, strerror(-dfd));
	}
	close(dfd);
	strcat(dest, "/");
	snprintf(jd, sizeof jd, "%s/fetch", j->state);
	struct jb_xfer_opts o;
	jb_xfer_opts_init(&o);
	o.recursive = true;
	jb_log(JB_LOG_INFO, "job %s: fetching %s into %s", id, m->remote, dest);
	r = jb_client_new(j->c, &cl, err);
	if (r == 0)
		r = jb_client_set_journal_dir(cl, jd);
	if (r == 0)
		r = jb_client_pull(cl, &rm, dest, &o, &res, err);
	if (r == 0 && res.files_ok != res.files)
		r = jb_err(err, EIO, "data '%s': %u of %u files arrived verified", m->remote, res.files_ok, res.files);
	if (r < 0 && err->msg[0] && !strstr(err->msg, m->remote))
		jb_err_prefix(err, "data '%s'", m->remote);
	jb_xfer_result_free(&res);
	jb_client_free(cl);
	jb_remote_free(&rm);
	if (r < 0)
		return r;
	return data_source(j, m->local, &m->source, err);
}

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
	int rc = jb_oci_store_open(j->images, &store, &err);
	if (rc == 0) {
		rc = jb_oci_image_open(store, s->spec.image, &img, &err);
		if (rc == -ENOENT && strchr(s->spec.image, '/')) {
			/* not here: from its registry, if it names one */
			struct jb_oci_ref ref;
			if (jb_oci_ref_parse(s->spec.image, &ref, NULL) == 0 && ref.host[0]) {
				/* credentials: [registry HOST], else the daemon's environment */
				const struct jb_registry_conf *rconf = jb_config_registry(j->c, ref.host);
				struct jb_registry_opts o = {.user = getenv("JUMBO_REGISTRY_USER"),
							     .password = getenv("JUMBO_REGISTRY_PASSWORD")};
				if (rconf) {
					o.user = rconf->user;
					o.password = rconf->password;
					o.ca_file = rconf->ca;
					o.insecure = rconf->insecure;
				}
				memset(&err, 0, sizeof err);
				jb_log(JB_LOG_INFO, "job %s: pulling %s", s->id, s->spec.image);
				rc = jb_oci_pull(store, s->spec.image, &o, &img, &err);
			}
		}
	}
	if (rc == 0)
		rc = jb_oci_image_layers(store, &img, &layers, &err);
	for (size_t i = 0; rc == 0 && i < s->spec.ndata; i++)
		if (s->spec.data[i].remote)
			rc = fetch(j, s->id, &s->spec.data[i], &err);
	if (rc == 0 && j->cat)
		rc = jobs_record_inputs(j->cat, j->rootreal, s->id, &s->spec, &err);
	if (rc == 0 && s->spec.veth)
		rc = net_setup(j, s->id, &s->spec, &err);
	if (rc == 0) {
		pthread_mutex_lock(&j->lock);
		exec(j, "UPDATE job SET digest=? WHERE id=?", "ss", img.digest, s->id);
		pthread_mutex_unlock(&j->lock);
		char croot[4200];
		snprintf(croot, sizeof croot, "%s/crun", j->state);
		struct jb_bundle_opts bo = {.crun = j->crun, .crun_root = croot, .cgroups = j->cgroups};
		rc = jb_bundle_make(dir, s->id, &s->spec, &img, layers, &bo, &err);
	}
	if (rc == 0 && cancelled(j, s->id)) {
		if (s->spec.veth)
			net_teardown(s->id);
		set_state(j, s->id, CANCELLED, "cancelled before it started");
		goto out;
	}
	if (rc < 0) {
		if (s->spec.veth)
			net_teardown(s->id);
		set_state(j, s->id, FAILED, err.msg[0] ? err.msg : strerror(-rc));
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
	exec(j, "UPDATE job SET state=?, sup_pid=?, started=? WHERE id=? AND state=?", "iidsi", (int64_t)RUNNING,
	     (int64_t)pid, wall(), s->id, (int64_t)PENDING);
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

/* ---- submission: everything checked before the job exists ---- */

static int str_array(json_t *a, const char *what, char ***out, bool need_eq, struct jb_error *err)
{
	*out = NULL;
	if (!a)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > 4096)
		return jb_err(err, EINVAL, "\"%s\" must be an array of strings", what);
	char **v = calloc(json_array_size(a) + 1, sizeof *v);
	if (!v)
		return -ENOMEM;
	size_t i;
	json_t *x;
	json_array_foreach (a, i, x) {
		const char *s = json_string_value(x);
		if (!s || strlen(s) > 65536 || (need_eq && (!strchr(s, '=') || s[0] == '='))) {
			jb_oci_strv_free(v);
			return jb_err(err, EINVAL, "\"%s\"[%zu] must be a string%s", what, i, need_eq ? " NAME=VALUE" : "");
		}
		if (!(v[i] = strdup(s))) {
			jb_oci_strv_free(v);
			return -ENOMEM;
		}
	}
	*out = v;
	return 0;
}

/* A dataset path under the data root: resolved beneath it (no "..", no
 * link out), made absolute for the bind mount. */
static int data_source(struct jb_jobs *j, const char *path, char **ret, struct jb_error *err)
{
	char *clean = NULL;
	int r = jb_path_clean(path, &clean, err);
	if (r < 0)
		return jb_err_prefix(err, "data '%s'", path);
	int root = open(j->c->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int fd = root < 0 ? -errno : jb_open_beneath(root, clean, O_PATH, 0);
	if (root >= 0)
		close(root);
	if (fd < 0) {
		r = jb_err(err, -fd == EXDEV || -fd == ELOOP ? EPERM : -fd, "data '%s': %s", path,
			   -fd == EXDEV || -fd == ELOOP ? "outside the data root" : strerror(-fd));
		free(clean);
		return r;
	}
	char proc[64], real[JB_PATH_MAX];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(proc, real, sizeof real - 1);
	close(fd);
	free(clean);
	if (n <= 0)
		return jb_err(err, EIO, "data '%s': cannot resolve it", path);
	real[n] = 0;
	size_t rl = strlen(j->rootreal);
	if (strncmp(real, j->rootreal, rl) || (real[rl] && real[rl] != '/' && rl > 1))
		return jb_err(err, EPERM, "data '%s': outside the data root", path);
	return (*ret = strdup(real)) ? 0 : -ENOMEM;
}

static bool valid_name(const char *s)
{
	if (!*s || strlen(s) > 64 || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("._-", *s)))
			return false;
	return true;
}

static int parse_spec(struct jb_jobs *j, json_t *req, struct jb_job_spec *sp, struct jb_error *err)
{
	memset(sp, 0, sizeof *sp);
	if (!json_is_object(req))
		return jb_err(err, EINVAL, "a job is a JSON object");
	const char *known[] = {"image", "args",    "env",     "data",   "cpus", "memory",  "pids",
			       "gpus",  "timeout", "network", "output", "rule", "rerun_of"};
	const char *key;
	json_t *v;
	json_object_foreach (req, key, v) {
		bool ok = false;
		for (size_t i = 0; i < JB_ARRAY_SIZE(known); i++)
			ok |= !strcmp(key, known[i]);
		if (!ok)
			return jb_err(err, EINVAL, "unknown field \"%s\"", key);
	}
	const char *image = json_string_value(json_object_get(req, "image"));
	if (!image)
		return jb_err(err, EINVAL, "\"image\" is missing");
	struct jb_oci_ref ref;
	int r = jb_oci_ref_parse(image, &ref, err);
	if (r < 0)
		return r;
	if (!(sp->image = strdup(image)))
		return -ENOMEM;
	if ((r = str_array(json_object_get(req, "args"), "args", &sp->args, false, err)) < 0 ||
	    (r = str_array(json_object_get(req, "env"), "env", &sp->env, true, err)) < 0)
		return r;
	json_t *data = json_object_get(req, "data");
	if (data && (!json_is_array(data) || json_array_size(data) > 64))
		return jb_err(err, EINVAL, "\"data\" must be an array of at most 64 paths");
	size_t i;
	json_t *d;
	if (data && !(sp->data = calloc(json_array_size(data), sizeof *sp->data)))
		return -ENOMEM;
	json_array_foreach (data, i, d) {
		const char *path = json_is_string(d) ? json_string_value(d) : json_string_value(json_object_get(d, "path"));
		const char *name = json_string_value(json_object_get(d, "name"));
		if (!path)
			return jb_err(err, EINVAL, "\"data\"[%zu] needs a path", i);
		char base[256];
		if (!name) {
			const char *b = path + strlen(path);
			while (b > path && b[-1] == '/')
				b--;
			const char *e = b;
			while (b > path && b[-1] != '/')
				b--;
			snprintf(base, sizeof base, "%.*s", (int)(e - b), b);
			name = base;
		}
		if (!valid_name(name))
			return jb_err(err, EINVAL, "data '%s': '%s' cannot name a directory under /data (give NAME=PATH)", path,
				      name);
		for (size_t k = 0; k < sp->ndata; k++)
			if (!strcmp(sp->data[k].name, name))
				return jb_err(err, EINVAL, "two datasets named '%s' under /data", name);
		if (!(sp->data[sp->ndata].name = strdup(name)))
			return -ENOMEM;
		struct jb_mount_ro *mr = &sp->data[sp->ndata++];
		struct jb_remote rm;
		int isremote = jb_remote_parse(j->c, path, &rm, err);
		if (isremote < 0)
			return isremote;
		if (isremote) {
			/* a dataset of a peer: fetched into the data root, under the
			 * peer's name, when the job starts */
			char *clean = NULL;
			if (!rm.peer) {
				jb_remote_free(&rm);
				return jb_err(err, EINVAL, "data '%s': fetch from a configured peer (PEER:PATH)", path);
			}
			r = jb_path_clean(rm.path, &clean, err);
			if (r == 0 && !*clean)
				r = jb_err(err, EINVAL, "data '%s': name a file or directory, not the peer's whole root", path);
			if (r == 0 && (asprintf(&mr->local, "%s/%s", rm.peer->name, clean) < 0 || !(mr->remote = strdup(path))))
				r = -ENOMEM;
			free(clean);
			jb_remote_free(&rm);
			if (r < 0)
				return r;
			continue;
		}
		if ((r = data_source(j, path, &mr->source, err)) < 0)
			return r;
	}
	json_t *x;
	if ((x = json_object_get(req, "cpus")) && (!json_is_number(x) || json_number_value(x) <= 0 ||
						   json_number_value(x) > 4096))
		return jb_err(err, EINVAL, "\"cpus\" must be a number above 0");
	sp->cpus = x ? json_number_value(x) : 0;
	if ((x = json_object_get(req, "memory"))) {
		uint64_t m = 0;
		if (json_is_integer(x) && json_integer_value(x) > 0)
			m = (uint64_t)json_integer_value(x);
		else if (!json_is_string(x) || jb_parse_size(json_string_value(x), &m) < 0)
			return jb_err(err, EINVAL, "\"memory\" must be a size such as 512M or 4G");
		if (m < (4u << 20))
			return jb_err(err, EINVAL, "\"memory\" must be at least 4M");
		sp->memory = m;
	}
	if ((x = json_object_get(req, "pids")) && (!json_is_integer(x) || json_integer_value(x) < 1))
		return jb_err(err, EINVAL, "\"pids\" must be a positive integer");
	sp->pids = x ? (uint64_t)json_integer_value(x) : 0;
	if ((x = json_object_get(req, "timeout")) && (!json_is_number(x) || json_number_value(x) <= 0))
		return jb_err(err, EINVAL, "\"timeout\" must be a number of seconds above 0");
	sp->timeout = x ? json_number_value(x) : 0;
	if ((x = json_object_get(req, "network"))) {
		const char *m = json_string_value(x);
		if (json_is_boolean(x))
			sp->network = json_is_true(x);
		else if (m && !strcmp(m, "host"))
			sp->network = true;
		else if (m && !strcmp(m, "veth"))
			sp->veth = true;
		else if (!m || strcmp(m, "none"))
			return jb_err(err, EINVAL, "\"network\" is \"none\", \"host\" or \"veth\"");
	}
	if ((x = json_object_get(req, "gpus")) && (!json_is_integer(x) || json_integer_value(x) < 0))
		return jb_err(err, EINVAL, "\"gpus\" must be a count");
	sp->gpus = x ? (unsigned)json_integer_value(x) : 0;
	if ((x = json_object_get(req, "output"))) {
		char *clean = NULL;
		if (!json_is_string(x) || jb_path_clean(json_string_value(x), &clean, NULL) < 0 || !*clean) {
			free(clean);
			return jb_err(err, EINVAL, "\"output\" must be a directory below the data root");
		}
		free(clean);
	}
	if ((x = json_object_get(req, "rule")) && !json_is_string(x))
		return jb_err(err, EINVAL, "\"rule\" must be a string");
	if (sp->gpus) {
		unsigned have = jb_gpu_count();
		if (have < sp->gpus)
			return jb_err(err, ENODEV, "the job asks for %u GPU%s and this site has %s", sp->gpus,
				      sp->gpus == 1 ? "" : "s",
				      have ? "fewer" : "none (no NVIDIA driver: /dev/nvidiactl is missing)");
	}
	return 0;
}

int jb_jobs_submit(struct jb_jobs *j, json_t *req, char id[JB_JOB_ID_LEN + 1], struct jb_error *err)
{
	struct start *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	int r = parse_spec(j, req, &s->spec, err);
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
	r = spec ? exec(j, "INSERT INTO job(id, state, spec, image, created, output) VALUES(?,?,?,?,?,?)", "sissds",
			s->id, (int64_t)PENDING, spec, s->spec.image, wall(), clean)
		 : -ENOMEM;
	free(clean);
	if (r == 0)
		j->starting++;
	pthread_mutex_unlock(&j->lock);
	free(spec);
	if (r < 0) {
		jb_job_spec_free(&s->spec);
		free(s);
		return jb_err(err, -r, "cannot record the job");
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
	if (!strcmp(st, "pending")) {
		pthread_mutex_lock(&j->lock);
		exec(j, "UPDATE job SET cancel=1 WHERE id=?", "s", id);
		pthread_mutex_unlock(&j->lock);
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
	if (sqlite3_prepare_v2(j->db, "SELECT id, state FROM job WHERE state IN (0, 1)", -1, &st, NULL) != SQLITE_OK)
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
			finish(j, ids[i]);
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
	snprintf(p, sizeof p, "%s/jobs.db", c->state);
	char *msg = NULL;
	if (sqlite3_open_v2(p, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
		    SQLITE_OK ||
	    sqlite3_exec(j->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		r = jb_err(err, EIO, "%s: %s", p, msg ? msg : sqlite3_errmsg(j->db));
		sqlite3_free(msg);
		goto fail;
	}
	sqlite3_busy_timeout(j->db, 5000);
	/* tables made by an earlier version gain the newer columns */
	sqlite3_exec(j->db, "ALTER TABLE job ADD COLUMN output TEXT", NULL, NULL, NULL);
	sqlite3_exec(j->db, "ALTER TABLE job ADD COLUMN address TEXT", NULL, NULL, NULL);
	if ((j->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		r = jb_err(err, errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	reattach(j);
	if (pthread_create(&j->watcher, NULL, watcher, j) != 0) {
		r = jb_err(err, EAGAIN, "jobs: cannot start the watcher");
		goto fail;
	}
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
	if (busy) {
		jb_log(JB_LOG_WARN, "jobs: jobs still starting; leaving their state to the next start");
		return;
	}
	for (size_t i = 0; i < j->nw; i++)
		if (j->w[i].pidfd >= 0)
			close(j->w[i].pidfd);
	jobs_free(j);
}
