/*
 * pairing.c: consumer pairing (DESIGN.md flow 6, seed Fig. 9) — the pairing
 * store in a device's state directory, written in two phases, and the
 * conversations on the encrypted link: pairing (PAIR, decisions, PREPARED,
 * COMMIT, DONE) and the meeting of two devices (STATE) that settles a
 * pending pairing and lets only paired peers talk. docs/protocol.md,
 * "Consumer pairing", says why a crash anywhere ends paired on both sides
 * or on neither.
 */
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "device/device.h"

#define FILE_PAIRED "pairing"
#define FILE_PENDING "pairing.pending"
#define FILE_CONSUMER "consumer"

/* ---------------------------------------------------------------------
 * The file format.
 */

static int
printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

int
pairing_format(const struct pairing *p, char *out, size_t outlen)
{
	char ms[MAC_STR_LEN], fpr[2 * PAIRING_FPR_LEN + 1], id[2 * PAIRING_ID_LEN + 1];
	int n;

	if (p == NULL || out == NULL || (p->role != PAIRING_INITIATOR &&
	    p->role != PAIRING_RESPONDER) || memchr(p->model, '\0', sizeof(p->model)) == NULL ||
	    !printable(p->model))
		return ERR_INVALID;
	mac_format(p->peer, ms);
	hex_encode(p->fpr, sizeof(p->fpr), fpr);
	hex_encode(p->id, sizeof(p->id), id);
	n = snprintf(out, outlen, "peer=%s\nfingerprint=%s\nid=%s\nrole=%s\nmodel=%s\n", ms, fpr,
	    id, p->role == PAIRING_INITIATOR ? "initiator" : "responder", p->model);
	if (n < 0 || (size_t)n >= outlen)
		return ERR_TOO_BIG;
	return n;
}

int
pairing_parse(const char *text, size_t len, struct pairing *p)
{
	struct pairing t = { 0 };
	char line[PAIRING_FILE_MAX + 1];
	unsigned seen = 0;
	size_t off = 0;

	if (text == NULL || p == NULL || len > PAIRING_FILE_MAX || memchr(text, '\0', len) != NULL)
		return ERR_INVALID;
	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t ll;
		char *v;
		unsigned bit;

		if (nl == NULL)
			return ERR_INVALID;	/* every line ends with a newline */
		ll = (size_t)(nl - (text + off));
		memcpy(line, text + off, ll);
		line[ll] = '\0';
		off += ll + 1;
		if ((v = strchr(line, '=')) == NULL)
			return ERR_INVALID;
		*v++ = '\0';
		if (strcmp(line, "peer") == 0) {
			bit = 1;
			if (mac_parse(v, t.peer) != 0)
				return ERR_INVALID;
		} else if (strcmp(line, "fingerprint") == 0) {
			bit = 2;
			if (strlen(v) != 2 * PAIRING_FPR_LEN || hex_decode(v, t.fpr, sizeof(t.fpr)) != 0)
				return ERR_INVALID;
		} else if (strcmp(line, "id") == 0) {
			bit = 4;
			if (strlen(v) != 2 * PAIRING_ID_LEN || hex_decode(v, t.id, sizeof(t.id)) != 0)
				return ERR_INVALID;
		} else if (strcmp(line, "role") == 0) {
			bit = 8;
			if (strcmp(v, "initiator") == 0)
				t.role = PAIRING_INITIATOR;
			else if (strcmp(v, "responder") == 0)
				t.role = PAIRING_RESPONDER;
			else
				return ERR_INVALID;
		} else if (strcmp(line, "model") == 0) {
			bit = 16;
			if (strlen(v) > PAIRING_MODEL_MAX || !printable(v))
				return ERR_INVALID;
			memcpy(t.model, v, strlen(v) + 1);
		} else
			return ERR_INVALID;
		if (seen & bit)
			return ERR_INVALID;
		seen |= bit;
	}
	if (seen != 31)
		return ERR_INVALID;
	*p = t;
	return 0;
}

/* The model as shown: CN, then " (O)" when there is an O. */
static void
name_entry(X509_NAME *n, int nid, char *out, size_t outlen)
{
	int i = X509_NAME_get_index_by_NID(n, nid, -1);
	const ASN1_STRING *s;
	unsigned char *u = NULL;
	int len;

	out[0] = '\0';
	if (i < 0 || (s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i))) == NULL ||
	    (len = ASN1_STRING_to_UTF8(&u, s)) < 0)
		return;
	size_t k = 0;
	for (int j = 0; j < len && k + 1 < outlen; j++)
		out[k++] = u[j] >= 0x20 && u[j] < 0x7f ? (char)u[j] : '?';
	out[k] = '\0';
	OPENSSL_free(u);
}

int
pairing_cert_info(X509 *cert, uint8_t fpr[PAIRING_FPR_LEN], char model[PAIRING_MODEL_MAX + 1])
{
	char cn[PAIRING_MODEL_MAX + 1], o[PAIRING_MODEL_MAX + 1];
	unsigned int n = 0;

	if (cert == NULL || !X509_digest(cert, EVP_sha256(), fpr, &n) || n != PAIRING_FPR_LEN)
		return ERR_CRYPTO;
	name_entry(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
	name_entry(X509_get_subject_name(cert), NID_organizationName, o, sizeof(o));
	if (cn[0] == '\0')
		str_copy(cn, sizeof(cn), "unnamed device");
	if (o[0] != '\0')
		snprintf(model, PAIRING_MODEL_MAX + 1, "%.*s (%.*s)", PAIRING_MODEL_MAX / 2, cn,
		    PAIRING_MODEL_MAX / 2 - 4, o);
	else
		str_copy(model, PAIRING_MODEL_MAX + 1, cn);
	return 0;
}

/* ---------------------------------------------------------------------
 * The store.
 */

static int
path_in(const char *dir, const char *name, char *out, size_t outlen)
{
	return (size_t)snprintf(out, outlen, "%s/%s", dir, name) < outlen ? 0 : ERR_INVALID;
}

static int
fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return ERR_IO;
	if (fsync(fd) != 0) {
		log_warnx("%s: fsync: %s", dir, strerror(errno));
		r = ERR_IO;
	}
	close(fd);
	return r;
}

/* Removes dir/name: 1 removed, 0 there was none, ERR_IO. */
static int
unlink_in(const char *dir, const char *name)
{
	char path[4096];

	if (path_in(dir, name, path, sizeof(path)) != 0)
		return ERR_INVALID;
	if (unlink(path) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	log_warnx("%s: %s", path, strerror(errno));
	return ERR_IO;
}

static int
exists_in(const char *dir, const char *name)
{
	char path[4096];

	return path_in(dir, name, path, sizeof(path)) == 0 && access(path, F_OK) == 0;
}

static int
read_in(const char *dir, const char *name, struct pairing *p)
{
	char path[4096], *buf = NULL;
	size_t len = 0;
	int r;

	if ((r = path_in(dir, name, path, sizeof(path))) != 0 ||
	    (r = file_read_all(path, PAIRING_FILE_MAX, &buf, &len)) != 0)
		return r;
	r = pairing_parse(buf, len, p);
	free(buf);
	return r;
}

int
pairing_is_consumer(const char *dir)
{
	return exists_in(dir, FILE_CONSUMER);
}

int
pairing_set_consumer(const char *dir, int on)
{
	static const char text[] = "mode=consumer\n";
	char path[4096];
	int r;

	if (path_in(dir, FILE_CONSUMER, path, sizeof(path)) != 0)
		return ERR_INVALID;
	if (on)
		return file_write_atomic(path, text, sizeof(text) - 1, 0600);
	if ((r = unlink_in(dir, FILE_CONSUMER)) < 0)
		return r;
	return r == 1 ? fsync_dir(dir) : 0;
}

int
pairing_load(const char *dir, enum pairing_state *st, struct pairing *p)
{
	int r;

	memset(p, 0, sizeof(*p));
	*st = PAIRING_NONE;
	if (exists_in(dir, FILE_PAIRED)) {
		if ((r = read_in(dir, FILE_PAIRED, p)) != 0)
			return r == ERR_NOT_FOUND ? ERR_IO : ERR_INVALID;
		*st = PAIRING_PAIRED;
	} else if (exists_in(dir, FILE_PENDING)) {
		if ((r = read_in(dir, FILE_PENDING, p)) != 0)
			return r == ERR_NOT_FOUND ? ERR_IO : ERR_INVALID;
		*st = PAIRING_PENDING;
	}
	return 0;
}

int
pairing_prepare(const char *dir, const struct pairing *p)
{
	char path[4096], text[PAIRING_FILE_MAX];
	int n;

	if (exists_in(dir, FILE_PAIRED) || exists_in(dir, FILE_PENDING))
		return ERR_CONFLICT;
	if ((n = pairing_format(p, text, sizeof(text))) < 0)
		return n;
	if (path_in(dir, FILE_PENDING, path, sizeof(path)) != 0)
		return ERR_INVALID;
	return file_write_atomic(path, text, (size_t)n, 0600);
}

int
pairing_commit(const char *dir)
{
	char from[4096], to[4096];

	if (path_in(dir, FILE_PENDING, from, sizeof(from)) != 0 ||
	    path_in(dir, FILE_PAIRED, to, sizeof(to)) != 0)
		return ERR_INVALID;
	if (rename(from, to) != 0) {
		if (errno == ENOENT)
			return ERR_NOT_FOUND;
		log_warnx("%s: %s", to, strerror(errno));
		return ERR_IO;
	}
	return fsync_dir(dir);
}

int
pairing_discard(const char *dir)
{
	int r = unlink_in(dir, FILE_PENDING);

	if (r < 0)
		return r;
	return r == 1 ? fsync_dir(dir) : 0;
}

int
pairing_remove(const char *dir, const uint8_t *peer)
{
	static const char *const names[] = { FILE_PENDING, FILE_PAIRED };
	struct pairing p;
	int r, removed = 0;

	for (size_t i = 0; i < 2; i++) {
		if (!exists_in(dir, names[i]))
			continue;
		/* a file that does not parse is removed too: it pairs with
		 * nobody */
		if (peer != NULL && read_in(dir, names[i], &p) == 0 &&
		    memcmp(p.peer, peer, MAC_LEN) != 0)
			continue;
		if ((r = unlink_in(dir, names[i])) < 0)
			return r;
		removed += r;
	}
	if (removed == 0)
		return ERR_NOT_FOUND;
	return fsync_dir(dir);
}

/* A temporary file of file_write_atomic: "NAME.tmp.PID". */
static int
is_tmp_of(const char *entry, const char *name)
{
	size_t n = strlen(name);

	return strncmp(entry, name, n) == 0 && strncmp(entry + n, ".tmp.", 5) == 0;
}

int
pairing_recover(const char *dir, char *why, size_t whylen)
{
	enum pairing_state st;
	struct pairing p;
	struct dirent *e;
	DIR *d;
	int r, changed = 0;

	msg_set(why, whylen, "%s", "");
	if ((d = opendir(dir)) == NULL)
		return ERR_IO;
	while ((e = readdir(d)) != NULL)
		if (is_tmp_of(e->d_name, FILE_PENDING) || is_tmp_of(e->d_name, FILE_PAIRED) ||
		    is_tmp_of(e->d_name, FILE_CONSUMER)) {
			if (unlink_in(dir, e->d_name) > 0)
				changed = 1;
		}
	closedir(d);
	if ((r = pairing_load(dir, &st, &p)) != 0)
		return r;
	if (st == PAIRING_PAIRED && exists_in(dir, FILE_PENDING)) {
		/* committed by a rename: the pending name cannot survive it;
		 * a leftover means a file put there by hand */
		if (unlink_in(dir, FILE_PENDING) > 0)
			changed = 1;
	}
	if (st == PAIRING_PENDING && p.role == PAIRING_INITIATOR) {
		char ms[MAC_STR_LEN];

		if ((r = unlink_in(dir, FILE_PENDING)) < 0)
			return r;
		changed = 1;
		mac_format(p.peer, ms);
		msg_set(why, whylen, "the unfinished pairing with %s was abandoned (it was not "
		    "committed here, so it was not on %s either)", ms, ms);
	}
	return changed ? fsync_dir(dir) : 0;
}

/* ---------------------------------------------------------------------
 * Frames of the conversations: ASCII words, one seclink DATA frame each.
 */

static int
send_msg(struct seclink *sl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
send_msg(struct seclink *sl, const char *fmt, ...)
{
	char buf[PAIRING_MSG_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return ERR_TOO_BIG;
	return seclink_send(sl, buf, (size_t)n);
}

/* One frame into msg as a string: ERR_INVALID when it is longer than
 * PAIRING_MSG_MAX - 1 or holds a byte that is not printable ASCII. */
static int
recv_msg(struct seclink *sl, char msg[PAIRING_MSG_MAX], int timeout_ms)
{
	uint8_t *buf;
	size_t len = 0;
	int r;

	if ((buf = malloc(SECLINK_MAX_DATA)) == NULL)
		return ERR_NOMEM;
	if ((r = seclink_recv(sl, buf, SECLINK_MAX_DATA, &len, timeout_ms)) == 0) {
		if (len >= PAIRING_MSG_MAX)
			r = ERR_INVALID;
		for (size_t i = 0; r == 0 && i < len; i++)
			if (buf[i] < 0x20 || buf[i] > 0x7e)
				r = ERR_INVALID;
		if (r == 0) {
			memcpy(msg, buf, len);
			msg[len] = '\0';
		}
	}
	free(buf);
	return r;
}

static const char *
link_why(struct seclink *sl, int r)
{
	if (r == ERR_INVALID)
		return "a malformed pairing message";
	if (r == ERR_TIMEOUT && seclink_error(sl)[0] == '\0')
		return "no answer in time";
	return seclink_error(sl)[0] ? seclink_error(sl) : "the link closed";
}

static void
step(const struct pairing_run_opts *o, const char *name)
{
	if (o->crash != NULL)
		o->crash(name);
}

/* "REFUSED <reason>": 1 with the reason copied, else 0. */
static int
is_refused(const char *msg, char *why, size_t whylen)
{
	if (strncmp(msg, "REFUSED ", 8) != 0)
		return 0;
	msg_set(why, whylen, "%s", msg + 8);
	return 1;
}

int
pairing_run(struct seclink *sl, const struct peer_info *pi, const struct pairing_run_opts *o,
    struct pairing *out, char *why, size_t whylen)
{
	struct pairing p = { 0 };
	char msg[PAIRING_MSG_MAX], idhex[2 * PAIRING_ID_LEN + 1], ps[MAC_STR_LEN];
	enum pairing_state st;
	struct pairing cur;
	int init = o->role == PAIRING_INITIATOR, mine, theirs, r;
	int prepared = 0, sent_prepared = 0, committed = 0;
	int decide_ms = o->decide_ms > 0 ? o->decide_ms : PAIRING_DECIDE_MS_DEFAULT;

	msg_set(why, whylen, "%s", "");
	mac_format(pi->addr, ps);
	memcpy(p.peer, pi->addr, MAC_LEN);
	p.role = o->role;
	if ((r = pairing_cert_info(pi->cert, p.fpr, p.model)) != 0) {
		msg_set(why, whylen, "cannot read %s's certificate", ps);
		return r;
	}
	/* 1. the request: PAIR <id> from the initiator, PAIR or REFUSED back */
	if (init) {
		if (RAND_bytes(p.id, sizeof(p.id)) != 1)
			return ERR_CRYPTO;
		hex_encode(p.id, sizeof(p.id), idhex);
		if ((r = send_msg(sl, "PAIR %s", idhex)) != 0 ||
		    (r = recv_msg(sl, msg, o->timeout_ms)) != 0)
			goto link_failed;
		if (is_refused(msg, why, whylen))
			return ERR_CONFLICT;
		if (strcmp(msg, "PAIR") != 0) {
			r = ERR_INVALID;
			goto link_failed;
		}
	} else {
		if ((r = recv_msg(sl, msg, o->timeout_ms)) != 0)
			goto link_failed;
		if (strncmp(msg, "PAIR ", 5) != 0 || strlen(msg + 5) != 2 * PAIRING_ID_LEN ||
		    hex_decode(msg + 5, p.id, sizeof(p.id)) != 0) {
			(void)send_msg(sl, "REFUSED %s", strncmp(msg, "STATE ", 6) == 0 ?
			    "this device is pairing, not connecting" : "not a pairing request");
			msg_set(why, whylen, "%s did not ask to pair", ps);
			return ERR_CONFLICT;
		}
		/* this device may have been paired since the button was
		 * pressed (it cannot: one command at a time), checked anyway */
		if ((r = pairing_load(o->dir, &st, &cur)) != 0 || st != PAIRING_NONE) {
			(void)send_msg(sl, "REFUSED already paired; unpair first");
			msg_set(why, whylen, "this device holds a pairing already");
			return ERR_CONFLICT;
		}
		if ((r = send_msg(sl, "PAIR")) != 0)
			goto link_failed;
	}
	/* 2. each user decides; the decisions cross */
	mine = o->decide(o->arg, &p) == 1;
	if ((r = send_msg(sl, mine ? "ACCEPT" : "REJECT")) != 0)
		goto link_failed;
	if ((r = recv_msg(sl, msg, decide_ms)) != 0)
		goto link_failed;
	if (strcmp(msg, "ACCEPT") == 0)
		theirs = 1;
	else if (strcmp(msg, "REJECT") == 0)
		theirs = 0;
	else {
		r = ERR_INVALID;
		goto link_failed;
	}
	if (!mine || !theirs) {
		msg_set(why, whylen, "pairing with %s rejected %s; nothing stored", ps,
		    !mine && !theirs ? "on both devices" : !mine ? "here" : "on the other device");
		return ERR_FORBIDDEN;
	}
	step(o, "decided");
	/* 3. phase one on both sides, then PREPARED both ways */
	if ((r = pairing_prepare(o->dir, &p)) != 0) {
		msg_set(why, whylen, "cannot store the pairing: %s", provd_strerror(r));
		return r;
	}
	prepared = 1;
	step(o, "pending");
	if ((r = send_msg(sl, "PREPARED")) != 0)
		goto link_failed;
	sent_prepared = 1;
	if ((r = recv_msg(sl, msg, o->timeout_ms)) != 0)
		goto link_failed;
	if (strcmp(msg, "PREPARED") != 0) {
		r = ERR_INVALID;
		goto link_failed;
	}
	step(o, "prepared");
	/* 4. the initiator's rename is the commit point of the pairing */
	if (init) {
		if ((r = pairing_commit(o->dir)) != 0) {
			msg_set(why, whylen, "cannot commit the pairing: %s", provd_strerror(r));
			goto abandon;
		}
		committed = 1;
		step(o, "committed");
		if ((r = send_msg(sl, "COMMIT")) != 0)
			goto link_failed;
		step(o, "sent");
		if ((r = recv_msg(sl, msg, o->timeout_ms)) != 0)
			goto link_failed;
		if (strcmp(msg, "DONE") != 0) {
			r = ERR_INVALID;
			goto link_failed;
		}
	} else {
		if ((r = recv_msg(sl, msg, o->timeout_ms)) != 0)
			goto link_failed;
		if (strcmp(msg, "COMMIT") != 0) {
			r = ERR_INVALID;
			goto link_failed;
		}
		if ((r = pairing_commit(o->dir)) != 0) {
			/* the initiator committed: ours stays pending and is
			 * settled when the devices meet */
			msg_set(why, whylen, "cannot commit the pairing (%s): it stays pending until "
			    "the devices meet", provd_strerror(r));
			return r;
		}
		committed = 1;
		step(o, "committed");
		if ((r = send_msg(sl, "DONE")) != 0)
			goto link_failed;
		step(o, "sent");
	}
	*out = p;
	return 0;

link_failed:
	if (committed) {
		msg_set(why, whylen, "the link with %s ended (%s) after the pairing was stored here; "
		    "it is settled on %s when the devices next meet", ps, link_why(sl, r), ps);
		*out = p;
		return 0;
	}
	if (prepared && !init && sent_prepared) {
		msg_set(why, whylen, "the link with %s ended (%s) before the pairing was settled: "
		    "it stays pending until the devices meet (devagent connect or serve)", ps,
		    link_why(sl, r));
		return r == 0 ? ERR_IO : r;
	}
	msg_set(why, whylen, "the link with %s ended (%s); nothing stored", ps, link_why(sl, r));
abandon:
	/* not committed by the initiator, or a responder whose PREPARED
	 * never left: the peer cannot have committed */
	if (prepared)
		(void)pairing_discard(o->dir);
	return r == 0 ? ERR_IO : r;
}

/* ---------------------------------------------------------------------
 * Two devices meeting.
 */

int
pairing_meet_rule(enum pairing_state mine, const uint8_t myid[PAIRING_ID_LEN],
    enum pairing_state theirs, const uint8_t theirid[PAIRING_ID_LEN], int *act)
{
	int same = mine != PAIRING_NONE && theirs != PAIRING_NONE &&
	    CRYPTO_memcmp(myid, theirid, PAIRING_ID_LEN) == 0;

	*act = 0;
	switch (mine) {
	case PAIRING_PENDING:
		/* only a responder holds a pending pairing while it meets
		 * its peer (an initiator's is dropped at start): the outcome
		 * is the initiator's */
		if (same && theirs == PAIRING_PAIRED) {
			*act = 1;
			return 1;
		}
		*act = -1;
		return 0;
	case PAIRING_PAIRED:
		/* a peer still pending with our pairing commits it now */
		return same;
	default:
		return 0;
	}
}

static const char *
state_word(enum pairing_state st)
{
	return st == PAIRING_PAIRED ? "paired" : st == PAIRING_PENDING ? "pending" : "none";
}

/* "STATE <none|pending|paired> <id|->". */
static int
state_parse(const char *msg, enum pairing_state *st, uint8_t id[PAIRING_ID_LEN])
{
	const char *w = msg + 6;

	memset(id, 0, PAIRING_ID_LEN);
	if (strncmp(msg, "STATE ", 6) != 0)
		return ERR_INVALID;
	if (strcmp(w, "none -") == 0) {
		*st = PAIRING_NONE;
		return 0;
	}
	if (strncmp(w, "pending ", 8) == 0)
		*st = PAIRING_PENDING, w += 8;
	else if (strncmp(w, "paired ", 7) == 0)
		*st = PAIRING_PAIRED, w += 7;
	else
		return ERR_INVALID;
	if (strlen(w) != 2 * PAIRING_ID_LEN || hex_decode(w, id, PAIRING_ID_LEN) != 0)
		return ERR_INVALID;
	return 0;
}

int
pairing_meet(struct seclink *sl, const struct peer_info *pi, const char *dir, int role,
    int timeout_ms, char *why, size_t whylen)
{
	char msg[PAIRING_MSG_MAX], idhex[2 * PAIRING_ID_LEN + 1], ps[MAC_STR_LEN], other[MAC_STR_LEN];
	uint8_t fpr[PAIRING_FPR_LEN], theirid[PAIRING_ID_LEN];
	char model[PAIRING_MODEL_MAX + 1];
	enum pairing_state st, mine, theirs;
	struct pairing p;
	int r, act, linked;

	msg_set(why, whylen, "%s", "");
	mac_format(pi->addr, ps);
	if ((r = pairing_load(dir, &st, &p)) != 0) {
		msg_set(why, whylen, "the pairing file does not parse (devagent unpair)");
		if (role == PAIRING_RESPONDER)
			(void)send_msg(sl, "REFUSED this device cannot read its pairing");
		return r;
	}
	if ((r = pairing_cert_info(pi->cert, fpr, model)) != 0)
		return r;
	/* what this side holds about this peer: the same address and the
	 * same certificate */
	mine = st != PAIRING_NONE && memcmp(p.peer, pi->addr, MAC_LEN) == 0 &&
	    CRYPTO_memcmp(p.fpr, fpr, PAIRING_FPR_LEN) == 0 ? st : PAIRING_NONE;
	hex_encode(p.id, sizeof(p.id), idhex);
	if (role == PAIRING_INITIATOR) {
		if ((r = send_msg(sl, "STATE %s %s", state_word(mine), mine ? idhex : "-")) != 0 ||
		    (r = recv_msg(sl, msg, timeout_ms)) != 0)
			goto link_failed;
		if (is_refused(msg, why, whylen))
			return ERR_FORBIDDEN;
		if ((r = state_parse(msg, &theirs, theirid)) != 0)
			goto link_failed;
	} else {
		if ((r = recv_msg(sl, msg, timeout_ms)) != 0)
			goto link_failed;
		if (strncmp(msg, "PAIR ", 5) == 0) {
			if (st == PAIRING_NONE) {
				(void)send_msg(sl, "REFUSED not in pairing mode (press the button: "
				    "devagent pair)");
				msg_set(why, whylen, "%s asked to pair: not in pairing mode", ps);
			} else {
				mac_format(p.peer, other);
				(void)send_msg(sl, "REFUSED already paired with %s; unpair first",
				    other);
				msg_set(why, whylen, "%s asked to pair: refused, paired with %s", ps,
				    other);
			}
			return ERR_FORBIDDEN;
		}
		if ((r = state_parse(msg, &theirs, theirid)) != 0)
			goto link_failed;
		if ((r = send_msg(sl, "STATE %s %s", state_word(mine), mine ? idhex : "-")) != 0)
			goto link_failed;
	}
	linked = pairing_meet_rule(mine, p.id, theirs, theirid, &act);
	if (act == 1 && (r = pairing_commit(dir)) != 0) {
		msg_set(why, whylen, "cannot commit the pending pairing with %s: %s", ps,
		    provd_strerror(r));
		return r;
	}
	if (act == -1 && (r = pairing_discard(dir)) != 0) {
		msg_set(why, whylen, "cannot drop the pending pairing with %s: %s", ps,
		    provd_strerror(r));
		return r;
	}
	if (linked) {
		msg_set(why, whylen, "%s", act == 1 ? "the pending pairing was committed" : "");
		return 0;
	}
	if (st != PAIRING_NONE && mine == PAIRING_NONE) {
		mac_format(p.peer, other);
		msg_set(why, whylen, "%s is not this device's peer (%s with %s)", ps,
		    st == PAIRING_PAIRED ? "paired" : "pending", other);
	} else if (act == -1)
		msg_set(why, whylen, "the pending pairing with %s was not committed by it: dropped",
		    ps);
	else if (mine == PAIRING_PAIRED)
		msg_set(why, whylen, "%s no longer holds the pairing (unpaired there?)", ps);
	else
		msg_set(why, whylen, "not paired with %s", ps);
	return ERR_FORBIDDEN;

link_failed:
	msg_set(why, whylen, "the link with %s ended: %s", ps, link_why(sl, r));
	return r;
}
