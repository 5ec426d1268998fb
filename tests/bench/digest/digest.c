/* CPU-seconds per GiB of the two whole-file digests, on one core: xxh3t (what
 * every transfer checks) and sha256t (the strong digest of relayed files,
 * lib/xfer/strong.c), each through the library's own file digest (pread in
 * 256 KiB chunks, hashed block by block), and a plain read of the same file
 * for what the reading alone costs.  The file should be in the page cache
 * (tmpfs): then the figures are the hashing's, not the disk's.
 *
 *   digestbench FILE [REPS]     prints one JSON object */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jumbo/xfer.h"

static double cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int read_all(const char *path)
{
	static char buf[256 * 1024];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		;
	close(fd);
	return n < 0 ? -1 : 0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: digestbench FILE [REPS]\n");
		return 2;
	}
	const char *path = argv[1];
	int reps = argc > 2 ? atoi(argv[2]) : 3;
	if (reps < 1 || reps > 99)
		reps = 3;
	struct stat st;
	if (stat(path, &st) < 0 || st.st_size <= 0) {
		fprintf(stderr, "digestbench: %s: no such file, or empty\n", path);
		return 1;
	}
	double gib = (double)st.st_size / (1024.0 * 1024 * 1024);
	double t[3][99];
	char d[JB_STRONG_HEX];
	struct jb_error err = {0};
	for (int r = 0; r < reps; r++) {
		double t0 = cpu();
		if (read_all(path) < 0)
			return 1;
		double t1 = cpu();
		if (jb_file_digest(path, JB_WIRE_DEFAULT_BLOCK, d, &err) < 0) {
			fprintf(stderr, "digestbench: %s\n", err.msg);
			return 1;
		}
		double t2 = cpu();
		if (jb_file_strong(path, JB_WIRE_DEFAULT_BLOCK, d, &err) < 0) {
			fprintf(stderr, "digestbench: %s\n", err.msg);
			return 1;
		}
		double t3 = cpu();
		t[0][r] = (t1 - t0) / gib, t[1][r] = (t2 - t1) / gib, t[2][r] = (t3 - t2) / gib;
	}
	for (int i = 0; i < 3; i++)
		qsort(t[i], (size_t)reps, sizeof t[i][0], cmp);
	double rd = t[0][reps / 2], xx = t[1][reps / 2], sh = t[2][reps / 2];
	/* one core's hashing, the reading taken out: cores a line rate needs */
	double xh = xx - rd > 1e-6 ? xx - rd : 1e-6, shh = sh - rd > 1e-6 ? sh - rd : 1e-6;
	printf("{\"bytes\": %lld, \"reps\": %d, \"block_size\": %u,\n"
	       " \"read_s_per_gib\": %.4f, \"xxh3t_s_per_gib\": %.4f, \"sha256t_s_per_gib\": %.4f,\n"
	       " \"xxh3_hash_gib_per_s\": %.2f, \"sha256_hash_gib_per_s\": %.2f, \"sha256t_over_xxh3t\": %.2f,\n"
	       " \"sha256_cores_for_10gbit\": %.2f, \"sha256_cores_for_100gbit\": %.2f}\n",
	       (long long)st.st_size, reps, JB_WIRE_DEFAULT_BLOCK, rd, xx, sh, 1 / xh, 1 / shh, sh / xx,
	       shh * 10e9 / 8 / (1024.0 * 1024 * 1024), shh * 100e9 / 8 / (1024.0 * 1024 * 1024));
	return 0;
}
