/*
 * devid.c: the device identifier a certificate carries — the IEEE MAC
 * address in a subjectAltName URI "urn:dev:mac:" + 12 lowercase hex digits
 * and/or the subject's serialNumber (the profile in DESIGN.md: provd's own
 * certificates carry both). Read by the device library (the peer's address
 * must equal the link address) and by provd (a certificate from an
 * external CA must name the device it was asked for).
 */
#include <string.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/common.h"

#define MAC_URN "urn:dev:mac:"

/* 1 and addr when uri is "urn:dev:mac:" and 12 lowercase hex digits. */
static int
urn_addr(const ASN1_IA5STRING *uri, uint8_t addr[MAC_LEN])
{
	const char *s = (const char *)ASN1_STRING_get0_data(uri);
	size_t n = strlen(MAC_URN);
	char hex[MAC_HEX_LEN], canon[MAC_HEX_LEN];

	if (ASN1_STRING_length(uri) != (int)(n + 12) || strncmp(s, MAC_URN, n) != 0)
		return 0;
	memcpy(hex, s + n, 12);
	hex[12] = '\0';
	if (mac_parse(hex, addr) != 0)
		return 0;
	mac_format_hex(addr, canon);
	return strcmp(hex, canon) == 0;
}

int
cert_device_addr(X509 *cert, uint8_t addr[MAC_LEN])
{
	GENERAL_NAMES *gens = NULL;
	const X509_NAME *subj;
	uint8_t a[MAC_LEN], got[MAC_LEN];
	int have = 0, crit = -1, r = ERR_INVALID;

	if (cert == NULL || addr == NULL)
		return ERR_INVALID;
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (gens == NULL && crit != -1)		/* several, or one that does not parse */
		goto out;
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
		if (gn->type != GEN_URI ||
		    strncmp((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
		    MAC_URN, strlen(MAC_URN)) != 0)
			continue;
		if (have || !urn_addr(gn->d.uniformResourceIdentifier, got))
			goto out;	/* two identifiers, or a malformed one */
		have = 1;
	}
	subj = X509_get_subject_name(cert);
	for (int i = -1; (i = X509_NAME_get_index_by_NID(subj, NID_serialNumber, i)) >= 0;) {
		const ASN1_STRING *v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
		char s[MAC_STR_LEN + 1];
		int len = ASN1_STRING_length(v);

		if (len <= 0 || len >= (int)sizeof(s))
			goto out;
		memcpy(s, ASN1_STRING_get0_data(v), (size_t)len);
		s[len] = '\0';
		if (mac_parse(s, a) != 0 || (have && memcmp(a, got, MAC_LEN) != 0))
			goto out;
		memcpy(got, a, MAC_LEN);
		have = 1;
	}
	if (!have)
		goto out;
	memcpy(addr, got, MAC_LEN);
	r = 0;
out:
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
	return r;
}
