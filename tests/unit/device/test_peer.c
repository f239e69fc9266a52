/*
 * test_peer.c: mutual authentication of two devices over the sim radio,
 * with certificates from an in-process CA — both sides get the same link
 * key and the encrypted link works over it; refused: a link-layer address
 * that is not the certificate's (either side), another CA's certificate,
 * an expired one, a revoked one (fresh CRL), any peer with a stale CRL or
 * none (and the grace knob), a certificate presented without its key, a
 * peer that stops mid-handshake (either side), an intake attempt and bytes
 * that are not TLS. The device identifier in a certificate. The tpm2
 * keystore on a private swtpm, as initiator and responder (never skipped:
 * without swtpm the test fails).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "tests/unit/device/intake_test.h"

extern char **environ;

#define TIMEOUT 3000

static char dir[] = "/tmp/provd-test-peer.XXXXXX";
static char air[300], cadir[300], ca2dir[300];
static struct ca_key *ca2key;		/* a CA of another enterprise */
static uint8_t *ca_der;			/* our CA's certificate, DER */
static int ca_derlen;

static const uint8_t A[MAC_LEN] = { 0x02, 0x00, 0x00, 0x00, 0x0a, 0x01 };
static const uint8_t B[MAC_LEN] = { 0x02, 0x00, 0x00, 0x00, 0x0b, 0x02 };
static const uint8_t C[MAC_LEN] = { 0x02, 0x00, 0x00, 0x00, 0x0c, 0x03 };

struct dev {
	char dir[320];
	uint8_t addr[MAC_LEN];
	struct keystore *ks;
	EVP_PKEY *key;
	X509 *cert;
	STACK_OF(X509) *ca;
	OSSL_LIB_CTX *libctx;
	const char *propq;
	struct crl_cache *crl;
	struct peer_ctx *pc;
	int ndev;
};

/* ---------------------------------------------------------------------
 * Devices.
 */

/* Issues for mac from csr, by key (NULL: ours), valid [nb, na]. */
static void
issue(struct ca_key *key, const uint8_t mac[MAC_LEN], const uint8_t *csr, size_t csrlen,
    int64_t nb, int64_t na, uint8_t **cert, size_t *certlen)
{
	struct ca_policy pol = { .allow_rsa = 0, .max_csr = 8192 };
	struct ca_issue_req req = { 0 };
	uint8_t *spki = NULL;
	size_t spkilen = 0;
	char why[256];

	assert_int_equal(ca_csr_check(csr, csrlen, &pol, &spki, &spkilen, why, sizeof(why)), 0);
	memcpy(req.mac, mac, MAC_LEN);
	ca_serial_new(req.serial);
	req.not_before = nb;
	req.not_after = na;
	req.spki = spki;
	req.spkilen = spkilen;
	assert_int_equal(ca_key_issue(key != NULL ? key : test_cakey, &req, cert, certlen), 0);
	free(spki);
}

static int ndevs;

/* A device with an installed identity: a key in its keystore (kind),
 * a certificate for mac from key (NULL: our CA) valid [nb, na] (0, 0: a
 * day), and our CA's certificate as its trust chain. */
static void
dev_make(struct dev *d, const uint8_t mac[MAC_LEN], const char *kind, const char *tcti,
    struct ca_key *key, int64_t nb, int64_t na)
{
	struct keystore_params kp = { .kind = kind, .tpm2_tcti = tcti };
	const uint8_t *chain[1] = { ca_der };
	size_t chainlen[1] = { (size_t)ca_derlen };
	uint8_t *csr = NULL, *cert = NULL;
	size_t csrlen = 0, certlen = 0;
	int64_t now = (int64_t)time(NULL);

	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "%s/dev%d", dir, ndevs++);
	memcpy(d->addr, mac, MAC_LEN);
	kp.dir = d->dir;
	assert_int_equal(keystore_open(&kp, &d->ks), 0);
	assert_int_equal(keystore_generate(d->ks, mac, &csr, &csrlen), 0);
	if (key == NULL && nb == 0 && na == 0) {
		char why[256];
		/* as provd would issue it */
		assert_int_equal(test_issue(NULL, mac, csr, csrlen, &cert, &certlen, why,
		    sizeof(why)), 0);
	} else
		issue(key, mac, csr, csrlen, nb != 0 ? nb : now - 60, na != 0 ? na : now + 86400,
		    &cert, &certlen);
	assert_int_equal(keystore_install(d->ks, cert, certlen, chain, chainlen, 1), 0);
	free(csr);
	free(cert);
	assert_int_equal(keystore_tls_identity(d->ks, &d->key, &d->cert, &d->ca, &d->libctx,
	    &d->propq), 0);
}

/* The CRL our CA signs now, listing revoked (n serials of devices), valid
 * from this_update to next_update; written to the device's cache. */
static void
dev_crl(struct dev *d, struct dev **revoked, size_t n, int64_t this_update, int64_t next_update)
{
	struct ca_revoked rv[4];
	struct ca_crl_req req = { .crl_number = 1, .this_update = this_update,
		.next_update = next_update, .revoked = rv, .nrevoked = n };
	char path[400];
	uint8_t *der = NULL;
	size_t len = 0;
	FILE *f;

	assert_true(n <= 4);
	for (size_t i = 0; i < n; i++) {
		const ASN1_INTEGER *sn = X509_get0_serialNumber(revoked[i]->cert);
		memset(&rv[i], 0, sizeof(rv[i]));
		assert_int_equal(ASN1_STRING_length(sn), CA_SERIAL_LEN);
		memcpy(rv[i].serial, ASN1_STRING_get0_data(sn), CA_SERIAL_LEN);
		rv[i].revoked_at = this_update;
		rv[i].reason = 1;
	}
	assert_int_equal(ca_key_crl(test_cakey, &req, &der, &len), 0);
	snprintf(path, sizeof(path), "%s/crl.der", d->dir);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(der, 1, len, f), len);
	fclose(f);
	free(der);
	crl_cache_free(d->crl);
	d->crl = NULL;
	assert_int_equal(crl_cache_open(path, d->ca, &d->crl), 0);
}

/* The device's TLS contexts, with a fresh CRL that lists nobody unless
 * dev_crl made another. */
static void
dev_ctx(struct dev *d, int64_t grace, int timeout_ms)
{
	struct peer_params p = { .key = d->key, .cert = d->cert, .ca = d->ca,
		.libctx = d->libctx, .propq = d->propq, .crl_grace_s = grace,
		.timeout_ms = timeout_ms };

	if (d->crl == NULL)
		dev_crl(d, NULL, 0, (int64_t)time(NULL) - 60, (int64_t)time(NULL) + 3600);
	p.crl = d->crl;
	peer_ctx_free(d->pc);
	d->pc = NULL;
	assert_int_equal(peer_ctx_new(&p, &d->pc), 0);
}

static void
dev_free(struct dev *d)
{
	peer_ctx_free(d->pc);
	crl_cache_free(d->crl);
	EVP_PKEY_free(d->key);
	X509_free(d->cert);
	sk_X509_pop_free(d->ca, X509_free);
	keystore_close(d->ks);
	memset(d, 0, sizeof(*d));
}

/* ---------------------------------------------------------------------
 * Running a handshake: the responder in a thread, listening as resp_as;
 * the initiator here, showing ini_as on the air.
 */
struct result {
	int rc;
	char why[512];
	struct peer_info pi;
	uint8_t key[PEER_LINK_KEY_LEN];
	int linked;			/* the encrypted link carried a message */
};

struct responder {
	struct dev *d;
	struct radio *radio;
	struct result *res;
	int exchange;
};

static struct radio *
radio_as(const uint8_t addr[MAC_LEN])
{
	struct radio_params rp = { .backend = "sim", .sim_dir = air };
	struct radio_device self = { .cod = 0x240404, .rssi = -40 };
	struct radio *r = NULL;

	memcpy(self.addr, addr, MAC_LEN);
	assert_int_equal(radio_open(&rp, &r), 0);
	assert_int_equal(radio_listen(r, &self), 0);
	return r;
}

/* Receives one message on the encrypted link and sends it back. */
static int
echo_once(struct seclink *sl)
{
	static uint8_t buf[SECLINK_MAX_DATA];
	size_t len = 0;
	int r;

	if ((r = seclink_recv(sl, buf, sizeof(buf), &len, TIMEOUT)) != 0)
		return r;
	return seclink_send(sl, buf, len);
}

static void *
responder_main(void *arg)
{
	struct responder *rs = arg;
	struct radio_link *l = NULL;
	struct seclink *sl = NULL;
	struct seclink_io io;
	uint8_t key[PEER_LINK_KEY_LEN];
	size_t len;
	static uint8_t buf[SECLINK_MAX_DATA];

	if ((rs->res->rc = radio_accept(rs->radio, TIMEOUT, &l)) != 0)
		return NULL;
	rs->res->rc = peer_accept(rs->d->pc, l, &rs->res->pi, rs->res->key, rs->res->why,
	    sizeof(rs->res->why));
	if (rs->res->rc == 0 && rs->exchange) {
		memcpy(key, rs->res->key, sizeof(key));
		seclink_io_radio(l, &io);
		if (seclink_new(&io, 0, key, NULL, &sl) == 0 && echo_once(sl) == 0) {
			rs->res->linked = 1;
			/* until the initiator closes */
			(void)seclink_recv(sl, buf, sizeof(buf), &len, TIMEOUT);
		}
		seclink_close(sl);
	}
	radio_link_close(l);
	return NULL;
}

static void
run_pair(struct dev *ini, const uint8_t ini_as[MAC_LEN], struct dev *resp,
    const uint8_t resp_as[MAC_LEN], struct result *ri, struct result *rr, int exchange)
{
	struct responder rs = { .d = resp, .res = rr, .exchange = exchange };
	struct radio *ir = radio_as(ini_as);
	struct radio_link *l = NULL;
	struct seclink *sl = NULL;
	struct seclink_io io;
	uint8_t key[PEER_LINK_KEY_LEN];
	static uint8_t buf[SECLINK_MAX_DATA];
	size_t len = 0;
	pthread_t th;

	memset(ri, 0, sizeof(*ri));
	memset(rr, 0, sizeof(*rr));
	rs.radio = radio_as(resp_as);
	assert_int_equal(pthread_create(&th, NULL, responder_main, &rs), 0);
	assert_int_equal(radio_connect(ir, resp_as, TIMEOUT, &l), 0);
	ri->rc = peer_connect(ini->pc, l, &ri->pi, ri->key, ri->why, sizeof(ri->why));
	if (ri->rc == 0 && exchange) {
		memcpy(key, ri->key, sizeof(key));
		seclink_io_radio(l, &io);
		if (seclink_new(&io, 1, key, NULL, &sl) == 0 &&
		    seclink_send(sl, "over the link", 13) == 0 &&
		    seclink_recv(sl, buf, sizeof(buf), &len, TIMEOUT) == 0 && len == 13 &&
		    memcmp(buf, "over the link", 13) == 0)
			ri->linked = 1;
		seclink_close(sl);
	}
	radio_link_close(l);
	pthread_join(th, NULL);
	radio_close(rs.radio);
	radio_close(ir);
	print_message("initiator: %d %s\nresponder: %d %s\n", ri->rc, ri->why, rr->rc, rr->why);
}

static void
results_clear(struct result *a, struct result *b)
{
	peer_info_clear(&a->pi);
	peer_info_clear(&b->pi);
}

/* ---------------------------------------------------------------------
 * A peer that is not a device: raw bytes, then silence.
 */
struct raw {
	const uint8_t *bytes;
	size_t len;
	int hold_ms;			/* then close */
	const uint8_t *addr;		/* the address it shows (connects) */
	int serve;			/* listen at addr instead, read, say nothing */
};

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void *
raw_main(void *arg)
{
	struct raw *rw = arg;
	struct radio *r = radio_as(rw->addr);
	struct radio_link *l = NULL;
	uint8_t buf[512];
	size_t got;

	if (rw->serve) {
		if (radio_accept(r, TIMEOUT, &l) == 0)
			(void)radio_link_read_some(l, buf, sizeof(buf), &got, TIMEOUT);
		sleep_ms(rw->hold_ms);
	} else if (radio_connect(r, B, TIMEOUT, &l) == 0) {
		if (rw->len > 0)
			(void)radio_link_write(l, rw->bytes, rw->len, TIMEOUT);
		sleep_ms(rw->hold_ms);
	}
	radio_link_close(l);
	radio_close(r);
	return NULL;
}

/* ---------------------------------------------------------------------
 * Fixtures.
 */
static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
group_setup(void **state)
{
	struct ca_init_opts co = { .dir = ca2dir, .days = 30, .common_name = "Other Enterprise CA" };
	struct config *cfg2 = NULL;
	char err[256], path[400];
	X509 *x;
	FILE *f;

	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(air, sizeof(air), "%s/air", dir);
	snprintf(cadir, sizeof(cadir), "%s/ca", dir);
	snprintf(ca2dir, sizeof(ca2dir), "%s/ca2", dir);
	if (mkdir(air, 0700) != 0 || test_ca_setup(cadir) != 0)
		return -1;
	if (ca_init(&co, err, sizeof(err)) != 0 || config_defaults(&cfg2) != 0)
		return -1;
	free(cfg2->ca_dir);
	cfg2->ca_dir = strdup(ca2dir);
	if (ca_key_load(cfg2, &ca2key) != 0)
		return -1;
	config_free(cfg2);
	snprintf(path, sizeof(path), "%s/ca.crt", cadir);
	if ((f = fopen(path, "r")) == NULL || (x = PEM_read_X509(f, NULL, NULL, NULL)) == NULL)
		return -1;
	fclose(f);
	ca_der = NULL;
	ca_derlen = i2d_X509(x, &ca_der);
	X509_free(x);
	return ca_derlen > 0 ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	OPENSSL_free(ca_der);
	ca_key_free(ca2key);
	test_ca_teardown();
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* ---------------------------------------------------------------------
 * Tests.
 */
static void
test_mutual_auth(void **state)
{
	struct dev a, b;
	struct result ri, rr;
	char serial[CA_SERIAL_HEX];
	unsigned char *der = NULL;
	int len;

	(void)state;
	dev_make(&a, A, "file", NULL, NULL, 0, 0);
	dev_make(&b, B, "file", NULL, NULL, 0, 0);
	dev_ctx(&a, 0, TIMEOUT);
	dev_ctx(&b, 0, TIMEOUT);
	run_pair(&a, A, &b, B, &ri, &rr, 1);
	assert_int_equal(ri.rc, 0);
	assert_int_equal(rr.rc, 0);
	/* the same link key on both sides, never all zero */
	assert_memory_equal(ri.key, rr.key, PEER_LINK_KEY_LEN);
	assert_memory_not_equal(ri.key, (uint8_t[PEER_LINK_KEY_LEN]){ 0 }, PEER_LINK_KEY_LEN);
	/* each knows the other by its certificate */
	assert_memory_equal(ri.pi.addr, B, MAC_LEN);
	assert_memory_equal(rr.pi.addr, A, MAC_LEN);
	len = i2d_X509(b.cert, &der);
	assert_int_equal(ca_cert_serial_hex(der, (size_t)len, serial), 0);
	OPENSSL_free(der);
	assert_string_equal(ri.pi.serial, serial);
	assert_int_equal(X509_cmp(ri.pi.cert, b.cert), 0);
	assert_true(ri.pi.not_after > (int64_t)time(NULL));
	/* and the encrypted link carried a message both ways */
	assert_true(ri.linked);
	assert_true(rr.linked);
	results_clear(&ri, &rr);
	/* a second link gets another key */
	uint8_t first[PEER_LINK_KEY_LEN];
	memcpy(first, ri.key, sizeof(first));
	run_pair(&a, A, &b, B, &ri, &rr, 0);
	assert_int_equal(ri.rc, 0);
	assert_memory_not_equal(ri.key, first, PEER_LINK_KEY_LEN);
	results_clear(&ri, &rr);
	dev_free(&a);
	dev_free(&b);
}

/* A device with its own valid certificate shows another address on the
 * air: refused, both ways round. */
static void
test_spoofed_address(void **state)
{
	struct dev a, b;
	struct result ri, rr;

	(void)state;
	dev_make(&a, A, "file", NULL, NULL, 0, 0);
	dev_make(&b, B, "file", NULL, NULL, 0, 0);
	dev_ctx(&a, 0, TIMEOUT);
	dev_ctx(&b, 0, TIMEOUT);
	/* A's certificate, C's address on the air: B refuses */
	run_pair(&a, C, &b, B, &ri, &rr, 0);
	assert_int_equal(rr.rc, ERR_AUTH);
	assert_non_null(strstr(rr.why, "names 02:00:00:00:0a:01 but the link-layer peer is "
	    "02:00:00:00:0c:03"));
	assert_int_not_equal(ri.rc, 0);
	assert_non_null(strstr(ri.why, "refused this device"));
	results_clear(&ri, &rr);
	/* B answers at C's address with its own certificate: A refuses it */
	run_pair(&a, A, &b, C, &ri, &rr, 0);
	assert_int_equal(ri.rc, ERR_AUTH);
	assert_non_null(strstr(ri.why, "names 02:00:00:00:0b:02 but the link-layer peer is "
	    "02:00:00:00:0c:03"));
	assert_int_not_equal(rr.rc, 0);
	results_clear(&ri, &rr);
	dev_free(&a);
	dev_free(&b);
}

static void
test_foreign_ca(void **state)
{
	struct dev a, b;
	struct result ri, rr;

	(void)state;
	dev_make(&a, A, "file", NULL, ca2key, 0, 0);	/* trusts us, certified elsewhere */
	dev_make(&b, B, "file", NULL, NULL, 0, 0);
	dev_ctx(&a, 0, TIMEOUT);
	dev_ctx(&b, 0, TIMEOUT);
	run_pair(&a, A, &b, B, &ri, &rr, 0);
	assert_int_equal(rr.rc, ERR_AUTH);
	assert_non_null(strstr(rr.why, "not issued by this enterprise's CA"));
	assert_int_equal(ri.rc, ERR_AUTH);
	assert_non_null(strstr(ri.why, "unknown CA"));
	results_clear(&ri, &rr);
	dev_free(&a);
	dev_free(&b);
}

static void
test_expired(void **state)
{
	struct dev a, b;
	struct result ri, rr;
	int64_t now = (int64_t)time(NULL);

	(void)state;
	dev_make(&a, A, "file", NULL, NULL, now - 10 * 86400, now - 86400);
	dev_make(&b, B, "file", NULL, NULL, 0, 0);
	dev_ctx(&a, 0, TIMEOUT);
	dev_ctx(&b, 0, TIMEOUT);
	run_pair(&a, A, &b, B, &ri, &rr, 0);
	assert_int_equal(rr.rc, ERR_AUTH);
	assert_non_null(strstr(rr.why, "certificate has expired"));
	assert_int_equal(ri.rc, ERR_AUTH);
	assert_non_null(strstr(ri.why, "expired"));
	results_clear(&ri, &rr);
	/* the other way round: the expired device refuses nobody, B refuses it */
	run_pair(&b, B, &a, A, &ri, &rr, 0);
	assert_int_equal(ri.rc, ERR_AUTH);
	assert_non_null(strstr(ri.why, "certificate has expired"));
	results_clear(&ri, &rr);
	dev_free(&a);
	dev_free(&b);
}

static void
test_revoked_and_stale(void **state)
{
	struct dev a, b, c;
	struct dev *list[1];
	struct result ri, rr;
	int64_t now = (int64_t)time(NULL);

	(void)state;
	dev_make(&a, A, "file", NULL, NULL, 0, 0);
	dev_make(&b, B, "file", NULL, NULL, 0, 0);
	dev_make(&c, C, "file", NULL, NULL, 0, 0);
	dev_ctx(&a, 0, TIMEOUT);
	dev_ctx(&c, 0, TIMEOUT);
	/* fresh CRL listing A */
	list[0] = &a;
	dev_crl(&b, list, 1, now - 60, now + 3600);
	dev_ctx(&b, 0, TIMEOUT);
	run_pair(&a, A, &b, B, &ri, &rr, 0);
	assert_int_equal(rr.rc, ERR_FORBIDDEN);
	assert_non_null(strstr(rr.why, "revoked"));
	assert_int_equal(ri.rc, ERR_AUTH);
	assert_non_null(strstr(ri.why, "certificate revoked"));
	results_clear(&ri, &rr);
	/* ... and C, not listed, is taken */
	run_pair(&c, C, &b, B, &ri, &rr, 0);
	assert_int_equal(rr.rc, 0);
	results_clear(&ri, &rr);

	/* a stale CRL: nobody is taken */
	dev_crl(&b, list, 1, now - 7200, now - 3600);
	dev_ctx(&b, 0, TIMEOUT);
	run_pair(&c, C, &b, B, &ri, &rr, 0);
	assert_int_equal(rr.rc, ERR_UNAVAILABLE);
	assert_non_null(strstr(rr.why, "stale"));
	results_clear(&ri, &rr);
	/* with a grace shorter than its age, still not */
	dev_ctx(&b, 600, TIMEOUT);
	run_pair(&c, C, &b, B, &ri, &rr, 0);
	assert_int_equal(rr.rc, ERR_UNAVAILABLE);
	results_clear(&ri, &rr);
	/* with a grace that covers it, C is taken and A still refused */
	dev_ctx(&b, 7200, TIMEOUT);
	run_pair(&c, C, &b, B, &ri, &rr, 0);
	assert_int_equal(rr.rc, 0);
	results_clear(&ri, &rr);
	dev_ctx(&b, CRL_GRACE_ANY, TIMEOUT);
	run_pair(&a, A, &b, B, &ri, &rr, 0);
	assert_int_equal(rr.rc, ERR_FORBIDDEN);
	results_clear(&ri, &rr);

	/* no CRL at all: revocation cannot be checked */
	{
		struct peer_params p = { .key = b.key, .cert = b.cert, .ca = b.ca, .crl = NULL,
			.timeout_ms = TIMEOUT };
		peer_ctx_free(b.pc);
		assert_int_equal(peer_ctx_new(&p, &b.pc), 0);
	}
	run_pair(&c, C, &b, B, &ri, &rr, 0);
	assert_int_equal(rr.rc, ERR_UNAVAILABLE);
	assert_non_null(strstr(rr.why, "no CRL"));
	results_clear(&ri, &rr);
	dev_free(&a);
	dev_free(&b);
	dev_free(&c);
}

/* A CRL file that is not the enterprise's, or not a complete CRL, is not
 * used. */
static void
test_crl_cache_refuses(void **state)
{
	struct dev a;
	struct crl_cache *c = NULL;
	struct ca_crl_req req = { .crl_number = 5, .this_update = time(NULL) - 60,
		.next_update = time(NULL) + 3600 };
	char path[400], why[200];
	uint8_t *der = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	dev_make(&a, A, "file", NULL, NULL, 0, 0);
	snprintf(path, sizeof(path), "%s/other.der", a.dir);
	/* another CA's */
	assert_int_equal(ca_key_crl(ca2key, &req, &der, &len), 0);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(der, 1, len, f), len);
	fclose(f);
	free(der);
	assert_int_equal(crl_cache_open(path, a.ca, &c), 0);
	assert_int_equal(crl_cache_times(c, NULL, NULL), ERR_NOT_FOUND);
	assert_int_equal(crl_cache_check(c, a.cert, 0, why, sizeof(why)), ERR_UNAVAILABLE);
	crl_cache_free(c);
	/* a delta CRL of ours */
	req.delta_base = 4;
	assert_int_equal(ca_key_crl(test_cakey, &req, &der, &len), 0);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(der, 1, len, f), len);
	fclose(f);
	free(der);
	assert_int_equal(crl_cache_open(path, a.ca, &c), 0);
	assert_int_equal(crl_cache_times(c, NULL, NULL), ERR_NOT_FOUND);
	crl_cache_free(c);
	/* garbage, and a missing file: an empty cache */
	assert_non_null(f = fopen(path, "wb"));
	fputs("not a CRL", f);
	fclose(f);
	assert_int_equal(crl_cache_open(path, a.ca, &c), 0);
	assert_int_equal(crl_cache_times(c, NULL, NULL), ERR_NOT_FOUND);
	crl_cache_free(c);
	unlink(path);
	assert_int_equal(crl_cache_open(path, a.ca, &c), 0);
	assert_int_equal(crl_cache_check(c, a.cert, CRL_GRACE_ANY, why, sizeof(why)),
	    ERR_UNAVAILABLE);
	crl_cache_free(c);
	assert_int_equal(crl_cache_open(path, NULL, &c), ERR_INVALID);
	/* provd unreachable: the cache is kept, and said so */
	assert_int_equal(crl_cache_open(path, a.ca, &c), 0);
	assert_int_equal(crl_cache_refresh(c, "http://127.0.0.1:9", NULL, 2, why, sizeof(why)),
	    ERR_UNAVAILABLE);
	assert_non_null(strstr(why, "cannot reach provd"));
	crl_cache_free(c);
	dev_free(&a);
}

/* An impostor with a genuine certificate (copied) and a key of its own
 * whose public half it sets to the certificate's: its signature fails. */
static void
test_stolen_certificate(void **state)
{
	struct dev a, b, imp;
	struct result ri, rr;
	struct peer_params p = { 0 };
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pc = NULL;
	EVP_PKEY *forged = NULL;
	BIGNUM *priv = NULL;
	uint8_t pub[65];
	size_t publen = 0;

	(void)state;
	dev_make(&a, A, "file", NULL, NULL, 0, 0);
	dev_make(&b, B, "file", NULL, NULL, 0, 0);
	dev_ctx(&b, 0, TIMEOUT);
	assert_int_equal(EVP_PKEY_get_octet_string_param(X509_get0_pubkey(a.cert),
	    OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &publen), 1);
	assert_non_null(priv = BN_new());
	assert_int_equal(BN_rand(priv, 255, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY), 1);
	assert_non_null(bld = OSSL_PARAM_BLD_new());
	assert_int_equal(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	    "P-256", 0), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
	    publen), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv), 1);
	assert_non_null(params = OSSL_PARAM_BLD_to_param(bld));
	assert_non_null(pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL));
	assert_int_equal(EVP_PKEY_fromdata_init(pc), 1);
	assert_int_equal(EVP_PKEY_fromdata(pc, &forged, EVP_PKEY_KEYPAIR, params), 1);
	/* the impostor: A's certificate and chain, the forged key */
	memset(&imp, 0, sizeof(imp));
	p.key = forged;
	p.cert = a.cert;
	p.ca = a.ca;
	p.crl = b.crl;
	p.timeout_ms = TIMEOUT;
	assert_int_equal(peer_ctx_new(&p, &imp.pc), 0);
	run_pair(&imp, A, &b, B, &ri, &rr, 0);
	assert_int_equal(rr.rc, ERR_AUTH);
	assert_non_null(strstr(rr.why, "does not verify"));
	assert_int_not_equal(ri.rc, 0);
	results_clear(&ri, &rr);
	peer_ctx_free(imp.pc);
	EVP_PKEY_free(forged);
	EVP_PKEY_CTX_free(pc);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(priv);
	dev_free(&a);
	dev_free(&b);
}

/* A peer that stops mid-handshake, on either side; an intake attempt and
 * bytes that are not TLS. */
static void
test_silent_and_strange_peers(void **state)
{
	struct dev a, b;
	struct result rr;
	struct raw rw = { .addr = A, .hold_ms = 1500 };
	struct radio *br, *ar;
	struct radio_link *l = NULL;
	uint8_t hello[300], junk[64] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n", plk[69] = "PLK1";
	uint64_t t0;
	pthread_t th;

	(void)state;
	dev_make(&a, A, "file", NULL, NULL, 0, 0);
	dev_make(&b, B, "file", NULL, NULL, 0, 0);
	dev_ctx(&a, 0, 300);
	dev_ctx(&b, 0, 300);
	memset(hello, 0, sizeof(hello));
	hello[0] = 0x16;		/* a handshake record, started and not finished */
	hello[1] = 0x03;
	hello[2] = 0x01;
	hello[3] = 0x01;
	hello[4] = 0x00;

	static const struct {
		const uint8_t *bytes;
		size_t len;
		int code;
		const char *why;
	} cases[] = {
		{ NULL, 0, ERR_TIMEOUT, "stopped answering" },		/* nothing at all */
		{ NULL, 20, ERR_TIMEOUT, "stopped answering" },		/* part of a record */
		{ NULL, 0, ERR_CONFLICT, "intake from 02:00:00:00:0a:01 refused" },
		{ NULL, 0, ERR_INVALID, "failed" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		br = radio_as(B);
		rw.bytes = i < 2 ? hello : i == 2 ? plk : junk;
		rw.len = i == 0 ? 0 : i == 1 ? 20 : i == 2 ? sizeof(plk) : strlen((char *)junk);
		assert_int_equal(pthread_create(&th, NULL, raw_main, &rw), 0);
		memset(&rr, 0, sizeof(rr));
		assert_int_equal(radio_accept(br, TIMEOUT, &l), 0);
		t0 = now_ns();
		rr.rc = peer_accept(b.pc, l, &rr.pi, rr.key, rr.why, sizeof(rr.why));
		print_message("raw peer %zu: %d %s (%llu ms)\n", i, rr.rc, rr.why,
		    (unsigned long long)((now_ns() - t0) / 1000000));
		assert_int_equal(rr.rc, cases[i].code);
		assert_non_null(strstr(rr.why, cases[i].why));
		if (cases[i].code == ERR_TIMEOUT)
			assert_true(now_ns() - t0 < 1000000000ull);	/* the 300 ms limit */
		radio_link_close(l);
		pthread_join(th, NULL);
		radio_close(br);
	}

	/* a responder that reads the ClientHello and says nothing */
	rw.addr = B;
	rw.serve = 1;
	rw.hold_ms = 1000;
	ar = radio_as(A);
	assert_int_equal(pthread_create(&th, NULL, raw_main, &rw), 0);
	sleep_ms(100);
	assert_int_equal(radio_connect(ar, B, TIMEOUT, &l), 0);
	memset(&rr, 0, sizeof(rr));
	t0 = now_ns();
	rr.rc = peer_connect(a.pc, l, &rr.pi, rr.key, rr.why, sizeof(rr.why));
	assert_int_equal(rr.rc, ERR_TIMEOUT);
	assert_non_null(strstr(rr.why, "02:00:00:00:0b:02 stopped answering"));
	assert_true(now_ns() - t0 < 1000000000ull);
	radio_link_close(l);
	pthread_join(th, NULL);
	radio_close(ar);
	dev_free(&a);
	dev_free(&b);
}

static X509 *
cert_with(const char *san1, const char *san2, const char *serial)
{
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	char san[200];

	assert_non_null(x);
	if (serial != NULL)
		assert_int_equal(X509_NAME_add_entry_by_NID(X509_get_subject_name(x),
		    NID_serialNumber, MBSTRING_ASC, (const unsigned char *)serial, -1, -1, 0), 1);
	if (san1 != NULL) {
		snprintf(san, sizeof(san), "%s%s%s", san1, san2 ? "," : "", san2 ? san2 : "");
		X509V3_set_ctx_nodb(&v3);
		X509V3_set_ctx(&v3, NULL, x, NULL, NULL, 0);
		assert_non_null(ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san));
		assert_int_equal(X509_add_ext(x, ext, -1), 1);
		X509_EXTENSION_free(ext);
	}
	return x;
}

static void
test_cert_addr(void **state)
{
	static const struct {
		const char *san1, *san2, *serial;
		int rc;
	} cases[] = {
		{ "URI:urn:dev:mac:001a7dda7113", NULL, "00:1a:7d:da:71:13", 0 },
		{ "URI:urn:dev:mac:001a7dda7113", NULL, NULL, 0 },
		{ NULL, NULL, "00:1A:7D:DA:71:13", 0 },
		{ "URI:urn:dev:mac:001a7dda7113", "DNS:printer.example.org", NULL, 0 },
		{ "URI:urn:dev:mac:001a7dda7113", NULL, "00:1a:7d:da:71:14", ERR_INVALID },
		{ "URI:urn:dev:mac:001a7dda7113", "URI:urn:dev:mac:001a7dda7114", NULL, ERR_INVALID },
		{ "URI:urn:dev:mac:001A7DDA7113", NULL, NULL, ERR_INVALID },	/* not canonical */
		{ "URI:urn:dev:mac:001a7dda711", NULL, NULL, ERR_INVALID },
		{ "URI:urn:dev:mac:011a7dda7113", NULL, NULL, ERR_INVALID },	/* group address */
		{ "DNS:printer.example.org", NULL, NULL, ERR_INVALID },
		{ NULL, NULL, "printer", ERR_INVALID },
		{ NULL, NULL, NULL, ERR_INVALID },
	};
	const uint8_t want[MAC_LEN] = { 0x00, 0x1a, 0x7d, 0xda, 0x71, 0x13 };
	uint8_t got[MAC_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		X509 *x = cert_with(cases[i].san1, cases[i].san2, cases[i].serial);
		memset(got, 0, sizeof(got));
		print_message("case %zu\n", i);
		assert_int_equal(peer_cert_addr(x, got), cases[i].rc);
		if (cases[i].rc == 0)
			assert_memory_equal(got, want, MAC_LEN);
		X509_free(x);
	}
	assert_int_equal(peer_cert_addr(NULL, got), ERR_INVALID);
}

static void
test_bad_params(void **state)
{
	struct dev a, b;
	struct peer_params p = { 0 };
	struct peer_ctx *pc = (struct peer_ctx *)1;

	(void)state;
	dev_make(&a, A, "file", NULL, NULL, 0, 0);
	dev_make(&b, B, "file", NULL, NULL, 0, 0);
	assert_int_equal(peer_ctx_new(&p, &pc), ERR_INVALID);
	assert_null(pc);
	p.key = a.key;
	p.cert = b.cert;		/* not a's */
	p.ca = a.ca;
	assert_int_equal(peer_ctx_new(&p, &pc), ERR_INVALID);
	p.cert = a.cert;
	assert_int_equal(peer_ctx_new(&p, &pc), 0);
	peer_ctx_free(pc);
	peer_ctx_free(NULL);
	dev_free(&a);
	dev_free(&b);
}

/* ---------------------------------------------------------------------
 * tpm2: a private swtpm for the test.
 */
static int
free_port(void)
{
	for (int i = 0; i < 100; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET };
		socklen_t sl = sizeof(sa);
		int fd = socket(AF_INET, SOCK_STREAM, 0), fd2, port;

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_true(fd >= 0);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
		port = ntohs(sa.sin_port);
		sa.sin_port = htons((uint16_t)(port + 1));
		fd2 = socket(AF_INET, SOCK_STREAM, 0);
		if (port < 65535 && bind(fd2, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd2);
			close(fd);
			return port;
		}
		close(fd2);
		close(fd);
	}
	fail_msg("no two consecutive free ports");
	return -1;
}

static int
port_open(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static void
test_tpm2(void **state)
{
	char tpmdir[400], statearg[420], server[96], ctrl[96], tcti[96];
	struct dev a, b;
	struct result ri, rr;
	pid_t pid;
	int port = free_port(), st;

	(void)state;
	snprintf(tpmdir, sizeof(tpmdir), "%s/tpm", dir);
	assert_int_equal(mkdir(tpmdir, 0700), 0);
	snprintf(statearg, sizeof(statearg), "dir=%s", tpmdir);
	snprintf(server, sizeof(server), "type=tcp,port=%d,bindaddr=127.0.0.1", port);
	snprintf(ctrl, sizeof(ctrl), "type=tcp,port=%d,bindaddr=127.0.0.1", port + 1);
	char *argv[] = { "swtpm", "socket", "--tpm2", "--tpmstate", statearg, "--server", server,
		"--ctrl", ctrl, "--flags", "not-need-init,startup-clear", NULL };
	if (posix_spawnp(&pid, "swtpm", NULL, NULL, argv, environ) != 0)
		fail_msg("cannot run swtpm: the tpm2 test needs swtpm (make deps)");
	for (int i = 0; i < 500 && !port_open(port); i++)
		sleep_ms(10);
	assert_true(port_open(port));
	snprintf(tcti, sizeof(tcti), "swtpm:host=127.0.0.1,port=%d", port);

	dev_make(&a, A, "tpm2", tcti, NULL, 0, 0);
	dev_make(&b, B, "file", NULL, NULL, 0, 0);
	assert_non_null(a.libctx);	/* the stand-in key's context */
	dev_ctx(&a, 0, 10000);
	dev_ctx(&b, 0, 10000);
	/* the TPM device initiates, then answers */
	run_pair(&a, A, &b, B, &ri, &rr, 1);
	assert_int_equal(ri.rc, 0);
	assert_int_equal(rr.rc, 0);
	assert_memory_equal(ri.key, rr.key, PEER_LINK_KEY_LEN);
	assert_true(ri.linked && rr.linked);
	results_clear(&ri, &rr);
	run_pair(&b, B, &a, A, &ri, &rr, 1);
	assert_int_equal(ri.rc, 0);
	assert_int_equal(rr.rc, 0);
	assert_true(ri.linked && rr.linked);
	assert_memory_equal(rr.pi.addr, B, MAC_LEN);
	results_clear(&ri, &rr);
	/* the key never left the TPM: the stored key is the wrapped blob */
	{
		char path[400], *pem = NULL;
		size_t len = 0;
		snprintf(path, sizeof(path), "%s/id/key.pem", a.dir);
		assert_int_equal(file_read_all(path, 16384, &pem, &len), 0);
		assert_non_null(strstr(pem, "TSS2 PRIVATE KEY"));
		free(pem);
	}
	dev_free(&a);
	dev_free(&b);
	kill(pid, SIGTERM);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mutual_auth),
		cmocka_unit_test(test_spoofed_address),
		cmocka_unit_test(test_foreign_ca),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_revoked_and_stale),
		cmocka_unit_test(test_crl_cache_refuses),
		cmocka_unit_test(test_stolen_certificate),
		cmocka_unit_test(test_silent_and_strange_peers),
		cmocka_unit_test(test_cert_addr),
		cmocka_unit_test(test_bad_params),
		cmocka_unit_test(test_tpm2),
	};

	signal(SIGPIPE, SIG_IGN);
	log_init("test_peer", LOG_LVL_ERROR, 0, 0);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
