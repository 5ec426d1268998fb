/* Internal to lib/base: the jumbo.conf parser's state and key tables,
 * shared by config.c (the parser, [peer], [registry], [rule], [backend])
 * and config_site.c ([site]). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "jumbo/config.h"

struct parse {
	struct jb_config *c;
	struct jb_error *err;
	int line;
	char label[96];         /* the section as the file names it: "[peer beta]" */
	struct jb_peer *peer;   /* the entry the section's keys go to */
	struct jb_registry_conf *reg;
	struct jb_rule *rule;
	struct jb_backend_conf *be;
	void *entry;            /* the same, for plain string keys (STR) */
	bool relay;             /* a [relay] section was read */
};

/* "FILE:LINE: " + the message, into p->err; returns -code */
__attribute__((format(printf, 3, 4))) int config_perr(struct parse *p, int code, const char *fmt, ...);
int config_set_str(char **dst, const char *v);
/* A duration from 1s to 3650d ("7d", "12h", "30m", "90s", "90") in seconds. */
int config_duration(struct parse *p, const char *key, const char *v, int64_t *out);
bool config_valid_name(const char *s);
/* "host:port" or "[v6]:port" rather than a bare host. */
bool config_has_port(const char *s);

/* A key: a function that checks and sets it, or (set NULL) a plain string
 * at offset off of the section's entry. */
struct key {
	const char *name;
	int (*set)(struct parse *p, const char *val);
	size_t off;
};
#define FN(name, fn) {name, fn, 0}
#define STR(name, type, field) {name, NULL, offsetof(type, field)}
extern const struct key site_keys[];
void config_site_defaults(struct jb_config *c);
