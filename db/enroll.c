/*
 * Enrollment jobs: each call is one statement calling one function of
 * sql/002_intake.sql, so each is one transaction.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"

#define STEPS_JSON_MAX 512

static int
keygen_ok(const char *k)
{
	return k != NULL && (strcmp(k, "auto") == 0 || strcmp(k, "device") == 0 ||
	    strcmp(k, "server") == 0);
}

/* Step names are short lowercase words; anything else is a caller bug. */
static int
step_ok(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++)
		if (s[n] < 'a' || s[n] > 'z' || n >= 15)
			return 0;
	return n > 0;
}

/* [{"step":"link","ms":12},...] */
static int
steps_json(const struct db_enroll_step *steps, size_t n, char *out, size_t cap)
{
	size_t off = 0;
	int w;

	if (n > 8 || (n > 0 && steps == NULL))
		return ERR_INVALID;
	out[off++] = '[';
	for (size_t i = 0; i < n; i++) {
		if (!step_ok(steps[i].step))
			return ERR_INVALID;
		w = snprintf(out + off, cap - off, "%s{\"step\":\"%s\",\"ms\":%" PRIu64 "}",
		    i ? "," : "", steps[i].step, steps[i].ms);
		if (w < 0 || (size_t)w >= cap - off)
			return ERR_INVALID;
		off += (size_t)w;
	}
	if (off + 2 > cap)
		return ERR_INVALID;
	out[off++] = ']';
	out[off] = '\0';
	return 0;
}

static void
i64_text(int64_t v, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRId64, v);
}

int
db_enroll_open(struct db *db, const uint8_t mac[MAC_LEN], const char *keygen,
    int replace, const char *actor, const char *request_id, int64_t *job, char serial[33])
{
	PGconn *c = NULL;
	PGresult *res;
	char ms[MAC_STR_LEN];
	const char *params[5];
	const char *st;
	int r;

	*job = 0;
	serial[0] = '\0';
	if (db == NULL || mac == NULL || !keygen_ok(keygen))
		return ERR_INVALID;
	mac_format(mac, ms);
	params[0] = ms;
	params[1] = keygen;
	params[2] = replace ? "true" : "false";
	params[3] = actor != NULL ? actor : "";
	params[4] = request_id;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	res = db_exec(c, "select r_status, r_job, r_serial from provd_enroll_open($1::macaddr, "
	    "$2::text, $3::boolean, $4::text, $5::text)", 5, params, NULL, NULL, 0, &r);
	if (res == NULL)
		goto out;
	st = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
	if (strcmp(st, "ok") == 0 || strcmp(st, "busy") == 0) {
		if (PQgetisnull(res, 0, 1) ||
		    parse_int64(PQgetvalue(res, 0, 1), 1, INT64_MAX, job) != 0)
			r = ERR_DB;
		else
			r = strcmp(st, "ok") == 0 ? 0 : ERR_CONFLICT;
	} else if (strcmp(st, "active") == 0) {
		snprintf(serial, 33, "%s", PQgetvalue(res, 0, 2));
		r = ERR_CONFLICT;
	} else {
		r = ERR_DB;
	}
	PQclear(res);
out:
	db_conn_put(db, c);
	return r;
}

int
db_enroll_commit(struct db *db, const struct db_enroll_commit *ec, int64_t *cert_id)
{
	const struct db_issue *it;
	PGconn *c = NULL;
	PGresult *res = NULL;
	char job[24], ms[MAC_STR_LEN], times[2][24], steps[STEPS_JSON_MAX];
	char *groups = NULL;
	const char *params[17];
	int lengths[17] = { 0 }, formats[17] = { 0 };
	const char *st;
	size_t glen = 3;
	int r;

	*cert_id = 0;
	if (db == NULL || ec == NULL || (it = ec->it) == NULL || ec->job <= 0 ||
	    it->der == NULL || it->derlen == 0 || it->derlen > 65536 ||
	    (it->ngroups > 0 && it->groups == NULL) ||
	    (strcmp(ec->keygen, "device") != 0 && strcmp(ec->keygen, "server") != 0) ||
	    steps_json(ec->steps, ec->nsteps, steps, sizeof(steps)) != 0)
		return ERR_INVALID;

	/* groups as a text[] literal: {"a","b"}, each quoted and escaped */
	for (size_t i = 0; i < it->ngroups; i++)
		glen += 3 + 2 * strlen(it->groups[i]);
	if ((groups = malloc(glen)) == NULL)
		return ERR_NOMEM;
	{
		char *p = groups;
		*p++ = '{';
		for (size_t i = 0; i < it->ngroups; i++) {
			if (i)
				*p++ = ',';
			*p++ = '"';
			for (const char *q = it->groups[i]; *q; q++) {
				if (*q == '"' || *q == '\\')
					*p++ = '\\';
				*p++ = *q;
			}
			*p++ = '"';
		}
		*p++ = '}';
		*p = '\0';
	}

	i64_text(ec->job, job, sizeof(job));
	mac_format(it->mac, ms);
	params[0] = job;
	params[1] = ms;
	db_issue_params(it, times, &params[2], &lengths[2], &formats[2]);
	params[7] = it->owner;
	params[8] = groups;
	params[9] = it->replace ? "true" : "false";
	params[10] = ec->keygen;
	params[11] = ec->model;
	params[12] = ec->name != NULL && ec->name[0] != '\0' ? ec->name : NULL;
	params[13] = steps;
	params[14] = it->actor != NULL ? it->actor : "";
	params[15] = it->request_id;
	if ((r = db_conn_get(db, &c)) != 0)
		goto out;
	res = db_exec(c, "select r_status, r_cert_id, r_message from provd_enroll_commit("
	    "$1::int8, $2::macaddr, $3::text, $4::bytea, $5::bytea, $6::int8, $7::int8, "
	    "$8::text, $9::text[], $10::boolean, $11::text, $12::text, $13::text, $14::json, "
	    "$15::text, $16::text)", 16, params, lengths, formats, 0, &r);
	if (res == NULL)
		goto out;
	st = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
	if (strcmp(st, "ok") == 0) {
		r = parse_int64(PQgetvalue(res, 0, 1), 1, INT64_MAX, cert_id) == 0 ? 0 : ERR_DB;
	} else if (strcmp(st, "conflict") == 0 || strcmp(st, "invalid") == 0) {
		log_warnx("enrollment job %s not recorded: %s", job, PQgetvalue(res, 0, 2));
		r = ERR_CONFLICT;
	} else {
		r = ERR_DB;
	}
out:
	PQclear(res);
	db_conn_put(db, c);
	free(groups);
	return r;
}

int
db_enroll_signed(struct db *db, int64_t job, const struct db_issue *it)
{
	PGconn *c = NULL;
	PGresult *res;
	char jb[24], times[2][24];
	const char *params[6];
	int lengths[6] = { 0 }, formats[6] = { 0 };
	int r;

	if (db == NULL || job <= 0 || it == NULL || it->der == NULL || it->derlen == 0 ||
	    it->derlen > 65536)
		return ERR_INVALID;
	i64_text(job, jb, sizeof(jb));
	params[0] = jb;
	db_issue_params(it, times, &params[1], &lengths[1], &formats[1]);
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	res = db_exec(c, "select provd_enroll_signed($1::int8, $2::text, $3::bytea, $4::bytea, "
	    "$5::int8, $6::int8)", 6, params, lengths, formats, 0, &r);
	if (res != NULL) {
		r = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? 0 : ERR_CONFLICT;
		PQclear(res);
	}
	db_conn_put(db, c);
	return r;
}

int
db_enroll_fail(struct db *db, int64_t job, const char *step, const char *error,
    const struct db_enroll_step *steps, size_t nsteps, const char *actor, int pushed)
{
	PGconn *c = NULL;
	PGresult *res;
	char jb[24], sj[STEPS_JSON_MAX];
	const char *params[6];
	int r;

	if (db == NULL || job <= 0 || !step_ok(step) || error == NULL ||
	    steps_json(steps, nsteps, sj, sizeof(sj)) != 0)
		return ERR_INVALID;
	i64_text(job, jb, sizeof(jb));
	params[0] = jb;
	params[1] = step;
	params[2] = error;
	params[3] = sj;
	params[4] = actor != NULL ? actor : "";
	params[5] = pushed ? "true" : "false";
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	res = db_exec(c, "select provd_enroll_fail($1::int8, $2::text, $3::text, $4::json, "
	    "$5::text, $6::boolean)", 6, params, NULL, NULL, 0, &r);
	if (res != NULL) {
		r = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? 0 : ERR_CONFLICT;
		PQclear(res);
	}
	db_conn_put(db, c);
	return r;
}

int
db_enroll_reap(struct db *db, const char *actor, int older_than_s, int *n)
{
	PGconn *c = NULL;
	PGresult *res;
	char secs[16];
	const char *params[2] = { actor != NULL ? actor : "", secs };
	int64_t v = 0;
	int r;

	*n = 0;
	if (db == NULL || older_than_s < 0)
		return ERR_INVALID;
	snprintf(secs, sizeof(secs), "%d", older_than_s);
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	res = db_exec(c, "select provd_enroll_reap($1::text, $2::int4)", 2, params, NULL, NULL, 0,
	    &r);
	if (res != NULL) {
		if (PQntuples(res) == 1 && parse_int64(PQgetvalue(res, 0, 0), 0, INT32_MAX, &v) == 0)
			*n = (int)v;
		else
			r = ERR_DB;
		PQclear(res);
	}
	db_conn_put(db, c);
	return r;
}

int
db_enroll_get(struct db *db, int64_t id, struct db_enroll_job *out)
{
	PGconn *c = NULL;
	PGresult *res;
	char jb[24];
	const char *params[1] = { jb };
	int r;

	memset(out, 0, sizeof(*out));
	if (db == NULL || id <= 0)
		return ERR_INVALID;
	i64_text(id, jb, sizeof(jb));
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	res = db_exec(c, "select j.id, j.mac::text, j.status, j.keygen, coalesce(j.step, ''), "
	    "coalesce(j.error, ''), coalesce(j.requested_by, ''), coalesce(c.serial, ''), "
	    "floor(extract(epoch from j.created_at))::int8, "
	    "coalesce(floor(extract(epoch from j.finished_at))::int8, 0) "
	    "from enrollment_jobs j left join certificates c on c.id = j.certificate_id "
	    "where j.id = $1::int8", 1, params, NULL, NULL, 0, &r);
	if (res == NULL)
		goto out;
	if (PQntuples(res) != 1) {
		r = ERR_NOT_FOUND;
	} else if (parse_int64(PQgetvalue(res, 0, 0), 1, INT64_MAX, &out->id) != 0 ||
	    mac_parse(PQgetvalue(res, 0, 1), out->mac) != 0 ||
	    parse_int64(PQgetvalue(res, 0, 8), 0, INT64_MAX, &out->created_at) != 0 ||
	    parse_int64(PQgetvalue(res, 0, 9), 0, INT64_MAX, &out->finished_at) != 0) {
		r = ERR_DB;
	} else {
		snprintf(out->status, sizeof(out->status), "%s", PQgetvalue(res, 0, 2));
		snprintf(out->keygen, sizeof(out->keygen), "%s", PQgetvalue(res, 0, 3));
		snprintf(out->step, sizeof(out->step), "%s", PQgetvalue(res, 0, 4));
		snprintf(out->error, sizeof(out->error), "%s", PQgetvalue(res, 0, 5));
		snprintf(out->requested_by, sizeof(out->requested_by), "%s", PQgetvalue(res, 0, 6));
		snprintf(out->serial_hex, sizeof(out->serial_hex), "%s", PQgetvalue(res, 0, 7));
		r = 0;
	}
	PQclear(res);
out:
	db_conn_put(db, c);
	return r;
}
