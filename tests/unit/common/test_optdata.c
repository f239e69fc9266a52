/*
 * test_optdata.c: the optional-data extension round-trips through DER, and
 * malformed or oversized DER is refused; roles [3] is added without
 * changing how older extensions decode.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "common/common.h"

static void
test_round_trip(void **state)
{
	struct optdata in = { 0 }, out;
	uint8_t *der = NULL;
	size_t len = 0;
	(void)state;
	in.owner = "alice";
	in.groups[0] = "engineering";
	in.groups[1] = "Zürich-lab";
	in.ngroups = 2;
	in.classes[0] = "printer";
	in.nclasses = 1;
	assert_int_equal(optdata_encode(&in, &der, &len), 0);
	assert_true(len > 0 && der[0] == 0x30);
	assert_int_equal(optdata_decode(der, len, &out), 0);
	assert_string_equal(out.owner, "alice");
	assert_int_equal(out.ngroups, 2);
	assert_string_equal(out.groups[1], "Zürich-lab");
	assert_int_equal(out.nclasses, 1);
	assert_string_equal(out.classes[0], "printer");
	optdata_clear(&out);

	/* truncated and trailing bytes are refused */
	assert_int_equal(optdata_decode(der, len - 1, &out), ERR_INVALID);
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, der, len);
	longer[len] = 0;
	assert_int_equal(optdata_decode(longer, len + 1, &out), ERR_INVALID);
	free(longer);
	free(der);
}

static void
test_empty_and_owner_only(void **state)
{
	struct optdata in = { 0 }, out;
	uint8_t *der = NULL;
	size_t len = 0;
	(void)state;
	assert_int_equal(optdata_encode(&in, &der, &len), 0);
	assert_int_equal(len, 2);		/* empty SEQUENCE */
	assert_int_equal(optdata_decode(der, len, &out), 0);
	assert_null(out.owner);
	assert_int_equal(out.ngroups, 0);
	free(der);
	in.owner = "bob";
	assert_int_equal(optdata_encode(&in, &der, &len), 0);
	assert_int_equal(optdata_decode(der, len, &out), 0);
	assert_string_equal(out.owner, "bob");
	optdata_clear(&out);
	free(der);
}

static void
test_bad_names(void **state)
{
	struct optdata in = { 0 };
	uint8_t *der = NULL;
	size_t len = 0;
	char big[OPTDATA_MAX_STR + 2];
	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(optdata_check_name("ok name"), 0);
	assert_int_equal(optdata_check_name(""), ERR_INVALID);
	assert_int_equal(optdata_check_name(big), ERR_INVALID);
	assert_int_equal(optdata_check_name("tab\there"), ERR_INVALID);
	assert_int_equal(optdata_check_name("\xc3\x28"), ERR_INVALID);	/* bad UTF-8 */
	in.owner = "line\nbreak";
	assert_int_equal(optdata_encode(&in, &der, &len), ERR_INVALID);
	assert_null(der);
	in.owner = NULL;
	in.ngroups = OPTDATA_MAX_ITEMS + 1;
	for (size_t i = 0; i < OPTDATA_MAX_ITEMS; i++)
		in.groups[i] = "g";
	assert_int_equal(optdata_encode(&in, &der, &len), ERR_TOO_BIG);
}

/* DER made by hand, byte for byte, so that the encoder does not test itself. */
static void
test_roles(void **state)
{
	/* SEQUENCE { [0] "ap", [3] { "access-point" } } */
	static const uint8_t with_roles[] = {
		0x30, 0x14,
		0x80, 0x02, 'a', 'p',
		0xa3, 0x0e, 0x0c, 0x0c, 'a', 'c', 'c', 'e', 's', 's', '-', 'p', 'o', 'i', 'n', 't',
	};
	struct optdata in = { 0 }, out;
	uint8_t *der = NULL;
	size_t len = 0;
	(void)state;

	in.owner = "ap";
	in.roles[0] = OPTDATA_ROLE_ACCESS_POINT;
	in.nroles = 1;
	assert_int_equal(optdata_encode(&in, &der, &len), 0);
	assert_int_equal(len, sizeof(with_roles));
	assert_memory_equal(der, with_roles, len);
	free(der);

	assert_int_equal(optdata_decode(with_roles, sizeof(with_roles), &out), 0);
	assert_string_equal(out.owner, "ap");
	assert_int_equal(out.ngroups, 0);
	assert_int_equal(out.nclasses, 0);
	assert_int_equal(out.nroles, 1);
	assert_string_equal(out.roles[0], OPTDATA_ROLE_ACCESS_POINT);
	optdata_clear(&out);
	assert_int_equal(out.nroles, 0);

	/* all four, and a role provd does not know, which decodes as a name */
	in.groups[0] = "aps";
	in.ngroups = 1;
	in.classes[0] = "access-point";
	in.nclasses = 1;
	in.roles[1] = "future-role";
	in.nroles = 2;
	assert_int_equal(optdata_encode(&in, &der, &len), 0);
	assert_int_equal(optdata_decode(der, len, &out), 0);
	assert_int_equal(out.nroles, 2);
	assert_string_equal(out.roles[1], "future-role");
	assert_string_equal(out.classes[0], "access-point");
	optdata_clear(&out);
	free(der);

	/* roles are names like the others */
	in.roles[1] = "bad\x01role";
	assert_int_equal(optdata_encode(&in, &der, &len), ERR_INVALID);
	assert_null(der);
	in.roles[1] = "";
	assert_int_equal(optdata_encode(&in, &der, &len), ERR_INVALID);
	in.nroles = OPTDATA_MAX_ITEMS + 1;
	assert_int_equal(optdata_encode(&in, &der, &len), ERR_TOO_BIG);
}

/* An extension as made before roles existed still decodes, with no roles. */
static void
test_roles_absent_in_old_der(void **state)
{
	/* SEQUENCE { [0] "alice", [1] { "lab" }, [2] { "printer" } } */
	static const uint8_t old[] = {
		0x30, 0x19,
		0x80, 0x05, 'a', 'l', 'i', 'c', 'e',
		0xa1, 0x05, 0x0c, 0x03, 'l', 'a', 'b',
		0xa2, 0x09, 0x0c, 0x07, 'p', 'r', 'i', 'n', 't', 'e', 'r',
	};
	/* a role list out of order (before [2]) and an empty role string */
	static const uint8_t misordered[] = {
		0x30, 0x0a,
		0xa3, 0x03, 0x0c, 0x01, 'x',
		0xa2, 0x03, 0x0c, 0x01, 'y',
	};
	static const uint8_t empty_role[] = { 0x30, 0x04, 0xa3, 0x02, 0x0c, 0x00 };
	/* [4]: a field this version does not know */
	static const uint8_t unknown_field[] = { 0x30, 0x05, 0xa4, 0x03, 0x0c, 0x01, 'z' };
	struct optdata out;
	(void)state;

	assert_int_equal(optdata_decode(old, sizeof(old), &out), 0);
	assert_string_equal(out.owner, "alice");
	assert_int_equal(out.ngroups, 1);
	assert_string_equal(out.groups[0], "lab");
	assert_int_equal(out.nclasses, 1);
	assert_string_equal(out.classes[0], "printer");
	assert_int_equal(out.nroles, 0);
	assert_null(out.roles[0]);
	optdata_clear(&out);

	assert_int_equal(optdata_decode(misordered, sizeof(misordered), &out), ERR_INVALID);
	assert_int_equal(optdata_decode(empty_role, sizeof(empty_role), &out), ERR_INVALID);
	assert_int_equal(optdata_decode(unknown_field, sizeof(unknown_field), &out), ERR_INVALID);
	assert_int_equal(out.nroles, 0);
}

static void
test_garbage(void **state)
{
	static const uint8_t junk[][6] = {
		{ 0x04, 0x02, 'h', 'i' },		/* OCTET STRING, not SEQUENCE */
		{ 0x30, 0x04, 0x80, 0x05, 'a', 'b' },	/* inner length past end */
		{ 0x30, 0x84, 0xff, 0xff, 0xff, 0xff },	/* huge length */
	};
	struct optdata out;
	(void)state;
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		assert_int_equal(optdata_decode(junk[i], sizeof(junk[i]), &out), ERR_INVALID);
	assert_int_equal(optdata_decode(junk[0], 0, &out), ERR_INVALID);
}

/* x with one extension holding der under oid */
static X509 *
cert_with_ext(const char *oid, const uint8_t *der, size_t len)
{
	X509 *x = X509_new();
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *ext;

	assert_non_null(x);
	assert_non_null(obj);
	assert_non_null(os);
	assert_int_equal(ASN1_OCTET_STRING_set(os, der, (int)len), 1);
	ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(obj);
	return x;
}

/* the extension is found under the current OID and under the UUID OID of
 * older certificates, and not under any other */
static void
test_ext_find(void **state)
{
	struct optdata od = { .owner = "alice" };
	uint8_t *der = NULL;
	const uint8_t *p;
	size_t len = 0, n;
	X509 *x;
	(void)state;

	assert_int_equal(optdata_encode(&od, &der, &len), 0);
	x = cert_with_ext(OPTDATA_OID, der, len);
	assert_int_equal(optdata_ext_find(x, &p, &n), 1);
	assert_int_equal(n, len);
	assert_memory_equal(p, der, len);
	X509_free(x);
	x = cert_with_ext(OPTDATA_OID_UUID, der, len);
	assert_int_equal(optdata_ext_find(x, &p, &n), 1);
	assert_memory_equal(p, der, len);
	X509_free(x);
	x = cert_with_ext("1.2.3.4", der, len);
	assert_int_equal(optdata_ext_find(x, &p, &n), 0);
	assert_null(p);
	X509_free(x);
	/* every arc of the current OID fits in 64 bits (GnuTLS's limit) */
	for (const char *a = OPTDATA_OID; *a != '\0';) {
		char *end;
		errno = 0;
		(void)strtoull(a, &end, 10);
		assert_int_equal(errno, 0);
		assert_true(end > a);
		a = *end == '.' ? end + 1 : end;
	}
	free(der);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_empty_and_owner_only),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_roles_absent_in_old_der),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_ext_find),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
