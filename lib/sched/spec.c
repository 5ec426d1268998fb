/* A job request, checked before the job exists (fields, limits, datasets
 * resolved beneath the data root), and the datasets of peers fetched when it
 * starts. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs-internal.h"

/* ---- submission: everything checked before the job exists ---- */

static int str_array(json_t *a, const char *what, char ***out, bool need_eq, struct jb_error *err)
{
	*out = NULL;
	if (!a)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > 4096)
		return jb_err(err, EINVAL, "\"%s\" must be an array of strings", what);
	char **v = calloc(json_array_size(a) + 1, sizeof *v);
	if (!v)
		return jb_err(err, ENOMEM, "out of memory");
	size_t i;
	json_t *x;
	json_array_foreach (a, i, x) {
		const char *s = json_string_value(x);
		if (!s || strlen(s) > 65536 || (need_eq && (!strchr(s, '=') || s[0] == '='))) {
			jb_oci_strv_free(v);
			return jb_err(err, EINVAL, "\"%s\"[%zu] must be a string%s", what, i, need_eq ? " NAME=VALUE" : "");
		}
		if (!(v[i] = strdup(s))) {
			jb_oci_strv_free(v);
			return jb_err(err, ENOMEM, "out of memory");
		}
	}
	*out = v;
	return 0;
}

/* A dataset path under the data root: resolved beneath it (no "..", no
 * link out), made absolute for the bind mount. */
int jobs_data_source(struct jb_jobs *j, const char *path, char **ret, struct jb_error *err)
{
	char *clean = NULL;
	int r = jb_path_clean(path, &clean, err);
	if (r < 0)
		return jb_err_prefix(err, "data '%s'", path);
	int root = open(j->c->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int fd = root < 0 ? -errno : jb_open_beneath(root, clean, O_PATH, 0);
	if (root >= 0)
		close(root);
	if (fd < 0) {
		r = jb_err(err, -fd == EXDEV || -fd == ELOOP ? EPERM : -fd, "data '%s': %s", path,
			   -fd == EXDEV || -fd == ELOOP ? "outside the data root" : strerror(-fd));
		free(clean);
		return r;
	}
	char proc[64], real[JB_PATH_MAX];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(proc, real, sizeof real - 1);
	close(fd);
	free(clean);
	if (n <= 0)
		return jb_err(err, EIO, "data '%s': cannot resolve it", path);
	real[n] = 0;
	size_t rl = strlen(j->rootreal);
	if (strncmp(real, j->rootreal, rl) || (real[rl] && real[rl] != '/' && rl > 1))
		return jb_err(err, EPERM, "data '%s': outside the data root", path);
	return (*ret = strdup(real)) ? 0 : jb_err(err, ENOMEM, "out of memory");
}

static bool valid_name(const char *s)
{
	if (!*s || strlen(s) > 64 || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("._-", *s)))
			return false;
	return true;
}

/* A notebook's user or server name: it names a directory. */
static bool valid_user(const char *s)
{
	if (!*s || strlen(s) > 64 || *s == '.' || *s == '-')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("._@+-_", *s)))
			return false;
	return true;
}

/* "notebook": {"user": NAME, "server": NAME}: a veth network, the user's
 * workspace (STATE/workspaces/USER, made for uid 1000) at /home/jovyan,
 * run as 1000:100, and the whole data root at /data unless datasets are
 * named. */
static int notebook_spec(struct jb_jobs *j, json_t *nb, struct jb_job_spec *sp, struct jb_error *err)
{
	const char *user = json_string_value(json_object_get(nb, "user"));
	json_t *server = json_object_get(nb, "server");
	const char *key;
	json_t *v;
	if (!json_is_object(nb))
		return jb_err(err, EINVAL, "\"notebook\" is an object {\"user\": NAME, \"server\": NAME}");
	json_object_foreach (nb, key, v)
		if (strcmp(key, "user") && strcmp(key, "server"))
			return jb_err(err, EINVAL, "unknown field \"notebook.%s\"", key);
	if (!user || !valid_user(user))
		return jb_err(err, EINVAL,
			      "\"notebook.user\" must be 1 to 64 letters, digits and ._@+-_ (not first . or -)");
	if (server && (!json_is_string(server) || (json_string_length(server) && !valid_user(json_string_value(server)))))
		return jb_err(err, EINVAL, "\"notebook.server\" must be empty or 1 to 64 letters, digits and ._@+-");
	if (sp->network)
		return jb_err(err, EINVAL, "a notebook has a network of its own (\"network\": \"veth\")");
	sp->veth = true;
	sp->uid = JB_NOTEBOOK_UID;
	sp->gid = JB_NOTEBOOK_GID;
	sp->user_set = true;
	char dir[4200];
	snprintf(dir, sizeof dir, "%s/workspaces", j->state);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return jb_err(err, errno, "%s: %s", dir, strerror(errno));
	int r = jobs_pass_through(j, dir, err);
	if (r < 0)
		return r;
	/* the workspace is jovyan's as the host numbers it (id0 + 1000) */
	uid_t hu = j->ids ? j->id0 + sp->uid : sp->uid;
	gid_t hg = j->ids ? j->id0 + sp->gid : sp->gid;
	snprintf(dir, sizeof dir, "%s/workspaces/%s", j->state, user);
	if (mkdir(dir, 0700) == 0) {
		if (chown(dir, hu, hg) < 0)
			return jb_err(err, errno, "%s: %s", dir, strerror(errno));
	} else if (errno != EEXIST) {
		return jb_err(err, errno, "%s: %s", dir, strerror(errno));
	}
	struct stat st;
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return jb_err(err, ENOTDIR, "%s: the workspace is not a directory", dir);
	/* one made before the site's jobs had a user namespace (or with another
	 * subuid): its files shifted to the jobs' ids, once */
	if (st.st_uid != hu && st.st_uid >= sp->uid &&
	    (r = jobs_shift_ids(dir, st.st_uid - sp->uid, hu - sp->uid, 65536, err)) < 0)
		return r;
	if (!(sp->home = strdup(dir)) || (!sp->ndata && !(sp->data_all = strdup(j->rootreal))))
		return jb_err(err, ENOMEM, "out of memory");
	return 0;
}

/* The name under /data of a dataset given as path alone: its last component. */
static void base_name(const char *path, char *out, size_t n)
{
	const char *b = path + strlen(path);
	while (b > path && b[-1] == '/')
		b--;
	const char *e = b;
	while (b > path && b[-1] != '/')
		b--;
	snprintf(out, n, "%.*s", (int)(e - b), b);
}

/* "data"[i]: PATH below the data root, or PEER:PATH fetched when the job starts. */
static int data_one(struct jb_jobs *j, size_t i, json_t *d, struct jb_job_spec *sp, struct jb_error *err)
{
	const char *path = json_is_string(d) ? json_string_value(d) : json_string_value(json_object_get(d, "path"));
	const char *name = json_string_value(json_object_get(d, "name"));
	if (!path)
		return jb_err(err, EINVAL, "\"data\"[%zu] needs a path", i);
	char base[256];
	if (!name) {
		base_name(path, base, sizeof base);
		name = base;
	}
	if (!valid_name(name))
		return jb_err(err, EINVAL, "data '%s': '%s' cannot name a directory under /data (give NAME=PATH)", path,
			      name);
	for (size_t k = 0; k < sp->ndata; k++)
		if (!strcmp(sp->data[k].name, name))
			return jb_err(err, EINVAL, "two datasets named '%s' under /data", name);
	if (!(sp->data[sp->ndata].name = strdup(name)))
		return jb_oom(err);
	struct jb_mount_ro *mr = &sp->data[sp->ndata++];
	struct jb_remote rm;
	int r = jb_remote_parse(j->c, path, &rm, err);
	if (r <= 0)
		return r < 0 ? r : jobs_data_source(j, path, &mr->source, err);
	/* a dataset of a peer: fetched into the data root, under the peer's
	 * name, when the job starts */
	_cleanup_free_ char *clean = NULL;
	if (!rm.peer)
		r = jb_err(err, EINVAL, "data '%s': fetch from a configured peer (PEER:PATH)", path);
	if (r >= 0)
		r = jb_path_clean(rm.path, &clean, err);
	if (r >= 0 && !*clean)
		r = jb_err(err, EINVAL, "data '%s': name a file or directory, not the peer's whole root", path);
	if (r >= 0 && (asprintf(&mr->local, "%s/%s", rm.peer->name, clean) < 0 || !(mr->remote = strdup(path))))
		r = jb_oom(err);
	jb_remote_free(&rm);
	return r < 0 ? r : 0;
}

static int data_spec(struct jb_jobs *j, json_t *data, struct jb_job_spec *sp, struct jb_error *err)
{
	if (!data)
		return 0;
	if (!json_is_array(data) || json_array_size(data) > 64)
		return jb_err(err, EINVAL, "\"data\" must be an array of at most 64 paths");
	if (!(sp->data = calloc(json_array_size(data) + 1, sizeof *sp->data)))
		return jb_oom(err);
	size_t i;
	json_t *d;
	int r = 0;
	json_array_foreach (data, i, d)
		if ((r = data_one(j, i, d, sp, err)) < 0)
			return r;
	return 0;
}

/* cpus, memory, pids, timeout, network, gpus */
static int limits_spec(json_t *req, struct jb_job_spec *sp, struct jb_error *err)
{
	json_t *x;
	if ((x = json_object_get(req, "cpus")) && (!json_is_number(x) || json_number_value(x) <= 0 ||
						   json_number_value(x) > 4096))
		return jb_err(err, EINVAL, "\"cpus\" must be a number above 0");
	sp->cpus = x ? json_number_value(x) : 0;
	if ((x = json_object_get(req, "memory"))) {
		uint64_t m = 0;
		if (json_is_integer(x) && json_integer_value(x) > 0)
			m = (uint64_t)json_integer_value(x);
		else if (!json_is_string(x) || jb_parse_size(json_string_value(x), &m) < 0)
			return jb_err(err, EINVAL, "\"memory\" must be a size such as 512M or 4G");
		if (m < (4u << 20))
			return jb_err(err, EINVAL, "\"memory\" must be at least 4M");
		sp->memory = m;
	}
	if ((x = json_object_get(req, "pids")) && (!json_is_integer(x) || json_integer_value(x) < 1))
		return jb_err(err, EINVAL, "\"pids\" must be a positive integer");
	sp->pids = x ? (uint64_t)json_integer_value(x) : 0;
	if ((x = json_object_get(req, "timeout")) && (!json_is_number(x) || json_number_value(x) <= 0))
		return jb_err(err, EINVAL, "\"timeout\" must be a number of seconds above 0");
	sp->timeout = x ? json_number_value(x) : 0;
	if ((x = json_object_get(req, "network"))) {
		const char *m = json_string_value(x);
		if (json_is_boolean(x))
			sp->network = json_is_true(x);
		else if (m && !strcmp(m, "host"))
			sp->network = true;
		else if (m && !strcmp(m, "veth"))
			sp->veth = true;
		else if (!m || strcmp(m, "none"))
			return jb_err(err, EINVAL, "\"network\" is \"none\", \"host\" or \"veth\"");
	}
	if ((x = json_object_get(req, "gpus")) && (!json_is_integer(x) || json_integer_value(x) < 0))
		return jb_err(err, EINVAL, "\"gpus\" must be a count");
	sp->gpus = x ? (unsigned)json_integer_value(x) : 0;
	if (sp->gpus) {
		unsigned have = jb_gpu_count();
		if (have < sp->gpus)
			return jb_err(err, ENODEV, "the job asks for %u GPU%s and this site has %s", sp->gpus,
				      sp->gpus == 1 ? "" : "s",
				      have ? "fewer" : "none (no NVIDIA driver: /dev/nvidiactl is missing)");
	}
	return 0;
}

/* "backend": a [backend NAME] of the site, or "local" */
static int backend_spec(struct jb_jobs *j, json_t *x, struct jb_job_spec *sp, struct jb_error *err)
{
	const char *b = json_string_value(x);
	if (!x)
		return 0;
	if (!b)
		return jb_err(err, EINVAL, "\"backend\" is the name of a [backend] of the site, or \"local\"");
	if (!strcmp(b, "local"))
		return 0;
	struct jobs_backend *be = jobs_backend_find(j, b);
	if (!be)
		return jb_err(err, ENOENT, "no backend '%s' on this site (its [backend NAME] sections, or local)", b);
	if (be->error[0])
		return jb_err(err, EHOSTDOWN, "backend '%s' is not available: %s", b, be->error);
	if (!(sp->backend = strdup(b)))
		return jb_oom(err);
	return 0;
}

int jobs_parse_spec(struct jb_jobs *j, json_t *req, struct jb_job_spec *sp, struct jb_error *err)
{
	memset(sp, 0, sizeof *sp);
	if (!json_is_object(req))
		return jb_err(err, EINVAL, "a job is a JSON object");
	static const char *const known[] = {"image", "args",    "env",     "data",   "cpus", "memory",   "pids",    "gpus",
					    "timeout", "network", "output", "rule", "rerun_of", "notebook", "backend"};
	const char *key;
	json_t *v, *x;
	json_object_foreach (req, key, v) {
		bool ok = false;
		for (size_t i = 0; i < JB_ARRAY_SIZE(known); i++)
			ok |= !strcmp(key, known[i]);
		if (!ok)
			return jb_err(err, EINVAL, "unknown field \"%s\"", key);
	}
	const char *image = json_string_value(json_object_get(req, "image"));
	if (!image)
		return jb_err(err, EINVAL, "\"image\" is missing");
	struct jb_oci_ref ref;
	int r = jb_oci_ref_parse(image, &ref, err);
	if (r < 0)
		return r;
	if (!(sp->image = strdup(image)))
		return jb_oom(err);
	if ((r = str_array(json_object_get(req, "args"), "args", &sp->args, false, err)) < 0 ||
	    (r = str_array(json_object_get(req, "env"), "env", &sp->env, true, err)) < 0 ||
	    (r = data_spec(j, json_object_get(req, "data"), sp, err)) < 0 || (r = limits_spec(req, sp, err)) < 0)
		return r;
	if ((x = json_object_get(req, "output"))) {
		_cleanup_free_ char *clean = NULL;
		if (!json_is_string(x) || jb_path_clean(json_string_value(x), &clean, NULL) < 0 || !*clean)
			return jb_err(err, EINVAL, "\"output\" must be a directory below the data root");
	}
	if ((x = json_object_get(req, "rule")) && !json_is_string(x))
		return jb_err(err, EINVAL, "\"rule\" must be a string");
	if ((x = json_object_get(req, "notebook")) && (r = notebook_spec(j, x, sp, err)) < 0)
		return r;
	return backend_spec(j, json_object_get(req, "backend"), sp, err);
}

/* A peer's dataset into the data root, then checked as any local one. */
int jobs_fetch(struct jb_jobs *j, const char *id, struct jb_mount_ro *m, struct jb_error *err)
{
	struct jb_remote rm;
	struct jb_client *cl = NULL;
	struct jb_xfer_result res = {0};
	char dest[JB_PATH_MAX + 256], jd[4200];
	int r = jb_remote_parse(j->c, m->remote, &rm, err);
	if (r < 0)
		return r;
	/* into the directory that will hold it: ROOT/PEER/dirname(PATH)/ */
	snprintf(dest, sizeof dest, "%s/%s", j->rootreal, m->local);
	char *slash = strrchr(dest, '/');
	*slash = 0;
	int root = open(j->rootreal, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int dfd = root < 0 ? -errno : jb_mkdirs_beneath(root, dest + strlen(j->rootreal) + 1, 0755);
	if (root >= 0)
		close(root);
	if (dfd < 0) {
		jb_remote_free(&rm);
		return jb_err(err, -dfd, "data '%s': %s: %s", m->remote, dest, strerror(-dfd));
	}
	close(dfd);
	strcat(dest, "/");
	snprintf(jd, sizeof jd, "%s/fetch", j->state);
	struct jb_xfer_opts o;
	jb_xfer_opts_init(&o);
	o.recursive = true;
	jb_log(JB_LOG_INFO, "job %s: fetching %s into %s", id, m->remote, dest);
	r = jb_client_new(j->c, &cl, err);
	if (r == 0)
		r = jb_client_set_journal_dir(cl, jd);
	if (r == 0)
		r = jb_client_pull(cl, &rm, dest, &o, &res, err);
	if (r == 0 && res.files_ok != res.files)
		r = jb_err(err, EIO, "data '%s': %llu of %llu entries arrived verified", m->remote,
			   (unsigned long long)res.files_ok, (unsigned long long)res.files);
	if (r < 0 && err->msg[0] && !strstr(err->msg, m->remote))
		jb_err_prefix(err, "data '%s'", m->remote);
	jb_xfer_result_free(&res);
	jb_client_free(cl);
	jb_remote_free(&rm);
	if (r < 0)
		return r;
	return jobs_data_source(j, m->local, &m->source, err);
}

