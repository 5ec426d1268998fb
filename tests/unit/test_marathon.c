/* Marathon's documents (lib/sched/marathon_json.c) against the types and
 * answers Marathon publishes (mesosphere/marathon docs/docs/rest-api/public/
 * api/, RAML 1.0): the app jumbo posts satisfies App's constraints; the
 * answers it reads, in the documented shapes, give the task's agent and
 * port, how it ended, Marathon's errors.  With $JUMBO_MARATHON_DOCS (a
 * directory holding that repository's docs/docs/rest-api/public/api/v2/
 * examples, see tests/contract/marathon-docs), the published examples
 * themselves are read too. */
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/sched/marathon.h"
#include "tap.h"

/* App.id: strings.PathId of stringTypes.raml, in POSIX ERE */
#define PATH_ID "^(/?((\\.\\.)|(([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9]))?($|/))+$"
#define PORT_NAME "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

static bool matches(const char *re, const char *s)
{
	regex_t r;
	if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB))
		return false;
	bool ok = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	return ok;
}

static const char *str(const json_t *o, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	const json_t *v = o;
	for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
		v = json_is_array(v) ? json_array_get(v, (size_t)atoi(k)) : json_object_get(v, k);
	return json_string_value(v);
}

static void app_checks(void)
{
	char id[128];
	is_int(mj_app_id("jumbo", "alpha", "5a7107c580c4", id, sizeof id), 0, "an app id from prefix, site and job");
	is_str(id, "/jumbo/alpha/5a7107c580c4", "/PREFIX/SITE/JOB");
	is_int(mj_app_id("/jumbo/prod/", "Site_A", "-X-", id, sizeof id), 0, "a prefix of two segments, a site to clean");
	is_str(id, "/jumbo/prod/site-a/x", "lowercase, '_' to '-', no '-' at the ends");
	ok(matches(PATH_ID, id), "it matches App.id's PathId pattern");
	is_int(mj_app_id("jumbo", "---", "a", id, sizeof id), -1, "a site with nothing left is refused");

	char *args[] = {"sh", "-c", "exit 0", NULL}, *env[] = {"MODE=fast", "EMPTY=", "=bad", NULL};
	struct mj_job j = {.app_id = "/jumbo/alpha/5a71", .image = "registry.example:5000/lab/py:3.11", .container = "MESOS",
			   .args = args, .env = env, .cpus = 0.5, .memory = 300u << 20, .gpus = 1, .job_id = "5a71",
			   .site = "alpha", .nvols = 2};
	j.vols[0] = (struct mj_volume){"/data/run7", "/srv/jumbo/data/run7", false};
	j.vols[1] = (struct mj_volume){"/work", "/srv/state/jobs/5a71/workspace", true};
	json_t *app = mj_app(&j);
	ok(app != NULL, "mj_app builds the app");
	ok(matches(PATH_ID, str(app, "id")), "id: a PathId");
	ok(json_object_get(app, "cmd") == NULL && json_array_size(json_object_get(app, "args")) == 3,
	   "args, and no cmd (App: one or the other)");
	is_str(str(app, "container.type"), "MESOS", "container.type: an EngineType (MESOS)");
	is_str(str(app, "container.docker.image"), j.image, "container.docker.image: required, not empty");
	ok(json_is_false(json_object_get(json_object_get(json_object_get(app, "container"), "docker"), "forcePullImage")),
	   "forcePullImage: boolean");
	ok(json_object_get(json_object_get(json_object_get(app, "container"), "docker"), "network") == NULL,
	   "no container.docker.network (removed in 1.5)");
	is_str(str(app, "container.volumes.0.mode"), "RO", "a dataset volume: mode RO");
	is_str(str(app, "container.volumes.1.mode"), "RW", "the workspace: mode RW");
	is_str(str(app, "container.volumes.0.hostPath"), "/srv/jumbo/data/run7", "hostPath");
	ok(json_number_value(json_object_get(app, "cpus")) >= 0.001, "cpus >= 0.001");
	ok(json_number_value(json_object_get(app, "mem")) == 300, "mem: MB");
	ok(json_is_integer(json_object_get(app, "gpus")) && json_integer_value(json_object_get(app, "gpus")) == 1,
	   "gpus: an int32");
	ok(json_integer_value(json_object_get(app, "instances")) == 1, "instances: 1");
	is_str(str(app, "networks.0.mode"), "host", "networks: [{mode: host}] for a batch job");
	ok(json_is_array(json_object_get(app, "portDefinitions")) && !json_array_size(json_object_get(app, "portDefinitions")),
	   "portDefinitions: [] (no ports)");
	is_str(str(app, "env.MODE"), "fast", "env: a string map");
	is_str(str(app, "env.EMPTY"), "", "an empty value stays");
	is_int((int)json_object_size(json_object_get(app, "env")), 2, "a malformed NAME=VALUE is left out");
	is_str(json_string_value(json_object_get(json_object_get(app, "labels"), "org.jumbo.job")), "5a71", "label org.jumbo.job");
	ok(json_integer_value(json_object_get(app, "backoffSeconds")) >= 0 &&
		   json_real_value(json_object_get(app, "backoffFactor")) >= 1.0 &&
		   json_integer_value(json_object_get(app, "maxLaunchDelaySeconds")) >= 0,
	   "backoffSeconds >= 0, backoffFactor >= 1, maxLaunchDelaySeconds >= 0");
	double mh = json_number_value(json_object_get(json_object_get(app, "upgradeStrategy"), "minimumHealthCapacity"));
	ok(mh >= 0 && mh <= 1, "upgradeStrategy within 0..1");
	json_decref(app);

	j.port = 8888;
	j.args = NULL;
	j.container = "DOCKER";
	app = mj_app(&j);
	is_str(str(app, "networks.0.mode"), "container/bridge", "a notebook: networks [{mode: container/bridge}]");
	ok(json_integer_value(json_object_get(json_array_get(json_object_get(json_object_get(app, "container"),
									    "portMappings"),
							     0),
					      "containerPort")) == 8888,
	   "container.portMappings (1.5+ place) maps port 8888");
	ok(matches(PORT_NAME, str(app, "container.portMappings.0.name")), "its name matches the port name pattern");
	ok(json_object_get(app, "portDefinitions") == NULL, "no portDefinitions on a bridge network");
	ok(json_object_get(app, "args") == NULL && json_object_get(app, "cmd") == NULL, "no command: the image's");
	is_str(str(app, "container.type"), "DOCKER", "the Docker containerizer when asked");
	json_decref(app);
}

static json_t *J(const char *s)
{
	json_error_t e;
	json_t *o = json_loads(s, 0, &e);
	if (!o)
		printf("# bad fixture: %s\n", e.text);
	return o;
}

static void parse_checks(void)
{
	struct mj_status st;
	/* AppInfo with one task on a bridge network: task.raml's Task */
	json_t *o = J("{\"app\": {\"id\": \"/jumbo/a/b\", \"instances\": 1, \"tasksStaged\": 0, \"tasksRunning\": 1,"
		      " \"tasksHealthy\": 0, \"tasksUnhealthy\": 0, \"deployments\": [], \"tasks\": [{\"id\": \"jumbo_a_b.1\","
		      " \"appId\": \"/jumbo/a/b\", \"host\": \"agent-7.example\", \"ports\": [31005], \"ipAddresses\":"
		      " [{\"ipAddress\": \"172.17.0.4\", \"protocol\": \"IPv4\"}], \"slaveId\": \"S7\", \"stagedAt\":"
		      " \"2026-11-27T10:00:00.000Z\", \"startedAt\": \"2026-11-27T10:00:01.000Z\", \"state\": \"TASK_RUNNING\","
		      " \"version\": \"2026-11-27T09:59:59.000Z\"}]}}");
	is_int(mj_parse_app(o, 200, &st), 0, "a running app parses");
	is_int(st.phase, MJ_RUNNING, "running");
	is_str(st.host, "agent-7.example", "on its agent");
	is_str(st.address, "agent-7.example", "reached at the agent");
	is_int(st.port, 31005, "on the host port of its first port");
	json_decref(o);
	o = J("{\"app\": {\"id\": \"/x\", \"tasks\": [{\"id\": \"x.1\", \"host\": \"agent-2\", \"ports\": [], \"ipAddresses\":"
	      " [{\"ipAddress\": \"10.9.0.12\", \"protocol\": \"IPv4\"}], \"state\": \"TASK_RUNNING\"}]}}");
	is_int(mj_parse_app(o, 200, &st), 0, "a task on a container network");
	is_str(st.address, "10.9.0.12", "reached at its own IP");
	is_int(st.port, 0, "with no host port");
	json_decref(o);
	o = J("{\"app\": {\"id\": \"/x\", \"tasks\": [], \"tasksStaged\": 0, \"tasksRunning\": 0, \"lastTaskFailure\":"
	      " {\"appId\": \"/x\", \"host\": \"agent-3\", \"message\": \"Command exited with status 3\", \"state\":"
	      " \"TASK_FAILED\", \"taskId\": \"x.2\", \"timestamp\": \"2026-11-27T10:01:00.000Z\", \"version\":"
	      " \"2026-11-27T10:00:00.000Z\", \"slaveId\": \"S3\"}}}");
	is_int(mj_parse_app(o, 200, &st), 0, "lastTaskFailure parses");
	ok(st.phase == MJ_ENDED && st.have_exit && st.exit_code == 3 && !st.oom, "ended, exit status 3");
	is_str(st.state, "TASK_FAILED", "its state");
	is_str(st.host, "agent-3", "where it ran");
	json_decref(o);
	o = J("{\"app\": {\"id\": \"/x\", \"tasks\": [], \"lastTaskFailure\": {\"state\": \"TASK_FAILED\", \"message\":"
	      " \"Memory limit exceeded: Requested: 64MB Maximum Used: 64MB\"}}}");
	mj_parse_app(o, 200, &st);
	ok(st.oom && st.exit_code == 137, "a memory limit: oom, 137");
	json_decref(o);
	o = J("{\"app\": {\"id\": \"/x\", \"tasks\": [], \"lastTaskFailure\": {\"state\": \"TASK_LOST\", \"message\": \"Abnormal"
	      " executor termination\"}}}");
	is_int(mj_parse_app(o, 200, &st), 0, "a raw Mesos state (TASK_LOST) in lastTaskFailure is taken");
	ok(st.phase == MJ_ENDED && !st.have_exit, "ended, no exit status told");
	json_decref(o);
	o = J("{\"app\": {\"id\": \"/x\", \"tasksStaged\": 1, \"tasks\": [{\"id\": \"x.3\", \"state\": \"TASK_STAGING\","
	      " \"host\": \"agent-1\"}]}}");
	mj_parse_app(o, 200, &st);
	ok(st.phase == MJ_PENDING && !st.idle, "staging: pending, not idle");
	json_decref(o);
	o = J("{\"app\": {\"id\": \"/x\", \"tasks\": [], \"tasksStaged\": 0, \"tasksRunning\": 0}}");
	mj_parse_app(o, 200, &st);
	ok(st.phase == MJ_PENDING && st.idle, "no task, no failure: pending and idle");
	json_decref(o);
	o = J("{\"message\": \"App '/jumbo/a/gone' does not exist\"}");
	is_int(mj_parse_app(o, 404, &st), 0, "a 404 parses");
	is_int(st.phase, MJ_UNKNOWN, "the app is unknown");
	is_str(st.message, "App '/jumbo/a/gone' does not exist", "with Marathon's message");
	json_decref(o);
	o = J("{\"apps\": [{\"id\": \"/x\"}]}");
	is_int(mj_parse_app(o, 200, &st), -1, "the list shape (the RAML's mistaken 200 example) is not an app");
	json_decref(o);
	o = J("{\"app\": {\"id\": \"/x\", \"tasks\": {\"state\": \"TASK_RUNNING\"}}}");
	is_int(mj_parse_app(o, 200, &st), -1, "tasks that are not an array: refused");
	json_decref(o);
	o = J("{\"app\": {\"id\": \"/x\", \"tasks\": [{\"id\": \"x\"}]}}");
	is_int(mj_parse_app(o, 200, &st), -1, "a task without a state: refused");
	json_decref(o);
	is_int(mj_parse_app(NULL, 502, &st), -1, "no JSON (a proxy's 502): refused");

	/* error.raml and the code's shapes */
	char m[300];
	o = J("{\"message\": \"Object is not valid\", \"details\": [{\"path\": \"/id\", \"errors\": [\"error.pattern\"]}]}");
	mj_error(o, m, sizeof m);
	is_str(m, "Object is not valid (/id: error.pattern)", "422: message and first detail");
	json_decref(o);
	o = J("{\"message\": \"Invalid JSON\", \"details\": \"Unexpected end-of-input\"}");
	mj_error(o, m, sizeof m);
	is_str(m, "Invalid JSON (Unexpected end-of-input)", "400 with details as a string");
	json_decref(o);
	o = J("{\"message\": \"App is locked by one or more deployments.\", \"deployments\": [{\"id\": \"d1\"}]}");
	mj_error(o, m, sizeof m);
	is_str(m, "App is locked by one or more deployments.", "409 locked: the message");
	json_decref(o);
	mj_error(NULL, m, sizeof m);
	is_str(m, "no message", "no body (a 401 of the web server is HTML)");

	int code;
	bool oom;
	ok(mj_exit_of("TASK_FINISHED", "", &code, &oom) && code == 0, "TASK_FINISHED: 0");
	ok(mj_exit_of("TASK_KILLED", NULL, &code, &oom) && code == 137, "TASK_KILLED: 137");
	ok(!mj_exit_of("TASK_ERROR", "bad", &code, &oom), "TASK_ERROR without a status: untold");
}

/* The published examples themselves, when a copy is given */
static void docs_checks(const char *dir)
{
	char p[4200];
	struct mj_status st;
	snprintf(p, sizeof p, "%s/app_tasks.json", dir);
	json_t *tasks = json_load_file(p, 0, NULL);
	ok(json_is_array(json_object_get(tasks, "tasks")), "examples/app_tasks.json: {tasks: [...]}");
	json_t *app = json_pack("{s:{s:s, s:O}}", "app", "id", "/example", "tasks", json_object_get(tasks, "tasks"));
	is_int(mj_parse_app(app, 200, &st), 0, "its tasks parse as an app's");
	ok(st.phase == MJ_PENDING && !st.idle, "its task is TASK_STAGING: pending, not idle");
	json_decref(app);
	/* the same task once Mesos runs it */
	json_t *t0 = json_array_get(json_object_get(tasks, "tasks"), 0);
	json_object_set_new(t0, "state", json_string("TASK_RUNNING"));
	app = json_pack("{s:{s:s, s:O}}", "app", "id", "/example", "tasks", json_object_get(tasks, "tasks"));
	is_int(mj_parse_app(app, 200, &st), 0, "the example's task, running, parses");
	ok(st.phase == MJ_RUNNING && !strcmp(st.host, json_string_value(json_object_get(t0, "host"))) &&
		   st.port == json_integer_value(json_array_get(json_object_get(t0, "ports"), 0)),
	   "running on its host and port (%s:%d)", st.host, st.port);
	json_decref(app);
	json_decref(tasks);
	snprintf(p, sizeof p, "%s/tasks.json", dir);
	tasks = json_load_file(p, 0, NULL);
	if (tasks) {
		app = json_pack("{s:{s:s, s:O}}", "app", "id", "/example", "tasks", json_object_get(tasks, "tasks"));
		is_int(mj_parse_app(app, 200, &st), 0, "examples/tasks.json parses");
		json_decref(app);
		json_decref(tasks);
	}
	snprintf(p, sizeof p, "%s/app.json", dir);
	json_t *ex = json_load_file(p, 0, NULL);
	ok(json_is_object(ex), "examples/app.json loads");
	app = json_pack("{s:O}", "app", ex);
	is_int(mj_parse_app(app, 200, &st), 0, "examples/app.json, as GET's {app: ...}, parses");
	json_decref(app);
	/* what jumbo sends uses the fields the example uses, at the same places */
	struct mj_job j = {.app_id = "/x", .image = "i", .container = "DOCKER", .port = 8888};
	json_t *ours = mj_app(&j);
	const char *keys[] = {"id", "cpus", "mem", "instances", "container", "env", "labels", "backoffSeconds",
			      "backoffFactor", "maxLaunchDelaySeconds", "upgradeStrategy", NULL};
	for (const char **k = keys; *k; k++)
		ok(json_object_get(ex, *k) != NULL && json_object_get(ours, *k) != NULL &&
			   (json_typeof(json_object_get(ex, *k)) == json_typeof(json_object_get(ours, *k)) ||
			    (json_is_number(json_object_get(ex, *k)) && json_is_number(json_object_get(ours, *k)))),
		   "\"%s\": in the example and in jumbo's app, of the same JSON type (numbers are numbers)", *k);
	ok(json_object_get(json_object_get(ex, "container"), "docker") != NULL, "container.docker, as jumbo sends it");
	json_decref(ours);
	json_decref(ex);
}

int main(void)
{
	app_checks();
	parse_checks();
	const char *docs = getenv("JUMBO_MARATHON_DOCS");
	if (docs && *docs)
		docs_checks(docs);
	else
		printf("# JUMBO_MARATHON_DOCS unset: Marathon's own examples not read (tests/contract/marathon-docs does)\n");
	return tap_done();
}
