/*
 * routes_policy.c: the access policy's REST routes — resources, rules and
 * group memberships (each change audited, bumping the policy version) and
 * GET /v1/policy, which lists it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_int.h"

/* "2026-12-01T08:00:00Z" (UTC only) to Unix seconds. */
static int
parse_time_utc(const char *s, int64_t *out)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL || *end != '\0')
		return ERR_INVALID;
	*out = (int64_t)timegm(&tm);
	return 0;
}

/* "HH:MM" to seconds of the day (24:00 allowed as the end of the day). */
static int
parse_hhmm(const char *s, int *out)
{
	int h, m;
	char tail;

	if (sscanf(s, "%2d:%2d%c", &h, &m, &tail) != 2 || h < 0 || h > 24 || m < 0 || m > 59 ||
	    (h == 24 && m != 0) || strlen(s) != 5)
		return ERR_INVALID;
	*out = h * 3600 + m * 60;
	return 0;
}

static int
parse_weekdays(json_t *v, int *out)
{
	static const char *const days[] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };
	size_t i;
	json_t *d;

	*out = 0;
	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 7)
		return ERR_INVALID;
	json_array_foreach(v, i, d) {
		int k;
		for (k = 0; k < 7; k++)
			if (json_is_string(d) && strcmp(json_string_value(d), days[k]) == 0)
				break;
		if (k == 7)
			return ERR_INVALID;
		*out |= 1 << k;
	}
	return 0;
}

/* A name of 1 to OPTDATA_MAX_STR printable characters. */
static int
name_ok(json_t *v)
{
	return json_is_string(v) && optdata_check_name(json_string_value(v)) == 0;
}

static void
reply_version(struct req *rq, int status, const char *key, json_int_t id, int64_t version)
{
	json_t *o = json_pack("{s:I}", "policy_version", (json_int_t)version);

	if (o != NULL && key != NULL)
		json_object_set_new(o, key, json_integer(id));
	req_reply_json(rq, status, o);
}

/* ---------------------------------------------------------------------
 * Resources.
 */
void
route_resource_add(struct server *s, struct req *rq)
{
	static const char *const keys[] = { "name", "class", "description", NULL };
	json_t *name, *cls, *desc;
	char why[200] = "";
	int64_t id, version;
	int r;

	if (json_only_keys(rq->json, keys, why, sizeof(why)) != 0) {
		req_reply_error(rq, ERR_INVALID, why);
		return;
	}
	name = json_object_get(rq->json, "name");
	cls = json_object_get(rq->json, "class");
	desc = json_object_get(rq->json, "description");
	if (!name_ok(name) || (cls != NULL && !name_ok(cls)) ||
	    (desc != NULL && (!json_is_string(desc) || json_string_length(desc) > 1024))) {
		req_reply_error(rq, ERR_INVALID, "\"name\" (and \"class\") must be names of 1 to 128 "
		    "printable characters; \"description\" text of at most 1024 bytes.");
		return;
	}
	r = db_resource_add(s->db, json_string_value(name), cls ? json_string_value(cls) : NULL,
	    desc ? json_string_value(desc) : NULL, rq->actor, &id, &version);
	if (r != 0) {
		req_reply_error(rq, r, r == ERR_CONFLICT ? "A resource with this name exists." : NULL);
		return;
	}
	reply_version(rq, 201, "id", id, version);
}

void
route_resource_delete(struct server *s, struct req *rq)
{
	int64_t version;
	int r;

	if (optdata_check_name(rq->params[0]) != 0) {
		req_reply_error(rq, ERR_INVALID, "Not a resource name.");
		return;
	}
	if ((r = db_resource_delete(s->db, rq->params[0], rq->actor, &version)) != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "No such resource." : NULL);
		return;
	}
	reply_version(rq, 200, NULL, 0, version);
}

/* ---------------------------------------------------------------------
 * Rules.
 */
/* The rule in the request body (POST /v1/rules, PUT /v1/rules/{id}) into
 * *ru (ru->device points into mac); on a bad body replies 400 and returns
 * -1. */
static int
rule_from_json(struct req *rq, struct db_rule_spec *ru, uint8_t mac[MAC_LEN])
{
	static const char *const keys[] = { "subject", "resource", "action", "effect",
		"valid_from", "valid_until", "time_from", "time_until", "weekdays", "one_time", NULL };
	static const char *const skeys[] = { "device", "user", "group", NULL };
	json_t *subj, *res, *act, *eff, *v;
	char why[200] = "";

	*ru = (struct db_rule_spec){ .time_from = -1, .time_until = -1 };

	if (json_only_keys(rq->json, keys, why, sizeof(why)) != 0) {
		req_reply_error(rq, ERR_INVALID, why);
		return -1;
	}
	subj = json_object_get(rq->json, "subject");
	res = json_object_get(rq->json, "resource");
	act = json_object_get(rq->json, "action");
	eff = json_object_get(rq->json, "effect");
	if (!json_is_object(subj) || json_object_size(subj) != 1 ||
	    json_only_keys(subj, skeys, why, sizeof(why)) != 0) {
		req_reply_error(rq, ERR_INVALID, "\"subject\" must be {\"device\": ADDRESS}, "
		    "{\"user\": NAME} or {\"group\": NAME}.");
		return -1;
	}
	if ((v = json_object_get(subj, "device")) != NULL) {
		if (!json_is_string(v) || mac_parse(json_string_value(v), mac) != 0) {
			req_reply_error(rq, ERR_BAD_MAC, NULL);
			return -1;
		}
		ru->device = mac;
	} else if ((v = json_object_get(subj, "user")) != NULL) {
		if (!name_ok(v)) {
			req_reply_error(rq, ERR_INVALID, "The user must be a name of 1 to 128 printable "
			    "characters.");
			return -1;
		}
		ru->user = json_string_value(v);
	} else {
		v = json_object_get(subj, "group");
		if (!name_ok(v)) {
			req_reply_error(rq, ERR_INVALID, "The group must be a name of 1 to 128 "
			    "printable characters.");
			return -1;
		}
		ru->group = json_string_value(v);
	}
	if (!name_ok(res)) {
		req_reply_error(rq, ERR_INVALID, "\"resource\" (a resource name) is required.");
		return -1;
	}
	ru->resource = json_string_value(res);
	if (act != NULL && (!json_is_string(act) || json_string_length(act) == 0 ||
	    json_string_length(act) > 64 || optdata_check_name(json_string_value(act)) != 0)) {
		req_reply_error(rq, ERR_INVALID, "\"action\" must be a name of 1 to 64 bytes, or "
		    "\"*\" for any.");
		return -1;
	}
	ru->action = act ? json_string_value(act) : "*";
	if (!json_is_string(eff) || (strcmp(json_string_value(eff), "allow") != 0 &&
	    strcmp(json_string_value(eff), "deny") != 0)) {
		req_reply_error(rq, ERR_INVALID, "\"effect\" must be \"allow\" or \"deny\".");
		return -1;
	}
	ru->allow = strcmp(json_string_value(eff), "allow") == 0;
	if (((v = json_object_get(rq->json, "valid_from")) != NULL &&
	    (!json_is_string(v) || parse_time_utc(json_string_value(v), &ru->valid_from) != 0)) ||
	    ((v = json_object_get(rq->json, "valid_until")) != NULL &&
	    (!json_is_string(v) || parse_time_utc(json_string_value(v), &ru->valid_until) != 0))) {
		req_reply_error(rq, ERR_INVALID, "\"valid_from\" and \"valid_until\" are UTC times "
		    "like 2026-12-01T08:00:00Z.");
		return -1;
	}
	if (ru->valid_from && ru->valid_until && ru->valid_until <= ru->valid_from) {
		req_reply_error(rq, ERR_INVALID, "\"valid_until\" must be after \"valid_from\".");
		return -1;
	}
	json_t *tf = json_object_get(rq->json, "time_from");
	json_t *tu = json_object_get(rq->json, "time_until");
	if ((tf == NULL) != (tu == NULL) ||
	    (tf != NULL && (!json_is_string(tf) || !json_is_string(tu) ||
	    parse_hhmm(json_string_value(tf), &ru->time_from) != 0 ||
	    parse_hhmm(json_string_value(tu), &ru->time_until) != 0 ||
	    ru->time_from == ru->time_until))) {
		req_reply_error(rq, ERR_INVALID, "\"time_from\" and \"time_until\" go together, as "
		    "different UTC times of day \"HH:MM\" (a window past midnight wraps).");
		return -1;
	}
	if ((v = json_object_get(rq->json, "weekdays")) != NULL &&
	    parse_weekdays(v, &ru->weekdays) != 0) {
		req_reply_error(rq, ERR_INVALID, "\"weekdays\" must be a list of \"mon\" .. \"sun\".");
		return -1;
	}
	if ((v = json_object_get(rq->json, "one_time")) != NULL) {
		if (!json_is_boolean(v)) {
			req_reply_error(rq, ERR_INVALID, "\"one_time\" must be true or false.");
			return -1;
		}
		ru->one_time = json_is_true(v);
	}
	if (ru->one_time && !ru->allow) {
		req_reply_error(rq, ERR_INVALID, "Only an allow rule can be one-time.");
		return -1;
	}
	return 0;
}

void
route_rule_add(struct server *s, struct req *rq)
{
	struct db_rule_spec ru;
	uint8_t mac[MAC_LEN];
	int64_t id, version;
	int r;

	if (rule_from_json(rq, &ru, mac) != 0)
		return;
	if ((r = db_rule_add(s->db, &ru, rq->actor, &id, &version)) != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "No such resource or device." : NULL);
		return;
	}
	reply_version(rq, 201, "id", id, version);
}

void
route_rule_replace(struct server *s, struct req *rq)
{
	struct db_rule_spec ru;
	uint8_t mac[MAC_LEN];
	int64_t old_id, id, version;
	int r;

	if (parse_int64(rq->params[0], 1, INT64_MAX, &old_id) != 0) {
		req_reply_error(rq, ERR_INVALID, "The rule id must be a positive integer.");
		return;
	}
	if (rule_from_json(rq, &ru, mac) != 0)
		return;
	if ((r = db_rule_replace(s->db, old_id, &ru, rq->actor, &id, &version)) != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "No such rule, resource or device." :
		    NULL);
		return;
	}
	reply_version(rq, 200, "id", id, version);
}

void
route_rule_delete(struct server *s, struct req *rq)
{
	int64_t id, version;
	int r;

	if (parse_int64(rq->params[0], 1, INT64_MAX, &id) != 0) {
		req_reply_error(rq, ERR_INVALID, "The rule id must be a positive integer.");
		return;
	}
	if ((r = db_rule_delete(s->db, id, rq->actor, &version)) != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "No such rule." : NULL);
		return;
	}
	reply_version(rq, 200, NULL, 0, version);
}

/* ---------------------------------------------------------------------
 * Group membership.
 */
static void
policy_member(struct server *s, struct req *rq, const char *mac_text, const char *user, int add)
{
	uint8_t mac[MAC_LEN];
	int64_t version;
	int r;

	if (optdata_check_name(rq->params[0]) != 0) {
		req_reply_error(rq, ERR_INVALID, "The group must be a name of 1 to 128 printable "
		    "characters.");
		return;
	}
	if (mac_text != NULL && mac_parse(mac_text, mac) != 0) {
		req_reply_error(rq, ERR_BAD_MAC, NULL);
		return;
	}
	if (user != NULL && optdata_check_name(user) != 0) {
		req_reply_error(rq, ERR_INVALID, "The user must be a name of 1 to 128 printable "
		    "characters.");
		return;
	}
	r = db_group_member(s->db, rq->params[0], mac_text ? mac : NULL, user, add, rq->actor,
	    &version);
	if (r == ERR_CONFLICT) {
		req_reply_error(rq, r, add ? "Already a member." : "Not a member.");
		return;
	}
	if (r != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "No such device." : NULL);
		return;
	}
	dirsync_kick(s);
	reply_version(rq, add ? 201 : 200, NULL, 0, version);
}

static const char *
body_string(struct req *rq, const char *key, const char *what)
{
	const char *const keys[] = { key, NULL };
	char why[160] = "";
	json_t *v;

	if (json_only_keys(rq->json, keys, why, sizeof(why)) != 0 ||
	    !json_is_string(v = json_object_get(rq->json, key))) {
		msg_set(why, sizeof(why), "The body must be {\"%s\": %s}.", key, what);
		req_reply_error(rq, ERR_INVALID, why);
		return NULL;
	}
	return json_string_value(v);
}

void
route_group_add_device(struct server *s, struct req *rq)
{
	const char *mac = body_string(rq, "mac", "ADDRESS");

	if (mac != NULL)
		policy_member(s, rq, mac, NULL, 1);
}

void
route_group_del_device(struct server *s, struct req *rq)
{
	policy_member(s, rq, rq->params[1], NULL, 0);
}

void
route_group_add_user(struct server *s, struct req *rq)
{
	const char *user = body_string(rq, "name", "NAME");

	if (user != NULL)
		policy_member(s, rq, NULL, user, 1);
}

void
route_group_del_user(struct server *s, struct req *rq)
{
	policy_member(s, rq, NULL, rq->params[1], 0);
}

/* ---------------------------------------------------------------------
 * GET /v1/policy: the version, the resources with their rules, and the
 * cache's state.
 */
static const char *
named(const struct db_named *v, size_t n, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].id == id)
			return v[i].name;
	return NULL;
}

void
route_policy_get(struct server *s, struct req *rq)
{
	static const char *const days[] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };
	struct db_authz_policy p;
	json_t *o, *resources;
	int loaded, r;
	size_t ndev;
	int64_t version;
	unsigned long long decisions, allowed, cold;

	if ((r = db_authz_policy(s->db, &p)) != 0) {
		req_reply_error(rq, r, NULL);
		return;
	}
	authz_stats(s, &loaded, &ndev, &version, &decisions, &allowed, &cold);
	resources = json_array();
	for (size_t i = 0; resources != NULL && i < p.nresources; i++) {
		json_t *rules = json_array();
		for (size_t k = 0; rules != NULL && k < p.nrules; k++) {
			const struct db_authz_rule *ru = &p.rules[k];
			char t[32];
			json_t *j, *subj;
			if (ru->resource_id != p.resources[i].id)
				continue;
			if (ru->subject == DB_SUBJ_DEVICE)
				subj = json_pack("{s:s?,s:I}", "device", named(p.devices, p.ndevices,
				    ru->subject_id), "device_id", (json_int_t)ru->subject_id);
			else if (ru->subject == DB_SUBJ_USER)
				subj = json_pack("{s:s?}", "user", named(p.users, p.nusers, ru->subject_id));
			else
				subj = json_pack("{s:s?}", "group", named(p.groups, p.ngroups,
				    ru->subject_id));
			j = json_pack("{s:I,s:o,s:s,s:s,s:b}", "id", (json_int_t)ru->id, "subject",
			    subj ? subj : json_null(), "action", ru->action, "effect",
			    ru->allow ? "allow" : "deny", "one_time", ru->one_time);
			if (j == NULL)
				continue;
			if (ru->valid_from) {
				time_format_rfc3339((time_t)ru->valid_from, t, sizeof(t));
				json_object_set_new(j, "valid_from", json_string(t));
			}
			if (ru->valid_until) {
				time_format_rfc3339((time_t)ru->valid_until, t, sizeof(t));
				json_object_set_new(j, "valid_until", json_string(t));
			}
			if (ru->time_from >= 0) {
				snprintf(t, sizeof(t), "%02d:%02d", ru->time_from / 3600,
				    ru->time_from / 60 % 60);
				json_object_set_new(j, "time_from", json_string(t));
				snprintf(t, sizeof(t), "%02d:%02d", ru->time_until / 3600,
				    ru->time_until / 60 % 60);
				json_object_set_new(j, "time_until", json_string(t));
			}
			if (ru->weekdays != 127) {
				json_t *w = json_array();
				for (int d = 0; w != NULL && d < 7; d++)
					if (ru->weekdays >> d & 1)
						json_array_append_new(w, json_string(days[d]));
				json_object_set_new(j, "weekdays", w);
			}
			if (ru->one_time)
				json_object_set_new(j, "used", json_boolean(ru->used));
			json_array_append_new(rules, j);
		}
		json_array_append_new(resources, json_pack("{s:I,s:s,s:o}", "id",
		    (json_int_t)p.resources[i].id, "name", p.resources[i].name, "rules",
		    rules ? rules : json_array()));
	}
	o = json_pack("{s:I,s:o,s:{s:b,s:I,s:I,s:I,s:I,s:I}}", "policy_version",
	    (json_int_t)p.version, "resources", resources ? resources : json_array(), "cache",
	    "loaded", loaded, "devices", (json_int_t)ndev, "policy_version", (json_int_t)version,
	    "decisions", (json_int_t)decisions, "allowed", (json_int_t)allowed, "cold",
	    (json_int_t)cold);
	db_authz_policy_free(&p);
	req_reply_json(rq, 200, o);
}
