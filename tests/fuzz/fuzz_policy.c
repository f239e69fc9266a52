/*
 * fuzz_policy.c: libFuzzer target for the local policy parser (the file a
 * device serving a resource decides by without provd) and the request
 * frame a peer sends on the encrypted link. A policy either loads whole or
 * is refused with a message; a request that parses formats back to the
 * same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "device/device.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512], res[POLICY_MAX_NAME + 1], act[POLICY_MAX_ACTION + 1];
	char again[POLICY_REQ_MAX + 1];
	struct policy *p = NULL;
	int r;

	err[0] = '\0';
	r = policy_parse((const char *)data, size, "fuzz.ini", &p, err, sizeof(err));
	if ((r == 0) != (p != NULL) || (r != 0 && err[0] == '\0'))
		abort();
	if (p != NULL && policy_check_resource(policy_resource(p)) != 0)
		abort();
	policy_free(p);
	if (policy_request_parse(data, size, res, act) == 0) {
		if (policy_request_format(res, act, again, sizeof(again)) != 0 ||
		    strlen(again) != size || memcmp(again, data, size) != 0)
			abort();
	}
	return 0;
}
