/* Unit tests: sizes and rates, paths, the config parser, peer prefixes, log escaping. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jumbo/config.h"
#include "tap.h"

static void test_sizes(void)
{
	uint64_t v = 0;
	ok(jb_parse_size("8M", &v) == 0 && v == 8u << 20, "8M is 8 MiB");
	ok(jb_parse_size("64KiB", &v) == 0 && v == 64u << 10, "64KiB");
	ok(jb_parse_size("1.5G", &v) == 0 && v == 3ull << 29, "1.5G");
	ok(jb_parse_size("4096", &v) == 0 && v == 4096, "plain number");
	ok(jb_parse_size("", &v) < 0, "empty size refused");
	ok(jb_parse_size("-1M", &v) < 0, "negative size refused");
	ok(jb_parse_size("12Q", &v) < 0, "unknown suffix refused");
	ok(jb_parse_size("1e30", &v) < 0, "overflow refused");
	ok(jb_parse_rate("10G", &v) == 0 && v == 10000000000ull, "rate 10G is decimal");
	ok(jb_parse_rate("500M", &v) == 0 && v == 500000000ull, "rate 500M");
	ok(jb_parse_rate("2.5Gbit", &v) == 0 && v == 2500000000ull, "rate 2.5Gbit");
	char b[32];
	jb_format_bytes(1536, b, sizeof b);
	is_str(b, "1.50 KiB", "format 1536 bytes");
}

static void test_paths(void)
{
	char *c = NULL;
	struct jb_error err = {0};
	ok(jb_path_clean("/run7/a.h5", &c, &err) == 0, "absolute remote path accepted");
	is_str(c, "run7/a.h5", "leading slash dropped: kisti:/run7 == kisti:run7");
	free(c);
	ok(jb_path_clean("run7//./a.h5/", &c, &err) == 0, "redundant parts accepted");
	is_str(c, "run7/a.h5", "redundant parts cleaned");
	free(c);
	ok(jb_path_clean("/", &c, &err) == 0, "root accepted");
	is_str(c, "", "root is the empty path");
	free(c);
	ok(jb_path_clean("a/../../etc/passwd", &c, &err) == -EACCES, "'..' refused");
	ok(strstr(err.msg, "escapes") != NULL, "message says it escapes: %s", err.msg);
	char longp[5000];
	memset(longp, 'a', sizeof longp - 1);
	longp[sizeof longp - 1] = 0;
	ok(jb_path_clean(longp, &c, &err) == -ENAMETOOLONG, "over-long path refused");

	char dir[] = "/tmp/jbtest.XXXXXX";
	ok(mkdtemp(dir) != NULL, "temp dir");
	int root = open(dir, O_PATH | O_DIRECTORY);
	ok(symlinkat("/etc", root, "out") == 0, "symlink pointing outside");
	int fd = jb_open_beneath(root, "out/passwd", O_RDONLY, 0);
	ok(fd == -EXDEV || fd == -ELOOP, "open through an escaping symlink refused (%d)", fd);
	fd = jb_mkdirs_beneath(root, "a/b/c", 0755);
	ok(fd >= 0, "mkdirs beneath");
	if (fd >= 0)
		close(fd);
	fd = jb_mkdirs_beneath(root, "out/x", 0755);
	ok(fd < 0, "mkdirs through an escaping symlink refused");
	struct stat st;
	ok(stat("/etc/x", &st) < 0, "nothing created outside");
	close(root);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	ok(system(cmd) == 0, "cleanup");
}

static const char good[] =
	"# a site\n"
	"[site]\n"
	"name = kisti\n"
	"identity = /etc/jumbo/id        # directory with key.pem, cert.pem\n"
	"root = /srv/jumbo/data\n"
	"listen = 0.0.0.0:4410\n"
	"api = 127.0.0.1:4480\n"
	"state = /var/lib/jumbo\n"
	"\n"
	"[peer caltech]\n"
	"address = dtn.caltech.example:4410\n"
	"fingerprint = SHA256:00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n"
	"[peer inbound-only]\n"
	"; no address: it only connects in\n"
	"fingerprint = SHA256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n"
	"relay = yes\n"
	"via = caltech\n"
	"[relay]\n"
	"staging = /srv/jumbo/staging\n"
	"quota = 2T\n"
	"[registry 127.0.0.1:5000]\n"
	"user = jumbo\n"
	"password = s3cret\n"
	"insecure = true\n"
	"[rule fit]\n"
	"glob = run*/*.h5\n"
	"image = jumbo/scipy\n"
	"command = python3 /opt/fit.py {input} 'two words'\n"
	"memory = 4G\n"
	"cpus = 2\n"
	"timeout = 3600\n";

static void test_config(void)
{
	struct jb_config *c = NULL;
	struct jb_error err = {0};
	ok(jb_config_parse(good, "t.conf", &c, &err) == 0, "example config parses (%s)", err.msg);
	if (!c)
		return;
	is_str(c->name, "kisti", "site name");
	is_str(c->identity, "/etc/jumbo/id", "inline comment stripped");
	is_str(c->listen, "0.0.0.0:4410", "listen");
	is_int((long long)c->npeers, 2, "two peers");
	const struct jb_peer *p = jb_config_peer(c, "caltech");
	ok(p && p->address && !strcmp(p->address, "dtn.caltech.example:4410"), "peer address");
	ok(p && p->fp[0] == 0x00 && p->fp[31] == 0xff, "fingerprint parsed, case-insensitive");
	p = jb_config_peer(c, "inbound-only");
	ok(p && !p->address, "a peer may have no address");
	ok(p && p->relay && p->nvia == 1 && !strcmp(p->via[0], "caltech"), "relay = yes and via = caltech");
	ok(!jb_config_peer(c, "caltech")->relay, "relay is no unless said");
	ok(c->relay_staging && !strcmp(c->relay_staging, "/srv/jumbo/staging") && c->relay_quota == (2ull << 40),
	   "[relay] staging and quota");
	ok(jb_config_peer_by_fp(c, p->fp) == p, "peer found by fingerprint");
	const struct jb_registry_conf *rg = jb_config_registry(c, "127.0.0.1:5000");
	ok(rg && rg->user && !strcmp(rg->user, "jumbo") && rg->password && !strcmp(rg->password, "s3cret") &&
	   rg->insecure && !rg->ca, "a [registry HOST] section: user, password, insecure");
	ok(!jb_config_registry(c, "127.0.0.1"), "registries are looked up by host and port");
	ok(c->nrules == 1 && !strcmp(c->rules[0].name, "fit") && !strcmp(c->rules[0].glob, "run*/*.h5") &&
	   !strcmp(c->rules[0].image, "jumbo/scipy") && !strcmp(c->rules[0].memory, "4G") && c->rules[0].cpus == 2 &&
	   c->rules[0].timeout == 3600 && strstr(c->rules[0].command, "'two words'"),
	   "a [rule NAME] section: glob, image, command, limits");
	jb_config_free(c);

	static const struct {
		const char *text, *want;
	} bad[] = {
		{"[site]\nname = a\n", "identity is missing"},
		{"[site]\nidentity = /x\n", "name is missing"},
		{"[site]\nname = a b\nidentity = /x\n", "invalid site name"},
		{"[site]\nname = a\nidentity = /x\ncolour = red\n", "unknown key 'colour'"},
		{"name = a\n", "outside any section"},
		{"[site\nname = a\n", "malformed section header"},
		{"[site]\nname = a\nidentity = /x\n[peer b]\naddress = h:1\n", "has no fingerprint"},
		{"[site]\nname = a\nidentity = /x\n[peer b]\nfingerprint = SHA256:abc\n", "bad fingerprint"},
		{"[site]\nname = a\nidentity = /x\n[peer b]\naddress = h:99999\n", "bad address"},
		{"[site]\nname = a\nidentity = /x\n[peer b]\n[peer b]\n", "defined twice"},
		{"[site]\nname = a\nidentity = /x\njust words\n", "expected 'key = value'"},
		{"[site]\nname = a\nidentity = /x\n[peer]\nfingerprint = SHA256:00\n",
		 "bad.conf:4: [peer] without a name (want [peer NAME])"},
		{"[site]\nname = a\nidentity = /x\n[ peer ]\n", "bad.conf:4: [peer] without a name"},
		{"[site]\nname = a\nidentity = /x\n\n[peers b]\n", "bad.conf:5: unknown section '[peers b]'"},
		{"[site]\nname = a\nidentity = /x\n[peer-b]\n", "bad.conf:4: unknown section '[peer-b]'"},
		{"[site]\nname = a\nidentity = /x\n[registry r:1]\ntoken = x\n", "unknown key 'token' in [registry r:1]"},
		{"[site]\nname = a\nidentity = /x\n[registry r/x]\n", "'r/x' is not a registry host"},
		{"[site]\nname = a\nidentity = /x\n[registry r]\n[registry r]\n", "registry 'r' defined twice"},
		{"[site]\nname = a\nidentity = /x\n[registry r]\ninsecure = yes\n", "insecure is true or false"},
		{"[site]\nname = a\nidentity = /x\n[registry r]\npassword-file = /nonexistent\n",
		 "cannot read password-file /nonexistent"},
		{"[site]\nname = a\nidentity = /x\n[rule r]\nglob = *\n", "rule r needs a glob and an image"},
		{"[site]\nname = a\nidentity = /x\n[rule r]\nmemory = lots\n", "memory is a size"},
		{"[site]\nname = a\nidentity = /x\n[rule r]\ncpus = -1\n", "cpus is a number above 0"},
		{"[site]\nname = a\nidentity = /x\n[rule r]\nwhen = now\n", "unknown key 'when' in [rule r]"},
		{"[site]\nname = a\nidentity = /x\n[rule r]\n[rule r]\n", "rule 'r' defined twice"},
		{"[site]\nname = a\nidentity = /x\n[rule a b]\n", "invalid rule name 'a b'"},
		{"[site]\nname = a\nidentity = /x\n\n[relay]\nstaging = s\n", "bad.conf:6: [relay] staging must be an absolute path"},
		{"[site]\nname = a\nidentity = /x\n[relay]\nquota = 1M\n", "bad.conf:5: [relay] quota is a size of 64M or more"},
		{"[site]\nname = a\nidentity = /x\n[relay]\ngive_up = soon\n", "bad.conf:5: [relay] give_up wants a duration from 1s to 3650d"},
		{"[site]\nname = a\nidentity = /x\n[relay]\nquota = 1G\n", "bad.conf: [relay] needs staging = DIR"},
		{"[site]\nname = a\nidentity = /x\n[relay]\nstaging = /s\n[relay]\n", "bad.conf:6: [relay] given twice"},
		{"[site]\nname = a\nidentity = /x\n[relay]\n[relay]\nstaging = /s\n", "bad.conf:5: [relay] given twice"},
		{"[site]\nname = a\nidentity = /x\n[relays]\n", "did you mean [relay]"},
		{"[site x]\nname = a\n", "bad.conf:1: [site] takes no name"},
		{"[site]\nname = a\nidentity = /x\n[peer b]\nvia = r\nfingerprint = SHA256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n",
		 "bad.conf:5: peer b: via r is not a peer with an address"},
		{"[site]\nname = a\nidentity = /x\n[peer b]\nvia = b\n", "bad.conf:5: peer b: via names the peer itself"},
		{"[site]\nname = a\nidentity = /x\n[peer b]\nvia = r,,s\n", "via wants relay peer names separated by commas"},
		{"[site]\nname = a\nidentity = /x\n[peer b]\nvia = a,b2,c,d,e\n", "via names more than 4 relays"},
		{"[site]\nname = a\nidentity = /x\n[peer b]\nrelay = maybe\n", "bad.conf:5: peer b: relay is yes or no"},
		{"[site]\nname = a\nidentity = /x\n[backend b]\ntype = x\ntype = y\n", "bad.conf:6: backend b: 'type' given twice"},
		{"[site]\nname = a\nidentity = /x\nhandshake_timeout = 0\n", "bad.conf:4: handshake_timeout wants a number of seconds from 1 to 300, not '0'"},
		{"[site]\nname = a\nidentity = /x\nhandshake_timeout = 10s\n", "handshake_timeout wants a number of seconds"},
		{"[site]\nname = a\nidentity = /x\nmax_handshakes = 257\n", "max_handshakes wants a number of connections from 1 to 256, not '257'"},
		{"[site]\nname = a\nidentity = /x\nhandshakes_per_address = -1\n", "handshakes_per_address wants a number of connections from 1 to 256"},
		{"[site]\nname = a\nidentity = /x\napi_request_timeout = 301\n", "api_request_timeout wants a number of seconds from 1 to 300"},
		{"[site]\nname = a\nidentity = /x\napi_idle_timeout = 1.5\n", "api_idle_timeout wants a number of whole seconds from 1 to 3600, not '1.5'"},
		{"[site]\nname = a\nidentity = /x\napi_connections_per_address = 65\n", "api_connections_per_address wants a number of connections from 1 to 64"},
		{"[site]\nname = a\nidentity = /x\numask = 0888\n", "bad.conf:4: umask wants permission bits in octal"},
		{"[site]\nname = a\nidentity = /x\numask = 1000\n", "from 0 to 777 (like 022), not '1000'"},
		{"[site]\nname = a\nidentity = /x\numask = -1\n", "umask wants"},
		{"[site]\nname = a\nidentity = /x\nmax_partial_age = 0\n", "bad.conf:4: max_partial_age wants a duration from 1s to 3650d (like 7d, 12h, 30m or 90s), not '0'"},
		{"[site]\nname = a\nidentity = /x\nmax_partial_age = 7w\n", "not '7w'"},
		{"[site]\nname = a\nidentity = /x\nmax_journal_age = 3651d\n", "max_journal_age wants a duration"},
		{"[site]\nname = a\nidentity = /x\nmax_journal_age = -5\n", "max_journal_age wants a duration"},
		{"[site]\nname = a\nidentity = /x\nmax_journal_age = d\n", "max_journal_age wants a duration"},
		{"[site]\nname = a\nidentity = /x\numask =\n", "umask wants"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&err, 0, sizeof err);
		c = NULL;
		int r = jb_config_parse(bad[i].text, "bad.conf", &c, &err);
		ok(r < 0 && strstr(err.msg, bad[i].want), "bad config %zu refused: %s", i, err.msg);
		jb_config_free(c);
	}
	/* the keys against slow clients: 0 when not given (the default) */
	ok(jb_config_parse("[site]\nname = a\nidentity = /x\n", "t.conf", &c, &err) == 0 && c->handshake_timeout == 0 &&
	   c->max_handshakes == 0 && c->handshakes_per_address == 0 && c->api_request_timeout == 0 &&
	   c->api_idle_timeout == 0 && c->api_connections_per_address == 0, "slow-client keys: 0 unless given");
	jb_config_free(c);
	c = NULL;
	ok(jb_config_parse("[site]\nname = a\nidentity = /x\nhandshake_timeout = 2.5\nmax_handshakes = 64\n"
			   "handshakes_per_address = 8\napi_request_timeout = 4\napi_idle_timeout = 20\n"
			   "api_connections_per_address = 6\n", "t.conf", &c, &err) == 0 && c->handshake_timeout == 2.5 &&
	   c->max_handshakes == 64 && c->handshakes_per_address == 8 && c->api_request_timeout == 4 &&
	   c->api_idle_timeout == 20 && c->api_connections_per_address == 6, "slow-client keys parse (%s)", err.msg);
	jb_config_free(c);
	char host[256];
	int port;
	ok(jb_split_hostport("[::1]:4410", host, sizeof host, &port) == 0 && !strcmp(host, "::1") && port == 4410,
	   "IPv6 host:port");
	ok(jb_split_hostport("dtn.example", host, sizeof host, &port) == 0 && port == JB_DEFAULT_PORT,
	   "default port");
	ok(jb_split_hostport("::1", host, sizeof host, &port) < 0, "bare IPv6 needs brackets");

	/* the API's default port is its own, not the transfer port */
	static const struct {
		const char *api, *want;
	} apis[] = {
		{"127.0.0.1", "127.0.0.1:4480"},   {"localhost", "localhost:4480"}, {"[::1]", "[::1]:4480"},
		{"127.0.0.1:9000", "127.0.0.1:9000"}, {"[::1]:0", "[::1]:0"},        {"off", "off"},
		{"", ""},
	};
	for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++) {
		char text[128];
		snprintf(text, sizeof text, "[site]\nname = a\nidentity = /x\napi = %s\n", apis[i].api);
		c = NULL;
		ok(jb_config_parse(text, "api.conf", &c, &err) == 0, "api = '%s' parses", apis[i].api);
		is_str(c ? c->api : NULL, apis[i].want, "api = '%s' means '%s'", apis[i].api, apis[i].want);
		jb_config_free(c);
	}

	/* [site] umask: octal, 022 when it is not given */
	static const struct {
		const char *line;
		int want;
	} masks[] = {{"", 022}, {"umask = 0\n", 0}, {"umask = 027\n", 027}, {"umask = 77\n", 077}, {"umask = 0777\n", 0777}};
	for (size_t i = 0; i < sizeof masks / sizeof masks[0]; i++) {
		char text[128];
		snprintf(text, sizeof text, "[site]\nname = a\nidentity = /x\n%s", masks[i].line);
		c = NULL;
		ok(jb_config_parse(text, "umask.conf", &c, &err) == 0 && c->umask == masks[i].want, "'%.*s' is umask %03o",
		   (int)strcspn(masks[i].line, "\n"), masks[i].line, masks[i].want);
		jb_config_free(c);
	}

	/* [site] max_partial_age, max_journal_age: durations, 7 d and 90 d by default */
	static const struct {
		const char *line;
		int64_t partial, journal;
	} ages[] = {{"", 7 * 86400, 90 * 86400},
		    {"max_partial_age = 90\n", 90, 90 * 86400},
		    {"max_partial_age = 2s\nmax_journal_age = 30m\n", 2, 1800},
		    {"max_partial_age = 12h\nmax_journal_age = 3650d\n", 43200, 3650LL * 86400}};
	for (size_t i = 0; i < sizeof ages / sizeof ages[0]; i++) {
		char text[160];
		snprintf(text, sizeof text, "[site]\nname = a\nidentity = /x\n%s", ages[i].line);
		c = NULL;
		ok(jb_config_parse(text, "ages.conf", &c, &err) == 0 && c->max_partial_age == ages[i].partial &&
		   c->max_journal_age == ages[i].journal, "'%s' is %lld s and %lld s", ages[i].line,
		   (long long)ages[i].partial, (long long)ages[i].journal);
		jb_config_free(c);
	}
}

static void test_pread_full(void)
{
	char path[] = "/tmp/jb-test-pread.XXXXXX";
	int fd = mkstemp(path);
	unlink(path);
	char data[1000], got[600];
	for (int i = 0; i < 1000; i++)
		data[i] = (char)(i * 7);
	is_int(jb_write_full(fd, data, sizeof data), 0, "jb_write_full writes 1000 bytes");
	is_int(jb_pread_full(fd, got, 600, 300), 0, "jb_pread_full reads 600 bytes at offset 300");
	ok(!memcmp(got, data + 300, 600), "and they are the bytes at that offset");
	is_int(jb_pread_full(fd, got, 600, 500), -ENODATA, "reading past the end is -ENODATA");
	is_int(jb_pread_full(-1, got, 1, 0), -EBADF, "a bad descriptor is -EBADF");
	close(fd);
}

static void test_read_line_file(void)
{
	char path[] = "/tmp/jb-test-line.XXXXXX", buf[16];
	int fd = mkstemp(path);
	ok(fd >= 0 && write(fd, "s3cret\r\nnext\n", 14) == 14, "a secret file");
	close(fd);
	is_int(jb_read_line_file(path, buf, sizeof buf), 0, "jb_read_line_file reads it");
	is_str(buf, "s3cret", "its first line, without the line end");
	fd = open(path, O_WRONLY | O_TRUNC);
	close(fd);
	is_int(jb_read_line_file(path, buf, sizeof buf), -ENODATA, "an empty file: -ENODATA");
	unlink(path);
	is_int(jb_read_line_file(path, buf, sizeof buf), -ENOENT, "no file: -ENOENT");
}

/* Prefixes by whole components; a prefix's directory opened without links. */
static void test_prefixes(void)
{
	ok(jb_path_under("incoming/alpha/x", "incoming/alpha") && !strcmp(jb_path_under("incoming/alpha/x",
	   "incoming/alpha"), "x"), "incoming/alpha holds incoming/alpha/x (rest 'x')");
	ok(jb_path_under("incoming/alpha", "incoming/alpha") && !*jb_path_under("incoming/alpha", "incoming/alpha"),
	   "and incoming/alpha itself (rest '')");
	ok(!jb_path_under("incoming/alphabet", "incoming/alpha"), "not incoming/alphabet");
	ok(!jb_path_under("incoming/alphabet/x", "incoming/alpha"), "nor incoming/alphabet/x");
	ok(!jb_path_under("incoming", "incoming/alpha"), "nor its parent");
	ok(!jb_path_under("", "incoming/alpha"), "nor the root");
	ok(jb_path_under("any/thing", "") && !strcmp(jb_path_under("any/thing", ""), "any/thing"),
	   "the root ('') holds every path");

	char dir[] = "/tmp/jbtest.XXXXXX";
	ok(mkdtemp(dir) != NULL, "temp dir");
	int root = open(dir, O_PATH | O_DIRECTORY);
	int fd = jb_open_dir_nofollow(root, "in/alpha", 0);
	is_int(fd, -ENOENT, "a missing prefix is not made when mkmode is 0");
	fd = jb_open_dir_nofollow(root, "in/alpha", 0755);
	ok(fd >= 0, "made with mkmode");
	if (fd >= 0)
		close(fd);
	struct stat st;
	ok(fstatat(root, "in/alpha", &st, 0) == 0 && S_ISDIR(st.st_mode), "as a directory");
	ok(mkdirat(root, "real", 0755) == 0 && symlinkat("../real", root, "in/link") == 0, "a link inside the root");
	fd = jb_open_beneath(root, "in/link", O_PATH, 0);
	ok(fd >= 0, "which jb_open_beneath follows");
	if (fd >= 0)
		close(fd);
	is_int(jb_open_dir_nofollow(root, "in/link", 0), -ELOOP, "jb_open_dir_nofollow does not");
	is_int(jb_open_dir_nofollow(root, "in/link/x", 0755), -ELOOP, "nor when it makes what is missing");
	ok(fstatat(root, "real/x", &st, 0) < 0, "and made nothing through it");
	close(root);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	ok(system(cmd) == 0, "cleanup");
}

static void test_peer_rules(void)
{
	static const char text[] = "[site]\nname = a\nidentity = /x\n"
				   "[peer b]\nfingerprint = SHA256:" "0000000000000000000000000000000000000000000000000000000000000001\n"
				   "read = pub  ./incoming/b/ incoming\n"
				   "write = incoming/b\n"
				   "[peer c]\nfingerprint = SHA256:" "0000000000000000000000000000000000000000000000000000000000000002\n"
				   "read = /tmp\nread = .\n"
				   "[peer d]\nfingerprint = SHA256:" "0000000000000000000000000000000000000000000000000000000000000003\n";
	struct jb_config *c = NULL;
	struct jb_error err = {0};
	ok(jb_config_parse(text, "rules.conf", &c, &err) < 0 && strstr(err.msg, "rules.conf:10: peer c: read prefix '/tmp' "
	   "is absolute"), "an absolute prefix refused with file:line: %s", err.msg);
	jb_config_free(c);
	c = NULL;
	char fixed[sizeof text];
	snprintf(fixed, sizeof fixed, "%s", text);
	memcpy(strstr(fixed, "read = /tmp"), "read = pub ", 11);
	ok(jb_config_parse(fixed, "rules.conf", &c, &err) == 0, "read and write parse (%s)", err.msg);
	if (!c)
		return;
	const struct jb_peer *b = jb_config_peer(c, "b"), *pc = jb_config_peer(c, "c"), *d = jb_config_peer(c, "d");
	ok(b->nread == 3 && !strcmp(b->read[0], "pub") && !strcmp(b->read[1], "incoming/b") &&
	   !strcmp(b->read[2], "incoming"), "prefixes split on spaces and kept clean");
	ok(pc->nread == 1 && !strcmp(pc->read[0], ""), "a second read = replaces the first; '.' is the whole root");
	ok(!d->nread && !d->nwrite, "a peer without read or write has no prefixes");
	is_str(jb_peer_prefix(b, JB_WRITE, "incoming/b/run7/x.h5"), "incoming/b", "b may write below incoming/b");
	is_str(jb_peer_prefix(b, JB_WRITE, "incoming/b"), "incoming/b", "and at incoming/b itself");
	ok(!jb_peer_prefix(b, JB_WRITE, "incoming/bb"), "not at incoming/bb");
	ok(!jb_peer_prefix(b, JB_WRITE, "pub/x"), "nor where it may only read");
	is_str(jb_peer_prefix(b, JB_READ, "incoming/b/x"), "incoming", "the widest read prefix that holds a path");
	is_str(jb_peer_prefix(pc, JB_READ, "any/where"), "", "'.' holds everything");
	ok(!jb_peer_prefix(pc, JB_WRITE, "any/where"), "read does not give write");
	ok(!jb_peer_prefix(d, JB_READ, "") && !jb_peer_prefix(d, JB_WRITE, "x"), "no prefixes: nothing");
	char r[256];
	jb_peer_rights(b, r, sizeof r);
	is_str(r, "read pub incoming/b incoming; write incoming/b", "rights of b");
	jb_peer_rights(pc, r, sizeof r);
	is_str(r, "read everything; write nothing", "rights of c");
	jb_peer_rights(d, r, sizeof r);
	is_str(r, "read nothing; write nothing", "rights of d");
	jb_peer_rights(b, r, 12);
	is_str(r, "read pub in", "cut to fit");
	jb_config_free(c);

	static const struct {
		const char *line, *want;
	} bad[] = {
		{"read = /data", "rules.conf:5: peer b: read prefix '/data' is absolute"},
		{"write = /", "rules.conf:5: peer b: write prefix '/' is absolute"},
		{"write = in ../etc", "rules.conf:5: peer b: write prefix '../etc' has a '..' component"},
		{"read = a/../../b", "rules.conf:5: peer b: read prefix 'a/../../b' has a '..' component"},
		{"read = a/..", "has a '..' component"},
		{"read =", "rules.conf:5: peer b: read = wants one or more prefixes"},
		{"write =   ", "rules.conf:5: peer b: write = wants one or more prefixes"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char t[512];
		snprintf(t, sizeof t, "[site]\nname = a\nidentity = /x\n[peer b]\n%s\nfingerprint = SHA256:%064d\n",
			 bad[i].line, 1);
		c = NULL;
		memset(&err, 0, sizeof err);
		ok(jb_config_parse(t, "rules.conf", &c, &err) < 0 && strstr(err.msg, bad[i].want), "'%s' refused: %s",
		   bad[i].line, err.msg);
		jb_config_free(c);
	}
	char many[8192] = "[site]\nname = a\nidentity = /x\n[peer b]\nread =";
	for (int i = 0; i <= JB_MAX_PREFIXES; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many), " p%d", i);
	c = NULL;
	ok(jb_config_parse(many, "rules.conf", &c, &err) < 0 && strstr(err.msg, "more than 64 read prefixes"),
	   "at most %d prefixes: %s", JB_MAX_PREFIXES, err.msg);
	jb_config_free(c);
}

static void test_log_escape(void)
{
	char out[64];
	is_str(jb_log_escape("run7/a.h5", out, sizeof out), "run7/a.h5", "a plain path as it is");
	is_str(jb_log_escape("a\nb\tc\x1b[31m\x7f", out, sizeof out), "a\\x0ab\\x09c\\x1b[31m\\x7f",
	       "control characters as \\xNN");
	is_str(jb_log_escape("back\\slash", out, sizeof out), "back\\x5cslash", "a backslash too, so that \\x means one");
	is_str(jb_log_escape("\xec\x8b\xa4\xed\x97\x98/\xc3\xa9", out, sizeof out), "\xec\x8b\xa4\xed\x97\x98/\xc3\xa9",
	       "UTF-8 names as they are");
	is_str(jb_log_escape("\xc2\x9b" "2J", out, sizeof out), "\\xc2\\x9b2J", "a C1 control (CSI) escaped");
	is_str(jb_log_escape("\xff\xc3(", out, sizeof out), "\\xff\\xc3(", "bytes that are not UTF-8 escaped");
	is_str(jb_log_escape("abc\ndef", out, 6), "abc", "cut to fit, never inside an escape");
}

static char logged[4096];
static void capture(enum jb_log_level lvl, const char *msg, void *ud)
{
	(void)lvl, (void)ud;
	snprintf(logged, sizeof logged, "%s", msg);
}

/* jb_log itself: a record is one line whatever a caller passes in */
static void test_log_line(void)
{
	jb_log_set(capture, NULL, JB_LOG_DEBUG);
	jb_log(JB_LOG_WARN, "%s: refused", "evil\n2026-01-01T00:00:00Z jumbod info: forged\x1b[2J");
	is_str(logged, "evil\\x0a2026-01-01T00:00:00Z jumbod info: forged\\x1b[2J: refused",
	       "a newline or an escape sequence in a logged string cannot end the line nor reach a terminal");
	jb_log(JB_LOG_WARN, "%s", "caf\xc3\xa9 back\\slash");
	is_str(logged, "caf\xc3\xa9 back\\slash", "UTF-8 and backslashes pass as they are");
	jb_log_set(jb_log_stderr, NULL, JB_LOG_WARN);
}

/* jb_log_limited: a burst, then one a second; the next line counts the rest */
static char log_last[1024];
static int log_lines;
static void log_catch(enum jb_log_level lvl, const char *msg, void *ud)
{
	(void)lvl, (void)ud;
	snprintf(log_last, sizeof log_last, "%s", msg);
	log_lines++;
}

static void test_log_limited(void)
{
	struct jb_log_limit l = {0};
	jb_log_set(log_catch, NULL, JB_LOG_WARN);
	for (int i = 0; i < 20; i++)
		jb_log_limited(&l, JB_LOG_WARN, "refused %d", i);
	is_int(log_lines, JB_LOG_LIMIT_BURST, "20 lines at once: a burst of %d goes out", JB_LOG_LIMIT_BURST);
	is_str(log_last, "refused 4", "the first of them");
	jb_log_limited(&l, JB_LOG_DEBUG, "not logged at all");
	usleep(1100 * 1000);
	jb_log_limited(&l, JB_LOG_WARN, "refused again");
	is_int(log_lines, JB_LOG_LIMIT_BURST + 1, "a second later, one more");
	is_str(log_last, "refused again (and 15 more like it since the last such line)", "saying how many were left out");
	jb_log_limited(&l, JB_LOG_WARN, "and again");
	is_int(log_lines, JB_LOG_LIMIT_BURST + 1, "but not two");
	usleep(1100 * 1000);
	jb_log_limited(&l, JB_LOG_WARN, "from %s", "evil\n2026-01-01T00:00:00Z jumbod info: forged");
	is_str(log_last, "from evil\\x0a2026-01-01T00:00:00Z jumbod info: forged (and 1 more like it since the last such line)",
	       "a limited line is one line too");
	jb_log_set(jb_log_stderr, NULL, JB_LOG_WARN);
}

int main(void)
{
	test_log_limited();
	test_read_line_file();
	test_pread_full();
	test_sizes();
	test_paths();
	test_config();
	test_prefixes();
	test_peer_rules();
	test_log_escape();
	test_log_line();
	return tap_done();
}
