/*
 * ocsp.c: OCSP (RFC 6960) without the network — loading the delegated
 * responder (ocsp.key, ocsp.crt, and ca.crt for the issuer hashes), parsing
 * requests within fixed bounds, and signing responses from a caller's
 * status look-up. server/ocsp.c puts it on HTTP; the fuzz target reaches it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/ca_int.h"

#define NHASH 4				/* CertID hash algorithms we match */

/* The issuing CA's name and key hashes under one CertID hash algorithm. */
struct issuer_hash {
	int nid;
	unsigned int len;
	unsigned char name[EVP_MAX_MD_SIZE];
	unsigned char key[EVP_MAX_MD_SIZE];
};

struct ca_ocsp_responder {
	EVP_PKEY *key;			/* ocsp.key */
	X509 *cert;			/* ocsp.crt */
	EVP_MD_CTX *sign_tmpl;		/* DigestSign initialised once; copied per use */
	int64_t not_before, not_after;
	struct issuer_hash hash[NHASH];
};

struct single {
	OCSP_CERTID *id;		/* borrowed from the request */
	unsigned char *id_der;		/* its DER (OPENSSL_free) */
	size_t id_len;
	int serial_ok;			/* could be one of ours */
	char serial_hex[CA_SERIAL_HEX];
};

struct ca_ocsp_request {
	OCSP_REQUEST *req;
	size_t n;
	int has_nonce;
	struct single one[CA_OCSP_MAX_SINGLE];
};

/* ---------------------------------------------------------------------
 * The responder.
 */
static int
path_in(const char *dir, const char *name, char *out, size_t outlen)
{
	if ((size_t)snprintf(out, outlen, "%s/%s", dir, name) >= outlen) {
		log_errx("the CA directory path is too long");
		return ERR_CONFIG;
	}
	return 0;
}

/* ERR_NOT_FOUND when path does not exist. */
static int
must_exist(const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0)
		return 0;
	if (errno == ENOENT)
		return ERR_NOT_FOUND;
	log_errx("cannot check %s: %s", path, strerror(errno));
	return ERR_IO;
}

static int
issuer_hashes(struct ca_ocsp_responder *r, X509 *issuer)
{
	static const int nids[NHASH] = { NID_sha1, NID_sha256, NID_sha384, NID_sha512 };

	for (int i = 0; i < NHASH; i++) {
		struct issuer_hash *h = &r->hash[i];
		const EVP_MD *md = EVP_get_digestbynid(nids[i]);
		unsigned int nlen = 0, klen = 0;

		if (md == NULL || !X509_NAME_digest(X509_get_subject_name(issuer), md, h->name, &nlen) ||
		    !X509_pubkey_digest(issuer, md, h->key, &klen) || nlen != klen) {
			log_ossl("cannot hash the issuing CA under %s", OBJ_nid2sn(nids[i]));
			return ERR_CRYPTO;
		}
		h->nid = nids[i];
		h->len = nlen;
	}
	return 0;
}

int
ca_ocsp_responder_load(const char *dir, struct ca_ocsp_responder **out)
{
	int r = ERR_INTERNAL;
	struct ca_ocsp_responder *o = NULL;
	X509 *issuer = NULL;
	char kpath[PATH_MAX], cpath[PATH_MAX], ipath[PATH_MAX], why[160];

	if (out != NULL)
		*out = NULL;
	if (dir == NULL || out == NULL)
		return ERR_INVALID;
	if ((r = path_in(dir, "ocsp.key", kpath, sizeof(kpath))) != 0 ||
	    (r = path_in(dir, "ocsp.crt", cpath, sizeof(cpath))) != 0 ||
	    (r = path_in(dir, "ca.crt", ipath, sizeof(ipath))) != 0)
		return r;
	if ((r = must_exist(kpath)) != 0 || (r = must_exist(cpath)) != 0)
		return r;
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return ERR_NOMEM;
	if ((r = ca_read_key_file(kpath, &o->key)) != 0) {
		if (r == ERR_CRYPTO)
			log_ossl("%s: not an unencrypted PEM private key", kpath);
		else
			log_errx("cannot read %s: %s", kpath, provd_strerror(r));
		r = r == ERR_CRYPTO ? ERR_CONFIG : r;
		goto out;
	}
	if ((r = ca_read_cert_file(cpath, &o->cert)) != 0 ||
	    (r = ca_read_cert_file(ipath, &issuer)) != 0) {
		r = r == ERR_CRYPTO ? ERR_CONFIG : r;
		goto out;
	}
	r = ERR_CONFIG;
	if (X509_check_private_key(o->cert, o->key) != 1) {
		log_ossl("%s does not match %s", kpath, cpath);
		goto out;
	}
	if (ca_signing_key_ok(o->key, why, sizeof(why)) != 0) {
		log_errx("%s: %s", kpath, why);
		goto out;
	}
	if (X509_check_issued(issuer, o->cert) != X509_V_OK ||
	    X509_verify(o->cert, X509_get0_pubkey(issuer)) != 1) {
		ERR_clear_error();
		log_errx("%s was not issued by %s (the CA changed?)", cpath, ipath);
		goto out;
	}
	if ((X509_get_extension_flags(o->cert) & EXFLAG_XKUSAGE) == 0 ||
	    (X509_get_extended_key_usage(o->cert) & XKU_OCSP_SIGN) == 0) {
		log_errx("%s does not allow OCSP signing (extendedKeyUsage)", cpath);
		goto out;
	}
	if (ca_asn1_time_to_unix(X509_get0_notBefore(o->cert), &o->not_before) != 0 ||
	    ca_asn1_time_to_unix(X509_get0_notAfter(o->cert), &o->not_after) != 0) {
		log_errx("%s: unreadable validity", cpath);
		goto out;
	}
	if ((r = issuer_hashes(o, issuer)) != 0)
		goto out;
	r = ERR_CRYPTO;
	if ((o->sign_tmpl = EVP_MD_CTX_new()) == NULL ||
	    !EVP_DigestSignInit_ex(o->sign_tmpl, NULL, "SHA256", NULL, NULL, o->key, NULL)) {
		log_ossl("EVP_DigestSignInit_ex");
		goto out;
	}
	*out = o;
	o = NULL;
	r = 0;
out:
	X509_free(issuer);
	ca_ocsp_responder_free(o);
	return r;
}

void
ca_ocsp_responder_free(struct ca_ocsp_responder *r)
{
	if (r == NULL)
		return;
	EVP_PKEY_free(r->key);
	X509_free(r->cert);
	EVP_MD_CTX_free(r->sign_tmpl);
	OPENSSL_clear_free(r, sizeof(*r));
}

void
ca_ocsp_responder_validity(const struct ca_ocsp_responder *r, int64_t *not_before,
    int64_t *not_after)
{
	*not_before = r->not_before;
	*not_after = r->not_after;
}

int
ca_ocsp_responder_renew_due(const struct ca_ocsp_responder *r, int64_t now)
{
	return now >= r->not_after - (r->not_after - r->not_before) / 3;
}

/* ---------------------------------------------------------------------
 * Requests.
 */

/* RFC 8954: the nonce extension's value is an OCTET STRING of 1..32 bytes. */
static int
nonce_ok(X509_EXTENSION *ext)
{
	const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ext);
	const unsigned char *p = ASN1_STRING_get0_data(v), *start = p;
	long len = ASN1_STRING_length(v);
	ASN1_OCTET_STRING *inner;
	int n;

	if (p == NULL || len <= 0 || (inner = d2i_ASN1_OCTET_STRING(NULL, &p, len)) == NULL)
		return 0;
	n = ASN1_STRING_length(inner);
	ASN1_OCTET_STRING_free(inner);
	return p == start + len && n >= CA_OCSP_NONCE_MIN && n <= CA_OCSP_NONCE_MAX;
}

/* Request extensions: at most one good nonce, no other critical one. */
static int
request_exts_ok(OCSP_REQUEST *req, int *has_nonce)
{
	int n = OCSP_REQUEST_get_ext_count(req);

	*has_nonce = 0;
	for (int i = 0; i < n; i++) {
		X509_EXTENSION *ext = OCSP_REQUEST_get_ext(req, i);
		if (ext == NULL)
			return 0;
		if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) == NID_id_pkix_OCSP_Nonce) {
			if (*has_nonce || !nonce_ok(ext))
				return 0;
			*has_nonce = 1;
		} else if (X509_EXTENSION_get_critical(ext)) {
			return 0;
		}
	}
	return 1;
}

static int
single_exts_ok(OCSP_ONEREQ *one)
{
	int n = OCSP_ONEREQ_get_ext_count(one);

	for (int i = 0; i < n; i++) {
		X509_EXTENSION *ext = OCSP_ONEREQ_get_ext(one, i);
		if (ext == NULL || X509_EXTENSION_get_critical(ext))
			return 0;
	}
	return 1;
}

/* A positive serial of 1..CA_SERIAL_LEN bytes as 32 hex digits. */
static int
serial_of(const ASN1_INTEGER *ai, char out[CA_SERIAL_HEX])
{
	uint8_t buf[CA_SERIAL_LEN] = { 0 };
	const unsigned char *p;
	int len;

	if (ai == NULL || ASN1_STRING_type(ai) != V_ASN1_INTEGER)
		return 0;
	p = ASN1_STRING_get0_data(ai);
	len = ASN1_STRING_length(ai);
	while (len > 0 && *p == 0) {
		p++;
		len--;
	}
	if (len <= 0 || len > CA_SERIAL_LEN)
		return 0;
	memcpy(buf + CA_SERIAL_LEN - len, p, (size_t)len);
	hex_encode(buf, sizeof(buf), out);
	return 1;
}

int
ca_ocsp_request_parse(const uint8_t *der, size_t len, struct ca_ocsp_request **out)
{
	int r = ERR_INVALID, n;
	struct ca_ocsp_request *q = NULL;
	const unsigned char *p = der;

	if (out != NULL)
		*out = NULL;
	if (out == NULL || (der == NULL && len > 0))
		return ERR_INVALID;
	if (len > CA_OCSP_MAX_REQUEST)
		return ERR_TOO_BIG;
	if (len == 0)
		return ERR_INVALID;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return ERR_NOMEM;
	if ((q->req = d2i_OCSP_REQUEST(NULL, &p, (long)len)) == NULL || p != der + len)
		goto out;
	n = OCSP_request_onereq_count(q->req);
	if (n < 1 || n > CA_OCSP_MAX_SINGLE || !request_exts_ok(q->req, &q->has_nonce))
		goto out;
	for (int i = 0; i < n; i++) {
		OCSP_ONEREQ *one = OCSP_request_onereq_get0(q->req, i);
		struct single *s = &q->one[i];
		ASN1_INTEGER *serial = NULL;
		int dlen;

		if (one == NULL || !single_exts_ok(one) ||
		    (s->id = OCSP_onereq_get0_id(one)) == NULL ||
		    !OCSP_id_get0_info(NULL, NULL, NULL, &serial, s->id))
			goto out;
		if ((dlen = i2d_OCSP_CERTID(s->id, &s->id_der)) <= 0) {
			r = ERR_NOMEM;
			goto out;
		}
		q->n++;
		s->id_len = (size_t)dlen;
		s->serial_ok = serial_of(serial, s->serial_hex);
	}
	*out = q;
	q = NULL;
	r = 0;
out:
	ERR_clear_error();	/* a refused request is the client's problem, not ours */
	ca_ocsp_request_free(q);
	return r;
}

void
ca_ocsp_request_free(struct ca_ocsp_request *q)
{
	if (q == NULL)
		return;
	for (size_t i = 0; i < q->n; i++)
		OPENSSL_free(q->one[i].id_der);
	OCSP_REQUEST_free(q->req);
	free(q);
}

size_t
ca_ocsp_request_count(const struct ca_ocsp_request *q)
{
	return q->n;
}

int
ca_ocsp_request_has_nonce(const struct ca_ocsp_request *q)
{
	return q->has_nonce;
}

int
ca_ocsp_request_serial(const struct ca_ocsp_request *q, size_t i, char serial_hex[CA_SERIAL_HEX])
{
	if (i >= q->n || !q->one[i].serial_ok)
		return ERR_NOT_FOUND;
	memcpy(serial_hex, q->one[i].serial_hex, CA_SERIAL_HEX);
	return 0;
}

void
ca_ocsp_request_certid(const struct ca_ocsp_request *q, size_t i, const uint8_t **der,
    size_t *len)
{
	*der = i < q->n ? q->one[i].id_der : NULL;
	*len = i < q->n ? q->one[i].id_len : 0;
}

/* ---------------------------------------------------------------------
 * Responses.
 */

/* Whether id names our issuing CA. */
static int
issuer_match(const struct ca_ocsp_responder *rs, OCSP_CERTID *id)
{
	ASN1_OCTET_STRING *nh = NULL, *kh = NULL;
	ASN1_OBJECT *md = NULL;
	int nid;

	if (!OCSP_id_get0_info(&nh, &md, &kh, NULL, id) || nh == NULL || kh == NULL || md == NULL)
		return 0;
	nid = OBJ_obj2nid(md);
	for (int i = 0; i < NHASH; i++) {
		const struct issuer_hash *h = &rs->hash[i];
		if (h->nid != nid)
			continue;
		return ASN1_STRING_length(nh) == (int)h->len && ASN1_STRING_length(kh) == (int)h->len &&
		    memcmp(ASN1_STRING_get0_data(nh), h->name, h->len) == 0 &&
		    memcmp(ASN1_STRING_get0_data(kh), h->key, h->len) == 0;
	}
	return 0;
}

static int
der_out(OCSP_RESPONSE *resp, uint8_t **der, size_t *len)
{
	int n = i2d_OCSP_RESPONSE(resp, NULL);
	unsigned char *p;
	uint8_t *buf;

	if (n <= 0) {
		log_ossl("i2d_OCSP_RESPONSE");
		return ERR_CRYPTO;
	}
	if ((buf = malloc((size_t)n)) == NULL)
		return ERR_NOMEM;
	p = buf;
	if (i2d_OCSP_RESPONSE(resp, &p) != n) {
		log_ossl("i2d_OCSP_RESPONSE");
		free(buf);
		return ERR_CRYPTO;
	}
	*der = buf;
	*len = (size_t)n;
	return 0;
}

/* Adds the SingleResponse of one request to bs. */
static int
add_single(const struct ca_ocsp_responder *rs, const struct single *s, OCSP_BASICRESP *bs,
    ASN1_TIME *this_upd, ASN1_TIME *next_upd, ASN1_TIME *rev, ca_ocsp_lookup_fn *lookup,
    void *arg)
{
	struct ca_ocsp_status st = { .status = CA_OCSP_UNKNOWN, .reason = -1 };
	int status, reason = OCSP_REVOKED_STATUS_NOSTATUS, r;
	ASN1_TIME *revtime = NULL;

	if (s->serial_ok && issuer_match(rs, s->id) &&
	    (r = lookup(arg, s->serial_hex, &st)) != 0)
		return r;
	switch (st.status) {
	case CA_OCSP_GOOD:
		status = V_OCSP_CERTSTATUS_GOOD;
		break;
	case CA_OCSP_REVOKED:
		status = V_OCSP_CERTSTATUS_REVOKED;
		/* no reasonCode for unspecified, as on the CRL (RFC 5280 5.3.1) */
		if (st.reason >= 1 && st.reason <= 10 && st.reason != 7)
			reason = st.reason;
		if (ASN1_TIME_set(rev, (time_t)(st.revoked_at > 0 ? st.revoked_at : 0)) == NULL)
			return ERR_CRYPTO;
		revtime = rev;
		break;
	default:
		status = V_OCSP_CERTSTATUS_UNKNOWN;
		break;
	}
	if (OCSP_basic_add1_status(bs, s->id, status, reason, revtime, this_upd, next_upd) == NULL) {
		log_ossl("OCSP_basic_add1_status");
		return ERR_CRYPTO;
	}
	return 0;
}

int
ca_ocsp_respond(const struct ca_ocsp_responder *rs, const struct ca_ocsp_request *q,
    int64_t now, int64_t max_age_s, ca_ocsp_lookup_fn *lookup, void *arg,
    uint8_t **der, size_t *len)
{
	int r = ERR_INTERNAL;
	OCSP_BASICRESP *bs = NULL;
	OCSP_RESPONSE *resp = NULL;
	ASN1_TIME *this_upd = NULL, *next_upd = NULL, *rev = NULL;
	EVP_MD_CTX *ctx = NULL;

	if (der != NULL)
		*der = NULL;
	if (len != NULL)
		*len = 0;
	if (rs == NULL || q == NULL || lookup == NULL || der == NULL || len == NULL ||
	    now < 0 || max_age_s < 0 || max_age_s > CA_TIME_MAX - now)
		return ERR_INVALID;
	if (now < rs->not_before || now >= rs->not_after)
		return ERR_UNAVAILABLE;
	r = ERR_CRYPTO;
	if ((bs = OCSP_BASICRESP_new()) == NULL || (rev = ASN1_TIME_new()) == NULL ||
	    (this_upd = ASN1_TIME_set(NULL, (time_t)now)) == NULL ||
	    (max_age_s > 0 && (next_upd = ASN1_TIME_set(NULL, (time_t)(now + max_age_s))) == NULL)) {
		log_ossl("cannot start a response");
		goto out;
	}
	for (size_t i = 0; i < q->n; i++)
		if ((r = add_single(rs, &q->one[i], bs, this_upd, next_upd, rev, lookup, arg)) != 0)
			goto out;
	r = ERR_CRYPTO;
	if (q->has_nonce && OCSP_copy_nonce(bs, q->req) != 1) {
		log_ossl("OCSP_copy_nonce");
		goto out;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL || !EVP_MD_CTX_copy_ex(ctx, rs->sign_tmpl) ||
	    !OCSP_basic_sign_ctx(bs, rs->cert, ctx, NULL, OCSP_RESPID_KEY)) {
		log_ossl("cannot sign the response");
		goto out;
	}
	if ((resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs)) == NULL) {
		log_ossl("OCSP_response_create");
		goto out;
	}
	r = der_out(resp, der, len);
out:
	EVP_MD_CTX_free(ctx);
	OCSP_RESPONSE_free(resp);
	OCSP_BASICRESP_free(bs);
	ASN1_TIME_free(this_upd);
	ASN1_TIME_free(next_upd);
	ASN1_TIME_free(rev);
	return r;
}

int
ca_ocsp_error_response(enum ca_ocsp_resp_status status, uint8_t **der, size_t *len)
{
	OCSP_RESPONSE *resp;
	int r;

	if (der != NULL)
		*der = NULL;
	if (len != NULL)
		*len = 0;
	if (der == NULL || len == NULL)
		return ERR_INVALID;
	switch (status) {
	case CA_OCSP_MALFORMED:
	case CA_OCSP_INTERNAL_ERROR:
	case CA_OCSP_TRY_LATER:
	case CA_OCSP_UNAUTHORIZED:
		break;
	default:
		return ERR_INVALID;
	}
	if ((resp = OCSP_response_create((int)status, NULL)) == NULL) {
		log_ossl("OCSP_response_create");
		return ERR_CRYPTO;
	}
	r = der_out(resp, der, len);
	OCSP_RESPONSE_free(resp);
	return r;
}

int
ca_ocsp_answer(const struct ca_ocsp_responder *rs, const uint8_t *in, size_t inlen,
    int64_t now, int64_t max_age_s, ca_ocsp_lookup_fn *lookup, void *arg,
    uint8_t **der, size_t *len, enum ca_ocsp_resp_status *status)
{
	struct ca_ocsp_request *q = NULL;
	enum ca_ocsp_resp_status st;
	int r;

	if (der == NULL || len == NULL)
		return ERR_INVALID;
	if ((r = ca_ocsp_request_parse(in, inlen, &q)) == ERR_NOMEM)
		return r;
	if (r != 0)
		st = CA_OCSP_MALFORMED;
	else if (rs == NULL)
		st = CA_OCSP_TRY_LATER;
	else if ((r = ca_ocsp_respond(rs, q, now, max_age_s, lookup, arg, der, len)) == 0)
		st = CA_OCSP_SUCCESSFUL;
	else if (r == ERR_NOMEM) {
		ca_ocsp_request_free(q);
		return r;
	} else if (r == ERR_CRYPTO || r == ERR_INTERNAL || r == ERR_INVALID)
		st = CA_OCSP_INTERNAL_ERROR;
	else
		st = CA_OCSP_TRY_LATER;		/* the look-up or the responder cannot answer now */
	ca_ocsp_request_free(q);
	if (st != CA_OCSP_SUCCESSFUL && (r = ca_ocsp_error_response(st, der, len)) != 0)
		return r;
	if (status != NULL)
		*status = st;
	return 0;
}
