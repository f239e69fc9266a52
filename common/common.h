/*
 * common: the pieces every provd library shares — the error enum, logging,
 * configuration, device identifiers (IEEE MAC addresses), the optional-data
 * certificate extension codec and small helpers for hex and secrets.
 */
#ifndef PROVD_COMMON_H
#define PROVD_COMMON_H

#include <openssl/types.h>
#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <time.h>

/*
 * Errors. Every function returns 0 or one of these negative codes. Numbers
 * are never reused; add new codes at the end.
 */
enum provd_err {
	ERR_OK = 0,
	ERR_INTERNAL = -1,	/* a bug or an unexpected library failure */
	ERR_NOMEM = -2,		/* allocation failed */
	ERR_INVALID = -3,	/* malformed input */
	ERR_TOO_BIG = -4,	/* input over its size limit */
	ERR_NOT_FOUND = -5,	/* no such object */
	ERR_CONFLICT = -6,	/* object exists or is in the wrong state */
	ERR_IO = -7,		/* file or socket I/O failed */
	ERR_CONFIG = -8,	/* configuration is invalid */
	ERR_CRYPTO = -9,	/* an OpenSSL operation failed */
	ERR_DB = -10,		/* the database failed or is unreachable */
	ERR_UNAVAILABLE = -11,	/* a dependency (db, signer, directory) is down */
	ERR_AUTH = -12,		/* missing or wrong credentials */
	ERR_FORBIDDEN = -13,	/* authenticated but not allowed */
	ERR_BAD_MAC = -14,	/* not an acceptable IEEE 48-bit address */
	ERR_BAD_CSR = -15,	/* CSR unparsable or its signature is wrong */
	ERR_KEY_POLICY = -16,	/* key type or size not allowed */
	ERR_SIGNER = -17,	/* the CA signer process failed */
	ERR_TIMEOUT = -18,	/* an operation took too long */
	ERR_LDAP = -19,		/* the directory failed */
	ERR_UNSUPPORTED = -20,	/* a request for something this build cannot do */
};

/* A short English description of an error code; never NULL. */
const char *provd_strerror(int err);

/* ---------------------------------------------------------------------
 * Logging. Lines go to stderr (default) or syslog, as text or JSON lines.
 * Each line may carry a request or job id set for the calling thread.
 */
enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Sets the global level, format (0 text, 1 JSON) and sink (0 stderr, 1 syslog). */
void log_init(const char *progname, enum log_level level, int json, int use_syslog);
/* Parses "error", "warn", "info", "debug". Returns 0 or ERR_INVALID. */
int log_level_parse(const char *s, enum log_level *out);
/* Sets the id printed with each line from this thread; NULL clears it. Copied. */
void log_set_id(const char *id);

void log_msg(enum log_level lvl, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Logs and then drains OpenSSL's error queue into the log. */
void log_openssl(const char *func, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_warnx(...)	log_msg(LOG_LVL_WARN, __func__, __VA_ARGS__)
#define log_errx(...)	log_msg(LOG_LVL_ERROR, __func__, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_LVL_INFO, __func__, __VA_ARGS__)
#define log_debug(...)	log_msg(LOG_LVL_DEBUG, __func__, __VA_ARGS__)
#define log_ossl(...)	log_openssl(__func__, __VA_ARGS__)

/* ---------------------------------------------------------------------
 * Device identifiers: IEEE 48-bit addresses.
 * Accepted spellings: 00:1A:7D:DA:71:13, 00-1a-7d-da-71-13, 001a.7dda.7113,
 * 001A7DDA7113. Multicast (group bit set) and all-zero addresses are refused.
 */
#define MAC_LEN 6
#define MAC_STR_LEN 18		/* "00:1a:7d:da:71:13" + NUL */
#define MAC_HEX_LEN 13		/* "001a7dda7113" + NUL */

/* Parses s into out[6]. Returns 0 or ERR_BAD_MAC. */
int mac_parse(const char *s, uint8_t out[MAC_LEN]);
/* Canonical form, lowercase with colons. */
void mac_format(const uint8_t mac[MAC_LEN], char out[MAC_STR_LEN]);
/* Twelve lowercase hex digits, as in urn:dev:mac:. */
void mac_format_hex(const uint8_t mac[MAC_LEN], char out[MAC_HEX_LEN]);

/* ---------------------------------------------------------------------
 * Optional-data extension (DESIGN.md, Fig. 6 4020): non-critical, under
 * OPTDATA_OID, DER SEQUENCE { owner [0] UTF8String OPTIONAL,
 * groups [1] SEQUENCE OF UTF8String OPTIONAL,
 * resourceClasses [2] SEQUENCE OF UTF8String OPTIONAL,
 * roles [3] SEQUENCE OF UTF8String OPTIONAL }.
 */
/*
 * The extension's OID. Every arc fits in 64 bits: GnuTLS (libtasn1, and
 * with it libmicrohttpd's TLS) and several other X.509 readers refuse a
 * whole certificate that has a longer arc, such as a UUID under 2.25.
 * Certificates issued before under OPTDATA_OID_UUID are still read.
 */
#define OPTDATA_OID "1.3.6.1.4.1.32473.4020.1"
#define OPTDATA_OID_UUID "2.25.195004117390358504656546335710953266857"	/* UUID 92b46d49-0fe7-43b0-805d-85da4cbadea9 */
#define OPTDATA_MAX_ITEMS 32
#define OPTDATA_MAX_STR 128

struct optdata {
	char *owner;			/* NULL when absent */
	char *groups[OPTDATA_MAX_ITEMS];
	size_t ngroups;
	char *classes[OPTDATA_MAX_ITEMS];
	size_t nclasses;
	char *roles[OPTDATA_MAX_ITEMS];	/* what the holder may do at provd */
	size_t nroles;
};

/* The one role provd knows: an access point, which may ask
 * POST /v1/authorize with this certificate instead of an API token. */
#define OPTDATA_ROLE_ACCESS_POINT "access-point"

/* Encodes od as DER into a new buffer (*der, freed by the caller with free()). */
int optdata_encode(const struct optdata *od, uint8_t **der, size_t *derlen);
/* Decodes DER into *od (strings owned by od; release with optdata_clear). */
int optdata_decode(const uint8_t *der, size_t derlen, struct optdata *od);
void optdata_clear(struct optdata *od);
/* The DER content of x's optional-data extension (under OPTDATA_OID, or
 * OPTDATA_OID_UUID in older certificates): 1 with *der and *len pointing into x,
 * or 0 when x has none. */
int optdata_ext_find(const X509 *x, const uint8_t **der, size_t *len);
/* Checks a name for owner/groups: 1..OPTDATA_MAX_STR bytes of printable UTF-8
 * without control characters. Returns 0 or ERR_INVALID. */
int optdata_check_name(const char *s);

/* ---------------------------------------------------------------------
 * Small helpers.
 */
/* Strict base64 (RFC 4648 section 4, standard alphabet, padded, no white
 * space) of len characters into out, which must hold len / 4 * 3 bytes
 * (ERR_TOO_BIG when outmax is less); *outlen gets the decoded length.
 * ERR_INVALID for anything else. */
int b64_decode(const char *in, size_t len, uint8_t *out, size_t outmax, size_t *outlen);
/* Copies src into dst of size n (n > 0), cut to fit and NUL-terminated:
 * snprintf(dst, n, "%s", src) without the formatting. */
void str_copy(char *dst, size_t n, const char *src);
/* printf into a caller's message buffer (a public reason, an error
 * sentence); nothing when buf is NULL or len is 0. */
void msg_set(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void hex_encode(const uint8_t *in, size_t len, char *out);
/* Value of one hex digit (either case), or -1. */
int hex_digit(int c);
/* Decodes exactly outlen bytes from 2*outlen hex digits. Returns 0 or ERR_INVALID. */
int hex_decode(const char *in, uint8_t *out, size_t outlen);
/* Reads a whole file of at most max bytes into a new NUL-terminated buffer. */
int file_read_all(const char *path, size_t max, char **out, size_t *outlen);
/* Reads a secret file: first line, trailing newline stripped; buffer from the
 * OpenSSL secure heap, release with secret_free(). */
int secret_read_file(const char *path, char **out);
void secret_free(char *s);
/* Takes a secret given on the command line: *out is a copy on the secure
 * heap (secret_free()), and arg is wiped so that it no longer shows in the
 * process's arguments. Returns 0 or ERR_NOMEM. */
int secret_take_arg(char *arg, char **out);
/* Writes data to path atomically (temp file, fsync, rename) with mode. */
int file_write_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* strtoll with full-string and range checks. Returns 0 or ERR_INVALID. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);
/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);
/* RFC 3339 UTC timestamp "2026-11-28T03:59:20Z" into out (at least 21 bytes). */
void time_format_rfc3339(time_t t, char *out, size_t outlen);

/* ---------------------------------------------------------------------
 * Configuration: one INI file, table-driven (config.c lists every key with
 * type, bounds and default). Unknown sections or keys are errors.
 */
struct config {
	/* [server] */
	char *listen;			/* address, default 127.0.0.1 */
	int64_t port;			/* default 8440; 0 picks a free port */
	int64_t threads;		/* HTTP worker threads, default 0 = CPUs */
	int64_t max_body;		/* bytes, default 65536 */
	int64_t max_connections;	/* default 1024 */
	char *tls_cert;			/* optional: serve HTTPS */
	char *tls_key;
	char *tls_client_ca;		/* optional: ask for client certificates */
	/* [database] */
	char *db_conninfo;		/* libpq keyword/value string without password */
	char *db_password_file;		/* optional */
	int64_t db_pool;		/* connections, default 8 */
	int64_t db_batch_max;		/* issuances per commit, default 64 */
	/* [ldap] */
	char *ldap_uri;			/* optional */
	char *ldap_bind_dn;
	char *ldap_password_file;
	char *ldap_base_dn;
	int64_t ldap_batch;		/* outbox rows per pass, default 200 */
	int64_t ldap_retry_max_s;	/* longest back-off while slapd is down, default 60 */
	/* [ca] */
	char *ca_dir;			/* CA key and certificates */
	int64_t validity_days;		/* device certificates, default 365 */
	int64_t backdate_s;		/* notBefore = now - backdate, default 300 */
	char *crl_url;			/* optional: CRL distribution point */
	char *ocsp_url;			/* optional: OCSP AIA */
	int64_t crl_next_update_s;	/* default 86400 */
	int64_t crl_base_interval_s;	/* a new base CRL this often, default 43200 */
	int allow_rsa;			/* RSA >= 2048 CSR keys, default no */
	int64_t max_csr;		/* bytes, default 8192 */
	int64_t ocsp_cert_days;		/* delegated OCSP signer, default 30 */
	int64_t ocsp_max_age_s;		/* response validity and cache, default 300 */
	char *ca_tcti;			/* optional: the TPM holding a CA key made by
					   "ca init --keystore tpm2"; unset: the
					   tpm2 provider's default */
	char *ca_mode;			/* "builtin" (default) or "cmp": an external
					   CA over CMP (ca/ca_cmp.c) */
	char *cmp_url;			/* http://HOST:PORT/PATH of the CMP server */
	char *cmp_ref;			/* reference (senderKID) for the secret */
	char *cmp_secret_file;		/* shared secret (PBM protection), or */
	char *cmp_cert, *cmp_key;	/* a client certificate and key */
	char *cmp_trusted;		/* PEM: who may sign the CA's answers */
	int64_t cmp_timeout_s;		/* one transaction, default 10 */
	int64_t cmp_retries;		/* when the CA cannot be reached, default 3 */
	/* [authz] */
	int authz_cache;		/* keep devices in memory, default yes */
	int64_t authz_ttl_s;		/* how long callers may cache a decision, default 30 */
	int64_t authz_batch_max;	/* questions in one batch, default 100 */
	/* [radio] */
	char *radio_backend;		/* optional: "sim" or "bluez"; unset:
					   no intake over the radio */
	char *radio_sim_dir;		/* sim: the directory that is the air */
	char *radio_adapter;		/* bluez: default hci0 */
	int64_t radio_inquiry_ms;	/* default scan length, default 3000 */
	int64_t radio_timeout_ms;	/* per step of an intake, default 15000 */
	int64_t radio_max_enrollments;	/* at once, default 32 */
	char *radio_keygen;		/* auto, device, server; default auto */
	/* [console] */
	char *console_dir;		/* the console's static files */
	int64_t console_session_idle_s;	/* default 1800 */
	int64_t console_session_max_s;	/* absolute, default 43200 */
	int64_t console_login_fail_max;	/* attempts per name in a window, default 5 */
	int64_t console_login_fail_max_addr;	/* per client address, default 20 */
	int64_t console_login_window_s;	/* default 900 */
	/* [log] */
	enum log_level log_level;	/* default info */
	int log_json;			/* default no */
	int log_syslog;			/* default no */

	/* which keys were set in the file (bit per table index) */
	uint64_t set_mask;
};

/* Loads path. On error returns ERR_CONFIG and writes "file:line: message" into
 * err. The caller frees *out with config_free(). Secrets are not read here. */
int config_load(const char *path, struct config **out, char *err, size_t errlen);
/* A configuration with every default (for tools and tests). */
int config_defaults(struct config **out);
void config_free(struct config *cfg);
/* Checks that every secret file named in cfg is readable and not empty, and
 * that the TLS files exist. Writes "key: path: problem" into err. */
int config_check_files(const struct config *cfg, char *err, size_t errlen);
/* Whether key "section.name" was set in the file (as opposed to defaulted). */
int config_is_set(const struct config *cfg, const char *key);
/* The libpq conninfo including the password read from db_password_file. The
 * result is on the secure heap; release with secret_free(). */
int config_db_conninfo(const struct config *cfg, char **out);

/* ---------------------------------------------------------------------
 * SPAKE2+ (RFC 9383), ciphersuite P256-SHA256-HKDF-SHA256-HMAC-SHA256: the
 * PAKE of the PIN-secured temporary link (DESIGN.md, Radio). The prover knows
 * the PIN (w0, w1); the verifier holds only the registration record (w0, L).
 *
 *   prover    spake2p_prover_start       -> shareP
 *   verifier  spake2p_verifier_respond   <- shareP   -> shareV, confirmV
 *   prover    spake2p_prover_finish      <- shareV, confirmV (checked) -> confirmP
 *   verifier  spake2p_verifier_finish    <- confirmP (checked)
 *   each side spake2p_shared_key         -> K_shared (the TLS 1.3 external PSK)
 *
 * Every function returns 0 or a negative ERR_* code and writes its
 * out-parameters only on success. ERR_INVALID: a NULL or out-of-range
 * argument, a received point that is not an uncompressed P-256 point other
 * than the identity, or a call out of order (wrong role or step); ERR_AUTH: a
 * confirmation MAC does not match (wrong PIN or an altered exchange). A call
 * out of order or with NULL arguments changes nothing; any other failure of
 * _prover_start, _verifier_respond, _prover_finish or _verifier_finish ends
 * the run: its secrets are wiped and every later call but spake2p_free returns
 * ERR_INVALID. A run belongs to one thread at a time. Each run keeps about
 * 600 bytes on the OpenSSL secure heap when one is set up.
 */
#define SPAKE2P_POINT_LEN 65	/* uncompressed P-256 point */
#define SPAKE2P_SCALAR_LEN 32
#define SPAKE2P_MAC_LEN 32
#define SPAKE2P_KEY_LEN 32
#define SPAKE2P_PIN_MAX 64	/* bytes of PIN accepted by spake2p_derive */
#define SPAKE2P_SALT_MAX 64	/* bytes of salt accepted by spake2p_derive */
#define SPAKE2P_INFO_MAX 1024	/* bytes of context and of each identity */

struct spake2p;			/* one run, prover or verifier */

/*
 * Registration: w0 and w1 from the setup PIN (NUL-terminated, 1 to
 * SPAKE2P_PIN_MAX bytes). w0s || w1s = scrypt(N=1024, r=8, p=1, 80 bytes)
 * of len(pin) || pin || len(nil) || len(nil) (RFC 9383 section 3.2 with both
 * identities empty) under the salt salt || "provd-spake2p-v2", where salt is
 * the device's 6-byte address (any 1 to SPAKE2P_SALT_MAX bytes accepted);
 * w0 = w0s mod p, w1 = w1s mod p, big-endian. Takes about 3.5 ms and 1 MiB.
 * The caller wipes w0 and w1 (OPENSSL_cleanse) when done.
 */
int spake2p_derive(const char *pin, const uint8_t *salt, size_t saltlen,
	uint8_t w0[SPAKE2P_SCALAR_LEN], uint8_t w1[SPAKE2P_SCALAR_LEN]);
/* The verifier's record L = w1*P. ERR_INVALID if w1 is 0 or not below p. */
int spake2p_make_L(const uint8_t w1[SPAKE2P_SCALAR_LEN], uint8_t L[SPAKE2P_POINT_LEN]);

/*
 * A new run. w0, w1 (each in [1, p-1]) and L are copied; context, id_prover
 * and id_verifier (NULL allowed when their length is 0, at most
 * SPAKE2P_INFO_MAX bytes each) are copied into the transcript. Both sides
 * must pass the same three. The caller frees *out with spake2p_free.
 */
int spake2p_prover_new(const uint8_t w0[SPAKE2P_SCALAR_LEN], const uint8_t w1[SPAKE2P_SCALAR_LEN],
	const uint8_t *context, size_t contextlen, const uint8_t *id_prover, size_t idplen,
	const uint8_t *id_verifier, size_t idvlen, struct spake2p **out);
int spake2p_verifier_new(const uint8_t w0[SPAKE2P_SCALAR_LEN], const uint8_t L[SPAKE2P_POINT_LEN],
	const uint8_t *context, size_t contextlen, const uint8_t *id_prover, size_t idplen,
	const uint8_t *id_verifier, size_t idvlen, struct spake2p **out);

/* Prover, step 1: a fresh x, shareP = X = x*P + w0*M. */
int spake2p_prover_start(struct spake2p *s, uint8_t shareP[SPAKE2P_POINT_LEN]);
/* Verifier, step 1: checks shareP, a fresh y, shareV = Y = y*P + w0*N, and
 * confirmV = HMAC(K_confirmV, shareP). w0 and y are wiped on return. */
int spake2p_verifier_respond(struct spake2p *s, const uint8_t shareP[SPAKE2P_POINT_LEN],
	uint8_t shareV[SPAKE2P_POINT_LEN], uint8_t confirmV[SPAKE2P_MAC_LEN]);
/* Prover, step 2: checks shareV and confirmV (ERR_AUTH), then
 * confirmP = HMAC(K_confirmP, shareV). w0, w1 and x are wiped on return. */
int spake2p_prover_finish(struct spake2p *s, const uint8_t shareV[SPAKE2P_POINT_LEN],
	const uint8_t confirmV[SPAKE2P_MAC_LEN], uint8_t confirmP[SPAKE2P_MAC_LEN]);
/* Verifier, step 2: checks confirmP (ERR_AUTH). */
int spake2p_verifier_finish(struct spake2p *s, const uint8_t confirmP[SPAKE2P_MAC_LEN]);
/*
 * K_shared, once this side has checked the peer's confirmation: the verifier
 * after spake2p_verifier_finish, the prover after spake2p_prover_finish. The
 * prover cannot see whether the verifier accepted confirmP; the TLS handshake
 * keyed with K_shared tells it. The caller wipes key when done.
 */
int spake2p_shared_key(const struct spake2p *s, uint8_t key[SPAKE2P_KEY_LEN]);
/* Wipes every secret of the run and frees it; NULL is a no-op. */
void spake2p_free(struct spake2p *s);
/* For test vectors only: fixes the ephemeral scalar (x for the prover, y for
 * the verifier, in [1, p-1]) before spake2p_prover_start/_verifier_respond. */
int spake2p_set_ephemeral(struct spake2p *s, const uint8_t scalar[SPAKE2P_SCALAR_LEN]);

/* The device identifier of a certificate (common/devid.c): the address in
 * its subjectAltName URI "urn:dev:mac:HEX" and/or subject serialNumber.
 * ERR_INVALID when there is none, two that differ, or a malformed one. */
int cert_device_addr(X509 *cert, uint8_t addr[MAC_LEN]);

/* ---------------------------------------------------------------------
 * Keys in a TPM 2.0 through OpenSSL's tpm2 provider (common/tpm2.c).
 */
struct tpm2_prov;
#define TPM2_PROPQ "provider=tpm2"
/* A preference for signing: OpenSSL 3.0 may otherwise try the default
 * provider's ECDSA first and fail to export the key to it. */
#define TPM2_SIGN_PROPQ "?provider=tpm2"
/* The provider (and the default one, for encoders and hashing) in a library
 * context of their own, talking to the TPM at tcti (NULL: the provider's
 * default, which TPM2OPENSSL_TCTI may set), after checking that the TPM
 * answers. ERR_CONFIG: bad TCTI string; ERR_UNAVAILABLE: no TPM there. */
int tpm2_prov_open(const char *tcti, struct tpm2_prov **out);
void tpm2_prov_free(struct tpm2_prov *t);
OSSL_LIB_CTX *tpm2_prov_libctx(const struct tpm2_prov *t);
/* A new P-256 key made inside the TPM. */
int tpm2_prov_keygen(struct tpm2_prov *t, EVP_PKEY **key);

#endif
