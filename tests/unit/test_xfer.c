/* lib/xfer's partial files (partial.c): the names a manifest may not use,
 * the claims that give a destination path to one session, and the partial
 * file's descriptor: made O_EXCL, locked, checked to be the session's inode,
 * renamed under its lock. */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/xfer/xfer-internal.h"
#include "tap.h"

static void test_names(void)
{
	static const struct {
		const char *path;
		const char *want; /* the component refused, or NULL */
	} cases[] = {
		{".x.jumbo-part", ".x.jumbo-part"},
		{"a/.b.h5.jumbo-part", ".b.h5.jumbo-part"},
		{"a/.b.jumbo-part/c", ".b.jumbo-part"},
		{"x.jumbo-part", NULL},
		{".jumbo-part", NULL},
		{"..jumbo-part", NULL},
		{".x.jumbo-parts", NULL},
		{"a/b/c.h5", NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int len = 0;
		const char *c = partial_component(cases[i].path, &len);
		if (cases[i].want)
			ok(c && len == (int)strlen(cases[i].want) && !strncmp(c, cases[i].want, (size_t)len),
			   "'%s': the component '%s' is a partial file's name", cases[i].path, cases[i].want);
		else
			ok(!c, "'%s' names no partial file", cases[i].path);
	}
	struct xfile f = {.path = "a/run7.h5"};
	char part[JB_NAME_MAX + 1];
	ok(partial_name(&f, part, sizeof part) && !strcmp(part, ".run7.h5.jumbo-part") &&
	   partial_reserved(part, strlen(part)), "partial_name makes a name partial_reserved refuses");
}

struct release_later {
	struct xfile *f;
};
static void *release_later(void *arg)
{
	struct release_later *r = arg;
	usleep(100 * 1000);
	claim_release(r->f);
	return NULL;
}

static void test_claims(void)
{
	struct session *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
	snprintf(a->origin, sizeof a->origin, "alpha");
	snprintf(a->session_id, sizeof a->session_id, "0123456789abcdef");
	snprintf(b->origin, sizeof b->origin, "gamma");
	struct xfile fa = {.path = "incoming/x"}, fb = {.path = "other/x"}, fc = {.path = "incoming/y"};
	char why[128] = "";
	is_int(claim_take(a, &fa, 7, 42, false, why, sizeof why), 0, "a session claims a path");
	is_int(claim_take(b, &fb, 7, 42, false, why, sizeof why), -EBUSY,
	       "another session is refused the same name in the same directory (device, inode)");
	is_str(why, "peer alpha (session 0123456789abcdef)", "and told who holds it");
	is_int(claim_take(b, &fc, 7, 42, false, why, sizeof why), 0, "another name in that directory is free");
	claim_release(&fc);
	is_int(claim_take(b, &fb, 7, 43, false, why, sizeof why), 0, "so is that name in another directory");
	claim_release(&fb);
	atomic_store(&a->fatal, true);
	is_int(claim_take(b, &fb, 7, 42, false, why, sizeof why), -EINPROGRESS, "a holder that is failing is told apart");
	pthread_t th;
	struct release_later rl = {&fa};
	pthread_create(&th, NULL, release_later, &rl);
	double t0 = jb_now();
	is_int(claim_take(b, &fb, 7, 42, true, why, sizeof why), 0, "and waited for: the path is taken once it lets go");
	ok(jb_now() - t0 < 4, "at once, not at the end of the wait (%.2f s)", jb_now() - t0);
	pthread_join(th, NULL);
	ok(fa.claim == NULL && fb.claim != NULL, "the claim moved from one session to the other");
	claim_release(&fb);
	claim_release(&fb); /* a second release is nothing */
	free(a);
	free(b);
}

static ino_t ino_of(int d, const char *name)
{
	struct stat st;
	return fstatat(d, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st.st_ino : 0;
}

static void test_partial_files(void)
{
	char dir[] = "/tmp/jb-test-partial.XXXXXX";
	if (!mkdtemp(dir)) {
		skip(15, "no temporary directory");
		return;
	}
	int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct xfile f = {.path = "x.dat", .size = 5};
	int fd = partial_open(&f, d, false);
	struct stat st;
	ok(fd >= 0 && fstat(fd, &st) == 0 && (st.st_mode & 0777) == 0600 && f.part_ours && f.part.ino == st.st_ino,
	   "a new partial file: .x.dat.jumbo-part, 0600, this session's inode");
	struct xfile other = {.path = "x.dat", .size = 5};
	is_int(partial_open(&other, d, true), -EBUSY, "another descriptor cannot adopt it while it is open: its lock");
	is_int(partial_open(&other, d, false), -EBUSY, "nor remove it to start afresh");
	ok(write(fd, "hello", 5) == 5, "written");
	close(fd);
	fd = partial_open(&f, d, false);
	ok(fd >= 0, "the session opens its own file again (its inode, checked)");
	close(fd);

	/* a partial file left by a session that is gone */
	int old = openat(d, ".y.dat.jumbo-part", O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
	ok(write(old, "stale", 5) == 5, "a partial file left by a session that is gone");
	close(old);
	struct xfile y = {.path = "y.dat"};
	fd = partial_open(&y, d, false);
	ok(fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 0 && (st.st_mode & 0777) == 0600,
	   "is replaced by a new one (O_EXCL) when no lock holds it");
	close(fd);
	struct xfile y2 = {.path = "y.dat"};
	fd = partial_open(&y2, d, true);
	ok(fd >= 0 && y2.part.ino == y.part.ino && y2.part.born_ns == y.part.born_ns,
	   "to resume, a session adopts the file that is there");
	close(fd);
	unlinkat(d, ".y.dat.jumbo-part", 0);
	old = openat(d, ".y.dat.jumbo-part", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(old);
	is_int(partial_open(&y, d, false), -ESTALE,
	       "a partial file replaced behind the session is not its own (even with its inode number reused)");
	is_int(partial_commit(&y, d), -ESTALE, "and is not committed");
	ok(ino_of(d, "y.dat") == 0, "nothing took the name");

	/* the commit: by descriptor, under its lock, the inode checked */
	ino_t want = f.part.ino;
	is_int(partial_commit(&f, d), 0, "the verified file is renamed to its name");
	ok(ino_of(d, "x.dat") == want && ino_of(d, ".x.dat.jumbo-part") == 0,
	   "the name holds the inode the session wrote; the partial name is gone");
	struct xfile z = {.path = "z.dat", .size = 3};
	is_int(partial_commit(&z, d), -ESTALE, "a file the session never made is not committed");

	/* something other than a file under the partial name */
	mkfifoat(d, ".p.dat.jumbo-part", 0600);
	struct xfile p = {.path = "p.dat"};
	is_int(partial_open(&p, d, true), -EEXIST, "a FIFO under the partial name is refused (without waiting)");
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	close(d);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
}

/* sha256t: the reference values of PROTOCOL.md (checked there against
 * Python's hashlib) */
static void test_strong(void)
{
	static const struct {
		size_t size;
		const char *bytes; /* NULL: zeros */
		uint32_t bs;
		const char *want;
	} refs[] = {
		{0, "", 8u << 20, "sha256t:f98ec5487fe70232b85f34771156d956f7d8457fe16ec30f2d14b9baf7723a43"},
		{6, "hello\n", 8u << 20, "sha256t:51685fedcb4dc904638940d25b151e71167a8014bc01a7ff69051b92fef37f95"},
		{131073, NULL, 65536, "sha256t:4e4e37ab365cb146b575591adf769ea5e1d09034dbda38e83c5cf299148e6589"},
	};
	for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
		char path[] = "/tmp/jbstrong.XXXXXX";
		int fd = mkstemp(path);
		char *buf = calloc(1, refs[i].size + 1);
		if (refs[i].bytes)
			memcpy(buf, refs[i].bytes, refs[i].size);
		ok(fd >= 0 && write(fd, buf, refs[i].size) == (ssize_t)refs[i].size, "a file of %zu bytes", refs[i].size);
		close(fd);
		char got[JB_STRONG_HEX];
		struct jb_error err = {0};
		ok(jb_file_strong(path, refs[i].bs, got, &err) == 0, "its sha256t (%s)", err.msg);
		is_str(got, refs[i].want, "the reference value at %u-byte blocks", refs[i].bs);
		unlink(path);
		free(buf);
	}
	char got[JB_STRONG_HEX];
	struct jb_error err = {0};
	ok(jb_file_strong("/tmp", 65536, got, &err) == -EISDIR && strstr(err.msg, "not a regular file"),
	   "a directory: %s", err.msg);
}

/* A relayed dataset's seal as the catalog keeps it, checked again later
 * (jb_seal_check_file, for jumbo provenance --verify). */
static void test_seal_check(void)
{
	char dir[] = "/tmp/jbsealck.XXXXXX", id[128], path[128], cmd[160];
	ok(mkdtemp(dir) != NULL, "temp dir");
	snprintf(id, sizeof id, "%s/id", dir);
	snprintf(path, sizeof path, "%s/run7.bin", dir);
	uint8_t fp[32], other[32], root[JB_STRONG_LEN];
	struct jb_error err = {0};
	struct jb_signer *sg = NULL;
	ok(jb_identity_generate(id, "alpha", fp, &err) == 0 && jb_signer_open(id, &sg, &err) == 0, "an origin's key");
	enum { BS = 65536, SIZE = 3 * BS + 17 };
	uint8_t *data = malloc(SIZE);
	for (size_t i = 0; data && i < SIZE; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ok(fd >= 0 && data && write(fd, data, SIZE) == SIZE, "a file of 4 blocks");
	close(fd);
	/* its root, from the block digests as the origin takes them */
	uint8_t blocks[4 * JB_STRONG_LEN];
	struct jb_strong h = {0};
	for (int b = 0; b < 4; b++) {
		size_t n = b < 3 ? BS : 17;
		ok(jb_strong_begin(&h) == 0, "block %d hashed", b);
		jb_strong_update(&h, data + (size_t)b * BS, n);
		jb_strong_end(&h, blocks + b * JB_STRONG_LEN);
	}
	jb_strong_free(&h);
	ok(jb_strong_root(blocks, 4, SIZE, BS, root) == 0, "its sha256t");
	struct stat st;
	ok(stat(path, &st) == 0, "its time");
	int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	struct jb_seal_entry se = {.file = 0, .block_size = BS, .first = 4, .has_root = true};
	se.e = (struct jb_wire_entry){.type = JB_ENTRY_FILE, .size = SIZE, .mode = 0644, .mtime_ns = mt};
	snprintf(se.e.path, sizeof se.e.path, "run7.bin");
	memcpy(se.root, root, JB_STRONG_LEN);
	struct jb_buf b = {.limit = 1u << 20};
	size_t cl = 0;
	const uint8_t *cert = sg ? jb_signer_cert(sg, &cl) : NULL;
	uint8_t transfer[16] = {1, 2, 3}, sig[JB_WIRE_SIG_LEN] = {0};
	size_t mark = jb_wire_seal_begin(&b, transfer, cert, (uint16_t)cl, 1), rn;
	jb_wire_put_seal_entry(&b, &se);
	const uint8_t *reg = jb_wire_signed_region(&b, mark, &rn);
	ok(sg && reg && jb_sign(sg, "jumbo seal 1", reg, rn, sig, &err) == 0, "signed by the origin");
	jb_wire_sign_end(&b, mark, sig);
	const uint8_t *body = b.p + mark + 5; /* past the frame's length and type */
	size_t len = b.len - mark - 5;
	struct jb_seal_check ck;
	char want[JB_STRONG_HEX] = "sha256t:";
	jb_hex(root, JB_STRONG_LEN, want + 8);
	is_int(jb_seal_check_file(body, len, fp, path, SIZE, mt, &ck, &err), 0, "the file holds against its seal");
	ok(ck.signature_ok && ck.content_ok && !strcmp(ck.sealed, want) && !strcmp(ck.now, want) &&
	   !strcmp(ck.path, "run7.bin"), "signature, content, the sealed root and the origin's name for it");
	memset(other, 0x5a, sizeof other);
	is_int(jb_seal_check_file(body, len, other, path, SIZE, mt, &ck, &err), -EKEYREJECTED,
	       "another site's pin: %s", err.msg);
	ok(!ck.signature_ok && strstr(err.msg, "not signed by the origin's pinned key"), "the signature is what fails");
	is_int(jb_seal_check_file(body, len, fp, path, SIZE, mt + 1, &ck, &err), -ESTALE, "another time: %s", err.msg);
	is_int(jb_seal_check_file(body, len - 1, fp, path, SIZE, mt, &ck, &err), -EBADMSG, "a cut seal: %s", err.msg);
	is_int(jb_seal_check_file(body, len, fp, path, SIZE + 1, mt, &ck, &err), -EKEYREJECTED,
	       "another size: %s", err.msg);
	/* one byte changed in place, its time put back */
	fd = open(path, O_WRONLY);
	ok(fd >= 0 && pwrite(fd, "X", 1, BS + 5) == 1, "a byte of block 1 changed");
	struct timespec ts[2] = {st.st_atim, st.st_mtim};
	ok(fd >= 0 && futimens(fd, ts) == 0, "its time put back");
	close(fd);
	is_int(jb_seal_check_file(body, len, fp, path, SIZE, mt, &ck, &err), -EKEYREJECTED, "then: %s", err.msg);
	ok(ck.signature_ok && !ck.content_ok && strcmp(ck.now, want), "the signature holds, the content does not");
	jb_buf_free(&b);
	jb_signer_free(sg);
	free(data);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	ok(system(cmd) == 0, "cleanup");
}

/* A custody receipt's content (docs/PROTOCOL.md, RECEIPT): the entries in
 * manifest order as they are held, against a value computed apart (Python's
 * hashlib over the bytes the protocol gives). */
static void test_custody(void)
{
	static const char want[] = "c79350d3eaa6f009b498f7cf01e540aaf027162894891413829072c943c3b25a";
	static const uint8_t hello_root[JB_DIGEST_LEN] = {0x87, 0xa8, 0x9e, 0xdf, 0x65, 0xa2, 0x43, 0x85,
							  0xe3, 0x64, 0x43, 0xdc, 0xd1, 0xad, 0x42, 0x7a};
	for (int failing = 0; failing < 2; failing++) {
		struct session s;
		ok(session_init(&s, false) == 0 && custody_start(&s) == 0, "a receiving session and its fold");
		struct xfile *d = slot(&s, 0), *f = slot(&s, 1);
		*d = (struct xfile){.live = true, .index = 0, .type = JB_ENTRY_DIR, .fd = -1};
		*f = (struct xfile){.live = true, .index = 1, .type = JB_ENTRY_FILE, .size = 6, .fd = -1};
		memcpy(f->root, hello_root, JB_DIGEST_LEN); /* "hello\n": xxh3t:87a89edf... */
		s.nfiles = 2;
		custody_fold(&s);
		is_int((int)s.cust_lo, 0, "nothing held yet: nothing folded");
		d->done = d->ok = true;
		custody_fold(&s);
		is_int((int)s.cust_lo, 1, "the directory, done here, is folded");
		f->held = true; /* a relay's: staged, its answer to come */
		f->ok = !failing;
		custody_fold(&s);
		if (failing) {
			ok(s.cust_broken && !s.cust_done, "a file that failed here: no receipt");
		} else {
			ok(s.cust_lo == 2 && !s.cust_done, "the file, staged, is folded; not done before FILES_END");
			s.manifest_done = true;
			custody_fold(&s);
			char hex[65];
			jb_hex(s.cust_content, 32, hex);
			ok(s.cust_done && s.cust_bytes == 6, "every entry folded: done, 6 bytes");
			is_str(hex, want, "the content is the reference value");
		}
		session_free(&s);
	}
}

int main(void)
{
	test_strong();
	test_custody();
	test_seal_check();
	test_names();
	test_claims();
	test_partial_files();
	return tap_done();
}
