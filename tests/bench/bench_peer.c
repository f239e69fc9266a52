/*
 * bench_peer.c: device-to-device mutual authentication over the sim air,
 * as the device library does it: pairs of simulated devices (file
 * keystore, certificates from a CA made in the benchmark directory, a
 * cached CRL) authenticate, key the encrypted link and close it, over and
 * over; then one live link carries request/echo round trips while its key
 * changes every few hundred frames. Prints "bench: NAME VALUE UNIT":
 *
 *   mutual_auth_per_s     completed mutual authentications per second:
 *                         both certificates checked (chain, dates, CRL,
 *                         address), link key exported, link keyed and closed
 *   mutual_auth_p50_ms    one of them, connect to link keyed
 *   mutual_auth_cpu_ms    CPU time (user + system, both devices) per one
 *   rekey_latency_ms      a key change, from REKEY sent to its answer taken
 *                         (median)
 *   rekey_pause_ms        how much longer a round trip that spans a key
 *                         change takes than the median round trip (median
 *                         over all changes); traffic does not stop
 *   rekey_pause_max_ms    the same, the worst change
 *   link_rtt_us           the median round trip on the link
 *   link_rekeys           key changes in the run
 *
 * usage: bench_peer --dir DIR [--seconds 10] [--pairs 1] [--rekey-seconds 3]
 * (--rekey-seconds 0: no key-change run)
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "common/common.h"
#include "device/device.h"

#define MAX_PAIRS 16
#define MAX_SAMPLES (1u << 20)
#define TIMEOUT 10000

struct dev {
	char dir[512];
	uint8_t addr[MAC_LEN];
	struct keystore *ks;
	EVP_PKEY *key;
	X509 *cert;
	STACK_OF(X509) *ca;
	struct crl_cache *crl;
	struct peer_ctx *pc;
	struct radio *radio;
};

static const char *g_dir;
static char g_air[600];
static int g_seconds = 10, g_pairs = 1, g_rekey_seconds = 3;
static struct ca_key *g_cakey;
static uint8_t *g_ca_der;
static int g_ca_len;
static _Atomic uint64_t g_deadline;
static atomic_uint g_done, g_errors, g_nlat;
static atomic_int g_stop;
static uint32_t *g_lat_us;

static void
die(const char *what)
{
	fprintf(stderr, "bench_peer: %s\n", what);
	exit(1);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* ---------------------------------------------------------------------
 * A CA and devices enrolled from it directly (no provd): the library's
 * keystore, CSR and install, the CA's signing core.
 */
static void
ca_setup(void)
{
	struct ca_init_opts co = { .days = 30 };
	struct config *cfg = NULL;
	char cadir[600], err[256], path[700];
	X509 *x;
	FILE *f;

	snprintf(cadir, sizeof(cadir), "%s/ca", g_dir);
	co.dir = cadir;
	if (ca_init(&co, err, sizeof(err)) != 0 || config_defaults(&cfg) != 0)
		die(err);
	free(cfg->ca_dir);
	cfg->ca_dir = strdup(cadir);
	if (ca_key_load(cfg, &g_cakey) != 0)
		die("cannot load the CA");
	config_free(cfg);
	snprintf(path, sizeof(path), "%s/ca.crt", cadir);
	if ((f = fopen(path, "r")) == NULL || (x = PEM_read_X509(f, NULL, NULL, NULL)) == NULL)
		die("cannot read the CA certificate");
	fclose(f);
	g_ca_der = NULL;
	if ((g_ca_len = i2d_X509(x, &g_ca_der)) <= 0)
		die("cannot encode the CA certificate");
	X509_free(x);
}

static void
dev_make(struct dev *d, int n)
{
	struct keystore_params kp = { .kind = "file" };
	struct ca_policy pol = { .max_csr = 8192 };
	struct ca_issue_req req = { 0 };
	struct ca_crl_req crq = { .crl_number = 1 };
	struct peer_params pp = { .timeout_ms = TIMEOUT };
	struct radio_params rp = { .backend = "sim", .sim_dir = g_air };
	struct radio_device self = { .cod = 0x240404, .rssi = -40 };
	const uint8_t *chain[1] = { g_ca_der };
	size_t chainlen[1] = { (size_t)g_ca_len }, csrlen, certlen, spkilen, crllen;
	uint8_t *csr = NULL, *cert = NULL, *spki = NULL, *crl = NULL;
	OSSL_LIB_CTX *lc;
	const char *pq;
	char why[256], path[700];
	FILE *f;

	snprintf(d->dir, sizeof(d->dir), "%s/dev%d", g_dir, n);
	d->addr[0] = 0x02;
	d->addr[4] = (uint8_t)(n >> 8);
	d->addr[5] = (uint8_t)n;
	kp.dir = d->dir;
	if (keystore_open(&kp, &d->ks) != 0 || keystore_generate(d->ks, d->addr, &csr, &csrlen) != 0 ||
	    ca_csr_check(csr, csrlen, &pol, &spki, &spkilen, why, sizeof(why)) != 0)
		die("cannot make a device key");
	memcpy(req.mac, d->addr, MAC_LEN);
	ca_serial_new(req.serial);
	req.not_before = (int64_t)time(NULL) - 60;
	req.not_after = (int64_t)time(NULL) + 86400;
	req.spki = spki;
	req.spkilen = spkilen;
	if (ca_key_issue(g_cakey, &req, &cert, &certlen) != 0 ||
	    keystore_install(d->ks, cert, certlen, chain, chainlen, 1) != 0 ||
	    keystore_tls_identity(d->ks, &d->key, &d->cert, &d->ca, &lc, &pq) != 0)
		die("cannot install a device identity");
	crq.this_update = (int64_t)time(NULL) - 60;
	crq.next_update = (int64_t)time(NULL) + 3600;
	snprintf(path, sizeof(path), "%s/crl.der", d->dir);
	if (ca_key_crl(g_cakey, &crq, &crl, &crllen) != 0 || (f = fopen(path, "wb")) == NULL ||
	    fwrite(crl, 1, crllen, f) != crllen || fclose(f) != 0 ||
	    crl_cache_open(path, d->ca, &d->crl) != 0)
		die("cannot make the CRL");
	pp.key = d->key;
	pp.cert = d->cert;
	pp.ca = d->ca;
	pp.libctx = lc;
	pp.propq = pq;
	pp.crl = d->crl;
	if (peer_ctx_new(&pp, &d->pc) != 0)
		die("cannot set up mutual authentication");
	memcpy(self.addr, d->addr, MAC_LEN);
	if (radio_open(&rp, &d->radio) != 0 || radio_listen(d->radio, &self) != 0)
		die("cannot put a device on the air");
	free(csr);
	free(cert);
	free(spki);
	free(crl);
}

static void
dev_free(struct dev *d)
{
	radio_close(d->radio);
	peer_ctx_free(d->pc);
	crl_cache_free(d->crl);
	EVP_PKEY_free(d->key);
	X509_free(d->cert);
	sk_X509_pop_free(d->ca, X509_free);
	keystore_close(d->ks);
}

/* ---------------------------------------------------------------------
 * Mutual authentications, one pair at a time per thread pair.
 */
struct pair {
	struct dev *ini, *resp;
	struct seclink_opts lo;
};

static void *
responder_main(void *arg)
{
	struct pair *p = arg;
	static _Thread_local uint8_t buf[SECLINK_MAX_DATA];

	while (!atomic_load(&g_stop)) {
		struct radio_link *l = NULL;
		struct peer_info pi;
		struct seclink *sl = NULL;
		struct seclink_io io;
		uint8_t key[PEER_LINK_KEY_LEN];
		char why[256];
		size_t len;

		if (radio_accept(p->resp->radio, 200, &l) != 0)
			continue;
		if (peer_accept(p->resp->pc, l, &pi, key, why, sizeof(why)) == 0) {
			seclink_io_radio(l, &io);
			if (seclink_new(&io, 0, key, &p->lo, &sl) == 0) {
				/* echo until the initiator closes */
				while (seclink_recv(sl, buf, sizeof(buf), &len, TIMEOUT) == 0 &&
				    seclink_send(sl, buf, len) == 0)
					;
			}
			seclink_close(sl);
			peer_info_clear(&pi);
		} else
			atomic_fetch_add(&g_errors, 1);
		radio_link_close(l);
	}
	return NULL;
}

static void *
initiator_main(void *arg)
{
	struct pair *p = arg;

	while (now_ns() < atomic_load(&g_deadline)) {
		struct radio_link *l = NULL;
		struct peer_info pi;
		struct seclink *sl = NULL;
		struct seclink_io io;
		uint8_t key[PEER_LINK_KEY_LEN];
		char why[256];
		uint64_t t0 = now_ns();

		if (radio_connect(p->ini->radio, p->resp->addr, TIMEOUT, &l) != 0 ||
		    peer_connect(p->ini->pc, l, &pi, key, why, sizeof(why)) != 0) {
			atomic_fetch_add(&g_errors, 1);
			radio_link_close(l);
			continue;
		}
		seclink_io_radio(l, &io);
		if (seclink_new(&io, 1, key, &p->lo, &sl) == 0) {
			unsigned i = atomic_fetch_add(&g_nlat, 1);
			if (i < MAX_SAMPLES)
				g_lat_us[i] = (uint32_t)((now_ns() - t0) / 1000);
			atomic_fetch_add(&g_done, 1);
		} else
			atomic_fetch_add(&g_errors, 1);
		seclink_close(sl);
		peer_info_clear(&pi);
		radio_link_close(l);
	}
	return NULL;
}

static double
cpu_s(const struct rusage *ru)
{
	return (double)ru->ru_utime.tv_sec + ru->ru_utime.tv_usec / 1e6 +
	    (double)ru->ru_stime.tv_sec + ru->ru_stime.tv_usec / 1e6;
}

static void
run_auth(struct dev *devs)
{
	struct rusage ru0, ru1;
	pthread_t ti[MAX_PAIRS], tr[MAX_PAIRS];
	struct pair pairs[MAX_PAIRS];
	uint64_t t0, t1;
	unsigned n;

	atomic_store(&g_done, 0);
	atomic_store(&g_errors, 0);
	atomic_store(&g_nlat, 0);
	atomic_store(&g_stop, 0);
	getrusage(RUSAGE_SELF, &ru0);
	t0 = now_ns();
	atomic_store(&g_deadline, t0 + (uint64_t)g_seconds * 1000000000ull);
	for (int i = 0; i < g_pairs; i++) {
		pairs[i].ini = &devs[2 * i];
		pairs[i].resp = &devs[2 * i + 1];
		memset(&pairs[i].lo, 0, sizeof(pairs[i].lo));
		if (pthread_create(&tr[i], NULL, responder_main, &pairs[i]) != 0 ||
		    pthread_create(&ti[i], NULL, initiator_main, &pairs[i]) != 0)
			die("pthread_create");
	}
	for (int i = 0; i < g_pairs; i++)
		pthread_join(ti[i], NULL);
	t1 = now_ns();
	atomic_store(&g_stop, 1);
	for (int i = 0; i < g_pairs; i++)
		pthread_join(tr[i], NULL);
	getrusage(RUSAGE_SELF, &ru1);
	n = atomic_load(&g_nlat);
	if (n > MAX_SAMPLES)
		n = MAX_SAMPLES;
	qsort(g_lat_us, n, sizeof(*g_lat_us), cmp_u32);
	printf("bench: mutual_auth_per_s %.0f /s\n",
	    (double)atomic_load(&g_done) / ((double)(t1 - t0) / 1e9));
	if (n > 0)
		printf("bench: mutual_auth_p50_ms %.2f ms\n", g_lat_us[n / 2] / 1000.0);
	if (atomic_load(&g_done) > 0)
		printf("bench: mutual_auth_cpu_ms %.3f ms\n", (cpu_s(&ru1) - cpu_s(&ru0)) * 1000.0 /
		    atomic_load(&g_done));
	if (atomic_load(&g_errors) > 0)
		printf("bench: mutual_auth_errors %u count\n", atomic_load(&g_errors));
	fflush(stdout);
}

/* ---------------------------------------------------------------------
 * A key change on a live link: round trips, the key changing every 200
 * frames.
 */
static void
run_rekey(struct dev *devs)
{
	static uint8_t buf[SECLINK_MAX_DATA];
	struct pair p = { .ini = &devs[0], .resp = &devs[1],
		.lo = { .rekey_after_frames = 200 } };
	struct radio_link *l = NULL;
	struct peer_info pi;
	struct seclink *sl = NULL;
	struct seclink_io io;
	struct seclink_stats st;
	uint8_t key[PEER_LINK_KEY_LEN], msg[64];
	uint32_t *rtt, *pause, *lat;
	size_t nrtt = 0, npause = 0, nlat = 0, len, cap = 1u << 20;
	unsigned epoch = 0;
	uint64_t last_us = 0;
	char why[256];
	uint64_t end, t0;
	pthread_t tr;

	if ((rtt = malloc(cap * sizeof(*rtt))) == NULL || (pause = malloc(cap * sizeof(*pause))) ==
	    NULL || (lat = malloc(cap * sizeof(*lat))) == NULL)
		die("out of memory");
	atomic_store(&g_stop, 0);
	if (pthread_create(&tr, NULL, responder_main, &p) != 0)
		die("pthread_create");
	if (radio_connect(p.ini->radio, p.resp->addr, TIMEOUT, &l) != 0 ||
	    peer_connect(p.ini->pc, l, &pi, key, why, sizeof(why)) != 0)
		die("cannot open the link");
	seclink_io_radio(l, &io);
	if (seclink_new(&io, 1, key, &p.lo, &sl) != 0)
		die("cannot key the link");
	/* the round trips: which of them spanned a key change of either side */
	end = now_ns() + (uint64_t)g_rekey_seconds * 1000000000ull;
	while (now_ns() < end && nrtt < cap) {
		int n = snprintf((char *)msg, sizeof(msg), "round trip %zu", nrtt);
		t0 = now_ns();
		if (seclink_send(sl, msg, (size_t)n) != 0 ||
		    seclink_recv(sl, buf, sizeof(buf), &len, TIMEOUT) != 0 ||
		    len != (size_t)n || memcmp(buf, msg, len) != 0)
			die("the link failed across a key change");
		rtt[nrtt] = (uint32_t)((now_ns() - t0) / 1000);
		seclink_stats(sl, &st);
		if (st.epoch != epoch) {
			pause[npause++] = rtt[nrtt];
			epoch = st.epoch;
		}
		if (st.rekey_last_us != last_us) {	/* a change this side started */
			lat[nlat++] = (uint32_t)st.rekey_last_us;
			last_us = st.rekey_last_us;
		}
		nrtt++;
	}
	seclink_close(sl);
	peer_info_clear(&pi);
	radio_link_close(l);
	atomic_store(&g_stop, 1);
	pthread_join(tr, NULL);

	qsort(rtt, nrtt, sizeof(*rtt), cmp_u32);
	qsort(pause, npause, sizeof(*pause), cmp_u32);
	qsort(lat, nlat, sizeof(*lat), cmp_u32);
	{
		double med = nrtt ? rtt[nrtt / 2] : 0;
		double p50 = npause ? pause[npause / 2] - med : 0;
		double pmax = npause ? pause[npause - 1] - med : 0;
		printf("bench: rekey_latency_ms %.3f ms\n", nlat ? lat[nlat / 2] / 1000.0 : 0.0);
		printf("bench: rekey_pause_ms %.3f ms\n", (p50 > 0 ? p50 : 0) / 1000.0);
		printf("bench: rekey_pause_max_ms %.3f ms\n", (pmax > 0 ? pmax : 0) / 1000.0);
		printf("bench: link_rtt_us %.0f us\n", med);
		printf("bench: link_rekeys %zu count\n", npause);
	}
	free(rtt);
	free(pause);
	free(lat);
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "seconds", required_argument, NULL, 's' },
		{ "pairs", required_argument, NULL, 'p' },
		{ "rekey-seconds", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct dev devs[2 * MAX_PAIRS];
	int64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'd': g_dir = optarg; break;
		case 's':
			if (parse_int64(optarg, 1, 3600, &v) != 0)
				die("--seconds is 1..3600");
			g_seconds = (int)v;
			break;
		case 'p':
			if (parse_int64(optarg, 1, MAX_PAIRS, &v) != 0)
				die("--pairs is 1..16");
			g_pairs = (int)v;
			break;
		case 'r':
			if (parse_int64(optarg, 0, 600, &v) != 0)
				die("--rekey-seconds is 0..600");
			g_rekey_seconds = (int)v;
			break;
		default:
			die("usage: bench_peer --dir DIR [--seconds N] [--pairs N] [--rekey-seconds N]");
		}
	}
	if (g_dir == NULL)
		die("--dir is needed");
	log_init("bench_peer", LOG_LVL_ERROR, 0, 0);
	if ((g_lat_us = calloc(MAX_SAMPLES, sizeof(*g_lat_us))) == NULL)
		die("out of memory");
	snprintf(g_air, sizeof(g_air), "%s/air", g_dir);
	if (mkdir(g_air, 0700) != 0)
		die("cannot make the air directory");
	ca_setup();
	for (int i = 0; i < 2 * g_pairs; i++)
		dev_make(&devs[i], i + 1);
	run_auth(devs);
	if (g_rekey_seconds > 0)
		run_rekey(devs);
	for (int i = 0; i < 2 * g_pairs; i++)
		dev_free(&devs[i]);
	ca_key_free(g_cakey);
	OPENSSL_free(g_ca_der);
	free(g_lat_us);
	return 0;
}
