/* The two ways registries ask for credentials (distribution-spec, and the
 * token authentication of Docker's registry): Basic, and Bearer tokens from
 * the realm a challenge names.  A realm gets the registry's credentials
 * only on the registry's own host, else only those configured for its host;
 * a plain-HTTP realm only on loopback or for an insecure registry. */
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "registry-internal.h"

static char *b64(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(4 * ((n + 2) / 3) + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
	return out;
}

/* A parameter of a challenge: key="value" (quoted) or key=value. */
static bool challenge_param(const char *ch, const char *key, char *out, size_t n)
{
	size_t kl = strlen(key);
	for (const char *p = ch; (p = strcasestr(p, key)); p += kl) {
		if (p != ch && p[-1] != ' ' && p[-1] != ',')
			continue;
		const char *v = p + kl;
		if (*v != '=')
			continue;
		v++;
		size_t o = 0;
		if (*v == '"') {
			for (v++; *v && *v != '"' && o + 1 < n; v++)
				out[o++] = (*v == '\\' && v[1]) ? *++v : *v;
		} else {
			for (; *v && *v != ',' && *v != ' ' && o + 1 < n; v++)
				out[o++] = *v;
		}
		out[o] = 0;
		return true;
	}
	return false;
}

static int set_authz(struct jb_registry *r, const char *scheme, const char *cred)
{
	free(r->authz);
	if (asprintf(&r->authz, "Authorization: %s %s", scheme, cred) < 0) {
		r->authz = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Answer a 401: Basic with the credentials, or a Bearer token from the
 * realm the challenge names, for its service and scope. */
static int basic_authz(struct jb_registry *r, const char *user, const char *password, struct jb_error *err)
{
	char *up = NULL, *enc;
	if (asprintf(&up, "%s:%s", user, password ? password : "") < 0)
		return jb_oom(err);
	enc = b64(up);
	explicit_bzero(up, strlen(up));
	free(up);
	int rc = enc ? set_authz(r, "Basic", enc) : -ENOMEM;
	free(enc);
	return rc;
}

/* The credentials the token service at realm gets: the registry's own when
 * it is on the registry's host, else only those configured for its own
 * host (creds_for), else none.  A realm in plain HTTP only on loopback (or
 * an insecure registry); a realm with user information is refused. */
static int realm_creds(struct jb_registry *r, const char *realm, const char **user, const char **password,
		       struct jb_error *err)
{
	*user = *password = NULL;
	bool https = !strncasecmp(realm, "https://", 8);
	if (!https && strncasecmp(realm, "http://", 7))
		return jb_err(err, EACCES, "registry %s: a Bearer challenge whose realm is not an http(s) URL", r->host);
	const char *h = realm + (https ? 8 : 7);
	size_t hl = strcspn(h, "/?#");
	char host[256];
	if (hl == 0 || hl >= sizeof host || memchr(h, '@', hl))
		return jb_err(err, EACCES, "registry %s: a token realm without a plain host: %.100s", r->host, realm);
	memcpy(host, h, hl);
	host[hl] = 0;
	if (!https && !r->insecure && !jb_host_is_loopback(host))
		return jb_err(err, EACCES, "registry %s: its token service %s is plain HTTP (only loopback may be)", r->host,
			      host);
	char rn[256], hn[256];
	if (registry_host_name(host, hn) && registry_host_name(r->host, rn) && !strcasecmp(hn, rn)) { /* another port of the same host */
		*user = r->user;
		*password = r->password;
	} else if (r->creds_for) {
		r->creds_for(r->creds_ud, host, user, password);
	}
	return 0;
}

int registry_authenticate(struct jb_registry *r, const char *challenge, struct jb_error *err)
{
	if (!strncasecmp(challenge, "Basic", 5)) {
		if (!r->user)
			return jb_err(err, EACCES, "registry %s asks for a user name and password (--creds USER:PASSWORD)",
				      r->host);
		return basic_authz(r, r->user, r->password, err);
	}
	if (strncasecmp(challenge, "Bearer", 6))
		return jb_err(err, EACCES, "registry %s: an authentication scheme jumbo does not speak: %.60s", r->host,
			      challenge);
	char realm[512], service[256] = "", scope[512] = "";
	if (!challenge_param(challenge, "realm", realm, sizeof realm))
		return jb_err(err, EACCES, "registry %s: a Bearer challenge without a realm", r->host);
	const char *ru, *rp;
	int rc = realm_creds(r, realm, &ru, &rp, err);
	if (rc < 0)
		return rc;
	challenge_param(challenge, "service", service, sizeof service);
	challenge_param(challenge, "scope", scope, sizeof scope);
	char *es = curl_easy_escape(r->curl, service, 0), *esc = curl_easy_escape(r->curl, scope, 0);
	char *url = NULL;
	rc = asprintf(&url, "%s%s%s%s%s%s", realm, strchr(realm, '?') ? "&" : "?", *service ? "service=" : "",
			  *service ? es : "", *scope ? (*service ? "&scope=" : "scope=") : "", *scope ? esc : "");
	curl_free(es);
	curl_free(esc);
	if (rc < 0)
		return jb_oom(err);
	/* the token request carries the credentials the realm may have, if any */
	free(r->authz);
	r->authz = NULL;
	if (ru && (rc = basic_authz(r, ru, rp, err)) < 0) {
		free(url);
		return rc;
	}
	struct resp rs = {.body = {.limit = MAX_TOKEN_BODY}, .r = r};
	rc = registry_perform(r, "GET", url, NULL, &rs, false, 0, err);
	free(url);
	free(r->authz);
	r->authz = NULL;
	if (rc == 0 && rs.status != 200)
		rc = jb_err(err, EACCES, "registry %s: the token service %s refused%s (HTTP %ld)", r->host, realm,
			    ru ? " these credentials" : " anonymous access", rs.status);
	if (rc == 0) {
		json_t *j = json_loadb(rs.body.p ? (const char *)rs.body.p : "", rs.body.len, 0, NULL);
		const char *tok = json_string_value(json_object_get(j, "token"));
		if (!tok)
			tok = json_string_value(json_object_get(j, "access_token"));
		if (!tok || !*tok || strpbrk(tok, "\r\n"))
			rc = jb_err(err, EACCES, "registry %s: the token service %s sent no token", r->host, realm);
		else
			rc = set_authz(r, "Bearer", tok);
		json_decref(j);
	}
	jb_buf_free(&rs.body);
	return rc;
}

