/*
 * config.c: the provd configuration file — one INI file read with libinih,
 * every key described once in keytab[] with its type, bounds and default.
 * Unknown sections and keys, duplicates and out-of-range values are errors
 * reported as "file:line: message".
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <ini.h>
#include <openssl/crypto.h>

#include "common/common.h"
#include "paths.h"		/* PROVD_CONSOLE_DIR, from the Makefile's PREFIX */

enum key_type { K_STR, K_INT, K_BOOL, K_LEVEL };

struct key_def {
	const char *section;
	const char *name;
	enum key_type type;
	size_t off;
	int64_t min, max;	/* K_INT bounds; K_STR maximum length */
	const char *def;	/* default as text; NULL: unset */
};

#define O(f) offsetof(struct config, f)
static const struct key_def keytab[] = {
	{ "server", "listen", K_STR, O(listen), 1, 255, "127.0.0.1" },
	{ "server", "port", K_INT, O(port), 0, 65535, "8440" },
	{ "server", "threads", K_INT, O(threads), 0, 256, "0" },
	{ "server", "max_body", K_INT, O(max_body), 1024, 16 << 20, "65536" },
	{ "server", "max_connections", K_INT, O(max_connections), 16, 100000, "1024" },
	{ "server", "tls_cert", K_STR, O(tls_cert), 1, PATH_MAX, NULL },
	{ "server", "tls_key", K_STR, O(tls_key), 1, PATH_MAX, NULL },
	{ "server", "tls_client_ca", K_STR, O(tls_client_ca), 1, PATH_MAX, NULL },
	{ "database", "conninfo", K_STR, O(db_conninfo), 1, 1024, "host=127.0.0.1 dbname=provd" },
	{ "database", "password_file", K_STR, O(db_password_file), 1, PATH_MAX, NULL },
	{ "database", "pool", K_INT, O(db_pool), 1, 128, "8" },
	{ "database", "batch_max", K_INT, O(db_batch_max), 1, 1024, "64" },
	{ "ldap", "uri", K_STR, O(ldap_uri), 1, 1024, NULL },
	{ "ldap", "bind_dn", K_STR, O(ldap_bind_dn), 1, 1024, NULL },
	{ "ldap", "password_file", K_STR, O(ldap_password_file), 1, PATH_MAX, NULL },
	{ "ldap", "base_dn", K_STR, O(ldap_base_dn), 1, 1024, "dc=example,dc=org" },
	{ "ldap", "batch", K_INT, O(ldap_batch), 1, 10000, "200" },
	{ "ldap", "retry_max_s", K_INT, O(ldap_retry_max_s), 1, 3600, "60" },
	{ "ca", "dir", K_STR, O(ca_dir), 1, PATH_MAX, "/var/lib/provd/ca" },
	{ "ca", "validity_days", K_INT, O(validity_days), 1, 3650, "365" },
	{ "ca", "backdate_s", K_INT, O(backdate_s), 0, 86400, "300" },
	{ "ca", "crl_url", K_STR, O(crl_url), 1, 1024, NULL },
	{ "ca", "ocsp_url", K_STR, O(ocsp_url), 1, 1024, NULL },
	{ "ca", "crl_next_update_s", K_INT, O(crl_next_update_s), 60, 31 * 86400, "86400" },
	{ "ca", "crl_base_interval_s", K_INT, O(crl_base_interval_s), 60, 31 * 86400, "43200" },
	{ "ca", "allow_rsa", K_BOOL, O(allow_rsa), 0, 1, "no" },
	{ "ca", "max_csr", K_INT, O(max_csr), 256, 65536, "8192" },
	{ "ca", "ocsp_cert_days", K_INT, O(ocsp_cert_days), 1, 3650, "30" },
	{ "ca", "ocsp_max_age_s", K_INT, O(ocsp_max_age_s), 0, 86400, "300" },
	{ "ca", "tcti", K_STR, O(ca_tcti), 1, 255, NULL },
	{ "ca", "mode", K_STR, O(ca_mode), 1, 16, "builtin" },
	{ "ca", "cmp_url", K_STR, O(cmp_url), 1, 1024, NULL },
	{ "ca", "cmp_ref", K_STR, O(cmp_ref), 1, 128, NULL },
	{ "ca", "cmp_secret_file", K_STR, O(cmp_secret_file), 1, PATH_MAX, NULL },
	{ "ca", "cmp_cert", K_STR, O(cmp_cert), 1, PATH_MAX, NULL },
	{ "ca", "cmp_key", K_STR, O(cmp_key), 1, PATH_MAX, NULL },
	{ "ca", "cmp_trusted", K_STR, O(cmp_trusted), 1, PATH_MAX, NULL },
	{ "ca", "cmp_timeout_s", K_INT, O(cmp_timeout_s), 1, 300, "10" },
	{ "ca", "cmp_retries", K_INT, O(cmp_retries), 0, 10, "3" },
	{ "authz", "cache", K_BOOL, O(authz_cache), 0, 1, "yes" },
	{ "authz", "ttl_s", K_INT, O(authz_ttl_s), 0, 86400, "30" },
	{ "authz", "batch_max", K_INT, O(authz_batch_max), 1, 1000, "100" },
	{ "radio", "backend", K_STR, O(radio_backend), 1, 16, NULL },
	{ "radio", "sim_dir", K_STR, O(radio_sim_dir), 1, PATH_MAX, NULL },
	{ "radio", "adapter", K_STR, O(radio_adapter), 1, 16, "hci0" },
	{ "radio", "inquiry_ms", K_INT, O(radio_inquiry_ms), 0, 60000, "3000" },
	{ "radio", "timeout_ms", K_INT, O(radio_timeout_ms), 100, 600000, "15000" },
	{ "radio", "max_enrollments", K_INT, O(radio_max_enrollments), 1, 1024, "32" },
	{ "radio", "keygen", K_STR, O(radio_keygen), 1, 16, "auto" },
	{ "console", "dir", K_STR, O(console_dir), 1, PATH_MAX, PROVD_CONSOLE_DIR },
	{ "console", "session_idle_s", K_INT, O(console_session_idle_s), 1, 86400, "1800" },
	{ "console", "session_max_s", K_INT, O(console_session_max_s), 1, 30 * 86400, "43200" },
	{ "console", "login_fail_max", K_INT, O(console_login_fail_max), 1, 1000, "5" },
	{ "console", "login_fail_max_addr", K_INT, O(console_login_fail_max_addr), 1, 100000, "20" },
	{ "console", "login_window_s", K_INT, O(console_login_window_s), 1, 86400, "900" },
	{ "log", "level", K_LEVEL, O(log_level), 0, 0, "info" },
	{ "log", "json", K_BOOL, O(log_json), 0, 1, "no" },
	{ "log", "syslog", K_BOOL, O(log_syslog), 0, 1, "no" },
};
#undef O
#define NKEYS (sizeof(keytab) / sizeof(keytab[0]))

struct parse_state {
	struct config *cfg;
	char err[256];
	int nerr;
};

static int
parse_bool(const char *v, int *out)
{
	static const char *yes[] = { "yes", "true", "on", "1" };
	static const char *no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return ERR_INVALID;
}

/* Stores value into cfg for key k; writes a message into err on failure. */
static int
set_value(struct config *cfg, const struct key_def *k, const char *v,
    char *err, size_t errlen)
{
	char *base = (char *)cfg;

	switch (k->type) {
	case K_STR: {
		size_t len = strnlen(v, (size_t)k->max + 1);
		if (len < (size_t)k->min || len > (size_t)k->max) {
			snprintf(err, errlen, "%s.%s: length must be %lld..%lld",
			    k->section, k->name, (long long)k->min, (long long)k->max);
			return ERR_CONFIG;
		}
		char **slot = (char **)(base + k->off);
		char *dup = strdup(v);
		if (dup == NULL)
			return ERR_NOMEM;
		free(*slot);
		*slot = dup;
		return 0;
	}
	case K_INT:
		if (parse_int64(v, k->min, k->max, (int64_t *)(base + k->off)) != 0) {
			snprintf(err, errlen, "%s.%s: \"%.40s\" is not an integer in %lld..%lld",
			    k->section, k->name, v, (long long)k->min, (long long)k->max);
			return ERR_CONFIG;
		}
		return 0;
	case K_BOOL:
		if (parse_bool(v, (int *)(base + k->off)) != 0) {
			snprintf(err, errlen, "%s.%s: \"%.40s\" is not yes or no",
			    k->section, k->name, v);
			return ERR_CONFIG;
		}
		return 0;
	case K_LEVEL:
		if (log_level_parse(v, (enum log_level *)(base + k->off)) != 0) {
			snprintf(err, errlen, "%s.%s: \"%.40s\" is not one of error, warn, info, debug",
			    k->section, k->name, v);
			return ERR_CONFIG;
		}
		return 0;
	}
	return ERR_INTERNAL;
}

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *st = user;
	int known_section = 0;

	if (st->nerr)
		return 0;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &keytab[i];
		if (strcmp(k->section, section) != 0)
			continue;
		known_section = 1;
		if (strcmp(k->name, name) != 0)
			continue;
		if (st->cfg->set_mask & (1ull << i)) {
			snprintf(st->err, sizeof(st->err), "%s.%s: set twice", section, name);
			st->nerr++;
			return 0;
		}
		if (set_value(st->cfg, k, value, st->err, sizeof(st->err)) != 0) {
			st->nerr++;
			return 0;
		}
		st->cfg->set_mask |= 1ull << i;
		return 1;
	}
	if (!known_section)
		snprintf(st->err, sizeof(st->err), "unknown section [%s]", section);
	else
		snprintf(st->err, sizeof(st->err), "unknown key \"%s\" in [%s]", name, section);
	st->nerr++;
	return 0;
}

int
config_defaults(struct config **out)
{
	struct config *cfg;
	char err[256];

	_Static_assert(NKEYS <= 64, "set_mask has 64 bits");
	*out = NULL;
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < NKEYS; i++) {
		if (keytab[i].def == NULL)
			continue;
		if (set_value(cfg, &keytab[i], keytab[i].def, err, sizeof(err)) != 0) {
			config_free(cfg);
			return ERR_INTERNAL;
		}
	}
	*out = cfg;
	return 0;
}

/* Cross-key rules. */
static int
check_consistency(const struct config *cfg, char *err, size_t errlen)
{
	if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
		snprintf(err, errlen, "server.tls_cert and server.tls_key go together");
		return ERR_CONFIG;
	}
	if (cfg->tls_client_ca != NULL && cfg->tls_cert == NULL) {
		snprintf(err, errlen, "server.tls_client_ca needs server.tls_cert");
		return ERR_CONFIG;
	}
	if (cfg->ldap_uri != NULL && cfg->ldap_bind_dn != NULL &&
	    cfg->ldap_password_file == NULL) {
		snprintf(err, errlen, "ldap.bind_dn needs ldap.password_file");
		return ERR_CONFIG;
	}
	if (cfg->radio_backend != NULL && strcmp(cfg->radio_backend, "sim") != 0 &&
	    strcmp(cfg->radio_backend, "bluez") != 0) {
		snprintf(err, errlen, "radio.backend: \"%.16s\" is not sim or bluez",
		    cfg->radio_backend);
		return ERR_CONFIG;
	}
	if (cfg->radio_backend != NULL && strcmp(cfg->radio_backend, "sim") == 0 &&
	    cfg->radio_sim_dir == NULL) {
		snprintf(err, errlen, "radio.backend sim needs radio.sim_dir");
		return ERR_CONFIG;
	}
	if (strcmp(cfg->radio_keygen, "auto") != 0 && strcmp(cfg->radio_keygen, "device") != 0 &&
	    strcmp(cfg->radio_keygen, "server") != 0) {
		snprintf(err, errlen, "radio.keygen: \"%.16s\" is not auto, device or server",
		    cfg->radio_keygen);
		return ERR_CONFIG;
	}
	if (strcmp(cfg->ca_mode, "builtin") != 0 && strcmp(cfg->ca_mode, "cmp") != 0) {
		snprintf(err, errlen, "ca.mode: \"%.16s\" is not builtin or cmp", cfg->ca_mode);
		return ERR_CONFIG;
	}
	if (strcmp(cfg->ca_mode, "cmp") == 0) {
		if (cfg->cmp_url == NULL) {
			snprintf(err, errlen, "ca.mode cmp needs ca.cmp_url");
			return ERR_CONFIG;
		}
		if ((cfg->cmp_secret_file != NULL) == (cfg->cmp_cert != NULL)) {
			snprintf(err, errlen, "ca.mode cmp needs one of ca.cmp_secret_file (with "
			    "ca.cmp_ref) or ca.cmp_cert (with ca.cmp_key)");
			return ERR_CONFIG;
		}
		if (cfg->cmp_secret_file != NULL && cfg->cmp_ref == NULL) {
			snprintf(err, errlen, "ca.cmp_secret_file needs ca.cmp_ref");
			return ERR_CONFIG;
		}
		if ((cfg->cmp_cert != NULL) != (cfg->cmp_key != NULL)) {
			snprintf(err, errlen, "ca.cmp_cert and ca.cmp_key go together");
			return ERR_CONFIG;
		}
		if (cfg->cmp_cert != NULL && cfg->cmp_trusted == NULL) {
			snprintf(err, errlen, "ca.cmp_cert needs ca.cmp_trusted (who signs the "
			    "CA's answers)");
			return ERR_CONFIG;
		}
	}
	/* a base CRL is replaced before it expires (routes.c serves the newest) */
	if (cfg->crl_base_interval_s > cfg->crl_next_update_s) {
		snprintf(err, errlen, "ca.crl_base_interval_s (%lld) must not exceed "
		    "ca.crl_next_update_s (%lld)", (long long)cfg->crl_base_interval_s,
		    (long long)cfg->crl_next_update_s);
		return ERR_CONFIG;
	}
	if (cfg->console_session_idle_s > cfg->console_session_max_s) {
		snprintf(err, errlen, "console.session_idle_s (%lld) must not exceed "
		    "console.session_max_s (%lld)", (long long)cfg->console_session_idle_s,
		    (long long)cfg->console_session_max_s);
		return ERR_CONFIG;
	}
	if (strstr(cfg->db_conninfo, "password") != NULL) {
		snprintf(err, errlen, "database.conninfo must not hold a password; use database.password_file");
		return ERR_CONFIG;
	}
	return 0;
}

int
config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	struct parse_state st = { 0 };
	struct config *cfg = NULL;
	FILE *f;
	int line, r;

	*out = NULL;
	if ((r = config_defaults(&cfg)) != 0) {
		snprintf(err, errlen, "%s: %s", path, provd_strerror(r));
		return r;
	}
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		config_free(cfg);
		return ERR_CONFIG;
	}
	st.cfg = cfg;
	line = ini_parse_file(f, handler, &st);
	fclose(f);
	if (line != 0) {
		if (line < 0)
			snprintf(err, errlen, "%s: cannot read", path);
		else if (st.nerr)
			snprintf(err, errlen, "%s:%d: %s", path, line, st.err);
		else
			snprintf(err, errlen, "%s:%d: syntax error", path, line);
		config_free(cfg);
		return ERR_CONFIG;
	}
	/* unset, the base interval follows a shorter CRL lifetime */
	if (!config_is_set(cfg, "ca.crl_base_interval_s") &&
	    cfg->crl_base_interval_s > cfg->crl_next_update_s)
		cfg->crl_base_interval_s = cfg->crl_next_update_s;
	char why[256];
	if (check_consistency(cfg, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		config_free(cfg);
		return ERR_CONFIG;
	}
	*out = cfg;
	return 0;
}

int
config_check_files(const struct config *cfg, char *err, size_t errlen)
{
	const struct {
		const char *key;
		const char *path;
		int secret;
	} files[] = {
		{ "database.password_file", cfg->db_password_file, 1 },
		{ "ldap.password_file", cfg->ldap_password_file, 1 },
		{ "server.tls_cert", cfg->tls_cert, 0 },
		{ "server.tls_key", cfg->tls_key, 0 },
		{ "server.tls_client_ca", cfg->tls_client_ca, 0 },
	};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (files[i].path == NULL)
			continue;
		if (files[i].secret) {
			char *s = NULL;
			int r = secret_read_file(files[i].path, &s);
			secret_free(s);
			if (r != 0) {
				snprintf(err, errlen, "%s: %s: %s", files[i].key, files[i].path,
				    r == ERR_INVALID ? "empty secret file" : "cannot read secret file");
				return ERR_CONFIG;
			}
		} else if (access(files[i].path, R_OK) != 0) {
			snprintf(err, errlen, "%s: %s: %s", files[i].key, files[i].path, strerror(errno));
			return ERR_CONFIG;
		}
	}
	/* the default need not exist (the console is then not served); a
	 * directory named in the file must */
	if (config_is_set(cfg, "console.dir")) {
		struct stat st;
		errno = 0;
		if (stat(cfg->console_dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
		    access(cfg->console_dir, R_OK | X_OK) != 0) {
			snprintf(err, errlen, "console.dir: %s: %s", cfg->console_dir,
			    errno != 0 ? strerror(errno) : "not a directory");
			return ERR_CONFIG;
		}
	}
	return 0;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++)
		if (keytab[i].type == K_STR)
			free(*(char **)((char *)cfg + keytab[i].off));
	free(cfg);
}

int
config_is_set(const struct config *cfg, const char *key)
{
	const char *dot = strchr(key, '.');

	if (dot == NULL)
		return 0;
	for (size_t i = 0; i < NKEYS; i++)
		if (strlen(keytab[i].section) == (size_t)(dot - key) &&
		    strncmp(keytab[i].section, key, (size_t)(dot - key)) == 0 &&
		    strcmp(keytab[i].name, dot + 1) == 0)
			return (cfg->set_mask >> i) & 1;
	return 0;
}

/* Appends " password='...'" with libpq quoting (backslash and quote escaped). */
int
config_db_conninfo(const struct config *cfg, char **out)
{
	char *pw = NULL, *buf = NULL;
	size_t cap, o;
	int r;

	*out = NULL;
	if (cfg->db_password_file != NULL &&
	    (r = secret_read_file(cfg->db_password_file, &pw)) != 0) {
		log_errx("cannot read database.password_file %s", cfg->db_password_file);
		return r;
	}
	cap = strlen(cfg->db_conninfo) + (pw ? 2 * strlen(pw) + 16 : 0) + 1;
	if ((buf = OPENSSL_secure_zalloc(cap)) == NULL) {
		secret_free(pw);
		return ERR_NOMEM;
	}
	o = (size_t)snprintf(buf, cap, "%s", cfg->db_conninfo);
	if (pw != NULL) {
		o += (size_t)snprintf(buf + o, cap - o, " password='");
		for (const char *p = pw; *p != '\0'; p++) {
			if (*p == '\'' || *p == '\\')
				buf[o++] = '\\';
			buf[o++] = *p;
		}
		buf[o++] = '\'';
		buf[o] = '\0';
	}
	secret_free(pw);
	*out = buf;
	return 0;
}
