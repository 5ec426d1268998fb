/* Internal to lib/oci. */
#pragma once
#include "jumbo/oci.h"

/* "sha256:" and the lowercase hex of a 32-byte SHA-256. */
void oci_sha256_text(const unsigned char md[32], char out[JB_OCI_DIGEST_MAX]);
/* The store's directory, and a descriptor of it (also its lock). */
const char *oci_store_dir(const struct jb_oci_store *s);
int oci_store_fd(const struct jb_oci_store *s);
uint64_t oci_store_max_unpacked(const struct jb_oci_store *s);
/* A document stored as a blob (nothing done when it is there already). */
int oci_put_doc(struct jb_oci_store *s, const char *buf, size_t len, char digest[JB_OCI_DIGEST_MAX],
		struct jb_error *err);
/* Store the config (its "config" object cfg_config is taken) and the
 * manifest of a one-layer image and name it; img (may be NULL) opens it. */
#include <jansson.h>
#include <time.h>
int oci_finish_image(struct jb_oci_store *s, const char *name, json_t *cfg_config, const struct jb_oci_desc *layer,
		     const char *diff_id, const char *created_by, time_t created, struct jb_oci_image *img,
		     struct jb_error *err);
/* Names in tar headers are UTF-8 (pax) and are bytes on disk: libarchive
 * converts between them through the locale's character set, so while it
 * works on a layer this thread uses C.UTF-8 (the program's locale is not
 * touched). */
#include <locale.h>
struct oci_utf8 {
	locale_t loc, old;
};
static inline void oci_utf8_begin(struct oci_utf8 *u)
{
	u->loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	u->old = u->loc ? uselocale(u->loc) : (locale_t)0;
}
static inline void oci_utf8_end(struct oci_utf8 *u)
{
	if (u->loc) {
		uselocale(u->old);
		freelocale(u->loc);
	}
}
/* Around the writing of blobs that have no name yet: prune waits for none. */
int oci_busy_begin(struct jb_oci_store *s);
void oci_busy_end(int fd);
/* A small stored blob (manifest, config) read whole and hashed again. */
int oci_read_doc(struct jb_oci_store *s, const char *digest, char **ret, size_t *ret_len, struct jb_error *err);
/* The manifest (by the descriptor) and config of a stored image. */
int oci_load_image(struct jb_oci_store *s, const struct jb_oci_desc *d, struct jb_oci_image *img,
		   struct jb_error *err);
