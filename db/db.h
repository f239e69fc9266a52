/*
 * db: PostgreSQL access for provd — a connection pool, the migration runner,
 * group-committed certificate issuance, certificates, revocation, the
 * hash-chained audit log and API tokens. SQL only with parameters.
 */
#ifndef PROVD_DB_H
#define PROVD_DB_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

struct db;		/* a pool of connections; thread-safe */

/* Opens cfg->db_pool connections using config_db_conninfo(). */
int db_open(const struct config *cfg, struct db **out);
/* Opens a pool of n connections to conninfo (tests, tools). */
int db_open_conninfo(const char *conninfo, int n, struct db **out);
void db_close(struct db *db);				/* NULL is a no-op */
/* Round trip to the server. Returns 0, or ERR_UNAVAILABLE. */
int db_ping(struct db *db);

/* Applies the migrations compiled in from sql/ that are not yet recorded in
 * schema_migrations, each in its own transaction (a failure rolls it back and
 * stops). *applied counts the new ones. Concurrent runners serialise on an
 * advisory lock. */
int db_migrate(struct db *db, int *applied);
/* Highest applied migration version, 0 for an empty database. */
int db_schema_version(struct db *db, int *version);
/* Highest migration version compiled into this program. */
int db_schema_latest(void);

/* ---------------------------------------------------------------------
 * Issuance, group-committed: one writer thread gathers concurrent requests
 * into one transaction (one provd_issue_batch() call; each request succeeds
 * or fails on its own), so one commit serves many.
 */
struct db_issue {
	/* in: all owned by the caller, valid until done() is called */
	uint8_t mac[MAC_LEN];
	char serial_hex[33];
	uint8_t fingerprint[32];
	const uint8_t *der;
	size_t derlen;
	int64_t not_before, not_after;	/* Unix seconds */
	const char *owner;		/* NULL: none */
	const char *const *groups;
	size_t ngroups;
	int replace;			/* supersede an active certificate */
	const char *actor;		/* who asked (token name) */
	const char *request_id;
	/* out */
	int result;			/* 0, ERR_CONFLICT (active certificate
					   and no replace), ERR_DB, ERR_UNAVAILABLE */
	int64_t device_id, cert_id;
	/* completion: called once from the writer thread */
	void (*done)(struct db_issue *it, void *arg);
	void *arg;
};

struct db_writer;
int db_writer_start(struct db *db, size_t batch_max, struct db_writer **out);
void db_writer_stop(struct db_writer *w);		/* NULL is a no-op */
/* Queues it; it->done is called when its transaction has committed or failed.
 * On an error return (ERR_INVALID, ERR_UNAVAILABLE: stopping or queue full)
 * it was not queued and done is not called. */
int db_writer_submit(struct db_writer *w, struct db_issue *it);
/* Synchronous helper: submit and wait (sets it->done and it->arg itself).
 * Returns it->result. */
int db_issue_wait(struct db_writer *w, struct db_issue *it);

/* ---------------------------------------------------------------------
 * Enrollment jobs (intake over the radio, sql/002_intake.sql). A job is
 * opened before the radio link and ends either committed with its
 * certificate or failed; the steps it went through become audit rows
 * "enrollment.<step>" when it ends.
 */
struct db_enroll_step {
	const char *step;		/* link, keygen, ca, push, record */
	uint64_t ms;
};

/* Opens a running job for mac. keygen: "auto", "device" or "server".
 * ERR_CONFLICT when another job for the device is open (*job is it, *serial
 * "") or, without replace, the device has an active certificate (*serial is
 * it, 33 bytes, *job 0). */
int db_enroll_open(struct db *db, const uint8_t mac[MAC_LEN], const char *keygen,
    int replace, const char *actor, const char *request_id, int64_t *job, char serial[33]);

/* What an enrollment records on success; it->done/arg are not used. */
struct db_enroll_commit {
	int64_t job;
	const struct db_issue *it;	/* mac, serial, fingerprint, der,
					   validity, owner, groups, replace,
					   actor, request_id */
	const char *keygen;		/* the flow used: "device" or "server" */
	const char *model;		/* from the device's hello, NULL: none */
	const char *name;		/* as inquiry showed it, NULL: none */
	const struct db_enroll_step *steps;
	size_t nsteps;
};
/* Device, certificate, job, step and audit rows, directory outbox: one
 * transaction. 0 with *cert_id set; ERR_CONFLICT (the device got an active
 * certificate meanwhile: the job is then failed with the reason and the
 * certificate recorded revoked; or the job is no longer running), ERR_DB,
 * ERR_UNAVAILABLE. */
int db_enroll_commit(struct db *db, const struct db_enroll_commit *ec, int64_t *cert_id);

/* Writes the certificate the CA made for a running job (serial,
 * fingerprint, der, validity of it) onto the job, before it is sent to the
 * device: a job that then ends without its record turns it into a revoked
 * certificate. ERR_CONFLICT when the job is not running. */
int db_enroll_signed(struct db *db, int64_t job, const struct db_issue *it);

/* Fails a running job at step with a reason for the operator. pushed: the
 * job's certificate may be on the device; it is recorded revoked in the
 * same transaction, so that it is on the CRL. ERR_CONFLICT when the job was
 * not running. */
int db_enroll_fail(struct db *db, int64_t job, const char *step, const char *error,
    const struct db_enroll_step *steps, size_t nsteps, const char *actor, int pushed);

/* Fails the jobs started more than older_than_s seconds ago and still open
 * (their provd stopped); their certificates are recorded revoked. *n counts
 * them. */
int db_enroll_reap(struct db *db, const char *actor, int older_than_s, int *n);

struct db_enroll_job {
	int64_t id;
	uint8_t mac[MAC_LEN];
	char status[16];		/* running, succeeded, failed, ... */
	char keygen[8];
	char step[16];
	char error[256];
	char requested_by[64];
	char serial_hex[33];		/* "" until succeeded */
	int64_t created_at, finished_at;	/* Unix seconds; 0: not yet */
};
/* A job by id. ERR_NOT_FOUND when none. */
int db_enroll_get(struct db *db, int64_t id, struct db_enroll_job *out);

/* ---------------------------------------------------------------------
 * Certificates.
 */
enum db_cert_status { DB_CERT_ACTIVE, DB_CERT_REVOKED, DB_CERT_SUPERSEDED };
const char *db_cert_status_name(enum db_cert_status s);

struct db_cert {
	int64_t id;
	char serial_hex[33];
	uint8_t mac[MAC_LEN];
	uint8_t fingerprint[32];
	enum db_cert_status status;
	int64_t not_before, not_after, issued_at;
	int64_t revoked_at;		/* 0 when not revoked; a superseded one
					   carries when, with reason 4 */
	int reason;			/* RFC 5280 reason, -1 when not revoked */
	uint8_t *der;			/* owned */
	size_t derlen;
	char *owner;			/* owned, NULL when none */
};
void db_cert_clear(struct db_cert *c);

/* By serial (32 hex digits). ERR_NOT_FOUND when none. */
int db_cert_by_serial(struct db *db, const char *serial_hex, struct db_cert *out);
/* Active certificate of a device. ERR_NOT_FOUND when none. */
int db_cert_active_by_mac(struct db *db, const uint8_t mac[MAC_LEN], struct db_cert *out);

/* Revokes a certificate (by serial) with an RFC 5280 reason; writes the
 * audit row and a directory outbox entry in the same transaction.
 * ERR_NOT_FOUND, ERR_CONFLICT (already revoked or superseded). */
int db_cert_revoke(struct db *db, const char *serial_hex, int reason,
    const char *actor, const char *request_id, struct db_cert *out);

/* Revoked (and superseded, reason 4), unexpired certificates for a CRL, and
 * the next CRL number (from a sequence). *list is a new array (free()). */
struct db_revoked {
	uint8_t serial[16];
	int64_t revoked_at;		/* Unix seconds */
	int reason;			/* RFC 5280 CRLReason */
};
int db_crl_entries(struct db *db, struct db_revoked **list, size_t *n,
    int64_t *crl_number);

/* Releases a certificate from hold (sql/004_crl.sql provd_unrevoke): only
 * one revoked with certificateHold (6), unexpired, whose device has no other
 * active certificate. It becomes active, its device active if the
 * revocation had made it revoked; audit row certificate.unrevoke, directory
 * outbox row and a provd_revocation notification in the same transaction.
 * *out is the record as committed. ERR_NOT_FOUND; ERR_CONFLICT with *why
 * (may be NULL) saying what is in the way; nothing written then. */
enum db_unrevoke_why {
	DB_UNREVOKE_NONE = 0,
	DB_UNREVOKE_ACTIVE,		/* not revoked */
	DB_UNREVOKE_SUPERSEDED,		/* replaced: never back */
	DB_UNREVOKE_NOT_HOLD,		/* revoked with another reason */
	DB_UNREVOKE_EXPIRED,
	DB_UNREVOKE_REPLACED,		/* the device has another active certificate */
};
struct db_unrevoke_refusal {
	enum db_unrevoke_why why;
	int reason;			/* the certificate's RFC 5280 reason, -1: none */
};
int db_cert_unrevoke(struct db *db, const char *serial_hex, const char *actor,
    const char *request_id, struct db_cert *out, struct db_unrevoke_refusal *why);
/* The device's most recently revoked or superseded certificate.
 * ERR_NOT_FOUND when it has none. */
int db_cert_last_revoked_by_mac(struct db *db, const uint8_t mac[MAC_LEN],
    struct db_cert *out);

/*
 * Base CRLs (sql/004_crl.sql): complete CRLs recorded with their entries,
 * the same for every instance, that delta CRLs are made against.
 */
struct db_crl_base {
	int64_t number;			/* its CRL number */
	int64_t this_update, next_update;	/* Unix seconds */
	size_t nentries;
	uint8_t *der;			/* owned; NULL when number is the one
					   the caller said it has */
	size_t derlen;
};
void db_crl_base_clear(struct db_crl_base *b);	/* NULL is a no-op */
/* Signs a complete CRL over list for a new base; *der new (free()). */
typedef int db_crl_sign_fn(void *arg, int64_t crl_number, int64_t this_update,
    int64_t next_update, const struct db_revoked *list, size_t n, uint8_t **der,
    size_t *derlen);
/*
 * The newest base CRL; when there is none, or it is interval_s old, or its
 * nextUpdate is less than a minute away, a new one is made first: under the
 * CRL lock (one build at a time across instances), a number from the
 * sequence, the revoked list recorded as its entries, sign() called with
 * the transaction open (next_update = this_update + next_update_s), the
 * base recorded; older bases but the previous one are deleted. have: the
 * number of a base the caller holds (0: none); out->der is left NULL when
 * the newest is that one. *made (may be NULL) says whether this call made
 * it. sign's error is returned as is.
 */
int db_crl_base_get(struct db *db, int64_t interval_s, int64_t next_update_s, int64_t have,
    db_crl_sign_fn *sign, void *arg, struct db_crl_base *out, int *made);
/*
 * What a delta CRL against the newest base lists (RFC 5280 5.2.4):
 * certificates on the CRL now that the base does not list as they are
 * (revoked or superseded since, or revoked again), and certificates
 * released from hold since the base (or up to an hour before it) that are
 * active now, with reason removeFromCRL (8): those the base lists, and
 * those a complete CRL made after it may list. Empty: nothing changed since
 * the base. *base: 0 for the newest, set to its number; or a number, and
 * ERR_CONFLICT when that is no longer the newest. ERR_NOT_FOUND: no base
 * yet. With crl_number != NULL a new number is taken first, under the CRL
 * lock (as by db_crl_entries); NULL only asks what changed. *list is a new
 * array (free()).
 */
int db_crl_delta_entries(struct db *db, int64_t *base, struct db_revoked **list, size_t *n,
    int64_t *crl_number);

/* ---------------------------------------------------------------------
 * Audit log: append-only, hash-chained in PostgreSQL (sql/ function
 * audit_append); verification recomputes every hash here.
 */
int db_audit_append(struct db *db, const char *actor, const char *action,
    const char *object, const char *detail_json);
struct db_audit_report {
	int64_t rows;			/* rows checked */
	int64_t first_bad;		/* seq of the first row that fails, 0 if none */
	char why[128];
};
/* Returns 0 when the whole log could be checked (then rep->first_bad is 0 or
 * the first failing seq), or an error code when the check could not run. */
int db_audit_verify(struct db *db, struct db_audit_report *rep);

/* ---------------------------------------------------------------------
 * API tokens: stored as SHA-256 of the token; the token itself is shown once.
 */
enum db_role { DB_ROLE_NONE = 0, DB_ROLE_OPERATOR, DB_ROLE_SECURITY,
	DB_ROLE_AUTHORIZER, DB_ROLE_ADMIN, DB_ROLE_VIEWER };
#define DB_ROLE_LAST DB_ROLE_VIEWER	/* viewer: reads only */
int db_role_parse(const char *s, enum db_role *out);
const char *db_role_name(enum db_role r);

/* Creates a token; *token (new, secure heap, secret_free()) is "pvd_" +
 * 43 base64url characters. */
int db_token_add(struct db *db, const char *name, enum db_role role, char **token);
/* Looks a presented token up. ERR_AUTH when unknown or revoked. name is
 * copied into name_out (at most namelen bytes). */
int db_token_check(struct db *db, const char *token, enum db_role *role,
    char *name_out, size_t namelen);

/* ---------------------------------------------------------------------
 * Access control (sql/003_authz.sql): what the decision cache loads, the
 * audited changes (each bumps the policy version), and the notifications
 * that keep every cache current.
 */
#define DB_AUTHZ_GROUPS 32		/* groups kept per device or user */

struct db_authz_device {
	int64_t id;
	uint8_t mac[MAC_LEN];
	char status[12];		/* pending, active, revoked, retired */
	int64_t owner_id;		/* 0: none */
	int has_cert;			/* an active certificate */
	uint8_t serial[16];
	uint8_t fingerprint[32];
	int64_t not_before, not_after;	/* Unix seconds */
	int64_t groups[DB_AUTHZ_GROUPS];
	size_t ngroups;
};
/* Every device, streamed (one row at a time: memory stays flat for a
 * million devices); cb returning non-zero stops with that code. */
int db_authz_devices(struct db *db, int (*cb)(void *arg, const struct db_authz_device *d),
    void *arg);
/* One device by id or by address. ERR_NOT_FOUND. */
int db_authz_device_by_id(struct db *db, int64_t id, struct db_authz_device *out);
int db_authz_device_by_mac(struct db *db, const uint8_t mac[MAC_LEN],
    struct db_authz_device *out);
/* The status of the certificate with this SHA-256 ("active", "revoked",
 * "superseded") and its device's address. ERR_NOT_FOUND. */
int db_authz_cert_status(struct db *db, const uint8_t fp[32], char status[12],
    uint8_t mac[MAC_LEN], int *reason);

enum db_subject { DB_SUBJ_DEVICE = 1, DB_SUBJ_USER, DB_SUBJ_GROUP };
struct db_authz_rule {
	int64_t id;
	enum db_subject subject;
	int64_t subject_id;
	int64_t resource_id;
	char action[65];
	int allow;			/* 1 allow, 0 deny */
	int64_t valid_from, valid_until;	/* Unix seconds, 0: open */
	int time_from, time_until;	/* seconds of the UTC day, -1: all day */
	int weekdays;			/* bit 0 Monday .. bit 6 Sunday */
	int one_time, used;
};
struct db_named {
	int64_t id;
	char name[OPTDATA_MAX_STR + 1];
};
struct db_authz_policy {
	int64_t version;
	struct db_named *resources, *groups, *users;
	size_t nresources, ngroups, nusers;
	struct db_named *devices;	/* those named by rules: id, address */
	size_t ndevices;
	struct db_authz_rule *rules;
	size_t nrules;
	int64_t (*user_groups)[2];	/* (user id, group id) */
	size_t nuser_groups;
};
/* Everything but the devices, read in one transaction. */
int db_authz_policy(struct db *db, struct db_authz_policy *out);
void db_authz_policy_free(struct db_authz_policy *p);

/* Audited changes; *version is the new policy version. ERR_CONFLICT: the
 * resource exists; ERR_NOT_FOUND: no such resource, rule or device. */
int db_resource_add(struct db *db, const char *name, const char *cls, const char *desc,
    const char *actor, int64_t *id, int64_t *version);
int db_resource_delete(struct db *db, const char *name, const char *actor, int64_t *version);
struct db_rule_spec {
	const uint8_t *device;		/* one of device, user, group */
	const char *user, *group;
	const char *resource, *action;
	int allow;
	int64_t valid_from, valid_until;	/* 0: open */
	int time_from, time_until;	/* -1: all day */
	int weekdays;			/* 0: every day */
	int one_time;
};
int db_rule_add(struct db *db, const struct db_rule_spec *r, const char *actor, int64_t *id,
    int64_t *version);
/* Replaces rule old_id by the rule ru (a new id in *id) in one transaction;
 * ERR_NOT_FOUND: no rule old_id, or no such resource or device (the old
 * rule then stays). */
int db_rule_replace(struct db *db, int64_t old_id, const struct db_rule_spec *ru,
    const char *actor, int64_t *id, int64_t *version);
int db_rule_delete(struct db *db, int64_t id, const char *actor, int64_t *version);
/* Uses a one-time grant. 0: used now; ERR_CONFLICT: used already. */
int db_rule_use(struct db *db, int64_t id, const char *actor, const uint8_t mac[MAC_LEN]);
/* Adds (add) or removes a device (mac) or user to a group. ERR_NOT_FOUND: no
 * such device; ERR_CONFLICT: nothing changed. */
int db_group_member(struct db *db, const char *group, const uint8_t *mac, const char *user,
    int add, const char *actor, int64_t *version);

/* Notifications on a connection of their own. */
struct db_listener;
int db_listen_open(struct db *db, const char *const *channels, struct db_listener **out);
void db_listen_close(struct db_listener *l);		/* NULL is a no-op */
/* Waits up to timeout_ms and hands every notification to cb. ERR_UNAVAILABLE
 * when the connection is lost (close it and open a new one: notifications
 * may have been missed). */
int db_listen_poll(struct db_listener *l, int timeout_ms,
    void (*cb)(void *arg, const char *channel, const char *payload), void *arg);

/* ---------------------------------------------------------------------
 * Directory outbox (drained into LDAP by the server's directory worker).
 * A row names an entry (entity, key) that changed; the worker writes that
 * entry as the tables have it when it reads them, so rows are hints and
 * applying one twice, or late, is harmless.
 */
struct db_outbox_row {
	int64_t id;
	char entity[8];			/* "device", "user", "group" */
	char op[8];			/* "upsert", "revoke", "delete" */
	char *key;			/* owned: the device's address or the name */
	int32_t attempts;		/* failed attempts so far */
};

/* Up to max pending rows (done_at null) in id order, leaving out every row
 * of the entries skip_entity[i]/skip_key[i] (i < nskip: entries in
 * back-off). *rows is new (db_outbox_rows_free), *n rows. */
int db_outbox_fetch(struct db *db, size_t max, const char *const *skip_entity,
    const char *const *skip_key, size_t nskip, struct db_outbox_row **rows, size_t *n);
void db_outbox_rows_free(struct db_outbox_row *rows, size_t n);	/* NULL is a no-op */
/* Marks rows applied (done_at = now()) in one statement. */
int db_outbox_done(struct db *db, const int64_t *ids, size_t n);
/* Records a failed attempt on rows: attempts + 1, last_error = error (at
 * most 1000 bytes kept). */
int db_outbox_fail(struct db *db, const int64_t *ids, size_t n, const char *error);
/* How many rows are pending, and the age of the oldest in seconds (0 when
 * none). */
int db_outbox_pending(struct db *db, int64_t *n, int64_t *oldest_s);

/* What the directory shows of a device. */
struct db_dir_device {
	uint8_t mac[MAC_LEN];
	int present;			/* 0: no such device (any more) */
	char status[16];		/* pending, active, revoked, retired */
	char serial_hex[33];		/* the active certificate, else the latest
					   one; "" when it has none */
	int reason;			/* RFC 5280 reason of that certificate when
					   revoked or superseded, else -1 */
	uint8_t *der;			/* the active certificate, NULL when none */
	size_t derlen;
	char *owner;			/* user name, NULL when none */
	char **groups;			/* names of its groups */
	size_t ngroups;
};
struct db_dir_user {
	char *name;
	int present;
};
struct db_dir_group {
	char *name;
	int present;
	uint8_t (*member_macs)[MAC_LEN];	/* member devices */
	size_t nmember_macs;
	char **member_users;		/* member users */
	size_t nmember_users;
};
/* Everything owned; db_dir_snapshot_free releases it. */
struct db_dir_snapshot {
	struct db_dir_device *devices;
	size_t ndevices;
	struct db_dir_user *users;
	size_t nusers;
	struct db_dir_group *groups;
	size_t ngroups;
};
/* The named devices, users and groups as one consistent read (one
 * repeatable-read transaction): one record per name given, in the order
 * given, present 0 for those not in the tables. */
int db_dir_snapshot(struct db *db, const uint8_t (*macs)[MAC_LEN], size_t nmacs,
    const char *const *users, size_t nusers, const char *const *groups, size_t ngroups,
    struct db_dir_snapshot **out);
/* Every device, user and group, as one consistent read. Memory grows with
 * the tables (certificates included). */
int db_dir_snapshot_all(struct db *db, struct db_dir_snapshot **out);
void db_dir_snapshot_free(struct db_dir_snapshot *s);	/* NULL is a no-op */

/* ---------------------------------------------------------------------
 * Renewal (sql/005_renew.sql).
 */
/* Records the renewal of old_serial by it (serial, fingerprint, der,
 * validity; mac, owner and groups are taken from the record): the old
 * certificate becomes superseded, with audit and outbox rows, in one
 * transaction. ERR_NOT_FOUND (no such certificate), ERR_CONFLICT (it is no
 * longer the device's active certificate, or the device is not active),
 * ERR_FORBIDDEN (it has expired), ERR_INVALID. */
int db_renew(struct db *db, const char *old_serial, const struct db_issue *it,
    int key_reused, int64_t *cert_id);
/* For a certificate by serial: its status, the smallest validity cap of its
 * device's groups (0: none) and when an administrator asked for renewal
 * (0: not asked). ERR_NOT_FOUND when there is no such certificate. */
int db_renew_info(struct db *db, const char *serial, enum db_cert_status *status,
    int *max_days, int64_t *requested_at);
/* Asks the device to renew at its next contact; *serial gets its active
 * certificate's serial. ERR_NOT_FOUND (no such device), ERR_CONFLICT (it
 * has no active certificate). */
int db_renew_request(struct db *db, const uint8_t mac[MAC_LEN], const char *actor,
    const char *request_id, char serial[33]);
/* Caps (days 1..36500) or uncaps (days 0) the validity of certificates
 * issued to a group's members; creates the group if needed. */
int db_group_validity(struct db *db, const char *group, int days, const char *actor,
    const char *request_id);

/* ---------------------------------------------------------------------
 * Devices, users and groups as the REST API reads them, page by page in
 * key order (sql/006_devices.sql); each read is one consistent snapshot.
 * Every returned string and array is owned by the record; the _clear and
 * _free functions release them (NULL is a no-op).
 */
#define DB_LIST_MAX 1000		/* rows in one page */
#define DB_DEVICE_CERTS 20		/* certificates db_device_get lists */

struct db_device_cert {
	char serial[33];
	char status[12];		/* active, revoked, superseded */
	int64_t not_before, not_after;	/* Unix seconds */
	int reason;			/* RFC 5280 reason, -1 when active */
	int64_t revoked_at;		/* Unix seconds, 0 when active */
};
struct db_device_info {
	uint8_t mac[MAC_LEN];
	char status[12];		/* pending, active, revoked, retired */
	char *owner;			/* NULL: none */
	char *name, *model;		/* NULL: not recorded */
	char **groups;			/* names, in name order */
	size_t ngroups;
	int has_cert;			/* cert: the active certificate, else the
					   newest (serial, status, not_after) */
	struct db_device_cert cert;
	int renew_requested;
	int64_t created_at, updated_at;	/* Unix seconds */
	struct db_device_cert *certs;	/* db_device_get: newest first, at most
					   DB_DEVICE_CERTS */
	size_t ncerts;
};
struct db_device_filter {
	const char *status;		/* NULL: any */
	const char *owner, *group;	/* names; NULL: any */
	const uint8_t *after;		/* the page starts after this address */
	size_t limit;			/* 1 .. DB_LIST_MAX */
	/* search (sql/009_console_read.sql): q is a prefix of the address
	 * (mac_lo .. mac_hi, "xx:xx:xx:xx:xx:xx", both NULL when q is not an
	 * address prefix), or of the name or the owner's name, case
	 * insensitive; NULL: any */
	const char *q;
	const char *mac_lo, *mac_hi;
	/* the active certificate's notAfter is before / after these
	 * (timestamptz text, UTC); NULL: no bound */
	const char *expires_before, *expires_after;
};
void db_device_info_clear(struct db_device_info *d);
void db_device_list_free(struct db_device_info *v, size_t n);
/* Devices matching f in address order: *out new (*n of them), *more 1
 * when more follow the last. An unknown owner or group matches nothing. */
int db_device_list(struct db *db, const struct db_device_filter *f,
    struct db_device_info **out, size_t *n, int *more);
/* One device with its certificates. ERR_NOT_FOUND. */
int db_device_get(struct db *db, const uint8_t mac[MAC_LEN], struct db_device_info *out);

struct db_user_info {
	char *name;
	int64_t devices;		/* devices it owns */
	char **groups;			/* names, in name order */
	size_t ngroups;
	int64_t created_at;
};
void db_user_list_free(struct db_user_info *v, size_t n);
/* Users in name order after after (NULL: from the first). */
int db_user_list(struct db *db, const char *after, size_t limit, struct db_user_info **out,
    size_t *n, int *more);

struct db_group_info {
	char *name;
	int max_validity_days;		/* 0: no cap */
	int64_t devices, users;		/* members */
	int64_t created_at;
	/* db_group_get only: members in key order, at most its cap of each */
	uint8_t (*member_macs)[MAC_LEN];
	size_t nmember_macs;
	char **member_users;
	size_t nmember_users;
	int truncated;			/* a list stopped at the cap */
	int64_t *rules;			/* ids of the rules naming the group */
	size_t nrules;
};
void db_group_info_clear(struct db_group_info *g);
void db_group_list_free(struct db_group_info *v, size_t n);
/* Groups in name order after after (NULL: from the first). */
int db_group_list(struct db *db, const char *after, size_t limit, struct db_group_info **out,
    size_t *n, int *more);
/* One group with up to cap (1 .. DB_LIST_MAX) devices and users. ERR_NOT_FOUND. */
int db_group_get(struct db *db, const char *name, size_t cap, struct db_group_info *out);

/* Sets (owner: a name, the user created if needed) or clears (NULL) a
 * device's owner: audit row device.owner, directory outbox rows and a new
 * policy version (*version) in one transaction. previous gets the former
 * owner ("" for none). *changed is 0 when the owner already was that one:
 * nothing written, *version the current one. ERR_NOT_FOUND. */
int db_device_owner(struct db *db, const uint8_t mac[MAC_LEN], const char *owner,
    const char *actor, const char *request_id, char previous[OPTDATA_MAX_STR + 1],
    int *changed, int64_t *version);
/* Deletes a user (its devices lose their owner, its memberships go): audit
 * row user.delete, directory outbox rows, new policy version. ERR_NOT_FOUND;
 * ERR_CONFLICT while rules name the user: *rules (new, free()) their ids,
 * nothing written. */
int db_user_delete(struct db *db, const char *name, const char *actor, const char *request_id,
    int64_t **rules, size_t *nrules, int64_t *version);

/* ---------------------------------------------------------------------
 * Web console accounts, login sessions and the login throttle
 * (db/console.c, sql/008_console.sql). Passwords are hashed here with
 * scrypt (OpenSSL's EVP_KDF "SCRYPT") into a self-describing record
 * "scrypt$N$r$p$SALT$HASH" (SALT and HASH in standard base64); the
 * password itself never reaches the database. Callers wipe their copies
 * of passwords and session tokens.
 */
#define DB_ACCOUNT_NAME_MAX 55		/* bytes; "console:" + name fits an actor */
#define DB_PASSWORD_MIN 12		/* bytes */
#define DB_PASSWORD_MAX 1024
#define DB_PWHASH_MAX 256		/* a record, NUL included */
#define DB_SCRYPT_N 32768		/* new records: N = 2^15, r = 8, p = 1 */
#define DB_SCRYPT_R 8
#define DB_SCRYPT_P 1
#define DB_SESSION_TOKEN_LEN 43		/* base64url of 32 random bytes */
#define DB_CSRF_LEN 43

/* scrypt (RFC 7914) of pw under salt into out[outlen]; the one place
 * provd computes it. N a power of 2 in 2..2^20, r 1..32, p 1..16, at most
 * 256 MiB of memory (128 * r * N bytes). Returns 0, ERR_INVALID or
 * ERR_CRYPTO. */
int db_scrypt(const void *pw, size_t pwlen, const void *salt, size_t saltlen,
    uint64_t n, uint32_t r, uint32_t p, uint8_t *out, size_t outlen);
/* A new record for pw (DB_PASSWORD_MIN..DB_PASSWORD_MAX bytes) with a
 * random 16-byte salt and a 32-byte hash: DB_SCRYPT_* parameters, or the
 * given ones (2^10 <= n <= 2^20) with _params. ERR_INVALID for a password
 * out of bounds. */
int db_password_hash(const char *pw, size_t pwlen, char out[DB_PWHASH_MAX]);
int db_password_hash_params(const char *pw, size_t pwlen, uint64_t n, uint32_t r,
    uint32_t p, char out[DB_PWHASH_MAX]);
/* Checks pw against record in constant time once the hash is computed.
 * Returns 0 (it matches), ERR_AUTH (it does not), or ERR_INVALID (record
 * malformed: wrong scheme, parameters out of bounds, salt of 1..64 bytes
 * and hash of 16..64 bytes not in base64; nothing is hashed then). */
int db_password_verify(const char *pw, size_t pwlen, const char *record);
/* 0 when name is 1..DB_ACCOUNT_NAME_MAX bytes of printable ASCII without
 * spaces, ERR_INVALID otherwise. */
int db_account_name_check(const char *name);

struct db_account_info {
	char name[DB_ACCOUNT_NAME_MAX + 1];
	enum db_role role;
	int disabled;
	int64_t created_at, updated_at;	/* Unix seconds */
	int64_t last_login_at;		/* 0: never */
	int64_t sessions;		/* sessions before their absolute expiry */
};
/* Audited account changes (actor: who, e.g. "system"). add: ERR_CONFLICT
 * when the name exists; role viewer, operator, security or admin. passwd,
 * remove and disable end the account's sessions (*ended: how many; may be
 * NULL). ERR_NOT_FOUND for an unknown name. set_disabled: *ended is -1
 * when the account already was so (nothing written). */
int db_account_add(struct db *db, const char *name, enum db_role role, const char *pw,
    size_t pwlen, const char *actor);
int db_account_passwd(struct db *db, const char *name, const char *pw, size_t pwlen,
    const char *actor, int64_t *ended);
int db_account_remove(struct db *db, const char *name, const char *actor, int64_t *ended);
int db_account_set_disabled(struct db *db, const char *name, int disabled,
    const char *actor, int64_t *ended);
/* Every account in name order; *out new (free()), *n of them. */
int db_account_list(struct db *db, struct db_account_info **out, size_t *n);

/* A session as authentication sees it. */
struct db_session {
	uint8_t hash[32];		/* SHA-256 of the token */
	char name[DB_ACCOUNT_NAME_MAX + 1];
	enum db_role role;
	char csrf[DB_CSRF_LEN + 1];
	int64_t created_at, expires_at;	/* Unix seconds; expires_at absolute */
};
/* Looks a session token up: 0 with *out filled when the session exists,
 * its account is enabled, it is before its absolute expiry and it was
 * seen within idle_s seconds; ERR_AUTH otherwise (a malformed token is
 * not looked up). last_seen is written when older than min(60 s, idle_s /
 * 4), so that most requests only read. ERR_DB, ERR_UNAVAILABLE. */
int db_session_check(struct db *db, const char *token, int64_t idle_s,
    struct db_session *out);
/* Ends a session (audit row session.logout). ERR_NOT_FOUND when it had
 * ended already. */
int db_session_end(struct db *db, const uint8_t hash[32], const char *request_id);

/* The login throttle, shared by every instance through the database. */
struct db_login_limits {
	int64_t window_s;		/* failures are counted in windows this long */
	int64_t max_name;		/* attempts per account name in a window */
	int64_t max_address;		/* attempts per client address in a window */
	int64_t idle_s, max_s;		/* session idle and absolute expiry */
};
/* What db_login_begin found. */
struct db_login {
	int64_t retry_after_s;		/* > 0: throttled; nothing below is set */
	int64_t account;		/* 0: no such account */
	enum db_role role;
	int disabled;
	char hash[DB_PWHASH_MAX];	/* the account's record */
};
/* The first step of a login, before any hashing: counts the attempt
 * against name (NULL when the name given cannot be an account's) and
 * address (NULL: unknown), or, when either has had its limit in the
 * current window, counts nothing and sets retry_after_s. */
int db_login_begin(struct db *db, const char *name, const char *address,
    const struct db_login_limits *lim, struct db_login *out);
/* A failed login: audit row session.login_failed with reason
 * (unknown_name, wrong_password, disabled, malformed_name). */
int db_login_failed(struct db *db, const char *name, const char *address,
    const char *reason, const char *request_id);
/* A successful login for l->account: a new session (its token, on the
 * secure heap, into *token: secret_free(); its record into *sess), the
 * attempt given back to the throttle, audit row session.login.
 * ERR_NOT_FOUND when the account was removed or disabled meanwhile. */
int db_login_ok(struct db *db, const struct db_login *l, const char *address,
    const struct db_login_limits *lim, const char *request_id, char **token,
    struct db_session *sess);

/* ---------------------------------------------------------------------
 * The web console's reads (sql/009_console_read.sql): the audit log page
 * by page, and the overview's counts.
 */
struct db_audit_entry {
	int64_t seq;
	int64_t at;			/* Unix seconds */
	char *actor, *action, *object;	/* owned */
	char *detail;			/* owned: the JSON text as stored */
};
struct db_audit_filter {
	const char *action;		/* exact; NULL: any */
	const char *action_prefix;	/* the action starts with it; NULL: any */
	const char *object, *actor;	/* exact; NULL: any */
	const char *device;		/* "xx:xx:xx:xx:xx:xx": rows whose object is
					   the address or whose detail names it as
					   "mac" or "device"; NULL: any */
	const char *since, *until;	/* timestamptz text: at >= since, at <
					   until; NULL: no bound */
	int64_t before;			/* seq < before; 0: from the newest */
	size_t limit;			/* 1 .. DB_LIST_MAX */
};
void db_audit_list_free(struct db_audit_entry *v, size_t n);	/* NULL is a no-op */
/* Rows matching f, newest (highest seq) first: *out new (*n of them),
 * *more 1 when older ones follow the last. */
int db_audit_list(struct db *db, const struct db_audit_filter *f,
    struct db_audit_entry **out, size_t *n, int *more);

#define DB_STATS_DAYS 30
#define DB_STATS_WEEKS 12
struct db_stats {
	int64_t at;			/* the database's time of the read, Unix s */
	int64_t devices[4];		/* pending, active, revoked, retired */
	int64_t certs_active, certs_revoked, certs_superseded;
	/* certificates issued that did not replace an active one (renewals
	 * and replacements left out), per UTC day, the oldest first; the
	 * last day is today */
	int64_t day0;			/* 00:00 UTC of the first day */
	int64_t enrolled[DB_STATS_DAYS];
	/* active certificates expiring, per week (Monday 00:00 UTC) from this
	 * week's, counting from now */
	int64_t week0;
	int64_t expiring[DB_STATS_WEEKS];
	int64_t revoked_24h;		/* revoked (not superseded) in 24 hours */
};
/* The overview, read in one snapshot. */
int db_stats_read(struct db *db, struct db_stats *out);

#endif
