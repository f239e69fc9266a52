/*
 * server_int.h: what the HTTP core (http.c) and the route files share —
 * the request context, the route table entry, response helpers.
 */
#ifndef PROVD_SERVER_INT_H
#define PROVD_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/x509.h>

#include "common/common.h"
#include "ca/ca.h"
#include "db/db.h"
#include "server/server.h"

#define ROUTE_MAX_PARAMS 2
#define ROUTE_PARAM_MAX 256		/* bytes of one path parameter (the URL's bound) */
#define REQ_ID_LEN 20
#define REQ_HEADERS_MAX 8		/* extra response headers */

/* How a caller authenticated (struct req auth_by). */
enum { AUTH_BY_NONE = 0, AUTH_BY_TOKEN, AUTH_BY_SESSION, AUTH_BY_CERT };

/* Role bits a route accepts; 0 means no authentication. */
#define ROLE_BIT(r) (1u << (r))
#define ROLES_READ (ROLE_BIT(DB_ROLE_OPERATOR) | ROLE_BIT(DB_ROLE_SECURITY) | \
	ROLE_BIT(DB_ROLE_ADMIN) | ROLE_BIT(DB_ROLE_VIEWER))
#define ROLES_ISSUE (ROLE_BIT(DB_ROLE_OPERATOR) | ROLE_BIT(DB_ROLE_ADMIN))
#define ROLES_REVOKE (ROLE_BIT(DB_ROLE_OPERATOR) | ROLE_BIT(DB_ROLE_SECURITY) | ROLE_BIT(DB_ROLE_ADMIN))
#define ROLES_AUDIT (ROLE_BIT(DB_ROLE_SECURITY) | ROLE_BIT(DB_ROLE_ADMIN))

struct req;
struct server;

/* A route handler either fills the response (req_reply_*) and returns, or
 * suspends the request (req_suspend) and completes it later with
 * req_complete(). */
typedef void route_fn(struct server *s, struct req *rq);

struct route {
	const char *method;
	const char *pattern;		/* "/v1/certificates/{}": {} is one segment;
					   a final {*} is the rest of the path */
	route_fn *fn;
	unsigned roles;			/* 0: public */
	int has_body;			/* expects a JSON body: 1, or 2 when it may
					   hold a secret (a PIN): its JSON is wiped
					   when freed, other routes' is not */
};

struct metrics {
	atomic_ullong http_2xx, http_4xx, http_5xx;
	atomic_ullong issued, issue_failed, revoked, crl_generated;
	atomic_ullong enrolled, enroll_failed;
	atomic_ullong issue_lat_buckets[12];	/* cumulative at export */
	atomic_ullong issue_lat_sum_us, issue_lat_count;
};

struct server {
	const struct config *cfg;
	struct MHD_Daemon *mhd;
	struct db *db;
	struct db_writer *writer;
	struct ca_signer *signer;	/* NULL with [ca] mode = cmp */
	struct ca_cmp *cmp;		/* [ca] mode = cmp: the external CA */
	atomic_int offloaded;		/* requests running in threads of their own */
	struct intake_mgr *intake;	/* NULL without a radio */
	struct ocsp_responder *ocsp;	/* NULL until started (ocsp.c) */
	struct dirsync *dirsync;	/* NULL without a directory (dirsync.c) */
	struct authz *authz;		/* the decision cache (authz.c) */
	struct ca_policy policy;
	char *chain_pem;		/* CA chain handed out with certificates */
	int port;
	struct metrics m;
	/* API token cache */
	pthread_mutex_t tok_mu;
	struct tok_entry {
		uint8_t hash[32];
		enum db_role role;
		char name[64];
		uint64_t expires_ns;
	} tok_cache[256];
	/* CRL cache */
	pthread_mutex_t crl_mu;
	uint8_t *crl_der;
	size_t crl_len;
	uint64_t crl_made_ns;
	atomic_int crl_stale;
	struct console *console;	/* login workers, static files (console.c) */
};

struct req {
	char id[REQ_ID_LEN];
	uint64_t t0;
	struct MHD_Connection *conn;
	const struct route *route;
	char method[8];
	char url[256];
	char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX];
	int nparams;
	/* body */
	char *body;
	size_t len;
	int too_big;
	json_t *json;			/* parsed body, when route->has_body */
	/* caller */
	enum db_role role;
	char actor[64];
	int auth_by;			/* AUTH_BY_*: how the caller authenticated */
	struct db_session session;	/* AUTH_BY_SESSION: the session (wiped) */
	/* response */
	int status;
	char *resp;			/* owned */
	size_t resp_len;
	const char *resp_type;		/* static */
	char cache_control[64];		/* Cache-Control of the response; "": no-store */
	int responded;			/* response ready to queue */
	int suspended;
	int offloaded;			/* running in a thread of its own (server_offload) */
	int queued;			/* handed to libmicrohttpd */
	struct req_header {		/* more response headers (req_add_header) */
		const char *name;	/* static */
		char *value;		/* owned, wiped when freed */
	} headers[REQ_HEADERS_MAX];
	int nheaders;
	/* route private state, freed by its cleanup */
	void *priv;
	void (*priv_free)(void *);
};

/* JSON reply: steals obj. */
void req_reply_json(struct req *rq, int status, json_t *obj);
/* req_reply_json(), or when obj is NULL (it could not be built) the error
 * reply for err. */
void req_reply_json_or(struct req *rq, int status, json_t *obj, int err);
/* Raw reply: takes ownership of a malloc'd buffer. */
void req_reply_raw(struct req *rq, int status, const char *type, char *buf, size_t len);
/* Error reply from the one error table; public_msg overrides the table's
 * message when not NULL (it must hold nothing internal). */
void req_reply_error(struct req *rq, int err, const char *public_msg);
/* Error reply with a status and public code outside the error table (429
 * too_many_requests, 403 csrf); msg must hold nothing internal. */
void req_reply_status(struct req *rq, int status, const char *code, const char *msg);
/* Adds a response header (name static, value copied; wiped when freed, as
 * it may be a Set-Cookie). Returns 0, ERR_TOO_BIG (REQ_HEADERS_MAX
 * reached) or ERR_NOMEM. */
int req_add_header(struct req *rq, const char *name, const char *value);
/* Marks the request as waiting for another thread; call before handing it
 * off. req_complete() then resumes it (from any thread) once a reply is set. */
void req_suspend(struct req *rq);
void req_complete(struct req *rq);

/* Checks that obj has only the listed keys; writes the first unknown key
 * into why. */
int json_only_keys(json_t *obj, const char *const *keys, char *why, size_t whylen);

/* Copies the optional "owner" (a name) and "groups" (an array of distinct
 * names) of body into new strings; on failure writes a public reason into
 * why, and the caller frees what was copied. */
int json_owner_groups(json_t *body, char **owner, char *groups[OPTDATA_MAX_ITEMS],
    size_t *ngroups, char *why, size_t whylen);
/* Has the signer make a device certificate for mac over spki (DER
 * SubjectPublicKeyInfo), owner, groups and roles (OPTDATA_ROLE_*; the
 * caller checks who may ask for one) in its optional-data extension; *der
 * is new (free()), and it gets mac, serial, fingerprint, validity and
 * der/derlen for recording. */
int server_sign(struct server *s, const uint8_t mac[MAC_LEN], const uint8_t *spki,
    size_t spkilen, const char *owner, const char *const *groups, size_t ngroups,
    const char *const *roles, size_t nroles, const uint8_t *csr, size_t csrlen,
    uint8_t **der, size_t *derlen, struct db_issue *it, char *why, size_t whylen);
/*
 * Runs fn(s, rq) in a thread of its own, the request suspended meanwhile and
 * resumed when fn returns; fn replies as a route does and sees
 * rq->offloaded set. For routes that wait on something slow outside provd
 * (an external CA over CMP, up to [ca] cmp_timeout_s a message with
 * retries), so that the HTTP threads stay free. At most OFFLOAD_MAX at
 * once (then 503); server_stop waits for them.
 */
#define OFFLOAD_MAX 64
void server_offload(struct server *s, struct req *rq, void (*fn)(struct server *, struct req *));
/* With [ca] mode = cmp: the external CA issues for the CSR (PEM or DER) over
 * CMP; it is filled from the certificate (serial, dates, fingerprint).
 * why says what went wrong. */
int server_cmp_issue(struct server *s, const uint8_t mac[MAC_LEN], const uint8_t *csr,
    size_t csrlen, uint8_t **der, size_t *derlen, struct db_issue *it, char *why,
    size_t whylen);
/* 1 with [ca] mode = cmp; then replies 404 naming the external CA for what
 * only a built-in CA serves (CRLs, OCSP, releasing a hold). */
int server_external_ca(struct server *s, struct req *rq);

/* Intake over the radio (intake.c): the enrollment jobs and the scanner.
 * intake_start does nothing (s->intake stays NULL) without [radio] backend. */
struct intake_mgr;
int intake_start(struct server *s);
/* Ends scans and waits, shuts the links of running enrollments and joins
 * them. NULL is a no-op. */
void intake_stop(struct intake_mgr *m);

/* OCSP responder (ocsp.c): RFC 6960 over HTTP, signed by the delegated
 * OCSP signing certificate in the CA directory. ocsp_invalidate drops what
 * is cached about a serial (a revocation happened). */
struct ocsp_responder;
int ocsp_start(struct server *s);
void ocsp_stop(struct server *s);
void ocsp_invalidate(struct server *s, const char *serial_hex);

/* Directory sync (dirsync.c): a worker drains the directory outbox into
 * LDAP. dirsync_start does nothing without [ldap] uri. dirsync_kick wakes
 * the worker (new outbox rows). */
struct dirsync;
int dirsync_start(struct server *s);
void dirsync_stop(struct server *s);
void dirsync_kick(struct server *s);

/* Central access control (authz.c): the decision cache and its listener.
 * authz_start loads the policy and starts the listener, which loads the
 * devices and follows the database's notifications. */
struct authz;
int authz_start(struct server *s);
void authz_stop(struct server *s);
void authz_stats(struct server *s, int *loaded, size_t *devices, int64_t *version,
    unsigned long long *decisions, unsigned long long *allowed, unsigned long long *cold);

#define ROLES_AUTHORIZE (ROLE_BIT(DB_ROLE_AUTHORIZER) | ROLE_BIT(DB_ROLE_ADMIN))
#define ROLES_POLICY (ROLE_BIT(DB_ROLE_SECURITY) | ROLE_BIT(DB_ROLE_ADMIN))

/* Client certificates (http.c): the certificate a TLS client presented, as
 * an OpenSSL X509 (*out new, X509_free()), or *out NULL when the connection
 * is plain HTTP or the client sent none. Nothing is verified here. */
int http_client_cert(struct req *rq, X509 **out);

/* Device certificates presented to provd (renew.c): x must chain to our CA
 * (the CA chain in chain.pem), be within its validity, and be on record as
 * the device's active certificate. Fills *c (db_cert_clear()) and returns 0;
 * ERR_AUTH with a public reason in why otherwise (ERR_FORBIDDEN when it is
 * ours and on record but expired: intake is the way back). */
int server_cert_verify(struct server *s, X509 *x, struct db_cert *c, char *why,
    size_t whylen);

/* Routes, defined in routes_*.c */
extern const struct route routes_table[];
extern const size_t routes_count;

void route_health(struct server *s, struct req *rq);
void route_metrics(struct server *s, struct req *rq);
void route_cert_issue(struct server *s, struct req *rq);
void route_cert_get(struct server *s, struct req *rq);
void route_cert_revoke(struct server *s, struct req *rq);
void route_device_revoke(struct server *s, struct req *rq);
void route_crl(struct server *s, struct req *rq);
void route_crl_delta(struct server *s, struct req *rq);
void route_cert_unrevoke(struct server *s, struct req *rq);
void route_device_unrevoke(struct server *s, struct req *rq);
void route_audit_verify(struct server *s, struct req *rq);
void route_intake_scan(struct server *s, struct req *rq);
void route_intake_enroll(struct server *s, struct req *rq);
void route_intake_get(struct server *s, struct req *rq);
void route_authorize(struct server *s, struct req *rq);
void route_authorize_batch(struct server *s, struct req *rq);
void route_authorize_radius(struct server *s, struct req *rq);
void route_policy_get(struct server *s, struct req *rq);
void route_resource_add(struct server *s, struct req *rq);
void route_resource_delete(struct server *s, struct req *rq);
void route_rule_add(struct server *s, struct req *rq);
void route_rule_replace(struct server *s, struct req *rq);
void route_rule_delete(struct server *s, struct req *rq);
void route_group_add_device(struct server *s, struct req *rq);
void route_group_del_device(struct server *s, struct req *rq);
void route_group_add_user(struct server *s, struct req *rq);
void route_group_del_user(struct server *s, struct req *rq);
void route_ocsp_get(struct server *s, struct req *rq);
void route_ocsp_post(struct server *s, struct req *rq);
void route_directory_resync(struct server *s, struct req *rq);
void route_directory_status(struct server *s, struct req *rq);
/* renewal (renew.c) */
void route_renew(struct server *s, struct req *rq);
void route_renew_status(struct server *s, struct req *rq);
void route_device_renew_request(struct server *s, struct req *rq);
void route_group_validity(struct server *s, struct req *rq);
/* devices, users, groups (routes_devices.c) */
void route_device_list(struct server *s, struct req *rq);
void route_device_get(struct server *s, struct req *rq);
void route_device_owner(struct server *s, struct req *rq);
void route_user_list(struct server *s, struct req *rq);
void route_user_delete(struct server *s, struct req *rq);
void route_group_list(struct server *s, struct req *rq);
void route_group_get(struct server *s, struct req *rq);
/* the web console's reads: the audit log and the overview
 * (routes_console.c), this instance's recent decisions and a tried
 * question (authz.c) */
void route_audit_list(struct server *s, struct req *rq);
void route_stats(struct server *s, struct req *rq);
void route_decisions(struct server *s, struct req *rq);
void route_authorize_try(struct server *s, struct req *rq);

/* Query arguments of listing routes (routes_devices.c). Each answers 400
 * itself and returns ERR_INVALID when an argument is wrong.
 * req_query_only: only the arguments of allowed (NULL-terminated, at most
 * 32), each at most once. req_query_get: the value, or NULL (borrowed
 * from the request). req_query_limit: "limit", 1 to DB_LIST_MAX, default
 * 100. req_query_name: a name argument (NULL when absent).
 * req_query_time: an RFC 3339 time as PostgreSQL timestamptz text in UTC
 * (*set 0 when absent). */
#define REQ_TIME_LEN 40
int req_query_only(struct req *rq, const char *const *allowed);
const char *req_query_get(struct req *rq, const char *key);
int req_query_limit(struct req *rq, size_t *limit);
int req_query_name(struct req *rq, const char *key, const char **out);
int req_query_time(struct req *rq, const char *key, char out[REQ_TIME_LEN], int *set);

/* Web console (console.c): login sessions and the console's static files.
 * console_start makes the login workers (a login's scrypt runs there, not
 * on an HTTP thread) and finds [console] dir; console_stop answers queued
 * logins with 503 and joins the workers (NULL console is a no-op).
 * console_authenticate checks a provd_session cookie: sets rq->role,
 * rq->actor ("console:NAME") and rq->session; for a method other than GET
 * and HEAD the X-CSRF-Token header must equal the session's CSRF token.
 * Returns 0, ERR_AUTH (no such session, or it expired; why gets a public
 * reason), ERR_FORBIDDEN (CSRF token missing or wrong), ERR_DB or
 * ERR_UNAVAILABLE. */
#define SESSION_COOKIE "provd_session"
struct console;
int console_start(struct server *s);
void console_stop(struct server *s);
int console_authenticate(struct server *s, struct req *rq, const char *cookie, char *why,
    size_t whylen);
void route_session_login(struct server *s, struct req *rq);
void route_session_get(struct server *s, struct req *rq);
void route_session_logout(struct server *s, struct req *rq);
void route_console_redirect(struct server *s, struct req *rq);
void route_console_index(struct server *s, struct req *rq);
void route_console_file(struct server *s, struct req *rq);

#endif
