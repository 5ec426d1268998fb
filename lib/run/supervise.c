/* The job supervisor: one small process per job, started by jumbod (which
 * re-executes itself), in its own session so that it outlives the daemon.
 *
 *   lock DIR/supervisor.lock (held for its whole life: a restarted jumbod
 *   tells a live supervisor from a dead one by it, whatever became of pids)
 *   -> subreaper -> a private mount namespace (without /sys/fs/cgroup/unified
 *   on a hybrid host, where crun refuses to run) -> the overlay root
 *   -> a pipe for each of the job's streams, copied into DIR/stdout and
 *   DIR/stderr up to [site] max_job_log -> crun create, crun start -> wait
 *   for the container's init, which is reparented to us, for its real exit
 *   status -> the cgroup's OOM counter (before crun delete removes it) ->
 *   crun delete -> the streams copied to their end -> DIR/result.json.
 *
 * The overlay mount lives only in this process's mount namespace: when the
 * supervisor and the container are gone, so is the mount. */
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jumbo/run.h"

/* A stream of the job, from its pipe into DIR/stdout or DIR/stderr, up to
 * max bytes ([site] max_job_log): then a line says so and the rest is
 * read and dropped, so that the job never blocks on its output. */
struct log_copy {
	int r, w, file; /* the pipe's ends, the log (-1: none) */
	uint64_t max, kept, dropped;
	pthread_t t;
	bool running;
};

static void *log_copy_main(void *arg)
{
	struct log_copy *l = arg;
	static __thread char buf[64 * 1024];
	for (;;) {
		ssize_t n = read(l->r, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t keep = l->kept >= l->max ? 0 : (size_t)(l->max - l->kept < (uint64_t)n ? l->max - l->kept : (uint64_t)n);
		if (keep && jb_write_full(l->file, buf, keep) < 0)
			keep = 0; /* the state directory is full: what cannot be kept is dropped */
		l->kept += keep;
		l->dropped += (uint64_t)n - keep;
		if (keep && l->kept >= l->max) {
			char note[160];
			int m = snprintf(note, sizeof note,
					 "\n[jumbo: this log stops at %llu bytes ([site] max_job_log); the rest is dropped]\n",
					 (unsigned long long)l->max);
			(void)!jb_write_full(l->file, note, (size_t)m);
		}
	}
	return NULL;
}

struct sup {
	const char *dir;
	const char *id, *crun, *crun_root;
	enum jb_cgroup_mode cgroups;
	double timeout;
	json_t *cfg;
	sigset_t mask;
	struct jb_job_result res;
	struct jb_error err; /* why the job could not run: res.error once written */
	struct log_copy logs[2]; /* the job's stdout and stderr, bounded */
};

static void path(const struct sup *s, const char *name, char *out, size_t n) { snprintf(out, n, "%s/%s", s->dir, name); }

/* Run crun with args; its stdout/stderr go to the job's files when
 * to_job, else to DIR/crun.log.  Returns the child's pid (not waited). */
static pid_t crun(struct sup *s, bool to_job, const char *const *args)
{
	const char *argv[16];
	int n = 0;
	argv[n++] = s->crun;
	argv[n++] = "--root";
	argv[n++] = s->crun_root;
	for (const char *const *a = args; *a && n < 15; a++)
		argv[n++] = *a;
	argv[n] = NULL;
	char out[4200], errp[4200];
	path(s, to_job ? "stdout" : "crun.log", out, sizeof out);
	path(s, to_job ? "stderr" : "crun.log", errp, sizeof errp);
	pid_t pid = fork();
	if (pid == 0) {
		sigprocmask(SIG_UNBLOCK, &s->mask, NULL);
		int in = open("/dev/null", O_RDONLY);
		int o = to_job ? s->logs[0].w : open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
		int e = to_job ? s->logs[1].w : open(errp, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (in < 0 || o < 0 || e < 0)
			_exit(127);
		dup2(in, 0);
		dup2(o, 1);
		dup2(e, 2);
		execvp(argv[0], (char **)argv);
		dprintf(2, "jumbo: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

static int wait_for(pid_t pid)
{
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return st;
}

static int crun_wait(struct sup *s, const char *const *args)
{
	pid_t p = crun(s, false, args);
	if (p < 0)
		return -1;
	int st = wait_for(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The last line crun wrote about a failure, as the job's error. */
static int crun_failure(struct sup *s, const char *what)
{
	char p[4200], buf[4096] = "", *last = buf;
	path(s, "crun.log", p, sizeof p);
	FILE *f = fopen(p, "re");
	if (f) {
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		buf[n] = 0;
		fclose(f);
		while (n && buf[n - 1] == '\n')
			buf[--n] = 0;
		char *nl = strrchr(buf, '\n');
		last = nl ? nl + 1 : buf;
	}
	return jb_err(&s->err, EIO, "%s failed%s%.400s", what, *last ? ": " : "", last);
}

/* A user namespace whose ids 0..ids-1 are the host's id0..: the
 * descriptor that id-maps the layers as the job's user namespace (crun
 * makes its own, the same) sees them.  A child unshares it and waits on
 * a pipe while its maps are written. */
static int userns_of(struct sup *s, uint32_t id0, uint32_t ids)
{
	int ready[2], hold[2];
	if (pipe2(ready, O_CLOEXEC) < 0)
		return jb_err(&s->err, errno, "pipe: %s", strerror(errno));
	if (pipe2(hold, O_CLOEXEC) < 0) {
		close(ready[0]);
		close(ready[1]);
		return jb_err(&s->err, errno, "pipe: %s", strerror(errno));
	}
	pid_t c = fork();
	if (c == 0) {
		char b;
		close(hold[1]);
		int ok = unshare(CLONE_NEWUSER) == 0;
		if (write(ready[1], ok ? "1" : "0", 1) == 1)
			while (read(hold[0], &b, 1) > 0)
				;
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	char b = 0, p[64], map[64];
	int fd = -1, e = EAGAIN;
	if (c > 0 && read(ready[0], &b, 1) == 1 && b == '1') {
		int n = snprintf(map, sizeof map, "0 %u %u\n", id0, ids);
		static const char *const files[] = {"uid_map", "gid_map"};
		e = 0;
		for (size_t i = 0; i < 2 && !e; i++) {
			snprintf(p, sizeof p, "/proc/%d/%s", (int)c, files[i]);
			int m = open(p, O_WRONLY | O_CLOEXEC);
			if (m < 0 || write(m, map, (size_t)n) != n)
				e = errno ? errno : EIO;
			if (m >= 0)
				close(m);
		}
		snprintf(p, sizeof p, "/proc/%d/ns/user", (int)c);
		if (!e && (fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
			e = errno;
	} else if (c > 0) {
		e = EPERM;
	} else {
		e = errno;
	}
	close(ready[0]);
	close(hold[1]);
	if (c > 0)
		waitpid(c, NULL, 0);
	return fd >= 0 ? fd : jb_err(&s->err, e, "a user namespace for ids %u-%u: %s", id0, id0 + ids - 1, strerror(e));
}

/* DIR/l/I: layer I mounted again, its ids shifted by id0 (an id-mapped
 * mount: the files stay as they are on disk) */
static int idmap_layer(struct sup *s, int userns, size_t i, const char *layer)
{
	char dst[4300];
	snprintf(dst, sizeof dst, "%s/l/%zu", s->dir, i);
	if (mkdir(dst, 0700) < 0 && errno != EEXIST)
		return jb_err(&s->err, errno, "%s: %s", dst, strerror(errno));
	int t = (int)syscall(SYS_open_tree, AT_FDCWD, layer, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	struct mount_attr a = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns};
	int r = t < 0 ? -1 : (int)syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH, &a, sizeof a);
	if (r == 0)
		r = (int)syscall(SYS_move_mount, t, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH);
	int e = errno;
	if (t >= 0)
		close(t);
	if (r < 0)
		return jb_err(&s->err, e, "the layer %s, id-mapped for the job's user namespace: %s%s", layer,
			      strerror(e),
			      e == EINVAL ? " (its file system may not take id-mapped mounts: see [site] subuid)" : "");
	return 0;
}

/* The overlay root: lower directories top first.  They usually share one
 * parent (the store's layers/), and then they are named relative to it so
 * that many layers fit in the one page of mount options.  With a user
 * namespace they are id-mapped mounts of the layers, DIR/l/0.., named
 * relative to DIR. */
static int mount_root(struct sup *s)
{
	json_t *lower = json_object_get(s->cfg, "lower");
	size_t n = json_array_size(lower);
	if (!n)
		return jb_err(&s->err, EINVAL, "the image has no layers");
	uint32_t id0 = (uint32_t)json_integer_value(json_object_get(s->cfg, "id0"));
	uint32_t ids = (uint32_t)json_integer_value(json_object_get(s->cfg, "ids"));
	if (ids) {
		char l[4200];
		path(s, "l", l, sizeof l);
		int u = mkdir(l, 0700) < 0 && errno != EEXIST ? jb_err(&s->err, errno, "%s: %s", l, strerror(errno))
							       : userns_of(s, id0, ids);
		for (size_t i = 0; u >= 0 && i < n; i++) {
			const char *layer = json_string_value(json_array_get(lower, i));
			if (!layer || idmap_layer(s, u, i, layer) < 0) {
				close(u);
				return layer ? -s->err.code : jb_err(&s->err, EINVAL, "supervise.json: a layer is not a path");
			}
		}
		if (u < 0)
			return u;
		close(u);
	}
	const char *first = json_string_value(json_array_get(lower, 0));
	const char *slash = first ? strrchr(first, '/') : NULL;
	size_t plen = slash ? (size_t)(slash - first) : 0;
	bool common = plen > 0 && !ids;
	for (size_t i = 0; common && i < n; i++) {
		const char *l = json_string_value(json_array_get(lower, i));
		common = l && strlen(l) > plen && !strncmp(l, first, plen) && l[plen] == '/' && !strchr(l + plen + 1, '/');
	}
	/* the layers are in use as long as this process lives: image prune
	 * leaves a layer alone while anyone holds its record shared */
	for (size_t i = 0; i < n; i++) {
		char rec[4200];
		snprintf(rec, sizeof rec, "%s.diff_id", json_string_value(json_array_get(lower, i)));
		int fd = open(rec, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && flock(fd, LOCK_SH) < 0) {
			close(fd);
			fd = -1;
		}
		(void)fd; /* kept open, and locked, until the supervisor exits */
	}
	char opts[4096], merged[4200];
	size_t o = (size_t)snprintf(opts, sizeof opts, "lowerdir=");
	for (size_t i = 0; i < n && o < sizeof opts; i++) {
		const char *l = json_string_value(json_array_get(lower, i));
		if (ids)
			o += (size_t)snprintf(opts + o, sizeof opts - o, "%sl/%zu", i ? ":" : "", i);
		else
			o += (size_t)snprintf(opts + o, sizeof opts - o, "%s%s", i ? ":" : "", common ? l + plen + 1 : l);
	}
	if (o < sizeof opts)
		o += (size_t)snprintf(opts + o, sizeof opts - o, ",upperdir=%s/upper,workdir=%s/work", s->dir, s->dir);
	if (o >= sizeof opts)
		return jb_err(&s->err, E2BIG, "%zu layers are more than one overlay mount can name", n);
	char cwd[4200] = "";
	if (common || ids) {
		char parent[4200];
		snprintf(parent, sizeof parent, "%.*s", ids ? (int)strlen(s->dir) : (int)plen, ids ? s->dir : first);
		if (!getcwd(cwd, sizeof cwd) || chdir(parent) < 0)
			return jb_err(&s->err, errno, "%s: %s", parent, strerror(errno));
	}
	path(s, "merged", merged, sizeof merged);
	int r = mount("overlay", merged, "overlay", 0, opts);
	int e = errno;
	if ((common || ids) && chdir(cwd) < 0 && r == 0) {
		r = -1;
		e = errno;
	}
	return r < 0 ? jb_err(&s->err, e, "the overlay root: %s", strerror(e)) : 0;
}

/* The cgroup's own account of the job: was anything OOM-killed, and the
 * most memory it held.  Read after the container ends, before crun delete. */
static void read_cgroup(struct sup *s)
{
	char p[512], line[256];
	bool v2 = s->cgroups == JB_CGROUP_V2;
	snprintf(p, sizeof p, v2 ? "/sys/fs/cgroup/jumbo/%s/memory.events" : "/sys/fs/cgroup/memory/jumbo/%s/memory.oom_control",
		 s->id);
	FILE *f = fopen(p, "re");
	while (f && fgets(line, sizeof line, f)) {
		unsigned long long k;
		if (sscanf(line, "oom_kill %llu", &k) == 1 && k > 0)
			s->res.oom = true;
	}
	if (f)
		fclose(f);
	snprintf(p, sizeof p, v2 ? "/sys/fs/cgroup/jumbo/%s/memory.peak" : "/sys/fs/cgroup/memory/jumbo/%s/memory.max_usage_in_bytes",
		 s->id);
	if ((f = fopen(p, "re"))) {
		unsigned long long v;
		if (fscanf(f, "%llu", &v) == 1)
			s->res.max_memory = v;
		fclose(f);
	}
}

/* DIR/result.json, synced, then renamed into place: jumbod reads the job's
 * end from it.  Failing that, the supervisor says so on stderr (jumbod's
 * log) and the job will be found lost. */
static void write_result(struct sup *s)
{
	snprintf(s->res.error, sizeof s->res.error, "%s", s->err.msg);
	json_t *j = json_pack("{s:i, s:i, s:b, s:b, s:b, s:I, s:f, s:f, s:s}", "exit_code", s->res.exit_code, "signal",
			      s->res.signal, "oom", s->res.oom, "timed_out", s->res.timed_out, "cancelled",
			      s->res.cancelled, "max_memory", (json_int_t)s->res.max_memory, "started", s->res.started,
			      "finished", s->res.finished, "error", s->res.error);
	char p[4200], tmp[4300];
	path(s, "result.json", p, sizeof p);
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	int fd = -1;
	bool ok = j && (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)) >= 0 &&
		  json_dumpfd(j, fd, JSON_COMPACT) == 0 && fsync(fd) == 0 && rename(tmp, p) == 0;
	if (!ok)
		dprintf(2, "jumbod --supervise: %s: %s\n", p, j ? strerror(errno) : "out of memory");
	if (fd >= 0)
		close(fd);
	json_decref(j);
}

/* The job directory's lock, pid and supervise.json; false when another
 * supervisor holds the job. */
static bool sup_load(struct sup *s)
{
	char p[4200];
	path(s, "supervisor.lock", p, sizeof p);
	int lock = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0)
		return false; /* (kept open, and locked, until the supervisor exits) */
	path(s, "supervisor.pid", p, sizeof p);
	int pfd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	FILE *pf = pfd >= 0 ? fdopen(pfd, "we") : NULL;
	if (!pf && pfd >= 0)
		close(pfd);
	if (pf) {
		fprintf(pf, "%d\n", (int)getpid());
		fclose(pf);
	}
	path(s, "supervise.json", p, sizeof p);
	s->cfg = json_load_file(p, 0, NULL);
	s->id = json_string_value(json_object_get(s->cfg, "id"));
	s->crun = json_string_value(json_object_get(s->cfg, "crun"));
	s->crun_root = json_string_value(json_object_get(s->cfg, "crun_root"));
	s->cgroups = (enum jb_cgroup_mode)json_integer_value(json_object_get(s->cfg, "cgroups"));
	s->timeout = json_number_value(json_object_get(s->cfg, "timeout"));
	return true;
}

/* A mount namespace of its own, holding the overlay root. */
static int sup_root(struct sup *s)
{
	if (!s->id || !s->crun || !s->crun_root)
		return jb_err(&s->err, EINVAL, "%s: not a job directory", s->dir);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return jb_err(&s->err, errno, "a private mount namespace: %s", strerror(errno));
	/* crun refuses a hybrid host; without the v2 mount it sees plain v1 */
	if (s->cgroups == JB_CGROUP_HYBRID && umount2("/sys/fs/cgroup/unified", MNT_DETACH) < 0)
		return jb_err(&s->err, errno, "hiding /sys/fs/cgroup/unified: %s", strerror(errno));
	return mount_root(s);
}

/* crun create, then crun start: the container's init pid. */
/* The job's streams: a pipe each, its copier started; the write ends are
 * the container's (closed here once crun create has passed them on). */
static int logs_open(struct sup *s)
{
	static const char *const names[] = {"stdout", "stderr"};
	uint64_t max = (uint64_t)json_integer_value(json_object_get(s->cfg, "log_max"));
	for (int i = 0; i < 2; i++) {
		struct log_copy *l = &s->logs[i];
		char p[4200];
		int fds[2];
		path(s, names[i], p, sizeof p);
		l->max = max ? max : UINT64_MAX;
		if (pipe2(fds, O_CLOEXEC) < 0)
			return jb_err(&s->err, errno, "a pipe for the job's %s: %s", names[i], strerror(errno));
		l->r = fds[0];
		l->w = fds[1];
		if ((l->file = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
			return jb_err(&s->err, errno, "%s: %s", p, strerror(errno));
		if (pthread_create(&l->t, NULL, log_copy_main, l) != 0)
			return jb_err(&s->err, EAGAIN, "a thread for the job's %s", names[i]);
		l->running = true;
	}
	return 0;
}

/* The copiers' end: every writer gone (the container's processes), or 5 s. */
static void logs_close(struct sup *s)
{
	for (int i = 0; i < 2; i++) {
		struct log_copy *l = &s->logs[i];
		if (l->w >= 0)
			close(l->w);
		l->w = -1;
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 5;
		if (l->running && pthread_timedjoin_np(l->t, NULL, &until) == 0)
			l->running = false;
	}
}

static int sup_start(struct sup *s, pid_t *cpid)
{
	char pidfile[4200];
	path(s, "container.pid", pidfile, sizeof pidfile);
	const char *create[] = {"create", "--bundle", s->dir, "--pid-file", pidfile, s->id, NULL};
	if (logs_open(s) < 0)
		return -s->err.code;
	pid_t c = crun(s, true, create);
	int st = c > 0 ? wait_for(c) : -1;
	for (int i = 0; i < 2; i++) { /* the container has them now */
		close(s->logs[i].w);
		s->logs[i].w = -1;
	}
	if (st != 0)
		return crun_failure(s, "crun create");
	FILE *f = fopen(pidfile, "re");
	int ok = f && fscanf(f, "%d", cpid) == 1 && *cpid > 0;
	if (f)
		fclose(f);
	if (!ok)
		return jb_err(&s->err, EIO, "crun create wrote no container pid");
	const char *start[] = {"start", s->id, NULL};
	if (crun_wait(s, start) != 0)
		return crun_failure(s, "crun start");
	s->res.started = jb_wall();
	return 0;
}

static void kill_job(struct sup *s)
{
	const char *args[] = {"kill", s->id, "KILL", NULL};
	crun_wait(s, args);
}

/* Until the container's init ends: its timeout kept, SIGTERM (cancel)
 * taken, orphans reaped; its exit status. */
static void sup_wait(struct sup *s, pid_t cpid)
{
	double deadline = s->timeout > 0 ? s->res.started + s->timeout : 0;
	for (;;) {
		struct timespec ts = {.tv_sec = 1};
		if (deadline) {
			double left = deadline - jb_wall();
			if (left <= 0 && !s->res.timed_out && !s->res.cancelled) {
				s->res.timed_out = true;
				kill_job(s);
			}
			if (left > 0 && left < 1) {
				ts.tv_sec = 0;
				ts.tv_nsec = (long)(left * 1e9) + 1;
			}
		}
		siginfo_t si;
		int sig = sigtimedwait(&s->mask, &si, &ts);
		if ((sig == SIGTERM || sig == SIGINT) && !s->res.timed_out && !s->res.cancelled) {
			s->res.cancelled = true;
			kill_job(s);
		}
		/* reap: the container's init, and any orphan it left to us */
		int st;
		pid_t w;
		bool ended = false;
		while ((w = waitpid(-1, &st, WNOHANG)) > 0)
			if (w == cpid) {
				ended = true;
				s->res.signal = WIFEXITED(st) ? 0 : WTERMSIG(st);
				s->res.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + s->res.signal;
			}
		if (ended)
			return;
		if (w < 0 && errno == ECHILD) {
			jb_err(&s->err, ECHILD, "the container's process was lost");
			return;
		}
	}
}

int jb_run_supervise(const char *dir)
{
	struct sup s = {.dir = dir, .logs = {{.r = -1, .w = -1, .file = -1}, {.r = -1, .w = -1, .file = -1}}};
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (!sup_load(&s))
		return 1; /* another supervisor has this job */
	s.res.started = jb_wall();
	sigemptyset(&s.mask);
	sigaddset(&s.mask, SIGCHLD);
	sigaddset(&s.mask, SIGTERM);
	sigaddset(&s.mask, SIGINT);
	sigprocmask(SIG_BLOCK, &s.mask, NULL);
	/* once the root is there, crun delete cleans up whatever create left */
	bool created = sup_root(&s) == 0;
	pid_t cpid = 0;
	if (created && sup_start(&s, &cpid) == 0) {
		sup_wait(&s, cpid);
		read_cgroup(&s);
	}
	s.res.finished = jb_wall();
	if (created) { /* the streams are complete when the container is gone */
		const char *args[] = {"delete", "-f", s.id, NULL};
		crun_wait(&s, args);
	}
	logs_close(&s);
	write_result(&s);
	json_decref(s.cfg);
	return s.err.msg[0] ? 1 : 0;
}

int jb_job_result_read(const char *dir, struct jb_job_result *r, struct jb_error *err)
{
	memset(r, 0, sizeof *r);
	char p[4200];
	snprintf(p, sizeof p, "%s/result.json", dir);
	json_error_t je;
	json_t *j = json_load_file(p, 0, &je);
	if (!j)
		return access(p, F_OK) < 0 ? -ENOENT : jb_err(err, EINVAL, "%s: %s", p, je.text);
	r->exit_code = (int)json_integer_value(json_object_get(j, "exit_code"));
	r->signal = (int)json_integer_value(json_object_get(j, "signal"));
	r->oom = json_is_true(json_object_get(j, "oom"));
	r->timed_out = json_is_true(json_object_get(j, "timed_out"));
	r->cancelled = json_is_true(json_object_get(j, "cancelled"));
	r->max_memory = (uint64_t)json_integer_value(json_object_get(j, "max_memory"));
	r->started = json_number_value(json_object_get(j, "started"));
	r->finished = json_number_value(json_object_get(j, "finished"));
	const char *e = json_string_value(json_object_get(j, "error"));
	snprintf(r->error, sizeof r->error, "%s", e ? e : "");
	json_decref(j);
	return 0;
}
