/* The one SQL helper of lib/sched: a statement, its parameters, its step. */
#include <stdarg.h>

#include "jobs-internal.h"

/* The site database's message, to err, or to the log when no one asked. */
static int failed(sqlite3 *db, struct jb_error *err, int rc)
{
	struct jb_error mine = {0};
	int r = jb_store_err(err ? err : &mine, db, rc, "the site database");
	if (!err)
		jb_log(JB_LOG_ERROR, "%s", mine.msg);
	return r;
}

int sched_exec(sqlite3 *db, struct jb_error *err, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return failed(db, err, rc);
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
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		int r = failed(db, err, rc);
		sqlite3_finalize(st);
		return r;
	}
	sqlite3_finalize(st);
	return 0;
}
