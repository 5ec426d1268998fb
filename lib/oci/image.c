/* Images in the site's store: names (the layout's index.json, annotated
 * with org.opencontainers.image.ref.name as skopeo and umoci do), pull and
 * push through a registry, layers unpacked once, and collection of what no
 * name needs any more. */
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>

#include "oci-internal.h"

#define REF_NAME "org.opencontainers.image.ref.name"

/* ---- references ---- */

int jb_oci_ref_parse(const char *s, struct jb_oci_ref *r, struct jb_error *err)
{
	memset(r, 0, sizeof *r);
	size_t n = strlen(s);
	if (!n || n >= 600)
		return jb_err(err, EINVAL, "'%s' is not an image name", s);
	char buf[600];
	memcpy(buf, s, n + 1);
	char *at = strchr(buf, '@');
	if (at) {
		*at = 0;
		if (jb_oci_digest_check(at + 1) < 0)
			return jb_err(err, EINVAL, "'%s': '%s' is not a digest", s, at + 1);
		strcpy(r->digest, at + 1);
	}
	/* the first component is a registry host when it looks like one */
	char *path = buf, *slash = strchr(buf, '/');
	if (slash && (memchr(buf, '.', (size_t)(slash - buf)) || memchr(buf, ':', (size_t)(slash - buf)) ||
		      !strncmp(buf, "localhost/", 10))) {
		*slash = 0;
		if (strlen(buf) >= sizeof r->host)
			return jb_err(err, EINVAL, "'%s': the registry name is too long", s);
		strcpy(r->host, buf);
		path = slash + 1;
	}
	char *colon = strrchr(path, ':');
	if (colon) {
		*colon = 0;
		if (!colon[1] || strlen(colon + 1) >= sizeof r->tag)
			return jb_err(err, EINVAL, "'%s': '%s' is not a tag", s, colon + 1);
		strcpy(r->tag, colon + 1);
		for (const char *p = r->tag; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			      strchr("._-", *p)) || r->tag[0] == '.' || r->tag[0] == '-')
				return jb_err(err, EINVAL, "'%s': '%s' is not a tag", s, r->tag);
	}
	size_t pl = strlen(path);
	if (!pl || pl >= sizeof r->repo || path[0] == '/' || path[pl - 1] == '/' || strstr(path, "//") ||
	    strstr(path, ".."))
		return jb_err(err, EINVAL, "'%s' is not an image name", s);
	for (const char *p = path; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("._-/", *p)))
			return jb_err(err, EINVAL, "'%s': image names are lowercase letters, digits and . _ - /", s);
	strcpy(r->repo, path);
	if (!r->tag[0] && !r->digest[0])
		strcpy(r->tag, "latest");
	return 0;
}

void jb_oci_ref_name(const struct jb_oci_ref *r, char *out, size_t n)
{
	snprintf(out, n, "%s%s%s%s%s%s%s", r->host, r->host[0] ? "/" : "", r->repo, r->tag[0] ? ":" : "", r->tag,
		 r->digest[0] ? "@" : "", r->digest);
}

/* ---- the names: index.json ---- */

static json_t *index_read(struct jb_oci_store *s, struct jb_error *err, int *rc)
{
	char p[4200];
	snprintf(p, sizeof p, "%s/index.json", oci_store_dir(s));
	json_error_t je;
	json_t *j = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
	if (!j && access(p, F_OK) < 0)
		j = json_pack("{s:i, s:s, s:[]}", "schemaVersion", 2, "mediaType", JB_OCI_MT_INDEX, "manifests");
	else if (!j || !json_is_array(json_object_get(j, "manifests"))) {
		json_decref(j);
		*rc = jb_err(err, EINVAL, "%s: not an OCI index: %s", p, je.text);
		return NULL;
	}
	if (!j)
		*rc = -ENOMEM;
	return j;
}

static int index_write(struct jb_oci_store *s, json_t *j, struct jb_error *err)
{
	char p[4200], tmp[4300];
	snprintf(p, sizeof p, "%s/index.json", oci_store_dir(s));
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	if (json_dump_file(j, tmp, JSON_INDENT(2)) < 0)
		return jb_err(err, EIO, "%s: cannot write", tmp);
	int fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	if (rename(tmp, p) < 0)
		return jb_err(err, errno, "%s: %s", p, strerror(errno));
	return 0;
}

static const char *entry_name(json_t *e)
{
	return json_string_value(json_object_get(json_object_get(e, "annotations"), REF_NAME));
}

/* Take name out of the index's manifests; whether it was there. */
static bool index_remove(json_t *arr, const char *name)
{
	size_t i;
	json_t *e;
	json_array_foreach (arr, i, e)
		if (entry_name(e) && !strcmp(entry_name(e), name)) {
			json_array_remove(arr, i);
			return true;
		}
	return false;
}

int jb_oci_store_tag(struct jb_oci_store *s, const char *name, const struct jb_oci_desc *d, struct jb_error *err)
{
	int rc = 0;
	flock(oci_store_fd(s), LOCK_EX);
	json_t *j = index_read(s, err, &rc);
	if (j) {
		json_t *arr = json_object_get(j, "manifests");
		index_remove(arr, name);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:{s:s}}", "mediaType", d->media_type, "digest",
						     d->digest, "size", (json_int_t)d->size, "annotations", REF_NAME, name));
		rc = index_write(s, j, err);
		json_decref(j);
	}
	flock(oci_store_fd(s), LOCK_UN);
	return rc;
}

int jb_oci_store_untag(struct jb_oci_store *s, const char *name, struct jb_error *err)
{
	int rc = 0;
	flock(oci_store_fd(s), LOCK_EX);
	json_t *j = index_read(s, err, &rc);
	if (j) {
		rc = index_remove(json_object_get(j, "manifests"), name) ? index_write(s, j, err)
									  : jb_err(err, ENOENT, "%s: no such image", name);
		json_decref(j);
	}
	flock(oci_store_fd(s), LOCK_UN);
	return rc;
}

int jb_oci_store_list(struct jb_oci_store *s, struct jb_oci_named **ret, size_t *ret_n, struct jb_error *err)
{
	int rc = 0;
	flock(oci_store_fd(s), LOCK_SH);
	json_t *j = index_read(s, err, &rc);
	flock(oci_store_fd(s), LOCK_UN);
	if (!j)
		return rc;
	json_t *arr = json_object_get(j, "manifests"), *e;
	size_t i, n = 0;
	struct jb_oci_named *v = calloc(json_array_size(arr) + 1, sizeof *v);
	if (!v) {
		json_decref(j);
		return jb_oom(err);
	}
	json_array_foreach (arr, i, e) {
		const char *nm = entry_name(e), *dg = json_string_value(json_object_get(e, "digest"));
		const char *mt = json_string_value(json_object_get(e, "mediaType"));
		if (!nm || !dg || jb_oci_digest_check(dg) < 0)
			continue; /* an entry another tool wrote without a name */
		v[n].name = strdup(nm);
		v[n].desc.media_type = strdup(mt ? mt : JB_OCI_MT_MANIFEST);
		snprintf(v[n].desc.digest, sizeof v[n].desc.digest, "%s", dg);
		v[n].desc.size = json_integer_value(json_object_get(e, "size"));
		if (!v[n].name || !v[n].desc.media_type) {
			rc = -ENOMEM;
			n++;
			break;
		}
		n++;
	}
	json_decref(j);
	if (rc < 0) {
		jb_oci_named_free(v, n);
		return rc;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

void jb_oci_named_free(struct jb_oci_named *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		free(v[i].desc.media_type);
	}
	free(v);
}

/* ---- blobs as documents ---- */

/* A small blob (manifest, config) read whole and hashed again: what is used
 * is what the digest names, whatever happened to the disk since. */
int oci_read_doc(struct jb_oci_store *s, const char *digest, char **ret, size_t *ret_len, struct jb_error *err)
{
	char *p = jb_oci_store_path(s, digest);
	if (!p)
		return jb_err(err, ENOENT, "%s: not in the image store", digest);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	free(p);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return jb_err(err, e, "%s: %s", digest, strerror(e));
	}
	if (st.st_size > JB_OCI_MAX_DOC) {
		close(fd);
		return jb_err(err, E2BIG, "%s: %lld bytes, more than a document may have", digest, (long long)st.st_size);
	}
	char *buf = malloc((size_t)st.st_size + 1);
	int r = buf ? jb_read_full(fd, buf, (size_t)st.st_size) : -ENOMEM;
	close(fd);
	if (r < 0) {
		free(buf);
		return jb_err(err, -r, "%s: %s", digest, strerror(-r));
	}
	buf[st.st_size] = 0;
	char got[JB_OCI_DIGEST_MAX];
	jb_oci_digest_of(buf, (size_t)st.st_size, got);
	if (strcmp(got, digest)) {
		free(buf);
		return jb_err(err, EBADMSG, "%s: the stored bytes hash to %s (the store is damaged)", digest, got);
	}
	*ret = buf;
	*ret_len = (size_t)st.st_size;
	return 0;
}

int oci_put_doc(struct jb_oci_store *s, const char *buf, size_t len, char digest[JB_OCI_DIGEST_MAX],
		   struct jb_error *err)
{
	jb_oci_digest_of(buf, len, digest);
	char *have = jb_oci_store_path(s, digest);
	if (have) {
		free(have);
		return 0;
	}
	struct jb_oci_blob_writer *w;
	int r = jb_oci_blob_begin(s, digest, (int64_t)len, &w, err);
	if (r < 0)
		return r;
	if ((r = jb_oci_blob_write(w, buf, len, err)) < 0) {
		jb_oci_blob_abort(w);
		return r;
	}
	return jb_oci_blob_commit(w, err);
}

const char *jb_oci_host_arch(void)
{
	static const struct {
		const char *uname, *oci;
	} map[] = {{"x86_64", "amd64"}, {"aarch64", "arm64"}, {"ppc64le", "ppc64le"}, {"s390x", "s390x"},
		   {"riscv64", "riscv64"}};
	static char arch[72];
	struct utsname u;
	if (!arch[0] && uname(&u) == 0) {
		snprintf(arch, sizeof arch, "%s", u.machine);
		for (size_t i = 0; i < JB_ARRAY_SIZE(map); i++)
			if (!strcmp(u.machine, map[i].uname))
				snprintf(arch, sizeof arch, "%s", map[i].oci);
	}
	return arch;
}

/* Manifest and config of a manifest digest already stored. */
int oci_load_image(struct jb_oci_store *s, const struct jb_oci_desc *d, struct jb_oci_image *img,
		      struct jb_error *err)
{
	char *buf = NULL, *cbuf = NULL;
	size_t len, clen;
	int r = oci_read_doc(s, d->digest, &buf, &len, err);
	if (r == 0)
		r = jb_oci_manifest_parse(buf, len, d->media_type, &img->m, err);
	free(buf);
	if (r < 0)
		return r;
	if (img->m.kind != JB_OCI_KIND_MANIFEST)
		return jb_err(err, EINVAL, "%s: an index, not an image manifest", d->digest);
	if ((r = oci_read_doc(s, img->m.config.digest, &cbuf, &clen, err)) == 0)
		r = jb_oci_config_parse(cbuf, clen, &img->c, err);
	free(cbuf);
	if (r < 0)
		return r;
	if (img->c.ndiff_ids != img->m.nlayers)
		return jb_err(err, EINVAL, "%s: %zu layers but %zu diff_ids in the config", d->digest, img->m.nlayers,
			      img->c.ndiff_ids);
	snprintf(img->digest, sizeof img->digest, "%s", d->digest);
	img->manifest_size = d->size;
	img->manifest_mt = strdup(d->media_type);
	return img->manifest_mt ? 0 : -ENOMEM;
}

int jb_oci_image_open(struct jb_oci_store *s, const char *name, struct jb_oci_image *img, struct jb_error *err)
{
	memset(img, 0, sizeof *img);
	struct jb_oci_ref ref;
	int r = jb_oci_ref_parse(name, &ref, err);
	if (r < 0)
		return r;
	char canon[600];
	jb_oci_ref_name(&ref, canon, sizeof canon);
	struct jb_oci_named *v = NULL;
	size_t n = 0;
	if ((r = jb_oci_store_list(s, &v, &n, err)) < 0)
		return r;
	const struct jb_oci_desc *d = NULL;
	for (size_t i = 0; i < n && !d; i++)
		if (!strcmp(v[i].name, canon) || (ref.digest[0] && !strcmp(v[i].desc.digest, ref.digest)))
			d = &v[i].desc;
	if (!d)
		r = jb_err(err, ENOENT, "%s: no such image here (jumbo image pull %s)", canon, canon);
	else {
		snprintf(img->name, sizeof img->name, "%s", canon);
		r = oci_load_image(s, d, img, err);
	}
	jb_oci_named_free(v, n);
	if (r < 0)
		jb_oci_image_free(img);
	return r;
}

void jb_oci_image_free(struct jb_oci_image *img)
{
	jb_oci_manifest_free(&img->m);
	jb_oci_config_free(&img->c);
	free(img->manifest_mt);
	memset(img, 0, sizeof *img);
}

/* ---- layers unpacked once ---- */

int jb_oci_image_layers(struct jb_oci_store *s, const struct jb_oci_image *img, char ***ret, struct jb_error *err)
{
	char **dirs = calloc(img->m.nlayers + 1, sizeof *dirs);
	if (!dirs)
		return jb_oom(err);
	int rc = 0;
	uint64_t budget = oci_store_max_unpacked(s); /* for the layers unpacked here */
	int lfd = jb_mkdirs_beneath(oci_store_fd(s), "layers", 0700);
	if (lfd < 0) {
		free(dirs);
		return jb_err(err, -lfd, "%s/layers: %s", oci_store_dir(s), strerror(-lfd));
	}
	for (size_t i = 0; i < img->m.nlayers && rc == 0; i++) {
		const struct jb_oci_desc *l = &img->m.layers[i];
		const char *hex = l->digest + 7;
		if (asprintf(&dirs[i], "%s/layers/%s", oci_store_dir(s), hex) < 0) {
			dirs[i] = NULL;
			rc = -ENOMEM;
			break;
		}
		struct stat st;
		char side[80], seen[JB_OCI_DIGEST_MAX] = "";
		snprintf(side, sizeof side, "%s.diff_id", hex);
		if (fstatat(lfd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
			/* unpacked before: its tar's digest was kept beside it, and
			 * must be what this image's config says too */
			int sfd = openat(lfd, side, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			ssize_t n = sfd >= 0 ? read(sfd, seen, sizeof seen - 1) : -1;
			if (sfd >= 0)
				close(sfd);
			seen[n > 0 ? n : 0] = 0;
			if (!strcmp(seen, img->c.diff_ids[i]))
				continue;
			if (seen[0]) {
				rc = jb_err(err, EBADMSG, "layer %s: its tar hashes to %s, the config says %s", l->digest,
					    seen, img->c.diff_ids[i]);
				break;
			}
			jb_remove_tree(lfd, hex); /* no record: unpack it again */
		}
		enum jb_oci_compression c;
		if (jb_oci_layer_compression(l->media_type, &c) < 0) {
			rc = jb_err(err, ENOTSUP, "layer %s: %s is not a layer type jumbo unpacks", l->digest, l->media_type);
			break;
		}
		char *blob = jb_oci_store_path(s, l->digest);
		int bfd = blob ? open(blob, O_RDONLY | O_CLOEXEC) : -1;
		free(blob);
		if (bfd < 0) {
			rc = jb_err(err, ENOENT, "layer %s is missing from the store", l->digest);
			break;
		}
		char tmp[64];
		snprintf(tmp, sizeof tmp, ".tmp.%.16s.%d", hex, (int)getpid());
		jb_remove_tree(lfd, tmp);
		int tfd = -1;
		if (mkdirat(lfd, tmp, 0755) < 0 || (tfd = openat(lfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
			rc = jb_err(err, errno, "%s/layers/%s: %s", oci_store_dir(s), tmp, strerror(errno));
			close(bfd);
			break;
		}
		char diff_id[JB_OCI_DIGEST_MAX];
		rc = jb_oci_layer_unpack(bfd, c, tfd, diff_id, &budget, err);
		if (rc == -EFBIG)
			jb_err_prefix(err, "image %s: layer %s", img->name, l->digest);
		close(bfd);
		if (rc == 0 && strcmp(diff_id, img->c.diff_ids[i]))
			rc = jb_err(err, EBADMSG, "layer %s: its tar hashes to %s, the config says %s", l->digest, diff_id,
				    img->c.diff_ids[i]);
		if (rc == 0) {
			int sfd = openat(lfd, side, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
			if (sfd < 0 || jb_write_full(sfd, diff_id, strlen(diff_id)) < 0)
				rc = jb_err(err, EIO, "%s/layers/%s: cannot write", oci_store_dir(s), side);
			if (sfd >= 0)
				close(sfd);
		}
		if (rc == 0 && syncfs(tfd) < 0)
			rc = jb_err(err, errno, "layer %s: %s", l->digest, strerror(errno));
		close(tfd);
		if (rc == 0 && renameat(lfd, tmp, lfd, hex) < 0 && errno != EEXIST && errno != ENOTEMPTY)
			rc = jb_err(err, errno, "layer %s: %s", l->digest, strerror(errno));
		jb_remove_tree(lfd, tmp); /* a failure's half, or the loser of a race */
	}
	close(lfd);
	if (rc < 0) {
		jb_oci_strv_free(dirs);
		return rc;
	}
	*ret = dirs;
	return 0;
}

void jb_oci_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* ---- collection ---- */

struct set {
	char **v;
	size_t n, cap;
};

static int set_add(struct set *st, const char *hex)
{
	if (st->n == st->cap) {
		size_t nc = st->cap ? st->cap * 2 : 64;
		char **nv = realloc(st->v, nc * sizeof *nv);
		if (!nv)
			return -ENOMEM;
		st->v = nv;
		st->cap = nc;
	}
	return (st->v[st->n++] = strdup(hex)) ? 0 : -ENOMEM;
}

static bool set_has(const struct set *st, const char *hex)
{
	for (size_t i = 0; i < st->n; i++)
		if (!strcmp(st->v[i], hex))
			return true;
	return false;
}

static int prune(struct jb_oci_store *s, size_t *ret_removed, struct jb_error *err);

/* Remove the blobs and unpacked layers that no named image needs.  Temporary
 * files of a pull in progress are left alone unless a day old, and so are
 * the layers a running job has mounted (its supervisor holds their record
 * HEX.diff_id locked). */
int jb_oci_store_prune(struct jb_oci_store *s, size_t *ret_removed, struct jb_error *err)
{
	char bp[4200];
	snprintf(bp, sizeof bp, "%s/.busy", oci_store_dir(s));
	int busy = open(bp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (busy >= 0 && flock(busy, LOCK_EX | LOCK_NB) < 0) {
		close(busy);
		return jb_err(err, EBUSY, "a pull, import or build is writing to the store: nothing removed now "
					  "(jumbo image prune later)");
	}
	int r = prune(s, ret_removed, err);
	if (busy >= 0)
		close(busy);
	return r;
}

static int prune(struct jb_oci_store *s, size_t *ret_removed, struct jb_error *err)
{
	struct set keep = {0};
	struct jb_oci_named *v = NULL;
	size_t n = 0, removed = 0;
	int rc = jb_oci_store_list(s, &v, &n, err);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char *buf;
		size_t len;
		struct jb_oci_manifest m;
		if ((rc = set_add(&keep, v[i].desc.digest + 7)) < 0)
			break;
		if (oci_read_doc(s, v[i].desc.digest, &buf, &len, NULL) < 0)
			continue; /* a damaged entry keeps what it can */
		if (jb_oci_manifest_parse(buf, len, NULL, &m, NULL) == 0) {
			if (m.kind == JB_OCI_KIND_MANIFEST) {
				rc = set_add(&keep, m.config.digest + 7);
				for (size_t k = 0; rc == 0 && k < m.nlayers; k++)
					rc = set_add(&keep, m.layers[k].digest + 7);
			} else {
				for (size_t k = 0; rc == 0 && k < m.nmanifests; k++)
					rc = set_add(&keep, m.manifests[k].digest + 7);
			}
			jb_oci_manifest_free(&m);
		}
		free(buf);
	}
	jb_oci_named_free(v, n);
	const char *dirs[] = {"blobs/sha256", "layers"};
	time_t now = time(NULL);
	for (size_t k = 0; rc == 0 && k < JB_ARRAY_SIZE(dirs); k++) {
		int dfd = jb_open_beneath(oci_store_fd(s), dirs[k], O_RDONLY | O_DIRECTORY, 0);
		if (dfd < 0)
			continue;
		DIR *d = fdopendir(dfd);
		if (!d) {
			close(dfd);
			rc = -ENOMEM;
			break;
		}
		struct dirent *de;
		while ((de = readdir(d))) {
			struct stat st;
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char base[256];
			snprintf(base, sizeof base, "%s", de->d_name);
			char *dot = k == 1 ? strstr(base, ".diff_id") : NULL;
			if (dot && dot != base && !dot[8])
				*dot = 0; /* an unpacked layer's record goes with it */
			if (set_has(&keep, base))
				continue;
			if (k == 1 && base[0] != '.') {
				/* a layer a running job has mounted holds its record shared */
				char rec[300];
				snprintf(rec, sizeof rec, "%s.diff_id", base);
				int lfd = openat(dirfd(d), rec, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
				bool busy = lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) < 0;
				if (lfd >= 0)
					close(lfd);
				if (busy)
					continue;
			}
			if (de->d_name[0] == '.' &&
			    (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || now - st.st_mtime < 86400))
				continue;
			if (jb_remove_tree(dirfd(d), de->d_name) == 0 && k == 0)
				removed++;
		}
		closedir(d);
	}
	for (size_t i = 0; i < keep.n; i++)
		free(keep.v[i]);
	free(keep.v);
	if (rc == 0 && ret_removed)
		*ret_removed = removed;
	return rc;
}
