/*
 * The migration runner: applies the numbered sql/ files compiled into the
 * binary, each in its own transaction, recording them in schema_migrations,
 * under an advisory lock so that concurrent runners apply each one once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"

/* pg_advisory_lock key: "provdmig" as a big-endian 64-bit integer */
#define MIGRATE_LOCK_KEY "8102661233874659687"

static int
version_applied(const int *v, size_t n, int version)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i] == version)
			return 1;
	return 0;
}

/* Reads the recorded versions into a new array. */
static int
applied_versions(PGconn *c, const struct db_migration *list, size_t nlist,
    int **out, size_t *nout)
{
	PGresult *res;
	int *v = NULL, r, i, n;
	size_t j;
	int32_t ver;

	*out = NULL;
	*nout = 0;
	res = db_exec(c, "select version, name from schema_migrations order by version",
	    0, NULL, NULL, NULL, 1, &r);
	if (res == NULL)
		return r;
	n = PQntuples(res);
	if (n > 0 && (v = calloc((size_t)n, sizeof(*v))) == NULL) {
		PQclear(res);
		return ERR_NOMEM;
	}
	for (i = 0; i < n; i++) {
		if ((r = db_get_i32(res, i, 0, &ver)) != 0) {
			free(v);
			PQclear(res);
			return r;
		}
		v[i] = ver;
		for (j = 0; j < nlist; j++)
			if (list[j].version == ver)
				break;
		if (j == nlist)
			log_warnx("database has migration %d, unknown to this build "
			    "(a newer provd migrated it?)", ver);
		else if (strcmp(list[j].name, PQgetvalue(res, i, 1)) != 0)
			log_warnx("migration %d is recorded as %s, this build calls it %s",
			    ver, PQgetvalue(res, i, 1), list[j].name);
	}
	PQclear(res);
	*out = v;
	*nout = (size_t)n;
	return 0;
}

/* One migration in one transaction. */
static int
apply_one(PGconn *c, const struct db_migration *m)
{
	PGresult *res;
	char vbuf[16];
	const char *params[2];
	int r;

	if ((res = db_exec(c, "begin", 0, NULL, NULL, NULL, 0, &r)) == NULL)
		return r;
	PQclear(res);
	/*
	 * The one PQexec in provd: a migration is several statements of static
	 * text compiled into the binary, which PQexecParams cannot run. It
	 * carries no values.
	 */
	res = PQexec(c, m->sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		r = db_result_err(c, res, m->name);
		PQclear(res);
		log_errx("migration %s failed and was rolled back", m->name);
		return r == ERR_UNAVAILABLE ? r : ERR_DB;
	}
	PQclear(res);
	snprintf(vbuf, sizeof(vbuf), "%d", m->version);
	params[0] = vbuf;
	params[1] = m->name;
	res = db_exec(c, "insert into schema_migrations (version, name) values ($1, $2)",
	    2, params, NULL, NULL, 0, &r);
	if (res == NULL) {
		log_errx("migration %s: cannot record it", m->name);
		return r == ERR_UNAVAILABLE ? r : ERR_DB;
	}
	PQclear(res);
	if ((res = db_exec(c, "commit", 0, NULL, NULL, NULL, 0, &r)) == NULL) {
		log_errx("migration %s: commit failed", m->name);
		return r == ERR_UNAVAILABLE ? r : ERR_DB;
	}
	PQclear(res);
	log_info("applied migration %s", m->name);
	return 0;
}

int
db_migrate_list(struct db *db, const struct db_migration *list, size_t n,
    int *applied)
{
	PGconn *c = NULL;
	PGresult *res;
	const char *key[1] = { MIGRATE_LOCK_KEY };
	int *done = NULL, r = ERR_INTERNAL, locked = 0;
	size_t ndone = 0, i;

	if (applied != NULL)
		*applied = 0;
	if (db == NULL || (list == NULL && n > 0))
		return ERR_INVALID;
	for (i = 0; i < n; i++) {
		if (list[i].version <= 0 || list[i].name == NULL || list[i].sql == NULL ||
		    (i > 0 && list[i].version <= list[i - 1].version)) {
			log_errx("invalid migration list at entry %zu: versions must be "
			    "positive and ascending", i);
			return ERR_INVALID;
		}
	}
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	/* Session-level: held across the per-migration transactions. */
	if ((res = db_exec(c, "select pg_advisory_lock($1::bigint)", 1, key, NULL, NULL,
	    0, &r)) == NULL)
		goto out;
	PQclear(res);
	locked = 1;
	if ((res = db_exec(c, "create table if not exists schema_migrations ("
	    "version integer primary key, name text not null, "
	    "applied_at timestamptz not null default now())",
	    0, NULL, NULL, NULL, 0, &r)) == NULL)
		goto out;
	PQclear(res);
	if ((r = applied_versions(c, list, n, &done, &ndone)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (version_applied(done, ndone, list[i].version))
			continue;
		if ((r = apply_one(c, &list[i])) != 0)
			goto out;
		if (applied != NULL)
			(*applied)++;
	}
	r = 0;
out:
	if (locked && PQstatus(c) == CONNECTION_OK) {
		int e;

		if (PQtransactionStatus(c) != PQTRANS_IDLE) {
			res = PQexecParams(c, "rollback", 0, NULL, NULL, NULL, NULL, 0);
			PQclear(res);
		}
		res = db_exec(c, "select pg_advisory_unlock($1::bigint)", 1, key, NULL,
		    NULL, 0, &e);
		PQclear(res);
	}
	free(done);
	db_conn_put(db, c);
	return r;
}

int
db_migrate(struct db *db, int *applied)
{
	return db_migrate_list(db, db_migrations, db_migrations_count, applied);
}

int
db_schema_version(struct db *db, int *version)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	int r;
	int32_t v = 0;

	if (version == NULL)
		return ERR_INVALID;
	*version = 0;
	if (db == NULL)
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	res = db_exec(c, "select to_regclass('schema_migrations') is not null",
	    0, NULL, NULL, NULL, 0, &r);
	if (res == NULL)
		goto out;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		r = 0;		/* empty database */
		goto out;
	}
	PQclear(res);
	res = db_exec(c, "select coalesce(max(version), 0)::int4 from schema_migrations",
	    0, NULL, NULL, NULL, 1, &r);
	if (res == NULL)
		goto out;
	if ((r = db_get_i32(res, 0, 0, &v)) != 0)
		goto out;
	*version = v;
out:
	PQclear(res);
	db_conn_put(db, c);
	return r;
}

int
db_schema_latest(void)
{
	int v = 0;

	for (size_t i = 0; i < db_migrations_count; i++)
		if (db_migrations[i].version > v)
			v = db_migrations[i].version;
	return v;
}
