/* jumbod: one per site.  Parses arguments, loads the configuration and runs
 * the transfer service and the REST API until SIGTERM/SIGINT. */
#define JUMBOD_FDS_RESERVE 112
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "jb_version.h"
#include "jumbo/api.h"
#include "jumbo/config.h"
#include "jumbo/run.h"
#include "jumbo/sched.h"
#include "jumbo/xfer.h"

/* How long a stop waits for the sessions in progress to end. */
#define DRAIN_MS 5000

static struct jb_server *g_srv;

static void on_signal(int sig)
{
	if (g_srv)
		jb_server_stop(g_srv);
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: jumbod --config FILE [--check] [--ready-file FILE] [-v|-q]\n"
		   "\n"
		   "Runs a jumbo site: the transfer service on [site] listen and the REST API\n"
		   "on [site] api, writing only under [site] root and [site] state.\n"
		   "\n"
		   "  -c, --config FILE      configuration (default $JUMBO_CONFIG)\n"
		   "  -n, --check            validate the configuration and exit\n"
		   "      --ready-file FILE  once listening, write the ports and the pid to FILE:\n"
		   "                         {\"listen\":PORT,\"api\":PORT,\"pid\":PID}\n"
		   "  -v, --verbose          log debug messages\n"
		   "  -q, --quiet            log warnings and errors only\n"
		   "  -V, --version          print the version\n"
		   "  -h, --help             this text\n"
		   "\n"
		   "See jumbod(8) and jumbo.conf(5).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'n'},
		{"ready-file", required_argument, NULL, 'R'}, {"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'}, {"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'}, {"supervise", required_argument, NULL, 'S'}, {0},
	};
	const char *config = getenv("JUMBO_CONFIG"), *ready = NULL;
	bool check = false;
	enum jb_log_level lvl = JB_LOG_INFO;
	int o;
	while ((o = getopt_long(argc, argv, "c:nvqVh", opts, NULL)) != -1) {
		switch (o) {
		case 'c': config = optarg; break;
		case 'n': check = true; break;
		case 'R': ready = optarg; break;
		case 'v': lvl = JB_LOG_DEBUG; break;
		case 'q': lvl = JB_LOG_WARN; break;
		case 'V': printf("jumbod %s\n", JB_VERSION); return 0;
		/* internal: jumbod runs itself as each job's supervisor */
		case 'S': return jb_run_supervise(optarg);
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !config || !*config) {
		fprintf(stderr, "jumbod: %s\n", optind != argc ? "unexpected arguments" : "no configuration: use --config FILE");
		usage(stderr);
		return 2;
	}
	jb_log_set(jb_log_stderr, "jumbod", lvl);
	struct jb_error err = {0};
	struct jb_config *c = NULL;
	if (jb_config_load(config, &c, &err) < 0 || jb_config_check_daemon(c, &err) < 0) {
		fprintf(stderr, "jumbod: %s\n", err.msg);
		jb_config_free(c);
		return 1;
	}
	if (check) {
		uint8_t fp[32];
		char f[72];
		if (jb_identity_fingerprint(c->identity, fp, &err) < 0) {
			fprintf(stderr, "jumbod: %s\n", err.msg);
			jb_config_free(c);
			return 1;
		}
		jb_fp_format(fp, f);
		printf("%s: ok (site %s, %s, %zu peers)\n", config, c->name, f, c->npeers);
		jb_config_free(c);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* Transfers take their descriptors from what is left once the rest
	 * has its share: the API's 64 connections, the databases, listeners,
	 * logs and the jobs' pipes. */
	jb_fds_init(JUMBOD_FDS_RESERVE);
	struct jb_server *srv = NULL;
	struct jb_api *api = NULL;
	struct jb_jobs *jobs = NULL;
	struct jb_catalog *cat = NULL;
	struct jb_tokens *tokens = NULL;
	struct jb_transfers *transfers = NULL;
	static struct jb_landing landing;
	if (jb_server_new(c, &srv, &err) < 0) {
		fprintf(stderr, "jumbod: %s\n", err.msg);
		jb_config_free(c);
		return 1;
	}
	/* the catalog of datasets; then jobs, this site's second service:
	 * without crun, transfers still run */
	if (jb_catalog_open(c->state, &cat, &err) < 0) {
		fprintf(stderr, "jumbod: %s\n", err.msg);
		jb_server_free(srv);
		jb_config_free(c);
		return 1;
	}
	if (!realpath(c->root, landing.rootreal))
		snprintf(landing.rootreal, sizeof landing.rootreal, "%s", c->root);
	int settled = jb_catalog_reconcile(cat, landing.rootreal);
	if (settled > 0)
		jb_log(JB_LOG_INFO, "catalog: %d file%s committed just before a stop recorded", settled,
		       settled == 1 ? "" : "s");
	if (jb_tokens_open(c->state, &tokens, &err) < 0 || jb_tokens_site_token(tokens, c->state, &err) < 0) {
		fprintf(stderr, "jumbod: %s\n", err.msg);
		jb_tokens_close(tokens);
		jb_catalog_close(cat);
		jb_server_free(srv);
		jb_config_free(c);
		return 1;
	}
	if (jb_jobs_open(c, "/proc/self/exe", cat, &jobs, &err) < 0) {
		jb_log(JB_LOG_WARN, "%s; jobs are off", err.msg);
		memset(&err, 0, sizeof err);
	}
	if (jb_transfers_open(c, &transfers, &err) < 0) {
		jb_log(JB_LOG_WARN, "%s; durable transfers are off", err.msg);
		memset(&err, 0, sizeof err);
	}
	landing.c = c;
	landing.cat = cat;
	landing.jobs = jobs;
	jb_server_on_commit(srv, jb_landing_commit, &landing);
	if (c->api && *c->api && strcmp(c->api, "off") && jb_api_start(c, &(struct jb_api_services){srv, jobs, cat, tokens, transfers}, &api, &err) < 0) {
		fprintf(stderr, "jumbod: %s\n", err.msg);
		jb_transfers_close(transfers);
		jb_jobs_close(jobs);
		jb_catalog_close(cat);
		jb_tokens_close(tokens);
		jb_server_free(srv);
		jb_config_free(c);
		return 1;
	}
	g_srv = srv;
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	jb_log(JB_LOG_INFO, "site %s: transfers on %s (port %d), API on %s, data root %s", c->name, c->listen,
	       jb_server_port(srv), api ? c->api : "off", c->root);
	if (ready) {
		char tmp[4200];
		snprintf(tmp, sizeof tmp, "%s.tmp", ready);
		FILE *f = fopen(tmp, "we");
		if (f) {
			fprintf(f, "{\"listen\": %d, \"api\": %d, \"pid\": %d}\n", jb_server_port(srv),
				api ? jb_api_port(api) : 0, (int)getpid());
			fclose(f);
			rename(tmp, ready);
		}
	}
	jb_server_run(srv);
	jb_log(JB_LOG_INFO, "site %s: stopping", c->name);
	jb_api_stop(api);
	if (jb_server_drain(srv, DRAIN_MS) < 0) {
		/* threads still hold the journal and TLS state: leave without the
		 * exit handlers that would tear those down under them */
		jb_log(JB_LOG_WARN, "site %s: stopped without waiting for the rest", c->name);
		_exit(0);
	}
	/* after the sessions: their commits start jobs */
	jb_transfers_close(transfers); /* those running go on at the next start */
	jb_jobs_close(jobs); /* running jobs go on under their supervisors */
	jb_log(JB_LOG_INFO, "site %s: stopped", c->name);
	jb_server_free(srv);
	jb_catalog_close(cat);
	jb_tokens_close(tokens);
	jb_config_free(c);
	return 0;
}
