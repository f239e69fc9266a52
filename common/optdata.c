/*
 * optdata.c: the optional-data certificate extension (owner, groups,
 * resource classes, roles) encoded and decoded with OpenSSL's ASN.1
 * templates.
 *
 *   OptionalData ::= SEQUENCE {            -- IMPLICIT TAGS
 *       owner           [0] UTF8String OPTIONAL,
 *       groups          [1] SEQUENCE OF UTF8String OPTIONAL,
 *       resourceClasses [2] SEQUENCE OF UTF8String OPTIONAL,
 *       roles           [3] SEQUENCE OF UTF8String OPTIONAL }
 *
 * roles came last and is optional, so certificates made before it decode
 * unchanged. Unknown role names decode like any other name; what a role
 * grants is for the reader to decide.
 *
 * OpenSSL's template macros need a typedef'd struct; that is the one
 * exception to our no-typedef rule.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/asn1.h>
#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "common/common.h"

typedef struct {
	ASN1_UTF8STRING *owner;
	STACK_OF(ASN1_UTF8STRING) *groups;
	STACK_OF(ASN1_UTF8STRING) *classes;
	STACK_OF(ASN1_UTF8STRING) *roles;
} PROVD_OPTDATA;

ASN1_SEQUENCE(PROVD_OPTDATA) = {
	ASN1_IMP_OPT(PROVD_OPTDATA, owner, ASN1_UTF8STRING, 0),
	ASN1_IMP_SEQUENCE_OF_OPT(PROVD_OPTDATA, groups, ASN1_UTF8STRING, 1),
	ASN1_IMP_SEQUENCE_OF_OPT(PROVD_OPTDATA, classes, ASN1_UTF8STRING, 2),
	ASN1_IMP_SEQUENCE_OF_OPT(PROVD_OPTDATA, roles, ASN1_UTF8STRING, 3),
} ASN1_SEQUENCE_END(PROVD_OPTDATA)

DECLARE_ASN1_FUNCTIONS(PROVD_OPTDATA)
IMPLEMENT_ASN1_FUNCTIONS(PROVD_OPTDATA)

/* Well-formed UTF-8 without control characters. */
static int
utf8_ok(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n;
		if (c < 0x20 || c == 0x7f)
			return 0;
		if (c < 0x80)
			n = 1;
		else if ((c & 0xe0) == 0xc0 && c >= 0xc2)
			n = 2;
		else if ((c & 0xf0) == 0xe0)
			n = 3;
		else if ((c & 0xf8) == 0xf0 && c <= 0xf4)
			n = 4;
		else
			return 0;
		if (i + n > len)
			return 0;
		for (size_t k = 1; k < n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
		i += n;
	}
	return 1;
}

int
optdata_check_name(const char *s)
{
	size_t len;

	if (s == NULL)
		return ERR_INVALID;
	len = strnlen(s, OPTDATA_MAX_STR + 1);
	if (len == 0 || len > OPTDATA_MAX_STR)
		return ERR_INVALID;
	return utf8_ok((const unsigned char *)s, len) ? 0 : ERR_INVALID;
}

static int
push_strings(STACK_OF(ASN1_UTF8STRING) **sk, char *const *v, size_t n)
{
	if (n == 0)
		return 0;
	if (n > OPTDATA_MAX_ITEMS)
		return ERR_TOO_BIG;
	if ((*sk = sk_ASN1_UTF8STRING_new_null()) == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		ASN1_UTF8STRING *u;
		if (optdata_check_name(v[i]) != 0)
			return ERR_INVALID;
		if ((u = ASN1_UTF8STRING_new()) == NULL)
			return ERR_NOMEM;
		if (!ASN1_STRING_set(u, v[i], (int)strlen(v[i])) ||
		    !sk_ASN1_UTF8STRING_push(*sk, u)) {
			ASN1_UTF8STRING_free(u);
			return ERR_NOMEM;
		}
	}
	return 0;
}

int
optdata_encode(const struct optdata *od, uint8_t **der, size_t *derlen)
{
	int r = ERR_INTERNAL, len;
	PROVD_OPTDATA *o = NULL;
	unsigned char *buf = NULL, *p;

	*der = NULL;
	if ((o = PROVD_OPTDATA_new()) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	if (od->owner != NULL) {
		if (optdata_check_name(od->owner) != 0) {
			r = ERR_INVALID;
			goto out;
		}
		if ((o->owner = ASN1_UTF8STRING_new()) == NULL ||
		    !ASN1_STRING_set(o->owner, od->owner, (int)strlen(od->owner))) {
			r = ERR_NOMEM;
			goto out;
		}
	}
	if ((r = push_strings(&o->groups, od->groups, od->ngroups)) != 0 ||
	    (r = push_strings(&o->classes, od->classes, od->nclasses)) != 0 ||
	    (r = push_strings(&o->roles, od->roles, od->nroles)) != 0)
		goto out;
	if ((len = i2d_PROVD_OPTDATA(o, NULL)) <= 0) {
		log_ossl("i2d optional data");
		r = ERR_CRYPTO;
		goto out;
	}
	if ((buf = malloc((size_t)len)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	p = buf;
	i2d_PROVD_OPTDATA(o, &p);
	*der = buf;
	*derlen = (size_t)len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	PROVD_OPTDATA_free(o);
	return r;
}

static int
copy_string(const ASN1_UTF8STRING *u, char **out)
{
	const unsigned char *d = ASN1_STRING_get0_data(u);
	int len = ASN1_STRING_length(u);

	if (len <= 0 || len > OPTDATA_MAX_STR || memchr(d, 0, (size_t)len) != NULL ||
	    !utf8_ok(d, (size_t)len))
		return ERR_INVALID;
	if ((*out = strndup((const char *)d, (size_t)len)) == NULL)
		return ERR_NOMEM;
	return 0;
}

static int
copy_strings(STACK_OF(ASN1_UTF8STRING) *sk, char **v, size_t *n)
{
	int cnt = sk_ASN1_UTF8STRING_num(sk), r;

	*n = 0;
	if (cnt <= 0)
		return 0;
	if (cnt > OPTDATA_MAX_ITEMS)
		return ERR_TOO_BIG;
	for (int i = 0; i < cnt; i++) {
		if ((r = copy_string(sk_ASN1_UTF8STRING_value(sk, i), &v[i])) != 0)
			return r;
		(*n)++;
	}
	return 0;
}

int
optdata_decode(const uint8_t *der, size_t derlen, struct optdata *od)
{
	int r = ERR_INVALID;
	PROVD_OPTDATA *o = NULL;
	const unsigned char *p = der;

	memset(od, 0, sizeof(*od));
	if (derlen == 0 || derlen > 16384)
		return ERR_INVALID;
	if ((o = d2i_PROVD_OPTDATA(NULL, &p, (long)derlen)) == NULL ||
	    p != der + derlen)
		goto out;
	if (o->owner != NULL && (r = copy_string(o->owner, &od->owner)) != 0)
		goto out;
	if ((r = copy_strings(o->groups, od->groups, &od->ngroups)) != 0 ||
	    (r = copy_strings(o->classes, od->classes, &od->nclasses)) != 0 ||
	    (r = copy_strings(o->roles, od->roles, &od->nroles)) != 0)
		goto out;
	r = 0;
out:
	PROVD_OPTDATA_free(o);
	if (r != 0)
		optdata_clear(od);
	return r;
}

void
optdata_clear(struct optdata *od)
{
	free(od->owner);
	for (size_t i = 0; i < OPTDATA_MAX_ITEMS; i++) {
		if (i < od->ngroups)
			free(od->groups[i]);
		if (i < od->nclasses)
			free(od->classes[i]);
		if (i < od->nroles)
			free(od->roles[i]);
	}
	memset(od, 0, sizeof(*od));
}

int
optdata_ext_find(const X509 *x, const uint8_t **der, size_t *len)
{
	static const char *const oids[] = { OPTDATA_OID, OPTDATA_OID_UUID };

	*der = NULL;
	*len = 0;
	for (size_t i = 0; i < sizeof(oids) / sizeof(oids[0]); i++) {
		ASN1_OBJECT *obj = OBJ_txt2obj(oids[i], 1);
		int pos;

		if (obj == NULL) {
			ERR_clear_error();
			continue;
		}
		pos = X509_get_ext_by_OBJ(x, obj, -1);
		ASN1_OBJECT_free(obj);
		if (pos < 0)
			continue;
		const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(X509_get_ext(x, pos));
		if (v == NULL || ASN1_STRING_length(v) <= 0)
			return 0;
		*der = ASN1_STRING_get0_data(v);
		*len = (size_t)ASN1_STRING_length(v);
		return 1;
	}
	return 0;
}
