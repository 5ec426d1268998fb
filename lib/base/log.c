#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "jumbo/base.h"

static jb_log_fn log_fn = jb_log_stderr;
static void *log_ud;
static enum jb_log_level log_max = JB_LOG_WARN;

void jb_log_set(jb_log_fn fn, void *ud, enum jb_log_level max)
{
	log_fn = fn;
	log_ud = ud;
	log_max = max;
}

/* One record, one line: control characters (a peer's path, a crun message,
 * whatever a caller passed through) become \xNN, so nothing logged can end
 * a line, forge the next one or drive a terminal. */
static void emit(enum jb_log_level lvl, const char *msg)
{
	char out[4 * 1024 + 1];
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)msg; *p && o + 4 < sizeof out; p++) {
		if (*p >= 0x20 && *p != 0x7f)
			out[o++] = (char)*p;
		else
			o += (size_t)snprintf(out + o, 5, "\\x%02x", *p);
	}
	out[o] = 0;
	log_fn(lvl, out, log_ud);
}

void jb_log(enum jb_log_level lvl, const char *fmt, ...)
{
	if (lvl > log_max || !log_fn)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	emit(lvl, msg);
}

void jb_log_stderr(enum jb_log_level lvl, const char *msg, void *ud)
{
	static const char *names[] = {"error", "warning", "info", "debug"};
	const char *prog = ud ? ud : "jumbo";
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: %s\n", tm.tm_year + 1900,
		tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		prog, names[lvl], msg);
}

/* The length of the UTF-8 sequence at p that is printable (not a C1
 * control), or 0. */
static size_t utf8_len(const unsigned char *p)
{
	unsigned c = p[0];
	size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
	    (c == 0xf4 && p[1] > 0x8f) || (c == 0xc2 && p[1] < 0xa0))
		return 0; /* overlong, a surrogate, beyond U+10FFFF, or U+0080..U+009F */
	return n;
}

char *jb_log_escape(const char *s, char *out, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;
	while (*p) {
		size_t n = *p >= 0x20 && *p < 0x7f && *p != '\\' ? 1 : *p >= 0x80 ? utf8_len(p) : 0;
		if (n) {
			if (o + n >= len)
				break;
			memcpy(out + o, p, n);
			o += n;
			p += n;
			continue;
		}
		if (o + 4 >= len)
			break;
		snprintf(out + o, 5, "\\x%02x", *p++);
		o += 4;
	}
	out[o] = 0;
	return out;
}

void jb_log_limited(struct jb_log_limit *l, enum jb_log_level lvl, const char *fmt, ...)
{
	if (lvl > log_max || !log_fn)
		return;
	/* the generic cell rate algorithm: each line moves tat a second on,
	 * and a line goes out while tat is at most BURST - 1 seconds ahead */
	int64_t now = (int64_t)(jb_now() * 1000), cur = atomic_load(&l->tat), next;
	do {
		int64_t t = cur > now ? cur : now;
		if (t - now > (JB_LOG_LIMIT_BURST - 1) * 1000) {
			atomic_fetch_add(&l->dropped, 1);
			return;
		}
		next = t + 1000;
	} while (!atomic_compare_exchange_weak(&l->tat, &cur, next));
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	uint64_t dropped = atomic_exchange(&l->dropped, 0);
	if (dropped && n >= 0 && (size_t)n < sizeof msg)
		snprintf(msg + n, sizeof msg - (size_t)n, " (and %llu more like it since the last such line)",
			 (unsigned long long)dropped);
	emit(lvl, msg);
}
