/* OCI image documents: digests, descriptors, manifests, indexes, configs
 * (image-spec v1.1 and Docker's schema 2), parsed from untrusted bytes. */
#include <jansson.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci-internal.h"

int jb_oci_digest_check(const char *d)
{
	size_t hex;
	if (!strncmp(d, "sha256:", 7))
		hex = 64, d += 7;
	else if (!strncmp(d, "sha512:", 7))
		hex = 128, d += 7;
	else
		return -EINVAL;
	for (size_t i = 0; i < hex; i++)
		if (!((d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f')))
			return -EINVAL;
	return d[hex] ? -EINVAL : 0;
}

void oci_sha256_text(const unsigned char md[32], char out[JB_OCI_DIGEST_MAX])
{
	memcpy(out, "sha256:", 7);
	jb_hex(md, 32, out + 7);
}

void jb_oci_digest_of(const void *p, size_t n, char out[JB_OCI_DIGEST_MAX])
{
	unsigned char md[32];
	unsigned int mdl = 0;
	EVP_Digest(p, n, md, &mdl, EVP_sha256(), NULL);
	oci_sha256_text(md, out);
}

int jb_oci_layer_compression(const char *mt, enum jb_oci_compression *c)
{
	static const struct {
		const char *mt;
		enum jb_oci_compression c;
	} known[] = {
		{JB_OCI_MT_LAYER, JB_OCI_TAR},
		{JB_OCI_MT_LAYER_GZIP, JB_OCI_GZIP},
		{JB_OCI_MT_LAYER_ZSTD, JB_OCI_ZSTD},
		{JB_DOCKER_MT_LAYER, JB_OCI_GZIP},
		{"application/vnd.docker.image.rootfs.diff.tar", JB_OCI_TAR},
	};
	for (size_t i = 0; i < sizeof known / sizeof *known; i++)
		if (!strcmp(mt, known[i].mt)) {
			*c = known[i].c;
			return 0;
		}
	return -ENOTSUP;
}

/* ---- helpers: fields of a JSON object, each checked ---- */

static int bad(struct jb_error *err, const char *what, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(struct jb_error *err, const char *what, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return jb_err(err, EINVAL, "%s: %s", what, msg);
}

/* A string field: *out is a copy (NULL when absent and optional). */
static int get_str(json_t *o, const char *key, bool required, char **out, const char *what, struct jb_error *err)
{
	*out = NULL;
	json_t *v = json_object_get(o, key);
	if (!v)
		return required ? bad(err, what, "\"%s\" is missing", key) : 0;
	if (!json_is_string(v))
		return bad(err, what, "\"%s\" is not a string", key);
	if (memchr(json_string_value(v), 0, json_string_length(v)))
		return bad(err, what, "\"%s\" holds a NUL byte", key);
	if (!(*out = strdup(json_string_value(v))))
		return jb_oom(err);
	return 0;
}

/* An array of strings: a NULL-terminated copy (empty when absent or null). */
static int get_strv(json_t *o, const char *key, char ***out, size_t *n, const char *what, struct jb_error *err)
{
	*out = NULL;
	json_t *v = json_object_get(o, key);
	size_t k = 0;
	if (v && !json_is_null(v) && !json_is_array(v))
		return bad(err, what, "\"%s\" is not an array", key);
	size_t len = v && json_is_array(v) ? json_array_size(v) : 0;
	if (len > 65536)
		return bad(err, what, "\"%s\" has %zu entries", key, len);
	char **a = calloc(len + 1, sizeof *a);
	if (!a)
		return jb_oom(err);
	for (; k < len; k++) {
		json_t *e = json_array_get(v, k);
		if (!json_is_string(e) || memchr(json_string_value(e), 0, json_string_length(e))) {
			for (size_t i = 0; i < k; i++)
				free(a[i]);
			free(a);
			return bad(err, what, "\"%s\"[%zu] is not a string", key, k);
		}
		if (!(a[k] = strdup(json_string_value(e)))) {
			for (size_t i = 0; i < k; i++)
				free(a[i]);
			free(a);
			return jb_oom(err);
		}
	}
	*out = a;
	if (n)
		*n = k;
	return 0;
}

static void strv_free(char **a)
{
	for (size_t i = 0; a && a[i]; i++)
		free(a[i]);
	free(a);
}

static void desc_free(struct jb_oci_desc *d)
{
	free(d->media_type);
	free(d->os);
	free(d->arch);
	free(d->variant);
	memset(d, 0, sizeof *d);
}

static int parse_desc(json_t *o, struct jb_oci_desc *d, bool platform, const char *what, struct jb_error *err)
{
	memset(d, 0, sizeof *d);
	if (!json_is_object(o))
		return bad(err, what, "not an object");
	int r = get_str(o, "mediaType", true, &d->media_type, what, err);
	if (r < 0)
		return r;
	json_t *dg = json_object_get(o, "digest");
	if (!json_is_string(dg) || json_string_length(dg) >= JB_OCI_DIGEST_MAX ||
	    jb_oci_digest_check(json_string_value(dg)) < 0)
		return bad(err, what, "\"digest\" is missing or not sha256:/sha512: and lowercase hex");
	strcpy(d->digest, json_string_value(dg));
	json_t *sz = json_object_get(o, "size");
	if (!json_is_integer(sz) || json_integer_value(sz) < 0)
		return bad(err, what, "\"size\" is missing or not a non-negative integer");
	d->size = json_integer_value(sz);
	json_t *p = json_object_get(o, "platform");
	if (platform && p) {
		if (!json_is_object(p))
			return bad(err, what, "\"platform\" is not an object");
		if ((r = get_str(p, "os", true, &d->os, what, err)) < 0 ||
		    (r = get_str(p, "architecture", true, &d->arch, what, err)) < 0 ||
		    (r = get_str(p, "variant", false, &d->variant, what, err)) < 0)
			return r;
	}
	return 0;
}

static int parse_descs(json_t *o, const char *key, size_t max, struct jb_oci_desc **out, size_t *n, bool platform,
		       struct jb_error *err)
{
	json_t *a = json_object_get(o, key);
	*out = NULL;
	*n = 0;
	if (!json_is_array(a))
		return bad(err, key, "missing or not an array");
	size_t len = json_array_size(a);
	if (len > max)
		return jb_err(err, E2BIG, "%s: %zu entries, more than %zu", key, len, max);
	struct jb_oci_desc *v = calloc(len ? len : 1, sizeof *v);
	if (!v)
		return jb_oom(err);
	*out = v;
	for (size_t i = 0; i < len; i++) {
		char what[64];
		snprintf(what, sizeof what, "%s[%zu]", key, i);
		int r = parse_desc(json_array_get(a, i), &v[i], platform, what, err);
		*n = i + 1; /* freed by the caller, complete or not */
		if (r < 0)
			return r;
	}
	return 0;
}

static json_t *load(const char *buf, size_t len, const char *what, int *rc, struct jb_error *err)
{
	if (len > JB_OCI_MAX_DOC) {
		*rc = jb_err(err, E2BIG, "%s of %zu bytes exceeds the limit of %u", what, len, JB_OCI_MAX_DOC);
		return NULL;
	}
	json_error_t je;
	json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		*rc = jb_err(err, EINVAL, "%s is not valid JSON: %s (line %d)", what, je.text, je.line);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		*rc = jb_err(err, EINVAL, "%s is not a JSON object", what);
		return NULL;
	}
	return o;
}

int jb_oci_manifest_parse(const char *buf, size_t len, const char *ctype, struct jb_oci_manifest *m,
			  struct jb_error *err)
{
	memset(m, 0, sizeof *m);
	int r;
	json_t *o = load(buf, len, "manifest", &r, err);
	if (!o)
		return r;
	json_t *sv = json_object_get(o, "schemaVersion");
	if (!json_is_integer(sv) || json_integer_value(sv) != 2) {
		r = bad(err, "manifest", "\"schemaVersion\" is not 2");
		goto out;
	}
	char *mt = NULL;
	if ((r = get_str(o, "mediaType", false, &mt, "manifest", err)) < 0)
		goto out;
	bool has_layers = json_object_get(o, "layers") != NULL, has_manifests = json_object_get(o, "manifests") != NULL;
	const char *t = mt ? mt : ctype;
	if (!t) /* OCI documents may leave mediaType out: go by their shape */
		t = has_manifests && !has_layers ? JB_OCI_MT_INDEX : JB_OCI_MT_MANIFEST;
	if (mt && ctype && strcmp(mt, ctype)) {
		r = bad(err, "manifest", "served as %s but says it is %s", ctype, mt);
		free(mt);
		goto out;
	}
	if (!(m->media_type = mt ? mt : strdup(t))) {
		r = -ENOMEM;
		goto out;
	}
	if (!strcmp(t, JB_OCI_MT_MANIFEST) || !strcmp(t, JB_DOCKER_MT_MANIFEST)) {
		m->kind = JB_OCI_KIND_MANIFEST;
		if (has_manifests) {
			r = bad(err, "manifest", "an image manifest with \"manifests\"");
			goto out;
		}
		if ((r = parse_desc(json_object_get(o, "config"), &m->config, false, "config", err)) < 0 ||
		    (r = parse_descs(o, "layers", JB_OCI_MAX_LAYERS, &m->layers, &m->nlayers, false, err)) < 0)
			goto out;
	} else if (!strcmp(t, JB_OCI_MT_INDEX) || !strcmp(t, JB_DOCKER_MT_LIST)) {
		m->kind = JB_OCI_KIND_INDEX;
		if (has_layers) {
			r = bad(err, "manifest", "an index with \"layers\"");
			goto out;
		}
		if ((r = parse_descs(o, "manifests", JB_OCI_MAX_MANIFESTS, &m->manifests, &m->nmanifests, true, err)) < 0)
			goto out;
	} else {
		r = bad(err, "manifest", "unsupported media type %s", t);
		goto out;
	}
	r = 0;
out:
	json_decref(o);
	if (r < 0)
		jb_oci_manifest_free(m);
	return r;
}

void jb_oci_manifest_free(struct jb_oci_manifest *m)
{
	free(m->media_type);
	desc_free(&m->config);
	for (size_t i = 0; i < m->nlayers; i++)
		desc_free(&m->layers[i]);
	free(m->layers);
	for (size_t i = 0; i < m->nmanifests; i++)
		desc_free(&m->manifests[i]);
	free(m->manifests);
	memset(m, 0, sizeof *m);
}

const struct jb_oci_desc *jb_oci_index_find(const struct jb_oci_manifest *m, const char *os, const char *arch,
					    const char *variant)
{
	for (size_t i = 0; i < m->nmanifests; i++) {
		const struct jb_oci_desc *d = &m->manifests[i];
		if (d->os && d->arch && !strcmp(d->os, os) && !strcmp(d->arch, arch) &&
		    (!variant || (d->variant && !strcmp(d->variant, variant))))
			return d;
	}
	return NULL;
}

int jb_oci_config_parse(const char *buf, size_t len, struct jb_oci_config *c, struct jb_error *err)
{
	memset(c, 0, sizeof *c);
	int r;
	json_t *o = load(buf, len, "image config", &r, err);
	if (!o)
		return r;
	if ((r = get_str(o, "os", true, &c->os, "image config", err)) < 0 ||
	    (r = get_str(o, "architecture", true, &c->arch, "image config", err)) < 0 ||
	    (r = get_str(o, "variant", false, &c->variant, "image config", err)) < 0)
		goto out;
	json_t *cfg = json_object_get(o, "config");
	if (cfg && !json_is_null(cfg) && !json_is_object(cfg)) {
		r = bad(err, "image config", "\"config\" is not an object");
		goto out;
	}
	json_t *none = json_object();
	json_t *k = cfg && json_is_object(cfg) ? cfg : none;
	if ((r = get_strv(k, "Env", &c->env, NULL, "config", err)) < 0 ||
	    (r = get_strv(k, "Entrypoint", &c->entrypoint, NULL, "config", err)) < 0 ||
	    (r = get_strv(k, "Cmd", &c->cmd, NULL, "config", err)) < 0 ||
	    (r = get_str(k, "WorkingDir", false, &c->workdir, "config", err)) < 0 ||
	    (r = get_str(k, "User", false, &c->user, "config", err)) < 0) {
		json_decref(none);
		goto out;
	}
	json_decref(none);
	json_t *rootfs = json_object_get(o, "rootfs");
	char *type = NULL;
	if (!json_is_object(rootfs)) {
		r = bad(err, "image config", "\"rootfs\" is missing");
		goto out;
	}
	if ((r = get_str(rootfs, "type", true, &type, "rootfs", err)) < 0)
		goto out;
	bool layers = !strcmp(type, "layers");
	free(type);
	if (!layers) {
		r = bad(err, "rootfs", "\"type\" is not \"layers\"");
		goto out;
	}
	if ((r = get_strv(rootfs, "diff_ids", &c->diff_ids, &c->ndiff_ids, "rootfs", err)) < 0)
		goto out;
	if (c->ndiff_ids > JB_OCI_MAX_LAYERS) {
		r = jb_err(err, E2BIG, "rootfs: %zu layers, more than %u", c->ndiff_ids, JB_OCI_MAX_LAYERS);
		goto out;
	}
	for (size_t i = 0; i < c->ndiff_ids; i++)
		if (jb_oci_digest_check(c->diff_ids[i]) < 0) {
			r = bad(err, "rootfs", "diff_ids[%zu] is not a sha256:/sha512: digest", i);
			goto out;
		}
	r = 0;
out:
	json_decref(o);
	if (r < 0)
		jb_oci_config_free(c);
	return r;
}

void jb_oci_config_free(struct jb_oci_config *c)
{
	free(c->os);
	free(c->arch);
	free(c->variant);
	strv_free(c->env);
	strv_free(c->entrypoint);
	strv_free(c->cmd);
	free(c->workdir);
	free(c->user);
	strv_free(c->diff_ids);
	memset(c, 0, sizeof *c);
}
