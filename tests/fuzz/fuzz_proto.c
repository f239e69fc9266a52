/*
 * fuzz_proto.c: libFuzzer target for the intake protocol decoder — what a
 * device (or anyone past the PIN link) can send provd. A frame that decodes
 * must re-encode to exactly the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "provision/provision.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[PROTO_HDR_LEN + PROTO_MAX_PAYLOAD];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init("fuzz_proto", LOG_LVL_ERROR, 0, 0);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_msg m;
	size_t framelen, len;

	if (proto_decode(data, size, &m) != 0)
		return 0;
	/* the header of an accepted frame announces exactly its length */
	if (proto_frame_len(data, &framelen) != 0 || framelen != size)
		abort();
	if (proto_encode(&m, out, sizeof(out), &len) != 0 || len != size ||
	    memcmp(out, data, size) != 0)
		abort();
	/* and it needs every byte of its buffer */
	if (proto_encode(&m, out, size - 1, &len) != ERR_TOO_BIG)
		abort();
	return 0;
}
