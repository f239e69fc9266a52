/*
 * main_devagent.c: devagent, the simulated device and reference program of
 * the device library — made at "manufacture" from an address and a setup
 * PIN, it answers inquiry and intake on a radio, keeps its key in a keystore
 * (tpm2 or file), authenticates to other devices with its certificate and
 * talks to them over the encrypted link (connect; serve once provisioned),
 * and can show its identity or be factory reset. Serving a resource, it
 * decides whether an authenticated peer may do what it asks: through provd
 * (central) or from its local policy file (disconnected).
 */
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

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
	    "       [--manufacturer-cert FILE --manufacturer-key FILE --chain FILE --crl FILE]\n"
	    "                                                 a consumer device with its\n"
	    "                                                 manufacturer's certificate (no PIN\n"
	    "                                                 needed: then intake is closed)\n"
	    "  serve [--air DIR] [--once] [--timeout SECONDS] [PEER OPTIONS] [--crl-refresh SECONDS]\n"
	    "        [--idle SECONDS]                         answer inquiry and intake; once\n"
	    "                                                 provisioned, mutual authentication\n"
	    "                                                 (echoes what the peer sends)\n"
	    "        [--resource R [--policy FILE] [--token-file FILE]]\n"
	    "                                                 serving R: each peer's request is\n"
	    "                                                 decided by provd (--provd, --token-file)\n"
	    "                                                 or, without provd, by the policy file\n"
	    "  connect ADDR [--air DIR] [PEER OPTIONS] [--message TEXT]... [--count N]\n"
	    "        [--interval-ms MS] [--resource R --action A]\n"
	    "                                                 authenticate to ADDR, ask for R/A,\n"
	    "                                                 send, print replies\n"
	    "  policy-check --policy FILE [--cert FILE --action A [--resource R]]\n"
	    "        [--crl-grace SECONDS|any]                check a policy file; decide locally\n"
	    "                                                 for a certificate (PEM or DER)\n"
	    "  renew --url URL [--cacert FILE]                renew the certificate now (new key)\n"
	    "  run --url URL [--cacert FILE] [--interval SECONDS] [--once]\n"
	    "                                                 renew when provd or the lifetime says so\n"
	    "  pair [--with ADDR] [--accept|--reject|--no-display] [--air DIR] [--timeout SECONDS]\n"
	    "                                                 consumer pairing: the button pressed\n"
	    "                                                 (listens, or pairs with ADDR)\n"
	    "  unpair ADDR                                    forget the paired device\n"
	    "  show                                           print the device's identity\n"
	    "  reset                                          factory reset\n"
	    "\n"
	    "PEER OPTIONS: [--provd URL] [--cacert FILE] [--crl-grace SECONDS|any]\n"
	    "        [--rekey-after-ms MS] [--rekey-frames N] [--auth-timeout SECONDS]\n"
	    "\n"
	    "The radio is the sim backend; --air (default $PROVD_AIR) is its directory.\n");
}

/* ---------------------------------------------------------------------
 * Manufacture of a consumer device: the manufacturer's certificate, its
 * key, the manufacturer's CA chain and CRL installed without intake.
 */
#define PEM_MAX (256 * 1024)	/* bytes of a certificate, key, chain or CRL file */

/* Every certificate of a PEM (or one DER) file, at most 16. */
static STACK_OF(X509) *
certs_read(const char *path)
{
	STACK_OF(X509) *sk = NULL;
	char *buf = NULL;
	size_t len = 0;
	BIO *b = NULL;
	X509 *x;

	if (file_read_all(path, PEM_MAX, &buf, &len) != 0 || (sk = sk_X509_new_null()) == NULL)
		goto fail;
	if ((b = BIO_new_mem_buf(buf, (int)len)) == NULL)
		goto fail;
	while (sk_X509_num(sk) < 16 && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			goto fail;
		}
	if (sk_X509_num(sk) == 0) {
		const unsigned char *q = (const unsigned char *)buf;
		if ((x = d2i_X509(NULL, &q, (long)len)) == NULL || !sk_X509_push(sk, x)) {
			X509_free(x);
			goto fail;
		}
	}
	ERR_clear_error();
	BIO_free(b);
	free(buf);
	return sk;
fail:
	ERR_clear_error();
	BIO_free(b);
	free(buf);
	sk_X509_pop_free(sk, X509_free);
	return NULL;
}

/* Installs the manufacturer's identity into the device made in state:
 * the key as the pending key, the certificate (which must name addr) and
 * the chain with it (atomic), the CRL as the cached CRL, then marks the
 * device a consumer device. */
static int
manufacture(const char *state, const char *certf, const char *keyf, const char *chainf,
    const char *crlf, char *why, size_t whylen)
{
	struct agent *a = NULL;
	STACK_OF(X509) *cert = NULL, *chain = NULL;
	EVP_PKEY *key = NULL;
	X509_CRL *crl = NULL;
	PKCS8_PRIV_KEY_INFO *p8i = NULL;
	uint8_t *der = NULL, *p8 = NULL, *cd[16], *crld = NULL, addr[MAC_LEN];
	const uint8_t *chd[16];
	size_t chl[16];
	char *buf = NULL, path[4096];
	size_t len = 0;
	int n, p8len = 0, crllen = 0, r = ERR_INVALID;
	BIO *b = NULL;

	memset(cd, 0, sizeof(cd));
	if ((cert = certs_read(certf)) == NULL || sk_X509_num(cert) != 1) {
		msg_set(why, whylen, "%s: not one certificate (PEM or DER)", certf);
		goto out;
	}
	if ((chain = certs_read(chainf)) == NULL) {
		msg_set(why, whylen, "%s: no CA certificate (PEM, issuing CA first)", chainf);
		goto out;
	}
	if (file_read_all(keyf, PEM_MAX, &buf, &len) != 0 ||
	    (b = BIO_new_mem_buf(buf, (int)len)) == NULL ||
	    (key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) == NULL ||
	    (p8i = EVP_PKEY2PKCS8(key)) == NULL ||
	    (p8len = i2d_PKCS8_PRIV_KEY_INFO(p8i, &p8)) <= 0) {
		msg_set(why, whylen, "%s: not an unencrypted PEM private key", keyf);
		goto out;
	}
	BIO_free(b);
	b = NULL;
	if (buf != NULL)
		OPENSSL_cleanse(buf, len);
	free(buf);
	buf = NULL;
	if (file_read_all(crlf, PEM_MAX, &buf, &len) == 0 &&
	    (b = BIO_new_mem_buf(buf, (int)len)) != NULL &&
	    (crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) == NULL) {
		const unsigned char *q = (const unsigned char *)buf;
		crl = d2i_X509_CRL(NULL, &q, (long)len);
	}
	if (crl == NULL || (crllen = i2d_X509_CRL(crl, &crld)) <= 0) {
		msg_set(why, whylen, "%s: not a CRL (PEM or DER)", crlf);
		goto out;
	}
	if ((r = agent_open(state, &a)) != 0) {
		msg_set(why, whylen, "cannot open the device just made");
		goto out;
	}
	if (peer_cert_addr(sk_X509_value(cert, 0), addr) != 0 ||
	    memcmp(addr, agent_profile(a)->addr, MAC_LEN) != 0) {
		msg_set(why, whylen, "%s does not name this device's address", certf);
		r = ERR_INVALID;
		goto out;
	}
	if (!keystore_can_import(agent_keystore(a))) {
		msg_set(why, whylen, "a manufacturer's key can go into the file keystore only");
		r = ERR_UNSUPPORTED;
		goto out;
	}
	if ((n = i2d_X509(sk_X509_value(cert, 0), &der)) <= 0)
		goto crypto;
	for (int i = 0; i < sk_X509_num(chain); i++) {
		int m = i2d_X509(sk_X509_value(chain, i), &cd[i]);
		if (m <= 0)
			goto crypto;
		chd[i] = cd[i];
		chl[i] = (size_t)m;
	}
	if ((r = keystore_import(agent_keystore(a), p8, (size_t)p8len)) != 0 ||
	    (r = keystore_install(agent_keystore(a), der, (size_t)n, chd, chl,
	    (size_t)sk_X509_num(chain))) != 0) {
		msg_set(why, whylen, "cannot install the identity: %s (is the key the "
		    "certificate's?)", provd_strerror(r));
		goto out;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", state, CRL_FILE) >= sizeof(path) ||
	    (r = file_write_atomic(path, crld, (size_t)crllen, 0600)) != 0 ||
	    (r = pairing_set_consumer(state, 1)) != 0) {
		msg_set(why, whylen, "cannot write the CRL or the consumer mark in %s", state);
		goto out;
	}
	r = 0;
	goto out;
crypto:
	msg_set(why, whylen, "cannot encode the certificates");
	r = ERR_CRYPTO;
out:
	ERR_clear_error();
	if (buf != NULL)
		OPENSSL_cleanse(buf, len);
	free(buf);
	BIO_free(b);
	if (p8 != NULL)
		OPENSSL_clear_free(p8, (size_t)p8len);
	PKCS8_PRIV_KEY_INFO_free(p8i);
	EVP_PKEY_free(key);
	OPENSSL_free(der);
	OPENSSL_free(crld);
	for (size_t i = 0; i < 16; i++)
		OPENSSL_free(cd[i]);
	X509_CRL_free(crl);
	sk_X509_pop_free(cert, X509_free);
	sk_X509_pop_free(chain, X509_free);
	agent_close(a);
	return r;
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
		{ "manufacturer-cert", required_argument, NULL, 'C' },
		{ "manufacturer-key", required_argument, NULL, 'K' },
		{ "chain", required_argument, NULL, 'H' },
		{ "crl", required_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	const char *mcert = NULL, *mkey = NULL, *mchain = NULL, *mcrl = NULL;
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
		case 'C': mcert = optarg; break;
		case 'K': mkey = optarg; break;
		case 'H': mchain = optarg; break;
		case 'R': mcrl = optarg; break;
		default: secret_free(pin); usage(stderr); return 2;
		}
	}
	if ((mcert || mkey || mchain || mcrl) && !(mcert && mkey && mchain && mcrl)) {
		fprintf(stderr, "devagent: --manufacturer-cert, --manufacturer-key, --chain and "
		    "--crl go together\n");
		secret_free(pin);
		return 2;
	}
	if (mcert != NULL && pin == NULL) {
		/* a consumer device without a label PIN: a random one, never
		 * shown or kept, closes intake for good */
		uint8_t rnd[12];
		if ((pin = OPENSSL_secure_malloc(sizeof(rnd) + 1)) == NULL)
			return 1;
		pin[0] = '\0';
		if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
			secret_free(pin);
			return 1;
		}
		for (size_t i = 0; i < sizeof(rnd); i++)
			pin[i] = (char)('0' + rnd[i] % 10);
		pin[sizeof(rnd)] = '\0';
		OPENSSL_cleanse(rnd, sizeof(rnd));
	}
	if (o.addr == NULL || pin == NULL || optind != argc) {
		fprintf(stderr, "devagent: init needs --addr and --pin or --pin-file\n");
		secret_free(pin);
		return 2;
	}
	o.pin = pin;
	r = agent_init(&o, why, sizeof(why));
	secret_free(pin);
	if (r == 0) {
		/* a device made again (--force) starts unpaired, and is a
		 * consumer device only when made with a manufacturer's
		 * certificate */
		(void)pairing_remove(state, NULL);
		if ((r = pairing_set_consumer(state, 0)) != 0)
			msg_set(why, sizeof(why), "cannot clear the consumer mark in %s", state);
	}
	if (r == 0 && mcert != NULL)
		r = manufacture(state, mcert, mkey, mchain, mcrl, why, sizeof(why));
	if (r != 0) {
		fprintf(stderr, "devagent: %s\n", why[0] ? why : provd_strerror(r));
		return 1;
	}
	if (mcert != NULL)
		printf("consumer device %s: manufacturer's certificate installed, unpaired\n",
		    o.addr);
	printf("device %s made in %s (keystore %s)\n", o.addr, state, o.keystore);
	return 0;
}

/* ---------------------------------------------------------------------
 * Mutual authentication: options shared by serve and connect, the
 * device's identity and cached CRL, the echo on the serving side.
 */
enum {
	OPT_PROVD = 0x100, OPT_CACERT, OPT_CRL_GRACE, OPT_CRL_REFRESH, OPT_REKEY_MS,
	OPT_REKEY_FRAMES, OPT_AUTH_TIMEOUT, OPT_IDLE, OPT_RESOURCE, OPT_ACTION, OPT_POLICY,
	OPT_TOKEN_FILE, OPT_CERT,
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
	/* serving a resource */
	const char *resource;		/* NULL: echo only */
	struct policy *policy;		/* local policy, or NULL */
	char *token;			/* authorizer token (secure heap), or NULL */
	/* consumer mode (docs/protocol.md "Consumer pairing") */
	int crl_grace_set;		/* --crl-grace given */
	const char *consumer;		/* the state directory of a consumer
					   device: only its paired peer talks */
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
		po->crl_grace_set = 1;
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
	/* serving a resource, a stale CRL does not end the handshake: the
	 * access decision deals with it (provd, or the policy's stale_crl); a
	 * certificate the cached CRL lists is still refused */
	pp.crl_grace_s = po->resource != NULL ? CRL_GRACE_ANY : po->crl_grace_s;
	/* a consumer device keeps the CRL it was made with (nobody refreshes
	 * it): a certificate it lists is refused, it never goes stale */
	if (pairing_is_consumer(state) && !po->crl_grace_set)
		pp.crl_grace_s = CRL_GRACE_ANY;
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

/* The serving side's decision on one request of the authenticated peer
 * pi: provd's when it is named with a token; the local policy's when provd
 * cannot be reached or is not named; otherwise denied (fail closed).
 * 0 granted, ERR_FORBIDDEN denied; reason gets a sentence either way. */
static int
access_decide(const struct peer_setup *ps, const struct peer_opts *po,
    const struct peer_info *pi, const char *resource, const char *action, char *reason,
    size_t reasonlen)
{
	char why[POLICY_REASON_MAX];
	const char *via = "local policy";
	time_t now;
	int r;

	if (po->url != NULL && po->token != NULL) {
		struct policy_provd pv = { .url = po->url, .cacert = po->cacert,
			.token = po->token, .timeout_s = (int)po->auth_timeout_s };

		r = policy_ask_provd(&pv, pi->cert, resource, action, why, sizeof(why));
		if (r == 0 || r == ERR_FORBIDDEN) {
			msg_set(reason, reasonlen, "provd: %s", why);
			return r;
		}
		if (r != ERR_UNAVAILABLE || po->policy == NULL) {
			msg_set(reason, reasonlen, "%s%s", why, r == ERR_UNAVAILABLE ?
			    " (no local policy: fail closed)" : "");
			return ERR_FORBIDDEN;
		}
		via = "local policy (provd cannot be reached)";
	}
	if (po->policy == NULL) {
		msg_set(reason, reasonlen, "no policy to decide by");
		return ERR_FORBIDDEN;
	}
	now = time(NULL);
	r = policy_decide(po->policy, pi, resource, action, now,
	    policy_crl_state(ps->crl, pi->cert, po->crl_grace_s, now), why, sizeof(why));
	msg_set(reason, reasonlen, "%s: %s", via, why);
	return r;
}

/* Serving a resource: the peer's first frame is its request, answered
 * GRANTED or DENIED. 0 granted (the link goes on), else the link ends. */
static int
serve_request(struct peer_setup *ps, const struct peer_opts *po, struct seclink *sl,
    const struct peer_info *pi, const char *peer, const char *ms)
{
	uint8_t *buf = NULL;
	char resource[POLICY_MAX_NAME + 1], action[POLICY_MAX_ACTION + 1];
	char reason[POLICY_REASON_MAX], answer[POLICY_REASON_MAX + 16];
	size_t len = 0;
	int r, n;

	if ((buf = malloc(SECLINK_MAX_DATA)) == NULL)
		return ERR_NOMEM;
	r = seclink_recv(sl, buf, SECLINK_MAX_DATA, &len, (int)po->auth_timeout_s * 1000);
	if (r != 0) {
		fprintf(stderr, "devagent %s: %s sent no request: %s\n", ms, peer,
		    r == ERR_TIMEOUT ? "none in time" : seclink_error(sl));
		free(buf);
		return r;
	}
	if (policy_request_parse(buf, len, resource, action) != 0) {
		str_copy(resource, sizeof(resource), "?");
		str_copy(action, sizeof(action), "?");
		msg_set(reason, sizeof(reason), "malformed request");
		r = ERR_INVALID;
	} else
		r = access_decide(ps, po, pi, resource, action, reason, sizeof(reason));
	free(buf);
	n = snprintf(answer, sizeof(answer), "%s%s", r == 0 ? POLICY_ANSWER_GRANTED :
	    POLICY_ANSWER_DENIED, reason);
	printf("devagent %s: %s asks %s/%s: %s (%s)\n", ms, peer, resource, action,
	    r == 0 ? "granted" : "denied", reason);
	fflush(stdout);
	if (seclink_send(sl, answer, (size_t)n) != 0 && r == 0)
		r = ERR_IO;
	return r;
}

/* One mutual-authentication link accepted on the serving side: the
 * handshake, the peer's request when serving a resource, then whatever
 * the peer sends is sent back, until it closes, goes quiet for idle_s, or
 * the link breaks. 0 when the peer was authenticated and the link ended
 * in order. */
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
	if (po->consumer != NULL) {
		r = pairing_meet(sl, &pi, po->consumer, PAIRING_RESPONDER, (int)po->auth_timeout_s *
		    1000, why, sizeof(why));
		if (r != 0) {
			fprintf(stderr, "devagent %s: %s refused: %s\n", ms, peer, why);
			seclink_close(sl);
			peer_info_clear(&pi);
			return r;
		}
		printf("devagent %s: %s is the paired device%s%s\n", ms, peer, why[0] ? ": " : "",
		    why);
		fflush(stdout);
	}
	if (po->resource != NULL && serve_request(ps, po, sl, &pi, peer, ms) != 0) {
		seclink_close(sl);
		peer_info_clear(&pi);
		return 0;
	}
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
		{ "resource", required_argument, NULL, OPT_RESOURCE },
		{ "policy", required_argument, NULL, OPT_POLICY },
		{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
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
	char why[256], ms[MAC_STR_LEN], perr[512];
	const char *policy_file = NULL, *token_file = NULL;
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
		case OPT_RESOURCE:
			if (policy_check_resource(optarg) != 0) {
				fprintf(stderr, "devagent: --resource is 1..%d of A-Z a-z 0-9 . _ -\n",
				    POLICY_MAX_NAME);
				return 2;
			}
			po.resource = optarg;
			break;
		case OPT_POLICY: policy_file = optarg; break;
		case OPT_TOKEN_FILE: token_file = optarg; break;
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
	if ((policy_file != NULL || token_file != NULL) && po.resource == NULL) {
		fprintf(stderr, "devagent: --policy and --token-file need --resource\n");
		return 2;
	}
	if (po.resource != NULL && policy_file == NULL && (po.url == NULL || token_file == NULL)) {
		fprintf(stderr, "devagent: --resource needs --policy FILE, or --provd URL and "
		    "--token-file FILE, or both\n");
		return 2;
	}
	if (policy_file != NULL) {
		if (policy_load(policy_file, &po.policy, perr, sizeof(perr)) != 0) {
			fprintf(stderr, "devagent: the policy is refused: %s\n", perr);
			return 1;
		}
		if (strcmp(policy_resource(po.policy), po.resource) != 0) {
			fprintf(stderr, "devagent: %s is the policy of %s, not of %s\n", policy_file,
			    policy_resource(po.policy), po.resource);
			policy_free(po.policy);
			return 1;
		}
	}
	if (token_file != NULL && secret_read_file(token_file, &po.token) != 0) {
		fprintf(stderr, "devagent: cannot read the token file %s\n", token_file);
		policy_free(po.policy);
		return 1;
	}
	po.lo.timeout_ms = (int)po.auth_timeout_s * 1000;
	if (pairing_is_consumer(state))
		po.consumer = state;
	memcpy(self.addr, dp->addr, MAC_LEN);
	snprintf(self.name, sizeof(self.name), "%.*s", (int)sizeof(self.name) - 1, dp->name);
	mac_format(dp->addr, ms);
	if ((r = radio_open(&rp, &radio)) != 0 || (r = radio_listen(radio, &self)) != 0) {
		fprintf(stderr, "devagent: cannot use the radio: %s\n", r == ERR_CONFLICT ?
		    "another device listens at this address" : provd_strerror(r));
		radio_close(radio);
		policy_free(po.policy);
		secret_free(po.token);
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
		if (provisioned || po.consumer != NULL) {
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
	policy_free(po.policy);
	secret_free(po.token);
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
		{ "resource", required_argument, NULL, OPT_RESOURCE },
		{ "action", required_argument, NULL, OPT_ACTION },
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
	char req[POLICY_REQ_MAX + 1];
	const char *action = NULL;
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
		case OPT_RESOURCE: po.resource = optarg; break;
		case OPT_ACTION: action = optarg; break;
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
	if ((po.resource != NULL) != (action != NULL) || (action != NULL &&
	    policy_request_format(po.resource, action, req, sizeof(req)) != 0)) {
		fprintf(stderr, "devagent: --resource and --action go together, each 1..64 of "
		    "A-Z a-z 0-9 . _ - (a resource up to 128)\n");
		return 2;
	}
	/* the handshake of the connecting side is as without a resource */
	const char *resource = po.resource;
	po.resource = NULL;
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
	if (pairing_is_consumer(state)) {
		if ((r = pairing_meet(sl, &pi, state, PAIRING_INITIATOR, (int)po.auth_timeout_s *
		    1000, why, sizeof(why))) != 0) {
			fprintf(stderr, "devagent %s: %s refused: %s\n", ms, ts, why);
			goto out;
		}
		printf("devagent %s: %s is the paired device%s%s\n", ms, ts, why[0] ? ": " : "",
		    why);
		fflush(stdout);
	}
	if (resource != NULL) {
		size_t gl = strlen(POLICY_ANSWER_GRANTED), dl = strlen(POLICY_ANSWER_DENIED);

		if ((r = seclink_send(sl, req, strlen(req))) != 0 ||
		    (r = seclink_recv(sl, buf, sizeof(buf), &len, (int)po.auth_timeout_s * 1000)) != 0)
			goto link_failed;
		if (len >= gl && memcmp(buf, POLICY_ANSWER_GRANTED, gl) == 0)
			print_text("granted: ", buf + gl, len - gl);
		else if (len >= dl && memcmp(buf, POLICY_ANSWER_DENIED, dl) == 0) {
			print_text("denied: ", buf + dl, len - dl);
			goto out;
		} else {
			print_text("unexpected answer: ", buf, len);
			goto out;
		}
	}
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

/* ---------------------------------------------------------------------
 * Consumer pairing (docs/protocol.md "Consumer pairing"): pair, unpair.
 */

/* The test hook: PROVD_DEVAGENT_CRASH_AT=STEP ends the process at once
 * (no cleanup, no buffers flushed: as a power cut would) when the pairing
 * reaches STEP (decided, pending, prepared, committed, sent). */
static void
crash_at(const char *step)
{
	const char *want = getenv("PROVD_DEVAGENT_CRASH_AT");

	if (want != NULL && strcmp(want, step) == 0)
		_exit(86);
}

enum pair_decision { PAIR_ASK = 0, PAIR_ACCEPT, PAIR_REJECT, PAIR_NO_DISPLAY };

struct pair_ask {
	enum pair_decision how;
	int tty;			/* the terminal to ask on, or -1 */
	int timeout_ms;
};

/* The display: the peer's device identifier and model, and the user's
 * answer (1 accept) on the terminal, within the time limit; --accept,
 * --reject, or a device without a display (it accepts: its button was
 * pressed). */
static int
pair_decide(void *arg, const struct pairing *p)
{
	struct pair_ask *pa = arg;
	char ms[MAC_STR_LEN], line[16];
	struct pollfd pfd;
	size_t n = 0;
	int r;

	mac_format(p->peer, ms);
	if (pa->how == PAIR_NO_DISPLAY) {
		printf("no display: pairing with %s (%s)\n", ms, p->model);
		fflush(stdout);
		return 1;
	}
	if (pa->how != PAIR_ASK) {
		printf("Pair with %s: %s? %s\n", ms, p->model, pa->how == PAIR_ACCEPT ?
		    "accepted (--accept)" : "rejected (--reject)");
		fflush(stdout);
		return pa->how == PAIR_ACCEPT;
	}
	dprintf(pa->tty, "Pair with %s: %s? [y/N] ", ms, p->model);
	pfd.fd = pa->tty;
	pfd.events = POLLIN;
	/* one line, at most sizeof(line) - 1 bytes of it looked at */
	for (;;) {
		char c;
		if ((r = poll(&pfd, 1, pa->timeout_ms)) <= 0) {
			dprintf(pa->tty, "\nno answer: rejected\n");
			return 0;
		}
		if (read(pa->tty, &c, 1) != 1 || c == '\n')
			break;
		if (n + 1 < sizeof(line))
			line[n++] = c;
	}
	line[n] = '\0';
	return strcmp(line, "y") == 0 || strcmp(line, "Y") == 0 || strcmp(line, "yes") == 0;
}

static int
cmd_pair(struct agent *a, const char *state, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "with", required_argument, NULL, 'w' },
		{ "accept", no_argument, NULL, 'y' },
		{ "reject", no_argument, NULL, 'n' },
		{ "no-display", no_argument, NULL, 'd' },
		{ "air", required_argument, NULL, 'A' },
		{ "timeout", required_argument, NULL, 't' },
		{ "auth-timeout", required_argument, NULL, OPT_AUTH_TIMEOUT },
		{ NULL, 0, NULL, 0 },
	};
	const struct device_profile *dp = agent_profile(a);
	struct radio_params rp = { .backend = "sim", .sim_dir = getenv("PROVD_AIR") };
	struct radio_device self = { .cod = 0x240404, .rssi = -45 };
	struct peer_opts po = { .auth_timeout_s = PEER_TIMEOUT_MS_DEFAULT / 1000,
		.crl_grace_s = CRL_GRACE_ANY, .crl_grace_set = 1 };
	struct pair_ask pa = { .tty = -1 };
	struct pairing_run_opts ro = { .dir = state, .decide = pair_decide, .arg = &pa,
		.crash = crash_at };
	struct peer_setup ps = { 0 };
	struct peer_info pi = { 0 };
	struct radio *radio = NULL;
	struct radio_link *l = NULL;
	struct seclink *sl = NULL;
	struct seclink_io io;
	struct pairing cur, done;
	enum pairing_state st;
	int64_t secs = 60;
	uint8_t with[MAC_LEN], key[PEER_LINK_KEY_LEN];
	char ms[MAC_STR_LEN], ts[MAC_STR_LEN], why[512];
	int c, r, rc = 1, have_with = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			if (mac_parse(optarg, with) != 0) {
				fprintf(stderr, "devagent: not a unicast IEEE address: %s\n", optarg);
				return 2;
			}
			have_with = 1;
			break;
		case 'y': case 'n': case 'd':
			if (pa.how != PAIR_ASK) {
				fprintf(stderr, "devagent: one of --accept, --reject, --no-display\n");
				return 2;
			}
			pa.how = c == 'y' ? PAIR_ACCEPT : c == 'n' ? PAIR_REJECT : PAIR_NO_DISPLAY;
			break;
		case 'A': rp.sim_dir = optarg; break;
		case 't':
			if (parse_int64(optarg, 1, 3600, &secs) != 0) {
				fprintf(stderr, "devagent: --timeout is 1..3600 seconds\n");
				return 2;
			}
			break;
		default:
			if (c == '?' || peer_opt(c, optarg, &po) != 0) {
				usage(stderr);
				return 2;
			}
		}
	}
	if (rp.sim_dir == NULL || optind != argc) {
		fprintf(stderr, "devagent: pair needs --air DIR (or $PROVD_AIR)\n");
		return 2;
	}
	mac_format(dp->addr, ms);
	if (!pairing_is_consumer(state)) {
		fprintf(stderr, "devagent %s: not a consumer device (made without a manufacturer's "
		    "certificate): pairing is for consumer devices\n", ms);
		return 1;
	}
	if ((r = pairing_load(state, &st, &cur)) != 0) {
		fprintf(stderr, "devagent %s: the pairing file does not parse: devagent unpair\n", ms);
		return 1;
	}
	if (st != PAIRING_NONE) {
		mac_format(cur.peer, ts);
		fprintf(stderr, "devagent %s: %s with %s; unpair first\n", ms, st == PAIRING_PAIRED ?
		    "already paired" : "a pairing not yet settled", ts);
		return 1;
	}
	pa.timeout_ms = (int)secs * 1000;
	if (pa.how == PAIR_ASK) {
		if (isatty(STDIN_FILENO))
			pa.tty = STDIN_FILENO;
		else if ((pa.tty = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)) < 0) {
			fprintf(stderr, "devagent %s: no terminal to ask on: give --accept, --reject "
			    "or --no-display\n", ms);
			return 2;
		}
	}
	ro.role = have_with ? PAIRING_INITIATOR : PAIRING_RESPONDER;
	ro.timeout_ms = (int)po.auth_timeout_s * 1000;
	ro.decide_ms = pa.timeout_ms + ro.timeout_ms;
	po.lo.timeout_ms = ro.timeout_ms;
	if (peer_setup_open(a, state, &po, &ps, ms) != 0)
		goto out;
	memcpy(self.addr, dp->addr, MAC_LEN);
	snprintf(self.name, sizeof(self.name), "%.*s", (int)sizeof(self.name) - 1, dp->name);
	if ((r = radio_open(&rp, &radio)) != 0 || (r = radio_listen(radio, &self)) != 0) {
		fprintf(stderr, "devagent %s: cannot use the radio: %s\n", ms, r == ERR_CONFLICT ?
		    "this device is on the air already (devagent serve?)" : provd_strerror(r));
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	if (have_with) {
		mac_format(with, ts);
		if ((r = radio_connect(radio, with, ro.timeout_ms, &l)) != 0) {
			fprintf(stderr, "devagent %s: cannot reach %s: %s\n", ms, ts,
			    r == ERR_NOT_FOUND ? "not in range" : provd_strerror(r));
			goto out;
		}
		r = peer_connect(ps.pc, l, &pi, key, why, sizeof(why));
	} else {
		printf("devagent %s: pairing button pressed, discoverable for %lld s\n", ms,
		    (long long)secs);
		fflush(stdout);
		if ((r = radio_accept(radio, pa.timeout_ms, &l)) != 0) {
			fprintf(stderr, "devagent %s: %s\n", ms, r == ERR_TIMEOUT ?
			    "no device asked to pair in time" : provd_strerror(r));
			goto out;
		}
		radio_link_peer(l, with);
		mac_format(with, ts);
		r = peer_accept(ps.pc, l, &pi, key, why, sizeof(why));
	}
	if (r != 0) {
		fprintf(stderr, "devagent %s: mutual authentication with %s failed: %s\n", ms, ts,
		    why);
		goto out;
	}
	seclink_io_radio(l, &io);
	if ((r = seclink_new(&io, have_with, key, &po.lo, &sl)) != 0) {
		fprintf(stderr, "devagent %s: cannot start the encrypted link: %s\n", ms,
		    provd_strerror(r));
		goto out;
	}
	printf("devagent %s: authenticated %s (manufacturer's certificate serial %s)\n", ms, ts,
	    pi.serial);
	fflush(stdout);
	r = pairing_run(sl, &pi, &ro, &done, why, sizeof(why));
	if (r == 0) {
		printf("devagent %s: paired with %s (%s)%s%s\n", ms, ts, done.model,
		    why[0] ? "; " : "", why);
		rc = 0;
	} else
		fprintf(stderr, "devagent %s: %s%s\n", ms, r == ERR_CONFLICT ? "refused: " : "", why);
out:
	fflush(stdout);
	if (pa.tty > STDIN_FILENO)
		close(pa.tty);
	seclink_close(sl);
	peer_info_clear(&pi);
	radio_link_close(l);
	radio_close(radio);
	peer_setup_close(&ps);
	return rc;
}

static int
cmd_unpair(const char *state, int argc, char **argv)
{
	uint8_t peer[MAC_LEN];
	int r;

	if (argc != 2 || mac_parse(argv[1], peer) != 0) {
		fprintf(stderr, "devagent: unpair needs the paired device's address\n");
		return 2;
	}
	if ((r = pairing_remove(state, peer)) == ERR_NOT_FOUND) {
		fprintf(stderr, "devagent: not paired with %s\n", argv[1]);
		return 1;
	}
	if (r != 0) {
		fprintf(stderr, "devagent: cannot remove the pairing: %s\n", provd_strerror(r));
		return 1;
	}
	printf("unpaired from %s: the device can pair anew\n", argv[1]);
	return 0;
}

/* A certificate file, PEM or DER, of at most 64 KiB. NULL when it cannot
 * be read. */
static X509 *
cert_read(const char *path)
{
	uint8_t *buf = NULL;
	const uint8_t *q;
	X509 *x = NULL;
	BIO *b = NULL;
	size_t len;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL)
		return NULL;
	if ((buf = malloc(65537)) != NULL) {
		len = fread(buf, 1, 65537, f);
		if (len > 0 && len <= 65536) {
			if ((b = BIO_new_mem_buf(buf, (int)len)) != NULL)
				x = PEM_read_bio_X509(b, NULL, NULL, NULL);
			if (x == NULL) {
				q = buf;
				x = d2i_X509(NULL, &q, (long)len);
			}
		}
	}
	ERR_clear_error();
	BIO_free(b);
	free(buf);
	fclose(f);
	return x;
}

/* policy-check: checks a policy file ("policy OK"), or decides for a
 * certificate as the serving device would without provd: the certificate
 * verified to this device's intake chain (dates left to the decision),
 * its address, this device's cached CRL. Exit 0 allow, 1 deny, 2 error. */
static int
cmd_policy_check(struct agent *a, const char *state, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "policy", required_argument, NULL, OPT_POLICY },
		{ "cert", required_argument, NULL, OPT_CERT },
		{ "action", required_argument, NULL, OPT_ACTION },
		{ "resource", required_argument, NULL, OPT_RESOURCE },
		{ "crl-grace", required_argument, NULL, OPT_CRL_GRACE },
		{ NULL, 0, NULL, 0 },
	};
	struct peer_opts po = { 0 };
	const char *policy_file = NULL, *cert_file = NULL, *action = NULL, *resource = NULL;
	struct policy *pol = NULL;
	struct peer_info pi = { 0 };
	struct crl_cache *crl = NULL;
	EVP_PKEY *key = NULL;
	X509 *self = NULL;
	STACK_OF(X509) *ca = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *vctx = NULL;
	OSSL_LIB_CTX *libctx = NULL;
	const char *propq = NULL;
	char err[512], reason[POLICY_REASON_MAX], path[4096];
	time_t now;
	int c, r, rc = 2;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case OPT_POLICY: policy_file = optarg; break;
		case OPT_CERT: cert_file = optarg; break;
		case OPT_ACTION: action = optarg; break;
		case OPT_RESOURCE: resource = optarg; break;
		default:
			if (c == '?' || peer_opt(c, optarg, &po) != 0) {
				usage(stderr);
				return 2;
			}
		}
	}
	if (policy_file == NULL || optind != argc || (cert_file != NULL) != (action != NULL)) {
		fprintf(stderr, "devagent: policy-check needs --policy FILE, and --cert FILE with "
		    "--action A to decide\n");
		return 2;
	}
	if (policy_load(policy_file, &pol, err, sizeof(err)) != 0) {
		fprintf(stderr, "devagent: the policy is refused: %s\n", err);
		return 2;
	}
	if (cert_file == NULL) {
		printf("policy OK: resource %s, stale_crl = %s\n", policy_resource(pol),
		    policy_stale_open(pol) ? "open" : "closed");
		policy_free(pol);
		return 0;
	}
	if (resource == NULL)
		resource = policy_resource(pol);
	if (policy_check_action(action) != 0 || policy_check_resource(resource) != 0) {
		fprintf(stderr, "devagent: --action and --resource are names of A-Z a-z 0-9 . _ -\n");
		goto out;
	}
	if ((pi.cert = cert_read(cert_file)) == NULL) {
		fprintf(stderr, "devagent: %s is not a certificate (PEM or DER, at most 64 KiB)\n",
		    cert_file);
		goto out;
	}
	if ((r = keystore_tls_identity(agent_keystore(a), &key, &self, &ca, &libctx,
	    &propq)) != 0) {
		fprintf(stderr, "devagent: no certificate installed: the device needs intake first\n");
		goto out;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", state, CRL_FILE) >= sizeof(path) ||
	    crl_cache_open(path, ca, &crl) != 0) {
		fprintf(stderr, "devagent: cannot open the CRL cache\n");
		goto out;
	}
	if ((store = X509_STORE_new()) == NULL || (vctx = X509_STORE_CTX_new()) == NULL)
		goto out;
	for (int i = 0; i < sk_X509_num(ca); i++)
		if (!X509_STORE_add_cert(store, sk_X509_value(ca, i)))
			goto out;
	X509_STORE_set_flags(store, X509_V_FLAG_NO_CHECK_TIME | X509_V_FLAG_PARTIAL_CHAIN);
	if (!X509_STORE_CTX_init(vctx, store, pi.cert, NULL))
		goto out;
	rc = 1;
	if (X509_verify_cert(vctx) != 1) {
		printf("deny: the certificate is not of this CA (%s)\n",
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
		goto out;
	}
	if (peer_cert_addr(pi.cert, pi.addr) != 0) {
		printf("deny: the certificate names no device\n");
		goto out;
	}
	now = time(NULL);
	r = policy_decide(pol, &pi, resource, action, now,
	    policy_crl_state(crl, pi.cert, po.crl_grace_s, now), reason, sizeof(reason));
	printf("%s: %s\n", r == 0 ? "allow" : "deny", reason);
	rc = r == 0 ? 0 : 1;
out:
	ERR_clear_error();
	X509_STORE_CTX_free(vctx);
	X509_STORE_free(store);
	crl_cache_free(crl);
	EVP_PKEY_free(key);
	X509_free(self);
	sk_X509_pop_free(ca, X509_free);
	peer_info_clear(&pi);
	policy_free(pol);
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
cmd_show(struct agent *a, const char *state)
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
	    pairing_is_consumer(state) ? "none (consumer device)" :
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
	if (pairing_is_consumer(state)) {
		struct pairing p;
		enum pairing_state st;
		char ps[MAC_STR_LEN];

		if (pairing_load(state, &st, &p) != 0)
			printf("pairing:     unreadable (devagent unpair)\n");
		else if (st == PAIRING_NONE)
			printf("pairing:     none (consumer device)\n");
		else {
			mac_format(p.peer, ps);
			printf("pairing:     %s %s (%s)\n", st == PAIRING_PAIRED ? "paired with" :
			    "pending with", ps, p.model);
		}
	}
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
	/* a pairing a crash left unfinished (docs/protocol.md "Consumer
	 * pairing") */
	{
		char why[256];
		if ((r = pairing_recover(state, why, sizeof(why))) != 0) {
			fprintf(stderr, "devagent: %s: cannot recover the pairing state: %s\n", state,
			    provd_strerror(r));
			agent_close(a);
			return 1;
		}
		if (why[0] != '\0')
			fprintf(stderr, "devagent: %s\n", why);
	}
	if (strcmp(argv[0], "serve") == 0)
		rc = cmd_serve(a, state, argc, argv);
	else if (strcmp(argv[0], "connect") == 0)
		rc = cmd_connect(a, state, argc, argv);
	else if (strcmp(argv[0], "renew") == 0)
		rc = cmd_renew(a, argc, argv);
	else if (strcmp(argv[0], "policy-check") == 0)
		rc = cmd_policy_check(a, state, argc, argv);
	else if (strcmp(argv[0], "run") == 0)
		rc = cmd_run(a, argc, argv);
	else if (strcmp(argv[0], "pair") == 0)
		rc = cmd_pair(a, state, argc, argv);
	else if (strcmp(argv[0], "unpair") == 0)
		rc = cmd_unpair(state, argc, argv);
	else if (strcmp(argv[0], "show") == 0 && argc == 1)
		rc = cmd_show(a, state);
	else if (strcmp(argv[0], "reset") == 0 && argc == 1) {
		/* pairings go with the identity they were made with */
		r = pairing_remove(state, NULL);
		rc = agent_reset(a) == 0 && (r == 0 || r == ERR_NOT_FOUND) ? 0 : 1;
		printf(rc == 0 ? "factory reset: keystore wiped, intake open\n" :
		    "factory reset failed\n");
	} else {
		usage(stderr);
		rc = 2;
	}
	agent_close(a);
	return rc;
}
