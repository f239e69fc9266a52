/*
 * main_devagent.c: devagent, the simulated device and reference program of
 * the device library — made at "manufacture" from an address and a setup
 * PIN, it answers inquiry and intake on a radio, keeps its key in a keystore
 * (tpm2 or file), authenticates to other devices with its certificate and
 * talks to them over the encrypted link (connect; serve once provisioned),
 * and can show its identity or be factory reset.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "device/device.h"

#define INTAKE_STEP_MS 30000	/* per step of an intake: the CA and the database
				   may take their time */
#define CRL_FILE "crl.der"	/* the cached CRL, in the state directory */
#define CRL_REFRESH_S 300	/* serve: how often to ask provd for the CRL */
#define IDLE_S 60		/* serve: a link with no traffic for this long ends */
#define MSG_MAX 1024		/* connect: one --message */

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: devagent --state DIR COMMAND\n"
	    "\n"
	    "commands:\n"
	    "  init --addr ADDR --pin PIN|--pin-file FILE [--name NAME] [--model MODEL]\n"
	    "       [--keystore file|tpm2] [--tcti TCTI] [--force]\n"
	    "                                                 make the device (the PIN is not kept)\n"
	    "  serve [--air DIR] [--once] [--timeout SECONDS] [PEER OPTIONS] [--crl-refresh SECONDS]\n"
	    "        [--idle SECONDS]                         answer inquiry and intake; once\n"
	    "                                                 provisioned, mutual authentication\n"
	    "                                                 (echoes what the peer sends)\n"
	    "  connect ADDR [--air DIR] [PEER OPTIONS] [--message TEXT]... [--count N]\n"
	    "        [--interval-ms MS]                       authenticate to ADDR, send, print replies\n"
	    "  renew --url URL [--cacert FILE]                renew the certificate now (new key)\n"
	    "  run --url URL [--cacert FILE] [--interval SECONDS] [--once]\n"
	    "                                                 renew when provd or the lifetime says so\n"
	    "  show                                           print the device's identity\n"
	    "  reset                                          factory reset\n"
	    "\n"
	    "PEER OPTIONS: [--provd URL] [--cacert FILE] [--crl-grace SECONDS|any]\n"
	    "        [--rekey-after-ms MS] [--rekey-frames N] [--auth-timeout SECONDS]\n"
	    "\n"
	    "The radio is the sim backend; --air (default $PROVD_AIR) is its directory.\n");
}

static int
cmd_init(const char *state, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "pin", required_argument, NULL, 'p' },
		{ "pin-file", required_argument, NULL, 'P' },
		{ "name", required_argument, NULL, 'n' },
		{ "model", required_argument, NULL, 'm' },
		{ "keystore", required_argument, NULL, 'k' },
		{ "tcti", required_argument, NULL, 't' },
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	struct agent_init_opts o = { .dir = state, .name = "device", .model = "devagent",
		.keystore = "file" };
	char why[256], *pin = NULL;
	int c, r;

	why[0] = '\0';
	optind = 0;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'a': o.addr = optarg; break;
		case 'p':
			secret_free(pin);
			if (secret_take_arg(optarg, &pin) != 0)
				return 1;
			break;
		case 'P':
			secret_free(pin);
			pin = NULL;
			if (secret_read_file(optarg, &pin) != 0) {
				fprintf(stderr, "devagent: cannot read the PIN file %s\n", optarg);
				return 1;
			}
			break;
		case 'n': o.name = optarg; break;
		case 'm': o.model = optarg; break;
		case 'k': o.keystore = optarg; break;
		case 't': o.tcti = optarg; break;
		case 'f': o.force = 1; break;
		default: usage(stderr); return 2;
		}
	}
	if (o.addr == NULL || pin == NULL || optind != argc) {
		fprintf(stderr, "devagent: init needs --addr and --pin or --pin-file\n");
		secret_free(pin);
		return 2;
	}
	o.pin = pin;
	r = agent_init(&o, why, sizeof(why));
	secret_free(pin);
	if (r != 0) {
		fprintf(stderr, "devagent: %s\n", why[0] ? why : provd_strerror(r));
		return 1;
	}
	printf("device %s made in %s (keystore %s)\n", o.addr, state, o.keystore);
	return 0;
}

/* ---------------------------------------------------------------------
 * Mutual authentication: options shared by serve and connect, the
 * device's identity and cached CRL, the echo on the serving side.
 */
enum {
	OPT_PROVD = 0x100, OPT_CACERT, OPT_CRL_GRACE, OPT_CRL_REFRESH, OPT_REKEY_MS,
	OPT_REKEY_FRAMES, OPT_AUTH_TIMEOUT, OPT_IDLE,
};

#define PEER_LONG_OPTS \
	{ "provd", required_argument, NULL, OPT_PROVD }, \
	{ "cacert", required_argument, NULL, OPT_CACERT }, \
	{ "crl-grace", required_argument, NULL, OPT_CRL_GRACE }, \
	{ "rekey-after-ms", required_argument, NULL, OPT_REKEY_MS }, \
	{ "rekey-frames", required_argument, NULL, OPT_REKEY_FRAMES }, \
	{ "auth-timeout", required_argument, NULL, OPT_AUTH_TIMEOUT }

struct peer_opts {
	const char *url, *cacert;	/* provd, for the CRL; NULL: cached only */
	int64_t crl_grace_s;
	int64_t crl_refresh_s;
	int64_t idle_s;
	int64_t auth_timeout_s;
	struct seclink_opts lo;
};

/* One of the shared options: 0 taken, 1 not one of them, 2 bad value. */
static int
peer_opt(int c, const char *arg, struct peer_opts *po)
{
	int64_t v;

	switch (c) {
	case OPT_PROVD: po->url = arg; return 0;
	case OPT_CACERT: po->cacert = arg; return 0;
	case OPT_CRL_GRACE:
		if (strcmp(arg, "any") == 0) {
			po->crl_grace_s = CRL_GRACE_ANY;
			return 0;
		}
		if (parse_int64(arg, 0, 31536000, &po->crl_grace_s) != 0) {
			fprintf(stderr, "devagent: --crl-grace is 0..31536000 seconds or \"any\"\n");
			return 2;
		}
		return 0;
	case OPT_REKEY_MS:
		if (parse_int64(arg, 1, 86400000, &po->lo.rekey_after_ms) != 0) {
			fprintf(stderr, "devagent: --rekey-after-ms is 1..86400000\n");
			return 2;
		}
		return 0;
	case OPT_REKEY_FRAMES:
		if (parse_int64(arg, 1, SECLINK_FRAMES_MAX / 2, &v) != 0) {
			fprintf(stderr, "devagent: --rekey-frames is 1..%u\n", SECLINK_FRAMES_MAX / 2);
			return 2;
		}
		po->lo.rekey_after_frames = (uint32_t)v;
		return 0;
	case OPT_AUTH_TIMEOUT:
		if (parse_int64(arg, 1, 3600, &po->auth_timeout_s) != 0) {
			fprintf(stderr, "devagent: --auth-timeout is 1..3600 seconds\n");
			return 2;
		}
		return 0;
	case OPT_CRL_REFRESH:
		if (parse_int64(arg, 1, 86400, &po->crl_refresh_s) != 0) {
			fprintf(stderr, "devagent: --crl-refresh is 1..86400 seconds\n");
			return 2;
		}
		return 0;
	case OPT_IDLE:
		if (parse_int64(arg, 1, 86400, &po->idle_s) != 0) {
			fprintf(stderr, "devagent: --idle is 1..86400 seconds\n");
			return 2;
		}
		return 0;
	default:
		return 1;
	}
}

/* What a device needs to authenticate: its identity, the cached CRL and
 * the TLS contexts. Released before the agent (its keystore) closes. */
struct peer_setup {
	EVP_PKEY *key;
	X509 *cert;
	STACK_OF(X509) *ca;
	struct crl_cache *crl;
	struct peer_ctx *pc;
	uint64_t crl_next_ns;		/* next refresh from provd */
	int crl_failing;		/* the last refresh failed (said once) */
};

static void
peer_setup_close(struct peer_setup *ps)
{
	peer_ctx_free(ps->pc);
	crl_cache_free(ps->crl);
	EVP_PKEY_free(ps->key);
	X509_free(ps->cert);
	sk_X509_pop_free(ps->ca, X509_free);
	memset(ps, 0, sizeof(*ps));
}

/* Asks provd for its CRL when one is named and the time has come (or
 * force). A failure keeps the cached CRL and is said once. */
static void
crl_refresh_due(struct peer_setup *ps, const struct peer_opts *po, const char *ms, int force)
{
	char why[512];
	uint64_t now = now_ns();
	int r;

	if (po->url == NULL || (!force && now < ps->crl_next_ns))
		return;
	r = crl_cache_refresh(ps->crl, po->url, po->cacert, (int)po->auth_timeout_s, why,
	    sizeof(why));
	if (r != 0 && !ps->crl_failing)
		fprintf(stderr, "devagent %s: CRL not refreshed, the cached one stays in use: %s\n",
		    ms, why);
	ps->crl_failing = r != 0;
	/* after a failure, try again sooner than the usual interval */
	ps->crl_next_ns = now + (uint64_t)(r == 0 || po->crl_refresh_s < 10 ? po->crl_refresh_s :
	    10) * 1000000000ull;
}

static int
peer_setup_open(struct agent *a, const char *state, const struct peer_opts *po,
    struct peer_setup *ps, const char *ms)
{
	struct peer_params pp = { 0 };
	OSSL_LIB_CTX *libctx = NULL;
	const char *propq = NULL;
	char path[4096];
	int r;

	memset(ps, 0, sizeof(*ps));
	if ((r = keystore_tls_identity(agent_keystore(a), &ps->key, &ps->cert, &ps->ca, &libctx,
	    &propq)) != 0) {
		fprintf(stderr, "devagent %s: %s\n", ms, r == ERR_NOT_FOUND ?
		    "no certificate installed: the device needs intake first" :
		    "the installed identity cannot be used (see the log)");
		return r;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", state, CRL_FILE) >= sizeof(path) ||
	    (r = crl_cache_open(path, ps->ca, &ps->crl)) != 0) {
		fprintf(stderr, "devagent %s: cannot open the CRL cache\n", ms);
		goto fail;
	}
	crl_refresh_due(ps, po, ms, 1);
	pp.key = ps->key;
	pp.cert = ps->cert;
	pp.ca = ps->ca;
	pp.libctx = libctx;
	pp.propq = propq;
	pp.crl = ps->crl;
	pp.crl_grace_s = po->crl_grace_s;
	pp.timeout_ms = (int)po->auth_timeout_s * 1000;
	if ((r = peer_ctx_new(&pp, &ps->pc)) != 0) {
		fprintf(stderr, "devagent %s: cannot set up mutual authentication: %s\n", ms,
		    provd_strerror(r));
		goto fail;
	}
	return 0;
fail:
	peer_setup_close(ps);
	return r != 0 ? r : ERR_INTERNAL;
}

/* Printable text of at most len bytes (the rest as '?'). */
static void
print_text(const char *prefix, const uint8_t *b, size_t len)
{
	fputs(prefix, stdout);
	for (size_t i = 0; i < len; i++)
		putchar(b[i] >= 0x20 && b[i] < 0x7f ? b[i] : '?');
	putchar('\n');
	fflush(stdout);
}

/* One mutual-authentication link accepted on the serving side: the
 * handshake, then whatever the peer sends is sent back, until it closes,
 * goes quiet for idle_s, or the link breaks. 0 when the peer was
 * authenticated and the link ended in order. */
static int
serve_peer(struct peer_setup *ps, const struct peer_opts *po, struct radio_link *l,
    const char *ms)
{
	static uint8_t buf[SECLINK_MAX_DATA];
	struct peer_info pi = { 0 };
	struct seclink_io io;
	struct seclink *sl = NULL;
	struct seclink_stats st;
	uint8_t key[PEER_LINK_KEY_LEN];
	char why[512], peer[MAC_STR_LEN];
	uint64_t n = 0;
	int64_t idle_ms = 0;
	size_t len;
	int r;

	if ((r = peer_accept(ps->pc, l, &pi, key, why, sizeof(why))) != 0) {
		if (r == ERR_CONFLICT)
			fprintf(stderr, "devagent %s: %s\n", ms, why);
		else
			fprintf(stderr, "devagent %s: mutual authentication failed: %s\n", ms, why);
		return r;
	}
	mac_format(pi.addr, peer);
	seclink_io_radio(l, &io);
	if ((r = seclink_new(&io, 0, key, &po->lo, &sl)) != 0) {
		fprintf(stderr, "devagent %s: cannot start the encrypted link: %s\n", ms,
		    provd_strerror(r));
		peer_info_clear(&pi);
		return r;
	}
	printf("devagent %s: authenticated %s (certificate serial %s), link encrypted\n", ms,
	    peer, pi.serial);
	fflush(stdout);
	while (!stop) {
		r = seclink_recv(sl, buf, sizeof(buf), &len, 1000);
		if (r == ERR_TIMEOUT) {
			if ((idle_ms += 1000) >= po->idle_s * 1000)
				break;
			continue;
		}
		if (r != 0 || (r = seclink_send(sl, buf, len)) != 0)
			break;
		idle_ms = 0;
		n++;
	}
	seclink_stats(sl, &st);
	if (r == 0 || r == ERR_TIMEOUT || seclink_peer_closed(sl)) {
		printf("devagent %s: link with %s closed%s (%llu messages, %u key changes)\n", ms,
		    peer, r == ERR_TIMEOUT ? " after it went idle" : "", (unsigned long long)n,
		    st.epoch);
		r = 0;
	} else
		fprintf(stderr, "devagent %s: link with %s ended: %s (%llu messages, %u key "
		    "changes)\n", ms, peer, seclink_error(sl), (unsigned long long)n, st.epoch);
	fflush(stdout);
	seclink_close(sl);
	peer_info_clear(&pi);
	return r;
}

static int
cmd_serve(struct agent *a, const char *state, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "air", required_argument, NULL, 'A' },
		{ "once", no_argument, NULL, 'o' },
		{ "timeout", required_argument, NULL, 't' },
		{ "crl-refresh", required_argument, NULL, OPT_CRL_REFRESH },
		{ "idle", required_argument, NULL, OPT_IDLE },
		PEER_LONG_OPTS,
		{ NULL, 0, NULL, 0 },
	};
	const struct device_profile *dp = agent_profile(a);
	struct radio_params rp = { .backend = "sim", .sim_dir = getenv("PROVD_AIR") };
	struct radio_device self = { .cod = 0x240404, .rssi = -45 };
	struct peer_opts po = { .crl_refresh_s = CRL_REFRESH_S, .idle_s = IDLE_S,
		.auth_timeout_s = PEER_TIMEOUT_MS_DEFAULT / 1000 };
	struct peer_setup ps = { 0 };
	struct radio *radio = NULL;
	int64_t secs = 0, failures, locked_until;
	int once = 0, c, r, rc = 1, provisioned, peers = 0;
	char why[256], ms[MAC_STR_LEN];
	uint64_t deadline;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'A': rp.sim_dir = optarg; break;
		case 'o': once = 1; break;
		case 't':
			if (parse_int64(optarg, 1, 86400, &secs) != 0) {
				fprintf(stderr, "devagent: --timeout is 1..86400 seconds\n");
				return 2;
			}
			break;
		default:
			if ((r = peer_opt(c, optarg, &po)) != 0) {
				if (r == 1)
					usage(stderr);
				return 2;
			}
		}
	}
	if (rp.sim_dir == NULL || optind != argc) {
		fprintf(stderr, "devagent: serve needs --air DIR (or $PROVD_AIR)\n");
		return 2;
	}
	po.lo.timeout_ms = (int)po.auth_timeout_s * 1000;
	memcpy(self.addr, dp->addr, MAC_LEN);
	snprintf(self.name, sizeof(self.name), "%.*s", (int)sizeof(self.name) - 1, dp->name);
	mac_format(dp->addr, ms);
	if ((r = radio_open(&rp, &radio)) != 0 || (r = radio_listen(radio, &self)) != 0) {
		fprintf(stderr, "devagent: cannot use the radio: %s\n", r == ERR_CONFLICT ?
		    "another device listens at this address" : provd_strerror(r));
		radio_close(radio);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	printf("devagent %s (%s) in range on %s\n", ms, dp->name, rp.sim_dir);
	fflush(stdout);
	deadline = secs ? now_ns() + (uint64_t)secs * 1000000000ull : 0;
	while (!stop && (deadline == 0 || now_ns() < deadline)) {
		agent_status(a, &provisioned, &failures, &locked_until);
		if (provisioned) {
			/* provisioned: mutual authentication (an intake attempt
			 * is recognised and refused there) */
			struct radio_link *l = NULL;

			if (ps.pc == NULL && peer_setup_open(a, state, &po, &ps, ms) != 0)
				break;
			crl_refresh_due(&ps, &po, ms, 0);
			if ((r = radio_accept(radio, 500, &l)) == ERR_TIMEOUT)
				continue;
			if (r != 0) {
				fprintf(stderr, "devagent %s: %s\n", ms, provd_strerror(r));
				break;
			}
			if (serve_peer(&ps, &po, l, ms) == 0)
				rc = 0;
			radio_link_close(l);
			peers++;
			if (once)
				break;
			continue;
		}
		r = agent_serve_once(a, radio, 500, INTAKE_STEP_MS, why, sizeof(why));
		if (r == ERR_TIMEOUT)
			continue;
		if (r == 0) {
			printf("devagent %s: provisioned\n", ms);
			fflush(stdout);
			rc = 0;
			if (once)
				break;
			continue;
		}
		fprintf(stderr, "devagent %s: %s\n", ms, why[0] ? why : provd_strerror(r));
		if (once)
			break;
	}
	if (!once && stop)
		rc = 0;
	else if (rc != 0 && deadline != 0 && now_ns() >= deadline)
		fprintf(stderr, "devagent %s: no %s within %lld s\n", ms,
		    peers == 0 && ps.pc == NULL ? "intake" : "connection", (long long)secs);
	peer_setup_close(&ps);
	radio_close(radio);
	return rc;
}

static int
cmd_connect(struct agent *a, const char *state, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "air", required_argument, NULL, 'A' },
		{ "message", required_argument, NULL, 'm' },
		{ "count", required_argument, NULL, 'n' },
		{ "interval-ms", required_argument, NULL, 'i' },
		PEER_LONG_OPTS,
		{ NULL, 0, NULL, 0 },
	};
	static uint8_t buf[SECLINK_MAX_DATA];
	const struct device_profile *dp = agent_profile(a);
	struct radio_params rp = { .backend = "sim", .sim_dir = getenv("PROVD_AIR") };
	struct radio_device self = { .cod = 0x240404, .rssi = -45 };
	struct peer_opts po = { .crl_refresh_s = CRL_REFRESH_S,
		.auth_timeout_s = PEER_TIMEOUT_MS_DEFAULT / 1000 };
	struct peer_setup ps = { 0 };
	struct peer_info pi = { 0 };
	struct radio *radio = NULL;
	struct radio_link *l = NULL;
	struct seclink *sl = NULL;
	struct seclink_io io;
	struct seclink_stats st;
	const char *msgs[32];
	size_t nmsg = 0, len;
	int64_t count = 0, interval_ms = 0;
	uint8_t to[MAC_LEN], key[PEER_LINK_KEY_LEN];
	char ms[MAC_STR_LEN], ts[MAC_STR_LEN], why[512], text[64], when[32];
	int c, r, rc = 1;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'A': rp.sim_dir = optarg; break;
		case 'm':
			if (nmsg == sizeof(msgs) / sizeof(msgs[0]) || strlen(optarg) > MSG_MAX) {
				fprintf(stderr, "devagent: at most %zu messages of %d bytes\n",
				    sizeof(msgs) / sizeof(msgs[0]), MSG_MAX);
				return 2;
			}
			msgs[nmsg++] = optarg;
			break;
		case 'n':
			if (parse_int64(optarg, 1, 1000000, &count) != 0) {
				fprintf(stderr, "devagent: --count is 1..1000000\n");
				return 2;
			}
			break;
		case 'i':
			if (parse_int64(optarg, 0, 60000, &interval_ms) != 0) {
				fprintf(stderr, "devagent: --interval-ms is 0..60000\n");
				return 2;
			}
			break;
		default:
			if ((r = peer_opt(c, optarg, &po)) != 0) {
				if (r == 1)
					usage(stderr);
				return 2;
			}
		}
	}
	if (rp.sim_dir == NULL || optind != argc - 1) {
		fprintf(stderr, "devagent: connect needs ADDR and --air DIR (or $PROVD_AIR)\n");
		return 2;
	}
	if (mac_parse(argv[optind], to) != 0) {
		fprintf(stderr, "devagent: not a unicast IEEE address: %s\n", argv[optind]);
		return 2;
	}
	po.lo.timeout_ms = (int)po.auth_timeout_s * 1000;
	mac_format(dp->addr, ms);
	mac_format(to, ts);
	if (peer_setup_open(a, state, &po, &ps, ms) != 0)
		return 1;
	/* the radio shows this device's address to the peer: it listens as
	 * itself while it connects, as a device that is switched on does */
	memcpy(self.addr, dp->addr, MAC_LEN);
	snprintf(self.name, sizeof(self.name), "%.*s", (int)sizeof(self.name) - 1, dp->name);
	if ((r = radio_open(&rp, &radio)) != 0 || (r = radio_listen(radio, &self)) != 0) {
		fprintf(stderr, "devagent %s: cannot use the radio: %s\n", ms, r == ERR_CONFLICT ?
		    "this device is on the air already (devagent serve?)" : provd_strerror(r));
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	if ((r = radio_connect(radio, to, (int)po.auth_timeout_s * 1000, &l)) != 0) {
		fprintf(stderr, "devagent %s: cannot reach %s: %s\n", ms, ts,
		    r == ERR_NOT_FOUND ? "not in range" : provd_strerror(r));
		goto out;
	}
	if ((r = peer_connect(ps.pc, l, &pi, key, why, sizeof(why))) != 0) {
		fprintf(stderr, "devagent %s: mutual authentication with %s failed: %s\n", ms, ts, why);
		goto out;
	}
	seclink_io_radio(l, &io);
	if ((r = seclink_new(&io, 1, key, &po.lo, &sl)) != 0) {
		fprintf(stderr, "devagent %s: cannot start the encrypted link: %s\n", ms,
		    provd_strerror(r));
		goto out;
	}
	time_format_rfc3339((time_t)pi.not_after, when, sizeof(when));
	printf("devagent %s: authenticated %s (certificate serial %s, valid until %s), "
	    "link encrypted\n", ms, ts, pi.serial, when);
	fflush(stdout);
	for (size_t i = 0; i < nmsg; i++) {
		if ((r = seclink_send(sl, msgs[i], strlen(msgs[i]))) != 0 ||
		    (r = seclink_recv(sl, buf, sizeof(buf), &len, (int)po.auth_timeout_s * 1000)) != 0)
			goto link_failed;
		print_text("reply: ", buf, len);
	}
	for (int64_t i = 0; i < count && !stop; i++) {
		int n = snprintf(text, sizeof(text), "message %lld", (long long)i);
		if ((r = seclink_send(sl, text, (size_t)n)) != 0 ||
		    (r = seclink_recv(sl, buf, sizeof(buf), &len, (int)po.auth_timeout_s * 1000)) != 0)
			goto link_failed;
		if (len != (size_t)n || memcmp(buf, text, len) != 0) {
			fprintf(stderr, "devagent %s: %s answered \"%s\" with other bytes\n", ms, ts, text);
			goto out;
		}
		if (interval_ms > 0)
			usleep((useconds_t)interval_ms * 1000);
	}
	seclink_stats(sl, &st);
	if (count > 0)
		printf("%lld messages echoed, %u key changes\n", (long long)count, st.epoch);
	rc = 0;
	goto out;
link_failed:
	fprintf(stderr, "devagent %s: link with %s ended: %s\n", ms, ts, r == ERR_TIMEOUT &&
	    seclink_error(sl)[0] == '\0' ? "no answer in time" : seclink_error(sl));
out:
	seclink_close(sl);
	peer_info_clear(&pi);
	radio_link_close(l);
	radio_close(radio);
	peer_setup_close(&ps);
	return rc;
}

/* renew and run share their options */
static int
renew_args(int argc, char **argv, struct renew_opts *o, int64_t *interval, int *once)
{
	static const struct option lopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "cacert", required_argument, NULL, 'c' },
		{ "interval", required_argument, NULL, 'i' },
		{ "once", no_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'u': o->url = optarg; break;
		case 'c': o->cacert = optarg; break;
		case 'i':
			if (interval == NULL || parse_int64(optarg, 1, 86400, interval) != 0) {
				fprintf(stderr, "devagent: --interval is 1..86400 seconds (run only)\n");
				return 2;
			}
			break;
		case 'o':
			if (once == NULL) {
				usage(stderr);
				return 2;
			}
			*once = 1;
			break;
		default: usage(stderr); return 2;
		}
	}
	if (o->url == NULL || optind != argc) {
		fprintf(stderr, "devagent: %s needs --url (provd's address)\n", argv[0]);
		return 2;
	}
	return 0;
}

static int
renew_now(struct agent *a, const struct renew_opts *o, const char *ms)
{
	char why[512] = "", serial[33];
	int r;

	r = device_renew(agent_keystore(a), agent_profile(a)->addr, o, serial, why, sizeof(why));
	if (r != 0) {
		fprintf(stderr, "devagent %s: renewal failed: %s\n", ms, why[0] ? why : provd_strerror(r));
		return r;
	}
	printf("devagent %s: renewed, new certificate %s\n", ms, serial);
	fflush(stdout);
	return 0;
}

static int
cmd_renew(struct agent *a, int argc, char **argv)
{
	struct renew_opts o = { 0 };
	char ms[MAC_STR_LEN];
	int r;

	if ((r = renew_args(argc, argv, &o, NULL, NULL)) != 0)
		return r;
	mac_format(agent_profile(a)->addr, ms);
	return renew_now(a, &o, ms) == 0 ? 0 : 1;
}

/* The daemon: asks whether to renew every interval (default an hour) and
 * renews when provd says so (an administrator asked, or two-thirds of the
 * lifetime passed) or, when provd cannot be asked, by its own clock. */
static int
cmd_run(struct agent *a, int argc, char **argv)
{
	struct renew_opts o = { 0 };
	int64_t interval = 3600;
	char ms[MAC_STR_LEN], reason[256];
	int once = 0, due, r, rc = 0;

	if ((r = renew_args(argc, argv, &o, &interval, &once)) != 0)
		return r;
	mac_format(agent_profile(a)->addr, ms);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	printf("devagent %s: checking renewal with %s every %lld s\n", ms, o.url,
	    (long long)interval);
	fflush(stdout);
	while (!stop) {
		r = device_renew_due(agent_keystore(a), &o, &due, reason, sizeof(reason));
		if (r == ERR_FORBIDDEN || r == ERR_NOT_FOUND) {
			fprintf(stderr, "devagent %s: %s\n", ms, reason);
			rc = 1;
			break;
		}
		if (r == 0 && due) {
			printf("devagent %s: renewing (%s)\n", ms, reason);
			fflush(stdout);
			rc = renew_now(a, &o, ms) == 0 ? 0 : 1;
		}
		if (once)
			break;
		for (int64_t t = 0; t < interval * 10 && !stop; t++)
			usleep(100000);
	}
	return rc;
}

static int
cmd_show(struct agent *a)
{
	const struct device_profile *dp = agent_profile(a);
	EVP_PKEY *key = NULL;
	uint8_t *cert = NULL;
	size_t len = 0;
	int provisioned;
	int64_t failures, locked_until;
	char ms[MAC_STR_LEN];

	mac_format(dp->addr, ms);
	agent_status(a, &provisioned, &failures, &locked_until);
	printf("address:     %s\nname:        %s\nmodel:       %s\nkeystore:    %s\n", ms,
	    dp->name, dp->model, keystore_kind(agent_keystore(a)));
	printf("intake:      %s", provisioned ? "closed (provisioned)" :
	    locked_until > (int64_t)time(NULL) ? "locked" : "open");
	if (failures > 0)
		printf(", %lld failed PIN exchange(s)", (long long)failures);
	putchar('\n');
	if (keystore_identity(agent_keystore(a), &key, &cert, &len) == 0) {
		const unsigned char *p = cert;
		X509 *x = d2i_X509(NULL, &p, (long)len);
		if (x != NULL) {
			char subj[256], issuer[256];
			const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
			BIGNUM *bn = ASN1_INTEGER_to_BN(sn, NULL);
			char *hex = bn ? BN_bn2hex(bn) : NULL;
			X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
			X509_NAME_oneline(X509_get_issuer_name(x), issuer, sizeof(issuer));
			printf("certificate: serial %s\n  subject:   %s\n  issuer:    %s\n",
			    hex ? hex : "?", subj, issuer);
			OPENSSL_free(hex);
			BN_free(bn);
			X509_free(x);
		}
		EVP_PKEY_free(key);
		free(cert);
	} else
		printf("certificate: none\n");
	return 0;
}

int
main(int argc, char **argv)
{
	const char *state = NULL;
	struct agent *a = NULL;
	int c, rc, r;

	static const struct option lopts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};

	while ((c = getopt_long(argc, argv, "+s:h", lopts, NULL)) != -1) {
		if (c == 's')
			state = optarg;
		else if (c == 'h') {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (state == NULL || argc < 1) {
		usage(stderr);
		return 2;
	}
	/* the process holds the PIN record and keys: no core dumps, no ptrace */
	prctl(PR_SET_DUMPABLE, 0);
	CRYPTO_secure_malloc_init(1 << 18, 32);
	log_init("devagent", LOG_LVL_WARN, 0, 0);
	if (strcmp(argv[0], "init") == 0)
		return cmd_init(state, argc, argv);
	if ((r = agent_open(state, &a)) != 0) {
		fprintf(stderr, "devagent: %s: %s (run devagent init first?)\n", state,
		    provd_strerror(r));
		return 1;
	}
	if (strcmp(argv[0], "serve") == 0)
		rc = cmd_serve(a, state, argc, argv);
	else if (strcmp(argv[0], "connect") == 0)
		rc = cmd_connect(a, state, argc, argv);
	else if (strcmp(argv[0], "renew") == 0)
		rc = cmd_renew(a, argc, argv);
	else if (strcmp(argv[0], "run") == 0)
		rc = cmd_run(a, argc, argv);
	else if (strcmp(argv[0], "show") == 0 && argc == 1)
		rc = cmd_show(a);
	else if (strcmp(argv[0], "reset") == 0 && argc == 1) {
		rc = agent_reset(a) == 0 ? 0 : 1;
		printf(rc == 0 ? "factory reset: keystore wiped, intake open\n" :
		    "factory reset failed\n");
	} else {
		usage(stderr);
		rc = 2;
	}
	agent_close(a);
	return rc;
}
