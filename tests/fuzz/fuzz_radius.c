/*
 * fuzz_radius.c: libFuzzer target for POST /v1/authorize/radius
 * (server/routes_radius.c, included here): rlm_rest's JSON as anyone who
 * holds an authorizer token can send it. The route runs whole, with the
 * HTTP core, the database and POST /v1/authorize replaced by stubs that
 * check what the route hands them. Input: one byte choosing the query
 * arguments, then the body.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "server/routes_radius.c"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config g_cfg;
static struct server g_srv;
static int g_dummy_authz;
static const char *g_resource, *g_action, *g_unknown_arg;
static int g_asked;			/* route_authorize was called */

/* ---------------------------------------------------------------------
 * Stubs of the HTTP core (http.c, routes_devices.c).
 */
void
req_reply_error(struct req *rq, int err, const char *public_msg)
{
	(void)public_msg;
	free(rq->resp);
	rq->resp = NULL;
	rq->status = err == ERR_INVALID || err == ERR_BAD_MAC ? 400 : err == ERR_DB ||
	    err == ERR_UNAVAILABLE ? 503 : 500;
	rq->responded = 1;
}

void
req_reply_json_or(struct req *rq, int status, json_t *obj, int err)
{
	if (obj == NULL) {
		req_reply_error(rq, err, NULL);
		return;
	}
	free(rq->resp);
	rq->resp = json_dumps(obj, JSON_COMPACT);
	rq->resp_len = rq->resp ? strlen(rq->resp) : 0;
	rq->status = status;
	rq->responded = 1;
	json_decref(obj);
}

int
req_query_only(struct req *rq, const char *const *allowed)
{
	(void)allowed;
	if (g_unknown_arg != NULL) {
		req_reply_error(rq, ERR_INVALID, "Unknown query argument.");
		return ERR_INVALID;
	}
	return 0;
}

const char *
req_query_get(struct req *rq, const char *key)
{
	(void)rq;
	if (strcmp(key, "resource") == 0)
		return g_resource;
	if (strcmp(key, "action") == 0)
		return g_action;
	return NULL;
}

void
authz_stats(struct server *s, int *loaded, size_t *devices, int64_t *version,
    unsigned long long *decisions, unsigned long long *allowed, unsigned long long *cold)
{
	(void)s;
	*loaded = 1;
	*devices = 1;
	*version = 7;
	*decisions = *allowed = *cold = 0;
}

/* ---------------------------------------------------------------------
 * The database: a serial ending in an even digit is device
 * 02:00:00:00:00:01's certificate, one ending in 'f' makes the database
 * unreachable, any other is unknown.
 */
int
db_cert_by_serial(struct db *db, const char *serial_hex, struct db_cert *out)
{
	static const uint8_t mac[MAC_LEN] = { 2, 0, 0, 0, 0, 1 };
	size_t n = strlen(serial_hex);
	int last;

	(void)db;
	memset(out, 0, sizeof(*out));
	if (n != 32)
		abort();	/* the route pads to 32 digits */
	for (size_t i = 0; i < n; i++)
		if (hex_digit((unsigned char)serial_hex[i]) < 0 ||
		    (serial_hex[i] >= 'A' && serial_hex[i] <= 'F'))
			abort();	/* ... of lowercase hex */
	last = hex_digit((unsigned char)serial_hex[31]);
	if (last == 15)
		return ERR_DB;
	if (last % 2 != 0)
		return ERR_NOT_FOUND;
	memcpy(out->serial_hex, serial_hex, 33);
	memcpy(out->mac, mac, MAC_LEN);
	memset(out->fingerprint, 0xab, sizeof(out->fingerprint));
	return 0;
}

void
db_cert_clear(struct db_cert *c)
{
	memset(c, 0, sizeof(*c));
}

/* ---------------------------------------------------------------------
 * POST /v1/authorize: the question must be a well-formed one by
 * certificate; the action "print" is denied, anything else allowed.
 */
void
route_authorize(struct server *s, struct req *rq)
{
	json_t *q = rq->json, *dev = json_object_get(q, "device");
	const char *fp = json_string_value(json_object_get(dev, "certificate_sha256"));
	const char *res = json_string_value(json_object_get(q, "resource"));
	const char *act = json_string_value(json_object_get(q, "action"));
	json_t *ans;

	(void)s;
	g_asked = 1;
	if (json_object_size(q) != 3 || json_object_size(dev) != 1 || fp == NULL ||
	    strlen(fp) != 64 || res == NULL || act == NULL || optdata_check_name(res) != 0 ||
	    optdata_check_name(act) != 0 || strlen(act) > 64)
		abort();
	ans = json_pack("{s:s,s:s,s:i,s:i}", "decision", strcmp(act, "print") == 0 ? "deny" :
	    "allow", "reason", "stub", "ttl_s", 30, "policy_version", 7);
	req_reply_json_or(rq, 200, ans, ERR_NOMEM);
}

/* ---------------------------------------------------------------------
 * A CA certificate for chain.pem, made once.
 */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long len;
	(void)argc;
	(void)argv;

	log_init("fuzz_radius", LOG_LVL_ERROR, 0, 0);
	if (k == NULL || x == NULL || n == NULL || b == NULL ||
	    !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"Fuzz CA",
	    -1, -1, 0) || !X509_set_subject_name(x, n) || !X509_set_issuer_name(x, n) ||
	    !X509_set_pubkey(x, k) || !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || !X509_sign(x, k, EVP_sha256()) ||
	    !PEM_write_bio_X509(b, x) || (len = BIO_get_mem_data(b, &p)) <= 0 ||
	    (g_srv.chain_pem = strndup(p, (size_t)len)) == NULL)
		abort();
	X509_NAME_free(n);
	X509_free(x);
	EVP_PKEY_free(k);
	BIO_free(b);
	g_cfg.authz_ttl_s = 30;
	g_srv.cfg = &g_cfg;
	g_srv.authz = (struct authz *)&g_dummy_authz;	/* only tested for NULL */
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const resources[] = { NULL, "ap-lobby-3", "a\x01", "" };
	static const char *const actions[] = { NULL, "connect", "print", "" };
	struct radius_attrs ra;
	struct req rq;
	char why[240];
	json_t *body;
	int parsed;

	if (size < 1)
		return 0;
	g_resource = resources[data[0] & 3];
	g_action = actions[(data[0] >> 2) & 3];
	g_unknown_arg = (data[0] & 0x10) ? "vlan" : NULL;
	if ((body = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES,
	    NULL)) == NULL)
		return 0;

	/* the parser alone: what it accepts is what the route relies on */
	parsed = radius_parse(body, &ra, why, sizeof(why)) == 0;
	if (parsed) {
		if (strlen(ra.serial) != 32 || ra.issuer == NULL || ra.subject == NULL ||
		    strlen(ra.issuer) >= RADIUS_DN_MAX || strlen(ra.subject) >= RADIUS_DN_MAX)
			abort();
		for (size_t i = 0; i < 32; i++)
			if (hex_digit((unsigned char)ra.serial[i]) < 0)
				abort();
	} else if (why[0] == '\0') {
		abort();	/* every refusal says why */
	}

	/* the whole route */
	memset(&rq, 0, sizeof(rq));
	rq.json = body;
	g_asked = 0;
	route_authorize_radius(&g_srv, &rq);
	if (!rq.responded || rq.json != body)
		abort();
	if (!parsed && rq.status != 400)
		abort();
	if (g_asked && rq.status != 500 && rq.status != 503) {
		/* the answer of POST /v1/authorize, its status saying the decision */
		int deny = g_action != NULL && strcmp(g_action, "print") == 0;
		if (rq.status != (deny ? 403 : 200))
			abort();
	}
	if (rq.status == 200 && !g_asked)
		abort();	/* only POST /v1/authorize allows */
	free(rq.resp);
	json_decref(body);
	return 0;
}
