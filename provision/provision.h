/*
 * provision: the intake side of provd — the radio interface and its
 * backends (sim: a simulated air on this machine; bluez: BlueZ over D-Bus and
 * RFCOMM), the PIN-secured link and the intake orchestration. Nothing above
 * the radio interface knows which backend runs.
 */
#ifndef PROVD_PROVISION_H
#define PROVD_PROVISION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"

/* ---------------------------------------------------------------------
 * Radio interface.
 */
#define RADIO_NAME_MAX 64
#define RADIO_INQUIRY_MAX 256

struct radio;		/* an open backend */
struct radio_link;	/* a reliable, ordered byte stream to one peer */

struct radio_device {
	uint8_t addr[MAC_LEN];		/* BD_ADDR / IEEE address */
	char name[RADIO_NAME_MAX];	/* friendly name, NUL-terminated, may be "" */
	uint32_t cod;			/* class of device (24 bits) */
	int rssi;			/* dBm, e.g. -40 */
};

/* What a backend needs. Strings are borrowed for the duration of radio_open. */
struct radio_params {
	const char *backend;		/* "sim" or "bluez" */
	const char *sim_dir;		/* sim: the directory that is the air */
	const char *adapter;		/* bluez: e.g. "hci0" */
};

/* Opens a backend. ERR_CONFIG for an unknown backend or bad parameters,
 * ERR_UNAVAILABLE when the radio cannot be used. Free with radio_close(). */
int radio_open(const struct radio_params *p, struct radio **out);
void radio_close(struct radio *r);			/* NULL is a no-op */
/* Backend name ("sim", "bluez"), for logs. */
const char *radio_backend(const struct radio *r);

/* Lists the devices in range, waiting at most timeout_ms. Fills up to max
 * entries of out (no duplicates) and sets *n. */
int radio_inquire(struct radio *r, int timeout_ms, struct radio_device *out,
    size_t max, size_t *n);

/* Opens a link to addr. ERR_NOT_FOUND when no such device is in range,
 * ERR_TIMEOUT, ERR_UNAVAILABLE. Free with radio_link_close(). */
int radio_connect(struct radio *r, const uint8_t addr[MAC_LEN], int timeout_ms,
    struct radio_link **out);

/* Makes this radio discoverable and connectable as self (the device side). */
int radio_listen(struct radio *r, const struct radio_device *self);
/* Waits for an incoming link (after radio_listen). ERR_TIMEOUT when none. */
int radio_accept(struct radio *r, int timeout_ms, struct radio_link **out);

/*
 * Timeouts: a negative timeout_ms means no limit, 0 means do not wait. After
 * ERR_TIMEOUT from a read or write part of the data may have moved: close
 * the link. Links stay usable after their radio is closed.
 */
/* Writes all len bytes. ERR_IO when the link is gone, ERR_TIMEOUT. */
int radio_link_write(struct radio_link *l, const void *buf, size_t len, int timeout_ms);
/* Reads exactly len bytes. ERR_IO on a closed link, ERR_TIMEOUT. */
int radio_link_read(struct radio_link *l, void *buf, size_t len, int timeout_ms);
/* Reads what is available, 1..len bytes, into buf; *got is set. */
int radio_link_read_some(struct radio_link *l, void *buf, size_t len, size_t *got,
    int timeout_ms);
/* The link-layer address of the other end, as the radio reports it. */
void radio_link_peer(const struct radio_link *l, uint8_t addr[MAC_LEN]);
/* A file descriptor that becomes readable when data or EOF arrives (for
 * poll), or -1 when the backend has none. */
int radio_link_fd(const struct radio_link *l);
void radio_link_close(struct radio_link *l);		/* NULL is a no-op */

/* A BIO over a radio link, for TLS on any backend (radio_bio.c). The state
 * is the caller's and must outlive the BIO, which does not own the link. */
struct radio_link_bio {
	struct radio_link *link;
	int timeout_ms;			/* each read and write, when deadline_ns is 0 */
	uint64_t deadline_ns;		/* else every call ends by then (now_ns()) */
	int err;			/* the link's last error, 0 when none */
	uint8_t *tap;			/* optional: a copy of the first taplen bytes */
	size_t taplen, ntap;		/* read, ntap of them so far */
};
BIO *radio_link_bio_new(struct radio_link_bio *rb);	/* NULL on failure */

/* Fault injection for tests (sim backend; ERR_UNSUPPORTED elsewhere): the
 * link drops after drop_after more bytes written (0: never); every write is
 * delayed by delay_ms. */
int radio_link_set_fault(struct radio_link *l, size_t drop_after, int delay_ms);

/* ---------------------------------------------------------------------
 * Intake protocol (docs/protocol.md): versioned, length-prefixed frames
 * carried inside the PIN-secured TLS session.
 *
 *   frame   = version(1) type(1) flags(2, zero) length(4, big-endian) payload
 *   payload = TLV*,  TLV = tag(2, big-endian) length(2, big-endian) value
 *
 * The decoder is strict: known version, known type, zero flags, length within
 * PROTO_MAX_PAYLOAD, only the tags the type allows, each at most once (except
 * repeatable ones), required tags present, every value within its bound.
 */
#define PROTO_VERSION 1
#define PROTO_HDR_LEN 8
#define PROTO_MAX_PAYLOAD (32 * 1024)
#define PROTO_MAX_STR 128		/* model, name, firmware, error text */
#define PROTO_MAX_DER 4096		/* one CSR, certificate or key */
#define PROTO_MAX_CHAIN 4		/* CA certificates in an install */

enum proto_type {
	PROTO_HELLO = 1,	/* device -> server: who I am, what I can do */
	PROTO_KEYGEN_REQ = 2,	/* server -> device: make a key pair, send a CSR */
	PROTO_CSR = 3,		/* device -> server: CSR signed with the new key */
	PROTO_KEY_DELIVERY = 4,	/* server -> device: server-made private key */
	PROTO_INSTALL = 5,	/* server -> device: certificate + CA chain */
	PROTO_ACK = 6,		/* device -> server: installed (or key stored) */
	PROTO_ERROR = 7,	/* either way: typed error, then close */
	PROTO_DONE = 8,		/* server -> device: recorded; intake is over */
};

/* capability bits in HELLO */
#define PROTO_CAP_KEYGEN 0x01u		/* can generate a key pair itself */
#define PROTO_CAP_KS_TPM2 0x02u		/* has a TPM 2.0 keystore */
#define PROTO_CAP_KS_FILE 0x04u		/* has a software keystore */

enum proto_key_type { PROTO_KEY_P256 = 1 };

enum proto_errcode {
	PROTO_E_INTERNAL = 1, PROTO_E_BAD_MESSAGE = 2, PROTO_E_UNSUPPORTED = 3,
	PROTO_E_KEYGEN = 4, PROTO_E_STORE = 5, PROTO_E_REFUSED = 6, PROTO_E_LOCKED = 7,
};

/* A decoded message. Byte strings point into the decoded buffer (valid as
 * long as it is); strings are copied NUL-terminated into the arrays. */
struct proto_bytes {
	const uint8_t *p;
	size_t len;
};

struct proto_msg {
	enum proto_type type;
	union {
		struct {
			uint8_t addr[MAC_LEN];
			char model[PROTO_MAX_STR + 1];
			char name[PROTO_MAX_STR + 1];
			char firmware[PROTO_MAX_STR + 1];
			uint32_t caps;
		} hello;
		struct {
			enum proto_key_type key_type;
			uint8_t challenge[32];	/* echoed in the CSR answer */
		} keygen_req;
		struct {
			struct proto_bytes csr;	/* DER */
			uint8_t challenge[32];
		} csr;
		struct {
			struct proto_bytes key;	/* PKCS#8 DER; a secret */
		} key_delivery;
		struct {
			struct proto_bytes cert;	/* DER */
			struct proto_bytes chain[PROTO_MAX_CHAIN];
			size_t nchain;
		} install;
		struct {
			uint8_t cert_sha256[32];	/* of the certificate stored */
		} ack;
		struct {
			uint8_t cert_sha256[32];	/* of the certificate recorded */
		} done;
		struct {
			enum proto_errcode code;
			char text[PROTO_MAX_STR + 1];
		} error;
	} u;
};

/* Length of the whole frame from its first PROTO_HDR_LEN bytes; checks
 * version, flags and the payload bound. ERR_INVALID / ERR_TOO_BIG. */
int proto_frame_len(const uint8_t hdr[PROTO_HDR_LEN], size_t *framelen);
/* Encodes m into buf (capacity cap); *len is the frame length. */
int proto_encode(const struct proto_msg *m, uint8_t *buf, size_t cap, size_t *len);
/* Decodes one whole frame. ERR_INVALID on anything malformed. */
int proto_decode(const uint8_t *buf, size_t len, struct proto_msg *m);
const char *proto_type_name(enum proto_type t);

/* ---------------------------------------------------------------------
 * PIN-secured temporary link (pinlink.c): SPAKE2+ over the raw radio link,
 * then TLS 1.3 keyed by its result as external PSK. The radio link stays
 * owned by the caller and must outlive the pinlink.
 */
struct pinlink;

/* Operator side (SPAKE2+ prover): the PIN typed at the desk and the device's
 * address (the salt of the PIN's key derivation and the verifier identity).
 * ERR_AUTH when the PIN is wrong on either side (no more is said). */
int pinlink_connect(struct radio_link *l, const char *pin, const uint8_t dev_addr[MAC_LEN],
    int timeout_ms, struct pinlink **out);
/* Device side (SPAKE2+ verifier): only the registration record w0 and L made
 * from the PIN at manufacture. ERR_AUTH on a wrong PIN. */
int pinlink_accept(struct radio_link *l, const uint8_t w0[SPAKE2P_SCALAR_LEN],
    const uint8_t L[SPAKE2P_POINT_LEN], const uint8_t self_addr[MAC_LEN], int timeout_ms,
    struct pinlink **out);
/* Sends one intake message (the encoded frame is wiped after sending). */
int pinlink_send(struct pinlink *p, const struct proto_msg *m);
/* Receives one intake message into buf (capacity cap, at least
 * PROTO_HDR_LEN + PROTO_MAX_PAYLOAD); m points into buf. The caller wipes buf
 * when the message held a secret. ERR_IO: the link closed; ERR_TIMEOUT: the
 * peer went silent; ERR_INVALID / ERR_TOO_BIG: a malformed frame (its header
 * is in buf). */
int pinlink_recv(struct pinlink *p, uint8_t *buf, size_t cap, struct proto_msg *m);
/* Sends ERROR with code and a short public text (best effort before
 * closing). */
int pinlink_send_error(struct pinlink *p, enum proto_errcode code, const char *text);
/* Raw bytes inside the session. ERR_IO (link closed or broken) or
 * ERR_TIMEOUT (the peer stopped answering). */
int pinlink_write(struct pinlink *p, const void *buf, size_t len);
int pinlink_read(struct pinlink *p, void *buf, size_t len);
/* Keying material exported from the session (RFC 8446 exporter). */
int pinlink_export(struct pinlink *p, const char *label, uint8_t *out, size_t outlen);
/* Ends the session (close_notify) and wipes its keys. NULL is a no-op. */
void pinlink_close(struct pinlink *p);

/* ---------------------------------------------------------------------
 * One intake conversation, operator's side (intake.c), over an established
 * pinlink. The CA is the caller's: intake_run hands it the CSR.
 */
enum intake_keygen {
	INTAKE_KEYGEN_AUTO = 0,		/* device keygen when the device can */
	INTAKE_KEYGEN_DEVICE,		/* the key never leaves the device */
	INTAKE_KEYGEN_SERVER,		/* made here, delivered, our copy wiped */
};
const char *intake_keygen_name(enum intake_keygen k);

struct intake_params {
	uint8_t label_mac[MAC_LEN];	/* the address the operator confirmed */
	uint8_t link_peer[MAC_LEN];	/* the radio's view of the peer */
	enum intake_keygen keygen;
	/* Issues a certificate for mac from csr (DER); *cert is a new buffer
	 * (free()). On refusal returns an error and may write a sentence into
	 * why. */
	int (*issue)(void *arg, const uint8_t mac[MAC_LEN], const uint8_t *csr,
	    size_t csrlen, uint8_t **cert, size_t *certlen, char *why, size_t whylen);
	void *issue_arg;
	/* Called as each step starts ("keygen", "ca", "push"); NULL: none. */
	void (*progress)(void *arg, const char *step);
	void *progress_arg;
	const uint8_t *const *chain;	/* CA certificates (DER) for INSTALL */
	const size_t *chainlen;
	size_t nchain;
};

struct intake_result {
	uint8_t mac[MAC_LEN];		/* as the device said in HELLO */
	char model[PROTO_MAX_STR + 1];
	enum intake_keygen keygen;	/* the flow used */
	char step[16];			/* last step reached: hello, keygen, ca,
					   push, done */
	uint8_t *cert;			/* on success: the installed certificate
					   (DER, free()) */
	size_t certlen;
	uint64_t ms_keygen, ms_ca, ms_push;	/* time per step */
};

/* Runs the conversation. 0 only after the device acknowledged the exact
 * certificate. Otherwise a code and a sentence for the operator in why;
 * res->step says how far it got. */
int intake_run(struct pinlink *p, const struct intake_params *ip,
    struct intake_result *res, char *why, size_t whylen);
/* After the caller has recorded the device durably: tells the device
 * (DONE), which then closes its setup PIN to further intake. */
int intake_done(struct pinlink *p, const struct intake_result *res);

#endif
