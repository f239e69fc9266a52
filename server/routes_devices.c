/*
 * routes_devices.c: reading devices, users and groups (keyset pages in key
 * order; devices also searched by a prefix and by expiry), a device's
 * owner, and deleting a user. Both changes are audited and bump the policy
 * version (sql/006_devices.sql). The query-argument helpers here serve
 * every listing route.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_int.h"

#define PAGE_DEFAULT 100
#define GROUP_MEMBERS_CAP 1000		/* members of each kind GET /v1/groups/{name} lists */
#define RULES_NAMED_MAX 20		/* rule ids a refusal names */

/* RFC 5280 CRLReason names (7 is not assigned). */
static const char *const reason_names[] = {
	"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
	"superseded", "cessationOfOperation", "certificateHold", NULL,
	"removeFromCRL", "privilegeWithdrawn", "aACompromise",
};

static const char *
reason_name(int r)
{
	if (r < 0 || (size_t)r >= sizeof(reason_names) / sizeof(reason_names[0]))
		return NULL;
	return reason_names[r] != NULL ? reason_names[r] : "unspecified";
}

static json_t *
time_json(int64_t t)
{
	char buf[32];

	time_format_rfc3339((time_t)t, buf, sizeof(buf));
	return json_string(buf);
}

/* ---------------------------------------------------------------------
 * Query arguments. Each route names the arguments it takes; any other, or
 * one given twice, is refused with 400.
 */
struct query_scan {
	const char *const *allowed;
	unsigned seen;			/* bit per allowed argument */
	char why[160];
};

static enum MHD_Result
query_arg(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
    const char *value, size_t value_size)
{
	struct query_scan *q = cls;
	size_t i;
	(void)kind;

	/* a %00 would cut the text short where C reads it */
	if (strlen(key) != key_size || (value != NULL && strlen(value) != value_size)) {
		msg_set(q->why, sizeof(q->why), "A query argument holds a NUL byte.");
		return MHD_NO;
	}

	for (i = 0; q->allowed[i] != NULL; i++)
		if (strcmp(q->allowed[i], key) == 0)
			break;
	if (q->allowed[i] == NULL) {
		/* named back only when it is short, printable UTF-8 */
		if (strlen(key) <= 64 && optdata_check_name(key) == 0)
			msg_set(q->why, sizeof(q->why), "Unknown query argument \"%s\".", key);
		else
			msg_set(q->why, sizeof(q->why), "Unknown query argument.");
		return MHD_NO;
	}
	if (q->seen & (1u << i)) {
		msg_set(q->why, sizeof(q->why), "The query argument \"%s\" is given twice.",
		    q->allowed[i]);
		return MHD_NO;
	}
	if (value == NULL) {
		msg_set(q->why, sizeof(q->why), "The query argument \"%s\" needs a value.",
		    q->allowed[i]);
		return MHD_NO;
	}
	q->seen |= 1u << i;
	return MHD_YES;
}

/* 0 when the query holds only arguments of allowed (NULL-terminated, at
 * most 32), each at most once; otherwise answers 400 and returns
 * ERR_INVALID. */
int
req_query_only(struct req *rq, const char *const *allowed)
{
	struct query_scan q = { .allowed = allowed };

	MHD_get_connection_values_n(rq->conn, MHD_GET_ARGUMENT_KIND, query_arg, &q);
	if (q.why[0] != '\0') {
		req_reply_error(rq, ERR_INVALID, q.why);
		return ERR_INVALID;
	}
	return 0;
}

const char *
req_query_get(struct req *rq, const char *key)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* The limit argument (default PAGE_DEFAULT); answers 400 when bad. */
int
req_query_limit(struct req *rq, size_t *limit)
{
	const char *v = req_query_get(rq, "limit");
	int64_t n = PAGE_DEFAULT;

	if (v != NULL && parse_int64(v, 1, DB_LIST_MAX, &n) != 0) {
		req_reply_error(rq, ERR_INVALID, "limit must be a number from 1 to 1000.");
		return ERR_INVALID;
	}
	*limit = (size_t)n;
	return 0;
}

/* A name argument (owner, group, after): NULL when absent; answers 400
 * when present and not a name. */
int
req_query_name(struct req *rq, const char *key, const char **out)
{
	char why[120];

	*out = req_query_get(rq, key);
	if (*out != NULL && optdata_check_name(*out) != 0) {
		msg_set(why, sizeof(why), "%s must be a name of 1 to 128 printable characters.",
		    key);
		req_reply_error(rq, ERR_INVALID, why);
		return ERR_INVALID;
	}
	return 0;
}

/* "2026-12-01T08:00:00Z": an RFC 3339 time with a Z or +HH:MM offset and
 * an optional fraction of a second (kept to the microsecond), years 1970
 * to 9999, into out as PostgreSQL timestamptz text in UTC. */
static int
rfc3339_utc(const char *s, char *out, size_t outlen)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	char frac[7] = "";
	struct tm tm, back;
	const char *p = s + sizeof(shape) - 1;
	size_t k = 0;
	long off = 0;
	time_t t;

	for (size_t i = 0; i < sizeof(shape) - 1; i++)
		if (shape[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != shape[i])
			return ERR_INVALID;
	memset(&tm, 0, sizeof(tm));
	if (strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) != p || tm.tm_year + 1900 < 1970)
		return ERR_INVALID;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++)
			if (k < sizeof(frac) - 1)
				frac[k++] = *p;
		if (k == 0)
			return ERR_INVALID;
		frac[k] = '\0';
	}
	if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':' &&
	    p[1] >= '0' && p[1] <= '2' && p[2] >= '0' && p[2] <= '9' &&
	    p[4] >= '0' && p[4] <= '5' && p[5] >= '0' && p[5] <= '9') {
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600L + ((p[4] - '0') * 10 +
		    (p[5] - '0')) * 60L;
		if (off > 23 * 3600L + 59 * 60L)
			return ERR_INVALID;
		if (*p == '-')
			off = -off;
	} else if (strcmp(p, "Z") != 0) {
		return ERR_INVALID;
	}
	/* timegm() rolls a 31 April over: such a date is refused */
	back = tm;
	t = timegm(&tm);
	if (tm.tm_mday != back.tm_mday || tm.tm_mon != back.tm_mon ||
	    tm.tm_hour != back.tm_hour || tm.tm_min != back.tm_min || tm.tm_sec != back.tm_sec)
		return ERR_INVALID;
	t -= off;
	gmtime_r(&t, &tm);
	snprintf(out, outlen, "%04d-%02d-%02d %02d:%02d:%02d%s%s+00", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, k ? "." : "", frac);
	return 0;
}

/* A time argument: *set 0 when absent; answers 400 when present and not
 * an RFC 3339 time. */
int
req_query_time(struct req *rq, const char *key, char out[REQ_TIME_LEN], int *set)
{
	const char *v = req_query_get(rq, key);
	char why[160];

	*set = 0;
	out[0] = '\0';
	if (v == NULL)
		return 0;
	if (rfc3339_utc(v, out, REQ_TIME_LEN) != 0) {
		msg_set(why, sizeof(why), "%s must be a time like 2026-12-01T08:00:00Z.", key);
		req_reply_error(rq, ERR_INVALID, why);
		return ERR_INVALID;
	}
	*set = 1;
	return 0;
}

/* The arguments of a page in name order (limit, after); answers 400 when
 * one is wrong. */
static int
query_name_page(struct req *rq, size_t *limit, const char **after)
{
	static const char *const args[] = { "limit", "after", NULL };

	if (req_query_only(rq, args) != 0 || req_query_limit(rq, limit) != 0 ||
	    req_query_name(rq, "after", after) != 0)
		return ERR_INVALID;
	return 0;
}

/* The device address {mac} of a route that takes no query arguments;
 * answers 400 when either is wrong. */
static int
device_param(struct req *rq, uint8_t mac[MAC_LEN])
{
	static const char *const args[] = { NULL };

	if (req_query_only(rq, args) != 0)
		return ERR_INVALID;
	if (mac_parse(rq->params[0], mac) != 0) {
		req_reply_error(rq, ERR_BAD_MAC, NULL);
		return ERR_BAD_MAC;
	}
	return 0;
}

/* The name {name} of a user or group (what) of a route that takes no query
 * arguments; answers 400 when either is wrong. */
static int
name_param(struct req *rq, const char *what)
{
	static const char *const args[] = { NULL };
	char why[120];

	if (req_query_only(rq, args) != 0)
		return ERR_INVALID;
	if (optdata_check_name(rq->params[0]) != 0) {
		msg_set(why, sizeof(why), "The %s must be a name of 1 to 128 printable characters.",
		    what);
		req_reply_error(rq, ERR_INVALID, why);
		return ERR_INVALID;
	}
	return 0;
}

/* {"KEY": [...], "next": NEXT|null} */
static void
reply_page(struct req *rq, const char *key, json_t *items, const char *next)
{
	req_reply_json(rq, 200, json_pack("{s:o,s:s?}", key, items, "next", next));
}

/* ---------------------------------------------------------------------
 * Devices.
 */
static json_t *
strings_json(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *
device_json(const struct db_device_info *d)
{
	char mac[MAC_STR_LEN];
	json_t *cert = NULL;

	mac_format(d->mac, mac);
	if (d->has_cert)
		cert = json_pack("{s:s,s:o,s:s}", "serial", d->cert.serial, "not_after",
		    time_json(d->cert.not_after), "status", d->cert.status);
	return json_pack("{s:s,s:s,s:s?,s:s?,s:s?,s:o,s:o,s:b,s:o,s:o}", "mac", mac, "status",
	    d->status, "name", d->name, "model", d->model, "owner", d->owner, "groups",
	    strings_json(d->groups, d->ngroups),
	    "certificate", cert != NULL ? cert : json_null(), "renew_requested",
	    d->renew_requested, "created_at", time_json(d->created_at), "updated_at",
	    time_json(d->updated_at));
}

static int
status_ok(const char *s)
{
	static const char *const st[] = { "pending", "active", "revoked", "retired" };

	for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++)
		if (strcmp(s, st[i]) == 0)
			return 1;
	return 0;
}

/*
 * A search term as an address prefix in any spelling provd accepts
 * ("00:1a:7d", "00-1A-7D", "001a7d", "001a.7d"): one kind of separator,
 * every group but the last full (two digits, four with "."), at most 12
 * digits. lo and hi get the first and last address with that prefix.
 * ERR_INVALID when q is not one.
 */
static int
mac_prefix_range(const char *q, char lo[MAC_STR_LEN], char hi[MAC_STR_LEN])
{
	char hex[12], sep = 0;
	size_t nhex = 0, group = 0, width = 0;
	uint8_t a[MAC_LEN], b[MAC_LEN];

	for (const char *p = q; *p != '\0'; p++) {
		if (*p == ':' || *p == '-' || *p == '.') {
			if (sep != 0 && sep != *p)
				return ERR_INVALID;
			sep = *p;
			width = sep == '.' ? 4 : 2;
			if (group != width)
				return ERR_INVALID;
			group = 0;
			continue;
		}
		if (hex_digit((unsigned char)*p) < 0 || nhex == sizeof(hex) ||
		    (width != 0 && group == width))
			return ERR_INVALID;
		hex[nhex++] = *p;
		group++;
	}
	if (nhex == 0)
		return ERR_INVALID;
	for (size_t i = 0; i < MAC_LEN; i++) {
		int hi1 = 2 * i < nhex ? hex_digit((unsigned char)hex[2 * i]) : -1;
		int lo1 = 2 * i + 1 < nhex ? hex_digit((unsigned char)hex[2 * i + 1]) : -1;
		a[i] = (uint8_t)((hi1 < 0 ? 0 : hi1) << 4 | (lo1 < 0 ? 0 : lo1));
		b[i] = (uint8_t)((hi1 < 0 ? 15 : hi1) << 4 | (lo1 < 0 ? 15 : lo1));
	}
	mac_format(a, lo);
	mac_format(b, hi);
	return 0;
}

void
route_device_list(struct server *s, struct req *rq)
{
	static const char *const args[] = { "status", "owner", "group", "limit", "after", "q",
		"expires_before", "expires_after", NULL };
	struct db_device_filter f = { 0 };
	struct db_device_info *v = NULL;
	uint8_t after[MAC_LEN];
	char next[MAC_STR_LEN], lo[MAC_STR_LEN], hi[MAC_STR_LEN];
	char before_t[REQ_TIME_LEN], after_t[REQ_TIME_LEN];
	const char *a;
	json_t *items;
	size_t n = 0;
	int more = 0, has_before, has_after, r;

	if (req_query_only(rq, args) != 0 || req_query_limit(rq, &f.limit) != 0 ||
	    req_query_name(rq, "owner", &f.owner) != 0 || req_query_name(rq, "group", &f.group) != 0 ||
	    req_query_time(rq, "expires_before", before_t, &has_before) != 0 ||
	    req_query_time(rq, "expires_after", after_t, &has_after) != 0)
		return;
	if ((f.status = req_query_get(rq, "status")) != NULL && !status_ok(f.status)) {
		req_reply_error(rq, ERR_INVALID, "status must be pending, active, revoked or "
		    "retired.");
		return;
	}
	if ((a = req_query_get(rq, "after")) != NULL) {
		if (mac_parse(a, after) != 0) {
			req_reply_error(rq, ERR_BAD_MAC, "after must be a device address.");
			return;
		}
		f.after = after;
	}
	if ((f.q = req_query_get(rq, "q")) != NULL) {
		if (optdata_check_name(f.q) != 0) {
			req_reply_error(rq, ERR_INVALID, "q must be 1 to 128 printable characters.");
			return;
		}
		if (mac_prefix_range(f.q, lo, hi) == 0) {
			f.mac_lo = lo;
			f.mac_hi = hi;
		}
	}
	f.expires_before = has_before ? before_t : NULL;
	f.expires_after = has_after ? after_t : NULL;
	if ((r = db_device_list(s->db, &f, &v, &n, &more)) != 0) {
		req_reply_error(rq, r, NULL);
		return;
	}
	items = json_array();
	for (size_t i = 0; items != NULL && i < n; i++)
		json_array_append_new(items, device_json(&v[i]));
	if (more && n > 0)
		mac_format(v[n - 1].mac, next);
	db_device_list_free(v, n);
	reply_page(rq, "devices", items, more && n > 0 ? next : NULL);
}

void
route_device_get(struct server *s, struct req *rq)
{
	struct db_device_info d;
	uint8_t mac[MAC_LEN];
	json_t *o, *certs;
	int r;

	if (device_param(rq, mac) != 0)
		return;
	if ((r = db_device_get(s->db, mac, &d)) != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "No such device." : NULL);
		return;
	}
	o = device_json(&d);
	certs = json_array();
	for (size_t i = 0; certs != NULL && i < d.ncerts; i++) {
		const struct db_device_cert *c = &d.certs[i];
		json_array_append_new(certs, json_pack("{s:s,s:s,s:o,s:o,s:s?,s:o}", "serial",
		    c->serial, "status", c->status, "not_before", time_json(c->not_before),
		    "not_after", time_json(c->not_after), "revocation_reason",
		    reason_name(c->reason), "revoked_at",
		    c->reason >= 0 ? time_json(c->revoked_at) : json_null()));
	}
	if (o != NULL)
		json_object_set_new(o, "certificates", certs != NULL ? certs : json_array());
	else
		json_decref(certs);
	db_device_info_clear(&d);
	req_reply_json(rq, 200, o);
}

void
route_device_owner(struct server *s, struct req *rq)
{
	static const char *const keys[] = { "owner", NULL };
	char why[160] = "", mac_text[MAC_STR_LEN], previous[OPTDATA_MAX_STR + 1];
	const char *owner = NULL;
	uint8_t mac[MAC_LEN];
	int64_t version;
	json_t *jo;
	int changed, r;

	if (device_param(rq, mac) != 0)
		return;
	if (json_only_keys(rq->json, keys, why, sizeof(why)) != 0) {
		req_reply_error(rq, ERR_INVALID, why);
		return;
	}
	jo = json_object_get(rq->json, "owner");
	if (jo == NULL || (!json_is_null(jo) && (!json_is_string(jo) ||
	    optdata_check_name(json_string_value(jo)) != 0 ||
	    strlen(json_string_value(jo)) != json_string_length(jo)))) {
		req_reply_error(rq, ERR_INVALID, "The body must be {\"owner\": NAME} (a name of 1 "
		    "to 128 printable characters) or {\"owner\": null}.");
		return;
	}
	if (json_is_string(jo))
		owner = json_string_value(jo);
	if ((r = db_device_owner(s->db, mac, owner, rq->actor, rq->id, previous, &changed,
	    &version)) != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "No such device." : NULL);
		return;
	}
	mac_format(mac, mac_text);
	if (changed) {
		log_info("device %s: owner %s%s%s (was %s%s%s) by \"%s\"", mac_text,
		    owner ? "\"" : "", owner ? owner : "none", owner ? "\"" : "",
		    previous[0] ? "\"" : "", previous[0] ? previous : "none",
		    previous[0] ? "\"" : "", rq->actor);
		dirsync_kick(s);
	}
	req_reply_json(rq, 200, json_pack("{s:s,s:s?,s:s?,s:b,s:I}", "mac", mac_text, "owner",
	    owner, "previous_owner", previous[0] ? previous : NULL, "changed", changed,
	    "policy_version", (json_int_t)version));
}

/* ---------------------------------------------------------------------
 * Users.
 */
void
route_user_list(struct server *s, struct req *rq)
{
	struct db_user_info *v = NULL;
	const char *after;
	json_t *items;
	size_t limit, n = 0;
	int more = 0, r;

	if (query_name_page(rq, &limit, &after) != 0)
		return;
	if ((r = db_user_list(s->db, after, limit, &v, &n, &more)) != 0) {
		req_reply_error(rq, r, NULL);
		return;
	}
	items = json_array();
	for (size_t i = 0; items != NULL && i < n; i++)
		json_array_append_new(items, json_pack("{s:s,s:I,s:o,s:o}", "name", v[i].name,
		    "devices", (json_int_t)v[i].devices, "groups",
		    strings_json(v[i].groups, v[i].ngroups), "created_at",
		    time_json(v[i].created_at)));
	reply_page(rq, "users", items, more && n > 0 ? v[n - 1].name : NULL);
	db_user_list_free(v, n);
}

void
route_user_delete(struct server *s, struct req *rq)
{
	int64_t *rules = NULL, version;
	size_t nrules = 0;
	char why[600];
	int r;

	if (name_param(rq, "user") != 0)
		return;
	r = db_user_delete(s->db, rq->params[0], rq->actor, rq->id, &rules, &nrules, &version);
	if (r == ERR_CONFLICT) {
		/* at most RULES_NAMED_MAX ids of 19 digits: it fits */
		msg_set(why, sizeof(why), "%s", nrules == 1 ? "Rule " : "Rules ");
		for (size_t i = 0; i < nrules && i < RULES_NAMED_MAX; i++)
			msg_set(why + strlen(why), sizeof(why) - strlen(why), "%s%lld",
			    i > 0 ? ", " : "", (long long)rules[i]);
		if (nrules > RULES_NAMED_MAX)
			msg_set(why + strlen(why), sizeof(why) - strlen(why), " and %zu more",
			    nrules - RULES_NAMED_MAX);
		msg_set(why + strlen(why), sizeof(why) - strlen(why), " %s this user; delete %s "
		    "first.", nrules == 1 ? "names" : "name", nrules == 1 ? "it" : "them");
		free(rules);
		req_reply_error(rq, r, why);
		return;
	}
	free(rules);
	if (r != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "No such user." : NULL);
		return;
	}
	log_info("user \"%s\" deleted by \"%s\"", rq->params[0], rq->actor);
	dirsync_kick(s);
	req_reply_json(rq, 200, json_pack("{s:I}", "policy_version", (json_int_t)version));
}

/* ---------------------------------------------------------------------
 * Groups.
 */
static json_t *
group_json(const struct db_group_info *g)
{
	json_t *o = json_pack("{s:s,s:I,s:I,s:o}", "name", g->name, "devices",
	    (json_int_t)g->devices, "users", (json_int_t)g->users, "created_at",
	    time_json(g->created_at));

	if (o != NULL)
		json_object_set_new(o, "max_validity_days", g->max_validity_days > 0 ?
		    json_integer(g->max_validity_days) : json_null());
	return o;
}

void
route_group_list(struct server *s, struct req *rq)
{
	struct db_group_info *v = NULL;
	const char *after;
	json_t *items;
	size_t limit, n = 0;
	int more = 0, r;

	if (query_name_page(rq, &limit, &after) != 0)
		return;
	if ((r = db_group_list(s->db, after, limit, &v, &n, &more)) != 0) {
		req_reply_error(rq, r, NULL);
		return;
	}
	items = json_array();
	for (size_t i = 0; items != NULL && i < n; i++)
		json_array_append_new(items, group_json(&v[i]));
	reply_page(rq, "groups", items, more && n > 0 ? v[n - 1].name : NULL);
	db_group_list_free(v, n);
}

void
route_group_get(struct server *s, struct req *rq)
{
	struct db_group_info g;
	json_t *o, *macs, *rules;
	int r;

	if (name_param(rq, "group") != 0)
		return;
	if ((r = db_group_get(s->db, rq->params[0], GROUP_MEMBERS_CAP, &g)) != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "No such group." : NULL);
		return;
	}
	macs = json_array();
	for (size_t i = 0; macs != NULL && i < g.nmember_macs; i++) {
		char mac[MAC_STR_LEN];
		mac_format(g.member_macs[i], mac);
		json_array_append_new(macs, json_string(mac));
	}
	rules = json_array();
	for (size_t i = 0; rules != NULL && i < g.nrules; i++)
		json_array_append_new(rules, json_integer(g.rules[i]));
	o = group_json(&g);
	if (o != NULL) {
		json_object_set_new(o, "members", json_pack("{s:o,s:o,s:b}", "devices",
		    macs != NULL ? macs : json_array(), "users",
		    strings_json(g.member_users, g.nmember_users), "truncated", g.truncated));
		json_object_set_new(o, "rules", rules != NULL ? rules : json_array());
	} else {
		json_decref(macs);
		json_decref(rules);
	}
	db_group_info_clear(&g);
	req_reply_json(rq, 200, o);
}
