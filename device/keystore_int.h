/*
 * keystore_int.h: what keystore.c (the dispatch and the on-disk layout) and
 * the keystore backends share — the table of backend functions and the
 * layout of struct keystore. Nothing outside device/keystore*.c includes it.
 */
#ifndef PROVD_KEYSTORE_INT_H
#define PROVD_KEYSTORE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "device/device.h"

/*
 * One backend. A backend only makes and parses keys; keystore.c owns the
 * files (a key reaches the disk as the PEM the backend's OpenSSL encoder
 * writes, and comes back through its decoder), the CSR and the install.
 *
 * The dispatch allocates (zeroed) and frees struct keystore and has checked
 * every argument before calling. Out-parameters are NULL on entry and set
 * only on success. A NULL entry means the backend cannot do that (the
 * public call returns ERR_UNSUPPORTED).
 */
struct keystore_ops {
	const char *name;

	/* Sets ks->libctx, ks->propq, ks->sign_propq and ks->be.
	 * ERR_CONFIG for bad parameters, ERR_UNAVAILABLE when the key store
	 * (the TPM) cannot be reached. On failure leaves nothing to release. */
	int (*open)(struct keystore *ks, const struct keystore_params *p);
	/* Releases what open set up. */
	void (*close)(struct keystore *ks);
	/* Makes a new P-256 key pair (inside the store where there is one). */
	int (*generate)(struct keystore *ks, EVP_PKEY **key);
	/* Turns a PKCS#8 DER private key made elsewhere into a key of this
	 * store: ERR_INVALID when malformed, ERR_KEY_POLICY when not P-256.
	 * NULL for stores that cannot take a key from outside. */
	int (*import)(struct keystore *ks, const uint8_t *der, size_t len,
	    EVP_PKEY **key);
};

struct keystore {
	const struct keystore_ops *ops;
	char *dir;			/* state directory, no trailing slash */
	/* Where the store's keys live for OpenSSL: the library context and
	 * property query to fetch key operations and encoders/decoders with
	 * (NULL, NULL: OpenSSL's defaults), and the query to sign with. */
	OSSL_LIB_CTX *libctx;
	const char *propq;
	const char *sign_propq;
	void *be;			/* backend state */
};

/* The backends compiled in (one file each). */
extern const struct keystore_ops keystore_file_ops;
extern const struct keystore_ops keystore_tpm2_ops;

/* 0 when key is an EC key on P-256, ERR_KEY_POLICY otherwise. */
int keystore_key_check(EVP_PKEY *key);

#endif
