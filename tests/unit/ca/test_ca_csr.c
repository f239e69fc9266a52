/*
 * test_ca_csr.c: CSR checks before signing — accepted keys, refused keys,
 * broken signatures, strict PEM and DER parsing, size limits, EC point
 * forms, signature algorithms that do not fit the key, many threads at once —
 * and the uniqueness of fresh serial numbers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <pthread.h>
#include <cmocka.h>
#include <openssl/core_names.h>

#include "ca/ca.h"
#include "ca_test.h"

static const struct ca_policy pol_ec = { .allow_rsa = 0, .max_csr = 8192 };
static const struct ca_policy pol_rsa = { .allow_rsa = 1, .max_csr = 8192 };

/* Runs ca_csr_check and, on success, checks the SPKI is k's public key. */
static int
check(const uint8_t *in, size_t len, const struct ca_policy *pol, EVP_PKEY *k,
    char *why, size_t whylen)
{
	uint8_t *spki = (uint8_t *)"x";
	size_t spkilen = 99;
	int r = ca_csr_check(in, len, pol, &spki, &spkilen, why, whylen);

	if (r != 0) {
		assert_null(spki);
		assert_int_equal(spkilen, 0);
		return r;
	}
	assert_non_null(spki);
	const unsigned char *p = spki;
	EVP_PKEY *got = d2i_PUBKEY(NULL, &p, (long)spkilen);
	assert_non_null(got);
	assert_ptr_equal(p, spki + spkilen);
	if (k != NULL)
		assert_int_equal(EVP_PKEY_eq(got, k), 1);
	EVP_PKEY_free(got);
	free(spki);
	return 0;
}

static void
expect_key(const char *type, const char *arg, const EVP_MD *md,
    const struct ca_policy *pol, int want, const char *why_part)
{
	EVP_PKEY *k = key_gen(type, arg);
	uint8_t *der;
	size_t len;
	char why[200] = "";

	csr_make(k, md, &der, &len);
	int r = check(der, len, pol, k, why, sizeof(why));
	if (r != want)
		fail_msg("%s %s: got %d (%s), want %d", type, arg != NULL ? arg : "", r, why, want);
	if (why_part != NULL && strstr(why, why_part) == NULL)
		fail_msg("%s %s: reason \"%s\" lacks \"%s\"", type, arg != NULL ? arg : "", why,
		    why_part);
	free(der);
	EVP_PKEY_free(k);
}

static void
test_accepted_keys(void **state)
{
	(void)state;
	expect_key("EC", "P-256", EVP_sha256(), &pol_ec, 0, NULL);
	expect_key("EC", "P-384", EVP_sha384(), &pol_ec, 0, NULL);
	expect_key("ED25519", NULL, NULL, &pol_ec, 0, NULL);
	expect_key("RSA", "2048", EVP_sha256(), &pol_rsa, 0, NULL);
}

static void
test_refused_keys(void **state)
{
	(void)state;
	expect_key("RSA", "2048", EVP_sha256(), &pol_ec, ERR_KEY_POLICY, "RSA keys are not allowed");
	expect_key("RSA", "1024", EVP_sha256(), &pol_ec, ERR_KEY_POLICY, "not allowed");
	expect_key("RSA", "1024", EVP_sha256(), &pol_rsa, ERR_KEY_POLICY, "1024 bits is too small");
	expect_key("EC", "secp256k1", EVP_sha256(), &pol_ec, ERR_KEY_POLICY, "secp256k1");
	expect_key("EC", "P-224", EVP_sha256(), &pol_rsa, ERR_KEY_POLICY, "not allowed");
	expect_key("EC", "P-521", EVP_sha512(), &pol_rsa, ERR_KEY_POLICY, "not allowed");
	expect_key("ED448", NULL, NULL, &pol_rsa, ERR_KEY_POLICY, "not allowed");
}

static void
test_weak_hash_refused(void **state)
{
	(void)state;
	expect_key("EC", "P-256", EVP_sha1(), &pol_ec, ERR_BAD_CSR, "signature algorithm");
}

static void
test_bad_signature(void **state)
{
	static const char *types[][2] = { { "EC", "P-256" }, { "ED25519", NULL } };
	(void)state;

	for (size_t i = 0; i < 2; i++) {
		EVP_PKEY *k = key_gen(types[i][0], types[i][1]);
		uint8_t *der;
		size_t len;
		char why[200];

		csr_make(k, i == 0 ? EVP_sha256() : NULL, &der, &len);
		assert_int_equal(check(der, len, &pol_ec, k, why, sizeof(why)), 0);
		der[len - 1] ^= 0x01;	/* the signature is the last field */
		assert_int_equal(check(der, len, &pol_ec, k, why, sizeof(why)), ERR_BAD_CSR);
		assert_non_null(strstr(why, "signature"));
		free(der);
		EVP_PKEY_free(k);
	}
}

/* The subject public key of a P-256 CSR swapped for another key's: the
 * signature no longer matches (proof of possession fails). */
static void
test_swapped_key(void **state)
{
	EVP_PKEY *k1 = key_gen("EC", "P-256"), *k2 = key_gen("EC", "P-256");
	uint8_t *d1, *s1, *s2;
	size_t l1, sl1, sl2;
	char why[200];
	uint8_t *pos;
	(void)state;

	csr_make(k1, EVP_sha256(), &d1, &l1);
	spki_of(k1, &s1, &sl1);
	spki_of(k2, &s2, &sl2);
	assert_int_equal(sl1, sl2);
	pos = memmem(d1, l1, s1, sl1);
	assert_non_null(pos);
	memcpy(pos, s2, sl2);
	assert_int_equal(check(d1, l1, &pol_ec, NULL, why, sizeof(why)), ERR_BAD_CSR);
	free(d1);
	free(s1);
	free(s2);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
}

/*
 * A DER CSR signed by k with md whose key bits are replaced by bits before
 * signing (keynid with curve nid, NID_undef for none, as the algorithm), so
 * the signature covers them; signid, when not NID_undef, then relabels the
 * signature algorithm, the signature itself unchanged.
 */
static void
csr_craft(EVP_PKEY *k, const EVP_MD *md, int keynid, int curve, const uint8_t *bits,
    size_t bitslen, int signid, uint8_t **der, size_t *len)
{
	X509_REQ *req = X509_REQ_new();
	unsigned char *p, *penc;
	int n;

	assert_non_null(req);
	assert_true(X509_REQ_set_version(req, X509_REQ_VERSION_1));
	assert_true(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
	    MBSTRING_ASC, (const unsigned char *)"device", -1, -1, 0));
	assert_true(X509_REQ_set_pubkey(req, k));
	if (bits != NULL) {
		penc = OPENSSL_malloc(bitslen + 1);	/* + 1: bitslen may be 0 */
		assert_non_null(penc);
		memcpy(penc, bits, bitslen);
		assert_true(X509_PUBKEY_set0_param(X509_REQ_get_X509_PUBKEY(req),
		    OBJ_nid2obj(keynid), curve != NID_undef ? V_ASN1_OBJECT : V_ASN1_UNDEF,
		    curve != NID_undef ? OBJ_nid2obj(curve) : NULL, penc, (int)bitslen));
	}
	assert_true(X509_REQ_sign(req, k, md) > 0);
	if (signid != NID_undef) {
		X509_ALGOR *alg = X509_ALGOR_new();

		assert_non_null(alg);
		assert_true(X509_ALGOR_set0(alg, OBJ_nid2obj(signid), V_ASN1_UNDEF, NULL));
		assert_true(X509_REQ_set1_signature_algo(req, alg));
		X509_ALGOR_free(alg);
	}
	n = i2d_X509_REQ(req, NULL);
	assert_true(n > 0);
	*der = malloc((size_t)n);
	assert_non_null(*der);
	p = *der;
	assert_int_equal(i2d_X509_REQ(req, &p), n);
	*len = (size_t)n;
	X509_REQ_free(req);
}

/* Expects ca_csr_check(der) to return want with a reason containing part. */
static void
expect_der(uint8_t *der, size_t len, const struct ca_policy *pol, int want, const char *part)
{
	char why[200] = "";
	int r = check(der, len, pol, NULL, why, sizeof(why));

	if (r != want)
		fail_msg("got %d (%s), want %d (%s)", r, why, want, part);
	if (strstr(why, part) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", why, part);
	assert_int_equal(ERR_peek_error(), 0);
	free(der);
}

/* Compressed EC points pass, and the SPKI comes back as the CSR had it. */
static void
test_ec_point_forms(void **state)
{
	static const char *curves[] = { "P-256", "P-384" };
	(void)state;

	for (size_t i = 0; i < 2; i++) {
		EVP_PKEY *k = key_gen("EC", curves[i]);
		uint8_t *der, *want, *spki;
		size_t len, wantlen, spkilen;
		char why[200];

		assert_true(EVP_PKEY_set_utf8_string_param(k,
		    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"));
		csr_make(k, i == 0 ? EVP_sha256() : EVP_sha384(), &der, &len);
		spki_of(k, &want, &wantlen);
		assert_int_equal(wantlen, i == 0 ? 26 + 33 : 23 + 49);	/* compressed */
		assert_non_null(memmem(der, len, want, wantlen));
		assert_int_equal(ca_csr_check(der, len, &pol_ec, &spki, &spkilen, why,
		    sizeof(why)), 0);
		assert_int_equal(spkilen, wantlen);
		assert_memory_equal(spki, want, wantlen);
		assert_int_equal(check(der, len, &pol_ec, k, why, sizeof(why)), 0);
		free(spki);
		free(want);
		free(der);
		EVP_PKEY_free(k);
	}
}

/* Points off the curve, of the wrong curve, hybrid or at infinity: refused
 * with the reasons they always had, though the CSR is signed by the key. */
static void
test_ec_bad_points(void **state)
{
	EVP_PKEY *k = key_gen("EC", "P-256");
	uint8_t pt[65], bad[65], *der;
	size_t ptlen = 0, len;
	(void)state;

	assert_true(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
	    pt, sizeof(pt), &ptlen));
	assert_int_equal(ptlen, 65);

	/* the unmodified point goes through csr_craft as well */
	csr_craft(k, EVP_sha256(), NID_X9_62_id_ecPublicKey, NID_X9_62_prime256v1, pt, 65,
	    NID_undef, &der, &len);
	expect_der(der, len, &pol_ec, 0, "ok");

	memcpy(bad, pt, 65);
	bad[64] ^= 0x01;	/* y off by one: not on the curve */
	csr_craft(k, EVP_sha256(), NID_X9_62_id_ecPublicKey, NID_X9_62_prime256v1, bad, 65,
	    NID_undef, &der, &len);
	expect_der(der, len, &pol_ec, ERR_KEY_POLICY, "cannot be decoded");

	bad[0] = 0x03;		/* compressed, x not on the curve */
	bad[1] ^= 0x5a;
	for (int tries = 0; tries < 64; tries++, bad[32]++) {
		EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
		EC_POINT *q = EC_POINT_new(g);
		int on = EC_POINT_oct2point(g, q, bad, 33, NULL);

		EC_POINT_free(q);
		EC_GROUP_free(g);
		ERR_clear_error();
		if (!on)
			break;
	}
	csr_craft(k, EVP_sha256(), NID_X9_62_id_ecPublicKey, NID_X9_62_prime256v1, bad, 33,
	    NID_undef, &der, &len);
	expect_der(der, len, &pol_ec, ERR_KEY_POLICY, "cannot be decoded");

	/* a P-256 point named as P-384 */
	csr_craft(k, EVP_sha256(), NID_X9_62_id_ecPublicKey, NID_secp384r1, pt, 65,
	    NID_undef, &der, &len);
	expect_der(der, len, &pol_ec, ERR_KEY_POLICY, "cannot be decoded");

	memcpy(bad, pt, 65);
	bad[0] = (uint8_t)(0x06 | (pt[64] & 1));	/* hybrid, valid */
	csr_craft(k, EVP_sha256(), NID_X9_62_id_ecPublicKey, NID_X9_62_prime256v1, bad, 65,
	    NID_undef, &der, &len);
	expect_der(der, len, &pol_ec, ERR_KEY_POLICY, "compressed or uncompressed");

	bad[0] = 0x00;		/* the point at infinity */
	csr_craft(k, EVP_sha256(), NID_X9_62_id_ecPublicKey, NID_X9_62_prime256v1, bad, 1,
	    NID_undef, &der, &len);
	expect_der(der, len, &pol_ec, ERR_KEY_POLICY, "compressed or uncompressed");

	csr_craft(k, EVP_sha256(), NID_X9_62_id_ecPublicKey, NID_X9_62_prime256v1, pt, 64,
	    NID_undef, &der, &len);
	expect_der(der, len, &pol_ec, ERR_KEY_POLICY, "cannot be decoded");

	csr_craft(k, EVP_sha256(), NID_X9_62_id_ecPublicKey, NID_X9_62_prime256v1, pt, 0,
	    NID_undef, &der, &len);
	expect_der(der, len, &pol_ec, ERR_KEY_POLICY, "cannot be decoded");
	EVP_PKEY_free(k);
}

/* Ed25519 keys of the wrong length, and with parameters. */
static void
test_ed25519_bad_keys(void **state)
{
	EVP_PKEY *k = key_gen("ED25519", NULL);
	uint8_t pub[33] = { 0 }, *der;
	size_t publen = 32, len;
	(void)state;

	assert_true(EVP_PKEY_get_raw_public_key(k, pub, &publen));
	csr_craft(k, NULL, NID_ED25519, NID_undef, pub, 32, NID_undef, &der, &len);
	expect_der(der, len, &pol_ec, 0, "ok");
	csr_craft(k, NULL, NID_ED25519, NID_undef, pub, 31, NID_undef, &der, &len);
	expect_der(der, len, &pol_ec, ERR_KEY_POLICY, "cannot be decoded");
	csr_craft(k, NULL, NID_ED25519, NID_undef, pub, 33, NID_undef, &der, &len);
	expect_der(der, len, &pol_ec, ERR_KEY_POLICY, "cannot be decoded");
	/* parameters present (an OID where there should be none) */
	csr_craft(k, NULL, NID_ED25519, NID_X9_62_prime256v1, pub, 32, NID_undef, &der, &len);
	expect_der(der, len, &pol_ec, ERR_KEY_POLICY, "cannot be decoded");
	EVP_PKEY_free(k);
}

/* SHA-2 digests other than the curve's own are fine (RFC 5758). */
static void
test_ecdsa_digests(void **state)
{
	(void)state;
	expect_key("EC", "P-256", EVP_sha384(), &pol_ec, 0, NULL);
	expect_key("EC", "P-256", EVP_sha512(), &pol_ec, 0, NULL);
	expect_key("EC", "P-384", EVP_sha256(), &pol_ec, 0, NULL);
	expect_key("EC", "P-384", EVP_sha512(), &pol_ec, 0, NULL);
	expect_key("EC", "P-256", EVP_sha224(), &pol_ec, ERR_BAD_CSR, "signature algorithm");
}

/* A signature algorithm that does not belong to the key, or names another
 * digest than the one signed with: the signature does not verify. */
static void
test_sigalg_mismatch(void **state)
{
	EVP_PKEY *ec = key_gen("EC", "P-256"), *ed = key_gen("ED25519", NULL);
	EVP_PKEY *rsa = key_gen("RSA", "2048");
	uint8_t *der;
	size_t len;
	(void)state;

	csr_craft(ec, EVP_sha256(), 0, 0, NULL, 0, NID_ED25519, &der, &len);
	expect_der(der, len, &pol_ec, ERR_BAD_CSR, "does not verify");
	csr_craft(ec, EVP_sha256(), 0, 0, NULL, 0, NID_sha256WithRSAEncryption, &der, &len);
	expect_der(der, len, &pol_ec, ERR_BAD_CSR, "does not verify");
	csr_craft(ec, EVP_sha256(), 0, 0, NULL, 0, NID_ecdsa_with_SHA384, &der, &len);
	expect_der(der, len, &pol_ec, ERR_BAD_CSR, "does not verify");
	csr_craft(ed, NULL, 0, 0, NULL, 0, NID_ecdsa_with_SHA256, &der, &len);
	expect_der(der, len, &pol_ec, ERR_BAD_CSR, "does not verify");
	csr_craft(rsa, EVP_sha256(), 0, 0, NULL, 0, NID_ecdsa_with_SHA256, &der, &len);
	expect_der(der, len, &pol_rsa, ERR_BAD_CSR, "does not verify");
	csr_craft(rsa, EVP_sha256(), 0, 0, NULL, 0, NID_sha384WithRSAEncryption, &der, &len);
	expect_der(der, len, &pol_rsa, ERR_BAD_CSR, "does not verify");
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(rsa);
}

/* A signature BIT STRING with unused bits is refused even when the bits
 * left out are zero, so the value itself still verifies. */
static void
test_signature_unused_bits(void **state)
{
	EVP_PKEY *k = key_gen("EC", "P-256");
	const ASN1_BIT_STRING *sig;
	const unsigned char *p;
	X509_REQ *req;
	uint8_t *der = NULL;
	size_t len = 0, siglen;
	char why[200];
	(void)state;

	for (;;) {
		csr_make(k, EVP_sha256(), &der, &len);
		if ((der[len - 1] & 0x01) == 0)
			break;
		free(der);
	}
	p = der;
	req = d2i_X509_REQ(NULL, &p, (long)len);
	assert_non_null(req);
	X509_REQ_get0_signature(req, &sig, NULL);
	siglen = (size_t)ASN1_STRING_length(sig);
	X509_REQ_free(req);
	assert_int_equal(check(der, len, &pol_ec, k, why, sizeof(why)), 0);
	assert_int_equal(der[len - siglen - 1], 0x00);	/* the unused-bits octet */
	der[len - siglen - 1] = 0x01;
	assert_int_equal(check(der, len, &pol_ec, k, why, sizeof(why)), ERR_BAD_CSR);
	assert_non_null(strstr(why, "does not verify"));
	free(der);
	EVP_PKEY_free(k);
}

/* Many threads checking CSRs at once, from the very first check of the
 * process (the one-time set-up races): every answer right. */
enum { NTHREADS = 8, NROUNDS = 12, NCASES = 5 };

struct thread_case {
	uint8_t *der;
	size_t len;
	const struct ca_policy *pol;
	int want;
};

struct thread_arg {
	const struct thread_case *cases;
	pthread_barrier_t *start;
	int wrong;
};

static void *
thread_main(void *p)
{
	struct thread_arg *a = p;

	pthread_barrier_wait(a->start);
	for (int round = 0; round < NROUNDS; round++) {
		for (int i = 0; i < NCASES; i++) {
			const struct thread_case *c = &a->cases[(i + round) % NCASES];
			uint8_t *spki = NULL;
			size_t spkilen = 0;
			char why[200];

			if (ca_csr_check(c->der, c->len, c->pol, &spki, &spkilen, why,
			    sizeof(why)) != c->want || (c->want == 0) != (spki != NULL))
				a->wrong++;
			free(spki);
		}
	}
	return NULL;
}

static void
test_threads(void **state)
{
	static const char *types[][2] = { { "EC", "P-256" }, { "EC", "P-384" },
	    { "ED25519", NULL }, { "RSA", "2048" } };
	struct thread_case cases[NCASES];
	struct thread_arg args[NTHREADS];
	pthread_t tid[NTHREADS];
	pthread_barrier_t start;
	EVP_PKEY *keys[4];
	(void)state;

	for (int i = 0; i < 4; i++) {
		keys[i] = key_gen(types[i][0], types[i][1]);
		csr_make(keys[i], i == 2 ? NULL : i == 1 ? EVP_sha384() : EVP_sha256(),
		    &cases[i].der, &cases[i].len);
		cases[i].pol = i == 3 ? &pol_rsa : &pol_ec;
		cases[i].want = 0;
	}
	/* a broken signature */
	csr_make(keys[0], EVP_sha256(), &cases[4].der, &cases[4].len);
	cases[4].der[cases[4].len - 1] ^= 0x01;
	cases[4].pol = &pol_ec;
	cases[4].want = ERR_BAD_CSR;

	assert_int_equal(pthread_barrier_init(&start, NULL, NTHREADS), 0);
	for (int t = 0; t < NTHREADS; t++) {
		args[t] = (struct thread_arg){ .cases = cases, .start = &start };
		assert_int_equal(pthread_create(&tid[t], NULL, thread_main, &args[t]), 0);
	}
	for (int t = 0; t < NTHREADS; t++) {
		assert_int_equal(pthread_join(tid[t], NULL), 0);
		assert_int_equal(args[t].wrong, 0);
	}
	pthread_barrier_destroy(&start);
	for (int i = 0; i < NCASES; i++)
		free(cases[i].der);
	for (int i = 0; i < 4; i++)
		EVP_PKEY_free(keys[i]);
}

static char *
pem_of(const uint8_t *der, size_t len)
{
	char *pem = NULL;

	assert_int_equal(ca_der_to_pem("CERTIFICATE REQUEST", der, len, &pem), 0);
	return pem;
}

static void
test_pem_strict(void **state)
{
	EVP_PKEY *k = key_gen("EC", "P-256");
	uint8_t *der;
	size_t len;
	char *pem, buf[8192], why[200];
	(void)state;

	csr_make(k, EVP_sha256(), &der, &len);
	pem = pem_of(der, len);

	/* plain, and with whitespace around */
	assert_int_equal(check((uint8_t *)pem, strlen(pem), &pol_ec, k, why, sizeof(why)), 0);
	snprintf(buf, sizeof(buf), " \r\n\t%s\r\n\n  ", pem);
	assert_int_equal(check((uint8_t *)buf, strlen(buf), &pol_ec, k, why, sizeof(why)), 0);

	/* trailing garbage */
	snprintf(buf, sizeof(buf), "%sgarbage\n", pem);
	assert_int_equal(check((uint8_t *)buf, strlen(buf), &pol_ec, k, why, sizeof(why)),
	    ERR_BAD_CSR);
	assert_non_null(strstr(why, "after the PEM block"));

	/* text before the block */
	snprintf(buf, sizeof(buf), "hello\n%s", pem);
	assert_int_equal(check((uint8_t *)buf, strlen(buf), &pol_ec, k, why, sizeof(why)),
	    ERR_BAD_CSR);

	/* two blocks */
	snprintf(buf, sizeof(buf), "%s%s", pem, pem);
	assert_int_equal(check((uint8_t *)buf, strlen(buf), &pol_ec, k, why, sizeof(why)),
	    ERR_BAD_CSR);

	/* wrong label */
	char *other = NULL;
	assert_int_equal(ca_der_to_pem("CERTIFICATE", der, len, &other), 0);
	assert_int_equal(check((uint8_t *)other, strlen(other), &pol_ec, k, why, sizeof(why)),
	    ERR_BAD_CSR);
	free(other);

	/* a NUL byte inside */
	memcpy(buf, pem, strlen(pem) + 1);
	buf[40] = '\0';
	assert_int_equal(check((uint8_t *)buf, strlen(pem), &pol_ec, k, why, sizeof(why)),
	    ERR_BAD_CSR);

	/* corrupted base64 */
	memcpy(buf, pem, strlen(pem) + 1);
	buf[60] = '*';
	assert_int_equal(check((uint8_t *)buf, strlen(pem), &pol_ec, k, why, sizeof(why)),
	    ERR_BAD_CSR);

	/* PEM holding a DER CSR followed by an extra byte */
	uint8_t *longer = malloc(len + 1);
	assert_non_null(longer);
	memcpy(longer, der, len);
	longer[len] = 0;
	char *pem2 = pem_of(longer, len + 1);
	assert_int_equal(check((uint8_t *)pem2, strlen(pem2), &pol_ec, k, why, sizeof(why)),
	    ERR_BAD_CSR);
	free(pem2);
	free(longer);

	free(pem);
	free(der);
	EVP_PKEY_free(k);
}

static void
test_der_strict(void **state)
{
	EVP_PKEY *k = key_gen("EC", "P-256");
	uint8_t *der, *buf;
	size_t len;
	char why[200];
	(void)state;

	csr_make(k, EVP_sha256(), &der, &len);
	buf = malloc(len + 1);
	assert_non_null(buf);
	memcpy(buf, der, len);
	buf[len] = 0x00;
	assert_int_equal(check(buf, len + 1, &pol_ec, k, why, sizeof(why)), ERR_BAD_CSR);
	assert_non_null(strstr(why, "after the CSR"));
	for (size_t cut = 1; cut < len; cut += 7)
		assert_int_equal(check(der, len - cut, &pol_ec, k, why, sizeof(why)), ERR_BAD_CSR);
	assert_int_equal(check(der, 1, &pol_ec, k, why, sizeof(why)), ERR_BAD_CSR);
	free(buf);
	free(der);
	EVP_PKEY_free(k);
}

static void
test_sizes(void **state)
{
	EVP_PKEY *k = key_gen("EC", "P-256");
	uint8_t *der, *big;
	size_t len;
	char why[200];
	struct ca_policy tiny = { .allow_rsa = 0, .max_csr = 100 };
	(void)state;

	csr_make(k, EVP_sha256(), &der, &len);
	assert_true(len > 100);
	assert_int_equal(check(der, len, &tiny, k, why, sizeof(why)), ERR_TOO_BIG);
	assert_non_null(strstr(why, "100 bytes"));
	/* exactly at the limit is fine */
	tiny.max_csr = len;
	assert_int_equal(check(der, len, &tiny, k, why, sizeof(why)), 0);

	big = calloc(1, 8193);
	assert_non_null(big);
	memset(big, ' ', 8193);
	assert_int_equal(check(big, 8193, &pol_ec, k, why, sizeof(why)), ERR_TOO_BIG);
	assert_int_equal(check(big, 8192, &pol_ec, k, why, sizeof(why)), ERR_BAD_CSR);
	free(big);

	assert_int_equal(check((const uint8_t *)"", 0, &pol_ec, k, why, sizeof(why)), ERR_BAD_CSR);
	assert_non_null(strstr(why, "empty"));
	assert_int_equal(check(NULL, 0, &pol_ec, k, why, sizeof(why)), ERR_BAD_CSR);
	/* why may be omitted */
	assert_int_equal(check((const uint8_t *)"x", 1, &pol_ec, k, NULL, 0), ERR_BAD_CSR);
	free(der);
	EVP_PKEY_free(k);
}

/* Reasons are public: no OpenSSL error strings or file names. */
static void
test_reasons_are_public(void **state)
{
	char why[200];
	(void)state;

	assert_int_equal(check((const uint8_t *)"\x30\x03\x02\x01\x00", 5, &pol_ec, NULL, why,
	    sizeof(why)), ERR_BAD_CSR);
	assert_null(strstr(why, "error:"));
	assert_null(strstr(why, ".c"));
	assert_int_equal(ERR_peek_error(), 0);	/* nothing left in the queue */
}

static int
cmp_serial(const void *a, const void *b)
{
	return memcmp(a, b, CA_SERIAL_LEN);
}

static void
test_serials_unique(void **state)
{
	enum { N = 20000 };
	static const uint8_t zero[CA_SERIAL_LEN];
	uint8_t (*s)[CA_SERIAL_LEN] = calloc(N, CA_SERIAL_LEN);
	unsigned ones = 0;
	(void)state;

	assert_non_null(s);
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(ca_serial_new(s[i]), 0);
		assert_memory_not_equal(s[i], zero, CA_SERIAL_LEN);
		ones += (unsigned)__builtin_popcount(s[i][0]);
	}
	qsort(s, N, CA_SERIAL_LEN, cmp_serial);
	for (size_t i = 1; i < N; i++)
		assert_memory_not_equal(s[i - 1], s[i], CA_SERIAL_LEN);
	/* about half the bits set: 4 per byte on average */
	assert_in_range(ones, N * 4 - N / 4, N * 4 + N / 4);
	assert_int_equal(ca_serial_new(NULL), ERR_INVALID);
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads),		/* first: the first checks race */
		cmocka_unit_test(test_accepted_keys),
		cmocka_unit_test(test_refused_keys),
		cmocka_unit_test(test_weak_hash_refused),
		cmocka_unit_test(test_bad_signature),
		cmocka_unit_test(test_swapped_key),
		cmocka_unit_test(test_ec_point_forms),
		cmocka_unit_test(test_ec_bad_points),
		cmocka_unit_test(test_ed25519_bad_keys),
		cmocka_unit_test(test_ecdsa_digests),
		cmocka_unit_test(test_sigalg_mismatch),
		cmocka_unit_test(test_signature_unused_bits),
		cmocka_unit_test(test_pem_strict),
		cmocka_unit_test(test_der_strict),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_reasons_are_public),
		cmocka_unit_test(test_serials_unique),
	};

	log_init("test_ca_csr", LOG_LVL_WARN, 0, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
