/*
 * badpeer.c: a device that misbehaves towards another device's mutual
 * authentication or encrypted link, for the fault tests. It speaks on the
 * sim air like devagent, does the one wrong thing its mode names, and
 * prints one line saying what it did and how the other side reacted.
 *
 *   badpeer --air DIR --mode MODE --to ADDR [options]
 *
 * modes:
 *   stolen-cert  presents --cert (another device's certificate, DER or PEM)
 *                with a key of its own whose public half is the
 *                certificate's; shows the certificate's address on the air
 *   spoof        the identity of --state (a devagent directory), showing
 *                --as on the air
 *   stall        connects as --as, sends --bytes bytes of a TLS record and
 *                goes silent for --hold seconds
 *   serve-stall  answers at --as, reads the ClientHello, says nothing for
 *                --hold seconds (--to is not used)
 *   tamper       authenticates as --state, sends one message and reads the
 *                echo, then sends one with a bit flipped in its sealed part
 *   replay       the same, but sends a frame it already sent once more
 * --chain and --crl (the enterprise CA chain, PEM, and a CRL, DER) are what
 * its own side of the handshake checks the other device against.
 *
 * Exit status 0 when the other side reacted as a correct device must
 * (refused the handshake, closed the link), 1 when it did not, 2 on bad
 * arguments or when it could not get as far as its misbehaviour.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "device/device.h"

struct opts {
	const char *air, *mode, *cert, *chain, *crl, *state;
	uint8_t to[MAC_LEN], as[MAC_LEN];
	int have_to, have_as;
	int64_t bytes, hold_s, timeout_s;
};

/* An io over the radio link that can alter or repeat what it sends. */
struct tap {
	struct radio_link *l;
	int flip_next;
	uint8_t last[SECLINK_MAX_FRAME];
	size_t lastlen;
};

static int
tap_write(void *arg, const void *buf, size_t len, int timeout_ms)
{
	static uint8_t copy[SECLINK_MAX_FRAME];
	struct tap *t = arg;

	if (len > sizeof(copy))
		return ERR_TOO_BIG;
	memcpy(copy, buf, len);
	if (t->flip_next && len > SECLINK_HDR_LEN + 1) {
		copy[SECLINK_HDR_LEN + 1] ^= 0x01;	/* the first sealed data byte */
		t->flip_next = 0;
	} else {
		memcpy(t->last, buf, len);
		t->lastlen = len;
	}
	return radio_link_write(t->l, copy, len, timeout_ms);
}

static int
tap_read_some(void *arg, void *buf, size_t len, size_t *got, int timeout_ms)
{
	struct tap *t = arg;

	return radio_link_read_some(t->l, buf, len, got, timeout_ms);
}

/* ---------------------------------------------------------------------
 * Identities.
 */
static X509 *
read_cert(const char *path)
{
	X509 *x = NULL;
	BIO *b = BIO_new_file(path, "rb");

	if (b == NULL)
		return NULL;
	if ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
		(void)BIO_reset(b);
		x = d2i_X509_bio(b, NULL);
	}
	BIO_free(b);
	ERR_clear_error();
	return x;
}

static STACK_OF(X509) *
read_chain(const char *path)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b = BIO_new_file(path, "r");
	X509 *x;

	if (sk == NULL || b == NULL) {
		sk_X509_free(sk);
		BIO_free(b);
		return NULL;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		sk_X509_push(sk, x);
	ERR_clear_error();
	BIO_free(b);
	return sk;
}

/* A P-256 key whose public point is pub's and whose private scalar is
 * random: it passes every check that compares public keys, and signs
 * nothing that verifies. */
static EVP_PKEY *
forged_key(EVP_PKEY *pub)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pc = NULL;
	EVP_PKEY *k = NULL;
	BIGNUM *priv = BN_new();
	uint8_t point[65];
	size_t len = 0;

	if (bld != NULL && priv != NULL &&
	    EVP_PKEY_get_octet_string_param(pub, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point),
	    &len) == 1 &&
	    BN_rand(priv, 255, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) == 1 &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, len) == 1 &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) == 1 &&
	    (params = OSSL_PARAM_BLD_to_param(bld)) != NULL &&
	    (pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) != NULL &&
	    EVP_PKEY_fromdata_init(pc) == 1)
		(void)EVP_PKEY_fromdata(pc, &k, EVP_PKEY_KEYPAIR, params);
	EVP_PKEY_CTX_free(pc);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_clear_free(priv);
	return k;
}

/* ---------------------------------------------------------------------
 * The air.
 */
static struct radio *
radio_as(const char *air, const uint8_t addr[MAC_LEN])
{
	struct radio_params rp = { .backend = "sim", .sim_dir = air };
	struct radio_device self = { .cod = 0x240404, .rssi = -45 };
	struct radio *r = NULL;

	memcpy(self.addr, addr, MAC_LEN);
	snprintf(self.name, sizeof(self.name), "badpeer");
	if (radio_open(&rp, &r) != 0 || radio_listen(r, &self) != 0) {
		radio_close(r);
		return NULL;
	}
	return r;
}

/* Waits up to hold_s for the other side to close the link: 1 when it did. */
static int
closed_by_peer(struct radio_link *l, int64_t hold_s)
{
	uint8_t buf[4096];
	uint64_t end = now_ns() + (uint64_t)hold_s * 1000000000ull;
	size_t got;

	while (now_ns() < end) {
		int r = radio_link_read_some(l, buf, sizeof(buf), &got,
		    (int)((end - now_ns()) / 1000000u) + 1);
		if (r == ERR_IO)
			return 1;
		if (r != 0)
			return 0;
	}
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: badpeer --air DIR --mode MODE --to ADDR [--as ADDR] "
	    "[--cert FILE] [--state DIR] [--chain FILE] [--crl FILE] [--bytes N] "
	    "[--hold SECONDS] [--timeout SECONDS]\n");
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "air", required_argument, NULL, 'a' },
		{ "mode", required_argument, NULL, 'm' },
		{ "to", required_argument, NULL, 't' },
		{ "as", required_argument, NULL, 's' },
		{ "cert", required_argument, NULL, 'c' },
		{ "chain", required_argument, NULL, 'C' },
		{ "crl", required_argument, NULL, 'r' },
		{ "state", required_argument, NULL, 'S' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "hold", required_argument, NULL, 'h' },
		{ "timeout", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	static uint8_t buf[SECLINK_MAX_DATA];
	struct opts o = { .bytes = 20, .hold_s = 5, .timeout_s = 10 };
	struct peer_params pp = { .crl_grace_s = CRL_GRACE_ANY };
	struct peer_info pi = { 0 };
	struct agent *ag = NULL;
	struct crl_cache *crl = NULL;
	struct peer_ctx *pc = NULL;
	struct radio *radio = NULL;
	struct radio_link *l = NULL;
	struct seclink *sl = NULL;
	struct seclink_io io;
	struct tap tap = { 0 };
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *chain = NULL;
	uint8_t lk[PEER_LINK_KEY_LEN];
	char why[512], to[MAC_STR_LEN];
	size_t len;
	int c, r, rc = 2;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'a': o.air = optarg; break;
		case 'm': o.mode = optarg; break;
		case 't': o.have_to = mac_parse(optarg, o.to) == 0; break;
		case 's': o.have_as = mac_parse(optarg, o.as) == 0; break;
		case 'c': o.cert = optarg; break;
		case 'C': o.chain = optarg; break;
		case 'r': o.crl = optarg; break;
		case 'S': o.state = optarg; break;
		case 'b':
			if (parse_int64(optarg, 1, 4096, &o.bytes) != 0)
				goto bad;
			break;
		case 'h':
			if (parse_int64(optarg, 1, 600, &o.hold_s) != 0)
				goto bad;
			break;
		case 'T':
			if (parse_int64(optarg, 1, 600, &o.timeout_s) != 0)
				goto bad;
			break;
		default:
			goto bad;
		}
	}
	if (o.air == NULL || o.mode == NULL || optind != argc)
		goto bad;
	signal(SIGPIPE, SIG_IGN);
	log_init("badpeer", LOG_LVL_ERROR, 0, 0);
	mac_format(o.to, to);

	/* the raw modes */
	if (strcmp(o.mode, "stall") == 0 || strcmp(o.mode, "serve-stall") == 0) {
		uint8_t rec[4096] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 };
		int serve = o.mode[0] == 's' && o.mode[1] == 'e';
		if (!o.have_as || (!serve && !o.have_to) || (radio = radio_as(o.air, o.as)) == NULL)
			goto bad;
		if (serve) {
			if (radio_accept(radio, (int)o.timeout_s * 1000, &l) != 0) {
				printf("badpeer: nobody connected\n");
				goto out;
			}
			(void)radio_link_read_some(l, rec, sizeof(rec), &len, (int)o.timeout_s * 1000);
			printf("badpeer: read a ClientHello and said nothing for %lld s\n",
			    (long long)o.hold_s);
			fflush(stdout);
			rc = closed_by_peer(l, o.hold_s) ? 0 : 1;
			printf("badpeer: %s\n", rc == 0 ? "the initiator gave up and closed the link" :
			    "the link stayed open");
			goto out;
		}
		if (radio_connect(radio, o.to, (int)o.timeout_s * 1000, &l) != 0 ||
		    radio_link_write(l, rec, (size_t)o.bytes, (int)o.timeout_s * 1000) != 0) {
			printf("badpeer: cannot reach %s\n", to);
			goto out;
		}
		printf("badpeer: sent %lld bytes of a handshake to %s and went silent\n",
		    (long long)o.bytes, to);
		fflush(stdout);
		rc = closed_by_peer(l, o.hold_s) ? 0 : 1;
		printf("badpeer: %s\n", rc == 0 ? "the responder gave up and closed the link" :
		    "the link stayed open");
		goto out;
	}

	/* the modes that authenticate: an identity, a trust chain, a CRL */
	if (strcmp(o.mode, "stolen-cert") == 0) {
		if (o.cert == NULL || o.chain == NULL || (cert = read_cert(o.cert)) == NULL ||
		    (key = forged_key(X509_get0_pubkey(cert))) == NULL ||
		    (chain = read_chain(o.chain)) == NULL) {
			fprintf(stderr, "badpeer: cannot read --cert or --chain\n");
			goto out;
		}
		if (!o.have_as && peer_cert_addr(cert, o.as) == 0)
			o.have_as = 1;
	} else if (strcmp(o.mode, "spoof") == 0 || strcmp(o.mode, "tamper") == 0 ||
	    strcmp(o.mode, "replay") == 0) {
		OSSL_LIB_CTX *lc;
		const char *pq;
		if (o.state == NULL || agent_open(o.state, &ag) != 0 ||
		    keystore_tls_identity(agent_keystore(ag), &key, &cert, &chain, &lc, &pq) != 0) {
			fprintf(stderr, "badpeer: cannot use the identity in --state\n");
			goto out;
		}
		pp.libctx = lc;
		pp.propq = pq;
		if (!o.have_as) {
			memcpy(o.as, agent_profile(ag)->addr, MAC_LEN);
			o.have_as = 1;
		}
	} else
		goto bad;
	if (!o.have_to || !o.have_as || o.crl == NULL)
		goto bad;
	if (crl_cache_open(o.crl, chain, &crl) != 0)
		goto out;
	pp.key = key;
	pp.cert = cert;
	pp.ca = chain;
	pp.crl = crl;
	pp.timeout_ms = (int)o.timeout_s * 1000;
	if ((r = peer_ctx_new(&pp, &pc)) != 0) {
		fprintf(stderr, "badpeer: cannot set up TLS: %s\n", provd_strerror(r));
		goto out;
	}
	if ((radio = radio_as(o.air, o.as)) == NULL ||
	    radio_connect(radio, o.to, (int)o.timeout_s * 1000, &l) != 0) {
		printf("badpeer: cannot reach %s\n", to);
		goto out;
	}
	r = peer_connect(pc, l, &pi, lk, why, sizeof(why));
	if (strcmp(o.mode, "stolen-cert") == 0 || strcmp(o.mode, "spoof") == 0) {
		if (r == 0) {
			OPENSSL_cleanse(lk, sizeof(lk));
			printf("badpeer: %s took the handshake\n", to);
			rc = 1;
		} else {
			printf("badpeer: refused: %s\n", why);
			rc = 0;
		}
		goto out;
	}
	if (r != 0) {
		printf("badpeer: could not authenticate: %s\n", why);
		goto out;
	}
	tap.l = l;
	io.write = tap_write;
	io.read_some = tap_read_some;
	io.arg = &tap;
	if (seclink_new(&io, 1, lk, NULL, &sl) != 0 ||
	    seclink_send(sl, "genuine", 7) != 0 ||
	    seclink_recv(sl, buf, sizeof(buf), &len, (int)o.timeout_s * 1000) != 0) {
		printf("badpeer: the first message was not echoed\n");
		goto out;
	}
	if (strcmp(o.mode, "tamper") == 0) {
		tap.flip_next = 1;
		(void)seclink_send(sl, "altered", 7);
		printf("badpeer: sent a frame with one bit flipped\n");
	} else {
		(void)radio_link_write(l, tap.last, tap.lastlen, (int)o.timeout_s * 1000);
		printf("badpeer: sent a frame again\n");
	}
	fflush(stdout);
	rc = closed_by_peer(l, o.hold_s) ? 0 : 1;
	printf("badpeer: %s\n", rc == 0 ? "the other side closed the link" :
	    "the link stayed open");
	goto out;
bad:
	usage();
	rc = 2;
out:
	seclink_close(sl);	/* its CLOSE finds the link closed, or ends it */
	radio_link_close(l);
	peer_info_clear(&pi);
	peer_ctx_free(pc);
	crl_cache_free(crl);
	EVP_PKEY_free(key);
	X509_free(cert);
	sk_X509_pop_free(chain, X509_free);
	agent_close(ag);
	radio_close(radio);
	return rc;
}
