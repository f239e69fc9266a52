/*
 * ldap private header: the connection shared by dir.c (connect, escaping,
 * names of entries) and sync.c (reconciling entries with what PostgreSQL
 * says), and the mapping of libldap result codes.
 */
#ifndef PROVD_DIR_INT_H
#define PROVD_DIR_INT_H

#include <ldap.h>

#include "ldap/dir.h"

#define DIR_TIMEOUT_S 5		/* one request */
#define DIR_LONG_TIMEOUT_S 60	/* a write in a long pipeline, a page of a subtree */

struct dir {
	LDAP *ld;
	char *base;		/* e.g. ou=provd,dc=example,dc=org */
	int broken;		/* the connection failed: only dir_close is useful */
};

/* ERR_UNAVAILABLE for what says the connection is gone or the server will
 * not answer now, ERR_NOT_FOUND, ERR_AUTH, ERR_LDAP for the rest. */
int dir_ldap_err(int lr);
/* Whether lr means the connection (not one entry) failed. */
int dir_ldap_conn_lost(int lr);

#endif
