#include <stdarg.h>
#include <string.h>

#include "jumbo.h"

void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("jumbo: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* --config FILE, else $JUMBO_CONFIG, else ~/.config/jumbo/jumbo.conf */
int cli_load_config(struct cli *g, struct jb_config **ret)
{
	char buf[4200];
	const char *path = g->config_path;
	if (!path || !*path)
		path = getenv("JUMBO_CONFIG");
	if (!path || !*path) {
		const char *home = getenv("HOME");
		snprintf(buf, sizeof buf, "%s/.config/jumbo/jumbo.conf", home ? home : "");
		path = buf;
	}
	struct jb_error err = {0};
	if (jb_config_load(path, ret, &err) < 0) {
		cli_error("%s", err.msg);
		if (err.code == ENOENT)
			fprintf(stderr, "jumbo: name a configuration with --config FILE or $JUMBO_CONFIG (see jumbo.conf(5))\n");
		return -1;
	}
	return 0;
}

const char *cli_journal_dir(char *out, size_t n)
{
	const char *sd = getenv("JUMBO_STATE_DIR"), *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	if (sd && *sd)
		snprintf(out, n, "%s", sd);
	else if (xdg && *xdg)
		snprintf(out, n, "%s/jumbo", xdg);
	else
		snprintf(out, n, "%s/.local/state/jumbo", home && *home ? home : "/tmp");
	return out;
}
