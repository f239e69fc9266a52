/*
 * test_pinlink.c: the PIN-secured link over the sim radio — the right PIN
 * gives both sides one TLS session (same exported keys), a wrong PIN fails
 * closed on both sides, the same PIN gives a different key every time, and
 * a device that hangs up during the exchange fails the operator's side.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/crypto.h>

#include "provision/provision.h"

#define TIMEOUT 10000

static char air[] = "/tmp/provd-test-pinlink.XXXXXX";
static const uint8_t dev_addr[MAC_LEN] = { 0x00, 0x1a, 0x7d, 0xda, 0x71, 0x13 };

struct device {
	const char *pin;		/* the PIN its record was made from */
	struct radio *radio;
	int result;
	uint8_t exported[32];
	int hang_up;			/* close right after accepting */
};

static void *
device_main(void *arg)
{
	struct device *d = arg;
	struct radio_link *l = NULL;
	struct pinlink *p = NULL;
	uint8_t w0[SPAKE2P_SCALAR_LEN], w1[SPAKE2P_SCALAR_LEN], L[SPAKE2P_POINT_LEN];
	char buf[6] = { 0 };

	d->result = ERR_INTERNAL;
	if (spake2p_derive(d->pin, dev_addr, MAC_LEN, w0, w1) != 0 || spake2p_make_L(w1, L) != 0)
		return NULL;
	OPENSSL_cleanse(w1, sizeof(w1));	/* the device keeps only w0 and L */
	if ((d->result = radio_accept(d->radio, TIMEOUT, &l)) != 0)
		return NULL;
	if (d->hang_up) {
		radio_link_close(l);
		d->result = 0;
		return NULL;
	}
	d->result = pinlink_accept(l, w0, L, dev_addr, TIMEOUT, &p);
	OPENSSL_cleanse(w0, sizeof(w0));
	if (d->result == 0) {
		if ((d->result = pinlink_read(p, buf, 5)) == 0 && strcmp(buf, "hello") == 0 &&
		    (d->result = pinlink_write(p, "world", 5)) == 0)
			d->result = pinlink_export(p, "EXPORTER-provd-test", d->exported, 32);
		else if (d->result == 0)
			d->result = ERR_INVALID;
	}
	pinlink_close(p);
	radio_link_close(l);
	return NULL;
}

/* Runs one intake link: device with dev_pin, operator with op_pin. */
static int
run(const char *dev_pin, const char *op_pin, int hang_up, int *dev_result,
    uint8_t op_key[32], uint8_t dev_key[32])
{
	struct radio_params rp = { .backend = "sim", .sim_dir = air };
	struct radio_device self = { .cod = 0x240404, .rssi = -40 };
	struct device d = { .pin = dev_pin, .hang_up = hang_up };
	struct radio *op = NULL;
	struct radio_link *l = NULL;
	struct pinlink *p = NULL;
	pthread_t th;
	char buf[6] = { 0 };
	int r;

	memcpy(self.addr, dev_addr, MAC_LEN);
	snprintf(self.name, sizeof(self.name), "headset");
	assert_int_equal(radio_open(&rp, &d.radio), 0);
	assert_int_equal(radio_listen(d.radio, &self), 0);
	assert_int_equal(radio_open(&rp, &op), 0);
	assert_int_equal(pthread_create(&th, NULL, device_main, &d), 0);
	r = radio_connect(op, dev_addr, TIMEOUT, &l);
	if (r == 0)
		r = pinlink_connect(l, op_pin, dev_addr, TIMEOUT, &p);
	if (r == 0) {
		if ((r = pinlink_write(p, "hello", 5)) == 0 && (r = pinlink_read(p, buf, 5)) == 0)
			r = strcmp(buf, "world") == 0 ? 0 : ERR_INVALID;
		if (r == 0)
			r = pinlink_export(p, "EXPORTER-provd-test", op_key, 32);
	}
	pinlink_close(p);
	radio_link_close(l);
	pthread_join(th, NULL);
	*dev_result = d.result;
	memcpy(dev_key, d.exported, 32);
	radio_close(op);
	radio_close(d.radio);
	return r;
}

static void
test_right_pin(void **state)
{
	uint8_t a[32], b[32];
	int dr;
	(void)state;
	assert_int_equal(run("493817", "493817", 0, &dr, a, b), 0);
	assert_int_equal(dr, 0);
	assert_memory_equal(a, b, 32);
}

static void
test_wrong_pin_fails_closed(void **state)
{
	uint8_t a[32], b[32];
	int dr;
	(void)state;
	assert_int_equal(run("493817", "493818", 0, &dr, a, b), ERR_AUTH);
	assert_int_equal(dr, ERR_AUTH);
}

static void
test_fresh_key_every_time(void **state)
{
	uint8_t a1[32], b1[32], a2[32], b2[32];
	int dr;
	(void)state;
	assert_int_equal(run("000001", "000001", 0, &dr, a1, b1), 0);
	assert_int_equal(dr, 0);
	assert_int_equal(run("000001", "000001", 0, &dr, a2, b2), 0);
	assert_int_equal(dr, 0);
	assert_memory_equal(a1, b1, 32);
	assert_memory_equal(a2, b2, 32);
	assert_memory_not_equal(a1, a2, 32);
}

static void
test_device_hangs_up(void **state)
{
	uint8_t a[32], b[32];
	int dr;
	(void)state;
	assert_int_equal(run("493817", "493817", 1, &dr, a, b), ERR_AUTH);
	assert_int_equal(dr, 0);
}

/* A prover that takes shareV and confirmV (enough to test its PIN guess
 * offline) and then goes silent must cost the device a failed attempt. */
static void *
silent_device(void *arg)
{
	struct device *d = arg;
	struct radio_link *l = NULL;
	struct pinlink *p = NULL;
	uint8_t w0[SPAKE2P_SCALAR_LEN], w1[SPAKE2P_SCALAR_LEN], L[SPAKE2P_POINT_LEN];

	d->result = ERR_INTERNAL;
	if (spake2p_derive(d->pin, dev_addr, MAC_LEN, w0, w1) != 0 || spake2p_make_L(w1, L) != 0)
		return NULL;
	if ((d->result = radio_accept(d->radio, TIMEOUT, &l)) != 0)
		return NULL;
	d->result = pinlink_accept(l, w0, L, dev_addr, 500, &p);
	pinlink_close(p);
	radio_link_close(l);
	return NULL;
}

static void
test_silent_prover_counts_as_wrong_pin(void **state)
{
	struct radio_params rp = { .backend = "sim", .sim_dir = air };
	struct radio_device self = { .cod = 0x240404, .rssi = -40 };
	struct device d = { .pin = "493817" };
	struct radio *op = NULL;
	struct radio_link *l = NULL;
	struct spake2p *sp = NULL;
	uint8_t w0[SPAKE2P_SCALAR_LEN], w1[SPAKE2P_SCALAR_LEN];
	uint8_t first[4 + SPAKE2P_POINT_LEN], reply[SPAKE2P_POINT_LEN + SPAKE2P_MAC_LEN];
	pthread_t th;
	(void)state;

	memcpy(self.addr, dev_addr, MAC_LEN);
	assert_int_equal(radio_open(&rp, &d.radio), 0);
	assert_int_equal(radio_listen(d.radio, &self), 0);
	assert_int_equal(radio_open(&rp, &op), 0);
	assert_int_equal(pthread_create(&th, NULL, silent_device, &d), 0);
	assert_int_equal(radio_connect(op, dev_addr, TIMEOUT, &l), 0);
	/* a guess, sent by hand */
	assert_int_equal(spake2p_derive("111111", dev_addr, MAC_LEN, w0, w1), 0);
	assert_int_equal(spake2p_prover_new(w0, w1, (const uint8_t *)"provd intake link v1", 20,
	    (const uint8_t *)"provd", 5, dev_addr, MAC_LEN, &sp), 0);
	memcpy(first, "PLK1", 4);
	assert_int_equal(spake2p_prover_start(sp, first + 4), 0);
	assert_int_equal(radio_link_write(l, first, sizeof(first), TIMEOUT), 0);
	assert_int_equal(radio_link_read(l, reply, sizeof(reply), TIMEOUT), 0);
	/* ... and silence: no confirmP */
	pthread_join(th, NULL);
	assert_int_equal(d.result, ERR_AUTH);
	spake2p_free(sp);
	radio_link_close(l);
	radio_close(op);
	radio_close(d.radio);
}

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(air) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", air);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_right_pin),
		cmocka_unit_test(test_wrong_pin_fails_closed),
		cmocka_unit_test(test_fresh_key_every_time),
		cmocka_unit_test(test_device_hangs_up),
		cmocka_unit_test(test_silent_prover_counts_as_wrong_pin),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
