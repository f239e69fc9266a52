/*
 * fuzz_ocsp.c: libFuzzer target for the OCSP request parser and the
 * responder behind it (ca/ocsp.c), the code that sees what anyone on the
 * network sends to /ocsp. A CA and its responder are made once in a
 * temporary directory.
 */
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/ocsp.h>

#include "ca/ca.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ca_ocsp_responder *g_rs;

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char tmpl[] = "/tmp/fuzz_ocsp.XXXXXX", dir[64], err[256];
	struct ca_init_opts o = { 0 };
	(void)argc;
	(void)argv;

	log_init("fuzz_ocsp", LOG_LVL_ERROR, 0, 0);
	if (mkdtemp(tmpl) == NULL)
		abort();
	snprintf(dir, sizeof(dir), "%s/ca", tmpl);
	o.dir = dir;
	if (ca_init(&o, err, sizeof(err)) != 0 || ca_ocsp_cert_make(dir, NULL, 30, NULL, err,
	    sizeof(err)) != 0 || ca_ocsp_responder_load(dir, &g_rs) != 0) {
		fprintf(stderr, "fuzz_ocsp: set-up failed: %s\n", err);
		abort();
	}
	nftw(tmpl, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* Statuses from the serial's last digit; 'f' is a database failure. */
static int
lookup(void *arg, const char serial_hex[CA_SERIAL_HEX], struct ca_ocsp_status *st)
{
	char last = serial_hex[2 * CA_SERIAL_LEN - 1];
	(void)arg;

	if (strlen(serial_hex) != 2 * CA_SERIAL_LEN)
		abort();
	if (last == 'f')
		return ERR_DB;
	st->status = (enum ca_ocsp_cert_status)((unsigned char)last % 3);
	st->revoked_at = 1700000000;
	st->reason = (unsigned char)last % 12 - 1;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ca_ocsp_request *q = NULL;
	enum ca_ocsp_resp_status st;
	const unsigned char *p;
	const uint8_t *id;
	uint8_t *der = NULL;
	size_t len = 0, idlen = 0;
	char serial[CA_SERIAL_HEX];
	OCSP_RESPONSE *resp;
	int r, parsed;

	r = ca_ocsp_request_parse(data, size, &q);
	parsed = r == 0;
	if (parsed) {
		size_t n = ca_ocsp_request_count(q);
		if (n < 1 || n > CA_OCSP_MAX_SINGLE || size > CA_OCSP_MAX_REQUEST)
			abort();
		for (size_t i = 0; i < n; i++) {
			ca_ocsp_request_certid(q, i, &id, &idlen);
			if (id == NULL || idlen == 0 || idlen > size)
				abort();
			if (ca_ocsp_request_serial(q, i, serial) == 0 &&
			    strlen(serial) != 2 * CA_SERIAL_LEN)
				abort();
		}
		ca_ocsp_request_free(q);
	} else if (q != NULL || (r != ERR_INVALID && r != ERR_TOO_BIG && r != ERR_NOMEM)) {
		abort();
	}

	/* the whole answer: always a well-formed OCSPResponse */
	if (ca_ocsp_answer(g_rs, data, size, (int64_t)time(NULL), 300, lookup, NULL, &der, &len,
	    &st) != 0)
		return 0;	/* out of memory */
	p = der;
	if ((resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len)) == NULL || p != der + len ||
	    OCSP_response_status(resp) != (int)st)
		abort();
	if (parsed != (st != CA_OCSP_MALFORMED))
		abort();
	if (st == CA_OCSP_SUCCESSFUL) {
		OCSP_BASICRESP *bs = OCSP_response_get1_basic(resp);
		if (bs == NULL || OCSP_resp_count(bs) < 1 || OCSP_resp_count(bs) > CA_OCSP_MAX_SINGLE)
			abort();
		OCSP_BASICRESP_free(bs);
	}
	OCSP_RESPONSE_free(resp);
	free(der);
	return 0;
}
