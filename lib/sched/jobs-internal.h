/* Internal to lib/sched. */
#pragma once
#include "jumbo/sched.h"
#include "jumbo/store.h"
#include "jumbo/xfer.h"

#include <pthread.h>
#include <sqlite3.h>

/* One statement with its parameters bound in order by types: "s" text (NULL
 * binds NULL), "i" int64_t, "d" double.  0, or -EIO logged. */
int sched_exec(sqlite3 *db, const char *sql, const char *types, ...);

/* Record, as job's inputs, every file of every dataset of spec (with its
 * digest: the catalog's, or computed now). */
int jobs_record_inputs(struct jb_catalog *cat, const char *root, const char *job, const struct jb_job_spec *spec,
		       struct jb_error *err);
/* Commit workspace/out/... to ROOT/out_rel/... as datasets of the job;
 * *ret_n files. */
int jobs_commit_outputs(struct jb_catalog *cat, const char *root, const char *site, const char *job,
			const char *workspace, const char *out_rel, unsigned *ret_n, struct jb_error *err);
/* The digest of the file at rel now: the catalog's while it describes the
 * file (size and time), else computed and recorded as found. */
int jobs_dataset_digest(struct jb_catalog *cat, const char *root, const char *rel, char digest[64],
			struct jb_error *err);

#define MAX_RUNNING 256

enum state { PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, OOM, LOST, NSTATES };

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

/* spec.c: a request into a spec, its datasets checked (and, for a peer's,
 * fetched when the job starts) */
int jobs_parse_spec(struct jb_jobs *j, json_t *req, struct jb_job_spec *sp, struct jb_error *err);
int jobs_data_source(struct jb_jobs *j, const char *path, char **ret, struct jb_error *err);
int jobs_fetch(struct jb_jobs *j, const char *id, struct jb_mount_ro *m, struct jb_error *err);
/* netns.c: the veth network of a job */
int jobs_net_setup(struct jb_jobs *j, const char *id, struct jb_job_spec *sp, struct jb_error *err);
void jobs_net_teardown(const char *id);
