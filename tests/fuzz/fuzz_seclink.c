/*
 * fuzz_seclink.c: libFuzzer target for the receiving side of the encrypted
 * link (device/seclink.c) — what any radio peer can put on the air after
 * a mutual authentication. The first input byte chooses:
 *   even: the rest is the raw byte stream from the peer (headers, lengths,
 *         sequence numbers, tags: nothing forged may get through);
 *   odd:  the rest is a list of frames, type(1) length(1) content, that a
 *         peer holding the link key seals and sends: control frames of any
 *         type, content and order (key changes, their answers and ends).
 * The receiver must take or refuse each frame without crashing or leaking,
 * and once it has refused one, stay closed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "device/device.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEALED_MAX (256 * 1024)

/* What the receiver reads: the input, or the frames the sender sealed. */
struct stream {
	const uint8_t *p;
	size_t len, off;
	uint8_t *buf;			/* sealed frames (odd mode) */
};

static uint8_t sealed[SEALED_MAX];

static int
sink_write(void *arg, const void *buf, size_t len, int timeout_ms)
{
	(void)arg;
	(void)buf;
	(void)len;
	(void)timeout_ms;
	return 0;			/* the receiver's answers go nowhere */
}

static int
sealed_write(void *arg, const void *buf, size_t len, int timeout_ms)
{
	struct stream *s = arg;

	(void)timeout_ms;
	if (len > SEALED_MAX - s->len)
		return ERR_IO;
	memcpy(sealed + s->len, buf, len);
	s->len += len;
	return 0;
}

static int
stream_read(void *arg, void *buf, size_t len, size_t *got, int timeout_ms)
{
	struct stream *s = arg;
	size_t n = s->len - s->off;

	(void)timeout_ms;
	*got = 0;
	if (n == 0)
		return ERR_IO;		/* the end of the input: the link closed */
	if (n > len)
		n = len;
	memcpy(buf, s->p + s->off, n);
	s->off += n;
	*got = n;
	return 0;
}

static const uint8_t fixed_key[SECLINK_KEY_LEN] = {
	0x70, 0x72, 0x6f, 0x76, 0x64, 0x20, 0x6c, 0x69, 0x6e, 0x6b, 0x20, 0x66, 0x75, 0x7a, 0x7a, 0x21,
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init("fuzz_seclink", LOG_LVL_ERROR, 0, 0);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[SECLINK_MAX_DATA];
	struct stream in = { 0 }, out = { 0 };
	struct seclink_io rio = { sink_write, stream_read, &in };
	struct seclink *rx = NULL, *tx = NULL;
	uint8_t key[SECLINK_KEY_LEN];
	size_t len;
	int r;

	if (size < 1)
		return 0;
	if ((data[0] & 1) == 0) {
		in.p = data + 1;
		in.len = size - 1;
	} else {
		/* a sender with the same key seals what the input lists */
		struct seclink_io tio = { sealed_write, stream_read, &out };
		size_t i = 1;

		memcpy(key, fixed_key, sizeof(key));
		if (seclink_new(&tio, 1, key, NULL, &tx) != 0)
			abort();
		while (i + 2 <= size) {
			uint8_t type = data[i], n = data[i + 1];
			if (i + 2 + n > size)
				break;
			if (seclink_send_raw(tx, type, data + i + 2, n) != 0)
				break;
			i += 2 + (size_t)n;
		}
		seclink_close(tx);	/* its CLOSE ends the stream */
		in.p = sealed;
		in.len = out.len;
	}
	memcpy(key, fixed_key, sizeof(key));
	if (seclink_new(&rio, 0, key, NULL, &rx) != 0)
		abort();
	while ((r = seclink_recv(rx, buf, sizeof(buf), &len, 0)) == 0)
		if (len > SECLINK_MAX_DATA)
			abort();
	/* refused or ended: closed for good */
	if (r == ERR_TIMEOUT)
		abort();		/* the stream cannot run dry without ending */
	if (seclink_recv(rx, buf, sizeof(buf), &len, 0) != ERR_IO ||
	    seclink_send(rx, "x", 1) != ERR_IO || seclink_error(rx)[0] == '\0')
		abort();
	seclink_close(rx);
	return 0;
}
