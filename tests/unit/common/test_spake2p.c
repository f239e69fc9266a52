/*
 * test_spake2p.c: SPAKE2+ against RFC 9383's P256-SHA256-HKDF-SHA256-HMAC-SHA256
 * test vectors, full runs, wrong PINs, replays, invalid points and calls out
 * of order.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "common/common.h"

/*
 * RFC 9383 Appendix C, first set (P256-SHA256-HKDF-SHA256-HMAC-SHA256).
 * Context = "SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256 Test Vectors",
 * idProver = "client", idVerifier = "server".
 */
#define RFC_CONTEXT "SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256 Test Vectors"
#define RFC_ID_P "client"
#define RFC_ID_V "server"

#define RFC_W0 \
	"bb8e1bbcf3c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3"
#define RFC_W1 \
	"7e945f34d78785b8a3ef44d0df5a1a97d6b3b460409a345ca7830387a74b1dba"
#define RFC_L \
	"04eb7c9db3d9a9eb1f8adab81b5794c1f13ae3e225efbe91ea487425854c7fc0" \
	"0f00bfedcbd09b2400142d40a14f2064ef31dfaa903b91d1faea7093d835966e" \
	"fd"
#define RFC_X \
	"d1232c8e8693d02368976c174e2088851b8365d0d79a9eee709c6a05a2fad539"
#define RFC_SHARE_P \
	"04ef3bd051bf78a2234ec0df197f7828060fe9856503579bb1733009042c15c0" \
	"c1de127727f418b5966afadfdd95a6e4591d171056b333dab97a79c7193e3417" \
	"27"
#define RFC_Y \
	"717a72348a182085109c8d3917d6c43d59b224dc6a7fc4f0483232fa6516d8b3"
#define RFC_SHARE_V \
	"04c0f65da0d11927bdf5d560c69e1d7d939a05b0e88291887d679fcadea75810" \
	"fb5cc1ca7494db39e82ff2f50665255d76173e09986ab46742c798a9a68437b0" \
	"48"
#define RFC_Z \
	"04bbfce7dd7f277819c8da21544afb7964705569bdf12fb92aa388059408d500" \
	"91a0c5f1d3127f56813b5337f9e4e67e2ca633117a4fbd559946ab474356c418" \
	"39"
#define RFC_V \
	"0458bf27c6bca011c9ce1930e8984a797a3419797b936629a5a937cf2f11c8b9" \
	"514b82b993da8a46e664f23db7c01edc87faa530db01c2ee405230b18997f16b" \
	"68"
#define RFC_TT \
	"38000000000000005350414b45322b2d503235362d5348413235362d484b4446" \
	"2d5348413235362d484d41432d534841323536205465737420566563746f7273" \
	"0600000000000000636c69656e74060000000000000073657276657241000000" \
	"0000000004886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497" \
	"333d8fa12f5ff355163e43ce224e0b0e65ff02ac8e5c7be09419c785e0ca547d" \
	"55a12e2d20410000000000000004d8bbd6c639c62937b04d997f38c3770719c6" \
	"29d7014d49a24b4f98baa1292b4907d60aa6bfade45008a636337f5168c64d9b" \
	"d36034808cd564490b1e656edbe7410000000000000004ef3bd051bf78a2234e" \
	"c0df197f7828060fe9856503579bb1733009042c15c0c1de127727f418b5966a" \
	"fadfdd95a6e4591d171056b333dab97a79c7193e341727410000000000000004" \
	"c0f65da0d11927bdf5d560c69e1d7d939a05b0e88291887d679fcadea75810fb" \
	"5cc1ca7494db39e82ff2f50665255d76173e09986ab46742c798a9a68437b048" \
	"410000000000000004bbfce7dd7f277819c8da21544afb7964705569bdf12fb9" \
	"2aa388059408d50091a0c5f1d3127f56813b5337f9e4e67e2ca633117a4fbd55" \
	"9946ab474356c4183941000000000000000458bf27c6bca011c9ce1930e8984a" \
	"797a3419797b936629a5a937cf2f11c8b9514b82b993da8a46e664f23db7c01e" \
	"dc87faa530db01c2ee405230b18997f16b682000000000000000bb8e1bbcf3c4" \
	"8f62c08db243652ae55d3e5586053fca77102994f23ad95491b3"
#define RFC_K_MAIN \
	"4c59e1ccf2cfb961aa31bd9434478a1089b56cd11542f53d3576fb6c2a438a29"
#define RFC_K_CONFIRM_P \
	"871ae3f7b78445e34438fb284504240239031c39d80ac23eb5ab9be5ad6db58a"
#define RFC_K_CONFIRM_V \
	"ccd53c7c1fa37b64a462b40db8be101cedcf838950162902054e644b400f1680"
#define RFC_CONFIRM_P \
	"926cc713504b9b4d76c9162ded04b5493e89109f6d89462cd33adc46fda27527"
#define RFC_CONFIRM_V \
	"9747bcc4f8fe9f63defee53ac9b07876d907d55047e6ff2def2e7529089d3e68"
#define RFC_K_SHARED \
	"0c5f8ccd1413423a54f6c1fb26ff01534a87f893779c6e68666d772bfd91f3e7"

/* RFC 9383 section 4, P-256 M and N (compressed SEC1) */
#define RFC_M "02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f"
#define RFC_N "03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49"

/* P-256 group order p */
#define P256_ORDER "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"

/* Context and identities of the runs that are not the RFC vector */
#define CTX "provd-spake2p-test"
#define IDP "provd.example"
#define IDV "00:1a:7d:da:71:13"

static const uint8_t test_addr[MAC_LEN] = { 0x00, 0x1a, 0x7d, 0xda, 0x71, 0x13 };

static size_t secure_used_before;

static void
unhex(const char *h, uint8_t *out, size_t len)
{
	assert_int_equal(strlen(h), 2 * len);
	assert_int_equal(hex_decode(h, out, len), 0);
}

/* Compares as hex, so a failure prints both values. */
static void
assert_hex(const uint8_t *got, size_t len, const char *want)
{
	char buf[2 * 600 + 1];

	assert_true(len <= 600);
	hex_encode(got, len, buf);
	assert_string_equal(buf, want);
}

static int
is_filled(const uint8_t *p, size_t len, uint8_t c)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != c)
			return 0;
	return 1;
}

static void
rfc_scalars(uint8_t w0[32], uint8_t w1[32], uint8_t L[65])
{
	unhex(RFC_W0, w0, 32);
	unhex(RFC_W1, w1, 32);
	unhex(RFC_L, L, 65);
}

static struct spake2p *
new_prover(const uint8_t w0[32], const uint8_t w1[32])
{
	struct spake2p *s = NULL;

	assert_int_equal(spake2p_prover_new(w0, w1, (const uint8_t *)CTX, strlen(CTX),
	    (const uint8_t *)IDP, strlen(IDP), (const uint8_t *)IDV, strlen(IDV), &s), 0);
	assert_non_null(s);
	return s;
}

static struct spake2p *
new_verifier(const uint8_t w0[32], const uint8_t L[65])
{
	struct spake2p *s = NULL;

	assert_int_equal(spake2p_verifier_new(w0, L, (const uint8_t *)CTX, strlen(CTX),
	    (const uint8_t *)IDP, strlen(IDP), (const uint8_t *)IDV, strlen(IDV), &s), 0);
	assert_non_null(s);
	return s;
}

/* A complete, honest exchange; both keys out. */
static void
exchange(struct spake2p *p, struct spake2p *v, uint8_t kp[32], uint8_t kv[32])
{
	uint8_t shareP[65], shareV[65], confirmV[32], confirmP[32];

	assert_int_equal(spake2p_prover_start(p, shareP), 0);
	assert_int_equal(spake2p_verifier_respond(v, shareP, shareV, confirmV), 0);
	assert_int_equal(spake2p_prover_finish(p, shareV, confirmV, confirmP), 0);
	assert_int_equal(spake2p_verifier_finish(v, confirmP), 0);
	assert_int_equal(spake2p_shared_key(p, kp), 0);
	assert_int_equal(spake2p_shared_key(v, kv), 0);
}

/* k*Q for a compressed point Q, uncompressed into out (test-side arithmetic). */
static void
point_times(const char *q_hex, const uint8_t k_be[32], uint8_t out[65])
{
	uint8_t q[33];
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	EC_POINT *pt, *res;
	BIGNUM *k;

	assert_non_null(g);
	unhex(q_hex, q, sizeof(q));
	pt = EC_POINT_new(g);
	res = EC_POINT_new(g);
	k = BN_bin2bn(k_be, 32, NULL);
	assert_true(pt != NULL && res != NULL && k != NULL);
	assert_int_equal(EC_POINT_oct2point(g, pt, q, sizeof(q), NULL), 1);
	assert_int_equal(EC_POINT_mul(g, res, NULL, pt, k, NULL), 1);
	assert_int_equal(EC_POINT_point2oct(g, res, POINT_CONVERSION_UNCOMPRESSED, out, 65, NULL), 65);
	BN_free(k);
	EC_POINT_free(pt);
	EC_POINT_free(res);
	EC_GROUP_free(g);
}

static void
test_hkdf(const uint8_t *ikm, size_t ikmlen, const char *info, uint8_t *out, size_t outlen)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info)),
		OSSL_PARAM_construct_end(),
	};

	assert_non_null(kctx);
	assert_int_equal(EVP_KDF_derive(kctx, out, outlen, params), 1);
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
}

/* ---------------------------------------------------------------------
 * RFC 9383 Appendix C.
 */

/* Both sides together, every value that crosses the wire, and K_shared. */
static void
test_rfc9383_run(void **state)
{
	uint8_t w0[32], w1[32], x[32], y[32], L[65];
	uint8_t shareP[65], shareV[65], confirmV[32], confirmP[32], kp[32], kv[32];
	struct spake2p *p = NULL, *v = NULL;

	(void)state;
	rfc_scalars(w0, w1, L);
	unhex(RFC_X, x, 32);
	unhex(RFC_Y, y, 32);

	uint8_t myL[65];
	assert_int_equal(spake2p_make_L(w1, myL), 0);
	assert_hex(myL, 65, RFC_L);

	assert_int_equal(spake2p_prover_new(w0, w1, (const uint8_t *)RFC_CONTEXT,
	    strlen(RFC_CONTEXT), (const uint8_t *)RFC_ID_P, 6, (const uint8_t *)RFC_ID_V, 6, &p), 0);
	assert_int_equal(spake2p_verifier_new(w0, myL, (const uint8_t *)RFC_CONTEXT,
	    strlen(RFC_CONTEXT), (const uint8_t *)RFC_ID_P, 6, (const uint8_t *)RFC_ID_V, 6, &v), 0);
	assert_int_equal(spake2p_set_ephemeral(p, x), 0);
	assert_int_equal(spake2p_set_ephemeral(v, y), 0);

	assert_int_equal(spake2p_prover_start(p, shareP), 0);
	assert_hex(shareP, 65, RFC_SHARE_P);
	assert_int_equal(spake2p_verifier_respond(v, shareP, shareV, confirmV), 0);
	assert_hex(shareV, 65, RFC_SHARE_V);
	assert_hex(confirmV, 32, RFC_CONFIRM_V);
	assert_int_equal(spake2p_prover_finish(p, shareV, confirmV, confirmP), 0);
	assert_hex(confirmP, 32, RFC_CONFIRM_P);
	assert_int_equal(spake2p_verifier_finish(v, confirmP), 0);
	assert_int_equal(spake2p_shared_key(p, kp), 0);
	assert_int_equal(spake2p_shared_key(v, kv), 0);
	assert_hex(kp, 32, RFC_K_SHARED);
	assert_hex(kv, 32, RFC_K_SHARED);
	spake2p_free(p);
	spake2p_free(v);
}

/* Each side alone, fed the RFC's values for the other side's messages. */
static void
test_rfc9383_each_side(void **state)
{
	uint8_t w0[32], w1[32], x[32], y[32], L[65];
	uint8_t rfc_shareP[65], rfc_shareV[65], rfc_confirmV[32], rfc_confirmP[32];
	uint8_t shareP[65], shareV[65], confirmV[32], confirmP[32], key[32];
	struct spake2p *s = NULL;

	(void)state;
	rfc_scalars(w0, w1, L);
	unhex(RFC_X, x, 32);
	unhex(RFC_Y, y, 32);
	unhex(RFC_SHARE_P, rfc_shareP, 65);
	unhex(RFC_SHARE_V, rfc_shareV, 65);
	unhex(RFC_CONFIRM_V, rfc_confirmV, 32);
	unhex(RFC_CONFIRM_P, rfc_confirmP, 32);

	/* verifier, with L straight from the RFC */
	assert_int_equal(spake2p_verifier_new(w0, L, (const uint8_t *)RFC_CONTEXT,
	    strlen(RFC_CONTEXT), (const uint8_t *)RFC_ID_P, 6, (const uint8_t *)RFC_ID_V, 6, &s), 0);
	assert_int_equal(spake2p_set_ephemeral(s, y), 0);
	assert_int_equal(spake2p_verifier_respond(s, rfc_shareP, shareV, confirmV), 0);
	assert_hex(shareV, 65, RFC_SHARE_V);
	assert_hex(confirmV, 32, RFC_CONFIRM_V);
	assert_int_equal(spake2p_verifier_finish(s, rfc_confirmP), 0);
	assert_int_equal(spake2p_shared_key(s, key), 0);
	assert_hex(key, 32, RFC_K_SHARED);
	spake2p_free(s);
	s = NULL;

	/* prover */
	assert_int_equal(spake2p_prover_new(w0, w1, (const uint8_t *)RFC_CONTEXT,
	    strlen(RFC_CONTEXT), (const uint8_t *)RFC_ID_P, 6, (const uint8_t *)RFC_ID_V, 6, &s), 0);
	assert_int_equal(spake2p_set_ephemeral(s, x), 0);
	assert_int_equal(spake2p_prover_start(s, shareP), 0);
	assert_hex(shareP, 65, RFC_SHARE_P);
	assert_int_equal(spake2p_prover_finish(s, rfc_shareV, rfc_confirmV, confirmP), 0);
	assert_hex(confirmP, 32, RFC_CONFIRM_P);
	assert_int_equal(spake2p_shared_key(s, key), 0);
	assert_hex(key, 32, RFC_K_SHARED);
	spake2p_free(s);
}

/*
 * The values the API keeps inside (Z, V, TT, K_main, K_confirmP, K_confirmV).
 * The RFC's TT is split into its length-prefixed fields, each checked against
 * the vector's inputs; then SHA-256(TT) = K_main, HKDF(K_main) = K_confirmP ||
 * K_confirmV and K_shared, and the HMACs = confirmP, confirmV. Since the
 * library's confirmV, confirmP and K_shared equal the RFC's (tests above),
 * and each is a hash of K_main, the library's TT, Z, V and K_main are the
 * RFC's too.
 */
static void
test_rfc9383_transcript(void **state)
{
	uint8_t tt[570], kmain[32], kconf[64], kshared[32], mac[32], m[33], n[33];
	uint8_t shareP[65], shareV[65], z[65], v[65], w0[32];
	unsigned int mdlen = 0;
	size_t off = 0, outlen = 0;
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	EC_POINT *pt = EC_POINT_new(g);
	uint8_t m_unc[65], n_unc[65];
	struct {
		const uint8_t *want;
		size_t len;
	} fields[10];

	(void)state;
	assert_non_null(pt);
	assert_int_equal(strlen(RFC_TT), 2 * sizeof(tt));
	unhex(RFC_TT, tt, sizeof(tt));
	unhex(RFC_SHARE_P, shareP, 65);
	unhex(RFC_SHARE_V, shareV, 65);
	unhex(RFC_Z, z, 65);
	unhex(RFC_V, v, 65);
	unhex(RFC_W0, w0, 32);
	unhex(RFC_M, m, 33);
	unhex(RFC_N, n, 33);
	assert_int_equal(EC_POINT_oct2point(g, pt, m, 33, NULL), 1);
	assert_int_equal(EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, m_unc, 65, NULL), 65);
	assert_int_equal(EC_POINT_oct2point(g, pt, n, 33, NULL), 1);
	assert_int_equal(EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, n_unc, 65, NULL), 65);
	EC_POINT_free(pt);
	EC_GROUP_free(g);

	fields[0].want = (const uint8_t *)RFC_CONTEXT, fields[0].len = strlen(RFC_CONTEXT);
	fields[1].want = (const uint8_t *)RFC_ID_P, fields[1].len = 6;
	fields[2].want = (const uint8_t *)RFC_ID_V, fields[2].len = 6;
	fields[3].want = m_unc, fields[3].len = 65;
	fields[4].want = n_unc, fields[4].len = 65;
	fields[5].want = shareP, fields[5].len = 65;
	fields[6].want = shareV, fields[6].len = 65;
	fields[7].want = z, fields[7].len = 65;
	fields[8].want = v, fields[8].len = 65;
	fields[9].want = w0, fields[9].len = 32;
	for (size_t i = 0; i < 10; i++) {
		uint64_t len = 0;
		assert_true(off + 8 <= sizeof(tt));
		for (int b = 7; b >= 0; b--)		/* 8-byte little-endian */
			len = len << 8 | tt[off + (size_t)b];
		off += 8;
		assert_int_equal(len, fields[i].len);
		assert_true(off + len <= sizeof(tt));
		assert_memory_equal(tt + off, fields[i].want, fields[i].len);
		off += len;
	}
	assert_int_equal(off, sizeof(tt));

	assert_int_equal(EVP_Digest(tt, sizeof(tt), kmain, &mdlen, EVP_sha256(), NULL), 1);
	assert_hex(kmain, 32, RFC_K_MAIN);
	test_hkdf(kmain, 32, "ConfirmationKeys", kconf, 64);
	assert_hex(kconf, 32, RFC_K_CONFIRM_P);
	assert_hex(kconf + 32, 32, RFC_K_CONFIRM_V);
	test_hkdf(kmain, 32, "SharedKey", kshared, 32);
	assert_hex(kshared, 32, RFC_K_SHARED);
	assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, kconf, 32, shareV, 65,
	    mac, 32, &outlen));
	assert_hex(mac, 32, RFC_CONFIRM_P);
	assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, kconf + 32, 32, shareP, 65,
	    mac, 32, &outlen));
	assert_hex(mac, 32, RFC_CONFIRM_V);
}

/* ---------------------------------------------------------------------
 * Runs.
 */

static void
test_random_run(void **state)
{
	uint8_t w0[32], w1[32], L[65], kp[32], kv[32];
	struct spake2p *p, *v;

	(void)state;
	rfc_scalars(w0, w1, L);
	p = new_prover(w0, w1);
	v = new_verifier(w0, L);
	exchange(p, v, kp, kv);
	assert_memory_equal(kp, kv, 32);
	assert_false(is_filled(kp, 32, 0));
	/* the RFC's context differs from ours: so does the key */
	char h[65];
	hex_encode(kp, 32, h);
	assert_string_not_equal(h, RFC_K_SHARED);
	spake2p_free(p);
	spake2p_free(v);
}

/* Empty context and identities are allowed (NULL, 0) and still agree. */
static void
test_empty_context_and_ids(void **state)
{
	uint8_t w0[32], w1[32], L[65], kp[32], kv[32];
	struct spake2p *p = NULL, *v = NULL;

	(void)state;
	rfc_scalars(w0, w1, L);
	assert_int_equal(spake2p_prover_new(w0, w1, NULL, 0, NULL, 0, NULL, 0, &p), 0);
	assert_int_equal(spake2p_verifier_new(w0, L, NULL, 0, NULL, 0, NULL, 0, &v), 0);
	exchange(p, v, kp, kv);
	assert_memory_equal(kp, kv, 32);
	spake2p_free(p);
	spake2p_free(v);
}

static void
test_same_pin_twice_different_keys(void **state)
{
	uint8_t w0[32], w1[32], L[65], kp1[32], kv1[32], kp2[32], kv2[32];
	struct spake2p *p, *v;

	(void)state;
	rfc_scalars(w0, w1, L);
	p = new_prover(w0, w1);
	v = new_verifier(w0, L);
	exchange(p, v, kp1, kv1);
	spake2p_free(p);
	spake2p_free(v);
	p = new_prover(w0, w1);
	v = new_verifier(w0, L);
	exchange(p, v, kp2, kv2);
	spake2p_free(p);
	spake2p_free(v);
	assert_memory_equal(kp1, kv1, 32);
	assert_memory_equal(kp2, kv2, 32);
	assert_memory_not_equal(kp1, kp2, 32);
}

/*
 * Wrong PIN on the prover's side: the prover checks first (confirmV) and
 * refuses; it sends no confirmP, and the verifier, given anything in its
 * place, refuses too. Neither side has a key.
 */
static void
test_wrong_pin(void **state)
{
	uint8_t w0[32], w1[32], bw0[32], bw1[32], L[65];
	uint8_t shareP[65], shareV[65], confirmV[32], confirmP[32], key[32];
	struct spake2p *p, *v;

	(void)state;
	assert_int_equal(spake2p_derive("123456", test_addr, MAC_LEN, w0, w1), 0);
	assert_int_equal(spake2p_derive("123457", test_addr, MAC_LEN, bw0, bw1), 0);
	assert_int_equal(spake2p_make_L(w1, L), 0);
	v = new_verifier(w0, L);
	p = new_prover(bw0, bw1);

	assert_int_equal(spake2p_prover_start(p, shareP), 0);
	assert_int_equal(spake2p_verifier_respond(v, shareP, shareV, confirmV), 0);
	memset(confirmP, 0xa5, sizeof(confirmP));
	assert_int_equal(spake2p_prover_finish(p, shareV, confirmV, confirmP), ERR_AUTH);
	assert_true(is_filled(confirmP, 32, 0xa5));		/* nothing written */
	memset(key, 0xa5, sizeof(key));
	assert_int_equal(spake2p_shared_key(p, key), ERR_INVALID);
	assert_int_equal(spake2p_shared_key(v, key), ERR_INVALID);
	assert_true(is_filled(key, 32, 0xa5));
	/* the failed prover is finished for good */
	assert_int_equal(spake2p_prover_finish(p, shareV, confirmV, confirmP), ERR_INVALID);

	/* whatever arrives instead of a confirmP */
	assert_int_equal(spake2p_verifier_finish(v, confirmV), ERR_AUTH);
	assert_int_equal(spake2p_shared_key(v, key), ERR_INVALID);
	assert_int_equal(spake2p_verifier_finish(v, confirmV), ERR_INVALID);
	assert_true(is_filled(key, 32, 0xa5));
	spake2p_free(p);
	spake2p_free(v);
}

/* A prover with the right w0 but not w1 (say, w0 stolen from a verifier record) fails too. */
static void
test_w0_alone_not_enough(void **state)
{
	uint8_t w0[32], w1[32], L[65], shareP[65], shareV[65], confirmV[32], confirmP[32];
	struct spake2p *p, *v;

	(void)state;
	rfc_scalars(w0, w1, L);
	v = new_verifier(w0, L);
	w1[31] ^= 1;
	p = new_prover(w0, w1);
	assert_int_equal(spake2p_prover_start(p, shareP), 0);
	assert_int_equal(spake2p_verifier_respond(v, shareP, shareV, confirmV), 0);
	assert_int_equal(spake2p_prover_finish(p, shareV, confirmV, confirmP), ERR_AUTH);
	spake2p_free(p);
	spake2p_free(v);
}

/* The transcript binds the identities: a verifier expecting another name refuses. */
static void
test_identity_mismatch(void **state)
{
	uint8_t w0[32], w1[32], L[65], shareP[65], shareV[65], confirmV[32], confirmP[32];
	struct spake2p *p, *v = NULL;

	(void)state;
	rfc_scalars(w0, w1, L);
	p = new_prover(w0, w1);
	assert_int_equal(spake2p_verifier_new(w0, L, (const uint8_t *)CTX, strlen(CTX),
	    (const uint8_t *)IDP, strlen(IDP), (const uint8_t *)"00:1a:7d:da:71:14", 17, &v), 0);
	assert_int_equal(spake2p_prover_start(p, shareP), 0);
	assert_int_equal(spake2p_verifier_respond(v, shareP, shareV, confirmV), 0);
	assert_int_equal(spake2p_prover_finish(p, shareV, confirmV, confirmP), ERR_AUTH);
	spake2p_free(p);
	spake2p_free(v);
}

/* One flipped bit in either confirmation message is refused. */
static void
test_tampered_confirmations(void **state)
{
	uint8_t w0[32], w1[32], L[65], shareP[65], shareV[65], confirmV[32], confirmP[32], key[32];
	struct spake2p *p, *v;

	(void)state;
	rfc_scalars(w0, w1, L);

	p = new_prover(w0, w1);
	v = new_verifier(w0, L);
	assert_int_equal(spake2p_prover_start(p, shareP), 0);
	assert_int_equal(spake2p_verifier_respond(v, shareP, shareV, confirmV), 0);
	confirmV[0] ^= 0x80;
	assert_int_equal(spake2p_prover_finish(p, shareV, confirmV, confirmP), ERR_AUTH);
	assert_int_equal(spake2p_shared_key(p, key), ERR_INVALID);
	spake2p_free(p);
	spake2p_free(v);

	p = new_prover(w0, w1);
	v = new_verifier(w0, L);
	assert_int_equal(spake2p_prover_start(p, shareP), 0);
	assert_int_equal(spake2p_verifier_respond(v, shareP, shareV, confirmV), 0);
	assert_int_equal(spake2p_prover_finish(p, shareV, confirmV, confirmP), 0);
	confirmP[31] ^= 0x01;
	assert_int_equal(spake2p_verifier_finish(v, confirmP), ERR_AUTH);
	assert_int_equal(spake2p_shared_key(v, key), ERR_INVALID);
	/* the right value no longer helps: the run is over */
	confirmP[31] ^= 0x01;
	assert_int_equal(spake2p_verifier_finish(v, confirmP), ERR_INVALID);
	spake2p_free(p);
	spake2p_free(v);
}

/* Messages recorded from an earlier run do not work in a new one, on either side. */
static void
test_replay(void **state)
{
	uint8_t w0[32], w1[32], L[65], kp[32], kv[32], key[32];
	uint8_t shareP[65], shareV[65], confirmV[32], confirmP[32];
	uint8_t shareV2[65], confirmV2[32], shareP2[65], confirmP2[32];
	struct spake2p *p, *v;

	(void)state;
	rfc_scalars(w0, w1, L);
	p = new_prover(w0, w1);
	v = new_verifier(w0, L);
	assert_int_equal(spake2p_prover_start(p, shareP), 0);
	assert_int_equal(spake2p_verifier_respond(v, shareP, shareV, confirmV), 0);
	assert_int_equal(spake2p_prover_finish(p, shareV, confirmV, confirmP), 0);
	assert_int_equal(spake2p_verifier_finish(v, confirmP), 0);
	assert_int_equal(spake2p_shared_key(p, kp), 0);
	assert_int_equal(spake2p_shared_key(v, kv), 0);
	spake2p_free(p);
	spake2p_free(v);

	/* a recorded shareP and confirmP replayed to a new verifier */
	v = new_verifier(w0, L);
	assert_int_equal(spake2p_verifier_respond(v, shareP, shareV2, confirmV2), 0);
	assert_memory_not_equal(shareV2, shareV, 65);
	assert_int_equal(spake2p_verifier_finish(v, confirmP), ERR_AUTH);
	assert_int_equal(spake2p_shared_key(v, key), ERR_INVALID);
	spake2p_free(v);

	/* a recorded shareV and confirmV replayed to a new prover */
	p = new_prover(w0, w1);
	assert_int_equal(spake2p_prover_start(p, shareP2), 0);
	assert_memory_not_equal(shareP2, shareP, 65);
	assert_int_equal(spake2p_prover_finish(p, shareV, confirmV, confirmP2), ERR_AUTH);
	assert_int_equal(spake2p_shared_key(p, key), ERR_INVALID);
	spake2p_free(p);
}

/* ---------------------------------------------------------------------
 * Invalid points.
 */

#define NBAD 10

/* Encodings that must be refused wherever a point is received. */
static void
bad_points(uint8_t bad[NBAD][65])
{
	uint8_t good[65];

	unhex(RFC_SHARE_P, good, 65);
	memset(bad[0], 0, 65);			/* 0x00: the identity's encoding */
	memset(bad[1], 0, 65);			/* 0x04 (0, 0): not on the curve */
	bad[1][0] = 0x04;
	memcpy(bad[2], good, 65);		/* y changed: off the curve */
	bad[2][64] ^= 0x01;
	memcpy(bad[3], good, 65);		/* x changed: off the curve */
	bad[3][1] ^= 0x01;
	memcpy(bad[4], good, 65);		/* hybrid prefixes, even with a valid point */
	bad[4][0] = 0x06;
	memcpy(bad[5], good, 65);
	bad[5][0] = 0x07;
	memset(bad[6], 0, 65);			/* compressed (33 bytes): short */
	memcpy(bad[6], good, 33);
	bad[6][0] = (uint8_t)(0x02 | (good[64] & 1));
	memset(bad[7], 0, 65);
	memcpy(bad[7], good, 33);
	bad[7][0] = (uint8_t)(0x03 ^ (good[64] & 1));
	memset(bad[8], 0xff, 65);		/* coordinates above the field prime */
	bad[8][0] = 0x04;
	memcpy(bad[9], good, 65);		/* prefix missing: x, y shifted by one byte */
	memmove(bad[9], good + 1, 64);
	bad[9][64] = 0;
}

static void
test_invalid_points_verifier(void **state)
{
	uint8_t w0[32], w1[32], L[65], bad[NBAD][65], good[65];
	uint8_t shareV[65], confirmV[32];
	struct spake2p *v;

	(void)state;
	rfc_scalars(w0, w1, L);
	unhex(RFC_SHARE_P, good, 65);
	bad_points(bad);
	for (size_t i = 0; i < NBAD; i++) {
		v = new_verifier(w0, L);
		memset(shareV, 0x5a, sizeof(shareV));
		memset(confirmV, 0x5a, sizeof(confirmV));
		assert_int_equal(spake2p_verifier_respond(v, bad[i], shareV, confirmV), ERR_INVALID);
		assert_true(is_filled(shareV, 65, 0x5a));
		assert_true(is_filled(confirmV, 32, 0x5a));
		/* the run is over: a good share afterwards changes nothing */
		assert_int_equal(spake2p_verifier_respond(v, good, shareV, confirmV), ERR_INVALID);
		spake2p_free(v);
	}

	/* X = w0*M: X - w0*M is the identity */
	uint8_t x_id[65];
	point_times(RFC_M, w0, x_id);
	v = new_verifier(w0, L);
	assert_int_equal(spake2p_verifier_respond(v, x_id, shareV, confirmV), ERR_INVALID);
	spake2p_free(v);
}

static void
test_invalid_points_prover(void **state)
{
	uint8_t w0[32], w1[32], L[65], bad[NBAD][65], shareP[65], confirmV[32], confirmP[32];
	struct spake2p *p;

	(void)state;
	rfc_scalars(w0, w1, L);
	unhex(RFC_CONFIRM_V, confirmV, 32);
	bad_points(bad);
	for (size_t i = 0; i < NBAD; i++) {
		p = new_prover(w0, w1);
		assert_int_equal(spake2p_prover_start(p, shareP), 0);
		memset(confirmP, 0x5a, sizeof(confirmP));
		assert_int_equal(spake2p_prover_finish(p, bad[i], confirmV, confirmP), ERR_INVALID);
		assert_true(is_filled(confirmP, 32, 0x5a));
		spake2p_free(p);
	}

	/* Y = w0*N: Y - w0*N is the identity */
	uint8_t y_id[65];
	point_times(RFC_N, w0, y_id);
	p = new_prover(w0, w1);
	assert_int_equal(spake2p_prover_start(p, shareP), 0);
	assert_int_equal(spake2p_prover_finish(p, y_id, confirmV, confirmP), ERR_INVALID);
	spake2p_free(p);
}

static void
test_invalid_record(void **state)
{
	static int marker;
	uint8_t w0[32], w1[32], L[65], bad[NBAD][65];
	struct spake2p *v = (struct spake2p *)&marker;

	(void)state;
	rfc_scalars(w0, w1, L);
	bad_points(bad);
	for (size_t i = 0; i < NBAD; i++) {
		assert_int_equal(spake2p_verifier_new(w0, bad[i], NULL, 0, NULL, 0, NULL, 0, &v),
		    ERR_INVALID);
		assert_ptr_equal(v, (struct spake2p *)&marker);	/* untouched */
	}
}

/* ---------------------------------------------------------------------
 * Arguments and order of calls.
 */

static void
test_out_of_order(void **state)
{
	uint8_t w0[32], w1[32], L[65], x[32], kp[32], kv[32];
	uint8_t shareP[65], shareV[65], confirmV[32], confirmP[32], key[32];
	struct spake2p *p, *v;

	(void)state;
	rfc_scalars(w0, w1, L);
	unhex(RFC_X, x, 32);
	unhex(RFC_SHARE_V, shareV, 65);
	unhex(RFC_CONFIRM_V, confirmV, 32);
	unhex(RFC_CONFIRM_P, confirmP, 32);
	unhex(RFC_SHARE_P, shareP, 65);
	p = new_prover(w0, w1);
	v = new_verifier(w0, L);

	/* nothing before its time, nothing of the other role */
	assert_int_equal(spake2p_prover_finish(p, shareV, confirmV, confirmP), ERR_INVALID);
	assert_int_equal(spake2p_verifier_finish(v, confirmP), ERR_INVALID);
	assert_int_equal(spake2p_shared_key(p, key), ERR_INVALID);
	assert_int_equal(spake2p_shared_key(v, key), ERR_INVALID);
	assert_int_equal(spake2p_verifier_respond(p, shareP, shareV, confirmV), ERR_INVALID);
	assert_int_equal(spake2p_prover_start(v, shareP), ERR_INVALID);

	/* the refused calls left both runs as they were */
	assert_int_equal(spake2p_prover_start(p, shareP), 0);
	assert_int_equal(spake2p_prover_start(p, shareP), ERR_INVALID);
	assert_int_equal(spake2p_set_ephemeral(p, x), ERR_INVALID);
	assert_int_equal(spake2p_shared_key(p, key), ERR_INVALID);
	assert_int_equal(spake2p_verifier_respond(v, shareP, shareV, confirmV), 0);
	assert_int_equal(spake2p_verifier_respond(v, shareP, shareV, confirmV), ERR_INVALID);
	assert_int_equal(spake2p_set_ephemeral(v, x), ERR_INVALID);
	/* the verifier has K_shared now but does not give it out before confirmP */
	assert_int_equal(spake2p_shared_key(v, key), ERR_INVALID);
	assert_int_equal(spake2p_prover_finish(p, shareV, confirmV, confirmP), 0);
	assert_int_equal(spake2p_prover_finish(p, shareV, confirmV, confirmP), ERR_INVALID);
	assert_int_equal(spake2p_verifier_finish(v, confirmP), 0);
	assert_int_equal(spake2p_verifier_finish(v, confirmP), ERR_INVALID);
	assert_int_equal(spake2p_shared_key(p, kp), 0);
	assert_int_equal(spake2p_shared_key(v, kv), 0);
	assert_memory_equal(kp, kv, 32);
	spake2p_free(p);
	spake2p_free(v);
}

static void
test_null_arguments(void **state)
{
	uint8_t w0[32], w1[32], L[65], buf[65], mac[32];
	struct spake2p *p, *v, *out = NULL;

	(void)state;
	rfc_scalars(w0, w1, L);
	spake2p_free(NULL);
	assert_int_equal(spake2p_prover_new(NULL, w1, NULL, 0, NULL, 0, NULL, 0, &out), ERR_INVALID);
	assert_int_equal(spake2p_prover_new(w0, NULL, NULL, 0, NULL, 0, NULL, 0, &out), ERR_INVALID);
	assert_int_equal(spake2p_prover_new(w0, w1, NULL, 0, NULL, 0, NULL, 0, NULL), ERR_INVALID);
	assert_int_equal(spake2p_verifier_new(w0, NULL, NULL, 0, NULL, 0, NULL, 0, &out), ERR_INVALID);
	assert_int_equal(spake2p_verifier_new(w0, L, NULL, 0, NULL, 0, NULL, 0, NULL), ERR_INVALID);
	assert_int_equal(spake2p_prover_new(w0, w1, NULL, 3, NULL, 0, NULL, 0, &out), ERR_INVALID);
	assert_int_equal(spake2p_prover_new(w0, w1, NULL, 0, NULL, 1, NULL, 0, &out), ERR_INVALID);
	assert_int_equal(spake2p_verifier_new(w0, L, NULL, 0, NULL, 0, NULL, 2, &out), ERR_INVALID);
	assert_null(out);
	assert_int_equal(spake2p_prover_start(NULL, buf), ERR_INVALID);
	assert_int_equal(spake2p_verifier_respond(NULL, buf, buf, mac), ERR_INVALID);
	assert_int_equal(spake2p_prover_finish(NULL, buf, mac, mac), ERR_INVALID);
	assert_int_equal(spake2p_verifier_finish(NULL, mac), ERR_INVALID);
	assert_int_equal(spake2p_shared_key(NULL, mac), ERR_INVALID);
	assert_int_equal(spake2p_set_ephemeral(NULL, w0), ERR_INVALID);
	assert_int_equal(spake2p_make_L(NULL, L), ERR_INVALID);

	/* NULL outputs refuse without ending the run */
	p = new_prover(w0, w1);
	v = new_verifier(w0, L);
	assert_int_equal(spake2p_set_ephemeral(p, NULL), ERR_INVALID);
	assert_int_equal(spake2p_prover_start(p, NULL), ERR_INVALID);
	assert_int_equal(spake2p_prover_start(p, buf), 0);
	assert_int_equal(spake2p_verifier_respond(v, buf, NULL, mac), ERR_INVALID);
	spake2p_free(p);
	spake2p_free(v);
}

static void
test_limits(void **state)
{
	uint8_t w0[32], w1[32], L[65], big[SPAKE2P_INFO_MAX + 1], kp[32], kv[32];
	struct spake2p *p = NULL, *v = NULL;

	(void)state;
	rfc_scalars(w0, w1, L);
	memset(big, 'a', sizeof(big));
	assert_int_equal(spake2p_prover_new(w0, w1, big, sizeof(big), NULL, 0, NULL, 0, &p), ERR_TOO_BIG);
	assert_int_equal(spake2p_verifier_new(w0, L, NULL, 0, big, sizeof(big), NULL, 0, &v), ERR_TOO_BIG);
	assert_int_equal(spake2p_verifier_new(w0, L, NULL, 0, NULL, 0, big, sizeof(big), &v), ERR_TOO_BIG);
	assert_null(p);
	assert_null(v);
	/* exactly at the limit is fine */
	assert_int_equal(spake2p_prover_new(w0, w1, big, SPAKE2P_INFO_MAX, big, SPAKE2P_INFO_MAX,
	    big, SPAKE2P_INFO_MAX, &p), 0);
	assert_int_equal(spake2p_verifier_new(w0, L, big, SPAKE2P_INFO_MAX, big, SPAKE2P_INFO_MAX,
	    big, SPAKE2P_INFO_MAX, &v), 0);
	exchange(p, v, kp, kv);
	assert_memory_equal(kp, kv, 32);
	spake2p_free(p);
	spake2p_free(v);
}

/* Scalars must be in [1, p-1]. */
static void
test_scalar_range(void **state)
{
	uint8_t w0[32], w1[32], L[65], zero[32] = { 0 }, order[32], ones[32], top[32], out[65];
	struct spake2p *s = NULL;

	(void)state;
	rfc_scalars(w0, w1, L);
	unhex(P256_ORDER, order, 32);
	memset(ones, 0xff, sizeof(ones));
	memcpy(top, order, 32);
	top[31] -= 1;				/* p - 1 */
	const uint8_t *bad[] = { zero, order, ones };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(spake2p_make_L(bad[i], out), ERR_INVALID);
		assert_int_equal(spake2p_prover_new(bad[i], w1, NULL, 0, NULL, 0, NULL, 0, &s), ERR_INVALID);
		assert_int_equal(spake2p_prover_new(w0, bad[i], NULL, 0, NULL, 0, NULL, 0, &s), ERR_INVALID);
		assert_int_equal(spake2p_verifier_new(bad[i], L, NULL, 0, NULL, 0, NULL, 0, &s), ERR_INVALID);
		assert_null(s);
	}
	assert_int_equal(spake2p_make_L(top, out), 0);
	assert_int_equal(spake2p_prover_new(top, top, NULL, 0, NULL, 0, NULL, 0, &s), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(spake2p_set_ephemeral(s, bad[i]), ERR_INVALID);
	/* a refused ephemeral leaves the run usable */
	assert_int_equal(spake2p_set_ephemeral(s, top), 0);
	assert_int_equal(spake2p_prover_start(s, out), 0);
	spake2p_free(s);
}

/* ---------------------------------------------------------------------
 * Registration.
 */

/*
 * spake2p_derive("123456", 00:1a:7d:da:71:13): pins the documented format
 * (scrypt N=1024 r=8 p=1 over len(pin) || pin || len(nil) || len(nil),
 * salt = address || "provd-spake2p-v2", 40-byte halves mod p). Computed once
 * with Python's hashlib.scrypt; changing it breaks every stored record.
 */
#define DERIVE_W0 "498dcea19896492dc1b95cd4671e02d578ce2141f4d12451e5dfa6c39a95408a"
#define DERIVE_W1 "d6d39727bfe8929a89ecdf84d228b07936491d71b5d358eb14d1629f9dd4908e"

static void
test_derive(void **state)
{
	uint8_t w0[32], w1[32], a0[32], a1[32], b0[32], b1[32], c0[32], c1[32];
	uint8_t addr2[MAC_LEN], big[SPAKE2P_SALT_MAX + 1];
	char longpin[SPAKE2P_PIN_MAX + 2];

	(void)state;
	assert_int_equal(spake2p_derive("123456", test_addr, MAC_LEN, w0, w1), 0);
	assert_hex(w0, 32, DERIVE_W0);
	assert_hex(w1, 32, DERIVE_W1);
	assert_int_equal(spake2p_derive("123456", test_addr, MAC_LEN, a0, a1), 0);
	assert_memory_equal(w0, a0, 32);
	assert_memory_equal(w1, a1, 32);
	assert_memory_not_equal(w0, w1, 32);

	memcpy(addr2, test_addr, MAC_LEN);
	addr2[5] ^= 1;
	assert_int_equal(spake2p_derive("123456", addr2, MAC_LEN, b0, b1), 0);
	assert_memory_not_equal(w0, b0, 32);
	assert_memory_not_equal(w1, b1, 32);
	assert_int_equal(spake2p_derive("123465", test_addr, MAC_LEN, c0, c1), 0);
	assert_memory_not_equal(w0, c0, 32);
	assert_memory_not_equal(w1, c1, 32);

	/* refused input leaves the outputs alone */
	memset(a0, 0x5a, 32);
	memset(a1, 0x5a, 32);
	memset(longpin, '1', sizeof(longpin) - 1);
	longpin[sizeof(longpin) - 1] = '\0';
	memset(big, 1, sizeof(big));
	assert_int_equal(spake2p_derive(NULL, test_addr, MAC_LEN, a0, a1), ERR_INVALID);
	assert_int_equal(spake2p_derive("", test_addr, MAC_LEN, a0, a1), ERR_INVALID);
	assert_int_equal(spake2p_derive("123456", NULL, MAC_LEN, a0, a1), ERR_INVALID);
	assert_int_equal(spake2p_derive("123456", test_addr, 0, a0, a1), ERR_INVALID);
	assert_int_equal(spake2p_derive("123456", test_addr, MAC_LEN, NULL, a1), ERR_INVALID);
	assert_int_equal(spake2p_derive("123456", test_addr, MAC_LEN, a0, NULL), ERR_INVALID);
	assert_int_equal(spake2p_derive(longpin, test_addr, MAC_LEN, a0, a1), ERR_TOO_BIG);
	assert_int_equal(spake2p_derive("123456", big, sizeof(big), a0, a1), ERR_TOO_BIG);
	assert_true(is_filled(a0, 32, 0x5a));
	assert_true(is_filled(a1, 32, 0x5a));
}

/*
 * L from spake2p_make_L is the record a verifier needs: with the matching
 * (w0, w1) on the prover's side both agree; with L from another PIN's w1 the
 * prover refuses.
 */
static void
test_make_L_with_protocol(void **state)
{
	uint8_t w0[32], w1[32], o0[32], o1[32], L[65], L2[65], Lo[65], kp[32], kv[32];
	uint8_t shareP[65], shareV[65], confirmV[32], confirmP[32];
	struct spake2p *p, *v;

	(void)state;
	unhex(DERIVE_W0, w0, 32);
	unhex(DERIVE_W1, w1, 32);
	rfc_scalars(o0, o1, Lo);
	assert_int_equal(spake2p_make_L(w1, L), 0);
	assert_int_equal(L[0], 0x04);
	assert_int_equal(spake2p_make_L(w1, L2), 0);
	assert_memory_equal(L, L2, 65);
	assert_memory_not_equal(L, Lo, 65);

	p = new_prover(w0, w1);
	v = new_verifier(w0, L);
	exchange(p, v, kp, kv);
	assert_memory_equal(kp, kv, 32);
	spake2p_free(p);
	spake2p_free(v);

	assert_int_equal(spake2p_make_L(o1, L2), 0);
	p = new_prover(w0, w1);
	v = new_verifier(w0, L2);
	assert_int_equal(spake2p_prover_start(p, shareP), 0);
	assert_int_equal(spake2p_verifier_respond(v, shareP, shareV, confirmV), 0);
	assert_int_equal(spake2p_prover_finish(p, shareV, confirmV, confirmP), ERR_AUTH);
	spake2p_free(p);
	spake2p_free(v);
}

/* ---------------------------------------------------------------------
 * Every test must give back all it took from the secure heap.
 */

static int
secure_setup(void **state)
{
	(void)state;
	secure_used_before = CRYPTO_secure_used();
	return 0;
}

static int
secure_teardown(void **state)
{
	(void)state;
	if (CRYPTO_secure_used() != secure_used_before) {
		print_error("secure heap: %zu bytes in use, %zu before\n", CRYPTO_secure_used(),
		    secure_used_before);
		return -1;
	}
	return 0;
}

static int
group_setup(void **state)
{
	uint8_t b[16];

	(void)state;
	/* as provd does; the DRBGs it keeps there are set up before the first measurement */
	if (CRYPTO_secure_malloc_init(1 << 16, 32) != 1)
		return -1;
	if (RAND_bytes(b, sizeof(b)) != 1 || RAND_priv_bytes(b, sizeof(b)) != 1)
		return -1;
	return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, secure_setup, secure_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_rfc9383_run),
		T(test_rfc9383_each_side),
		T(test_rfc9383_transcript),
		T(test_random_run),
		T(test_empty_context_and_ids),
		T(test_same_pin_twice_different_keys),
		T(test_wrong_pin),
		T(test_w0_alone_not_enough),
		T(test_identity_mismatch),
		T(test_tampered_confirmations),
		T(test_replay),
		T(test_invalid_points_verifier),
		T(test_invalid_points_prover),
		T(test_invalid_record),
		T(test_out_of_order),
		T(test_null_arguments),
		T(test_limits),
		T(test_scalar_range),
		T(test_derive),
		T(test_make_L_with_protocol),
	};

	log_init("test_spake2p", LOG_LVL_ERROR, 0, 0);
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
