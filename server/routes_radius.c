/*
 * routes_radius.c: POST /v1/authorize/radius, the access-control question
 * as FreeRADIUS's rlm_rest asks it in post-auth after EAP-TLS (body =
 * "json": every attribute of the request as {"NAME": {"type": T, "value":
 * [V, ...]}}). The device is the certificate FreeRADIUS verified, found by
 * its serial and issuer; resource and action come from the URL. The
 * question is decided by POST /v1/authorize, and the answer's status says
 * it to rlm_rest: 200 allow, 403 deny (docs/radius.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "server/server_int.h"

#define RADIUS_ATTRS_MAX 512		/* attributes in one request */
#define RADIUS_VALUES_MAX 64		/* values of one attribute */
#define RADIUS_NAME_MAX 128		/* bytes of an attribute's name */
#define RADIUS_TYPE_MAX 32		/* bytes of an attribute's type */
#define RADIUS_VALUE_MAX 4096		/* bytes of one string value */
#define RADIUS_DN_MAX 1024		/* FreeRADIUS's buffer for the subject and
					   issuer (X509_NAME_oneline), NUL included */
#define RADIUS_ACTION_MAX 64

/* What the question needs from rlm_rest's attributes; the strings are
 * borrowed from the parsed body. */
struct radius_attrs {
	char serial[33];		/* TLS-Client-Cert-Serial, 32 lowercase hex */
	const char *issuer;		/* TLS-Client-Cert-Issuer */
	const char *subject;		/* TLS-Client-Cert-Subject */
	const char *nas_id;		/* NAS-Identifier, NULL when absent */
};

/* Up to outlen - 1 bytes of s for a log line or a message: printable ASCII
 * but '"' and '\\', anything else as '?'. */
static void
printable(const char *s, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < outlen; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\' ? s[i] : '?';
	out[i] = '\0';
}

/* An attribute's name: 1..RADIUS_NAME_MAX of letters, digits and - _ . : */
static int
attr_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > RADIUS_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == ':'))
			return 0;
	}
	return 1;
}

/* A type name: 1..RADIUS_TYPE_MAX of lowercase letters, digits and - */
static int
attr_type_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > RADIUS_TYPE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

/* One attribute {"type": T, "value": [V, ...], "attr_num": N?}: checks its
 * shape. */
static int
attr_check(const char *name, json_t *a, char *why, size_t whylen)
{
	const char *k;
	json_t *v, *type, *values, *num;
	size_t i;

	if (!json_is_object(a))
		goto bad;
	json_object_foreach(a, k, v)
		if (strcmp(k, "type") != 0 && strcmp(k, "value") != 0 && strcmp(k, "attr_num") != 0)
			goto bad;
	type = json_object_get(a, "type");
	values = json_object_get(a, "value");
	num = json_object_get(a, "attr_num");
	if (!json_is_string(type) || !attr_type_ok(json_string_value(type)) ||
	    !json_is_array(values) || json_array_size(values) == 0 ||
	    json_array_size(values) > RADIUS_VALUES_MAX ||
	    (num != NULL && (!json_is_integer(num) || json_integer_value(num) < 0)))
		goto bad;
	json_array_foreach(values, i, v)
		if (!(json_is_integer(v) || json_is_real(v) ||
		    (json_is_string(v) && json_string_length(v) <= RADIUS_VALUE_MAX)))
			goto bad;
	return 0;
bad:
	msg_set(why, whylen, "Attribute \"%s\" must be {\"type\": TYPE, \"value\": [1 to %d "
	    "numbers or strings of at most %d bytes]}, as rlm_rest sends with body = \"json\".",
	    name, RADIUS_VALUES_MAX, RADIUS_VALUE_MAX);
	return ERR_INVALID;
}

/* The single string value of a string attribute, of 1..max bytes without a
 * NUL; NULL otherwise. */
static const char *
attr_string(json_t *a, size_t max)
{
	json_t *values = json_object_get(a, "value"), *v;

	if (strcmp(json_string_value(json_object_get(a, "type")), "string") != 0 ||
	    json_array_size(values) != 1)
		return NULL;
	v = json_array_get(values, 0);
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

/* FreeRADIUS writes the serial as two lowercase hex digits per byte of the
 * ASN.1 integer's magnitude, without leading zero bytes: provd's serials
 * are 16 bytes, so 2 to 32 digits, padded here to 32. */
static int
serial_take(const char *s, char out[33])
{
	size_t n = strlen(s);

	if (n < 2 || n > 32 || n % 2 != 0)
		return ERR_INVALID;
	memset(out, '0', 32 - n);
	for (size_t i = 0; i < n; i++) {
		if (hex_digit((unsigned char)s[i]) < 0)
			return ERR_INVALID;
		out[32 - n + i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]);
	}
	out[32] = '\0';
	return 0;
}

/* Checks rlm_rest's JSON (body) and takes out what the question needs.
 * Returns 0, or ERR_INVALID with a public reason in why. */
static int
radius_parse(json_t *body, struct radius_attrs *ra, char *why, size_t whylen)
{
	const char *name, *sv;
	json_t *a, *serial, *issuer, *subject, *nas;
	int r;

	memset(ra, 0, sizeof(*ra));
	if (!json_is_object(body) || json_object_size(body) == 0 ||
	    json_object_size(body) > RADIUS_ATTRS_MAX) {
		msg_set(why, whylen, "The body must be rlm_rest's JSON (body = \"json\"): an object "
		    "of 1 to %d attributes.", RADIUS_ATTRS_MAX);
		return ERR_INVALID;
	}
	json_object_foreach(body, name, a) {
		if (!attr_name_ok(name)) {
			char shown[65];
			printable(name, shown, sizeof(shown));
			msg_set(why, whylen, "\"%s%s\" is not an attribute name (1 to %d letters, "
			    "digits, '-', '_', '.' or ':').", shown,
			    strlen(name) >= sizeof(shown) ? "..." : "", RADIUS_NAME_MAX);
			return ERR_INVALID;
		}
		if ((r = attr_check(name, a, why, whylen)) != 0)
			return r;
	}
	serial = json_object_get(body, "TLS-Client-Cert-Serial");
	issuer = json_object_get(body, "TLS-Client-Cert-Issuer");
	subject = json_object_get(body, "TLS-Client-Cert-Subject");
	if (serial == NULL || issuer == NULL || subject == NULL) {
		msg_set(why, whylen, "TLS-Client-Cert-Serial, TLS-Client-Cert-Issuer and "
		    "TLS-Client-Cert-Subject are required: ask from post-auth, after EAP-TLS.");
		return ERR_INVALID;
	}
	sv = attr_string(serial, 32);
	if (sv == NULL || serial_take(sv, ra->serial) != 0) {
		msg_set(why, whylen, "TLS-Client-Cert-Serial must be one string of 2 to 32 hex "
		    "digits, two a byte.");
		return ERR_INVALID;
	}
	if ((ra->issuer = attr_string(issuer, RADIUS_DN_MAX - 1)) == NULL ||
	    (ra->subject = attr_string(subject, RADIUS_DN_MAX - 1)) == NULL) {
		msg_set(why, whylen, "TLS-Client-Cert-Issuer and TLS-Client-Cert-Subject must each "
		    "be one string of 1 to %d bytes.", RADIUS_DN_MAX - 1);
		return ERR_INVALID;
	}
	if ((nas = json_object_get(body, "NAS-Identifier")) != NULL &&
	    (ra->nas_id = attr_string(nas, RADIUS_VALUE_MAX)) == NULL) {
		msg_set(why, whylen, "NAS-Identifier must be one string.");
		return ERR_INVALID;
	}
	return 0;
}

/* The subject of provd's issuing CA (the first certificate of chain.pem) as
 * FreeRADIUS writes TLS-Client-Cert-Issuer: X509_NAME_oneline into a buffer
 * of RADIUS_DN_MAX. */
static int
issuer_oneline(struct server *s, char out[RADIUS_DN_MAX])
{
	BIO *b = BIO_new_mem_buf(s->chain_pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	int r = ERR_INTERNAL;

	if (x != NULL && X509_NAME_oneline(X509_get_subject_name(x), out, RADIUS_DN_MAX) != NULL)
		r = 0;
	else
		log_ossl("cannot read the issuing CA from chain.pem");
	X509_free(x);
	BIO_free(b);
	return r;
}

/* A denial decided here, before a device is known (as POST /v1/authorize
 * words it); version as there: 0 for an unknown certificate, the current
 * one for a certificate of another CA. */
static void
reply_deny(struct server *s, struct req *rq, const char *reason, int with_version)
{
	int loaded;
	size_t ndev;
	int64_t version = 0;
	unsigned long long d, a, c;

	if (with_version)
		authz_stats(s, &loaded, &ndev, &version, &d, &a, &c);
	req_reply_json_or(rq, 403, json_pack("{s:s,s:s,s:I,s:I}", "decision", "deny", "reason",
	    reason, "ttl_s", (json_int_t)s->cfg->authz_ttl_s, "policy_version",
	    (json_int_t)version), ERR_NOMEM);
}

/* The resource (?resource=, else NAS-Identifier) and action (?action=,
 * else "connect"); answers 400 itself when one is wrong. */
static int
resource_action(struct req *rq, const struct radius_attrs *ra, const char **resource,
    const char **action)
{
	static const char *const args[] = { "resource", "action", NULL };

	if (req_query_only(rq, args) != 0)
		return ERR_INVALID;
	if ((*resource = req_query_get(rq, "resource")) == NULL)
		*resource = ra->nas_id;
	if (*resource == NULL) {
		req_reply_error(rq, ERR_INVALID, "No resource: name it in the URL "
		    "(?resource=NAME) or send NAS-Identifier.");
		return ERR_INVALID;
	}
	if (optdata_check_name(*resource) != 0) {
		req_reply_error(rq, ERR_INVALID, "The resource must be a name of 1 to 128 "
		    "printable characters.");
		return ERR_INVALID;
	}
	if ((*action = req_query_get(rq, "action")) == NULL)
		*action = "connect";
	if (optdata_check_name(*action) != 0 || strlen(*action) > RADIUS_ACTION_MAX) {
		req_reply_error(rq, ERR_INVALID, "action must be a name of 1 to 64 printable "
		    "characters.");
		return ERR_INVALID;
	}
	return 0;
}

void
route_authorize_radius(struct server *s, struct req *rq)
{
	struct radius_attrs ra;
	struct db_cert c = { 0 };
	char why[240] = "", ca_dn[RADIUS_DN_MAX], subject[sizeof("/serialNumber=") + MAC_STR_LEN];
	char mac[MAC_STR_LEN], fp[65], shown[201];
	const char *resource, *action;
	json_t *q = NULL, *body, *ans;
	int r;

	if (s->authz == NULL) {	/* as POST /v1/authorize answers */
		req_reply_error(rq, ERR_UNAVAILABLE, "The authorization service is starting; "
		    "retry shortly.");
		return;
	}
	if (radius_parse(rq->json, &ra, why, sizeof(why)) != 0) {
		req_reply_error(rq, ERR_INVALID, why);
		return;
	}
	if (resource_action(rq, &ra, &resource, &action) != 0)
		return;
	if (issuer_oneline(s, ca_dn) != 0) {
		req_reply_error(rq, ERR_INTERNAL, NULL);
		return;
	}
	if (strcmp(ra.issuer, ca_dn) != 0) {
		printable(ra.issuer, shown, sizeof(shown));
		log_info("RADIUS question about serial %s from issuer %s: not this CA",
		    ra.serial, shown);
		reply_deny(s, rq, "certificate not issued by this CA", 1);
		return;
	}
	if ((r = db_cert_by_serial(s->db, ra.serial, &c)) == ERR_NOT_FOUND) {
		log_info("RADIUS question about serial %s: no such certificate", ra.serial);
		reply_deny(s, rq, "unknown certificate", 0);
		goto out;
	} else if (r != 0) {
		req_reply_error(rq, r, NULL);
		goto out;
	}
	/* the same serial and issuer name, another subject: not ours */
	mac_format(c.mac, mac);
	snprintf(subject, sizeof(subject), "/serialNumber=%s", mac);
	if (strcmp(ra.subject, subject) != 0) {
		printable(ra.subject, shown, sizeof(shown));
		log_info("RADIUS question about serial %s: subject %s is not %s's",
		    ra.serial, shown, mac);
		reply_deny(s, rq, "certificate not issued by this CA", 1);
		goto out;
	}
	/* POST /v1/authorize by the certificate's SHA-256 decides (and keeps
	 * the decision among the recent ones); its answer is this one */
	hex_encode(c.fingerprint, sizeof(c.fingerprint), fp);
	if ((q = json_pack("{s:{s:s},s:s,s:s}", "device", "certificate_sha256", fp,
	    "resource", resource, "action", action)) == NULL) {
		req_reply_error(rq, ERR_NOMEM, NULL);
		goto out;
	}
	body = rq->json;
	rq->json = q;
	route_authorize(s, rq);
	rq->json = body;
	if (rq->status != 200)
		goto out;	/* refused (503): rlm_rest rejects */
	ans = json_loadb(rq->resp, rq->resp_len, 0, NULL);
	if (!json_is_string(json_object_get(ans, "decision"))) {
		log_warnx("the answer of POST /v1/authorize has no decision");
		req_reply_error(rq, ERR_INTERNAL, NULL);
	} else if (strcmp(json_string_value(json_object_get(ans, "decision")), "allow") != 0) {
		rq->status = 403;
	}
	json_decref(ans);
out:
	json_decref(q);
	db_cert_clear(&c);
}
