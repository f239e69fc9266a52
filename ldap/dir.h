/*
 * ldap (dir): the directory mirror of provd's records in OpenLDAP — the
 * connection, escaping of DN values and filter values through libldap, and
 * the mapping of a device to an entry under ou=devices (objectClasses
 * device, ieee802Device, pkiUser). PostgreSQL stays the source of truth.
 */
#ifndef PROVD_DIR_H
#define PROVD_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

struct dir;

/* Connects to cfg->ldap_uri and binds as cfg->ldap_bind_dn with the password
 * from cfg->ldap_password_file (wiped after the bind). ERR_CONFIG when no
 * URI is configured, ERR_UNAVAILABLE when the server cannot be reached,
 * ERR_AUTH when the bind is refused. */
int dir_open(const struct config *cfg, struct dir **out);
void dir_close(struct dir *d);				/* NULL is a no-op */

/* "attr=value" with value escaped as an RFC 4514 DN attribute value
 * (libldap's ldap_dn2bv). *out is new (free()). */
int dir_rdn(const char *attr, const char *value, char **out);
/* value escaped for use inside an RFC 4515 filter (libldap's
 * ldap_bv2escaped_filter_value). *out is new (free()). */
int dir_filter_value(const char *value, char **out);

struct dir_device {
	uint8_t mac[MAC_LEN];
	char serial_hex[33];		/* current certificate serial, "" if none */
	const uint8_t *cert_der;	/* current certificate, or NULL */
	size_t cert_len;
	const char *owner;		/* user name, or NULL */
	const char *status;		/* "active", "revoked", ... */
};

/* Creates or replaces the entry cn=<mac>,ou=devices,<base>. Idempotent. */
int dir_device_put(struct dir *d, const struct dir_device *dev);
/* Removes the entry; ERR_NOT_FOUND when absent. */
int dir_device_delete(struct dir *d, const uint8_t mac[MAC_LEN]);
/* Finds the entry by macAddress; writes its status (from description) into
 * status and whether it holds a certificate. ERR_NOT_FOUND when absent. */
int dir_device_find(struct dir *d, const uint8_t mac[MAC_LEN], char *status,
    size_t statuslen, int *has_cert);

#endif
