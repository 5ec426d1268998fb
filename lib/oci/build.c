/* Images made here: a recipe (a Debian suite, packages, environment, a
 * command) becomes a root filesystem by mmdebstrap, whose tar stream is
 * rewritten into one gzip layer, hashed twice on the way (the diff_id over
 * the tar, the digest over the gzip), then an OCI config and manifest. */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <zlib.h>

#include "oci-internal.h"

/* ---- recipes ---- */

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = 0;
	return s;
}

/* Whitespace-separated words, appended to a NULL-terminated vector. */
static int add_words(char ***v, const char *s)
{
	size_t n = 0;
	while (*v && (*v)[n])
		n++;
	char *dup = strdup(s), *save = NULL;
	if (!dup)
		return -ENOMEM;
	for (char *w = strtok_r(dup, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		char **nv = realloc(*v, (n + 2) * sizeof *nv);
		if (!nv || !(nv[n] = strdup(w))) {
			if (nv)
				*v = nv, nv[n] = NULL;
			free(dup);
			return -ENOMEM;
		}
		nv[++n] = NULL;
		*v = nv;
	}
	free(dup);
	return 0;
}

static bool safe_word(const char *w)
{
	/* package names, suite and variant go on mmdebstrap's command line */
	for (const char *p = w; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr(".+-_:=~", *p)))
			return false;
	return *w && *w != '-';
}

int jb_oci_recipe_load(const char *path, struct jb_oci_recipe *r, struct jb_error *err)
{
	memset(r, 0, sizeof *r);
	FILE *f = fopen(path, "re");
	if (!f)
		return jb_err(err, errno, "%s: %s", path, strerror(errno));
	char line[8192];
	int lineno = 0, rc = 0;
	while (rc == 0 && fgets(line, sizeof line, f)) {
		lineno++;
		char *s = trim(line);
		if (!*s || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			rc = jb_err(err, EINVAL, "%s:%d: expected 'key = value'", path, lineno);
			break;
		}
		*eq = 0;
		char *k = trim(s), *v = trim(eq + 1);
		char **str = !strcmp(k, "suite") ? &r->suite : !strcmp(k, "mirror") ? &r->mirror
			   : !strcmp(k, "variant") ? &r->variant : !strcmp(k, "workdir") ? &r->workdir
			   : !strcmp(k, "user") ? &r->user : !strcmp(k, "description") ? &r->description : NULL;
		char ***vec = !strcmp(k, "packages") ? &r->packages : !strcmp(k, "env") ? &r->env
			    : !strcmp(k, "cmd") ? &r->cmd : !strcmp(k, "entrypoint") ? &r->entrypoint : NULL;
		if (str) {
			free(*str);
			if (!(*str = strdup(v)))
				rc = -ENOMEM;
		} else if (vec) {
			rc = add_words(vec, v);
		} else {
			rc = jb_err(err, EINVAL, "%s:%d: unknown key '%s'", path, lineno, k);
		}
	}
	fclose(f);
	if (rc == 0 && !r->suite)
		rc = jb_err(err, EINVAL, "%s: 'suite' is missing (a Debian suite: trixie, bookworm)", path);
	if (rc == 0 && (!safe_word(r->suite) || (r->variant && !safe_word(r->variant))))
		rc = jb_err(err, EINVAL, "%s: suite and variant are single words", path);
	for (char **p = r->packages; rc == 0 && p && *p; p++)
		if (!safe_word(*p))
			rc = jb_err(err, EINVAL, "%s: '%s' is not a package name", path, *p);
	if (rc == 0 && r->mirror && strncmp(r->mirror, "http://", 7) && strncmp(r->mirror, "https://", 8) &&
	    strncmp(r->mirror, "file://", 7))
		rc = jb_err(err, EINVAL, "%s: mirror must be an http, https or file URL", path);
	for (char **p = r->env; rc == 0 && p && *p; p++)
		if (!strchr(*p, '=') || **p == '=')
			rc = jb_err(err, EINVAL, "%s: env entries are NAME=VALUE, not '%s'", path, *p);
	if (rc < 0)
		jb_oci_recipe_free(r);
	return rc;
}

void jb_oci_recipe_free(struct jb_oci_recipe *r)
{
	free(r->suite);
	free(r->mirror);
	free(r->variant);
	free(r->workdir);
	free(r->user);
	free(r->description);
	jb_oci_strv_free(r->packages);
	jb_oci_strv_free(r->env);
	jb_oci_strv_free(r->cmd);
	jb_oci_strv_free(r->entrypoint);
	memset(r, 0, sizeof *r);
}

/* ---- a layer from a tar stream ---- */

struct gz_out {
	struct jb_oci_blob_writer *w;
	struct jb_error *err;
	EVP_MD_CTX *diff;
	z_stream z;
	unsigned char buf[64 * 1024];
	int rc;
};

static int gz_push(struct gz_out *g, const void *p, size_t n, int flush)
{
	g->z.next_in = (unsigned char *)p;
	g->z.avail_in = (uInt)n;
	for (;;) {
		g->z.next_out = g->buf;
		g->z.avail_out = sizeof g->buf;
		int zr = deflate(&g->z, flush);
		if (zr == Z_STREAM_ERROR)
			return -EIO;
		size_t out = sizeof g->buf - g->z.avail_out;
		if (out && jb_oci_blob_write(g->w, g->buf, out, g->err) < 0)
			return -EIO;
		if (flush == Z_FINISH ? zr == Z_STREAM_END : g->z.avail_out != 0)
			return 0;
	}
}

static la_ssize_t gz_write(struct archive *a, void *ud, const void *p, size_t n)
{
	struct gz_out *g = ud;
	if (g->rc)
		return -1; /* after a failure (or while being freed after one) */
	EVP_DigestUpdate(g->diff, p, n);
	if (gz_push(g, p, n, Z_NO_FLUSH) < 0) {
		g->rc = -EIO;
		archive_set_error(a, EIO, "writing the layer failed");
		return -1;
	}
	return (la_ssize_t)n;
}

int jb_oci_layer_from_tar(struct jb_oci_store *s, int tarfd, struct jb_oci_desc *ret_layer,
			  char ret_diff_id[JB_OCI_DIGEST_MAX], struct jb_error *err)
{
	struct gz_out g = {.err = err};
	struct archive *in = NULL, *out = NULL;
	struct oci_utf8 u8;
	int rc = jb_oci_blob_begin(s, NULL, -1, &g.w, err);
	if (rc < 0)
		return rc;
	oci_utf8_begin(&u8);
	g.diff = EVP_MD_CTX_new();
	/* level 6 and no name or time in the gzip header: the same tar gives the same blob */
	if (!g.diff || !EVP_DigestInit_ex(g.diff, EVP_sha256(), NULL) ||
	    deflateInit2(&g.z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		jb_oci_blob_abort(g.w);
		EVP_MD_CTX_free(g.diff);
		return jb_oom(err);
	}
	in = archive_read_new();
	out = archive_write_new();
	archive_read_support_format_tar(in);
	archive_read_support_filter_none(in);
	archive_write_set_format_pax_restricted(out);
	archive_write_set_bytes_in_last_block(out, 1);
	if (archive_read_open_fd(in, tarfd, 64 * 1024) != ARCHIVE_OK) {
		rc = jb_err(err, EINVAL, "root filesystem: %s", archive_error_string(in));
		goto out;
	}
	if (archive_write_open(out, &g, NULL, gz_write, NULL) != ARCHIVE_OK) {
		rc = jb_err(err, EIO, "layer: %s", archive_error_string(out));
		goto out;
	}
	struct archive_entry *e;
	int st;
	static char buf[256 * 1024];
	while ((st = archive_read_next_header(in, &e)) == ARCHIVE_OK || st == ARCHIVE_WARN) {
		mode_t t = archive_entry_filetype(e);
		/* the runtime makes /dev; a layer carries no device nodes */
		if (t == AE_IFCHR || t == AE_IFBLK)
			continue;
		if (archive_write_header(out, e) != ARCHIVE_OK) {
			rc = jb_err(err, EIO, "layer entry %s: %s", archive_entry_pathname(e), archive_error_string(out));
			goto out;
		}
		la_ssize_t n;
		while ((n = archive_read_data(in, buf, sizeof buf)) > 0)
			if (archive_write_data(out, buf, (size_t)n) != n) {
				rc = jb_err(err, EIO, "layer entry %s: %s", archive_entry_pathname(e),
					    g.rc ? err->msg : archive_error_string(out));
				goto out;
			}
		if (n < 0) {
			rc = jb_err(err, EIO, "root filesystem: %s", archive_error_string(in));
			goto out;
		}
	}
	if (st != ARCHIVE_EOF) {
		rc = jb_err(err, EIO, "root filesystem: %s", archive_error_string(in));
		goto out;
	}
	if (archive_write_close(out) != ARCHIVE_OK || g.rc) {
		rc = jb_err(err, EIO, "layer: %s", archive_error_string(out));
		goto out;
	}
	if (gz_push(&g, NULL, 0, Z_FINISH) < 0) {
		rc = -EIO;
		goto out;
	}
	unsigned char md[32];
	unsigned int mdl = 0;
	EVP_DigestFinal_ex(g.diff, md, &mdl);
	oci_sha256_text(md, ret_diff_id);
	ret_layer->size = (int64_t)g.z.total_out;
	rc = jb_oci_blob_commit_as(g.w, ret_layer->digest, err);
	g.w = NULL;
	if (rc == 0 && !(ret_layer->media_type = strdup(JB_OCI_MT_LAYER_GZIP)))
		rc = -ENOMEM;
out:
	/* the writer first: freeing it flushes into g */
	g.rc = rc ? rc : g.rc;
	archive_write_free(out);
	archive_read_free(in);
	if (g.w)
		jb_oci_blob_abort(g.w);
	deflateEnd(&g.z);
	EVP_MD_CTX_free(g.diff);
	oci_utf8_end(&u8);
	return rc;
}

/* ---- config and manifest ---- */

static json_t *strv_json(char **v)
{
	json_t *a = json_array();
	for (char **p = v; p && *p; p++)
		json_array_append_new(a, json_string(*p));
	return a;
}

static void iso8601(time_t t, char *out, size_t n)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The config and manifest of a one-layer image, stored and named. */
int oci_finish_image(struct jb_oci_store *s, const char *name, json_t *cfg_config, const struct jb_oci_desc *layer,
		     const char *diff_id, const char *created_by, time_t created, struct jb_oci_image *img,
		     struct jb_error *err)
{
	char when[32];
	iso8601(created, when, sizeof when);
	json_t *cfg = json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:[s]}, s:[{s:s, s:s}]}", "created", when, "architecture",
				jb_oci_host_arch(), "os", "linux", "config", cfg_config, "rootfs", "type", "layers",
				"diff_ids", diff_id, "history", "created", when, "created_by", created_by);
	char *cbuf = cfg ? json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(cfg);
	if (!cbuf)
		return jb_oom(err);
	struct jb_oci_desc cd = {.media_type = (char *)JB_OCI_MT_CONFIG, .size = (int64_t)strlen(cbuf)};
	int rc = oci_put_doc(s, cbuf, strlen(cbuf), cd.digest, err);
	free(cbuf);
	if (rc < 0)
		return rc;
	json_t *man = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:[{s:s, s:s, s:I}]}", "schemaVersion", 2, "mediaType",
				JB_OCI_MT_MANIFEST, "config", "mediaType", cd.media_type, "digest", cd.digest, "size",
				(json_int_t)cd.size, "layers", "mediaType", layer->media_type, "digest", layer->digest,
				"size", (json_int_t)layer->size);
	char *mbuf = man ? json_dumps(man, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(man);
	if (!mbuf)
		return jb_oom(err);
	struct jb_oci_desc md = {.media_type = (char *)JB_OCI_MT_MANIFEST, .size = (int64_t)strlen(mbuf)};
	rc = oci_put_doc(s, mbuf, strlen(mbuf), md.digest, err);
	free(mbuf);
	if (rc == 0)
		rc = jb_oci_store_tag(s, name, &md, err);
	if (rc == 0 && img)
		rc = jb_oci_image_open(s, name, img, err);
	return rc;
}

/* The image's config from its recipe: environment, command, user, and
 * labels naming the recipe, its suite and packages. */
static json_t *recipe_config(const struct jb_oci_recipe *r, const char *recipe_name)
{
	json_t *cc = json_object();
	json_object_set_new(cc, "Env", strv_json(r->env));
	if (r->entrypoint)
		json_object_set_new(cc, "Entrypoint", strv_json(r->entrypoint));
	if (r->cmd)
		json_object_set_new(cc, "Cmd", strv_json(r->cmd));
	if (r->workdir)
		json_object_set_new(cc, "WorkingDir", json_string(r->workdir));
	if (r->user)
		json_object_set_new(cc, "User", json_string(r->user));
	json_t *labels = json_object();
	json_object_set_new(labels, "org.opencontainers.image.title", json_string(recipe_name));
	if (r->description)
		json_object_set_new(labels, "org.opencontainers.image.description", json_string(r->description));
	json_object_set_new(labels, "org.jumbo.recipe.suite", json_string(r->suite));
	char *pk = NULL;
	size_t pkl = 0;
	FILE *pf = open_memstream(&pk, &pkl);
	for (char **p = r->packages; pf && p && *p; p++)
		fprintf(pf, "%s%s", p == r->packages ? "" : " ", *p);
	if (pf)
		fclose(pf);
	json_object_set_new(labels, "org.jumbo.recipe.packages", json_string(pk ? pk : ""));
	free(pk);
	json_object_set_new(cc, "Labels", labels);
	return cc;
}

int jb_oci_build(struct jb_oci_store *s, const struct jb_oci_recipe *r, const char *recipe_name, const char *name,
		 int log_fd, struct jb_oci_image *img, struct jb_error *err)
{
	struct jb_oci_ref ref;
	int rc = jb_oci_ref_parse(name, &ref, err);
	if (rc < 0)
		return rc;
	char canon[600];
	jb_oci_ref_name(&ref, canon, sizeof canon);
	/* mmdebstrap --variant=V [--include=a,b] --format=tar SUITE - [MIRROR] */
	char *include = NULL;
	size_t len = 0;
	for (char **p = r->packages; p && *p; p++)
		len += strlen(*p) + 1;
	if (len && !(include = malloc(len + 16)))
		return jb_oom(err);
	if (include) {
		strcpy(include, "--include=");
		for (char **p = r->packages; p && *p; p++) {
			strcat(include, *p);
			if (p[1])
				strcat(include, ",");
		}
	}
	char variant[64];
	snprintf(variant, sizeof variant, "--variant=%s", r->variant ? r->variant : "apt");
	const char *argv[16];
	int ac = 0;
	argv[ac++] = "mmdebstrap";
	argv[ac++] = variant;
	if (include)
		argv[ac++] = include;
	argv[ac++] = "--format=tar";
	/* no translations, documentation or manual pages in an image */
	argv[ac++] = "--aptopt=Acquire::Languages \"none\"";
	argv[ac++] = "--dpkgopt=path-exclude=/usr/share/doc/*";
	argv[ac++] = "--dpkgopt=path-include=/usr/share/doc/*/copyright";
	argv[ac++] = "--dpkgopt=path-exclude=/usr/share/man/*";
	argv[ac++] = "--dpkgopt=path-exclude=/usr/share/locale/*";
	argv[ac++] = r->suite;
	argv[ac++] = "-";
	if (r->mirror)
		argv[ac++] = r->mirror;
	argv[ac] = NULL;
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		free(include);
		return jb_err(err, errno, "pipe: %s", strerror(errno));
	}
	time_t created = r->created > 0 ? (time_t)r->created : time(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		/* its own process group: mmdebstrap signals its whole group when it fails */
		setpgid(0, 0);
		dup2(pfd[1], 1);
		if (log_fd >= 0)
			dup2(log_fd, 2);
		char e[64];
		snprintf(e, sizeof e, "%lld", (long long)created);
		setenv("SOURCE_DATE_EPOCH", e, 1);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], (char **)argv);
		fprintf(stderr, "jumbo: cannot run mmdebstrap: %s (apt-get install mmdebstrap)\n", strerror(errno));
		_exit(127);
	}
	free(include);
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return jb_err(err, errno, "fork: %s", strerror(errno));
	}
	struct jb_oci_desc layer = {0};
	char diff_id[JB_OCI_DIGEST_MAX];
	int busy = oci_busy_begin(s);
	rc = jb_oci_layer_from_tar(s, pfd[0], &layer, diff_id, err);
	/* the archive ended: what mmdebstrap still writes (tar's record padding)
	 * is read to the end, or it dies of a broken pipe */
	char drain[65536];
	while (rc == 0) {
		ssize_t n = read(pfd[0], drain, sizeof drain);
		if (n == 0 || (n < 0 && errno != EINTR))
			break;
	}
	close(pfd[0]);
	int status = 0;
	if (rc < 0)
		kill(pid, SIGTERM);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		rc = jb_err(err, EIO, "mmdebstrap %s failed (%s %d)%s", r->suite,
			    WIFEXITED(status) ? "exit status" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
			    log_fd >= 0 ? ": see its log" : "");
	if (rc < 0) {
		oci_busy_end(busy);
		free(layer.media_type);
		return rc;
	}
	json_t *cc = recipe_config(r, recipe_name);
	char by[300];
	snprintf(by, sizeof by, "jumbo image build %s (mmdebstrap %s)", recipe_name, r->suite);
	rc = oci_finish_image(s, canon, cc, &layer, diff_id, by, created, img, err);
	oci_busy_end(busy);
	free(layer.media_type);
	return rc;
}
