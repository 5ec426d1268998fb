/* jumbo: the command-line client.  Global options, then a subcommand from
 * the table below; each subcommand lives in its own file. */
#include <getopt.h>
#include <signal.h>
#include <string.h>

#include "jb_version.h"
#include "jumbo.h"

static const struct {
	const char *name;
	int (*fn)(struct cli *, int, char **);
	const char *summary;
} commands[] = {
	{"send", cmd_send, "send local files to a site:   jumbo send [-r] [-P N] SRC... PEER:PATH"},
	{"get", cmd_get, "fetch files from a site:       jumbo get [-r] [-P N] PEER:PATH DEST"},
	{"transfers", cmd_transfers, "transfers jumbod runs:         jumbo transfers [--json] [ID]"},
	{"wait", cmd_wait, "wait for them to end:          jumbo wait ID..."},
	{"cancel", cmd_cancel, "cancel them:                   jumbo cancel ID..."},
	{"ls", cmd_ls, "list a directory on a site:    jumbo ls [-l] [--json] PEER:PATH"},
	{"run", cmd_run, "run a job in a container here:  jumbo run [-i IMAGE] [-d PATH] [-m 4G] -- CMD..."},
	{"jobs", cmd_jobs, "list jobs:                     jumbo jobs [--json] [ID]"},
	{"logs", cmd_logs, "a job's output:                jumbo logs [-f] ID"},
	{"kill", cmd_kill, "cancel jobs:                   jumbo kill ID..."},
	{"datasets", cmd_datasets, "the site's catalog:            jumbo datasets [--json] [PATH]"},
	{"provenance", cmd_provenance, "where a result comes from:     jumbo provenance PATH"},
	{"rerun", cmd_rerun, "run a job again, compare:      jumbo rerun JOB"},
	{"token", cmd_token, "API tokens of this site:       jumbo token create NAME | list | revoke NAME"},
	{"image", cmd_image, "images and registries:         jumbo image pull|push|ls|rm|build|import ..."},
	{"keygen", cmd_keygen, "make a site identity:          jumbo keygen --dir DIR [--name NAME]"},
	{"fingerprint", cmd_fingerprint, "print an identity's fingerprint: jumbo fingerprint [--dir DIR]"},
	{"sum", cmd_sum, "the digest jumbo reports, computed locally: jumbo sum FILE..."},
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: jumbo [--config FILE] COMMAND [ARGS]\n\nCommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nGlobal options:\n"
		   "  -c, --config FILE  configuration (default $JUMBO_CONFIG, then ~/.config/jumbo/jumbo.conf)\n"
		   "  -v, --verbose      more log output\n"
		   "  -V, --version      print the version\n"
		   "  -h, --help         this text; 'jumbo COMMAND --help' for a command\n"
		   "\nRemote paths are PEER:PATH (a [peer] of the configuration) or jumbo://HOST:PORT/PATH,\n"
		   "relative to the site's data root.  See jumbo(1).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'}, {"help", no_argument, NULL, 'h'}, {0},
	};
	struct cli g = {0};
	int o;
	signal(SIGPIPE, SIG_IGN);
	/* '+': stop at the subcommand; its own options follow it */
	while ((o = getopt_long(argc, argv, "+c:vVh", opts, NULL)) != -1) {
		switch (o) {
		case 'c': g.config_path = optarg; break;
		case 'v': g.verbose++; break;
		case 'V': printf("jumbo %s\n", JB_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	jb_log_set(jb_log_stderr, "jumbo", g.verbose > 1 ? JB_LOG_DEBUG : g.verbose ? JB_LOG_INFO : JB_LOG_WARN);
	const char *name = argv[optind];
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(commands[i].name, name)) {
			optind++;
			int sub_argc = argc - optind + 1;
			char **sub_argv = argv + optind - 1;
			optind = 0; /* a full reset: subcommands permute their arguments */
			return commands[i].fn(&g, sub_argc, sub_argv);
		}
	if (!strcmp(name, "help")) {
		usage(stdout);
		return 0;
	}
	cli_error("unknown command '%s'", name);
	usage(stderr);
	return EXIT_USAGE;
}
