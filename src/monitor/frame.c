/* frame.c: a security event as a SIEM collector receives it: RFC 5424 with structured
 * data, CEF inside RFC 5424, or a JSON line. RFC 5424 and CEF records are octet-counted
 * (RFC 5425/6587 "LEN SP MSG"), so no byte of a field can end a record early. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "moat/monitor_export.h"

int moat_siem_format_parse(const char *s, enum moat_siem_format *out, struct moat_err *err)
{
	if (s && strcmp(s, "rfc5424") == 0) {
		*out = MOAT_SIEM_RFC5424;
	} else if (s && strcmp(s, "json") == 0) {
		*out = MOAT_SIEM_JSON;
	} else if (s && strcmp(s, "cef") == 0) {
		*out = MOAT_SIEM_CEF;
	} else {
		return moat_err_set(err, MOAT_EINVAL, "format must be rfc5424, json or cef");
	}
	return 0;
}

const char *moat_siem_format_name(enum moat_siem_format f)
{
	switch (f) {
	case MOAT_SIEM_RFC5424:
		return "rfc5424";
	case MOAT_SIEM_JSON:
		return "json";
	case MOAT_SIEM_CEF:
		return "cef";
	}
	return "?";
}

/* A writer that stops at the end of its buffer and remembers that it did. */
struct w {
	char *out;
	size_t size, at;
	bool full;
};

static void put(struct w *w, const char *s, size_t n)
{
	if (w->full || w->at + n >= w->size) {
		w->full = true;
		return;
	}
	memcpy(w->out + w->at, s, n);
	w->at += n;
}

static void puts_(struct w *w, const char *s)
{
	put(w, s, strlen(s));
}

static void putf(struct w *w, const char *fmt, ...) MOAT_PRINTF(2, 3);
static void putf(struct w *w, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		w->full = true;
		return;
	}
	put(w, tmp, (size_t)n);
}

/* Each byte of s, those in esc preceded by a backslash; a CR or LF (never in a parsed
 * event, which is printable ASCII) becomes a space. */
static void put_escaped(struct w *w, const char *s, const char *esc)
{
	for (; *s; s++) {
		char c = (*s == '\r' || *s == '\n') ? ' ' : *s;
		if (strchr(esc, c)) {
			put(w, "\\", 1);
		}
		put(w, &c, 1);
	}
}

/* Severity (RFC 5424): 4 warning for refusals and bans, 6 informational otherwise. */
static int severity(const char *kind)
{
	return moat_sec_event_alerts(kind) ? 4 : 6;
}

/* CEF severity 0..10 */
static int cef_severity(const char *kind)
{
	if (strcmp(kind, "revoked_kicked") == 0 || strcmp(kind, "crl_rejected") == 0 ||
	    strcmp(kind, "flapping_banned") == 0) {
		return 8;
	}
	return moat_sec_event_alerts(kind) ? 5 : 2;
}

/* Header of an RFC 5424 record: facility authpriv (10). */
static void header(struct w *w, const struct moat_sec_event *ev, const char *host)
{
	time_t secs = (time_t)(ev->time_ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char ts[40];
	if (strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		w->full = true;
		return;
	}
	char hostbuf[256];
	size_t hl = 0;
	/* HOSTNAME: 1..255 PRINTUSASCII (no space) */
	for (const char *p = host ? host : ""; *p && hl + 1 < sizeof(hostbuf); p++) {
		if (*p > 0x20 && *p < 0x7f) {
			hostbuf[hl++] = *p;
		}
	}
	hostbuf[hl] = '\0';
	putf(w, "<%d>1 %s.%03dZ %s moat - %s ", 10 * 8 + severity(ev->kind), ts,
	     (int)(ev->time_ms % 1000), hl ? hostbuf : "-", ev->kind);
}

static void sd_param(struct w *w, const char *name, const char *value)
{
	if (!value[0]) {
		return;
	}
	putf(w, " %s=\"", name);
	put_escaped(w, value, "\"\\]");
	put(w, "\"", 1);
}

static void cef_ext(struct w *w, const char *key, const char *value)
{
	if (!value[0]) {
		return;
	}
	putf(w, " %s=", key);
	put_escaped(w, value, "=\\");
}

static size_t octet_count(char *out, size_t size, const char *rec, size_t len)
{
	int n = snprintf(out, size, "%zu ", len);
	if (n < 0 || (size_t)n + len >= size) {
		return 0;
	}
	memmove(out + n, rec, len);
	out[(size_t)n + len] = '\0';
	return (size_t)n + len;
}

size_t moat_siem_frame(enum moat_siem_format f, const struct moat_sec_event *ev, const char *host,
		       char *out, size_t size)
{
	char rec[MOAT_SIEM_FRAME_MAX];
	struct w w = {.out = rec, .size = sizeof(rec)};
	if (size == 0) {
		return 0;
	}
	if (f == MOAT_SIEM_JSON) {
		size_t n = 0;
		if (!moat_sec_event_json(ev, out, size > 1 ? size - 1 : 0, &n) || n + 2 > size) {
			return 0;
		}
		out[n++] = '\n';
		out[n] = '\0';
		return n;
	}
	header(&w, ev, host);
	if (f == MOAT_SIEM_RFC5424) {
		puts_(&w, "[" MOAT_SIEM_SD_ID);
		sd_param(&w, "kind", ev->kind);
		sd_param(&w, "identity", ev->identity);
		sd_param(&w, "client_id", ev->client_id);
		sd_param(&w, "address", ev->address);
		sd_param(&w, "reason", ev->reason);
		sd_param(&w, "detail", ev->detail);
		putf(&w, " count=\"%" PRIu64 "\" suppressed=\"%" PRIu64 "\"", ev->count,
		     ev->suppressed);
		if (ev->repeats) {
			putf(&w, " repeats=\"%" PRIu64 "\"", ev->repeats);
		}
		puts_(&w, "]");
		/* MSG: a short human text, plain ASCII (no BOM) */
		putf(&w, " security event %s", ev->kind);
		if (ev->identity[0]) {
			puts_(&w, " identity=");
			put_escaped(&w, ev->identity, "");
		}
	} else {
		/* CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|
		 * Severity|Extension; '|' and '\' escaped in the header, '=' and '\' in
		 * the extension. */
		puts_(&w, "- CEF:0|moat|moat|" MOAT_VERSION "|");
		put_escaped(&w, ev->kind, "|\\");
		puts_(&w, "|");
		put_escaped(&w, ev->kind, "|\\");
		putf(&w, "|%d|rt=%" PRId64, cef_severity(ev->kind), ev->time_ms);
		cef_ext(&w, "suser", ev->identity);
		cef_ext(&w, "cs1Label", ev->client_id[0] ? "client_id" : "");
		cef_ext(&w, "cs1", ev->client_id);
		cef_ext(&w, "src", ev->address);
		cef_ext(&w, "reason", ev->reason);
		cef_ext(&w, "msg", ev->detail);
		putf(&w, " cnt=%" PRIu64, ev->count ? ev->count : 1);
		if (ev->repeats) {
			putf(&w, " cn1Label=repeats cn1=%" PRIu64, ev->repeats);
		}
	}
	if (w.full) {
		return 0;
	}
	return octet_count(out, size, rec, w.at);
}

int moat_http_status_line_parse(const char *buf, size_t len, int *out_status)
{
	/* "HTTP/1.x SP 3DIGIT SP|CR" */
	if (len < 13 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
	    buf[8] != ' ') {
		return MOAT_EINVAL;
	}
	int v = 0;
	for (int i = 9; i < 12; i++) {
		if (buf[i] < '0' || buf[i] > '9') {
			return MOAT_EINVAL;
		}
		v = v * 10 + (buf[i] - '0');
	}
	if (v < 100 || (buf[12] != ' ' && buf[12] != '\r')) {
		return MOAT_EINVAL;
	}
	*out_status = v;
	return 0;
}
