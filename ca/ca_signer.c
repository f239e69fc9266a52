/*
 * ca_signer.c: the signer process, the only one that holds the CA private key
 * (after OpenBSD relayd's "ca" process): the parent's thread-safe handle that
 * starts, queries and restarts it over a socketpair, and the signer's loop,
 * for which any malformed request is fatal.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "ca/ca_int.h"

#define SIGNER_CHILD_FD_STR	"3"	/* SIGNER_CHILD_FD as an argument */
#define READY_TIMEOUT_MS	10000	/* exec + key load */
#define ISSUE_TIMEOUT_MS	10000
#define CRL_TIMEOUT_MS		120000	/* up to CA_MAX_CRL_ENTRIES entries */
#define STOP_GRACE_MS		2000
#define DEAD_GRACE_MS		1000
#define SMALL_MSG		(SIGNER_HDR_LEN + 4 + SIGNER_MAX_ISSUE)

struct ca_signer {
	pthread_mutex_t lock;		/* one request/response at a time */
	char *self;
	char *conf;
	int fd;				/* -1 while no signer runs */
	pid_t pid;			/* 0 while no signer runs */
};

static uint64_t
deadline_after(int ms)
{
	return now_ns() + (uint64_t)ms * 1000000u;
}

/* Waits for events on fd until deadline (0: no deadline). 0, ERR_TIMEOUT or ERR_IO. */
static int
io_wait(int fd, short events, uint64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int timeout = -1, n;

	for (;;) {
		if (deadline != 0) {
			uint64_t now = now_ns(), ms;
			if (now >= deadline)
				return ERR_TIMEOUT;
			ms = (deadline - now + 999999) / 1000000;
			timeout = ms > INT_MAX ? INT_MAX : (int)ms;
		}
		n = poll(&pfd, 1, timeout);
		if (n > 0)
			return 0;	/* readable, writable, or HUP/ERR for the next call */
		if (n == 0)
			return ERR_TIMEOUT;
		if (errno != EINTR)
			return ERR_IO;
	}
}

/* Sends all of buf without SIGPIPE. 0, ERR_IO (peer gone) or ERR_TIMEOUT. */
static int
io_send_all(int fd, const void *buf, size_t len, uint64_t deadline)
{
	const uint8_t *p = buf;
	int r;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((r = io_wait(fd, POLLOUT, deadline)) != 0)
				return r;
			continue;
		}
		return ERR_IO;
	}
	return 0;
}

/* Reads exactly len bytes, looping on partial reads. ERR_IO on EOF or error;
 * *got says how much arrived (0 at a clean EOF). */
static int
io_recv_all(int fd, void *buf, size_t len, uint64_t deadline, size_t *got)
{
	uint8_t *p = buf;
	size_t off = 0;
	int r = 0;

	while (off < len) {
		ssize_t n = recv(fd, p + off, len - off, MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n == 0) {
			r = ERR_IO;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if ((r = io_wait(fd, POLLIN, deadline)) != 0)
				break;
			continue;
		}
		r = ERR_IO;
		break;
	}
	if (got != NULL)
		*got = off;
	return r;
}

/* Sends header + a + b; small messages go out in one send. */
static int
msg_send(int fd, uint32_t type, const void *a, size_t alen, const void *b, size_t blen,
    uint64_t deadline)
{
	uint8_t small[SMALL_MSG];
	uint32_t hdr[3];
	size_t total = alen + blen;
	int r;

	if (total > UINT32_MAX)
		return ERR_TOO_BIG;
	hdr[0] = SIGNER_MAGIC;
	hdr[1] = type;
	hdr[2] = (uint32_t)total;
	if (SIGNER_HDR_LEN + total <= sizeof(small)) {
		memcpy(small, hdr, SIGNER_HDR_LEN);
		if (alen > 0)
			memcpy(small + SIGNER_HDR_LEN, a, alen);
		if (blen > 0)
			memcpy(small + SIGNER_HDR_LEN + alen, b, blen);
		return io_send_all(fd, small, SIGNER_HDR_LEN + total, deadline);
	}
	if ((r = io_send_all(fd, hdr, SIGNER_HDR_LEN, deadline)) != 0 ||
	    (alen > 0 && (r = io_send_all(fd, a, alen, deadline)) != 0) ||
	    (blen > 0 && (r = io_send_all(fd, b, blen, deadline)) != 0))
		return r;
	return 0;
}

/* ---------------------------------------------------------------------
 * Parent side.
 */

static void
describe_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "was killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, len, "ended with wait status %d", st);
}

/*
 * Closes the socket and reaps the child: waits grace_ms for it to exit, then
 * SIGKILLs it (at once when kill_now). why != NULL: an unexpected end, logged
 * as an error.
 */
static void
signer_reap(struct ca_signer *s, int kill_now, int grace_ms, const char *why)
{
	uint64_t deadline = deadline_after(grace_ms);
	struct timespec ts = { 0, 5 * 1000 * 1000 };
	char desc[64];
	int st = 0;
	pid_t w;

	if (s->fd != -1) {
		close(s->fd);
		s->fd = -1;
	}
	if (s->pid <= 0)
		return;
	if (kill_now)
		kill(s->pid, SIGKILL);
	for (;;) {
		w = waitpid(s->pid, &st, WNOHANG);
		if (w == s->pid || (w == -1 && errno != EINTR))
			break;
		if (now_ns() >= deadline) {
			kill(s->pid, SIGKILL);
			do
				w = waitpid(s->pid, &st, 0);
			while (w == -1 && errno == EINTR);
			break;
		}
		nanosleep(&ts, NULL);
	}
	if (w == s->pid)
		describe_status(st, desc, sizeof(desc));
	else
		snprintf(desc, sizeof(desc), "could not be reaped (%s)", strerror(errno));
	if (why != NULL)
		log_errx("signer pid %ld %s: %s", (long)s->pid, why, desc);
	else
		log_info("signer pid %ld %s", (long)s->pid, desc);
	s->pid = 0;
}

/* In the child between fork and exec: async-signal-safe calls only. */
static void __attribute__((noreturn))
child_exec(int fd, char *const argv[], int maxfd)
{
	sigset_t none;
	int nul;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (fd == SIGNER_CHILD_FD) {
		if (fcntl(fd, F_SETFD, 0) == -1)
			_exit(127);
	} else {
		if (dup2(fd, SIGNER_CHILD_FD) == -1)
			_exit(127);
		/* never leave the socket on stdin/stdout/stderr */
		if (fd <= 2 && (nul = open("/dev/null", O_RDWR)) != -1)
			dup2(nul, fd);
	}
	if (close_range(SIGNER_CHILD_FD + 1, ~0U, 0) == -1)
		for (int i = SIGNER_CHILD_FD + 1; i < maxfd; i++)
			close(i);
	execv(argv[0], argv);
	_exit(127);
}

/* Reads a reply header and checks magic, type and length bounds. */
static int
recv_hdr(int fd, uint32_t type, uint32_t minlen, uint32_t maxlen, uint64_t deadline,
    uint32_t *len, const char **why)
{
	uint32_t hdr[3];
	int r;

	if ((r = io_recv_all(fd, hdr, SIGNER_HDR_LEN, deadline, NULL)) != 0) {
		*why = r == ERR_TIMEOUT ? "did not answer in time" : "closed the connection";
		return r;
	}
	if (hdr[0] != SIGNER_MAGIC || hdr[1] != type || hdr[2] < minlen || hdr[2] > maxlen) {
		*why = "sent a malformed reply";
		return ERR_INVALID;
	}
	*len = hdr[2];
	return 0;
}

/* Starts a signer and waits for it to have loaded the key. Lock held. */
static int
signer_spawn(struct ca_signer *s)
{
	char *const argv[] = { s->self, (char *)"signer", (char *)"--fd",
	    (char *)SIGNER_CHILD_FD_STR, (char *)"-c", s->conf, NULL };
	long maxfd = sysconf(_SC_OPEN_MAX);
	int sv[2] = { -1, -1 }, r;
	const char *why = NULL;
	uint32_t len;
	pid_t pid;

	if (maxfd < 0 || maxfd > 65536)
		maxfd = 65536;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		log_errx("socketpair: %s", strerror(errno));
		return ERR_SIGNER;
	}
	if ((pid = fork()) == -1) {
		log_errx("fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return ERR_SIGNER;
	}
	if (pid == 0)
		child_exec(sv[1], argv, (int)maxfd);
	close(sv[1]);
	s->fd = sv[0];
	s->pid = pid;
	if ((r = recv_hdr(s->fd, SIGNER_READY, 0, 0, deadline_after(READY_TIMEOUT_MS),
	    &len, &why)) != 0) {
		signer_reap(s, r != ERR_IO, DEAD_GRACE_MS, why);
		log_errx("the signer did not start (%s signer -c %s)", s->self, s->conf);
		return ERR_SIGNER;
	}
	log_info("signer started, pid %ld", (long)pid);
	return 0;
}

/*
 * One request/response. The reply is i32 status, then DER when status is 0;
 * *der is a new buffer (free()). Any failure of the signer itself kills and
 * reaps it and returns ERR_SIGNER; the next call starts a new one.
 */
static int
signer_call(struct ca_signer *s, uint32_t type, const uint8_t *req, size_t reqlen,
    uint32_t maxreply, int timeout_ms, uint8_t **der, size_t *derlen)
{
	int r = ERR_INTERNAL, e;
	uint64_t deadline;
	const char *dead = NULL;	/* set when the signer must be replaced */
	uint32_t len;
	int32_t status;
	uint8_t *buf = NULL;

	if ((e = pthread_mutex_lock(&s->lock)) != 0) {
		log_errx("pthread_mutex_lock: %s", strerror(e));
		return ERR_INTERNAL;
	}
	if (s->fd == -1 && (r = signer_spawn(s)) != 0)
		goto out;
	deadline = deadline_after(timeout_ms);
	if ((r = msg_send(s->fd, type, req, reqlen, NULL, 0, deadline)) != 0) {
		dead = r == ERR_TIMEOUT ? "did not take the request in time" : "is gone";
		goto out;
	}
	if ((r = recv_hdr(s->fd, type, 4, 4 + maxreply, deadline, &len, &dead)) != 0)
		goto out;
	if ((r = io_recv_all(s->fd, &status, 4, deadline, NULL)) != 0) {
		dead = r == ERR_TIMEOUT ? "did not answer in time" : "closed the connection";
		goto out;
	}
	if (status != 0) {
		if (len != 4 || status > 0 || status < -1000) {
			dead = "sent a malformed reply";
			r = ERR_INVALID;
			goto out;
		}
		r = status;
		goto out;
	}
	if (len == 4) {
		dead = "sent an empty reply";
		r = ERR_INVALID;
		goto out;
	}
	if ((buf = malloc(len - 4)) == NULL) {
		/* the reply cannot be drained: start afresh */
		dead = "sent a reply that could not be stored";
		r = ERR_NOMEM;
		goto out;
	}
	if ((r = io_recv_all(s->fd, buf, len - 4, deadline, NULL)) != 0) {
		dead = r == ERR_TIMEOUT ? "did not answer in time" : "closed the connection";
		goto out;
	}
	*der = buf;
	*derlen = len - 4;
	buf = NULL;
	r = 0;
out:
	if (dead != NULL) {
		/* killed at once unless it simply went away */
		signer_reap(s, r != ERR_IO, DEAD_GRACE_MS, dead);
		r = ERR_SIGNER;
	}
	pthread_mutex_unlock(&s->lock);
	free(buf);
	return r;
}

int
ca_signer_start(const char *self, const char *conf, struct ca_signer **out)
{
	int r = ERR_INTERNAL;
	struct ca_signer *s = NULL;

	if (out != NULL)
		*out = NULL;
	if (self == NULL || conf == NULL || out == NULL)
		return ERR_INVALID;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ERR_NOMEM;
	s->fd = -1;
	if ((r = pthread_mutex_init(&s->lock, NULL)) != 0) {
		free(s);
		return ERR_INTERNAL;
	}
	if ((s->self = strdup(self)) == NULL || (s->conf = strdup(conf)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	if ((r = signer_spawn(s)) != 0)
		goto out;
	*out = s;
	s = NULL;
	r = 0;
out:
	ca_signer_stop(s);
	return r;
}

void
ca_signer_stop(struct ca_signer *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	signer_reap(s, 0, STOP_GRACE_MS, NULL);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_destroy(&s->lock);
	free(s->self);
	free(s->conf);
	free(s);
}

pid_t
ca_signer_pid(struct ca_signer *s)
{
	pid_t pid;

	if (s == NULL)
		return 0;
	pthread_mutex_lock(&s->lock);
	pid = s->pid;
	pthread_mutex_unlock(&s->lock);
	return pid;
}

int
ca_signer_issue(struct ca_signer *s, const struct ca_issue_req *req,
    uint8_t **der, size_t *derlen)
{
	int r = ERR_INTERNAL;
	uint8_t *msg = NULL;
	size_t msglen = 0;

	if (der != NULL)
		*der = NULL;
	if (derlen != NULL)
		*derlen = 0;
	if (s == NULL || req == NULL || der == NULL || derlen == NULL)
		return ERR_INVALID;
	if ((r = ca_msg_issue_encode(req, &msg, &msglen)) != 0)
		goto out;
	r = signer_call(s, SIGNER_ISSUE, msg, msglen, SIGNER_MAX_REPLY_ISSUE,
	    ISSUE_TIMEOUT_MS, der, derlen);
out:
	free(msg);
	return r;
}

int
ca_signer_crl(struct ca_signer *s, const struct ca_crl_req *req,
    uint8_t **der, size_t *derlen)
{
	int r = ERR_INTERNAL;
	uint8_t *msg = NULL;
	size_t msglen = 0;

	if (der != NULL)
		*der = NULL;
	if (derlen != NULL)
		*derlen = 0;
	if (s == NULL || req == NULL || der == NULL || derlen == NULL)
		return ERR_INVALID;
	if ((r = ca_msg_crl_encode(req, &msg, &msglen)) != 0)
		goto out;
	r = signer_call(s, SIGNER_CRL, msg, msglen, SIGNER_MAX_REPLY_CRL,
	    CRL_TIMEOUT_MS, der, derlen);
out:
	free(msg);
	return r;
}

/* ---------------------------------------------------------------------
 * Signer side.
 */

/*
 * Serves one request. Returns 0 with *status (0 and *der set, or a negative
 * code for the parent), or ERR_INVALID for a malformed payload.
 */
static int
serve(struct ca_key *k, uint32_t type, const uint8_t *p, size_t len,
    int *status, uint8_t **der, size_t *derlen)
{
	struct ca_issue_req ireq;
	struct ca_crl_req creq;
	struct ca_revoked *entries = NULL;
	size_t max;
	int r;

	switch (type) {
	case SIGNER_ISSUE:
		if ((r = ca_msg_issue_decode(p, len, &ireq)) != 0)
			return ERR_INVALID;
		*status = ca_key_issue(k, &ireq, der, derlen);
		max = SIGNER_MAX_REPLY_ISSUE;
		break;
	case SIGNER_CRL:
		if ((r = ca_msg_crl_decode(p, len, &creq, &entries)) != 0) {
			if (r == ERR_NOMEM) {
				*status = ERR_NOMEM;
				return 0;
			}
			return ERR_INVALID;
		}
		*status = ca_key_crl(k, &creq, der, derlen);
		free(entries);
		max = SIGNER_MAX_REPLY_CRL;
		break;
	default:
		return ERR_INVALID;
	}
	if (*status == 0 && *derlen > max) {
		log_errx("result of %zu bytes is over the reply limit", *derlen);
		free(*der);
		*der = NULL;
		*derlen = 0;
		*status = ERR_TOO_BIG;
	}
	return 0;
}

int
ca_signer_main(int fd, const struct config *cfg)
{
	int status = SIGNER_EXIT_SETUP, rstatus;
	struct rlimit nocore = { 0, 0 };
	struct ca_key *k = NULL;
	uint8_t *payload = NULL, *der = NULL;
	size_t derlen = 0, got;
	uint32_t hdr[3], max;

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1) {
		log_errx("prctl(PR_SET_DUMPABLE): %s", strerror(errno));
		goto out;
	}
	if (setrlimit(RLIMIT_CORE, &nocore) == -1) {
		log_errx("setrlimit(RLIMIT_CORE): %s", strerror(errno));
		goto out;
	}
	if (cfg == NULL || ca_key_load(cfg, &k) != 0) {
		log_errx("cannot load the CA key from %s", cfg != NULL && cfg->ca_dir != NULL ?
		    cfg->ca_dir : "(no configuration)");
		goto out;
	}
	if (msg_send(fd, SIGNER_READY, NULL, 0, NULL, 0, 0) != 0) {
		log_errx("cannot reach the parent: %s", strerror(errno));
		status = SIGNER_EXIT_IO;
		goto out;
	}
	for (;;) {
		if (io_recv_all(fd, hdr, SIGNER_HDR_LEN, 0, &got) != 0) {
			if (got == 0) {
				status = SIGNER_EXIT_OK;
				break;
			}
			log_errx("fatal: truncated request header (%zu bytes)", got);
			status = SIGNER_EXIT_BADMSG;
			break;
		}
		if (hdr[0] != SIGNER_MAGIC) {
			log_errx("fatal: bad request magic 0x%08x", (unsigned)hdr[0]);
			status = SIGNER_EXIT_BADMSG;
			break;
		}
		if (hdr[1] == SIGNER_ISSUE)
			max = SIGNER_MAX_ISSUE;
		else if (hdr[1] == SIGNER_CRL)
			max = SIGNER_MAX_CRL;
		else {
			log_errx("fatal: unknown request type %u", (unsigned)hdr[1]);
			status = SIGNER_EXIT_BADMSG;
			break;
		}
		if (hdr[2] > max) {
			log_errx("fatal: request type %u of %u bytes (limit %u)",
			    (unsigned)hdr[1], (unsigned)hdr[2], (unsigned)max);
			status = SIGNER_EXIT_BADMSG;
			break;
		}
		if ((payload = malloc(hdr[2] > 0 ? hdr[2] : 1)) == NULL) {
			log_errx("fatal: out of memory for a %u-byte request", (unsigned)hdr[2]);
			status = SIGNER_EXIT_IO;
			break;
		}
		if (io_recv_all(fd, payload, hdr[2], 0, &got) != 0) {
			log_errx("fatal: truncated request (%zu of %u bytes)", got, (unsigned)hdr[2]);
			status = SIGNER_EXIT_BADMSG;
			break;
		}
		if (serve(k, hdr[1], payload, hdr[2], &rstatus, &der, &derlen) != 0) {
			log_errx("fatal: malformed request type %u of %u bytes",
			    (unsigned)hdr[1], (unsigned)hdr[2]);
			status = SIGNER_EXIT_BADMSG;
			break;
		}
		free(payload);
		payload = NULL;
		if (msg_send(fd, hdr[1], &rstatus, 4, der, rstatus == 0 ? derlen : 0, 0) != 0) {
			log_errx("cannot reply to the parent: %s", strerror(errno));
			status = SIGNER_EXIT_IO;
			break;
		}
		free(der);
		der = NULL;
		derlen = 0;
	}
out:
	free(payload);
	free(der);
	ca_key_free(k);
	return status;
}
