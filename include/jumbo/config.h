/* jumbo.conf(5): one INI-style file for jumbo and jumbod. */
#pragma once
#include "jumbo/base.h"

#define JB_DEFAULT_PORT 4410     /* transfers: [site] listen, [peer] address */
#define JB_DEFAULT_API_PORT 4480 /* [site] api */
#define JB_MAX_PEERS 1024

struct jb_peer {
	char *name;
	char *address;        /* "host:port", NULL when the peer only connects in */
	uint8_t fp[32];       /* SHA-256 of the peer's certificate (DER) */
};

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
	int umask;            /* permission bits cleared from the modes of the files and
			       * directories a transfer makes here (default 022) */
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
/* "SHA256:<64 hex>" <-> bytes */
JB_EXPORT int jb_fp_parse(const char *s, uint8_t out[32]);
JB_EXPORT void jb_fp_format(const uint8_t fp[32], char out[72]);
/* "host:port", "[v6]:port", "host" (default port) -> separate parts. */
JB_EXPORT int jb_split_hostport(const char *s, char *host, size_t hostlen, int *port);
