/* Internal to lib/sched. */
#pragma once
#include "jumbo/http.h"
#include "jumbo/sched.h"
#include "jumbo/store.h"
#include "jumbo/xfer.h"

#include <pthread.h>
#include <sqlite3.h>

/* One statement with its parameters bound in order by types: "s" text (NULL
 * binds NULL), "i" int64_t, "d" double.  0, or a negative errno (ENOSPC for
 * a full disk) with SQLite's message in err; with err NULL (a thread that
 * has no caller to tell) the message is logged. */
int sched_exec(sqlite3 *db, struct jb_error *err, const char *sql, const char *types, ...);

/* Record, as job's inputs, every file of every dataset of spec (with its
 * digest: the catalog's, or computed now). */
int jobs_record_inputs(struct jb_catalog *cat, const char *root, const char *job, const struct jb_job_spec *spec,
		       struct jb_error *err);
/* Outputs that have their names in the data root, still pending in the
 * catalog: the job's end settles them in the transaction that records the
 * job's end (a crash before it: jb_catalog_reconcile at the next start). */
struct jobs_output {
	char *path;
	char digest[64];
};
struct jobs_outputs {
	struct jobs_output *v;
	size_t n, cap;
	bool store_failed; /* the site database refused a record (not the data root a file) */
};
void jobs_outputs_free(struct jobs_outputs *o);
/* Commit workspace/out/... to ROOT/out_rel/... as pending datasets of the
 * job, each listed in *ret (which the caller frees, also on failure: what
 * is listed has its name).  Files *ret lists already are skipped: a second
 * try after the site database refused one commits the rest. */
int jobs_commit_outputs(struct jb_catalog *cat, const char *root, const char *site, const char *job,
			const char *workspace, const char *out_rel, struct jobs_outputs *ret, struct jb_error *err);
/* The digest of the file at rel now: the catalog's while it describes the
 * file (size and time), else computed and recorded as found. */
int jobs_dataset_digest(struct jb_catalog *cat, const char *root, const char *rel, char digest[64],
			struct jb_error *err);

#define MAX_RUNNING 256
/* jobs submitted and not yet handed to their backend (waiting in line for
 * a slot, or being prepared): more are refused (EAGAIN, 503) */
#define JOBS_MAX_STARTING 1024

/* ---- backends: cluster engines a job can be handed to (backend.c) ----
 * jumbod prepares the job as for this host (image layers, bundle); the
 * backend runs "jumbod --supervise DIR" where the engine puts it and says
 * how that goes.  DIR, the data root and the image store must be visible
 * there (the backend's path maps say where). */
enum remote_state { R_PENDING, R_RUNNING, R_ENDED, R_UNKNOWN };
struct remote_status {
	enum remote_state st;
	char state[48];   /* the engine's own word (RUNNING, OUT_OF_MEMORY, TASK_FAILED...) */
	char reason[256]; /* its reason, when it gives one */
	char node[128];   /* where it runs */
	char address[64]; /* where its port is reached (a notebook), with port */
	int port;
	bool idle;        /* pending with nothing staged: after running, it ended */
	bool have_exit;   /* ended: the engine says how (no supervisor of jumbo's) */
	int exit_code;
	bool oom;
};
struct remote_job {
	const struct jb_config *c;
	const char *images;   /* the site's image store */
	const char *id;       /* jumbo's job id */
	const char *dir;      /* the job directory as the node sees it */
	const char *jumbod;   /* the jumbod program on the node */
	const struct jb_job_spec *spec;
};
struct jobs_backend;
struct backend_ops {
	const char *type;
	const char *const *keys; /* of its [backend NAME] sections, beside the common ones (NULL-terminated) */
	int (*open)(struct jobs_backend *b, struct jb_error *err);
	/* ext: the engine's id for the job, kept in the job's record ("" for
	 * none: this host's supervisor, which records its own start) */
	int (*submit)(struct jobs_backend *b, const struct remote_job *rj, char ext[64], struct jb_error *err);
	int (*status)(struct jobs_backend *b, const char *ext, struct remote_status *rs, struct jb_error *err);
	int (*cancel)(struct jobs_backend *b, const char *ext, struct jb_error *err);
	/* after the end: what the engine keeps of the job goes (may be NULL) */
	void (*cleanup)(struct jobs_backend *b, const char *ext);
	void (*close)(struct jobs_backend *b);
	bool supervised; /* the engine runs jumbo's supervisor (else its own containers: jumbod keeps the timeout) */
	bool networked;  /* the engine gives the job its network (no veth of jumbod's) */
};
struct path_map {
	char *from, *to; /* a path of this host's below from is to... on the nodes */
};
struct jobs_backend {
	struct jb_jobs *j;
	const struct backend_ops *ops;    /* of its type, always set */
	const struct jb_backend_conf *conf; /* NULL for this host's own (j->local) */
	const char *name;                 /* conf's, or "local" */
	char *jumbod;              /* jumbod on the nodes (key jumbod; default this one) */
	struct path_map maps[3];   /* state, data, images */
	size_t nmaps;
	char error[512];           /* why it could not be opened: then it takes no job ("" when up) */
	void *priv;
};
extern const struct backend_ops jobs_local_ops;
extern const struct backend_ops jobs_null_ops;
extern const struct backend_ops jobs_slurm_ops;
extern const struct backend_ops jobs_marathon_ops;
/* The backends of the configuration, opened (one that fails keeps its error). */
int jobs_backends_open(struct jb_jobs *j, struct jb_error *err);
void jobs_backends_close(struct jb_jobs *j);
/* The backend called name ("local" or NULL: this host's), or NULL. */
struct jobs_backend *jobs_backend_find(struct jb_jobs *j, const char *name);
/* path as the nodes of b see it */
void jobs_backend_map(const struct jobs_backend *b, const char *path, char *out, size_t n);


/* A job's end the site database did not take (full, or locked too long):
 * kept, and written again every second until it is (or, should jumbod
 * stop first, read again from the supervisor's result at the next start). */
struct unrecorded {
	char id[JB_JOB_ID_LEN + 1];
	enum jb_job_state s;
	struct jb_job_result r;
	char reason[700];
	struct jobs_outputs outs; /* committed: settled with the end */
	bool commit;              /* its outputs are still to be committed (all or some) */
	bool state_only;          /* a state and reason alone (jobs_set_state's) */
};

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
	uint32_t id0, ids; /* the jobs' user namespace ([site] subuid); ids 0: none */
	sqlite3 *db;
	pthread_mutex_t lock;
	struct watched w[MAX_RUNNING];
	size_t nw;
	int wake; /* eventfd: the watch list changed, or stop */
	bool stop;
	pthread_t watcher;
	unsigned starting; /* start threads in flight */
	/* [site] max_jobs: this host's jobs running at once (watched, or
	 * admitted and starting); the others wait in line, first come first
	 * served, their start threads on slot */
	unsigned max_jobs, admitted;
	struct start *line, **line_end;
	pthread_cond_t slot;
	bool closing;
	struct jobs_backend local; /* this host: jumbo's supervisor, forked here */
	struct jobs_backend *backends;
	size_t nbackends;
	struct unrecorded unrec[MAX_RUNNING]; /* under lock */
	size_t nunrec;
	pthread_t poller; /* asks the backends about their jobs */
	bool poller_started;
	pthread_cond_t idle;
};

/* jobs.c: the end of a job whose supervisor is gone, from its result; remote:
 * it ran under a backend, which ended it (or lost it) as it says.  The
 * job's cancel flag: 0, 1 cancelled, 2 over its timeout (kept by jumbod for
 * engines without its supervisor). */
void jobs_finish(struct jb_jobs *j, const char *id, const struct remote_status *remote);
/* ids.c: PATH and the directories above it (and PATH itself when self)
 * let the jobs' root (host uid and gid id0) pass, or an error naming the
 * first that does not. */
int jobs_reach(const struct jb_jobs *j, const char *path, bool self, struct jb_error *err);
/* PATH on the way to jobs' files: the jobs' root (group id0) may pass
 * through it, nobody else (0710); without a user namespace, 0700 */
int jobs_pass_through(const struct jb_jobs *j, const char *path, struct jb_error *err);
/* The owners of DIR's tree (not following links nor crossing mounts):
 * ids from0..from0+n-1 become to0..; others stay. */
int jobs_shift_ids(const char *dir, uint32_t from0, uint32_t to0, uint32_t n, struct jb_error *err);

/* table.c: a job's state (and reason: NULL keeps it), and a job's end:
 * its row and its outputs settled in one transaction (not recorded, it is
 * read again at the next start). */
void jobs_set_state(struct jb_jobs *j, const char *id, enum jb_job_state s, const char *reason);
/* (jobs_set_state's one write; and, when it failed, the state kept for the
 * watcher to write again every second, in jobs.c) */
int jobs_write_state(struct jb_jobs *j, const char *id, enum jb_job_state s, const char *reason);
void jobs_keep_state(struct jb_jobs *j, const char *id, enum jb_job_state s, const char *reason);
int jobs_record_end(struct jb_jobs *j, const char *id, enum jb_job_state s, const struct jb_job_result *r,
		    const char *reason, const struct jobs_outputs *outs);
/* jobs.c: a job's directory, STATE/jobs/ID */
void jobs_dir(const struct jb_jobs *j, const char *id, char *out, size_t n);
/* end.c: the ends the database did not take, written again (the watcher
 * calls it every second) */
void jobs_retry_ends(struct jb_jobs *j);
/* jobs.c: watch the supervisor pid of job id (child: ours to reap) */
void jobs_watch(struct jb_jobs *j, const char *id, pid_t pid, bool child);
int jobs_cancel_flag(struct jb_jobs *j, const char *id);
/* remote.c: the thread that asks the backends about their jobs */
void *jobs_poller(void *arg);

/* spec.c: a request into a spec, its datasets checked (and, for a peer's,
 * fetched when the job starts) */
int jobs_parse_spec(struct jb_jobs *j, json_t *req, struct jb_job_spec *sp, struct jb_error *err);
int jobs_data_source(struct jb_jobs *j, const char *path, char **ret, struct jb_error *err);
int jobs_fetch(struct jb_jobs *j, const char *id, struct jb_mount_ro *m, struct jb_error *err);
/* netns.c: the veth network of a job */
int jobs_net_setup(struct jb_jobs *j, const char *id, struct jb_job_spec *sp, struct jb_error *err);
void jobs_net_teardown(const char *id);
