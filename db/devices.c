/*
 * devices.c: devices, users and groups as the REST API reads them (keyset
 * pages; each read is one repeatable-read snapshot), and the audited
 * changes of sql/006_devices.sql: a device's owner, deleting a user.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db_int.h"

/* ---------------------------------------------------------------------
 * Row decoding (text results).
 */
static int
col_i64(const PGresult *res, int row, int col, int64_t min, int64_t max, int64_t *out)
{
	if (PQgetisnull(res, row, col)) {
		*out = 0;
		return 0;
	}
	return parse_int64(PQgetvalue(res, row, col), min, max, out) == 0 ? 0 : ERR_DB;
}

/* A copy of the value, NULL for SQL NULL. */
static int
col_dup(const PGresult *res, int row, int col, char **out)
{
	*out = NULL;
	if (PQgetisnull(res, row, col))
		return 0;
	return (*out = strdup(PQgetvalue(res, row, col))) != NULL ? 0 : ERR_NOMEM;
}

static void
col_copy(const PGresult *res, int row, int col, char *out, size_t len)
{
	snprintf(out, len, "%s", PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

static void
names_free(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* "{1,2,3}" of n ids, as a parameter: *out new (free()). */
static int
id_array(const int64_t *ids, size_t n, char **out)
{
	size_t len = 3 + n * 21, at = 1;
	char *s = malloc(len);

	*out = NULL;
	if (s == NULL)
		return ERR_NOMEM;
	s[0] = '{';
	for (size_t i = 0; i < n; i++)
		at += (size_t)snprintf(s + at, len - at, "%s%" PRId64, i ? "," : "", ids[i]);
	snprintf(s + at, len - at, "}");
	*out = s;
	return 0;
}

/*
 * Names per item from rows (ordinality from 1, name) ordered by ordinality:
 * lists[k] and counts[k] for item k (NULL and 0 when it has none).
 */
struct name_list {
	char **v;
	size_t n;
};

static int
names_by_item(const PGresult *res, size_t nitems, struct name_list *lists)
{
	int rows = PQntuples(res);

	for (int i = 0; i < rows;) {
		int64_t o;
		int j = i;
		if (parse_int64(PQgetvalue(res, i, 0), 1, (int64_t)nitems, &o) != 0 ||
		    lists[o - 1].v != NULL)
			return ERR_DB;
		while (j < rows && strcmp(PQgetvalue(res, j, 0), PQgetvalue(res, i, 0)) == 0)
			j++;
		struct name_list *l = &lists[o - 1];
		if ((l->v = calloc((size_t)(j - i), sizeof(*l->v))) == NULL)
			return ERR_NOMEM;
		for (; i < j; i++)
			if ((l->v[l->n++] = strdup(PQgetvalue(res, i, 1))) == NULL)
				return ERR_NOMEM;
	}
	return 0;
}

static void
name_lists_free(struct name_list *lists, size_t n)
{
	if (lists == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		names_free(lists[i].v, lists[i].n);
	free(lists);
}

/*
 * The groups of each of n items (devices or users by id): sql takes the
 * ids as $1 (int8[]) and answers (ordinality, group name) rows. *out new
 * (name_lists_free(*out, n)).
 */
static int
groups_of(PGconn *c, const char *sql, const int64_t *ids, size_t n, struct name_list **out)
{
	PGresult *res = NULL;
	char *arr = NULL;
	const char *params[1];
	int r;

	*out = NULL;
	if ((*out = calloc(n > 0 ? n : 1, sizeof(**out))) == NULL)
		return ERR_NOMEM;
	if (n == 0)
		return 0;
	if ((r = id_array(ids, n, &arr)) != 0)
		goto out;
	params[0] = arr;
	if ((res = db_exec(c, sql, 1, params, NULL, NULL, 0, &r)) == NULL)
		goto out;
	r = PQnfields(res) == 2 ? names_by_item(res, n, *out) : ERR_DB;
out:
	PQclear(res);
	free(arr);
	if (r != 0) {
		name_lists_free(*out, n);
		*out = NULL;
	}
	return r;
}

/* Runs a statement whose result is not needed. */
static int
exec_simple(PGconn *c, const char *sql)
{
	PGresult *res;
	int r;

	if ((res = db_exec(c, sql, 0, NULL, NULL, NULL, 0, &r)) != NULL)
		PQclear(res);
	return r;
}

#define SNAPSHOT "begin isolation level repeatable read read only"

/* A connection for a page of at most limit rows (1 to DB_LIST_MAX); lim
 * gets limit + 1 as a parameter: the extra row only says that more follow. */
static int
page_conn(struct db *db, size_t limit, char lim[24], PGconn **c)
{
	if (db == NULL || limit < 1 || limit > DB_LIST_MAX)
		return ERR_INVALID;
	snprintf(lim, 24, "%zu", limit + 1);
	return db_conn_get(db, c);
}

/* The rows of a page asked with page_conn()'s lim: at most limit, and *more
 * set when the extra row came. */
static size_t
page_rows(const PGresult *res, size_t limit, int *more)
{
	size_t rows = (size_t)PQntuples(res);

	if (rows <= limit)
		return rows;
	*more = 1;
	return limit;
}

/* ---------------------------------------------------------------------
 * Devices.
 */

/* Every device read selects these columns, in this order, from devices d
 * and what DEVICE_JOINS adds. The certificate shown is the active one,
 * else the newest. */
#define DEVICE_COLS \
	"select d.id, d.mac::text, d.status, u.name, c.serial, c.status, " \
	"floor(extract(epoch from c.not_after))::int8, d.renew_requested_at is not null, " \
	"floor(extract(epoch from d.created_at))::int8, " \
	"floor(extract(epoch from d.updated_at))::int8, d.name, d.model "
#define DEVICE_JOINS \
	"left join users u on u.id = d.owner_id " \
	"left join lateral (select x.serial, x.status, x.not_after from certificates x " \
	"where x.device_id = d.id order by x.status = 'active' desc, x.id desc limit 1) c " \
	"on true "
#define DEVICE_SELECT DEVICE_COLS "from devices d " DEVICE_JOINS
#define DEVICE_NCOLS 12

#define DEVICE_GROUPS_SQL \
	"select t.o, g.name from unnest($1::int8[]) with ordinality as t(id, o) " \
	"join group_members m on m.device_id = t.id join groups g on g.id = m.group_id " \
	"order by t.o, g.name"

void
db_device_info_clear(struct db_device_info *d)
{
	if (d == NULL)
		return;
	free(d->owner);
	free(d->name);
	free(d->model);
	names_free(d->groups, d->ngroups);
	free(d->certs);
	memset(d, 0, sizeof(*d));
}

void
db_device_list_free(struct db_device_info *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		db_device_info_clear(&v[i]);
	free(v);
}

static int
device_from_row(const PGresult *res, int row, struct db_device_info *d, int64_t *id)
{
	int r;

	memset(d, 0, sizeof(*d));
	if (PQnfields(res) != DEVICE_NCOLS ||
	    col_i64(res, row, 0, 1, INT64_MAX, id) != 0 ||
	    mac_parse(PQgetvalue(res, row, 1), d->mac) != 0 ||
	    col_i64(res, row, 8, INT64_MIN, INT64_MAX, &d->created_at) != 0 ||
	    col_i64(res, row, 9, INT64_MIN, INT64_MAX, &d->updated_at) != 0)
		return ERR_DB;
	col_copy(res, row, 2, d->status, sizeof(d->status));
	if ((r = col_dup(res, row, 3, &d->owner)) != 0)
		return r;
	if (!PQgetisnull(res, row, 4)) {
		d->has_cert = 1;
		col_copy(res, row, 4, d->cert.serial, sizeof(d->cert.serial));
		col_copy(res, row, 5, d->cert.status, sizeof(d->cert.status));
		if (col_i64(res, row, 6, INT64_MIN, INT64_MAX, &d->cert.not_after) != 0)
			return ERR_DB;
		d->cert.reason = -1;
	}
	d->renew_requested = PQgetvalue(res, row, 7)[0] == 't';
	if ((r = col_dup(res, row, 10, &d->name)) != 0 ||
	    (r = col_dup(res, row, 11, &d->model)) != 0)
		return r;
	return 0;
}

/* The first rows devices of res, with their groups, into a new array. */
static int
devices_from_result(PGconn *c, const PGresult *res, size_t rows, struct db_device_info **out,
    size_t *n)
{
	struct name_list *groups = NULL;
	struct db_device_info *v = NULL;
	int64_t *ids = NULL;
	int r = ERR_NOMEM;

	*out = NULL;
	*n = 0;
	if ((v = calloc(rows > 0 ? rows : 1, sizeof(*v))) == NULL ||
	    (ids = calloc(rows > 0 ? rows : 1, sizeof(*ids))) == NULL)
		goto out;
	for (size_t i = 0; i < rows; i++)
		if ((r = device_from_row(res, (int)i, &v[i], &ids[i])) != 0)
			goto out;
	if ((r = groups_of(c, DEVICE_GROUPS_SQL, ids, rows, &groups)) != 0)
		goto out;
	for (size_t i = 0; i < rows; i++) {
		v[i].groups = groups[i].v;
		v[i].ngroups = groups[i].n;
	}
	free(groups);
	*out = v;
	*n = rows;
	v = NULL;
	r = 0;
out:
	db_device_list_free(v, rows);
	free(ids);
	return r;
}

/* ---------------------------------------------------------------------
 * A statement put together from fixed fragments, its values bound as
 * parameters: only the filters asked for appear in it, each as a plain
 * condition or a semi-join that the planner can drive an index with (a
 * condition inside "$n is null or ..." could not be a semi-join). No text
 * of a request goes into the SQL itself.
 */
#define SQL_MAX 4096
#define SQL_PARAMS 12

struct sql_text {
	char s[SQL_MAX];
	size_t len;
	const char *v[SQL_PARAMS];
	int n;
	int over;			/* a fragment did not fit: a bug */
};

static void
sql_add(struct sql_text *b, const char *text)
{
	size_t l = strlen(text);

	if (b->len + l >= sizeof(b->s)) {
		b->over = 1;
		return;
	}
	memcpy(b->s + b->len, text, l + 1);
	b->len += l;
}

/* Binds value as the next parameter and returns its number. */
static int
sql_bind(struct sql_text *b, const char *value)
{
	if (b->n == SQL_PARAMS) {
		b->over = 1;
		return 1;
	}
	b->v[b->n++] = value;
	return b->n;
}

/* Adds "$n::type". */
static void
sql_ref(struct sql_text *b, int n, const char *type)
{
	char t[48];

	snprintf(t, sizeof(t), "$%d::%s", n, type);
	sql_add(b, t);
}

/* Parameter numbers of a device page (0: that filter is not asked for). */
struct page_params {
	int status, owner, after, group, lo, hi, pattern, before, since, limit;
};

/* " and ..." on devices d for every filter but the search. */
static void
device_conds(struct sql_text *b, const struct page_params *p)
{
	if (p->status) {
		sql_add(b, " and d.status = ");
		sql_ref(b, p->status, "text");
	}
	if (p->owner) {
		sql_add(b, " and d.owner_id = ");
		sql_ref(b, p->owner, "int8");
	}
	if (p->after) {
		sql_add(b, " and d.mac > ");
		sql_ref(b, p->after, "macaddr");
	}
	if (p->group) {
		sql_add(b, " and d.id in (select m.device_id from group_members m "
		    "where m.group_id = ");
		sql_ref(b, p->group, "int8");
		sql_add(b, " and m.device_id is not null)");
	}
	if (p->before || p->since) {
		sql_add(b, " and d.id in (select e.device_id from certificates e "
		    "where e.status = 'active'");
		if (p->before) {
			sql_add(b, " and e.not_after < ");
			sql_ref(b, p->before, "timestamptz");
		}
		if (p->since) {
			sql_add(b, " and e.not_after > ");
			sql_ref(b, p->since, "timestamptz");
		}
		sql_add(b, ")");
	}
}

/* " order by d.mac limit $n::int8" */
static void
device_order(struct sql_text *b, const struct page_params *p)
{
	sql_add(b, " order by d.mac limit ");
	sql_ref(b, p->limit, "int8");
}

/*
 * A page of devices: the ids of the page first, then their columns. The
 * filters walk an index in address order (the address index,
 * devices_status_mac or devices_owner_mac), or read a group's members or
 * the certificates expiring in a window (certificates_active_expiry) and
 * sort them, whichever the planner finds cheaper. A search is the union of
 * three pages, each with the other filters: addresses in the prefix's
 * range (an index range), names and owners' names with the prefix
 * (devices_name_prefix, users_name_prefix); the page is the first of
 * their union.
 */
static void
device_page_sql(struct sql_text *b, const struct page_params *p)
{
	sql_add(b, "with page as (");
	if (p->pattern) {
		sql_add(b, "select s.id, s.mac from (");
		if (p->lo) {
			sql_add(b, "(select d.id, d.mac from devices d where d.mac between ");
			sql_ref(b, p->lo, "macaddr");
			sql_add(b, " and ");
			sql_ref(b, p->hi, "macaddr");
			device_conds(b, p);
			device_order(b, p);
			sql_add(b, ") union ");
		}
		sql_add(b, "(select d.id, d.mac from devices d where lower(d.name) like lower(");
		sql_ref(b, p->pattern, "text");
		sql_add(b, ")");
		device_conds(b, p);
		device_order(b, p);
		sql_add(b, ") union (select d.id, d.mac from devices d join users o "
		    "on o.id = d.owner_id where lower(o.name) like lower(");
		sql_ref(b, p->pattern, "text");
		sql_add(b, ")");
		device_conds(b, p);
		device_order(b, p);
		sql_add(b, ")) s order by s.mac limit ");
		sql_ref(b, p->limit, "int8");
	} else {
		sql_add(b, "select d.id, d.mac from devices d where true");
		device_conds(b, p);
		device_order(b, p);
	}
	sql_add(b, ") " DEVICE_COLS "from page p join devices d on d.id = p.id " DEVICE_JOINS
	    "order by d.mac");
}

/* q as a LIKE pattern for a prefix: \, % and _ escaped, % appended. *out
 * new (free()). */
static int
like_prefix(const char *q, char **out)
{
	size_t len = strlen(q), k = 0;
	char *p = malloc(2 * len + 2);

	*out = NULL;
	if (p == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < len; i++) {
		if (q[i] == '\\' || q[i] == '%' || q[i] == '_')
			p[k++] = '\\';
		p[k++] = q[i];
	}
	p[k++] = '%';
	p[k] = '\0';
	*out = p;
	return 0;
}

int
db_device_list(struct db *db, const struct db_device_filter *f, struct db_device_info **out,
    size_t *n, int *more)
{
	struct sql_text *b = NULL;
	struct page_params pp = { 0 };
	PGconn *c = NULL;
	PGresult *res = NULL;
	char mac[MAC_STR_LEN], owner_id[24] = "", group_id[24] = "", lim[24];
	char *pattern = NULL;
	const char *params[2];
	size_t rows;
	int r;

	*out = NULL;
	*n = 0;
	*more = 0;
	if (f == NULL || (f->mac_lo == NULL) != (f->mac_hi == NULL) ||
	    (f->mac_lo != NULL && f->q == NULL))
		return ERR_INVALID;
	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (f->q != NULL && like_prefix(f->q, &pattern) != 0)) {
		free(b);
		return ERR_NOMEM;
	}
	if ((r = page_conn(db, f->limit, lim, &c)) != 0)
		goto out;
	if ((r = exec_simple(c, SNAPSHOT)) != 0)
		goto out;
	if (f->owner != NULL || f->group != NULL) {
		/* names to ids first: the plan below then sees the very ids */
		params[0] = f->owner;
		params[1] = f->group;
		if ((res = db_exec(c, "select (select id from users where name = $1::text), "
		    "(select id from groups where name = $2::text)", 2, params, NULL, NULL, 0,
		    &r)) == NULL)
			goto out;
		if (PQntuples(res) != 1) {
			r = ERR_DB;
			goto out;
		}
		if ((f->owner != NULL && PQgetisnull(res, 0, 0)) ||
		    (f->group != NULL && PQgetisnull(res, 0, 1))) {
			r = 0;		/* no such owner or group: no devices */
			goto out;
		}
		col_copy(res, 0, 0, owner_id, sizeof(owner_id));
		col_copy(res, 0, 1, group_id, sizeof(group_id));
		PQclear(res);
		res = NULL;
	}
	if (f->after != NULL)
		mac_format(f->after, mac);
	pp.limit = sql_bind(b, lim);
	if (f->status != NULL)
		pp.status = sql_bind(b, f->status);
	if (f->owner != NULL)
		pp.owner = sql_bind(b, owner_id);
	if (f->after != NULL)
		pp.after = sql_bind(b, mac);
	if (f->group != NULL)
		pp.group = sql_bind(b, group_id);
	if (f->mac_lo != NULL) {
		pp.lo = sql_bind(b, f->mac_lo);
		pp.hi = sql_bind(b, f->mac_hi);
	}
	if (pattern != NULL)
		pp.pattern = sql_bind(b, pattern);
	if (f->expires_before != NULL)
		pp.before = sql_bind(b, f->expires_before);
	if (f->expires_after != NULL)
		pp.since = sql_bind(b, f->expires_after);
	device_page_sql(b, &pp);
	if (b->over) {
		log_warnx("the device page statement does not fit");
		r = ERR_INTERNAL;
		goto out;
	}
	if ((res = db_exec(c, b->s, b->n, b->v, NULL, NULL, 0, &r)) == NULL)
		goto out;
	rows = page_rows(res, f->limit, more);
	if ((r = devices_from_result(c, res, rows, out, n)) != 0)
		goto out;
	r = exec_simple(c, "commit");
out:
	PQclear(res);
	db_conn_put(db, c);
	free(pattern);
	free(b);
	if (r != 0) {
		db_device_list_free(*out, *n);
		*out = NULL;
		*n = 0;
		*more = 0;
	}
	return r;
}

int
db_device_get(struct db *db, const uint8_t mac[MAC_LEN], struct db_device_info *out)
{
	struct db_device_info *v = NULL;
	PGconn *c = NULL;
	PGresult *res = NULL;
	char ms[MAC_STR_LEN], id[24], lim[24];
	const char *params[2];
	size_t nv = 0;
	int r;

	memset(out, 0, sizeof(*out));
	if (db == NULL || mac == NULL)
		return ERR_INVALID;
	mac_format(mac, ms);
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	if ((r = exec_simple(c, SNAPSHOT)) != 0)
		goto out;
	params[0] = ms;
	if ((res = db_exec(c, DEVICE_SELECT "where d.mac = $1::macaddr", 1, params, NULL, NULL, 0,
	    &r)) == NULL)
		goto out;
	if (PQntuples(res) != 1) {
		r = ERR_NOT_FOUND;
		goto out;
	}
	col_copy(res, 0, 0, id, sizeof(id));
	if ((r = devices_from_result(c, res, 1, &v, &nv)) != 0)
		goto out;
	PQclear(res);
	snprintf(lim, sizeof(lim), "%d", DB_DEVICE_CERTS);
	params[0] = id;
	params[1] = lim;
	if ((res = db_exec(c, "select serial, status, floor(extract(epoch from not_before))::int8, "
	    "floor(extract(epoch from not_after))::int8, coalesce(revocation_reason, -1), "
	    "floor(extract(epoch from revoked_at))::int8 from certificates "
	    "where device_id = $1::int8 order by id desc limit $2::int8", 2, params, NULL, NULL, 0,
	    &r)) == NULL)
		goto out;
	size_t rows = (size_t)PQntuples(res);
	if (rows > 0 && (v->certs = calloc(rows, sizeof(*v->certs))) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < rows; i++) {
		struct db_device_cert *dc = &v->certs[i];
		int64_t reason;
		col_copy(res, (int)i, 0, dc->serial, sizeof(dc->serial));
		col_copy(res, (int)i, 1, dc->status, sizeof(dc->status));
		if (col_i64(res, (int)i, 2, INT64_MIN, INT64_MAX, &dc->not_before) != 0 ||
		    col_i64(res, (int)i, 3, INT64_MIN, INT64_MAX, &dc->not_after) != 0 ||
		    col_i64(res, (int)i, 4, -1, 10, &reason) != 0 ||
		    col_i64(res, (int)i, 5, INT64_MIN, INT64_MAX, &dc->revoked_at) != 0) {
			r = ERR_DB;
			goto out;
		}
		dc->reason = (int)reason;
		v->ncerts++;
	}
	if ((r = exec_simple(c, "commit")) != 0)
		goto out;
	*out = *v;
	free(v);
	v = NULL;
	nv = 0;
out:
	PQclear(res);
	db_conn_put(db, c);
	db_device_list_free(v, nv);
	return r;
}

/* ---------------------------------------------------------------------
 * Users.
 */
void
db_user_list_free(struct db_user_info *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		names_free(v[i].groups, v[i].ngroups);
	}
	free(v);
}

int
db_user_list(struct db *db, const char *after, size_t limit, struct db_user_info **out,
    size_t *n, int *more)
{
	struct name_list *groups = NULL;
	struct db_user_info *v = NULL;
	PGconn *c = NULL;
	PGresult *res = NULL;
	int64_t *ids = NULL;
	char lim[24];
	const char *params[2] = { after, lim };
	size_t rows = 0, i = 0;
	int r;

	*out = NULL;
	*n = 0;
	*more = 0;
	if ((r = page_conn(db, limit, lim, &c)) != 0)
		return r;
	if ((r = exec_simple(c, SNAPSHOT)) != 0)
		goto out;
	if ((res = db_exec(c, "select u.id, u.name, floor(extract(epoch from u.created_at))::int8, "
	    "(select count(*) from devices d where d.owner_id = u.id) from users u "
	    "where ($1::text is null or u.name > $1::text) order by u.name limit $2::int8", 2,
	    params, NULL, NULL, 0, &r)) == NULL)
		goto out;
	rows = page_rows(res, limit, more);
	r = ERR_NOMEM;
	if ((v = calloc(rows > 0 ? rows : 1, sizeof(*v))) == NULL ||
	    (ids = calloc(rows > 0 ? rows : 1, sizeof(*ids))) == NULL)
		goto out;
	for (i = 0; i < rows; i++) {
		if (col_i64(res, (int)i, 0, 1, INT64_MAX, &ids[i]) != 0 ||
		    col_i64(res, (int)i, 2, INT64_MIN, INT64_MAX, &v[i].created_at) != 0 ||
		    col_i64(res, (int)i, 3, 0, INT64_MAX, &v[i].devices) != 0) {
			r = ERR_DB;
			goto out;
		}
		if ((r = col_dup(res, (int)i, 1, &v[i].name)) != 0)
			goto out;
	}
	if ((r = groups_of(c, "select t.o, g.name from unnest($1::int8[]) with ordinality "
	    "as t(id, o) join group_members m on m.user_id = t.id "
	    "join groups g on g.id = m.group_id order by t.o, g.name", ids, rows, &groups)) != 0)
		goto out;
	for (i = 0; i < rows; i++) {
		v[i].groups = groups[i].v;
		v[i].ngroups = groups[i].n;
	}
	free(groups);
	if ((r = exec_simple(c, "commit")) != 0)
		goto out;
	*out = v;
	*n = rows;
	v = NULL;
out:
	PQclear(res);
	db_conn_put(db, c);
	db_user_list_free(v, rows);
	free(ids);
	if (r != 0)
		*more = 0;
	return r;
}

/* ---------------------------------------------------------------------
 * Groups.
 */
#define GROUP_SELECT \
	"select g.id, g.name, coalesce(g.max_validity_days, 0), " \
	"floor(extract(epoch from g.created_at))::int8, " \
	"(select count(*) from group_members m where m.group_id = g.id " \
	"and m.device_id is not null), " \
	"(select count(*) from group_members m where m.group_id = g.id " \
	"and m.user_id is not null) from groups g "

void
db_group_info_clear(struct db_group_info *g)
{
	if (g == NULL)
		return;
	free(g->name);
	free(g->member_macs);
	names_free(g->member_users, g->nmember_users);
	free(g->rules);
	memset(g, 0, sizeof(*g));
}

void
db_group_list_free(struct db_group_info *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		db_group_info_clear(&v[i]);
	free(v);
}

static int
group_from_row(const PGresult *res, int row, struct db_group_info *g, int64_t *id)
{
	int64_t days;

	memset(g, 0, sizeof(*g));
	if (PQnfields(res) != 6 ||
	    col_i64(res, row, 0, 1, INT64_MAX, id) != 0 ||
	    col_i64(res, row, 2, 0, 36500, &days) != 0 ||
	    col_i64(res, row, 3, INT64_MIN, INT64_MAX, &g->created_at) != 0 ||
	    col_i64(res, row, 4, 0, INT64_MAX, &g->devices) != 0 ||
	    col_i64(res, row, 5, 0, INT64_MAX, &g->users) != 0)
		return ERR_DB;
	g->max_validity_days = (int)days;
	return col_dup(res, row, 1, &g->name);
}

int
db_group_list(struct db *db, const char *after, size_t limit, struct db_group_info **out,
    size_t *n, int *more)
{
	struct db_group_info *v = NULL;
	PGconn *c = NULL;
	PGresult *res = NULL;
	char lim[24];
	const char *params[2] = { after, lim };
	size_t rows = 0;
	int64_t id;
	int r;

	*out = NULL;
	*n = 0;
	*more = 0;
	if ((r = page_conn(db, limit, lim, &c)) != 0)
		return r;
	if ((res = db_exec(c, GROUP_SELECT "where ($1::text is null or g.name > $1::text) "
	    "order by g.name limit $2::int8", 2, params, NULL, NULL, 0, &r)) == NULL)
		goto out;
	rows = page_rows(res, limit, more);
	if ((v = calloc(rows > 0 ? rows : 1, sizeof(*v))) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < rows; i++)
		if ((r = group_from_row(res, (int)i, &v[i], &id)) != 0)
			goto out;
	*out = v;
	*n = rows;
	v = NULL;
out:
	PQclear(res);
	db_conn_put(db, c);
	db_group_list_free(v, rows);
	if (r != 0)
		*more = 0;
	return r;
}

int
db_group_get(struct db *db, const char *name, size_t cap, struct db_group_info *out)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	char id_text[24], lim[24];
	const char *params[2];
	int64_t id;
	size_t rows;
	int r;

	memset(out, 0, sizeof(*out));
	if (db == NULL || name == NULL || cap < 1 || cap > DB_LIST_MAX)
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	if ((r = exec_simple(c, SNAPSHOT)) != 0)
		goto out;
	params[0] = name;
	if ((res = db_exec(c, GROUP_SELECT "where g.name = $1::text", 1, params, NULL, NULL, 0,
	    &r)) == NULL)
		goto out;
	if (PQntuples(res) != 1) {
		r = ERR_NOT_FOUND;
		goto out;
	}
	if ((r = group_from_row(res, 0, out, &id)) != 0)
		goto out;
	PQclear(res);
	snprintf(id_text, sizeof(id_text), "%" PRId64, id);
	snprintf(lim, sizeof(lim), "%zu", cap);
	params[0] = id_text;
	params[1] = lim;

	if ((res = db_exec(c, "select d.mac::text from group_members m "
	    "join devices d on d.id = m.device_id where m.group_id = $1::int8 "
	    "and m.device_id is not null order by d.mac limit $2::int8", 2, params, NULL, NULL, 0,
	    &r)) == NULL)
		goto out;
	rows = (size_t)PQntuples(res);
	if (rows > 0 && (out->member_macs = calloc(rows, sizeof(*out->member_macs))) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < rows; i++, out->nmember_macs++)
		if (mac_parse(PQgetvalue(res, (int)i, 0), out->member_macs[i]) != 0) {
			r = ERR_DB;
			goto out;
		}
	PQclear(res);

	if ((res = db_exec(c, "select u.name from group_members m "
	    "join users u on u.id = m.user_id where m.group_id = $1::int8 "
	    "and m.user_id is not null order by u.name limit $2::int8", 2, params, NULL, NULL, 0,
	    &r)) == NULL)
		goto out;
	rows = (size_t)PQntuples(res);
	if (rows > 0 && (out->member_users = calloc(rows, sizeof(*out->member_users))) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < rows; i++, out->nmember_users++)
		if ((r = col_dup(res, (int)i, 0, &out->member_users[i])) != 0)
			goto out;
	PQclear(res);

	if ((res = db_exec(c, "select id from access_rules where group_id = $1::int8 order by id",
	    1, params, NULL, NULL, 0, &r)) == NULL)
		goto out;
	rows = (size_t)PQntuples(res);
	if (rows > 0 && (out->rules = calloc(rows, sizeof(*out->rules))) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < rows; i++, out->nrules++)
		if (col_i64(res, (int)i, 0, 1, INT64_MAX, &out->rules[i]) != 0) {
			r = ERR_DB;
			goto out;
		}
	out->truncated = (size_t)out->devices > out->nmember_macs ||
	    (size_t)out->users > out->nmember_users;
	r = exec_simple(c, "commit");
out:
	PQclear(res);
	db_conn_put(db, c);
	if (r != 0)
		db_group_info_clear(out);
	return r;
}

/* ---------------------------------------------------------------------
 * Audited changes (sql/006_devices.sql).
 */
int
db_device_owner(struct db *db, const uint8_t mac[MAC_LEN], const char *owner,
    const char *actor, const char *request_id, char previous[OPTDATA_MAX_STR + 1],
    int *changed, int64_t *version)
{
	PGconn *c = NULL;
	PGresult *res;
	char ms[MAC_STR_LEN];
	const char *params[4] = { ms, owner, actor != NULL ? actor : "", request_id };
	const char *st;
	int r;

	previous[0] = '\0';
	*changed = 0;
	*version = 0;
	if (db == NULL || mac == NULL)
		return ERR_INVALID;
	mac_format(mac, ms);
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	if ((res = db_exec(c, "select r_status, r_previous, r_version from "
	    "provd_device_owner($1::macaddr, $2::text, $3::text, $4::text)", 4, params, NULL, NULL,
	    0, &r)) != NULL) {
		st = PQntuples(res) == 1 && PQnfields(res) == 3 ? PQgetvalue(res, 0, 0) : "";
		if (strcmp(st, "not_found") == 0) {
			r = ERR_NOT_FOUND;
		} else if (strcmp(st, "ok") != 0 && strcmp(st, "unchanged") != 0) {
			r = ERR_DB;
		} else if (col_i64(res, 0, 2, 1, INT64_MAX, version) != 0) {
			r = ERR_DB;
		} else {
			col_copy(res, 0, 1, previous, OPTDATA_MAX_STR + 1);
			*changed = strcmp(st, "ok") == 0;
			r = 0;
		}
		PQclear(res);
	}
	db_conn_put(db, c);
	return r;
}

/* "1,2,3" into a new array. */
static int
parse_id_list(const char *s, int64_t **out, size_t *n)
{
	size_t max = 1, k = 0;
	char tmp[24];

	*out = NULL;
	*n = 0;
	for (const char *p = s; *p != '\0'; p++)
		max += *p == ',';
	if ((*out = calloc(max, sizeof(**out))) == NULL)
		return ERR_NOMEM;
	while (*s != '\0') {
		size_t len = strcspn(s, ",");
		if (len == 0 || len >= sizeof(tmp) || k >= max)
			goto bad;
		memcpy(tmp, s, len);
		tmp[len] = '\0';
		if (parse_int64(tmp, 1, INT64_MAX, &(*out)[k++]) != 0)
			goto bad;
		s += len;
		if (*s == ',')
			s++;
	}
	*n = k;
	return 0;
bad:
	free(*out);
	*out = NULL;
	return ERR_DB;
}

int
db_user_delete(struct db *db, const char *name, const char *actor, const char *request_id,
    int64_t **rules, size_t *nrules, int64_t *version)
{
	PGconn *c = NULL;
	PGresult *res;
	const char *params[3] = { name, actor != NULL ? actor : "", request_id };
	const char *st;
	int r;

	*rules = NULL;
	*nrules = 0;
	*version = 0;
	if (db == NULL || name == NULL)
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	if ((res = db_exec(c, "select r_status, array_to_string(r_rules, ','), r_version from "
	    "provd_user_delete($1::text, $2::text, $3::text)", 3, params, NULL, NULL, 0,
	    &r)) != NULL) {
		st = PQntuples(res) == 1 && PQnfields(res) == 3 ? PQgetvalue(res, 0, 0) : "";
		if (strcmp(st, "not_found") == 0)
			r = ERR_NOT_FOUND;
		else if (strcmp(st, "conflict") == 0)
			r = parse_id_list(PQgetvalue(res, 0, 1), rules, nrules) == 0 ? ERR_CONFLICT :
			    ERR_DB;
		else if (strcmp(st, "ok") != 0 || col_i64(res, 0, 2, 1, INT64_MAX, version) != 0)
			r = ERR_DB;
		else
			r = 0;
		PQclear(res);
	}
	db_conn_put(db, c);
	return r;
}

/* ---------------------------------------------------------------------
 * The overview (sql/009_console_read.sql), in one snapshot. What is large
 * is counted whole and what is small is subtracted from it: all devices
 * less pending, revoked and retired (ranges of devices_status_mac) are the
 * active ones; all certificates (the smallest index) less the revoked and
 * superseded ones (certificates_revoked) the active ones. Days and weeks
 * are ranges of certificates_issued and certificates_active_expiry. JIT is
 * off: compiling these short scans costs more than it saves.
 */
static int
stats_i64(const PGresult *res, int row, int col, int64_t *out)
{
	if (row >= PQntuples(res) || col >= PQnfields(res))
		return ERR_DB;
	return col_i64(res, row, col, INT64_MIN, INT64_MAX, out);
}

int
db_stats_read(struct db *db, struct db_stats *out)
{
	static const char *const sql[] = {
		/* 0: all devices, then pending, revoked, retired */
		"select (select count(*) from devices), "
		"(select count(*) from devices where status = 'pending'), "
		"(select count(*) from devices where status = 'revoked'), "
		"(select count(*) from devices where status = 'retired')",
		/* 1: all certificates */
		"select count(*) from certificates",
		/* 2: revoked and superseded; revoked since $1 less a day */
		"select status, count(*), count(*) filter (where revoked_at > "
		"to_timestamp($1::int8) - interval '1 day') from certificates "
		"where status <> 'active' group by status",
		/* 3: per day from $1: issued, less those that replaced another
		 * (a replaced certificate is marked superseded, with revoked_at,
		 * in the transaction that records its successor: the same now()) */
		"select (select count(*) from certificates where issued_at >= t.d "
		"and issued_at < t.d + interval '1 day') - "
		"(select count(*) from certificates where status <> 'active' "
		"and status = 'superseded' and revoked_at >= t.d "
		"and revoked_at < t.d + interval '1 day') "
		"from generate_series(to_timestamp($1::int8), to_timestamp($1::int8) + "
		"interval '29 days', interval '1 day') with ordinality as t(d, o) order by o",
		/* 4: active certificates expiring per week from $2, from now ($1) on */
		"select (select count(*) from certificates where status = 'active' "
		"and not_after >= greatest(t.w, to_timestamp($1::int8)) "
		"and not_after < t.w + interval '7 days') "
		"from generate_series(to_timestamp($2::int8), to_timestamp($2::int8) + "
		"interval '77 days', interval '7 days') with ordinality as t(w, o) order by o",
	};
	PGconn *c = NULL;
	PGresult *res = NULL;
	char at[24], day0[24], week0[24];
	const char *params[2];
	int64_t today, all, n;
	struct tm tm;
	time_t t;
	int r;

	if (out == NULL)
		return ERR_INVALID;
	memset(out, 0, sizeof(*out));
	if (db == NULL)
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	if ((r = exec_simple(c, SNAPSHOT)) != 0 || (r = exec_simple(c, "set local jit = off")) != 0)
		goto out;
	if ((res = db_exec(c, "select floor(extract(epoch from now()))::int8", 0, NULL, NULL,
	    NULL, 0, &r)) == NULL)
		goto out;
	if ((r = stats_i64(res, 0, 0, &out->at)) != 0)
		goto out;
	PQclear(res);
	res = NULL;
	/* days and weeks in UTC */
	today = out->at - (out->at % 86400 + 86400) % 86400;
	t = (time_t)today;
	gmtime_r(&t, &tm);
	out->day0 = today - (DB_STATS_DAYS - 1) * 86400;
	out->week0 = today - (int64_t)((tm.tm_wday + 6) % 7) * 86400;	/* Monday */
	snprintf(at, sizeof(at), "%" PRId64, out->at);
	snprintf(day0, sizeof(day0), "%" PRId64, out->day0);
	snprintf(week0, sizeof(week0), "%" PRId64, out->week0);

	if ((res = db_exec(c, sql[0], 0, NULL, NULL, NULL, 0, &r)) == NULL)
		goto out;
	if ((r = stats_i64(res, 0, 0, &all)) != 0 ||
	    (r = stats_i64(res, 0, 1, &out->devices[0])) != 0 ||
	    (r = stats_i64(res, 0, 2, &out->devices[2])) != 0 ||
	    (r = stats_i64(res, 0, 3, &out->devices[3])) != 0)
		goto out;
	out->devices[1] = all - out->devices[0] - out->devices[2] - out->devices[3];
	PQclear(res);
	if ((res = db_exec(c, sql[1], 0, NULL, NULL, NULL, 0, &r)) == NULL)
		goto out;
	if ((r = stats_i64(res, 0, 0, &all)) != 0)
		goto out;
	PQclear(res);
	params[0] = at;
	if ((res = db_exec(c, sql[2], 1, params, NULL, NULL, 0, &r)) == NULL)
		goto out;
	for (int i = 0; i < PQntuples(res); i++) {
		const char *st = PQgetvalue(res, i, 0);
		if ((r = stats_i64(res, i, 1, &n)) != 0)
			goto out;
		if (strcmp(st, "revoked") == 0) {
			out->certs_revoked = n;
			if ((r = stats_i64(res, i, 2, &out->revoked_24h)) != 0)
				goto out;
		} else if (strcmp(st, "superseded") == 0) {
			out->certs_superseded = n;
		}
	}
	out->certs_active = all - out->certs_revoked - out->certs_superseded;
	PQclear(res);
	params[0] = day0;
	if ((res = db_exec(c, sql[3], 1, params, NULL, NULL, 0, &r)) == NULL)
		goto out;
	for (int i = 0; i < DB_STATS_DAYS; i++)
		if ((r = stats_i64(res, i, 0, &out->enrolled[i])) != 0)
			goto out;
	PQclear(res);
	params[0] = at;
	params[1] = week0;
	if ((res = db_exec(c, sql[4], 2, params, NULL, NULL, 0, &r)) == NULL)
		goto out;
	for (int i = 0; i < DB_STATS_WEEKS; i++)
		if ((r = stats_i64(res, i, 0, &out->expiring[i])) != 0)
			goto out;
	r = exec_simple(c, "commit");
out:
	PQclear(res);
	db_conn_put(db, c);
	if (r != 0)
		memset(out, 0, sizeof(*out));
	return r;
}
