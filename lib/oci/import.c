/* Images brought as files: an OCI archive (a tar of an image layout, what
 * `skopeo copy ... oci-archive:` and `podman save --format oci-archive`
 * write) or a `docker save` tarball (manifest.json naming a config and
 * layer tars).  The archive is read once: every regular file goes into the
 * store as a blob under the digest of its bytes, and the few small
 * documents are kept in memory; then the image is put together from them. */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "oci-internal.h"

#define MAX_ENTRIES 4096

struct member {
	char *path;                     /* as in the archive, without "./" */
	char digest[JB_OCI_DIGEST_MAX]; /* of its bytes */
	int64_t size;
};

struct archive_set {
	struct member *m;
	size_t n;
	char *docs[3]; /* index.json, oci-layout, manifest.json */
	size_t doclen[3];
};

static const char *const doc_names[] = {"index.json", "oci-layout", "manifest.json"};

static void set_free(struct archive_set *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->m[i].path);
	free(a->m);
	for (int i = 0; i < 3; i++)
		free(a->docs[i]);
}

static const struct member *find(const struct archive_set *a, const char *path)
{
	while (!strncmp(path, "./", 2))
		path += 2;
	for (size_t i = 0; i < a->n; i++)
		if (!strcmp(a->m[i].path, path))
			return &a->m[i];
	return NULL;
}

static int read_archive(struct jb_oci_store *s, const char *file, struct archive_set *set, struct jb_error *err)
{
	struct archive *ar = archive_read_new();
	if (!ar)
		return jb_oom(err);
	archive_read_support_format_tar(ar);
	archive_read_support_filter_gzip(ar);
	archive_read_support_filter_zstd(ar);
	archive_read_support_filter_none(ar);
	int rc = 0;
	if (archive_read_open_filename(ar, file, 256 * 1024) != ARCHIVE_OK) {
		rc = jb_err(err, EINVAL, "%s: %s", file, archive_error_string(ar));
		goto out;
	}
	struct archive_entry *e;
	int st;
	static char buf[256 * 1024];
	while ((st = archive_read_next_header(ar, &e)) == ARCHIVE_OK || st == ARCHIVE_WARN) {
		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		const char *path = archive_entry_pathname(e);
		while (path && !strncmp(path, "./", 2))
			path += 2;
		if (!path || !*path)
			continue;
		int doc = -1;
		for (int i = 0; i < 3; i++)
			if (!strcmp(path, doc_names[i]))
				doc = i;
		if (doc >= 0) {
			/* a document: into memory, bounded */
			int64_t sz = archive_entry_size(e);
			if (sz < 0 || sz > JB_OCI_MAX_DOC) {
				rc = jb_err(err, E2BIG, "%s: %s is larger than %u bytes", file, path, JB_OCI_MAX_DOC);
				goto out;
			}
			free(set->docs[doc]);
			set->docs[doc] = malloc((size_t)sz + 1);
			if (!set->docs[doc]) {
				rc = -ENOMEM;
				goto out;
			}
			la_ssize_t n = archive_read_data(ar, set->docs[doc], (size_t)sz);
			if (n != sz) {
				rc = jb_err(err, EIO, "%s: %s: %s", file, path, n < 0 ? archive_error_string(ar) : "short");
				goto out;
			}
			set->docs[doc][sz] = 0;
			set->doclen[doc] = (size_t)sz;
			if (doc != 2) /* docker's manifest.json is not an image blob */
				continue;
		}
		if (set->n == MAX_ENTRIES) {
			rc = jb_err(err, E2BIG, "%s: more than %d files", file, MAX_ENTRIES);
			goto out;
		}
		struct member *nm = realloc(set->m, (set->n + 1) * sizeof *nm);
		if (!nm) {
			rc = -ENOMEM;
			goto out;
		}
		set->m = nm;
		struct member *m = &set->m[set->n];
		memset(m, 0, sizeof *m);
		if (!(m->path = strdup(path))) {
			rc = -ENOMEM;
			goto out;
		}
		set->n++;
		if (doc == 2) {
			jb_oci_digest_of(set->docs[2], set->doclen[2], m->digest);
			continue;
		}
		struct jb_oci_blob_writer *w;
		if ((rc = jb_oci_blob_begin(s, NULL, -1, &w, err)) < 0)
			goto out;
		la_ssize_t n;
		while ((n = archive_read_data(ar, buf, sizeof buf)) > 0) {
			if ((rc = jb_oci_blob_write(w, buf, (size_t)n, err)) < 0)
				break;
			m->size += n;
		}
		if (rc == 0 && n < 0)
			rc = jb_err(err, EIO, "%s: %s: %s", file, path, archive_error_string(ar));
		if (rc < 0) {
			jb_oci_blob_abort(w);
			goto out;
		}
		if ((rc = jb_oci_blob_commit_as(w, m->digest, err)) < 0)
			goto out;
	}
	if (st != ARCHIVE_EOF)
		rc = jb_err(err, EINVAL, "%s: %s", file, archive_error_string(ar));
out:
	archive_read_free(ar);
	return rc;
}

/* An OCI archive: index.json names the image; each blob is blobs/ALG/HEX
 * and must hash to it. */
static int from_layout(struct jb_oci_store *s, const char *file, struct archive_set *set, const char *name,
		       char *ret_name, size_t nlen, struct jb_oci_desc *ret, struct jb_error *err)
{
	/* every blob under its claimed name, checked */
	for (size_t i = 0; i < set->n; i++)
		if (!strncmp(set->m[i].path, "blobs/sha256/", 13) && strcmp(set->m[i].path + 13, set->m[i].digest + 7))
			return jb_err(err, EBADMSG, "%s: %s hashes to %s", file, set->m[i].path, set->m[i].digest);
	json_t *j = json_loadb(set->docs[0], set->doclen[0], JSON_REJECT_DUPLICATES, NULL);
	json_t *arr = json_object_get(j, "manifests");
	if (!json_is_array(arr) || !json_array_size(arr)) {
		json_decref(j);
		return jb_err(err, EINVAL, "%s: index.json names no image", file);
	}
	/* the entry: the one named like the wanted name, or the only one */
	json_t *pick = json_array_size(arr) == 1 ? json_array_get(arr, 0) : NULL, *e;
	size_t i;
	json_array_foreach (arr, i, e) {
		const char *rn = json_string_value(
			json_object_get(json_object_get(e, "annotations"), "org.opencontainers.image.ref.name"));
		if (rn && name && (!strcmp(rn, name) || (strchr(name, ':') && !strcmp(rn, strrchr(name, ':') + 1))))
			pick = e;
		if (rn && !name && !ret_name[0] && (strchr(rn, '/') || strchr(rn, ':')))
			snprintf(ret_name, nlen, "%s", rn); /* a full name, not a bare tag */
	}
	if (!pick) {
		json_decref(j);
		return jb_err(err, EINVAL, "%s: holds %zu images; say which by NAME", file, json_array_size(arr));
	}
	const char *dg = json_string_value(json_object_get(pick, "digest"));
	const char *mt = json_string_value(json_object_get(pick, "mediaType"));
	char digest[JB_OCI_DIGEST_MAX];
	if (!dg || jb_oci_digest_check(dg) < 0 || strncmp(dg, "sha256:", 7)) {
		json_decref(j);
		return jb_err(err, EINVAL, "%s: index.json: a bad digest", file);
	}
	snprintf(digest, sizeof digest, "%s", dg);
	char mtype[128];
	snprintf(mtype, sizeof mtype, "%s", mt ? mt : JB_OCI_MT_MANIFEST);
	json_decref(j);
	/* follow indexes down to this host's manifest */
	for (int depth = 0; depth < 4; depth++) {
		char p[160];
		snprintf(p, sizeof p, "blobs/sha256/%s", digest + 7);
		const struct member *m = find(set, p);
		if (!m)
			return jb_err(err, ENOENT, "%s: %s is not in the archive", file, p);
		char *path = jb_oci_store_path(s, digest), *buf = NULL;
		FILE *f = path ? fopen(path, "re") : NULL;
		free(path);
		if (!f || m->size > JB_OCI_MAX_DOC || !(buf = malloc((size_t)m->size + 1)) ||
		    fread(buf, 1, (size_t)m->size, f) != (size_t)m->size) {
			if (f)
				fclose(f);
			free(buf);
			return jb_err(err, EIO, "%s: cannot read %s", file, digest);
		}
		fclose(f);
		struct jb_oci_manifest man;
		int rc = jb_oci_manifest_parse(buf, (size_t)m->size, NULL, &man, err);
		free(buf);
		if (rc < 0)
			return jb_err_prefix(err, "%s: %s", file, digest);
		if (man.kind == JB_OCI_KIND_MANIFEST) {
			ret->size = m->size;
			strcpy(ret->digest, digest);
			ret->media_type = strdup(man.media_type);
			jb_oci_manifest_free(&man);
			return ret->media_type ? 0 : -ENOMEM;
		}
		const struct jb_oci_desc *d = jb_oci_index_find(&man, "linux", jb_oci_host_arch(), NULL);
		if (!d) {
			jb_oci_manifest_free(&man);
			return jb_err(err, ENOENT, "%s: no linux/%s image in it", file, jb_oci_host_arch());
		}
		strcpy(digest, d->digest);
		jb_oci_manifest_free(&man);
	}
	return jb_err(err, EINVAL, "%s: indexes nested too deep", file);
}

/* A docker save tarball: manifest.json is [{Config, RepoTags, Layers}]. */
static int from_docker(struct jb_oci_store *s, const char *file, struct archive_set *set, char *ret_name,
		       size_t nlen, struct jb_oci_desc *ret, struct jb_error *err)
{
	json_t *j = json_loadb(set->docs[2], set->doclen[2], JSON_REJECT_DUPLICATES, NULL);
	json_t *img = json_array_get(j, 0);
	const char *cfg = json_string_value(json_object_get(img, "Config"));
	json_t *layers = json_object_get(img, "Layers");
	int rc = 0;
	if (json_array_size(j) != 1 || !cfg || !json_is_array(layers) || json_array_size(layers) > JB_OCI_MAX_LAYERS) {
		rc = jb_err(err, EINVAL, "%s: manifest.json does not describe one image (Config, Layers)", file);
		goto out;
	}
	const char *tag = json_string_value(json_array_get(json_object_get(img, "RepoTags"), 0));
	if (tag && !ret_name[0])
		snprintf(ret_name, nlen, "%s", tag);
	const struct member *cm = find(set, cfg);
	if (!cm) {
		rc = jb_err(err, ENOENT, "%s: its config %s is not in the archive", file, cfg);
		goto out;
	}
	json_t *ls = json_array();
	json_t *l;
	size_t i;
	json_array_foreach (layers, i, l) {
		const char *lp = json_string_value(l);
		const struct member *lm = lp ? find(set, lp) : NULL;
		if (!lm) {
			json_decref(ls);
			rc = jb_err(err, ENOENT, "%s: layer %s is not in the archive", file, lp ? lp : "?");
			goto out;
		}
		/* layer tars may be plain or compressed: the first bytes say */
		unsigned char magic[4] = {0};
		char *path = jb_oci_store_path(s, lm->digest);
		FILE *f = path ? fopen(path, "re") : NULL;
		free(path);
		if (f) {
			if (fread(magic, 1, 4, f) < 4)
				memset(magic, 0, sizeof magic);
			fclose(f);
		}
		const char *mt = magic[0] == 0x1f && magic[1] == 0x8b ? JB_OCI_MT_LAYER_GZIP
				 : magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd
				 ? JB_OCI_MT_LAYER_ZSTD
				 : JB_OCI_MT_LAYER;
		json_array_append_new(ls, json_pack("{s:s, s:s, s:I}", "mediaType", mt, "digest", lm->digest, "size",
						    (json_int_t)lm->size));
	}
	json_t *man = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:o}", "schemaVersion", 2, "mediaType",
				JB_OCI_MT_MANIFEST, "config", "mediaType", JB_OCI_MT_CONFIG, "digest", cm->digest, "size",
				(json_int_t)cm->size, "layers", ls);
	char *buf = man ? json_dumps(man, JSON_COMPACT) : NULL;
	json_decref(man);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	ret->size = (int64_t)strlen(buf);
	rc = oci_put_doc(s, buf, strlen(buf), ret->digest, err);
	free(buf);
	if (rc == 0 && !(ret->media_type = strdup(JB_OCI_MT_MANIFEST)))
		rc = -ENOMEM;
out:
	json_decref(j);
	return rc;
}

static int import(struct jb_oci_store *s, const char *path, const char *name, struct jb_oci_image *img,
		  struct jb_error *err);

int jb_oci_import(struct jb_oci_store *s, const char *path, const char *name, struct jb_oci_image *img,
		  struct jb_error *err)
{
	int busy = oci_busy_begin(s);
	int r = import(s, path, name, img, err);
	oci_busy_end(busy);
	return r;
}

static int import(struct jb_oci_store *s, const char *path, const char *name, struct jb_oci_image *img,
		  struct jb_error *err)
{
	struct archive_set set = {0};
	struct jb_oci_desc d = {0};
	char found[600] = "";
	memset(img, 0, sizeof *img);
	int rc = read_archive(s, path, &set, err);
	if (rc < 0)
		goto out;
	if (set.docs[0] && set.docs[1] && !set.docs[2])
		rc = from_layout(s, path, &set, name, found, sizeof found, &d, err);
	else if (set.docs[2])
		rc = from_docker(s, path, &set, found, sizeof found, &d, err);
	else
		rc = jb_err(err, EINVAL, "%s: neither an OCI archive (oci-layout, index.json) nor a docker save "
				     "tarball (manifest.json)", path);
	if (rc < 0)
		goto out;
	const char *use = name ? name : found[0] ? found : NULL;
	if (!use) {
		rc = jb_err(err, EINVAL, "%s: the archive does not name its image; give a NAME", path);
		goto out;
	}
	struct jb_oci_ref ref;
	char canon[600];
	if ((rc = jb_oci_ref_parse(use, &ref, err)) < 0)
		goto out;
	jb_oci_ref_name(&ref, canon, sizeof canon);
	/* the image must be whole and sound before it gets a name */
	struct jb_oci_image probe;
	if ((rc = jb_oci_store_tag(s, canon, &d, err)) < 0)
		goto out;
	if ((rc = jb_oci_image_open(s, canon, &probe, err)) < 0) {
		jb_oci_store_untag(s, canon, NULL);
		goto out;
	}
	for (size_t i = 0; i < probe.m.nlayers && rc == 0; i++) {
		char *p = jb_oci_store_path(s, probe.m.layers[i].digest);
		if (!p)
			rc = jb_err(err, ENOENT, "%s: layer %s is not in the archive", path, probe.m.layers[i].digest);
		free(p);
	}
	char **dirs = NULL;
	if (rc == 0 && (rc = jb_oci_image_layers(s, &probe, &dirs, err)) == 0)
		jb_oci_strv_free(dirs);
	if (rc < 0) {
		jb_oci_image_free(&probe);
		jb_oci_store_untag(s, canon, NULL);
		goto out;
	}
	*img = probe;
out:
	free(d.media_type);
	set_free(&set);
	return rc;
}
