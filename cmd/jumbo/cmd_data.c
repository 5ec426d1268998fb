/* jumbo datasets | provenance | rerun: the site's catalog, where a result
 * comes from, and whether it can be made again bit for bit. */
#include <getopt.h>
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "jumbo.h"
#include "jumbo/api.h"

/* Options shared by the commands that ask the API: --api, --json, --help
 * (and, for datasets, --sha256; for provenance, --verify: extra names the
 * one a command takes).  1 after --help, -1 on a bad option. */
static bool want_sha256, want_verify;
int cli_api_opts(int argc, char **argv, const char *usage, const char **api, bool *json, const char *extra)
{
	static const struct option opts[] = {
		{"api", required_argument, NULL, 'A'}, {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'},
		{"sha256", no_argument, NULL, 'S'},    {"verify", no_argument, NULL, 'V'}, {0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'A': *api = optarg; break;
		case 'j': *json = true; break;
		case 'S':
		case 'V':
			if (!extra || strcmp(extra, o == 'S' ? "sha256" : "verify")) {
				fputs(usage, stderr);
				return -1;
			}
			*(o == 'S' ? &want_sha256 : &want_verify) = true;
			break;
		case 'h': fputs(usage, stdout); return 1;
		default: fputs(usage, stderr); return -1;
		}
	}
	return 0;
}

static int get_json(struct cli *g, const char *api, const char *method, const char *path, json_t **ret)
{
	struct jb_api_client *c = NULL;
	if (cli_api(g, api, &c) < 0)
		return -1;
	struct jb_error err = {0};
	long st;
	int r = jb_api_call(c, method, path, NULL, &st, ret, &err);
	jb_api_client_close(c);
	if (r < 0)
		cli_error("%s", err.msg);
	return r;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2));
	if (s)
		puts(s);
	free(s);
}

static char *escape(const char *s)
{
	char *out = malloc(strlen(s) * 3 + 1), *o = out;
	for (; out && *s; s++) {
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("/._-~", *s))
			*o++ = *s;
		else
			o += sprintf(o, "%%%02X", (unsigned char)*s);
	}
	if (out)
		*o = 0;
	return out;
}

static const char datasets_usage[] =
	"Usage: jumbo datasets [--json] [--sha256] [--api HOST:PORT] [PATH]\n\n"
	"The datasets of this site's catalog below PATH (a file, or a directory of the\n"
	"data root; default: all): path, size, digest, where it came from.\n"
	"      --sha256         compute and record the SHA-256 of those that have none\n"
	"      --json           the catalog's records\n"
	"      --api HOST:PORT  the daemon's API (default $JUMBO_API, then [site] api)\n"
	"  -h, --help           this text\n";

int cmd_datasets(struct cli *g, int argc, char **argv)
{
	const char *api = NULL;
	bool json = false;
	int r = cli_api_opts(argc, argv, datasets_usage, &api, &json, "sha256");
	if (r)
		return r > 0 ? 0 : EXIT_USAGE;
	if (argc - optind > 1) {
		cli_error("datasets: usage: jumbo datasets [--json] [PATH]");
		return EXIT_USAGE;
	}
	char *e = escape(optind < argc ? argv[optind] : "");
	char path[JB_PATH_MAX * 3 + 64];
	snprintf(path, sizeof path, "/api/v1/datasets%s?path=%s", want_sha256 ? "/sha256" : "", e ? e : "");
	free(e);
	json_t *ans = NULL;
	if (get_json(g, api, want_sha256 ? "POST" : "GET", path, &ans) < 0)
		return 1;
	json_t *list = json_object_get(ans, "datasets");
	if (json) {
		print_json(list);
	} else {
		size_t i;
		json_t *d;
		json_array_foreach (list, i, d) {
			char sz[32], when[32];
			jb_format_bytes((uint64_t)json_integer_value(json_object_get(d, "size")), sz, sizeof sz);
			time_t t = (time_t)json_number_value(json_object_get(d, "arrived"));
			struct tm tm;
			strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
			const char *src = json_string_value(json_object_get(d, "source"));
			const char *job = json_string_value(json_object_get(d, "job"));
			const char *origin = json_string_value(json_object_get(d, "origin"));
			const char *sha = json_string_value(json_object_get(d, "sha256"));
			printf("%-40s %10s  %s  %s  %s%s%s\n", json_string_value(json_object_get(d, "path")), sz,
			       want_sha256 && sha ? sha : json_string_value(json_object_get(d, "digest")), when,
			       !strcmp(src, "job") ? "job " : !strcmp(src, "transfer") ? "from " : "found",
			       !strcmp(src, "job") ? (job ? job : "?") : origin ? origin : "", "");
		}
	}
	json_decref(ans);
	return 0;
}

static void print_chain(json_t *node, int depth)
{
	json_t *d = json_object_get(node, "dataset"), *job = json_object_get(node, "job");
	const char *src = json_string_value(json_object_get(d, "source"));
	printf("%*s%s  %s", depth * 2, "", json_string_value(json_object_get(d, "path")),
	       json_string_value(json_object_get(d, "digest")));
	if (!src)
		printf("  (not in the catalog)\n");
	else if (!strcmp(src, "transfer"))
		printf("  sent by %s\n", json_string_value(json_object_get(d, "origin")));
	else if (!strcmp(src, "found"))
		printf("  found in place\n");
	else
		printf("\n");
	if (!job)
		return;
	json_t *spec = json_object_get(job, "spec");
	printf("%*s<- job %s (%s, exit %lld): image %s@%s\n", depth * 2 + 2, "",
	       json_string_value(json_object_get(job, "id")), json_string_value(json_object_get(job, "state")),
	       (long long)json_integer_value(json_object_get(job, "exit_code")),
	       json_string_value(json_object_get(job, "image")), json_string_value(json_object_get(job, "digest")));
	json_t *args = json_object_get(spec, "args");
	if (json_array_size(args)) {
		printf("%*s   command:", depth * 2 + 2, "");
		size_t i;
		json_t *a;
		json_array_foreach (args, i, a)
			printf(" %s", json_string_value(a));
		printf("\n");
	}
	size_t i;
	json_t *f;
	json_array_foreach (json_object_get(node, "from"), i, f)
		print_chain(f, depth + 2);
}

static const char provenance_usage[] =
	"Usage: jumbo provenance [--verify] [--json] [--api HOST:PORT] PATH\n\n"
	"Where the dataset at PATH comes from: the job that wrote it (image digest,\n"
	"command, exit status), that job's inputs with their digests, and so on back\n"
	"to the transfers that brought them (and the relay that delivered them).\n"
	"      --verify         a dataset that came through relays: read it again and\n"
	"                       check it against its origin's seal (the signature with\n"
	"                       the key pinned for the origin, the sha256t it signed);\n"
	"                       exit status 1 when it does not hold\n"
	"      --json           the whole chain as JSON (with each job's environment and limits)\n"
	"      --api HOST:PORT  the daemon's API (default $JUMBO_API, then [site] api)\n"
	"  -h, --help           this text\n";

int cmd_provenance(struct cli *g, int argc, char **argv)
{
	const char *api = NULL;
	bool json = false;
	int r = cli_api_opts(argc, argv, provenance_usage, &api, &json, "verify");
	if (r)
		return r > 0 ? 0 : EXIT_USAGE;
	if (argc - optind != 1) {
		cli_error("provenance: usage: jumbo provenance [--json] PATH");
		return EXIT_USAGE;
	}
	char *e = escape(argv[optind]);
	char path[JB_PATH_MAX * 3 + 64];
	snprintf(path, sizeof path, "/api/v1/provenance?path=%s%s", e ? e : "", want_verify ? "&verify=1" : "");
	free(e);
	json_t *ans = NULL;
	if (get_json(g, api, "GET", path, &ans) < 0)
		return 1;
	if (json)
		print_json(ans);
	else
		print_chain(ans, 0);
	int rc = 0;
	json_t *v = json_object_get(ans, "verify");
	if (want_verify) {
		rc = json_is_true(json_object_get(v, "ok")) ? 0 : 1;
		if (!json && !rc)
			printf("verified: sealed by %s (%s), delivered by %s; the file is what %s sent\n",
			       json_string_value(json_object_get(v, "signer")),
			       json_string_value(json_object_get(v, "sealed")),
			       json_string_value(json_object_get(v, "via")) ? json_string_value(json_object_get(v, "via"))
									     : "?",
			       json_string_value(json_object_get(v, "signer")));
		if (rc)
			cli_error("provenance: %s: not verified: %s", argv[optind],
				  json_string_value(json_object_get(v, "error")) ? json_string_value(json_object_get(v, "error"))
										 : "no answer");
	}
	json_decref(ans);
	return rc;
}

static const char rerun_usage[] =
	"Usage: jumbo rerun [--json] [--api HOST:PORT] JOB\n\n"
	"Run JOB again on the same inputs (each must still have its digest), in the\n"
	"image it ran in (pinned by digest), with the same command, environment and\n"
	"limits; then compare the outputs with the first run's, file by file (SHA-256).\n"
	"Exit status 0 when every output is bit-identical, 1 otherwise.\n"
	"      --json           the comparison as JSON\n"
	"      --api HOST:PORT  the daemon's API (default $JUMBO_API, then [site] api)\n"
	"  -h, --help           this text\n";

int cmd_rerun(struct cli *g, int argc, char **argv)
{
	const char *api = NULL;
	bool json = false;
	int r = cli_api_opts(argc, argv, rerun_usage, &api, &json, NULL);
	if (r)
		return r > 0 ? 0 : EXIT_USAGE;
	if (argc - optind != 1) {
		cli_error("rerun: usage: jumbo rerun [--json] JOB");
		return EXIT_USAGE;
	}
	const char *old = argv[optind];
	char path[256];
	json_t *nj = NULL, *a = NULL, *b = NULL;
	snprintf(path, sizeof path, "/api/v1/jobs/%.64s/rerun", old);
	if (get_json(g, api, "POST", path, &nj) < 0)
		return 1;
	char id[64];
	snprintf(id, sizeof id, "%s", json_string_value(json_object_get(nj, "id")));
	json_decref(nj);
	if (!json)
		fprintf(stderr, "jumbo: job %s runs %s again\n", id, old);
	/* wait for it, its output on ours */
	struct jb_api_client *c = NULL;
	if (cli_api(g, api, &c) < 0)
		return 1;
	int rc = cli_follow(c, id, false, true);
	jb_api_client_close(c);
	if (rc != 0) {
		cli_error("rerun: job %s did not complete (exit status %d)", id, rc);
		return 1;
	}
	snprintf(path, sizeof path, "/api/v1/jobs/%.64s", old);
	if (get_json(g, api, "GET", path, &a) < 0)
		return 1;
	snprintf(path, sizeof path, "/api/v1/jobs/%s", id);
	if (get_json(g, api, "GET", path, &b) < 0) {
		json_decref(a);
		return 1;
	}
	/* outputs by their path below each job's output directory */
	const char *oa = json_string_value(json_object_get(a, "output")), *ob = json_string_value(json_object_get(b, "output"));
	json_t *la = json_object_get(a, "outputs"), *lb = json_object_get(b, "outputs");
	json_t *diff = json_array();
	size_t i, k, same = 0;
	json_t *x, *y;
	json_array_foreach (la, i, x) {
		const char *pa = json_string_value(json_object_get(x, "path")) + (oa ? strlen(oa) + 1 : 0);
		const char *sa = json_string_value(json_object_get(x, "sha256"));
		bool found = false;
		json_array_foreach (lb, k, y) {
			const char *pb = json_string_value(json_object_get(y, "path")) + (ob ? strlen(ob) + 1 : 0);
			if (strcmp(pa, pb))
				continue;
			found = true;
			if (sa && !strcmp(sa, json_string_value(json_object_get(y, "sha256"))))
				same++;
			else
				json_array_append_new(diff, json_pack("{s:s, s:s}", "path", pa, "why", "different bytes"));
		}
		if (!found)
			json_array_append_new(diff, json_pack("{s:s, s:s}", "path", pa, "why", "missing in the rerun"));
	}
	json_array_foreach (lb, k, y) {
		const char *pb = json_string_value(json_object_get(y, "path")) + (ob ? strlen(ob) + 1 : 0);
		bool found = false;
		json_array_foreach (la, i, x)
			found |= !strcmp(pb, json_string_value(json_object_get(x, "path")) + (oa ? strlen(oa) + 1 : 0));
		if (!found)
			json_array_append_new(diff, json_pack("{s:s, s:s}", "path", pb, "why", "new in the rerun"));
	}
	bool identical = json_array_size(diff) == 0 && json_array_size(la) > 0;
	if (json) {
		json_t *o = json_pack("{s:s, s:s, s:b, s:I, s:O}", "job", old, "rerun", id, "identical", identical,
				      "files_identical", (json_int_t)same, "differences", diff);
		print_json(o);
		json_decref(o);
	} else if (!json_array_size(la)) {
		printf("job %s wrote no outputs (/work/out): nothing to compare\n", old);
	} else if (identical) {
		printf("bit-identical: %zu output%s of job %s and of job %s have the same SHA-256\n", same,
		       same == 1 ? "" : "s", old, id);
	} else {
		printf("NOT identical: %zu of %zu outputs differ\n", json_array_size(diff), json_array_size(la));
		json_array_foreach (diff, i, x)
			printf("  %s: %s\n", json_string_value(json_object_get(x, "path")),
			       json_string_value(json_object_get(x, "why")));
	}
	json_decref(diff);
	json_decref(a);
	json_decref(b);
	return identical ? 0 : 1;
}
