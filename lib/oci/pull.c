/* Images to and from registries: pull (this host's platform, every blob
 * through its digest check, every layer unpacked and checked before the
 * name is written), push (blobs the registry lacks, mounted from another of
 * its repositories when the store has seen them there), and the store's
 * lock against prune while blobs without a name are being written. */
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "oci-internal.h"

/* ---- where blobs were seen: registry repositories, for cross-repository
 * mounts on push (DIR/blob-locations: "DIGEST HOST REPO" lines) ---- */

#define MAX_LOCATIONS 20000

static void locations_add(struct jb_oci_store *s, const char *host, const char *repo, const char *const *digests,
			  size_t n)
{
	char p[4200], line[1024];
	snprintf(p, sizeof p, "%s/blob-locations", oci_store_dir(s));
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	flock(fd, LOCK_EX);
	FILE *f = fdopen(fd, "r+");
	if (!f) {
		close(fd);
		return;
	}
	size_t lines = 0;
	bool *have = calloc(n, sizeof *have);
	while (have && fgets(line, sizeof line, f)) {
		lines++;
		char d[JB_OCI_DIGEST_MAX], h[300], rp[300];
		if (sscanf(line, "%135s %299s %299s", d, h, rp) != 3 || strcmp(h, host) || strcmp(rp, repo))
			continue;
		for (size_t i = 0; i < n; i++)
			have[i] |= !strcmp(d, digests[i]);
	}
	if (lines > MAX_LOCATIONS && ftruncate(fd, 0) == 0)
		rewind(f); /* forget them all now and then: it is only a hint */
	fseek(f, 0, SEEK_END);
	for (size_t i = 0; have && i < n; i++)
		if (!have[i])
			fprintf(f, "%s %s %s\n", digests[i], host, repo);
	free(have);
	fclose(f);
}

/* Another repository of host where digest was seen, or false. */
static bool location_find(struct jb_oci_store *s, const char *host, const char *digest, const char *not_repo,
			  char *repo, size_t n)
{
	char p[4200], line[1024];
	snprintf(p, sizeof p, "%s/blob-locations", oci_store_dir(s));
	FILE *f = fopen(p, "re");
	bool found = false;
	while (f && !found && fgets(line, sizeof line, f)) {
		char d[JB_OCI_DIGEST_MAX], h[300], rp[300];
		if (sscanf(line, "%135s %299s %299s", d, h, rp) == 3 && !strcmp(d, digest) && !strcmp(h, host) &&
		    strcmp(rp, not_repo)) {
			snprintf(repo, n, "%s", rp);
			found = true;
		}
	}
	if (f)
		fclose(f);
	return found;
}

static void locations_of_image(struct jb_oci_store *s, const struct jb_oci_ref *ref, const struct jb_oci_image *img)
{
	const char *d[JB_OCI_MAX_LAYERS + 1];
	size_t n = 0;
	d[n++] = img->m.config.digest;
	for (size_t i = 0; i < img->m.nlayers; i++)
		d[n++] = img->m.layers[i].digest;
	locations_add(s, ref->host, ref->repo, d, n);
}

/* ---- pull and push ---- */

static int open_registry(const struct jb_oci_ref *ref, const struct jb_registry_opts *o, struct jb_registry **r,
			 struct jb_error *err)
{
	if (!ref->host[0])
		return jb_err(err, EINVAL, "%s: no registry in the name (HOST[:PORT]/NAME[:TAG])", ref->repo);
	return jb_registry_open(ref->host, o, r, err);
}

/* Writers of blobs not yet named (pull, import, build) hold DIR/.busy
 * shared while they work; prune takes it exclusive or leaves everything. */
int oci_busy_begin(struct jb_oci_store *s)
{
	char p[4200];
	snprintf(p, sizeof p, "%s/.busy", oci_store_dir(s));
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		flock(fd, LOCK_SH);
	return fd;
}

void oci_busy_end(int fd)
{
	if (fd >= 0)
		close(fd);
}

static int pull(struct jb_oci_store *s, const char *name, const struct jb_registry_opts *o, struct jb_oci_image *img,
		struct jb_error *err);

int jb_oci_pull(struct jb_oci_store *s, const char *name, const struct jb_registry_opts *o, struct jb_oci_image *img,
		struct jb_error *err)
{
	int busy = oci_busy_begin(s);
	int r = pull(s, name, o, img, err);
	oci_busy_end(busy);
	return r;
}

static int pull(struct jb_oci_store *s, const char *name, const struct jb_registry_opts *o, struct jb_oci_image *img,
		struct jb_error *err)
{
	struct jb_oci_ref ref;
	struct jb_registry *r = NULL;
	char *buf = NULL, *mt = NULL;
	size_t len;
	struct jb_oci_manifest m = {0};
	struct jb_oci_desc d = {0};
	memset(img, 0, sizeof *img);
	int rc = jb_oci_ref_parse(name, &ref, err);
	if (rc < 0 || (rc = open_registry(&ref, o, &r, err)) < 0)
		return rc;
	rc = jb_registry_manifest_get(r, ref.repo, ref.digest[0] ? ref.digest : ref.tag, &buf, &len, &mt, d.digest, err);
	if (rc < 0 || (rc = jb_oci_manifest_parse(buf, len, mt[0] ? mt : NULL, &m, err)) < 0)
		goto out;
	if (m.kind == JB_OCI_KIND_INDEX) {
		/* a multi-platform image: this host's */
		const struct jb_oci_desc *pick = jb_oci_index_find(&m, "linux", jb_oci_host_arch(), NULL);
		if (!pick) {
			rc = jb_err(err, ENOENT, "%s: no linux/%s image in its index", name, jb_oci_host_arch());
			goto out;
		}
		char want[JB_OCI_DIGEST_MAX];
		strcpy(want, pick->digest);
		jb_oci_manifest_free(&m);
		free(buf);
		free(mt);
		buf = mt = NULL;
		rc = jb_registry_manifest_get(r, ref.repo, want, &buf, &len, &mt, d.digest, err);
		if (rc < 0 || (rc = jb_oci_manifest_parse(buf, len, mt[0] ? mt : NULL, &m, err)) < 0)
			goto out;
		if (m.kind != JB_OCI_KIND_MANIFEST) {
			rc = jb_err(err, EINVAL, "%s: its index points at another index", name);
			goto out;
		}
	}
	for (size_t i = 0; i < m.nlayers; i++) {
		enum jb_oci_compression c;
		if (jb_oci_layer_compression(m.layers[i].media_type, &c) < 0) {
			rc = jb_err(err, ENOTSUP, "%s: layer %zu is %s, which jumbo does not unpack", name, i + 1,
				    m.layers[i].media_type);
			goto out;
		}
	}
	/* config, then layers; what the store has already is not fetched */
	const struct jb_oci_desc *need[JB_OCI_MAX_LAYERS + 1];
	size_t nneed = 0;
	need[nneed++] = &m.config;
	for (size_t i = 0; i < m.nlayers; i++)
		need[nneed++] = &m.layers[i];
	bool fresh[JB_OCI_MAX_LAYERS + 2] = {0};
	for (size_t i = 0; i < nneed; i++) {
		char *have = jb_oci_store_path(s, need[i]->digest);
		if (have) {
			free(have);
			continue;
		}
		if ((rc = jb_registry_blob_get(r, ref.repo, need[i], s, err)) < 0)
			goto forget;
		fresh[i] = true;
	}
	char *had = jb_oci_store_path(s, d.digest);
	fresh[nneed] = !had;
	free(had);
	if ((rc = oci_put_doc(s, buf, len, d.digest, err)) < 0)
		goto forget;
	d.media_type = m.media_type;
	d.size = (int64_t)len;
	char canon[600];
	jb_oci_ref_name(&ref, canon, sizeof canon);
	snprintf(img->name, sizeof img->name, "%s", canon);
	/* unpacked (and so checked entry by entry, against the diff_ids)
	 * before it gets a name */
	char **dirs = NULL;
	if ((rc = oci_load_image(s, &d, img, err)) < 0 || (rc = jb_oci_image_layers(s, img, &dirs, err)) < 0)
		goto forget;
	jb_oci_strv_free(dirs);
	rc = jb_oci_store_tag(s, canon, &d, err);
	if (rc == 0)
		locations_of_image(s, &ref, img);
forget:
	/* a failed pull takes away the blobs it brought */
	for (size_t i = 0; rc < 0 && i <= nneed; i++) {
		if (!fresh[i])
			continue;
		char *p = jb_oci_store_path(s, i < nneed ? need[i]->digest : d.digest);
		if (p)
			unlink(p);
		free(p);
	}
out:
	jb_oci_manifest_free(&m);
	free(buf);
	free(mt);
	jb_registry_close(r);
	if (rc < 0)
		jb_oci_image_free(img);
	return rc;
}

int jb_oci_push(struct jb_oci_store *s, const char *local, const char *remote, const struct jb_registry_opts *o,
		size_t chunk, char ret_digest[JB_OCI_DIGEST_MAX], struct jb_oci_push_stats *stats, struct jb_error *err)
{
	struct jb_oci_push_stats st = {0};
	struct jb_oci_image img;
	struct jb_oci_ref ref;
	struct jb_registry *r = NULL;
	int rc = jb_oci_ref_parse(remote, &ref, err);
	if (rc < 0)
		return rc;
	if ((rc = jb_oci_image_open(s, local, &img, err)) < 0)
		return rc;
	if ((rc = open_registry(&ref, o, &r, err)) < 0)
		goto out;
	const struct jb_oci_desc *blobs[JB_OCI_MAX_LAYERS + 1];
	size_t nb = 0;
	for (size_t i = 0; i < img.m.nlayers; i++)
		blobs[nb++] = &img.m.layers[i];
	blobs[nb++] = &img.m.config;
	for (size_t i = 0; i < nb; i++) {
		char *p = jb_oci_store_path(s, blobs[i]->digest);
		int fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
		free(p);
		if (fd < 0) {
			rc = jb_err(err, ENOENT, "%s: blob %s is missing from the store", local, blobs[i]->digest);
			goto out;
		}
		char from[300];
		bool known = location_find(s, ref.host, blobs[i]->digest, ref.repo, from, sizeof from);
		rc = jb_registry_blob_put(r, ref.repo, blobs[i]->digest, fd, blobs[i]->size, chunk, known ? from : NULL,
					  err);
		close(fd);
		if (rc < 0)
			goto out;
		if (rc == JB_BLOB_SENT) {
			st.sent++;
			st.bytes_sent += (uint64_t)blobs[i]->size;
		} else if (rc == JB_BLOB_PRESENT) {
			st.present++;
		} else {
			st.mounted++;
		}
		rc = 0;
	}
	char *buf = NULL;
	size_t len;
	if ((rc = oci_read_doc(s, img.digest, &buf, &len, err)) < 0)
		goto out;
	rc = jb_registry_manifest_put(r, ref.repo, ref.digest[0] ? ref.digest : ref.tag, buf, len, img.manifest_mt,
				      ret_digest, err);
	free(buf);
	if (rc == 0)
		locations_of_image(s, &ref, &img);
	if (rc == 0 && stats)
		*stats = st;
out:
	jb_registry_close(r);
	jb_oci_image_free(&img);
	return rc;
}

