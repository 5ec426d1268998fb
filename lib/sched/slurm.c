/* The slurm backend: a job becomes a Slurm batch job whose script runs
 * "jumbod --supervise DIR" on the node Slurm picks.  Through slurmrestd
 * (key rest: http://HOST:PORT; JWT auth, a token made from jwt-key or read
 * from token-file; api-version, default v0.0.38), else through sbatch,
 * scontrol and scancel.  cpus, memory, gpus and the timeout become Slurm's
 * options; state and the node come back from Slurm, the rest from the
 * supervisor's result.json in DIR. */
#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jobs-internal.h"

struct slurm {
	char *rest;       /* base URL, or NULL: the commands */
	char version[16];
	char user[64];
	unsigned char key[1024]; /* jwt-key */
	size_t keylen;
	char *token_file;
	const char *partition, *account, *qos;
	CURL *curl;
	pthread_mutex_t lock;
};

/* ---- JWT (HS256), as Slurm's auth/jwt checks it: {"exp", "iat", "sun"} ---- */

static void b64url(const unsigned char *in, size_t n, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
		out[o++] = t[(v >> 18) & 63];
		out[o++] = t[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = t[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = t[v & 63];
	}
	out[o] = 0;
}

static int token(struct slurm *s, char *out, size_t n, struct jb_error *err)
{
	if (s->token_file) {
		char line[2048];
		int r = jb_read_line_file(s->token_file, line, sizeof line);
		char *v = strncmp(line, "SLURM_JWT=", 10) ? line : line + 10;
		if (r < 0 || !*v)
			return jb_err(err, r < 0 ? -r : EINVAL, "slurm: token-file %s: %s", s->token_file,
				      r < 0 && r != -ENODATA ? strerror(-r) : "empty");
		snprintf(out, n, "%s", v);
		explicit_bzero(line, sizeof line);
		return 0;
	}
	char hdr[64], pl[256], body[512], sig[64];
	static const char h[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	long now = (long)time(NULL);
	char p[200];
	int pn = snprintf(p, sizeof p, "{\"exp\":%ld,\"iat\":%ld,\"sun\":\"%s\"}", now + 600, now, s->user);
	b64url((const unsigned char *)h, strlen(h), hdr);
	b64url((const unsigned char *)p, (size_t)pn, pl);
	snprintf(body, sizeof body, "%s.%s", hdr, pl);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned mlen = 0;
	if (!HMAC(EVP_sha256(), s->key, (int)s->keylen, (const unsigned char *)body, strlen(body), mac, &mlen))
		return jb_err(err, EIO, "slurm: cannot sign a token");
	b64url(mac, mlen, sig);
	snprintf(out, n, "%s.%s", body, sig);
	return 0;
}

/* ---- slurmrestd ---- */

/* method path [body]: the answer's JSON (*ret), the HTTP status */
static long rest(struct slurm *s, const char *method, const char *path, const char *body, json_t **ret,
		 struct jb_error *err)
{
	char tok[2100], url[600], h1[2200], h2[128];
	*ret = NULL;
	if (token(s, tok, sizeof tok, err) < 0)
		return -1;
	snprintf(url, sizeof url, "%s/slurm/%s/%s", s->rest, s->version, path);
	snprintf(h1, sizeof h1, "X-SLURM-USER-TOKEN: %s", tok);
	snprintf(h2, sizeof h2, "X-SLURM-USER-NAME: %s", s->user);
	struct curl_slist *h = curl_slist_append(NULL, h1);
	h = curl_slist_append(h, h2);
	h = curl_slist_append(h, "Content-Type: application/json");
	long code = jb_http_json(s->curl, &s->lock, &(struct jb_http_req){.method = method, .url = url, .headers = h, .body = body},
				 ret, err);
	curl_slist_free_all(h);
	explicit_bzero(tok, sizeof tok);
	explicit_bzero(h1, sizeof h1);
	if (code < 0) {
		jb_err_prefix(err, "slurmrestd");
		return -1;
	}
	if (!*ret && code != 401 && code != 403) {
		jb_err(err, EBADMSG, "slurmrestd at %s: %s %s answered %ld without JSON", s->rest, method, path, code);
		return -1;
	}
	return code;
}

/* Slurm's first error, as words */
static const char *rest_error(json_t *o)
{
	json_t *e = json_array_get(json_object_get(o, "errors"), 0);
	const char *d = json_string_value(json_object_get(e, "description"));
	const char *m = json_string_value(json_object_get(e, "error"));
	return d && *d ? d : m ? m : NULL;
}

/* ---- the commands: sbatch, scontrol, scancel ---- */

/* argv's stdout into out (at most n-1 bytes); the exit status */
static int run(char *const *argv, char *out, size_t n)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid_t p = fork();
	if (p == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	size_t o = 0;
	ssize_t r;
	while ((r = read(pfd[0], out + o, n - 1 - o)) > 0 && (o += (size_t)r) < n - 1)
		;
	char sinkbuf[4096];
	while (read(pfd[0], sinkbuf, sizeof sinkbuf) > 0)
		;
	out[o] = 0;
	close(pfd[0]);
	int st = 0;
	if (p < 0 || waitpid(p, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* "KEY=value" in a line of scontrol show job -o */
static void field(const char *line, const char *key, char *out, size_t n)
{
	size_t kl = strlen(key);
	out[0] = 0;
	for (const char *p = line; (p = strstr(p, key)); p++) {
		if ((p == line || p[-1] == ' ') && p[kl] == '=') {
			const char *v = p + kl + 1;
			snprintf(out, n, "%.*s", (int)strcspn(v, " \n"), v);
			return;
		}
	}
}

/* ---- the operations ---- */

static int slurm_open(struct jobs_backend *b, struct jb_error *err)
{
	struct slurm *s = calloc(1, sizeof *s);
	if (!s)
		return jb_oom(err);
	b->priv = s;
	pthread_mutex_init(&s->lock, NULL);
	const struct jb_backend_conf *c = b->conf;
	const char *v;
	snprintf(s->version, sizeof s->version, "%s", (v = jb_backend_conf_get(c, "api-version")) ? v : "v0.0.38");
	if (strcmp(s->version, "v0.0.36") && strcmp(s->version, "v0.0.37") && strcmp(s->version, "v0.0.38"))
		return jb_err(err, EINVAL, "backend %s: api-version is v0.0.36, v0.0.37 or v0.0.38", c->name);
	snprintf(s->user, sizeof s->user, "%s", (v = jb_backend_conf_get(c, "user")) ? v : "root");
	s->partition = jb_backend_conf_get(c, "partition");
	s->account = jb_backend_conf_get(c, "account");
	s->qos = jb_backend_conf_get(c, "qos");
	if ((v = jb_backend_conf_get(c, "rest"))) {
		if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
			return jb_err(err, EINVAL, "backend %s: rest is http://HOST:PORT of slurmrestd", c->name);
		jb_http_init();
		if (!(s->rest = strdup(v)) || !(s->curl = curl_easy_init()))
			return jb_oom(err);
		size_t l = strlen(s->rest);
		while (l && s->rest[l - 1] == '/')
			s->rest[--l] = 0;
		const char *kf = jb_backend_conf_get(c, "jwt-key"), *tf = jb_backend_conf_get(c, "token-file");
		if (!!kf == !!tf)
			return jb_err(err, EINVAL, "backend %s: rest wants one of jwt-key (Slurm's key) or token-file", c->name);
		if (tf && !(s->token_file = strdup(tf)))
			return jb_oom(err);
		if (kf) {
			FILE *f = fopen(kf, "re");
			if (!f)
				return jb_err(err, errno, "backend %s: jwt-key %s: %s", c->name, kf, strerror(errno));
			s->keylen = fread(s->key, 1, sizeof s->key, f);
			fclose(f);
			if (s->keylen < 16)
				return jb_err(err, EINVAL, "backend %s: jwt-key %s is too short", c->name, kf);
		}
		json_t *o = NULL;
		long code = rest(s, "GET", "diag", NULL, &o, err);
		const char *why = o ? rest_error(o) : NULL;
		json_decref(o);
		if (code < 0)
			return -ECONNREFUSED;
		if (code != 200)
			return jb_err(err, EACCES, "backend %s: slurmrestd at %s answered %ld%s%s", c->name, s->rest, code,
				      why ? ": " : " (is the token accepted?)", why ? why : "");
	} else {
		char out[512], *argv[] = {(char *)"sbatch", (char *)"--version", NULL};
		if (run(argv, out, sizeof out) != 0)
			return jb_err(err, ENOENT, "backend %s: no rest and no sbatch (apt-get install slurm-client)", c->name);
	}
	return 0;
}

static void slurm_close(struct jobs_backend *b)
{
	struct slurm *s = b->priv;
	if (!s)
		return;
	if (s->curl)
		curl_easy_cleanup(s->curl);
	free(s->rest);
	free(s->token_file);
	explicit_bzero(s->key, sizeof s->key);
	pthread_mutex_destroy(&s->lock);
	free(s);
	b->priv = NULL;
}

static int slurm_submit(struct jobs_backend *b, const struct remote_job *rj, char ext[64], struct jb_error *err)
{
	struct slurm *s = b->priv;
	const struct jb_job_spec *sp = rj->spec;
	char script[8400], out[4300], name[64];
	snprintf(script, sizeof script, "#!/bin/sh\n# jumbo job %s\nexec '%s' --supervise '%s'\n", rj->id, rj->jumbod,
		 rj->dir);
	snprintf(out, sizeof out, "%s/slurm.out", rj->dir);
	snprintf(name, sizeof name, "jumbo-%s", rj->id);
	long cpus = sp->cpus > 0 ? (long)sp->cpus + ((double)(long)sp->cpus < sp->cpus) : 1;
	long mem_mb = sp->memory ? (long)((sp->memory + (1u << 20) - 1) >> 20) : 0;
	/* Slurm's limit a minute beyond the job's own, which the supervisor keeps */
	long minutes = sp->timeout > 0 ? (long)(sp->timeout / 60.0) + 2 : 0;
	if (s->rest) {
		json_t *job = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:I}", "name", name, "current_working_directory",
					rj->dir, "standard_output", out, "standard_error", out, "environment", "PATH",
					"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "cpus_per_task",
					(json_int_t)cpus);
		if (mem_mb)
			json_object_set_new(job, "memory_per_node", json_integer(mem_mb));
		if (minutes)
			json_object_set_new(job, "time_limit", json_integer(minutes));
		if (sp->gpus) {
			char g[32];
			snprintf(g, sizeof g, "gres:gpu:%u", sp->gpus);
			json_object_set_new(job, "tres_per_node", json_string(g));
		}
		if (s->partition)
			json_object_set_new(job, "partition", json_string(s->partition));
		if (s->account)
			json_object_set_new(job, "account", json_string(s->account));
		if (s->qos)
			json_object_set_new(job, "qos", json_string(s->qos));
		json_t *req = json_pack("{s:s, s:o}", "script", script, "job", job);
		char *body = json_dumps(req, JSON_COMPACT);
		json_decref(req);
		json_t *o = NULL;
		if (!body)
			return jb_oom(err);
		long code = rest(s, "POST", "job/submit", body, &o, err);
		free(body);
		if (code < 0) { /* err says why */
			json_decref(o);
			return -EIO;
		}
		json_t *id = json_object_get(o, "job_id");
		const char *why = rest_error(o);
		if (code != 200 || !json_is_integer(id)) {
			int r = jb_err(err, EIO, "Slurm refused the job: %s (slurmrestd answered %ld)", why ? why : "no reason given",
				       code);
			json_decref(o);
			return r;
		}
		snprintf(ext, 64, "%lld", (long long)json_integer_value(id));
		json_decref(o);
		return 0;
	}
	/* sbatch, with the script in the job directory */
	char sf[4300];
	snprintf(sf, sizeof sf, "%s/slurm.sh", rj->dir);
	FILE *f = fopen(sf, "we");
	if (!f || fputs(script, f) < 0 || fclose(f) != 0)
		return jb_err(err, errno, "%s: %s", sf, strerror(errno));
	char a_name[96], a_out[4400], a_dir[4400], a_cpu[48], a_mem[48], a_time[48], a_gpu[48], a_part[200], a_acct[200],
		a_qos[200];
	char *argv[20];
	int ac = 0;
	argv[ac++] = (char *)"sbatch";
	argv[ac++] = (char *)"--parsable";
	snprintf(a_name, sizeof a_name, "--job-name=%s", name);
	snprintf(a_out, sizeof a_out, "--output=%s", out);
	snprintf(a_dir, sizeof a_dir, "--chdir=%s", rj->dir);
	snprintf(a_cpu, sizeof a_cpu, "--cpus-per-task=%ld", cpus);
	argv[ac++] = a_name;
	argv[ac++] = a_out;
	argv[ac++] = a_dir;
	argv[ac++] = a_cpu;
	if (mem_mb) {
		snprintf(a_mem, sizeof a_mem, "--mem=%ldM", mem_mb);
		argv[ac++] = a_mem;
	}
	if (minutes) {
		snprintf(a_time, sizeof a_time, "--time=%ld", minutes);
		argv[ac++] = a_time;
	}
	if (sp->gpus) {
		snprintf(a_gpu, sizeof a_gpu, "--gres=gpu:%u", sp->gpus);
		argv[ac++] = a_gpu;
	}
	if (s->partition) {
		snprintf(a_part, sizeof a_part, "--partition=%s", s->partition);
		argv[ac++] = a_part;
	}
	if (s->account) {
		snprintf(a_acct, sizeof a_acct, "--account=%s", s->account);
		argv[ac++] = a_acct;
	}
	if (s->qos) {
		snprintf(a_qos, sizeof a_qos, "--qos=%s", s->qos);
		argv[ac++] = a_qos;
	}
	argv[ac++] = sf;
	argv[ac] = NULL;
	char o[1024];
	int rc = run(argv, o, sizeof o);
	o[strcspn(o, "\n")] = 0;
	if (rc != 0 || !o[0] || o[0] < '0' || o[0] > '9')
		return jb_err(err, EIO, "Slurm refused the job: sbatch: %s", o[0] ? o : "no answer");
	snprintf(ext, 64, "%.*s", (int)strcspn(o, ";"), o);
	return 0;
}

static void classify(const char *state, struct remote_status *rs)
{
	snprintf(rs->state, sizeof rs->state, "%s", state);
	if (!strcmp(state, "PENDING") || !strcmp(state, "CONFIGURING") || !strcmp(state, "REQUEUED") ||
	    !strcmp(state, "REQUEUE_HOLD") || !strcmp(state, "REQUEUE_FED") || !strcmp(state, "RESV_DEL_HOLD"))
		rs->st = R_PENDING;
	else if (!strcmp(state, "RUNNING") || !strcmp(state, "COMPLETING") || !strcmp(state, "SUSPENDED") ||
		 !strcmp(state, "STOPPED") || !strcmp(state, "SIGNALING") || !strcmp(state, "STAGE_OUT") ||
		 !strcmp(state, "RESIZING"))
		rs->st = R_RUNNING;
	else
		rs->st = R_ENDED; /* COMPLETED FAILED CANCELLED TIMEOUT OUT_OF_MEMORY NODE_FAIL PREEMPTED BOOT_FAIL DEADLINE */
}

static int slurm_status(struct jobs_backend *b, const char *ext, struct remote_status *rs, struct jb_error *err)
{
	struct slurm *s = b->priv;
	memset(rs, 0, sizeof *rs);
	if (s->rest) {
		char path[96];
		snprintf(path, sizeof path, "job/%s", ext);
		json_t *o = NULL;
		long code = rest(s, "GET", path, NULL, &o, err);
		if (code < 0) {
			json_decref(o);
			return -EIO;
		}
		json_t *job = json_array_get(json_object_get(o, "jobs"), 0);
		json_t *e = json_array_get(json_object_get(o, "errors"), 0);
		if (!job && json_integer_value(json_object_get(e, "error_number")) == 2017) { /* ESLURM_INVALID_JOB_ID */
			rs->st = R_UNKNOWN;
			snprintf(rs->reason, sizeof rs->reason, "Slurm has no job %s", ext);
			json_decref(o);
			return 0;
		}
		if (!job) {
			const char *why = rest_error(o);
			int r = jb_err(err, EIO, "slurmrestd: job %s: %s (%ld)", ext, why ? why : "no answer", code);
			json_decref(o);
			return r;
		}
		const char *st = json_string_value(json_object_get(job, "job_state"));
		classify(st ? st : "UNKNOWN", rs);
		const char *why = json_string_value(json_object_get(job, "state_reason"));
		if (why && strcmp(why, "None"))
			snprintf(rs->reason, sizeof rs->reason, "%s", why);
		const char *node = json_string_value(json_object_get(job, "batch_host"));
		if (!node || !*node)
			node = json_string_value(json_object_get(job, "nodes"));
		snprintf(rs->node, sizeof rs->node, "%s", node ? node : "");
		json_decref(o);
		return 0;
	}
	char out[16384], jid[80];
	snprintf(jid, sizeof jid, "%s", ext);
	char *argv[] = {(char *)"scontrol", (char *)"show", (char *)"job", (char *)"-o", jid, NULL};
	int rc = run(argv, out, sizeof out);
	if (rc != 0) {
		if (strstr(out, "Invalid job id")) {
			rs->st = R_UNKNOWN;
			snprintf(rs->reason, sizeof rs->reason, "Slurm has no job %s", ext);
			return 0;
		}
		out[strcspn(out, "\n")] = 0;
		return jb_err(err, EIO, "scontrol show job %s: %s", ext, out[0] ? out : "failed");
	}
	char st[48], why[200];
	field(out, "JobState", st, sizeof st);
	classify(st[0] ? st : "UNKNOWN", rs);
	field(out, "Reason", why, sizeof why);
	if (why[0] && strcmp(why, "None"))
		snprintf(rs->reason, sizeof rs->reason, "%s", why);
	field(out, "BatchHost", rs->node, sizeof rs->node);
	return 0;
}

static int slurm_cancel(struct jobs_backend *b, const char *ext, struct jb_error *err)
{
	struct slurm *s = b->priv;
	if (s->rest) {
		char path[96];
		snprintf(path, sizeof path, "job/%s", ext);
		json_t *o = NULL;
		long code = rest(s, "DELETE", path, NULL, &o, err);
		const char *why = o ? rest_error(o) : NULL;
		int r = code == 200 ? 0
				    : jb_err(err, EIO, "Slurm would not cancel job %s: %s", ext, why ? why : "no reason given");
		json_decref(o);
		return code < 0 ? -EIO : r;
	}
	char out[1024], jid[80];
	snprintf(jid, sizeof jid, "%s", ext);
	char *argv[] = {(char *)"scancel", jid, NULL};
	if (run(argv, out, sizeof out) != 0) {
		out[strcspn(out, "\n")] = 0;
		return jb_err(err, EIO, "scancel %s: %s", ext, out[0] ? out : "failed");
	}
	return 0;
}

static const char *const slurm_keys[] = {"rest", "api-version", "user", "jwt-key", "token-file",
					 "partition", "account", "qos", NULL};

const struct backend_ops jobs_slurm_ops = {
	.type = "slurm",
	.keys = slurm_keys,
	.open = slurm_open,
	.submit = slurm_submit,
	.status = slurm_status,
	.cancel = slurm_cancel,
	.close = slurm_close,
	.supervised = true,
};
