/*
 * Web console accounts, login sessions and the shared login throttle
 * (sql/008_console.sql), and the password records they rest on: scrypt
 * through OpenSSL's EVP_KDF, stored as "scrypt$N$r$p$SALT$HASH".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "db/db_int.h"

#define SALT_LEN 16			/* new records */
#define HASH_LEN 32
#define REC_SALT_MAX 64			/* what a record may carry */
#define REC_HASH_MIN 16
#define REC_HASH_MAX 64
#define SCRYPT_MEM_MAX (256ull << 20)
#define B64_MAX(n) (4 * (((n) + 2) / 3))
#define SESSION_RAW 32

/* ---------------------------------------------------------------------
 * Password records.
 */
int
db_scrypt(const void *pw, size_t pwlen, const void *salt, size_t saltlen, uint64_t n,
    uint32_t r, uint32_t p, uint8_t *out, size_t outlen)
{
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kctx = NULL;
	uint64_t maxmem = SCRYPT_MEM_MAX + (1u << 20);
	static const uint8_t empty[1];
	int rc = ERR_INTERNAL;

	if (out == NULL || outlen == 0 || (pw == NULL && pwlen > 0) ||
	    (salt == NULL && saltlen > 0) || n < 2 || n > (1u << 20) || (n & (n - 1)) != 0 ||
	    r < 1 || r > 32 || p < 1 || p > 16 || 128ull * r * n > SCRYPT_MEM_MAX)
		return ERR_INVALID;
	/* OpenSSL takes an empty octet string only with a non-NULL pointer */
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
		    (void *)(pwlen > 0 ? pw : empty), pwlen),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
		    (void *)(saltlen > 0 ? salt : empty), saltlen),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
		OSSL_PARAM_construct_end(),
	};
	if ((kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL)) == NULL ||
	    (kctx = EVP_KDF_CTX_new(kdf)) == NULL ||
	    EVP_KDF_derive(kctx, out, outlen, params) != 1) {
		log_ossl("scrypt");
		OPENSSL_cleanse(out, outlen);
		rc = ERR_CRYPTO;
		goto out;
	}
	rc = 0;
out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* Standard base64 of in[len] into out (B64_MAX(len) + 1 bytes), padded. */
static void
b64_encode(const uint8_t *in, size_t len, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* Decodes a padded standard base64 field of exactly fieldlen characters
 * into out (at most max bytes). Returns the byte count, or -1. */
static int
field_decode(const char *field, size_t fieldlen, uint8_t *out, size_t max)
{
	uint8_t buf[B64_MAX(REC_HASH_MAX > REC_SALT_MAX ? REC_HASH_MAX : REC_SALT_MAX)];
	size_t n = 0;
	int r = -1;

	if (b64_decode(field, fieldlen, buf, sizeof(buf), &n) == 0 && n <= max) {
		memcpy(out, buf, n);
		r = (int)n;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

int
db_password_hash_params(const char *pw, size_t pwlen, uint64_t n, uint32_t r, uint32_t p,
    char out[DB_PWHASH_MAX])
{
	uint8_t salt[SALT_LEN], hash[HASH_LEN];
	char salt64[B64_MAX(SALT_LEN) + 1], hash64[B64_MAX(HASH_LEN) + 1];
	int rc;

	if (out != NULL)
		out[0] = '\0';
	if (pw == NULL || out == NULL || pwlen < DB_PASSWORD_MIN || pwlen > DB_PASSWORD_MAX ||
	    n < (1u << 10))
		return ERR_INVALID;
	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		log_ossl("RAND_bytes");
		return ERR_CRYPTO;
	}
	if ((rc = db_scrypt(pw, pwlen, salt, sizeof(salt), n, r, p, hash, sizeof(hash))) != 0)
		return rc;
	b64_encode(salt, sizeof(salt), salt64);
	b64_encode(hash, sizeof(hash), hash64);
	OPENSSL_cleanse(hash, sizeof(hash));
	snprintf(out, DB_PWHASH_MAX, "scrypt$%llu$%u$%u$%s$%s", (unsigned long long)n, r, p,
	    salt64, hash64);
	return 0;
}

int
db_password_hash(const char *pw, size_t pwlen, char out[DB_PWHASH_MAX])
{
	return db_password_hash_params(pw, pwlen, DB_SCRYPT_N, DB_SCRYPT_R, DB_SCRYPT_P, out);
}

/* A decimal field of a record, ending at '$': no sign, no leading zero. */
static int
rec_number(const char **s, uint64_t max, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;

	if (*p < '1' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > max)
			return -1;
	}
	if (*p != '$')
		return -1;
	*s = p + 1;
	*out = v;
	return 0;
}

int
db_password_verify(const char *pw, size_t pwlen, const char *record)
{
	uint8_t salt[REC_SALT_MAX], want[REC_HASH_MAX], got[REC_HASH_MAX];
	uint64_t n, r, p;
	const char *s, *dollar;
	int saltlen, hashlen, rc;

	if (pw == NULL || record == NULL || strnlen(record, DB_PWHASH_MAX) >= DB_PWHASH_MAX ||
	    strncmp(record, "scrypt$", 7) != 0)
		return ERR_INVALID;
	s = record + 7;
	if (rec_number(&s, 1u << 20, &n) != 0 || rec_number(&s, 32, &r) != 0 ||
	    rec_number(&s, 16, &p) != 0 || n < (1u << 10) || (n & (n - 1)) != 0 ||
	    128ull * r * n > SCRYPT_MEM_MAX)
		return ERR_INVALID;
	if ((dollar = strchr(s, '$')) == NULL ||
	    (saltlen = field_decode(s, (size_t)(dollar - s), salt, sizeof(salt))) < 1 ||
	    (hashlen = field_decode(dollar + 1, strlen(dollar + 1), want, sizeof(want))) <
	    REC_HASH_MIN)
		return ERR_INVALID;
	if ((rc = db_scrypt(pw, pwlen, salt, (size_t)saltlen, n, (uint32_t)r, (uint32_t)p, got,
	    (size_t)hashlen)) != 0)
		return rc;
	rc = CRYPTO_memcmp(got, want, (size_t)hashlen) == 0 ? 0 : ERR_AUTH;
	OPENSSL_cleanse(got, sizeof(got));
	return rc;
}

int
db_account_name_check(const char *name)
{
	size_t len;

	if (name == NULL || (len = strnlen(name, DB_ACCOUNT_NAME_MAX + 1)) == 0 ||
	    len > DB_ACCOUNT_NAME_MAX)
		return ERR_INVALID;
	for (size_t i = 0; i < len; i++)
		if (name[i] < '!' || name[i] > '~')
			return ERR_INVALID;
	return 0;
}

static int
console_role_ok(enum db_role role)
{
	return role == DB_ROLE_VIEWER || role == DB_ROLE_OPERATOR || role == DB_ROLE_SECURITY ||
	    role == DB_ROLE_ADMIN;
}

/* ---------------------------------------------------------------------
 * Accounts.
 */
/* Runs one audited account function returning (r_status[, r_sessions]):
 * maps 'ok' to 0, 'conflict', 'not_found'; 'unchanged' gives *ended -1. */
static int
account_call(struct db *db, const char *sql, int nparams, const char *const *params,
    int64_t *ended)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	const char *st;
	int r;

	if (ended != NULL)
		*ended = 0;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	if ((res = db_exec(c, sql, nparams, params, NULL, NULL, 0, &r)) == NULL)
		goto out;
	if (PQntuples(res) != 1) {
		r = ERR_DB;
		goto out;
	}
	st = PQgetvalue(res, 0, 0);
	if (strcmp(st, "conflict") == 0)
		r = ERR_CONFLICT;
	else if (strcmp(st, "not_found") == 0)
		r = ERR_NOT_FOUND;
	else if (strcmp(st, "unchanged") == 0) {
		if (ended != NULL)
			*ended = -1;
		r = 0;
	} else if (strcmp(st, "ok") == 0) {
		if (ended != NULL && PQnfields(res) > 1 && !PQgetisnull(res, 0, 1))
			*ended = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		r = 0;
	} else
		r = ERR_DB;
out:
	PQclear(res);
	db_conn_put(db, c);
	return r;
}

int
db_account_add(struct db *db, const char *name, enum db_role role, const char *pw,
    size_t pwlen, const char *actor)
{
	char rec[DB_PWHASH_MAX];
	const char *params[4];
	int r;

	if (db == NULL || actor == NULL || db_account_name_check(name) != 0 ||
	    !console_role_ok(role))
		return ERR_INVALID;
	if ((r = db_password_hash(pw, pwlen, rec)) != 0)
		return r;
	params[0] = name;
	params[1] = db_role_name(role);
	params[2] = rec;
	params[3] = actor;
	r = account_call(db, "select r_status from provd_console_account_add($1::text, $2::text, "
	    "$3::text, $4::text)", 4, params, NULL);
	OPENSSL_cleanse(rec, sizeof(rec));
	if (r == 0)
		log_info("console account %s (%s) added", name, db_role_name(role));
	return r;
}

int
db_account_passwd(struct db *db, const char *name, const char *pw, size_t pwlen,
    const char *actor, int64_t *ended)
{
	char rec[DB_PWHASH_MAX];
	const char *params[3];
	int r;

	if (ended != NULL)
		*ended = 0;
	if (db == NULL || actor == NULL || db_account_name_check(name) != 0)
		return ERR_INVALID;
	if ((r = db_password_hash(pw, pwlen, rec)) != 0)
		return r;
	params[0] = name;
	params[1] = rec;
	params[2] = actor;
	r = account_call(db, "select r_status, r_sessions from provd_console_account_password("
	    "$1::text, $2::text, $3::text)", 3, params, ended);
	OPENSSL_cleanse(rec, sizeof(rec));
	return r;
}

int
db_account_remove(struct db *db, const char *name, const char *actor, int64_t *ended)
{
	const char *params[2] = { name, actor };

	if (ended != NULL)
		*ended = 0;
	if (db == NULL || actor == NULL || db_account_name_check(name) != 0)
		return ERR_INVALID;
	return account_call(db, "select r_status, r_sessions from provd_console_account_remove("
	    "$1::text, $2::text)", 2, params, ended);
}

int
db_account_set_disabled(struct db *db, const char *name, int disabled, const char *actor,
    int64_t *ended)
{
	const char *params[3] = { name, disabled ? "true" : "false", actor };

	if (ended != NULL)
		*ended = 0;
	if (db == NULL || actor == NULL || db_account_name_check(name) != 0)
		return ERR_INVALID;
	return account_call(db, "select r_status, r_sessions from provd_console_account_disable("
	    "$1::text, $2::boolean, $3::text)", 3, params, ended);
}

int
db_account_list(struct db *db, struct db_account_info **out, size_t *n)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	struct db_account_info *v = NULL;
	int r, rows;

	if (out != NULL)
		*out = NULL;
	if (n != NULL)
		*n = 0;
	if (db == NULL || out == NULL || n == NULL)
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	res = db_exec(c,
	    "select a.name, a.role, a.disabled::int, "
	    "  extract(epoch from a.created_at)::bigint, extract(epoch from a.updated_at)::bigint, "
	    "  coalesce(extract(epoch from a.last_login_at)::bigint, 0), "
	    "  (select count(*) from console_sessions s where s.account_id = a.id "
	    "    and s.expires_at > now()) "
	    "from console_accounts a order by a.name",
	    0, NULL, NULL, NULL, 0, &r);
	if (res == NULL)
		goto out;
	rows = PQntuples(res);
	if (rows > 0 && (v = calloc((size_t)rows, sizeof(*v))) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	for (int i = 0; i < rows; i++) {
		str_copy(v[i].name, sizeof(v[i].name), PQgetvalue(res, i, 0));
		if (db_role_parse(PQgetvalue(res, i, 1), &v[i].role) != 0) {
			r = ERR_DB;
			goto out;
		}
		v[i].disabled = strcmp(PQgetvalue(res, i, 2), "1") == 0;
		v[i].created_at = strtoll(PQgetvalue(res, i, 3), NULL, 10);
		v[i].updated_at = strtoll(PQgetvalue(res, i, 4), NULL, 10);
		v[i].last_login_at = strtoll(PQgetvalue(res, i, 5), NULL, 10);
		v[i].sessions = strtoll(PQgetvalue(res, i, 6), NULL, 10);
	}
	*out = v;
	*n = (size_t)rows;
	v = NULL;
	r = 0;
out:
	free(v);
	PQclear(res);
	db_conn_put(db, c);
	return r;
}

/* ---------------------------------------------------------------------
 * Sessions.
 */
/* base64url without padding of 32 random bytes (43 characters + NUL). */
static int
random_b64url(char out[DB_SESSION_TOKEN_LEN + 1])
{
	uint8_t raw[SESSION_RAW];
	char buf[B64_MAX(SESSION_RAW) + 1];

	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		log_ossl("RAND_bytes");
		return ERR_CRYPTO;
	}
	b64_encode(raw, sizeof(raw), buf);
	OPENSSL_cleanse(raw, sizeof(raw));
	for (size_t i = 0; i < DB_SESSION_TOKEN_LEN; i++)
		out[i] = buf[i] == '+' ? '-' : buf[i] == '/' ? '_' : buf[i];
	out[DB_SESSION_TOKEN_LEN] = '\0';
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

static int
token_well_formed(const char *t)
{
	if (strnlen(t, DB_SESSION_TOKEN_LEN + 1) != DB_SESSION_TOKEN_LEN)
		return 0;
	for (size_t i = 0; i < DB_SESSION_TOKEN_LEN; i++) {
		char c = t[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

int
db_session_check(struct db *db, const char *token, int64_t idle_s, struct db_session *out)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	char idle[24];
	const char *params[2];
	int lengths[2] = { 32, 0 }, formats[2] = { 1, 0 };
	int r;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (db == NULL || token == NULL || out == NULL || idle_s < 1)
		return ERR_INVALID;
	if (!token_well_formed(token))
		return ERR_AUTH;
	if ((r = db_sha256(token, DB_SESSION_TOKEN_LEN, out->hash)) != 0)
		return r;
	snprintf(idle, sizeof(idle), "%lld", (long long)idle_s);
	params[0] = (const char *)out->hash;
	params[1] = idle;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	/* last_seen_at is written at most every min(60 s, idle / 4): most
	 * requests only read */
	res = db_exec(c,
	    "with s as (select s.token_sha256, s.csrf_token, s.created_at, s.expires_at, "
	    "    s.last_seen_at, a.name, a.role from console_sessions s "
	    "  join console_accounts a on a.id = s.account_id "
	    "  where s.token_sha256 = $1::bytea and not a.disabled and s.expires_at > now() "
	    "    and s.last_seen_at > now() - make_interval(secs => $2::integer)), "
	    "u as (update console_sessions c set last_seen_at = now() from s "
	    "  where c.token_sha256 = s.token_sha256 and s.last_seen_at < now() - "
	    "    make_interval(secs => least(60.0, $2::integer / 4.0))) "
	    "select name, role, csrf_token, extract(epoch from created_at)::bigint, "
	    "  extract(epoch from expires_at)::bigint from s",
	    2, params, lengths, formats, 0, &r);
	if (res == NULL)
		goto out;
	if (PQntuples(res) != 1) {
		r = ERR_AUTH;
		goto out;
	}
	if (db_role_parse(PQgetvalue(res, 0, 1), &out->role) != 0 ||
	    PQgetlength(res, 0, 2) != DB_CSRF_LEN) {
		r = ERR_DB;
		goto out;
	}
	str_copy(out->name, sizeof(out->name), PQgetvalue(res, 0, 0));
	memcpy(out->csrf, PQgetvalue(res, 0, 2), DB_CSRF_LEN + 1);
	out->created_at = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
	out->expires_at = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	r = 0;
out:
	if (r != 0)
		OPENSSL_cleanse(out, sizeof(*out));
	PQclear(res);
	db_conn_put(db, c);
	return r;
}

int
db_session_end(struct db *db, const uint8_t hash[32], const char *request_id)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	const char *params[2] = { (const char *)hash, request_id };
	int lengths[2] = { 32, 0 }, formats[2] = { 1, 0 };
	int r;

	if (db == NULL || hash == NULL)
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	res = db_exec(c, "select r_status from provd_console_logout($1::bytea, $2::text)",
	    2, params, lengths, formats, 0, &r);
	if (res == NULL)
		goto out;
	r = PQntuples(res) != 1 ? ERR_DB :
	    strcmp(PQgetvalue(res, 0, 0), "ok") == 0 ? 0 : ERR_NOT_FOUND;
out:
	PQclear(res);
	db_conn_put(db, c);
	return r;
}

/* ---------------------------------------------------------------------
 * Login.
 */
static int
limits_ok(const struct db_login_limits *lim)
{
	return lim != NULL && lim->window_s >= 1 && lim->window_s <= INT32_MAX &&
	    lim->max_name >= 1 && lim->max_name <= INT32_MAX && lim->max_address >= 1 &&
	    lim->max_address <= INT32_MAX && lim->idle_s >= 1 && lim->idle_s <= INT32_MAX &&
	    lim->max_s >= 1 && lim->max_s <= INT32_MAX;
}

int
db_login_begin(struct db *db, const char *name, const char *address,
    const struct db_login_limits *lim, struct db_login *out)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	char win[24], maxn[24], maxa[24];
	const char *params[5];
	int r;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (db == NULL || out == NULL || !limits_ok(lim) ||
	    (name != NULL && db_account_name_check(name) != 0))
		return ERR_INVALID;
	snprintf(win, sizeof(win), "%lld", (long long)lim->window_s);
	snprintf(maxn, sizeof(maxn), "%lld", (long long)lim->max_name);
	snprintf(maxa, sizeof(maxa), "%lld", (long long)lim->max_address);
	params[0] = name;
	params[1] = address;
	params[2] = win;
	params[3] = maxn;
	params[4] = maxa;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	res = db_exec(c, "select r_retry_after, r_account, r_role, r_hash, r_disabled::int "
	    "from provd_console_login_begin($1::text, $2::text, $3::integer, $4::integer, "
	    "$5::integer)", 5, params, NULL, NULL, 0, &r);
	if (res == NULL)
		goto out;
	if (PQntuples(res) != 1) {
		r = ERR_DB;
		goto out;
	}
	out->retry_after_s = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if (out->retry_after_s > 0 || PQgetisnull(res, 0, 1)) {
		r = 0;
		goto out;
	}
	if (db_role_parse(PQgetvalue(res, 0, 2), &out->role) != 0 ||
	    PQgetlength(res, 0, 3) >= DB_PWHASH_MAX) {
		r = ERR_DB;
		goto out;
	}
	out->account = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	memcpy(out->hash, PQgetvalue(res, 0, 3), (size_t)PQgetlength(res, 0, 3) + 1);
	out->disabled = strcmp(PQgetvalue(res, 0, 4), "1") == 0;
	r = 0;
out:
	PQclear(res);
	db_conn_put(db, c);
	return r;
}

int
db_login_failed(struct db *db, const char *name, const char *address, const char *reason,
    const char *request_id)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	const char *params[4] = { name, address, reason, request_id };
	int r;

	if (db == NULL || reason == NULL || (name != NULL && db_account_name_check(name) != 0))
		return ERR_INVALID;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	res = db_exec(c, "select provd_console_login_failed($1::text, $2::text, $3::text, $4::text)",
	    4, params, NULL, NULL, 0, &r);
	PQclear(res);
	db_conn_put(db, c);
	return r;
}

int
db_login_ok(struct db *db, const struct db_login *l, const char *address,
    const struct db_login_limits *lim, const char *request_id, char **token,
    struct db_session *sess)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	char *tok = NULL, acct[24], idle[24], max[24], win[24];
	const char *params[8];
	int lengths[8] = { 0, 32, 0, 0, 0, 0, 0, 0 }, formats[8] = { 0, 1, 0, 0, 0, 0, 0, 0 };
	int r;

	if (token != NULL)
		*token = NULL;
	if (sess != NULL)
		memset(sess, 0, sizeof(*sess));
	if (db == NULL || l == NULL || l->account <= 0 || token == NULL || sess == NULL ||
	    !limits_ok(lim))
		return ERR_INVALID;
	if ((tok = OPENSSL_secure_zalloc(DB_SESSION_TOKEN_LEN + 1)) == NULL)
		return ERR_NOMEM;
	if ((r = random_b64url(tok)) != 0 || (r = random_b64url(sess->csrf)) != 0 ||
	    (r = db_sha256(tok, DB_SESSION_TOKEN_LEN, sess->hash)) != 0)
		goto out;
	snprintf(acct, sizeof(acct), "%lld", (long long)l->account);
	snprintf(idle, sizeof(idle), "%lld", (long long)lim->idle_s);
	snprintf(max, sizeof(max), "%lld", (long long)lim->max_s);
	snprintf(win, sizeof(win), "%lld", (long long)lim->window_s);
	params[0] = acct;
	params[1] = (const char *)sess->hash;
	params[2] = sess->csrf;
	params[3] = idle;
	params[4] = max;
	params[5] = address;
	params[6] = win;
	params[7] = request_id;
	if ((r = db_conn_get(db, &c)) != 0)
		goto out;
	res = db_exec(c, "select r_status, r_name, r_role, extract(epoch from r_created_at)::bigint, "
	    "  extract(epoch from r_expires_at)::bigint "
	    "from provd_console_login_ok($1::bigint, $2::bytea, $3::text, $4::integer, "
	    "$5::integer, $6::text, $7::integer, $8::text)",
	    8, params, lengths, formats, 0, &r);
	if (res == NULL)
		goto out;
	if (PQntuples(res) != 1) {
		r = ERR_DB;
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "ok") != 0) {
		r = ERR_NOT_FOUND;
		goto out;
	}
	if (db_role_parse(PQgetvalue(res, 0, 2), &sess->role) != 0) {
		r = ERR_DB;
		goto out;
	}
	str_copy(sess->name, sizeof(sess->name), PQgetvalue(res, 0, 1));
	sess->created_at = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
	sess->expires_at = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	*token = tok;
	tok = NULL;
	r = 0;
out:
	if (tok != NULL)
		OPENSSL_secure_clear_free(tok, DB_SESSION_TOKEN_LEN + 1);
	if (r != 0)
		OPENSSL_cleanse(sess, sizeof(*sess));
	PQclear(res);
	db_conn_put(db, c);
	return r;
}
