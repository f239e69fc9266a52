/*
 * renew.c: the database side of certificate renewal — the superseding
 * transaction, what an administrator asked for (renew at next contact, a
 * validity cap per group) and what a renewing device may get.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"

static int
serial_ok(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++)
		if (n >= 32 || !((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return 0;
	return n == 32;
}

/* The code of a status: "ok" 0, "not_found" ERR_NOT_FOUND, "conflict"
 * ERR_CONFLICT, anything else ERR_DB. */
static int
status_code(const char *st)
{
	if (strcmp(st, "ok") == 0)
		return 0;
	if (strcmp(st, "not_found") == 0)
		return ERR_NOT_FOUND;
	if (strcmp(st, "conflict") == 0)
		return ERR_CONFLICT;
	return ERR_DB;
}

/* Runs one statement (a transaction of its own) and copies the first and
 * second columns of its single row into st and second (empty when none). */
static int
call_status(struct db *db, const char *sql, int n, const char *const *params,
    const int *lengths, const int *formats, char *st, size_t stlen, char *second,
    size_t secondlen)
{
	PGconn *c = NULL;
	PGresult *res;
	int r;

	st[0] = '\0';
	if (second != NULL && secondlen > 0)
		second[0] = '\0';
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	res = db_exec(c, sql, n, params, lengths, formats, 0, &r);
	if (res != NULL) {
		if (PQntuples(res) == 1) {
			snprintf(st, stlen, "%s", PQgetvalue(res, 0, 0));
			if (second != NULL && PQnfields(res) > 1)
				snprintf(second, secondlen, "%s", PQgetvalue(res, 0, 1));
		}
		PQclear(res);
		r = 0;
	}
	db_conn_put(db, c);
	return r;
}

int
db_renew(struct db *db, const char *old_serial, const struct db_issue *it,
    int key_reused, int64_t *cert_id)
{
	char times[2][24], st[16], id[24];
	const char *params[9];
	int lengths[9] = { 0 }, formats[9] = { 0 };
	int r;

	if (cert_id != NULL)
		*cert_id = 0;
	if (db == NULL || it == NULL || !serial_ok(old_serial) || !serial_ok(it->serial_hex) ||
	    it->der == NULL || it->derlen == 0 || it->derlen > 65536 ||
	    it->not_after <= it->not_before)
		return ERR_INVALID;
	params[0] = old_serial;
	db_issue_params(it, times, &params[1], &lengths[1], &formats[1]);
	params[6] = key_reused ? "true" : "false";
	params[7] = it->actor != NULL ? it->actor : "";
	params[8] = it->request_id;
	if ((r = call_status(db, "select r_status, r_cert_id from provd_renew($1::text, $2::text, "
	    "$3::bytea, $4::bytea, to_timestamp($5::int8), to_timestamp($6::int8), $7::boolean, "
	    "$8::text, $9::text)", 9, params, lengths, formats, st, sizeof(st), id, sizeof(id))) != 0)
		return r;
	if (strcmp(st, "ok") == 0 && cert_id != NULL)
		*cert_id = strtoll(id, NULL, 10);
	if (strcmp(st, "expired") == 0)
		return ERR_FORBIDDEN;
	if (strcmp(st, "invalid") == 0)
		return ERR_INVALID;
	return status_code(st);
}

int
db_renew_info(struct db *db, const char *serial, enum db_cert_status *status,
    int *max_days, int64_t *requested_at)
{
	PGconn *c = NULL;
	PGresult *res;
	const char *params[1] = { serial };
	int r;

	*status = DB_CERT_REVOKED;
	*max_days = 0;
	*requested_at = 0;
	if (db == NULL || !serial_ok(serial))
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	res = db_exec(c, "select r_status, coalesce(r_max_days, 0), "
	    "coalesce(extract(epoch from r_requested_at)::int8, 0) "
	    "from provd_renew_info($1::text) where r_status is not null",
	    1, params, NULL, NULL, 0, &r);
	if (res != NULL) {
		if (PQntuples(res) != 1)
			r = ERR_NOT_FOUND;
		else {
			const char *st = PQgetvalue(res, 0, 0);
			*status = strcmp(st, "active") == 0 ? DB_CERT_ACTIVE :
			    strcmp(st, "superseded") == 0 ? DB_CERT_SUPERSEDED : DB_CERT_REVOKED;
			*max_days = atoi(PQgetvalue(res, 0, 1));
			*requested_at = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
			r = 0;
		}
		PQclear(res);
	}
	db_conn_put(db, c);
	return r;
}

int
db_renew_request(struct db *db, const uint8_t mac[MAC_LEN], const char *actor,
    const char *request_id, char serial[33])
{
	char m[MAC_STR_LEN], st[16];
	const char *params[3];
	int r;

	serial[0] = '\0';
	if (db == NULL || mac == NULL)
		return ERR_INVALID;
	mac_format(mac, m);
	params[0] = m;
	params[1] = actor != NULL ? actor : "";
	params[2] = request_id;
	if ((r = call_status(db, "select r_status, r_serial from provd_renew_request($1::macaddr, "
	    "$2::text, $3::text)", 3, params, NULL, NULL, st, sizeof(st), serial, 33)) != 0)
		return r;
	if ((r = status_code(st)) != 0)
		serial[0] = '\0';
	return r;
}

int
db_group_validity(struct db *db, const char *group, int days, const char *actor,
    const char *request_id)
{
	char d[16], st[8];
	const char *params[4];

	if (db == NULL || group == NULL || days < 0 || days > 36500)
		return ERR_INVALID;
	snprintf(d, sizeof(d), "%d", days);
	params[0] = group;
	params[1] = days > 0 ? d : NULL;
	params[2] = actor != NULL ? actor : "";
	params[3] = request_id;
	return call_status(db, "select 1 from provd_group_validity($1::text, $2::int4, $3::text, "
	    "$4::text)", 4, params, NULL, NULL, st, sizeof(st), NULL, 0);
}
