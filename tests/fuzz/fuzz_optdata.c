/*
 * fuzz_optdata.c: libFuzzer target for the optional-data extension decoder
 * (what a disconnected resource reads from a certificate, and what provd
 * reads the roles of a client certificate from). A decoded value must
 * re-encode to DER that decodes to the same value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

static int
same_list(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct optdata od, again;
	uint8_t *der = NULL;
	size_t len = 0;

	if (optdata_decode(data, size, &od) != 0)
		return 0;
	if (optdata_encode(&od, &der, &len) != 0)
		abort();
	/* DER is canonical except for the empty-list case, which we drop */
	if (len > size)
		abort();
	if (optdata_decode(der, len, &again) != 0)
		abort();
	if ((od.owner == NULL) != (again.owner == NULL) ||
	    (od.owner != NULL && strcmp(od.owner, again.owner) != 0) ||
	    !same_list(od.groups, od.ngroups, again.groups, again.ngroups) ||
	    !same_list(od.classes, od.nclasses, again.classes, again.nclasses) ||
	    !same_list(od.roles, od.nroles, again.roles, again.nroles))
		abort();
	free(der);
	optdata_clear(&again);
	optdata_clear(&od);
	return 0;
}
