/*
 * test_sync.c: the directory mapping against a real slapd — a device put
 * twice is one entry and the second put changes nothing, revocation removes
 * the certificate and says why, names full of LDAP metacharacters land in
 * exactly the entries they name, group memberships follow devices, a bad
 * entry fails alone, and a resync repairs entries deleted, added or edited
 * by hand. Each run works under its own ou=sync-<pid>,$LDAP_BASE and
 * removes it at the end. Needs LDAP_URI, LDAP_BIND_DN, LDAP_PASSWORD_FILE
 * and LDAP_BASE (tests/run-all.sh exports them).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ldap.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ldap/dir.h"

#define NASTY "O'Brien, *()\\=+<>#;\" x"

static struct config *cfg;
static LDAP *ld;		/* our own connection, to look at what was written */
static char *base;		/* ou=sync-<pid>,$LDAP_BASE */
static uint8_t *der1, *der2;
static size_t der1len, der2len;

/* A real self-signed certificate: slapd checks the certificate syntax. */
static size_t
make_cert(uint8_t **der, long serial)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	int len;

	assert_non_null(k);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)"t", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	*der = NULL;
	len = i2d_X509(x, der);
	assert_true(len > 0);
	X509_free(x);
	EVP_PKEY_free(k);
	return (size_t)len;
}

/* Entries under sub (e.g. "ou=devices") matching filter; *res for reading. */
static int
search(const char *sub, const char *filter, char **attrs, LDAPMessage **res)
{
	char b[1024];
	int lr;

	snprintf(b, sizeof(b), "%s%s%s", sub ? sub : "", sub ? "," : "", base);
	*res = NULL;
	lr = ldap_search_ext_s(ld, b, LDAP_SCOPE_ONELEVEL, filter, attrs, 0, NULL, NULL, NULL,
	    0, res);
	if (lr == LDAP_NO_SUCH_OBJECT)
		return 0;
	assert_int_equal(lr, LDAP_SUCCESS);
	return ldap_count_entries(ld, *res);
}

static int
count(const char *sub, const char *filter)
{
	LDAPMessage *res;
	char *attrs[] = { "1.1", NULL };
	int n = search(sub, filter, attrs, &res);

	ldap_msgfree(res);
	return n;
}

/* First value of attr of the only entry matching filter, into out. */
static void
value(const char *sub, const char *filter, const char *attr, char *out, size_t len)
{
	LDAPMessage *res;
	char *attrs[] = { (char *)attr, NULL };
	struct berval **v;

	out[0] = '\0';
	assert_int_equal(search(sub, filter, attrs, &res), 1);
	v = ldap_get_values_len(ld, ldap_first_entry(ld, res), attr);
	if (v != NULL && v[0] != NULL)
		snprintf(out, len, "%.*s", (int)v[0]->bv_len, v[0]->bv_val);
	ldap_value_free_len(v);
	ldap_msgfree(res);
}

static int
nvalues(const char *sub, const char *filter, const char *attr)
{
	LDAPMessage *res;
	char *attrs[] = { (char *)attr, NULL };
	struct berval **v;
	int n;

	assert_int_equal(search(sub, filter, attrs, &res), 1);
	v = ldap_get_values_len(ld, ldap_first_entry(ld, res), attr);
	n = ldap_count_values_len(v);
	ldap_value_free_len(v);
	ldap_msgfree(res);
	return n;
}

static void
fill(struct dir_item *it, const char *mac, const char *status, const uint8_t *der,
    size_t derlen, const char *owner, const char *const *groups, size_t ngroups)
{
	memset(it, 0, sizeof(*it));
	it->kind = DIR_DEVICE;
	it->present = 1;
	assert_int_equal(mac_parse(mac, it->dev.mac), 0);
	snprintf(it->dev.serial_hex, sizeof(it->dev.serial_hex), "%032x", (unsigned)it->dev.mac[5]);
	it->dev.status = status;
	it->dev.cert_der = der;
	it->dev.cert_len = derlen;
	it->dev.owner = owner;
	it->dev.groups = groups;
	it->dev.ngroups = ngroups;
}

static struct dir *
open_dir(void)
{
	struct dir *d = NULL;

	assert_int_equal(dir_open(cfg, &d), 0);
	assert_int_equal(dir_ensure_tree(d), 0);
	return d;
}

static void
test_put_twice_unchanged(void **state)
{
	struct dir *d = open_dir();
	struct dir_item it;
	struct dir_report rep;
	char csn1[128], csn2[128];
	(void)state;

	fill(&it, "00:1a:7d:da:71:13", "active", der1, der1len, "alice", NULL, 0);
	assert_int_equal(dir_apply(d, &it, 1, &rep), 0);
	assert_int_equal(it.result, 0);
	assert_int_equal(it.change, DIR_CREATED);
	value("ou=devices", "(macAddress=00:1a:7d:da:71:13)", "entryCSN", csn1, sizeof(csn1));
	/* the same again: nothing written */
	assert_int_equal(dir_apply(d, &it, 1, &rep), 0);
	assert_int_equal(it.result, 0);
	assert_int_equal(it.change, DIR_UNCHANGED);
	assert_int_equal(rep.unchanged, 1);
	assert_int_equal(rep.created + rep.updated + rep.deleted, 0);
	value("ou=devices", "(macAddress=00:1a:7d:da:71:13)", "entryCSN", csn2, sizeof(csn2));
	assert_string_equal(csn1, csn2);
	assert_int_equal(count("ou=devices", "(macAddress=00:1a:7d:da:71:13)"), 1);
	assert_int_equal(count("ou=devices",
	    "(&(objectClass=device)(objectClass=ieee802Device)(objectClass=pkiUser))"), 1);
	assert_int_equal(nvalues("ou=devices", "(macAddress=00:1a:7d:da:71:13)",
	    "userCertificate;binary"), 1);
	/* the owner's entry exists and the device points at it */
	assert_int_equal(count("ou=people", "(&(objectClass=inetOrgPerson)(cn=alice)(sn=alice))"), 1);
	char owner[512], want[512];
	value("ou=devices", "(macAddress=00:1a:7d:da:71:13)", "owner", owner, sizeof(owner));
	snprintf(want, sizeof(want), "cn=alice,ou=people,%s", base);
	assert_string_equal(owner, want);
	dir_close(d);
}

static void
test_revoke(void **state)
{
	struct dir *d = open_dir();
	struct dir_item it;
	char desc[128], serial[64];
	(void)state;

	fill(&it, "00:1a:7d:da:71:14", "active", der1, der1len, NULL, NULL, 0);
	assert_int_equal(dir_apply(d, &it, 1, NULL), 0);
	assert_int_equal(it.result, 0);
	value("ou=devices", "(macAddress=00:1a:7d:da:71:14)", "description", desc, sizeof(desc));
	assert_string_equal(desc, "status: active");
	/* revoked: no certificate, the status and reason, the serial stays */
	fill(&it, "00:1a:7d:da:71:14", "revoked", NULL, 0, NULL, NULL, 0);
	it.dev.reason = dir_reason_name(1);
	assert_int_equal(dir_apply(d, &it, 1, NULL), 0);
	assert_int_equal(it.result, 0);
	assert_int_equal(it.change, DIR_UPDATED);
	value("ou=devices", "(macAddress=00:1a:7d:da:71:14)", "description", desc, sizeof(desc));
	assert_string_equal(desc, "status: revoked (keyCompromise)");
	assert_int_equal(nvalues("ou=devices", "(macAddress=00:1a:7d:da:71:14)",
	    "userCertificate;binary"), 0);
	value("ou=devices", "(macAddress=00:1a:7d:da:71:14)", "serialNumber", serial,
	    sizeof(serial));
	assert_string_equal(serial, it.dev.serial_hex);
	/* and a revoked device seen again is unchanged */
	assert_int_equal(dir_apply(d, &it, 1, NULL), 0);
	assert_int_equal(it.change, DIR_UNCHANGED);
	/* dir_device_find agrees */
	char status[64];
	int has_cert = -1;
	assert_int_equal(dir_device_find(d, it.dev.mac, status, sizeof(status), &has_cert), 0);
	assert_string_equal(status, "revoked (keyCompromise)");
	assert_int_equal(has_cert, 0);
	dir_close(d);
}

static void
test_escaping(void **state)
{
	struct dir *d = open_dir();
	static const char *const groups[] = { NASTY, "g*" };
	static const char *const other[] = { "g" };
	struct dir_item it[2];
	char *fv = NULL, filter[512], *udn = NULL, *ufv = NULL;
	(void)state;

	fill(&it[0], "00:1a:7d:da:71:15", "active", der1, der1len, NASTY, groups, 2);
	fill(&it[1], "00:1a:7d:da:71:16", "active", der2, der2len, "*", other, 1);
	assert_int_equal(dir_apply(d, it, 2, NULL), 0);
	assert_int_equal(it[0].result, 0);
	assert_int_equal(it[1].result, 0);
	/* exactly one user entry per name, found by an exact filter */
	assert_int_equal(dir_filter_value(NASTY, &fv), 0);
	snprintf(filter, sizeof(filter), "(&(objectClass=inetOrgPerson)(cn=%s))", fv);
	assert_int_equal(count("ou=people", filter), 1);
	char got[256];
	value("ou=people", filter, "sn", got, sizeof(got));
	assert_string_equal(got, NASTY);
	assert_int_equal(count("ou=people", "(cn=\\2a)"), 1);	/* the user named "*" */
	/* a group named NASTY holding the first device only; "g*" and "g" apart */
	snprintf(filter, sizeof(filter), "(&(objectClass=groupOfNames)(cn=%s))", fv);
	assert_int_equal(count("ou=groups", filter), 1);
	assert_int_equal(nvalues("ou=groups", filter, "member"), 1);
	assert_int_equal(count("ou=groups", "(cn=g\\2a)"), 1);
	assert_int_equal(count("ou=groups", "(cn=g)"), 1);
	/* the device's owner is the DN of that user, and it is found by it */
	assert_int_equal(dir_user_dn(d, NASTY, &udn), 0);
	assert_int_equal(dir_filter_value(udn, &ufv), 0);
	snprintf(filter, sizeof(filter), "(owner=%s)", ufv);
	assert_int_equal(count("ou=devices", filter), 1);
	/* applying again changes nothing, escaping included */
	assert_int_equal(dir_apply(d, it, 2, NULL), 0);
	assert_int_equal(it[0].change, DIR_UNCHANGED);
	assert_int_equal(it[1].change, DIR_UNCHANGED);
	free(fv);
	free(udn);
	free(ufv);
	dir_close(d);
}

static void
test_groups(void **state)
{
	struct dir *d = open_dir();
	static const char *const g[] = { "scanners" };
	struct dir_item it[3];
	struct dir_report rep;
	(void)state;

	fill(&it[0], "00:1a:7d:00:00:01", "active", der1, der1len, NULL, g, 1);
	fill(&it[1], "00:1a:7d:00:00:02", "active", der2, der2len, NULL, g, 1);
	assert_int_equal(dir_apply(d, it, 2, NULL), 0);
	assert_int_equal(nvalues("ou=groups", "(cn=scanners)", "member"), 2);
	/* the same memberships again: the group is not written */
	assert_int_equal(dir_apply(d, it, 2, &rep), 0);
	assert_int_equal(rep.updated + rep.created, 0);
	/* a device gone from the database leaves the group */
	it[0].present = 0;
	assert_int_equal(dir_apply(d, it, 1, &rep), 0);
	assert_int_equal(it[0].result, 0);
	assert_int_equal(it[0].change, DIR_DELETED);
	assert_int_equal(count("ou=devices", "(macAddress=00:1a:7d:00:00:01)"), 0);
	assert_int_equal(nvalues("ou=groups", "(cn=scanners)", "member"), 1);
	/* the last one: the group has no member, so no entry */
	it[1].present = 0;
	assert_int_equal(dir_apply(d, &it[1], 1, NULL), 0);
	assert_int_equal(it[1].result, 0);
	assert_int_equal(count("ou=groups", "(cn=scanners)"), 0);
	/* a group item sets the whole member list; empty means no entry */
	uint8_t macs[2][MAC_LEN];
	const char *users[] = { "bob" };
	assert_int_equal(mac_parse("00:1a:7d:00:00:03", macs[0]), 0);
	assert_int_equal(mac_parse("00:1a:7d:00:00:04", macs[1]), 0);
	memset(&it[2], 0, sizeof(it[2]));
	it[2].kind = DIR_GROUP;
	it[2].present = 1;
	it[2].name = "printers";
	it[2].member_macs = (const uint8_t (*)[MAC_LEN])macs;
	it[2].nmember_macs = 2;
	it[2].member_users = users;
	it[2].nmember_users = 1;
	assert_int_equal(dir_apply(d, &it[2], 1, NULL), 0);
	assert_int_equal(it[2].change, DIR_CREATED);
	assert_int_equal(nvalues("ou=groups", "(cn=printers)", "member"), 3);
	assert_int_equal(count("ou=people", "(&(objectClass=inetOrgPerson)(cn=bob))"), 1);
	it[2].nmember_macs = 1;
	assert_int_equal(dir_apply(d, &it[2], 1, NULL), 0);
	assert_int_equal(it[2].change, DIR_UPDATED);
	assert_int_equal(nvalues("ou=groups", "(cn=printers)", "member"), 2);
	it[2].nmember_macs = 0;
	it[2].nmember_users = 0;
	assert_int_equal(dir_apply(d, &it[2], 1, NULL), 0);
	assert_int_equal(it[2].change, DIR_DELETED);
	assert_int_equal(count("ou=groups", "(cn=printers)"), 0);
	dir_close(d);
}

static void
test_bad_entry_alone(void **state)
{
	struct dir *d = open_dir();
	static const uint8_t junk[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	struct dir_item it[4];
	struct dir_report rep;
	(void)state;

	fill(&it[0], "00:1a:7d:00:01:01", "active", der1, der1len, "carol", NULL, 0);
	fill(&it[1], "00:1a:7d:00:01:02", "active", junk, sizeof(junk), "carol", NULL, 0);
	fill(&it[2], "00:1a:7d:00:01:03", "active", der2, der2len, NULL, NULL, 0);
	fill(&it[3], "00:1a:7d:00:01:01", "active", der1, der1len, NULL, NULL, 0);
	assert_int_equal(dir_apply(d, it, 4, &rep), 0);
	assert_int_equal(it[0].result, 0);
	assert_int_not_equal(it[1].result, 0);		/* not a certificate */
	assert_non_null(strstr(it[1].error, "cn=00:1a:7d:00:01:02"));
	assert_int_equal(it[2].result, 0);
	assert_int_equal(it[3].result, ERR_INVALID);	/* the same entry twice */
	assert_int_equal(rep.failed, 2);
	assert_int_equal(count("ou=devices", "(macAddress=00:1a:7d:00:01:01)"), 1);
	assert_int_equal(count("ou=devices", "(macAddress=00:1a:7d:00:01:02)"), 0);
	assert_int_equal(count("ou=devices", "(macAddress=00:1a:7d:00:01:03)"), 1);
	assert_int_equal(count("ou=people", "(cn=carol)"), 1);
	/* a status too long to describe is refused before anything is sent */
	fill(&it[0], "00:1a:7d:00:01:04", "a status far too long to be any status at all", NULL, 0,
	    NULL, NULL, 0);
	assert_int_equal(dir_apply(d, it, 1, NULL), 0);
	assert_int_equal(it[0].result, ERR_INVALID);
	dir_close(d);
}

static void
test_resync(void **state)
{
	struct dir *d = open_dir();
	static const char *const g[] = { "lab" };
	struct dir_item it[5];
	struct dir_report rep;
	char dn[512], desc[64];
	(void)state;

	/* start from a known directory: only these entries */
	fill(&it[0], "00:1a:7d:00:02:01", "active", der1, der1len, "dave", g, 1);
	fill(&it[1], "00:1a:7d:00:02:02", "active", der2, der2len, NULL, g, 1);
	fill(&it[2], "00:1a:7d:00:02:03", "revoked", NULL, 0, NULL, NULL, 0);
	it[2].dev.reason = dir_reason_name(5);
	memset(&it[3], 0, sizeof(it[3]));
	it[3].kind = DIR_USER;
	it[3].present = 1;
	it[3].name = "dave";
	uint8_t macs[2][MAC_LEN];
	memcpy(macs[0], it[0].dev.mac, MAC_LEN);
	memcpy(macs[1], it[1].dev.mac, MAC_LEN);
	memset(&it[4], 0, sizeof(it[4]));
	it[4].kind = DIR_GROUP;
	it[4].present = 1;
	it[4].name = "lab";
	it[4].member_macs = (const uint8_t (*)[MAC_LEN])macs;
	it[4].nmember_macs = 2;
	assert_int_equal(dir_resync(d, it, 5, &rep), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(it[i].result, 0);
	/* every device entry of the earlier tests was deleted: none in the list */
	assert_int_equal(count("ou=devices", "(objectClass=*)"), 3);
	assert_int_equal(dir_resync(d, it, 5, &rep), 0);
	assert_int_equal(rep.unchanged, 5);
	assert_int_equal(rep.created + rep.updated + rep.deleted + rep.failed, 0);

	/* by hand: one deleted, one stray added, one edited */
	snprintf(dn, sizeof(dn), "cn=00:1a:7d:00:02:02,ou=devices,%s", base);
	assert_int_equal(ldap_delete_ext_s(ld, dn, NULL, NULL), LDAP_SUCCESS);
	snprintf(dn, sizeof(dn), "cn=stray,ou=devices,%s", base);
	char *oc_v[] = { "device", NULL }, *cn_v[] = { "stray", NULL };
	LDAPMod oc = { LDAP_MOD_ADD, "objectClass", { .modv_strvals = oc_v } };
	LDAPMod cn = { LDAP_MOD_ADD, "cn", { .modv_strvals = cn_v } };
	LDAPMod *mods[] = { &oc, &cn, NULL };
	assert_int_equal(ldap_add_ext_s(ld, dn, mods, NULL, NULL), LDAP_SUCCESS);
	snprintf(dn, sizeof(dn), "cn=00:1a:7d:00:02:03,ou=devices,%s", base);
	char *d_v[] = { "status: active", NULL };
	LDAPMod dm = { LDAP_MOD_REPLACE, "description", { .modv_strvals = d_v } };
	LDAPMod *mods2[] = { &dm, NULL };
	assert_int_equal(ldap_modify_ext_s(ld, dn, mods2, NULL, NULL), LDAP_SUCCESS);

	assert_int_equal(dir_resync(d, it, 5, &rep), 0);
	assert_int_equal(rep.created, 1);
	assert_int_equal(rep.deleted, 1);
	assert_int_equal(rep.updated, 1);
	assert_int_equal(rep.unchanged, 3);
	assert_int_equal(count("ou=devices", "(objectClass=*)"), 3);
	assert_int_equal(count("ou=devices", "(cn=stray)"), 0);
	value("ou=devices", "(macAddress=00:1a:7d:00:02:03)", "description", desc, sizeof(desc));
	assert_string_equal(desc, "status: revoked (cessationOfOperation)");
	assert_int_equal(nvalues("ou=groups", "(cn=lab)", "member"), 2);
	dir_close(d);
}

static void
test_unreachable(void **state)
{
	struct dir_item it;
	(void)state;

	fill(&it, "00:1a:7d:00:03:01", "active", NULL, 0, NULL, NULL, 0);
	assert_int_equal(dir_apply(NULL, &it, 1, NULL), ERR_UNAVAILABLE);
}

/* Deletes every entry under dn, deepest first. */
static void
delete_tree(const char *dn)
{
	LDAPMessage *res = NULL, *e;
	char *attrs[] = { "1.1", NULL };
	char **dns = NULL;
	size_t n = 0;

	if (ldap_search_ext_s(ld, dn, LDAP_SCOPE_SUBTREE, "(objectClass=*)", attrs, 0, NULL,
	    NULL, NULL, 0, &res) == LDAP_SUCCESS) {
		dns = calloc((size_t)ldap_count_entries(ld, res) + 1, sizeof(*dns));
		for (e = ldap_first_entry(ld, res); e != NULL; e = ldap_next_entry(ld, e))
			dns[n++] = ldap_get_dn(ld, e);
		/* children come after their parents in a subtree search */
		while (n > 0) {
			ldap_delete_ext_s(ld, dns[--n], NULL, NULL);
			ldap_memfree(dns[n]);
		}
		free(dns);
	}
	ldap_msgfree(res);
}

static int
setup(void **state)
{
	(void)state;
	const char *uri = getenv("LDAP_URI"), *dn = getenv("LDAP_BIND_DN");
	const char *pwf = getenv("LDAP_PASSWORD_FILE"), *b = getenv("LDAP_BASE");
	char pw[256] = "";
	int v3 = LDAP_VERSION3;
	FILE *f;

	if (uri == NULL || dn == NULL || pwf == NULL || b == NULL) {
		fprintf(stderr, "test_sync: LDAP_URI, LDAP_BIND_DN, LDAP_PASSWORD_FILE and LDAP_BASE must be set\n");
		return -1;
	}
	if (asprintf(&base, "ou=sync-%d,%s", (int)getpid(), b) < 0 || config_defaults(&cfg) != 0)
		return -1;
	free(cfg->ldap_base_dn);
	cfg->ldap_uri = strdup(uri);
	cfg->ldap_bind_dn = strdup(dn);
	cfg->ldap_password_file = strdup(pwf);
	cfg->ldap_base_dn = strdup(base);
	if ((f = fopen(pwf, "r")) == NULL || fgets(pw, sizeof(pw), f) == NULL)
		return -1;
	fclose(f);
	pw[strcspn(pw, "\n")] = '\0';
	struct berval cred = { strlen(pw), pw };
	if (ldap_initialize(&ld, uri) != LDAP_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_SUCCESS ||
	    ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL) != LDAP_SUCCESS)
		return -1;
	der1len = make_cert(&der1, 1);
	der2len = make_cert(&der2, 2);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	delete_tree(base);
	ldap_unbind_ext_s(ld, NULL, NULL);
	OPENSSL_free(der1);
	OPENSSL_free(der2);
	free(base);
	config_free(cfg);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_twice_unchanged),
		cmocka_unit_test(test_revoke),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_bad_entry_alone),
		cmocka_unit_test(test_resync),
		cmocka_unit_test(test_unreachable),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
