/*
 * The audit log: appending goes through the SQL function audit_append()
 * (which chains the hash); verification recomputes every hash here, in seq
 * order, page by page inside one repeatable-read snapshot. Listing reads it
 * newest first, a page at a time by seq.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "db/db_int.h"

#define AUDIT_PAGE "1000"

int
db_audit_append(struct db *db, const char *actor, const char *action,
    const char *object, const char *detail_json)
{
	PGconn *c = NULL;
	PGresult *res;
	const char *params[4] = { actor != NULL ? actor : "", action,
	    object != NULL ? object : "", detail_json };
	const char *state;
	int r;

	if (db == NULL || action == NULL || action[0] == '\0')
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	res = PQexecParams(c, "select audit_append($1::text, $2::text, $3::text, $4::json)",
	    4, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		r = 0;
	} else {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* detail that is not JSON: the caller's mistake */
		if (state != NULL && strcmp(state, "22P02") == 0) {
			log_warnx("audit detail for %s is not valid JSON", action);
			r = ERR_INVALID;
		} else {
			r = db_result_err(c, res, "audit_append");
		}
	}
	PQclear(res);
	db_conn_put(db, c);
	return r;
}

static void
digest_num(EVP_MD_CTX *md, long long v)
{
	char buf[24];
	int len;

	len = snprintf(buf, sizeof(buf), "%lld", v);
	EVP_DigestUpdate(md, buf, (size_t)len);
}

/* F(s) of the canonical text: octet length, ':', the bytes. */
static void
digest_field(EVP_MD_CTX *md, const PGresult *res, int row, int col)
{
	int len = PQgetlength(res, row, col);

	digest_num(md, len);
	EVP_DigestUpdate(md, ":", 1);
	EVP_DigestUpdate(md, PQgetvalue(res, row, col), (size_t)len);
}

/* The chained hash of one row, as sql/001_init.sql defines it. */
static int
row_hash(EVP_MD_CTX *md, const uint8_t prev[32], int64_t seq, int64_t us,
    const PGresult *res, int row, uint8_t out[32])
{
	unsigned int olen = 0;
	int col;

	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		log_ossl("SHA-256 init failed");
		return ERR_CRYPTO;
	}
	EVP_DigestUpdate(md, prev, 32);
	digest_num(md, (long long)seq);
	EVP_DigestUpdate(md, "\n", 1);
	digest_num(md, (long long)us);
	for (col = 2; col <= 5; col++) {	/* actor, action, object, detail */
		EVP_DigestUpdate(md, "\n", 1);
		digest_field(md, res, row, col);
	}
	if (EVP_DigestFinal_ex(md, out, &olen) != 1 || olen != 32) {
		log_ossl("SHA-256 failed");
		return ERR_CRYPTO;
	}
	return 0;
}

static void
report_bad(struct db_audit_report *rep, int64_t seq, const char *why)
{
	rep->first_bad = seq;
	snprintf(rep->why, sizeof(rep->why), "%s", why);
}

/*
 * Returns 0 when the whole log was checked: rep->first_bad is then 0 (the
 * chain is intact) or the first seq that fails, with the reason in rep->why.
 * Returns an error code when the check could not run.
 */
int
db_audit_verify(struct db *db, struct db_audit_report *rep)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	EVP_MD_CTX *md = NULL;
	uint8_t running[32], head_hash[32], h[32], stored[32];
	int64_t head_seq, expect = 1, seq, us;
	char after[24];
	const char *params[1] = { after };
	int r, i, rows;

	if (rep == NULL)
		return ERR_INVALID;
	memset(rep, 0, sizeof(*rep));
	if (db == NULL)
		return ERR_INVALID;
	memset(running, 0, sizeof(running));
	if ((md = EVP_MD_CTX_new()) == NULL)
		return ERR_NOMEM;
	if ((r = db_conn_get(db, &c)) != 0)
		goto out;
	/* one snapshot: the head and the rows agree even while others append */
	if ((res = db_exec(c, "begin isolation level repeatable read read only",
	    0, NULL, NULL, NULL, 0, &r)) == NULL)
		goto out;
	PQclear(res);
	if ((res = db_exec(c, "select last_seq, last_hash from audit_head where id = 1",
	    0, NULL, NULL, NULL, 1, &r)) == NULL)
		goto out;
	if (PQntuples(res) != 1 || (r = db_get_i64(res, 0, 0, &head_seq)) != 0 ||
	    (r = db_get_fixed(res, 0, 1, head_hash, 32)) != 0) {
		r = ERR_DB;
		goto out;
	}
	PQclear(res);
	res = NULL;

	for (;;) {
		snprintf(after, sizeof(after), "%lld", (long long)(expect - 1));
		res = db_exec(c, "select seq, (extract(epoch from at) * 1000000)::int8, "
		    "actor, action, object, detail::text, prev_hash, hash "
		    "from audit_log where seq > $1::int8 order by seq limit " AUDIT_PAGE,
		    1, params, NULL, NULL, 1, &r);
		if (res == NULL)
			goto out;
		rows = PQntuples(res);
		if (rows == 0)
			break;
		for (i = 0; i < rows; i++) {
			if ((r = db_get_i64(res, i, 0, &seq)) != 0 ||
			    (r = db_get_i64(res, i, 1, &us)) != 0 ||
			    (r = db_get_fixed(res, i, 6, stored, 32)) != 0)
				goto out;
			if (seq != expect) {
				report_bad(rep, expect, "row missing (gap in seq)");
				goto done;
			}
			if (CRYPTO_memcmp(stored, running, 32) != 0) {
				report_bad(rep, seq, "prev_hash is not the previous row's hash");
				goto done;
			}
			if ((r = row_hash(md, running, seq, us, res, i, h)) != 0 ||
			    (r = db_get_fixed(res, i, 7, stored, 32)) != 0)
				goto out;
			if (CRYPTO_memcmp(stored, h, 32) != 0) {
				report_bad(rep, seq, "hash mismatch: row altered");
				goto done;
			}
			memcpy(running, h, 32);
			rep->rows++;
			expect++;
		}
		PQclear(res);
		res = NULL;
	}
	if (head_seq > expect - 1)
		report_bad(rep, expect, "rows missing at the end of the log");
	else if (head_seq < expect - 1)
		report_bad(rep, head_seq + 1, "row not recorded in the chain head");
	else if (CRYPTO_memcmp(head_hash, running, 32) != 0)
		report_bad(rep, head_seq > 0 ? head_seq : 1, "chain head hash mismatch");
done:
	if (rep->first_bad != 0)
		log_warnx("audit log check failed at seq %" PRId64 ": %s", rep->first_bad, rep->why);
	r = 0;
out:
	PQclear(res);
	db_conn_put(db, c);	/* ends the read-only transaction */
	EVP_MD_CTX_free(md);
	return r;
}

/* ---------------------------------------------------------------------
 * Listing, newest first. A filter left NULL folds away when the statement
 * is planned with its values (an unnamed statement is): what remains walks
 * the primary key down from before, or an index of sql/009_console_read.sql
 * (object, action, actor, the device named in detail, time) when the
 * planner finds the filter selective.
 */
void
db_audit_list_free(struct db_audit_entry *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(v[i].actor);
		free(v[i].action);
		free(v[i].object);
		free(v[i].detail);
	}
	free(v);
}

/* A copy of column col of row (never NULL in audit_log). */
static int
audit_col(const PGresult *res, int row, int col, char **out)
{
	return (*out = strdup(PQgetvalue(res, row, col))) != NULL ? 0 : ERR_NOMEM;
}

int
db_audit_list(struct db *db, const struct db_audit_filter *f, struct db_audit_entry **out,
    size_t *n, int *more)
{
	struct db_audit_entry *v = NULL;
	PGconn *c = NULL;
	PGresult *res = NULL;
	char before[24], lim[24], *prefix = NULL;
	const char *params[10];
	size_t rows = 0, i = 0, k = 0;
	int r;

	*out = NULL;
	*n = 0;
	*more = 0;
	if (db == NULL || f == NULL || f->limit < 1 || f->limit > DB_LIST_MAX || f->before < 0)
		return ERR_INVALID;
	if (f->action_prefix != NULL) {
		/* a LIKE pattern: the prefix with \, % and _ escaped, then % */
		size_t len = strlen(f->action_prefix);
		if ((prefix = malloc(2 * len + 2)) == NULL)
			return ERR_NOMEM;
		for (i = 0; i < len; i++) {
			char ch = f->action_prefix[i];
			if (ch == '\\' || ch == '%' || ch == '_')
				prefix[k++] = '\\';
			prefix[k++] = ch;
		}
		prefix[k++] = '%';
		prefix[k] = '\0';
	}
	snprintf(before, sizeof(before), "%" PRId64, f->before);
	snprintf(lim, sizeof(lim), "%zu", f->limit + 1);
	params[0] = f->before > 0 ? before : NULL;
	params[1] = f->action;
	params[2] = prefix;
	params[3] = f->object;
	params[4] = f->actor;
	params[5] = f->device;
	params[6] = f->since;
	params[7] = f->until;
	params[8] = lim;
	if ((r = db_conn_get(db, &c)) != 0)
		goto out;
	if ((res = db_exec(c, "select seq, floor(extract(epoch from at))::int8, actor, action, "
	    "object, detail::text from audit_log a "
	    "where ($1::int8 is null or a.seq < $1::int8) "
	    "and ($2::text is null or a.action = $2::text) "
	    "and ($3::text is null or a.action like $3::text) "
	    "and ($4::text is null or a.object = $4::text) "
	    "and ($5::text is null or a.actor = $5::text) "
	    "and ($6::text is null or a.object = $6::text "
	    "or coalesce(a.detail ->> 'mac', a.detail ->> 'device') = $6::text) "
	    "and ($7::timestamptz is null or a.at >= $7::timestamptz) "
	    "and ($8::timestamptz is null or a.at < $8::timestamptz) "
	    "order by a.seq desc limit $9::int8", 9, params, NULL, NULL, 0, &r)) == NULL)
		goto out;
	rows = (size_t)PQntuples(res);
	if (rows > f->limit) {
		rows = f->limit;
		*more = 1;
	}
	if ((v = calloc(rows > 0 ? rows : 1, sizeof(*v))) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < rows; i++) {
		if (PQnfields(res) != 6 ||
		    parse_int64(PQgetvalue(res, (int)i, 0), 1, INT64_MAX, &v[i].seq) != 0 ||
		    parse_int64(PQgetvalue(res, (int)i, 1), INT64_MIN, INT64_MAX, &v[i].at) != 0) {
			r = ERR_DB;
			goto out;
		}
		if ((r = audit_col(res, (int)i, 2, &v[i].actor)) != 0 ||
		    (r = audit_col(res, (int)i, 3, &v[i].action)) != 0 ||
		    (r = audit_col(res, (int)i, 4, &v[i].object)) != 0 ||
		    (r = audit_col(res, (int)i, 5, &v[i].detail)) != 0)
			goto out;
	}
	*out = v;
	*n = rows;
	v = NULL;
	r = 0;
out:
	PQclear(res);
	db_conn_put(db, c);
	db_audit_list_free(v, rows);
	free(prefix);
	if (r != 0)
		*more = 0;
	return r;
}
