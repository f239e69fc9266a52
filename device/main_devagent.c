/*
 * main_devagent.c: devagent, the simulated device and reference program of
 * the device library — made at "manufacture" from an address and a setup
 * PIN, it answers inquiry and intake on a radio, keeps its key in a keystore
 * (tpm2 or file), and can show its identity or be factory reset.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "device/device.h"

#define INTAKE_STEP_MS 30000	/* per step of an intake: the CA and the database
				   may take their time */

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
	    "  serve [--air DIR] [--once] [--timeout SECONDS]  answer inquiry and intake\n"
	    "  renew --url URL [--cacert FILE]                renew the certificate now (new key)\n"
	    "  run --url URL [--cacert FILE] [--interval SECONDS] [--once]\n"
	    "                                                 renew when provd or the lifetime says so\n"
	    "  show                                           print the device's identity\n"
	    "  reset                                          factory reset\n"
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

static int
cmd_serve(struct agent *a, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "air", required_argument, NULL, 'A' },
		{ "once", no_argument, NULL, 'o' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const struct device_profile *dp = agent_profile(a);
	struct radio_params rp = { .backend = "sim", .sim_dir = getenv("PROVD_AIR") };
	struct radio_device self = { .cod = 0x240404, .rssi = -45 };
	struct radio *radio = NULL;
	int64_t secs = 0;
	int once = 0, c, r, rc = 1;
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
		default: usage(stderr); return 2;
		}
	}
	if (rp.sim_dir == NULL || optind != argc) {
		fprintf(stderr, "devagent: serve needs --air DIR (or $PROVD_AIR)\n");
		return 2;
	}
	memcpy(self.addr, dp->addr, MAC_LEN);
	snprintf(self.name, sizeof(self.name), "%.*s", (int)sizeof(self.name) - 1, dp->name);
	mac_format(dp->addr, ms);
	if ((r = radio_open(&rp, &radio)) != 0 || (r = radio_listen(radio, &self)) != 0) {
		fprintf(stderr, "devagent: cannot use the radio: %s\n", provd_strerror(r));
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
		fprintf(stderr, "devagent %s: no intake within %lld s\n", ms, (long long)secs);
	radio_close(radio);
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
		rc = cmd_serve(a, argc, argv);
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
