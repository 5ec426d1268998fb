/* Backends: the [backend NAME] sections of the configuration, opened when
 * jumbod starts; their common keys (jumbod, and the path maps state, data,
 * images); the types, each with its operations and keys (backend_local.c,
 * slurm.c, marathon.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs-internal.h"

/* The types of backend, each with its operations and keys. */
static const struct backend_ops *const types[] = {&jobs_local_ops, &jobs_slurm_ops, &jobs_marathon_ops, &jobs_null_ops};
/* the keys every type takes (the path maps, and jumbod on the nodes) */
static const char *const common_keys[] = {"jumbod", "state", "data", "images", NULL};

static const struct backend_ops *ops_of(const char *type)
{
	for (size_t i = 0; type && i < JB_ARRAY_SIZE(types); i++)
		if (!strcmp(type, types[i]->type))
			return types[i];
	return NULL;
}

static bool has_key(const char *const *keys, const char *k)
{
	for (; keys && *keys; keys++)
		if (!strcmp(*keys, k))
			return true;
	return false;
}

int jb_backends_check(const struct jb_config *c, struct jb_error *err)
{
	char names[128] = "";
	for (size_t i = 0; i < JB_ARRAY_SIZE(types); i++)
		snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? (i + 1 < JB_ARRAY_SIZE(types) ? ", " : " or ") : "",
			 types[i]->type);
	for (size_t i = 0; i < c->nbackends; i++) {
		const struct jb_backend_conf *b = &c->backends[i];
		if (!b->type)
			return jb_err(err, EINVAL, "%s:%d: backend %s needs a type (%s)", c->path, b->line, b->name, names);
		const struct backend_ops *ops = ops_of(b->type);
		if (!ops)
			return jb_err(err, EINVAL, "%s:%d: backend %s: type is %s, not '%s'", c->path, b->line, b->name, names,
				      b->type);
		for (size_t k = 0; k < b->nkv; k++)
			if (!has_key(common_keys, b->keys[k]) && !has_key(ops->keys, b->keys[k]))
				return jb_err(err, EINVAL, "%s:%d: unknown key '%s' in [backend %s] of type %s", c->path,
					      b->lines ? b->lines[k] : b->line, b->keys[k], b->name, b->type);
	}
	return 0;
}

void jobs_backend_map(const struct jobs_backend *b, const char *path, char *out, size_t n)
{
	for (size_t i = 0; i < b->nmaps; i++) {
		size_t l = strlen(b->maps[i].from);
		if (!strncmp(path, b->maps[i].from, l) && (path[l] == '/' || !path[l])) {
			snprintf(out, n, "%s%s", b->maps[i].to, path + l);
			return;
		}
	}
	snprintf(out, n, "%s", path);
}

static int add_map(struct jobs_backend *b, const char *from, const char *key)
{
	const char *to = jb_backend_conf_get(b->conf, key);
	if (!to || !from || !strcmp(from, to))
		return 0;
	char *f = realpath(from, NULL);
	if (!f)
		return -errno;
	b->maps[b->nmaps].from = f;
	if (!(b->maps[b->nmaps].to = strdup(to)))
		return -ENOMEM;
	b->nmaps++;
	return 0;
}

/* One [backend NAME]: its maps, then its type's open; one that fails keeps
 * its error (its jobs fail with it) and jumbod goes on without it. */
static void backend_open(struct jb_jobs *j, struct jobs_backend *b)
{
	struct jb_error e = {0};
	int r = 0;
	for (const char *k = "state"; r == 0 && k; k = !strcmp(k, "state") ? "data" : !strcmp(k, "data") ? "images" : NULL) {
		const char *from = !strcmp(k, "state") ? j->state : !strcmp(k, "data") ? j->rootreal : j->images;
		if ((r = add_map(b, from, k)) < 0)
			jb_err(&e, -r, "backend %s: %s %s: %s", b->name, k, from, strerror(-r));
	}
	if (r == 0 && b->ops->open)
		r = b->ops->open(b, &e);
	if (r < 0) {
		snprintf(b->error, sizeof b->error, "%s", e.msg[0] ? e.msg : strerror(-r));
		if (b->ops->close)
			b->ops->close(b);
		jb_log(JB_LOG_ERROR, "%s: its jobs will fail until it is fixed", b->error);
		return;
	}
	jb_log(JB_LOG_INFO, "backend %s: %s", b->name, b->ops->type);
}

int jobs_backends_open(struct jb_jobs *j, struct jb_error *err)
{
	int r = jb_backends_check(j->c, err);
	if (r < 0)
		return r;
	j->local = (struct jobs_backend){.j = j, .ops = &jobs_local_ops, .name = "local"};
	if (!(j->local.jumbod = strdup(j->self_exe)))
		return jb_err(err, ENOMEM, "backends: out of memory");
	if (!j->c->nbackends)
		return 0;
	if (!(j->backends = calloc(j->c->nbackends, sizeof *j->backends)))
		return jb_err(err, ENOMEM, "backends: out of memory");
	for (size_t i = 0; i < j->c->nbackends; i++) {
		const struct jb_backend_conf *bc = &j->c->backends[i];
		struct jobs_backend *b = &j->backends[j->nbackends++];
		*b = (struct jobs_backend){.j = j, .conf = bc, .name = bc->name, .ops = ops_of(bc->type)};
		const char *jd = jb_backend_conf_get(bc, "jumbod");
		if (!(b->jumbod = strdup(jd ? jd : j->self_exe)))
			return jb_err(err, ENOMEM, "backends: out of memory");
		backend_open(j, b);
	}
	return 0;
}

void jobs_backends_close(struct jb_jobs *j)
{
	free(j->local.jumbod);
	j->local.jumbod = NULL;
	for (size_t i = 0; i < j->nbackends; i++) {
		struct jobs_backend *b = &j->backends[i];
		if (!b->error[0] && b->ops->close)
			b->ops->close(b);
		free(b->jumbod);
		for (size_t k = 0; k < b->nmaps; k++) {
			free(b->maps[k].from);
			free(b->maps[k].to);
		}
	}
	free(j->backends);
	j->backends = NULL;
	j->nbackends = 0;
}

struct jobs_backend *jobs_backend_find(struct jb_jobs *j, const char *name)
{
	if (!name || !strcmp(name, "local"))
		return &j->local;
	for (size_t i = 0; i < j->nbackends; i++)
		if (!strcmp(j->backends[i].conf->name, name))
			return &j->backends[i];
	return NULL;
}
