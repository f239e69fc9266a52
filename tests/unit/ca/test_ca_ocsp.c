/*
 * test_ca_ocsp.c: the OCSP responder certificate (profile, validity,
 * refusals) and the responder core — request parsing within its bounds,
 * good/revoked/unknown answers checked with OpenSSL's own OCSP client code
 * (OCSP_basic_verify against the CA) and the openssl command line, nonces,
 * foreign issuers, malformed and oversized requests, tryLater.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "ca/ca_int.h"
#include "ca_test.h"

#define MAX_AGE 300
#define NDEV 3				/* good, revoked, not in the table */

/* One CA (one-tier in ca[0], two-tier in ca[1]) with its responder and
 * three device certificates. */
struct ca_fix {
	char *base;
	const char *dir;
	struct config *cfg;
	struct ca_key *key;
	struct ca_ocsp_responder *rs;
	X509 *issuer, *root, *ocsp;
	X509 *dev[NDEV];
	char serial[NDEV][CA_SERIAL_HEX];
};

struct fixture {
	struct ca_fix ca[2];
};

/* The status table behind the look-up callback. */
struct table {
	size_t n;
	struct {
		char serial[CA_SERIAL_HEX];
		struct ca_ocsp_status st;
	} e[8];
	int calls;
	int fail;			/* an ERR_* code to return, or 0 */
};

static int
lookup(void *arg, const char serial_hex[CA_SERIAL_HEX], struct ca_ocsp_status *st)
{
	struct table *t = arg;

	t->calls++;
	assert_int_equal(strlen(serial_hex), 2 * CA_SERIAL_LEN);
	if (t->fail != 0)
		return t->fail;
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->e[i].serial, serial_hex) == 0) {
			*st = t->e[i].st;
			return 0;
		}
	st->status = CA_OCSP_UNKNOWN;
	return 0;
}

static X509 *
read_pem_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static X509 *
der_to_x509(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);

	assert_non_null(x);
	return x;
}

/* A device certificate from k. */
static X509 *
issue_dev(struct ca_key *k, char serial[CA_SERIAL_HEX])
{
	EVP_PKEY *pk = key_gen("EC", "P-256");
	uint8_t *spki = NULL, *der = NULL;
	size_t spkilen = 0, derlen = 0;
	struct ca_issue_req req;
	X509 *x;

	spki_of(pk, &spki, &spkilen);
	req = issue_req_make(spki, spkilen, 30);
	assert_int_equal(ca_key_issue(k, &req, &der, &derlen), 0);
	assert_int_equal(ca_cert_serial_hex(der, derlen, serial), 0);
	x = der_to_x509(der, derlen);
	free(der);
	free(spki);
	EVP_PKEY_free(pk);
	return x;
}

static void
ca_fix_setup(struct ca_fix *c, int two_tier)
{
	struct ca_init_opts o = { .two_tier = two_tier, .organization = "Example Corp" };
	char err[256], path[512];

	c->base = tmpdir_new();
	c->dir = pjoin(c->base, "ca");
	o.dir = c->dir;
	if (ca_init(&o, err, sizeof(err)) != 0)
		fail_msg("ca_init: %s", err);
	if (ca_ocsp_cert_make(c->dir, NULL, 30, NULL, err, sizeof(err)) != 0)
		fail_msg("ca_ocsp_cert_make: %s", err);
	c->cfg = cfg_write_load(c->base, "provd", 1, NULL, path, sizeof(path));
	assert_int_equal(ca_key_load(c->cfg, &c->key), 0);
	assert_int_equal(ca_ocsp_responder_load(c->dir, &c->rs), 0);
	c->issuer = read_pem_cert(pjoin(c->dir, "ca.crt"));
	c->root = read_pem_cert(pjoin(c->dir, "root.crt"));
	c->ocsp = read_pem_cert(pjoin(c->dir, "ocsp.crt"));
	for (int i = 0; i < NDEV; i++)
		c->dev[i] = issue_dev(c->key, c->serial[i]);
}

static void
ca_fix_teardown(struct ca_fix *c)
{
	for (int i = 0; i < NDEV; i++)
		X509_free(c->dev[i]);
	X509_free(c->issuer);
	X509_free(c->root);
	X509_free(c->ocsp);
	ca_ocsp_responder_free(c->rs);
	ca_key_free(c->key);
	config_free(c->cfg);
	tmpdir_rm(c->base);
}

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	ca_fix_setup(&f->ca[0], 0);
	ca_fix_setup(&f->ca[1], 1);
	*state = f;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fixture *f = *state;

	ca_fix_teardown(&f->ca[0]);
	ca_fix_teardown(&f->ca[1]);
	free(f);
	return 0;
}

/* The table for c: dev[0] good, dev[1] revoked (keyCompromise at 1.7e9),
 * dev[2] absent. */
static void
table_for(const struct ca_fix *c, struct table *t)
{
	memset(t, 0, sizeof(*t));
	memcpy(t->e[0].serial, c->serial[0], CA_SERIAL_HEX);
	t->e[0].st.status = CA_OCSP_GOOD;
	memcpy(t->e[1].serial, c->serial[1], CA_SERIAL_HEX);
	t->e[1].st.status = CA_OCSP_REVOKED;
	t->e[1].st.revoked_at = 1700000000;
	t->e[1].st.reason = 1;
	t->n = 2;
}

static void
req_to_der(OCSP_REQUEST *req, uint8_t **der, size_t *len)
{
	unsigned char *p;
	int n = i2d_OCSP_REQUEST(req, NULL);

	assert_true(n > 0);
	*der = malloc((size_t)n);
	assert_non_null(*der);
	p = *der;
	assert_int_equal(i2d_OCSP_REQUEST(req, &p), n);
	*len = (size_t)n;
}

/* A request about certs[0..n-1] issued by issuer, CertIDs under md, with a
 * random nonce of nonce_len bytes when nonce_len > 0. */
static OCSP_REQUEST *
req_new(X509 *issuer, X509 *const *certs, int n, const EVP_MD *md, int nonce_len)
{
	OCSP_REQUEST *req = OCSP_REQUEST_new();

	assert_non_null(req);
	for (int i = 0; i < n; i++) {
		OCSP_CERTID *id = OCSP_cert_to_id(md, certs[i], issuer);
		assert_non_null(id);
		assert_non_null(OCSP_request_add0_id(req, id));
	}
	if (nonce_len > 0)
		assert_int_equal(OCSP_request_add1_nonce(req, NULL, nonce_len), 1);
	return req;
}

/* Answers der; returns the responseStatus, *bs the basic response when
 * successful (caller frees). */
static int
answer(const struct ca_ocsp_responder *rs, const uint8_t *der, size_t len, int64_t now,
    int64_t max_age, struct table *t, OCSP_BASICRESP **bs, uint8_t **out, size_t *outlen)
{
	enum ca_ocsp_resp_status st = (enum ca_ocsp_resp_status)-1;
	uint8_t *resp = NULL;
	size_t rlen = 0;
	const unsigned char *p;
	OCSP_RESPONSE *r;
	int status;

	if (bs != NULL)
		*bs = NULL;
	assert_int_equal(ca_ocsp_answer(rs, der, len, now, max_age, lookup, t, &resp, &rlen, &st), 0);
	p = resp;
	r = d2i_OCSP_RESPONSE(NULL, &p, (long)rlen);
	assert_non_null(r);
	assert_ptr_equal(p, resp + rlen);
	status = OCSP_response_status(r);
	assert_int_equal(status, (int)st);
	if (status == OCSP_RESPONSE_STATUS_SUCCESSFUL && bs != NULL) {
		*bs = OCSP_response_get1_basic(r);
		assert_non_null(*bs);
	}
	OCSP_RESPONSE_free(r);
	if (out != NULL) {
		*out = resp;
		*outlen = rlen;
	} else {
		free(resp);
	}
	return status;
}

/* Answers req (converted to DER). */
static int
answer_req(const struct ca_ocsp_responder *rs, OCSP_REQUEST *req, int64_t now, struct table *t,
    OCSP_BASICRESP **bs)
{
	uint8_t *der = NULL;
	size_t len = 0;
	int st;

	req_to_der(req, &der, &len);
	st = answer(rs, der, len, now, MAX_AGE, t, bs, NULL, NULL);
	free(der);
	return st;
}

/* OCSP_basic_verify against c's root, the issuing CA as an untrusted
 * intermediate. */
static int
verify(const struct ca_fix *c, OCSP_BASICRESP *bs)
{
	X509_STORE *store = X509_STORE_new();
	STACK_OF(X509) *other = sk_X509_new_null();
	int r;

	assert_non_null(store);
	assert_non_null(other);
	assert_true(X509_STORE_add_cert(store, c->root));
	assert_true(sk_X509_push(other, c->issuer));
	r = OCSP_basic_verify(bs, other, store, 0);
	ERR_clear_error();
	sk_X509_free(other);
	X509_STORE_free(store);
	return r;
}

static int64_t
unix_of(const ASN1_TIME *t)
{
	int64_t u = -1;

	if (t == NULL)
		return 0;
	assert_int_equal(ca_asn1_time_to_unix(t, &u), 0);
	return u;
}

struct single_status {
	int status;			/* V_OCSP_CERTSTATUS_*, -1: not in the response */
	int reason;
	int64_t revoked_at, this_update, next_update;	/* 0: absent */
};

/* What bs says about cert (CertID under md). */
static struct single_status
find(OCSP_BASICRESP *bs, X509 *issuer, X509 *cert, const EVP_MD *md)
{
	OCSP_CERTID *id = OCSP_cert_to_id(md, cert, issuer);
	ASN1_GENERALIZEDTIME *rev = NULL, *tu = NULL, *nu = NULL;
	struct single_status s = { .status = -1, .reason = -1 };

	assert_non_null(id);
	if (OCSP_resp_find_status(bs, id, &s.status, &s.reason, &rev, &tu, &nu)) {
		s.revoked_at = unix_of(rev);
		s.this_update = unix_of(tu);
		s.next_update = unix_of(nu);
	} else {
		s.status = -1;
	}
	OCSP_CERTID_free(id);
	return s;
}

static void
assert_contains(const char *text, const char *part)
{
	if (strstr(text, part) == NULL)
		fail_msg("\"%s\" not found in:\n%s", part, text);
}

static char *
cert_text(const char *path)
{
	char *out = NULL;

	assert_int_equal(run_cmd(&out, "openssl x509 -in %s -noout -text", path), 0);
	return out;
}

/* ---------------------------------------------------------------------
 * The responder certificate.
 */
static void
check_profile(const struct ca_fix *c, const char *cn)
{
	X509 *x = c->ocsp;
	const ASN1_OCTET_STRING *ca_ski = X509_get0_subject_key_id(c->issuer);
	const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	int64_t nb = unix_of(X509_get0_notBefore(x)), na = unix_of(X509_get0_notAfter(x));
	int64_t now = (int64_t)time(NULL);
	char *text, want[128];
	int crit = -1, idx;
	struct stat st;

	/* extensions, read back by OpenSSL */
	assert_true(X509_get_extension_flags(x) & EXFLAG_XKUSAGE);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_OCSP_SIGN);
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	idx = X509_get_ext_by_NID(x, NID_key_usage, -1);
	assert_true(idx >= 0);
	assert_int_equal(X509_EXTENSION_get_critical(X509_get_ext(x, idx)), 1);
	assert_true(X509_get_ext_by_NID(x, NID_id_pkix_OCSP_noCheck, -1) >= 0);
	assert_int_equal(X509_check_ca(x), 0);
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(crit, 1);
	assert_false(bc->ca);
	BASIC_CONSTRAINTS_free(bc);
	assert_non_null(X509_get0_subject_key_id(x));
	assert_non_null(aki);
	assert_non_null(ca_ski);
	assert_int_equal(ASN1_OCTET_STRING_cmp(aki, ca_ski), 0);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(c->issuer)), 0);
	/* validity: from an hour ago, 30 days */
	assert_true(nb <= now - 3500 && nb >= now - 3700);
	assert_true(na >= now + 30 * 86400 - 100 && na <= now + 30 * 86400);
	/* key and file modes */
	assert_int_equal(stat(pjoin(c->dir, "ocsp.key"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(pjoin(c->dir, "ocsp.crt"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	text = cert_text(pjoin(c->dir, "ocsp.crt"));
	snprintf(want, sizeof(want), "Subject: O = Example Corp, CN = %s", cn);
	assert_contains(text, want);
	assert_contains(text, "ASN1 OID: prime256v1");
	assert_contains(text, "OCSP No Check");
	assert_contains(text, "X509v3 Extended Key Usage: \n                OCSP Signing");
	free(text);

	/* a chain to the root, fit for signing OCSP responses */
	assert_non_null(store);
	assert_non_null(ctx);
	assert_true(X509_STORE_add_cert(store, c->root));
	assert_true(sk_X509_push(untrusted, c->issuer));
	assert_true(X509_STORE_CTX_init(ctx, store, x, untrusted));
	assert_true(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_OCSP_HELPER));
	assert_int_equal(X509_verify_cert(ctx), 1);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_free(untrusted);
}

static void
test_cert_profile(void **state)
{
	struct fixture *f = *state;

	check_profile(&f->ca[0], "provd Root CA OCSP Responder");
	check_profile(&f->ca[1], "provd Issuing CA OCSP Responder");
}

static void
test_cert_make(void **state)
{
	char *base = tmpdir_new(), err[256], *k1, *k2, *c1, *c2;
	const char *dir = pjoin(base, "ca");
	struct ca_init_opts o = { .dir = dir, .days = 10, .common_name = "Short Root CA" };
	struct ca_ocsp_responder *rs = NULL;
	int64_t na = 0, nb, rna;
	X509 *ca, *x;
	char *text;
	(void)state;

	/* no CA yet */
	assert_int_equal(ca_ocsp_cert_make(dir, NULL, 30, NULL, err, sizeof(err)), ERR_NOT_FOUND);
	assert_non_null(strstr(err, "provd ca init"));
	assert_int_equal(ca_ocsp_cert_make(NULL, NULL, 30, NULL, err, sizeof(err)), ERR_INVALID);
	assert_int_equal(ca_ocsp_cert_make("", NULL, 30, NULL, err, sizeof(err)), ERR_INVALID);

	assert_int_equal(ca_init(&o, err, sizeof(err)), 0);
	/* days out of range */
	assert_int_equal(ca_ocsp_cert_make(dir, NULL, 0, NULL, err, sizeof(err)), ERR_INVALID);
	assert_int_equal(ca_ocsp_cert_make(dir, NULL, CA_OCSP_DAYS_MAX + 1, NULL, err, sizeof(err)),
	    ERR_INVALID);
	assert_int_equal(ca_ocsp_responder_load(dir, &rs), ERR_NOT_FOUND);
	assert_null(rs);

	/* never past the CA (10 days), whatever was asked */
	assert_int_equal(ca_ocsp_cert_make(dir, NULL, 30, &na, err, sizeof(err)), 0);
	ca = read_pem_cert(pjoin(dir, "ca.crt"));
	x = read_pem_cert(pjoin(dir, "ocsp.crt"));
	assert_int_equal(na, unix_of(X509_get0_notAfter(ca)));
	assert_int_equal(na, unix_of(X509_get0_notAfter(x)));
	X509_free(x);
	assert_int_equal(ca_ocsp_responder_load(dir, &rs), 0);
	ca_ocsp_responder_validity(rs, &nb, &rna);
	assert_int_equal(rna, na);
	ca_ocsp_responder_free(rs);
	text = cert_text(pjoin(dir, "ocsp.crt"));
	assert_contains(text, "Subject: CN = Short Root CA OCSP Responder");
	free(text);

	/* a renewal replaces both files */
	assert_int_equal(file_read_all(pjoin(dir, "ocsp.key"), 1 << 16, &k1, NULL), 0);
	assert_int_equal(file_read_all(pjoin(dir, "ocsp.crt"), 1 << 16, &c1, NULL), 0);
	assert_int_equal(ca_ocsp_cert_make(dir, NULL, 1, &na, err, sizeof(err)), 0);
	assert_true(na <= (int64_t)time(NULL) + 86400 && na > (int64_t)time(NULL) + 86300);
	assert_int_equal(file_read_all(pjoin(dir, "ocsp.key"), 1 << 16, &k2, NULL), 0);
	assert_int_equal(file_read_all(pjoin(dir, "ocsp.crt"), 1 << 16, &c2, NULL), 0);
	assert_string_not_equal(k1, k2);
	assert_string_not_equal(c1, c2);
	free(k1);
	free(k2);
	free(c1);
	free(c2);

	/* a name too long to extend: just "OCSP Responder" */
	o.common_name = "A Root CA whose name is already sixty-one bytes long, or so..";
	o.force = 1;
	assert_int_equal(ca_init(&o, err, sizeof(err)), 0);
	assert_int_equal(ca_ocsp_cert_make(dir, NULL, 30, NULL, err, sizeof(err)), 0);
	text = cert_text(pjoin(dir, "ocsp.crt"));
	assert_contains(text, "Subject: CN = OCSP Responder\n");
	free(text);

	/* ca.key that does not match ca.crt */
	X509_free(ca);
	write_bytes(pjoin(dir, "ca.key"), "not a key", 9);
	assert_int_not_equal(ca_ocsp_cert_make(dir, NULL, 30, NULL, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "ca.key"));
	tmpdir_rm(base);
}

/* An imported RSA CA without a subject key identifier: the responder's
 * AKI is then the SHA-1 of the CA key, and its responses verify. */
static void
test_cert_imported_ca(void **state)
{
	char *base = tmpdir_new(), err[256], *out = NULL, cnf[512];
	const char *dir = pjoin(base, "ca");
	struct ca_init_opts o = { .dir = dir };
	struct ca_ocsp_responder *rs = NULL;
	struct ca_fix c = { 0 };
	struct table t = { 0 };
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	OCSP_BASICRESP *bs = NULL;
	OCSP_REQUEST *req;
	X509 *ca, *x;
	(void)state;

	snprintf(cnf, sizeof(cnf), "[req]\ndistinguished_name = dn\nprompt = no\n"
	    "[dn]\nCN = Imported RSA CA\n[ext]\nbasicConstraints = critical,CA:TRUE\n"
	    "keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = none\n"
	    "authorityKeyIdentifier = none\n");
	write_bytes(pjoin(base, "req.cnf"), cnf, strlen(cnf));
	if (run_cmd(&out, "cd %s && openssl req -x509 -config req.cnf -extensions ext "
	    "-newkey rsa:2048 -nodes -keyout imp.key -out imp.crt -days 100", base) != 0)
		fail_msg("openssl req: %s", out);
	free(out);
	o.import_cert = pjoin(base, "imp.crt");
	o.import_key = pjoin(base, "imp.key");
	assert_int_equal(ca_init(&o, err, sizeof(err)), 0);
	assert_int_equal(ca_ocsp_cert_make(dir, NULL, 30, NULL, err, sizeof(err)), 0);
	ca = read_pem_cert(pjoin(dir, "ca.crt"));
	x = read_pem_cert(pjoin(dir, "ocsp.crt"));
	assert_null(X509_get0_subject_key_id(ca));
	assert_true(X509_pubkey_digest(ca, EVP_sha1(), md, &mdlen));
	assert_non_null(X509_get0_authority_key_id(x));
	assert_int_equal(ASN1_STRING_length(X509_get0_authority_key_id(x)), (int)mdlen);
	assert_memory_equal(ASN1_STRING_get0_data(X509_get0_authority_key_id(x)), md, mdlen);
	assert_int_equal(ca_ocsp_responder_load(dir, &rs), 0);

	/* a response about a certificate of this CA verifies */
	c.issuer = ca;
	c.root = ca;
	req = req_new(ca, &x, 1, EVP_sha1(), 8);
	assert_int_equal(answer_req(rs, req, (int64_t)time(NULL), &t, &bs), 0);
	assert_int_equal(verify(&c, bs), 1);
	assert_int_equal(find(bs, ca, x, EVP_sha1()).status, V_OCSP_CERTSTATUS_UNKNOWN);
	assert_int_equal(t.calls, 1);
	OCSP_BASICRESP_free(bs);
	OCSP_REQUEST_free(req);
	ca_ocsp_responder_free(rs);
	X509_free(ca);
	X509_free(x);
	tmpdir_rm(base);
}

static void
copy_file(const char *from, const char *to)
{
	char *buf = NULL;
	size_t len = 0;

	assert_int_equal(file_read_all(from, 1 << 20, &buf, &len), 0);
	write_bytes(to, buf, len);
	free(buf);
}

static void
test_responder_load_errors(void **state)
{
	struct fixture *f = *state;
	char *base = tmpdir_new();
	struct ca_ocsp_responder *rs = (struct ca_ocsp_responder *)1;
	const char *a = f->ca[0].dir, *b = f->ca[1].dir;

	/* nothing there */
	assert_int_equal(ca_ocsp_responder_load(base, &rs), ERR_NOT_FOUND);
	assert_null(rs);
	/* only the certificate */
	copy_file(pjoin(a, "ocsp.crt"), pjoin(base, "ocsp.crt"));
	assert_int_equal(ca_ocsp_responder_load(base, &rs), ERR_NOT_FOUND);
	/* a key that is not the certificate's */
	copy_file(pjoin(a, "ca.crt"), pjoin(base, "ca.crt"));
	copy_file(pjoin(b, "ocsp.key"), pjoin(base, "ocsp.key"));
	assert_int_equal(ca_ocsp_responder_load(base, &rs), ERR_CONFIG);
	assert_null(rs);
	/* the right pair, but ca.crt is another CA (the CA was replaced) */
	copy_file(pjoin(a, "ocsp.key"), pjoin(base, "ocsp.key"));
	assert_int_equal(ca_ocsp_responder_load(base, &rs), 0);
	ca_ocsp_responder_free(rs);
	copy_file(pjoin(b, "ca.crt"), pjoin(base, "ca.crt"));
	assert_int_equal(ca_ocsp_responder_load(base, &rs), ERR_CONFIG);
	/* no ca.crt */
	assert_int_equal(remove(pjoin(base, "ca.crt")), 0);
	assert_int_not_equal(ca_ocsp_responder_load(base, &rs), 0);
	/* a certificate without OCSP signing: the CA's own, with its key */
	copy_file(pjoin(a, "ca.crt"), pjoin(base, "ca.crt"));
	copy_file(pjoin(a, "ca.crt"), pjoin(base, "ocsp.crt"));
	copy_file(pjoin(a, "ca.key"), pjoin(base, "ocsp.key"));
	assert_int_equal(ca_ocsp_responder_load(base, &rs), ERR_CONFIG);
	/* garbage */
	write_bytes(pjoin(base, "ocsp.key"), "garbage", 7);
	assert_int_equal(ca_ocsp_responder_load(base, &rs), ERR_CONFIG);
	assert_null(rs);
	ca_ocsp_responder_free(NULL);
	tmpdir_rm(base);
}

static void
test_renew_due(void **state)
{
	struct fixture *f = *state;
	const struct ca_ocsp_responder *rs = f->ca[0].rs;
	int64_t nb, na, third;

	ca_ocsp_responder_validity(rs, &nb, &na);
	third = (na - nb) / 3;
	assert_int_equal(ca_ocsp_responder_renew_due(rs, (int64_t)time(NULL)), 0);
	assert_int_equal(ca_ocsp_responder_renew_due(rs, na - third - 1), 0);
	assert_int_equal(ca_ocsp_responder_renew_due(rs, na - third), 1);
	assert_int_equal(ca_ocsp_responder_renew_due(rs, na + 1), 1);
}

/* ---------------------------------------------------------------------
 * Requests.
 */
static void
test_parse(void **state)
{
	struct fixture *f = *state;
	struct ca_fix *c = &f->ca[0];
	struct ca_ocsp_request *q = NULL;
	OCSP_REQUEST *req = req_new(c->issuer, c->dev, NDEV, EVP_sha1(), 0);
	uint8_t *der = NULL, *idder = NULL;
	const uint8_t *id;
	size_t len = 0, idlen = 0;
	char serial[CA_SERIAL_HEX];
	unsigned char *p;

	req_to_der(req, &der, &len);
	assert_int_equal(ca_ocsp_request_parse(der, len, &q), 0);
	assert_int_equal(ca_ocsp_request_count(q), NDEV);
	assert_int_equal(ca_ocsp_request_has_nonce(q), 0);
	for (size_t i = 0; i < NDEV; i++) {
		OCSP_CERTID *cid = OCSP_cert_to_id(EVP_sha1(), c->dev[i], c->issuer);
		int n = i2d_OCSP_CERTID(cid, NULL);
		assert_int_equal(ca_ocsp_request_serial(q, i, serial), 0);
		assert_string_equal(serial, c->serial[i]);
		ca_ocsp_request_certid(q, i, &id, &idlen);
		assert_int_equal(idlen, (size_t)n);
		idder = malloc((size_t)n);
		p = idder;
		assert_int_equal(i2d_OCSP_CERTID(cid, &p), n);
		assert_memory_equal(id, idder, idlen);
		free(idder);
		OCSP_CERTID_free(cid);
	}
	assert_int_equal(ca_ocsp_request_serial(q, NDEV, serial), ERR_NOT_FOUND);
	ca_ocsp_request_certid(q, NDEV, &id, &idlen);
	assert_null(id);
	assert_int_equal(idlen, 0);
	ca_ocsp_request_free(q);
	ca_ocsp_request_free(NULL);
	free(der);
	OCSP_REQUEST_free(req);

	/* with a nonce */
	req = req_new(c->issuer, c->dev, 1, EVP_sha256(), 16);
	req_to_der(req, &der, &len);
	assert_int_equal(ca_ocsp_request_parse(der, len, &q), 0);
	assert_int_equal(ca_ocsp_request_has_nonce(q), 1);
	ca_ocsp_request_free(q);
	free(der);
	OCSP_REQUEST_free(req);
}

/* A request for one CertID with the given serial (bytes, big-endian;
 * negative when neg). */
static OCSP_REQUEST *
req_serial(X509 *issuer, const uint8_t *serial, size_t len, int neg)
{
	OCSP_REQUEST *req = OCSP_REQUEST_new();
	BIGNUM *bn = BN_bin2bn(serial, (int)len, NULL);
	ASN1_INTEGER *ai;
	OCSP_CERTID *id;

	assert_non_null(bn);
	BN_set_negative(bn, neg);
	ai = BN_to_ASN1_INTEGER(bn, NULL);
	assert_non_null(ai);
	id = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(issuer),
	    X509_get0_pubkey_bitstr(issuer), ai);
	assert_non_null(id);
	assert_non_null(OCSP_request_add0_id(req, id));
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return req;
}

static void
test_serials(void **state)
{
	struct fixture *f = *state;
	struct ca_fix *c = &f->ca[0];
	static const uint8_t lead0[CA_SERIAL_LEN] = { 0x00, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
		11, 12, 13, 14 };
	static const uint8_t big[CA_SERIAL_LEN + 1] = { 0x01 };
	static const uint8_t zero[1] = { 0 };
	struct ca_ocsp_request *q = NULL;
	struct table t = { 0 };
	OCSP_BASICRESP *bs = NULL;
	OCSP_REQUEST *req;
	uint8_t *der;
	size_t len;
	char serial[CA_SERIAL_HEX];

	/* a leading zero byte is kept in the 32 digits */
	req = req_serial(c->issuer, lead0, sizeof(lead0), 0);
	req_to_der(req, &der, &len);
	assert_int_equal(ca_ocsp_request_parse(der, len, &q), 0);
	assert_int_equal(ca_ocsp_request_serial(q, 0, serial), 0);
	assert_string_equal(serial, "007f0102030405060708090a0b0c0d0e");
	ca_ocsp_request_free(q);
	free(der);
	OCSP_REQUEST_free(req);

	/* serials that cannot be ours: unknown without a look-up */
	req = req_serial(c->issuer, big, sizeof(big), 0);
	assert_int_equal(answer_req(c->rs, req, (int64_t)time(NULL), &t, &bs), 0);
	assert_int_equal(OCSP_resp_count(bs), 1);
	OCSP_BASICRESP_free(bs);
	req_to_der(req, &der, &len);
	assert_int_equal(ca_ocsp_request_parse(der, len, &q), 0);
	assert_int_equal(ca_ocsp_request_serial(q, 0, serial), ERR_NOT_FOUND);
	ca_ocsp_request_free(q);
	free(der);
	OCSP_REQUEST_free(req);
	req = req_serial(c->issuer, lead0 + 1, 8, 1);
	assert_int_equal(answer_req(c->rs, req, (int64_t)time(NULL), &t, NULL), 0);
	OCSP_REQUEST_free(req);
	req = req_serial(c->issuer, zero, sizeof(zero), 0);
	assert_int_equal(answer_req(c->rs, req, (int64_t)time(NULL), &t, NULL), 0);
	OCSP_REQUEST_free(req);
	assert_int_equal(t.calls, 0);
}

/* ---------------------------------------------------------------------
 * Responses.
 */
static void
check_good_revoked_unknown(struct ca_fix *c, const EVP_MD *md)
{
	struct table t;
	OCSP_BASICRESP *bs = NULL;
	OCSP_REQUEST *req = req_new(c->issuer, c->dev, NDEV, md, 0);
	int64_t now = (int64_t)time(NULL) - 10;
	struct single_status s;
	const STACK_OF(X509) *certs;
	const ASN1_OCTET_STRING *byname_key = NULL;
	const X509_NAME *byname = NULL;

	table_for(c, &t);
	assert_int_equal(answer_req(c->rs, req, now, &t, &bs), OCSP_RESPONSE_STATUS_SUCCESSFUL);
	assert_int_equal(t.calls, NDEV);
	assert_int_equal(verify(c, bs), 1);
	assert_int_equal(OCSP_resp_count(bs), NDEV);

	s = find(bs, c->issuer, c->dev[0], md);
	assert_int_equal(s.status, V_OCSP_CERTSTATUS_GOOD);
	assert_int_equal(s.this_update, now);
	assert_int_equal(s.next_update, now + MAX_AGE);
	s = find(bs, c->issuer, c->dev[1], md);
	assert_int_equal(s.status, V_OCSP_CERTSTATUS_REVOKED);
	assert_int_equal(s.reason, OCSP_REVOKED_STATUS_KEYCOMPROMISE);
	assert_int_equal(s.revoked_at, 1700000000);
	s = find(bs, c->issuer, c->dev[2], md);
	assert_int_equal(s.status, V_OCSP_CERTSTATUS_UNKNOWN);
	/* what clients check: thisUpdate in the past, nextUpdate ahead */
	ASN1_GENERALIZEDTIME *tu = NULL, *nu = NULL;
	assert_int_equal(OCSP_single_get0_status(OCSP_resp_get0(bs, 0), NULL, NULL, &tu, &nu),
	    V_OCSP_CERTSTATUS_GOOD);
	assert_int_equal(OCSP_check_validity(tu, nu, 300, -1), 1);

	/* the responder's certificate is in it, named by key */
	certs = OCSP_resp_get0_certs(bs);
	assert_int_equal(sk_X509_num(certs), 1);
	assert_int_equal(X509_cmp(sk_X509_value(certs, 0), c->ocsp), 0);
	assert_true(OCSP_resp_get0_id(bs, &byname_key, &byname));
	assert_non_null(byname_key);
	assert_null(byname);
	assert_int_equal(OCSP_BASICRESP_get_ext_count(bs), 0);	/* no nonce asked, none given */
	OCSP_BASICRESP_free(bs);
	OCSP_REQUEST_free(req);
}

static void
test_good_revoked_unknown(void **state)
{
	struct fixture *f = *state;

	check_good_revoked_unknown(&f->ca[0], EVP_sha1());
	check_good_revoked_unknown(&f->ca[0], EVP_sha256());
	check_good_revoked_unknown(&f->ca[0], EVP_sha384());
	check_good_revoked_unknown(&f->ca[0], EVP_sha512());
	check_good_revoked_unknown(&f->ca[1], EVP_sha1());
	check_good_revoked_unknown(&f->ca[1], EVP_sha256());
}

static void
test_revoked_reasons(void **state)
{
	struct fixture *f = *state;
	struct ca_fix *c = &f->ca[0];
	static const struct { int in, out; } cases[] = {
		{ 0, OCSP_REVOKED_STATUS_NOSTATUS },	/* unspecified: no reason, as on the CRL */
		{ -1, OCSP_REVOKED_STATUS_NOSTATUS },
		{ 4, OCSP_REVOKED_STATUS_SUPERSEDED },
		{ 5, OCSP_REVOKED_STATUS_CESSATIONOFOPERATION },
		{ 7, OCSP_REVOKED_STATUS_NOSTATUS },	/* not a reason */
		{ 10, 10 },
		{ 11, OCSP_REVOKED_STATUS_NOSTATUS },
	};
	OCSP_REQUEST *req = req_new(c->issuer, c->dev, 1, EVP_sha1(), 0);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct table t = { .n = 1 };
		OCSP_BASICRESP *bs = NULL;
		struct single_status s;

		memcpy(t.e[0].serial, c->serial[0], CA_SERIAL_HEX);
		t.e[0].st.status = CA_OCSP_REVOKED;
		t.e[0].st.revoked_at = 1600000000;
		t.e[0].st.reason = cases[i].in;
		assert_int_equal(answer_req(c->rs, req, (int64_t)time(NULL), &t, &bs), 0);
		s = find(bs, c->issuer, c->dev[0], EVP_sha1());
		assert_int_equal(s.status, V_OCSP_CERTSTATUS_REVOKED);
		assert_int_equal(s.reason, cases[i].out);
		assert_int_equal(s.revoked_at, 1600000000);
		OCSP_BASICRESP_free(bs);
	}
	OCSP_REQUEST_free(req);
}

static void
test_max_age_zero(void **state)
{
	struct fixture *f = *state;
	struct ca_fix *c = &f->ca[0];
	OCSP_REQUEST *req = req_new(c->issuer, c->dev, 1, EVP_sha1(), 0);
	OCSP_BASICRESP *bs = NULL;
	struct table t;
	uint8_t *der;
	size_t len;

	table_for(c, &t);
	req_to_der(req, &der, &len);
	assert_int_equal(answer(c->rs, der, len, (int64_t)time(NULL), 0, &t, &bs, NULL, NULL), 0);
	assert_int_equal(find(bs, c->issuer, c->dev[0], EVP_sha1()).next_update, 0);
	OCSP_BASICRESP_free(bs);
	free(der);
	OCSP_REQUEST_free(req);
}

/* A request with a nonce extension whose value is exactly value. */
static OCSP_REQUEST *
req_raw_nonce(struct ca_fix *c, const uint8_t *value, int len, int twice)
{
	OCSP_REQUEST *req = req_new(c->issuer, c->dev, 1, EVP_sha1(), 0);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();

	assert_non_null(os);
	assert_true(ASN1_OCTET_STRING_set(os, value, len));
	for (int i = 0; i <= twice; i++) {
		X509_EXTENSION *ext = X509_EXTENSION_create_by_NID(NULL, NID_id_pkix_OCSP_Nonce, 0, os);
		assert_non_null(ext);
		assert_true(OCSP_REQUEST_add_ext(req, ext, -1));
		X509_EXTENSION_free(ext);
	}
	ASN1_OCTET_STRING_free(os);
	return req;
}

static void
test_nonce(void **state)
{
	struct fixture *f = *state;
	struct ca_fix *c = &f->ca[0];
	static const uint8_t empty[] = { 0x04, 0x00 }, raw[] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	static const uint8_t trailing[] = { 0x04, 0x01, 0xaa, 0x00 };
	static const int ok_lens[] = { 1, 16, 32 };
	struct table t;
	OCSP_BASICRESP *bs = NULL;
	OCSP_REQUEST *req;

	table_for(c, &t);
	for (size_t i = 0; i < sizeof(ok_lens) / sizeof(ok_lens[0]); i++) {
		req = req_new(c->issuer, c->dev, 2, EVP_sha1(), ok_lens[i]);
		assert_int_equal(answer_req(c->rs, req, (int64_t)time(NULL), &t, &bs), 0);
		assert_int_equal(OCSP_check_nonce(req, bs), 1);
		assert_int_equal(verify(c, bs), 1);
		OCSP_BASICRESP_free(bs);
		OCSP_REQUEST_free(req);
	}
	/* RFC 8954: more than 32 bytes is malformed */
	req = req_new(c->issuer, c->dev, 1, EVP_sha1(), 33);
	assert_int_equal(answer_req(c->rs, req, (int64_t)time(NULL), &t, NULL),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	OCSP_REQUEST_free(req);
	/* empty, not an OCTET STRING, bytes after it, twice */
	req = req_raw_nonce(c, empty, sizeof(empty), 0);
	assert_int_equal(answer_req(c->rs, req, (int64_t)time(NULL), &t, NULL),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	OCSP_REQUEST_free(req);
	req = req_raw_nonce(c, raw, sizeof(raw), 0);
	assert_int_equal(answer_req(c->rs, req, (int64_t)time(NULL), &t, NULL),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	OCSP_REQUEST_free(req);
	req = req_raw_nonce(c, trailing, sizeof(trailing), 0);
	assert_int_equal(answer_req(c->rs, req, (int64_t)time(NULL), &t, NULL),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	OCSP_REQUEST_free(req);
	req = req_raw_nonce(c, trailing, 3, 1);
	assert_int_equal(answer_req(c->rs, req, (int64_t)time(NULL), &t, NULL),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	OCSP_REQUEST_free(req);
	/* the same nonce once is fine */
	req = req_raw_nonce(c, trailing, 3, 0);
	assert_int_equal(answer_req(c->rs, req, (int64_t)time(NULL), &t, &bs), 0);
	assert_int_equal(OCSP_check_nonce(req, bs), 1);
	OCSP_BASICRESP_free(bs);
	OCSP_REQUEST_free(req);
}

static void
test_wrong_issuer(void **state)
{
	struct fixture *f = *state;
	struct ca_fix *a = &f->ca[0], *b = &f->ca[1];
	struct table t;
	OCSP_BASICRESP *bs = NULL;
	OCSP_REQUEST *req;
	OCSP_CERTID *id;
	X509_NAME *other = X509_NAME_new();
	ASN1_INTEGER *serial;

	/* b's certificates asked of a's responder, under a's serials even */
	table_for(a, &t);
	req = req_new(b->issuer, b->dev, NDEV, EVP_sha1(), 0);
	assert_int_equal(answer_req(a->rs, req, (int64_t)time(NULL), &t, &bs), 0);
	assert_int_equal(t.calls, 0);
	for (int i = 0; i < NDEV; i++)
		assert_int_equal(find(bs, b->issuer, b->dev[i], EVP_sha1()).status,
		    V_OCSP_CERTSTATUS_UNKNOWN);
	OCSP_BASICRESP_free(bs);
	OCSP_REQUEST_free(req);

	/* a's key hash with another name hash, a's good serial */
	assert_true(X509_NAME_add_entry_by_txt(other, "CN", MBSTRING_ASC,
	    (const unsigned char *)"Impostor", -1, -1, 0));
	serial = ASN1_INTEGER_dup(X509_get0_serialNumber(a->dev[0]));
	id = OCSP_cert_id_new(EVP_sha1(), other, X509_get0_pubkey_bitstr(a->issuer), serial);
	assert_non_null(id);
	req = OCSP_REQUEST_new();
	assert_non_null(OCSP_request_add0_id(req, id));
	assert_int_equal(answer_req(a->rs, req, (int64_t)time(NULL), &t, &bs), 0);
	assert_int_equal(t.calls, 0);
	assert_int_equal(OCSP_single_get0_status(OCSP_resp_get0(bs, 0), NULL, NULL, NULL, NULL),
	    V_OCSP_CERTSTATUS_UNKNOWN);
	OCSP_BASICRESP_free(bs);
	OCSP_REQUEST_free(req);

	/* the right issuer under a hash algorithm we do not match */
	req = req_new(a->issuer, a->dev, 1, EVP_sha224(), 0);
	assert_int_equal(answer_req(a->rs, req, (int64_t)time(NULL), &t, &bs), 0);
	assert_int_equal(t.calls, 0);
	assert_int_equal(find(bs, a->issuer, a->dev[0], EVP_sha224()).status,
	    V_OCSP_CERTSTATUS_UNKNOWN);
	OCSP_BASICRESP_free(bs);
	OCSP_REQUEST_free(req);
	ASN1_INTEGER_free(serial);
	X509_NAME_free(other);
}

/* DER of an OCSPRequest for a's first device with a non-critical
 * extension of pad bytes. */
static void
padded_request(struct ca_fix *c, int pad, int critical, uint8_t **der, size_t *len)
{
	OCSP_REQUEST *req = req_new(c->issuer, c->dev, 1, EVP_sha1(), 0);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	uint8_t *buf = calloc(1, (size_t)pad + 1);
	X509_EXTENSION *ext;
	ASN1_OBJECT *obj = OBJ_txt2obj("1.3.6.1.4.1.99999.1", 1);

	assert_non_null(os);
	assert_non_null(buf);
	assert_non_null(obj);
	assert_true(ASN1_OCTET_STRING_set(os, buf, pad));
	ext = X509_EXTENSION_create_by_OBJ(NULL, obj, critical, os);
	assert_non_null(ext);
	assert_true(OCSP_REQUEST_add_ext(req, ext, -1));
	req_to_der(req, der, len);
	X509_EXTENSION_free(ext);
	ASN1_OBJECT_free(obj);
	ASN1_OCTET_STRING_free(os);
	free(buf);
	OCSP_REQUEST_free(req);
}

static void
test_size_bound(void **state)
{
	struct fixture *f = *state;
	struct ca_fix *c = &f->ca[0];
	struct ca_ocsp_request *q = NULL;
	struct table t;
	uint8_t *der = NULL;
	size_t len = 0;
	int pad = 8000;

	table_for(c, &t);
	/* find the padding that makes the request exactly CA_OCSP_MAX_REQUEST */
	for (int i = 0; i < 64; i++) {
		padded_request(c, pad, 0, &der, &len);
		if (len == CA_OCSP_MAX_REQUEST)
			break;
		pad += (int)CA_OCSP_MAX_REQUEST - (int)len;
		free(der);
		der = NULL;
	}
	assert_int_equal(len, CA_OCSP_MAX_REQUEST);
	assert_int_equal(ca_ocsp_request_parse(der, len, &q), 0);
	ca_ocsp_request_free(q);
	assert_int_equal(answer(c->rs, der, len, (int64_t)time(NULL), MAX_AGE, &t, NULL, NULL, NULL),
	    OCSP_RESPONSE_STATUS_SUCCESSFUL);
	free(der);
	padded_request(c, pad + 1, 0, &der, &len);
	assert_int_equal(len, CA_OCSP_MAX_REQUEST + 1);
	assert_int_equal(ca_ocsp_request_parse(der, len, &q), ERR_TOO_BIG);
	assert_null(q);
	assert_int_equal(answer(c->rs, der, len, (int64_t)time(NULL), MAX_AGE, &t, NULL, NULL, NULL),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	free(der);
	/* a critical extension we do not know */
	padded_request(c, 4, 1, &der, &len);
	assert_int_equal(ca_ocsp_request_parse(der, len, &q), ERR_INVALID);
	free(der);
}

static void
test_malformed(void **state)
{
	struct fixture *f = *state;
	struct ca_fix *c = &f->ca[0];
	static const uint8_t garbage[] = "this is not DER";
	static const uint8_t malformed_der[] = { 0x30, 0x03, 0x0a, 0x01, 0x01 };
	X509 *many[CA_OCSP_MAX_SINGLE + 1];
	struct ca_ocsp_request *q = NULL;
	struct table t;
	OCSP_REQUEST *req;
	OCSP_BASICRESP *bs = NULL;
	uint8_t *der = NULL, *resp = NULL, *bad;
	size_t len = 0, rlen = 0;

	table_for(c, &t);
	/* garbage: exactly the 5-byte malformedRequest response */
	assert_int_equal(answer(c->rs, garbage, sizeof(garbage) - 1, (int64_t)time(NULL), MAX_AGE,
	    &t, NULL, &resp, &rlen), OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	assert_int_equal(rlen, sizeof(malformed_der));
	assert_memory_equal(resp, malformed_der, rlen);
	free(resp);
	assert_int_equal(ca_ocsp_request_parse(NULL, 0, &q), ERR_INVALID);
	assert_int_equal(ca_ocsp_request_parse(garbage, 0, &q), ERR_INVALID);
	assert_int_equal(answer(c->rs, garbage, 0, (int64_t)time(NULL), MAX_AGE, &t, NULL, NULL,
	    NULL), OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);

	/* a good request, truncated at every length and with a byte after it */
	req = req_new(c->issuer, c->dev, 1, EVP_sha1(), 16);
	req_to_der(req, &der, &len);
	OCSP_REQUEST_free(req);
	for (size_t n = 0; n < len; n++) {
		assert_int_equal(ca_ocsp_request_parse(der, n, &q), ERR_INVALID);
		assert_null(q);
	}
	bad = malloc(len + 1);
	memcpy(bad, der, len);
	bad[len] = 0;
	assert_int_equal(ca_ocsp_request_parse(bad, len + 1, &q), ERR_INVALID);
	/* every single byte flipped: refused or answered, never a crash */
	for (size_t n = 0; n < len; n++) {
		memcpy(bad, der, len);
		bad[n] ^= 0x41;
		int st = answer(c->rs, bad, len, (int64_t)time(NULL), MAX_AGE, &t, NULL, NULL, NULL);
		assert_true(st == OCSP_RESPONSE_STATUS_SUCCESSFUL ||
		    st == OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	}
	free(bad);
	free(der);

	/* no single request; CA_OCSP_MAX_SINGLE; one more */
	req = OCSP_REQUEST_new();
	assert_int_equal(answer_req(c->rs, req, (int64_t)time(NULL), &t, NULL),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	OCSP_REQUEST_free(req);
	for (int i = 0; i <= CA_OCSP_MAX_SINGLE; i++)
		many[i] = c->dev[i % NDEV];
	req = req_new(c->issuer, many, CA_OCSP_MAX_SINGLE, EVP_sha1(), 0);
	assert_int_equal(answer_req(c->rs, req, (int64_t)time(NULL), &t, &bs), 0);
	assert_int_equal(OCSP_resp_count(bs), CA_OCSP_MAX_SINGLE);
	assert_int_equal(verify(c, bs), 1);
	OCSP_BASICRESP_free(bs);
	OCSP_REQUEST_free(req);
	req = req_new(c->issuer, many, CA_OCSP_MAX_SINGLE + 1, EVP_sha1(), 0);
	assert_int_equal(answer_req(c->rs, req, (int64_t)time(NULL), &t, NULL),
	    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
	OCSP_REQUEST_free(req);
}

static void
test_try_later(void **state)
{
	struct fixture *f = *state;
	struct ca_fix *c = &f->ca[0];
	OCSP_REQUEST *req = req_new(c->issuer, c->dev, 2, EVP_sha1(), 0);
	struct table t;
	int64_t nb, na;

	table_for(c, &t);
	/* the look-up cannot answer (database down) */
	t.fail = ERR_DB;
	assert_int_equal(answer_req(c->rs, req, (int64_t)time(NULL), &t, NULL),
	    OCSP_RESPONSE_STATUS_TRYLATER);
	t.fail = 0;
	/* no responder certificate */
	assert_int_equal(answer_req(NULL, req, (int64_t)time(NULL), &t, NULL),
	    OCSP_RESPONSE_STATUS_TRYLATER);
	/* the responder certificate is not valid then */
	ca_ocsp_responder_validity(c->rs, &nb, &na);
	assert_int_equal(answer_req(c->rs, req, na, &t, NULL), OCSP_RESPONSE_STATUS_TRYLATER);
	assert_int_equal(answer_req(c->rs, req, nb - 1, &t, NULL), OCSP_RESPONSE_STATUS_TRYLATER);
	assert_int_equal(answer_req(c->rs, req, na - 1, &t, NULL), OCSP_RESPONSE_STATUS_SUCCESSFUL);
	assert_int_equal(answer_req(c->rs, req, nb, &t, NULL), OCSP_RESPONSE_STATUS_SUCCESSFUL);
	OCSP_REQUEST_free(req);
}

static void
test_error_responses(void **state)
{
	static const int ok[] = { CA_OCSP_MALFORMED, CA_OCSP_INTERNAL_ERROR, CA_OCSP_TRY_LATER,
		CA_OCSP_UNAUTHORIZED };
	uint8_t *der = NULL;
	size_t len = 0;
	(void)state;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		const unsigned char *p;
		OCSP_RESPONSE *r;

		assert_int_equal(ca_ocsp_error_response((enum ca_ocsp_resp_status)ok[i], &der, &len), 0);
		p = der;
		r = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
		assert_non_null(r);
		assert_int_equal(OCSP_response_status(r), ok[i]);
		assert_null(OCSP_response_get1_basic(r));
		ERR_clear_error();
		OCSP_RESPONSE_free(r);
		free(der);
	}
	assert_int_equal(ca_ocsp_error_response(CA_OCSP_SUCCESSFUL, &der, &len), ERR_INVALID);
	assert_null(der);
	assert_int_equal(ca_ocsp_error_response((enum ca_ocsp_resp_status)5, &der, &len), ERR_INVALID);
}

/* The openssl command line agrees: request in, response in, verified. */
static void
test_openssl_cli(void **state)
{
	struct fixture *f = *state;
	struct ca_fix *c = &f->ca[1];
	char *dir = tmpdir_new(), *out = NULL, *pem = NULL;
	uint8_t *der = NULL, *resp = NULL;
	size_t len = 0, rlen = 0;
	unsigned char *p;
	struct table t;
	int n;

	table_for(c, &t);
	for (int i = 0; i < 2; i++) {
		n = i2d_X509(c->dev[i], NULL);
		der = malloc((size_t)n);
		p = der;
		assert_int_equal(i2d_X509(c->dev[i], &p), n);
		write_der_as_pem(pjoin(dir, i == 0 ? "good.pem" : "revoked.pem"), "CERTIFICATE",
		    der, (size_t)n);
		free(der);
	}
	assert_int_equal(run_cmd(&out, "openssl ocsp -issuer %s -cert %s -cert %s -reqout %s",
	    pjoin(c->dir, "ca.crt"), pjoin(dir, "good.pem"), pjoin(dir, "revoked.pem"),
	    pjoin(dir, "req.der")), 0);
	free(out);
	assert_int_equal(file_read_all(pjoin(dir, "req.der"), 1 << 16, &pem, &len), 0);
	assert_int_equal(answer(c->rs, (const uint8_t *)pem, len, (int64_t)time(NULL), MAX_AGE, &t,
	    NULL, &resp, &rlen), OCSP_RESPONSE_STATUS_SUCCESSFUL);
	write_bytes(pjoin(dir, "resp.der"), resp, rlen);
	free(pem);
	free(resp);
	/* -no_nonce: check the nonce of req.der, add no second one */
	if (run_cmd(&out, "openssl ocsp -reqin %s -respin %s -issuer %s -cert %s -cert %s "
	    "-CAfile %s -resp_text -no_nonce", pjoin(dir, "req.der"), pjoin(dir, "resp.der"),
	    pjoin(c->dir, "ca.crt"), pjoin(dir, "good.pem"), pjoin(dir, "revoked.pem"),
	    pjoin(c->dir, "root.crt")) != 0)
		fail_msg("openssl ocsp: %s", out);
	assert_contains(out, "Response verify OK");
	assert_contains(out, "good.pem: good");
	assert_contains(out, "revoked.pem: revoked");
	assert_contains(out, "Reason: keyCompromise");
	assert_contains(out, "OCSP Response Status: successful (0x0)");
	assert_contains(out, "Response Type: Basic OCSP Response");
	assert_contains(out, "OCSP Nonce:");
	free(out);
	tmpdir_rm(dir);
}

/* Signed responses per second on one thread (the cost of a miss or a
 * request with a nonce, without the database). */
static void
test_answer_rate(void **state)
{
	struct fixture *f = *state;
	struct ca_fix *c = &f->ca[0];
	OCSP_REQUEST *req = req_new(c->issuer, c->dev, 1, EVP_sha1(), 16);
	struct timespec t0;
	struct table t;
	uint8_t *der = NULL;
	size_t len = 0;
	double s;
	int n = 0;

	table_for(c, &t);
	req_to_der(req, &der, &len);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (int i = 0; i < 100; i++, n++)
			assert_int_equal(answer(c->rs, der, len, (int64_t)time(NULL), MAX_AGE, &t, NULL,
			    NULL, NULL), OCSP_RESPONSE_STATUS_SUCCESSFUL);
	} while ((s = secs_since(&t0)) < 1.0);
	print_message("bench: ca_ocsp_answer %.0f signed responses/s (%d in %.2f s)\n", n / s, n, s);
	assert_true(n / s > 200);
	free(der);
	OCSP_REQUEST_free(req);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cert_profile),
		cmocka_unit_test(test_cert_make),
		cmocka_unit_test(test_cert_imported_ca),
		cmocka_unit_test(test_responder_load_errors),
		cmocka_unit_test(test_renew_due),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_serials),
		cmocka_unit_test(test_good_revoked_unknown),
		cmocka_unit_test(test_revoked_reasons),
		cmocka_unit_test(test_max_age_zero),
		cmocka_unit_test(test_nonce),
		cmocka_unit_test(test_wrong_issuer),
		cmocka_unit_test(test_size_bound),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_try_later),
		cmocka_unit_test(test_error_responses),
		cmocka_unit_test(test_openssl_cli),
		cmocka_unit_test(test_answer_rate),
	};

	log_init("test_ca_ocsp", LOG_LVL_ERROR, 0, 0);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
