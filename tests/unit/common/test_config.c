/*
 * test_config.c: the configuration file — defaults, every kind of bad file
 * gives a precise "file:line: message", secrets files are checked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/common.h"

static char dir[] = "/tmp/provd-test-config.XXXXXX";

static const char *
write_file(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static int
load_err(const char *text, char *err, size_t errlen)
{
	struct config *cfg = NULL;
	const char *p = write_file("c.ini", text);
	int r = config_load(p, &cfg, err, errlen);
	if (r == 0)
		config_free(cfg);
	return r;
}

static void
test_defaults_and_set(void **state)
{
	struct config *cfg = NULL;
	char err[256];
	(void)state;
	const char *p = write_file("ok.ini",
	    "[server]\nport = 9000\n[ca]\ndir = /tmp/x\nallow_rsa = yes\n[log]\nlevel = debug\n");
	assert_int_equal(config_load(p, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->port, 9000);
	assert_string_equal(cfg->listen, "127.0.0.1");
	assert_string_equal(cfg->ca_dir, "/tmp/x");
	assert_int_equal(cfg->allow_rsa, 1);
	assert_int_equal(cfg->validity_days, 365);
	assert_int_equal(cfg->log_level, LOG_LVL_DEBUG);
	assert_true(config_is_set(cfg, "server.port"));
	assert_false(config_is_set(cfg, "server.listen"));
	assert_null(cfg->crl_url);
	config_free(cfg);
}

static void
test_errors_name_line_and_key(void **state)
{
	char err[256];
	(void)state;
	assert_int_equal(load_err("[server]\nport = 80\nbogus = 1\n", err, sizeof(err)), ERR_CONFIG);
	assert_non_null(strstr(err, "c.ini:3: unknown key \"bogus\" in [server]"));
	assert_int_equal(load_err("[server]\nport = 70000\n", err, sizeof(err)), ERR_CONFIG);
	assert_non_null(strstr(err, "c.ini:2: server.port"));
	assert_non_null(strstr(err, "0..65535"));
	assert_int_equal(load_err("[server]\nport = 12ab\n", err, sizeof(err)), ERR_CONFIG);
	assert_non_null(strstr(err, ":2: server.port"));
	assert_int_equal(load_err("[nope]\nx = 1\n", err, sizeof(err)), ERR_CONFIG);
	assert_non_null(strstr(err, ":2: unknown section [nope]"));
	assert_int_equal(load_err("[server]\nport = 1\nport = 2\n", err, sizeof(err)), ERR_CONFIG);
	assert_non_null(strstr(err, ":3: server.port: set twice"));
	assert_int_equal(load_err("[ca]\nallow_rsa = maybe\n", err, sizeof(err)), ERR_CONFIG);
	assert_non_null(strstr(err, "yes or no"));
	assert_int_equal(load_err("[log]\nlevel = loud\n", err, sizeof(err)), ERR_CONFIG);
	assert_int_equal(load_err("[server]\ntls_cert = /x\n", err, sizeof(err)), ERR_CONFIG);
	assert_non_null(strstr(err, "go together"));
	assert_int_equal(load_err("[database]\nconninfo = host=x password=y\n", err, sizeof(err)), ERR_CONFIG);
	assert_int_equal(load_err("this is not ini\n", err, sizeof(err)), ERR_CONFIG);
	assert_non_null(strstr(err, ":1:"));
}

static void
test_missing_file(void **state)
{
	struct config *cfg = NULL;
	char err[256];
	(void)state;
	assert_int_equal(config_load("/nonexistent/provd.conf", &cfg, err, sizeof(err)), ERR_CONFIG);
	assert_null(cfg);
	assert_non_null(strstr(err, "/nonexistent/provd.conf"));
}

static void
test_secret_files(void **state)
{
	struct config *cfg = NULL;
	char err[256], text[512], *ci = NULL;
	(void)state;
	char sec[300];
	snprintf(sec, sizeof(sec), "%s", write_file("db.secret", "it's\\secret\n"));
	snprintf(text, sizeof(text), "[database]\nconninfo = host=h dbname=d\npassword_file = %s\n", sec);
	const char *p = write_file("s.ini", text);
	assert_int_equal(config_load(p, &cfg, err, sizeof(err)), 0);
	assert_int_equal(config_check_files(cfg, err, sizeof(err)), 0);
	assert_int_equal(config_db_conninfo(cfg, &ci), 0);
	assert_string_equal(ci, "host=h dbname=d password='it\\'s\\\\secret'");
	secret_free(ci);
	config_free(cfg);

	snprintf(text, sizeof(text), "[database]\npassword_file = %s/missing.secret\n", dir);
	p = write_file("s2.ini", text);
	assert_int_equal(config_load(p, &cfg, err, sizeof(err)), 0);
	assert_int_equal(config_check_files(cfg, err, sizeof(err)), ERR_CONFIG);
	assert_non_null(strstr(err, "database.password_file"));
	assert_non_null(strstr(err, "cannot read secret file"));
	assert_null(strstr(err, "secret\n"));
	config_free(cfg);

	write_file("empty.secret", "\n");
	snprintf(text, sizeof(text), "[ldap]\nuri = ldap://x\nbind_dn = cn=a\npassword_file = %s/empty.secret\n", dir);
	p = write_file("s3.ini", text);
	assert_int_equal(config_load(p, &cfg, err, sizeof(err)), 0);
	assert_int_equal(config_check_files(cfg, err, sizeof(err)), ERR_CONFIG);
	assert_non_null(strstr(err, "empty secret file"));
	config_free(cfg);
}

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[300];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_set),
		cmocka_unit_test(test_errors_name_line_and_key),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_secret_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
