/* Marathon's documents: the app jumbo posts, the app it reads back. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "marathon.h"

/* one PathId segment from s: lowercase, [a-z0-9.-], others '-', trimmed of '-' */
static size_t segment(const char *s, char *out, size_t n)
{
	size_t o = 0;
	for (; *s && o + 1 < n; s++) {
		char c = (char)tolower((unsigned char)*s);
		out[o++] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ? c : '-';
	}
	out[o] = 0;
	size_t b = 0;
	while (out[b] == '-' || out[b] == '.')
		b++;
	memmove(out, out + b, o - b + 1);
	o -= b;
	while (o && (out[o - 1] == '-' || out[o - 1] == '.'))
		out[--o] = 0;
	return o;
}

int mj_app_id(const char *prefix, const char *site, const char *job, char *out, size_t n)
{
	char p[128] = "", s[128], j[64];
	size_t o = 0;
	out[0] = 0;
	/* the prefix may have several segments */
	const char *q = prefix ? prefix : "jumbo";
	while (*q) {
		while (*q == '/')
			q++;
		size_t l = strcspn(q, "/");
		if (!l)
			break;
		char tmp[128];
		snprintf(tmp, sizeof tmp, "%.*s", (int)l, q);
		if (segment(tmp, p, sizeof p) == 0)
			return -1;
		int w = snprintf(out + o, n - o, "/%s", p);
		if (w < 0 || (size_t)w >= n - o)
			return -1;
		o += (size_t)w;
		q += l;
	}
	if (!segment(site, s, sizeof s) || !segment(job, j, sizeof j))
		return -1;
	int w = snprintf(out + o, n - o, "/%s/%s", s, j);
	return w < 0 || (size_t)w >= n - o ? -1 : 0;
}

json_t *mj_app(const struct mj_job *j)
{
	json_t *env = json_object();
	for (char *const *e = j->env; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq || eq == *e)
			continue;
		char k[256];
		snprintf(k, sizeof k, "%.*s", (int)(eq - *e), *e);
		json_object_set_new(env, k, json_string(eq + 1));
	}
	json_t *vols = json_array();
	for (size_t i = 0; i < j->nvols; i++)
		json_array_append_new(vols, json_pack("{s:s, s:s, s:s}", "containerPath", j->vols[i].container_path,
						      "hostPath", j->vols[i].host_path, "mode", j->vols[i].rw ? "RW" : "RO"));
	json_t *container = json_pack("{s:s, s:{s:s, s:b}, s:o}", "type", j->container ? j->container : "MESOS", "docker",
				      "image", j->image, "forcePullImage", 0, "volumes", vols);
	json_t *networks;
	if (j->port) {
		json_object_set_new(container, "portMappings",
				    json_pack("[{s:i, s:i, s:s, s:s}]", "containerPort", j->port, "hostPort", 0, "protocol",
					      "tcp", "name", "notebook"));
		networks = json_pack("[{s:s}]", "mode", "container/bridge");
	} else {
		networks = json_pack("[{s:s}]", "mode", "host");
	}
	double mem = j->memory ? (double)((j->memory + (1u << 20) - 1) >> 20) : 1024;
	json_t *app = json_pack("{s:s, s:f, s:f, s:f, s:i, s:i, s:o, s:o, s:o, s:{s:s, s:s}, s:i, s:f, s:i, s:{s:f, s:f}}",
				"id", j->app_id, "cpus", j->cpus > 0 ? j->cpus : 1.0, "mem", mem, "disk", 0.0, "gpus",
				(int)j->gpus, "instances", 1, "container", container, "networks", networks, "env", env, "labels",
				"org.jumbo.job", j->job_id ? j->job_id : "", "org.jumbo.site", j->site ? j->site : "",
				/* a task that ends is not started again before jumbo has seen it end */
				"backoffSeconds", 3600, "backoffFactor", 1.0, "maxLaunchDelaySeconds", 3600, "upgradeStrategy",
				"minimumHealthCapacity", 0.0, "maximumOverCapacity", 0.0);
	if (!app)
		return NULL;
	if (j->args && j->args[0]) {
		json_t *a = json_array();
		for (char *const *p = j->args; *p; p++)
			json_array_append_new(a, json_string(*p));
		json_object_set_new(app, "args", a);
	}
	if (!j->port)
		json_object_set_new(app, "portDefinitions", json_array());
	return app;
}

bool mj_exit_of(const char *state, const char *message, int *exit_code, bool *oom)
{
	*oom = false;
	if (!state)
		return false;
	if (message && (strstr(message, "Memory limit exceeded") || strstr(message, "memory limit") ||
			strstr(message, "OOM"))) {
		*oom = true;
		*exit_code = 137;
		return true;
	}
	const char *p = message ? strstr(message, "exited with status ") : NULL;
	if (p) {
		char *end;
		long v = strtol(p + 19, &end, 10);
		if (end != p + 19 && v >= 0 && v < 256) {
			*exit_code = (int)v;
			return true;
		}
	}
	if (!strcmp(state, "TASK_FINISHED")) {
		*exit_code = 0;
		return true;
	}
	if (!strcmp(state, "TASK_KILLED")) {
		*exit_code = 137;
		return true;
	}
	return false;
}

static void copy(char *dst, size_t n, const json_t *v)
{
	const char *s = json_string_value(v);
	snprintf(dst, n, "%s", s ? s : "");
}

int mj_parse_app(const json_t *answer, long status, struct mj_status *st)
{
	memset(st, 0, sizeof *st);
	if (status == 404) {
		st->phase = MJ_UNKNOWN;
		mj_error(answer, st->message, sizeof st->message);
		return 0;
	}
	const json_t *app = json_object_get(answer, "app");
	if (status != 200 || !json_is_object(app) || !json_is_string(json_object_get(app, "id")))
		return -1;
	const json_t *tasks = json_object_get(app, "tasks");
	if (tasks && !json_is_array(tasks))
		return -1;
	size_t i;
	const json_t *t;
	bool staged = false;
	json_array_foreach (tasks, i, t) {
		const char *s = json_string_value(json_object_get(t, "state"));
		if (!json_is_object(t) || !s)
			return -1;
		if (!strcmp(s, "TASK_STAGING") || !strcmp(s, "TASK_STARTING"))
			staged = true;
		if (strcmp(s, "TASK_RUNNING") || st->phase == MJ_RUNNING)
			continue;
		st->phase = MJ_RUNNING;
		snprintf(st->state, sizeof st->state, "%s", s);
		copy(st->host, sizeof st->host, json_object_get(t, "host"));
		/* a bridge network: the host and its host port; a container network: the task's IP */
		const json_t *ports = json_object_get(t, "ports");
		const json_t *ip = json_object_get(json_array_get(json_object_get(t, "ipAddresses"), 0), "ipAddress");
		json_int_t p = json_integer_value(json_array_get(ports, 0));
		if (p > 0 && p < 65536) {
			st->port = (int)p;
			snprintf(st->address, sizeof st->address, "%.63s", st->host);
		} else if (json_is_string(ip)) {
			copy(st->address, sizeof st->address, ip);
		}
	}
	if (st->phase == MJ_RUNNING)
		return 0;
	const json_t *f = json_object_get(app, "lastTaskFailure");
	if (json_is_object(f)) {
		st->phase = MJ_ENDED;
		copy(st->state, sizeof st->state, json_object_get(f, "state"));
		copy(st->message, sizeof st->message, json_object_get(f, "message"));
		copy(st->host, sizeof st->host, json_object_get(f, "host"));
		st->have_exit = mj_exit_of(st->state, st->message, &st->exit_code, &st->oom);
		return 0;
	}
	st->phase = MJ_PENDING;
	st->idle = !staged && json_integer_value(json_object_get(app, "tasksStaged")) == 0 &&
		   json_integer_value(json_object_get(app, "tasksRunning")) == 0;
	return 0;
}

void mj_error(const json_t *answer, char *out, size_t n)
{
	const char *m = json_string_value(json_object_get(answer, "message"));
	const json_t *d = json_object_get(answer, "details");
	char detail[300] = "";
	if (json_is_string(d)) {
		snprintf(detail, sizeof detail, "%s", json_string_value(d));
	} else if (json_is_array(d)) {
		const json_t *d0 = json_array_get(d, 0);
		const char *path = json_string_value(json_object_get(d0, "path"));
		const char *e0 = json_string_value(json_array_get(json_object_get(d0, "errors"), 0));
		if (!e0)
			e0 = json_string_value(json_object_get(d0, "message"));
		if (e0)
			snprintf(detail, sizeof detail, "%s%s%s", path ? path : "", path ? ": " : "", e0);
	}
	snprintf(out, n, "%s%s%s", m ? m : "no message", detail[0] ? " (" : "", detail);
	if (detail[0] && strlen(out) + 1 < n)
		strcat(out, ")");
}
