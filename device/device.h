/*
 * device: the device library a device maker links, and the reference
 * program devagent built on it — keystores (protected storage), the device
 * side of intake, and later the peer session, local policy and pairing store.
 */
#ifndef PROVD_DEVICE_H
#define PROVD_DEVICE_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "common/common.h"
#include "provision/provision.h"

/* ---------------------------------------------------------------------
 * Keystores: where the device's private key lives. Backends behind one
 * table: "tpm2" (OpenSSL's tpm2 provider; the key is made inside the TPM and
 * never leaves it — the seed's protected storage) and "file" (a software key,
 * mode 0600, for large simulations).
 *
 * A keystore holds at most one installed identity (key + certificate + CA
 * chain) and at most one pending key (made or received during an intake that
 * has not finished). Installing is atomic: after a crash the store holds
 * either the old identity or the new one, never a mix.
 */
struct keystore;

struct keystore_params {
	const char *kind;		/* "tpm2" or "file" */
	const char *dir;		/* state directory (created 0700) */
	const char *tpm2_tcti;		/* tpm2: TCTI string, e.g.
					   "swtpm:host=127.0.0.1,port=2321";
					   NULL: the provider's default */
};

/* ERR_CONFIG for an unknown kind, ERR_UNAVAILABLE when the TPM cannot be
 * reached. tpm2: the provider reads its TCTI from the environment when it
 * loads, so keystore_open sets TPM2OPENSSL_TCTI for the length of the load
 * (and restores it): call it while no other thread reads the environment. */
int keystore_open(const struct keystore_params *p, struct keystore **out);
void keystore_close(struct keystore *ks);		/* NULL is a no-op */
const char *keystore_kind(const struct keystore *ks);
/* Whether this store can make keys itself (both can) and take a key from
 * outside (file only: a TPM-held key cannot be imported). */
int keystore_can_import(const struct keystore *ks);

/* Makes a new pending P-256 key inside the store and returns a CSR (DER,
 * new buffer, free()) signed with it — proof of possession — whose subject
 * is serialNumber=<mac in canonical form>. */
int keystore_generate(struct keystore *ks, const uint8_t mac[MAC_LEN],
    uint8_t **csr, size_t *csrlen);
/* Takes a server-made private key (PKCS#8 DER) as the pending key.
 * ERR_UNSUPPORTED for tpm2. The caller wipes its copy. */
int keystore_import(struct keystore *ks, const uint8_t *pkcs8, size_t len);
/* Installs cert (DER) and the CA chain (DER certificates, issuing CA first)
 * with the pending key: refuses (ERR_INVALID) a certificate whose public key
 * is not the pending key's, ERR_NOT_FOUND without a pending key. Atomic. */
int keystore_install(struct keystore *ks, const uint8_t *cert, size_t certlen,
    const uint8_t *const *chain, const size_t *chainlen, size_t nchain);
/* The installed identity: key (provider-backed for tpm2) and certificate
 * (DER). ERR_NOT_FOUND when nothing is installed. Caller frees. */
int keystore_identity(struct keystore *ks, EVP_PKEY **key, uint8_t **cert,
    size_t *certlen);
/* Removes everything (factory reset). */
int keystore_wipe(struct keystore *ks);

/* Signing with the key from keystore_identity. A tpm2 key lives in the
 * keystore's own OpenSSL library context; sign with
 *   EVP_DigestSignInit_ex(mctx, NULL, "SHA256", keystore_libctx(ks),
 *       keystore_propq(ks), key, NULL)
 * (for "file" both are NULL: OpenSSL's defaults). Both stay valid until
 * keystore_close, and keys from the keystore must be freed before it. */
OSSL_LIB_CTX *keystore_libctx(const struct keystore *ks);
const char *keystore_propq(const struct keystore *ks);

/* ---------------------------------------------------------------------
 * The device side of intake (intake.c).
 */
struct device_profile {
	uint8_t addr[MAC_LEN];
	char model[PROTO_MAX_STR + 1];
	char name[PROTO_MAX_STR + 1];
	char firmware[PROTO_MAX_STR + 1];
	/* SPAKE2+ registration record made from the setup PIN at manufacture
	 * (spake2p_derive + spake2p_make_L); the PIN itself is not kept */
	uint8_t w0[SPAKE2P_SCALAR_LEN];
	uint8_t L[SPAKE2P_POINT_LEN];
};

/* Serves one intake on an accepted link: the PIN-secured link as SPAKE2+
 * verifier, HELLO, key generation in ks (or a delivered key), atomic
 * install, ACK, then the server's DONE. 0 only after DONE: the device is
 * recorded and should close intake. ERR_AUTH on a wrong PIN; otherwise a
 * sentence in why (the identity may be installed without DONE: intake must
 * stay open so that a retry can replace it). */
int device_intake_serve(struct radio_link *l, const struct device_profile *dp,
    struct keystore *ks, int timeout_ms, char *why, size_t whylen);

/* ---------------------------------------------------------------------
 * A provisionable device (agent.c): persistent state in a directory, the
 * lockout after failed PIN exchanges (5 failures lock intake for 30 s,
 * doubling with each further failure up to a day), and no intake once
 * recorded (DONE) until a factory reset.
 */
struct agent;

struct agent_init_opts {
	const char *dir;		/* state directory (created 0700) */
	const char *addr;		/* the address on the label */
	const char *pin;		/* the setup PIN on the label: 6..32 digits */
	const char *name, *model;	/* 1..128 printable characters */
	const char *keystore;		/* "file" or "tpm2" */
	const char *tcti;		/* tpm2: TCTI string, or NULL */
	int force;			/* replace a device already in dir */
};

/* Manufacture: writes the profile with the SPAKE2+ record made from the PIN
 * (the PIN is not stored) and a fresh intake state. ERR_CONFLICT when dir
 * already holds a device, unless force (then its keystore is wiped). */
int agent_init(const struct agent_init_opts *o, char *why, size_t whylen);
int agent_open(const char *dir, struct agent **out);
void agent_close(struct agent *a);			/* NULL is a no-op */
const struct device_profile *agent_profile(const struct agent *a);
struct keystore *agent_keystore(struct agent *a);
void agent_status(const struct agent *a, int *provisioned, int64_t *failures,
    int64_t *locked_until);
/* Factory reset: wipes the keystore and reopens intake. */
int agent_reset(struct agent *a);
/* Waits up to accept_ms for one incoming link and serves it (each step of
 * the conversation within intake_ms): refused when provisioned
 * (ERR_CONFLICT) or locked (ERR_FORBIDDEN) — the link is just closed, the
 * operator sees a failed PIN exchange; otherwise device_intake_serve. Each
 * attempt is counted as a failure on disk before it runs and uncounted once
 * the PIN proved right. ERR_TIMEOUT when nobody came. */
int agent_serve_once(struct agent *a, struct radio *radio, int accept_ms, int intake_ms,
    char *why, size_t whylen);

/* ---------------------------------------------------------------------
 * Certificate renewal against provd (renew.c): a new key in the keystore,
 * the CSR signed with the current key (CMS SignedData with signingTime),
 * POST /v1/renew, and an atomic install. An expired certificate cannot
 * renew (ERR_FORBIDDEN): the device goes through intake again.
 */
struct renew_opts {
	const char *url;		/* provd's base URL, e.g. http://127.0.0.1:8440 */
	const char *cacert;		/* CA file for https, or NULL */
	int timeout_s;			/* per request; 0: 30 */
};
/* The installed certificate's serial (32 hex digits) and validity. */
int device_cert_serial(struct keystore *ks, char serial[33], int64_t *not_before,
    int64_t *not_after);
/* Makes a pending key and the signed renewal request for it: *b64 is the
 * base64 DER of the CMS SignedData (new string, free()). */
int device_renew_request(struct keystore *ks, const uint8_t mac[MAC_LEN], char **b64,
    char *why, size_t whylen);
/* Renews now; serial gets the new certificate's serial. */
int device_renew(struct keystore *ks, const uint8_t mac[MAC_LEN], const struct renew_opts *o,
    char serial[33], char *why, size_t whylen);
/* Whether to renew now: provd's hint (GET /v1/renew/{serial}: an
 * administrator's request or two-thirds of the lifetime), or, when provd
 * cannot be asked, two-thirds of the lifetime by the device's clock.
 * ERR_FORBIDDEN when the certificate has expired. */
int device_renew_due(struct keystore *ks, const struct renew_opts *o, int *due,
    char *reason, size_t reasonlen);

#endif
