/*
 * test_ca_signer.c: the signer process — issuing and CRLs through it, checked
 * with the openssl command line; restart after kill -9; timeouts; malformed
 * requests are fatal to it. This binary re-executes itself as the signer
 * ("test_ca_signer signer --fd N -c CONF"), as provd does.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "ca/ca_int.h"
#include "ca_test.h"

static char self[PATH_MAX];

struct fixture {
	char *base;
	char conf[512];
	struct config *cfg;
	struct ca_signer *s;
	EVP_PKEY *dev;
	uint8_t *spki;
	size_t spkilen;
};

/* The "signer" mode of this binary. */
static int
signer_entry(int argc, char **argv)
{
	struct config *cfg = NULL;
	char err[256];
	int64_t fd;
	int r;

	if (argc != 6 || strcmp(argv[2], "--fd") != 0 || strcmp(argv[4], "-c") != 0 ||
	    parse_int64(argv[3], 0, 1024, &fd) != 0) {
		fprintf(stderr, "usage: %s signer --fd N -c CONF\n", argv[0]);
		return 64;
	}
	if (config_load(argv[5], &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	log_init("test-signer", LOG_LVL_WARN, 0, 0);
	r = ca_signer_main((int)fd, cfg);
	config_free(cfg);
	return r;
}

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];
	struct ca_init_opts o = { .two_tier = 1 };

	assert_non_null(f);
	f->base = tmpdir_new();
	o.dir = pjoin(f->base, "ca");
	if (ca_init(&o, err, sizeof(err)) != 0)
		fail_msg("ca_init: %s", err);
	f->cfg = cfg_write_load(f->base, "provd", 1, NULL, f->conf, sizeof(f->conf));
	assert_int_equal(ca_signer_start(self, f->conf, &f->s), 0);
	f->dev = key_gen("EC", "P-256");
	spki_of(f->dev, &f->spki, &f->spkilen);
	*state = f;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fixture *f = *state;

	ca_signer_stop(f->s);
	config_free(f->cfg);
	EVP_PKEY_free(f->dev);
	free(f->spki);
	tmpdir_rm(f->base);
	free(f);
	return 0;
}

static void
verify_leaf(struct fixture *f, const char *name, const uint8_t *der, size_t len,
    const char *crl, int want_ok)
{
	const char *leaf = pjoin(f->base, name);
	char *out = NULL, crlopt[600] = "";
	int st;

	write_der_as_pem(leaf, "CERTIFICATE", der, len);
	if (crl != NULL)
		snprintf(crlopt, sizeof(crlopt), "-crl_check -CRLfile %s", crl);
	st = run_cmd(&out, "openssl verify -x509_strict %s -CAfile %s -untrusted %s %s", crlopt,
	    pjoin(f->base, "ca/root.crt"), pjoin(f->base, "ca/chain.pem"), leaf);
	if (want_ok && (st != 0 || strstr(out, ": OK") == NULL))
		fail_msg("openssl verify %s: %s", name, out);
	if (!want_ok) {
		if (st == 0)
			fail_msg("openssl verify accepted %s: %s", name, out);
		if (strstr(out, "certificate revoked") == NULL)
			fail_msg("openssl verify %s: no \"certificate revoked\" in %s", name, out);
	}
	free(out);
}

static void
test_issue_through_signer(void **state)
{
	struct fixture *f = *state;
	struct ca_issue_req req = issue_req_make(f->spki, f->spkilen, 30);
	uint8_t *der = NULL;
	size_t len = 0;
	char hex[CA_SERIAL_HEX], want[CA_SERIAL_HEX], *out;

	assert_true(ca_signer_pid(f->s) > 0);
	assert_int_equal(ca_signer_issue(f->s, &req, &der, &len), 0);
	assert_non_null(der);
	verify_leaf(f, "leaf.pem", der, len, NULL, 1);
	assert_int_equal(ca_cert_serial_hex(der, len, hex), 0);
	hex_encode(req.serial, CA_SERIAL_LEN, want);
	assert_string_equal(hex, want);
	assert_int_equal(run_cmd(&out, "openssl x509 -in %s -noout -text",
	    pjoin(f->base, "leaf.pem")), 0);
	assert_non_null(strstr(out, "URI:urn:dev:mac:001a7dda7113"));
	assert_non_null(strstr(out, "OCSP - URI:" TEST_OCSP_URL));
	free(out);
	free(der);

	/* the same request in-process gives the same certificate body */
	struct ca_key *k = NULL;
	uint8_t *der2 = NULL;
	size_t len2 = 0;
	assert_int_equal(ca_key_load(f->cfg, &k), 0);
	assert_int_equal(ca_key_issue(k, &req, &der2, &len2), 0);
	assert_int_equal(ca_signer_issue(f->s, &req, &der, &len), 0);
	const unsigned char *p1 = der, *p2 = der2;
	X509 *x1 = d2i_X509(NULL, &p1, (long)len), *x2 = d2i_X509(NULL, &p2, (long)len2);
	assert_non_null(x1);
	assert_non_null(x2);
	unsigned char *t1 = NULL, *t2 = NULL;
	int l1 = i2d_re_X509_tbs(x1, &t1), l2 = i2d_re_X509_tbs(x2, &t2);
	assert_int_equal(l1, l2);
	assert_memory_equal(t1, t2, (size_t)l1);
	OPENSSL_free(t1);
	OPENSSL_free(t2);
	X509_free(x1);
	X509_free(x2);
	free(der);
	free(der2);
	ca_key_free(k);
}

/* Refusals come back as codes; the signer stays up. */
static void
test_refusals_pass_through(void **state)
{
	struct fixture *f = *state;
	struct ca_issue_req req = issue_req_make(f->spki, f->spkilen, 30);
	pid_t pid = ca_signer_pid(f->s);
	uint8_t *der = (uint8_t *)"x";
	size_t len = 7;

	req.not_after = req.not_before + 400 * 86400;
	assert_int_equal(ca_signer_issue(f->s, &req, &der, &len), ERR_INVALID);
	assert_null(der);
	assert_int_equal(len, 0);
	req = issue_req_make(f->spki, f->spkilen, 30);
	req.mac[0] = 0xff;
	assert_int_equal(ca_signer_issue(f->s, &req, &der, &len), ERR_BAD_MAC);
	req = issue_req_make(f->spki, f->spkilen - 3, 30);
	assert_int_equal(ca_signer_issue(f->s, &req, &der, &len), ERR_INVALID);

	/* too big to send: refused before the signer sees it */
	req = issue_req_make(f->spki, CA_MAX_SPKI + 1, 30);
	assert_int_equal(ca_signer_issue(f->s, &req, &der, &len), ERR_TOO_BIG);
	struct ca_crl_req creq = { .crl_number = 1, .this_update = 1, .next_update = 2,
	    .revoked = (const struct ca_revoked *)&req, .nrevoked = CA_MAX_CRL_ENTRIES + 1 };
	assert_int_equal(ca_signer_crl(f->s, &creq, &der, &len), ERR_TOO_BIG);
	assert_int_equal(ca_signer_issue(NULL, &req, &der, &len), ERR_INVALID);

	assert_int_equal(ca_signer_pid(f->s), pid);
	req = issue_req_make(f->spki, f->spkilen, 30);
	assert_int_equal(ca_signer_issue(f->s, &req, &der, &len), 0);
	free(der);
}

static void
test_crl_through_signer(void **state)
{
	struct fixture *f = *state;
	struct ca_issue_req ra = issue_req_make(f->spki, f->spkilen, 30);
	struct ca_issue_req rb = issue_req_make(f->spki, f->spkilen, 30);
	uint8_t *a, *b, *crl;
	size_t alen, blen, crllen;
	int64_t now = (int64_t)time(NULL);
	struct ca_revoked rev = { .revoked_at = now - 10, .reason = 1 };
	struct ca_crl_req creq = { .crl_number = 7, .this_update = now - 60,
	    .next_update = now + 86400, .revoked = &rev, .nrevoked = 1 };
	char *out, hex[CA_SERIAL_HEX];

	assert_int_equal(ca_signer_issue(f->s, &ra, &a, &alen), 0);
	assert_int_equal(ca_signer_issue(f->s, &rb, &b, &blen), 0);
	memcpy(rev.serial, ra.serial, CA_SERIAL_LEN);
	assert_int_equal(ca_signer_crl(f->s, &creq, &crl, &crllen), 0);
	write_bytes(pjoin(f->base, "crl.der"), crl, crllen);

	assert_int_equal(run_cmd(&out, "openssl crl -inform DER -in %s -noout -text",
	    pjoin(f->base, "crl.der")), 0);
	assert_non_null(strstr(out, "Version 2 (0x1)"));
	assert_non_null(strstr(out, "X509v3 CRL Number: \n                7\n"));
	assert_non_null(strstr(out, "Key Compromise"));
	assert_non_null(strstr(out, "Issuer: CN = provd Issuing CA"));
	hex_encode(ra.serial, CA_SERIAL_LEN, hex);
	for (char *c = hex; *c != '\0'; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 'a' + 'A');
	/* openssl prints the serial in upper case without leading zero bytes */
	const char *h = hex;
	while (h[0] == '0' && h[1] == '0')
		h += 2;
	assert_non_null(strstr(out, h));
	free(out);

	write_der_as_pem(pjoin(f->base, "crl.pem"), "X509 CRL", crl, crllen);
	verify_leaf(f, "a.pem", a, alen, pjoin(f->base, "crl.pem"), 0);
	verify_leaf(f, "b.pem", b, blen, pjoin(f->base, "crl.pem"), 1);
	free(crl);

	/* a delta CRL against it: the base number crosses the socket */
	rev.reason = 8;
	creq.crl_number = 9;
	creq.delta_base = 7;
	assert_int_equal(ca_signer_crl(f->s, &creq, &crl, &crllen), 0);
	write_bytes(pjoin(f->base, "delta.der"), crl, crllen);
	assert_int_equal(run_cmd(&out, "openssl crl -inform DER -in %s -noout -text",
	    pjoin(f->base, "delta.der")), 0);
	assert_non_null(strstr(out, "X509v3 Delta CRL Indicator: critical\n                7\n"));
	assert_non_null(strstr(out, "Remove From CRL"));
	free(out);
	free(crl);
	/* refused by the signer, which stays up: removeFromCRL in a complete CRL */
	creq.delta_base = 0;
	assert_int_equal(ca_signer_crl(f->s, &creq, &crl, &crllen), ERR_INVALID);
	assert_null(crl);
	free(a);
	free(b);
}

/* The CRL payload carries the delta base and decodes to what was encoded. */
static void
test_crl_msg_round_trip(void **state)
{
	struct ca_revoked rev[2] = { { .revoked_at = 5, .reason = 6 }, { .revoked_at = 6, .reason = 8 } };
	struct ca_crl_req in = { .crl_number = 21, .this_update = 1, .next_update = 2,
	    .delta_base = 20, .revoked = rev, .nrevoked = 2 }, out;
	struct ca_revoked *entries = NULL;
	uint8_t *msg;
	size_t len;
	(void)state;

	rev[0].serial[0] = 1;
	rev[1].serial[15] = 2;
	assert_int_equal(ca_msg_crl_encode(&in, &msg, &len), 0);
	assert_int_equal(len, SIGNER_CRL_FIXED + 2 * SIGNER_CRL_ENTRY);
	assert_int_equal(ca_msg_crl_decode(msg, len, &out, &entries), 0);
	assert_int_equal(out.crl_number, 21);
	assert_int_equal(out.delta_base, 20);
	assert_int_equal(out.nrevoked, 2);
	for (int i = 0; i < 2; i++) {
		assert_memory_equal(entries[i].serial, rev[i].serial, CA_SERIAL_LEN);
		assert_int_equal(entries[i].revoked_at, rev[i].revoked_at);
		assert_int_equal(entries[i].reason, rev[i].reason);
	}
	free(entries);
	/* one byte short of the delta base */
	assert_int_equal(ca_msg_crl_decode(msg, SIGNER_CRL_FIXED - 1, &out, &entries),
	    ERR_INVALID);
	assert_null(entries);
	free(msg);
}

/* A large CRL exercises long messages in both directions. */
static void
test_large_crl(void **state)
{
	struct fixture *f = *state;
	enum { N = 200000 };
	struct ca_revoked *rev = calloc(N, sizeof(*rev));
	int64_t now = (int64_t)time(NULL);
	struct ca_crl_req creq = { .crl_number = 8, .this_update = now, .next_update = now + 3600,
	    .revoked = rev, .nrevoked = N };
	uint8_t *crl;
	size_t crllen;
	const unsigned char *p;
	X509_CRL *c;

	assert_non_null(rev);
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(ca_serial_new(rev[i].serial), 0);
		rev[i].revoked_at = now - (int64_t)i;
		rev[i].reason = (int)(i % 7);
	}
	assert_int_equal(ca_signer_crl(f->s, &creq, &crl, &crllen), 0);
	assert_true(crllen > (size_t)N * 30);
	p = crl;
	c = d2i_X509_CRL(NULL, &p, (long)crllen);
	assert_non_null(c);
	assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(c)), N);
	X509_CRL_free(c);
	free(crl);
	free(rev);
}

static int
is_zombie_or_gone(pid_t pid)
{
	char path[64], buf[256], *rp;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return 1;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	rp = strrchr(buf, ')');
	return rp == NULL || rp[2] == 'Z' || rp[2] == 'X';
}

static void
test_kill_and_respawn(void **state)
{
	struct fixture *f = *state;
	struct ca_issue_req req = issue_req_make(f->spki, f->spkilen, 30);
	pid_t pid = ca_signer_pid(f->s), pid2;
	uint8_t *der = NULL;
	size_t len;

	assert_true(pid > 0);
	assert_int_equal(kill(pid, SIGKILL), 0);
	for (int i = 0; i < 500 && !is_zombie_or_gone(pid); i++)
		usleep(10000);
	assert_true(is_zombie_or_gone(pid));
	assert_int_equal(ca_signer_issue(f->s, &req, &der, &len), ERR_SIGNER);
	assert_null(der);
	assert_int_equal(ca_signer_pid(f->s), 0);
	/* reaped: no zombie left */
	assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);

	/* the next call starts a new signer */
	assert_int_equal(ca_signer_issue(f->s, &req, &der, &len), 0);
	verify_leaf(f, "respawned.pem", der, len, NULL, 1);
	free(der);
	pid2 = ca_signer_pid(f->s);
	assert_true(pid2 > 0);
	assert_int_not_equal(pid2, pid);
}

/* The signer holds the key: no core dumps. */
static void
test_no_core_dumps(void **state)
{
	struct fixture *f = *state;
	char *out;

	assert_int_equal(run_cmd(&out, "grep 'Max core file size' /proc/%ld/limits",
	    (long)ca_signer_pid(f->s)), 0);
	assert_non_null(strstr(out, " 0                    0 "));
	free(out);
}

/* A signer that stops answering is killed after the timeout. */
static void
test_timeout(void **state)
{
	struct fixture *f = *state;
	struct ca_issue_req req = issue_req_make(f->spki, f->spkilen, 30);
	pid_t pid = ca_signer_pid(f->s);
	uint8_t *der = NULL;
	size_t len;
	struct timespec t0;
	double s;

	assert_true(pid > 0);
	assert_int_equal(kill(pid, SIGSTOP), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(ca_signer_issue(f->s, &req, &der, &len), ERR_SIGNER);
	s = secs_since(&t0);
	assert_true(s > 9.0 && s < 30.0);
	assert_int_equal(ca_signer_pid(f->s), 0);
	assert_int_equal(ca_signer_issue(f->s, &req, &der, &len), 0);
	free(der);
}

struct worker {
	struct fixture *f;
	int ok;
	uint8_t serials[100][CA_SERIAL_LEN];
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 100; i++) {
		struct ca_issue_req req = issue_req_make(w->f->spki, w->f->spkilen, 30);
		uint8_t *der = NULL;
		size_t len;
		char hex[CA_SERIAL_HEX], want[CA_SERIAL_HEX];

		if (ca_signer_issue(w->f->s, &req, &der, &len) != 0)
			return NULL;
		hex_encode(req.serial, CA_SERIAL_LEN, want);
		if (ca_cert_serial_hex(der, len, hex) != 0 || strcmp(hex, want) != 0) {
			free(der);
			return NULL;
		}
		memcpy(w->serials[i], req.serial, CA_SERIAL_LEN);
		free(der);
	}
	w->ok = 1;
	return NULL;
}

/* One handle, many threads: every reply reaches the thread that asked. */
static void
test_threads(void **state)
{
	enum { T = 4 };
	struct worker w[T];
	pthread_t th[T];

	for (int i = 0; i < T; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].f = *state;
		assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < T; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_true(w[i].ok);
	}
}

static void
test_start_failures(void **state)
{
	struct fixture *f = *state;
	struct ca_signer *s = (struct ca_signer *)1;
	char path[512], *empty = tmpdir_new();
	struct config *cfg;

	/* no CA key: the signer exits and start says so */
	cfg = cfg_write_load(empty, "provd", 0, NULL, path, sizeof(path));
	assert_int_equal(ca_signer_start(self, path, &s), ERR_SIGNER);
	assert_null(s);
	/* no such program */
	assert_int_equal(ca_signer_start("/nonexistent/provd", f->conf, &s), ERR_SIGNER);
	assert_null(s);
	assert_int_equal(ca_signer_start(NULL, f->conf, &s), ERR_INVALID);
	ca_signer_stop(NULL);
	assert_int_equal(ca_signer_pid(NULL), 0);
	config_free(cfg);
	tmpdir_rm(empty);
}

/* A program that answers like a broken signer: it is killed, not waited for. */
static void
test_fake_signer(void **state)
{
	struct fixture *f = *state;
	static const char script[] = "#!/bin/sh\n"
	    "printf '\\062\\123\\126\\120\\001\\000\\000\\000\\000\\000\\000\\000' >&3\n"
	    "sleep 0.3\n"
	    "printf '\\062\\123\\126\\120\\002\\000\\000\\000\\002\\000\\000\\000xx' >&3\n"
	    "exec sleep 30\n";
	static const char garbage[] = "#!/bin/sh\necho not a signer >&3\nexec sleep 30\n";
	struct ca_issue_req req = issue_req_make(f->spki, f->spkilen, 30);
	const char *fake = pjoin(f->base, "fake-signer"), *junk = pjoin(f->base, "junk-signer");
	struct ca_signer *s = NULL;
	struct timespec t0;
	uint8_t *der = NULL;
	size_t len;

	write_bytes(fake, script, strlen(script));
	write_bytes(junk, garbage, strlen(garbage));
	assert_int_equal(chmod(fake, 0755), 0);
	assert_int_equal(chmod(junk, 0755), 0);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(ca_signer_start(junk, f->conf, &s), ERR_SIGNER);
	assert_null(s);
	assert_true(secs_since(&t0) < 5.0);

	assert_int_equal(ca_signer_start(fake, f->conf, &s), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(ca_signer_issue(s, &req, &der, &len), ERR_SIGNER);
	assert_null(der);
	assert_true(secs_since(&t0) < 5.0);
	assert_int_equal(ca_signer_pid(s), 0);
	ca_signer_stop(s);
}

/* ---------------------------------------------------------------------
 * Talking to a signer directly, as a broken parent would.
 */
static pid_t
raw_spawn(struct fixture *f, int *fdp)
{
	int sv[2];
	uint32_t hdr[3];
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (sv[1] == 3)
			fcntl(3, F_SETFD, 0);
		else
			dup2(sv[1], 3);
		execl(self, self, "signer", "--fd", "3", "-c", f->conf, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	assert_int_equal(recv(sv[0], hdr, sizeof(hdr), MSG_WAITALL), (ssize_t)sizeof(hdr));
	assert_int_equal(hdr[0], SIGNER_MAGIC);
	assert_int_equal(hdr[1], SIGNER_READY);
	assert_int_equal(hdr[2], 0);
	*fdp = sv[0];
	return pid;
}

/* Expects the signer to close the socket and exit with status want. */
static void
raw_expect_exit(pid_t pid, int fd, int want)
{
	char buf[64];
	int st;

	assert_int_equal(read(fd, buf, sizeof(buf)), 0);
	close(fd);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), want);
}

static void
raw_send(int fd, const void *p, size_t len)
{
	assert_int_equal(send(fd, p, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void
test_malformed_requests(void **state)
{
	struct fixture *f = *state;
	struct ca_issue_req req = issue_req_make(f->spki, f->spkilen, 30);
	uint8_t *msg, crlmsg[SIGNER_CRL_FIXED + 4 * SIGNER_CRL_ENTRY];
	size_t msglen;
	uint32_t hdr[3], n;
	int fd;
	pid_t pid;

	assert_int_equal(ca_msg_issue_encode(&req, &msg, &msglen), 0);

	/* bad magic */
	pid = raw_spawn(f, &fd);
	hdr[0] = 0xdeadbeef, hdr[1] = SIGNER_ISSUE, hdr[2] = 0;
	raw_send(fd, hdr, sizeof(hdr));
	raw_expect_exit(pid, fd, SIGNER_EXIT_BADMSG);

	/* unknown type */
	pid = raw_spawn(f, &fd);
	hdr[0] = SIGNER_MAGIC, hdr[1] = 99, hdr[2] = 0;
	raw_send(fd, hdr, sizeof(hdr));
	raw_expect_exit(pid, fd, SIGNER_EXIT_BADMSG);

	/* over the length limits */
	pid = raw_spawn(f, &fd);
	hdr[0] = SIGNER_MAGIC, hdr[1] = SIGNER_ISSUE, hdr[2] = SIGNER_MAX_ISSUE + 1;
	raw_send(fd, hdr, sizeof(hdr));
	raw_expect_exit(pid, fd, SIGNER_EXIT_BADMSG);
	pid = raw_spawn(f, &fd);
	hdr[0] = SIGNER_MAGIC, hdr[1] = SIGNER_CRL, hdr[2] = UINT32_MAX;
	raw_send(fd, hdr, sizeof(hdr));
	raw_expect_exit(pid, fd, SIGNER_EXIT_BADMSG);

	/* inner length inconsistent with the payload */
	pid = raw_spawn(f, &fd);
	n = (uint32_t)f->spkilen + 1;
	memcpy(msg + MAC_LEN + CA_SERIAL_LEN + 16, &n, 4);
	hdr[0] = SIGNER_MAGIC, hdr[1] = SIGNER_ISSUE, hdr[2] = (uint32_t)msglen;
	raw_send(fd, hdr, sizeof(hdr));
	raw_send(fd, msg, msglen);
	raw_expect_exit(pid, fd, SIGNER_EXIT_BADMSG);
	n = (uint32_t)f->spkilen;
	memcpy(msg + MAC_LEN + CA_SERIAL_LEN + 16, &n, 4);

	/* payload shorter than announced, then EOF */
	pid = raw_spawn(f, &fd);
	hdr[2] = (uint32_t)msglen + 10;
	raw_send(fd, hdr, sizeof(hdr));
	raw_send(fd, msg, msglen);
	shutdown(fd, SHUT_WR);
	raw_expect_exit(pid, fd, SIGNER_EXIT_BADMSG);

	/* half a header, then EOF */
	pid = raw_spawn(f, &fd);
	raw_send(fd, hdr, 5);
	shutdown(fd, SHUT_WR);
	raw_expect_exit(pid, fd, SIGNER_EXIT_BADMSG);

	/* CRL whose count disagrees with its length */
	pid = raw_spawn(f, &fd);
	memset(crlmsg, 0, sizeof(crlmsg));
	n = 5;
	memcpy(crlmsg + 24, &n, 4);
	hdr[0] = SIGNER_MAGIC, hdr[1] = SIGNER_CRL, hdr[2] = sizeof(crlmsg);
	raw_send(fd, hdr, sizeof(hdr));
	raw_send(fd, crlmsg, sizeof(crlmsg));
	raw_expect_exit(pid, fd, SIGNER_EXIT_BADMSG);

	/* a well-formed request dribbled one byte at a time is served */
	pid = raw_spawn(f, &fd);
	hdr[0] = SIGNER_MAGIC, hdr[1] = SIGNER_ISSUE, hdr[2] = (uint32_t)msglen;
	for (size_t i = 0; i < sizeof(hdr); i++)
		raw_send(fd, (uint8_t *)hdr + i, 1);
	for (size_t i = 0; i < msglen; i++)
		raw_send(fd, msg + i, 1);
	uint32_t rh[3];
	int32_t status;
	assert_int_equal(recv(fd, rh, sizeof(rh), MSG_WAITALL), (ssize_t)sizeof(rh));
	assert_int_equal(rh[0], SIGNER_MAGIC);
	assert_int_equal(rh[1], SIGNER_ISSUE);
	assert_true(rh[2] > 4 + 300);
	assert_int_equal(recv(fd, &status, 4, MSG_WAITALL), 4);
	assert_int_equal(status, 0);
	uint8_t *der = malloc(rh[2] - 4);
	assert_non_null(der);
	assert_int_equal(recv(fd, der, rh[2] - 4, MSG_WAITALL), (ssize_t)(rh[2] - 4));
	char hex[CA_SERIAL_HEX];
	assert_int_equal(ca_cert_serial_hex(der, rh[2] - 4, hex), 0);
	free(der);
	/* and a clean EOF ends it with status 0 */
	shutdown(fd, SHUT_WR);
	raw_expect_exit(pid, fd, SIGNER_EXIT_OK);

	free(msg);
}

/* Issuance rate through the signer, one request at a time. */
static void
test_signer_rate(void **state)
{
	struct fixture *f = *state;
	enum { N = 3000 };
	struct ca_issue_req req = issue_req_make(f->spki, f->spkilen, 30);
	struct timespec t0;
	uint8_t *der;
	size_t len;
	double s;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(ca_serial_new(req.serial), 0);
		assert_int_equal(ca_signer_issue(f->s, &req, &der, &len), 0);
		free(der);
	}
	s = secs_since(&t0);
	print_message("bench: ca_signer_issue %.0f certificates/s (%d in %.2f s)\n", N / s, N, s);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issue_through_signer),
		cmocka_unit_test(test_refusals_pass_through),
		cmocka_unit_test(test_crl_through_signer),
		cmocka_unit_test(test_crl_msg_round_trip),
		cmocka_unit_test(test_large_crl),
		cmocka_unit_test(test_kill_and_respawn),
		cmocka_unit_test(test_no_core_dumps),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_start_failures),
		cmocka_unit_test(test_fake_signer),
		cmocka_unit_test(test_malformed_requests),
		cmocka_unit_test(test_signer_rate),
	};
	ssize_t n;

	if (argc > 1 && strcmp(argv[1], "signer") == 0)
		return signer_entry(argc, argv);
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) <= 0)
		return 1;
	self[n] = '\0';
	log_init("test_ca_signer", LOG_LVL_WARN, 0, 0);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
