/* What jumbod's expirer costs on a large data root: CPU-seconds and wall
 * time of one sweep (expire_once, lib/xfer/expire.c: the walk of the data
 * root without links, each directory read, each partial file looked at, and
 * both journals' records) over a tree made beforehand (tests/bench/mktree),
 * with K stale partial files planted in it.
 *
 *   expirybench ROOT STATE IDENTITY [REPS]     prints one JSON object
 *
 * ROOT is the tree, STATE an empty directory, IDENTITY a jumbo keygen
 * directory.  The first sweep removes the planted files; the others find
 * nothing to do, which is what an hourly sweep of a quiet site costs. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../../lib/xfer/server-internal.h"

static double cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: expirybench ROOT STATE IDENTITY [REPS]\n");
		return 2;
	}
	int reps = argc > 4 ? atoi(argv[4]) : 3;
	if (reps < 1 || reps > 20)
		reps = 3;
	char text[16384];
	snprintf(text, sizeof text,
		 "[site]\nname = bench\nidentity = %s\nroot = %s\nstate = %s\nlisten = 127.0.0.1:0\n"
		 "max_partial_age = 1s\n",
		 argv[3], argv[1], argv[2]);
	struct jb_config *c = NULL;
	struct jb_error err = {0};
	struct jb_server *srv = NULL;
	if (jb_config_parse(text, "bench.conf", &c, &err) < 0 || jb_server_new(c, &srv, &err) < 0) {
		fprintf(stderr, "expirybench: %s\n", err.msg);
		return 1;
	}
	jb_log_set(NULL, NULL, JB_LOG_ERROR);
	printf("{\"sweeps\": [");
	for (int i = 0; i < reps; i++) {
		uint64_t before = atomic_load(&srv->expired_partials);
		double c0 = cpu(), w0 = jb_now();
		expire_once(srv);
		printf("%s{\"cpu_s\": %.3f, \"wall_s\": %.3f, \"partials_removed\": %llu}", i ? ", " : "", cpu() - c0,
		       jb_now() - w0, (unsigned long long)(atomic_load(&srv->expired_partials) - before));
	}
	printf("]}\n");
	jb_server_free(srv);
	jb_config_free(c);
	return 0;
}
