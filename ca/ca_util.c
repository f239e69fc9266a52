/*
 * ca_util.c: reading certificates on the device side and in tests —
 * SHA-256 fingerprints, serial numbers as hex, DER to PEM.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ca/ca_int.h"

#define PEM_LABEL_MAX 64

void
ca_fingerprint(const uint8_t *der, size_t derlen, uint8_t out[32])
{
	unsigned int mdlen = 0;

	if (!EVP_Digest(der, derlen, out, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
		log_ossl("EVP_Digest");
		memset(out, 0, 32);
	}
}

int
ca_cert_serial_hex(const uint8_t *der, size_t derlen, char out[CA_SERIAL_HEX])
{
	int r = ERR_INVALID;
	X509 *x = NULL;
	BIGNUM *bn = NULL;
	const unsigned char *p = der;
	uint8_t buf[CA_SERIAL_LEN];

	if (der == NULL || out == NULL || derlen == 0 || derlen > LONG_MAX)
		return ERR_INVALID;
	if ((x = d2i_X509(NULL, &p, (long)derlen)) == NULL || p != der + derlen) {
		ERR_clear_error();
		goto out;
	}
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) == NULL) {
		ERR_clear_error();
		goto out;
	}
	if (BN_is_negative(bn) || BN_num_bytes(bn) > CA_SERIAL_LEN ||
	    BN_bn2binpad(bn, buf, sizeof(buf)) != CA_SERIAL_LEN)
		goto out;
	hex_encode(buf, sizeof(buf), out);
	r = 0;
out:
	BN_free(bn);
	X509_free(x);
	return r;
}

int
ca_cert_validity(const uint8_t *der, size_t derlen, int64_t *not_before, int64_t *not_after)
{
	const unsigned char *p = der;
	X509 *x;
	int r = ERR_INVALID;

	if (der == NULL || derlen == 0 || derlen > LONG_MAX)
		return ERR_INVALID;
	if ((x = d2i_X509(NULL, &p, (long)derlen)) != NULL && p == der + derlen &&
	    ca_asn1_time_to_unix(X509_get0_notBefore(x), not_before) == 0 &&
	    ca_asn1_time_to_unix(X509_get0_notAfter(x), not_after) == 0)
		r = 0;
	ERR_clear_error();
	X509_free(x);
	return r;
}

/* A PEM label: 1..PEM_LABEL_MAX of A-Z, 0-9 and single spaces inside. */
static int
label_ok(const char *s)
{
	size_t len = strnlen(s, PEM_LABEL_MAX + 1);

	if (len == 0 || len > PEM_LABEL_MAX || s[0] == ' ' || s[len - 1] == ' ')
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == ' '))
			return 0;
	return 1;
}

int
ca_der_to_pem(const char *label, const uint8_t *der, size_t derlen, char **pem)
{
	int r = ERR_CRYPTO;
	BIO *bio = NULL;
	char *data, *buf;
	long len;

	if (pem != NULL)
		*pem = NULL;
	if (label == NULL || der == NULL || pem == NULL || derlen == 0 || derlen > INT_MAX / 2 ||
	    !label_ok(label))
		return ERR_INVALID;
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio(bio, label, "", der, (long)derlen) <= 0 ||
	    (len = BIO_get_mem_data(bio, &data)) <= 0) {
		log_ossl("PEM_write_bio");
		goto out;
	}
	if ((buf = malloc((size_t)len + 1)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	memcpy(buf, data, (size_t)len);
	buf[len] = '\0';
	*pem = buf;
	r = 0;
out:
	BIO_free(bio);
	return r;
}

int
ca_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int
ca_read_cert_file(const char *path, X509 **out)
{
	int r = ERR_INTERNAL;
	char *buf = NULL;
	size_t len = 0;
	BIO *bio = NULL;

	*out = NULL;
	if ((r = file_read_all(path, CA_CERT_FILE_MAX, &buf, &len)) != 0) {
		log_errx("cannot read %s: %s", path, provd_strerror(r));
		goto out;
	}
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	if ((*out = PEM_read_bio_X509(bio, NULL, ca_no_passphrase, NULL)) == NULL) {
		log_ossl("%s: not a PEM certificate", path);
		r = ERR_CRYPTO;
		goto out;
	}
	r = 0;
out:
	BIO_free(bio);
	free(buf);
	return r;
}

/* A TPM-wrapped key (tpm2-openssl's TSS2 PEM) decoded in the provider's
 * library context: the key object stays in the TPM. */
static int
read_tpm_key(const char *path, const char *buf, size_t len, const char *tcti, EVP_PKEY **out,
    struct tpm2_prov **tpm)
{
	OSSL_DECODER_CTX *dctx = NULL;
	struct tpm2_prov *t = NULL;
	const unsigned char *p = (const unsigned char *)buf;
	EVP_PKEY *pk = NULL;
	size_t left = len;
	int r;

	if ((r = tpm2_prov_open(tcti, &t)) != 0) {
		log_errx("%s is a key in a TPM, and the TPM cannot be reached (TCTI %.64s)", path,
		    tcti != NULL ? tcti : "default");
		return r;
	}
	r = ERR_CRYPTO;
	if ((dctx = OSSL_DECODER_CTX_new_for_pkey(&pk, "PEM", NULL, NULL,
	    OSSL_KEYMGMT_SELECT_PRIVATE_KEY, tpm2_prov_libctx(t), TPM2_PROPQ)) == NULL ||
	    !OSSL_DECODER_from_data(dctx, &p, &left) || pk == NULL) {
		log_ossl("%s: the TPM does not load this key (made by another TPM?)", path);
		goto out;
	}
	*out = pk;
	*tpm = t;
	pk = NULL;
	t = NULL;
	r = 0;
out:
	OSSL_DECODER_CTX_free(dctx);
	EVP_PKEY_free(pk);
	tpm2_prov_free(t);
	return r;
}

int
ca_load_key(const char *path, const char *tcti, EVP_PKEY **out, struct tpm2_prov **tpm)
{
	static const char tss2[] = "-----BEGIN TSS2 PRIVATE KEY-----";
	int r = ERR_INTERNAL;
	char *buf = NULL;
	size_t len = 0;
	BIO *bio = NULL;

	*out = NULL;
	if (tpm != NULL)
		*tpm = NULL;
	if ((r = file_read_all(path, CA_KEY_FILE_MAX, &buf, &len)) != 0)
		goto out;
	if (memmem(buf, len, tss2, sizeof(tss2) - 1) != NULL) {
		if (tpm == NULL) {
			log_errx("%s: a key in a TPM cannot be used here", path);
			r = ERR_UNSUPPORTED;
		} else {
			r = read_tpm_key(path, buf, len, tcti, out, tpm);
		}
		goto out;
	}
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	if ((*out = PEM_read_bio_PrivateKey(bio, NULL, ca_no_passphrase, NULL)) == NULL) {
		r = ERR_CRYPTO;
		goto out;
	}
	r = 0;
out:
	BIO_free(bio);
	if (buf != NULL) {
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
	return r;
}

int
ca_read_key_file(const char *path, EVP_PKEY **out)
{
	return ca_load_key(path, NULL, out, NULL);
}

int
ca_sign_init(EVP_MD_CTX *ctx, EVP_PKEY *key, const struct tpm2_prov *tpm)
{
	if (!EVP_DigestSignInit_ex(ctx, NULL, "SHA256", tpm2_prov_libctx(tpm),
	    tpm != NULL ? TPM2_SIGN_PROPQ : NULL, key, NULL)) {
		log_ossl("EVP_DigestSignInit_ex%s", tpm != NULL ? " (key in the TPM)" : "");
		return ERR_CRYPTO;
	}
	return 0;
}

int
ca_chain_validity(const char *dir, char *subject, size_t len, int64_t *not_before,
    int64_t *not_after)
{
	char path[PATH_MAX];
	X509 *x = NULL;
	int r;

	if ((size_t)snprintf(path, sizeof(path), "%s/ca.crt", dir) >= sizeof(path))
		return ERR_INVALID;
	if ((r = ca_read_cert_file(path, &x)) != 0) {
		msg_set(subject, len, "no CA certificate in %s: run \"provd ca init\"", path);
		return r;
	}
	X509_NAME_oneline(X509_get_subject_name(x), subject, (int)len);
	r = ca_asn1_time_to_unix(X509_get0_notBefore(x), not_before) == 0 &&
	    ca_asn1_time_to_unix(X509_get0_notAfter(x), not_after) == 0 ? 0 : ERR_INVALID;
	X509_free(x);
	return r;
}

int
ca_key_status(const char *dir, const char *tcti, char *out, size_t len)
{
	char path[PATH_MAX];
	struct tpm2_prov *tpm = NULL;
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	int r;

	if ((size_t)snprintf(path, sizeof(path), "%s/ca.key", dir) >= sizeof(path))
		return ERR_INVALID;
	if ((r = ca_load_key(path, tcti, &key, &tpm)) != 0) {
		msg_set(out, len, r == ERR_UNAVAILABLE ? "the key is in a TPM that does not "
		    "answer (TCTI %s)" : "the key %s cannot be loaded: %s",
		    r == ERR_UNAVAILABLE ? (tcti != NULL ? tcti : "default") : path,
		    provd_strerror(r));
		return r;
	}
	snprintf(path, sizeof(path), "%s/ca.crt", dir);
	if ((r = ca_read_cert_file(path, &x)) == 0 && X509_check_private_key(x, key) != 1) {
		msg_set(out, len, "the key does not match ca.crt");
		r = ERR_INVALID;
	} else if (r == 0) {
		msg_set(out, len, tpm != NULL ? "the key is in the TPM (TCTI %s), which answers "
		    "and loads it" : "the key is in %s/ca.key", tpm != NULL ?
		    (tcti != NULL ? tcti : "default") : dir);
	}
	ERR_clear_error();
	X509_free(x);
	EVP_PKEY_free(key);
	tpm2_prov_free(tpm);
	return r;
}
