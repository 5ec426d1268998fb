/* The host's side of the jobs' user namespace ([site] subuid): the
 * directories its root passes through on the way to a job's bundle and
 * mounts, and the owners of a workspace shifted to the jobs' ids. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs-internal.h"

/* The jobs' root (host uid and gid id0) must pass through every directory
 * above PATH (and PATH itself when self): crun sets up a job's mounts as
 * that user.  The first that does not let it, by name and mode. */
int jobs_reach(const struct jb_jobs *j, const char *path, bool self, struct jb_error *err)
{
	_cleanup_free_ char *real = realpath(path, NULL);
	if (!real)
		return jb_err(err, errno, "jobs: %s: %s", path, strerror(errno));
	for (char *e = real + 1;; e++) {
		bool last = !*e;
		if (*e != '/' && !last)
			continue;
		if (last && !self)
			break;
		char c = *e;
		*e = 0;
		struct stat st;
		bool ok = stat(real, &st) == 0 &&
			  ((st.st_mode & S_IXOTH) || (st.st_gid == j->id0 && (st.st_mode & S_IXGRP)) ||
			   (st.st_uid == j->id0 && (st.st_mode & S_IXUSR)));
		if (!ok)
			return jb_err(err, EACCES,
				      "jobs: their root (host uid %u, [site] subuid) cannot pass through %s (mode %04o): "
				      "chmod o+x it, or set [site] subuid = off",
				      j->id0, real, (unsigned)(st.st_mode & 07777));
		*e = c;
		if (last)
			break;
	}
	return 0;
}

int jobs_pass_through(const struct jb_jobs *j, const char *path, struct jb_error *err)
{
	if ((j->ids && chown(path, (uid_t)-1, j->id0) < 0) || chmod(path, j->ids ? 0710 : 0700) < 0)
		return jb_err(err, errno, "%s: %s", path, strerror(errno));
	return 0;
}

static __thread struct {
	uint32_t from0, to0, n;
	int err;
} shift;

static int shift_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)type;
	(void)ftw;
	uid_t u = st->st_uid;
	gid_t g = st->st_gid;
	if (u - shift.from0 < shift.n)
		u = u - shift.from0 + shift.to0;
	if (g - shift.from0 < shift.n)
		g = g - shift.from0 + shift.to0;
	if ((u != st->st_uid || g != st->st_gid) && lchown(path, u, g) < 0) {
		shift.err = errno;
		return 1;
	}
	return 0;
}

int jobs_shift_ids(const char *dir, uint32_t from0, uint32_t to0, uint32_t n, struct jb_error *err)
{
	shift.from0 = from0;
	shift.to0 = to0;
	shift.n = n;
	shift.err = 0;
	int r = nftw(dir, shift_one, 16, FTW_PHYS | FTW_MOUNT);
	if (r != 0)
		return jb_err(err, shift.err ? shift.err : errno, "%s: giving its files to the jobs' ids: %s", dir,
			      strerror(shift.err ? shift.err : errno));
	jb_log(JB_LOG_INFO, "%s: its files' ids %u.. are now %u..", dir, from0, to0);
	return 0;
}
