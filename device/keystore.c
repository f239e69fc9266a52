/*
 * keystore.c: the keystore interface callers see. keystore_open picks a
 * backend from the table below (one file per backend, keystore_int.h); what
 * is the same for every backend lives here: the files of the state
 * directory, the CSR, the certificate/key match and the atomic install.
 *
 * The state directory (0700) holds
 *
 *   pending.key            the pending key, PEM from the backend's encoder:
 *                          PKCS#8 for "file", the TPM-wrapped "TSS2 PRIVATE
 *                          KEY" blob for "tpm2"; 0600
 *   id -> id.<16 hex>      symlink naming the installed identity
 *   id.<16 hex>/key.pem    the installed key (same format), 0600
 *   id.<16 hex>/cert.der   its certificate
 *   id.<16 hex>/chain.pem  the CA chain, issuing CA first (may be empty)
 *
 * Why a symlink: the install must switch a whole identity (three files) at
 * once. rename(2) cannot replace a non-empty directory, RENAME_EXCHANGE is
 * Linux-only and missing on some filesystems (jffs2, older ubifs), and two
 * renames (id -> id.old, id.new -> id) leave a moment with no identity at
 * all. Replacing a symlink with rename(2) is one atomic step on any POSIX
 * filesystem (Kubernetes' AtomicWriter and daemontools do the same).
 * keystore_install:
 *
 *   1. checks the certificate, the chain and that the certificate's public
 *      key is the pending key's;
 *   2. makes id.<random>/ and writes key.pem (the pending key's bytes),
 *      cert.der and chain.pem into it, each with file_write_atomic (data
 *      fsynced, then the directory), then fsyncs the state directory;
 *   3. COMMIT: symlink id.tmp -> id.<random>, rename id.tmp over id, fsync;
 *   4. removes pending.key and the previous id.<...>/, fsync.
 *
 * After a crash before the rename of step 3 "id" still names the old
 * identity (or nothing) and pending.key is intact; after it, "id" names the
 * new, complete identity. keystore_open then tidies up (ks_recover): every
 * id.* entry that "id" does not name is a half-built or superseded identity
 * and is removed, and a pending.key whose bytes are those of the installed
 * key.pem is the one step 4 did not get to remove. (Keys are fresh each
 * time, so a pending key equals the installed one only in that case — or
 * when the same server-made key was imported again; then the intake starts
 * over after the restart.) Readers only ever follow "id", so even before
 * that tidying they see one complete identity.
 *
 * A keystore belongs to one thread at a time and a state directory to one
 * open keystore.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "device/device.h"
#include "device/keystore_int.h"

static const struct keystore_ops *const backends[] = {
	&keystore_file_ops,
	&keystore_tpm2_ops,
};

#define PENDING_NAME	"pending.key"
#define ID_LINK		"id"
#define ID_TMP_LINK	"id.tmp"
#define ID_PREFIX	"id."
#define ID_RAND_LEN	8			/* bytes, 16 hex digits */
#define ID_NAME_LEN	(sizeof(ID_PREFIX) + 2 * ID_RAND_LEN)	/* with NUL */
#define KEY_NAME	"key.pem"
#define CERT_NAME	"cert.der"
#define CHAIN_NAME	"chain.pem"

#define KEY_PEM_MAX	16384		/* a P-256 key or TSS2 blob is < 1 KiB */
#define KEY_DER_MAX	4096		/* keystore_import */
#define CERT_MAX	16384		/* one certificate, DER */
#define CHAIN_MAX	8		/* CA certificates */

/* ---------------------------------------------------------------------
 * Small file helpers.
 */

/* dir/a or dir/a/b into out. ERR_INVALID when it does not fit. */
static int
ks_path(const struct keystore *ks, char *out, size_t outlen, const char *a,
    const char *b)
{
	int n;

	if (b != NULL)
		n = snprintf(out, outlen, "%s/%s/%s", ks->dir, a, b);
	else
		n = snprintf(out, outlen, "%s/%s", ks->dir, a);
	if (n < 0 || (size_t)n >= outlen) {
		log_warnx("%s: path too long", ks->dir);
		return ERR_INVALID;
	}
	return 0;
}

static int
fsync_dir(const char *path)
{
	int fd, r = 0;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		log_warnx("%s: %s", path, strerror(errno));
		return ERR_IO;
	}
	if (fsync(fd) != 0) {
		log_warnx("%s: fsync: %s", path, strerror(errno));
		r = ERR_IO;
	}
	close(fd);
	return r;
}

/* Overwrites a regular file with zeros and syncs it, before it is unlinked.
 * Best effort: a journaling or copy-on-write filesystem, or flash with its
 * own translation layer, may keep the old blocks anyway. */
static void
overwrite_file(const char *path)
{
	static const uint8_t zeros[4096];
	struct stat st;
	off_t left;
	int fd;

	if ((fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		for (left = st.st_size; left > 0;) {
			size_t n = left > (off_t)sizeof(zeros) ? sizeof(zeros) : (size_t)left;
			ssize_t w = write(fd, zeros, n);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			left -= w;
		}
		(void)fsync(fd);
	}
	close(fd);
}

/* Removes path: a file or symlink, or a directory of files (what an id.*
 * directory holds). Key files are overwritten first when wipe is set.
 * A path that is already gone is not an error. */
static int
rm_entry(const char *path, int wipe)
{
	char sub[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int r = 0;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : ERR_IO;
	if (!S_ISDIR(st.st_mode)) {
		if (wipe && S_ISREG(st.st_mode))
			overwrite_file(path);
		if (unlink(path) != 0 && errno != ENOENT) {
			log_warnx("%s: %s", path, strerror(errno));
			return ERR_IO;
		}
		return 0;
	}
	if ((d = opendir(path)) == NULL) {
		log_warnx("%s: %s", path, strerror(errno));
		return ERR_IO;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name) >= sizeof(sub)) {
			r = ERR_IO;
			continue;
		}
		if (wipe)
			overwrite_file(sub);
		/* one level only: an id.* directory never holds directories */
		if (unlink(sub) != 0 && errno != ENOENT) {
			log_warnx("%s: %s", sub, strerror(errno));
			r = ERR_IO;
		}
	}
	closedir(d);
	if (rmdir(path) != 0 && errno != ENOENT) {
		log_warnx("%s: %s", path, strerror(errno));
		r = ERR_IO;
	}
	return r;
}

/* Frees a buffer that held a private key (or its wrapped form). */
static void
key_buf_free(char *buf, size_t len)
{
	if (buf == NULL)
		return;
	OPENSSL_cleanse(buf, len);
	free(buf);
}

/* Whether name is an identity directory name: "id." and 16 hex digits. */
static int
id_name_ok(const char *name)
{
	size_t n = strlen(ID_PREFIX);

	if (strncmp(name, ID_PREFIX, n) != 0 || strlen(name) != ID_NAME_LEN - 1)
		return 0;
	for (size_t i = n; name[i] != '\0'; i++)
		if (hex_digit((unsigned char)name[i]) < 0)
			return 0;
	return 1;
}

/* The name of the installed identity's directory (what "id" points to):
 * 0, ERR_NOT_FOUND when nothing is installed, ERR_IO when "id" is not what
 * this code writes. */
static int
ks_current(const struct keystore *ks, char name[ID_NAME_LEN])
{
	char path[PATH_MAX], target[ID_NAME_LEN + 1];
	ssize_t n;
	int r;

	if ((r = ks_path(ks, path, sizeof(path), ID_LINK, NULL)) != 0)
		return r;
	if ((n = readlink(path, target, sizeof(target) - 1)) < 0) {
		if (errno == ENOENT)
			return ERR_NOT_FOUND;
		log_warnx("%s: %s", path, strerror(errno));
		return ERR_IO;
	}
	target[n] = '\0';
	if (!id_name_ok(target)) {
		log_warnx("%s: unexpected symlink target", path);
		return ERR_IO;
	}
	memcpy(name, target, ID_NAME_LEN);
	return 0;
}

/* ---------------------------------------------------------------------
 * Keys on disk: the backend's PEM encoder and decoder.
 */

int
keystore_key_check(EVP_PKEY *key)
{
	char group[64];
	size_t glen = 0;

	if (key == NULL || !EVP_PKEY_is_a(key, "EC") ||
	    !EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) ||
	    OBJ_sn2nid(group) != NID_X9_62_prime256v1) {
		ERR_clear_error();
		return ERR_KEY_POLICY;
	}
	return 0;
}

/* Writes key to path (0600) as PEM through the encoder of the key's
 * provider: PKCS#8 for software keys, the TSS2 blob for TPM keys. The PEM
 * is built in a secure-heap BIO, wiped when freed. */
static int
ks_key_write(struct keystore *ks, EVP_PKEY *key, const char *path)
{
	OSSL_ENCODER_CTX *ectx = NULL;
	BIO *bio = NULL;
	char *pem;
	long len;
	int r = ERR_CRYPTO;

	if ((bio = BIO_new(BIO_s_secmem())) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	if ((ectx = OSSL_ENCODER_CTX_new_for_pkey(key, OSSL_KEYMGMT_SELECT_KEYPAIR,
	    "PEM", "PrivateKeyInfo", ks->propq)) == NULL ||
	    OSSL_ENCODER_CTX_get_num_encoders(ectx) == 0) {
		log_ossl("no PEM encoder for the key");
		goto out;
	}
	if (!OSSL_ENCODER_to_bio(ectx, bio)) {
		log_ossl("cannot encode the key");
		goto out;
	}
	if ((len = BIO_get_mem_data(bio, &pem)) <= 0) {
		log_ossl("cannot encode the key");
		goto out;
	}
	r = file_write_atomic(path, pem, (size_t)len, 0600);
out:
	OSSL_ENCODER_CTX_free(ectx);
	BIO_free(bio);
	return r;
}

/* Reads a key file and decodes it in the backend's library context. When
 * pem is not NULL the file's bytes are returned too (the caller frees them
 * with key_buf_free). ERR_NOT_FOUND when there is no such file. */
static int
ks_key_read(struct keystore *ks, const char *path, EVP_PKEY **key, char **pem,
    size_t *pemlen)
{
	OSSL_DECODER_CTX *dctx = NULL;
	EVP_PKEY *pk = NULL;
	const unsigned char *p;
	char *buf = NULL;
	size_t len = 0, left;
	struct stat st;
	int r;

	*key = NULL;
	if (pem != NULL)
		*pem = NULL;
	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return ERR_NOT_FOUND;
		log_warnx("%s: %s", path, strerror(errno));
		return ERR_IO;
	}
	if ((r = file_read_all(path, KEY_PEM_MAX, &buf, &len)) != 0) {
		log_warnx("%s: cannot read the key: %s", path, provd_strerror(r));
		goto out;
	}
	r = ERR_CRYPTO;
	if ((dctx = OSSL_DECODER_CTX_new_for_pkey(&pk, "PEM", NULL, "EC",
	    OSSL_KEYMGMT_SELECT_PRIVATE_KEY, ks->libctx, ks->propq)) == NULL) {
		log_ossl("no PEM decoder for keys");
		goto out;
	}
	p = (const unsigned char *)buf;
	left = len;
	if (!OSSL_DECODER_from_data(dctx, &p, &left) || pk == NULL) {
		log_ossl("%s: cannot load the key", path);
		goto out;
	}
	if ((r = keystore_key_check(pk)) != 0) {
		log_warnx("%s: not a P-256 key", path);
		goto out;
	}
	*key = pk;
	pk = NULL;
	if (pem != NULL) {
		*pem = buf;
		*pemlen = len;
		buf = NULL;
	}
	r = 0;
out:
	OSSL_DECODER_CTX_free(dctx);
	EVP_PKEY_free(pk);
	key_buf_free(buf, len);
	return r;
}

/* 0 when cert's public key is key's public key, else ERR_INVALID. The key's
 * SubjectPublicKeyInfo is read back by the default provider before the
 * comparison, so a TPM-held key is compared on its public part only and
 * never asked to export anything. */
static int
key_matches_cert(EVP_PKEY *key, X509 *cert)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *pub = NULL, *cpub;
	int len, r = ERR_INVALID;

	if ((len = i2d_PUBKEY(key, &der)) <= 0) {
		log_ossl("cannot encode the public key");
		r = ERR_CRYPTO;
		goto out;
	}
	p = der;
	if ((pub = d2i_PUBKEY(NULL, &p, len)) == NULL) {
		log_ossl("cannot decode the public key");
		r = ERR_CRYPTO;
		goto out;
	}
	if ((cpub = X509_get0_pubkey(cert)) == NULL)
		goto out;
	if (EVP_PKEY_eq(pub, cpub) == 1)
		r = 0;
out:
	ERR_clear_error();
	OPENSSL_free(der);
	EVP_PKEY_free(pub);
	return r;
}

/* Parses exactly one DER certificate. ERR_INVALID or ERR_TOO_BIG. */
static int
cert_parse(const uint8_t *der, size_t len, X509 **out)
{
	const unsigned char *p = der;
	X509 *x;

	*out = NULL;
	if (der == NULL || len == 0)
		return ERR_INVALID;
	if (len > CERT_MAX)
		return ERR_TOO_BIG;
	if ((x = d2i_X509(NULL, &p, (long)len)) == NULL || p != der + len) {
		ERR_clear_error();
		X509_free(x);
		return ERR_INVALID;
	}
	*out = x;
	return 0;
}

/* ---------------------------------------------------------------------
 * Crash recovery (see the top of the file).
 */
static int
ks_recover(struct keystore *ks)
{
	char cur[ID_NAME_LEN], path[PATH_MAX], ipath[PATH_MAX];
	char *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	struct dirent *de;
	int have, changed = 0, r;
	DIR *d;

	if ((have = ks_current(ks, cur)) != 0 && have != ERR_NOT_FOUND)
		return have;
	if ((d = opendir(ks->dir)) == NULL) {
		log_warnx("%s: %s", ks->dir, strerror(errno));
		return ERR_IO;
	}
	r = 0;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		int stale = 0;

		if (strncmp(n, ID_PREFIX, strlen(ID_PREFIX)) == 0)
			stale = have != 0 || strcmp(n, cur) != 0;
		else if (strncmp(n, PENDING_NAME ".tmp.", strlen(PENDING_NAME ".tmp.")) == 0)
			stale = 1;	/* file_write_atomic cut short */
		if (!stale)
			continue;
		if ((r = ks_path(ks, path, sizeof(path), n, NULL)) != 0 ||
		    (r = rm_entry(path, 1)) != 0)
			break;
		log_info("%s: removed %s left by an unfinished operation", ks->dir, n);
		changed = 1;
	}
	closedir(d);
	if (r != 0)
		return r;

	/* a pending key that is the installed key: install got past its commit */
	if (have == 0 &&
	    (r = ks_path(ks, path, sizeof(path), PENDING_NAME, NULL)) == 0 &&
	    (r = ks_path(ks, ipath, sizeof(ipath), cur, KEY_NAME)) == 0 &&
	    access(path, F_OK) == 0 &&
	    file_read_all(path, KEY_PEM_MAX, &a, &alen) == 0 &&
	    file_read_all(ipath, KEY_PEM_MAX, &b, &blen) == 0 &&
	    alen == blen && CRYPTO_memcmp(a, b, alen) == 0) {
		if (unlink(path) != 0) {
			log_warnx("%s: %s", path, strerror(errno));
			r = ERR_IO;
		} else {
			log_info("%s: removed the pending key, installed already", ks->dir);
			changed = 1;
		}
	}
	key_buf_free(a, alen);
	key_buf_free(b, blen);
	if (r != 0)
		return r;
	return changed ? fsync_dir(ks->dir) : 0;
}

/* ---------------------------------------------------------------------
 * Open and close.
 */
int
keystore_open(const struct keystore_params *p, struct keystore **out)
{
	const struct keystore_ops *ops = NULL;
	struct keystore *ks = NULL;
	struct stat st;
	size_t len;
	int r = ERR_INTERNAL;

	if (out == NULL)
		return ERR_INVALID;
	*out = NULL;
	if (p == NULL || p->kind == NULL || p->dir == NULL || p->dir[0] == '\0') {
		log_warnx("keystore kind or directory missing");
		return ERR_CONFIG;
	}
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i]->name, p->kind) == 0) {
			ops = backends[i];
			break;
		}
	if (ops == NULL) {
		log_warnx("keystore kind \"%.32s\": unknown", p->kind);
		return ERR_CONFIG;
	}
	len = strlen(p->dir);
	while (len > 1 && p->dir[len - 1] == '/')
		len--;
	/* room for "/id.<16 hex>/chain.pem.tmp.<pid>" */
	if (len > PATH_MAX - 64) {
		log_warnx("keystore directory: path too long");
		return ERR_CONFIG;
	}
	if ((ks = calloc(1, sizeof(*ks))) == NULL || (ks->dir = strndup(p->dir, len)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	ks->ops = ops;
	if (mkdir(ks->dir, 0700) != 0 && errno != EEXIST) {
		log_warnx("%s: %s", ks->dir, strerror(errno));
		r = ERR_IO;
		goto out;
	}
	if (stat(ks->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		log_warnx("%s: not a directory", ks->dir);
		r = ERR_CONFIG;
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		log_warnx("%s: mode %03o, setting 0700", ks->dir, (unsigned)(st.st_mode & 0777));
		if (chmod(ks->dir, 0700) != 0) {
			log_warnx("%s: %s", ks->dir, strerror(errno));
			r = ERR_IO;
			goto out;
		}
	}
	if ((r = ops->open(ks, p)) != 0) {
		ks->ops = NULL;		/* nothing for close to release */
		goto out;
	}
	/* readers follow "id" only, so a store that cannot be tidied is still
	 * consistent; it stays open (keystore_wipe must remain possible) */
	if ((r = ks_recover(ks)) != 0)
		log_warnx("%s: cannot tidy the keystore: %s", ks->dir, provd_strerror(r));
	*out = ks;
	ks = NULL;
	r = 0;
out:
	keystore_close(ks);
	return r;
}

void
keystore_close(struct keystore *ks)
{
	if (ks == NULL)
		return;
	if (ks->ops != NULL)
		ks->ops->close(ks);
	free(ks->dir);
	free(ks);
}

const char *
keystore_kind(const struct keystore *ks)
{
	return ks != NULL ? ks->ops->name : "none";
}

int
keystore_can_import(const struct keystore *ks)
{
	return ks != NULL && ks->ops->import != NULL;
}

OSSL_LIB_CTX *
keystore_libctx(const struct keystore *ks)
{
	return ks != NULL ? ks->libctx : NULL;
}

const char *
keystore_propq(const struct keystore *ks)
{
	return ks != NULL ? ks->sign_propq : NULL;
}

/* ---------------------------------------------------------------------
 * Pending keys.
 */

/* A DER CSR (version 1, subject serialNumber=<mac>) signed with key. */
static int
ks_make_csr(struct keystore *ks, EVP_PKEY *key, const uint8_t mac[MAC_LEN],
    uint8_t **out, size_t *outlen)
{
	char macs[MAC_STR_LEN];
	X509_REQ *req = NULL;
	EVP_MD_CTX *mctx = NULL;
	uint8_t *der = NULL, *p;
	int len, r = ERR_CRYPTO;

	mac_format(mac, macs);
	if ((req = X509_REQ_new()) == NULL || (mctx = EVP_MD_CTX_new()) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(req), NID_serialNumber,
	    MBSTRING_ASC, (const unsigned char *)macs, -1, -1, 0) ||
	    !X509_REQ_set_pubkey(req, key)) {
		log_ossl("cannot build the CSR");
		goto out;
	}
	if (EVP_DigestSignInit_ex(mctx, NULL, "SHA256", ks->libctx, ks->sign_propq, key,
	    NULL) <= 0 || X509_REQ_sign_ctx(req, mctx) <= 0) {
		log_ossl("cannot sign the CSR");
		goto out;
	}
	if ((len = i2d_X509_REQ(req, NULL)) <= 0) {
		log_ossl("cannot encode the CSR");
		goto out;
	}
	if ((der = malloc((size_t)len)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	p = der;
	if (i2d_X509_REQ(req, &p) != len) {
		log_ossl("cannot encode the CSR");
		goto out;
	}
	*out = der;
	*outlen = (size_t)len;
	der = NULL;
	r = 0;
out:
	free(der);
	EVP_MD_CTX_free(mctx);
	X509_REQ_free(req);
	return r;
}

int
keystore_generate(struct keystore *ks, const uint8_t mac[MAC_LEN],
    uint8_t **csr, size_t *csrlen)
{
	char path[PATH_MAX], hex[MAC_HEX_LEN];
	uint8_t tmp[MAC_LEN], *der = NULL;
	size_t derlen = 0;
	EVP_PKEY *key = NULL;
	int r = ERR_INTERNAL;

	if (csr != NULL)
		*csr = NULL;
	if (csrlen != NULL)
		*csrlen = 0;
	if (ks == NULL || mac == NULL || csr == NULL || csrlen == NULL)
		return ERR_INVALID;
	/* the rule for addresses everywhere: the one mac_parse applies */
	mac_format_hex(mac, hex);
	if (mac_parse(hex, tmp) != 0)
		return ERR_BAD_MAC;
	if ((r = ks_path(ks, path, sizeof(path), PENDING_NAME, NULL)) != 0)
		return r;
	if ((r = ks->ops->generate(ks, &key)) != 0)
		goto out;
	if ((r = ks_make_csr(ks, key, mac, &der, &derlen)) != 0)
		goto out;
	if ((r = ks_key_write(ks, key, path)) != 0)
		goto out;
	*csr = der;
	*csrlen = derlen;
	der = NULL;
	r = 0;
out:
	free(der);
	EVP_PKEY_free(key);
	return r;
}

int
keystore_import(struct keystore *ks, const uint8_t *pkcs8, size_t len)
{
	char path[PATH_MAX];
	EVP_PKEY *key = NULL;
	int r = ERR_INTERNAL;

	if (ks == NULL || (pkcs8 == NULL && len > 0))
		return ERR_INVALID;
	if (ks->ops->import == NULL)
		return ERR_UNSUPPORTED;
	if (len == 0)
		return ERR_INVALID;
	if (len > KEY_DER_MAX)
		return ERR_TOO_BIG;
	if ((r = ks_path(ks, path, sizeof(path), PENDING_NAME, NULL)) != 0)
		return r;
	if ((r = ks->ops->import(ks, pkcs8, len, &key)) != 0)
		goto out;
	r = ks_key_write(ks, key, path);
out:
	EVP_PKEY_free(key);
	return r;
}

/* ---------------------------------------------------------------------
 * Install.
 */

/* The chain as concatenated PEM (possibly empty) into a memory BIO. */
static int
chain_pem(const uint8_t *const *chain, const size_t *chainlen, size_t nchain,
    BIO **out)
{
	BIO *bio;
	X509 *x = NULL;
	int r;

	*out = NULL;
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < nchain; i++) {
		if ((r = cert_parse(chain[i], chainlen[i], &x)) != 0) {
			log_warnx("CA certificate %zu of the chain: %s", i, provd_strerror(r));
			goto out;
		}
		if (!PEM_write_bio_X509(bio, x)) {
			log_ossl("cannot write the chain");
			r = ERR_CRYPTO;
			goto out;
		}
		X509_free(x);
		x = NULL;
	}
	*out = bio;
	bio = NULL;
	r = 0;
out:
	X509_free(x);
	BIO_free(bio);
	return r;
}

int
keystore_install(struct keystore *ks, const uint8_t *cert, size_t certlen,
    const uint8_t *const *chain, const size_t *chainlen, size_t nchain)
{
	char pending[PATH_MAX], newdir[PATH_MAX], path[PATH_MAX], tmplink[PATH_MAX];
	char link[PATH_MAX], oldname[ID_NAME_LEN], newname[ID_NAME_LEN];
	uint8_t rnd[ID_RAND_LEN];
	char *pem = NULL, *chainbuf;
	size_t pemlen = 0;
	long chainbuflen;
	X509 *x = NULL;
	BIO *cbio = NULL;
	EVP_PKEY *key = NULL;
	int r = ERR_INTERNAL, made = 0, haveold;

	if (ks == NULL || (nchain > 0 && (chain == NULL || chainlen == NULL)))
		return ERR_INVALID;
	if (nchain > CHAIN_MAX)
		return ERR_TOO_BIG;
	if ((r = cert_parse(cert, certlen, &x)) != 0) {
		log_warnx("certificate: %s", provd_strerror(r));
		return r;
	}
	if ((r = chain_pem(chain, chainlen, nchain, &cbio)) != 0)
		goto out;
	if ((r = ks_path(ks, pending, sizeof(pending), PENDING_NAME, NULL)) != 0 ||
	    (r = ks_path(ks, link, sizeof(link), ID_LINK, NULL)) != 0 ||
	    (r = ks_path(ks, tmplink, sizeof(tmplink), ID_TMP_LINK, NULL)) != 0)
		goto out;
	if ((r = ks_key_read(ks, pending, &key, &pem, &pemlen)) != 0) {
		if (r == ERR_NOT_FOUND)
			log_warnx("%s: no pending key to install", ks->dir);
		goto out;
	}
	if ((r = key_matches_cert(key, x)) != 0) {
		log_warnx("%s: the certificate is not for the pending key", ks->dir);
		goto out;
	}
	if ((haveold = ks_current(ks, oldname)) != 0 && haveold != ERR_NOT_FOUND) {
		r = haveold;
		goto out;
	}

	/* 2. the new identity, complete and durable, beside the old one */
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		log_ossl("RAND_bytes");
		r = ERR_CRYPTO;
		goto out;
	}
	memcpy(newname, ID_PREFIX, strlen(ID_PREFIX));
	hex_encode(rnd, sizeof(rnd), newname + strlen(ID_PREFIX));
	if ((r = ks_path(ks, newdir, sizeof(newdir), newname, NULL)) != 0)
		goto out;
	if (mkdir(newdir, 0700) != 0) {
		log_warnx("%s: %s", newdir, strerror(errno));
		r = ERR_IO;
		goto out;
	}
	made = 1;
	chainbuflen = BIO_get_mem_data(cbio, &chainbuf);
	if ((r = ks_path(ks, path, sizeof(path), newname, KEY_NAME)) != 0 ||
	    (r = file_write_atomic(path, pem, pemlen, 0600)) != 0 ||
	    (r = ks_path(ks, path, sizeof(path), newname, CERT_NAME)) != 0 ||
	    (r = file_write_atomic(path, cert, certlen, 0644)) != 0 ||
	    (r = ks_path(ks, path, sizeof(path), newname, CHAIN_NAME)) != 0 ||
	    (r = file_write_atomic(path, chainbuflen > 0 ? chainbuf : "",
	    chainbuflen > 0 ? (size_t)chainbuflen : 0, 0644)) != 0 ||
	    (r = fsync_dir(ks->dir)) != 0)
		goto out;

	/* 3. commit: one rename switches "id" from the old to the new */
	(void)unlink(tmplink);
	if (symlink(newname, tmplink) != 0) {
		log_warnx("%s: %s", tmplink, strerror(errno));
		r = ERR_IO;
		goto out;
	}
	if (rename(tmplink, link) != 0) {
		log_warnx("%s: %s", link, strerror(errno));
		(void)unlink(tmplink);
		r = ERR_IO;
		goto out;
	}
	made = 0;
	(void)fsync_dir(ks->dir);
	log_info("%s: identity installed", ks->dir);

	/* 4. tidy up; what a crash leaves here keystore_open removes, so a
	 * failure is logged but the install stands */
	if (unlink(pending) != 0)
		log_warnx("%s: %s", pending, strerror(errno));
	if (haveold == 0 && ks_path(ks, path, sizeof(path), oldname, NULL) == 0)
		(void)rm_entry(path, 1);
	(void)fsync_dir(ks->dir);
	r = 0;
out:
	if (made) {
		(void)rm_entry(newdir, 1);
		(void)fsync_dir(ks->dir);
	}
	key_buf_free(pem, pemlen);
	EVP_PKEY_free(key);
	BIO_free(cbio);
	X509_free(x);
	return r;
}

/* ---------------------------------------------------------------------
 * The installed identity, and factory reset.
 */
int
keystore_identity(struct keystore *ks, EVP_PKEY **key, uint8_t **cert,
    size_t *certlen)
{
	char cur[ID_NAME_LEN], path[PATH_MAX];
	EVP_PKEY *pk = NULL;
	X509 *x = NULL;
	char *der = NULL;
	size_t derlen = 0;
	int r;

	if (key != NULL)
		*key = NULL;
	if (cert != NULL)
		*cert = NULL;
	if (certlen != NULL)
		*certlen = 0;
	if (ks == NULL || key == NULL || cert == NULL || certlen == NULL)
		return ERR_INVALID;
	if ((r = ks_current(ks, cur)) != 0)
		return r;
	if ((r = ks_path(ks, path, sizeof(path), cur, CERT_NAME)) != 0)
		return r;
	if ((r = file_read_all(path, CERT_MAX, &der, &derlen)) != 0) {
		log_warnx("%s: %s", path, provd_strerror(r));
		goto out;
	}
	if ((r = cert_parse((uint8_t *)der, derlen, &x)) != 0) {
		log_warnx("%s: not a certificate", path);
		r = ERR_IO;
		goto out;
	}
	if ((r = ks_path(ks, path, sizeof(path), cur, KEY_NAME)) != 0 ||
	    (r = ks_key_read(ks, path, &pk, NULL, NULL)) != 0)
		goto out;
	/* install checked this; a mismatch now means the files were changed */
	if (key_matches_cert(pk, x) != 0) {
		log_warnx("%s: the installed key does not match its certificate", ks->dir);
		r = ERR_IO;
		goto out;
	}
	*key = pk;
	pk = NULL;
	*cert = (uint8_t *)der;
	*certlen = derlen;
	der = NULL;
	r = 0;
out:
	free(der);
	X509_free(x);
	EVP_PKEY_free(pk);
	return r;
}

int
keystore_wipe(struct keystore *ks)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int r = 0, e;

	if (ks == NULL)
		return ERR_INVALID;
	/* first the link, so that a crash part way leaves no identity */
	if ((e = ks_path(ks, path, sizeof(path), ID_LINK, NULL)) != 0 ||
	    (e = rm_entry(path, 0)) != 0 || (e = fsync_dir(ks->dir)) != 0)
		return e;
	if ((d = opendir(ks->dir)) == NULL) {
		log_warnx("%s: %s", ks->dir, strerror(errno));
		return ERR_IO;
	}
	/* only the names this file makes: the directory may hold others' files */
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;

		if (strncmp(n, ID_PREFIX, strlen(ID_PREFIX)) != 0 &&
		    strncmp(n, PENDING_NAME, strlen(PENDING_NAME)) != 0)
			continue;
		if ((e = ks_path(ks, path, sizeof(path), n, NULL)) != 0 ||
		    (e = rm_entry(path, 1)) != 0)
			r = e;
	}
	closedir(d);
	if ((e = fsync_dir(ks->dir)) != 0 && r == 0)
		r = e;
	if (r == 0)
		log_info("%s: keystore wiped", ks->dir);
	return r;
}
