/*
 * ca_int.h: private to ca/ — the loaded CA key with the profile pieces
 * computed once at load, the key policy shared by CSR checks and issuance,
 * and the signer's wire format (declared here so the fuzz targets reach it).
 */
#ifndef PROVD_CA_INT_H
#define PROVD_CA_INT_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/ca.h"

/* Latest time we put into a certificate or CRL: 9999-12-31T23:59:59Z. */
#define CA_TIME_MAX INT64_C(253402300799)

/* RSA keys above this size are refused (verification cost, no benefit). */
#define CA_RSA_MAX_BITS 8192

/* Most entries one CRL may carry (the signer request then stays < 32 MiB). */
#define CA_MAX_CRL_ENTRIES 1000000

/*
 * A loaded CA. Read-only after ca_key_load(), so one ca_key may be used by
 * several threads at once: X509_add_ext() copies the extensions below and
 * each signature works on its own copy of sign_tmpl.
 */
struct ca_key {
	EVP_PKEY *pkey;			/* CA private key; NULL after a TPM failed
					   and could not be reached again */
	struct tpm2_prov *tpm;		/* the key is in a TPM: its provider */
	char *key_path, *tcti;		/* to load a TPM key again */
	X509 *cert;			/* CA certificate */
	EVP_MD *md_sign;		/* SHA-256, fetched once */
	EVP_MD_CTX *sign_tmpl;		/* DigestSign initialised once; copied per use */
	EVP_MD *md_keyid;		/* SHA-1 for key identifiers (RFC 5280 4.2.1.2) */
	ASN1_OBJECT *optdata_obj;	/* OPTDATA_OID */
	EC_GROUP *p256, *p384;		/* for checking device EC points */
	X509_EXTENSION *ext_bc;		/* basicConstraints CA:FALSE, critical */
	X509_EXTENSION *ext_ku;		/* keyUsage digitalSignature, critical */
	X509_EXTENSION *ext_eku;	/* clientAuth, serverAuth */
	X509_EXTENSION *ext_aki;	/* keyid of the CA key */
	X509_EXTENSION *ext_cdp;	/* NULL without cfg->crl_url */
	X509_EXTENSION *ext_freshest;	/* Freshest CRL of complete CRLs: the
					   delta CRL's URL; NULL without crl_url */
	X509_EXTENSION *ext_aia;	/* NULL without cfg->ocsp_url */
	int64_t max_validity_s;		/* validity_days * 86400 + backdate_s + 60 */
	int64_t ca_not_after;		/* Unix seconds */
	int allow_rsa;
};

/*
 * SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier,
 *                                     subjectPublicKey BIT STRING }
 * parsed as two plain fields, the key not decoded (ca_spki.c): OpenSSL 3.0
 * decodes an X509_PUBKEY through its provider decoders, hundreds of
 * microseconds. Used by ca_spki_apply() and ca_csr_check(). OpenSSL's
 * template macros need a typedef'd struct: the one exception to our
 * no-typedef rule, as in common/optdata.c.
 */
typedef struct {
	X509_ALGOR *algor;
	ASN1_BIT_STRING *key;
} CA_SPKI;

DECLARE_ASN1_FUNCTIONS(CA_SPKI)

/*
 * Key policy for device keys: EC P-256 or P-384 as a named curve with an
 * uncompressed or compressed point, Ed25519, RSA of 2048..CA_RSA_MAX_BITS
 * bits when allow_rsa. Returns 0 or ERR_KEY_POLICY with a public reason in
 * why. Used on CSRs; ca_key_issue() applies the same rules (ca_spki.c).
 */
int ca_pubkey_policy(const X509_PUBKEY *xpk, int allow_rsa, char *why, size_t whylen);

/*
 * Checks a DER SubjectPublicKeyInfo against the key policy and puts it into
 * x's subjectPublicKeyInfo, re-encoded canonically; *keyid is the SHA-1 of
 * the key bits (RFC 5280 4.2.1.2). EC points are checked on their curve.
 * Returns 0, ERR_INVALID (does not parse) or ERR_KEY_POLICY.
 */
int ca_spki_apply(const struct ca_key *k, const uint8_t *der, size_t len, X509 *x,
    ASN1_OCTET_STRING **keyid);

/* Whether pk may be a CA signing key: EC P-256/P-384 or RSA of 2048..
 * CA_RSA_MAX_BITS bits. Returns 0 or ERR_KEY_POLICY with a sentence in why. */
int ca_signing_key_ok(EVP_PKEY *pk, char *why, size_t whylen);

/* Converts a 16-byte serial into dst as a positive INTEGER. 0 or ERR_*. */
int ca_serial_to_asn1(const uint8_t serial[CA_SERIAL_LEN], ASN1_INTEGER *dst);

/* Unix seconds of an ASN1_TIME. 0 or ERR_INVALID. */
int ca_asn1_time_to_unix(const ASN1_TIME *t, int64_t *out);

/* ---------------------------------------------------------------------
 * Signer wire format. Both ends are the same executable, so integers are in
 * host byte order. Every message is a header followed by len payload bytes:
 *
 *   u32 magic (SIGNER_MAGIC, carries the version), u32 type, u32 len
 *
 * ISSUE request:  mac[6] serial[16] i64 not_before i64 not_after
 *                 u32 spkilen spki[spkilen] u32 optdatalen optdata[optdatalen]
 * CRL request:    i64 crl_number i64 this_update i64 next_update u32 n
 *                 i64 delta_base, n x (serial[16] i64 revoked_at i32 reason)
 * Reply (same type as the request): i32 status, then DER when status is 0.
 * READY (signer to parent, empty): the key is loaded.
 */
#define SIGNER_MAGIC		0x50565332u	/* "PVS2" */
#define SIGNER_HDR_LEN		12
#define SIGNER_CHILD_FD		3

enum signer_msg {
	SIGNER_READY = 1,
	SIGNER_ISSUE = 2,
	SIGNER_CRL = 3,
};

/* Exit statuses of the signer process (ca_signer_main). */
enum signer_exit {
	SIGNER_EXIT_OK = 0,		/* the parent closed the socket */
	SIGNER_EXIT_SETUP = 1,		/* key not loadable, prctl failed, ... */
	SIGNER_EXIT_BADMSG = 2,		/* malformed request: fatal */
	SIGNER_EXIT_IO = 3,		/* socket error or out of memory */
};

#define SIGNER_ISSUE_FIXED	(MAC_LEN + CA_SERIAL_LEN + 8 + 8 + 4 + 4)
#define SIGNER_MAX_ISSUE	(16u * 1024)
#define SIGNER_CRL_FIXED	(8 + 8 + 8 + 4 + 8)
#define SIGNER_CRL_ENTRY	(CA_SERIAL_LEN + 8 + 4)
#define SIGNER_MAX_CRL		(32u * 1024 * 1024)
#define SIGNER_MAX_REPLY_ISSUE	(16u * 1024)
#define SIGNER_MAX_REPLY_CRL	(64u * 1024 * 1024)

/* Encodes req into a new buffer (free()). ERR_INVALID / ERR_TOO_BIG when req
 * cannot be sent (a request the signer would treat as malformed). */
int ca_msg_issue_encode(const struct ca_issue_req *req, uint8_t **out, size_t *outlen);
/* Decodes an ISSUE payload; req's pointers then point into p. Returns 0 or
 * ERR_INVALID. */
int ca_msg_issue_decode(const uint8_t *p, size_t len, struct ca_issue_req *req);
int ca_msg_crl_encode(const struct ca_crl_req *req, uint8_t **out, size_t *outlen);
/* Decodes a CRL payload; *entries is a new array (free()) that req points to. */
int ca_msg_crl_decode(const uint8_t *p, size_t len, struct ca_crl_req *req,
    struct ca_revoked **entries);

/* Key files: unencrypted PEM, at most CA_KEY_FILE_MAX bytes. */
#define CA_KEY_FILE_MAX (64 * 1024)
/* A pem_password_cb that refuses to prompt: CA keys are stored unencrypted. */
int ca_no_passphrase(char *buf, int size, int rwflag, void *u);
/* Reads one PEM certificate from path (at most CA_CERT_FILE_MAX bytes),
 * logging what is wrong. ERR_CRYPTO when it is not a PEM certificate. */
#define CA_CERT_FILE_MAX (1024 * 1024)
int ca_read_cert_file(const char *path, X509 **out);
/* Reads a PEM private key; the file's bytes are wiped after parsing.
 * ERR_IO (or ERR_TOO_BIG) when unreadable, ERR_CRYPTO when not a key,
 * ERR_UNSUPPORTED for a key in a TPM. */
int ca_read_key_file(const char *path, EVP_PKEY **out);
/* The same, and a key held in a TPM ("TSS2 PRIVATE KEY" PEM, made by
 * "provd ca init --keystore tpm2"): loaded through the tpm2 provider at
 * tcti (NULL: its default), *tpm then holds the provider (keep it while the
 * key is used; tpm2_prov_free after EVP_PKEY_free). *tpm is NULL for a
 * software key. ERR_UNAVAILABLE: the TPM does not answer; ERR_CRYPTO: it
 * does not load the key (another TPM's). */
int ca_load_key(const char *path, const char *tcti, EVP_PKEY **out, struct tpm2_prov **tpm);
/* Initialises ctx for SHA-256 signing with key, in the TPM when tpm. */
int ca_sign_init(EVP_MD_CTX *ctx, EVP_PKEY *key, const struct tpm2_prov *tpm);

#endif
