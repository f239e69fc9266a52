/*
 * util.c: small helpers shared by every library — hex, whole-file reads,
 * secret files on the OpenSSL secure heap, atomic writes, checked integers,
 * clocks.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "common/common.h"

void
msg_set(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

void
hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char hx[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * len] = '\0';
}

int
hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
hex_decode(const char *in, uint8_t *out, size_t outlen)
{
	if (in == NULL || strnlen(in, 2 * outlen + 1) != 2 * outlen)
		return ERR_INVALID;
	for (size_t i = 0; i < outlen; i++) {
		int hi = hex_digit((unsigned char)in[2 * i]);
		int lo = hex_digit((unsigned char)in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return ERR_INVALID;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* Reads fd to EOF into buf (capacity cap); fails past cap. */
static int
read_fd(int fd, char *buf, size_t cap, size_t *len)
{
	size_t off = 0;

	for (;;) {
		if (off == cap) {
			char c;
			ssize_t n = read(fd, &c, 1);
			if (n == 0)
				break;
			return n < 0 ? ERR_IO : ERR_TOO_BIG;
		}
		ssize_t n = read(fd, buf + off, cap - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return ERR_IO;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	*len = off;
	return 0;
}

int
file_read_all(const char *path, size_t max, char **out, size_t *outlen)
{
	int r = ERR_INTERNAL, fd;
	char *buf = NULL;
	size_t len = 0;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		log_debug("%s: %s", path, strerror(errno));
		return ERR_IO;
	}
	if ((buf = malloc(max + 1)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	if ((r = read_fd(fd, buf, max, &len)) != 0)
		goto out;
	buf[len] = '\0';
	*out = buf;
	buf = NULL;
	if (outlen != NULL)
		*outlen = len;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

int
secret_read_file(const char *path, char **out)
{
	enum { SECRET_MAX = 4096 };
	int r = ERR_INTERNAL, fd;
	char *buf = NULL;
	size_t len = 0;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return ERR_IO;
	if ((buf = OPENSSL_secure_zalloc(SECRET_MAX + 1)) == NULL) {
		r = ERR_NOMEM;
		goto out;
	}
	if ((r = read_fd(fd, buf, SECRET_MAX, &len)) != 0)
		goto out;
	buf[len] = '\0';
	/* the first line only; a trailing newline is not part of the secret */
	char *nl = memchr(buf, '\n', len);
	if (nl != NULL)
		OPENSSL_cleanse(nl, len - (size_t)(nl - buf));
	if (buf[0] == '\0') {
		r = ERR_INVALID;
		goto out;
	}
	*out = buf;
	buf = NULL;
	r = 0;
out:
	if (buf != NULL)
		OPENSSL_secure_clear_free(buf, SECRET_MAX + 1);
	close(fd);
	return r;
}

int
secret_take_arg(char *arg, char **out)
{
	size_t len = strlen(arg);

	if ((*out = OPENSSL_secure_zalloc(len + 1)) == NULL)
		return ERR_NOMEM;
	memcpy(*out, arg, len);
	OPENSSL_cleanse(arg, len);
	return 0;
}

void
secret_free(char *s)
{
	if (s == NULL)
		return;
	if (CRYPTO_secure_allocated(s))
		OPENSSL_secure_clear_free(s, strlen(s) + 1);
	else {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

int
file_write_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	char tmp[PATH_MAX];
	int fd, r = ERR_IO;
	size_t off = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp))
		return ERR_INVALID;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		log_warnx("%s: %s", tmp, strerror(errno));
		return ERR_IO;
	}
	if (fchmod(fd, mode) != 0)
		goto fail;
	while (off < len) {
		ssize_t n = write(fd, (const char *)data + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto fail;
	/* make the rename durable */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
fail:
	log_warnx("%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}

int
parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return ERR_INVALID;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return ERR_INVALID;
	*out = (int64_t)v;
	return 0;
}

uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
time_format_rfc3339(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void
str_copy(char *dst, size_t n, const char *src)
{
	size_t len = strnlen(src, n - 1);

	memcpy(dst, src, len);
	dst[len] = '\0';
}

int
b64_decode(const char *in, size_t len, uint8_t *out, size_t outmax, size_t *outlen)
{
	size_t pad = 0;
	int n;

	*outlen = 0;
	if (len == 0 || len % 4 != 0 || len > INT_MAX)
		return ERR_INVALID;
	if (len / 4 * 3 > outmax)
		return ERR_TOO_BIG;
	/* EVP_DecodeBlock skips white space: only the alphabet gets there */
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '=' && i >= len - 2)
			pad++;
		else if (pad > 0 || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return ERR_INVALID;
	}
	if ((n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len)) < 0 ||
	    (size_t)n < pad)
		return ERR_INVALID;
	*outlen = (size_t)n - pad;
	return 0;
}
