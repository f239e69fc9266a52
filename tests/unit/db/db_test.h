/*
 * Shared fixture for the db tests: each test program makes its own database
 * (provd_t_<program>_<pid>) through PROVD_TEST_CONNINFO, runs against it and
 * drops it. Without PROVD_TEST_CONNINFO the tests fail; they never skip.
 */
#ifndef PROVD_DB_TEST_H
#define PROVD_DB_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "db/db_int.h"

static char t_dbname[64];
static char t_conninfo[4096];	/* conninfo of the test database */
static PGconn *t_pg;		/* a direct superuser connection to it */

/* Appends key='value' (quoted for a conninfo string) to buf. */
static inline int
t_conninfo_add(char *buf, size_t len, const char *key, const char *val)
{
	size_t o = strlen(buf);
	int n = snprintf(buf + o, len - o, "%s%s='", o > 0 ? " " : "", key);

	if (n < 0 || (size_t)n >= len - o)
		return -1;
	o += (size_t)n;
	for (; *val != '\0'; val++) {
		if (o + 3 >= len)
			return -1;
		if (*val == '\'' || *val == '\\')
			buf[o++] = '\\';
		buf[o++] = *val;
	}
	if (o + 2 > len)
		return -1;
	buf[o++] = '\'';
	buf[o] = '\0';
	return 0;
}

/* The admin conninfo with dbname replaced. */
static inline int
t_conninfo_for(const char *admin, const char *dbname, char *out, size_t len)
{
	PQconninfoOption *opts, *o;
	char *err = NULL;

	out[0] = '\0';
	if ((opts = PQconninfoParse(admin, &err)) == NULL) {
		fprintf(stderr, "PROVD_TEST_CONNINFO does not parse: %s\n", err != NULL ? err : "?");
		PQfreemem(err);
		return -1;
	}
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || strcmp(o->keyword, "dbname") == 0)
			continue;
		if (t_conninfo_add(out, len, o->keyword, o->val) != 0) {
			PQconninfoFree(opts);
			return -1;
		}
	}
	PQconninfoFree(opts);
	return t_conninfo_add(out, len, "dbname", dbname);
}

static inline void
t_quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* Runs a statement on the admin database; 0 or -1 (printed). */
static inline int
t_admin_exec(const char *admin, const char *verb, const char *suffix)
{
	PGconn *c = PQconnectdb(admin);
	PGresult *res;
	char *ident, sql[256];
	int ok;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "cannot connect with PROVD_TEST_CONNINFO: %s", PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	PQsetNoticeProcessor(c, t_quiet, NULL);	/* "does not exist, skipping" */
	/* an identifier, not a value: it cannot be a parameter */
	ident = PQescapeIdentifier(c, t_dbname, strlen(t_dbname));
	snprintf(sql, sizeof(sql), "%s %s%s", verb, ident, suffix);
	PQfreemem(ident);
	res = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
	PQclear(res);
	PQfinish(c);
	return ok ? 0 : -1;
}

/* Creates the database and opens t_pg. Exits the program on failure. */
static inline void
t_db_create(const char *prog)
{
	const char *admin = getenv("PROVD_TEST_CONNINFO");

	if (admin == NULL || admin[0] == '\0') {
		fprintf(stderr, "%s: FAIL: PROVD_TEST_CONNINFO is not set; these tests need "
		    "a PostgreSQL server (scripts/services.sh start DIR pg)\n", prog);
		exit(1);
	}
	snprintf(t_dbname, sizeof(t_dbname), "provd_t_%s_%ld", prog, (long)getpid());
	if (t_admin_exec(admin, "drop database if exists", "") != 0 ||
	    t_admin_exec(admin, "create database", "") != 0 ||
	    t_conninfo_for(admin, t_dbname, t_conninfo, sizeof(t_conninfo)) != 0) {
		fprintf(stderr, "%s: FAIL: cannot create the test database\n", prog);
		exit(1);
	}
	t_pg = PQconnectdb(t_conninfo);
	if (PQstatus(t_pg) != CONNECTION_OK) {
		fprintf(stderr, "%s: FAIL: %s", prog, PQerrorMessage(t_pg));
		exit(1);
	}
}

static inline void
t_db_drop(void)
{
	const char *admin = getenv("PROVD_TEST_CONNINFO");

	PQfinish(t_pg);
	t_pg = NULL;
	if (admin != NULL && t_dbname[0] != '\0')
		t_admin_exec(admin, "drop database if exists", " with (force)");
}

/* A statement on t_pg with text parameters; asserts success. */
static inline void
t_exec(const char *sql, int n, const char *const *params)
{
	PGresult *res = PQexecParams(t_pg, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(t_pg));
	PQclear(res);
}

/* The first column of the first row as an integer (text format). */
static inline long long
t_int(const char *sql, int n, const char *const *params)
{
	PGresult *res = PQexecParams(t_pg, sql, n, NULL, params, NULL, NULL, 0);
	long long v;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		fail_msg("%s: %s", sql, PQerrorMessage(t_pg));
	v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

/* The first column of the first row as text into out; 0, or -1 for no row/NULL. */
static inline int
t_text(const char *sql, int n, const char *const *params, char *out, size_t len)
{
	PGresult *res = PQexecParams(t_pg, sql, n, NULL, params, NULL, NULL, 0);
	int r = -1;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(t_pg));
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
		snprintf(out, len, "%s", PQgetvalue(res, 0, 0));
		r = 0;
	}
	PQclear(res);
	return r;
}

/* Opens a pool on the test database and applies every migration. */
static inline struct db *
t_open_migrated(int n)
{
	struct db *db = NULL;
	int applied = -1;

	assert_int_equal(db_open_conninfo(t_conninfo, n, &db), 0);
	assert_int_equal(db_migrate(db, &applied), 0);
	return db;
}

#endif
