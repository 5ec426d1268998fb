/* jumbo transfers | wait | cancel: the transfers jumbod runs for its
 * clients (jumbo send --detach, jumbo get --detach, the REST API). */
#include <getopt.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "jumbo.h"
#include "jumbo/api.h"

static void dump(json_t *j)
{
	char *d = json_dumps(j, JSON_INDENT(2));
	puts(d ? d : "null");
	free(d);
}

static void line(json_t *t)
{
	char moved[72] = "-", rate[32] = "";
	json_t *p = json_object_get(t, "progress");
	if (p) {
		char a[32], b[32];
		jb_format_bytes((uint64_t)json_integer_value(json_object_get(p, "bytes_done")), a, sizeof a);
		jb_format_bytes((uint64_t)json_integer_value(json_object_get(p, "bytes_total")), b, sizeof b);
		snprintf(moved, sizeof moved, "%s/%s", a, b);
	} else if (json_object_get(t, "bytes_sent")) {
		jb_format_bytes((uint64_t)json_integer_value(json_object_get(t, "bytes_sent")), moved, sizeof moved);
		snprintf(rate, sizeof rate, "%.2f Gbit/s", json_number_value(json_object_get(t, "gbps")));
	}
	json_t *req = json_object_get(t, "request");
	const char *what = json_string_value(json_object_get(req, !strcmp(json_string_value(json_object_get(t, "op")), "send")
									  ? "dest" : "source"));
	const char *e = json_string_value(json_object_get(t, "error"));
	printf("%-12s  %-4s  %-9s  %-30.30s  %3lld  %-17s %-13s %s\n", json_string_value(json_object_get(t, "id")),
	       json_string_value(json_object_get(t, "op")), json_string_value(json_object_get(t, "state")), what ? what : "",
	       (long long)json_integer_value(json_object_get(t, "attempts")), moved, rate, e ? e : "");
}

/* One transfer relayed through this site, its hop here. */
static void relay_line(json_t *r)
{
	char staged[32], fwd[32], hop[140];
	jb_format_bytes((uint64_t)json_integer_value(json_object_get(r, "staged_bytes")), staged, sizeof staged);
	jb_format_bytes((uint64_t)json_integer_value(json_object_get(r, "forwarded_bytes")), fwd, sizeof fwd);
	snprintf(hop, sizeof hop, "%s > %s", json_string_value(json_object_get(r, "from")),
		 json_string_value(json_object_get(r, "next")));
	printf("%-12.12s  %-21.21s  %-10s  %-24.24s  %5lld/%-5lld  %-11s  %-11s  %-7.2f %lld\n",
	       json_string_value(json_object_get(r, "origin")), hop, json_string_value(json_object_get(r, "state")),
	       json_string_value(json_object_get(r, "path")), (long long)json_integer_value(json_object_get(r, "delivered")),
	       (long long)json_integer_value(json_object_get(r, "entries")), staged, fwd,
	       json_number_value(json_object_get(r, "gbps")), (long long)json_integer_value(json_object_get(r, "attempts")));
}

static const char transfers_usage[] =
	"Usage: jumbo transfers [--json] [--api HOST:PORT] [ID]\n\n"
	"The transfers this site's jumbod runs (jumbo send --detach, jumbo get --detach),\n"
	"newest first: state (queued, running, retrying, done, failed, cancelled),\n"
	"attempts, bytes moved, rate, the last error.  Then, at a relay, the transfers\n"
	"passing through it now, each one's hop here: origin, the hop before and the\n"
	"next, state (receiving, forwarding, retrying, custody), entries the next hop\n"
	"has verified, bytes staged here and passed on, rate, attempts.\n"
	"      --json           the REST API's transfer objects\n"
	"      --api HOST:PORT  the daemon's API (default $JUMBO_API, then [site] api)\n"
	"  -h, --help           this text\n";

int cmd_transfers(struct cli *g, int argc, char **argv)
{
	const char *api = NULL;
	bool json = false;
	int r = cli_api_opts(argc, argv, transfers_usage, &api, &json, NULL);
	if (r)
		return r > 0 ? 0 : EXIT_USAGE;
	if (argc - optind > 1) {
		cli_error("transfers: usage: jumbo transfers [--json] [ID]");
		return EXIT_USAGE;
	}
	struct jb_api_client *c = NULL;
	if (cli_api(g, api, &c) < 0)
		return 1;
	char path[128];
	snprintf(path, sizeof path, "/api/v1/transfers%s%.64s", optind < argc ? "/" : "", optind < argc ? argv[optind] : "");
	struct jb_error err = {0};
	long st;
	json_t *ans = NULL;
	r = jb_api_call(c, "GET", path, NULL, &st, &ans, &err);
	json_t *relays = NULL;
	long rst = 0;
	struct jb_error rerr = {0};
	if (r == 0 && !json && optind >= argc)
		jb_api_call(c, "GET", "/api/v1/relays", NULL, &rst, &relays, &rerr);
	jb_api_client_close(c);
	if (r < 0) {
		json_decref(relays);
		cli_error("transfers: %s", err.msg);
		return 1;
	}
	json_t *list = optind < argc ? json_pack("[O]", ans) : json_incref(json_object_get(ans, "transfers"));
	if (json) {
		dump(optind < argc ? ans : list);
	} else {
		printf("%-12s  %-4s  %-9s  %-30s  %3s  %-17s %-13s %s\n", "ID", "OP", "STATE", "PEER:PATH", "TRY", "MOVED",
		       "RATE", "ERROR");
		size_t i;
		json_t *t;
		json_array_foreach (list, i, t)
			line(t);
		json_t *rl = json_object_get(relays, "relays");
		if (json_array_size(rl)) {
			printf("\nrelayed through this site now:\n%-12s  %-21s  %-10s  %-24s  %-11s  %-11s  %-11s  %-7s %s\n",
			       "ORIGIN", "FROM > NEXT", "STATE", "PATH", "DELIVERED", "STAGED", "FORWARDED", "GBIT/S", "TRY");
			json_array_foreach (rl, i, t)
				relay_line(t);
		}
	}
	json_decref(relays);
	json_decref(list);
	json_decref(ans);
	return 0;
}

static const char wait_usage[] =
	"Usage: jumbo wait [--json] [--api HOST:PORT] ID...\n\n"
	"Wait until the transfers end.  Exit status 0 when all are done, 1 when one\n"
	"failed or was cancelled (its reason is printed).\n"
	"      --json           print each transfer as it ends\n"
	"      --api HOST:PORT  the daemon's API (default $JUMBO_API, then [site] api)\n"
	"  -h, --help           this text\n";

int cmd_wait(struct cli *g, int argc, char **argv)
{
	const char *api = NULL;
	bool json = false;
	int r = cli_api_opts(argc, argv, wait_usage, &api, &json, NULL);
	if (r)
		return r > 0 ? 0 : EXIT_USAGE;
	if (optind >= argc) {
		cli_error("wait: usage: jumbo wait ID...");
		return EXIT_USAGE;
	}
	struct jb_api_client *c = NULL;
	if (cli_api(g, api, &c) < 0)
		return 1;
	int rc = 0;
	for (int i = optind; i < argc; i++) {
		char path[128];
		snprintf(path, sizeof path, "/api/v1/transfers/%.64s", argv[i]);
		useconds_t delay = 20000;
		for (;;) {
			struct jb_error err = {0};
			long st;
			json_t *t = NULL;
			if (jb_api_call(c, "GET", path, NULL, &st, &t, &err) < 0) {
				cli_error("wait %s: %s", argv[i], err.msg);
				rc = 1;
				break;
			}
			const char *s = json_string_value(json_object_get(t, "state"));
			if (!strcmp(s, "done") || !strcmp(s, "failed") || !strcmp(s, "cancelled")) {
				if (json)
					dump(t);
				else if (strcmp(s, "done"))
					fprintf(stderr, "jumbo: transfer %s %s: %s\n", argv[i], s,
						json_string_value(json_object_get(t, "error")));
				else
					fprintf(stderr, "transfer %s done: %lld bytes in %.2f s, %.2f Gbit/s\n", argv[i],
						(long long)json_integer_value(json_object_get(t, "bytes_sent")),
						json_number_value(json_object_get(t, "seconds")),
						json_number_value(json_object_get(t, "gbps")));
				rc |= strcmp(s, "done") != 0;
				json_decref(t);
				break;
			}
			json_decref(t);
			usleep(delay);
			delay = delay * 2 > 500000 ? 500000 : delay * 2;
		}
	}
	jb_api_client_close(c);
	return rc;
}

static const char cancel_usage[] =
	"Usage: jumbo cancel [--api HOST:PORT] ID...\n\n"
	"Cancel transfers jumbod runs: a queued or retrying one does not start again,\n"
	"a running one stops (its verified blocks stay for a later transfer).\n"
	"      --api HOST:PORT  the daemon's API (default $JUMBO_API, then [site] api)\n"
	"  -h, --help           this text\n";

int cmd_cancel(struct cli *g, int argc, char **argv)
{
	const char *api = NULL;
	bool json = false;
	int r = cli_api_opts(argc, argv, cancel_usage, &api, &json, NULL);
	if (r)
		return r > 0 ? 0 : EXIT_USAGE;
	if (optind >= argc) {
		cli_error("cancel: usage: jumbo cancel ID...");
		return EXIT_USAGE;
	}
	return cli_post_each(g, api, "cancel", "/api/v1/transfers", "cancel", argc - optind, argv + optind);
}
