/*
 * keystore_tpm2.c: the "tpm2" keystore — P-256 keys made inside a TPM 2.0
 * through OpenSSL's tpm2 provider (tpm2-openssl), in a library context of
 * the keystore's own (common/tpm2.c). The private key never leaves the
 * TPM: keystore.c stores the provider's "TSS2 PRIVATE KEY" PEM, a blob
 * wrapped under the TPM's storage key that only the same TPM can load, and
 * signing goes through the provider.
 */
#include "device/keystore_int.h"

static int
tpm2_open(struct keystore *ks, const struct keystore_params *p)
{
	struct tpm2_prov *t = NULL;
	int r;

	/* setenv inside: see keystore_open in device.h */
	if ((r = tpm2_prov_open(p->tpm2_tcti, &t)) != 0)
		return r;
	ks->libctx = tpm2_prov_libctx(t);
	ks->propq = TPM2_PROPQ;
	ks->sign_propq = TPM2_SIGN_PROPQ;
	ks->be = t;
	return 0;
}

static void
tpm2_close(struct keystore *ks)
{
	tpm2_prov_free(ks->be);
	ks->be = NULL;
	ks->libctx = NULL;
}

static int
tpm2_generate(struct keystore *ks, EVP_PKEY **key)
{
	return tpm2_prov_keygen(ks->be, key);
}

const struct keystore_ops keystore_tpm2_ops = {
	.name = "tpm2",
	.open = tpm2_open,
	.close = tpm2_close,
	.generate = tpm2_generate,
	.import = NULL,		/* a key made elsewhere cannot go into the TPM */
};
