/*
 * radio_bluez.c: the bluez radio backend — a Bluetooth adapter driven through
 * BlueZ (bluetoothd) on the system bus with sd-bus, and RFCOMM sockets for
 * the data path.
 *
 * The control side is D-Bus: the adapter is /org/bluez/<adapter>; inquiry is
 * a discovery session followed by a look at the org.bluez.Device1 objects
 * under the adapter; connect pairs the device (Device1.Pair) when it is not
 * paired yet; listen sets the adapter's Alias and makes it discoverable and
 * pairable. A link is a plain RFCOMM stream socket on the fixed channel
 * RADIO_BLUEZ_CHANNEL; its bytes do not pass through bluetoothd. A host
 * whose kernel has no Bluetooth sockets can use the D-Bus side (inquiry,
 * pairing, listen's adapter settings) but connect and listen then end with
 * ERR_UNAVAILABLE.
 *
 * Pairing: each open radio exports an org.bluez.Agent1 at BZ_AGENT_PATH and
 * registers it with "KeyboardDisplay". The agent answers only bluetoothd
 * (the owner of org.bluez when the radio was opened) and only about the
 * device this radio is connecting to at that moment: it accepts
 * numeric-comparison / just-works confirmation and service authorisation for
 * that device and rejects everything else with org.bluez.Error.Rejected. It
 * never supplies a legacy PIN or a passkey: provd's own PIN link (SPAKE2+
 * above the radio) authenticates the device, so the pairing underneath only
 * has to give an encrypted baseband link. A listening radio (a device
 * waiting for intake) accepts confirmation from whichever peer bluetoothd
 * names, for the same reason: the operator's side proves the PIN next.
 * (Listening needs the RFCOMM socket, so this part cannot run on a host
 * without Bluetooth in its kernel.)
 *
 * The bus is only read while a call of this backend runs (every D-Bus call
 * pumps it, as do inquiry's wait, connect's RFCOMM wait and accept): an
 * agent request that arrives while the radio sits idle is answered at its
 * next call, or times out in bluetoothd and fails.
 *
 * One radio may be used from several threads (intake scans while enrollments
 * connect): its calls take turns on a mutex, held for the whole call, since
 * the sd-bus connection and the agent's target are the radio's alone. Links
 * are plain sockets and need no turn.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bluetooth/bluetooth.h>
#include <bluetooth/rfcomm.h>
#include <systemd/sd-bus.h>

#include "provision/provision.h"
#include "provision/radio_int.h"

/*
 * The RFCOMM channel both sides use. struct radio_params has no field for it
 * and there is no SDP lookup: the device side listens on this channel and the
 * operator side connects to it. A device firmware that cannot bind it cannot
 * be provisioned through this backend.
 */
#define RADIO_BLUEZ_CHANNEL	3

#define BZ_ADAPTER_DEFAULT	"hci0"
#define BZ_ADAPTER_MAX		16	/* bytes in an adapter name */
#define BZ_ROOT			"/org/bluez/"
#define BZ_ADAPTER_PATH_MAX	(sizeof(BZ_ROOT) + BZ_ADAPTER_MAX)
#define BZ_PATH_MAX		128	/* device object paths we handle */
#define BZ_ADDR_STR_MAX		17	/* "00:1A:7D:DA:71:13" */
#define BZ_BUS_NAME_MAX		255	/* D-Bus names, by the specification */
#define BZ_AGENT_PATH		"/org/provd/agent"
#define BZ_AGENT_CAPS		"KeyboardDisplay"
#define BZ_CALL_MS		5000	/* one D-Bus call outside connect */
#define BZ_INQUIRY_MS_DEFAULT	10240	/* discovery when no limit is given */
#define BZ_SCAN_MAX		4096	/* devices one look at the bus considers */
#define BZ_BACKLOG		4

#define BZ_SERVICE		"org.bluez"
#define BZ_IFACE_ADAPTER	"org.bluez.Adapter1"
#define BZ_IFACE_DEVICE		"org.bluez.Device1"
#define BZ_IFACE_AGENT		"org.bluez.Agent1"
#define BZ_IFACE_AGENT_MGR	"org.bluez.AgentManager1"
#define BZ_IFACE_PROPS		"org.freedesktop.DBus.Properties"
#define BZ_IFACE_OBJMGR		"org.freedesktop.DBus.ObjectManager"
#define BZ_ERR_REJECTED		"org.bluez.Error.Rejected"

struct bz_radio {
	pthread_mutex_t mu;		/* one call at a time */
	int mu_ok;			/* mu was initialised */
	sd_bus *bus;
	sd_bus_slot *agent_slot;	/* the exported Agent1 */
	int agent_registered;
	char adapter[BZ_ADAPTER_MAX + 1];
	char adapter_path[BZ_ADAPTER_PATH_MAX];
	char owner[BZ_BUS_NAME_MAX + 1];	/* unique name of bluetoothd */
	bdaddr_t local;			/* the adapter's address */
	/* the device being connected to, for the agent; "" when none */
	char target_path[BZ_PATH_MAX];
	int made_discoverable;		/* listen turned Discoverable on */
	int lfd;			/* listening RFCOMM socket, or -1 */
};

struct bz_link {
	int fd;
};

/* One Device1 object as read from the bus. */
struct bz_dev {
	char path[BZ_PATH_MAX];
	struct radio_device d;
	int paired;
	size_t seq;			/* place in bluetoothd's list */
};

/* ---------------------------------------------------------------------
 * Addresses and names.
 */

/* [A-Za-z0-9_], 1..BZ_ADAPTER_MAX bytes: a valid object path element and
 * the form the kernel gives adapters (hci0). */
static int
bz_adapter_ok(const char *name)
{
	size_t len = strnlen(name, BZ_ADAPTER_MAX + 1);

	if (len == 0 || len > BZ_ADAPTER_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

/* BlueZ's address strings and bdaddr_t hold the octets in opposite order. */
static void
bz_addr_to_bdaddr(const uint8_t addr[MAC_LEN], bdaddr_t *ba)
{
	for (size_t i = 0; i < MAC_LEN; i++)
		ba->b[i] = addr[MAC_LEN - 1 - i];
}

static void
bz_bdaddr_to_addr(const bdaddr_t *ba, uint8_t addr[MAC_LEN])
{
	for (size_t i = 0; i < MAC_LEN; i++)
		addr[i] = ba->b[MAC_LEN - 1 - i];
}

/* "XX:XX:XX:XX:XX:XX" into a bdaddr_t, without mac_parse's unicast rule:
 * for the adapter's own address, which may be a random static one. */
static int
bz_bdaddr_parse(const char *s, bdaddr_t *ba)
{
	uint8_t addr[MAC_LEN];

	if (strnlen(s, BZ_ADDR_STR_MAX + 1) != BZ_ADDR_STR_MAX)
		return ERR_INVALID;
	for (size_t i = 0; i < MAC_LEN; i++) {
		int hi = hex_digit((unsigned char)s[3 * i]);
		int lo = hex_digit((unsigned char)s[3 * i + 1]);
		if (hi < 0 || lo < 0 || (i < MAC_LEN - 1 && s[3 * i + 2] != ':'))
			return ERR_INVALID;
		addr[i] = (uint8_t)(hi << 4 | lo);
	}
	bz_addr_to_bdaddr(addr, ba);
	return 0;
}

/* Copies a device name from the bus if it fits and passes the radio's name
 * rule; returns whether it did. */
static int
bz_name_take(const char *s, char out[RADIO_NAME_MAX])
{
	size_t len = strnlen(s, RADIO_NAME_MAX);

	if (len == RADIO_NAME_MAX)
		return 0;
	memcpy(out, s, len + 1);
	if (radio_name_check(out) != 0) {
		out[0] = '\0';
		return 0;
	}
	return 1;
}

/* Whether path is a direct child of the adapter's object. */
static int
bz_path_is_device(const struct bz_radio *b, const char *path)
{
	size_t plen = strlen(b->adapter_path);
	size_t len = strnlen(path, BZ_PATH_MAX);

	return len < BZ_PATH_MAX && len > plen + 1 &&
	    strncmp(path, b->adapter_path, plen) == 0 && path[plen] == '/' &&
	    strchr(path + plen + 1, '/') == NULL;
}

/* ---------------------------------------------------------------------
 * D-Bus calls. Each one is asynchronous underneath and pumps the bus while
 * it waits, so that the agent can answer bluetoothd in the middle of a call
 * (Device1.Pair waits for exactly that).
 */

struct bz_pending {
	int done;
	sd_bus_message *reply;
};

static int
bz_reply_cb(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct bz_pending *p = userdata;

	(void)ret_error;
	p->reply = sd_bus_message_ref(m);
	p->done = 1;
	return 0;
}

static uint64_t
bz_usec(int left_ms)
{
	return left_ms < 0 ? UINT64_MAX : (uint64_t)left_ms * 1000u;
}

/* A new method call to bluetoothd (or dest when not NULL). */
static int
bz_msg(struct bz_radio *b, const char *dest, const char *path, const char *iface,
    const char *member, sd_bus_message **m)
{
	int r;

	r = sd_bus_message_new_method_call(b->bus, m, dest != NULL ? dest : BZ_SERVICE,
	    path, iface, member);
	if (r < 0) {
		log_warnx("bluez radio: %s.%s: %s", iface, member, strerror(-r));
		return r == -ENOMEM ? ERR_NOMEM : ERR_INTERNAL;
	}
	return 0;
}

/*
 * Sends m and waits for its answer until deadline, serving the agent
 * meanwhile. Returns 0 with *reply set (when reply is not NULL; the caller
 * unrefs it), ERR_TIMEOUT, ERR_UNAVAILABLE when the bus failed, or ERR_IO
 * when the peer answered with an error, which is then copied into err (the
 * caller frees it with sd_bus_error_free).
 */
static int
bz_call(struct bz_radio *b, sd_bus_message *m, uint64_t deadline,
    sd_bus_message **reply, sd_bus_error *err)
{
	struct bz_pending p = { 0, NULL };
	sd_bus_slot *slot = NULL;
	int left = radio_deadline_left(deadline), r, rc = ERR_INTERNAL;

	if (reply != NULL)
		*reply = NULL;
	if (left == 0)
		return ERR_TIMEOUT;
	if ((r = sd_bus_call_async(b->bus, &slot, m, bz_reply_cb, &p, bz_usec(left))) < 0) {
		log_warnx("bluez radio: sending %s.%s: %s",
		    sd_bus_message_get_interface(m), sd_bus_message_get_member(m),
		    strerror(-r));
		return r == -ENOMEM ? ERR_NOMEM : ERR_UNAVAILABLE;
	}
	while (!p.done) {
		if ((r = sd_bus_process(b->bus, NULL)) < 0) {
			log_warnx("bluez radio: system bus: %s", strerror(-r));
			rc = ERR_UNAVAILABLE;
			goto out;
		}
		if (r > 0)
			continue;
		if ((left = radio_deadline_left(deadline)) == 0) {
			rc = ERR_TIMEOUT;
			goto out;
		}
		if ((r = sd_bus_wait(b->bus, bz_usec(left))) < 0 && r != -EINTR) {
			log_warnx("bluez radio: system bus: %s", strerror(-r));
			rc = ERR_UNAVAILABLE;
			goto out;
		}
	}
	if (sd_bus_message_is_method_error(p.reply, NULL)) {
		const sd_bus_error *e = sd_bus_message_get_error(p.reply);

		if (sd_bus_error_has_name(e, SD_BUS_ERROR_NO_REPLY) ||
		    sd_bus_error_has_name(e, SD_BUS_ERROR_TIMEOUT)) {
			rc = ERR_TIMEOUT;
			goto out;
		}
		if (err != NULL) {
			/* returns the error's errno, not whether it copied */
			(void)sd_bus_error_copy(err, e);
			if (!sd_bus_error_is_set(err)) {
				rc = ERR_NOMEM;
				goto out;
			}
		}
		rc = ERR_IO;
		goto out;
	}
	if (reply != NULL) {
		*reply = p.reply;
		p.reply = NULL;
	}
	rc = 0;
out:
	sd_bus_slot_unref(slot);	/* cancels the call if it is still out */
	sd_bus_message_unref(p.reply);
	return rc;
}

/* The log line for a failed call: rc from bz_call, err its error. Names and
 * messages from the bus are cut short. */
static void
bz_log_fail(const char *what, int rc, const sd_bus_error *err)
{
	if (rc == ERR_IO && sd_bus_error_is_set(err))
		log_warnx("bluez radio: %s: %.96s: %.160s", what, err->name,
		    err->message != NULL ? err->message : "");
	else
		log_warnx("bluez radio: %s: %s", what, provd_strerror(rc));
}

/* A call with no arguments and no result wanted. */
static int
bz_call_simple(struct bz_radio *b, const char *path, const char *iface,
    const char *member, uint64_t deadline, sd_bus_error *err)
{
	sd_bus_message *m = NULL;
	int rc;

	if ((rc = bz_msg(b, NULL, path, iface, member, &m)) != 0)
		return rc;
	rc = bz_call(b, m, deadline, NULL, err);
	sd_bus_message_unref(m);
	return rc;
}

/* Adapter1 property set, logging a failure. */
static int
bz_adapter_set(struct bz_radio *b, const char *prop, char type, const void *val)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL;
	char what[64];
	int r, rc;

	if ((rc = bz_msg(b, NULL, b->adapter_path, BZ_IFACE_PROPS, "Set", &m)) != 0)
		return rc;
	r = sd_bus_message_append(m, "ss", BZ_IFACE_ADAPTER, prop);
	if (r >= 0 && type == 's')
		r = sd_bus_message_append(m, "v", "s", (const char *)val);
	else if (r >= 0 && type == 'b')
		r = sd_bus_message_append(m, "v", "b", *(const int *)val);
	else if (r >= 0 && type == 'u')
		r = sd_bus_message_append(m, "v", "u", *(const uint32_t *)val);
	else if (r >= 0)
		r = -EINVAL;
	if (r < 0) {
		rc = r == -ENOMEM ? ERR_NOMEM : ERR_INTERNAL;
		goto out;
	}
	if ((rc = bz_call(b, m, radio_deadline_set(BZ_CALL_MS), NULL, &err)) != 0) {
		snprintf(what, sizeof(what), "setting %s on %s", prop, b->adapter);
		bz_log_fail(what, rc, &err);
		if (rc == ERR_IO)
			rc = ERR_UNAVAILABLE;
	}
out:
	sd_bus_error_free(&err);
	sd_bus_message_unref(m);
	return rc;
}

/* ---------------------------------------------------------------------
 * Reading Device1 objects from ObjectManager.GetManagedObjects.
 */

/* Reads one property value (the variant under the read pointer) if it has
 * the type wanted; skips it otherwise. *got says whether it was read. */
static int
bz_read_variant(sd_bus_message *m, const char *type, void *val, int *got)
{
	const char *contents = NULL;
	char t;
	int r;

	*got = 0;
	if ((r = sd_bus_message_peek_type(m, &t, &contents)) <= 0)
		return r < 0 ? r : -EBADMSG;
	if (t != 'v' || contents == NULL || strcmp(contents, type) != 0)
		return sd_bus_message_skip(m, "v");
	if ((r = sd_bus_message_enter_container(m, 'v', type)) < 0 ||
	    (r = sd_bus_message_read_basic(m, type[0], val)) < 0 ||
	    (r = sd_bus_message_exit_container(m)) < 0)
		return r;
	*got = 1;
	return 0;
}

/* Parses the a{sv} of a Device1 into dev; 1 when it had a usable Address,
 * 0 when the object is to be skipped, negative on a malformed message. */
static int
bz_device_props(sd_bus_message *m, struct bz_dev *dev)
{
	char alias[RADIO_NAME_MAX] = "";
	int have_addr = 0, have_name = 0, have_alias = 0, r;

	if ((r = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *key, *s;
		uint32_t u;
		int16_t n;
		int bv, got;

		if ((r = sd_bus_message_read(m, "s", &key)) < 0)
			return r;
		if (strcmp(key, "Address") == 0) {
			if ((r = bz_read_variant(m, "s", &s, &got)) < 0)
				return r;
			if (got && strnlen(s, BZ_ADDR_STR_MAX + 1) <= BZ_ADDR_STR_MAX &&
			    mac_parse(s, dev->d.addr) == 0)
				have_addr = 1;
		} else if (strcmp(key, "Name") == 0) {
			if ((r = bz_read_variant(m, "s", &s, &got)) < 0)
				return r;
			if (got)
				have_name = bz_name_take(s, dev->d.name);
		} else if (strcmp(key, "Alias") == 0) {
			if ((r = bz_read_variant(m, "s", &s, &got)) < 0)
				return r;
			if (got)
				have_alias = bz_name_take(s, alias);
		} else if (strcmp(key, "Class") == 0) {
			if ((r = bz_read_variant(m, "u", &u, &got)) < 0)
				return r;
			if (got && u <= 0xffffffu)
				dev->d.cod = u;
		} else if (strcmp(key, "RSSI") == 0) {
			if ((r = bz_read_variant(m, "n", &n, &got)) < 0)
				return r;
			if (got && n >= -128 && n <= 127)
				dev->d.rssi = n;
		} else if (strcmp(key, "Paired") == 0) {
			if ((r = bz_read_variant(m, "b", &bv, &got)) < 0)
				return r;
			if (got)
				dev->paired = bv != 0;
		} else if ((r = sd_bus_message_skip(m, "v")) < 0)
			return r;
		if ((r = sd_bus_message_exit_container(m)) < 0)
			return r;
	}
	if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
		return r;
	if (!have_name && have_alias)
		memcpy(dev->d.name, alias, sizeof(alias));
	return have_addr;
}

/* By address, then by place in bluetoothd's list. */
static int
bz_dev_cmp(const void *a, const void *b)
{
	const struct bz_dev *x = a, *y = b;
	int c = memcmp(x->d.addr, y->d.addr, MAC_LEN);

	if (c != 0)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Reads one object's a{sa{sv}}: 1 with dev filled when it is a Device1 with
 * a usable address, 0 when not, negative on a malformed message. */
static int
bz_object_read(sd_bus_message *m, const char *path, struct bz_dev *dev)
{
	int r, found = 0;

	if ((r = sd_bus_message_enter_container(m, 'a', "{sa{sv}}")) < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
		const char *iface;

		if ((r = sd_bus_message_read(m, "s", &iface)) < 0)
			return r;
		if (strcmp(iface, BZ_IFACE_DEVICE) != 0) {
			if ((r = sd_bus_message_skip(m, "a{sv}")) < 0)
				return r;
		} else {
			memset(dev, 0, sizeof(*dev));
			memcpy(dev->path, path, strlen(path) + 1);
			if ((r = bz_device_props(m, dev)) < 0)
				return r;
			found = r;
			if (r == 0)
				log_debug("bluez radio: skipping %.*s: no acceptable "
				    "address", BZ_PATH_MAX, path);
		}
		if ((r = sd_bus_message_exit_container(m)) < 0)
			return r;
	}
	if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
		return r;
	return found;
}

/*
 * Lists the Device1 objects under the adapter that have a usable address,
 * sorted by address, one per address (the first object bluetoothd listed).
 * *out is a new array (free()); *n its length.
 */
static int
bz_devices(struct bz_radio *b, uint64_t deadline, struct bz_dev **out, size_t *n)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL, *reply = NULL;
	struct bz_dev *devs = NULL;
	size_t ndev = 0, cap = 0, kept;
	int r, rc = ERR_INTERNAL, warned = 0;

	*out = NULL;
	*n = 0;
	if ((rc = bz_msg(b, NULL, "/", BZ_IFACE_OBJMGR, "GetManagedObjects", &m)) != 0)
		goto out;
	if ((rc = bz_call(b, m, deadline, &reply, &err)) != 0) {
		bz_log_fail("listing devices", rc, &err);
		if (rc == ERR_IO)
			rc = ERR_UNAVAILABLE;
		goto out;
	}
	if ((r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}")) < 0)
		goto bad;
	while ((r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
		const char *path;

		if ((r = sd_bus_message_read(reply, "o", &path)) < 0)
			goto bad;
		if (!bz_path_is_device(b, path) || ndev == BZ_SCAN_MAX) {
			if (ndev == BZ_SCAN_MAX && !warned++)
				log_warnx("bluez radio: more than %d devices under %s; "
				    "the rest are not listed", BZ_SCAN_MAX, b->adapter_path);
			if ((r = sd_bus_message_skip(reply, "a{sa{sv}}")) < 0)
				goto bad;
		} else {
			struct bz_dev dev;

			if ((r = bz_object_read(reply, path, &dev)) < 0)
				goto bad;
			if (r > 0) {
				if (ndev == cap) {
					size_t ncap = cap == 0 ? 16 : cap * 2;
					struct bz_dev *nd = reallocarray(devs, ncap, sizeof(*nd));
					if (nd == NULL) {
						rc = ERR_NOMEM;
						goto out;
					}
					devs = nd;
					cap = ncap;
				}
				dev.seq = ndev;
				devs[ndev++] = dev;
			}
		}
		if ((r = sd_bus_message_exit_container(reply)) < 0)
			goto bad;
	}
	if (r < 0 || (r = sd_bus_message_exit_container(reply)) < 0)
		goto bad;

	/* one entry per address: the first one listed */
	if (ndev > 1)
		qsort(devs, ndev, sizeof(*devs), bz_dev_cmp);
	kept = 0;
	for (size_t i = 0; i < ndev; i++) {
		if (kept > 0 && memcmp(devs[kept - 1].d.addr, devs[i].d.addr, MAC_LEN) == 0)
			continue;
		if (kept != i)
			devs[kept] = devs[i];
		kept++;
	}
	*out = devs;
	*n = kept;
	devs = NULL;
	rc = 0;
	goto out;
bad:
	log_warnx("bluez radio: malformed device list from %s: %s", BZ_SERVICE,
	    strerror(r < 0 ? -r : EBADMSG));
	rc = ERR_INVALID;
out:
	free(devs);
	sd_bus_error_free(&err);
	sd_bus_message_unref(reply);
	sd_bus_message_unref(m);
	return rc;
}

/* ---------------------------------------------------------------------
 * The pairing agent.
 */

/* Whether a request is bluetoothd's and about the device being connected
 * to. Logs why not. */
static int
bz_agent_allows(struct bz_radio *b, sd_bus_message *m, const char *method,
    const char *dev_path)
{
	const char *sender = sd_bus_message_get_sender(m);

	if (sender == NULL || strcmp(sender, b->owner) != 0) {
		log_warnx("bluez radio: agent: %s from %.*s, which is not %s: "
		    "rejected", method, BZ_BUS_NAME_MAX,
		    sender != NULL ? sender : "(unknown)", BZ_SERVICE);
		return 0;
	}
	if (b->lfd >= 0 && b->target_path[0] == '\0')
		return 1;	/* listening: any peer may pair, the PIN link decides */
	if (b->target_path[0] == '\0' || strcmp(dev_path, b->target_path) != 0) {
		log_warnx("bluez radio: agent: %s for %.*s, which this radio is not "
		    "connecting to: rejected", method, BZ_PATH_MAX, dev_path);
		return 0;
	}
	return 1;
}

static int
bz_agent_reject(sd_bus_message *m, const char *why)
{
	return sd_bus_reply_method_errorf(m, BZ_ERR_REJECTED, "%s", why);
}

/* Legacy PINs and passkeys: never given, to anyone. */
static int
bz_agent_no_pin(sd_bus_message *m, const char *method)
{
	const char *dev_path = NULL;

	(void)sd_bus_message_read(m, "o", &dev_path);
	log_warnx("bluez radio: agent: %s for %.*s: rejected; provd has no "
	    "pairing PIN or passkey to give: its own PIN link (SPAKE2+ above the "
	    "radio) authenticates the device and replaces legacy pairing PINs",
	    method, BZ_PATH_MAX, dev_path != NULL ? dev_path : "(none)");
	return bz_agent_reject(m, "no PIN or passkey here");
}

static int
bz_agent_request_pin(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	(void)userdata;
	(void)ret_error;
	return bz_agent_no_pin(m, "RequestPinCode");
}

static int
bz_agent_request_passkey(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	(void)userdata;
	(void)ret_error;
	return bz_agent_no_pin(m, "RequestPasskey");
}

/* Asked to show a code for the peer to type in: nobody reads a display here
 * (and bluetoothd does not wait for the answer to DisplayPasskey). */
static int
bz_agent_display_pin(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	(void)userdata;
	(void)ret_error;
	return bz_agent_no_pin(m, "DisplayPinCode");
}

static int
bz_agent_display_passkey(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	(void)userdata;
	(void)ret_error;
	return bz_agent_no_pin(m, "DisplayPasskey");
}

/* Numeric comparison / just works, and service authorisation: yes when
 * bluetoothd asks about the target device. The number is not compared (no
 * one is there to compare it): the PIN link authenticates the device next. */
static int
bz_agent_confirm_common(sd_bus_message *m, struct bz_radio *b, const char *method)
{
	const char *dev_path = NULL;
	int r;

	if ((r = sd_bus_message_read(m, "o", &dev_path)) < 0)
		return r;
	if (!bz_agent_allows(b, m, method, dev_path))
		return bz_agent_reject(m, "not a device this radio is connecting to");
	log_info("bluez radio: agent: %s for %.*s: accepted (the PIN link "
	    "authenticates the device next)", method, BZ_PATH_MAX, dev_path);
	return sd_bus_reply_method_return(m, "");
}

static int
bz_agent_request_confirmation(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	(void)ret_error;
	return bz_agent_confirm_common(m, userdata, "RequestConfirmation");
}

static int
bz_agent_request_authorization(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	(void)ret_error;
	return bz_agent_confirm_common(m, userdata, "RequestAuthorization");
}

static int
bz_agent_authorize_service(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	(void)ret_error;
	return bz_agent_confirm_common(m, userdata, "AuthorizeService");
}

static int
bz_agent_notice(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	(void)userdata;
	(void)ret_error;
	log_debug("bluez radio: agent: %s", sd_bus_message_get_member(m));
	return sd_bus_reply_method_return(m, "");
}

/* UNPRIVILEGED: sd-bus's own check would refuse bluetoothd when it runs as
 * another user; bz_agent_allows checks the sender instead. */
#define BZ_AGENT_METHOD(name, in, out, fn) \
	SD_BUS_METHOD(name, in, out, fn, SD_BUS_VTABLE_UNPRIVILEGED)

static const sd_bus_vtable bz_agent_vtable[] = {
	SD_BUS_VTABLE_START(0),
	BZ_AGENT_METHOD("Release", "", "", bz_agent_notice),
	BZ_AGENT_METHOD("Cancel", "", "", bz_agent_notice),
	BZ_AGENT_METHOD("RequestPinCode", "o", "s", bz_agent_request_pin),
	BZ_AGENT_METHOD("DisplayPinCode", "os", "", bz_agent_display_pin),
	BZ_AGENT_METHOD("RequestPasskey", "o", "u", bz_agent_request_passkey),
	BZ_AGENT_METHOD("DisplayPasskey", "ouq", "", bz_agent_display_passkey),
	BZ_AGENT_METHOD("RequestConfirmation", "ou", "", bz_agent_request_confirmation),
	BZ_AGENT_METHOD("RequestAuthorization", "o", "", bz_agent_request_authorization),
	BZ_AGENT_METHOD("AuthorizeService", "os", "", bz_agent_authorize_service),
	SD_BUS_VTABLE_END
};

/* ---------------------------------------------------------------------
 * RFCOMM sockets and links.
 */

/* A new non-blocking RFCOMM socket, or ERR_UNAVAILABLE with the reason. */
static int
bz_rfcomm_socket(int *fd)
{
	*fd = socket(AF_BLUETOOTH, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    BTPROTO_RFCOMM);
	if (*fd >= 0)
		return 0;
	if (errno == ENOMEM || errno == ENOBUFS)
		return ERR_NOMEM;
	log_warnx("bluez radio: RFCOMM socket: %s: the RFCOMM data path is "
	    "unavailable on this host (no Bluetooth support in its kernel, or "
	    "not permitted)", strerror(errno));
	return ERR_UNAVAILABLE;
}

/*
 * Like radio_fd_wait, serving the bus meanwhile (the agent may be asked about the
 * link being set up): 0 when fd is ready (or has a hangup or error for the
 * caller to see), ERR_TIMEOUT, ERR_UNAVAILABLE when the bus failed, ERR_IO.
 */
static int
bz_wait_bus(struct bz_radio *b, int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd pfd[2];
		uint64_t bus_at = UINT64_MAX;
		int left, e;

		while ((e = sd_bus_process(b->bus, NULL)) > 0)
			;
		if (e < 0 || (e = sd_bus_get_fd(b->bus)) < 0) {
			log_warnx("bluez radio: system bus: %s", strerror(-e));
			return ERR_UNAVAILABLE;
		}
		pfd[0].fd = fd;
		pfd[0].events = events;
		pfd[0].revents = 0;
		pfd[1].fd = e;
		e = sd_bus_get_events(b->bus);
		pfd[1].events = e > 0 ? (short)e : POLLIN;
		pfd[1].revents = 0;
		left = radio_deadline_left(deadline);
		/* sd-bus's own timers (call timeouts) are CLOCK_MONOTONIC too */
		if (sd_bus_get_timeout(b->bus, &bus_at) >= 0 && bus_at != UINT64_MAX) {
			uint64_t now = now_ns() / 1000u;
			uint64_t ms = bus_at > now ? (bus_at - now + 999u) / 1000u : 0;
			if (left < 0 || ms < (uint64_t)left)
				left = (int)ms;
		}
		if (poll(pfd, 2, left) < 0) {
			if (errno == EINTR)
				continue;
			log_warnx("poll: %s", strerror(errno));
			return ERR_IO;
		}
		if (pfd[0].revents != 0)
			return 0;
		if (radio_deadline_left(deadline) == 0)
			return ERR_TIMEOUT;
	}
}

/* errno from an RFCOMM connect as a provd error. */
static int
bz_connect_errno(int e)
{
	switch (e) {
	case EHOSTDOWN:
	case EHOSTUNREACH:
		return ERR_NOT_FOUND;	/* the page went unanswered */
	case ETIMEDOUT:
		return ERR_TIMEOUT;
	case EACCES:
	case EPERM:
		return ERR_AUTH;	/* link security refused */
	case ECONNREFUSED:
	case EADDRNOTAVAIL:
	case ENETDOWN:
	case ENODEV:
		return ERR_UNAVAILABLE;
	default:
		return ERR_IO;
	}
}

static int
bz_link_new(int fd, struct radio_link *l)
{
	struct bz_link *bl;

	if ((bl = calloc(1, sizeof(*bl))) == NULL)
		return ERR_NOMEM;
	bl->fd = fd;
	l->be = bl;
	return 0;
}

/* ---------------------------------------------------------------------
 * Backend functions.
 */

/* Looks up bluetoothd's unique name and the adapter's address. */
static int
bz_probe(struct bz_radio *b)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL, *reply = NULL;
	const char *s;
	int r, rc;

	if ((rc = bz_msg(b, "org.freedesktop.DBus", "/org/freedesktop/DBus",
	    "org.freedesktop.DBus", "GetNameOwner", &m)) != 0)
		goto out;
	if ((r = sd_bus_message_append(m, "s", BZ_SERVICE)) < 0) {
		rc = r == -ENOMEM ? ERR_NOMEM : ERR_INTERNAL;
		goto out;
	}
	if ((rc = bz_call(b, m, radio_deadline_set(BZ_CALL_MS), &reply, &err)) != 0) {
		if (rc == ERR_IO)
			log_warnx("bluez radio: %s is not on the system bus (%.96s); "
			    "is bluetoothd running?", BZ_SERVICE, err.name);
		else
			bz_log_fail("looking for " BZ_SERVICE, rc, &err);
		rc = rc == ERR_NOMEM ? rc : ERR_UNAVAILABLE;
		goto out;
	}
	if ((r = sd_bus_message_read(reply, "s", &s)) < 0 ||
	    strnlen(s, BZ_BUS_NAME_MAX + 1) > BZ_BUS_NAME_MAX) {
		log_warnx("bluez radio: malformed answer from the bus daemon");
		rc = ERR_UNAVAILABLE;
		goto out;
	}
	memcpy(b->owner, s, strlen(s) + 1);
	m = sd_bus_message_unref(m);
	reply = sd_bus_message_unref(reply);

	if ((rc = bz_msg(b, NULL, b->adapter_path, BZ_IFACE_PROPS, "Get", &m)) != 0)
		goto out;
	if ((r = sd_bus_message_append(m, "ss", BZ_IFACE_ADAPTER, "Address")) < 0) {
		rc = r == -ENOMEM ? ERR_NOMEM : ERR_INTERNAL;
		goto out;
	}
	if ((rc = bz_call(b, m, radio_deadline_set(BZ_CALL_MS), &reply, &err)) != 0) {
		if (rc == ERR_IO)
			log_warnx("bluez radio: adapter %s (%s) not found: %.96s: %.160s",
			    b->adapter, b->adapter_path, err.name,
			    err.message != NULL ? err.message : "");
		else
			bz_log_fail("looking for the adapter", rc, &err);
		rc = rc == ERR_NOMEM ? rc : ERR_UNAVAILABLE;
		goto out;
	}
	if ((r = sd_bus_message_read(reply, "v", "s", &s)) < 0 ||
	    bz_bdaddr_parse(s, &b->local) != 0) {
		log_warnx("bluez radio: adapter %s has no usable Address", b->adapter);
		rc = ERR_UNAVAILABLE;
		goto out;
	}
	rc = 0;
out:
	sd_bus_error_free(&err);
	sd_bus_message_unref(reply);
	sd_bus_message_unref(m);
	return rc;
}

static int
bz_agent_register(struct bz_radio *b)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL;
	int r, rc;

	if ((r = sd_bus_add_object_vtable(b->bus, &b->agent_slot, BZ_AGENT_PATH,
	    BZ_IFACE_AGENT, bz_agent_vtable, b)) < 0) {
		log_warnx("bluez radio: exporting the agent: %s", strerror(-r));
		return r == -ENOMEM ? ERR_NOMEM : ERR_INTERNAL;
	}
	if ((rc = bz_msg(b, NULL, "/org/bluez", BZ_IFACE_AGENT_MGR, "RegisterAgent",
	    &m)) != 0)
		goto out;
	if ((r = sd_bus_message_append(m, "os", BZ_AGENT_PATH, BZ_AGENT_CAPS)) < 0) {
		rc = r == -ENOMEM ? ERR_NOMEM : ERR_INTERNAL;
		goto out;
	}
	if ((rc = bz_call(b, m, radio_deadline_set(BZ_CALL_MS), NULL, &err)) != 0) {
		bz_log_fail("registering the pairing agent", rc, &err);
		rc = rc == ERR_NOMEM ? rc : ERR_UNAVAILABLE;
		goto out;
	}
	b->agent_registered = 1;
	rc = 0;
out:
	sd_bus_error_free(&err);
	sd_bus_message_unref(m);
	return rc;
}

/* Undoes what open and listen did on the bus; best effort. */
static void
bz_release(struct bz_radio *b)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL;
	int rc;

	if (b->made_discoverable) {
		int no = 0;
		(void)bz_adapter_set(b, "Discoverable", 'b', &no);
		b->made_discoverable = 0;
	}
	if (b->agent_registered &&
	    bz_msg(b, NULL, "/org/bluez", BZ_IFACE_AGENT_MGR, "UnregisterAgent", &m) == 0 &&
	    sd_bus_message_append(m, "o", BZ_AGENT_PATH) >= 0 &&
	    (rc = bz_call(b, m, radio_deadline_set(BZ_CALL_MS), NULL, &err)) != 0)
		bz_log_fail("unregistering the pairing agent", rc, &err);
	b->agent_registered = 0;
	sd_bus_error_free(&err);
	sd_bus_message_unref(m);
}

static void
bz_free(struct bz_radio *b)
{
	if (b == NULL)
		return;
	if (b->bus != NULL)
		bz_release(b);
	if (b->lfd >= 0)
		close(b->lfd);
	sd_bus_slot_unref(b->agent_slot);
	sd_bus_flush_close_unref(b->bus);
	if (b->mu_ok)
		pthread_mutex_destroy(&b->mu);
	free(b);
}

static int
bz_open(struct radio *r, const struct radio_params *p)
{
	const char *adapter = p->adapter != NULL && p->adapter[0] != '\0' ?
	    p->adapter : BZ_ADAPTER_DEFAULT;
	struct bz_radio *b = NULL;
	int e, rc = ERR_INTERNAL;

	if (!bz_adapter_ok(adapter)) {
		log_warnx("bluez radio: adapter name \"%.*s\" is malformed (1 to %d "
		    "of A-Z a-z 0-9 _)", BZ_ADAPTER_MAX + 1, adapter, BZ_ADAPTER_MAX);
		return ERR_CONFIG;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return ERR_NOMEM;
	b->lfd = -1;
	if ((e = pthread_mutex_init(&b->mu, NULL)) != 0) {
		log_warnx("pthread_mutex_init: %s", strerror(e));
		rc = ERR_INTERNAL;
		goto out;
	}
	b->mu_ok = 1;
	memcpy(b->adapter, adapter, strlen(adapter) + 1);
	snprintf(b->adapter_path, sizeof(b->adapter_path), "%s%s", BZ_ROOT, adapter);

	if ((e = sd_bus_open_system(&b->bus)) < 0) {
		log_warnx("bluez radio: cannot reach the system bus: %s", strerror(-e));
		b->bus = NULL;
		rc = e == -ENOMEM ? ERR_NOMEM : ERR_UNAVAILABLE;
		goto out;
	}
	if ((rc = bz_probe(b)) != 0)
		goto out;
	if ((rc = bz_agent_register(b)) != 0)
		goto out;
	log_info("bluez radio on adapter %s", b->adapter);
	r->be = b;
	b = NULL;
	rc = 0;
out:
	bz_free(b);
	return rc;
}

static void
bz_close(struct radio *r)
{
	bz_free(r->be);
	r->be = NULL;
}

/* Serves the bus until deadline (agent requests, discovery traffic). */
static int
bz_pump(struct bz_radio *b, uint64_t deadline)
{
	int left, r;

	for (;;) {
		if ((r = sd_bus_process(b->bus, NULL)) < 0) {
			log_warnx("bluez radio: system bus: %s", strerror(-r));
			return ERR_UNAVAILABLE;
		}
		if (r > 0)
			continue;
		if ((left = radio_deadline_left(deadline)) == 0)
			return 0;
		if ((r = sd_bus_wait(b->bus, bz_usec(left))) < 0 && r != -EINTR) {
			log_warnx("bluez radio: system bus: %s", strerror(-r));
			return ERR_UNAVAILABLE;
		}
	}
}

static int
bz_inquire_locked(struct radio *r, int timeout_ms, struct radio_device *out,
    size_t max, size_t *n)
{
	struct bz_radio *b = r->be;
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL;
	struct bz_dev *devs = NULL;
	size_t ndev = 0;
	int e, rc = ERR_INTERNAL;

	/* bluetoothd's discovery only ever ends when stopped */
	if (timeout_ms < 0)
		timeout_ms = BZ_INQUIRY_MS_DEFAULT;

	/* Transport "auto": BR/EDR and LE, as the adapter allows. Setting a
	 * filter also replaces one an earlier session of ours left. */
	if ((rc = bz_msg(b, NULL, b->adapter_path, BZ_IFACE_ADAPTER,
	    "SetDiscoveryFilter", &m)) != 0)
		goto out;
	if ((e = sd_bus_message_append(m, "a{sv}", 1, "Transport", "s", "auto")) < 0) {
		rc = e == -ENOMEM ? ERR_NOMEM : ERR_INTERNAL;
		goto out;
	}
	if ((rc = bz_call(b, m, radio_deadline_set(BZ_CALL_MS), NULL, &err)) != 0) {
		bz_log_fail("setting the discovery filter", rc, &err);
		goto fail;
	}
	if ((rc = bz_call_simple(b, b->adapter_path, BZ_IFACE_ADAPTER, "StartDiscovery",
	    radio_deadline_set(BZ_CALL_MS), &err)) != 0) {
		bz_log_fail("starting discovery", rc, &err);
		goto fail;
	}
	rc = bz_pump(b, radio_deadline_set(timeout_ms));
	e = bz_call_simple(b, b->adapter_path, BZ_IFACE_ADAPTER, "StopDiscovery",
	    radio_deadline_set(BZ_CALL_MS), &err);
	if (e != 0) {
		/* the devices found are still there to list */
		bz_log_fail("stopping discovery", e, &err);
		sd_bus_error_free(&err);
	}
	if (rc != 0)
		goto out;
	if ((rc = bz_devices(b, radio_deadline_set(BZ_CALL_MS), &devs, &ndev)) != 0)
		goto out;
	*n = ndev < max ? ndev : max;
	for (size_t i = 0; i < *n; i++)
		out[i] = devs[i].d;
	log_debug("inquiry found %zu device(s), listing %zu", ndev, *n);
	rc = 0;
	goto out;
fail:
	if (rc == ERR_IO)
		rc = sd_bus_error_has_name(&err, "org.bluez.Error.NotReady") ||
		    sd_bus_error_has_name(&err, "org.bluez.Error.Failed") ?
		    ERR_UNAVAILABLE : ERR_IO;
out:
	free(devs);
	sd_bus_error_free(&err);
	sd_bus_message_unref(m);
	return rc;
}

/* Device1.Pair's error as a provd error. */
static int
bz_pair_error(const sd_bus_error *err)
{
	static const char *const auth[] = {
		"org.bluez.Error.AuthenticationFailed",
		"org.bluez.Error.AuthenticationRejected",
		"org.bluez.Error.AuthenticationCanceled",
		"org.bluez.Error.Rejected",
	};

	for (size_t i = 0; i < sizeof(auth) / sizeof(auth[0]); i++)
		if (sd_bus_error_has_name(err, auth[i]))
			return ERR_AUTH;
	if (sd_bus_error_has_name(err, "org.bluez.Error.AuthenticationTimeout"))
		return ERR_TIMEOUT;
	if (sd_bus_error_has_name(err, "org.bluez.Error.ConnectionAttemptFailed"))
		return ERR_NOT_FOUND;	/* page timeout: not in range */
	if (sd_bus_error_has_name(err, "org.bluez.Error.InProgress"))
		return ERR_CONFLICT;
	if (sd_bus_error_has_name(err, "org.bluez.Error.DoesNotExist") ||
	    sd_bus_error_has_name(err, SD_BUS_ERROR_UNKNOWN_OBJECT))
		return ERR_NOT_FOUND;
	if (sd_bus_error_has_name(err, "org.bluez.Error.NotReady"))
		return ERR_UNAVAILABLE;
	return ERR_IO;
}

/* Pairs the device at path (the agent's target by now). */
static int
bz_pair(struct bz_radio *b, const char *path, const char *addr_s, uint64_t deadline)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL;
	int rc;

	if ((rc = bz_msg(b, NULL, path, BZ_IFACE_DEVICE, "Pair", &m)) != 0)
		goto out;
	rc = bz_call(b, m, deadline, NULL, &err);
	if (rc == ERR_IO && sd_bus_error_has_name(&err, "org.bluez.Error.AlreadyExists")) {
		log_debug("bluez radio: %s was paired already", addr_s);
		rc = 0;
	} else if (rc == ERR_IO) {
		rc = bz_pair_error(&err);
		log_warnx("bluez radio: pairing with %s: %.96s: %.160s (%s)", addr_s,
		    err.name, err.message != NULL ? err.message : "",
		    provd_strerror(rc));
	} else if (rc == ERR_TIMEOUT) {
		sd_bus_message *cm = NULL;

		log_warnx("bluez radio: pairing with %s: timed out", addr_s);
		/* no answer wanted: stop the attempt, if it still runs */
		if (bz_msg(b, NULL, path, BZ_IFACE_DEVICE, "CancelPairing", &cm) == 0 &&
		    sd_bus_message_set_expect_reply(cm, 0) >= 0)
			(void)sd_bus_send(b->bus, cm, NULL);
		sd_bus_message_unref(cm);
	} else if (rc != 0)
		bz_log_fail("pairing", rc, &err);
	if (rc == 0)
		log_info("bluez radio: paired with %s", addr_s);
out:
	sd_bus_error_free(&err);
	sd_bus_message_unref(m);
	return rc;
}

/* The RFCOMM connection to addr on RADIO_BLUEZ_CHANNEL. */
static int
bz_rfcomm_connect(struct bz_radio *b, const uint8_t addr[MAC_LEN], const char *addr_s,
    uint64_t deadline, int *out)
{
	struct sockaddr_rc sa;
	socklen_t elen;
	int fd = -1, e, rc;

	*out = -1;
	if ((rc = bz_rfcomm_socket(&fd)) != 0)
		return rc;
	memset(&sa, 0, sizeof(sa));
	sa.rc_family = AF_BLUETOOTH;
	bz_addr_to_bdaddr(addr, &sa.rc_bdaddr);
	sa.rc_channel = RADIO_BLUEZ_CHANNEL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (errno != EINPROGRESS && errno != EINTR) {
			e = errno;
			goto fail;
		}
		if ((rc = bz_wait_bus(b, fd, POLLOUT, deadline)) != 0) {
			log_warnx("bluez radio: RFCOMM to %s: %s", addr_s, provd_strerror(rc));
			goto out;
		}
		elen = sizeof(e);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0)
			e = errno;
		if (e != 0)
			goto fail;
	}
	*out = fd;
	fd = -1;
	rc = 0;
	goto out;
fail:
	rc = bz_connect_errno(e);
	log_warnx("bluez radio: RFCOMM to %s channel %d: %s", addr_s,
	    RADIO_BLUEZ_CHANNEL, strerror(e));
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

static int
bz_connect_locked(struct radio *r, const uint8_t addr[MAC_LEN], int timeout_ms,
    struct radio_link *l)
{
	struct bz_radio *b = r->be;
	uint64_t deadline = radio_deadline_set(timeout_ms);
	struct bz_dev *devs = NULL, *dev = NULL;
	char addr_s[MAC_STR_LEN];
	size_t ndev = 0;
	int fd = -1, rc = ERR_INTERNAL;

	mac_format(addr, addr_s);
	if ((rc = bz_devices(b, radio_deadline_set(BZ_CALL_MS), &devs, &ndev)) != 0)
		goto out;
	for (size_t i = 0; i < ndev && dev == NULL; i++)
		if (memcmp(devs[i].d.addr, addr, MAC_LEN) == 0)
			dev = &devs[i];
	if (dev == NULL) {
		log_debug("bluez radio: %s: no such device under %s", addr_s,
		    b->adapter_path);
		rc = ERR_NOT_FOUND;
		goto out;
	}
	/* the agent's target from here to the end: pairing, and the link
	 * security the kernel may ask bluetoothd for while RFCOMM connects */
	memcpy(b->target_path, dev->path, strlen(dev->path) + 1);
	if (!dev->paired && (rc = bz_pair(b, dev->path, addr_s, deadline)) != 0)
		goto out;
	if ((rc = bz_rfcomm_connect(b, addr, addr_s, deadline, &fd)) != 0)
		goto out;
	if ((rc = bz_link_new(fd, l)) != 0)
		goto out;
	fd = -1;
	memcpy(l->peer, addr, MAC_LEN);
	log_debug("bluez radio: link to %s", addr_s);
	rc = 0;
out:
	b->target_path[0] = '\0';
	if (fd >= 0)
		close(fd);
	free(devs);
	return rc;
}

static int
bz_listen_locked(struct radio *r, const struct radio_device *self)
{
	struct bz_radio *b = r->be;
	struct sockaddr_rc sa;
	uint32_t forever = 0;
	int yes = 1, fd = -1, rc = ERR_INTERNAL;

	if (b->lfd >= 0) {
		log_warnx("bluez radio: already listening");
		return ERR_CONFLICT;
	}
	/* The adapter's address and class are its own (the controller's, and
	 * bluetoothd's configuration): self->addr and self->cod are not
	 * applied. DiscoverableTimeout 0 keeps it discoverable until close. */
	if ((rc = bz_adapter_set(b, "Alias", 's', self->name)) != 0 ||
	    (rc = bz_adapter_set(b, "Pairable", 'b', &yes)) != 0 ||
	    (rc = bz_adapter_set(b, "DiscoverableTimeout", 'u', &forever)) != 0 ||
	    (rc = bz_adapter_set(b, "Discoverable", 'b', &yes)) != 0)
		goto out;
	b->made_discoverable = 1;

	if ((rc = bz_rfcomm_socket(&fd)) != 0)
		goto out;
	memset(&sa, 0, sizeof(sa));
	sa.rc_family = AF_BLUETOOTH;
	sa.rc_bdaddr = b->local;
	sa.rc_channel = RADIO_BLUEZ_CHANNEL;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, BZ_BACKLOG) != 0) {
		int e = errno;

		log_warnx("bluez radio: RFCOMM channel %d on %s: %s",
		    RADIO_BLUEZ_CHANNEL, b->adapter, strerror(e));
		rc = e == EADDRINUSE ? ERR_CONFLICT : ERR_UNAVAILABLE;
		goto out;
	}
	b->lfd = fd;
	fd = -1;
	log_info("bluez radio listening on %s, RFCOMM channel %d, as \"%s\"",
	    b->adapter, RADIO_BLUEZ_CHANNEL, self->name);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

static int
bz_accept_locked(struct radio *r, int timeout_ms, struct radio_link *l)
{
	struct bz_radio *b = r->be;
	uint64_t deadline = radio_deadline_set(timeout_ms);
	struct sockaddr_rc sa;
	socklen_t salen;
	char ps[MAC_STR_LEN];
	int fd = -1, rc = ERR_INTERNAL;

	if (b->lfd < 0) {
		log_warnx("bluez radio: accept without listen");
		return ERR_CONFLICT;
	}
	for (;;) {
		salen = sizeof(sa);
		memset(&sa, 0, sizeof(sa));
		fd = accept4(b->lfd, (struct sockaddr *)&sa, &salen,
		    SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0)
			break;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED) {
			log_warnx("bluez radio: accept: %s", strerror(errno));
			rc = ERR_IO;
			goto out;
		}
		/* the agent answers (and refuses) while this waits */
		if ((rc = bz_wait_bus(b, b->lfd, POLLIN, deadline)) != 0)
			goto out;
	}
	if ((rc = bz_link_new(fd, l)) != 0)
		goto out;
	fd = -1;
	bz_bdaddr_to_addr(&sa.rc_bdaddr, l->peer);
	mac_format(l->peer, ps);
	log_debug("bluez radio: link from %s", ps);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---------------------------------------------------------------------
 * Entry points: each call takes its turn on the radio's mutex.
 */

static int
bz_inquire(struct radio *r, int timeout_ms, struct radio_device *out,
    size_t max, size_t *n)
{
	struct bz_radio *b = r->be;
	int rc;

	pthread_mutex_lock(&b->mu);
	rc = bz_inquire_locked(r, timeout_ms, out, max, n);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int
bz_connect(struct radio *r, const uint8_t addr[MAC_LEN], int timeout_ms,
    struct radio_link *l)
{
	struct bz_radio *b = r->be;
	int rc;

	pthread_mutex_lock(&b->mu);
	rc = bz_connect_locked(r, addr, timeout_ms, l);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int
bz_listen(struct radio *r, const struct radio_device *self)
{
	struct bz_radio *b = r->be;
	int rc;

	pthread_mutex_lock(&b->mu);
	rc = bz_listen_locked(r, self);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int
bz_accept(struct radio *r, int timeout_ms, struct radio_link *l)
{
	struct bz_radio *b = r->be;
	int rc;

	pthread_mutex_lock(&b->mu);
	rc = bz_accept_locked(r, timeout_ms, l);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int
bz_link_write(struct radio_link *l, const void *buf, size_t len, int timeout_ms)
{
	struct bz_link *bl = l->be;
	size_t sent;

	return radio_fd_write_all(bl->fd, buf, len, &sent, radio_deadline_set(timeout_ms));
}

static int
bz_link_read_some(struct radio_link *l, void *buf, size_t len, size_t *got,
    int timeout_ms)
{
	struct bz_link *bl = l->be;

	return radio_fd_read_some(bl->fd, buf, len, got, radio_deadline_set(timeout_ms));
}

static int
bz_link_fd(const struct radio_link *l)
{
	const struct bz_link *bl = l->be;

	return bl->fd;
}

static void
bz_link_close(struct radio_link *l)
{
	struct bz_link *bl = l->be;

	if (bl == NULL)
		return;
	close(bl->fd);
	free(bl);
	l->be = NULL;
}

/* No fault hook on a real radio: radio_link_set_fault answers ERR_UNSUPPORTED. */
const struct radio_ops radio_bluez_ops = {
	.name = "bluez",
	.open = bz_open,
	.close = bz_close,
	.inquire = bz_inquire,
	.connect = bz_connect,
	.listen = bz_listen,
	.accept = bz_accept,
	.link_write = bz_link_write,
	.link_read_some = bz_link_read_some,
	.link_fd = bz_link_fd,
	.link_set_fault = NULL,
	.link_close = bz_link_close,
};
