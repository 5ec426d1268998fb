#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "jumbo/base.h"

int jb_path_clean(const char *in, char **ret, struct jb_error *err)
{
	size_t n = strlen(in);
	if (n >= JB_PATH_MAX)
		return jb_err(err, ENAMETOOLONG, "path too long (%zu bytes, limit %d)", n, JB_PATH_MAX - 1);
	char *out = malloc(n + 1);
	if (!out)
		return jb_oom(err);
	size_t o = 0;
	const char *p = in;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == 1 && p[0] == '.') {
			p += len;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			free(out);
			return jb_err(err, EACCES, "%s: path escapes the data root ('..' component)", in);
		}
		if (len > JB_NAME_MAX) {
			free(out);
			return jb_err(err, ENAMETOOLONG, "%s: name component too long", in);
		}
		if (o)
			out[o++] = '/';
		memcpy(out + o, p, len);
		o += len;
		p += len;
	}
	out[o] = 0;
	*ret = out;
	return 0;
}

const char *jb_path_under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);
	if (!n)
		return path;
	if (strncmp(path, prefix, n))
		return NULL;
	return path[n] == '/' ? path + n + 1 : path[n] ? NULL : path + n;
}

static int open2(int dirfd, const char *rel, int flags, mode_t mode, uint64_t resolve)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
		.resolve = resolve,
	};
	if (!*rel)
		rel = ".";
	int fd;
	do
		fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

int jb_open_beneath(int dirfd, const char *rel, int flags, mode_t mode)
{
	return open2(dirfd, rel, flags, mode, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
}

#define NO_LINKS (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

int jb_open_dir_nofollow(int dirfd, const char *rel, mode_t mkmode)
{
	if (!mkmode)
		return open2(dirfd, rel, O_PATH | O_DIRECTORY, 0, NO_LINKS);
	char buf[JB_PATH_MAX];
	size_t n = strlen(rel);
	if (n >= sizeof buf)
		return -ENAMETOOLONG;
	memcpy(buf, rel, n + 1);
	int cur = open2(dirfd, "", O_PATH | O_DIRECTORY, 0, NO_LINKS);
	for (char *p = buf, *e; cur >= 0 && *p; p = e ? e + 1 : p + strlen(p)) {
		if ((e = strchr(p, '/')))
			*e = 0;
		if (!*p)
			continue;
		/* a link of that name is there already (EEXIST): the open refuses it */
		int r = mkdirat(cur, p, mkmode) < 0 && errno != EEXIST ? -errno : 0;
		int next = r < 0 ? r : open2(cur, p, O_PATH | O_DIRECTORY, 0, NO_LINKS);
		close(cur);
		cur = next;
	}
	return cur;
}

int jb_mkdirs_beneath(int dirfd, const char *rel, mode_t mode)
{
	char buf[JB_PATH_MAX];
	size_t n = strlen(rel);
	if (n >= sizeof buf)
		return -ENAMETOOLONG;
	memcpy(buf, rel, n + 1);
	int cur = dup(dirfd);
	if (cur < 0)
		return -errno;
	char *p = buf;
	while (*p) {
		char *e = strchr(p, '/');
		if (e)
			*e = 0;
		if (*p) {
			if (mkdirat(cur, p, mode) < 0 && errno != EEXIST) {
				int r = -errno;
				close(cur);
				return r;
			}
			int next = jb_open_beneath(cur, p, O_PATH | O_DIRECTORY, 0);
			close(cur);
			if (next < 0)
				return next;
			cur = next;
		}
		if (!e)
			break;
		p = e + 1;
	}
	return cur; /* an O_PATH descriptor of the last directory */
}

int jb_remove_tree(int dfd, const char *name)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			r = jb_remove_tree(dirfd(d), de->d_name);
	closedir(d);
	if (r == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		r = -errno;
	return r;
}

int jb_private_dir(const char *path, struct jb_error *err)
{
	struct stat st;
	if (mkdir(path, 0700) == 0)
		return 0;
	if (errno != EEXIST || stat(path, &st) < 0)
		return jb_err(err, errno, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return jb_err(err, ENOTDIR, "%s: not a directory", path);
	if ((st.st_mode & 066) && chmod(path, st.st_mode & 07711) < 0)
		return jb_err(err, errno, "%s: cannot make it private: %s", path, strerror(errno));
	return 0;
}

int jb_private_file(const char *path, struct jb_error *err)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno != ENOENT)
			return jb_err(err, errno, "%s: %s", path, strerror(errno));
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 && errno != EEXIST)
			return jb_err(err, errno, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return jb_err(err, EINVAL, "%s: not a regular file", path);
	if ((st.st_mode & 07777) != 0600 && chmod(path, 0600) < 0)
		return jb_err(err, errno, "%s: cannot make it 0600: %s", path, strerror(errno));
	return 0;
}
