/*
 * ca_cmp.c: an external enterprise CA over CMP (RFC 4210, RFC 9480), with
 * OpenSSL's OSSL_CMP client ([ca] mode = cmp). Every issuance is a p10cr
 * carrying the device's own CSR (intake, POST /v1/certificates, renewal:
 * provd always has one, also when it made the key), every revocation an
 * rr. Messages are protected with a shared secret (PBM, [ca] cmp_ref and
 * cmp_secret_file) or a client certificate (cmp_cert, cmp_key); answers
 * signed with a certificate must chain to cmp_trusted.
 *
 * Before confirming a new certificate (certConf) provd checks that it
 * carries the CSR's public key and the device identifier it asked for; a
 * wrong one is rejected in the certConf, so that the CA does not keep it
 * as accepted, and the issuance fails. Transport failures (the CA down,
 * refused, timed out) are retried with a doubling pause; an answer from
 * the CA (a rejection, waiting with polling, an error message) is not.
 *
 * One OSSL_CMP_CTX per transaction: a context is not shared between
 * threads, and the credentials are copied into it each time.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/cmp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ca/ca_int.h"

#define CMP_SECRET_MAX	1024
/* A whole transaction, with the CA's waiting (polling), may take this many
 * times [ca] cmp_timeout_s, which bounds each message. */
#define CMP_TOTAL_FACTOR	5

struct ca_cmp {
	char *host, *port, *path;
	char *ref;
	unsigned char *secret;		/* secure heap */
	size_t secretlen;
	X509 *cert;			/* client certificate, or NULL */
	EVP_PKEY *key;
	STACK_OF(X509) *trusted;	/* who may sign the CA's answers */
	STACK_OF(X509) *chain;		/* ca.dir/chain.pem: the CA's chain, which
					   every new certificate must verify to */
	int timeout_s, retries;
	char url[1100];
};

/* What the certConf check compares the new certificate with. */
struct want {
	const struct ca_cmp *c;
	EVP_PKEY *pub;			/* the CSR's key */
	uint8_t mac[MAC_LEN];
	char why[200];
};

/* what, then OpenSSL's errors from the first (the cause: "timeout",
 * "connection refused") to the last */
static void
why_ossl(char *why, size_t whylen, const char *what)
{
	unsigned long e;
	const char *data;
	int flags;
	size_t off;

	msg_set(why, whylen, "%s", what);
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		off = strlen(why);
		if (off + 8 >= whylen)
			continue;
		snprintf(why + off, whylen - off, "%s%s%s%s", off == strlen(what) ? ": " : "; ",
		    ERR_reason_error_string(e) != NULL ? ERR_reason_error_string(e) : "error",
		    (flags & ERR_TXT_STRING) && data[0] ? " " : "",
		    (flags & ERR_TXT_STRING) && data[0] ? data : "");
	}
}

static STACK_OF(X509) *
read_certs(const char *path)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	char *buf = NULL;
	size_t len = 0;
	BIO *b = NULL;
	X509 *x;

	if (sk == NULL || file_read_all(path, CA_CERT_FILE_MAX, &buf, &len) != 0 ||
	    (b = BIO_new_mem_buf(buf, (int)len)) == NULL)
		goto fail;
	while ((x = PEM_read_bio_X509(b, NULL, ca_no_passphrase, NULL)) != NULL) {
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			goto fail;
		}
	}
	ERR_clear_error();
	if (sk_X509_num(sk) == 0)
		goto fail;
	BIO_free(b);
	free(buf);
	return sk;
fail:
	BIO_free(b);
	free(buf);
	sk_X509_pop_free(sk, X509_free);
	return NULL;
}

int
ca_cmp_open(const struct config *cfg, struct ca_cmp **out)
{
	struct ca_cmp *c = NULL;
	char *host = NULL, *port = NULL, *path = NULL;
	int use_ssl = 0, r = ERR_CONFIG;
	unsigned char *secret = NULL;
	char path_buf[PATH_MAX];
	size_t slen = 0;

	*out = NULL;
	if (cfg == NULL || cfg->cmp_url == NULL || cfg->ca_dir == NULL)
		return ERR_INVALID;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return ERR_NOMEM;
	if (!OSSL_HTTP_parse_url(cfg->cmp_url, &use_ssl, NULL, &host, &port, NULL, &path, NULL,
	    NULL) || use_ssl) {
		log_errx("ca.cmp_url: \"%.100s\" is not an http://HOST[:PORT]/PATH address%s",
		    cfg->cmp_url, use_ssl ? " (https is not supported: CMP messages protect "
		    "themselves)" : "");
		goto out;
	}
	c->host = host;
	c->port = port;
	c->path = path;
	host = port = path = NULL;
	snprintf(c->url, sizeof(c->url), "%s", cfg->cmp_url);
	if (cfg->cmp_secret_file != NULL) {
		if ((r = secret_read_file(cfg->cmp_secret_file, (char **)&secret)) != 0) {
			log_errx("ca.cmp_secret_file %s: %s", cfg->cmp_secret_file,
			    provd_strerror(r));
			r = ERR_CONFIG;
			goto out;
		}
		slen = strlen((char *)secret);
		if (slen == 0 || slen > CMP_SECRET_MAX) {
			log_errx("ca.cmp_secret_file %s: empty or longer than %d bytes",
			    cfg->cmp_secret_file, CMP_SECRET_MAX);
			r = ERR_CONFIG;
			goto out;
		}
		c->secret = secret;
		c->secretlen = slen;
		secret = NULL;
		if ((c->ref = strdup(cfg->cmp_ref)) == NULL) {
			r = ERR_NOMEM;
			goto out;
		}
	}
	if (cfg->cmp_cert != NULL) {
		STACK_OF(X509) *sk = read_certs(cfg->cmp_cert);
		if (sk == NULL) {
			log_ossl("ca.cmp_cert %s: not a PEM certificate", cfg->cmp_cert);
			r = ERR_CONFIG;
			goto out;
		}
		c->cert = sk_X509_shift(sk);
		sk_X509_pop_free(sk, X509_free);
		if ((r = ca_read_key_file(cfg->cmp_key, &c->key)) != 0 ||
		    X509_check_private_key(c->cert, c->key) != 1) {
			log_ossl("ca.cmp_key %s: not the private key of ca.cmp_cert", cfg->cmp_key);
			r = ERR_CONFIG;
			goto out;
		}
	}
	if (cfg->cmp_trusted != NULL && (c->trusted = read_certs(cfg->cmp_trusted)) == NULL) {
		log_ossl("ca.cmp_trusted %s: no PEM certificate", cfg->cmp_trusted);
		r = ERR_CONFIG;
		goto out;
	}
	if ((size_t)snprintf(path_buf, sizeof(path_buf), "%s/chain.pem", cfg->ca_dir) >=
	    sizeof(path_buf) || (c->chain = read_certs(path_buf)) == NULL) {
		log_errx("%s: no PEM certificates: with ca.mode cmp, ca.dir holds the CA's "
		    "chain (provd ca init --chain FILE)", path_buf);
		r = ERR_CONFIG;
		goto out;
	}
	c->timeout_s = (int)cfg->cmp_timeout_s;
	c->retries = (int)cfg->cmp_retries;
	*out = c;
	c = NULL;
	r = 0;
out:
	if (secret != NULL)
		secret_free((char *)secret);
	OPENSSL_free(host);
	OPENSSL_free(port);
	OPENSSL_free(path);
	ca_cmp_close(c);
	return r;
}

void
ca_cmp_close(struct ca_cmp *c)
{
	if (c == NULL)
		return;
	OPENSSL_free(c->host);
	OPENSSL_free(c->port);
	OPENSSL_free(c->path);
	free(c->ref);
	if (c->secret != NULL)
		secret_free((char *)c->secret);
	X509_free(c->cert);
	EVP_PKEY_free(c->key);
	sk_X509_pop_free(c->trusted, X509_free);
	sk_X509_pop_free(c->chain, X509_free);
	free(c);
}

const char *
ca_cmp_url(const struct ca_cmp *c)
{
	return c != NULL ? c->url : "";
}

/* A context for one transaction with the server, credentials and trust. */
static OSSL_CMP_CTX *
ctx_new(const struct ca_cmp *c)
{
	OSSL_CMP_CTX *ctx = OSSL_CMP_CTX_new(NULL, NULL);
	X509_STORE *store = NULL;

	if (ctx == NULL)
		return NULL;
	if (!OSSL_CMP_CTX_set1_server(ctx, c->host) ||
	    !OSSL_CMP_CTX_set_serverPort(ctx, atoi(c->port)) ||
	    !OSSL_CMP_CTX_set1_serverPath(ctx, c->path) ||
	    !OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_MSG_TIMEOUT, c->timeout_s) ||
	    !OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_TOTAL_TIMEOUT,
	    c->timeout_s * CMP_TOTAL_FACTOR))
		goto fail;
	if (c->secret != NULL &&
	    (!OSSL_CMP_CTX_set1_referenceValue(ctx, (const unsigned char *)c->ref,
	    (int)strlen(c->ref)) ||
	    !OSSL_CMP_CTX_set1_secretValue(ctx, c->secret, (int)c->secretlen)))
		goto fail;
	if (c->cert != NULL && (!OSSL_CMP_CTX_set1_cert(ctx, c->cert) ||
	    !OSSL_CMP_CTX_set1_pkey(ctx, c->key)))
		goto fail;
	if (c->trusted != NULL) {
		if ((store = X509_STORE_new()) == NULL)
			goto fail;
		for (int i = 0; i < sk_X509_num(c->trusted); i++)
			if (!X509_STORE_add_cert(store, sk_X509_value(c->trusted, i)))
				goto fail;
		if (!OSSL_CMP_CTX_set0_trustedStore(ctx, store))
			goto fail;
		store = NULL;
	}
	return ctx;
fail:
	X509_STORE_free(store);
	OSSL_CMP_CTX_free(ctx);
	return NULL;
}

/* 1 when cert verifies to the CA's chain (ca.dir/chain.pem); else what is
 * wrong in err. */
static int
chain_ok(const struct ca_cmp *c, X509 *cert, const char **err)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *xs = X509_STORE_CTX_new();
	int ok = 0;

	*err = "out of memory";

	if (store == NULL || xs == NULL)
		goto out;
	for (int i = 0; i < sk_X509_num(c->chain); i++)
		if (!X509_STORE_add_cert(store, sk_X509_value(c->chain, i)))
			goto out;
	if (X509_STORE_CTX_init(xs, store, cert, NULL) == 1 && X509_verify_cert(xs) == 1)
		ok = 1;
	else
		*err = X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs));
out:
	X509_STORE_CTX_free(xs);
	X509_STORE_free(store);
	ERR_clear_error();
	return ok;
}

/* certConf: the new certificate must verify to the CA's chain, carry the
 * key we asked for and name the device we asked for, with a serial provd
 * can record. A failure is sent to the CA in the certConf. */
static int
certconf_cb(OSSL_CMP_CTX *ctx, X509 *cert, int fail_info, const char **text)
{
	struct want *w = OSSL_CMP_CTX_get_certConf_cb_arg(ctx);
	const ASN1_INTEGER *sn;
	const char *err;
	uint8_t addr[MAC_LEN];
	char ms[MAC_STR_LEN];

	if (fail_info != 0 || w == NULL)
		return fail_info;
	mac_format(w->mac, ms);
	if (!chain_ok(w->c, cert, &err)) {
		msg_set(w->why, sizeof(w->why), "the certificate from the CA does not verify "
		    "to the chain in ca.dir/chain.pem (%s); it was rejected", err);
		*text = "the certificate does not verify to the expected CA";
		return 1 << OSSL_CMP_PKIFAILUREINFO_incorrectData;
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(cert), w->pub) != 1) {
		msg_set(w->why, sizeof(w->why), "the CA returned a certificate for another key "
		    "than the request's; it was rejected");
		*text = "the certificate does not carry the requested public key";
		return 1 << OSSL_CMP_PKIFAILUREINFO_incorrectData;
	}
	if (cert_device_addr(cert, addr) != 0 || memcmp(addr, w->mac, MAC_LEN) != 0) {
		msg_set(w->why, sizeof(w->why), "the CA returned a certificate that does not "
		    "name the device %s (subjectAltName URI urn:dev:mac: or subject "
		    "serialNumber); it was rejected", ms);
		*text = "the certificate does not carry the requested device identifier";
		return 1 << OSSL_CMP_PKIFAILUREINFO_badCertTemplate;
	}
	sn = X509_get0_serialNumber(cert);
	if (sn == NULL || ASN1_STRING_length(sn) > CA_SERIAL_LEN || ASN1_STRING_length(sn) < 1 ||
	    (ASN1_STRING_type(sn) & V_ASN1_NEG) != 0) {
		msg_set(w->why, sizeof(w->why), "the CA's certificate has a serial number of "
		    "more than %d bytes, which provd cannot record; set the CA's certificate "
		    "profile to %d-byte serial numbers", CA_SERIAL_LEN, CA_SERIAL_LEN);
		*text = "serial number too long for the registration authority";
		return 1 << OSSL_CMP_PKIFAILUREINFO_badCertTemplate;
	}
	return 0;
}

/* The CA answered (a PKIStatus came back), as opposed to not being reached. */
static int
ca_answered(OSSL_CMP_CTX *ctx)
{
	return OSSL_CMP_CTX_get_status(ctx) >= 0 ||
	    OSSL_CMP_CTX_get0_statusString(ctx) != NULL;
}

/* Why a transaction failed, for the operator: the CA's status and text, or
 * OpenSSL's last error. */
static void
why_failed(OSSL_CMP_CTX *ctx, const char *what, char *why, size_t whylen)
{
	char buf[300], head[400];

	if (ca_answered(ctx) && OSSL_CMP_CTX_snprint_PKIStatus(ctx, buf, sizeof(buf)) != NULL) {
		snprintf(head, sizeof(head), "%s: the CA answered %s", what, buf);
		why_ossl(why, whylen, head);
	} else {
		why_ossl(why, whylen, what);
	}
}

/* Before attempt number attempt (from 0): nothing for the first; else says
 * why (the last failure) and waits 0.5 s, 1 s, 2 s... */
static void
retry_pause(const struct ca_cmp *c, int attempt, const char *why)
{
	long ms = 500L << (attempt > 1 ? attempt - 1 : 0);
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	if (attempt == 0)
		return;
	log_warnx("CMP: %s; trying again in %ld ms (%d of %d)", why, ms, attempt, c->retries);
	while (nanosleep(&ts, &ts) != 0)
		;
}

int
ca_cmp_enroll(struct ca_cmp *c, const uint8_t *csr, size_t csrlen, const uint8_t mac[MAC_LEN],
    uint8_t **der, size_t *derlen, char *why, size_t whylen)
{
	const unsigned char *p = csr;
	X509_REQ *req = NULL;
	OSSL_CMP_CTX *ctx = NULL;
	struct want w = { 0 };
	X509 *cert = NULL;
	unsigned char *enc = NULL;
	int r = ERR_INTERNAL, len;

	*der = NULL;
	*derlen = 0;
	msg_set(why, whylen, "internal error");
	if (c == NULL || csr == NULL || csrlen == 0 || csrlen > (size_t)LONG_MAX)
		return ERR_INVALID;
	if (csrlen > 10 && memcmp(csr, "-----BEGIN", 10) == 0) {
		BIO *b = BIO_new_mem_buf(csr, (int)csrlen);
		req = b != NULL ? PEM_read_bio_X509_REQ(b, NULL, ca_no_passphrase, NULL) : NULL;
		BIO_free(b);
	} else {
		req = d2i_X509_REQ(NULL, &p, (long)csrlen);
	}
	if (req == NULL || (w.pub = X509_REQ_get0_pubkey(req)) == NULL) {
		msg_set(why, whylen, "the certificate request does not parse");
		r = ERR_BAD_CSR;
		goto out;
	}
	memcpy(w.mac, mac, MAC_LEN);
	w.c = c;
	for (int attempt = 0; attempt <= c->retries; attempt++) {
		retry_pause(c, attempt, why);
		OSSL_CMP_CTX_free(ctx);
		w.why[0] = '\0';
		if ((ctx = ctx_new(c)) == NULL || !OSSL_CMP_CTX_set1_p10CSR(ctx, req) ||
		    !OSSL_CMP_CTX_set_certConf_cb(ctx, certconf_cb) ||
		    !OSSL_CMP_CTX_set_certConf_cb_arg(ctx, &w)) {
			why_ossl(why, whylen, "cannot prepare the CMP request");
			r = ERR_CRYPTO;
			goto out;
		}
		ERR_clear_error();
		if ((cert = OSSL_CMP_exec_P10CR_ses(ctx)) != NULL)
			break;
		if (w.why[0] != '\0') {		/* our check refused it */
			msg_set(why, whylen, "%s", w.why);
			r = ERR_SIGNER;
			goto out;
		}
		why_failed(ctx, "CMP enrollment failed", why, whylen);
		if (ca_answered(ctx)) {		/* a rejection: asking again changes nothing */
			r = ERR_SIGNER;
			goto out;
		}
		r = ERR_UNAVAILABLE;
	}
	if (cert == NULL)
		goto out;
	if ((len = i2d_X509(cert, &enc)) <= 0) {
		r = ERR_CRYPTO;
		goto out;
	}
	if ((*der = malloc((size_t)len)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	memcpy(*der, enc, (size_t)len);
	*derlen = (size_t)len;
	msg_set(why, whylen, "ok");
	r = 0;
out:
	OPENSSL_free(enc);
	X509_free(cert);
	X509_REQ_free(req);
	OSSL_CMP_CTX_free(ctx);
	ERR_clear_error();
	return r;
}

int
ca_cmp_revoke(struct ca_cmp *c, const uint8_t *cert_der, size_t len, int reason, char *why,
    size_t whylen)
{
	const unsigned char *p = cert_der;
	OSSL_CMP_CTX *ctx = NULL;
	X509 *old = NULL;
	int r = ERR_INTERNAL;

	msg_set(why, whylen, "internal error");
	if (c == NULL || cert_der == NULL || len == 0 || len > (size_t)LONG_MAX)
		return ERR_INVALID;
	if ((old = d2i_X509(NULL, &p, (long)len)) == NULL)
		return ERR_INVALID;
	for (int attempt = 0; attempt <= c->retries; attempt++) {
		retry_pause(c, attempt, why);
		OSSL_CMP_CTX_free(ctx);
		if ((ctx = ctx_new(c)) == NULL || !OSSL_CMP_CTX_set1_oldCert(ctx, old) ||
		    !OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_REVOCATION_REASON, reason)) {
			why_ossl(why, whylen, "cannot prepare the CMP revocation");
			r = ERR_CRYPTO;
			goto out;
		}
		ERR_clear_error();
		if (OSSL_CMP_exec_RR_ses(ctx) == 1) {
			msg_set(why, whylen, "ok");
			r = 0;
			goto out;
		}
		why_failed(ctx, "CMP revocation failed", why, whylen);
		if (ca_answered(ctx)) {
			r = ERR_SIGNER;
			goto out;
		}
		r = ERR_UNAVAILABLE;
	}
out:
	X509_free(old);
	OSSL_CMP_CTX_free(ctx);
	ERR_clear_error();
	return r;
}

int
ca_cmp_ping(struct ca_cmp *c, char *why, size_t whylen)
{
	OSSL_CMP_CTX *ctx;
	STACK_OF(OSSL_CMP_ITAV) *itavs;
	int r;

	if (c == NULL)
		return ERR_INVALID;
	if ((ctx = ctx_new(c)) == NULL) {
		why_ossl(why, whylen, "cannot prepare the CMP request");
		return ERR_CRYPTO;
	}
	ERR_clear_error();
	/* a general message without content: the CA answers with a genp */
	itavs = OSSL_CMP_exec_GENM_ses(ctx);
	if (itavs != NULL || (ERR_peek_error() == 0 && !ca_answered(ctx))) {
		msg_set(why, whylen, "ok");
		r = 0;
	} else {
		why_failed(ctx, "no answer to a CMP general message", why, whylen);
		r = ca_answered(ctx) ? ERR_SIGNER : ERR_UNAVAILABLE;
	}
	sk_OSSL_CMP_ITAV_pop_free(itavs, OSSL_CMP_ITAV_free);
	OSSL_CMP_CTX_free(ctx);
	ERR_clear_error();
	return r;
}
