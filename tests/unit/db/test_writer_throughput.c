/*
 * Throughput of group-committed issuance against a real PostgreSQL: 16 threads
 * submit and wait, as HTTP workers would; prints items/s, fails on any failed
 * or missing row. PROVD_DB_BENCH_ITEMS sets the total (default 4800).
 */
#include "db_test.h"

#include <pthread.h>
#include <time.h>

#define NTHREADS 16
#define DER_LEN 1000

static struct db *g_db;
static struct db_writer *g_w;
static int g_per_thread = 300;

struct th_arg {
	int id;
	int failures;
};

static void *
bench_thread(void *arg)
{
	struct th_arg *a = arg;
	struct db_issue it;
	uint8_t der[DER_LEN];
	const char *groups[2] = { "bench", "floor-1" };
	char req[32];
	int i;
	uint32_t n;

	memset(der, 0x5a, sizeof(der));
	der[0] = 0x30;
	for (i = 0; i < g_per_thread; i++) {
		n = (uint32_t)a->id * 1000000u + (uint32_t)i;
		memset(&it, 0, sizeof(it));
		it.mac[0] = 0x02;
		it.mac[1] = 0x77;
		it.mac[2] = (uint8_t)(n >> 24);
		it.mac[3] = (uint8_t)(n >> 16);
		it.mac[4] = (uint8_t)(n >> 8);
		it.mac[5] = (uint8_t)n;
		snprintf(it.serial_hex, sizeof(it.serial_hex), "%016llx%08x%08x",
		    0xbe0c000000000000ull, (unsigned)a->id, (unsigned)i);
		memcpy(it.fingerprint, it.serial_hex, 32);
		it.der = der;
		it.derlen = sizeof(der);
		it.not_before = (int64_t)time(NULL) - 300;
		it.not_after = it.not_before + 365 * 86400;
		it.owner = "bench-owner";
		it.groups = groups;
		it.ngroups = 2;
		it.actor = "bench";
		snprintf(req, sizeof(req), "bench-%d-%d", a->id, i);
		it.request_id = req;
		if (db_issue_wait(g_w, &it) != 0)
			a->failures++;
	}
	return NULL;
}

static void
test_throughput(void **state)
{
	pthread_t th[NTHREADS];
	struct th_arg a[NTHREADS];
	struct timespec t0, t1;
	uint64_t batches, items;
	double secs;
	int i, failures = 0;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < NTHREADS; i++) {
		a[i].id = i + 1;
		a[i].failures = 0;
		assert_int_equal(pthread_create(&th[i], NULL, bench_thread, &a[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		failures += a[i].failures;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	db_writer_stats(g_w, &batches, &items);
	fprintf(stderr, "bench: db_writer_issue %.0f items/s (%d items, 16 threads, "
	    "%.2f s, %llu batches, mean batch %.1f)\n",
	    (double)(NTHREADS * g_per_thread) / secs, NTHREADS * g_per_thread, secs,
	    (unsigned long long)batches, batches > 0 ? (double)items / (double)batches : 0.0);
	assert_int_equal(failures, 0);
	assert_int_equal(t_int("select count(*) from certificates", 0, NULL),
	    NTHREADS * g_per_thread);
	assert_int_equal(t_int("select count(*) from audit_log", 0, NULL),
	    NTHREADS * g_per_thread);
}

static int
setup(void **state)
{
	(void)state;
	g_db = t_open_migrated(2);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_throughput),
	};
	const char *n = getenv("PROVD_DB_BENCH_ITEMS");
	int r;

	if (n != NULL) {
		long v = strtol(n, NULL, 10);

		if (v >= NTHREADS && v <= 10000000)
			g_per_thread = (int)(v / NTHREADS);
	}
	log_init("test_writer_throughput", LOG_LVL_WARN, 0, 0);
	t_db_create("wbench");
	r = cmocka_run_group_tests(tests, setup, teardown);
	t_db_drop();
	return r;
}
