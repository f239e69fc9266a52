/*
 * db private header: pool helpers, result decoding and error mapping shared
 * by the db/ sources, and the migration runner over an explicit list (tests).
 */
#ifndef PROVD_DB_INT_H
#define PROVD_DB_INT_H

#include <libpq-fe.h>

#include "db/db.h"

/* One migration, as scripts/embed-sql.sh emits them into build/gen/migrations.c. */
struct db_migration {
	int version;
	const char *name;
	const char *sql;
};
extern const struct db_migration db_migrations[];
extern const size_t db_migrations_count;

/* Applies the entries of list (ascending, distinct versions) not yet recorded.
 * Returns 0, ERR_INVALID (list out of order), ERR_DB (a migration failed: it
 * is rolled back, logged with its name, and nothing after it runs) or
 * ERR_UNAVAILABLE. */
int db_migrate_list(struct db *db, const struct db_migration *list, size_t n,
    int *applied);

/* Batches run and items processed by a writer so far. */
void db_writer_stats(struct db_writer *w, uint64_t *batches, uint64_t *items);

/* A new connection to conninfo (UTF8 client encoding), or NULL (logged). */
PGconn *db_connect(const char *conninfo);
/* The pool's conninfo (contains the password; never log it). */
const char *db_conninfo(const struct db *db);

/* Borrows a connection, waiting for one if all are in use and reconnecting
 * it if it went bad. Returns 0, or ERR_UNAVAILABLE (server unreachable, or
 * no connection free within the pool's wait limit). */
int db_conn_get(struct db *db, PGconn **out);
/* Whether c is usable, noticing a server-side close without a round trip. */
int db_conn_alive(PGconn *c);
/* Returns c to the pool, rolling back any transaction left open. */
void db_conn_put(struct db *db, PGconn *c);

/* Runs a statement with text parameters (NULL = SQL NULL) and results in
 * the given format (0 text, 1 binary). Returns the result (caller PQclears)
 * or NULL on a failed or missing result; *err then holds the mapped code. */
PGresult *db_exec(PGconn *c, const char *sql, int nparams,
    const char *const *values, const int *lengths, const int *formats,
    int result_format, int *err);

/* Maps a failed result to an error code and logs it with who: connection
 * lost -> ERR_UNAVAILABLE, unique violation -> ERR_CONFLICT, else ERR_DB. */
int db_result_err(PGconn *c, const PGresult *res, const char *who);

/* Binary-format field readers: check the length, decode network order.
 * Return 0 or ERR_DB (NULL or wrong size). */
int db_get_i64(const PGresult *res, int row, int col, int64_t *out);
int db_get_i32(const PGresult *res, int row, int col, int32_t *out);
int db_get_i16(const PGresult *res, int row, int col, int16_t *out);
int db_get_fixed(const PGresult *res, int row, int col, uint8_t *out, size_t len);

/* The five parameters of a new certificate from params[0] on: its serial
 * (text), SHA-256 fingerprint and DER (binary, for bytea), not_before and
 * not_after (Unix seconds as text, written into times). Sets the lengths
 * and formats of all five; the parameters borrow from it and times. */
void db_issue_params(const struct db_issue *it, char times[2][24], const char **params,
    int *lengths, int *formats);

/* SHA-256 of data (EVP). Returns 0 or ERR_CRYPTO. */
int db_sha256(const void *data, size_t len, uint8_t out[32]);

#endif
