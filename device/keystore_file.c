/*
 * keystore_file.c: the "file" keystore — a software P-256 key in OpenSSL's
 * default library context, stored by keystore.c as PKCS#8 PEM (0600). For
 * large simulations and devices without a TPM; the only store that takes a
 * key made by the server.
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "device/keystore_int.h"

static int
file_open(struct keystore *ks, const struct keystore_params *p)
{
	(void)p;		/* tpm2_tcti means nothing here */
	ks->libctx = NULL;
	ks->propq = NULL;
	ks->sign_propq = NULL;
	ks->be = NULL;
	return 0;
}

static void
file_close(struct keystore *ks)
{
	(void)ks;
}

static int
file_generate(struct keystore *ks, EVP_PKEY **key)
{
	(void)ks;
	if ((*key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL) {
		log_ossl("P-256 key generation");
		return ERR_CRYPTO;
	}
	return 0;
}

/* PKCS#8 DER, exactly: no trailing bytes, no encryption. The parsed
 * structure is cleansed when freed (its ASN.1 callback clears the key). */
static int
file_import(struct keystore *ks, const uint8_t *der, size_t len, EVP_PKEY **key)
{
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	EVP_PKEY *pk = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	const unsigned char *p = der;
	int r = ERR_INVALID;

	(void)ks;
	if ((p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len)) == NULL || p != der + len) {
		log_warnx("the key is not PKCS#8 DER");
		goto out;
	}
	if ((pk = EVP_PKCS82PKEY_ex(p8, NULL, NULL)) == NULL) {
		log_warnx("the PKCS#8 key cannot be decoded");
		goto out;
	}
	if ((r = keystore_key_check(pk)) != 0) {
		log_warnx("the key is not an EC P-256 key");
		goto out;
	}
	/* the public point, when given, must be the private scalar's */
	if ((pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	if (EVP_PKEY_pairwise_check(pctx) != 1) {
		log_warnx("the key's public and private parts do not match");
		r = ERR_INVALID;
		goto out;
	}
	*key = pk;
	pk = NULL;
	r = 0;
out:
	ERR_clear_error();
	EVP_PKEY_CTX_free(pctx);
	EVP_PKEY_free(pk);
	PKCS8_PRIV_KEY_INFO_free(p8);
	return r;
}

const struct keystore_ops keystore_file_ops = {
	.name = "file",
	.open = file_open,
	.close = file_close,
	.generate = file_generate,
	.import = file_import,
};
