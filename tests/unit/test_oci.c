/* OCI image documents: digests, manifests, indexes, configs, and the
 * refusals a registry's or an archive's bad bytes must get. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jumbo/config.h"
#include "jumbo/oci.h"
#include "tap.h"

#define D64 "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define D64B "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

/* Registry credentials: one rule, and plain HTTP to loopback alone. */
static void registry_rules(void)
{
	static const char conf[] = "[site]\nname = a\nidentity = /nonexistent\nroot = /tmp\nstate = /tmp\n"
				   "[registry reg.example:5000]\nuser = site\npassword = s3cret\ninsecure = true\n";
	struct jb_config *c = NULL;
	struct jb_error e = {0};
	ok(jb_config_parse(conf, "test.conf", &c, &e) == 0, "a configuration with a [registry] section (%s)", e.msg);
	struct jb_registry_opts o;
	jb_registry_opts_for(c, "reg.example:5000", NULL, NULL, false, &o);
	ok(o.user && !strcmp(o.user, "site") && o.insecure, "no credentials given: the section's, for its host");
	jb_registry_opts_for(c, "other.example", NULL, NULL, false, &o);
	ok(!o.user && !o.password && !o.insecure, "another host gets none of them");
	jb_registry_opts_for(c, "reg.example:5000", "me", "pw", false, &o);
	ok(!strcmp(o.user, "me") && !strcmp(o.password, "pw") && o.insecure, "given credentials come first");
	jb_registry_opts_for(NULL, NULL, NULL, NULL, true, &o);
	ok(!o.user && o.insecure, "without a configuration: anonymous");
	jb_config_free(c);
	static const char *const yes[] = {"localhost", "localhost:5000", "127.0.0.1:5000", "127.9.8.7", "[::1]:5000", "::1"};
	static const char *const no[] = {"127.evil", "localhost.evil:5000", "127.0.0.1.evil", "[::2]:5000", "10.0.0.1",
					 "localhostx", "[::1"};
	for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
		ok(jb_host_is_loopback(yes[i]), "%s is loopback", yes[i]);
	for (size_t i = 0; i < sizeof no / sizeof *no; i++)
		ok(!jb_host_is_loopback(no[i]), "%s is not", no[i]);
}

static int parse(const char *doc, const char *ctype, struct jb_oci_manifest *m, struct jb_error *e)
{
	memset(e, 0, sizeof *e);
	return jb_oci_manifest_parse(doc, strlen(doc), ctype, m, e);
}

int main(void)
{
	struct jb_error e;
	struct jb_oci_manifest m;

	ok(jb_oci_digest_check(D64) == 0, "a sha256 digest is accepted");
	ok(jb_oci_digest_check("sha256:0123") == -EINVAL, "a short one is not");
	ok(jb_oci_digest_check("sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef") == -EINVAL,
	   "nor upper-case hex");
	ok(jb_oci_digest_check("md5:0123456789abcdef0123456789abcdef") == -EINVAL, "nor another algorithm");
	ok(jb_oci_digest_check(D64 "0") == -EINVAL, "nor trailing characters");
	char d[JB_OCI_DIGEST_MAX];
	jb_oci_digest_of("", 0, d);
	is_str(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	       "the digest of nothing is sha256's known value");

	const char *man = "{\"schemaVersion\":2,\"mediaType\":\"" JB_OCI_MT_MANIFEST "\","
			  "\"config\":{\"mediaType\":\"" JB_OCI_MT_CONFIG "\",\"digest\":\"" D64 "\",\"size\":7023},"
			  "\"layers\":[{\"mediaType\":\"" JB_OCI_MT_LAYER_GZIP "\",\"digest\":\"" D64B "\",\"size\":32654},"
			  "{\"mediaType\":\"" JB_OCI_MT_LAYER_ZSTD "\",\"digest\":\"" D64 "\",\"size\":16724}],"
			  "\"annotations\":{\"a\":\"b\"}}";
	ok(parse(man, JB_OCI_MT_MANIFEST, &m, &e) == 0, "an OCI image manifest parses (%s)", e.msg);
	is_int(m.kind, JB_OCI_KIND_MANIFEST, "as an image manifest");
	is_str(m.config.digest, D64, "its config digest");
	is_int(m.config.size, 7023, "and size");
	is_int(m.nlayers, 2, "two layers");
	is_str(m.layers[1].media_type, JB_OCI_MT_LAYER_ZSTD, "the second one zstd");
	enum jb_oci_compression c = JB_OCI_TAR;
	ok(jb_oci_layer_compression(m.layers[1].media_type, &c) == 0 && c == JB_OCI_ZSTD, "which jumbo can unpack");
	jb_oci_manifest_free(&m);
	ok(jb_oci_layer_compression("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", &c) == -ENOTSUP,
	   "a non-distributable layer is not one jumbo unpacks");

	ok(parse(man, JB_OCI_MT_INDEX, &m, &e) == -EINVAL && strstr(e.msg, "served as"),
	   "a document served as another type is refused: %s", e.msg);

	const char *docker = "{\"schemaVersion\":2,\"mediaType\":\"" JB_DOCKER_MT_MANIFEST "\","
			     "\"config\":{\"mediaType\":\"" JB_DOCKER_MT_CONFIG "\",\"digest\":\"" D64 "\",\"size\":1},"
			     "\"layers\":[{\"mediaType\":\"" JB_DOCKER_MT_LAYER "\",\"digest\":\"" D64B "\",\"size\":2}]}";
	ok(parse(docker, NULL, &m, &e) == 0 && m.nlayers == 1, "a Docker schema 2 manifest parses (%s)", e.msg);
	jb_oci_manifest_free(&m);

	const char *index = "{\"schemaVersion\":2,\"manifests\":["
			    "{\"mediaType\":\"" JB_OCI_MT_MANIFEST "\",\"digest\":\"" D64 "\",\"size\":10,"
			    "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}},"
			    "{\"mediaType\":\"" JB_OCI_MT_MANIFEST "\",\"digest\":\"" D64B "\",\"size\":11,"
			    "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}";
	ok(parse(index, NULL, &m, &e) == 0 && m.kind == JB_OCI_KIND_INDEX, "an index without mediaType parses by shape");
	const struct jb_oci_desc *p = jb_oci_index_find(&m, "linux", "amd64", NULL);
	ok(p && !strcmp(p->digest, D64B), "and its linux/amd64 entry is found");
	ok(!jb_oci_index_find(&m, "linux", "arm64", "v7"), "an arm64/v7 one is not");
	jb_oci_manifest_free(&m);

	static const struct {
		const char *doc, *why;
	} badm[] = {
		{"", "not valid JSON"},
		{"[]", "not a JSON object"},
		{"{\"schemaVersion\":1}", "schemaVersion"},
		{"{\"schemaVersion\":2,\"schemaVersion\":2,\"layers\":[]}", "not valid JSON"},
		{"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"" D64 "\",\"size\":1}}", "layers"},
		{"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:zz\",\"size\":1},\"layers\":[]}",
		 "digest"},
		{"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"" D64 "\",\"size\":-1},\"layers\":[]}",
		 "size"},
		{"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"" D64 "\",\"size\":1},\"layers\":[7]}",
		 "layers[0]: not an object"},
		{"{\"schemaVersion\":2,\"mediaType\":\"text/html\",\"layers\":[]}", "unsupported media type"},
		{"{\"schemaVersion\":2,\"mediaType\":\"" JB_OCI_MT_INDEX "\",\"manifests\":[],\"layers\":[]}",
		 "an index with"},
		{"{\"schemaVersion\":2,\"mediaType\":\"a\\u0000b\"}", "NUL"},
	};
	for (size_t i = 0; i < sizeof badm / sizeof *badm; i++) {
		int r = parse(badm[i].doc, NULL, &m, &e);
		ok(r < 0 && strstr(e.msg, badm[i].why), "refused, naming the fault (%s): %s", badm[i].why, e.msg);
	}
	char *big = malloc(JB_OCI_MAX_DOC + 2);
	memset(big, ' ', JB_OCI_MAX_DOC + 1);
	big[JB_OCI_MAX_DOC + 1] = 0;
	ok(parse(big, NULL, &m, &e) == -E2BIG, "a document over 4 MiB is refused before parsing: %s", e.msg);
	free(big);

	const char *cfg = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/usr/bin\"],"
			  "\"Cmd\":[\"python3\",\"-c\",\"print(1)\"],\"WorkingDir\":\"/work\"},"
			  "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D64 "\",\"" D64B "\"]},\"history\":[]}";
	struct jb_oci_config k;
	memset(&e, 0, sizeof e);
	ok(jb_oci_config_parse(cfg, strlen(cfg), &k, &e) == 0, "an image config parses (%s)", e.msg);
	is_str(k.cmd[1], "-c", "its command");
	ok(k.entrypoint && !k.entrypoint[0], "an absent entrypoint is empty");
	is_str(k.env[0], "PATH=/usr/bin", "its environment");
	is_str(k.workdir, "/work", "its working directory");
	is_int(k.ndiff_ids, 2, "one diff_id per layer");
	jb_oci_config_free(&k);
	const char *cfgbad = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
			     "\"diff_ids\":[\"sha256:abc\"]}}";
	memset(&e, 0, sizeof e);
	ok(jb_oci_config_parse(cfgbad, strlen(cfgbad), &k, &e) == -EINVAL && strstr(e.msg, "diff_ids[0]"),
	   "a config with a bad diff_id is refused: %s", e.msg);
	const char *cfgnoroot = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":\"sh\"}}";
	memset(&e, 0, sizeof e);
	ok(jb_oci_config_parse(cfgnoroot, strlen(cfgnoroot), &k, &e) == -EINVAL && strstr(e.msg, "Cmd"),
	   "a Cmd that is not an array is refused: %s", e.msg);

	/* the store: an OCI layout whose blobs are checked on the way in */
	char dir[] = "/tmp/jumbo-test-oci-XXXXXX";
	ok(mkdtemp(dir) != NULL, "a scratch directory");
	struct jb_oci_store *st = NULL;
	memset(&e, 0, sizeof e);
	ok(jb_oci_store_open(dir, &st, &e) == 0, "a store opens (%s)", e.msg);
	char lay[256];
	snprintf(lay, sizeof lay, "%s/oci-layout", dir);
	FILE *lf = fopen(lay, "r");
	char lbuf[64] = {0};
	ok(lf && fread(lbuf, 1, sizeof lbuf - 1, lf) > 0, "it has an oci-layout file");
	if (lf)
		fclose(lf);
	is_str(lbuf, "{\"imageLayoutVersion\":\"1.0.0\"}", "saying version 1.0.0");
	const char *blob = "hello, layer";
	char bd[JB_OCI_DIGEST_MAX];
	jb_oci_digest_of(blob, strlen(blob), bd);
	ok(jb_oci_store_path(st, bd) == NULL, "a blob not stored has no path");
	struct jb_oci_blob_writer *w = NULL;
	ok(jb_oci_blob_begin(st, bd, (int64_t)strlen(blob), &w, &e) == 0 && jb_oci_blob_write(w, blob, 5, &e) == 0 &&
	   jb_oci_blob_write(w, blob + 5, strlen(blob) - 5, &e) == 0 && jb_oci_blob_commit(w, &e) == 0,
	   "a blob written in pieces is committed (%s)", e.msg);
	char *bp = jb_oci_store_path(st, bd);
	ok(bp && strstr(bp, "/blobs/sha256/") && access(bp, R_OK) == 0, "and is found under blobs/sha256/");
	free(bp);
	char other[JB_OCI_DIGEST_MAX];
	jb_oci_digest_of("something else", 14, other);
	memset(&e, 0, sizeof e);
	ok(jb_oci_blob_begin(st, other, -1, &w, &e) == 0 && jb_oci_blob_write(w, blob, strlen(blob), &e) == 0 &&
	   jb_oci_blob_commit(w, &e) == -EBADMSG && strstr(e.msg, "hash to"),
	   "bytes that do not match the digest are refused: %s", e.msg);
	ok(jb_oci_store_path(st, other) == NULL, "and not stored under it");
	memset(&e, 0, sizeof e);
	ok(jb_oci_blob_begin(st, bd, 3, &w, &e) == 0 && jb_oci_blob_write(w, blob, strlen(blob), &e) == -EFBIG,
	   "more bytes than announced are refused: %s", e.msg);
	jb_oci_blob_abort(w);
	memset(&e, 0, sizeof e);
	ok(jb_oci_blob_begin(st, "sha256:../../etc", 1, &w, &e) == -EINVAL, "a digest that is a path is refused");
	char cmd[512];
	snprintf(cmd, sizeof cmd, "test $(ls -A %s/blobs/sha256 | wc -l) = 1", dir);
	ok(system(cmd) == 0, "nothing but the one good blob is left, no temporary files");
	jb_oci_store_close(st);
	registry_rules();
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	return tap_done();
}
