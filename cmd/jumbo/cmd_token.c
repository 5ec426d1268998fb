/* jumbo token create|list|revoke: bearer tokens of the site's REST API,
 * kept (hashed) in the daemon's state directory. */
#include <getopt.h>
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "jumbo.h"
#include "jumbo/api.h"

static const char token_usage[] =
	"Usage: jumbo token create NAME [--scope SCOPES] | list | revoke NAME [--json]\n\n"
	"Bearer tokens of this site's REST API (jumbod's [site] api).  create prints\n"
	"a new token once: give it to a user or a service (JupyterHub), who sends it\n"
	"as 'Authorization: Bearer TOKEN' or sets $JUMBO_TOKEN.  Run on the daemon's\n"
	"host, with its configuration; the tokens live in [site] state/site.db.\n"
	"  -s, --scope SCOPES  what the token may do, a comma list (default read):\n"
	"                      read (GET only), transfer (durable transfers), run (jobs,\n"
	"                      not on the host's network), notebook (notebooks for the\n"
	"                      hub users it names; notebook:USER for that user alone),\n"
	"                      admin (everything: every job and transfer, the host's\n"
	"                      network).  A token sees only the jobs and transfers it\n"
	"                      made, unless it is admin.\n"
	"      --json          machine-readable output\n"
	"  -h, --help          this text\n";

int cmd_token(struct cli *g, int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"scope", required_argument, NULL, 's'},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	bool json = false;
	const char *scopes = "read";
	int o;
	while ((o = getopt_long(argc, argv, "hs:", opts, NULL)) != -1) {
		switch (o) {
		case 'j': json = true; break;
		case 's': scopes = optarg; break;
		case 'h': fputs(token_usage, stdout); return 0;
		default: fputs(token_usage, stderr); return EXIT_USAGE;
		}
	}
	const char *verb = optind < argc ? argv[optind] : "";
	int nargs = argc - optind - 1;
	if (!((!strcmp(verb, "create") && nargs == 1) || (!strcmp(verb, "revoke") && nargs == 1) ||
	      (!strcmp(verb, "list") && nargs == 0))) {
		cli_error("token: usage: jumbo token create NAME [--scope SCOPES] | list | revoke NAME");
		return EXIT_USAGE;
	}
	struct jb_config *c = NULL;
	if (cli_load_config(g, &c) < 0)
		return 1;
	struct jb_error err = {0};
	struct jb_tokens *t = NULL;
	int rc = 0;
	if (!c->state) {
		cli_error("token: %s has no [site] state (run this on the daemon's host)", c->path);
		jb_config_free(c);
		return 1;
	}
	if (jb_tokens_open(c->state, &t, &err) < 0) {
		cli_error("token: %s", err.msg);
		jb_config_free(c);
		return 1;
	}
	if (!strcmp(verb, "create")) {
		char tok[JB_TOKEN_LEN + 1];
		unsigned mask;
		char user[65], canon[160];
		if (jb_scopes_parse(scopes, &mask, user, &err) < 0 || jb_tokens_create(t, argv[optind + 1], scopes, tok, &err) < 0) {
			cli_error("token: %s", err.msg);
			rc = 1;
		} else if (json) {
			jb_scopes_format(mask, user, canon, sizeof canon);
			json_t *j = json_pack("{s:s, s:s, s:s}", "name", argv[optind + 1], "token", tok, "scopes", canon);
			char *d = json_dumps(j, JSON_INDENT(2));
			puts(d ? d : "{}");
			free(d);
			json_decref(j);
		} else {
			puts(tok);
		}
		explicit_bzero(tok, sizeof tok);
	} else if (!strcmp(verb, "revoke")) {
		if (jb_tokens_revoke(t, argv[optind + 1], &err) < 0) {
			cli_error("token: %s", err.msg);
			rc = 1;
		} else if (!json) {
			printf("revoked %s\n", argv[optind + 1]);
		}
	} else {
		json_t *l = jb_tokens_list(t);
		if (json) {
			char *d = json_dumps(l, JSON_INDENT(2));
			puts(d ? d : "[]");
			free(d);
		} else {
			size_t i;
			json_t *x;
			json_array_foreach (l, i, x) {
				char when[32];
				time_t tt = (time_t)json_number_value(json_object_get(x, "created"));
				struct tm tm;
				strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&tt, &tm));
				printf("%-32s %-24s created %s\n", json_string_value(json_object_get(x, "name")),
				       json_string_value(json_object_get(x, "scopes")), when);
			}
		}
		json_decref(l);
	}
	jb_tokens_close(t);
	jb_config_free(c);
	return rc;
}
