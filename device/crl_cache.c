/*
 * crl_cache.c: the enterprise CA's complete CRL as a device keeps it — one
 * DER file in its state directory, accepted only when signed by a CA of the
 * chain the device received at intake, refreshed from provd's GET /v1/crl
 * when provd can be reached, and consulted for each certificate a peer
 * presents. A stale CRL (past its nextUpdate) is "revocation cannot be
 * checked" unless the caller grants a grace period: the knob disconnected
 * devices need (docs/protocol.md, "Revocation").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "device/device.h"

#define CRL_PATH_MAX 4096

struct crl_cache {
	char *path;
	STACK_OF(X509) *ca;		/* references */
	X509_CRL *crl;			/* checked, or NULL */
	int64_t this_update, next_update;
};

/* ---------------------------------------------------------------------
 * Checking a CRL.
 */
static int
asn1_time_unix(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return ERR_INVALID;
	*out = (int64_t)timegm(&tm);
	return 0;
}

/* The CA of ca that signed crl, or NULL. */
static X509 *
crl_signer(STACK_OF(X509) *ca, X509_CRL *crl)
{
	const X509_NAME *issuer = X509_CRL_get_issuer(crl);

	for (int i = 0; i < sk_X509_num(ca); i++) {
		X509 *x = sk_X509_value(ca, i);
		EVP_PKEY *pk;

		if (X509_NAME_cmp(X509_get_subject_name(x), issuer) != 0)
			continue;
		if ((pk = X509_get0_pubkey(x)) != NULL && X509_CRL_verify(crl, pk) == 1)
			return x;
	}
	ERR_clear_error();
	return NULL;
}

/* Parses exactly one DER CRL and checks it: a v2 complete CRL (no Delta
 * CRL Indicator) with a nextUpdate, signed by a CA of ca. why gets the
 * reason for a refusal. */
static int
crl_parse(STACK_OF(X509) *ca, const uint8_t *der, size_t len, X509_CRL **out,
    int64_t *this_update, int64_t *next_update, char *why, size_t whylen)
{
	const unsigned char *p = der;
	X509_CRL *crl = NULL;
	int crit = -1, r = ERR_INVALID;
	void *ext;

	*out = NULL;
	if (len == 0 || len > CRL_MAX_DER) {
		msg_set(why, whylen, "a CRL of %zu bytes", len);
		return len == 0 ? ERR_INVALID : ERR_TOO_BIG;
	}
	if ((crl = d2i_X509_CRL(NULL, &p, (long)len)) == NULL || p != der + len) {
		msg_set(why, whylen, "not a DER CRL");
		goto out;
	}
	if ((ext = X509_CRL_get_ext_d2i(crl, NID_delta_crl, &crit, NULL)) != NULL || crit != -1) {
		ASN1_INTEGER_free(ext);
		msg_set(why, whylen, "a delta CRL, not a complete one");
		goto out;
	}
	if (asn1_time_unix(X509_CRL_get0_lastUpdate(crl), this_update) != 0 ||
	    asn1_time_unix(X509_CRL_get0_nextUpdate(crl), next_update) != 0) {
		msg_set(why, whylen, "a CRL without thisUpdate or nextUpdate");
		goto out;
	}
	if (crl_signer(ca, crl) == NULL) {
		msg_set(why, whylen, "a CRL not signed by the enterprise CA");
		goto out;
	}
	*out = crl;
	crl = NULL;
	r = 0;
out:
	ERR_clear_error();
	X509_CRL_free(crl);
	return r;
}

/* The CRL number, or -1 when absent (or larger than 63 bits). */
static int64_t
crl_number(X509_CRL *crl)
{
	ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	int64_t v = -1;

	if (n != NULL && ASN1_INTEGER_get_int64(&v, n) != 1)
		v = -1;
	ASN1_INTEGER_free(n);
	ERR_clear_error();
	return v;
}

/* ---------------------------------------------------------------------
 * The cache.
 */
int
crl_cache_open(const char *path, STACK_OF(X509) *ca, struct crl_cache **out)
{
	struct crl_cache *c = NULL;
	char *der = NULL, why[128];
	size_t len = 0;
	struct stat st;
	int r;

	if (out == NULL)
		return ERR_INVALID;
	*out = NULL;
	if (path == NULL || strnlen(path, CRL_PATH_MAX) == CRL_PATH_MAX || ca == NULL ||
	    sk_X509_num(ca) == 0)
		return ERR_INVALID;
	if ((c = calloc(1, sizeof(*c))) == NULL || (c->path = strdup(path)) == NULL ||
	    (c->ca = sk_X509_new_null()) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	for (int i = 0; i < sk_X509_num(ca); i++)
		if (!X509_add_cert(c->ca, sk_X509_value(ca, i), X509_ADD_FLAG_UP_REF)) {
			r = ERR_NOMEM;
			goto out;
		}
	if (stat(path, &st) != 0) {
		if (errno != ENOENT)
			log_warnx("%s: %s", path, strerror(errno));
	} else if ((r = file_read_all(path, CRL_MAX_DER, &der, &len)) != 0) {
		log_warnx("%s: cannot read the cached CRL: %s", path, provd_strerror(r));
	} else if (crl_parse(c->ca, (const uint8_t *)der, len, &c->crl, &c->this_update,
	    &c->next_update, why, sizeof(why)) != 0) {
		log_warnx("%s: cached CRL ignored: %s", path, why);
	}
	*out = c;
	c = NULL;
	r = 0;
out:
	free(der);
	crl_cache_free(c);
	return r;
}

void
crl_cache_free(struct crl_cache *c)
{
	if (c == NULL)
		return;
	X509_CRL_free(c->crl);
	sk_X509_pop_free(c->ca, X509_free);
	free(c->path);
	free(c);
}

int
crl_cache_times(const struct crl_cache *c, int64_t *this_update, int64_t *next_update)
{
	if (c == NULL || c->crl == NULL)
		return ERR_NOT_FOUND;
	if (this_update != NULL)
		*this_update = c->this_update;
	if (next_update != NULL)
		*next_update = c->next_update;
	return 0;
}

int
crl_cache_check(struct crl_cache *c, X509 *cert, int64_t grace_s, char *why, size_t whylen)
{
	X509_REVOKED *rev = NULL;
	char when[32];
	int64_t now = (int64_t)time(NULL);

	msg_set(why, whylen, "%s", "");
	if (c == NULL || c->crl == NULL) {
		msg_set(why, whylen, "no CRL is cached: revocation cannot be checked");
		return ERR_UNAVAILABLE;
	}
	if (X509_NAME_cmp(X509_CRL_get_issuer(c->crl), X509_get_issuer_name(cert)) != 0) {
		msg_set(why, whylen, "the cached CRL is not from the certificate's issuer");
		return ERR_UNAVAILABLE;
	}
	if (grace_s != CRL_GRACE_ANY && now > c->next_update &&
	    (grace_s < 0 || now - c->next_update > grace_s)) {
		time_format_rfc3339((time_t)c->next_update, when, sizeof(when));
		msg_set(why, whylen, "the cached CRL is stale (its nextUpdate was %s): "
		    "revocation cannot be checked", when);
		return ERR_UNAVAILABLE;
	}
	if (X509_CRL_get0_by_serial(c->crl, &rev, X509_get0_serialNumber(cert)) == 1) {
		int64_t at = -1;
		(void)asn1_time_unix(X509_REVOKED_get0_revocationDate(rev), &at);
		time_format_rfc3339((time_t)(at >= 0 ? at : 0), when, sizeof(when));
		msg_set(why, whylen, "the certificate is revoked (since %s)", when);
		return ERR_FORBIDDEN;
	}
	ERR_clear_error();
	return 0;
}

/* ---------------------------------------------------------------------
 * Refresh from provd.
 */
struct fetch {
	uint8_t *buf;
	size_t len;
	int too_big;
};

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct fetch *f = arg;
	size_t add = size * n;
	uint8_t *nb;

	if (add > CRL_MAX_DER - f->len) {
		f->too_big = 1;
		return 0;
	}
	if ((nb = realloc(f->buf, f->len + add)) == NULL)
		return 0;
	f->buf = nb;
	memcpy(f->buf + f->len, p, add);
	f->len += add;
	return add;
}

int
crl_cache_refresh(struct crl_cache *c, const char *url, const char *cacert,
    int timeout_s, char *why, size_t whylen)
{
	struct fetch f = { 0 };
	char full[1024], reason[128];
	X509_CRL *crl = NULL;
	int64_t tu = 0, nu = 0;
	long status = 0;
	CURLcode cr;
	CURL *h;
	int n, r;

	msg_set(why, whylen, "%s", "");
	if (c == NULL || url == NULL)
		return ERR_INVALID;
	n = snprintf(full, sizeof(full), "%s/v1/crl", url);
	if (n < 0 || (size_t)n >= sizeof(full)) {
		msg_set(why, whylen, "provd's URL is too long");
		return ERR_INVALID;
	}
	if ((h = curl_easy_init()) == NULL)
		return ERR_NOMEM;
	curl_easy_setopt(h, CURLOPT_URL, full);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &f);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)(timeout_s > 0 ? timeout_s : 30));
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)CRL_MAX_DER);
	if (cacert != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, cacert);
	cr = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (cr != CURLE_OK) {
		msg_set(why, whylen, "cannot reach provd at %s: %s", url,
		    f.too_big ? "the CRL is too large" : curl_easy_strerror(cr));
		r = ERR_UNAVAILABLE;
		goto out;
	}
	if (status != 200) {
		msg_set(why, whylen, "provd answered %ld to GET /v1/crl", status);
		r = ERR_UNAVAILABLE;
		goto out;
	}
	if ((r = crl_parse(c->ca, f.buf, f.len, &crl, &tu, &nu, reason, sizeof(reason))) != 0) {
		msg_set(why, whylen, "provd's CRL refused: %s", reason);
		goto out;
	}
	if (c->crl != NULL) {
		int64_t have = crl_number(c->crl), got = crl_number(crl);
		if (have >= 0 && got >= 0 ? got < have : tu < c->this_update) {
			msg_set(why, whylen, "provd's CRL is older than the cached one; kept the cached one");
			r = ERR_INVALID;
			goto out;
		}
	}
	if ((r = file_write_atomic(c->path, f.buf, f.len, 0644)) != 0) {
		msg_set(why, whylen, "cannot write %s", c->path);
		goto out;
	}
	X509_CRL_free(c->crl);
	c->crl = crl;
	crl = NULL;
	c->this_update = tu;
	c->next_update = nu;
	r = 0;
out:
	X509_CRL_free(crl);
	free(f.buf);
	return r;
}
