/*
 * baddevice.c: a device that breaks the intake protocol on purpose, for the
 * fault tests. It answers on the sim air and runs the PIN exchange like
 * devagent, then misbehaves in the one way its mode names, and prints one
 * line saying what it did and what the server answered.
 *
 *   baddevice --air DIR --addr ADDR --pin PIN --mode MODE [--timeout SECONDS]
 *
 * Exit status 0 when it did its misbehaviour, 1 when it could not get that
 * far (bad arguments, no radio, no link, a wrong PIN, a server that did not
 * ask what the mode needs).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "provision/provision.h"

#define FRAME_CAP (PROTO_HDR_LEN + PROTO_MAX_PAYLOAD)
#define TIMEOUT_DEFAULT_S 30
#define TIMEOUT_MAX_S 3600
#define CAPS (PROTO_CAP_KEYGEN | PROTO_CAP_KS_FILE)
#define SAID_MAX 512		/* what the server said, for the report */

enum mode {
	MODE_HELLO_OTHER_ADDR,		/* HELLO names another address */
	MODE_CSR_OTHER_ADDR,		/* CSR subject names another address */
	MODE_CSR_BAD_SIGNATURE,		/* CSR not signed by its own key */
	MODE_CSR_WRONG_CHALLENGE,	/* CSR with another challenge */
	MODE_GARBAGE_FRAME,		/* a malformed frame instead of HELLO */
	MODE_ACK_WRONG_HASH,		/* ACK of another certificate */
	MODE_SILENT_AFTER_HELLO,	/* HELLO, then nothing */
	MODE_SILENT_AFTER_INSTALL,	/* takes the certificate, never ACKs */
};

static const struct {
	const char *name;
	enum mode mode;
} modes[] = {
	{ "hello-other-addr", MODE_HELLO_OTHER_ADDR },
	{ "csr-other-addr", MODE_CSR_OTHER_ADDR },
	{ "csr-bad-signature", MODE_CSR_BAD_SIGNATURE },
	{ "csr-wrong-challenge", MODE_CSR_WRONG_CHALLENGE },
	{ "garbage-frame", MODE_GARBAGE_FRAME },
	{ "ack-wrong-hash", MODE_ACK_WRONG_HASH },
	{ "silent-after-hello", MODE_SILENT_AFTER_HELLO },
	{ "silent-after-install", MODE_SILENT_AFTER_INSTALL },
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: baddevice --air DIR --addr ADDR --pin PIN --mode MODE "
	    "[--timeout SECONDS]\nmodes:");
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		fprintf(f, " %s", modes[i].name);
	fprintf(f, "\n");
}

/* Another unicast address than addr: the last byte plus one (two for 0xff,
 * so that it never becomes all zero). */
static void
other_addr(const uint8_t addr[MAC_LEN], uint8_t out[MAC_LEN])
{
	memcpy(out, addr, MAC_LEN);
	out[MAC_LEN - 1] = (uint8_t)(out[MAC_LEN - 1] + 1);
	if (out[MAC_LEN - 1] == 0)
		out[MAC_LEN - 1] = 2;
}

static int
send_hello(struct pinlink *p, const uint8_t addr[MAC_LEN])
{
	struct proto_msg m;

	memset(&m, 0, sizeof(m));
	m.type = PROTO_HELLO;
	memcpy(m.u.hello.addr, addr, MAC_LEN);
	snprintf(m.u.hello.model, sizeof(m.u.hello.model), "BadDevice 1");
	snprintf(m.u.hello.name, sizeof(m.u.hello.name), "BadDevice");
	snprintf(m.u.hello.firmware, sizeof(m.u.hello.firmware), "0.1");
	m.u.hello.caps = CAPS;
	return pinlink_send(p, &m);
}

/* Receives the next message and checks that it is of type want; otherwise
 * says what came instead in why. */
static int
recv_want(struct pinlink *p, uint8_t *buf, enum proto_type want, struct proto_msg *m,
    char *why, size_t whylen)
{
	int r;

	if ((r = pinlink_recv(p, buf, FRAME_CAP, m)) != 0) {
		msg_set(why, whylen, "no %s from the server (%s)", proto_type_name(want),
		    provd_strerror(r));
		return r;
	}
	if (m->type == PROTO_ERROR) {
		msg_set(why, whylen, "the server sent ERROR %d \"%s\" instead of %s",
		    (int)m->u.error.code, m->u.error.text, proto_type_name(want));
		return ERR_INVALID;
	}
	if (m->type != want) {
		msg_set(why, whylen, "the server sent %s instead of %s", proto_type_name(m->type),
		    proto_type_name(want));
		return ERR_INVALID;
	}
	return 0;
}

/*
 * A DER CSR (version 1, subject serialNumber=<named>) for the public key of
 * key, signed with signer: with signer == key a good one, otherwise one
 * whose proof of possession fails. *der is a new buffer (free()).
 */
static int
make_csr(EVP_PKEY *key, EVP_PKEY *signer, const uint8_t named[MAC_LEN], uint8_t **der,
    size_t *derlen)
{
	X509_REQ *req = NULL;
	uint8_t *out = NULL, *q;
	char ms[MAC_STR_LEN];
	int len, r = ERR_CRYPTO;

	*der = NULL;
	*derlen = 0;
	mac_format(named, ms);
	if ((req = X509_REQ_new()) == NULL ||
	    !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(req), NID_serialNumber,
	    MBSTRING_ASC, (const unsigned char *)ms, -1, -1, 0) ||
	    !X509_REQ_set_pubkey(req, key) || X509_REQ_sign(req, signer, EVP_sha256()) <= 0 ||
	    (len = i2d_X509_REQ(req, NULL)) <= 0) {
		log_ossl("cannot make the CSR");
		goto out;
	}
	if ((out = malloc((size_t)len)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	q = out;
	if (i2d_X509_REQ(req, &q) != len) {
		log_ossl("cannot encode the CSR");
		goto out;
	}
	*der = out;
	*derlen = (size_t)len;
	out = NULL;
	r = 0;
out:
	free(out);
	X509_REQ_free(req);
	return r;
}

/*
 * The device keygen flow up to the CSR, spoiled as the mode says: HELLO,
 * KEYGEN_REQ, then a CSR. did says what was sent.
 */
static int
send_csr(struct pinlink *p, uint8_t *buf, enum mode mode, const uint8_t addr[MAC_LEN],
    char *did, size_t didlen)
{
	EVP_PKEY *key = NULL, *other = NULL;
	uint8_t named[MAC_LEN], *csr = NULL;
	size_t csrlen = 0;
	struct proto_msg m, out;
	char ms[MAC_STR_LEN];
	int r;

	if ((r = send_hello(p, addr)) != 0) {
		msg_set(did, didlen, "cannot send HELLO (%s)", provd_strerror(r));
		goto out;
	}
	if ((r = recv_want(p, buf, PROTO_KEYGEN_REQ, &m, did, didlen)) != 0)
		goto out;
	memcpy(named, addr, MAC_LEN);
	if (mode == MODE_CSR_OTHER_ADDR)
		other_addr(addr, named);
	r = ERR_CRYPTO;
	if ((key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
	    (mode == MODE_CSR_BAD_SIGNATURE &&
	    (other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL)) {
		log_ossl("key generation");
		msg_set(did, didlen, "cannot make a key");
		goto out;
	}
	if ((r = make_csr(key, other != NULL ? other : key, named, &csr, &csrlen)) != 0) {
		msg_set(did, didlen, "cannot make the CSR (%s)", provd_strerror(r));
		goto out;
	}
	memset(&out, 0, sizeof(out));
	out.type = PROTO_CSR;
	out.u.csr.csr.p = csr;
	out.u.csr.csr.len = csrlen;
	memcpy(out.u.csr.challenge, m.u.keygen_req.challenge, sizeof(out.u.csr.challenge));
	if (mode == MODE_CSR_WRONG_CHALLENGE)
		for (size_t i = 0; i < sizeof(out.u.csr.challenge); i++)
			out.u.csr.challenge[i] ^= 0xff;
	if ((r = pinlink_send(p, &out)) != 0) {
		msg_set(did, didlen, "cannot send the CSR (%s)", provd_strerror(r));
		goto out;
	}
	mac_format(named, ms);
	switch (mode) {
	case MODE_CSR_OTHER_ADDR:
		msg_set(did, didlen, "answered KEYGEN_REQ with a CSR for %s", ms);
		break;
	case MODE_CSR_BAD_SIGNATURE:
		msg_set(did, didlen, "answered KEYGEN_REQ with a CSR signed by another key");
		break;
	case MODE_CSR_WRONG_CHALLENGE:
		msg_set(did, didlen, "answered KEYGEN_REQ with a CSR carrying another challenge");
		break;
	default:
		msg_set(did, didlen, "answered KEYGEN_REQ with a good CSR");
		break;
	}
out:
	free(csr);
	EVP_PKEY_free(other);
	EVP_PKEY_free(key);
	return r;
}

/* A good CSR, then an ACK whose hash is not the installed certificate's. */
static int
ack_wrong_hash(struct pinlink *p, uint8_t *buf, const uint8_t addr[MAC_LEN], char *did,
    size_t didlen)
{
	struct proto_msg m, out;
	int r;

	if ((r = send_csr(p, buf, MODE_ACK_WRONG_HASH, addr, did, didlen)) != 0)
		return r;
	if ((r = recv_want(p, buf, PROTO_INSTALL, &m, did, didlen)) != 0)
		return r;
	memset(&out, 0, sizeof(out));
	out.type = PROTO_ACK;
	if (!EVP_Digest(m.u.install.cert.p, m.u.install.cert.len, out.u.ack.cert_sha256, NULL,
	    EVP_sha256(), NULL)) {
		log_ossl("SHA-256");
		msg_set(did, didlen, "cannot hash the certificate");
		return ERR_CRYPTO;
	}
	out.u.ack.cert_sha256[0] ^= 0x01;
	if ((r = pinlink_send(p, &out)) != 0) {
		msg_set(did, didlen, "cannot send ACK (%s)", provd_strerror(r));
		return r;
	}
	msg_set(did, didlen, "got INSTALL (%zu-byte certificate) and acknowledged another hash",
	    m.u.install.cert.len);
	return 0;
}

/* A good CSR, the certificate received, and no ACK ever. */
static int
silent_after_install(struct pinlink *p, uint8_t *buf, const uint8_t addr[MAC_LEN], char *did,
    size_t didlen)
{
	struct proto_msg m;
	int r;

	if ((r = send_csr(p, buf, MODE_SILENT_AFTER_INSTALL, addr, did, didlen)) != 0)
		return r;
	if ((r = recv_want(p, buf, PROTO_INSTALL, &m, did, didlen)) != 0)
		return r;
	msg_set(did, didlen, "got INSTALL (%zu-byte certificate) and said nothing",
	    m.u.install.cert.len);
	return 0;
}

/* Misbehaves as mode says. 0 when done; otherwise did says why not. */
static int
misbehave(struct pinlink *p, uint8_t *buf, enum mode mode, const uint8_t addr[MAC_LEN],
    char *did, size_t didlen)
{
	uint8_t other[MAC_LEN];
	char ms[MAC_STR_LEN];
	int r;

	switch (mode) {
	case MODE_HELLO_OTHER_ADDR:
		other_addr(addr, other);
		mac_format(other, ms);
		if ((r = send_hello(p, other)) != 0) {
			msg_set(did, didlen, "cannot send HELLO (%s)", provd_strerror(r));
			return r;
		}
		msg_set(did, didlen, "sent HELLO as %s", ms);
		return 0;
	case MODE_GARBAGE_FRAME: {
		/* a frame header of the next version announcing 4 GiB */
		static const uint8_t hdr[PROTO_HDR_LEN] = {
			PROTO_VERSION + 1, PROTO_HELLO, 0, 0, 0xff, 0xff, 0xff, 0xff,
		};
		if ((r = pinlink_write(p, hdr, sizeof(hdr))) != 0) {
			msg_set(did, didlen, "cannot send the frame (%s)", provd_strerror(r));
			return r;
		}
		msg_set(did, didlen, "sent a frame header of version %d with length %u "
		    "instead of HELLO", PROTO_VERSION + 1, 0xffffffffu);
		return 0;
	}
	case MODE_SILENT_AFTER_HELLO:
		if ((r = send_hello(p, addr)) != 0) {
			msg_set(did, didlen, "cannot send HELLO (%s)", provd_strerror(r));
			return r;
		}
		msg_set(did, didlen, "sent HELLO and then nothing");
		return 0;
	case MODE_CSR_OTHER_ADDR:
	case MODE_CSR_BAD_SIGNATURE:
	case MODE_CSR_WRONG_CHALLENGE:
		return send_csr(p, buf, mode, addr, did, didlen);
	case MODE_ACK_WRONG_HASH:
		return ack_wrong_hash(p, buf, addr, did, didlen);
	case MODE_SILENT_AFTER_INSTALL:
		return silent_after_install(p, buf, addr, did, didlen);
	}
	msg_set(did, didlen, "unknown mode");
	return ERR_INTERNAL;
}

/*
 * After the misbehaviour: reads, and never answers, whatever the server
 * still sends until the link ends; says it in said ("the server sent
 * KEYGEN_REQ, ERROR 2 "..."; the link closed after N ms").
 */
static void
hear_out(struct pinlink *p, uint8_t *buf, char *said, size_t saidlen)
{
	struct proto_msg m;
	uint64_t t0 = now_ns();
	size_t n = 0, used;
	int r;

	msg_set(said, saidlen, "the server sent ");
	while ((r = pinlink_recv(p, buf, FRAME_CAP, &m)) == 0) {
		used = strlen(said);
		if (m.type == PROTO_ERROR)
			msg_set(said + used, saidlen - used, "%sERROR %d \"%s\"", n ? ", " : "",
			    (int)m.u.error.code, m.u.error.text);
		else
			msg_set(said + used, saidlen - used, "%s%s", n ? ", " : "",
			    proto_type_name(m.type));
		n++;
	}
	used = strlen(said);
	msg_set(said + used, saidlen - used, "%s; %s after %llu ms", n ? "" : "nothing",
	    r == ERR_IO ? "the link closed" : provd_strerror(r),
	    (unsigned long long)((now_ns() - t0) / 1000000u));
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "air", required_argument, NULL, 'a' },
		{ "addr", required_argument, NULL, 'A' },
		{ "pin", required_argument, NULL, 'p' },
		{ "mode", required_argument, NULL, 'm' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct radio_params rp = { .backend = "sim" };
	struct radio_device self = { .cod = 0x240404, .rssi = -45 };
	struct radio *radio = NULL;
	struct radio_link *l = NULL;
	struct pinlink *p = NULL;
	uint8_t w0[SPAKE2P_SCALAR_LEN], w1[SPAKE2P_SCALAR_LEN], L[SPAKE2P_POINT_LEN];
	uint8_t *buf = NULL;
	const char *addr = NULL, *mode_name = NULL;
	char *pin = NULL;
	char did[256] = "", said[SAID_MAX], ms[MAC_STR_LEN];
	enum mode mode = MODE_HELLO_OTHER_ADDR;
	int64_t secs = TIMEOUT_DEFAULT_S;
	int c, r, timeout_ms, rc = 1, have_mode = 0;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'a': rp.sim_dir = optarg; break;
		case 'A': addr = optarg; break;
		case 'p': pin = optarg; break;
		case 'm': mode_name = optarg; break;
		case 't':
			if (parse_int64(optarg, 1, TIMEOUT_MAX_S, &secs) != 0) {
				fprintf(stderr, "baddevice: --timeout is 1..%d seconds\n",
				    TIMEOUT_MAX_S);
				return 1;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (optind != argc || rp.sim_dir == NULL || addr == NULL || pin == NULL ||
	    mode_name == NULL) {
		usage(stderr);
		return 1;
	}
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(mode_name, modes[i].name) == 0) {
			mode = modes[i].mode;
			have_mode = 1;
		}
	if (!have_mode) {
		fprintf(stderr, "baddevice: unknown mode %s\n", mode_name);
		usage(stderr);
		return 1;
	}
	if (mac_parse(addr, self.addr) != 0) {
		fprintf(stderr, "baddevice: %s is not a unicast IEEE address\n", addr);
		return 1;
	}
	mac_format(self.addr, ms);
	snprintf(self.name, sizeof(self.name), "BadDevice");
	timeout_ms = (int)secs * 1000;
	signal(SIGPIPE, SIG_IGN);
	CRYPTO_secure_malloc_init(1 << 18, 32);
	log_init("baddevice", LOG_LVL_WARN, 0, 0);

	/* manufacture, as agent_init does: the record from the PIN, salted
	 * with the address; w1 is not kept */
	if ((r = spake2p_derive(pin, self.addr, MAC_LEN, w0, w1)) != 0 ||
	    (r = spake2p_make_L(w1, L)) != 0) {
		fprintf(stderr, "baddevice: cannot derive the PIN record: %s\n", provd_strerror(r));
		goto out;
	}
	OPENSSL_cleanse(w1, sizeof(w1));
	OPENSSL_cleanse(pin, strlen(pin));	/* the PIN is not kept either */
	if ((buf = OPENSSL_malloc(FRAME_CAP)) == NULL) {
		fprintf(stderr, "baddevice: out of memory\n");
		goto out;
	}
	if ((r = radio_open(&rp, &radio)) != 0 || (r = radio_listen(radio, &self)) != 0) {
		fprintf(stderr, "baddevice: cannot use the radio: %s\n", provd_strerror(r));
		goto out;
	}
	printf("baddevice %s (%s) in range on %s\n", ms, mode_name, rp.sim_dir);
	fflush(stdout);

	if ((r = radio_accept(radio, timeout_ms, &l)) != 0) {
		fprintf(stderr, "baddevice %s: no link: %s\n", ms, provd_strerror(r));
		goto out;
	}
	if ((r = pinlink_accept(l, w0, L, self.addr, timeout_ms, &p)) != 0) {
		fprintf(stderr, "baddevice %s: the PIN exchange failed: %s\n", ms,
		    provd_strerror(r));
		goto out;
	}
	if ((r = misbehave(p, buf, mode, self.addr, did, sizeof(did))) != 0) {
		fprintf(stderr, "baddevice %s: %s: could not misbehave: %s\n", ms, mode_name, did);
		goto out;
	}
	hear_out(p, buf, said, sizeof(said));
	printf("baddevice %s: %s: %s; %s\n", ms, mode_name, did, said);
	rc = 0;
out:
	pinlink_close(p);
	radio_link_close(l);
	radio_close(radio);
	if (buf != NULL)
		OPENSSL_clear_free(buf, FRAME_CAP);
	OPENSSL_cleanse(w0, sizeof(w0));
	OPENSSL_cleanse(w1, sizeof(w1));
	return rc;
}
