/*
 * err.c: the one table of provd error codes and their descriptions.
 */
#include "common/common.h"

static const struct {
	int code;
	const char *text;
} errtab[] = {
	{ ERR_OK, "success" },
	{ ERR_INTERNAL, "internal error" },
	{ ERR_NOMEM, "out of memory" },
	{ ERR_INVALID, "invalid input" },
	{ ERR_TOO_BIG, "input too large" },
	{ ERR_NOT_FOUND, "not found" },
	{ ERR_CONFLICT, "conflict with the current state" },
	{ ERR_IO, "input/output error" },
	{ ERR_CONFIG, "invalid configuration" },
	{ ERR_CRYPTO, "cryptographic operation failed" },
	{ ERR_DB, "database error" },
	{ ERR_UNAVAILABLE, "service temporarily unavailable" },
	{ ERR_AUTH, "authentication required or failed" },
	{ ERR_FORBIDDEN, "not allowed" },
	{ ERR_BAD_MAC, "not a valid unicast IEEE 48-bit address" },
	{ ERR_BAD_CSR, "invalid certificate signing request" },
	{ ERR_KEY_POLICY, "key type or size not allowed" },
	{ ERR_SIGNER, "CA signer failed" },
	{ ERR_TIMEOUT, "timed out" },
	{ ERR_LDAP, "directory error" },
	{ ERR_UNSUPPORTED, "not supported" },
};

const char *
provd_strerror(int err)
{
	for (size_t i = 0; i < sizeof(errtab) / sizeof(errtab[0]); i++)
		if (errtab[i].code == err)
			return errtab[i].text;
	return "unknown error";
}
