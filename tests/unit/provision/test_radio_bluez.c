/*
 * test_radio_bluez.c: the radio interface over the bluez backend, against a
 * private D-Bus daemon running python3-dbusmock's bluez5 template in place
 * of bluetoothd — opening checks, the agent's registration and its pairing
 * policy, inquiry, pairing on connect and listen's adapter settings. This
 * machine has no Bluetooth sockets, so connect and listen end at the RFCOMM
 * data path; where the kernel has them, any failure to reach the mock's
 * made-up devices is accepted there instead.
 *
 * dbus-daemon and python3-dbusmock come from scripts/deps.sh: without them
 * the group setup fails, and so does every test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <systemd/sd-bus.h>

#include "provision/provision.h"

#define DBUS_DAEMON	"/usr/bin/dbus-daemon"
#define DBUS_CONF	"/usr/share/dbus-1/session.conf"
/* Debian's python3-dbusmock is a module of the system Python */
#define PYTHON		"/usr/bin/python3"
#define START_MS	20000	/* for the bus and the mock to come up */
#define BLUEZ		"org.bluez"
#define HCI0		"/org/bluez/hci0"
#define DEV1		"org.bluez.Device1"
#define AD1		"org.bluez.Adapter1"
#define MOCK_IFACE	"org.freedesktop.DBus.Mock"

/* The devices the group setup puts under hci0 (and one under hci1). */
#define A_PRINTER	"00:1A:7D:DA:71:13"
#define A_SENSOR	"02:00:00:00:00:02"
#define A_BADNAME	"02:00:00:00:00:03"
#define A_PLAIN		"02:00:00:00:00:10"
#define A_CONFIRM	"02:00:00:00:00:11"
#define A_LEGACY	"02:00:00:00:00:12"
#define A_OTHER		"02:00:00:00:00:13"
#define A_PASSKEY	"02:00:00:00:00:14"
#define A_IMPOSTOR	"02:00:00:00:00:15"
#define A_TURN1		"02:00:00:00:00:16"
#define A_TURN2		"02:00:00:00:00:17"
#define A_ODD		"11:22:33:44:55:66"	/* group bit set: not an address here */
#define A_HCI1		"02:00:00:00:00:0E"
#define N_LISTED	11	/* under hci0 with an acceptable address */

struct t {
	char dir[64];
	char addr[160];		/* the private bus, unix:path=... */
	pid_t daemon, mock;
	sd_bus *bus;		/* the test's own connection */
	char *saved_system;	/* DBUS_SYSTEM_BUS_ADDRESS before */
	int env_set;		/* ... and it was replaced */
	struct radio *r;	/* the radio under test */
};

/* ---------------------------------------------------------------------
 * Processes.
 */

static void
path_in(const struct t *t, const char *name, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/%s", t->dir, name);

	if (n < 0 || (size_t)n >= len)
		out[0] = '\0';
}

/* Starts argv[0] with stdout and stderr into the file log (and fd keep_fd
 * as descriptor 3 when >= 0); the child dies with us. */
static pid_t
spawn(char *const argv[], const char *log, int keep_fd, const char *session_bus)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (lfd < 0 || dup2(lfd, 1) < 0 || dup2(lfd, 2) < 0)
		_exit(126);
	if (keep_fd == 3 && fcntl(3, F_SETFD, 0) != 0)	/* dup2 would not clear it */
		_exit(126);
	if (keep_fd >= 0 && keep_fd != 3 && dup2(keep_fd, 3) < 0)
		_exit(126);
	if (session_bus != NULL)
		setenv("DBUS_SESSION_BUS_ADDRESS", session_bus, 1);
	execv(argv[0], argv);
	dprintf(2, "%s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static void
stop(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	waitpid(*pid, NULL, 0);
	*pid = 0;
}

static void
show_log(const struct t *t, const char *name)
{
	char p[128], buf[2048];
	ssize_t n;
	int fd;

	path_in(t, name, p, sizeof(p));
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	if ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		fprintf(stderr, "--- %s:\n%s\n", name, buf);
	}
	close(fd);
}

/* Reads the address dbus-daemon prints once it listens. */
static int
read_address(int fd, char *out, size_t len)
{
	size_t off = 0;

	while (off + 1 < len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, START_MS) <= 0)
			return -1;
		if ((n = read(fd, out + off, 1)) <= 0)
			return -1;
		if (out[off] == '\n') {
			out[off] = '\0';
			return 0;
		}
		off++;
	}
	return -1;
}

/* ---------------------------------------------------------------------
 * Calls from the test's own connection.
 */

/* A call that must succeed; reply wanted when out is not NULL. */
static void
call_ok(struct t *t, const char *path, const char *iface, const char *member,
    sd_bus_message **out, const char *types, ...)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	va_list ap;
	int r;

	va_start(ap, types);
	r = sd_bus_call_methodv(t->bus, BLUEZ, path, iface, member, &err, &reply,
	    types, ap);
	va_end(ap);
	if (r < 0)
		fprintf(stderr, "%s.%s on %s: %s: %s\n", iface, member, path,
		    err.name, err.message);
	sd_bus_error_free(&err);
	assert_true(r >= 0);
	if (out != NULL)
		*out = reply;
	else
		sd_bus_message_unref(reply);
}

static void
add_device(struct t *t, const char *hci, const char *addr, const char *name)
{
	call_ok(t, "/", "org.bluez.Mock", "AddDevice", NULL, "sss", hci, addr, name);
}

/* The object path bluez5 gives a device: <adapter>/dev_XX_XX_... */
static void
dev_path(const char *addr, char out[64])
{
	snprintf(out, 64, HCI0 "/dev_%s", addr);
	for (char *p = out + strlen(HCI0 "/dev_"); *p != '\0'; p++)
		if (*p == ':')
			*p = '_';
}

static int
get_bool(struct t *t, const char *path, const char *iface, const char *prop)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	int v = -1;

	assert_true(sd_bus_get_property_trivial(t->bus, BLUEZ, path, iface, prop,
	    &err, 'b', &v) >= 0);
	sd_bus_error_free(&err);
	return v;
}

static uint32_t
get_u32(struct t *t, const char *path, const char *iface, const char *prop)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	uint32_t v = 12345;

	assert_true(sd_bus_get_property_trivial(t->bus, BLUEZ, path, iface, prop,
	    &err, 'u', &v) >= 0);
	sd_bus_error_free(&err);
	return v;
}

static void
assert_string_prop(struct t *t, const char *path, const char *iface,
    const char *prop, const char *want)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	char *v = NULL;

	assert_true(sd_bus_get_property_string(t->bus, BLUEZ, path, iface, prop,
	    &err, &v) >= 0);
	sd_bus_error_free(&err);
	assert_string_equal(v, want);
	free(v);
}

/*
 * How often the mock's object at path saw method (its call log, through
 * org.freedesktop.DBus.Mock.GetMethodCalls); the first two string or path
 * arguments of the latest call go to a0 and a1 when not NULL.
 */
static size_t
mock_calls(struct t *t, const char *path, const char *method, char a0[128],
    char a1[128])
{
	sd_bus_message *m = NULL;
	size_t n = 0;

	if (a0 != NULL)
		a0[0] = '\0';
	if (a1 != NULL)
		a1[0] = '\0';
	call_ok(t, path, MOCK_IFACE, "GetMethodCalls", &m, "s", method);
	assert_true(sd_bus_message_enter_container(m, 'a', "(tav)") >= 0);
	while (sd_bus_message_enter_container(m, 'r', "tav") > 0) {
		uint64_t ts;
		int i = 0;

		assert_true(sd_bus_message_read(m, "t", &ts) >= 0);
		assert_true(sd_bus_message_enter_container(m, 'a', "v") >= 0);
		for (;;) {
			const char *contents = NULL, *s;
			char type;

			if (sd_bus_message_at_end(m, 0) > 0)
				break;
			assert_true(sd_bus_message_peek_type(m, &type, &contents) > 0);
			if (contents != NULL && (strcmp(contents, "s") == 0 ||
			    strcmp(contents, "o") == 0)) {
				assert_true(sd_bus_message_read(m, "v", contents, &s) >= 0);
				if (i == 0 && a0 != NULL)
					snprintf(a0, 128, "%s", s);
				if (i == 1 && a1 != NULL)
					snprintf(a1, 128, "%s", s);
			} else
				assert_true(sd_bus_message_skip(m, "v") >= 0);
			i++;
		}
		assert_true(sd_bus_message_exit_container(m) >= 0);
		assert_true(sd_bus_message_exit_container(m) >= 0);
		n++;
	}
	sd_bus_message_unref(m);
	return n;
}

/* The unique bus name of the one connection of this process that is not the
 * test's own: the open radio's. */
static void
radio_bus_name(struct t *t, char out[128])
{
	sd_bus_message *m = NULL;
	const char *self = NULL, *name;
	int found = 0;

	out[0] = '\0';
	assert_true(sd_bus_get_unique_name(t->bus, &self) >= 0);
	assert_true(sd_bus_call_method(t->bus, "org.freedesktop.DBus",
	    "/org/freedesktop/DBus", "org.freedesktop.DBus", "ListNames", NULL, &m,
	    "") >= 0);
	assert_true(sd_bus_message_enter_container(m, 'a', "s") >= 0);
	while (sd_bus_message_read(m, "s", &name) > 0) {
		uint32_t pid = 0;

		sd_bus_message *pm = NULL;

		if (name[0] != ':' || strcmp(name, self) == 0)
			continue;
		if (sd_bus_call_method(t->bus, "org.freedesktop.DBus",
		    "/org/freedesktop/DBus", "org.freedesktop.DBus",
		    "GetConnectionUnixProcessID", NULL, &pm, "s", name) >= 0 &&
		    sd_bus_message_read(pm, "u", &pid) >= 0 &&
		    pid == (uint32_t)getpid()) {
			snprintf(out, 128, "%s", name);
			found++;
		}
		sd_bus_message_unref(pm);
	}
	sd_bus_message_unref(m);
	assert_int_equal(found, 1);
}

/* The connection the agent's requests come from: bluetoothd's own (the
 * mock's, which owns org.bluez), or another one of the mock's process. */
#define FROM_BLUEZ	"self.connection"
#define FROM_OTHER	"dbus.bus.BusConnection(os.environ['DBUS_SESSION_BUS_ADDRESS'])"

/* What Pair does once the agent said yes: mark the device paired, or answer
 * AlreadyExists and leave it unpaired (so that every connect pairs again). */
#define THEN_PAIRED	"self.PairDevice('hci0', self.props['org.bluez.Device1']['Address'], 5898764)"
#define THEN_AGAIN	"raise dbus.exceptions.DBusException('Already Exists', " \
			    "name='org.bluez.Error.AlreadyExists')"

/*
 * Replaces Device1.Pair of the device at addr with one that, like
 * bluetoothd, first asks the registered agent (request: a Python call on
 * "agent" about "dev", from the connection conn) and fails with
 * AuthenticationRejected when the agent says no, then does then.
 */
static void
pair_asks_agent_then(struct t *t, const char *addr, const char *about_addr,
    const char *conn, const char *request, const char *then)
{
	char owner[128], path[64], about[64], code[1536];
	int n;

	radio_bus_name(t, owner);
	dev_path(addr, path);
	dev_path(about_addr, about);
	n = snprintf(code, sizeof(code),
	    "import dbus, os\n"
	    "agent = %s.get_object('%s', "
	    "objects['/org/bluez'].agent_paths[-1], introspect=False)\n"
	    "dev = dbus.ObjectPath('%s')\n"
	    "try:\n"
	    "    %s\n"
	    "except dbus.exceptions.DBusException as e:\n"
	    "    raise dbus.exceptions.DBusException('Authentication Rejected: ' + "
	    "str(e.get_dbus_name()), name='org.bluez.Error.AuthenticationRejected')\n"
	    "%s\n",
	    conn, owner, about, request, then);
	assert_true(n > 0 && (size_t)n < sizeof(code));
	call_ok(t, path, MOCK_IFACE, "AddMethod", NULL, "sssss", DEV1, "Pair", "", "",
	    code);
}

static void
pair_asks_agent(struct t *t, const char *addr, const char *about_addr,
    const char *conn, const char *request)
{
	pair_asks_agent_then(t, addr, about_addr, conn, request, THEN_PAIRED);
}

/* ---------------------------------------------------------------------
 * The private bus and the mock.
 */

static int group_teardown(void **state);

static int
group_setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	char buspath[96], log[128], addr_arg[32];
	int fds[2] = { -1, -1 }, r;
	uint64_t until;
	const char *old;

	if (t == NULL)
		return -1;
	*state = t;
	if (access(DBUS_DAEMON, X_OK) != 0 || access(DBUS_CONF, R_OK) != 0) {
		fprintf(stderr, "%s or %s missing: install the dbus package "
		    "(scripts/deps.sh)\n", DBUS_DAEMON, DBUS_CONF);
		goto fail;
	}
	if (access(PYTHON, X_OK) != 0) {
		fprintf(stderr, "%s missing: install python3-dbusmock (scripts/deps.sh)\n",
		    PYTHON);
		goto fail;
	}
	snprintf(t->dir, sizeof(t->dir), "/tmp/provd-test-bluez.XXXXXX");
	if (mkdtemp(t->dir) == NULL) {
		t->dir[0] = '\0';
		goto fail;
	}
	path_in(t, "bus", buspath, sizeof(buspath));

	/* the bus: --nofork keeps dbus-daemon our child, to reap it; it
	 * prints its address on fd 3 once it listens */
	if (pipe2(fds, O_CLOEXEC) != 0)
		goto fail;
	{
		char conf[64], listen_arg[128];
		char *argv[] = { DBUS_DAEMON, conf, listen_arg, "--nofork", addr_arg, NULL };

		snprintf(conf, sizeof(conf), "--config-file=%s", DBUS_CONF);
		snprintf(listen_arg, sizeof(listen_arg), "--address=unix:path=%s", buspath);
		snprintf(addr_arg, sizeof(addr_arg), "--print-address=3");
		path_in(t, "dbus-daemon.log", log, sizeof(log));
		t->daemon = spawn(argv, log, fds[1], NULL);
	}
	close(fds[1]);
	r = t->daemon > 0 ? read_address(fds[0], t->addr, sizeof(t->addr)) : -1;
	close(fds[0]);
	if (r != 0) {
		fprintf(stderr, "dbus-daemon did not start\n");
		show_log(t, "dbus-daemon.log");
		goto fail;
	}
	/* what the radio's sd_bus_open_system reaches */
	if ((old = getenv("DBUS_SYSTEM_BUS_ADDRESS")) != NULL &&
	    (t->saved_system = strdup(old)) == NULL)
		goto fail;
	t->env_set = 1;
	setenv("DBUS_SYSTEM_BUS_ADDRESS", t->addr, 1);

	{
		char *argv[] = { PYTHON, "-m", "dbusmock", "--session", "--template",
		    "bluez5", NULL };

		path_in(t, "dbusmock.log", log, sizeof(log));
		t->mock = spawn(argv, log, -1, t->addr);
	}
	if (t->mock <= 0 || sd_bus_open_system(&t->bus) < 0)
		goto fail;

	/* until org.bluez is on the bus, or the mock gave up */
	until = now_ns() + (uint64_t)START_MS * 1000000u;
	for (;;) {
		sd_bus_message *m = NULL;
		int has = 0, status;

		if (sd_bus_call_method(t->bus, "org.freedesktop.DBus",
		    "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner",
		    NULL, &m, "s", BLUEZ) >= 0)
			(void)sd_bus_message_read(m, "b", &has);
		sd_bus_message_unref(m);
		if (has)
			break;
		if (waitpid(t->mock, &status, WNOHANG) == t->mock)
			t->mock = 0;		/* it exited: reaped */
		if (t->mock == 0 || now_ns() > until) {
			fprintf(stderr, "python3-dbusmock's bluez5 template did not come "
			    "up (is python3-dbusmock installed? scripts/deps.sh)\n");
			show_log(t, "dbusmock.log");
			goto fail;
		}
		usleep(50 * 1000);
	}

	/* the air: hci0 with devices, hci1 with one of its own */
	call_ok(t, "/", "org.bluez.Mock", "AddAdapter", NULL, "ss", "hci0", "desk");
	call_ok(t, "/", "org.bluez.Mock", "AddAdapter", NULL, "ss", "hci1", "other");
	add_device(t, "hci0", A_PRINTER, "Printer-0001");
	add_device(t, "hci0", A_SENSOR, "Sensor-0002");
	add_device(t, "hci0", A_BADNAME, "bad\aname");
	add_device(t, "hci0", A_PLAIN, "Plain-0010");
	add_device(t, "hci0", A_CONFIRM, "Confirm-0011");
	add_device(t, "hci0", A_LEGACY, "Legacy-0012");
	add_device(t, "hci0", A_OTHER, "Other-0013");
	add_device(t, "hci0", A_PASSKEY, "Passkey-0014");
	add_device(t, "hci0", A_IMPOSTOR, "Impostor-0015");
	add_device(t, "hci0", A_TURN1, "Turn-0016");
	add_device(t, "hci0", A_TURN2, "Turn-0017");
	add_device(t, "hci0", A_ODD, "Odd-0066");
	add_device(t, "hci1", A_HCI1, "Elsewhere-000E");
	/* a second object for the printer's address (as bluetoothd may keep
	 * for one address seen over two transports) */
	call_ok(t, "/", MOCK_IFACE, "AddObject", NULL, "ssa{sv}a(ssss)",
	    HCI0 "/dev_dup", DEV1, 3,
	    "Address", "s", A_PRINTER,
	    "Name", "s", "Printer-dup",
	    "Adapter", "o", HCI0,
	    0);
	return 0;
fail:
	/* cmocka does not tear down a group whose setup failed */
	group_teardown(state);
	*state = NULL;
	return -1;
}

static int
group_teardown(void **state)
{
	struct t *t = *state;
	const char *names[] = { "bus", "dbus-daemon.log", "dbusmock.log" };
	char p[128];

	if (t == NULL)
		return 0;
	sd_bus_flush_close_unref(t->bus);
	stop(&t->mock);
	stop(&t->daemon);
	if (t->saved_system != NULL)
		setenv("DBUS_SYSTEM_BUS_ADDRESS", t->saved_system, 1);
	else if (t->env_set)
		unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
	free(t->saved_system);
	if (t->dir[0] != '\0') {
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			path_in(t, names[i], p, sizeof(p));
			unlink(p);
		}
		rmdir(t->dir);
	}
	free(t);
	return 0;
}

/* ---------------------------------------------------------------------
 * Helpers over the radio.
 */

/* Opens a radio that the test's teardown closes if the test does not. */
static struct radio *
open_bluez(struct t *t, const char *adapter)
{
	struct radio_params p = { .backend = "bluez", .adapter = adapter };

	assert_null(t->r);
	assert_int_equal(radio_open(&p, &t->r), 0);
	assert_non_null(t->r);
	assert_string_equal(radio_backend(t->r), "bluez");
	return t->r;
}

static void
close_radio(struct t *t)
{
	radio_close(t->r);
	t->r = NULL;
}

/* A failed test leaves no radio (and no registered agent) behind. */
static int
teardown(void **state)
{
	close_radio(*state);
	return 0;
}

static int
open_rc(const char *adapter)
{
	struct radio_params p = { .backend = "bluez", .adapter = adapter };
	struct radio *r = (struct radio *)&p;	/* must be reset to NULL */
	int rc = radio_open(&p, &r);

	assert_null(r);
	return rc;
}

static void
parse(const char *s, uint8_t addr[MAC_LEN])
{
	assert_int_equal(mac_parse(s, addr), 0);
}

/* The result of a connect whose pairing went through: on this machine the
 * RFCOMM data path is missing (ERR_UNAVAILABLE); with Bluetooth sockets
 * the mock's devices do not exist on the air, and some failure comes from
 * the kernel instead. */
static void
assert_rfcomm_failed(int rc, struct radio_link *l)
{
	assert_null(l);
	assert_true(rc != 0);
	assert_int_not_equal(rc, ERR_AUTH);
	if (access("/proc/net/bluetooth", F_OK) != 0)
		assert_int_equal(rc, ERR_UNAVAILABLE);
}

/* ------------------------------------------------------------------ */

static void
test_open_refusals(void **state)
{
	struct t *t = *state;
	char nobus[160];

	/* malformed adapter names: ERR_CONFIG before any bus traffic */
	assert_int_equal(open_rc("hci-0"), ERR_CONFIG);
	assert_int_equal(open_rc("hci0/dev_00"), ERR_CONFIG);
	assert_int_equal(open_rc("../hci0"), ERR_CONFIG);
	assert_int_equal(open_rc("hci 0"), ERR_CONFIG);
	assert_int_equal(open_rc("hci\xc3\xa9"), ERR_CONFIG);
	assert_int_equal(open_rc("abcdefghijklmnopq"), ERR_CONFIG);	/* 17 */
	/* well-formed but absent: ERR_UNAVAILABLE */
	assert_int_equal(open_rc("hci7"), ERR_UNAVAILABLE);
	assert_int_equal(open_rc("abcdefghijklmnop"), ERR_UNAVAILABLE);	/* 16 */
	/* a prefix of an adapter's name is not that adapter */
	assert_int_equal(open_rc("hci"), ERR_UNAVAILABLE);

	/* no system bus at all */
	snprintf(nobus, sizeof(nobus), "unix:path=%s/no-such-bus", t->dir);
	setenv("DBUS_SYSTEM_BUS_ADDRESS", nobus, 1);
	assert_int_equal(open_rc("hci0"), ERR_UNAVAILABLE);
	setenv("DBUS_SYSTEM_BUS_ADDRESS", t->addr, 1);
}

static void
test_open_registers_agent(void **state)
{
	struct t *t = *state;
	char path[128], caps[128], upath[128];
	size_t reg, unreg;

	reg = mock_calls(t, "/org/bluez", "RegisterAgent", NULL, NULL);
	unreg = mock_calls(t, "/org/bluez", "UnregisterAgent", NULL, NULL);

	open_bluez(t, NULL);		/* the default adapter, hci0 */
	assert_int_equal(mock_calls(t, "/org/bluez", "RegisterAgent", path, caps),
	    reg + 1);
	assert_string_equal(caps, "KeyboardDisplay");
	assert_true(path[0] == '/');
	assert_int_equal(mock_calls(t, "/org/bluez", "UnregisterAgent", NULL, NULL),
	    unreg);

	close_radio(t);
	assert_int_equal(mock_calls(t, "/org/bluez", "UnregisterAgent", upath, NULL),
	    unreg + 1);
	assert_string_equal(upath, path);

	/* "" means the default too; open, close, open again */
	open_bluez(t, "");
	close_radio(t);
	open_bluez(t, "hci0");
	close_radio(t);
	assert_int_equal(mock_calls(t, "/org/bluez", "RegisterAgent", NULL, NULL),
	    reg + 3);
	assert_int_equal(mock_calls(t, "/org/bluez", "UnregisterAgent", NULL, NULL),
	    unreg + 3);
}

static void
test_inquire_lists_devices(void **state)
{
	static const struct {
		const char *addr, *name;
	} want[N_LISTED] = {
		{ A_PRINTER, NULL },	/* one of its two objects' names */
		{ A_SENSOR, "Sensor-0002" },
		{ A_BADNAME, "" },	/* a control character: no name */
		{ A_PLAIN, "Plain-0010" },
		{ A_CONFIRM, "Confirm-0011" },
		{ A_LEGACY, "Legacy-0012" },
		{ A_OTHER, "Other-0013" },
		{ A_PASSKEY, "Passkey-0014" },
		{ A_IMPOSTOR, "Impostor-0015" },
		{ A_TURN1, "Turn-0016" },
		{ A_TURN2, "Turn-0017" },
	};
	struct t *t = *state;
	struct radio_device out[32];
	size_t n = 12345, filters, starts, stops;
	uint64_t t0;
	struct radio *r = open_bluez(t, "hci0");

	filters = mock_calls(t, HCI0, "SetDiscoveryFilter", NULL, NULL);
	starts = mock_calls(t, HCI0, "StartDiscovery", NULL, NULL);
	stops = mock_calls(t, HCI0, "StopDiscovery", NULL, NULL);

	t0 = now_ns();
	assert_int_equal(radio_inquire(r, 300, out, 32, &n), 0);
	assert_true(now_ns() - t0 >= 300u * 1000000u);	/* it waited */
	assert_true(now_ns() - t0 < 10000u * 1000000u);
	assert_int_equal(n, N_LISTED);
	for (size_t i = 0; i < N_LISTED; i++) {
		uint8_t a[MAC_LEN];

		parse(want[i].addr, a);
		assert_memory_equal(out[i].addr, a, MAC_LEN);	/* sorted */
		if (want[i].name != NULL)
			assert_string_equal(out[i].name, want[i].name);
		else
			assert_true(strcmp(out[i].name, "Printer-0001") == 0 ||
			    strcmp(out[i].name, "Printer-dup") == 0);
		if (i > 0)	/* strictly increasing: no duplicates */
			assert_true(memcmp(out[i - 1].addr, out[i].addr, MAC_LEN) < 0);
	}
	assert_int_equal(out[1].rssi, -79);	/* what bluez5 gives AddDevice */
	assert_int_equal(out[1].cod, 0);

	/* the session: filter first, then start and stop */
	assert_int_equal(mock_calls(t, HCI0, "SetDiscoveryFilter", NULL, NULL),
	    filters + 1);
	assert_int_equal(mock_calls(t, HCI0, "StartDiscovery", NULL, NULL), starts + 1);
	assert_int_equal(mock_calls(t, HCI0, "StopDiscovery", NULL, NULL), stops + 1);
	assert_int_equal(get_bool(t, HCI0, AD1, "Discovering"), 0);

	/* max is respected: the first ones in address order */
	n = 12345;
	assert_int_equal(radio_inquire(r, 0, out, 2, &n), 0);
	assert_int_equal(n, 2);
	{
		uint8_t a[MAC_LEN];
		parse(A_PRINTER, a);
		assert_memory_equal(out[0].addr, a, MAC_LEN);
		parse(A_SENSOR, a);
		assert_memory_equal(out[1].addr, a, MAC_LEN);
	}
	n = 12345;
	assert_int_equal(radio_inquire(r, 0, out, 1, &n), 0);
	assert_int_equal(n, 1);
	close_radio(t);
}

static void
test_connect_unknown(void **state)
{
	struct t *t = *state;
	struct radio_link *l = (struct radio_link *)t;	/* must be reset to NULL */
	uint8_t a[MAC_LEN];
	struct radio *r = open_bluez(t, "hci0");

	parse("02:00:00:00:00:99", a);
	assert_int_equal(radio_connect(r, a, 2000, &l), ERR_NOT_FOUND);
	assert_null(l);
	/* a device of another adapter is not in range of this one */
	parse(A_HCI1, a);
	assert_int_equal(radio_connect(r, a, 2000, &l), ERR_NOT_FOUND);
	assert_null(l);
	close_radio(t);
}

static void
test_connect_pairs(void **state)
{
	struct t *t = *state;
	struct radio_link *l = NULL;
	char path[64];
	uint8_t a[MAC_LEN];
	struct radio *r = open_bluez(t, "hci0");

	dev_path(A_PLAIN, path);
	assert_int_equal(get_bool(t, path, DEV1, "Paired"), 0);
	assert_int_equal(mock_calls(t, path, "Pair", NULL, NULL), 0);
	parse(A_PLAIN, a);
	assert_rfcomm_failed(radio_connect(r, a, 5000, &l), l);
	assert_int_equal(get_bool(t, path, DEV1, "Paired"), 1);
	assert_int_equal(mock_calls(t, path, "Pair", NULL, NULL), 1);

	/* paired already: no second Pair */
	assert_rfcomm_failed(radio_connect(r, a, 5000, &l), l);
	assert_int_equal(mock_calls(t, path, "Pair", NULL, NULL), 1);
	assert_int_equal(get_bool(t, path, DEV1, "Paired"), 1);
	close_radio(t);
}

static void
test_agent_confirms_target(void **state)
{
	struct t *t = *state;
	struct radio_link *l = NULL;
	char path[64];
	uint8_t a[MAC_LEN];
	struct radio *r = open_bluez(t, "hci0");

	dev_path(A_CONFIRM, path);
	pair_asks_agent(t, A_CONFIRM, A_CONFIRM, FROM_BLUEZ,
	    "agent.RequestConfirmation(dev, dbus.UInt32(123456), "
	    "dbus_interface='org.bluez.Agent1', timeout=5); "
	    "agent.RequestAuthorization(dev, dbus_interface='org.bluez.Agent1', timeout=5); "
	    "agent.AuthorizeService(dev, '00001101-0000-1000-8000-00805f9b34fb', "
	    "dbus_interface='org.bluez.Agent1', timeout=5)");
	parse(A_CONFIRM, a);
	assert_rfcomm_failed(radio_connect(r, a, 5000, &l), l);
	assert_int_equal(mock_calls(t, path, "Pair", NULL, NULL), 1);
	assert_int_equal(get_bool(t, path, DEV1, "Paired"), 1);
	close_radio(t);
}

static void
test_agent_gives_no_pin(void **state)
{
	struct t *t = *state;
	struct radio_link *l = NULL;
	char path[64];
	uint8_t a[MAC_LEN];
	struct radio *r = open_bluez(t, "hci0");

	/* legacy PIN for the very device being connected to: still no */
	dev_path(A_LEGACY, path);
	pair_asks_agent(t, A_LEGACY, A_LEGACY, FROM_BLUEZ,
	    "agent.RequestPinCode(dev, dbus_interface='org.bluez.Agent1', timeout=5)");
	parse(A_LEGACY, a);
	assert_int_equal(radio_connect(r, a, 5000, &l), ERR_AUTH);
	assert_null(l);
	assert_int_equal(mock_calls(t, path, "Pair", NULL, NULL), 1);
	assert_int_equal(get_bool(t, path, DEV1, "Paired"), 0);

	/* nor a passkey */
	dev_path(A_PASSKEY, path);
	pair_asks_agent(t, A_PASSKEY, A_PASSKEY, FROM_BLUEZ,
	    "agent.RequestPasskey(dev, dbus_interface='org.bluez.Agent1', timeout=5)");
	parse(A_PASSKEY, a);
	assert_int_equal(radio_connect(r, a, 5000, &l), ERR_AUTH);
	assert_null(l);
	assert_int_equal(get_bool(t, path, DEV1, "Paired"), 0);
	close_radio(t);
}

static void
test_agent_refuses_other_device(void **state)
{
	struct t *t = *state;
	struct radio_link *l = NULL;
	char path[64];
	uint8_t a[MAC_LEN];
	struct radio *r = open_bluez(t, "hci0");

	/* while connecting to one device, a confirmation about another */
	dev_path(A_OTHER, path);
	pair_asks_agent(t, A_OTHER, A_SENSOR, FROM_BLUEZ,
	    "agent.RequestConfirmation(dev, dbus.UInt32(123456), "
	    "dbus_interface='org.bluez.Agent1', timeout=5)");
	parse(A_OTHER, a);
	assert_int_equal(radio_connect(r, a, 5000, &l), ERR_AUTH);
	assert_null(l);
	assert_int_equal(get_bool(t, path, DEV1, "Paired"), 0);
	close_radio(t);
}

static void
test_agent_answers_only_bluez(void **state)
{
	struct t *t = *state;
	struct radio_link *l = NULL;
	char path[64];
	uint8_t a[MAC_LEN];
	struct radio *r = open_bluez(t, "hci0");

	/* the right device at the right moment, but not from bluetoothd */
	dev_path(A_IMPOSTOR, path);
	pair_asks_agent(t, A_IMPOSTOR, A_IMPOSTOR, FROM_OTHER,
	    "agent.RequestConfirmation(dev, dbus.UInt32(123456), "
	    "dbus_interface='org.bluez.Agent1', timeout=5)");
	parse(A_IMPOSTOR, a);
	assert_int_equal(radio_connect(r, a, 5000, &l), ERR_AUTH);
	assert_null(l);
	assert_int_equal(get_bool(t, path, DEV1, "Paired"), 0);
	close_radio(t);
}

struct reply_seen {
	int done;
	char error[128];
};

static int
reply_cb(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct reply_seen *rs = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(m);

	(void)ret_error;
	snprintf(rs->error, sizeof(rs->error), "%s", e != NULL ? e->name : "");
	rs->done = 1;
	return 0;
}

static void
test_agent_refuses_strangers(void **state)
{
	struct t *t = *state;
	struct reply_seen rs = { 0, "" };
	struct radio_device out[16];
	sd_bus_slot *slot = NULL;
	char owner[128], agent[128], path[64];
	size_t n;
	uint64_t until;
	struct radio *r = open_bluez(t, "hci0");

	/* a process other than bluetoothd asks the agent; the radio reads the
	 * bus while it inquires */
	radio_bus_name(t, owner);
	mock_calls(t, "/org/bluez", "RegisterAgent", agent, NULL);
	dev_path(A_SENSOR, path);
	assert_true(sd_bus_call_method_async(t->bus, &slot, owner, agent,
	    "org.bluez.Agent1", "RequestAuthorization", reply_cb, &rs, "o", path) >= 0);
	assert_true(sd_bus_flush(t->bus) >= 0);
	assert_int_equal(radio_inquire(r, 200, out, 16, &n), 0);
	until = now_ns() + 5000u * 1000000u;
	while (!rs.done && now_ns() < until) {
		if (sd_bus_process(t->bus, NULL) > 0)
			continue;
		(void)sd_bus_wait(t->bus, 100000);
	}
	assert_true(rs.done);
	assert_string_equal(rs.error, "org.bluez.Error.Rejected");
	sd_bus_slot_unref(slot);
	close_radio(t);
}

static void
test_listen_sets_adapter(void **state)
{
	struct t *t = *state;
	struct radio_device self;
	struct radio_link *l = NULL;
	struct radio *r = open_bluez(t, "hci0");
	int rc;

	memset(&self, 0, sizeof(self));
	parse("02:00:00:00:00:01", self.addr);
	snprintf(self.name, sizeof(self.name), "Desk-Device-01");
	self.cod = 0x240404;
	self.rssi = -40;

	assert_int_equal(get_bool(t, HCI0, AD1, "Discoverable"), 0);
	rc = radio_listen(r, &self);
	if (access("/proc/net/bluetooth", F_OK) != 0)
		assert_int_equal(rc, ERR_UNAVAILABLE);	/* no RFCOMM here */
	else
		assert_true(rc != 0);	/* the mock's adapter address is made up */
	/* the D-Bus part went through */
	assert_string_prop(t, HCI0, AD1, "Alias", "Desk-Device-01");
	assert_int_equal(get_bool(t, HCI0, AD1, "Discoverable"), 1);
	assert_int_equal(get_bool(t, HCI0, AD1, "Pairable"), 1);
	assert_int_equal(get_u32(t, HCI0, AD1, "DiscoverableTimeout"), 0);
	/* not listening, so nothing to accept */
	assert_int_equal(radio_accept(r, 0, &l), ERR_CONFLICT);
	assert_null(l);
	/* close takes discoverability back */
	close_radio(t);
	assert_int_equal(get_bool(t, HCI0, AD1, "Discoverable"), 0);
}

struct worker {
	struct radio *r;
	const char *addr;	/* connect to it; NULL: inquire */
	int rounds, wrong;	/* wrong: results other than expected */
};

static void *
worker_loop(void *arg)
{
	struct worker *w = arg;
	struct radio_device out[16];
	uint8_t a[MAC_LEN];

	if (w->addr != NULL && mac_parse(w->addr, a) != 0) {
		w->wrong = w->rounds;
		return NULL;
	}
	for (int i = 0; i < w->rounds; i++) {
		struct radio_link *l = NULL;
		size_t n = 0;
		int rc;

		if (w->addr == NULL) {
			rc = radio_inquire(w->r, 20, out, 16, &n);
			w->wrong += rc != 0 || n != N_LISTED;
			continue;
		}
		/* the agent must see the right target: never ERR_AUTH */
		rc = radio_connect(w->r, a, 5000, &l);
		w->wrong += rc == 0 || rc == ERR_AUTH || l != NULL ||
		    (access("/proc/net/bluetooth", F_OK) != 0 && rc != ERR_UNAVAILABLE);
		radio_link_close(l);
	}
	return NULL;
}

static void
test_threads_take_turns(void **state)
{
	struct t *t = *state;
	struct worker w[4];
	pthread_t th[4];
	char path[64];
	struct radio *r = open_bluez(t, "hci0");

	/* two devices that pair at every connect, asking the agent each time */
	pair_asks_agent_then(t, A_TURN1, A_TURN1, FROM_BLUEZ,
	    "agent.RequestConfirmation(dev, dbus.UInt32(1), "
	    "dbus_interface='org.bluez.Agent1', timeout=5)", THEN_AGAIN);
	pair_asks_agent_then(t, A_TURN2, A_TURN2, FROM_BLUEZ,
	    "agent.RequestConfirmation(dev, dbus.UInt32(2), "
	    "dbus_interface='org.bluez.Agent1', timeout=5)", THEN_AGAIN);

	/* two scanners and two enrollments on one radio at once, as intake
	 * does */
	for (int i = 0; i < 4; i++) {
		w[i].r = r;
		w[i].addr = i == 2 ? A_TURN1 : i == 3 ? A_TURN2 : NULL;
		w[i].rounds = 8;
		w[i].wrong = 0;
		assert_int_equal(pthread_create(&th[i], NULL, worker_loop, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(w[i].wrong, 0);
	dev_path(A_TURN1, path);
	assert_int_equal(mock_calls(t, path, "Pair", NULL, NULL), 8);
	dev_path(A_TURN2, path);
	assert_int_equal(mock_calls(t, path, "Pair", NULL, NULL), 8);
	close_radio(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_open_refusals, teardown),
		cmocka_unit_test_teardown(test_open_registers_agent, teardown),
		cmocka_unit_test_teardown(test_inquire_lists_devices, teardown),
		cmocka_unit_test_teardown(test_connect_unknown, teardown),
		cmocka_unit_test_teardown(test_connect_pairs, teardown),
		cmocka_unit_test_teardown(test_agent_confirms_target, teardown),
		cmocka_unit_test_teardown(test_agent_gives_no_pin, teardown),
		cmocka_unit_test_teardown(test_agent_refuses_other_device, teardown),
		cmocka_unit_test_teardown(test_agent_answers_only_bluez, teardown),
		cmocka_unit_test_teardown(test_agent_refuses_strangers, teardown),
		cmocka_unit_test_teardown(test_listen_sets_adapter, teardown),
		cmocka_unit_test_teardown(test_threads_take_turns, teardown),
	};

	log_init("test_radio_bluez", LOG_LVL_ERROR, 0, 0);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
