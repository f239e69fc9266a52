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
	{ "POST", "/v1/certificates/{}/unrevoke", route_cert_unrevoke, ROLES_REVOKE, 0 },
	{ "POST", "/v1/devices/{}/unrevoke", route_device_unrevoke, ROLES_REVOKE, 0 },
	{ "GET", "/v1/crl", route_crl, 0, 0 },
	{ "GET", "/v1/crl/delta", route_crl_delta, 0, 0 },
	{ "POST", "/v1/audit/verify", route_audit_verify, ROLES_AUDIT, 0 },
	{ "POST", "/v1/intake/scan", route_intake_scan, ROLES_ISSUE, 1 },
	{ "POST", "/v1/intake/enrollments", route_intake_enroll, ROLES_ISSUE, 2 },
	{ "GET", "/v1/intake/enrollments/{}", route_intake_get, ROLES_READ, 0 },
	{ "POST", "/v1/authorize", route_authorize, ROLES_AUTHORIZE, 1 },
	{ "POST", "/v1/authorize/batch", route_authorize_batch, ROLES_AUTHORIZE, 1 },
	{ "POST", "/v1/authorize/radius", route_authorize_radius, ROLES_AUTHORIZE, 1 },
	{ "GET", "/v1/policy", route_policy_get, ROLES_READ | ROLES_POLICY, 0 },
	{ "POST", "/v1/resources", route_resource_add, ROLES_POLICY, 1 },
	{ "DELETE", "/v1/resources/{}", route_resource_delete, ROLES_POLICY, 0 },
	{ "POST", "/v1/rules", route_rule_add, ROLES_POLICY, 1 },
	{ "PUT", "/v1/rules/{}", route_rule_replace, ROLES_POLICY, 1 },
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
	/* devices, users and groups: reading and ownership (routes_devices.c) */
	{ "GET", "/v1/devices", route_device_list, ROLES_READ | ROLES_POLICY, 0 },
	{ "GET", "/v1/devices/{}", route_device_get, ROLES_READ | ROLES_POLICY, 0 },
	{ "PUT", "/v1/devices/{}/owner", route_device_owner, ROLES_POLICY, 1 },
	{ "GET", "/v1/users", route_user_list, ROLES_READ | ROLES_POLICY, 0 },
	{ "DELETE", "/v1/users/{}", route_user_delete, ROLES_POLICY, 0 },
	{ "GET", "/v1/groups", route_group_list, ROLES_READ | ROLES_POLICY, 0 },
	{ "GET", "/v1/groups/{}", route_group_get, ROLES_READ | ROLES_POLICY, 0 },
	/* the web console's reads (routes_console.c; decisions and a tried
	 * question in authz.c) */
	{ "GET", "/v1/audit", route_audit_list, ROLES_READ | ROLES_AUDIT, 0 },
	{ "GET", "/v1/stats", route_stats, ROLES_READ | ROLES_POLICY, 0 },
	{ "GET", "/v1/decisions", route_decisions, ROLES_READ | ROLES_POLICY, 0 },
	{ "POST", "/v1/authorize/try", route_authorize_try, ROLES_READ | ROLES_POLICY, 1 },
	/* console sessions and the console's files (console.c): logging in
	 * is public, its body holds a password */
	{ "POST", "/v1/session", route_session_login, 0, 2 },
	{ "GET", "/v1/session", route_session_get, ROLES_READ, 0 },
	{ "DELETE", "/v1/session", route_session_logout, ROLES_READ, 0 },
	{ "GET", "/console", route_console_redirect, 0, 0 },
	{ "GET", "/console/", route_console_index, 0, 0 },
	{ "GET", "/console/{*}", route_console_file, 0, 0 },
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
	/* an external CA is not asked here: "provd ca status" does that */
	int signer_ok = s->cmp != NULL || (pid > 0 && kill(pid, 0) == 0);

	req_reply_json(rq, db_ok && signer_ok ? 200 : 503,
	    json_pack("{s:s,s:s,s:s}", "status", db_ok && signer_ok ? "ok" : "degraded",
	    "database", db_ok ? "ok" : "unavailable", "signer", s->cmp != NULL ? "external" :
	    signer_ok ? "ok" : "unavailable"));
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
 * Has the signer make a device certificate for mac over spki, with owner,
 * groups and roles in the optional-data extension, and fills its serial,
 * fingerprint, validity and certificate (*der, a new buffer) for recording.
 */
int
server_cmp_issue(struct server *s, const uint8_t mac[MAC_LEN], const uint8_t *csr,
    size_t csrlen, uint8_t **der, size_t *derlen, struct db_issue *it, char *why,
    size_t whylen)
{
	int r;

	if ((r = ca_cmp_enroll(s->cmp, csr, csrlen, mac, der, derlen, why, whylen)) != 0) {
		log_warnx("external CA: %s", why);
		return r;
	}
	if (ca_cert_serial_hex(*der, *derlen, it->serial_hex) != 0 ||
	    ca_cert_validity(*der, *derlen, &it->not_before, &it->not_after) != 0) {
		msg_set(why, whylen, "the external CA's certificate cannot be recorded");
		free(*der);
		*der = NULL;
		*derlen = 0;
		return ERR_SIGNER;
	}
	memcpy(it->mac, mac, MAC_LEN);
	ca_fingerprint(*der, *derlen, it->fingerprint);
	it->der = *der;
	it->derlen = *derlen;
	return 0;
}

int
server_external_ca(struct server *s, struct req *rq)
{
	if (s->cmp == NULL)
		return 0;
	req_reply_error(rq, ERR_NOT_FOUND, "This provd uses an external CA (ca.mode cmp): "
	    "revocation status (CRLs, OCSP) and holds are that CA's.");
	return 1;
}

int
server_sign(struct server *s, const uint8_t mac[MAC_LEN], const uint8_t *spki, size_t spkilen,
    const char *owner, const char *const *groups, size_t ngroups,
    const char *const *roles, size_t nroles, const uint8_t *csr, size_t csrlen,
    uint8_t **der, size_t *derlen, struct db_issue *it, char *why, size_t whylen)
{
	const struct config *cfg = s->cfg;
	struct ca_issue_req ir = { 0 };
	struct optdata od = { 0 };
	uint8_t *odder = NULL;
	size_t odlen = 0;
	int r;

	*der = NULL;
	*derlen = 0;
	if (ngroups > OPTDATA_MAX_ITEMS || nroles > OPTDATA_MAX_ITEMS)
		return ERR_INVALID;
	if (s->cmp != NULL)	/* owner and groups stay provd's: the CA has its profile */
		return server_cmp_issue(s, mac, csr, csrlen, der, derlen, it, why, whylen);
	if (owner != NULL || ngroups > 0 || nroles > 0) {
		od.owner = (char *)owner;
		for (size_t i = 0; i < ngroups; i++)
			od.groups[i] = (char *)groups[i];
		od.ngroups = ngroups;
		for (size_t i = 0; i < nroles; i++)
			od.roles[i] = (char *)roles[i];
		od.nroles = nroles;
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
	const char *roles[OPTDATA_MAX_ITEMS];	/* static strings (known roles) */
	size_t nroles;
	char actor[64];
	/* offloaded (server_offload): the writer signals here instead of
	 * resuming the request, which the offload thread does */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
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
		json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}",
		    "serial", j->it.serial_hex, "mac", mac, "fingerprint_sha256", fp,
		    "not_before", nb, "not_after", na, "certificate", j->cert_pem,
		    "ca_chain", s->chain_pem);
		if (o != NULL && j->nroles > 0) {
			json_t *ro = json_array();
			for (size_t i = 0; i < j->nroles; i++)
				json_array_append_new(ro, json_string(j->roles[i]));
			json_object_set_new(o, "roles", ro);
		}
		req_reply_json(rq, 201, o);
		atomic_fetch_add(&s->m.issued, 1);
		dirsync_kick(s);
		observe_issue_latency(s, rq->t0);
		log_info("issued certificate %s for %s to \"%s\"%s%s", j->it.serial_hex, mac,
		    j->actor, j->nroles > 0 ? " with role " : "", j->nroles > 0 ? j->roles[0] : "");
	} else {
		atomic_fetch_add(&s->m.issue_failed, 1);
		if (j->it.result == ERR_CONFLICT)
			req_reply_error(rq, ERR_CONFLICT, "The device already has an active "
			    "certificate; set \"replace\": true to supersede it.");
		else
			req_reply_error(rq, j->it.result, NULL);
	}
	log_set_id(NULL);
	if (rq->offloaded) {
		pthread_mutex_lock(&j->mu);
		j->done = 1;
		pthread_cond_signal(&j->cv);
		pthread_mutex_unlock(&j->mu);
		return;
	}
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

/* The optional "roles" of an issuance: distinct known role names, stored
 * as pointers to our own constants. */
static int
json_roles(json_t *body, const char *roles_out[OPTDATA_MAX_ITEMS], size_t *nroles,
    char *why, size_t whylen)
{
	static const char *const known[] = { OPTDATA_ROLE_ACCESS_POINT, NULL };
	json_t *roles = json_object_get(body, "roles"), *v;
	size_t i, k;

	*nroles = 0;
	if (roles == NULL || json_is_null(roles))
		return 0;
	if (!json_is_array(roles)) {
		snprintf(why, whylen, "\"roles\" must be an array of role names.");
		return ERR_INVALID;
	}
	json_array_foreach(roles, i, v) {
		const char *name = json_string_value(v);
		for (k = 0; name != NULL && known[k] != NULL; k++)
			if (strcmp(known[k], name) == 0)
				break;
		if (name == NULL || known[k] == NULL) {
			snprintf(why, whylen, "Unknown role \"%.64s\"; the one known role is \"%s\".",
			    name ? name : "(not a string)", OPTDATA_ROLE_ACCESS_POINT);
			return ERR_INVALID;
		}
		for (size_t m = 0; m < *nroles; m++)
			if (roles_out[m] == known[k]) {
				snprintf(why, whylen, "Role \"%s\" is listed twice.", known[k]);
				return ERR_INVALID;
			}
		roles_out[(*nroles)++] = known[k];
	}
	return 0;
}

void
route_cert_issue(struct server *s, struct req *rq)
{
	static const char *const keys[] = { "mac", "csr", "owner", "groups", "roles", "replace",
		NULL };
	struct issue_job *j = NULL;
	uint8_t *spki = NULL;
	size_t spkilen = 0;
	char why[200] = "";
	json_t *mac, *csr, *replace;
	int r;

	/* an external CA answers in its own time: not in an HTTP thread */
	if (s->cmp != NULL && !rq->offloaded) {
		server_offload(s, rq, route_cert_issue);
		return;
	}
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
	if ((r = json_roles(rq->json, j->roles, &j->nroles, why, sizeof(why))) != 0)
		goto fail;
	/* a role lets the certificate's holder ask authorization questions: only
	 * an admin may hand one out */
	if (j->nroles > 0 && rq->role != DB_ROLE_ADMIN) {
		r = ERR_FORBIDDEN;
		snprintf(why, sizeof(why), "Only an admin token may issue a certificate with roles.");
		log_info("\"%s\" (role %s) asked for a certificate with roles: refused",
		    rq->actor, db_role_name(rq->role));
		goto fail;
	}
	if ((r = ca_csr_check((const uint8_t *)json_string_value(csr), json_string_length(csr),
	    &s->policy, &spki, &spkilen, why, sizeof(why))) != 0)
		goto fail;
	why[0] = '\0';

	snprintf(j->actor, sizeof(j->actor), "%s", rq->actor);
	if ((r = server_sign(s, j->it.mac, spki, spkilen, j->owner, j->gptr, j->ngroups,
	    j->roles, j->nroles, (const uint8_t *)json_string_value(csr), json_string_length(csr),
	    &j->der, &j->derlen, &j->it, why, sizeof(why))) != 0)
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
	/* nothing leaves provd before its row commits: wait for the writer
	 * (offloaded: here, in the request's own thread) */
	if (rq->offloaded) {
		pthread_mutex_init(&j->mu, NULL);
		pthread_cond_init(&j->cv, NULL);
		if ((r = db_writer_submit(s->writer, &j->it)) != 0) {
			req_reply_error(rq, r, NULL);
		} else {
			pthread_mutex_lock(&j->mu);
			while (!j->done)
				pthread_cond_wait(&j->cv, &j->mu);
			pthread_mutex_unlock(&j->mu);
		}
		pthread_cond_destroy(&j->cv);
		pthread_mutex_destroy(&j->mu);
		return;
	}
	req_suspend(rq);
	if ((r = db_writer_submit(s->writer, &j->it)) != 0) {
		req_reply_error(rq, r, NULL);
		req_complete(rq);
	}
	return;
fail:
	free(spki);
	if (r != ERR_INVALID && r != ERR_BAD_MAC && r != ERR_BAD_CSR &&
	    r != ERR_KEY_POLICY && r != ERR_TOO_BIG && r != ERR_FORBIDDEN)
		log_warnx("issuance failed: %s", provd_strerror(r));
	if (r == ERR_UNAVAILABLE && why[0] == '\0')
		snprintf(why, sizeof(why), "The CA cannot sign now: the TPM or store holding its "
		    "key does not answer (provd's log has the details); retry shortly.");
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

/* Answers 200 with c (which it clears) as cert_json() describes it. */
static void
reply_cert(struct req *rq, struct db_cert *c)
{
	json_t *o = cert_json(c);

	db_cert_clear(c);
	req_reply_json_or(rq, 200, o, ERR_INTERNAL);
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
	reply_cert(rq, &c);
}

/* ---------------------------------------------------------------------
 * POST /v1/certificates/{serial}/revoke, POST /v1/devices/{mac}/revoke;
 * POST /v1/certificates/{serial}/unrevoke, POST /v1/devices/{mac}/unrevoke:
 * releases a certificate from hold (certificateHold), the one revocation
 * that can be undone.
 */
static void crl_changed(struct server *s);

/* What follows a revocation or a release through this instance: both CRLs
 * signed afresh, the OCSP answers dropped, the directory woken; answers
 * with c (which it clears). */
static void
revocation_done(struct server *s, struct req *rq, const char *serial, struct db_cert *c)
{
	crl_changed(s);
	/* this instance at once; the others through the notification */
	ocsp_invalidate(s, serial);
	dirsync_kick(s);
	reply_cert(rq, c);
}

/* With an external CA, the CA revokes first (rr over CMP); provd records
 * the revocation only when the CA confirmed it. */
static int
cmp_revoke(struct server *s, const char *serial, int reason, char *why, size_t whylen)
{
	struct db_cert c = { 0 };
	char msg[300];
	int r;

	if ((r = db_cert_by_serial(s->db, serial, &c)) != 0) {
		msg_set(why, whylen, r == ERR_NOT_FOUND ? "No certificate has this serial number." :
		    "");
		return r;
	}
	if (c.status != DB_CERT_ACTIVE) {
		db_cert_clear(&c);
		msg_set(why, whylen, "The certificate is not active (already revoked or "
		    "superseded).");
		return ERR_CONFLICT;
	}
	r = ca_cmp_revoke(s->cmp, c.der, c.derlen, reason, msg, sizeof(msg));
	db_cert_clear(&c);
	if (r != 0) {
		log_warnx("external CA: revoking %s: %s", serial, msg);
		msg_set(why, whylen, "The external CA did not revoke the certificate (%s); "
		    "nothing was changed.", msg);
		return r == ERR_SIGNER ? ERR_CONFLICT : r;
	}
	return 0;
}

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
	if (s->cmp != NULL && (r = cmp_revoke(s, serial, reason, why, sizeof(why))) != 0) {
		req_reply_error(rq, r, why[0] ? why : NULL);
		return;
	}
	if ((r = db_cert_revoke(s->db, serial, reason, rq->actor, rq->id, &c)) != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? "No certificate has this serial number." :
		    r == ERR_CONFLICT ? "The certificate is not active (already revoked or superseded)." : NULL);
		return;
	}
	atomic_fetch_add(&s->m.revoked, 1);
	log_info("revoked certificate %s (%s) by \"%s\"", serial, reason_name(reason), rq->actor);
	revocation_done(s, rq, serial, &c);
}

static void
unrevoke_serial(struct server *s, struct req *rq, const char *serial)
{
	struct db_cert c = { 0 };
	struct db_unrevoke_refusal why = { DB_UNREVOKE_NONE, -1 };
	const char *msg = NULL;
	char buf[200];
	int r;

	if (server_external_ca(s, rq))
		return;
	if ((r = db_cert_unrevoke(s->db, serial, rq->actor, rq->id, &c, &why)) != 0) {
		if (r == ERR_NOT_FOUND)
			msg = "No certificate has this serial number.";
		else if (r == ERR_CONFLICT && why.why == DB_UNREVOKE_ACTIVE)
			msg = "The certificate is not revoked.";
		else if (r == ERR_CONFLICT && why.why == DB_UNREVOKE_SUPERSEDED)
			msg = "The certificate was superseded by a newer one; a superseded "
			    "certificate is never reinstated.";
		else if (r == ERR_CONFLICT && why.why == DB_UNREVOKE_NOT_HOLD) {
			snprintf(buf, sizeof(buf), "Only a certificate on hold (revoked with reason "
			    "certificateHold) can be unrevoked; this one was revoked with reason %s.",
			    reason_name(why.reason));
			msg = buf;
		} else if (r == ERR_CONFLICT && why.why == DB_UNREVOKE_EXPIRED)
			msg = "The certificate has expired; it stays revoked.";
		else if (r == ERR_CONFLICT && why.why == DB_UNREVOKE_REPLACED)
			msg = "The device has been given another active certificate since; this one "
			    "stays on hold.";
		req_reply_error(rq, r, msg);
		return;
	}
	log_info("certificate %s released from hold by \"%s\"", serial, rq->actor);
	revocation_done(s, rq, serial, &c);
}

/* The action (revoke_serial, unrevoke_serial) on certificate {serial}. */
static void
cert_action(struct server *s, struct req *rq,
    void (*action)(struct server *, struct req *, const char *))
{
	char serial[CA_SERIAL_HEX];

	if (serial_param(rq->params[0], serial) != 0) {
		req_reply_error(rq, ERR_INVALID, "A serial number is 32 hexadecimal digits.");
		return;
	}
	action(s, rq, serial);
}

/* The action on the certificate of device {mac} that find picks; none is
 * the answer when there is no such certificate. */
static void
device_action(struct server *s, struct req *rq,
    int (*find)(struct db *, const uint8_t *, struct db_cert *), const char *none,
    void (*action)(struct server *, struct req *, const char *))
{
	struct db_cert c = { 0 };
	uint8_t mac[MAC_LEN];
	char serial[CA_SERIAL_HEX];
	int r;

	if (mac_parse(rq->params[0], mac) != 0) {
		req_reply_error(rq, ERR_BAD_MAC, NULL);
		return;
	}
	if ((r = find(s->db, mac, &c)) != 0) {
		req_reply_error(rq, r, r == ERR_NOT_FOUND ? none : NULL);
		return;
	}
	snprintf(serial, sizeof(serial), "%s", c.serial_hex);
	db_cert_clear(&c);
	action(s, rq, serial);
}

void
route_cert_revoke(struct server *s, struct req *rq)
{
	cert_action(s, rq, revoke_serial);
}

void
route_device_revoke(struct server *s, struct req *rq)
{
	device_action(s, rq, db_cert_active_by_mac, "The device has no active certificate.",
	    revoke_serial);
}

void
route_cert_unrevoke(struct server *s, struct req *rq)
{
	cert_action(s, rq, unrevoke_serial);
}

void
route_device_unrevoke(struct server *s, struct req *rq)
{
	device_action(s, rq, db_cert_last_revoked_by_mac, "The device has no revoked certificate.",
	    unrevoke_serial);
}

/* ---------------------------------------------------------------------
 * GET /v1/crl[?format=pem], GET /v1/crl/delta[?format=pem]: DER by default.
 *
 * Base CRLs are made on a schedule (ca.crl_base_interval_s) and shared
 * through the database: while nothing has changed since the newest base,
 * GET /v1/crl serves it, the same on every instance. After a change it is
 * a complete CRL signed afresh: at once after a revocation or release
 * through this instance, otherwise at most CRL_CACHE_NS old. GET
 * /v1/crl/delta is a delta CRL against the newest base (RFC 5280 5.2.4),
 * for relying parties that hold a complete CRL numbered at least the
 * base's; it is cached the same way.
 */
#define CRL_CACHE_NS (5ull * 1000000000ull)

/*
 * What struct server has no room for (server_int.h belongs to the HTTP
 * core; there is one server per process): the delta CRL's cache, and the
 * newest base as last read, so that its DER is fetched once. Lock order:
 * s->crl_mu or crl_delta.mu, then crl_base.mu.
 */
static struct {
	pthread_mutex_t mu;
	uint8_t *der;
	size_t len;
	uint64_t made_ns;
	atomic_int stale;
} crl_delta = { .mu = PTHREAD_MUTEX_INITIALIZER };

static struct {
	pthread_mutex_t mu;
	int64_t number;			/* 0: none read yet */
	uint8_t *der;
	size_t len;
} crl_base = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* A revocation or release through this instance: both CRLs are signed
 * afresh at their next request. */
static void
crl_changed(struct server *s)
{
	atomic_store(&s->crl_stale, 1);
	atomic_store(&crl_delta.stale, 1);
}

/* Has the signer sign a CRL over list: complete (delta_base 0) or a delta
 * against complete CRL delta_base. */
static int
crl_sign(struct server *s, int64_t number, int64_t this_update, int64_t next_update,
    int64_t delta_base, const struct db_revoked *list, size_t n, uint8_t **der, size_t *len)
{
	struct ca_crl_req req = { 0 };
	struct ca_revoked *cl = NULL;
	int r;

	if (n > 0 && (cl = calloc(n, sizeof(*cl))) == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		memcpy(cl[i].serial, list[i].serial, CA_SERIAL_LEN);
		cl[i].revoked_at = list[i].revoked_at;
		cl[i].reason = list[i].reason;
	}
	req.crl_number = number;
	req.this_update = this_update;
	req.next_update = next_update;
	req.delta_base = delta_base;
	req.revoked = cl;
	req.nrevoked = n;
	r = ca_signer_crl(s->signer, &req, der, len);
	free(cl);
	if (r == 0)
		atomic_fetch_add(&s->m.crl_generated, 1);
	return r;
}

/* db_crl_sign_fn for a new base. */
static int
crl_sign_base(void *arg, int64_t number, int64_t this_update, int64_t next_update,
    const struct db_revoked *list, size_t n, uint8_t **der, size_t *len)
{
	return crl_sign(arg, number, this_update, next_update, 0, list, n, der, len);
}

/*
 * The newest base CRL, made first when it is due: its number, and when der
 * is not NULL a copy of its DER (*der new, free()). The DER is read from
 * the database only when the base is not the one read last.
 */
static int
crl_base_current(struct server *s, int64_t *number, uint8_t **der, size_t *len)
{
	struct db_crl_base b = { 0 };
	int r;

	pthread_mutex_lock(&crl_base.mu);
	r = db_crl_base_get(s->db, s->cfg->crl_base_interval_s, s->cfg->crl_next_update_s,
	    crl_base.number, crl_sign_base, s, &b, NULL);
	if (r == 0 && b.der != NULL) {
		free(crl_base.der);
		crl_base.der = b.der;
		crl_base.len = b.derlen;
		crl_base.number = b.number;
		b.der = NULL;
	} else if (r == 0 && (b.number != crl_base.number || crl_base.der == NULL))
		r = ERR_INTERNAL;
	if (r == 0) {
		*number = crl_base.number;
		if (der != NULL && (*der = malloc(crl_base.len)) == NULL)
			r = ERR_NOMEM;
		else if (der != NULL) {
			memcpy(*der, crl_base.der, crl_base.len);
			*len = crl_base.len;
		}
	}
	pthread_mutex_unlock(&crl_base.mu);
	db_crl_base_clear(&b);
	return r;
}

/* The complete CRL: the newest base while nothing changed since it, else
 * one signed now. */
static int
crl_make(struct server *s, uint8_t **der, size_t *len)
{
	struct db_revoked *list = NULL;
	uint8_t *bder = NULL;
	size_t n = 0, blen = 0;
	int64_t base = 0, number = 0, now;
	int r;

	if ((r = crl_base_current(s, &base, &bder, &blen)) != 0)
		return r;
	r = db_crl_delta_entries(s->db, &base, &list, &n, NULL);
	free(list);
	list = NULL;
	if (r == 0 && n == 0) {
		*der = bder;
		*len = blen;
		return 0;
	}
	free(bder);
	/* changed, or the base was replaced (or removed) meanwhile */
	if (r != 0 && r != ERR_CONFLICT && r != ERR_NOT_FOUND)
		return r;
	if ((r = db_crl_entries(s->db, &list, &n, &number)) != 0)
		return r;
	now = (int64_t)time(NULL);
	r = crl_sign(s, number, now, now + s->cfg->crl_next_update_s, 0, list, n, der, len);
	free(list);
	return r;
}

/* The delta CRL against the newest base (made first when due). */
static int
crl_delta_make(struct server *s, uint8_t **der, size_t *len)
{
	struct db_revoked *list = NULL;
	size_t n = 0;
	int64_t base = 0, number = 0, now;
	int r;

	/* the newest base, under the CRL lock; a second try should the bases
	 * have been removed between the two calls */
	for (int tries = 0; tries < 2; tries++) {
		if ((r = crl_base_current(s, &base, NULL, NULL)) != 0)
			return r;
		base = 0;
		if ((r = db_crl_delta_entries(s->db, &base, &list, &n, &number)) != ERR_NOT_FOUND)
			break;
	}
	if (r != 0)
		return r == ERR_NOT_FOUND ? ERR_UNAVAILABLE : r;
	now = (int64_t)time(NULL);
	r = crl_sign(s, number, now, now + s->cfg->crl_next_update_s, base, list, n, der, len);
	free(list);
	return r;
}

/*
 * A copy of the cached CRL (*der new), made afresh by make() when there is
 * none, it is stale or older than CRL_CACHE_NS. On failure the cache is
 * marked stale, so the next request tries again.
 */
static int
crl_cached(struct server *s, pthread_mutex_t *mu, uint8_t **cache, size_t *cache_len,
    uint64_t *made_ns, atomic_int *stale, int (*make)(struct server *, uint8_t **, size_t *),
    uint8_t **der, size_t *len)
{
	int r = 0;

	*der = NULL;
	pthread_mutex_lock(mu);
	if (*cache == NULL || atomic_exchange(stale, 0) || now_ns() - *made_ns > CRL_CACHE_NS) {
		uint8_t *fresh = NULL;
		size_t flen = 0;
		if ((r = make(s, &fresh, &flen)) == 0) {
			free(*cache);
			*cache = fresh;
			*cache_len = flen;
			*made_ns = now_ns();
		} else
			atomic_store(stale, 1);
	}
	if (r == 0 && (*der = malloc(*cache_len)) == NULL)
		r = ERR_NOMEM;
	else if (r == 0) {
		memcpy(*der, *cache, *cache_len);
		*len = *cache_len;
	}
	pthread_mutex_unlock(mu);
	return r;
}

/* Sends a CRL as DER, or as PEM for ?format=pem; takes der. */
static void
crl_reply(struct req *rq, const char *fmt, uint8_t *der, size_t len)
{
	char *pem = NULL;
	int r;

	if (fmt != NULL && strcmp(fmt, "pem") == 0) {
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

/* The format argument: NULL (DER), "der" or "pem"; else answers 400. */
static int
crl_format(struct req *rq, const char **fmt)
{
	*fmt = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "format");
	if (*fmt != NULL && strcmp(*fmt, "pem") != 0 && strcmp(*fmt, "der") != 0) {
		req_reply_error(rq, ERR_INVALID, "format must be der or pem.");
		return ERR_INVALID;
	}
	return 0;
}

/* GET of a CRL kept in one cache (the complete one or the delta): DER, or
 * PEM when asked. */
static void
crl_route(struct server *s, struct req *rq, pthread_mutex_t *mu, uint8_t **cache,
    size_t *cache_len, uint64_t *made_ns, atomic_int *stale,
    int (*make)(struct server *, uint8_t **, size_t *))
{
	const char *fmt;
	uint8_t *der = NULL;
	size_t len = 0;
	int r;

	if (server_external_ca(s, rq) || crl_format(rq, &fmt) != 0)
		return;
	if ((r = crl_cached(s, mu, cache, cache_len, made_ns, stale, make, &der, &len)) != 0) {
		req_reply_error(rq, r, NULL);
		return;
	}
	crl_reply(rq, fmt, der, len);
}

void
route_crl(struct server *s, struct req *rq)
{
	crl_route(s, rq, &s->crl_mu, &s->crl_der, &s->crl_len, &s->crl_made_ns, &s->crl_stale,
	    crl_make);
}

void
route_crl_delta(struct server *s, struct req *rq)
{
	crl_route(s, rq, &crl_delta.mu, &crl_delta.der, &crl_delta.len, &crl_delta.made_ns,
	    &crl_delta.stale, crl_delta_make);
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
