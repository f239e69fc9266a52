/*
 * test_keystore.c: the device keystores. file: keys and CSRs, install with
 * the certificate/key match, import of a server-made key, the states a
 * crash can leave between install steps, factory reset. tpm2: against a
 * private swtpm started by each test — the key is made inside the TPM, never
 * exported, signs through the provider, and its blob loads on no other TPM.
 * Without swtpm the tpm2 tests fail; they never skip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "ca/ca.h"
#include "device/device.h"

extern char **environ;

static const uint8_t MAC1[MAC_LEN] = { 0x00, 0x1a, 0x7d, 0xda, 0x71, 0x13 };
static const char MAC1_STR[] = "00:1a:7d:da:71:13";

/* ---------------------------------------------------------------------
 * swtpm, one private instance per call: state in a temp dir, 127.0.0.1
 * ports picked free, --daemon with a pid file. The test binary is a child
 * subreaper (main), so the daemonized swtpm is our child and its end can be
 * waited for.
 */
struct swtpm {
	char dir[64];
	int port, ctrl;
	pid_t pid;
	char tcti[96];
};

/* Binds 127.0.0.1:port (0: any); returns the socket, or -1. */
static int
bind_port(int port, int *got)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	socklen_t sl = sizeof(sa);
	int fd;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		close(fd);
		return -1;
	}
	if (got != NULL)
		*got = ntohs(sa.sin_port);
	return fd;
}

/* A port P free on 127.0.0.1 right now with P+1 free too: the swtpm TCTI
 * takes the control channel to be the next port. */
static int
free_port(void)
{
	for (int i = 0; i < 100; i++) {
		int port = 0, fd = bind_port(0, &port), fd2;

		assert_true(fd >= 0);
		if (port < 65535 && (fd2 = bind_port(port + 1, NULL)) >= 0) {
			close(fd2);
			close(fd);
			return port;
		}
		close(fd);
	}
	fail_msg("no two consecutive free ports");
	return -1;
}

static int
port_open(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd, ok;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return 0;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Runs argv, waits, returns the exit status (127: could not run it). */
static int
run(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st, e;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (e != 0)
		return 127;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
swtpm_start(struct swtpm *s)
{
	char state[128], server[128], ctrl[128], pidf[128], buf[32];
	FILE *f;
	int rc = -1;

	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/provd-test-swtpm.XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	snprintf(state, sizeof(state), "dir=%s", s->dir);
	snprintf(pidf, sizeof(pidf), "file=%s/swtpm.pid", s->dir);
	/* a port picked free can be taken before swtpm binds it: retry */
	for (int attempt = 0; attempt < 5 && rc != 0; attempt++) {
		s->port = free_port();
		s->ctrl = s->port + 1;
		snprintf(server, sizeof(server), "type=tcp,port=%d,bindaddr=127.0.0.1", s->port);
		snprintf(ctrl, sizeof(ctrl), "type=tcp,port=%d,bindaddr=127.0.0.1", s->ctrl);
		char *argv[] = { "swtpm", "socket", "--tpm2", "--tpmstate", state,
			"--server", server, "--ctrl", ctrl,
			"--flags", "not-need-init,startup-clear",
			"--daemon", "--pid", pidf, NULL };
		rc = run(argv);
		if (rc == 127)
			fail_msg("cannot run swtpm: the tpm2 keystore tests need swtpm "
			    "(apt-get install swtpm swtpm-tools)");
	}
	if (rc != 0)
		fail_msg("swtpm did not start (exit %d)", rc);
	snprintf(pidf, sizeof(pidf), "%s/swtpm.pid", s->dir);
	assert_non_null(f = fopen(pidf, "r"));
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	s->pid = (pid_t)strtol(buf, NULL, 10);
	assert_true(s->pid > 1);
	for (int i = 0; i < 500 && !port_open(s->port); i++)
		sleep_ms(10);
	assert_true(port_open(s->port));
	snprintf(s->tcti, sizeof(s->tcti), "swtpm:host=127.0.0.1,port=%d", s->port);
}

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
rm_tree(const char *dir)
{
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Stops s (swtpm_ioctl -s) and makes sure the process is gone: reaped by
 * us, or killed and reaped after 5 s. Returns 1 when it stopped on its own. */
static int
swtpm_stop(struct swtpm *s)
{
	char addr[64];
	int clean = 0, st;

	if (s->pid <= 0)
		return 1;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", s->ctrl);
	char *argv[] = { "swtpm_ioctl", "--tcp", addr, "-s", NULL };
	(void)run(argv);
	for (int i = 0; i < 500; i++) {
		pid_t w = waitpid(s->pid, &st, WNOHANG);
		if (w == s->pid || (w < 0 && errno == ECHILD)) {
			clean = 1;
			break;
		}
		sleep_ms(10);
	}
	if (!clean) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, &st, 0);
	}
	/* reaped: the pid names no process of ours any more */
	assert_int_equal(kill(s->pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	s->pid = 0;
	rm_tree(s->dir);
	return clean;
}

/* ---------------------------------------------------------------------
 * Per-test state: a temporary root, the keystore directory inside it, and
 * the swtpm instances a test started (stopped at teardown whatever happens).
 */
struct t {
	char root[64];
	char dir[96];
	struct swtpm tpm[2];
};

static int
setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	snprintf(t->root, sizeof(t->root), "/tmp/provd-test-keystore.XXXXXX");
	if (mkdtemp(t->root) == NULL) {
		free(t);
		return -1;
	}
	snprintf(t->dir, sizeof(t->dir), "%s/ks", t->root);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct t *t = *state;

	for (size_t i = 0; i < 2; i++) {
		if (t->tpm[i].pid > 0)
			swtpm_stop(&t->tpm[i]);
		else if (t->tpm[i].dir[0] != '\0')
			rm_tree(t->tpm[i].dir);	/* it did not start */
	}
	rm_tree(t->root);
	free(t);
	return 0;
}

static const char *
path_in(const char *dir, const char *name)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	assert_true((size_t)snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name) < sizeof(buf[i]));
	return buf[i];
}

static struct keystore *
ks_open(const char *kind, const char *dir, const char *tcti)
{
	struct keystore_params p = { .kind = kind, .dir = dir, .tpm2_tcti = tcti };
	struct keystore *ks = NULL;

	assert_int_equal(keystore_open(&p, &ks), 0);
	assert_non_null(ks);
	return ks;
}

static char *
slurp(const char *path, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;

	assert_int_equal(file_read_all(path, 1 << 20, &buf, &n), 0);
	if (len != NULL)
		*len = n;
	return buf;
}

static void
put(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static int
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static unsigned
mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

/* The installed identity's directory name ("id" link target). */
static void
current_id(const char *dir, char *out, size_t outlen)
{
	ssize_t n = readlink(path_in(dir, "id"), out, outlen - 1);

	assert_true(n > 0);
	out[n] = '\0';
}

/* Number of entries of dir whose names start with prefix. */
static int
count_prefix(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

/* ---------------------------------------------------------------------
 * A throwaway CA, built with OpenSSL directly.
 */
struct ca {
	EVP_PKEY *key;
	X509 *cert;
	uint8_t *der;
	size_t derlen;
};

static X509 *
cert_make(X509 *issuer, EVP_PKEY *signer, EVP_PKEY *subject_pub, const char *cn,
    X509_NAME *subject)
{
	X509 *x = X509_new();
	X509_NAME *n = NULL;
	static long serial = 1;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	if (subject == NULL) {
		assert_non_null(n = X509_NAME_new());
		assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
		    (const unsigned char *)cn, -1, -1, 0), 1);
		subject = n;
	}
	assert_int_equal(X509_set_subject_name(x, subject), 1);
	assert_int_equal(X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : subject), 1);
	assert_int_equal(X509_set_pubkey(x, subject_pub), 1);
	assert_true(X509_sign(x, signer, EVP_sha256()) > 0);
	X509_NAME_free(n);
	return x;
}

static uint8_t *
x509_der(X509 *x, size_t *len)
{
	uint8_t *der = NULL;
	int n = i2d_X509(x, &der);

	assert_true(n > 0);
	*len = (size_t)n;
	return der;
}

static void
ca_make(struct ca *ca)
{
	assert_non_null(ca->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
	ca->cert = cert_make(NULL, ca->key, ca->key, "Test device CA", NULL);
	ca->der = x509_der(ca->cert, &ca->derlen);
}

static void
ca_free(struct ca *ca)
{
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	OPENSSL_free(ca->der);
}

/* Checks a CSR as the CA would and issues a certificate for it (DER,
 * OPENSSL_free). */
static uint8_t *
ca_issue_csr(struct ca *ca, const uint8_t *csr, size_t csrlen, size_t *len)
{
	const unsigned char *p = csr;
	X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)csrlen);
	X509 *x;
	uint8_t *der;

	assert_non_null(req);
	assert_ptr_equal(p, csr + csrlen);
	assert_int_equal(X509_REQ_verify(req, X509_REQ_get0_pubkey(req)), 1);
	x = cert_make(ca->cert, ca->key, X509_REQ_get0_pubkey(req), NULL,
	    X509_REQ_get_subject_name(req));
	der = x509_der(x, len);
	X509_free(x);
	X509_REQ_free(req);
	return der;
}

/* A certificate for a key nobody else has. */
static uint8_t *
ca_issue_other(struct ca *ca, size_t *len)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x;
	uint8_t *der;

	assert_non_null(k);
	x = cert_make(ca->cert, ca->key, k, "someone else", NULL);
	der = x509_der(x, len);
	X509_free(x);
	EVP_PKEY_free(k);
	return der;
}

/* The CSR is DER, version 1, subject exactly serialNumber=<mac> as a
 * PrintableString, its signature verifies, and the CA's checks accept it. */
static void
check_csr(const uint8_t *csr, size_t len)
{
	const unsigned char *p = csr;
	X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
	struct ca_policy pol = { .allow_rsa = 0, .max_csr = 8192 };
	const X509_NAME *n;
	const ASN1_STRING *v;
	uint8_t *spki = NULL;
	size_t spkilen = 0;
	char why[128];

	assert_non_null(req);
	assert_ptr_equal(p, csr + len);
	assert_int_equal(X509_REQ_get_version(req), X509_REQ_VERSION_1);
	assert_int_equal(X509_REQ_verify(req, X509_REQ_get0_pubkey(req)), 1);
	n = X509_REQ_get_subject_name(req);
	assert_int_equal(X509_NAME_entry_count(n), 1);
	assert_int_equal(OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(n, 0))),
	    NID_serialNumber);
	v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, 0));
	assert_int_equal(ASN1_STRING_type(v), V_ASN1_PRINTABLESTRING);
	assert_int_equal(ASN1_STRING_length(v), strlen(MAC1_STR));
	assert_memory_equal(ASN1_STRING_get0_data(v), MAC1_STR, strlen(MAC1_STR));
	assert_true(EVP_PKEY_is_a(X509_REQ_get0_pubkey(req), "EC"));
	assert_int_equal(ca_csr_check(csr, len, &pol, &spki, &spkilen, why, sizeof(why)), 0);
	free(spki);
	/* a flipped signature bit no longer verifies */
	uint8_t *bad = malloc(len);
	assert_non_null(bad);
	memcpy(bad, csr, len);
	bad[len - 3] ^= 0x01;
	assert_int_equal(ca_csr_check(bad, len, &pol, &spki, &spkilen, why, sizeof(why)),
	    ERR_BAD_CSR);
	free(bad);
	X509_REQ_free(req);
}

/* Signs with the identity key the way device.h says, verifies with the
 * certificate's public key in the default context. */
static void
check_sign(struct keystore *ks, EVP_PKEY *key, const uint8_t *certder, size_t certlen)
{
	const unsigned char *p = certder;
	X509 *x = d2i_X509(NULL, &p, (long)certlen);
	static const unsigned char msg[] = "provd keystore signature test";
	unsigned char sig[128];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *m = EVP_MD_CTX_new();

	assert_non_null(x);
	assert_non_null(m);
	assert_int_equal(EVP_DigestSignInit_ex(m, NULL, "SHA256", keystore_libctx(ks),
	    keystore_propq(ks), key, NULL), 1);
	assert_int_equal(EVP_DigestSign(m, sig, &siglen, msg, sizeof(msg)), 1);
	EVP_MD_CTX_free(m);
	assert_non_null(m = EVP_MD_CTX_new());
	assert_int_equal(EVP_DigestVerifyInit_ex(m, NULL, "SHA256", NULL, NULL,
	    X509_get0_pubkey(x), NULL), 1);
	assert_int_equal(EVP_DigestVerify(m, sig, siglen, msg, sizeof(msg)), 1);
	/* and not for another message */
	EVP_MD_CTX_free(m);
	assert_non_null(m = EVP_MD_CTX_new());
	assert_int_equal(EVP_DigestVerifyInit_ex(m, NULL, "SHA256", NULL, NULL,
	    X509_get0_pubkey(x), NULL), 1);
	assert_int_not_equal(EVP_DigestVerify(m, sig, siglen, msg, sizeof(msg) - 1), 1);
	ERR_clear_error();
	EVP_MD_CTX_free(m);
	X509_free(x);
}

/* The installed identity: its certificate is want, its key matches it. */
static void
check_identity(struct keystore *ks, const uint8_t *want, size_t wantlen)
{
	EVP_PKEY *key = NULL;
	uint8_t *cert = NULL;
	size_t certlen = 0;
	const unsigned char *p;
	X509 *x;

	assert_int_equal(keystore_identity(ks, &key, &cert, &certlen), 0);
	assert_int_equal(certlen, wantlen);
	assert_memory_equal(cert, want, wantlen);
	p = cert;
	assert_non_null(x = d2i_X509(NULL, &p, (long)certlen));
	assert_int_equal(EVP_PKEY_eq(key, X509_get0_pubkey(x)), 1);
	check_sign(ks, key, cert, certlen);
	X509_free(x);
	EVP_PKEY_free(key);
	free(cert);
}

/* generate -> CA issues -> install; returns the certificate. */
static uint8_t *
enrol(struct keystore *ks, struct ca *ca, size_t *certlen)
{
	uint8_t *csr = NULL, *cert;
	size_t csrlen = 0;
	const uint8_t *chain[1] = { ca->der };
	size_t chainlen[1] = { ca->derlen };

	assert_int_equal(keystore_generate(ks, MAC1, &csr, &csrlen), 0);
	cert = ca_issue_csr(ca, csr, csrlen, certlen);
	free(csr);
	assert_int_equal(keystore_install(ks, cert, *certlen, chain, chainlen, 1), 0);
	return cert;
}

/* ---------------------------------------------------------------------
 * Both backends.
 */
static void
test_open_params(void **state)
{
	struct t *t = *state;
	struct keystore_params p = { .kind = "pkcs11", .dir = t->dir };
	struct keystore *ks = (struct keystore *)1;

	assert_int_equal(keystore_open(&p, &ks), ERR_CONFIG);
	assert_null(ks);
	p.kind = NULL;
	assert_int_equal(keystore_open(&p, &ks), ERR_CONFIG);
	p.kind = "file";
	p.dir = NULL;
	assert_int_equal(keystore_open(&p, &ks), ERR_CONFIG);
	assert_int_equal(keystore_open(NULL, &ks), ERR_CONFIG);
	assert_int_equal(keystore_open(&p, NULL), ERR_INVALID);
	keystore_close(NULL);
	assert_string_equal(keystore_kind(NULL), "none");

	/* made 0700; an existing directory open to others is closed */
	ks = ks_open("file", t->dir, NULL);
	assert_int_equal(mode_of(t->dir), 0700);
	assert_string_equal(keystore_kind(ks), "file");
	assert_true(keystore_can_import(ks));
	assert_null(keystore_libctx(ks));
	assert_null(keystore_propq(ks));
	keystore_close(ks);
	assert_int_equal(chmod(t->dir, 0755), 0);
	ks = ks_open("file", t->dir, NULL);
	assert_int_equal(mode_of(t->dir), 0700);
	/* a regular file is no state directory */
	put(path_in(t->root, "plain"), "x", 1, 0600);
	p.dir = path_in(t->root, "plain");
	struct keystore *ks2 = NULL;
	assert_int_equal(keystore_open(&p, &ks2), ERR_CONFIG);
	keystore_close(ks);
}

/* ---------------------------------------------------------------------
 * file backend.
 */
static void
test_file_generate_csr(void **state)
{
	struct t *t = *state;
	struct keystore *ks = ks_open("file", t->dir, NULL);
	static const uint8_t mcast[MAC_LEN] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };
	uint8_t *csr = NULL, *csr2 = NULL;
	size_t csrlen = 0, csr2len = 0, len;
	EVP_PKEY *key = (EVP_PKEY *)1;
	uint8_t *cert = (uint8_t *)1;
	char *pem;

	assert_int_equal(keystore_generate(ks, MAC1, &csr, &csrlen), 0);
	check_csr(csr, csrlen);
	/* the pending key: PKCS#8 PEM, 0600 */
	pem = slurp(path_in(t->dir, "pending.key"), &len);
	assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
	assert_int_equal(mode_of(path_in(t->dir, "pending.key")), 0600);
	OPENSSL_cleanse(pem, len);
	free(pem);
	/* a second key is a new key */
	assert_int_equal(keystore_generate(ks, MAC1, &csr2, &csr2len), 0);
	check_csr(csr2, csr2len);
	assert_false(csrlen == csr2len && memcmp(csr, csr2, csrlen) == 0);
	free(csr2);
	csr2 = NULL;
	/* nothing installed yet */
	assert_int_equal(keystore_identity(ks, &key, &cert, &len), ERR_NOT_FOUND);
	assert_null(key);
	assert_null(cert);
	/* refused addresses, missing arguments */
	assert_int_equal(keystore_generate(ks, mcast, &csr2, &csr2len), ERR_BAD_MAC);
	assert_null(csr2);
	assert_int_equal(keystore_generate(ks, MAC1, NULL, &csr2len), ERR_INVALID);
	assert_int_equal(keystore_generate(NULL, MAC1, &csr2, &csr2len), ERR_INVALID);
	free(csr);
	keystore_close(ks);
}

static void
test_file_install_identity(void **state)
{
	struct t *t = *state;
	struct keystore *ks = ks_open("file", t->dir, NULL);
	struct ca ca;
	uint8_t *cert;
	size_t certlen;
	char id[64], *chain;

	ca_make(&ca);
	cert = enrol(ks, &ca, &certlen);
	check_identity(ks, cert, certlen);
	/* no pending key remains; the layout the top of keystore.c describes */
	assert_false(exists(path_in(t->dir, "pending.key")));
	current_id(t->dir, id, sizeof(id));
	assert_int_equal(count_prefix(t->dir, "id."), 1);
	char *idd = strdup(path_in(t->dir, id));
	assert_int_equal(mode_of(path_in(idd, "key.pem")), 0600);
	chain = slurp(path_in(idd, "chain.pem"), NULL);
	X509 *x = NULL;
	BIO *b = BIO_new_mem_buf(chain, -1);
	assert_non_null(x = PEM_read_bio_X509(b, NULL, NULL, NULL));
	assert_int_equal(X509_cmp(x, ca.cert), 0);
	X509_free(x);
	BIO_free(b);
	free(chain);
	free(idd);
	/* still there after a restart */
	keystore_close(ks);
	ks = ks_open("file", t->dir, NULL);
	check_identity(ks, cert, certlen);
	/* install needs a pending key */
	assert_int_equal(keystore_install(ks, cert, certlen, NULL, NULL, 0), ERR_NOT_FOUND);
	/* a re-enrolment replaces the identity and removes the old one */
	uint8_t *cert2;
	size_t cert2len;
	cert2 = enrol(ks, &ca, &cert2len);
	check_identity(ks, cert2, cert2len);
	assert_int_equal(count_prefix(t->dir, "id."), 1);
	OPENSSL_free(cert);
	OPENSSL_free(cert2);
	ca_free(&ca);
	keystore_close(ks);
}

static void
test_file_install_wrong_key(void **state)
{
	struct t *t = *state;
	struct keystore *ks = ks_open("file", t->dir, NULL);
	struct ca ca;
	uint8_t *cert, *other, *csr = NULL, *cert2;
	size_t certlen, otherlen, csrlen, cert2len;
	char before[64], after[64];
	const uint8_t *chain[2];
	size_t chainlen[2];
	uint8_t junk[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };

	ca_make(&ca);
	cert = enrol(ks, &ca, &certlen);
	current_id(t->dir, before, sizeof(before));
	assert_int_equal(keystore_generate(ks, MAC1, &csr, &csrlen), 0);

	/* a certificate for someone else's key */
	other = ca_issue_other(&ca, &otherlen);
	assert_int_equal(keystore_install(ks, other, otherlen, NULL, NULL, 0), ERR_INVALID);
	/* malformed input: nothing is touched either */
	assert_int_equal(keystore_install(ks, junk, sizeof(junk), NULL, NULL, 0), ERR_INVALID);
	assert_int_equal(keystore_install(ks, NULL, 0, NULL, NULL, 0), ERR_INVALID);
	cert2 = ca_issue_csr(&ca, csr, csrlen, &cert2len);
	chain[0] = junk;
	chainlen[0] = sizeof(junk);
	assert_int_equal(keystore_install(ks, cert2, cert2len, chain, chainlen, 1), ERR_INVALID);
	assert_int_equal(keystore_install(ks, cert2, cert2len, NULL, NULL, 1), ERR_INVALID);
	/* trailing bytes after the certificate */
	uint8_t *longer = malloc(cert2len + 1);
	assert_non_null(longer);
	memcpy(longer, cert2, cert2len);
	longer[cert2len] = 0;
	assert_int_equal(keystore_install(ks, longer, cert2len + 1, NULL, NULL, 0), ERR_INVALID);
	free(longer);

	/* the old identity is untouched, the pending key still there */
	check_identity(ks, cert, certlen);
	current_id(t->dir, after, sizeof(after));
	assert_string_equal(before, after);
	assert_int_equal(count_prefix(t->dir, "id."), 1);
	assert_true(exists(path_in(t->dir, "pending.key")));

	/* and the right certificate goes in, with a two-certificate chain */
	chain[0] = ca.der;
	chainlen[0] = ca.derlen;
	chain[1] = ca.der;
	chainlen[1] = ca.derlen;
	assert_int_equal(keystore_install(ks, cert2, cert2len, chain, chainlen, 2), 0);
	check_identity(ks, cert2, cert2len);
	assert_false(exists(path_in(t->dir, "pending.key")));
	free(csr);
	OPENSSL_free(cert);
	OPENSSL_free(cert2);
	OPENSSL_free(other);
	ca_free(&ca);
	keystore_close(ks);
}

static uint8_t *
pkcs8_of(EVP_PKEY *k, size_t *len)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k);
	uint8_t *der = NULL;
	int n;

	assert_non_null(p8);
	n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
	assert_true(n > 0);
	PKCS8_PRIV_KEY_INFO_free(p8);
	*len = (size_t)n;
	return der;
}

static void
test_file_import(void **state)
{
	struct t *t = *state;
	struct keystore *ks = ks_open("file", t->dir, NULL);
	struct ca ca;
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), *got = NULL;
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	BIGNUM *a = NULL, *b = NULL;
	uint8_t *der, *bad, *cert, *certder = NULL;
	size_t len, badlen, certlen, certderlen;
	X509 *x;
	char *pem;

	assert_non_null(k);
	assert_non_null(rsa);
	assert_non_null(p384);
	assert_non_null(ed);
	ca_make(&ca);

	/* keys that are not P-256 */
	bad = pkcs8_of(rsa, &badlen);
	assert_int_equal(keystore_import(ks, bad, badlen), ERR_KEY_POLICY);
	OPENSSL_free(bad);
	bad = pkcs8_of(p384, &badlen);
	assert_int_equal(keystore_import(ks, bad, badlen), ERR_KEY_POLICY);
	OPENSSL_free(bad);
	bad = pkcs8_of(ed, &badlen);
	assert_int_equal(keystore_import(ks, bad, badlen), ERR_KEY_POLICY);
	OPENSSL_free(bad);
	/* malformed: truncated, trailing byte, not DER, empty, too big */
	der = pkcs8_of(k, &len);
	assert_int_equal(keystore_import(ks, der, len - 1), ERR_INVALID);
	bad = malloc(len + 1);
	assert_non_null(bad);
	memcpy(bad, der, len);
	bad[len] = 0;
	assert_int_equal(keystore_import(ks, bad, len + 1), ERR_INVALID);
	free(bad);
	assert_int_equal(keystore_import(ks, (const uint8_t *)"hello", 5), ERR_INVALID);
	assert_int_equal(keystore_import(ks, der, 0), ERR_INVALID);
	assert_int_equal(keystore_import(ks, NULL, 3), ERR_INVALID);
	static uint8_t huge[8192];
	assert_int_equal(keystore_import(ks, huge, sizeof(huge)), ERR_TOO_BIG);
	assert_false(exists(path_in(t->dir, "pending.key")));

	/* the good one */
	assert_int_equal(keystore_import(ks, der, len), 0);
	OPENSSL_cleanse(der, len);
	OPENSSL_free(der);
	pem = slurp(path_in(t->dir, "pending.key"), &len);
	assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
	assert_int_equal(mode_of(path_in(t->dir, "pending.key")), 0600);
	OPENSSL_cleanse(pem, len);
	free(pem);
	x = cert_make(ca.cert, ca.key, k, "imported", NULL);
	cert = x509_der(x, &certlen);
	X509_free(x);
	assert_int_equal(keystore_install(ks, cert, certlen, NULL, NULL, 0), 0);
	/* the installed key is the very key imported */
	assert_int_equal(keystore_identity(ks, &got, &certder, &certderlen), 0);
	assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &a), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(got, OSSL_PKEY_PARAM_PRIV_KEY, &b), 1);
	assert_int_equal(BN_cmp(a, b), 0);
	check_sign(ks, got, certder, certderlen);
	BN_clear_free(a);
	BN_clear_free(b);
	EVP_PKEY_free(got);
	free(certder);
	OPENSSL_free(cert);
	EVP_PKEY_free(k);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(ed);
	ca_free(&ca);
	keystore_close(ks);
}

/*
 * The states an install can be cut in (the steps at the top of
 * keystore.c), made by hand from a store with identity A installed and a
 * pending key B with its certificate: after keystore_open the store holds A
 * with B still pending (crash before the commit) or B with nothing pending
 * (after it) — never a mix.
 */
struct crash {
	struct ca ca;
	uint8_t *certA, *certB;
	size_t certAlen, certBlen;
	char idA[64];
};

static void
crash_prepare(struct t *t, struct crash *c)
{
	struct keystore *ks = ks_open("file", t->dir, NULL);
	uint8_t *csr = NULL;
	size_t csrlen;

	ca_make(&c->ca);
	c->certA = enrol(ks, &c->ca, &c->certAlen);
	current_id(t->dir, c->idA, sizeof(c->idA));
	assert_int_equal(keystore_generate(ks, MAC1, &csr, &csrlen), 0);
	c->certB = ca_issue_csr(&c->ca, csr, csrlen, &c->certBlen);
	free(csr);
	keystore_close(ks);
}

static void
crash_free(struct crash *c)
{
	OPENSSL_free(c->certA);
	OPENSSL_free(c->certB);
	ca_free(&c->ca);
}

/* Writes the new identity directory for B as step 2 would, up to nfiles of
 * key.pem, cert.der, chain.pem (and a temporary file when partial). */
static void
crash_new_dir(struct t *t, struct crash *c, const char *name, int nfiles)
{
	char *d = strdup(path_in(t->dir, name)), *key;
	size_t keylen;

	assert_non_null(d);
	assert_int_equal(mkdir(d, 0700), 0);
	key = slurp(path_in(t->dir, "pending.key"), &keylen);
	if (nfiles >= 1)
		put(path_in(d, "key.pem"), key, keylen, 0600);
	if (nfiles >= 2)
		put(path_in(d, "cert.der"), c->certB, c->certBlen, 0644);
	if (nfiles >= 3)
		put(path_in(d, "chain.pem"), "", 0, 0644);
	else
		put(path_in(d, "chain.pem.tmp.4242"), "-----BEGIN", 10, 0644);
	OPENSSL_cleanse(key, keylen);
	free(key);
	free(d);
}

/* After the restart: identity A, B pending and installable. */
static void
crash_expect_old(struct t *t, struct crash *c)
{
	struct keystore *ks = ks_open("file", t->dir, NULL);
	char id[64];

	check_identity(ks, c->certA, c->certAlen);
	current_id(t->dir, id, sizeof(id));
	assert_string_equal(id, c->idA);
	assert_int_equal(count_prefix(t->dir, "id."), 1);	/* leftovers gone */
	assert_int_equal(count_prefix(t->dir, "pending.key.tmp"), 0);
	assert_true(exists(path_in(t->dir, "pending.key")));
	assert_int_equal(keystore_install(ks, c->certB, c->certBlen, NULL, NULL, 0), 0);
	check_identity(ks, c->certB, c->certBlen);
	keystore_close(ks);
}

static void
test_file_crash_before_commit(void **state)
{
	struct t *t = *state;
	struct crash c;

	/* during step 2: a partial new directory (one, then two files) */
	for (int nfiles = 0; nfiles <= 3; nfiles++) {
		crash_prepare(t, &c);
		crash_new_dir(t, &c, "id.00112233445566aa", nfiles);
		/* a file_write_atomic of pending.key cut short, too */
		put(path_in(t->dir, "pending.key.tmp.4242"), "-----BEGIN", 10, 0600);
		if (nfiles == 3)	/* step 3 begun: the new link made, not yet renamed */
			assert_int_equal(symlink("id.00112233445566aa",
			    path_in(t->dir, "id.tmp")), 0);
		crash_expect_old(t, &c);
		crash_free(&c);
		rm_tree(t->dir);
	}
}

static void
test_file_crash_after_commit(void **state)
{
	struct t *t = *state;
	struct crash c;
	struct keystore *ks;
	char id[64];

	crash_prepare(t, &c);
	crash_new_dir(t, &c, "id.00112233445566bb", 3);
	assert_int_equal(symlink("id.00112233445566bb", path_in(t->dir, "id.tmp")), 0);
	assert_int_equal(rename(path_in(t->dir, "id.tmp"), path_in(t->dir, "id")), 0);
	/* step 4 never ran: pending.key and the old directory are still there.
	 * Even before keystore_open tidies up, B is what a reader sees. */
	ks = ks_open("file", t->dir, NULL);
	check_identity(ks, c.certB, c.certBlen);
	current_id(t->dir, id, sizeof(id));
	assert_string_equal(id, "id.00112233445566bb");
	assert_false(exists(path_in(t->dir, "pending.key")));
	assert_false(exists(path_in(t->dir, c.idA)));
	assert_int_equal(count_prefix(t->dir, "id."), 1);
	keystore_close(ks);
	crash_free(&c);
}

static void
test_file_crash_first_install(void **state)
{
	struct t *t = *state;
	struct keystore *ks = ks_open("file", t->dir, NULL);
	struct ca ca;
	uint8_t *csr = NULL, *cert;
	size_t csrlen, certlen, n;
	EVP_PKEY *key = NULL;
	uint8_t *c = NULL;

	ca_make(&ca);
	assert_int_equal(keystore_generate(ks, MAC1, &csr, &csrlen), 0);
	cert = ca_issue_csr(&ca, csr, csrlen, &certlen);
	keystore_close(ks);
	/* a first install cut before its commit: no identity at all after */
	assert_int_equal(mkdir(path_in(t->dir, "id.0123456789abcdef"), 0700), 0);
	put(path_in(t->dir, "id.0123456789abcdef/cert.der"), cert, certlen, 0644);
	ks = ks_open("file", t->dir, NULL);
	assert_int_equal(keystore_identity(ks, &key, &c, &n), ERR_NOT_FOUND);
	assert_int_equal(count_prefix(t->dir, "id"), 0);
	assert_int_equal(keystore_install(ks, cert, certlen, NULL, NULL, 0), 0);
	check_identity(ks, cert, certlen);
	free(csr);
	OPENSSL_free(cert);
	ca_free(&ca);
	keystore_close(ks);
}

/* Failures during generate and install leave the store as it was. */
static void
test_file_io_failures(void **state)
{
	struct t *t = *state;
	struct keystore *ks = ks_open("file", t->dir, NULL);
	struct ca ca;
	uint8_t *cert, *csr = NULL, *cert2;
	size_t certlen, csrlen = 0, cert2len, len1, len2;
	char tmpname[64], *p1, *p2;

	ca_make(&ca);
	cert = enrol(ks, &ca, &certlen);
	assert_int_equal(keystore_generate(ks, MAC1, &csr, &csrlen), 0);
	cert2 = ca_issue_csr(&ca, csr, csrlen, &cert2len);
	free(csr);
	csr = NULL;
	p1 = slurp(path_in(t->dir, "pending.key"), &len1);

	/* generate cannot write the pending key: no CSR, the old pending key kept */
	snprintf(tmpname, sizeof(tmpname), "pending.key.tmp.%ld", (long)getpid());
	assert_int_equal(mkdir(path_in(t->dir, tmpname), 0700), 0);
	assert_int_equal(keystore_generate(ks, MAC1, &csr, &csrlen), ERR_IO);
	assert_null(csr);
	assert_int_equal(csrlen, 0);
	p2 = slurp(path_in(t->dir, "pending.key"), &len2);
	assert_int_equal(len1, len2);
	assert_memory_equal(p1, p2, len1);
	assert_int_equal(rmdir(path_in(t->dir, tmpname)), 0);

	/* install cannot make its link: the new directory is removed, the old
	 * identity and the pending key stay */
	assert_int_equal(mkdir(path_in(t->dir, "id.tmp"), 0700), 0);
	put(path_in(t->dir, "id.tmp/x"), "x", 1, 0600);
	assert_int_equal(keystore_install(ks, cert2, cert2len, NULL, NULL, 0), ERR_IO);
	check_identity(ks, cert, certlen);
	assert_int_equal(count_prefix(t->dir, "id."), 2);	/* the old and id.tmp */
	assert_true(exists(path_in(t->dir, "pending.key")));
	rm_tree(path_in(t->dir, "id.tmp"));
	assert_int_equal(keystore_install(ks, cert2, cert2len, NULL, NULL, 0), 0);
	check_identity(ks, cert2, cert2len);

	OPENSSL_cleanse(p1, len1);
	OPENSSL_cleanse(p2, len2);
	free(p1);
	free(p2);
	OPENSSL_free(cert);
	OPENSSL_free(cert2);
	ca_free(&ca);
	keystore_close(ks);
}

/* Files changed behind the store's back: a certificate that is not the
 * key's, a link to elsewhere. identity refuses; open and wipe still work. */
static void
test_file_tampered(void **state)
{
	struct t *t = *state;
	struct keystore *ks = ks_open("file", t->dir, NULL);
	struct ca ca;
	uint8_t *cert, *other, *c = NULL;
	size_t certlen, otherlen, n;
	EVP_PKEY *key = NULL;
	char id[64], idpath[256];

	ca_make(&ca);
	cert = enrol(ks, &ca, &certlen);
	current_id(t->dir, id, sizeof(id));
	assert_true((size_t)snprintf(idpath, sizeof(idpath), "%s/%s/cert.der", t->dir, id) < sizeof(idpath));
	other = ca_issue_other(&ca, &otherlen);
	put(idpath, other, otherlen, 0644);
	assert_int_equal(keystore_identity(ks, &key, &c, &n), ERR_IO);
	assert_null(key);
	assert_null(c);
	put(idpath, "junk", 4, 0644);
	assert_int_equal(keystore_identity(ks, &key, &c, &n), ERR_IO);
	keystore_close(ks);

	assert_int_equal(unlink(path_in(t->dir, "id")), 0);
	assert_int_equal(symlink("../../etc", path_in(t->dir, "id")), 0);
	ks = ks_open("file", t->dir, NULL);
	assert_int_equal(keystore_identity(ks, &key, &c, &n), ERR_IO);
	assert_int_equal(keystore_wipe(ks), 0);
	assert_int_equal(count_prefix(t->dir, "id"), 0);
	assert_true(exists("/etc/passwd"));
	OPENSSL_free(cert);
	cert = enrol(ks, &ca, &certlen);
	check_identity(ks, cert, certlen);
	OPENSSL_free(cert);
	OPENSSL_free(other);
	ca_free(&ca);
	keystore_close(ks);
}

static void
test_file_wipe(void **state)
{
	struct t *t = *state;
	struct keystore *ks = ks_open("file", t->dir, NULL);
	struct ca ca;
	uint8_t *cert, *csr = NULL, *c = NULL;
	size_t certlen, csrlen, n;
	EVP_PKEY *key = NULL;

	ca_make(&ca);
	cert = enrol(ks, &ca, &certlen);
	assert_int_equal(keystore_generate(ks, MAC1, &csr, &csrlen), 0);
	free(csr);
	put(path_in(t->dir, "notes.txt"), "not ours", 8, 0600);
	assert_int_equal(keystore_wipe(ks), 0);
	assert_int_equal(keystore_identity(ks, &key, &c, &n), ERR_NOT_FOUND);
	assert_int_equal(keystore_install(ks, cert, certlen, NULL, NULL, 0), ERR_NOT_FOUND);
	assert_int_equal(count_prefix(t->dir, "id"), 0);
	assert_int_equal(count_prefix(t->dir, "pending"), 0);
	assert_true(exists(path_in(t->dir, "notes.txt")));	/* only the store's files */
	assert_int_equal(keystore_wipe(ks), 0);			/* twice is fine */
	assert_int_equal(keystore_wipe(NULL), ERR_INVALID);
	/* usable again */
	OPENSSL_free(cert);
	cert = enrol(ks, &ca, &certlen);
	check_identity(ks, cert, certlen);
	OPENSSL_free(cert);
	ca_free(&ca);
	keystore_close(ks);
}

/* ---------------------------------------------------------------------
 * tpm2 backend.
 */
static void
test_tpm2_generate_install_sign(void **state)
{
	struct t *t = *state;
	struct keystore *ks;
	struct ca ca;
	uint8_t *csr = NULL, *cert, *certder = NULL;
	size_t csrlen = 0, certlen, certderlen, len;
	EVP_PKEY *key = NULL;
	BIGNUM *bn = NULL;
	OSSL_PARAM *params = NULL;
	unsigned char raw[64];
	size_t rawlen = sizeof(raw);
	char *pem;

	swtpm_start(&t->tpm[0]);
	ks = ks_open("tpm2", t->dir, t->tpm[0].tcti);
	assert_string_equal(keystore_kind(ks), "tpm2");
	assert_false(keystore_can_import(ks));
	assert_non_null(keystore_libctx(ks));
	assert_string_equal(keystore_propq(ks), "?provider=tpm2");
	assert_int_equal(keystore_import(ks, (const uint8_t *)"x", 1), ERR_UNSUPPORTED);

	/* the key is made in the TPM; the CSR is signed there */
	assert_int_equal(keystore_generate(ks, MAC1, &csr, &csrlen), 0);
	check_csr(csr, csrlen);
	pem = slurp(path_in(t->dir, "pending.key"), &len);
	assert_non_null(strstr(pem, "-----BEGIN TSS2 PRIVATE KEY-----"));
	assert_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
	assert_int_equal(mode_of(path_in(t->dir, "pending.key")), 0600);
	free(pem);

	ca_make(&ca);
	cert = ca_issue_csr(&ca, csr, csrlen, &certlen);
	assert_int_equal(keystore_install(ks, cert, certlen, NULL, NULL, 0), 0);
	assert_false(exists(path_in(t->dir, "pending.key")));
	check_identity(ks, cert, certlen);

	/* the private value cannot be had */
	assert_int_equal(keystore_identity(ks, &key, &certder, &certderlen), 0);
	assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &bn), 0);
	assert_null(bn);
	assert_int_equal(EVP_PKEY_get_raw_private_key(key, raw, &rawlen), 0);
	if (EVP_PKEY_todata(key, EVP_PKEY_KEYPAIR, &params) == 1) {
		assert_null(OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_PRIV_KEY));
		OSSL_PARAM_free(params);
	}
	ERR_clear_error();
	/* the TPM key is provider-backed: its provider is tpm2 */
	assert_string_equal(OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(key)), "tpm2");
	EVP_PKEY_free(key);
	free(certder);

	/* a restart loads the blob again */
	keystore_close(ks);
	ks = ks_open("tpm2", t->dir, t->tpm[0].tcti);
	check_identity(ks, cert, certlen);

	/* a certificate for another key is refused here too */
	uint8_t *other;
	size_t otherlen;
	free(csr);
	csr = NULL;
	assert_int_equal(keystore_generate(ks, MAC1, &csr, &csrlen), 0);
	other = ca_issue_other(&ca, &otherlen);
	assert_int_equal(keystore_install(ks, other, otherlen, NULL, NULL, 0), ERR_INVALID);
	check_identity(ks, cert, certlen);
	keystore_close(ks);
	assert_true(swtpm_stop(&t->tpm[0]));

	OPENSSL_free(other);
	free(csr);
	OPENSSL_free(cert);
	ca_free(&ca);
}

/* The blob is wrapped under this TPM's storage key: a fresh TPM (another
 * swtpm, new state) cannot load it, the one that made it still can. */
static void
test_tpm2_blob_bound_to_tpm(void **state)
{
	struct t *t = *state;
	struct keystore *ks;
	struct ca ca;
	uint8_t *cert, *c = NULL;
	size_t certlen, n;
	EVP_PKEY *key = NULL;
	char *copy = strdup(path_in(t->root, "copy"));
	char cmd[512];

	assert_non_null(copy);
	swtpm_start(&t->tpm[0]);
	swtpm_start(&t->tpm[1]);
	ca_make(&ca);
	ks = ks_open("tpm2", t->dir, t->tpm[0].tcti);
	cert = enrol(ks, &ca, &certlen);
	keystore_close(ks);
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", t->dir, copy);
	assert_int_equal(system(cmd), 0);

	ks = ks_open("tpm2", copy, t->tpm[1].tcti);
	assert_int_equal(keystore_identity(ks, &key, &c, &n), ERR_CRYPTO);
	assert_null(key);
	assert_null(c);
	keystore_close(ks);

	ks = ks_open("tpm2", copy, t->tpm[0].tcti);
	check_identity(ks, cert, certlen);
	keystore_close(ks);

	assert_true(swtpm_stop(&t->tpm[1]));
	assert_true(swtpm_stop(&t->tpm[0]));
	OPENSSL_free(cert);
	ca_free(&ca);
	free(copy);
}

static void
test_tpm2_unavailable(void **state)
{
	struct t *t = *state;
	struct keystore_params p = { .kind = "tpm2", .dir = t->dir };
	struct keystore *ks = NULL;
	char tcti[96];

	/* nothing listens there */
	snprintf(tcti, sizeof(tcti), "swtpm:host=127.0.0.1,port=%d", free_port());
	p.tpm2_tcti = tcti;
	assert_int_equal(keystore_open(&p, &ks), ERR_UNAVAILABLE);
	assert_null(ks);
	p.tpm2_tcti = "";
	assert_int_equal(keystore_open(&p, &ks), ERR_CONFIG);

	/* something that takes the connections and hangs up at once */
	int port = free_port(), l1, l2;
	pid_t pid;
	assert_true((l1 = bind_port(port, NULL)) >= 0);
	assert_true((l2 = bind_port(port + 1, NULL)) >= 0);
	assert_int_equal(listen(l1, 8), 0);
	assert_int_equal(listen(l2, 8), 0);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;) {
			struct pollfd pf[2] = { { .fd = l1, .events = POLLIN },
				{ .fd = l2, .events = POLLIN } };
			if (poll(pf, 2, -1) < 0)
				_exit(1);
			for (int i = 0; i < 2; i++)
				if (pf[i].revents & POLLIN) {
					int c = accept(pf[i].fd, NULL, NULL);
					if (c >= 0)
						close(c);
				}
		}
	}
	close(l1);
	close(l2);
	snprintf(tcti, sizeof(tcti), "swtpm:host=127.0.0.1,port=%d", port);
	p.tpm2_tcti = tcti;
	assert_int_equal(keystore_open(&p, &ks), ERR_UNAVAILABLE);
	assert_null(ks);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, NULL, 0), pid);

	/* a TPM that was there and is gone */
	swtpm_start(&t->tpm[0]);
	p.tpm2_tcti = t->tpm[0].tcti;
	assert_int_equal(keystore_open(&p, &ks), 0);
	keystore_close(ks);
	ks = NULL;
	/* the TPM is there but the provider is not */
	const char *mods = getenv("OPENSSL_MODULES");
	char *saved = mods != NULL ? strdup(mods) : NULL;
	assert_int_equal(setenv("OPENSSL_MODULES", "/nonexistent", 1), 0);
	assert_int_equal(keystore_open(&p, &ks), ERR_UNAVAILABLE);
	assert_null(ks);
	if (saved != NULL)
		assert_int_equal(setenv("OPENSSL_MODULES", saved, 1), 0);
	else
		assert_int_equal(unsetenv("OPENSSL_MODULES"), 0);
	free(saved);
	assert_int_equal(keystore_open(&p, &ks), 0);
	keystore_close(ks);
	ks = NULL;
	assert_true(swtpm_stop(&t->tpm[0]));
	assert_int_equal(keystore_open(&p, &ks), ERR_UNAVAILABLE);
	assert_null(ks);
}

/* The TCTI is set for the provider's load only; the caller's environment
 * is as it was. */
static void
test_tpm2_env_restored(void **state)
{
	struct t *t = *state;
	struct keystore *ks;

	swtpm_start(&t->tpm[0]);
	assert_int_equal(unsetenv("TPM2OPENSSL_TCTI"), 0);
	ks = ks_open("tpm2", t->dir, t->tpm[0].tcti);
	assert_null(getenv("TPM2OPENSSL_TCTI"));
	keystore_close(ks);
	assert_int_equal(setenv("TPM2OPENSSL_TCTI", "device:/dev/nonexistent", 1), 0);
	ks = ks_open("tpm2", t->dir, t->tpm[0].tcti);
	assert_string_equal(getenv("TPM2OPENSSL_TCTI"), "device:/dev/nonexistent");
	keystore_close(ks);
	/* and with no TCTI given, the environment's is used: here a bad one */
	struct keystore_params p = { .kind = "tpm2", .dir = t->dir, .tpm2_tcti = NULL };
	ks = NULL;
	assert_int_equal(keystore_open(&p, &ks), ERR_UNAVAILABLE);
	assert_int_equal(unsetenv("TPM2OPENSSL_TCTI"), 0);
	assert_true(swtpm_stop(&t->tpm[0]));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_params, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_generate_csr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_install_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_install_wrong_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_crash_before_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_crash_after_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_crash_first_install, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_io_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_tampered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_wipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tpm2_generate_install_sign, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tpm2_blob_bound_to_tpm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tpm2_unavailable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tpm2_env_restored, setup, teardown),
	};

	/* the daemonized swtpm becomes our child, so its end can be waited for */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
		perror("prctl");
		return 1;
	}
	log_init("test_keystore", LOG_LVL_ERROR, 0, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
