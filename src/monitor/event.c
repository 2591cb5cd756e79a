/* event.c: the security event record the exporter handles: read from the broker plugin's
 * JSON (src/broker/plugin/events.c writes it), written back as JSON, and which kinds are
 * alerts. Strict: every field bounded and printable ASCII, so no sink downstream (syslog,
 * CEF, a webhook's JSON) needs to trust the text. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "moat/json.h"
#include "moat/monitor_export.h"

static bool printable(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) {
			return false;
		}
	}
	return true;
}

static int take_str(const cJSON *root, const char *key, char *dst, size_t size,
		    struct moat_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
	dst[0] = '\0';
	if (!v || cJSON_IsNull(v)) {
		return 0;
	}
	if (!cJSON_IsString(v) || !v->valuestring) {
		return moat_err_set(err, MOAT_EINVAL, "security event: %s: not a string", key);
	}
	if (!printable(v->valuestring)) {
		return moat_err_set(err, MOAT_EINVAL, "security event: %s: not printable ASCII",
				    key);
	}
	snprintf(dst, size, "%s", v->valuestring); /* cut to the field's bound */
	return 0;
}

static int take_uint(const cJSON *root, const char *key, bool required, uint64_t max, uint64_t *out,
		     struct moat_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
	*out = 0;
	if (!v) {
		return required ? moat_err_set(err, MOAT_EINVAL, "security event: %s missing", key)
				: 0;
	}
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
	    v->valuedouble > (double)max || v->valuedouble != floor(v->valuedouble)) {
		return moat_err_set(err, MOAT_EINVAL, "security event: %s: not an integer in range",
				    key);
	}
	*out = (uint64_t)v->valuedouble;
	return 0;
}

bool moat_sec_event_kind_ok(const char *kind)
{
	size_t n = strlen(kind);
	if (n == 0 || n > MOAT_SEC_KIND_MAX_LEN) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char c = kind[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
			return false;
		}
	}
	return true;
}

int moat_sec_event_parse(const void *text, size_t len, struct moat_sec_event *out,
			 struct moat_err *err)
{
	static const struct moat_json_limits lim = {.max_bytes = MOAT_SEC_EVENT_MAX_BYTES,
						    .max_depth = 2,
						    .flags = 0};
	cJSON *root = NULL;
	struct moat_sec_event ev;
	int rc;
	memset(&ev, 0, sizeof(ev));
	memset(out, 0, sizeof(*out));
	if ((rc = moat_json_parse("security event", text, len, &lim, &root, NULL, err)) != 0) {
		return rc;
	}
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
	uint64_t t = 0;
	if (!cJSON_IsString(kind) || !kind->valuestring ||
	    !moat_sec_event_kind_ok(kind->valuestring)) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "security event: kind missing or not [a-z0-9_]");
		goto out;
	}
	snprintf(ev.kind, sizeof(ev.kind), "%s", kind->valuestring);
	/* 2^53: the largest integer a JSON number carries exactly */
	if ((rc = take_uint(root, "time_ms", true, 9007199254740991ull, &t, err)) != 0 ||
	    (rc = take_uint(root, "count", false, 9007199254740991ull, &ev.count, err)) != 0 ||
	    (rc = take_uint(root, "suppressed", false, 9007199254740991ull, &ev.suppressed, err)) !=
		    0 ||
	    (rc = take_uint(root, "repeats", false, 9007199254740991ull, &ev.repeats, err)) != 0 ||
	    (rc = take_str(root, "identity", ev.identity, sizeof(ev.identity), err)) != 0 ||
	    (rc = take_str(root, "client_id", ev.client_id, sizeof(ev.client_id), err)) != 0 ||
	    (rc = take_str(root, "address", ev.address, sizeof(ev.address), err)) != 0 ||
	    (rc = take_str(root, "reason", ev.reason, sizeof(ev.reason), err)) != 0 ||
	    (rc = take_str(root, "detail", ev.detail, sizeof(ev.detail), err)) != 0) {
		goto out;
	}
	ev.time_ms = (int64_t)t;
	*out = ev;
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

/* JSON string contents of printable ASCII: only '"' and '\\' need escaping. false when
 * it does not fit with room for the closing quote and more. */
static bool json_str(char *out, size_t size, size_t *at, const char *s)
{
	for (; *s; s++) {
		bool esc = *s == '"' || *s == '\\';
		if (*at + (esc ? 2 : 1) + 2 > size) {
			return false;
		}
		if (esc) {
			out[(*at)++] = '\\';
		}
		out[(*at)++] = *s;
	}
	return true;
}

bool moat_sec_event_json(const struct moat_sec_event *ev, char *out, size_t size, size_t *out_len)
{
	const char *names[] = {"identity", "client_id", "address", "reason", "detail"};
	const char *vals[] = {ev->identity, ev->client_id, ev->address, ev->reason, ev->detail};
	int n = snprintf(out, size, "{\"time_ms\":%" PRId64 ",\"kind\":\"%s\"", ev->time_ms,
			 ev->kind);
	if (n < 0 || (size_t)n >= size) {
		return false;
	}
	size_t at = (size_t)n;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!vals[i][0]) {
			continue;
		}
		n = snprintf(out + at, size - at, ",\"%s\":\"", names[i]);
		if (n < 0 || (size_t)n >= size - at) {
			return false;
		}
		at += (size_t)n;
		if (!json_str(out, size, &at, vals[i])) {
			return false;
		}
		out[at++] = '"';
	}
	n = snprintf(out + at, size - at, ",\"count\":%" PRIu64 ",\"suppressed\":%" PRIu64,
		     ev->count, ev->suppressed);
	if (n < 0 || (size_t)n >= size - at) {
		return false;
	}
	at += (size_t)n;
	n = ev->repeats ? snprintf(out + at, size - at, ",\"repeats\":%" PRIu64 "}", ev->repeats)
			: snprintf(out + at, size - at, "}");
	if (n < 0 || (size_t)n >= size - at) {
		return false;
	}
	at += (size_t)n;
	if (out_len) {
		*out_len = at;
	}
	return true;
}

bool moat_sec_event_alerts(const char *kind)
{
	return strcmp(kind, "connected") != 0 && strcmp(kind, "disconnected") != 0;
}
