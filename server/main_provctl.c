/*
 * main_provctl.c: provctl, the command-line client of the provd REST API
 * (libcurl + jansson). It holds no logic of its own: every command is one
 * or two API calls, and errors are the API's sentences with the request id.
 */
#include <fcntl.h>
#include <getopt.h>
#include <termios.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "common/common.h"

#define DEFAULT_URL "http://127.0.0.1:8440"
#define MAX_RESPONSE (64u << 20)

struct ctl {
	const char *url;
	char *token;			/* secure heap */
	const char *cacert;
	int verbose;
};

struct buf {
	char *data;
	size_t len;
	int too_big;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: provctl [--url URL] [--token-file FILE] [--cacert FILE] COMMAND\n"
	    "\n"
	    "commands:\n"
	    "  health\n"
	    "  issue --mac ADDR --csr FILE [--owner NAME] [--group NAME]... [--role access-point]\n"
	    "        [--replace] [--out FILE]\n"
	    "  cert SERIAL [--pem]\n"
	    "  revoke ADDR|--serial SERIAL [--reason REASON]\n"
	    "  unrevoke ADDR|--serial SERIAL\n"
	    "  crl [--delta] [--pem] [--out FILE]\n"
	    "  audit verify\n"
	    "  scan [--timeout MS]\n"
	    "  enroll ADDR [--pin PIN|--pin-file FILE] [--label-mac ADDR] [--keygen auto|device|server]\n"
	    "         [--owner NAME] [--group NAME]... [--replace] [--no-wait]\n"
	    "  directory resync|status\n"
	    "  authorize ADDR RESOURCE [ACTION]             (exit 0 allow, 3 deny)\n"
	    "  policy\n"
	    "  resource add NAME [--class C] [--description D] | resource del NAME\n"
	    "  rule add --device ADDR|--user NAME|--group NAME --resource R [--action A]\n"
	    "           --allow|--deny [--from T --until T] [--time HH:MM-HH:MM]\n"
	    "           [--weekdays mon,...] [--once] | rule del ID\n"
	    "  group add|remove GROUP --device ADDR|--user NAME\n"
	    "  group validity GROUP DAYS|none      cap the validity of members' certificates\n"
	    "  group list | group show GROUP\n"
	    "  device list [--status S] [--owner U] [--group G] [--limit N]\n"
	    "  device show ADDR | device owner ADDR NAME|none\n"
	    "  user list | user delete NAME\n"
	    "  renew-request ADDR                  have the device renew at its next contact\n"
	    "\n"
	    "The API address comes from --url, $PROVD_URL or " DEFAULT_URL ";\n"
	    "the API token from --token-file, $PROVD_TOKEN_FILE or $PROVD_TOKEN.\n");
}

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t len = size * n;

	if (b->len + len > MAX_RESPONSE) {
		b->too_big = 1;
		return 0;
	}
	char *nd = realloc(b->data, b->len + len + 1);
	if (nd == NULL)
		return 0;
	memcpy(nd + b->len, p, len);
	b->data = nd;
	b->len += len;
	b->data[b->len] = '\0';
	return len;
}

/*
 * One API call. body may be NULL. On success returns the HTTP status and
 * fills out (caller frees out->data); on transport failure prints why and
 * returns -1.
 */
static long
api(struct ctl *c, const char *method, const char *path, const char *body, struct buf *out)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = NULL;
	char url[2048], *auth = NULL;
	long status = -1;
	CURLcode cr;

	memset(out, 0, sizeof(*out));
	if (h == NULL)
		return -1;
	snprintf(url, sizeof(url), "%s%s", c->url, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (c->cacert != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
	if (c->token != NULL) {
		size_t len = strlen(c->token) + 32;
		if ((auth = OPENSSL_secure_zalloc(len)) == NULL) {
			fprintf(stderr, "provctl: out of secure memory\n");
			goto out;
		}
		snprintf(auth, len, "Authorization: Bearer %s", c->token);
		hdr = curl_slist_append(hdr, auth);
	}
	if (body != NULL) {
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	if ((cr = curl_easy_perform(h)) != CURLE_OK) {
		fprintf(stderr, "provctl: %s: %s\n", c->url,
		    out->too_big ? "response too large" : curl_easy_strerror(cr));
		free(out->data);
		memset(out, 0, sizeof(*out));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
out:
	curl_slist_free_all(hdr);
	if (auth != NULL)
		OPENSSL_secure_clear_free(auth, strlen(auth) + 1);
	curl_easy_cleanup(h);
	return status;
}

/* Prints the API's error sentence; returns the exit status 1. */
static int
api_error(long status, const struct buf *b)
{
	json_t *j = b->data ? json_loadb(b->data, b->len, 0, NULL) : NULL;
	json_t *e = json_object_get(j, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));
	const char *id = json_string_value(json_object_get(e, "request_id"));

	if (msg != NULL)
		fprintf(stderr, "provctl: %s (HTTP %ld, request %s)\n", msg, status, id ? id : "-");
	else
		fprintf(stderr, "provctl: HTTP %ld\n", status);
	json_decref(j);
	return 1;
}

static json_t *
parse_json(const struct buf *b)
{
	json_t *j = b->data ? json_loadb(b->data, b->len, 0, NULL) : NULL;

	if (j == NULL)
		fprintf(stderr, "provctl: the server's answer is not JSON\n");
	return j;
}

/*
 * METHOD path with body (NULL: none), expecting the status want. Returns 0
 * with the answer parsed into *resp (the caller json_decrefs it; resp NULL:
 * the answer is not read), or the exit status 1 once it has printed why:
 * the call failed, the API's error sentence, or an answer that is not JSON.
 */
static int
api_call(struct ctl *c, const char *method, const char *path, const char *body, long want,
    json_t **resp)
{
	struct buf b = { 0 };
	long st;
	int rc = 1;

	if (resp != NULL)
		*resp = NULL;
	if ((st = api(c, method, path, body, &b)) < 0)
		goto out;
	if (st != want) {
		rc = api_error(st, &b);
		goto out;
	}
	if (resp != NULL && (*resp = parse_json(&b)) == NULL)
		goto out;
	rc = 0;
out:
	free(b.data);
	return rc;
}

/* api_call() with a JSON body (NULL: none), sent compact. */
static int
api_call_json(struct ctl *c, const char *method, const char *path, json_t *body, long want,
    json_t **resp)
{
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	int rc;

	if (body != NULL && text == NULL) {
		if (resp != NULL)
			*resp = NULL;
		fprintf(stderr, "provctl: out of memory\n");
		return 1;
	}
	rc = api_call(c, method, path, text, want, resp);
	free(text);
	return rc;
}

static int
write_out(const char *path, const char *data, size_t len)
{
	if (path == NULL) {
		fwrite(data, 1, len, stdout);
		return 0;
	}
	if (file_write_atomic(path, data, len, 0644) != 0) {
		fprintf(stderr, "provctl: cannot write %s\n", path);
		return 1;
	}
	return 0;
}

static int
cmd_health(struct ctl *c)
{
	struct buf b;
	long st = api(c, "GET", "/v1/health", NULL, &b);

	if (st < 0)
		return 1;
	printf("%s\n", b.data ? b.data : "");
	free(b.data);
	return st == 200 ? 0 : 1;
}

static int
cmd_issue(struct ctl *c, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "mac", required_argument, NULL, 'm' },
		{ "csr", required_argument, NULL, 'c' },
		{ "owner", required_argument, NULL, 'o' },
		{ "group", required_argument, NULL, 'g' },
		{ "role", required_argument, NULL, 'R' },
		{ "replace", no_argument, NULL, 'r' },
		{ "out", required_argument, NULL, 'O' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mac = NULL, *csrfile = NULL, *owner = NULL, *outpath = NULL;
	json_t *groups = json_array(), *roles = json_array(), *req = NULL, *resp = NULL;
	char *csr = NULL;
	int replace = 0, ch, rc = 1;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'm': mac = optarg; break;
		case 'c': csrfile = optarg; break;
		case 'o': owner = optarg; break;
		case 'g': json_array_append_new(groups, json_string(optarg)); break;
		case 'R': json_array_append_new(roles, json_string(optarg)); break;
		case 'r': replace = 1; break;
		case 'O': outpath = optarg; break;
		default: usage(stderr); rc = 2; goto out;
		}
	}
	if (mac == NULL || csrfile == NULL || optind != argc) {
		fprintf(stderr, "provctl: issue needs --mac and --csr\n");
		rc = 2;
		goto out;
	}
	if (file_read_all(csrfile, 65536, &csr, NULL) != 0) {
		fprintf(stderr, "provctl: cannot read %s (or it is over 64 KiB)\n", csrfile);
		goto out;
	}
	req = json_pack("{s:s,s:s,s:b}", "mac", mac, "csr", csr, "replace", replace);
	if (req == NULL) {
		fprintf(stderr, "provctl: %s is not text (give a PEM CSR)\n", csrfile);
		goto out;
	}
	if (owner != NULL)
		json_object_set_new(req, "owner", json_string(owner));
	if (json_array_size(groups) > 0)
		json_object_set(req, "groups", groups);
	if (json_array_size(roles) > 0)
		json_object_set(req, "roles", roles);
	if ((rc = api_call_json(c, "POST", "/v1/certificates", req, 201, &resp)) != 0)
		goto out;
	const char *pem = json_string_value(json_object_get(resp, "certificate"));
	if (pem == NULL) {
		rc = 1;
		goto out;
	}
	fprintf(stderr, "issued serial %s for %s, fingerprint sha256 %s, valid until %s\n",
	    json_string_value(json_object_get(resp, "serial")),
	    json_string_value(json_object_get(resp, "mac")),
	    json_string_value(json_object_get(resp, "fingerprint_sha256")),
	    json_string_value(json_object_get(resp, "not_after")));
	rc = write_out(outpath, pem, strlen(pem));
out:
	free(csr);
	json_decref(groups);
	json_decref(roles);
	json_decref(req);
	json_decref(resp);
	return rc;
}

static int
cmd_cert(struct ctl *c, int argc, char **argv)
{
	char path[256];
	json_t *j;
	int pem = argc == 3 && strcmp(argv[2], "--pem") == 0, rc;

	if (argc != 2 && !pem) {
		usage(stderr);
		return 2;
	}
	snprintf(path, sizeof(path), "/v1/certificates/%.64s", argv[1]);
	if ((rc = api_call(c, "GET", path, NULL, 200, &j)) != 0)
		return rc;
	if (pem)
		fputs(json_string_value(json_object_get(j, "certificate")), stdout);
	else {
		json_object_del(j, "certificate");
		json_dumpf(j, stdout, JSON_INDENT(2));
		putchar('\n');
	}
	json_decref(j);
	return 0;
}

/*
 * provctl revoke ADDR|--serial SERIAL [--reason REASON], and (release)
 * provctl unrevoke ADDR|--serial SERIAL, which releases a certificate from
 * hold: by device (its latest revoked certificate) or by serial.
 */
static int
cmd_revoke(struct ctl *c, int argc, char **argv, int release)
{
	static const struct option revoke_opts[] = {
		{ "serial", required_argument, NULL, 's' },
		{ "reason", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct option release_opts[] = {
		{ "serial", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *verb = release ? "unrevoke" : "revoke";
	const char *serial = NULL, *reason = "unspecified", *mac = NULL;
	char path[256];
	json_t *req = NULL, *resp;
	int ch, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "", release ? release_opts : revoke_opts,
	    NULL)) != -1) {
		switch (ch) {
		case 's': serial = optarg; break;
		case 'r': reason = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc)
		mac = argv[optind++];
	if ((mac == NULL) == (serial == NULL) || optind != argc) {
		fprintf(stderr, "provctl: %s takes a device address or --serial\n", verb);
		return 2;
	}
	if (mac != NULL)
		snprintf(path, sizeof(path), "/v1/devices/%.32s/%s", mac, verb);
	else
		snprintf(path, sizeof(path), "/v1/certificates/%.64s/%s", serial, verb);
	if (!release)
		req = json_pack("{s:s}", "reason", reason);
	rc = api_call_json(c, "POST", path, req, 200, &resp);
	json_decref(req);
	if (rc != 0)
		return rc;
	if (release)
		printf("released %s from hold, serial %s is %s\n",
		    json_string_value(json_object_get(resp, "mac")),
		    json_string_value(json_object_get(resp, "serial")),
		    json_string_value(json_object_get(resp, "status")));
	else
		printf("revoked %s (%s), serial %s\n",
		    json_string_value(json_object_get(resp, "mac")),
		    json_string_value(json_object_get(resp, "revocation_reason")),
		    json_string_value(json_object_get(resp, "serial")));
	json_decref(resp);
	return 0;
}

static int
cmd_crl(struct ctl *c, int argc, char **argv)
{
	const char *outpath = NULL;
	int pem = 0, delta = 0, rc;
	struct buf b;
	char path[64];
	long st;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--pem") == 0)
			pem = 1;
		else if (strcmp(argv[i], "--delta") == 0)
			delta = 1;
		else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
			outpath = argv[++i];
		else {
			usage(stderr);
			return 2;
		}
	}
	snprintf(path, sizeof(path), "/v1/crl%s%s", delta ? "/delta" : "",
	    pem ? "?format=pem" : "");
	if ((st = api(c, "GET", path, NULL, &b)) < 0)
		return 1;
	if (st != 200)
		rc = api_error(st, &b);
	else if (!pem && outpath == NULL && isatty(1)) {
		fprintf(stderr, "provctl: the CRL is binary DER; use --pem or --out FILE\n");
		rc = 1;
	} else
		rc = write_out(outpath, b.data ? b.data : "", b.len);
	free(b.data);
	return rc;
}

static int
cmd_audit(struct ctl *c, int argc, char **argv)
{
	json_t *j;
	int rc;

	if (argc != 2 || strcmp(argv[1], "verify") != 0) {
		usage(stderr);
		return 2;
	}
	if ((rc = api_call(c, "POST", "/v1/audit/verify", NULL, 200, &j)) != 0)
		return rc;
	if (json_is_true(json_object_get(j, "ok"))) {
		printf("audit chain OK (%lld rows)\n",
		    (long long)json_integer_value(json_object_get(j, "rows")));
		rc = 0;
	} else {
		printf("audit chain BROKEN at seq %lld: %s\n",
		    (long long)json_integer_value(json_object_get(j, "first_bad_seq")),
		    json_string_value(json_object_get(j, "why")));
		rc = 1;
	}
	json_decref(j);
	return rc;
}

/* ---------------------------------------------------------------------
 * Intake over the radio.
 */
static int
cmd_scan(struct ctl *c, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	int64_t ms = -1;
	json_t *resp, *devs, *d;
	char body[64];
	size_t i;
	int ch, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 't':
			if (parse_int64(optarg, 0, 60000, &ms) != 0) {
				fprintf(stderr, "provctl: --timeout takes 0 to 60000 milliseconds\n");
				return 2;
			}
			break;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (ms >= 0)
		snprintf(body, sizeof(body), "{\"timeout_ms\":%lld}", (long long)ms);
	else
		snprintf(body, sizeof(body), "{}");
	if ((rc = api_call(c, "POST", "/v1/intake/scan", body, 200, &resp)) != 0)
		return rc;
	devs = json_object_get(resp, "devices");
	printf("%-17s  %-8s  %4s  %s\n", "ADDRESS", "CLASS", "RSSI", "NAME");
	json_array_foreach(devs, i, d)
		printf("%-17s  %-8s  %4lld  %s\n", json_string_value(json_object_get(d, "mac")),
		    json_string_value(json_object_get(d, "class")),
		    (long long)json_integer_value(json_object_get(d, "rssi")),
		    json_string_value(json_object_get(d, "name")));
	fprintf(stderr, "%zu devices in range (%s radio)\n", json_array_size(devs),
	    json_string_value(json_object_get(resp, "backend")));
	json_decref(resp);
	return 0;
}

/* Reads one line from the terminal into buf (secure heap when it is a
 * PIN), without echo when noecho. Returns 0, or -1 without a terminal. */
static int
tty_read(const char *prompt, char *buf, size_t len, int noecho)
{
	struct termios old, quiet;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC), echo_off = 0;
	size_t n = 0;
	char ch;

	if (fd < 0)
		return -1;
	if (write(fd, prompt, strlen(prompt)) < 0) {
		close(fd);
		return -1;
	}
	if (noecho && tcgetattr(fd, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		echo_off = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
	}
	while (read(fd, &ch, 1) == 1 && ch != '\n' && ch != '\r')
		if (n + 1 < len)
			buf[n++] = ch;
	buf[n] = '\0';
	OPENSSL_cleanse(&ch, sizeof(ch));
	if (echo_off) {
		(void)tcsetattr(fd, TCSAFLUSH, &old);
		if (write(fd, "\n", 1) < 0)
			n = 0;
	}
	close(fd);
	return 0;
}

/* Finds addr in a scan, for the operator to compare with the label. */
static int
enroll_lookup(struct ctl *c, const char *addr, char *name, size_t namelen)
{
	uint8_t want[MAC_LEN], got[MAC_LEN];
	json_t *resp, *d;
	size_t i;
	int rc;

	if (mac_parse(addr, want) != 0) {
		fprintf(stderr, "provctl: %s is not a device address\n", addr);
		return 2;
	}
	if ((rc = api_call(c, "POST", "/v1/intake/scan", "{}", 200, &resp)) != 0)
		return rc;
	rc = 1;
	json_array_foreach(json_object_get(resp, "devices"), i, d) {
		const char *m = json_string_value(json_object_get(d, "mac"));
		if (m == NULL || mac_parse(m, got) != 0 || memcmp(got, want, MAC_LEN) != 0)
			continue;
		snprintf(name, namelen, "%s", json_string_value(json_object_get(d, "name")));
		printf("in range: %s \"%s\", class %s, RSSI %lld dBm\n", m, name,
		    json_string_value(json_object_get(d, "class")),
		    (long long)json_integer_value(json_object_get(d, "rssi")));
		rc = 0;
		goto out;
	}
	fprintf(stderr, "provctl: %s is not in range; switch the device on, bring it "
	    "closer, or check the address\n", addr);
out:
	json_decref(resp);
	return rc;
}

/* Follows a job until it ends, printing each finished step with its time. */
static int
enroll_follow(struct ctl *c, json_t *job)
{
	json_int_t id = json_integer_value(json_object_get(job, "id"));
	json_int_t seen = -1;
	size_t shown = 0;
	long long total = 0;
	int rc = 1;

	json_incref(job);
	for (;;) {
		json_t *steps = json_object_get(job, "steps"), *sp;
		const char *status = json_string_value(json_object_get(job, "status"));
		for (; shown < json_array_size(steps); shown++) {
			sp = json_array_get(steps, shown);
			printf("  %-8s %6lld ms\n", json_string_value(json_object_get(sp, "step")),
			    (long long)json_integer_value(json_object_get(sp, "ms")));
			total += (long long)json_integer_value(json_object_get(sp, "ms"));
		}
		fflush(stdout);
		if (status != NULL && strcmp(status, "running") != 0) {
			if (strcmp(status, "succeeded") == 0) {
				const char *w = json_string_value(json_object_get(job, "warning"));
				printf("enrolled %s: certificate serial %s, fingerprint sha256 %s "
				    "(keygen %s, %lld ms)\n",
				    json_string_value(json_object_get(job, "mac")),
				    json_string_value(json_object_get(job, "serial")),
				    json_string_value(json_object_get(job, "fingerprint_sha256")),
				    json_string_value(json_object_get(job, "keygen")), total);
				if (w != NULL)
					fprintf(stderr, "provctl: warning: %s\n", w);
				rc = 0;
			} else {
				fprintf(stderr, "provctl: enrollment %lld failed at %s: %s\n",
				    (long long)id, json_string_value(json_object_get(job, "step")),
				    json_string_value(json_object_get(job, "error")));
			}
			break;
		}
		char path[128];
		json_int_t version = json_integer_value(json_object_get(job, "version"));
		/* an instance that is not running the job answers at once with
		 * what the database says: pace those polls */
		if (version == seen) {
			struct timespec ts = { 0, 250000000 };
			nanosleep(&ts, NULL);
		}
		seen = version;
		snprintf(path, sizeof(path), "/v1/intake/enrollments/%lld?wait_ms=30000&version=%lld",
		    (long long)id, (long long)json_integer_value(json_object_get(job, "version")));
		json_decref(job);
		if (api_call(c, "GET", path, NULL, 200, &job) != 0)
			break;
	}
	json_decref(job);
	return rc;
}

static int
cmd_enroll(struct ctl *c, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "pin", required_argument, NULL, 'p' },
		{ "pin-file", required_argument, NULL, 'P' },
		{ "label-mac", required_argument, NULL, 'l' },
		{ "keygen", required_argument, NULL, 'k' },
		{ "owner", required_argument, NULL, 'o' },
		{ "group", required_argument, NULL, 'g' },
		{ "replace", no_argument, NULL, 'r' },
		{ "no-wait", no_argument, NULL, 'W' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr, *keygen = NULL, *owner = NULL;
	char *pin = NULL, *body = NULL, label[64] = "", name[64] = "";
	json_t *groups = json_array(), *req = NULL, *job = NULL;
	int replace = 0, nowait = 0, ch, rc = 1;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			secret_free(pin);
			if (secret_take_arg(optarg, &pin) != 0)
				goto out;
			break;
		case 'P':
			secret_free(pin);
			pin = NULL;
			if (secret_read_file(optarg, &pin) != 0) {
				fprintf(stderr, "provctl: cannot read the PIN file %s\n", optarg);
				goto out;
			}
			break;
		case 'l': snprintf(label, sizeof(label), "%s", optarg); break;
		case 'k': keygen = optarg; break;
		case 'o': owner = optarg; break;
		case 'g': json_array_append_new(groups, json_string(optarg)); break;
		case 'r': replace = 1; break;
		case 'W': nowait = 1; break;
		default: usage(stderr); rc = 2; goto out;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "provctl: enroll needs the device address\n");
		rc = 2;
		goto out;
	}
	addr = argv[optind];
	if (label[0] == '\0') {
		/* the operator compares what the radio sees with the label */
		if ((rc = enroll_lookup(c, addr, name, sizeof(name))) != 0)
			goto out;
		rc = 1;
		if (tty_read("Type the address printed on the device's label: ", label,
		    sizeof(label), 0) != 0) {
			fprintf(stderr, "provctl: no terminal to confirm the label; give --label-mac\n");
			rc = 2;
			goto out;
		}
	}
	if (pin == NULL) {
		if ((pin = OPENSSL_secure_zalloc(64)) == NULL)
			goto out;
		if (tty_read("Setup PIN from the label: ", pin, 64, 1) != 0) {
			fprintf(stderr, "provctl: no terminal to ask for the PIN; give --pin-file\n");
			rc = 2;
			goto out;
		}
	}
	req = json_pack("{s:s,s:s,s:s,s:b}", "mac", addr, "label_mac", label, "pin", pin,
	    "replace", replace);
	if (req == NULL) {
		fprintf(stderr, "provctl: the address, label or PIN is not text\n");
		goto out;
	}
	if (keygen != NULL)
		json_object_set_new(req, "keygen", json_string(keygen));
	if (owner != NULL)
		json_object_set_new(req, "owner", json_string(owner));
	if (name[0] != '\0')
		json_object_set_new(req, "name", json_string(name));
	if (json_array_size(groups) > 0)
		json_object_set(req, "groups", groups);
	body = json_dumps(req, JSON_COMPACT);
	/* the PIN leaves this process only inside the request */
	OPENSSL_cleanse((char *)json_string_value(json_object_get(req, "pin")), strlen(pin));
	rc = api_call(c, "POST", "/v1/intake/enrollments", body, 202, &job);
	if (body != NULL)
		OPENSSL_cleanse(body, strlen(body));
	if (rc != 0)
		goto out;
	printf("enrollment %lld of %s started\n",
	    (long long)json_integer_value(json_object_get(job, "id")), addr);
	if (nowait) {
		rc = 0;
		goto out;
	}
	rc = enroll_follow(c, job);
out:
	secret_free(pin);
	free(body);
	json_decref(groups);
	json_decref(req);
	json_decref(job);
	return rc;
}

/* ---------------------------------------------------------------------
 * The LDAP directory mirror: "directory resync" and "directory status".
 */
static int
cmd_directory(struct ctl *c, int argc, char **argv)
{
	int resync = argc == 2 && strcmp(argv[1], "resync") == 0;
	json_t *j;
	int rc;

	if (!resync && !(argc == 2 && strcmp(argv[1], "status") == 0)) {
		fprintf(stderr, "provctl: directory resync|status\n");
		return 2;
	}
	rc = resync ? api_call(c, "POST", "/v1/directory/resync", NULL, 200, &j) :
	    api_call(c, "GET", "/v1/directory/status", NULL, 200, &j);
	if (rc != 0)
		return rc;
#define NUM(k) ((long long)json_integer_value(json_object_get(j, k)))
	if (resync) {
		printf("directory resync: %lld created, %lld updated, %lld deleted, "
		    "%lld unchanged, %lld failed (%lld ms)\n", NUM("created"), NUM("updated"),
		    NUM("deleted"), NUM("unchanged"), NUM("failed"), NUM("ms"));
		if (json_is_string(json_object_get(j, "first_error")))
			printf("first error: %s\n",
			    json_string_value(json_object_get(j, "first_error")));
		rc = NUM("failed") == 0 ? 0 : 1;
	} else if (!json_is_true(json_object_get(j, "configured"))) {
		printf("directory: not configured ([ldap] uri); %lld outbox rows pending\n",
		    NUM("pending"));
		rc = 0;
	} else {
		printf("directory: %s, %lld pending (oldest %lld s), %lld applied, %lld failed, "
		    "%lld entries in back-off\n",
		    json_is_true(json_object_get(j, "connected")) ? "connected" : "disconnected",
		    NUM("pending"), NUM("oldest_pending_s"), NUM("applied"), NUM("failed"),
		    NUM("entries_in_backoff"));
		if (json_is_integer(json_object_get(j, "retry_in_s")))
			printf("next connection attempt in %lld s\n", NUM("retry_in_s"));
		if (json_is_string(json_object_get(j, "last_error")))
			printf("last error (%s): %s\n",
			    json_string_value(json_object_get(j, "last_error_at")),
			    json_string_value(json_object_get(j, "last_error")));
		rc = 0;
	}
#undef NUM
	json_decref(j);
	return rc;
}

/* ---------------------------------------------------------------------
 * Access control.
 */

/* A path segment, percent-encoded (names may hold anything printable). */
static int
path_seg(const char *in, char *out, size_t outlen)
{
	char *e = curl_easy_escape(NULL, in, 0);
	int r = e != NULL && strlen(e) < outlen ? 0 : -1;

	if (r == 0)
		snprintf(out, outlen, "%s", e);
	curl_free(e);
	if (r != 0)
		fprintf(stderr, "provctl: \"%.40s\" is too long\n", in);
	return r;
}

/* One change: METHOD PATH BODY (NULL: none); prints the new policy version. */
static int
policy_call(struct ctl *c, const char *method, const char *path, json_t *body, int want)
{
	json_t *resp;
	int rc;

	if ((rc = api_call_json(c, method, path, body, want, &resp)) != 0)
		return rc;
	if (json_object_get(resp, "id") != NULL)
		printf("id %lld, ", (long long)json_integer_value(json_object_get(resp, "id")));
	printf("policy version %lld\n",
	    (long long)json_integer_value(json_object_get(resp, "policy_version")));
	json_decref(resp);
	return 0;
}

/* provctl authorize ADDR RESOURCE [ACTION]: exit 0 allow, 3 deny. */
static int
cmd_authorize(struct ctl *c, int argc, char **argv)
{
	json_t *req, *resp;
	int rc;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "provctl: authorize ADDR RESOURCE [ACTION]\n");
		return 2;
	}
	req = json_pack("{s:{s:s},s:s,s:s}", "device", "mac", argv[1], "resource", argv[2],
	    "action", argc == 4 ? argv[3] : "connect");
	if (req == NULL)
		return 1;
	rc = api_call_json(c, "POST", "/v1/authorize", req, 200, &resp);
	json_decref(req);
	if (rc != 0)
		return rc;
	const char *d = json_string_value(json_object_get(resp, "decision"));
	printf("%s: %s (policy version %lld, valid %lld s)\n", d ? d : "?",
	    json_string_value(json_object_get(resp, "reason")),
	    (long long)json_integer_value(json_object_get(resp, "policy_version")),
	    (long long)json_integer_value(json_object_get(resp, "ttl_s")));
	rc = d != NULL && strcmp(d, "allow") == 0 ? 0 : 3;
	json_decref(resp);
	return rc;
}

/* provctl resource add NAME [--class C] [--description D] | del NAME */
static int
cmd_resource(struct ctl *c, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "class", required_argument, NULL, 'c' },
		{ "description", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cls = NULL, *desc = NULL;
	char seg[400], path[512];
	json_t *body;
	int ch, rc;

	if (argc >= 3 && strcmp(argv[1], "del") == 0 && argc == 3) {
		if (path_seg(argv[2], seg, sizeof(seg)) != 0)
			return 2;
		snprintf(path, sizeof(path), "/v1/resources/%s", seg);
		return policy_call(c, "DELETE", path, NULL, 200);
	}
	if (argc < 3 || strcmp(argv[1], "add") != 0) {
		fprintf(stderr, "provctl: resource add NAME [--class C] [--description D] | "
		    "resource del NAME\n");
		return 2;
	}
	/* options after the verb: parse argv[1..] as its own command line */
	argc--;
	argv++;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'c': cls = optarg; break;
		case 'd': desc = optarg; break;
		default: return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "provctl: resource add needs one NAME\n");
		return 2;
	}
	body = json_pack("{s:s}", "name", argv[optind]);
	if (cls != NULL)
		json_object_set_new(body, "class", json_string(cls));
	if (desc != NULL)
		json_object_set_new(body, "description", json_string(desc));
	rc = policy_call(c, "POST", "/v1/resources", body, 201);
	json_decref(body);
	return rc;
}

/* provctl rule add SUBJECT --resource R [--action A] --allow|--deny [...] | del ID */
static int
cmd_rule(struct ctl *c, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "device", required_argument, NULL, 'D' },
		{ "user", required_argument, NULL, 'U' },
		{ "group", required_argument, NULL, 'G' },
		{ "resource", required_argument, NULL, 'r' },
		{ "action", required_argument, NULL, 'a' },
		{ "allow", no_argument, NULL, 'A' },
		{ "deny", no_argument, NULL, 'N' },
		{ "from", required_argument, NULL, 'f' },
		{ "until", required_argument, NULL, 'u' },
		{ "time", required_argument, NULL, 't' },
		{ "weekdays", required_argument, NULL, 'w' },
		{ "once", no_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *body = NULL, *subj = json_object();
	char path[64] = "", tf[8], tu[8];
	int ch, rc = 2, effect = -1;

	if (argc == 3 && strcmp(argv[1], "del") == 0) {
		json_decref(subj);
		snprintf(path, sizeof(path), "/v1/rules/%.32s", argv[2]);
		return policy_call(c, "DELETE", path, NULL, 200);
	}
	if (argc >= 3 && strcmp(argv[1], "replace") == 0) {
		/* rule replace ID OPTIONS: the same options as add */
		if (strspn(argv[2], "0123456789") != strlen(argv[2]) || strlen(argv[2]) > 19)
			goto usage;
		snprintf(path, sizeof(path), "/v1/rules/%s", argv[2]);
		argc -= 2;
		argv += 2;
	} else if (argc >= 2 && strcmp(argv[1], "add") == 0) {
		argc--;
		argv++;
	} else {
		goto usage;
	}
	body = json_object();
	optind = 0;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'D': json_object_set_new(subj, "device", json_string(optarg)); break;
		case 'U': json_object_set_new(subj, "user", json_string(optarg)); break;
		case 'G': json_object_set_new(subj, "group", json_string(optarg)); break;
		case 'r': json_object_set_new(body, "resource", json_string(optarg)); break;
		case 'a': json_object_set_new(body, "action", json_string(optarg)); break;
		case 'A': effect = 1; break;
		case 'N': effect = 0; break;
		case 'f': json_object_set_new(body, "valid_from", json_string(optarg)); break;
		case 'u': json_object_set_new(body, "valid_until", json_string(optarg)); break;
		case 't':
			if (strlen(optarg) != 11 || optarg[5] != '-') {
				fprintf(stderr, "provctl: --time is HH:MM-HH:MM (UTC)\n");
				goto out;
			}
			snprintf(tf, sizeof(tf), "%.5s", optarg);
			snprintf(tu, sizeof(tu), "%.5s", optarg + 6);
			json_object_set_new(body, "time_from", json_string(tf));
			json_object_set_new(body, "time_until", json_string(tu));
			break;
		case 'w': {
			json_t *days = json_array();
			char *copy = strdup(optarg), *save = NULL;
			for (char *d = strtok_r(copy, ",", &save); d != NULL; d = strtok_r(NULL, ",", &save))
				json_array_append_new(days, json_string(d));
			free(copy);
			json_object_set_new(body, "weekdays", days);
			break;
		}
		case 'o': json_object_set_new(body, "one_time", json_true()); break;
		default: goto usage;
		}
	}
	if (optind != argc || json_object_size(subj) != 1 || effect < 0 ||
	    json_object_get(body, "resource") == NULL)
		goto usage;
	json_object_set(body, "subject", subj);
	json_object_set_new(body, "effect", json_string(effect ? "allow" : "deny"));
	if (strncmp(path, "/v1/rules/", 10) == 0)
		rc = policy_call(c, "PUT", path, body, 200);
	else
		rc = policy_call(c, "POST", "/v1/rules", body, 201);
	goto out;
usage:
	fprintf(stderr, "provctl: rule add --device ADDR|--user NAME|--group NAME --resource R "
	    "[--action A] --allow|--deny\n"
	    "         [--from T --until T] [--time HH:MM-HH:MM] [--weekdays mon,tue,...] [--once]\n"
	    "       rule replace ID (the options of add)\n"
	    "       rule del ID\n");
out:
	json_decref(subj);
	json_decref(body);
	return rc;
}

/* provctl group validity GROUP DAYS|none */
static int
cmd_group_validity(struct ctl *c, int argc, char **argv)
{
	char gseg[400], path[1024];
	int64_t days = 0;
	json_t *body;
	int rc;

	if (argc != 4 || (strcmp(argv[3], "none") != 0 &&
	    parse_int64(argv[3], 1, 36500, &days) != 0)) {
		fprintf(stderr, "provctl: group validity GROUP DAYS|none (DAYS 1..36500)\n");
		return 2;
	}
	if (path_seg(argv[2], gseg, sizeof(gseg)) != 0)
		return 2;
	snprintf(path, sizeof(path), "/v1/groups/%s/validity", gseg);
	body = days > 0 ? json_pack("{s:I}", "max_validity_days", (json_int_t)days) :
	    json_pack("{s:n}", "max_validity_days");
	if (body == NULL)
		return 1;
	rc = api_call_json(c, "PUT", path, body, 200, NULL);
	json_decref(body);
	if (rc != 0)
		return rc;
	if (days > 0)
		printf("group %s: certificates of its members valid at most %lld days\n",
		    argv[2], (long long)days);
	else
		printf("group %s: no validity cap\n", argv[2]);
	return 0;
}

/* provctl renew-request ADDR */
static int
cmd_renew_request(struct ctl *c, int argc, char **argv)
{
	char mseg[400], path[1024];
	json_t *resp;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "provctl: renew-request ADDR\n");
		return 2;
	}
	if (path_seg(argv[1], mseg, sizeof(mseg)) != 0)
		return 2;
	snprintf(path, sizeof(path), "/v1/devices/%s/renew-request", mseg);
	if ((rc = api_call(c, "POST", path, NULL, 200, &resp)) != 0)
		return rc;
	printf("%s will renew certificate %s at its next contact\n",
	    json_string_value(json_object_get(resp, "mac")),
	    json_string_value(json_object_get(resp, "serial")));
	json_decref(resp);
	return 0;
}

/* ---------------------------------------------------------------------
 * Devices, users and groups: reading them, a device's owner, deleting a
 * user.
 */

/* GET path (it has a query) and hands every element of the array key to
 * each; follows "next" (appending &after=) to the last page unless
 * one_page. Returns the exit status. */
static int
list_pages(struct ctl *c, const char *path, const char *key, int one_page,
    void (*each)(json_t *item))
{
	char page[2048], *after = NULL;
	json_t *resp = NULL, *item;
	const char *next;
	size_t i;
	int rc = 1;

	snprintf(page, sizeof(page), "%s", path);
	for (;;) {
		if (api_call(c, "GET", page, NULL, 200, &resp) != 0)
			goto out;
		json_array_foreach(json_object_get(resp, key), i, item)
			each(item);
		next = json_string_value(json_object_get(resp, "next"));
		if (one_page || next == NULL)
			break;
		curl_free(after);
		if ((after = curl_easy_escape(NULL, next, 0)) == NULL ||
		    (size_t)snprintf(page, sizeof(page), "%s&after=%s", path, after) >= sizeof(page))
			goto out;
		json_decref(resp);
		resp = NULL;
	}
	rc = 0;
out:
	curl_free(after);
	json_decref(resp);
	return rc;
}

/* The names of an array of strings, comma-separated, into buf ("-" when
 * empty). */
static const char *
join_names(json_t *a, char *buf, size_t len)
{
	size_t i, at = 0;
	json_t *v;

	buf[0] = '\0';
	json_array_foreach(a, i, v)
		if (at < len)
			at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? "," : "",
			    json_string_value(v) ? json_string_value(v) : "?");
	return buf[0] != '\0' ? buf : "-";
}

static const char *
str_or(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : dflt;
}

static void
device_row(json_t *d)
{
	json_t *cert = json_object_get(d, "certificate");
	char groups[512];

	printf("%-17s  %-7s  %-20s  %-20s  %-6s  %s\n", str_or(d, "mac", "?"),
	    str_or(d, "status", "?"), str_or(d, "owner", "-"),
	    json_is_object(cert) ? str_or(cert, "not_after", "-") : "-",
	    json_is_true(json_object_get(d, "renew_requested")) ? "yes" : "no",
	    join_names(json_object_get(d, "groups"), groups, sizeof(groups)));
}

/* Appends "&key=VALUE" (VALUE percent-encoded) to path. */
static int
query_add(char *path, size_t len, const char *key, const char *value)
{
	char *e;
	size_t at = strlen(path);
	int r = -1;

	if (value == NULL)
		return 0;
	if ((e = curl_easy_escape(NULL, value, 0)) != NULL &&
	    (size_t)snprintf(path + at, len - at, "&%s=%s", key, e) < len - at)
		r = 0;
	curl_free(e);
	if (r != 0)
		fprintf(stderr, "provctl: \"%.40s\" is too long\n", value);
	return r;
}

/* provctl device list [--status S] [--owner U] [--group G] [--limit N] */
static int
cmd_device_list(struct ctl *c, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "status", required_argument, NULL, 's' },
		{ "owner", required_argument, NULL, 'o' },
		{ "group", required_argument, NULL, 'g' },
		{ "limit", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	const char *status = NULL, *owner = NULL, *group = NULL;
	char path[1536];
	int64_t limit = 0;
	int ch;

	argc--;
	argv++;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 's': status = optarg; break;
		case 'o': owner = optarg; break;
		case 'g': group = optarg; break;
		case 'l':
			if (parse_int64(optarg, 1, 1000, &limit) != 0) {
				fprintf(stderr, "provctl: --limit is 1 to 1000\n");
				return 2;
			}
			break;
		default: goto usage;
		}
	}
	if (optind != argc)
		goto usage;
	snprintf(path, sizeof(path), "/v1/devices?limit=%lld", (long long)(limit ? limit : 1000));
	if (query_add(path, sizeof(path), "status", status) != 0 ||
	    query_add(path, sizeof(path), "owner", owner) != 0 ||
	    query_add(path, sizeof(path), "group", group) != 0)
		return 2;
	printf("%-17s  %-7s  %-20s  %-20s  %-6s  %s\n", "ADDRESS", "STATUS", "OWNER",
	    "NOT AFTER", "RENEW", "GROUPS");
	return list_pages(c, path, "devices", limit > 0, device_row);
usage:
	fprintf(stderr, "provctl: device list [--status S] [--owner U] [--group G] [--limit N]\n");
	return 2;
}

/* provctl device show ADDR */
static int
cmd_device_show(struct ctl *c, const char *addr)
{
	char seg[400], path[512], groups[2048];
	json_t *d, *cert, *v;
	size_t i;
	int rc;

	if (path_seg(addr, seg, sizeof(seg)) != 0)
		return 2;
	snprintf(path, sizeof(path), "/v1/devices/%s", seg);
	if ((rc = api_call(c, "GET", path, NULL, 200, &d)) != 0)
		return rc;
	printf("address          %s\n", str_or(d, "mac", "?"));
	printf("status           %s\n", str_or(d, "status", "?"));
	printf("owner            %s\n", str_or(d, "owner", "-"));
	printf("groups           %s\n", join_names(json_object_get(d, "groups"), groups,
	    sizeof(groups)));
	printf("renew requested  %s\n",
	    json_is_true(json_object_get(d, "renew_requested")) ? "yes" : "no");
	printf("created          %s\n", str_or(d, "created_at", "?"));
	printf("updated          %s\n", str_or(d, "updated_at", "?"));
	printf("certificates (newest first):\n");
	json_array_foreach(json_object_get(d, "certificates"), i, cert) {
		printf("  %s  %-10s  %s .. %s", str_or(cert, "serial", "?"),
		    str_or(cert, "status", "?"), str_or(cert, "not_before", "?"),
		    str_or(cert, "not_after", "?"));
		if ((v = json_object_get(cert, "revocation_reason")) != NULL && json_is_string(v))
			printf("  %s %s", json_string_value(v), str_or(cert, "revoked_at", ""));
		printf("\n");
	}
	json_decref(d);
	return 0;
}

/* provctl device owner ADDR NAME|none */
static int
cmd_device_owner(struct ctl *c, const char *addr, const char *owner)
{
	char seg[400], path[512];
	json_t *body, *resp;
	int rc;

	if (path_seg(addr, seg, sizeof(seg)) != 0)
		return 2;
	snprintf(path, sizeof(path), "/v1/devices/%s/owner", seg);
	body = strcmp(owner, "none") == 0 ? json_pack("{s:n}", "owner") :
	    json_pack("{s:s}", "owner", owner);
	if (body == NULL) {
		fprintf(stderr, "provctl: the owner is not text\n");
		return 1;
	}
	rc = api_call_json(c, "PUT", path, body, 200, &resp);
	json_decref(body);
	if (rc != 0)
		return rc;
	printf("%s: owner %s (was %s)%s, policy version %lld\n", str_or(resp, "mac", "?"),
	    str_or(resp, "owner", "none"), str_or(resp, "previous_owner", "none"),
	    json_is_true(json_object_get(resp, "changed")) ? "" : ", unchanged",
	    (long long)json_integer_value(json_object_get(resp, "policy_version")));
	json_decref(resp);
	return 0;
}

static int
cmd_device(struct ctl *c, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return cmd_device_list(c, argc, argv);
	if (argc == 3 && strcmp(argv[1], "show") == 0)
		return cmd_device_show(c, argv[2]);
	if (argc == 4 && strcmp(argv[1], "owner") == 0)
		return cmd_device_owner(c, argv[2], argv[3]);
	fprintf(stderr, "provctl: device list [--status S] [--owner U] [--group G] [--limit N]\n"
	    "       device show ADDR\n"
	    "       device owner ADDR NAME|none\n");
	return 2;
}

static void
user_row(json_t *u)
{
	char groups[512];

	printf("%-24s  %7lld  %s\n", str_or(u, "name", "?"),
	    (long long)json_integer_value(json_object_get(u, "devices")),
	    join_names(json_object_get(u, "groups"), groups, sizeof(groups)));
}

/* provctl user list | user delete NAME */
static int
cmd_user(struct ctl *c, int argc, char **argv)
{
	char seg[400], path[512];

	if (argc == 2 && strcmp(argv[1], "list") == 0) {
		printf("%-24s  %7s  %s\n", "USER", "DEVICES", "GROUPS");
		return list_pages(c, "/v1/users?limit=1000", "users", 0, user_row);
	}
	if (argc == 3 && strcmp(argv[1], "delete") == 0) {
		if (path_seg(argv[2], seg, sizeof(seg)) != 0)
			return 2;
		snprintf(path, sizeof(path), "/v1/users/%s", seg);
		return policy_call(c, "DELETE", path, NULL, 200);
	}
	fprintf(stderr, "provctl: user list | user delete NAME\n");
	return 2;
}

static void
group_row(json_t *g)
{
	json_t *days = json_object_get(g, "max_validity_days");
	char cap[24] = "-";

	if (json_is_integer(days))
		snprintf(cap, sizeof(cap), "%lld", (long long)json_integer_value(days));
	printf("%-24s  %7lld  %7lld  %s\n", str_or(g, "name", "?"),
	    (long long)json_integer_value(json_object_get(g, "devices")),
	    (long long)json_integer_value(json_object_get(g, "users")), cap);
}

/* provctl group list | group show NAME */
static int
cmd_group_read(struct ctl *c, int argc, char **argv)
{
	char seg[400], path[512], line[2048];
	json_t *g, *members, *v;
	size_t i;
	int rc;

	if (argc == 2 && strcmp(argv[1], "list") == 0) {
		printf("%-24s  %7s  %7s  %s\n", "GROUP", "DEVICES", "USERS", "MAX DAYS");
		return list_pages(c, "/v1/groups?limit=1000", "groups", 0, group_row);
	}
	if (argc != 3 || strcmp(argv[1], "show") != 0) {
		fprintf(stderr, "provctl: group list | group show GROUP\n");
		return 2;
	}
	if (path_seg(argv[2], seg, sizeof(seg)) != 0)
		return 2;
	snprintf(path, sizeof(path), "/v1/groups/%s", seg);
	if ((rc = api_call(c, "GET", path, NULL, 200, &g)) != 0)
		return rc;
	members = json_object_get(g, "members");
	printf("group            %s\n", str_or(g, "name", "?"));
	v = json_object_get(g, "max_validity_days");
	if (json_is_integer(v))
		printf("max validity     %lld days\n", (long long)json_integer_value(v));
	else
		printf("max validity     none\n");
	printf("devices          %lld\n", (long long)json_integer_value(json_object_get(g, "devices")));
	json_array_foreach(json_object_get(members, "devices"), i, v)
		printf("  %s\n", json_string_value(v));
	printf("users            %lld\n", (long long)json_integer_value(json_object_get(g, "users")));
	json_array_foreach(json_object_get(members, "users"), i, v)
		printf("  %s\n", json_string_value(v));
	if (json_is_true(json_object_get(members, "truncated")))
		printf("(members listed up to 1000 of each; provctl device list --group lists all "
		    "devices)\n");
	line[0] = '\0';
	json_array_foreach(json_object_get(g, "rules"), i, v) {
		size_t at = strlen(line);
		snprintf(line + at, sizeof(line) - at, "%s%lld", i ? ", " : "",
		    (long long)json_integer_value(v));
	}
	printf("rules            %s\n", line[0] ? line : "none");
	json_decref(g);
	return 0;
}

/* provctl group add|remove GROUP --device ADDR|--user NAME */
static int
cmd_group(struct ctl *c, int argc, char **argv)
{
	char gseg[400], mseg[400], path[1024];
	const char *kind;
	int add;

	if (argc >= 2 && strcmp(argv[1], "validity") == 0)
		return cmd_group_validity(c, argc, argv);
	if (argc >= 2 && (strcmp(argv[1], "list") == 0 || strcmp(argv[1], "show") == 0))
		return cmd_group_read(c, argc, argv);
	if (argc != 5 || (strcmp(argv[1], "add") != 0 && strcmp(argv[1], "remove") != 0) ||
	    (strcmp(argv[3], "--device") != 0 && strcmp(argv[3], "--user") != 0)) {
		fprintf(stderr, "provctl: group add|remove GROUP --device ADDR|--user NAME\n");
		return 2;
	}
	add = strcmp(argv[1], "add") == 0;
	kind = strcmp(argv[3], "--device") == 0 ? "devices" : "users";
	if (path_seg(argv[2], gseg, sizeof(gseg)) != 0 || path_seg(argv[4], mseg, sizeof(mseg)) != 0)
		return 2;
	if (add) {
		json_t *body = json_pack("{s:s}", strcmp(kind, "devices") == 0 ? "mac" : "name",
		    argv[4]);
		snprintf(path, sizeof(path), "/v1/groups/%s/%s", gseg, kind);
		int rc = policy_call(c, "POST", path, body, 201);
		json_decref(body);
		return rc;
	}
	snprintf(path, sizeof(path), "/v1/groups/%s/%s/%s", gseg, kind, mseg);
	return policy_call(c, "DELETE", path, NULL, 200);
}

/* provctl policy: resources and their rules. */
static int
cmd_policy(struct ctl *c)
{
	json_t *resp, *res, *rules, *r;
	size_t i, k;
	int rc;

	if ((rc = api_call(c, "GET", "/v1/policy", NULL, 200, &resp)) != 0)
		return rc;
	printf("policy version %lld\n",
	    (long long)json_integer_value(json_object_get(resp, "policy_version")));
	json_array_foreach(json_object_get(resp, "resources"), i, res) {
		printf("%s\n", json_string_value(json_object_get(res, "name")));
		rules = json_object_get(res, "rules");
		json_array_foreach(rules, k, r) {
			char *subj = json_dumps(json_object_get(r, "subject"), JSON_COMPACT);
			printf("  rule %-5lld %-5s %-10s %s%s\n",
			    (long long)json_integer_value(json_object_get(r, "id")),
			    json_string_value(json_object_get(r, "effect")),
			    json_string_value(json_object_get(r, "action")), subj ? subj : "",
			    json_is_true(json_object_get(r, "one_time")) ? " (once)" : "");
			free(subj);
		}
	}
	json_decref(resp);
	return 0;
}

static int
load_token(struct ctl *c, const char *file)
{
	const char *env = getenv("PROVD_TOKEN");

	if (file == NULL)
		file = getenv("PROVD_TOKEN_FILE");
	if (file != NULL && *file != '\0') {
		if (secret_read_file(file, &c->token) != 0) {
			fprintf(stderr, "provctl: cannot read the token file %s\n", file);
			return -1;
		}
		return 0;
	}
	if (env != NULL && *env != '\0') {
		size_t len = strlen(env) + 1;
		if ((c->token = OPENSSL_secure_zalloc(len)) == NULL)
			return -1;
		memcpy(c->token, env, len);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "token-file", required_argument, NULL, 't' },
		{ "cacert", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c = { 0 };
	const char *token_file = NULL;
	int ch, rc;

	c.url = getenv("PROVD_URL");
	if (c.url == NULL || *c.url == '\0')
		c.url = DEFAULT_URL;
	while ((ch = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		switch (ch) {
		case 'u': c.url = optarg; break;
		case 't': token_file = optarg; break;
		case 'C': c.cacert = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return 2;
	}
	CRYPTO_secure_malloc_init(1 << 16, 32);
	if (load_token(&c, token_file) != 0)
		return 1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (strcmp(argv[0], "health") == 0)
		rc = cmd_health(&c);
	else if (strcmp(argv[0], "issue") == 0)
		rc = cmd_issue(&c, argc, argv);
	else if (strcmp(argv[0], "cert") == 0)
		rc = cmd_cert(&c, argc, argv);
	else if (strcmp(argv[0], "revoke") == 0)
		rc = cmd_revoke(&c, argc, argv, 0);
	else if (strcmp(argv[0], "unrevoke") == 0)
		rc = cmd_revoke(&c, argc, argv, 1);
	else if (strcmp(argv[0], "crl") == 0)
		rc = cmd_crl(&c, argc, argv);
	else if (strcmp(argv[0], "audit") == 0)
		rc = cmd_audit(&c, argc, argv);
	else if (strcmp(argv[0], "scan") == 0)
		rc = cmd_scan(&c, argc, argv);
	else if (strcmp(argv[0], "enroll") == 0)
		rc = cmd_enroll(&c, argc, argv);
	else if (strcmp(argv[0], "directory") == 0)
		rc = cmd_directory(&c, argc, argv);
	else if (strcmp(argv[0], "authorize") == 0)
		rc = cmd_authorize(&c, argc, argv);
	else if (strcmp(argv[0], "policy") == 0)
		rc = cmd_policy(&c);
	else if (strcmp(argv[0], "resource") == 0)
		rc = cmd_resource(&c, argc, argv);
	else if (strcmp(argv[0], "rule") == 0)
		rc = cmd_rule(&c, argc, argv);
	else if (strcmp(argv[0], "group") == 0)
		rc = cmd_group(&c, argc, argv);
	else if (strcmp(argv[0], "device") == 0)
		rc = cmd_device(&c, argc, argv);
	else if (strcmp(argv[0], "user") == 0)
		rc = cmd_user(&c, argc, argv);
	else if (strcmp(argv[0], "renew-request") == 0)
		rc = cmd_renew_request(&c, argc, argv);
	else {
		usage(stderr);
		rc = 2;
	}
	secret_free(c.token);
	curl_global_cleanup();
	return rc;
}
