/*
 * intake.c (device): the device's side of one intake conversation — accept
 * the PIN-secured link with the registration record only, say who we are,
 * make the key pair in the keystore (or take the delivered one), install the
 * certificate atomically and acknowledge it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "device/device.h"

#define FRAME_CAP (PROTO_HDR_LEN + PROTO_MAX_PAYLOAD)

/* Receives one message; a malformed frame gets ERROR (BAD_MESSAGE, or
 * UNSUPPORTED for another protocol version) before the link closes
 * (docs/protocol.md, "Errors"). what: for the sentence, "after hello" ... */
static int
dev_recv(struct pinlink *p, uint8_t *buf, struct proto_msg *m, const char *what, char *why,
    size_t whylen)
{
	int r = pinlink_recv(p, buf, FRAME_CAP, m);

	if (r == ERR_INVALID || r == ERR_TOO_BIG) {
		if (buf[0] != PROTO_VERSION)
			(void)pinlink_send_error(p, PROTO_E_UNSUPPORTED, "unsupported protocol version");
		else
			(void)pinlink_send_error(p, PROTO_E_BAD_MESSAGE, "malformed frame");
		msg_set(why, whylen, "the server sent a malformed frame %s", what);
		return ERR_INVALID;
	}
	if (r != 0)
		msg_set(why, whylen, "the link dropped %s", what);
	return r;
}

int
device_intake_serve(struct radio_link *l, const struct device_profile *dp,
    struct keystore *ks, int timeout_ms, char *why, size_t whylen)
{
	struct pinlink *p = NULL;
	struct proto_msg m, out;
	uint8_t *buf = NULL, *csr = NULL;
	size_t csrlen = 0;
	int r;

	why[0] = '\0';
	if ((r = pinlink_accept(l, dp->w0, dp->L, dp->addr, timeout_ms, &p)) != 0) {
		msg_set(why, whylen, "the PIN exchange failed");
		return r;
	}
	if ((buf = OPENSSL_malloc(FRAME_CAP)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	memset(&out, 0, sizeof(out));
	out.type = PROTO_HELLO;
	memcpy(out.u.hello.addr, dp->addr, MAC_LEN);
	snprintf(out.u.hello.model, sizeof(out.u.hello.model), "%s", dp->model);
	snprintf(out.u.hello.name, sizeof(out.u.hello.name), "%s", dp->name);
	snprintf(out.u.hello.firmware, sizeof(out.u.hello.firmware), "%s", dp->firmware);
	out.u.hello.caps = PROTO_CAP_KEYGEN |
	    (strcmp(keystore_kind(ks), "tpm2") == 0 ? PROTO_CAP_KS_TPM2 : PROTO_CAP_KS_FILE);
	if ((r = pinlink_send(p, &out)) != 0) {
		msg_set(why, whylen, "the link dropped while saying hello");
		goto out;
	}
	if ((r = dev_recv(p, buf, &m, "after hello", why, whylen)) != 0)
		goto out;

	switch (m.type) {
	case PROTO_KEYGEN_REQ:
		if ((r = keystore_generate(ks, dp->addr, &csr, &csrlen)) != 0) {
			(void)pinlink_send_error(p, PROTO_E_KEYGEN, "key generation failed");
			msg_set(why, whylen, "key generation failed: %s", provd_strerror(r));
			goto out;
		}
		memset(&out, 0, sizeof(out));
		out.type = PROTO_CSR;
		out.u.csr.csr.p = csr;
		out.u.csr.csr.len = csrlen;
		memcpy(out.u.csr.challenge, m.u.keygen_req.challenge, sizeof(out.u.csr.challenge));
		if ((r = pinlink_send(p, &out)) != 0) {
			msg_set(why, whylen, "the link dropped while sending the CSR");
			goto out;
		}
		break;
	case PROTO_KEY_DELIVERY:
		r = keystore_import(ks, m.u.key_delivery.key.p, m.u.key_delivery.key.len);
		OPENSSL_cleanse(buf, FRAME_CAP);	/* the frame held the key */
		if (r != 0) {
			(void)pinlink_send_error(p, PROTO_E_STORE, "cannot store a delivered key");
			msg_set(why, whylen, "cannot store the delivered key: %s", provd_strerror(r));
			goto out;
		}
		break;
	case PROTO_ERROR:
		msg_set(why, whylen, "the server stopped: %s", m.u.error.text);
		r = ERR_CONFLICT;
		goto out;
	default:
		(void)pinlink_send_error(p, PROTO_E_BAD_MESSAGE, "unexpected message");
		msg_set(why, whylen, "unexpected %s", proto_type_name(m.type));
		r = ERR_INVALID;
		goto out;
	}

	if ((r = dev_recv(p, buf, &m, "before the certificate came", why, whylen)) != 0)
		goto out;
	if (m.type == PROTO_ERROR) {
		msg_set(why, whylen, "the server stopped: %s", m.u.error.text);
		r = ERR_CONFLICT;
		goto out;
	}
	if (m.type != PROTO_INSTALL) {
		(void)pinlink_send_error(p, PROTO_E_BAD_MESSAGE, "expected INSTALL");
		msg_set(why, whylen, "unexpected %s", proto_type_name(m.type));
		r = ERR_INVALID;
		goto out;
	}
	const uint8_t *chain[PROTO_MAX_CHAIN];
	size_t chainlen[PROTO_MAX_CHAIN];
	for (size_t i = 0; i < m.u.install.nchain; i++) {
		chain[i] = m.u.install.chain[i].p;
		chainlen[i] = m.u.install.chain[i].len;
	}
	if ((r = keystore_install(ks, m.u.install.cert.p, m.u.install.cert.len, chain,
	    chainlen, m.u.install.nchain)) != 0) {
		(void)pinlink_send_error(p, PROTO_E_STORE, "cannot install the certificate");
		msg_set(why, whylen, "cannot install the certificate: %s", provd_strerror(r));
		goto out;
	}
	memset(&out, 0, sizeof(out));
	out.type = PROTO_ACK;
	if (!EVP_Digest(m.u.install.cert.p, m.u.install.cert.len, out.u.ack.cert_sha256, NULL,
	    EVP_sha256(), NULL)) {
		r = ERR_CRYPTO;
		goto out;
	}
	/* installed; recorded only when DONE comes. Without it the server may
	 * have recorded nothing, so intake stays open for a retry */
	uint8_t fp[32];
	memcpy(fp, out.u.ack.cert_sha256, sizeof(fp));
	if ((r = pinlink_send(p, &out)) != 0 ||
	    (r = dev_recv(p, buf, &m, "after the certificate", why, whylen)) != 0) {
		msg_set(why, whylen, "the certificate is installed but the server did not "
		    "confirm the record");
		r = r == ERR_INVALID ? r : ERR_IO;
		goto out;
	}
	if (m.type != PROTO_DONE || CRYPTO_memcmp(m.u.done.cert_sha256, fp, sizeof(fp)) != 0) {
		msg_set(why, whylen, "the certificate is installed but the server's answer is "
		    "not a record of it");
		r = ERR_INVALID;
		goto out;
	}
	r = 0;
out:
	free(csr);
	if (buf != NULL)
		OPENSSL_clear_free(buf, FRAME_CAP);
	pinlink_close(p);
	return r;
}
