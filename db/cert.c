/*
 * Certificates: lookups by serial and by device, revocation and release
 * from hold (one call to provd_revoke() or provd_unrevoke(), which also
 * write the audit and outbox rows), the revoked-certificate list with the
 * next CRL number, base CRLs and what a delta CRL lists (sql/004_crl.sql);
 * and the parameters of a new certificate for renewal and enrollment.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"

/* pg_advisory_xact_lock key serialising CRL builds: "provdcrl" */
#define CRL_LOCK_KEY "8102661233874006636"

/* Columns read by cert_from_row(), all in binary format. */
#define CERT_COLUMNS \
	"c.id, c.serial, c.fingerprint_sha256, c.status, " \
	"floor(extract(epoch from c.not_before))::int8, " \
	"floor(extract(epoch from c.not_after))::int8, " \
	"floor(extract(epoch from c.issued_at))::int8, " \
	"floor(extract(epoch from c.revoked_at))::int8, " \
	"c.revocation_reason, c.der, u.name, d.mac " \
	"from certificates c join devices d on d.id = c.device_id " \
	"left join users u on u.id = d.owner_id "

const char *
db_cert_status_name(enum db_cert_status s)
{
	switch (s) {
	case DB_CERT_ACTIVE:
		return "active";
	case DB_CERT_REVOKED:
		return "revoked";
	case DB_CERT_SUPERSEDED:
		return "superseded";
	}
	return "unknown";
}

static int
cert_status_parse(const char *s, enum db_cert_status *out)
{
	if (strcmp(s, "active") == 0)
		*out = DB_CERT_ACTIVE;
	else if (strcmp(s, "revoked") == 0)
		*out = DB_CERT_REVOKED;
	else if (strcmp(s, "superseded") == 0)
		*out = DB_CERT_SUPERSEDED;
	else
		return ERR_DB;
	return 0;
}

/* An empty certificate: nothing owned, no revocation reason. */
static void
cert_empty(struct db_cert *c)
{
	memset(c, 0, sizeof(*c));
	c->reason = -1;
}

void
db_cert_clear(struct db_cert *c)
{
	if (c == NULL)
		return;
	free(c->der);
	free(c->owner);
	cert_empty(c);
}

static int
cert_from_row(const PGresult *res, int row, struct db_cert *out)
{
	struct db_cert c;
	int16_t reason;
	int len;

	cert_empty(&c);
	if (PQnfields(res) != 12 || PQgetlength(res, row, 1) != 32 ||
	    db_get_i64(res, row, 0, &c.id) != 0 ||
	    db_get_fixed(res, row, 2, c.fingerprint, 32) != 0 ||
	    cert_status_parse(PQgetvalue(res, row, 3), &c.status) != 0 ||
	    db_get_i64(res, row, 4, &c.not_before) != 0 ||
	    db_get_i64(res, row, 5, &c.not_after) != 0 ||
	    db_get_i64(res, row, 6, &c.issued_at) != 0 ||
	    db_get_fixed(res, row, 11, c.mac, MAC_LEN) != 0)
		goto bad;
	memcpy(c.serial_hex, PQgetvalue(res, row, 1), 32);
	c.serial_hex[32] = '\0';
	if (!PQgetisnull(res, row, 7)) {
		if (db_get_i64(res, row, 7, &c.revoked_at) != 0 ||
		    db_get_i16(res, row, 8, &reason) != 0)
			goto bad;
		c.reason = reason;
	}
	len = PQgetlength(res, row, 9);
	if (len <= 0 || (c.der = malloc((size_t)len)) == NULL)
		goto nomem;
	memcpy(c.der, PQgetvalue(res, row, 9), (size_t)len);
	c.derlen = (size_t)len;
	if (!PQgetisnull(res, row, 10) &&
	    (c.owner = strdup(PQgetvalue(res, row, 10))) == NULL)
		goto nomem;
	*out = c;
	return 0;
nomem:
	db_cert_clear(&c);
	return len <= 0 ? ERR_DB : ERR_NOMEM;
bad:
	log_errx("certificate row has unexpected values");
	db_cert_clear(&c);
	return ERR_DB;
}

/* Runs a one-parameter certificate query; fills out from its single row. */
static int
cert_query(PGconn *c, const char *sql, const char *param, struct db_cert *out)
{
	PGresult *res;
	const char *params[1] = { param };
	int r;

	if ((res = db_exec(c, sql, 1, params, NULL, NULL, 1, &r)) == NULL)
		return r;
	if (PQntuples(res) == 0)
		r = ERR_NOT_FOUND;
	else
		r = cert_from_row(res, 0, out);
	PQclear(res);
	return r;
}

/* cert_query() on a connection of its own. */
static int
cert_lookup(struct db *db, const char *sql, const char *param, struct db_cert *out)
{
	PGconn *c = NULL;
	int r;

	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	r = cert_query(c, sql, param, out);
	db_conn_put(db, c);
	return r;
}

/* cert_lookup() with the device address mac as the parameter. */
static int
cert_by_mac(struct db *db, const uint8_t mac[MAC_LEN], const char *sql, struct db_cert *out)
{
	char m[MAC_STR_LEN];

	if (out == NULL)
		return ERR_INVALID;
	cert_empty(out);
	if (db == NULL || mac == NULL)
		return ERR_INVALID;
	mac_format(mac, m);
	return cert_lookup(db, sql, m, out);
}

void
db_issue_params(const struct db_issue *it, char times[2][24], const char **params,
    int *lengths, int *formats)
{
	snprintf(times[0], sizeof(times[0]), "%lld", (long long)it->not_before);
	snprintf(times[1], sizeof(times[1]), "%lld", (long long)it->not_after);
	params[0] = it->serial_hex;
	lengths[0] = formats[0] = 0;
	params[1] = (const char *)it->fingerprint;
	lengths[1] = 32;
	formats[1] = 1;
	params[2] = (const char *)it->der;
	lengths[2] = (int)it->derlen;
	formats[2] = 1;
	params[3] = times[0];
	params[4] = times[1];
	lengths[3] = lengths[4] = formats[3] = formats[4] = 0;
}

/* Lowercases a 32-digit hex serial into out[33]. */
static int
serial_norm(const char *in, char out[33])
{
	size_t i;
	char ch;

	if (in == NULL || strnlen(in, 33) != 32)
		return ERR_INVALID;
	for (i = 0; i < 32; i++) {
		ch = in[i];
		if (ch >= 'A' && ch <= 'F')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return ERR_INVALID;
		out[i] = ch;
	}
	out[32] = '\0';
	return 0;
}

int
db_cert_by_serial(struct db *db, const char *serial_hex, struct db_cert *out)
{
	char serial[33];

	if (out == NULL)
		return ERR_INVALID;
	cert_empty(out);
	if (db == NULL || serial_norm(serial_hex, serial) != 0)
		return ERR_INVALID;
	return cert_lookup(db, "select " CERT_COLUMNS "where c.serial = $1", serial, out);
}

int
db_cert_active_by_mac(struct db *db, const uint8_t mac[MAC_LEN], struct db_cert *out)
{
	return cert_by_mac(db, mac, "select " CERT_COLUMNS
	    "where d.mac = $1::macaddr and c.status = 'active'", out);
}

int
db_cert_last_revoked_by_mac(struct db *db, const uint8_t mac[MAC_LEN], struct db_cert *out)
{
	return cert_by_mac(db, mac, "select " CERT_COLUMNS "where d.mac = $1::macaddr "
	    "and c.status <> 'active' order by c.revoked_at desc, c.id desc limit 1", out);
}

/*
 * A change of a certificate's status in one transaction, so that what is
 * returned is what was committed: sql (a call of provd_revoke() or
 * provd_unrevoke(), its status first) with params; "ok" reads certificate
 * serial into out (unless NULL) and commits, "not_found" is ERR_NOT_FOUND,
 * and any other status st is the code refused(st, res, arg) returns.
 * Nothing is written unless it returns 0.
 */
static int
cert_change(struct db *db, const char *serial, const char *sql, int nparams,
    const char *const *params,
    int (*refused)(const char *st, const PGresult *res, void *arg), void *arg,
    struct db_cert *out)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	const char *st;
	int r;

	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	if ((res = db_exec(c, "begin", 0, NULL, NULL, NULL, 0, &r)) == NULL)
		goto out;
	PQclear(res);
	if ((res = db_exec(c, sql, nparams, params, NULL, NULL, 0, &r)) == NULL)
		goto out;
	st = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
	if (strcmp(st, "ok") == 0)
		r = 0;
	else if (strcmp(st, "not_found") == 0)
		r = ERR_NOT_FOUND;
	else
		r = refused(st, res, arg);
	PQclear(res);
	res = NULL;
	if (r != 0)
		goto out;		/* nothing written; db_conn_put rolls back */
	if (out != NULL &&
	    (r = cert_query(c, "select " CERT_COLUMNS "where c.serial = $1", serial, out)) != 0)
		goto out;
	if ((res = db_exec(c, "commit", 0, NULL, NULL, NULL, 0, &r)) == NULL) {
		if (out != NULL)
			db_cert_clear(out);
		goto out;
	}
	r = 0;
out:
	PQclear(res);
	db_conn_put(db, c);
	return r;
}

/* provd_revoke() refused: "conflict" (the certificate is not active). */
static int
revoke_refused(const char *st, const PGresult *res, void *arg)
{
	(void)res;
	(void)arg;
	return strcmp(st, "conflict") == 0 ? ERR_CONFLICT : ERR_DB;
}

int
db_cert_revoke(struct db *db, const char *serial_hex, int reason,
    const char *actor, const char *request_id, struct db_cert *out)
{
	char serial[33], rbuf[8];
	const char *params[4];
	int r;

	if (out != NULL)
		cert_empty(out);
	/* RFC 5280 CRLReason: 7 is unassigned, removeFromCRL (8) is for delta CRLs */
	if (db == NULL || serial_norm(serial_hex, serial) != 0 ||
	    reason < 0 || reason > 10 || reason == 7 || reason == 8)
		return ERR_INVALID;
	snprintf(rbuf, sizeof(rbuf), "%d", reason);
	params[0] = serial;
	params[1] = rbuf;
	params[2] = actor != NULL ? actor : "";
	params[3] = request_id;
	if ((r = cert_change(db, serial, "select r_status from provd_revoke($1::text, "
	    "$2::smallint, $3::text, $4::text)", 4, params, revoke_refused, NULL, out)) != 0)
		return r;
	log_set_id(request_id);
	log_info("certificate %s revoked, reason %d", serial, reason);
	log_set_id(NULL);
	return 0;
}

/* provd_unrevoke() refused: why, explained in arg (struct
 * db_unrevoke_refusal, or NULL). */
static int
unrevoke_refused(const char *st, const PGresult *res, void *arg)
{
	static const struct {
		const char *status;
		enum db_unrevoke_why why;
	} refusals[] = {
		{ "active", DB_UNREVOKE_ACTIVE },
		{ "superseded", DB_UNREVOKE_SUPERSEDED },
		{ "not_hold", DB_UNREVOKE_NOT_HOLD },
		{ "expired", DB_UNREVOKE_EXPIRED },
		{ "replaced", DB_UNREVOKE_REPLACED },
	};
	struct db_unrevoke_refusal *why = arg;
	int r = ERR_DB;

	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++)
		if (strcmp(st, refusals[i].status) == 0) {
			r = ERR_CONFLICT;
			if (why != NULL) {
				why->why = refusals[i].why;
				int64_t v;
				if (!PQgetisnull(res, 0, 1) &&
				    parse_int64(PQgetvalue(res, 0, 1), 0, 10, &v) == 0)
					why->reason = (int)v;
			}
		}
	if (r == ERR_DB)
		log_errx("provd_unrevoke answered \"%.32s\"", st);
	return r;
}

int
db_cert_unrevoke(struct db *db, const char *serial_hex, const char *actor,
    const char *request_id, struct db_cert *out, struct db_unrevoke_refusal *why)
{
	char serial[33];
	const char *params[3];
	int r;

	if (out != NULL)
		cert_empty(out);
	if (why != NULL) {
		why->why = DB_UNREVOKE_NONE;
		why->reason = -1;
	}
	if (db == NULL || serial_norm(serial_hex, serial) != 0)
		return ERR_INVALID;
	params[0] = serial;
	params[1] = actor != NULL ? actor : "";
	params[2] = request_id;
	if ((r = cert_change(db, serial, "select r_status, r_reason from provd_unrevoke($1::text, "
	    "$2::text, $3::text)", 3, params, unrevoke_refused, why, out)) != 0)
		return r;
	log_set_id(request_id);
	log_info("certificate %s released from hold", serial);
	log_set_id(NULL);
	return 0;
}

/* Rows of (serial bytea, revoked_at int8, reason int2), binary, into a new
 * array. */
static int
revoked_rows(const PGresult *res, struct db_revoked **list, size_t *n)
{
	struct db_revoked *v = NULL;
	int16_t reason;
	int r, rows = PQntuples(res);

	*list = NULL;
	*n = 0;
	if (PQnfields(res) != 3)
		return ERR_DB;
	if (rows > 0 && (v = calloc((size_t)rows, sizeof(*v))) == NULL)
		return ERR_NOMEM;
	for (int i = 0; i < rows; i++) {
		if ((r = db_get_fixed(res, i, 0, v[i].serial, sizeof(v[i].serial))) != 0 ||
		    (r = db_get_i64(res, i, 1, &v[i].revoked_at)) != 0 ||
		    (r = db_get_i16(res, i, 2, &reason)) != 0) {
			free(v);
			return r;
		}
		v[i].reason = reason;
	}
	*list = v;
	*n = (size_t)rows;
	return 0;
}

/* Opens a transaction holding the lock that serialises CRL builds. */
static int
crl_lock(PGconn *c)
{
	const char *key[1] = { CRL_LOCK_KEY };
	PGresult *res;
	int r;

	if ((res = db_exec(c, "begin", 0, NULL, NULL, NULL, 0, &r)) == NULL)
		return r;
	PQclear(res);
	if ((res = db_exec(c, "select pg_advisory_xact_lock($1::bigint)", 1, key, NULL, NULL,
	    0, &r)) == NULL)
		return r;
	PQclear(res);
	return 0;
}

/*
 * crl_lock(), then the next CRL number into *num. One CRL build at a time,
 * the number taken before the list is read: a higher CRL number then never
 * lists less than a lower one.
 */
static int
crl_number_next(PGconn *c, int64_t *num)
{
	PGresult *res;
	int r;

	if ((r = crl_lock(c)) != 0)
		return r;
	if ((res = db_exec(c, "select nextval('crl_number')::int8", 0, NULL, NULL, NULL,
	    1, &r)) == NULL)
		return r;
	r = db_get_i64(res, 0, 0, num);
	PQclear(res);
	return r;
}

int
db_crl_entries(struct db *db, struct db_revoked **list, size_t *n, int64_t *crl_number)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	struct db_revoked *v = NULL;
	int64_t num = 0;
	size_t rows = 0;
	int r;

	if (list != NULL)
		*list = NULL;
	if (n != NULL)
		*n = 0;
	if (db == NULL || list == NULL || n == NULL || crl_number == NULL)
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	if ((r = crl_number_next(c, &num)) != 0)
		goto out;
	if ((res = db_exec(c, "select decode(serial, 'hex'), "
	    "floor(extract(epoch from revoked_at))::int8, revocation_reason "
	    "from certificates where status <> 'active' and not_after > now() "
	    "order by revoked_at, id", 0, NULL, NULL, NULL, 1, &r)) == NULL)
		goto out;
	if ((r = revoked_rows(res, &v, &rows)) != 0)
		goto out;
	PQclear(res);
	if ((res = db_exec(c, "commit", 0, NULL, NULL, NULL, 0, &r)) == NULL)
		goto out;
	*list = v;
	*n = rows;
	*crl_number = num;
	v = NULL;
	r = 0;
out:
	free(v);
	PQclear(res);
	db_conn_put(db, c);
	return r;
}

void
db_crl_base_clear(struct db_crl_base *b)
{
	if (b == NULL)
		return;
	free(b->der);
	memset(b, 0, sizeof(*b));
}

/* The newest base: number, update times, entries, DER unless its number is
 * $1, and whether it is due for replacement ($2: the interval). */
#define BASE_NEWEST_SQL \
	"select crl_number, floor(extract(epoch from this_update))::int8, " \
	"floor(extract(epoch from next_update))::int8, entries, " \
	"case when crl_number = $1::int8 then null else der end, " \
	"this_update <= now() - make_interval(secs => $2::int8) " \
	"or next_update <= now() + interval '60 seconds' " \
	"from crl_bases order by crl_number desc limit 1"

/* Reads the newest base into out (ERR_NOT_FOUND when there is none); *due
 * says whether it should be replaced. */
static int
base_newest(PGconn *c, int64_t have, int64_t interval_s, struct db_crl_base *out, int *due)
{
	PGresult *res;
	char hv[24], iv[24];
	const char *params[2] = { hv, iv };
	int32_t entries;
	int r, len;

	snprintf(hv, sizeof(hv), "%lld", (long long)have);
	snprintf(iv, sizeof(iv), "%lld", (long long)interval_s);
	if ((res = db_exec(c, BASE_NEWEST_SQL, 2, params, NULL, NULL, 1, &r)) == NULL)
		return r;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ERR_NOT_FOUND;
	}
	if ((r = db_get_i64(res, 0, 0, &out->number)) != 0 ||
	    (r = db_get_i64(res, 0, 1, &out->this_update)) != 0 ||
	    (r = db_get_i64(res, 0, 2, &out->next_update)) != 0 ||
	    (r = db_get_i32(res, 0, 3, &entries)) != 0 || PQgetlength(res, 0, 5) != 1)
		goto out;
	out->nentries = (size_t)entries;
	*due = PQgetvalue(res, 0, 5)[0] != 0;
	if (!PQgetisnull(res, 0, 4)) {
		len = PQgetlength(res, 0, 4);
		if (len <= 0 || (out->der = malloc((size_t)len)) == NULL) {
			r = len <= 0 ? ERR_DB : ERR_NOMEM;
			goto out;
		}
		memcpy(out->der, PQgetvalue(res, 0, 4), (size_t)len);
		out->derlen = (size_t)len;
	}
	r = 0;
out:
	PQclear(res);
	if (r != 0)
		db_crl_base_clear(out);
	return r;
}

int
db_crl_base_get(struct db *db, int64_t interval_s, int64_t next_update_s, int64_t have,
    db_crl_sign_fn *sign, void *arg, struct db_crl_base *out, int *made)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	struct db_crl_base b = { 0 };
	struct db_revoked *list = NULL;
	size_t n = 0;
	uint8_t *der = NULL;
	size_t derlen = 0;
	char nb[24], tu[24], nu[24], ne[24];
	const char *params[5];
	int lengths[5] = { 0 }, formats[5] = { 0 };
	int r, due = 1;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (made != NULL)
		*made = 0;
	if (db == NULL || out == NULL || sign == NULL || interval_s < 1 || next_update_s < 1)
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	/* the common case: a current base, read without the lock */
	if ((r = base_newest(c, have, interval_s, &b, &due)) == 0 && !due)
		goto done;
	if (r != 0 && r != ERR_NOT_FOUND)
		goto out;
	db_crl_base_clear(&b);

	/* one base at a time; another instance may have made it meanwhile */
	if ((r = crl_lock(c)) != 0)
		goto out;
	if ((r = base_newest(c, have, interval_s, &b, &due)) == 0 && !due) {
		if ((res = db_exec(c, "commit", 0, NULL, NULL, NULL, 0, &r)) == NULL)
			goto out;
		goto done;
	}
	if (r != 0 && r != ERR_NOT_FOUND)
		goto out;
	db_crl_base_clear(&b);

	/* the number before the list, as in db_crl_entries() */
	if ((res = db_exec(c, "select nextval('crl_number')::int8, "
	    "floor(extract(epoch from clock_timestamp()))::int8", 0, NULL, NULL, NULL, 1,
	    &r)) == NULL)
		goto out;
	if ((r = db_get_i64(res, 0, 0, &b.number)) != 0 ||
	    (r = db_get_i64(res, 0, 1, &b.this_update)) != 0)
		goto out;
	PQclear(res);
	b.next_update = b.this_update + next_update_s;
	snprintf(nb, sizeof(nb), "%lld", (long long)b.number);
	params[0] = nb;
	if ((res = db_exec(c, "insert into crl_base_entries (crl_number, serial, revoked_at, reason) "
	    "select $1::int8, serial, revoked_at, revocation_reason from certificates "
	    "where status <> 'active' and not_after > now() "
	    "returning decode(serial, 'hex'), floor(extract(epoch from revoked_at))::int8, reason",
	    1, params, NULL, NULL, 1, &r)) == NULL)
		goto out;
	if ((r = revoked_rows(res, &list, &n)) != 0)
		goto out;
	PQclear(res);
	res = NULL;
	/* signed with the transaction open: the base is recorded whole or not */
	if ((r = sign(arg, b.number, b.this_update, b.next_update, list, n, &der, &derlen)) != 0)
		goto out;
	snprintf(tu, sizeof(tu), "%lld", (long long)b.this_update);
	snprintf(nu, sizeof(nu), "%lld", (long long)b.next_update);
	snprintf(ne, sizeof(ne), "%zu", n);
	params[1] = tu;
	params[2] = nu;
	params[3] = ne;
	params[4] = (const char *)der;
	lengths[4] = (int)derlen;
	formats[4] = 1;
	if ((res = db_exec(c, "insert into crl_bases (crl_number, this_update, next_update, "
	    "entries, der) values ($1::int8, to_timestamp($2::int8), to_timestamp($3::int8), "
	    "$4::int4, $5::bytea)", 5, params, lengths, formats, 0, &r)) == NULL)
		goto out;
	PQclear(res);
	/* the newest two are kept, with their entries */
	if ((res = db_exec(c, "delete from crl_bases where crl_number < (select min(crl_number) "
	    "from (select crl_number from crl_bases order by crl_number desc limit 2) k)",
	    0, NULL, NULL, NULL, 0, &r)) == NULL)
		goto out;
	PQclear(res);
	/* releases before this base are on every CRL a delta goes with */
	if ((res = db_exec(c, "delete from crl_releases where released_at < "
	    "to_timestamp($1::int8) - interval '1 hour'", 1, &params[1], NULL, NULL, 0,
	    &r)) == NULL)
		goto out;
	PQclear(res);
	if ((res = db_exec(c, "commit", 0, NULL, NULL, NULL, 0, &r)) == NULL)
		goto out;
	b.nentries = n;
	b.der = der;
	b.derlen = derlen;
	der = NULL;
	if (made != NULL)
		*made = 1;
	log_info("base CRL %lld made: %zu entries, %zu bytes", (long long)b.number, n, b.derlen);
done:
	*out = b;
	memset(&b, 0, sizeof(b));
	r = 0;
out:
	PQclear(res);
	db_crl_base_clear(&b);
	free(list);
	free(der);
	db_conn_put(db, c);
	return r;
}

int
db_crl_delta_entries(struct db *db, int64_t *base, struct db_revoked **list, size_t *n,
    int64_t *crl_number)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	char bn[24];
	const char *params[1] = { bn };
	int64_t num = 0, newest = 0;
	int r;

	if (list != NULL)
		*list = NULL;
	if (n != NULL)
		*n = 0;
	if (db == NULL || base == NULL || *base < 0 || list == NULL || n == NULL)
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	if (crl_number != NULL) {
		/* the number before the list, under the lock (db_crl_entries),
		 * which also keeps a new base from being made meanwhile */
		if ((r = crl_number_next(c, &num)) != 0)
			goto out;
	} else {
		/* the base and the certificates as of one moment */
		if ((res = db_exec(c, "begin isolation level repeatable read read only", 0, NULL,
		    NULL, NULL, 0, &r)) == NULL)
			goto out;
		PQclear(res);
	}
	if ((res = db_exec(c, "select coalesce(max(crl_number), 0)::int8 from crl_bases", 0, NULL,
	    NULL, NULL, 1, &r)) == NULL)
		goto out;
	if ((r = db_get_i64(res, 0, 0, &newest)) != 0)
		goto out;
	PQclear(res);
	res = NULL;
	if (newest == 0) {
		r = ERR_NOT_FOUND;
		goto out;
	}
	if (*base != 0 && *base != newest) {
		r = ERR_CONFLICT;
		goto out;
	}
	snprintf(bn, sizeof(bn), "%lld", (long long)newest);
	/*
	 * On the CRL now and not on the base as it is there (new, or revoked
	 * again with another reason or time); then released from hold since
	 * about the base (sql/004_crl.sql) and active now: removeFromCRL, dated
	 * with the release. Entries that left because their certificate
	 * expired are not repeated.
	 */
	if ((res = db_exec(c, "select decode(c.serial, 'hex'), "
	    "floor(extract(epoch from c.revoked_at))::int8, c.revocation_reason "
	    "from certificates c where c.status <> 'active' and c.not_after > now() "
	    "and not exists (select 1 from crl_base_entries e where e.crl_number = $1::int8 "
	    "and e.serial = c.serial and e.revoked_at = c.revoked_at "
	    "and e.reason = c.revocation_reason) "
	    "union all "
	    "select decode(c.serial, 'hex'), floor(extract(epoch from r.at))::int8, 8::int2 "
	    "from (select serial, max(released_at) as at from crl_releases group by serial) r "
	    "join certificates c on c.serial = r.serial "
	    "where c.status = 'active' and c.not_after > now()",
	    1, params, NULL, NULL, 1, &r)) == NULL)
		goto out;
	if ((r = revoked_rows(res, list, n)) != 0)
		goto out;
	PQclear(res);
	if ((res = db_exec(c, "commit", 0, NULL, NULL, NULL, 0, &r)) == NULL) {
		free(*list);
		*list = NULL;
		*n = 0;
		goto out;
	}
	*base = newest;
	if (crl_number != NULL)
		*crl_number = num;
	r = 0;
out:
	PQclear(res);
	db_conn_put(db, c);
	return r;
}
