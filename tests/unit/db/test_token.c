/*
 * Tests of API tokens against a real PostgreSQL: the token's shape, that
 * only its hash is stored and audited without the token, lookups with the
 * right, wrong, malformed and revoked tokens, and role names.
 */
#include "db_test.h"

#include <openssl/evp.h>

static struct db *g_db;

static int
setup(void **state)
{
	(void)state;
	g_db = t_open_migrated(2);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	db_close(g_db);
	return 0;
}

static void
test_roles(void **state)
{
	static const char *const names[] = { "operator", "security", "authorizer", "admin" };
	enum db_role r;
	int i;

	(void)state;
	for (i = 0; i < 4; i++) {
		assert_int_equal(db_role_parse(names[i], &r), 0);
		assert_int_equal(r, DB_ROLE_OPERATOR + i);
		assert_string_equal(db_role_name(r), names[i]);
	}
	assert_int_equal(db_role_parse("root", &r), ERR_INVALID);
	assert_int_equal(r, DB_ROLE_NONE);
	assert_int_equal(db_role_parse("none", &r), ERR_INVALID);
	assert_int_equal(db_role_parse("Admin", &r), ERR_INVALID);
	assert_int_equal(db_role_parse(NULL, &r), ERR_INVALID);
	assert_string_equal(db_role_name(DB_ROLE_NONE), "none");
	assert_string_equal(db_role_name((enum db_role)42), "none");
}

static void
test_token_add_and_check(void **state)
{
	char *tok = NULL, *tok2 = NULL, name[64], bad[64];
	enum db_role role;
	uint8_t h[32];
	unsigned int hl = 0;
	char hex[65], buf[128];
	const char *p[1];
	size_t i;

	(void)state;
	assert_int_equal(db_token_add(g_db, "ap-floor-2", DB_ROLE_AUTHORIZER, &tok), 0);
	assert_non_null(tok);
	assert_int_equal(strlen(tok), 47);
	assert_memory_equal(tok, "pvd_", 4);
	for (i = 4; i < 47; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-_", tok[i]));

	/* stored: the SHA-256 of the token, not the token */
	EVP_Digest(tok, strlen(tok), h, &hl, EVP_sha256(), NULL);
	hex_encode(h, 32, hex);
	p[0] = "ap-floor-2";
	assert_int_equal(t_text("select encode(token_sha256, 'hex') from api_tokens where name = $1",
	    1, p, buf, sizeof(buf)), 0);
	assert_string_equal(buf, hex);
	assert_int_equal(t_text("select role from api_tokens where name = $1", 1, p, buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "authorizer");
	/* audited with name and role, never the token */
	assert_int_equal(t_int("select count(*) from audit_log where action = 'token.add' "
	    "and object = $1 and detail::jsonb ->> 'role' = 'authorizer'", 1, p), 1);
	p[0] = tok + 4;
	assert_int_equal(t_int("select count(*) from audit_log where strpos(detail::text || "
	    "actor || object, $1) > 0", 1, p), 0);

	assert_int_equal(db_token_check(g_db, tok, &role, name, sizeof(name)), 0);
	assert_int_equal(role, DB_ROLE_AUTHORIZER);
	assert_string_equal(name, "ap-floor-2");
	p[0] = "ap-floor-2";
	assert_int_equal(t_int("select count(*) from api_tokens where name = $1 and "
	    "last_used_at is not null", 1, p), 1);
	/* a short name buffer truncates */
	assert_int_equal(db_token_check(g_db, tok, &role, name, 4), 0);
	assert_string_equal(name, "ap-");

	/* one character changed */
	snprintf(bad, sizeof(bad), "%s", tok);
	bad[20] = bad[20] == 'A' ? 'B' : 'A';
	assert_int_equal(db_token_check(g_db, bad, &role, name, sizeof(name)), ERR_AUTH);
	assert_int_equal(role, DB_ROLE_NONE);
	assert_string_equal(name, "");
	/* malformed ones never reach the database */
	assert_int_equal(db_token_check(g_db, "", &role, NULL, 0), ERR_AUTH);
	assert_int_equal(db_token_check(g_db, "pvd_", &role, NULL, 0), ERR_AUTH);
	snprintf(bad, sizeof(bad), "%sA", tok);
	assert_int_equal(db_token_check(g_db, bad, &role, NULL, 0), ERR_AUTH);
	snprintf(bad, sizeof(bad), "xvd_%s", tok + 4);
	assert_int_equal(db_token_check(g_db, bad, &role, NULL, 0), ERR_AUTH);
	snprintf(bad, sizeof(bad), "%s", tok);
	bad[10] = '\'';
	assert_int_equal(db_token_check(g_db, bad, &role, NULL, 0), ERR_AUTH);

	/* a second token is different; the same name is refused */
	assert_int_equal(db_token_add(g_db, "console", DB_ROLE_ADMIN, &tok2), 0);
	assert_string_not_equal(tok, tok2);
	assert_int_equal(db_token_check(g_db, tok2, &role, name, sizeof(name)), 0);
	assert_int_equal(role, DB_ROLE_ADMIN);
	secret_free(tok2);
	tok2 = NULL;
	assert_int_equal(db_token_add(g_db, "console", DB_ROLE_OPERATOR, &tok2), ERR_CONFLICT);
	assert_null(tok2);
	assert_int_equal(t_int("select count(*) from audit_log where action = 'token.add'",
	    0, NULL), 2);

	/* bad arguments */
	assert_int_equal(db_token_add(g_db, "", DB_ROLE_ADMIN, &tok2), ERR_INVALID);
	assert_int_equal(db_token_add(g_db, "x", DB_ROLE_NONE, &tok2), ERR_INVALID);
	assert_int_equal(db_token_add(g_db, "tab\tname", DB_ROLE_ADMIN, &tok2), ERR_INVALID);

	/* revoked */
	t_exec("update api_tokens set revoked_at = now() where name = 'ap-floor-2'", 0, NULL);
	assert_int_equal(db_token_check(g_db, tok, &role, name, sizeof(name)), ERR_AUTH);
	secret_free(tok);

	{
		struct db_audit_report rep;

		assert_int_equal(db_audit_verify(g_db, &rep), 0);
		assert_int_equal(rep.first_bad, 0);
		assert_int_equal(rep.rows, 2);
	}
}

/* Names with quotes and backslashes are data. */
static void
test_token_name_metacharacters(void **state)
{
	const char *name = "o'reilly\\\"; drop table api_tokens; --";
	const char *p[1] = { name };
	char *tok = NULL, got[64];
	enum db_role role;

	(void)state;
	assert_int_equal(db_token_add(g_db, name, DB_ROLE_SECURITY, &tok), 0);
	assert_int_equal(t_int("select count(*) from api_tokens where name = $1", 1, p), 1);
	assert_int_equal(db_token_check(g_db, tok, &role, got, sizeof(got)), 0);
	assert_string_equal(got, name);
	assert_int_equal(role, DB_ROLE_SECURITY);
	secret_free(tok);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_token_add_and_check),
		cmocka_unit_test(test_token_name_metacharacters),
	};
	int r;

	log_init("test_token", LOG_LVL_ERROR, 0, 0);
	t_db_create("token");
	r = cmocka_run_group_tests(tests, setup, teardown);
	t_db_drop();
	return r;
}
