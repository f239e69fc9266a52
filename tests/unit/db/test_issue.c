/*
 * Tests of group-committed issuance, certificate lookups, revocation and CRL
 * entries against a real PostgreSQL: rows written, conflicts, replacement,
 * 16 submitters, hostile strings, batch isolation, a connection lost mid-batch.
 */
#include "db_test.h"

#include <pthread.h>
#include <time.h>

#include <openssl/evp.h>

static struct db *g_db;
static struct db_writer *g_w;

#define DER_LEN 700
#define DAY 86400

struct item {
	struct db_issue it;
	uint8_t der[DER_LEN];
	char mac_s[MAC_STR_LEN];
};

/* A distinct locally administered unicast address per n. */
static void
mac_of(uint32_t n, uint8_t mac[MAC_LEN])
{
	mac[0] = 0x02;
	mac[1] = 0x42;
	mac[2] = (uint8_t)(n >> 24);
	mac[3] = (uint8_t)(n >> 16);
	mac[4] = (uint8_t)(n >> 8);
	mac[5] = (uint8_t)n;
}

/* Fills an issuance for device n with certificate number s. */
static void
item_fill(struct item *x, uint32_t n, uint32_t s)
{
	unsigned int len = 0;
	size_t i;

	memset(x, 0, sizeof(*x));
	mac_of(n, x->it.mac);
	mac_format(x->it.mac, x->mac_s);
	snprintf(x->it.serial_hex, sizeof(x->it.serial_hex), "%08x%08x%08x%08x",
	    0x5eed0000u, (unsigned)getpid(), n, s);
	for (i = 0; i < DER_LEN; i++)
		x->der[i] = (uint8_t)(i * 7 + s);
	x->der[0] = 0x30;
	EVP_Digest(x->it.serial_hex, 32, x->it.fingerprint, &len, EVP_sha256(), NULL);
	x->it.der = x->der;
	x->it.derlen = DER_LEN;
	x->it.not_before = (int64_t)time(NULL) - 300;
	x->it.not_after = x->it.not_before + 365 * DAY;
	x->it.actor = "operator-token";
	x->it.request_id = "req-test";
}

static long long
count_by(const char *sql, const char *param)
{
	const char *p[1] = { param };

	return t_int(sql, 1, p);
}

static int
setup(void **state)
{
	(void)state;
	g_db = t_open_migrated(4);
	return db_writer_start(g_db, 64, &g_w) == 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	db_writer_stop(g_w);
	db_close(g_db);
	return 0;
}

static void
test_issue_writes_all(void **state)
{
	struct item x;
	struct db_cert c;
	const char *groups[] = { "scanners", "floor-2" };
	char upper[33];
	size_t i;

	(void)state;
	item_fill(&x, 1, 1);
	x.it.owner = "alice";
	x.it.groups = groups;
	x.it.ngroups = 2;
	assert_int_equal(db_issue_wait(g_w, &x.it), 0);
	assert_true(x.it.device_id > 0);
	assert_true(x.it.cert_id > 0);

	assert_int_equal(count_by("select count(*) from devices where mac = $1::macaddr "
	    "and status = 'active'", x.mac_s), 1);
	assert_int_equal(count_by("select count(*) from certificates where serial = $1 "
	    "and status = 'active'", x.it.serial_hex), 1);
	assert_int_equal(count_by("select count(*) from audit_log where object = $1 "
	    "and action = 'certificate.issue'", x.it.serial_hex), 1);
	assert_int_equal(t_int("select count(*) from audit_log", 0, NULL), 1);
	assert_int_equal(count_by("select count(*) from directory_outbox where key = $1 "
	    "and op = 'upsert' and done_at is null", x.mac_s), 1);
	assert_int_equal(t_int("select count(*) from directory_outbox", 0, NULL), 1);
	assert_int_equal(count_by("select count(*) from group_members m join groups g on "
	    "g.id = m.group_id join devices d on d.id = m.device_id where d.mac = $1::macaddr",
	    x.mac_s), 2);
	assert_int_equal(count_by("select count(*) from devices d join users u on "
	    "u.id = d.owner_id where d.mac = $1::macaddr and u.name = 'alice'", x.mac_s), 1);

	assert_int_equal(db_cert_by_serial(g_db, x.it.serial_hex, &c), 0);
	assert_int_equal(c.id, x.it.cert_id);
	assert_string_equal(c.serial_hex, x.it.serial_hex);
	assert_memory_equal(c.mac, x.it.mac, MAC_LEN);
	assert_memory_equal(c.fingerprint, x.it.fingerprint, 32);
	assert_int_equal(c.status, DB_CERT_ACTIVE);
	assert_int_equal(c.not_before, x.it.not_before);
	assert_int_equal(c.not_after, x.it.not_after);
	assert_true(c.issued_at >= x.it.not_before);
	assert_int_equal(c.revoked_at, 0);
	assert_int_equal(c.reason, -1);
	assert_int_equal(c.derlen, DER_LEN);
	assert_memory_equal(c.der, x.der, DER_LEN);
	assert_non_null(c.owner);
	assert_string_equal(c.owner, "alice");
	db_cert_clear(&c);
	assert_null(c.der);
	assert_null(c.owner);

	/* upper-case serials are the same serial */
	for (i = 0; i < 32; i++)
		upper[i] = (char)(x.it.serial_hex[i] >= 'a' ? x.it.serial_hex[i] - 32 :
		    x.it.serial_hex[i]);
	upper[32] = '\0';
	assert_int_equal(db_cert_by_serial(g_db, upper, &c), 0);
	db_cert_clear(&c);

	assert_int_equal(db_cert_active_by_mac(g_db, x.it.mac, &c), 0);
	assert_int_equal(c.id, x.it.cert_id);
	db_cert_clear(&c);

	assert_int_equal(db_cert_by_serial(g_db, "0123456789abcdef0123456789abcdef", &c),
	    ERR_NOT_FOUND);
	assert_int_equal(db_cert_by_serial(g_db, "0123", &c), ERR_INVALID);
	assert_int_equal(db_cert_by_serial(g_db, "0123456789abcdef0123456789abcdeg", &c),
	    ERR_INVALID);
	{
		uint8_t m[MAC_LEN];

		mac_of(999999, m);
		assert_int_equal(db_cert_active_by_mac(g_db, m, &c), ERR_NOT_FOUND);
	}
}

static void
test_issue_conflict_writes_nothing(void **state)
{
	struct item x;
	struct db_cert c;
	long long certs, audits, outbox;

	(void)state;
	certs = t_int("select count(*) from certificates", 0, NULL);
	audits = t_int("select count(*) from audit_log", 0, NULL);
	outbox = t_int("select count(*) from directory_outbox", 0, NULL);
	item_fill(&x, 1, 2);		/* same device as above, new serial */
	x.it.owner = "mallory";
	assert_int_equal(db_issue_wait(g_w, &x.it), ERR_CONFLICT);
	assert_int_equal(t_int("select count(*) from certificates", 0, NULL), certs);
	assert_int_equal(t_int("select count(*) from audit_log", 0, NULL), audits);
	assert_int_equal(t_int("select count(*) from directory_outbox", 0, NULL), outbox);
	assert_int_equal(t_int("select count(*) from users where name = 'mallory'", 0, NULL), 0);
	assert_int_equal(db_cert_by_serial(g_db, x.it.serial_hex, &c), ERR_NOT_FOUND);
}

static void
test_issue_replace_supersedes(void **state)
{
	struct item a, b;
	struct db_cert c;
	char buf[64];
	const char *p[1];

	(void)state;
	item_fill(&a, 1, 1);		/* the active one */
	assert_int_equal(db_cert_active_by_mac(g_db, a.it.mac, &c), 0);
	a.it.cert_id = c.id;
	db_cert_clear(&c);

	item_fill(&b, 1, 3);
	b.it.replace = 1;
	b.it.owner = "bob";
	assert_int_equal(db_issue_wait(g_w, &b.it), 0);
	assert_true(b.it.cert_id > a.it.cert_id);

	assert_int_equal(db_cert_by_serial(g_db, a.it.serial_hex, &c), 0);
	assert_int_equal(c.status, DB_CERT_SUPERSEDED);
	assert_int_equal(c.reason, 4);
	assert_true(c.revoked_at > 0);
	db_cert_clear(&c);
	p[0] = a.it.serial_hex;
	assert_int_equal(t_text("select superseded_by from certificates where serial = $1",
	    1, p, buf, sizeof(buf)), 0);
	assert_int_equal(strtoll(buf, NULL, 10), b.it.cert_id);

	assert_int_equal(db_cert_active_by_mac(g_db, b.it.mac, &c), 0);
	assert_int_equal(c.id, b.it.cert_id);
	assert_string_equal(c.owner, "bob");
	db_cert_clear(&c);
	assert_int_equal(count_by("select count(*) from certificates c join devices d on "
	    "d.id = c.device_id where d.mac = $1::macaddr and c.status = 'active'", b.mac_s), 1);
	assert_int_equal(count_by("select count(*) from audit_log where object = $1 and "
	    "detail::jsonb ->> 'replaced' is not null", b.it.serial_hex), 1);
}

static void
test_issue_serial_collision(void **state)
{
	struct item x;
	char mac_s[MAC_STR_LEN];

	(void)state;
	item_fill(&x, 2, 1);
	memcpy(mac_s, x.mac_s, sizeof(mac_s));
	/* a new device, but the serial of device 1's first certificate */
	{
		struct item y;

		item_fill(&y, 1, 1);
		memcpy(x.it.serial_hex, y.it.serial_hex, sizeof(x.it.serial_hex));
	}
	assert_int_equal(db_issue_wait(g_w, &x.it), ERR_CONFLICT);
	assert_int_equal(count_by("select count(*) from devices where mac = $1::macaddr",
	    mac_s), 0);
}

static void
test_issue_invalid_input(void **state)
{
	struct item x;

	(void)state;
	item_fill(&x, 3, 1);
	x.it.serial_hex[5] = 'G';
	assert_int_equal(db_issue_wait(g_w, &x.it), ERR_INVALID);
	item_fill(&x, 3, 1);
	x.it.not_after = x.it.not_before;
	assert_int_equal(db_issue_wait(g_w, &x.it), ERR_INVALID);
	item_fill(&x, 3, 1);
	x.it.ngroups = 1;		/* groups NULL */
	assert_int_equal(db_issue_wait(g_w, &x.it), ERR_INVALID);
	item_fill(&x, 3, 1);
	x.it.derlen = 0;
	assert_int_equal(db_issue_wait(g_w, &x.it), ERR_INVALID);
}

/* Owner, groups and actor full of SQL and array-literal metacharacters. */
static void
test_issue_metacharacters_verbatim(void **state)
{
	static const char *const evil[] = {
		"O'Brien\"; drop table devices; --",
		"back\\slash \\\\ and 'quotes'",
		"{brace,comma}",
		"NULL",
		"semi;colon",
		"\xc3\xa9t\xc3\xa9 \xe2\x82\xac",
	};
	struct item x;
	size_t i;

	(void)state;
	item_fill(&x, 4, 1);
	x.it.owner = evil[0];
	x.it.groups = evil;
	x.it.ngroups = sizeof(evil) / sizeof(evil[0]);
	x.it.actor = evil[1];
	x.it.request_id = evil[4];
	assert_int_equal(db_issue_wait(g_w, &x.it), 0);
	assert_int_equal(count_by("select count(*) from users where name = $1", evil[0]), 1);
	for (i = 0; i < x.it.ngroups; i++)
		assert_int_equal(count_by("select count(*) from group_members m join groups g "
		    "on g.id = m.group_id where g.name = $1", evil[i]), 1);
	assert_int_equal(count_by("select count(*) from audit_log where actor = $1", evil[1]), 1);
	assert_int_equal(count_by("select count(*) from audit_log where "
	    "detail::jsonb ->> 'owner' = $1", evil[0]), 1);
	assert_int_equal(count_by("select count(*) from audit_log where "
	    "detail::jsonb ->> 'request_id' = $1", evil[4]), 1);
	assert_int_equal(t_int("select count(*) from pg_class where relname = 'devices'",
	    0, NULL), 1);
}

/* ---------------------------------------------------------------------
 * Asynchronous submission: a batch where some items fail and others not.
 */
struct waitall {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int left;
};

static void
waitall_done(struct db_issue *it, void *arg)
{
	struct waitall *w = arg;

	(void)it;
	pthread_mutex_lock(&w->mu);
	w->left--;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void
waitall_wait(struct waitall *w)
{
	pthread_mutex_lock(&w->mu);
	while (w->left > 0)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

static void
test_batch_item_isolation(void **state)
{
	struct item x[12];
	struct waitall wa = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 12 };
	char longname[200];
	int i;

	(void)state;
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';	/* over the 128-byte limit of users.name */
	for (i = 0; i < 12; i++) {
		item_fill(&x[i], 100 + (uint32_t)i, 1);
		x[i].it.done = waitall_done;
		x[i].it.arg = &wa;
	}
	x[4].it.owner = longname;		/* refused by a constraint */
	item_fill(&x[7], 106, 2);		/* second certificate for item 6's device */
	x[7].it.done = waitall_done;
	x[7].it.arg = &wa;
	for (i = 0; i < 12; i++)
		assert_int_equal(db_writer_submit(g_w, &x[i].it), 0);
	waitall_wait(&wa);
	for (i = 0; i < 12; i++) {
		if (i == 4)
			assert_int_equal(x[i].it.result, ERR_DB);
		else if (i == 7)
			assert_int_equal(x[i].it.result, ERR_CONFLICT);
		else
			assert_int_equal(x[i].it.result, 0);
	}
	assert_int_equal(count_by("select count(*) from devices where mac = $1::macaddr",
	    x[4].mac_s), 0);
	assert_int_equal(count_by("select count(*) from certificates where serial = $1",
	    x[7].it.serial_hex), 0);
	assert_int_equal(count_by("select count(*) from certificates where serial = $1",
	    x[11].it.serial_hex), 1);
}

/* Several requests for one device in a batch behave as if run one after
 * the other: the first wins, a replace supersedes it, a plain one conflicts. */
static void
test_batch_same_device(void **state)
{
	struct item x[4];
	struct waitall wa = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 4 };
	struct db_cert c;
	int i;

	(void)state;
	for (i = 0; i < 4; i++) {
		item_fill(&x[i], 200, (uint32_t)i + 1);
		x[i].it.done = waitall_done;
		x[i].it.arg = &wa;
	}
	x[2].it.replace = 1;
	for (i = 0; i < 4; i++)
		assert_int_equal(db_writer_submit(g_w, &x[i].it), 0);
	waitall_wait(&wa);
	assert_int_equal(x[0].it.result, 0);
	assert_int_equal(x[1].it.result, ERR_CONFLICT);
	assert_int_equal(x[2].it.result, 0);
	assert_int_equal(x[3].it.result, ERR_CONFLICT);
	assert_int_equal(db_cert_by_serial(g_db, x[0].it.serial_hex, &c), 0);
	assert_int_equal(c.status, DB_CERT_SUPERSEDED);
	db_cert_clear(&c);
	assert_int_equal(db_cert_active_by_mac(g_db, x[2].it.mac, &c), 0);
	assert_int_equal(c.id, x[2].it.cert_id);
	db_cert_clear(&c);
	assert_int_equal(count_by("select count(*) from audit_log a join certificates c on "
	    "c.serial = a.object join devices d on d.id = c.device_id where d.mac = $1::macaddr",
	    x[0].mac_s), 2);
}

/* The batch function itself: an item that only a table constraint refuses
 * (an upper-case serial) sends the batch down the one-by-one path, where it
 * alone fails. */
static void
test_batch_fallback_sql(void **state)
{
	const char *p[6] = { "02:43:00:00:00:01", "02:43:00:00:00:02", "02:43:00:00:00:03",
	    "fb000000000000000000000000000001", "FB000000000000000000000000000002",
	    "fb000000000000000000000000000003" };
	struct db_audit_report rep;
	PGresult *res;

	(void)state;
	res = PQexecParams(t_pg, "select r_item, r_status from provd_issue_batch("
	    "array[$1, $2, $3]::macaddr[], array[$4, $5, $6]::text[], "
	    "array[sha256($4::bytea), sha256($5::bytea), sha256($6::bytea)], "
	    "array['\\x30'::bytea, '\\x30'::bytea, '\\x30'::bytea], "
	    "array[1700000000, 1700000000, 1700000000]::int8[], "
	    "array[1900000000, 1900000000, 1900000000]::int8[], "
	    "array['fb-owner', null, 'fb-owner'], array[1, 3]::int4[], "
	    "array['fb-group', 'fb-group'], array[false, false, false], "
	    "array['fb', 'fb', 'fb'], array['r1', 'r2', 'r3']) order by r_item",
	    6, NULL, p, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	assert_int_equal(PQntuples(res), 3);
	assert_string_equal(PQgetvalue(res, 0, 1), "ok");
	assert_string_equal(PQgetvalue(res, 1, 1), "invalid");
	assert_string_equal(PQgetvalue(res, 2, 1), "ok");
	PQclear(res);
	assert_int_equal(t_int("select count(*) from certificates where serial like 'fb%'",
	    0, NULL), 2);
	assert_int_equal(t_int("select count(*) from audit_log where object like 'fb%'",
	    0, NULL), 2);
	assert_int_equal(t_int("select count(*) from devices where mac = '02:43:00:00:00:02'",
	    0, NULL), 0);
	assert_int_equal(t_int("select count(*) from group_members m join groups g on "
	    "g.id = m.group_id where g.name = 'fb-group'", 0, NULL), 2);
	assert_int_equal(db_audit_verify(g_db, &rep), 0);
	assert_int_equal(rep.first_bad, 0);
}

/* ---------------------------------------------------------------------
 * 16 threads at once.
 */
#define NTHREADS 16
#define PER_THREAD 40

struct th_arg {
	uint32_t base;
	int failures;
};

static void *
issue_thread(void *arg)
{
	struct th_arg *a = arg;
	struct item x;
	const char *groups[1] = { "bulk" };
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		item_fill(&x, a->base + (uint32_t)i, 1);
		x.it.owner = "bulk-owner";
		x.it.groups = groups;
		x.it.ngroups = 1;
		if (db_issue_wait(g_w, &x.it) != 0 || x.it.cert_id <= 0)
			a->failures++;
	}
	return NULL;
}

static void
test_issue_concurrent(void **state)
{
	pthread_t th[NTHREADS];
	struct th_arg a[NTHREADS];
	struct db_audit_report rep;
	long long before;
	int i;

	(void)state;
	before = t_int("select count(*) from certificates", 0, NULL);
	for (i = 0; i < NTHREADS; i++) {
		a[i].base = 10000 + (uint32_t)i * 1000;
		a[i].failures = 0;
		assert_int_equal(pthread_create(&th[i], NULL, issue_thread, &a[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].failures, 0);
	}
	assert_int_equal(t_int("select count(*) from certificates", 0, NULL),
	    before + NTHREADS * PER_THREAD);
	assert_int_equal(t_int("select count(distinct c.device_id) from certificates c "
	    "join group_members m on m.device_id = c.device_id join groups g on "
	    "g.id = m.group_id where g.name = 'bulk'", 0, NULL), NTHREADS * PER_THREAD);
	assert_int_equal(t_int("select count(*) from audit_log where action = "
	    "'certificate.issue'", 0, NULL),
	    t_int("select count(*) from certificates", 0, NULL));
	assert_int_equal(t_int("select count(*) from users where name = 'bulk-owner'", 0, NULL), 1);
	assert_int_equal(db_audit_verify(g_db, &rep), 0);
	assert_int_equal(rep.first_bad, 0);
	assert_int_equal(rep.rows, t_int("select count(*) from audit_log", 0, NULL));
}

/* Two provd instances (two pools, two writers) race for the same devices:
 * each device ends with exactly one certificate, the loser sees a conflict. */
#define RACE_DEVICES 120

struct race_arg {
	struct db_writer *w;
	uint32_t tag;
	int ok, conflict, other;
};

static void *
race_thread(void *arg)
{
	struct race_arg *a = arg;
	struct item x;
	int i;

	for (i = 0; i < RACE_DEVICES; i++) {
		item_fill(&x, 50000 + (uint32_t)i, a->tag);
		switch (db_issue_wait(a->w, &x.it)) {
		case 0:
			a->ok++;
			break;
		case ERR_CONFLICT:
			a->conflict++;
			break;
		default:
			a->other++;
		}
	}
	return NULL;
}

static void
test_two_instances_race(void **state)
{
	struct db *db2 = NULL;
	struct db_writer *w2 = NULL;
	pthread_t th[4];
	struct race_arg a[4];
	int i, ok = 0, conflict = 0;

	(void)state;
	assert_int_equal(db_open_conninfo(t_conninfo, 2, &db2), 0);
	assert_int_equal(db_writer_start(db2, 64, &w2), 0);
	for (i = 0; i < 4; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].w = i % 2 == 0 ? g_w : w2;
		a[i].tag = 0x100 + (uint32_t)i;
		assert_int_equal(pthread_create(&th[i], NULL, race_thread, &a[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].other, 0);
		ok += a[i].ok;
		conflict += a[i].conflict;
	}
	db_writer_stop(w2);
	db_close(db2);
	assert_int_equal(ok, RACE_DEVICES);
	assert_int_equal(conflict, 3 * RACE_DEVICES);
	assert_int_equal(t_int("select count(*) from certificates c join devices d on "
	    "d.id = c.device_id where d.mac >= '02:42:00:00:c3:50' and "
	    "d.mac < '02:42:00:00:c3:c8'", 0, NULL), RACE_DEVICES);
}

/* ---------------------------------------------------------------------
 * Revocation and CRL.
 */
static int
crl_has(const struct db_revoked *v, size_t n, const char *serial_hex, int reason)
{
	uint8_t s[16];
	size_t i;

	if (hex_decode(serial_hex, s, sizeof(s)) != 0)
		return 0;
	for (i = 0; i < n; i++)
		if (memcmp(v[i].serial, s, 16) == 0)
			return v[i].reason == reason && v[i].revoked_at > 0;
	return 0;
}

static void
test_revoke_and_crl(void **state)
{
	struct item cur, old, gone;
	struct db_cert c;
	struct db_revoked *v = NULL;
	size_t n = 0;
	int64_t num1 = 0, num2 = 0;
	long long audits;

	(void)state;
	item_fill(&cur, 1, 3);		/* device 1's active certificate */
	item_fill(&old, 1, 1);		/* superseded */
	audits = t_int("select count(*) from audit_log", 0, NULL);

	assert_int_equal(db_crl_entries(g_db, &v, &n, &num1), 0);
	assert_true(num1 >= 1);
	assert_false(crl_has(v, n, cur.it.serial_hex, 1));
	assert_true(crl_has(v, n, old.it.serial_hex, 4));
	free(v);

	assert_int_equal(db_cert_revoke(g_db, cur.it.serial_hex, 1, "security-token",
	    "req-revoke", &c), 0);
	assert_int_equal(c.status, DB_CERT_REVOKED);
	assert_int_equal(c.reason, 1);
	assert_true(c.revoked_at > 0);
	db_cert_clear(&c);
	assert_int_equal(count_by("select count(*) from devices where mac = $1::macaddr "
	    "and status = 'revoked'", cur.mac_s), 1);
	assert_int_equal(t_int("select count(*) from audit_log", 0, NULL), audits + 1);
	assert_int_equal(count_by("select count(*) from audit_log where object = $1 and "
	    "action = 'certificate.revoke' and actor = 'security-token'", cur.it.serial_hex), 1);
	assert_int_equal(count_by("select count(*) from directory_outbox where key = $1 "
	    "and op = 'revoke'", cur.mac_s), 1);
	assert_int_equal(db_cert_active_by_mac(g_db, cur.it.mac, &c), ERR_NOT_FOUND);

	assert_int_equal(db_crl_entries(g_db, &v, &n, &num2), 0);
	assert_true(num2 > num1);
	assert_true(crl_has(v, n, cur.it.serial_hex, 1));
	assert_true(crl_has(v, n, old.it.serial_hex, 4));
	free(v);

	/* twice, superseded, unknown, bad reasons */
	assert_int_equal(db_cert_revoke(g_db, cur.it.serial_hex, 1, "s", NULL, NULL), ERR_CONFLICT);
	assert_int_equal(db_cert_revoke(g_db, old.it.serial_hex, 1, "s", NULL, NULL), ERR_CONFLICT);
	assert_int_equal(db_cert_revoke(g_db, "00000000000000000000000000000001", 1, "s",
	    NULL, NULL), ERR_NOT_FOUND);
	assert_int_equal(db_cert_revoke(g_db, cur.it.serial_hex, 7, "s", NULL, NULL), ERR_INVALID);
	assert_int_equal(db_cert_revoke(g_db, cur.it.serial_hex, 11, "s", NULL, NULL), ERR_INVALID);
	assert_int_equal(t_int("select count(*) from audit_log", 0, NULL), audits + 1);

	/* a revoked certificate that has expired is no longer listed */
	item_fill(&gone, 5, 1);
	gone.it.not_before = (int64_t)time(NULL) - 3 * DAY;
	gone.it.not_after = (int64_t)time(NULL) - DAY;
	assert_int_equal(db_issue_wait(g_w, &gone.it), 0);
	assert_int_equal(db_cert_revoke(g_db, gone.it.serial_hex, 0, "s", NULL, NULL), 0);
	assert_int_equal(db_crl_entries(g_db, &v, &n, &num1), 0);
	assert_false(crl_has(v, n, gone.it.serial_hex, 0));
	assert_true(crl_has(v, n, cur.it.serial_hex, 1));
	free(v);

	/* a revoked device can be issued again (re-enrolment) */
	item_fill(&cur, 1, 4);
	assert_int_equal(db_issue_wait(g_w, &cur.it), 0);
	assert_int_equal(count_by("select count(*) from devices where mac = $1::macaddr "
	    "and status = 'active'", cur.mac_s), 1);
}

/* ---------------------------------------------------------------------
 * The writer's connection dies while a batch waits in the server: the item
 * is reported unavailable (not committed), and the writer recovers.
 */
static void
test_writer_connection_lost(void **state)
{
	struct item x, y;
	struct waitall wa = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1 };
	int tries;

	(void)state;
	/* hold the audit chain lock so the writer's batch blocks in the server */
	t_exec("begin", 0, NULL);
	t_exec("select audit_lock()", 0, NULL);
	item_fill(&x, 6, 1);
	x.it.done = waitall_done;
	x.it.arg = &wa;
	assert_int_equal(db_writer_submit(g_w, &x.it), 0);
	for (tries = 0; tries < 100; tries++) {
		/* statistics are cached per transaction: refresh them */
		t_exec("select pg_stat_clear_snapshot()", 0, NULL);
		if (t_int("select count(*) from pg_stat_activity where datname = "
		    "current_database() and wait_event_type = 'Lock'", 0, NULL) == 1)
			break;
		usleep(20000);
	}
	assert_true(tries < 100);
	t_exec("select pg_terminate_backend(pid) from pg_stat_activity where datname = "
	    "current_database() and wait_event_type = 'Lock'", 0, NULL);
	waitall_wait(&wa);
	t_exec("rollback", 0, NULL);
	assert_int_equal(x.it.result, ERR_UNAVAILABLE);
	assert_int_equal(count_by("select count(*) from certificates where serial = $1",
	    x.it.serial_hex), 0);

	/* the next request reconnects and succeeds */
	item_fill(&y, 6, 2);
	assert_int_equal(db_issue_wait(g_w, &y.it), 0);
}

static void
test_writer_start_stop(void **state)
{
	struct db_writer *w = NULL;

	(void)state;
	assert_int_equal(db_writer_start(g_db, 0, &w), ERR_INVALID);
	assert_null(w);
	assert_int_equal(db_writer_start(g_db, 8, &w), 0);
	db_writer_stop(w);
	db_writer_stop(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issue_writes_all),
		cmocka_unit_test(test_issue_conflict_writes_nothing),
		cmocka_unit_test(test_issue_replace_supersedes),
		cmocka_unit_test(test_issue_serial_collision),
		cmocka_unit_test(test_issue_invalid_input),
		cmocka_unit_test(test_issue_metacharacters_verbatim),
		cmocka_unit_test(test_batch_item_isolation),
		cmocka_unit_test(test_batch_same_device),
		cmocka_unit_test(test_batch_fallback_sql),
		cmocka_unit_test(test_issue_concurrent),
		cmocka_unit_test(test_two_instances_race),
		cmocka_unit_test(test_revoke_and_crl),
		cmocka_unit_test(test_writer_connection_lost),
		cmocka_unit_test(test_writer_start_stop),
	};
	int r;

	log_init("test_issue", LOG_LVL_WARN, 0, 0);
	t_db_create("issue");
	r = cmocka_run_group_tests(tests, setup, teardown);
	t_db_drop();
	return r;
}
