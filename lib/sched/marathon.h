/* Marathon's REST API, the documents only: the app jumbo creates for a job
 * (POST /v2/apps) and what it reads back (GET /v2/apps/ID), written to the
 * types and examples Marathon publishes (docs/docs/rest-api/public/api/ of
 * mesosphere/marathon, RAML 1.0; the 1.5+ forms: networks and
 * container.portMappings).  No I/O here: tests and the fuzzer use it
 * alone. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MJ_MAX_VOLUMES 72

struct mj_volume {
	const char *container_path, *host_path;
	bool rw;
};

struct mj_job {
	const char *app_id;          /* from mj_app_id */
	const char *image;           /* a registry reference the agents pull */
	const char *container;       /* "MESOS" (UCR) or "DOCKER" */
	char *const *args;           /* NULL: the image's command */
	char *const *env;            /* NAME=VALUE */
	double cpus;                 /* 0: 1 */
	uint64_t memory;             /* bytes; 0: 1024 MiB */
	unsigned gpus;
	struct mj_volume vols[MJ_MAX_VOLUMES];
	size_t nvols;
	int port;                    /* a notebook's port in the container (bridge network), 0: none (host network) */
	const char *job_id, *site;   /* labels */
};

/* "/PREFIX/SITE/JOB" in Marathon's PathId form: lowercase letters, digits,
 * '-' and '.', no segment starting or ending with '-'.  -1 when nothing is
 * left of a part. */
int mj_app_id(const char *prefix, const char *site, const char *job, char *out, size_t n);
/* The app of POST /v2/apps. */
json_t *mj_app(const struct mj_job *j);

enum mj_phase { MJ_PENDING, MJ_RUNNING, MJ_ENDED, MJ_UNKNOWN };
struct mj_status {
	enum mj_phase phase;
	char state[48];      /* the task's Mesos state, or lastTaskFailure's */
	char message[256];   /* lastTaskFailure's message, or Marathon's error */
	char host[128];      /* the agent running the task */
	char address[64];    /* where its port is reached: the task's IP or its host */
	int port;            /* the host port of its first port, 0: none */
	bool idle;           /* no task staged or running */
	bool have_exit;      /* ended: exit_code (and oom) are known */
	int exit_code;
	bool oom;
};
/* The answer to GET /v2/apps/ID (status: its HTTP status).  0, or -1 when
 * the answer is not one Marathon documents. */
int mj_parse_app(const json_t *answer, long status, struct mj_status *st);
/* A terminal task's exit, from its Mesos state and Marathon's message:
 * TASK_FINISHED 0; "exited with status N" N; a memory limit 137 (oom);
 * killed 137.  false when nothing tells. */
bool mj_exit_of(const char *state, const char *message, int *exit_code, bool *oom);
/* Marathon's error answer in words: message, then the first detail
 * ({path, errors[]}, or a string for malformed JSON). */
void mj_error(const json_t *answer, char *out, size_t n);
