/* jumbo.conf(5): one INI-style file for jumbo and jumbod. */
#pragma once
#include "jumbo/base.h"

#define JB_DEFAULT_PORT 4410     /* transfers: [site] listen, [peer] address */
#define JB_DEFAULT_API_PORT 4480 /* [site] api */
#define JB_MAX_PEERS 1024
#define JB_DEFAULT_MAX_PARTIAL_AGE (7 * 86400)
#define JB_DEFAULT_MAX_JOURNAL_AGE (90 * 86400)
#define JB_MAX_PREFIXES 64       /* in one [peer] read or write */
#define JB_MAX_HOPS 4            /* relays on one route (JB_WIRE_MAX_HOPS) */
/* The defaults and bounds of the [site] keys against slow clients */
#define JB_DEFAULT_HANDSHAKE_TIMEOUT 10
#define JB_MAX_HANDSHAKES 256            /* half of jumbod's 512 connection threads */
#define JB_DEFAULT_HANDSHAKES_PER_ADDRESS 128
#define JB_DEFAULT_API_REQUEST_TIMEOUT 10
#define JB_DEFAULT_API_IDLE_TIMEOUT 30
#define JB_API_MAX_CONNECTIONS 64        /* libmicrohttpd's limit, all addresses */
#define JB_DEFAULT_API_PER_ADDRESS 32

struct jb_peer {
	char *name;
	char *address;        /* "host:port", NULL when the peer only connects in */
	uint8_t fp[32];       /* SHA-256 of the peer's certificate (DER) */
	/* What the peer may do at this site's jumbod (jumbo.conf(5), PEER
	 * PATHS): read (PULL, LIST) and write (PUSH) only at or below these
	 * prefixes, clean paths below the data root ("" is the whole root).
	 * None: nothing. */
	char **read, **write;
	size_t nread, nwrite;
	/* [peer] relay = yes: this site relays for transfers this peer
	 * originates (it needs a [relay] section too) */
	bool relay;
	/* [peer] via = R[,R2]: transfers to this peer go through these
	 * relays, in order, unless jumbo send --via says otherwise */
	char *via[JB_MAX_HOPS];
	int nvia;
	int via_line;         /* of the via key, for messages */
};
enum jb_access { JB_READ, JB_WRITE };

/* [registry HOST[:PORT]]: how to reach an OCI registry. */
struct jb_registry_conf {
	char *host;
	char *user, *password; /* password, or the first line of password-file */
	char *ca;              /* a CA bundle for its TLS certificate */
	bool insecure;         /* plain HTTP although it is not on loopback */
};

/* [backend NAME]: a cluster engine jobs can be handed to (jumbo.conf(5),
 * BACKENDS).  Its type and the other keys are the backends' to check
 * (lib/sched declares the types and the keys of each: jb_backends_check);
 * here they are kept as given, each with its line. */
struct jb_backend_conf {
	char *name;
	char *type;
	char **keys, **vals;   /* nkv pairs, in file order */
	int *lines;            /* of each key */
	size_t nkv;
	int line;              /* of its header, for messages */
};
/* The value of key in a backend section, or NULL. */
JB_EXPORT const char *jb_backend_conf_get(const struct jb_backend_conf *b, const char *key);

/* [rule NAME]: when a dataset whose path matches glob lands, run a job. */
struct jb_rule {
	char *name;
	char *glob;            /* fnmatch(3) against the path below the data root; '*' crosses '/' */
	char *image;
	char *command;         /* words, quoted as in a shell; {input} {name} {path} {dir} replaced */
	char *output;          /* where /work/out is committed, below the data root; {rule} {job} {name} */
	double cpus;
	char *memory;
	double timeout;
	char *backend;         /* a [backend NAME], or NULL: this host */
};

#define JB_SUBUID_START 524288u
#define JB_SUBUID_COUNT 65536u
#define JB_DEFAULT_MAX_JOBS 8
#define JB_DEFAULT_MAX_JOB_LOG (256ull << 20)
#define JB_DEFAULT_JOB_PORT 8081
#define JB_MAX_MAX_JOBS 256
struct jb_config {
	char *path;           /* where it was read from */
	char *name;           /* [site] name */
	char *identity;       /* directory with key.pem, cert.pem */
	char *root;           /* jumbod data root */
	char *listen;         /* jumbod transfer listener, host:port */
	char *api;            /* jumbod REST API, host:port ("" or "off" disables);
			       * a bare host gets JB_DEFAULT_API_PORT when parsed */
	char *state;          /* jumbod state directory */
	char *images;         /* the image store (an OCI layout); default STATE/images */
	int max_open_files;   /* files one transfer session holds open at once, per end
			       * (0: the default, see jb_xfer_max_open) */
	/* [site] subuid: a job's ids 0..count-1 are the host's start..; off:
	 * no user namespace (jobs as the host's root).  Default
	 * JB_SUBUID_START:JB_SUBUID_COUNT */
	uint32_t subuid_start, subuid_count;
	bool subuid_off;
	uint64_t max_job_log; /* [site] max_job_log: bytes kept of each stream of a job (0: the default) */
	uint64_t max_image_size; /* [site] max_image_size: bytes one image's layers unpack to (0: the default) */
	/* [site] max_partial_age, max_journal_age: seconds after which a stale
	 * partial file (and its record) and a committed journal record go */
	int64_t max_partial_age, max_journal_age;
	/* [site] job_ports: the ports of the site address for jobs (10.213.0.1)
	 * a job on a veth network may reach (nothing else of the host);
	 * default JB_DEFAULT_JOB_PORT (the JupyterHub API of hub-up) */
	uint16_t job_ports[16];
	int njob_ports; /* -1: the default */
	int max_jobs; /* [site] max_jobs: this host's jobs running at once (0: JB_DEFAULT_MAX_JOBS) */
	/* Slow clients (jumbo.conf(5)); 0: the default below */
	double handshake_timeout;        /* s from accept to HELLO or JOIN, in all */
	int max_handshakes;              /* connections at once that have not got there */
	int handshakes_per_address;      /* of those, from one address */
	double api_request_timeout;      /* s for a request's headers and body, in all */
	int api_idle_timeout;            /* s an API connection may stay silent */
	int api_connections_per_address; /* API connections at once from one address */
	int umask;            /* permission bits cleared from the modes of the files and
			       * directories a transfer makes here (default 022) */
	/* [relay]: this site holds transfers passing through (docs/ARCHITECTURE.md,
	 * Relays): in staging (a directory of its own, outside the data root),
	 * at most quota bytes at once (0: no bound but the disk's) */
	char *relay_staging;
	uint64_t relay_quota;
	int64_t relay_give_up;  /* seconds a next hop may stay unreachable before a relayed transfer fails (1d) */
	struct jb_peer *peers;
	size_t npeers;
	struct jb_registry_conf *registries;
	size_t nregistries;
	struct jb_rule *rules;
	size_t nrules;
	struct jb_backend_conf *backends;
	size_t nbackends;
};

JB_EXPORT int jb_config_load(const char *path, struct jb_config **ret, struct jb_error *err);
JB_EXPORT int jb_config_parse(const char *text, const char *path, struct jb_config **ret,
			      struct jb_error *err);
JB_EXPORT void jb_config_free(struct jb_config *c);
/* Checks what jumbod needs on top of parsing (root, listen, state). */
JB_EXPORT int jb_config_check_daemon(const struct jb_config *c, struct jb_error *err);
JB_EXPORT const struct jb_peer *jb_config_peer(const struct jb_config *c, const char *name);
/* The [backend NAME] section, or NULL. */
JB_EXPORT const struct jb_backend_conf *jb_config_backend(const struct jb_config *c, const char *name);
/* The [registry HOST] section for host, or NULL. */
JB_EXPORT const struct jb_registry_conf *jb_config_registry(const struct jb_config *c, const char *host);
JB_EXPORT const struct jb_peer *jb_config_peer_by_fp(const struct jb_config *c, const uint8_t fp[32]);
/* The widest of the peer's read or write prefixes that holds path (clean,
 * below the data root; see jb_path_under), or NULL: the peer may not. */
JB_EXPORT const char *jb_peer_prefix(const struct jb_peer *p, enum jb_access a, const char *path);
/* "read incoming/alpha pub; write incoming/alpha", "read everything; write
 * nothing": what the peer may, for logs and jumbod --check (cut to fit len). */
JB_EXPORT void jb_peer_rights(const struct jb_peer *p, char *buf, size_t len);
/* "SHA256:<64 hex>" <-> bytes */
JB_EXPORT int jb_fp_parse(const char *s, uint8_t out[32]);
JB_EXPORT void jb_fp_format(const uint8_t fp[32], char out[72]);
/* "host:port", "[v6]:port", "host" (default port) -> separate parts. */
JB_EXPORT int jb_split_hostport(const char *s, char *host, size_t hostlen, int *port);
