/*
 * sync.c: making directory entries match what PostgreSQL says. Each call
 * reads the entries concerned (pipelined reads, or whole subtrees for a
 * resync), compares them attribute by attribute with what they should be,
 * and writes only what differs: at most one write per entry, so the writes
 * can be pipelined (the server may run them in any order) and an entry the
 * server refuses fails alone.
 *
 * RFC 5805 transactions would save the server a disk sync per write, but
 * slapd 2.5.13 (Debian 12) crashes in its transaction code after a few
 * dozen of them on one connection; they are not used.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ldap.h>

#include "ldap/dir_int.h"

#define IN_FLIGHT 256		/* requests sent before their answers are read
				   (slapd's conn_max_pending_auth is 1000) */
#define SUBTREE_PAGE 1000		/* entries per page of a subtree read */
#define WANT_MAX 7		/* managed attributes of an entry */

static char *device_attrs[] = { "objectClass", "cn", "macAddress", "serialNumber",
	"description", "owner", "userCertificate;binary", NULL };
static char *user_attrs[] = { "objectClass", "cn", "sn", NULL };
static char *group_attrs[] = { "objectClass", "cn", "member", NULL };
static char *all_attrs[] = { "objectClass", "cn", "macAddress", "serialNumber", "description",
	"owner", "userCertificate;binary", "sn", "member", NULL };

/* ---------------------------------------------------------------------
 * Small containers: an arena for everything that lives until the end of a
 * call, growable index lists, and a string-keyed hash of indexes.
 */
struct arena {
	void **p;
	size_t n, cap;
};

static void *
ar_keep(struct arena *a, void *p)
{
	if (p == NULL)
		return NULL;
	if (a->n == a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 64;
		void **np = realloc(a->p, ncap * sizeof(*np));
		if (np == NULL) {
			free(p);
			return NULL;
		}
		a->p = np;
		a->cap = ncap;
	}
	a->p[a->n++] = p;
	return p;
}

static void *
ar_alloc(struct arena *a, size_t len)
{
	return ar_keep(a, calloc(1, len ? len : 1));
}

static char *
ar_strdup(struct arena *a, const char *s)
{
	return ar_keep(a, strdup(s));
}

static void
ar_free(struct arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->p[i]);
	free(a->p);
	memset(a, 0, sizeof(*a));
}

struct idxv {
	size_t *v;
	size_t n, cap;
};

static int
idxv_push(struct idxv *x, size_t i)
{
	if (x->n > 0 && x->v[x->n - 1] == i)
		return 0;
	if (x->n == x->cap) {
		size_t ncap = x->cap ? x->cap * 2 : 4;
		size_t *nv = realloc(x->v, ncap * sizeof(*nv));
		if (nv == NULL)
			return ERR_NOMEM;
		x->v = nv;
		x->cap = ncap;
	}
	x->v[x->n++] = i;
	return 0;
}

struct smap {
	const char **key;
	size_t *val;
	size_t cap, count;	/* cap: a power of two, at least twice count */
};

static int
smap_init(struct smap *m, size_t n)
{
	m->count = 0;
	m->cap = 16;
	while (m->cap < n * 2)
		m->cap *= 2;
	m->key = calloc(m->cap, sizeof(*m->key));
	m->val = calloc(m->cap, sizeof(*m->val));
	return m->key && m->val ? 0 : ERR_NOMEM;
}

static void
smap_free(struct smap *m)
{
	free(m->key);
	free(m->val);
	memset(m, 0, sizeof(*m));
}

static size_t
smap_slot(const char **keys, size_t cap, const char *k)
{
	uint64_t h = 1469598103934665603ull;

	for (const unsigned char *p = (const unsigned char *)k; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	size_t i = (size_t)h & (cap - 1);
	while (keys[i] != NULL && strcmp(keys[i], k) != 0)
		i = (i + 1) & (cap - 1);
	return i;
}

/* Index of k, or -1. */
static long
smap_get(const struct smap *m, const char *k)
{
	size_t i = smap_slot(m->key, m->cap, k);

	return m->key[i] ? (long)m->val[i] : -1;
}

/* Inserts k (borrowed) unless present. *stored is the index stored for k
 * (v when it was new). */
static int
smap_put(struct smap *m, const char *k, size_t v, size_t *stored)
{
	size_t i;

	if ((m->count + 1) * 2 > m->cap) {
		size_t ncap = m->cap * 2;
		const char **nk = calloc(ncap, sizeof(*nk));
		size_t *nv = calloc(ncap, sizeof(*nv));
		if (nk == NULL || nv == NULL) {
			free(nk);
			free(nv);
			return ERR_NOMEM;
		}
		for (size_t j = 0; j < m->cap; j++)
			if (m->key[j] != NULL) {
				size_t s = smap_slot(nk, ncap, m->key[j]);
				nk[s] = m->key[j];
				nv[s] = m->val[j];
			}
		free(m->key);
		free(m->val);
		m->key = nk;
		m->val = nv;
		m->cap = ncap;
	}
	i = smap_slot(m->key, m->cap, k);
	if (m->key[i] == NULL) {
		m->key[i] = k;
		m->val[i] = v;
		m->count++;
	}
	*stored = m->val[i];
	return 0;
}

/* ---------------------------------------------------------------------
 * Values as compared: DNs parsed and printed again by libldap, and ASCII
 * case folded (cn, the RDN type here, matches without case).
 */
enum akind { A_OC, A_STR, A_DN, A_BIN };

static void
ascii_lower(char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		s[i] = (char)tolower((unsigned char)s[i]);
}

/* A new normalized copy of a DN (free()), or NULL when out of memory. A
 * value libldap cannot parse is compared as it is. */
static char *
dn_norm(const char *dn, size_t len)
{
	char *tmp = strndup(dn, len), *n = NULL, *out;

	if (tmp == NULL)
		return NULL;
	if (ldap_dn_normalize(tmp, LDAP_DN_FORMAT_LDAP, &n, LDAP_DN_FORMAT_LDAPV3) ==
	    LDAP_SUCCESS && n != NULL) {
		out = strdup(n);
		ldap_memfree(n);
		free(tmp);
	} else
		out = tmp;
	if (out != NULL)
		ascii_lower(out, strlen(out));
	return out;
}

struct nval {
	const char *p;
	size_t len;
	char *owned;
};

static int
nval_cmp(const void *a, const void *b)
{
	const struct nval *x = a, *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->p, y->p, x->len);
}

static int
nval_set(enum akind k, const struct berval *v, struct nval *out)
{
	memset(out, 0, sizeof(*out));
	if (k == A_DN) {
		if ((out->owned = dn_norm(v->bv_val, v->bv_len)) == NULL)
			return ERR_NOMEM;
		out->p = out->owned;
		out->len = strlen(out->owned);
	} else if (k == A_OC) {
		if ((out->owned = strndup(v->bv_val, v->bv_len)) == NULL)
			return ERR_NOMEM;
		ascii_lower(out->owned, v->bv_len);
		out->p = out->owned;
		out->len = v->bv_len;
	} else {
		out->p = v->bv_val;
		out->len = v->bv_len;
	}
	return 0;
}

static void
nvals_free(struct nval *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i].owned);
	free(v);
}

/* Normalized, sorted copies of n values. */
static int
nvals_make(enum akind k, const struct berval *const *pv, const struct berval *av, size_t n,
    struct nval **out)
{
	struct nval *v = calloc(n ? n : 1, sizeof(*v));
	int r;

	*out = NULL;
	if (v == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < n; i++)
		if ((r = nval_set(k, pv ? pv[i] : &av[i], &v[i])) != 0) {
			nvals_free(v, i);
			return r;
		}
	qsort(v, n, sizeof(*v), nval_cmp);
	*out = v;
	return 0;
}

static size_t
bvals_count(struct berval **v)
{
	size_t n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

/*
 * Compares the server's values cur with want. A_OC: *eq when every wanted
 * class is there; missing (when not NULL, n entries) flags the absent ones.
 * Others: *eq when both sets are equal.
 */
static int
values_equal(enum akind k, struct berval **cur, const struct berval *want, size_t nwant,
    int *eq, int *missing)
{
	size_t ncur = bvals_count(cur);
	struct nval *a = NULL, *b = NULL;
	int r;

	*eq = 0;
	if (k != A_OC && ncur != nwant)
		return 0;
	if (k != A_OC && nwant == 1 && k != A_DN) {
		*eq = cur[0]->bv_len == want[0].bv_len &&
		    memcmp(cur[0]->bv_val, want[0].bv_val, want[0].bv_len) == 0;
		return 0;
	}
	if ((r = nvals_make(k, (const struct berval *const *)cur, NULL, ncur, &a)) != 0 ||
	    (k != A_OC && (r = nvals_make(k, NULL, want, nwant, &b)) != 0))
		goto out;
	if (k == A_OC) {
		*eq = 1;
		for (size_t i = 0; i < nwant; i++) {
			struct nval w;
			if ((r = nval_set(k, &want[i], &w)) != 0)
				goto out;
			int found = bsearch(&w, a, ncur, sizeof(*a), nval_cmp) != NULL;
			free(w.owned);
			if (!found) {
				*eq = 0;
				if (missing != NULL)
					missing[i] = 1;
			}
		}
	} else {
		*eq = 1;
		for (size_t i = 0; i < nwant && *eq; i++)
			*eq = nval_cmp(&a[i], &b[i]) == 0;
	}
	r = 0;
out:
	nvals_free(a, ncur);
	nvals_free(b, nwant);
	return r;
}

/* ---------------------------------------------------------------------
 * Entries as they should be, and the writes that get them there.
 */
struct want_attr {
	const char *name;
	enum akind kind;
	struct berval *vals;
	size_t n;
};

struct want {
	const char *dn;
	const char *ndn;	/* normalized, for matching */
	int present;
	struct want_attr a[WANT_MAX];
	size_t na;
};

enum optype { OP_ADD, OP_MODIFY, OP_DELETE };

struct op {
	enum optype type;
	const char *dn;
	LDAPMod **mods;
	enum dir_change change;
	long own;		/* the item whose own entry this is, or -1 */
	struct idxv deps;	/* items that need this write */
	int msgid;
	int lr;			/* LDAP result */
	char err[200];
};

struct plan {
	struct dir *d;
	struct arena ar;
	struct op *ops;
	size_t nops, capops;
	int nomem;
};

static struct berval *
bv_str(struct plan *p, const char *s)
{
	struct berval *bv = ar_alloc(&p->ar, sizeof(*bv));
	char *c = ar_strdup(&p->ar, s);

	if (bv == NULL || c == NULL) {
		p->nomem = 1;
		return NULL;
	}
	bv->bv_val = c;
	bv->bv_len = strlen(c);
	return bv;
}

static void
want_attr(struct plan *p, struct want *w, const char *name, enum akind k, size_t n)
{
	struct want_attr *a = &w->a[w->na++];

	a->name = name;
	a->kind = k;
	a->n = 0;
	if ((a->vals = ar_alloc(&p->ar, (n ? n : 1) * sizeof(*a->vals))) == NULL)
		p->nomem = 1;
}

static void
want_val(struct plan *p, struct want *w, const void *val, size_t len)
{
	struct want_attr *a = &w->a[w->na - 1];

	if (a->vals == NULL)
		return;
	a->vals[a->n].bv_val = (char *)val;
	a->vals[a->n].bv_len = len;
	a->n++;
	(void)p;
}

static void
want_str(struct plan *p, struct want *w, const char *s)
{
	struct berval *bv = bv_str(p, s);

	if (bv != NULL)
		want_val(p, w, bv->bv_val, bv->bv_len);
}

static int
want_dn(struct plan *p, struct want *w, char *dn)
{
	char *n;

	if (dn == NULL || ar_keep(&p->ar, dn) == NULL ||
	    (n = ar_keep(&p->ar, dn_norm(dn, strlen(dn)))) == NULL) {
		p->nomem = 1;
		return ERR_NOMEM;
	}
	w->dn = dn;
	w->ndn = n;
	return 0;
}

static int
device_want(struct plan *p, const struct dir_device *dev, int present, struct want *w,
    char *why, size_t whylen)
{
	char ms[MAC_STR_LEN], desc[96], *dn = NULL, *owner = NULL;
	int r;

	memset(w, 0, sizeof(*w));
	w->present = present;
	if ((r = dir_device_dn(p->d, dev->mac, &dn)) != 0 || (r = want_dn(p, w, dn)) != 0)
		return r;
	if (!present)
		return 0;
	if (dev->status == NULL || strlen(dev->status) > 32 ||
	    (dev->reason != NULL && strlen(dev->reason) > 32)) {
		msg_set(why, whylen, "device status or reason missing or too long");
		return ERR_INVALID;
	}
	mac_format(dev->mac, ms);
	if (dev->reason != NULL)
		snprintf(desc, sizeof(desc), "status: %s (%s)", dev->status, dev->reason);
	else
		snprintf(desc, sizeof(desc), "status: %s", dev->status);
	want_attr(p, w, "objectClass", A_OC, 3);
	want_str(p, w, "device");
	want_str(p, w, "ieee802Device");
	want_str(p, w, "pkiUser");
	want_attr(p, w, "cn", A_STR, 1);
	want_str(p, w, ms);
	want_attr(p, w, "macAddress", A_STR, 1);
	want_str(p, w, ms);
	want_attr(p, w, "serialNumber", A_STR, 1);
	if (dev->serial_hex[0] != '\0')
		want_str(p, w, dev->serial_hex);
	want_attr(p, w, "description", A_STR, 1);
	want_str(p, w, desc);
	want_attr(p, w, "owner", A_DN, 1);
	if (dev->owner != NULL) {
		if ((r = dir_user_dn(p->d, dev->owner, &owner)) != 0) {
			msg_set(why, whylen, "owner name is empty");
			return r;
		}
		want_str(p, w, owner);
		free(owner);
	}
	want_attr(p, w, "userCertificate;binary", A_BIN, 1);
	if (dev->cert_der != NULL && dev->cert_len > 0)
		want_val(p, w, dev->cert_der, dev->cert_len);
	return p->nomem ? ERR_NOMEM : 0;
}

static int
user_want(struct plan *p, const char *name, int present, struct want *w)
{
	char *dn = NULL;
	int r;

	memset(w, 0, sizeof(*w));
	w->present = present;
	if ((r = dir_user_dn(p->d, name, &dn)) != 0 || (r = want_dn(p, w, dn)) != 0)
		return r;
	if (!present)
		return 0;
	want_attr(p, w, "objectClass", A_OC, 1);
	want_str(p, w, "inetOrgPerson");
	want_attr(p, w, "cn", A_STR, 1);
	want_str(p, w, name);
	want_attr(p, w, "sn", A_STR, 1);
	want_str(p, w, name);
	return p->nomem ? ERR_NOMEM : 0;
}

/* A group with its whole member list; without members it has no entry. */
static int
group_want(struct plan *p, const struct dir_item *it, struct want *w)
{
	char *dn = NULL;
	size_t n = it->nmember_macs + it->nmember_users;
	int r;

	memset(w, 0, sizeof(*w));
	w->present = it->present && n > 0;
	if ((r = dir_group_dn(p->d, it->name, &dn)) != 0 || (r = want_dn(p, w, dn)) != 0)
		return r;
	if (!w->present)
		return 0;
	want_attr(p, w, "objectClass", A_OC, 1);
	want_str(p, w, "groupOfNames");
	want_attr(p, w, "cn", A_STR, 1);
	want_str(p, w, it->name);
	want_attr(p, w, "member", A_DN, n);
	for (size_t i = 0; i < it->nmember_macs; i++) {
		if ((r = dir_device_dn(p->d, it->member_macs[i], &dn)) != 0)
			return r;
		want_str(p, w, dn);
		free(dn);
	}
	for (size_t i = 0; i < it->nmember_users; i++) {
		if ((r = dir_user_dn(p->d, it->member_users[i], &dn)) != 0)
			return r;
		want_str(p, w, dn);
		free(dn);
	}
	return p->nomem ? ERR_NOMEM : 0;
}

static LDAPMod *
mk_mod(struct plan *p, int modop, const char *name, const struct berval *vals, size_t n)
{
	LDAPMod *m = ar_alloc(&p->ar, sizeof(*m));
	struct berval **bv = ar_alloc(&p->ar, (n + 1) * sizeof(*bv));

	if (m == NULL || bv == NULL) {
		p->nomem = 1;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		bv[i] = (struct berval *)&vals[i];
	m->mod_op = modop | LDAP_MOD_BVALUES;
	m->mod_type = (char *)name;
	m->mod_bvalues = bv;
	return m;
}

/* Appends a write; returns its index or -1 (out of memory). */
static long
plan_op(struct plan *p, enum optype type, const char *dn, LDAPMod **mods,
    enum dir_change change, long own)
{
	struct op *o;

	if (p->nops == p->capops) {
		size_t ncap = p->capops ? p->capops * 2 : 64;
		struct op *no = realloc(p->ops, ncap * sizeof(*no));
		if (no == NULL) {
			p->nomem = 1;
			return -1;
		}
		p->ops = no;
		p->capops = ncap;
	}
	o = &p->ops[p->nops];
	memset(o, 0, sizeof(*o));
	o->type = type;
	o->dn = dn;
	o->mods = mods;
	o->change = change;
	o->own = own;
	o->msgid = -1;
	if (own >= 0 && idxv_push(&o->deps, (size_t)own) != 0) {
		p->nomem = 1;
		return -1;
	}
	return (long)p->nops++;
}

/*
 * The write (if any) that makes cur (the server's entry, NULL when absent)
 * match w. Returns the op index, -1 when nothing is to be written, or -2
 * when out of memory.
 */
static long
plan_entry(struct plan *p, const struct want *w, LDAPMessage *cur, long own)
{
	LDAPMod **mods;
	size_t k = 0;

	if (cur == NULL && !w->present)
		return -1;
	if (!w->present)
		return plan_op(p, OP_DELETE, w->dn, NULL, DIR_DELETED, own);
	if ((mods = ar_alloc(&p->ar, (WANT_MAX * 2 + 1) * sizeof(*mods))) == NULL) {
		p->nomem = 1;
		return -2;
	}
	if (cur == NULL) {
		for (size_t i = 0; i < w->na; i++)
			if (w->a[i].n > 0)
				mods[k++] = mk_mod(p, LDAP_MOD_ADD, w->a[i].name, w->a[i].vals,
				    w->a[i].n);
		if (p->nomem)
			return -2;
		return plan_op(p, OP_ADD, w->dn, mods, DIR_CREATED, own);
	}
	for (size_t i = 0; i < w->na; i++) {
		const struct want_attr *a = &w->a[i];
		struct berval **cv = ldap_get_values_len(p->d->ld, cur, a->name);
		int eq = 0, *missing = a->kind == A_OC ? ar_alloc(&p->ar, a->n * sizeof(int)) : NULL;

		if ((a->kind == A_OC && missing == NULL) ||
		    values_equal(a->kind, cv, a->vals, a->n, &eq, missing) != 0) {
			ldap_value_free_len(cv);
			p->nomem = 1;
			return -2;
		}
		if (!eq && a->kind == A_OC) {
			/* add the classes that are missing; others stay */
			struct berval *add = ar_alloc(&p->ar, a->n * sizeof(*add));
			size_t na = 0;
			if (add == NULL) {
				ldap_value_free_len(cv);
				p->nomem = 1;
				return -2;
			}
			for (size_t j = 0; j < a->n; j++)
				if (missing[j])
					add[na++] = a->vals[j];
			mods[k++] = mk_mod(p, LDAP_MOD_ADD, a->name, add, na);
		} else if (!eq && (a->n > 0 || cv != NULL))
			mods[k++] = mk_mod(p, LDAP_MOD_REPLACE, a->name, a->vals, a->n);
		ldap_value_free_len(cv);
	}
	if (p->nomem)
		return -2;
	if (k == 0)
		return -1;
	return plan_op(p, OP_MODIFY, w->dn, mods, DIR_UPDATED, own);
}

/* ---------------------------------------------------------------------
 * Talking to the server: pipelined reads and writes, transactions.
 */
static int
conn_lost(struct dir *d, const char *what, int lr)
{
	d->broken = 1;
	log_warnx("ldap %s: %s", what, ldap_err2string(lr));
	return ERR_UNAVAILABLE;
}

static int
ld_errno(struct dir *d)
{
	int lr = LDAP_SERVER_DOWN;

	ldap_get_option(d->ld, LDAP_OPT_RESULT_CODE, &lr);
	return lr;
}

struct rd {
	const char *dn;
	int msgid;
	LDAPMessage *res;
	LDAPMessage *entry;	/* NULL: no such entry */
	int lr;
	char *diag;		/* the server's message, ldap_memfree */
};

static int
read_send(struct dir *d, struct rd *r, char **attrs, LDAPControl **ctrls)
{
	int lr;

	lr = ldap_search_ext(d->ld, r->dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, ctrls,
	    NULL, NULL, 1, &r->msgid);
	if (lr != LDAP_SUCCESS) {
		if (dir_ldap_conn_lost(lr) || lr == LDAP_SERVER_DOWN)
			return conn_lost(d, "read", lr);
		r->lr = lr;
		r->msgid = -1;
	}
	return 0;
}

static int
read_collect(struct dir *d, struct rd *r)
{
	struct timeval tv = { DIR_TIMEOUT_S, 0 };
	int rc, err = LDAP_OTHER;

	if (r->msgid < 0)
		return 0;
	rc = ldap_result(d->ld, r->msgid, LDAP_MSG_ALL, &tv, &r->res);
	if (rc <= 0)
		return conn_lost(d, "read", rc == 0 ? LDAP_TIMEOUT : ld_errno(d));
	if (ldap_parse_result(d->ld, r->res, &err, NULL, &r->diag, NULL, NULL, 0) != LDAP_SUCCESS)
		return conn_lost(d, "read", ld_errno(d));
	if (dir_ldap_conn_lost(err))
		return conn_lost(d, "read", err);
	r->lr = err == LDAP_NO_SUCH_OBJECT ? LDAP_SUCCESS : err;
	if (err == LDAP_SUCCESS)
		r->entry = ldap_first_entry(d->ld, r->res);
	return 0;
}

static void
rd_clear(struct rd *r)
{
	ldap_msgfree(r->res);
	ldap_memfree(r->diag);
	r->res = r->entry = NULL;
	r->diag = NULL;
}

/* Reads the entries of rd[0..n) that have a DN, IN_FLIGHT at a time. */
static int
read_many(struct dir *d, struct rd *rd, size_t n, char **attrs)
{
	int r;

	for (size_t off = 0; off < n; off += IN_FLIGHT) {
		size_t k = n - off < IN_FLIGHT ? n - off : IN_FLIGHT;
		for (size_t i = off; i < off + k; i++) {
			rd[i].msgid = -1;
			if (rd[i].dn != NULL && (r = read_send(d, &rd[i], attrs, NULL)) != 0)
				return r;
		}
		for (size_t i = off; i < off + k; i++)
			if ((r = read_collect(d, &rd[i])) != 0)
				return r;
	}
	return 0;
}

static void
op_error(struct op *o, int lr, const char *diag)
{
	o->lr = lr;
	snprintf(o->err, sizeof(o->err), "%s: %s%s%s%s", o->dn, ldap_err2string(lr),
	    diag && *diag ? " (" : "", diag ? diag : "", diag && *diag ? ")" : "");
}

static int
op_send(struct dir *d, struct op *o, LDAPControl **ctrls)
{
	int lr;

	switch (o->type) {
	case OP_ADD:
		lr = ldap_add_ext(d->ld, o->dn, o->mods, ctrls, NULL, &o->msgid);
		break;
	case OP_MODIFY:
		lr = ldap_modify_ext(d->ld, o->dn, o->mods, ctrls, NULL, &o->msgid);
		break;
	default:
		lr = ldap_delete_ext(d->ld, o->dn, ctrls, NULL, &o->msgid);
		break;
	}
	if (lr != LDAP_SUCCESS) {
		if (dir_ldap_conn_lost(lr))
			return conn_lost(d, "write", lr);
		o->msgid = -1;
		op_error(o, lr, NULL);
	}
	return 0;
}

static int
op_collect(struct dir *d, struct op *o)
{
	struct timeval tv = { DIR_LONG_TIMEOUT_S, 0 };
	LDAPMessage *res = NULL;
	char *diag = NULL;
	int rc, err = LDAP_OTHER;

	if (o->msgid < 0)
		return 0;
	rc = ldap_result(d->ld, o->msgid, LDAP_MSG_ALL, &tv, &res);
	o->msgid = -1;
	if (rc <= 0)
		return conn_lost(d, "write", rc == 0 ? LDAP_TIMEOUT : ld_errno(d));
	if (ldap_parse_result(d->ld, res, &err, NULL, &diag, NULL, NULL, 1) != LDAP_SUCCESS)
		return conn_lost(d, "write", ld_errno(d));
	if (dir_ldap_conn_lost(err)) {
		ldap_memfree(diag);
		return conn_lost(d, "write", err);
	}
	/* an entry already gone is what a delete wants */
	if (o->type == OP_DELETE && err == LDAP_NO_SUCH_OBJECT)
		err = LDAP_SUCCESS;
	if (err == LDAP_SUCCESS) {
		o->lr = LDAP_SUCCESS;
		o->err[0] = '\0';
	} else
		op_error(o, err, diag);
	ldap_memfree(diag);
	return 0;
}

/* Writes ops one by one (pipelined: each names a different entry, so the
 * order the server runs them in does not matter). */
static int
flush_each(struct dir *d, struct op *ops, size_t n)
{
	int r;

	for (size_t i = 0; i < n; i++)
		if ((r = op_send(d, &ops[i], NULL)) != 0)
			return r;
	for (size_t i = 0; i < n; i++)
		if ((r = op_collect(d, &ops[i])) != 0)
			return r;
	return 0;
}

static int
flush(struct dir *d, struct op *ops, size_t n)
{
	int r;

	for (size_t off = 0; off < n; off += IN_FLIGHT) {
		size_t k = n - off < IN_FLIGHT ? n - off : IN_FLIGHT;
		if ((r = flush_each(d, ops + off, k)) != 0)
			return r;
	}
	return 0;
}

/* Results of the writes onto the items, and the counts. */
static void
settle(struct plan *p, struct dir_item *items, size_t n, struct dir_report *rep)
{
	for (size_t i = 0; i < p->nops; i++) {
		struct op *o = &p->ops[i];
		if (o->lr == LDAP_SUCCESS) {
			if (rep != NULL) {
				rep->created += o->change == DIR_CREATED;
				rep->updated += o->change == DIR_UPDATED;
				rep->deleted += o->change == DIR_DELETED;
			}
			if (o->own >= 0 && items[o->own].result == 0)
				items[o->own].change = o->change;
			continue;
		}
		for (size_t j = 0; j < o->deps.n; j++) {
			struct dir_item *it = &items[o->deps.v[j]];
			if (it->result == 0) {
				it->result = o->lr == LDAP_INSUFFICIENT_ACCESS ? ERR_AUTH : ERR_LDAP;
				snprintf(it->error, sizeof(it->error), "%s", o->err);
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (items[i].result != 0)
			items[i].change = DIR_UNCHANGED;
		if (rep != NULL) {
			rep->failed += items[i].result != 0;
			rep->unchanged += items[i].result == 0 && items[i].change == DIR_UNCHANGED;
		}
	}
}

static void
plan_free(struct plan *p)
{
	for (size_t i = 0; i < p->nops; i++)
		free(p->ops[i].deps.v);
	free(p->ops);
	ar_free(&p->ar);
}

/* Fills item i's own entry as it should be; a bad item gets its result. */
static int
item_want(struct plan *p, struct dir_item *it, struct want *w)
{
	int r;

	switch (it->kind) {
	case DIR_DEVICE:
		r = device_want(p, &it->dev, it->present, w, it->error, sizeof(it->error));
		break;
	case DIR_USER:
		r = it->name ? user_want(p, it->name, it->present, w) : ERR_INVALID;
		break;
	case DIR_GROUP:
		r = it->name ? group_want(p, it, w) : ERR_INVALID;
		break;
	default:
		r = ERR_INVALID;
	}
	if (r == ERR_NOMEM)
		return r;
	if (r != 0) {
		it->result = r;
		if (it->error[0] == '\0')
			snprintf(it->error, sizeof(it->error), "malformed entry: %s",
			    provd_strerror(r));
	}
	return 0;
}

static void
items_reset(struct dir_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		items[i].result = 0;
		items[i].change = DIR_UNCHANGED;
		items[i].error[0] = '\0';
	}
}

/* ---------------------------------------------------------------------
 * dir_apply: the entries of a few items, plus the owners' entries and the
 * group memberships they imply.
 */
struct gwork {			/* one group touched by device or user items */
	const char *name;	/* NULL when only known by DN (removals) */
	const char *dn, *ndn;
	struct berval *adds;	/* member DNs to add */
	size_t nadds, capadds;
	struct berval *dels;	/* member DNs to remove */
	size_t ndels, capdels;
	struct idxv deps;
	struct rd rd;
};

static int
gw_push(struct plan *p, struct berval **v, size_t *n, size_t *cap, const char *dn)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		struct berval *nv = ar_alloc(&p->ar, ncap * sizeof(*nv));
		if (nv == NULL)
			return ERR_NOMEM;
		if (*n > 0)
			memcpy(nv, *v, *n * sizeof(*nv));
		*v = nv;
		*cap = ncap;
	}
	(*v)[*n].bv_val = (char *)dn;
	(*v)[*n].bv_len = strlen(dn);
	(*n)++;
	return 0;
}

/* "((member=dn1)(member=dn2)...)": RFC 3876 values-return filter. */
static int
vrf_control(const struct berval *dns, size_t n, LDAPControl **out)
{
	char *buf = NULL, *fv = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	BerElement *ber = NULL;
	struct berval bv;
	int r = ERR_NOMEM;

	*out = NULL;
	if (f == NULL)
		return ERR_NOMEM;
	fputc('(', f);
	for (size_t i = 0; i < n; i++) {
		if (dir_filter_value(dns[i].bv_val, &fv) != 0) {
			fclose(f);
			goto out;
		}
		fprintf(f, "(member=%s)", fv);
		free(fv);
	}
	fputc(')', f);
	if (fclose(f) != 0)
		goto out;
	if ((ber = ber_alloc_t(LBER_USE_DER)) == NULL || ldap_put_vrFilter(ber, buf) != 0 ||
	    ber_flatten2(ber, &bv, 0) != 0 ||
	    ldap_control_create(LDAP_CONTROL_VALUESRETURNFILTER, 1, &bv, 1, out) != LDAP_SUCCESS)
		goto out;
	r = 0;
out:
	ber_free(ber, 1);
	free(buf);
	return r;
}

/* Groups whose member lists hold dn: one search under ou=groups each,
 * pipelined. */
static int
find_memberships(struct plan *p, const char **dns, size_t n, int *msgids)
{
	struct dir *d = p->d;
	char *base = NULL, *filter = NULL, *fv = NULL, *attrs[] = { "cn", NULL };
	int r = 0, lr;

	if (asprintf(&base, "ou=groups,%s", d->base) < 0)
		return ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		msgids[i] = -1;
		if (dir_filter_value(dns[i], &fv) != 0 || asprintf(&filter, "(member=%s)", fv) < 0) {
			free(fv);
			r = ERR_NOMEM;
			break;
		}
		lr = ldap_search_ext(d->ld, base, LDAP_SCOPE_ONELEVEL, filter, attrs, 0, NULL,
		    NULL, NULL, 0, &msgids[i]);
		free(fv);
		free(filter);
		fv = filter = NULL;
		if (lr != LDAP_SUCCESS) {
			r = conn_lost(d, "group search", lr);
			break;
		}
	}
	free(base);
	return r;
}

/* The group named dn in gws (added when new); its index, or -1 when out of
 * memory. */
static long
group_get(struct plan *p, struct smap *gmap, struct gwork **gws, size_t *ngw, size_t *capgw,
    const char *name, const char *dn)
{
	struct gwork *g;
	char *ndn;
	size_t gi;

	if ((ndn = ar_keep(&p->ar, dn_norm(dn, strlen(dn)))) == NULL)
		return -1;
	if (*ngw == *capgw) {
		size_t ncap = *capgw ? *capgw * 2 : 16;
		struct gwork *ng = realloc(*gws, ncap * sizeof(*ng));
		if (ng == NULL)
			return -1;
		*gws = ng;
		*capgw = ncap;
	}
	if (smap_put(gmap, ndn, *ngw, &gi) != 0)
		return -1;
	if (gi < *ngw)
		return (long)gi;
	g = &(*gws)[(*ngw)++];
	memset(g, 0, sizeof(*g));
	g->name = name;
	g->dn = dn;
	g->ndn = ndn;
	g->rd.dn = dn;
	g->rd.msgid = -1;
	return (long)gi;
}

/* The write for a group that gains and loses members (no group item says
 * what its whole member list is): a new entry with its first members, the
 * members to add that are missing and those to remove that are there, or
 * the entry deleted when it would be left empty. Returns the op index, -1
 * when nothing is to be written, -2 when out of memory. */
static long
plan_group_members(struct plan *p, struct gwork *g)
{
	struct berval **cur, *addv, *delv;
	struct nval *cn = NULL;
	size_t ncur, nadd = 0, ndel = 0;
	long oi = -1;

	if (g->rd.lr != LDAP_SUCCESS) {
		if ((oi = plan_op(p, OP_MODIFY, g->dn, NULL, DIR_UPDATED, -1)) < 0)
			return -2;
		op_error(&p->ops[oi], g->rd.lr, g->rd.diag);
		return oi;
	}
	if (g->rd.entry == NULL) {
		struct want w = { .dn = g->dn, .ndn = g->ndn, .present = 1 };
		if (g->nadds == 0 || g->name == NULL)
			return -1;
		want_attr(p, &w, "objectClass", A_OC, 1);
		want_str(p, &w, "groupOfNames");
		want_attr(p, &w, "cn", A_STR, 1);
		want_str(p, &w, g->name);
		want_attr(p, &w, "member", A_DN, g->nadds);
		for (size_t k = 0; k < g->nadds; k++)
			want_val(p, &w, g->adds[k].bv_val, g->adds[k].bv_len);
		return p->nomem ? -2 : plan_entry(p, &w, NULL, -1);
	}
	cur = ldap_get_values_len(p->d->ld, g->rd.entry, "member");
	ncur = bvals_count(cur);
	addv = ar_alloc(&p->ar, (g->nadds + 1) * sizeof(*addv));
	delv = ar_alloc(&p->ar, (g->ndels + 1) * sizeof(*delv));
	if (addv == NULL || delv == NULL ||
	    nvals_make(A_DN, (const struct berval *const *)cur, NULL, ncur, &cn) != 0)
		goto nomem;
	for (size_t k = 0; k < g->nadds + g->ndels; k++) {
		int del = k >= g->nadds, there;
		struct berval *v = del ? &g->dels[k - g->nadds] : &g->adds[k];
		struct nval nv;
		if (nval_set(A_DN, v, &nv) != 0)
			goto nomem;
		there = bsearch(&nv, cn, ncur, sizeof(*cn), nval_cmp) != NULL;
		free(nv.owned);
		if (del && there)
			delv[ndel++] = *v;
		else if (!del && !there)
			addv[nadd++] = *v;
	}
	if (g->ndels > 0 && nadd == 0 && ndel == ncur && ncur > 0)
		oi = plan_op(p, OP_DELETE, g->dn, NULL, DIR_DELETED, -1);
	else if (nadd > 0 || ndel > 0) {
		LDAPMod **mods = ar_alloc(&p->ar, 3 * sizeof(*mods));
		size_t k = 0;
		if (mods == NULL)
			goto nomem;
		if (nadd > 0)
			mods[k++] = mk_mod(p, LDAP_MOD_ADD, "member", addv, nadd);
		if (ndel > 0)
			mods[k++] = mk_mod(p, LDAP_MOD_DELETE, "member", delv, ndel);
		if (p->nomem)
			goto nomem;
		oi = plan_op(p, OP_MODIFY, g->dn, mods, DIR_UPDATED, -1);
	}
	nvals_free(cn, ncur);
	ldap_value_free_len(cur);
	return p->nomem ? -2 : oi;
nomem:
	p->nomem = 1;
	nvals_free(cn, ncur);
	ldap_value_free_len(cur);
	return -2;
}

/* Sends the ops that planning did not already fail (a failed read). */
static int
write_planned(struct plan *p)
{
	struct op *send = calloc(p->nops ? p->nops : 1, sizeof(*send));
	size_t *back = calloc(p->nops ? p->nops : 1, sizeof(*back));
	size_t k = 0;
	int r = ERR_NOMEM;

	if (send == NULL || back == NULL)
		goto out;
	for (size_t i = 0; i < p->nops; i++)
		if (p->ops[i].err[0] == '\0') {
			back[k] = i;
			send[k++] = p->ops[i];
		}
	r = flush(p->d, send, k);
	for (size_t i = 0; i < k; i++) {
		p->ops[back[i]].lr = send[i].lr;
		memcpy(p->ops[back[i]].err, send[i].err, sizeof(send[i].err));
	}
out:
	free(send);
	free(back);
	return r;
}

/* Collects the group searches of find_memberships: each group found loses
 * the member rmdn[k] (for item rmitem[k]). */
static int
collect_memberships(struct plan *p, struct smap *imap, struct smap *gmap, struct gwork **gws,
    size_t *ngw, size_t *capgw, const char **rmdn, const size_t *rmitem, const int *msgids,
    size_t nrm)
{
	struct dir *d = p->d;
	int r = 0;

	for (size_t k = 0; k < nrm; k++) {
		struct timeval tv = { DIR_TIMEOUT_S, 0 };
		LDAPMessage *res = NULL, *e;
		int rc, err = LDAP_OTHER;

		rc = ldap_result(d->ld, msgids[k], LDAP_MSG_ALL, &tv, &res);
		if (rc <= 0)
			return conn_lost(d, "group search", rc == 0 ? LDAP_TIMEOUT : ld_errno(d));
		ldap_parse_result(d->ld, res, &err, NULL, NULL, NULL, NULL, 0);
		if (dir_ldap_conn_lost(err)) {
			ldap_msgfree(res);
			return conn_lost(d, "group search", err);
		}
		for (e = ldap_first_entry(d->ld, res); e != NULL && r == 0;
		    e = ldap_next_entry(d->ld, e)) {
			char *gdn = ldap_get_dn(d->ld, e), *copy;
			long gi;
			if (gdn == NULL)
				continue;
			copy = ar_strdup(&p->ar, gdn);
			ldap_memfree(gdn);
			r = ERR_NOMEM;
			if (copy == NULL || (gi = group_get(p, gmap, gws, ngw, capgw, NULL, copy)) < 0)
				break;
			struct gwork *g = &(*gws)[gi];
			if (smap_get(imap, g->ndn) >= 0) {
				r = 0;		/* a group item replaces its members */
				continue;
			}
			if (gw_push(p, &g->dels, &g->ndels, &g->capdels, rmdn[k]) != 0 ||
			    idxv_push(&g->deps, rmitem[k]) != 0)
				break;
			r = 0;
		}
		ldap_msgfree(res);
		if (r != 0)
			return r;
	}
	return 0;
}

int
dir_apply(struct dir *d, struct dir_item *items, size_t n, struct dir_report *rep)
{
	struct plan p = { .d = d };
	struct want *w = NULL, *uw = NULL;
	struct rd *rd = NULL, *urd = NULL;
	struct gwork *gw = NULL;
	struct smap imap = { 0 }, umap = { 0 }, gmap = { 0 };
	size_t nu = 0, umax = n, ngw = 0, capgw = 0, nrm = 0;
	const char **rmdn = NULL;
	size_t *rmitem = NULL;
	struct idxv *udeps = NULL;	/* items needing each implied user */
	long *uop = NULL;
	int *rmmsg = NULL;
	int r = ERR_NOMEM;

	if (rep != NULL)
		memset(rep, 0, sizeof(*rep));
	if (d == NULL || d->broken)
		return ERR_UNAVAILABLE;
	if (n == 0)
		return 0;
	items_reset(items, n);
	for (size_t i = 0; i < n; i++)
		if (items[i].kind == DIR_GROUP && items[i].present)
			umax += items[i].nmember_users;
	if ((w = calloc(n, sizeof(*w))) == NULL || (uw = calloc(umax, sizeof(*uw))) == NULL ||
	    (rd = calloc(n, sizeof(*rd))) == NULL || (urd = calloc(umax, sizeof(*urd))) == NULL ||
	    (rmdn = calloc(n, sizeof(*rmdn))) == NULL ||
	    (rmitem = calloc(n, sizeof(*rmitem))) == NULL ||
	    (rmmsg = calloc(n, sizeof(*rmmsg))) == NULL ||
	    (udeps = calloc(umax, sizeof(*udeps))) == NULL ||
	    (uop = calloc(umax, sizeof(*uop))) == NULL ||
	    smap_init(&imap, n) != 0 || smap_init(&umap, umax) != 0 || smap_init(&gmap, n) != 0)
		goto out;

	/* 1. each item's own entry; items must name distinct entries */
	for (size_t i = 0; i < n; i++) {
		size_t at;
		rd[i].msgid = -1;
		if ((r = item_want(&p, &items[i], &w[i])) != 0)
			goto out;
		r = ERR_NOMEM;
		if (items[i].result != 0)
			continue;
		if (smap_put(&imap, w[i].ndn, i, &at) != 0)
			goto out;
		if (at != i) {
			items[i].result = ERR_INVALID;
			snprintf(items[i].error, sizeof(items[i].error), "%s: listed twice", w[i].dn);
			continue;
		}
		if (!items[i].present && items[i].kind != DIR_GROUP) {
			rmdn[nrm] = w[i].dn;
			rmitem[nrm++] = i;
		}
	}

	/* 2. entries of owners and of user members of groups, and the groups
	 * present devices join */
	for (size_t i = 0; i < n; i++) {
		const struct dir_device *dev = &items[i].dev;
		size_t nnames = items[i].kind == DIR_GROUP ? items[i].nmember_users : 1;
		if (items[i].result != 0 || !items[i].present || items[i].kind == DIR_USER ||
		    (items[i].kind == DIR_GROUP && w[i].present == 0))
			continue;
		for (size_t k = 0; k < nnames; k++) {
			const char *name = items[i].kind == DIR_GROUP ? items[i].member_users[k] :
			    dev->owner;
			struct want tmp;
			size_t ui;
			if (name == NULL)
				continue;
			if ((r = user_want(&p, name, 1, &tmp)) == ERR_NOMEM)
				goto out;
			r = ERR_NOMEM;
			if (tmp.ndn == NULL || smap_get(&imap, tmp.ndn) >= 0)
				continue;	/* bad name (failed above), or an item */
			if (smap_put(&umap, tmp.ndn, nu, &ui) != 0)
				goto out;
			if (ui == nu)
				uw[nu++] = tmp;
			if (idxv_push(&udeps[ui], i) != 0)
				goto out;
		}
		if (items[i].kind != DIR_DEVICE)
			continue;
		for (size_t j = 0; j < dev->ngroups; j++) {
			char *gdn = NULL;
			long gi;
			if (dev->groups[j] == NULL || dir_group_dn(d, dev->groups[j], &gdn) != 0) {
				items[i].result = ERR_INVALID;
				snprintf(items[i].error, sizeof(items[i].error), "malformed group name");
				break;
			}
			if (ar_keep(&p.ar, gdn) == NULL ||
			    (gi = group_get(&p, &gmap, &gw, &ngw, &capgw, dev->groups[j], gdn)) < 0)
				goto out;
			if (smap_get(&imap, gw[gi].ndn) >= 0)
				continue;	/* a group item replaces its members */
			if (gw_push(&p, &gw[gi].adds, &gw[gi].nadds, &gw[gi].capadds, w[i].dn) != 0 ||
			    idxv_push(&gw[gi].deps, i) != 0)
				goto out;
		}
	}

	/* 3. reads, pipelined: own entries, owners, groups */
	for (size_t i = 0; i < n; i++)
		rd[i].dn = items[i].result == 0 ? w[i].dn : NULL;
	for (size_t u = 0; u < nu; u++)
		urd[u].dn = uw[u].dn;
	if ((r = read_many(d, rd, n, all_attrs)) != 0 || (r = read_many(d, urd, nu, user_attrs)) != 0)
		goto out;
	for (size_t off = 0; off < nrm; off += IN_FLIGHT) {
		size_t k = nrm - off < IN_FLIGHT ? nrm - off : IN_FLIGHT;
		if ((r = find_memberships(&p, rmdn + off, k, rmmsg + off)) != 0 ||
		    (r = collect_memberships(&p, &imap, &gmap, &gw, &ngw, &capgw, rmdn + off,
		    rmitem + off, rmmsg + off, k)) != 0)
			goto out;
	}
	/* a group losing a member is read whole; one only gaining members is
	 * read for those members only (values-return filter) */
	for (size_t off = 0; off < ngw; off += IN_FLIGHT) {
		size_t k = ngw - off < IN_FLIGHT ? ngw - off : IN_FLIGHT;
		for (size_t g = off; g < off + k; g++) {
			LDAPControl *c = NULL, *ctrls[2] = { NULL, NULL };
			char *mattrs[] = { "member", NULL };
			if (gw[g].nadds == 0 && gw[g].ndels == 0)
				continue;
			if (gw[g].ndels == 0) {
				if ((r = vrf_control(gw[g].adds, gw[g].nadds, &c)) != 0)
					goto out;
				ctrls[0] = c;
				r = read_send(d, &gw[g].rd, mattrs, ctrls);
				ldap_control_free(c);
			} else
				r = read_send(d, &gw[g].rd, group_attrs, NULL);
			if (r != 0)
				goto out;
		}
		for (size_t g = off; g < off + k; g++)
			if ((r = read_collect(d, &gw[g].rd)) != 0)
				goto out;
	}

	/* 4. the writes */
	r = ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		if (items[i].result != 0)
			continue;
		if (rd[i].lr != LDAP_SUCCESS) {
			items[i].result = ERR_LDAP;
			snprintf(items[i].error, sizeof(items[i].error), "%s: %s", w[i].dn,
			    ldap_err2string(rd[i].lr));
			continue;
		}
		if (plan_entry(&p, &w[i], rd[i].entry, (long)i) == -2)
			goto out;
	}
	for (size_t u = 0; u < nu; u++) {
		if (urd[u].lr != LDAP_SUCCESS) {
			if ((uop[u] = plan_op(&p, OP_ADD, uw[u].dn, NULL, DIR_CREATED, -1)) < 0)
				goto out;
			op_error(&p.ops[uop[u]], urd[u].lr, urd[u].diag);
		} else if ((uop[u] = plan_entry(&p, &uw[u], urd[u].entry, -1)) == -2)
			goto out;
	}
	for (size_t u = 0; u < nu; u++)
		for (size_t k = 0; uop[u] >= 0 && k < udeps[u].n; k++)
			if (idxv_push(&p.ops[uop[u]].deps, udeps[u].v[k]) != 0)
				goto out;
	for (size_t g = 0; g < ngw; g++) {
		long oi;
		if (gw[g].nadds == 0 && gw[g].ndels == 0)
			continue;
		if ((oi = plan_group_members(&p, &gw[g])) == -2)
			goto out;
		for (size_t k = 0; oi >= 0 && k < gw[g].deps.n; k++)
			if (idxv_push(&p.ops[oi].deps, gw[g].deps.v[k]) != 0)
				goto out;
	}

	/* 5. send them, and the outcome per item */
	if ((r = write_planned(&p)) != 0)
		goto out;
	settle(&p, items, n, rep);
	r = 0;
out:
	if (r == ERR_NOMEM)
		log_errx("out of memory");
	for (size_t i = 0; rd != NULL && i < n; i++)
		rd_clear(&rd[i]);
	for (size_t u = 0; urd != NULL && u < nu; u++)
		rd_clear(&urd[u]);
	for (size_t g = 0; gw != NULL && g < ngw; g++) {
		rd_clear(&gw[g].rd);
		free(gw[g].deps.v);
	}
	free(gw);
	free(w);
	free(uw);
	free(rd);
	free(urd);
	free(rmdn);
	free(rmitem);
	free(rmmsg);
	for (size_t u = 0; udeps != NULL && u < umax; u++)
		free(udeps[u].v);
	free(udeps);
	free(uop);
	smap_free(&imap);
	smap_free(&umap);
	smap_free(&gmap);
	plan_free(&p);
	return r;
}

/* ---------------------------------------------------------------------
 * dir_resync: every entry against every row.
 */
struct cur {
	const char *ndn;
	const char *dn;
	LDAPMessage *e;
	int matched;
};

struct subtree {
	LDAPMessage **pages;
	size_t npages, cappages;
	struct cur *c;
	size_t n, cap;
};

static int
subtree_add_page(struct subtree *t, LDAPMessage *res)
{
	if (t->npages == t->cappages) {
		size_t ncap = t->cappages ? t->cappages * 2 : 8;
		LDAPMessage **np = realloc(t->pages, ncap * sizeof(*np));
		if (np == NULL)
			return ERR_NOMEM;
		t->pages = np;
		t->cappages = ncap;
	}
	t->pages[t->npages++] = res;
	return 0;
}

/* Reads every child of base (paged) into t. A missing base is empty. */
static int
read_subtree(struct plan *p, const char *base, char **attrs, struct subtree *t)
{
	struct dir *d = p->d;
	struct berval cookie = { 0, NULL };
	struct timeval tv = { DIR_LONG_TIMEOUT_S, 0 };
	int r = 0;

	for (;;) {
		LDAPControl *pc = NULL, *ctrls[2] = { NULL, NULL }, **sctrls = NULL, *resp;
		LDAPMessage *res = NULL, *e;
		int lr, err = LDAP_OTHER;
		ber_int_t count;

		if (ldap_create_page_control(d->ld, SUBTREE_PAGE, &cookie, 0, &pc) != LDAP_SUCCESS) {
			r = ERR_NOMEM;
			break;
		}
		ctrls[0] = pc;
		lr = ldap_search_ext_s(d->ld, base, LDAP_SCOPE_ONELEVEL, "(objectClass=*)", attrs, 0,
		    ctrls, NULL, &tv, 0, &res);
		ldap_control_free(pc);
		if (lr == LDAP_NO_SUCH_OBJECT) {
			ldap_msgfree(res);
			break;
		}
		if (lr != LDAP_SUCCESS) {
			ldap_msgfree(res);
			r = dir_ldap_conn_lost(lr) ? conn_lost(d, "read", lr) : ERR_LDAP;
			if (r == ERR_LDAP)
				log_warnx("ldap read of %s: %s", base, ldap_err2string(lr));
			break;
		}
		if ((r = subtree_add_page(t, res)) != 0) {
			ldap_msgfree(res);
			break;
		}
		for (e = ldap_first_entry(d->ld, res); e != NULL; e = ldap_next_entry(d->ld, e)) {
			char *dn = ldap_get_dn(d->ld, e), *copy, *ndn;
			if (dn == NULL)
				continue;
			copy = ar_strdup(&p->ar, dn);
			ndn = ar_keep(&p->ar, dn_norm(dn, strlen(dn)));
			ldap_memfree(dn);
			if (copy == NULL || ndn == NULL) {
				r = ERR_NOMEM;
				break;
			}
			if (t->n == t->cap) {
				size_t ncap = t->cap ? t->cap * 2 : 256;
				struct cur *nc = realloc(t->c, ncap * sizeof(*nc));
				if (nc == NULL) {
					r = ERR_NOMEM;
					break;
				}
				t->c = nc;
				t->cap = ncap;
			}
			t->c[t->n++] = (struct cur){ .ndn = ndn, .dn = copy, .e = e };
		}
		if (r != 0)
			break;
		ldap_parse_result(d->ld, res, &err, NULL, NULL, NULL, &sctrls, 0);
		resp = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, sctrls, NULL);
		ber_memfree(cookie.bv_val);
		cookie.bv_val = NULL;
		cookie.bv_len = 0;
		if (resp != NULL)
			ldap_parse_pageresponse_control(d->ld, resp, &count, &cookie);
		ldap_controls_free(sctrls);
		if (cookie.bv_val == NULL || cookie.bv_len == 0)
			break;
	}
	ber_memfree(cookie.bv_val);
	return r;
}

static void
subtree_free(struct subtree *t)
{
	for (size_t i = 0; i < t->npages; i++)
		ldap_msgfree(t->pages[i]);
	free(t->pages);
	free(t->c);
	memset(t, 0, sizeof(*t));
}

int
dir_resync(struct dir *d, struct dir_item *items, size_t n, struct dir_report *rep)
{
	struct plan p = { .d = d };
	struct subtree st[3] = { 0 };
	struct want *w = NULL;
	struct smap cmap = { 0 };
	struct cur *all = NULL;
	size_t nall = 0;
	char *base = NULL;
	static const char *const ous[3] = { "ou=devices", "ou=people", "ou=groups" };
	char **attrs[3] = { device_attrs, user_attrs, group_attrs };
	int r = ERR_NOMEM;

	if (rep != NULL)
		memset(rep, 0, sizeof(*rep));
	if (d == NULL || d->broken)
		return ERR_UNAVAILABLE;
	items_reset(items, n);
	if ((w = calloc(n ? n : 1, sizeof(*w))) == NULL)
		goto out;
	for (int s = 0; s < 3; s++) {
		if (asprintf(&base, "%s,%s", ous[s], d->base) < 0) {
			base = NULL;
			goto out;
		}
		if ((r = read_subtree(&p, base, attrs[s], &st[s])) != 0)
			goto out;
		free(base);
		base = NULL;
		nall += st[s].n;
	}
	r = ERR_NOMEM;
	if ((all = calloc(nall ? nall : 1, sizeof(*all))) == NULL || smap_init(&cmap, nall + n) != 0)
		goto out;
	nall = 0;
	for (int s = 0; s < 3; s++)
		for (size_t i = 0; i < st[s].n; i++) {
			size_t at;
			all[nall] = st[s].c[i];
			if (smap_put(&cmap, all[nall].ndn, nall, &at) != 0)
				goto out;
			nall++;
		}

	for (size_t i = 0; i < n; i++) {
		long ci;
		if ((r = item_want(&p, &items[i], &w[i])) != 0)
			goto out;
		r = ERR_NOMEM;
		if (items[i].result != 0)
			continue;
		ci = smap_get(&cmap, w[i].ndn);
		if (ci >= 0 && all[ci].matched) {
			items[i].result = ERR_INVALID;
			snprintf(items[i].error, sizeof(items[i].error), "%s: listed twice", w[i].dn);
			continue;
		}
		if (ci >= 0)
			all[ci].matched = 1;
		if (plan_entry(&p, &w[i], ci >= 0 ? all[ci].e : NULL, (long)i) == -2)
			goto out;
	}
	/* devices the database does not have */
	for (size_t i = 0; i < st[0].n; i++) {
		long ci = smap_get(&cmap, st[0].c[i].ndn);
		if (ci >= 0 && !all[ci].matched &&
		    plan_op(&p, OP_DELETE, all[ci].dn, NULL, DIR_DELETED, -1) < 0)
			goto out;
	}
	if ((r = flush(d, p.ops, p.nops)) != 0)
		goto out;
	for (size_t i = 0; i < p.nops; i++)
		if (p.ops[i].lr != LDAP_SUCCESS && p.ops[i].own < 0)
			log_warnx("ldap resync: %s", p.ops[i].err);
	settle(&p, items, n, rep);
	r = 0;
out:
	if (r == ERR_NOMEM)
		log_errx("out of memory");
	free(base);
	free(w);
	free(all);
	smap_free(&cmap);
	for (int s = 0; s < 3; s++)
		subtree_free(&st[s]);
	plan_free(&p);
	return r;
}
