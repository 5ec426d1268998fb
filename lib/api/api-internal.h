/* Internal to lib/api. */
#pragma once
#include "jumbo/api.h"
#include "jumbo/sched.h"
#include "jumbo/xfer.h"

/* The text of GET /metrics (malloc'd), or NULL when out of memory;
 * t and j may be NULL (that service is off). */
char *api_metrics(struct jb_server *srv, struct jb_transfers *t, struct jb_jobs *j);
