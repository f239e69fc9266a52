/*
 * device: the device library a device maker links, and the reference
 * program devagent built on it — keystores (protected storage), the device
 * side of intake, renewal, mutual authentication of two devices and the
 * encrypted link it keys, and later local policy and the pairing store.
 */
#ifndef PROVD_DEVICE_H
#define PROVD_DEVICE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/common.h"
#include "provision/provision.h"

/* ---------------------------------------------------------------------
 * Keystores: where the device's private key lives. Backends behind one
 * table: "tpm2" (OpenSSL's tpm2 provider; the key is made inside the TPM and
 * never leaves it — the seed's protected storage) and "file" (a software key,
 * mode 0600, for large simulations).
 *
 * A keystore holds at most one installed identity (key + certificate + CA
 * chain) and at most one pending key (made or received during an intake that
 * has not finished). Installing is atomic: after a crash the store holds
 * either the old identity or the new one, never a mix.
 */
struct keystore;

struct keystore_params {
	const char *kind;		/* "tpm2" or "file" */
	const char *dir;		/* state directory (created 0700) */
	const char *tpm2_tcti;		/* tpm2: TCTI string, e.g.
					   "swtpm:host=127.0.0.1,port=2321";
					   NULL: the provider's default */
};

/* ERR_CONFIG for an unknown kind, ERR_UNAVAILABLE when the TPM cannot be
 * reached. tpm2: the provider reads its TCTI from the environment when it
 * loads, so keystore_open sets TPM2OPENSSL_TCTI for the length of the load
 * (and restores it): call it while no other thread reads the environment. */
int keystore_open(const struct keystore_params *p, struct keystore **out);
void keystore_close(struct keystore *ks);		/* NULL is a no-op */
const char *keystore_kind(const struct keystore *ks);
/* Whether this store can make keys itself (both can) and take a key from
 * outside (file only: a TPM-held key cannot be imported). */
int keystore_can_import(const struct keystore *ks);

/* Makes a new pending P-256 key inside the store and returns a CSR (DER,
 * new buffer, free()) signed with it — proof of possession — whose subject
 * is serialNumber=<mac in canonical form>. */
int keystore_generate(struct keystore *ks, const uint8_t mac[MAC_LEN],
    uint8_t **csr, size_t *csrlen);
/* Takes a server-made private key (PKCS#8 DER) as the pending key.
 * ERR_UNSUPPORTED for tpm2. The caller wipes its copy. */
int keystore_import(struct keystore *ks, const uint8_t *pkcs8, size_t len);
/* Installs cert (DER) and the CA chain (DER certificates, issuing CA first)
 * with the pending key: refuses (ERR_INVALID) a certificate whose public key
 * is not the pending key's, ERR_NOT_FOUND without a pending key. Atomic. */
int keystore_install(struct keystore *ks, const uint8_t *cert, size_t certlen,
    const uint8_t *const *chain, const size_t *chainlen, size_t nchain);
/* The installed identity: key (provider-backed for tpm2) and certificate
 * (DER). ERR_NOT_FOUND when nothing is installed. Caller frees. */
int keystore_identity(struct keystore *ks, EVP_PKEY **key, uint8_t **cert,
    size_t *certlen);
/* Removes everything (factory reset). */
int keystore_wipe(struct keystore *ks);

/* Signing with the key from keystore_identity. A tpm2 key lives in the
 * keystore's own OpenSSL library context; sign with
 *   EVP_DigestSignInit_ex(mctx, NULL, "SHA256", keystore_libctx(ks),
 *       keystore_propq(ks), key, NULL)
 * (for "file" both are NULL: OpenSSL's defaults). Both stay valid until
 * keystore_close, and keys from the keystore must be freed before it. */
OSSL_LIB_CTX *keystore_libctx(const struct keystore *ks);
const char *keystore_propq(const struct keystore *ks);

/* ---------------------------------------------------------------------
 * The device side of intake (intake.c).
 */
struct device_profile {
	uint8_t addr[MAC_LEN];
	char model[PROTO_MAX_STR + 1];
	char name[PROTO_MAX_STR + 1];
	char firmware[PROTO_MAX_STR + 1];
	/* SPAKE2+ registration record made from the setup PIN at manufacture
	 * (spake2p_derive + spake2p_make_L); the PIN itself is not kept */
	uint8_t w0[SPAKE2P_SCALAR_LEN];
	uint8_t L[SPAKE2P_POINT_LEN];
};

/* Serves one intake on an accepted link: the PIN-secured link as SPAKE2+
 * verifier, HELLO, key generation in ks (or a delivered key), atomic
 * install, ACK, then the server's DONE. 0 only after DONE: the device is
 * recorded and should close intake. ERR_AUTH on a wrong PIN; otherwise a
 * sentence in why (the identity may be installed without DONE: intake must
 * stay open so that a retry can replace it). */
int device_intake_serve(struct radio_link *l, const struct device_profile *dp,
    struct keystore *ks, int timeout_ms, char *why, size_t whylen);

/* ---------------------------------------------------------------------
 * A provisionable device (agent.c): persistent state in a directory, the
 * lockout after failed PIN exchanges (5 failures lock intake for 30 s,
 * doubling with each further failure up to a day), and no intake once
 * recorded (DONE) until a factory reset.
 */
struct agent;

struct agent_init_opts {
	const char *dir;		/* state directory (created 0700) */
	const char *addr;		/* the address on the label */
	const char *pin;		/* the setup PIN on the label: 6..32 digits */
	const char *name, *model;	/* 1..128 printable characters */
	const char *keystore;		/* "file" or "tpm2" */
	const char *tcti;		/* tpm2: TCTI string, or NULL */
	int force;			/* replace a device already in dir */
};

/* Manufacture: writes the profile with the SPAKE2+ record made from the PIN
 * (the PIN is not stored) and a fresh intake state. ERR_CONFLICT when dir
 * already holds a device, unless force (then its keystore is wiped). */
int agent_init(const struct agent_init_opts *o, char *why, size_t whylen);
int agent_open(const char *dir, struct agent **out);
void agent_close(struct agent *a);			/* NULL is a no-op */
const struct device_profile *agent_profile(const struct agent *a);
struct keystore *agent_keystore(struct agent *a);
void agent_status(const struct agent *a, int *provisioned, int64_t *failures,
    int64_t *locked_until);
/* Factory reset: wipes the keystore and reopens intake. */
int agent_reset(struct agent *a);
/* Waits up to accept_ms for one incoming link and serves it (each step of
 * the conversation within intake_ms): refused when provisioned
 * (ERR_CONFLICT) or locked (ERR_FORBIDDEN) — the link is just closed, the
 * operator sees a failed PIN exchange; otherwise device_intake_serve. Each
 * attempt is counted as a failure on disk before it runs and uncounted once
 * the PIN proved right. ERR_TIMEOUT when nobody came. */
int agent_serve_once(struct agent *a, struct radio *radio, int accept_ms, int intake_ms,
    char *why, size_t whylen);

/* ---------------------------------------------------------------------
 * Certificate renewal against provd (renew.c): a new key in the keystore,
 * the CSR signed with the current key (CMS SignedData with signingTime),
 * POST /v1/renew, and an atomic install. An expired certificate cannot
 * renew (ERR_FORBIDDEN): the device goes through intake again.
 */
struct renew_opts {
	const char *url;		/* provd's base URL, e.g. http://127.0.0.1:8440 */
	const char *cacert;		/* CA file for https, or NULL */
	int timeout_s;			/* per request; 0: 30 */
};
/* The installed certificate's serial (32 hex digits) and validity. */
int device_cert_serial(struct keystore *ks, char serial[33], int64_t *not_before,
    int64_t *not_after);
/* Makes a pending key and the signed renewal request for it: *b64 is the
 * base64 DER of the CMS SignedData (new string, free()). */
int device_renew_request(struct keystore *ks, const uint8_t mac[MAC_LEN], char **b64,
    char *why, size_t whylen);
/* Renews now; serial gets the new certificate's serial. */
int device_renew(struct keystore *ks, const uint8_t mac[MAC_LEN], const struct renew_opts *o,
    char serial[33], char *why, size_t whylen);
/* Whether to renew now: provd's hint (GET /v1/renew/{serial}: an
 * administrator's request or two-thirds of the lifetime), or, when provd
 * cannot be asked, two-thirds of the lifetime by the device's clock.
 * ERR_FORBIDDEN when the certificate has expired. */
int device_renew_due(struct keystore *ks, const struct renew_opts *o, int *due,
    char *reason, size_t reasonlen);

/* ---------------------------------------------------------------------
 * The installed identity for TLS (keystore_tls.c): what an SSL_CTX needs
 * to authenticate as this device — key, certificate and the CA chain the
 * device received at intake — and the OpenSSL library context and property
 * query to make the SSL_CTX in (SSL_CTX_new_ex). For "file" the key is the
 * stored key and *libctx, *propq are NULL. For "tpm2" the key is a stand-in
 * of a built-in provider: libssl sees an ordinary P-256 key, and each
 * signature it asks for is made by the TPM through the keystore's provider
 * (the private key never leaves the TPM); everything else TLS does (hashes,
 * ciphers, key exchange) runs in OpenSSL's default provider.
 * ERR_NOT_FOUND when nothing is installed, ERR_INVALID when the chain is
 * empty or does not parse. The caller frees key (EVP_PKEY_free), cert
 * (X509_free) and chain (sk_X509_pop_free), and every SSL_CTX holding the
 * key, before keystore_close. A stand-in key signs from one thread at a
 * time (the TPM's connection is not shared between threads).
 */
int keystore_tls_identity(struct keystore *ks, EVP_PKEY **key, X509 **cert,
    STACK_OF(X509) **chain, OSSL_LIB_CTX **libctx, const char **propq);

/* ---------------------------------------------------------------------
 * A cached CRL (crl_cache.c): the enterprise CA's complete CRL kept in a
 * file of the device's state directory, checked against the CA chain the
 * device received at intake, refreshed from provd (GET /v1/crl) when it can
 * be reached. Used by mutual authentication now and by disconnected access
 * decisions later. One thread at a time: do not refresh while another
 * thread checks.
 */
struct crl_cache;

/* grace_s of crl_cache_check: accept a CRL past its nextUpdate for any time
 * (a device that is rarely in reach of provd; revoked devices listed in
 * the old CRL are still refused). */
#define CRL_GRACE_ANY (-1)
#define CRL_MAX_DER (16 * 1024 * 1024)	/* bytes of one CRL */

/* Opens the cache kept at path (DER). A file that is missing is an empty
 * cache; one that does not parse, is not a complete CRL, or is not signed
 * by a CA of ca (each certificate is referenced, not copied) is logged and
 * ignored. ERR_INVALID for an empty ca. Free with crl_cache_free. */
int crl_cache_open(const char *path, STACK_OF(X509) *ca, struct crl_cache **out);
void crl_cache_free(struct crl_cache *c);		/* NULL is a no-op */
/* Fetches provd's complete CRL from url + "/v1/crl" (cacert: CA file for
 * https, or NULL), checks it as crl_cache_open does and that it is not
 * older (CRL number, else thisUpdate) than the cached one, and writes it
 * atomically to the cache's file. ERR_UNAVAILABLE when provd cannot be
 * reached, ERR_INVALID when what it sent is refused; the cached CRL stays
 * in use either way. why gets a sentence. */
int crl_cache_refresh(struct crl_cache *c, const char *url, const char *cacert,
    int timeout_s, char *why, size_t whylen);
/* The cached CRL's thisUpdate and nextUpdate (Unix seconds): ERR_NOT_FOUND
 * when nothing is cached. */
int crl_cache_times(const struct crl_cache *c, int64_t *this_update, int64_t *next_update);
/* Whether cert (issued by a CA of the chain, already verified) is revoked:
 * 0 not listed; ERR_FORBIDDEN revoked; ERR_UNAVAILABLE when revocation
 * cannot be checked — no CRL, a CRL of another issuer, or one past its
 * nextUpdate by more than grace_s seconds (0: not at all; CRL_GRACE_ANY).
 * A sentence in why either way (at most whylen bytes). */
int crl_cache_check(struct crl_cache *c, X509 *cert, int64_t grace_s, char *why,
    size_t whylen);

/* ---------------------------------------------------------------------
 * Mutual authentication of two devices over a radio link (peer.c;
 * DESIGN.md flow 3, docs/protocol.md "Device-to-device authentication").
 * A TLS 1.3 handshake in which both sides present their device certificate
 * and sign with their keystore's key; each side checks the other's chain to
 * the CA chain it received at intake, the validity dates, the revocation
 * (crl_cache_check) and that the certificate's device identifier (SAN
 * urn:dev:mac:, subject serialNumber) is the link-layer address the radio
 * reports for the peer. No PIN, password or stored per-peer secret. The
 * accepting side confirms inside TLS that it took the handshake; then both
 * sides export the link key and end the TLS session, and the link goes on
 * encrypted under that key (seclink below).
 */
struct peer_ctx;

#define PEER_LINK_KEY_LABEL "EXPORTER-provd-link-key"	/* RFC 8446 7.5 exporter label */
#define PEER_LINK_KEY_LEN 32
#define PEER_TIMEOUT_MS_DEFAULT 10000

struct peer_params {
	/* This device, from keystore_tls_identity (or made elsewhere). The
	 * context takes its own references. */
	EVP_PKEY *key;
	X509 *cert;
	STACK_OF(X509) *ca;		/* trust anchors: the intake chain */
	OSSL_LIB_CTX *libctx;		/* for SSL_CTX_new_ex */
	const char *propq;
	/* Revocation: borrowed, must outlive the context. NULL: no CRL, and
	 * every peer is refused (revocation cannot be checked). */
	struct crl_cache *crl;
	int64_t crl_grace_s;		/* see crl_cache_check; 0: a stale CRL
					   refuses every peer */
	int timeout_ms;			/* the whole handshake; 0: default */
};

/* The authenticated peer. cert is the peer's certificate (one reference,
 * for the owner and groups of its optional data). */
#define PEER_SERIAL_MAX 41
struct peer_info {
	uint8_t addr[MAC_LEN];		/* its device identifier = link address */
	char serial[PEER_SERIAL_MAX];	/* certificate serial, lowercase hex, at
					   least 32 digits (provd's: exactly) */
	int64_t not_after;
	X509 *cert;
};
void peer_info_clear(struct peer_info *pi);		/* frees cert, zeroes */

/* ERR_INVALID when key and certificate do not match or the chain is
 * empty, ERR_CRYPTO when OpenSSL cannot set the contexts up. */
int peer_ctx_new(const struct peer_params *p, struct peer_ctx **out);
void peer_ctx_free(struct peer_ctx *pc);		/* NULL is a no-op */

/*
 * Runs the handshake on a link this device opened (peer_connect: TLS
 * client) or accepted (peer_accept: TLS server). The radio link stays the
 * caller's. On success fills info and key (PEER_LINK_KEY_LEN bytes: hand
 * it to seclink_new, which wipes it). On failure the link must be closed;
 * why says what happened, for a log (never a secret), and the code is:
 * ERR_AUTH — the peer's certificate was refused by this side (chain,
 * dates, address, signature) or this side's by the peer; ERR_FORBIDDEN —
 * the peer's certificate is revoked; ERR_UNAVAILABLE — revocation cannot
 * be checked (no CRL, or a stale one); ERR_TIMEOUT — the peer stopped
 * answering; ERR_IO — the link closed; ERR_CONFLICT (peer_accept) — the
 * peer started intake instead (the device is provisioned already);
 * ERR_INVALID — not a TLS 1.3 handshake of this profile.
 */
int peer_connect(struct peer_ctx *pc, struct radio_link *l, struct peer_info *info,
    uint8_t key[PEER_LINK_KEY_LEN], char *why, size_t whylen);
int peer_accept(struct peer_ctx *pc, struct radio_link *l, struct peer_info *info,
    uint8_t key[PEER_LINK_KEY_LEN], char *why, size_t whylen);
/* The device identifier a certificate carries: its SAN URI
 * urn:dev:mac:<12 hex> and/or subject serialNumber, which must agree.
 * ERR_INVALID when it has neither, several, or two that differ. */
int peer_cert_addr(X509 *cert, uint8_t addr[MAC_LEN]);

/* ---------------------------------------------------------------------
 * The encrypted link (seclink.c), standing in for the radio's own link
 * encryption: frames sealed with AES-256-GCM under keys derived from the
 * link key, per direction, with a sequence number in the nonce; a replayed,
 * dropped, reordered or altered frame ends the link. When a key's lifetime
 * ends the two sides agree a new one (X25519, authenticated by the current
 * key) without dropping the link; the old keys are wiped. Frame format and
 * key schedule: docs/protocol.md, "Link frames".
 *
 * A seclink belongs to one thread at a time. Rekeying runs inside
 * seclink_send and seclink_recv: an application must read what its peer
 * sends (a key change waits for the peer's answer behind unread data; the
 * old key goes on working until its hard limit).
 */
struct seclink;

#define SECLINK_KEY_LEN PEER_LINK_KEY_LEN
#define SECLINK_MAX_DATA 16384		/* bytes of application data per frame */
#define SECLINK_HDR_LEN 12
#define SECLINK_TAG_LEN 16
#define SECLINK_MAX_FRAME (SECLINK_HDR_LEN + 1 + SECLINK_MAX_DATA + SECLINK_TAG_LEN)
#define SECLINK_REKEY_MS_DEFAULT 3600000	/* one hour */
#define SECLINK_REKEY_FRAMES_DEFAULT (1u << 20)
#define SECLINK_FRAMES_MAX (1u << 24)	/* hard limit per key and direction */

/* Frame types (inside the encryption). */
enum seclink_type {
	SECLINK_DATA = 1,		/* application bytes */
	SECLINK_REKEY = 2,		/* new epoch (1) || X25519 public key (32) */
	SECLINK_REKEY_ACK = 3,		/* new epoch (1) || X25519 public key (32) */
	SECLINK_REKEY_FIN = 4,		/* new epoch (1): the sender's last frame
					   under the old key */
	SECLINK_CLOSE = 5,		/* empty: the sender ends the link */
};

/* What the frames travel over: a reliable, ordered byte stream. write
 * writes all len bytes; read_some reads 1..len bytes (0 with *got);
 * either returns ERR_IO when the stream is closed and ERR_TIMEOUT when
 * timeout_ms (0: do not wait; negative: no limit) passed. */
struct seclink_io {
	int (*write)(void *arg, const void *buf, size_t len, int timeout_ms);
	int (*read_some)(void *arg, void *buf, size_t len, size_t *got, int timeout_ms);
	void *arg;
};
/* An io over a radio link (borrowed; it must outlive the seclink). */
void seclink_io_radio(struct radio_link *l, struct seclink_io *io);

struct seclink_opts {
	int64_t rekey_after_ms;		/* key lifetime; 0: default */
	uint32_t rekey_after_frames;	/* frames sent under one key; 0: default;
					   at most SECLINK_FRAMES_MAX / 2 */
	int timeout_ms;			/* a write, and a frame once it started
					   arriving; 0: PEER_TIMEOUT_MS_DEFAULT */
};

struct seclink_stats {
	unsigned epoch;			/* key changes so far, both directions done */
	uint64_t sent, received;	/* DATA frames */
	uint64_t rekey_last_us;		/* the last key change this side started:
					   from REKEY sent to ACK received */
};

/* Starts the encrypted link with the key from peer_connect (initiator 1)
 * or peer_accept (initiator 0). key is wiped in every case. */
int seclink_new(const struct seclink_io *io, int initiator, uint8_t key[SECLINK_KEY_LEN],
    const struct seclink_opts *o, struct seclink **out);
/* Sends len (0..SECLINK_MAX_DATA) bytes as one frame; ERR_TOO_BIG above. */
int seclink_send(struct seclink *s, const void *buf, size_t len);
/* Receives one frame's data into buf (cap >= SECLINK_MAX_DATA): 0 with
 * *len; ERR_TIMEOUT when none arrived in timeout_ms (the link stays
 * usable); ERR_IO when the link closed (seclink_peer_closed says whether
 * the peer ended it with CLOSE). Any other code — a frame that is
 * malformed (ERR_INVALID), out of sequence (ERR_INVALID), fails
 * authentication (ERR_AUTH), or a key change that goes wrong — ends the
 * link: every later call returns ERR_IO and seclink_error says why. */
int seclink_recv(struct seclink *s, void *buf, size_t cap, size_t *len, int timeout_ms);
/* Starts a key change now (the lifetime starts one by itself). 0 also when
 * one is under way. */
int seclink_rekey(struct seclink *s);
/* Sends CLOSE (best effort), wipes every key and frees. NULL is a no-op. */
void seclink_close(struct seclink *s);
void seclink_stats(const struct seclink *s, struct seclink_stats *st);
int seclink_peer_closed(const struct seclink *s);
/* Why the link ended, or "" while it is up. Never NULL. */
const char *seclink_error(const struct seclink *s);
/* For tests and fault tools only: sends a frame of any type with any
 * content, sealed under the current key, bypassing the key-change state. */
int seclink_send_raw(struct seclink *s, uint8_t type, const void *buf, size_t len);

/* ---------------------------------------------------------------------
 * Access decisions on a device that serves a resource (policy.c; DESIGN.md
 * flows 4 and 5, docs/access-control.md "On the device: central and
 * disconnected"). Central: the serving device asks provd (policy_ask_provd)
 * about the authenticated peer. Disconnected: it decides alone from the
 * peer's verified certificate (optional-data owner and groups, validity),
 * the state of its cached CRL and a local policy file:
 *
 *   [resource]
 *   name = printer
 *   stale_crl = closed            ; or open
 *   [allow]
 *   print = engineering, lab      ; groups, owner:NAME, device:ADDR, *
 *   [deny]
 *   print = contractors
 *
 * Deny wins, then allow, else deny; the resource must be the file's. The
 * file is read whole (at most POLICY_MAX_FILE bytes, lines of at most
 * POLICY_MAX_LINE) and refused whole on the first fault, with file:line.
 */
struct policy;

#define POLICY_MAX_FILE (64 * 1024)	/* bytes of a policy file */
#define POLICY_MAX_LINE 190		/* bytes of one line (libinih's is 200) */
#define POLICY_MAX_ENTRIES 1024		/* items of all [allow] and [deny] lists */
#define POLICY_MAX_NAME 128		/* a resource name */
#define POLICY_MAX_ACTION 64		/* an action name */
#define POLICY_REASON_MAX 256		/* a reason sentence, with its NUL */

/* The state of the cached CRL for one peer (policy_crl_state). */
enum policy_crl {
	POLICY_CRL_FRESH,		/* not listed; within nextUpdate (+ grace) */
	POLICY_CRL_STALE,		/* not listed; past nextUpdate (+ grace) */
	POLICY_CRL_NONE,		/* no usable CRL: revocation cannot be checked */
	POLICY_CRL_REVOKED,		/* listed */
};

/* Parses a policy from text (len bytes; name for messages, e.g. the path).
 * ERR_CONFIG with "name:line: what" in err for any fault (unknown section
 * or key, bad value or name, a line too long, a missing [resource] name
 * or stale_crl), ERR_TOO_BIG over POLICY_MAX_FILE; *out only on success
 * (policy_free). */
int policy_parse(const char *text, size_t len, const char *name, struct policy **out,
    char *err, size_t errlen);
/* policy_parse of a file; ERR_IO when it cannot be read. */
int policy_load(const char *path, struct policy **out, char *err, size_t errlen);
void policy_free(struct policy *p);			/* NULL is a no-op */
const char *policy_resource(const struct policy *p);
int policy_stale_open(const struct policy *p);
/* Resource and action names for a device: 1..POLICY_MAX_NAME (resource)
 * or 1..POLICY_MAX_ACTION (action) of A-Z a-z 0-9 . _ -. 0 or ERR_INVALID. */
int policy_check_resource(const char *s);
int policy_check_action(const char *s);
/* The CRL state for cert (already verified to the intake chain) at now,
 * with grace_s as for crl_cache_check (CRL_GRACE_ANY: never stale). */
enum policy_crl policy_crl_state(struct crl_cache *c, X509 *cert, int64_t grace_s, time_t now);
/* Whether the authenticated peer pi may do action on resource at now:
 * 0 allowed, ERR_FORBIDDEN denied; reason gets a sentence either way
 * ("allowed by policy line N", "denied by policy line N", "no rule allows
 * this", "unknown resource", "certificate expired", ...). */
int policy_decide(const struct policy *p, const struct peer_info *pi, const char *resource,
    const char *action, time_t now, enum policy_crl crl, char *reason, size_t reasonlen);

/* The request on the encrypted link: the first frame from the connecting
 * peer is "ACCESS <resource> <action>", answered with one frame
 * "GRANTED <reason>" or "DENIED <reason>" (docs/protocol.md). */
#define POLICY_REQ_PREFIX "ACCESS "
#define POLICY_REQ_MAX (7 + POLICY_MAX_NAME + 1 + POLICY_MAX_ACTION)
#define POLICY_ANSWER_GRANTED "GRANTED "
#define POLICY_ANSWER_DENIED "DENIED "
/* ERR_INVALID for a bad name, ERR_TOO_BIG when out is too small. */
int policy_request_format(const char *resource, const char *action, char *out, size_t outlen);
/* ERR_INVALID for anything but a well-formed request. */
int policy_request_parse(const uint8_t *buf, size_t len, char resource[POLICY_MAX_NAME + 1],
    char action[POLICY_MAX_ACTION + 1]);

/* Central: POST /v1/authorize with the certificate's SHA-256. */
struct policy_provd {
	const char *url;		/* provd's base URL */
	const char *cacert;		/* CA file for https, or NULL */
	const char *token;		/* an authorizer (or admin) token; borrowed */
	int timeout_s;			/* connect and answer; 0: 5 */
};
/* 0 allowed, ERR_FORBIDDEN denied (reason: provd's); ERR_UNAVAILABLE when
 * provd cannot be reached or answers 5xx (fall back, or deny); ERR_AUTH
 * for 401/403 (a bad token); ERR_INVALID for any other answer. reason
 * always gets a sentence. */
int policy_ask_provd(const struct policy_provd *o, X509 *cert, const char *resource,
    const char *action, char *reason, size_t reasonlen);

/* ---------------------------------------------------------------------
 * Consumer pairing (pairing.c; DESIGN.md flow 6, seed Fig. 9,
 * docs/protocol.md "Consumer pairing"). Devices that carry a certificate
 * from their manufacturer's CA (not an enterprise intake) pair with one
 * other device: after mutual authentication (peer.c, the manufacturer's
 * chain as trust anchor) each side shows the peer's device identifier and
 * model and the user accepts or rejects; the decisions cross the encrypted
 * link, and an accepted pairing is stored on both sides in two phases so
 * that a crash anywhere leaves both paired or neither once the two devices
 * next meet. A paired device talks only to its peer and refuses to pair
 * with any other until it is unpaired.
 *
 * Files of the state directory: "consumer" (the device is in consumer
 * mode), "pairing.pending" (prepared, phase one), "pairing" (committed).
 * Each is written atomically (temporary file, fsync, rename, fsync of the
 * directory); a removal is followed by an fsync of the directory.
 */
#define PAIRING_ID_LEN 16		/* bytes of a pairing's identifier */
#define PAIRING_FPR_LEN 32		/* SHA-256 of the peer's certificate */
#define PAIRING_MODEL_MAX 96		/* bytes of the model shown, without NUL */
#define PAIRING_FILE_MAX 1024		/* bytes of a pairing file */
#define PAIRING_MSG_MAX 256		/* bytes of one pairing frame */
#define PAIRING_DECIDE_MS_DEFAULT 60000	/* the user's time to decide */

enum pairing_role {
	PAIRING_INITIATOR = 1,		/* pair --with: decides the outcome */
	PAIRING_RESPONDER = 2,		/* the listening side */
};

enum pairing_state {
	PAIRING_NONE = 0,
	PAIRING_PENDING = 1,		/* phase one written, outcome not known */
	PAIRING_PAIRED = 2,		/* committed */
};

struct pairing {
	uint8_t peer[MAC_LEN];		/* the peer's device identifier */
	uint8_t fpr[PAIRING_FPR_LEN];	/* its certificate's SHA-256 (DER) */
	uint8_t id[PAIRING_ID_LEN];	/* chosen at random by the initiator */
	int role;			/* enum pairing_role */
	char model[PAIRING_MODEL_MAX + 1];	/* printable ASCII */
};

/* The text of a pairing file (key=value lines) into out: its length, or
 * ERR_TOO_BIG / ERR_INVALID. */
int pairing_format(const struct pairing *p, char *out, size_t outlen);
/* Parses that text (at most PAIRING_FILE_MAX bytes, every key exactly once,
 * no other key). ERR_INVALID otherwise; *p only on success. */
int pairing_parse(const char *text, size_t len, struct pairing *p);
/* What the display shows of a certificate: subject CN, and O in brackets
 * when present, control and non-ASCII bytes as '?', cut to
 * PAIRING_MODEL_MAX. And the certificate's SHA-256. */
int pairing_cert_info(X509 *cert, uint8_t fpr[PAIRING_FPR_LEN],
    char model[PAIRING_MODEL_MAX + 1]);

/* Whether dir holds a consumer device; marking one or not (atomic). */
int pairing_is_consumer(const char *dir);
int pairing_set_consumer(const char *dir, int on);
/* What dir holds: PAIRING_PAIRED with "pairing", else PAIRING_PENDING
 * with "pairing.pending", else PAIRING_NONE (p zeroed). ERR_INVALID for a
 * file that does not parse (left for the user to unpair). */
int pairing_load(const char *dir, enum pairing_state *st, struct pairing *p);
/* Phase one: writes "pairing.pending". ERR_CONFLICT when dir holds a
 * pairing or a pending one. */
int pairing_prepare(const char *dir, const struct pairing *p);
/* Phase two: renames "pairing.pending" to "pairing" (the commit point of
 * this side). ERR_NOT_FOUND without a pending pairing. */
int pairing_commit(const char *dir);
/* Removes "pairing.pending" (0 also when there is none). */
int pairing_discard(const char *dir);
/* unpair: removes the pairing and a pending one with peer (or with any
 * peer when peer is NULL). ERR_NOT_FOUND when there was none. */
int pairing_remove(const char *dir, const uint8_t *peer);
/* At the start of every command on dir: removes temporary files a crash
 * left, and an initiator's pending pairing (it never committed, so its
 * peer cannot have: the attempt failed). A responder's pending pairing
 * stays until the devices meet (pairing_meet). why says what was done,
 * "" when nothing. */
int pairing_recover(const char *dir, char *why, size_t whylen);

/* The pairing conversation on an encrypted link, after mutual
 * authentication with the peer pi (docs/protocol.md "Consumer pairing").
 * decide is asked once, after the peer agreed to pair: 1 accept, 0
 * reject. crash, when not NULL, is called with the name of each step
 * (a test hook). Returns 0 paired (*out filled); ERR_FORBIDDEN rejected by
 * either user; ERR_CONFLICT the peer refused to pair (why: its reason);
 * other codes when the link failed, with why saying what this side holds
 * then (nothing, paired, or pending until the devices meet). */
struct pairing_run_opts {
	const char *dir;
	int role;			/* enum pairing_role */
	int timeout_ms;			/* per frame from the peer */
	int decide_ms;			/* the peer's decision; 0: default */
	int (*decide)(void *arg, const struct pairing *p);
	void *arg;
	void (*crash)(const char *step);
};
int pairing_run(struct seclink *sl, const struct peer_info *pi, const struct pairing_run_opts *o,
    struct pairing *out, char *why, size_t whylen);

/* The pure rule of a meeting: this side's state about the peer (mine,
 * myid) and the peer's report (theirs, theirid). *act: 0 nothing, 1
 * commit the pending pairing, -1 discard it; returns 1 when the two are
 * paired afterwards (the link may go on), 0 otherwise. */
int pairing_meet_rule(enum pairing_state mine, const uint8_t myid[PAIRING_ID_LEN],
    enum pairing_state theirs, const uint8_t theirid[PAIRING_ID_LEN], int *act);
/* A consumer device meeting an authenticated peer on a connect (initiator)
 * or serve (responder) link: each reports what it holds about the other
 * ("STATE"), a pending pairing is settled by pairing_meet_rule, and the
 * link goes on only between paired peers. 0 paired; ERR_FORBIDDEN not
 * paired with this peer (why; the responder answers "REFUSED" and a
 * pairing attempt is refused the same way); link errors otherwise. */
int pairing_meet(struct seclink *sl, const struct peer_info *pi, const char *dir, int role,
    int timeout_ms, char *why, size_t whylen);

#endif
