/*
 * test_intake.c: a whole intake over the sim radio, both sides real — the
 * device (verifier record, file keystore) and the operator's side (PIN
 * link, intake conversation, the built-in CA in process): device keygen,
 * server keygen, a label that does not match, a wrong PIN.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tests/unit/device/intake_test.h"

#define TIMEOUT 20000

static char dir[] = "/tmp/provd-test-intake.XXXXXX";
static char air[300], ksdir[300], cadir[300];
static uint8_t *ca_der;
static size_t ca_derlen;
static const uint8_t addr[MAC_LEN] = { 0x00, 0x1a, 0x7d, 0xda, 0x71, 0x13 };

/* The CA side of the test: the checks provd does, then the signing core. */
struct dev {
	const char *pin;
	struct radio *radio;
	struct keystore *ks;
	int result;
	char why[200];
};

static void *
device_main(void *arg)
{
	struct dev *d = arg;
	struct device_profile dp = { 0 };
	struct radio_link *l = NULL;
	uint8_t w1[SPAKE2P_SCALAR_LEN];

	memcpy(dp.addr, addr, MAC_LEN);
	snprintf(dp.model, sizeof(dp.model), "HS-100");
	snprintf(dp.name, sizeof(dp.name), "headset");
	snprintf(dp.firmware, sizeof(dp.firmware), "1.0");
	d->result = spake2p_derive(d->pin, addr, MAC_LEN, dp.w0, w1);
	if (d->result == 0)
		d->result = spake2p_make_L(w1, dp.L);
	OPENSSL_cleanse(w1, sizeof(w1));
	if (d->result == 0)
		d->result = radio_accept(d->radio, TIMEOUT, &l);
	if (d->result == 0)
		d->result = device_intake_serve(l, &dp, d->ks, TIMEOUT, d->why, sizeof(d->why));
	radio_link_close(l);
	OPENSSL_cleanse(&dp, sizeof(dp));
	return NULL;
}

struct outcome {
	int op, dev;
	struct intake_result res;
	char why[200];
};

static void
run(const char *dev_pin, const char *op_pin, const char *label, enum intake_keygen kg,
    struct outcome *o)
{
	struct radio_params rp = { .backend = "sim", .sim_dir = air };
	struct keystore_params kp = { .kind = "file", .dir = ksdir };
	struct radio_device self = { .cod = 0x240404, .rssi = -40 };
	struct dev d = { .pin = dev_pin };
	struct intake_params ip = { .keygen = kg, .issue = test_issue };
	const uint8_t *chain[1] = { ca_der };
	size_t chainlen[1] = { ca_derlen };
	struct radio *op = NULL;
	struct radio_link *l = NULL;
	struct pinlink *p = NULL;
	pthread_t th;

	memset(o, 0, sizeof(*o));
	memcpy(self.addr, addr, MAC_LEN);
	assert_int_equal(keystore_open(&kp, &d.ks), 0);
	assert_int_equal(radio_open(&rp, &d.radio), 0);
	assert_int_equal(radio_listen(d.radio, &self), 0);
	assert_int_equal(radio_open(&rp, &op), 0);
	assert_int_equal(pthread_create(&th, NULL, device_main, &d), 0);

	assert_int_equal(mac_parse(label, ip.label_mac), 0);
	ip.chain = chain;
	ip.chainlen = chainlen;
	ip.nchain = 1;
	o->op = radio_connect(op, addr, TIMEOUT, &l);
	if (o->op == 0) {
		radio_link_peer(l, ip.link_peer);
		o->op = pinlink_connect(l, op_pin, ip.label_mac, TIMEOUT, &p);
	}
	if (o->op == 0)
		o->op = intake_run(p, &ip, &o->res, o->why, sizeof(o->why));
	if (o->op == 0)
		o->op = intake_done(p, &o->res);
	pinlink_close(p);
	radio_link_close(l);
	pthread_join(th, NULL);
	o->dev = d.result;
	radio_close(op);
	radio_close(d.radio);
	keystore_close(d.ks);
}

/* The identity the device's keystore holds now: its certificate. */
static int
device_cert(uint8_t **cert, size_t *len)
{
	struct keystore_params kp = { .kind = "file", .dir = ksdir };
	struct keystore *ks = NULL;
	EVP_PKEY *key = NULL;
	int r;

	assert_int_equal(keystore_open(&kp, &ks), 0);
	r = keystore_identity(ks, &key, cert, len);
	EVP_PKEY_free(key);
	keystore_close(ks);
	return r;
}

static void
wipe_device(void)
{
	struct keystore_params kp = { .kind = "file", .dir = ksdir };
	struct keystore *ks = NULL;

	assert_int_equal(keystore_open(&kp, &ks), 0);
	assert_int_equal(keystore_wipe(ks), 0);
	keystore_close(ks);
}

static void
test_device_keygen(void **state)
{
	struct outcome o;
	uint8_t *cert = NULL;
	size_t len = 0;
	(void)state;
	wipe_device();
	run("493817", "493817", "00:1A:7D:DA:71:13", INTAKE_KEYGEN_AUTO, &o);
	assert_int_equal(o.op, 0);
	assert_int_equal(o.dev, 0);
	assert_int_equal(o.res.keygen, INTAKE_KEYGEN_DEVICE);
	assert_string_equal(o.res.step, "done");
	assert_string_equal(o.res.model, "HS-100");
	assert_int_equal(device_cert(&cert, &len), 0);
	assert_int_equal(len, o.res.certlen);
	assert_memory_equal(cert, o.res.cert, len);
	free(cert);
	free(o.res.cert);
}

static void
test_server_keygen(void **state)
{
	struct outcome o;
	uint8_t *cert = NULL;
	size_t len = 0;
	(void)state;
	wipe_device();
	run("493817", "493817", "001a7dda7113", INTAKE_KEYGEN_SERVER, &o);
	if (o.op != 0)
		fprintf(stderr, "operator: %s (step %s)\n", o.why, o.res.step);
	assert_int_equal(o.op, 0);
	assert_int_equal(o.dev, 0);
	assert_int_equal(o.res.keygen, INTAKE_KEYGEN_SERVER);
	assert_int_equal(device_cert(&cert, &len), 0);
	assert_memory_equal(cert, o.res.cert, len);
	free(cert);
	free(o.res.cert);
}

static void
test_label_mismatch(void **state)
{
	struct outcome o;
	uint8_t *cert = NULL;
	size_t len = 0;
	(void)state;
	wipe_device();
	/* the operator typed another address: the PIN's salt differs too, so
	 * the link itself fails before anything is said */
	run("493817", "493817", "00:1a:7d:da:71:14", INTAKE_KEYGEN_AUTO, &o);
	assert_int_not_equal(o.op, 0);
	assert_int_not_equal(o.dev, 0);
	assert_null(o.res.cert);
	assert_int_equal(device_cert(&cert, &len), ERR_NOT_FOUND);
}

static void
test_wrong_pin(void **state)
{
	struct outcome o;
	uint8_t *cert = NULL;
	size_t len = 0;
	(void)state;
	wipe_device();
	run("493817", "111111", "00:1a:7d:da:71:13", INTAKE_KEYGEN_AUTO, &o);
	assert_int_equal(o.op, ERR_AUTH);
	assert_int_equal(o.dev, ERR_AUTH);
	assert_int_equal(device_cert(&cert, &len), ERR_NOT_FOUND);
}

static int
setup(void **state)
{
	char path[350];
	FILE *f;
	X509 *x;
	(void)state;

	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(air, sizeof(air), "%s/air", dir);
	snprintf(ksdir, sizeof(ksdir), "%s/ks", dir);
	snprintf(cadir, sizeof(cadir), "%s/ca", dir);
	if (test_ca_setup(cadir) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/ca.crt", cadir);
	if ((f = fopen(path, "r")) == NULL || (x = PEM_read_X509(f, NULL, NULL, NULL)) == NULL)
		return -1;
	fclose(f);
	int n = i2d_X509(x, &ca_der);
	X509_free(x);
	if (n <= 0)
		return -1;
	ca_derlen = (size_t)n;
	return 0;
}

static int
teardown(void **state)
{
	char cmd[400];
	(void)state;
	test_ca_teardown();
	OPENSSL_free(ca_der);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_device_keygen),
		cmocka_unit_test(test_server_keygen),
		cmocka_unit_test(test_label_mismatch),
		cmocka_unit_test(test_wrong_pin),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
