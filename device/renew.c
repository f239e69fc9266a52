/*
 * renew.c: the device side of certificate renewal. The device makes a new
 * key in its keystore (pending, next to the installed identity), signs the
 * CSR with its current key in a CMS SignedData (with a signingTime), sends
 * it to provd's POST /v1/renew, and installs the new certificate with the
 * new key atomically. Until the install, the old identity stays in use; if
 * anything fails the pending key is simply replaced by the next attempt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "device/device.h"

#define RESP_MAX (256 * 1024)
#define CHAIN_MAX 4

struct resp {
	char *buf;
	size_t len;
	int too_big;
};

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t add = size * n;
	char *nb;

	if (r->len + add > RESP_MAX) {
		r->too_big = 1;
		return 0;
	}
	if ((nb = realloc(r->buf, r->len + add + 1)) == NULL)
		return 0;
	r->buf = nb;
	memcpy(r->buf + r->len, p, add);
	r->len += add;
	r->buf[r->len] = '\0';
	return add;
}

/* One HTTP exchange with provd: *status and the parsed JSON body (*out,
 * json_decref; NULL when the body is not JSON). */
static int
http_json(const struct renew_opts *o, const char *method, const char *path,
    const char *body, long *status, json_t **out, char *why, size_t whylen)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = NULL;
	struct resp rs = { 0 };
	char url[1024];
	CURLcode cr;
	int r = 0;

	*out = NULL;
	*status = 0;
	if (h == NULL)
		return ERR_NOMEM;
	snprintf(url, sizeof(url), "%s%s", o->url, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &rs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)(o->timeout_s > 0 ? o->timeout_s : 30));
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (o->cacert != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, o->cacert);
	if (body != NULL) {
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	if ((cr = curl_easy_perform(h)) != CURLE_OK) {
		snprintf(why, whylen, "cannot reach provd at %s: %s", o->url,
		    rs.too_big ? "response too large" : curl_easy_strerror(cr));
		r = ERR_UNAVAILABLE;
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	if (rs.buf != NULL)
		*out = json_loadb(rs.buf, rs.len, 0, NULL);
out:
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	free(rs.buf);
	return r;
}

/* provd's error message in a JSON error body, or the status. */
static void
http_why(long status, json_t *body, char *why, size_t whylen)
{
	json_t *e = body ? json_object_get(body, "error") : NULL;
	const char *msg = NULL;

	if (json_is_object(e))
		msg = json_string_value(json_object_get(e, "message"));
	else if (json_is_string(e))
		msg = json_string_value(e);
	if (msg == NULL && body != NULL)
		msg = json_string_value(json_object_get(body, "message"));
	snprintf(why, whylen, "provd answered %ld: %s", status, msg ? msg : "(no message)");
}

/* The installed certificate, parsed. */
static int
current_cert(struct keystore *ks, EVP_PKEY **key, X509 **x)
{
	uint8_t *der = NULL;
	size_t len = 0;
	const unsigned char *p;
	int r;

	*x = NULL;
	if ((r = keystore_identity(ks, key, &der, &len)) != 0)
		return r;
	p = der;
	*x = d2i_X509(NULL, &p, (long)len);
	free(der);
	if (*x == NULL) {
		EVP_PKEY_free(*key);
		*key = NULL;
		return ERR_INVALID;
	}
	return 0;
}

int
device_cert_serial(struct keystore *ks, char serial[33], int64_t *not_before,
    int64_t *not_after)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	unsigned char *der = NULL;
	int len, r;

	if ((r = current_cert(ks, &key, &x)) != 0)
		return r;
	EVP_PKEY_free(key);
	if ((len = i2d_X509(x, &der)) <= 0)
		r = ERR_CRYPTO;
	else
		r = ca_cert_serial_hex(der, (size_t)len, serial);
	OPENSSL_free(der);
	struct tm tm;
	if (r == 0 && not_before != NULL) {
		r = ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm) == 1 ? 0 : ERR_INVALID;
		*not_before = (int64_t)timegm(&tm);
	}
	if (r == 0 && not_after != NULL) {
		r = ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1 ? 0 : ERR_INVALID;
		*not_after = (int64_t)timegm(&tm);
	}
	X509_free(x);
	return r;
}

int
device_renew_request(struct keystore *ks, const uint8_t mac[MAC_LEN], char **b64,
    char *why, size_t whylen)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	CMS_ContentInfo *cms = NULL;
	BIO *in = NULL;
	uint8_t *csr = NULL;
	size_t csrlen = 0;
	unsigned char *der = NULL;
	EVP_MD *md = NULL;
	const unsigned flags = CMS_BINARY | CMS_NOSMIMECAP;
	int len, r;

	*b64 = NULL;
	if ((r = current_cert(ks, &key, &x)) != 0) {
		snprintf(why, whylen, "no certificate installed: the device needs intake first");
		return r;
	}
	if ((r = keystore_generate(ks, mac, &csr, &csrlen)) != 0) {
		snprintf(why, whylen, "cannot make a new key in the keystore: %s",
		    provd_strerror(r));
		goto out;
	}
	r = ERR_CRYPTO;
	if ((in = BIO_new_mem_buf(csr, (int)csrlen)) == NULL)
		goto out;
	/* SHA-256 named explicitly: a key held by a provider (tpm2) offers no
	 * default digest; CMS adds the signingTime itself */
	if ((md = EVP_MD_fetch(keystore_libctx(ks), "SHA256", keystore_propq(ks))) == NULL)
		goto out;
	if ((cms = CMS_sign_ex(NULL, NULL, NULL, NULL, flags | CMS_PARTIAL, keystore_libctx(ks),
	    keystore_propq(ks))) == NULL ||
	    CMS_add1_signer(cms, x, key, md, flags) == NULL ||
	    CMS_final(cms, in, NULL, flags) != 1) {
		snprintf(why, whylen, "cannot sign the request with the current key");
		goto out;
	}
	if ((len = i2d_CMS_ContentInfo(cms, &der)) <= 0)
		goto out;
	if ((*b64 = malloc((size_t)len / 3 * 4 + 5)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)*b64, der, len);
	r = 0;
out:
	ERR_clear_error();
	EVP_MD_free(md);
	OPENSSL_free(der);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	free(csr);
	X509_free(x);
	EVP_PKEY_free(key);
	return r;
}

/* PEM certificates into DER buffers (each new). */
static int
pem_certs(const char *pem, uint8_t **der, size_t *len, size_t max, size_t *n)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;
	int l;

	*n = 0;
	if (b == NULL)
		return ERR_NOMEM;
	while (*n < max && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		der[*n] = NULL;
		l = i2d_X509(x, &der[*n]);
		X509_free(x);
		if (l <= 0)
			break;
		len[*n] = (size_t)l;
		(*n)++;
	}
	ERR_clear_error();
	BIO_free(b);
	return *n > 0 ? 0 : ERR_INVALID;
}

int
device_renew(struct keystore *ks, const uint8_t mac[MAC_LEN], const struct renew_opts *o,
    char serial[33], char *why, size_t whylen)
{
	char *b64 = NULL, *body = NULL;
	json_t *resp = NULL;
	long status = 0;
	uint8_t *cert[1] = { NULL }, *chain[CHAIN_MAX] = { NULL };
	size_t certlen[1] = { 0 }, chainlen[CHAIN_MAX] = { 0 }, ncert = 0, nchain = 0;
	int r;

	serial[0] = '\0';
	if ((r = device_renew_request(ks, mac, &b64, why, whylen)) != 0)
		return r;
	json_t *req = json_pack("{s:s}", "signed_csr", b64);
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	free(b64);
	if (body == NULL)
		return ERR_NOMEM;
	r = http_json(o, "POST", "/v1/renew", body, &status, &resp, why, whylen);
	free(body);
	if (r != 0)
		goto out;
	if (status != 201) {
		http_why(status, resp, why, whylen);
		r = status == 403 ? ERR_FORBIDDEN : status == 401 ? ERR_AUTH :
		    status == 409 ? ERR_CONFLICT : status >= 500 ? ERR_UNAVAILABLE : ERR_INVALID;
		goto out;
	}
	const char *pem = json_string_value(json_object_get(resp, "certificate"));
	const char *cpem = json_string_value(json_object_get(resp, "ca_chain"));
	if (pem == NULL || cpem == NULL || pem_certs(pem, cert, certlen, 1, &ncert) != 0 ||
	    pem_certs(cpem, chain, chainlen, CHAIN_MAX, &nchain) != 0) {
		snprintf(why, whylen, "provd's answer holds no certificate");
		r = ERR_INVALID;
		goto out;
	}
	if ((r = keystore_install(ks, cert[0], certlen[0], (const uint8_t *const *)chain,
	    chainlen, nchain)) != 0) {
		snprintf(why, whylen, "cannot install the new certificate: %s", provd_strerror(r));
		goto out;
	}
	snprintf(serial, 33, "%s", json_string_value(json_object_get(resp, "serial")) ?
	    json_string_value(json_object_get(resp, "serial")) : "");
out:
	free(cert[0]);
	for (size_t i = 0; i < nchain; i++)
		free(chain[i]);
	json_decref(resp);
	return r;
}

int
device_renew_due(struct keystore *ks, const struct renew_opts *o, int *due, char *reason,
    size_t reasonlen)
{
	char serial[33], path[64], why[256];
	int64_t nb = 0, na = 0, now = (int64_t)time(NULL);
	json_t *resp = NULL;
	long status = 0;
	int r;

	*due = 0;
	reason[0] = '\0';
	if ((r = device_cert_serial(ks, serial, &nb, &na)) != 0) {
		snprintf(reason, reasonlen, "no certificate installed");
		return r;
	}
	if (now >= na) {
		snprintf(reason, reasonlen, "the certificate has expired: intake again");
		return ERR_FORBIDDEN;
	}
	snprintf(path, sizeof(path), "/v1/renew/%s", serial);
	if (http_json(o, "GET", path, NULL, &status, &resp, why, sizeof(why)) == 0 &&
	    status == 200 && resp != NULL) {
		*due = json_is_true(json_object_get(resp, "renew_now"));
		const char *rs = json_string_value(json_object_get(resp, "reason"));
		snprintf(reason, reasonlen, "%s", rs ? rs : "");
		json_decref(resp);
		return 0;
	}
	json_decref(resp);
	/* provd unreachable or confused: the device's own clock decides */
	if (now >= nb + (na - nb) / 3 * 2) {
		*due = 1;
		snprintf(reason, reasonlen, "two-thirds of the lifetime have passed");
	} else
		snprintf(reason, reasonlen, "%s", status ? "provd gave no hint" : why);
	return 0;
}
