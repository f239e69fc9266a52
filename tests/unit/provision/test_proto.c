/*
 * test_proto.c: the intake protocol codec — every message type round-trips
 * byte for byte, every class of malformed frame is refused, the encoder
 * refuses what the decoder would, and random mutations never crash it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "provision/provision.h"

#define FRAME_MAX (PROTO_HDR_LEN + PROTO_MAX_PAYLOAD)

/* DER-shaped values: the codec checks only the leading SEQUENCE tag. */
static const uint8_t der_csr[] = { 0x30, 0x06, 0x30, 0x04, 0x02, 0x01, 0x01, 0x00 };
static const uint8_t der_cert[] = { 0x30, 0x05, 0x02, 0x03, 0x01, 0x00, 0x01 };
static const uint8_t der_ca1[] = { 0x30, 0x03, 0x02, 0x01, 0x07 };
static const uint8_t der_ca2[] = { 0x30, 0x00 };
static const uint8_t der_key[] = { 0x30, 0x04, 0x04, 0x02, 0x5e, 0xc7 };
static const uint8_t addr_ok[MAC_LEN] = { 0x00, 0x1a, 0x7d, 0xda, 0x71, 0x13 };

/* Copies a test string into a message's string array. */
static void
setstr(char dst[PROTO_MAX_STR + 1], const char *s)
{
	assert_true(strlen(s) <= PROTO_MAX_STR);
	memcpy(dst, s, strlen(s) + 1);
}

/* A valid message of each type, with every optional field set when full. */
static void
sample(enum proto_type t, int full, struct proto_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = t;
	switch (t) {
	case PROTO_HELLO:
		memcpy(m->u.hello.addr, addr_ok, MAC_LEN);
		setstr(m->u.hello.model, "Headset H-200");
		if (full) {
			setstr(m->u.hello.name, "Desk 4 Zürich");
			setstr(m->u.hello.firmware, "2.1.0-rc3");
		}
		m->u.hello.caps = full ? (PROTO_CAP_KEYGEN | PROTO_CAP_KS_TPM2) : 0;
		break;
	case PROTO_KEYGEN_REQ:
		m->u.keygen_req.key_type = PROTO_KEY_P256;
		for (int i = 0; i < 32; i++)
			m->u.keygen_req.challenge[i] = (uint8_t)(0xc0 + i);
		break;
	case PROTO_CSR:
		m->u.csr.csr.p = der_csr;
		m->u.csr.csr.len = sizeof(der_csr);
		for (int i = 0; i < 32; i++)
			m->u.csr.challenge[i] = (uint8_t)(0xc0 + i);
		break;
	case PROTO_KEY_DELIVERY:
		m->u.key_delivery.key.p = der_key;
		m->u.key_delivery.key.len = sizeof(der_key);
		break;
	case PROTO_INSTALL:
		m->u.install.cert.p = der_cert;
		m->u.install.cert.len = sizeof(der_cert);
		if (full) {
			m->u.install.chain[0].p = der_ca1;
			m->u.install.chain[0].len = sizeof(der_ca1);
			m->u.install.chain[1].p = der_ca2;
			m->u.install.chain[1].len = sizeof(der_ca2);
			m->u.install.nchain = 2;
		}
		break;
	case PROTO_ACK:
		for (int i = 0; i < 32; i++)
			m->u.ack.cert_sha256[i] = (uint8_t)(255 - i);
		break;
	case PROTO_DONE:
		for (int i = 0; i < 32; i++)
			m->u.done.cert_sha256[i] = (uint8_t)(128 + i);
		break;
	case PROTO_ERROR:
		m->u.error.code = PROTO_E_REFUSED;
		if (full)
			setstr(m->u.error.text, "address does not match the label");
		break;
	}
}

static const enum proto_type all_types[] = {
	PROTO_HELLO, PROTO_KEYGEN_REQ, PROTO_CSR, PROTO_KEY_DELIVERY,
	PROTO_INSTALL, PROTO_ACK, PROTO_ERROR, PROTO_DONE,
};
#define NTYPES (sizeof(all_types) / sizeof(all_types[0]))

static int
bytes_eq(const struct proto_bytes *a, const uint8_t *p, size_t len)
{
	return a->len == len && memcmp(a->p, p, len) == 0;
}

/* Whether a decoded pointer lies inside the frame (zero-copy). */
static int
inside(const struct proto_bytes *b, const uint8_t *buf, size_t len)
{
	return b->p >= buf && b->p + b->len <= buf + len;
}

static void
test_round_trip(void **state)
{
	(void)state;
	for (int full = 0; full <= 1; full++)
		for (size_t i = 0; i < NTYPES; i++) {
			struct proto_msg in, out;
			uint8_t buf[512], again[512];
			size_t len, len2;

			sample(all_types[i], full, &in);
			assert_int_equal(proto_encode(&in, buf, sizeof(buf), &len), 0);
			assert_int_equal(proto_decode(buf, len, &out), 0);
			assert_int_equal(out.type, in.type);
			switch (in.type) {
			case PROTO_HELLO:
				assert_memory_equal(out.u.hello.addr, addr_ok, MAC_LEN);
				assert_string_equal(out.u.hello.model, in.u.hello.model);
				assert_string_equal(out.u.hello.name, in.u.hello.name);
				assert_string_equal(out.u.hello.firmware, in.u.hello.firmware);
				assert_int_equal(out.u.hello.caps, in.u.hello.caps);
				break;
			case PROTO_KEYGEN_REQ:
				assert_int_equal(out.u.keygen_req.key_type, PROTO_KEY_P256);
				assert_memory_equal(out.u.keygen_req.challenge,
				    in.u.keygen_req.challenge, 32);
				break;
			case PROTO_CSR:
				assert_true(bytes_eq(&out.u.csr.csr, der_csr, sizeof(der_csr)));
				assert_true(inside(&out.u.csr.csr, buf, len));
				assert_memory_equal(out.u.csr.challenge, in.u.csr.challenge, 32);
				break;
			case PROTO_KEY_DELIVERY:
				assert_true(bytes_eq(&out.u.key_delivery.key, der_key, sizeof(der_key)));
				assert_true(inside(&out.u.key_delivery.key, buf, len));
				break;
			case PROTO_INSTALL:
				assert_true(bytes_eq(&out.u.install.cert, der_cert, sizeof(der_cert)));
				assert_true(inside(&out.u.install.cert, buf, len));
				assert_int_equal(out.u.install.nchain, in.u.install.nchain);
				for (size_t k = 0; k < in.u.install.nchain; k++) {
					assert_true(bytes_eq(&out.u.install.chain[k],
					    in.u.install.chain[k].p, in.u.install.chain[k].len));
					assert_true(inside(&out.u.install.chain[k], buf, len));
				}
				break;
			case PROTO_ACK:
				assert_memory_equal(out.u.ack.cert_sha256, in.u.ack.cert_sha256, 32);
				break;
			case PROTO_DONE:
				assert_memory_equal(out.u.done.cert_sha256, in.u.done.cert_sha256, 32);
				break;
			case PROTO_ERROR:
				assert_int_equal(out.u.error.code, PROTO_E_REFUSED);
				assert_string_equal(out.u.error.text, in.u.error.text);
				break;
			}
			assert_int_equal(proto_encode(&out, again, sizeof(again), &len2), 0);
			assert_int_equal(len2, len);
			assert_memory_equal(again, buf, len);
		}
}

/* The wire format, pinned: the ERROR frame shown in docs/protocol.md. */
static void
test_known_bytes(void **state)
{
	static const uint8_t want[] = {
		0x01, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0d,
		0x00, 0x01, 0x00, 0x02, 0x00, 0x06,
		0x00, 0x02, 0x00, 0x03, 'P', 'I', 'N',
	};
	struct proto_msg m;
	uint8_t buf[64];
	size_t len;
	(void)state;
	memset(&m, 0, sizeof(m));
	m.type = PROTO_ERROR;
	m.u.error.code = PROTO_E_REFUSED;
	setstr(m.u.error.text, "PIN");
	assert_int_equal(proto_encode(&m, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));

	/* the HELLO shown there */
	static const uint8_t hello[] = {
		0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22,
		0x00, 0x01, 0x00, 0x06, 0x00, 0x1a, 0x7d, 0xda, 0x71, 0x13,
		0x00, 0x02, 0x00, 0x0c, 'S', 'c', 'a', 'n', 'n', 'e', 'r', ' ', 'S', '-', '1', '0',
		0x00, 0x05, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00,
	};
	memset(&m, 0, sizeof(m));
	m.type = PROTO_HELLO;
	memcpy(m.u.hello.addr, addr_ok, MAC_LEN);
	setstr(m.u.hello.model, "Scanner S-10");
	assert_int_equal(proto_encode(&m, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(hello));
	assert_memory_equal(buf, hello, sizeof(hello));

	/* optional strings left empty are omitted, not sent empty */
	sample(PROTO_HELLO, 0, &m);
	assert_int_equal(proto_encode(&m, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, PROTO_HDR_LEN + (4 + 6) + (4 + 13) + (4 + 4));
}

/* A frame builder for hand-made (often malformed) frames. */
struct fb {
	uint8_t b[FRAME_MAX + 64];
	size_t n;
};

static void
fb_start(struct fb *f, unsigned version, unsigned type, unsigned flags)
{
	memset(f->b, 0, PROTO_HDR_LEN);
	f->b[0] = (uint8_t)version;
	f->b[1] = (uint8_t)type;
	f->b[2] = (uint8_t)(flags >> 8);
	f->b[3] = (uint8_t)flags;
	f->n = PROTO_HDR_LEN;
}

static void
fb_raw(struct fb *f, const void *p, size_t len)
{
	assert_true(f->n + len <= sizeof(f->b));
	memcpy(f->b + f->n, p, len);
	f->n += len;
}

static void
fb_tlv(struct fb *f, unsigned tag, const void *p, size_t len)
{
	uint8_t h[4] = { (uint8_t)(tag >> 8), (uint8_t)tag, (uint8_t)(len >> 8), (uint8_t)len };
	fb_raw(f, h, 4);
	fb_raw(f, p, len);
}

static void
fb_u32(struct fb *f, unsigned tag, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	fb_tlv(f, tag, b, 4);
}

/* Sets the header's length field to n - 8 + delta. */
static void
fb_fix(struct fb *f, long delta)
{
	uint32_t v = (uint32_t)((long)(f->n - PROTO_HDR_LEN) + delta);
	f->b[4] = (uint8_t)(v >> 24);
	f->b[5] = (uint8_t)(v >> 16);
	f->b[6] = (uint8_t)(v >> 8);
	f->b[7] = (uint8_t)v;
}

/* Decodes f (fixing the length field) from an exact-size heap copy, so that
 * ASan sees any read past the end; returns the decoder's result. */
static int
fb_decode(struct fb *f, struct proto_msg *m)
{
	uint8_t *copy = malloc(f->n ? f->n : 1);
	int r;

	assert_non_null(copy);
	memcpy(copy, f->b, f->n);
	r = proto_decode(copy, f->n, m);
	if (r != 0) {
		/* a refused frame leaves the message zeroed */
		static const struct proto_msg zero;
		assert_memory_equal(m, &zero, sizeof(zero));
	}
	free(copy);
	return r;
}

static int
decode_fixed(struct fb *f)
{
	struct proto_msg m;

	fb_fix(f, 0);
	return fb_decode(f, &m);
}

/* A HELLO builder with the address and model under test. */
static void
hello_with(struct fb *f, const uint8_t *addr, size_t addrlen, const void *model, size_t modellen)
{
	fb_start(f, PROTO_VERSION, PROTO_HELLO, 0);
	fb_tlv(f, 1, addr, addrlen);
	fb_tlv(f, 2, model, modellen);
	fb_u32(f, 5, 0);
}

static void
test_frame_len(void **state)
{
	uint8_t h[PROTO_HDR_LEN] = { 1, PROTO_ACK, 0, 0, 0, 0, 0, 36 };
	size_t n = 99;
	(void)state;
	assert_int_equal(proto_frame_len(h, &n), 0);
	assert_int_equal(n, PROTO_HDR_LEN + 36);

	h[4] = 0, h[5] = 0, h[6] = 0x80, h[7] = 0x00;		/* exactly the limit */
	assert_int_equal(proto_frame_len(h, &n), 0);
	assert_int_equal(n, PROTO_HDR_LEN + PROTO_MAX_PAYLOAD);
	h[7] = 0x01;						/* one over */
	assert_int_equal(proto_frame_len(h, &n), ERR_TOO_BIG);
	assert_int_equal(n, 0);
	h[4] = 0xff, h[7] = 0x00;
	assert_int_equal(proto_frame_len(h, &n), ERR_TOO_BIG);
	h[4] = 0, h[6] = 0;

	h[0] = 0;
	assert_int_equal(proto_frame_len(h, &n), ERR_INVALID);
	h[0] = 2;
	assert_int_equal(proto_frame_len(h, &n), ERR_INVALID);
	h[0] = 1;
	h[3] = 1;
	assert_int_equal(proto_frame_len(h, &n), ERR_INVALID);
	h[3] = 0, h[2] = 0x80;
	assert_int_equal(proto_frame_len(h, &n), ERR_INVALID);
	h[2] = 0;
	assert_int_equal(proto_frame_len(h, NULL), ERR_INVALID);
	assert_int_equal(proto_frame_len(NULL, &n), ERR_INVALID);
}

static void
test_bad_header(void **state)
{
	struct fb f;
	struct proto_msg m;
	uint8_t hash[32] = { 0 };
	(void)state;

	/* the reference frame is valid */
	fb_start(&f, PROTO_VERSION, PROTO_ACK, 0);
	fb_tlv(&f, 1, hash, 32);
	assert_int_equal(decode_fixed(&f), 0);

	f.b[0] = 2;						/* bad version */
	assert_int_equal(fb_decode(&f, &m), ERR_INVALID);
	f.b[0] = 0;
	assert_int_equal(fb_decode(&f, &m), ERR_INVALID);
	f.b[0] = PROTO_VERSION;
	f.b[3] = 1;						/* nonzero flags */
	assert_int_equal(fb_decode(&f, &m), ERR_INVALID);
	f.b[3] = 0, f.b[2] = 0x40;
	assert_int_equal(fb_decode(&f, &m), ERR_INVALID);
	f.b[2] = 0;
	for (unsigned t = 0; t < 256; t++) {			/* unknown types */
		if (t >= PROTO_HELLO && t <= PROTO_DONE)
			continue;
		f.b[1] = (uint8_t)t;
		assert_int_equal(fb_decode(&f, &m), ERR_INVALID);
	}
	f.b[1] = PROTO_ACK;

	/* length field says more, then less, than the bytes given */
	fb_fix(&f, 1);
	assert_int_equal(fb_decode(&f, &m), ERR_INVALID);
	fb_fix(&f, -1);
	assert_int_equal(fb_decode(&f, &m), ERR_INVALID);
	fb_fix(&f, -36);
	assert_int_equal(fb_decode(&f, &m), ERR_INVALID);
	fb_fix(&f, 0);
	assert_int_equal(fb_decode(&f, &m), 0);

	/* trailing garbage beyond the declared frame */
	f.b[f.n++] = 0;
	assert_int_equal(fb_decode(&f, &m), ERR_INVALID);
	f.n--;

	/* every prefix of a valid frame is refused, header included */
	for (size_t n = 0; n < f.n; n++) {
		size_t keep = f.n;
		f.n = n;
		assert_int_equal(fb_decode(&f, &m), ERR_INVALID);
		f.n = keep;
	}
	assert_int_equal(proto_decode(NULL, 8, &m), ERR_INVALID);
	assert_int_equal(proto_decode(f.b, f.n, NULL), ERR_INVALID);

	/* payload over the limit, even when the bytes are all there */
	fb_start(&f, PROTO_VERSION, PROTO_INSTALL, 0);
	memset(f.b + f.n, 0, PROTO_MAX_PAYLOAD + 1);
	f.n += PROTO_MAX_PAYLOAD + 1;
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
}

static void
test_bad_tlv(void **state)
{
	struct fb f;
	struct proto_msg m;
	uint8_t hash[32] = { 0 };
	(void)state;

	/* truncated TLV header: 1, 2 and 3 bytes after a complete TLV */
	for (size_t extra = 1; extra <= 3; extra++) {
		fb_start(&f, PROTO_VERSION, PROTO_ACK, 0);
		fb_tlv(&f, 1, hash, 32);
		fb_raw(&f, "\0\0\0", extra);
		assert_int_equal(decode_fixed(&f), ERR_INVALID);
	}
	/* TLV length past the end of the frame */
	fb_start(&f, PROTO_VERSION, PROTO_ACK, 0);
	fb_raw(&f, "\x00\x01\x00\x21", 4);
	fb_raw(&f, hash, 32);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	fb_start(&f, PROTO_VERSION, PROTO_ACK, 0);
	fb_raw(&f, "\x00\x01\xff\xff", 4);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);

	/* unknown tags, before and after the known one */
	static const unsigned unknown[] = { 0, 2, 0x100, 0xffff };
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		fb_start(&f, PROTO_VERSION, PROTO_ACK, 0);
		if (unknown[i] < 1)
			fb_tlv(&f, unknown[i], "", 0);
		fb_tlv(&f, 1, hash, 32);
		if (unknown[i] > 1)
			fb_tlv(&f, unknown[i], "", 0);
		assert_int_equal(decode_fixed(&f), ERR_INVALID);
	}
	/* a tag known for another type */
	fb_start(&f, PROTO_VERSION, PROTO_KEY_DELIVERY, 0);
	fb_tlv(&f, 1, der_key, sizeof(der_key));
	fb_tlv(&f, 2, hash, 32);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);

	/* duplicate tag */
	fb_start(&f, PROTO_VERSION, PROTO_ACK, 0);
	fb_tlv(&f, 1, hash, 32);
	fb_tlv(&f, 1, hash, 32);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	fb_start(&f, PROTO_VERSION, PROTO_ERROR, 0);
	fb_tlv(&f, 1, "\x00\x02", 2);
	fb_tlv(&f, 2, "a", 1);
	fb_tlv(&f, 2, "b", 1);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);

	/* out of order */
	fb_start(&f, PROTO_VERSION, PROTO_ERROR, 0);
	fb_tlv(&f, 2, "a", 1);
	fb_tlv(&f, 1, "\x00\x02", 2);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	fb_start(&f, PROTO_VERSION, PROTO_INSTALL, 0);
	fb_tlv(&f, 2, der_ca1, sizeof(der_ca1));
	fb_tlv(&f, 1, der_cert, sizeof(der_cert));
	assert_int_equal(decode_fixed(&f), ERR_INVALID);

	/* missing required tags, for every type */
	fb_start(&f, PROTO_VERSION, PROTO_ACK, 0);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	fb_start(&f, PROTO_VERSION, PROTO_ERROR, 0);
	fb_tlv(&f, 2, "text only", 9);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	fb_start(&f, PROTO_VERSION, PROTO_KEYGEN_REQ, 0);
	fb_tlv(&f, 1, "\x01", 1);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	fb_start(&f, PROTO_VERSION, PROTO_CSR, 0);
	fb_tlv(&f, 2, hash, 32);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	fb_start(&f, PROTO_VERSION, PROTO_KEY_DELIVERY, 0);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	fb_start(&f, PROTO_VERSION, PROTO_INSTALL, 0);
	fb_tlv(&f, 2, der_ca1, sizeof(der_ca1));
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	fb_start(&f, PROTO_VERSION, PROTO_HELLO, 0);		/* no caps */
	fb_tlv(&f, 1, addr_ok, MAC_LEN);
	fb_tlv(&f, 2, "m", 1);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	fb_start(&f, PROTO_VERSION, PROTO_HELLO, 0);		/* no model */
	fb_tlv(&f, 1, addr_ok, MAC_LEN);
	fb_u32(&f, 5, 0);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);

	/* chain: PROTO_MAX_CHAIN accepted, one more refused */
	fb_start(&f, PROTO_VERSION, PROTO_INSTALL, 0);
	fb_tlv(&f, 1, der_cert, sizeof(der_cert));
	for (int i = 0; i < PROTO_MAX_CHAIN; i++)
		fb_tlv(&f, 2, der_ca1, sizeof(der_ca1));
	fb_fix(&f, 0);
	assert_int_equal(fb_decode(&f, &m), 0);
	assert_int_equal(m.u.install.nchain, PROTO_MAX_CHAIN);
	fb_tlv(&f, 2, der_ca1, sizeof(der_ca1));
	assert_int_equal(decode_fixed(&f), ERR_INVALID);

	/* trailing garbage inside the declared payload */
	fb_start(&f, PROTO_VERSION, PROTO_ACK, 0);
	fb_tlv(&f, 1, hash, 32);
	fb_raw(&f, "\xde\xad\xbe\xef\x00", 5);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
}

static void
test_bad_strings(void **state)
{
	static const struct {
		const char *s;
		size_t len;
		int ok;
	} cases[] = {
		{ "m", 1, 1 },
		{ "Zürich", 7, 1 },
		{ "\xe2\x82\xac 5", 5, 1 },			/* euro sign */
		{ "\xf0\x9f\x8e\xa7", 4, 1 },			/* U+1F3A7 */
		{ "\xc2\xa0", 2, 1 },				/* U+00A0, first after C1 */
		{ "\xef\xbf\xbd", 3, 1 },			/* U+FFFD */
		{ "\xf4\x8f\xbf\xbf", 4, 1 },			/* U+10FFFF */
		{ "", 0, 0 },					/* present but empty */
		{ "a\0b", 3, 0 },				/* NUL */
		{ "\x01", 1, 0 }, { "a\nb", 3, 0 }, { "tab\t", 4, 0 },
		{ "\x1f", 1, 0 }, { "\x7f", 1, 0 }, { "esc\x1b[0m", 7, 0 },
		{ "\xc2\x85", 2, 0 }, { "\xc2\x9f", 2, 0 },	/* C1 controls */
		{ "\xc0\x80", 2, 0 }, { "\xc1\xbf", 2, 0 },	/* overlong */
		{ "\xe0\x80\xaf", 3, 0 }, { "\xf0\x80\x80\xaf", 4, 0 },
		{ "\xed\xa0\x80", 3, 0 },			/* surrogate */
		{ "\xf4\x90\x80\x80", 4, 0 }, { "\xf5\x80\x80\x80", 4, 0 },
		{ "\xff", 1, 0 }, { "\x80", 1, 0 },		/* bad lead bytes */
		{ "\xc3", 1, 0 }, { "ab\xe2\x82", 4, 0 },	/* truncated */
		{ "\xc3\x28", 2, 0 }, { "\xe2\x28\xa1", 3, 0 },	/* bad continuation */
	};
	struct fb f;
	struct proto_msg m;
	char longs[PROTO_MAX_STR + 1];
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hello_with(&f, addr_ok, MAC_LEN, cases[i].s, cases[i].len);
		fb_fix(&f, 0);
		if (cases[i].ok) {
			assert_int_equal(fb_decode(&f, &m), 0);
			assert_int_equal(strlen(m.u.hello.model), cases[i].len);
			assert_memory_equal(m.u.hello.model, cases[i].s, cases[i].len);
		} else {
			assert_int_equal(fb_decode(&f, &m), ERR_INVALID);
		}
		/* the same rules for an optional string: name, firmware, text */
		fb_start(&f, PROTO_VERSION, PROTO_ERROR, 0);
		fb_tlv(&f, 1, "\x00\x01", 2);
		fb_tlv(&f, 2, cases[i].s, cases[i].len);
		assert_int_equal(decode_fixed(&f), cases[i].ok ? 0 : ERR_INVALID);
	}

	/* PROTO_MAX_STR bytes accepted, one more refused */
	memset(longs, 'x', sizeof(longs));
	hello_with(&f, addr_ok, MAC_LEN, longs, PROTO_MAX_STR);
	fb_fix(&f, 0);
	assert_int_equal(fb_decode(&f, &m), 0);
	assert_int_equal(strlen(m.u.hello.model), PROTO_MAX_STR);
	hello_with(&f, addr_ok, MAC_LEN, longs, PROTO_MAX_STR + 1);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	fb_start(&f, PROTO_VERSION, PROTO_HELLO, 0);
	fb_tlv(&f, 1, addr_ok, MAC_LEN);
	fb_tlv(&f, 2, "m", 1);
	fb_tlv(&f, 3, longs, PROTO_MAX_STR + 1);
	fb_u32(&f, 5, 0);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	/* a multi-byte character may not straddle the limit */
	memcpy(longs + PROTO_MAX_STR - 1, "\xc3\xa4", 2);
	hello_with(&f, addr_ok, MAC_LEN, longs, PROTO_MAX_STR + 1);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
}

static void
test_bad_values(void **state)
{
	static const uint8_t bad_addr[][MAC_LEN] = {
		{ 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 },		/* multicast */
		{ 0x33, 0x33, 0x00, 0x00, 0x00, 0x01 },
		{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },		/* broadcast */
		{ 0, 0, 0, 0, 0, 0 },				/* zero */
	};
	static const uint8_t local_addr[MAC_LEN] = { 0x02, 0, 0, 0, 0, 0x01 };
	uint8_t big[PROTO_MAX_DER + 1], hash[33] = { 0 };
	struct fb f;
	struct proto_msg m;
	(void)state;

	for (size_t i = 0; i < sizeof(bad_addr) / sizeof(bad_addr[0]); i++) {
		hello_with(&f, bad_addr[i], MAC_LEN, "m", 1);
		assert_int_equal(decode_fixed(&f), ERR_INVALID);
	}
	hello_with(&f, addr_ok, MAC_LEN - 1, "m", 1);		/* wrong length */
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	hello_with(&f, (const uint8_t *)"\x00\x1a\x7d\xda\x71\x13\x00", MAC_LEN + 1, "m", 1);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	hello_with(&f, local_addr, MAC_LEN, "m", 1);		/* locally administered */
	assert_int_equal(decode_fixed(&f), 0);

	/* caps: 4 bytes; unknown bits are kept (and ignored by callers) */
	hello_with(&f, addr_ok, MAC_LEN, "m", 1);
	f.n -= 8;
	fb_u32(&f, 5, 0xfffffff8u | PROTO_CAP_KEYGEN);
	fb_fix(&f, 0);
	assert_int_equal(fb_decode(&f, &m), 0);
	assert_int_equal(m.u.hello.caps, 0xfffffff9u);
	f.n -= 8;
	fb_tlv(&f, 5, "\x00\x00\x01", 3);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);

	/* key type: only P-256, one byte */
	static const char *keytypes[] = { "\x00", "\x02", "\xff" };
	for (size_t i = 0; i < 3; i++) {
		fb_start(&f, PROTO_VERSION, PROTO_KEYGEN_REQ, 0);
		fb_tlv(&f, 1, keytypes[i], 1);
		fb_tlv(&f, 2, hash, 32);
		assert_int_equal(decode_fixed(&f), ERR_INVALID);
	}
	fb_start(&f, PROTO_VERSION, PROTO_KEYGEN_REQ, 0);
	fb_tlv(&f, 1, "\x00\x01", 2);
	fb_tlv(&f, 2, hash, 32);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);

	/* 32-byte values: 31 and 33 refused */
	for (size_t n = 31; n <= 33; n += 2) {
		fb_start(&f, PROTO_VERSION, PROTO_ACK, 0);
		fb_tlv(&f, 1, hash, n);
		assert_int_equal(decode_fixed(&f), ERR_INVALID);
		fb_start(&f, PROTO_VERSION, PROTO_CSR, 0);
		fb_tlv(&f, 1, der_csr, sizeof(der_csr));
		fb_tlv(&f, 2, hash, n);
		assert_int_equal(decode_fixed(&f), ERR_INVALID);
	}

	/* DER: must start with 0x30, 2..PROTO_MAX_DER bytes */
	fb_start(&f, PROTO_VERSION, PROTO_CSR, 0);
	fb_tlv(&f, 1, "\x31\x00", 2);
	fb_tlv(&f, 2, hash, 32);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	fb_start(&f, PROTO_VERSION, PROTO_KEY_DELIVERY, 0);
	fb_tlv(&f, 1, "\x30", 1);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	fb_start(&f, PROTO_VERSION, PROTO_KEY_DELIVERY, 0);
	fb_tlv(&f, 1, "", 0);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	fb_start(&f, PROTO_VERSION, PROTO_INSTALL, 0);
	fb_tlv(&f, 1, der_cert, sizeof(der_cert));
	fb_tlv(&f, 2, "\x02\x01\x00", 3);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
	memset(big, 0, sizeof(big));
	big[0] = 0x30;
	fb_start(&f, PROTO_VERSION, PROTO_INSTALL, 0);
	fb_tlv(&f, 1, big, PROTO_MAX_DER);
	assert_int_equal(decode_fixed(&f), 0);
	fb_start(&f, PROTO_VERSION, PROTO_INSTALL, 0);
	fb_tlv(&f, 1, big, PROTO_MAX_DER + 1);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);

	/* error codes: within the enum, two bytes */
	static const char *codes[] = { "\x00\x00", "\x00\x08", "\x01\x01", "\xff\xff" };
	for (size_t i = 0; i < 4; i++) {
		fb_start(&f, PROTO_VERSION, PROTO_ERROR, 0);
		fb_tlv(&f, 1, codes[i], 2);
		assert_int_equal(decode_fixed(&f), ERR_INVALID);
	}
	for (unsigned c = PROTO_E_INTERNAL; c <= PROTO_E_LOCKED; c++) {
		uint8_t v[2] = { 0, (uint8_t)c };
		fb_start(&f, PROTO_VERSION, PROTO_ERROR, 0);
		fb_tlv(&f, 1, v, 2);
		fb_fix(&f, 0);
		assert_int_equal(fb_decode(&f, &m), 0);
		assert_int_equal(m.u.error.code, c);
		assert_string_equal(m.u.error.text, "");
	}
	fb_start(&f, PROTO_VERSION, PROTO_ERROR, 0);
	fb_tlv(&f, 1, "\x07", 1);
	assert_int_equal(decode_fixed(&f), ERR_INVALID);
}

/* Encodes m into a buffer filled with 0xa5 and checks that a refusal wrote
 * nothing and set *len to 0. */
static int
encode_checked(const struct proto_msg *m, size_t cap)
{
	uint8_t buf[1024];
	size_t len = 77;
	int r;

	assert_true(cap <= sizeof(buf));
	memset(buf, 0xa5, sizeof(buf));
	r = proto_encode(m, buf, cap, &len);
	if (r != 0) {
		assert_int_equal(len, 0);
		for (size_t i = 0; i < sizeof(buf); i++)
			assert_int_equal(buf[i], 0xa5);
	}
	return r;
}

static void
test_encode_refuses(void **state)
{
	struct proto_msg m;
	uint8_t notder[] = { 0x31, 0x00 };
	(void)state;

	sample(PROTO_HELLO, 1, &m);
	m.type = (enum proto_type)0;
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);
	m.type = (enum proto_type)9;
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);

	sample(PROTO_HELLO, 1, &m);
	m.u.hello.addr[0] = 0x01;				/* multicast */
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);
	memset(m.u.hello.addr, 0, MAC_LEN);			/* zero */
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);
	sample(PROTO_HELLO, 1, &m);
	m.u.hello.model[0] = '\0';				/* required, empty */
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);
	sample(PROTO_HELLO, 1, &m);
	memset(m.u.hello.name, 'n', sizeof(m.u.hello.name));	/* no NUL */
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);
	m.u.hello.name[PROTO_MAX_STR] = '\0';			/* exactly the limit */
	assert_int_equal(encode_checked(&m, 1024), 0);
	sample(PROTO_HELLO, 1, &m);
	m.u.hello.firmware[1] = '\n';
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);
	sample(PROTO_HELLO, 1, &m);
	setstr(m.u.hello.name, "\xc0\xae");			/* overlong '.' */
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);

	sample(PROTO_KEYGEN_REQ, 1, &m);
	m.u.keygen_req.key_type = (enum proto_key_type)2;
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);
	m.u.keygen_req.key_type = (enum proto_key_type)257;	/* low byte is 1 */
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);

	sample(PROTO_CSR, 1, &m);
	m.u.csr.csr.p = NULL;
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);
	m.u.csr.csr.len = 0;
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);
	m.u.csr.csr.p = notder;
	m.u.csr.csr.len = sizeof(notder);
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);

	sample(PROTO_KEY_DELIVERY, 1, &m);
	m.u.key_delivery.key.len = PROTO_MAX_DER + 1;		/* bound checked first */
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);

	sample(PROTO_INSTALL, 1, &m);
	m.u.install.nchain = PROTO_MAX_CHAIN + 1;
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);
	m.u.install.nchain = (size_t)-1;
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);
	sample(PROTO_INSTALL, 1, &m);
	m.u.install.nchain = 3;					/* chain[2] unset */
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);
	sample(PROTO_INSTALL, 1, &m);
	m.u.install.cert.len = 1;
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);

	sample(PROTO_ERROR, 1, &m);
	m.u.error.code = (enum proto_errcode)0;
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);
	m.u.error.code = (enum proto_errcode)8;
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);
	m.u.error.code = (enum proto_errcode)(0x10000 + PROTO_E_REFUSED);
	assert_int_equal(encode_checked(&m, 1024), ERR_INVALID);

	/* bad arguments */
	sample(PROTO_ACK, 1, &m);
	assert_int_equal(proto_encode(&m, NULL, 0, NULL), ERR_INVALID);
	assert_int_equal(proto_encode(NULL, (uint8_t[8]){ 0 }, 8, &(size_t){ 0 }), ERR_INVALID);
	assert_int_equal(proto_encode(&m, NULL, 64, &(size_t){ 0 }), ERR_INVALID);
	assert_int_equal(proto_encode(&m, NULL, 0, &(size_t){ 0 }), ERR_TOO_BIG);
}

static void
test_encode_capacity(void **state)
{
	(void)state;
	for (size_t i = 0; i < NTYPES; i++) {
		struct proto_msg m;
		uint8_t buf[512];
		size_t need;

		sample(all_types[i], 1, &m);
		assert_int_equal(proto_encode(&m, buf, sizeof(buf), &need), 0);
		for (size_t cap = 0; cap < need; cap++)
			assert_int_equal(encode_checked(&m, cap), ERR_TOO_BIG);
		assert_int_equal(encode_checked(&m, need), 0);
	}

	/* the largest message fits one frame */
	static uint8_t big[PROTO_MAX_DER], frame[FRAME_MAX];
	struct proto_msg m, out;
	size_t len;
	memset(big, 0x5a, sizeof(big));
	big[0] = 0x30;
	memset(&m, 0, sizeof(m));
	m.type = PROTO_INSTALL;
	m.u.install.cert.p = big;
	m.u.install.cert.len = sizeof(big);
	for (size_t k = 0; k < PROTO_MAX_CHAIN; k++)
		m.u.install.chain[k] = m.u.install.cert;
	m.u.install.nchain = PROTO_MAX_CHAIN;
	assert_int_equal(proto_encode(&m, frame, sizeof(frame), &len), 0);
	assert_int_equal(len, PROTO_HDR_LEN + (1 + PROTO_MAX_CHAIN) * (4 + PROTO_MAX_DER));
	assert_int_equal(proto_decode(frame, len, &out), 0);
	assert_int_equal(out.u.install.nchain, PROTO_MAX_CHAIN);
}

static void
test_type_names(void **state)
{
	(void)state;
	assert_string_equal(proto_type_name(PROTO_HELLO), "HELLO");
	assert_string_equal(proto_type_name(PROTO_KEYGEN_REQ), "KEYGEN_REQ");
	assert_string_equal(proto_type_name(PROTO_CSR), "CSR");
	assert_string_equal(proto_type_name(PROTO_KEY_DELIVERY), "KEY_DELIVERY");
	assert_string_equal(proto_type_name(PROTO_INSTALL), "INSTALL");
	assert_string_equal(proto_type_name(PROTO_ACK), "ACK");
	assert_string_equal(proto_type_name(PROTO_ERROR), "ERROR");
	assert_string_equal(proto_type_name((enum proto_type)0), "unknown");
	assert_string_equal(proto_type_name((enum proto_type)99), "unknown");
}

/* xorshift64*: a fixed-seed generator, so a failure replays. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

/*
 * Property: a mutated valid frame never crashes the decoder and is either
 * refused or decodes to a message that re-encodes to exactly the same bytes.
 */
static void
test_mutations(void **state)
{
	static uint8_t seeds[2 * NTYPES][512];
	size_t seedlen[2 * NTYPES], accepted = 0, refused = 0;
	(void)state;

	for (size_t i = 0; i < 2 * NTYPES; i++) {
		struct proto_msg m;
		sample(all_types[i % NTYPES], (int)(i / NTYPES), &m);
		assert_int_equal(proto_encode(&m, seeds[i], sizeof(seeds[i]), &seedlen[i]), 0);
	}
	for (int iter = 0; iter < 200000; iter++) {
		uint8_t work[600], *copy, *again;
		size_t s = rng() % (2 * NTYPES), n = seedlen[s], len;
		int nmut = 1 + (int)(rng() % 4);
		struct proto_msg m;

		memcpy(work, seeds[s], n);
		for (int k = 0; k < nmut; k++) {
			size_t at = n ? rng() % n : 0;
			switch (rng() % 7) {
			case 0:		/* flip a bit */
				if (n)
					work[at] ^= (uint8_t)(1u << (rng() % 8));
				break;
			case 1:		/* set a byte */
				if (n)
					work[at] = (uint8_t)rng();
				break;
			case 2:		/* truncate */
				n = at;
				break;
			case 3:		/* insert a byte */
				if (n < sizeof(work)) {
					memmove(work + at + 1, work + at, n - at);
					work[at] = (uint8_t)rng();
					n++;
				}
				break;
			case 4:		/* delete a byte */
				if (n) {
					memmove(work + at, work + at + 1, n - at - 1);
					n--;
				}
				break;
			case 5:		/* duplicate a slice of the payload at the end */
				if (n > PROTO_HDR_LEN) {
					size_t from = PROTO_HDR_LEN + rng() % (n - PROTO_HDR_LEN);
					size_t cnt = 1 + rng() % (n - from);
					if (n + cnt <= sizeof(work)) {
						memmove(work + n, work + from, cnt);
						n += cnt;
					}
				}
				break;
			case 6:		/* small change to a TLV length or tag byte */
				if (n > PROTO_HDR_LEN + 3) {
					size_t p = PROTO_HDR_LEN + rng() % (n - PROTO_HDR_LEN);
					work[p] = (uint8_t)(work[p] + (rng() % 2 ? 1 : -1));
				}
				break;
			}
		}
		/* usually make the header's length agree, to reach the TLVs */
		if (n >= PROTO_HDR_LEN && rng() % 4 != 0) {
			uint32_t pl = (uint32_t)(n - PROTO_HDR_LEN);
			work[4] = (uint8_t)(pl >> 24);
			work[5] = (uint8_t)(pl >> 16);
			work[6] = (uint8_t)(pl >> 8);
			work[7] = (uint8_t)pl;
		}
		/* exact-size heap copies, so ASan catches any read past the end */
		copy = malloc(n ? n : 1);
		again = malloc(n ? n : 1);
		assert_non_null(copy);
		assert_non_null(again);
		memcpy(copy, work, n);
		if (proto_decode(copy, n, &m) == 0) {
			assert_int_equal(proto_encode(&m, again, n, &len), 0);
			assert_int_equal(len, n);
			assert_memory_equal(again, copy, n);
			accepted++;
		} else {
			refused++;
		}
		free(copy);
		free(again);
	}
	print_message("mutations: %zu accepted, %zu refused\n", accepted, refused);
	/* both sides of the property were exercised */
	assert_true(accepted > 1000);
	assert_true(refused > 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_known_bytes),
		cmocka_unit_test(test_frame_len),
		cmocka_unit_test(test_bad_header),
		cmocka_unit_test(test_bad_tlv),
		cmocka_unit_test(test_bad_strings),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_encode_capacity),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_mutations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
