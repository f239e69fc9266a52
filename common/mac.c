/*
 * mac.c: IEEE 48-bit device addresses — the accepted spellings, the
 * canonical form, and the refusal of group (multicast) and all-zero addresses.
 */
#include <string.h>

#include "common/common.h"

/*
 * Reads 12 hex digits from s, which must have the separator sep exactly at
 * the positions where is_sep() says so and hex digits everywhere else.
 */
static int
parse_shape(const char *s, size_t len, int (*is_sep)(size_t), char sep,
    uint8_t out[MAC_LEN])
{
	size_t digits = 0;

	for (size_t i = 0; i < len; i++) {
		if (is_sep(i)) {
			if (s[i] != sep)
				return ERR_BAD_MAC;
			continue;
		}
		int v = hex_digit((unsigned char)s[i]);
		if (v < 0 || digits >= 12)
			return ERR_BAD_MAC;
		if (digits % 2 == 0)
			out[digits / 2] = (uint8_t)(v << 4);
		else
			out[digits / 2] |= (uint8_t)v;
		digits++;
	}
	return digits == 12 ? 0 : ERR_BAD_MAC;
}

static int sep_pairs(size_t i) { return i % 3 == 2; }	/* 00:1a:... */
static int sep_quads(size_t i) { return i == 4 || i == 9; }	/* 001a.7dda.7113 */
static int sep_none(size_t i) { (void)i; return 0; }

int
mac_parse(const char *s, uint8_t out[MAC_LEN])
{
	uint8_t b[MAC_LEN];
	size_t len;
	int r;

	if (s == NULL)
		return ERR_BAD_MAC;
	len = strnlen(s, 32);
	if (len == 17 && s[2] == ':')
		r = parse_shape(s, len, sep_pairs, ':', b);
	else if (len == 17 && s[2] == '-')
		r = parse_shape(s, len, sep_pairs, '-', b);
	else if (len == 14)
		r = parse_shape(s, len, sep_quads, '.', b);
	else if (len == 12)
		r = parse_shape(s, len, sep_none, 0, b);
	else
		return ERR_BAD_MAC;
	if (r != 0)
		return r;
	if (b[0] & 0x01)	/* group (multicast/broadcast) address */
		return ERR_BAD_MAC;
	static const uint8_t zero[MAC_LEN];
	if (memcmp(b, zero, MAC_LEN) == 0)
		return ERR_BAD_MAC;
	memcpy(out, b, MAC_LEN);
	return 0;
}

void
mac_format(const uint8_t mac[MAC_LEN], char out[MAC_STR_LEN])
{
	static const char hx[] = "0123456789abcdef";
	size_t o = 0;

	for (int i = 0; i < MAC_LEN; i++) {
		if (i > 0)
			out[o++] = ':';
		out[o++] = hx[mac[i] >> 4];
		out[o++] = hx[mac[i] & 15];
	}
	out[o] = '\0';
}

void
mac_format_hex(const uint8_t mac[MAC_LEN], char out[MAC_HEX_LEN])
{
	hex_encode(mac, MAC_LEN, out);
}
