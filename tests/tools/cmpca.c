/*
 * cmpca: a small enterprise CA answering CMP over HTTP, for the tests and
 * the benchmark of [ca] mode = cmp where OpenSSL's mock server ("openssl
 * cmp -port", one fixed certificate for every request) cannot serve: an
 * intake, whose key is made during the enrollment, and many enrollments
 * with different keys. Built on OpenSSL's own CMP server (OSSL_CMP_SRV_*):
 * it checks the client's PBM protection with the shared secret, answers
 * p10cr by signing the request with its CA key (the subject of the CSR,
 * whose serialNumber is the device's address, and the subjectAltName URI
 * urn:dev:mac: of that address), rr and genm with "accepted".
 *
 * usage: cmpca PORT CA.crt CA.key REF SECRET [wrong-key]
 * Listens on 127.0.0.1:PORT (HTTP/1.0, one request a connection, one at a
 * time) until killed. Prints "listening" once ready. With wrong-key it
 * misbehaves: the certificate carries a key of its own instead of the
 * request's (OpenSSL's mock server refuses to do that).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/cmp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/common.h"

#define BODY_MAX (64 * 1024)

static X509 *g_ca;
static EVP_PKEY *g_key;
static EVP_PKEY *g_wrong;		/* wrong-key: put in every certificate */

static X509 *
sign_csr(const X509_REQ *csr)
{
	X509 *x = X509_new();
	const X509_NAME *subj = X509_REQ_get_subject_name(csr);
	unsigned char sn[16];
	BIGNUM *bn = NULL;
	char uri[64], hex[MAC_HEX_LEN], buf[32];
	uint8_t mac[MAC_LEN];
	X509_EXTENSION *ext = NULL;
	X509V3_CTX v3;
	int idx, n;

	idx = X509_NAME_get_index_by_NID(subj, NID_serialNumber, -1);
	if (x == NULL || idx < 0)
		goto fail;
	const ASN1_STRING *v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
	n = ASN1_STRING_length(v);
	if (n <= 0 || n >= (int)sizeof(buf))
		goto fail;
	memcpy(buf, ASN1_STRING_get0_data(v), (size_t)n);
	buf[n] = '\0';
	if (mac_parse(buf, mac) != 0)
		goto fail;
	mac_format_hex(mac, hex);
	snprintf(uri, sizeof(uri), "URI:urn:dev:mac:%s", hex);
	if (RAND_bytes(sn, sizeof(sn)) != 1)
		goto fail;
	sn[0] = (unsigned char)((sn[0] & 0x7f) | 0x01);
	if ((bn = BN_bin2bn(sn, sizeof(sn), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
	    !X509_set_version(x, X509_VERSION_3) ||
	    !X509_set_subject_name(x, subj) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(g_ca)) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -300) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400) == NULL ||
	    !X509_set_pubkey(x, g_wrong != NULL ? g_wrong : X509_REQ_get0_pubkey((X509_REQ *)csr)))
		goto fail;
	X509V3_set_ctx(&v3, g_ca, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, uri)) == NULL ||
	    !X509_add_ext(x, ext, -1) || !X509_sign(x, g_key, EVP_sha256()))
		goto fail;
	X509_EXTENSION_free(ext);
	BN_free(bn);
	return x;
fail:
	X509_EXTENSION_free(ext);
	BN_free(bn);
	X509_free(x);
	return NULL;
}

static OSSL_CMP_PKISI *
cert_request(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, int id, const OSSL_CRMF_MSG *crm,
    const X509_REQ *p10, X509 **out, STACK_OF(X509) **chain, STACK_OF(X509) **capubs)
{
	(void)srv; (void)req; (void)id; (void)crm; (void)chain; (void)capubs;
	if (p10 == NULL || (*out = sign_csr(p10)) == NULL)
		return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection,
		    1 << OSSL_CMP_PKIFAILUREINFO_badCertTemplate, "only p10cr with a device address");
	return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL);
}

static OSSL_CMP_PKISI *
rr(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, const X509_NAME *issuer,
    const ASN1_INTEGER *serial)
{
	(void)srv; (void)req; (void)issuer; (void)serial;
	return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL);
}

static int
genm(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, const STACK_OF(OSSL_CMP_ITAV) *in,
    STACK_OF(OSSL_CMP_ITAV) **out)
{
	(void)srv; (void)req; (void)in;
	return (*out = sk_OSSL_CMP_ITAV_new_null()) != NULL;
}

static void
error(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, const OSSL_CMP_PKISI *si,
    const ASN1_INTEGER *code, const STACK_OF(ASN1_UTF8STRING) *details)
{
	(void)srv; (void)req; (void)si; (void)code; (void)details;
}

static int
cert_conf(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, int id,
    const ASN1_OCTET_STRING *hash, const OSSL_CMP_PKISI *si)
{
	(void)srv; (void)req; (void)id; (void)hash; (void)si;
	return 1;
}

static int
poll_req(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, int id, OSSL_CMP_MSG **cr,
    int64_t *after)
{
	(void)srv; (void)req; (void)id; (void)cr; (void)after;
	return 0;
}

/* One HTTP request on fd: the CMP message in, the answer out. */
static void
serve(OSSL_CMP_SRV_CTX *srv, int fd)
{
	char *buf = malloc(BODY_MAX + 4096), *hdr_end, *cl;
	size_t have = 0, want = 0, hlen;
	ssize_t n;
	OSSL_CMP_MSG *req = NULL, *rsp = NULL;
	unsigned char *out = NULL;
	const unsigned char *p;
	int len;
	char head[160];

	if (buf == NULL)
		goto done;
	while ((hdr_end = memmem(buf, have, "\r\n\r\n", 4)) == NULL) {
		if (have >= 4096 || (n = read(fd, buf + have, 4096 - have)) <= 0)
			goto done;
		have += (size_t)n;
	}
	hlen = (size_t)(hdr_end + 4 - buf);
	*hdr_end = '\0';
	if ((cl = strcasestr(buf, "Content-Length:")) == NULL)
		goto done;
	want = strtoul(cl + 15, NULL, 10);
	if (want == 0 || want > BODY_MAX)
		goto done;
	while (have < hlen + want) {
		if ((n = read(fd, buf + have, hlen + want - have)) <= 0)
			goto done;
		have += (size_t)n;
	}
	p = (const unsigned char *)buf + hlen;
	if ((req = d2i_OSSL_CMP_MSG(NULL, &p, (long)want)) == NULL ||
	    (rsp = OSSL_CMP_SRV_process_request(srv, req)) == NULL ||
	    (len = i2d_OSSL_CMP_MSG(rsp, &out)) <= 0)
		goto done;
	n = snprintf(head, sizeof(head), "HTTP/1.0 200 OK\r\nContent-Type: application/pkixcmp\r\n"
	    "Content-Length: %d\r\n\r\n", len);
	if (write(fd, head, (size_t)n) != n || write(fd, out, (size_t)len) != len)
		goto done;
done:
	ERR_clear_error();
	OPENSSL_free(out);
	OSSL_CMP_MSG_free(req);
	OSSL_CMP_MSG_free(rsp);
	free(buf);
	close(fd);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	OSSL_CMP_SRV_CTX *srv;
	OSSL_CMP_CTX *ctx;
	FILE *f;
	int s, one = 1;

	if (argc != 6 && !(argc == 7 && strcmp(argv[6], "wrong-key") == 0)) {
		fprintf(stderr, "usage: cmpca PORT CA.crt CA.key REF SECRET [wrong-key]\n");
		return 2;
	}
	if (argc == 7 && (g_wrong = EVP_EC_gen("P-256")) == NULL)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	if ((f = fopen(argv[2], "r")) == NULL || (g_ca = PEM_read_X509(f, NULL, NULL, NULL)) == NULL)
		return 1;
	fclose(f);
	if ((f = fopen(argv[3], "r")) == NULL ||
	    (g_key = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL)
		return 1;
	fclose(f);
	if ((srv = OSSL_CMP_SRV_CTX_new(NULL, NULL)) == NULL ||
	    !OSSL_CMP_SRV_CTX_init(srv, NULL, cert_request, rr, genm, error, cert_conf, poll_req) ||
	    (ctx = OSSL_CMP_SRV_CTX_get0_cmp_ctx(srv)) == NULL ||
	    !OSSL_CMP_CTX_set1_referenceValue(ctx, (unsigned char *)argv[4], (int)strlen(argv[4])) ||
	    !OSSL_CMP_CTX_set1_secretValue(ctx, (unsigned char *)argv[5], (int)strlen(argv[5])))
		return 1;
	sa.sin_port = htons((uint16_t)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((s = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(s, 64) != 0) {
		perror("cmpca");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c >= 0)
			serve(srv, c);
	}
}
