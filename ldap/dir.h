/*
 * ldap (dir): the directory mirror of provd's records in OpenLDAP — the
 * connection, escaping of DN values and filter values through libldap, and
 * the mapping of devices, users and groups to entries under the base DN.
 * PostgreSQL stays the source of truth: every write here makes an entry
 * match what the caller read from it, so applying the same thing twice
 * changes nothing.
 *
 * Mapping (base = [ldap] base_dn):
 *   device  cn=<mac>,ou=devices,<base>   device + ieee802Device + pkiUser:
 *           cn and macAddress (00:1a:7d:da:71:13), serialNumber (the
 *           active certificate's serial, else the latest one's),
 *           userCertificate;binary (DER, only while a certificate is
 *           active), owner (DN of the owner's entry), description
 *           "status: active" / "status: revoked (keyCompromise)".
 *   user    cn=<name>,ou=people,<base>   inetOrgPerson: cn and sn = name.
 *   group   cn=<name>,ou=groups,<base>   groupOfNames: cn, member (DNs of
 *           member devices and users). groupOfNames needs a member: a group
 *           without members has no entry.
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
/* Whether the connection failed since dir_open (then close and reopen). */
int dir_broken(const struct dir *d);

/* Creates what is missing of the base entry (only when its RDN is ou=...:
 * an organizationalUnit) and of ou=devices, ou=people and ou=groups under
 * it. ERR_UNAVAILABLE, or ERR_LDAP when the base is missing and cannot be
 * made. */
int dir_ensure_tree(struct dir *d);

/* "attr=value" with value escaped as an RFC 4514 DN attribute value
 * (libldap's ldap_dn2bv). *out is new (free()). */
int dir_rdn(const char *attr, const char *value, char **out);
/* value escaped for use inside an RFC 4515 filter (libldap's
 * ldap_bv2escaped_filter_value). *out is new (free()). */
int dir_filter_value(const char *value, char **out);
/* The DNs of the entries; *out is new (free()). ERR_INVALID for an empty
 * name. */
int dir_device_dn(const struct dir *d, const uint8_t mac[MAC_LEN], char **out);
int dir_user_dn(const struct dir *d, const char *name, char **out);
int dir_group_dn(const struct dir *d, const char *name, char **out);

/* RFC 5280 CRLReason name ("keyCompromise"), "unspecified" when unknown. */
const char *dir_reason_name(int reason);

/* A device as the database has it. Pointers are borrowed for the call. */
struct dir_device {
	uint8_t mac[MAC_LEN];
	char serial_hex[33];		/* certificate serial, "" if none */
	const uint8_t *cert_der;	/* the active certificate, or NULL */
	size_t cert_len;
	const char *owner;		/* user name, or NULL */
	const char *status;		/* "active", "revoked", ... (at most 32) */
	const char *reason;		/* "keyCompromise" for a revoked one, or NULL */
	const char *const *groups;	/* groups the device is a member of */
	size_t ngroups;
};

enum dir_kind { DIR_DEVICE, DIR_USER, DIR_GROUP };
enum dir_change { DIR_UNCHANGED, DIR_CREATED, DIR_UPDATED, DIR_DELETED };

/* One entry to make match the database. */
struct dir_item {
	enum dir_kind kind;
	int present;			/* 0: gone from the database: no entry */
	struct dir_device dev;		/* DIR_DEVICE */
	const char *name;		/* DIR_USER, DIR_GROUP */
	/* DIR_GROUP: every member (the entry's members are replaced) */
	const uint8_t (*member_macs)[MAC_LEN];
	size_t nmember_macs;
	const char *const *member_users;
	size_t nmember_users;
	/* out */
	int result;			/* 0, ERR_LDAP, ERR_AUTH (no access) or
					   ERR_INVALID: see error */
	enum dir_change change;
	char error[200];		/* the server's reason, for last_error */
};

struct dir_report {
	uint64_t created, updated, deleted, unchanged, failed;
};

/*
 * Makes each item's entry match it; items must name distinct entries.
 * A present device also gets its owner's entry (created when missing) and
 * is added to its groups' entries (made when missing), and a group item's
 * user members get their entries; a device item only adds memberships (a
 * group item, with its whole member list, also removes them), and the
 * entry of a device or user gone from the database leaves every group (a
 * group left empty is deleted). At most one write per entry, pipelined; an
 * entry the server refuses fails alone.
 * Returns 0 when every item has its result (rep counts them, may be NULL),
 * ERR_UNAVAILABLE when the connection failed (then nothing is known of the
 * items: apply them again after reconnecting), ERR_NOMEM.
 */
int dir_apply(struct dir *d, struct dir_item *items, size_t n, struct dir_report *rep);

/*
 * Makes the whole directory match items, which are every device, user and
 * group of the database (groups with their members): entries created,
 * updated or deleted as in dir_apply, group members replaced, and every
 * entry under ou=devices that is not one of the devices deleted. Entries
 * under ou=people and ou=groups that match no item are left alone.
 * Reads the three subtrees whole (paged): memory grows with the directory.
 * Returns as dir_apply; rep counts entries.
 */
int dir_resync(struct dir *d, struct dir_item *items, size_t n, struct dir_report *rep);

/* Makes the device's entry match dev (dir_apply of one item). ERR_LDAP when
 * the server refused it (logged). */
int dir_device_put(struct dir *d, const struct dir_device *dev);
/* Removes the entry; ERR_NOT_FOUND when absent. */
int dir_device_delete(struct dir *d, const uint8_t mac[MAC_LEN]);
/* Finds the entry by macAddress; writes its status (what follows
 * "status: " in description) into status and whether it holds a
 * certificate. ERR_NOT_FOUND when absent. */
int dir_device_find(struct dir *d, const uint8_t mac[MAC_LEN], char *status,
    size_t statuslen, int *has_cert);

#endif
