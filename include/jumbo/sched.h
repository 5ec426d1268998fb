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
JB_EXPORT int jb_jobs_submit(struct jb_jobs *j, json_t *req, char id[JB_JOB_ID_LEN + 1], struct jb_error *err);
/* A job as JSON (NULL when unknown), and all of them, newest first. */
JB_EXPORT json_t *jb_jobs_get(struct jb_jobs *j, const char *id);
JB_EXPORT json_t *jb_jobs_list(struct jb_jobs *j);
/* Cancel: a pending job does not start, a running one is killed. */
JB_EXPORT int jb_jobs_kill(struct jb_jobs *j, const char *id, struct jb_error *err);
/* The path of a job's stdout or stderr, or -ENOENT. */
JB_EXPORT int jb_jobs_log_path(struct jb_jobs *j, const char *id, const char *stream, char *out, size_t n);
/* Counts by state, for /metrics. */
JB_EXPORT void jb_jobs_counts(struct jb_jobs *j, unsigned counts[8]);
JB_EXPORT const char *const *jb_job_states(void);

/* A dataset landed at rel (below the data root): a job for each rule of c
 * whose glob matches.  Returns how many were submitted. */
JB_EXPORT int jb_jobs_land(struct jb_jobs *j, const struct jb_config *c, const char *rel);
/* The rules of c, as JSON. */
JB_EXPORT json_t *jb_rules_json(const struct jb_config *c);

/* Where the dataset at path comes from: {"dataset", "job" (with its
 * "inputs"), "from": [the same for each input]} back to the transfers (or
 * the files found in place) at its roots. */
JB_EXPORT json_t *jb_provenance(struct jb_jobs *j, struct jb_catalog *cat, const char *path, struct jb_error *err);
/* Run job again: the same command, environment, limits and datasets, the
 * image pinned by the digest it ran with; refused (-ESTALE) when an input
 * no longer has the digest it had. */
JB_EXPORT int jb_jobs_rerun(struct jb_jobs *j, const char *job, char id[JB_JOB_ID_LEN + 1], struct jb_error *err);

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
JB_EXPORT int jb_transfers_submit(struct jb_transfers *t, json_t *req, char id[JB_JOB_ID_LEN + 1],
				  struct jb_error *err);
JB_EXPORT json_t *jb_transfers_get(struct jb_transfers *t, const char *id);
JB_EXPORT json_t *jb_transfers_list(struct jb_transfers *t);
JB_EXPORT int jb_transfers_cancel(struct jb_transfers *t, const char *id, struct jb_error *err);
/* Counts by state (6) and the bytes the running ones have moved. */
JB_EXPORT void jb_transfers_counts(struct jb_transfers *t, unsigned counts[6], uint64_t *bytes_done_running);
JB_EXPORT const char *const *jb_transfer_states(void);
