/*
 * console.c: the web console's server side — login sessions over REST
 * (POST, GET and DELETE /v1/session), the session cookie check that
 * http.c's authenticate() calls, and the console's static files from
 * [console] dir. docs/console.md describes the whole; accounts, sessions
 * and the login throttle live in the database (db/console.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "server/server_int.h"

/*
 * A login's scrypt takes about 100 ms and 32 MiB (DB_SCRYPT_*). It runs on
 * LOGIN_THREADS workers of its own, never on an HTTP thread (whose other
 * connections would wait meanwhile), which also bounds the memory logins
 * take at once. Logins past LOGIN_QUEUE_MAX waiting get 503.
 */
#define LOGIN_THREADS 2
#define LOGIN_QUEUE_MAX 64
#define FILE_MAX (2 << 20)		/* bytes of one static file */
#define REL_PATH_MAX 200		/* bytes of a path under the console */

#define CSP "default-src 'self'; script-src 'self'; style-src 'self'; " \
	"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; " \
	"base-uri 'none'; form-action 'self'"

struct login_job {
	struct login_job *next;
	struct req *rq;
	char name[DB_ACCOUNT_NAME_MAX + 1];
	int name_ok;			/* name could be an account's */
	char *pw;			/* secure heap, pwlen + 1 bytes */
	size_t pwlen;
	int pw_ok;			/* DB_PASSWORD_MIN..DB_PASSWORD_MAX bytes */
	char addr[INET6_ADDRSTRLEN];	/* "": unknown */
};

struct console {
	struct server *s;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct login_job *head, *tail;
	size_t queued;
	int stopping;
	pthread_t th[LOGIN_THREADS];
	int nth;
	/* the record an unknown name is checked against, so that it costs
	 * what a known one does */
	char dummy[DB_PWHASH_MAX];
	char *dir;			/* realpath of [console] dir; NULL: none */
	size_t dirlen;
};

static void
job_free(struct login_job *j)
{
	if (j == NULL)
		return;
	if (j->pw != NULL)
		OPENSSL_secure_clear_free(j->pw, j->pwlen + 1);
	free(j);
}

/* The client's address as text, "" when unknown. */
static void
client_addr(struct MHD_Connection *conn, char *out, size_t len)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa;

	out[0] = '\0';
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		    out, (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		    out, (socklen_t)len);
}

/* Set-Cookie for token, or one that deletes the cookie (token NULL). */
static int
set_cookie(struct server *s, struct req *rq, const char *token)
{
	char buf[160];
	int r;

	snprintf(buf, sizeof(buf), "%s=%s; HttpOnly; SameSite=Strict; Path=/%s%s",
	    SESSION_COOKIE, token != NULL ? token : "", token == NULL ? "; Max-Age=0" : "",
	    s->cfg->tls_cert != NULL ? "; Secure" : "");
	r = req_add_header(rq, "Set-Cookie", buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

static json_t *
session_json(struct server *s, const struct db_session *ss)
{
	char exp[32];

	time_format_rfc3339((time_t)ss->expires_at, exp, sizeof(exp));
	return json_pack("{s:s,s:s,s:s,s:s,s:I}", "name", ss->name, "role",
	    db_role_name(ss->role), "csrf_token", ss->csrf, "expires_at", exp,
	    "idle_timeout_s", (json_int_t)s->cfg->console_session_idle_s);
}

/* ---------------------------------------------------------------------
 * Authentication by session cookie (called by http.c).
 */
int
console_authenticate(struct server *s, struct req *rq, const char *cookie, char *why,
    size_t whylen)
{
	const char *h;
	int r;

	r = db_session_check(s->db, cookie, s->cfg->console_session_idle_s, &rq->session);
	if (r == ERR_AUTH || r == ERR_INVALID) {
		msg_set(why, whylen, "The console session has ended or expired; log in again.");
		return ERR_AUTH;
	}
	if (r != 0)
		return r;
	rq->role = rq->session.role;
	snprintf(rq->actor, sizeof(rq->actor), "console:%s", rq->session.name);
	if (strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0)
		return 0;
	/* anything else may change something: the page must prove it is ours */
	h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-CSRF-Token");
	if (h == NULL || strnlen(h, DB_CSRF_LEN + 1) != DB_CSRF_LEN ||
	    CRYPTO_memcmp(h, rq->session.csrf, DB_CSRF_LEN) != 0)
		return ERR_FORBIDDEN;
	return 0;
}

/* ---------------------------------------------------------------------
 * Logins, on the login workers.
 */
static void
login_run(struct server *s, struct console *c, struct login_job *j)
{
	const struct config *cfg = s->cfg;
	struct req *rq = j->rq;
	struct db_login_limits lim = {
		.window_s = cfg->console_login_window_s,
		.max_name = cfg->console_login_fail_max,
		.max_address = cfg->console_login_fail_max_addr,
		.idle_s = cfg->console_session_idle_s,
		.max_s = cfg->console_session_max_s,
	};
	struct db_login l;
	struct db_session ss;
	const char *addr = j->addr[0] != '\0' ? j->addr : NULL, *reason = NULL;
	char *token = NULL, ra[24];
	int r, vr;

	log_set_id(rq->id);
	/* the throttle first: a refused attempt costs no hashing */
	if ((r = db_login_begin(s->db, j->name_ok ? j->name : NULL, addr, &lim, &l)) != 0) {
		req_reply_error(rq, r == ERR_UNAVAILABLE ? ERR_UNAVAILABLE : ERR_DB, NULL);
		goto out;
	}
	if (l.retry_after_s > 0) {
		log_info("login from %s refused for %lld s: too many failed attempts",
		    addr != NULL ? addr : "an unknown address", (long long)l.retry_after_s);
		snprintf(ra, sizeof(ra), "%lld", (long long)l.retry_after_s);
		req_add_header(rq, MHD_HTTP_HEADER_RETRY_AFTER, ra);
		req_reply_status(rq, 429, "too_many_requests",
		    "Too many failed logins; try again later.");
		goto out;
	}
	/* one hash whatever the name: an unknown one against the dummy */
	vr = db_password_verify(j->pw, j->pwlen, l.account != 0 ? l.hash : c->dummy);
	if (vr == ERR_INVALID && l.account != 0)
		log_warnx("the password record of console account %s is malformed", j->name);
	else if (vr != 0 && vr != ERR_AUTH)
		log_warnx("password check failed: %s", provd_strerror(vr));
	if (!j->name_ok)
		reason = "malformed_name";
	else if (l.account == 0)
		reason = "unknown_name";
	else if (vr != 0 || !j->pw_ok)
		reason = "wrong_password";
	else if (l.disabled)
		reason = "disabled";
	if (reason != NULL) {
		/* an unknown name may be a password typed in the wrong field:
		 * neither logged nor audited */
		int known = l.account != 0;
		log_info("login %s%s%s from %s failed: %s", known ? "as \"" : "",
		    known ? j->name : "with an unknown name", known ? "\"" : "",
		    addr != NULL ? addr : "an unknown address", reason);
		if ((r = db_login_failed(s->db, known ? j->name : NULL, addr, reason, rq->id)) != 0) {
			req_reply_error(rq, r == ERR_UNAVAILABLE ? ERR_UNAVAILABLE : ERR_DB, NULL);
			goto out;
		}
		req_reply_error(rq, ERR_AUTH, "The name or the password is wrong.");
		goto out;
	}
	r = db_login_ok(s->db, &l, addr, &lim, rq->id, &token, &ss);
	if (r == ERR_NOT_FOUND) {
		log_info("login as \"%s\": the account was removed or disabled meanwhile", j->name);
		req_reply_error(rq, ERR_AUTH, "The name or the password is wrong.");
		goto out;
	}
	if (r != 0) {
		req_reply_error(rq, r == ERR_UNAVAILABLE ? ERR_UNAVAILABLE : ERR_DB, NULL);
		goto out;
	}
	if (set_cookie(s, rq, token) != 0) {
		/* the session exists but the browser cannot have it: end it */
		(void)db_session_end(s->db, ss.hash, rq->id);
		req_reply_error(rq, ERR_INTERNAL, NULL);
		goto out;
	}
	log_info("console session for \"%s\" (%s) from %s", ss.name, db_role_name(ss.role),
	    addr != NULL ? addr : "an unknown address");
	req_reply_json_or(rq, 201, session_json(s, &ss), ERR_INTERNAL);
out:
	secret_free(token);
	OPENSSL_cleanse(&l, sizeof(l));
	OPENSSL_cleanse(&ss, sizeof(ss));
	log_set_id(NULL);
}

static void *
login_main(void *arg)
{
	struct console *c = arg;
	struct login_job *j;

	for (;;) {
		pthread_mutex_lock(&c->mu);
		while (c->head == NULL && !c->stopping)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->stopping) {
			pthread_mutex_unlock(&c->mu);
			return NULL;
		}
		j = c->head;
		c->head = j->next;
		if (c->head == NULL)
			c->tail = NULL;
		c->queued--;
		pthread_mutex_unlock(&c->mu);
		login_run(c->s, c, j);
		req_complete(j->rq);
		job_free(j);
	}
}

/* POST /v1/session {"name", "password"} */
void
route_session_login(struct server *s, struct req *rq)
{
	static const char *const keys[] = { "name", "password", NULL };
	struct console *c = s->console;
	struct login_job *j = NULL;
	const char *ct = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	json_t *name = json_object_get(rq->json, "name");
	json_t *pw = json_object_get(rq->json, "password");
	char why[120];
	size_t len;

	/* a page elsewhere cannot send this type without the browser asking
	 * first (CORS), which provd never allows: no login from other sites */
	if (ct == NULL || strncmp(ct, "application/json", 16) != 0) {
		req_reply_error(rq, ERR_UNSUPPORTED, "The body must be application/json.");
		return;
	}
	if (json_only_keys(rq->json, keys, why, sizeof(why)) != 0) {
		req_reply_error(rq, ERR_INVALID, why);
		return;
	}
	if (!json_is_string(name) || !json_is_string(pw)) {
		req_reply_error(rq, ERR_INVALID, "\"name\" and \"password\" (strings) are required.");
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		req_reply_error(rq, ERR_NOMEM, NULL);
		return;
	}
	j->rq = rq;
	len = json_string_length(name);
	if (len <= DB_ACCOUNT_NAME_MAX && strlen(json_string_value(name)) == len &&
	    db_account_name_check(json_string_value(name)) == 0) {
		memcpy(j->name, json_string_value(name), len + 1);
		j->name_ok = 1;
	}
	/* a longer password is hashed cut short, and fails */
	len = json_string_length(pw);
	j->pw_ok = len >= DB_PASSWORD_MIN && len <= DB_PASSWORD_MAX;
	j->pwlen = len < DB_PASSWORD_MAX ? len : DB_PASSWORD_MAX;
	if ((j->pw = OPENSSL_secure_malloc(j->pwlen + 1)) == NULL) {
		job_free(j);
		req_reply_error(rq, ERR_NOMEM, NULL);
		return;
	}
	memcpy(j->pw, json_string_value(pw), j->pwlen);
	j->pw[j->pwlen] = '\0';
	client_addr(rq->conn, j->addr, sizeof(j->addr));

	pthread_mutex_lock(&c->mu);
	if (c->stopping || c->queued >= LOGIN_QUEUE_MAX) {
		pthread_mutex_unlock(&c->mu);
		job_free(j);
		log_warnx("%zu logins waiting: refused", (size_t)LOGIN_QUEUE_MAX);
		req_reply_error(rq, ERR_UNAVAILABLE, "Too many logins at once; retry shortly.");
		return;
	}
	req_suspend(rq);
	if (c->tail != NULL)
		c->tail->next = j;
	else
		c->head = j;
	c->tail = j;
	c->queued++;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* GET /v1/session */
void
route_session_get(struct server *s, struct req *rq)
{
	if (rq->auth_by != AUTH_BY_SESSION) {
		req_reply_error(rq, ERR_AUTH, "No console session: log in with POST /v1/session.");
		return;
	}
	req_reply_json_or(rq, 200, session_json(s, &rq->session), ERR_INTERNAL);
}

/* DELETE /v1/session (the CSRF token was checked by authentication) */
void
route_session_logout(struct server *s, struct req *rq)
{
	int r;

	if (rq->auth_by != AUTH_BY_SESSION) {
		req_reply_error(rq, ERR_AUTH, "No console session: log in with POST /v1/session.");
		return;
	}
	r = db_session_end(s->db, rq->session.hash, rq->id);
	if (r != 0 && r != ERR_NOT_FOUND) {
		req_reply_error(rq, r == ERR_UNAVAILABLE ? ERR_UNAVAILABLE : ERR_DB, NULL);
		return;
	}
	log_info("console session of \"%s\" ended by logout", rq->session.name);
	set_cookie(s, rq, NULL);
	req_reply_raw(rq, 204, "", NULL, 0);
}

/* ---------------------------------------------------------------------
 * Static files. Each request opens and reads its file: a few KiB read from
 * the page cache cost about as much as the rest of the request
 * (docs/console.md has the figures), and a new "make install" is served
 * without a restart.
 */
static const struct {
	const char *ext;
	const char *type;
} ctypes[] = {
	{ "html", "text/html; charset=utf-8" },
	{ "js", "text/javascript; charset=utf-8" },
	{ "css", "text/css; charset=utf-8" },
	{ "svg", "image/svg+xml" },
	{ "png", "image/png" },
	{ "ico", "image/x-icon" },
	{ "json", "application/json" },
	{ "woff2", "font/woff2" },
};

static const char *
ctype_of(const char *rel)
{
	const char *dot = strrchr(rel, '.'), *slash = strrchr(rel, '/');

	if (dot == NULL || (slash != NULL && dot < slash))
		return NULL;
	for (size_t i = 0; i < sizeof(ctypes) / sizeof(ctypes[0]); i++)
		if (strcmp(dot + 1, ctypes[i].ext) == 0)
			return ctypes[i].type;
	return NULL;
}

/* A path under the console directory: segments of letters, digits, '.',
 * '_' and '-', none empty or starting with a dot (no "..", no dotfiles). */
static int
rel_path_ok(const char *rel)
{
	size_t len = strnlen(rel, REL_PATH_MAX + 1);
	int seg_start = 1;

	if (len == 0 || len > REL_PATH_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char ch = rel[i];
		if (ch == '/') {
			if (seg_start)
				return 0;	/* empty segment */
			seg_start = 1;
			continue;
		}
		if (seg_start && ch == '.')
			return 0;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return 0;
		seg_start = 0;
	}
	return !seg_start;
}

static int
read_fd_all(int fd, char *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = read(fd, buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return ERR_IO;
		off += (size_t)n;
	}
	return 0;
}

static void
console_headers(struct req *rq)
{
	req_add_header(rq, "Content-Security-Policy", CSP);
	req_add_header(rq, "X-Frame-Options", "DENY");
	req_add_header(rq, "Referrer-Policy", "no-referrer");
}

static void
serve_file(struct server *s, struct req *rq, const char *rel)
{
	struct console *c = s->console;
	char path[PATH_MAX], real[PATH_MAX], etag[80];
	const char *type, *inm;
	struct stat st;
	char *buf = NULL;
	int fd = -1;

	console_headers(rq);
	if (c == NULL || c->dir == NULL) {
		req_reply_error(rq, ERR_NOT_FOUND, "The web console is not installed on this "
		    "server (see [console] dir).");
		return;
	}
	if (!rel_path_ok(rel) || (type = ctype_of(rel)) == NULL ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s", c->dir, rel) >= sizeof(path)) {
		req_reply_error(rq, ERR_NOT_FOUND, "No such file.");
		return;
	}
	/* symbolic links are followed only while they stay inside */
	if (realpath(path, real) == NULL) {
		req_reply_error(rq, ERR_NOT_FOUND, "No such file.");
		return;
	}
	if (strncmp(real, c->dir, c->dirlen) != 0 || real[c->dirlen] != '/' ||
	    !rel_path_ok(real + c->dirlen + 1) || ctype_of(real + c->dirlen + 1) != type) {
		log_info("console file %s refused: it resolves to %s", rel, real);
		req_reply_error(rq, ERR_NOT_FOUND, "No such file.");
		return;
	}
	if ((fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)) < 0 ||
	    fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		req_reply_error(rq, ERR_NOT_FOUND, "No such file.");
		goto out;
	}
	if (st.st_size > FILE_MAX) {
		log_warnx("console file %s is over %d bytes: not served", real, FILE_MAX);
		req_reply_error(rq, ERR_INTERNAL, NULL);
		goto out;
	}
	snprintf(etag, sizeof(etag), "\"%llx-%llx-%llx.%lx\"", (unsigned long long)st.st_ino,
	    (unsigned long long)st.st_size, (unsigned long long)st.st_mtim.tv_sec,
	    (unsigned long)st.st_mtim.tv_nsec);
	req_add_header(rq, "ETag", etag);
	/* no hashed file names yet: every file is checked again each time */
	str_copy(rq->cache_control, sizeof(rq->cache_control), "no-cache");
	inm = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (inm != NULL && strcmp(inm, etag) == 0) {
		req_reply_raw(rq, 304, "", NULL, 0);
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		req_reply_error(rq, ERR_NOMEM, NULL);
		goto out;
	}
	if (read_fd_all(fd, buf, (size_t)st.st_size) != 0) {
		log_warnx("console file %s: read failed", real);
		req_reply_error(rq, ERR_IO, NULL);
		goto out;
	}
	req_reply_raw(rq, 200, type, buf, (size_t)st.st_size);
	buf = NULL;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
}

/* GET /console */
void
route_console_redirect(struct server *s, struct req *rq)
{
	(void)s;
	console_headers(rq);
	req_add_header(rq, MHD_HTTP_HEADER_LOCATION, "/console/");
	req_reply_raw(rq, 301, "", NULL, 0);
}

/* GET /console/ */
void
route_console_index(struct server *s, struct req *rq)
{
	serve_file(s, rq, "index.html");
}

/* GET /console/{*} */
void
route_console_file(struct server *s, struct req *rq)
{
	serve_file(s, rq, rq->params[0]);
}

/* ---------------------------------------------------------------------
 * Start and stop.
 */
int
console_start(struct server *s)
{
	struct console *c;
	uint8_t rnd[32];
	char real[PATH_MAX];
	struct stat st;
	int r;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return ERR_NOMEM;
	c->s = s;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	s->console = c;
	errno = 0;
	if (realpath(s->cfg->console_dir, real) == NULL || stat(real, &st) != 0 ||
	    !S_ISDIR(st.st_mode))
		log_warnx("console.dir %s: %s: the web console is not served",
		    s->cfg->console_dir, errno != 0 ? strerror(errno) : "not a directory");
	else if ((c->dir = strdup(real)) == NULL)
		return ERR_NOMEM;
	else {
		c->dirlen = strlen(c->dir);
		log_info("web console files from %s", c->dir);
	}
	/* a random password nobody knows */
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		log_ossl("RAND_bytes");
		return ERR_CRYPTO;
	}
	r = db_password_hash((const char *)rnd, sizeof(rnd), c->dummy);
	OPENSSL_cleanse(rnd, sizeof(rnd));
	if (r != 0)
		return r;
	for (c->nth = 0; c->nth < LOGIN_THREADS; c->nth++)
		if (pthread_create(&c->th[c->nth], NULL, login_main, c) != 0) {
			log_errx("cannot start the login workers");
			return ERR_INTERNAL;
		}
	return 0;
}

void
console_stop(struct server *s)
{
	struct console *c = s != NULL ? s->console : NULL;
	struct login_job *j;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stopping = 1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	for (int i = 0; i < c->nth; i++)
		pthread_join(c->th[i], NULL);
	/* what no worker took: answered, so that its connection ends */
	while ((j = c->head) != NULL) {
		c->head = j->next;
		req_reply_error(j->rq, ERR_UNAVAILABLE, "provd is stopping; retry shortly.");
		req_complete(j->rq);
		job_free(j);
	}
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c->dir);
	free(c);
	s->console = NULL;
}
