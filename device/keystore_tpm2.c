/*
 * keystore_tpm2.c: the "tpm2" keystore — P-256 keys made inside a TPM 2.0
 * through OpenSSL's tpm2 provider (tpm2-openssl), in a library context of
 * the keystore's own. The private key never leaves the TPM: keystore.c
 * stores the provider's "TSS2 PRIVATE KEY" PEM, a blob wrapped under the
 * TPM's storage key that only the same TPM can load, and signing goes
 * through the provider.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include "device/keystore_int.h"

#define TCTI_ENV	"TPM2OPENSSL_TCTI"
#define TCTI_MAX	256

struct tpm2_be {
	OSSL_PROVIDER *tpm2;
	OSSL_PROVIDER *dflt;		/* encoders, decoders, hashing */
};

/*
 * Loads the tpm2 provider into libctx. The provider reads TPM2OPENSSL_TCTI
 * once, in its init, so the variable is set around the load and then put
 * back: each keystore keeps the TCTI it was opened with and one with a NULL
 * TCTI gets the provider's default. setenv is not thread-safe; see
 * keystore_open in device.h.
 */
static OSSL_PROVIDER *
tpm2_load(OSSL_LIB_CTX *libctx, const char *tcti)
{
	OSSL_PROVIDER *prov;
	char *saved = NULL;
	const char *old;
	int had;

	if (tcti == NULL)
		return OSSL_PROVIDER_load(libctx, "tpm2");
	old = getenv(TCTI_ENV);
	had = old != NULL;
	if (had && (saved = strdup(old)) == NULL)
		return NULL;
	if (setenv(TCTI_ENV, tcti, 1) != 0) {
		free(saved);
		return NULL;
	}
	prov = OSSL_PROVIDER_load(libctx, "tpm2");
	if (had)
		(void)setenv(TCTI_ENV, saved, 1);
	else
		(void)unsetenv(TCTI_ENV);
	free(saved);
	return prov;
}

/* One command to the TPM (GetRandom through the provider's DRBG), 1 when
 * it answered. tpm2-openssl 1.1 already asks the TPM for its capabilities
 * while loading, but nothing promises that every version does; this costs
 * about 1 ms. A TPM that accepts the connection and never answers blocks
 * here (or in the provider's load): the TCTIs have no timeout. */
static int
tpm2_ping(OSSL_LIB_CTX *libctx)
{
	EVP_RAND *rand = NULL;
	EVP_RAND_CTX *rctx = NULL;
	unsigned char b[8];
	int ok = 0;

	if ((rand = EVP_RAND_fetch(libctx, "CTR-DRBG", "provider=tpm2")) != NULL &&
	    (rctx = EVP_RAND_CTX_new(rand, NULL)) != NULL &&
	    EVP_RAND_instantiate(rctx, 0, 0, NULL, 0, NULL) == 1 &&
	    EVP_RAND_generate(rctx, b, sizeof(b), 0, 0, NULL, 0) == 1)
		ok = 1;
	OPENSSL_cleanse(b, sizeof(b));
	EVP_RAND_CTX_free(rctx);
	EVP_RAND_free(rand);
	return ok;
}

static void
tpm2_be_free(struct tpm2_be *be, OSSL_LIB_CTX *libctx)
{
	if (be != NULL) {
		if (be->tpm2 != NULL)
			OSSL_PROVIDER_unload(be->tpm2);
		if (be->dflt != NULL)
			OSSL_PROVIDER_unload(be->dflt);
		free(be);
	}
	OSSL_LIB_CTX_free(libctx);
}

static int
tpm2_open(struct keystore *ks, const struct keystore_params *p)
{
	OSSL_LIB_CTX *libctx = NULL;
	struct tpm2_be *be = NULL;
	const char *tcti = p->tpm2_tcti;
	int r = ERR_INTERNAL;

	if (tcti != NULL && (tcti[0] == '\0' || strnlen(tcti, TCTI_MAX) == TCTI_MAX)) {
		log_warnx("tpm2: TCTI string empty or too long");
		return ERR_CONFIG;
	}
	if ((libctx = OSSL_LIB_CTX_new()) == NULL || (be = calloc(1, sizeof(*be))) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	if ((be->tpm2 = tpm2_load(libctx, tcti)) == NULL) {
		log_ossl("tpm2: cannot load the provider or reach the TPM (TCTI %.64s)",
		    tcti != NULL ? tcti : "default");
		r = ERR_UNAVAILABLE;
		goto out;
	}
	if ((be->dflt = OSSL_PROVIDER_load(libctx, "default")) == NULL) {
		log_ossl("tpm2: cannot load the default provider");
		r = ERR_CRYPTO;
		goto out;
	}
	if (!tpm2_ping(libctx)) {
		log_ossl("tpm2: the TPM does not answer (TCTI %.64s)",
		    tcti != NULL ? tcti : "default");
		r = ERR_UNAVAILABLE;
		goto out;
	}
	ks->libctx = libctx;
	ks->propq = "provider=tpm2";
	/* a preference: OpenSSL 3.0 may otherwise try the default provider's
	 * ECDSA first and fail to export the key to it */
	ks->sign_propq = "?provider=tpm2";
	ks->be = be;
	libctx = NULL;
	be = NULL;
	r = 0;
out:
	tpm2_be_free(be, libctx);
	return r;
}

static void
tpm2_close(struct keystore *ks)
{
	tpm2_be_free(ks->be, ks->libctx);
	ks->be = NULL;
	ks->libctx = NULL;
}

static int
tpm2_generate(struct keystore *ks, EVP_PKEY **key)
{
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;
	int r = ERR_CRYPTO;

	if ((ctx = EVP_PKEY_CTX_new_from_name(ks->libctx, "EC", "provider=tpm2")) == NULL ||
	    EVP_PKEY_keygen_init(ctx) <= 0 ||
	    EVP_PKEY_CTX_set_group_name(ctx, "P-256") <= 0 ||
	    EVP_PKEY_generate(ctx, &pk) <= 0) {
		log_ossl("tpm2: P-256 key generation in the TPM");
		goto out;
	}
	*key = pk;
	pk = NULL;
	r = 0;
out:
	EVP_PKEY_free(pk);
	EVP_PKEY_CTX_free(ctx);
	return r;
}

const struct keystore_ops keystore_tpm2_ops = {
	.name = "tpm2",
	.open = tpm2_open,
	.close = tpm2_close,
	.generate = tpm2_generate,
	.import = NULL,		/* a key made elsewhere cannot go into the TPM */
};
