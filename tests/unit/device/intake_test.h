/*
 * intake_test.h: what the intake tests share — an in-process CA made in a
 * temporary directory and the issuer callback that does what provd does
 * (CSR checks, then the signing core).
 */
#ifndef PROVD_INTAKE_TEST_H
#define PROVD_INTAKE_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca/ca.h"
#include "device/device.h"

static struct config *test_cfg;
static struct ca_key *test_cakey;

/* Issues for one day from a checked CSR, as provd would. */
static int
test_issue(void *arg, const uint8_t mac[MAC_LEN], const uint8_t *csr, size_t csrlen,
    uint8_t **cert, size_t *certlen, char *why, size_t whylen)
{
	struct ca_policy pol = { .allow_rsa = 0, .max_csr = 8192 };
	struct ca_issue_req req = { 0 };
	uint8_t *spki = NULL;
	size_t spkilen = 0;
	int r;
	(void)arg;

	if ((r = ca_csr_check(csr, csrlen, &pol, &spki, &spkilen, why, whylen)) != 0)
		return r;
	memcpy(req.mac, mac, MAC_LEN);
	ca_serial_new(req.serial);
	req.not_before = time(NULL) - 60;
	req.not_after = time(NULL) + 86400;
	req.spki = spki;
	req.spkilen = spkilen;
	r = ca_key_issue(test_cakey, &req, cert, certlen);
	free(spki);
	return r;
}

/* A one-tier CA in cadir, loaded for test_issue. */
static int
test_ca_setup(const char *cadir)
{
	struct ca_init_opts co = { .dir = cadir, .days = 30 };
	char err[256];

	if (ca_init(&co, err, sizeof(err)) != 0 || config_defaults(&test_cfg) != 0)
		return -1;
	free(test_cfg->ca_dir);
	test_cfg->ca_dir = strdup(cadir);
	return ca_key_load(test_cfg, &test_cakey) == 0 ? 0 : -1;
}

static void
test_ca_teardown(void)
{
	ca_key_free(test_cakey);
	config_free(test_cfg);
}

#endif
