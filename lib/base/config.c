#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config-internal.h"

#define CONFIG_MAX_BYTES (1 << 20)

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

/* A '#' or ';' starts a comment at the start of a line or after whitespace. */
static void strip_comment(char *s)
{
	for (char *p = s; *p; p++)
		if ((*p == '#' || *p == ';') && (p == s || isspace((unsigned char)p[-1]))) {
			*p = 0;
			return;
		}
}

int jb_fp_parse(const char *s, uint8_t out[32])
{
	if (strncasecmp(s, "SHA256:", 7))
		return -EINVAL;
	s += 7;
	size_t n = 0;
	for (const char *p = s; *p; p++) {
		if (*p == ':')
			continue; /* allow openssl's AA:BB:.. form */
		int v = isdigit((unsigned char)*p) ? *p - '0'
			: (tolower((unsigned char)*p) >= 'a' && tolower((unsigned char)*p) <= 'f')
				? tolower((unsigned char)*p) - 'a' + 10 : -1;
		if (v < 0 || n >= 64)
			return -EINVAL;
		if (n % 2 == 0)
			out[n / 2] = (uint8_t)(v << 4);
		else
			out[n / 2] |= (uint8_t)v;
		n++;
	}
	return n == 64 ? 0 : -EINVAL;
}

void jb_fp_format(const uint8_t fp[32], char out[72])
{
	memcpy(out, "SHA256:", 7);
	jb_hex(fp, 32, out + 7);
}

int jb_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon;
	size_t hl;
	if (*s == '[') {
		const char *e = strchr(s, ']');
		if (!e)
			return -EINVAL;
		hl = (size_t)(e - s - 1);
		if (hl >= hostlen)
			return -EINVAL;
		memcpy(host, s + 1, hl);
		host[hl] = 0;
		colon = e[1] == ':' ? e + 1 : NULL;
		if (e[1] && !colon)
			return -EINVAL;
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon)
			return -EINVAL; /* bare IPv6 needs brackets */
		hl = colon ? (size_t)(colon - s) : strlen(s);
		if (hl >= hostlen || hl == 0)
			return -EINVAL;
		memcpy(host, s, hl);
		host[hl] = 0;
	}
	if (colon) {
		char *end;
		long p = strtol(colon + 1, &end, 10);
		if (*end || end == colon + 1 || p < 0 || p > 65535)
			return -EINVAL;
		*port = (int)p;
	} else {
		*port = JB_DEFAULT_PORT;
	}
	return 0;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void jb_config_free(struct jb_config *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->name);
	free(c->identity);
	free(c->root);
	free(c->listen);
	free(c->api);
	free(c->state);
	free(c->images);
	for (size_t i = 0; i < c->npeers; i++) {
		free(c->peers[i].name);
		free(c->peers[i].address);
		strv_free(c->peers[i].read, c->peers[i].nread);
		strv_free(c->peers[i].write, c->peers[i].nwrite);
		for (int k = 0; k < c->peers[i].nvia; k++)
			free(c->peers[i].via[k]);
	}
	free(c->peers);
	free(c->relay_staging);
	for (size_t i = 0; i < c->nregistries; i++) {
		free(c->registries[i].host);
		free(c->registries[i].user);
		if (c->registries[i].password)
			explicit_bzero(c->registries[i].password, strlen(c->registries[i].password));
		free(c->registries[i].password);
		free(c->registries[i].ca);
	}
	free(c->registries);
	for (size_t i = 0; i < c->nrules; i++) {
		free(c->rules[i].name);
		free(c->rules[i].glob);
		free(c->rules[i].image);
		free(c->rules[i].command);
		free(c->rules[i].output);
		free(c->rules[i].memory);
		free(c->rules[i].backend);
	}
	free(c->rules);
	for (size_t i = 0; i < c->nbackends; i++) {
		struct jb_backend_conf *b = &c->backends[i];
		free(b->name);
		free(b->type);
		for (size_t k = 0; k < b->nkv; k++) {
			free(b->keys[k]);
			if (b->vals[k])
				explicit_bzero(b->vals[k], strlen(b->vals[k]));
			free(b->vals[k]);
		}
		free(b->keys);
		free(b->vals);
		free(b->lines);
	}
	free(c->backends);
	free(c);
}

const struct jb_backend_conf *jb_config_backend(const struct jb_config *c, const char *name)
{
	for (size_t i = 0; i < c->nbackends; i++)
		if (!strcmp(c->backends[i].name, name))
			return &c->backends[i];
	return NULL;
}

const char *jb_backend_conf_get(const struct jb_backend_conf *b, const char *key)
{
	for (size_t k = 0; k < b->nkv; k++)
		if (!strcmp(b->keys[k], key))
			return b->vals[k];
	return NULL;
}

const struct jb_registry_conf *jb_config_registry(const struct jb_config *c, const char *host)
{
	for (size_t i = 0; i < c->nregistries; i++)
		if (!strcmp(c->registries[i].host, host))
			return &c->registries[i];
	return NULL;
}

bool config_valid_name(const char *s)
{
	if (!*s || strlen(s) > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
			return false;
	return true;
}

/* "host:port" or "[v6]:port" rather than a bare host. */
bool config_has_port(const char *s)
{
	if (*s == '[') {
		const char *e = strchr(s, ']');
		return e && e[1] == ':';
	}
	return strchr(s, ':') != NULL;
}

int config_set_str(char **dst, const char *v)
{
	char *n = strdup(v);
	if (!n)
		return -ENOMEM;
	free(*dst);
	*dst = n;
	return 0;
}

/* ---- the parser: a table of sections, each with a table of keys ---- */

/* "FILE:LINE: " + the message */
int config_perr(struct parse *p, int code, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return jb_err(p->err, code, "%s:%d: %s", p->c->path, p->line, msg);
}

/* one more element of a section's array, zeroed */
static void *grow(void **arr, size_t *n, size_t size)
{
	char *na = realloc(*arr, (*n + 1) * size);
	if (!na)
		return NULL;
	*arr = na;
	memset(na + *n * size, 0, size);
	return na + (*n)++ * size;
}

/* [peer NAME] */
static int peer_open(struct parse *p, const char *name)
{
	struct jb_config *c = p->c;
	if (!config_valid_name(name))
		return config_perr(p, EINVAL, "invalid peer name '%s' (letters, digits, '-', '_', '.')", name);
	if (jb_config_peer(c, name))
		return config_perr(p, EINVAL, "peer '%s' defined twice", name);
	if (c->npeers >= JB_MAX_PEERS)
		return config_perr(p, E2BIG, "too many peers (limit %d)", JB_MAX_PEERS);
	if (!(p->entry = p->peer = grow((void **)&c->peers, &c->npeers, sizeof *c->peers)) ||
	    !(p->peer->name = strdup(name)))
		return -ENOMEM;
	return 0;
}
static int peer_address(struct parse *p, const char *v)
{
	char host[256];
	int port;
	if (jb_split_hostport(v, host, sizeof host, &port) < 0)
		return config_perr(p, EINVAL, "peer %s: bad address '%s' (want host:port)", p->peer->name, v);
	return config_set_str(&p->peer->address, v);
}
static int peer_fingerprint(struct parse *p, const char *v)
{
	if (jb_fp_parse(v, p->peer->fp) < 0)
		return config_perr(p, EINVAL, "peer %s: bad fingerprint (want SHA256:<64 hex>)", p->peer->name);
	return 0;
}

/* read = PREFIX..., write = PREFIX...: directories below the data root,
 * kept clean ("." is the root itself: ""); a second line replaces the first */
static int peer_prefixes(struct parse *p, const char *key, const char *v, char ***arr, size_t *n)
{
	const char *peer = p->peer->name;
	char **nv = NULL;
	size_t nn = 0;
	int r = 0;
	char word[JB_PATH_MAX + 1];
	for (const char *q = v + strspn(v, " \t"); *q && r == 0; q += strspn(q, " \t")) {
		size_t wl = strcspn(q, " \t");
		snprintf(word, sizeof word, "%.*s", (int)JB_MIN(wl, JB_PATH_MAX), q);
		q += wl;
		char *clean = NULL, **grown;
		struct jb_error cerr = {0};
		if (word[0] == '/')
			r = config_perr(p, EINVAL, "peer %s: %s prefix '%s' is absolute (prefixes are below the data root; "
				 "'.' is all of it)", peer, key, word);
		else if (jb_path_clean(word, &clean, &cerr) < 0 && cerr.code == EACCES)
			r = config_perr(p, EINVAL, "peer %s: %s prefix '%s' has a '..' component", peer, key, word);
		else if (!clean)
			r = config_perr(p, cerr.code, "peer %s: %s prefix: %s", peer, key, cerr.msg);
		else if (nn == JB_MAX_PREFIXES)
			r = config_perr(p, E2BIG, "peer %s: more than %d %s prefixes", peer, JB_MAX_PREFIXES, key);
		else if (!(grown = realloc(nv, (nn + 1) * sizeof *nv)))
			r = -ENOMEM;
		else
			(nv = grown)[nn++] = JB_TAKE_PTR(clean);
		free(clean);
	}
	if (r == 0 && !nn)
		r = config_perr(p, EINVAL, "peer %s: %s = wants one or more prefixes below the data root ('.' is all of it)",
			 peer, key);
	if (r < 0) {
		strv_free(nv, nn);
		return r;
	}
	strv_free(*arr, *n);
	*arr = nv;
	*n = nn;
	return 0;
}
static int peer_read(struct parse *p, const char *v)
{
	return peer_prefixes(p, "read", v, &p->peer->read, &p->peer->nread);
}
static int peer_write(struct parse *p, const char *v)
{
	return peer_prefixes(p, "write", v, &p->peer->write, &p->peer->nwrite);
}
static int peer_relay(struct parse *p, const char *v)
{
	if (strcmp(v, "yes") && strcmp(v, "no"))
		return config_perr(p, EINVAL, "peer %s: relay is yes or no", p->peer->name);
	p->peer->relay = !strcmp(v, "yes");
	return 0;
}
/* via = R[,R2...]: peer names, checked to be peers once the file is read */
static int peer_via(struct parse *p, const char *v)
{
	struct jb_peer *pe = p->peer;
	for (int i = 0; i < pe->nvia; i++)
		free(pe->via[i]);
	pe->nvia = 0;
	pe->via_line = p->line;
	char word[65]; /* JB_WIRE_MAX_NAME */
	for (const char *q = v;;) {
		q += strspn(q, " \t");
		size_t wl = strcspn(q, ",");
		while (wl && (q[wl - 1] == ' ' || q[wl - 1] == '\t'))
			wl--;
		snprintf(word, sizeof word, "%.*s", (int)JB_MIN(wl, sizeof word - 1), q);
		if (!wl || wl >= sizeof word || !config_valid_name(word))
			return config_perr(p, EINVAL, "peer %s: via wants relay peer names separated by commas (R or R1,R2)",
					   pe->name);
		if (!strcmp(word, pe->name))
			return config_perr(p, EINVAL, "peer %s: via names the peer itself", pe->name);
		if (pe->nvia == JB_MAX_HOPS)
			return config_perr(p, E2BIG, "peer %s: via names more than %d relays", pe->name, JB_MAX_HOPS);
		if (!(pe->via[pe->nvia] = strdup(word)))
			return -ENOMEM;
		pe->nvia++;
		q += strcspn(q, ",");
		if (!*q)
			break;
		q++;
	}
	return 0;
}

/* [relay] */
static int relay_open(struct parse *p, const char *name)
{
	(void)name;
	if (p->relay)
		return config_perr(p, EINVAL, "[relay] given twice");
	p->relay = true;
	return 0;
}
static int relay_staging(struct parse *p, const char *v)
{
	if (v[0] != '/')
		return config_perr(p, EINVAL, "[relay] staging must be an absolute path");
	return config_set_str(&p->c->relay_staging, v);
}
static int relay_quota(struct parse *p, const char *v)
{
	if (jb_parse_size(v, &p->c->relay_quota) < 0 || p->c->relay_quota < (64u << 20))
		return config_perr(p, EINVAL, "[relay] quota is a size of 64M or more (K, M, G, T)");
	return 0;
}

static int relay_give_up(struct parse *p, const char *v)
{
	return config_duration(p, "[relay] give_up", v, &p->c->relay_give_up);
}

/* [registry HOST] */
static int registry_open(struct parse *p, const char *host)
{
	struct jb_config *c = p->c;
	bool okh = *host && strlen(host) < 256;
	for (const char *q = host; okh && *q; q++)
		okh = isalnum((unsigned char)*q) || strchr(".-:[]", *q);
	if (!okh)
		return config_perr(p, EINVAL, "'%s' is not a registry host (HOST or HOST:PORT)", host);
	if (jb_config_registry(c, host))
		return config_perr(p, EINVAL, "registry '%s' defined twice", host);
	if (!(p->entry = p->reg = grow((void **)&c->registries, &c->nregistries, sizeof *c->registries)) ||
	    !(p->reg->host = strdup(host)))
		return -ENOMEM;
	return 0;
}
static int registry_password_file(struct parse *p, const char *v)
{
	/* the secret itself stays out of a file that may be world-readable */
	char pw[1024];
	int rr = jb_read_line_file(v, pw, sizeof pw);
	if (rr < 0)
		return config_perr(p, -rr, "registry %s: cannot read password-file %s", p->reg->host, v);
	int r = config_set_str(&p->reg->password, pw);
	explicit_bzero(pw, sizeof pw);
	return r;
}
static int registry_insecure(struct parse *p, const char *v)
{
	if (strcmp(v, "true") && strcmp(v, "false"))
		return config_perr(p, EINVAL, "registry %s: insecure is true or false", p->reg->host);
	p->reg->insecure = !strcmp(v, "true");
	return 0;
}

/* [rule NAME] */
static int rule_open(struct parse *p, const char *name)
{
	struct jb_config *c = p->c;
	if (!config_valid_name(name))
		return config_perr(p, EINVAL, "invalid rule name '%s' (letters, digits, '-', '_', '.')", name);
	for (size_t i = 0; i < c->nrules; i++)
		if (!strcmp(c->rules[i].name, name))
			return config_perr(p, EINVAL, "rule '%s' defined twice", name);
	if (!(p->entry = p->rule = grow((void **)&c->rules, &c->nrules, sizeof *c->rules)) ||
	    !(p->rule->name = strdup(name)))
		return -ENOMEM;
	return 0;
}
static int rule_memory(struct parse *p, const char *v)
{
	uint64_t m;
	if (jb_parse_size(v, &m) < 0 || m < (4u << 20))
		return config_perr(p, EINVAL, "rule %s: memory is a size of 4M or more", p->rule->name);
	return config_set_str(&p->rule->memory, v);
}
static int positive(struct parse *p, const char *key, const char *v, double *out)
{
	char *end = NULL;
	double d = strtod(v, &end);
	if (end == v || *end || !(d > 0))
		return config_perr(p, EINVAL, "rule %s: %s is a number above 0", p->rule->name, key);
	*out = d;
	return 0;
}
static int rule_cpus(struct parse *p, const char *v) { return positive(p, "cpus", v, &p->rule->cpus); }
static int rule_timeout(struct parse *p, const char *v) { return positive(p, "timeout", v, &p->rule->timeout); }

/* [backend NAME]: type and keys as given; lib/sched checks them
 * (jb_backends_check: the types and the keys of each are its own) */
static int backend_open(struct parse *p, const char *name)
{
	struct jb_config *c = p->c;
	if (!config_valid_name(name) || !strcmp(name, "local"))
		return config_perr(p, EINVAL, "invalid backend name '%s' (letters, digits, '-', '_', '.'; 'local' is this host's)",
			    name);
	if (jb_config_backend(c, name))
		return config_perr(p, EINVAL, "backend '%s' defined twice", name);
	if (!(p->be = grow((void **)&c->backends, &c->nbackends, sizeof *c->backends)) || !(p->be->name = strdup(name)))
		return -ENOMEM;
	p->be->line = p->line;
	return 0;
}
static int backend_key(struct parse *p, const char *key, const char *v)
{
	struct jb_backend_conf *be = p->be;
	if (!strcmp(key, "type")) {
		if (be->type)
			return config_perr(p, EINVAL, "backend %s: 'type' given twice", be->name);
		return config_set_str(&be->type, v);
	}
	if (jb_backend_conf_get(be, key))
		return config_perr(p, EINVAL, "backend %s: '%s' given twice", be->name, key);
	char **nk = realloc(be->keys, (be->nkv + 1) * sizeof *nk);
	if (!nk)
		return -ENOMEM;
	be->keys = nk;
	char **nv = realloc(be->vals, (be->nkv + 1) * sizeof *nv);
	if (!nv)
		return -ENOMEM;
	be->vals = nv;
	int *nl = realloc(be->lines, (be->nkv + 1) * sizeof *nl);
	if (!nl)
		return -ENOMEM;
	be->lines = nl;
	be->lines[be->nkv] = p->line;
	if (!(be->keys[be->nkv] = strdup(key)))
		return -ENOMEM;
	if (!(be->vals[be->nkv] = strdup(v))) {
		free(be->keys[be->nkv]);
		return -ENOMEM;
	}
	be->nkv++;
	return 0;
}

static const struct key peer_keys[] = {
	FN("address", peer_address),
	FN("fingerprint", peer_fingerprint),
	FN("read", peer_read),
	FN("write", peer_write),
	FN("relay", peer_relay),
	FN("via", peer_via),
	{0},
};
static const struct key relay_keys[] = {
	FN("staging", relay_staging),
	FN("quota", relay_quota),
	FN("give_up", relay_give_up),
	{0},
};
static const struct key registry_keys[] = {
	STR("user", struct jb_registry_conf, user),
	STR("password", struct jb_registry_conf, password),
	FN("password-file", registry_password_file),
	STR("ca", struct jb_registry_conf, ca),
	FN("insecure", registry_insecure),
	{0},
};
static const struct key rule_keys[] = {
	STR("glob", struct jb_rule, glob),
	STR("image", struct jb_rule, image),
	STR("command", struct jb_rule, command),
	STR("output", struct jb_rule, output),
	STR("backend", struct jb_rule, backend),
	FN("memory", rule_memory),
	FN("cpus", rule_cpus),
	FN("timeout", rule_timeout),
	{0},
};

/* The sections a file may have: [WORD] or [WORD NAME]; anything else is an
 * error with its line (a typo must not drop a pin or a rule without a word). */
static const struct section {
	const char *word;
	bool named;
	int (*open)(struct parse *p, const char *name);
	const struct key *keys;                                       /* NULL: any key, to any_key */
	int (*any_key)(struct parse *p, const char *key, const char *val);
} sections[] = {
	{"site", false, NULL, site_keys, NULL},
	{"peer", true, peer_open, peer_keys, NULL},
	{"registry", true, registry_open, registry_keys, NULL},
	{"rule", true, rule_open, rule_keys, NULL},
	{"backend", true, backend_open, NULL, backend_key},
	{"relay", false, relay_open, relay_keys, NULL},
};

/* "[...]" opens a section; *ret the one it is */
static int open_section(struct parse *p, char *s, const struct section **ret)
{
	char *e = strchr(s, ']');
	if (!e || e[1])
		return config_perr(p, EINVAL, "malformed section header");
	*e = 0;
	char *sect = trim(s + 1);
	size_t wl = strcspn(sect, " \t");
	char *name = trim(sect + wl);
	for (size_t i = 0; i < JB_ARRAY_SIZE(sections); i++) {
		const struct section *x = &sections[i];
		if (strlen(x->word) != wl || strncmp(sect, x->word, wl))
			continue;
		if (x->named && !*name)
			return config_perr(p, EINVAL, "[%s] without a name (want [%s NAME])", x->word, x->word);
		if (!x->named && *name)
			return config_perr(p, EINVAL, "[%s] takes no name", x->word);
		snprintf(p->label, sizeof p->label, "[%.40s%s%.40s]", x->word, *name ? " " : "", name);
		*ret = x;
		p->entry = p->c;
		return x->open ? x->open(p, name) : 0;
	}
	/* "[peers x]", "[peer-b]": a typo of a section we have */
	for (size_t i = 0; i < JB_ARRAY_SIZE(sections); i++)
		if (!strncmp(sect, sections[i].word, strlen(sections[i].word)))
			return config_perr(p, EINVAL, "unknown section '[%s]' (did you mean [%s%s]?)", sect, sections[i].word,
				    sections[i].named ? " NAME" : "");
	return config_perr(p, EINVAL, "unknown section '[%s]' (sections: [site], [peer NAME], [registry HOST], [rule NAME], "
			       "[backend NAME], [relay])",
		    sect);
}

static int take_key(struct parse *p, const struct section *sec, char *s)
{
	char *eq = strchr(s, '=');
	if (!eq)
		return config_perr(p, EINVAL, "expected 'key = value'");
	*eq = 0;
	char *key = trim(s), *val = trim(eq + 1);
	if (!sec)
		return config_perr(p, EINVAL, "key '%s' outside any section", key);
	if (!sec->keys)
		return sec->any_key(p, key, val);
	for (const struct key *k = sec->keys; k->name; k++)
		if (!strcmp(k->name, key))
			return k->set ? k->set(p, val) : config_set_str((char **)((char *)p->entry + k->off), val);
	return config_perr(p, EINVAL, "unknown key '%s' in %s", key, p->label);
}

int jb_config_parse(const char *text, const char *path, struct jb_config **ret, struct jb_error *err)
{
	struct jb_config *c = calloc(1, sizeof *c);
	char *copy = strdup(text);
	int r = 0;
	if (c) {
		config_site_defaults(c);
	}
	if (!c || !copy || !(c->path = strdup(path ? path : "<string>"))) {
		free(copy);
		jb_config_free(c);
		return jb_err(err, ENOMEM, "out of memory");
	}
	struct parse p = {.c = c, .err = err};
	const struct section *sec = NULL;
	for (char *line = copy; line && r == 0;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		p.line++;
		strip_comment(line);
		char *s = trim(line);
		if (*s == '[')
			r = open_section(&p, s, &sec);
		else if (*s)
			r = take_key(&p, sec, s);
		line = nl ? nl + 1 : NULL;
	}
	if (r == -ENOMEM)
		r = jb_err(err, ENOMEM, "%s:%d: out of memory", c->path, p.line);
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < c->nrules; i++) {
		if (!c->rules[i].glob || !c->rules[i].image) {
			r = jb_err(err, EINVAL, "%s: rule %s needs a glob and an image", c->path, c->rules[i].name);
			goto fail;
		}
		if (c->rules[i].backend && strcmp(c->rules[i].backend, "local") &&
		    !jb_config_backend(c, c->rules[i].backend)) {
			r = jb_err(err, EINVAL, "%s: rule %s: no [backend %s]", c->path, c->rules[i].name, c->rules[i].backend);
			goto fail;
		}
	}
	static const uint8_t zero[32];
	for (size_t i = 0; i < c->npeers; i++)
		if (!memcmp(c->peers[i].fp, zero, 32)) {
			r = jb_err(err, EINVAL, "%s: peer %s has no fingerprint", c->path, c->peers[i].name);
			goto fail;
		}
	for (size_t i = 0; i < c->npeers; i++)
		for (int k = 0; k < c->peers[i].nvia; k++)
			if (!jb_config_peer(c, c->peers[i].via[k]) || !jb_config_peer(c, c->peers[i].via[k])->address) {
				r = jb_err(err, EINVAL, "%s:%d: peer %s: via %s is not a peer with an address", c->path,
					   c->peers[i].via_line, c->peers[i].name, c->peers[i].via[k]);
				goto fail;
			}
	if (p.relay && !c->relay_staging) {
		r = jb_err(err, EINVAL, "%s: [relay] needs staging = DIR", c->path);
		goto fail;
	}
	if (!c->name) {
		r = jb_err(err, EINVAL, "%s: [site] name is missing", c->path);
		goto fail;
	}
	if (!c->identity) {
		r = jb_err(err, EINVAL, "%s: [site] identity is missing", c->path);
		goto fail;
	}
	free(copy);
	*ret = c;
	return 0;
fail:
	free(copy);
	jb_config_free(c);
	return r;
}

int jb_config_load(const char *path, struct jb_config **ret, struct jb_error *err)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return jb_err(err, errno, "%s: %s", path, strerror(errno));
	char *buf = malloc(CONFIG_MAX_BYTES + 1);
	if (!buf) {
		fclose(f);
		return jb_oom(err);
	}
	size_t n = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
	fclose(f);
	if (n > CONFIG_MAX_BYTES) {
		free(buf);
		return jb_err(err, EFBIG, "%s: larger than %d bytes", path, CONFIG_MAX_BYTES);
	}
	buf[n] = 0;
	if (memchr(buf, 0, n)) {
		free(buf);
		return jb_err(err, EINVAL, "%s: contains a NUL byte", path);
	}
	int r = jb_config_parse(buf, path, ret, err);
	free(buf);
	return r;
}

int jb_config_check_daemon(const struct jb_config *c, struct jb_error *err)
{
	struct stat st;
	char host[256];
	int port;
	if (!c->root)
		return jb_err(err, EINVAL, "%s: [site] root is missing", c->path);
	if (c->root[0] != '/')
		return jb_err(err, EINVAL, "%s: [site] root must be an absolute path", c->path);
	if (stat(c->root, &st) < 0 || !S_ISDIR(st.st_mode))
		return jb_err(err, ENOENT, "%s: data root %s is not a directory", c->path, c->root);
	if (!c->state)
		return jb_err(err, EINVAL, "%s: [site] state is missing", c->path);
	if (!c->listen || jb_split_hostport(c->listen, host, sizeof host, &port) < 0)
		return jb_err(err, EINVAL, "%s: [site] listen must be host:port", c->path);
	if (c->api && *c->api && strcmp(c->api, "off") &&
	    jb_split_hostport(c->api, host, sizeof host, &port) < 0)
		return jb_err(err, EINVAL, "%s: [site] api must be host:port or off", c->path);
	return 0;
}

const struct jb_peer *jb_config_peer(const struct jb_config *c, const char *name)
{
	for (size_t i = 0; i < c->npeers; i++)
		if (!strcmp(c->peers[i].name, name))
			return &c->peers[i];
	return NULL;
}

const struct jb_peer *jb_config_peer_by_fp(const struct jb_config *c, const uint8_t fp[32])
{
	for (size_t i = 0; i < c->npeers; i++)
		if (!memcmp(c->peers[i].fp, fp, 32))
			return &c->peers[i];
	return NULL;
}

const char *jb_peer_prefix(const struct jb_peer *p, enum jb_access a, const char *path)
{
	char *const *v = a == JB_WRITE ? p->write : p->read;
	size_t n = a == JB_WRITE ? p->nwrite : p->nread;
	const char *best = NULL;
	for (size_t i = 0; i < n; i++)
		if (jb_path_under(path, v[i]) && (!best || strlen(v[i]) < strlen(best)))
			best = v[i];
	return best;
}

/* "read a b" (or "read nothing") at buf + *o, cut to fit */
static void rights_put(char *buf, size_t len, size_t *o, const char *what, char *const *v, size_t n)
{
	*o += (size_t)snprintf(buf + *o, len - *o, "%s%s%s", *o ? "; " : "", what, n ? "" : " nothing");
	for (size_t i = 0; i < n && *o < len; i++)
		*o += (size_t)snprintf(buf + *o, len - *o, " %s", *v[i] ? v[i] : "everything");
	*o = JB_MIN(*o, len - 1);
}

void jb_peer_rights(const struct jb_peer *p, char *buf, size_t len)
{
	size_t o = 0;
	buf[0] = 0;
	rights_put(buf, len, &o, "read", p->read, p->nread);
	if (o < len - 1)
		rights_put(buf, len, &o, "write", p->write, p->nwrite);
}
