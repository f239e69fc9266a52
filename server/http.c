/*
 * http.c: the HTTP core of provd — libmicrohttpd set-up, request lifecycle
 * (bounded body, routing, authentication by API token, console session
 * cookie (console.c) or an access point's client certificate,
 * suspend/resume for work done on other threads), the one error table,
 * request ids and the access log.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <gnutls/gnutls.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "server/server_int.h"

/* ---------------------------------------------------------------------
 * The one error table: internal code -> HTTP status, public code, message.
 */
static const struct {
	int err;
	int status;
	const char *code;
	const char *message;
} errmap[] = {
	{ ERR_INVALID, 400, "invalid_request", "The request is malformed." },
	{ ERR_BAD_MAC, 400, "bad_mac", "The device address is not a valid unicast IEEE 48-bit address." },
	{ ERR_BAD_CSR, 400, "bad_csr", "The certificate signing request is invalid." },
	{ ERR_KEY_POLICY, 400, "key_not_allowed", "The key type or size is not allowed by policy." },
	{ ERR_AUTH, 401, "unauthorized", "A valid API token is required." },
	{ ERR_FORBIDDEN, 403, "forbidden", "This token's role may not do that." },
	{ ERR_NOT_FOUND, 404, "not_found", "No such object." },
	{ ERR_CONFLICT, 409, "conflict", "The request conflicts with the current state." },
	{ ERR_TOO_BIG, 413, "too_large", "The request body is too large." },
	{ ERR_UNSUPPORTED, 415, "unsupported", "Unsupported media type or format." },
	{ ERR_UNAVAILABLE, 503, "unavailable", "A back-end service is unavailable; retry shortly." },
	{ ERR_DB, 503, "unavailable", "The database is unavailable; retry shortly." },
	{ ERR_SIGNER, 503, "unavailable", "The CA signer is unavailable; retry shortly." },
	{ ERR_TIMEOUT, 504, "timeout", "The operation timed out." },
};

void
req_reply_raw(struct req *rq, int status, const char *type, char *buf, size_t len)
{
	free(rq->resp);
	rq->status = status;
	rq->resp = buf;
	rq->resp_len = len;
	rq->resp_type = type;
	rq->responded = 1;
}

int
req_add_header(struct req *rq, const char *name, const char *value)
{
	char *v;

	if (rq->nheaders >= REQ_HEADERS_MAX) {
		log_warnx("no room for response header %s", name);
		return ERR_TOO_BIG;
	}
	if ((v = strdup(value)) == NULL)
		return ERR_NOMEM;
	rq->headers[rq->nheaders].name = name;
	rq->headers[rq->nheaders].value = v;
	rq->nheaders++;
	return 0;
}

void
req_reply_json(struct req *rq, int status, json_t *obj)
{
	char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

	json_decref(obj);
	if (text == NULL) {
		req_reply_raw(rq, 500, "application/json",
		    strdup("{\"error\":{\"code\":\"internal\"}}"), 29);
		return;
	}
	req_reply_raw(rq, status, "application/json", text, strlen(text));
}

void
req_reply_json_or(struct req *rq, int status, json_t *obj, int err)
{
	if (obj == NULL)
		req_reply_error(rq, err, NULL);
	else
		req_reply_json(rq, status, obj);
}

void
req_reply_error(struct req *rq, int err, const char *public_msg)
{
	int status = 500;
	const char *code = "internal", *msg = "Internal error; see the server log with the request id.";

	for (size_t i = 0; i < sizeof(errmap) / sizeof(errmap[0]); i++)
		if (errmap[i].err == err) {
			status = errmap[i].status;
			code = errmap[i].code;
			msg = errmap[i].message;
			break;
		}
	if (public_msg != NULL)
		msg = public_msg;
	json_t *o = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code, "message", msg,
	    "request_id", rq->id);
	/* a message that is not valid UTF-8 (it quoted the input): the
	 * table's own instead */
	if (o == NULL && public_msg != NULL) {
		req_reply_error(rq, err, NULL);
		return;
	}
	req_reply_json(rq, status, o);
}

void
req_reply_status(struct req *rq, int status, const char *code, const char *msg)
{
	req_reply_json(rq, status, json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code,
	    "message", msg, "request_id", rq->id));
}

/* Shortens s (NUL-terminated) so that it does not end inside a UTF-8
 * sequence: for quoting a prefix of the input in a message. */
static void
utf8_trim(char *s)
{
	size_t n = strlen(s), i = n, need;

	while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return;
	unsigned char c = (unsigned char)s[i - 1];
	need = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
	if (n - (i - 1) < need)
		s[i - 1] = '\0';
}

int
json_only_keys(json_t *obj, const char *const *keys, char *why, size_t whylen)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		size_t i;
		for (i = 0; keys[i] != NULL; i++)
			if (strcmp(keys[i], k) == 0)
				break;
		if (keys[i] == NULL) {
			char name[65];
			snprintf(name, sizeof(name), "%s", k);
			utf8_trim(name);
			snprintf(why, whylen, "Unknown field \"%s\".", name);
			return ERR_INVALID;
		}
	}
	return 0;
}

void
req_suspend(struct req *rq)
{
	rq->suspended = 1;
	MHD_suspend_connection(rq->conn);
}

void
req_complete(struct req *rq)
{
	MHD_resume_connection(rq->conn);
}

struct offload {
	struct server *s;
	struct req *rq;
	void (*fn)(struct server *, struct req *);
};

static void *
offload_main(void *arg)
{
	struct offload o = *(struct offload *)arg;

	free(arg);
	o.rq->offloaded = 1;
	o.fn(o.s, o.rq);
	log_set_id(NULL);
	req_complete(o.rq);
	atomic_fetch_sub(&o.s->offloaded, 1);
	return NULL;
}

void
server_offload(struct server *s, struct req *rq, void (*fn)(struct server *, struct req *))
{
	struct offload *o;
	pthread_attr_t attr;
	pthread_t t;

	if (atomic_fetch_add(&s->offloaded, 1) >= OFFLOAD_MAX || (o = malloc(sizeof(*o))) == NULL) {
		atomic_fetch_sub(&s->offloaded, 1);
		req_reply_error(rq, ERR_UNAVAILABLE, "Too many requests are waiting for the CA; "
		    "retry shortly.");
		return;
	}
	*o = (struct offload){ s, rq, fn };
	req_suspend(rq);
	if (pthread_attr_init(&attr) != 0 ||
	    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0 ||
	    pthread_create(&t, &attr, offload_main, o) != 0) {
		log_warnx("cannot start a thread: the request runs in the HTTP thread");
		offload_main(o);
	}
	pthread_attr_destroy(&attr);
}

/* ---------------------------------------------------------------------
 * Authentication: "Authorization: Bearer <token>", checked against the
 * database through a small cache keyed by the token's SHA-256; or, without
 * that header, the TLS client certificate of an access point.
 */
#define TOKEN_CACHE_NS (10ull * 1000000000ull)
#define TOKEN_MAX 128

static int
auth_token(struct server *s, struct req *rq, const char *h)
{
	uint8_t hash[32];
	struct tok_entry *e;
	uint64_t now = now_ns();
	int r;

	if (strncmp(h, "Bearer ", 7) != 0)
		return ERR_AUTH;
	h += 7;
	size_t len = strnlen(h, TOKEN_MAX + 1);
	if (len == 0 || len > TOKEN_MAX)
		return ERR_AUTH;
	if (!EVP_Digest(h, len, hash, NULL, EVP_sha256(), NULL))
		return ERR_INTERNAL;
	e = &s->tok_cache[hash[0]];
	pthread_mutex_lock(&s->tok_mu);
	if (e->expires_ns > now && memcmp(e->hash, hash, 32) == 0) {
		rq->role = e->role;
		str_copy(rq->actor, sizeof(rq->actor), e->name);
		pthread_mutex_unlock(&s->tok_mu);
		return 0;
	}
	pthread_mutex_unlock(&s->tok_mu);
	if ((r = db_token_check(s->db, h, &rq->role, rq->actor, sizeof(rq->actor))) != 0)
		return r;
	pthread_mutex_lock(&s->tok_mu);
	memcpy(e->hash, hash, 32);
	e->role = rq->role;
	snprintf(e->name, sizeof(e->name), "%s", rq->actor);
	e->expires_ns = now + TOKEN_CACHE_NS;
	pthread_mutex_unlock(&s->tok_mu);
	return 0;
}

/*
 * Client certificates. libmicrohttpd asks TLS clients for a certificate
 * when it has a trust list (server.tls_client_ca) but does not check what
 * they send, beyond the handshake's proof that the client holds the key:
 * server_cert_verify() decides. A verified certificate is remembered on its
 * connection (libmicrohttpd's socket context, made when the connection
 * starts) for CERT_CACHE_NS, so that an access point asking over one
 * keep-alive connection is not checked against the database on every
 * request; past that, and whenever the connection presents other bytes, it
 * is checked again. A revoked access point is thus refused within
 * CERT_CACHE_NS. Only the connection's own libmicrohttpd thread reads or
 * writes its context (requests on a connection come one at a time), so it
 * takes no lock.
 */
#define CERT_CACHE_NS (2ull * 1000000000ull)
#define CERT_MAX_DER (64 * 1024)

struct conn_ctx {
	uint8_t *der;			/* the certificate verified last, or NULL */
	size_t derlen;
	uint64_t verified_ns;
	enum db_role role;
	char actor[64];
};

static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	struct conn_ctx *cc = *socket_context;
	(void)cls;
	(void)conn;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		/* NULL on failure: the connection then works without a cache */
		*socket_context = calloc(1, sizeof(struct conn_ctx));
		return;
	}
	if (cc != NULL) {
		free(cc->der);
		free(cc);
	}
	*socket_context = NULL;
}

static struct conn_ctx *
conn_ctx_get(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci != NULL ? ci->socket_context : NULL;
}

/* The DER of the leaf certificate the TLS client presented (borrowed from
 * GnuTLS's session, valid while the connection lasts), or NULL. */
static const gnutls_datum_t *
client_cert_der(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_GNUTLS_SESSION);
	const gnutls_datum_t *peers;
	gnutls_session_t tls;
	unsigned n = 0;

	if (ci == NULL || ci->tls_session == NULL)
		return NULL;
	tls = ci->tls_session;
	if (gnutls_certificate_type_get2(tls, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_X509)
		return NULL;
	if ((peers = gnutls_certificate_get_peers(tls, &n)) == NULL || n == 0 ||
	    peers[0].data == NULL || peers[0].size == 0)
		return NULL;
	return &peers[0];
}

static int
der_to_x509(const uint8_t *der, size_t len, X509 **out)
{
	const unsigned char *p = der;
	X509 *x;

	*out = NULL;
	if (len > CERT_MAX_DER)
		return ERR_TOO_BIG;
	if ((x = d2i_X509(NULL, &p, (long)len)) == NULL || p != der + len) {
		log_ossl("the client certificate does not parse");
		X509_free(x);
		return ERR_INVALID;
	}
	*out = x;
	return 0;
}

int
http_client_cert(struct req *rq, X509 **out)
{
	const gnutls_datum_t *d = client_cert_der(rq->conn);

	*out = NULL;
	if (d == NULL)
		return 0;
	return der_to_x509(d->data, d->size, out);
}

/* DB_ROLE_AUTHORIZER when the optional-data extension of x names the
 * access-point role, DB_ROLE_NONE otherwise: a certificate grants no other
 * role. */
static enum db_role
cert_role(X509 *x, const char *mac)
{
	const uint8_t *der;
	size_t len;
	struct optdata od;
	enum db_role role = DB_ROLE_NONE;

	if (!optdata_ext_find(x, &der, &len))
		return DB_ROLE_NONE;
	if (optdata_decode(der, len, &od) != 0) {
		ERR_clear_error();
		log_warnx("certificate of %s: the optional-data extension does not decode", mac);
		return DB_ROLE_NONE;
	}
	for (size_t i = 0; i < od.nroles; i++)
		if (strcmp(od.roles[i], OPTDATA_ROLE_ACCESS_POINT) == 0)
			role = DB_ROLE_AUTHORIZER;
	optdata_clear(&od);
	return role;
}

static int
auth_cert(struct server *s, struct req *rq, const gnutls_datum_t *d, char *why,
    size_t whylen)
{
	struct conn_ctx *cc = conn_ctx_get(rq->conn);
	struct db_cert c = { 0 };
	char mac[MAC_STR_LEN];
	X509 *x = NULL;
	uint64_t now = now_ns();
	int r;

	if (cc != NULL && cc->der != NULL && now - cc->verified_ns < CERT_CACHE_NS &&
	    cc->derlen == d->size && memcmp(cc->der, d->data, d->size) == 0) {
		rq->role = cc->role;
		snprintf(rq->actor, sizeof(rq->actor), "%s", cc->actor);
		return 0;
	}
	if (cc != NULL) {
		free(cc->der);
		cc->der = NULL;
	}
	if ((r = der_to_x509(d->data, d->size, &x)) != 0) {
		snprintf(why, whylen, "The client certificate cannot be read.");
		return ERR_AUTH;
	}
	if ((r = server_cert_verify(s, x, &c, why, whylen)) != 0) {
		log_info("client certificate refused: %s (%s)", why, provd_strerror(r));
		/* expired (ERR_FORBIDDEN) is no credential either */
		if (r == ERR_FORBIDDEN || r == ERR_UNSUPPORTED || r == ERR_INVALID)
			r = ERR_AUTH;
		goto out;
	}
	mac_format(c.mac, mac);
	rq->role = cert_role(x, mac);
	snprintf(rq->actor, sizeof(rq->actor), "%s:%s",
	    rq->role == DB_ROLE_AUTHORIZER ? "ap" : "device", mac);
	if (cc != NULL && (cc->der = malloc(d->size)) != NULL) {
		memcpy(cc->der, d->data, d->size);
		cc->derlen = d->size;
		cc->verified_ns = now;
		cc->role = rq->role;
		snprintf(cc->actor, sizeof(cc->actor), "%s", rq->actor);
	}
	r = 0;
out:
	db_cert_clear(&c);
	X509_free(x);
	return r;
}

/* Sets rq->role, rq->actor and rq->auth_by. In this order, the first
 * present decides alone: an Authorization header, a console session
 * cookie, a client certificate. why gets a public reason for a refused
 * session or certificate. ERR_FORBIDDEN: a session without the right CSRF
 * token. */
static int
authenticate(struct server *s, struct req *rq, char *why, size_t whylen)
{
	const char *h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION);
	const char *cookie;
	const gnutls_datum_t *d;

	why[0] = '\0';
	if (h != NULL) {
		rq->auth_by = AUTH_BY_TOKEN;
		return auth_token(s, rq, h);
	}
	if ((cookie = MHD_lookup_connection_value(rq->conn, MHD_COOKIE_KIND,
	    SESSION_COOKIE)) != NULL) {
		rq->auth_by = AUTH_BY_SESSION;
		return console_authenticate(s, rq, cookie, why, whylen);
	}
	if ((d = client_cert_der(rq->conn)) != NULL) {
		rq->auth_by = AUTH_BY_CERT;
		return auth_cert(s, rq, d, why, whylen);
	}
	return ERR_AUTH;
}

/* ---------------------------------------------------------------------
 * Routing.
 */
/* JSON memory is wiped when freed (json_free_wipe), since parsed bodies may
 * hold a PIN; while this thread handles a route whose JSON holds no secret,
 * it is freed plainly. Off by default: other threads always wipe. */
static _Thread_local int json_plain;

static int
route_match(const struct route *rt, const char *url, struct req *rq)
{
	const char *p = rt->pattern, *u = url;
	int n = 0;

	while (*p != '\0' && *u != '\0') {
		if (p[0] == '{' && p[1] == '*' && p[2] == '}' && p[3] == '\0') {
			/* {*}: the rest of the path, slashes included */
			size_t len = strlen(u);
			if (len >= sizeof(rq->params[0]) || n >= ROUTE_MAX_PARAMS)
				return 0;
			memcpy(rq->params[n], u, len + 1);
			rq->nparams = n + 1;
			return 1;
		}
		if (p[0] == '{' && p[1] == '}') {
			const char *end = strchr(u, '/');
			size_t len = end ? (size_t)(end - u) : strlen(u);
			if (len == 0 || len >= sizeof(rq->params[0]) || n >= ROUTE_MAX_PARAMS)
				return 0;
			memcpy(rq->params[n], u, len);
			rq->params[n][len] = '\0';
			n++;
			u += len;
			p += 2;
			continue;
		}
		if (*p != *u)
			return 0;
		p++;
		u++;
	}
	if (*p != '\0' || *u != '\0')
		return 0;
	rq->nparams = n;
	return 1;
}

/* Finds the route; sets *method_ok to 0 when only the method differs. */
static const struct route *
route_find(const char *method, const char *url, struct req *rq, int *path_known)
{
	*path_known = 0;
	for (size_t i = 0; i < routes_count; i++) {
		if (!route_match(&routes_table[i], url, rq))
			continue;
		*path_known = 1;
		if (strcmp(routes_table[i].method, method) == 0)
			return &routes_table[i];
	}
	return NULL;
}

static void
dispatch(struct server *s, struct req *rq)
{
	int path_known, r;
	const struct route *rt = route_find(rq->method, rq->url, rq, &path_known);

	if (rt == NULL) {
		if (path_known)
			req_reply_json(rq, 405, json_pack("{s:{s:s,s:s,s:s}}", "error",
			    "code", "method_not_allowed", "message",
			    "This method is not allowed on this path.", "request_id", rq->id));
		else
			req_reply_error(rq, ERR_NOT_FOUND, "No such endpoint.");
		return;
	}
	rq->route = rt;
	json_plain = rt->has_body != 2;
	if (rt->roles != 0) {
		char why[200];
		int by_cert;
		if ((r = authenticate(s, rq, why, sizeof(why))) != 0) {
			if (r == ERR_FORBIDDEN && rq->auth_by == AUTH_BY_SESSION) {
				log_info("session of \"%s\": %s %s without the right X-CSRF-Token",
				    rq->actor, rq->method, rt->pattern);
				req_reply_status(rq, 403, "csrf", "This request needs the session's "
				    "CSRF token in the X-CSRF-Token header.");
				return;
			}
			req_reply_error(rq, r == ERR_AUTH ? ERR_AUTH : ERR_UNAVAILABLE,
			    r == ERR_AUTH && why[0] != '\0' ? why : NULL);
			return;
		}
		by_cert = rq->auth_by == AUTH_BY_CERT;
		if ((rt->roles & ROLE_BIT(rq->role)) == 0) {
			log_info("%s \"%s\" (role %s) refused on %s %s",
			    by_cert ? "client certificate" : rq->auth_by == AUTH_BY_SESSION ?
			    "session" : "token", rq->actor,
			    db_role_name(rq->role), rq->method, rt->pattern);
			req_reply_error(rq, ERR_FORBIDDEN, by_cert ? "This client certificate "
			    "may not do that: a certificate with the access-point role may only "
			    "ask authorization questions." : NULL);
			return;
		}
	}
	if (rq->too_big) {
		req_reply_error(rq, ERR_TOO_BIG, NULL);
		return;
	}
	if (rt->has_body) {
		json_error_t jerr;
		char why[240];
		const char *ct = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_TYPE);
		if (ct != NULL && strncmp(ct, "application/json", 16) != 0) {
			req_reply_error(rq, ERR_UNSUPPORTED, "The body must be application/json.");
			return;
		}
		if (rq->len == 0) {
			req_reply_error(rq, ERR_INVALID, "The request body is empty; a JSON object is expected.");
			return;
		}
		rq->json = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &jerr);
		if (rq->json == NULL || !json_is_object(rq->json)) {
			snprintf(why, sizeof(why), "The body is not a JSON object (%.160s).",
			    rq->json == NULL ? jerr.text : "wrong type");
			req_reply_error(rq, ERR_INVALID, why);
			return;
		}
	}
	rt->fn(s, rq);
}

/* ---------------------------------------------------------------------
 * libmicrohttpd callbacks.
 */
static void
req_free(struct req *rq)
{
	if (rq == NULL)
		return;
	if (rq->priv_free != NULL)
		rq->priv_free(rq->priv);
	json_plain = rq->route != NULL && rq->route->has_body != 2;
	json_decref(rq->json);
	json_plain = 0;
	/* a body may hold a secret (an enrollment's PIN) whatever became of it */
	if (rq->body != NULL)
		OPENSSL_clear_free(rq->body, rq->len + 1);
	for (int i = 0; i < rq->nheaders; i++) {
		OPENSSL_cleanse(rq->headers[i].value, strlen(rq->headers[i].value));
		free(rq->headers[i].value);
	}
	OPENSSL_cleanse(&rq->session, sizeof(rq->session));
	free(rq->resp);
	free(rq);
}

static enum MHD_Result
queue_response(struct server *s, struct req *rq)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(rq->resp_len, rq->resp, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL)
		return MHD_NO;
	rq->resp = NULL;	/* owned by the response now */
	rq->queued = 1;
	if (rq->resp_type[0] != '\0')	/* "": no body (204, 301, 304) */
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rq->resp_type);
	MHD_add_response_header(resp, "X-Request-Id", rq->id);
	for (int i = 0; i < rq->nheaders; i++)
		MHD_add_response_header(resp, rq->headers[i].name, rq->headers[i].value);
	MHD_add_response_header(resp, "Cache-Control",
	    rq->cache_control[0] != '\0' ? rq->cache_control : "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (rq->status == 503)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "2");
	if (rq->status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	ret = MHD_queue_response(rq->conn, (unsigned)rq->status, resp);
	MHD_destroy_response(resp);
	if (rq->status < 400)
		atomic_fetch_add(&s->m.http_2xx, 1);
	else if (rq->status < 500)
		atomic_fetch_add(&s->m.http_4xx, 1);
	else
		atomic_fetch_add(&s->m.http_5xx, 1);
	return ret;
}

static struct req *
req_new(struct MHD_Connection *conn, const char *method, const char *url)
{
	struct req *rq = calloc(1, sizeof(*rq));
	uint8_t rnd[8];

	if (rq == NULL)
		return NULL;
	rq->conn = conn;
	rq->t0 = now_ns();
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), rq->id);
	str_copy(rq->method, sizeof(rq->method), method);
	if (strlen(url) >= sizeof(rq->url))
		rq->too_big = 2;	/* URL too long: answered as 414 */
	str_copy(rq->url, sizeof(rq->url), url);
	return rq;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct server *s = cls;
	struct req *rq = *con_cls;
	(void)version;

	if (rq == NULL) {
		if ((rq = req_new(conn, method, url)) == NULL)
			return MHD_NO;
		*con_cls = rq;
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH);
		int64_t n;
		if (cl != NULL && parse_int64(cl, 0, INT64_MAX, &n) == 0 && n > s->cfg->max_body) {
			/* refuse before reading the body */
			log_set_id(rq->id);
			req_reply_error(rq, ERR_TOO_BIG, NULL);
			enum MHD_Result ret = queue_response(s, rq);
			log_set_id(NULL);
			return ret;
		}
		return MHD_YES;
	}
	if (rq->queued) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	log_set_id(rq->id);
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (rq->too_big || rq->len + n > (size_t)s->cfg->max_body) {
			rq->too_big = 1;
			if (rq->body != NULL)
				OPENSSL_clear_free(rq->body, rq->len + 1);
			rq->body = NULL;
			rq->len = 0;
			log_set_id(NULL);
			return MHD_YES;
		}
		/* grown by copy, never realloc: the old block is wiped (a
		 * body may hold a PIN) */
		char *nb = OPENSSL_malloc(rq->len + n + 1);
		if (nb == NULL) {
			log_set_id(NULL);
			return MHD_NO;
		}
		if (rq->body != NULL) {
			memcpy(nb, rq->body, rq->len);
			OPENSSL_clear_free(rq->body, rq->len + 1);
		}
		memcpy(nb + rq->len, upload_data, n);
		rq->body = nb;
		rq->len += n;
		rq->body[rq->len] = '\0';
		log_set_id(NULL);
		return MHD_YES;
	}
	/* the whole request is here (or we were resumed) */
	if (!rq->responded && !rq->suspended) {
		if (rq->too_big == 2)
			req_reply_json(rq, 414, json_pack("{s:{s:s,s:s,s:s}}", "error",
			    "code", "uri_too_long", "message", "The URL is too long.",
			    "request_id", rq->id));
		else
			dispatch(s, rq);
	}
	enum MHD_Result ret = MHD_YES;
	if (rq->responded && rq->resp_type != NULL)
		ret = queue_response(s, rq);
	else if (!rq->suspended) {
		req_reply_error(rq, ERR_INTERNAL, NULL);
		ret = queue_response(s, rq);
	}
	json_plain = 0;
	log_set_id(NULL);
	return ret;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct req *rq = *con_cls;
	(void)cls;
	(void)conn;

	if (rq == NULL)
		return;
	log_set_id(rq->id);
	log_info("%s %s -> %d (%.1f ms)%s", rq->method, rq->url, rq->status,
	    (double)(now_ns() - rq->t0) / 1e6,
	    toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
	log_set_id(NULL);
	req_free(rq);
	*con_cls = NULL;
}

/*
 * Percent-decoding of the URL and its arguments: libmicrohttpd's, except
 * that a decoded NUL ("%00") becomes DEL (0x7f), which every name, address
 * and serial check refuses: otherwise the C string would end there and
 * "/v1/users/alice%00x" would name alice.
 */
static size_t
unescape(void *cls, struct MHD_Connection *c, char *s)
{
	size_t n = MHD_http_unescape(s);
	(void)cls;
	(void)c;

	for (size_t i = 0; i < n; i++)
		if (s[i] == '\0')
			s[i] = 0x7f;
	return n;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	(void)cls;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_warnx("microhttpd: %s", buf);
}

/* ---------------------------------------------------------------------
 * Start and stop.
 */
static int
load_pem_files(const struct config *cfg, char **cert, char **key, char **ca)
{
	int r;

	*cert = *key = *ca = NULL;
	if ((r = file_read_all(cfg->tls_cert, 1 << 20, cert, NULL)) != 0 ||
	    (r = file_read_all(cfg->tls_key, 1 << 20, key, NULL)) != 0)
		return r;
	if (cfg->tls_client_ca != NULL &&
	    (r = file_read_all(cfg->tls_client_ca, 1 << 20, ca, NULL)) != 0)
		return r;
	return 0;
}

static int
parse_listen(const struct config *cfg, struct sockaddr_storage *ss, unsigned *flags)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	if (inet_pton(AF_INET, cfg->listen, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)cfg->port);
		return 0;
	}
	if (inet_pton(AF_INET6, cfg->listen, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)cfg->port);
		*flags |= MHD_USE_IPv6;
		return 0;
	}
	log_errx("server.listen \"%s\" is not an IPv4 or IPv6 address", cfg->listen);
	return ERR_CONFIG;
}

/* jansson's memory: wiped when freed, since parsed bodies hold PINs */
static void *
json_alloc(size_t n)
{
	return malloc(n);
}

static void
json_free_wipe(void *p)
{
	if (p == NULL)
		return;
	if (!json_plain)
		OPENSSL_cleanse(p, malloc_usable_size(p));
	free(p);
}

int
server_start(const struct config *cfg, const char *self, const char *conf,
    struct server **out)
{
	struct server *s;
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	char *cert = NULL, *key = NULL, *ca = NULL, path[4096];
	int r = ERR_INTERNAL;
	long threads = cfg->threads > 0 ? (long)cfg->threads : sysconf(_SC_NPROCESSORS_ONLN);

	*out = NULL;
	json_set_alloc_funcs(json_alloc, json_free_wipe);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ERR_NOMEM;
	s->cfg = cfg;
	pthread_mutex_init(&s->tok_mu, NULL);
	pthread_mutex_init(&s->crl_mu, NULL);
	s->policy.allow_rsa = cfg->allow_rsa;
	s->policy.max_csr = (size_t)cfg->max_csr;
	atomic_store(&s->crl_stale, 1);

	snprintf(path, sizeof(path), "%s/chain.pem", cfg->ca_dir);
	if ((r = file_read_all(path, 1 << 20, &s->chain_pem, NULL)) != 0) {
		log_errx("cannot read the CA chain %s: run \"provd ca init\" first", path);
		goto fail;
	}
	if ((r = db_open(cfg, &s->db)) != 0) {
		log_errx("cannot connect to the database: %s", provd_strerror(r));
		goto fail;
	}
	int version = 0;
	if ((r = db_schema_version(s->db, &version)) != 0 || version < db_schema_latest()) {
		log_errx("the database schema is at version %d, this provd needs %d: "
		    "run \"provd migrate\" first", version, db_schema_latest());
		r = r ? r : ERR_CONFIG;
		goto fail;
	}
	if (strcmp(cfg->ca_mode, "cmp") == 0) {
		/* an external CA: no key here, no signer process */
		if ((r = ca_cmp_open(cfg, &s->cmp)) != 0) {
			log_errx("cannot use the external CA: %s", provd_strerror(r));
			goto fail;
		}
		log_info("certificates come from the external CA at %s (CMP)", ca_cmp_url(s->cmp));
	} else if ((r = ca_signer_start(self, conf, &s->signer)) != 0) {
		log_errx("cannot start the CA signer: %s", provd_strerror(r));
		goto fail;
	}
	if ((r = db_writer_start(s->db, (size_t)cfg->db_batch_max, &s->writer)) != 0)
		goto fail;
	if ((r = intake_start(s)) != 0)
		goto fail;
	if ((r = ocsp_start(s)) != 0)
		goto fail;
	if ((r = authz_start(s)) != 0)
		goto fail;
	if ((r = dirsync_start(s)) != 0)
		goto fail;
	if ((r = console_start(s)) != 0)
		goto fail;
	if ((r = parse_listen(cfg, &ss, &flags)) != 0)
		goto fail;
	if (cfg->tls_cert != NULL) {
		if ((r = load_pem_files(cfg, &cert, &key, &ca)) != 0) {
			log_errx("cannot read the TLS certificate or key");
			goto fail;
		}
		flags |= MHD_USE_TLS;
	}
	struct MHD_OptionItem opts[] = {
		{ MHD_OPTION_SOCK_ADDR, 0, &ss },
		{ MHD_OPTION_THREAD_POOL_SIZE, threads, NULL },
		{ MHD_OPTION_CONNECTION_LIMIT, (intptr_t)cfg->max_connections, NULL },
		/* libmicrohttpd clears a connection's memory pool for each request:
		 * 16 KiB (not its default 32) holds the request line and headers
		 * (the URL is bounded at 256 bytes; bodies go to our own buffer) */
		{ MHD_OPTION_CONNECTION_MEMORY_LIMIT, 16 * 1024, NULL },
		{ MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL },
		{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s },
		{ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, s },
		{ MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape, NULL },
		{ cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, cert },
		{ key ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, key },
		{ ca ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, ca },
		/* a context per connection for its client certificate; after
		 * the TLS entries, whose MHD_OPTION_END ends the list early */
		{ ca ? MHD_OPTION_NOTIFY_CONNECTION : MHD_OPTION_END, (intptr_t)on_connection, NULL },
		{ MHD_OPTION_END, 0, NULL },
	};
	s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
	    MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (key != NULL)
		OPENSSL_cleanse(key, strlen(key));
	free(cert);
	free(key);
	free(ca);
	cert = key = ca = NULL;
	if (s->mhd == NULL) {
		log_errx("cannot listen on %s port %lld: %s", cfg->listen,
		    (long long)cfg->port, strerror(errno));
		r = ERR_IO;
		goto fail;
	}
	if (cfg->tls_cert == NULL && strcmp(cfg->listen, "127.0.0.1") != 0 &&
	    strcmp(cfg->listen, "::1") != 0)
		log_warnx("serving plain HTTP on %s: API tokens cross the network in clear; "
		    "set server.tls_cert and server.tls_key", cfg->listen);
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di ? di->port : (int)cfg->port;
	log_info("listening on %s port %d (%s, %ld threads)", cfg->listen, s->port,
	    flags & MHD_USE_TLS ? "https" : "http", threads);
	*out = s;
	return 0;
fail:
	free(cert);
	free(key);
	free(ca);
	server_stop(s);
	return r;
}

int
server_port(const struct server *s)
{
	return s->port;
}

void
server_stop(struct server *s)
{
	if (s == NULL)
		return;
	/* stop accepting, let queued issuances finish (they resume their
	 * connections), then close everything */
	if (s->mhd != NULL)
		MHD_quiesce_daemon(s->mhd);
	/* requests in threads of their own end within the CA's timeouts */
	while (atomic_load(&s->offloaded) > 0) {
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	intake_stop(s->intake);
	console_stop(s);
	dirsync_stop(s);
	authz_stop(s);
	ocsp_stop(s);
	db_writer_stop(s->writer);
	if (s->mhd != NULL)
		MHD_stop_daemon(s->mhd);
	ca_signer_stop(s->signer);
	ca_cmp_close(s->cmp);
	db_close(s->db);
	free(s->chain_pem);
	free(s->crl_der);
	pthread_mutex_destroy(&s->tok_mu);
	pthread_mutex_destroy(&s->crl_mu);
	free(s);
}
