#include <stdatomic.h>
#include <stdio.h>
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

void jb_log(enum jb_log_level lvl, const char *fmt, ...)
{
	if (lvl > log_max || !log_fn)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_fn(lvl, msg, log_ud);
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
	log_fn(lvl, msg, log_ud);
}
