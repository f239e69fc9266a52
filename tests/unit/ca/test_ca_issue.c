/*
 * test_ca_issue.c: CA creation and import, the device certificate profile
 * (checked field by field and by the openssl command line), refusals,
 * CRLs built in-process, the certificate helpers, and the issuance rate.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <openssl/x509v3.h>

#include "ca/ca.h"
#include "ca_test.h"

/* Two CAs made once: one-tier in base[0], two-tier in base[1]. */
struct fixture {
	char *base[2];
	struct config *cfg[2];
	struct ca_key *key[2];
};

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char path[512], err[256];

	assert_non_null(f);
	for (int i = 0; i < 2; i++) {
		struct ca_init_opts o = { .two_tier = i, .organization = "Example Corp" };
		f->base[i] = tmpdir_new();
		o.dir = pjoin(f->base[i], "ca");
		if (ca_init(&o, err, sizeof(err)) != 0)
			fail_msg("ca_init: %s", err);
		f->cfg[i] = cfg_write_load(f->base[i], "provd", 1, NULL, path, sizeof(path));
		assert_int_equal(ca_key_load(f->cfg[i], &f->key[i]), 0);
	}
	*state = f;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < 2; i++) {
		ca_key_free(f->key[i]);
		config_free(f->cfg[i]);
		tmpdir_rm(f->base[i]);
	}
	free(f);
	return 0;
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void
assert_contains(const char *text, const char *part)
{
	if (strstr(text, part) == NULL)
		fail_msg("\"%s\" not found in:\n%s", part, text);
}

static char *
read_text(const char *path)
{
	char *buf = NULL;
	size_t len;

	assert_int_equal(file_read_all(path, 1 << 20, &buf, &len), 0);
	return buf;
}

static void
test_init_one_tier(void **state)
{
	char *base = tmpdir_new(), err[256], *out, *ca, *root, *key1, *key2;
	const char *dir = pjoin(base, "ca");
	struct ca_init_opts o = { .dir = dir, .organization = "Example Corp" };
	struct stat st;
	(void)state;

	assert_int_equal(ca_init(&o, err, sizeof(err)), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(pjoin(dir, "ca.key"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	ca = read_text(pjoin(dir, "ca.crt"));
	root = read_text(pjoin(dir, "root.crt"));
	assert_string_equal(ca, root);
	free(root);
	root = read_text(pjoin(dir, "chain.pem"));
	assert_string_equal(ca, root);
	key1 = read_text(pjoin(dir, "ca.key"));
	assert_true(strncmp(key1, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);

	assert_int_equal(run_cmd(&out, "openssl x509 -in %s -noout -text",
	    pjoin(dir, "ca.crt")), 0);
	assert_contains(out, "Subject: O = Example Corp, CN = provd Root CA");
	assert_contains(out, "Issuer: O = Example Corp, CN = provd Root CA");
	assert_contains(out, "X509v3 Basic Constraints: critical\n                CA:TRUE\n");
	assert_contains(out, "X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign\n");
	assert_contains(out, "X509v3 Subject Key Identifier");
	assert_contains(out, "X509v3 Authority Key Identifier");
	assert_contains(out, "ASN1 OID: prime256v1");
	assert_contains(out, "Signature Algorithm: ecdsa-with-SHA256");
	free(out);
	/* self-signed and verifiable on its own */
	assert_int_equal(run_cmd(&out, "openssl verify -x509_strict -CAfile %s %s",
	    pjoin(dir, "root.crt"), pjoin(dir, "ca.crt")), 0);
	free(out);
	assert_int_equal(run_cmd(NULL, "openssl pkey -in %s -noout", pjoin(dir, "ca.key")), 0);

	/* refuses to overwrite; nothing changes */
	assert_int_equal(ca_init(&o, err, sizeof(err)), ERR_CONFLICT);
	assert_non_null(strstr(err, "already exists"));
	key2 = read_text(pjoin(dir, "ca.key"));
	assert_string_equal(key1, key2);
	free(key2);

	/* unless forced: a new key */
	o.force = 1;
	assert_int_equal(ca_init(&o, err, sizeof(err)), 0);
	key2 = read_text(pjoin(dir, "ca.key"));
	assert_string_not_equal(key1, key2);
	free(key2);

	free(key1);
	free(root);
	free(ca);
	tmpdir_rm(base);
}

static void
test_init_two_tier(void **state)
{
	char *base = tmpdir_new(), err[256], *out, *chain, *ca, *root;
	const char *dir = pjoin(base, "ca");
	struct ca_init_opts o = { .dir = dir, .two_tier = 1, .common_name = "Acme Root CA",
	    .days = 100 };
	(void)state;

	assert_int_equal(ca_init(&o, err, sizeof(err)), 0);
	chain = read_text(pjoin(dir, "chain.pem"));
	ca = read_text(pjoin(dir, "ca.crt"));
	root = read_text(pjoin(dir, "root.crt"));
	assert_int_equal(count(chain, "-----BEGIN CERTIFICATE-----"), 2);
	assert_string_not_equal(ca, root);
	/* chain.pem is ca.crt then root.crt */
	assert_true(strncmp(chain, ca, strlen(ca)) == 0);
	assert_string_equal(chain + strlen(ca), root);

	assert_int_equal(run_cmd(&out, "openssl x509 -in %s -noout -text",
	    pjoin(dir, "ca.crt")), 0);
	assert_contains(out, "Subject: CN = Acme Issuing CA");
	assert_contains(out, "Issuer: CN = Acme Root CA");
	assert_contains(out, "CA:TRUE, pathlen:0");
	assert_contains(out, "Certificate Sign, CRL Sign");
	free(out);
	assert_int_equal(run_cmd(&out, "openssl verify -x509_strict -CAfile %s %s",
	    pjoin(dir, "root.crt"), pjoin(dir, "ca.crt")), 0);
	free(out);
	/* validity: about 100 days */
	assert_int_equal(run_cmd(NULL, "openssl x509 -in %s -noout -checkend %d",
	    pjoin(dir, "root.crt"), 99 * 86400), 0);
	assert_int_equal(run_cmd(NULL, "openssl x509 -in %s -noout -checkend %d",
	    pjoin(dir, "root.crt"), 101 * 86400), 1);

	free(chain);
	free(ca);
	free(root);
	tmpdir_rm(base);
}

static void
make_cli_cert(const char *base, const char *name, const char *bc)
{
	char cnf[1024];
	char *out = NULL;

	snprintf(cnf, sizeof(cnf), "[req]\ndistinguished_name = dn\nprompt = no\n"
	    "[dn]\nCN = %s\n[ext]\nbasicConstraints = %s\n"
	    "keyUsage = critical,keyCertSign,cRLSign,digitalSignature\n"
	    "subjectKeyIdentifier = hash\n", name, bc);
	write_bytes(pjoin(base, "req.cnf"), cnf, strlen(cnf));
	if (run_cmd(&out, "cd %s && openssl req -x509 -config req.cnf -extensions ext "
	    "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key -out %s.crt "
	    "-days 30", base, name, name) != 0)
		fail_msg("openssl req: %s", out);
	free(out);
}

static void
test_init_import(void **state)
{
	struct fixture *f = *state;
	char *base = tmpdir_new(), err[256], *a, *b;
	struct ca_init_opts o = { 0 };
	(void)state;

	make_cli_cert(base, "imported", "critical,CA:TRUE");
	make_cli_cert(base, "other", "critical,CA:TRUE");
	make_cli_cert(base, "leaf", "CA:FALSE");

	o.dir = pjoin(base, "ca");
	o.import_cert = pjoin(base, "imported.crt");
	o.import_key = pjoin(base, "imported.key");
	assert_int_equal(ca_init(&o, err, sizeof(err)), 0);
	a = read_text(pjoin(base, "imported.crt"));
	b = read_text(pjoin(base, "ca/ca.crt"));
	assert_string_equal(a, b);
	free(b);
	b = read_text(pjoin(base, "ca/root.crt"));
	assert_string_equal(a, b);
	free(a);
	free(b);
	/* the key was re-encoded as PKCS#8 and still matches */
	assert_int_equal(run_cmd(NULL, "grep -q 'BEGIN PRIVATE KEY' %s && "
	    "test \"$(openssl pkey -in %s -pubout)\" = \"$(openssl x509 -in %s -noout -pubkey)\"",
	    pjoin(base, "ca/ca.key"), pjoin(base, "ca/ca.key"), pjoin(base, "ca/ca.crt")), 0);

	/* the existing CA is kept */
	assert_int_equal(ca_init(&o, err, sizeof(err)), ERR_CONFLICT);

	o.force = 1;
	o.import_key = pjoin(base, "other.key");
	assert_int_equal(ca_init(&o, err, sizeof(err)), ERR_INVALID);
	assert_non_null(strstr(err, "does not match"));

	o.import_cert = pjoin(base, "leaf.crt");
	o.import_key = pjoin(base, "leaf.key");
	assert_int_equal(ca_init(&o, err, sizeof(err)), ERR_INVALID);
	assert_non_null(strstr(err, "not a CA"));

	o.import_cert = pjoin(base, "req.cnf");
	assert_int_equal(ca_init(&o, err, sizeof(err)), ERR_INVALID);
	assert_non_null(strstr(err, "not a PEM certificate"));

	o.import_cert = pjoin(base, "imported.crt");
	o.import_key = NULL;
	assert_int_equal(ca_init(&o, err, sizeof(err)), ERR_INVALID);
	o.import_key = pjoin(base, "imported.key");
	o.two_tier = 1;
	assert_int_equal(ca_init(&o, err, sizeof(err)), ERR_INVALID);
	o.two_tier = 0;

	/* an issuing CA with its root after it in the same file */
	o.dir = pjoin(base, "ca2");
	o.import_cert = pjoin(f->base[1], "ca/chain.pem");
	o.import_key = pjoin(f->base[1], "ca/ca.key");
	assert_int_equal(ca_init(&o, err, sizeof(err)), 0);
	a = read_text(pjoin(f->base[1], "ca/root.crt"));
	b = read_text(pjoin(base, "ca2/root.crt"));
	assert_string_equal(a, b);
	free(a);
	free(b);
	/* ... but not without the root */
	o.dir = pjoin(base, "ca3");
	o.import_cert = pjoin(f->base[1], "ca/ca.crt");
	assert_int_equal(ca_init(&o, err, sizeof(err)), ERR_INVALID);
	assert_non_null(strstr(err, "not self-signed"));

	tmpdir_rm(base);
}

static void
test_init_bad_options(void **state)
{
	char *base = tmpdir_new(), err[256];
	struct ca_init_opts o = { .dir = NULL };
	(void)state;

	assert_int_equal(ca_init(&o, err, sizeof(err)), ERR_INVALID);
	assert_non_null(strstr(err, "directory"));
	o.dir = pjoin(base, "ca");
	o.common_name = "";
	assert_int_equal(ca_init(&o, err, sizeof(err)), ERR_INVALID);
	o.common_name = "0123456789012345678901234567890123456789012345678901234567890123456789";
	assert_int_equal(ca_init(&o, err, sizeof(err)), ERR_INVALID);
	o.common_name = "bad\nname";
	assert_int_equal(ca_init(&o, err, sizeof(err)), ERR_INVALID);
	o.common_name = NULL;
	o.days = -1;
	assert_int_equal(ca_init(&o, err, sizeof(err)), ERR_INVALID);
	assert_non_null(strstr(err, "days"));
	o.days = 0;
	o.dir = "/proc/no/such/dir";
	assert_int_equal(ca_init(&o, err, sizeof(err)), ERR_IO);
	assert_non_null(strstr(err, "cannot create"));
	/* nothing was written for the refused ones */
	assert_int_not_equal(access(pjoin(base, "ca/ca.key"), F_OK), 0);
	tmpdir_rm(base);
}

static uint8_t *
make_optdata(size_t *len)
{
	struct optdata od = { .owner = "alice", .groups = { "staff", "lab" }, .ngroups = 2,
	    .classes = { "printer" }, .nclasses = 1 };
	uint8_t *der = NULL;

	assert_int_equal(optdata_encode(&od, &der, len), 0);
	return der;
}

/* Issues a P-256 certificate from a CSR under CA i; *req gets the request. */
static void
issue_one(struct fixture *f, int i, struct ca_issue_req *req, uint8_t **spki,
    uint8_t **opt, uint8_t **der, size_t *derlen)
{
	EVP_PKEY *k = key_gen("EC", "P-256");
	struct ca_policy pol = { 0, 8192 };
	uint8_t *csr;
	size_t csrlen, spkilen, optlen;
	char why[200];

	csr_make(k, EVP_sha256(), &csr, &csrlen);
	assert_int_equal(ca_csr_check(csr, csrlen, &pol, spki, &spkilen, why, sizeof(why)), 0);
	*opt = make_optdata(&optlen);
	*req = issue_req_make(*spki, spkilen, 365);
	req->optdata = *opt;
	req->optdatalen = optlen;
	assert_int_equal(ca_key_issue(f->key[i], req, der, derlen), 0);
	free(csr);
	EVP_PKEY_free(k);
}

static void
verify_with_openssl(const char *base, const uint8_t *der, size_t len)
{
	char *out = NULL;
	const char *leaf = pjoin(base, "leaf.pem");

	write_der_as_pem(leaf, "CERTIFICATE", der, len);
	for (int i = 0; i < 2; i++) {
		if (run_cmd(&out, "openssl verify -x509_strict -purpose %s -CAfile %s "
		    "-untrusted %s %s", i == 0 ? "sslclient" : "sslserver",
		    pjoin(base, "ca/root.crt"), pjoin(base, "ca/chain.pem"), leaf) != 0)
			fail_msg("openssl verify: %s", out);
		assert_contains(out, ": OK");
		free(out);
	}
}

static void
issue_and_check_text(struct fixture *f, int i)
{
	struct ca_issue_req req;
	uint8_t *spki, *opt, *der;
	size_t derlen;
	char *out, hex[CA_SERIAL_HEX], want[CA_SERIAL_HEX];

	issue_one(f, i, &req, &spki, &opt, &der, &derlen);
	verify_with_openssl(f->base[i], der, derlen);

	assert_int_equal(run_cmd(&out, "openssl x509 -in %s -noout -text",
	    pjoin(f->base[i], "leaf.pem")), 0);
	assert_contains(out, "Version: 3 (0x2)");
	assert_contains(out, "Subject: serialNumber = 00:1a:7d:da:71:13\n");
	assert_contains(out, i == 0 ? "Issuer: O = Example Corp, CN = provd Root CA" :
	    "Issuer: O = Example Corp, CN = provd Issuing CA");
	assert_contains(out, "X509v3 Subject Alternative Name: \n"
	    "                URI:urn:dev:mac:001a7dda7113\n");
	assert_contains(out, "X509v3 Key Usage: critical\n                Digital Signature\n");
	assert_contains(out, "X509v3 Extended Key Usage: \n"
	    "                TLS Web Client Authentication, TLS Web Server Authentication\n");
	assert_contains(out, "X509v3 Basic Constraints: critical\n                CA:FALSE\n");
	assert_contains(out, "X509v3 Subject Key Identifier");
	assert_contains(out, "X509v3 Authority Key Identifier");
	assert_contains(out, "X509v3 CRL Distribution Points");
	assert_contains(out, "URI:" TEST_CRL_URL);
	assert_contains(out, "Authority Information Access");
	assert_contains(out, "OCSP - URI:" TEST_OCSP_URL);
	assert_contains(out, OPTDATA_OID ": \n");	/* present, not critical */
	assert_contains(out, "Signature Algorithm: ecdsa-with-SHA256");
	assert_null(strstr(out, "Key Agreement"));
	free(out);

	assert_int_equal(ca_cert_serial_hex(der, derlen, hex), 0);
	hex_encode(req.serial, CA_SERIAL_LEN, want);
	assert_string_equal(hex, want);
	free(der);
	free(spki);
	free(opt);
}

static void
test_issue_one_tier(void **state)
{
	issue_and_check_text(*state, 0);
}

static void
test_issue_two_tier(void **state)
{
	issue_and_check_text(*state, 1);
}

static X509_EXTENSION *
find_ext(X509 *x, int nid, const ASN1_OBJECT *obj)
{
	int pos = obj != NULL ? X509_get_ext_by_OBJ(x, obj, -1) : X509_get_ext_by_NID(x, nid, -1);

	assert_true(pos >= 0);
	return X509_get_ext(x, pos);
}

/* The profile checked field by field on the parsed certificate. */
static void
test_issue_profile_fields(void **state)
{
	struct fixture *f = *state;
	struct ca_issue_req req;
	uint8_t *spki, *opt, *der;
	size_t derlen;
	const unsigned char *p;
	X509 *x, *cax;
	ASN1_OBJECT *oid;
	struct optdata od;
	char buf[256];
	FILE *fp;

	issue_one(f, 1, &req, &spki, &opt, &der, &derlen);
	p = der;
	x = d2i_X509(NULL, &p, (long)derlen);
	assert_non_null(x);
	assert_ptr_equal(p, der + derlen);
	assert_int_equal(X509_get_version(x), X509_VERSION_3);

	/* subject: only serialNumber with the canonical MAC */
	X509_NAME *subj = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_entry_count(subj), 1);
	assert_int_equal(X509_NAME_get_text_by_NID(subj, NID_serialNumber, buf, sizeof(buf)), 17);
	assert_string_equal(buf, "00:1a:7d:da:71:13");

	/* validity as requested */
	ASN1_TIME *t = ASN1_TIME_new();
	assert_non_null(ASN1_TIME_set(t, (time_t)req.not_before));
	assert_int_equal(ASN1_TIME_compare(t, X509_get0_notBefore(x)), 0);
	assert_non_null(ASN1_TIME_set(t, (time_t)req.not_after));
	assert_int_equal(ASN1_TIME_compare(t, X509_get0_notAfter(x)), 0);
	ASN1_TIME_free(t);

	/* the key is the CSR's */
	EVP_PKEY *pk = X509_get0_pubkey(x);
	p = spki;
	EVP_PKEY *want = d2i_PUBKEY(NULL, &p, 4096);
	assert_int_equal(EVP_PKEY_eq(pk, want), 1);
	EVP_PKEY_free(want);

	/* key usage: digitalSignature only; EKU both; not a CA */
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_CLIENT | XKU_SSL_SERVER);
	assert_int_equal(X509_check_ca(x), 0);
	assert_true(X509_EXTENSION_get_critical(find_ext(x, NID_key_usage, NULL)));
	assert_true(X509_EXTENSION_get_critical(find_ext(x, NID_basic_constraints, NULL)));
	assert_false(X509_EXTENSION_get_critical(find_ext(x, NID_ext_key_usage, NULL)));

	/* AKI = the issuing CA's SKI */
	fp = fopen(pjoin(f->base[1], "ca/ca.crt"), "r");
	assert_non_null(fp);
	cax = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(cax);
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x),
	    X509_get0_subject_key_id(cax)), 0);
	assert_int_equal(X509_check_issued(cax, x), X509_V_OK);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(cax)), 1);
	/* SKI = SHA-1 of the key bits */
	const unsigned char *bits;
	int bitslen;
	unsigned char md[20];
	assert_true(X509_PUBKEY_get0_param(NULL, &bits, &bitslen, NULL, X509_get_X509_PUBKEY(x)));
	assert_true(EVP_Digest(bits, (size_t)bitslen, md, NULL, EVP_sha1(), NULL));
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
	assert_non_null(ski);
	assert_int_equal(ASN1_STRING_length(ski), 20);
	assert_memory_equal(ASN1_STRING_get0_data(ski), md, 20);
	X509_free(cax);

	/* optional data: non-critical, extnValue is the DER as given */
	oid = OBJ_txt2obj(OPTDATA_OID, 1);
	assert_non_null(oid);
	X509_EXTENSION *ext = find_ext(x, 0, oid);
	assert_false(X509_EXTENSION_get_critical(ext));
	ASN1_OCTET_STRING *val = X509_EXTENSION_get_data(ext);
	assert_int_equal(ASN1_STRING_length(val), req.optdatalen);
	assert_memory_equal(ASN1_STRING_get0_data(val), req.optdata, req.optdatalen);
	assert_int_equal(optdata_decode(ASN1_STRING_get0_data(val),
	    (size_t)ASN1_STRING_length(val), &od), 0);
	assert_string_equal(od.owner, "alice");
	assert_int_equal(od.ngroups, 2);
	assert_string_equal(od.groups[0], "staff");
	assert_string_equal(od.groups[1], "lab");
	assert_int_equal(od.nclasses, 1);
	assert_string_equal(od.classes[0], "printer");
	optdata_clear(&od);
	ASN1_OBJECT_free(oid);

	/* serial: positive, 16 bytes as requested */
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	unsigned char sb[CA_SERIAL_LEN];
	assert_non_null(bn);
	assert_false(BN_is_negative(bn));
	assert_int_equal(BN_bn2binpad(bn, sb, sizeof(sb)), CA_SERIAL_LEN);
	assert_memory_equal(sb, req.serial, CA_SERIAL_LEN);
	BN_free(bn);

	X509_free(x);
	free(der);
	free(spki);
	free(opt);
}

static void
issue_key(struct ca_key *key, const char *base, EVP_PKEY *k, int want)
{
	uint8_t *spki, *der = (uint8_t *)"x";
	size_t spkilen, derlen = 5;
	struct ca_issue_req req;

	spki_of(k, &spki, &spkilen);
	req = issue_req_make(spki, spkilen, 30);
	assert_int_equal(ca_key_issue(key, &req, &der, &derlen), want);
	if (want == 0) {
		verify_with_openssl(base, der, derlen);
		free(der);
	} else {
		assert_null(der);
		assert_int_equal(derlen, 0);
	}
	free(spki);
}

static void
test_issue_key_types(void **state)
{
	struct fixture *f = *state;
	struct config *cfg;
	struct ca_key *rsa_ok = NULL;
	char path[512];
	EVP_PKEY *k;
	(void)state;

	k = key_gen("EC", "P-384");
	issue_key(f->key[0], f->base[0], k, 0);
	EVP_PKEY_free(k);
	k = key_gen("ED25519", NULL);
	issue_key(f->key[1], f->base[1], k, 0);
	EVP_PKEY_free(k);

	/* RSA only where allowed, and never under 2048 bits */
	k = key_gen("RSA", "2048");
	issue_key(f->key[1], f->base[1], k, ERR_KEY_POLICY);
	cfg = cfg_write_load(f->base[1], "rsa", 1, "allow_rsa = yes\n", path, sizeof(path));
	assert_int_equal(ca_key_load(cfg, &rsa_ok), 0);
	issue_key(rsa_ok, f->base[1], k, 0);
	EVP_PKEY_free(k);
	k = key_gen("RSA", "1024");
	issue_key(rsa_ok, f->base[1], k, ERR_KEY_POLICY);
	EVP_PKEY_free(k);
	k = key_gen("EC", "secp256k1");
	issue_key(rsa_ok, f->base[1], k, ERR_KEY_POLICY);
	EVP_PKEY_free(k);
	ca_key_free(rsa_ok);
	config_free(cfg);
}

static void
test_issue_refusals(void **state)
{
	struct fixture *f = *state;
	struct ca_key *k = f->key[0];
	EVP_PKEY *pk = key_gen("EC", "P-256");
	uint8_t *spki, *der, *big, *opt;
	size_t spkilen, derlen, optlen;
	struct ca_issue_req req, good;
	int64_t max = f->cfg[0]->validity_days * 86400 + f->cfg[0]->backdate_s + 60;

	spki_of(pk, &spki, &spkilen);
	good = issue_req_make(spki, spkilen, 1);
	assert_int_equal(ca_key_issue(k, &good, &der, &derlen), 0);
	free(der);

#define REFUSED(want) do { \
		der = (uint8_t *)"x"; \
		assert_int_equal(ca_key_issue(k, &req, &der, &derlen), (want)); \
		assert_null(der); \
	} while (0)

	/* validity */
	req = good;
	req.not_after = req.not_before;
	REFUSED(ERR_INVALID);
	req.not_after = req.not_before - 1;
	REFUSED(ERR_INVALID);
	req.not_after = req.not_before + max;
	assert_int_equal(ca_key_issue(k, &req, &der, &derlen), 0);	/* at the limit */
	free(der);
	req.not_after = req.not_before + max + 1;
	REFUSED(ERR_INVALID);
	req.not_before = -1;
	req.not_after = 100;
	REFUSED(ERR_INVALID);
	req.not_before = INT64_MIN;
	req.not_after = INT64_MAX;
	REFUSED(ERR_INVALID);

	/* MAC and serial */
	req = good;
	req.mac[0] = 0x01;	/* multicast */
	REFUSED(ERR_BAD_MAC);
	memset(req.mac, 0, MAC_LEN);
	REFUSED(ERR_BAD_MAC);
	req = good;
	memset(req.serial, 0, CA_SERIAL_LEN);
	REFUSED(ERR_INVALID);

	/* public key */
	req = good;
	req.spkilen = spkilen - 1;
	REFUSED(ERR_INVALID);
	big = calloc(1, CA_MAX_SPKI + 2);
	assert_non_null(big);
	memcpy(big, spki, spkilen);
	req.spki = big;
	req.spkilen = spkilen + 1;	/* a trailing byte */
	REFUSED(ERR_INVALID);
	req.spkilen = CA_MAX_SPKI + 1;
	REFUSED(ERR_TOO_BIG);
	req.spki = NULL;
	req.spkilen = 0;
	REFUSED(ERR_INVALID);

	/* optional data */
	req = good;
	req.optdata = (const uint8_t *)"\x04\x01\x00";
	req.optdatalen = 3;
	REFUSED(ERR_INVALID);
	req.optdatalen = 0;
	REFUSED(ERR_INVALID);
	opt = make_optdata(&optlen);
	req.optdata = opt;
	req.optdatalen = optlen - 1;
	REFUSED(ERR_INVALID);
	req.optdata = big;
	req.optdatalen = CA_MAX_OPTDATA + 1;
	free(big);
	big = calloc(1, CA_MAX_OPTDATA + 1);
	assert_non_null(big);
	req.optdata = big;
	REFUSED(ERR_TOO_BIG);
#undef REFUSED

	assert_int_equal(ca_key_issue(NULL, &good, &der, &derlen), ERR_INVALID);
	assert_int_equal(ca_key_issue(k, NULL, &der, &derlen), ERR_INVALID);
	free(opt);
	free(big);
	free(spki);
	EVP_PKEY_free(pk);
}

/* A validity within the profile but past the CA's own notAfter. */
static void
test_issue_past_ca_expiry(void **state)
{
	char *base = tmpdir_new(), err[256], path[512];
	struct ca_init_opts o = { .days = 10 };
	struct config *cfg;
	struct ca_key *k = NULL;
	EVP_PKEY *pk = key_gen("EC", "P-256");
	uint8_t *spki, *der = NULL;
	size_t spkilen, derlen;
	struct ca_issue_req req;
	(void)state;

	o.dir = pjoin(base, "ca");
	assert_int_equal(ca_init(&o, err, sizeof(err)), 0);
	cfg = cfg_write_load(base, "provd", 0, NULL, path, sizeof(path));
	assert_int_equal(ca_key_load(cfg, &k), 0);
	spki_of(pk, &spki, &spkilen);
	req = issue_req_make(spki, spkilen, 9);
	assert_int_equal(ca_key_issue(k, &req, &der, &derlen), 0);
	free(der);
	req = issue_req_make(spki, spkilen, 11);
	assert_int_equal(ca_key_issue(k, &req, &der, &derlen), ERR_INVALID);
	assert_null(der);

	/* no URLs configured: no CDP, no AIA */
	char *out;
	req = issue_req_make(spki, spkilen, 9);
	assert_int_equal(ca_key_issue(k, &req, &der, &derlen), 0);
	write_der_as_pem(pjoin(base, "leaf.pem"), "CERTIFICATE", der, derlen);
	assert_int_equal(run_cmd(&out, "openssl x509 -in %s -noout -text",
	    pjoin(base, "leaf.pem")), 0);
	assert_null(strstr(out, "CRL Distribution"));
	assert_null(strstr(out, "Authority Information Access"));
	assert_null(strstr(out, OPTDATA_OID));
	assert_contains(out, "URI:urn:dev:mac:001a7dda7113");
	free(out);
	free(der);

	free(spki);
	EVP_PKEY_free(pk);
	ca_key_free(k);
	config_free(cfg);
	tmpdir_rm(base);
}

static void
test_key_load_errors(void **state)
{
	struct fixture *f = *state;
	char *base = tmpdir_new(), path[512], err[256];
	struct config *cfg;
	struct ca_key *k = (struct ca_key *)1;
	struct ca_init_opts o = { 0 };
	(void)state;

	/* no CA at all */
	cfg = cfg_write_load(base, "provd", 1, NULL, path, sizeof(path));
	assert_int_not_equal(ca_key_load(cfg, &k), 0);
	assert_null(k);

	/* a key that does not belong to the certificate */
	o.dir = pjoin(base, "ca");
	assert_int_equal(ca_init(&o, err, sizeof(err)), 0);
	char *other = read_text(pjoin(f->base[0], "ca/ca.key"));
	write_bytes(pjoin(base, "ca/ca.key"), other, strlen(other));
	free(other);
	assert_int_equal(ca_key_load(cfg, &k), ERR_CONFIG);
	assert_null(k);
	config_free(cfg);

	/* a URL that is not one */
	assert_int_equal(ca_init(&(struct ca_init_opts){ .dir = pjoin(base, "ca"), .force = 1 },
	    err, sizeof(err)), 0);
	cfg = cfg_write_load(base, "bad", 0, "crl_url = not a url\n", path, sizeof(path));
	assert_int_equal(ca_key_load(cfg, &k), ERR_CONFIG);
	config_free(cfg);
	cfg = cfg_write_load(base, "good", 0, NULL, path, sizeof(path));
	assert_int_equal(ca_key_load(cfg, &k), 0);
	ca_key_free(k);
	ca_key_free(NULL);
	config_free(cfg);
	tmpdir_rm(base);
}

static void
test_crl_in_process(void **state)
{
	struct fixture *f = *state;
	struct ca_revoked rev[3];
	struct ca_crl_req req = { .crl_number = 42, .revoked = rev, .nrevoked = 3 };
	int64_t now = (int64_t)time(NULL);
	uint8_t *der = NULL;
	size_t derlen;
	const unsigned char *p;
	X509_CRL *crl;
	FILE *fp;
	X509 *cax;
	char *out;

	req.this_update = now;
	req.next_update = now + 86400;
	for (int i = 0; i < 3; i++) {
		memset(rev[i].serial, 0, CA_SERIAL_LEN);
		rev[i].serial[0] = (uint8_t)(0x90 - i * 0x10);	/* unsorted, high bit set */
		rev[i].serial[15] = (uint8_t)i;
		rev[i].revoked_at = now - 100 * i;
	}
	rev[0].reason = 0;
	rev[1].reason = 1;	/* keyCompromise */
	rev[2].reason = 5;	/* cessationOfOperation */
	assert_int_equal(ca_key_crl(f->key[1], &req, &der, &derlen), 0);

	p = der;
	crl = d2i_X509_CRL(NULL, &p, (long)derlen);
	assert_non_null(crl);
	assert_int_equal(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
	fp = fopen(pjoin(f->base[1], "ca/ca.crt"), "r");
	assert_non_null(fp);
	cax = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(cax)), 1);
	assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(cax)), 0);
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
	assert_int_equal(sk_X509_REVOKED_num(revs), 3);
	for (int i = 1; i < 3; i++)
		assert_true(ASN1_INTEGER_cmp(
		    X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revs, i - 1)),
		    X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revs, i))) < 0);
	X509_free(cax);
	X509_CRL_free(crl);

	write_der_as_pem(pjoin(f->base[1], "crl.pem"), "X509 CRL", der, derlen);
	assert_int_equal(run_cmd(&out, "openssl crl -in %s -noout -text",
	    pjoin(f->base[1], "crl.pem")), 0);
	assert_contains(out, "Version 2 (0x1)");
	assert_contains(out, "X509v3 CRL Number: \n                42\n");
	assert_contains(out, "X509v3 Authority Key Identifier");
	assert_contains(out, "Key Compromise");
	assert_contains(out, "Cessation Of Operation");
	assert_contains(out, "Serial Number: 90000000000000000000000000000000\n");
	assert_null(strstr(out, "Unspecified"));	/* reason 0 is left out */
	assert_contains(out, "Signature Algorithm: ecdsa-with-SHA256");
	free(out);
	free(der);

	/* an empty CRL is fine */
	req.nrevoked = 0;
	req.revoked = NULL;
	assert_int_equal(ca_key_crl(f->key[0], &req, &der, &derlen), 0);
	free(der);

	/* refusals */
	req.revoked = rev;
	req.nrevoked = 3;
	rev[2].reason = 7;	/* not a reason */
	der = (uint8_t *)"x";
	assert_int_equal(ca_key_crl(f->key[0], &req, &der, &derlen), ERR_INVALID);
	assert_null(der);
	rev[2].reason = 11;
	assert_int_equal(ca_key_crl(f->key[0], &req, &der, &derlen), ERR_INVALID);
	rev[2].reason = 1;
	memcpy(rev[2].serial, rev[0].serial, CA_SERIAL_LEN);	/* listed twice */
	assert_int_equal(ca_key_crl(f->key[0], &req, &der, &derlen), ERR_INVALID);
	rev[2].serial[15] = 2;
	req.next_update = req.this_update;
	assert_int_equal(ca_key_crl(f->key[0], &req, &der, &derlen), ERR_INVALID);
	req.next_update = req.this_update + 1;
	req.crl_number = -1;
	assert_int_equal(ca_key_crl(f->key[0], &req, &der, &derlen), ERR_INVALID);
	req.crl_number = 1;
	memset(rev[1].serial, 0, CA_SERIAL_LEN);
	assert_int_equal(ca_key_crl(f->key[0], &req, &der, &derlen), ERR_INVALID);
	req.revoked = NULL;
	assert_int_equal(ca_key_crl(f->key[0], &req, &der, &derlen), ERR_INVALID);
}

/* openssl verify of the PEM certificate leaf against CA i's root with the
 * CRL files given (separated by spaces, each gets -CRLfile); 0 when OK. */
static int
verify_crls(struct fixture *f, int i, const char *leaf, const char *opts, const char *crls)
{
	char args[1500] = "", *out = NULL;
	const char *p = crls;
	size_t o = 0;
	int st;

	while (*p != '\0') {
		size_t len = strcspn(p, " ");
		o += (size_t)snprintf(args + o, sizeof(args) - o, " -CRLfile %.*s", (int)len, p);
		p += len;
		while (*p == ' ')
			p++;
	}
	st = run_cmd(&out, "openssl verify %s -CAfile %s%s %s", opts,
	    pjoin(f->base[i], "ca/root.crt"), args, leaf);
	free(out);
	return st;
}

/* Signs req with CA i and writes it as PEM to base/name; returns the path. */
static const char *
crl_to_file(struct fixture *f, int i, const struct ca_crl_req *req, const char *name,
    char **text)
{
	const char *path = pjoin(f->base[i], name);
	uint8_t *der = NULL;
	size_t derlen;

	assert_int_equal(ca_key_crl(f->key[i], req, &der, &derlen), 0);
	write_der_as_pem(path, "X509 CRL", der, derlen);
	free(der);
	if (text != NULL)
		assert_int_equal(run_cmd(text, "openssl crl -in %s -noout -text", path), 0);
	return path;
}

static void
test_crl_delta_in_process(void **state)
{
	struct fixture *f = *state;
	struct ca_issue_req req;
	uint8_t *spki[3], *opt[3], *der[3];
	size_t derlen[3];
	char *out, leaf[3][32];
	struct ca_revoked rev[3];
	int64_t now = (int64_t)time(NULL);
	struct ca_crl_req base = { .crl_number = 10, .this_update = now - 60,
	    .next_update = now + 3600, .revoked = rev };
	struct ca_crl_req delta = base;
	const char *basef, *deltaf, *emptyf;
	char crls[1200];

	/* three leaves of the one-tier CA: a stays good, b is revoked after
	 * the base, c is on hold in the base and then released */
	for (int i = 0; i < 3; i++) {
		issue_one(f, 0, &req, &spki[i], &opt[i], &der[i], &derlen[i]);
		memcpy(rev[i].serial, req.serial, CA_SERIAL_LEN);
		snprintf(leaf[i], sizeof(leaf[i]), "leaf%d.pem", i);
		write_der_as_pem(pjoin(f->base[0], leaf[i]), "CERTIFICATE", der[i], derlen[i]);
		rev[i].revoked_at = now - 30;
	}
	rev[2].reason = 6;	/* certificateHold */

	/* the base: c on hold; a complete CRL carries Freshest CRL, the delta
	 * CRL's URL */
	base.revoked = &rev[2];
	base.nrevoked = 1;
	basef = crl_to_file(f, 0, &base, "base.pem", &out);
	assert_contains(out, "X509v3 Freshest CRL");
	assert_contains(out, "URI:" TEST_CRL_URL "/delta");
	assert_contains(out, "Certificate Hold");
	assert_null(strstr(out, "Delta CRL Indicator"));
	free(out);

	/* the delta: b keyCompromise, c removeFromCRL */
	rev[1].reason = 1;
	rev[2].reason = 8;
	delta.crl_number = 12;
	delta.delta_base = 10;
	delta.revoked = &rev[1];
	delta.nrevoked = 2;
	deltaf = crl_to_file(f, 0, &delta, "delta.pem", &out);
	assert_contains(out, "X509v3 Delta CRL Indicator: critical\n                10\n");
	assert_contains(out, "X509v3 CRL Number: \n                12\n");
	assert_contains(out, "Key Compromise");
	assert_contains(out, "Remove From CRL");
	assert_null(strstr(out, "Freshest CRL"));
	assert_int_equal(count(out, "Serial Number:"), 2);
	free(out);

	/* openssl combines them: b refused, a and c accepted; without the
	 * delta, c is still on hold and b still good */
	snprintf(crls, sizeof(crls), "%s %s", basef, deltaf);
	assert_int_equal(verify_crls(f, 0, pjoin(f->base[0], leaf[0]), "-crl_check -use_deltas",
	    crls), 0);
	assert_int_not_equal(verify_crls(f, 0, pjoin(f->base[0], leaf[1]),
	    "-crl_check -use_deltas", crls), 0);
	assert_int_equal(verify_crls(f, 0, pjoin(f->base[0], leaf[2]), "-crl_check -use_deltas",
	    crls), 0);
	assert_int_not_equal(verify_crls(f, 0, pjoin(f->base[0], leaf[2]), "-crl_check", basef), 0);
	assert_int_equal(verify_crls(f, 0, pjoin(f->base[0], leaf[1]), "-crl_check", basef), 0);

	/* an empty delta is still a delta */
	delta.crl_number = 13;
	delta.nrevoked = 0;
	delta.revoked = NULL;
	emptyf = crl_to_file(f, 0, &delta, "empty.pem", &out);
	assert_contains(out, "X509v3 Delta CRL Indicator: critical");
	assert_contains(out, "No Revoked Certificates.");
	free(out);
	snprintf(crls, sizeof(crls), "%s %s", basef, emptyf);
	assert_int_not_equal(verify_crls(f, 0, pjoin(f->base[0], leaf[2]),
	    "-crl_check -use_deltas", crls), 0);

	/* refusals: removeFromCRL in a complete CRL; a delta not newer than
	 * its base; a negative base */
	uint8_t *d = (uint8_t *)"x";
	size_t dl;
	base.revoked = &rev[2];
	base.nrevoked = 1;	/* rev[2] is removeFromCRL now */
	assert_int_equal(ca_key_crl(f->key[0], &base, &d, &dl), ERR_INVALID);
	assert_null(d);
	delta.revoked = &rev[1];
	delta.nrevoked = 2;
	delta.crl_number = 10;
	assert_int_equal(ca_key_crl(f->key[0], &delta, &d, &dl), ERR_INVALID);
	delta.crl_number = 9;
	assert_int_equal(ca_key_crl(f->key[0], &delta, &d, &dl), ERR_INVALID);
	delta.crl_number = 11;
	delta.delta_base = -1;
	assert_int_equal(ca_key_crl(f->key[0], &delta, &d, &dl), ERR_INVALID);
	delta.delta_base = 10;
	assert_int_equal(ca_key_crl(f->key[0], &delta, &d, &dl), 0);
	free(d);

	for (int i = 0; i < 3; i++) {
		free(spki[i]);
		free(opt[i]);
		free(der[i]);
	}
}

/* The delta CRL's address follows ca.crl_url: "/delta" added to its path,
 * before a query; without crl_url, no Freshest CRL. */
static void
test_crl_freshest_url(void **state)
{
	struct fixture *f = *state;
	struct ca_crl_req req = { .crl_number = 3 };
	struct config *cfg;
	struct ca_key *k = NULL;
	char path[512], *out;
	uint8_t *der;
	size_t derlen;
	static const struct {
		const char *crl_url, *want;
	} cases[] = {
		{ "http://pki.example.org/v1/crl", "URI:http://pki.example.org/v1/crl/delta\n" },
		{ "http://pki.example.org/v1/crl/", "URI:http://pki.example.org/v1/crl/delta\n" },
		{ "http://pki.example.org/crl?ca=1", "URI:http://pki.example.org/crl/delta?ca=1\n" },
		{ NULL, NULL },
	};

	req.this_update = (int64_t)time(NULL);
	req.next_update = req.this_update + 60;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char extra[200] = "";
		if (cases[i].crl_url != NULL)
			snprintf(extra, sizeof(extra), "crl_url = %s\n", cases[i].crl_url);
		cfg = cfg_write_load(f->base[0], "fresh", 0, extra, path, sizeof(path));
		assert_int_equal(ca_key_load(cfg, &k), 0);
		assert_int_equal(ca_key_crl(k, &req, &der, &derlen), 0);
		write_der_as_pem(pjoin(f->base[0], "fresh.pem"), "X509 CRL", der, derlen);
		assert_int_equal(run_cmd(&out, "openssl crl -in %s -noout -text",
		    pjoin(f->base[0], "fresh.pem")), 0);
		if (cases[i].want != NULL) {
			assert_contains(out, "X509v3 Freshest CRL");
			assert_contains(out, cases[i].want);
		} else
			assert_null(strstr(out, "Freshest CRL"));
		free(out);
		free(der);
		ca_key_free(k);
		config_free(cfg);
	}
}

static void
test_helpers(void **state)
{
	struct fixture *f = *state;
	struct ca_issue_req req;
	uint8_t *spki, *opt, *der, fp[32], *big;
	size_t derlen;
	char *pem, *out, hex[65], hex2[CA_SERIAL_HEX];

	issue_one(f, 0, &req, &spki, &opt, &der, &derlen);

	/* PEM: 64-character lines that parse back to the same DER */
	assert_int_equal(ca_der_to_pem("CERTIFICATE", der, derlen, &pem), 0);
	assert_true(strncmp(pem, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
	assert_non_null(strstr(pem, "\n-----END CERTIFICATE-----\n"));
	for (char *line = strchr(pem, '\n') + 1; *line != '-'; line = strchr(line, '\n') + 1)
		assert_true(strchr(line, '\n') - line <= 64);
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	assert_non_null(x);
	unsigned char *re = NULL;
	int relen = i2d_X509(x, &re);
	assert_int_equal(relen, derlen);
	assert_memory_equal(re, der, derlen);
	OPENSSL_free(re);
	X509_free(x);
	BIO_free(bio);
	write_bytes(pjoin(f->base[0], "h.pem"), pem, strlen(pem));
	free(pem);

	pem = (char *)"x";
	assert_int_equal(ca_der_to_pem("certificate", der, derlen, &pem), ERR_INVALID);
	assert_null(pem);
	assert_int_equal(ca_der_to_pem("A-----B", der, derlen, &pem), ERR_INVALID);
	assert_int_equal(ca_der_to_pem("", der, derlen, &pem), ERR_INVALID);
	assert_int_equal(ca_der_to_pem("CERTIFICATE", der, 0, &pem), ERR_INVALID);

	/* fingerprint as openssl prints it */
	ca_fingerprint(der, derlen, fp);
	hex_encode(fp, 32, hex);
	assert_int_equal(run_cmd(&out, "openssl x509 -in %s -noout -fingerprint -sha256 "
	    "| tr -d : | tr A-F a-f", pjoin(f->base[0], "h.pem")), 0);
	assert_contains(out, hex);
	free(out);

	/* serial hex: 32 digits, refused on junk and trailing bytes */
	assert_int_equal(ca_cert_serial_hex(der, derlen, hex2), 0);
	assert_int_equal(strlen(hex2), 32);
	big = malloc(derlen + 1);
	assert_non_null(big);
	memcpy(big, der, derlen);
	big[derlen] = 0;
	assert_int_equal(ca_cert_serial_hex(big, derlen + 1, hex2), ERR_INVALID);
	assert_int_equal(ca_cert_serial_hex(big, derlen - 1, hex2), ERR_INVALID);
	free(big);

	/* a certificate with a 20-byte serial does not fit */
	char *out2 = NULL;
	assert_int_equal(run_cmd(&out2, "cd %s && openssl req -x509 -newkey ec "
	    "-pkeyopt ec_paramgen_curve:P-256 -nodes -keyout big.key -out big.crt -subj /CN=x "
	    "-set_serial 0x7fffffffffffffffffffffffffffffffffffffff -outform DER",
	    f->base[0]), 0);
	free(out2);
	char *bigder = NULL;
	size_t biglen = 0;
	assert_int_equal(file_read_all(pjoin(f->base[0], "big.crt"), 1 << 16, &bigder, &biglen), 0);
	assert_int_equal(ca_cert_serial_hex((uint8_t *)bigder, biglen, hex2), ERR_INVALID);
	free(bigder);

	free(der);
	free(spki);
	free(opt);
}

struct issuer_thread {
	struct ca_key *key;
	X509 *ca;
	const uint8_t *spki;
	size_t spkilen;
	int ok;
};

static void *
issuer_run(void *arg)
{
	struct issuer_thread *t = arg;

	for (int i = 0; i < 200; i++) {
		struct ca_issue_req req = issue_req_make(t->spki, t->spkilen, 30);
		uint8_t *der = NULL;
		size_t len;
		const unsigned char *p;
		X509 *x;

		if (ca_key_issue(t->key, &req, &der, &len) != 0)
			return NULL;
		p = der;
		x = d2i_X509(NULL, &p, (long)len);
		if (x == NULL || X509_verify(x, X509_get0_pubkey(t->ca)) != 1) {
			X509_free(x);
			free(der);
			return NULL;
		}
		X509_free(x);
		free(der);
	}
	t->ok = 1;
	return NULL;
}

/* One ca_key shared by several threads (the signing template is copied). */
static void
test_issue_threads(void **state)
{
	struct fixture *f = *state;
	enum { T = 4 };
	struct issuer_thread t[T];
	pthread_t th[T];
	EVP_PKEY *pk = key_gen("EC", "P-256");
	uint8_t *spki;
	size_t spkilen;
	FILE *fp;
	X509 *ca;

	fp = fopen(pjoin(f->base[1], "ca/ca.crt"), "r");
	assert_non_null(fp);
	ca = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(ca);
	spki_of(pk, &spki, &spkilen);
	for (int i = 0; i < T; i++) {
		t[i] = (struct issuer_thread){ f->key[1], ca, spki, spkilen, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, issuer_run, &t[i]), 0);
	}
	for (int i = 0; i < T; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_true(t[i].ok);
	}
	X509_free(ca);
	free(spki);
	EVP_PKEY_free(pk);
}

/* In-process issuance rate (profile with CDP, AIA and optional data). */
static void
test_issue_rate(void **state)
{
	struct fixture *f = *state;
	enum { N = 5000 };
	EVP_PKEY *pk = key_gen("EC", "P-256");
	uint8_t *spki, *opt, *der;
	size_t spkilen, optlen, derlen, total = 0;
	struct ca_issue_req req;
	struct timespec t0;
	double s;

	spki_of(pk, &spki, &spkilen);
	opt = make_optdata(&optlen);
	req = issue_req_make(spki, spkilen, 365);
	req.optdata = opt;
	req.optdatalen = optlen;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(ca_serial_new(req.serial), 0);
		assert_int_equal(ca_key_issue(f->key[1], &req, &der, &derlen), 0);
		total += derlen;
		free(der);
	}
	s = secs_since(&t0);
	print_message("bench: ca_key_issue %.0f certificates/s (%d in %.2f s, %zu bytes each)\n",
	    N / s, N, s, total / N);
	assert_true(total > (size_t)N * 300);
	free(opt);
	free(spki);
	EVP_PKEY_free(pk);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_one_tier),
		cmocka_unit_test(test_init_two_tier),
		cmocka_unit_test(test_init_import),
		cmocka_unit_test(test_init_bad_options),
		cmocka_unit_test(test_issue_one_tier),
		cmocka_unit_test(test_issue_two_tier),
		cmocka_unit_test(test_issue_profile_fields),
		cmocka_unit_test(test_issue_key_types),
		cmocka_unit_test(test_issue_refusals),
		cmocka_unit_test(test_issue_past_ca_expiry),
		cmocka_unit_test(test_key_load_errors),
		cmocka_unit_test(test_crl_in_process),
		cmocka_unit_test(test_crl_delta_in_process),
		cmocka_unit_test(test_crl_freshest_url),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_issue_threads),
		cmocka_unit_test(test_issue_rate),
	};

	log_init("test_ca_issue", LOG_LVL_ERROR, 0, 0);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
