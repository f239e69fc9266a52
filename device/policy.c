/*
 * policy.c: access decisions on a device that serves a resource (DESIGN.md
 * flows 4 and 5, seed Figs. 7 and 8). A local policy file (INI, libinih)
 * read strictly into a table of group/owner/device rules, the decision from
 * an authenticated peer's certificate (optional-data owner and groups,
 * validity) and the cached CRL's state, provd's POST /v1/authorize for the
 * central mode, and the request frame a peer sends on the encrypted link.
 * docs/access-control.md, "On the device: central and disconnected".
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <ini.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "device/device.h"

enum subject { SUBJ_GROUP, SUBJ_OWNER, SUBJ_DEVICE, SUBJ_ANY };

struct policy_entry {
	int deny;
	int line;			/* where it was written */
	enum subject kind;
	char action[POLICY_MAX_ACTION + 1];	/* "*": any action */
	char name[OPTDATA_MAX_STR + 1];	/* group or owner */
	uint8_t addr[MAC_LEN];		/* device */
};

struct policy {
	char resource[POLICY_MAX_NAME + 1];
	int stale_open;
	struct policy_entry *e;
	size_t n;
};

/* The parser's state: the policy being read, the reader's position, and
 * the first error (nothing after it is kept). */
struct parse_state {
	struct policy *p;
	const char *text, *end, *cur;
	int line;
	int section_line;		/* of the last [section] */
	int err_line;
	char err[256];
	int stale_set;
};

/* ---------------------------------------------------------------------
 * Names.
 */
static int
token_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

int
policy_check_resource(const char *s)
{
	return s != NULL && token_ok(s, POLICY_MAX_NAME) ? 0 : ERR_INVALID;
}

int
policy_check_action(const char *s)
{
	return s != NULL && token_ok(s, POLICY_MAX_ACTION) ? 0 : ERR_INVALID;
}

/* ---------------------------------------------------------------------
 * The file.
 */
static int
fail(struct parse_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(struct parse_state *st, const char *fmt, ...)
{
	va_list ap;

	if (st->err_line == 0) {
		st->err_line = st->line;
		va_start(ap, fmt);
		vsnprintf(st->err, sizeof(st->err), fmt, ap);
		va_end(ap);
	}
	return 0;
}

/* libinih's reader: one line at a time, counted, each at most
 * POLICY_MAX_LINE bytes (libinih would cut a longer one silently). */
static char *
reader(char *buf, int size, void *arg)
{
	struct parse_state *st = arg;
	const char *nl;
	size_t n;

	if (st->cur >= st->end || st->err_line != 0)
		return NULL;
	nl = memchr(st->cur, '\n', (size_t)(st->end - st->cur));
	n = nl ? (size_t)(nl - st->cur) : (size_t)(st->end - st->cur);
	st->line++;
	if (n > POLICY_MAX_LINE || n + 2 > (size_t)size) {
		fail(st, "line longer than %d bytes (repeat the key to list more)",
		    POLICY_MAX_LINE);
		return NULL;
	}
	memcpy(buf, st->cur, n);
	for (size_t i = 0; i < n && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '['); i++)
		if (buf[i] == '[') {
			st->section_line = st->line;
			break;
		}
	buf[n] = '\n';
	buf[n + 1] = '\0';
	st->cur += n + (nl != NULL);
	return buf;
}

static void
trim(char *s)
{
	size_t n = strlen(s), i = 0;

	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	while (s[i] == ' ' || s[i] == '\t')
		i++;
	memmove(s, s + i, n - i + 1);
}

/* One item of an [allow] or [deny] list into e. */
static int
parse_item(struct parse_state *st, char *item, struct policy_entry *e)
{
	const char *name = item;

	trim(item);
	if (item[0] == '\0')
		return fail(st, "an empty item in the list");
	if (strcmp(item, "*") == 0) {
		e->kind = SUBJ_ANY;
		return 1;
	}
	if (strncmp(item, "device:", 7) == 0) {
		e->kind = SUBJ_DEVICE;
		if (mac_parse(item + 7, e->addr) != 0)
			return fail(st, "device:%.40s is not a unicast IEEE address", item + 7);
		return 1;
	}
	if (strncmp(item, "owner:", 6) == 0) {
		e->kind = SUBJ_OWNER;
		name = item + 6;
	} else {
		e->kind = SUBJ_GROUP;
		if (strncmp(item, "group:", 6) == 0)
			name = item + 6;
	}
	if (strlen(name) > OPTDATA_MAX_STR)
		return fail(st, "a name longer than %d bytes", OPTDATA_MAX_STR);
	if (name[0] == '\0' || optdata_check_name(name) != 0)
		return fail(st, "\"%.40s\" is not a name (1 to %d bytes of printable UTF-8)", name,
		    OPTDATA_MAX_STR);
	str_copy(e->name, sizeof(e->name), name);
	return 1;
}

static int
add_list(struct parse_state *st, int deny, const char *action, const char *value)
{
	char buf[POLICY_MAX_LINE + 1], *item, *comma;
	struct policy *p = st->p;

	if (strcmp(action, "*") != 0 && policy_check_action(action) != 0)
		return fail(st, "[%s] \"%.40s\" is not an action (1 to %d of A-Z a-z 0-9 . _ -, or *)",
		    deny ? "deny" : "allow", action, POLICY_MAX_ACTION);
	if (strlen(value) > POLICY_MAX_LINE)
		return fail(st, "value too long");
	str_copy(buf, sizeof(buf), value);
	if (buf[0] == '\0')
		return fail(st, "[%s] %s lists nobody", deny ? "deny" : "allow", action);
	for (item = buf; item != NULL; item = comma) {
		struct policy_entry e = { .deny = deny, .line = st->line };

		if ((comma = strchr(item, ',')) != NULL)
			*comma++ = '\0';
		if (!parse_item(st, item, &e))
			return 0;
		if (p->n == POLICY_MAX_ENTRIES)
			return fail(st, "more than %d entries", POLICY_MAX_ENTRIES);
		str_copy(e.action, sizeof(e.action), action);
		p->e[p->n++] = e;
	}
	return 1;
}

static int
handler(void *arg, const char *section, const char *key, const char *value)
{
	struct parse_state *st = arg;
	struct policy *p = st->p;

	if (st->err_line != 0)
		return 0;
	if (strcmp(section, "resource") == 0) {
		if (strcmp(key, "name") == 0) {
			if (p->resource[0] != '\0')
				return fail(st, "[resource] name given twice");
			if (policy_check_resource(value) != 0)
				return fail(st, "[resource] name \"%.40s\" is not 1 to %d of "
				    "A-Z a-z 0-9 . _ -", value, POLICY_MAX_NAME);
			str_copy(p->resource, sizeof(p->resource), value);
			return 1;
		}
		if (strcmp(key, "stale_crl") == 0) {
			if (st->stale_set)
				return fail(st, "[resource] stale_crl given twice");
			if (strcmp(value, "open") != 0 && strcmp(value, "closed") != 0)
				return fail(st, "[resource] stale_crl must be open or closed, not "
				    "\"%.40s\"", value);
			p->stale_open = strcmp(value, "open") == 0;
			st->stale_set = 1;
			return 1;
		}
		return fail(st, "unknown key \"%.40s\" in [resource] (name, stale_crl)", key);
	}
	if (strcmp(section, "allow") == 0)
		return add_list(st, 0, key, value);
	if (strcmp(section, "deny") == 0)
		return add_list(st, 1, key, value);
	if (section[0] == '\0')
		return fail(st, "\"%.40s\" outside a section", key);
	st->line = st->section_line;	/* the section is at fault, not its key */
	return fail(st, "unknown section [%.40s] (resource, allow, deny)", section);
}

void
policy_free(struct policy *p)
{
	if (p == NULL)
		return;
	free(p->e);
	free(p);
}

int
policy_parse(const char *text, size_t len, const char *name, struct policy **out,
    char *err, size_t errlen)
{
	struct parse_state st = { 0 };
	struct policy *p = NULL;
	int line, r = ERR_CONFIG;

	*out = NULL;
	if (name == NULL)
		name = "policy";
	if (len > POLICY_MAX_FILE) {
		msg_set(err, errlen, "%s: larger than %d bytes", name, POLICY_MAX_FILE);
		return ERR_TOO_BIG;
	}
	if (memchr(text, '\0', len) != NULL) {
		msg_set(err, errlen, "%s: not a text file (NUL byte)", name);
		return ERR_CONFIG;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->e = calloc(POLICY_MAX_ENTRIES, sizeof(*p->e))) == NULL) {
		r = ERR_NOMEM;
		msg_set(err, errlen, "%s: %s", name, provd_strerror(r));
		goto out;
	}
	st.p = p;
	st.text = st.cur = text;
	st.end = text + len;
	line = ini_parse_stream(reader, &st, handler, &st);
	if (st.err_line != 0 && (line == 0 || line >= st.err_line)) {
		msg_set(err, errlen, "%s:%d: %s", name, st.err_line, st.err);
		goto out;
	}
	if (line != 0) {
		msg_set(err, errlen, "%s:%d: syntax error (expected [section] or key = value)",
		    name, line);
		goto out;
	}
	if (p->resource[0] == '\0') {
		msg_set(err, errlen, "%s: no [resource] name", name);
		goto out;
	}
	if (!st.stale_set) {
		msg_set(err, errlen, "%s: no [resource] stale_crl (open or closed)", name);
		goto out;
	}
	*out = p;
	p = NULL;
	r = 0;
out:
	policy_free(p);
	return r;
}

int
policy_load(const char *path, struct policy **out, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	*out = NULL;
	if ((f = fopen(path, "re")) == NULL) {
		msg_set(err, errlen, "%s: %s", path, strerror(errno));
		return ERR_IO;
	}
	if ((buf = malloc(POLICY_MAX_FILE + 1)) == NULL) {
		fclose(f);
		msg_set(err, errlen, "%s: %s", path, provd_strerror(ERR_NOMEM));
		return ERR_NOMEM;
	}
	len = fread(buf, 1, POLICY_MAX_FILE + 1, f);
	if (ferror(f)) {
		msg_set(err, errlen, "%s: cannot read", path);
		r = ERR_IO;
	} else
		r = policy_parse(buf, len, path, out, err, errlen);
	fclose(f);
	free(buf);
	return r;
}

const char *
policy_resource(const struct policy *p)
{
	return p->resource;
}

int
policy_stale_open(const struct policy *p)
{
	return p->stale_open;
}

/* ---------------------------------------------------------------------
 * The decision.
 */
enum policy_crl
policy_crl_state(struct crl_cache *c, X509 *cert, int64_t grace_s, time_t now)
{
	int64_t tu, nu;
	char why[256];
	int r;

	if (c == NULL || cert == NULL)
		return POLICY_CRL_NONE;
	r = crl_cache_check(c, cert, CRL_GRACE_ANY, why, sizeof(why));
	if (r == ERR_FORBIDDEN)
		return POLICY_CRL_REVOKED;
	if (r != 0 || crl_cache_times(c, &tu, &nu) != 0)
		return POLICY_CRL_NONE;
	if (grace_s == CRL_GRACE_ANY || (int64_t)now <= nu ||
	    (grace_s > 0 && (int64_t)now - nu <= grace_s))
		return POLICY_CRL_FRESH;
	return POLICY_CRL_STALE;
}

static int
entry_matches(const struct policy_entry *e, const struct peer_info *pi,
    const struct optdata *od, const char *action)
{
	if (strcmp(e->action, "*") != 0 && strcmp(e->action, action) != 0)
		return 0;
	switch (e->kind) {
	case SUBJ_ANY:
		return 1;
	case SUBJ_DEVICE:
		return memcmp(e->addr, pi->addr, MAC_LEN) == 0;
	case SUBJ_OWNER:
		return od->owner != NULL && strcmp(od->owner, e->name) == 0;
	case SUBJ_GROUP:
		for (size_t i = 0; i < od->ngroups; i++)
			if (strcmp(od->groups[i], e->name) == 0)
				return 1;
		return 0;
	}
	return 0;
}

int
policy_decide(const struct policy *p, const struct peer_info *pi, const char *resource,
    const char *action, time_t now, enum policy_crl crl, char *reason, size_t reasonlen)
{
	struct optdata od = { 0 };
	const struct policy_entry *allow = NULL, *deny = NULL;
	const uint8_t *der;
	size_t derlen;
	time_t t = now;

	if (p == NULL || pi == NULL || pi->cert == NULL || resource == NULL || action == NULL) {
		msg_set(reason, reasonlen, "no authenticated peer");
		return ERR_FORBIDDEN;
	}
	switch (crl) {
	case POLICY_CRL_FRESH:
		break;
	case POLICY_CRL_STALE:
		if (p->stale_open)
			break;
		msg_set(reason, reasonlen, "the cached CRL is stale (stale_crl = closed)");
		return ERR_FORBIDDEN;
	case POLICY_CRL_REVOKED:
		msg_set(reason, reasonlen, "certificate revoked");
		return ERR_FORBIDDEN;
	case POLICY_CRL_NONE:
	default:
		msg_set(reason, reasonlen, "revocation cannot be checked (no CRL)");
		return ERR_FORBIDDEN;
	}
	if (X509_cmp_time(X509_get0_notBefore(pi->cert), &t) > 0) {
		msg_set(reason, reasonlen, "certificate not yet valid");
		return ERR_FORBIDDEN;
	}
	if (X509_cmp_time(X509_get0_notAfter(pi->cert), &t) < 0) {
		msg_set(reason, reasonlen, "certificate expired");
		return ERR_FORBIDDEN;
	}
	if (strcmp(resource, p->resource) != 0) {
		msg_set(reason, reasonlen, "unknown resource");
		return ERR_FORBIDDEN;
	}
	if (optdata_ext_find(pi->cert, &der, &derlen) == 1 &&
	    optdata_decode(der, derlen, &od) != 0) {
		msg_set(reason, reasonlen, "the certificate's optional data cannot be read");
		return ERR_FORBIDDEN;
	}
	for (size_t i = 0; i < p->n && deny == NULL; i++) {
		const struct policy_entry *e = &p->e[i];

		if (!entry_matches(e, pi, &od, action))
			continue;
		if (e->deny)
			deny = e;
		else if (allow == NULL)
			allow = e;
	}
	optdata_clear(&od);
	if (deny != NULL) {
		msg_set(reason, reasonlen, "denied by policy line %d", deny->line);
		return ERR_FORBIDDEN;
	}
	if (allow != NULL) {
		msg_set(reason, reasonlen, "allowed by policy line %d", allow->line);
		return 0;
	}
	msg_set(reason, reasonlen, "no rule allows this");
	return ERR_FORBIDDEN;
}

/* ---------------------------------------------------------------------
 * The request frame on the encrypted link.
 */
int
policy_request_format(const char *resource, const char *action, char *out, size_t outlen)
{
	if (policy_check_resource(resource) != 0 || policy_check_action(action) != 0)
		return ERR_INVALID;
	if ((size_t)snprintf(out, outlen, "%s%s %s", POLICY_REQ_PREFIX, resource, action) >= outlen)
		return ERR_TOO_BIG;
	return 0;
}

int
policy_request_parse(const uint8_t *buf, size_t len, char resource[POLICY_MAX_NAME + 1],
    char action[POLICY_MAX_ACTION + 1])
{
	char text[POLICY_REQ_MAX + 1], *sp;
	size_t plen = strlen(POLICY_REQ_PREFIX);

	resource[0] = action[0] = '\0';
	if (len > POLICY_REQ_MAX || len <= plen || memcmp(buf, POLICY_REQ_PREFIX, plen) != 0)
		return ERR_INVALID;
	memcpy(text, buf + plen, len - plen);
	text[len - plen] = '\0';
	if (strlen(text) != len - plen || (sp = strchr(text, ' ')) == NULL)
		return ERR_INVALID;
	*sp++ = '\0';
	if (policy_check_resource(text) != 0 || policy_check_action(sp) != 0)
		return ERR_INVALID;
	str_copy(resource, POLICY_MAX_NAME + 1, text);
	str_copy(action, POLICY_MAX_ACTION + 1, sp);
	return 0;
}

/* ---------------------------------------------------------------------
 * Central: POST /v1/authorize.
 */
#define AUTHZ_RESP_MAX 16384

struct authz_resp {
	char buf[AUTHZ_RESP_MAX + 1];
	size_t len;
	int too_big;
};

static size_t
on_data(char *ptr, size_t size, size_t n, void *arg)
{
	struct authz_resp *rs = arg;
	size_t add = size * n;

	if (add > AUTHZ_RESP_MAX - rs->len) {
		rs->too_big = 1;
		return 0;
	}
	memcpy(rs->buf + rs->len, ptr, add);
	rs->len += add;
	rs->buf[rs->len] = '\0';
	return add;
}

int
policy_ask_provd(const struct policy_provd *o, X509 *cert, const char *resource,
    const char *action, char *reason, size_t reasonlen)
{
	struct authz_resp rs;
	CURL *h = NULL;
	struct curl_slist *hdr = NULL;
	json_t *req = NULL, *resp = NULL;
	char url[1024], fp[2 * EVP_MAX_MD_SIZE + 1], *body = NULL, *auth = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	const char *d, *why;
	long status = 0;
	CURLcode cr;
	int r = ERR_INTERNAL;

	msg_set(reason, reasonlen, "provd could not be asked");
	if (o == NULL || o->url == NULL || o->token == NULL || cert == NULL)
		return ERR_INVALID;
	if (!X509_digest(cert, EVP_sha256(), md, &mdlen))
		return ERR_CRYPTO;
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(fp + 2 * i, 3, "%02x", md[i]);
	if ((size_t)snprintf(url, sizeof(url), "%s/v1/authorize", o->url) >= sizeof(url))
		return ERR_INVALID;
	req = json_pack("{s:{s:s}, s:s, s:s}", "device", "certificate_sha256", fp,
	    "resource", resource, "action", action);
	if (req == NULL || (body = json_dumps(req, JSON_COMPACT)) == NULL ||
	    (h = curl_easy_init()) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	size_t alen = strlen(o->token) + 32;
	if ((auth = malloc(alen)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	snprintf(auth, alen, "Authorization: Bearer %s", o->token);
	if ((hdr = curl_slist_append(hdr, "Content-Type: application/json")) == NULL ||
	    curl_slist_append(hdr, auth) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	rs.len = 0;
	rs.too_big = 0;
	rs.buf[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &rs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)(o->timeout_s > 0 ? o->timeout_s : 5));
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)(o->timeout_s > 0 ? o->timeout_s : 5));
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (o->cacert != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, o->cacert);
	if ((cr = curl_easy_perform(h)) != CURLE_OK) {
		msg_set(reason, reasonlen, "provd cannot be reached: %s",
		    rs.too_big ? "answer too large" : curl_easy_strerror(cr));
		r = ERR_UNAVAILABLE;
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 500 || status == 0) {
		msg_set(reason, reasonlen, "provd cannot answer (HTTP %ld)", status);
		r = ERR_UNAVAILABLE;
		goto out;
	}
	if (status == 401 || status == 403) {
		msg_set(reason, reasonlen, "provd refused the question (HTTP %ld): check the "
		    "authorizer token", status);
		r = ERR_AUTH;
		goto out;
	}
	if (status != 200 || (resp = json_loadb(rs.buf, rs.len, 0, NULL)) == NULL ||
	    (d = json_string_value(json_object_get(resp, "decision"))) == NULL) {
		msg_set(reason, reasonlen, "provd refused the question (HTTP %ld)", status);
		r = ERR_INVALID;
		goto out;
	}
	why = json_string_value(json_object_get(resp, "reason"));
	msg_set(reason, reasonlen, "%.200s", why ? why : d);
	r = strcmp(d, "allow") == 0 ? 0 : ERR_FORBIDDEN;
out:
	if (auth != NULL) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	free(body);
	json_decref(req);
	json_decref(resp);
	return r;
}
