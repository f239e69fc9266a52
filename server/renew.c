/*
 * renew.c: certificate renewal (EST simplereenroll in spirit). A device
 * proves itself with its current certificate — as the TLS client
 * certificate, or by signing the new CSR with its current key in a CMS
 * SignedData (RFC 5652) with a signingTime — and gets a new certificate for
 * the CSR's key with the same address and optional data; the old one is
 * superseded in the same transaction. An expired certificate cannot renew:
 * the device goes through intake again.
 *
 * Also here: the renewal hint a device polls (GET /v1/renew/{serial}), the
 * administrator's "renew at next contact", and the validity cap per group.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "server/server_int.h"

#define RENEW_CMS_MAX (64 * 1024)	/* DER of the signed request */
#define RENEW_CLOCK_SKEW_S 300		/* signingTime within this of now */

/* ---------------------------------------------------------------------
 * Verifying a certificate presented as ours.
 */

/* The CA chain (chain.pem) split into the trust anchor(s) and the rest. */
static int
chain_store(struct server *s, X509_STORE **store, STACK_OF(X509) **untrusted)
{
	BIO *b = BIO_new_mem_buf(s->chain_pem, -1);
	X509 *x;
	int anchors = 0;

	*store = X509_STORE_new();
	*untrusted = sk_X509_new_null();
	if (b == NULL || *store == NULL || *untrusted == NULL)
		goto fail;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (X509_self_signed(x, 0) == 1) {
			if (X509_STORE_add_cert(*store, x) != 1) {
				X509_free(x);
				goto fail;
			}
			X509_free(x);
			anchors++;
		} else if (!sk_X509_push(*untrusted, x)) {
			X509_free(x);
			goto fail;
		}
	}
	ERR_clear_error();
	BIO_free(b);
	if (anchors == 0)
		goto fail2;
	return 0;
fail:
	BIO_free(b);
fail2:
	X509_STORE_free(*store);
	sk_X509_pop_free(*untrusted, X509_free);
	*store = NULL;
	*untrusted = NULL;
	return ERR_INTERNAL;
}

/* 1: x chains to our CA (now, or ignoring time when notime); 0: it does
 * not; *err gets OpenSSL's verification error. */
static int
chains_to_ca(X509_STORE *store, STACK_OF(X509) *untrusted, X509 *x, int notime, int *err)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok = 0;

	*err = X509_V_ERR_UNSPECIFIED;
	if (ctx == NULL || X509_STORE_CTX_init(ctx, store, x, untrusted) != 1)
		goto out;
	if (notime)
		X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
	ok = X509_verify_cert(ctx) == 1;
	*err = X509_STORE_CTX_get_error(ctx);
out:
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

int
server_cert_verify(struct server *s, X509 *x, struct db_cert *c, char *why, size_t whylen)
{
	X509_STORE *store = NULL;
	STACK_OF(X509) *untrusted = NULL;
	unsigned char *der = NULL;
	uint8_t fp[32];
	char serial[CA_SERIAL_HEX];
	int len, err, r;

	memset(c, 0, sizeof(*c));
	c->reason = -1;
	if (x == NULL)
		return ERR_INVALID;
	if ((r = chain_store(s, &store, &untrusted)) != 0) {
		snprintf(why, whylen, "The CA chain cannot be read.");
		return r;
	}
	if (!chains_to_ca(store, untrusted, x, 0, &err)) {
		int expired = (err == X509_V_ERR_CERT_HAS_EXPIRED &&
		    chains_to_ca(store, untrusted, x, 1, &err));
		X509_STORE_free(store);
		sk_X509_pop_free(untrusted, X509_free);
		if (expired) {
			snprintf(why, whylen, "The certificate has expired: the device must go "
			    "through intake again (label and PIN).");
			return ERR_FORBIDDEN;
		}
		snprintf(why, whylen, "The certificate was not issued by this CA (%.80s).",
		    X509_verify_cert_error_string(err));
		return ERR_AUTH;
	}
	X509_STORE_free(store);
	sk_X509_pop_free(untrusted, X509_free);

	if ((len = i2d_X509(x, &der)) <= 0)
		return ERR_CRYPTO;
	ca_fingerprint(der, (size_t)len, fp);
	r = ca_cert_serial_hex(der, (size_t)len, serial);
	OPENSSL_free(der);
	if (r != 0) {
		snprintf(why, whylen, "The certificate's serial number is not one of ours.");
		return ERR_AUTH;
	}
	if ((r = db_cert_by_serial(s->db, serial, c)) != 0) {
		if (r == ERR_NOT_FOUND) {
			snprintf(why, whylen, "The certificate is not on record.");
			return ERR_AUTH;
		}
		return r;
	}
	if (memcmp(c->fingerprint, fp, 32) != 0) {
		db_cert_clear(c);
		snprintf(why, whylen, "The certificate is not the one on record.");
		return ERR_AUTH;
	}
	if (c->status != DB_CERT_ACTIVE) {
		snprintf(why, whylen, "The certificate is %s.", db_cert_status_name(c->status));
		db_cert_clear(c);
		return ERR_AUTH;
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * POST /v1/renew
 */

/* The signingTime of the one signer, as Unix seconds. */
static int
cms_signing_time(CMS_ContentInfo *cms, time_t *out)
{
	STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
	CMS_SignerInfo *si;
	X509_ATTRIBUTE *a;
	ASN1_TYPE *t;
	struct tm tm;
	int idx;

	if (sis == NULL || sk_CMS_SignerInfo_num(sis) != 1)
		return ERR_INVALID;
	si = sk_CMS_SignerInfo_value(sis, 0);
	if ((idx = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1)) < 0 ||
	    (a = CMS_signed_get_attr(si, idx)) == NULL || X509_ATTRIBUTE_count(a) != 1 ||
	    (t = X509_ATTRIBUTE_get0_type(a, 0)) == NULL)
		return ERR_INVALID;
	if (t->type != V_ASN1_UTCTIME && t->type != V_ASN1_GENERALIZEDTIME)
		return ERR_INVALID;
	if (ASN1_TIME_to_tm((const ASN1_TIME *)t->value.asn1_string, &tm) != 1)
		return ERR_INVALID;
	*out = timegm(&tm);
	return 0;
}

/*
 * Opens a signed request: a CMS SignedData (DER, base64) with one signer
 * whose certificate is included, a signingTime close to now, and the CSR
 * (DER) as its encapsulated content. The signature is checked here; the
 * signer's certificate is checked by the caller (server_cert_verify).
 */
static int
open_signed(const char *b64, size_t b64len, X509 **signer, uint8_t **csr, size_t *csrlen,
    char *why, size_t whylen)
{
	CMS_ContentInfo *cms = NULL;
	STACK_OF(X509) *signers = NULL;
	BIO *out = NULL;
	const unsigned char *p;
	uint8_t *der = NULL;
	size_t derlen = 0;
	time_t st;
	char *data;
	long n;
	int r;

	*signer = NULL;
	*csr = NULL;
	if (b64len / 4 * 3 > RENEW_CMS_MAX) {
		snprintf(why, whylen, "\"signed_csr\" is over %d bytes.", RENEW_CMS_MAX);
		return ERR_TOO_BIG;
	}
	if ((der = malloc(b64len / 4 * 3 + 1)) == NULL)
		return ERR_NOMEM;
	if ((r = b64_decode(b64, b64len, der, b64len / 4 * 3 + 1, &derlen)) != 0) {
		snprintf(why, whylen, "\"signed_csr\" must be base64 (RFC 4648, with padding).");
		free(der);
		return r;
	}
	p = der;
	if ((cms = d2i_CMS_ContentInfo(NULL, &p, (long)derlen)) == NULL ||
	    p != der + derlen || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
		snprintf(why, whylen, "\"signed_csr\" is not a CMS SignedData (DER).");
		r = ERR_INVALID;
		goto out;
	}
	if (cms_signing_time(cms, &st) != 0) {
		snprintf(why, whylen, "The signed request needs exactly one signer with a "
		    "signingTime attribute.");
		r = ERR_INVALID;
		goto out;
	}
	time_t now = time(NULL);
	if (st < now - RENEW_CLOCK_SKEW_S || st > now + RENEW_CLOCK_SKEW_S) {
		snprintf(why, whylen, "The signed request's signingTime is more than %d s from "
		    "provd's clock.", RENEW_CLOCK_SKEW_S);
		r = ERR_AUTH;
		goto out;
	}
	if ((out = BIO_new(BIO_s_mem())) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	/* the signature over the content and attributes, with the included
	 * certificate; that certificate is ours to judge, not CMS's */
	if (CMS_verify(cms, NULL, NULL, NULL, out, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1) {
		snprintf(why, whylen, "The signature of the signed request does not verify "
		    "(it must be made with the current certificate's key, which it includes).");
		r = ERR_AUTH;
		goto out;
	}
	if ((signers = CMS_get0_signers(cms)) == NULL || sk_X509_num(signers) != 1) {
		snprintf(why, whylen, "The signed request must include the signer's certificate.");
		r = ERR_AUTH;
		goto out;
	}
	*signer = sk_X509_value(signers, 0);
	X509_up_ref(*signer);
	if ((n = BIO_get_mem_data(out, &data)) <= 0 || n > RENEW_CMS_MAX) {
		snprintf(why, whylen, "The signed request holds no CSR.");
		r = ERR_INVALID;
		goto out;
	}
	if ((*csr = malloc((size_t)n)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	memcpy(*csr, data, (size_t)n);
	*csrlen = (size_t)n;
	r = 0;
out:
	if (r != 0) {
		X509_free(*signer);
		*signer = NULL;
	}
	sk_X509_free(signers);
	BIO_free(out);
	CMS_ContentInfo_free(cms);
	free(der);
	ERR_clear_error();
	return r;
}

/* The DER content of x's optional-data extension (a new buffer), or NULL
 * when it has none. */
static int
cert_optdata(X509 *x, uint8_t **der, size_t *len)
{
	const uint8_t *p;
	size_t n;

	*der = NULL;
	*len = 0;
	if (!optdata_ext_find(x, &p, &n))
		return 0;
	if ((*der = malloc(n)) == NULL)
		return ERR_NOMEM;
	memcpy(*der, p, n);
	*len = n;
	return 0;
}

/* Whether spki (DER) is x's public key. */
static int
same_key(X509 *x, const uint8_t *spki, size_t spkilen)
{
	unsigned char *der = NULL;
	int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	int same = len > 0 && (size_t)len == spkilen && memcmp(der, spki, spkilen) == 0;

	OPENSSL_free(der);
	return same;
}

static void
fmt_time(int64_t t, char *out, size_t len)
{
	time_format_rfc3339((time_t)t, out, len);
}

void
route_renew(struct server *s, struct req *rq)
{
	static const char *const keys[] = { "signed_csr", "csr", NULL };
	const struct config *cfg = s->cfg;
	struct db_cert old = { 0 };
	struct ca_issue_req ir = { 0 };
	struct db_issue it = { 0 };
	X509 *cur = NULL;
	uint8_t *csr = NULL, *spki = NULL, *od = NULL, *der = NULL;
	size_t csrlen = 0, spkilen = 0, odlen = 0, derlen = 0;
	char why[240] = "", *pem = NULL;
	enum db_cert_status st;
	int64_t requested = 0;
	int max_days = 0, reused, r;
	json_t *jsigned, *jcsr;

	/* an external CA answers in its own time: not in an HTTP thread */
	if (s->cmp != NULL && !rq->offloaded) {
		server_offload(s, rq, route_renew);
		return;
	}
	old.reason = -1;
	if ((r = json_only_keys(rq->json, keys, why, sizeof(why))) != 0)
		goto fail;
	jsigned = json_object_get(rq->json, "signed_csr");
	jcsr = json_object_get(rq->json, "csr");
	if ((jsigned != NULL) == (jcsr != NULL) ||
	    (jsigned != NULL && !json_is_string(jsigned)) || (jcsr != NULL && !json_is_string(jcsr))) {
		r = ERR_INVALID;
		snprintf(why, sizeof(why), "Give exactly one of \"signed_csr\" (base64 CMS "
		    "SignedData of the CSR, signed with the current key) or \"csr\" (PEM, over "
		    "TLS with the current certificate as the client certificate).");
		goto fail;
	}
	if (jsigned != NULL) {
		if ((r = open_signed(json_string_value(jsigned), json_string_length(jsigned),
		    &cur, &csr, &csrlen, why, sizeof(why))) != 0)
			goto fail;
	} else {
		if ((r = http_client_cert(rq, &cur)) != 0)
			goto fail;
		if (cur == NULL) {
			r = ERR_AUTH;
			snprintf(why, sizeof(why), "Renewal needs the current certificate: sign "
			    "the CSR with it (\"signed_csr\") or present it as the TLS client "
			    "certificate.");
			goto fail;
		}
		csrlen = json_string_length(jcsr);
		if ((csr = malloc(csrlen + 1)) == NULL) {
			r = ERR_NOMEM;
			goto fail;
		}
		memcpy(csr, json_string_value(jcsr), csrlen + 1);
	}
	if ((r = server_cert_verify(s, cur, &old, why, sizeof(why))) != 0)
		goto fail;
	if ((r = ca_csr_check(csr, csrlen, &s->policy, &spki, &spkilen, why, sizeof(why))) != 0)
		goto fail;
	why[0] = '\0';
	reused = same_key(cur, spki, spkilen);
	if ((r = cert_optdata(cur, &od, &odlen)) != 0)
		goto fail;
	if ((r = db_renew_info(s->db, old.serial_hex, &st, &max_days, &requested)) != 0)
		goto fail;

	if (s->cmp != NULL) {	/* the external CA decides the profile and validity */
		if ((r = server_cmp_issue(s, old.mac, csr, csrlen, &der, &derlen, &it, why,
		    sizeof(why))) != 0)
			goto fail;
		goto signed_cert;
	}
	int64_t days = cfg->validity_days;
	if (max_days > 0 && max_days < days)
		days = max_days;
	time_t now = time(NULL);
	memcpy(ir.mac, old.mac, MAC_LEN);
	if ((r = ca_serial_new(ir.serial)) != 0)
		goto fail;
	ir.not_before = (int64_t)now - cfg->backdate_s;
	ir.not_after = (int64_t)now + days * 86400;
	ir.spki = spki;
	ir.spkilen = spkilen;
	ir.optdata = od;
	ir.optdatalen = odlen;
	if ((r = ca_signer_issue(s->signer, &ir, &der, &derlen)) != 0)
		goto fail;
	memcpy(it.mac, old.mac, MAC_LEN);
	hex_encode(ir.serial, CA_SERIAL_LEN, it.serial_hex);
	ca_fingerprint(der, derlen, it.fingerprint);
	it.der = der;
	it.derlen = derlen;
	it.not_before = ir.not_before;
	it.not_after = ir.not_after;
signed_cert:
	it.actor = jsigned != NULL ? "device:signed" : "device:tls";
	it.request_id = rq->id;
	if ((r = ca_der_to_pem("CERTIFICATE", der, derlen, &pem)) != 0)
		goto fail;
	/* nothing leaves provd before the renewal commits */
	if ((r = db_renew(s->db, old.serial_hex, &it, reused, NULL)) != 0) {
		if (r == ERR_CONFLICT)
			snprintf(why, sizeof(why), "The certificate was renewed or revoked "
			    "meanwhile.");
		else if (r == ERR_FORBIDDEN)
			snprintf(why, sizeof(why), "The certificate has expired: the device must "
			    "go through intake again (label and PIN).");
		goto fail;
	}
	atomic_store(&s->crl_stale, 1);
	atomic_fetch_add(&s->m.issued, 1);
	ocsp_invalidate(s, old.serial_hex);
	dirsync_kick(s);

	char mac[MAC_STR_LEN], fp[65], nb[32], na[32];
	mac_format(it.mac, mac);
	hex_encode(it.fingerprint, 32, fp);
	fmt_time(it.not_before, nb, sizeof(nb));
	fmt_time(it.not_after, na, sizeof(na));
	log_info("renewed certificate %s of %s as %s%s%s", old.serial_hex, mac, it.serial_hex,
	    reused ? " (same key)" : "", requested ? " (requested by an administrator)" : "");
	req_reply_json(rq, 201, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:b}",
	    "serial", it.serial_hex, "mac", mac, "fingerprint_sha256", fp, "not_before", nb,
	    "not_after", na, "certificate", pem, "ca_chain", s->chain_pem,
	    "replaced", old.serial_hex, "key_reused", reused));
	goto out;
fail:
	if (r != ERR_INVALID && r != ERR_AUTH && r != ERR_FORBIDDEN && r != ERR_BAD_CSR &&
	    r != ERR_KEY_POLICY && r != ERR_TOO_BIG && r != ERR_CONFLICT)
		log_warnx("renewal failed: %s", provd_strerror(r));
	else if (r == ERR_AUTH || r == ERR_FORBIDDEN)
		log_info("renewal refused: %s", why);
	req_reply_error(rq, r, why[0] ? why : NULL);
out:
	X509_free(cur);
	db_cert_clear(&old);
	free(csr);
	free(spki);
	free(od);
	free(der);
	free(pem);
}

/* ---------------------------------------------------------------------
 * GET /v1/renew/{serial}: whether the holder of this certificate should
 * renew now. Public: it tells no more than OCSP does, plus whether an
 * administrator asked for renewal.
 */
void
route_renew_status(struct server *s, struct req *rq)
{
	struct db_cert c = { 0 };
	char serial[CA_SERIAL_HEX], nb[32], na[32], ra[32];
	uint8_t b[CA_SERIAL_LEN];
	enum db_cert_status st;
	int64_t requested = 0, renew_after;
	int max_days = 0, r;
	const char *reason = "";
	int now_flag = 0;

	if (hex_decode(rq->params[0], b, sizeof(b)) != 0) {
		req_reply_error(rq, ERR_INVALID, "A serial number is 32 hexadecimal digits.");
		return;
	}
	hex_encode(b, sizeof(b), serial);
	if ((r = db_cert_by_serial(s->db, serial, &c)) != 0 ||
	    (r = db_renew_info(s->db, serial, &st, &max_days, &requested)) != 0) {
		db_cert_clear(&c);
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "No certificate has this serial number." :
		    NULL);
		return;
	}
	/* two-thirds of the lifetime */
	renew_after = c.not_before + (c.not_after - c.not_before) / 3 * 2;
	int64_t now = (int64_t)time(NULL);
	if (c.status != DB_CERT_ACTIVE) {
		reason = c.status == DB_CERT_SUPERSEDED ? "The certificate was already renewed." :
		    "The certificate is revoked: renewal is not possible.";
	} else if (now >= c.not_after) {
		reason = "The certificate has expired: the device must go through intake again.";
	} else if (requested > 0) {
		now_flag = 1;
		reason = "An administrator asked for renewal.";
	} else if (now >= renew_after) {
		now_flag = 1;
		reason = "Two-thirds of the certificate's lifetime have passed.";
	}
	fmt_time(c.not_before, nb, sizeof(nb));
	fmt_time(c.not_after, na, sizeof(na));
	fmt_time(renew_after, ra, sizeof(ra));
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:s}", "serial", serial,
	    "status", db_cert_status_name(c.status), "not_before", nb, "not_after", na,
	    "renew_after", ra, "renew_now", now_flag, "reason", reason);
	db_cert_clear(&c);
	req_reply_json_or(rq, 200, o, ERR_NOMEM);
}

/* ---------------------------------------------------------------------
 * POST /v1/devices/{mac}/renew-request: renew at next contact.
 */
void
route_device_renew_request(struct server *s, struct req *rq)
{
	uint8_t mac[MAC_LEN];
	char serial[33], m[MAC_STR_LEN];
	int r;

	if (mac_parse(rq->params[0], mac) != 0) {
		req_reply_error(rq, ERR_BAD_MAC, NULL);
		return;
	}
	if ((r = db_renew_request(s->db, mac, rq->actor, rq->id, serial)) != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "No device has this address." :
		    r == ERR_CONFLICT ? "The device has no active certificate: it goes through "
		    "intake again." : NULL);
		return;
	}
	mac_format(mac, m);
	log_info("renewal of %s (certificate %s) requested by \"%s\"", m, serial, rq->actor);
	req_reply_json(rq, 200, json_pack("{s:s,s:s,s:b}", "mac", m, "serial", serial,
	    "renew_requested", 1));
}

/* ---------------------------------------------------------------------
 * PUT /v1/groups/{name}/validity {"max_validity_days": N | null}
 */
void
route_group_validity(struct server *s, struct req *rq)
{
	static const char *const keys[] = { "max_validity_days", NULL };
	char why[160] = "";
	json_t *jd;
	int days = 0, r;

	if (optdata_check_name(rq->params[0]) != 0) {
		req_reply_error(rq, ERR_INVALID, "A group name is 1 to 128 printable characters.");
		return;
	}
	if ((r = json_only_keys(rq->json, keys, why, sizeof(why))) != 0) {
		req_reply_error(rq, r, why);
		return;
	}
	jd = json_object_get(rq->json, "max_validity_days");
	if (jd == NULL || (!json_is_null(jd) && (!json_is_integer(jd) ||
	    json_integer_value(jd) < 1 || json_integer_value(jd) > 36500))) {
		req_reply_error(rq, ERR_INVALID, "\"max_validity_days\" must be a number of days "
		    "from 1 to 36500, or null to remove the cap.");
		return;
	}
	if (!json_is_null(jd))
		days = (int)json_integer_value(jd);
	if ((r = db_group_validity(s->db, rq->params[0], days, rq->actor, rq->id)) != 0) {
		req_reply_error(rq, r, NULL);
		return;
	}
	log_info("group \"%s\": validity cap %d days (0: none) by \"%s\"", rq->params[0], days,
	    rq->actor);
	req_reply_json(rq, 200, days > 0 ?
	    json_pack("{s:s,s:i}", "group", rq->params[0], "max_validity_days", days) :
	    json_pack("{s:s,s:n}", "group", rq->params[0], "max_validity_days"));
}
