/*
 * bench_issue.c: issuance throughput through the HTTP API with N concurrent
 * keep-alive clients, next to the two bounds that matter measured in the
 * same run — raw ECDSA P-256 signing on one core (the signer process is one
 * process) and plain 1 KB single-row INSERTs into the same PostgreSQL.
 * Prints "bench: NAME VALUE UNIT" lines.
 *
 * usage: bench_issue --url URL --token-file FILE --conninfo CONNINFO
 *                    [--clients 16] [--seconds 10] [--prefix NAME_] [--issue-only]
 * --prefix goes before every figure name (tpm_ca_issue_per_s); --issue-only
 * leaves out the signing and INSERT bounds; --mac-in-csr makes a CSR for
 * every request whose subject serialNumber is the request's address (an
 * external CA builds its certificate from it).
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/common.h"

#define NKEYS 32
#define MAX_SAMPLES (4u << 20)

static const char *g_url, *g_conninfo;
static char *g_token;
static int g_clients = 16, g_seconds = 10;
static char *g_csr[NKEYS];
static atomic_uint g_next_mac;
static atomic_uint g_errors;
static uint32_t *g_lat_us;
static atomic_uint g_nlat;
static uint64_t g_deadline;

static size_t
discard(char *p, size_t s, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return s * n;
}

static int g_mac_in_csr;		/* --mac-in-csr: a CSR per request naming its MAC */

/* A P-256 CSR; subject serialNumber = mac when mac is not NULL (what an
 * external CA builds the certificate from), else CN=bench. */
static char *
make_csr(const char *mac)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509_REQ *req = X509_REQ_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *pem = NULL, *data;
	long len;

	if (k == NULL || req == NULL || b == NULL)
		goto out;
	X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), mac ? "serialNumber" : "CN",
	    MBSTRING_ASC, (const unsigned char *)(mac ? mac : "bench"), -1, -1, 0);
	X509_REQ_set_pubkey(req, k);
	if (!X509_REQ_sign(req, k, EVP_sha256()) || !PEM_write_bio_X509_REQ(b, req))
		goto out;
	len = BIO_get_mem_data(b, &data);
	pem = strndup(data, (size_t)len);
out:
	BIO_free(b);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
	return pem;
}

static void *
client(void *arg)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = NULL;
	char auth[256], url[512];
	long status = 0;
	(void)arg;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", g_token);
	snprintf(url, sizeof(url), "%s/v1/certificates", g_url);
	hdr = curl_slist_append(hdr, auth);
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	while (now_ns() < g_deadline) {
		unsigned n = atomic_fetch_add(&g_next_mac, 1);
		uint8_t mac[MAC_LEN] = { 0x02, 0xbe, (uint8_t)(n >> 24), (uint8_t)(n >> 16),
			(uint8_t)(n >> 8), (uint8_t)n };
		char ms[MAC_STR_LEN];
		mac_format(mac, ms);
		char *own = g_mac_in_csr ? make_csr(ms) : NULL;
		json_t *j = json_pack("{s:s,s:s,s:s,s:[s]}", "mac", ms, "csr",
		    own != NULL ? own : g_csr[n % NKEYS], "owner", "bench", "groups", "load");
		char *body = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		free(own);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		uint64_t t0 = now_ns();
		CURLcode cr = curl_easy_perform(h);
		uint64_t us = (now_ns() - t0) / 1000;
		free(body);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		if (cr != CURLE_OK || status != 201) {
			if (atomic_fetch_add(&g_errors, 1) < 5)
				fprintf(stderr, "bench_issue: request failed: %s, HTTP %ld\n",
				    curl_easy_strerror(cr), status);
			continue;
		}
		unsigned i = atomic_fetch_add(&g_nlat, 1);
		if (i < MAX_SAMPLES)
			g_lat_us[i] = (uint32_t)us;
	}
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Raw P-256 ECDSA signatures per second on one thread (SHA-256 of a
 * certificate-sized message, as the signer does). */
static double
bench_sign(double seconds)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	unsigned char msg[600], sig[80];
	uint64_t t0 = now_ns(), n = 0;

	memset(msg, 0x5a, sizeof(msg));
	while (now_ns() - t0 < (uint64_t)(seconds * 1e9)) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		size_t siglen = sizeof(sig);
		if (!EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k) ||
		    !EVP_DigestSign(ctx, sig, &siglen, msg, sizeof(msg))) {
			EVP_MD_CTX_free(ctx);
			break;
		}
		EVP_MD_CTX_free(ctx);
		n++;
	}
	EVP_PKEY_free(k);
	return (double)n / ((double)(now_ns() - t0) / 1e9);
}

static atomic_ullong g_inserts;

static void *
inserter(void *arg)
{
	PGconn *c = PQconnectdb(g_conninfo);
	char payload[1025];
	const char *vals[1] = { payload };
	(void)arg;

	memset(payload, 'x', 1024);
	payload[1024] = '\0';
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "bench_issue: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	PGresult *p = PQprepare(c, "ins", "insert into bench_insert (payload) values ($1)", 1, NULL);
	PQclear(p);
	while (now_ns() < g_deadline) {
		PGresult *res = PQexecPrepared(c, "ins", 1, vals, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_COMMAND_OK)
			atomic_fetch_add(&g_inserts, 1);
		PQclear(res);
	}
	PQfinish(c);
	return NULL;
}

static double
bench_insert(int clients, int seconds)
{
	PGconn *c = PQconnectdb(g_conninfo);
	pthread_t th[256];
	PGresult *r;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "bench_issue: %s", PQerrorMessage(c));
		PQfinish(c);
		return 0;
	}
	r = PQexec(c, "drop table if exists bench_insert; create table bench_insert "
	    "(id bigserial primary key, at timestamptz not null default now(), payload text not null)");
	PQclear(r);
	g_deadline = now_ns() + (uint64_t)seconds * 1000000000ull;
	uint64_t t0 = now_ns();
	for (int i = 0; i < clients; i++)
		pthread_create(&th[i], NULL, inserter, NULL);
	for (int i = 0; i < clients; i++)
		pthread_join(th[i], NULL);
	double rate = (double)atomic_load(&g_inserts) / ((double)(now_ns() - t0) / 1e9);
	r = PQexec(c, "drop table bench_insert");
	PQclear(r);
	PQfinish(c);
	return rate;
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "token-file", required_argument, NULL, 't' },
		{ "conninfo", required_argument, NULL, 'c' },
		{ "clients", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 's' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "issue-only", no_argument, NULL, 'i' },
		{ "mac-in-csr", no_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tokfile = NULL, *pfx = "";
	int issue_only = 0;
	pthread_t th[256];
	int64_t v;
	int ch;

	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'u': g_url = optarg; break;
		case 't': tokfile = optarg; break;
		case 'c': g_conninfo = optarg; break;
		case 'n':
			if (parse_int64(optarg, 1, 256, &v) != 0)
				return 2;
			g_clients = (int)v;
			break;
		case 's':
			if (parse_int64(optarg, 1, 3600, &v) != 0)
				return 2;
			g_seconds = (int)v;
			break;
		case 'p':
			if (strlen(optarg) > 32)
				return 2;
			pfx = optarg;
			break;
		case 'i': issue_only = 1; break;
		case 'm': g_mac_in_csr = 1; break;
		default: return 2;
		}
	}
	if (g_url == NULL || tokfile == NULL || g_conninfo == NULL ||
	    secret_read_file(tokfile, &g_token) != 0) {
		fprintf(stderr, "usage: bench_issue --url URL --token-file FILE --conninfo CI "
		    "[--clients N] [--seconds N] [--prefix NAME_] [--issue-only] [--mac-in-csr]\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (int i = 0; i < NKEYS; i++)
		if ((g_csr[i] = make_csr(NULL)) == NULL)
			return 1;
	g_lat_us = calloc(MAX_SAMPLES, sizeof(*g_lat_us));

	/* issuance through the API */
	g_deadline = now_ns() + (uint64_t)g_seconds * 1000000000ull;
	uint64_t t0 = now_ns();
	for (int i = 0; i < g_clients; i++)
		pthread_create(&th[i], NULL, client, NULL);
	for (int i = 0; i < g_clients; i++)
		pthread_join(th[i], NULL);
	double secs = (double)(now_ns() - t0) / 1e9;
	unsigned n = atomic_load(&g_nlat);
	if (n > MAX_SAMPLES)
		n = MAX_SAMPLES;
	qsort(g_lat_us, n, sizeof(*g_lat_us), cmp_u32);
	double p50 = n ? g_lat_us[n / 2] / 1000.0 : 0, p99 = n ? g_lat_us[(size_t)(n * 0.99)] / 1000.0 : 0;
	printf("bench: %sissue_per_s %.0f certs/s\n", pfx, (double)atomic_load(&g_nlat) / secs);
	printf("bench: %sissue_p50_ms %.2f ms\n", pfx, p50);
	printf("bench: %sissue_p99_ms %.2f ms\n", pfx, p99);
	fflush(stdout);
	if (atomic_load(&g_errors) > 0)
		fprintf(stderr, "bench_issue: %u failed requests\n", atomic_load(&g_errors));
	if (issue_only)
		goto done;

	printf("bench: sign_per_s %.0f signatures/s\n", bench_sign(3.0));
	fflush(stdout);
	printf("bench: insert_per_s %.0f rows/s\n", bench_insert(g_clients, g_seconds > 5 ? 5 : g_seconds));
done:

	for (int i = 0; i < NKEYS; i++)
		free(g_csr[i]);
	free(g_lat_us);
	secret_free(g_token);
	curl_global_cleanup();
	return atomic_load(&g_errors) > 0 && n == 0 ? 1 : 0;
}
