/*
 * dirsync.c: the directory worker. One thread drains the directory outbox
 * into LDAP: it takes up to [ldap] batch pending rows in id order, reads
 * the entries they name from PostgreSQL as they are now, makes the LDAP
 * entries match (ldap/: one transaction per pass), and marks the rows done.
 *
 * - slapd unreachable: the pass stops, its rows stay pending, and the
 *   worker reconnects after 1 s, 2 s, 4 s ... up to [ldap] retry_max_s.
 * - An entry the server refuses (a data reason: schema, syntax): its rows
 *   get attempts + 1 and last_error, and that entry (all its rows, so its
 *   changes stay in order) is left out of the next passes for a back-off of
 *   its own (1 s doubling to retry_max_s); rows of other entries go on.
 *   Once it succeeds, every row of that entry is done.
 * - It wakes when kicked and polls every second otherwise; a full batch is
 *   followed by the next one at once.
 * - POST /v1/directory/resync runs here too, between passes: the request
 *   is suspended until it ends.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ldap/dir.h"
#include "server/server_int.h"

#define POLL_MS 1000

/* An entry whose write the server refused, and when to try it again. */
struct penalty {
	char entity[8];
	char *key;
	unsigned delay_s;
	uint64_t until_ns;
};

struct dirsync {
	struct server *s;
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop, kicked;
	struct req *resync_rq;		/* waiting for the worker */
	int resync_running;
	/* shown by the status route, under mu */
	int connected;
	uint64_t applied, failed, passes, resyncs;
	unsigned retry_s;		/* current back-off while disconnected */
	uint64_t retry_at_ns;
	char last_error[256];
	time_t last_error_at;
	size_t npenalties;
	/* worker thread only */
	struct dir *dir;
	struct penalty *pen;
	size_t npen, cappen;
};

static void
set_error(struct dirsync *ds, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_error(struct dirsync *ds, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&ds->mu);
	va_start(ap, fmt);
	vsnprintf(ds->last_error, sizeof(ds->last_error), fmt, ap);
	va_end(ap);
	ds->last_error_at = time(NULL);
	pthread_mutex_unlock(&ds->mu);
}

/* ---------------------------------------------------------------------
 * Entries in back-off.
 */
static struct penalty *
penalty_find(struct dirsync *ds, const char *entity, const char *key)
{
	for (size_t i = 0; i < ds->npen; i++)
		if (strcmp(ds->pen[i].entity, entity) == 0 && strcmp(ds->pen[i].key, key) == 0)
			return &ds->pen[i];
	return NULL;
}

static void
penalty_add(struct dirsync *ds, const char *entity, const char *key)
{
	struct penalty *p = penalty_find(ds, entity, key);
	unsigned max = (unsigned)ds->s->cfg->ldap_retry_max_s;

	if (p == NULL) {
		if (ds->npen == ds->cappen) {
			size_t ncap = ds->cappen ? ds->cappen * 2 : 16;
			struct penalty *np = realloc(ds->pen, ncap * sizeof(*np));
			if (np == NULL)
				return;		/* retried at once: harmless */
			ds->pen = np;
			ds->cappen = ncap;
		}
		p = &ds->pen[ds->npen];
		memset(p, 0, sizeof(*p));
		snprintf(p->entity, sizeof(p->entity), "%s", entity);
		if ((p->key = strdup(key)) == NULL)
			return;
		ds->npen++;
	}
	p->delay_s = p->delay_s == 0 ? 1 : p->delay_s * 2 > max ? max : p->delay_s * 2;
	p->until_ns = now_ns() + (uint64_t)p->delay_s * 1000000000ull;
}

static void
penalty_clear(struct dirsync *ds, const char *entity, const char *key)
{
	struct penalty *p = penalty_find(ds, entity, key);

	if (p == NULL)
		return;
	free(p->key);
	*p = ds->pen[--ds->npen];
}

/* ---------------------------------------------------------------------
 * The connection.
 */
static void
disconnect(struct dirsync *ds, const char *why)
{
	unsigned max = (unsigned)ds->s->cfg->ldap_retry_max_s;

	dir_close(ds->dir);
	ds->dir = NULL;
	pthread_mutex_lock(&ds->mu);
	if (ds->connected)
		log_warnx("directory connection lost (%s): retrying", why);
	ds->connected = 0;
	ds->retry_s = ds->retry_s == 0 ? 1 : ds->retry_s * 2 > max ? max : ds->retry_s * 2;
	ds->retry_at_ns = now_ns() + (uint64_t)ds->retry_s * 1000000000ull;
	pthread_mutex_unlock(&ds->mu);
}

/* Connects unless connected, or not before the back-off ends (force: now). */
static int
connect_dir(struct dirsync *ds, int force)
{
	int r;

	if (ds->dir != NULL && !dir_broken(ds->dir))
		return 0;
	if (ds->dir != NULL)
		disconnect(ds, "connection failed");
	if (!force && now_ns() < ds->retry_at_ns)
		return ERR_UNAVAILABLE;
	if ((r = dir_open(ds->s->cfg, &ds->dir)) == 0 && (r = dir_ensure_tree(ds->dir)) != 0) {
		dir_close(ds->dir);
		ds->dir = NULL;
	}
	if (r != 0) {
		set_error(ds, "cannot connect to the directory: %s", provd_strerror(r));
		disconnect(ds, provd_strerror(r));
		return r;
	}
	pthread_mutex_lock(&ds->mu);
	ds->connected = 1;
	ds->retry_s = 0;
	pthread_mutex_unlock(&ds->mu);
	log_info("directory connected: %s, base %s", ds->s->cfg->ldap_uri,
	    ds->s->cfg->ldap_base_dn);
	return 0;
}

/* ---------------------------------------------------------------------
 * Rows of the database as directory items.
 */
static void
device_item(const struct db_dir_device *dd, struct dir_item *it)
{
	memset(it, 0, sizeof(*it));
	it->kind = DIR_DEVICE;
	it->present = dd->present;
	memcpy(it->dev.mac, dd->mac, MAC_LEN);
	memcpy(it->dev.serial_hex, dd->serial_hex, sizeof(it->dev.serial_hex));
	it->dev.cert_der = dd->der;
	it->dev.cert_len = dd->derlen;
	it->dev.owner = dd->owner;
	it->dev.status = dd->status;
	if (strcmp(dd->status, "revoked") == 0 && dd->reason >= 0)
		it->dev.reason = dir_reason_name(dd->reason);
	it->dev.groups = (const char *const *)dd->groups;
	it->dev.ngroups = dd->ngroups;
}

/* Items for everything in snap; *items is new (free()). */
static int
snapshot_items(const struct db_dir_snapshot *snap, struct dir_item **items, size_t *n)
{
	size_t k = 0, total = snap->ndevices + snap->nusers + snap->ngroups;
	struct dir_item *it = calloc(total ? total : 1, sizeof(*it));

	*items = it;
	*n = total;
	if (it == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < snap->ndevices; i++)
		device_item(&snap->devices[i], &it[k++]);
	for (size_t i = 0; i < snap->nusers; i++, k++) {
		it[k].kind = DIR_USER;
		it[k].present = snap->users[i].present;
		it[k].name = snap->users[i].name;
	}
	for (size_t i = 0; i < snap->ngroups; i++, k++) {
		const struct db_dir_group *g = &snap->groups[i];
		it[k].kind = DIR_GROUP;
		it[k].present = g->present;
		it[k].name = g->name;
		it[k].member_macs = (const uint8_t (*)[MAC_LEN])g->member_macs;
		it[k].nmember_macs = g->nmember_macs;
		it[k].member_users = (const char *const *)g->member_users;
		it[k].nmember_users = g->nmember_users;
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * One pass over the outbox.
 */
struct entry {			/* the distinct (entity, key) of a batch */
	const char *entity, *key;
	size_t start, count;	/* its rows: order[start .. start + count) */
	size_t item;		/* its item in the snapshot order */
	int bad;		/* the key is malformed */
};

/* Rows by entry, then id. */
static int
row_cmp(const void *a, const void *b, void *arg)
{
	const struct db_outbox_row *rows = arg;
	const struct db_outbox_row *x = &rows[*(const size_t *)a];
	const struct db_outbox_row *y = &rows[*(const size_t *)b];
	int c = strcmp(x->entity, y->entity);

	if (c == 0)
		c = strcmp(x->key, y->key);
	if (c == 0)
		c = x->id < y->id ? -1 : x->id > y->id;
	return c;
}

static int
entity_rank(const char *e)
{
	return strcmp(e, "device") == 0 ? 0 : strcmp(e, "user") == 0 ? 1 :
	    strcmp(e, "group") == 0 ? 2 : 3;
}

/*
 * Returns the number of rows taken (0: nothing pending), ERR_UNAVAILABLE
 * when the directory connection failed (rows left pending), or another
 * error (database) after which the worker waits a poll interval.
 */
static int
pass(struct dirsync *ds)
{
	struct server *s = ds->s;
	struct db_outbox_row *rows = NULL;
	struct db_dir_snapshot *snap = NULL;
	struct dir_item *items = NULL;
	struct entry *ent = NULL;
	size_t nrows = 0, nent = 0, *order = NULL, nskip = 0, nitems = 0;
	const char **skip_e = NULL, **skip_k = NULL;
	uint8_t (*macs)[MAC_LEN] = NULL;
	const char **users = NULL, **groups = NULL;
	size_t nmacs = 0, nusers = 0, ngroups = 0;
	int64_t *ids = NULL;
	size_t nids = 0;
	struct dir_report rep;
	uint64_t now = now_ns(), nfailed_rows = 0, t_fetch = 0, t_snap = 0, t_ldap = 0;
	int r = ERR_NOMEM;

	/* entries in back-off stay out of this pass */
	if ((skip_e = calloc(ds->npen + 1, sizeof(*skip_e))) == NULL ||
	    (skip_k = calloc(ds->npen + 1, sizeof(*skip_k))) == NULL)
		goto out;
	for (size_t i = 0; i < ds->npen; i++)
		if (ds->pen[i].until_ns > now) {
			skip_e[nskip] = ds->pen[i].entity;
			skip_k[nskip++] = ds->pen[i].key;
		}
	pthread_mutex_lock(&ds->mu);
	ds->npenalties = nskip;
	pthread_mutex_unlock(&ds->mu);
	if ((r = db_outbox_fetch(s->db, (size_t)s->cfg->ldap_batch, skip_e, skip_k, nskip,
	    &rows, &nrows)) != 0) {
		set_error(ds, "cannot read the directory outbox: %s", provd_strerror(r));
		r = ERR_DB;
		goto out;
	}
	if (nrows == 0) {
		r = 0;
		goto out;
	}
	t_fetch = now_ns();

	/* the distinct entries, each once whatever its number of rows */
	r = ERR_NOMEM;
	if ((order = calloc(nrows, sizeof(*order))) == NULL ||
	    (ent = calloc(nrows, sizeof(*ent))) == NULL ||
	    (macs = calloc(nrows, sizeof(*macs))) == NULL ||
	    (users = calloc(nrows, sizeof(*users))) == NULL ||
	    (groups = calloc(nrows, sizeof(*groups))) == NULL ||
	    (ids = calloc(nrows, sizeof(*ids))) == NULL)
		goto out;
	for (size_t i = 0; i < nrows; i++)
		order[i] = i;
	qsort_r(order, nrows, sizeof(*order), row_cmp, rows);
	for (size_t i = 0; i < nrows; i++) {
		const struct db_outbox_row *row = &rows[order[i]];
		if (nent > 0 && strcmp(ent[nent - 1].entity, row->entity) == 0 &&
		    strcmp(ent[nent - 1].key, row->key) == 0) {
			ent[nent - 1].count++;
			continue;
		}
		ent[nent] = (struct entry){ .entity = row->entity, .key = row->key,
		    .start = i, .count = 1 };
		switch (entity_rank(row->entity)) {
		case 0:
			if (mac_parse(row->key, macs[nmacs]) != 0) {
				ent[nent].bad = 1;
				break;
			}
			ent[nent].item = nmacs++;
			break;
		case 1:
			ent[nent].item = nusers;
			users[nusers++] = row->key;
			break;
		case 2:
			ent[nent].item = ngroups;
			groups[ngroups++] = row->key;
			break;
		default:
			ent[nent].bad = 1;
		}
		nent++;
	}
	/* groups and users follow devices in the snapshot's item order */
	for (size_t e = 0; e < nent; e++) {
		int rank = entity_rank(ent[e].entity);
		if (rank == 1)
			ent[e].item += nmacs;
		else if (rank == 2)
			ent[e].item += nmacs + nusers;
	}
	if ((r = db_dir_snapshot(s->db, (const uint8_t (*)[MAC_LEN])macs, nmacs, users, nusers,
	    groups, ngroups, &snap)) != 0) {
		set_error(ds, "cannot read the directory's rows: %s", provd_strerror(r));
		r = ERR_DB;
		goto out;
	}
	if ((r = snapshot_items(snap, &items, &nitems)) != 0)
		goto out;
	t_snap = now_ns();
	r = dir_apply(ds->dir, items, nitems, &rep);
	t_ldap = now_ns();
	if (r == ERR_UNAVAILABLE) {
		set_error(ds, "directory unreachable");
		goto out;
	}
	if (r != 0)
		goto out;

	/* rows of entries written (or unchanged) are done; rows of refused
	 * entries record the attempt and their entry backs off */
	for (size_t e = 0; e < nent; e++) {
		const struct dir_item *it = ent[e].bad ? NULL : &items[ent[e].item];
		const char *why = ent[e].bad ? "malformed outbox row: unknown entity or bad key" :
		    it->error;
		int64_t *fids;

		if (!ent[e].bad && it->result == 0) {
			for (size_t i = 0; i < ent[e].count; i++)
				ids[nids++] = rows[order[ent[e].start + i]].id;
			penalty_clear(ds, ent[e].entity, ent[e].key);
			continue;
		}
		if ((fids = calloc(ent[e].count, sizeof(*fids))) == NULL)
			goto out;
		for (size_t i = 0; i < ent[e].count; i++)
			fids[i] = rows[order[ent[e].start + i]].id;
		log_warnx("directory entry %s %s refused (%zu rows kept pending): %s",
		    ent[e].entity, ent[e].key, ent[e].count, why);
		set_error(ds, "%s %s: %s", ent[e].entity, ent[e].key, why);
		if ((r = db_outbox_fail(s->db, fids, ent[e].count, why)) != 0)
			log_warnx("cannot record the failure: %s", provd_strerror(r));
		r = ERR_NOMEM;
		free(fids);
		nfailed_rows += ent[e].count;
		penalty_add(ds, ent[e].entity, ent[e].key);
	}
	if ((r = db_outbox_done(s->db, ids, nids)) != 0) {
		/* written to LDAP already: the rows come again, unchanged */
		set_error(ds, "cannot mark outbox rows done: %s", provd_strerror(r));
		r = ERR_DB;
		goto out;
	}
	pthread_mutex_lock(&ds->mu);
	ds->applied += nids;
	ds->failed += nfailed_rows;
	ds->passes++;
	pthread_mutex_unlock(&ds->mu);
	log_debug("directory pass: %zu rows, %zu entries: %llu created, %llu updated, "
	    "%llu deleted, %llu unchanged, %llu failed; ms: fetch %llu, read %llu, "
	    "ldap %llu, mark %llu", nrows, nent,
	    (unsigned long long)rep.created, (unsigned long long)rep.updated,
	    (unsigned long long)rep.deleted, (unsigned long long)rep.unchanged,
	    (unsigned long long)rep.failed, (unsigned long long)((t_fetch - now) / 1000000),
	    (unsigned long long)((t_snap - t_fetch) / 1000000),
	    (unsigned long long)((t_ldap - t_snap) / 1000000),
	    (unsigned long long)((now_ns() - t_ldap) / 1000000));
	r = (int)(nrows > (size_t)INT32_MAX ? INT32_MAX : nrows);
out:
	if (r == ERR_NOMEM)
		log_errx("out of memory");
	db_outbox_rows_free(rows, nrows);
	db_dir_snapshot_free(snap);
	free(items);
	free(ent);
	free(order);
	free(skip_e);
	free(skip_k);
	free(macs);
	free(users);
	free(groups);
	free(ids);
	return r;
}

/* ---------------------------------------------------------------------
 * Resync, on the worker thread for a suspended request.
 */
static void
resync(struct dirsync *ds, struct req *rq)
{
	struct db_dir_snapshot *snap = NULL;
	struct dir_item *items = NULL;
	struct dir_report rep = { 0 };
	size_t n = 0;
	const char *first_error = NULL;
	uint64_t t0 = now_ns();
	int r;

	log_set_id(rq->id);
	if ((r = connect_dir(ds, 1)) != 0) {
		req_reply_error(rq, ERR_UNAVAILABLE, "The directory is unreachable.");
		goto out;
	}
	if ((r = db_dir_snapshot_all(ds->s->db, &snap)) != 0 ||
	    (r = snapshot_items(snap, &items, &n)) != 0) {
		req_reply_error(rq, r, NULL);
		goto out;
	}
	if ((r = dir_resync(ds->dir, items, n, &rep)) != 0) {
		if (r == ERR_UNAVAILABLE)
			disconnect(ds, "during a resync");
		req_reply_error(rq, r == ERR_UNAVAILABLE ? r : ERR_LDAP,
		    r == ERR_UNAVAILABLE ? "The directory is unreachable." : NULL);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (items[i].result != 0) {
			log_warnx("resync: %s", items[i].error);
			if (first_error == NULL)
				first_error = items[i].error;
		}
	if (first_error != NULL)
		set_error(ds, "resync: %s", first_error);
	log_info("directory resync by \"%s\": %llu created, %llu updated, %llu deleted, "
	    "%llu unchanged, %llu failed in %llu ms", rq->actor,
	    (unsigned long long)rep.created, (unsigned long long)rep.updated,
	    (unsigned long long)rep.deleted, (unsigned long long)rep.unchanged,
	    (unsigned long long)rep.failed, (unsigned long long)((now_ns() - t0) / 1000000));
	json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "created", (json_int_t)rep.created,
	    "updated", (json_int_t)rep.updated, "deleted", (json_int_t)rep.deleted,
	    "unchanged", (json_int_t)rep.unchanged, "failed", (json_int_t)rep.failed,
	    "ms", (json_int_t)((now_ns() - t0) / 1000000));
	if (o != NULL && first_error != NULL)
		json_object_set_new(o, "first_error", json_string(first_error));
	if (o == NULL)
		req_reply_error(rq, ERR_NOMEM, NULL);
	else
		req_reply_json(rq, 200, o);
	pthread_mutex_lock(&ds->mu);
	ds->resyncs++;
	pthread_mutex_unlock(&ds->mu);
out:
	db_dir_snapshot_free(snap);
	free(items);
	log_set_id(NULL);
	req_complete(rq);
}

/* ---------------------------------------------------------------------
 * The thread.
 */
static void
wait_ms(struct dirsync *ds, uint64_t ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += (time_t)(ms / 1000);
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&ds->mu);
	while (!ds->stop && !ds->kicked && ds->resync_rq == NULL &&
	    pthread_cond_timedwait(&ds->cv, &ds->mu, &until) == 0)
		;
	ds->kicked = 0;
	pthread_mutex_unlock(&ds->mu);
}

static void *
worker(void *arg)
{
	struct dirsync *ds = arg;

	log_set_id("dirsync");
	for (;;) {
		struct req *rq;
		int r;

		pthread_mutex_lock(&ds->mu);
		if (ds->stop) {
			pthread_mutex_unlock(&ds->mu);
			break;
		}
		if ((rq = ds->resync_rq) != NULL) {
			ds->resync_rq = NULL;
			ds->resync_running = 1;
		}
		pthread_mutex_unlock(&ds->mu);
		if (rq != NULL) {
			resync(ds, rq);
			log_set_id("dirsync");
			pthread_mutex_lock(&ds->mu);
			ds->resync_running = 0;
			pthread_mutex_unlock(&ds->mu);
			continue;
		}
		if (connect_dir(ds, 0) != 0) {
			uint64_t now = now_ns(), ms = POLL_MS;
			if (ds->retry_at_ns > now && (ds->retry_at_ns - now) / 1000000 < ms)
				ms = (ds->retry_at_ns - now) / 1000000 + 1;
			wait_ms(ds, ms);
			continue;
		}
		r = pass(ds);
		if (r == ERR_UNAVAILABLE) {
			disconnect(ds, "during a pass");
			continue;
		}
		/* rows taken: look again at once; none, or the database
		 * failed: wait for a kick or the next poll */
		if (r <= 0)
			wait_ms(ds, POLL_MS);
	}
	dir_close(ds->dir);
	ds->dir = NULL;
	log_set_id(NULL);
	return NULL;
}

int
dirsync_start(struct server *s)
{
	struct dirsync *ds;
	pthread_condattr_t ca;

	s->dirsync = NULL;
	if (s->cfg->ldap_uri == NULL)
		return 0;
	if ((ds = calloc(1, sizeof(*ds))) == NULL)
		return ERR_NOMEM;
	ds->s = s;
	pthread_mutex_init(&ds->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ds->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&ds->thread, NULL, worker, ds) != 0) {
		log_errx("cannot start the directory worker");
		pthread_cond_destroy(&ds->cv);
		pthread_mutex_destroy(&ds->mu);
		free(ds);
		return ERR_INTERNAL;
	}
	ds->started = 1;
	s->dirsync = ds;
	log_info("directory worker started (%s, batch %lld)", s->cfg->ldap_uri,
	    (long long)s->cfg->ldap_batch);
	return 0;
}

void
dirsync_stop(struct server *s)
{
	struct dirsync *ds = s->dirsync;
	struct req *rq;

	if (ds == NULL)
		return;
	pthread_mutex_lock(&ds->mu);
	ds->stop = 1;
	rq = ds->resync_rq;
	ds->resync_rq = NULL;
	pthread_cond_signal(&ds->cv);
	pthread_mutex_unlock(&ds->mu);
	if (rq != NULL) {
		req_reply_error(rq, ERR_UNAVAILABLE, "provd is stopping.");
		req_complete(rq);
	}
	if (ds->started)
		pthread_join(ds->thread, NULL);
	for (size_t i = 0; i < ds->npen; i++)
		free(ds->pen[i].key);
	free(ds->pen);
	pthread_cond_destroy(&ds->cv);
	pthread_mutex_destroy(&ds->mu);
	free(ds);
	s->dirsync = NULL;
}

void
dirsync_kick(struct server *s)
{
	struct dirsync *ds = s->dirsync;

	if (ds == NULL)
		return;
	pthread_mutex_lock(&ds->mu);
	ds->kicked = 1;
	pthread_cond_signal(&ds->cv);
	pthread_mutex_unlock(&ds->mu);
}

/* ---------------------------------------------------------------------
 * POST /v1/directory/resync
 */
void
route_directory_resync(struct server *s, struct req *rq)
{
	struct dirsync *ds = s->dirsync;
	int busy;

	if (ds == NULL) {
		req_reply_error(rq, ERR_UNAVAILABLE, "No directory is configured ([ldap] uri).");
		return;
	}
	req_suspend(rq);
	pthread_mutex_lock(&ds->mu);
	busy = ds->resync_rq != NULL || ds->resync_running || ds->stop;
	if (!busy) {
		ds->resync_rq = rq;
		pthread_cond_signal(&ds->cv);
	}
	pthread_mutex_unlock(&ds->mu);
	if (busy) {
		req_reply_error(rq, ERR_CONFLICT, "A directory resync is already running.");
		req_complete(rq);
	}
}

/* ---------------------------------------------------------------------
 * GET /v1/directory/status
 */
void
route_directory_status(struct server *s, struct req *rq)
{
	struct dirsync *ds = s->dirsync;
	int64_t pending = 0, oldest = 0;
	int r = db_outbox_pending(s->db, &pending, &oldest);
	json_t *o;

	if (r != 0) {
		req_reply_error(rq, r, NULL);
		return;
	}
	o = json_pack("{s:b,s:I,s:I}", "configured", ds != NULL, "pending", (json_int_t)pending,
	    "oldest_pending_s", (json_int_t)oldest);
	if (o == NULL) {
		req_reply_error(rq, ERR_NOMEM, NULL);
		return;
	}
	if (ds == NULL) {
		json_object_set_new(o, "connected", json_false());
		req_reply_json(rq, 200, o);
		return;
	}
	pthread_mutex_lock(&ds->mu);
	json_object_set_new(o, "connected", json_boolean(ds->connected));
	json_object_set_new(o, "applied", json_integer((json_int_t)ds->applied));
	json_object_set_new(o, "failed", json_integer((json_int_t)ds->failed));
	json_object_set_new(o, "entries_in_backoff", json_integer((json_int_t)ds->npenalties));
	json_object_set_new(o, "passes", json_integer((json_int_t)ds->passes));
	json_object_set_new(o, "resyncs", json_integer((json_int_t)ds->resyncs));
	json_object_set_new(o, "resync_running",
	    json_boolean(ds->resync_running || ds->resync_rq != NULL));
	if (!ds->connected && ds->retry_at_ns > 0) {
		uint64_t now = now_ns();
		json_object_set_new(o, "retry_in_s", json_integer(ds->retry_at_ns > now ?
		    (json_int_t)((ds->retry_at_ns - now + 999999999ull) / 1000000000ull) : 0));
	}
	if (ds->last_error[0] != '\0') {
		char at[32];
		time_format_rfc3339(ds->last_error_at, at, sizeof(at));
		json_object_set_new(o, "last_error", json_string(ds->last_error));
		json_object_set_new(o, "last_error_at", json_string(at));
	} else
		json_object_set_new(o, "last_error", json_null());
	pthread_mutex_unlock(&ds->mu);
	req_reply_json(rq, 200, o);
}
