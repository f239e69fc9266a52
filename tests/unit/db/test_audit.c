/*
 * Tests of the hash-chained audit log against a real PostgreSQL: appends,
 * the append-only triggers, and verification catching an edited row, a
 * deleted row, a deleted tail, reordered rows and a forged append.
 */
#include "db_test.h"

static struct db *g_db;

static int
setup(void **state)
{
	(void)state;
	g_db = t_open_migrated(2);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	db_close(g_db);
	return 0;
}

static void
verify(int64_t want_bad)
{
	struct db_audit_report rep;

	assert_int_equal(db_audit_verify(g_db, &rep), 0);
	if (rep.first_bad != want_bad)
		fail_msg("first_bad %lld (%s), expected %lld", (long long)rep.first_bad,
		    rep.why, (long long)want_bad);
	if (want_bad == 0)
		assert_int_equal(rep.rows, t_int("select count(*) from audit_log", 0, NULL));
}

/* Runs sql with the append-only triggers switched off, as a superuser could. */
static void
tamper(const char *sql, int n, const char *const *params)
{
	t_exec("alter table audit_log disable trigger audit_log_no_update", 0, NULL);
	t_exec(sql, n, params);
	t_exec("alter table audit_log enable trigger audit_log_no_update", 0, NULL);
}

static void
test_empty_log_verifies(void **state)
{
	(void)state;
	verify(0);
}

static void
test_append(void **state)
{
	char buf[256];
	int i;

	(void)state;
	assert_int_equal(db_audit_append(g_db, "admin", "test.first", "obj-1",
	    "{\"k\":  \"spaces  kept\", \"n\": 1.50}"), 0);
	assert_int_equal(t_text("select detail::text from audit_log where seq = 1", 0, NULL,
	    buf, sizeof(buf)), 0);
	/* json, not jsonb: the text is stored exactly as given */
	assert_string_equal(buf, "{\"k\":  \"spaces  kept\", \"n\": 1.50}");
	assert_int_equal(db_audit_append(g_db, "it's \\ me; --", "test.meta",
	    "\"quoted\" object", NULL), 0);
	assert_int_equal(t_text("select actor from audit_log where seq = 2", 0, NULL,
	    buf, sizeof(buf)), 0);
	assert_string_equal(buf, "it's \\ me; --");
	assert_int_equal(t_text("select detail::text from audit_log where seq = 2", 0, NULL,
	    buf, sizeof(buf)), 0);
	assert_string_equal(buf, "{}");
	/* field boundaries: same bytes, different split */
	assert_int_equal(db_audit_append(g_db, "a\nb", "c", "", "{}"), 0);
	assert_int_equal(db_audit_append(g_db, "a", "b\nc", "", "{}"), 0);
	assert_int_equal(db_audit_append(g_db, NULL, "test.null-actor", NULL, "[]"), 0);
	for (i = 0; i < 20; i++)
		assert_int_equal(db_audit_append(g_db, "loop", "test.loop", "x",
		    "{\"\\u00e9\": \"\xc3\xa9\"}"), 0);

	assert_int_equal(db_audit_append(g_db, "a", "test.bad", "o", "{not json"), ERR_INVALID);
	assert_int_equal(db_audit_append(g_db, "a", "", "o", NULL), ERR_INVALID);
	assert_int_equal(db_audit_append(g_db, "a", NULL, "o", NULL), ERR_INVALID);
	assert_int_equal(t_int("select count(*) from audit_log", 0, NULL), 25);
	assert_int_equal(t_int("select last_seq from audit_head", 0, NULL), 25);
	verify(0);
}

/* More rows than one verification page, appended by SQL. */
static void
test_many_rows(void **state)
{
	(void)state;
	t_exec("select audit_append('bulk', 'test.bulk', g::text, json_build_object('g', g)) "
	    "from generate_series(1, 2600) g", 0, NULL);
	verify(0);
}

static void
test_append_only_triggers(void **state)
{
	PGresult *res;

	(void)state;
	res = PQexecParams(t_pg, "update audit_log set actor = 'x' where seq = 1", 0, NULL,
	    NULL, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
	PQclear(res);
	res = PQexecParams(t_pg, "delete from audit_log where seq = 1", 0, NULL, NULL, NULL,
	    NULL, 0);
	assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
	PQclear(res);
	res = PQexecParams(t_pg, "truncate audit_log", 0, NULL, NULL, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
	PQclear(res);
	res = PQexecParams(t_pg, "delete from audit_head", 0, NULL, NULL, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
	PQclear(res);
	verify(0);
}

static void
test_edited_row_detected(void **state)
{
	const char *p[1] = { "3" };
	char orig[64];

	(void)state;
	assert_int_equal(t_text("select actor from audit_log where seq = 3", 0, NULL,
	    orig, sizeof(orig)), 0);
	tamper("update audit_log set actor = 'someone else' where seq = $1::int8", 1, p);
	verify(3);
	/* put it back: the chain is whole again */
	{
		const char *q[2] = { orig, "3" };

		tamper("update audit_log set actor = $1 where seq = $2::int8", 2, q);
	}
	verify(0);
	/* moving a field boundary: same bytes, different split (the length
	 * prefixes of the canonical text tell them apart) */
	tamper("update audit_log set actor = 'a', action = E'b\\nc' where seq = 3", 0, NULL);
	verify(3);
	tamper("update audit_log set actor = E'a\\nb', action = 'c' where seq = 3", 0, NULL);
	verify(0);
	/* the detail text, even only its spacing */
	tamper("update audit_log set detail = '{\"k\": \"spaces  kept\", \"n\": 1.50}' "
	    "where seq = 1", 0, NULL);
	verify(1);
	tamper("update audit_log set detail = '{\"k\":  \"spaces  kept\", \"n\": 1.50}' "
	    "where seq = 1", 0, NULL);
	verify(0);
	/* the timestamp, by one microsecond */
	tamper("update audit_log set at = at + interval '1 microsecond' where seq = 10", 0, NULL);
	verify(10);
	tamper("update audit_log set at = at - interval '1 microsecond' where seq = 10", 0, NULL);
	verify(0);
	/* a row's hash recomputed to match its edit still breaks the next link */
	tamper("update audit_log set action = 'test.forged', hash = sha256(prev_hash || "
	    "convert_to(audit_canonical(seq, at, actor, 'test.forged', object, detail::text), "
	    "'UTF8')) where seq = 12", 0, NULL);
	verify(13);
}

static void
test_reorder_and_delete_detected(void **state)
{
	(void)state;
	/* start from a fresh, intact chain in a second table state */
	tamper("delete from audit_log", 0, NULL);
	t_exec("update audit_head set last_seq = 0, last_hash = decode(repeat('00', 32), 'hex')",
	    0, NULL);
	t_exec("select audit_append('r', 'test.reorder', g::text, '{}') "
	    "from generate_series(1, 30) g", 0, NULL);
	verify(0);

	/* swap rows 5 and 6 (their seq numbers) */
	tamper("update audit_log set seq = seq + 1000000 where seq in (5, 6)", 0, NULL);
	tamper("update audit_log set seq = case seq when 1000005 then 6 else 5 end "
	    "where seq > 1000000", 0, NULL);
	verify(5);
	tamper("update audit_log set seq = seq + 1000000 where seq in (5, 6)", 0, NULL);
	tamper("update audit_log set seq = case seq when 1000005 then 6 else 5 end "
	    "where seq > 1000000", 0, NULL);
	verify(0);

	/* delete a row in the middle: a gap */
	tamper("delete from audit_log where seq = 17", 0, NULL);
	verify(17);
}

static void
test_tail_and_head_detected(void **state)
{
	(void)state;
	tamper("delete from audit_log", 0, NULL);
	t_exec("update audit_head set last_seq = 0, last_hash = decode(repeat('00', 32), 'hex')",
	    0, NULL);
	t_exec("select audit_append('t', 'test.tail', g::text, '{}') "
	    "from generate_series(1, 8) g", 0, NULL);
	verify(0);
	/* the last rows deleted */
	tamper("delete from audit_log where seq >= 7", 0, NULL);
	verify(7);
	/* head rewound to match: then a forged append would be "valid" only if
	 * its hash were right; a plain insert with a made-up hash is caught */
	t_exec("update audit_head set last_seq = 6, last_hash = (select hash from audit_log "
	    "where seq = 6)", 0, NULL);
	verify(0);
	t_exec("insert into audit_log (seq, at, actor, action, object, detail, prev_hash, hash) "
	    "select 7, now(), 'x', 'test.forged', '', '{}', hash, sha256('x') from audit_log "
	    "where seq = 6", 0, NULL);
	verify(7);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_log_verifies),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_many_rows),
		cmocka_unit_test(test_append_only_triggers),
		cmocka_unit_test(test_edited_row_detected),
		cmocka_unit_test(test_reorder_and_delete_detected),
		cmocka_unit_test(test_tail_and_head_detected),
	};
	int r;

	log_init("test_audit", LOG_LVL_ERROR, 0, 0);
	t_db_create("audit");
	r = cmocka_run_group_tests(tests, setup, teardown);
	t_db_drop();
	return r;
}
