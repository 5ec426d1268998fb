/* The jumbo CLI: shared declarations of its subcommands. */
#pragma once
#include <stdio.h>

#include "jumbo/config.h"
#include "jumbo/xfer.h"

#define EXIT_USAGE 2

struct cli {
	const char *config_path; /* --config */
	int verbose;
};

int cmd_keygen(struct cli *g, int argc, char **argv);
int cmd_fingerprint(struct cli *g, int argc, char **argv);
int cmd_send(struct cli *g, int argc, char **argv);
int cmd_get(struct cli *g, int argc, char **argv);
int cmd_ls(struct cli *g, int argc, char **argv);
int cmd_sum(struct cli *g, int argc, char **argv);
int cmd_image(struct cli *g, int argc, char **argv);
int cmd_run(struct cli *g, int argc, char **argv);
int cmd_jobs(struct cli *g, int argc, char **argv);
int cmd_logs(struct cli *g, int argc, char **argv);
int cmd_kill(struct cli *g, int argc, char **argv);
int cmd_datasets(struct cli *g, int argc, char **argv);
int cmd_provenance(struct cli *g, int argc, char **argv);
int cmd_rerun(struct cli *g, int argc, char **argv);
int cmd_token(struct cli *g, int argc, char **argv);
int cmd_transfers(struct cli *g, int argc, char **argv);
int cmd_wait(struct cli *g, int argc, char **argv);
int cmd_cancel(struct cli *g, int argc, char **argv);

/* cmd_run.c: the daemon's API (--api, $JUMBO_API, [site] api), and
 * following a job's output to its end (the exit status for jumbo) */
struct jb_api_client;
int cli_api(struct cli *g, const char *api, struct jb_api_client **ret);
int cli_follow(struct jb_api_client *c, const char *id, bool json, bool cancel_on_interrupt);
/* cmd_data.c: --api, --json, --help (--sha256 when sha_ok); 1 after --help,
 * -1 on a bad option (the usage printed) */
int cli_api_opts(int argc, char **argv, const char *usage, const char **api, bool *json, const char *extra);
/* POST BASE/ID/ACTION for each of ids; "cancelling ID" or the error. */
int cli_post_each(struct cli *g, const char *api, const char *verb, const char *base, const char *action, int n,
		  char **ids);

/* common.c */
/* The user's directory for the journal of pulls: JUMBO_STATE_DIR, else
 * $XDG_STATE_HOME/jumbo, else ~/.local/state/jumbo. */
const char *cli_journal_dir(char *out, size_t n);
int cli_load_config(struct cli *g, struct jb_config **ret);
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* progress.c */
struct progress_bar {
	const char *label;
	bool enabled;
	double last_draw;
};
void progress_draw(const struct jb_progress *p, void *ud);
void progress_finish(struct progress_bar *b);
