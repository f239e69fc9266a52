/*
 * Certificates: lookups by serial and by device, revocation (one call to
 * provd_revoke(), which also writes the audit and outbox rows), and the
 * revoked-certificate list with the next CRL number.
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

void
db_cert_clear(struct db_cert *c)
{
	if (c == NULL)
		return;
	free(c->der);
	free(c->owner);
	memset(c, 0, sizeof(*c));
	c->reason = -1;
}

static int
cert_from_row(const PGresult *res, int row, struct db_cert *out)
{
	struct db_cert c;
	int16_t reason;
	int len;

	memset(&c, 0, sizeof(c));
	c.reason = -1;
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
	PGconn *c = NULL;
	char serial[33];
	int r;

	if (out == NULL)
		return ERR_INVALID;
	memset(out, 0, sizeof(*out));
	out->reason = -1;
	if (db == NULL || serial_norm(serial_hex, serial) != 0)
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	r = cert_query(c, "select " CERT_COLUMNS "where c.serial = $1", serial, out);
	db_conn_put(db, c);
	return r;
}

int
db_cert_active_by_mac(struct db *db, const uint8_t mac[MAC_LEN], struct db_cert *out)
{
	PGconn *c = NULL;
	char m[MAC_STR_LEN];
	int r;

	if (out == NULL)
		return ERR_INVALID;
	memset(out, 0, sizeof(*out));
	out->reason = -1;
	if (db == NULL || mac == NULL)
		return ERR_INVALID;
	mac_format(mac, m);
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	r = cert_query(c, "select " CERT_COLUMNS
	    "where d.mac = $1::macaddr and c.status = 'active'", m, out);
	db_conn_put(db, c);
	return r;
}

int
db_cert_revoke(struct db *db, const char *serial_hex, int reason,
    const char *actor, const char *request_id, struct db_cert *out)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	char serial[33], rbuf[8];
	const char *params[4];
	const char *st;
	int r;

	if (out != NULL) {
		memset(out, 0, sizeof(*out));
		out->reason = -1;
	}
	/* RFC 5280 CRLReason: 7 is unassigned, removeFromCRL (8) is for delta CRLs */
	if (db == NULL || serial_norm(serial_hex, serial) != 0 ||
	    reason < 0 || reason > 10 || reason == 7 || reason == 8)
		return ERR_INVALID;
	snprintf(rbuf, sizeof(rbuf), "%d", reason);
	params[0] = serial;
	params[1] = rbuf;
	params[2] = actor != NULL ? actor : "";
	params[3] = request_id;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	/* one transaction, so that what is returned is what was committed */
	if ((res = db_exec(c, "begin", 0, NULL, NULL, NULL, 0, &r)) == NULL)
		goto out;
	PQclear(res);
	res = db_exec(c, "select r_status from provd_revoke($1::text, $2::smallint, $3::text, $4::text)",
	    4, params, NULL, NULL, 0, &r);
	if (res == NULL)
		goto out;
	st = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
	if (strcmp(st, "ok") == 0)
		r = 0;
	else if (strcmp(st, "not_found") == 0)
		r = ERR_NOT_FOUND;
	else if (strcmp(st, "conflict") == 0)
		r = ERR_CONFLICT;
	else
		r = ERR_DB;
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
	log_set_id(request_id);
	log_info("certificate %s revoked, reason %d", serial, reason);
	log_set_id(NULL);
	r = 0;
out:
	PQclear(res);
	db_conn_put(db, c);
	return r;
}

int
db_crl_entries(struct db *db, struct db_revoked **list, size_t *n, int64_t *crl_number)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	const char *key[1] = { CRL_LOCK_KEY };
	struct db_revoked *v = NULL;
	int64_t num = 0;
	int16_t reason;
	int r, i, rows;

	if (list != NULL)
		*list = NULL;
	if (n != NULL)
		*n = 0;
	if (db == NULL || list == NULL || n == NULL || crl_number == NULL)
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	/*
	 * One CRL build at a time, the number taken before the list is read:
	 * a higher CRL number then never lists less than a lower one.
	 */
	if ((res = db_exec(c, "begin", 0, NULL, NULL, NULL, 0, &r)) == NULL)
		goto out;
	PQclear(res);
	if ((res = db_exec(c, "select pg_advisory_xact_lock($1::bigint)", 1, key, NULL, NULL,
	    0, &r)) == NULL)
		goto out;
	PQclear(res);
	if ((res = db_exec(c, "select nextval('crl_number')::int8", 0, NULL, NULL, NULL,
	    1, &r)) == NULL)
		goto out;
	if ((r = db_get_i64(res, 0, 0, &num)) != 0)
		goto out;
	PQclear(res);
	if ((res = db_exec(c, "select decode(serial, 'hex'), "
	    "floor(extract(epoch from revoked_at))::int8, revocation_reason "
	    "from certificates where status <> 'active' and not_after > now() "
	    "order by revoked_at, id", 0, NULL, NULL, NULL, 1, &r)) == NULL)
		goto out;
	rows = PQntuples(res);
	if (rows > 0 && (v = calloc((size_t)rows, sizeof(*v))) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < rows; i++) {
		if ((r = db_get_fixed(res, i, 0, v[i].serial, sizeof(v[i].serial))) != 0 ||
		    (r = db_get_i64(res, i, 1, &v[i].revoked_at)) != 0 ||
		    (r = db_get_i16(res, i, 2, &reason)) != 0)
			goto out;
		v[i].reason = reason;
	}
	PQclear(res);
	if ((res = db_exec(c, "commit", 0, NULL, NULL, NULL, 0, &r)) == NULL)
		goto out;
	*list = v;
	*n = (size_t)rows;
	*crl_number = num;
	v = NULL;
	r = 0;
out:
	free(v);
	PQclear(res);
	db_conn_put(db, c);
	return r;
}
