/*
 * peer.c: mutual authentication of two devices over any radio link
 * (DESIGN.md flow 3, seed Fig. 4). A TLS 1.3 handshake in which both sides
 * present their device certificate and sign with their keystore's key
 * (keystore_tls.c); each checks the other's chain to the CA chain it got at
 * intake, the dates, revocation (crl_cache.c) and that the certificate's
 * device identifier is the link-layer address the radio reports. The
 * accepting side then confirms in one TLS record that it took the
 * handshake, both export the link key (PEER_LINK_KEY_LABEL) and the TLS
 * session ends: the link goes on in seclink frames (seclink.c).
 *
 * On the air (docs/protocol.md, "Device-to-device authentication"):
 *   initiator                                 responder
 *   ClientHello (X25519 share)        ->
 *                                     <-  ServerHello .. CertificateRequest,
 *                                         Certificate, CertificateVerify, Finished
 *   Certificate, CertificateVerify,
 *   Finished                          ->
 *                                     <-  one application record: 0x01
 *   link key = TLS-Exporter(PEER_LINK_KEY_LABEL, "", 32) on both sides
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "device/device.h"

#define PEER_CONFIRM 0x01		/* the responder's record: "accepted" */
#define PEER_MAX_CERT_LIST 16384	/* bytes of the peer's Certificate message */
#define PEER_VERIFY_DEPTH 4
#define INTAKE_MAGIC "PLK1"		/* first bytes of an intake (pinlink.c) */

struct peer_ctx {
	SSL_CTX *tls[2];		/* [0] initiator (client), [1] responder */
	struct crl_cache *crl;		/* borrowed */
	int64_t crl_grace_s;
	int timeout_ms;
};

/* One handshake: the BIO's and the callbacks' state. */
struct peer_hs {
	struct peer_ctx *pc;
	struct radio_link *link;
	uint8_t peer[MAC_LEN];		/* the radio's view */
	struct radio_link_bio rb;	/* the BIO's state: deadline, last error */
	uint8_t first[4];		/* the first bytes read (rb's tap) */
	int refused;			/* our own check refused the peer: code */
	char why[256];			/* ... and why */
	int alert_read, alert_sent;	/* description + 1, or 0 */
};

/* ---------------------------------------------------------------------
 * The device identifier in a certificate.
 */

int
peer_cert_addr(X509 *cert, uint8_t addr[MAC_LEN])
{
	return cert_device_addr(cert, addr);	/* common/devid.c */
}

/* The certificate's serial as lowercase hex, padded to 32 digits (provd's
 * serials are 16 bytes), at most 40 (RFC 5280's 20 bytes). */
static int
serial_hex(X509 *x, char out[PEER_SERIAL_MAX])
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	unsigned char buf[20];
	int n, r = -1;

	if (bn == NULL || BN_is_negative(bn) || (n = BN_num_bytes(bn)) > (int)sizeof(buf))
		goto out;
	if (n < 16)
		n = 16;
	if (BN_bn2binpad(bn, buf, n) != n)
		goto out;
	hex_encode(buf, (size_t)n, out);
	r = 0;
out:
	BN_free(bn);
	ERR_clear_error();
	return r;
}

/* ---------------------------------------------------------------------
 * Checking the peer: OpenSSL's chain and dates, then ours.
 */
static int
is_foreign_ca(int err)
{
	return err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
	    err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
	    err == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
	    err == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
	    err == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE;
}

static int
verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct peer_hs *hs = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
	X509 *x = X509_STORE_CTX_get_current_cert(xs);
	uint8_t addr[MAC_LEN];
	char a[MAC_STR_LEN], b[MAC_STR_LEN], why[160];
	int depth = X509_STORE_CTX_get_error_depth(xs), r;

	if (hs == NULL)
		return 0;
	if (!ok) {
		int err = X509_STORE_CTX_get_error(xs);
		if (hs->refused == 0) {
			hs->refused = ERR_AUTH;
			msg_set(hs->why, sizeof(hs->why), "the certificate%s is refused: %s%s",
			    depth > 0 ? " chain" : "", X509_verify_cert_error_string(err),
			    is_foreign_ca(err) ? " (not issued by this enterprise's CA)" : "");
		}
		return 0;
	}
	if (depth != 0 || x == NULL)
		return 1;
	if (peer_cert_addr(x, addr) != 0) {
		hs->refused = ERR_AUTH;
		msg_set(hs->why, sizeof(hs->why), "the certificate carries no (or no single) "
		    "device identifier");
		/* the identifier plays the host name's part: bad_certificate */
		X509_STORE_CTX_set_error(xs, X509_V_ERR_HOSTNAME_MISMATCH);
		return 0;
	}
	if (memcmp(addr, hs->peer, MAC_LEN) != 0) {
		mac_format(addr, a);
		mac_format(hs->peer, b);
		hs->refused = ERR_AUTH;
		msg_set(hs->why, sizeof(hs->why), "the certificate names %s but the link-layer "
		    "peer is %s", a, b);
		X509_STORE_CTX_set_error(xs, X509_V_ERR_HOSTNAME_MISMATCH);
		return 0;
	}
	if ((r = crl_cache_check(hs->pc->crl, x, hs->pc->crl_grace_s, why, sizeof(why))) != 0) {
		hs->refused = r == ERR_FORBIDDEN ? ERR_FORBIDDEN : ERR_UNAVAILABLE;
		msg_set(hs->why, sizeof(hs->why), "%s", why);
		/* revocation unknown: an error libssl has no alert for, so the
		 * peer gets certificate_unknown (UNABLE_TO_GET_CRL would say
		 * unknown_ca) */
		X509_STORE_CTX_set_error(xs, r == ERR_FORBIDDEN ? X509_V_ERR_CERT_REVOKED :
		    X509_V_ERR_OCSP_VERIFY_NEEDED);
		return 0;
	}
	return 1;
}

static void
info_cb(const SSL *ssl, int where, int ret)
{
	struct peer_hs *hs = SSL_get_app_data(ssl);

	if (hs == NULL || !(where & SSL_CB_ALERT))
		return;
	if ((where & SSL_CB_READ) && hs->alert_read == 0)
		hs->alert_read = (ret & 0xff) + 1;
	else if ((where & SSL_CB_WRITE) && hs->alert_sent == 0)
		hs->alert_sent = (ret & 0xff) + 1;
}

/* ---------------------------------------------------------------------
 * Contexts.
 */
static SSL_CTX *
tls_ctx_new(const struct peer_params *p, X509_STORE *store, int server)
{
	SSL_CTX *c = SSL_CTX_new_ex(p->libctx, p->propq,
	    server ? TLS_server_method() : TLS_client_method());

	if (c == NULL)
		return NULL;
	if (!SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(c, "TLS_AES_128_GCM_SHA256") ||
	    !SSL_CTX_set1_groups_list(c, "X25519:P-256") ||
	    !SSL_CTX_set1_sigalgs_list(c, "ECDSA+SHA256") ||
	    !SSL_CTX_use_certificate(c, p->cert) ||
	    !SSL_CTX_use_PrivateKey(c, p->key) ||
	    !SSL_CTX_check_private_key(c) || !X509_STORE_up_ref(store)) {
		SSL_CTX_free(c);
		return NULL;
	}
	SSL_CTX_set_cert_store(c, store);	/* takes the reference */
	/* one full handshake per link: nothing of it is kept or resumed */
	SSL_CTX_set_num_tickets(c, 0);
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
	/* no middleboxes on a radio link: no dummy ChangeCipherSpec records */
	SSL_CTX_clear_options(c, SSL_OP_ENABLE_MIDDLEBOX_COMPAT);
	/* the link frames follow the handshake on the same stream: read no
	 * byte past the last TLS record */
	SSL_CTX_set_read_ahead(c, 0);
	SSL_CTX_set_max_cert_list(c, PEER_MAX_CERT_LIST);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
	SSL_CTX_set_verify_depth(c, PEER_VERIFY_DEPTH);
	SSL_CTX_set_info_callback(c, info_cb);
	return c;
}

int
peer_ctx_new(const struct peer_params *p, struct peer_ctx **out)
{
	struct peer_ctx *pc = NULL;
	X509_STORE *store = NULL;
	int r = ERR_CRYPTO;

	if (out == NULL)
		return ERR_INVALID;
	*out = NULL;
	if (p == NULL || p->key == NULL || p->cert == NULL || p->ca == NULL ||
	    sk_X509_num(p->ca) == 0 || p->timeout_ms < 0)
		return ERR_INVALID;
	if (X509_check_private_key(p->cert, p->key) != 1) {
		ERR_clear_error();
		log_warnx("the key is not the certificate's");
		return ERR_INVALID;
	}
	if ((pc = calloc(1, sizeof(*pc))) == NULL || (store = X509_STORE_new()) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	for (int i = 0; i < sk_X509_num(p->ca); i++)
		if (!X509_STORE_add_cert(store, sk_X509_value(p->ca, i))) {
			log_ossl("cannot add CA certificate %d to the trust store", i);
			goto out;
		}
	if ((pc->tls[0] = tls_ctx_new(p, store, 0)) == NULL ||
	    (pc->tls[1] = tls_ctx_new(p, store, 1)) == NULL) {
		log_ossl("cannot set up TLS for mutual authentication");
		goto out;
	}
	pc->crl = p->crl;
	pc->crl_grace_s = p->crl_grace_s;
	pc->timeout_ms = p->timeout_ms > 0 ? p->timeout_ms : PEER_TIMEOUT_MS_DEFAULT;
	*out = pc;
	pc = NULL;
	r = 0;
out:
	X509_STORE_free(store);		/* the contexts keep their references */
	peer_ctx_free(pc);
	return r;
}

void
peer_ctx_free(struct peer_ctx *pc)
{
	if (pc == NULL)
		return;
	SSL_CTX_free(pc->tls[0]);
	SSL_CTX_free(pc->tls[1]);
	free(pc);
}

void
peer_info_clear(struct peer_info *pi)
{
	if (pi == NULL)
		return;
	X509_free(pi->cert);
	memset(pi, 0, sizeof(*pi));
}

/* ---------------------------------------------------------------------
 * The handshake.
 */

/* After a failed handshake step: the code and a sentence. */
static int
hs_failure(struct peer_hs *hs, int server, const char *stage, char *why, size_t whylen)
{
	unsigned long e = 0, x;
	char ps[MAC_STR_LEN];
	int r, bad_sig = 0;

	/* the last error libssl raised names the step that failed; a failed
	 * CertificateVerify may come after the EVP layer's own errors */
	while ((x = ERR_get_error()) != 0) {
		if (ERR_GET_LIB(x) == ERR_LIB_SSL)
			e = x;
		if (ERR_GET_LIB(x) == ERR_LIB_SSL && ERR_GET_REASON(x) == SSL_R_BAD_SIGNATURE)
			bad_sig = 1;
		if (e == 0)
			e = x;
	}

	mac_format(hs->peer, ps);
	if (hs->refused != 0) {
		msg_set(why, whylen, "%s refused: %s", ps, hs->why);
		r = hs->refused;
	} else if (server && hs->rb.ntap == sizeof(hs->first) &&
	    memcmp(hs->first, INTAKE_MAGIC, sizeof(hs->first)) == 0) {
		msg_set(why, whylen, "intake from %s refused: this device is provisioned "
		    "(factory reset to enrol again)", ps);
		r = ERR_CONFLICT;
	} else if (hs->alert_read != 0) {
		msg_set(why, whylen, "%s refused this device (%s: %s)", ps, stage,
		    SSL_alert_desc_string_long(hs->alert_read - 1));
		r = ERR_AUTH;
	} else if (hs->rb.err == ERR_TIMEOUT) {
		msg_set(why, whylen, "%s stopped answering (%s)", ps, stage);
		r = ERR_TIMEOUT;
	} else if (hs->rb.err == ERR_IO || (e == 0 && hs->rb.err == 0)) {
		msg_set(why, whylen, "%s closed the link (%s)", ps, stage);
		r = ERR_IO;
	} else if (bad_sig) {
		msg_set(why, whylen, "%s refused: its signature does not verify with its "
		    "certificate's key (a certificate without its key)", ps);
		r = ERR_AUTH;
	} else {
		msg_set(why, whylen, "%s: %s failed: %s", ps, stage,
		    e != 0 ? ERR_reason_error_string(e) : "not TLS 1.3 of this profile");
		r = ERR_INVALID;
	}
	ERR_clear_error();
	return r;
}

static int
handshake(struct peer_ctx *pc, struct radio_link *l, int server, struct peer_info *info,
    uint8_t key[PEER_LINK_KEY_LEN], char *why, size_t whylen)
{
	struct peer_hs hs = { 0 };
	unsigned char c = PEER_CONFIRM;
	size_t n = 0;
	X509 *x;
	BIO *bio = NULL, *wbio = NULL;
	SSL *ssl = NULL;
	struct tm tm;
	int r = ERR_CRYPTO;

	if (info != NULL)
		memset(info, 0, sizeof(*info));
	msg_set(why, whylen, "%s", "");
	if (pc == NULL || l == NULL || info == NULL || key == NULL)
		return ERR_INVALID;
	hs.pc = pc;
	hs.link = l;
	radio_link_peer(l, hs.peer);
	hs.rb = (struct radio_link_bio){ .link = hs.link, .tap = hs.first,
	    .taplen = sizeof(hs.first),
	    .deadline_ns = now_ns() + (uint64_t)pc->timeout_ms * 1000000u };
	ERR_clear_error();
	/* reads straight from the link (libssl reads no byte past a record);
	 * writes through a buffer, so that a flight of handshake messages
	 * leaves in one write when libssl flushes it */
	if ((ssl = SSL_new(pc->tls[server != 0])) == NULL || (bio = radio_link_bio_new(&hs.rb)) == NULL ||
	    (wbio = BIO_new(BIO_f_buffer())) == NULL || !BIO_up_ref(bio)) {
		log_ossl("TLS session");
		msg_set(why, whylen, "cannot start TLS");
		BIO_free(bio);
		BIO_free(wbio);
		goto out;
	}
	BIO_push(wbio, bio);
	SSL_set_bio(ssl, bio, wbio);		/* takes one reference of each */
	SSL_set_app_data(ssl, &hs);

	if ((server ? SSL_accept(ssl) : SSL_connect(ssl)) != 1) {
		r = hs_failure(&hs, server, "handshake", why, whylen);
		goto out;
	}
	/* the responder says it took the handshake: until then the initiator
	 * cannot know (its Finished is the handshake's last message) */
	if (server ? SSL_write_ex(ssl, &c, 1, &n) != 1 || BIO_flush(wbio) != 1 :
	    SSL_read_ex(ssl, &c, 1, &n) != 1 || n != 1 || c != PEER_CONFIRM) {
		if (!server && n == 1 && c != PEER_CONFIRM) {
			hs.refused = ERR_INVALID;
			msg_set(hs.why, sizeof(hs.why), "an unknown confirmation record");
		}
		r = hs_failure(&hs, server, "confirmation", why, whylen);
		goto out;
	}
	if ((x = SSL_get0_peer_certificate(ssl)) == NULL || SSL_get_verify_result(ssl) != X509_V_OK ||
	    SSL_version(ssl) != TLS1_3_VERSION) {
		msg_set(why, whylen, "the handshake ended without a verified peer certificate");
		r = ERR_INTERNAL;
		goto out;
	}
	if (SSL_export_keying_material(ssl, key, PEER_LINK_KEY_LEN, PEER_LINK_KEY_LABEL,
	    strlen(PEER_LINK_KEY_LABEL), NULL, 0, 0) != 1) {
		log_ossl("cannot export the link key");
		msg_set(why, whylen, "cannot export the link key");
		goto out;
	}
	if (serial_hex(x, info->serial) != 0 ||
	    ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1 ||
	    peer_cert_addr(x, info->addr) != 0 || !X509_up_ref(x)) {
		OPENSSL_cleanse(key, PEER_LINK_KEY_LEN);
		msg_set(why, whylen, "cannot read the peer's certificate");
		r = ERR_INTERNAL;
		goto out;
	}
	info->not_after = (int64_t)timegm(&tm);
	info->cert = x;
	r = 0;
out:
	if (r != 0 && info != NULL)
		peer_info_clear(info);
	/* no close_notify: the link frames follow on the same stream. Freeing
	 * the session wipes its keys. */
	SSL_free(ssl);
	ERR_clear_error();
	return r;
}

int
peer_connect(struct peer_ctx *pc, struct radio_link *l, struct peer_info *info,
    uint8_t key[PEER_LINK_KEY_LEN], char *why, size_t whylen)
{
	return handshake(pc, l, 0, info, key, why, whylen);
}

int
peer_accept(struct peer_ctx *pc, struct radio_link *l, struct peer_info *info,
    uint8_t key[PEER_LINK_KEY_LEN], char *why, size_t whylen)
{
	return handshake(pc, l, 1, info, key, why, whylen);
}
