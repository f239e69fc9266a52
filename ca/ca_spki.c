/*
 * ca_spki.c: the device public key as the signer handles it — parsed as a
 * plain SubjectPublicKeyInfo, checked against the key policy and copied into
 * the certificate without building an EVP_PKEY for EC and Ed25519 keys.
 *
 * Why not d2i_PUBKEY + X509_set_pubkey: in OpenSSL 3.0 these go through the
 * provider decoder and encoder framework (decode, encode, decode again),
 * about 0.5 ms per certificate, twenty times the ECDSA signature. EC points
 * are still validated (EC_POINT_oct2point checks they are on the curve);
 * RSA keys, allowed only by configuration, take the EVP_PKEY path for their
 * size.
 */
#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "ca/ca_int.h"

/* CA_SPKI (ca_int.h): the SubjectPublicKeyInfo, key left undecoded. */
ASN1_SEQUENCE(CA_SPKI) = {
	ASN1_SIMPLE(CA_SPKI, algor, X509_ALGOR),
	ASN1_SIMPLE(CA_SPKI, key, ASN1_BIT_STRING),
} ASN1_SEQUENCE_END(CA_SPKI)

IMPLEMENT_ASN1_FUNCTIONS(CA_SPKI)

/* An EC point of the given group, not at infinity, not in hybrid form. */
static int
ec_point_ok(const EC_GROUP *g, const unsigned char *p, size_t len)
{
	EC_POINT *pt;
	int ok;

	if (len < 1 || p[0] < 0x02 || p[0] > 0x04 || (pt = EC_POINT_new(g)) == NULL)
		return 0;
	ok = EC_POINT_oct2point(g, pt, p, len, NULL) == 1 && !EC_POINT_is_at_infinity(g, pt);
	EC_POINT_free(pt);
	return ok;
}

/* RSA: decoded as an EVP_PKEY to learn its size, then the CSR rules. */
static int
rsa_ok(const struct ca_key *k, const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509_PUBKEY *xpk;
	char why[160];
	int r;

	if ((xpk = d2i_X509_PUBKEY(NULL, &p, (long)len)) == NULL || p != der + len ||
	    X509_PUBKEY_get0(xpk) == NULL) {
		X509_PUBKEY_free(xpk);
		return ERR_INVALID;
	}
	if ((r = ca_pubkey_policy(xpk, k->allow_rsa, why, sizeof(why))) != 0)
		log_warnx("refused: %s", why);
	X509_PUBKEY_free(xpk);
	return r;
}

int
ca_spki_apply(const struct ca_key *k, const uint8_t *der, size_t len, X509 *x,
    ASN1_OCTET_STRING **keyid)
{
	int r = ERR_INVALID, ptype, nid, curve = NID_undef;
	const ASN1_OBJECT *aobj;
	const void *pval;
	const unsigned char *p = der, *bits;
	unsigned char md[EVP_MAX_MD_SIZE], *penc = NULL;
	unsigned int mdlen = 0;
	size_t bitslen;
	CA_SPKI *s = NULL;
	ASN1_OCTET_STRING *kid = NULL;

	*keyid = NULL;
	if (len == 0 || len > CA_MAX_SPKI ||
	    (s = d2i_CA_SPKI(NULL, &p, (long)len)) == NULL || p != der + len ||
	    (s->key->flags & 0x07) != 0) {	/* whole octets only */
		log_warnx("refused: the public key does not parse");
		goto out;
	}
	bits = s->key->data;
	bitslen = (size_t)s->key->length;
	X509_ALGOR_get0(&aobj, &ptype, &pval, s->algor);
	r = ERR_KEY_POLICY;
	switch ((nid = OBJ_obj2nid(aobj))) {
	case NID_X9_62_id_ecPublicKey:
		if (ptype == V_ASN1_OBJECT)
			curve = OBJ_obj2nid(pval);
		if (curve != NID_X9_62_prime256v1 && curve != NID_secp384r1) {
			log_warnx("refused: EC key not on P-256 or P-384");
			goto out;
		}
		if (!ec_point_ok(curve == NID_secp384r1 ? k->p384 : k->p256, bits, bitslen)) {
			log_warnx("refused: EC public key is not a point of its curve");
			r = ERR_INVALID;
			goto out;
		}
		break;
	case NID_ED25519:
		if (ptype != V_ASN1_UNDEF || bitslen != 32) {
			log_warnx("refused: malformed Ed25519 key");
			r = ERR_INVALID;
			goto out;
		}
		break;
	case NID_rsaEncryption:
		if (!k->allow_rsa) {
			log_warnx("refused: RSA keys are not allowed");
			goto out;
		}
		if ((r = rsa_ok(k, der, len)) != 0)
			goto out;
		break;
	default:
		log_warnx("refused: key algorithm not allowed");
		goto out;
	}

	r = ERR_CRYPTO;
	if (!EVP_Digest(bits, bitslen, md, &mdlen, k->md_keyid, NULL) ||
	    (kid = ASN1_OCTET_STRING_new()) == NULL ||
	    !ASN1_OCTET_STRING_set(kid, md, (int)mdlen) ||
	    (penc = OPENSSL_memdup(bits, bitslen)) == NULL) {
		log_ossl("key identifier");
		goto out;
	}
	/* canonical AlgorithmIdentifier; the objects are OpenSSL's static ones */
	if (!X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), OBJ_nid2obj(nid),
	    nid == NID_X9_62_id_ecPublicKey ? V_ASN1_OBJECT :
	    nid == NID_rsaEncryption ? V_ASN1_NULL : V_ASN1_UNDEF,
	    nid == NID_X9_62_id_ecPublicKey ? OBJ_nid2obj(curve) : NULL,
	    penc, (int)bitslen)) {
		log_ossl("X509_PUBKEY_set0_param");
		goto out;
	}
	penc = NULL;
	*keyid = kid;
	kid = NULL;
	r = 0;
out:
	ERR_clear_error();
	OPENSSL_free(penc);
	ASN1_OCTET_STRING_free(kid);
	CA_SPKI_free(s);
	return r;
}
