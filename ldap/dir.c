/*
 * dir.c: OpenLDAP access for the directory mirror — connect and bind, DN and
 * filter escaping done by libldap, and the device entry mapping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ldap.h>
#include <openssl/crypto.h>

#include "ldap/dir.h"

#define DIR_TIMEOUT_S 5

struct dir {
	LDAP *ld;
	char *base;		/* e.g. dc=example,dc=org */
};

int
dir_rdn(const char *attr, const char *value, char **out)
{
	LDAPAVA ava = { 0 };
	LDAPAVA *rdn[2] = { &ava, NULL };
	LDAPRDN dn[2] = { rdn, NULL };
	struct berval bv = { 0, NULL };

	*out = NULL;
	if (attr == NULL || value == NULL || *value == '\0')
		return ERR_INVALID;
	ava.la_attr.bv_val = (char *)attr;
	ava.la_attr.bv_len = strlen(attr);
	ava.la_value.bv_val = (char *)value;
	ava.la_value.bv_len = strlen(value);
	ava.la_flags = LDAP_AVA_STRING;
	if (ldap_dn2bv(dn, &bv, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS)
		return ERR_INVALID;
	*out = strndup(bv.bv_val, bv.bv_len);
	ldap_memfree(bv.bv_val);
	return *out ? 0 : ERR_NOMEM;
}

int
dir_filter_value(const char *value, char **out)
{
	struct berval in, esc = { 0, NULL };

	*out = NULL;
	if (value == NULL)
		return ERR_INVALID;
	in.bv_val = (char *)value;
	in.bv_len = strlen(value);
	if (ldap_bv2escaped_filter_value(&in, &esc) != 0)
		return ERR_NOMEM;
	*out = strndup(esc.bv_val, esc.bv_len);
	ber_memfree(esc.bv_val);
	return *out ? 0 : ERR_NOMEM;
}

int
dir_open(const struct config *cfg, struct dir **out)
{
	struct dir *d = NULL;
	char *pw = NULL;
	int r = ERR_INTERNAL, lr, v3 = LDAP_VERSION3;
	struct timeval tv = { DIR_TIMEOUT_S, 0 };

	*out = NULL;
	if (cfg->ldap_uri == NULL || cfg->ldap_base_dn == NULL)
		return ERR_CONFIG;
	if ((d = calloc(1, sizeof(*d))) == NULL || (d->base = strdup(cfg->ldap_base_dn)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	if ((lr = ldap_initialize(&d->ld, cfg->ldap_uri)) != LDAP_SUCCESS) {
		log_errx("ldap.uri %s: %s", cfg->ldap_uri, ldap_err2string(lr));
		r = ERR_CONFIG;
		goto out;
	}
	ldap_set_option(d->ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(d->ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(d->ld, LDAP_OPT_TIMEOUT, &tv);
	ldap_set_option(d->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	if (cfg->ldap_bind_dn != NULL) {
		struct berval cred = { 0, NULL };
		if (cfg->ldap_password_file == NULL ||
		    (r = secret_read_file(cfg->ldap_password_file, &pw)) != 0) {
			log_errx("cannot read ldap.password_file");
			r = ERR_CONFIG;
			goto out;
		}
		cred.bv_val = pw;
		cred.bv_len = strlen(pw);
		lr = ldap_sasl_bind_s(d->ld, cfg->ldap_bind_dn, LDAP_SASL_SIMPLE, &cred,
		    NULL, NULL, NULL);
		if (lr != LDAP_SUCCESS) {
			log_errx("ldap bind as %s: %s", cfg->ldap_bind_dn, ldap_err2string(lr));
			r = lr == LDAP_INVALID_CREDENTIALS ? ERR_AUTH : ERR_UNAVAILABLE;
			goto out;
		}
	}
	*out = d;
	d = NULL;
	r = 0;
out:
	secret_free(pw);
	dir_close(d);
	return r;
}

void
dir_close(struct dir *d)
{
	if (d == NULL)
		return;
	if (d->ld != NULL)
		ldap_unbind_ext_s(d->ld, NULL, NULL);
	free(d->base);
	free(d);
}

/* "cn=<mac>,ou=devices,<base>" */
static int
device_dn(struct dir *d, const uint8_t mac[MAC_LEN], char **out)
{
	char ms[MAC_STR_LEN], *rdn = NULL;
	int r;

	mac_format(mac, ms);
	if ((r = dir_rdn("cn", ms, &rdn)) != 0)
		return r;
	r = asprintf(out, "%s,ou=devices,%s", rdn, d->base) < 0 ? ERR_NOMEM : 0;
	free(rdn);
	return r;
}

static int
ldap_to_err(int lr)
{
	switch (lr) {
	case LDAP_SUCCESS: return 0;
	case LDAP_NO_SUCH_OBJECT: return ERR_NOT_FOUND;
	case LDAP_SERVER_DOWN: case LDAP_TIMEOUT: case LDAP_CONNECT_ERROR: case LDAP_BUSY:
	case LDAP_UNAVAILABLE: return ERR_UNAVAILABLE;
	case LDAP_INSUFFICIENT_ACCESS: case LDAP_INVALID_CREDENTIALS: return ERR_AUTH;
	default: return ERR_LDAP;
	}
}

int
dir_device_put(struct dir *d, const struct dir_device *dev)
{
	char *dn = NULL, *owner_rdn = NULL, *owner_dn = NULL, ms[MAC_STR_LEN], desc[64];
	char *oc_v[] = { "device", "ieee802Device", "pkiUser", NULL };
	char *cn_v[] = { ms, NULL }, *mac_v[] = { ms, NULL }, *desc_v[] = { desc, NULL };
	char *serial_v[] = { (char *)dev->serial_hex, NULL }, *owner_v[2] = { NULL, NULL };
	struct berval cert_bv, *cert_v[] = { &cert_bv, NULL };
	LDAPMod oc = { LDAP_MOD_REPLACE, "objectClass", { .modv_strvals = oc_v } };
	LDAPMod cn = { LDAP_MOD_REPLACE, "cn", { .modv_strvals = cn_v } };
	LDAPMod macm = { LDAP_MOD_REPLACE, "macAddress", { .modv_strvals = mac_v } };
	LDAPMod descm = { LDAP_MOD_REPLACE, "description", { .modv_strvals = desc_v } };
	LDAPMod serialm = { LDAP_MOD_REPLACE, "serialNumber", { .modv_strvals = serial_v } };
	LDAPMod ownerm = { LDAP_MOD_REPLACE, "owner", { .modv_strvals = owner_v } };
	LDAPMod certm = { LDAP_MOD_REPLACE | LDAP_MOD_BVALUES, "userCertificate;binary",
		{ .modv_bvals = cert_v } };
	LDAPMod *mods[8];
	int n = 0, lr, r;

	if (dev->status == NULL || strlen(dev->status) > 32)
		return ERR_INVALID;
	mac_format(dev->mac, ms);
	snprintf(desc, sizeof(desc), "status=%s", dev->status);
	if ((r = device_dn(d, dev->mac, &dn)) != 0)
		return r;
	if (dev->owner != NULL) {
		if ((r = dir_rdn("uid", dev->owner, &owner_rdn)) != 0)
			goto out;
		if (asprintf(&owner_dn, "%s,ou=users,%s", owner_rdn, d->base) < 0) {
			owner_dn = NULL;
			r = ERR_NOMEM;
			goto out;
		}
		owner_v[0] = owner_dn;
	}
	cert_bv.bv_val = (char *)dev->cert_der;
	cert_bv.bv_len = dev->cert_len;
	mods[n++] = &oc;
	mods[n++] = &cn;
	mods[n++] = &macm;
	mods[n++] = &descm;
	/* an empty REPLACE removes the attribute */
	if (dev->serial_hex[0] == '\0')
		serial_v[0] = NULL;
	mods[n++] = &serialm;
	mods[n++] = &ownerm;
	if (dev->cert_der == NULL)
		cert_v[0] = NULL;
	mods[n++] = &certm;
	mods[n] = NULL;

	lr = ldap_modify_ext_s(d->ld, dn, mods, NULL, NULL);
	if (lr == LDAP_NO_SUCH_OBJECT) {
		/* add: only the attributes that have values */
		LDAPMod *adds[8];
		int k = 0;
		for (int i = 0; i < n; i++) {
			mods[i]->mod_op &= ~LDAP_MOD_REPLACE;
			mods[i]->mod_op |= LDAP_MOD_ADD;
			if (mods[i]->mod_op & LDAP_MOD_BVALUES ?
			    mods[i]->mod_bvalues[0] != NULL : mods[i]->mod_values[0] != NULL)
				adds[k++] = mods[i];
		}
		adds[k] = NULL;
		lr = ldap_add_ext_s(d->ld, dn, adds, NULL, NULL);
	}
	if (lr != LDAP_SUCCESS) {
		log_warnx("ldap write %s: %s", dn, ldap_err2string(lr));
		r = ldap_to_err(lr);
		goto out;
	}
	r = 0;
out:
	free(dn);
	free(owner_rdn);
	free(owner_dn);
	return r;
}

int
dir_device_delete(struct dir *d, const uint8_t mac[MAC_LEN])
{
	char *dn = NULL;
	int r, lr;

	if ((r = device_dn(d, mac, &dn)) != 0)
		return r;
	lr = ldap_delete_ext_s(d->ld, dn, NULL, NULL);
	free(dn);
	return ldap_to_err(lr);
}

int
dir_device_find(struct dir *d, const uint8_t mac[MAC_LEN], char *status,
    size_t statuslen, int *has_cert)
{
	char ms[MAC_STR_LEN], *fv = NULL, *filter = NULL, *base = NULL;
	char *attrs[] = { "description", "userCertificate;binary", NULL };
	LDAPMessage *res = NULL, *e;
	struct berval **vals = NULL;
	struct timeval tv = { DIR_TIMEOUT_S, 0 };
	int r, lr;

	*has_cert = 0;
	status[0] = '\0';
	mac_format(mac, ms);
	if ((r = dir_filter_value(ms, &fv)) != 0)
		return r;
	if (asprintf(&filter, "(&(objectClass=ieee802Device)(macAddress=%s))", fv) < 0 ||
	    asprintf(&base, "ou=devices,%s", d->base) < 0) {
		filter = base = NULL;
		r = ERR_NOMEM;
		goto out;
	}
	lr = ldap_search_ext_s(d->ld, base, LDAP_SCOPE_ONELEVEL, filter, attrs, 0,
	    NULL, NULL, &tv, 2, &res);
	if (lr != LDAP_SUCCESS) {
		r = ldap_to_err(lr);
		goto out;
	}
	if ((e = ldap_first_entry(d->ld, res)) == NULL) {
		r = ERR_NOT_FOUND;
		goto out;
	}
	if ((vals = ldap_get_values_len(d->ld, e, "description")) != NULL && vals[0] != NULL &&
	    vals[0]->bv_len > 7 && strncmp(vals[0]->bv_val, "status=", 7) == 0)
		snprintf(status, statuslen, "%.*s", (int)vals[0]->bv_len - 7, vals[0]->bv_val + 7);
	ldap_value_free_len(vals);
	vals = ldap_get_values_len(d->ld, e, "userCertificate;binary");
	*has_cert = vals != NULL && vals[0] != NULL && vals[0]->bv_len > 0;
	ldap_value_free_len(vals);
	r = 0;
out:
	ldap_msgfree(res);
	free(fv);
	free(filter);
	free(base);
	return r;
}
