/*
 * test_ca_csr.c: CSR checks before signing — accepted keys, refused keys,
 * broken signatures, strict PEM and DER parsing, size limits — and the
 * uniqueness of fresh serial numbers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

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
		cmocka_unit_test(test_accepted_keys),
		cmocka_unit_test(test_refused_keys),
		cmocka_unit_test(test_weak_hash_refused),
		cmocka_unit_test(test_bad_signature),
		cmocka_unit_test(test_swapped_key),
		cmocka_unit_test(test_pem_strict),
		cmocka_unit_test(test_der_strict),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_reasons_are_public),
		cmocka_unit_test(test_serials_unique),
	};

	log_init("test_ca_csr", LOG_LVL_WARN, 0, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
