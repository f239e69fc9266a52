/*
 * ocsp.c: the OCSP responder (RFC 6960, with RFC 5019's GET and caching) —
 * GET /ocsp/{base64} and POST /ocsp answered from the database, signed with
 * the delegated responder certificate of the CA directory (ca/ocsp.c).
 * Responses to requests without a nonce are cached per certificate for a few
 * seconds; ocsp_invalidate drops them when a certificate is revoked.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "server/server_int.h"

#define CACHE_BUCKETS 4096		/* a power of two */
#define CACHE_WAYS 2			/* entries per bucket: SHA-1 and SHA-256 CertIDs */
#define CACHE_STRIPES 64		/* mutexes over the buckets */
#define CACHE_MAX_S 5			/* longest a signed response is served again */
#define CERTID_MAX 192			/* CertIDs longer than this are not cached */
#define RELOAD_CHECK_NS (10ull * 1000000000ull)	/* ocsp.crt looked at this often */
#define WARN_EVERY_NS (3600ull * 1000000000ull)	/* repeated warnings */
#define B64_MAX ROUTE_PARAM_MAX

struct cache_entry {
	size_t certid_len;		/* 0: empty */
	uint8_t serial[CA_SERIAL_LEN];
	uint8_t certid[CERTID_MAX];	/* the request's CertID: the key */
	uint8_t *resp;			/* DER OCSPResponse */
	size_t resp_len;
	int64_t next_update;		/* Unix seconds; 0: none */
	uint64_t expires_ns;		/* monotonic */
};

/* Identity of ocsp.crt on disk: a new file (renewal) changes it. */
struct file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct ocsp_responder {
	/* the signing side; replaced only under g_lock held for writing */
	struct ca_ocsp_responder *rs;	/* NULL: no usable certificate, tryLater */
	struct file_id file;		/* ocsp.crt that rs came from */
	pthread_mutex_t reload_mu;	/* one reloader at a time; guards file */
	atomic_ullong next_check_ns;
	atomic_ullong next_warn_ns;
	/* the cache */
	uint64_t cache_ns;		/* lifetime of an entry; 0: no cache */
	uint64_t hash_key;
	pthread_mutex_t stripe[CACHE_STRIPES];
	uint64_t gen[CACHE_BUCKETS];	/* bumped by each invalidation */
	struct cache_entry cache[CACHE_BUCKETS][CACHE_WAYS];
};

/*
 * s->ocsp and its rs are read under this lock and changed under it held for
 * writing: server_stop calls ocsp_stop while the HTTP workers still serve the
 * connections they have, so a request in flight must never see the
 * responder freed under it. Writers (stop, the swap after a renewal) are
 * rare and short and are preferred, so a steady stream of requests cannot
 * hold them off.
 */
static pthread_rwlock_t g_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

/* ---------------------------------------------------------------------
 * Loading the responder certificate.
 */
static int
file_id_of(const char *dir, struct file_id *id)
{
	char path[PATH_MAX];
	struct stat st;

	memset(id, 0, sizeof(*id));
	if ((size_t)snprintf(path, sizeof(path), "%s/ocsp.crt", dir) >= sizeof(path) ||
	    stat(path, &st) != 0)
		return -1;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = st.st_size;
	id->mtime = st.st_mtim;
	return 0;
}

static int
file_id_eq(const struct file_id *a, const struct file_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Says what state the responder certificate rs is in (NULL: none). */
static void
report(const struct config *cfg, const struct ca_ocsp_responder *rs, int at_start)
{
	int64_t nb, na, now = (int64_t)time(NULL);
	char when[32];

	if (rs == NULL) {
		log_warnx("no usable OCSP responder certificate in %s (ocsp.key, ocsp.crt): "
		    "OCSP requests are answered tryLater; run \"provd ca ocsp-cert\"", cfg->ca_dir);
		return;
	}
	ca_ocsp_responder_validity(rs, &nb, &na);
	time_format_rfc3339((time_t)na, when, sizeof(when));
	if (now >= na)
		log_warnx("the OCSP responder certificate %s/ocsp.crt expired at %s: OCSP "
		    "requests are answered tryLater; run \"provd ca ocsp-cert\"", cfg->ca_dir, when);
	else if (now < nb)
		log_warnx("the OCSP responder certificate %s/ocsp.crt is not valid yet: OCSP "
		    "requests are answered tryLater", cfg->ca_dir);
	else if (ca_ocsp_responder_renew_due(rs, now))
		log_warnx("the OCSP responder certificate %s/ocsp.crt expires at %s: renew it "
		    "with \"provd ca ocsp-cert\"", cfg->ca_dir, when);
	else if (at_start)
		log_info("OCSP responder ready (certificate valid until %s)", when);
}

/* Loads the pair from the CA directory; NULL when missing or unusable. */
static struct ca_ocsp_responder *
load(const struct config *cfg)
{
	struct ca_ocsp_responder *rs = NULL;
	int r = ca_ocsp_responder_load(cfg->ca_dir, &rs);

	if (r != 0 && r != ERR_NOT_FOUND)
		log_warnx("cannot use the OCSP responder certificate in %s: %s (see above)",
		    cfg->ca_dir, provd_strerror(r));
	return rs;
}

static void
cache_entry_clear(struct cache_entry *e)
{
	free(e->resp);
	memset(e, 0, sizeof(*e));
}

/*
 * Every RELOAD_CHECK_NS one request looks whether ocsp.crt was replaced
 * ("provd ca ocsp-cert" renews it while provd runs) and, if so, loads the
 * new pair and swaps it in; it also repeats warnings about the certificate
 * once an hour. Called without g_lock.
 */
static void
reload_if_due(struct server *s)
{
	struct ocsp_responder *o;
	struct ca_ocsp_responder *fresh = NULL, *old = NULL;
	struct file_id id;
	uint64_t now = now_ns();
	int changed = 0;

	pthread_rwlock_rdlock(&g_lock);
	o = s->ocsp;
	if (o == NULL || now < atomic_load(&o->next_check_ns) ||
	    pthread_mutex_trylock(&o->reload_mu) != 0) {
		pthread_rwlock_unlock(&g_lock);
		return;
	}
	atomic_store(&o->next_check_ns, now + RELOAD_CHECK_NS);
	file_id_of(s->cfg->ca_dir, &id);
	if (!file_id_eq(&id, &o->file)) {
		changed = 1;
		o->file = id;
		if ((fresh = load(s->cfg)) != NULL) {
			log_info("OCSP responder certificate %s/ocsp.crt loaded", s->cfg->ca_dir);
			report(s->cfg, fresh, 0);
		} else if (o->rs != NULL) {
			log_warnx("%s/ocsp.crt changed but is not usable: still signing with the "
			    "certificate loaded before", s->cfg->ca_dir);
		} else {
			report(s->cfg, NULL, 0);
		}
	} else if (now >= atomic_load(&o->next_warn_ns)) {
		atomic_store(&o->next_warn_ns, now + WARN_EVERY_NS);
		report(s->cfg, o->rs, 0);
	}
	pthread_mutex_unlock(&o->reload_mu);
	pthread_rwlock_unlock(&g_lock);
	if (!changed || fresh == NULL)
		return;

	pthread_rwlock_wrlock(&g_lock);
	if (s->ocsp == o) {
		old = o->rs;
		o->rs = fresh;
		fresh = NULL;
		/* nobody else is in the cache while we hold the lock for writing */
		for (size_t b = 0; b < CACHE_BUCKETS; b++) {
			o->gen[b]++;
			for (size_t w = 0; w < CACHE_WAYS; w++)
				cache_entry_clear(&o->cache[b][w]);
		}
		atomic_store(&o->next_warn_ns, now + WARN_EVERY_NS);
	}
	pthread_rwlock_unlock(&g_lock);
	ca_ocsp_responder_free(old);
	ca_ocsp_responder_free(fresh);
}

/* ---------------------------------------------------------------------
 * The cache: CACHE_BUCKETS buckets of CACHE_WAYS entries, chosen by the
 * serial so that ocsp_invalidate finds every entry of a certificate in one
 * bucket. A response signed while a revocation was invalidating its bucket
 * is not stored (the bucket's generation moved).
 */
static size_t
bucket_of(const struct ocsp_responder *o, const uint8_t serial[CA_SERIAL_LEN])
{
	uint64_t h = o->hash_key ^ 0xcbf29ce484222325ull;	/* FNV-1a, keyed */

	for (size_t i = 0; i < CA_SERIAL_LEN; i++)
		h = (h ^ serial[i]) * 0x100000001b3ull;
	return (size_t)(h ^ (h >> 32)) & (CACHE_BUCKETS - 1);
}

static pthread_mutex_t *
stripe_of(struct ocsp_responder *o, size_t b)
{
	return &o->stripe[b % CACHE_STRIPES];
}

/* A copy of the cached response for certid (*der, free()), or ERR_NOT_FOUND;
 * *gen gets the bucket's generation for cache_put either way. */
static int
cache_get(struct ocsp_responder *o, const uint8_t serial[CA_SERIAL_LEN], const uint8_t *certid,
    size_t certid_len, uint8_t **der, size_t *len, int64_t *next_update, uint64_t *gen)
{
	size_t b = bucket_of(o, serial);
	uint64_t now = now_ns();
	int r = ERR_NOT_FOUND;

	pthread_mutex_lock(stripe_of(o, b));
	*gen = o->gen[b];
	for (size_t w = 0; w < CACHE_WAYS; w++) {
		struct cache_entry *e = &o->cache[b][w];
		if (e->certid_len != certid_len || e->expires_ns <= now ||
		    memcmp(e->serial, serial, CA_SERIAL_LEN) != 0 ||
		    memcmp(e->certid, certid, certid_len) != 0)
			continue;
		if ((*der = malloc(e->resp_len)) == NULL) {
			r = ERR_NOMEM;
			break;
		}
		memcpy(*der, e->resp, e->resp_len);
		*len = e->resp_len;
		*next_update = e->next_update;
		r = 0;
		break;
	}
	pthread_mutex_unlock(stripe_of(o, b));
	return r;
}

static void
cache_put(struct ocsp_responder *o, const uint8_t serial[CA_SERIAL_LEN], const uint8_t *certid,
    size_t certid_len, const uint8_t *der, size_t len, int64_t next_update, uint64_t gen)
{
	size_t b = bucket_of(o, serial);
	uint64_t now = now_ns();
	struct cache_entry *e = NULL;
	uint8_t *copy;

	if ((copy = malloc(len)) == NULL)
		return;
	memcpy(copy, der, len);
	pthread_mutex_lock(stripe_of(o, b));
	if (o->gen[b] != gen) {
		/* invalidated meanwhile: this answer may predate the revocation */
		pthread_mutex_unlock(stripe_of(o, b));
		free(copy);
		return;
	}
	/* the same key, else an empty or expired entry, else the oldest */
	for (size_t w = 0; w < CACHE_WAYS && e == NULL; w++) {
		struct cache_entry *c = &o->cache[b][w];
		if (c->certid_len == certid_len && memcmp(c->certid, certid, certid_len) == 0)
			e = c;
	}
	for (size_t w = 0; w < CACHE_WAYS && e == NULL; w++)
		if (o->cache[b][w].certid_len == 0 || o->cache[b][w].expires_ns <= now)
			e = &o->cache[b][w];
	if (e == NULL) {
		e = &o->cache[b][0];
		for (size_t w = 1; w < CACHE_WAYS; w++)
			if (o->cache[b][w].expires_ns < e->expires_ns)
				e = &o->cache[b][w];
	}
	cache_entry_clear(e);
	memcpy(e->serial, serial, CA_SERIAL_LEN);
	memcpy(e->certid, certid, certid_len);
	e->certid_len = certid_len;
	e->resp = copy;
	e->resp_len = len;
	e->next_update = next_update;
	e->expires_ns = now + o->cache_ns;
	pthread_mutex_unlock(stripe_of(o, b));
}

/* ---------------------------------------------------------------------
 * Start, stop, invalidate.
 */
int
ocsp_start(struct server *s)
{
	struct ocsp_responder *o;
	int64_t cache_s = s->cfg->ocsp_max_age_s < CACHE_MAX_S ? s->cfg->ocsp_max_age_s : CACHE_MAX_S;

	s->ocsp = NULL;
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return ERR_NOMEM;
	pthread_mutex_init(&o->reload_mu, NULL);
	for (size_t i = 0; i < CACHE_STRIPES; i++)
		pthread_mutex_init(&o->stripe[i], NULL);
	o->cache_ns = (uint64_t)cache_s * 1000000000ull;
	if (RAND_bytes((unsigned char *)&o->hash_key, sizeof(o->hash_key)) != 1)
		o->hash_key = now_ns();
	file_id_of(s->cfg->ca_dir, &o->file);
	o->rs = load(s->cfg);
	report(s->cfg, o->rs, 1);
	atomic_store(&o->next_check_ns, now_ns() + RELOAD_CHECK_NS);
	atomic_store(&o->next_warn_ns, now_ns() + WARN_EVERY_NS);
	pthread_rwlock_wrlock(&g_lock);
	s->ocsp = o;
	pthread_rwlock_unlock(&g_lock);
	return 0;
}

void
ocsp_stop(struct server *s)
{
	struct ocsp_responder *o;

	pthread_rwlock_wrlock(&g_lock);
	o = s->ocsp;
	s->ocsp = NULL;
	pthread_rwlock_unlock(&g_lock);
	if (o == NULL)
		return;
	for (size_t b = 0; b < CACHE_BUCKETS; b++)
		for (size_t w = 0; w < CACHE_WAYS; w++)
			cache_entry_clear(&o->cache[b][w]);
	for (size_t i = 0; i < CACHE_STRIPES; i++)
		pthread_mutex_destroy(&o->stripe[i]);
	pthread_mutex_destroy(&o->reload_mu);
	ca_ocsp_responder_free(o->rs);
	free(o);
}

void
ocsp_invalidate(struct server *s, const char *serial_hex)
{
	struct ocsp_responder *o;
	uint8_t serial[CA_SERIAL_LEN];
	size_t b;

	if (s == NULL || serial_hex == NULL || strnlen(serial_hex, CA_SERIAL_HEX) != 2 * CA_SERIAL_LEN ||
	    hex_decode(serial_hex, serial, sizeof(serial)) != 0)
		return;
	pthread_rwlock_rdlock(&g_lock);
	if ((o = s->ocsp) != NULL) {
		b = bucket_of(o, serial);
		pthread_mutex_lock(stripe_of(o, b));
		o->gen[b]++;
		for (size_t w = 0; w < CACHE_WAYS; w++)
			if (o->cache[b][w].certid_len != 0 &&
			    memcmp(o->cache[b][w].serial, serial, CA_SERIAL_LEN) == 0)
				cache_entry_clear(&o->cache[b][w]);
		pthread_mutex_unlock(stripe_of(o, b));
	}
	pthread_rwlock_unlock(&g_lock);
}

/* ---------------------------------------------------------------------
 * Answering.
 */

/* Status of one of our serials from the database. Not in the database:
 * unknown. Superseded: revoked with reason superseded. Active: good, also
 * outside its validity period (checking that is the relying party's job). */
static int
db_lookup(void *arg, const char serial_hex[CA_SERIAL_HEX], struct ca_ocsp_status *st)
{
	struct server *s = arg;
	struct db_cert c = { 0 };
	int r = db_cert_by_serial(s->db, serial_hex, &c);

	if (r == ERR_NOT_FOUND) {
		st->status = CA_OCSP_UNKNOWN;
		return 0;
	}
	if (r != 0) {
		log_warnx("cannot look up certificate %s: %s", serial_hex, provd_strerror(r));
		return r;
	}
	if (c.status == DB_CERT_ACTIVE) {
		st->status = CA_OCSP_GOOD;
	} else {
		st->status = CA_OCSP_REVOKED;
		st->revoked_at = c.revoked_at > 0 ? c.revoked_at : c.issued_at;
		st->reason = c.status == DB_CERT_SUPERSEDED ? 4 : c.reason;
	}
	db_cert_clear(&c);
	return 0;
}

static void
reply(struct req *rq, uint8_t *der, size_t len, int64_t next_update)
{
	int64_t left = next_update - (int64_t)time(NULL);

	/* RFC 5019 6.2: HTTP caches may keep it until nextUpdate (at most a
	 * day: ca.ocsp_max_age_s) */
	if (next_update > 0 && left > 0)
		snprintf(rq->cache_control, sizeof(rq->cache_control),
		    "max-age=%u, public, no-transform, must-revalidate",
		    (unsigned)(left < 86400 ? left : 86400));
	req_reply_raw(rq, 200, "application/ocsp-response", (char *)der, len);
}

static void
reply_status(struct req *rq, enum ca_ocsp_resp_status st)
{
	uint8_t *der = NULL;
	size_t len = 0;
	int r;

	if ((r = ca_ocsp_error_response(st, &der, &len)) != 0) {
		req_reply_error(rq, r, NULL);
		return;
	}
	reply(rq, der, len, 0);
}

/* Answers one DER request; called with g_lock held for reading. */
static void
answer_locked(struct server *s, struct req *rq, const uint8_t *in, size_t inlen)
{
	struct ocsp_responder *o = s->ocsp;
	struct ca_ocsp_request *q = NULL;
	const uint8_t *certid = NULL;
	char serial_hex[CA_SERIAL_HEX];
	uint8_t serial[CA_SERIAL_LEN], *der = NULL;
	size_t certid_len = 0, len = 0;
	int64_t now = (int64_t)time(NULL), next_update = 0;
	uint64_t gen = 0;
	int r, cacheable;

	if ((r = ca_ocsp_request_parse(in, inlen, &q)) != 0) {
		if (r == ERR_NOMEM)
			req_reply_error(rq, r, NULL);
		else
			reply_status(rq, CA_OCSP_MALFORMED);
		return;
	}
	if (o == NULL || o->rs == NULL) {
		reply_status(rq, CA_OCSP_TRY_LATER);
		goto out;
	}
	ca_ocsp_request_certid(q, 0, &certid, &certid_len);
	cacheable = o->cache_ns > 0 && ca_ocsp_request_count(q) == 1 &&
	    !ca_ocsp_request_has_nonce(q) && certid_len <= CERTID_MAX &&
	    ca_ocsp_request_serial(q, 0, serial_hex) == 0 &&
	    hex_decode(serial_hex, serial, sizeof(serial)) == 0;
	if (cacheable) {
		r = cache_get(o, serial, certid, certid_len, &der, &len, &next_update, &gen);
		if (r == 0) {
			reply(rq, der, len, next_update);
			goto out;
		}
		if (r == ERR_NOMEM) {
			req_reply_error(rq, r, NULL);
			goto out;
		}
	}
	r = ca_ocsp_respond(o->rs, q, now, s->cfg->ocsp_max_age_s, db_lookup, s, &der, &len);
	if (r == ERR_NOMEM) {
		req_reply_error(rq, r, NULL);
		goto out;
	}
	if (r == ERR_CRYPTO || r == ERR_INTERNAL || r == ERR_INVALID) {
		log_warnx("cannot sign an OCSP response: %s", provd_strerror(r));
		reply_status(rq, CA_OCSP_INTERNAL_ERROR);
		goto out;
	}
	if (r != 0) {
		/* the database is down, or the responder certificate is not
		 * valid now (reported by reload_if_due) */
		reply_status(rq, CA_OCSP_TRY_LATER);
		goto out;
	}
	if (s->cfg->ocsp_max_age_s > 0)
		next_update = now + s->cfg->ocsp_max_age_s;
	if (cacheable)
		cache_put(o, serial, certid, certid_len, der, len, next_update, gen);
	/* a response to a nonce is for one client only */
	reply(rq, der, len, ca_ocsp_request_has_nonce(q) ? 0 : next_update);
out:
	ca_ocsp_request_free(q);
}

static void
answer(struct server *s, struct req *rq, const uint8_t *in, size_t inlen)
{
	reload_if_due(s);
	pthread_rwlock_rdlock(&g_lock);
	answer_locked(s, rq, in, inlen);
	pthread_rwlock_unlock(&g_lock);
}

/*
 * Base64 (RFC 4648 section 4, with padding) of at most B64_MAX characters.
 * A space stands for '+', which some clients leave unencoded in the URL.
 */
static int
url_b64_decode(const char *in, uint8_t *out, size_t outmax, size_t *outlen)
{
	char buf[B64_MAX + 1];
	size_t len = strnlen(in, sizeof(buf));

	if (len >= sizeof(buf))
		return ERR_INVALID;
	for (size_t i = 0; i < len; i++)
		buf[i] = in[i] == ' ' ? '+' : in[i];
	return b64_decode(buf, len, out, outmax, outlen) == 0 ? 0 : ERR_INVALID;
}

/* GET /ocsp/{base64 of the DER request} (RFC 6960 appendix A.1); the path
 * arrives URL-decoded. */
void
route_ocsp_get(struct server *s, struct req *rq)
{
	const char *p = rq->params[0];
	uint8_t der[B64_MAX / 4 * 3];
	size_t len = 0;

	if (server_external_ca(s, rq))
		return;
	while (*p == '/')
		p++;
	if (url_b64_decode(p, der, sizeof(der), &len) != 0) {
		reply_status(rq, CA_OCSP_MALFORMED);
		return;
	}
	answer(s, rq, der, len);
}

/* POST /ocsp with the DER request as the body (RFC 6960 appendix A.1). */
void
route_ocsp_post(struct server *s, struct req *rq)
{
	static const char type[] = "application/ocsp-request";
	const char *ct = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);

	if (server_external_ca(s, rq))
		return;
	if (ct != NULL && (strncasecmp(ct, type, sizeof(type) - 1) != 0 ||
	    (ct[sizeof(type) - 1] != '\0' && ct[sizeof(type) - 1] != ';'))) {
		req_reply_error(rq, ERR_UNSUPPORTED, "The body must be application/ocsp-request.");
		return;
	}
	answer(s, rq, (const uint8_t *)rq->body, rq->len);
}
