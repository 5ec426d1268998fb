/* The one SQL helper of lib/sched: a statement, its parameters, its step. */
#include <stdarg.h>

#include "jobs-internal.h"

int sched_exec(sqlite3 *db, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		jb_log(JB_LOG_ERROR, "sched: %s", sqlite3_errmsg(db));
		return -EIO;
	}
	va_list ap;
	va_start(ap, types);
	for (int i = 0; types[i]; i++) {
		switch (types[i]) {
		case 's': {
			const char *v = va_arg(ap, const char *);
			if (v)
				sqlite3_bind_text(st, i + 1, v, -1, SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(st, i + 1);
			break;
		}
		case 'i': sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t)); break;
		case 'd': sqlite3_bind_double(st, i + 1, va_arg(ap, double)); break;
		default: sqlite3_bind_null(st, i + 1); break;
		}
	}
	va_end(ap);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		jb_log(JB_LOG_ERROR, "sched: %s", sqlite3_errmsg(db));
		return -EIO;
	}
	return 0;
}
