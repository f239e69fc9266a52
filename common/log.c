/*
 * log.c: one-line log records to stderr or syslog, as text or JSON lines,
 * tagged with the function name and the calling thread's request/job id.
 */
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <openssl/err.h>

#include "common/common.h"

static enum log_level g_level = LOG_LVL_INFO;
static int g_json;
static int g_syslog;
static const char *g_prog = "provd";
static _Thread_local char t_id[64];

static const char *lvl_names[] = { "error", "warn", "info", "debug" };

void
log_init(const char *progname, enum log_level level, int json, int use_syslog)
{
	if (progname != NULL)
		g_prog = progname;
	g_level = level;
	g_json = json;
	g_syslog = use_syslog;
	if (use_syslog)
		openlog(g_prog, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int
log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(lvl_names) / sizeof(lvl_names[0]); i++)
		if (strcmp(s, lvl_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return ERR_INVALID;
}

void
log_set_id(const char *id)
{
	if (id == NULL)
		t_id[0] = '\0';
	else
		snprintf(t_id, sizeof(t_id), "%s", id);
}

/* JSON string escaping of s into out (always terminated). */
static void
json_escape(const char *s, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *s != '\0' && o + 7 < outlen; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(out + o, outlen - o, "\\u%04x", c);
		} else
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

static void
log_emit(enum log_level lvl, const char *func, const char *msg)
{
	static const int sysprio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

	if (g_syslog) {
		if (t_id[0] != '\0')
			syslog(sysprio[lvl], "[%s] %s: %s", t_id, func, msg);
		else
			syslog(sysprio[lvl], "%s: %s", func, msg);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char when[40];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	if (g_json) {
		char emsg[2048], eid[160];
		json_escape(msg, emsg, sizeof(emsg));
		json_escape(t_id, eid, sizeof(eid));
		fprintf(stderr, "{\"ts\":\"%s.%03ldZ\",\"prog\":\"%s\",\"level\":\"%s\","
		    "\"func\":\"%s\",\"id\":\"%s\",\"msg\":\"%s\"}\n", when,
		    ts.tv_nsec / 1000000, g_prog, lvl_names[lvl], func, eid, emsg);
	} else if (t_id[0] != '\0')
		fprintf(stderr, "%s.%03ldZ %s %s [%s] %s: %s\n", when,
		    ts.tv_nsec / 1000000, g_prog, lvl_names[lvl], t_id, func, msg);
	else
		fprintf(stderr, "%s.%03ldZ %s %s %s: %s\n", when,
		    ts.tv_nsec / 1000000, g_prog, lvl_names[lvl], func, msg);
}

void
log_msg(enum log_level lvl, const char *func, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (lvl > g_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_emit(lvl, func, msg);
}

void
log_openssl(const char *func, const char *fmt, ...)
{
	char msg[1024], buf[256];
	unsigned long e;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_emit(LOG_LVL_ERROR, func, msg);
	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_emit(LOG_LVL_ERROR, func, buf);
	}
}
