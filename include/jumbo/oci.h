/* jumbo oci: the documents of an OCI image (image-spec v1.1), and Docker's
 * schema 2 equivalents that registries still serve: digests, descriptors,
 * image manifests, image indexes (manifest lists) and image configs.  They
 * come from registries and archives, so they are untrusted input: every
 * field is checked, sizes are bounded, and a document that does not follow
 * the specification is refused with a message naming the field. */
#pragma once
#include "jumbo/base.h"

struct jb_config;

#define JB_OCI_MAX_DOC (4u << 20)     /* a manifest, index or config: registries refuse more */
#define JB_OCI_MAX_LAYERS 1024        /* layers of one image (overlayfs stacks far fewer) */
#define JB_OCI_MAX_MANIFESTS 1024     /* entries of one index */
#define JB_OCI_DIGEST_MAX 136         /* "sha512:" + 128 hex digits + NUL */

#define JB_OCI_MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define JB_OCI_MT_INDEX "application/vnd.oci.image.index.v1+json"
#define JB_OCI_MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define JB_OCI_MT_LAYER "application/vnd.oci.image.layer.v1.tar"
#define JB_OCI_MT_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define JB_OCI_MT_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define JB_DOCKER_MT_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define JB_DOCKER_MT_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define JB_DOCKER_MT_CONFIG "application/vnd.docker.container.image.v1+json"
#define JB_DOCKER_MT_LAYER "application/vnd.docker.image.rootfs.diff.tar.gzip"

/* How a layer's bytes are compressed, from its media type. */
enum jb_oci_compression { JB_OCI_TAR, JB_OCI_GZIP, JB_OCI_ZSTD };

struct jb_oci_desc {
	char *media_type;
	char digest[JB_OCI_DIGEST_MAX];
	int64_t size;
	/* index entries only (may be NULL): the platform the manifest is for */
	char *os, *arch, *variant;
};

enum jb_oci_kind { JB_OCI_KIND_MANIFEST = 1, JB_OCI_KIND_INDEX = 2 };

struct jb_oci_manifest {
	enum jb_oci_kind kind;
	char *media_type;            /* as given, or the OCI type when the document has none */
	/* an image manifest */
	struct jb_oci_desc config;
	struct jb_oci_desc *layers;
	size_t nlayers;
	/* an index */
	struct jb_oci_desc *manifests;
	size_t nmanifests;
};

struct jb_oci_config {
	char *os, *arch, *variant;
	char **env, **entrypoint, **cmd; /* NULL-terminated; entrypoint and cmd may be empty */
	char *workdir, *user;            /* may be NULL */
	char **diff_ids;                 /* NULL-terminated: one per layer, uncompressed digests */
	size_t ndiff_ids;
};

/* "ALG:HEX" with ALG sha256 (64 lowercase hex digits) or sha512 (128): 0 or
 * -EINVAL. */
JB_EXPORT int jb_oci_digest_check(const char *digest);
/* The sha256 digest of bytes, as "sha256:HEX". */
JB_EXPORT void jb_oci_digest_of(const void *p, size_t n, char out[JB_OCI_DIGEST_MAX]);
/* Compression of a layer media type: 0 and *c, or -ENOTSUP for a type that
 * is not a layer jumbo can unpack (foreign and non-distributable layers). */
JB_EXPORT int jb_oci_layer_compression(const char *media_type, enum jb_oci_compression *c);

/* Parse an image manifest or an index (OCI or Docker schema 2).  When
 * media_type is given (the registry's Content-Type) it must agree with the
 * document.  0, or -EINVAL/-E2BIG/-ENOMEM with err set. */
JB_EXPORT int jb_oci_manifest_parse(const char *buf, size_t len, const char *media_type, struct jb_oci_manifest *m,
				    struct jb_error *err);
JB_EXPORT void jb_oci_manifest_free(struct jb_oci_manifest *m);
/* The entry of an index for os/arch (variant may be NULL: any), or NULL. */
JB_EXPORT const struct jb_oci_desc *jb_oci_index_find(const struct jb_oci_manifest *m, const char *os,
						      const char *arch, const char *variant);

JB_EXPORT int jb_oci_config_parse(const char *buf, size_t len, struct jb_oci_config *c, struct jb_error *err);
JB_EXPORT void jb_oci_config_free(struct jb_oci_config *c);

/* ---- the site's image store: an OCI image layout directory ----
 * DIR/oci-layout, DIR/blobs/sha256/HEX: the layout of the image-spec, so that
 * skopeo (oci:DIR) and umoci read and write it too.  A blob appears under its
 * name only once every byte has been hashed and checked against the digest
 * it was fetched for, and synced: a reader never sees a partial blob. */
struct jb_oci_store;
struct jb_oci_blob_writer;
JB_EXPORT int jb_oci_store_open(const char *dir, struct jb_oci_store **ret, struct jb_error *err);
JB_EXPORT void jb_oci_store_close(struct jb_oci_store *s);
/* The path of a stored blob (caller frees), or NULL when it is not there. */
JB_EXPORT char *jb_oci_store_path(struct jb_oci_store *s, const char *digest);
/* Write a blob that must have this sha256 digest (NULL: whatever it hashes
 * to, a blob jumbo makes) and, unless size < 0, this size.  commit checks
 * both and moves it into place; abort (or a failed commit) leaves nothing
 * behind.  Both free the writer.  commit_as also gives the digest. */
JB_EXPORT int jb_oci_blob_begin(struct jb_oci_store *s, const char *digest, int64_t size,
				struct jb_oci_blob_writer **ret, struct jb_error *err);
JB_EXPORT int jb_oci_blob_write(struct jb_oci_blob_writer *w, const void *p, size_t n, struct jb_error *err);
JB_EXPORT int jb_oci_blob_commit(struct jb_oci_blob_writer *w, struct jb_error *err);
JB_EXPORT int jb_oci_blob_commit_as(struct jb_oci_blob_writer *w, char ret_digest[JB_OCI_DIGEST_MAX],
				     struct jb_error *err);
JB_EXPORT void jb_oci_blob_abort(struct jb_oci_blob_writer *w);

/* ---- layers ----
 * Unpack a layer blob (read from blobfd, compressed as c) into the empty
 * directory dirfd, in the form overlayfs stacks: an OCI whiteout ".wh.NAME"
 * becomes a 0:0 character device NAME, ".wh..wh..opq" makes its directory
 * opaque (trusted.overlay.opaque=y).  An entry whose path is absolute or
 * climbs with "..", a device node, a hard link out of the layer or a write
 * through a link out of it ends the unpacking with an error naming the
 * entry; the caller removes the directory.  The bytes must be compressed as
 * the media type says.  diff_id (may be NULL) receives the sha256 of the
 * uncompressed tar, for the check against the image config.  budget (may
 * be NULL: no bound) is the bytes the layer may unpack to, its tar's bytes
 * and, for each file, its size (sparse files count whole): over it the
 * unpacking ends (EFBIG, naming the bound); what it used is taken off. */
JB_EXPORT int jb_oci_layer_unpack(int blobfd, enum jb_oci_compression c, int dirfd, char diff_id[JB_OCI_DIGEST_MAX],
				  uint64_t *budget, struct jb_error *err);
/* The bytes one image's layers may unpack to (what jb_oci_image_layers
 * unpacks in one call): default JB_OCI_MAX_UNPACKED. */
#define JB_OCI_MAX_UNPACKED (64ull << 30)
JB_EXPORT void jb_oci_store_set_max_unpacked(struct jb_oci_store *s, uint64_t bytes);

/* ---- the OCI Distribution API (a registry client) ----
 * host is "name[:port]"; loopback hosts are spoken to in plain HTTP, others
 * in HTTPS unless insecure is set.  Credentials are sent only when the
 * registry asks (Basic, or to the realm of a Bearer challenge for a token).
 * Every function returns 0 (or what it says) or a negative errno with err
 * naming the registry, the object and the registry's own error words:
 * -ENOENT for an unknown repository, tag or blob, -EACCES for refused
 * credentials, -ECONNREFUSED for a registry that does not answer, -EBADMSG
 * for bytes that do not match their digest. */
typedef void (*jb_registry_progress_fn)(void *ud, uint64_t done, uint64_t total);
struct jb_registry_opts {
	const char *user, *password;  /* NULL: anonymous */
	const char *ca_file;          /* NULL: the system's */
	bool insecure;                /* plain HTTP to a host that is not loopback */
	long timeout_s;               /* a transfer that moves nothing this long ends; 0: 30 s */
	jb_registry_progress_fn progress; /* blob bytes moved, may be NULL */
	void *progress_ud;
	bool (*cancelled)(void *ud);  /* asked while a request waits or moves: true ends it (-ECANCELED); may be NULL */
	void *cancel_ud;
	/* the credentials of a token realm on another host than the registry's
	 * (user and password, or NULLs): user and password go only to the
	 * registry's own host; may be NULL (none) */
	void (*creds_for)(const void *ud, const char *host, const char **user, const char **password);
	const void *creds_ud;
};
/* The options for host, by one rule everywhere (CLI, jobs, backends):
 * credentials given by the caller (user not NULL: the command line's
 * --creds or its own environment) come first, then the [registry HOST]
 * section of c for that host alone, else none; the CA and insecure come
 * from [registry HOST], insecure also when the caller asks.  The rest of *o
 * is zeroed.  c may be NULL; a daemon gives no credentials of its own.  A
 * token realm on another host gets its own [registry HOST]'s credentials
 * (creds_for), never these. */
JB_EXPORT void jb_registry_opts_for(const struct jb_config *c, const char *host, const char *user,
				    const char *password, bool insecure, struct jb_registry_opts *o);
/* host ("name", "name:port", "[v6]:port") names a loopback address as a
 * whole: localhost, 127.0.0.0/8 or ::1 (the only hosts spoken to in plain
 * HTTP without insecure; "127.evil" and "localhost.evil" are not). */
JB_EXPORT bool jb_host_is_loopback(const char *host);
struct jb_registry;
JB_EXPORT int jb_registry_open(const char *host, const struct jb_registry_opts *o, struct jb_registry **ret,
			       struct jb_error *err);
JB_EXPORT void jb_registry_close(struct jb_registry *r);
JB_EXPORT const char *jb_registry_host(const struct jb_registry *r);
/* GET /v2/: the registry answers and accepts the credentials. */
JB_EXPORT int jb_registry_ping(struct jb_registry *r, struct jb_error *err);
/* A manifest or index by tag or digest: its bytes (NUL-terminated, caller
 * frees), its media type (caller frees) and its sha256 digest, checked
 * against the digest asked for and against the one the registry announces. */
JB_EXPORT int jb_registry_manifest_get(struct jb_registry *r, const char *repo, const char *ref, char **ret_buf,
				       size_t *ret_len, char **ret_mt, char ret_digest[JB_OCI_DIGEST_MAX],
				       struct jb_error *err);
JB_EXPORT int jb_registry_manifest_put(struct jb_registry *r, const char *repo, const char *ref, const char *buf,
				       size_t len, const char *media_type, char ret_digest[JB_OCI_DIGEST_MAX],
				       struct jb_error *err);
JB_EXPORT int jb_registry_manifest_delete(struct jb_registry *r, const char *repo, const char *digest,
					  struct jb_error *err);
/* The tags of a repository (NULL-terminated, jb_oci_strv_free). */
JB_EXPORT int jb_registry_tags(struct jb_registry *r, const char *repo, char ***ret, size_t *ret_n,
			       struct jb_error *err);
/* 1 when the registry has the blob, 0 when not. */
JB_EXPORT int jb_registry_blob_exists(struct jb_registry *r, const char *repo, const char *digest,
				      struct jb_error *err);
/* A blob into the store, through its digest and size check. */
JB_EXPORT int jb_registry_blob_get(struct jb_registry *r, const char *repo, const struct jb_oci_desc *d,
				   struct jb_oci_store *s, struct jb_error *err);
/* size bytes of fd as the blob digest: skipped when the registry has it
 * (JB_BLOB_PRESENT), mounted from the repository mount_from of the same
 * registry when it is there (may be NULL; JB_BLOB_MOUNTED), else sent (0) in
 * one PUT, or in PATCHes of chunk bytes then a PUT when chunk is not 0 and
 * the blob is larger. */
enum { JB_BLOB_SENT = 0, JB_BLOB_PRESENT = 1, JB_BLOB_MOUNTED = 2 };
JB_EXPORT int jb_registry_blob_put(struct jb_registry *r, const char *repo, const char *digest, int fd, int64_t size,
				   size_t chunk, const char *mount_from, struct jb_error *err);

/* ---- images in the store ----
 * A name is [HOST[:PORT]/]REPO[:TAG][@DIGEST], as docker and skopeo write
 * them; the tag defaults to "latest".  HOST is taken to be a registry when
 * it has a dot or a colon or is "localhost". */
struct jb_oci_ref {
	char host[256];
	char repo[256];
	char tag[129];                  /* "" when only a digest was given */
	char digest[JB_OCI_DIGEST_MAX]; /* "" when none */
};
JB_EXPORT int jb_oci_ref_parse(const char *s, struct jb_oci_ref *r, struct jb_error *err);
/* The canonical name: what the store files it under. */
JB_EXPORT void jb_oci_ref_name(const struct jb_oci_ref *r, char *out, size_t n);
/* The OCI name of this machine's architecture ("amd64", "arm64"). */
JB_EXPORT const char *jb_oci_host_arch(void);

struct jb_oci_named {
	char *name;
	struct jb_oci_desc desc; /* the image manifest it names */
};
JB_EXPORT int jb_oci_store_tag(struct jb_oci_store *s, const char *name, const struct jb_oci_desc *d,
			       struct jb_error *err);
JB_EXPORT int jb_oci_store_untag(struct jb_oci_store *s, const char *name, struct jb_error *err);
JB_EXPORT int jb_oci_store_list(struct jb_oci_store *s, struct jb_oci_named **ret, size_t *ret_n,
				struct jb_error *err);
JB_EXPORT void jb_oci_named_free(struct jb_oci_named *v, size_t n);
/* Remove blobs and unpacked layers no name needs; *ret_removed blobs went. */
JB_EXPORT int jb_oci_store_prune(struct jb_oci_store *s, size_t *ret_removed, struct jb_error *err);

/* An image of the store: its manifest (by digest) and config. */
struct jb_oci_image {
	char name[600];
	char digest[JB_OCI_DIGEST_MAX]; /* of the manifest: what pins the image */
	char *manifest_mt;
	int64_t manifest_size;
	struct jb_oci_manifest m;
	struct jb_oci_config c;
};
/* By name, or by manifest digest (NAME@DIGEST). */
JB_EXPORT int jb_oci_image_open(struct jb_oci_store *s, const char *name, struct jb_oci_image *img,
				struct jb_error *err);
JB_EXPORT void jb_oci_image_free(struct jb_oci_image *img);
/* Fetch an image (this host's platform of an index) into the store, every
 * blob through its digest check, and file it under its name. */
JB_EXPORT int jb_oci_pull(struct jb_oci_store *s, const char *name, const struct jb_registry_opts *o,
			  struct jb_oci_image *img, struct jb_error *err);
/* Send the image local to the registry as remote: the blobs it lacks
 * (mounted from another repository of the registry where the store has seen
 * them), then the manifest.  chunk as for jb_registry_blob_put; stats may be
 * NULL. */
struct jb_oci_push_stats {
	unsigned sent, present, mounted; /* blobs */
	uint64_t bytes_sent;
};
JB_EXPORT int jb_oci_push(struct jb_oci_store *s, const char *local, const char *remote,
			  const struct jb_registry_opts *o, size_t chunk, char ret_digest[JB_OCI_DIGEST_MAX],
			  struct jb_oci_push_stats *stats, struct jb_error *err);
/* The directories of the image's layers, bottom first (NULL-terminated,
 * free with jb_oci_strv_free), each unpacked once and checked against its
 * diff_id before it is used. */
JB_EXPORT int jb_oci_image_layers(struct jb_oci_store *s, const struct jb_oci_image *img, char ***ret,
				  struct jb_error *err);
JB_EXPORT void jb_oci_strv_free(char **v);

/* ---- images made here ----
 * A recipe (images/NAME.conf): "key = value" lines; suite (a Debian suite),
 * mirror, variant (mmdebstrap's, default apt), packages, env (NAME=VALUE
 * words), cmd, entrypoint (words), workdir, user, description. */
struct jb_oci_recipe {
	char *suite, *mirror, *variant, *workdir, *user, *description;
	char **packages, **env, **cmd, **entrypoint; /* NULL-terminated, may be NULL */
	int64_t created; /* the image's time and mmdebstrap's SOURCE_DATE_EPOCH (0: now) */
};
JB_EXPORT int jb_oci_recipe_load(const char *path, struct jb_oci_recipe *r, struct jb_error *err);
JB_EXPORT void jb_oci_recipe_free(struct jb_oci_recipe *r);
/* A tar stream rewritten as one gzip layer blob, without device nodes. */
JB_EXPORT int jb_oci_layer_from_tar(struct jb_oci_store *s, int tarfd, struct jb_oci_desc *ret_layer,
				    char ret_diff_id[JB_OCI_DIGEST_MAX], struct jb_error *err);
/* Run mmdebstrap for the recipe (its messages to log_fd, or stderr when
 * -1) and store the result as a one-layer image named name. */
JB_EXPORT int jb_oci_build(struct jb_oci_store *s, const struct jb_oci_recipe *r, const char *recipe_name,
			   const char *name, int log_fd, struct jb_oci_image *img, struct jb_error *err);
/* An OCI archive (a tar of an image layout) or a 'docker save' tarball into
 * the store, every blob checked; named name, or by the archive's own name
 * when name is NULL. */
JB_EXPORT int jb_oci_import(struct jb_oci_store *s, const char *path, const char *name, struct jb_oci_image *img,
			    struct jb_error *err);
