/*
 * spake2p.c: SPAKE2+ (RFC 9383, ciphersuite P256-SHA256-HKDF-SHA256-HMAC-SHA256),
 * the PAKE of the PIN-secured temporary link: registration (w0, w1, L) from
 * the PIN, and one prover or verifier run whose K_shared becomes a TLS 1.3 PSK.
 */
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>

#include "common/common.h"

/* RFC 9383 section 4, P-256: seeds "1.2.840.10045.3.1.7 point generation seed (M)" and "(N)". */
static const uint8_t p256_m[33] = {
	0x02, 0x88, 0x6e, 0x2f, 0x97, 0xac, 0xe4, 0x6e, 0x55, 0xba, 0x9d, 0xd7, 0x24, 0x25, 0x79, 0xf2,
	0x99, 0x3b, 0x64, 0xe1, 0x6e, 0xf3, 0xdc, 0xab, 0x95, 0xaf, 0xd4, 0x97, 0x33, 0x3d, 0x8f, 0xa1,
	0x2f,
};
static const uint8_t p256_n[33] = {
	0x03, 0xd8, 0xbb, 0xd6, 0xc6, 0x39, 0xc6, 0x29, 0x37, 0xb0, 0x4d, 0x99, 0x7f, 0x38, 0xc3, 0x77,
	0x07, 0x19, 0xc6, 0x29, 0xd7, 0x01, 0x4d, 0x49, 0xa2, 0x4b, 0x4f, 0x98, 0xba, 0xa1, 0x29, 0x2b,
	0x49,
};

#define DERIVE_LABEL "provd-spake2p-v2"
/*
 * The cost: scrypt N=1024, r=8 (1 MiB, about 3.5 ms). It only slows down
 * guessing the PIN from a registration record stolen out of a device; a
 * six-digit PIN is 20 bits whatever the cost, and such a thief can already
 * answer intake as that device. Recorded exchanges give no offline test
 * (SPAKE2+), online guessing meets the device's lockout, and the PIN is
 * dead once the device is enrolled. docs/protocol.md has the reasoning.
 */
#define SCRYPT_N 1024
#define SCRYPT_R 8
#define SCRYPT_P 1
#define HALF_LEN 40		/* ceil(log2(p)) + 64 bits, rounded up to bytes (RFC 9383 3.2) */

enum { ROLE_PROVER, ROLE_VERIFIER };

/*
 * NEW: created (set_ephemeral allowed). SENT: prover sent shareP / verifier
 * sent shareV and confirmV. DONE: this side checked the peer's confirmation.
 * DEAD: a step failed; every secret is wiped and nothing more is allowed.
 */
enum { ST_NEW, ST_SENT, ST_DONE, ST_DEAD };

/* Allocated on the secure heap (when one is set up), so the byte arrays below are too. */
struct spake2p {
	int role;
	int state;
	int eph_fixed;			/* ephemeral scalar given by spake2p_set_ephemeral */
	EC_GROUP *group;
	EC_POINT *m, *n;		/* RFC 9383 M and N */
	EC_POINT *l;			/* verifier: registration record L = w1*P */
	BIGNUM *w0, *w1, *eph;		/* secure BIGNUMs; w1 prover only; eph is x or y */
	uint8_t *info;			/* Context || idProver || idVerifier (public) */
	size_t ctxlen, idplen, idvlen;
	uint8_t m_enc[SPAKE2P_POINT_LEN], n_enc[SPAKE2P_POINT_LEN];
	uint8_t share_p[SPAKE2P_POINT_LEN], share_v[SPAKE2P_POINT_LEN];
	uint8_t expect_confirm_p[SPAKE2P_MAC_LEN];	/* verifier, SENT only */
	uint8_t k_shared[SPAKE2P_KEY_LEN];		/* SENT (verifier) or DONE */
};

/* ---------------------------------------------------------------------
 * Group helpers.
 */

static int
group_new(EC_GROUP **out)
{
	int r = ERR_INTERNAL;
	EC_GROUP *g;

	if ((g = EC_GROUP_new_by_curve_name_ex(NULL, NULL, NID_X9_62_prime256v1)) == NULL) {
		log_ossl("EC_GROUP_new_by_curve_name_ex(P-256)");
		r = ERR_CRYPTO;
		goto out;
	}
	*out = g;
	r = 0;
out:
	return r;
}

/*
 * Loads a 32-byte big-endian scalar into a new secure BIGNUM, refusing 0 and
 * values >= the group order (ERR_INVALID).
 */
static int
scalar_load(const EC_GROUP *g, const uint8_t in[SPAKE2P_SCALAR_LEN], BIGNUM **out)
{
	int r = ERR_INTERNAL;
	BIGNUM *k = NULL;

	if ((k = BN_secure_new()) == NULL) {
		log_ossl("BN_secure_new");
		r = ERR_NOMEM;
		goto out;
	}
	BN_set_flags(k, BN_FLG_CONSTTIME);
	if (BN_bin2bn(in, SPAKE2P_SCALAR_LEN, k) == NULL) {
		log_ossl("BN_bin2bn");
		r = ERR_CRYPTO;
		goto out;
	}
	if (BN_is_zero(k) || BN_cmp(k, EC_GROUP_get0_order(g)) >= 0) {
		r = ERR_INVALID;
		goto out;
	}
	*out = k;
	k = NULL;
	r = 0;
out:
	BN_clear_free(k);
	return r;
}

static int
scalar_store(const BIGNUM *k, uint8_t out[SPAKE2P_SCALAR_LEN])
{
	int r = ERR_INTERNAL;

	if (BN_bn2binpad(k, out, SPAKE2P_SCALAR_LEN) != SPAKE2P_SCALAR_LEN) {
		log_ossl("BN_bn2binpad");
		r = ERR_CRYPTO;
		goto out;
	}
	r = 0;
out:
	return r;
}

/*
 * Decodes a point received from the peer (or a stored record): exactly the
 * 65-byte uncompressed SEC1 form, on P-256, not the identity. P-256 has
 * cofactor 1, so every such point is in the prime-order group (RFC 9383
 * section 6). Anything else is ERR_INVALID.
 */
static int
point_decode(const EC_GROUP *g, const uint8_t in[SPAKE2P_POINT_LEN], EC_POINT *p, BN_CTX *bnctx)
{
	int r = ERR_INTERNAL;

	if (in[0] != 0x04) {
		r = ERR_INVALID;
		goto out;
	}
	/* a malformed peer value is not a library failure: keep it out of the log */
	ERR_set_mark();
	if (EC_POINT_oct2point(g, p, in, SPAKE2P_POINT_LEN, bnctx) != 1 ||
	    EC_POINT_is_at_infinity(g, p) || EC_POINT_is_on_curve(g, p, bnctx) != 1) {
		ERR_pop_to_mark();
		r = ERR_INVALID;
		goto out;
	}
	ERR_clear_last_mark();
	r = 0;
out:
	return r;
}

/* Uncompressed encoding; the identity has none here (ERR_INVALID). */
static int
point_encode(const EC_GROUP *g, const EC_POINT *p, uint8_t out[SPAKE2P_POINT_LEN], BN_CTX *bnctx)
{
	int r = ERR_INTERNAL;

	if (EC_POINT_is_at_infinity(g, p)) {
		r = ERR_INVALID;
		goto out;
	}
	if (EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, out, SPAKE2P_POINT_LEN,
	    bnctx) != SPAKE2P_POINT_LEN) {
		log_ossl("EC_POINT_point2oct");
		r = ERR_CRYPTO;
		goto out;
	}
	r = 0;
out:
	return r;
}

/*
 * out = k*P + w*q. Both scalars are secret; each product is a single-scalar
 * multiplication, the case OpenSSL computes in constant time (its combined
 * two-scalar path is not constant-time).
 */
static int
share_make(const EC_GROUP *g, EC_POINT *out, const BIGNUM *k, const EC_POINT *q, const BIGNUM *w,
    BN_CTX *bnctx)
{
	int r = ERR_INTERNAL;
	EC_POINT *t = NULL;

	if ((t = EC_POINT_new(g)) == NULL) {
		log_ossl("EC_POINT_new");
		r = ERR_NOMEM;
		goto out;
	}
	if (EC_POINT_mul(g, out, k, NULL, NULL, bnctx) != 1 ||
	    EC_POINT_mul(g, t, NULL, q, w, bnctx) != 1 ||
	    EC_POINT_add(g, out, out, t, bnctx) != 1) {
		log_ossl("EC point arithmetic");
		r = ERR_CRYPTO;
		goto out;
	}
	r = 0;
out:
	EC_POINT_clear_free(t);
	return r;
}

/* out = share - w*q: the peer's ephemeral public key with the password blinding removed. */
static int
share_unblind(const EC_GROUP *g, EC_POINT *out, const EC_POINT *share, const EC_POINT *q,
    const BIGNUM *w, BN_CTX *bnctx)
{
	int r = ERR_INTERNAL;
	EC_POINT *t = NULL;

	if ((t = EC_POINT_new(g)) == NULL) {
		log_ossl("EC_POINT_new");
		r = ERR_NOMEM;
		goto out;
	}
	if (EC_POINT_mul(g, t, NULL, q, w, bnctx) != 1 || EC_POINT_invert(g, t, bnctx) != 1 ||
	    EC_POINT_add(g, out, share, t, bnctx) != 1) {
		log_ossl("EC point arithmetic");
		r = ERR_CRYPTO;
		goto out;
	}
	/* share == w0*q: nothing to agree on; abort like for any bad share */
	if (EC_POINT_is_at_infinity(g, out)) {
		r = ERR_INVALID;
		goto out;
	}
	r = 0;
out:
	EC_POINT_clear_free(t);
	return r;
}

/* A uniformly random scalar in [1, p-1] (p the group order) into *k. */
static int
scalar_random(const EC_GROUP *g, BIGNUM *k, BN_CTX *bnctx)
{
	int r = ERR_INTERNAL;

	do {
		if (BN_priv_rand_range_ex(k, EC_GROUP_get0_order(g), 0, bnctx) != 1) {
			log_ossl("BN_priv_rand_range_ex");
			r = ERR_CRYPTO;
			goto out;
		}
	} while (BN_is_zero(k));
	r = 0;
out:
	return r;
}

/* ---------------------------------------------------------------------
 * Hash, KDF, MAC.
 */

/* Appends len(data) as 8 bytes little-endian, then data (RFC 9383 section 3). */
static int
tt_put(EVP_MD_CTX *md, const uint8_t *data, size_t len)
{
	int r = ERR_INTERNAL;
	uint8_t le[8];
	uint64_t v = len;

	for (size_t i = 0; i < sizeof(le); i++, v >>= 8)
		le[i] = (uint8_t)(v & 0xff);
	if (EVP_DigestUpdate(md, le, sizeof(le)) != 1 ||
	    (len > 0 && EVP_DigestUpdate(md, data, len) != 1)) {
		log_ossl("EVP_DigestUpdate");
		r = ERR_CRYPTO;
		goto out;
	}
	r = 0;
out:
	return r;
}

/* HKDF-SHA256 with salt nil (RFC 5869's default, HashLen zero bytes, is the same HMAC key). */
static int
hkdf(const uint8_t *ikm, size_t ikmlen, const char *info, uint8_t *out, size_t outlen)
{
	int r = ERR_INTERNAL;
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info)),
		OSSL_PARAM_construct_end(),
	};

	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL ||
	    (kctx = EVP_KDF_CTX_new(kdf)) == NULL ||
	    EVP_KDF_derive(kctx, out, outlen, params) != 1) {
		log_ossl("HKDF-SHA256");
		r = ERR_CRYPTO;
		goto out;
	}
	r = 0;
out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return r;
}

static int
hmac(const uint8_t key[SPAKE2P_MAC_LEN], const uint8_t *msg, size_t msglen,
    uint8_t out[SPAKE2P_MAC_LEN])
{
	int r = ERR_INTERNAL;
	size_t outlen = 0;

	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, SPAKE2P_MAC_LEN, msg, msglen,
	    out, SPAKE2P_MAC_LEN, &outlen) == NULL || outlen != SPAKE2P_MAC_LEN) {
		log_ossl("HMAC-SHA256");
		r = ERR_CRYPTO;
		goto out;
	}
	r = 0;
out:
	return r;
}

/*
 * RFC 9383 sections 3.3 and 3.4: TT from the run's public values and Z, V,
 * w0; K_main = SHA-256(TT); K_confirmP || K_confirmV = HKDF(nil, K_main,
 * "ConfirmationKeys"); K_shared = HKDF(nil, K_main, "SharedKey"). TT is
 * hashed as it is built, so it never sits whole in memory.
 */
static int
key_schedule(const struct spake2p *s, const uint8_t z[SPAKE2P_POINT_LEN],
    const uint8_t v[SPAKE2P_POINT_LEN], const uint8_t w0[SPAKE2P_SCALAR_LEN],
    uint8_t kconf[2 * SPAKE2P_MAC_LEN], uint8_t kshared[SPAKE2P_KEY_LEN])
{
	int r = ERR_INTERNAL;
	EVP_MD_CTX *md = NULL;
	uint8_t kmain[32];
	unsigned int kmainlen = 0;
	const uint8_t *idp = s->info + s->ctxlen, *idv = idp + s->idplen;

	if ((md = EVP_MD_CTX_new()) == NULL) {
		log_ossl("EVP_MD_CTX_new");
		r = ERR_NOMEM;
		goto out;
	}
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		log_ossl("EVP_DigestInit_ex(SHA-256)");
		r = ERR_CRYPTO;
		goto out;
	}
	if ((r = tt_put(md, s->info, s->ctxlen)) != 0 ||
	    (r = tt_put(md, idp, s->idplen)) != 0 ||
	    (r = tt_put(md, idv, s->idvlen)) != 0 ||
	    (r = tt_put(md, s->m_enc, SPAKE2P_POINT_LEN)) != 0 ||
	    (r = tt_put(md, s->n_enc, SPAKE2P_POINT_LEN)) != 0 ||
	    (r = tt_put(md, s->share_p, SPAKE2P_POINT_LEN)) != 0 ||
	    (r = tt_put(md, s->share_v, SPAKE2P_POINT_LEN)) != 0 ||
	    (r = tt_put(md, z, SPAKE2P_POINT_LEN)) != 0 ||
	    (r = tt_put(md, v, SPAKE2P_POINT_LEN)) != 0 ||
	    (r = tt_put(md, w0, SPAKE2P_SCALAR_LEN)) != 0)
		goto out;
	if (EVP_DigestFinal_ex(md, kmain, &kmainlen) != 1 || kmainlen != sizeof(kmain)) {
		log_ossl("EVP_DigestFinal_ex");
		r = ERR_CRYPTO;
		goto out;
	}
	if ((r = hkdf(kmain, sizeof(kmain), "ConfirmationKeys", kconf, 2 * SPAKE2P_MAC_LEN)) != 0 ||
	    (r = hkdf(kmain, sizeof(kmain), "SharedKey", kshared, SPAKE2P_KEY_LEN)) != 0)
		goto out;
	r = 0;
out:
	/* the digest state has absorbed Z, V and w0: EVP_MD_CTX_free cleanses it */
	EVP_MD_CTX_free(md);
	OPENSSL_cleanse(kmain, sizeof(kmain));
	return r;
}

/* ---------------------------------------------------------------------
 * Registration.
 */

int
spake2p_derive(const char *pin, const uint8_t *salt, size_t saltlen,
    uint8_t w0[SPAKE2P_SCALAR_LEN], uint8_t w1[SPAKE2P_SCALAR_LEN])
{
	int r = ERR_INTERNAL;
	EC_GROUP *g = NULL;
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kctx = NULL;
	BN_CTX *bnctx = NULL;
	BIGNUM *ws = NULL, *w = NULL;
	uint8_t *pw = NULL, *fullsalt = NULL;
	size_t pinlen = 0, pwlen = 0, fullsaltlen = 0;
	uint8_t okm[2 * HALF_LEN], out0[SPAKE2P_SCALAR_LEN], out1[SPAKE2P_SCALAR_LEN];
	uint64_t n = SCRYPT_N;
	uint32_t rr = SCRYPT_R, p = SCRYPT_P;
	OSSL_PARAM params[6];

	if (pin == NULL || salt == NULL || saltlen == 0 || w0 == NULL || w1 == NULL) {
		r = ERR_INVALID;
		goto out;
	}
	pinlen = strnlen(pin, SPAKE2P_PIN_MAX + 1);
	if (pinlen == 0) {
		r = ERR_INVALID;
		goto out;
	}
	if (pinlen > SPAKE2P_PIN_MAX || saltlen > SPAKE2P_SALT_MAX) {
		r = ERR_TOO_BIG;
		goto out;
	}
	/*
	 * RFC 9383 section 3.2: PBKDF(len(pw) || pw || len(idProver) || idProver
	 * || len(idVerifier) || idVerifier), the identities unknown here and so
	 * empty; the device address is in the salt instead.
	 */
	pwlen = 8 + pinlen + 8 + 8;
	if ((pw = OPENSSL_secure_zalloc(pwlen)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0, v = pinlen; i < 8; i++, v >>= 8)
		pw[i] = (uint8_t)(v & 0xff);
	memcpy(pw + 8, pin, pinlen);
	fullsaltlen = saltlen + strlen(DERIVE_LABEL);
	if ((fullsalt = OPENSSL_malloc(fullsaltlen)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	memcpy(fullsalt, salt, saltlen);
	memcpy(fullsalt + saltlen, DERIVE_LABEL, strlen(DERIVE_LABEL));

	params[0] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, pw, pwlen);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, fullsalt, fullsaltlen);
	params[2] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	params[3] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &rr);
	params[4] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p);
	params[5] = OSSL_PARAM_construct_end();
	if ((kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL)) == NULL ||
	    (kctx = EVP_KDF_CTX_new(kdf)) == NULL ||
	    EVP_KDF_derive(kctx, okm, sizeof(okm), params) != 1) {
		log_ossl("scrypt");
		r = ERR_CRYPTO;
		goto out;
	}

	/* w0 = w0s mod p, w1 = w1s mod p; 40-byte halves keep the bias under 2^-64 */
	if ((r = group_new(&g)) != 0)
		goto out;
	if ((bnctx = BN_CTX_secure_new()) == NULL || (ws = BN_secure_new()) == NULL ||
	    (w = BN_secure_new()) == NULL) {
		log_ossl("BN allocation");
		r = ERR_NOMEM;
		goto out;
	}
	BN_set_flags(ws, BN_FLG_CONSTTIME);
	BN_set_flags(w, BN_FLG_CONSTTIME);
	for (int half = 0; half < 2; half++) {
		if (BN_bin2bn(okm + half * HALF_LEN, HALF_LEN, ws) == NULL ||
		    BN_nnmod(w, ws, EC_GROUP_get0_order(g), bnctx) != 1) {
			log_ossl("reduction mod p");
			r = ERR_CRYPTO;
			goto out;
		}
		/* 0 has probability 2^-256; a scalar of 0 would be refused later anyway */
		if (BN_is_zero(w)) {
			r = ERR_INTERNAL;
			goto out;
		}
		if ((r = scalar_store(w, half == 0 ? out0 : out1)) != 0)
			goto out;
	}
	memcpy(w0, out0, SPAKE2P_SCALAR_LEN);
	memcpy(w1, out1, SPAKE2P_SCALAR_LEN);
	r = 0;
out:
	OPENSSL_cleanse(okm, sizeof(okm));
	OPENSSL_cleanse(out0, sizeof(out0));
	OPENSSL_cleanse(out1, sizeof(out1));
	if (pw != NULL)
		OPENSSL_secure_clear_free(pw, pwlen);
	OPENSSL_free(fullsalt);
	BN_clear_free(ws);
	BN_clear_free(w);
	BN_CTX_free(bnctx);
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	EC_GROUP_free(g);
	return r;
}

int
spake2p_make_L(const uint8_t w1[SPAKE2P_SCALAR_LEN], uint8_t L[SPAKE2P_POINT_LEN])
{
	int r = ERR_INTERNAL;
	EC_GROUP *g = NULL;
	EC_POINT *pt = NULL;
	BN_CTX *bnctx = NULL;
	BIGNUM *k = NULL;
	uint8_t enc[SPAKE2P_POINT_LEN];

	if (w1 == NULL || L == NULL) {
		r = ERR_INVALID;
		goto out;
	}
	if ((r = group_new(&g)) != 0 || (r = scalar_load(g, w1, &k)) != 0)
		goto out;
	if ((bnctx = BN_CTX_secure_new()) == NULL || (pt = EC_POINT_new(g)) == NULL) {
		log_ossl("allocation");
		r = ERR_NOMEM;
		goto out;
	}
	if (EC_POINT_mul(g, pt, k, NULL, NULL, bnctx) != 1) {
		log_ossl("EC_POINT_mul");
		r = ERR_CRYPTO;
		goto out;
	}
	if ((r = point_encode(g, pt, enc, bnctx)) != 0)
		goto out;
	memcpy(L, enc, sizeof(enc));
	r = 0;
out:
	EC_POINT_free(pt);
	BN_clear_free(k);
	BN_CTX_free(bnctx);
	EC_GROUP_free(g);
	return r;
}

/* ---------------------------------------------------------------------
 * One run.
 */

/* Wipes every secret and makes the object refuse all further calls. */
static void
run_kill(struct spake2p *s)
{
	BN_clear_free(s->w0);
	BN_clear_free(s->w1);
	BN_clear_free(s->eph);
	s->w0 = s->w1 = s->eph = NULL;
	OPENSSL_cleanse(s->expect_confirm_p, sizeof(s->expect_confirm_p));
	OPENSSL_cleanse(s->k_shared, sizeof(s->k_shared));
	s->state = ST_DEAD;
}

static int
info_ok(const uint8_t *p, size_t len)
{
	int r = ERR_INTERNAL;

	if (p == NULL && len > 0) {
		r = ERR_INVALID;
		goto out;
	}
	if (len > SPAKE2P_INFO_MAX) {
		r = ERR_TOO_BIG;
		goto out;
	}
	r = 0;
out:
	return r;
}

/* The part of _prover_new and _verifier_new that does not depend on the role. */
static int
run_new(int role, const uint8_t w0[SPAKE2P_SCALAR_LEN], const uint8_t *context, size_t contextlen,
    const uint8_t *id_prover, size_t idplen, const uint8_t *id_verifier, size_t idvlen,
    struct spake2p **out)
{
	int r = ERR_INTERNAL;
	struct spake2p *s = NULL;
	BN_CTX *bnctx = NULL;

	if (w0 == NULL || out == NULL) {
		r = ERR_INVALID;
		goto out;
	}
	if ((r = info_ok(context, contextlen)) != 0 || (r = info_ok(id_prover, idplen)) != 0 ||
	    (r = info_ok(id_verifier, idvlen)) != 0)
		goto out;
	if ((s = OPENSSL_secure_zalloc(sizeof(*s))) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	s->role = role;
	s->state = ST_NEW;
	s->ctxlen = contextlen;
	s->idplen = idplen;
	s->idvlen = idvlen;
	/* +1: a zero-size allocation may return NULL */
	if ((s->info = OPENSSL_malloc(contextlen + idplen + idvlen + 1)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	if (contextlen > 0)
		memcpy(s->info, context, contextlen);
	if (idplen > 0)
		memcpy(s->info + contextlen, id_prover, idplen);
	if (idvlen > 0)
		memcpy(s->info + contextlen + idplen, id_verifier, idvlen);

	if ((r = group_new(&s->group)) != 0)
		goto out;
	if ((r = scalar_load(s->group, w0, &s->w0)) != 0)
		goto out;
	if ((bnctx = BN_CTX_new()) == NULL || (s->m = EC_POINT_new(s->group)) == NULL ||
	    (s->n = EC_POINT_new(s->group)) == NULL || (s->eph = BN_secure_new()) == NULL) {
		log_ossl("allocation");
		r = ERR_NOMEM;
		goto out;
	}
	BN_set_flags(s->eph, BN_FLG_CONSTTIME);
	if (EC_POINT_oct2point(s->group, s->m, p256_m, sizeof(p256_m), bnctx) != 1 ||
	    EC_POINT_oct2point(s->group, s->n, p256_n, sizeof(p256_n), bnctx) != 1) {
		log_ossl("RFC 9383 M/N");
		r = ERR_CRYPTO;
		goto out;
	}
	if ((r = point_encode(s->group, s->m, s->m_enc, bnctx)) != 0 ||
	    (r = point_encode(s->group, s->n, s->n_enc, bnctx)) != 0)
		goto out;
	*out = s;
	s = NULL;
	r = 0;
out:
	BN_CTX_free(bnctx);
	spake2p_free(s);
	return r;
}

int
spake2p_prover_new(const uint8_t w0[SPAKE2P_SCALAR_LEN], const uint8_t w1[SPAKE2P_SCALAR_LEN],
    const uint8_t *context, size_t contextlen, const uint8_t *id_prover, size_t idplen,
    const uint8_t *id_verifier, size_t idvlen, struct spake2p **out)
{
	int r = ERR_INTERNAL;
	struct spake2p *s = NULL;

	if (w1 == NULL || out == NULL) {
		r = ERR_INVALID;
		goto out;
	}
	if ((r = run_new(ROLE_PROVER, w0, context, contextlen, id_prover, idplen, id_verifier,
	    idvlen, &s)) != 0)
		goto out;
	if ((r = scalar_load(s->group, w1, &s->w1)) != 0)
		goto out;
	*out = s;
	s = NULL;
	r = 0;
out:
	spake2p_free(s);
	return r;
}

int
spake2p_verifier_new(const uint8_t w0[SPAKE2P_SCALAR_LEN], const uint8_t L[SPAKE2P_POINT_LEN],
    const uint8_t *context, size_t contextlen, const uint8_t *id_prover, size_t idplen,
    const uint8_t *id_verifier, size_t idvlen, struct spake2p **out)
{
	int r = ERR_INTERNAL;
	struct spake2p *s = NULL;
	BN_CTX *bnctx = NULL;

	if (L == NULL || out == NULL) {
		r = ERR_INVALID;
		goto out;
	}
	if ((r = run_new(ROLE_VERIFIER, w0, context, contextlen, id_prover, idplen, id_verifier,
	    idvlen, &s)) != 0)
		goto out;
	if ((bnctx = BN_CTX_new()) == NULL || (s->l = EC_POINT_new(s->group)) == NULL) {
		log_ossl("allocation");
		r = ERR_NOMEM;
		goto out;
	}
	if ((r = point_decode(s->group, L, s->l, bnctx)) != 0)
		goto out;
	*out = s;
	s = NULL;
	r = 0;
out:
	BN_CTX_free(bnctx);
	spake2p_free(s);
	return r;
}

int
spake2p_set_ephemeral(struct spake2p *s, const uint8_t scalar[SPAKE2P_SCALAR_LEN])
{
	int r = ERR_INTERNAL;
	BIGNUM *k = NULL;

	if (s == NULL || scalar == NULL || s->state != ST_NEW) {
		r = ERR_INVALID;
		goto out;
	}
	if ((r = scalar_load(s->group, scalar, &k)) != 0)
		goto out;
	BN_clear_free(s->eph);
	s->eph = k;
	s->eph_fixed = 1;
	r = 0;
out:
	return r;
}

int
spake2p_prover_start(struct spake2p *s, uint8_t shareP[SPAKE2P_POINT_LEN])
{
	int r = ERR_INTERNAL;
	BN_CTX *bnctx = NULL;
	EC_POINT *x = NULL;

	if (s == NULL || shareP == NULL || s->role != ROLE_PROVER || s->state != ST_NEW) {
		r = ERR_INVALID;
		goto out;
	}
	if ((bnctx = BN_CTX_secure_new()) == NULL || (x = EC_POINT_new(s->group)) == NULL) {
		log_ossl("allocation");
		r = ERR_NOMEM;
		goto fail;
	}
	/* x <- [1, p-1]; X = x*P + w0*M */
	if (!s->eph_fixed && (r = scalar_random(s->group, s->eph, bnctx)) != 0)
		goto fail;
	if ((r = share_make(s->group, x, s->eph, s->m, s->w0, bnctx)) != 0 ||
	    (r = point_encode(s->group, x, s->share_p, bnctx)) != 0)
		goto fail;
	memcpy(shareP, s->share_p, SPAKE2P_POINT_LEN);
	s->state = ST_SENT;
	r = 0;
	goto out;
fail:
	run_kill(s);
out:
	EC_POINT_free(x);
	BN_CTX_free(bnctx);
	return r;
}

int
spake2p_verifier_respond(struct spake2p *s, const uint8_t shareP[SPAKE2P_POINT_LEN],
    uint8_t shareV[SPAKE2P_POINT_LEN], uint8_t confirmV[SPAKE2P_MAC_LEN])
{
	int r = ERR_INTERNAL;
	BN_CTX *bnctx = NULL;
	EC_POINT *x = NULL, *y = NULL, *t = NULL, *pt = NULL;
	uint8_t z[SPAKE2P_POINT_LEN], v[SPAKE2P_POINT_LEN], w0[SPAKE2P_SCALAR_LEN];
	uint8_t kconf[2 * SPAKE2P_MAC_LEN], cv[SPAKE2P_MAC_LEN];

	if (s == NULL || shareP == NULL || shareV == NULL || confirmV == NULL ||
	    s->role != ROLE_VERIFIER || s->state != ST_NEW) {
		r = ERR_INVALID;
		goto out;
	}
	if ((bnctx = BN_CTX_secure_new()) == NULL || (x = EC_POINT_new(s->group)) == NULL ||
	    (y = EC_POINT_new(s->group)) == NULL || (t = EC_POINT_new(s->group)) == NULL ||
	    (pt = EC_POINT_new(s->group)) == NULL) {
		log_ossl("allocation");
		r = ERR_NOMEM;
		goto fail;
	}
	if ((r = point_decode(s->group, shareP, x, bnctx)) != 0) {
		log_debug("shareP refused: not a P-256 point in uncompressed form");
		goto fail;
	}
	memcpy(s->share_p, shareP, SPAKE2P_POINT_LEN);

	/* y <- [1, p-1]; Y = y*P + w0*N */
	if (!s->eph_fixed && (r = scalar_random(s->group, s->eph, bnctx)) != 0)
		goto fail;
	if ((r = share_make(s->group, y, s->eph, s->n, s->w0, bnctx)) != 0 ||
	    (r = point_encode(s->group, y, s->share_v, bnctx)) != 0)
		goto fail;

	/* Z = h*y*(X - w0*M), V = h*y*L; h = 1 for P-256 */
	if ((r = share_unblind(s->group, t, x, s->m, s->w0, bnctx)) != 0) {
		if (r == ERR_INVALID)
			log_debug("shareP refused: X = w0*M");
		goto fail;
	}
	if (EC_POINT_mul(s->group, pt, NULL, t, s->eph, bnctx) != 1) {
		log_ossl("EC_POINT_mul");
		r = ERR_CRYPTO;
		goto fail;
	}
	if ((r = point_encode(s->group, pt, z, bnctx)) != 0)
		goto fail;
	if (EC_POINT_mul(s->group, pt, NULL, s->l, s->eph, bnctx) != 1) {
		log_ossl("EC_POINT_mul");
		r = ERR_CRYPTO;
		goto fail;
	}
	if ((r = point_encode(s->group, pt, v, bnctx)) != 0 || (r = scalar_store(s->w0, w0)) != 0)
		goto fail;

	if ((r = key_schedule(s, z, v, w0, kconf, s->k_shared)) != 0)
		goto fail;
	/* confirmV = MAC(K_confirmV, shareP); keep only the expected confirmP = MAC(K_confirmP, shareV) */
	if ((r = hmac(kconf + SPAKE2P_MAC_LEN, s->share_p, SPAKE2P_POINT_LEN, cv)) != 0 ||
	    (r = hmac(kconf, s->share_v, SPAKE2P_POINT_LEN, s->expect_confirm_p)) != 0)
		goto fail;

	/* the verifier needs none of w0, y from here on */
	BN_clear_free(s->w0);
	BN_clear_free(s->eph);
	s->w0 = s->eph = NULL;
	memcpy(shareV, s->share_v, SPAKE2P_POINT_LEN);
	memcpy(confirmV, cv, SPAKE2P_MAC_LEN);
	s->state = ST_SENT;
	r = 0;
	goto out;
fail:
	run_kill(s);
out:
	OPENSSL_cleanse(z, sizeof(z));
	OPENSSL_cleanse(v, sizeof(v));
	OPENSSL_cleanse(w0, sizeof(w0));
	OPENSSL_cleanse(kconf, sizeof(kconf));
	OPENSSL_cleanse(cv, sizeof(cv));
	EC_POINT_clear_free(x);
	EC_POINT_clear_free(y);
	EC_POINT_clear_free(t);
	EC_POINT_clear_free(pt);
	BN_CTX_free(bnctx);
	return r;
}

int
spake2p_prover_finish(struct spake2p *s, const uint8_t shareV[SPAKE2P_POINT_LEN],
    const uint8_t confirmV[SPAKE2P_MAC_LEN], uint8_t confirmP[SPAKE2P_MAC_LEN])
{
	int r = ERR_INTERNAL;
	BN_CTX *bnctx = NULL;
	EC_POINT *y = NULL, *t = NULL, *pt = NULL;
	uint8_t z[SPAKE2P_POINT_LEN], v[SPAKE2P_POINT_LEN], w0[SPAKE2P_SCALAR_LEN];
	uint8_t kconf[2 * SPAKE2P_MAC_LEN], cv[SPAKE2P_MAC_LEN], cp[SPAKE2P_MAC_LEN];

	if (s == NULL || shareV == NULL || confirmV == NULL || confirmP == NULL ||
	    s->role != ROLE_PROVER || s->state != ST_SENT) {
		r = ERR_INVALID;
		goto out;
	}
	if ((bnctx = BN_CTX_secure_new()) == NULL || (y = EC_POINT_new(s->group)) == NULL ||
	    (t = EC_POINT_new(s->group)) == NULL || (pt = EC_POINT_new(s->group)) == NULL) {
		log_ossl("allocation");
		r = ERR_NOMEM;
		goto fail;
	}
	if ((r = point_decode(s->group, shareV, y, bnctx)) != 0) {
		log_debug("shareV refused: not a P-256 point in uncompressed form");
		goto fail;
	}
	memcpy(s->share_v, shareV, SPAKE2P_POINT_LEN);

	/* Z = h*x*(Y - w0*N), V = h*w1*(Y - w0*N); h = 1 for P-256 */
	if ((r = share_unblind(s->group, t, y, s->n, s->w0, bnctx)) != 0) {
		if (r == ERR_INVALID)
			log_debug("shareV refused: Y = w0*N");
		goto fail;
	}
	if (EC_POINT_mul(s->group, pt, NULL, t, s->eph, bnctx) != 1) {
		log_ossl("EC_POINT_mul");
		r = ERR_CRYPTO;
		goto fail;
	}
	if ((r = point_encode(s->group, pt, z, bnctx)) != 0)
		goto fail;
	if (EC_POINT_mul(s->group, pt, NULL, t, s->w1, bnctx) != 1) {
		log_ossl("EC_POINT_mul");
		r = ERR_CRYPTO;
		goto fail;
	}
	if ((r = point_encode(s->group, pt, v, bnctx)) != 0 || (r = scalar_store(s->w0, w0)) != 0)
		goto fail;

	if ((r = key_schedule(s, z, v, w0, kconf, s->k_shared)) != 0)
		goto fail;
	if ((r = hmac(kconf + SPAKE2P_MAC_LEN, s->share_p, SPAKE2P_POINT_LEN, cv)) != 0)
		goto fail;
	if (CRYPTO_memcmp(cv, confirmV, SPAKE2P_MAC_LEN) != 0) {
		log_warnx("SPAKE2+ confirmV does not match: wrong PIN or altered exchange");
		r = ERR_AUTH;
		goto fail;
	}
	if ((r = hmac(kconf, s->share_v, SPAKE2P_POINT_LEN, cp)) != 0)
		goto fail;

	BN_clear_free(s->w0);
	BN_clear_free(s->w1);
	BN_clear_free(s->eph);
	s->w0 = s->w1 = s->eph = NULL;
	memcpy(confirmP, cp, SPAKE2P_MAC_LEN);
	s->state = ST_DONE;
	r = 0;
	goto out;
fail:
	run_kill(s);
out:
	OPENSSL_cleanse(z, sizeof(z));
	OPENSSL_cleanse(v, sizeof(v));
	OPENSSL_cleanse(w0, sizeof(w0));
	OPENSSL_cleanse(kconf, sizeof(kconf));
	OPENSSL_cleanse(cv, sizeof(cv));
	OPENSSL_cleanse(cp, sizeof(cp));
	EC_POINT_clear_free(y);
	EC_POINT_clear_free(t);
	EC_POINT_clear_free(pt);
	BN_CTX_free(bnctx);
	return r;
}

int
spake2p_verifier_finish(struct spake2p *s, const uint8_t confirmP[SPAKE2P_MAC_LEN])
{
	int r = ERR_INTERNAL;

	if (s == NULL || confirmP == NULL || s->role != ROLE_VERIFIER || s->state != ST_SENT) {
		r = ERR_INVALID;
		goto out;
	}
	if (CRYPTO_memcmp(s->expect_confirm_p, confirmP, SPAKE2P_MAC_LEN) != 0) {
		log_warnx("SPAKE2+ confirmP does not match: wrong PIN or altered exchange");
		run_kill(s);
		r = ERR_AUTH;
		goto out;
	}
	OPENSSL_cleanse(s->expect_confirm_p, sizeof(s->expect_confirm_p));
	s->state = ST_DONE;
	r = 0;
out:
	return r;
}

int
spake2p_shared_key(const struct spake2p *s, uint8_t key[SPAKE2P_KEY_LEN])
{
	int r = ERR_INTERNAL;

	if (s == NULL || key == NULL || s->state != ST_DONE) {
		r = ERR_INVALID;
		goto out;
	}
	memcpy(key, s->k_shared, SPAKE2P_KEY_LEN);
	r = 0;
out:
	return r;
}

void
spake2p_free(struct spake2p *s)
{
	if (s == NULL)
		return;
	run_kill(s);
	EC_POINT_free(s->m);
	EC_POINT_free(s->n);
	EC_POINT_free(s->l);
	EC_GROUP_free(s->group);
	OPENSSL_free(s->info);
	OPENSSL_secure_clear_free(s, sizeof(*s));
}
