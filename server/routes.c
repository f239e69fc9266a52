/*
 * routes.c: the REST routes of provd — issuance from a CSR, certificate
 * look-up, revocation, the CRL, health, metrics and audit verification.
 * Each route checks its input completely before anything is signed or
 * written.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>

#include "server/server_int.h"

const struct route routes_table[] = {
	{ "GET", "/v1/health", route_health, 0, 0 },
	{ "GET", "/metrics", route_metrics, 0, 0 },
	{ "POST", "/v1/certificates", route_cert_issue, ROLES_ISSUE, 1 },
	{ "GET", "/v1/certificates/{}", route_cert_get, ROLES_READ, 0 },
	{ "POST", "/v1/certificates/{}/revoke", route_cert_revoke, ROLES_REVOKE, 1 },
	{ "POST", "/v1/devices/{}/revoke", route_device_revoke, ROLES_REVOKE, 1 },
	{ "GET", "/v1/crl", route_crl, 0, 0 },
	{ "POST", "/v1/audit/verify", route_audit_verify, ROLES_AUDIT, 0 },
	{ "POST", "/v1/intake/scan", route_intake_scan, ROLES_ISSUE, 1 },
	{ "POST", "/v1/intake/enrollments", route_intake_enroll, ROLES_ISSUE, 1 },
	{ "GET", "/v1/intake/enrollments/{}", route_intake_get, ROLES_READ, 0 },
	{ "POST", "/v1/authorize", route_authorize, ROLES_AUTHORIZE, 1 },
	{ "POST", "/v1/authorize/batch", route_authorize_batch, ROLES_AUTHORIZE, 1 },
	{ "GET", "/v1/policy", route_policy_get, ROLES_READ | ROLES_POLICY, 0 },
	{ "POST", "/v1/resources", route_resource_add, ROLES_POLICY, 1 },
	{ "DELETE", "/v1/resources/{}", route_resource_delete, ROLES_POLICY, 0 },
	{ "POST", "/v1/rules", route_rule_add, ROLES_POLICY, 1 },
	{ "DELETE", "/v1/rules/{}", route_rule_delete, ROLES_POLICY, 0 },
	{ "POST", "/v1/groups/{}/devices", route_group_add_device, ROLES_POLICY, 1 },
	{ "DELETE", "/v1/groups/{}/devices/{}", route_group_del_device, ROLES_POLICY, 0 },
	{ "POST", "/v1/groups/{}/users", route_group_add_user, ROLES_POLICY, 1 },
	{ "DELETE", "/v1/groups/{}/users/{}", route_group_del_user, ROLES_POLICY, 0 },
	/* OCSP (RFC 6960): public; POST bodies are DER, not JSON */
	{ "GET", "/ocsp/{*}", route_ocsp_get, 0, 0 },
	{ "POST", "/ocsp", route_ocsp_post, 0, 0 },
	{ "POST", "/v1/directory/resync", route_directory_resync, ROLE_BIT(DB_ROLE_ADMIN), 0 },
	{ "GET", "/v1/directory/status", route_directory_status, ROLES_READ, 0 },
	/* renewal: the device proves itself with its current certificate */
	{ "POST", "/v1/renew", route_renew, 0, 1 },
	{ "GET", "/v1/renew/{}", route_renew_status, 0, 0 },
	{ "POST", "/v1/devices/{}/renew-request", route_device_renew_request, ROLES_REVOKE, 0 },
	{ "PUT", "/v1/groups/{}/validity", route_group_validity, ROLES_POLICY, 1 },
};
const size_t routes_count = sizeof(routes_table) / sizeof(routes_table[0]);

static const char *const reason_names[] = {
	"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
	"superseded", "cessationOfOperation", "certificateHold", NULL,
	"removeFromCRL", "privilegeWithdrawn", "aACompromise",
};
#define NREASONS (sizeof(reason_names) / sizeof(reason_names[0]))

static int
reason_parse(const char *s, int *out)
{
	for (size_t i = 0; i < NREASONS; i++)
		if (reason_names[i] != NULL && i != 8 && strcmp(reason_names[i], s) == 0) {
			*out = (int)i;
			return 0;
		}
	return ERR_INVALID;
}

static const char *
reason_name(int r)
{
	return r >= 0 && (size_t)r < NREASONS && reason_names[r] ? reason_names[r] : "unspecified";
}

static void
fmt_time(int64_t t, char *out, size_t len)
{
	time_format_rfc3339((time_t)t, out, len);
}

/* The JSON description of a certificate row. */
static json_t *
cert_json(const struct db_cert *c)
{
	char mac[MAC_STR_LEN], fp[65], nb[32], na[32], ia[32];
	char *pem = NULL;
	json_t *o;

	mac_format(c->mac, mac);
	hex_encode(c->fingerprint, 32, fp);
	fmt_time(c->not_before, nb, sizeof(nb));
	fmt_time(c->not_after, na, sizeof(na));
	fmt_time(c->issued_at, ia, sizeof(ia));
	if (ca_der_to_pem("CERTIFICATE", c->der, c->derlen, &pem) != 0)
		return NULL;
	o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "serial", c->serial_hex,
	    "mac", mac, "status", db_cert_status_name(c->status),
	    "fingerprint_sha256", fp, "not_before", nb, "not_after", na,
	    "issued_at", ia, "certificate", pem);
	free(pem);
	if (o == NULL)
		return NULL;
	if (c->owner != NULL)
		json_object_set_new(o, "owner", json_string(c->owner));
	if (c->status == DB_CERT_REVOKED) {
		char ra[32];
		fmt_time(c->revoked_at, ra, sizeof(ra));
		json_object_set_new(o, "revoked_at", json_string(ra));
		json_object_set_new(o, "revocation_reason", json_string(reason_name(c->reason)));
	}
	return o;
}

/* ---------------------------------------------------------------------
 * GET /v1/health
 */
void
route_health(struct server *s, struct req *rq)
{
	int db_ok = db_ping(s->db) == 0;
	pid_t pid = ca_signer_pid(s->signer);
	int signer_ok = pid > 0 && kill(pid, 0) == 0;

	req_reply_json(rq, db_ok && signer_ok ? 200 : 503,
	    json_pack("{s:s,s:s,s:s}", "status", db_ok && signer_ok ? "ok" : "degraded",
	    "database", db_ok ? "ok" : "unavailable", "signer", signer_ok ? "ok" : "unavailable"));
}

/* ---------------------------------------------------------------------
 * GET /metrics (Prometheus text format)
 */
static const double lat_bounds_ms[] = { 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000 };

void
route_metrics(struct server *s, struct req *rq)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct metrics *m = &s->m;

	if (f == NULL) {
		req_reply_error(rq, ERR_NOMEM, NULL);
		return;
	}
	fprintf(f, "# HELP provd_http_responses_total HTTP responses by status class.\n"
	    "# TYPE provd_http_responses_total counter\n"
	    "provd_http_responses_total{class=\"2xx\"} %llu\n"
	    "provd_http_responses_total{class=\"4xx\"} %llu\n"
	    "provd_http_responses_total{class=\"5xx\"} %llu\n",
	    atomic_load(&m->http_2xx), atomic_load(&m->http_4xx), atomic_load(&m->http_5xx));
	fprintf(f, "# HELP provd_certificates_issued_total Certificates issued and recorded.\n"
	    "# TYPE provd_certificates_issued_total counter\n"
	    "provd_certificates_issued_total %llu\n"
	    "# HELP provd_issue_failures_total Issuance requests that failed after validation.\n"
	    "# TYPE provd_issue_failures_total counter\n"
	    "provd_issue_failures_total %llu\n"
	    "# HELP provd_certificates_revoked_total Certificates revoked.\n"
	    "# TYPE provd_certificates_revoked_total counter\n"
	    "provd_certificates_revoked_total %llu\n"
	    "# HELP provd_crl_generated_total CRLs signed.\n"
	    "# TYPE provd_crl_generated_total counter\n"
	    "provd_crl_generated_total %llu\n"
	    "# HELP provd_enrollments_total Enrollments over the radio by outcome.\n"
	    "# TYPE provd_enrollments_total counter\n"
	    "provd_enrollments_total{outcome=\"succeeded\"} %llu\n"
	    "provd_enrollments_total{outcome=\"failed\"} %llu\n",
	    atomic_load(&m->issued), atomic_load(&m->issue_failed),
	    atomic_load(&m->revoked), atomic_load(&m->crl_generated),
	    atomic_load(&m->enrolled), atomic_load(&m->enroll_failed));
	fprintf(f, "# HELP provd_issue_duration_seconds Issuance latency, request to commit.\n"
	    "# TYPE provd_issue_duration_seconds histogram\n");
	unsigned long long cum = 0;
	for (size_t i = 0; i < sizeof(lat_bounds_ms) / sizeof(lat_bounds_ms[0]); i++) {
		cum += atomic_load(&m->issue_lat_buckets[i]);
		fprintf(f, "provd_issue_duration_seconds_bucket{le=\"%g\"} %llu\n",
		    lat_bounds_ms[i] / 1000.0, cum);
	}
	fprintf(f, "provd_issue_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "provd_issue_duration_seconds_sum %.6f\n"
	    "provd_issue_duration_seconds_count %llu\n",
	    atomic_load(&m->issue_lat_count),
	    (double)atomic_load(&m->issue_lat_sum_us) / 1e6,
	    atomic_load(&m->issue_lat_count));
	fclose(f);
	req_reply_raw(rq, 200, "text/plain; version=0.0.4", buf, len);
}

static void
observe_issue_latency(struct server *s, uint64_t t0)
{
	uint64_t us = (now_ns() - t0) / 1000;
	size_t i;

	for (i = 0; i < sizeof(lat_bounds_ms) / sizeof(lat_bounds_ms[0]); i++)
		if ((double)us <= lat_bounds_ms[i] * 1000.0) {
			atomic_fetch_add(&s->m.issue_lat_buckets[i], 1);
			break;
		}
	atomic_fetch_add(&s->m.issue_lat_sum_us, us);
	atomic_fetch_add(&s->m.issue_lat_count, 1);
}

/*
 * Has the signer make a device certificate for mac over spki, with owner and
 * groups in the optional-data extension, and fills its serial, fingerprint,
 * validity and certificate (*der, a new buffer) for recording.
 */
int
server_sign(struct server *s, const uint8_t mac[MAC_LEN], const uint8_t *spki, size_t spkilen,
    const char *owner, const char *const *groups, size_t ngroups, uint8_t **der,
    size_t *derlen, struct db_issue *it)
{
	const struct config *cfg = s->cfg;
	struct ca_issue_req ir = { 0 };
	struct optdata od = { 0 };
	uint8_t *odder = NULL;
	size_t odlen = 0;
	int r;

	*der = NULL;
	*derlen = 0;
	if (ngroups > OPTDATA_MAX_ITEMS)
		return ERR_INVALID;
	if (owner != NULL || ngroups > 0) {
		od.owner = (char *)owner;
		for (size_t i = 0; i < ngroups; i++)
			od.groups[i] = (char *)groups[i];
		od.ngroups = ngroups;
		if ((r = optdata_encode(&od, &odder, &odlen)) != 0)
			return r;
	}
	time_t now = time(NULL);
	memcpy(ir.mac, mac, MAC_LEN);
	if ((r = ca_serial_new(ir.serial)) != 0)
		goto out;
	ir.not_before = (int64_t)now - cfg->backdate_s;
	ir.not_after = (int64_t)now + cfg->validity_days * 86400;
	ir.spki = spki;
	ir.spkilen = spkilen;
	ir.optdata = odder;
	ir.optdatalen = odlen;
	if ((r = ca_signer_issue(s->signer, &ir, der, derlen)) != 0)
		goto out;
	memcpy(it->mac, mac, MAC_LEN);
	hex_encode(ir.serial, CA_SERIAL_LEN, it->serial_hex);
	ca_fingerprint(*der, *derlen, it->fingerprint);
	it->der = *der;
	it->derlen = *derlen;
	it->not_before = ir.not_before;
	it->not_after = ir.not_after;
out:
	free(odder);
	return r;
}

/* ---------------------------------------------------------------------
 * POST /v1/certificates: issue a device certificate from a CSR.
 */
struct issue_job {
	struct db_issue it;
	struct server *s;
	struct req *rq;
	uint8_t *der;
	size_t derlen;
	char *cert_pem;
	char *owner;
	char *groups[OPTDATA_MAX_ITEMS];
	const char *gptr[OPTDATA_MAX_ITEMS];
	size_t ngroups;
	char actor[64];
};

static void
issue_job_free(void *p)
{
	struct issue_job *j = p;

	if (j == NULL)
		return;
	free(j->der);
	free(j->cert_pem);
	free(j->owner);
	for (size_t i = 0; i < j->ngroups; i++)
		free(j->groups[i]);
	free(j);
}

/* Called from the writer thread once the issuance's transaction ended. */
static void
issue_done(struct db_issue *it, void *arg)
{
	struct issue_job *j = arg;
	struct req *rq = j->rq;
	struct server *s = j->s;
	(void)it;

	log_set_id(rq->id);
	if (j->it.result == 0) {
		char mac[MAC_STR_LEN], fp[65], nb[32], na[32];
		mac_format(j->it.mac, mac);
		hex_encode(j->it.fingerprint, 32, fp);
		fmt_time(j->it.not_before, nb, sizeof(nb));
		fmt_time(j->it.not_after, na, sizeof(na));
		req_reply_json(rq, 201, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}",
		    "serial", j->it.serial_hex, "mac", mac, "fingerprint_sha256", fp,
		    "not_before", nb, "not_after", na, "certificate", j->cert_pem,
		    "ca_chain", s->chain_pem));
		atomic_fetch_add(&s->m.issued, 1);
		dirsync_kick(s);
		observe_issue_latency(s, rq->t0);
		log_info("issued certificate %s for %s to \"%s\"", j->it.serial_hex, mac, j->actor);
	} else {
		atomic_fetch_add(&s->m.issue_failed, 1);
		if (j->it.result == ERR_CONFLICT)
			req_reply_error(rq, ERR_CONFLICT, "The device already has an active "
			    "certificate; set \"replace\": true to supersede it.");
		else
			req_reply_error(rq, j->it.result, NULL);
	}
	log_set_id(NULL);
	req_complete(rq);
}

/* Copies the optional "owner" and "groups" fields of body; on failure the
 * caller still frees what was copied. */
int
json_owner_groups(json_t *body, char **owner_out, char *groups_out[OPTDATA_MAX_ITEMS],
    size_t *ngroups, char *why, size_t whylen)
{
	json_t *owner = json_object_get(body, "owner");
	json_t *groups = json_object_get(body, "groups");
	size_t i;
	json_t *g;

	if (owner != NULL && !json_is_null(owner)) {
		if (!json_is_string(owner) || optdata_check_name(json_string_value(owner)) != 0) {
			snprintf(why, whylen, "\"owner\" must be a name of 1 to %d printable characters.",
			    OPTDATA_MAX_STR);
			return ERR_INVALID;
		}
		if ((*owner_out = strdup(json_string_value(owner))) == NULL)
			return ERR_NOMEM;
	}
	if (groups != NULL && !json_is_null(groups)) {
		if (!json_is_array(groups) || json_array_size(groups) > OPTDATA_MAX_ITEMS) {
			snprintf(why, whylen, "\"groups\" must be an array of at most %d names.",
			    OPTDATA_MAX_ITEMS);
			return ERR_INVALID;
		}
		json_array_foreach(groups, i, g) {
			if (!json_is_string(g) || optdata_check_name(json_string_value(g)) != 0) {
				snprintf(why, whylen, "Each group must be a name of 1 to %d printable characters.",
				    OPTDATA_MAX_STR);
				return ERR_INVALID;
			}
			for (size_t k = 0; k < *ngroups; k++)
				if (strcmp(groups_out[k], json_string_value(g)) == 0) {
					snprintf(why, whylen, "Group \"%.64s\" is listed twice.",
					    json_string_value(g));
					return ERR_INVALID;
				}
			if ((groups_out[*ngroups] = strdup(json_string_value(g))) == NULL)
				return ERR_NOMEM;
			(*ngroups)++;
		}
	}
	return 0;
}

void
route_cert_issue(struct server *s, struct req *rq)
{
	static const char *const keys[] = { "mac", "csr", "owner", "groups", "replace", NULL };
	struct issue_job *j = NULL;
	uint8_t *spki = NULL;
	size_t spkilen = 0;
	char why[200] = "";
	json_t *mac, *csr, *replace;
	int r;

	if ((r = json_only_keys(rq->json, keys, why, sizeof(why))) != 0)
		goto fail;
	mac = json_object_get(rq->json, "mac");
	csr = json_object_get(rq->json, "csr");
	replace = json_object_get(rq->json, "replace");
	if (!json_is_string(mac)) {
		r = ERR_INVALID;
		snprintf(why, sizeof(why), "\"mac\" (the device address) is required.");
		goto fail;
	}
	if (!json_is_string(csr)) {
		r = ERR_INVALID;
		snprintf(why, sizeof(why), "\"csr\" (a PEM certificate signing request) is required.");
		goto fail;
	}
	if (replace != NULL && !json_is_boolean(replace)) {
		r = ERR_INVALID;
		snprintf(why, sizeof(why), "\"replace\" must be true or false.");
		goto fail;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		r = ERR_NOMEM;
		goto fail;
	}
	rq->priv = j;
	rq->priv_free = issue_job_free;
	if ((r = mac_parse(json_string_value(mac), j->it.mac)) != 0)
		goto fail;
	if ((r = json_owner_groups(rq->json, &j->owner, j->groups, &j->ngroups, why,
	    sizeof(why))) != 0)
		goto fail;
	for (size_t i = 0; i < j->ngroups; i++)
		j->gptr[i] = j->groups[i];
	if ((r = ca_csr_check((const uint8_t *)json_string_value(csr), json_string_length(csr),
	    &s->policy, &spki, &spkilen, why, sizeof(why))) != 0)
		goto fail;
	why[0] = '\0';

	snprintf(j->actor, sizeof(j->actor), "%s", rq->actor);
	if ((r = server_sign(s, j->it.mac, spki, spkilen, j->owner, j->gptr, j->ngroups,
	    &j->der, &j->derlen, &j->it)) != 0)
		goto fail;
	if ((r = ca_der_to_pem("CERTIFICATE", j->der, j->derlen, &j->cert_pem)) != 0)
		goto fail;
	j->it.owner = j->owner;
	j->it.groups = j->gptr;
	j->it.ngroups = j->ngroups;
	j->it.replace = replace != NULL && json_is_true(replace);
	j->it.actor = j->actor;
	j->it.request_id = rq->id;
	j->it.done = issue_done;
	j->it.arg = j;
	j->s = s;
	j->rq = rq;
	free(spki);
	/* nothing leaves provd before its row commits: wait for the writer */
	req_suspend(rq);
	if ((r = db_writer_submit(s->writer, &j->it)) != 0) {
		req_reply_error(rq, r, NULL);
		req_complete(rq);
	}
	return;
fail:
	free(spki);
	if (r != ERR_INVALID && r != ERR_BAD_MAC && r != ERR_BAD_CSR &&
	    r != ERR_KEY_POLICY && r != ERR_TOO_BIG)
		log_warnx("issuance failed: %s", provd_strerror(r));
	req_reply_error(rq, r, why[0] ? why : NULL);
}

/* ---------------------------------------------------------------------
 * GET /v1/certificates/{serial}
 */
static int
serial_param(const char *in, char out[CA_SERIAL_HEX])
{
	uint8_t b[CA_SERIAL_LEN];

	if (hex_decode(in, b, sizeof(b)) != 0)
		return ERR_INVALID;
	hex_encode(b, sizeof(b), out);
	return 0;
}

void
route_cert_get(struct server *s, struct req *rq)
{
	struct db_cert c = { 0 };
	char serial[CA_SERIAL_HEX];
	int r;

	if (serial_param(rq->params[0], serial) != 0) {
		req_reply_error(rq, ERR_INVALID, "A serial number is 32 hexadecimal digits.");
		return;
	}
	if ((r = db_cert_by_serial(s->db, serial, &c)) != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "No certificate has this serial number." : NULL);
		return;
	}
	json_t *o = cert_json(&c);
	db_cert_clear(&c);
	if (o == NULL)
		req_reply_error(rq, ERR_INTERNAL, NULL);
	else
		req_reply_json(rq, 200, o);
}

/* ---------------------------------------------------------------------
 * POST /v1/certificates/{serial}/revoke, POST /v1/devices/{mac}/revoke
 */
static void
revoke_serial(struct server *s, struct req *rq, const char *serial)
{
	static const char *const keys[] = { "reason", NULL };
	struct db_cert c = { 0 };
	char why[160] = "";
	int reason = 0, r;
	json_t *jr;

	if ((r = json_only_keys(rq->json, keys, why, sizeof(why))) != 0) {
		req_reply_error(rq, r, why);
		return;
	}
	jr = json_object_get(rq->json, "reason");
	if (jr != NULL && (!json_is_string(jr) || reason_parse(json_string_value(jr), &reason) != 0)) {
		req_reply_error(rq, ERR_INVALID, "\"reason\" must be an RFC 5280 reason name, "
		    "e.g. keyCompromise, affiliationChanged, superseded, cessationOfOperation.");
		return;
	}
	if ((r = db_cert_revoke(s->db, serial, reason, rq->actor, rq->id, &c)) != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "No certificate has this serial number." :
		    r == ERR_CONFLICT ? "The certificate is not active (already revoked or superseded)." : NULL);
		return;
	}
	atomic_store(&s->crl_stale, 1);
	atomic_fetch_add(&s->m.revoked, 1);
	/* this instance at once; the others through the notification */
	ocsp_invalidate(s, serial);
	dirsync_kick(s);
	log_info("revoked certificate %s (%s) by \"%s\"", serial, reason_name(reason), rq->actor);
	json_t *o = cert_json(&c);
	db_cert_clear(&c);
	if (o == NULL)
		req_reply_error(rq, ERR_INTERNAL, NULL);
	else
		req_reply_json(rq, 200, o);
}

void
route_cert_revoke(struct server *s, struct req *rq)
{
	char serial[CA_SERIAL_HEX];

	if (serial_param(rq->params[0], serial) != 0) {
		req_reply_error(rq, ERR_INVALID, "A serial number is 32 hexadecimal digits.");
		return;
	}
	revoke_serial(s, rq, serial);
}

void
route_device_revoke(struct server *s, struct req *rq)
{
	struct db_cert c = { 0 };
	uint8_t mac[MAC_LEN];
	char serial[CA_SERIAL_HEX];
	int r;

	if (mac_parse(rq->params[0], mac) != 0) {
		req_reply_error(rq, ERR_BAD_MAC, NULL);
		return;
	}
	if ((r = db_cert_active_by_mac(s->db, mac, &c)) != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "The device has no active certificate." : NULL);
		return;
	}
	snprintf(serial, sizeof(serial), "%s", c.serial_hex);
	db_cert_clear(&c);
	revoke_serial(s, rq, serial);
}

/* ---------------------------------------------------------------------
 * GET /v1/crl[?format=pem]: DER by default. Regenerated after a revocation
 * through this instance, and at most CRL_CACHE_NS old otherwise.
 */
#define CRL_CACHE_NS (5ull * 1000000000ull)

static int
crl_make(struct server *s, uint8_t **der, size_t *len)
{
	struct db_revoked *list = NULL;
	struct ca_revoked *cl = NULL;
	struct ca_crl_req req = { 0 };
	size_t n = 0;
	int64_t number = 0;
	int r;

	if ((r = db_crl_entries(s->db, &list, &n, &number)) != 0)
		return r;
	if (n > 0 && (cl = calloc(n, sizeof(*cl))) == NULL) {
		free(list);
		return ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		memcpy(cl[i].serial, list[i].serial, CA_SERIAL_LEN);
		cl[i].revoked_at = list[i].revoked_at;
		cl[i].reason = list[i].reason;
	}
	free(list);
	req.crl_number = number;
	req.this_update = (int64_t)time(NULL);
	req.next_update = req.this_update + s->cfg->crl_next_update_s;
	req.revoked = cl;
	req.nrevoked = n;
	r = ca_signer_crl(s->signer, &req, der, len);
	free(cl);
	if (r == 0)
		atomic_fetch_add(&s->m.crl_generated, 1);
	return r;
}

void
route_crl(struct server *s, struct req *rq)
{
	const char *fmt = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "format");
	uint8_t *der = NULL;
	size_t len = 0;
	int r = 0;

	if (fmt != NULL && strcmp(fmt, "pem") != 0 && strcmp(fmt, "der") != 0) {
		req_reply_error(rq, ERR_INVALID, "format must be der or pem.");
		return;
	}
	pthread_mutex_lock(&s->crl_mu);
	if (s->crl_der == NULL || atomic_exchange(&s->crl_stale, 0) ||
	    now_ns() - s->crl_made_ns > CRL_CACHE_NS) {
		uint8_t *fresh = NULL;
		size_t flen = 0;
		if ((r = crl_make(s, &fresh, &flen)) == 0) {
			free(s->crl_der);
			s->crl_der = fresh;
			s->crl_len = flen;
			s->crl_made_ns = now_ns();
		} else
			atomic_store(&s->crl_stale, 1);
	}
	if (r == 0 && (der = malloc(s->crl_len)) != NULL) {
		memcpy(der, s->crl_der, s->crl_len);
		len = s->crl_len;
	}
	pthread_mutex_unlock(&s->crl_mu);
	if (r != 0 || der == NULL) {
		req_reply_error(rq, r ? r : ERR_NOMEM, NULL);
		return;
	}
	if (fmt != NULL && strcmp(fmt, "pem") == 0) {
		char *pem = NULL;
		r = ca_der_to_pem("X509 CRL", der, len, &pem);
		free(der);
		if (r != 0) {
			req_reply_error(rq, r, NULL);
			return;
		}
		req_reply_raw(rq, 200, "application/x-pem-file", pem, strlen(pem));
		return;
	}
	req_reply_raw(rq, 200, "application/pkix-crl", (char *)der, len);
}

/* ---------------------------------------------------------------------
 * POST /v1/audit/verify
 */
void
route_audit_verify(struct server *s, struct req *rq)
{
	struct db_audit_report rep = { 0 };
	int r;

	if ((r = db_audit_verify(s->db, &rep)) != 0) {
		req_reply_error(rq, r, NULL);
		return;
	}
	if (rep.first_bad == 0)
		req_reply_json(rq, 200, json_pack("{s:b,s:I}", "ok", 1, "rows", (json_int_t)rep.rows));
	else {
		log_warnx("audit chain broken at seq %lld: %s", (long long)rep.first_bad, rep.why);
		req_reply_json(rq, 200, json_pack("{s:b,s:I,s:I,s:s}", "ok", 0,
		    "rows", (json_int_t)rep.rows, "first_bad_seq", (json_int_t)rep.first_bad,
		    "why", rep.why));
	}
}
