/*
 * pinlink.c: the PIN-secured temporary link of intake. SPAKE2+ (RFC 9383)
 * over the raw radio link turns the setup PIN into a fresh shared key; that
 * key is the external PSK of a TLS 1.3 session (psk_dhe_ke, so a second
 * ephemeral key exchange) that carries the intake protocol.
 *
 * On the air, before TLS:
 *   prover   -> verifier  "PLK1" shareP(65)
 *   verifier -> prover    shareV(65) confirmV(32)
 *   prover   -> verifier  confirmP(32)
 * A wrong PIN ends the link; neither side learns which side was wrong.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "provision/provision.h"

#define PLK_MAGIC "PLK1"
#define PLK_MAGIC_LEN 4
#define PLK_CONTEXT "provd intake link v1"
#define PLK_ID_PROVER "provd"
#define PLK_PSK_IDENTITY "provd-intake-v1"

struct pinlink {
	struct radio_link *link;	/* borrowed */
	SSL_CTX *ctx;			/* shared, see tls_ctx */
	SSL *ssl;
	int timeout_ms;
	struct radio_link_bio rb;	/* the BIO's state: the link, its last error */
	uint8_t psk[SPAKE2P_KEY_LEN];	/* wiped once the handshake is done */
};

/* ---------------------------------------------------------------------
 * TLS 1.3 with the SPAKE2+ key as external PSK.
 */
static SSL_SESSION *
psk_session(SSL *ssl, const uint8_t psk[SPAKE2P_KEY_LEN])
{
	static const unsigned char aes128gcm[] = { 0x13, 0x01 };
	const SSL_CIPHER *c = SSL_CIPHER_find(ssl, aes128gcm);
	SSL_SESSION *s = SSL_SESSION_new();

	if (c == NULL || s == NULL || !SSL_SESSION_set1_master_key(s, psk, SPAKE2P_KEY_LEN) ||
	    !SSL_SESSION_set_cipher(s, c) ||
	    !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
		SSL_SESSION_free(s);
		return NULL;
	}
	return s;
}

static int
psk_use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
    SSL_SESSION **sess)
{
	struct pinlink *p = SSL_get_app_data(ssl);
	(void)md;

	if ((*sess = psk_session(ssl, p->psk)) == NULL)
		return 0;
	*id = (const unsigned char *)PLK_PSK_IDENTITY;
	*idlen = strlen(PLK_PSK_IDENTITY);
	return 1;
}

static int
psk_find_cb(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
	struct pinlink *p = SSL_get_app_data(ssl);

	*sess = NULL;
	if (idlen != strlen(PLK_PSK_IDENTITY) || memcmp(id, PLK_PSK_IDENTITY, idlen) != 0)
		return 1;	/* unknown identity: the handshake fails */
	*sess = psk_session(ssl, p->psk);
	return *sess != NULL;
}

void
pinlink_close(struct pinlink *p)
{
	if (p == NULL)
		return;
	if (p->ssl != NULL) {
		(void)SSL_shutdown(p->ssl);
		SSL_free(p->ssl);	/* also frees the BIO; wipes the keys */
	}
	OPENSSL_cleanse(p->psk, sizeof(p->psk));
	free(p);
}

/*
 * One TLS context per role for the whole process: making one costs more
 * than the handshake itself, and nothing in it is per link (the PSK comes
 * from each session's app data, tickets and the session cache are off).
 */
static SSL_CTX *tls_ctx[2];
static CRYPTO_ONCE tls_once = CRYPTO_ONCE_STATIC_INIT;

static void
tls_ctx_init(void)
{
	for (int server = 0; server < 2; server++) {
		SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
		if (c == NULL || !SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) ||
		    !SSL_CTX_set_ciphersuites(c, "TLS_AES_128_GCM_SHA256")) {
			log_ossl("TLS context");
			SSL_CTX_free(c);
			continue;
		}
		/* no session tickets: nothing of this link outlives it */
		SSL_CTX_set_num_tickets(c, 0);
		SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
		if (server)
			SSL_CTX_set_psk_find_session_callback(c, psk_find_cb);
		else
			SSL_CTX_set_psk_use_session_callback(c, psk_use_cb);
		tls_ctx[server] = c;
	}
}

static int
tls_start(struct pinlink *p, int server)
{
	BIO *bio;
	int ret;

	CRYPTO_THREAD_run_once(&tls_once, tls_ctx_init);
	if (tls_ctx[server != 0] == NULL)
		return ERR_CRYPTO;
	p->ctx = tls_ctx[server != 0];
	p->rb = (struct radio_link_bio){ .link = p->link, .timeout_ms = p->timeout_ms };
	if ((p->ssl = SSL_new(p->ctx)) == NULL || (bio = radio_link_bio_new(&p->rb)) == NULL) {
		log_ossl("TLS session");
		return ERR_CRYPTO;
	}
	SSL_set_bio(p->ssl, bio, bio);
	SSL_set_app_data(p->ssl, p);
	ret = server ? SSL_accept(p->ssl) : SSL_connect(p->ssl);
	OPENSSL_cleanse(p->psk, sizeof(p->psk));
	if (ret != 1) {
		/* a wrong PIN on either side ends here or in the exchange */
		ERR_clear_error();
		return ERR_AUTH;
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * The PAKE on the raw link, then TLS.
 */

/* After a confirmed SPAKE2+ run: TLS keyed with its K_shared. Frees sp. */
static int
session_start(struct radio_link *l, struct spake2p *sp, int timeout_ms, int server,
    struct pinlink **out)
{
	struct pinlink *p;
	int r;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		spake2p_free(sp);
		return ERR_NOMEM;
	}
	p->link = l;
	p->timeout_ms = timeout_ms;
	r = spake2p_shared_key(sp, p->psk);
	spake2p_free(sp);
	if (r == 0 && (r = tls_start(p, server)) == 0) {
		*out = p;
		return 0;
	}
	pinlink_close(p);
	return r;
}
int
pinlink_connect(struct radio_link *l, const char *pin, const uint8_t dev_addr[MAC_LEN],
    int timeout_ms, struct pinlink **out)
{
	uint8_t w0[SPAKE2P_SCALAR_LEN], w1[SPAKE2P_SCALAR_LEN];
	uint8_t first[PLK_MAGIC_LEN + SPAKE2P_POINT_LEN];
	uint8_t reply[SPAKE2P_POINT_LEN + SPAKE2P_MAC_LEN], confirmP[SPAKE2P_MAC_LEN];
	struct spake2p *sp = NULL;
	int r;

	*out = NULL;
	if ((r = spake2p_derive(pin, dev_addr, MAC_LEN, w0, w1)) != 0)
		goto out;
	if ((r = spake2p_prover_new(w0, w1, (const uint8_t *)PLK_CONTEXT, strlen(PLK_CONTEXT),
	    (const uint8_t *)PLK_ID_PROVER, strlen(PLK_ID_PROVER), dev_addr, MAC_LEN, &sp)) != 0)
		goto out;
	OPENSSL_cleanse(w0, sizeof(w0));
	OPENSSL_cleanse(w1, sizeof(w1));
	memcpy(first, PLK_MAGIC, PLK_MAGIC_LEN);
	if ((r = spake2p_prover_start(sp, first + PLK_MAGIC_LEN)) != 0)
		goto out;
	/* a device that refuses (wrong PIN, intake locked) just hangs up, at
	 * whatever point of the exchange: that is ERR_AUTH like a bad MAC */
	if ((r = radio_link_write(l, first, sizeof(first), timeout_ms)) != 0 ||
	    (r = radio_link_read(l, reply, sizeof(reply), timeout_ms)) != 0) {
		r = r == ERR_IO ? ERR_AUTH : r;
		goto out;
	}
	if ((r = spake2p_prover_finish(sp, reply, reply + SPAKE2P_POINT_LEN, confirmP)) != 0 ||
	    (r = radio_link_write(l, confirmP, sizeof(confirmP), timeout_ms)) != 0)
		goto out;
	r = session_start(l, sp, timeout_ms, 0, out);
	sp = NULL;
out:
	OPENSSL_cleanse(w0, sizeof(w0));
	OPENSSL_cleanse(w1, sizeof(w1));
	spake2p_free(sp);
	return r;
}

int
pinlink_accept(struct radio_link *l, const uint8_t w0[SPAKE2P_SCALAR_LEN],
    const uint8_t L[SPAKE2P_POINT_LEN], const uint8_t self_addr[MAC_LEN], int timeout_ms,
    struct pinlink **out)
{
	uint8_t first[PLK_MAGIC_LEN + SPAKE2P_POINT_LEN];
	uint8_t reply[SPAKE2P_POINT_LEN + SPAKE2P_MAC_LEN], confirmP[SPAKE2P_MAC_LEN];
	struct spake2p *sp = NULL;
	int r;

	*out = NULL;
	if ((r = radio_link_read(l, first, sizeof(first), timeout_ms)) != 0)
		goto out;
	if (memcmp(first, PLK_MAGIC, PLK_MAGIC_LEN) != 0) {
		r = ERR_INVALID;
		goto out;
	}
	if ((r = spake2p_verifier_new(w0, L, (const uint8_t *)PLK_CONTEXT, strlen(PLK_CONTEXT),
	    (const uint8_t *)PLK_ID_PROVER, strlen(PLK_ID_PROVER), self_addr, MAC_LEN, &sp)) != 0 ||
	    (r = spake2p_verifier_respond(sp, first + PLK_MAGIC_LEN, reply,
	    reply + SPAKE2P_POINT_LEN)) != 0)
		goto out;
	/*
	 * From here the peer holds confirmV and can test its PIN guess offline
	 * whatever happens next: every failure counts as a wrong PIN (ERR_AUTH),
	 * so that a prover who goes silent instead of answering cannot guess
	 * without the device's lockout seeing it.
	 */
	if (radio_link_write(l, reply, sizeof(reply), timeout_ms) != 0 ||
	    radio_link_read(l, confirmP, sizeof(confirmP), timeout_ms) != 0 ||
	    spake2p_verifier_finish(sp, confirmP) != 0) {
		r = ERR_AUTH;
		goto out;
	}
	r = session_start(l, sp, timeout_ms, 1, out);
	sp = NULL;
out:
	spake2p_free(sp);
	return r;
}

/* ---------------------------------------------------------------------
 * Bytes and intake messages inside the session.
 */
int
pinlink_write(struct pinlink *p, const void *buf, size_t len)
{
	size_t written = 0;

	if (len == 0)
		return 0;
	p->rb.err = 0;
	if (SSL_write_ex(p->ssl, buf, len, &written) != 1 || written != len) {
		ERR_clear_error();
		return p->rb.err == ERR_TIMEOUT ? ERR_TIMEOUT : ERR_IO;
	}
	return 0;
}

int
pinlink_read(struct pinlink *p, void *buf, size_t len)
{
	size_t off = 0, got;

	p->rb.err = 0;
	while (off < len) {
		if (SSL_read_ex(p->ssl, (char *)buf + off, len - off, &got) != 1) {
			/* closed, reset, timed out or tampered with: the link is
			 * over; a peer that went silent is told apart */
			ERR_clear_error();
			return p->rb.err == ERR_TIMEOUT ? ERR_TIMEOUT : ERR_IO;
		}
		off += got;
	}
	return 0;
}

int
pinlink_send(struct pinlink *p, const struct proto_msg *m)
{
	uint8_t *buf;
	size_t cap = PROTO_HDR_LEN + PROTO_MAX_PAYLOAD, len = 0;
	int r;

	if ((buf = malloc(cap)) == NULL)
		return ERR_NOMEM;
	if ((r = proto_encode(m, buf, cap, &len)) == 0)
		r = pinlink_write(p, buf, len);
	OPENSSL_cleanse(buf, len);	/* a KEY_DELIVERY frame holds a private key */
	free(buf);
	return r;
}

int
pinlink_recv(struct pinlink *p, uint8_t *buf, size_t cap, struct proto_msg *m)
{
	size_t framelen = 0;
	int r;

	if (cap < PROTO_HDR_LEN)
		return ERR_TOO_BIG;
	if ((r = pinlink_read(p, buf, PROTO_HDR_LEN)) != 0 ||
	    (r = proto_frame_len(buf, &framelen)) != 0)
		return r;
	if (framelen > cap)
		return ERR_TOO_BIG;
	if ((r = pinlink_read(p, buf + PROTO_HDR_LEN, framelen - PROTO_HDR_LEN)) != 0)
		return r;
	return proto_decode(buf, framelen, m);
}

int
pinlink_send_error(struct pinlink *p, enum proto_errcode code, const char *text)
{
	struct proto_msg m = { .type = PROTO_ERROR };

	m.u.error.code = code;
	snprintf(m.u.error.text, sizeof(m.u.error.text), "%s", text);
	return pinlink_send(p, &m);
}

int
pinlink_export(struct pinlink *p, const char *label, uint8_t *out, size_t outlen)
{
	if (SSL_export_keying_material(p->ssl, out, outlen, label, strlen(label),
	    NULL, 0, 0) != 1) {
		ERR_clear_error();
		return ERR_CRYPTO;
	}
	return 0;
}
