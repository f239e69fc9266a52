/*
 * Tests of the console's password records (db/console.c): scrypt against
 * the test vectors of RFC 7914 section 12, both directly and through a
 * record checked by db_password_verify; round trips, wrong passwords,
 * parameters, bounds, malformed records and account names. No database.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "db/db.h"

/* RFC 7914 section 12 (the fourth vector needs 1 GiB and is left out). */
static const struct {
	const char *pw, *salt;
	uint64_t n;
	uint32_t r, p;
	const char *hex;
} vectors[] = {
	{ "", "", 16, 1, 1,
	    "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
	    "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906" },
	{ "password", "NaCl", 1024, 8, 16,
	    "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
	    "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640" },
	{ "pleaseletmein", "SodiumChloride", 16384, 8, 1,
	    "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
	    "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887" },
};

#define PW "correct horse battery"
#define FAST 1024	/* N for tests that need not take 100 ms */

/* "scrypt$N$r$p$SALT$HASH" from raw parts, as db/console.c writes it. */
static void
make_record(char *out, size_t len, uint64_t n, uint32_t r, uint32_t p, const void *salt,
    size_t saltlen, const uint8_t *hash, size_t hashlen)
{
	char s64[128], h64[128];

	EVP_EncodeBlock((unsigned char *)s64, salt, (int)saltlen);
	EVP_EncodeBlock((unsigned char *)h64, hash, (int)hashlen);
	snprintf(out, len, "scrypt$%llu$%u$%u$%s$%s", (unsigned long long)n, r, p, s64, h64);
}

static void
test_rfc7914_vectors(void **state)
{
	uint8_t want[64], got[64];
	char rec[512];

	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		assert_int_equal(hex_decode(vectors[i].hex, want, sizeof(want)), 0);
		memset(got, 0, sizeof(got));
		assert_int_equal(db_scrypt(vectors[i].pw, strlen(vectors[i].pw), vectors[i].salt,
		    strlen(vectors[i].salt), vectors[i].n, vectors[i].r, vectors[i].p, got,
		    sizeof(got)), 0);
		assert_memory_equal(got, want, sizeof(want));
		if (vectors[i].n < 1024)
			continue;	/* records start at N = 2^10 */
		/* the same through a record and the verifier */
		make_record(rec, sizeof(rec), vectors[i].n, vectors[i].r, vectors[i].p,
		    vectors[i].salt, strlen(vectors[i].salt), want, sizeof(want));
		assert_int_equal(db_password_verify(vectors[i].pw, strlen(vectors[i].pw), rec), 0);
		assert_int_equal(db_password_verify("Password", 8, rec), ERR_AUTH);
		/* one bit of the stored hash changed */
		want[63] ^= 1;
		make_record(rec, sizeof(rec), vectors[i].n, vectors[i].r, vectors[i].p,
		    vectors[i].salt, strlen(vectors[i].salt), want, sizeof(want));
		assert_int_equal(db_password_verify(vectors[i].pw, strlen(vectors[i].pw), rec),
		    ERR_AUTH);
	}
}

static void
test_scrypt_bounds(void **state)
{
	uint8_t out[32];

	(void)state;
	assert_int_equal(db_scrypt("a", 1, "b", 1, 1000, 8, 1, out, sizeof(out)), ERR_INVALID);
	assert_int_equal(db_scrypt("a", 1, "b", 1, 1, 8, 1, out, sizeof(out)), ERR_INVALID);
	assert_int_equal(db_scrypt("a", 1, "b", 1, 1u << 21, 1, 1, out, sizeof(out)), ERR_INVALID);
	assert_int_equal(db_scrypt("a", 1, "b", 1, 1024, 0, 1, out, sizeof(out)), ERR_INVALID);
	assert_int_equal(db_scrypt("a", 1, "b", 1, 1024, 33, 1, out, sizeof(out)), ERR_INVALID);
	assert_int_equal(db_scrypt("a", 1, "b", 1, 1024, 8, 0, out, sizeof(out)), ERR_INVALID);
	assert_int_equal(db_scrypt("a", 1, "b", 1, 1024, 8, 17, out, sizeof(out)), ERR_INVALID);
	/* 128 * 16 * 2^20 = 2 GiB: over the 256 MiB bound */
	assert_int_equal(db_scrypt("a", 1, "b", 1, 1u << 20, 16, 1, out, sizeof(out)), ERR_INVALID);
	assert_int_equal(db_scrypt("a", 1, "b", 1, 1024, 8, 1, NULL, 32), ERR_INVALID);
	assert_int_equal(db_scrypt("a", 1, "b", 1, 1024, 8, 1, out, 0), ERR_INVALID);
	assert_int_equal(db_scrypt(NULL, 1, "b", 1, 1024, 8, 1, out, sizeof(out)), ERR_INVALID);
}

static void
test_round_trip_default(void **state)
{
	char a[DB_PWHASH_MAX], b[DB_PWHASH_MAX];
	unsigned n, r, p;
	char salt[40], hash[60];

	(void)state;
	assert_int_equal(db_password_hash(PW, strlen(PW), a), 0);
	assert_int_equal(sscanf(a, "scrypt$%u$%u$%u$%39[^$]$%59s", &n, &r, &p, salt, hash), 5);
	assert_int_equal(n, DB_SCRYPT_N);
	assert_int_equal(r, DB_SCRYPT_R);
	assert_int_equal(p, DB_SCRYPT_P);
	assert_int_equal(strlen(salt), 24);	/* 16 bytes */
	assert_int_equal(strlen(hash), 44);	/* 32 bytes */
	assert_null(strstr(a, PW));
	assert_int_equal(db_password_verify(PW, strlen(PW), a), 0);
	assert_int_equal(db_password_verify("correct horse batterY", strlen(PW), a), ERR_AUTH);
	assert_int_equal(db_password_verify(PW, strlen(PW) - 1, a), ERR_AUTH);
	assert_int_equal(db_password_verify("", 0, a), ERR_AUTH);
	/* a new salt every time */
	assert_int_equal(db_password_hash(PW, strlen(PW), b), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(db_password_verify(PW, strlen(PW), b), 0);
}

static void
test_params(void **state)
{
	char rec[DB_PWHASH_MAX];

	(void)state;
	assert_int_equal(db_password_hash_params(PW, strlen(PW), FAST, 8, 1, rec), 0);
	assert_int_equal(strncmp(rec, "scrypt$1024$8$1$", 16), 0);
	assert_int_equal(db_password_verify(PW, strlen(PW), rec), 0);
	assert_int_equal(db_password_hash_params(PW, strlen(PW), 2048, 4, 2, rec), 0);
	assert_int_equal(strncmp(rec, "scrypt$2048$4$2$", 16), 0);
	assert_int_equal(db_password_verify(PW, strlen(PW), rec), 0);
	assert_int_equal(db_password_verify("not the password", 16, rec), ERR_AUTH);
	/* records below 2^10 are not made */
	assert_int_equal(db_password_hash_params(PW, strlen(PW), 512, 8, 1, rec), ERR_INVALID);
	assert_string_equal(rec, "");
	assert_int_equal(db_password_hash_params(PW, strlen(PW), 1000, 8, 1, rec), ERR_INVALID);
	assert_int_equal(db_password_hash_params(PW, strlen(PW), FAST, 0, 1, rec), ERR_INVALID);
	assert_int_equal(db_password_hash_params(PW, strlen(PW), FAST, 8, 17, rec), ERR_INVALID);
}

static void
test_password_bounds(void **state)
{
	char rec[DB_PWHASH_MAX], big[DB_PASSWORD_MAX + 2];
	/* a NUL inside: the length decides, not strlen */
	static const char nul[] = "twelve bytes\0and more";

	(void)state;
	memset(big, 'x', sizeof(big));
	assert_int_equal(db_password_hash_params("elevenbytes", 11, FAST, 8, 1, rec), ERR_INVALID);
	assert_int_equal(db_password_hash_params("twelve bytes", 12, FAST, 8, 1, rec), 0);
	assert_int_equal(db_password_verify("twelve bytes", 12, rec), 0);
	assert_int_equal(db_password_hash_params(big, DB_PASSWORD_MAX, FAST, 8, 1, rec), 0);
	assert_int_equal(db_password_verify(big, DB_PASSWORD_MAX, rec), 0);
	assert_int_equal(db_password_verify(big, DB_PASSWORD_MAX - 1, rec), ERR_AUTH);
	assert_int_equal(db_password_hash_params(big, DB_PASSWORD_MAX + 1, FAST, 8, 1, rec),
	    ERR_INVALID);
	assert_int_equal(db_password_hash_params(NULL, 12, FAST, 8, 1, rec), ERR_INVALID);
	assert_int_equal(db_password_hash_params(nul, sizeof(nul) - 1, FAST, 8, 1, rec), 0);
	assert_int_equal(db_password_verify(nul, sizeof(nul) - 1, rec), 0);
	assert_int_equal(db_password_verify(nul, 12, rec), ERR_AUTH);
	assert_int_equal(db_password_verify(NULL, 0, rec), ERR_INVALID);
}

/* Copies f into out with S replaced by salt and H by hash. */
static void
fill(char *out, size_t len, const char *f, const char *salt, const char *hash)
{
	size_t o = 0;

	for (; *f != '\0' && o + 1 < len; f++) {
		const char *v = *f == 'S' ? salt : *f == 'H' ? hash : NULL;
		if (v == NULL) {
			out[o++] = *f;
			continue;
		}
		for (; *v != '\0' && o + 1 < len; v++)
			out[o++] = *v;
	}
	out[o] = '\0';
}

static void
test_malformed_records(void **state)
{
	char good[DB_PWHASH_MAX], bad[512], salt[40], hash[60], longsalt[100];
	const char *p, *q;
	/* S: a good 16-byte salt, H: a good 32-byte hash (base64) */
	static const char *const recs[] = {
		"", "scrypt", "scrypt$", "bcrypt$1024$8$1$S$H", "SCRYPT$1024$8$1$S$H",
		"scrypt$1024$8$1$S", "scrypt$1024$8$1$S$", "scrypt$1024$8$1$$H",
		"scrypt$1000$8$1$S$H",			/* N not a power of 2 */
		"scrypt$512$8$1$S$H",			/* N under 2^10 */
		"scrypt$2097152$1$1$S$H",		/* N over 2^20 */
		"scrypt$1048576$8$1$S$H",		/* 1 GiB of memory */
		"scrypt$01024$8$1$S$H", "scrypt$+1024$8$1$S$H", "scrypt$-1024$8$1$S$H",
		"scrypt$1024$0$1$S$H", "scrypt$1024$33$1$S$H", "scrypt$1024$8$0$S$H",
		"scrypt$1024$8$17$S$H", "scrypt$1024$$1$S$H", "scrypt$1024$8$1$S$H$x",
		"scrypt$1024$8$1$S$H=", "scrypt$1024$8$1$S$ H", "scrypt$1024$8$1$S$H\n",
		"scrypt$1024$8$1$ S$H", "scrypt$99999999999999999999999$8$1$S$H",
		"scrypt$1024$8$1$S$AAAAAAAAAAA=",	/* a hash of 8 bytes */
		"scrypt$1024$8$1$S$A===", "scrypt$1024$8$1$=AAA$H", "scrypt$1024$8$1$AA$H",
		"scrypt$1024$8$1$S$QUFB*UFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
		"scrypt$1024$8$1$S$QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE",
	};

	(void)state;
	assert_int_equal(db_password_hash_params(PW, strlen(PW), FAST, 8, 1, good), 0);
	p = good + strlen("scrypt$1024$8$1$");
	assert_non_null(q = strchr(p, '$'));
	snprintf(salt, sizeof(salt), "%.*s", (int)(q - p), p);
	snprintf(hash, sizeof(hash), "%s", q + 1);
	fill(bad, sizeof(bad), "scrypt$1024$8$1$S$H", salt, hash);
	assert_string_equal(bad, good);
	assert_int_equal(db_password_verify(PW, strlen(PW), bad), 0);

	for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
		fill(bad, sizeof(bad), recs[i], salt, hash);
		if (db_password_verify(PW, strlen(PW), bad) != ERR_INVALID)
			fail_msg("record \"%s\" was not refused as malformed", bad);
	}
	/* a short salt is read (RFC 7914's vectors have 4 bytes): a wrong hash */
	fill(bad, sizeof(bad), "scrypt$1024$8$1$AAAA$H", salt, hash);
	assert_int_equal(db_password_verify(PW, strlen(PW), bad), ERR_AUTH);
	/* a salt of 69 bytes */
	for (size_t i = 0; i < 92; i += 4)
		memcpy(longsalt + i, "QUFB", 4);
	longsalt[92] = '\0';
	fill(bad, sizeof(bad), "scrypt$1024$8$1$S$H", longsalt, hash);
	assert_int_equal(db_password_verify(PW, strlen(PW), bad), ERR_INVALID);
	/* a record of 256 bytes or more */
	memset(bad, 'A', sizeof(bad) - 1);
	bad[sizeof(bad) - 1] = '\0';
	memcpy(bad, "scrypt$1024$8$1$", 16);
	assert_int_equal(db_password_verify(PW, strlen(PW), bad), ERR_INVALID);
	assert_int_equal(db_password_verify(PW, strlen(PW), NULL), ERR_INVALID);
}

static void
test_account_names(void **state)
{
	static const char *const good[] = { "a", "alice", "alice@example.org", "ops-1_x.y",
	    "O'Reilly\\\";--", "1234567890123456789012345678901234567890123456789012345" };
	static const char *const bad[] = { "", "al ice", "alice\n", "\t", "caf\xc3\xa9",
	    "al\x7f", "12345678901234567890123456789012345678901234567890123456" };

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(db_account_name_check(good[i]), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(db_account_name_check(bad[i]), ERR_INVALID);
	assert_int_equal(db_account_name_check(NULL), ERR_INVALID);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7914_vectors),
		cmocka_unit_test(test_scrypt_bounds),
		cmocka_unit_test(test_round_trip_default),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_password_bounds),
		cmocka_unit_test(test_malformed_records),
		cmocka_unit_test(test_account_names),
	};

	log_init("test_password", LOG_LVL_ERROR, 0, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
