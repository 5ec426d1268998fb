#include <stdio.h>
#include <string.h>

#include "jumbo/base.h"

int jb_err(struct jb_error *err, int code, const char *fmt, ...)
{
	if (code < 0)
		code = -code;
	if (code == 0)
		code = EIO;
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return -code;
}

int jb_oom(struct jb_error *err) { return jb_err(err, ENOMEM, "out of memory"); }

int jb_err_prefix(struct jb_error *err, const char *fmt, ...)
{
	if (!err)
		return -EIO;
	char pre[256], old[sizeof err->msg];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof old);
	size_t pl = strlen(pre);
	if (pl + 2 < sizeof err->msg) {
		memcpy(err->msg, pre, pl);
		memcpy(err->msg + pl, ": ", 2);
		size_t room = sizeof err->msg - pl - 3;
		size_t ol = strnlen(old, room);
		memcpy(err->msg + pl + 2, old, ol);
		err->msg[pl + 2 + ol] = 0;
	}
	if (err->code == 0)
		err->code = EIO;
	return -err->code;
}
