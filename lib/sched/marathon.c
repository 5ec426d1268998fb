/* The marathon backend: a job becomes a Marathon app of one instance
 * (POST /v2/apps), run by the Mesos containerizer (UCR) or Docker on the
 * job's image from a registry the agents reach, with its datasets as RO
 * host volumes, its workspace RW; watched through GET /v2/apps/ID (its
 * task: running, the agent, a notebook's host port; lastTaskFailure: how it
 * ended), then scaled to zero and deleted.  HTTP Basic (user, password or
 * password-file) or a DC/OS token (token-file: "Authorization: token=...").
 * Written to Marathon's published REST API (marathon.h); not run against a
 * live Marathon here. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs-internal.h"
#include "marathon.h"

struct marathon {
	char url[512];
	char *user, *password, *token_file;
	const char *container; /* MESOS or DOCKER */
	const char *registry;  /* HOST[:PORT][/PREFIX] where local images are pushed, or NULL */
	const char *prefix;
	CURL *curl;
	pthread_mutex_t lock;
};

/* method path [body]: the HTTP status (-1: no answer), the JSON in *ret (may be NULL) */
static long call(struct marathon *m, const char *method, const char *path, const char *body, json_t **ret,
		 struct jb_error *err)
{
	char url[1200], auth[2200] = "";
	*ret = NULL;
	snprintf(url, sizeof url, "%s%s", m->url, path);
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	h = curl_slist_append(h, "Accept: application/json");
	if (m->token_file) {
		char tok[2048];
		if (jb_read_line_file(m->token_file, tok, sizeof tok) < 0) {
			curl_slist_free_all(h);
			jb_err(err, EACCES, "marathon: token-file %s is empty or unreadable", m->token_file);
			return -1;
		}
		snprintf(auth, sizeof auth, "Authorization: token=%s", tok);
		h = curl_slist_append(h, auth);
		explicit_bzero(tok, sizeof tok);
	}
	long code = jb_http_json(m->curl, &m->lock,
				 &(struct jb_http_req){.method = method, .url = url, .headers = h, .user = m->user,
							 .password = m->password, .body = body},
				 ret, err);
	curl_slist_free_all(h);
	explicit_bzero(auth, sizeof auth);
	if (code < 0)
		jb_err_prefix(err, "Marathon");
	return code;
}

static int marathon_open(struct jobs_backend *b, struct jb_error *err)
{
	struct marathon *m = calloc(1, sizeof *m);
	if (!m)
		return jb_oom(err);
	b->priv = m;
	pthread_mutex_init(&m->lock, NULL);
	const struct jb_backend_conf *c = b->conf;
	const char *v = jb_backend_conf_get(c, "url");
	if (!v || (strncmp(v, "http://", 7) && strncmp(v, "https://", 8)))
		return jb_err(err, EINVAL, "backend %s: url is Marathon's http(s)://HOST:PORT", c->name);
	snprintf(m->url, sizeof m->url, "%s", v);
	size_t l = strlen(m->url);
	while (l && m->url[l - 1] == '/')
		m->url[--l] = 0;
	v = jb_backend_conf_get(c, "container");
	m->container = !v || !strcmp(v, "mesos") ? "MESOS" : !strcmp(v, "docker") ? "DOCKER" : NULL;
	if (!m->container)
		return jb_err(err, EINVAL, "backend %s: container is mesos or docker", c->name);
	m->registry = jb_backend_conf_get(c, "registry");
	m->prefix = jb_backend_conf_get(c, "app-prefix");
	if ((v = jb_backend_conf_get(c, "user")) && !(m->user = strdup(v)))
		return jb_oom(err);
	if ((v = jb_backend_conf_get(c, "password")) && !(m->password = strdup(v)))
		return jb_oom(err);
	if ((v = jb_backend_conf_get(c, "password-file"))) {
		char line[1024];
		int r = jb_read_line_file(v, line, sizeof line);
		if (r < 0)
			return jb_err(err, -r, "backend %s: password-file %s: %s", c->name, v,
				      r == -ENODATA ? "empty" : strerror(-r));
		free(m->password);
		m->password = strdup(line);
		explicit_bzero(line, sizeof line);
	}
	if ((v = jb_backend_conf_get(c, "token-file")) && !(m->token_file = strdup(v)))
		return jb_oom(err);
	if (m->token_file && m->user)
		return jb_err(err, EINVAL, "backend %s: user (Basic) or token-file (DC/OS), not both", c->name);
	jb_http_init();
	if (!(m->curl = curl_easy_init()))
		return jb_oom(err);
	/* the server answers and takes the credentials */
	json_t *o = NULL;
	long code = call(m, "GET", "/v2/info", NULL, &o, err);
	json_decref(o);
	if (code < 0)
		return -ECONNREFUSED;
	if (code == 401 || code == 403)
		return jb_err(err, EACCES, "backend %s: Marathon at %s refused the credentials (%ld)", c->name, m->url, code);
	if (code != 200)
		return jb_err(err, EIO, "backend %s: Marathon at %s answered GET /v2/info with %ld", c->name, m->url, code);
	return 0;
}

static void marathon_close(struct jobs_backend *b)
{
	struct marathon *m = b->priv;
	if (!m)
		return;
	if (m->curl)
		curl_easy_cleanup(m->curl);
	free(m->user);
	if (m->password)
		explicit_bzero(m->password, strlen(m->password));
	free(m->password);
	free(m->token_file);
	pthread_mutex_destroy(&m->lock);
	free(m);
	b->priv = NULL;
}

/* The image as the agents pull it: the job's when it names a registry,
 * else pushed to the backend's registry first. */
static int image_ref(struct marathon *m, const struct remote_job *rj, char *out, size_t n, struct jb_error *err)
{
	struct jb_oci_ref ref;
	int r = jb_oci_ref_parse(rj->spec->image, &ref, err);
	if (r < 0)
		return r;
	if (ref.host[0]) {
		snprintf(out, n, "%s", rj->spec->image);
		return 0;
	}
	if (!m->registry)
		return jb_err(err, EINVAL,
			      "image %s is in this site's store only: Marathon's agents pull from a registry (give the "
			      "backend a registry, or the job an image of a registry)",
			      rj->spec->image);
	snprintf(out, n, "%s/%s:%s", m->registry, ref.repo, ref.tag[0] ? ref.tag : "latest");
	struct jb_oci_store *store = NULL;
	if ((r = jb_oci_store_open(rj->images, &store, err)) < 0)
		return r;
	char host[256];
	snprintf(host, sizeof host, "%.*s", (int)strcspn(m->registry, "/"), m->registry);
	struct jb_registry_opts o;
	jb_registry_opts_for(rj->c, host, NULL, NULL, false, &o);
	char digest[JB_OCI_DIGEST_MAX];
	struct jb_oci_push_stats ps;
	r = jb_oci_push(store, rj->spec->image, out, &o, 0, digest, &ps, err);
	jb_oci_store_close(store);
	if (r < 0)
		return jb_err_prefix(err, "pushing %s to %s for Marathon", rj->spec->image, out);
	return 0;
}

static int marathon_submit(struct jobs_backend *b, const struct remote_job *rj, char ext[64], struct jb_error *err)
{
	struct marathon *m = b->priv;
	const struct jb_job_spec *sp = rj->spec;
	char id[256], image[800];
	if (mj_app_id(m->prefix ? m->prefix : "jumbo", rj->c->name, rj->id, id, sizeof id) < 0 || strlen(id) >= 64)
		return jb_err(err, EINVAL, "no Marathon app id from site %s and job %s", rj->c->name, rj->id);
	int r = image_ref(m, rj, image, sizeof image, err);
	if (r < 0)
		return r;
	struct mj_job j = {.app_id = id, .image = image, .container = m->container, .args = sp->args, .env = sp->env,
			   .cpus = sp->cpus, .memory = sp->memory, .gpus = sp->gpus, .job_id = rj->id,
			   .site = rj->c->name};
	/* host paths as the agents see them */
	char(*paths)[4400] = calloc(MJ_MAX_VOLUMES, sizeof *paths);
	char(*dests)[300] = calloc(MJ_MAX_VOLUMES, sizeof *dests);
	if (!paths || !dests) {
		free(paths);
		free(dests);
		return jb_oom(err);
	}
	size_t k;
	for (size_t i = 0; i < sp->ndata && j.nvols < MJ_MAX_VOLUMES - 3; i++) {
		k = j.nvols++;
		jobs_backend_map(b, sp->data[i].source, paths[k], sizeof paths[k]);
		snprintf(dests[k], sizeof dests[k], "/data/%s", sp->data[i].name);
		j.vols[k] = (struct mj_volume){dests[k], paths[k], false};
	}
	if (sp->data_all) {
		k = j.nvols++;
		jobs_backend_map(b, sp->data_all, paths[k], sizeof paths[k]);
		j.vols[k] = (struct mj_volume){"/data", paths[k], false};
	}
	if (sp->home) {
		k = j.nvols++;
		jobs_backend_map(b, sp->home, paths[k], sizeof paths[k]);
		j.vols[k] = (struct mj_volume){JB_NOTEBOOK_HOME, paths[k], true};
		j.port = JB_NOTEBOOK_PORT;
	}
	k = j.nvols++;
	snprintf(paths[k], sizeof paths[k], "%s/workspace", rj->dir);
	j.vols[k] = (struct mj_volume){"/work", paths[k], true};
	json_t *app = mj_app(&j);
	free(paths);
	free(dests);
	char *body = app ? json_dumps(app, JSON_COMPACT) : NULL;
	json_decref(app);
	if (!body)
		return jb_oom(err);
	json_t *o = NULL;
	long code = call(m, "POST", "/v2/apps", body, &o, err);
	free(body);
	if (code < 0)
		return -EIO;
	if (code != 201) {
		char why[400];
		mj_error(o, why, sizeof why);
		json_decref(o);
		return jb_err(err, code == 409 ? EEXIST : EIO, "Marathon refused the app %s (%ld): %s", id, code, why);
	}
	json_decref(o);
	memcpy(ext, id, strlen(id) + 1); /* shorter than 64: checked above */
	return 0;
}

static int marathon_status(struct jobs_backend *b, const char *ext, struct remote_status *rs, struct jb_error *err)
{
	struct marathon *m = b->priv;
	char path[200];
	snprintf(path, sizeof path, "/v2/apps%s?embed=app.tasks&embed=app.lastTaskFailure", ext);
	json_t *o = NULL;
	long code = call(m, "GET", path, NULL, &o, err);
	memset(rs, 0, sizeof *rs);
	if (code < 0)
		return -EIO;
	struct mj_status st;
	if (mj_parse_app(o, code, &st) < 0) {
		char why[300];
		mj_error(o, why, sizeof why);
		json_decref(o);
		return jb_err(err, EIO, "Marathon: GET app %s answered %ld: %s", ext, code, why);
	}
	json_decref(o);
	rs->st = st.phase == MJ_RUNNING ? R_RUNNING : st.phase == MJ_ENDED ? R_ENDED : st.phase == MJ_UNKNOWN ? R_UNKNOWN
													: R_PENDING;
	snprintf(rs->state, sizeof rs->state, "%s", st.state[0] ? st.state : st.phase == MJ_PENDING ? "waiting" : "");
	snprintf(rs->reason, sizeof rs->reason, "%s", st.phase == MJ_UNKNOWN ? "Marathon has no such app" : st.message);
	snprintf(rs->node, sizeof rs->node, "%s", st.host);
	snprintf(rs->address, sizeof rs->address, "%s", st.address);
	rs->port = st.port;
	rs->idle = st.idle;
	rs->have_exit = st.have_exit;
	rs->exit_code = st.exit_code;
	rs->oom = st.oom;
	return 0;
}

static int marathon_cancel(struct jobs_backend *b, const char *ext, struct jb_error *err)
{
	struct marathon *m = b->priv;
	char path[200];
	snprintf(path, sizeof path, "/v2/apps%s?force=true", ext);
	json_t *o = NULL;
	long code = call(m, "DELETE", path, NULL, &o, err);
	if (code < 0)
		return -EIO;
	char why[300];
	mj_error(o, why, sizeof why);
	json_decref(o);
	if (code != 200 && code != 202 && code != 404)
		return jb_err(err, EIO, "Marathon would not delete app %s (%ld): %s", ext, code, why);
	return 0;
}

/* after the end: scaled to zero (no new task), then deleted */
static void marathon_cleanup(struct jobs_backend *b, const char *ext)
{
	struct marathon *m = b->priv;
	char path[200];
	struct jb_error err = {0};
	json_t *o = NULL;
	snprintf(path, sizeof path, "/v2/apps%s?force=true", ext);
	long code = call(m, "PUT", path, "{\"instances\":0}", &o, &err);
	json_decref(o);
	if (code != 200 && code != 201 && code != 404)
		jb_log(JB_LOG_WARN, "Marathon: scaling app %s to zero: %ld %s", ext, code, err.msg);
	if (marathon_cancel(b, ext, &err) < 0)
		jb_log(JB_LOG_WARN, "%s", err.msg);
}

static const char *const marathon_keys[] = {"url", "user", "password", "password-file", "token-file",
					    "container", "registry", "app-prefix", NULL};

const struct backend_ops jobs_marathon_ops = {
	.type = "marathon",
	.keys = marathon_keys,
	.open = marathon_open,
	.submit = marathon_submit,
	.status = marathon_status,
	.cancel = marathon_cancel,
	.cleanup = marathon_cleanup,
	.close = marathon_close,
	.networked = true,
};
