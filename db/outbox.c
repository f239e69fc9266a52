/*
 * Directory outbox: pending rows fetched in id order (leaving out entries in
 * back-off), marked applied or failed, counted; and the snapshot of devices,
 * users and groups the directory worker writes into LDAP. Arrays travel in
 * PostgreSQL's binary format (no quoting or escaping); results are binary.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_int.h"

#define OID_INT8 20
#define OID_TEXT 25
#define OID_MACADDR 829
#define ERROR_MAX 1000		/* bytes of last_error kept */

/* ---------------------------------------------------------------------
 * One-dimensional binary arrays (array_send/array_recv): ndim, has-nulls,
 * element type, (size, lower bound), then each element as a 32-bit length
 * and its bytes; integers in network order.
 */
struct arr {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void
arr_put(struct arr *a, const void *d, size_t n)
{
	if (a->err)
		return;
	if (a->len + n > a->cap) {
		size_t ncap = a->cap ? a->cap : 256;
		uint8_t *np;
		while (ncap < a->len + n)
			ncap *= 2;
		if (ncap > (size_t)INT32_MAX || (np = realloc(a->p, ncap)) == NULL) {
			a->err = 1;
			return;
		}
		a->p = np;
		a->cap = ncap;
	}
	memcpy(a->p + a->len, d, n);
	a->len += n;
}

static void
arr_u32(struct arr *a, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	arr_put(a, x, 4);
}

static void
arr_begin(struct arr *a, uint32_t oid, size_t n)
{
	arr_u32(a, n > 0 ? 1 : 0);
	arr_u32(a, 0);
	arr_u32(a, oid);
	if (n > 0) {
		arr_u32(a, (uint32_t)n);
		arr_u32(a, 1);
	}
}

static void
arr_elem(struct arr *a, const void *d, size_t n)
{
	arr_u32(a, (uint32_t)n);
	arr_put(a, d, n);
}

static int
arr_text(struct arr *a, const char *const *v, size_t n)
{
	arr_begin(a, OID_TEXT, n);
	for (size_t i = 0; i < n; i++) {
		if (v[i] == NULL)
			return ERR_INVALID;
		arr_elem(a, v[i], strlen(v[i]));
	}
	return a->err ? ERR_NOMEM : 0;
}

static uint32_t
get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

struct elem {
	const uint8_t *p;
	size_t len;
};

/* The elements of a binary one-dimensional array field without NULLs.
 * *out is new (free()). */
static int
arr_elems(const PGresult *res, int row, int col, struct elem **out, size_t *n)
{
	const uint8_t *p = (const uint8_t *)PQgetvalue(res, row, col);
	size_t len = (size_t)PQgetlength(res, row, col), off, count;
	struct elem *e;

	*out = NULL;
	*n = 0;
	if (PQgetisnull(res, row, col) || len < 12)
		return ERR_DB;
	if (get_u32(p) == 0)
		return 0;
	if (get_u32(p) != 1 || len < 20 || (count = get_u32(p + 12)) > len / 4)
		return ERR_DB;
	if ((e = calloc(count ? count : 1, sizeof(*e))) == NULL)
		return ERR_NOMEM;
	off = 20;
	for (size_t i = 0; i < count; i++) {
		uint32_t el;
		if (off + 4 > len || (el = get_u32(p + off)) == 0xffffffffu || el > len - off - 4) {
			free(e);
			return ERR_DB;
		}
		e[i].p = p + off + 4;
		e[i].len = el;
		off += 4 + el;
	}
	*out = e;
	*n = count;
	return 0;
}

static char *
text_dup(const PGresult *res, int row, int col)
{
	return strndup(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
}

/* ---------------------------------------------------------------------
 * The outbox rows.
 */
void
db_outbox_rows_free(struct db_outbox_row *rows, size_t n)
{
	if (rows == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(rows[i].key);
	free(rows);
}

int
db_outbox_fetch(struct db *db, size_t max, const char *const *skip_entity,
    const char *const *skip_key, size_t nskip, struct db_outbox_row **rows, size_t *n)
{
	static const char sql[] =
	    "select id, entity, op, key, attempts from directory_outbox o "
	    "where done_at is null and not exists (select 1 from unnest($2::text[], $3::text[]) "
	    "as s(entity, key) where s.entity = o.entity and s.key = o.key) "
	    "order by id limit $1::int8";
	struct arr ent = { 0 }, key = { 0 };
	struct db_outbox_row *out = NULL;
	PGconn *c = NULL;
	PGresult *res = NULL;
	char limit[24];
	const char *values[3];
	int lengths[3], formats[3] = { 0, 1, 1 }, r, nt = 0;

	*rows = NULL;
	*n = 0;
	if (db == NULL || max == 0)
		return ERR_INVALID;
	snprintf(limit, sizeof(limit), "%zu", max);
	if ((r = arr_text(&ent, skip_entity, nskip)) != 0 ||
	    (r = arr_text(&key, skip_key, nskip)) != 0)
		goto out;
	values[0] = limit;
	values[1] = (const char *)ent.p;
	values[2] = (const char *)key.p;
	lengths[0] = 0;
	lengths[1] = (int)ent.len;
	lengths[2] = (int)key.len;
	if ((r = db_conn_get(db, &c)) != 0)
		goto out;
	if ((res = db_exec(c, sql, 3, values, lengths, formats, 1, &r)) == NULL)
		goto out;
	nt = PQntuples(res);
	if ((out = calloc(nt > 0 ? (size_t)nt : 1, sizeof(*out))) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	for (int i = 0; i < nt; i++) {
		struct db_outbox_row *o = &out[i];
		if (db_get_i64(res, i, 0, &o->id) != 0 || db_get_i32(res, i, 4, &o->attempts) != 0 ||
		    PQgetlength(res, i, 1) >= (int)sizeof(o->entity) ||
		    PQgetlength(res, i, 2) >= (int)sizeof(o->op)) {
			r = ERR_DB;
			goto out;
		}
		memcpy(o->entity, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1));
		memcpy(o->op, PQgetvalue(res, i, 2), (size_t)PQgetlength(res, i, 2));
		if ((o->key = text_dup(res, i, 3)) == NULL) {
			r = ERR_NOMEM;
			goto out;
		}
	}
	*rows = out;
	*n = (size_t)nt;
	out = NULL;
	r = 0;
out:
	db_outbox_rows_free(out, (size_t)nt);
	PQclear(res);
	db_conn_put(db, c);
	free(ent.p);
	free(key.p);
	return r;
}

/* Runs sql with $1 = ids as int8[] and an optional text $2. */
static int
ids_exec(struct db *db, const char *sql, const int64_t *ids, size_t n, const char *text)
{
	struct arr a = { 0 };
	PGconn *c = NULL;
	PGresult *res = NULL;
	const char *values[2];
	int lengths[2], formats[2] = { 1, 0 }, r;

	if (db == NULL || (n > 0 && ids == NULL))
		return ERR_INVALID;
	if (n == 0)
		return 0;
	arr_begin(&a, OID_INT8, n);
	for (size_t i = 0; i < n; i++) {
		uint8_t x[8];
		for (int k = 0; k < 8; k++)
			x[k] = (uint8_t)((uint64_t)ids[i] >> (56 - 8 * k));
		arr_elem(&a, x, 8);
	}
	if (a.err) {
		r = ERR_NOMEM;
		goto out;
	}
	values[0] = (const char *)a.p;
	lengths[0] = (int)a.len;
	values[1] = text;
	lengths[1] = 0;
	if ((r = db_conn_get(db, &c)) != 0)
		goto out;
	res = db_exec(c, sql, text != NULL ? 2 : 1, values, lengths, formats, 0, &r);
out:
	PQclear(res);
	db_conn_put(db, c);
	free(a.p);
	return r;
}

int
db_outbox_done(struct db *db, const int64_t *ids, size_t n)
{
	return ids_exec(db, "update directory_outbox set done_at = now() "
	    "where id = any($1::int8[]) and done_at is null", ids, n, NULL);
}

int
db_outbox_fail(struct db *db, const int64_t *ids, size_t n, const char *error)
{
	char msg[ERROR_MAX + 1];
	size_t len;

	if (error == NULL || *error == '\0')
		error = "failed";
	/* cut at a character boundary: the column is text */
	if ((len = strlen(error)) > ERROR_MAX) {
		len = ERROR_MAX;
		while (len > 0 && ((unsigned char)error[len] & 0xC0) == 0x80)
			len--;
	}
	memcpy(msg, error, len);
	msg[len] = '\0';
	return ids_exec(db, "update directory_outbox set attempts = attempts + 1, "
	    "last_error = $2 where id = any($1::int8[]) and done_at is null", ids, n, msg);
}

int
db_outbox_pending(struct db *db, int64_t *n, int64_t *oldest_s)
{
	PGconn *c = NULL;
	PGresult *res;
	int r;

	*n = *oldest_s = 0;
	if (db == NULL)
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	res = db_exec(c, "select count(*), coalesce(floor(extract(epoch from "
	    "now() - min(created_at))), 0)::int8 from directory_outbox where done_at is null",
	    0, NULL, NULL, NULL, 1, &r);
	if (res != NULL && (PQntuples(res) != 1 || db_get_i64(res, 0, 0, n) != 0 ||
	    db_get_i64(res, 0, 1, oldest_s) != 0))
		r = ERR_DB;
	PQclear(res);
	db_conn_put(db, c);
	return r;
}

/* ---------------------------------------------------------------------
 * Snapshots of what the directory shows.
 */
#define DEVICE_SQL \
	"select d.mac, d.status, c.serial, c.revocation_reason, c.der, u.name, " \
	"array(select g.name from group_members m join groups g on g.id = m.group_id " \
	"    where m.device_id = d.id order by g.name) " \
	"from devices d left join users u on u.id = d.owner_id " \
	"left join lateral (select serial, revocation_reason, " \
	"    case when status = 'active' then der end as der from certificates " \
	"    where device_id = d.id order by status = 'active' desc, id desc limit 1) c on true "
#define GROUP_SQL \
	"select g.name, " \
	"array(select d.mac from group_members m join devices d on d.id = m.device_id " \
	"    where m.group_id = g.id order by d.mac), " \
	"array(select u.name from group_members m join users u on u.id = m.user_id " \
	"    where m.group_id = g.id order by u.name) from groups g "

static void
device_clear(struct db_dir_device *d)
{
	free(d->der);
	free(d->owner);
	for (size_t i = 0; i < d->ngroups; i++)
		free(d->groups[i]);
	free(d->groups);
}

static void
group_clear(struct db_dir_group *g)
{
	free(g->name);
	free(g->member_macs);
	for (size_t i = 0; i < g->nmember_users; i++)
		free(g->member_users[i]);
	free(g->member_users);
}

void
db_dir_snapshot_free(struct db_dir_snapshot *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->ndevices; i++)
		device_clear(&s->devices[i]);
	for (size_t i = 0; i < s->nusers; i++)
		free(s->users[i].name);
	for (size_t i = 0; i < s->ngroups; i++)
		group_clear(&s->groups[i]);
	free(s->devices);
	free(s->users);
	free(s->groups);
	free(s);
}

/* Text elements into a new array of new strings. */
static int
elems_strings(const struct elem *e, size_t n, char ***out)
{
	char **v = calloc(n ? n : 1, sizeof(*v));

	*out = NULL;
	if (v == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < n; i++)
		if ((v[i] = strndup((const char *)e[i].p, e[i].len)) == NULL) {
			while (i > 0)
				free(v[--i]);
			free(v);
			return ERR_NOMEM;
		}
	*out = v;
	return 0;
}

static int
device_from_row(const PGresult *res, int row, struct db_dir_device *d)
{
	struct elem *e = NULL;
	size_t ne = 0;
	int16_t reason;
	int r = ERR_DB, len;

	memset(d, 0, sizeof(*d));
	d->present = 1;
	d->reason = -1;
	if (PQnfields(res) != 7 || db_get_fixed(res, row, 0, d->mac, MAC_LEN) != 0 ||
	    (len = PQgetlength(res, row, 1)) >= (int)sizeof(d->status))
		goto out;
	memcpy(d->status, PQgetvalue(res, row, 1), (size_t)len);
	if (!PQgetisnull(res, row, 2)) {
		if (PQgetlength(res, row, 2) != 32)
			goto out;
		memcpy(d->serial_hex, PQgetvalue(res, row, 2), 32);
	}
	if (!PQgetisnull(res, row, 3)) {
		if (db_get_i16(res, row, 3, &reason) != 0)
			goto out;
		d->reason = reason;
	}
	r = ERR_NOMEM;
	if (!PQgetisnull(res, row, 4) && (len = PQgetlength(res, row, 4)) > 0) {
		if ((d->der = malloc((size_t)len)) == NULL)
			goto out;
		memcpy(d->der, PQgetvalue(res, row, 4), (size_t)len);
		d->derlen = (size_t)len;
	}
	if (!PQgetisnull(res, row, 5) && (d->owner = text_dup(res, row, 5)) == NULL)
		goto out;
	if ((r = arr_elems(res, row, 6, &e, &ne)) != 0 ||
	    (r = elems_strings(e, ne, &d->groups)) != 0)
		goto out;
	d->ngroups = ne;
	r = 0;
out:
	free(e);
	if (r != 0) {
		if (r == ERR_DB)
			log_errx("device row has unexpected values");
		device_clear(d);
		memset(d, 0, sizeof(*d));
	}
	return r;
}

static int
group_from_row(const PGresult *res, int row, struct db_dir_group *g)
{
	struct elem *e = NULL;
	size_t ne = 0;
	int r;

	memset(g, 0, sizeof(*g));
	g->present = 1;
	if ((g->name = text_dup(res, row, 0)) == NULL)
		return ERR_NOMEM;
	if ((r = arr_elems(res, row, 1, &e, &ne)) != 0)
		goto out;
	r = ERR_NOMEM;
	if ((g->member_macs = calloc(ne ? ne : 1, MAC_LEN)) == NULL)
		goto out;
	for (size_t i = 0; i < ne; i++) {
		if (e[i].len != MAC_LEN) {
			r = ERR_DB;
			goto out;
		}
		memcpy(g->member_macs[i], e[i].p, MAC_LEN);
	}
	g->nmember_macs = ne;
	free(e);
	e = NULL;
	if ((r = arr_elems(res, row, 2, &e, &ne)) != 0 ||
	    (r = elems_strings(e, ne, &g->member_users)) != 0)
		goto out;
	g->nmember_users = ne;
	r = 0;
out:
	free(e);
	if (r != 0) {
		group_clear(g);
		memset(g, 0, sizeof(*g));
	}
	return r;
}

/* Runs one snapshot query; the result stays with the caller. */
static int
snap_query(PGconn *c, const char *sql, const struct arr *param, PGresult **out)
{
	const char *values[1] = { param ? (const char *)param->p : NULL };
	int lengths[1] = { param ? (int)param->len : 0 }, formats[1] = { 1 }, r;

	*out = db_exec(c, sql, param ? 1 : 0, values, lengths, formats, 1, &r);
	return r;
}

/* Devices: all rows of res, or one record per mac asked for. */
static int
snap_devices(const PGresult *res, const uint8_t (*macs)[MAC_LEN], size_t nmacs, int all,
    struct db_dir_snapshot *s)
{
	size_t nt = (size_t)PQntuples(res), n = all ? nt : nmacs;
	int r;

	if ((s->devices = calloc(n ? n : 1, sizeof(*s->devices))) == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		int row = all ? (int)i : -1;
		for (size_t k = 0; !all && k < nt; k++)
			if (PQgetlength(res, (int)k, 0) == MAC_LEN &&
			    memcmp(PQgetvalue(res, (int)k, 0), macs[i], MAC_LEN) == 0)
				row = (int)k;
		if (row < 0) {
			memcpy(s->devices[i].mac, macs[i], MAC_LEN);
			s->devices[i].reason = -1;
		} else if ((r = device_from_row(res, row, &s->devices[i])) != 0)
			return r;
		s->ndevices = i + 1;
	}
	return 0;
}

static int
snap_users(const PGresult *res, const char *const *names, size_t nnames, int all,
    struct db_dir_snapshot *s)
{
	size_t nt = (size_t)PQntuples(res), n = all ? nt : nnames;

	if ((s->users = calloc(n ? n : 1, sizeof(*s->users))) == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		if (all) {
			s->users[i].name = text_dup(res, (int)i, 0);
			s->users[i].present = 1;
		} else {
			s->users[i].name = strdup(names[i]);
			for (size_t k = 0; k < nt; k++)
				s->users[i].present |= strcmp(PQgetvalue(res, (int)k, 0), names[i]) == 0;
		}
		if (s->users[i].name == NULL)
			return ERR_NOMEM;
		s->nusers = i + 1;
	}
	return 0;
}

static int
snap_groups(const PGresult *res, const char *const *names, size_t nnames, int all,
    struct db_dir_snapshot *s)
{
	size_t nt = (size_t)PQntuples(res), n = all ? nt : nnames;
	int r;

	if ((s->groups = calloc(n ? n : 1, sizeof(*s->groups))) == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		int row = all ? (int)i : -1;
		for (size_t k = 0; !all && k < nt; k++)
			if (strcmp(PQgetvalue(res, (int)k, 0), names[i]) == 0)
				row = (int)k;
		if (row < 0) {
			if ((s->groups[i].name = strdup(names[i])) == NULL)
				return ERR_NOMEM;
		} else if ((r = group_from_row(res, row, &s->groups[i])) != 0)
			return r;
		s->ngroups = i + 1;
	}
	return 0;
}

static int
snapshot(struct db *db, int all, const uint8_t (*macs)[MAC_LEN], size_t nmacs,
    const char *const *users, size_t nusers, const char *const *groups, size_t ngroups,
    struct db_dir_snapshot **out)
{
	struct db_dir_snapshot *s = NULL;
	struct arr am = { 0 }, au = { 0 }, ag = { 0 };
	PGconn *c = NULL;
	PGresult *res = NULL;
	int r;

	*out = NULL;
	if (db == NULL || (nmacs > 0 && macs == NULL) || (nusers > 0 && users == NULL) ||
	    (ngroups > 0 && groups == NULL))
		return ERR_INVALID;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ERR_NOMEM;
	arr_begin(&am, OID_MACADDR, nmacs);
	for (size_t i = 0; i < nmacs; i++)
		arr_elem(&am, macs[i], MAC_LEN);
	if ((r = arr_text(&au, users, nusers)) != 0 || (r = arr_text(&ag, groups, ngroups)) != 0)
		goto out;
	if (am.err) {
		r = ERR_NOMEM;
		goto out;
	}
	if ((r = db_conn_get(db, &c)) != 0)
		goto out;
	res = db_exec(c, "begin isolation level repeatable read read only", 0, NULL, NULL,
	    NULL, 0, &r);
	PQclear(res);
	res = NULL;
	if (r != 0)
		goto out;
	if (all || nmacs > 0) {
		if ((r = snap_query(c, all ? DEVICE_SQL "order by d.mac" :
		    DEVICE_SQL "where d.mac = any($1::macaddr[])", all ? NULL : &am, &res)) != 0 ||
		    (r = snap_devices(res, macs, nmacs, all, s)) != 0)
			goto out;
		PQclear(res);
		res = NULL;
	}
	if (all || nusers > 0) {
		if ((r = snap_query(c, all ? "select name from users order by name" :
		    "select name from users where name = any($1::text[])", all ? NULL : &au,
		    &res)) != 0 || (r = snap_users(res, users, nusers, all, s)) != 0)
			goto out;
		PQclear(res);
		res = NULL;
	}
	if (all || ngroups > 0) {
		if ((r = snap_query(c, all ? GROUP_SQL "order by g.name" :
		    GROUP_SQL "where g.name = any($1::text[])", all ? NULL : &ag, &res)) != 0 ||
		    (r = snap_groups(res, groups, ngroups, all, s)) != 0)
			goto out;
		PQclear(res);
		res = NULL;
	}
	res = db_exec(c, "commit", 0, NULL, NULL, NULL, 0, &r);
	if (r != 0)
		goto out;
	*out = s;
	s = NULL;
out:
	PQclear(res);
	db_conn_put(db, c);
	db_dir_snapshot_free(s);
	free(am.p);
	free(au.p);
	free(ag.p);
	return r;
}

int
db_dir_snapshot(struct db *db, const uint8_t (*macs)[MAC_LEN], size_t nmacs,
    const char *const *users, size_t nusers, const char *const *groups, size_t ngroups,
    struct db_dir_snapshot **out)
{
	return snapshot(db, 0, macs, nmacs, users, nusers, groups, ngroups, out);
}

int
db_dir_snapshot_all(struct db *db, struct db_dir_snapshot **out)
{
	return snapshot(db, 1, NULL, 0, NULL, 0, NULL, 0, out);
}
