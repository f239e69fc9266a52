/*
 * ca_msg.c: payloads of the signer protocol (layout in ca_int.h) — encoded by
 * the parent, decoded with every length checked by the signer, which treats
 * any inconsistency as fatal.
 */
#include <stdlib.h>
#include <string.h>

#include "ca/ca_int.h"

/* A bounded reader over a payload. */
struct rd {
	const uint8_t *p;
	size_t left;
};

static int
rd_bytes(struct rd *rd, void *out, size_t n)
{
	if (rd->left < n)
		return ERR_INVALID;
	memcpy(out, rd->p, n);
	rd->p += n;
	rd->left -= n;
	return 0;
}

static int
rd_ptr(struct rd *rd, const uint8_t **out, size_t n)
{
	if (rd->left < n)
		return ERR_INVALID;
	*out = rd->p;
	rd->p += n;
	rd->left -= n;
	return 0;
}

static uint8_t *
wr(uint8_t *p, const void *v, size_t n)
{
	if (n > 0)
		memcpy(p, v, n);
	return p + n;
}

int
ca_msg_issue_encode(const struct ca_issue_req *req, uint8_t **out, size_t *outlen)
{
	uint8_t *buf, *p;
	size_t len;
	uint32_t n;

	*out = NULL;
	*outlen = 0;
	if ((req->spki == NULL && req->spkilen > 0) ||
	    (req->optdata == NULL) != (req->optdatalen == 0))
		return ERR_INVALID;
	if (req->spkilen > CA_MAX_SPKI || req->optdatalen > CA_MAX_OPTDATA)
		return ERR_TOO_BIG;
	len = SIGNER_ISSUE_FIXED + req->spkilen + req->optdatalen;
	if (len > SIGNER_MAX_ISSUE)
		return ERR_TOO_BIG;
	if ((buf = malloc(len)) == NULL)
		return ERR_NOMEM;
	p = wr(buf, req->mac, MAC_LEN);
	p = wr(p, req->serial, CA_SERIAL_LEN);
	p = wr(p, &req->not_before, 8);
	p = wr(p, &req->not_after, 8);
	n = (uint32_t)req->spkilen;
	p = wr(p, &n, 4);
	p = wr(p, req->spki, req->spkilen);
	n = (uint32_t)req->optdatalen;
	p = wr(p, &n, 4);
	wr(p, req->optdata, req->optdatalen);
	*out = buf;
	*outlen = len;
	return 0;
}

int
ca_msg_issue_decode(const uint8_t *p, size_t len, struct ca_issue_req *req)
{
	struct rd rd = { p, len };
	uint32_t n;

	memset(req, 0, sizeof(*req));
	if (len < SIGNER_ISSUE_FIXED || len > SIGNER_MAX_ISSUE)
		return ERR_INVALID;
	if (rd_bytes(&rd, req->mac, MAC_LEN) != 0 ||
	    rd_bytes(&rd, req->serial, CA_SERIAL_LEN) != 0 ||
	    rd_bytes(&rd, &req->not_before, 8) != 0 ||
	    rd_bytes(&rd, &req->not_after, 8) != 0 ||
	    rd_bytes(&rd, &n, 4) != 0 || n > CA_MAX_SPKI ||
	    rd_ptr(&rd, &req->spki, n) != 0)
		goto bad;
	req->spkilen = n;
	if (rd_bytes(&rd, &n, 4) != 0 || n > CA_MAX_OPTDATA ||
	    rd_ptr(&rd, &req->optdata, n) != 0 || rd.left != 0)
		goto bad;
	req->optdatalen = n;
	if (n == 0)
		req->optdata = NULL;
	return 0;
bad:
	memset(req, 0, sizeof(*req));
	return ERR_INVALID;
}

int
ca_msg_crl_encode(const struct ca_crl_req *req, uint8_t **out, size_t *outlen)
{
	uint8_t *buf, *p;
	size_t len;
	uint32_t n;

	*out = NULL;
	*outlen = 0;
	if (req->nrevoked > 0 && req->revoked == NULL)
		return ERR_INVALID;
	if (req->nrevoked > CA_MAX_CRL_ENTRIES)
		return ERR_TOO_BIG;
	len = SIGNER_CRL_FIXED + req->nrevoked * SIGNER_CRL_ENTRY;
	if ((buf = malloc(len)) == NULL)
		return ERR_NOMEM;
	p = wr(buf, &req->crl_number, 8);
	p = wr(p, &req->this_update, 8);
	p = wr(p, &req->next_update, 8);
	n = (uint32_t)req->nrevoked;
	p = wr(p, &n, 4);
	p = wr(p, &req->delta_base, 8);
	for (size_t i = 0; i < req->nrevoked; i++) {
		const struct ca_revoked *e = &req->revoked[i];
		int32_t reason = (int32_t)e->reason;
		p = wr(p, e->serial, CA_SERIAL_LEN);
		p = wr(p, &e->revoked_at, 8);
		p = wr(p, &reason, 4);
	}
	*out = buf;
	*outlen = len;
	return 0;
}

int
ca_msg_crl_decode(const uint8_t *p, size_t len, struct ca_crl_req *req,
    struct ca_revoked **entries)
{
	struct rd rd = { p, len };
	struct ca_revoked *v = NULL;
	uint32_t n;

	memset(req, 0, sizeof(*req));
	*entries = NULL;
	if (len < SIGNER_CRL_FIXED || len > SIGNER_MAX_CRL)
		return ERR_INVALID;
	if (rd_bytes(&rd, &req->crl_number, 8) != 0 ||
	    rd_bytes(&rd, &req->this_update, 8) != 0 ||
	    rd_bytes(&rd, &req->next_update, 8) != 0 ||
	    rd_bytes(&rd, &n, 4) != 0 || n > CA_MAX_CRL_ENTRIES ||
	    rd_bytes(&rd, &req->delta_base, 8) != 0 ||
	    rd.left != (size_t)n * SIGNER_CRL_ENTRY)
		goto bad;
	if (n > 0 && (v = calloc(n, sizeof(*v))) == NULL) {
		memset(req, 0, sizeof(*req));
		return ERR_NOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		int32_t reason;
		if (rd_bytes(&rd, v[i].serial, CA_SERIAL_LEN) != 0 ||
		    rd_bytes(&rd, &v[i].revoked_at, 8) != 0 ||
		    rd_bytes(&rd, &reason, 4) != 0)
			goto bad;
		v[i].reason = reason;
	}
	req->revoked = v;
	req->nrevoked = n;
	*entries = v;
	return 0;
bad:
	free(v);
	memset(req, 0, sizeof(*req));
	return ERR_INVALID;
}
