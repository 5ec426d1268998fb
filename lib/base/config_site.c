/* jumbo.conf's [site] section: its keys, their checks and their defaults
 * (the parser and the other sections are config.c's). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-internal.h"

void config_site_defaults(struct jb_config *c)
{
	c->subuid_start = JB_SUBUID_START;
	c->subuid_count = JB_SUBUID_COUNT;
	c->job_ports[0] = JB_DEFAULT_JOB_PORT;
	c->njob_ports = 1;
	c->umask = 022;
	c->max_partial_age = JB_DEFAULT_MAX_PARTIAL_AGE;
	c->max_journal_age = JB_DEFAULT_MAX_JOURNAL_AGE;
	c->relay_give_up = 86400;
}

static int site_name(struct parse *p, const char *v)
{
	if (!config_valid_name(v))
		return config_perr(p, EINVAL, "invalid site name '%s'", v);
	return config_set_str(&p->c->name, v);
}
static int site_api(struct parse *p, const char *v)
{
	if (!*v || !strcmp(v, "off") || config_has_port(v))
		return config_set_str(&p->c->api, v);
	/* the API has its own default port, not the transfer port */
	char *a;
	if (asprintf(&a, "%s:%d", v, JB_DEFAULT_API_PORT) < 0)
		return -ENOMEM;
	free(p->c->api);
	p->c->api = a;
	return 0;
}
/* The bounds of [site]: a whole number of things from lo to hi, or a
 * size (as 64G) of at least min (named minname), into *out. */
static int count_key(struct parse *p, const char *key, const char *things, const char *v, long lo, long hi, int *out)
{
	char *end;
	long n = strtol(v, &end, 10);
	if (!*v || *end || n < lo || n > hi)
		return config_perr(p, EINVAL, "%s wants a number of %s from %ld to %ld, not '%s'", key, things, lo, hi, v);
	*out = (int)n;
	return 0;
}
static int size_key(struct parse *p, const char *key, const char *v, uint64_t min, const char *minname,
		    const char *example, uint64_t *out)
{
	uint64_t n;
	if (jb_parse_size(v, &n) < 0 || n < min)
		return config_perr(p, EINVAL, "%s wants a size of %s or more (as %s), not '%s'", key, minname, example, v);
	*out = n;
	return 0;
}
static int site_max_open_files(struct parse *p, const char *v)
{
	return count_key(p, "max_open_files", "files", v, 4, 4096, &p->c->max_open_files);
}
static int site_max_jobs(struct parse *p, const char *v)
{
	return count_key(p, "max_jobs", "jobs", v, 1, JB_MAX_MAX_JOBS, &p->c->max_jobs);
}
static int site_max_image_size(struct parse *p, const char *v)
{
	return size_key(p, "max_image_size", v, 1u << 20, "1M", "64G", &p->c->max_image_size);
}
static int site_max_job_log(struct parse *p, const char *v)
{
	return size_key(p, "max_job_log", v, 4096, "4K", "256M", &p->c->max_job_log);
}

static int site_job_ports(struct parse *p, const char *v)
{
	int n = 0;
	for (const char *q = v; *q;) {
		while (*q == ' ' || *q == '\t')
			q++;
		if (!*q)
			break;
		char *end;
		long port = strtol(q, &end, 10);
		if (end == q || (*end && *end != ' ' && *end != '\t') || port < 1 || port > 65535 ||
		    n == (int)JB_ARRAY_SIZE(p->c->job_ports))
			return config_perr(p, EINVAL, "job_ports wants up to 16 port numbers (1-65535) apart by spaces, not '%s'", v);
		p->c->job_ports[n++] = (uint16_t)port;
		q = end;
	}
	p->c->njob_ports = n;
	return 0;
}

/* subuid = START:COUNT, the host ids a job's container ids 0.. map to;
 * "off": jobs run as the host's root (no user namespace) */
static int site_subuid(struct parse *p, const char *v)
{
	if (!strcmp(v, "off")) {
		p->c->subuid_off = true;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long long start = strtoull(v, &end, 10), count = 0;
	if (*end == ':')
		count = strtoull(end + 1, &end, 10);
	if (errno || *end || *v == '-' || !isdigit((unsigned char)*v) || start == 0 || count < 65536 ||
	    start + count > 4294967295ull)
		return config_perr(p, EINVAL,
			    "subuid wants START:COUNT (host ids, START above 0, COUNT at least 65536) or off, not '%s'", v);
	p->c->subuid_start = (uint32_t)start;
	p->c->subuid_count = (uint32_t)count;
	p->c->subuid_off = false;
	return 0;
}

/* A number of seconds from lo to hi (a fraction allowed), or of things */
static int seconds(struct parse *p, const char *key, const char *v, double lo, double hi, double *out)
{
	char *end = NULL;
	double d = strtod(v, &end);
	if (end == v || *end || !(d >= lo && d <= hi))
		return config_perr(p, EINVAL, "%s wants a number of seconds from %g to %g, not '%s'", key, lo, hi, v);
	*out = d;
	return 0;
}
/* A duration: whole seconds, or with s, m, h or d (7d, 12h); 1 s to 3650 d. */
int config_duration(struct parse *p, const char *key, const char *v, int64_t *out)
{
	char *end;
	long long n = strtoll(v, &end, 10);
	int64_t unit = !*end || !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h") ? 3600 :
		       !strcmp(end, "d") ? 86400 : 0;
	if (end == v || *v == '-' || *v == '+' || !unit || n < 1 || n > 3650LL * 86400 / unit)
		return config_perr(p, EINVAL, "%s wants a duration from 1s to 3650d (like 7d, 12h, 30m or 90s), not '%s'", key,
			    v);
	*out = (int64_t)n * unit;
	return 0;
}
static int site_max_partial_age(struct parse *p, const char *v)
{
	return config_duration(p, "max_partial_age", v, &p->c->max_partial_age);
}
static int site_max_journal_age(struct parse *p, const char *v)
{
	return config_duration(p, "max_journal_age", v, &p->c->max_journal_age);
}
static int site_handshake_timeout(struct parse *p, const char *v)
{
	return seconds(p, "handshake_timeout", v, 1, 300, &p->c->handshake_timeout);
}
static int site_max_handshakes(struct parse *p, const char *v)
{
	return count_key(p, "max_handshakes", "connections", v, 1, JB_MAX_HANDSHAKES, &p->c->max_handshakes);
}
static int site_handshakes_per_address(struct parse *p, const char *v)
{
	return count_key(p, "handshakes_per_address", "connections", v, 1, JB_MAX_HANDSHAKES, &p->c->handshakes_per_address);
}
static int site_api_request_timeout(struct parse *p, const char *v)
{
	return seconds(p, "api_request_timeout", v, 1, 300, &p->c->api_request_timeout);
}
static int site_api_idle_timeout(struct parse *p, const char *v)
{
	return count_key(p, "api_idle_timeout", "whole seconds", v, 1, 3600, &p->c->api_idle_timeout); /* libmicrohttpd's: whole seconds */
}
static int site_api_connections_per_address(struct parse *p, const char *v)
{
	return count_key(p, "api_connections_per_address", "connections", v, 1, JB_API_MAX_CONNECTIONS,
		     &p->c->api_connections_per_address);
}

static int site_umask(struct parse *p, const char *v)
{
	char *end;
	long n = strtol(v, &end, 8);
	if (!*v || *end || *v == '-' || *v == '+' || n < 0 || n > 0777)
		return config_perr(p, EINVAL, "umask wants permission bits in octal from 0 to 777 (like 022), not '%s'", v);
	p->c->umask = (int)n;
	return 0;
}

const struct key site_keys[] = {
	FN("name", site_name),
	STR("identity", struct jb_config, identity),
	STR("root", struct jb_config, root),
	STR("listen", struct jb_config, listen),
	FN("api", site_api),
	STR("state", struct jb_config, state),
	STR("images", struct jb_config, images),
	FN("max_open_files", site_max_open_files),
	FN("subuid", site_subuid),
	FN("max_jobs", site_max_jobs),
	FN("max_job_log", site_max_job_log),
	FN("job_ports", site_job_ports),
	FN("max_image_size", site_max_image_size),
	FN("max_partial_age", site_max_partial_age),
	FN("max_journal_age", site_max_journal_age),
	FN("handshake_timeout", site_handshake_timeout),
	FN("max_handshakes", site_max_handshakes),
	FN("handshakes_per_address", site_handshakes_per_address),
	FN("api_request_timeout", site_api_request_timeout),
	FN("api_idle_timeout", site_api_idle_timeout),
	FN("api_connections_per_address", site_api_connections_per_address),
	FN("umask", site_umask),
	{0},
};
