/* brokerlog.c: TLS refusals read from Mosquitto's log (monitor.h): one strict line reader
 * and the matcher of the run of lines Mosquitto writes for a refused handshake. Pure: the
 * caller reads the file. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "moat/monitor.h"

#define TS_LEN 21 /* "2026-12-03T02:06:37: " */
#define TLS_ERROR_PREFIX "OpenSSL Error["
#define UNKNOWN_GONE_PREFIX "Client <unknown> disconnected"
#define PLUGIN_EVENT_PREFIX "moat: event "
#define ACCEPT_FAILED_PREFIX "Client connection from "
#define ACCEPT_FAILED_MIDDLE " failed: "

static bool timestamp_ok(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd: ";
	for (size_t i = 0; i < TS_LEN; i++) {
		if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i]) {
			return false;
		}
	}
	return true;
}

/* The timestamp (its shape checked) as seconds since the epoch: Mosquitto writes it with
 * strftime on localtime, so mktime reads it back; -1 when it cannot. */
static int64_t line_time(const char *s)
{
	int v[6] = {0};
	static const int at[6] = {0, 5, 8, 11, 14, 17}, width[6] = {4, 2, 2, 2, 2, 2};
	for (int i = 0; i < 6; i++) {
		for (int k = 0; k < width[i]; k++) {
			v[i] = v[i] * 10 + (s[at[i] + k] - '0');
		}
	}
	struct tm tm = {.tm_year = v[0] - 1900,
			.tm_mon = v[1] - 1,
			.tm_mday = v[2],
			.tm_hour = v[3],
			.tm_min = v[4],
			.tm_sec = v[5],
			.tm_isdst = -1};
	time_t t = mktime(&tm);
	return t == (time_t)-1 ? -1 : (int64_t)t;
}

static bool starts(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && memcmp(s, prefix, n) == 0;
}

/* "error:<code>:<lib>:<func>:<reason>" from p to end: the reason (after the fourth colon),
 * printable ASCII, not empty. */
static int ssl_reason(const char *p, const char *end, char *reason, size_t size,
		      struct moat_err *err)
{
	if (end - p < 6 || memcmp(p, "error:", 6) != 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "broker log: OpenSSL error without \"error:\"");
	}
	for (int colons = 0; colons < 4; p++) {
		if (p >= end) {
			return moat_err_set(err, MOAT_EINVAL,
					    "broker log: OpenSSL error without its reason");
		}
		colons += *p == ':';
	}
	size_t n = (size_t)(end - p);
	if (n == 0 || n >= size) {
		return moat_err_set(err, MOAT_EINVAL,
				    "broker log: OpenSSL error reason empty or too long");
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e) {
			return moat_err_set(err, MOAT_EINVAL,
					    "broker log: OpenSSL error reason not printable ASCII");
		}
	}
	memcpy(reason, p, n);
	reason[n] = '\0';
	return 0;
}

/* "OpenSSL Error[n]: error:...". */
static int tls_error(const char *s, size_t len, char *reason, size_t size, struct moat_err *err)
{
	const char *p = s + strlen(TLS_ERROR_PREFIX), *end = s + len;
	const char *q = p;
	while (q < end && *q >= '0' && *q <= '9') {
		q++;
	}
	if (q == p || end - q < 3 || memcmp(q, "]: ", 3) != 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "broker log: OpenSSL error without its index");
	}
	return ssl_reason(q + 3, end, reason, size, err);
}

/* "Client connection from <address> failed: error:...<reason>." (net.c, when the
 * handshake fails as the connection is accepted). */
static int accept_failed(const char *s, size_t len, struct moat_broker_log_line *out,
			 struct moat_err *err)
{
	const char *p = s + strlen(ACCEPT_FAILED_PREFIX), *end = s + len;
	const char *q = p;
	while (q < end && ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') ||
			   (*q >= 'A' && *q <= 'F') || *q == '.' || *q == ':')) {
		q++;
	}
	size_t alen = (size_t)(q - p);
	size_t mlen = strlen(ACCEPT_FAILED_MIDDLE);
	if (alen == 0 || alen > MOAT_EVENT_ADDR_MAX_LEN || (size_t)(end - q) < mlen ||
	    memcmp(q, ACCEPT_FAILED_MIDDLE, mlen) != 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "broker log: failed accept without an address");
	}
	memcpy(out->address, p, alen);
	out->address[alen] = '\0';
	q += mlen;
	if (end > q && end[-1] == '.') {
		end--; /* Mosquitto ends the sentence */
	}
	return ssl_reason(q, end, out->tls_reason, sizeof(out->tls_reason), err);
}

int moat_broker_log_line_parse(const char *line, size_t len, struct moat_broker_log_line *out,
			       struct moat_err *err)
{
	memset(out, 0, sizeof(*out));
	if (len > MOAT_BROKER_LOG_LINE_MAX) {
		return moat_err_set(err, MOAT_EINVAL, "broker log: line longer than %d bytes",
				    MOAT_BROKER_LOG_LINE_MAX);
	}
	if (len < TS_LEN || !timestamp_ok(line)) {
		return moat_err_set(err, MOAT_EINVAL, "broker log: line without its timestamp");
	}
	const char *s = line + TS_LEN;
	size_t n = len - TS_LEN;
	int rc = 0;
	out->time_s = line_time(line);
	if (starts(s, n, TLS_ERROR_PREFIX)) {
		out->kind = MOAT_BLOG_TLS_ERROR;
		rc = tls_error(s, n, out->tls_reason, sizeof(out->tls_reason), err);
	} else if (starts(s, n, UNKNOWN_GONE_PREFIX)) {
		out->kind = MOAT_BLOG_UNKNOWN_GONE;
	} else if (starts(s, n, ACCEPT_FAILED_PREFIX)) {
		out->kind = MOAT_BLOG_ACCEPT_FAILED;
		rc = accept_failed(s, n, out, err);
	} else if (starts(s, n, PLUGIN_EVENT_PREFIX)) {
		int64_t count = 0;
		out->kind = MOAT_BLOG_PLUGIN_EVENT;
		size_t at = strlen(PLUGIN_EVENT_PREFIX);
		rc = moat_monitor_plugin_event_parse(s + at, n - at, &out->ev, &count, err);
	}
	if (rc != 0) {
		memset(out, 0, sizeof(*out));
	}
	return rc;
}

const char *moat_tls_refusal_reason(const char *openssl)
{
	static const struct {
		const char *text, *reason;
	} map[] = {
		{"peer did not return a certificate", "no_certificate"},
		{"certificate verify failed", "certificate_not_verified"},
		{"wrong version number", "not_tls"},
		{"http request", "not_tls"},
		{"packet length too long", "not_tls"},
		{"unsupported protocol", "tls_policy"},
		{"no shared cipher", "tls_policy"},
		{"no suitable signature algorithm", "tls_policy"},
		{"no shared signature algorithms", "tls_policy"},
		{"no suitable key share", "tls_policy"},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(openssl, map[i].text) == 0) {
			return map[i].reason;
		}
	}
	return "handshake_failed";
}

enum { T_IDLE, T_ERROR, T_GONE };

static void refusal(struct moat_tls_refusal *out, const char *openssl, const char *address,
		    int64_t time_s)
{
	memset(out, 0, sizeof(*out));
	out->time_s = time_s;
	snprintf(out->openssl, sizeof(out->openssl), "%s", openssl);
	out->reason = moat_tls_refusal_reason(out->openssl);
	snprintf(out->address, sizeof(out->address), "%s", address);
}

static void complete(struct moat_tls_refusal_track *t, struct moat_tls_refusal *out,
		     const char *address)
{
	refusal(out, t->openssl, address, t->time_s);
	t->state = T_IDLE;
	t->openssl[0] = '\0';
}

/* A line seen while no run is open: it may start one, or be a refusal by itself. */
static size_t idle(struct moat_tls_refusal_track *t, const struct moat_broker_log_line *l,
		   struct moat_tls_refusal *out)
{
	if (l && l->kind == MOAT_BLOG_TLS_ERROR) {
		t->state = T_ERROR;
		t->time_s = l->time_s;
		snprintf(t->openssl, sizeof(t->openssl), "%s", l->tls_reason);
	} else if (l && l->kind == MOAT_BLOG_ACCEPT_FAILED) {
		refusal(out, l->tls_reason, l->address, l->time_s);
		return 1;
	}
	return 0;
}

size_t moat_tls_refusal_feed(struct moat_tls_refusal_track *t, const struct moat_broker_log_line *l,
			     struct moat_tls_refusal out[2])
{
	enum moat_broker_log_kind k = l ? l->kind : MOAT_BLOG_OTHER;
	switch (t->state) {
	case T_GONE:
		if (k == MOAT_BLOG_PLUGIN_EVENT && strcmp(l->ev.kind, "auth_refused") == 0 &&
		    strstr(l->ev.evidence, "reason=\"tls_handshake_failed\"")) {
			complete(t, &out[0], l->ev.address);
			return 1;
		}
		/* the plugin wrote no event for it (its budget): the refusal without address;
		 * this line may start the next run, or be one */
		complete(t, &out[0], "");
		return 1 + idle(t, l, &out[1]);
	case T_ERROR:
		if (k == MOAT_BLOG_TLS_ERROR) {
			return 0; /* OpenSSL's further errors: the first says why */
		}
		if (k == MOAT_BLOG_UNKNOWN_GONE) {
			t->state = T_GONE;
			return 0;
		}
		t->state = T_IDLE;
		return idle(t, l, &out[0]);
	default:
		return idle(t, l, &out[0]);
	}
}
