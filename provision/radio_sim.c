/*
 * radio_sim.c: the sim radio backend — a simulated air on this machine. The
 * air is a directory: each listening device there is a Unix stream socket
 * <12 hex>.sock plus an <12 hex>.info file (name, class, rssi) for inquiry.
 *
 * A link is the Unix socket itself. The connecting side first sends a fixed
 * baseband header (SIM_HDR_LEN bytes: magic "pvsb", version 1, a zero byte
 * and its own 6-byte address), which the accepting side checks and reports
 * as the peer address; after it the link is a plain byte stream.
 *
 * There is no acknowledgement: connect completes once the device's socket
 * has queued the connection, much as a page is answered by the controller
 * before the host accepts. The connect() probes inquiry uses to tell live
 * devices from stale files show up at the device as connections closed
 * before any header; accept drops those quietly, drops connections with a
 * bad header with a warning, and goes on waiting for a good one.
 *
 * Inquiry is one pass over the directory; timeout_ms bounds that pass (a
 * timeout of 0 therefore finds nothing). Files of devices that died stay
 * until their address is used again: inquiry skips them, listen takes a
 * stale socket over, and nobody else removes them (a device between bind()
 * and listen() looks just as dead for a moment).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "provision/provision.h"
#include "provision/radio_int.h"

#define SIM_MAGIC		"pvsb"
#define SIM_VERSION		1
#define SIM_HDR_LEN		12	/* magic 4, version 1, zero 1, address 6 */
#define SIM_HDR_TIMEOUT_MS	1000	/* how long accept waits for a header */
#define SIM_HDR_GRACE_MS	100	/* ... even when its own time is up */
#define SIM_INFO_MAX		256	/* bytes in an .info file */
#define SIM_SCAN_MAX		4096	/* devices one inquiry considers */
#define SIM_BACKLOG		16
#define SIM_DELAY_MAX_MS	60000	/* fault hook: longest delay per write */
#define SIM_RETRY_MS		10	/* connect retry while a backlog is full */

#define SUN_PATH_LEN	sizeof(((struct sockaddr_un *)0)->sun_path)
/* "/" + 12 hex digits + ".sock" + NUL after the directory */
#define SIM_NAME_ROOM	(1 + 12 + 5 + 1)

struct sim_radio {
	char dir[SUN_PATH_LEN - SIM_NAME_ROOM + 1];	/* the air, short enough
							 * for sun_path */
	uint8_t own[MAC_LEN];		/* random address used until listening */
	int lfd;			/* listening socket, or -1 */
	struct radio_device self;	/* valid while lfd >= 0 */
	int sock_pin, info_pin;		/* O_PATH fds on our two files, or -1 */
};

struct sim_link {
	int fd;
	int drop_armed;			/* fault hook: a drop is pending */
	size_t drop_left;		/* bytes this side may still write */
	int delay_ms;			/* fault hook: sleep before each write */
	int dropped;			/* the fault hook shut the link down */
};

/* ---------------------------------------------------------------------
 * Paths and sockets.
 */

/* <dir>/<hex><suffix> into out (SUN_PATH_LEN bytes; sim_open made sure
 * every name fits). */
static void
sim_path(const struct sim_radio *s, const uint8_t addr[MAC_LEN],
    const char *suffix, char out[SUN_PATH_LEN])
{
	char hex[MAC_HEX_LEN];
	int n;

	mac_format_hex(addr, hex);
	n = snprintf(out, SUN_PATH_LEN, "%s/%s%s", s->dir, hex, suffix);
	if (n < 0 || (size_t)n >= SUN_PATH_LEN)
		out[0] = '\0';		/* cannot happen: sim_open checked the room */
}

static void
sim_sockaddr(const struct sim_radio *s, const uint8_t addr[MAC_LEN],
    struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	sim_path(s, addr, ".sock", sun->sun_path);
}

/* Whether a device listens at addr: a connect() that is taken (or refused
 * only because the backlog is full). Stale sockets refuse. */
static int
sim_alive(const struct sim_radio *s, const uint8_t addr[MAC_LEN])
{
	struct sockaddr_un sun;
	int fd, alive;

	sim_sockaddr(s, addr, &sun);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return 0;
	alive = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 ||
	    errno == EAGAIN;
	close(fd);
	return alive;
}

static void
sim_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Reads exactly len bytes; *got says how many arrived before a failure. */
static int
sim_fd_read_exact(int fd, void *buf, size_t len, size_t *got, uint64_t deadline)
{
	int rc;

	*got = 0;
	while (*got < len) {
		size_t n;
		if ((rc = radio_fd_read_some(fd, (uint8_t *)buf + *got, len - *got,
		    &n, deadline)) != 0)
			return rc;
		*got += n;
	}
	return 0;
}

/*
 * A file we created is "pinned" with an O_PATH descriptor: while it is open
 * the inode cannot be freed, so its number cannot be reused by someone
 * else's file and comparing numbers tells ours from a replacement.
 */
static int
sim_pin(const char *path, int *pin)
{
	if ((*pin = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		log_warnx("%s: %s", path, strerror(errno));
		return ERR_IO;
	}
	return 0;
}

/* Removes path only if it is still the pinned file; closes the pin. */
static void
sim_unlink_pinned(const char *path, int *pin)
{
	struct stat st, pst;

	if (*pin < 0)
		return;
	if (fstat(*pin, &pst) == 0 && lstat(path, &st) == 0 &&
	    st.st_dev == pst.st_dev && st.st_ino == pst.st_ino &&
	    unlink(path) != 0)
		log_warnx("%s: %s", path, strerror(errno));
	close(*pin);
	*pin = -1;
}

/* ---------------------------------------------------------------------
 * The .info files: "name=...\ncod=0xHHHHHH\nrssi=N\n", each key exactly
 * once, nothing else. Anything else is malformed and the file is ignored.
 */

static int
sim_key_is(const char *k, size_t klen, const char *want)
{
	return klen == strlen(want) && memcmp(k, want, klen) == 0;
}

static int
sim_info_parse(const char *buf, size_t len, struct radio_device *dev)
{
	const char *p = buf, *end = buf + len;
	int seen_name = 0, seen_cod = 0, seen_rssi = 0;

	if (len == 0 || buf[len - 1] != '\n' || memchr(buf, '\0', len) != NULL)
		return ERR_INVALID;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eq = memchr(p, '=', (size_t)(nl - p));
		const char *v;
		size_t klen, vlen;

		if (eq == NULL)
			return ERR_INVALID;
		klen = (size_t)(eq - p);
		v = eq + 1;
		vlen = (size_t)(nl - v);
		if (sim_key_is(p, klen, "name")) {
			if (seen_name++ || vlen >= RADIO_NAME_MAX)
				return ERR_INVALID;
			memcpy(dev->name, v, vlen);
			dev->name[vlen] = '\0';
			if (radio_name_check(dev->name) != 0)
				return ERR_INVALID;
		} else if (sim_key_is(p, klen, "cod")) {
			uint32_t cod = 0;
			if (seen_cod++ || vlen != 8 || v[0] != '0' || v[1] != 'x')
				return ERR_INVALID;
			for (size_t i = 2; i < 8; i++) {
				int d = hex_digit((unsigned char)v[i]);
				if (d < 0)
					return ERR_INVALID;
				cod = cod << 4 | (uint32_t)d;
			}
			dev->cod = cod;
		} else if (sim_key_is(p, klen, "rssi")) {
			char num[8];
			int64_t rssi;
			if (seen_rssi++ || vlen == 0 || vlen >= sizeof(num))
				return ERR_INVALID;
			for (size_t i = 0; i < vlen; i++)
				if (!(v[i] >= '0' && v[i] <= '9') && !(i == 0 && v[i] == '-'))
					return ERR_INVALID;
			memcpy(num, v, vlen);
			num[vlen] = '\0';
			if (parse_int64(num, -128, 127, &rssi) != 0)
				return ERR_INVALID;
			dev->rssi = (int)rssi;
		} else
			return ERR_INVALID;
		p = nl + 1;
	}
	return seen_name && seen_cod && seen_rssi ? 0 : ERR_INVALID;
}

/* Reads and parses the regular file name in directory dfd, at most
 * SIM_INFO_MAX bytes; never follows links or blocks on FIFOs. */
static int
sim_info_read(int dfd, const char *name, struct radio_device *dev)
{
	char buf[SIM_INFO_MAX + 1];
	size_t len = 0;
	struct stat st;
	int fd, rc = ERR_INVALID;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return ERR_IO;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > SIM_INFO_MAX)
		goto out;
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ERR_IO;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > SIM_INFO_MAX)
		goto out;
	rc = sim_info_parse(buf, len, dev);
out:
	close(fd);
	return rc;
}

/* Whether a directory entry is "<12 lowercase hex>.info" naming a usable
 * address; sets addr. */
static int
sim_info_name(const char *name, uint8_t addr[MAC_LEN])
{
	char hex[MAC_HEX_LEN], canon[MAC_HEX_LEN];

	if (strnlen(name, 18) != 17 || strcmp(name + 12, ".info") != 0)
		return 0;
	memcpy(hex, name, 12);
	hex[12] = '\0';
	if (mac_parse(hex, addr) != 0)
		return 0;
	mac_format_hex(addr, canon);
	return strcmp(hex, canon) == 0;		/* lowercase only: one name per device */
}

static int
sim_addr_cmp(const void *a, const void *b)
{
	return memcmp(((const struct radio_device *)a)->addr,
	    ((const struct radio_device *)b)->addr, MAC_LEN);
}

/* ---------------------------------------------------------------------
 * Backend functions.
 */

static int
sim_open(struct radio *r, const struct radio_params *p)
{
	struct sim_radio *s = NULL;
	struct stat st;
	size_t dlen;
	int rc = ERR_INTERNAL;

	if (p->sim_dir == NULL || p->sim_dir[0] == '\0') {
		log_warnx("sim radio: no sim_dir given");
		return ERR_CONFIG;
	}
	dlen = strnlen(p->sim_dir, SUN_PATH_LEN);
	if (dlen >= sizeof(s->dir)) {
		log_warnx("sim radio: sim_dir is longer than %zu bytes, too long "
		    "for socket names", SUN_PATH_LEN - SIM_NAME_ROOM);
		return ERR_CONFIG;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ERR_NOMEM;
	s->lfd = s->sock_pin = s->info_pin = -1;
	memcpy(s->dir, p->sim_dir, dlen);
	s->dir[dlen] = '\0';

	if (mkdir(s->dir, 0700) != 0 && errno != EEXIST) {
		log_warnx("sim radio: %s: %s", s->dir, strerror(errno));
		rc = ERR_CONFIG;
		goto out;
	}
	if (stat(s->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		log_warnx("sim radio: %s: not a directory", s->dir);
		rc = ERR_CONFIG;
		goto out;
	}
	if (st.st_mode & 022)
		log_warnx("sim radio: %s is writable by other users, who can "
		    "then add devices to the air", s->dir);

	/* stable for this radio: random, locally administered, unicast */
	if (getrandom(s->own, MAC_LEN, 0) != MAC_LEN) {
		log_warnx("getrandom: %s", strerror(errno));
		rc = ERR_INTERNAL;
		goto out;
	}
	s->own[0] = (uint8_t)((s->own[0] & 0xfc) | 0x02);

	r->be = s;
	s = NULL;
	rc = 0;
out:
	free(s);
	return rc;
}

/* The address this radio shows when it connects. */
static const uint8_t *
sim_own_addr(const struct sim_radio *s)
{
	return s->lfd >= 0 ? s->self.addr : s->own;
}

static void
sim_close(struct radio *r)
{
	struct sim_radio *s = r->be;
	char path[SUN_PATH_LEN];

	if (s == NULL)
		return;
	if (s->lfd >= 0) {
		sim_path(s, s->self.addr, ".info", path);
		sim_unlink_pinned(path, &s->info_pin);
		sim_path(s, s->self.addr, ".sock", path);
		sim_unlink_pinned(path, &s->sock_pin);
		close(s->lfd);
	}
	free(s);
	r->be = NULL;
}

static int
sim_inquire(struct radio *r, int timeout_ms, struct radio_device *out,
    size_t max, size_t *n)
{
	struct sim_radio *s = r->be;
	uint64_t deadline = radio_deadline_set(timeout_ms);
	struct radio_device *found = NULL;
	size_t nfound = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int rc = ERR_INTERNAL;

	if ((d = opendir(s->dir)) == NULL) {
		log_warnx("sim radio: %s: %s", s->dir, strerror(errno));
		return ERR_IO;
	}
	for (;;) {
		struct radio_device dev;

		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno != 0) {
				log_warnx("sim radio: %s: %s", s->dir, strerror(errno));
				rc = ERR_IO;
				goto out;
			}
			break;
		}
		if (radio_deadline_left(deadline) == 0) {
			log_debug("inquiry stopped at its time limit");
			break;
		}
		memset(&dev, 0, sizeof(dev));
		if (!sim_info_name(de->d_name, dev.addr))
			continue;
		if (s->lfd >= 0 && memcmp(dev.addr, s->self.addr, MAC_LEN) == 0)
			continue;	/* a radio does not find itself */
		if (nfound == SIM_SCAN_MAX) {
			log_warnx("sim radio: more than %d devices in %s; the rest "
			    "are not listed", SIM_SCAN_MAX, s->dir);
			break;
		}
		if (sim_info_read(dirfd(d), de->d_name, &dev) != 0) {
			log_debug("ignoring malformed %s", de->d_name);
			continue;
		}
		if (!sim_alive(s, dev.addr)) {
			log_debug("ignoring %s: no device listens", de->d_name);
			continue;
		}
		if (nfound == cap) {
			size_t ncap = cap == 0 ? 16 : cap * 2;
			struct radio_device *nf = reallocarray(found, ncap, sizeof(*nf));
			if (nf == NULL) {
				rc = ERR_NOMEM;
				goto out;
			}
			found = nf;
			cap = ncap;
		}
		found[nfound++] = dev;
	}
	if (nfound > 0)
		qsort(found, nfound, sizeof(*found), sim_addr_cmp);
	*n = nfound < max ? nfound : max;
	if (*n > 0)
		memcpy(out, found, *n * sizeof(*out));
	log_debug("inquiry found %zu device(s), listing %zu", nfound, *n);
	rc = 0;
out:
	free(found);
	closedir(d);
	return rc;
}

static int
sim_listen(struct radio *r, const struct radio_device *self)
{
	struct sim_radio *s = r->be;
	struct sockaddr_un sun;
	char info_path[SUN_PATH_LEN], info[SIM_INFO_MAX];
	int fd = -1, len, rc = ERR_INTERNAL;

	if (s->lfd >= 0) {
		log_warnx("sim radio: already listening");
		return ERR_CONFLICT;
	}
	sim_sockaddr(s, self->addr, &sun);
	sim_path(s, self->addr, ".info", info_path);

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		log_warnx("socket: %s", strerror(errno));
		rc = ERR_IO;
		goto out;
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		if (errno != EADDRINUSE) {
			log_warnx("%s: %s", sun.sun_path, strerror(errno));
			rc = ERR_IO;
			goto out;
		}
		if (sim_alive(s, self->addr)) {
			log_warnx("%s: another device listens at this address",
			    sun.sun_path);
			rc = ERR_CONFLICT;
			goto out;
		}
		/* left behind by a device that died: take it over */
		log_debug("%s: removing a stale socket", sun.sun_path);
		if (unlink(sun.sun_path) != 0 ||
		    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
			log_warnx("%s: %s", sun.sun_path, strerror(errno));
			rc = ERR_IO;
			goto out;
		}
	}
	if ((rc = sim_pin(sun.sun_path, &s->sock_pin)) != 0) {
		unlink(sun.sun_path);
		goto out;
	}
	if (listen(fd, SIM_BACKLOG) != 0) {
		log_warnx("listen: %s", strerror(errno));
		rc = ERR_IO;
		goto out;
	}

	len = snprintf(info, sizeof(info), "name=%s\ncod=0x%06x\nrssi=%d\n",
	    self->name, (unsigned)self->cod, self->rssi);
	if (len < 0 || (size_t)len >= sizeof(info)) {
		rc = ERR_INTERNAL;	/* the dispatch bounded every field */
		goto out;
	}
	if ((rc = file_write_atomic(info_path, info, (size_t)len, 0600)) != 0)
		goto out;
	if ((rc = sim_pin(info_path, &s->info_pin)) != 0) {
		unlink(info_path);
		goto out;
	}

	s->self = *self;
	s->lfd = fd;
	fd = -1;
	log_info("sim radio listening as %s", sun.sun_path);
	rc = 0;
out:
	if (fd >= 0) {
		sim_unlink_pinned(sun.sun_path, &s->sock_pin);
		close(fd);
	}
	return rc;
}

static int
sim_link_new(int fd, struct radio_link *l)
{
	struct sim_link *sl;

	if ((sl = calloc(1, sizeof(*sl))) == NULL)
		return ERR_NOMEM;
	sl->fd = fd;
	l->be = sl;
	return 0;
}

static int
sim_connect(struct radio *r, const uint8_t addr[MAC_LEN], int timeout_ms,
    struct radio_link *l)
{
	struct sim_radio *s = r->be;
	uint64_t deadline = radio_deadline_set(timeout_ms);
	uint8_t hdr[SIM_HDR_LEN];
	struct sockaddr_un sun;
	size_t sent;
	int fd = -1, rc = ERR_INTERNAL;

	sim_sockaddr(s, addr, &sun);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		log_warnx("socket: %s", strerror(errno));
		rc = ERR_IO;
		goto out;
	}
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		int left;

		if (errno == EINTR)
			continue;
		if (errno == ENOENT || errno == ECONNREFUSED || errno == ENOTDIR) {
			log_debug("%s: no device in range", sun.sun_path);
			rc = ERR_NOT_FOUND;
			goto out;
		}
		if (errno != EAGAIN) {
			log_warnx("%s: %s", sun.sun_path, strerror(errno));
			rc = ERR_IO;
			goto out;
		}
		/* the device's backlog is full: it is busy, try again */
		if ((left = radio_deadline_left(deadline)) == 0) {
			rc = ERR_TIMEOUT;
			goto out;
		}
		sim_sleep_ms(left < 0 || left > SIM_RETRY_MS ? SIM_RETRY_MS : left);
	}

	memcpy(hdr, SIM_MAGIC, 4);
	hdr[4] = SIM_VERSION;
	hdr[5] = 0;
	memcpy(hdr + 6, sim_own_addr(s), MAC_LEN);
	if ((rc = radio_fd_write_all(fd, hdr, sizeof(hdr), &sent, deadline)) != 0) {
		log_debug("%s: sending the header: %s", sun.sun_path,
		    provd_strerror(rc));
		goto out;
	}
	if ((rc = sim_link_new(fd, l)) != 0)
		goto out;
	fd = -1;
	memcpy(l->peer, addr, MAC_LEN);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Reads and checks the baseband header on a new connection. */
static int
sim_header_read(int fd, uint64_t deadline, uint8_t peer[MAC_LEN])
{
	uint8_t hdr[SIM_HDR_LEN];
	size_t got;
	int rc;

	if ((rc = sim_fd_read_exact(fd, hdr, sizeof(hdr), &got, deadline)) != 0) {
		if (rc == ERR_IO && got == 0)
			log_debug("connection closed before its header (an inquiry probe)");
		else
			log_warnx("dropping a connection: %s after %zu of %d header bytes",
			    provd_strerror(rc), got, SIM_HDR_LEN);
		return rc;
	}
	if (memcmp(hdr, SIM_MAGIC, 4) != 0 || hdr[4] != SIM_VERSION || hdr[5] != 0 ||
	    !radio_addr_ok(hdr + 6)) {
		log_warnx("dropping a connection with an invalid baseband header");
		return ERR_INVALID;
	}
	memcpy(peer, hdr + 6, MAC_LEN);
	return 0;
}

static int
sim_accept(struct radio *r, int timeout_ms, struct radio_link *l)
{
	struct sim_radio *s = r->be;
	uint64_t deadline = radio_deadline_set(timeout_ms);
	uint8_t peer[MAC_LEN];
	int fd = -1, rc = ERR_INTERNAL;

	if (s->lfd < 0) {
		log_warnx("sim radio: accept without listen");
		return ERR_CONFLICT;
	}
	for (;;) {
		int left;

		if ((rc = radio_fd_wait(s->lfd, POLLIN, deadline)) != 0)
			goto out;
		fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR || errno == ECONNABORTED)
				continue;
			log_warnx("accept: %s", strerror(errno));
			rc = ERR_IO;
			goto out;
		}
		/* A silent peer may hold accept for SIM_HDR_TIMEOUT_MS at
		 * most. A connection taken just before the deadline still
		 * gets SIM_HDR_GRACE_MS for its header rather than being
		 * dropped: accept may overrun its timeout by that much. */
		left = radio_deadline_left(deadline);
		if (left < 0 || left > SIM_HDR_TIMEOUT_MS)
			left = SIM_HDR_TIMEOUT_MS;
		else if (left < SIM_HDR_GRACE_MS)
			left = SIM_HDR_GRACE_MS;
		if (sim_header_read(fd, radio_deadline_set(left), peer) == 0)
			break;
		close(fd);
		fd = -1;
	}
	if ((rc = sim_link_new(fd, l)) != 0)
		goto out;
	fd = -1;
	memcpy(l->peer, peer, MAC_LEN);
	{
		char ps[MAC_STR_LEN];
		mac_format(peer, ps);
		log_debug("link from %s", ps);
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

static int
sim_link_write(struct radio_link *l, const void *buf, size_t len, int timeout_ms)
{
	struct sim_link *sl = l->be;
	uint64_t deadline = radio_deadline_set(timeout_ms);
	size_t n = len, sent = 0;
	int rc, reaches = 0;

	if (sl->dropped)
		return ERR_IO;
	if (sl->delay_ms > 0)
		sim_sleep_ms(sl->delay_ms);
	if (sl->drop_armed && len >= sl->drop_left) {
		n = sl->drop_left;	/* only up to the limit */
		reaches = 1;
	}
	rc = radio_fd_write_all(sl->fd, buf, n, &sent, deadline);
	if (sl->drop_armed)
		sl->drop_left -= sent;
	if (rc != 0)
		return rc;
	if (reaches) {
		/* both directions, so the peer reads what was sent, then EOF */
		shutdown(sl->fd, SHUT_RDWR);
		sl->dropped = 1;
		sl->drop_armed = 0;
		log_info("sim link dropped by its fault hook");
		return n < len ? ERR_IO : 0;
	}
	return 0;
}

static int
sim_link_read_some(struct radio_link *l, void *buf, size_t len, size_t *got,
    int timeout_ms)
{
	struct sim_link *sl = l->be;

	if (sl->dropped)
		return ERR_IO;
	return radio_fd_read_some(sl->fd, buf, len, got, radio_deadline_set(timeout_ms));
}

static int
sim_link_fd(const struct radio_link *l)
{
	const struct sim_link *sl = l->be;

	return sl->fd;
}

static int
sim_link_set_fault(struct radio_link *l, size_t drop_after, int delay_ms)
{
	struct sim_link *sl = l->be;

	if (delay_ms > SIM_DELAY_MAX_MS)
		return ERR_INVALID;
	sl->drop_armed = drop_after > 0;
	sl->drop_left = drop_after;
	sl->delay_ms = delay_ms;
	return 0;
}

static void
sim_link_close(struct radio_link *l)
{
	struct sim_link *sl = l->be;

	if (sl == NULL)
		return;
	close(sl->fd);
	free(sl);
	l->be = NULL;
}

const struct radio_ops radio_sim_ops = {
	.name = "sim",
	.open = sim_open,
	.close = sim_close,
	.inquire = sim_inquire,
	.connect = sim_connect,
	.listen = sim_listen,
	.accept = sim_accept,
	.link_write = sim_link_write,
	.link_read_some = sim_link_read_some,
	.link_fd = sim_link_fd,
	.link_set_fault = sim_link_set_fault,
	.link_close = sim_link_close,
};
