/*
 * ca_test.h: helpers shared by the ca/ unit tests — temporary directories,
 * running the openssl command line, test keys and CSRs, configurations.
 * Include after <cmocka.h>.
 */
#ifndef PROVD_CA_TEST_H
#define PROVD_CA_TEST_H

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ca/ca.h"

#define TEST_MAC { 0x00, 0x1a, 0x7d, 0xda, 0x71, 0x13 }

static inline char *
tmpdir_new(void)
{
	char tmpl[] = "/tmp/provd-ca-test.XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	d = strdup(d);
	assert_non_null(d);
	return d;
}

static inline int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void
tmpdir_rm(char *dir)
{
	if (dir == NULL)
		return;
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

/* Strings made by pjoin(); kept until exit so callers never free them. */
static char *pjoin_keep[4096];
static size_t pjoin_n;

static inline void
pjoin_free_all(void)
{
	for (size_t i = 0; i < pjoin_n; i++)
		free(pjoin_keep[i]);
	pjoin_n = 0;
}

/* "dir/name" in a string that stays valid until exit. */
static inline const char *
pjoin(const char *dir, const char *name)
{
	char *s = NULL;

	assert_true(asprintf(&s, "%s/%s", dir, name) > 0);
	if (pjoin_n == 0)
		atexit(pjoin_free_all);
	assert_true(pjoin_n < sizeof(pjoin_keep) / sizeof(pjoin_keep[0]));
	pjoin_keep[pjoin_n++] = s;
	return s;
}

static inline void
write_bytes(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Runs a shell command with stderr joined to stdout. Returns the exit
 * status (-1 when it did not exit); *out gets the output (free()). */
static inline int
run_cmd(char **out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static inline int
run_cmd(char **out, const char *fmt, ...)
{
	char cmd0[4000], cmd[4096];
	char *buf = NULL;
	size_t len = 0, cap = 0;
	va_list ap;
	FILE *p;
	int st;

	va_start(ap, fmt);
	assert_true((size_t)vsnprintf(cmd0, sizeof(cmd0), fmt, ap) < sizeof(cmd0));
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s 2>&1", cmd0);
	p = popen(cmd, "r");
	assert_non_null(p);
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap * 2 + 8192;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		size_t n = fread(buf + len, 1, 4096, p);
		if (n == 0)
			break;
		len += n;
	}
	buf[len] = '\0';
	st = pclose(p);
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* type "EC" (arg: curve), "RSA" (arg: bits), "ED25519", "ED448". */
static inline EVP_PKEY *
key_gen(const char *type, const char *arg)
{
	EVP_PKEY *k;

	if (strcmp(type, "RSA") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)strtoul(arg, NULL, 10));
	else if (strcmp(type, "EC") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", arg);
	else
		k = EVP_PKEY_Q_keygen(NULL, NULL, type);
	assert_non_null(k);
	return k;
}

/* A DER CSR signed by k with md (NULL for EdDSA); *der is malloc'ed. */
static inline void
csr_make(EVP_PKEY *k, const EVP_MD *md, uint8_t **der, size_t *len)
{
	X509_REQ *req = X509_REQ_new();
	unsigned char *p;
	int n;

	assert_non_null(req);
	assert_true(X509_REQ_set_version(req, X509_REQ_VERSION_1));
	assert_true(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
	    MBSTRING_ASC, (const unsigned char *)"device", -1, -1, 0));
	assert_true(X509_REQ_set_pubkey(req, k));
	assert_true(X509_REQ_sign(req, k, md) > 0);
	n = i2d_X509_REQ(req, NULL);
	assert_true(n > 0);
	*der = malloc((size_t)n);
	assert_non_null(*der);
	p = *der;
	assert_int_equal(i2d_X509_REQ(req, &p), n);
	*len = (size_t)n;
	X509_REQ_free(req);
}

/* The DER SubjectPublicKeyInfo of k (malloc'ed). */
static inline void
spki_of(EVP_PKEY *k, uint8_t **der, size_t *len)
{
	unsigned char *p;
	int n = i2d_PUBKEY(k, NULL);

	assert_true(n > 0);
	*der = malloc((size_t)n);
	assert_non_null(*der);
	p = *der;
	assert_int_equal(i2d_PUBKEY(k, &p), n);
	*len = (size_t)n;
}

#define TEST_CRL_URL "http://crl.example.org/provd.crl"
#define TEST_OCSP_URL "http://ocsp.example.org/"

/*
 * Writes dir/NAME.conf for the CA in dir/ca (with the test CRL and OCSP URLs
 * when urls) plus extra lines of the [ca] section, and loads it.
 */
static inline struct config *
cfg_write_load(const char *dir, const char *name, int urls, const char *extra,
    char *path, size_t pathlen)
{
	struct config *cfg = NULL;
	char text[2048], err[256];
	FILE *f;

	snprintf(path, pathlen, "%s/%s.conf", dir, name);
	snprintf(text, sizeof(text), "[ca]\ndir = %s/ca\n%s%s", dir,
	    urls ? "crl_url = " TEST_CRL_URL "\nocsp_url = " TEST_OCSP_URL "\n" : "",
	    extra != NULL ? extra : "");
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	if (config_load(path, &cfg, err, sizeof(err)) != 0)
		fail_msg("config_load: %s", err);
	return cfg;
}

/* An issue request for spki valid from now for days. */
static inline struct ca_issue_req
issue_req_make(const uint8_t *spki, size_t spkilen, int64_t days)
{
	struct ca_issue_req req = { .mac = TEST_MAC };
	int64_t now = (int64_t)time(NULL);

	assert_int_equal(ca_serial_new(req.serial), 0);
	req.not_before = now - 300;
	req.not_after = now + days * 86400;
	req.spki = spki;
	req.spkilen = spkilen;
	return req;
}

static inline void
write_der_as_pem(const char *path, const char *label, const uint8_t *der, size_t len)
{
	char *pem = NULL;

	assert_int_equal(ca_der_to_pem(label, der, len, &pem), 0);
	write_bytes(path, pem, strlen(pem));
	free(pem);
}

static inline double
secs_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

#endif
