#include <getopt.h>
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "jumbo.h"

int cmd_ls(struct cli *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'}, {"long", no_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'}, {0},
	};
	bool json = false, lng = false;
	int o;
	while ((o = getopt_long(argc, argv, "lh", opts, NULL)) != -1) {
		switch (o) {
		case 'j': json = true; break;
		case 'l': lng = true; break;
		case 'h':
			printf("Usage: jumbo ls [-l] [--json] PEER:PATH\n\nLists a directory (or names a file) on a site.\n"
			       "  -l, --long  type and mode, size, modification time\n"
			       "      --json  one JSON array of entries\n"
			       "  -h, --help  this text\n");
			return 0;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		cli_error("ls: usage: jumbo ls [-l] [--json] PEER:PATH");
		return EXIT_USAGE;
	}
	struct jb_config *c = NULL;
	if (cli_load_config(g, &c) < 0)
		return 1;
	struct jb_error err = {0};
	struct jb_remote rm;
	struct jb_client *cl = NULL;
	struct jb_list_entry *e = NULL;
	size_t n = 0;
	int rc = 1, r = jb_remote_parse(c, argv[optind], &rm, &err);
	if (r == 0) {
		cli_error("ls: %s is not a remote path (PEER:PATH or jumbo://HOST:PORT/PATH)", argv[optind]);
		jb_config_free(c);
		return EXIT_USAGE;
	}
	if (r < 0 || jb_client_new(c, &cl, &err) < 0 || jb_client_list(cl, &rm, &e, &n, &err) < 0) {
		cli_error("%s", err.msg);
		goto out;
	}
	if (json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++) {
			char m[8];
			snprintf(m, sizeof m, "%04o", e[i].mode);
			json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:s, s:I}", "name", e[i].path, "type",
							     e[i].type == JB_ENTRY_DIR ? "dir" : "file", "size",
							     (json_int_t)e[i].size, "mode", m, "mtime_ns",
							     (json_int_t)e[i].mtime_ns));
		}
		char *s = json_dumps(arr, JSON_INDENT(2));
		puts(s);
		free(s);
		json_decref(arr);
	} else {
		for (size_t i = 0; i < n; i++) {
			if (lng) {
				char tb[32];
				time_t t = (time_t)(e[i].mtime_ns / 1000000000);
				struct tm tm;
				localtime_r(&t, &tm);
				strftime(tb, sizeof tb, "%Y-%m-%d %H:%M", &tm);
				printf("%c%04o %14llu %s %s%s\n", e[i].type == JB_ENTRY_DIR ? 'd' : '-', e[i].mode,
				       (unsigned long long)e[i].size, tb, e[i].path, e[i].type == JB_ENTRY_DIR ? "/" : "");
			} else {
				printf("%s%s\n", e[i].path, e[i].type == JB_ENTRY_DIR ? "/" : "");
			}
		}
	}
	rc = 0;
out:
	jb_list_free(e, n);
	jb_client_free(cl);
	jb_remote_free(&rm);
	jb_config_free(c);
	return rc;
}

int cmd_sum(struct cli *g, int argc, char **argv)
{
	static const struct option opts[] = {{"block-size", required_argument, NULL, 'b'}, {"strong", no_argument, NULL, 's'},
					     {"help", no_argument, NULL, 'h'}, {0}};
	uint64_t bs = JB_WIRE_DEFAULT_BLOCK;
	bool strong = false;
	int o;
	while ((o = getopt_long(argc, argv, "b:sh", opts, NULL)) != -1) {
		switch (o) {
		case 'b':
			if (jb_parse_size(optarg, &bs) < 0 || bs < JB_WIRE_MIN_BLOCK || bs > JB_WIRE_MAX_BLOCK) {
				cli_error("sum: bad --block-size '%s' (64K..64M)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 's': strong = true; break;
		case 'h':
			printf("Usage: jumbo sum [--block-size SIZE] [--strong] FILE...\n\n"
			       "Prints the whole-file digest jumbo reports for each FILE (xxh3t: XXH3-128 over\n"
			       "the XXH3-128 digests of its blocks), to check a transfer independently.\n"
			       "  -b, --block-size SIZE  the transfer's block size, 64K to 64M (default 8M)\n"
			       "  -s, --strong           the strong digest instead (sha256t: SHA-256 over the\n"
			       "                         size, the block size and the SHA-256 of each block)\n");
			return 0;
		default: return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		cli_error("sum: no files");
		return EXIT_USAGE;
	}
	int rc = 0;
	for (int i = optind; i < argc; i++) {
		char d[JB_STRONG_HEX];
		struct jb_error err = {0};
		if ((strong ? jb_file_strong(argv[i], (uint32_t)bs, d, &err) : jb_file_digest(argv[i], (uint32_t)bs, d, &err)) <
		    0) {
			cli_error("%s", err.msg);
			rc = 1;
		} else {
			printf("%s  %s\n", d, argv[i]);
		}
	}
	return rc;
}
