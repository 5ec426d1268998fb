/* Durable transfers: handed to jumbod (jumbo send --detach, the REST API),
 * kept in the site database, run by a few worker threads with the site's
 * own identity, retried with backoff while the peer or the link is down,
 * resumed from the verified blocks after any failure or restart, ended
 * done, failed (with the reason) or cancelled. */
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <sys/random.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "jobs-internal.h"

#define WORKERS 4
#define MAX_ATTEMPTS 30
#define MAX_BACKOFF 300.0

static const char *const tnames[JB_XFER_NSTATES] = {"queued", "running", "retrying", "done", "failed", "cancelled"};

const char *jb_transfer_state_name(enum jb_transfer_state s)
{
	return (unsigned)s < JB_XFER_NSTATES ? tnames[s] : "failed";
}

struct active {
	char id[JB_JOB_ID_LEN + 1];
	volatile int cancel;
	uint64_t bytes_done, bytes_total;
	double seconds;
	bool used;
};

struct jb_transfers {
	const struct jb_config *c;
	char *rootreal, *state;
	double backoff;
	sqlite3 *db;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	pthread_t workers[WORKERS];
	struct active act[WORKERS];
};

#define TCOLS                                                                                                    \
	"id, op, request, peer, state, attempts, next_try, created, started, finished, bytes_total, bytes_sent, "  \
	"seconds, gbps, files, error, owner"

void jb_transfer_free(struct jb_transfer *x)
{
	free(x->request);
	free(x->peer);
	free(x->error);
	free(x->owner);
	memset(x, 0, sizeof *x);
}

void jb_transfer_list_free(struct jb_transfer *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		jb_transfer_free(&v[i]);
	free(v);
}

static int64_t col_int(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

static double col_real(sqlite3_stmt *st, int i, double none)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? none : sqlite3_column_double(st, i);
}

static char *col_dup(sqlite3_stmt *st, int i, bool *oom)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return NULL;
	char *v = strdup((const char *)sqlite3_column_text(st, i));
	*oom |= !v;
	return v;
}

/* A row of TCOLS, with a running one's progress from its worker (t->lock held). */
static void drop_transfer(void *x) { jb_transfer_free(x); }

static int trow(sqlite3_stmt *st, void *elem, void *ud)
{
	struct jb_transfers *t = ud;
	struct jb_transfer *x = elem;
	int s = sqlite3_column_int(st, 4);
	bool oom = false;
	*x = (struct jb_transfer){
		.op = !strcmp((const char *)sqlite3_column_text(st, 1), "get") ? JB_XFER_GET : JB_XFER_SEND,
		.state = s >= 0 && s < JB_XFER_NSTATES ? (enum jb_transfer_state)s : JB_XFER_FAILED,
		.attempts = sqlite3_column_int(st, 5),
		.next_try = s == JB_XFER_RETRYING ? col_real(st, 6, 0) : 0,
		.created = sqlite3_column_double(st, 7),
		.started = col_real(st, 8, 0),
		.finished = col_real(st, 9, 0),
		.bytes_total = col_int(st, 10),
		.bytes_sent = col_int(st, 11),
		.seconds = col_real(st, 12, -1),
		.gbps = col_real(st, 13, -1),
		.files = col_int(st, 14),
	};
	snprintf(x->id, sizeof x->id, "%s", (const char *)sqlite3_column_text(st, 0));
	x->request = col_dup(st, 2, &oom);
	x->peer = col_dup(st, 3, &oom);
	x->error = col_dup(st, 15, &oom);
	x->owner = col_dup(st, 16, &oom);
	if (oom) {
		jb_transfer_free(x);
		return -ENOMEM;
	}
	for (int i = 0; x->state == JB_XFER_RUNNING && i < WORKERS; i++)
		if (t->act[i].used && !strcmp(t->act[i].id, x->id)) {
			x->active = true;
			x->done_bytes = t->act[i].bytes_done;
			x->done_total = t->act[i].bytes_total;
			x->done_seconds = t->act[i].seconds;
		}
	return 0;
}

static int trows(struct jb_transfers *t, const char *sql, const char *arg, struct jb_transfer **v, size_t *n,
		 struct jb_error *err)
{
	void *p;
	pthread_mutex_lock(&t->lock);
	int r = jb_store_select(t->db, sql, arg, sizeof **v, trow, t, drop_transfer, &p, n, err, "transfers");
	pthread_mutex_unlock(&t->lock);
	*v = p;
	return r;
}

int jb_transfers_get(struct jb_transfers *t, const char *id, struct jb_transfer *ret, struct jb_error *err)
{
	struct jb_transfer *v;
	size_t n;
	int r = trows(t, "SELECT " TCOLS " FROM transfer WHERE id=?", id, &v, &n, err);
	if (r < 0)
		return r;
	if (n)
		*ret = v[0];
	for (size_t i = 1; i < n; i++)
		jb_transfer_free(&v[i]);
	free(v);
	return n ? 0 : -ENOENT;
}

int jb_transfers_list(struct jb_transfers *t, struct jb_transfer **ret, size_t *n, struct jb_error *err)
{
	return trows(t, "SELECT " TCOLS " FROM transfer ORDER BY created DESC", NULL, ret, n, err);
}

void jb_transfers_counts(struct jb_transfers *t, unsigned counts[JB_XFER_NSTATES], uint64_t *bytes_done_running)
{
	sqlite3_stmt *st;
	memset(counts, 0, JB_XFER_NSTATES * sizeof *counts);
	*bytes_done_running = 0;
	pthread_mutex_lock(&t->lock);
	if (sqlite3_prepare_v2(t->db, "SELECT state, count(*) FROM transfer GROUP BY state", -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW)
			counts[sqlite3_column_int(st, 0) % JB_XFER_NSTATES] = (unsigned)sqlite3_column_int(st, 1);
		sqlite3_finalize(st);
	}
	for (int i = 0; i < WORKERS; i++)
		if (t->act[i].used)
			*bytes_done_running += t->act[i].bytes_done;
	pthread_mutex_unlock(&t->lock);
}

/* ---- running one ---- */

static void on_progress(const struct jb_progress *p, void *ud)
{
	struct active *a = ud;
	a->bytes_done = p->bytes_done;
	a->bytes_total = p->bytes_total;
	a->seconds = p->seconds;
}

/* Failures worth trying again: the peer or the path to it, not the request. */
static bool transient(int code)
{
	switch (code) {
	case ECONNREFUSED: case ECONNRESET: case ECONNABORTED: case ETIMEDOUT: case EHOSTUNREACH: case ENETUNREACH:
	case ENETDOWN: case EPIPE: case ESHUTDOWN: case EAGAIN: case ENOTCONN: case EIO: case ENOSPC: case EPROTO:
		return true;
	default:
		return false;
	}
}

static int run_one(struct jb_transfers *t, struct active *a, const char *op, json_t *req, struct jb_xfer_result *res,
		   struct jb_error *err)
{
	struct jb_remote rm;
	struct jb_client *cl = NULL;
	struct jb_xfer_opts o;
	jb_xfer_opts_init(&o);
	json_t *x;
	if ((x = json_object_get(req, "streams")))
		o.streams = (int)json_integer_value(x);
	if ((x = json_object_get(req, "rate"))) /* for the whole transfer: spread over the streams */
		o.tune.rate_bps = JB_MAX((uint64_t)json_integer_value(x) / (uint64_t)o.streams, 8000);
	o.recursive = json_is_true(json_object_get(req, "recursive"));
	json_t *via = json_object_get(req, "via");
	for (size_t i = 0; i < json_array_size(via) && o.nvia < JB_MAX_HOPS; i++)
		o.via[o.nvia++] = json_string_value(json_array_get(via, i)); /* req outlives the attempt */
	o.progress = on_progress;
	o.progress_ud = a;
	o.cancel = &a->cancel;
	const char *remote = json_string_value(json_object_get(req, !strcmp(op, "send") ? "dest" : "source"));
	int r = jb_remote_parse(t->c, remote, &rm, err);
	if (r == 0)
		r = jb_err(err, EINVAL, "%s is not PEER:PATH", remote);
	if (r < 0)
		return r;
	if (!strcmp(op, "send") && !via && !json_is_true(json_object_get(req, "direct")) && rm.peer)
		for (int i = 0; i < rm.peer->nvia && o.nvia < JB_MAX_HOPS; i++)
			o.via[o.nvia++] = rm.peer->via[i]; /* the destination's default route */
	char jd[4200];
	snprintf(jd, sizeof jd, "%s/fetch", t->state);
	r = jb_client_new(t->c, &cl, err);
	if (r == 0)
		r = jb_client_set_journal_dir(cl, jd);
	if (r == 0 && !strcmp(op, "send")) {
		json_t *srcs = json_object_get(req, "sources");
		size_t n = json_array_size(srcs);
		char **v = calloc(n + 1, sizeof *v);
		for (size_t i = 0; v && i < n; i++)
			if (asprintf(&v[i], "%s/%s", t->rootreal, json_string_value(json_array_get(srcs, i))) < 0)
				v[i] = NULL;
		r = v ? jb_client_push(cl, &rm, v, n, &o, res, err) : -ENOMEM;
		for (size_t i = 0; v && i < n; i++)
			free(v[i]);
		free(v);
	} else if (r == 0) {
		char dest[JB_PATH_MAX + 256];
		snprintf(dest, sizeof dest, "%s/%s", t->rootreal, json_string_value(json_object_get(req, "dest")));
		r = jb_client_pull(cl, &rm, dest, &o, res, err);
	}
	jb_client_free(cl);
	jb_remote_free(&rm);
	return r;
}

/* An attempt's end, written until the site database takes it (t->lock
 * held; waits a second between tries).  Should jumbod stop first, the
 * transfer is still "running" in the database, and the next start resumes
 * it from its verified blocks, which is what it would do anyway. */
#define UNTIL_TAKEN(t, write)                                                                                       \
	for (int tries_ = 0; (write) < 0 && !(t)->stop; tries_++) {                                                  \
		if (tries_ == 0)                                                                                     \
			jb_log(JB_LOG_WARN, "transfer %s: its end is not recorded; written again every second", id); \
		struct timespec until_;                                                                              \
		clock_gettime(CLOCK_REALTIME, &until_);                                                              \
		until_.tv_sec += 1;                                                                                  \
		pthread_cond_timedwait(&(t)->wake, &(t)->lock, &until_);                                             \
	}

static void *worker(void *arg)
{
	struct jb_transfers *t = ((void **)arg)[0];
	struct active *a = ((void **)arg)[1];
	free(arg);
	for (;;) {
		pthread_mutex_lock(&t->lock);
		char id[JB_JOB_ID_LEN + 1] = "", op[8] = "";
		json_t *req = NULL;
		int attempts = 0;
		while (!t->stop) {
			sqlite3_stmt *st;
			double now = jb_wall(), soonest = now + 5;
			if (sqlite3_prepare_v2(t->db,
					       "SELECT id, op, request, attempts, next_try FROM transfer WHERE state IN (0, 2) "
					       "ORDER BY next_try, created",
					       -1, &st, NULL) == SQLITE_OK) {
				while (sqlite3_step(st) == SQLITE_ROW) {
					double nt = sqlite3_column_double(st, 4);
					if (nt > now) {
						soonest = nt < soonest ? nt : soonest;
						continue;
					}
					snprintf(id, sizeof id, "%s", sqlite3_column_text(st, 0));
					snprintf(op, sizeof op, "%s", sqlite3_column_text(st, 1));
					req = json_loads((const char *)sqlite3_column_text(st, 2), 0, NULL);
					attempts = sqlite3_column_int(st, 3);
					break;
				}
				sqlite3_finalize(st);
			}
			if (id[0])
				break;
			struct timespec until = {.tv_sec = (time_t)soonest,
						 .tv_nsec = (long)((soonest - (double)(time_t)soonest) * 1e9)};
			pthread_cond_timedwait(&t->wake, &t->lock, &until);
		}
		if (t->stop) {
			pthread_mutex_unlock(&t->lock);
			json_decref(req);
			return NULL;
		}
		sched_exec(t->db, NULL, "UPDATE transfer SET state=?, attempts=attempts+1, started=COALESCE(started, ?), error=NULL WHERE id=?",
		      "ids", (int64_t)JB_XFER_RUNNING, jb_wall(), id);
		memset(a, 0, sizeof *a);
		snprintf(a->id, sizeof a->id, "%s", id);
		a->used = true;
		pthread_mutex_unlock(&t->lock);

		jb_log(JB_LOG_INFO, "transfer %s: %s, attempt %d", id, op, attempts + 1);
		struct jb_xfer_result res = {0};
		struct jb_error err = {0};
		int r = run_one(t, a, op, req, &res, &err);
		json_decref(req);

		pthread_mutex_lock(&t->lock);
		sqlite3_stmt *st;
		bool cancel = a->cancel;
		if (!cancel && sqlite3_prepare_v2(t->db, "SELECT cancel FROM transfer WHERE id=?", -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
			cancel = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
			sqlite3_finalize(st);
		}
		if (r == 0) {
			UNTIL_TAKEN(t, sched_exec(t->db, NULL, "UPDATE transfer SET state=?, finished=?, bytes_total=?, bytes_sent=?, "
						     "seconds=?, gbps=?, files=? WHERE id=?",
						  "idiiddis", (int64_t)JB_XFER_DONE, jb_wall(), (int64_t)res.bytes_total,
						  (int64_t)res.bytes_sent, res.seconds,
						  res.seconds > 0 ? res.bytes_sent * 8.0 / res.seconds / 1e9 : 0.0, (int64_t)res.files, id));
			jb_log(JB_LOG_INFO, "transfer %s: done, %llu bytes moved in %.2f s", id,
			       (unsigned long long)res.bytes_sent, res.seconds);
		} else if (t->stop) {
			/* jumbod is stopping: this goes on at its next start */
			sched_exec(t->db, NULL, "UPDATE transfer SET state=?, next_try=?, error=? WHERE id=?", "idss", (int64_t)JB_XFER_RETRYING,
			      jb_wall(), "jumbod stopped during the transfer; resuming", id);
		} else if (cancel) {
			UNTIL_TAKEN(t, sched_exec(t->db, NULL, "UPDATE transfer SET state=?, finished=?, error=? WHERE id=?", "idss",
						  (int64_t)JB_XFER_CANCELLED, jb_wall(), "cancelled", id));
			jb_log(JB_LOG_INFO, "transfer %s: cancelled", id);
		} else if (transient(err.code ? err.code : -r) && attempts + 1 < MAX_ATTEMPTS) {
			double wait = t->backoff;
			for (int i = 0; i < attempts && wait < MAX_BACKOFF; i++)
				wait *= 2;
			wait = wait > MAX_BACKOFF ? MAX_BACKOFF : wait;
			UNTIL_TAKEN(t, sched_exec(t->db, NULL, "UPDATE transfer SET state=?, next_try=?, error=? WHERE id=?", "idss",
						  (int64_t)JB_XFER_RETRYING, jb_wall() + wait, err.msg, id));
			jb_log(JB_LOG_WARN, "transfer %s: %s; trying again in %.0f s", id, err.msg, wait);
		} else {
			UNTIL_TAKEN(t, sched_exec(t->db, NULL, "UPDATE transfer SET state=?, finished=?, error=? WHERE id=?", "idss",
						  (int64_t)JB_XFER_FAILED, jb_wall(), err.msg[0] ? err.msg : strerror(-r), id));
			jb_log(JB_LOG_WARN, "transfer %s: failed: %s", id, err.msg);
		}
		a->used = false;
		pthread_mutex_unlock(&t->lock);
		jb_xfer_result_free(&res);
	}
}

/* ---- submission ---- */

/* A path below the data root, given relative to it or as an absolute path
 * inside it: relative, cleaned, and (for sources) existing beneath it. */
static int below_root(struct jb_transfers *t, const char *p, bool must_exist, char **ret, struct jb_error *err)
{
	size_t rl = strlen(t->rootreal);
	const char *rel = p;
	if (p[0] == '/') {
		if (strncmp(p, t->rootreal, rl) || (p[rl] && p[rl] != '/'))
			return jb_err(err, EPERM, "%s is outside the data root %s (jumbod sends only from there)", p,
				      t->rootreal);
		rel = p + rl;
	}
	char *clean = NULL;
	int r = jb_path_clean(rel, &clean, err);
	if (r < 0)
		return r;
	if (must_exist) {
		int root = open(t->rootreal, O_PATH | O_DIRECTORY | O_CLOEXEC);
		int fd = root < 0 ? -errno : jb_open_beneath(root, clean, O_PATH, 0);
		if (root >= 0)
			close(root);
		if (fd < 0) {
			r = jb_err(err, -fd == EXDEV || -fd == ELOOP ? EPERM : -fd, "%s: %s", p,
				   -fd == EXDEV || -fd == ELOOP ? "outside the data root" : strerror(-fd));
			free(clean);
			return r;
		}
		close(fd);
	}
	*ret = clean;
	return 0;
}

int jb_transfers_submit(struct jb_transfers *t, json_t *req, const char *owner, char id[JB_JOB_ID_LEN + 1],
			struct jb_error *err)
{
	if (!json_is_object(req))
		return jb_err(err, EINVAL, "a transfer is a JSON object");
	const char *key;
	json_t *v;
	json_object_foreach (req, key, v)
		if (strcmp(key, "op") && strcmp(key, "sources") && strcmp(key, "source") && strcmp(key, "dest") &&
		    strcmp(key, "streams") && strcmp(key, "rate") && strcmp(key, "recursive") && strcmp(key, "via") &&
		    strcmp(key, "direct"))
			return jb_err(err, EINVAL, "unknown field \"%s\"", key);
	const char *op = json_string_value(json_object_get(req, "op"));
	if (!op || (strcmp(op, "send") && strcmp(op, "get")))
		return jb_err(err, EINVAL, "\"op\" is \"send\" or \"get\"");
	json_t *x;
	if ((x = json_object_get(req, "streams")) &&
	    (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > 64))
		return jb_err(err, EINVAL, "\"streams\" is 1 to 64");
	if ((x = json_object_get(req, "rate")) && (!json_is_integer(x) || json_integer_value(x) < 0))
		return jb_err(err, EINVAL, "\"rate\" is bits per second");
	json_t *clean = json_object();
	json_object_set_new(clean, "op", json_string(op));
	if ((x = json_object_get(req, "streams")))
		json_object_set(clean, "streams", x);
	if ((x = json_object_get(req, "rate")))
		json_object_set(clean, "rate", x);
	if (json_is_true(json_object_get(req, "recursive")))
		json_object_set_new(clean, "recursive", json_true());
	/* through relays (a send): each a peer of this site, up to JB_MAX_HOPS;
	 * "direct" not through the destination's [peer] via */
	if ((x = json_object_get(req, "via"))) {
		size_t i;
		json_t *h;
		if (strcmp(op, "send") || !json_is_array(x) || !json_array_size(x) || json_array_size(x) > JB_MAX_HOPS ||
		    json_object_get(req, "direct")) {
			json_decref(clean);
			return jb_err(err, EINVAL, "\"via\" is an array of 1 to %d relay peers, for a send without \"direct\"",
				      JB_MAX_HOPS);
		}
		json_array_foreach (x, i, h)
			if (!json_is_string(h) || !jb_config_peer(t->c, json_string_value(h))) {
				json_decref(clean);
				return jb_err(err, EINVAL, "\"via\": %s is not a [peer] of this site",
					      json_is_string(h) ? json_string_value(h) : "(not a string)");
			}
		json_object_set(clean, "via", x);
	} else if (json_is_true(json_object_get(req, "direct"))) {
		json_object_set_new(clean, "direct", json_true());
	}
	const char *remote = json_string_value(json_object_get(req, !strcmp(op, "send") ? "dest" : "source"));
	struct jb_remote rm;
	int r = remote ? jb_remote_parse(t->c, remote, &rm, err) : jb_err(err, EINVAL, "\"%s\" is missing",
									  !strcmp(op, "send") ? "dest" : "source");
	if (r == 0)
		r = jb_err(err, EINVAL, "%s is not PEER:PATH", remote);
	if (r < 0) {
		json_decref(clean);
		return r;
	}
	char peer[128];
	snprintf(peer, sizeof peer, "%s", rm.peer ? rm.peer->name : rm.address);
	if (!rm.peer) {
		jb_remote_free(&rm);
		json_decref(clean);
		return jb_err(err, EINVAL, "%s: jumbod transfers go to configured peers (PEER:PATH)", remote);
	}
	jb_remote_free(&rm);
	json_object_set_new(clean, !strcmp(op, "send") ? "dest" : "source", json_string(remote));
	if (!strcmp(op, "send")) {
		json_t *srcs = json_object_get(req, "sources"), *out = json_array();
		if (!json_is_array(srcs) || !json_array_size(srcs) || json_array_size(srcs) > 4096) {
			json_decref(out);
			json_decref(clean);
			return jb_err(err, EINVAL, "\"sources\" is an array of 1 to 4096 paths below the data root");
		}
		size_t i;
		json_array_foreach (srcs, i, x) {
			char *c = NULL;
			if (!json_is_string(x) || (r = below_root(t, json_string_value(x), true, &c, err)) < 0) {
				json_decref(out);
				json_decref(clean);
				return r < 0 ? r : jb_err(err, EINVAL, "\"sources\" are paths");
			}
			json_array_append_new(out, json_string(c));
			free(c);
		}
		json_object_set_new(clean, "sources", out);
	} else {
		const char *dest = json_string_value(json_object_get(req, "dest"));
		char *c = NULL;
		if (!dest || (r = below_root(t, dest, false, &c, err)) < 0) {
			json_decref(clean);
			return dest ? r : jb_err(err, EINVAL, "\"dest\" is a path below the data root");
		}
		json_object_set_new(clean, "dest", json_string(c));
		free(c);
	}
	uint8_t rnd[JB_JOB_ID_LEN / 2];
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
		json_decref(clean);
		return jb_err(err, EIO, "no randomness for an id");
	}
	jb_hex(rnd, sizeof rnd, id);
	char *text = json_dumps(clean, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(clean);
	if (!text)
		return jb_oom(err);
	pthread_mutex_lock(&t->lock);
	double now = jb_wall();
	r = sched_exec(t->db, err,
		       "INSERT INTO transfer(id, op, request, peer, state, next_try, created, owner) VALUES(?,?,?,?,?,?,?,?)",
		       "ssssidds", id, op, text, peer, (int64_t)JB_XFER_QUEUED, now, now, owner);
	if (r == 0)
		pthread_cond_broadcast(&t->wake);
	pthread_mutex_unlock(&t->lock);
	free(text);
	if (r < 0)
		return err ? jb_err_prefix(err, "cannot record the transfer") : r;
	jb_log(JB_LOG_INFO, "transfer %s: queued (%s to %s)", id, op, peer);
	return 0;
}

int jb_transfers_cancel(struct jb_transfers *t, const char *id, struct jb_error *err)
{
	struct jb_transfer o;
	int r = jb_transfers_get(t, id, &o, err);
	if (r == -ENOENT)
		return jb_err(err, ENOENT, "no transfer %s", id);
	if (r < 0)
		return r;
	enum jb_transfer_state s = o.state;
	jb_transfer_free(&o);
	pthread_mutex_lock(&t->lock);
	if (s == JB_XFER_QUEUED || s == JB_XFER_RETRYING) {
		r = sched_exec(t->db, err, "UPDATE transfer SET state=?, finished=?, error=?, cancel=1 WHERE id=?", "idss",
			       (int64_t)JB_XFER_CANCELLED, jb_wall(), "cancelled", id);
	} else if (s == JB_XFER_RUNNING) {
		r = sched_exec(t->db, err, "UPDATE transfer SET cancel=1 WHERE id=?", "s", id);
		for (int i = 0; r == 0 && i < WORKERS; i++)
			if (t->act[i].used && !strcmp(t->act[i].id, id))
				t->act[i].cancel = 1;
	} else {
		r = jb_err(err, EALREADY, "transfer %s has ended (%s)", id, tnames[s]);
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

int jb_transfers_open(const struct jb_config *c, double backoff, struct jb_transfers **ret, struct jb_error *err)
{
	struct jb_transfers *t = calloc(1, sizeof *t);
	if (!t)
		return jb_oom(err);
	t->c = c;
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_cond_init(&t->wake, &ca);
	pthread_condattr_destroy(&ca);
	t->backoff = backoff > 0 ? backoff : 2; /* the first wait; doubles, at most 5 minutes */
	int r = 0;
	if (!(t->rootreal = realpath(c->root, NULL)) || !(t->state = strdup(c->state))) {
		r = jb_err(err, errno ? errno : ENOMEM, "transfers: %s", strerror(errno ? errno : ENOMEM));
		goto fail;
	}
	if ((r = jb_store_open(c->state, &t->db, err)) < 0)
		goto fail;
	/* what was running when jumbod stopped goes on, from its verified blocks */
	sched_exec(t->db, NULL, "UPDATE transfer SET state=?, next_try=?, error=? WHERE state=?", "idsi", (int64_t)JB_XFER_RETRYING, jb_wall(),
	      "jumbod stopped during the transfer; resuming", (int64_t)JB_XFER_RUNNING);
	for (int i = 0; i < WORKERS; i++) {
		void **arg = malloc(2 * sizeof *arg);
		if (!arg) {
			r = -ENOMEM;
			goto fail;
		}
		arg[0] = t;
		arg[1] = &t->act[i];
		if (pthread_create(&t->workers[i], NULL, worker, arg) != 0) {
			free(arg);
			r = jb_err(err, EAGAIN, "transfers: cannot start a worker");
			t->stop = true;
			for (int k = 0; k < i; k++)
				pthread_join(t->workers[k], NULL);
			goto fail;
		}
	}
	*ret = t;
	return 0;
fail:
	sqlite3_close(t->db);
	free(t->rootreal);
	free(t->state);
	free(t);
	return r;
}

void jb_transfers_close(struct jb_transfers *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	/* running transfers end now; they resume at the next start */
	for (int i = 0; i < WORKERS; i++)
		if (t->act[i].used)
			t->act[i].cancel = 1;
	pthread_cond_broadcast(&t->wake);
	pthread_mutex_unlock(&t->lock);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(t->workers[i], NULL);
	sqlite3_close(t->db);
	free(t->rootreal);
	free(t->state);
	pthread_cond_destroy(&t->wake);
	pthread_mutex_destroy(&t->lock);
	free(t);
}
