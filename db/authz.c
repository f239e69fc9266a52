/*
 * Access control: what the decision cache loads (devices streamed row by
 * row, the policy in one transaction), the audited changes of
 * sql/003_authz.sql, and a LISTEN connection for the notifications.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"

#define DEVICE_COLUMNS \
	"select d.id, d.mac::text, d.status, coalesce(d.owner_id, 0), c.serial, " \
	"encode(c.fingerprint_sha256, 'hex'), floor(extract(epoch from c.not_before))::int8, " \
	"floor(extract(epoch from c.not_after))::int8, " \
	"array(select gm.group_id from group_members gm where gm.device_id = d.id " \
	"order by gm.group_id limit " DB_AUTHZ_GROUPS_STR ")::text " \
	"from devices d left join certificates c on c.device_id = d.id and c.status = 'active' "
#define DB_AUTHZ_GROUPS_STR "32"

static void
i64_text(int64_t v, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRId64, v);
}

/* "{1,2,3}" into ids (at most max). */
static int
parse_id_array(const char *s, int64_t *ids, size_t max, size_t *n)
{
	char tmp[32];

	*n = 0;
	if (*s++ != '{')
		return ERR_DB;
	while (*s != '}' && *s != '\0') {
		size_t len = strcspn(s, ",}");
		if (len == 0 || len >= sizeof(tmp) || *n >= max)
			return ERR_DB;
		memcpy(tmp, s, len);
		tmp[len] = '\0';
		if (parse_int64(tmp, 1, INT64_MAX, &ids[(*n)++]) != 0)
			return ERR_DB;
		s += len;
		if (*s == ',')
			s++;
	}
	return *s == '}' ? 0 : ERR_DB;
}

static int
device_from_row(const PGresult *res, int row, struct db_authz_device *d)
{
	memset(d, 0, sizeof(*d));
	if (PQnfields(res) != 9 ||
	    parse_int64(PQgetvalue(res, row, 0), 1, INT64_MAX, &d->id) != 0 ||
	    mac_parse(PQgetvalue(res, row, 1), d->mac) != 0 ||
	    parse_int64(PQgetvalue(res, row, 3), 0, INT64_MAX, &d->owner_id) != 0 ||
	    parse_id_array(PQgetvalue(res, row, 8), d->groups, DB_AUTHZ_GROUPS, &d->ngroups) != 0)
		return ERR_DB;
	snprintf(d->status, sizeof(d->status), "%s", PQgetvalue(res, row, 2));
	if (!PQgetisnull(res, row, 4)) {
		if (hex_decode(PQgetvalue(res, row, 4), d->serial, 16) != 0 ||
		    hex_decode(PQgetvalue(res, row, 5), d->fingerprint, 32) != 0 ||
		    parse_int64(PQgetvalue(res, row, 6), INT64_MIN, INT64_MAX, &d->not_before) != 0 ||
		    parse_int64(PQgetvalue(res, row, 7), INT64_MIN, INT64_MAX, &d->not_after) != 0)
			return ERR_DB;
		d->has_cert = 1;
	}
	return 0;
}

int
db_authz_devices(struct db *db, int (*cb)(void *arg, const struct db_authz_device *d),
    void *arg)
{
	PGconn *c = NULL;
	PGresult *res;
	struct db_authz_device d;
	int r, stop = 0;

	if (db == NULL || cb == NULL)
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	if (!PQsendQueryParams(c, DEVICE_COLUMNS "order by d.id", 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(c)) {
		log_warnx("device snapshot: %s", PQerrorMessage(c));
		r = ERR_UNAVAILABLE;
		goto out;
	}
	r = 0;
	while ((res = PQgetResult(c)) != NULL) {
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_SINGLE_TUPLE && r == 0 && !stop) {
			if ((r = device_from_row(res, 0, &d)) == 0 && (r = cb(arg, &d)) != 0)
				stop = 1;
		} else if (st != PGRES_TUPLES_OK && st != PGRES_SINGLE_TUPLE && r == 0) {
			r = db_result_err(c, res, "device snapshot");
		}
		PQclear(res);
	}
out:
	db_conn_put(db, c);
	return r;
}

static int
device_query(struct db *db, const char *where, const char *param, struct db_authz_device *out)
{
	PGconn *c = NULL;
	PGresult *res;
	char sql[1024];
	const char *params[1] = { param };
	int r;

	memset(out, 0, sizeof(*out));
	snprintf(sql, sizeof(sql), "%s%s", DEVICE_COLUMNS, where);
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	if ((res = db_exec(c, sql, 1, params, NULL, NULL, 0, &r)) != NULL) {
		r = PQntuples(res) == 1 ? device_from_row(res, 0, out) : ERR_NOT_FOUND;
		PQclear(res);
	}
	db_conn_put(db, c);
	return r;
}

int
db_authz_device_by_id(struct db *db, int64_t id, struct db_authz_device *out)
{
	char buf[24];

	if (db == NULL || id <= 0)
		return ERR_INVALID;
	i64_text(id, buf, sizeof(buf));
	return device_query(db, "where d.id = $1::int8", buf, out);
}

int
db_authz_device_by_mac(struct db *db, const uint8_t mac[MAC_LEN], struct db_authz_device *out)
{
	char ms[MAC_STR_LEN];

	if (db == NULL || mac == NULL)
		return ERR_INVALID;
	mac_format(mac, ms);
	return device_query(db, "where d.mac = $1::macaddr", ms, out);
}

int
db_authz_cert_status(struct db *db, const uint8_t fp[32], char status[12], uint8_t mac[MAC_LEN],
    int *reason)
{
	PGconn *c = NULL;
	PGresult *res;
	char hex[65];
	const char *params[1] = { hex };
	int64_t v;
	int r;

	hex_encode(fp, 32, hex);
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	res = db_exec(c, "select c.status, d.mac::text, coalesce(c.revocation_reason, -1) "
	    "from certificates c join devices d on d.id = c.device_id "
	    "where c.fingerprint_sha256 = decode($1, 'hex')", 1, params, NULL, NULL, 0, &r);
	if (res != NULL) {
		if (PQntuples(res) != 1) {
			r = ERR_NOT_FOUND;
		} else if (mac_parse(PQgetvalue(res, 0, 1), mac) != 0 ||
		    parse_int64(PQgetvalue(res, 0, 2), -1, 10, &v) != 0) {
			r = ERR_DB;
		} else {
			snprintf(status, 12, "%s", PQgetvalue(res, 0, 0));
			*reason = (int)v;
			r = 0;
		}
		PQclear(res);
	}
	db_conn_put(db, c);
	return r;
}

/* ---------------------------------------------------------------------
 * The policy.
 */
void
db_authz_policy_free(struct db_authz_policy *p)
{
	if (p == NULL)
		return;
	free(p->resources);
	free(p->groups);
	free(p->users);
	free(p->devices);
	free(p->rules);
	free(p->user_groups);
	memset(p, 0, sizeof(*p));
}

static int
load_named(PGconn *c, const char *sql, struct db_named **out, size_t *n)
{
	PGresult *res;
	int r;

	*out = NULL;
	*n = 0;
	if ((res = db_exec(c, sql, 0, NULL, NULL, NULL, 0, &r)) == NULL)
		return r;
	int rows = PQntuples(res);
	if (rows > 0 && (*out = calloc((size_t)rows, sizeof(**out))) == NULL) {
		PQclear(res);
		return ERR_NOMEM;
	}
	for (int i = 0; i < rows; i++) {
		if (parse_int64(PQgetvalue(res, i, 0), 1, INT64_MAX, &(*out)[i].id) != 0) {
			PQclear(res);
			return ERR_DB;
		}
		snprintf((*out)[i].name, sizeof((*out)[i].name), "%s", PQgetvalue(res, i, 1));
	}
	*n = (size_t)rows;
	PQclear(res);
	return 0;
}

static int
seconds_of_day(const char *t, int *out)
{
	int h, m, s;

	if (sscanf(t, "%d:%d:%d", &h, &m, &s) != 3 || h < 0 || h > 24 || m < 0 || m > 59 ||
	    s < 0 || s > 60)
		return ERR_DB;
	*out = h * 3600 + m * 60 + s;
	return 0;
}

static int
load_rules(PGconn *c, struct db_authz_policy *p)
{
	PGresult *res;
	int r;

	res = db_exec(c, "select id, case when device_id is not null then 1 when user_id is not null "
	    "then 2 else 3 end, coalesce(device_id, user_id, group_id), resource_id, action, "
	    "effect = 'allow', coalesce(floor(extract(epoch from valid_from))::int8, 0), "
	    "coalesce(floor(extract(epoch from valid_until))::int8, 0), "
	    "coalesce(time_from::text, ''), coalesce(time_until::text, ''), weekdays, one_time, "
	    "used_at is not null from access_rules order by id", 0, NULL, NULL, NULL, 0, &r);
	if (res == NULL)
		return r;
	int rows = PQntuples(res);
	if (rows > 0 && (p->rules = calloc((size_t)rows, sizeof(*p->rules))) == NULL) {
		PQclear(res);
		return ERR_NOMEM;
	}
	for (int i = 0; i < rows; i++) {
		struct db_authz_rule *ru = &p->rules[i];
		int64_t kind, wd;
		ru->time_from = ru->time_until = -1;
		if (parse_int64(PQgetvalue(res, i, 0), 1, INT64_MAX, &ru->id) != 0 ||
		    parse_int64(PQgetvalue(res, i, 1), 1, 3, &kind) != 0 ||
		    parse_int64(PQgetvalue(res, i, 2), 1, INT64_MAX, &ru->subject_id) != 0 ||
		    parse_int64(PQgetvalue(res, i, 3), 1, INT64_MAX, &ru->resource_id) != 0 ||
		    parse_int64(PQgetvalue(res, i, 6), INT64_MIN, INT64_MAX, &ru->valid_from) != 0 ||
		    parse_int64(PQgetvalue(res, i, 7), INT64_MIN, INT64_MAX, &ru->valid_until) != 0 ||
		    parse_int64(PQgetvalue(res, i, 10), 1, 127, &wd) != 0 ||
		    (PQgetvalue(res, i, 8)[0] != '\0' &&
		    (seconds_of_day(PQgetvalue(res, i, 8), &ru->time_from) != 0 ||
		    seconds_of_day(PQgetvalue(res, i, 9), &ru->time_until) != 0))) {
			PQclear(res);
			return ERR_DB;
		}
		ru->subject = (enum db_subject)kind;
		ru->weekdays = (int)wd;
		snprintf(ru->action, sizeof(ru->action), "%s", PQgetvalue(res, i, 4));
		ru->allow = PQgetvalue(res, i, 5)[0] == 't';
		ru->one_time = PQgetvalue(res, i, 11)[0] == 't';
		ru->used = PQgetvalue(res, i, 12)[0] == 't';
	}
	p->nrules = (size_t)rows;
	PQclear(res);
	return 0;
}

static int
load_user_groups(PGconn *c, struct db_authz_policy *p)
{
	PGresult *res;
	int r;

	res = db_exec(c, "select user_id, group_id from group_members where user_id is not null "
	    "order by user_id, group_id", 0, NULL, NULL, NULL, 0, &r);
	if (res == NULL)
		return r;
	int rows = PQntuples(res);
	if (rows > 0 && (p->user_groups = calloc((size_t)rows, sizeof(*p->user_groups))) == NULL) {
		PQclear(res);
		return ERR_NOMEM;
	}
	for (int i = 0; i < rows; i++)
		if (parse_int64(PQgetvalue(res, i, 0), 1, INT64_MAX, &p->user_groups[i][0]) != 0 ||
		    parse_int64(PQgetvalue(res, i, 1), 1, INT64_MAX, &p->user_groups[i][1]) != 0) {
			PQclear(res);
			return ERR_DB;
		}
	p->nuser_groups = (size_t)rows;
	PQclear(res);
	return 0;
}

int
db_authz_policy(struct db *db, struct db_authz_policy *out)
{
	PGconn *c = NULL;
	PGresult *res;
	int r;

	memset(out, 0, sizeof(*out));
	if (db == NULL)
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	if ((res = db_exec(c, "begin isolation level repeatable read read only", 0, NULL, NULL,
	    NULL, 0, &r)) == NULL)
		goto out;
	PQclear(res);
	if ((res = db_exec(c, "select version from policy_version where id = 1", 0, NULL, NULL,
	    NULL, 0, &r)) == NULL)
		goto out;
	r = PQntuples(res) == 1 ? parse_int64(PQgetvalue(res, 0, 0), 1, INT64_MAX,
	    &out->version) : ERR_DB;
	PQclear(res);
	if (r != 0 ||
	    (r = load_named(c, "select id, name from resources order by id", &out->resources,
	    &out->nresources)) != 0 ||
	    (r = load_named(c, "select id, name from groups order by id", &out->groups,
	    &out->ngroups)) != 0 ||
	    (r = load_named(c, "select id, name from users order by id", &out->users,
	    &out->nusers)) != 0 ||
	    (r = load_named(c, "select id, mac::text from devices where id in (select device_id "
	    "from access_rules) order by id", &out->devices, &out->ndevices)) != 0 ||
	    (r = load_rules(c, out)) != 0 || (r = load_user_groups(c, out)) != 0)
		goto out;
	if ((res = db_exec(c, "commit", 0, NULL, NULL, NULL, 0, &r)) != NULL)
		PQclear(res);
out:
	db_conn_put(db, c);
	if (r != 0)
		db_authz_policy_free(out);
	return r;
}

/* ---------------------------------------------------------------------
 * Audited changes: one function call each, r_status mapped.
 */
static int
call_status(struct db *db, const char *sql, int n, const char *const *params, int64_t *id,
    int64_t *version)
{
	PGconn *c = NULL;
	PGresult *res;
	const char *st;
	int r;

	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	if ((res = db_exec(c, sql, n, params, NULL, NULL, 0, &r)) != NULL) {
		st = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
		if (strcmp(st, "ok") == 0) {
			r = 0;
			if (id != NULL && PQnfields(res) > 2 &&
			    parse_int64(PQgetvalue(res, 0, 1), 1, INT64_MAX, id) != 0)
				r = ERR_DB;
			if (version != NULL && parse_int64(PQgetvalue(res, 0, PQnfields(res) - 1),
			    1, INT64_MAX, version) != 0)
				r = ERR_DB;
		} else if (strcmp(st, "conflict") == 0 || strcmp(st, "unchanged") == 0) {
			r = ERR_CONFLICT;
		} else if (strcmp(st, "not_found") == 0 || strcmp(st, "no_device") == 0 ||
		    strcmp(st, "no_resource") == 0) {
			r = ERR_NOT_FOUND;
		} else {
			r = ERR_DB;
		}
		PQclear(res);
	}
	db_conn_put(db, c);
	return r;
}

int
db_resource_add(struct db *db, const char *name, const char *cls, const char *desc,
    const char *actor, int64_t *id, int64_t *version)
{
	const char *params[4] = { name, cls, desc, actor != NULL ? actor : "" };

	if (db == NULL || name == NULL)
		return ERR_INVALID;
	return call_status(db, "select r_status, r_id, r_version from provd_resource_add($1::text, "
	    "$2::text, $3::text, $4::text)", 4, params, id, version);
}

int
db_resource_delete(struct db *db, const char *name, const char *actor, int64_t *version)
{
	const char *params[2] = { name, actor != NULL ? actor : "" };

	if (db == NULL || name == NULL)
		return ERR_INVALID;
	return call_status(db, "select r_status, r_version from provd_resource_delete($1::text, "
	    "$2::text)", 2, params, NULL, version);
}

static void
time_text(int secs, char *buf, size_t len)
{
	snprintf(buf, len, "%02d:%02d:%02d", secs / 3600, secs / 60 % 60, secs % 60);
}

/* The rule's fields as the 13 text parameters of provd_rule_add (and the
 * last 13 of provd_rule_replace); the buffers hold what params point to. */
struct rule_params {
	char mac[MAC_STR_LEN], vf[24], vu[24], tf[16], tu[16], wd[8];
	const char *v[13];
};

static int
rule_params(const struct db_rule_spec *ru, const char *actor, struct rule_params *p)
{
	if (ru == NULL || ru->resource == NULL || ru->action == NULL ||
	    (ru->device != NULL) + (ru->user != NULL) + (ru->group != NULL) != 1 ||
	    (ru->time_from < 0) != (ru->time_until < 0))
		return ERR_INVALID;
	if (ru->device != NULL)
		mac_format(ru->device, p->mac);
	i64_text(ru->valid_from, p->vf, sizeof(p->vf));
	i64_text(ru->valid_until, p->vu, sizeof(p->vu));
	if (ru->time_from >= 0) {
		time_text(ru->time_from, p->tf, sizeof(p->tf));
		time_text(ru->time_until, p->tu, sizeof(p->tu));
	}
	snprintf(p->wd, sizeof(p->wd), "%d", ru->weekdays ? ru->weekdays : 127);
	p->v[0] = ru->device != NULL ? p->mac : NULL;
	p->v[1] = ru->user;
	p->v[2] = ru->group;
	p->v[3] = ru->resource;
	p->v[4] = ru->action;
	p->v[5] = ru->allow ? "allow" : "deny";
	p->v[6] = ru->valid_from ? p->vf : NULL;
	p->v[7] = ru->valid_until ? p->vu : NULL;
	p->v[8] = ru->time_from >= 0 ? p->tf : NULL;
	p->v[9] = ru->time_from >= 0 ? p->tu : NULL;
	p->v[10] = p->wd;
	p->v[11] = ru->one_time ? "true" : "false";
	p->v[12] = actor != NULL ? actor : "";
	return 0;
}

int
db_rule_add(struct db *db, const struct db_rule_spec *ru, const char *actor, int64_t *id,
    int64_t *version)
{
	struct rule_params p;

	if (db == NULL || rule_params(ru, actor, &p) != 0)
		return ERR_INVALID;
	return call_status(db, "select r_status, r_id, r_version from provd_rule_add($1::macaddr, "
	    "$2::text, $3::text, $4::text, $5::text, $6::text, to_timestamp($7::float8), "
	    "to_timestamp($8::float8), $9::time, $10::time, $11::smallint, $12::boolean, $13::text)",
	    13, p.v, id, version);
}

int
db_rule_replace(struct db *db, int64_t old_id, const struct db_rule_spec *ru, const char *actor,
    int64_t *id, int64_t *version)
{
	struct rule_params p;
	const char *params[14];
	char buf[24];

	if (db == NULL || old_id <= 0 || rule_params(ru, actor, &p) != 0)
		return ERR_INVALID;
	i64_text(old_id, buf, sizeof(buf));
	params[0] = buf;
	memcpy(params + 1, p.v, sizeof(p.v));
	return call_status(db, "select r_status, r_id, r_version from provd_rule_replace($1::int8, "
	    "$2::macaddr, $3::text, $4::text, $5::text, $6::text, $7::text, "
	    "to_timestamp($8::float8), to_timestamp($9::float8), $10::time, $11::time, "
	    "$12::smallint, $13::boolean, $14::text)", 14, params, id, version);
}

int
db_rule_delete(struct db *db, int64_t id, const char *actor, int64_t *version)
{
	char buf[24];
	const char *params[2] = { buf, actor != NULL ? actor : "" };

	if (db == NULL || id <= 0)
		return ERR_INVALID;
	i64_text(id, buf, sizeof(buf));
	return call_status(db, "select r_status, r_version from provd_rule_delete($1::int8, "
	    "$2::text)", 2, params, NULL, version);
}

int
db_rule_use(struct db *db, int64_t id, const char *actor, const uint8_t mac[MAC_LEN])
{
	PGconn *c = NULL;
	PGresult *res;
	char buf[24], ms[MAC_STR_LEN];
	const char *params[3] = { buf, actor != NULL ? actor : "", ms };
	int r;

	i64_text(id, buf, sizeof(buf));
	mac_format(mac, ms);
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	if ((res = db_exec(c, "select provd_rule_use($1::int8, $2::text, $3::macaddr)", 3, params,
	    NULL, NULL, 0, &r)) != NULL) {
		r = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't' ? 0 : ERR_CONFLICT;
		PQclear(res);
	}
	db_conn_put(db, c);
	return r;
}

int
db_group_member(struct db *db, const char *group, const uint8_t *mac, const char *user,
    int add, const char *actor, int64_t *version)
{
	char ms[MAC_STR_LEN];
	const char *params[5];

	if (db == NULL || group == NULL || (mac == NULL) == (user == NULL))
		return ERR_INVALID;
	if (mac != NULL)
		mac_format(mac, ms);
	params[0] = group;
	params[1] = mac != NULL ? ms : NULL;
	params[2] = user;
	params[3] = add ? "true" : "false";
	params[4] = actor != NULL ? actor : "";
	return call_status(db, "select r_status, r_version from provd_group_member($1::text, "
	    "$2::macaddr, $3::text, $4::boolean, $5::text)", 5, params, NULL, version);
}

/* ---------------------------------------------------------------------
 * LISTEN.
 */
struct db_listener {
	PGconn *c;
};

int
db_listen_open(struct db *db, const char *const *channels, struct db_listener **out)
{
	struct db_listener *l;
	PGresult *res;
	char sql[128];
	int r = 0;

	*out = NULL;
	if (db == NULL || channels == NULL)
		return ERR_INVALID;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return ERR_NOMEM;
	if ((l->c = db_connect(db_conninfo(db))) == NULL) {
		free(l);
		return ERR_UNAVAILABLE;
	}
	for (size_t i = 0; channels[i] != NULL && r == 0; i++) {
		/* channel names are ours, fixed identifiers */
		snprintf(sql, sizeof(sql), "listen %s", channels[i]);
		if ((res = db_exec(l->c, sql, 0, NULL, NULL, NULL, 0, &r)) != NULL)
			PQclear(res);
	}
	if (r != 0) {
		db_listen_close(l);
		return r;
	}
	*out = l;
	return 0;
}

void
db_listen_close(struct db_listener *l)
{
	if (l == NULL)
		return;
	PQfinish(l->c);
	free(l);
}

int
db_listen_poll(struct db_listener *l, int timeout_ms,
    void (*cb)(void *arg, const char *channel, const char *payload), void *arg)
{
	struct pollfd pfd = { .fd = PQsocket(l->c), .events = POLLIN };
	PGnotify *n;

	if (PQstatus(l->c) != CONNECTION_OK || pfd.fd < 0)
		return ERR_UNAVAILABLE;
	if (poll(&pfd, 1, timeout_ms) < 0)
		return 0;	/* interrupted: the caller loops */
	if (pfd.revents != 0 && !PQconsumeInput(l->c)) {
		log_warnx("notification connection lost: %s", PQerrorMessage(l->c));
		return ERR_UNAVAILABLE;
	}
	while ((n = PQnotifies(l->c)) != NULL) {
		cb(arg, n->relname, n->extra);
		PQfreemem(n);
	}
	return PQstatus(l->c) == CONNECTION_OK ? 0 : ERR_UNAVAILABLE;
}
