/*
 * ca: the built-in certificate authority — CA initialisation, CSR checks,
 * the device certificate profile, CRLs, and the signer process that alone
 * holds the CA private key.
 *
 * CA directory layout (cfg->ca_dir):
 *   ca.key     signing key, PEM PKCS#8, mode 0600 (issuing CA, or the root
 *              in a one-tier CA)
 *   ca.crt     signing CA certificate (PEM)
 *   root.crt   root CA certificate (PEM; same as ca.crt for one tier)
 *   chain.pem  ca.crt, then root.crt when two-tier: what devices receive
 */
#ifndef PROVD_CA_H
#define PROVD_CA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"

#define CA_SERIAL_LEN 16		/* 128 random bits */
#define CA_SERIAL_HEX (2 * CA_SERIAL_LEN + 1)
#define CA_MAX_CSR_DEFAULT 8192
#define CA_MAX_SPKI 2048
#define CA_MAX_OPTDATA 8192

/* ---------------------------------------------------------------------
 * CA initialisation (provd ca init).
 */
struct ca_init_opts {
	const char *dir;		/* created if absent (0700) */
	const char *common_name;	/* default "provd Root CA" */
	const char *organization;	/* optional O= */
	int two_tier;			/* root + issuing CA */
	int days;			/* CA validity, default 3650 */
	const char *import_cert;	/* import instead of generating: PEM cert */
	const char *import_key;		/* ... and its PEM private key */
	int force;			/* overwrite an existing CA */
	const char *root_key_out;	/* two-tier: also write the root key here
					   (0600), to be kept offline; NULL: the
					   root key is not kept */
};

/* Creates or imports a CA into o->dir. Refuses to overwrite unless o->force.
 * On error writes a sentence into err. */
int ca_init(const struct ca_init_opts *o, char *err, size_t errlen);

/* ---------------------------------------------------------------------
 * CSR checks, done in the network-facing process before anything is signed.
 */
struct ca_policy {
	int allow_rsa;			/* RSA >= 2048 allowed */
	size_t max_csr;			/* bytes of PEM or DER */
};

/*
 * Parses a CSR given as PEM (exactly one CERTIFICATE REQUEST block, only
 * whitespace around it) or DER, checks its signature (proof of possession)
 * and that its key is allowed (EC P-256, P-384, Ed25519; RSA >= 2048 when
 * allowed). The subject is ignored. On success *spki is a new buffer with
 * the DER SubjectPublicKeyInfo (free()). On failure returns ERR_TOO_BIG,
 * ERR_BAD_CSR or ERR_KEY_POLICY and writes a public reason into why.
 */
int ca_csr_check(const uint8_t *in, size_t inlen, const struct ca_policy *pol,
    uint8_t **spki, size_t *spkilen, char *why, size_t whylen);

/* Fills serial with 128 random bits (never all zero). */
int ca_serial_new(uint8_t serial[CA_SERIAL_LEN]);

/* ---------------------------------------------------------------------
 * What the signer is asked to sign. Everything here was checked by the
 * caller; the signer checks it again.
 */
struct ca_issue_req {
	uint8_t mac[MAC_LEN];
	uint8_t serial[CA_SERIAL_LEN];
	int64_t not_before;		/* Unix seconds */
	int64_t not_after;
	const uint8_t *spki;		/* DER SubjectPublicKeyInfo */
	size_t spkilen;
	const uint8_t *optdata;		/* DER optional data, or NULL */
	size_t optdatalen;
};

struct ca_revoked {
	uint8_t serial[CA_SERIAL_LEN];
	int64_t revoked_at;		/* Unix seconds */
	int reason;			/* RFC 5280 CRLReason, 0..10 */
};

struct ca_crl_req {
	int64_t crl_number;
	int64_t this_update;
	int64_t next_update;
	const struct ca_revoked *revoked;
	size_t nrevoked;
};

/* ---------------------------------------------------------------------
 * In-process signing core (used by the signer process and by tests).
 */
struct ca_key;	/* CA key + certificate + profile settings */

/* Loads ca.key and ca.crt from cfg->ca_dir; profile settings (validity
 * limit, CRL and OCSP URLs) from cfg. */
int ca_key_load(const struct config *cfg, struct ca_key **out);
void ca_key_free(struct ca_key *k);

/* Builds and signs a device certificate (DESIGN.md profile). *der is a new
 * buffer (free()). */
int ca_key_issue(struct ca_key *k, const struct ca_issue_req *req,
    uint8_t **der, size_t *derlen);
/* Builds and signs a CRL (v2, CRL number, AKI, reason codes). */
int ca_key_crl(struct ca_key *k, const struct ca_crl_req *req,
    uint8_t **der, size_t *derlen);

/* ---------------------------------------------------------------------
 * The signer process. provd starts it by re-executing itself
 * ("provd signer --fd N -c CONF"); it loads the CA key, refuses core dumps,
 * and answers length-checked requests on a socketpair. The handle is safe to
 * use from many threads. If the signer dies, the call in flight returns
 * ERR_SIGNER and the next call starts a new one.
 */
struct ca_signer;

/* self: path of the provd executable to run; conf: configuration path. */
int ca_signer_start(const char *self, const char *conf, struct ca_signer **out);
void ca_signer_stop(struct ca_signer *s);		/* NULL is a no-op */
pid_t ca_signer_pid(struct ca_signer *s);
int ca_signer_issue(struct ca_signer *s, const struct ca_issue_req *req,
    uint8_t **der, size_t *derlen);
int ca_signer_crl(struct ca_signer *s, const struct ca_crl_req *req,
    uint8_t **der, size_t *derlen);
/* Entry point of the signer process: serves fd until EOF. Returns an exit
 * status. */
int ca_signer_main(int fd, const struct config *cfg);

/* ---------------------------------------------------------------------
 * Reading certificates (device side and tests).
 */
/* SHA-256 of DER. */
void ca_fingerprint(const uint8_t *der, size_t derlen, uint8_t out[32]);
/* Serial of a DER certificate as 32 lowercase hex digits. */
int ca_cert_serial_hex(const uint8_t *der, size_t derlen, char out[CA_SERIAL_HEX]);
/* DER to PEM text (new NUL-terminated buffer, free()). */
int ca_der_to_pem(const char *label, const uint8_t *der, size_t derlen, char **pem);

#endif
