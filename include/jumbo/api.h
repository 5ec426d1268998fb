/* jumbo api: the daemon's REST API (docs/api.md). */
#pragma once
#include "jumbo/config.h"
#include "jumbo/xfer.h"

struct jb_api;
JB_EXPORT int jb_api_start(const struct jb_config *c, struct jb_server *srv, struct jb_api **ret,
			   struct jb_error *err);
JB_EXPORT int jb_api_port(const struct jb_api *a);
JB_EXPORT void jb_api_stop(struct jb_api *a);
