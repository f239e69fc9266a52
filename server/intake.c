/*
 * intake.c: intake over the radio, provd's side (DESIGN.md flows 1 and 2).
 *
 * POST /v1/intake/scan lists the devices in range. One scanner thread runs
 * inquiries (a radio does one at a time); requests that arrive while one
 * runs share the next.
 *
 * POST /v1/intake/enrollments checks the request, refuses a label mismatch
 * before anything happens, opens a job row and starts one thread for the
 * job: link and PIN exchange, the intake conversation with our CA behind
 * it, the record (one transaction), then DONE to the device. GET
 * /v1/intake/enrollments/{id} shows a job; with wait_ms it answers when the
 * job has moved past the version the caller saw, so that progress can be
 * followed without polling. A timer thread ends waits that time out.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "provision/provision.h"
#include "server/server_int.h"

#define KEEP_FINISHED 1024	/* finished jobs kept in memory for GET */
#define WAIT_MAX_MS 60000	/* longest wait_ms a GET may ask */
#define PIN_MIN 6
#define PIN_MAX 32
#define MAX_STEPS 5		/* link, keygen, ca, push, record */
/* An enrollment's whole life is bounded: link, PIN exchange, TLS, hello,
 * key, push, acknowledgement and record each get radio.timeout_ms, and a
 * device that drips bytes to stretch them meets this limit instead. */
#define JOB_MAX_STEPS 8
#define REAP_EVERY_NS (30ull * 1000000000ull)

struct waiter {
	struct waiter *next;
	struct req *rq;
	struct ejob *job;
	uint64_t deadline;	/* now_ns() clock */
};

struct ejob {
	struct ejob *next;
	struct intake_mgr *m;
	pthread_t thread;
	int joined;
	/* the request, fixed once the thread runs */
	int64_t id;
	uint8_t mac[MAC_LEN];
	char *pin;			/* secure heap; wiped after the PIN exchange */
	enum intake_keygen keygen;
	char *owner;
	char *groups[OPTDATA_MAX_ITEMS];
	size_t ngroups;
	int replace;
	char actor[64];
	char request_id[REQ_ID_LEN];
	char name[RADIO_NAME_MAX];
	uint64_t t0;
	uint64_t deadline;		/* now_ns() clock: the watchdog ends it */
	int cut;			/* the watchdog shut its link */
	/* what the CA made (issue callback) */
	struct db_issue it;
	uint8_t *der;			/* the signed certificate until intake_run
					   returns it (then owned by res.cert) */
	size_t derlen;
	/* progress, under m->mu */
	unsigned version;
	int finished;
	char status[12];		/* running, succeeded, failed */
	char step[12];
	char error[256];
	char warning[160];
	char keygen_used[8];
	char model[PROTO_MAX_STR + 1];
	char serial_hex[33];
	uint8_t fingerprint[32];
	struct db_enroll_step steps[MAX_STEPS];
	size_t nsteps;
	struct radio_link *link;	/* while it is open, for intake_stop */
};

struct intake_mgr {
	struct server *s;
	struct radio *radio;
	pthread_mutex_t mu;
	pthread_cond_t cv;		/* scanner and timer wake-ups */
	int stopping;
	struct ejob *jobs;		/* newest first */
	size_t nrunning, nfinished;
	struct waiter *waiters;
	/* scans */
	pthread_t scanner, timer;
	struct waiter *scan_waiters;	/* job and deadline unused */
	uint64_t job_max_ns;		/* longest an enrollment may run */
	int pruning;			/* prune_finished calls joining now */
	uint64_t next_reap;		/* now_ns() clock */
	int scan_ms;			/* longest asked by the waiting requests */
	/* CA chain, DER, for INSTALL */
	uint8_t *chain[PROTO_MAX_CHAIN];
	size_t chainlen[PROTO_MAX_CHAIN];
	size_t nchain;
};

/* ---------------------------------------------------------------------
 * Jobs as JSON (under m->mu).
 */
static json_t *
job_json(const struct ejob *j)
{
	char mac[MAC_STR_LEN], fp[65];
	json_t *o, *steps;

	mac_format(j->mac, mac);
	o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:I}", "id", (json_int_t)j->id, "mac", mac,
	    "status", j->status, "step", j->step, "keygen",
	    j->keygen_used[0] ? j->keygen_used : intake_keygen_name(j->keygen),
	    "version", (json_int_t)j->version);
	if (o == NULL)
		return NULL;
	if ((steps = json_array()) != NULL) {
		for (size_t i = 0; i < j->nsteps; i++)
			json_array_append_new(steps, json_pack("{s:s,s:I}", "step",
			    j->steps[i].step, "ms", (json_int_t)j->steps[i].ms));
		json_object_set_new(o, "steps", steps);
	}
	if (j->owner != NULL)
		json_object_set_new(o, "owner", json_string(j->owner));
	if (j->ngroups > 0) {
		json_t *g = json_array();
		for (size_t i = 0; g != NULL && i < j->ngroups; i++)
			json_array_append_new(g, json_string(j->groups[i]));
		json_object_set_new(o, "groups", g);
	}
	if (j->model[0] != '\0')
		json_object_set_new(o, "model", json_string(j->model));
	if (j->error[0] != '\0')
		json_object_set_new(o, "error", json_string(j->error));
	if (j->warning[0] != '\0')
		json_object_set_new(o, "warning", json_string(j->warning));
	if (j->serial_hex[0] != '\0') {
		hex_encode(j->fingerprint, 32, fp);
		json_object_set_new(o, "serial", json_string(j->serial_hex));
		json_object_set_new(o, "fingerprint_sha256", json_string(fp));
	}
	json_object_set_new(o, "requested_by", json_string(j->actor));
	return o;
}

static json_t *
dbjob_json(const struct db_enroll_job *d)
{
	char mac[MAC_STR_LEN];
	json_t *o;

	mac_format(d->mac, mac);
	o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:[]}", "id", (json_int_t)d->id, "mac", mac,
	    "status", d->status, "step", d->step, "keygen", d->keygen, "version", (json_int_t)0,
	    "steps");
	if (o == NULL)
		return NULL;
	if (d->error[0] != '\0')
		json_object_set_new(o, "error", json_string(d->error));
	if (d->serial_hex[0] != '\0')
		json_object_set_new(o, "serial", json_string(d->serial_hex));
	json_object_set_new(o, "requested_by", json_string(d->requested_by));
	return o;
}

/* Answers and releases every waiter of j (under m->mu). */
static void
wake_waiters(struct intake_mgr *m, struct ejob *j)
{
	struct waiter **pp = &m->waiters, *w;

	while ((w = *pp) != NULL) {
		if (w->job != j) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		req_reply_json(w->rq, 200, job_json(j));
		req_complete(w->rq);
		free(w);
	}
}

/* Progress: the step now running (under no lock). */
static void
job_step(struct ejob *j, const char *step)
{
	struct intake_mgr *m = j->m;

	pthread_mutex_lock(&m->mu);
	snprintf(j->step, sizeof(j->step), "%s", step);
	j->version++;
	wake_waiters(m, j);
	pthread_mutex_unlock(&m->mu);
}

static void
job_add_step(struct ejob *j, const char *step, uint64_t ms)
{
	pthread_mutex_lock(&j->m->mu);
	if (j->nsteps < MAX_STEPS) {
		j->steps[j->nsteps].step = step;
		j->steps[j->nsteps].ms = ms;
		j->nsteps++;
	}
	pthread_mutex_unlock(&j->m->mu);
}

static void
progress_cb(void *arg, const char *step)
{
	job_step(arg, step);
}

/* Ends a job (under no lock): the outcome for the waiters and the logs. */
static void
job_finish(struct ejob *j, const char *status, const char *error)
{
	struct intake_mgr *m = j->m;
	char mac[MAC_STR_LEN];

	mac_format(j->mac, mac);
	pthread_mutex_lock(&m->mu);
	snprintf(j->status, sizeof(j->status), "%s", status);
	if (error != NULL)
		snprintf(j->error, sizeof(j->error), "%s", error);
	if (strcmp(status, "succeeded") == 0)
		snprintf(j->step, sizeof(j->step), "done");
	j->finished = 1;
	j->version++;
	m->nrunning--;
	m->nfinished++;
	wake_waiters(m, j);
	pthread_mutex_unlock(&m->mu);
	if (error != NULL)
		log_warnx("enrollment %lld of %s failed at %s: %s", (long long)j->id, mac, j->step,
		    error);
	else
		log_info("enrollment %lld of %s succeeded: certificate %s in %.1f ms",
		    (long long)j->id, mac, j->serial_hex, (double)(now_ns() - j->t0) / 1e6);
	atomic_fetch_add(error ? &m->s->m.enroll_failed : &m->s->m.enrolled, 1);
}

static void
job_free(struct ejob *j)
{
	if (j == NULL)
		return;
	if (j->pin != NULL)
		OPENSSL_secure_clear_free(j->pin, PIN_MAX + 1);
	free(j->owner);
	for (size_t i = 0; i < j->ngroups; i++)
		free(j->groups[i]);
	free(j->der);
	free(j);
}

/* Joins the threads of finished jobs and drops the oldest finished jobs
 * beyond KEEP_FINISHED (called under m->mu, which it releases meanwhile):
 * a finished job's thread has ended or is about to, so joining is quick. */
static void
prune_finished(struct intake_mgr *m)
{
	struct ejob **pp = &m->jobs, *j, *drop = NULL;
	pthread_t join[64];
	size_t seen = 0, njoin = 0;

	while ((j = *pp) != NULL) {
		if (j->finished && !j->joined && njoin < sizeof(join) / sizeof(join[0])) {
			join[njoin++] = j->thread;
			j->joined = 1;
		}
		if (j->finished && ++seen > KEEP_FINISHED) {
			int busy = 0;
			for (struct waiter *w = m->waiters; w != NULL; w = w->next)
				busy |= w->job == j;
			if (!busy) {
				*pp = j->next;
				j->next = drop;
				drop = j;
				m->nfinished--;
				continue;
			}
		}
		pp = &j->next;
	}
	m->pruning++;
	pthread_mutex_unlock(&m->mu);
	for (size_t i = 0; i < njoin; i++)
		pthread_join(join[i], NULL);
	while ((j = drop) != NULL) {
		drop = j->next;
		if (!j->joined)
			pthread_join(j->thread, NULL);
		job_free(j);
	}
	pthread_mutex_lock(&m->mu);
	if (--m->pruning == 0)
		pthread_cond_broadcast(&m->cv);
}

/* ---------------------------------------------------------------------
 * The CA behind intake_run.
 */

/* A subject serialNumber in the CSR, when there is one, must name mac. */
static int
csr_names_mac(const uint8_t *csr, size_t len, const uint8_t mac[MAC_LEN], char *why,
    size_t whylen)
{
	const unsigned char *p = csr;
	X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
	const X509_NAME *subj;
	int idx = -1, r = 0;

	if (req == NULL)
		return 0;	/* ca_csr_check says what is wrong */
	subj = X509_REQ_get_subject_name(req);
	while ((idx = X509_NAME_get_index_by_NID(subj, NID_serialNumber, idx)) >= 0) {
		const ASN1_STRING *v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
		char buf[32];
		uint8_t named[MAC_LEN];
		int n = ASN1_STRING_length(v);

		if (n <= 0 || (size_t)n >= sizeof(buf)) {
			r = ERR_BAD_CSR;
			break;
		}
		memcpy(buf, ASN1_STRING_get0_data(v), (size_t)n);
		buf[n] = '\0';
		if (mac_parse(buf, named) != 0 || memcmp(named, mac, MAC_LEN) != 0) {
			r = ERR_BAD_CSR;
			break;
		}
	}
	X509_REQ_free(req);
	if (r != 0) {
		char ms[MAC_STR_LEN];
		mac_format(mac, ms);
		msg_set(why, whylen, "the device's certificate request names another device "
		    "than %s", ms);
	}
	return r;
}

static int
issue_cb(void *arg, const uint8_t mac[MAC_LEN], const uint8_t *csr, size_t csrlen,
    uint8_t **cert, size_t *certlen, char *why, size_t whylen)
{
	struct ejob *j = arg;
	struct server *s = j->m->s;
	uint8_t *spki = NULL, *der = NULL;
	size_t spkilen = 0, derlen = 0;
	char reason[200] = "";
	int r;

	*cert = NULL;
	if (memcmp(mac, j->mac, MAC_LEN) != 0)
		return ERR_INTERNAL;	/* intake_run checked HELLO against the label */
	if ((r = ca_csr_check(csr, csrlen, &s->policy, &spki, &spkilen, reason,
	    sizeof(reason))) != 0) {
		msg_set(why, whylen, "the CA refused the device's request: %s", reason);
		return r;
	}
	if ((r = csr_names_mac(csr, csrlen, mac, why, whylen)) != 0) {
		free(spki);
		return r;
	}
	r = server_sign(s, mac, spki, spkilen, j->owner, (const char *const *)j->groups,
	    j->ngroups, NULL, 0, csr, csrlen, &der, &derlen, &j->it, reason, sizeof(reason));
	free(spki);
	if (r != 0) {
		msg_set(why, whylen, "the CA could not sign: %s", s->cmp != NULL ? reason :
		    provd_strerror(r));
		return r;
	}
	/* on the job before it leaves provd: if the job ends without its
	 * record, this certificate is recorded revoked */
	j->it.der = der;
	j->it.derlen = derlen;
	if ((r = db_enroll_signed(s->db, j->id, &j->it)) != 0) {
		free(der);
		j->it.der = NULL;
		j->it.derlen = 0;
		msg_set(why, whylen, "the certificate could not be noted on the job before "
		    "sending it (%s); nothing was sent", provd_strerror(r));
		return r;
	}
	/* intake_run owns what it gets; the job keeps what it records */
	if ((*cert = malloc(derlen)) == NULL) {
		free(der);
		j->it.der = NULL;
		j->it.derlen = 0;
		return ERR_NOMEM;
	}
	memcpy(*cert, der, derlen);
	*certlen = derlen;
	free(j->der);
	j->der = der;
	j->derlen = derlen;
	j->it.der = j->der;
	j->it.derlen = j->derlen;
	pthread_mutex_lock(&j->m->mu);
	snprintf(j->serial_hex, sizeof(j->serial_hex), "%s", j->it.serial_hex);
	memcpy(j->fingerprint, j->it.fingerprint, 32);
	pthread_mutex_unlock(&j->m->mu);
	return 0;
}

/* ---------------------------------------------------------------------
 * One enrollment, on its own thread.
 */
static uint64_t
ms_since(uint64_t t0)
{
	return (now_ns() - t0) / 1000000u;
}

static const char *
link_reason(int r)
{
	switch (r) {
	case ERR_AUTH:
		return "the device refused the PIN exchange: the PIN is wrong, or the device "
		    "is locked after failed attempts, or it is enrolled already (reset it first)";
	case ERR_TIMEOUT:
		return "the device stopped answering during the PIN exchange";
	case ERR_IO:
		return "the device closed the link before the PIN exchange finished (it may "
		    "be locked after failed PIN attempts, or already enrolled)";
	default:
		return "the PIN-secured link could not be set up";
	}
}

/* Fails the job; pushed: the certificate went to the device in INSTALL. */
static void
job_fail_pushed(struct ejob *j, const char *step, const char *error, int pushed)
{
	struct intake_mgr *m = j->m;
	struct db_enroll_step steps[MAX_STEPS];
	size_t n;
	int r;

	pthread_mutex_lock(&m->mu);
	n = j->nsteps;
	memcpy(steps, j->steps, sizeof(steps));
	snprintf(j->step, sizeof(j->step), "%s", step);
	pthread_mutex_unlock(&m->mu);
	if (pushed && j->der != NULL)
		log_warnx("enrollment %lld: certificate %s was sent to the device but not "
		    "acknowledged; it is recorded revoked", (long long)j->id, j->it.serial_hex);
	if ((r = db_enroll_fail(m->s->db, j->id, step, error, steps, n, j->actor,
	    pushed && j->der != NULL)) != 0 && r != ERR_CONFLICT)
		log_warnx("enrollment %lld: the failure could not be recorded (%s); "
		    "the job stays open until provd restarts", (long long)j->id, provd_strerror(r));
	job_finish(j, "failed", error);
}

static void
job_fail(struct ejob *j, const char *step, const char *error)
{
	job_fail_pushed(j, step, error, 0);
}

/* The sentence for a failure: the watchdog's when it cut the link. */
static const char *
job_why(struct ejob *j, const char *why)
{
	int cut;

	pthread_mutex_lock(&j->m->mu);
	cut = j->cut;
	pthread_mutex_unlock(&j->m->mu);
	return cut ? "the enrollment took longer than provd allows (radio.timeout_ms for "
	    "each of its steps); the link was closed" : why;
}

static void *
job_main(void *arg)
{
	struct ejob *j = arg;
	struct intake_mgr *m = j->m;
	struct server *s = m->s;
	int timeout = (int)s->cfg->radio_timeout_ms;
	struct radio_link *link = NULL;
	struct pinlink *pl = NULL;
	struct intake_params ip;
	struct intake_result res;
	struct db_enroll_commit ec;
	struct db_enroll_step steps[MAX_STEPS];
	char why[256] = "", ms[MAC_STR_LEN];
	uint64_t t;
	int64_t cert_id = 0;
	int r;

	memset(&res, 0, sizeof(res));
	log_set_id(j->request_id);
	mac_format(j->mac, ms);

	/* link: radio, then SPAKE2+ and TLS with the PIN */
	t = now_ns();
	if ((r = radio_connect(m->radio, j->mac, timeout, &link)) != 0) {
		msg_set(why, sizeof(why), r == ERR_NOT_FOUND ? "%s is not in range" :
		    "cannot open a radio link to %s (%s)", ms, provd_strerror(r));
		OPENSSL_secure_clear_free(j->pin, PIN_MAX + 1);
		j->pin = NULL;
		job_fail(j, "link", why);
		goto out;
	}
	pthread_mutex_lock(&m->mu);
	j->link = link;
	pthread_mutex_unlock(&m->mu);
	r = pinlink_connect(link, j->pin, j->mac, timeout, &pl);
	OPENSSL_secure_clear_free(j->pin, PIN_MAX + 1);
	j->pin = NULL;
	if (r != 0) {
		job_fail(j, "link", job_why(j, link_reason(r)));
		goto out;
	}
	job_add_step(j, "link", ms_since(t));

	/* the conversation: hello, key pair, CA, push, acknowledgement */
	memset(&ip, 0, sizeof(ip));
	memcpy(ip.label_mac, j->mac, MAC_LEN);
	radio_link_peer(link, ip.link_peer);
	ip.keygen = j->keygen;
	ip.issue = issue_cb;
	ip.issue_arg = j;
	ip.progress = progress_cb;
	ip.progress_arg = j;
	ip.chain = (const uint8_t *const *)m->chain;
	ip.chainlen = m->chainlen;
	ip.nchain = m->nchain;
	r = intake_run(pl, &ip, &res, why, sizeof(why));
	pthread_mutex_lock(&m->mu);
	snprintf(j->model, sizeof(j->model), "%s", res.model);
	if (res.keygen != INTAKE_KEYGEN_AUTO)
		snprintf(j->keygen_used, sizeof(j->keygen_used), "%s",
		    intake_keygen_name(res.keygen));
	pthread_mutex_unlock(&m->mu);
	/* the steps finished before the one it stopped at */
	if (strcmp(res.step, "ca") == 0 || strcmp(res.step, "push") == 0 ||
	    strcmp(res.step, "done") == 0)
		job_add_step(j, "keygen", res.ms_keygen);
	if (strcmp(res.step, "push") == 0 || strcmp(res.step, "done") == 0)
		job_add_step(j, "ca", res.ms_ca);
	if (r != 0) {
		/* past the CA, the certificate may be on the device already */
		job_fail_pushed(j, res.step[0] ? res.step : "hello", job_why(j, why),
		    strcmp(res.step, "push") == 0);
		goto out;
	}
	job_add_step(j, "push", res.ms_push);

	/* record: one transaction, before the device hears DONE */
	job_step(j, "record");
	t = now_ns();
	j->it.owner = j->owner;
	j->it.groups = (const char *const *)j->groups;
	j->it.ngroups = j->ngroups;
	j->it.replace = j->replace;
	j->it.actor = j->actor;
	j->it.request_id = j->request_id;
	memset(&ec, 0, sizeof(ec));
	ec.job = j->id;
	ec.it = &j->it;
	ec.keygen = intake_keygen_name(res.keygen);
	ec.model = res.model[0] ? res.model : NULL;
	ec.name = j->name;
	pthread_mutex_lock(&m->mu);
	memcpy(steps, j->steps, sizeof(steps));
	ec.steps = steps;
	ec.nsteps = j->nsteps;
	pthread_mutex_unlock(&m->mu);
	r = db_enroll_commit(s->db, &ec, &cert_id);
	if (r != 0) {
		(void)pinlink_send_error(pl, PROTO_E_REFUSED, "not recorded");
		if (r == ERR_CONFLICT) {
			/* the database failed the job already */
			job_finish(j, "failed", "the device got an active certificate from "
			    "elsewhere while this enrollment ran; the certificate pushed to it "
			    "is recorded revoked");
		} else {
			msg_set(why, sizeof(why), "the enrollment could not be recorded (%s); the "
			    "device has not been told it is done and can be enrolled again",
			    provd_strerror(r));
			job_fail_pushed(j, "record", why, 1);
		}
		goto out;
	}
	job_add_step(j, "record", ms_since(t));
	dirsync_kick(s);

	/* only now may the device close its setup PIN */
	if ((r = intake_done(pl, &res)) != 0) {
		pthread_mutex_lock(&m->mu);
		snprintf(j->warning, sizeof(j->warning), "recorded, but the device did not get "
		    "the final DONE: it keeps accepting its PIN until it is reset");
		pthread_mutex_unlock(&m->mu);
	}
	job_finish(j, "succeeded", NULL);
out:
	pthread_mutex_lock(&m->mu);
	j->link = NULL;
	pthread_mutex_unlock(&m->mu);
	pinlink_close(pl);
	radio_link_close(link);
	free(res.cert);
	log_set_id(NULL);
	return NULL;
}

/* ---------------------------------------------------------------------
 * Routes.
 */
static int
intake_ready(struct server *s, struct req *rq)
{
	if (s->intake != NULL)
		return 1;
	req_reply_error(rq, ERR_UNAVAILABLE, "Intake over the radio is not configured on this "
	    "server; set [radio] backend.");
	return 0;
}

static int
keygen_parse(const char *v, enum intake_keygen *out)
{
	if (strcmp(v, "auto") == 0)
		*out = INTAKE_KEYGEN_AUTO;
	else if (strcmp(v, "device") == 0)
		*out = INTAKE_KEYGEN_DEVICE;
	else if (strcmp(v, "server") == 0)
		*out = INTAKE_KEYGEN_SERVER;
	else
		return ERR_INVALID;
	return 0;
}

/* A PIN: 6 to PIN_MAX decimal digits. */
static int
pin_ok(const char *p, size_t len)
{
	if (len < PIN_MIN || len > PIN_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (p[i] < '0' || p[i] > '9')
			return 0;
	return 1;
}

/* Wipes the PIN wherever the request held it: the raw body and the parsed
 * JSON string. */
static void
wipe_pin(struct req *rq)
{
	json_t *pin = json_object_get(rq->json, "pin");

	if (json_is_string(pin))
		OPENSSL_cleanse((char *)json_string_value(pin), json_string_length(pin));
	if (rq->body != NULL)
		OPENSSL_cleanse(rq->body, rq->len);
}

void
route_intake_enroll(struct server *s, struct req *rq)
{
	static const char *const keys[] = { "mac", "label_mac", "pin", "keygen", "owner",
		"groups", "replace", "name", NULL };
	struct intake_mgr *m = s->intake;
	struct ejob *j = NULL;
	uint8_t label[MAC_LEN];
	char why[240] = "", serial[33];
	json_t *mac, *lab, *pin, *keygen, *replace, *name;
	int r;

	if (!intake_ready(s, rq)) {
		wipe_pin(rq);
		return;
	}
	if ((r = json_only_keys(rq->json, keys, why, sizeof(why))) != 0)
		goto fail;
	mac = json_object_get(rq->json, "mac");
	lab = json_object_get(rq->json, "label_mac");
	pin = json_object_get(rq->json, "pin");
	keygen = json_object_get(rq->json, "keygen");
	replace = json_object_get(rq->json, "replace");
	name = json_object_get(rq->json, "name");
	r = ERR_INVALID;
	if (!json_is_string(mac)) {
		msg_set(why, sizeof(why), "\"mac\" (the address read over the air) is required.");
		goto fail;
	}
	if (!json_is_string(lab)) {
		msg_set(why, sizeof(why), "\"label_mac\" (the address printed on the device's "
		    "label, as the operator reads it) is required.");
		goto fail;
	}
	if (!json_is_string(pin) || !pin_ok(json_string_value(pin), json_string_length(pin))) {
		msg_set(why, sizeof(why), "\"pin\" must be the device's setup PIN: %d to %d digits.",
		    PIN_MIN, PIN_MAX);
		goto fail;
	}
	if (keygen != NULL && (!json_is_string(keygen))) {
		msg_set(why, sizeof(why), "\"keygen\" must be \"auto\", \"device\" or \"server\".");
		goto fail;
	}
	if (replace != NULL && !json_is_boolean(replace)) {
		msg_set(why, sizeof(why), "\"replace\" must be true or false.");
		goto fail;
	}
	if (name != NULL && (!json_is_string(name) || json_string_length(name) >= RADIO_NAME_MAX ||
	    (json_string_length(name) > 0 && optdata_check_name(json_string_value(name)) != 0))) {
		msg_set(why, sizeof(why), "\"name\" must be printable text under %d bytes.",
		    RADIO_NAME_MAX);
		goto fail;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		r = ERR_NOMEM;
		goto fail;
	}
	j->m = m;
	j->t0 = now_ns();
	j->deadline = j->t0 + m->job_max_ns;
	if ((r = mac_parse(json_string_value(mac), j->mac)) != 0) {
		msg_set(why, sizeof(why), "\"mac\" is not a valid unicast device address.");
		goto fail;
	}
	if ((r = mac_parse(json_string_value(lab), label)) != 0) {
		msg_set(why, sizeof(why), "\"label_mac\" is not a valid unicast device address.");
		goto fail;
	}
	if (memcmp(label, j->mac, MAC_LEN) != 0) {
		char a[MAC_STR_LEN], b[MAC_STR_LEN];
		mac_format(j->mac, a);
		mac_format(label, b);
		msg_set(why, sizeof(why), "The address read over the air (%s) is not the one on "
		    "the label (%s): this is not the device in hand. Nothing was started.", a, b);
		r = ERR_CONFLICT;
		log_warnx("enrollment refused: label %s, air %s", b, a);
		goto fail;
	}
	if ((r = keygen_parse(keygen ? json_string_value(keygen) : s->cfg->radio_keygen,
	    &j->keygen)) != 0) {
		msg_set(why, sizeof(why), "\"keygen\" must be \"auto\", \"device\" or \"server\".");
		goto fail;
	}
	if ((r = json_owner_groups(rq->json, &j->owner, j->groups, &j->ngroups, why,
	    sizeof(why))) != 0)
		goto fail;
	j->replace = replace != NULL && json_is_true(replace);
	if (name != NULL)
		snprintf(j->name, sizeof(j->name), "%s", json_string_value(name));
	if ((j->pin = OPENSSL_secure_zalloc(PIN_MAX + 1)) == NULL) {
		r = ERR_NOMEM;
		goto fail;
	}
	memcpy(j->pin, json_string_value(pin), json_string_length(pin));
	wipe_pin(rq);
	snprintf(j->actor, sizeof(j->actor), "%s", rq->actor);
	snprintf(j->request_id, sizeof(j->request_id), "%s", rq->id);
	snprintf(j->status, sizeof(j->status), "running");
	snprintf(j->step, sizeof(j->step), "link");

	pthread_mutex_lock(&m->mu);
	if (m->stopping || m->nrunning >= (size_t)s->cfg->radio_max_enrollments) {
		int stopping = m->stopping;
		pthread_mutex_unlock(&m->mu);
		r = ERR_UNAVAILABLE;
		if (stopping)
			msg_set(why, sizeof(why), "provd is stopping; retry on another instance or "
			    "once it is back.");
		else
			msg_set(why, sizeof(why), "%lld enrollments are already running; retry "
			    "shortly.", (long long)s->cfg->radio_max_enrollments);
		goto fail;
	}
	m->nrunning++;
	pthread_mutex_unlock(&m->mu);

	r = db_enroll_open(s->db, j->mac, intake_keygen_name(j->keygen), j->replace, j->actor,
	    rq->id, &j->id, serial);
	if (r != 0) {
		pthread_mutex_lock(&m->mu);
		m->nrunning--;
		pthread_mutex_unlock(&m->mu);
		if (r == ERR_CONFLICT && serial[0] != '\0')
			msg_set(why, sizeof(why), "The device already has an active certificate (%s); "
			    "set \"replace\": true to enroll it again.", serial);
		else if (r == ERR_CONFLICT)
			msg_set(why, sizeof(why), "The device is being enrolled already (job %lld).",
			    (long long)j->id);
		goto fail;
	}

	pthread_mutex_lock(&m->mu);
	j->next = m->jobs;
	m->jobs = j;
	if ((errno = pthread_create(&j->thread, NULL, job_main, j)) != 0) {
		m->jobs = j->next;
		m->nrunning--;
		pthread_mutex_unlock(&m->mu);
		log_warnx("cannot start an enrollment thread: %s", strerror(errno));
		(void)db_enroll_fail(s->db, j->id, "link", "provd could not start the job", NULL, 0,
		    j->actor, 0);
		r = ERR_UNAVAILABLE;
		goto fail;
	}
	req_reply_json(rq, 202, job_json(j));
	prune_finished(m);
	pthread_mutex_unlock(&m->mu);
	return;
fail:
	wipe_pin(rq);
	job_free(j);
	req_reply_error(rq, r, why[0] ? why : NULL);
}

void
route_intake_get(struct server *s, struct req *rq)
{
	struct intake_mgr *m = s->intake;
	const char *ws, *vs;
	int64_t id, wait_ms = 0, version = -1;
	struct ejob *j;
	struct waiter *w;

	if (!intake_ready(s, rq))
		return;
	ws = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "wait_ms");
	vs = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "version");
	if (parse_int64(rq->params[0], 1, INT64_MAX, &id) != 0) {
		req_reply_error(rq, ERR_INVALID, "The job id must be a positive integer.");
		return;
	}
	if ((ws != NULL && parse_int64(ws, 0, WAIT_MAX_MS, &wait_ms) != 0) ||
	    (vs != NULL && parse_int64(vs, 0, UINT32_MAX, &version) != 0)) {
		req_reply_error(rq, ERR_INVALID, "wait_ms must be 0 to 60000 and version a "
		    "number the job showed.");
		return;
	}
	pthread_mutex_lock(&m->mu);
	for (j = m->jobs; j != NULL && j->id != id; j = j->next)
		;
	if (j != NULL) {
		if (wait_ms == 0 || j->finished || (version >= 0 && j->version != version) ||
		    m->stopping || (w = calloc(1, sizeof(*w))) == NULL) {
			req_reply_json(rq, 200, job_json(j));
		} else {
			w->rq = rq;
			w->job = j;
			w->deadline = now_ns() + (uint64_t)wait_ms * 1000000u;
			w->next = m->waiters;
			req_suspend(rq);
			m->waiters = w;
			pthread_cond_broadcast(&m->cv);
		}
		pthread_mutex_unlock(&m->mu);
		return;
	}
	pthread_mutex_unlock(&m->mu);

	/* an older job, or one another provd ran */
	struct db_enroll_job dj;
	int r = db_enroll_get(s->db, id, &dj);
	if (r != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "No such enrollment job." : NULL);
		return;
	}
	req_reply_json(rq, 200, dbjob_json(&dj));
}

void
route_intake_scan(struct server *s, struct req *rq)
{
	static const char *const keys[] = { "timeout_ms", NULL };
	struct intake_mgr *m = s->intake;
	char why[160] = "";
	json_t *to;
	int64_t ms;
	struct waiter *w;

	if (!intake_ready(s, rq))
		return;
	if (json_only_keys(rq->json, keys, why, sizeof(why)) != 0) {
		req_reply_error(rq, ERR_INVALID, why);
		return;
	}
	to = json_object_get(rq->json, "timeout_ms");
	ms = s->cfg->radio_inquiry_ms;
	if (to != NULL && (!json_is_integer(to) || (ms = json_integer_value(to)) < 0 ||
	    ms > 60000)) {
		req_reply_error(rq, ERR_INVALID, "\"timeout_ms\" must be 0 to 60000.");
		return;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		req_reply_error(rq, ERR_NOMEM, NULL);
		return;
	}
	w->rq = rq;
	pthread_mutex_lock(&m->mu);
	if (m->stopping) {
		pthread_mutex_unlock(&m->mu);
		free(w);
		req_reply_error(rq, ERR_UNAVAILABLE, "provd is stopping.");
		return;
	}
	req_suspend(rq);
	w->next = m->scan_waiters;
	m->scan_waiters = w;
	if ((int)ms > m->scan_ms)
		m->scan_ms = (int)ms;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

/* ---------------------------------------------------------------------
 * The scanner and the timer.
 */
static void *
scanner_main(void *arg)
{
	struct intake_mgr *m = arg;
	struct radio_device *devs;

	if ((devs = calloc(RADIO_INQUIRY_MAX, sizeof(*devs))) == NULL) {
		log_warnx("scanner: out of memory");
		return NULL;
	}
	pthread_mutex_lock(&m->mu);
	for (;;) {
		while (!m->stopping && m->scan_waiters == NULL)
			pthread_cond_wait(&m->cv, &m->mu);
		if (m->stopping && m->scan_waiters == NULL)
			break;
		struct waiter *ws = m->scan_waiters;
		int ms = m->scan_ms, r = ERR_UNAVAILABLE;
		size_t n = 0;
		uint64_t t = now_ns();
		m->scan_waiters = NULL;
		m->scan_ms = 0;
		if (!m->stopping) {
			pthread_mutex_unlock(&m->mu);
			r = radio_inquire(m->radio, ms, devs, RADIO_INQUIRY_MAX, &n);
			pthread_mutex_lock(&m->mu);
		}
		log_info("inquiry: %zu devices in %.0f ms", n, (double)(now_ns() - t) / 1e6);
		while (ws != NULL) {
			struct waiter *w = ws;
			ws = w->next;
			if (r != 0) {
				/* whatever the radio said, it is the radio that failed */
				req_reply_error(w->rq, ERR_UNAVAILABLE, m->stopping ?
				    "provd is stopping." : "The radio could not search for devices.");
			} else {
				json_t *arr = json_array();
				for (size_t i = 0; arr != NULL && i < n; i++) {
					char mac[MAC_STR_LEN], cod[12];
					mac_format(devs[i].addr, mac);
					snprintf(cod, sizeof(cod), "0x%06x", devs[i].cod & 0xffffffu);
					json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:i}", "mac",
					    mac, "name", devs[i].name, "class", cod, "rssi", devs[i].rssi));
				}
				req_reply_json(w->rq, 200, json_pack("{s:o,s:s,s:i}", "devices", arr,
				    "backend", radio_backend(m->radio), "timeout_ms", ms));
			}
			req_complete(w->rq);
			free(w);
		}
	}
	pthread_mutex_unlock(&m->mu);
	free(devs);
	return NULL;
}

/* Jobs open longer than twice the longest enrollment belong to no live
 * provd (each ends its own by then). */
static int
reap_after_s(const struct intake_mgr *m)
{
	return (int)(2 * m->job_max_ns / 1000000000u) + 1;
}

/*
 * The timer thread: ends GET waits that time out, cuts the links of
 * enrollments past their deadline (their threads then fail them), and
 * every REAP_EVERY_NS fails the jobs a stopped provd left open.
 */
static void *
timer_main(void *arg)
{
	struct intake_mgr *m = arg;

	pthread_mutex_lock(&m->mu);
	while (!m->stopping) {
		uint64_t now = now_ns(), next = m->next_reap;
		struct waiter **pp = &m->waiters, *w;
		while ((w = *pp) != NULL) {
			if (w->deadline <= now) {
				*pp = w->next;
				req_reply_json(w->rq, 200, job_json(w->job));
				req_complete(w->rq);
				free(w);
				continue;
			}
			if (w->deadline < next)
				next = w->deadline;
			pp = &w->next;
		}
		for (struct ejob *j = m->jobs; j != NULL; j = j->next) {
			if (j->finished || j->cut)
				continue;
			if (j->deadline <= now && j->link != NULL && radio_link_fd(j->link) >= 0) {
				log_warnx("enrollment %lld has run for %.0f s: closing its link",
				    (long long)j->id, (double)(now - j->t0) / 1e9);
				shutdown(radio_link_fd(j->link), SHUT_RDWR);
				j->cut = 1;
			} else if (j->deadline > now && j->deadline < next) {
				next = j->deadline;
			}
		}
		if (now >= m->next_reap) {
			int n = 0;
			m->next_reap = now + REAP_EVERY_NS;
			pthread_mutex_unlock(&m->mu);
			if (db_enroll_reap(m->s->db, "provd", reap_after_s(m), &n) == 0 && n > 0)
				log_warnx("%d enrollment jobs left open by a stopped provd: failed, "
				    "their certificates recorded revoked", n);
			pthread_mutex_lock(&m->mu);
			continue;
		}
		struct timespec ts;
		uint64_t left = next > now ? next - now : 0;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)(left / 1000000000u);
		ts.tv_nsec += (long)(left % 1000000000u);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&m->cv, &m->mu, &ts);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

/* ---------------------------------------------------------------------
 * Start and stop.
 */
static int
load_chain(struct intake_mgr *m, const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;
	int r = 0;

	if (b == NULL)
		return ERR_NOMEM;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		unsigned char *der = NULL;
		int len = i2d_X509(x, &der);
		X509_free(x);
		if (len <= 0 || m->nchain == PROTO_MAX_CHAIN) {
			OPENSSL_free(der);
			r = len <= 0 ? ERR_CRYPTO : ERR_CONFIG;
			break;
		}
		if ((m->chain[m->nchain] = malloc((size_t)len)) == NULL) {
			OPENSSL_free(der);
			r = ERR_NOMEM;
			break;
		}
		memcpy(m->chain[m->nchain], der, (size_t)len);
		m->chainlen[m->nchain++] = (size_t)len;
		OPENSSL_free(der);
	}
	ERR_clear_error();
	BIO_free(b);
	if (r == 0 && m->nchain == 0)
		r = ERR_CONFIG;
	if (r == ERR_CONFIG)
		log_errx("the CA chain must hold 1 to %d certificates for devices", PROTO_MAX_CHAIN);
	return r;
}

static void
mgr_free(struct intake_mgr *m)
{
	for (size_t i = 0; i < m->nchain; i++)
		free(m->chain[i]);
	radio_close(m->radio);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cv);
	free(m);
}

int
intake_start(struct server *s)
{
	const struct config *cfg = s->cfg;
	struct radio_params rp = { 0 };
	struct intake_mgr *m;
	int r, reaped = 0;

	s->intake = NULL;
	if (cfg->radio_backend == NULL)
		return 0;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return ERR_NOMEM;
	m->s = s;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	rp.backend = cfg->radio_backend;
	rp.sim_dir = cfg->radio_sim_dir;
	rp.adapter = cfg->radio_adapter;
	if ((r = radio_open(&rp, &m->radio)) != 0) {
		log_errx("cannot open the %s radio: %s", cfg->radio_backend, provd_strerror(r));
		mgr_free(m);
		return r;
	}
	if ((r = load_chain(m, s->chain_pem)) != 0) {
		mgr_free(m);
		return r;
	}
	m->job_max_ns = (uint64_t)cfg->radio_timeout_ms * JOB_MAX_STEPS * 1000000u;
	m->next_reap = now_ns() + REAP_EVERY_NS;
	/* jobs older than any enrollment may run belong to a provd that stopped */
	if ((r = db_enroll_reap(s->db, "provd", reap_after_s(m), &reaped)) != 0) {
		mgr_free(m);
		return r;
	}
	if (reaped > 0)
		log_warnx("%d enrollment jobs were left running by a stopped provd; marked failed",
		    reaped);
	if ((errno = pthread_create(&m->scanner, NULL, scanner_main, m)) != 0) {
		log_warnx("cannot start the scanner: %s", strerror(errno));
		mgr_free(m);
		return ERR_INTERNAL;
	}
	if ((errno = pthread_create(&m->timer, NULL, timer_main, m)) != 0) {
		log_warnx("cannot start the wait timer: %s", strerror(errno));
		pthread_mutex_lock(&m->mu);
		m->stopping = 1;
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->mu);
		pthread_join(m->scanner, NULL);
		mgr_free(m);
		return ERR_INTERNAL;
	}
	log_info("intake over the %s radio ready (at most %lld enrollments at once)",
	    radio_backend(m->radio), (long long)cfg->radio_max_enrollments);
	s->intake = m;
	return 0;
}

void
intake_stop(struct intake_mgr *m)
{
	struct ejob *j, *all;
	struct waiter *w;

	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	m->stopping = 1;
	/* running enrollments: their links go down, they fail and end */
	for (j = m->jobs; j != NULL; j = j->next)
		if (!j->finished && j->link != NULL && radio_link_fd(j->link) >= 0)
			shutdown(radio_link_fd(j->link), SHUT_RDWR);
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	pthread_join(m->scanner, NULL);
	pthread_join(m->timer, NULL);

	pthread_mutex_lock(&m->mu);
	/* a request may be joining finished threads: let it end first */
	while (m->pruning > 0)
		pthread_cond_wait(&m->cv, &m->mu);
	all = m->jobs;
	m->jobs = NULL;
	pthread_mutex_unlock(&m->mu);
	for (j = all; j != NULL; j = j->next)
		if (!j->joined) {
			pthread_join(j->thread, NULL);
			j->joined = 1;
		}
	/* waits left after the jobs ended */
	pthread_mutex_lock(&m->mu);
	while ((w = m->waiters) != NULL) {
		m->waiters = w->next;
		req_reply_json(w->rq, 200, job_json(w->job));
		req_complete(w->rq);
		free(w);
	}
	pthread_mutex_unlock(&m->mu);
	while ((j = all) != NULL) {
		all = j->next;
		job_free(j);
	}
	mgr_free(m);
}
