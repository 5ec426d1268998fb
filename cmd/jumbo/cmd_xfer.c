/* jumbo send / jumbo get: scp-style transfers run in-process. */
#include <getopt.h>
#include <jansson.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "jumbo.h"
#include "jumbo/api.h"

struct xfer_args {
	struct jb_xfer_opts o;
	bool json, quiet, detach, direct;
	const char *api;
	char via[JB_MAX_HOPS * 65 + 8]; /* --via, split in place into o.via */
	bool via_given;
};

static const char xfer_help[] =
	"  -P, --parallel N     data streams (TCP connections), 1..64 (default 4)\n"
	"  -r, --recursive      copy directories and their contents\n"
	"      --block-size SZ  block size, 64K..64M (default 8M); the unit of\n"
	"                       verification and resume\n"
	"      --encrypt        data streams under TLS too (control is always TLS)\n"
	"      --rate RATE      pacing cap in bits/s for the whole transfer, k/M/G\n"
	"                       suffixes as iperf3 -b (e.g. 10G)\n"
	"      --window SIZE    socket buffer per stream (default: kernel autotuning)\n"
	"      --cc NAME        congestion control (default bbr where available)\n"
	"      --via R[,R2]     send: through these relays, in order (they stage the\n"
	"                       data and pass it on while it arrives; see jumbo(1)),\n"
	"                       instead of the destination peer's via in jumbo.conf\n"
	"      --direct         send: straight to the destination, whatever its via\n"
	"      --until WHEN     send through relays: return once the destination has\n"
	"                       verified every file (delivered, the default) or once\n"
	"                       the first relay holds it all and has signed for it\n"
	"                       (custody): it delivers the rest without this end\n"
	"      --detach         hand the transfer to this site's jumbod and return: it\n"
	"                       runs there, retried while the peer is down, resumed\n"
	"                       after restarts (jumbo transfers, wait, cancel); local\n"
	"                       paths must be in the site's data root\n"
	"      --api HOST:PORT  with --detach: the daemon's API (default $JUMBO_API,\n"
	"                       then [site] api)\n"
	"      --json           print one JSON result object on stdout\n"
	"  -q, --quiet          no progress bar\n"
	"  -h, --help           this text\n"
	"\nFiles that fail (a source that cannot be read, a destination that refuses\n"
	"it) are named on stderr as they fail; the others go on.  Exit status 0\n"
	"only when every file was verified at the destination.\n";

static int parse_args(const char *verb, int argc, char **argv, struct xfer_args *a)
{
	static const struct option opts[] = {
		{"parallel", required_argument, NULL, 'P'}, {"recursive", no_argument, NULL, 'r'},
		{"block-size", required_argument, NULL, 'b'}, {"encrypt", no_argument, NULL, 'e'},
		{"rate", required_argument, NULL, 'R'}, {"window", required_argument, NULL, 'w'},
		{"cc", required_argument, NULL, 'C'}, {"json", no_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'}, {"help", no_argument, NULL, 'h'},
		{"detach", no_argument, NULL, 'D'}, {"api", required_argument, NULL, 'A'},
		{"via", required_argument, NULL, 'V'}, {"direct", no_argument, NULL, 'N'},
		{"until", required_argument, NULL, 'U'}, {0},
	};
	jb_xfer_opts_init(&a->o);
#ifdef JB_TEST_HOOKS /* meson -Dtest_hooks=true: the tests' (t_faults, t_durable, t_veth) */
	const char *corrupt = getenv("JUMBO_TEST_CORRUPT_BLOCK");
	if (corrupt && *corrupt)
		a->o.corrupt_block = atoi(corrupt);
#endif
	int o;
	uint64_t v;
	while ((o = getopt_long(argc, argv, "P:rqh", opts, NULL)) != -1) {
		switch (o) {
		case 'P': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > JB_WIRE_MAX_STREAMS) {
				cli_error("%s: -P wants 1..%d streams, not '%s'", verb, JB_WIRE_MAX_STREAMS, optarg);
				return -1;
			}
			a->o.streams = (int)n;
			break;
		}
		case 'r': a->o.recursive = true; break;
		case 'b':
			if (jb_parse_size(optarg, &v) < 0 || v < JB_WIRE_MIN_BLOCK || v > JB_WIRE_MAX_BLOCK) {
				cli_error("%s: --block-size wants 64K..64M, not '%s'", verb, optarg);
				return -1;
			}
			a->o.block_size = (uint32_t)v;
			break;
		case 'e': a->o.encrypt = true; break;
		case 'R':
			if (jb_parse_rate(optarg, &v) < 0 || v == 0) {
				cli_error("%s: --rate wants bits per second such as 500M or 10G, not '%s'", verb, optarg);
				return -1;
			}
			a->o.tune.rate_bps = v;
			break;
		case 'w':
			if (jb_parse_size(optarg, &v) < 0 || v < 4096 || v > (1ull << 30)) {
				cli_error("%s: --window wants 4K..1G, not '%s'", verb, optarg);
				return -1;
			}
			a->o.tune.window = v;
			break;
		case 'C': a->o.tune.cc = optarg; break;
		case 'j': a->json = true; break;
		case 'q': a->quiet = true; break;
		case 'D': a->detach = true; break;
		case 'A': a->api = optarg; break;
		case 'N': a->direct = true; break;
		case 'U':
			if (strcmp(optarg, "custody") && strcmp(optarg, "delivered")) {
				cli_error("%s: --until wants delivered or custody, not '%s'", verb, optarg);
				return -1;
			}
			a->o.until_custody = !strcmp(optarg, "custody");
			break;
		case 'V': {
			if (strlen(optarg) >= sizeof a->via) {
				cli_error("%s: --via names at most %d relays", verb, JB_MAX_HOPS);
				return -1;
			}
			strcpy(a->via, optarg);
			a->via_given = true;
			a->o.nvia = 0;
			for (char *sv = NULL, *w = strtok_r(a->via, ",", &sv); w; w = strtok_r(NULL, ",", &sv)) {
				if (a->o.nvia == JB_MAX_HOPS) {
					cli_error("%s: --via names at most %d relays", verb, JB_MAX_HOPS);
					return -1;
				}
				a->o.via[a->o.nvia++] = w;
			}
			if (!a->o.nvia) {
				cli_error("%s: --via wants relay peer names, R or R1,R2", verb);
				return -1;
			}
			break;
		}
		case 'h': return 1;
		default: return -1;
		}
	}
	if (a->o.tune.rate_bps) /* a per-transfer cap, spread over the streams */
		a->o.tune.rate_bps = JB_MAX(a->o.tune.rate_bps / (uint64_t)a->o.streams, 8000);
	return 0;
}

/* What the command has said so far: entries stream out as they finish
 * (with --json as the "entries" array, failures on stderr either way), so
 * that a tree of a million files is never held whole to be printed. */
struct out {
	const struct xfer_args *a;
	struct progress_bar *bar;
	bool any;                 /* an entry was printed */
	uint64_t files;           /* regular files finished */
	char digest[40];          /* the last file's, for the one-file line */
	char *path;
};

static void on_file(const struct jb_file_result *f, void *ud)
{
	struct out *o = ud;
	if (!f->dir) {
		o->files++;
		memcpy(o->digest, f->digest, sizeof o->digest);
		free(o->path);
		o->path = strdup(f->path);
	}
	if (!f->ok) {
		progress_finish(o->bar);
		cli_error("%s", f->error ? f->error : f->path);
	}
	if (!o->a->json)
		return;
	json_t *e = json_pack("{s:s, s:s, s:I, s:b}", "path", f->path, "type", f->dir ? "dir" : "file", "size",
			      (json_int_t)f->size, "verified", f->ok);
	if (!f->dir && f->digest[0])
		json_object_set_new(e, "digest", json_string(f->digest));
	if (!f->ok && f->error)
		json_object_set_new(e, "error", json_string(f->error));
	char *t = json_dumps(e, JSON_COMPACT);
	printf("%s\n    %s", o->any ? "," : "", t ? t : "{}");
	o->any = true;
	free(t);
	json_decref(e);
}

static void report(const char *verb, const struct xfer_args *a, struct out *o, const struct jb_xfer_result *r, int rc,
		   const struct jb_error *err, uint64_t rate_total)
{
	double gbps = r->seconds > 0 ? r->bytes_sent * 8.0 / r->seconds / 1e9 : 0;
	if (a->json) {
		json_t *j = json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:i, s:I, s:s, s:I}",
				      "direction", verb, "peer", r->peer, "ok", rc == 0, "files", (json_int_t)r->files,
				      "files_verified", (json_int_t)r->files_ok, "failed", (json_int_t)r->failed,
				      "bytes_total", (json_int_t)r->bytes_total, "bytes_sent", (json_int_t)r->bytes_sent,
				      "seconds", r->seconds, "gbps", gbps, "streams", r->streams, "block_size",
				      (json_int_t)r->block_size, "congestion_control", r->cc, "blocks_resent",
				      (json_int_t)r->blocks_resent);
		if (rate_total)
			json_object_set_new(j, "rate_bps", json_integer((json_int_t)rate_total));
		if (r->nreceipts) {
			json_t *rs = json_array();
			for (size_t i = 0; i < r->nreceipts && i < JB_XFER_MAX_RECEIPTS; i++) {
				const struct jb_xfer_receipt *k = &r->receipts[i];
				json_array_append_new(rs, json_pack("{s:s, s:s, s:b, s:b, s:I, s:I, s:f}", "hop", k->hop,
								    "holds", k->final ? "committed" : "staged", "verified",
								    k->verified, "matches", k->matches, "files",
								    (json_int_t)k->files, "bytes", (json_int_t)k->bytes,
								    "time", k->time_ns / 1e9));
			}
			json_object_set_new(j, "receipts", rs);
		}
		if (r->custody[0])
			json_object_set_new(j, "custody", json_string(r->custody));
		if (rc)
			json_object_set_new(j, "error", json_string(err->msg));
		/* the entries went out as they finished; the rest of the object
		 * follows them */
		char *t = json_dumps(j, JSON_INDENT(2));
		printf("%s],\n%s\n", o->any ? "\n  " : "", t && t[0] == '{' && t[1] == '\n' ? t + 2 : "}");
		free(t);
		json_decref(j);
	}
	if (rc) {
		cli_error("%s", err->msg);
		return;
	}
	if (a->json || a->quiet)
		return;
	char b[32];
	jb_format_bytes(r->bytes_sent, b, sizeof b);
	uint64_t nf = r->custody[0] ? r->files : o->files; /* in custody: not verified at the end yet */
	fprintf(stderr, "%s %llu file%s, %s in %.2f s: %.2f Gbit/s over %d stream%s (%s)", !strcmp(verb, "send") ? "sent" : "received",
		(unsigned long long)nf, nf == 1 ? "" : "s", b, r->seconds, gbps, r->streams, r->streams == 1 ? "" : "s",
		r->cc[0] ? r->cc : "tcp");
	if (r->bytes_sent < r->bytes_total) {
		char t[32];
		jb_format_bytes(r->bytes_total - r->bytes_sent, t, sizeof t);
		fprintf(stderr, "; %s already there, verified", t);
	}
	fputc('\n', stderr);
	if (nf == 1 && o->path && !r->custody[0])
		fprintf(stderr, "verified %s  %s\n", o->digest, o->path);
	for (size_t i = 0; i < r->nreceipts && i < JB_XFER_MAX_RECEIPTS; i++) {
		const struct jb_xfer_receipt *k = &r->receipts[i];
		fprintf(stderr, "receipt: %s %s %llu entr%s%s\n", k->hop, k->final ? "committed" : "holds",
			(unsigned long long)k->files, k->files == 1 ? "y" : "ies",
			!k->verified ? " (not signed by a key pinned here)"
			: !k->matches ? " (not what was sent)" : ", signed");
	}
	if (r->custody[0])
		fprintf(stderr, "in custody at %s, which delivers it\n", r->custody);
}

/* A local path made absolute (its parent resolved when it does not exist). */
static char *absolute(const char *p)
{
	char *r = realpath(p, NULL);
	if (r)
		return r;
	char *dup = strdup(p), *slash = strrchr(dup, '/'), *out = NULL;
	char *parent = realpath(slash ? (slash == dup ? "/" : (*slash = 0, dup)) : ".", NULL);
	if (parent && asprintf(&out, "%s/%s", strcmp(parent, "/") ? parent : "", slash ? slash + 1 : p) < 0)
		out = NULL;
	free(parent);
	free(dup);
	return out;
}

/* --detach: the request to the daemon, which runs it */
static int detach(struct cli *g, const char *verb, const struct xfer_args *a, int argc, char **argv,
		  const char *remote)
{
	bool send = !strcmp(verb, "send");
	json_t *req = json_pack("{s:s, s:i, s:b}", "op", send ? "send" : "get", "streams", a->o.streams, "recursive",
				a->o.recursive);
	if (a->o.tune.rate_bps)
		json_object_set_new(req, "rate", json_integer((json_int_t)(a->o.tune.rate_bps * (uint64_t)a->o.streams)));
	if (send && a->o.nvia) {
		/* the route as this command worked it out (--via, or the peer's) */
		json_t *via = json_array();
		for (int i = 0; i < a->o.nvia; i++)
			json_array_append_new(via, json_string(a->o.via[i]));
		json_object_set_new(req, "via", via);
	} else if (send && a->direct) {
		json_object_set_new(req, "direct", json_true());
	}
	if (send) {
		json_t *srcs = json_array();
		for (int i = optind; i < argc - 1; i++) {
			char *p = absolute(argv[i]);
			json_array_append_new(srcs, json_string(p ? p : argv[i]));
			free(p);
		}
		json_object_set_new(req, "sources", srcs);
		json_object_set_new(req, "dest", json_string(remote));
	} else {
		char *p = absolute(argv[argc - 1]);
		json_object_set_new(req, "source", json_string(remote));
		json_object_set_new(req, "dest", json_string(p ? p : argv[argc - 1]));
		free(p);
	}
	struct jb_api_client *cl = NULL;
	if (cli_api(g, a->api, &cl) < 0) {
		json_decref(req);
		return 1;
	}
	struct jb_error err = {0};
	long st;
	json_t *t = NULL;
	int r = jb_api_call(cl, "POST", "/api/v1/transfers", req, &st, &t, &err);
	json_decref(req);
	jb_api_client_close(cl);
	if (r < 0) {
		cli_error("%s: %s", verb, err.msg);
		return 1;
	}
	if (a->json) {
		char *d = json_dumps(t, JSON_INDENT(2));
		puts(d ? d : "{}");
		free(d);
	} else {
		puts(json_string_value(json_object_get(t, "id")));
	}
	json_decref(t);
	return 0;
}

static int run(struct cli *g, const char *verb, int argc, char **argv)
{
	struct xfer_args a = {0};
	int pr = parse_args(verb, argc, argv, &a);
	bool send = !strcmp(verb, "send");
	if (pr == 1) {
		printf(send ? "Usage: jumbo send [OPTIONS] SRC... PEER:PATH\n\nSends local files to a site.\n\n"
			    : "Usage: jumbo get [OPTIONS] PEER:PATH DEST\n\nFetches files from a site.\n\n");
		fputs(xfer_help, stdout);
		return 0;
	}
	if (pr < 0)
		return EXIT_USAGE;
	int nargs = argc - optind;
	if (nargs < 2 || (!send && nargs != 2)) {
		cli_error(send ? "send: usage: jumbo send [OPTIONS] SRC... PEER:PATH"
			       : "get: usage: jumbo get [OPTIONS] PEER:PATH DEST");
		return EXIT_USAGE;
	}
	struct jb_config *c = NULL;
	if (cli_load_config(g, &c) < 0)
		return 1;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	struct jb_error err = {0};
	struct jb_remote rm = {0};
	const char *remote = send ? argv[argc - 1] : argv[optind];
	int r = jb_remote_parse(c, remote, &rm, &err), rc = 1;
	if (r == 0) {
		cli_error("%s: %s is not a remote path (PEER:PATH or jumbo://HOST:PORT/PATH)", verb, remote);
		jb_config_free(c);
		return EXIT_USAGE;
	}
	if (r < 0) {
		cli_error("%s", err.msg);
		jb_config_free(c);
		return 1;
	}
	if (send)
		for (int i = optind; i < argc - 1; i++) {
			struct jb_remote other;
			if (jb_remote_parse(c, argv[i], &other, NULL) == 1) {
				cli_error("send: sources must be local; use 'jumbo get' to fetch %s", argv[i]);
				jb_remote_free(&other);
				jb_remote_free(&rm);
				jb_config_free(c);
				return EXIT_USAGE;
			}
		}
	if (a.via_given && a.direct) {
		cli_error("%s: --via and --direct contradict each other", verb);
		jb_remote_free(&rm);
		jb_config_free(c);
		return EXIT_USAGE;
	}
	if (send && !a.via_given && !a.direct && rm.peer && rm.peer->nvia) {
		/* the destination's default route */
		a.o.nvia = rm.peer->nvia;
		for (int i = 0; i < rm.peer->nvia; i++)
			a.o.via[i] = rm.peer->via[i];
	}
	if (a.o.until_custody && !a.o.nvia) {
		cli_error("%s: --until custody is for sends through relays (--via, or [peer %s] via)", verb,
			  rm.peer ? rm.peer->name : "PEER");
		jb_remote_free(&rm);
		jb_config_free(c);
		return EXIT_USAGE;
	}
	if (a.o.until_custody && a.detach) {
		cli_error("%s: --until custody is for a send run here: with --detach this site's jumbod holds the "
			  "transfer until the destination has it", verb);
		jb_remote_free(&rm);
		jb_config_free(c);
		return EXIT_USAGE;
	}
	if (a.o.nvia && !send) {
		cli_error("%s: relays (--via, or [peer %s] via) are for jumbo send in this version", verb,
			  rm.peer ? rm.peer->name : "PEER");
		jb_remote_free(&rm);
		jb_config_free(c);
		return EXIT_USAGE;
	}
	if (a.detach) {
		rc = detach(g, verb, &a, argc, argv, remote);
		jb_remote_free(&rm);
		jb_config_free(c);
		return rc;
	}
	struct progress_bar bar = {.label = send ? argv[optind] : argv[argc - 1],
				   .enabled = !a.quiet && !a.json && isatty(STDERR_FILENO)};
	struct out out = {.a = &a, .bar = &bar};
	a.o.progress = progress_draw;
	a.o.progress_ud = &bar;
	a.o.on_file = on_file;
	a.o.on_file_ud = &out;
	if (a.json) {
		printf("{\n  \"entries\": [");
		fflush(stdout);
	}
	uint64_t rate_total = a.o.tune.rate_bps * (uint64_t)a.o.streams;
	struct jb_client *cl = NULL;
	struct jb_xfer_result res = {0};
	char jdir[4096];
	r = jb_client_new(c, &cl, &err);
	if (r == 0)
		r = jb_client_set_journal_dir(cl, cli_journal_dir(jdir, sizeof jdir));
	if (r == 0)
		r = send ? jb_client_push(cl, &rm, argv + optind, (size_t)(argc - 1 - optind), &a.o, &res, &err)
			 : jb_client_pull(cl, &rm, argv[argc - 1], &a.o, &res, &err);
	progress_finish(&bar);
	if (!res.peer[0])
		snprintf(res.peer, sizeof res.peer, "%s", rm.label);
	report(verb, &a, &out, &res, r, &err, rate_total);
	free(out.path);
	rc = r == 0 ? 0 : 1;
	jb_xfer_result_free(&res);
	jb_client_free(cl);
	jb_remote_free(&rm);
	jb_config_free(c);
	return rc;
}

int cmd_send(struct cli *g, int argc, char **argv) { return run(g, "send", argc, argv); }
int cmd_get(struct cli *g, int argc, char **argv) { return run(g, "get", argc, argv); }
