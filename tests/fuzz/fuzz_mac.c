/*
 * fuzz_mac.c: libFuzzer target for device address parsing. Whatever is
 * accepted must be a unicast, non-zero address whose canonical form parses
 * back to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[64], canon[MAC_STR_LEN];
	uint8_t mac[MAC_LEN], again[MAC_LEN];

	if (size >= sizeof(in))
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	if (mac_parse(in, mac) != 0)
		return 0;
	if (mac[0] & 1)
		abort();
	mac_format(mac, canon);
	if (mac_parse(canon, again) != 0 || memcmp(mac, again, MAC_LEN) != 0)
		abort();
	return 0;
}
