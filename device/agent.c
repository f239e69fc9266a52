/*
 * agent.c: a provisionable device's persistent state and its intake loop —
 * the registration record made from the setup PIN at manufacture (the PIN
 * itself is not kept), the keystore, the lockout after failed PIN exchanges,
 * and the rule that a recorded device refuses intake until a factory reset.
 * devagent is a thin program over this; a device maker links the same code.
 *
 * State directory: profile (0600: address, names, keystore kind, w0, L),
 * intake (failures, locked_until, provisioned), keystore/ (device keystore).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "device/device.h"

#define PROFILE_MAX 4096
#define LOCK_AFTER 5			/* failures before the first lockout */
#define LOCK_BASE_S 30			/* first lockout; doubles each time */
#define LOCK_MAX_S 86400

struct agent {
	char dir[512];
	struct device_profile dp;
	char keystore[16];
	char tcti[256];
	/* intake state */
	int64_t failures;
	int64_t locked_until;
	int64_t provisioned;
	unsigned seen;			/* profile keys read, PROFILE_* bits */
	struct keystore *ks;
};

#define PROFILE_ADDR 1u
#define PROFILE_KEYSTORE 2u
#define PROFILE_W0 4u
#define PROFILE_L 8u
#define PROFILE_REQUIRED (PROFILE_ADDR | PROFILE_KEYSTORE | PROFILE_W0 | PROFILE_L)

static int
path_of(const struct agent *a, const char *name, char *out, size_t len)
{
	return (size_t)snprintf(out, len, "%s/%s", a->dir, name) < len ? 0 : ERR_INVALID;
}

/* Reads "key=value" lines of a small file; calls set(key, value) for each. */
static int
read_kv(const char *path, int (*set)(struct agent *, const char *, const char *),
    struct agent *a)
{
	char *buf = NULL, *line, *next;
	size_t len = 0;
	int r;

	if ((r = file_read_all(path, PROFILE_MAX, &buf, &len)) != 0)
		return r;
	for (line = buf; line != NULL && *line != '\0'; line = next) {
		char *eq, *nl = strchr(line, '\n');
		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		if ((eq = strchr(line, '=')) == NULL) {
			r = ERR_INVALID;
			break;
		}
		*eq = '\0';
		if ((r = set(a, line, eq + 1)) != 0)
			break;
	}
	OPENSSL_cleanse(buf, len);	/* the profile holds w0 */
	free(buf);
	return r;
}

static int
set_profile(struct agent *a, const char *k, const char *v)
{
	struct device_profile *dp = &a->dp;

	if (strcmp(k, "addr") == 0) {
		a->seen |= PROFILE_ADDR;
		return mac_parse(v, dp->addr);
	}
	if (strcmp(k, "name") == 0)
		return snprintf(dp->name, sizeof(dp->name), "%s", v) < (int)sizeof(dp->name) ? 0 : ERR_INVALID;
	if (strcmp(k, "model") == 0)
		return snprintf(dp->model, sizeof(dp->model), "%s", v) < (int)sizeof(dp->model) ? 0 : ERR_INVALID;
	if (strcmp(k, "firmware") == 0)
		return snprintf(dp->firmware, sizeof(dp->firmware), "%s", v) < (int)sizeof(dp->firmware) ? 0 : ERR_INVALID;
	if (strcmp(k, "keystore") == 0) {
		a->seen |= PROFILE_KEYSTORE;
		return snprintf(a->keystore, sizeof(a->keystore), "%s", v) < (int)sizeof(a->keystore) ? 0 : ERR_INVALID;
	}
	if (strcmp(k, "tcti") == 0)
		return snprintf(a->tcti, sizeof(a->tcti), "%s", v) < (int)sizeof(a->tcti) ? 0 : ERR_INVALID;
	if (strcmp(k, "w0") == 0) {
		a->seen |= PROFILE_W0;
		return hex_decode(v, dp->w0, sizeof(dp->w0));
	}
	if (strcmp(k, "L") == 0) {
		a->seen |= PROFILE_L;
		return hex_decode(v, dp->L, sizeof(dp->L));
	}
	return ERR_INVALID;
}

static int
set_intake(struct agent *a, const char *k, const char *v)
{
	if (strcmp(k, "failures") == 0)
		return parse_int64(v, 0, 1000000, &a->failures);
	if (strcmp(k, "locked_until") == 0)
		return parse_int64(v, 0, INT64_MAX, &a->locked_until);
	if (strcmp(k, "provisioned") == 0)
		return parse_int64(v, 0, 1, &a->provisioned);
	return ERR_INVALID;
}

static int
save_intake(const struct agent *a)
{
	char path[600], text[128];
	int n;

	if (path_of(a, "intake", path, sizeof(path)) != 0)
		return ERR_INVALID;
	n = snprintf(text, sizeof(text), "failures=%lld\nlocked_until=%lld\nprovisioned=%lld\n",
	    (long long)a->failures, (long long)a->locked_until, (long long)a->provisioned);
	return file_write_atomic(path, text, (size_t)n, 0600);
}

int
agent_init(const struct agent_init_opts *o, char *why, size_t whylen)
{
	struct agent a = { 0 };
	uint8_t w1[SPAKE2P_SCALAR_LEN];
	char path[600], w0hex[2 * SPAKE2P_SCALAR_LEN + 1], Lhex[2 * SPAKE2P_POINT_LEN + 1];
	char ms[MAC_STR_LEN], *text = NULL;
	int r, n;

	snprintf(why, whylen, "internal error");
	if (snprintf(a.dir, sizeof(a.dir), "%s", o->dir) >= (int)sizeof(a.dir) ||
	    (strcmp(o->keystore, "file") != 0 && strcmp(o->keystore, "tpm2") != 0)) {
		snprintf(why, whylen, "keystore must be file or tpm2");
		return ERR_INVALID;
	}
	if (mac_parse(o->addr, a.dp.addr) != 0) {
		snprintf(why, whylen, "not a unicast IEEE address: %s", o->addr);
		return ERR_BAD_MAC;
	}
	if (optdata_check_name(o->name) != 0 || optdata_check_name(o->model) != 0 ||
	    (o->tcti != NULL && (strlen(o->tcti) >= 256 || strchr(o->tcti, '\n') != NULL))) {
		snprintf(why, whylen, "name and model must be 1 to 128 printable characters");
		return ERR_INVALID;
	}
	if (strlen(o->pin) < 6 || strlen(o->pin) > 32 ||
	    strspn(o->pin, "0123456789") != strlen(o->pin)) {
		snprintf(why, whylen, "the setup PIN must be 6 to 32 digits");
		return ERR_INVALID;
	}
	if (mkdir(o->dir, 0700) != 0 && errno != EEXIST) {
		snprintf(why, whylen, "cannot create %s: %s", o->dir, strerror(errno));
		return ERR_IO;
	}
	if (path_of(&a, "profile", path, sizeof(path)) != 0) {
		snprintf(why, whylen, "the state directory path is too long");
		return ERR_INVALID;
	}
	if (!o->force && access(path, F_OK) == 0) {
		snprintf(why, whylen, "%s already holds a device (use --force to make a new one)",
		    o->dir);
		return ERR_CONFLICT;
	}
	if (o->force && access(path, F_OK) == 0) {
		/* a new device: nothing of the old one survives, whichever
		 * keystore it used */
		struct agent *old = NULL;
		if ((r = agent_open(o->dir, &old)) == 0) {
			r = keystore_wipe(old->ks);
			agent_close(old);
		}
		if (r != 0) {
			snprintf(why, whylen, "cannot wipe the old device's keystore: %s",
			    provd_strerror(r));
			return r;
		}
	}
	/* manufacture: the record from the PIN; the PIN is not stored */
	if ((r = spake2p_derive(o->pin, a.dp.addr, MAC_LEN, a.dp.w0, w1)) != 0 ||
	    (r = spake2p_make_L(w1, a.dp.L)) != 0) {
		OPENSSL_cleanse(w1, sizeof(w1));
		snprintf(why, whylen, "cannot derive the PIN record");
		return r;
	}
	OPENSSL_cleanse(w1, sizeof(w1));
	mac_format(a.dp.addr, ms);
	hex_encode(a.dp.w0, sizeof(a.dp.w0), w0hex);
	hex_encode(a.dp.L, sizeof(a.dp.L), Lhex);
	n = asprintf(&text, "addr=%s\nname=%s\nmodel=%s\nfirmware=%s\nkeystore=%s\n%s%s%sw0=%s\nL=%s\n",
	    ms, o->name, o->model, "1.0", o->keystore, o->tcti ? "tcti=" : "",
	    o->tcti ? o->tcti : "", o->tcti ? "\n" : "", w0hex, Lhex);
	OPENSSL_cleanse(w0hex, sizeof(w0hex));
	OPENSSL_cleanse(&a.dp, sizeof(a.dp));
	if (n < 0) {
		snprintf(why, whylen, "out of memory");
		return ERR_NOMEM;
	}
	r = file_write_atomic(path, text, (size_t)n, 0600);
	OPENSSL_cleanse(text, (size_t)n);
	free(text);
	if (r != 0) {
		snprintf(why, whylen, "cannot write %s", path);
		return r;
	}
	a.failures = a.locked_until = a.provisioned = 0;
	if ((r = save_intake(&a)) != 0)
		snprintf(why, whylen, "cannot write the intake state in %s", o->dir);
	else
		why[0] = '\0';
	return r;
}

int
agent_open(const char *dir, struct agent **out)
{
	struct agent *a;
	struct keystore_params kp = { 0 };
	char path[600], ksdir[600];
	int r;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return ERR_NOMEM;
	snprintf(a->dir, sizeof(a->dir), "%s", dir);
	if ((r = path_of(a, "profile", path, sizeof(path))) != 0 ||
	    (r = read_kv(path, set_profile, a)) != 0 ||
	    (r = (a->seen & PROFILE_REQUIRED) == PROFILE_REQUIRED ? 0 : ERR_INVALID) != 0 ||
	    (r = path_of(a, "intake", path, sizeof(path))) != 0 ||
	    (r = read_kv(path, set_intake, a)) != 0 ||
	    (r = path_of(a, "keystore", ksdir, sizeof(ksdir))) != 0)
		goto fail;
	kp.kind = a->keystore;
	kp.dir = ksdir;
	kp.tpm2_tcti = a->tcti[0] ? a->tcti : NULL;
	if ((r = keystore_open(&kp, &a->ks)) != 0)
		goto fail;
	*out = a;
	return 0;
fail:
	agent_close(a);
	return r;
}

void
agent_close(struct agent *a)
{
	if (a == NULL)
		return;
	keystore_close(a->ks);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}

const struct device_profile *
agent_profile(const struct agent *a)
{
	return &a->dp;
}

struct keystore *
agent_keystore(struct agent *a)
{
	return a->ks;
}

void
agent_status(const struct agent *a, int *provisioned, int64_t *failures, int64_t *locked_until)
{
	*provisioned = (int)a->provisioned;
	*failures = a->failures;
	*locked_until = a->locked_until;
}

int
agent_reset(struct agent *a)
{
	int r;

	/* the state first: a reset cut short leaves an open device, never a
	 * closed one without an identity */
	a->failures = a->locked_until = a->provisioned = 0;
	if ((r = save_intake(a)) != 0)
		return r;
	return keystore_wipe(a->ks);
}

int
agent_serve_once(struct agent *a, struct radio *radio, int accept_ms, int intake_ms,
    char *why, size_t whylen)
{
	struct radio_link *l = NULL;
	uint8_t peer[MAC_LEN];
	char ps[MAC_STR_LEN];
	int64_t now;
	int r;

	why[0] = '\0';
	if ((r = radio_accept(radio, accept_ms, &l)) != 0)
		return r;
	radio_link_peer(l, peer);
	mac_format(peer, ps);
	now = (int64_t)time(NULL);
	if (a->provisioned) {
		snprintf(why, whylen, "intake from %s refused: this device is provisioned "
		    "(factory reset to enrol again)", ps);
		r = ERR_CONFLICT;
		goto out;
	}
	if (a->locked_until > now) {
		snprintf(why, whylen, "intake from %s refused: locked for %lld s after %lld "
		    "failed PIN exchanges", ps, (long long)(a->locked_until - now),
		    (long long)a->failures);
		r = ERR_FORBIDDEN;
		goto out;
	}
	/* count the attempt as failed before it runs, durably: a crash or a
	 * kill during the exchange must not give a free guess */
	a->failures++;
	if (save_intake(a) != 0) {
		a->failures--;
		snprintf(why, whylen, "intake refused: cannot record the attempt");
		r = ERR_IO;
		goto out;
	}
	r = device_intake_serve(l, &a->dp, a->ks, intake_ms, why, whylen);
	if (r == ERR_AUTH) {
		if (a->failures >= LOCK_AFTER) {
			int64_t shift = a->failures - LOCK_AFTER, d = LOCK_BASE_S;
			while (shift-- > 0 && d < LOCK_MAX_S)
				d *= 2;
			a->locked_until = now + (d < LOCK_MAX_S ? d : LOCK_MAX_S);
			(void)save_intake(a);
		}
		goto out;
	}
	/* the PIN was right (or never tested): the attempt does not count */
	if (r == 0) {
		a->failures = 0;
		a->locked_until = 0;
		a->provisioned = 1;
	} else
		a->failures--;
	if (save_intake(a) != 0 && r == 0) {
		snprintf(why, whylen, "provisioned, but the intake state was not saved");
		r = ERR_IO;
	}
out:
	radio_link_close(l);
	return r;
}
