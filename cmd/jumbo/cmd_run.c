/* jumbo run | jobs | logs | kill: jobs in containers, through the local
 * jumbod's REST API. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jumbo.h"
#include "jumbo/api.h"

#define DEFAULT_IMAGE "jumbo/minimal"

static volatile sig_atomic_t g_interrupted;
static void on_interrupt(int sig) { g_interrupted = 1; }

/* --api, else $JUMBO_API, else [site] api of the configuration; the token
 * from $JUMBO_TOKEN, else the site's own (STATE/api.token, for root on the
 * daemon's host). */
int cli_api(struct cli *g, const char *api, struct jb_api_client **ret)
{
	struct jb_config *c = NULL;
	const char *tok = getenv("JUMBO_TOKEN");
	char buf[JB_TOKEN_LEN + 2] = "";
	if (!api || !*api)
		api = getenv("JUMBO_API");
	if (!api || !*api) {
		if (cli_load_config(g, &c) < 0)
			return -1;
		api = c->api;
	} else if (!tok || !*tok) {
		const char *path = g->config_path && *g->config_path ? g->config_path : getenv("JUMBO_CONFIG");
		if (path && *path)
			jb_config_load(path, &c, NULL);
	}
	if ((!tok || !*tok) && c && c->state) {
		char p[4200];
		snprintf(p, sizeof p, "%s/api.token", c->state);
		if (jb_read_line_file(p, buf, sizeof buf) == 0)
			tok = buf;
	}
	struct jb_error err = {0};
	int r = jb_api_client_open(api, tok, ret, &err);
	explicit_bzero(buf, sizeof buf);
	jb_config_free(c);
	if (r < 0)
		cli_error("%s", err.msg);
	return r;
}

/* "90", "90s", "15m", "2h", "1d": seconds. */
static int parse_duration(const char *s, double *ret)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || v <= 0 || !isfinite(v))
		return -1;
	double mul = !*end || !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h") ? 3600
		   : !strcmp(end, "d") ? 86400 : 0;
	if (!mul)
		return -1;
	*ret = v * mul;
	return 0;
}

static const char run_usage[] =
	"Usage: jumbo run [OPTIONS] [-- CMD [ARG...]]\n"
	"\n"
	"Runs CMD in a container on this site (jumbod, with crun), next to the data:\n"
	"datasets read-only under /data, a workspace at /work.  The output streams\n"
	"back; the exit status is the job's.\n"
	"\n"
	"  -i, --image NAME       the image (default " DEFAULT_IMAGE "); pulled when it names a registry\n"
	"  -d, --data [NAME=]PATH a file or directory of the data root, at /data/NAME (default: its\n"
	"                         last component); repeatable\n"
	"  -e, --env NAME=VALUE   an environment variable; repeatable\n"
	"      --cpus N           CPUs (fractions allowed)\n"
	"  -m, --memory SIZE      memory limit (512M, 4G); over it the job is killed: exit 137\n"
	"      --pids N           process limit (default 4096)\n"
	"      --gpus N           NVIDIA GPUs (refused on a site without them)\n"
	"  -t, --timeout D        kill the job after D (90, 90s, 15m, 2h, 1d)\n"
	"      --network[=MODE]   host: the host's network; veth: a network of its own joined\n"
	"                         to the host (its address in 'jumbo jobs ID'; nothing beyond\n"
	"                         the host); none (the default): only its own loopback\n"
	"  -b, --backend NAME     where it runs: a [backend NAME] of the site (Slurm), or local\n"
	"                         (the default: this host)\n"
	"      --detach           print the job's id and return\n"
	"      --api HOST:PORT    the daemon's API (default $JUMBO_API, then [site] api)\n"
	"      --json             print the finished job as JSON (with --detach: the job)\n"
	"  -h, --help             this text\n"
	"\n"
	"Exit status: the job's; 124 when it ran over --timeout; 125 when it could not\n"
	"start (bad image, bad path, no such GPU...).  Ctrl-C cancels the job.\n";

/* Copy new bytes of both streams to ours; returns the job's state. */
static int pump_logs(struct jb_api_client *c, const char *id, uint64_t off[2], char state[32], struct jb_error *err)
{
	static const char *const streams[2] = {"stdout", "stderr"};
	for (int s = 0; s < 2; s++) {
		for (;;) {
			char *buf = NULL;
			size_t len = 0;
			uint64_t next;
			if (jb_api_logs(c, id, streams[s], off[s], &buf, &len, &next, state, err) < 0)
				return -1;
			if (len && fwrite(buf, 1, len, s ? stderr : stdout) != len) {
				free(buf);
				return -1;
			}
			free(buf);
			off[s] = next;
			if (len < (1u << 20))
				break;
		}
		fflush(s ? stderr : stdout);
	}
	return 0;
}

static bool final_state(const char *s) { return *s && strcmp(s, "pending") && strcmp(s, "running"); }

/* Wait for a job, streaming its output; the exit status for jumbo. */
int cli_follow(struct jb_api_client *c, const char *id, bool json, bool cancel_on_interrupt)
{
	struct jb_error err = {0};
	uint64_t off[2] = {0, 0};
	char state[32] = "";
	bool asked = false;
	/* poll often at first (most of a short job's wait), then every 100 ms */
	useconds_t delay = 2000;
	for (;;) {
		if (pump_logs(c, id, off, state, &err) < 0) {
			cli_error("job %s: %s", id, err.msg);
			return 1;
		}
		if (final_state(state)) {
			/* the state was read before the bytes: one more pass gets the rest */
			if (pump_logs(c, id, off, state, &err) < 0)
				return 1;
			break;
		}
		if (g_interrupted && cancel_on_interrupt && !asked) {
			long st;
			json_t *r = NULL;
			char path[128];
			snprintf(path, sizeof path, "/api/v1/jobs/%s/kill", id);
			if (jb_api_call(c, "POST", path, NULL, &st, &r, &err) == 0)
				fprintf(stderr, "jumbo: cancelling job %s\n", id);
			json_decref(r);
			asked = true;
		}
		usleep(delay);
		delay = delay * 2 > 100000 ? 100000 : delay * 2;
	}
	long st;
	json_t *job = NULL;
	char path[128];
	snprintf(path, sizeof path, "/api/v1/jobs/%s", id);
	if (jb_api_call(c, "GET", path, NULL, &st, &job, &err) < 0) {
		cli_error("job %s: %s", id, err.msg);
		return 1;
	}
	const char *s = json_string_value(json_object_get(job, "state"));
	const char *reason = json_string_value(json_object_get(job, "reason"));
	json_t *ec = json_object_get(job, "exit_code");
	int rc = json_is_integer(ec) && json_integer_value(ec) >= 0 ? (int)json_integer_value(ec) : 125;
	if (!strcmp(s, "timeout"))
		rc = 124;
	if (json) {
		char *d = json_dumps(job, JSON_INDENT(2));
		if (d)
			puts(d);
		free(d);
	}
	if (strcmp(s, "completed"))
		fprintf(stderr, "jumbo: job %s %s%s%s\n", id, s, reason ? ": " : "", reason ? reason : "");
	json_decref(job);
	return rc;
}

/* What jumbo run was asked for: the job request, and how to wait for it. */
struct run_opts {
	json_t *req, *data, *env;
	const char *api;
	bool detach, json;
};

/* The options into ro (the job's command is left at optind): 0, 1 for
 * --help, -1 for a usage error (said). */
static int run_options(int argc, char **argv, struct run_opts *ro)
{
	static const struct option opts[] = {
		{"image", required_argument, NULL, 'i'}, {"data", required_argument, NULL, 'd'},
		{"env", required_argument, NULL, 'e'},   {"cpus", required_argument, NULL, 'C'},
		{"memory", required_argument, NULL, 'm'}, {"pids", required_argument, NULL, 'P'},
		{"gpus", required_argument, NULL, 'G'},  {"timeout", required_argument, NULL, 't'},
		{"network", optional_argument, NULL, 'N'}, {"detach", no_argument, NULL, 'D'},
		{"backend", required_argument, NULL, 'b'},
		{"api", required_argument, NULL, 'A'},   {"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},        {0},
	};
	int o;
	/* '+': the command after "--" (or the first non-option) is the job's */
	while ((o = getopt_long(argc, argv, "+i:d:e:m:t:b:h", opts, NULL)) != -1) {
		char *end;
		switch (o) {
		case 'i': json_object_set_new(ro->req, "image", json_string(optarg)); break;
		case 'd': {
			/* NAME=PATH when the '=' comes before any '/' */
			const char *eq = strchr(optarg, '='), *sl = strchr(optarg, '/');
			if (eq && (!sl || eq < sl))
				json_array_append_new(ro->data, json_pack("{s:s%, s:s}", "name", optarg, (size_t)(eq - optarg),
								      "path", eq + 1));
			else
				json_array_append_new(ro->data, json_string(optarg));
			break;
		}
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=') {
				cli_error("run: --env wants NAME=VALUE, not '%s'", optarg);
				return -1;
			}
			json_array_append_new(ro->env, json_string(optarg));
			break;
		case 'C': {
			double v = strtod(optarg, &end);
			if (*end || v <= 0) {
				cli_error("run: --cpus wants a number above 0, not '%s'", optarg);
				return -1;
			}
			json_object_set_new(ro->req, "cpus", json_real(v));
			break;
		}
		case 'm': {
			uint64_t v;
			if (jb_parse_size(optarg, &v) < 0 || v < (4u << 20)) {
				cli_error("run: --memory wants a size of 4M or more (512M, 4G), not '%s'", optarg);
				return -1;
			}
			json_object_set_new(ro->req, "memory", json_integer((json_int_t)v));
			break;
		}
		case 'P':
		case 'G': {
			long v = strtol(optarg, &end, 10);
			if (*end || v < (o == 'P' ? 1 : 0)) {
				cli_error("run: --%s wants a count, not '%s'", o == 'P' ? "pids" : "gpus", optarg);
				return -1;
			}
			json_object_set_new(ro->req, o == 'P' ? "pids" : "gpus", json_integer(v));
			break;
		}
		case 't': {
			double v;
			if (parse_duration(optarg, &v) < 0) {
				cli_error("run: --timeout wants a duration (90, 90s, 15m, 2h, 1d), not '%s'", optarg);
				return -1;
			}
			json_object_set_new(ro->req, "timeout", json_real(v));
			break;
		}
		case 'N':
			if (optarg && strcmp(optarg, "host") && strcmp(optarg, "veth") && strcmp(optarg, "none")) {
				cli_error("run: --network is host, veth or none, not '%s'", optarg);
				return -1;
			}
			json_object_set_new(ro->req, "network", json_string(optarg ? optarg : "host"));
			break;
		case 'b': json_object_set_new(ro->req, "backend", json_string(optarg)); break;
		case 'D': ro->detach = true; break;
		case 'A': ro->api = optarg; break;
		case 'j': ro->json = true; break;
		case 'h': return 1;
		default: return -1;
		}
	}
	return 0;
}

int cmd_run(struct cli *g, int argc, char **argv)
{
	struct run_opts ro = {.req = json_object(), .data = json_array(), .env = json_array()};
	json_t *req = ro.req, *data = ro.data, *env = ro.env;
	int pr = run_options(argc, argv, &ro);
	if (pr != 0) {
		json_decref(req);
		json_decref(data);
		json_decref(env);
		fputs(run_usage, pr > 0 ? stdout : stderr);
		return pr > 0 ? 0 : EXIT_USAGE;
	}
	const char *api = ro.api;
	bool detach = ro.detach, json = ro.json;
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	if (optind < argc) {
		json_t *args = json_array();
		for (int i = optind; i < argc; i++)
			json_array_append_new(args, json_string(argv[i]));
		json_object_set_new(req, "args", args);
	}
	if (!json_object_get(req, "image"))
		json_object_set_new(req, "image", json_string(DEFAULT_IMAGE));
	if (json_array_size(data))
		json_object_set(req, "data", data);
	if (json_array_size(env))
		json_object_set(req, "env", env);
	json_decref(data);
	json_decref(env);
	struct jb_api_client *c = NULL;
	if (cli_api(g, api, &c) < 0) {
		json_decref(req);
		return 125;
	}
	struct jb_error err = {0};
	long st = 0;
	json_t *job = NULL;
	int r = jb_api_call(c, "POST", "/api/v1/jobs", req, &st, &job, &err);
	json_decref(req);
	if (r < 0) {
		cli_error("run: %s", err.msg);
		jb_api_client_close(c);
		return 125;
	}
	char id[64];
	snprintf(id, sizeof id, "%s", json_string_value(json_object_get(job, "id")));
	if (detach) {
		if (json) {
			char *d = json_dumps(job, JSON_INDENT(2));
			if (d)
				puts(d);
			free(d);
		} else {
			puts(id);
		}
		json_decref(job);
		jb_api_client_close(c);
		return 0;
	}
	json_decref(job);
	struct sigaction sa = {.sa_handler = on_interrupt};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	int rc = cli_follow(c, id, json, true);
	jb_api_client_close(c);
	return rc;
}

static void fmt_duration(double s, char *out, size_t n)
{
	if (s < 0)
		snprintf(out, n, "-");
	else if (s < 60)
		snprintf(out, n, "%.1fs", s);
	else if (s < 3600)
		snprintf(out, n, "%dm%02ds", (int)s / 60, (int)s % 60);
	else
		snprintf(out, n, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

int cmd_jobs(struct cli *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{"api", required_argument, NULL, 'A'}, {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0},
	};
	const char *api = NULL;
	bool json = false;
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'A': api = optarg; break;
		case 'j': json = true; break;
		case 'h':
			printf("Usage: jumbo jobs [--json] [--api HOST:PORT] [ID]\n\n"
			       "The site's jobs, newest first, or one job in full.\n"
			       "      --json           JSON (the job objects of the REST API)\n"
			       "      --api HOST:PORT  the daemon's API (default $JUMBO_API, then [site] api)\n"
			       "  -h, --help           this text\n");
			return 0;
		default: return EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		cli_error("jobs: usage: jumbo jobs [--json] [ID]");
		return EXIT_USAGE;
	}
	struct jb_api_client *c = NULL;
	if (cli_api(g, api, &c) < 0)
		return 1;
	struct jb_error err = {0};
	long st;
	json_t *ans = NULL;
	char path[128];
	snprintf(path, sizeof path, "/api/v1/jobs%s%s", optind < argc ? "/" : "", optind < argc ? argv[optind] : "");
	if (jb_api_call(c, "GET", path, NULL, &st, &ans, &err) < 0) {
		cli_error("jobs: %s", err.msg);
		jb_api_client_close(c);
		return 1;
	}
	jb_api_client_close(c);
	json_t *list = optind < argc ? json_pack("[O]", ans) : json_incref(json_object_get(ans, "jobs"));
	if (json) {
		char *d = json_dumps(optind < argc ? ans : list, JSON_INDENT(2));
		if (d)
			puts(d);
		free(d);
	} else {
		printf("%-12s  %-9s  %-32s  %-16s  %8s  %4s  %s\n", "ID", "STATE", "IMAGE", "WHERE", "TIME", "EXIT", "REASON");
		size_t i;
		json_t *jb;
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		json_array_foreach (list, i, jb) {
			double started = json_number_value(json_object_get(jb, "started"));
			double finished = json_number_value(json_object_get(jb, "finished"));
			char dur[32], ec[16] = "-";
			fmt_duration(started > 0 ? (finished > 0 ? finished : now.tv_sec + now.tv_nsec / 1e9) - started : -1, dur,
				     sizeof dur);
			json_t *e = json_object_get(jb, "exit_code");
			if (json_is_integer(e) && json_integer_value(e) >= 0)
				snprintf(ec, sizeof ec, "%d", (int)json_integer_value(e));
			const char *reason = json_string_value(json_object_get(jb, "reason"));
			/* where: local, or BACKEND[@NODE] */
			const char *be = json_string_value(json_object_get(jb, "backend"));
			const char *node = json_string_value(json_object_get(jb, "node"));
			char where[128];
			snprintf(where, sizeof where, "%s%s%s", be ? be : "local", node ? "@" : "", node ? node : "");
			printf("%-12s  %-9s  %-32.32s  %-16.16s  %8s  %4s  %s\n", json_string_value(json_object_get(jb, "id")),
			       json_string_value(json_object_get(jb, "state")), json_string_value(json_object_get(jb, "image")),
			       where, dur, ec, reason ? reason : "");
		}
	}
	json_decref(list);
	json_decref(ans);
	return 0;
}

int cmd_logs(struct cli *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{"follow", no_argument, NULL, 'f'}, {"api", required_argument, NULL, 'A'}, {"help", no_argument, NULL, 'h'}, {0},
	};
	const char *api = NULL;
	bool fol = false;
	int o;
	while ((o = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (o) {
		case 'f': fol = true; break;
		case 'A': api = optarg; break;
		case 'h':
			printf("Usage: jumbo logs [-f] [--api HOST:PORT] ID\n\n"
			       "A job's output: its stdout on stdout, its stderr on stderr.\n"
			       "  -f, --follow         keep printing until the job ends; the exit status is then the job's\n"
			       "      --api HOST:PORT  the daemon's API (default $JUMBO_API, then [site] api)\n"
			       "  -h, --help           this text\n");
			return 0;
		default: return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		cli_error("logs: usage: jumbo logs [-f] ID");
		return EXIT_USAGE;
	}
	struct jb_api_client *c = NULL;
	if (cli_api(g, api, &c) < 0)
		return 1;
	int rc = 0;
	if (fol) {
		rc = cli_follow(c, argv[optind], false, false);
	} else {
		uint64_t off[2] = {0, 0};
		char state[32];
		struct jb_error err = {0};
		if (pump_logs(c, argv[optind], off, state, &err) < 0) {
			cli_error("logs: %s", err.msg);
			rc = 1;
		}
	}
	jb_api_client_close(c);
	return rc;
}

int cli_post_each(struct cli *g, const char *api, const char *verb, const char *base, const char *action, int n,
		  char **ids)
{
	struct jb_api_client *c = NULL;
	if (cli_api(g, api, &c) < 0)
		return 1;
	int rc = 0;
	for (int i = 0; i < n; i++) {
		struct jb_error err = {0};
		long st;
		json_t *ans = NULL;
		char path[160];
		snprintf(path, sizeof path, "%s/%.64s/%s", base, ids[i], action);
		if (jb_api_call(c, "POST", path, NULL, &st, &ans, &err) < 0) {
			cli_error("%s %s: %s", verb, ids[i], err.msg);
			rc = 1;
		} else {
			printf("cancelling %s\n", ids[i]);
		}
		json_decref(ans);
	}
	jb_api_client_close(c);
	return rc;
}

int cmd_kill(struct cli *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{"api", required_argument, NULL, 'A'}, {"help", no_argument, NULL, 'h'}, {0},
	};
	const char *api = NULL;
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'A': api = optarg; break;
		case 'h':
			printf("Usage: jumbo kill [--api HOST:PORT] ID...\n\n"
			       "Cancel jobs: a pending job does not start, a running one is killed.\n"
			       "      --api HOST:PORT  the daemon's API (default $JUMBO_API, then [site] api)\n"
			       "  -h, --help           this text\n");
			return 0;
		default: return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		cli_error("kill: usage: jumbo kill ID...");
		return EXIT_USAGE;
	}
	return cli_post_each(g, api, "kill", "/api/v1/jobs", "kill", argc - optind, argv + optind);
}
