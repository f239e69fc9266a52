/*
 * ca_init.c: "provd ca init" — creates a one- or two-tier EC P-256 CA, or
 * imports an existing CA certificate and key, into the CA directory
 * (ca.key, ca.crt, root.crt, chain.pem; see ca.h) — and "provd ca
 * ocsp-cert": the delegated OCSP responder's key and certificate.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/ca_int.h"

#define DEFAULT_CN "provd Root CA"
#define DEFAULT_DAYS 3650
#define MAX_DAYS 36500
#define NAME_MAX_LEN 64			/* ub-common-name, ub-organization-name */
#define CA_BACKDATE_S 3600		/* tolerate device clocks an hour behind */
#define IMPORT_MAX_CERTS 16
#define IMPORT_FILE_MAX (1024 * 1024)

/* 1..NAME_MAX_LEN bytes without control characters (UTF-8 is checked by OpenSSL). */
static int
name_ok(const char *s)
{
	size_t len = strnlen(s, NAME_MAX_LEN + 1);

	if (len == 0 || len > NAME_MAX_LEN)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* "X Root CA" -> "X Issuing CA"; anything else gets " Issuing CA" appended. */
static int
issuing_name(const char *root_cn, char *out, size_t outlen)
{
	static const char root_sfx[] = " Root CA";
	size_t len = strlen(root_cn), sl = sizeof(root_sfx) - 1;
	int n;

	if (len >= sl && strcmp(root_cn + len - sl, root_sfx) == 0)
		n = snprintf(out, outlen, "%.*s Issuing CA", (int)(len - sl), root_cn);
	else
		n = snprintf(out, outlen, "%s Issuing CA", root_cn);
	return n > 0 && (size_t)n < outlen && name_ok(out);
}

static int
add_conf_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext;
	int ok;

	if ((ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value)) == NULL)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/*
 * A CA certificate for key, signed by issuer/issuer_key, or self-signed when
 * issuer is NULL. pathlen < 0: no path length constraint.
 */
static int
make_ca_cert(EVP_PKEY *key, const char *cn, const char *org, X509 *issuer,
    EVP_PKEY *issuer_key, const struct tpm2_prov *sign_tpm, int pathlen, int64_t nb, int64_t na,
    X509 **out)
{
	int r = ERR_CRYPTO;
	X509 *x = NULL;
	EVP_MD_CTX *mctx = NULL;
	X509_NAME *name;
	X509V3_CTX ctx;
	uint8_t serial[CA_SERIAL_LEN];

	*out = NULL;
	if ((r = ca_serial_new(serial)) != 0)
		return r;
	r = ERR_CRYPTO;
	if ((x = X509_new()) == NULL || !X509_set_version(x, X509_VERSION_3) ||
	    ca_serial_to_asn1(serial, X509_get_serialNumber(x)) != 0)
		goto out;
	name = X509_get_subject_name(x);
	if ((org != NULL && !X509_NAME_add_entry_by_NID(name, NID_organizationName,
	    MBSTRING_UTF8, (const unsigned char *)org, -1, -1, 0)) ||
	    !X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0))
		goto out;
	if (!X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name) ||
	    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) == NULL ||
	    !X509_set_pubkey(x, key))
		goto out;
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	if (!add_conf_ext(x, &ctx, NID_basic_constraints,
	    pathlen >= 0 ? "critical,CA:TRUE,pathlen:0" : "critical,CA:TRUE") ||
	    !add_conf_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !add_conf_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
	    !add_conf_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"))
		goto out;
	if ((mctx = EVP_MD_CTX_new()) == NULL ||
	    ca_sign_init(mctx, issuer_key != NULL ? issuer_key : key, sign_tpm) != 0 ||
	    X509_sign_ctx(x, mctx) <= 0)
		goto out;
	*out = x;
	x = NULL;
	r = 0;
out:
	if (r != 0)
		log_ossl("cannot build the CA certificate \"%s\"", cn);
	EVP_MD_CTX_free(mctx);
	X509_free(x);
	return r;
}

/* PEM of certs[0..n-1] into a new NUL-terminated buffer (free()). */
static int
certs_to_pem(X509 *const *certs, int n, char **out, size_t *outlen)
{
	int r = ERR_CRYPTO;
	BIO *bio = NULL;
	char *data;
	long len;

	*out = NULL;
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		goto out;
	for (int i = 0; i < n; i++)
		if (!PEM_write_bio_X509(bio, certs[i]))
			goto out;
	if ((len = BIO_get_mem_data(bio, &data)) <= 0)
		goto out;
	if ((*out = malloc((size_t)len + 1)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	memcpy(*out, data, (size_t)len);
	(*out)[len] = '\0';
	*outlen = (size_t)len;
	r = 0;
out:
	if (r == ERR_CRYPTO)
		log_ossl("PEM_write_bio_X509");
	BIO_free(bio);
	return r;
}

static int
write_file(const char *dir, const char *name, const void *data, size_t len,
    unsigned mode, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int r;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		msg_set(err, errlen, "the CA directory path is too long");
		return ERR_INVALID;
	}
	if ((r = file_write_atomic(path, data, len, mode)) != 0)
		msg_set(err, errlen, "cannot write %s: %s", path, provd_strerror(r));
	return r;
}

/* Writes the key (PKCS#8 PEM, 0600) to dir/name from the secure heap, wiped
 * afterwards; dir NULL: name is the whole path. what names it in errors. A
 * key in a TPM (tpm not NULL) is written by the provider's encoder: the
 * TSS2 PEM, a blob only that TPM can load. */
static int
write_key(const char *dir, const char *name, EVP_PKEY *key, const struct tpm2_prov *tpm,
    const char *what, char *err, size_t errlen)
{
	OSSL_ENCODER_CTX *ectx = NULL;
	int r = ERR_CRYPTO;
	BIO *bio = NULL;
	char *data;
	long len;

	if ((bio = BIO_new(BIO_s_secmem())) == NULL)
		goto fail;
	if (tpm != NULL) {
		if ((ectx = OSSL_ENCODER_CTX_new_for_pkey(key, OSSL_KEYMGMT_SELECT_KEYPAIR, "PEM",
		    "PrivateKeyInfo", TPM2_PROPQ)) == NULL ||
		    OSSL_ENCODER_CTX_get_num_encoders(ectx) == 0 || !OSSL_ENCODER_to_bio(ectx, bio))
			goto fail;
	} else if (!PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) {
		goto fail;
	}
	if ((len = BIO_get_mem_data(bio, &data)) <= 0)
		goto fail;
	if (dir != NULL)
		r = write_file(dir, name, data, (size_t)len, 0600, err, errlen);
	else if ((r = file_write_atomic(name, data, (size_t)len, 0600)) != 0)
		msg_set(err, errlen, "cannot write %s: %s", name, provd_strerror(r));
	goto out;
fail:
	log_ossl("cannot encode the %s", what);
	msg_set(err, errlen, "cannot encode the %s", what);
out:
	OSSL_ENCODER_CTX_free(ectx);
	BIO_free(bio);	/* secmem: cleared on free */
	return r;
}

/* Creates dir (0700) unless it is already a directory. */
static int
make_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0)
		return 0;
	if (errno != EEXIST) {
		msg_set(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return ERR_IO;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		msg_set(err, errlen, "%s exists and is not a directory", dir);
		return ERR_IO;
	}
	return 0;
}

/* Reads every certificate of a PEM file into certs[]. */
static int
read_cert_chain(const char *path, X509 **certs, int *n, char *err, size_t errlen)
{
	int r = ERR_INVALID;
	char *buf = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509 *x;
	unsigned long e;

	*n = 0;
	if ((r = file_read_all(path, IMPORT_FILE_MAX, &buf, &len)) != 0) {
		msg_set(err, errlen, "cannot read %s: %s", path, provd_strerror(r));
		goto out;
	}
	r = ERR_INVALID;
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, ca_no_passphrase, NULL)) != NULL) {
		if (*n == IMPORT_MAX_CERTS) {
			X509_free(x);
			msg_set(err, errlen, "%s holds more than %d certificates", path,
			    IMPORT_MAX_CERTS);
			goto out;
		}
		certs[(*n)++] = x;
	}
	e = ERR_peek_last_error();
	if (*n == 0 || ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
		msg_set(err, errlen, "%s is not a PEM certificate file", path);
		goto out;
	}
	ERR_clear_error();
	r = 0;
out:
	ERR_clear_error();
	BIO_free(bio);
	free(buf);
	return r;
}

static int
read_private_key(const char *path, EVP_PKEY **out, char *err, size_t errlen)
{
	int r = ca_read_key_file(path, out);

	if (r == ERR_CRYPTO) {
		ERR_clear_error();
		msg_set(err, errlen, "%s is not an unencrypted PEM private key", path);
		return ERR_INVALID;
	}
	if (r != 0)
		msg_set(err, errlen, "cannot read %s: %s", path, provd_strerror(r));
	return r;
}

/*
 * Import: certs[0] is the CA to sign with, certs[1..] its issuers up to a
 * self-signed root. Checks the key matches, it is a CA allowed to sign
 * certificates and CRLs, and each link of the chain.
 */
static int check_chain(X509 **certs, int n, char *err, size_t errlen);

static int
check_import(X509 **certs, int n, EVP_PKEY *key, char *err, size_t errlen)
{
	char why[160];

	if (X509_check_private_key(certs[0], key) != 1) {
		ERR_clear_error();
		msg_set(err, errlen, "the private key does not match the certificate");
		return ERR_INVALID;
	}
	if (ca_signing_key_ok(key, why, sizeof(why)) != 0) {
		msg_set(err, errlen, "%s", why);
		return ERR_KEY_POLICY;
	}
	return check_chain(certs, n, err, errlen);
}

/* certs[0] a CA allowed to sign certificates and CRLs, not expired, issued
 * by certs[1] and so on up to a self-signed root. */
static int
check_chain(X509 **certs, int n, char *err, size_t errlen)
{
	uint32_t ku;
	int64_t na;

	if (X509_check_ca(certs[0]) != 1) {
		msg_set(err, errlen, "the certificate is not a CA certificate "
		    "(basicConstraints CA:TRUE is required)");
		return ERR_INVALID;
	}
	ku = X509_get_key_usage(certs[0]);
	if ((ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) != (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) {
		msg_set(err, errlen, "the certificate's key usage must allow keyCertSign and cRLSign");
		return ERR_INVALID;
	}
	if (ca_asn1_time_to_unix(X509_get0_notAfter(certs[0]), &na) != 0 ||
	    na <= (int64_t)time(NULL)) {
		msg_set(err, errlen, "the certificate has expired");
		return ERR_INVALID;
	}
	for (int i = 0; i + 1 < n; i++) {
		if (X509_check_issued(certs[i + 1], certs[i]) != X509_V_OK ||
		    X509_verify(certs[i], X509_get0_pubkey(certs[i + 1])) != 1) {
			ERR_clear_error();
			msg_set(err, errlen, "certificate %d of the file is not issued by "
			    "certificate %d", i + 1, i + 2);
			return ERR_INVALID;
		}
	}
	if (X509_self_signed(certs[n - 1], 1) != 1) {
		ERR_clear_error();
		msg_set(err, errlen, n == 1 ? "the certificate is not self-signed: put its "
		    "issuers, up to the root, after it in the same file" :
		    "the last certificate of the file is not a self-signed root");
		return ERR_INVALID;
	}
	return 0;
}

int
ca_init(const struct ca_init_opts *o, char *err, size_t errlen)
{
	int r = ERR_INTERNAL, n = 0, days;
	X509 *certs[IMPORT_MAX_CERTS];
	EVP_PKEY *root_key = NULL, *ca_key = NULL;
	struct tpm2_prov *tpm = NULL;
	const char *cn;
	char path[PATH_MAX], icn[NAME_MAX_LEN + 1];
	char *pem_ca = NULL, *pem_root = NULL, *pem_chain = NULL;
	size_t len_ca = 0, len_root = 0, len_chain = 0;
	struct stat st;
	int64_t now, nb, na;

	msg_set(err, errlen, "internal error");
	if (o == NULL || o->dir == NULL || o->dir[0] == '\0') {
		msg_set(err, errlen, "no CA directory given");
		return ERR_INVALID;
	}
	cn = o->common_name != NULL ? o->common_name : DEFAULT_CN;
	days = o->days != 0 ? o->days : DEFAULT_DAYS;
	if ((o->import_cert == NULL) != (o->import_key == NULL)) {
		msg_set(err, errlen, "an import needs both a certificate and a private key");
		return ERR_INVALID;
	}
	if (o->import_cert != NULL && o->two_tier) {
		msg_set(err, errlen, "an imported CA cannot be combined with two-tier creation");
		return ERR_INVALID;
	}
	if (o->external_chain != NULL && (o->import_cert != NULL || o->two_tier ||
	    o->keystore != NULL)) {
		msg_set(err, errlen, "an external CA's chain goes alone: no import, two tiers or "
		    "keystore (the external CA keeps its key)");
		return ERR_INVALID;
	}
	if (o->keystore != NULL && strcmp(o->keystore, "file") != 0 &&
	    strcmp(o->keystore, "tpm2") != 0) {
		msg_set(err, errlen, "the keystore is \"file\" or \"tpm2\"");
		return ERR_INVALID;
	}
	if (o->keystore != NULL && strcmp(o->keystore, "tpm2") == 0 && o->import_cert != NULL) {
		msg_set(err, errlen, "a key made elsewhere cannot be put into the TPM: a CA in "
		    "the TPM is made there (without an import)");
		return ERR_INVALID;
	}
	if (o->import_cert == NULL) {
		if (!name_ok(cn)) {
			msg_set(err, errlen, "the common name must be 1..%d printable characters",
			    NAME_MAX_LEN);
			return ERR_INVALID;
		}
		if (o->organization != NULL && !name_ok(o->organization)) {
			msg_set(err, errlen, "the organization must be 1..%d printable characters",
			    NAME_MAX_LEN);
			return ERR_INVALID;
		}
		if (o->two_tier && !issuing_name(cn, icn, sizeof(icn))) {
			msg_set(err, errlen, "the common name is too long to derive the issuing "
			    "CA's name from it");
			return ERR_INVALID;
		}
		if (days < 1 || days > MAX_DAYS) {
			msg_set(err, errlen, "the CA validity must be 1..%d days", MAX_DAYS);
			return ERR_INVALID;
		}
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/ca.key", o->dir) >= sizeof(path)) {
		msg_set(err, errlen, "the CA directory path is too long");
		return ERR_INVALID;
	}
	if ((r = make_dir(o->dir, err, errlen)) != 0)
		return r;
	/* ca.key, or chain.pem alone (an external CA's): a CA is there */
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", o->dir, i == 0 ? "ca.key" : "chain.pem");
		if (lstat(path, &st) == 0) {
			if (!o->force) {
				msg_set(err, errlen, "%s already exists; refusing to overwrite the "
				    "CA without force", path);
				return ERR_CONFLICT;
			}
		} else if (errno != ENOENT) {
			msg_set(err, errlen, "cannot check %s: %s", path, strerror(errno));
			return ERR_IO;
		}
	}

	if (o->keystore != NULL && strcmp(o->keystore, "tpm2") == 0 &&
	    (r = tpm2_prov_open(o->tcti, &tpm)) != 0) {
		msg_set(err, errlen, "cannot reach the TPM (TCTI %.64s): %s",
		    o->tcti != NULL ? o->tcti : "default", provd_strerror(r));
		goto out;
	}
	if (o->external_chain != NULL) {
		if ((r = read_cert_chain(o->external_chain, certs, &n, err, errlen)) != 0 ||
		    (r = check_chain(certs, n, err, errlen)) != 0)
			goto out;
	} else if (o->import_cert != NULL) {
		if ((r = read_cert_chain(o->import_cert, certs, &n, err, errlen)) != 0 ||
		    (r = read_private_key(o->import_key, &ca_key, err, errlen)) != 0 ||
		    (r = check_import(certs, n, ca_key, err, errlen)) != 0)
			goto out;
	} else {
		now = (int64_t)time(NULL);
		nb = now - CA_BACKDATE_S;
		na = now + (int64_t)days * 86400;
		r = ERR_CRYPTO;
		/* one tier: the root signs, in the TPM with tpm2; two tiers: the
		 * issuing CA's key is the one in the TPM, the root's is kept
		 * offline or not at all */
		if (tpm != NULL && !o->two_tier)
			r = tpm2_prov_keygen(tpm, &root_key);
		else if ((root_key = EVP_EC_gen("P-256")) != NULL)
			r = 0;
		if (r != 0) {
			log_ossl("EC key generation");
			msg_set(err, errlen, "cannot generate the CA key%s", tpm != NULL &&
			    !o->two_tier ? " in the TPM" : "");
			goto out;
		}
		if ((r = make_ca_cert(root_key, cn, o->organization, NULL, NULL,
		    o->two_tier ? NULL : tpm, -1, nb, na, &certs[0])) != 0) {
			msg_set(err, errlen, "cannot create the root CA certificate");
			goto out;
		}
		n = 1;
		if (o->two_tier) {
			if (tpm != NULL)
				r = tpm2_prov_keygen(tpm, &ca_key);
			else
				r = (ca_key = EVP_EC_gen("P-256")) != NULL ? 0 : ERR_CRYPTO;
			if (r != 0) {
				log_ossl("EC key generation");
				msg_set(err, errlen, "cannot generate the issuing CA key%s",
				    tpm != NULL ? " in the TPM" : "");
				goto out;
			}
			/* chain order: issuing CA first, then the root */
			certs[1] = certs[0];
			certs[0] = NULL;
			n = 2;
			if ((r = make_ca_cert(ca_key, icn, o->organization, certs[1], root_key,
			    NULL, 0, nb, na, &certs[0])) != 0) {
				msg_set(err, errlen, "cannot create the issuing CA certificate");
				goto out;
			}
		} else {
			ca_key = root_key;
			root_key = NULL;
		}
	}

	if ((r = certs_to_pem(&certs[0], 1, &pem_ca, &len_ca)) != 0 ||
	    (r = certs_to_pem(&certs[n - 1], 1, &pem_root, &len_root)) != 0 ||
	    (r = certs_to_pem(certs, n, &pem_chain, &len_chain)) != 0) {
		msg_set(err, errlen, "cannot encode the CA certificates");
		goto out;
	}
	/* the root key of a two-tier CA goes only where the operator said, to
	 * be kept offline; without root_key_out it is not kept at all */
	if (root_key != NULL && o->root_key_out != NULL &&
	    (r = write_key(NULL, o->root_key_out, root_key, NULL, "root CA key", err, errlen)) != 0)
		goto out;
	/* ca.key last: its presence means a complete CA directory */
	if ((r = write_file(o->dir, "root.crt", pem_root, len_root, 0644, err, errlen)) != 0 ||
	    (r = write_file(o->dir, "chain.pem", pem_chain, len_chain, 0644, err, errlen)) != 0 ||
	    (r = write_file(o->dir, "ca.crt", pem_ca, len_ca, 0644, err, errlen)) != 0 ||
	    (ca_key != NULL &&
	    (r = write_key(o->dir, "ca.key", ca_key, tpm, "CA key", err, errlen)) != 0))
		goto out;
	log_info("CA in %s: %s%s%s", o->dir, o->external_chain != NULL ? "an external CA's chain" :
	    o->import_cert != NULL ? "imported" : "created",
	    o->two_tier ? " (root and issuing CA)" : "",
	    tpm != NULL ? ", the signing key in the TPM" : "");
	msg_set(err, errlen, "ok");
	r = 0;
out:
	for (int i = 0; i < n; i++)
		X509_free(certs[i]);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(ca_key);
	tpm2_prov_free(tpm);
	free(pem_ca);
	free(pem_root);
	free(pem_chain);
	return r;
}

/* ---------------------------------------------------------------------
 * provd ca ocsp-cert: the delegated OCSP responder (RFC 6960 4.2.2.2).
 */
#define OCSP_CN "OCSP Responder"

/* The CA's O, and CN "<CA's CN> OCSP Responder", or just "OCSP Responder"
 * when that would be too long. */
static int
ocsp_subject(X509 *ca, X509_NAME *name)
{
	const X509_NAME *cn = X509_get_subject_name(ca);
	char buf[NAME_MAX_LEN + 1];
	const char *value = OCSP_CN;
	unsigned char *utf8 = NULL;
	int i, n;

	if ((i = X509_NAME_get_index_by_NID(cn, NID_organizationName, -1)) >= 0 &&
	    !X509_NAME_add_entry(name, X509_NAME_get_entry(cn, i), -1, 0))
		return 0;
	if ((i = X509_NAME_get_index_by_NID(cn, NID_commonName, -1)) >= 0 &&
	    (n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(cn, i)))) > 0 &&
	    (size_t)n + sizeof(" " OCSP_CN) - 1 <= NAME_MAX_LEN) {
		snprintf(buf, sizeof(buf), "%.*s " OCSP_CN, n, (const char *)utf8);
		if (name_ok(buf))
			value = buf;
	}
	OPENSSL_free(utf8);
	ERR_clear_error();
	return X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
	    (const unsigned char *)value, -1, -1, 0);
}

/* authorityKeyIdentifier: the CA's subject key identifier, or the SHA-1 of
 * its key (RFC 5280 4.2.1.2) when it has none, as on device certificates. */
static int
add_aki(X509 *x, X509 *ca)
{
	const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(ca);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	AUTHORITY_KEYID *akid;
	int ok = 0;

	if ((akid = AUTHORITY_KEYID_new()) == NULL)
		return 0;
	if (skid != NULL)
		akid->keyid = ASN1_OCTET_STRING_dup(skid);
	else if (X509_pubkey_digest(ca, EVP_sha1(), md, &mdlen) &&
	    (akid->keyid = ASN1_OCTET_STRING_new()) != NULL &&
	    !ASN1_OCTET_STRING_set(akid->keyid, md, (int)mdlen)) {
		ASN1_OCTET_STRING_free(akid->keyid);
		akid->keyid = NULL;
	}
	if (akid->keyid != NULL)
		ok = X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT);
	AUTHORITY_KEYID_free(akid);
	return ok;
}

static int
make_ocsp_cert(EVP_PKEY *key, X509 *ca, EVP_PKEY *ca_key, const struct tpm2_prov *ca_tpm,
    int64_t nb, int64_t na, X509 **out)
{
	int r = ERR_CRYPTO;
	X509 *x = NULL;
	X509V3_CTX ctx;
	EVP_MD_CTX *mctx = NULL;
	ASN1_NULL *nocheck = NULL;
	uint8_t serial[CA_SERIAL_LEN];

	*out = NULL;
	if ((r = ca_serial_new(serial)) != 0)
		return r;
	r = ERR_CRYPTO;
	if ((x = X509_new()) == NULL || (nocheck = ASN1_NULL_new()) == NULL ||
	    !X509_set_version(x, X509_VERSION_3) ||
	    ca_serial_to_asn1(serial, X509_get_serialNumber(x)) != 0 ||
	    !X509_set_issuer_name(x, X509_get_subject_name(ca)) ||
	    !ocsp_subject(ca, X509_get_subject_name(x)) ||
	    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) == NULL ||
	    !X509_set_pubkey(x, key))
		goto out;
	X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
	if (!add_conf_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_conf_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") ||
	    !add_conf_ext(x, &ctx, NID_ext_key_usage, "OCSPSigning") ||
	    !X509_add1_ext_i2d(x, NID_id_pkix_OCSP_noCheck, nocheck, 0, X509V3_ADD_DEFAULT) ||
	    !add_conf_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
	    !add_aki(x, ca))
		goto out;
	if ((mctx = EVP_MD_CTX_new()) == NULL || ca_sign_init(mctx, ca_key, ca_tpm) != 0 ||
	    X509_sign_ctx(x, mctx) <= 0)
		goto out;
	*out = x;
	x = NULL;
	r = 0;
out:
	if (r != 0)
		log_ossl("cannot build the OCSP responder certificate");
	EVP_MD_CTX_free(mctx);
	ASN1_NULL_free(nocheck);
	X509_free(x);
	return r;
}

int
ca_ocsp_cert_make(const char *dir, const char *tcti, int days, int64_t *not_after, char *err,
    size_t errlen)
{
	int r = ERR_INTERNAL, n = 0;
	X509 *certs[IMPORT_MAX_CERTS], *x = NULL;
	EVP_PKEY *ca_key = NULL, *key = NULL;
	struct tpm2_prov *tpm = NULL;
	char path[PATH_MAX], *pem = NULL;
	size_t pemlen = 0;
	struct stat st;
	int64_t now, ca_na, na;

	msg_set(err, errlen, "internal error");
	if (dir == NULL || dir[0] == '\0') {
		msg_set(err, errlen, "no CA directory given");
		return ERR_INVALID;
	}
	if (days < 1 || days > CA_OCSP_DAYS_MAX) {
		msg_set(err, errlen, "the OCSP responder certificate's validity must be 1..%d days",
		    CA_OCSP_DAYS_MAX);
		return ERR_INVALID;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/ca.key", dir) >= sizeof(path)) {
		msg_set(err, errlen, "the CA directory path is too long");
		return ERR_INVALID;
	}
	if (stat(path, &st) != 0) {
		msg_set(err, errlen, errno == ENOENT ? "there is no CA in %s (no ca.key): run "
		    "\"provd ca init\" first" : "cannot check %s", dir);
		return errno == ENOENT ? ERR_NOT_FOUND : ERR_IO;
	}
	if ((r = ca_load_key(path, tcti, &ca_key, &tpm)) != 0) {
		msg_set(err, errlen, r == ERR_UNAVAILABLE ? "%s is a key in a TPM, and the TPM "
		    "does not answer" : r == ERR_CRYPTO && tpm == NULL ? "%s is not a private key "
		    "(or the TPM does not load it)" : "cannot read %s", path);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/ca.crt", dir);
	if ((r = read_cert_chain(path, certs, &n, err, errlen)) != 0)
		goto out;
	if (X509_check_private_key(certs[0], ca_key) != 1) {
		ERR_clear_error();
		msg_set(err, errlen, "%s/ca.key does not match %s/ca.crt", dir, dir);
		r = ERR_INVALID;
		goto out;
	}
	now = (int64_t)time(NULL);
	if ((r = ca_asn1_time_to_unix(X509_get0_notAfter(certs[0]), &ca_na)) != 0 ||
	    ca_na <= now) {
		msg_set(err, errlen, "the CA certificate %s/ca.crt has expired", dir);
		r = ERR_INVALID;
		goto out;
	}
	na = now + (int64_t)days * 86400;
	if (na > ca_na)
		na = ca_na;	/* never outlive the issuer */
	r = ERR_CRYPTO;
	if ((key = EVP_EC_gen("P-256")) == NULL) {
		log_ossl("EC key generation");
		msg_set(err, errlen, "cannot generate the OCSP responder key");
		goto out;
	}
	if ((r = make_ocsp_cert(key, certs[0], ca_key, tpm, now - CA_BACKDATE_S, na, &x)) != 0 ||
	    (r = certs_to_pem(&x, 1, &pem, &pemlen)) != 0) {
		msg_set(err, errlen, "cannot create the OCSP responder certificate");
		goto out;
	}
	/* the key first: a running provd reloads when ocsp.crt changes */
	if ((r = write_key(dir, "ocsp.key", key, NULL, "OCSP responder key", err, errlen)) != 0 ||
	    (r = write_file(dir, "ocsp.crt", pem, pemlen, 0644, err, errlen)) != 0)
		goto out;
	if (not_after != NULL)
		*not_after = na;
	log_info("OCSP responder certificate in %s/ocsp.crt, valid for %d days", dir, days);
	msg_set(err, errlen, "ok");
	r = 0;
out:
	for (int i = 0; i < n; i++)
		X509_free(certs[i]);
	X509_free(x);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(key);
	tpm2_prov_free(tpm);
	free(pem);
	return r;
}
