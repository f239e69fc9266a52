/*
 * API tokens: "pvd_" + 43 base64url characters (32 random bytes). Only the
 * token's SHA-256 is stored; the token exists in memory only on the OpenSSL
 * secure heap and is never logged or audited.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "db/db_int.h"

#define TOKEN_PREFIX "pvd_"
#define TOKEN_PREFIX_LEN 4
#define TOKEN_RAW 32
#define TOKEN_B64 43			/* base64url of 32 bytes, no padding */
#define TOKEN_LEN (TOKEN_PREFIX_LEN + TOKEN_B64)
#define TOKEN_NAME_MAX 64

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static const char *const role_names[] = {
	[DB_ROLE_NONE] = "none",
	[DB_ROLE_OPERATOR] = "operator",
	[DB_ROLE_SECURITY] = "security",
	[DB_ROLE_AUTHORIZER] = "authorizer",
	[DB_ROLE_ADMIN] = "admin",
	[DB_ROLE_VIEWER] = "viewer",
};

int
db_role_parse(const char *s, enum db_role *out)
{
	int i;

	if (out != NULL)
		*out = DB_ROLE_NONE;
	if (s == NULL || out == NULL)
		return ERR_INVALID;
	for (i = DB_ROLE_OPERATOR; i <= DB_ROLE_LAST; i++) {
		if (strcmp(s, role_names[i]) == 0) {
			*out = (enum db_role)i;
			return 0;
		}
	}
	return ERR_INVALID;
}

const char *
db_role_name(enum db_role r)
{
	if ((int)r < DB_ROLE_NONE || r > DB_ROLE_LAST)
		return "none";
	return role_names[r];
}

/* base64url without padding of in[len] into out (4 * len / 3 rounded up). */
static void
b64url_encode(const uint8_t *in, size_t len, char *out)
{
	size_t i;
	uint32_t v;

	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*out++ = b64url[(v >> 18) & 63];
		*out++ = b64url[(v >> 12) & 63];
		*out++ = b64url[(v >> 6) & 63];
		*out++ = b64url[v & 63];
	}
	if (len - i == 1) {
		v = (uint32_t)in[i] << 16;
		*out++ = b64url[(v >> 18) & 63];
		*out++ = b64url[(v >> 12) & 63];
	} else if (len - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		*out++ = b64url[(v >> 18) & 63];
		*out++ = b64url[(v >> 12) & 63];
		*out++ = b64url[(v >> 6) & 63];
	}
	*out = '\0';
}

static int
token_name_check(const char *name)
{
	size_t len, i;

	if (name == NULL || (len = strnlen(name, TOKEN_NAME_MAX + 1)) == 0 ||
	    len > TOKEN_NAME_MAX)
		return ERR_INVALID;
	for (i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return ERR_INVALID;
	return 0;
}

int
db_token_add(struct db *db, const char *name, enum db_role role, char **token)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	uint8_t raw[TOKEN_RAW], hash[32];
	char *tok = NULL;
	const char *params[4];
	int lengths[4] = { 0, 0, 32, 0 }, formats[4] = { 0, 0, 1, 0 };
	int r = ERR_INTERNAL;

	if (token != NULL)
		*token = NULL;
	if (db == NULL || token == NULL || token_name_check(name) != 0 ||
	    role < DB_ROLE_OPERATOR || role > DB_ROLE_LAST)
		return ERR_INVALID;
	if ((tok = OPENSSL_secure_malloc(TOKEN_LEN + 1)) == NULL)
		return ERR_NOMEM;
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		log_ossl("RAND_bytes failed");
		r = ERR_CRYPTO;
		goto out;
	}
	memcpy(tok, TOKEN_PREFIX, TOKEN_PREFIX_LEN);
	b64url_encode(raw, sizeof(raw), tok + TOKEN_PREFIX_LEN);
	if ((r = db_sha256(tok, TOKEN_LEN, hash)) != 0)
		goto out;
	params[0] = name;
	params[1] = db_role_name(role);
	params[2] = (const char *)hash;
	params[3] = "system";	/* tokens are made by the local admin tool */
	if ((r = db_conn_get(db, &c)) != 0)
		goto out;
	res = db_exec(c, "select provd_token_add($1::text, $2::text, $3::bytea, $4::text)",
	    4, params, lengths, formats, 0, &r);
	if (res == NULL) {
		if (r == ERR_CONFLICT)
			log_warnx("a token named %s exists", name);
		goto out;
	}
	log_info("token %s (%s) created", name, db_role_name(role));
	*token = tok;
	tok = NULL;
	r = 0;
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	if (tok != NULL)
		OPENSSL_secure_clear_free(tok, TOKEN_LEN + 1);
	PQclear(res);
	db_conn_put(db, c);
	return r;
}

/* Shape check before any hashing or lookup. */
static int
token_well_formed(const char *t)
{
	size_t i;

	if (strnlen(t, TOKEN_LEN + 1) != TOKEN_LEN ||
	    memcmp(t, TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0)
		return 0;
	for (i = TOKEN_PREFIX_LEN; i < TOKEN_LEN; i++)
		if (strchr(b64url, t[i]) == NULL)
			return 0;
	return 1;
}

int
db_token_check(struct db *db, const char *token, enum db_role *role,
    char *name_out, size_t namelen)
{
	PGconn *c = NULL;
	PGresult *res = NULL;
	uint8_t hash[32];
	const char *params[1] = { (const char *)hash };
	int lengths[1] = { 32 }, formats[1] = { 1 };
	int r;

	if (role != NULL)
		*role = DB_ROLE_NONE;
	if (name_out != NULL && namelen > 0)
		name_out[0] = '\0';
	if (db == NULL || token == NULL || role == NULL)
		return ERR_INVALID;
	if (!token_well_formed(token))
		return ERR_AUTH;
	if ((r = db_sha256(token, TOKEN_LEN, hash)) != 0)
		return r;
	if ((r = db_conn_get(db, &c)) != 0)
		return r;
	/* last_used_at is refreshed at most once a minute: no write per request */
	res = db_exec(c,
	    "with t as (select id, name, role, last_used_at from api_tokens "
	    "  where token_sha256 = $1::bytea and revoked_at is null), "
	    "u as (update api_tokens a set last_used_at = now() from t "
	    "  where a.id = t.id and (t.last_used_at is null "
	    "  or t.last_used_at < now() - interval '60 seconds')) "
	    "select name, role from t",
	    1, params, lengths, formats, 0, &r);
	if (res == NULL)
		goto out;
	if (PQntuples(res) != 1) {
		r = ERR_AUTH;
		goto out;
	}
	if ((r = db_role_parse(PQgetvalue(res, 0, 1), role)) != 0) {
		r = ERR_DB;
		goto out;
	}
	if (name_out != NULL && namelen > 0)
		snprintf(name_out, namelen, "%s", PQgetvalue(res, 0, 0));
	r = 0;
out:
	PQclear(res);
	db_conn_put(db, c);
	return r;
}
