/*
 * seclink.c: the encrypted link two devices keep after mutual
 * authentication, standing in for the radio's own link encryption. Every
 * frame is sealed with AES-256-GCM under a key of its direction; a key
 * change (X25519, run inside the encrypted link) replaces the keys of both
 * directions without stopping traffic, and the old ones are wiped.
 *
 * Frame (docs/protocol.md, "Link frames"):
 *   version(1) = 1 | epoch(1) | length(2, big-endian) | sequence(8, big-endian)
 *   | AES-256-GCM(type(1) || data) with the 12 header bytes as additional
 *   data, 16-byte tag last; length counts type, data and tag.
 *
 * Keys: master M_0 is the exported link key. For master M and direction d
 * ("i2r": initiator to responder, "r2i"):
 *   key_d = HKDF-Expand-SHA256(M, "provd link v1 " d " key", 32)
 *   iv_d  = HKDF-Expand-SHA256(M, "provd link v1 " d " iv", 12)
 *   nonce = iv_d XOR (0^32 || sequence)
 * The sequence starts at 0 for each key and counts frames; the receiver
 * takes only the next one, so a replayed, dropped or reordered frame ends
 * the link, as does one whose tag does not verify.
 *
 * Key change, started by either side ("A"; B answers):
 *   A: REKEY(e+1, X25519 share a)             last frames of A under e follow
 *   B: REKEY_ACK(e+1, share b), then B sends under e+1
 *   A: REKEY_FIN(e+1), then A sends under e+1; B reads e+1 after FIN
 *   M_{e+1} = HKDF-SHA256(salt = M_e, ikm = X25519(a, b),
 *                         info = "provd link v1 rekey" || e+1 || share_A || share_B)
 * Both shares travel inside frames sealed with the current keys, which
 * authenticates them; the new master needs the old one and the new
 * Diffie-Hellman secret. When both sides start at once, the link
 * initiator's REKEY wins and the responder drops its own.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "device/device.h"

#define SL_VERSION 1
#define SL_IV_LEN 12
#define SL_SHARE_LEN 32			/* X25519 public key */
#define SL_BODY_MIN (1 + SECLINK_TAG_LEN)
#define SL_BODY_MAX (1 + SECLINK_MAX_DATA + SECLINK_TAG_LEN)
#define SL_CLOSE_MS 1000		/* how long CLOSE may take to leave */

enum sl_rekey {
	RK_IDLE,			/* no key change under way */
	RK_SENT,			/* we sent REKEY; waiting for REKEY_ACK */
	RK_ACKED,			/* we answered; our receive key changes at FIN */
};

/* One direction under one key. */
struct sl_dir {
	EVP_CIPHER_CTX *aead;		/* keyed; the IV is set per frame */
	uint8_t iv[SL_IV_LEN];
	uint64_t seq;			/* next sequence number */
	uint8_t epoch;
};

struct seclink {
	struct seclink_io io;
	int initiator;
	int64_t rekey_ms;
	uint32_t rekey_frames;
	int timeout_ms;

	uint8_t *master;		/* M_e, secure heap */
	uint64_t key_start_ns;		/* when M_e was agreed */
	struct sl_dir tx, rx;
	struct sl_dir rx_next;		/* RK_ACKED: the peer's next key */

	enum sl_rekey rk;
	EVP_PKEY *share;		/* RK_SENT: our X25519 key */
	uint8_t share_pub[SL_SHARE_LEN];
	uint64_t rk_start_ns;

	/* the frame being read: rgot of rneed bytes (the header first) */
	uint8_t rbuf[SECLINK_MAX_FRAME];
	size_t rgot, rneed;
	uint64_t rstart_ns;
	/* the opened frame's plaintext (type, data) */
	uint8_t pbuf[1 + SECLINK_MAX_DATA];
	size_t plen;
	int pending;			/* pbuf holds DATA not yet returned */
	/* the frame being sent */
	uint8_t tbuf[SECLINK_MAX_FRAME];

	struct seclink_stats st;
	int dead, peer_closed;
	char err[160];
};

/* ---------------------------------------------------------------------
 * Algorithms, fetched once per process.
 */
static EVP_KDF *sl_hkdf;
static EVP_CIPHER *sl_gcm;
static CRYPTO_ONCE sl_once = CRYPTO_ONCE_STATIC_INIT;

static void
sl_algs_init(void)
{
	sl_hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	sl_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

/* HKDF-SHA256: with salt, extract and expand; without, expand only (prk
 * is then the pseudorandom key). */
static int
sl_hkdf_run(const uint8_t *salt, size_t saltlen, const uint8_t *key, size_t keylen,
    const uint8_t *info, size_t infolen, uint8_t *out, size_t outlen)
{
	EVP_KDF_CTX *k;
	OSSL_PARAM p[6], *q = p;
	int mode = salt != NULL ? EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND :
	    EVP_KDF_HKDF_MODE_EXPAND_ONLY;
	int ok;

	if ((k = EVP_KDF_CTX_new(sl_hkdf)) == NULL)
		return ERR_CRYPTO;
	*q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	*q++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, keylen);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen);
	if (salt != NULL)
		*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen);
	*q = OSSL_PARAM_construct_end();
	ok = EVP_KDF_derive(k, out, outlen, p) == 1;
	EVP_KDF_CTX_free(k);
	return ok ? 0 : ERR_CRYPTO;
}

static void
sl_dir_clear(struct sl_dir *d)
{
	EVP_CIPHER_CTX_free(d->aead);	/* cleanses the key schedule */
	OPENSSL_cleanse(d, sizeof(*d));
}

/* Keys direction d ("i2r" or "r2i") from master, for sealing (enc) or
 * opening; sequence 0. Replaces what d held. */
static int
sl_dir_key(struct sl_dir *d, const uint8_t *master, const char *name, int enc, uint8_t epoch)
{
	char label[32];
	uint8_t key[32];
	EVP_CIPHER_CTX *c = NULL;
	int r = ERR_CRYPTO;

	snprintf(label, sizeof(label), "provd link v1 %s key", name);
	if ((r = sl_hkdf_run(NULL, 0, master, SECLINK_KEY_LEN, (const uint8_t *)label,
	    strlen(label), key, sizeof(key))) != 0)
		goto out;
	sl_dir_clear(d);
	snprintf(label, sizeof(label), "provd link v1 %s iv", name);
	if ((r = sl_hkdf_run(NULL, 0, master, SECLINK_KEY_LEN, (const uint8_t *)label,
	    strlen(label), d->iv, sizeof(d->iv))) != 0)
		goto out;
	r = ERR_CRYPTO;
	if ((c = EVP_CIPHER_CTX_new()) == NULL ||
	    (enc ? EVP_EncryptInit_ex2(c, sl_gcm, key, NULL, NULL) :
	    EVP_DecryptInit_ex2(c, sl_gcm, key, NULL, NULL)) != 1)
		goto out;
	d->aead = c;
	c = NULL;
	d->seq = 0;
	d->epoch = epoch;
	r = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	EVP_CIPHER_CTX_free(c);
	return r;
}

static void
sl_nonce(const struct sl_dir *d, uint8_t nonce[SL_IV_LEN])
{
	memcpy(nonce, d->iv, SL_IV_LEN);
	for (int i = 0; i < 8; i++)
		nonce[SL_IV_LEN - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

/* ---------------------------------------------------------------------
 * Failure, sealing, opening.
 */
static int
sl_fail(struct seclink *s, int code, const char *why)
{
	if (!s->dead) {
		s->dead = 1;
		str_copy(s->err, sizeof(s->err), why);
		log_info("link ended: %s", why);
	}
	return code;
}

/* Seals (type, data) under tx into tbuf and writes it. */
static int
sl_send_frame(struct seclink *s, uint8_t type, const void *data, size_t len)
{
	uint8_t *f = s->tbuf, nonce[SL_IV_LEN];
	size_t body = 1 + len + SECLINK_TAG_LEN;
	int n1 = 0, n2 = 0, n3 = 0, r;

	if (s->dead)
		return ERR_IO;
	if (len > SECLINK_MAX_DATA)
		return ERR_TOO_BIG;
	if (s->tx.seq >= SECLINK_FRAMES_MAX)
		return sl_fail(s, ERR_INVALID, "the send key reached its frame limit without a "
		    "key change");
	f[0] = SL_VERSION;
	f[1] = s->tx.epoch;
	f[2] = (uint8_t)(body >> 8);
	f[3] = (uint8_t)body;
	for (int i = 0; i < 8; i++)
		f[4 + i] = (uint8_t)(s->tx.seq >> (56 - 8 * i));
	f[SECLINK_HDR_LEN] = type;
	if (len > 0)
		memcpy(f + SECLINK_HDR_LEN + 1, data, len);
	sl_nonce(&s->tx, nonce);
	if (EVP_EncryptInit_ex2(s->tx.aead, NULL, NULL, nonce, NULL) != 1 ||
	    EVP_EncryptUpdate(s->tx.aead, NULL, &n1, f, SECLINK_HDR_LEN) != 1 ||
	    EVP_EncryptUpdate(s->tx.aead, f + SECLINK_HDR_LEN, &n2, f + SECLINK_HDR_LEN,
	    (int)(1 + len)) != 1 ||
	    EVP_EncryptFinal_ex(s->tx.aead, f + SECLINK_HDR_LEN + n2, &n3) != 1 ||
	    (size_t)(n2 + n3) != 1 + len ||
	    EVP_CIPHER_CTX_ctrl(s->tx.aead, EVP_CTRL_AEAD_GET_TAG, SECLINK_TAG_LEN,
	    f + SECLINK_HDR_LEN + 1 + len) != 1) {
		ERR_clear_error();
		return sl_fail(s, ERR_CRYPTO, "cannot seal a frame");
	}
	s->tx.seq++;
	/* sealed in place: no plaintext is left in tbuf */
	r = s->io.write(s->io.arg, f, SECLINK_HDR_LEN + body, s->timeout_ms);
	if (r != 0)
		return sl_fail(s, r == ERR_TIMEOUT ? ERR_TIMEOUT : ERR_IO, r == ERR_TIMEOUT ?
		    "the peer stopped reading (a write timed out)" : "the link closed");
	return 0;
}

/* Checks the header in rbuf; sets rneed to the whole frame's length. */
static int
sl_header(struct seclink *s)
{
	const uint8_t *h = s->rbuf;
	size_t body = (size_t)h[2] << 8 | h[3];
	uint64_t seq = 0;

	if (h[0] != SL_VERSION)
		return sl_fail(s, ERR_INVALID, "a frame of an unknown version");
	if (body < SL_BODY_MIN || body > SL_BODY_MAX)
		return sl_fail(s, ERR_INVALID, "a frame length out of bounds");
	for (int i = 0; i < 8; i++)
		seq = seq << 8 | h[4 + i];
	if (h[1] != s->rx.epoch)
		return sl_fail(s, ERR_INVALID, "a frame under another key (replayed, or "
		    "the key change went wrong)");
	if (seq != s->rx.seq)
		return sl_fail(s, ERR_INVALID, "a frame out of sequence (replayed, dropped "
		    "or reordered)");
	s->rneed = SECLINK_HDR_LEN + body;
	return 0;
}

/* Opens the complete frame in rbuf into pbuf/plen. */
static int
sl_open(struct seclink *s)
{
	uint8_t nonce[SL_IV_LEN];
	size_t ct = s->rneed - SECLINK_HDR_LEN - SECLINK_TAG_LEN;
	const uint8_t *tag = s->rbuf + s->rneed - SECLINK_TAG_LEN;
	int n1 = 0, n2 = 0, n3 = 0;

	sl_nonce(&s->rx, nonce);
	if (EVP_DecryptInit_ex2(s->rx.aead, NULL, NULL, nonce, NULL) != 1 ||
	    EVP_DecryptUpdate(s->rx.aead, NULL, &n1, s->rbuf, SECLINK_HDR_LEN) != 1 ||
	    EVP_DecryptUpdate(s->rx.aead, s->pbuf, &n2, s->rbuf + SECLINK_HDR_LEN, (int)ct) != 1 ||
	    EVP_CIPHER_CTX_ctrl(s->rx.aead, EVP_CTRL_AEAD_SET_TAG, SECLINK_TAG_LEN,
	    (void *)tag) != 1 ||
	    EVP_DecryptFinal_ex(s->rx.aead, s->pbuf + n2, &n3) != 1 ||
	    (size_t)(n2 + n3) != ct) {
		ERR_clear_error();
		OPENSSL_cleanse(s->pbuf, ct);
		return sl_fail(s, ERR_AUTH, "a frame failed authentication (altered, or not "
		    "sealed with this link's key)");
	}
	s->rx.seq++;
	s->plen = ct;
	s->rgot = 0;
	s->rneed = SECLINK_HDR_LEN;
	return 0;
}

/*
 * Reads the rest of the current frame. Waits until deadline (now_ns
 * clock; 0: do not wait; UINT64_MAX: no limit) for it; once a frame
 * started arriving it must be complete within timeout_ms. 0 when the frame
 * is complete; ERR_TIMEOUT when the caller's time ran out (what arrived is
 * kept); any other code ends the link.
 */
static int
sl_read_frame(struct seclink *s, uint64_t deadline)
{
	for (;;) {
		uint64_t now = now_ns(), until = deadline;
		uint64_t frame_end = s->rstart_ns + (uint64_t)s->timeout_ms * 1000000u;
		size_t got = 0;
		int r, tmo;

		if (s->rgot == s->rneed) {
			if (s->rneed > SECLINK_HDR_LEN)
				return 0;
			if ((r = sl_header(s)) != 0)
				return r;
			continue;
		}
		if (s->rgot > 0 && now >= frame_end)
			return sl_fail(s, ERR_TIMEOUT, "the peer stopped in the middle of a frame");
		if (s->rgot > 0 && frame_end < until)
			until = frame_end;
		if (deadline == 0 || until <= now)
			tmo = 0;
		else if (until == UINT64_MAX)
			tmo = -1;
		else if ((until - now) / 1000000u >= INT32_MAX)
			tmo = INT32_MAX;
		else
			tmo = (int)((until - now + 999999u) / 1000000u);
		r = s->io.read_some(s->io.arg, s->rbuf + s->rgot, s->rneed - s->rgot, &got, tmo);
		if (r == ERR_TIMEOUT) {
			if (s->rgot > 0 && now_ns() >= frame_end)
				return sl_fail(s, ERR_TIMEOUT, "the peer stopped in the middle of a frame");
			return ERR_TIMEOUT;
		}
		if (r != 0)
			return sl_fail(s, ERR_IO, s->rgot > 0 ? "the link closed in the middle of a frame" :
			    "the link closed");
		if (got == 0 || got > s->rneed - s->rgot)
			return sl_fail(s, ERR_INTERNAL, "the transport read too much");
		if (s->rgot == 0)
			s->rstart_ns = now;
		s->rgot += got;
	}
}

/* ---------------------------------------------------------------------
 * Key changes.
 */
static const char *
dir_name(int initiator, int sending)
{
	return initiator == sending ? "i2r" : "r2i";
}

/* Our share: a fresh X25519 key and its public value. */
static int
sl_share_new(EVP_PKEY **key, uint8_t pub[SL_SHARE_LEN])
{
	size_t len = SL_SHARE_LEN;

	if ((*key = EVP_PKEY_Q_keygen(NULL, NULL, "X25519")) == NULL ||
	    EVP_PKEY_get_raw_public_key(*key, pub, &len) != 1 || len != SL_SHARE_LEN) {
		EVP_PKEY_free(*key);
		*key = NULL;
		ERR_clear_error();
		return ERR_CRYPTO;
	}
	return 0;
}

/* M_{e+1} from M_e and X25519(mine, theirs), with the starter's share
 * first in the info; replaces s->master. */
static int
sl_next_master(struct seclink *s, EVP_PKEY *mine, const uint8_t theirs[SL_SHARE_LEN],
    const uint8_t *starter_pub, const uint8_t *answer_pub, uint8_t epoch)
{
	static const char label[] = "provd link v1 rekey";
	uint8_t dh[32], info[sizeof(label) - 1 + 1 + 2 * SL_SHARE_LEN], next[SECLINK_KEY_LEN];
	size_t dhlen = sizeof(dh), n = sizeof(label) - 1;
	EVP_PKEY *peer = NULL;
	EVP_PKEY_CTX *c = NULL;
	int r = ERR_CRYPTO;

	if ((peer = EVP_PKEY_new_raw_public_key_ex(NULL, "X25519", NULL, theirs,
	    SL_SHARE_LEN)) == NULL ||
	    (c = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL)) == NULL ||
	    EVP_PKEY_derive_init(c) != 1 || EVP_PKEY_derive_set_peer(c, peer) != 1 ||
	    EVP_PKEY_derive(c, dh, &dhlen) != 1 || dhlen != sizeof(dh)) {
		/* a low-order share gives an all-zero secret, which OpenSSL refuses */
		r = ERR_INVALID;
		goto out;
	}
	memcpy(info, label, n);
	info[n] = epoch;
	memcpy(info + n + 1, starter_pub, SL_SHARE_LEN);
	memcpy(info + n + 1 + SL_SHARE_LEN, answer_pub, SL_SHARE_LEN);
	if ((r = sl_hkdf_run(s->master, SECLINK_KEY_LEN, dh, sizeof(dh), info, sizeof(info),
	    next, sizeof(next))) != 0)
		goto out;
	memcpy(s->master, next, SECLINK_KEY_LEN);
	s->key_start_ns = now_ns();
	r = 0;
out:
	ERR_clear_error();
	OPENSSL_cleanse(dh, sizeof(dh));
	OPENSSL_cleanse(next, sizeof(next));
	EVP_PKEY_CTX_free(c);
	EVP_PKEY_free(peer);
	return r;
}

static void
sl_share_drop(struct seclink *s)
{
	EVP_PKEY_free(s->share);	/* X25519 private keys live on the secure heap */
	s->share = NULL;
	OPENSSL_cleanse(s->share_pub, sizeof(s->share_pub));
}

/* Starts a key change: REKEY with a fresh share. */
static int
sl_rekey_start(struct seclink *s)
{
	uint8_t msg[1 + SL_SHARE_LEN];
	int r;

	if (s->rk != RK_IDLE)
		return 0;
	if (sl_share_new(&s->share, s->share_pub) != 0)
		return sl_fail(s, ERR_CRYPTO, "cannot make a key share");
	msg[0] = (uint8_t)(s->tx.epoch + 1);
	memcpy(msg + 1, s->share_pub, SL_SHARE_LEN);
	s->rk = RK_SENT;
	s->rk_start_ns = now_ns();
	if ((r = sl_send_frame(s, SECLINK_REKEY, msg, sizeof(msg))) != 0)
		return r;
	log_debug("key change %u started", (unsigned)msg[0]);
	return 0;
}

/* The peer's REKEY: answer with ACK, then send under the new key. */
static int
sl_on_rekey(struct seclink *s, const uint8_t *d, size_t len)
{
	uint8_t ack[1 + SL_SHARE_LEN], next = (uint8_t)(s->rx.epoch + 1);
	EVP_PKEY *mine = NULL;
	int r;

	if (len != 1 + SL_SHARE_LEN || d[0] != next || s->rk == RK_ACKED)
		return sl_fail(s, ERR_INVALID, "a key change out of order");
	if (s->rk == RK_SENT) {
		if (s->initiator)
			return 0;	/* ours wins: the peer answers it and drops its own */
		sl_share_drop(s);
		s->rk = RK_IDLE;
	}
	if (sl_share_new(&mine, ack + 1) != 0)
		return sl_fail(s, ERR_CRYPTO, "cannot make a key share");
	ack[0] = next;
	if ((r = sl_next_master(s, mine, d + 1, d + 1, ack + 1, next)) != 0) {
		EVP_PKEY_free(mine);
		return sl_fail(s, r, "the peer's key share is unusable");
	}
	EVP_PKEY_free(mine);
	if ((r = sl_dir_key(&s->rx_next, s->master, dir_name(s->initiator, 0), 0, next)) != 0)
		return sl_fail(s, r, "cannot derive the new keys");
	/* ACK is our last frame under the old key */
	if ((r = sl_send_frame(s, SECLINK_REKEY_ACK, ack, sizeof(ack))) != 0)
		return r;
	if ((r = sl_dir_key(&s->tx, s->master, dir_name(s->initiator, 1), 1, next)) != 0)
		return sl_fail(s, r, "cannot derive the new keys");
	s->rk = RK_ACKED;
	return 0;
}

/* The peer's ACK to our REKEY: receive under the new key from now on,
 * FIN as our last frame under the old one, then send under the new. */
static int
sl_on_ack(struct seclink *s, const uint8_t *d, size_t len)
{
	uint8_t next = (uint8_t)(s->tx.epoch + 1);
	int r;

	if (len != 1 + SL_SHARE_LEN || d[0] != next || s->rk != RK_SENT)
		return sl_fail(s, ERR_INVALID, "a key change answer out of order");
	r = sl_next_master(s, s->share, d + 1, s->share_pub, d + 1, next);
	sl_share_drop(s);
	if (r != 0)
		return sl_fail(s, r, "the peer's key share is unusable");
	if ((r = sl_dir_key(&s->rx, s->master, dir_name(s->initiator, 0), 0, next)) != 0)
		return sl_fail(s, r, "cannot derive the new keys");
	if ((r = sl_send_frame(s, SECLINK_REKEY_FIN, &next, 1)) != 0)
		return r;
	if ((r = sl_dir_key(&s->tx, s->master, dir_name(s->initiator, 1), 1, next)) != 0)
		return sl_fail(s, r, "cannot derive the new keys");
	s->rk = RK_IDLE;
	s->st.epoch++;
	s->st.rekey_last_us = (now_ns() - s->rk_start_ns) / 1000;
	log_debug("key change %u done", (unsigned)next);
	return 0;
}

/* The peer's FIN: its frames come under the new key from here. */
static int
sl_on_fin(struct seclink *s, const uint8_t *d, size_t len)
{
	if (len != 1 || s->rk != RK_ACKED || d[0] != s->rx_next.epoch)
		return sl_fail(s, ERR_INVALID, "a key change end out of order");
	sl_dir_clear(&s->rx);
	s->rx = s->rx_next;
	memset(&s->rx_next, 0, sizeof(s->rx_next));
	s->rk = RK_IDLE;
	s->st.epoch++;
	return 0;
}

/* Handles the opened frame in pbuf: DATA becomes pending, control frames
 * are acted on. */
static int
sl_dispatch(struct seclink *s)
{
	uint8_t type = s->pbuf[0];
	const uint8_t *d = s->pbuf + 1;
	size_t len = s->plen - 1;

	switch (type) {
	case SECLINK_DATA:
		s->pending = 1;
		s->st.received++;
		return 0;
	case SECLINK_REKEY:
		return sl_on_rekey(s, d, len);
	case SECLINK_REKEY_ACK:
		return sl_on_ack(s, d, len);
	case SECLINK_REKEY_FIN:
		return sl_on_fin(s, d, len);
	case SECLINK_CLOSE:
		if (len != 0)
			return sl_fail(s, ERR_INVALID, "a malformed close");
		s->peer_closed = 1;
		return sl_fail(s, ERR_IO, "closed by the peer");
	default:
		return sl_fail(s, ERR_INVALID, "a frame of an unknown type");
	}
}

/*
 * What the clock and the counters ask for: a key change when the key's
 * lifetime is over, the end of the link when it is far over (the peer
 * does not take part).
 */
static int
sl_service(struct seclink *s)
{
	uint64_t age_ms = (now_ns() - s->key_start_ns) / 1000000u;

	if (s->dead)
		return ERR_IO;
	if (age_ms > (uint64_t)(2 * s->rekey_ms) + (uint64_t)s->timeout_ms ||
	    s->rx.seq >= SECLINK_FRAMES_MAX)
		return sl_fail(s, ERR_TIMEOUT, "the key outlived its lifetime: the peer did "
		    "not take part in a key change");
	if (s->rk == RK_IDLE && (age_ms >= (uint64_t)s->rekey_ms ||
	    s->tx.seq >= s->rekey_frames || s->rx.seq >= s->rekey_frames))
		return sl_rekey_start(s);
	return 0;
}

/* Takes in whatever control frames have arrived, without waiting; stops
 * at the first DATA frame, which stays pending for seclink_recv. */
static int
sl_pump(struct seclink *s)
{
	int r;

	if (s->dead)
		return ERR_IO;
	while (!s->pending) {
		if ((r = sl_read_frame(s, 0)) == ERR_TIMEOUT)
			return 0;
		if (r != 0 || (r = sl_open(s)) != 0 || (r = sl_dispatch(s)) != 0)
			return r;
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * The interface.
 */
static int
radio_io_write(void *arg, const void *buf, size_t len, int timeout_ms)
{
	return radio_link_write(arg, buf, len, timeout_ms);
}

static int
radio_io_read_some(void *arg, void *buf, size_t len, size_t *got, int timeout_ms)
{
	return radio_link_read_some(arg, buf, len, got, timeout_ms);
}

void
seclink_io_radio(struct radio_link *l, struct seclink_io *io)
{
	io->write = radio_io_write;
	io->read_some = radio_io_read_some;
	io->arg = l;
}

int
seclink_new(const struct seclink_io *io, int initiator, uint8_t key[SECLINK_KEY_LEN],
    const struct seclink_opts *o, struct seclink **out)
{
	struct seclink *s = NULL;
	int r = ERR_INVALID;

	if (out != NULL)
		*out = NULL;
	if (out == NULL || key == NULL || io == NULL || io->write == NULL || io->read_some == NULL)
		goto out;
	if (o != NULL && (o->rekey_after_ms < 0 || o->timeout_ms < 0 ||
	    o->rekey_after_frames > SECLINK_FRAMES_MAX / 2))
		goto out;
	r = ERR_CRYPTO;
	if (!CRYPTO_THREAD_run_once(&sl_once, sl_algs_init) || sl_hkdf == NULL || sl_gcm == NULL)
		goto out;
	r = ERR_NOMEM;
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->master = OPENSSL_secure_zalloc(SECLINK_KEY_LEN)) == NULL)
		goto out;
	s->io = *io;
	s->initiator = initiator != 0;
	s->rekey_ms = o != NULL && o->rekey_after_ms > 0 ? o->rekey_after_ms : SECLINK_REKEY_MS_DEFAULT;
	s->rekey_frames = o != NULL && o->rekey_after_frames > 0 ? o->rekey_after_frames :
	    SECLINK_REKEY_FRAMES_DEFAULT;
	s->timeout_ms = o != NULL && o->timeout_ms > 0 ? o->timeout_ms : PEER_TIMEOUT_MS_DEFAULT;
	memcpy(s->master, key, SECLINK_KEY_LEN);
	s->key_start_ns = now_ns();
	s->rneed = SECLINK_HDR_LEN;
	if ((r = sl_dir_key(&s->tx, s->master, dir_name(s->initiator, 1), 1, 0)) != 0 ||
	    (r = sl_dir_key(&s->rx, s->master, dir_name(s->initiator, 0), 0, 0)) != 0)
		goto out;
	*out = s;
	s = NULL;
	r = 0;
out:
	if (key != NULL)
		OPENSSL_cleanse(key, SECLINK_KEY_LEN);
	if (s != NULL) {
		s->dead = 1;	/* nothing to send a CLOSE under */
		seclink_close(s);
	}
	return r;
}

int
seclink_send(struct seclink *s, const void *buf, size_t len)
{
	int r;

	if (s == NULL || (buf == NULL && len > 0))
		return ERR_INVALID;
	if (s->dead)
		return ERR_IO;
	if (len > SECLINK_MAX_DATA)
		return ERR_TOO_BIG;
	if ((r = sl_pump(s)) != 0 || (r = sl_service(s)) != 0)
		return r;
	if ((r = sl_send_frame(s, SECLINK_DATA, buf, len)) != 0)
		return r;
	s->st.sent++;
	return 0;
}

int
seclink_recv(struct seclink *s, void *buf, size_t cap, size_t *len, int timeout_ms)
{
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_ns() + (uint64_t)timeout_ms * 1000000u;
	int r;

	if (len != NULL)
		*len = 0;
	if (s == NULL || buf == NULL || len == NULL || cap < SECLINK_MAX_DATA)
		return ERR_INVALID;
	if (s->dead)
		return ERR_IO;
	for (;;) {
		if ((r = sl_service(s)) != 0)
			return r;
		if (s->pending) {
			*len = s->plen - 1;
			memcpy(buf, s->pbuf + 1, *len);
			OPENSSL_cleanse(s->pbuf, s->plen);
			s->pending = 0;
			return 0;
		}
		if ((r = sl_read_frame(s, deadline)) != 0)
			return r;
		if ((r = sl_open(s)) != 0 || (r = sl_dispatch(s)) != 0)
			return r;
	}
}

int
seclink_rekey(struct seclink *s)
{
	if (s == NULL)
		return ERR_INVALID;
	if (s->dead)
		return ERR_IO;
	return sl_rekey_start(s);
}

int
seclink_send_raw(struct seclink *s, uint8_t type, const void *buf, size_t len)
{
	if (s == NULL || (buf == NULL && len > 0))
		return ERR_INVALID;
	return sl_send_frame(s, type, buf, len);
}

void
seclink_stats(const struct seclink *s, struct seclink_stats *st)
{
	if (s != NULL && st != NULL)
		*st = s->st;
}

int
seclink_peer_closed(const struct seclink *s)
{
	return s != NULL && s->peer_closed;
}

const char *
seclink_error(const struct seclink *s)
{
	return s != NULL && s->dead ? s->err : "";
}

void
seclink_close(struct seclink *s)
{
	if (s == NULL)
		return;
	if (!s->dead) {
		s->timeout_ms = SL_CLOSE_MS;
		(void)sl_send_frame(s, SECLINK_CLOSE, NULL, 0);
	}
	sl_share_drop(s);
	sl_dir_clear(&s->tx);
	sl_dir_clear(&s->rx);
	sl_dir_clear(&s->rx_next);
	OPENSSL_secure_clear_free(s->master, SECLINK_KEY_LEN);
	OPENSSL_cleanse(s, sizeof(*s));		/* plaintext of the last frames */
	free(s);
}
