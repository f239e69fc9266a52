/*
 * ca_issue.c: the in-process signing core — loading the CA key with the
 * profile extensions computed once, building and signing device
 * certificates (DESIGN.md "Device certificate profile") and CRLs.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/ca_int.h"


int
ca_asn1_time_to_unix(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;
	time_t s;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || !ASN1_TIME_to_tm(t, &tm)) {
		ERR_clear_error();
		return ERR_INVALID;
	}
	if ((s = timegm(&tm)) == (time_t)-1)
		return ERR_INVALID;
	*out = (int64_t)s;
	return 0;
}

int
ca_signing_key_ok(EVP_PKEY *pk, char *why, size_t whylen)
{
	char group[64];
	int nid;

	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL)) {
			ERR_clear_error();
			break;
		}
		nid = OBJ_txt2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		if (nid == NID_X9_62_prime256v1 || nid == NID_secp384r1)
			return 0;
		break;
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(pk) >= 2048 && EVP_PKEY_get_bits(pk) <= CA_RSA_MAX_BITS)
			return 0;
		break;
	default:
		break;
	}
	snprintf(why, whylen, "the CA key must be EC P-256, EC P-384 or RSA of 2048..%d bits",
	    CA_RSA_MAX_BITS);
	return ERR_KEY_POLICY;
}

/* A URL from the configuration: printable ASCII with a scheme. */
static int
url_ok(const char *u)
{
	size_t len = strlen(u);

	if (len == 0 || len > 1024 || strstr(u, "://") == NULL)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)u[i] <= 0x20 || (unsigned char)u[i] >= 0x7f)
			return 0;
	return 1;
}

static GENERAL_NAME *
uri_name(const char *uri)
{
	GENERAL_NAME *gn = NULL;
	ASN1_IA5STRING *ia5 = NULL;

	if ((gn = GENERAL_NAME_new()) == NULL || (ia5 = ASN1_IA5STRING_new()) == NULL ||
	    !ASN1_STRING_set(ia5, uri, (int)strlen(uri))) {
		ASN1_IA5STRING_free(ia5);
		GENERAL_NAME_free(gn);
		return NULL;
	}
	GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
	return gn;
}

/* cRLDistributionPoints (nid NID_crl_distribution_points) or Freshest CRL
 * (NID_freshest_crl, the same syntax) with one fullName URI. */
static X509_EXTENSION *
make_cdp(int nid, const char *url)
{
	STACK_OF(DIST_POINT) *dps = NULL;
	DIST_POINT *dp = NULL;
	GENERAL_NAME *gn = NULL;
	X509_EXTENSION *ext = NULL;

	if ((dps = sk_DIST_POINT_new_null()) == NULL || (dp = DIST_POINT_new()) == NULL ||
	    (dp->distpoint = DIST_POINT_NAME_new()) == NULL ||
	    (dp->distpoint->name.fullname = GENERAL_NAMES_new()) == NULL ||
	    (gn = uri_name(url)) == NULL)
		goto out;
	dp->distpoint->type = 0;	/* fullName */
	if (!sk_GENERAL_NAME_push(dp->distpoint->name.fullname, gn))
		goto out;
	gn = NULL;
	if (!sk_DIST_POINT_push(dps, dp))
		goto out;
	dp = NULL;
	ext = X509V3_EXT_i2d(nid, 0, dps);
out:
	GENERAL_NAME_free(gn);
	DIST_POINT_free(dp);
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	return ext;
}

/*
 * The delta CRL's address: url with "/delta" added to its path (before a
 * query or fragment), "http://pki.example.org/v1/crl" giving
 * "http://pki.example.org/v1/crl/delta", the route provd serves it on.
 */
static int
delta_url(const char *url, char *out, size_t outlen)
{
	size_t path_end = strcspn(url, "?#");
	size_t base = path_end;

	while (base > 0 && url[base - 1] == '/')
		base--;
	if ((size_t)snprintf(out, outlen, "%.*s/delta%s", (int)base, url, url + path_end) >= outlen)
		return ERR_TOO_BIG;
	return 0;
}

/* authorityInfoAccess with one OCSP URI. */
static X509_EXTENSION *
make_aia(const char *url)
{
	AUTHORITY_INFO_ACCESS *aia = NULL;
	ACCESS_DESCRIPTION *ad = NULL;
	X509_EXTENSION *ext = NULL;

	if ((aia = AUTHORITY_INFO_ACCESS_new()) == NULL ||
	    (ad = ACCESS_DESCRIPTION_new()) == NULL)
		goto out;
	ASN1_OBJECT_free(ad->method);
	ad->method = OBJ_nid2obj(NID_ad_OCSP);
	GENERAL_NAME_free(ad->location);
	if ((ad->location = uri_name(url)) == NULL)
		goto out;
	if (!sk_ACCESS_DESCRIPTION_push(aia, ad))
		goto out;
	ad = NULL;
	ext = X509V3_EXT_i2d(NID_info_access, 0, aia);
out:
	ACCESS_DESCRIPTION_free(ad);
	AUTHORITY_INFO_ACCESS_free(aia);
	return ext;
}

/* SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2, method 1). */
static ASN1_OCTET_STRING *
key_id(const X509_PUBKEY *xpk, const EVP_MD *sha1)
{
	const unsigned char *bits;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int bitslen;
	ASN1_OCTET_STRING *oct;

	if (!X509_PUBKEY_get0_param(NULL, &bits, &bitslen, NULL, xpk) ||
	    !EVP_Digest(bits, (size_t)bitslen, md, &mdlen, sha1, NULL))
		return NULL;
	if ((oct = ASN1_OCTET_STRING_new()) == NULL)
		return NULL;
	if (!ASN1_OCTET_STRING_set(oct, md, (int)mdlen)) {
		ASN1_OCTET_STRING_free(oct);
		return NULL;
	}
	return oct;
}

/* The constant extensions of the profile. */
static int
make_fixed_exts(struct ca_key *k)
{
	int r = ERR_CRYPTO;
	BASIC_CONSTRAINTS *bc = NULL;
	ASN1_BIT_STRING *ku = NULL;
	EXTENDED_KEY_USAGE *eku = NULL;
	AUTHORITY_KEYID *akid = NULL;
	const ASN1_OCTET_STRING *skid;
	ASN1_OCTET_STRING *own = NULL;

	if ((bc = BASIC_CONSTRAINTS_new()) == NULL ||
	    (k->ext_bc = X509V3_EXT_i2d(NID_basic_constraints, 1, bc)) == NULL)
		goto out;
	if ((ku = ASN1_BIT_STRING_new()) == NULL ||
	    !ASN1_BIT_STRING_set_bit(ku, 0, 1) ||	/* digitalSignature */
	    (k->ext_ku = X509V3_EXT_i2d(NID_key_usage, 1, ku)) == NULL)
		goto out;
	if ((eku = sk_ASN1_OBJECT_new_null()) == NULL ||
	    !sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth)) ||
	    !sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth)) ||
	    (k->ext_eku = X509V3_EXT_i2d(NID_ext_key_usage, 0, eku)) == NULL)
		goto out;
	if ((skid = X509_get0_subject_key_id(k->cert)) == NULL) {
		ERR_clear_error();
		if ((own = key_id(X509_get_X509_PUBKEY(k->cert), k->md_keyid)) == NULL)
			goto out;
		skid = own;
	}
	if ((akid = AUTHORITY_KEYID_new()) == NULL ||
	    (akid->keyid = ASN1_OCTET_STRING_dup(skid)) == NULL ||
	    (k->ext_aki = X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid)) == NULL)
		goto out;
	r = 0;
out:
	if (r != 0)
		log_ossl("cannot build the profile extensions");
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING_free(ku);
	sk_ASN1_OBJECT_free(eku);	/* OBJ_nid2obj objects are static */
	AUTHORITY_KEYID_free(akid);
	ASN1_OCTET_STRING_free(own);
	return r;
}

static int
load_key_file(const char *path, const char *tcti, EVP_PKEY **out, struct tpm2_prov **tpm)
{
	int r = ca_load_key(path, tcti, out, tpm);

	if (r == ERR_CRYPTO)
		log_ossl("%s: not an unencrypted PEM private key", path);
	else if (r != 0)
		log_errx("cannot read %s: %s", path, provd_strerror(r));
	return r;
}

int
ca_key_load(const struct config *cfg, struct ca_key **out)
{
	int r = ERR_INTERNAL;
	struct ca_key *k = NULL;
	char path[PATH_MAX], why[160], durl[1100];

	if (out != NULL)
		*out = NULL;
	if (cfg == NULL || out == NULL || cfg->ca_dir == NULL)
		return ERR_INVALID;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return ERR_NOMEM;
	k->allow_rsa = cfg->allow_rsa;

	if ((size_t)snprintf(path, sizeof(path), "%s/ca.key", cfg->ca_dir) >= sizeof(path)) {
		r = ERR_CONFIG;
		goto out;
	}
	if ((r = load_key_file(path, cfg->ca_tcti, &k->pkey, &k->tpm)) != 0)
		goto out;
	if (k->tpm != NULL) {
		if ((k->key_path = strdup(path)) == NULL ||
		    (cfg->ca_tcti != NULL && (k->tcti = strdup(cfg->ca_tcti)) == NULL)) {
			r = ERR_NOMEM;
			goto out;
		}
		log_info("the CA key is in the TPM (TCTI %s)", k->tcti != NULL ? k->tcti : "default");
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/ca.crt", cfg->ca_dir) >= sizeof(path)) {
		r = ERR_CONFIG;
		goto out;
	}
	if ((r = ca_read_cert_file(path, &k->cert)) != 0)
		goto out;
	if (X509_check_private_key(k->cert, k->pkey) != 1) {
		log_ossl("%s/ca.key does not match ca.crt", cfg->ca_dir);
		r = ERR_CONFIG;
		goto out;
	}
	if (X509_check_ca(k->cert) != 1) {
		log_errx("%s: not a CA certificate", path);
		r = ERR_CONFIG;
		goto out;
	}
	if ((r = ca_signing_key_ok(k->pkey, why, sizeof(why))) != 0) {
		log_errx("%s/ca.key: %s", cfg->ca_dir, why);
		r = ERR_CONFIG;
		goto out;
	}
	if ((r = ca_asn1_time_to_unix(X509_get0_notAfter(k->cert), &k->ca_not_after)) != 0) {
		log_errx("%s: unreadable notAfter", path);
		r = ERR_CONFIG;
		goto out;
	}
	if (k->ca_not_after <= (int64_t)time(NULL))
		log_warnx("%s has expired: nothing can be issued", path);
	if (cfg->validity_days < 1 || cfg->validity_days > 36500 ||
	    cfg->backdate_s < 0 || cfg->backdate_s > 86400 * 30) {
		log_errx("ca.validity_days or ca.backdate_s out of range");
		r = ERR_CONFIG;
		goto out;
	}
	k->max_validity_s = cfg->validity_days * 86400 + cfg->backdate_s + 60;

	r = ERR_CRYPTO;
	if ((k->md_sign = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
	    (k->md_keyid = EVP_MD_fetch(NULL, "SHA1", NULL)) == NULL) {
		log_ossl("EVP_MD_fetch");
		goto out;
	}
	if ((k->sign_tmpl = EVP_MD_CTX_new()) == NULL ||
	    ca_sign_init(k->sign_tmpl, k->pkey, k->tpm) != 0)
		goto out;
	if ((k->p256 = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)) == NULL ||
	    (k->p384 = EC_GROUP_new_by_curve_name(NID_secp384r1)) == NULL) {
		log_ossl("EC_GROUP_new_by_curve_name");
		goto out;
	}
	if ((k->optdata_obj = OBJ_txt2obj(OPTDATA_OID, 1)) == NULL) {
		log_ossl("OBJ_txt2obj(%s)", OPTDATA_OID);
		goto out;
	}
	if ((r = make_fixed_exts(k)) != 0)
		goto out;
	if (cfg->crl_url != NULL) {
		if (!url_ok(cfg->crl_url)) {
			log_errx("ca.crl_url is not a URL: %s", cfg->crl_url);
			r = ERR_CONFIG;
			goto out;
		}
		if ((k->ext_cdp = make_cdp(NID_crl_distribution_points, cfg->crl_url)) == NULL) {
			log_ossl("cannot build the CRL distribution point");
			r = ERR_CRYPTO;
			goto out;
		}
		if (delta_url(cfg->crl_url, durl, sizeof(durl)) != 0) {
			log_errx("ca.crl_url is too long: %s", cfg->crl_url);
			r = ERR_CONFIG;
			goto out;
		}
		if ((k->ext_freshest = make_cdp(NID_freshest_crl, durl)) == NULL) {
			log_ossl("cannot build the Freshest CRL extension");
			r = ERR_CRYPTO;
			goto out;
		}
	}
	if (cfg->ocsp_url != NULL) {
		if (!url_ok(cfg->ocsp_url)) {
			log_errx("ca.ocsp_url is not a URL: %s", cfg->ocsp_url);
			r = ERR_CONFIG;
			goto out;
		}
		if ((k->ext_aia = make_aia(cfg->ocsp_url)) == NULL) {
			log_ossl("cannot build the OCSP access information");
			r = ERR_CRYPTO;
			goto out;
		}
	}
	*out = k;
	k = NULL;
	r = 0;
out:
	ca_key_free(k);
	return r;
}

void
ca_key_free(struct ca_key *k)
{
	if (k == NULL)
		return;
	EVP_MD_CTX_free(k->sign_tmpl);
	EVP_PKEY_free(k->pkey);
	tpm2_prov_free(k->tpm);
	free(k->key_path);
	free(k->tcti);
	X509_free(k->cert);
	EVP_MD_free(k->md_sign);
	EVP_MD_free(k->md_keyid);
	ASN1_OBJECT_free(k->optdata_obj);
	EC_GROUP_free(k->p256);
	EC_GROUP_free(k->p384);
	X509_EXTENSION_free(k->ext_bc);
	X509_EXTENSION_free(k->ext_ku);
	X509_EXTENSION_free(k->ext_eku);
	X509_EXTENSION_free(k->ext_aki);
	X509_EXTENSION_free(k->ext_cdp);
	X509_EXTENSION_free(k->ext_freshest);
	X509_EXTENSION_free(k->ext_aia);
	OPENSSL_clear_free(k, sizeof(*k));
}

/*
 * A signing context for one certificate or CRL: a copy of the template,
 * which skips the algorithm fetches of EVP_DigestSignInit (about 10% of an
 * issuance).
 */
static EVP_MD_CTX *
sign_ctx_new(const struct ca_key *k)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL || k->pkey == NULL || !EVP_MD_CTX_copy_ex(ctx, k->sign_tmpl)) {
		log_ossl("EVP_MD_CTX_copy_ex");
		EVP_MD_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/*
 * The TPM holding the CA key stopped answering (swtpm restarted, a TPM
 * reset): its provider's connection is gone for good, so the provider and
 * the key are loaded again. On failure k->pkey stays NULL and the next
 * signing tries again; meanwhile everything that needs the CA fails.
 */
static int
tpm_reconnect(struct ca_key *k)
{
	int r;

	EVP_MD_CTX_free(k->sign_tmpl);
	k->sign_tmpl = NULL;
	EVP_PKEY_free(k->pkey);
	k->pkey = NULL;
	tpm2_prov_free(k->tpm);
	k->tpm = NULL;
	if ((r = ca_load_key(k->key_path, k->tcti, &k->pkey, &k->tpm)) != 0 ||
	    (r = (k->sign_tmpl = EVP_MD_CTX_new()) == NULL ? ERR_NOMEM : 0) != 0 ||
	    (r = ca_sign_init(k->sign_tmpl, k->pkey, k->tpm)) != 0) {
		EVP_PKEY_free(k->pkey);
		k->pkey = NULL;
		log_errx("the TPM holding the CA key cannot be used: nothing can be signed "
		    "until it answers again");
		return r;
	}
	log_info("the TPM holding the CA key answers again");
	return 0;
}

/* Signs a certificate (crl NULL) or a CRL (x NULL) with the CA key; with a
 * key in a TPM, reconnects once when the TPM failed. */
static int
ca_key_sign(struct ca_key *k, X509 *x, X509_CRL *crl)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		EVP_MD_CTX *ctx = NULL;
		int ok;

		if (k->pkey == NULL && (k->key_path == NULL || tpm_reconnect(k) != 0))
			return ERR_UNAVAILABLE;
		ok = (ctx = sign_ctx_new(k)) != NULL &&
		    (x != NULL ? X509_sign_ctx(x, ctx) : X509_CRL_sign_ctx(crl, ctx)) > 0;
		EVP_MD_CTX_free(ctx);
		if (ok)
			return 0;
		log_ossl(x != NULL ? "X509_sign_ctx" : "X509_CRL_sign_ctx");
		if (k->tpm == NULL || attempt > 0)
			break;
		log_warnx("signing in the TPM failed; connecting to the TPM again");
		if (tpm_reconnect(k) != 0)
			return ERR_UNAVAILABLE;
	}
	return k->tpm != NULL || k->key_path != NULL ? ERR_UNAVAILABLE : ERR_CRYPTO;
}

static int
serial_is_zero(const uint8_t s[CA_SERIAL_LEN])
{
	uint8_t acc = 0;

	for (size_t i = 0; i < CA_SERIAL_LEN; i++)
		acc |= s[i];
	return acc == 0;
}

/* Everything about req that does not need OpenSSL. */
static int
issue_req_check(const struct ca_key *k, const struct ca_issue_req *req)
{
	static const uint8_t zero_mac[MAC_LEN];

	if ((req->mac[0] & 1) != 0 || memcmp(req->mac, zero_mac, MAC_LEN) == 0) {
		log_warnx("refused: the MAC is multicast or all zero");
		return ERR_BAD_MAC;
	}
	if (serial_is_zero(req->serial)) {
		log_warnx("refused: zero serial");
		return ERR_INVALID;
	}
	if (req->not_before < 0 || req->not_after > CA_TIME_MAX ||
	    req->not_after <= req->not_before) {
		log_warnx("refused: validity %lld..%lld", (long long)req->not_before,
		    (long long)req->not_after);
		return ERR_INVALID;
	}
	if (req->not_after - req->not_before > k->max_validity_s) {
		log_warnx("refused: validity of %lld s exceeds the profile's %lld s",
		    (long long)(req->not_after - req->not_before), (long long)k->max_validity_s);
		return ERR_INVALID;
	}
	if (req->not_after > k->ca_not_after) {
		log_warnx("refused: notAfter %lld is after the CA's %lld",
		    (long long)req->not_after, (long long)k->ca_not_after);
		return ERR_INVALID;
	}
	if (req->spki == NULL || req->spkilen == 0 || req->spkilen > CA_MAX_SPKI) {
		log_warnx("refused: public key of %zu bytes", req->spkilen);
		return req->spkilen > CA_MAX_SPKI ? ERR_TOO_BIG : ERR_INVALID;
	}
	if ((req->optdata == NULL) != (req->optdatalen == 0)) {
		log_warnx("refused: optional data pointer and length disagree");
		return ERR_INVALID;
	}
	if (req->optdatalen > CA_MAX_OPTDATA) {
		log_warnx("refused: optional data of %zu bytes", req->optdatalen);
		return ERR_TOO_BIG;
	}
	if (req->optdata != NULL) {
		struct optdata od;
		int r = optdata_decode(req->optdata, req->optdatalen, &od);
		ERR_clear_error();
		if (r != 0) {
			log_warnx("refused: optional data does not decode");
			return ERR_INVALID;
		}
		optdata_clear(&od);
	}
	return 0;
}

static int
add_subject_and_san(X509 *x, const uint8_t mac[MAC_LEN])
{
	char macstr[MAC_STR_LEN], hex[MAC_HEX_LEN], uri[sizeof("urn:dev:mac:") + MAC_HEX_LEN];
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *gn = NULL;
	int r = ERR_CRYPTO;

	mac_format(mac, macstr);
	mac_format_hex(mac, hex);
	snprintf(uri, sizeof(uri), "urn:dev:mac:%s", hex);
	/* serialNumber is a PrintableString (RFC 5280 appendix A) */
	if (!X509_NAME_add_entry_by_NID(X509_get_subject_name(x), NID_serialNumber,
	    V_ASN1_PRINTABLESTRING, (const unsigned char *)macstr, MAC_STR_LEN - 1, -1, 0))
		goto out;
	if ((gens = GENERAL_NAMES_new()) == NULL || (gn = uri_name(uri)) == NULL ||
	    !sk_GENERAL_NAME_push(gens, gn))
		goto out;
	gn = NULL;
	if (!X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT))
		goto out;
	r = 0;
out:
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	return r;
}

static int
add_optdata(const struct ca_key *k, X509 *x, const uint8_t *der, size_t len)
{
	ASN1_OCTET_STRING *os = NULL;
	X509_EXTENSION *ext = NULL;
	int r = ERR_CRYPTO;

	if ((os = ASN1_OCTET_STRING_new()) == NULL ||
	    !ASN1_OCTET_STRING_set(os, der, (int)len) ||
	    (ext = X509_EXTENSION_create_by_OBJ(NULL, k->optdata_obj, 0, os)) == NULL ||
	    !X509_add_ext(x, ext, -1))
		goto out;
	r = 0;
out:
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(os);
	return r;
}

int
ca_key_issue(struct ca_key *k, const struct ca_issue_req *req,
    uint8_t **der, size_t *derlen)
{
	int r = ERR_INTERNAL, len;
	X509 *x = NULL;
	ASN1_OCTET_STRING *ski = NULL;
	unsigned char *enc = NULL;
	uint8_t *buf = NULL;

	if (der != NULL)
		*der = NULL;
	if (derlen != NULL)
		*derlen = 0;
	if (k == NULL || req == NULL || der == NULL || derlen == NULL)
		return ERR_INVALID;
	if ((r = issue_req_check(k, req)) != 0)
		goto out;

	if ((x = X509_new()) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	if ((r = ca_spki_apply(k, req->spki, req->spkilen, x, &ski)) != 0)
		goto out;
	r = ERR_CRYPTO;
	if (!X509_set_version(x, X509_VERSION_3) ||
	    ca_serial_to_asn1(req->serial, X509_get_serialNumber(x)) != 0 ||
	    !X509_set_issuer_name(x, X509_get_subject_name(k->cert)) ||
	    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)req->not_before) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)req->not_after) == NULL ||
	    add_subject_and_san(x, req->mac) != 0 ||
	    !X509_add_ext(x, k->ext_bc, -1) ||
	    !X509_add_ext(x, k->ext_ku, -1) ||
	    !X509_add_ext(x, k->ext_eku, -1) ||
	    !X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0, X509V3_ADD_DEFAULT) ||
	    !X509_add_ext(x, k->ext_aki, -1) ||
	    (k->ext_cdp != NULL && !X509_add_ext(x, k->ext_cdp, -1)) ||
	    (k->ext_aia != NULL && !X509_add_ext(x, k->ext_aia, -1)) ||
	    (req->optdata != NULL && add_optdata(k, x, req->optdata, req->optdatalen) != 0)) {
		log_ossl("cannot build the certificate");
		goto out;
	}
	if ((r = ca_key_sign(k, x, NULL)) != 0)
		goto out;
	r = ERR_CRYPTO;
	/* one encoding (each i2d_X509 re-encodes the whole TBSCertificate) */
	if ((len = i2d_X509(x, &enc)) <= 0) {
		log_ossl("i2d_X509");
		goto out;
	}
	if ((buf = malloc((size_t)len)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	memcpy(buf, enc, (size_t)len);
	*der = buf;
	*derlen = (size_t)len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	OPENSSL_free(enc);
	ASN1_OCTET_STRING_free(ski);
	X509_free(x);
	return r;
}

static int
crl_req_check(const struct ca_crl_req *req)
{
	if (req->crl_number < 0 || req->this_update < 0 || req->next_update > CA_TIME_MAX ||
	    req->next_update <= req->this_update) {
		log_warnx("refused: CRL number %lld, update times %lld..%lld",
		    (long long)req->crl_number, (long long)req->this_update,
		    (long long)req->next_update);
		return ERR_INVALID;
	}
	/* a delta CRL is newer than its base (RFC 5280 5.2.4) */
	if (req->delta_base < 0 || (req->delta_base > 0 && req->delta_base >= req->crl_number)) {
		log_warnx("refused: delta CRL %lld against base %lld", (long long)req->crl_number,
		    (long long)req->delta_base);
		return ERR_INVALID;
	}
	if (req->nrevoked > CA_MAX_CRL_ENTRIES) {
		log_warnx("refused: %zu CRL entries (at most %d)", req->nrevoked,
		    CA_MAX_CRL_ENTRIES);
		return ERR_TOO_BIG;
	}
	if (req->nrevoked > 0 && req->revoked == NULL)
		return ERR_INVALID;
	for (size_t i = 0; i < req->nrevoked; i++) {
		const struct ca_revoked *e = &req->revoked[i];
		/* removeFromCRL (8) only in a delta CRL (RFC 5280 5.3.1) */
		if (serial_is_zero(e->serial) || e->revoked_at < 0 || e->revoked_at > CA_TIME_MAX ||
		    e->reason < 0 || e->reason > 10 || e->reason == 7 ||
		    (e->reason == 8 && req->delta_base == 0)) {
			log_warnx("refused: CRL entry %zu (reason %d, time %lld)", i, e->reason,
			    (long long)e->revoked_at);
			return ERR_INVALID;
		}
	}
	return 0;
}

/* One revoked entry; reasonCode omitted for unspecified (RFC 5280 5.3.1). */
static int
crl_add_entry(X509_CRL *crl, const struct ca_revoked *e, ASN1_INTEGER *serial,
    ASN1_TIME *when, ASN1_ENUMERATED *reason)
{
	X509_REVOKED *rev = NULL;

	if (ca_serial_to_asn1(e->serial, serial) != 0 ||
	    ASN1_TIME_set(when, (time_t)e->revoked_at) == NULL ||
	    (rev = X509_REVOKED_new()) == NULL ||
	    !X509_REVOKED_set_serialNumber(rev, serial) ||
	    !X509_REVOKED_set_revocationDate(rev, when))
		goto fail;
	if (e->reason != 0 && (!ASN1_ENUMERATED_set(reason, e->reason) ||
	    !X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, reason, 0, X509V3_ADD_DEFAULT)))
		goto fail;
	if (!X509_CRL_add0_revoked(crl, rev))
		goto fail;
	return 0;
fail:
	X509_REVOKED_free(rev);
	return ERR_CRYPTO;
}

int
ca_key_crl(struct ca_key *k, const struct ca_crl_req *req,
    uint8_t **der, size_t *derlen)
{
	int r = ERR_INTERNAL, len;
	X509_CRL *crl = NULL;
	ASN1_TIME *t = NULL;
	ASN1_INTEGER *num = NULL, *serial = NULL;
	ASN1_ENUMERATED *reason = NULL;
	STACK_OF(X509_REVOKED) *revs;
	uint8_t *buf = NULL, *p;

	if (der != NULL)
		*der = NULL;
	if (derlen != NULL)
		*derlen = 0;
	if (k == NULL || req == NULL || der == NULL || derlen == NULL)
		return ERR_INVALID;
	if ((r = crl_req_check(req)) != 0)
		goto out;

	r = ERR_CRYPTO;
	if ((crl = X509_CRL_new()) == NULL || (t = ASN1_TIME_new()) == NULL ||
	    (num = ASN1_INTEGER_new()) == NULL || (serial = ASN1_INTEGER_new()) == NULL ||
	    (reason = ASN1_ENUMERATED_new()) == NULL ||
	    !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(k->cert)) ||
	    ASN1_TIME_set(t, (time_t)req->this_update) == NULL ||
	    !X509_CRL_set1_lastUpdate(crl, t) ||
	    ASN1_TIME_set(t, (time_t)req->next_update) == NULL ||
	    !X509_CRL_set1_nextUpdate(crl, t)) {
		log_ossl("cannot build the CRL");
		goto out;
	}
	for (size_t i = 0; i < req->nrevoked; i++)
		if (crl_add_entry(crl, &req->revoked[i], serial, t, reason) != 0) {
			log_ossl("cannot add CRL entry %zu", i);
			goto out;
		}
	if (!X509_CRL_sort(crl)) {
		log_ossl("X509_CRL_sort");
		goto out;
	}
	revs = X509_CRL_get_REVOKED(crl);
	for (int i = 1; i < sk_X509_REVOKED_num(revs); i++)
		if (ASN1_INTEGER_cmp(
		    X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revs, i - 1)),
		    X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revs, i))) == 0) {
			log_warnx("refused: a serial is listed twice");
			r = ERR_INVALID;
			goto out;
		}
	if (!ASN1_INTEGER_set_int64(num, req->crl_number) ||
	    !X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, X509V3_ADD_DEFAULT) ||
	    !X509_CRL_add_ext(crl, k->ext_aki, -1)) {
		log_ossl("cannot add the CRL extensions");
		goto out;
	}
	if (req->delta_base > 0) {
		/* deltaCRLIndicator: critical, the base's CRL number (5.2.4) */
		if (!ASN1_INTEGER_set_int64(num, req->delta_base) ||
		    !X509_CRL_add1_ext_i2d(crl, NID_delta_crl, num, 1, X509V3_ADD_DEFAULT)) {
			log_ossl("cannot add the Delta CRL Indicator");
			goto out;
		}
	} else if (k->ext_freshest != NULL && !X509_CRL_add_ext(crl, k->ext_freshest, -1)) {
		/* Freshest CRL: never in a delta CRL (5.2.6) */
		log_ossl("cannot add the Freshest CRL extension");
		goto out;
	}
	if ((r = ca_key_sign(k, NULL, crl)) != 0)
		goto out;
	r = ERR_CRYPTO;
	if ((len = i2d_X509_CRL(crl, NULL)) <= 0) {
		log_ossl("i2d_X509_CRL");
		goto out;
	}
	if ((buf = malloc((size_t)len)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	p = buf;
	if (i2d_X509_CRL(crl, &p) != len) {
		log_ossl("i2d_X509_CRL");
		goto out;
	}
	*der = buf;
	*derlen = (size_t)len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	ASN1_ENUMERATED_free(reason);
	ASN1_INTEGER_free(serial);
	ASN1_INTEGER_free(num);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	return r;
}
