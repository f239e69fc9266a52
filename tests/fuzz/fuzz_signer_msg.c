/*
 * fuzz_signer_msg.c: libFuzzer target for the signer's request decoders — the
 * length-checked parsing a compromised parent could feed the key holder.
 * Whatever decodes must re-encode to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ca/ca_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init("fuzz_signer_msg", LOG_LVL_ERROR, 0, 0);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ca_issue_req ireq;
	struct ca_crl_req creq;
	struct ca_revoked *entries = NULL;
	uint8_t *out = NULL;
	size_t outlen = 0;

	if (size < 1)
		return 0;
	if (data[0] & 1) {
		if (ca_msg_issue_decode(data + 1, size - 1, &ireq) == 0) {
			if (ireq.spkilen > CA_MAX_SPKI || ireq.optdatalen > CA_MAX_OPTDATA)
				abort();
			/* optional data of length 0 decodes as absent */
			if (ca_msg_issue_encode(&ireq, &out, &outlen) != 0 || outlen != size - 1 ||
			    memcmp(out, data + 1, outlen) != 0)
				abort();
		}
	} else {
		if (ca_msg_crl_decode(data + 1, size - 1, &creq, &entries) == 0) {
			if (creq.nrevoked > CA_MAX_CRL_ENTRIES)
				abort();
			if (ca_msg_crl_encode(&creq, &out, &outlen) != 0 || outlen != size - 1 ||
			    memcmp(out, data + 1, outlen) != 0)
				abort();
		}
	}
	free(out);
	free(entries);
	return 0;
}
