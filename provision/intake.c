/*
 * intake.c: the operator's side of one intake conversation over an
 * established PIN-secured link (docs/protocol.md, "Conversation"): checks
 * who the device says it is, gets a key pair in place (made by the device, or
 * by us and delivered), has the caller's CA issue the certificate, installs
 * it and waits for the device's acknowledgement.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "provision/provision.h"

#define FRAME_CAP (PROTO_HDR_LEN + PROTO_MAX_PAYLOAD)

const char *
intake_keygen_name(enum intake_keygen k)
{
	switch (k) {
	case INTAKE_KEYGEN_AUTO: return "auto";
	case INTAKE_KEYGEN_DEVICE: return "device";
	case INTAKE_KEYGEN_SERVER: return "server";
	}
	return "?";
}

static uint64_t
ms_since(uint64_t t0)
{
	return (now_ns() - t0) / 1000000u;
}

/* Server keygen: a P-256 key and a CSR signed with it (the CA checks want
 * proof of possession whoever made the key). */
static int
server_keygen(EVP_PKEY **key, uint8_t **csr, size_t *csrlen, const uint8_t mac[MAC_LEN])
{
	X509_REQ *req = NULL;
	unsigned char *der = NULL;
	char ms[MAC_STR_LEN];
	int r = ERR_CRYPTO, len;

	*key = NULL;
	*csr = NULL;
	mac_format(mac, ms);
	if ((*key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
	    (req = X509_REQ_new()) == NULL ||
	    !X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(req), NID_serialNumber,
	    MBSTRING_ASC, (const unsigned char *)ms, -1, -1, 0) ||
	    !X509_REQ_set_pubkey(req, *key) || !X509_REQ_sign(req, *key, EVP_sha256()) ||
	    (len = i2d_X509_REQ(req, &der)) <= 0) {
		log_ossl("server key generation");
		EVP_PKEY_free(*key);
		*key = NULL;
		goto out;
	}
	/* the caller frees with free() whichever side made the CSR */
	if ((*csr = malloc((size_t)len)) == NULL) {
		EVP_PKEY_free(*key);
		*key = NULL;
		r = ERR_NOMEM;
		goto out;
	}
	memcpy(*csr, der, (size_t)len);
	*csrlen = (size_t)len;
	r = 0;
out:
	OPENSSL_free(der);
	X509_REQ_free(req);
	return r;
}

/*
 * A receive that failed: a malformed frame gets ERROR (BAD_MESSAGE, or
 * UNSUPPORTED for another protocol version) before the link closes, as
 * docs/protocol.md says; the sentence for the operator tells a silent
 * device from a dropped link. what: "during key generation", ...
 */
static int
recv_failed(struct pinlink *p, const uint8_t *buf, int r, const char *what, char *why,
    size_t whylen)
{
	switch (r) {
	case ERR_INVALID:
	case ERR_TOO_BIG:
		if (buf[0] != PROTO_VERSION) {
			(void)pinlink_send_error(p, PROTO_E_UNSUPPORTED, "unsupported protocol version");
			msg_set(why, whylen, "the device speaks another protocol version (%u) %s",
			    buf[0], what);
		} else {
			(void)pinlink_send_error(p, PROTO_E_BAD_MESSAGE, "malformed frame");
			msg_set(why, whylen, "the device sent a malformed frame %s", what);
		}
		return ERR_INVALID;
	case ERR_TIMEOUT:
		msg_set(why, whylen, "the device stopped answering %s", what);
		return r;
	default:
		msg_set(why, whylen, "the link dropped %s", what);
		return r;
	}
}

int
intake_run(struct pinlink *p, const struct intake_params *ip, struct intake_result *res,
    char *why, size_t whylen)
{
	uint8_t *buf = NULL, *csr_der = NULL, *pkcs8 = NULL, challenge[32], fp[32];
	size_t csrlen = 0, pkcs8len = 0;
	struct proto_msg m, out;
	EVP_PKEY *key = NULL;
	uint64_t t;
	int r = ERR_INTERNAL, len;
	char ms[MAC_STR_LEN];

	memset(res, 0, sizeof(*res));
	why[0] = '\0';
	if (ip->nchain > PROTO_MAX_CHAIN) {
		msg_set(why, whylen, "the CA chain has more than %d certificates", PROTO_MAX_CHAIN);
		return ERR_INVALID;
	}
	if ((buf = OPENSSL_malloc(FRAME_CAP)) == NULL) {
		msg_set(why, whylen, "out of memory");
		return ERR_NOMEM;
	}

	/* HELLO: the address must be the one on the label and the link's */
	snprintf(res->step, sizeof(res->step), "hello");
	if ((r = pinlink_recv(p, buf, FRAME_CAP, &m)) != 0) {
		r = recv_failed(p, buf, r, "instead of HELLO", why, whylen);
		goto out;
	}
	if (m.type == PROTO_ERROR) {
		/* an ERROR is never answered */
		msg_set(why, whylen, "the device refused intake: %s", m.u.error.text);
		r = ERR_CONFLICT;
		goto out;
	}
	if (m.type != PROTO_HELLO) {
		(void)pinlink_send_error(p, PROTO_E_BAD_MESSAGE, "expected HELLO");
		msg_set(why, whylen, "the device sent %s instead of HELLO", proto_type_name(m.type));
		r = ERR_INVALID;
		goto out;
	}
	memcpy(res->mac, m.u.hello.addr, MAC_LEN);
	snprintf(res->model, sizeof(res->model), "%s", m.u.hello.model);
	if (memcmp(m.u.hello.addr, ip->label_mac, MAC_LEN) != 0 ||
	    memcmp(m.u.hello.addr, ip->link_peer, MAC_LEN) != 0) {
		mac_format(m.u.hello.addr, ms);
		(void)pinlink_send_error(p, PROTO_E_REFUSED, "address does not match the label");
		msg_set(why, whylen, "the device says it is %s, which is not the address "
		    "on the label or of the link", ms);
		r = ERR_CONFLICT;
		goto out;
	}
	res->keygen = ip->keygen;
	if (res->keygen == INTAKE_KEYGEN_AUTO)
		res->keygen = m.u.hello.caps & PROTO_CAP_KEYGEN ? INTAKE_KEYGEN_DEVICE :
		    INTAKE_KEYGEN_SERVER;
	if (res->keygen == INTAKE_KEYGEN_SERVER && !(m.u.hello.caps & PROTO_CAP_KS_FILE)) {
		/* a key cannot be imported into a TPM: do not make one for it */
		(void)pinlink_send_error(p, PROTO_E_UNSUPPORTED, "this intake needs a key store "
		    "that takes a delivered key");
		msg_set(why, whylen, "server key generation was asked for, but the device "
		    "cannot store a delivered key; use device key generation");
		r = ERR_UNSUPPORTED;
		goto out;
	}
	if (res->keygen == INTAKE_KEYGEN_DEVICE && !(m.u.hello.caps & PROTO_CAP_KEYGEN)) {
		(void)pinlink_send_error(p, PROTO_E_UNSUPPORTED, "this intake needs device key generation");
		msg_set(why, whylen, "device key generation was asked for, but the device "
		    "cannot generate keys; use server key generation");
		r = ERR_UNSUPPORTED;
		goto out;
	}

	/* the key pair */
	snprintf(res->step, sizeof(res->step), "keygen");
	if (ip->progress != NULL)
		ip->progress(ip->progress_arg, "keygen");
	t = now_ns();
	if (res->keygen == INTAKE_KEYGEN_DEVICE) {
		memset(&out, 0, sizeof(out));
		out.type = PROTO_KEYGEN_REQ;
		out.u.keygen_req.key_type = PROTO_KEY_P256;
		if (RAND_bytes(challenge, sizeof(challenge)) != 1) {
			r = ERR_CRYPTO;
			goto out;
		}
		memcpy(out.u.keygen_req.challenge, challenge, sizeof(challenge));
		if ((r = pinlink_send(p, &out)) != 0) {
			msg_set(why, whylen, "the link dropped during key generation");
			goto out;
		}
		if ((r = pinlink_recv(p, buf, FRAME_CAP, &m)) != 0) {
			r = recv_failed(p, buf, r, "during key generation", why, whylen);
			goto out;
		}
		if (m.type == PROTO_ERROR) {
			msg_set(why, whylen, "the device could not make a key: %s", m.u.error.text);
			r = ERR_UNSUPPORTED;
			goto out;
		}
		if (m.type != PROTO_CSR ||
		    CRYPTO_memcmp(m.u.csr.challenge, challenge, sizeof(challenge)) != 0) {
			(void)pinlink_send_error(p, PROTO_E_BAD_MESSAGE, "expected CSR with our challenge");
			msg_set(why, whylen, "the device's answer to the key request is not a "
			    "CSR with our challenge");
			r = ERR_INVALID;
			goto out;
		}
		if ((csr_der = malloc(m.u.csr.csr.len)) == NULL) {
			r = ERR_NOMEM;
			goto out;
		}
		memcpy(csr_der, m.u.csr.csr.p, m.u.csr.csr.len);
		csrlen = m.u.csr.csr.len;
	} else {
		unsigned char *q = NULL;
		PKCS8_PRIV_KEY_INFO *p8;
		if ((r = server_keygen(&key, &csr_der, &csrlen, res->mac)) != 0)
			goto out;
		/* PKCS#8 DER: the format the device takes */
		if ((p8 = EVP_PKEY2PKCS8(key)) == NULL) {
			r = ERR_CRYPTO;
			goto out;
		}
		len = i2d_PKCS8_PRIV_KEY_INFO(p8, &q);
		PKCS8_PRIV_KEY_INFO_free(p8);	/* frees (and wipes) its key copy */
		if (len <= 0) {
			r = ERR_CRYPTO;
			goto out;
		}
		pkcs8 = q;
		pkcs8len = (size_t)len;
	}
	res->ms_keygen = ms_since(t);

	/* the CA */
	snprintf(res->step, sizeof(res->step), "ca");
	if (ip->progress != NULL)
		ip->progress(ip->progress_arg, "ca");
	t = now_ns();
	if ((r = ip->issue(ip->issue_arg, res->mac, csr_der, csrlen, &res->cert,
	    &res->certlen, why, whylen)) != 0) {
		(void)pinlink_send_error(p, PROTO_E_REFUSED, "the CA refused the request");
		if (why[0] == '\0')
			msg_set(why, whylen, "the CA refused the request: %s", provd_strerror(r));
		goto out;
	}
	res->ms_ca = ms_since(t);

	/* push: key (server keygen), certificate and chain */
	snprintf(res->step, sizeof(res->step), "push");
	if (ip->progress != NULL)
		ip->progress(ip->progress_arg, "push");
	t = now_ns();
	if (pkcs8 != NULL) {
		memset(&out, 0, sizeof(out));
		out.type = PROTO_KEY_DELIVERY;
		out.u.key_delivery.key.p = pkcs8;
		out.u.key_delivery.key.len = pkcs8len;
		r = pinlink_send(p, &out);
		/* our copy of the device's key goes now */
		OPENSSL_cleanse(pkcs8, pkcs8len);
		OPENSSL_free(pkcs8);
		pkcs8 = NULL;
		EVP_PKEY_free(key);
		key = NULL;
		if (r != 0) {
			msg_set(why, whylen, "the link dropped while delivering the key");
			goto out;
		}
	}
	memset(&out, 0, sizeof(out));
	out.type = PROTO_INSTALL;
	out.u.install.cert.p = res->cert;
	out.u.install.cert.len = res->certlen;
	for (size_t i = 0; i < ip->nchain; i++) {
		out.u.install.chain[i].p = ip->chain[i];
		out.u.install.chain[i].len = ip->chainlen[i];
		out.u.install.nchain++;
	}
	if ((r = pinlink_send(p, &out)) != 0) {
		msg_set(why, whylen, "the link dropped while sending the certificate");
		goto out;
	}
	if ((r = pinlink_recv(p, buf, FRAME_CAP, &m)) != 0) {
		r = recv_failed(p, buf, r, "before acknowledging the certificate", why, whylen);
		goto out;
	}
	if (m.type == PROTO_ERROR) {
		msg_set(why, whylen, "the device could not store its certificate: %s",
		    m.u.error.text);
		r = ERR_IO;
		goto out;
	}
	if (!EVP_Digest(res->cert, res->certlen, fp, NULL, EVP_sha256(), NULL)) {
		r = ERR_CRYPTO;
		goto out;
	}
	if (m.type != PROTO_ACK || CRYPTO_memcmp(m.u.ack.cert_sha256, fp, sizeof(fp)) != 0) {
		(void)pinlink_send_error(p, PROTO_E_BAD_MESSAGE, "expected ACK of our certificate");
		msg_set(why, whylen, "the device acknowledged something other than its "
		    "certificate");
		r = ERR_INVALID;
		goto out;
	}
	res->ms_push = ms_since(t);
	snprintf(res->step, sizeof(res->step), "done");
	r = 0;
out:
	if (r != 0) {
		free(res->cert);
		res->cert = NULL;
		res->certlen = 0;
	}
	if (pkcs8 != NULL) {
		OPENSSL_cleanse(pkcs8, pkcs8len);
		OPENSSL_free(pkcs8);
	}
	EVP_PKEY_free(key);
	free(csr_der);
	OPENSSL_clear_free(buf, FRAME_CAP);
	return r;
}

int
intake_done(struct pinlink *p, const struct intake_result *res)
{
	struct proto_msg m = { .type = PROTO_DONE };

	if (res->cert == NULL ||
	    !EVP_Digest(res->cert, res->certlen, m.u.done.cert_sha256, NULL, EVP_sha256(), NULL))
		return ERR_INVALID;
	return pinlink_send(p, &m);
}
