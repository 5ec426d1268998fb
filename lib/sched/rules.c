/* Landing rules: a dataset that lands (a file committed by a transfer)
 * and matches a rule's glob gets a job: the rule's image and command, the
 * dataset mounted at /data/NAME, the rule's limits, and its outputs
 * committed under the rule's output directory. */
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>

#include "jobs-internal.h"

/* Words as a shell splits them: blanks separate, '...' and "..." quote,
 * a backslash escapes the next character (outside single quotes). */
static json_t *split_words(const char *s, struct jb_error *err)
{
	json_t *words = json_array();
	char *w = malloc(strlen(s) + 1);
	if (!w) {
		json_decref(words);
		return NULL;
	}
	size_t n = 0;
	bool in_word = false;
	char q = 0;
	for (const char *p = s;; p++) {
		char c = *p;
		if (!c) {
			if (q) {
				jb_err(err, EINVAL, "an unterminated %c quote", q);
				json_decref(words);
				free(w);
				return NULL;
			}
			break;
		}
		if (q == '\'') {
			if (c == '\'')
				q = 0;
			else
				w[n++] = c;
			continue;
		}
		if (c == '\\' && p[1] && (q != '"' || strchr("\"\\$`", p[1]))) {
			w[n++] = *++p;
			in_word = true;
			continue;
		}
		if (q == '"') {
			if (c == '"')
				q = 0;
			else
				w[n++] = c;
			continue;
		}
		if (c == '\'' || c == '"') {
			q = c;
			in_word = true;
		} else if (c == ' ' || c == '\t') {
			if (in_word) {
				w[n] = 0;
				json_array_append_new(words, json_string(w));
				n = 0;
				in_word = false;
			}
		} else {
			w[n++] = c;
			in_word = true;
		}
	}
	if (in_word) {
		w[n] = 0;
		json_array_append_new(words, json_string(w));
	}
	free(w);
	return words;
}

/* s with each {key} of vars replaced (vars: key, value, ..., NULL). */
static char *expand(const char *s, const char *const *vars)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	if (!f)
		return NULL;
	for (const char *p = s; *p;) {
		bool done = false;
		if (*p == '{')
			for (const char *const *v = vars; *v; v += 2) {
				size_t kl = strlen(*v);
				if (!strncmp(p + 1, *v, kl) && p[1 + kl] == '}') {
					fputs(v[1], f);
					p += kl + 2;
					done = true;
					break;
				}
			}
		if (!done)
			fputc(*p++, f);
	}
	fclose(f);
	return out;
}

int jb_jobs_land(struct jb_jobs *j, const struct jb_config *c, const char *rel)
{
	int started = 0;
	for (size_t i = 0; i < c->nrules; i++) {
		const struct jb_rule *r = &c->rules[i];
		if (fnmatch(r->glob, rel, 0) != 0)
			continue;
		const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
		char dir[JB_PATH_MAX], input[JB_PATH_MAX + 8];
		snprintf(dir, sizeof dir, "%.*s", (int)(base - rel > 0 ? base - rel - 1 : 0), rel);
		snprintf(input, sizeof input, "/data/%s", base);
		const char *vars[] = {"input", input, "name", base, "path", rel, "dir", dir, "rule", r->name, NULL};
		struct jb_error err = {0};
		json_t *req = json_pack("{s:s, s:[{s:s, s:s}], s:s}", "image", r->image, "data", "name", base, "path", rel,
					"rule", r->name);
		if (r->command) {
			json_t *words = split_words(r->command, &err);
			if (!words) {
				jb_log(JB_LOG_ERROR, "rule %s: its command: %s", r->name, err.msg);
				json_decref(req);
				continue;
			}
			size_t k;
			json_t *w;
			json_t *args = json_array();
			json_array_foreach (words, k, w) {
				char *e = expand(json_string_value(w), vars);
				json_array_append_new(args, json_string(e ? e : ""));
				free(e);
			}
			json_decref(words);
			json_object_set_new(req, "args", args);
		}
		char *out = expand(r->output ? r->output : "results/{rule}/{name}/{job}", vars);
		json_object_set_new(req, "output", json_string(out ? out : ""));
		free(out);
		if (r->cpus > 0)
			json_object_set_new(req, "cpus", json_real(r->cpus));
		if (r->memory)
			json_object_set_new(req, "memory", json_string(r->memory));
		if (r->timeout > 0)
			json_object_set_new(req, "timeout", json_real(r->timeout));
		if (r->backend)
			json_object_set_new(req, "backend", json_string(r->backend));
		char id[JB_JOB_ID_LEN + 1];
		if (jb_jobs_submit(j, req, NULL, id, &err) < 0) {
			jb_log(JB_LOG_ERROR, "rule %s: %s landed, but its job was refused: %s", r->name, rel, err.msg);
		} else {
			jb_log(JB_LOG_INFO, "rule %s: %s landed: job %s", r->name, rel, id);
			started++;
		}
		json_decref(req);
	}
	return started;
}

void jb_landing_commit(void *ud, int phase, const struct jb_commit_file *files, size_t n, const char *origin,
		       const char *session)
{
	struct jb_landing *l = ud;
	struct jb_error err = {0};
	if (!l->cat)
		return;
	/* a group of files is one transaction of the catalog's */
	jb_catalog_batch(l->cat, true);
	for (size_t i = 0; i < n; i++) {
		const struct jb_commit_file *f = &files[i];
		if (phase == JB_COMMIT_BEFORE) {
			/* pending until the file has its name: a crash in between is
			 * settled by jb_catalog_reconcile at the next start */
			struct jb_dataset_in d = {.path = f->path, .size = f->size, .digest = f->digest, .origin = origin,
						  .source = JB_SOURCE_TRANSFER, .source_id = session, .mtime_ns = f->mtime_ns,
						  .pending = true, .via = f->via, .seal = f->seal, .seal_len = f->seal_len};
			if (jb_catalog_add(l->cat, &d, &err) < 0)
				jb_log(JB_LOG_ERROR, "%s landed, but the catalog did not take it: %s", f->path, err.msg);
		} else if (jb_catalog_settle(l->cat, f->path, f->digest, f->status == 0, &err) < 0) {
			jb_log(JB_LOG_ERROR, "%s: the catalog: %s", f->path, err.msg);
		}
	}
	if (jb_catalog_batch(l->cat, false) < 0)
		jb_log(JB_LOG_ERROR, "the catalog did not record %zu files that landed", n);
	if (phase == JB_COMMIT_AFTER && l->jobs)
		for (size_t i = 0; i < n; i++)
			if (files[i].status == 0)
				jb_jobs_land(l->jobs, l->c, files[i].path);
}
