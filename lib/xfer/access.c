/* What a peer may do at this site: read (PULL, LIST) at or below its read
 * prefixes, write (PUSH) at or below its write prefixes (jumbo.conf(5),
 * [peer NAME] read and write).  A request's path is checked against the
 * prefixes by whole components after jb_path_clean, and the session is
 * then confined to the directory of the prefix that holds it: that
 * directory is opened with no symbolic link on its way from the data root,
 * and everything the session opens below it is resolved beneath it, so a
 * link inside a prefix cannot lead out of it. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "xfer-internal.h"

/* "(read = a b)" or "(no read = in its [peer P] section)" */
static void prefixes_text(const struct jb_peer *peer, enum jb_access a, char *buf, size_t len)
{
	const char *key = a == JB_WRITE ? "write" : "read";
	char *const *v = a == JB_WRITE ? peer->write : peer->read;
	size_t n = a == JB_WRITE ? peer->nwrite : peer->nread;
	if (!n) {
		snprintf(buf, len, "(no %s = in its [peer %s] section)", key, peer->name);
		return;
	}
	size_t o = (size_t)snprintf(buf, len, "(%s =", key);
	for (size_t i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, " %s", *v[i] ? v[i] : ".");
	if (o < len)
		snprintf(buf + o, len - o, ")");
}

int access_scope(int rootfd, const struct jb_peer *peer, enum jb_access a, const char *path, int *ret_fd,
		 const char **ret_under, struct jb_error *err)
{
	const char *verb = a == JB_WRITE ? "write" : "read", *shown = *path ? path : "/";
	const char *under = jb_peer_prefix(peer, a, path);
	if (!under) {
		char list[640];
		prefixes_text(peer, a, list, sizeof list);
		return jb_err(err, EACCES, "peer %s may not %s '%s' %s", peer->name, verb, shown, list);
	}
	/* a push makes the prefix's directory when it is missing */
	int fd = jb_open_dir_nofollow(rootfd, under, a == JB_WRITE ? 0755 : 0);
	if (fd == -ENOENT)
		return jb_err(err, ENOENT, "%s: No such file or directory", shown);
	if (fd == -ELOOP || fd == -ENOTDIR || fd == -EXDEV)
		return jb_err(err, EACCES, "peer %s may not %s '%s': its %s prefix %s is not a directory of the data root "
			      "(or has a symbolic link on its way, which is not followed)", peer->name, verb, shown, verb,
			      under);
	if (fd < 0)
		return jb_err(err, -fd, "%s: %s", under, strerror(-fd));
	/* the rest, as far as it exists, must not lead out of the prefix: said
	 * here with the peer's name; the session's own opens are beneath fd
	 * all the same (a link changed in between fails them) */
	int t = jb_open_beneath(fd, jb_path_under(path, under), O_PATH, 0);
	if (t == -EXDEV || t == -ELOOP) {
		close(fd);
		return jb_err(err, EACCES, "peer %s may not %s '%s': the path escapes %s%s%s", peer->name, verb, shown,
			      *under ? "its prefix " : "", confinement(under), *under ? " (a symbolic link?)" : "");
	}
	if (t >= 0)
		close(t);
	*ret_fd = fd;
	*ret_under = under;
	return 0;
}

bool access_leads_to(const struct jb_peer *peer, const char *path)
{
	for (size_t i = 0; i < peer->nread; i++) {
		const char *rest = jb_path_under(peer->read[i], path);
		if (rest && *rest)
			return true;
	}
	return false;
}

/* the first component of each prefix below the listed directory */
struct way {
	const char *name;
	size_t len;
};

static int way_cmp(const void *a, const void *b)
{
	const struct way *x = a, *y = b;
	int c = memcmp(x->name, y->name, JB_MIN(x->len, y->len));
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The entries of the ways below path that are there: directories reached
 * without a symbolic link, as the prefixes themselves are. */
static uint32_t put_ways(struct jb_buf *b, int rootfd, const char *path, const struct way *w, size_t n,
			 struct jb_wire_entry *e)
{
	uint32_t count = 0;
	for (size_t i = 0; i < n; i++) {
		if (i && !way_cmp(&w[i - 1], &w[i]))
			continue;
		char full[JB_PATH_MAX + JB_NAME_MAX + 2];
		snprintf(full, sizeof full, "%s%s%.*s", path, *path ? "/" : "", (int)w[i].len, w[i].name);
		int fd = jb_open_dir_nofollow(rootfd, full, 0);
		struct stat st;
		bool there = fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
		if (fd >= 0)
			close(fd);
		if (!there)
			continue;
		*e = (struct jb_wire_entry){.type = JB_ENTRY_DIR, .mode = st.st_mode & 07777,
					    .mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec};
		snprintf(e->path, sizeof e->path, "%.*s", (int)w[i].len, w[i].name);
		jb_wire_put_entry(b, e);
		count++;
	}
	return count;
}

int access_list_ways(int rootfd, struct ctl *ctl, const struct jb_peer *peer, const char *path, const char *site,
		     struct jb_error *err)
{
	struct way w[JB_MAX_PREFIXES];
	size_t n = 0;
	for (size_t i = 0; i < peer->nread && n < JB_MAX_PREFIXES; i++) {
		const char *rest = jb_path_under(peer->read[i], path);
		if (rest && *rest)
			w[n++] = (struct way){rest, strcspn(rest, "/")};
	}
	qsort(w, n, sizeof *w, way_cmp);
	struct jb_wire_entry *e = malloc(sizeof *e);
	if (!e)
		return jb_oom(err);
	uint8_t z[32] = {0};
	struct jb_buf *b = &ctl->out;
	put_welcome(b, 0, 1, JB_WIRE_DEFAULT_BLOCK, z, z, site);
	size_t mark = jb_frame_begin(b, JB_MSG_FILES);
	jb_buf_u32(b, 0);
	size_t cpos = b->len;
	jb_buf_u32(b, 0);
	uint32_t count = put_ways(b, rootfd, path, w, n, e);
	free(e);
	if (!b->oom) {
		b->p[cpos] = (uint8_t)(count >> 24), b->p[cpos + 1] = (uint8_t)(count >> 16);
		b->p[cpos + 2] = (uint8_t)(count >> 8), b->p[cpos + 3] = (uint8_t)count;
	}
	jb_frame_end(b, mark);
	size_t m = jb_frame_begin(b, JB_MSG_FILES_END);
	jb_buf_u32(b, count);
	jb_buf_u64(b, 0);
	jb_frame_end(b, m);
	char shown[256];
	jb_log(JB_LOG_INFO, "%s: list %s: only the way to its read prefixes (%u entries)", peer->name,
	       jb_log_escape(*path ? path : "/", shown, sizeof shown), count);
	return ctl_flush(ctl, err);
}
