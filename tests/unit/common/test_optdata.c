/*
 * test_optdata.c: the optional-data extension round-trips through DER, and
 * malformed or oversized DER is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_empty_and_owner_only),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
