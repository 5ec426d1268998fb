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

/* The services of a running site, opened in this order and closed in the
 * reverse one by site_close, whatever was opened. */
struct site {
	struct jb_config *c;
	struct jb_server *srv;
	struct jb_catalog *cat;
	struct jb_tokens *tokens;
	struct jb_jobs *jobs;
	struct jb_transfers *transfers;
	struct jb_api *api;
	struct jb_landing landing;
};

static void site_close(struct site *s)
{
	jb_api_stop(s->api);
	/* after the sessions: their commits start jobs */
	jb_transfers_close(s->transfers); /* those running go on at the next start */
	jb_jobs_close(s->jobs);           /* running jobs go on under their supervisors */
	jb_server_free(s->srv);
	jb_catalog_close(s->cat);
	jb_tokens_close(s->tokens);
	jb_config_free(s->c);
}

/* Open what the site runs.  The catalog and the tokens are needed; jobs
 * (without crun, say) and durable transfers may be off, with a warning. */
static int site_open(struct site *s, struct jb_error *err)
{
	int r;
	if ((r = jb_server_new(s->c, &s->srv, err)) < 0 || (r = jb_catalog_open(s->c->state, &s->cat, err)) < 0)
		return r;
	if (!realpath(s->c->root, s->landing.rootreal))
		snprintf(s->landing.rootreal, sizeof s->landing.rootreal, "%s", s->c->root);
	struct jb_error rerr = {0};
	int settled = jb_catalog_reconcile(s->cat, s->landing.rootreal, &rerr);
	if (settled < 0) /* they stay pending, for the next start */
		jb_log(JB_LOG_WARN, "catalog: the files of the last stop are not settled: %s", rerr.msg);
	if (settled > 0)
		jb_log(JB_LOG_INFO, "catalog: %d file%s committed just before a stop recorded", settled,
		       settled == 1 ? "" : "s");
	if ((r = jb_tokens_open(s->c->state, &s->tokens, err)) < 0 ||
	    (r = jb_tokens_site_token(s->tokens, s->c->state, err)) < 0)
		return r;
	struct jb_error soft = {0};
	if (jb_jobs_open(s->c, "/proc/self/exe", s->cat, &s->jobs, &soft) < 0)
		jb_log(JB_LOG_WARN, "%s; jobs are off", soft.msg);
	memset(&soft, 0, sizeof soft);
	/* the first wait before a retry (then doubling, at most 5 minutes) */
	const char *b = getenv("JUMBO_RETRY_SECONDS");
	double backoff = b && atof(b) > 0 ? atof(b) : 2;
	if (jb_transfers_open(s->c, backoff, &s->transfers, &soft) < 0)
		jb_log(JB_LOG_WARN, "%s; durable transfers are off", soft.msg);
	s->landing.c = s->c;
	s->landing.cat = s->cat;
	s->landing.jobs = s->jobs;
	jb_server_on_commit(s->srv, jb_landing_commit, &s->landing);
#ifdef JB_TEST_HOOKS /* meson -Dtest_hooks=true: the tests' (t_faults) */
	const char *corrupt = getenv("JUMBO_TEST_CORRUPT_BLOCK");
	if (corrupt && *corrupt)
		jb_server_test_corrupt_block(s->srv, atoi(corrupt));
	const char *tamper = getenv("JUMBO_TEST_RELAY_TAMPER"); /* t_relay: a relay that alters a block */
	if (tamper && *tamper)
		jb_server_test_tamper_block(s->srv, atoi(tamper));
#endif
	if (s->c->api && *s->c->api && strcmp(s->c->api, "off") &&
	    (r = jb_api_start(s->c, &(struct jb_api_services){s->srv, s->jobs, s->cat, s->tokens, s->transfers},
			      &s->api, err)) < 0)
		return r;
	return 0;
}

/* What each peer may (jumbo.conf(5), PEER PATHS), on stdout for --check or
 * in the log at start; loudly when no peer may do anything, as an older
 * configuration without read and write finds itself. */
static void show_peers(const struct jb_config *c, bool check)
{
	size_t idle = 0;
	for (size_t i = 0; i < c->npeers; i++) {
		char r[1024];
		jb_peer_rights(&c->peers[i], r, sizeof r);
		if (check)
			printf("  peer %s: %s\n", c->peers[i].name, r);
		else
			jb_log(JB_LOG_INFO, "site %s: peer %s: %s", c->name, c->peers[i].name, r);
		idle += !c->peers[i].nread && !c->peers[i].nwrite;
	}
	if (idle && idle == c->npeers)
		jb_log(JB_LOG_WARN, "site %s: no peer may read or write here: no [peer] section has read = or write = "
		       "(earlier versions let every peer read and write the whole data root; see jumbo.conf(5), PEER PATHS)",
		       c->name);
}

/* The ready file: the ports and the pid, written whole (a temporary file,
 * synced and renamed) so that a reader never sees half of it. */
static int write_ready(const char *ready, const struct site *s, struct jb_error *err)
{
	char tmp[4200];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", ready) >= sizeof tmp)
		return jb_err(err, ENAMETOOLONG, "%s: path too long", ready);
	FILE *f = fopen(tmp, "we");
	if (!f)
		return jb_err(err, errno, "%s: %s", tmp, strerror(errno));
	int bad = fprintf(f, "{\"listen\": %d, \"api\": %d, \"pid\": %d}\n", jb_server_port(s->srv),
			  s->api ? jb_api_port(s->api) : 0, (int)getpid()) < 0;
	bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
	int e = errno;
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, ready) < 0) {
		e = bad ? (e ? e : EIO) : errno;
		unlink(tmp);
		return jb_err(err, e, "%s: %s", ready, strerror(e));
	}
	return 0;
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
	static struct site site; /* the landing hook holds a pointer into it until the end */
	if (jb_config_load(config, &site.c, &err) < 0 || jb_config_check_daemon(site.c, &err) < 0 ||
	    jb_backends_check(site.c, &err) < 0)
		goto fail;
	struct jb_config *c = site.c;
	if (check) {
		uint8_t fp[32];
		char f[72];
		if (jb_identity_fingerprint(c->identity, fp, &err) < 0)
			goto fail;
		jb_fp_format(fp, f);
		printf("%s: ok (site %s, %s, %zu peers)\n", config, c->name, f, c->npeers);
		show_peers(c, true);
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
	if (site_open(&site, &err) < 0)
		goto fail;
	g_srv = site.srv;
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	jb_log(JB_LOG_INFO, "site %s: transfers on %s (port %d), API on %s, data root %s", c->name, c->listen,
	       jb_server_port(site.srv), site.api ? c->api : "off", c->root);
	show_peers(c, false);
	if (ready && write_ready(ready, &site, &err) < 0)
		goto fail;
	jb_server_run(site.srv);
	jb_log(JB_LOG_INFO, "site %s: stopping", c->name);
	jb_api_stop(site.api);
	site.api = NULL;
	if (jb_server_drain(site.srv, DRAIN_MS) < 0) {
		/* threads still hold the journal and TLS state: leave without the
		 * exit handlers that would tear those down under them */
		jb_log(JB_LOG_WARN, "site %s: stopped without waiting for the rest", c->name);
		_exit(0);
	}
	jb_log(JB_LOG_INFO, "site %s: stopped", c->name);
	site_close(&site);
	return 0;
fail:
	fprintf(stderr, "jumbod: %s\n", err.msg[0] ? err.msg : "cannot start");
	site_close(&site);
	return 1;
}
