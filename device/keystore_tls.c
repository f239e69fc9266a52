/*
 * keystore_tls.c: the installed identity in the shape a TLS library wants
 * (key, certificate, CA chain), also for keys that live in a provider of
 * their own library context (tpm2).
 *
 * Why a stand-in key for tpm2: libssl 3.0 fetches everything it uses — the
 * signature for CertificateVerify, but also hashes, ciphers and key
 * exchange — from the SSL_CTX's library context with one property query.
 * Put the SSL_CTX in the keystore's context and libssl also hashes its
 * transcript in the TPM (a round trip per update, and TLS copies digest
 * contexts, which the TPM's cannot do); put it in the default context and
 * libssl exports the key to the default provider, which yields only the
 * public half and a failed signature. So a small built-in provider
 * ("provd-keyproxy") sits in a library context of its own next to
 * OpenSSL's default provider. It offers one EC key type, whose keys hold a
 * reference to the real key and its public half, and one signature
 * algorithm, reachable only through those keys (the key type names it as
 * its signature), whose one operation is "sign these bytes": done with
 * EVP_DigestSign on the real key in its own context, that is by the TPM.
 * Key parameters (group, size, public point) are answered from the public
 * half. The SSL_CTX is made in that context with "?provider=default", so
 * everything else comes from the default provider.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "device/device.h"
#include "device/keystore_int.h"

#define KP_NAME		"provd-keyproxy"
#define KP_PROPS	"provider=" KP_NAME
#define KP_SIG_NAME	"PROVD-KEYPROXY-SIGN"	/* only our keys name it */
#define KP_PARAM_SRC	"provd-keyproxy-source"	/* import: struct kp_src * */
#define KP_TLS_PROPQ	"?provider=default"
#define CHAIN_FILE	"id/chain.pem"		/* keystore.c's layout */
#define CHAIN_PEM_MAX	(64 * 1024)
#define CHAIN_CERTS_MAX	8

/* What a stand-in key is made from (passed by pointer to import). */
struct kp_src {
	EVP_PKEY *real;
	OSSL_LIB_CTX *libctx;
	const char *propq;
};

/* The provider's key data. */
struct kp_key {
	EVP_PKEY *real;			/* one reference; signs */
	OSSL_LIB_CTX *libctx;		/* real's context (the keystore's) */
	char *propq;			/* to sign with */
	EVP_PKEY *pub;			/* real's public half, default provider */
};

/* One signature operation. */
struct kp_sig {
	struct kp_key *key;		/* borrowed for the operation */
	char mdname[64];
};

/* ---------------------------------------------------------------------
 * Key management.
 */
static void *
kp_key_new(void *provctx)
{
	(void)provctx;
	return calloc(1, sizeof(struct kp_key));
}

static void
kp_key_free(void *kd)
{
	struct kp_key *k = kd;

	if (k == NULL)
		return;
	EVP_PKEY_free(k->real);
	EVP_PKEY_free(k->pub);
	free(k->propq);
	free(k);
}

static int
kp_key_has(const void *kd, int selection)
{
	const struct kp_key *k = kd;

	(void)selection;
	return k != NULL && k->real != NULL && k->pub != NULL;
}

static int
kp_key_import(void *kd, int selection, const OSSL_PARAM params[])
{
	struct kp_key *k = kd;
	const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, KP_PARAM_SRC);
	const struct kp_src *src;
	const void *ptr = NULL;
	unsigned char *der = NULL;
	const unsigned char *q;
	size_t len = 0;
	int dlen;

	(void)selection;
	if (k == NULL || k->real != NULL || p == NULL ||
	    !OSSL_PARAM_get_octet_ptr(p, &ptr, &len) || ptr == NULL ||
	    len != sizeof(struct kp_src))
		return 0;
	src = ptr;
	if ((dlen = i2d_PUBKEY(src->real, &der)) <= 0)
		return 0;
	q = der;
	k->pub = d2i_PUBKEY(NULL, &q, dlen);
	OPENSSL_free(der);
	if (k->pub == NULL || (src->propq != NULL && (k->propq = strdup(src->propq)) == NULL) ||
	    !EVP_PKEY_up_ref(src->real)) {
		EVP_PKEY_free(k->pub);
		k->pub = NULL;
		free(k->propq);
		k->propq = NULL;
		return 0;
	}
	k->real = src->real;
	k->libctx = src->libctx;
	return 1;
}

static const OSSL_PARAM kp_import_types[] = {
	OSSL_PARAM_octet_ptr(KP_PARAM_SRC, NULL, 0),
	OSSL_PARAM_END,
};

static const OSSL_PARAM *
kp_key_import_types(int selection)
{
	(void)selection;
	return kp_import_types;
}

/* The public half and the group, whatever was asked: comparing the key
 * with its certificate (X509_check_private_key) exports it with every
 * selection bit set. The private key is never there to export. */
static int
kp_key_export(void *kd, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
	struct kp_key *k = kd;
	OSSL_PARAM *params = NULL;
	int ok;

	(void)selection;
	if (k == NULL || k->pub == NULL || EVP_PKEY_todata(k->pub, EVP_PKEY_PUBLIC_KEY, &params) != 1)
		return 0;
	ok = cb(params, cbarg);
	OSSL_PARAM_free(params);
	return ok;
}

static const OSSL_PARAM kp_export_types[] = {
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
	OSSL_PARAM_END,
};

static const OSSL_PARAM *
kp_key_export_types(int selection)
{
	(void)selection;
	return kp_export_types;
}

static int
kp_key_get_params(void *kd, OSSL_PARAM params[])
{
	struct kp_key *k = kd;

	return k != NULL && k->pub != NULL && EVP_PKEY_get_params(k->pub, params) == 1;
}

static const OSSL_PARAM kp_gettable[] = {
	OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
	OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
	OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
	OSSL_PARAM_END,
};

static const OSSL_PARAM *
kp_key_gettable_params(void *provctx)
{
	(void)provctx;
	return kp_gettable;
}

static const char *
kp_key_query_operation_name(int operation_id)
{
	return operation_id == OSSL_OP_SIGNATURE ? KP_SIG_NAME : NULL;
}

static const OSSL_DISPATCH kp_keymgmt_fns[] = {
	{ OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))kp_key_new },
	{ OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))kp_key_free },
	{ OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))kp_key_has },
	{ OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))kp_key_import },
	{ OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))kp_key_import_types },
	{ OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))kp_key_export },
	{ OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))kp_key_export_types },
	{ OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))kp_key_get_params },
	{ OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))kp_key_gettable_params },
	{ OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))kp_key_query_operation_name },
	{ 0, NULL },
};

/* ---------------------------------------------------------------------
 * Signature: one-shot sign only, by the real key's provider.
 */
static void *
kp_sig_new(void *provctx, const char *propq)
{
	(void)provctx;
	(void)propq;
	return calloc(1, sizeof(struct kp_sig));
}

static void
kp_sig_free(void *ctx)
{
	free(ctx);
}

static void *
kp_sig_dup(void *ctx)
{
	struct kp_sig *d = malloc(sizeof(*d));

	if (d != NULL)
		memcpy(d, ctx, sizeof(*d));
	return d;
}

static int
kp_sig_init(void *ctx, const char *mdname, void *kd, const OSSL_PARAM params[])
{
	struct kp_sig *s = ctx;

	(void)params;
	if (s == NULL || kd == NULL || mdname == NULL || strlen(mdname) >= sizeof(s->mdname))
		return 0;
	s->key = kd;
	memcpy(s->mdname, mdname, strlen(mdname) + 1);
	return 1;
}

static int
kp_sig_sign(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
    const unsigned char *tbs, size_t tbslen)
{
	struct kp_sig *s = ctx;
	EVP_MD_CTX *m = NULL;
	size_t len = sigsize;
	int ok = 0;

	if (s == NULL || s->key == NULL)
		return 0;
	if (sig == NULL) {
		int max = EVP_PKEY_get_size(s->key->pub);
		if (max <= 0)
			return 0;
		*siglen = (size_t)max;
		return 1;
	}
	if ((m = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestSignInit_ex(m, NULL, s->mdname, s->key->libctx, s->key->propq,
	    s->key->real, NULL) == 1 &&
	    EVP_DigestSign(m, sig, &len, tbs, tbslen) == 1) {
		*siglen = len;
		ok = 1;
	}
	EVP_MD_CTX_free(m);
	return ok;
}

static const OSSL_DISPATCH kp_signature_fns[] = {
	{ OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))kp_sig_new },
	{ OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))kp_sig_free },
	{ OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))kp_sig_dup },
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))kp_sig_init },
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN, (void (*)(void))kp_sig_sign },
	{ 0, NULL },
};

/* ---------------------------------------------------------------------
 * The provider and its library context, made once per process and kept
 * (as libssl keeps its own tables).
 */
static const OSSL_ALGORITHM kp_keymgmt[] = {
	{ "EC:id-ecPublicKey:1.2.840.10045.2.1", KP_PROPS, kp_keymgmt_fns,
	  "P-256 key held by another provider" },
	{ NULL, NULL, NULL, NULL },
};

static const OSSL_ALGORITHM kp_signature[] = {
	{ KP_SIG_NAME, KP_PROPS, kp_signature_fns, "signature by the key's own provider" },
	{ NULL, NULL, NULL, NULL },
};

static const OSSL_ALGORITHM *
kp_query(void *provctx, int operation_id, int *no_cache)
{
	(void)provctx;
	*no_cache = 0;
	if (operation_id == OSSL_OP_KEYMGMT)
		return kp_keymgmt;
	if (operation_id == OSSL_OP_SIGNATURE)
		return kp_signature;
	return NULL;
}

static const OSSL_DISPATCH kp_provider_fns[] = {
	{ OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))kp_query },
	{ 0, NULL },
};

static int
kp_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
    const OSSL_DISPATCH **out, void **provctx)
{
	(void)in;
	*out = kp_provider_fns;
	*provctx = (void *)handle;
	return 1;
}

static OSSL_LIB_CTX *kp_libctx;
static OSSL_PROVIDER *kp_prov[2];	/* default, the proxy */
static CRYPTO_ONCE kp_once = CRYPTO_ONCE_STATIC_INIT;

/* At exit, before OpenSSL's own cleanup (atexit runs the handlers in
 * reverse order, and OpenSSL registered its own when it started): the
 * context's random generators are per thread and would otherwise be left
 * behind. Every SSL_CTX and key of the context is gone by then. */
static void
kp_libctx_free(void)
{
	for (int i = 1; i >= 0; i--)
		if (kp_prov[i] != NULL)
			OSSL_PROVIDER_unload(kp_prov[i]);
	kp_prov[0] = kp_prov[1] = NULL;
	OSSL_LIB_CTX_free(kp_libctx);
	kp_libctx = NULL;
}

static void
kp_libctx_init(void)
{
	if ((kp_libctx = OSSL_LIB_CTX_new()) == NULL ||
	    !OSSL_PROVIDER_add_builtin(kp_libctx, KP_NAME, kp_provider_init) ||
	    (kp_prov[0] = OSSL_PROVIDER_load(kp_libctx, "default")) == NULL ||
	    (kp_prov[1] = OSSL_PROVIDER_load(kp_libctx, KP_NAME)) == NULL) {
		log_ossl("cannot set up the key proxy provider");
		kp_libctx_free();
		return;
	}
	if (atexit(kp_libctx_free) != 0)
		log_warnx("cannot register the key proxy's cleanup");
}

/* A stand-in for real (a key of the provider in libctx, signing with
 * propq) in the proxy's library context. */
static int
kp_key_make(EVP_PKEY *real, OSSL_LIB_CTX *libctx, const char *propq, EVP_PKEY **out)
{
	struct kp_src src = { real, libctx, propq };
	void *srcp = &src;
	OSSL_PARAM params[2];
	EVP_PKEY_CTX *pc = NULL;
	int r = ERR_CRYPTO;

	*out = NULL;
	if (!CRYPTO_THREAD_run_once(&kp_once, kp_libctx_init) || kp_libctx == NULL)
		return ERR_CRYPTO;
	params[0] = OSSL_PARAM_construct_octet_ptr(KP_PARAM_SRC, &srcp, sizeof(src));
	params[1] = OSSL_PARAM_construct_end();
	if ((pc = EVP_PKEY_CTX_new_from_name(kp_libctx, "EC", KP_PROPS)) == NULL ||
	    EVP_PKEY_fromdata_init(pc) != 1 ||
	    EVP_PKEY_fromdata(pc, out, EVP_PKEY_KEYPAIR, params) != 1) {
		log_ossl("cannot make the TLS stand-in for the keystore's key");
		*out = NULL;
		goto out;
	}
	r = 0;
out:
	EVP_PKEY_CTX_free(pc);
	return r;
}

/* ---------------------------------------------------------------------
 * The identity.
 */

/* The installed CA chain (PEM, issuing CA first). */
static int
chain_read(const struct keystore *ks, STACK_OF(X509) **out)
{
	char path[PATH_MAX], *pem = NULL;
	size_t len = 0;
	STACK_OF(X509) *sk = NULL;
	BIO *b = NULL;
	X509 *x;
	int r, n;

	*out = NULL;
	n = snprintf(path, sizeof(path), "%s/%s", ks->dir, CHAIN_FILE);
	if (n < 0 || (size_t)n >= sizeof(path))
		return ERR_INVALID;
	if ((r = file_read_all(path, CHAIN_PEM_MAX, &pem, &len)) != 0) {
		log_warnx("%s: %s", path, provd_strerror(r));
		return r == ERR_NOT_FOUND ? ERR_NOT_FOUND : ERR_IO;
	}
	r = ERR_NOMEM;
	if ((sk = sk_X509_new_null()) == NULL || (b = BIO_new_mem_buf(pem, (int)len)) == NULL)
		goto out;
	while (sk_X509_num(sk) < CHAIN_CERTS_MAX &&
	    (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			goto out;
		}
	ERR_clear_error();	/* the end of the file reads as an error */
	if (sk_X509_num(sk) == 0) {
		log_warnx("%s: no CA certificate", path);
		r = ERR_INVALID;
		goto out;
	}
	*out = sk;
	sk = NULL;
	r = 0;
out:
	BIO_free(b);
	free(pem);
	sk_X509_pop_free(sk, X509_free);
	return r;
}

int
keystore_tls_identity(struct keystore *ks, EVP_PKEY **key, X509 **cert,
    STACK_OF(X509) **chain, OSSL_LIB_CTX **libctx, const char **propq)
{
	EVP_PKEY *real = NULL, *stand = NULL;
	STACK_OF(X509) *sk = NULL;
	uint8_t *der = NULL;
	size_t len = 0;
	const unsigned char *p;
	X509 *x = NULL;
	int r;

	if (key != NULL)
		*key = NULL;
	if (cert != NULL)
		*cert = NULL;
	if (chain != NULL)
		*chain = NULL;
	if (libctx != NULL)
		*libctx = NULL;
	if (propq != NULL)
		*propq = NULL;
	if (ks == NULL || key == NULL || cert == NULL || chain == NULL || libctx == NULL ||
	    propq == NULL)
		return ERR_INVALID;
	if ((r = keystore_identity(ks, &real, &der, &len)) != 0)
		return r;
	p = der;
	if ((x = d2i_X509(NULL, &p, (long)len)) == NULL) {
		log_ossl("%s: the installed certificate does not parse", ks->dir);
		r = ERR_INVALID;
		goto out;
	}
	if ((r = chain_read(ks, &sk)) != 0)
		goto out;
	if (ks->libctx != NULL) {
		if ((r = kp_key_make(real, ks->libctx, ks->sign_propq, &stand)) != 0)
			goto out;
		EVP_PKEY_free(real);
		real = stand;
		*libctx = kp_libctx;
		*propq = KP_TLS_PROPQ;
	}
	*key = real;
	*cert = x;
	*chain = sk;
	real = NULL;
	x = NULL;
	sk = NULL;
	r = 0;
out:
	EVP_PKEY_free(real);
	X509_free(x);
	sk_X509_pop_free(sk, X509_free);
	free(der);
	return r;
}
