/* lib/sched without jobs running: the [backend NAME] sections each type
 * declares (jb_backends_check), refused with FILE:LINE. */
#include <stdio.h>
#include <string.h>

#include "jumbo/sched.h"
#include "tap.h"

static void backends(void)
{
	static const char head[] = "[site]\nname = a\nidentity = /x\n";
	static const struct {
		const char *text, *want; /* want NULL: accepted */
	} cases[] = {
		{"[backend b]\nuser = x\n", "b.conf:4: backend b needs a type (local, slurm, marathon or null)"},
		{"[backend b]\ntype = pbs\n", "b.conf:4: backend b: type is local, slurm, marathon or null, not 'pbs'"},
		{"[backend hpc]\ntype = slurm\nrest = http://127.0.0.1:6820\nfrom = x\n",
		 "b.conf:7: unknown key 'from' in [backend hpc] of type slurm"},
		{"[backend m]\ntype = marathon\nrest = http://x\n", "b.conf:6: unknown key 'rest' in [backend m] of type marathon"},
		{"[backend m]\ntype = marathon\nurl = http://127.0.0.1:8080\napp-prefix = /jumbo\n", NULL},
		{"[backend hpc]\ntype = slurm\nrest = http://127.0.0.1:6820\npartition = debug\njumbod = /usr/sbin/jumbod\n",
		 NULL},
		{"[backend n]\ntype = null\nseconds = 2\n", NULL},
		{"[backend n]\ntype = null\nurl = x\n", "b.conf:6: unknown key 'url' in [backend n] of type null"},
		{"[backend here]\ntype = local\nstate = /s\n", NULL},
	};
	for (size_t i = 0; i < JB_ARRAY_SIZE(cases); i++) {
		char text[512];
		snprintf(text, sizeof text, "%s%s", head, cases[i].text);
		struct jb_config *c = NULL;
		struct jb_error err = {0};
		int r = jb_config_parse(text, "b.conf", &c, &err);
		ok(r == 0, "backend case %zu parses (%s)", i, err.msg);
		if (r < 0)
			continue;
		r = jb_backends_check(c, &err);
		if (cases[i].want)
			ok(r == -EINVAL && strstr(err.msg, cases[i].want), "refused: %s", err.msg);
		else
			ok(r == 0, "backend case %zu accepted%s", i, err.msg);
		jb_config_free(c);
	}
}

int main(void)
{
	backends();
	return tap_done();
}
