/*
 * ca_csr.c: what the network-facing process checks before anything is sent
 * to the signer — strict PEM/DER parsing of a CSR, proof of possession, the
 * device key policy — and fresh random serial numbers. EC and Ed25519 keys
 * are checked without OpenSSL 3.0's key decoders, which cost twice the
 * signature verification (key_fast below).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "ca/ca_int.h"

#define PEM_CSR_LABEL "CERTIFICATE REQUEST"
#define CSR_HARD_MAX (1u << 20)	/* whatever the policy says */

static int
is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
all_space(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_space(p[i]))
			return 0;
	return 1;
}

int
ca_pubkey_policy(const X509_PUBKEY *xpk, int allow_rsa, char *why, size_t whylen)
{
	ASN1_OBJECT *alg = NULL;
	X509_ALGOR *pa = NULL;
	const void *pval = NULL;
	int ptype = V_ASN1_UNDEF, nid, curve, nbits, bitslen = 0;
	const unsigned char *bits = NULL;
	EVP_PKEY *pk;
	char name[80];

	if (!X509_PUBKEY_get0_param(&alg, NULL, NULL, &pa, xpk) ||
	    (pk = X509_PUBKEY_get0(xpk)) == NULL) {
		ERR_clear_error();
		msg_set(why, whylen, "the public key cannot be decoded");
		return ERR_KEY_POLICY;
	}
	X509_ALGOR_get0(NULL, &ptype, &pval, pa);
	nid = OBJ_obj2nid(alg);
	switch (nid) {
	case NID_X9_62_id_ecPublicKey:
		if (ptype != V_ASN1_OBJECT) {
			msg_set(why, whylen, "EC keys must use a named curve (P-256 or P-384)");
			return ERR_KEY_POLICY;
		}
		curve = OBJ_obj2nid(pval);
		if (curve != NID_X9_62_prime256v1 && curve != NID_secp384r1) {
			if (OBJ_obj2txt(name, sizeof(name), pval, 0) <= 0)
				snprintf(name, sizeof(name), "unknown");
			msg_set(why, whylen, "EC curve %s is not allowed (P-256 or P-384)", name);
			return ERR_KEY_POLICY;
		}
		if (!X509_PUBKEY_get0_param(NULL, &bits, &bitslen, NULL, xpk) || bitslen < 1 ||
		    bits[0] < 0x02 || bits[0] > 0x04) {
			msg_set(why, whylen, "EC points must be compressed or uncompressed");
			return ERR_KEY_POLICY;
		}
		return 0;
	case NID_ED25519:
		/* RFC 8410: the parameters are absent */
		if (ptype != V_ASN1_UNDEF) {
			msg_set(why, whylen, "Ed25519 key with parameters");
			return ERR_KEY_POLICY;
		}
		return 0;
	case NID_rsaEncryption:
		if (!allow_rsa) {
			msg_set(why, whylen, "RSA keys are not allowed (use EC P-256, P-384 or Ed25519)");
			return ERR_KEY_POLICY;
		}
		nbits = EVP_PKEY_get_bits(pk);
		if (nbits < 2048) {
			msg_set(why, whylen, "RSA key of %d bits is too small (minimum 2048)", nbits);
			return ERR_KEY_POLICY;
		}
		if (nbits > CA_RSA_MAX_BITS) {
			msg_set(why, whylen, "RSA key of %d bits is too large (maximum %d)",
			    nbits, CA_RSA_MAX_BITS);
			return ERR_KEY_POLICY;
		}
		return 0;
	default:
		if (OBJ_obj2txt(name, sizeof(name), alg, 0) <= 0)
			snprintf(name, sizeof(name), "unknown");
		msg_set(why, whylen, "key algorithm %s is not allowed", name);
		return ERR_KEY_POLICY;
	}
}

/* Signature algorithms accepted on a CSR: no MD5 or SHA-1. */
static int
sigalg_ok(int nid)
{
	switch (nid) {
	case NID_ecdsa_with_SHA256:
	case NID_ecdsa_with_SHA384:
	case NID_ecdsa_with_SHA512:
	case NID_ED25519:
	case NID_sha256WithRSAEncryption:
	case NID_sha384WithRSAEncryption:
	case NID_sha512WithRSAEncryption:
		return 1;
	default:
		return 0;
	}
}

/*
 * Strict PEM: only whitespace, one CERTIFICATE REQUEST block without
 * headers, only whitespace. *der is OPENSSL_malloc'ed.
 */
static int
csr_pem_to_der(const uint8_t *in, size_t inlen, unsigned char **der, long *derlen,
    char *why, size_t whylen)
{
	static const char begin[] = "-----BEGIN " PEM_CSR_LABEL "-----";
	int r = ERR_BAD_CSR;
	BIO *bio = NULL;
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	long datalen = 0;
	const char *rest;
	long restlen;
	size_t lead = 0;

	if (memchr(in, '\0', inlen) != NULL) {
		msg_set(why, whylen, "the CSR is neither DER nor PEM");
		goto out;
	}
	while (lead < inlen && is_space(in[lead]))
		lead++;
	if (inlen - lead < sizeof(begin) - 1 ||
	    memcmp(in + lead, begin, sizeof(begin) - 1) != 0) {
		msg_set(why, whylen, "the CSR is neither DER nor a PEM CERTIFICATE REQUEST");
		goto out;
	}
	if ((bio = BIO_new_mem_buf(in + lead, (int)(inlen - lead))) == NULL) {
		log_ossl("BIO_new_mem_buf");
		r = ERR_NOMEM;
		goto out;
	}
	if (!PEM_read_bio(bio, &name, &header, &data, &datalen)) {
		ERR_clear_error();
		msg_set(why, whylen, "the PEM block is malformed");
		goto out;
	}
	if (strcmp(name, PEM_CSR_LABEL) != 0 || header[0] != '\0') {
		msg_set(why, whylen, "the PEM block is not a plain CERTIFICATE REQUEST");
		goto out;
	}
	restlen = BIO_get_mem_data(bio, &rest);
	if (restlen < 0 || !all_space((const uint8_t *)rest, (size_t)restlen)) {
		msg_set(why, whylen, "unexpected data after the PEM block");
		goto out;
	}
	*der = data;
	*derlen = datalen;
	data = NULL;
	r = 0;
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(bio);
	return r;
}

/*
 * CertificationRequest (RFC 2986) as X509_REQ parses it, with the key left
 * undecoded (CA_SPKI; X509_PUBKEY would run OpenSSL 3.0's provider decoders,
 * most of the cost of a check). CertificationRequestInfo keeps the bytes
 * received ("enc", as X509_REQ_INFO does): they are what the signature
 * covers. attributes is OPTIONAL as in X509_REQ_INFO, which accepts CSRs
 * that leave out the empty set. Template macros need typedefs (ca_int.h).
 */
typedef struct {
	ASN1_ENCODING enc;
	ASN1_INTEGER *version;
	X509_NAME *subject;
	CA_SPKI *pubkey;
	STACK_OF(X509_ATTRIBUTE) *attributes;
} CA_CSR_INFO;

ASN1_SEQUENCE_enc(CA_CSR_INFO, enc, NULL) = {
	ASN1_SIMPLE(CA_CSR_INFO, version, ASN1_INTEGER),
	ASN1_SIMPLE(CA_CSR_INFO, subject, X509_NAME),
	ASN1_SIMPLE(CA_CSR_INFO, pubkey, CA_SPKI),
	ASN1_IMP_SET_OF_OPT(CA_CSR_INFO, attributes, X509_ATTRIBUTE, 0),
} static_ASN1_SEQUENCE_END_ref(CA_CSR_INFO, CA_CSR_INFO)

typedef struct {
	CA_CSR_INFO *info;
	X509_ALGOR *sig_alg;
	ASN1_BIT_STRING *signature;
} CA_CSR;

ASN1_SEQUENCE(CA_CSR) = {
	ASN1_SIMPLE(CA_CSR, info, CA_CSR_INFO),
	ASN1_SIMPLE(CA_CSR, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(CA_CSR, signature, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(CA_CSR)

/*
 * Made once for the process (inside CRYPTO_THREAD_run_once), read-only
 * afterwards, kept until exit:
 * - the ECDSA digests, fetched explicitly: the implicit fetch behind
 *   EVP_sha256() and friends is a name lookup under a lock on every use;
 * - a P-256 and a P-384 key holding only the curve. A CSR's EC key is a copy
 *   given the CSR's point: EVP_PKEY_dup copies the curve, where building it
 *   from its name (EVP_PKEY_fromdata) redoes its Montgomery setup, about a
 *   fifth of a whole check.
 * NULL when making one failed: the digest then comes from an implicit fetch
 * and the key from key_general(), slower but the same answers.
 */
static CRYPTO_ONCE csr_once = CRYPTO_ONCE_STATIC_INIT;
static EVP_MD *md_sha256, *md_sha384, *md_sha512;
static EVP_PKEY *curve_p256, *curve_p384;

static EVP_PKEY *
curve_new(const char *name)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)name, 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *pk = NULL;

	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_KEY_PARAMETERS, params) != 1)
		pk = NULL;
	EVP_PKEY_CTX_free(ctx);
	return pk;
}

static void
csr_once_init(void)
{
	md_sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
	md_sha384 = EVP_MD_fetch(NULL, "SHA2-384", NULL);
	md_sha512 = EVP_MD_fetch(NULL, "SHA2-512", NULL);
	curve_p256 = curve_new(SN_X9_62_prime256v1);
	curve_p384 = curve_new(SN_secp384r1);
	if (md_sha256 == NULL || md_sha384 == NULL || md_sha512 == NULL ||
	    curve_p256 == NULL || curve_p384 == NULL)
		log_ossl("CSR check set-up (falling back to slower calls)");
	ERR_clear_error();
}

/* 1 when csr_once_init() has run (its results may still be NULL). */
static int
csr_init(void)
{
	return CRYPTO_THREAD_run_once(&csr_once, csr_once_init);
}

/* The digest of an ECDSA signature algorithm, NULL for any other. */
static const EVP_MD *
ecdsa_md(int signid)
{
	int once = csr_init();

	switch (signid) {
	case NID_ecdsa_with_SHA256:
		return once && md_sha256 != NULL ? md_sha256 : EVP_sha256();
	case NID_ecdsa_with_SHA384:
		return once && md_sha384 != NULL ? md_sha384 : EVP_sha384();
	case NID_ecdsa_with_SHA512:
		return once && md_sha512 != NULL ? md_sha512 : EVP_sha512();
	default:
		return NULL;
	}
}

/*
 * The CSR's key when it is one the policy accepts in its usual form: EC
 * P-256 or P-384 on a named curve with a compressed or uncompressed point,
 * or Ed25519 without parameters, whole-octet key bits. The key is built from
 * its raw bits in a few microseconds, an EC point checked to be on its
 * curve. *keynid is the key algorithm. NULL for any other key, or
 * when the key does not load: key_general() then judges it, so every
 * refusal keeps the reason it always had.
 */
static EVP_PKEY *
key_fast(const CA_SPKI *s, int *keynid)
{
	const ASN1_OBJECT *aobj;
	const void *pval;
	const unsigned char *bits = s->key->data;
	size_t bitslen = (size_t)s->key->length;
	int ptype;
	EVP_PKEY *curve, *pk = NULL;

	if ((s->key->flags & 0x07) != 0 || bitslen == 0)
		return NULL;
	X509_ALGOR_get0(&aobj, &ptype, &pval, s->algor);
	switch ((*keynid = OBJ_obj2nid(aobj))) {
	case NID_X9_62_id_ecPublicKey:
		if (ptype != V_ASN1_OBJECT)
			return NULL;
		if (!csr_init())
			return NULL;
		switch (OBJ_obj2nid(pval)) {
		case NID_X9_62_prime256v1:
			curve = curve_p256;
			break;
		case NID_secp384r1:
			curve = curve_p384;
			break;
		default:
			return NULL;
		}
		/* EC_POINT_oct2point underneath: the point must be on the curve */
		if (curve == NULL || bits[0] < 0x02 || bits[0] > 0x04 ||
		    (pk = EVP_PKEY_dup(curve)) == NULL ||
		    EVP_PKEY_set1_encoded_public_key(pk, bits, bitslen) != 1) {
			EVP_PKEY_free(pk);
			pk = NULL;
		}
		break;
	case NID_ED25519:
		if (ptype != V_ASN1_UNDEF || bitslen != 32)
			return NULL;
		pk = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, bits, bitslen);
		break;
	default:
		return NULL;
	}
	if (pk == NULL)
		ERR_clear_error();
	return pk;
}

/*
 * Any other key (RSA, refused keys, unusual encodings): decoded by OpenSSL,
 * hundreds of microseconds in 3.0, and judged by ca_pubkey_policy(). spki is
 * the DER SubjectPublicKeyInfo. On success *xpk is the decoded key.
 */
static int
key_general(const uint8_t *spki, size_t spkilen, int allow_rsa, X509_PUBKEY **xpk,
    char *why, size_t whylen)
{
	const unsigned char *p = spki;
	int r;

	if ((*xpk = d2i_X509_PUBKEY(NULL, &p, (long)spkilen)) == NULL) {
		log_ossl("d2i_X509_PUBKEY");
		return ERR_CRYPTO;
	}
	if ((r = ca_pubkey_policy(*xpk, allow_rsa, why, whylen)) != 0) {
		X509_PUBKEY_free(*xpk);
		*xpk = NULL;
	}
	return r;
}

/*
 * What ASN1_item_verify() (behind X509_REQ_verify()) checks, for a key from
 * key_fast(): whole-octet signature bits, a signature algorithm of the key's
 * type, the signature over CertificationRequestInfo as received; signature
 * algorithm parameters ignored, as there. ECDSA: the digest is computed here
 * with a digest fetched once and verified with EVP_PKEY_verify
 * (EVP_DigestVerify would fetch the digest again for every CSR). Ed25519
 * signs the message itself. Returns 1 when the signature verifies.
 */
static int
verify_fast(const CA_CSR *csr, EVP_PKEY *pk, int keynid)
{
	const ASN1_BIT_STRING *sig = csr->signature;
	int signid = OBJ_obj2nid(csr->sig_alg->algorithm), tbslen, ok = 0;
	unsigned char *tbs = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	const EVP_MD *dg;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *mctx = NULL;

	if ((sig->flags & 0x07) != 0 ||
	    (tbslen = ASN1_item_i2d((const ASN1_VALUE *)csr->info, &tbs,
	    ASN1_ITEM_rptr(CA_CSR_INFO))) <= 0)
		goto out;
	if (keynid == NID_X9_62_id_ecPublicKey) {
		ok = (dg = ecdsa_md(signid)) != NULL &&
		    EVP_Digest(tbs, (size_t)tbslen, md, &mdlen, dg, NULL) == 1 &&
		    (pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) != NULL &&
		    EVP_PKEY_verify_init(pctx) == 1 &&
		    EVP_PKEY_verify(pctx, sig->data, (size_t)sig->length, md, mdlen) == 1;
	} else if (keynid == NID_ED25519 && signid == NID_ED25519) {
		ok = (mctx = EVP_MD_CTX_new()) != NULL &&
		    EVP_DigestVerifyInit_ex(mctx, NULL, NULL, NULL, NULL, pk, NULL) == 1 &&
		    EVP_DigestVerify(mctx, sig->data, (size_t)sig->length, tbs,
		    (size_t)tbslen) == 1;
	}
out:
	OPENSSL_free(tbs);
	EVP_PKEY_CTX_free(pctx);
	EVP_MD_CTX_free(mctx);
	return ok;
}

int
ca_csr_check(const uint8_t *in, size_t inlen, const struct ca_policy *pol,
    uint8_t **spki, size_t *spkilen, char *why, size_t whylen)
{
	int r = ERR_INTERNAL, len, keynid = NID_undef, ok;
	size_t max;
	unsigned char *pemder = NULL, *out = NULL, *p;
	const unsigned char *der, *q;
	long derlen;
	CA_CSR *csr = NULL;
	EVP_PKEY *pk = NULL;
	X509_PUBKEY *xpk = NULL;

	if (spki != NULL)
		*spki = NULL;
	if (spkilen != NULL)
		*spkilen = 0;
	msg_set(why, whylen, "internal error");
	if (pol == NULL || spki == NULL || spkilen == NULL || (in == NULL && inlen > 0)) {
		r = ERR_INVALID;
		goto out;
	}
	max = pol->max_csr > 0 ? pol->max_csr : CA_MAX_CSR_DEFAULT;
	if (max > CSR_HARD_MAX)
		max = CSR_HARD_MAX;
	if (inlen > max) {
		msg_set(why, whylen, "the CSR is larger than %zu bytes", max);
		r = ERR_TOO_BIG;
		goto out;
	}
	if (inlen == 0) {
		msg_set(why, whylen, "the CSR is empty");
		r = ERR_BAD_CSR;
		goto out;
	}
	if (in[0] == 0x30) {
		der = in;
		derlen = (long)inlen;
	} else {
		if ((r = csr_pem_to_der(in, inlen, &pemder, &derlen, why, whylen)) != 0)
			goto out;
		der = pemder;
	}

	q = der;
	if ((csr = (CA_CSR *)ASN1_item_d2i(NULL, &q, derlen, ASN1_ITEM_rptr(CA_CSR))) == NULL ||
	    q != der + derlen) {
		ERR_clear_error();
		msg_set(why, whylen, csr == NULL ? "the CSR cannot be parsed" :
		    "unexpected data after the CSR");
		r = ERR_BAD_CSR;
		goto out;
	}
	if (ASN1_INTEGER_get(csr->info->version) != X509_REQ_VERSION_1) {
		ERR_clear_error();
		msg_set(why, whylen, "the CSR version is not 1");
		r = ERR_BAD_CSR;
		goto out;
	}

	/* the SPKI re-encoded from its parsed fields, as i2d_X509_PUBKEY did:
	 * the bytes of the CSR when they were DER */
	r = ERR_CRYPTO;
	if ((len = i2d_CA_SPKI(csr->info->pubkey, NULL)) <= 0) {
		log_ossl("i2d_CA_SPKI");
		goto out;
	}
	if ((out = malloc((size_t)len)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	p = out;
	if (i2d_CA_SPKI(csr->info->pubkey, &p) != len) {
		log_ossl("i2d_CA_SPKI");
		goto out;
	}

	/*
	 * Policy before the signature: no verification work for refused keys.
	 * P-256, P-384 and Ed25519 keys in their usual form are built from their
	 * bits; any other key is decoded by OpenSSL and judged as always.
	 */
	if ((pk = key_fast(csr->info->pubkey, &keynid)) == NULL &&
	    (r = key_general(out, (size_t)len, pol->allow_rsa, &xpk, why, whylen)) != 0)
		goto out;
	if (!sigalg_ok(OBJ_obj2nid(csr->sig_alg->algorithm))) {
		msg_set(why, whylen, "the CSR signature algorithm is not accepted "
		    "(ECDSA or RSA with SHA-2, or Ed25519)");
		r = ERR_BAD_CSR;
		goto out;
	}
	if (pk != NULL)
		ok = verify_fast(csr, pk, keynid);
	else
		ok = ASN1_item_verify_ex(ASN1_ITEM_rptr(CA_CSR_INFO), csr->sig_alg,
		    csr->signature, csr->info, NULL, X509_PUBKEY_get0(xpk), NULL, NULL) == 1;
	if (!ok) {
		ERR_clear_error();
		msg_set(why, whylen, "the CSR signature does not verify");
		r = ERR_BAD_CSR;
		goto out;
	}
	if (len > CA_MAX_SPKI) {
		msg_set(why, whylen, "the public key is too large");
		r = ERR_KEY_POLICY;
		goto out;
	}
	*spki = out;
	*spkilen = (size_t)len;
	out = NULL;
	msg_set(why, whylen, "ok");
	r = 0;
out:
	if (r != 0)
		log_debug("CSR refused: %s", why != NULL && whylen > 0 ? why : provd_strerror(r));
	free(out);
	OPENSSL_free(pemder);
	ASN1_item_free((ASN1_VALUE *)csr, ASN1_ITEM_rptr(CA_CSR));
	EVP_PKEY_free(pk);
	X509_PUBKEY_free(xpk);
	return r;
}

int
ca_serial_new(uint8_t serial[CA_SERIAL_LEN])
{
	static const uint8_t zero[CA_SERIAL_LEN];

	if (serial == NULL)
		return ERR_INVALID;
	do {
		if (RAND_bytes(serial, CA_SERIAL_LEN) != 1) {
			log_ossl("RAND_bytes");
			return ERR_CRYPTO;
		}
	} while (memcmp(serial, zero, CA_SERIAL_LEN) == 0);
	return 0;
}

int
ca_serial_to_asn1(const uint8_t serial[CA_SERIAL_LEN], ASN1_INTEGER *dst)
{
	BIGNUM *bn;
	int r = 0;

	if ((bn = BN_bin2bn(serial, CA_SERIAL_LEN, NULL)) == NULL) {
		log_ossl("BN_bin2bn");
		return ERR_NOMEM;
	}
	if (BN_to_ASN1_INTEGER(bn, dst) == NULL) {
		log_ossl("BN_to_ASN1_INTEGER");
		r = ERR_CRYPTO;
	}
	BN_free(bn);
	return r;
}
