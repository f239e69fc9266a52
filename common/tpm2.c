/*
 * tpm2.c: OpenSSL's tpm2 provider (tpm2-openssl) in a library context of
 * its own, for keys that live in a TPM 2.0: the device library's "tpm2"
 * keystore and the CA key of "provd ca init --keystore tpm2". The private
 * key never leaves the TPM; what is stored is the provider's "TSS2 PRIVATE
 * KEY" PEM, a blob wrapped under the TPM's storage key that only the same
 * TPM can load.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include "common/common.h"

#define TCTI_ENV	"TPM2OPENSSL_TCTI"
#define TCTI_MAX	256

struct tpm2_prov {
	OSSL_LIB_CTX *libctx;
	OSSL_PROVIDER *tpm2;
	OSSL_PROVIDER *dflt;		/* encoders, decoders, hashing */
};

/*
 * Loads the tpm2 provider into libctx. The provider reads TPM2OPENSSL_TCTI
 * once, in its init, so the variable is set around the load and then put
 * back: each context keeps the TCTI it was opened with and one with a NULL
 * TCTI gets the provider's default. setenv is not thread-safe: open these
 * before starting threads, or from one thread at a time.
 */
static OSSL_PROVIDER *
load_with_tcti(OSSL_LIB_CTX *libctx, const char *tcti)
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
ping(OSSL_LIB_CTX *libctx)
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

int
tpm2_prov_open(const char *tcti, struct tpm2_prov **out)
{
	struct tpm2_prov *t = NULL;
	int r = ERR_INTERNAL;

	*out = NULL;
	if (tcti != NULL && (tcti[0] == '\0' || strnlen(tcti, TCTI_MAX) == TCTI_MAX)) {
		log_warnx("tpm2: TCTI string empty or too long");
		return ERR_CONFIG;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL || (t->libctx = OSSL_LIB_CTX_new()) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	if ((t->tpm2 = load_with_tcti(t->libctx, tcti)) == NULL) {
		log_ossl("tpm2: cannot load the provider or reach the TPM (TCTI %.64s)",
		    tcti != NULL ? tcti : "default");
		r = ERR_UNAVAILABLE;
		goto out;
	}
	if ((t->dflt = OSSL_PROVIDER_load(t->libctx, "default")) == NULL) {
		log_ossl("tpm2: cannot load the default provider");
		r = ERR_CRYPTO;
		goto out;
	}
	if (!ping(t->libctx)) {
		log_ossl("tpm2: the TPM does not answer (TCTI %.64s)",
		    tcti != NULL ? tcti : "default");
		r = ERR_UNAVAILABLE;
		goto out;
	}
	*out = t;
	t = NULL;
	r = 0;
out:
	tpm2_prov_free(t);
	return r;
}

void
tpm2_prov_free(struct tpm2_prov *t)
{
	if (t == NULL)
		return;
	if (t->tpm2 != NULL)
		OSSL_PROVIDER_unload(t->tpm2);
	if (t->dflt != NULL)
		OSSL_PROVIDER_unload(t->dflt);
	OSSL_LIB_CTX_free(t->libctx);
	free(t);
}

OSSL_LIB_CTX *
tpm2_prov_libctx(const struct tpm2_prov *t)
{
	return t != NULL ? t->libctx : NULL;
}

int
tpm2_prov_keygen(struct tpm2_prov *t, EVP_PKEY **key)
{
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;
	int r = ERR_CRYPTO;

	*key = NULL;
	if ((ctx = EVP_PKEY_CTX_new_from_name(t->libctx, "EC", TPM2_PROPQ)) == NULL ||
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
