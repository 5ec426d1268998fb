#include <getopt.h>
#include <string.h>
#include <unistd.h>

#include "jumbo.h"

int cmd_keygen(struct cli *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, 'd'}, {"name", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'}, {0},
	};
	const char *dir = NULL, *name = NULL;
	int o;
	while ((o = getopt_long(argc, argv, "d:n:h", opts, NULL)) != -1) {
		switch (o) {
		case 'd': dir = optarg; break;
		case 'n': name = optarg; break;
		case 'h':
			printf("Usage: jumbo keygen --dir DIR [--name NAME]\n\n"
			       "Writes DIR/key.pem (Ed25519, mode 0600) and DIR/cert.pem (self-signed,\n"
			       "CN=NAME, default the host name) and prints the fingerprint that peers pin:\n"
			       "SHA256:<64 hex>.  Refuses to overwrite an existing identity.\n");
			return 0;
		default: return EXIT_USAGE;
		}
	}
	if (!dir || optind != argc) {
		cli_error("keygen: usage: jumbo keygen --dir DIR [--name NAME]");
		return EXIT_USAGE;
	}
	char host[256] = "jumbo";
	if (!name) {
		gethostname(host, sizeof host - 1);
		name = host;
	}
	uint8_t fp[32];
	char f[72];
	struct jb_error err = {0};
	if (jb_identity_generate(dir, name, fp, &err) < 0) {
		cli_error("keygen: %s", err.msg);
		return 1;
	}
	jb_fp_format(fp, f);
	printf("%s\n", f);
	return 0;
}

int cmd_fingerprint(struct cli *g, int argc, char **argv)
{
	static const struct option opts[] = {{"dir", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'}, {0}};
	const char *dir = NULL;
	int o;
	while ((o = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		switch (o) {
		case 'd': dir = optarg; break;
		case 'h':
			printf("Usage: jumbo fingerprint [--dir DIR]\n\nPrints the fingerprint of the identity in DIR\n"
			       "(default: [site] identity of the configuration).\n");
			return 0;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		cli_error("fingerprint: usage: jumbo fingerprint [--dir DIR]");
		return EXIT_USAGE;
	}
	struct jb_config *c = NULL;
	if (!dir) {
		if (cli_load_config(g, &c) < 0)
			return 1;
		dir = c->identity;
	}
	uint8_t fp[32];
	char f[72];
	struct jb_error err = {0};
	int r = jb_identity_fingerprint(dir, fp, &err);
	if (r == 0) {
		jb_fp_format(fp, f);
		printf("%s\n", f);
	} else {
		cli_error("%s", err.msg);
	}
	jb_config_free(c);
	return r < 0;
}
