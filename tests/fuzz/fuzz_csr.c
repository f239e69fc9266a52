/*
 * fuzz_csr.c: libFuzzer target for ca_csr_check, the first code that sees a
 * CSR from the network (PEM or DER, signature, key policy, size limit).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/ca.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init("fuzz_csr", LOG_LVL_ERROR, 0, 0);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the first byte picks the policy, so both RSA branches are reached */
	struct ca_policy pol = { .allow_rsa = size > 0 && (data[0] & 1), .max_csr = 8192 };
	uint8_t *spki = NULL;
	size_t spkilen = 0;
	char why[256];
	int r;

	r = ca_csr_check(data, size, &pol, &spki, &spkilen, why, sizeof(why));
	if (r == 0) {
		/* an accepted CSR yields a SubjectPublicKeyInfo that parses exactly */
		const unsigned char *p = spki;
		EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)spkilen);
		if (pk == NULL || p != spki + spkilen || spkilen > CA_MAX_SPKI)
			abort();
		EVP_PKEY_free(pk);
	} else if (spki != NULL || spkilen != 0 ||
	    (r != ERR_TOO_BIG && r != ERR_BAD_CSR && r != ERR_KEY_POLICY)) {
		abort();
	}
	if (strnlen(why, sizeof(why)) == sizeof(why))
		abort();
	free(spki);
	return 0;
}
