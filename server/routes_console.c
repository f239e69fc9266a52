/*
 * routes_console.c: reads the web console shows besides the devices: the
 * audit log, filtered and paged newest first, and the overview of counts
 * (kept for a few seconds per process, as it counts whole tables).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_int.h"

#define STATS_KEEP_NS (5ull * 1000000000ull)	/* the overview is read again after 5 s */

static json_t *
time_json(int64_t t)
{
	char buf[32];

	time_format_rfc3339((time_t)t, buf, sizeof(buf));
	return json_string(buf);
}

/* "YYYY-MM-DD" of a Unix time (UTC). */
static json_t *
day_json(int64_t t)
{
	char buf[16];
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%d", &tm);
	return json_string(buf);
}

/* ---------------------------------------------------------------------
 * GET /v1/audit
 */

/* An action, or a prefix written "certificate.*": 1 to 64 printable ASCII
 * characters. */
static int
action_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '!' || s[i] > '~')
			return 0;
	return 1;
}

void
route_audit_list(struct server *s, struct req *rq)
{
	static const char *const args[] = { "action", "object", "actor", "device", "since",
		"until", "limit", "before", NULL };
	struct db_audit_filter f = { 0 };
	struct db_audit_entry *v = NULL;
	char since[REQ_TIME_LEN], until[REQ_TIME_LEN], prefix[65], dev[MAC_STR_LEN];
	uint8_t mac[MAC_LEN];
	const char *a;
	json_t *items;
	size_t n = 0;
	int more = 0, has_since, has_until, r;

	if (req_query_only(rq, args) != 0 || req_query_limit(rq, &f.limit) != 0 ||
	    req_query_name(rq, "object", &f.object) != 0 ||
	    req_query_name(rq, "actor", &f.actor) != 0 ||
	    req_query_time(rq, "since", since, &has_since) != 0 ||
	    req_query_time(rq, "until", until, &has_until) != 0)
		return;
	if ((a = req_query_get(rq, "action")) != NULL) {
		size_t len = strlen(a);
		if (!action_ok(a) || strcmp(a, ".*") == 0) {
			req_reply_error(rq, ERR_INVALID, "action must be an action "
			    "(certificate.issue) or a prefix ending in \".*\" (certificate.*).");
			return;
		}
		if (len > 2 && strcmp(a + len - 2, ".*") == 0) {
			/* "certificate.*": the actions starting "certificate." */
			memcpy(prefix, a, len - 1);
			prefix[len - 1] = '\0';
			f.action_prefix = prefix;
		} else {
			f.action = a;
		}
	}
	if ((a = req_query_get(rq, "device")) != NULL) {
		if (mac_parse(a, mac) != 0) {
			req_reply_error(rq, ERR_BAD_MAC, "device must be a device address.");
			return;
		}
		mac_format(mac, dev);
		f.device = dev;
	}
	if ((a = req_query_get(rq, "before")) != NULL &&
	    parse_int64(a, 1, INT64_MAX, &f.before) != 0) {
		req_reply_error(rq, ERR_INVALID, "before must be a sequence number (from 1).");
		return;
	}
	f.since = has_since ? since : NULL;
	f.until = has_until ? until : NULL;
	if ((r = db_audit_list(s->db, &f, &v, &n, &more)) != 0) {
		req_reply_error(rq, r, NULL);
		return;
	}
	items = json_array();
	for (size_t i = 0; items != NULL && i < n; i++) {
		json_error_t err;
		/* the detail as the JSON it is; text in case it were not */
		json_t *d = json_loads(v[i].detail, JSON_DECODE_ANY, &err);
		if (d == NULL)
			d = json_string(v[i].detail);
		json_array_append_new(items, json_pack("{s:I,s:o,s:s,s:s,s:s,s:o}", "seq",
		    (json_int_t)v[i].seq, "at", time_json(v[i].at), "actor", v[i].actor, "action",
		    v[i].action, "object", v[i].object, "detail", d != NULL ? d : json_null()));
	}
	req_reply_json_or(rq, 200, items == NULL ? NULL : json_pack("{s:o,s:o}", "entries", items,
	    "next", more && n > 0 ? json_integer(v[n - 1].seq) : json_null()), ERR_NOMEM);
	db_audit_list_free(v, n);
}

/* ---------------------------------------------------------------------
 * GET /v1/stats: counted at most once per STATS_KEEP_NS per process. One
 * request counts at a time, without the lock held; meanwhile the others
 * get the previous answer (generated_at says when it was read), or, when
 * there is none yet, wait for that one.
 */
static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stats_cv = PTHREAD_COND_INITIALIZER;
static char *stats_text;		/* the last answer, JSON */
static uint64_t stats_made_ns;
static int stats_counting;

static json_t *
stats_json(const struct db_stats *st)
{
	json_t *days = json_array(), *weeks = json_array();

	for (int i = 0; days != NULL && i < DB_STATS_DAYS; i++)
		json_array_append_new(days, json_pack("{s:o,s:I}", "day",
		    day_json(st->day0 + (int64_t)i * 86400), "count", (json_int_t)st->enrolled[i]));
	for (int i = 0; weeks != NULL && i < DB_STATS_WEEKS; i++)
		json_array_append_new(weeks, json_pack("{s:o,s:I}", "week_start",
		    day_json(st->week0 + (int64_t)i * 7 * 86400), "count",
		    (json_int_t)st->expiring[i]));
	if (days == NULL || weeks == NULL) {
		json_decref(days);
		json_decref(weeks);
		return NULL;
	}
	return json_pack("{s:{s:I,s:I,s:I,s:I},s:{s:I,s:I,s:I},s:o,s:o,s:I,s:o}",
	    "devices", "pending", (json_int_t)st->devices[0], "active",
	    (json_int_t)st->devices[1], "revoked", (json_int_t)st->devices[2], "retired",
	    (json_int_t)st->devices[3],
	    "certificates", "active", (json_int_t)st->certs_active, "revoked",
	    (json_int_t)st->certs_revoked, "superseded", (json_int_t)st->certs_superseded,
	    "enrollments_per_day", days, "expiring_per_week", weeks,
	    "revocations_24h", (json_int_t)st->revoked_24h, "generated_at", time_json(st->at));
}

/* Counts afresh into a new JSON text (*out, free()). */
static int
stats_count(struct server *s, char **out)
{
	struct db_stats st;
	json_t *o;
	int r;

	*out = NULL;
	if ((r = db_stats_read(s->db, &st)) != 0)
		return r;
	if ((o = stats_json(&st)) == NULL)
		return ERR_NOMEM;
	*out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return *out != NULL ? 0 : ERR_NOMEM;
}

void
route_stats(struct server *s, struct req *rq)
{
	static const char *const args[] = { NULL };
	char *text = NULL, *fresh = NULL;
	int r = 0;

	if (req_query_only(rq, args) != 0)
		return;
	pthread_mutex_lock(&stats_mu);
	while (stats_text == NULL && stats_counting)
		pthread_cond_wait(&stats_cv, &stats_mu);
	if (!stats_counting && (stats_text == NULL ||
	    now_ns() - stats_made_ns >= STATS_KEEP_NS)) {
		stats_counting = 1;
		pthread_mutex_unlock(&stats_mu);
		r = stats_count(s, &fresh);
		pthread_mutex_lock(&stats_mu);
		if (r == 0) {
			free(stats_text);
			stats_text = fresh;
			stats_made_ns = now_ns();
		}
		stats_counting = 0;
		pthread_cond_broadcast(&stats_cv);
	}
	if (r == 0 && stats_text != NULL && (text = strdup(stats_text)) == NULL)
		r = ERR_NOMEM;
	pthread_mutex_unlock(&stats_mu);
	if (text == NULL) {
		req_reply_error(rq, r != 0 ? r : ERR_UNAVAILABLE, NULL);
		return;
	}
	req_reply_raw(rq, 200, "application/json", text, strlen(text));
}
