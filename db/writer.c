/*
 * Group-committed issuance: a writer thread sends up to batch_max queued
 * requests as BEGIN, one provd_issue_batch() call, COMMIT in one libpq
 * pipeline, and completes each request once the commit's outcome is known.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db_int.h"

#define WRITER_QUEUE_MAX 65536	/* queued requests before submit refuses */
#define WRITER_RETRIES 3	/* attempts of a batch hit by a deadlock */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define ISSUE_STMT "provd_issue_batch"
#define ISSUE_NPARAMS 12
#define ISSUE_MAX_GROUPS 256
#define ISSUE_MAX_DER 65536

/* Built-in type OIDs (fixed in PostgreSQL's catalog) of array elements. */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT4 23
#define OID_TEXT 25
#define OID_MACADDR 829

static const char issue_sql[] =
    "select r_item, r_status, r_device_id, r_cert_id, r_message from provd_issue_batch("
    "$1::macaddr[], $2::text[], $3::bytea[], $4::bytea[], $5::int8[], $6::int8[], "
    "$7::text[], $8::int4[], $9::text[], $10::bool[], $11::text[], $12::text[])";

struct db_writer {
	struct db *db;
	PGconn *conn;		/* NULL or bad: reconnect before the next batch */
	size_t batch_max;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct db_issue **ring;	/* queue of submitted requests */
	size_t cap, head, len;
	int stop;
	unsigned backoff_ms;
	uint64_t next_try_ns;	/* no reconnect attempt before this */
	struct db_issue **batch;	/* writer thread only */
	uint64_t nbatches, nitems;	/* processed, under mu */
};

/* ---------------------------------------------------------------------
 * One-dimensional arrays in PostgreSQL's binary format (array_recv):
 * ndim, has-nulls flag, element type, then (size, lower bound) for the
 * dimension, then each element as a 32-bit length (-1: NULL) and its bytes.
 * All integers in network order. No quoting or escaping anywhere.
 */
struct abuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void
ab_put(struct abuf *b, const void *d, size_t n)
{
	size_t ncap;
	uint8_t *np;

	if (b->err)
		return;
	if (b->len + n > b->cap) {
		ncap = b->cap > 0 ? b->cap : 256;
		while (ncap < b->len + n)
			ncap *= 2;
		if (ncap > (size_t)INT32_MAX || (np = realloc(b->p, ncap)) == NULL) {
			b->err = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void
ab_u32(struct abuf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	ab_put(b, x, 4);
}

static void
arr_begin(struct abuf *b, uint32_t elem_oid, size_t n, int hasnull)
{
	ab_u32(b, n > 0 ? 1 : 0);
	ab_u32(b, hasnull ? 1 : 0);
	ab_u32(b, elem_oid);
	if (n > 0) {
		ab_u32(b, (uint32_t)n);
		ab_u32(b, 1);
	}
}

static void
arr_elem(struct abuf *b, const void *d, size_t n)
{
	ab_u32(b, (uint32_t)n);
	ab_put(b, d, n);
}

static void
arr_text(struct abuf *b, const char *s)
{
	if (s == NULL)
		ab_u32(b, 0xffffffffu);		/* NULL */
	else
		arr_elem(b, s, strlen(s));
}

static void
arr_i64(struct abuf *b, int64_t v)
{
	uint8_t x[8];
	int i;

	for (i = 0; i < 8; i++)
		x[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
	arr_elem(b, x, 8);
}

static void
arr_i32(struct abuf *b, int32_t v)
{
	ab_u32(b, 4);
	ab_u32(b, (uint32_t)v);
}

/* The twelve parameters of provd_issue_batch() for n requests. */
struct batch_params {
	struct abuf a[ISSUE_NPARAMS];
	const char *values[ISSUE_NPARAMS];
	int lengths[ISSUE_NPARAMS];
	int formats[ISSUE_NPARAMS];
};

static void
batch_params_free(struct batch_params *bp)
{
	int i;

	for (i = 0; i < ISSUE_NPARAMS; i++)
		free(bp->a[i].p);
	memset(bp, 0, sizeof(*bp));
}

static int
batch_params_build(struct batch_params *bp, struct db_issue **items, size_t n)
{
	struct abuf *a = bp->a;
	size_t i, j, ngroups = 0;
	int null_owner = 0, null_actor = 0, null_req = 0;
	uint8_t flag;

	memset(bp, 0, sizeof(*bp));
	for (i = 0; i < n; i++) {
		ngroups += items[i]->ngroups;
		null_owner |= items[i]->owner == NULL;
		null_actor |= items[i]->actor == NULL;
		null_req |= items[i]->request_id == NULL;
	}
	arr_begin(&a[0], OID_MACADDR, n, 0);
	arr_begin(&a[1], OID_TEXT, n, 0);
	arr_begin(&a[2], OID_BYTEA, n, 0);
	arr_begin(&a[3], OID_BYTEA, n, 0);
	arr_begin(&a[4], OID_INT8, n, 0);
	arr_begin(&a[5], OID_INT8, n, 0);
	arr_begin(&a[6], OID_TEXT, n, null_owner);
	arr_begin(&a[7], OID_INT4, ngroups, 0);
	arr_begin(&a[8], OID_TEXT, ngroups, 0);
	arr_begin(&a[9], OID_BOOL, n, 0);
	arr_begin(&a[10], OID_TEXT, n, null_actor);
	arr_begin(&a[11], OID_TEXT, n, null_req);
	for (i = 0; i < n; i++) {
		const struct db_issue *it = items[i];

		arr_elem(&a[0], it->mac, MAC_LEN);
		arr_elem(&a[1], it->serial_hex, 32);
		arr_elem(&a[2], it->fingerprint, 32);
		arr_elem(&a[3], it->der, it->derlen);
		arr_i64(&a[4], it->not_before);
		arr_i64(&a[5], it->not_after);
		arr_text(&a[6], it->owner);
		for (j = 0; j < it->ngroups; j++) {
			arr_i32(&a[7], (int32_t)(i + 1));
			arr_text(&a[8], it->groups[j]);
		}
		flag = it->replace ? 1 : 0;
		arr_elem(&a[9], &flag, 1);
		arr_text(&a[10], it->actor);
		arr_text(&a[11], it->request_id);
	}
	for (i = 0; i < ISSUE_NPARAMS; i++) {
		if (a[i].err) {
			batch_params_free(bp);
			return ERR_NOMEM;
		}
		bp->values[i] = (const char *)a[i].p;
		bp->lengths[i] = (int)a[i].len;
		bp->formats[i] = 1;
	}
	return 0;
}

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Makes sure w->conn is usable, reconnecting with backoff. 0 or ERR_UNAVAILABLE. */
static int
writer_conn(struct db_writer *w)
{
	PGresult *res;
	uint64_t now;

	if (w->conn != NULL && db_conn_alive(w->conn))
		return 0;
	now = mono_ns();
	if (now < w->next_try_ns)
		return ERR_UNAVAILABLE;		/* fail fast while the server is down */
	if (w->conn == NULL)
		w->conn = db_connect(db_conninfo(w->db));
	else {
		log_warnx("writer: database connection lost, reconnecting");
		PQreset(w->conn);
	}
	if (w->conn == NULL || PQstatus(w->conn) != CONNECTION_OK)
		goto fail;
	PQsetClientEncoding(w->conn, "UTF8");
	res = PQprepare(w->conn, ISSUE_STMT, issue_sql, ISSUE_NPARAMS, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_result_err(w->conn, res, "writer: prepare");
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	w->backoff_ms = BACKOFF_MIN_MS;
	w->next_try_ns = 0;
	return 0;
fail:
	if (w->conn != NULL)
		log_warnx("writer: cannot connect: %s", PQerrorMessage(w->conn));
	w->next_try_ns = now + (uint64_t)w->backoff_ms * 1000000u;
	w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff_ms * 2;
	return ERR_UNAVAILABLE;
}

/* Reads the batch's rows (item, status, device id, cert id, message) into
 * the items. Items without a row keep ERR_INTERNAL. */
static void
batch_results(struct db_issue **items, size_t n, const PGresult *res)
{
	struct db_issue *it;
	const char *st, *msg;
	int32_t k;
	int row;

	if (PQnfields(res) != 5)
		return;
	for (row = 0; row < PQntuples(res); row++) {
		if (db_get_i32(res, row, 0, &k) != 0 || k < 1 || (size_t)k > n ||
		    PQgetisnull(res, row, 1))
			continue;
		it = items[k - 1];
		st = PQgetvalue(res, row, 1);
		msg = PQgetisnull(res, row, 4) ? "" : PQgetvalue(res, row, 4);
		it->device_id = it->cert_id = 0;
		if (!PQgetisnull(res, row, 2) && db_get_i64(res, row, 2, &it->device_id) != 0)
			it->device_id = 0;
		if (!PQgetisnull(res, row, 3) && db_get_i64(res, row, 3, &it->cert_id) != 0)
			it->cert_id = 0;
		log_set_id(it->request_id);
		if (strcmp(st, "ok") == 0) {
			it->result = it->device_id > 0 && it->cert_id > 0 ? 0 : ERR_DB;
		} else if (strcmp(st, "conflict") == 0) {
			log_info("issuance of %s refused: %s", it->serial_hex, msg);
			it->result = ERR_CONFLICT;
		} else {
			log_warnx("issuance of %s rejected by the database: %s",
			    it->serial_hex, msg);
			it->result = ERR_DB;
		}
		log_set_id(NULL);
	}
}

#define BATCH_RETRY 1	/* internal: deadlock or serialization failure, try again */

/*
 * One attempt at a batch. Returns 0 when committed (each item's result is
 * set), BATCH_RETRY, or the error for every item (ERR_UNAVAILABLE, ERR_DB).
 */
static int
batch_run(struct db_writer *w, struct db_issue **items, size_t n,
    const struct batch_params *bp)
{
	PGconn *c = w->conn;
	PGresult *res;
	ExecStatusType st;
	char state[6] = "";
	int nres, committed = 0, lost = 0;

	if (PQenterPipelineMode(c) != 1) {
		log_errx("writer: cannot enter pipeline mode: %s", PQerrorMessage(c));
		return ERR_DB;
	}
	if (PQsendQueryParams(c, "begin", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQsendQueryPrepared(c, ISSUE_STMT, ISSUE_NPARAMS, bp->values, bp->lengths,
	    bp->formats, 1) != 1 ||
	    PQsendQueryParams(c, "commit", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQpipelineSync(c) != 1 || PQflush(c) != 0)
		goto sendfail;

	/* Results: begin, the batch, commit — each followed by NULL — then the sync. */
	for (nres = 0; nres < 3; nres++) {
		if ((res = PQgetResult(c)) == NULL) {
			lost = 1;
			goto read_done;
		}
		st = PQresultStatus(res);
		if (st == PGRES_FATAL_ERROR) {
			if (state[0] == '\0') {
				const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);

				snprintf(state, sizeof(state), "%s", s != NULL ? s : "XX000");
				db_result_err(c, res, "writer");
			}
		} else if (nres == 1 && st == PGRES_TUPLES_OK) {
			batch_results(items, n, res);
		} else if (nres == 2 && st == PGRES_COMMAND_OK &&
		    strcmp(PQcmdStatus(res), "COMMIT") == 0) {
			committed = 1;
		} else if (st != PGRES_PIPELINE_ABORTED && st != PGRES_COMMAND_OK) {
			log_errx("writer: unexpected result %s", PQresStatus(st));
		}
		PQclear(res);
		if (PQstatus(c) != CONNECTION_OK) {
			lost = 1;
			goto read_done;
		}
		if ((res = PQgetResult(c)) != NULL) {	/* end of this query's results */
			log_errx("writer: unexpected extra result %s",
			    PQresStatus(PQresultStatus(res)));
			PQclear(res);
			lost = 1;	/* out of step with the server: start afresh */
			goto read_done;
		}
	}
	if ((res = PQgetResult(c)) == NULL || PQresultStatus(res) != PGRES_PIPELINE_SYNC)
		lost = 1;
	PQclear(res);
read_done:
	if (lost || PQstatus(c) != CONNECTION_OK) {
		/* Whether a commit in flight took effect is unknown: never report
		 * success; drop the connection so the next batch starts clean. */
		if (PQstatus(c) == CONNECTION_OK) {
			PQfinish(c);
			w->conn = NULL;
		}
		return ERR_UNAVAILABLE;
	}
	if (PQexitPipelineMode(c) != 1) {
		log_errx("writer: cannot leave pipeline mode: %s", PQerrorMessage(c));
		PQfinish(c);
		w->conn = NULL;
		return committed ? 0 : ERR_DB;
	}
	if (PQtransactionStatus(c) != PQTRANS_IDLE) {
		res = PQexecParams(c, "rollback", 0, NULL, NULL, NULL, NULL, 0);
		PQclear(res);
	}
	if (committed)
		return 0;
	if (strncmp(state, "40", 2) == 0)
		return BATCH_RETRY;
	/* server shutting down, or connection-class errors */
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
		return ERR_UNAVAILABLE;
	return ERR_DB;

sendfail:
	log_warnx("writer: cannot send batch: %s", PQerrorMessage(c));
	if (PQstatus(c) != CONNECTION_OK)
		return ERR_UNAVAILABLE;
	/* unexpected on a good connection: start afresh */
	PQfinish(c);
	w->conn = NULL;
	return ERR_DB;
}

static void
batch_process(struct db_writer *w, struct db_issue **items, size_t n)
{
	struct batch_params bp;
	size_t i;
	int r, attempt;

	if ((r = batch_params_build(&bp, items, n)) != 0)
		goto fail;
	for (attempt = 1; attempt <= WRITER_RETRIES; attempt++) {
		for (i = 0; i < n; i++)
			items[i]->result = ERR_INTERNAL;
		if ((r = writer_conn(w)) != 0)
			break;
		if ((r = batch_run(w, items, n, &bp)) != BATCH_RETRY)
			break;
		log_info("writer: batch of %zu hit a deadlock or serialization "
		    "failure, attempt %d", n, attempt);
		r = ERR_DB;
	}
	batch_params_free(&bp);
	if (r == 0) {
		for (i = 0; i < n; i++)
			if (items[i]->result == ERR_INTERNAL)
				items[i]->result = ERR_DB;	/* no row for it */
		return;
	}
fail:
	for (i = 0; i < n; i++)
		items[i]->result = r;
}

static void *
writer_main(void *arg)
{
	struct db_writer *w = arg;
	size_t n, i;

	for (;;) {
		pthread_mutex_lock(&w->mu);
		while (w->len == 0 && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->len == 0) {		/* stopping and drained */
			pthread_mutex_unlock(&w->mu);
			break;
		}
		n = w->len < w->batch_max ? w->len : w->batch_max;
		for (i = 0; i < n; i++) {
			w->batch[i] = w->ring[w->head];
			w->head = (w->head + 1) % w->cap;
		}
		w->len -= n;
		pthread_mutex_unlock(&w->mu);

		batch_process(w, w->batch, n);
		pthread_mutex_lock(&w->mu);
		w->nbatches++;
		w->nitems += n;
		pthread_mutex_unlock(&w->mu);
		for (i = 0; i < n; i++)
			w->batch[i]->done(w->batch[i], w->batch[i]->arg);
	}
	return NULL;
}

int
db_writer_start(struct db *db, size_t batch_max, struct db_writer **out)
{
	struct db_writer *w;

	if (out == NULL)
		return ERR_INVALID;
	*out = NULL;
	if (db == NULL || batch_max < 1 || batch_max > 4096)
		return ERR_INVALID;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return ERR_NOMEM;
	w->db = db;
	w->batch_max = batch_max;
	w->backoff_ms = BACKOFF_MIN_MS;
	w->cap = 1024;
	if ((w->ring = calloc(w->cap, sizeof(*w->ring))) == NULL ||
	    (w->batch = calloc(batch_max, sizeof(*w->batch))) == NULL) {
		free(w->ring);
		free(w);
		return ERR_NOMEM;
	}
	/* Connect now so that a bad configuration shows at start. */
	if (writer_conn(w) != 0) {
		free(w->batch);
		free(w->ring);
		free(w);
		return ERR_UNAVAILABLE;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		PQfinish(w->conn);
		free(w->batch);
		free(w->ring);
		free(w);
		return ERR_INTERNAL;
	}
	*out = w;
	return 0;
}

void
db_writer_stop(struct db_writer *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);	/* it completes what was queued first */
	if (w->conn != NULL)
		PQfinish(w->conn);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w->batch);
	free(w->ring);
	free(w);
}

static int
issue_check(const struct db_issue *it)
{
	size_t i;

	if (it->done == NULL || it->der == NULL || it->derlen == 0 ||
	    it->derlen > ISSUE_MAX_DER || it->not_after <= it->not_before ||
	    (it->ngroups > 0 && it->groups == NULL) || it->ngroups > ISSUE_MAX_GROUPS)
		return ERR_INVALID;
	if (strnlen(it->serial_hex, sizeof(it->serial_hex)) != 32)
		return ERR_INVALID;
	for (i = 0; i < 32; i++)
		if (!((it->serial_hex[i] >= '0' && it->serial_hex[i] <= '9') ||
		    (it->serial_hex[i] >= 'a' && it->serial_hex[i] <= 'f')))
			return ERR_INVALID;
	for (i = 0; i < it->ngroups; i++)
		if (it->groups[i] == NULL)
			return ERR_INVALID;
	return 0;
}

/* When this returns an error, it->done is not called. */
int
db_writer_submit(struct db_writer *w, struct db_issue *it)
{
	struct db_issue **ring;
	size_t i, ncap;
	int r;

	if (w == NULL || it == NULL)
		return ERR_INVALID;
	if ((r = issue_check(it)) != 0)
		return r;
	it->result = ERR_INTERNAL;
	it->device_id = it->cert_id = 0;
	pthread_mutex_lock(&w->mu);
	if (w->stop) {
		pthread_mutex_unlock(&w->mu);
		return ERR_UNAVAILABLE;
	}
	if (w->len == w->cap) {
		if (w->cap >= WRITER_QUEUE_MAX) {
			pthread_mutex_unlock(&w->mu);
			log_warnx("writer: queue full (%zu requests)", w->len);
			return ERR_UNAVAILABLE;
		}
		ncap = w->cap * 2;
		if ((ring = calloc(ncap, sizeof(*ring))) == NULL) {
			pthread_mutex_unlock(&w->mu);
			return ERR_NOMEM;
		}
		for (i = 0; i < w->len; i++)
			ring[i] = w->ring[(w->head + i) % w->cap];
		free(w->ring);
		w->ring = ring;
		w->cap = ncap;
		w->head = 0;
	}
	w->ring[(w->head + w->len) % w->cap] = it;
	w->len++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

void
db_writer_stats(struct db_writer *w, uint64_t *batches, uint64_t *items)
{
	pthread_mutex_lock(&w->mu);
	*batches = w->nbatches;
	*items = w->nitems;
	pthread_mutex_unlock(&w->mu);
}

struct issue_waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
};

static void
issue_wait_done(struct db_issue *it, void *arg)
{
	struct issue_waiter *iw = arg;

	(void)it;
	pthread_mutex_lock(&iw->mu);
	iw->done = 1;
	pthread_cond_signal(&iw->cv);
	pthread_mutex_unlock(&iw->mu);
}

/* Sets it->done and it->arg itself. */
int
db_issue_wait(struct db_writer *w, struct db_issue *it)
{
	struct issue_waiter iw;
	int r;

	if (w == NULL || it == NULL)
		return ERR_INVALID;
	memset(&iw, 0, sizeof(iw));
	pthread_mutex_init(&iw.mu, NULL);
	pthread_cond_init(&iw.cv, NULL);
	it->done = issue_wait_done;
	it->arg = &iw;
	if ((r = db_writer_submit(w, it)) != 0) {
		it->result = r;
		goto out;
	}
	pthread_mutex_lock(&iw.mu);
	while (!iw.done)
		pthread_cond_wait(&iw.cv, &iw.mu);
	pthread_mutex_unlock(&iw.mu);
	r = it->result;
out:
	pthread_cond_destroy(&iw.cv);
	pthread_mutex_destroy(&iw.mu);
	return r;
}
