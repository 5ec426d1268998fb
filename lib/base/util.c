#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "jumbo/base.h"

static int parse_scaled(const char *s, double base, uint64_t *ret)
{
	if (!s || !*s)
		return -EINVAL;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	double mul = 1;
	if (*end) {
		switch (toupper((unsigned char)*end)) {
		case 'K': mul = base; break;
		case 'M': mul = base * base; break;
		case 'G': mul = base * base * base; break;
		case 'T': mul = base * base * base * base; break;
		default: return -EINVAL;
		}
		end++;
		/* allow "MiB", "MB", "M", "Mbit", "G/s" style tails */
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'B' || *end == 'b')
			end++;
		if (!strcmp(end, "it") || !strcmp(end, "it/s") || !strcmp(end, "ps") || !strcmp(end, "/s"))
			end += strlen(end);
		if (*end)
			return -EINVAL;
	}
	double r = v * mul;
	if (r >= 18446744073709551615.0)
		return -ERANGE;
	*ret = (uint64_t)r;
	return 0;
}

int jb_parse_size(const char *s, uint64_t *ret) { return parse_scaled(s, 1024, ret); }
int jb_parse_rate(const char *s, uint64_t *ret_bps) { return parse_scaled(s, 1000, ret_bps); }

void jb_format_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)n;
	int i = 0;
	while (v >= 1024 && i < 5) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.2f %s", v, u[i]);
}

void jb_hex(const uint8_t *in, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[in[i] >> 4];
		out[2 * i + 1] = d[in[i] & 15];
	}
	out[2 * n] = 0;
}

double jb_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int jb_read_line_file(const char *path, char *buf, size_t n)
{
	buf[0] = 0;
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	bool got = fgets(buf, (int)n, f) != NULL;
	fclose(f);
	if (!got)
		buf[0] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	return buf[0] ? 0 : -ENODATA;
}

int jb_read_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EPIPE;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int jb_pread_full(int fd, void *buf, size_t n, off_t off)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t r = pread(fd, p, n, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ENODATA;
		p += r;
		off += r;
		n -= (size_t)r;
	}
	return 0;
}

int jb_write_full(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n) {
		ssize_t r = write(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

double jb_wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}
