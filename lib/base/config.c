#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "jumbo/config.h"

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
	}
	free(c->peers);
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

static bool valid_name(const char *s)
{
	if (!*s || strlen(s) > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
			return false;
	return true;
}

/* "host:port" or "[v6]:port" rather than a bare host. */
static bool has_port(const char *s)
{
	if (*s == '[') {
		const char *e = strchr(s, ']');
		return e && e[1] == ':';
	}
	return strchr(s, ':') != NULL;
}

static int set_str(char **dst, const char *v)
{
	char *n = strdup(v);
	if (!n)
		return -ENOMEM;
	free(*dst);
	*dst = n;
	return 0;
}

/* the keys of [backend NAME] sections, by type (jumbo.conf(5), BACKENDS) */
static const char *const backend_keys_common[] = {"jumbod", "state", "data", "images", NULL};
static const char *const backend_keys_slurm[] = {"rest", "api-version", "user", "jwt-key", "token-file", "partition", "account", "qos", NULL};
static const char *const backend_keys_marathon[] = {"url", "user", "password", "password-file", "token-file", "container", "registry", "app-prefix", NULL};

int jb_config_parse(const char *text, const char *path, struct jb_config **ret, struct jb_error *err)
{
	struct jb_config *c = calloc(1, sizeof *c);
	char *copy = strdup(text);
	int r = 0;
	if (!c || !copy) {
		free(copy);
		free(c);
		return -ENOMEM;
	}
	c->path = strdup(path ? path : "<string>");
	enum { NONE, SITE, PEER, REGISTRY, RULE, BACKEND, OTHER } sec = NONE;
	struct jb_backend_conf *be = NULL;
	struct jb_peer *peer = NULL;
	struct jb_registry_conf *reg = NULL;
	struct jb_rule *rule = NULL;
	int lineno = 0;
	char *line = copy;
	while (line) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		lineno++;
		strip_comment(line);
		char *s = trim(line);
		if (!*s)
			goto next;
		if (*s == '[') {
			char *e = strchr(s, ']');
			if (!e || e[1]) {
				r = jb_err(err, EINVAL, "%s:%d: malformed section header", c->path, lineno);
				goto fail;
			}
			*e = 0;
			char *sect = trim(s + 1);
			if (!strcmp(sect, "site")) {
				sec = SITE;
			} else if (!strncmp(sect, "peer", 4) && isspace((unsigned char)sect[4])) {
				char *pname = trim(sect + 5);
				if (!valid_name(pname)) {
					r = jb_err(err, EINVAL, "%s:%d: invalid peer name '%s' (letters, digits, '-', '_', '.')",
						   c->path, lineno, pname);
					goto fail;
				}
				if (jb_config_peer(c, pname)) {
					r = jb_err(err, EINVAL, "%s:%d: peer '%s' defined twice", c->path, lineno, pname);
					goto fail;
				}
				if (c->npeers >= JB_MAX_PEERS) {
					r = jb_err(err, E2BIG, "%s:%d: too many peers (limit %d)", c->path, lineno, JB_MAX_PEERS);
					goto fail;
				}
				struct jb_peer *np = realloc(c->peers, (c->npeers + 1) * sizeof *np);
				if (!np) {
					r = -ENOMEM;
					goto fail;
				}
				c->peers = np;
				peer = &c->peers[c->npeers++];
				memset(peer, 0, sizeof *peer);
				peer->name = strdup(pname);
				sec = PEER;
			} else if (!strncmp(sect, "registry", 8) && isspace((unsigned char)sect[8])) {
				char *host = trim(sect + 9);
				bool okh = *host && strlen(host) < 256;
				for (const char *p = host; okh && *p; p++)
					okh = isalnum((unsigned char)*p) || strchr(".-:[]", *p);
				if (!okh) {
					r = jb_err(err, EINVAL, "%s:%d: '%s' is not a registry host (HOST or HOST:PORT)", c->path,
						   lineno, host);
					goto fail;
				}
				if (jb_config_registry(c, host)) {
					r = jb_err(err, EINVAL, "%s:%d: registry '%s' defined twice", c->path, lineno, host);
					goto fail;
				}
				struct jb_registry_conf *nr = realloc(c->registries, (c->nregistries + 1) * sizeof *nr);
				if (!nr) {
					r = -ENOMEM;
					goto fail;
				}
				c->registries = nr;
				reg = &c->registries[c->nregistries++];
				memset(reg, 0, sizeof *reg);
				if (!(reg->host = strdup(host))) {
					r = -ENOMEM;
					goto fail;
				}
				sec = REGISTRY;
			} else if (!strncmp(sect, "rule", 4) && isspace((unsigned char)sect[4])) {
				char *rname = trim(sect + 5);
				if (!valid_name(rname)) {
					r = jb_err(err, EINVAL, "%s:%d: invalid rule name '%s' (letters, digits, '-', '_', '.')",
						   c->path, lineno, rname);
					goto fail;
				}
				for (size_t i = 0; i < c->nrules; i++)
					if (!strcmp(c->rules[i].name, rname)) {
						r = jb_err(err, EINVAL, "%s:%d: rule '%s' defined twice", c->path, lineno, rname);
						goto fail;
					}
				struct jb_rule *nr = realloc(c->rules, (c->nrules + 1) * sizeof *nr);
				if (!nr) {
					r = -ENOMEM;
					goto fail;
				}
				c->rules = nr;
				rule = &c->rules[c->nrules++];
				memset(rule, 0, sizeof *rule);
				if (!(rule->name = strdup(rname))) {
					r = -ENOMEM;
					goto fail;
				}
				sec = RULE;
			} else if (!strncmp(sect, "backend", 7) && isspace((unsigned char)sect[7])) {
				char *bname = trim(sect + 8);
				if (!valid_name(bname) || !strcmp(bname, "local")) {
					r = jb_err(err, EINVAL, "%s:%d: invalid backend name '%s' (letters, digits, '-', '_', '.'; "
						   "'local' is this host's)", c->path, lineno, bname);
					goto fail;
				}
				if (jb_config_backend(c, bname)) {
					r = jb_err(err, EINVAL, "%s:%d: backend '%s' defined twice", c->path, lineno, bname);
					goto fail;
				}
				struct jb_backend_conf *nb = realloc(c->backends, (c->nbackends + 1) * sizeof *nb);
				if (!nb) {
					r = -ENOMEM;
					goto fail;
				}
				c->backends = nb;
				be = &c->backends[c->nbackends++];
				memset(be, 0, sizeof *be);
				be->line = lineno;
				if (!(be->name = strdup(bname))) {
					r = -ENOMEM;
					goto fail;
				}
				sec = BACKEND;
			} else if (!strncmp(sect, "peer", 4)) {
				/* "[peer]" or "[peers x]" is a typo for [peer NAME], not a later
				 * module's section: ignoring it would drop a pin without a word */
				if (sect[4])
					r = jb_err(err, EINVAL, "%s:%d: unknown section '[%s]' (did you mean [peer NAME]?)",
						   c->path, lineno, sect);
				else
					r = jb_err(err, EINVAL, "%s:%d: [peer] without a name (want [peer NAME])", c->path,
						   lineno);
				goto fail;
			} else {
				/* later sections ([rule ...], [backend ...]) belong to later modules */
				sec = OTHER;
			}
			goto next;
		}
		char *eq = strchr(s, '=');
		if (!eq) {
			r = jb_err(err, EINVAL, "%s:%d: expected 'key = value'", c->path, lineno);
			goto fail;
		}
		*eq = 0;
		char *key = trim(s), *val = trim(eq + 1);
		if (sec == SITE && !strcmp(key, "max_open_files")) {
			char *end;
			long v = strtol(val, &end, 10);
			if (!*val || *end || v < 4 || v > 4096) {
				r = jb_err(err, EINVAL, "%s:%d: max_open_files wants a number of files from 4 to 4096, not '%s'",
					   c->path, lineno, val);
				goto fail;
			}
			c->max_open_files = (int)v;
		} else if (sec == SITE) {
			char **dst = !strcmp(key, "name") ? &c->name
				: !strcmp(key, "identity") ? &c->identity
				: !strcmp(key, "root") ? &c->root
				: !strcmp(key, "listen") ? &c->listen
				: !strcmp(key, "api") ? &c->api
				: !strcmp(key, "state") ? &c->state
				: !strcmp(key, "images") ? &c->images : NULL;
			if (!dst) {
				r = jb_err(err, EINVAL, "%s:%d: unknown key '%s' in [site]", c->path, lineno, key);
				goto fail;
			}
			if (dst == &c->name && !valid_name(val)) {
				r = jb_err(err, EINVAL, "%s:%d: invalid site name '%s'", c->path, lineno, val);
				goto fail;
			}
			if ((r = set_str(dst, val)) < 0)
				goto fail;
			if (dst == &c->api && *val && strcmp(val, "off") && !has_port(val)) {
				/* the API has its own default port, not the transfer port */
				char *a;
				if (asprintf(&a, "%s:%d", val, JB_DEFAULT_API_PORT) < 0) {
					r = -ENOMEM;
					goto fail;
				}
				free(c->api);
				c->api = a;
			}
		} else if (sec == PEER) {
			if (!strcmp(key, "address")) {
				char host[256];
				int port;
				if (jb_split_hostport(val, host, sizeof host, &port) < 0) {
					r = jb_err(err, EINVAL, "%s:%d: peer %s: bad address '%s' (want host:port)",
						   c->path, lineno, peer->name, val);
					goto fail;
				}
				if ((r = set_str(&peer->address, val)) < 0)
					goto fail;
			} else if (!strcmp(key, "fingerprint")) {
				if (jb_fp_parse(val, peer->fp) < 0) {
					r = jb_err(err, EINVAL, "%s:%d: peer %s: bad fingerprint (want SHA256:<64 hex>)",
						   c->path, lineno, peer->name);
					goto fail;
				}
			} else {
				r = jb_err(err, EINVAL, "%s:%d: unknown key '%s' in [peer %s]", c->path, lineno, key,
					   peer->name);
				goto fail;
			}
		} else if (sec == REGISTRY) {
			if (!strcmp(key, "user")) {
				r = set_str(&reg->user, val);
			} else if (!strcmp(key, "password")) {
				r = set_str(&reg->password, val);
			} else if (!strcmp(key, "password-file")) {
				/* the secret itself stays out of a file that may be world-readable */
				char pw[1024];
				int rr = jb_read_line_file(val, pw, sizeof pw);
				if (rr < 0) {
					r = jb_err(err, -rr, "%s:%d: registry %s: cannot read password-file %s", c->path, lineno,
						   reg->host, val);
					goto fail;
				}
				r = set_str(&reg->password, pw);
				explicit_bzero(pw, sizeof pw);
			} else if (!strcmp(key, "ca")) {
				r = set_str(&reg->ca, val);
			} else if (!strcmp(key, "insecure")) {
				if (strcmp(val, "true") && strcmp(val, "false")) {
					r = jb_err(err, EINVAL, "%s:%d: registry %s: insecure is true or false", c->path, lineno,
						   reg->host);
					goto fail;
				}
				reg->insecure = !strcmp(val, "true");
			} else {
				r = jb_err(err, EINVAL, "%s:%d: unknown key '%s' in [registry %s]", c->path, lineno, key,
					   reg->host);
			}
			if (r < 0)
				goto fail;
		} else if (sec == RULE) {
			char *end = NULL;
			if (!strcmp(key, "glob")) {
				r = set_str(&rule->glob, val);
			} else if (!strcmp(key, "image")) {
				r = set_str(&rule->image, val);
			} else if (!strcmp(key, "command")) {
				r = set_str(&rule->command, val);
			} else if (!strcmp(key, "output")) {
				r = set_str(&rule->output, val);
			} else if (!strcmp(key, "memory")) {
				uint64_t m;
				if (jb_parse_size(val, &m) < 0 || m < (4u << 20))
					r = jb_err(err, EINVAL, "%s:%d: rule %s: memory is a size of 4M or more", c->path, lineno,
						   rule->name);
				else
					r = set_str(&rule->memory, val);
			} else if (!strcmp(key, "backend")) {
				r = set_str(&rule->backend, val);
			} else if (!strcmp(key, "cpus") || !strcmp(key, "timeout")) {
				double v = strtod(val, &end);
				if (end == val || *end || v <= 0)
					r = jb_err(err, EINVAL, "%s:%d: rule %s: %s is a number above 0", c->path, lineno,
						   rule->name, key);
				else if (!strcmp(key, "cpus"))
					rule->cpus = v;
				else
					rule->timeout = v;
			} else {
				r = jb_err(err, EINVAL, "%s:%d: unknown key '%s' in [rule %s]", c->path, lineno, key,
					   rule->name);
			}
			if (r < 0)
				goto fail;
		} else if (sec == BACKEND) {
			if (!strcmp(key, "type")) {
				if (strcmp(val, "slurm") && strcmp(val, "marathon") && strcmp(val, "local"))
					r = jb_err(err, EINVAL, "%s:%d: backend %s: type is slurm, marathon or local", c->path,
						   lineno, be->name);
				else
					r = set_str(&be->type, val);
			} else if (jb_backend_conf_get(be, key)) {
				r = jb_err(err, EINVAL, "%s:%d: backend %s: '%s' given twice", c->path, lineno, be->name, key);
			} else {
				char **nk = realloc(be->keys, (be->nkv + 1) * sizeof *nk);
				if (nk)
					be->keys = nk;
				char **nv = realloc(be->vals, (be->nkv + 1) * sizeof *nv);
				if (nv)
					be->vals = nv;
				if (!nk || !nv)
					r = -ENOMEM;
				else if (!(be->keys[be->nkv] = strdup(key)) || !(be->vals[be->nkv] = strdup(val)))
					r = -ENOMEM;
				if (r == 0)
					be->nkv++;
				else if (nk && nv) {
					free(be->keys[be->nkv]);
					be->keys[be->nkv] = NULL;
				}
			}
			if (r < 0)
				goto fail;
		} else if (sec == NONE) {
			r = jb_err(err, EINVAL, "%s:%d: key '%s' outside any section", c->path, lineno, key);
			goto fail;
		}
	next:
		line = nl ? nl + 1 : NULL;
	}
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
	for (size_t i = 0; i < c->nbackends; i++) {
		const struct jb_backend_conf *b = &c->backends[i];
		if (!b->type) {
			r = jb_err(err, EINVAL, "%s:%d: backend %s needs a type (slurm, marathon or local)", c->path, b->line,
				   b->name);
			goto fail;
		}
		const char *const *known = !strcmp(b->type, "slurm") ? backend_keys_slurm
					   : !strcmp(b->type, "marathon") ? backend_keys_marathon
									  : backend_keys_common;
		for (size_t k = 0; k < b->nkv; k++) {
			bool ok = false;
			for (const char *const *p = backend_keys_common; *p && !ok; p++)
				ok = !strcmp(*p, b->keys[k]);
			for (const char *const *p = known; *p && !ok; p++)
				ok = !strcmp(*p, b->keys[k]);
			if (!ok) {
				r = jb_err(err, EINVAL, "%s:%d: unknown key '%s' in [backend %s] of type %s", c->path, b->line,
					   b->keys[k], b->name, b->type);
				goto fail;
			}
		}
	}
	static const uint8_t zero[32];
	for (size_t i = 0; i < c->npeers; i++)
		if (!memcmp(c->peers[i].fp, zero, 32)) {
			r = jb_err(err, EINVAL, "%s: peer %s has no fingerprint", c->path, c->peers[i].name);
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
		return -ENOMEM;
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
