/*
 * bench_ocsp.c: OCSP responder throughput through HTTP with N concurrent
 * keep-alive clients POSTing the same request for one certificate without a
 * nonce (the warm, cached case RFC 5019 clients produce), then requests
 * with a fresh nonce each (each signed anew). Every answer is checked to be
 * a successful response saying good. Prints "bench: NAME VALUE UNIT" lines.
 *
 * usage: bench_ocsp --url URL --issuer CA.crt --cert DEVICE.pem
 *                   [--clients 8] [--seconds 10] [--nonce-seconds 3]
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/common.h"

#define MAX_SAMPLES (8u << 20)
#define MAX_RESP 16384

static const char *g_url;
static int g_clients = 8, g_seconds = 10, g_nonce_seconds = 3;
static X509 *g_issuer, *g_cert;
static uint8_t *g_req;			/* DER request without a nonce */
static size_t g_reqlen;
static atomic_uint g_errors;
static atomic_ullong g_done;
static uint32_t *g_lat_us;
static atomic_uint g_nlat;
static uint64_t g_deadline;
static int g_nonce;			/* phase: a fresh nonce per request */

struct buf {
	uint8_t data[MAX_RESP];
	size_t len;
};

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t len = size * n;

	if (b->len + len > sizeof(b->data))
		return 0;
	memcpy(b->data + b->len, p, len);
	b->len += len;
	return len;
}

static X509 *
read_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

	if (f != NULL)
		fclose(f);
	if (x == NULL)
		fprintf(stderr, "bench_ocsp: cannot read the certificate %s\n", path);
	return x;
}

/* DER request about g_cert (SHA-1 CertID); with a random nonce when nonce. */
static int
make_request(int nonce, OCSP_REQUEST **reqp, uint8_t **der, size_t *len)
{
	OCSP_REQUEST *req = OCSP_REQUEST_new();
	OCSP_CERTID *id = OCSP_cert_to_id(NULL, g_cert, g_issuer);
	unsigned char *p = NULL;
	int n;

	if (req == NULL || id == NULL || OCSP_request_add0_id(req, id) == NULL) {
		OCSP_CERTID_free(id);
		OCSP_REQUEST_free(req);
		return -1;
	}
	if ((nonce && !OCSP_request_add1_nonce(req, NULL, 16)) ||
	    (n = i2d_OCSP_REQUEST(req, &p)) <= 0) {
		OCSP_REQUEST_free(req);
		return -1;
	}
	*der = malloc((size_t)n);
	memcpy(*der, p, (size_t)n);
	OPENSSL_free(p);
	*len = (size_t)n;
	*reqp = req;
	return 0;
}

/* A successful response that says good (and echoes req's nonce, if any). */
static int
response_ok(const struct buf *b, OCSP_REQUEST *req)
{
	const unsigned char *p = b->data;
	OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)b->len);
	OCSP_BASICRESP *bs = NULL;
	OCSP_CERTID *id = NULL;
	int ok = 0, status = -1, reason;
	ASN1_GENERALIZEDTIME *rev, *tu, *nu;

	if (resp == NULL || OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL ||
	    (bs = OCSP_response_get1_basic(resp)) == NULL ||
	    (id = OCSP_cert_to_id(NULL, g_cert, g_issuer)) == NULL)
		goto out;
	if (!OCSP_resp_find_status(bs, id, &status, &reason, &rev, &tu, &nu) ||
	    status != V_OCSP_CERTSTATUS_GOOD)
		goto out;
	if (req != NULL && OCSP_check_nonce(req, bs) != 1)
		goto out;
	ok = 1;
out:
	OCSP_CERTID_free(id);
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	return ok;
}

static void *
client(void *arg)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/ocsp-request");
	struct buf *b = malloc(sizeof(*b));
	char url[512];
	long status = 0;
	(void)arg;

	snprintf(url, sizeof(url), "%s/ocsp", g_url);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	while (now_ns() < g_deadline) {
		OCSP_REQUEST *req = NULL;
		uint8_t *der = g_req;
		size_t len = g_reqlen;

		if (g_nonce && make_request(1, &req, &der, &len) != 0) {
			atomic_fetch_add(&g_errors, 1);
			break;
		}
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, der);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
		b->len = 0;
		uint64_t t0 = now_ns();
		CURLcode cr = curl_easy_perform(h);
		uint64_t us = (now_ns() - t0) / 1000;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		/* checking each answer costs the client more than the server
		 * spends on a cached one: check every 64th and each nonce one */
		unsigned long long k = atomic_fetch_add(&g_done, 1);
		int check = g_nonce || (k & 63) == 0;
		if (cr != CURLE_OK || status != 200 || (check && !response_ok(b, req))) {
			if (atomic_fetch_add(&g_errors, 1) < 5)
				fprintf(stderr, "bench_ocsp: request failed: %s, HTTP %ld, %zu bytes\n",
				    curl_easy_strerror(cr), status, b->len);
		} else if (!g_nonce) {
			unsigned i = atomic_fetch_add(&g_nlat, 1);
			if (i < MAX_SAMPLES)
				g_lat_us[i] = (uint32_t)us;
		}
		if (g_nonce) {
			free(der);
			OCSP_REQUEST_free(req);
		}
	}
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	free(b);
	return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Runs the clients for seconds; returns answers per second. */
static double
run(int seconds, int nonce)
{
	pthread_t th[256];
	uint64_t t0 = now_ns();

	g_nonce = nonce;
	atomic_store(&g_done, 0);
	g_deadline = t0 + (uint64_t)seconds * 1000000000ull;
	for (int i = 0; i < g_clients; i++)
		pthread_create(&th[i], NULL, client, NULL);
	for (int i = 0; i < g_clients; i++)
		pthread_join(th[i], NULL);
	return (double)atomic_load(&g_done) / ((double)(now_ns() - t0) / 1e9);
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "issuer", required_argument, NULL, 'i' },
		{ "cert", required_argument, NULL, 'c' },
		{ "clients", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 's' },
		{ "nonce-seconds", required_argument, NULL, 'N' },
		{ NULL, 0, NULL, 0 },
	};
	const char *issuer = NULL, *cert = NULL;
	OCSP_REQUEST *req = NULL;
	int64_t v;
	int ch;

	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'u': g_url = optarg; break;
		case 'i': issuer = optarg; break;
		case 'c': cert = optarg; break;
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
		case 'N':
			if (parse_int64(optarg, 0, 3600, &v) != 0)
				return 2;
			g_nonce_seconds = (int)v;
			break;
		default: return 2;
		}
	}
	if (g_url == NULL || issuer == NULL || cert == NULL) {
		fprintf(stderr, "usage: bench_ocsp --url URL --issuer CA.crt --cert DEVICE.pem "
		    "[--clients N] [--seconds S] [--nonce-seconds S]\n");
		return 2;
	}
	if ((g_issuer = read_cert(issuer)) == NULL || (g_cert = read_cert(cert)) == NULL)
		return 1;
	if (make_request(0, &req, &g_req, &g_reqlen) != 0) {
		fprintf(stderr, "bench_ocsp: cannot build the request\n");
		return 1;
	}
	OCSP_REQUEST_free(req);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	g_lat_us = calloc(MAX_SAMPLES, sizeof(*g_lat_us));

	double rate = run(g_seconds, 0);
	unsigned n = atomic_load(&g_nlat);
	if (n > MAX_SAMPLES)
		n = MAX_SAMPLES;
	qsort(g_lat_us, n, sizeof(*g_lat_us), cmp_u32);
	printf("bench: ocsp_per_s %.0f /s\n", rate);
	printf("bench: ocsp_p50_ms %.3f ms\n", n ? g_lat_us[n / 2] / 1000.0 : 0);
	printf("bench: ocsp_p99_ms %.3f ms\n", n ? g_lat_us[(size_t)(n * 0.99)] / 1000.0 : 0);
	fflush(stdout);
	if (g_nonce_seconds > 0) {
		printf("bench: ocsp_nonce_per_s %.0f /s\n", run(g_nonce_seconds, 1));
		fflush(stdout);
	}
	if (atomic_load(&g_errors) > 0)
		fprintf(stderr, "bench_ocsp: %u failed requests\n", atomic_load(&g_errors));

	free(g_lat_us);
	free(g_req);
	X509_free(g_issuer);
	X509_free(g_cert);
	curl_global_cleanup();
	return atomic_load(&g_errors) > 0 ? 1 : 0;
}
