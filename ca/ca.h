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
	const char *keystore;		/* "file" (default) or "tpm2": the signing
					   key made in a TPM and never out of it */
	const char *tcti;		/* tpm2: the TPM; NULL: the provider's
					   default */
	const char *external_chain;	/* [ca] mode = cmp: the external CA's
					   chain (PEM, issuing CA first, up to
					   the root); no key is made or kept */
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

/*
 * A CRL to sign. delta_base 0: a complete CRL, which carries a Freshest CRL
 * extension naming the delta CRL (when the configuration has a CRL URL);
 * reason removeFromCRL (8) is refused in it. delta_base > 0: a delta CRL
 * (RFC 5280 5.2.4) against the complete CRL with that number, below
 * crl_number: a critical Delta CRL Indicator, and removeFromCRL allowed.
 */
struct ca_crl_req {
	int64_t crl_number;
	int64_t this_update;
	int64_t next_update;
	int64_t delta_base;
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
/* Builds and signs a CRL (v2, CRL number, AKI, reason codes; Freshest CRL
 * or Delta CRL Indicator as req says). *der is a new buffer (free()). The
 * delta CRL's address is cfg->crl_url with "/delta" added to its path. */
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
/* The subject (one line) and validity of dir/ca.crt; on failure subject
 * says why. */
int ca_chain_validity(const char *dir, char *subject, size_t len, int64_t *not_before,
    int64_t *not_after);
/* Whether dir/ca.key can be used (loading it, in the TPM at tcti when it is
 * a TPM key, and matching ca.crt); out says where it is or what is wrong. */
int ca_key_status(const char *dir, const char *tcti, char *out, size_t len);
/* notBefore and notAfter of a DER certificate, Unix seconds. */
int ca_cert_validity(const uint8_t *der, size_t derlen, int64_t *not_before,
    int64_t *not_after);
/* DER to PEM text (new NUL-terminated buffer, free()). */
int ca_der_to_pem(const char *label, const uint8_t *der, size_t derlen, char **pem);

/* ---------------------------------------------------------------------
 * OCSP (RFC 6960), ca/ocsp.c and ca_ocsp_cert_make in ca_init.c.
 *
 * The responder signs with a delegated OCSP signing certificate, not with
 * the CA key, so that the network-facing process can sign responses while
 * the CA key stays with the signer. Two more files in the CA directory:
 *   ocsp.key   responder key, EC P-256, PEM PKCS#8, mode 0600
 *   ocsp.crt   responder certificate (PEM), issued by ca.crt
 */
#define CA_OCSP_MAX_REQUEST 8192	/* bytes of DER; larger: malformedRequest */
#define CA_OCSP_MAX_SINGLE 16		/* single requests in one request */
#define CA_OCSP_NONCE_MIN 1		/* RFC 8954 nonce length bounds */
#define CA_OCSP_NONCE_MAX 32
#define CA_OCSP_DAYS_MAX 3650

/*
 * Makes a new responder key and certificate in dir, issued by the CA there
 * (ca.key, ca.crt): extendedKeyUsage id-kp-OCSPSigning, keyUsage
 * digitalSignature (critical), basicConstraints CA:FALSE (critical),
 * id-pkix-ocsp-nocheck, SKI and AKI; valid from an hour ago for days
 * (1..CA_OCSP_DAYS_MAX) days, but never past the CA certificate. Replaces
 * an older pair: ocsp.key is written first, then ocsp.crt. Reads the CA key,
 * so it belongs in "provd ca ...", never in the daemon. *not_after (may be
 * NULL) gets the certificate's notAfter in Unix seconds. On error writes a
 * sentence into err.
 */
int ca_ocsp_cert_make(const char *dir, const char *tcti, int days, int64_t *not_after,
    char *err, size_t errlen);

/* OCSPResponseStatus values (RFC 6960 4.2.1). */
enum ca_ocsp_resp_status {
	CA_OCSP_SUCCESSFUL = 0,
	CA_OCSP_MALFORMED = 1,
	CA_OCSP_INTERNAL_ERROR = 2,
	CA_OCSP_TRY_LATER = 3,
	CA_OCSP_UNAUTHORIZED = 6,
};

/* CertStatus of one certificate. */
enum ca_ocsp_cert_status {
	CA_OCSP_GOOD = 0,
	CA_OCSP_REVOKED = 1,
	CA_OCSP_UNKNOWN = 2,
};

struct ca_ocsp_status {
	enum ca_ocsp_cert_status status;
	int64_t revoked_at;		/* Unix seconds, when revoked */
	int reason;			/* RFC 5280 CRLReason 1..10 (not 7), or
					   0/-1: none given (unspecified) */
};

/*
 * Looks up one of our serials (32 lowercase hex digits) for a response.
 * Returns 0 with *st filled (a serial the CA does not know is
 * CA_OCSP_UNKNOWN), or an ERR_* code when the answer cannot be known now
 * (the database is down): the whole response is then tryLater.
 */
typedef int ca_ocsp_lookup_fn(void *arg, const char serial_hex[CA_SERIAL_HEX],
    struct ca_ocsp_status *st);

/* A loaded responder: key, certificate, and the issuing CA's name and key
 * hashes. Read-only after loading: one may serve many threads at once. */
struct ca_ocsp_responder;

/*
 * Loads ocsp.key, ocsp.crt and ca.crt from dir and checks that the key
 * matches the certificate, that ca.crt issued it (signature checked) and
 * that it allows OCSP signing. ERR_NOT_FOUND when ocsp.key or ocsp.crt does
 * not exist; ERR_CONFIG (logged) when they are unusable; ERR_IO.
 */
int ca_ocsp_responder_load(const char *dir, struct ca_ocsp_responder **out);
void ca_ocsp_responder_free(struct ca_ocsp_responder *r);	/* NULL is a no-op */
/* notBefore and notAfter of the responder certificate, Unix seconds. */
void ca_ocsp_responder_validity(const struct ca_ocsp_responder *r, int64_t *not_before,
    int64_t *not_after);
/* 1 when less than a third of the certificate's validity is left at now
 * (time to run "provd ca ocsp-cert"), else 0. */
int ca_ocsp_responder_renew_due(const struct ca_ocsp_responder *r, int64_t now);

/* A parsed request. */
struct ca_ocsp_request;

/*
 * Parses a DER OCSPRequest: at most CA_OCSP_MAX_REQUEST bytes, nothing after
 * it, 1..CA_OCSP_MAX_SINGLE single requests, at most one nonce extension
 * holding an OCTET STRING of CA_OCSP_NONCE_MIN..CA_OCSP_NONCE_MAX bytes, no
 * critical extension other than the nonce. A signature on the request is
 * neither required nor checked. Returns 0, ERR_TOO_BIG or ERR_INVALID (both
 * answered malformedRequest). *out is freed with ca_ocsp_request_free.
 */
int ca_ocsp_request_parse(const uint8_t *der, size_t len, struct ca_ocsp_request **out);
void ca_ocsp_request_free(struct ca_ocsp_request *q);		/* NULL is a no-op */
size_t ca_ocsp_request_count(const struct ca_ocsp_request *q);
int ca_ocsp_request_has_nonce(const struct ca_ocsp_request *q);
/* The serial of single request i as 32 hex digits. ERR_NOT_FOUND when it
 * cannot be one of ours (negative, zero or longer than CA_SERIAL_LEN). */
int ca_ocsp_request_serial(const struct ca_ocsp_request *q, size_t i,
    char serial_hex[CA_SERIAL_HEX]);
/* The DER CertID of single request i (borrowed from q): what a response
 * for it is about, the key of a response cache. */
void ca_ocsp_request_certid(const struct ca_ocsp_request *q, size_t i, const uint8_t **der,
    size_t *len);

/*
 * Signs a successful response to q: for each single request, unknown when
 * its CertID names another issuer (name and key hashes under SHA-1,
 * SHA-256, SHA-384 or SHA-512) or a serial that cannot be ours, otherwise
 * what lookup says; thisUpdate now, nextUpdate now + max_age_s (none when
 * 0), the nonce copied when q has one, responderID byKey, the responder
 * certificate included. *der is a new buffer (free()). Returns 0; lookup's
 * error; ERR_UNAVAILABLE when the responder certificate is not valid at
 * now; ERR_CRYPTO or ERR_NOMEM.
 */
int ca_ocsp_respond(const struct ca_ocsp_responder *r, const struct ca_ocsp_request *q,
    int64_t now, int64_t max_age_s, ca_ocsp_lookup_fn *lookup, void *arg,
    uint8_t **der, size_t *len);

/* An unsigned OCSPResponse with an error status (malformedRequest,
 * internalError, tryLater, unauthorized): *der is a new buffer (free()).
 * ERR_INVALID for any other status. */
int ca_ocsp_error_response(enum ca_ocsp_resp_status status, uint8_t **der, size_t *len);

/*
 * The whole answer to one request: parse, then respond. Always produces an
 * OCSPResponse unless it returns ERR_NOMEM: malformedRequest when the
 * request is refused by ca_ocsp_request_parse, tryLater when r is NULL or
 * ca_ocsp_respond gives ERR_UNAVAILABLE or a lookup error, internalError
 * for anything else. *status (may be NULL) gets the responseStatus.
 */
int ca_ocsp_answer(const struct ca_ocsp_responder *r, const uint8_t *in, size_t inlen,
    int64_t now, int64_t max_age_s, ca_ocsp_lookup_fn *lookup, void *arg,
    uint8_t **der, size_t *len, enum ca_ocsp_resp_status *status);

/* ---------------------------------------------------------------------
 * An external CA over CMP ([ca] mode = cmp; ca/ca_cmp.c).
 */
struct ca_cmp;
/* Reads the CMP settings of cfg (credentials, trust); nothing is sent. */
int ca_cmp_open(const struct config *cfg, struct ca_cmp **out);
void ca_cmp_close(struct ca_cmp *c);
const char *ca_cmp_url(const struct ca_cmp *c);
/* A p10cr with the DER CSR; the certificate (DER, malloc) is accepted only
 * when it carries the CSR's key and names mac. ERR_UNAVAILABLE: the CA was
 * not reached after the retries; ERR_SIGNER: it refused, or answered with
 * a wrong certificate (rejected in the certConf); why says which. */
int ca_cmp_enroll(struct ca_cmp *c, const uint8_t *csr, size_t csrlen,
    const uint8_t mac[MAC_LEN], uint8_t **der, size_t *derlen, char *why, size_t whylen);
/* An rr for the DER certificate with a CRL reason code. */
int ca_cmp_revoke(struct ca_cmp *c, const uint8_t *cert_der, size_t len, int reason,
    char *why, size_t whylen);
/* A general message round trip: does the CA answer? */
int ca_cmp_ping(struct ca_cmp *c, char *why, size_t whylen);

#endif
