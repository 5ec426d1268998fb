/* jumbo sched: jobs.  A job is a command in a container from an image of
 * the site's store, with datasets of the data root mounted read-only under
 * /data and a workspace at /work.  Jobs are kept in the site database (STATE/site.db)
 * and each runs under its own supervisor (lib/run), so that they survive a
 * restart of jumbod: a restarted daemon re-attaches to the supervisors that
 * still live and reports the others' jobs as lost, with the reason.
 *
 * States, as Slurm names them: pending (the image is being fetched and the
 * bundle made), running, completed (exit status 0), failed (another exit
 * status, or it could not start: reason says why), cancelled, timeout, oom
 * (out of memory: exit 137), lost (its supervisor died with it). */
#pragma once
#include <jansson.h>

#include "jumbo/config.h"
#include "jumbo/run.h"
#include "jumbo/store.h"
#include "jumbo/xfer.h"

#define JB_JOB_ID_LEN 12

struct jb_jobs;
/* Open the job table of the site, re-attach to running jobs, start watching.
 * self_exe is the program that runs supervisors ("jumbod", given
 * --supervise DIR). */
JB_EXPORT int jb_jobs_open(const struct jb_config *c, const char *self_exe, struct jb_catalog *cat,
			   struct jb_jobs **ret, struct jb_error *err);
/* The [backend NAME] sections of c: each of a known type (local, slurm,
 * marathon, null), with the keys of its type; errors say FILE:LINE. */
JB_EXPORT int jb_backends_check(const struct jb_config *c, struct jb_error *err);
/* Stop watching; running jobs go on under their supervisors. */
JB_EXPORT void jb_jobs_close(struct jb_jobs *j);

/* Submit a job described in JSON:
 *   {"image": NAME, "args": [..], "env": [..], "data": [PATH | {"name": N, "path": P}],
 *    "cpus": 1.5, "memory": "2G" | bytes, "pids": N, "gpus": N, "timeout": seconds, "network": false,
 *    "output": DIR ("{job}" is the job's id; default results/{job}), "rule": NAME}
 * What a completed job leaves in /work/out is committed below the data root
 * at its output directory, as datasets whose source is the job.
 * Bad requests are refused here with a message (-EINVAL, -ENOENT for a path
 * or image that is not there, -ENODEV for GPUs the site does not have). */
/* owner: the name of the API token that asks (NULL: the site's own, a
 * landing rule's), recorded with the job. */
JB_EXPORT int jb_jobs_submit(struct jb_jobs *j, json_t *req, const char *owner, char id[JB_JOB_ID_LEN + 1],
			     struct jb_error *err);
enum jb_job_state {
	JB_JOB_PENDING,
	JB_JOB_RUNNING,
	JB_JOB_COMPLETED,
	JB_JOB_FAILED,
	JB_JOB_CANCELLED,
	JB_JOB_TIMEOUT,
	JB_JOB_OOM,
	JB_JOB_LOST,
	JB_JOB_NSTATES
};
/* A job as recorded.  request is its request as it was submitted (the JSON
 * document above, kept as text: a re-run and provenance show exactly what
 * was asked); the strings are NULL where there is none yet. */
struct jb_job {
	char id[JB_JOB_ID_LEN + 1];
	enum jb_job_state state;
	char *request;
	char *image;       /* as asked */
	char *digest;      /* the image's manifest digest, once it was found */
	double created, started, finished; /* Unix seconds; 0 not yet */
	bool has_exit;
	int exit_code;     /* -1: it never ran */
	char *reason;      /* why it is in its state */
	int64_t max_memory; /* bytes at its peak; -1 unknown */
	char *output;      /* where /work/out goes, below the data root */
	char *address;     /* a notebook's HOST:PORT */
	char *backend;     /* NULL: this host */
	char *backend_id;  /* the engine's id for it */
	char *node;
	int port;
	char *owner;       /* the token that made it; NULL: the site's own */
};
JB_EXPORT void jb_job_free(struct jb_job *job);
JB_EXPORT void jb_job_list_free(struct jb_job *v, size_t n);
/* A job: 0, -ENOENT when there is none, another negative errno with err set
 * when the site database fails.  All of them, newest first. */
JB_EXPORT int jb_jobs_get(struct jb_jobs *j, const char *id, struct jb_job *ret, struct jb_error *err);
JB_EXPORT int jb_jobs_list(struct jb_jobs *j, struct jb_job **ret, size_t *n, struct jb_error *err);
/* Cancel: a pending job does not start, a running one is killed. */
JB_EXPORT int jb_jobs_kill(struct jb_jobs *j, const char *id, struct jb_error *err);
/* The path of a job's stdout or stderr: -ENOENT for no such job, -EINVAL
 * for another stream. */
JB_EXPORT int jb_jobs_log_path(struct jb_jobs *j, const char *id, const char *stream, char *out, size_t n,
			       struct jb_error *err);
/* Counts by state, for /metrics. */
JB_EXPORT void jb_jobs_counts(struct jb_jobs *j, unsigned counts[JB_JOB_NSTATES]);
JB_EXPORT const char *jb_job_state_name(enum jb_job_state s);

/* A dataset landed at rel (below the data root): a job for each rule of c
 * whose glob matches.  Returns how many were submitted. */
JB_EXPORT int jb_jobs_land(struct jb_jobs *j, const struct jb_config *c, const char *rel);

/* Where the dataset at path comes from: the dataset, the job that wrote
 * it with that job's inputs, and the same for each input, back to the
 * transfers (or the files found in place) at its roots; 16 levels deep and
 * 4,096 datasets at most (beyond, a dataset is shown without its job).  An
 * input that is no longer in the catalog is a node that is not known: its
 * path and digest only.  -ENOENT (err set) when path is no dataset. */
struct jb_provenance {
	struct jb_dataset ds;
	bool known;
	bool has_job;
	struct jb_job job;
	struct jb_job_inputs inputs;
	struct jb_provenance *from; /* one per input */
	size_t nfrom;
};
JB_EXPORT int jb_provenance(struct jb_jobs *j, struct jb_catalog *cat, const char *path, struct jb_provenance *ret,
			    struct jb_error *err);
JB_EXPORT void jb_provenance_free(struct jb_provenance *p);
/* Run job again: the same command, environment, limits and datasets, the
 * image pinned by the digest it ran with; refused (-ESTALE) when an input
 * no longer has the digest it had. */
JB_EXPORT int jb_jobs_rerun(struct jb_jobs *j, const char *job, const char *owner, char id[JB_JOB_ID_LEN + 1],
			    struct jb_error *err);

/* The glue between transfers and jobs: jb_landing_commit is the transfer
 * service's commit hook (jb_server_on_commit, ud a struct jb_landing): each
 * file committed into the data root becomes a dataset in the catalog, and
 * the rules it matches start their jobs (jobs may be NULL). */
struct jb_landing {
	const struct jb_config *c;
	struct jb_catalog *cat;
	struct jb_jobs *jobs;
	char rootreal[4096];
};
JB_EXPORT void jb_landing_commit(void *ud, int phase, const struct jb_commit_file *files, size_t n,
				 const char *origin, const char *session);

/* Durable transfers (in the site database), run by jumbod for its clients:
 *   {"op": "send", "sources": [PATH, ...], "dest": "PEER:PATH"}
 *   {"op": "get", "source": "PEER:PATH", "dest": PATH}
 * with "streams", "rate" (bits/s) and "recursive" as jumbo send and get.
 * Paths are below the data root (relative, or absolute inside it).  States:
 * queued, running, retrying (the peer or the link is down: again after
 * backoff seconds (2 when 0), doubling, at most 5 minutes, 30 attempts),
 * done, failed (with the reason), cancelled.  Survives restarts: a transfer
 * that was running resumes from its verified blocks. */
struct jb_transfers;
JB_EXPORT int jb_transfers_open(const struct jb_config *c, double backoff, struct jb_transfers **ret,
				struct jb_error *err);
JB_EXPORT void jb_transfers_close(struct jb_transfers *t);
JB_EXPORT int jb_transfers_submit(struct jb_transfers *t, json_t *req, const char *owner, char id[JB_JOB_ID_LEN + 1],
				  struct jb_error *err);
enum jb_transfer_state {
	JB_XFER_QUEUED,
	JB_XFER_RUNNING,
	JB_XFER_RETRYING,
	JB_XFER_DONE,
	JB_XFER_FAILED,
	JB_XFER_CANCELLED,
	JB_XFER_NSTATES
};
enum jb_transfer_op { JB_XFER_SEND, JB_XFER_GET };
JB_EXPORT const char *jb_transfer_state_name(enum jb_transfer_state s);
/* A durable transfer as recorded: request as submitted (checked and made
 * canonical: JSON text), the figures of its last attempt once it ended
 * (-1 where there are none), and a running one's progress. */
struct jb_transfer {
	char id[JB_JOB_ID_LEN + 1];
	enum jb_transfer_op op;
	enum jb_transfer_state state;
	char *request;
	char *peer;
	char *error;        /* NULL, or why it is retrying, failed or cancelled */
	char *owner;        /* the token that made it; NULL: the site's own */
	int attempts;
	double created, started, finished, next_try; /* Unix seconds; 0 none */
	int64_t bytes_total, bytes_sent, files;      /* -1 none */
	double seconds, gbps;                        /* -1 none */
	bool active;        /* running now, with its progress: */
	uint64_t done_bytes, done_total;
	double done_seconds;
};
JB_EXPORT void jb_transfer_free(struct jb_transfer *x);
JB_EXPORT void jb_transfer_list_free(struct jb_transfer *v, size_t n);
/* 0, -ENOENT when there is none, another negative errno with err set when
 * the site database fails.  All of them, newest first. */
JB_EXPORT int jb_transfers_get(struct jb_transfers *t, const char *id, struct jb_transfer *ret, struct jb_error *err);
JB_EXPORT int jb_transfers_list(struct jb_transfers *t, struct jb_transfer **ret, size_t *n, struct jb_error *err);
JB_EXPORT int jb_transfers_cancel(struct jb_transfers *t, const char *id, struct jb_error *err);
/* Counts by state and the bytes the running ones have moved. */
JB_EXPORT void jb_transfers_counts(struct jb_transfers *t, unsigned counts[JB_XFER_NSTATES],
				   uint64_t *bytes_done_running);
