/* What a job reads and writes, in the catalog: its inputs (each file of
 * each dataset it was given, with the digest it had), and its outputs (the
 * files it left in /work/out, committed into the data root as datasets of
 * their own, with the job as their source). */
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "jobs-internal.h"

#define MAX_FILES 10000
#define DIGEST_BLOCK (8u << 20) /* the block size of jumbo send's default: the same xxh3t */

/* The dataset of a file at rel (below the data root): the catalog's when it
 * still describes the file (same size and time), else its digest computed
 * now and recorded as "found". */
int jobs_dataset_digest(struct jb_catalog *cat, const char *root, const char *rel, char digest[64],
			struct jb_error *err)
{
	char abs[JB_PATH_MAX + 256];
	struct stat st;
	snprintf(abs, sizeof abs, "%s/%s", root, rel);
	if (lstat(abs, &st) < 0)
		return jb_err(err, errno, "%s: %s", rel, strerror(errno));
	int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	struct jb_dataset d;
	int r = jb_catalog_get(cat, rel, &d, err);
	if (r < 0 && r != -ENOENT)
		return r;
	bool same = r == 0 && d.size == (uint64_t)st.st_size && d.mtime_ns == mt;
	if (same)
		snprintf(digest, 64, "%s", d.digest);
	if (r == 0)
		jb_dataset_free(&d);
	if (same)
		return 0;
	char x[40];
	r = jb_file_digest(abs, DIGEST_BLOCK, x, err);
	if (r < 0)
		return r;
	snprintf(digest, 64, "%s", x);
	struct jb_dataset_in in = {.path = rel, .size = (uint64_t)st.st_size, .digest = x, .origin = "",
				   .source = JB_SOURCE_FOUND, .mtime_ns = mt};
	return jb_catalog_add(cat, &in, err);
}

/* Each regular file below dir (absolute), as paths relative to root. */
typedef int (*file_fn)(void *ud, const char *rel, struct jb_error *err);

static int walk(const char *root, const char *rel, file_fn fn, void *ud, size_t *count, struct jb_error *err)
{
	char abs[JB_PATH_MAX + 256];
	snprintf(abs, sizeof abs, "%s/%s", root, rel);
	struct stat st;
	if (lstat(abs, &st) < 0)
		return jb_err(err, errno, "%s: %s", rel, strerror(errno));
	if (S_ISREG(st.st_mode)) {
		if (++*count > MAX_FILES)
			return jb_err(err, E2BIG, "more than %d files", MAX_FILES);
		return fn(ud, rel, err);
	}
	if (!S_ISDIR(st.st_mode))
		return 0; /* links and special files are not datasets */
	DIR *d = opendir(abs);
	if (!d)
		return jb_err(err, errno, "%s: %s", rel, strerror(errno));
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strncmp(de->d_name, ".", 1))
			continue; /* hidden: partial files of transfers in progress */
		char sub[JB_PATH_MAX];
		if ((size_t)snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name) >= sizeof sub) {
			r = jb_err(err, ENAMETOOLONG, "%s/%s: path too long", rel, de->d_name);
			break;
		}
		r = walk(root, sub, fn, ud, count, err);
	}
	closedir(d);
	return r;
}

struct inputs {
	struct jb_catalog *cat;
	const char *root, *job;
};

static int one_input(void *ud, const char *rel, struct jb_error *err)
{
	struct inputs *in = ud;
	char digest[64];
	int r = jobs_dataset_digest(in->cat, in->root, rel, digest, err);
	return r < 0 ? r : jb_catalog_add_input(in->cat, in->job, rel, digest, err);
}

int jobs_record_inputs(struct jb_catalog *cat, const char *root, const char *job, const struct jb_job_spec *spec,
		       struct jb_error *err)
{
	struct inputs in = {.cat = cat, .root = root, .job = job};
	size_t rl = strlen(root), count = 0;
	for (size_t i = 0; i < spec->ndata; i++) {
		const char *src = spec->data[i].source;
		if (!src || strncmp(src, root, rl) || (src[rl] && src[rl] != '/'))
			continue;
		const char *rel = src[rl] ? src + rl + 1 : "";
		int r = walk(root, rel, one_input, &in, &count, err);
		if (r < 0)
			return jb_err_prefix(err, "the inputs of job %s", job);
	}
	return 0;
}

/* ---- outputs ---- */

struct outputs {
	struct jb_catalog *cat;
	const char *root, *job, *site, *out_rel, *ws;
	int rootfd;
	struct jobs_outputs *list;
	size_t done; /* list's first entries: committed by an earlier try */
};

void jobs_outputs_free(struct jobs_outputs *o)
{
	for (size_t i = 0; i < o->n; i++)
		free(o->v[i].path);
	free(o->v);
	*o = (struct jobs_outputs){0};
}

static int list_output(struct jobs_outputs *l, const char *path, const char *digest)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct jobs_output *v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n].path = strdup(path)))
		return -ENOMEM;
	snprintf(l->v[l->n].digest, sizeof l->v[l->n].digest, "%s", digest);
	l->n++;
	return 0;
}

/* Copy workspace/out/REL to ROOT/OUT/REL through a hidden partial file,
 * hashing it (SHA-256) as it goes, then its xxh3t, then the catalog. */
static int one_output(void *ud, const char *rel, struct jb_error *err)
{
	struct outputs *o = ud;
	char src[JB_PATH_MAX + 256], dst_rel[JB_PATH_MAX], dir_rel[JB_PATH_MAX], part[JB_PATH_MAX];
	/* rel is relative to the workspace: "out/..." */
	const char *inner = rel + 4;
	snprintf(src, sizeof src, "%s/%s", o->ws, rel);
	if ((size_t)snprintf(dst_rel, sizeof dst_rel, "%s/%s", o->out_rel, inner) >= sizeof dst_rel)
		return jb_err(err, ENAMETOOLONG, "output %s: path too long", inner);
	for (size_t i = 0; i < o->done; i++)
		if (!strcmp(o->list->v[i].path, dst_rel))
			return 0; /* committed by an earlier try of this end */
	snprintf(dir_rel, sizeof dir_rel, "%s", dst_rel);
	char *slash = strrchr(dir_rel, '/');
	*slash = 0;
	const char *base = slash + 1;
	/* an O_PATH descriptor, resolved beneath the root: the *at calls take it */
	int wd = jb_mkdirs_beneath(o->rootfd, dir_rel, 0755);
	if (wd < 0)
		return jb_err(err, -wd, "output %s: %s: %s", inner, dir_rel, strerror(-wd));
	if (!jb_partial_name(base, part, sizeof part)) {
		close(wd);
		return jb_err(err, ENAMETOOLONG, "output %s: name too long", inner);
	}
	/* made and locked as a transfer's partial file is: a job never writes
	 * into nor removes one a receiving session holds */
	int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int out = in < 0 ? -errno : jb_partial_create(wd, part);
	int r = out < 0 ? out : fchmod(out, 0644) < 0 ? -errno : 0;
	if (r == -EBUSY)
		jb_err(err, EBUSY, "output %s: busy: a transfer is receiving %s", inner, dst_rel);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	uint64_t size = 0;
	static __thread char buf[1 << 20];
	while (r == 0) {
		ssize_t n = read(in, buf, sizeof buf);
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(md, buf, (size_t)n);
		r = jb_write_full(out, buf, (size_t)n);
		size += (uint64_t)n;
	}
	unsigned char h[32];
	unsigned int hl = 0;
	EVP_DigestFinal_ex(md, h, &hl);
	EVP_MD_CTX_free(md);
	struct stat st = {0};
	if (r == 0 && (fsync(out) < 0 || fstat(out, &st) < 0))
		r = -errno;
	if (in >= 0)
		close(in);
	char sha[80], x[40], abs[2 * JB_PATH_MAX + 512];
	memcpy(sha, "sha256:", 7);
	jb_hex(h, 32, sha + 7);
	/* the xxh3t of the partial file, and a pending dataset, before the name */
	snprintf(abs, sizeof abs, "%s/%s/%s", o->root, dir_rel, part);
	if (r == 0 && jb_file_digest(abs, DIGEST_BLOCK, x, err) < 0)
		r = -(err->code ? err->code : EIO);
	struct jb_dataset_in d = {.path = dst_rel, .size = size, .digest = x, .sha256 = sha, .origin = o->site,
				  .source = JB_SOURCE_JOB, .source_id = o->job,
				  .mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec, .pending = true};
	if (r == 0 && jb_catalog_add(o->cat, &d, err) < 0) {
		r = -(err->code ? err->code : EIO);
		o->list->store_failed = true;
	}
	bool pending = r == 0;
	/* renamed while this descriptor holds the lock, and checked: the name
	 * holds the bytes hashed */
	struct stat now;
	if (r == 0 && renameat(wd, part, wd, base) < 0)
		r = -errno;
	if (r == 0 && (fstatat(wd, base, &now, AT_SYMLINK_NOFOLLOW) < 0 || now.st_ino != st.st_ino ||
		       now.st_dev != st.st_dev))
		r = jb_err(err, ESTALE, "output %s: its partial file was replaced while it was copied", inner);
	if (pending && r < 0)
		jb_catalog_settle(o->cat, dst_rel, x, false, NULL);
	/* its own partial file, still locked: never a transfer's */
	struct stat mine;
	if (r < 0 && out >= 0 && fstat(out, &mine) == 0 && fstatat(wd, part, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    now.st_ino == mine.st_ino && now.st_dev == mine.st_dev)
		unlinkat(wd, part, 0);
	if (out >= 0)
		close(out);
	if (r < 0) {
		close(wd);
		return err->msg[0] ? r : jb_err(err, -r, "output %s: %s", inner, strerror(-r));
	}
	close(wd);
	/* it has its name: the job's end settles it */
	if (list_output(o->list, dst_rel, x) < 0) {
		jb_catalog_settle(o->cat, dst_rel, x, true, NULL);
		return jb_err(err, ENOMEM, "output %s: out of memory", inner);
	}
	return 0;
}

int jobs_commit_outputs(struct jb_catalog *cat, const char *root, const char *site, const char *job,
			const char *workspace, const char *out_rel, struct jobs_outputs *ret, struct jb_error *err)
{
	char p[JB_PATH_MAX + 256];
	struct stat st;
	snprintf(p, sizeof p, "%s/out", workspace);
	if (lstat(p, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0; /* the job wrote no outputs */
	struct outputs o = {.cat = cat, .root = root, .job = job, .site = site, .out_rel = out_rel, .ws = workspace,
			    .list = ret, .done = ret->n};
	o.rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (o.rootfd < 0)
		return jb_err(err, errno, "%s: %s", root, strerror(errno));
	size_t count = 0;
	int r = walk(workspace, "out", one_output, &o, &count, err);
	close(o.rootfd);
	return r;
}

/* ---- provenance ---- */

#define MAX_DEPTH 16
#define MAX_NODES 4096

void jb_provenance_free(struct jb_provenance *p)
{
	for (size_t i = 0; i < p->nfrom; i++)
		jb_provenance_free(&p->from[i]);
	free(p->from);
	jb_dataset_free(&p->ds);
	jb_job_free(&p->job);
	jb_job_inputs_free(&p->inputs);
	memset(p, 0, sizeof *p);
}

/* node->ds is set: its job and, for each of the job's inputs, its chain. */
static int chain(struct jb_jobs *j, struct jb_catalog *cat, struct jb_provenance *node, int depth, size_t *nodes,
		 struct jb_error *err)
{
	const char *job = node->ds.source_id;
	if (!j || node->ds.source != JB_SOURCE_JOB || !job || depth >= MAX_DEPTH || *nodes >= MAX_NODES)
		return 0;
	int r = jb_jobs_get(j, job, &node->job, err);
	if (r == -ENOENT)
		return 0; /* the job's record is gone: the dataset stands alone */
	if (r < 0)
		return r;
	node->has_job = true;
	if ((r = jb_catalog_inputs(cat, job, &node->inputs, err)) < 0)
		return r;
	if (node->inputs.n && !(node->from = calloc(node->inputs.n, sizeof *node->from)))
		return jb_err(err, ENOMEM, "provenance: out of memory");
	for (size_t i = 0; i < node->inputs.n; i++) {
		struct jb_provenance *in = &node->from[node->nfrom++];
		const struct jb_job_input *x = &node->inputs.v[i];
		++*nodes;
		r = jb_catalog_find(cat, x->path, x->digest, &in->ds, err);
		if (r == -ENOENT) { /* no longer in the catalog: what the job was given */
			if (!(in->ds.path = strdup(x->path)))
				return jb_err(err, ENOMEM, "provenance: out of memory");
			snprintf(in->ds.digest, sizeof in->ds.digest, "%s", x->digest);
			continue;
		}
		if (r < 0)
			return r;
		in->known = true;
		if ((r = chain(j, cat, in, depth + 1, nodes, err)) < 0)
			return r;
	}
	return 0;
}

int jb_provenance(struct jb_jobs *j, struct jb_catalog *cat, const char *path, struct jb_provenance *ret,
		  struct jb_error *err)
{
	_cleanup_free_ char *clean = NULL;
	memset(ret, 0, sizeof *ret);
	int r = jb_path_clean(path, &clean, err);
	if (r < 0)
		return r;
	r = jb_catalog_get(cat, clean, &ret->ds, err);
	if (r == -ENOENT)
		return jb_err(err, ENOENT, "%s is not a dataset of this site", clean);
	if (r < 0)
		return r;
	ret->known = true;
	size_t nodes = 1;
	if ((r = chain(j, cat, ret, 0, &nodes, err)) < 0)
		jb_provenance_free(ret);
	return r;
}
