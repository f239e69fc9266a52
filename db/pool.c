/*
 * The connection pool (N libpq connections, borrowed one at a time, repaired
 * on borrow) and the helpers every db/ file uses: execution, error mapping,
 * binary field decoding.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "db/db_int.h"

#define DB_POOL_MAX 1024
#define DB_WAIT_S 30		/* longest wait for a free connection */

struct db {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *conninfo;		/* secure heap: carries the password */
	size_t conninfo_size;
	int n;
	PGconn **all;		/* every connection, for db_close */
	PGconn **idle;		/* stack of free connections */
	int nidle;
};

/* libpq's notices (e.g. "relation already exists, skipping") go to our log. */
static void
db_notice(void *arg, const char *msg)
{
	size_t len = strlen(msg);

	(void)arg;
	if (len > 0 && msg[len - 1] == '\n')
		len--;
	log_debug("postgres: %.*s", (int)len, msg);
}

PGconn *
db_connect(const char *conninfo)
{
	/* Keywords are processed in order and the last one wins: our defaults
	 * first, then the configured string, then what we insist on. */
	const char *const keys[] = { "connect_timeout", "fallback_application_name",
	    "dbname", "client_encoding", NULL };
	const char *const vals[] = { "10", "provd", conninfo, "UTF8", NULL };
	PGconn *c;

	c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL) {
		log_errx("out of memory");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		log_warnx("cannot connect to PostgreSQL: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, db_notice, NULL);
	return c;
}

int
db_open_conninfo(const char *conninfo, int n, struct db **out)
{
	struct db *db = NULL;
	pthread_condattr_t ca;
	int r = ERR_INTERNAL, i;

	if (out == NULL)
		return ERR_INVALID;
	*out = NULL;
	if (conninfo == NULL || n < 1 || n > DB_POOL_MAX)
		return ERR_INVALID;
	if ((db = calloc(1, sizeof(*db))) == NULL)
		return ERR_NOMEM;
	if (pthread_mutex_init(&db->mu, NULL) != 0) {
		free(db);
		return ERR_INTERNAL;
	}
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&db->cv, &ca) != 0) {
		pthread_mutex_destroy(&db->mu);
		free(db);
		return ERR_INTERNAL;
	}
	pthread_condattr_destroy(&ca);

	db->conninfo_size = strlen(conninfo) + 1;
	if ((db->conninfo = OPENSSL_secure_malloc(db->conninfo_size)) == NULL ||
	    (db->all = calloc((size_t)n, sizeof(*db->all))) == NULL ||
	    (db->idle = calloc((size_t)n, sizeof(*db->idle))) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	memcpy(db->conninfo, conninfo, db->conninfo_size);
	for (i = 0; i < n; i++) {
		if ((db->all[i] = db_connect(db->conninfo)) == NULL) {
			r = ERR_UNAVAILABLE;
			goto out;
		}
		db->idle[i] = db->all[i];
		db->n = db->nidle = i + 1;
	}
	*out = db;
	db = NULL;
	r = 0;
out:
	db_close(db);
	return r;
}

int
db_open(const struct config *cfg, struct db **out)
{
	char *ci = NULL;
	int r;

	if (out == NULL)
		return ERR_INVALID;
	*out = NULL;
	if (cfg == NULL || cfg->db_pool < 1 || cfg->db_pool > DB_POOL_MAX)
		return ERR_CONFIG;
	if ((r = config_db_conninfo(cfg, &ci)) != 0)
		return r;
	r = db_open_conninfo(ci, (int)cfg->db_pool, out);
	secret_free(ci);
	return r;
}

void
db_close(struct db *db)
{
	int i;

	if (db == NULL)
		return;
	for (i = 0; i < db->n; i++)
		if (db->all[i] != NULL)
			PQfinish(db->all[i]);
	free(db->all);
	free(db->idle);
	if (db->conninfo != NULL)
		OPENSSL_secure_clear_free(db->conninfo, db->conninfo_size);
	pthread_cond_destroy(&db->cv);
	pthread_mutex_destroy(&db->mu);
	free(db);
}

const char *
db_conninfo(const struct db *db)
{
	return db->conninfo;
}

int
db_conn_alive(PGconn *c)
{
	struct pollfd pfd;
	int i;

	/*
	 * An idle connection has nothing to read unless the server closed it
	 * (its last words, then end of file) or sent a notification: read
	 * what is there, which notices a close. Bounded: a server that keeps
	 * talking is not our concern here.
	 */
	for (i = 0; i < 4 && PQstatus(c) == CONNECTION_OK; i++) {
		pfd.fd = PQsocket(c);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (pfd.fd < 0 || poll(&pfd, 1, 0) <= 0 || PQconsumeInput(c) == 0)
			break;
	}
	return PQstatus(c) == CONNECTION_OK;
}

int
db_conn_get(struct db *db, PGconn **out)
{
	struct timespec until;
	PGconn *c;
	int e = 0;

	*out = NULL;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += DB_WAIT_S;
	pthread_mutex_lock(&db->mu);
	while (db->nidle == 0 && e != ETIMEDOUT)
		e = pthread_cond_timedwait(&db->cv, &db->mu, &until);
	if (db->nidle == 0) {
		pthread_mutex_unlock(&db->mu);
		log_warnx("no database connection free after %d s", DB_WAIT_S);
		return ERR_UNAVAILABLE;
	}
	c = db->idle[--db->nidle];
	pthread_mutex_unlock(&db->mu);

	if (!db_conn_alive(c)) {
		PQreset(c);
		if (PQstatus(c) != CONNECTION_OK) {
			log_warnx("database connection lost, reconnect failed: %s",
			    PQerrorMessage(c));
			db_conn_put(db, c);
			return ERR_UNAVAILABLE;
		}
		PQsetClientEncoding(c, "UTF8");
		log_info("database connection re-established");
	}
	*out = c;
	return 0;
}

void
db_conn_put(struct db *db, PGconn *c)
{
	PGresult *res;

	if (c == NULL)
		return;
	if (PQstatus(c) == CONNECTION_OK) {
		/* drain results the borrower left unread */
		while ((res = PQgetResult(c)) != NULL)
			PQclear(res);
		if (PQtransactionStatus(c) != PQTRANS_IDLE) {
			res = PQexecParams(c, "rollback", 0, NULL, NULL, NULL, NULL, 0);
			PQclear(res);
		}
	}
	pthread_mutex_lock(&db->mu);
	db->idle[db->nidle++] = c;
	pthread_cond_signal(&db->cv);
	pthread_mutex_unlock(&db->mu);
}

int
db_result_err(PGconn *c, const PGresult *res, const char *who)
{
	const char *state = NULL, *msg;

	if (res != NULL)
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (PQstatus(c) != CONNECTION_OK || (state != NULL &&
	    (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	    strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0))) {
		log_warnx("%s: database unavailable: %s", who, PQerrorMessage(c));
		return ERR_UNAVAILABLE;
	}
	msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	if (msg == NULL)
		msg = PQerrorMessage(c);
	if (state != NULL && strcmp(state, "23505") == 0) {
		log_debug("%s: %s", who, msg);
		return ERR_CONFLICT;
	}
	log_warnx("%s: database error %s: %s", who, state != NULL ? state : "-", msg);
	return ERR_DB;
}

PGresult *
db_exec(PGconn *c, const char *sql, int nparams, const char *const *values,
    const int *lengths, const int *formats, int result_format, int *err)
{
	PGresult *res;
	ExecStatusType st;

	res = PQexecParams(c, sql, nparams, NULL, values, lengths, formats, result_format);
	st = PQresultStatus(res);
	if (res != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)) {
		*err = 0;
		return res;
	}
	*err = db_result_err(c, res, "query");
	PQclear(res);
	return NULL;
}

int
db_ping(struct db *db)
{
	PGconn *c = NULL;
	PGresult *res;
	int r;

	if (db == NULL)
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return ERR_UNAVAILABLE;
	res = db_exec(c, "select 1", 0, NULL, NULL, NULL, 0, &r);
	PQclear(res);
	db_conn_put(db, c);
	return r == 0 ? 0 : ERR_UNAVAILABLE;
}

/* ---------------------------------------------------------------------
 * Binary field decoding.
 */
static int
field(const PGresult *res, int row, int col, size_t len, const uint8_t **p)
{
	if (row >= PQntuples(res) || col >= PQnfields(res) ||
	    PQgetisnull(res, row, col) || PQfformat(res, col) != 1 ||
	    (size_t)PQgetlength(res, row, col) != len) {
		log_errx("unexpected value in column %d", col);
		return ERR_DB;
	}
	*p = (const uint8_t *)PQgetvalue(res, row, col);
	return 0;
}

int
db_get_i64(const PGresult *res, int row, int col, int64_t *out)
{
	const uint8_t *p;
	uint64_t v = 0;
	int i;

	if (field(res, row, col, 8, &p) != 0)
		return ERR_DB;
	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	*out = (int64_t)v;
	return 0;
}

int
db_get_i32(const PGresult *res, int row, int col, int32_t *out)
{
	const uint8_t *p;

	if (field(res, row, col, 4, &p) != 0)
		return ERR_DB;
	*out = (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3]);
	return 0;
}

int
db_get_i16(const PGresult *res, int row, int col, int16_t *out)
{
	const uint8_t *p;

	if (field(res, row, col, 2, &p) != 0)
		return ERR_DB;
	*out = (int16_t)((uint16_t)p[0] << 8 | p[1]);
	return 0;
}

int
db_get_fixed(const PGresult *res, int row, int col, uint8_t *out, size_t len)
{
	const uint8_t *p;

	if (field(res, row, col, len, &p) != 0)
		return ERR_DB;
	memcpy(out, p, len);
	return 0;
}

int
db_sha256(const void *data, size_t len, uint8_t out[32])
{
	unsigned int olen = 0;

	if (EVP_Digest(data, len, out, &olen, EVP_sha256(), NULL) != 1 || olen != 32) {
		log_ossl("SHA-256 failed");
		return ERR_CRYPTO;
	}
	return 0;
}
