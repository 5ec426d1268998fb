/* The site's records as JSON, the one place they become JSON: jobs,
 * transfers, datasets, a job's inputs, provenance, the landing rules.  The
 * keys are docs/api.md's; a key whose value is not known yet is left out. */
#include <jansson.h>
#include <string.h>

#include "api-internal.h"

/* A request recorded as submitted, as an object ({} should it not parse). */
static json_t *request_json(const char *text)
{
	json_t *o = text ? json_loads(text, 0, NULL) : NULL;
	if (json_is_object(o))
		return o;
	json_decref(o);
	return json_object();
}

static void set_str(json_t *o, const char *key, const char *v)
{
	if (v)
		json_object_set_new(o, key, json_string(v));
}

static void set_time(json_t *o, const char *key, double v)
{
	if (v > 0)
		json_object_set_new(o, key, json_real(v));
}

/* An environment's names without their values ("NAME=VALUE" -> "NAME"). */
static void hide_env(json_t *spec)
{
	json_t *env = json_object_get(spec, "env"), *x;
	size_t i;
	json_array_foreach (env, i, x) {
		const char *kv = json_string_value(x);
		const char *eq = kv ? strchr(kv, '=') : NULL;
		if (eq)
			json_array_set_new(env, i, json_stringn(kv, (size_t)(eq - kv)));
	}
}

json_t *api_job_json(const struct jb_job *job, bool env)
{
	json_t *spec = request_json(job->request);
	if (!env)
		hide_env(spec);
	json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:f}", "id", job->id, "state", jb_job_state_name(job->state), "image",
			      job->image ? job->image : "", "spec", spec, "created", job->created);
	if (!o)
		return NULL;
	set_str(o, "owner", job->owner);
	set_str(o, "digest", job->digest);
	set_time(o, "started", job->started);
	set_time(o, "finished", job->finished);
	if (job->has_exit)
		json_object_set_new(o, "exit_code", json_integer(job->exit_code));
	set_str(o, "reason", job->reason);
	if (job->max_memory >= 0)
		json_object_set_new(o, "max_memory", json_integer(job->max_memory));
	set_str(o, "output", job->output);
	set_str(o, "address", job->address);
	set_str(o, "backend", job->backend ? job->backend : "local");
	set_str(o, "backend_id", job->backend_id);
	set_str(o, "node", job->node);
	if (job->port > 0)
		json_object_set_new(o, "port", json_integer(job->port));
	return o;
}

json_t *api_dataset_json(const struct jb_dataset *d)
{
	json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:f, s:b, s:I}", "path", d->path, "size", (json_int_t)d->size,
			      "digest", d->digest, "origin", d->origin ? d->origin : "", "source",
			      jb_dataset_source_name(d->source), "arrived", d->arrived, "current", d->current, "mtime_ns",
			      (json_int_t)d->mtime_ns);
	if (!o)
		return NULL;
	if (d->sha256[0])
		json_object_set_new(o, "sha256", json_string(d->sha256));
	set_str(o, d->source == JB_SOURCE_JOB ? "job" : "transfer", d->source_id);
	set_str(o, "via", d->via);
	if (d->source == JB_SOURCE_TRANSFER)
		json_object_set_new(o, "sealed", json_boolean(d->seal_len > 0));
	return o;
}

json_t *api_datasets_json(const struct jb_datasets *l)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < l->n; i++)
		json_array_append_new(a, api_dataset_json(&l->v[i]));
	return a;
}

json_t *api_inputs_json(const struct jb_job_inputs *l)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < l->n; i++)
		json_array_append_new(a, json_pack("{s:s, s:s}", "path", l->v[i].path, "digest", l->v[i].digest));
	return a;
}

json_t *api_transfer_json(const struct jb_transfer *x)
{
	json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:s, s:i, s:f}", "id", x->id, "op",
			      x->op == JB_XFER_GET ? "get" : "send", "request", request_json(x->request), "peer",
			      x->peer ? x->peer : "", "state", jb_transfer_state_name(x->state), "attempts", x->attempts,
			      "created", x->created);
	if (!o)
		return NULL;
	set_time(o, "next_try", x->next_try);
	set_time(o, "started", x->started);
	set_time(o, "finished", x->finished);
	static const struct {
		const char *key;
		size_t off;
	} ints[] = {{"bytes_total", offsetof(struct jb_transfer, bytes_total)},
		    {"bytes_sent", offsetof(struct jb_transfer, bytes_sent)},
		    {"files", offsetof(struct jb_transfer, files)}};
	for (size_t i = 0; i < JB_ARRAY_SIZE(ints); i++) {
		int64_t v = *(const int64_t *)((const char *)x + ints[i].off);
		if (v >= 0)
			json_object_set_new(o, ints[i].key, json_integer(v));
	}
	if (x->seconds >= 0)
		json_object_set_new(o, "seconds", json_real(x->seconds));
	if (x->gbps >= 0)
		json_object_set_new(o, "gbps", json_real(x->gbps));
	set_str(o, "error", x->error);
	set_str(o, "owner", x->owner);
	if (x->active)
		json_object_set_new(o, "progress",
				    json_pack("{s:I, s:I, s:f}", "bytes_done", (json_int_t)x->done_bytes, "bytes_total",
					      (json_int_t)x->done_total, "seconds", x->done_seconds));
	return o;
}

json_t *api_provenance_json(const struct jb_provenance *p, const char *viewer)
{
	if (!p->known)
		return json_pack("{s:{s:s, s:s}}", "dataset", "path", p->ds.path ? p->ds.path : "", "digest", p->ds.digest);
	json_t *node = json_pack("{s:o}", "dataset", api_dataset_json(&p->ds));
	if (!node || !p->has_job)
		return node;
	bool env = !viewer || (p->job.owner && !strcmp(p->job.owner, viewer));
	json_t *job = api_job_json(&p->job, env), *from = json_array();
	if (job)
		json_object_set_new(job, "inputs", api_inputs_json(&p->inputs));
	for (size_t i = 0; from && i < p->nfrom; i++)
		json_array_append_new(from, api_provenance_json(&p->from[i], viewer));
	json_object_set_new(node, "job", job);
	json_object_set_new(node, "from", from);
	return node;
}

json_t *api_rules_json(const struct jb_config *c)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < c->nrules; i++) {
		const struct jb_rule *r = &c->rules[i];
		json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "name", r->name, "glob", r->glob, "image", r->image, "output",
				      r->output ? r->output : "results/{rule}/{name}/{job}");
		if (!o)
			continue;
		set_str(o, "command", r->command);
		if (r->cpus > 0)
			json_object_set_new(o, "cpus", json_real(r->cpus));
		set_str(o, "memory", r->memory);
		if (r->timeout > 0)
			json_object_set_new(o, "timeout", json_real(r->timeout));
		set_str(o, "backend", r->backend ? r->backend : "local");
		json_array_append_new(arr, o);
	}
	return arr;
}
