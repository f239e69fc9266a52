/*
 * test_radio_sim.c: the radio interface over the sim backend — inquiry lists
 * live devices only, links carry bytes both ways with the right peer
 * addresses, timeouts and drops surface as ERR_TIMEOUT and ERR_IO, and
 * whatever another party puts in the air (headers, .info files) is checked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "provision/provision.h"

/* Each test runs in its own directory; the air is a subdirectory the radio
 * itself creates. */
struct t {
	char root[64];
	char air[96];
	pid_t child;		/* a device process, killed at teardown */
};

static int
setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	snprintf(t->root, sizeof(t->root), "/tmp/provd-test-radio.XXXXXX");
	if (mkdtemp(t->root) == NULL) {
		free(t);
		return -1;
	}
	snprintf(t->air, sizeof(t->air), "%s/air", t->root);
	*state = t;
	return 0;
}

/* Removes every entry of a flat directory, then the directory. */
static void
rm_flat(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) != 0)
			unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
	rmdir(dir);
}

static int
teardown(void **state)
{
	struct t *t = *state;

	if (t->child > 0) {
		kill(t->child, SIGKILL);
		waitpid(t->child, NULL, 0);
	}
	rm_flat(t->air);
	rm_flat(t->root);
	free(t);
	return 0;
}

static struct radio *
open_sim(const struct t *t)
{
	struct radio_params p = { .backend = "sim", .sim_dir = t->air };
	struct radio *r = NULL;

	assert_int_equal(radio_open(&p, &r), 0);
	assert_non_null(r);
	assert_string_equal(radio_backend(r), "sim");
	return r;
}

static struct radio_device
dev_make(const char *mac, const char *name, uint32_t cod, int rssi)
{
	struct radio_device d;

	memset(&d, 0, sizeof(d));
	assert_int_equal(mac_parse(mac, d.addr), 0);
	snprintf(d.name, sizeof(d.name), "%s", name);
	d.cod = cod;
	d.rssi = rssi;
	return d;
}

static struct radio *
open_device(const struct t *t, const char *mac, const char *name)
{
	struct radio *r = open_sim(t);
	struct radio_device self = dev_make(mac, name, 0x240404, -40);

	assert_int_equal(radio_listen(r, &self), 0);
	return r;
}

static void
air_path(const struct t *t, const char *name, char *out, size_t outlen)
{
	assert_true((size_t)snprintf(out, outlen, "%s/%s", t->air, name) < outlen);
}

static void
write_file(const struct t *t, const char *name, const void *data, size_t len)
{
	char p[256];
	FILE *f;

	air_path(t, name, p, sizeof(p));
	assert_non_null(f = fopen(p, "w"));
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* A Unix socket bound at <air>/<name>; listening when listen_too, else
 * closed at once so only the file remains (as after a killed process). */
static int
raw_bind(const struct t *t, const char *name, int listen_too)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	air_path(t, name, sun.sun_path, sizeof(sun.sun_path));
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	if (!listen_too) {
		close(fd);
		return -1;
	}
	assert_int_equal(listen(fd, 16), 0);
	return fd;
}

/* A raw client of the device at mac: the party that speaks no baseband. */
static int
raw_connect(const struct t *t, const char *hex)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char name[32];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(name, sizeof(name), "%s.sock", hex);
	air_path(t, name, sun.sun_path, sizeof(sun.sun_path));
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

static size_t
inquire(struct radio *r, struct radio_device *out, size_t max)
{
	size_t n = 12345;

	assert_int_equal(radio_inquire(r, 2000, out, max, &n), 0);
	assert_true(n <= max);
	return n;
}

/* Connects server to the device at mac and accepts on device. */
static void
link_pair(struct radio *server, struct radio *device, const char *mac,
    struct radio_link **cl, struct radio_link **al)
{
	uint8_t addr[MAC_LEN];

	assert_int_equal(mac_parse(mac, addr), 0);
	assert_int_equal(radio_connect(server, addr, 1000, cl), 0);
	assert_int_equal(radio_accept(device, 1000, al), 0);
	assert_non_null(*cl);
	assert_non_null(*al);
}

static uint64_t
ms_since(uint64_t start)
{
	return (now_ns() - start) / 1000000u;
}

/* ------------------------------------------------------------------ */

static void
test_unknown_backend(void **state)
{
	const struct t *t = *state;
	struct radio_params p = { .backend = "bluez5", .sim_dir = t->air, .adapter = "hci0" };
	struct radio *r = (struct radio *)&p;	/* must be reset to NULL */

	assert_int_equal(radio_open(&p, &r), ERR_CONFIG);
	assert_null(r);
	p.backend = "nope";
	r = (struct radio *)&p;
	assert_int_equal(radio_open(&p, &r), ERR_CONFIG);
	assert_null(r);
	p.backend = "SIM";
	assert_int_equal(radio_open(&p, &r), ERR_CONFIG);
	p.backend = NULL;
	assert_int_equal(radio_open(&p, &r), ERR_CONFIG);
	assert_int_equal(radio_open(NULL, &r), ERR_CONFIG);
	assert_null(r);
	radio_close(NULL);
	radio_link_close(NULL);
	assert_string_equal(radio_backend(NULL), "none");
}

static void
test_open_sim_params(void **state)
{
	const struct t *t = *state;
	struct radio_params p = { .backend = "sim" };
	struct radio *r = NULL;
	char longdir[200], file[128];
	struct stat st;

	assert_int_equal(radio_open(&p, &r), ERR_CONFIG);	/* no sim_dir */
	p.sim_dir = "";
	assert_int_equal(radio_open(&p, &r), ERR_CONFIG);
	/* too long for socket names under it */
	memset(longdir, 'a', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	p.sim_dir = longdir;
	assert_int_equal(radio_open(&p, &r), ERR_CONFIG);
	/* parent missing */
	snprintf(file, sizeof(file), "%s/no/such", t->root);
	p.sim_dir = file;
	assert_int_equal(radio_open(&p, &r), ERR_CONFIG);
	/* a file, not a directory */
	snprintf(file, sizeof(file), "%s/plain", t->root);
	fclose(fopen(file, "w"));
	assert_int_equal(radio_open(&p, &r), ERR_CONFIG);
	assert_null(r);
	unlink(file);

	/* the air is created, private to its user */
	r = open_sim(t);
	assert_int_equal(stat(t->air, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	radio_close(r);
}

static void
test_inquire_sees_device(void **state)
{
	const struct t *t = *state;
	struct radio *dev = open_sim(t), *srv = open_sim(t), *dev2, *dev3;
	struct radio_device self = dev_make("02:00:00:00:00:42", "Scanner \xc3\xa9 42",
	    0x5a020c, -57);
	struct radio_device out[4];
	char sock[256], info[256];
	struct stat st;

	assert_int_equal(inquire(srv, out, 4), 0);
	assert_int_equal(radio_listen(dev, &self), 0);
	air_path(t, "020000000042.sock", sock, sizeof(sock));
	air_path(t, "020000000042.info", info, sizeof(info));
	assert_int_equal(stat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(stat(info, &st), 0);

	assert_int_equal(inquire(srv, out, 4), 1);
	assert_memory_equal(out[0].addr, self.addr, MAC_LEN);
	assert_string_equal(out[0].name, "Scanner \xc3\xa9 42");
	assert_int_equal(out[0].cod, 0x5a020c);
	assert_int_equal(out[0].rssi, -57);
	/* a radio does not find itself */
	assert_int_equal(inquire(dev, out, 4), 0);

	/* more devices come back sorted by address, at most max of them */
	dev2 = open_device(t, "00:1a:7d:da:71:13", "");
	dev3 = open_device(t, "0a:00:00:00:00:01", "third");
	assert_int_equal(inquire(srv, out, 4), 3);
	assert_int_equal(out[0].addr[0], 0x00);
	assert_string_equal(out[0].name, "");
	assert_int_equal(out[1].addr[0], 0x02);
	assert_int_equal(out[2].addr[0], 0x0a);
	assert_int_equal(inquire(srv, out, 2), 2);
	assert_int_equal(out[0].addr[0], 0x00);
	assert_int_equal(out[1].addr[0], 0x02);
	assert_int_equal(inquire(srv, out, 0), 0);
	assert_int_equal(radio_inquire(srv, 2000, NULL, 4, (size_t[]){ 0 }), ERR_INVALID);
	/* the time limit holds: no time, no devices; no limit, all of them */
	size_t n = 99;
	assert_int_equal(radio_inquire(srv, 0, out, 4, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(radio_inquire(srv, -1, out, 4, &n), 0);
	assert_int_equal(n, 3);

	/* closing a radio takes its files out of the air */
	radio_close(dev);
	assert_int_equal(stat(sock, &st), -1);
	assert_int_equal(stat(info, &st), -1);
	assert_int_equal(inquire(srv, out, 4), 2);
	radio_close(dev2);
	radio_close(dev3);
	assert_int_equal(inquire(srv, out, 4), 0);
	radio_close(srv);
}

static void
test_inquire_sorted_many(void **state)
{
	const struct t *t = *state;
	enum { N = 24 };
	struct radio *devs[N], *srv = open_sim(t);
	struct radio_device out[RADIO_INQUIRY_MAX], first[5];
	char mac[MAC_STR_LEN];
	size_t n;

	/* addresses in a scrambled order: i * 7 mod N in the last byte,
	 * i in the first, so neither creation nor name order is sorted */
	for (int i = 0; i < N; i++) {
		snprintf(mac, sizeof(mac), "%02x:00:00:00:00:%02x",
		    (unsigned)((((i * 7) % N) << 2) | 0x02), (unsigned)i);
		devs[i] = open_device(t, mac, "many");
	}
	n = inquire(srv, out, RADIO_INQUIRY_MAX);
	assert_int_equal(n, N);
	for (size_t i = 1; i < n; i++)
		assert_true(memcmp(out[i - 1].addr, out[i].addr, MAC_LEN) < 0);
	/* a short list holds the lowest addresses */
	assert_int_equal(inquire(srv, first, 5), 5);
	assert_memory_equal(first, out, sizeof(first));
	for (int i = 0; i < N; i++)
		radio_close(devs[i]);
	assert_int_equal(inquire(srv, out, RADIO_INQUIRY_MAX), 0);
	radio_close(srv);
}

static void
test_dead_devices_not_listed(void **state)
{
	const struct t *t = *state;
	static const char good[] = "name=ghost\ncod=0x240404\nrssi=-40\n";
	struct radio *srv = open_sim(t), *dev;
	struct radio_device out[4];
	int lfd;

	/* files left by a killed process: info plus a socket nobody listens on */
	write_file(t, "020000000001.info", good, strlen(good));
	raw_bind(t, "020000000001.sock", 0);
	/* info without any socket */
	write_file(t, "020000000002.info", good, strlen(good));
	/* bound but not listening */
	write_file(t, "020000000003.info", good, strlen(good));
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	{
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		air_path(t, "020000000003.sock", sun.sun_path, sizeof(sun.sun_path));
		assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	}
	/* the same files with a live listener are listed: the check can fail */
	write_file(t, "020000000004.info", good, strlen(good));
	int live = raw_bind(t, "020000000004.sock", 1);

	assert_int_equal(inquire(srv, out, 4), 1);
	assert_int_equal(out[0].addr[5], 0x04);
	assert_string_equal(out[0].name, "ghost");
	close(live);
	close(lfd);
	assert_int_equal(inquire(srv, out, 4), 0);

	/* a new device takes over the stale address; then it is listed */
	dev = open_device(t, "02:00:00:00:00:01", "reborn");
	assert_int_equal(inquire(srv, out, 4), 1);
	assert_string_equal(out[0].name, "reborn");
	radio_close(dev);
	radio_close(srv);
}

static void
test_killed_device_process(void **state)
{
	struct t *t = *state;
	struct radio *srv = open_sim(t);
	struct radio_device out[2];
	int ready[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct radio *dev;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		struct radio_params p = { .backend = "sim", .sim_dir = t->air };
		struct radio_device self = dev_make("02:00:00:00:00:99", "child", 1, -3);
		if (radio_open(&p, &dev) != 0 || radio_listen(dev, &self) != 0)
			_exit(1);
		(void)write(ready[1], "x", 1);
		for (;;)
			pause();
	}
	t->child = pid;
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	assert_int_equal(inquire(srv, out, 2), 1);
	assert_string_equal(out[0].name, "child");
	assert_int_equal(out[0].rssi, -3);

	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	t->child = 0;
	/* its files are still there, but it is not in range */
	char p[256];
	struct stat st;
	air_path(t, "020000000099.info", p, sizeof(p));
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(inquire(srv, out, 2), 0);
	uint8_t addr[MAC_LEN];
	struct radio_link *l = NULL;
	assert_int_equal(mac_parse("02:00:00:00:00:99", addr), 0);
	assert_int_equal(radio_connect(srv, addr, 500, &l), ERR_NOT_FOUND);
	assert_null(l);
	radio_close(srv);
}

static void
test_connect_accept_both_ways(void **state)
{
	const struct t *t = *state;
	struct radio *dev = open_device(t, "02:11:22:33:44:55", "dev");
	struct radio *srv = open_sim(t);
	struct radio_link *cl = NULL, *al = NULL, *cl2 = NULL, *al2 = NULL;
	uint8_t peer[MAC_LEN], peer2[MAC_LEN], want[MAC_LEN];
	char buf[64];
	size_t got;

	link_pair(srv, dev, "02:11:22:33:44:55", &cl, &al);
	/* the connector's peer is the address it dialled */
	radio_link_peer(cl, peer);
	assert_int_equal(mac_parse("02:11:22:33:44:55", want), 0);
	assert_memory_equal(peer, want, MAC_LEN);
	/* the acceptor sees the server's own address: random, locally
	 * administered, unicast, and the same on every link */
	radio_link_peer(al, peer);
	assert_int_equal(peer[0] & 0x03, 0x02);
	assert_memory_not_equal(peer, want, MAC_LEN);

	assert_int_equal(radio_link_write(cl, "hello device", 12, 1000), 0);
	assert_int_equal(radio_link_read(al, buf, 12, 1000), 0);
	assert_memory_equal(buf, "hello device", 12);
	assert_int_equal(radio_link_write(al, "hi server!", 10, 1000), 0);
	/* the fd becomes readable when data arrives */
	struct pollfd pfd = { .fd = radio_link_fd(cl), .events = POLLIN };
	assert_true(pfd.fd >= 0);
	assert_int_equal(poll(&pfd, 1, 1000), 1);
	assert_int_equal(radio_link_read_some(cl, buf, sizeof(buf), &got, 1000), 0);
	assert_true(got >= 1 && got <= 10);
	assert_int_equal(radio_link_read(cl, buf + got, 10 - got, 1000), 0);
	assert_memory_equal(buf, "hi server!", 10);

	/* an exact read across several writes */
	assert_int_equal(radio_link_write(cl, "abc", 3, 1000), 0);
	assert_int_equal(radio_link_write(cl, "defgh", 5, 1000), 0);
	assert_int_equal(radio_link_read(al, buf, 8, 1000), 0);
	assert_memory_equal(buf, "abcdefgh", 8);
	assert_int_equal(radio_link_read_some(al, buf, 0, &got, 10), ERR_INVALID);
	assert_int_equal(radio_link_read(al, buf, 0, 10), 0);
	assert_int_equal(radio_link_write(al, buf, 0, 10), 0);

	link_pair(srv, dev, "02:11:22:33:44:55", &cl2, &al2);
	radio_link_peer(al2, peer2);
	assert_memory_equal(peer, peer2, MAC_LEN);
	radio_link_close(cl2);
	radio_link_close(al2);

	/* a server that listens itself shows its listening address */
	struct radio_device me = dev_make("02:00:00:00:0a:0b", "server", 0, 0);
	assert_int_equal(radio_listen(srv, &me), 0);
	link_pair(srv, dev, "02:11:22:33:44:55", &cl2, &al2);
	radio_link_peer(al2, peer2);
	assert_memory_equal(peer2, me.addr, MAC_LEN);

	radio_link_close(cl2);
	radio_link_close(al2);
	radio_link_close(cl);
	radio_link_close(al);
	radio_close(srv);
	radio_close(dev);
}

static void
test_links_outlive_radio(void **state)
{
	const struct t *t = *state;
	struct radio *dev = open_device(t, "02:11:22:33:44:56", "dev");
	struct radio *srv = open_sim(t);
	struct radio_link *cl = NULL, *al = NULL;
	char buf[4];

	link_pair(srv, dev, "02:11:22:33:44:56", &cl, &al);
	radio_close(dev);
	radio_close(srv);
	assert_int_equal(radio_link_write(cl, "ping", 4, 1000), 0);
	assert_int_equal(radio_link_read(al, buf, 4, 1000), 0);
	assert_memory_equal(buf, "ping", 4);
	radio_link_close(cl);
	radio_link_close(al);
}

static void
test_connect_not_in_range(void **state)
{
	const struct t *t = *state;
	struct radio *srv = open_sim(t), *dev;
	struct radio_link *l = (struct radio_link *)srv;	/* must be reset */
	uint8_t addr[MAC_LEN];

	assert_int_equal(mac_parse("02:de:ad:be:ef:00", addr), 0);
	assert_int_equal(radio_connect(srv, addr, 500, &l), ERR_NOT_FOUND);
	assert_null(l);
	/* in range once it listens, out of range again after it closes */
	dev = open_device(t, "02:de:ad:be:ef:00", "d");
	assert_int_equal(radio_connect(srv, addr, 500, &l), 0);
	radio_link_close(l);
	radio_close(dev);
	assert_int_equal(radio_connect(srv, addr, 500, &l), ERR_NOT_FOUND);
	assert_null(l);
	/* addresses that no device can have */
	static const uint8_t zero[MAC_LEN], mcast[MAC_LEN] = { 1, 0, 0x5e, 0, 0, 1 };
	assert_int_equal(radio_connect(srv, zero, 500, &l), ERR_BAD_MAC);
	assert_int_equal(radio_connect(srv, mcast, 500, &l), ERR_BAD_MAC);
	radio_close(srv);
}

static void
test_read_timeout(void **state)
{
	const struct t *t = *state;
	struct radio *dev = open_device(t, "02:00:00:00:00:07", "d");
	struct radio *srv = open_sim(t);
	struct radio_link *cl = NULL, *al = NULL;
	char buf[16];
	size_t got = 99;
	uint64_t start;

	link_pair(srv, dev, "02:00:00:00:00:07", &cl, &al);
	start = now_ns();
	assert_int_equal(radio_link_read(cl, buf, 4, 150), ERR_TIMEOUT);
	assert_true(ms_since(start) >= 140);
	assert_true(ms_since(start) < 2000);
	assert_int_equal(radio_link_read_some(al, buf, sizeof(buf), &got, 50), ERR_TIMEOUT);
	assert_int_equal(got, 0);
	assert_int_equal(radio_link_read_some(al, buf, sizeof(buf), &got, 0), ERR_TIMEOUT);
	/* a part of what was asked for is not enough */
	assert_int_equal(radio_link_write(al, "ab", 2, 1000), 0);
	assert_int_equal(radio_link_read(cl, buf, 4, 100), ERR_TIMEOUT);
	/* accept with nobody connecting */
	start = now_ns();
	struct radio_link *l = NULL;
	assert_int_equal(radio_accept(dev, 100, &l), ERR_TIMEOUT);
	assert_null(l);
	assert_true(ms_since(start) >= 90);
	/* accept without listen */
	assert_int_equal(radio_accept(srv, 100, &l), ERR_CONFLICT);
	radio_link_close(cl);
	radio_link_close(al);
	radio_close(srv);
	radio_close(dev);
}

static void
test_peer_closes(void **state)
{
	const struct t *t = *state;
	struct radio *dev = open_device(t, "02:00:00:00:00:08", "d");
	struct radio *srv = open_sim(t);
	struct radio_link *cl = NULL, *al = NULL;
	char buf[4096];
	size_t got;
	int rc = 0;

	link_pair(srv, dev, "02:00:00:00:00:08", &cl, &al);
	assert_int_equal(radio_link_write(al, "bye", 3, 1000), 0);
	radio_link_close(al);
	/* what was sent before the close still arrives, then EOF */
	assert_int_equal(radio_link_read(cl, buf, 3, 1000), 0);
	assert_int_equal(radio_link_read(cl, buf, 1, 1000), ERR_IO);
	assert_int_equal(radio_link_read_some(cl, buf, 1, &got, 1000), ERR_IO);
	/* writing to a closed peer fails without SIGPIPE */
	memset(buf, 'x', sizeof(buf));
	for (int i = 0; i < 1000 && rc == 0; i++)
		rc = radio_link_write(cl, buf, sizeof(buf), 1000);
	assert_int_equal(rc, ERR_IO);
	radio_link_close(cl);
	radio_close(srv);
	radio_close(dev);
}

/* Reads until the link fails; returns how many bytes came first. */
static size_t
drain(struct radio_link *l, char *buf, size_t cap)
{
	size_t total = 0, got;
	int rc;

	while ((rc = radio_link_read_some(l, buf + total, cap - total, &got, 1000)) == 0) {
		total += got;
		assert_true(total < cap);
	}
	assert_int_equal(rc, ERR_IO);
	return total;
}

static void
test_fault_drop(void **state)
{
	const struct t *t = *state;
	struct radio *dev = open_device(t, "02:00:00:00:00:09", "d");
	struct radio *srv = open_sim(t);
	struct radio_link *cl = NULL, *al = NULL;
	char buf[256];

	/* one write crosses the limit: only the limit goes out */
	link_pair(srv, dev, "02:00:00:00:00:09", &cl, &al);
	assert_int_equal(radio_link_set_fault(cl, 10, 0), 0);
	assert_int_equal(radio_link_write(cl, "0123456789ABCDEFGHIJKLMNO", 25, 1000), ERR_IO);
	assert_int_equal(drain(al, buf, sizeof(buf)), 10);
	assert_memory_equal(buf, "0123456789", 10);
	assert_int_equal(radio_link_write(cl, "x", 1, 1000), ERR_IO);
	assert_int_equal(radio_link_read(cl, buf, 1, 100), ERR_IO);
	/* the peer's writes fail too: both directions are down */
	int rc = 0;
	for (int i = 0; i < 100 && rc == 0; i++)
		rc = radio_link_write(al, buf, sizeof(buf), 1000);
	assert_int_equal(rc, ERR_IO);
	radio_link_close(cl);
	radio_link_close(al);

	/* several writes: the limit counts them all */
	link_pair(srv, dev, "02:00:00:00:00:09", &cl, &al);
	assert_int_equal(radio_link_set_fault(al, 10, 0), 0);
	assert_int_equal(radio_link_write(al, "aaaa", 4, 1000), 0);
	assert_int_equal(radio_link_write(al, "bbbb", 4, 1000), 0);
	assert_int_equal(radio_link_write(al, "cccc", 4, 1000), ERR_IO);
	assert_int_equal(drain(cl, buf, sizeof(buf)), 10);
	assert_memory_equal(buf, "aaaabbbbcc", 10);
	radio_link_close(cl);
	radio_link_close(al);

	/* a write that ends exactly at the limit succeeds; the link is down after */
	link_pair(srv, dev, "02:00:00:00:00:09", &cl, &al);
	assert_int_equal(radio_link_set_fault(cl, 5, 0), 0);
	assert_int_equal(radio_link_write(cl, "12345", 5, 1000), 0);
	assert_int_equal(radio_link_write(cl, "6", 1, 1000), ERR_IO);
	assert_int_equal(drain(al, buf, sizeof(buf)), 5);
	radio_link_close(cl);
	radio_link_close(al);

	/* 0 disarms: nothing drops */
	link_pair(srv, dev, "02:00:00:00:00:09", &cl, &al);
	assert_int_equal(radio_link_set_fault(cl, 3, 0), 0);
	assert_int_equal(radio_link_set_fault(cl, 0, 0), 0);
	assert_int_equal(radio_link_write(cl, "123456", 6, 1000), 0);
	assert_int_equal(radio_link_read(al, buf, 6, 1000), 0);
	assert_int_equal(radio_link_set_fault(cl, 0, -1), ERR_INVALID);
	radio_link_close(cl);
	radio_link_close(al);
	radio_close(srv);
	radio_close(dev);
}

static void
test_fault_delay(void **state)
{
	const struct t *t = *state;
	struct radio *dev = open_device(t, "02:00:00:00:00:0a", "d");
	struct radio *srv = open_sim(t);
	struct radio_link *cl = NULL, *al = NULL;
	char buf[8];
	uint64_t start;

	link_pair(srv, dev, "02:00:00:00:00:0a", &cl, &al);
	assert_int_equal(radio_link_set_fault(cl, 0, 150), 0);
	start = now_ns();
	assert_int_equal(radio_link_write(cl, "slow", 4, 1000), 0);
	assert_true(ms_since(start) >= 140);
	start = now_ns();
	assert_int_equal(radio_link_write(cl, "er", 2, 1000), 0);
	assert_true(ms_since(start) >= 140);
	assert_int_equal(radio_link_read(al, buf, 6, 1000), 0);
	assert_memory_equal(buf, "slower", 6);
	/* the other direction is not delayed */
	start = now_ns();
	assert_int_equal(radio_link_write(al, "fast", 4, 1000), 0);
	assert_true(ms_since(start) < 100);
	radio_link_close(cl);
	radio_link_close(al);
	radio_close(srv);
	radio_close(dev);
}

static void
test_bogus_header_refused(void **state)
{
	const struct t *t = *state;
	struct radio *dev = open_device(t, "02:00:00:00:00:0b", "d");
	struct radio *srv = open_sim(t);
	struct radio_link *cl = NULL, *al = NULL;
	uint8_t peer[MAC_LEN], want[MAC_LEN];
	char c;
	int raw[5];

	/* garbage of the right size */
	raw[0] = raw_connect(t, "02000000000b");
	assert_int_equal(write(raw[0], "GARBAGEGARBA", 12), 12);
	/* a wrong magic, everything else right */
	raw[3] = raw_connect(t, "02000000000b");
	assert_int_equal(write(raw[3], "pvsB\x01\x00\x02\x00\x00\x00\x00\x01", 12), 12);
	/* the right magic, a group address */
	raw[1] = raw_connect(t, "02000000000b");
	assert_int_equal(write(raw[1], "pvsb\x01\x00\x01\x00\x5e\x00\x00\x01", 12), 12);
	/* the right magic, a wrong version */
	raw[2] = raw_connect(t, "02000000000b");
	assert_int_equal(write(raw[2], "pvsb\x02\x00\x02\x00\x00\x00\x00\x01", 12), 12);
	/* too short, then closed */
	raw[4] = raw_connect(t, "02000000000b");
	assert_int_equal(write(raw[4], "pvs", 3), 3);
	close(raw[4]);
	/* nothing at all */
	raw[4] = raw_connect(t, "02000000000b");
	close(raw[4]);

	/* none of these is a link */
	assert_int_equal(radio_accept(dev, 300, &al), ERR_TIMEOUT);
	assert_null(al);
	for (int i = 0; i < 4; i++) {
		struct pollfd pfd = { .fd = raw[i], .events = POLLIN };
		assert_int_equal(poll(&pfd, 1, 1000), 1);
		assert_int_equal(read(raw[i], &c, 1), 0);	/* dropped */
		close(raw[i]);
	}

	/* a silent connection ahead of a real one holds accept only briefly */
	raw[0] = raw_connect(t, "02000000000b");
	assert_int_equal(write(raw[0], "pv", 2), 2);
	assert_int_equal(mac_parse("02:00:00:00:00:0b", want), 0);
	assert_int_equal(radio_connect(srv, want, 1000, &cl), 0);
	uint64_t start = now_ns();
	assert_int_equal(radio_accept(dev, 5000, &al), 0);
	assert_true(ms_since(start) < 3000);
	radio_link_peer(al, peer);
	assert_int_equal(peer[0] & 0x03, 0x02);
	assert_int_equal(mac_parse("02:00:00:00:00:0b", want), 0);
	radio_link_peer(cl, peer);
	assert_memory_equal(peer, want, MAC_LEN);
	assert_int_equal(radio_link_write(cl, "ok", 2, 1000), 0);
	assert_int_equal(radio_link_read(al, &c, 1, 1000), 0);
	assert_int_equal(c, 'o');
	close(raw[0]);

	/* a well-formed header from a raw client names its address */
	raw[0] = raw_connect(t, "02000000000b");
	assert_int_equal(write(raw[0], "pvsb\x01\x00\x00\x1a\x7d\xda\x71\x13" "after", 17), 17);
	struct radio_link *rl = NULL;
	assert_int_equal(radio_accept(dev, 1000, &rl), 0);
	radio_link_peer(rl, peer);
	assert_int_equal(mac_parse("00:1a:7d:da:71:13", want), 0);
	assert_memory_equal(peer, want, MAC_LEN);
	char after[5];
	assert_int_equal(radio_link_read(rl, after, 5, 1000), 0);	/* not eaten */
	assert_memory_equal(after, "after", 5);
	radio_link_close(rl);
	close(raw[0]);

	radio_link_close(cl);
	radio_link_close(al);
	radio_close(srv);
	radio_close(dev);
}

static void
test_malformed_info_ignored(void **state)
{
	const struct t *t = *state;
	static const char *bad[] = {
		"",
		"name=x\ncod=0x240404\n",				/* rssi missing */
		"name=x\ncod=0x240404\nrssi=-40",			/* no final newline */
		"name=x\nname=y\ncod=0x240404\nrssi=-40\n",		/* twice */
		"name=x\ncod=0x240404\nrssi=-40\nextra=1\n",		/* unknown key */
		"name=x\ncod=240404\nrssi=-40\n",			/* no 0x */
		"name=x\ncod=0x24040\nrssi=-40\n",			/* 5 digits */
		"name=x\ncod=0x1240404\nrssi=-40\n",			/* 7 digits */
		"name=x\ncod=0x24040g\nrssi=-40\n",			/* not hex */
		"name=x\ncod=0x240404\nrssi=-129\n",			/* range */
		"name=x\ncod=0x240404\nrssi=128\n",
		"name=x\ncod=0x240404\nrssi=+5\n",
		"name=x\ncod=0x240404\nrssi= -5\n",
		"name=x\ncod=0x240404\nrssi=\n",
		"name=x\ncod=0x240404\nrssi=--5\n",
		"name=x\ncod=0x240404\nrssi=5-\n",
		"name=x\ncod=0x240404\nrssi=-40\n\n",			/* empty line */
		"name=tab\there\ncod=0x240404\nrssi=-40\n",		/* control char */
		"name=bad\xff utf8\ncod=0x240404\nrssi=-40\n",
		"name=x\r\ncod=0x240404\nrssi=-40\n",
		"name x\ncod=0x240404\nrssi=-40\n",			/* no '=' */
		"NAME=x\ncod=0x240404\nrssi=-40\n",
		"name=0123456789012345678901234567890123456789012345678901234567890123\n"
		    "cod=0x240404\nrssi=-40\n",				/* 64-byte name */
	};
	static const char good[] = "name=ok\ncod=0x240404\nrssi=-40\n";
	static const char nul[] = "name=a\0b\ncod=0x240404\nrssi=-40\n";
	static const char longest[] = "name=012345678901234567890123456789012345678901234567890123456789012\n"
	    "cod=0xffffff\nrssi=-128\n";				/* 63 bytes: fine */
	struct radio *srv = open_sim(t);
	struct radio_device out[4];
	char big[600], p[256], target[256];
	int lfd = raw_bind(t, "020000000020.sock", 1);

	/* the harness itself: a good file next to this listener is listed */
	write_file(t, "020000000020.info", good, strlen(good));
	assert_int_equal(inquire(srv, out, 4), 1);
	assert_string_equal(out[0].name, "ok");
	write_file(t, "020000000020.info", longest, strlen(longest));
	assert_int_equal(inquire(srv, out, 4), 1);
	assert_int_equal(strlen(out[0].name), 63);
	assert_int_equal(out[0].cod, 0xffffff);
	assert_int_equal(out[0].rssi, -128);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(t, "020000000020.info", bad[i], strlen(bad[i]));
		if (inquire(srv, out, 4) != 0)
			fail_msg("listed a device from malformed info #%zu", i);
	}
	write_file(t, "020000000020.info", nul, sizeof(nul) - 1);
	assert_int_equal(inquire(srv, out, 4), 0);
	/* oversized: a valid start and a very long tail */
	memset(big, 'a', sizeof(big));
	memcpy(big, good, strlen(good));
	write_file(t, "020000000020.info", big, sizeof(big));
	assert_int_equal(inquire(srv, out, 4), 0);

	/* a symlink to a good file is not followed */
	air_path(t, "020000000020.info", p, sizeof(p));
	unlink(p);
	snprintf(target, sizeof(target), "%s/good", t->root);
	{
		FILE *f = fopen(target, "w");
		assert_non_null(f);
		fputs(good, f);
		fclose(f);
	}
	assert_int_equal(symlink(target, p), 0);
	assert_int_equal(inquire(srv, out, 4), 0);
	unlink(p);
	unlink(target);
	/* a FIFO neither hangs the inquiry nor is listed */
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_int_equal(inquire(srv, out, 4), 0);
	unlink(p);
	/* a directory */
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(inquire(srv, out, 4), 0);
	rmdir(p);

	/* names that are not "<12 lowercase hex>.info" of a unicast address */
	int l2 = raw_bind(t, "02000000002a.sock", 1);	/* live, lowercase */
	write_file(t, "02000000002A.info", good, strlen(good));
	int l3 = raw_bind(t, "010000000020.sock", 1);
	write_file(t, "010000000020.info", good, strlen(good));
	int l4 = raw_bind(t, "000000000000.sock", 1);
	write_file(t, "000000000000.info", good, strlen(good));
	write_file(t, "020000000020.info.tmp.123", good, strlen(good));
	write_file(t, "02000000002.info", good, strlen(good));
	write_file(t, "0200000000200.info", good, strlen(good));
	assert_int_equal(inquire(srv, out, 4), 0);

	close(l2);
	close(l3);
	close(l4);
	close(lfd);
	radio_close(srv);
}

static void
test_listen_checks(void **state)
{
	const struct t *t = *state;
	struct radio *a = open_sim(t), *b = open_sim(t);
	struct radio_device self = dev_make("02:00:00:00:00:30", "a", 0x240404, -40);
	struct radio_device d;

	d = self;
	memset(d.addr, 0, MAC_LEN);
	assert_int_equal(radio_listen(a, &d), ERR_BAD_MAC);
	d = self;
	d.addr[0] = 0x03;
	assert_int_equal(radio_listen(a, &d), ERR_BAD_MAC);
	d = self;
	memset(d.name, 'n', sizeof(d.name));		/* not terminated */
	assert_int_equal(radio_listen(a, &d), ERR_INVALID);
	d = self;
	snprintf(d.name, sizeof(d.name), "line\nbreak");
	assert_int_equal(radio_listen(a, &d), ERR_INVALID);
	d = self;
	d.cod = 0x1000000;
	assert_int_equal(radio_listen(a, &d), ERR_INVALID);
	d = self;
	d.rssi = -129;
	assert_int_equal(radio_listen(a, &d), ERR_INVALID);
	assert_int_equal(radio_listen(a, NULL), ERR_INVALID);
	/* nothing was left in the air by the refusals */
	struct radio_device out[2];
	assert_int_equal(inquire(b, out, 2), 0);

	assert_int_equal(radio_listen(a, &self), 0);
	assert_int_equal(radio_listen(a, &self), ERR_CONFLICT);
	/* one live device per address */
	assert_int_equal(radio_listen(b, &self), ERR_CONFLICT);
	assert_int_equal(inquire(b, out, 2), 1);
	/* the refused radio did not remove the live device's files */
	radio_close(b);
	b = open_sim(t);
	assert_int_equal(inquire(b, out, 2), 1);
	/* a radio removes only its own files: a's were replaced by c's */
	char p[256];
	struct radio *c = open_sim(t);
	air_path(t, "020000000030.sock", p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	air_path(t, "020000000030.info", p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	struct radio_device cself = self;
	snprintf(cself.name, sizeof(cself.name), "c");
	assert_int_equal(radio_listen(c, &cself), 0);
	radio_close(a);
	assert_int_equal(inquire(b, out, 2), 1);
	assert_string_equal(out[0].name, "c");
	a = c;
	/* accept still works after those probes */
	struct radio_link *cl = NULL, *al = NULL;
	link_pair(b, a, "02:00:00:00:00:30", &cl, &al);
	radio_link_close(cl);
	radio_link_close(al);
	radio_close(a);
	radio_close(b);
}

static void
test_device_in_child_process(void **state)
{
	struct t *t = *state;
	struct radio *srv = open_sim(t);
	struct radio_device out[2];
	struct radio_link *l = NULL;
	int ready[2], status;
	char c, buf[16];
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* an echo device: one link, echo 5 bytes, done */
		struct radio_params p = { .backend = "sim", .sim_dir = t->air };
		struct radio_device self = dev_make("02:00:00:00:00:50", "echo", 0x1f00, -60);
		struct radio *dev = NULL;
		struct radio_link *al = NULL;
		char b[5];
		int rc = 1;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(ready[0]);
		if (radio_open(&p, &dev) == 0 && radio_listen(dev, &self) == 0 &&
		    write(ready[1], "x", 1) == 1 &&
		    radio_accept(dev, 5000, &al) == 0 &&
		    radio_link_read(al, b, 5, 5000) == 0 &&
		    radio_link_write(al, b, 5, 5000) == 0)
			rc = 0;
		radio_link_close(al);
		radio_close(dev);
		_exit(rc);
	}
	t->child = pid;
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	assert_int_equal(inquire(srv, out, 2), 1);
	assert_string_equal(out[0].name, "echo");
	assert_int_equal(out[0].cod, 0x1f00);
	assert_int_equal(radio_connect(srv, out[0].addr, 1000, &l), 0);
	assert_int_equal(radio_link_write(l, "12345", 5, 1000), 0);
	assert_int_equal(radio_link_read(l, buf, 5, 5000), 0);
	assert_memory_equal(buf, "12345", 5);
	/* the device closes after its echo */
	assert_int_equal(radio_link_read(l, buf, 1, 5000), ERR_IO);
	radio_link_close(l);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	t->child = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(inquire(srv, out, 2), 0);
	radio_close(srv);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unknown_backend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_sim_params, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inquire_sees_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inquire_sorted_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_devices_not_listed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_device_process, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_accept_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_links_outlive_radio, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_not_in_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_drop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_delay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bogus_header_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_info_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_in_child_process, setup, teardown),
	};

	log_init("test_radio_sim", LOG_LVL_ERROR, 0, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
