/* mktree DIR FILES DIRS SIZE [SEED]: a tree for the tests and benchmarks of
 * many files, made fast: FILES files of SIZE pseudo-random bytes (each file
 * its own bytes, the same for the same SEED), file i named
 * dNNNN/fNNNNNNN in directory i % DIRS.  Writes what it made on stdout:
 * "FILES files, BYTES bytes". */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: mktree DIR FILES DIRS SIZE [SEED]\n");
		return 2;
	}
	const char *root = argv[1];
	unsigned long n = strtoul(argv[2], NULL, 10), nd = strtoul(argv[3], NULL, 10);
	size_t size = strtoull(argv[4], NULL, 10);
	uint64_t seed = argc > 5 ? strtoull(argv[5], NULL, 10) : 1;
	if (!nd || nd > 10000 || n > 10000000) {
		fprintf(stderr, "mktree: at most 10,000 directories and 10,000,000 files\n");
		return 2;
	}
	if (mkdir(root, 0755) < 0 && errno != EEXIST) {
		perror(root);
		return 1;
	}
	char p[4096];
	for (unsigned long d = 0; d < nd; d++) {
		snprintf(p, sizeof p, "%s/d%04lu", root, d);
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			perror(p);
			return 1;
		}
	}
	uint64_t *buf = malloc((size / 8 + 1) * sizeof *buf);
	if (!buf)
		return 1;
	for (unsigned long i = 0; i < n; i++) {
		uint64_t x = (seed * 0x9e3779b97f4a7c15ull) ^ (i + 1) * 0xbf58476d1ce4e5b9ull;
		if (!x)
			x = 1;
		for (size_t k = 0; k < size / 8 + 1; k++)
			buf[k] = next(&x);
		snprintf(p, sizeof p, "%s/d%04lu/f%07lu", root, i % nd, i);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, buf, size) != (ssize_t)size || close(fd) < 0) {
			perror(p);
			free(buf);
			return 1;
		}
	}
	free(buf);
	printf("%lu files, %llu bytes\n", n, (unsigned long long)n * size);
	return 0;
}
