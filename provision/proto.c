/*
 * proto.c: the intake protocol codec (docs/protocol.md) — frames and TLVs
 * checked against one table of tags per message type, used alike by the
 * decoder and the encoder, so that provd never emits what it would refuse.
 *
 * Byte strings decode as pointers into the caller's buffer. A KEY_DELIVERY
 * frame holds a private key: the codec never logs values, and callers must
 * OPENSSL_cleanse the frame buffer (encoded or received) once done with it.
 */
#include <string.h>

#include "provision/provision.h"

/* What a tag's value must be. */
enum kind {
	K_ADDR,		/* 6 bytes, unicast, not all zero */
	K_STR,		/* 1..PROTO_MAX_STR bytes of UTF-8 without controls */
	K_KEYTYPE,	/* u8, a known enum proto_key_type */
	K_ERRCODE,	/* u16 BE, a known enum proto_errcode */
	K_U32,		/* u32 BE, any value */
	K_HASH,		/* exactly 32 bytes */
	K_DER,		/* 2..PROTO_MAX_DER bytes starting with a SEQUENCE (0x30) */
};

struct tag_rule {
	uint16_t tag;
	enum kind kind;
	unsigned min;		/* occurrences: 0 optional, 1 required */
	unsigned max;		/* 1, or more for a repeatable tag */
};

struct type_rule {
	enum proto_type type;
	const char *name;
	const struct tag_rule *tags;	/* ascending tag order */
	size_t ntags;
};

#define HASH_LEN 32
#define MAX_RULES 5		/* tags of the richest type */
#define MAX_ITEMS 8		/* TLVs of the largest message (INSTALL: 1 + 4) */

static const struct tag_rule hello_tags[] = {
	{ 1, K_ADDR, 1, 1 }, { 2, K_STR, 1, 1 }, { 3, K_STR, 0, 1 },
	{ 4, K_STR, 0, 1 }, { 5, K_U32, 1, 1 },
};
static const struct tag_rule keygen_req_tags[] = {
	{ 1, K_KEYTYPE, 1, 1 }, { 2, K_HASH, 1, 1 },
};
static const struct tag_rule csr_tags[] = {
	{ 1, K_DER, 1, 1 }, { 2, K_HASH, 1, 1 },
};
static const struct tag_rule key_delivery_tags[] = {
	{ 1, K_DER, 1, 1 },
};
static const struct tag_rule install_tags[] = {
	{ 1, K_DER, 1, 1 }, { 2, K_DER, 0, PROTO_MAX_CHAIN },
};
static const struct tag_rule ack_tags[] = {
	{ 1, K_HASH, 1, 1 },
};
static const struct tag_rule done_tags[] = {
	{ 1, K_HASH, 1, 1 },
};
static const struct tag_rule error_tags[] = {
	{ 1, K_ERRCODE, 1, 1 }, { 2, K_STR, 0, 1 },
};

#define RULE(t, n, a) { t, n, a, sizeof(a) / sizeof(a[0]) }
static const struct type_rule type_rules[] = {
	RULE(PROTO_HELLO, "HELLO", hello_tags),
	RULE(PROTO_KEYGEN_REQ, "KEYGEN_REQ", keygen_req_tags),
	RULE(PROTO_CSR, "CSR", csr_tags),
	RULE(PROTO_KEY_DELIVERY, "KEY_DELIVERY", key_delivery_tags),
	RULE(PROTO_INSTALL, "INSTALL", install_tags),
	RULE(PROTO_ACK, "ACK", ack_tags),
	RULE(PROTO_ERROR, "ERROR", error_tags),
	RULE(PROTO_DONE, "DONE", done_tags),
};
#undef RULE

#define NRULES(a) (sizeof(a) / sizeof(a[0]))
_Static_assert(NRULES(hello_tags) <= MAX_RULES && NRULES(install_tags) <= MAX_RULES,
    "MAX_RULES too small");
_Static_assert(1 + PROTO_MAX_CHAIN <= MAX_ITEMS && NRULES(hello_tags) <= MAX_ITEMS,
    "MAX_ITEMS too small");
#undef NRULES

/* The largest valid message must fit one frame: INSTALL with a full chain. */
_Static_assert((1 + PROTO_MAX_CHAIN) * (4 + PROTO_MAX_DER) <= PROTO_MAX_PAYLOAD,
    "a full INSTALL must fit PROTO_MAX_PAYLOAD");
_Static_assert(PROTO_MAX_DER <= 0xffff && PROTO_MAX_STR <= 0xffff,
    "values must fit a 16-bit TLV length");
_Static_assert(PROTO_MAX_PAYLOAD <= 0xffffffffu, "payload length is 32 bits");

/* The TLVs of one message, checked one by one as they are added. */
struct items {
	const struct type_rule *tr;
	struct {
		uint16_t tag;
		const uint8_t *p;
		size_t len;
	} v[MAX_ITEMS];
	size_t n;
	unsigned count[MAX_RULES];
	unsigned last;		/* last tag accepted, 0 before the first */
};

static const struct type_rule *
type_rule_find(unsigned type)
{
	for (size_t i = 0; i < sizeof(type_rules) / sizeof(type_rules[0]); i++)
		if ((unsigned)type_rules[i].type == type)
			return &type_rules[i];
	return NULL;
}

const char *
proto_type_name(enum proto_type t)
{
	const struct type_rule *tr = type_rule_find((unsigned)t);

	return tr != NULL ? tr->name : "unknown";
}

static uint16_t
get_be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint8_t *
put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

/*
 * Well-formed UTF-8 (RFC 3629: shortest form, no surrogates, at most
 * U+10FFFF) without control characters: no C0 (which includes NUL), no DEL,
 * no C1 (U+0080..U+009F). Stricter than optdata_check_name, which admits
 * overlong and surrogate sequences.
 */
static int
str_ok(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		uint8_t c = s[i], lo = 0x80, hi = 0xbf;
		size_t n;

		if (c < 0x20 || c == 0x7f)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 2;
			if (c == 0xc2)
				lo = 0xa0;	/* U+0080..U+009F are C1 controls */
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 3;
			if (c == 0xe0)
				lo = 0xa0;	/* overlong */
			else if (c == 0xed)
				hi = 0x9f;	/* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 4;
			if (c == 0xf0)
				lo = 0x90;	/* overlong */
			else if (c == 0xf4)
				hi = 0x8f;	/* above U+10FFFF */
		} else {
			return 0;
		}
		if (len - i < n)
			return 0;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t k = 2; k < n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
		i += n;
	}
	return 1;
}

/* Whether a value of the given kind is acceptable; the reason if not. */
static const char *
value_problem(enum kind k, const uint8_t *p, size_t len)
{
	switch (k) {
	case K_ADDR:
		if (len != MAC_LEN)
			return "address is not 6 bytes";
		if (p[0] & 0x01)
			return "address is multicast";
		for (size_t i = 0; i < MAC_LEN; i++)
			if (p[i] != 0)
				return NULL;
		return "address is zero";
	case K_STR:
		if (len == 0)
			return "empty string";
		if (len > PROTO_MAX_STR)
			return "string too long";
		return str_ok(p, len) ? NULL : "string not printable UTF-8";
	case K_KEYTYPE:
		if (len != 1)
			return "key type is not 1 byte";
		return p[0] == PROTO_KEY_P256 ? NULL : "unknown key type";
	case K_ERRCODE:
		if (len != 2)
			return "error code is not 2 bytes";
		if (get_be16(p) < PROTO_E_INTERNAL || get_be16(p) > PROTO_E_LOCKED)
			return "unknown error code";
		return NULL;
	case K_U32:
		return len == 4 ? NULL : "integer is not 4 bytes";
	case K_HASH:
		return len == HASH_LEN ? NULL : "value is not 32 bytes";
	case K_DER:
		if (len < 2)
			return "DER too short";
		if (len > PROTO_MAX_DER)
			return "DER too long";
		return p[0] == 0x30 ? NULL : "DER is not a SEQUENCE";
	}
	return "unknown kind";
}

/*
 * Adds one TLV after checking it: a tag of this type, tags in ascending
 * order, a repeated tag only where repeatable and within its count, a value
 * within its bounds. Returns 0 or ERR_INVALID.
 */
static int
items_add(struct items *it, unsigned tag, const uint8_t *p, size_t len)
{
	const struct tag_rule *rule = NULL;
	const char *why;
	size_t ri;

	for (ri = 0; ri < it->tr->ntags; ri++)
		if (it->tr->tags[ri].tag == tag) {
			rule = &it->tr->tags[ri];
			break;
		}
	if (rule == NULL) {
		log_debug("%s: tag %u: unknown tag", it->tr->name, tag);
		return ERR_INVALID;
	}
	if (tag < it->last) {
		log_debug("%s: tag %u: out of order", it->tr->name, tag);
		return ERR_INVALID;
	}
	if (it->count[ri] >= rule->max || it->n >= MAX_ITEMS) {
		log_debug("%s: tag %u: %s", it->tr->name, tag,
		    rule->max == 1 ? "duplicate" : "too many");
		return ERR_INVALID;
	}
	if ((why = value_problem(rule->kind, p, len)) != NULL) {
		log_debug("%s: tag %u: %s", it->tr->name, tag, why);
		return ERR_INVALID;
	}
	it->v[it->n].tag = (uint16_t)tag;
	it->v[it->n].p = p;
	it->v[it->n].len = len;
	it->n++;
	it->count[ri]++;
	it->last = tag;
	return 0;
}

/* Checks that every required tag came. Returns 0 or ERR_INVALID. */
static int
items_complete(const struct items *it)
{
	for (size_t ri = 0; ri < it->tr->ntags; ri++)
		if (it->count[ri] < it->tr->tags[ri].min) {
			log_debug("%s: tag %u: missing", it->tr->name,
			    (unsigned)it->tr->tags[ri].tag);
			return ERR_INVALID;
		}
	return 0;
}

int
proto_frame_len(const uint8_t hdr[PROTO_HDR_LEN], size_t *framelen)
{
	uint32_t plen;

	if (framelen == NULL)
		return ERR_INVALID;
	*framelen = 0;
	if (hdr == NULL)
		return ERR_INVALID;
	if (hdr[0] != PROTO_VERSION) {
		log_debug("version %u", (unsigned)hdr[0]);
		return ERR_INVALID;
	}
	if (get_be16(hdr + 2) != 0) {
		log_debug("flags not zero");
		return ERR_INVALID;
	}
	if ((plen = get_be32(hdr + 4)) > PROTO_MAX_PAYLOAD) {
		log_debug("payload of %lu bytes", (unsigned long)plen);
		return ERR_TOO_BIG;
	}
	*framelen = PROTO_HDR_LEN + (size_t)plen;
	return 0;
}

/* Copies a checked string value into a NUL-terminated array. */
static void
copy_str(char dst[PROTO_MAX_STR + 1], const uint8_t *p, size_t len)
{
	memcpy(dst, p, len);
	dst[len] = '\0';
}

/* Fills m from checked items. */
static void
fill_msg(const struct items *it, struct proto_msg *m)
{
	for (size_t i = 0; i < it->n; i++) {
		const uint8_t *p = it->v[i].p;
		size_t len = it->v[i].len;
		unsigned tag = it->v[i].tag;

		switch (m->type) {
		case PROTO_HELLO:
			if (tag == 1)
				memcpy(m->u.hello.addr, p, MAC_LEN);
			else if (tag == 2)
				copy_str(m->u.hello.model, p, len);
			else if (tag == 3)
				copy_str(m->u.hello.name, p, len);
			else if (tag == 4)
				copy_str(m->u.hello.firmware, p, len);
			else
				m->u.hello.caps = get_be32(p);
			break;
		case PROTO_KEYGEN_REQ:
			if (tag == 1)
				m->u.keygen_req.key_type = (enum proto_key_type)p[0];
			else
				memcpy(m->u.keygen_req.challenge, p, HASH_LEN);
			break;
		case PROTO_CSR:
			if (tag == 1) {
				m->u.csr.csr.p = p;
				m->u.csr.csr.len = len;
			} else {
				memcpy(m->u.csr.challenge, p, HASH_LEN);
			}
			break;
		case PROTO_KEY_DELIVERY:
			m->u.key_delivery.key.p = p;
			m->u.key_delivery.key.len = len;
			break;
		case PROTO_INSTALL:
			if (tag == 1) {
				m->u.install.cert.p = p;
				m->u.install.cert.len = len;
			} else {
				m->u.install.chain[m->u.install.nchain].p = p;
				m->u.install.chain[m->u.install.nchain].len = len;
				m->u.install.nchain++;
			}
			break;
		case PROTO_ACK:
			memcpy(m->u.ack.cert_sha256, p, HASH_LEN);
			break;
		case PROTO_DONE:
			memcpy(m->u.done.cert_sha256, p, HASH_LEN);
			break;
		case PROTO_ERROR:
			if (tag == 1)
				m->u.error.code = (enum proto_errcode)get_be16(p);
			else
				copy_str(m->u.error.text, p, len);
			break;
		}
	}
}

int
proto_decode(const uint8_t *buf, size_t len, struct proto_msg *m)
{
	struct items it;
	size_t framelen, off;

	if (m == NULL)
		return ERR_INVALID;
	memset(m, 0, sizeof(*m));
	if (buf == NULL || len < PROTO_HDR_LEN)
		return ERR_INVALID;
	/* an oversized frame is malformed here, whatever proto_frame_len says */
	if (proto_frame_len(buf, &framelen) != 0)
		return ERR_INVALID;
	if (framelen != len) {
		log_debug("frame of %zu bytes, header says %zu", len, framelen);
		return ERR_INVALID;
	}
	memset(&it, 0, sizeof(it));
	if ((it.tr = type_rule_find(buf[1])) == NULL) {
		log_debug("unknown type %u", (unsigned)buf[1]);
		return ERR_INVALID;
	}
	for (off = PROTO_HDR_LEN; off < len;) {
		unsigned tag;
		size_t vlen;

		if (len - off < 4) {
			log_debug("%s: truncated TLV header", it.tr->name);
			goto bad;
		}
		tag = get_be16(buf + off);
		vlen = get_be16(buf + off + 2);
		off += 4;
		if (vlen > len - off) {
			log_debug("%s: tag %u: value past the end", it.tr->name, tag);
			goto bad;
		}
		if (items_add(&it, tag, buf + off, vlen) != 0)
			goto bad;
		off += vlen;
	}
	if (items_complete(&it) != 0)
		goto bad;
	m->type = it.tr->type;
	fill_msg(&it, m);
	return 0;
bad:
	memset(m, 0, sizeof(*m));
	return ERR_INVALID;
}

/* Adds an optional string (omitted when empty) or a required one. */
static int
add_str(struct items *it, unsigned tag, const char *s, int required)
{
	size_t len = strnlen(s, PROTO_MAX_STR + 1);

	if (len == 0 && !required)
		return 0;
	return items_add(it, tag, (const uint8_t *)s, len);
}

static int
add_bytes(struct items *it, unsigned tag, const struct proto_bytes *b)
{
	if (b->p == NULL && b->len > 0)
		return ERR_INVALID;
	return items_add(it, tag, b->p, b->len);
}

/* Collects and checks the TLVs of m; integers are encoded into scratch. */
static int
collect(const struct proto_msg *m, struct items *it, uint8_t scratch[4])
{
	int r = 0;

	switch (m->type) {
	case PROTO_HELLO:
		put_be32(scratch, m->u.hello.caps);
		if ((r = items_add(it, 1, m->u.hello.addr, MAC_LEN)) != 0 ||
		    (r = add_str(it, 2, m->u.hello.model, 1)) != 0 ||
		    (r = add_str(it, 3, m->u.hello.name, 0)) != 0 ||
		    (r = add_str(it, 4, m->u.hello.firmware, 0)) != 0 ||
		    (r = items_add(it, 5, scratch, 4)) != 0)
			return r;
		break;
	case PROTO_KEYGEN_REQ:
		/* an out-of-range enum must not wrap into a valid byte */
		if (m->u.keygen_req.key_type != PROTO_KEY_P256)
			return ERR_INVALID;
		scratch[0] = (uint8_t)m->u.keygen_req.key_type;
		if ((r = items_add(it, 1, scratch, 1)) != 0 ||
		    (r = items_add(it, 2, m->u.keygen_req.challenge, HASH_LEN)) != 0)
			return r;
		break;
	case PROTO_CSR:
		if ((r = add_bytes(it, 1, &m->u.csr.csr)) != 0 ||
		    (r = items_add(it, 2, m->u.csr.challenge, HASH_LEN)) != 0)
			return r;
		break;
	case PROTO_KEY_DELIVERY:
		if ((r = add_bytes(it, 1, &m->u.key_delivery.key)) != 0)
			return r;
		break;
	case PROTO_INSTALL:
		if (m->u.install.nchain > PROTO_MAX_CHAIN)
			return ERR_INVALID;
		if ((r = add_bytes(it, 1, &m->u.install.cert)) != 0)
			return r;
		for (size_t i = 0; i < m->u.install.nchain; i++)
			if ((r = add_bytes(it, 2, &m->u.install.chain[i])) != 0)
				return r;
		break;
	case PROTO_ACK:
		if ((r = items_add(it, 1, m->u.ack.cert_sha256, HASH_LEN)) != 0)
			return r;
		break;
	case PROTO_DONE:
		if ((r = items_add(it, 1, m->u.done.cert_sha256, HASH_LEN)) != 0)
			return r;
		break;
	case PROTO_ERROR:
		if (m->u.error.code < PROTO_E_INTERNAL || m->u.error.code > PROTO_E_LOCKED)
			return ERR_INVALID;
		put_be16(scratch, (uint16_t)m->u.error.code);
		if ((r = items_add(it, 1, scratch, 2)) != 0 ||
		    (r = add_str(it, 2, m->u.error.text, 0)) != 0)
			return r;
		break;
	default:
		return ERR_INVALID;
	}
	return items_complete(it);
}

int
proto_encode(const struct proto_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
	struct items it;
	uint8_t scratch[4], *p;
	size_t plen = 0;
	int r;

	if (len == NULL)
		return ERR_INVALID;
	*len = 0;
	if (m == NULL || (buf == NULL && cap > 0))
		return ERR_INVALID;
	memset(&it, 0, sizeof(it));
	if ((it.tr = type_rule_find((unsigned)m->type)) == NULL)
		return ERR_INVALID;
	if ((r = collect(m, &it, scratch)) != 0)
		return r;
	for (size_t i = 0; i < it.n; i++)
		plen += 4 + it.v[i].len;
	/* cannot happen for a checked message (see the assertion above) */
	if (plen > PROTO_MAX_PAYLOAD)
		return ERR_INTERNAL;
	if (cap < PROTO_HDR_LEN + plen)
		return ERR_TOO_BIG;
	/* nothing is written to buf before this point */
	buf[0] = PROTO_VERSION;
	buf[1] = (uint8_t)it.tr->type;
	p = put_be16(buf + 2, 0);
	p = put_be32(p, (uint32_t)plen);
	for (size_t i = 0; i < it.n; i++) {
		p = put_be16(p, it.v[i].tag);
		p = put_be16(p, (uint16_t)it.v[i].len);
		memcpy(p, it.v[i].p, it.v[i].len);
		p += it.v[i].len;
	}
	*len = PROTO_HDR_LEN + plen;
	return 0;
}
