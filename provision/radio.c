/*
 * radio.c: the radio interface callers see. radio_open picks a backend from
 * the table below; every other call checks its arguments and goes through
 * that backend's function table (radio_int.h). One file per backend.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "provision/provision.h"
#include "provision/radio_int.h"

/* Backends compiled into this build: sim (radio_sim.c) and bluez
 * (radio_bluez.c). */
static const struct radio_ops *const backends[] = {
	&radio_sim_ops,
	&radio_bluez_ops,
};

uint64_t
radio_deadline_set(int timeout_ms)
{
	if (timeout_ms < 0)
		return 0;
	return now_ns() + (uint64_t)timeout_ms * 1000000u;
}

int
radio_deadline_left(uint64_t deadline)
{
	uint64_t now, left;

	if (deadline == 0)
		return -1;
	now = now_ns();
	if (now >= deadline)
		return 0;
	left = (deadline - now + 999999u) / 1000000u;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

/* ---------------------------------------------------------------------
 * Socket links, shared by the backends whose links are plain sockets.
 */
/* Waits for events on fd until deadline: 0, ERR_TIMEOUT or ERR_IO. */
int
radio_fd_wait(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int left = radio_deadline_left(deadline);
		int n = poll(&pfd, 1, left);
		if (n > 0)
			return 0;	/* ready, or hangup/error for the caller to see */
		if (n == 0)
			return ERR_TIMEOUT;
		if (errno != EINTR) {
			log_warnx("poll: %s", strerror(errno));
			return ERR_IO;
		}
	}
}

/* Reads 1..len bytes. EOF and resets are ERR_IO. */
int
radio_fd_read_some(int fd, void *buf, size_t len, size_t *got, uint64_t deadline)
{
	int rc;

	*got = 0;
	for (;;) {
		ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n > 0) {
			*got = (size_t)n;
			return 0;
		}
		if (n == 0)
			return ERR_IO;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return ERR_IO;
		if ((rc = radio_fd_wait(fd, POLLIN, deadline)) != 0)
			return rc;
	}
}

/* Writes all len bytes; *sent says how many went out before a failure. */
int
radio_fd_write_all(int fd, const void *buf, size_t len, size_t *sent,
    uint64_t deadline)
{
	int rc;

	*sent = 0;
	while (*sent < len) {
		ssize_t n = send(fd, (const uint8_t *)buf + *sent, len - *sent,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0) {
			*sent += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return ERR_IO;
		if ((rc = radio_fd_wait(fd, POLLOUT, deadline)) != 0)
			return rc;
	}
	return 0;
}

int
radio_addr_ok(const uint8_t addr[MAC_LEN])
{
	char hex[MAC_HEX_LEN];
	uint8_t tmp[MAC_LEN];

	/* one rule for addresses everywhere: the one mac_parse applies */
	mac_format_hex(addr, hex);
	return mac_parse(hex, tmp) == 0;
}

int
radio_name_check(const char *name)
{
	size_t len;

	if (name == NULL)
		return ERR_INVALID;
	len = strnlen(name, RADIO_NAME_MAX);
	if (len == RADIO_NAME_MAX)
		return ERR_INVALID;
	if (len == 0)
		return 0;
	/* printable UTF-8 without control characters (the rule names in
	 * certificates follow too); RADIO_NAME_MAX is below its length cap */
	return optdata_check_name(name);
}

int
radio_open(const struct radio_params *p, struct radio **out)
{
	const struct radio_ops *ops = NULL;
	struct radio *r = NULL;
	int rc = ERR_INTERNAL;

	if (out == NULL)
		return ERR_INVALID;
	*out = NULL;
	if (p == NULL || p->backend == NULL) {
		log_warnx("no radio backend given");
		return ERR_CONFIG;
	}
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i]->name, p->backend) == 0) {
			ops = backends[i];
			break;
		}
	if (ops == NULL) {
		log_warnx("radio backend \"%.32s\": unknown or unavailable backend",
		    p->backend);
		return ERR_CONFIG;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return ERR_NOMEM;
	r->ops = ops;
	if ((rc = ops->open(r, p)) != 0)
		goto out;
	*out = r;
	r = NULL;
	rc = 0;
out:
	free(r);
	return rc;
}

void
radio_close(struct radio *r)
{
	if (r == NULL)
		return;
	r->ops->close(r);
	free(r);
}

const char *
radio_backend(const struct radio *r)
{
	return r != NULL ? r->ops->name : "none";
}

int
radio_inquire(struct radio *r, int timeout_ms, struct radio_device *out,
    size_t max, size_t *n)
{
	if (n != NULL)
		*n = 0;
	if (r == NULL || n == NULL || (out == NULL && max > 0))
		return ERR_INVALID;
	if (r->ops->inquire == NULL)
		return ERR_UNSUPPORTED;
	if (max == 0)
		return 0;
	return r->ops->inquire(r, timeout_ms, out, max, n);
}

/* A link as connect/accept hand it to the backend: zeroed, ops set. */
static int
link_new(const struct radio *r, struct radio_link **out)
{
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return ERR_NOMEM;
	(*out)->ops = r->ops;
	return 0;
}

int
radio_connect(struct radio *r, const uint8_t addr[MAC_LEN], int timeout_ms,
    struct radio_link **out)
{
	struct radio_link *l = NULL;
	int rc = ERR_INTERNAL;

	if (out == NULL)
		return ERR_INVALID;
	*out = NULL;
	if (r == NULL || addr == NULL)
		return ERR_INVALID;
	if (!radio_addr_ok(addr))
		return ERR_BAD_MAC;
	if (r->ops->connect == NULL)
		return ERR_UNSUPPORTED;
	if ((rc = link_new(r, &l)) != 0)
		goto out;
	if ((rc = r->ops->connect(r, addr, timeout_ms, l)) != 0)
		goto out;
	*out = l;
	l = NULL;
	rc = 0;
out:
	free(l);
	return rc;
}

int
radio_listen(struct radio *r, const struct radio_device *self)
{
	if (r == NULL || self == NULL)
		return ERR_INVALID;
	if (!radio_addr_ok(self->addr))
		return ERR_BAD_MAC;
	if (radio_name_check(self->name) != 0 || self->cod > 0xffffffu ||
	    self->rssi < -128 || self->rssi > 127)
		return ERR_INVALID;
	if (r->ops->listen == NULL)
		return ERR_UNSUPPORTED;
	return r->ops->listen(r, self);
}

int
radio_accept(struct radio *r, int timeout_ms, struct radio_link **out)
{
	struct radio_link *l = NULL;
	int rc = ERR_INTERNAL;

	if (out == NULL)
		return ERR_INVALID;
	*out = NULL;
	if (r == NULL)
		return ERR_INVALID;
	if (r->ops->accept == NULL)
		return ERR_UNSUPPORTED;
	if ((rc = link_new(r, &l)) != 0)
		goto out;
	if ((rc = r->ops->accept(r, timeout_ms, l)) != 0)
		goto out;
	*out = l;
	l = NULL;
	rc = 0;
out:
	free(l);
	return rc;
}

int
radio_link_write(struct radio_link *l, const void *buf, size_t len, int timeout_ms)
{
	if (l == NULL || (buf == NULL && len > 0))
		return ERR_INVALID;
	if (len == 0)
		return 0;
	return l->ops->link_write(l, buf, len, timeout_ms);
}

/* An exact read built on read_some under one deadline. On failure the
 * bytes already read are lost to the caller: after ERR_TIMEOUT the stream
 * position is unknown and the link should be closed. */
int
radio_link_read(struct radio_link *l, void *buf, size_t len, int timeout_ms)
{
	uint64_t deadline = radio_deadline_set(timeout_ms);
	size_t off = 0;

	if (l == NULL || (buf == NULL && len > 0))
		return ERR_INVALID;
	while (off < len) {
		size_t got = 0;
		int rc = l->ops->link_read_some(l, (uint8_t *)buf + off, len - off,
		    &got, radio_deadline_left(deadline));
		if (rc != 0)
			return rc;
		off += got;
	}
	return 0;
}

int
radio_link_read_some(struct radio_link *l, void *buf, size_t len, size_t *got,
    int timeout_ms)
{
	if (got != NULL)
		*got = 0;
	if (l == NULL || buf == NULL || got == NULL || len == 0)
		return ERR_INVALID;
	return l->ops->link_read_some(l, buf, len, got, timeout_ms);
}

void
radio_link_peer(const struct radio_link *l, uint8_t addr[MAC_LEN])
{
	if (l == NULL) {
		memset(addr, 0, MAC_LEN);
		return;
	}
	memcpy(addr, l->peer, MAC_LEN);
}

int
radio_link_fd(const struct radio_link *l)
{
	if (l == NULL || l->ops->link_fd == NULL)
		return -1;
	return l->ops->link_fd(l);
}

void
radio_link_close(struct radio_link *l)
{
	if (l == NULL)
		return;
	l->ops->link_close(l);
	free(l);
}

int
radio_link_set_fault(struct radio_link *l, size_t drop_after, int delay_ms)
{
	if (l == NULL || delay_ms < 0)
		return ERR_INVALID;
	if (l->ops->link_set_fault == NULL)
		return ERR_UNSUPPORTED;
	return l->ops->link_set_fault(l, drop_after, delay_ms);
}
