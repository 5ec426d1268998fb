/* Layer unpacking: plain, gzip and zstd layers, whiteouts in overlayfs form,
 * links, and the layers that must be refused (escapes, devices, links out). */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "jumbo/oci.h"
#include "tap.h"

struct ent {
	const char *path;
	mode_t type;          /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR, AE_IFIFO; 0 ends */
	const char *data;     /* file content, link target */
	bool hardlink;
};

static char tmpdir[] = "/tmp/jb-test-layer-XXXXXX";

/* A layer built with libarchive; returns a readable descriptor and the
 * sha256 of the uncompressed tar in tar_digest. */
static int make_layer(const struct ent *es, enum jb_oci_compression c, char tar_digest[JB_OCI_DIGEST_MAX])
{
	static int n;
	char path[256], raw[256];
	snprintf(path, sizeof path, "%s/layer%d", tmpdir, n);
	snprintf(raw, sizeof raw, "%s/layer%d.tar", tmpdir, n++);
	for (int pass = 0; pass < 2; pass++) {
		struct archive *a = archive_write_new();
		archive_write_set_format_pax_restricted(a);
		if (pass == 1 && c == JB_OCI_GZIP)
			archive_write_add_filter_gzip(a);
		else if (pass == 1 && c == JB_OCI_ZSTD)
			archive_write_add_filter_zstd(a);
		archive_write_open_filename(a, pass ? path : raw);
		for (const struct ent *x = es; x->path; x++) {
			struct archive_entry *e = archive_entry_new();
			archive_entry_set_pathname(e, x->path);
			archive_entry_set_mtime(e, 1700000000, 0);
			if (x->hardlink) {
				archive_entry_set_hardlink(e, x->data);
			} else {
				archive_entry_set_filetype(e, x->type);
				archive_entry_set_perm(e, x->type == AE_IFDIR ? 0755 : 0644);
				if (x->type == AE_IFLNK)
					archive_entry_set_symlink(e, x->data);
				if (x->type == AE_IFREG)
					archive_entry_set_size(e, (la_int64_t)strlen(x->data));
				if (x->type == AE_IFCHR)
					archive_entry_set_rdev(e, makedev(1, 3));
			}
			archive_write_header(a, e);
			if (!x->hardlink && x->type == AE_IFREG)
				archive_write_data(a, x->data, strlen(x->data));
			archive_entry_free(e);
		}
		archive_write_close(a);
		archive_write_free(a);
	}
	FILE *f = fopen(raw, "rb");
	static char buf[1 << 20];
	size_t len = fread(buf, 1, sizeof buf, f);
	fclose(f);
	jb_oci_digest_of(buf, len, tar_digest);
	return open(c == JB_OCI_TAR ? raw : path, O_RDONLY | O_CLOEXEC);
}

static int fresh_dir(const char *name)
{
	char p[256];
	snprintf(p, sizeof p, "%s/%s", tmpdir, name);
	mkdir(p, 0755);
	return open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int unpack(const struct ent *es, enum jb_oci_compression c, const char *dir, struct jb_error *e,
		  bool *digest_ok)
{
	char want[JB_OCI_DIGEST_MAX], got[JB_OCI_DIGEST_MAX] = "";
	int fd = make_layer(es, c, want);
	int dfd = fresh_dir(dir);
	memset(e, 0, sizeof *e);
	int r = jb_oci_layer_unpack(fd, c, dfd, got, NULL, e);
	if (digest_ok)
		*digest_ok = !strcmp(want, got);
	close(fd);
	close(dfd);
	return r;
}

static bool file_is(const char *dir, const char *rel, const char *want)
{
	char p[512], buf[256] = "";
	snprintf(p, sizeof p, "%s/%s/%s", tmpdir, dir, rel);
	FILE *f = fopen(p, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	return !strcmp(buf, want);
}

static int lstat_in(const char *dir, const char *rel, struct stat *st)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s/%s", tmpdir, dir, rel);
	return lstat(p, st);
}

int main(void)
{
	if (!mkdtemp(tmpdir))
		return 1;
	struct jb_error e;
	struct stat st;
	bool dok;
	const bool root = geteuid() == 0;

	const struct ent base[] = {
		{"./", AE_IFDIR, NULL, false},
		{"./etc/", AE_IFDIR, NULL, false},
		{"./etc/hostname", AE_IFREG, "box\n", false},
		{"usr/bin/tool", AE_IFREG, "#!/bin/sh\n", false}, /* parents not listed */
		{"usr/bin/alias", AE_IFREG, "usr/bin/tool", true},
		{"bin", AE_IFLNK, "usr/bin", false},
		{"bin/viasymlink", AE_IFREG, "through a relative link inside the layer", false},
		{"var/run/fifo", AE_IFIFO, NULL, false},
		{NULL, 0, NULL, false},
	};
	const char *names[] = {"plain", "gzip", "zstd"};
	for (int c = JB_OCI_TAR; c <= JB_OCI_ZSTD; c++) {
		int r = unpack(base, (enum jb_oci_compression)c, names[c], &e, &dok);
		ok(r == 0, "a %s layer unpacks (%s)", names[c], e.msg);
		ok(dok, "its diff_id is the sha256 of the uncompressed tar");
		ok(file_is(names[c], "etc/hostname", "box\n"), "files have their content");
	}
	ok(lstat_in("gzip", "usr/bin/tool", &st) == 0 && st.st_nlink == 2, "a hard link is a link to the same inode");
	ok(file_is("gzip", "usr/bin/viasymlink", "through a relative link inside the layer"),
	   "a write through a relative symlink lands inside the layer");
	ok(lstat_in("gzip", "var/run/fifo", &st) == 0 && S_ISFIFO(st.st_mode), "FIFOs are kept");
	ok(lstat_in("gzip", "usr/bin", &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0755,
	   "directories the layer does not list are made 0755");
	ok(lstat_in("gzip", "etc/hostname", &st) == 0 && st.st_mtime == 1700000000 && (st.st_mode & 07777) == 0644,
	   "mode and mtime come from the layer");

	const struct ent wh[] = {
		{"etc/.wh.hostname", AE_IFREG, "", false},
		{"opt/", AE_IFDIR, NULL, false},
		{"opt/.wh..wh..opq", AE_IFREG, "", false},
		{"opt/new", AE_IFREG, "n", false},
		{NULL, 0, NULL, false},
	};
	ok(unpack(wh, JB_OCI_GZIP, "wh", &e, NULL) == 0, "a layer with whiteouts unpacks (%s)", e.msg);
	if (root) {
		ok(lstat_in("wh", "etc/hostname", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0),
		   "a whiteout becomes a 0:0 character device");
		char v[4] = "";
		char p[512];
		snprintf(p, sizeof p, "%s/wh/opt", tmpdir);
		ssize_t n = getxattr(p, "trusted.overlay.opaque", v, sizeof v);
		ok(n == 1 && v[0] == 'y', "an opaque whiteout marks its directory opaque");
	} else {
		skip(2, "whiteouts need root (mknod, trusted xattrs)");
	}
	ok(lstat_in("wh", "etc/.wh.hostname", &st) < 0 && lstat_in("wh", "opt/.wh..wh..opq", &st) < 0,
	   "the whiteout files themselves are not written");
	ok(file_is("wh", "opt/new", "n"), "an opaque directory keeps this layer's files");

	/* layers that must be refused, and what they leave */
	struct {
		const char *what;
		struct ent es[4];
		const char *msg;
	} bad[] = {
		{"climbing with ..", {{"a/../../escape", AE_IFREG, "x", false}}, "climbing"},
		{"an absolute path", {{"/escape", AE_IFREG, "x", false}}, "absolute"},
		{"a device node", {{"dev/null", AE_IFCHR, NULL, false}}, "device"},
		{"a hard link out of the layer", {{"h", AE_IFREG, "../../etc/passwd", true}}, "hard link"},
		{"a write through an absolute symlink",
		 {{"evil", AE_IFLNK, tmpdir, false}, {"evil/escape", AE_IFREG, "x", false}},
		 "evil/escape"},
		{"a write through a climbing symlink",
		 {{"up", AE_IFLNK, "../../../../../../..", false}, {"up/tmp/escape2", AE_IFREG, "x", false}},
		 NULL},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char dir[32];
		snprintf(dir, sizeof dir, "bad%zu", i);
		int r = unpack(bad[i].es, JB_OCI_GZIP, dir, &e, NULL);
		if (bad[i].msg)
			ok(r < 0 && strstr(e.msg, bad[i].msg), "%s is refused: %s", bad[i].what, e.msg);
		else
			ok(r == 0 && file_is(dir, "tmp/escape2", "x"), "%s stays inside the layer root (%s)", bad[i].what,
			   e.msg);
	}
	char p[512];
	snprintf(p, sizeof p, "%s/escape", tmpdir);
	ok(access(p, F_OK) < 0, "nothing was written beside the layer");
	ok(access("/tmp/escape2", F_OK) < 0 && access("/escape", F_OK) < 0, "nor anywhere above it");

	/* bytes that are not what the media type says */
	char d[JB_OCI_DIGEST_MAX];
	int fd = make_layer(base, JB_OCI_GZIP, d);
	int dfd = fresh_dir("mismatch");
	memset(&e, 0, sizeof e);
	ok(jb_oci_layer_unpack(fd, JB_OCI_ZSTD, dfd, NULL, NULL, &e) < 0 && strstr(e.msg, "not zstd"),
	   "a gzip layer announced as zstd is refused: %s", e.msg);
	close(dfd);
	/* a truncated layer */
	struct stat fst;
	fstat(fd, &fst);
	char cut[256];
	snprintf(cut, sizeof cut, "%s/cut", tmpdir);
	int cfd = open(cut, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	static char buf[1 << 16];
	ssize_t n = pread(fd, buf, sizeof buf, 0);
	if (cfd < 0 || n <= 0 || write(cfd, buf, (size_t)n / 2) != n / 2)
		return 1;
	lseek(cfd, 0, SEEK_SET);
	dfd = fresh_dir("truncated");
	memset(&e, 0, sizeof e);
	ok(jb_oci_layer_unpack(cfd, JB_OCI_GZIP, dfd, NULL, NULL, &e) < 0 && e.msg[0], "a truncated layer is refused: %s",
	   e.msg);
	close(dfd);
	close(cfd);
	close(fd);
	/* a bound on what a layer unpacks to: under it the budget is spent, over
	 * it the unpacking ends (EFBIG) naming the bound */
	{
		int bfd = make_layer(base, JB_OCI_GZIP, d);
		uint64_t budget = 1 << 20;
		dfd = fresh_dir("budget-ok");
		memset(&e, 0, sizeof e);
		ok(jb_oci_layer_unpack(bfd, JB_OCI_GZIP, dfd, NULL, &budget, &e) == 0 && budget < (1 << 20) &&
			   budget > (1 << 20) - 65536,
		   "a layer under the bound unpacks, its bytes taken off the budget (%llu left)",
		   (unsigned long long)budget);
		close(dfd);
		lseek(bfd, 0, SEEK_SET);
		budget = 1024;
		dfd = fresh_dir("budget-over");
		memset(&e, 0, sizeof e);
		int r = jb_oci_layer_unpack(bfd, JB_OCI_GZIP, dfd, NULL, &budget, &e);
		ok(r == -EFBIG && strstr(e.msg, "more than 1024 bytes"), "over the bound it is refused: %s", e.msg);
		close(dfd);
		close(bfd);
	}
	/* not a tar at all */
	cfd = open(cut, O_RDWR | O_TRUNC | O_CLOEXEC);
	if (write(cfd, "hello, not a tar archive at all", 31) != 31)
		return 1;
	lseek(cfd, 0, SEEK_SET);
	dfd = fresh_dir("garbage");
	memset(&e, 0, sizeof e);
	ok(jb_oci_layer_unpack(cfd, JB_OCI_TAR, dfd, NULL, NULL, &e) < 0 && e.msg[0], "bytes that are not a tar are refused: %s",
	   e.msg);
	close(dfd);
	close(cfd);

	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	return tap_done();
}
