/*
 * main_provd.c: the provd program — configuration check, database
 * migrations, CA initialisation, API tokens, web console accounts, the
 * daemon itself, and the internal "signer" entry point that the daemon
 * re-executes.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "common/common.h"
#include "ca/ca.h"
#include "db/db.h"
#include "server/server.h"

#define DEFAULT_CONF "/etc/provd/provd.conf"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: provd [-c FILE] [-d] COMMAND\n"
	    "       provd [-c FILE] -n            check the configuration\n"
	    "\n"
	    "commands:\n"
	    "  run                          run the daemon in the foreground\n"
	    "  migrate                      apply database migrations\n"
	    "  ca init [--cn NAME] [--org ORG] [--two-tier [--root-key-out FILE]] [--days N] [--force]\n"
	    "          [--keystore file|tpm2 [--tcti TCTI]]\n"
	    "  ca init --chain FILE       (ca.mode cmp: the external CA's chain, no key)\n"
	    "  ca status\n"
	    "  ca init --import-cert FILE --import-key FILE [--force]\n"
	    "  ca ocsp-cert [--days N]      new OCSP responder key and certificate\n"
	    "  token add --role operator|security|authorizer|admin [--name NAME]\n"
	    "  admin add NAME --role viewer|operator|security|admin [--password-file FILE]\n"
	    "  admin passwd NAME [--password-file FILE]\n"
	    "  admin list | remove NAME | disable NAME | enable NAME\n"
	    "                               web console accounts\n"
	    "  audit verify                 verify the audit log's hash chain\n"
	    "\n"
	    "options:\n"
	    "  -c FILE   configuration file (default $PROVD_CONF or " DEFAULT_CONF ")\n"
	    "  -d        debug logging\n"
	    "  -n        check the configuration and exit\n");
}

static int
load_config(const char *path, struct config **cfg, int debug)
{
	char err[512];

	if (config_load(path, cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "provd: %s\n", err);
		return -1;
	}
	log_init("provd", debug ? LOG_LVL_DEBUG : (*cfg)->log_level, (*cfg)->log_json,
	    (*cfg)->log_syslog);
	return 0;
}

static int
cmd_check(const char *conf)
{
	struct config *cfg = NULL;
	char err[512];

	if (config_load(conf, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "provd: %s\n", err);
		return 1;
	}
	if (config_check_files(cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "provd: %s: %s\n", conf, err);
		config_free(cfg);
		return 1;
	}
	config_free(cfg);
	printf("configuration OK\n");
	return 0;
}

static int
cmd_migrate(const struct config *cfg)
{
	struct db *db = NULL;
	int applied = 0, version = 0, r;

	if ((r = db_open(cfg, &db)) != 0) {
		fprintf(stderr, "provd: cannot connect to the database: %s\n", provd_strerror(r));
		return 1;
	}
	if ((r = db_migrate(db, &applied)) != 0 || (r = db_schema_version(db, &version)) != 0) {
		fprintf(stderr, "provd: migration failed: %s (see the log above)\n", provd_strerror(r));
		db_close(db);
		return 1;
	}
	printf("migrations: %d applied, schema version %d\n", applied, version);
	db_close(db);
	return 0;
}

/* The OCSP responder's key and certificate, issued by the CA in ca_dir. */
static int
make_ocsp_cert(const struct config *cfg, const char *tcti, int days)
{
	char err[512], na[32];
	int64_t not_after = 0;

	if (ca_ocsp_cert_make(cfg->ca_dir, tcti, days, &not_after, err, sizeof(err)) != 0) {
		fprintf(stderr, "provd: OCSP responder certificate: %s\n", err);
		return 1;
	}
	time_format_rfc3339((time_t)not_after, na, sizeof(na));
	printf("OCSP responder certificate %s/ocsp.crt valid until %s\n", cfg->ca_dir, na);
	return 0;
}

/* provd ca ocsp-cert [--days N] */
static int
cmd_ca_ocsp(const struct config *cfg, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "days", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	int64_t days = cfg->ocsp_cert_days;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'D':
			if (parse_int64(optarg, 1, CA_OCSP_DAYS_MAX, &days) != 0) {
				fprintf(stderr, "provd: --days must be 1..%d\n", CA_OCSP_DAYS_MAX);
				return 2;
			}
			break;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (make_ocsp_cert(cfg, cfg->ca_tcti, (int)days) != 0)
		return 1;
	printf("a running provd takes it up within 10 seconds (checked as OCSP requests arrive)\n");
	return 0;
}

/* provd ca status: which CA signs, and whether it can sign now. */
static int
cmd_ca_status(const struct config *cfg)
{
	char why[400], na[32];
	struct ca_cmp *c = NULL;
	int64_t nb = 0, not_after = 0;
	struct timespec t0, t1;
	int r;

	if (ca_chain_validity(cfg->ca_dir, why, sizeof(why), &nb, &not_after) != 0) {
		fprintf(stderr, "provd: %s\n", why);
		return 1;
	}
	time_format_rfc3339((time_t)not_after, na, sizeof(na));
	printf("CA certificate: %s, valid until %s\n", why, na);
	if (strcmp(cfg->ca_mode, "cmp") != 0) {
		r = ca_key_status(cfg->ca_dir, cfg->ca_tcti, why, sizeof(why));
		printf("CA: built-in, %s\n", why);
		return r == 0 ? 0 : 1;
	}
	if ((r = ca_cmp_open(cfg, &c)) != 0) {
		fprintf(stderr, "provd: the external CA's settings: %s (see above)\n",
		    provd_strerror(r));
		return 1;
	}
	printf("CA: external, CMP at %s\n", ca_cmp_url(c));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = ca_cmp_ping(c, why, sizeof(why));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (r == 0)
		printf("the CA answers (a general message in %.0f ms)\n",
		    (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	else
		printf("the CA does not answer: %s\n", why);
	ca_cmp_close(c);
	return r == 0 ? 0 : 1;
}

static int
cmd_ca(const struct config *cfg, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "cn", required_argument, NULL, 'C' },
		{ "org", required_argument, NULL, 'O' },
		{ "two-tier", no_argument, NULL, 'T' },
		{ "days", required_argument, NULL, 'D' },
		{ "import-cert", required_argument, NULL, 'I' },
		{ "import-key", required_argument, NULL, 'K' },
		{ "force", no_argument, NULL, 'F' },
		{ "root-key-out", required_argument, NULL, 'R' },
		{ "keystore", required_argument, NULL, 'S' },
		{ "tcti", required_argument, NULL, 't' },
		{ "chain", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	struct ca_init_opts o = { .dir = cfg->ca_dir, .days = 3650, .tcti = cfg->ca_tcti };
	char err[512];
	int c;
	int64_t days;

	if (argc >= 2 && strcmp(argv[1], "ocsp-cert") == 0)
		return cmd_ca_ocsp(cfg, argc - 1, argv + 1);
	if (argc == 2 && strcmp(argv[1], "status") == 0)
		return cmd_ca_status(cfg);
	if (argc < 2 || strcmp(argv[1], "init") != 0) {
		usage(stderr);
		return 2;
	}
	optind = 0;
	argv++;
	argc--;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'C': o.common_name = optarg; break;
		case 'O': o.organization = optarg; break;
		case 'T': o.two_tier = 1; break;
		case 'D':
			if (parse_int64(optarg, 1, 36500, &days) != 0) {
				fprintf(stderr, "provd: --days must be 1..36500\n");
				return 2;
			}
			o.days = (int)days;
			break;
		case 'I': o.import_cert = optarg; break;
		case 'K': o.import_key = optarg; break;
		case 'F': o.force = 1; break;
		case 'R': o.root_key_out = optarg; break;
		case 'S': o.keystore = optarg; break;
		case 't': o.tcti = optarg; break;
		case 'c': o.external_chain = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	if (o.root_key_out != NULL && !o.two_tier) {
		fprintf(stderr, "provd: --root-key-out goes with --two-tier\n");
		return 2;
	}
	if (optind != argc || (o.import_cert == NULL) != (o.import_key == NULL)) {
		usage(stderr);
		return 2;
	}
	if (ca_init(&o, err, sizeof(err)) != 0) {
		fprintf(stderr, "provd: ca init: %s\n", err);
		return 1;
	}
	printf("CA ready in %s (chain.pem is what devices receive)\n", cfg->ca_dir);
	if (o.external_chain != NULL) {
		printf("the external CA signs (ca.mode = cmp); provd keeps no CA key\n");
		return 0;
	}
	/* the responder certificate needs the CA key, which provd run never reads */
	if (make_ocsp_cert(cfg, o.tcti, (int)cfg->ocsp_cert_days) != 0) {
		fprintf(stderr, "provd: the CA is ready; make the OCSP responder certificate "
		    "with \"provd ca ocsp-cert\"\n");
		return 1;
	}
	return 0;
}

static int
cmd_token(const struct config *cfg, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "role", required_argument, NULL, 'r' },
		{ "name", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	enum db_role role = DB_ROLE_NONE;
	const char *name = NULL;
	char defname[64];
	struct db *db = NULL;
	char *token = NULL;
	int c, r;

	if (argc < 2 || strcmp(argv[1], "add") != 0) {
		usage(stderr);
		return 2;
	}
	optind = 0;
	argv++;
	argc--;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (db_role_parse(optarg, &role) != 0) {
				fprintf(stderr, "provd: unknown role \"%s\" (operator, security, authorizer, admin)\n", optarg);
				return 2;
			}
			break;
		case 'n': name = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	if (role == DB_ROLE_NONE || optind != argc) {
		fprintf(stderr, "provd: token add needs --role\n");
		return 2;
	}
	if (name == NULL) {
		snprintf(defname, sizeof(defname), "%s-%ld", db_role_name(role), (long)time(NULL));
		name = defname;
	}
	if ((r = db_open(cfg, &db)) != 0) {
		fprintf(stderr, "provd: cannot connect to the database: %s\n", provd_strerror(r));
		return 1;
	}
	r = db_token_add(db, name, role, &token);
	db_close(db);
	if (r != 0) {
		fprintf(stderr, "provd: token add: %s%s\n", provd_strerror(r),
		    r == ERR_CONFLICT ? " (a token with this name exists)" : "");
		return 1;
	}
	/* shown once; only its hash is stored */
	printf("%s\n", token);
	fflush(stdout);
	secret_free(token);
	fprintf(stderr, "token \"%s\" with role %s created; store it now, it is not shown again\n",
	    name, db_role_name(role));
	return 0;
}

/* ---------------------------------------------------------------------
 * Web console accounts: provd admin ... (docs/console.md). Made by the
 * local administrator, so audited with the actor "system", like tokens.
 */
/* Reads one line from the terminal into buf[len] without echo. Returns
 * the length, len when the line was longer than len - 1 bytes, or -1
 * without a terminal. */
static ssize_t
tty_read_secret(const char *prompt, char *buf, size_t len)
{
	struct termios old, quiet;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC), echo_off = 0;
	size_t n = 0, seen = 0;
	char ch;

	if (fd < 0)
		return -1;
	if (write(fd, prompt, strlen(prompt)) < 0) {
		close(fd);
		return -1;
	}
	if (tcgetattr(fd, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		echo_off = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
	}
	while (read(fd, &ch, 1) == 1 && ch != '\n' && ch != '\r') {
		if (n + 1 < len)
			buf[n++] = ch;
		seen++;
	}
	buf[n] = '\0';
	OPENSSL_cleanse(&ch, sizeof(ch));
	if (echo_off) {
		(void)tcsetattr(fd, TCSAFLUSH, &old);
		(void)!write(fd, "\n", 1);
	}
	close(fd);
	return seen > n ? (ssize_t)len : (ssize_t)n;
}

/* A new password from file (its first line) or, without one, typed twice
 * on the terminal. *pw is on the secure heap (secret_free()). Prints the
 * problem and returns 1 or 2 on failure. */
static int
admin_password(const char *file, char **pw, size_t *len)
{
	char *a = NULL, *b = NULL;
	ssize_t na, nb;
	int rc = 1;

	*pw = NULL;
	if (file != NULL) {
		if (secret_read_file(file, &a) != 0) {
			fprintf(stderr, "provd: %s: cannot read a password from it (first line, "
			    "not empty)\n", file);
			return 1;
		}
		na = (ssize_t)strlen(a);
	} else {
		if ((a = OPENSSL_secure_zalloc(DB_PASSWORD_MAX + 2)) == NULL ||
		    (b = OPENSSL_secure_zalloc(DB_PASSWORD_MAX + 2)) == NULL) {
			fprintf(stderr, "provd: out of memory\n");
			goto out;
		}
		if ((na = tty_read_secret("New password: ", a, DB_PASSWORD_MAX + 2)) < 0) {
			fprintf(stderr, "provd: no terminal to ask for the password on; "
			    "use --password-file FILE\n");
			rc = 2;
			goto out;
		}
		if ((nb = tty_read_secret("Again: ", b, DB_PASSWORD_MAX + 2)) < 0 || na != nb ||
		    CRYPTO_memcmp(a, b, (size_t)na) != 0) {
			fprintf(stderr, "provd: the two passwords differ\n");
			goto out;
		}
	}
	if (na < DB_PASSWORD_MIN || na > DB_PASSWORD_MAX) {
		fprintf(stderr, "provd: a password is %d to %d bytes long\n", DB_PASSWORD_MIN,
		    DB_PASSWORD_MAX);
		goto out;
	}
	*pw = a;
	*len = (size_t)na;
	a = NULL;
	rc = 0;
out:
	secret_free(a);
	secret_free(b);
	return rc;
}

static int
admin_db(const struct config *cfg, struct db **db)
{
	int r;

	if ((r = db_open(cfg, db)) != 0) {
		fprintf(stderr, "provd: cannot connect to the database: %s\n", provd_strerror(r));
		return 1;
	}
	return 0;
}

static int
admin_fail(const char *what, const char *name, int r)
{
	fprintf(stderr, "provd: admin %s %s: %s\n", what, name,
	    r == ERR_NOT_FOUND ? "no such account" :
	    r == ERR_CONFLICT ? "an account with this name exists" : provd_strerror(r));
	return 1;
}

static int
admin_list(const struct config *cfg)
{
	struct db *db = NULL;
	struct db_account_info *v = NULL;
	char last[32], created[32];
	size_t n = 0;
	int r;

	if (admin_db(cfg, &db) != 0)
		return 1;
	r = db_account_list(db, &v, &n);
	db_close(db);
	if (r != 0) {
		fprintf(stderr, "provd: admin list: %s\n", provd_strerror(r));
		return 1;
	}
	printf("%-24s %-8s %-8s %8s  %-20s  %s\n", "NAME", "ROLE", "STATUS", "SESSIONS",
	    "LAST LOGIN", "CREATED");
	for (size_t i = 0; i < n; i++) {
		if (v[i].last_login_at != 0)
			time_format_rfc3339((time_t)v[i].last_login_at, last, sizeof(last));
		else
			str_copy(last, sizeof(last), "never");
		time_format_rfc3339((time_t)v[i].created_at, created, sizeof(created));
		printf("%-24s %-8s %-8s %8lld  %-20s  %s\n", v[i].name, db_role_name(v[i].role),
		    v[i].disabled ? "disabled" : "enabled", (long long)v[i].sessions, last, created);
	}
	free(v);
	return 0;
}

static int
cmd_admin(const struct config *cfg, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "role", required_argument, NULL, 'r' },
		{ "password-file", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	enum db_role role = DB_ROLE_NONE;
	const char *sub, *name, *pwfile = NULL;
	struct db *db = NULL;
	char *pw = NULL;
	size_t pwlen = 0;
	int64_t ended = 0;
	int c, r, rc;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	sub = argv[1];
	if (strcmp(sub, "list") == 0 && argc == 2)
		return admin_list(cfg);
	optind = 0;
	argv++;
	argc--;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (db_role_parse(optarg, &role) != 0 || role == DB_ROLE_AUTHORIZER) {
				fprintf(stderr, "provd: a console account's role is viewer, operator, "
				    "security or admin, not \"%s\"\n", optarg);
				return 2;
			}
			break;
		case 'p': pwfile = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	/* one account name after the subcommand, options anywhere */
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	name = argv[optind];
	if (db_account_name_check(name) != 0) {
		fprintf(stderr, "provd: an account name is 1 to %d bytes of printable ASCII "
		    "without spaces\n", DB_ACCOUNT_NAME_MAX);
		return 2;
	}
	if ((strcmp(sub, "add") == 0) != (role != DB_ROLE_NONE) ||
	    (pwfile != NULL && strcmp(sub, "add") != 0 && strcmp(sub, "passwd") != 0)) {
		fprintf(stderr, "provd: --role goes with admin add (and is needed there); "
		    "--password-file with add and passwd\n");
		return 2;
	}
	if (strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0) {
		if ((rc = admin_password(pwfile, &pw, &pwlen)) != 0)
			return rc;
	} else if (strcmp(sub, "remove") != 0 && strcmp(sub, "disable") != 0 &&
	    strcmp(sub, "enable") != 0) {
		usage(stderr);
		return 2;
	}
	if (admin_db(cfg, &db) != 0) {
		secret_free(pw);
		return 1;
	}
	rc = 0;
	if (strcmp(sub, "add") == 0) {
		if ((r = db_account_add(db, name, role, pw, pwlen, "system")) != 0)
			rc = admin_fail(sub, name, r);
		else
			printf("console account %s (%s) added\n", name, db_role_name(role));
	} else if (strcmp(sub, "passwd") == 0) {
		if ((r = db_account_passwd(db, name, pw, pwlen, "system", &ended)) != 0)
			rc = admin_fail(sub, name, r);
		else
			printf("password of %s changed; %lld session(s) ended\n", name,
			    (long long)ended);
	} else if (strcmp(sub, "remove") == 0) {
		if ((r = db_account_remove(db, name, "system", &ended)) != 0)
			rc = admin_fail(sub, name, r);
		else
			printf("console account %s removed; %lld session(s) ended\n", name,
			    (long long)ended);
	} else {
		int dis = strcmp(sub, "disable") == 0;
		if ((r = db_account_set_disabled(db, name, dis, "system", &ended)) != 0)
			rc = admin_fail(sub, name, r);
		else if (ended < 0)
			printf("console account %s was already %s\n", name, dis ? "disabled" : "enabled");
		else if (dis)
			printf("console account %s disabled; %lld session(s) ended\n", name,
			    (long long)ended);
		else
			printf("console account %s enabled\n", name);
	}
	secret_free(pw);
	db_close(db);
	return rc;
}

static int
cmd_audit(const struct config *cfg, int argc, char **argv)
{
	struct db *db = NULL;
	struct db_audit_report rep = { 0 };
	int r;

	if (argc != 2 || strcmp(argv[1], "verify") != 0) {
		usage(stderr);
		return 2;
	}
	if ((r = db_open(cfg, &db)) != 0) {
		fprintf(stderr, "provd: cannot connect to the database: %s\n", provd_strerror(r));
		return 1;
	}
	r = db_audit_verify(db, &rep);
	db_close(db);
	if (r != 0) {
		fprintf(stderr, "provd: audit verify: %s\n", provd_strerror(r));
		return 1;
	}
	if (rep.first_bad != 0) {
		printf("audit chain BROKEN at seq %lld: %s (%lld rows checked)\n",
		    (long long)rep.first_bad, rep.why, (long long)rep.rows);
		return 1;
	}
	printf("audit chain OK (%lld rows)\n", (long long)rep.rows);
	return 0;
}

static int
cmd_run(const struct config *cfg, const char *conf)
{
	struct server *srv = NULL;
	char self[PATH_MAX], abs_conf[PATH_MAX];
	sigset_t set;
	ssize_t n;
	int sig;

	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) < 0) {
		fprintf(stderr, "provd: cannot find its own executable: %s\n", strerror(errno));
		return 1;
	}
	self[n] = '\0';
	if (realpath(conf, abs_conf) == NULL) {
		fprintf(stderr, "provd: %s: %s\n", conf, strerror(errno));
		return 1;
	}
	/* signals are taken by sigwait below; every thread inherits the mask */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (server_start(cfg, self, abs_conf, &srv) != 0) {
		fprintf(stderr, "provd: cannot start (see the log above)\n");
		return 1;
	}
	printf("provd listening on %s:%d\n", cfg->listen, server_port(srv));
	fflush(stdout);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP: configuration is read at start; restart provd to apply changes");
			continue;
		}
		break;
	}
	log_info("signal %d: shutting down", sig);
	server_stop(srv);
	return 0;
}

static int
cmd_signer(int argc, char **argv)
{
	struct config *cfg = NULL;
	const char *conf = NULL;
	int64_t fd = -1;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--fd") == 0 && parse_int64(argv[i + 1], 0, 1024, &fd) == 0)
			continue;
		if (strcmp(argv[i], "-c") == 0) {
			conf = argv[i + 1];
			continue;
		}
		fd = -1;
		break;
	}
	if (fd < 0 || conf == NULL) {
		fprintf(stderr, "provd signer: internal command, started by provd run\n");
		return 2;
	}
	CRYPTO_secure_malloc_init(1 << 16, 32);
	if (load_config(conf, &cfg, 0) != 0)
		return 1;
	log_init("provd-signer", cfg->log_level, cfg->log_json, cfg->log_syslog);
	int r = ca_signer_main((int)fd, cfg);
	config_free(cfg);
	return r;
}

int
main(int argc, char **argv)
{
	const char *conf = getenv("PROVD_CONF");
	struct config *cfg = NULL;
	int c, check = 0, debug = 0, rc;

	if (conf == NULL || *conf == '\0')
		conf = DEFAULT_CONF;
	if (argc > 1 && strcmp(argv[1], "signer") == 0)
		return cmd_signer(argc - 1, argv + 1);
	while ((c = getopt(argc, argv, "+c:dnh")) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'd': debug = 1; break;
		case 'n': check = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (check)
		return cmd_check(conf);
	if (argc < 1) {
		usage(stderr);
		return 2;
	}
	/* PINs and key material of up to radio.max_enrollments intakes at once */
	CRYPTO_secure_malloc_init(1 << 20, 32);
	if (load_config(conf, &cfg, debug) != 0)
		return 1;
	if (strcmp(argv[0], "run") == 0 && argc == 1)
		rc = cmd_run(cfg, conf);
	else if (strcmp(argv[0], "migrate") == 0 && argc == 1)
		rc = cmd_migrate(cfg);
	else if (strcmp(argv[0], "ca") == 0)
		rc = cmd_ca(cfg, argc, argv);
	else if (strcmp(argv[0], "token") == 0)
		rc = cmd_token(cfg, argc, argv);
	else if (strcmp(argv[0], "audit") == 0)
		rc = cmd_audit(cfg, argc, argv);
	else if (strcmp(argv[0], "admin") == 0)
		rc = cmd_admin(cfg, argc, argv);
	else {
		usage(stderr);
		rc = 2;
	}
	config_free(cfg);
	return rc;
}
