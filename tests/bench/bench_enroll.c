/*
 * bench_enroll.c: enrollments over the sim radio, end to end. N simulated
 * devices (the device library, one thread each, file or tpm2 keystore)
 * listen on the air; for each, a client asks provd to enroll it over the
 * REST API (device keygen, replace), the device answers the intake, and the
 * client follows the job (long-poll) until it has ended: link, key
 * generation, CA, push, the database commit and DONE. Then the device is
 * factory-reset and enrolled again. Prints "bench: NAME VALUE UNIT": the
 * rate, p50 and p99 latency and the mean time of each step.
 *
 * usage: bench_enroll --url URL --token-file FILE --air DIR --state DIR
 *                     [--devices 16] [--seconds 10] [--keystore file|tpm2]
 *                     [--tcti-file FILE] [--prefix NAME]
 * --tcti-file: one TCTI per line, one per device (tpm2).
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "common/common.h"
#include "device/device.h"
#include "provision/provision.h"

#define MAX_DEVICES 64
#define MAX_SAMPLES (1u << 20)
#define NSTEPS 5

static const char *const step_names[NSTEPS] = { "link", "keygen", "ca", "push", "record" };

static const char *g_url, *g_air, *g_state, *g_keystore = "file", *g_prefix = "enroll";
static char *g_token;
static char *g_tcti[MAX_DEVICES];
static int g_devices = 16, g_seconds = 10;
static _Atomic uint64_t g_deadline;
static uint32_t *g_lat_us;
static atomic_uint g_nlat, g_errors;
static atomic_ullong g_step_ms[NSTEPS];

struct buf {
	char *p;
	size_t len;
};

static size_t
collect(char *p, size_t s, size_t n, void *arg)
{
	struct buf *b = arg;
	char *np = realloc(b->p, b->len + s * n + 1);

	if (np == NULL)
		return 0;
	memcpy(np + b->len, p, s * n);
	b->p = np;
	b->len += s * n;
	b->p[b->len] = '\0';
	return s * n;
}

/* One REST call; returns the HTTP status and the parsed body in *out. */
static long
call(CURL *h, struct curl_slist *hdr, const char *method, const char *path, const char *body,
    json_t **out)
{
	struct buf b = { 0 };
	char url[512];
	long status = 0;

	*out = NULL;
	snprintf(url, sizeof(url), "%s%s", g_url, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	if (body != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
	}
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (b.p != NULL)
		*out = json_loadb(b.p, b.len, 0, NULL);
	free(b.p);
	return status;
}

struct dev {
	int idx;
	struct agent *agent;
	char addr[MAC_STR_LEN];
	char pin[16];
	/* the device answers on its own thread; the client side waits here */
	pthread_t thread;
	atomic_int go, done_rc;
};

static void *
device_main(void *arg)
{
	struct dev *d = arg;
	struct radio_params rp = { .backend = "sim", .sim_dir = g_air };
	struct radio_device self = { .cod = 0x240404, .rssi = -40 };
	struct radio *radio = NULL;
	char why[256];

	if (mac_parse(d->addr, self.addr) != 0 || radio_open(&rp, &radio) != 0 ||
	    radio_listen(radio, &self) != 0) {
		fprintf(stderr, "bench_enroll: device %s cannot listen\n", d->addr);
		atomic_store(&d->done_rc, -1);
		radio_close(radio);
		return NULL;
	}
	atomic_store(&d->done_rc, 1);	/* listening */
	while (now_ns() < g_deadline + 5000000000ull) {
		int r = agent_serve_once(d->agent, radio, 200, 10000, why, sizeof(why));
		if (r == ERR_TIMEOUT)
			continue;
		if (r != 0)
			fprintf(stderr, "bench_enroll: device %s: %s\n", d->addr, why);
		/* provisioned (or failed): back to the factory for the next round */
		if (agent_reset(d->agent) != 0) {
			fprintf(stderr, "bench_enroll: device %s: reset failed\n", d->addr);
			break;
		}
	}
	radio_close(radio);
	return NULL;
}

static void *
client_main(void *arg)
{
	struct dev *d = arg;
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = NULL;
	char auth[256], body[256], path[160];

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", g_token);
	hdr = curl_slist_append(hdr, auth);
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	snprintf(body, sizeof(body), "{\"mac\":\"%s\",\"label_mac\":\"%s\",\"pin\":\"%s\","
	    "\"keygen\":\"device\",\"replace\":true,\"owner\":\"bench\"}", d->addr, d->addr, d->pin);
	while (now_ns() < g_deadline) {
		uint64_t t0 = now_ns();
		json_t *job = NULL;
		long st = call(h, hdr, "POST", "/v1/intake/enrollments", body, &job);
		if (st != 202) {
			atomic_fetch_add(&g_errors, 1);
			json_decref(job);
			if (st == 409) {
				/* the previous round's job is still closing */
				struct timespec ts = { 0, 10000000 };
				nanosleep(&ts, NULL);
				continue;
			}
			fprintf(stderr, "bench_enroll: POST -> %ld\n", st);
			break;
		}
		json_int_t id = json_integer_value(json_object_get(job, "id"));
		while (job != NULL &&
		    strcmp(json_string_value(json_object_get(job, "status")), "running") == 0) {
			snprintf(path, sizeof(path), "/v1/intake/enrollments/%lld?wait_ms=20000&version=%lld",
			    (long long)id, (long long)json_integer_value(json_object_get(job, "version")));
			json_decref(job);
			if (call(h, hdr, "GET", path, NULL, &job) != 200) {
				json_decref(job);
				job = NULL;
			}
		}
		if (job != NULL && strcmp(json_string_value(json_object_get(job, "status")),
		    "succeeded") == 0) {
			unsigned i = atomic_fetch_add(&g_nlat, 1);
			json_t *steps = json_object_get(job, "steps"), *s;
			size_t k;
			if (i < MAX_SAMPLES)
				g_lat_us[i] = (uint32_t)((now_ns() - t0) / 1000);
			json_array_foreach(steps, k, s) {
				const char *name = json_string_value(json_object_get(s, "step"));
				for (int n = 0; name != NULL && n < NSTEPS; n++)
					if (strcmp(name, step_names[n]) == 0)
						atomic_fetch_add(&g_step_ms[n],
						    (unsigned long long)json_integer_value(json_object_get(s, "ms")));
			}
		} else {
			atomic_fetch_add(&g_errors, 1);
			if (job != NULL)
				fprintf(stderr, "bench_enroll: job %lld failed at %s: %s\n", (long long)id,
				    json_string_value(json_object_get(job, "step")),
				    json_string_value(json_object_get(job, "error")));
		}
		json_decref(job);
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

static int
read_tctis(const char *path)
{
	FILE *f = fopen(path, "re");
	char line[256];
	int n = 0;

	if (f == NULL)
		return -1;
	while (n < MAX_DEVICES && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] != '\0' && (g_tcti[n] = strdup(line)) != NULL)
			n++;
	}
	fclose(f);
	return n;
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "token-file", required_argument, NULL, 't' },
		{ "air", required_argument, NULL, 'a' },
		{ "state", required_argument, NULL, 's' },
		{ "devices", required_argument, NULL, 'd' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "keystore", required_argument, NULL, 'k' },
		{ "tcti-file", required_argument, NULL, 'T' },
		{ "prefix", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	const char *token_file = NULL, *tcti_file = NULL;
	struct dev *devs;
	pthread_t *clients;
	char why[256];
	int ch, ntcti = 0;

	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'u': g_url = optarg; break;
		case 't': token_file = optarg; break;
		case 'a': g_air = optarg; break;
		case 's': g_state = optarg; break;
		case 'd': g_devices = atoi(optarg); break;
		case 'S': g_seconds = atoi(optarg); break;
		case 'k': g_keystore = optarg; break;
		case 'T': tcti_file = optarg; break;
		case 'p': g_prefix = optarg; break;
		default: return 2;
		}
	}
	if (g_url == NULL || token_file == NULL || g_air == NULL || g_state == NULL ||
	    g_devices < 1 || g_devices > MAX_DEVICES || g_seconds < 1) {
		fprintf(stderr, "usage: bench_enroll --url URL --token-file FILE --air DIR --state DIR "
		    "[--devices 1..%d] [--seconds N] [--keystore file|tpm2] [--tcti-file FILE]\n",
		    MAX_DEVICES);
		return 2;
	}
	CRYPTO_secure_malloc_init(1 << 20, 32);
	if (secret_read_file(token_file, &g_token) != 0) {
		fprintf(stderr, "bench_enroll: cannot read %s\n", token_file);
		return 1;
	}
	if (tcti_file != NULL && (ntcti = read_tctis(tcti_file)) < g_devices) {
		fprintf(stderr, "bench_enroll: %s must list one TCTI per device\n", tcti_file);
		return 1;
	}
	log_init("bench_enroll", LOG_LVL_ERROR, 0, 0);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	g_lat_us = calloc(MAX_SAMPLES, sizeof(*g_lat_us));
	devs = calloc((size_t)g_devices, sizeof(*devs));
	clients = calloc((size_t)g_devices, sizeof(*clients));
	if (g_lat_us == NULL || devs == NULL || clients == NULL)
		return 1;

	/* manufacture (not timed: the PIN's key derivation runs here once) */
	for (int i = 0; i < g_devices; i++) {
		char dir[512];
		struct agent_init_opts o = { 0 };
		devs[i].idx = i;
		snprintf(devs[i].addr, sizeof(devs[i].addr), "02:be:%02x:00:00:%02x",
		    (unsigned)(now_ns() & 0xff), (unsigned)i & 0xffu);
		snprintf(devs[i].pin, sizeof(devs[i].pin), "%06d", 100000 + i * 7919);
		snprintf(dir, sizeof(dir), "%s/%s-dev%d", g_state, g_prefix, i);
		o.dir = dir;
		o.addr = devs[i].addr;
		o.pin = devs[i].pin;
		o.name = "bench";
		o.model = "bench";
		o.keystore = g_keystore;
		o.tcti = ntcti ? g_tcti[i] : NULL;
		o.force = 1;
		if (agent_init(&o, why, sizeof(why)) != 0 || agent_open(dir, &devs[i].agent) != 0) {
			fprintf(stderr, "bench_enroll: device %d: %s\n", i, why);
			return 1;
		}
	}
	g_deadline = now_ns() + 3600ull * 1000000000ull;
	for (int i = 0; i < g_devices; i++)
		pthread_create(&devs[i].thread, NULL, device_main, &devs[i]);
	for (int i = 0; i < g_devices; i++)
		while (atomic_load(&devs[i].done_rc) == 0) {
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
	uint64_t t0 = now_ns();
	g_deadline = t0 + (uint64_t)g_seconds * 1000000000ull;
	for (int i = 0; i < g_devices; i++)
		pthread_create(&clients[i], NULL, client_main, &devs[i]);
	for (int i = 0; i < g_devices; i++)
		pthread_join(clients[i], NULL);
	double secs = (double)(now_ns() - t0) / 1e9;
	/* the devices stop a little after the deadline */
	g_deadline = now_ns() - 5000000000ull;
	for (int i = 0; i < g_devices; i++) {
		pthread_join(devs[i].thread, NULL);
		agent_close(devs[i].agent);
	}

	unsigned n = atomic_load(&g_nlat);
	if (n > MAX_SAMPLES)
		n = MAX_SAMPLES;
	qsort(g_lat_us, n, sizeof(*g_lat_us), cmp_u32);
	int tpm = strcmp(g_keystore, "tpm2") == 0;
	if (tpm) {
		printf("bench: enroll_tpm2_per_s %.1f /s\n", (double)n / secs);
		printf("bench: enroll_tpm2_p50_ms %.1f ms\n", n ? g_lat_us[n / 2] / 1000.0 : 0.0);
	} else {
		printf("bench: enroll_per_s %.1f /s\n", (double)n / secs);
		printf("bench: enroll_p50_ms %.1f ms\n", n ? g_lat_us[n / 2] / 1000.0 : 0.0);
		printf("bench: enroll_p99_ms %.1f ms\n",
		    n ? g_lat_us[(size_t)((double)n * 0.99)] / 1000.0 : 0.0);
	}
	for (int s = 0; s < NSTEPS; s++)
		printf("bench: %s_step_%s_ms %.2f ms\n", tpm ? "enroll_tpm2" : "enroll", step_names[s],
		    n ? (double)atomic_load(&g_step_ms[s]) / n : 0.0);
	printf("bench: %s_errors %u count\n", tpm ? "enroll_tpm2" : "enroll", atomic_load(&g_errors));
	for (int i = 0; i < ntcti; i++)
		free(g_tcti[i]);
	free(devs);
	free(clients);
	free(g_lat_us);
	secret_free(g_token);
	curl_global_cleanup();
	return n > 0 ? 0 : 1;
}
