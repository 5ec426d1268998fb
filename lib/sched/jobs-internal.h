/* Internal to lib/sched. */
#pragma once
#include "jumbo/sched.h"
#include "jumbo/store.h"
#include "jumbo/xfer.h"

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
