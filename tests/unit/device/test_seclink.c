/*
 * test_seclink.c: the encrypted link over an in-memory byte stream whose
 * frames the tests can hold back, replay, reorder, drop and alter — both
 * directions, sealing and opening, the bounds of the header, the key
 * changes (by frames, by time, both sides at once, one-way traffic) and
 * that the old key no longer opens what the new one sealed, the control
 * frames out of order, and the end of a link.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <openssl/rand.h>

#include "device/device.h"

#define MAXF 64			/* frames a direction may hold back */
#define BUF (2 * 1024 * 1024)

/* What one side reads: bytes delivered to it. */
struct inbox {
	uint8_t *buf;
	size_t len, off;
	int closed;
};

/* Two sides (0 initiator, 1 responder). A write from side i is one frame
 * (seclink writes whole frames); it is delivered to 1-i at once, unless
 * held, when it is kept in held[i] for the test to deliver. */
struct mem {
	struct inbox in[2];
	int hold[2];
	uint8_t *held[2][MAXF];
	size_t heldlen[2][MAXF];
	size_t nheld[2];
	uint64_t frames[2];		/* written by each side */
};

struct side {
	struct mem *m;
	int me;
};

static void
deliver(struct mem *m, int to, const void *buf, size_t len)
{
	struct inbox *in = &m->in[to];

	assert_true(in->len + len <= BUF);
	memcpy(in->buf + in->len, buf, len);
	in->len += len;
}

static int
mem_write(void *arg, const void *buf, size_t len, int timeout_ms)
{
	struct side *s = arg;
	struct mem *m = s->m;

	(void)timeout_ms;
	if (m->in[1 - s->me].closed)
		return ERR_IO;
	m->frames[s->me]++;
	if (m->hold[s->me]) {
		size_t i = m->nheld[s->me]++;
		assert_true(i < MAXF);
		m->held[s->me][i] = malloc(len);
		assert_non_null(m->held[s->me][i]);
		memcpy(m->held[s->me][i], buf, len);
		m->heldlen[s->me][i] = len;
		return 0;
	}
	deliver(m, 1 - s->me, buf, len);
	return 0;
}

static int
mem_read_some(void *arg, void *buf, size_t len, size_t *got, int timeout_ms)
{
	struct side *s = arg;
	struct inbox *in = &s->m->in[s->me];
	size_t n = in->len - in->off;

	(void)timeout_ms;
	*got = 0;
	if (n == 0)
		return in->closed ? ERR_IO : ERR_TIMEOUT;
	if (n > len)
		n = len;
	memcpy(buf, in->buf + in->off, n);
	in->off += n;
	*got = n;
	return 0;
}

static struct mem *mem;
static struct side sides[2];
static struct seclink *a, *b;		/* initiator, responder */
static uint8_t key0[SECLINK_KEY_LEN];
static uint8_t rbuf[SECLINK_MAX_DATA];

static void
mem_reset(void)
{
	if (mem != NULL) {
		for (int i = 0; i < 2; i++) {
			free(mem->in[i].buf);
			for (size_t k = 0; k < mem->nheld[i]; k++)
				free(mem->held[i][k]);
		}
		free(mem);
	}
	mem = calloc(1, sizeof(*mem));
	assert_non_null(mem);
	for (int i = 0; i < 2; i++) {
		mem->in[i].buf = malloc(BUF);
		assert_non_null(mem->in[i].buf);
		sides[i].m = mem;
		sides[i].me = i;
	}
}

static struct seclink_io
io_of(int i)
{
	struct seclink_io io = { mem_write, mem_read_some, &sides[i] };
	return io;
}

/* Both sides with one random key and the given options. */
static void
pair(const struct seclink_opts *oa, const struct seclink_opts *ob)
{
	uint8_t k[SECLINK_KEY_LEN];
	struct seclink_io ia = io_of(0), ib = io_of(1);

	assert_int_equal(RAND_bytes(key0, sizeof(key0)), 1);
	memcpy(k, key0, sizeof(k));
	assert_int_equal(seclink_new(&ia, 1, k, oa, &a), 0);
	for (size_t i = 0; i < sizeof(k); i++)
		assert_int_equal(k[i], 0);		/* wiped */
	memcpy(k, key0, sizeof(k));
	assert_int_equal(seclink_new(&ib, 0, k, ob, &b), 0);
}

static int
setup(void **state)
{
	(void)state;
	mem_reset();
	a = b = NULL;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	seclink_close(a);
	seclink_close(b);
	a = b = NULL;
	mem_reset();
	free(mem->in[0].buf);
	free(mem->in[1].buf);
	free(mem);
	mem = NULL;
	return 0;
}

/* s sends text; r must receive exactly it. */
static void
xfer(struct seclink *s, struct seclink *r, const char *text)
{
	size_t len = 0;

	assert_int_equal(seclink_send(s, text, strlen(text)), 0);
	assert_int_equal(seclink_recv(r, rbuf, sizeof(rbuf), &len, 0), 0);
	assert_int_equal(len, strlen(text));
	assert_memory_equal(rbuf, text, len);
}

/* r's next receive must fail with code and leave the link dead. */
static void
recv_fails(struct seclink *r, int code)
{
	size_t len = 99;

	assert_int_equal(seclink_recv(r, rbuf, sizeof(rbuf), &len, 0), code);
	assert_int_equal(len, 0);
	assert_true(seclink_error(r)[0] != '\0');
	assert_int_equal(seclink_recv(r, rbuf, sizeof(rbuf), &len, 0), ERR_IO);
	assert_int_equal(seclink_send(r, "x", 1), ERR_IO);
}

/* Delivers frame i held from side from, optionally altered first. */
static void
release(int from, size_t i, size_t flip_at, uint8_t mask)
{
	uint8_t *f = mem->held[from][i];

	assert_true(i < mem->nheld[from]);
	if (mask != 0) {
		assert_true(flip_at < mem->heldlen[from][i]);
		f[flip_at] ^= mask;
	}
	deliver(mem, 1 - from, f, mem->heldlen[from][i]);
	if (mask != 0)
		f[flip_at] ^= mask;
}

/* ---------------------------------------------------------------------
 * Sealing and opening.
 */
static void
test_roundtrip(void **state)
{
	static uint8_t big[SECLINK_MAX_DATA + 1];
	size_t len = 0;

	(void)state;
	pair(NULL, NULL);
	xfer(a, b, "hello from the initiator");
	xfer(b, a, "hello from the responder");
	/* empty and largest frames */
	assert_int_equal(seclink_send(a, NULL, 0), 0);
	assert_int_equal(seclink_recv(b, rbuf, sizeof(rbuf), &len, 0), 0);
	assert_int_equal(len, 0);
	assert_int_equal(RAND_bytes(big, sizeof(big)), 1);
	assert_int_equal(seclink_send(b, big, SECLINK_MAX_DATA), 0);
	assert_int_equal(seclink_recv(a, rbuf, sizeof(rbuf), &len, 0), 0);
	assert_int_equal(len, SECLINK_MAX_DATA);
	assert_memory_equal(rbuf, big, len);
	/* too large is refused and changes nothing */
	assert_int_equal(seclink_send(a, big, SECLINK_MAX_DATA + 1), ERR_TOO_BIG);
	xfer(a, b, "still up");
	/* the frame on the air: header, sealed type and data, tag */
	mem->hold[0] = 1;
	assert_int_equal(seclink_send(a, "abc", 3), 0);
	assert_int_equal(mem->heldlen[0][0], SECLINK_HDR_LEN + 1 + 3 + SECLINK_TAG_LEN);
	assert_int_equal(mem->held[0][0][0], 1);		/* version */
	assert_int_equal(mem->held[0][0][1], 0);		/* epoch */
	assert_int_equal(mem->held[0][0][2] << 8 | mem->held[0][0][3], 1 + 3 + 16);
	assert_int_equal(mem->held[0][0][11], 3);		/* the 4th frame A sent */
	assert_null(memmem(mem->held[0][0], mem->heldlen[0][0], "abc", 3));
	/* nothing arrived: a timeout, and the link stays up */
	assert_int_equal(seclink_recv(b, rbuf, sizeof(rbuf), &len, 0), ERR_TIMEOUT);
	release(0, 0, 0, 0);
	assert_int_equal(seclink_recv(b, rbuf, sizeof(rbuf), &len, 0), 0);
	assert_memory_equal(rbuf, "abc", 3);
	/* a buffer smaller than a frame can hold is refused */
	assert_int_equal(seclink_recv(b, rbuf, SECLINK_MAX_DATA - 1, &len, 0), ERR_INVALID);
	struct seclink_stats st;
	seclink_stats(a, &st);
	assert_int_equal(st.sent, 4);
	assert_int_equal(st.received, 2);
	assert_int_equal(st.epoch, 0);
}

static void
test_wrong_key(void **state)
{
	uint8_t k[SECLINK_KEY_LEN];
	struct seclink_io ia = io_of(0), ib = io_of(1);

	(void)state;
	assert_int_equal(RAND_bytes(k, sizeof(k)), 1);
	assert_int_equal(seclink_new(&ia, 1, k, NULL, &a), 0);
	assert_int_equal(RAND_bytes(k, sizeof(k)), 1);
	assert_int_equal(seclink_new(&ib, 0, k, NULL, &b), 0);
	assert_int_equal(seclink_send(a, "x", 1), 0);
	recv_fails(b, ERR_AUTH);
	assert_non_null(strstr(seclink_error(b), "authentication"));
}

/* Both ends as initiator: their directions' keys differ, nothing opens. */
static void
test_same_role(void **state)
{
	uint8_t k[SECLINK_KEY_LEN];
	struct seclink_io ia = io_of(0), ib = io_of(1);

	(void)state;
	assert_int_equal(RAND_bytes(key0, sizeof(key0)), 1);
	memcpy(k, key0, sizeof(k));
	assert_int_equal(seclink_new(&ia, 1, k, NULL, &a), 0);
	memcpy(k, key0, sizeof(k));
	assert_int_equal(seclink_new(&ib, 1, k, NULL, &b), 0);
	assert_int_equal(seclink_send(a, "x", 1), 0);
	recv_fails(b, ERR_AUTH);
}

/* Every part of a frame altered: refused, and the link ends. */
static void
test_tamper(void **state)
{
	static const struct {
		size_t at;
		uint8_t mask;
		int code;
	} cases[] = {
		{ 0, 0x02, ERR_INVALID },		/* version */
		{ 1, 0x01, ERR_INVALID },		/* epoch */
		{ 3, 0x08, ERR_AUTH },			/* length: 25 -> 17 */
		{ 11, 0x01, ERR_INVALID },		/* sequence */
		{ 4, 0x80, ERR_INVALID },		/* sequence, high byte */
		{ 12, 0x01, ERR_AUTH },			/* sealed type */
		{ 15, 0x10, ERR_AUTH },			/* sealed data */
		{ 12 + 1 + 8 + 15, 0x80, ERR_AUTH },	/* tag, last byte */
	};

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		mem_reset();
		pair(NULL, NULL);
		xfer(a, b, "before");
		mem->hold[0] = 1;
		assert_int_equal(seclink_send(a, "12345678", 8), 0);
		release(0, 0, cases[c].at, cases[c].mask);
		print_message("altered byte %zu\n", cases[c].at);
		recv_fails(b, cases[c].code);
		/* the genuine frame does not help any more */
		release(0, 0, 0, 0);
		size_t len;
		assert_int_equal(seclink_recv(b, rbuf, sizeof(rbuf), &len, 0), ERR_IO);
		seclink_close(a);
		seclink_close(b);
		a = b = NULL;
	}
}

static void
test_replay_reorder_drop(void **state)
{
	size_t len;

	(void)state;
	/* replayed */
	pair(NULL, NULL);
	mem->hold[0] = 1;
	assert_int_equal(seclink_send(a, "one", 3), 0);
	release(0, 0, 0, 0);
	release(0, 0, 0, 0);
	assert_int_equal(seclink_recv(b, rbuf, sizeof(rbuf), &len, 0), 0);
	recv_fails(b, ERR_INVALID);
	assert_non_null(strstr(seclink_error(b), "out of sequence"));
	seclink_close(a);
	seclink_close(b);

	/* reordered */
	mem_reset();
	pair(NULL, NULL);
	mem->hold[0] = 1;
	assert_int_equal(seclink_send(a, "one", 3), 0);
	assert_int_equal(seclink_send(a, "two", 3), 0);
	release(0, 1, 0, 0);
	release(0, 0, 0, 0);
	recv_fails(b, ERR_INVALID);
	seclink_close(a);
	seclink_close(b);

	/* dropped */
	mem_reset();
	pair(NULL, NULL);
	mem->hold[0] = 1;
	assert_int_equal(seclink_send(a, "one", 3), 0);
	assert_int_equal(seclink_send(a, "two", 3), 0);
	release(0, 1, 0, 0);
	recv_fails(b, ERR_INVALID);
}

/* Headers refused before their body is read, whatever they announce. */
static void
test_header_bounds(void **state)
{
	uint8_t h[SECLINK_HDR_LEN] = { 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	static const uint16_t bad[] = { 0, 1, 16, 0xffff, 1 + SECLINK_MAX_DATA + 16 + 1 };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mem_reset();
		pair(NULL, NULL);
		h[2] = (uint8_t)(bad[i] >> 8);
		h[3] = (uint8_t)bad[i];
		deliver(mem, 1, h, sizeof(h));
		recv_fails(b, ERR_INVALID);
		assert_non_null(strstr(seclink_error(b), "length"));
		seclink_close(a);
		seclink_close(b);
		a = b = NULL;
	}
	/* the smallest and largest lengths are taken (and then fail the tag) */
	mem_reset();
	pair(NULL, NULL);
	h[2] = 0;
	h[3] = 17;
	deliver(mem, 1, h, sizeof(h));
	deliver(mem, 1, key0, 17);
	recv_fails(b, ERR_AUTH);
}

/* A frame cut short by the end of the link; a partial frame waits. */
static void
test_truncated(void **state)
{
	size_t len;

	(void)state;
	pair(NULL, NULL);
	mem->hold[0] = 1;
	assert_int_equal(seclink_send(a, "truncated", 9), 0);
	deliver(mem, 1, mem->held[0][0], 20);
	assert_int_equal(seclink_recv(b, rbuf, sizeof(rbuf), &len, 0), ERR_TIMEOUT);
	assert_string_equal(seclink_error(b), "");
	deliver(mem, 1, mem->held[0][0] + 20, mem->heldlen[0][0] - 20);
	assert_int_equal(seclink_recv(b, rbuf, sizeof(rbuf), &len, 0), 0);
	assert_int_equal(len, 9);
	assert_int_equal(seclink_send(a, "again", 5), 0);
	deliver(mem, 1, mem->held[0][1], 7);
	mem->in[1].closed = 1;
	recv_fails(b, ERR_IO);
	assert_non_null(strstr(seclink_error(b), "middle of a frame"));
}

/* A peer that starts a frame and stops: the frame's time runs out. */
static void
test_stalled_frame(void **state)
{
	struct seclink_opts o = { .timeout_ms = 30 };
	size_t len;

	(void)state;
	pair(&o, &o);
	mem->hold[0] = 1;
	assert_int_equal(seclink_send(a, "slow", 4), 0);
	deliver(mem, 1, mem->held[0][0], 5);
	assert_int_equal(seclink_recv(b, rbuf, sizeof(rbuf), &len, 0), ERR_TIMEOUT);
	struct timespec ts = { 0, 50 * 1000000L };
	nanosleep(&ts, NULL);
	recv_fails(b, ERR_TIMEOUT);
	assert_non_null(strstr(seclink_error(b), "middle of a frame"));
}

static void
test_close(void **state)
{
	size_t len;

	(void)state;
	pair(NULL, NULL);
	xfer(a, b, "bye");
	seclink_close(a);
	a = NULL;
	assert_int_equal(seclink_recv(b, rbuf, sizeof(rbuf), &len, 0), ERR_IO);
	assert_true(seclink_peer_closed(b));
	assert_int_equal(seclink_send(b, "x", 1), ERR_IO);
	/* a link that ends without CLOSE is not "closed by the peer" */
	seclink_close(b);
	b = NULL;
	mem_reset();
	pair(NULL, NULL);
	mem->in[1].closed = 1;
	assert_int_equal(seclink_recv(b, rbuf, sizeof(rbuf), &len, 0), ERR_IO);
	assert_false(seclink_peer_closed(b));
}

/* ---------------------------------------------------------------------
 * Key changes.
 */

/* Ping-pong of n messages; both must end at the same epoch. */
static void
pingpong(int n)
{
	char msg[64];

	for (int i = 0; i < n; i++) {
		snprintf(msg, sizeof(msg), "request %d", i);
		xfer(a, b, msg);
		snprintf(msg, sizeof(msg), "answer %d", i);
		xfer(b, a, msg);
	}
}

static void
test_rekey_frames(void **state)
{
	struct seclink_opts o = { .rekey_after_frames = 5 };
	struct seclink_stats sa, sb;

	(void)state;
	pair(&o, &o);
	pingpong(40);
	seclink_stats(a, &sa);
	seclink_stats(b, &sb);
	print_message("key changes: initiator %u, responder %u\n", sa.epoch, sb.epoch);
	assert_true(sa.epoch >= 5);
	assert_true(abs((int)sa.epoch - (int)sb.epoch) <= 1);
	assert_int_equal(sa.sent, 40);
	assert_int_equal(sb.received, 40);
}

/* A frame sealed under the new key: the old key does not open it, and an
 * old frame replayed after the change is refused. */
static void
test_rekey_old_key_useless(void **state)
{
	struct seclink_io ib0 = io_of(1);
	struct seclink *old = NULL;
	uint8_t k[SECLINK_KEY_LEN], *f;
	struct seclink_stats st;
	size_t len, flen;

	(void)state;
	pair(NULL, NULL);
	/* an epoch-0 frame, kept */
	mem->hold[0] = 1;
	assert_int_equal(seclink_send(a, "epoch zero", 10), 0);
	release(0, 0, 0, 0);
	mem->hold[0] = 0;
	assert_int_equal(seclink_recv(b, rbuf, sizeof(rbuf), &len, 0), 0);
	/* a key change, with traffic both ways during it */
	assert_int_equal(seclink_rekey(a), 0);
	xfer(b, a, "during the change");	/* B answers first; A takes the
						   answer, then this frame */
	xfer(a, b, "after the change");		/* B takes FIN, then this frame */
	seclink_stats(a, &st);
	assert_int_equal(st.epoch, 1);
	seclink_stats(b, &st);
	assert_int_equal(st.epoch, 1);
	/* a new frame from A, kept */
	mem->hold[0] = 1;
	assert_int_equal(seclink_send(a, "epoch one", 9), 0);
	f = mem->held[0][1];
	flen = mem->heldlen[0][1];
	assert_int_equal(f[1], 1);
	/* a receiver with the original key, told it is frame 0 of epoch 0 */
	mem->in[1].len = mem->in[1].off = 0;
	memcpy(k, key0, sizeof(k));
	assert_int_equal(seclink_new(&ib0, 0, k, NULL, &old), 0);
	f[1] = 0;
	memset(f + 4, 0, 8);
	deliver(mem, 1, f, flen);
	assert_int_equal(seclink_recv(old, rbuf, sizeof(rbuf), &len, 0), ERR_AUTH);
	seclink_close(old);
	/* the epoch-0 frame replayed to B after the change */
	mem->in[1].len = mem->in[1].off = 0;
	release(0, 0, 0, 0);
	recv_fails(b, ERR_INVALID);
}

static void
test_rekey_time(void **state)
{
	struct seclink_opts o = { .rekey_after_ms = 20 };
	struct timespec ts = { 0, 25 * 1000000L };
	struct seclink_stats sa, sb;

	(void)state;
	pair(&o, &o);
	for (int i = 0; i < 4; i++) {
		pingpong(2);
		nanosleep(&ts, NULL);
	}
	pingpong(2);
	seclink_stats(a, &sa);
	seclink_stats(b, &sb);
	print_message("key changes after ~100 ms with a 20 ms lifetime: %u, %u\n", sa.epoch,
	    sb.epoch);
	assert_true(sa.epoch >= 3 && sb.epoch >= 3);
}

/* Both start a key change at once: the initiator's wins, one change. */
static void
test_rekey_both(void **state)
{
	struct seclink_stats sa, sb;

	(void)state;
	pair(NULL, NULL);
	assert_int_equal(seclink_rekey(a), 0);
	assert_int_equal(seclink_rekey(b), 0);
	assert_int_equal(seclink_rekey(b), 0);		/* under way: nothing more */
	pingpong(3);
	seclink_stats(a, &sa);
	seclink_stats(b, &sb);
	assert_int_equal(sa.epoch, 1);
	assert_int_equal(sb.epoch, 1);
	/* and the next change works as usual */
	assert_int_equal(seclink_rekey(b), 0);
	pingpong(2);
	seclink_stats(a, &sa);
	seclink_stats(b, &sb);
	assert_int_equal(sa.epoch, 2);
	assert_int_equal(sb.epoch, 2);
}

/* Traffic one way only: the sender takes the answers while it sends. */
static void
test_rekey_one_way(void **state)
{
	struct seclink_opts o = { .rekey_after_frames = 10 };
	struct seclink_stats sa, sb;
	char msg[32];
	size_t len;

	(void)state;
	pair(&o, &o);
	for (int i = 0; i < 100; i++) {
		snprintf(msg, sizeof(msg), "frame %d", i);
		assert_int_equal(seclink_send(a, msg, strlen(msg)), 0);
		assert_int_equal(seclink_recv(b, rbuf, sizeof(rbuf), &len, 0), 0);
		assert_int_equal(len, strlen(msg));
		assert_memory_equal(rbuf, msg, len);
	}
	seclink_stats(a, &sa);
	seclink_stats(b, &sb);
	print_message("one-way: %u and %u key changes\n", sa.epoch, sb.epoch);
	assert_true(sa.epoch >= 8);
	assert_int_equal(sb.sent, 0);
}

/* A peer that never answers a key change: the old key works until its
 * hard limit in time, then the link ends. */
static void
test_rekey_unanswered(void **state)
{
	struct seclink_opts o = { .rekey_after_ms = 10, .timeout_ms = 20 };
	struct timespec ts = { 0, 5 * 1000000L };
	int r = 0, i;

	(void)state;
	pair(&o, NULL);
	for (i = 0; i < 200 && (r = seclink_send(a, "x", 1)) == 0; i++)
		nanosleep(&ts, NULL);
	assert_int_equal(r, ERR_TIMEOUT);
	assert_true(i >= 5);
	assert_non_null(strstr(seclink_error(a), "key change"));
}

/* Control frames that do not fit the state, or are malformed. */
static void
test_control_out_of_order(void **state)
{
	uint8_t m[1 + 32] = { 1 };
	static const struct {
		uint8_t type;
		uint8_t epoch;
		size_t len;
	} cases[] = {
		{ SECLINK_REKEY_ACK, 1, 33 },	/* nobody asked */
		{ SECLINK_REKEY_FIN, 1, 1 },	/* no change under way */
		{ SECLINK_REKEY, 2, 33 },	/* skips an epoch */
		{ SECLINK_REKEY, 0, 33 },	/* the current epoch */
		{ SECLINK_REKEY, 1, 32 },	/* short share */
		{ SECLINK_REKEY, 1, 1 },
		{ SECLINK_CLOSE, 1, 1 },	/* close with content */
		{ 0, 1, 1 },			/* unknown types */
		{ 6, 1, 1 },
		{ 0xff, 1, 33 },
	};
	size_t len;

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		mem_reset();
		pair(NULL, NULL);
		m[0] = cases[c].epoch;
		assert_int_equal(RAND_bytes(m + 1, 32), 1);
		assert_int_equal(seclink_send_raw(a, cases[c].type, m, cases[c].len), 0);
		print_message("control frame type %u, %zu bytes\n", cases[c].type, cases[c].len);
		recv_fails(b, ERR_INVALID);
		seclink_close(a);
		seclink_close(b);
		a = b = NULL;
	}
	/* a low-order X25519 share (all zero): unusable, refused */
	mem_reset();
	pair(NULL, NULL);
	memset(m, 0, sizeof(m));
	m[0] = 1;
	assert_int_equal(seclink_send_raw(a, SECLINK_REKEY, m, sizeof(m)), 0);
	recv_fails(b, ERR_INVALID);
	assert_non_null(strstr(seclink_error(b), "unusable"));
	seclink_close(a);
	seclink_close(b);
	/* an answer to a change under way, with a bad share */
	mem_reset();
	pair(NULL, NULL);
	assert_int_equal(seclink_rekey(a), 0);
	assert_int_equal(seclink_send_raw(b, SECLINK_REKEY_ACK, m, sizeof(m)), 0);
	recv_fails(a, ERR_INVALID);
	(void)len;
}

static void
test_bad_args(void **state)
{
	struct seclink_io io = io_of(0);
	struct seclink_opts o = { .rekey_after_frames = SECLINK_FRAMES_MAX };
	uint8_t k[SECLINK_KEY_LEN] = { 1 };
	size_t len;

	(void)state;
	assert_int_equal(seclink_new(&io, 1, k, &o, &a), ERR_INVALID);
	assert_null(a);
	assert_int_equal(k[0], 0);			/* wiped even so */
	assert_int_equal(seclink_new(NULL, 1, k, NULL, &a), ERR_INVALID);
	assert_int_equal(seclink_send(NULL, "x", 1), ERR_INVALID);
	assert_int_equal(seclink_recv(NULL, rbuf, sizeof(rbuf), &len, 0), ERR_INVALID);
	assert_string_equal(seclink_error(NULL), "");
	seclink_close(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_role, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tamper, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_reorder_drop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stalled_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rekey_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rekey_old_key_useless, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rekey_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rekey_both, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rekey_one_way, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rekey_unanswered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_out_of_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
	};

	log_init("test_seclink", LOG_LVL_ERROR, 0, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
