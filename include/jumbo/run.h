/* jumbo run: containers on this host.  A job's bundle (the OCI runtime
 * config crun reads, with its mounts, namespaces and limits) and the
 * supervisor, a small process per job that outlives jumbod: it mounts the
 * overlay root in its own mount namespace, runs crun create/start, waits for
 * the container as its subreaper, reads the cgroup's OOM counter and writes
 * the job's result. */
#pragma once
#include "jumbo/oci.h"

/* How this host's cgroups are mounted. */
enum jb_cgroup_mode { JB_CGROUP_V1 = 1, JB_CGROUP_HYBRID = 2, JB_CGROUP_V2 = 3 };
JB_EXPORT enum jb_cgroup_mode jb_cgroup_mode(void);
JB_EXPORT const char *jb_cgroup_mode_name(enum jb_cgroup_mode m);

struct jb_mount_ro {
	char *name;   /* under /data */
	char *source; /* absolute host path, already checked to be beneath the data root */
	char *remote; /* PEER:PATH to fetch into the data root first, or NULL */
	char *local;  /* for a remote: where it lands, relative to the data root */
};

/* A notebook's user: jovyan (1000) of group users (100), as in Jupyter's
 * images. */
#define JB_NOTEBOOK_UID 1000u
#define JB_NOTEBOOK_GID 100u
#define JB_NOTEBOOK_HOME "/home/jovyan"
#define JB_NOTEBOOK_PORT 8888 /* where jupyterhub-singleuser listens in a notebook job */
/* The host's address for jobs on a veth network (on its loopback, routed
 * through each job's pair): where a notebook finds the JupyterHub API. */
#define JB_SITE_ADDRESS "10.213.0.1"

/* What a job asks for. */
struct jb_job_spec {
	char *image;              /* a name in the store */
	char **args;              /* NULL: the image's entrypoint + cmd */
	char **env;               /* added to the image's (NAME=VALUE) */
	struct jb_mount_ro *data;
	size_t ndata;
	double cpus;              /* 0: no limit */
	uint64_t memory;          /* bytes, 0: no limit */
	uint64_t pids;            /* 0: the default (4096) */
	unsigned gpus;
	double timeout;           /* seconds, 0: none */
	bool network;             /* share the host's network (default: an empty namespace) */
	bool veth;                /* a namespace of its own joined to the host by a veth pair: */
	char netns[96];           /*   its path (/var/run/netns/jb-ID), made before the bundle */
	char address[32];         /*   the job's address there, reachable from the host */
	/* a notebook (see jumbod(8), NOTEBOOKS): */
	char *home;               /* a host directory mounted read-write at /home/jovyan, or NULL */
	char *data_all;           /* the data root, mounted read-only at /data, or NULL */
	char *backend;            /* a [backend NAME] of the configuration, or NULL: this host */
	unsigned uid, gid;        /* with user_set: the process's ids over the image's user */
	bool user_set;
};
JB_EXPORT void jb_job_spec_free(struct jb_job_spec *s);

/* GPUs: the NVIDIA devices present (/dev/nvidia0...), 0 without a driver. */
JB_EXPORT unsigned jb_gpu_count(void);

/* Make the job directory DIR (absolute) for job id: config.json, hosts,
 * resolv.conf, hostname, upper/, work/, merged/, workspace/ (the job's
 * /work), and supervise.json for jb_run_supervise.  layers are the image's
 * unpacked layer directories, bottom first. */
struct jb_bundle_opts {
	const char *crun;         /* the runtime binary */
	const char *crun_root;    /* its state directory */
	enum jb_cgroup_mode cgroups;
	/* the job's user namespace: its ids 0..ids-1 are the host's
	 * id0..id0+ids-1 (ids 0: none, the job runs as the host's root) */
	uint32_t id0, ids;
	uint64_t log_max; /* bytes kept of each of the job's streams (0: no bound) */
	/* for a job another machine runs (a cluster backend): a host path as
	 * that machine sees it; NULL: the same */
	void (*map)(const void *ud, const char *path, char *out, size_t n);
	const void *map_ud;
};
JB_EXPORT int jb_bundle_make(const char *dir, const char *id, const struct jb_job_spec *spec,
			     const struct jb_oci_image *img, char *const *layers, const struct jb_bundle_opts *o,
			     struct jb_error *err);

/* The supervisor's main: run the job of DIR, write DIR/result.json.  Call
 * in a fresh process (jumbod re-executes itself for it); returns the exit
 * status for that process. */
JB_EXPORT int jb_run_supervise(const char *dir);

/* A job's result, as the supervisor wrote it. */
struct jb_job_result {
	int exit_code;            /* the container's, 128+N for signal N */
	int signal;               /* 0, or the signal that ended it */
	bool oom, timed_out, cancelled;
	uint64_t max_memory;      /* bytes, 0 when unknown */
	double started, finished; /* wall clock, seconds */
	char error[512];          /* the job could not start: why */
};
/* 0, -ENOENT when there is none yet. */
JB_EXPORT int jb_job_result_read(const char *dir, struct jb_job_result *r, struct jb_error *err);
