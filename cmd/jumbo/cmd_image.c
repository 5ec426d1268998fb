/* jumbo image: the site's image store, and registries.
 *   jumbo image pull|push|ls|rm|tag|inspect|import|build */
#include <getopt.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jb_version.h"
#include "jumbo.h"
#include "jumbo/oci.h"

struct image_opts {
	struct cli *cli;
	const char *store;
	char *user, *password;
	bool json;
	uint64_t chunk;
	bool insecure;
	bool remote;
};

static const char image_usage[] =
	"Usage: jumbo image COMMAND [OPTIONS] ...\n"
	"\n"
	"The site's image store (an OCI image layout) and OCI registries.\n"
	"\n"
	"  pull NAME               fetch an image from its registry (HOST[:PORT]/REPO[:TAG|@DIGEST])\n"
	"  push LOCAL [REMOTE]     send an image to a registry (REMOTE defaults to LOCAL)\n"
	"  ls [HOST/REPO]          the images in the store, or the tags of a registry's repository\n"
	"  rm NAME...              forget names, then remove the blobs no name needs\n"
	"  rm --remote NAME...     delete the manifests these names have in their registries\n"
	"  prune                   remove the blobs and layers no name needs\n"
	"  tag NAME NEWNAME        a second name for an image\n"
	"  inspect NAME            manifest digest, config, layers\n"
	"  unpack NAME             unpack the layers (once) and print their directories, bottom first\n"
	"  import FILE [NAME]      an OCI archive or a 'docker save' tarball\n"
	"  build RECIPE [NAME]     an image from a recipe (images/RECIPE.conf) with mmdebstrap\n"
	"\n"
	"Options:\n"
	"      --store DIR         the image store (default $JUMBO_IMAGES, else [site] images,\n"
	"                          else [site] state/images)\n"
	"      --creds USER:PASS   registry credentials (default $JUMBO_REGISTRY_USER and\n"
	"                          $JUMBO_REGISTRY_PASSWORD); sent only when the registry asks\n"
	"      --insecure          plain HTTP to a registry that is not on loopback\n"
	"      --chunk SIZE        push blobs larger than SIZE in chunks of SIZE (default: one PUT)\n"
	"      --json              machine-readable output\n"
	"  -h, --help              this text\n"
	"\n"
	"Loopback registries are spoken to in HTTP, others in HTTPS.  See jumbo(1).\n";

/* The store: --store, $JUMBO_IMAGES, [site] images, [site] state/images. */
static int open_store(struct cli *g, const struct image_opts *io, struct jb_oci_store **ret)
{
	const char *dir = io->store && *io->store ? io->store : getenv("JUMBO_IMAGES");
	char buf[4200];
	struct jb_config *c = NULL;
	uint64_t max = 0; /* [site] max_image_size, when the store is the configuration's */
	if (!dir || !*dir) {
		if (cli_load_config(g, &c) < 0) {
			fprintf(stderr, "jumbo: or name the image store with --store DIR or $JUMBO_IMAGES\n");
			return -1;
		}
		if (c->images)
			snprintf(buf, sizeof buf, "%s", c->images);
		else if (c->state)
			snprintf(buf, sizeof buf, "%s/images", c->state);
		else {
			cli_error("image: %s has neither [site] images nor [site] state", c->path);
			jb_config_free(c);
			return -1;
		}
		max = c->max_image_size;
		jb_config_free(c);
		dir = buf;
	}
	struct jb_error err = {0};
	if (jb_oci_store_open(dir, ret, &err) < 0) {
		cli_error("image store: %s", err.msg);
		return -1;
	}
	if (max)
		jb_oci_store_set_max_unpacked(*ret, max);
	return 0;
}

/* Options for the registry of name: jb_registry_opts_for with --creds, else
 * this command's environment, as the caller's credentials, and the
 * configuration's [registry HOST] (when there is a configuration). */
static void reg_opts(const struct image_opts *io, const char *name, struct jb_registry_opts *o)
{
	static struct jb_config *c;
	static bool tried;
	const char *user = io->user ? io->user : getenv("JUMBO_REGISTRY_USER");
	const char *password = io->user ? io->password : getenv("JUMBO_REGISTRY_PASSWORD");
	struct jb_oci_ref ref;
	bool remote = jb_oci_ref_parse(name, &ref, NULL) == 0 && ref.host[0];
	if (remote && !tried) {
		tried = true;
		const char *path = io->cli->config_path ? io->cli->config_path : getenv("JUMBO_CONFIG");
		if (path && *path)
			jb_config_load(path, &c, NULL);
	}
	jb_registry_opts_for(remote ? c : NULL, remote ? ref.host : NULL, user, password, io->insecure, o);
}

static int64_t image_size(const struct jb_oci_image *img)
{
	int64_t n = img->m.config.size;
	for (size_t i = 0; i < img->m.nlayers; i++)
		n += img->m.layers[i].size;
	return n;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2));
	if (s)
		puts(s);
	free(s);
	json_decref(j);
}

static json_t *image_json(const struct jb_oci_image *img)
{
	json_t *layers = json_array();
	for (size_t i = 0; i < img->m.nlayers; i++)
		json_array_append_new(layers, json_pack("{s:s, s:s, s:I, s:s}", "digest", img->m.layers[i].digest,
							"mediaType", img->m.layers[i].media_type, "size",
							(json_int_t)img->m.layers[i].size, "diff_id", img->c.diff_ids[i]));
	json_t *cmd = json_array(), *ep = json_array(), *env = json_array();
	for (char **p = img->c.cmd; p && *p; p++)
		json_array_append_new(cmd, json_string(*p));
	for (char **p = img->c.entrypoint; p && *p; p++)
		json_array_append_new(ep, json_string(*p));
	for (char **p = img->c.env; p && *p; p++)
		json_array_append_new(env, json_string(*p));
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "name", img->name, "digest",
			 img->digest, "mediaType", img->manifest_mt, "size", (json_int_t)image_size(img), "config",
			 img->m.config.digest, "os", img->c.os ? img->c.os : "", "architecture",
			 img->c.arch ? img->c.arch : "", "entrypoint", ep, "cmd", cmd, "env", env, "layers", layers);
}

static void print_done(const struct image_opts *io, const char *verb, const struct jb_oci_image *img)
{
	if (io->json) {
		print_json(image_json(img));
		return;
	}
	char sz[32];
	jb_format_bytes((uint64_t)image_size(img), sz, sizeof sz);
	printf("%s %s\ndigest %s, %zu layer%s, %s\n", verb, img->name, img->digest, img->m.nlayers,
	       img->m.nlayers == 1 ? "" : "s", sz);
}

static int do_pull(struct jb_oci_store *s, const struct image_opts *io, int argc, char **argv)
{
	if (argc != 1) {
		cli_error("image pull: usage: jumbo image pull NAME");
		return EXIT_USAGE;
	}
	struct jb_registry_opts o;
	reg_opts(io, argv[0], &o);
	struct jb_oci_image img;
	struct jb_error err = {0};
	if (jb_oci_pull(s, argv[0], &o, &img, &err) < 0) {
		cli_error("pull %s: %s", argv[0], err.msg);
		return 1;
	}
	print_done(io, "pulled", &img);
	jb_oci_image_free(&img);
	return 0;
}

static int do_push(struct jb_oci_store *s, const struct image_opts *io, int argc, char **argv)
{
	if (argc < 1 || argc > 2) {
		cli_error("image push: usage: jumbo image push LOCAL [REMOTE]");
		return EXIT_USAGE;
	}
	const char *remote = argc == 2 ? argv[1] : argv[0];
	struct jb_registry_opts o;
	reg_opts(io, remote, &o);
	char digest[JB_OCI_DIGEST_MAX];
	struct jb_error err = {0};
	struct jb_oci_push_stats st;
	if (jb_oci_push(s, argv[0], remote, &o, io->chunk, digest, &st, &err) < 0) {
		cli_error("push %s: %s", remote, err.msg);
		return 1;
	}
	if (io->json) {
		print_json(json_pack("{s:s, s:s, s:i, s:i, s:i, s:I}", "name", remote, "digest", digest, "blobs_sent",
				     (int)st.sent, "blobs_present", (int)st.present, "blobs_mounted", (int)st.mounted,
				     "bytes_sent", (json_int_t)st.bytes_sent));
	} else {
		char sz[32];
		jb_format_bytes(st.bytes_sent, sz, sizeof sz);
		printf("pushed %s\ndigest %s, blobs: %u sent (%s), %u already there, %u mounted from another repository\n",
		       remote, digest, st.sent, sz, st.present, st.mounted);
	}
	return 0;
}

/* ls HOST/REPO: the registry's tags of a repository */
static int ls_remote(const struct image_opts *io, const char *name)
{
	struct jb_oci_ref ref;
	struct jb_registry *r = NULL;
	struct jb_registry_opts o;
	struct jb_error err = {0};
	char **tags = NULL;
	size_t n = 0;
	reg_opts(io, name, &o);
	if (jb_oci_ref_parse(name, &ref, &err) < 0 || !ref.host[0] ||
	    jb_registry_open(ref.host, &o, &r, &err) < 0 || jb_registry_tags(r, ref.repo, &tags, &n, &err) < 0) {
		cli_error("image ls %s: %s", name, err.msg[0] ? err.msg : "no registry in the name (HOST[:PORT]/REPO)");
		jb_registry_close(r);
		return 1;
	}
	jb_registry_close(r);
	json_t *arr = io->json ? json_array() : NULL;
	for (size_t i = 0; i < n; i++) {
		char full[600];
		snprintf(full, sizeof full, "%s/%s:%s", ref.host, ref.repo, tags[i]);
		if (arr)
			json_array_append_new(arr, json_string(full));
		else
			puts(full);
	}
	if (arr)
		print_json(arr);
	jb_oci_strv_free(tags);
	return 0;
}

static int do_ls(struct jb_oci_store *s, const struct image_opts *io, int argc, char **argv)
{
	struct jb_oci_named *v = NULL;
	size_t n = 0;
	struct jb_error err = {0};
	if (argc > 1) {
		cli_error("image ls: usage: jumbo image ls [HOST/REPO]");
		return EXIT_USAGE;
	}
	if (argc == 1)
		return ls_remote(io, argv[0]);
	if (jb_oci_store_list(s, &v, &n, &err) < 0) {
		cli_error("image ls: %s", err.msg);
		return 1;
	}
	json_t *arr = io->json ? json_array() : NULL;
	if (!io->json)
		printf("%-48s %-19s %7s %10s\n", "NAME", "DIGEST", "LAYERS", "SIZE");
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		struct jb_oci_image img;
		memset(&err, 0, sizeof err);
		if (jb_oci_image_open(s, v[i].name, &img, &err) < 0) {
			cli_error("image %s: %s", v[i].name, err.msg);
			rc = 1;
			continue;
		}
		if (arr) {
			json_array_append_new(arr, json_pack("{s:s, s:s, s:i, s:I}", "name", img.name, "digest", img.digest,
							     "layers", (int)img.m.nlayers, "size",
							     (json_int_t)image_size(&img)));
		} else {
			char sz[32];
			jb_format_bytes((uint64_t)image_size(&img), sz, sizeof sz);
			printf("%-48s %.19s %7zu %10s\n", img.name, img.digest, img.m.nlayers, sz);
		}
		jb_oci_image_free(&img);
	}
	if (arr)
		print_json(arr);
	jb_oci_named_free(v, n);
	return rc;
}

/* rm --remote NAME: delete the manifest a tag names from its registry */
static int rm_remote(const struct image_opts *io, const char *name)
{
	struct jb_oci_ref ref;
	struct jb_registry *r = NULL;
	struct jb_registry_opts o;
	struct jb_error err = {0};
	char *buf = NULL, *mt = NULL, digest[JB_OCI_DIGEST_MAX];
	size_t len;
	reg_opts(io, name, &o);
	int rc = jb_oci_ref_parse(name, &ref, &err);
	if (rc == 0 && !ref.host[0])
		rc = jb_err(&err, EINVAL, "no registry in the name (HOST[:PORT]/REPO:TAG)");
	if (rc == 0)
		rc = jb_registry_open(ref.host, &o, &r, &err);
	if (rc == 0)
		rc = jb_registry_manifest_get(r, ref.repo, ref.digest[0] ? ref.digest : ref.tag, &buf, &len, &mt, digest,
					      &err);
	if (rc == 0)
		rc = jb_registry_manifest_delete(r, ref.repo, digest, &err);
	free(buf);
	free(mt);
	jb_registry_close(r);
	if (rc < 0) {
		cli_error("image rm %s: %s", name, err.msg);
		return 1;
	}
	if (!io->json)
		printf("deleted %s (%s) from its registry\n", name, digest);
	return 0;
}

static int do_rm(struct jb_oci_store *s, const struct image_opts *io, int argc, char **argv)
{
	if (argc < 1) {
		cli_error("image rm: usage: jumbo image rm NAME...");
		return EXIT_USAGE;
	}
	int rc = 0;
	if (io->remote) {
		for (int i = 0; i < argc; i++)
			rc |= rm_remote(io, argv[i]);
		return rc;
	}
	for (int i = 0; i < argc; i++) {
		struct jb_oci_ref ref;
		char canon[600];
		struct jb_error err = {0};
		if (jb_oci_ref_parse(argv[i], &ref, &err) < 0) {
			cli_error("image rm: %s", err.msg);
			rc = 1;
			continue;
		}
		jb_oci_ref_name(&ref, canon, sizeof canon);
		if (jb_oci_store_untag(s, canon, &err) < 0) {
			cli_error("image rm: %s", err.msg);
			rc = 1;
		} else if (!io->json)
			printf("removed %s\n", canon);
	}
	size_t removed = 0;
	struct jb_error err = {0};
	int pr = jb_oci_store_prune(s, &removed, &err);
	if (pr == -EBUSY) {
		fprintf(stderr, "jumbo: image rm: %s\n", err.msg); /* the names are gone; the blobs wait */
	} else if (pr < 0) {
		cli_error("image rm: %s", err.msg);
		rc = 1;
	} else if (io->json)
		print_json(json_pack("{s:I}", "blobs_removed", (json_int_t)removed));
	else
		printf("%zu blob%s no longer needed, removed\n", removed, removed == 1 ? "" : "s");
	return rc;
}

static int do_prune(struct jb_oci_store *s, const struct image_opts *io, int argc, char **argv)
{
	if (argc) {
		cli_error("image prune: takes no arguments");
		return EXIT_USAGE;
	}
	size_t removed = 0;
	struct jb_error err = {0};
	if (jb_oci_store_prune(s, &removed, &err) < 0) {
		cli_error("image prune: %s", err.msg);
		return 1;
	}
	if (io->json)
		print_json(json_pack("{s:I}", "blobs_removed", (json_int_t)removed));
	else
		printf("%zu blob%s no longer needed, removed\n", removed, removed == 1 ? "" : "s");
	return 0;
}

static int do_tag(struct jb_oci_store *s, const struct image_opts *io, int argc, char **argv)
{
	if (argc != 2) {
		cli_error("image tag: usage: jumbo image tag NAME NEWNAME");
		return EXIT_USAGE;
	}
	struct jb_oci_image img;
	struct jb_oci_ref ref;
	struct jb_error err = {0};
	char canon[600];
	if (jb_oci_ref_parse(argv[1], &ref, &err) < 0 || jb_oci_image_open(s, argv[0], &img, &err) < 0) {
		cli_error("image tag: %s", err.msg);
		return 1;
	}
	jb_oci_ref_name(&ref, canon, sizeof canon);
	struct jb_oci_desc d = {.media_type = img.manifest_mt, .size = img.manifest_size};
	strcpy(d.digest, img.digest);
	int rc = jb_oci_store_tag(s, canon, &d, &err);
	if (rc < 0)
		cli_error("image tag: %s", err.msg);
	else if (!io->json)
		printf("%s is %s\n", canon, img.digest);
	jb_oci_image_free(&img);
	return rc < 0 ? 1 : 0;
}

static int do_inspect(struct jb_oci_store *s, const struct image_opts *io, int argc, char **argv)
{
	if (argc != 1) {
		cli_error("image inspect: usage: jumbo image inspect NAME");
		return EXIT_USAGE;
	}
	struct jb_oci_image img;
	struct jb_error err = {0};
	if (jb_oci_image_open(s, argv[0], &img, &err) < 0) {
		cli_error("image inspect: %s", err.msg);
		return 1;
	}
	if (io->json) {
		print_json(image_json(&img));
	} else {
		char sz[32];
		printf("name       %s\ndigest     %s\nconfig     %s\nplatform   %s/%s\n", img.name, img.digest,
		       img.m.config.digest, img.c.os ? img.c.os : "?", img.c.arch ? img.c.arch : "?");
		printf("command   ");
		for (char **p = img.c.entrypoint; p && *p; p++)
			printf(" %s", *p);
		for (char **p = img.c.cmd; p && *p; p++)
			printf(" %s", *p);
		printf("\n");
		for (size_t i = 0; i < img.m.nlayers; i++) {
			jb_format_bytes((uint64_t)img.m.layers[i].size, sz, sizeof sz);
			printf("layer %-4zu %s %10s\n", i + 1, img.m.layers[i].digest, sz);
		}
	}
	jb_oci_image_free(&img);
	return 0;
}

static int do_unpack(struct jb_oci_store *s, const struct image_opts *io, int argc, char **argv)
{
	if (argc != 1) {
		cli_error("image unpack: usage: jumbo image unpack NAME");
		return EXIT_USAGE;
	}
	struct jb_oci_image img;
	struct jb_error err = {0};
	char **dirs = NULL;
	if (jb_oci_image_open(s, argv[0], &img, &err) < 0 || jb_oci_image_layers(s, &img, &dirs, &err) < 0) {
		cli_error("image unpack: %s", err.msg);
		if (img.manifest_mt)
			jb_oci_image_free(&img);
		return 1;
	}
	json_t *arr = io->json ? json_array() : NULL;
	for (char **p = dirs; *p; p++)
		if (arr)
			json_array_append_new(arr, json_string(*p));
		else
			puts(*p);
	if (arr)
		print_json(json_pack("{s:s, s:s, s:o}", "name", img.name, "digest", img.digest, "layers", arr));
	jb_oci_strv_free(dirs);
	jb_oci_image_free(&img);
	return 0;
}

static int do_import(struct jb_oci_store *s, const struct image_opts *io, int argc, char **argv)
{
	if (argc < 1 || argc > 2) {
		cli_error("image import: usage: jumbo image import FILE [NAME]");
		return EXIT_USAGE;
	}
	struct jb_oci_image img;
	struct jb_error err = {0};
	if (jb_oci_import(s, argv[0], argc == 2 ? argv[1] : NULL, &img, &err) < 0) {
		cli_error("import: %s", err.msg);
		return 1;
	}
	print_done(io, "imported", &img);
	jb_oci_image_free(&img);
	return 0;
}

/* RECIPE: a path to a .conf file, or a name looked up in $JUMBO_RECIPES,
 * the installed recipes, then the source tree's images/. */
static int find_recipe(const char *recipe, char *path, size_t n, char *name, size_t nn)
{
	const char *base = strrchr(recipe, '/') ? strrchr(recipe, '/') + 1 : recipe;
	size_t bl = strlen(base);
	if (bl > 5 && !strcmp(base + bl - 5, ".conf"))
		bl -= 5;
	snprintf(name, nn, "%.*s", (int)bl, base);
	if (strchr(recipe, '/') || strstr(recipe, ".conf")) {
		snprintf(path, n, "%s", recipe);
		return access(path, R_OK);
	}
	const char *dirs[] = {getenv("JUMBO_RECIPES"), JB_RECIPES_DIR, JB_SOURCE_RECIPES_DIR};
	for (size_t i = 0; i < JB_ARRAY_SIZE(dirs); i++) {
		if (!dirs[i] || !*dirs[i])
			continue;
		snprintf(path, n, "%s/%s.conf", dirs[i], recipe);
		if (access(path, R_OK) == 0)
			return 0;
	}
	return -1;
}

static int do_build(struct jb_oci_store *s, const struct image_opts *io, int argc, char **argv)
{
	if (argc < 1 || argc > 2) {
		cli_error("image build: usage: jumbo image build RECIPE [NAME]");
		return EXIT_USAGE;
	}
	char path[4200], rname[256], name[600];
	if (find_recipe(argv[0], path, sizeof path, rname, sizeof rname) < 0) {
		cli_error("image build: no recipe '%s' (a file, or a name in $JUMBO_RECIPES, %s)", argv[0],
			  JB_RECIPES_DIR);
		return 1;
	}
	snprintf(name, sizeof name, "%s", argc == 2 ? argv[1] : "");
	if (!name[0])
		snprintf(name, sizeof name, "jumbo/%s:latest", rname);
	struct jb_oci_recipe r;
	struct jb_oci_image img;
	struct jb_error err = {0};
	if (jb_oci_recipe_load(path, &r, &err) < 0) {
		cli_error("image build: %s", err.msg);
		return 1;
	}
	if (!io->json)
		fprintf(stderr, "jumbo: building %s from %s (Debian %s, %zu packages) with mmdebstrap\n", name, path,
			r.suite, ({ size_t k = 0; while (r.packages && r.packages[k]) k++; k; }));
	const char *sde = getenv("SOURCE_DATE_EPOCH"); /* reproducible builds' convention */
	if (sde && *sde)
		r.created = strtoll(sde, NULL, 10);
	int rc = jb_oci_build(s, &r, rname, name, -1, &img, &err);
	jb_oci_recipe_free(&r);
	if (rc < 0) {
		cli_error("image build: %s", err.msg);
		return 1;
	}
	print_done(io, "built", &img);
	jb_oci_image_free(&img);
	return 0;
}

int cmd_image(struct cli *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{"store", required_argument, NULL, 's'}, {"creds", required_argument, NULL, 'C'},
		{"chunk", required_argument, NULL, 'k'}, {"insecure", no_argument, NULL, 'I'},
		{"json", no_argument, NULL, 'j'},        {"help", no_argument, NULL, 'h'},
		{"remote", no_argument, NULL, 'R'},      {0},
	};
	struct image_opts io = {.cli = g};
	char *creds = NULL;
	int o;
	/* options may come before or after the subcommand */
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 's': io.store = optarg; break;
		case 'C': creds = optarg; break;
		case 'I': io.insecure = true; break;
		case 'j': io.json = true; break;
		case 'R': io.remote = true; break;
		case 'k':
			if (jb_parse_size(optarg, &io.chunk) < 0 || io.chunk < 4096) {
				cli_error("image: --chunk wants a size of 4K or more, not '%s'", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h': fputs(image_usage, stdout); return 0;
		default: fputs(image_usage, stderr); return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fputs(image_usage, stderr);
		return EXIT_USAGE;
	}
	char *user = NULL;
	if (creds) {
		char *colon = strchr(creds, ':');
		if (!colon || colon == creds) {
			cli_error("image: --creds wants USER:PASSWORD");
			return EXIT_USAGE;
		}
		user = strndup(creds, (size_t)(colon - creds));
		io.user = user;
		io.password = colon + 1;
	}
	static const struct {
		const char *name;
		int (*fn)(struct jb_oci_store *, const struct image_opts *, int, char **);
	} sub[] = {
		{"pull", do_pull}, {"push", do_push},       {"ls", do_ls},         {"rm", do_rm},
		{"tag", do_tag},   {"inspect", do_inspect}, {"import", do_import}, {"build", do_build},
		{"unpack", do_unpack}, {"prune", do_prune},
	};
	const char *name = argv[optind];
	int rc = -1;
	for (size_t i = 0; i < JB_ARRAY_SIZE(sub); i++) {
		if (strcmp(sub[i].name, name))
			continue;
		struct jb_oci_store *s = NULL;
		if (open_store(g, &io, &s) < 0) {
			rc = 1;
			break;
		}
		rc = sub[i].fn(s, &io, argc - optind - 1, argv + optind + 1);
		jb_oci_store_close(s);
		break;
	}
	if (rc == -1) {
		cli_error("image: unknown command '%s'", name);
		fputs(image_usage, stderr);
		rc = EXIT_USAGE;
	}
	free(user);
	return rc;
}
