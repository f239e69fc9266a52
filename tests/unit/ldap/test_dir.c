/*
 * test_dir.c: the directory mirror against a real slapd — DN and filter
 * escaping (no injection through names), device entries written, replaced,
 * found by macAddress and deleted, and clear errors for a wrong password or
 * an unreachable server. Needs LDAP_URI, LDAP_BIND_DN, LDAP_PASSWORD_FILE
 * and LDAP_BASE (tests/run-all.sh exports them).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ldap.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ldap/dir.h"

static struct config *cfg;

/* A real self-signed certificate: slapd checks the certificate syntax. */
static size_t
make_cert(uint8_t **der)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	int len;

	assert_non_null(k);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)"t", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	*der = NULL;
	len = i2d_X509(x, der);
	assert_true(len > 0);
	X509_free(x);
	EVP_PKEY_free(k);
	return (size_t)len;
}

static void
test_rdn_escaping(void **state)
{
	static const char *values[] = {
		"plain", "a,b+c\"d\\e<f>g;h=i", "#leading hash", " leading space",
		"trailing space ", "O'Brien, *()\\=+<>#;\"", "Zürich",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char *rdn = NULL;
		LDAPDN dn = NULL;
		assert_int_equal(dir_rdn("uid", values[i], &rdn), 0);
		/* libldap parses it back to exactly one AVA with the same value */
		assert_int_equal(ldap_str2dn(rdn, &dn, LDAP_DN_FORMAT_LDAPV3), LDAP_SUCCESS);
		assert_non_null(dn[0]);
		assert_null(dn[1]);
		assert_non_null(dn[0][0]);
		assert_null(dn[0][1]);
		assert_int_equal(dn[0][0]->la_value.bv_len, strlen(values[i]));
		assert_memory_equal(dn[0][0]->la_value.bv_val, values[i], strlen(values[i]));
		ldap_dnfree(dn);
		free(rdn);
	}
	char *r = NULL;
	assert_int_equal(dir_rdn("uid", "", &r), ERR_INVALID);
	assert_null(r);
}

static void
test_filter_escaping(void **state)
{
	char *f = NULL;
	(void)state;
	assert_int_equal(dir_filter_value("*()\\", &f), 0);
	assert_string_equal(f, "\\2A\\28\\29\\5C");
	free(f);
	assert_int_equal(dir_filter_value("00:1a:7d:da:71:13", &f), 0);
	assert_string_equal(f, "00:1a:7d:da:71:13");
	free(f);
}

static void
test_device_entry(void **state)
{
	struct dir *d = NULL;
	uint8_t *der = NULL;
	size_t derlen = make_cert(&der);
	struct dir_device dev = { .cert_der = der, .cert_len = derlen,
		.owner = "O'Brien, *()\\=+<>#;\"", .status = "active" };
	char status[40];
	int has_cert = -1;
	(void)state;

	assert_int_equal(mac_parse("00:1a:7d:da:71:13", dev.mac), 0);
	snprintf(dev.serial_hex, sizeof(dev.serial_hex), "00112233445566778899aabbccddeeff");
	assert_int_equal(dir_open(cfg, &d), 0);
	assert_int_equal(dir_ensure_tree(d), 0);
	dir_device_delete(d, dev.mac);		/* from an earlier run */
	assert_int_equal(dir_device_find(d, dev.mac, status, sizeof(status), &has_cert), ERR_NOT_FOUND);
	assert_int_equal(dir_device_put(d, &dev), 0);
	assert_int_equal(dir_device_find(d, dev.mac, status, sizeof(status), &has_cert), 0);
	assert_string_equal(status, "active");
	assert_int_equal(has_cert, 1);
	/* replacing is idempotent and updates */
	dev.status = "revoked";
	dev.cert_der = NULL;
	dev.cert_len = 0;
	assert_int_equal(dir_device_put(d, &dev), 0);
	assert_int_equal(dir_device_put(d, &dev), 0);
	assert_int_equal(dir_device_find(d, dev.mac, status, sizeof(status), &has_cert), 0);
	assert_string_equal(status, "revoked");
	assert_int_equal(has_cert, 0);
	/* a different address is not found */
	uint8_t other[MAC_LEN];
	assert_int_equal(mac_parse("00:1a:7d:da:71:14", other), 0);
	assert_int_equal(dir_device_find(d, other, status, sizeof(status), &has_cert), ERR_NOT_FOUND);
	assert_int_equal(dir_device_delete(d, dev.mac), 0);
	assert_int_equal(dir_device_delete(d, dev.mac), ERR_NOT_FOUND);
	dev.status = "this status is far too long to be a status value";
	assert_int_equal(dir_device_put(d, &dev), ERR_INVALID);
	dir_close(d);
	OPENSSL_free(der);
}

static void
test_open_errors(void **state)
{
	struct dir *d = NULL;
	char path[] = "/tmp/provd-ldap-pw.XXXXXX";
	(void)state;
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "wrong\n", 6), 6);
	close(fd);
	char *saved = cfg->ldap_password_file;
	cfg->ldap_password_file = path;
	assert_int_equal(dir_open(cfg, &d), ERR_AUTH);
	assert_null(d);
	cfg->ldap_password_file = saved;
	unlink(path);

	char *uri = cfg->ldap_uri;
	cfg->ldap_uri = "ldap://127.0.0.1:1/";
	assert_int_equal(dir_open(cfg, &d), ERR_UNAVAILABLE);
	cfg->ldap_uri = NULL;
	assert_int_equal(dir_open(cfg, &d), ERR_CONFIG);
	cfg->ldap_uri = uri;
}

static int
setup(void **state)
{
	(void)state;
	const char *uri = getenv("LDAP_URI"), *dn = getenv("LDAP_BIND_DN");
	const char *pw = getenv("LDAP_PASSWORD_FILE"), *base = getenv("LDAP_BASE");
	if (uri == NULL || dn == NULL || pw == NULL || base == NULL) {
		fprintf(stderr, "test_dir: LDAP_URI, LDAP_BIND_DN, LDAP_PASSWORD_FILE and LDAP_BASE must be set\n");
		return -1;
	}
	if (config_defaults(&cfg) != 0)
		return -1;
	free(cfg->ldap_base_dn);
	cfg->ldap_uri = strdup(uri);
	cfg->ldap_bind_dn = strdup(dn);
	cfg->ldap_password_file = strdup(pw);
	cfg->ldap_base_dn = strdup(base);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	config_free(cfg);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rdn_escaping),
		cmocka_unit_test(test_filter_escaping),
		cmocka_unit_test(test_device_entry),
		cmocka_unit_test(test_open_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
