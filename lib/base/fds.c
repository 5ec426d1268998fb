/* The process's descriptors (RLIMIT_NOFILE), shared out.  Transfers open
 * descriptors by the dozen per session (streams, files, directories); they
 * take them from this budget first, so that a tree of any size, or many
 * sessions at once, get fewer streams or a clear refusal instead of EMFILE
 * half way.  What the rest of the program opens (databases, listeners, the
 * API's connections) is the reserve set aside by jb_fds_init. */
#include <stdatomic.h>
#include <sys/resource.h>

#include "jumbo/base.h"

static atomic_int avail;
static atomic_bool ready;

static int limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 20))
		return 1 << 20;
	return (int)rl.rlim_cur;
}

void jb_fds_init(int reserve)
{
	int n = limit() - reserve;
	atomic_store(&avail, n > 0 ? n : 0);
	atomic_store(&ready, true);
}

int jb_fds_take(int want, int min)
{
	if (!atomic_load(&ready))
		jb_fds_init(JB_FDS_RESERVE);
	int cur = atomic_load(&avail);
	for (;;) {
		int n = JB_MIN(want, cur);
		if (n < min || n <= 0)
			return 0;
		if (atomic_compare_exchange_weak(&avail, &cur, cur - n))
			return n;
	}
}

void jb_fds_give(int n)
{
	if (n > 0)
		atomic_fetch_add(&avail, n);
}

int jb_fds_left(void)
{
	if (!atomic_load(&ready))
		jb_fds_init(JB_FDS_RESERVE);
	return atomic_load(&avail);
}

int jb_fds_limit(void) { return limit(); }
