/* Unit tests: sizes and rates, paths, the config parser. */
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
		{"[site]\nname = a\nidentity = /x\n\n[relay]\nstaging = /s\n", "bad.conf:5: unknown section '[relay]'"},
		{"[site x]\nname = a\n", "bad.conf:1: [site] takes no name"},
		{"[site]\nname = a\nidentity = /x\n[peer b]\nvia = r\n", "bad.conf:5: unknown key 'via' in [peer b]"},
		{"[site]\nname = a\nidentity = /x\n[backend b]\ntype = x\ntype = y\n", "bad.conf:6: backend b: 'type' given twice"},
		{"[site]\nname = a\nidentity = /x\numask = 0888\n", "bad.conf:4: umask wants permission bits in octal"},
		{"[site]\nname = a\nidentity = /x\numask = 1000\n", "from 0 to 777 (like 022), not '1000'"},
		{"[site]\nname = a\nidentity = /x\numask = -1\n", "umask wants"},
		{"[site]\nname = a\nidentity = /x\numask =\n", "umask wants"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&err, 0, sizeof err);
		c = NULL;
		int r = jb_config_parse(bad[i].text, "bad.conf", &c, &err);
		ok(r < 0 && strstr(err.msg, bad[i].want), "bad config %zu refused: %s", i, err.msg);
		jb_config_free(c);
	}
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

int main(void)
{
	test_read_line_file();
	test_pread_full();
	test_sizes();
	test_paths();
	test_config();
	return tap_done();
}
