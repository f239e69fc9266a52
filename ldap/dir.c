/*
 * dir.c: OpenLDAP access for the directory mirror — connect and bind, DN and
 * filter escaping done by libldap, the names of entries, the subtrees under
 * the base, and single-device helpers over sync.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ldap.h>

#include "ldap/dir_int.h"

static const char *const reason_names[] = {
	"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
	"superseded", "cessationOfOperation", "certificateHold", NULL,
	"removeFromCRL", "privilegeWithdrawn", "aACompromise",
};

const char *
dir_reason_name(int reason)
{
	if (reason < 0 || (size_t)reason >= sizeof(reason_names) / sizeof(reason_names[0]) ||
	    reason_names[reason] == NULL)
		return "unspecified";
	return reason_names[reason];
}

int
dir_ldap_conn_lost(int lr)
{
	switch (lr) {
	case LDAP_SERVER_DOWN: case LDAP_TIMEOUT: case LDAP_CONNECT_ERROR: case LDAP_BUSY:
	case LDAP_UNAVAILABLE:
		return 1;
	default:
		return 0;
	}
}

int
dir_ldap_err(int lr)
{
	switch (lr) {
	case LDAP_SUCCESS: return 0;
	case LDAP_NO_SUCH_OBJECT: return ERR_NOT_FOUND;
	case LDAP_INSUFFICIENT_ACCESS: case LDAP_INVALID_CREDENTIALS: return ERR_AUTH;
	default: return dir_ldap_conn_lost(lr) ? ERR_UNAVAILABLE : ERR_LDAP;
	}
}

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

/* "cn=<value>,<ou>,<base>" */
static int
entry_dn(const struct dir *d, const char *ou, const char *value, char **out)
{
	char *rdn = NULL;
	int r;

	*out = NULL;
	if ((r = dir_rdn("cn", value, &rdn)) != 0)
		return r;
	if (asprintf(out, "%s,%s,%s", rdn, ou, d->base) < 0) {
		*out = NULL;
		r = ERR_NOMEM;
	}
	free(rdn);
	return r;
}

int
dir_device_dn(const struct dir *d, const uint8_t mac[MAC_LEN], char **out)
{
	char ms[MAC_STR_LEN];

	mac_format(mac, ms);
	return entry_dn(d, "ou=devices", ms, out);
}

int
dir_user_dn(const struct dir *d, const char *name, char **out)
{
	return entry_dn(d, "ou=people", name, out);
}

int
dir_group_dn(const struct dir *d, const char *name, char **out)
{
	return entry_dn(d, "ou=groups", name, out);
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

int
dir_broken(const struct dir *d)
{
	return d == NULL || d->broken;
}

/* Adds an organizationalUnit; an existing one is fine. */
static int
add_ou(struct dir *d, const char *dn, const char *ou)
{
	char *oc_v[] = { "organizationalUnit", NULL }, *ou_v[] = { (char *)ou, NULL };
	LDAPMod oc = { LDAP_MOD_ADD, "objectClass", { .modv_strvals = oc_v } };
	LDAPMod oum = { LDAP_MOD_ADD, "ou", { .modv_strvals = ou_v } };
	LDAPMod *mods[] = { &oc, &oum, NULL };
	int lr;

	lr = ldap_add_ext_s(d->ld, dn, mods, NULL, NULL);
	if (lr == LDAP_SUCCESS || lr == LDAP_ALREADY_EXISTS)
		return 0;
	if (dir_ldap_conn_lost(lr))
		d->broken = 1;
	log_warnx("ldap add %s: %s", dn, ldap_err2string(lr));
	return dir_ldap_err(lr);
}

int
dir_ensure_tree(struct dir *d)
{
	static const char *const ous[] = { "devices", "people", "groups" };
	struct timeval tv = { DIR_TIMEOUT_S, 0 };
	char *attrs[] = { "1.1", NULL }, *dn = NULL, *ou = NULL;
	LDAPMessage *res = NULL;
	LDAPDN base = NULL;
	int lr, r = ERR_INTERNAL;

	lr = ldap_search_ext_s(d->ld, d->base, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0,
	    NULL, NULL, &tv, 1, &res);
	ldap_msgfree(res);
	if (lr == LDAP_NO_SUCH_OBJECT) {
		/* make the base only when it is an organizationalUnit */
		if (ldap_str2dn(d->base, &base, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS ||
		    base == NULL || base[0] == NULL || base[0][1] != NULL ||
		    base[0][0]->la_attr.bv_len != 2 ||
		    strncasecmp(base[0][0]->la_attr.bv_val, "ou", 2) != 0) {
			log_errx("the directory has no base entry %s", d->base);
			r = ERR_LDAP;
			goto out;
		}
		if ((ou = strndup(base[0][0]->la_value.bv_val, base[0][0]->la_value.bv_len)) == NULL) {
			r = ERR_NOMEM;
			goto out;
		}
		if ((r = add_ou(d, d->base, ou)) != 0)
			goto out;
		log_info("created the directory base %s", d->base);
	} else if (lr != LDAP_SUCCESS) {
		if (dir_ldap_conn_lost(lr))
			d->broken = 1;
		log_warnx("ldap read %s: %s", d->base, ldap_err2string(lr));
		r = dir_ldap_err(lr);
		goto out;
	}
	for (size_t i = 0; i < sizeof(ous) / sizeof(ous[0]); i++) {
		if (asprintf(&dn, "ou=%s,%s", ous[i], d->base) < 0) {
			dn = NULL;
			r = ERR_NOMEM;
			goto out;
		}
		if ((r = add_ou(d, dn, ous[i])) != 0)
			goto out;
		free(dn);
		dn = NULL;
	}
	r = 0;
out:
	free(dn);
	free(ou);
	ldap_dnfree(base);
	return r;
}

int
dir_device_put(struct dir *d, const struct dir_device *dev)
{
	struct dir_item it;
	int r;

	memset(&it, 0, sizeof(it));
	it.kind = DIR_DEVICE;
	it.present = 1;
	it.dev = *dev;
	if ((r = dir_apply(d, &it, 1, NULL)) != 0)
		return r;
	if (it.result != 0)
		log_warnx("ldap write of a device entry: %s", it.error);
	return it.result;
}

int
dir_device_delete(struct dir *d, const uint8_t mac[MAC_LEN])
{
	char *dn = NULL;
	int r, lr;

	if ((r = dir_device_dn(d, mac, &dn)) != 0)
		return r;
	lr = ldap_delete_ext_s(d->ld, dn, NULL, NULL);
	free(dn);
	if (dir_ldap_conn_lost(lr))
		d->broken = 1;
	return dir_ldap_err(lr);
}

int
dir_device_find(struct dir *d, const uint8_t mac[MAC_LEN], char *status,
    size_t statuslen, int *has_cert)
{
	static const char prefix[] = "status: ";
	const size_t plen = sizeof(prefix) - 1;
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
		if (dir_ldap_conn_lost(lr))
			d->broken = 1;
		r = dir_ldap_err(lr);
		goto out;
	}
	if ((e = ldap_first_entry(d->ld, res)) == NULL) {
		r = ERR_NOT_FOUND;
		goto out;
	}
	if ((vals = ldap_get_values_len(d->ld, e, "description")) != NULL && vals[0] != NULL &&
	    vals[0]->bv_len > plen && strncmp(vals[0]->bv_val, prefix, plen) == 0)
		snprintf(status, statuslen, "%.*s", (int)(vals[0]->bv_len - plen),
		    vals[0]->bv_val + plen);
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
