/*
 * test_policy.c: the local policy file and the disconnected decision —
 * files that load (comments, continuation, repeated keys, every kind of
 * item) and files refused whole with file:line (unknown section or key,
 * bad values, names too long, lines too long, NUL bytes, too big, too many
 * entries); decisions by group, owner, device and any, deny wins, default
 * deny, "*" actions, unknown resource, certificate dates, CRL states and
 * stale_crl; the request frame on the link.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "device/device.h"

static const uint8_t ADDR[MAC_LEN] = { 0x02, 0x00, 0x00, 0x00, 0x40, 0x01 };

/* A certificate valid from nb to na (seconds from now) with optional data
 * (owner may be NULL; groups a NULL-terminated list, or NULL for none).
 * ext 0: no optional-data extension; 2: a malformed one. */
static X509 *
make_cert(const char *owner, const char *const *groups, long nb, long na, int ext)
{
	struct optdata od = { 0 };
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	uint8_t *der = NULL;
	size_t derlen = 0;

	assert_non_null(k);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), nb);
	X509_gmtime_adj(X509_getm_notAfter(x), na);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)"t", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, k);
	if (ext) {
		od.owner = (char *)owner;
		for (size_t i = 0; groups != NULL && groups[i] != NULL; i++)
			od.groups[od.ngroups++] = (char *)groups[i];
		assert_int_equal(optdata_encode(&od, &der, &derlen), 0);
		if (ext == 2)
			der[0] = 0x04;		/* not a SEQUENCE */
		ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
		ASN1_OBJECT *obj = OBJ_txt2obj(OPTDATA_OID, 1);
		assert_true(ASN1_OCTET_STRING_set(os, der, (int)derlen));
		X509_EXTENSION *e = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
		assert_non_null(e);
		assert_true(X509_add_ext(x, e, -1));
		X509_EXTENSION_free(e);
		ASN1_OBJECT_free(obj);
		ASN1_OCTET_STRING_free(os);
		free(der);
	}
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	EVP_PKEY_free(k);
	return x;
}

static struct policy *
load(const char *text)
{
	struct policy *p = NULL;
	char err[512];

	if (policy_parse(text, strlen(text), "t.ini", &p, err, sizeof(err)) != 0)
		fail_msg("refused: %s", err);
	return p;
}

/* refused(text, expected message part): refused whole, naming it */
static void
refused(const char *text, const char *want)
{
	struct policy *p = (struct policy *)1;
	char err[512] = "";

	assert_int_not_equal(policy_parse(text, strlen(text), "t.ini", &p, err, sizeof(err)), 0);
	assert_null(p);
	if (strstr(err, want) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", err, want);
}

#define HEAD "[resource]\nname = printer\nstale_crl = closed\n"

static void
test_parse_ok(void **state)
{
	struct policy *p;

	(void)state;
	p = load("; a printer\n# also a comment\n" HEAD "[allow]\nprint = engineering, lab ; inline\n"
	    "print = owner:alice\n  device:02:00:00:00:40:09\n* = group:ops\nscan = *\n"
	    "[deny]\nprint = contractors\n");
	assert_string_equal(policy_resource(p), "printer");
	assert_int_equal(policy_stale_open(p), 0);
	policy_free(p);
	p = load("[resource]\nstale_crl = open\nname = door-7\n");
	assert_int_equal(policy_stale_open(p), 1);
	assert_string_equal(policy_resource(p), "door-7");
	policy_free(p);
	policy_free(NULL);
}

static void
test_parse_refused(void **state)
{
	char big[POLICY_MAX_FILE + 64], line[400];

	(void)state;
	refused("", "t.ini: no [resource] name");
	refused("[resource]\nname = printer\n", "no [resource] stale_crl");
	refused("[resource]\nstale_crl = open\n", "no [resource] name");
	refused(HEAD "[alow]\nprint = x\n", "t.ini:4: unknown section [alow]");
	refused(HEAD "[allow]\nprint = x\n[other]\nx = y\n", "t.ini:6: unknown section [other]");
	refused("[resource]\nname = printer\nstale = open\n", "t.ini:3: unknown key \"stale\"");
	refused("[resource]\nname = printer\nstale_crl = maybe\n", "t.ini:3: [resource] stale_crl must be open or closed");
	refused(HEAD "name = again\n", "t.ini:4: [resource] name given twice");
	refused(HEAD "stale_crl = open\n", "t.ini:4: [resource] stale_crl given twice");
	refused("[resource]\nname = two words\nstale_crl = open\n", "t.ini:2: [resource] name");
	refused("key = value\n" HEAD, "t.ini:1: \"key\" outside a section");
	refused(HEAD "this is not ini\n", "t.ini:4: syntax error");
	refused(HEAD "[allow\nprint = x\n", "t.ini:4: syntax error");
	refused(HEAD "[allow]\nprint =\n", "t.ini:5: [allow] print lists nobody");
	refused(HEAD "[allow]\nprint = a,,b\n", "t.ini:5: an empty item");
	refused(HEAD "[allow]\nprint = a,\n", "t.ini:5: an empty item");
	refused(HEAD "[deny]\npr!nt = a\n", "t.ini:5: [deny] \"pr!nt\" is not an action");
	refused(HEAD "[allow]\nprint = owner:\n", "t.ini:5: \"\" is not a name");
	refused(HEAD "[allow]\nprint = device:ff:ff:ff:ff:ff:ff\n", "t.ini:5: device:ff:ff:ff:ff:ff:ff is not");
	refused(HEAD "[allow]\nprint = a\x01" "b\n", "t.ini:5:");
	/* an action of 65 bytes; a name of 129 */
	snprintf(line, sizeof(line), HEAD "[allow]\n%065d = a\n", 0);
	refused(line, "t.ini:5: [allow] \"0000");
	snprintf(line, sizeof(line), HEAD "[allow]\nprint = %0129d\n", 0);
	refused(line, "t.ini:5: a name longer than 128 bytes");
	snprintf(line, sizeof(line), HEAD "[allow]\nprint = %0200d\n", 0);
	refused(line, "t.ini:5: line longer than 190 bytes");
	{
		struct policy *p = NULL;
		char err[256];
		static const char nul[] = HEAD "[allow]\nprint = a\0b\n";

		assert_int_equal(policy_parse(nul, sizeof(nul) - 1, "t.ini", &p, err, sizeof(err)),
		    ERR_CONFIG);
		assert_non_null(strstr(err, "NUL byte"));
		memset(big, '\n', sizeof(big));
		assert_int_equal(policy_parse(big, sizeof(big), "t.ini", &p, err, sizeof(err)),
		    ERR_TOO_BIG);
		assert_null(p);
	}
	/* more entries than the table holds */
	{
		size_t n = 0, cap = POLICY_MAX_FILE;
		char *t = malloc(cap);

		assert_non_null(t);
		n += (size_t)snprintf(t + n, cap - n, HEAD "[allow]\n");
		for (int i = 0; i <= POLICY_MAX_ENTRIES / 20 + 1 && n + 200 < cap; i++)
			n += (size_t)snprintf(t + n, cap - n, "a = %s\n",
			    "g,g,g,g,g,g,g,g,g,g,g,g,g,g,g,g,g,g,g,g,g");
		refused(t, "more than 1024 entries");
		free(t);
	}
}

static void
test_decide(void **state)
{
	static const char *const eng[] = { "engineering", NULL };
	static const char *const con[] = { "engineering", "contractors", NULL };
	struct policy *p;
	struct peer_info pi = { 0 };
	char why[POLICY_REASON_MAX];
	time_t now = time(NULL);

	(void)state;
	p = load(HEAD "[allow]\nprint = engineering, owner:carol\nscan = device:02:00:00:00:40:01\n"
	    "* = ops\nstatus = *\n[deny]\nprint = contractors\n");
	memcpy(pi.addr, ADDR, MAC_LEN);
	pi.cert = make_cert("alice", eng, -60, 3600, 1);
	assert_int_equal(policy_decide(p, &pi, "printer", "print", now, POLICY_CRL_FRESH, why,
	    sizeof(why)), 0);
	assert_string_equal(why, "allowed by policy line 5");
	assert_int_equal(policy_decide(p, &pi, "printer", "scan", now, POLICY_CRL_FRESH, why,
	    sizeof(why)), 0);
	assert_string_equal(why, "allowed by policy line 6");
	assert_int_equal(policy_decide(p, &pi, "printer", "status", now, POLICY_CRL_FRESH, why,
	    sizeof(why)), 0);
	assert_string_equal(why, "allowed by policy line 8");
	assert_int_equal(policy_decide(p, &pi, "printer", "staple", now, POLICY_CRL_FRESH, why,
	    sizeof(why)), ERR_FORBIDDEN);
	assert_string_equal(why, "no rule allows this");
	assert_int_equal(policy_decide(p, &pi, "scanner", "print", now, POLICY_CRL_FRESH, why,
	    sizeof(why)), ERR_FORBIDDEN);
	assert_string_equal(why, "unknown resource");
	/* the CRL */
	assert_int_equal(policy_decide(p, &pi, "printer", "print", now, POLICY_CRL_STALE, why,
	    sizeof(why)), ERR_FORBIDDEN);
	assert_string_equal(why, "the cached CRL is stale (stale_crl = closed)");
	assert_int_equal(policy_decide(p, &pi, "printer", "print", now, POLICY_CRL_NONE, why,
	    sizeof(why)), ERR_FORBIDDEN);
	assert_int_equal(policy_decide(p, &pi, "printer", "print", now, POLICY_CRL_REVOKED, why,
	    sizeof(why)), ERR_FORBIDDEN);
	assert_string_equal(why, "certificate revoked");
	/* the address: another device */
	pi.addr[5] = 9;
	assert_int_equal(policy_decide(p, &pi, "printer", "scan", now, POLICY_CRL_FRESH, why,
	    sizeof(why)), ERR_FORBIDDEN);
	peer_info_clear(&pi);

	/* deny wins, whatever the order */
	pi.cert = make_cert("carol", con, -60, 3600, 1);
	assert_int_equal(policy_decide(p, &pi, "printer", "print", now, POLICY_CRL_FRESH, why,
	    sizeof(why)), ERR_FORBIDDEN);
	assert_string_equal(why, "denied by policy line 10");
	assert_int_equal(policy_decide(p, &pi, "printer", "status", now, POLICY_CRL_FRESH, why,
	    sizeof(why)), 0);
	peer_info_clear(&pi);

	/* owner alone; no extension; a malformed one */
	pi.cert = make_cert("carol", NULL, -60, 3600, 1);
	assert_int_equal(policy_decide(p, &pi, "printer", "print", now, POLICY_CRL_FRESH, why,
	    sizeof(why)), 0);
	peer_info_clear(&pi);
	pi.cert = make_cert(NULL, NULL, -60, 3600, 0);
	assert_int_equal(policy_decide(p, &pi, "printer", "print", now, POLICY_CRL_FRESH, why,
	    sizeof(why)), ERR_FORBIDDEN);
	assert_string_equal(why, "no rule allows this");
	assert_int_equal(policy_decide(p, &pi, "printer", "status", now, POLICY_CRL_FRESH, why,
	    sizeof(why)), 0);
	peer_info_clear(&pi);
	pi.cert = make_cert("carol", eng, -60, 3600, 2);
	assert_int_equal(policy_decide(p, &pi, "printer", "status", now, POLICY_CRL_FRESH, why,
	    sizeof(why)), ERR_FORBIDDEN);
	assert_string_equal(why, "the certificate's optional data cannot be read");
	peer_info_clear(&pi);

	/* dates */
	pi.cert = make_cert("alice", eng, -7200, -60, 1);
	assert_int_equal(policy_decide(p, &pi, "printer", "print", now, POLICY_CRL_FRESH, why,
	    sizeof(why)), ERR_FORBIDDEN);
	assert_string_equal(why, "certificate expired");
	peer_info_clear(&pi);
	pi.cert = make_cert("alice", eng, 600, 7200, 1);
	assert_int_equal(policy_decide(p, &pi, "printer", "print", now, POLICY_CRL_FRESH, why,
	    sizeof(why)), ERR_FORBIDDEN);
	assert_string_equal(why, "certificate not yet valid");
	peer_info_clear(&pi);
	assert_int_equal(policy_decide(p, &pi, "printer", "print", now, POLICY_CRL_FRESH, why,
	    sizeof(why)), ERR_FORBIDDEN);
	assert_int_equal(policy_decide(NULL, NULL, NULL, NULL, now, POLICY_CRL_FRESH, why,
	    sizeof(why)), ERR_FORBIDDEN);
	policy_free(p);

	/* stale_crl = open: decided by groups */
	p = load("[resource]\nname = printer\nstale_crl = open\n[allow]\nprint = engineering\n");
	pi.cert = make_cert("alice", eng, -60, 3600, 1);
	assert_int_equal(policy_decide(p, &pi, "printer", "print", now, POLICY_CRL_STALE, why,
	    sizeof(why)), 0);
	assert_int_equal(policy_decide(p, &pi, "printer", "print", now, POLICY_CRL_NONE, why,
	    sizeof(why)), ERR_FORBIDDEN);
	peer_info_clear(&pi);
	pi.cert = make_cert("bob", NULL, -60, 3600, 1);
	assert_int_equal(policy_decide(p, &pi, "printer", "print", now, POLICY_CRL_STALE, why,
	    sizeof(why)), ERR_FORBIDDEN);
	peer_info_clear(&pi);
	policy_free(p);
}

static void
test_request(void **state)
{
	char buf[POLICY_REQ_MAX + 1], res[POLICY_MAX_NAME + 1], act[POLICY_MAX_ACTION + 1];
	char longname[POLICY_MAX_NAME + 2];

	(void)state;
	assert_int_equal(policy_request_format("printer", "print", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "ACCESS printer print");
	assert_int_equal(policy_request_parse((uint8_t *)buf, strlen(buf), res, act), 0);
	assert_string_equal(res, "printer");
	assert_string_equal(act, "print");
	assert_int_equal(policy_request_format("printer", "pr int", buf, sizeof(buf)), ERR_INVALID);
	assert_int_equal(policy_request_format("printer", "*", buf, sizeof(buf)), ERR_INVALID);
	assert_int_equal(policy_request_format("printer", "print", buf, 8), ERR_TOO_BIG);
	static const char *const bad[] = { "", "ACCESS", "ACCESS ", "ACCESS printer",
		"ACCESS printer ", "ACCESS  print", "ACCESS printer print x", "access printer print",
		"ACCESS printer pr\x01nt", "ACCESS printer *", "hello" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(policy_request_parse((const uint8_t *)bad[i], strlen(bad[i]), res,
		    act), ERR_INVALID);
	assert_int_equal(policy_request_parse((const uint8_t *)"ACCESS p\0x a", 12, res, act),
	    ERR_INVALID);
	memset(longname, 'r', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(policy_check_resource(longname), ERR_INVALID);
	longname[POLICY_MAX_NAME] = '\0';
	assert_int_equal(policy_check_resource(longname), 0);
	assert_int_equal(policy_request_format(longname, "print", buf, sizeof(buf)), 0);
	assert_int_equal(policy_request_parse((uint8_t *)buf, strlen(buf), res, act), 0);
	assert_string_equal(res, longname);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_refused),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_request),
	};

	log_init("test_policy", LOG_LVL_ERROR, 0, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
