/*
 * ca_csr.c: what the network-facing process checks before anything is sent
 * to the signer — strict PEM/DER parsing of a CSR, proof of possession, the
 * device key policy — and fresh random serial numbers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "ca/ca_int.h"

#define PEM_CSR_LABEL "CERTIFICATE REQUEST"
#define CSR_HARD_MAX (1u << 20)	/* whatever the policy says */

static void
set_why(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
set_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

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
		set_why(why, whylen, "the public key cannot be decoded");
		return ERR_KEY_POLICY;
	}
	X509_ALGOR_get0(NULL, &ptype, &pval, pa);
	nid = OBJ_obj2nid(alg);
	switch (nid) {
	case NID_X9_62_id_ecPublicKey:
		if (ptype != V_ASN1_OBJECT) {
			set_why(why, whylen, "EC keys must use a named curve (P-256 or P-384)");
			return ERR_KEY_POLICY;
		}
		curve = OBJ_obj2nid(pval);
		if (curve != NID_X9_62_prime256v1 && curve != NID_secp384r1) {
			if (OBJ_obj2txt(name, sizeof(name), pval, 0) <= 0)
				snprintf(name, sizeof(name), "unknown");
			set_why(why, whylen, "EC curve %s is not allowed (P-256 or P-384)", name);
			return ERR_KEY_POLICY;
		}
		if (!X509_PUBKEY_get0_param(NULL, &bits, &bitslen, NULL, xpk) || bitslen < 1 ||
		    bits[0] < 0x02 || bits[0] > 0x04) {
			set_why(why, whylen, "EC points must be compressed or uncompressed");
			return ERR_KEY_POLICY;
		}
		return 0;
	case NID_ED25519:
		/* RFC 8410: the parameters are absent */
		if (ptype != V_ASN1_UNDEF) {
			set_why(why, whylen, "Ed25519 key with parameters");
			return ERR_KEY_POLICY;
		}
		return 0;
	case NID_rsaEncryption:
		if (!allow_rsa) {
			set_why(why, whylen, "RSA keys are not allowed (use EC P-256, P-384 or Ed25519)");
			return ERR_KEY_POLICY;
		}
		nbits = EVP_PKEY_get_bits(pk);
		if (nbits < 2048) {
			set_why(why, whylen, "RSA key of %d bits is too small (minimum 2048)", nbits);
			return ERR_KEY_POLICY;
		}
		if (nbits > CA_RSA_MAX_BITS) {
			set_why(why, whylen, "RSA key of %d bits is too large (maximum %d)",
			    nbits, CA_RSA_MAX_BITS);
			return ERR_KEY_POLICY;
		}
		return 0;
	default:
		if (OBJ_obj2txt(name, sizeof(name), alg, 0) <= 0)
			snprintf(name, sizeof(name), "unknown");
		set_why(why, whylen, "key algorithm %s is not allowed", name);
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
		set_why(why, whylen, "the CSR is neither DER nor PEM");
		goto out;
	}
	while (lead < inlen && is_space(in[lead]))
		lead++;
	if (inlen - lead < sizeof(begin) - 1 ||
	    memcmp(in + lead, begin, sizeof(begin) - 1) != 0) {
		set_why(why, whylen, "the CSR is neither DER nor a PEM CERTIFICATE REQUEST");
		goto out;
	}
	if ((bio = BIO_new_mem_buf(in + lead, (int)(inlen - lead))) == NULL) {
		log_ossl("BIO_new_mem_buf");
		r = ERR_NOMEM;
		goto out;
	}
	if (!PEM_read_bio(bio, &name, &header, &data, &datalen)) {
		ERR_clear_error();
		set_why(why, whylen, "the PEM block is malformed");
		goto out;
	}
	if (strcmp(name, PEM_CSR_LABEL) != 0 || header[0] != '\0') {
		set_why(why, whylen, "the PEM block is not a plain CERTIFICATE REQUEST");
		goto out;
	}
	restlen = BIO_get_mem_data(bio, &rest);
	if (restlen < 0 || !all_space((const uint8_t *)rest, (size_t)restlen)) {
		set_why(why, whylen, "unexpected data after the PEM block");
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

int
ca_csr_check(const uint8_t *in, size_t inlen, const struct ca_policy *pol,
    uint8_t **spki, size_t *spkilen, char *why, size_t whylen)
{
	int r = ERR_INTERNAL, len;
	size_t max;
	unsigned char *pemder = NULL, *out = NULL, *p;
	const unsigned char *der, *q;
	long derlen;
	X509_REQ *req = NULL;
	X509_PUBKEY *xpk;
	EVP_PKEY *pk;

	if (spki != NULL)
		*spki = NULL;
	if (spkilen != NULL)
		*spkilen = 0;
	set_why(why, whylen, "internal error");
	if (pol == NULL || spki == NULL || spkilen == NULL || (in == NULL && inlen > 0)) {
		r = ERR_INVALID;
		goto out;
	}
	max = pol->max_csr > 0 ? pol->max_csr : CA_MAX_CSR_DEFAULT;
	if (max > CSR_HARD_MAX)
		max = CSR_HARD_MAX;
	if (inlen > max) {
		set_why(why, whylen, "the CSR is larger than %zu bytes", max);
		r = ERR_TOO_BIG;
		goto out;
	}
	if (inlen == 0) {
		set_why(why, whylen, "the CSR is empty");
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
	if ((req = d2i_X509_REQ(NULL, &q, derlen)) == NULL || q != der + derlen) {
		ERR_clear_error();
		set_why(why, whylen, req == NULL ? "the CSR cannot be parsed" :
		    "unexpected data after the CSR");
		r = ERR_BAD_CSR;
		goto out;
	}
	if (X509_REQ_get_version(req) != X509_REQ_VERSION_1) {
		set_why(why, whylen, "the CSR version is not 1");
		r = ERR_BAD_CSR;
		goto out;
	}
	if ((xpk = X509_REQ_get_X509_PUBKEY(req)) == NULL) {
		set_why(why, whylen, "the CSR has no public key");
		r = ERR_BAD_CSR;
		goto out;
	}
	/* Policy before the signature: no verification work for refused keys. */
	if ((r = ca_pubkey_policy(xpk, pol->allow_rsa, why, whylen)) != 0)
		goto out;
	if (!sigalg_ok(X509_REQ_get_signature_nid(req))) {
		set_why(why, whylen, "the CSR signature algorithm is not accepted "
		    "(ECDSA or RSA with SHA-2, or Ed25519)");
		r = ERR_BAD_CSR;
		goto out;
	}
	if ((pk = X509_REQ_get0_pubkey(req)) == NULL || X509_REQ_verify(req, pk) != 1) {
		ERR_clear_error();
		set_why(why, whylen, "the CSR signature does not verify");
		r = ERR_BAD_CSR;
		goto out;
	}

	/* the SPKI as parsed (DER): no round trip through the encoders */
	if ((len = i2d_X509_PUBKEY(xpk, NULL)) <= 0 || len > CA_MAX_SPKI) {
		if (len <= 0)
			log_ossl("i2d_X509_PUBKEY");
		set_why(why, whylen, "the public key is too large");
		r = len > CA_MAX_SPKI ? ERR_KEY_POLICY : ERR_CRYPTO;
		goto out;
	}
	if ((out = malloc((size_t)len)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	p = out;
	if (i2d_X509_PUBKEY(xpk, &p) != len) {
		log_ossl("i2d_X509_PUBKEY");
		r = ERR_CRYPTO;
		goto out;
	}
	*spki = out;
	*spkilen = (size_t)len;
	out = NULL;
	set_why(why, whylen, "ok");
	r = 0;
out:
	if (r != 0)
		log_debug("CSR refused: %s", why != NULL && whylen > 0 ? why : provd_strerror(r));
	free(out);
	OPENSSL_free(pemder);
	X509_REQ_free(req);
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
