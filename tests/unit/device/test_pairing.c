/*
 * test_pairing.c: the pairing store — the file format (round trip, and
 * files refused: a missing, repeated or unknown key, bad hex, a model that
 * is too long or not printable, no final newline, a NUL, too big), the
 * two phases (prepare refuses a second pairing, commit, discard, unpair of
 * one peer or any), recovery at start (temporary files removed, an
 * initiator's pending half dropped, a responder's kept) and the rule of a
 * meeting for every pair of states.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "device/device.h"

static char dir[] = "/tmp/provd-test-pairing.XXXXXX";

static void
sample(struct pairing *p, int role)
{
	memset(p, 0, sizeof(*p));
	for (size_t i = 0; i < MAC_LEN; i++)
		p->peer[i] = (uint8_t)(i == 0 ? 0x02 : i);
	memset(p->fpr, 0xab, sizeof(p->fpr));
	memset(p->id, 0x5c, sizeof(p->id));
	p->role = role;
	str_copy(p->model, sizeof(p->model), "Headset H1 (Acme Audio)");
}

static void
test_format_parse(void **state)
{
	struct pairing p, q;
	char text[PAIRING_FILE_MAX];
	int n;

	(void)state;
	sample(&p, PAIRING_RESPONDER);
	n = pairing_format(&p, text, sizeof(text));
	assert_true(n > 0);
	assert_int_equal(pairing_parse(text, (size_t)n, &q), 0);
	assert_memory_equal(&p, &q, sizeof(p));
	assert_int_equal(pairing_format(&p, text, 20), ERR_TOO_BIG);
	p.model[0] = '\n';
	assert_int_equal(pairing_format(&p, text, sizeof(text)), ERR_INVALID);
	sample(&p, 0);
	assert_int_equal(pairing_format(&p, text, sizeof(text)), ERR_INVALID);
}

static void
test_parse_refused(void **state)
{
	static const char good[] =
	    "peer=02:01:02:03:04:05\n"
	    "fingerprint=abababababababababababababababababababababababababababababababab\n"
	    "id=5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c\n"
	    "role=initiator\nmodel=x\n";
	static const char *const bad[] = {
		"peer=02:01:02:03:04:05\n",				/* keys missing */
		"peer=02:01:02:03:04:05\npeer=02:01:02:03:04:05\n",	/* repeated */
		"colour=red\n",						/* unknown key */
		"peer\n",						/* no = */
		"peer=01:01:02:03:04:05\n",				/* multicast */
		"fingerprint=zz\n",					/* bad hex */
		"fingerprint=abab\n",					/* short */
		"id=5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5\n",			/* odd */
		"role=owner\n",
		"model=\x01\n",
	};
	char text[PAIRING_FILE_MAX * 2];
	struct pairing p;
	size_t n;

	(void)state;
	assert_int_equal(pairing_parse(good, strlen(good), &p), 0);
	assert_int_equal(p.role, PAIRING_INITIATOR);
	assert_string_equal(p.model, "x");
	/* no final newline */
	assert_int_equal(pairing_parse(good, strlen(good) - 1, &p), ERR_INVALID);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(pairing_parse(bad[i], strlen(bad[i]), &p), ERR_INVALID);
	/* a NUL inside */
	memcpy(text, good, sizeof(good));
	text[3] = '\0';
	assert_int_equal(pairing_parse(text, strlen(good), &p), ERR_INVALID);
	/* a model one byte too long, and a file over the limit */
	n = (size_t)snprintf(text, sizeof(text), "%.*smodel=%0*d\n", (int)(strlen(good) - 8), good,
	    PAIRING_MODEL_MAX + 1, 0);
	assert_int_equal(pairing_parse(text, n, &p), ERR_INVALID);
	memset(text, 'a', sizeof(text));
	assert_int_equal(pairing_parse(text, PAIRING_FILE_MAX + 1, &p), ERR_INVALID);
}

static int
exists(const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static void
test_store(void **state)
{
	struct pairing p, q, other;
	enum pairing_state st;
	char why[256], path[512];
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(pairing_is_consumer(dir), 0);
	assert_int_equal(pairing_set_consumer(dir, 1), 0);
	assert_int_equal(pairing_is_consumer(dir), 1);
	assert_int_equal(pairing_load(dir, &st, &q), 0);
	assert_int_equal(st, PAIRING_NONE);
	assert_int_equal(pairing_commit(dir), ERR_NOT_FOUND);

	/* prepare, commit; a second pairing is refused */
	sample(&p, PAIRING_RESPONDER);
	assert_int_equal(pairing_prepare(dir, &p), 0);
	assert_int_equal(pairing_prepare(dir, &p), ERR_CONFLICT);
	assert_int_equal(pairing_load(dir, &st, &q), 0);
	assert_int_equal(st, PAIRING_PENDING);
	assert_int_equal(pairing_commit(dir), 0);
	assert_false(exists("pairing.pending"));
	assert_int_equal(pairing_load(dir, &st, &q), 0);
	assert_int_equal(st, PAIRING_PAIRED);
	assert_memory_equal(&p, &q, sizeof(p));
	assert_int_equal(pairing_prepare(dir, &p), ERR_CONFLICT);

	/* unpair: only the named peer */
	sample(&other, PAIRING_RESPONDER);
	other.peer[5] ^= 1;
	assert_int_equal(pairing_remove(dir, other.peer), ERR_NOT_FOUND);
	assert_int_equal(pairing_remove(dir, p.peer), 0);
	assert_int_equal(pairing_load(dir, &st, &q), 0);
	assert_int_equal(st, PAIRING_NONE);

	/* recovery: temporary files go, a responder's pending half stays */
	assert_int_equal(pairing_prepare(dir, &p), 0);
	snprintf(path, sizeof(path), "%s/pairing.tmp.4242", dir);
	assert_non_null(f = fopen(path, "w"));
	fclose(f);
	assert_int_equal(pairing_recover(dir, why, sizeof(why)), 0);
	assert_false(exists("pairing.tmp.4242"));
	assert_true(exists("pairing.pending"));
	assert_string_equal(why, "");
	assert_int_equal(pairing_discard(dir), 0);
	assert_false(exists("pairing.pending"));
	assert_int_equal(pairing_discard(dir), 0);

	/* ... an initiator's is dropped, and that is said */
	sample(&p, PAIRING_INITIATOR);
	assert_int_equal(pairing_prepare(dir, &p), 0);
	assert_int_equal(pairing_recover(dir, why, sizeof(why)), 0);
	assert_false(exists("pairing.pending"));
	assert_non_null(strstr(why, "abandoned"));

	/* a file that does not parse: load refuses, unpair of anyone removes */
	snprintf(path, sizeof(path), "%s/pairing", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("garbage\n", f);
	fclose(f);
	assert_int_equal(pairing_load(dir, &st, &q), ERR_INVALID);
	assert_int_equal(pairing_remove(dir, NULL), 0);
	assert_int_equal(pairing_remove(dir, NULL), ERR_NOT_FOUND);

	assert_int_equal(pairing_set_consumer(dir, 0), 0);
	assert_int_equal(pairing_is_consumer(dir), 0);
	assert_int_equal(rmdir(dir), 0);
}

static void
test_meet_rule(void **state)
{
	uint8_t x[PAIRING_ID_LEN], y[PAIRING_ID_LEN];
	int act;

	(void)state;
	memset(x, 1, sizeof(x));
	memset(y, 2, sizeof(y));
	/* pending: committed only when the initiator holds the same pairing */
	assert_int_equal(pairing_meet_rule(PAIRING_PENDING, x, PAIRING_PAIRED, x, &act), 1);
	assert_int_equal(act, 1);
	assert_int_equal(pairing_meet_rule(PAIRING_PENDING, x, PAIRING_PAIRED, y, &act), 0);
	assert_int_equal(act, -1);
	assert_int_equal(pairing_meet_rule(PAIRING_PENDING, x, PAIRING_NONE, y, &act), 0);
	assert_int_equal(act, -1);
	assert_int_equal(pairing_meet_rule(PAIRING_PENDING, x, PAIRING_PENDING, x, &act), 0);
	assert_int_equal(act, -1);
	/* paired: the link goes on with the same pairing, pending or not */
	assert_int_equal(pairing_meet_rule(PAIRING_PAIRED, x, PAIRING_PAIRED, x, &act), 1);
	assert_int_equal(act, 0);
	assert_int_equal(pairing_meet_rule(PAIRING_PAIRED, x, PAIRING_PENDING, x, &act), 1);
	assert_int_equal(act, 0);
	assert_int_equal(pairing_meet_rule(PAIRING_PAIRED, x, PAIRING_PAIRED, y, &act), 0);
	assert_int_equal(pairing_meet_rule(PAIRING_PAIRED, x, PAIRING_NONE, y, &act), 0);
	assert_int_equal(act, 0);
	/* nothing here: nothing to do, no link */
	assert_int_equal(pairing_meet_rule(PAIRING_NONE, x, PAIRING_PAIRED, x, &act), 0);
	assert_int_equal(act, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_parse),
		cmocka_unit_test(test_parse_refused),
		cmocka_unit_test(test_store),
		cmocka_unit_test(test_meet_rule),
	};

	log_init("test_pairing", LOG_LVL_ERROR, 0, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
