/* The catalog: datasets, current and pending rows, settling after a crash,
 * job inputs and outputs. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jumbo/store.h"
#include "tap.h"

static int64_t mtime_of(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec : 0;
}

int main(void)
{
	char dir[] = "/tmp/jb-test-store-XXXXXX", db[256], f[256];
	if (!mkdtemp(dir))
		return 1;
	snprintf(db, sizeof db, "%s/catalog.db", dir);
	struct jb_catalog *c = NULL;
	struct jb_error e = {0};
	ok(jb_catalog_open(db, &c, &e) == 0, "a catalog opens (%s)", e.msg);
	if (!c)
		return tap_done();
	struct jb_dataset_in d = {.path = "run7/a.h5", .size = 3, .digest = "xxh3t:01", .origin = "kisti",
				  .source = "transfer", .source_id = "s1"};
	ok(jb_catalog_add(c, &d, &e) == 0, "a dataset is added");
	d.digest = "xxh3t:02";
	ok(jb_catalog_add(c, &d, &e) == 0, "the same path again");
	json_t *j = jb_catalog_get(c, "run7/a.h5");
	is_str(json_string_value(json_object_get(j, "digest")), "xxh3t:02", "the newest is current");
	json_decref(j);
	j = jb_catalog_find(c, "run7/a.h5", "xxh3t:01");
	ok(j && !json_is_true(json_object_get(j, "current")), "the older one is kept, not current");
	json_decref(j);
	j = jb_catalog_list(c, "run7");
	is_int((long long)json_array_size(j), 1, "a directory lists its current datasets once");
	json_decref(j);
	j = jb_catalog_list(c, "run");
	is_int((long long)json_array_size(j), 0, "a prefix is a directory, not a string prefix");
	json_decref(j);

	/* pending: invisible until settled */
	d.digest = "xxh3t:03";
	d.pending = true;
	ok(jb_catalog_add(c, &d, &e) == 0, "a pending dataset is added");
	j = jb_catalog_get(c, "run7/a.h5");
	is_str(json_string_value(json_object_get(j, "digest")), "xxh3t:02", "it does not replace the current one yet");
	json_decref(j);
	ok(jb_catalog_settle(c, "run7/a.h5", "xxh3t:03", true, &e) == 0, "settled ok");
	j = jb_catalog_get(c, "run7/a.h5");
	is_str(json_string_value(json_object_get(j, "digest")), "xxh3t:03", "then it is current");
	json_decref(j);
	d.digest = "xxh3t:04";
	jb_catalog_add(c, &d, &e);
	ok(jb_catalog_settle(c, "run7/a.h5", "xxh3t:04", false, &e) == 0, "a pending one settled not ok");
	ok(!jb_catalog_find(c, "run7/a.h5", "xxh3t:04"), "is gone");

	/* after a crash: the file is there (its rename happened) or not */
	mkdir(strcat(strcpy(f, dir), "/root"), 0755);
	snprintf(f, sizeof f, "%s/root/b.txt", dir);
	FILE *fp = fopen(f, "w");
	fputs("abc", fp);
	fclose(fp);
	struct jb_dataset_in p1 = {.path = "b.txt", .size = 3, .digest = "xxh3t:0b", .origin = "x", .source = "transfer",
				   .mtime_ns = mtime_of(f), .pending = true};
	struct jb_dataset_in p2 = {.path = "never.txt", .size = 3, .digest = "xxh3t:0c", .origin = "x",
				   .source = "transfer", .mtime_ns = 1, .pending = true};
	jb_catalog_add(c, &p1, &e);
	jb_catalog_add(c, &p2, &e);
	snprintf(f, sizeof f, "%s/root", dir);
	is_int(jb_catalog_reconcile(c, f), 1, "reconcile settles the one whose file is there");
	j = jb_catalog_get(c, "b.txt");
	ok(j != NULL, "it is current");
	json_decref(j);
	ok(!jb_catalog_find(c, "never.txt", "xxh3t:0c"), "the one whose file never got its name is dropped");
	is_int(jb_catalog_reconcile(c, f), 0, "nothing is left pending");

	/* jobs */
	ok(jb_catalog_add_input(c, "job1", "b.txt", "xxh3t:0b", &e) == 0, "a job input is recorded");
	j = jb_catalog_inputs(c, "job1");
	is_str(json_string_value(json_object_get(json_array_get(j, 0), "digest")), "xxh3t:0b", "and read back");
	json_decref(j);
	struct jb_dataset_in o = {.path = "results/job1/out.txt", .size = 1, .digest = "xxh3t:0d", .sha256 = "sha256:aa",
				  .origin = "here", .source = "job", .source_id = "job1"};
	jb_catalog_add(c, &o, &e);
	j = jb_catalog_outputs(c, "job1");
	is_str(json_string_value(json_object_get(json_array_get(j, 0), "job")), "job1", "a job's outputs name it");
	json_decref(j);
	jb_catalog_close(c);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	return tap_done();
}
