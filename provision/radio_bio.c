/*
 * radio_bio.c: a BIO over a radio link, so that OpenSSL can run TLS on any
 * backend: the PIN-secured intake link (pinlink.c) and the devices' mutual
 * authentication (device/peer.c). Reads and writes are bounded by a time
 * per call or by one deadline; the link's last error is kept for the
 * caller to tell a silent peer (ERR_TIMEOUT) from a closed link.
 */
#include <openssl/bio.h>
#include <openssl/crypto.h>

#include "provision/provision.h"

static BIO_METHOD *link_method;
static CRYPTO_ONCE link_once = CRYPTO_ONCE_STATIC_INIT;

/* The time left for one call, in ms. */
static int
left_ms(const struct radio_link_bio *rb)
{
	uint64_t now;

	if (rb->deadline_ns == 0)
		return rb->timeout_ms;
	if ((now = now_ns()) >= rb->deadline_ns)
		return 0;
	return (int)((rb->deadline_ns - now + 999999) / 1000000);
}

static int
link_bio_write(BIO *b, const char *buf, int len)
{
	struct radio_link_bio *rb = BIO_get_data(b);
	int r;

	if (len <= 0)
		return 0;
	if ((r = radio_link_write(rb->link, buf, (size_t)len, left_ms(rb))) == 0)
		return len;
	rb->err = r;
	return -1;
}

static int
link_bio_read(BIO *b, char *buf, int len)
{
	struct radio_link_bio *rb = BIO_get_data(b);
	size_t got = 0;
	int r;

	if (len <= 0)
		return 0;
	r = radio_link_read_some(rb->link, buf, (size_t)len, &got, left_ms(rb));
	if (r != 0) {
		rb->err = r;
		return r == ERR_IO ? 0 : -1;	/* 0: the peer closed the link */
	}
	for (size_t i = 0; i < got && rb->ntap < rb->taplen; i++)
		rb->tap[rb->ntap++] = (uint8_t)buf[i];
	return (int)got;
}

static long
link_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int
link_bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void
link_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "radio link");

	if (m == NULL)
		return;
	if (!BIO_meth_set_write(m, link_bio_write) || !BIO_meth_set_read(m, link_bio_read) ||
	    !BIO_meth_set_ctrl(m, link_bio_ctrl) || !BIO_meth_set_create(m, link_bio_create)) {
		BIO_meth_free(m);
		return;
	}
	link_method = m;
}

BIO *
radio_link_bio_new(struct radio_link_bio *rb)
{
	BIO *b;

	if (rb == NULL || rb->link == NULL || (rb->taplen > 0 && rb->tap == NULL))
		return NULL;
	CRYPTO_THREAD_run_once(&link_once, link_method_init);
	if (link_method == NULL || (b = BIO_new(link_method)) == NULL)
		return NULL;
	BIO_set_data(b, rb);
	return b;
}
