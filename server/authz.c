/*
 * authz.c: central access control (Fig. 7) — POST /v1/authorize answered
 * from an in-process cache of devices (status, active certificate, groups)
 * and of the policy (resources, rules, groups, users), kept current by
 * PostgreSQL notifications (sql/003_authz.sql) on a connection of its own.
 *
 * Devices sit in one array with three open-addressing indexes (address, id,
 * certificate fingerprint) holding array positions; the policy is an
 * immutable snapshot swapped whole when it changes. Readers take the read
 * side of one rwlock; the listener thread writes.
 *
 * Every decision is also written into a fixed ring of the last AUTHZ_RING
 * (GET /v1/decisions), without a lock; a question only tried (POST
 * /v1/authorize/try) is decided the same way but uses no one-time grant,
 * counts nowhere and is not written into the ring.
 *
 * With [authz] cache = no, devices are always read per request.
 * Until the first full load has finished, and after the notification
 * connection was lost until the reload that follows, devices are read from
 * the database per request (the cold path). Once loaded the cache is
 * complete — every device insert notifies — so an address it does not know
 * is an unknown device, answered without the database.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "server/server_int.h"

#define PEM_MAX 8192		/* a presented certificate */

enum dev_status { DS_PENDING, DS_ACTIVE, DS_REVOKED, DS_RETIRED, DS_GONE };

struct adev {
	int64_t id;
	uint64_t mac;			/* 48 bits */
	int64_t owner_id;
	int64_t not_before, not_after;
	uint8_t status;			/* enum dev_status */
	uint8_t has_cert;
	uint8_t ngroups;
	uint8_t serial[16];
	uint8_t fp[32];
	int64_t *groups;		/* ngroups ids, malloc'd */
};

/* An index: slots hold position + 1 in the device array (0: empty). */
struct index {
	uint32_t *slot;
	size_t cap;			/* power of two */
	size_t n;
};

struct rule {
	int64_t id;
	enum db_subject subject;
	int64_t subject_id;
	char action[65];
	int allow;
	int64_t valid_from, valid_until;
	int time_from, time_until, weekdays;
	int one_time, used;
};

struct resource {
	int64_t id;
	char name[OPTDATA_MAX_STR + 1];
	struct rule *rules;		/* into policy->rules */
	size_t nrules;
};

/* A recent decision as the ring keeps it. */
struct decision_rec {
	int64_t at_ms;			/* Unix milliseconds */
	int64_t version;
	uint8_t mac[MAC_LEN];
	uint8_t has_mac, by_cert, has_fp, allow;
	uint8_t fp[32];			/* the certificate asked about */
	char resource[OPTDATA_MAX_STR + 1];
	char action[65];
	char reason[160];
	char actor[64];
};

/* seq: 0 empty; odd while entry (seq - 1) / 2 is written; 2 * (n + 1) once
 * entry n is complete. */
struct ring_slot {
	atomic_ullong seq;
	struct decision_rec rec;
};

#define AUTHZ_RING 4096			/* a power of two */

struct policy {
	int64_t version;
	struct resource *res;		/* by id */
	size_t nres;
	uint32_t *res_by_name;		/* hash index: position + 1 */
	size_t res_cap;
	struct rule *rules;		/* grouped by resource */
	size_t nrules;
	struct db_named *groups, *users;	/* by id */
	size_t ngroups, nusers;
	int64_t (*user_groups)[2];	/* sorted (user, group) */
	size_t nuser_groups;
};

struct authz {
	struct server *s;
	pthread_rwlock_t lock;
	struct adev *dev;
	size_t ndev, capdev;
	struct index by_mac, by_id, by_fp;
	struct policy *pol;
	int loaded;			/* devices complete and current */
	int reload_devices;		/* a refresh failed: reload them all */
	EVP_PKEY *ca_key;		/* the issuing CA's public key */
	X509_NAME *ca_name;
	pthread_t listener;
	pthread_mutex_t mu;		/* stopping */
	int stopping;
	atomic_ullong decisions, allowed, cold;
	struct ring_slot *ring;		/* AUTHZ_RING recent decisions */
	atomic_ullong ring_next;	/* entries written so far */
};

/* ---------------------------------------------------------------------
 * Indexes.
 */
static uint64_t
mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t
mac_key(const uint8_t mac[MAC_LEN])
{
	uint64_t k = 0;

	for (int i = 0; i < MAC_LEN; i++)
		k = k << 8 | mac[i];
	return k;
}

static uint64_t
fp_key(const uint8_t fp[32])
{
	uint64_t k;

	memcpy(&k, fp, sizeof(k));
	return k;
}

enum ix_kind { IX_MAC, IX_ID, IX_FP };

static uint64_t
dev_key(const struct adev *d, enum ix_kind k)
{
	switch (k) {
	case IX_MAC: return d->mac;
	case IX_ID: return (uint64_t)d->id;
	case IX_FP: return fp_key(d->fp);
	}
	return 0;
}

static int
ix_grow(struct authz *a, struct index *ix, enum ix_kind kind)
{
	size_t cap = ix->cap ? ix->cap * 2 : 1024;
	uint32_t *slot = calloc(cap, sizeof(*slot));

	if (slot == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < ix->cap; i++) {
		uint32_t v = ix->slot[i];
		if (v == 0)
			continue;
		size_t h = mix(dev_key(&a->dev[v - 1], kind)) & (cap - 1);
		while (slot[h] != 0)
			h = (h + 1) & (cap - 1);
		slot[h] = v;
	}
	free(ix->slot);
	ix->slot = slot;
	ix->cap = cap;
	return 0;
}

/* Adds position pos under its key (duplicates allowed: lookups check). */
static int
ix_add(struct authz *a, struct index *ix, enum ix_kind kind, size_t pos)
{
	int r;

	if ((ix->n + 1) * 2 > ix->cap && (r = ix_grow(a, ix, kind)) != 0)
		return r;
	size_t h = mix(dev_key(&a->dev[pos], kind)) & (ix->cap - 1);
	while (ix->slot[h] != 0) {
		if (ix->slot[h] == pos + 1)
			return 0;	/* already there */
		h = (h + 1) & (ix->cap - 1);
	}
	ix->slot[h] = (uint32_t)(pos + 1);
	ix->n++;
	return 0;
}

static struct adev *
find_mac(struct authz *a, uint64_t mac)
{
	struct index *ix = &a->by_mac;

	if (ix->cap == 0)
		return NULL;
	for (size_t h = mix(mac) & (ix->cap - 1); ix->slot[h] != 0; h = (h + 1) & (ix->cap - 1))
		if (a->dev[ix->slot[h] - 1].mac == mac)
			return &a->dev[ix->slot[h] - 1];
	return NULL;
}

static struct adev *
find_id(struct authz *a, int64_t id)
{
	struct index *ix = &a->by_id;

	if (ix->cap == 0)
		return NULL;
	for (size_t h = mix((uint64_t)id) & (ix->cap - 1); ix->slot[h] != 0;
	    h = (h + 1) & (ix->cap - 1))
		if (a->dev[ix->slot[h] - 1].id == id)
			return &a->dev[ix->slot[h] - 1];
	return NULL;
}

/* The device whose active certificate has this fingerprint (stale index
 * entries of replaced certificates are passed over). */
static struct adev *
find_fp(struct authz *a, const uint8_t fp[32])
{
	struct index *ix = &a->by_fp;

	if (ix->cap == 0)
		return NULL;
	for (size_t h = mix(fp_key(fp)) & (ix->cap - 1); ix->slot[h] != 0;
	    h = (h + 1) & (ix->cap - 1)) {
		struct adev *d = &a->dev[ix->slot[h] - 1];
		if (d->has_cert && memcmp(d->fp, fp, 32) == 0)
			return d;
	}
	return NULL;
}

static uint8_t
status_of(const char *s)
{
	if (strcmp(s, "active") == 0)
		return DS_ACTIVE;
	if (strcmp(s, "revoked") == 0)
		return DS_REVOKED;
	if (strcmp(s, "retired") == 0)
		return DS_RETIRED;
	return DS_PENDING;
}

static const char *
status_name(uint8_t s)
{
	static const char *const names[] = { "pending", "active", "revoked", "retired", "deleted" };

	return s <= DS_GONE ? names[s] : "unknown";
}

/* Puts a device read from the database into the cache (under the write
 * lock). */
static int
dev_put(struct authz *a, const struct db_authz_device *d)
{
	struct adev *x = find_id(a, d->id);
	int64_t *groups = NULL;
	size_t pos;
	int r;

	if (d->ngroups > 0) {
		if ((groups = malloc(d->ngroups * sizeof(*groups))) == NULL)
			return ERR_NOMEM;
		memcpy(groups, d->groups, d->ngroups * sizeof(*groups));
	}
	if (x == NULL) {
		if (a->ndev == a->capdev) {
			size_t cap = a->capdev ? a->capdev * 2 : 1024;
			struct adev *nd;
			if (cap >= UINT32_MAX ||
			    (nd = realloc(a->dev, cap * sizeof(*nd))) == NULL) {
				free(groups);
				return ERR_NOMEM;
			}
			a->dev = nd;
			a->capdev = cap;
		}
		pos = a->ndev++;
		x = &a->dev[pos];
		memset(x, 0, sizeof(*x));
		x->id = d->id;
		x->mac = mac_key(d->mac);
		if ((r = ix_add(a, &a->by_id, IX_ID, pos)) != 0 ||
		    (r = ix_add(a, &a->by_mac, IX_MAC, pos)) != 0) {
			free(groups);
			return r;
		}
	}
	pos = (size_t)(x - a->dev);
	free(x->groups);
	x->groups = groups;
	x->ngroups = (uint8_t)d->ngroups;
	x->owner_id = d->owner_id;
	x->status = status_of(d->status);
	x->has_cert = (uint8_t)d->has_cert;
	if (d->has_cert) {
		memcpy(x->serial, d->serial, 16);
		memcpy(x->fp, d->fingerprint, 32);
		x->not_before = d->not_before;
		x->not_after = d->not_after;
		if ((r = ix_add(a, &a->by_fp, IX_FP, pos)) != 0)
			return r;
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * The policy snapshot.
 */
static uint64_t
name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static void
policy_free(struct policy *p)
{
	if (p == NULL)
		return;
	free(p->res);
	free(p->res_by_name);
	free(p->rules);
	free(p->groups);
	free(p->users);
	free(p->user_groups);
	free(p);
}

static int
cmp_rule(const void *x, const void *y)
{
	const struct db_authz_rule *a = x, *b = y;

	if (a->resource_id != b->resource_id)
		return a->resource_id < b->resource_id ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

static int
policy_build(struct db_authz_policy *src, struct policy **out)
{
	struct policy *p = calloc(1, sizeof(*p));
	size_t k = 0;

	*out = NULL;
	if (p == NULL)
		return ERR_NOMEM;
	p->version = src->version;
	p->nres = src->nresources;
	p->res_cap = 16;
	while (p->res_cap < p->nres * 2)
		p->res_cap *= 2;
	if ((p->res = calloc(p->nres ? p->nres : 1, sizeof(*p->res))) == NULL ||
	    (p->res_by_name = calloc(p->res_cap, sizeof(*p->res_by_name))) == NULL ||
	    (p->rules = calloc(src->nrules ? src->nrules : 1, sizeof(*p->rules))) == NULL) {
		policy_free(p);
		return ERR_NOMEM;
	}
	for (size_t i = 0; i < p->nres; i++) {
		p->res[i].id = src->resources[i].id;
		snprintf(p->res[i].name, sizeof(p->res[i].name), "%s", src->resources[i].name);
		size_t h = name_hash(p->res[i].name) & (p->res_cap - 1);
		while (p->res_by_name[h] != 0)
			h = (h + 1) & (p->res_cap - 1);
		p->res_by_name[h] = (uint32_t)(i + 1);
	}
	/* rules grouped by resource (resources are sorted by id) */
	if (src->nrules > 0)
		qsort(src->rules, src->nrules, sizeof(*src->rules), cmp_rule);
	for (size_t i = 0, ri = 0; i < src->nrules; i++) {
		const struct db_authz_rule *s = &src->rules[i];
		while (ri < p->nres && p->res[ri].id < s->resource_id)
			ri++;
		if (ri == p->nres || p->res[ri].id != s->resource_id)
			continue;	/* its resource went meanwhile */
		struct rule *d = &p->rules[k++];
		d->id = s->id;
		d->subject = s->subject;
		d->subject_id = s->subject_id;
		snprintf(d->action, sizeof(d->action), "%s", s->action);
		d->allow = s->allow;
		d->valid_from = s->valid_from;
		d->valid_until = s->valid_until;
		d->time_from = s->time_from;
		d->time_until = s->time_until;
		d->weekdays = s->weekdays;
		d->one_time = s->one_time;
		d->used = s->used;
		if (p->res[ri].rules == NULL)
			p->res[ri].rules = d;
		p->res[ri].nrules++;
	}
	p->nrules = k;
	/* names and user groups: taken over */
	p->groups = src->groups;
	p->ngroups = src->ngroups;
	p->users = src->users;
	p->nusers = src->nusers;
	p->user_groups = src->user_groups;
	p->nuser_groups = src->nuser_groups;
	src->groups = src->users = NULL;
	src->user_groups = NULL;
	*out = p;
	return 0;
}

static const struct resource *
find_resource(const struct policy *p, const char *name)
{
	for (size_t h = name_hash(name) & (p->res_cap - 1); p->res_by_name[h] != 0;
	    h = (h + 1) & (p->res_cap - 1))
		if (strcmp(p->res[p->res_by_name[h] - 1].name, name) == 0)
			return &p->res[p->res_by_name[h] - 1];
	return NULL;
}

/* Names by id, sorted by id: binary search. */
static const char *
name_of(const struct db_named *v, size_t n, int64_t id)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (v[mid].id == id)
			return v[mid].name;
		if (v[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The groups of user uid: [*first, *first + *n) of p->user_groups. */
static void
user_groups(const struct policy *p, int64_t uid, size_t *first, size_t *n)
{
	size_t lo = 0, hi = p->nuser_groups;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (p->user_groups[mid][0] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	*first = lo;
	for (*n = 0; lo + *n < p->nuser_groups && p->user_groups[lo + *n][0] == uid; (*n)++)
		;
}

static int
policy_reload(struct authz *a)
{
	struct db_authz_policy src;
	struct policy *p, *old;
	int r;

	if ((r = db_authz_policy(a->s->db, &src)) != 0)
		return r;
	r = policy_build(&src, &p);
	db_authz_policy_free(&src);
	if (r != 0)
		return r;
	pthread_rwlock_wrlock(&a->lock);
	old = a->pol;
	a->pol = p;
	pthread_rwlock_unlock(&a->lock);
	policy_free(old);
	return 0;
}

/* ---------------------------------------------------------------------
 * Loading devices.
 */
#define LOAD_BATCH 2048

/* A full load takes the write lock once per LOAD_BATCH devices, so that
 * decisions go on meanwhile (from the database: the cache is not "loaded"
 * until the end). */
struct load_ctx {
	struct authz *a;
	struct db_authz_device *batch;
	size_t nbatch, n;
	int err;
};

static int
load_flush(struct load_ctx *c)
{
	int r = 0;

	pthread_rwlock_wrlock(&c->a->lock);
	for (size_t i = 0; i < c->nbatch && r == 0; i++)
		r = dev_put(c->a, &c->batch[i]);
	pthread_rwlock_unlock(&c->a->lock);
	c->n += c->nbatch;
	c->nbatch = 0;
	return r;
}

static int
load_one(void *arg, const struct db_authz_device *d)
{
	struct load_ctx *c = arg;

	c->batch[c->nbatch++] = *d;
	return c->nbatch == LOAD_BATCH ? load_flush(c) : 0;
}

static int
devices_reload(struct authz *a)
{
	struct load_ctx c = { a, NULL, 0, 0, 0 };
	uint64_t t0 = now_ns();
	int r;

	if ((c.batch = malloc(LOAD_BATCH * sizeof(*c.batch))) == NULL)
		return ERR_NOMEM;
	pthread_rwlock_wrlock(&a->lock);
	a->loaded = 0;
	pthread_rwlock_unlock(&a->lock);
	if ((r = db_authz_devices(a->s->db, load_one, &c)) == 0)
		r = load_flush(&c);
	free(c.batch);
	if (r != 0)
		return r;
	pthread_rwlock_wrlock(&a->lock);
	a->loaded = 1;
	pthread_rwlock_unlock(&a->lock);
	log_info("authorization cache: %zu devices loaded in %.0f ms", c.n,
	    (double)(now_ns() - t0) / 1e6);
	return 0;
}

static void
device_refresh(struct authz *a, int64_t id)
{
	struct db_authz_device d;
	int r = db_authz_device_by_id(a->s->db, id, &d);

	pthread_rwlock_wrlock(&a->lock);
	if (r == 0) {
		(void)dev_put(a, &d);
	} else if (r == ERR_NOT_FOUND) {
		struct adev *x = find_id(a, id);
		if (x != NULL) {
			x->status = DS_GONE;
			x->has_cert = 0;
		}
	} else {
		/* could not read it: the cache may be stale, read per request
		 * until the listener has reloaded every device */
		a->loaded = 0;
		a->reload_devices = 1;
	}
	pthread_rwlock_unlock(&a->lock);
}

/* ---------------------------------------------------------------------
 * The listener thread.
 */
static int
stopping(struct authz *a)
{
	int s;

	pthread_mutex_lock(&a->mu);
	s = a->stopping;
	pthread_mutex_unlock(&a->mu);
	return s;
}

struct note_ctx {
	struct authz *a;
	int reload_policy;
};

static void
on_note(void *arg, const char *channel, const char *payload)
{
	struct note_ctx *c = arg;
	int64_t id;

	if (strcmp(channel, "provd_device") == 0) {
		if (c->a->s->cfg->authz_cache && parse_int64(payload, 1, INT64_MAX, &id) == 0)
			device_refresh(c->a, id);
	} else if (strcmp(channel, "provd_policy") == 0) {
		c->reload_policy = 1;
	} else if (strcmp(channel, "provd_revocation") == 0) {
		ocsp_invalidate(c->a->s, payload);
	}
}

static void *
listener_main(void *arg)
{
	static const char *const channels[] = { "provd_device", "provd_policy",
		"provd_revocation", NULL };
	struct authz *a = arg;
	struct db_listener *l = NULL;
	int backoff_ms = 100, reload_policy = 0;

	while (!stopping(a)) {
		if (l == NULL) {
			if (db_listen_open(a->s->db, channels, &l) != 0) {
				struct timespec ts = { backoff_ms / 1000, (backoff_ms % 1000) * 1000000L };
				nanosleep(&ts, NULL);
				backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
				continue;
			}
			backoff_ms = 100;
			/* listening now: whatever changed before is read afresh
			 * (without the cache, every decision reads its device) */
			if (policy_reload(a) != 0 ||
			    (a->s->cfg->authz_cache && devices_reload(a) != 0)) {
				log_warnx("authorization cache: reload failed; decisions read the "
				    "database until it succeeds");
				db_listen_close(l);
				l = NULL;
				continue;
			}
		}
		struct note_ctx c = { a, reload_policy };
		if (db_listen_poll(l, 250, on_note, &c) != 0) {
			log_warnx("authorization cache: notifications lost; decisions read the "
			    "database until the cache is reloaded");
			pthread_rwlock_wrlock(&a->lock);
			a->loaded = 0;
			pthread_rwlock_unlock(&a->lock);
			db_listen_close(l);
			l = NULL;
			continue;
		}
		/* a failed reload is tried again at the next turn */
		reload_policy = c.reload_policy && policy_reload(a) != 0;
		if (reload_policy)
			log_warnx("authorization cache: policy reload failed; retrying");
		pthread_rwlock_rdlock(&a->lock);
		int again = a->reload_devices;
		pthread_rwlock_unlock(&a->lock);
		if (again && a->s->cfg->authz_cache) {
			pthread_rwlock_wrlock(&a->lock);
			a->reload_devices = 0;
			pthread_rwlock_unlock(&a->lock);
			if (devices_reload(a) != 0) {
				pthread_rwlock_wrlock(&a->lock);
				a->reload_devices = 1;
				pthread_rwlock_unlock(&a->lock);
			}
		}
	}
	db_listen_close(l);
	return NULL;
}

/* ---------------------------------------------------------------------
 * Decisions.
 */
struct question {
	int by;				/* 1 mac, 2 fingerprint */
	uint8_t mac[MAC_LEN];
	uint8_t fp[32];
	char resource[OPTDATA_MAX_STR + 1];
	char action[65];
};

struct answer {
	int allow;
	char reason[160];
	int known;			/* device found: the fields below are set */
	uint8_t mac[MAC_LEN];
	uint8_t status;
	char owner[OPTDATA_MAX_STR + 1];
	char groups[8][OPTDATA_MAX_STR + 1];
	size_t ngroups;
	int64_t version;
	int64_t one_time_rule;		/* an unused one-time grant to take */
	int foreign;			/* a certificate of another CA */
};

/* Whether rule r is in force at t (UTC). */
static int
rule_in_force(const struct rule *r, time_t t)
{
	struct tm tm;

	if ((r->valid_from && t < r->valid_from) || (r->valid_until && t >= r->valid_until))
		return 0;
	if (r->one_time && r->used)
		return 0;
	if (r->time_from < 0 && r->weekdays == 127)
		return 1;
	gmtime_r(&t, &tm);
	int wd = (tm.tm_wday + 6) % 7;	/* Monday 0 */
	int sec = tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
	if (r->time_from < 0)
		return (r->weekdays >> wd) & 1;
	if (r->time_from <= r->time_until)
		return ((r->weekdays >> wd) & 1) && sec >= r->time_from && sec < r->time_until;
	/* wraps past midnight: the part after midnight belongs to the day before */
	if (sec >= r->time_from)
		return (r->weekdays >> wd) & 1;
	if (sec < r->time_until)
		return (r->weekdays >> ((wd + 6) % 7)) & 1;
	return 0;
}

static int
has_group(const int64_t *v, size_t n, int64_t g)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == g)
			return 1;
	return 0;
}

/* Evaluates under the read lock; d is the device (cached or read). */
static void
evaluate(struct authz *a, const struct adev *d, const struct question *q, struct answer *ans)
{
	const struct policy *p = a->pol;
	time_t now = time(NULL);
	const struct resource *res;
	size_t ug_first = 0, ug_n = 0;
	const struct rule *allow = NULL, *allow_once = NULL;

	ans->known = 1;
	for (int i = 0; i < MAC_LEN; i++)
		ans->mac[i] = (uint8_t)(d->mac >> (8 * (MAC_LEN - 1 - i)));
	ans->status = d->status;
	ans->version = p->version;
	if (d->owner_id) {
		const char *o = name_of(p->users, p->nusers, d->owner_id);
		snprintf(ans->owner, sizeof(ans->owner), "%s", o ? o : "");
		user_groups(p, d->owner_id, &ug_first, &ug_n);
	}
	for (size_t i = 0; i < d->ngroups && ans->ngroups < 8; i++) {
		const char *g = name_of(p->groups, p->ngroups, d->groups[i]);
		if (g != NULL)
			snprintf(ans->groups[ans->ngroups++], sizeof(ans->groups[0]), "%s", g);
	}

	if (d->status == DS_REVOKED) {
		msg_set(ans->reason, sizeof(ans->reason), "device revoked");
		return;
	}
	if (d->status != DS_ACTIVE || !d->has_cert) {
		msg_set(ans->reason, sizeof(ans->reason), "device has no valid certificate (%s)",
		    status_name(d->status));
		return;
	}
	if (now < d->not_before) {
		msg_set(ans->reason, sizeof(ans->reason), "certificate not yet valid");
		return;
	}
	if (now >= d->not_after) {
		msg_set(ans->reason, sizeof(ans->reason), "certificate expired");
		return;
	}
	if ((res = find_resource(p, q->resource)) == NULL) {
		msg_set(ans->reason, sizeof(ans->reason), "unknown resource");
		return;
	}
	/* deny overrides allow; among allows a standing rule before a
	 * one-time grant, which a decision would use up */
	for (size_t i = 0; i < res->nrules; i++) {
		const struct rule *r = &res->rules[i];
		int subject;
		switch (r->subject) {
		case DB_SUBJ_DEVICE:
			subject = r->subject_id == d->id;
			break;
		case DB_SUBJ_USER:
			subject = d->owner_id != 0 && r->subject_id == d->owner_id;
			break;
		case DB_SUBJ_GROUP:
			subject = has_group(d->groups, d->ngroups, r->subject_id);
			for (size_t k = 0; !subject && k < ug_n; k++)
				subject = p->user_groups[ug_first + k][1] == r->subject_id;
			break;
		default:
			subject = 0;
		}
		if (!subject || (strcmp(r->action, "*") != 0 && strcmp(r->action, q->action) != 0) ||
		    !rule_in_force(r, now))
			continue;
		if (!r->allow) {
			msg_set(ans->reason, sizeof(ans->reason), "denied by rule %lld",
			    (long long)r->id);
			return;
		}
		if (r->one_time) {
			if (allow_once == NULL)
				allow_once = r;
		} else if (allow == NULL) {
			allow = r;
		}
	}
	if (allow != NULL) {
		ans->allow = 1;
		msg_set(ans->reason, sizeof(ans->reason), "allowed by rule %lld", (long long)allow->id);
	} else if (allow_once != NULL) {
		ans->allow = 1;
		ans->one_time_rule = allow_once->id;
		msg_set(ans->reason, sizeof(ans->reason), "allowed once by rule %lld",
		    (long long)allow_once->id);
	} else {
		msg_set(ans->reason, sizeof(ans->reason), "no rule allows this");
	}
}

/* One question. Returns 0 with ans filled, or an error (database
 * unreachable on the cold path). A question only tried counts nowhere and
 * leaves a one-time grant unused. */
static int
decide(struct authz *a, const struct question *q, const char *actor, int tried,
    struct answer *ans)
{
	struct adev *d, tmp;
	struct db_authz_device dd;
	int r, loaded;

	memset(ans, 0, sizeof(*ans));
	if (!tried)
		atomic_fetch_add(&a->decisions, 1);
	pthread_rwlock_rdlock(&a->lock);
	ans->version = a->pol->version;
	loaded = a->loaded;
	d = q->by == 1 ? find_mac(a, mac_key(q->mac)) : find_fp(a, q->fp);
	if (d != NULL && loaded) {
		evaluate(a, d, q, ans);
		pthread_rwlock_unlock(&a->lock);
		goto out;
	}
	pthread_rwlock_unlock(&a->lock);

	/* not in the cache */
	if (q->by == 2) {
		char st[12];
		uint8_t mac[MAC_LEN];
		int reason;
		if (!tried)
			atomic_fetch_add(&a->cold, 1);
		r = db_authz_cert_status(a->s->db, q->fp, st, mac, &reason);
		if (r == ERR_NOT_FOUND) {
			msg_set(ans->reason, sizeof(ans->reason), "unknown certificate");
			goto out;
		}
		if (r != 0)
			return r;
		if (strcmp(st, "active") != 0) {
			msg_set(ans->reason, sizeof(ans->reason), "certificate %s", st);
			memcpy(ans->mac, mac, MAC_LEN);
			goto out;
		}
		r = db_authz_device_by_mac(a->s->db, mac, &dd);
	} else if (loaded) {
		/* the cache is complete: an address it does not know is unknown */
		msg_set(ans->reason, sizeof(ans->reason), "unknown device");
		goto out;
	} else {
		if (!tried)
			atomic_fetch_add(&a->cold, 1);
		r = db_authz_device_by_mac(a->s->db, q->mac, &dd);
	}
	if (r == ERR_NOT_FOUND) {
		msg_set(ans->reason, sizeof(ans->reason), "unknown device");
		goto out;
	}
	if (r != 0)
		return r;
	memset(&tmp, 0, sizeof(tmp));
	tmp.id = dd.id;
	tmp.mac = mac_key(dd.mac);
	tmp.owner_id = dd.owner_id;
	tmp.status = status_of(dd.status);
	tmp.has_cert = (uint8_t)dd.has_cert;
	memcpy(tmp.fp, dd.fingerprint, 32);
	tmp.not_before = dd.not_before;
	tmp.not_after = dd.not_after;
	tmp.groups = dd.groups;
	tmp.ngroups = (uint8_t)dd.ngroups;
	if (q->by == 2 && (!tmp.has_cert || memcmp(tmp.fp, q->fp, 32) != 0)) {
		msg_set(ans->reason, sizeof(ans->reason), "certificate superseded");
		goto out;
	}
	pthread_rwlock_rdlock(&a->lock);
	evaluate(a, &tmp, q, ans);
	pthread_rwlock_unlock(&a->lock);
out:
	if (ans->allow && ans->one_time_rule && !tried) {
		/* a one-time grant is used by this decision, or by another first */
		r = db_rule_use(a->s->db, ans->one_time_rule, actor, ans->mac);
		if (r == ERR_CONFLICT) {
			ans->allow = 0;
			msg_set(ans->reason, sizeof(ans->reason), "one-time grant %lld used already",
			    (long long)ans->one_time_rule);
		} else if (r != 0) {
			return r;
		}
	}
	if (ans->allow && !tried)
		atomic_fetch_add(&a->allowed, 1);
	return 0;
}

/* ---------------------------------------------------------------------
 * The ring of recent decisions. A decision claims entry n with one atomic
 * increment and writes slot n % AUTHZ_RING as a sequence lock: the slot's
 * seq odd while it writes, 2 * (n + 1) when done. A reader copies a slot
 * and keeps the copy only when seq was that even value before and after.
 * A slot still being written when its turn comes round again (a decision
 * held up for AUTHZ_RING others) is left to that writer: the newer entry
 * is dropped rather than waited for. Decisions never wait here.
 */
static void
ring_put(struct authz *a, const struct question *q, const struct answer *ans,
    const char *actor)
{
	unsigned long long n = atomic_fetch_add_explicit(&a->ring_next, 1, memory_order_relaxed);
	struct ring_slot *sl = &a->ring[n & (AUTHZ_RING - 1)];
	unsigned long long cur = atomic_load_explicit(&sl->seq, memory_order_relaxed);
	struct decision_rec *d = &sl->rec;
	struct timespec ts;

	if ((cur & 1) || cur > 2 * n || !atomic_compare_exchange_strong_explicit(&sl->seq,
	    &cur, 2 * n + 1, memory_order_acq_rel, memory_order_relaxed))
		return;
	atomic_thread_fence(memory_order_release);
	clock_gettime(CLOCK_REALTIME, &ts);
	d->at_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	d->version = ans->version;
	d->allow = (uint8_t)ans->allow;
	d->by_cert = q->by == 2;
	d->has_fp = q->by == 2 && !ans->foreign;
	if (d->has_fp)
		memcpy(d->fp, q->fp, sizeof(d->fp));
	d->has_mac = q->by == 1 || ans->known || (ans->mac[0] | ans->mac[1] | ans->mac[2] |
	    ans->mac[3] | ans->mac[4] | ans->mac[5]) != 0;
	memcpy(d->mac, q->by == 1 ? q->mac : ans->mac, MAC_LEN);
	str_copy(d->resource, sizeof(d->resource), q->resource);
	str_copy(d->action, sizeof(d->action), q->action);
	str_copy(d->reason, sizeof(d->reason), ans->reason);
	str_copy(d->actor, sizeof(d->actor), actor);
	atomic_store_explicit(&sl->seq, 2 * n + 2, memory_order_release);
}

/* Entry n into *out when the ring still holds it, complete. */
static int
ring_get(struct authz *a, unsigned long long n, struct decision_rec *out)
{
	struct ring_slot *sl = &a->ring[n & (AUTHZ_RING - 1)];
	unsigned long long s1 = atomic_load_explicit(&sl->seq, memory_order_acquire);

	if (s1 != 2 * n + 2)
		return 0;
	memcpy(out, &sl->rec, sizeof(*out));
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&sl->seq, memory_order_relaxed) == s1;
}

/* ---------------------------------------------------------------------
 * Requests.
 */

/* The device of a question: {"mac": ...} | {"certificate_sha256": hex} |
 * {"certificate_pem": PEM} (which must be signed by our CA). */
static int
parse_device(struct authz *a, json_t *dev, struct question *q, char *why, size_t whylen)
{
	static const char *const keys[] = { "mac", "certificate_sha256", "certificate_pem", NULL };
	json_t *mac, *fp, *pem;

	if (!json_is_object(dev) || json_only_keys(dev, keys, why, whylen) != 0 ||
	    json_object_size(dev) != 1) {
		if (why[0] == '\0')
			msg_set(why, whylen, "\"device\" must be an object with exactly one of "
			    "\"mac\", \"certificate_sha256\" or \"certificate_pem\".");
		return ERR_INVALID;
	}
	mac = json_object_get(dev, "mac");
	fp = json_object_get(dev, "certificate_sha256");
	pem = json_object_get(dev, "certificate_pem");
	if (mac != NULL) {
		q->by = 1;
		if (!json_is_string(mac) || mac_parse(json_string_value(mac), q->mac) != 0) {
			msg_set(why, whylen, "\"mac\" is not a valid unicast device address.");
			return ERR_BAD_MAC;
		}
		return 0;
	}
	q->by = 2;
	if (fp != NULL) {
		if (!json_is_string(fp) || json_string_length(fp) != 64 ||
		    hex_decode(json_string_value(fp), q->fp, 32) != 0) {
			msg_set(why, whylen, "\"certificate_sha256\" must be 64 hex digits.");
			return ERR_INVALID;
		}
		return 0;
	}
	if (!json_is_string(pem) || json_string_length(pem) > PEM_MAX) {
		msg_set(why, whylen, "\"certificate_pem\" must be one PEM certificate of at most "
		    "%d bytes.", PEM_MAX);
		return ERR_INVALID;
	}
	BIO *b = BIO_new_mem_buf(json_string_value(pem), (int)json_string_length(pem));
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	unsigned char *der = NULL;
	int len = x ? i2d_X509(x, &der) : -1, r = 0;
	ERR_clear_error();
	if (x == NULL || len <= 0) {
		msg_set(why, whylen, "\"certificate_pem\" is not a PEM certificate.");
		r = ERR_INVALID;
	} else if (X509_NAME_cmp(X509_get_issuer_name(x), a->ca_name) != 0 ||
	    X509_verify(x, a->ca_key) != 1) {
		/* answered as a decision, not an error: the caller asked */
		ERR_clear_error();
		r = 1;
	} else {
		ca_fingerprint(der, (size_t)len, q->fp);
	}
	OPENSSL_free(der);
	X509_free(x);
	BIO_free(b);
	return r;
}

static int
parse_question(struct authz *a, json_t *o, struct question *q, int *foreign, char *why,
    size_t whylen)
{
	static const char *const keys[] = { "device", "resource", "action", NULL };
	json_t *res, *act;
	int r;

	memset(q, 0, sizeof(*q));
	*foreign = 0;
	if (!json_is_object(o)) {
		msg_set(why, whylen, "A question must be a JSON object.");
		return ERR_INVALID;
	}
	if ((r = json_only_keys(o, keys, why, whylen)) != 0)
		return r;
	res = json_object_get(o, "resource");
	act = json_object_get(o, "action");
	if (!json_is_string(res) || json_string_length(res) == 0 ||
	    json_string_length(res) > OPTDATA_MAX_STR) {
		msg_set(why, whylen, "\"resource\" (a name of 1 to %d bytes) is required.",
		    OPTDATA_MAX_STR);
		return ERR_INVALID;
	}
	if (act != NULL && (!json_is_string(act) || json_string_length(act) == 0 ||
	    json_string_length(act) > 64)) {
		msg_set(why, whylen, "\"action\" must be a name of 1 to 64 bytes.");
		return ERR_INVALID;
	}
	str_copy(q->resource, sizeof(q->resource), json_string_value(res));
	str_copy(q->action, sizeof(q->action), act ? json_string_value(act) : "connect");
	if ((r = parse_device(a, json_object_get(o, "device"), q, why, whylen)) == 1) {
		*foreign = 1;
		return 0;
	}
	if (r == 0 && json_object_get(o, "device") == NULL) {
		msg_set(why, whylen, "\"device\" is required.");
		return ERR_INVALID;
	}
	return r;
}

static json_t *
answer_json(const struct answer *ans, int64_t ttl)
{
	json_t *o = json_pack("{s:s,s:s,s:I,s:I}", "decision", ans->allow ? "allow" : "deny",
	    "reason", ans->reason, "ttl_s", (json_int_t)ttl, "policy_version",
	    (json_int_t)ans->version);

	if (o != NULL && ans->known) {
		char mac[MAC_STR_LEN];
		json_t *g = json_array();
		mac_format(ans->mac, mac);
		for (size_t i = 0; g != NULL && i < ans->ngroups; i++)
			json_array_append_new(g, json_string(ans->groups[i]));
		json_object_set_new(o, "device", json_pack("{s:s,s:s,s:s?,s:o}", "mac", mac,
		    "status", status_name(ans->status), "owner", ans->owner[0] ? ans->owner : NULL,
		    "groups", g ? g : json_array()));
	}
	return o;
}

static int
authz_ready(struct server *s, struct req *rq)
{
	if (s->authz != NULL)	/* its policy is loaded before it is set */
		return 1;
	req_reply_error(rq, ERR_UNAVAILABLE, "The authorization service is starting; retry "
	    "shortly.");
	return 0;
}

/* One question to an answer object (or NULL and *err, with a public
 * reason in why, when it fails). A decision goes into the ring unless it
 * was only tried. */
static json_t *
ask(struct server *s, struct req *rq, json_t *qj, int tried, int *err, char *why,
    size_t whylen)
{
	struct authz *a = s->authz;
	struct question q;
	struct answer ans;
	int foreign, r;

	*err = 0;
	if ((r = parse_question(a, qj, &q, &foreign, why, whylen)) != 0) {
		*err = r;
		return NULL;
	}
	if (foreign) {
		memset(&ans, 0, sizeof(ans));
		ans.foreign = 1;
		pthread_rwlock_rdlock(&a->lock);
		ans.version = a->pol->version;
		pthread_rwlock_unlock(&a->lock);
		msg_set(ans.reason, sizeof(ans.reason), "certificate not issued by this CA");
		if (!tried)
			atomic_fetch_add(&a->decisions, 1);
	} else if ((r = decide(a, &q, rq->actor, tried, &ans)) != 0) {
		*err = r;
		return NULL;
	}
	if (!tried)
		ring_put(a, &q, &ans, rq->actor);
	return answer_json(&ans, s->cfg->authz_ttl_s);
}

void
route_authorize(struct server *s, struct req *rq)
{
	char why[240] = "";
	json_t *ans;
	int err;

	if (!authz_ready(s, rq))
		return;
	if ((ans = ask(s, rq, rq->json, 0, &err, why, sizeof(why))) == NULL) {
		req_reply_error(rq, err ? err : ERR_NOMEM, why[0] ? why : NULL);
		return;
	}
	req_reply_json(rq, 200, ans);
}

/* POST /v1/authorize/try: the same question and answer, plus "tried":
 * true; nothing is used up, counted or kept. */
void
route_authorize_try(struct server *s, struct req *rq)
{
	char why[240] = "";
	json_t *ans;
	int err;

	if (!authz_ready(s, rq))
		return;
	if ((ans = ask(s, rq, rq->json, 1, &err, why, sizeof(why))) == NULL) {
		req_reply_error(rq, err ? err : ERR_NOMEM, why[0] ? why : NULL);
		return;
	}
	json_object_set_new(ans, "tried", json_true());
	req_reply_json(rq, 200, ans);
}

/* GET /v1/decisions?mac=&limit=&before=: this instance's recent decisions,
 * newest first. */
static json_t *
decision_json(unsigned long long n, const struct decision_rec *d)
{
	char at[64], mac[MAC_STR_LEN], fp[65];
	struct tm tm;
	time_t t = (time_t)(d->at_ms / 1000);
	json_t *o;

	gmtime_r(&t, &tm);
	snprintf(at, sizeof(at), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    (int)(d->at_ms % 1000));
	if (d->has_mac)
		mac_format(d->mac, mac);
	o = json_pack("{s:I,s:s,s:s?,s:s,s:s,s:s,s:s,s:s,s:I}", "seq", (json_int_t)(n + 1), "at",
	    at, "mac", d->has_mac ? mac : NULL, "resource", d->resource, "action", d->action,
	    "decision", d->allow ? "allow" : "deny", "reason", d->reason, "actor", d->actor,
	    "policy_version", (json_int_t)d->version);
	if (o != NULL && d->has_fp) {
		hex_encode(d->fp, sizeof(d->fp), fp);
		json_object_set_new(o, "certificate_sha256", json_string(fp));
	}
	return o;
}

void
route_decisions(struct server *s, struct req *rq)
{
	static const char *const args[] = { "mac", "limit", "before", NULL };
	struct authz *a = s->authz;
	struct decision_rec d;
	unsigned long long end, n, last = 0;
	uint8_t mac[MAC_LEN];
	int64_t before = 0;
	const char *v;
	json_t *items;
	size_t limit, count = 0;
	int by_mac = 0, more = 0;

	if (!authz_ready(s, rq))
		return;
	if (req_query_only(rq, args) != 0 || req_query_limit(rq, &limit) != 0)
		return;
	if ((v = req_query_get(rq, "mac")) != NULL) {
		if (mac_parse(v, mac) != 0) {
			req_reply_error(rq, ERR_BAD_MAC, "mac must be a device address.");
			return;
		}
		by_mac = 1;
	}
	if ((v = req_query_get(rq, "before")) != NULL &&
	    parse_int64(v, 1, INT64_MAX, &before) != 0) {
		req_reply_error(rq, ERR_INVALID, "before must be a sequence number (from 1).");
		return;
	}
	if ((items = json_array()) == NULL) {
		req_reply_error(rq, ERR_NOMEM, NULL);
		return;
	}
	end = atomic_load_explicit(&a->ring_next, memory_order_acquire);
	if (before > 0 && (unsigned long long)before - 1 < end)
		end = (unsigned long long)before - 1;
	/* entries end - 1 down to the oldest the ring may still hold */
	for (n = end; n > 0 && n + AUTHZ_RING > end;) {
		n--;
		if (!ring_get(a, n, &d) ||
		    (by_mac && (!d.has_mac || memcmp(d.mac, mac, MAC_LEN) != 0)))
			continue;
		if (count == limit) {
			more = 1;	/* one more is there */
			break;
		}
		json_array_append_new(items, decision_json(n, &d));
		last = n + 1;
		count++;
	}
	req_reply_json(rq, 200, json_pack("{s:o,s:o,s:I}", "decisions", items, "next",
	    more ? json_integer((json_int_t)last) : json_null(), "capacity",
	    (json_int_t)AUTHZ_RING));
}

void
route_authorize_batch(struct server *s, struct req *rq)
{
	static const char *const keys[] = { "questions", NULL };
	char why[240] = "";
	json_t *qs, *answers, *qj;
	size_t i;
	int err;

	if (!authz_ready(s, rq))
		return;
	if (json_only_keys(rq->json, keys, why, sizeof(why)) != 0) {
		req_reply_error(rq, ERR_INVALID, why);
		return;
	}
	qs = json_object_get(rq->json, "questions");
	if (!json_is_array(qs) || json_array_size(qs) == 0 ||
	    json_array_size(qs) > (size_t)s->cfg->authz_batch_max) {
		msg_set(why, sizeof(why), "\"questions\" must be an array of 1 to %lld questions.",
		    (long long)s->cfg->authz_batch_max);
		req_reply_error(rq, ERR_INVALID, why);
		return;
	}
	if ((answers = json_array()) == NULL) {
		req_reply_error(rq, ERR_NOMEM, NULL);
		return;
	}
	json_array_foreach(qs, i, qj) {
		json_t *ans = ask(s, rq, qj, 0, &err, why, sizeof(why));
		if (ans == NULL) {
			char msg[300];
			json_decref(answers);
			msg_set(msg, sizeof(msg), "Question %zu: %s", i + 1,
			    why[0] ? why : "could not be answered");
			req_reply_error(rq, err ? err : ERR_NOMEM, msg);
			return;
		}
		json_array_append_new(answers, ans);
	}
	req_reply_json(rq, 200, json_pack("{s:o}", "answers", answers));
}

/* ---------------------------------------------------------------------
 * Start and stop.
 */
int
authz_start(struct server *s)
{
	struct authz *a;
	BIO *b;
	X509 *ca = NULL;
	int r = ERR_CONFIG;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return ERR_NOMEM;
	if ((a->ring = calloc(AUTHZ_RING, sizeof(*a->ring))) == NULL) {
		free(a);
		return ERR_NOMEM;
	}
	a->s = s;
	/* the listener's updates must not starve behind a stream of decisions */
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&a->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&a->mu, NULL);
	/* the issuing CA: first in chain.pem */
	if ((b = BIO_new_mem_buf(s->chain_pem, -1)) != NULL)
		ca = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if (ca == NULL || (a->ca_key = X509_get_pubkey(ca)) == NULL ||
	    (a->ca_name = X509_NAME_dup(X509_get_subject_name(ca))) == NULL) {
		log_errx("authorization: cannot read the issuing CA from chain.pem");
		goto fail;
	}
	/* the policy now (small); the devices are loaded by the listener */
	if ((r = policy_reload(a)) != 0) {
		log_errx("authorization: cannot read the access policy: %s", provd_strerror(r));
		goto fail;
	}
	if ((errno = pthread_create(&a->listener, NULL, listener_main, a)) != 0) {
		log_errx("authorization: cannot start the listener: %s", strerror(errno));
		r = ERR_INTERNAL;
		goto fail;
	}
	X509_free(ca);
	s->authz = a;
	return 0;
fail:
	X509_free(ca);
	policy_free(a->pol);
	EVP_PKEY_free(a->ca_key);
	X509_NAME_free(a->ca_name);
	pthread_rwlock_destroy(&a->lock);
	pthread_mutex_destroy(&a->mu);
	free(a->ring);
	free(a);
	return r;
}

void
authz_stop(struct server *s)
{
	struct authz *a = s->authz;

	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	a->stopping = 1;
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->listener, NULL);
	for (size_t i = 0; i < a->ndev; i++)
		free(a->dev[i].groups);
	free(a->dev);
	free(a->by_mac.slot);
	free(a->by_id.slot);
	free(a->by_fp.slot);
	policy_free(a->pol);
	EVP_PKEY_free(a->ca_key);
	X509_NAME_free(a->ca_name);
	pthread_rwlock_destroy(&a->lock);
	pthread_mutex_destroy(&a->mu);
	free(a->ring);
	free(a);
	s->authz = NULL;
}

/* For the status route and metrics. */
void
authz_stats(struct server *s, int *loaded, size_t *devices, int64_t *version,
    unsigned long long *decisions, unsigned long long *allowed, unsigned long long *cold)
{
	struct authz *a = s->authz;

	*loaded = 0;
	*devices = 0;
	*version = 0;
	*decisions = *allowed = *cold = 0;
	if (a == NULL)
		return;
	pthread_rwlock_rdlock(&a->lock);
	*loaded = a->loaded;
	*devices = a->ndev;
	*version = a->pol ? a->pol->version : 0;
	pthread_rwlock_unlock(&a->lock);
	*decisions = atomic_load(&a->decisions);
	*allowed = atomic_load(&a->allowed);
	*cold = atomic_load(&a->cold);
}
