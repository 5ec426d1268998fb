/* jumbo oci: the documents of an OCI image (image-spec v1.1), and Docker's
 * schema 2 equivalents that registries still serve: digests, descriptors,
 * image manifests, image indexes (manifest lists) and image configs.  They
 * come from registries and archives, so they are untrusted input: every
 * field is checked, sizes are bounded, and a document that does not follow
 * the specification is refused with a message naming the field. */
#pragma once
#include "jumbo/base.h"

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
/* Write a blob that must have this sha256 digest and, unless size < 0, this
 * size.  commit checks both and moves it into place; abort (or a failed
 * commit) leaves nothing behind.  Both free the writer. */
JB_EXPORT int jb_oci_blob_begin(struct jb_oci_store *s, const char *digest, int64_t size,
				struct jb_oci_blob_writer **ret, struct jb_error *err);
JB_EXPORT int jb_oci_blob_write(struct jb_oci_blob_writer *w, const void *p, size_t n, struct jb_error *err);
JB_EXPORT int jb_oci_blob_commit(struct jb_oci_blob_writer *w, struct jb_error *err);
JB_EXPORT void jb_oci_blob_abort(struct jb_oci_blob_writer *w);
