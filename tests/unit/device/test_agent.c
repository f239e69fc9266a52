/*
 * test_agent.c: a device's intake rules over the sim radio — recorded once
 * (DONE) it refuses intake until a factory reset; five wrong PINs lock it,
 * and while locked even the right PIN is refused; an intake cut after ACK
 * (no DONE) leaves intake open and a retry succeeds.
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
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tests/unit/device/intake_test.h"

#define TIMEOUT 20000
#define PIN "493817"

static char dir[] = "/tmp/provd-test-agent.XXXXXX";
static char air[300], state[300], cadir[300];
static const uint8_t addr[MAC_LEN] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x42 };

struct dev {
	struct agent *a;
	struct radio *radio;
	int result;
	char why[256];
};

static void *
device_main(void *arg)
{
	struct dev *d = arg;

	d->result = agent_serve_once(d->a, d->radio, TIMEOUT, TIMEOUT, d->why, sizeof(d->why));
	return NULL;
}

static size_t fault_drop_after;		/* operator's link drops after N bytes */

/* One intake attempt with pin; send_done 0 stops after ACK. */
static void
attempt(const char *pin, int send_done, int *op, int *dev)
{
	struct radio_params rp = { .backend = "sim", .sim_dir = air };
	struct radio_device self = { .cod = 0x240404, .rssi = -40 };
	struct intake_params ip = { .keygen = INTAKE_KEYGEN_AUTO, .issue = test_issue };
	struct intake_result res;
	struct dev d = { 0 };
	struct radio *opr = NULL;
	struct radio_link *l = NULL;
	struct pinlink *p = NULL;
	char why[256];
	pthread_t th;

	assert_int_equal(agent_open(state, &d.a), 0);
	memcpy(self.addr, addr, MAC_LEN);
	assert_int_equal(radio_open(&rp, &d.radio), 0);
	assert_int_equal(radio_listen(d.radio, &self), 0);
	assert_int_equal(radio_open(&rp, &opr), 0);
	assert_int_equal(pthread_create(&th, NULL, device_main, &d), 0);
	memcpy(ip.label_mac, addr, MAC_LEN);
	memset(&res, 0, sizeof(res));
	*op = radio_connect(opr, addr, TIMEOUT, &l);
	if (*op == 0 && fault_drop_after > 0)
		assert_int_equal(radio_link_set_fault(l, fault_drop_after, 0), 0);
	if (*op == 0) {
		radio_link_peer(l, ip.link_peer);
		*op = pinlink_connect(l, pin, addr, TIMEOUT, &p);
	}
	if (*op == 0)
		*op = intake_run(p, &ip, &res, why, sizeof(why));
	if (*op == 0 && send_done)
		*op = intake_done(p, &res);
	free(res.cert);
	pinlink_close(p);
	radio_link_close(l);
	pthread_join(th, NULL);
	*dev = d.result;
	radio_close(opr);
	radio_close(d.radio);
	agent_close(d.a);
}

static void
status(int *provisioned, int64_t *failures, int *locked)
{
	struct agent *a = NULL;
	int64_t until;

	assert_int_equal(agent_open(state, &a), 0);
	agent_status(a, provisioned, failures, &until);
	*locked = until > (int64_t)time(NULL);
	agent_close(a);
}

static void
fresh_device(void)
{
	struct agent_init_opts o = { .dir = state, .addr = "02:00:00:00:00:42", .pin = PIN,
		.name = "printer", .model = "P-1", .keystore = "file" };
	char why[256], cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(agent_init(&o, why, sizeof(why)), 0);
	/* manufacturing again over an existing device is refused */
	assert_int_equal(agent_init(&o, why, sizeof(why)), ERR_CONFLICT);
}

static void
test_recorded_device_refuses_until_reset(void **state_)
{
	int op, dev, prov, locked;
	int64_t fails;
	struct agent *a = NULL;
	(void)state_;
	fresh_device();
	attempt(PIN, 1, &op, &dev);
	assert_int_equal(op, 0);
	assert_int_equal(dev, 0);
	status(&prov, &fails, &locked);
	assert_int_equal(prov, 1);
	/* the setup PIN opens nothing now */
	attempt(PIN, 1, &op, &dev);
	assert_int_equal(op, ERR_AUTH);
	assert_int_equal(dev, ERR_CONFLICT);
	/* factory reset reopens intake */
	assert_int_equal(agent_open(state, &a), 0);
	assert_int_equal(agent_reset(a), 0);
	agent_close(a);
	status(&prov, &fails, &locked);
	assert_int_equal(prov, 0);
	attempt(PIN, 1, &op, &dev);
	assert_int_equal(op, 0);
	assert_int_equal(dev, 0);
}

static void
test_lockout(void **state_)
{
	int op, dev, prov, locked;
	int64_t fails;
	(void)state_;
	fresh_device();
	for (int i = 0; i < 5; i++) {
		attempt("000000", 1, &op, &dev);
		assert_int_equal(op, ERR_AUTH);
		assert_int_equal(dev, ERR_AUTH);
	}
	status(&prov, &fails, &locked);
	assert_int_equal(fails, 5);
	assert_true(locked);
	/* the 6th attempt, even with the right PIN, is refused while locked */
	attempt(PIN, 1, &op, &dev);
	assert_int_equal(op, ERR_AUTH);
	assert_int_equal(dev, ERR_FORBIDDEN);
	status(&prov, &fails, &locked);
	assert_int_equal(prov, 0);
}

static void
test_no_done_keeps_intake_open(void **state_)
{
	int op, dev, prov, locked;
	int64_t fails;
	(void)state_;
	fresh_device();
	attempt(PIN, 0, &op, &dev);		/* the server never says DONE */
	assert_int_equal(op, 0);
	assert_int_not_equal(dev, 0);
	status(&prov, &fails, &locked);
	assert_int_equal(prov, 0);
	attempt(PIN, 1, &op, &dev);		/* the retry */
	assert_int_equal(op, 0);
	assert_int_equal(dev, 0);
	status(&prov, &fails, &locked);
	assert_int_equal(prov, 1);
}

/* The device's identity now: 0 and its certificate hash, or ERR_NOT_FOUND. */
static int
identity(uint8_t fp[32])
{
	struct agent *a = NULL;
	EVP_PKEY *key = NULL;
	uint8_t *cert = NULL;
	size_t len = 0;
	int r;

	assert_int_equal(agent_open(state, &a), 0);
	r = keystore_identity(agent_keystore(a), &key, &cert, &len);
	if (r == 0) {
		assert_non_null(key);
		assert_true(EVP_Digest(cert, len, fp, NULL, EVP_sha256(), NULL));
	}
	EVP_PKEY_free(key);
	free(cert);
	agent_close(a);
	return r;
}

/*
 * The link dropped at every stage of the conversation (the operator's side
 * writes: the PAKE, HELLO's answer, KEYGEN_REQ, INSTALL, DONE): the device
 * ends with no identity or with a whole one, is never left provisioned
 * without having seen DONE, and a retry without the fault succeeds.
 */
static void
test_link_dropped_at_every_step(void **state_)
{
	static const size_t drops[] = { 1, 40, 69, 100, 101, 300, 600, 900, 1200, 1500, 2000, 2600 };
	int before_install = 0, after_install = 0;
	(void)state_;
	for (size_t i = 0; i < sizeof(drops) / sizeof(drops[0]); i++) {
		int op, dev, prov, locked;
		int64_t fails;
		uint8_t fp[32];

		fresh_device();
		fault_drop_after = drops[i];
		attempt(PIN, 1, &op, &dev);
		fault_drop_after = 0;
		status(&prov, &fails, &locked);
		if (dev == 0) {
			/* it saw DONE: the whole conversation fitted in the budget */
			assert_int_equal(prov, 1);
			assert_int_equal(identity(fp), 0);
			continue;
		}
		assert_int_equal(prov, 0);
		int id = identity(fp);
		assert_true(id == 0 || id == ERR_NOT_FOUND);
		if (id == 0)
			after_install++;
		else
			before_install++;
		/* a dropped link is not a wrong PIN for the lockout, except while
		 * the PIN exchange itself runs, where the two look the same */
		assert_true(fails <= 1);
		attempt(PIN, 1, &op, &dev);
		assert_int_equal(op, 0);
		assert_int_equal(dev, 0);
		status(&prov, &fails, &locked);
		assert_int_equal(prov, 1);
		assert_int_equal(identity(fp), 0);
	}
	assert_true(before_install >= 3);

	/* just before DONE: find the smallest budget with which the whole
	 * conversation succeeds; a few bytes less loses only DONE */
	size_t lo = 1, hi = 16384;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int op, dev;
		fresh_device();
		fault_drop_after = mid;
		attempt(PIN, 1, &op, &dev);
		fault_drop_after = 0;
		if (dev == 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	{
		int op, dev, prov, locked;
		int64_t fails;
		uint8_t fp[32];
		fresh_device();
		fault_drop_after = lo - 5;
		attempt(PIN, 1, &op, &dev);
		fault_drop_after = 0;
		assert_int_not_equal(dev, 0);
		status(&prov, &fails, &locked);
		assert_int_equal(prov, 0);		/* no DONE, intake stays open */
		assert_int_equal(identity(fp), 0);	/* but the identity is whole */
		after_install++;
		attempt(PIN, 1, &op, &dev);		/* and the retry re-enrols */
		assert_int_equal(op, 0);
		assert_int_equal(dev, 0);
		uint8_t fp2[32];
		assert_int_equal(identity(fp2), 0);
		assert_memory_not_equal(fp, fp2, 32);
	}
	assert_true(after_install >= 1);
}

static void
test_init_refuses_bad_input(void **state_)
{
	struct agent_init_opts o = { .dir = state, .addr = "01:00:5e:00:00:01", .pin = PIN,
		.name = "x", .model = "y", .keystore = "file" };
	char why[256];
	(void)state_;
	assert_int_equal(agent_init(&o, why, sizeof(why)), ERR_BAD_MAC);
	o.addr = "02:00:00:00:00:42";
	o.pin = "12345";
	assert_int_equal(agent_init(&o, why, sizeof(why)), ERR_INVALID);
	o.pin = "12345a";
	assert_int_equal(agent_init(&o, why, sizeof(why)), ERR_INVALID);
	o.pin = PIN;
	o.keystore = "rom";
	assert_int_equal(agent_init(&o, why, sizeof(why)), ERR_INVALID);
	o.keystore = "file";
	o.name = "two\nlines";
	assert_int_equal(agent_init(&o, why, sizeof(why)), ERR_INVALID);

	/* a profile missing its PIN record does not load */
	struct agent *a = NULL;
	char path[400], cmd[900];
	fresh_device();
	snprintf(path, sizeof(path), "%s/profile", state);
	snprintf(cmd, sizeof(cmd), "sed -i '/^w0=/d' '%s'", path);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(agent_open(state, &a), ERR_INVALID);
	assert_null(a);
}

static int
setup(void **state_)
{
	(void)state_;

	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(air, sizeof(air), "%s/air", dir);
	snprintf(state, sizeof(state), "%s/dev", dir);
	snprintf(cadir, sizeof(cadir), "%s/ca", dir);
	if (test_ca_setup(cadir) != 0)
		return -1;
	return 0;
}

static int
teardown(void **state_)
{
	char cmd[400];
	(void)state_;
	test_ca_teardown();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recorded_device_refuses_until_reset),
		cmocka_unit_test(test_lockout),
		cmocka_unit_test(test_no_done_keeps_intake_open),
		cmocka_unit_test(test_link_dropped_at_every_step),
		cmocka_unit_test(test_init_refuses_bad_input),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
