/* Backends: the [backend NAME] sections of the configuration, opened when
 * jumbod starts; their common keys (jumbod, and the path maps state, data,
 * images); the table of operations each type gives (slurm.c, marathon.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs-internal.h"

static const struct backend_ops *ops_of(const char *type)
{
	if (!strcmp(type, "slurm"))
		return &jobs_slurm_ops;
	if (!strcmp(type, "marathon"))
		return &jobs_marathon_ops;
	return NULL;
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

int jobs_backends_open(struct jb_jobs *j, struct jb_error *err)
{
	if (!j->c->nbackends)
		return 0;
	if (!(j->backends = calloc(j->c->nbackends, sizeof *j->backends)))
		return jb_err(err, ENOMEM, "backends: out of memory");
	for (size_t i = 0; i < j->c->nbackends; i++) {
		const struct jb_backend_conf *bc = &j->c->backends[i];
		struct jobs_backend *b = &j->backends[j->nbackends++];
		struct jb_error e = {0};
		b->conf = bc;
		b->ops = ops_of(bc->type);
		const char *jd = jb_backend_conf_get(bc, "jumbod");
		if (!(b->jumbod = strdup(jd ? jd : j->self_exe)))
			return jb_err(err, ENOMEM, "backends: out of memory");
		int r = 0;
		if (!b->ops) /* type local: this host */
			continue;
		for (const char *k = "state"; r == 0 && k; k = !strcmp(k, "state") ? "data" : !strcmp(k, "data") ? "images" : NULL) {
			const char *from = !strcmp(k, "state") ? j->state : !strcmp(k, "data") ? j->rootreal : j->images;
			if ((r = add_map(b, from, k)) < 0)
				jb_err(&e, -r, "backend %s: %s %s: %s", bc->name, k, from, strerror(-r));
		}
		if (r == 0)
			r = b->ops->open(b, &e);
		if (r < 0) {
			snprintf(b->error, sizeof b->error, "%s", e.msg[0] ? e.msg : strerror(-r));
			if (b->ops->close)
				b->ops->close(b);
			jb_log(JB_LOG_ERROR, "%s: its jobs will fail until it is fixed", b->error);
			b->ops = NULL;
			continue;
		}
		jb_log(JB_LOG_INFO, "backend %s: %s", bc->name, bc->type);
	}
	return 0;
}

void jobs_backends_close(struct jb_jobs *j)
{
	for (size_t i = 0; i < j->nbackends; i++) {
		struct jobs_backend *b = &j->backends[i];
		if (b->ops && b->ops->close)
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
	for (size_t i = 0; i < j->nbackends; i++)
		if (!strcmp(j->backends[i].conf->name, name))
			return &j->backends[i];
	return NULL;
}
