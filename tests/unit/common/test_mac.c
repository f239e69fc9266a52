/*
 * test_mac.c: every accepted spelling of a device address normalises to one
 * form; every other input is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "common/common.h"

static void
test_accepted_spellings(void **state)
{
	static const char *ok[] = {
		"00:1A:7D:DA:71:13", "00-1a-7d-da-71-13", "001a.7dda.7113",
		"001A7DDA7113", "00:1a:7d:da:71:13", "00-1A-7D-DA-71-13",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint8_t mac[MAC_LEN];
		char s[MAC_STR_LEN], h[MAC_HEX_LEN];
		assert_int_equal(mac_parse(ok[i], mac), 0);
		mac_format(mac, s);
		assert_string_equal(s, "00:1a:7d:da:71:13");
		mac_format_hex(mac, h);
		assert_string_equal(h, "001a7dda7113");
	}
}

static void
test_refused(void **state)
{
	static const char *bad[] = {
		"", "00:1A:7D:DA:71", "001A7DDA711", "001A7DDA71134",	/* 11, 13 digits */
		"00:1A:7D:DA:71:1G", "0G1A7DDA7113",			/* non-hex */
		"01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff",		/* multicast, broadcast */
		"00:00:00:00:00:00", "000000000000",			/* all zero */
		"00:1A-7D:DA:71:13", "00:1A:7D:DA:71:13 ", " 00:1A:7D:DA:71:13",
		"001a.7dda:7113", "001a7.dda7.113", "00::1A:7D:DA:71:1",
		"+01a7dda7113", "00:1a:7d:da:71:13:00",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t mac[MAC_LEN] = { 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa };
		assert_int_equal(mac_parse(bad[i], mac), ERR_BAD_MAC);
		assert_int_equal(mac[0], 0xaa);		/* untouched on failure */
	}
	assert_int_equal(mac_parse(NULL, (uint8_t[MAC_LEN]){ 0 }), ERR_BAD_MAC);
}

static void
test_locally_administered_ok(void **state)
{
	uint8_t mac[MAC_LEN];
	(void)state;
	assert_int_equal(mac_parse("02:00:00:00:00:01", mac), 0);
	assert_int_equal(mac[0], 0x02);
	assert_int_equal(mac[5], 0x01);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted_spellings),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_locally_administered_ok),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
