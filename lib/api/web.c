/* The dashboard's files (web/: index.html, app.js, style.css), embedded at
 * build time by build-aux/embed.py and served without a token at / and
 * /ui/. */
#include <string.h>

#include "api-internal.h"

struct jb_web_asset {
	const char *path, *type;
	const unsigned char *data;
	size_t len;
};
extern const struct jb_web_asset jb_web_assets[];

/* true when url is one of the files, and *ret is the answer queued */
bool api_serve_asset(struct MHD_Connection *conn, const char *url, enum MHD_Result *ret)
{
	if (!strcmp(url, "/") || !strcmp(url, "/ui") || !strcmp(url, "/ui/"))
		url = "/ui/index.html";
	for (const struct jb_web_asset *w = jb_web_assets; w->path; w++) {
		if (strcmp(w->path, url))
			continue;
		struct MHD_Response *r =
			MHD_create_response_from_buffer(w->len, (void *)w->data, MHD_RESPMEM_PERSISTENT);
		MHD_add_response_header(r, "Content-Type", w->type);
		MHD_add_response_header(r, "Cache-Control", "no-cache");
		/* its own scripts and the API only; the token stays in the tab */
		MHD_add_response_header(r, "Content-Security-Policy",
					"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
		MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
		*ret = MHD_queue_response(conn, 200, r);
		MHD_destroy_response(r);
		return true;
	}
	return false;
}
