/*
 * Tests of the pool and the migration runner against a real PostgreSQL:
 * concurrent first runs, re-runs that do nothing, a failing migration that
 * rolls back, and lists the runner must refuse.
 */
#include "db_test.h"

#include <pthread.h>

static struct db *g_db;

static int
setup(void **state)
{
	(void)state;
	return db_open_conninfo(t_conninfo, 4, &g_db) == 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	db_close(g_db);
	return 0;
}

static void
test_open_bad(void **state)
{
	struct db *db = (struct db *)1;

	(void)state;
	/* nothing listens on port 1 */
	assert_int_equal(db_open_conninfo("host=127.0.0.1 port=1 dbname=x user=x "
	    "connect_timeout=2", 2, &db), ERR_UNAVAILABLE);
	assert_null(db);
	assert_int_equal(db_open_conninfo(t_conninfo, 0, &db), ERR_INVALID);
	db_close(NULL);
}

static void
test_ping_and_empty_version(void **state)
{
	int v = -1;

	(void)state;
	assert_int_equal(db_ping(g_db), 0);
	assert_int_equal(db_schema_version(g_db, &v), 0);
	assert_int_equal(v, 0);
}

struct mig_arg {
	int applied;
	int r;
};

static void *
migrate_thread(void *arg)
{
	struct mig_arg *a = arg;

	a->r = db_migrate(g_db, &a->applied);
	return NULL;
}

/* Four runners at once on an empty database: each migration applied once. */
static void
test_migrate_concurrent_first_run(void **state)
{
	pthread_t th[4];
	struct mig_arg a[4];
	int i, total = 0, v = 0;
	char buf[16];

	(void)state;
	assert_true(db_migrations_count >= 1);
	for (i = 0; i < 4; i++) {
		a[i].applied = -1;
		a[i].r = -100;
		assert_int_equal(pthread_create(&th[i], NULL, migrate_thread, &a[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].r, 0);
		total += a[i].applied;
	}
	assert_int_equal(total, (int)db_migrations_count);
	assert_int_equal(t_int("select count(*) from schema_migrations", 0, NULL),
	    (long long)db_migrations_count);
	assert_int_equal(db_schema_version(g_db, &v), 0);
	assert_int_equal(v, db_migrations[db_migrations_count - 1].version);
	assert_int_equal(t_text("select name from schema_migrations where version = 1",
	    0, NULL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "001_init");
	/* the schema is really there */
	assert_int_equal(t_int("select count(*) from audit_head", 0, NULL), 1);
}

static void
test_migrate_rerun_noop(void **state)
{
	int applied = -1;

	(void)state;
	assert_int_equal(db_migrate(g_db, &applied), 0);
	assert_int_equal(applied, 0);
	assert_int_equal(t_int("select count(*) from schema_migrations", 0, NULL),
	    (long long)db_migrations_count);
}

/* A good migration, then one that fails half-way: the good one stays, the
 * failing one leaves nothing behind and is not recorded. */
static void
test_migrate_failure_rolls_back(void **state)
{
	static const struct db_migration list[] = {
		{ 9001, "9001_probe_ok", "create table probe_ok (x int);\n"
		    "insert into probe_ok values (1);\n" },
		{ 9002, "9002_probe_bad", "create table probe_bad (x int);\n"
		    "insert into probe_bad values (1);\n"
		    "select 1 / 0;\n" },
		{ 9003, "9003_never", "create table probe_never (x int);\n" },
	};
	int applied = -1;

	(void)state;
	assert_int_equal(db_migrate_list(g_db, list, 3, &applied), ERR_DB);
	assert_int_equal(applied, 1);
	assert_int_equal(t_int("select count(*) from probe_ok", 0, NULL), 1);
	assert_int_equal(t_int("select count(*) from schema_migrations where version = 9001",
	    0, NULL), 1);
	assert_int_equal(t_int("select count(*) from schema_migrations where version >= 9002",
	    0, NULL), 0);
	assert_int_equal(t_int("select count(*) from pg_class where relname in "
	    "('probe_bad', 'probe_never')", 0, NULL), 0);
	/* the pool connection came back clean: no open transaction */
	assert_int_equal(db_ping(g_db), 0);
	/* with the bad one fixed, the rest applies */
	{
		static const struct db_migration fixed[] = {
			{ 9001, "9001_probe_ok", "select 1;" },
			{ 9002, "9002_probe_bad", "create table probe_bad (x int);\n" },
		};
		assert_int_equal(db_migrate_list(g_db, fixed, 2, &applied), 0);
		assert_int_equal(applied, 1);
	}
	assert_int_equal(t_int("select count(*) from pg_class where relname = 'probe_bad'",
	    0, NULL), 1);
}

static void
test_migrate_bad_lists(void **state)
{
	static const struct db_migration unordered[] = {
		{ 9102, "9102_b", "select 1;" },
		{ 9101, "9101_a", "select 1;" },
	};
	static const struct db_migration dup[] = {
		{ 9201, "9201_a", "select 1;" },
		{ 9201, "9201_b", "select 1;" },
	};
	static const struct db_migration zero[] = {
		{ 0, "000_zero", "select 1;" },
	};
	int applied = -1;

	(void)state;
	assert_int_equal(db_migrate_list(g_db, unordered, 2, &applied), ERR_INVALID);
	assert_int_equal(db_migrate_list(g_db, dup, 2, &applied), ERR_INVALID);
	assert_int_equal(db_migrate_list(g_db, zero, 1, &applied), ERR_INVALID);
	assert_int_equal(applied, 0);
	assert_int_equal(t_int("select count(*) from schema_migrations where version > 9100",
	    0, NULL), 0);
}

/* A pool connection killed by the server is repaired on the next borrow. */
static void
test_pool_reconnects(void **state)
{
	(void)state;
	assert_int_equal(db_ping(g_db), 0);
	t_exec("select pg_terminate_backend(pid) from pg_stat_activity "
	    "where datname = current_database() and pid <> pg_backend_pid()", 0, NULL);
	usleep(100000);
	/* every pooled connection is dead now; each borrow must repair its own */
	for (int i = 0; i < 8; i++)
		assert_int_equal(db_ping(g_db), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_bad),
		cmocka_unit_test(test_ping_and_empty_version),
		cmocka_unit_test(test_migrate_concurrent_first_run),
		cmocka_unit_test(test_migrate_rerun_noop),
		cmocka_unit_test(test_migrate_failure_rolls_back),
		cmocka_unit_test(test_migrate_bad_lists),
		cmocka_unit_test(test_pool_reconnects),
	};
	int r;

	log_init("test_migrate", LOG_LVL_WARN, 0, 0);
	t_db_create("migrate");
	r = cmocka_run_group_tests(tests, setup, teardown);
	t_db_drop();
	return r;
}
