/* secevent.c: the security event record: severity names, its JSON form, and the broker
 * plugin's events (src/broker/plugin/events.c) read back, strictly (moat_json_parse). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "moat/json.h"
#include "moat/messages.h"
#include "moat/secevent.h"
#include "moat/timeutil.h"

static const char *const severity_names[MOAT_SEV_COUNT] = {"info", "low", "medium", "high",
							   "critical"};

const char *moat_severity_name(enum moat_severity s)
{
	return (unsigned)s < MOAT_SEV_COUNT ? severity_names[s] : "unknown";
}

int moat_severity_parse(const char *name, enum moat_severity *out, struct moat_err *err)
{
	for (int i = 0; i < MOAT_SEV_COUNT; i++) {
		if (name && strcmp(name, severity_names[i]) == 0) {
			*out = (enum moat_severity)i;
			return 0;
		}
	}
	return moat_err_set(err, MOAT_EINVAL,
			    "severity: expected info, low, medium, high or critical");
}

/* ---- JSON ---- */

int moat_security_event_json(const struct moat_security_event *ev, char *buf, size_t size,
			     struct moat_err *err)
{
	char when[MOAT_TIME_ISO_LEN];
	moat_time_iso(ev->time_ms / 1000, when);
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	int rc = 0;
	if (!o || !cJSON_AddNumberToObject(o, "seq", (double)ev->seq) ||
	    !cJSON_AddStringToObject(o, "time", when) ||
	    !cJSON_AddNumberToObject(o, "time_ms", (double)ev->time_ms) ||
	    !cJSON_AddStringToObject(o, "kind", ev->kind) ||
	    !cJSON_AddStringToObject(o, "severity", moat_severity_name(ev->severity)) ||
	    !cJSON_AddStringToObject(o, "source", ev->source) ||
	    !cJSON_AddStringToObject(o, "identity", ev->identity) ||
	    !cJSON_AddStringToObject(o, "address", ev->address) ||
	    !cJSON_AddStringToObject(o, "rule", ev->rule) ||
	    !cJSON_AddStringToObject(o, "evidence", ev->evidence) ||
	    !cJSON_AddStringToObject(o, "run_id", ev->run_id) ||
	    !(text = cJSON_PrintUnformatted(o))) {
		rc = moat_err_set(err, MOAT_ENOMEM, "out of memory");
	} else if (strlen(text) >= size) {
		rc = moat_err_set(err, MOAT_EINVAL, "security event: too long for its buffer");
	} else {
		memcpy(buf, text, strlen(text) + 1);
	}
	cJSON_free(text);
	cJSON_Delete(o);
	return rc;
}

/* ---- the plugin's events ---- */

static const struct {
	const char *kind;
	enum moat_severity sev;
} plugin_kinds[] = {
	{"auth_refused", MOAT_SEV_MEDIUM},	{"acl_denied", MOAT_SEV_MEDIUM},
	{"rate_limited", MOAT_SEV_LOW},		{"payload_rejected", MOAT_SEV_LOW},
	{"revoked_kicked", MOAT_SEV_HIGH},	{"flapping_banned", MOAT_SEV_MEDIUM},
	{"connected", MOAT_SEV_INFO},		{"disconnected", MOAT_SEV_INFO},
	{"subscription_limited", MOAT_SEV_LOW}, {"crl_rejected", MOAT_SEV_HIGH},
	{"events_suppressed", MOAT_SEV_MEDIUM},
};

enum moat_severity moat_monitor_plugin_severity(const char *kind)
{
	for (size_t i = 0; i < sizeof(plugin_kinds) / sizeof(plugin_kinds[0]); i++) {
		if (strcmp(kind, plugin_kinds[i].kind) == 0) {
			return plugin_kinds[i].sev;
		}
	}
	return MOAT_SEV_MEDIUM; /* a kind this moatd does not know yet still counts */
}

/* An optional string member copied (cut to fit) into dst; a non-string is refused. */
static int opt_str(const cJSON *root, const char *key, char *dst, size_t size, struct moat_err *err)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
	dst[0] = '\0';
	if (!it || cJSON_IsNull(it)) {
		return 0;
	}
	if (!cJSON_IsString(it)) {
		return moat_err_set(err, MOAT_EINVAL, "broker event: '%s' is not a string", key);
	}
	size_t i = 0;
	for (const char *s = it->valuestring; *s && i + 1 < size; s++) {
		unsigned char c = (unsigned char)*s;
		dst[i++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
	return 0;
}

/* The audit's run id an event carries ("audit_run": 8 lower-case hex digits) into run (""
 * when absent). It must be the run its identity names ("audit-<run>" or "audit-<run>-..."):
 * the plugin derives it from the authenticated identity, so any other value is not the
 * plugin's and the event is refused. */
static int audit_run_get(const cJSON *root, const char *identity, char run[9], struct moat_err *err)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "audit_run");
	run[0] = '\0';
	if (!it) {
		return 0;
	}
	const char *v = cJSON_IsString(it) ? it->valuestring : NULL;
	size_t n = v ? strlen(v) : 0;
	bool hex = n == 8;
	for (size_t i = 0; hex && i < n; i++) {
		hex = (v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f');
	}
	if (!hex) {
		return moat_err_set(err, MOAT_EINVAL,
				    "broker event: 'audit_run' is not 8 lower-case hex digits");
	}
	if (strncmp(identity, "audit-", 6) != 0 || strncmp(identity + 6, v, 8) != 0 ||
	    (identity[14] != '\0' && identity[14] != '-')) {
		return moat_err_set(err, MOAT_EINVAL,
				    "broker event: 'audit_run' is not the run its identity names");
	}
	memcpy(run, v, 9);
	return 0;
}

int moat_monitor_plugin_event_parse(const void *payload, size_t len,
				    struct moat_security_event *out, int64_t *out_count,
				    struct moat_err *err)
{
	const struct moat_json_limits lim = {.max_bytes = MOAT_MONITOR_PLUGIN_EVENT_MAX_BYTES,
					     .max_depth = 0,
					     .flags = MOAT_JSON_NO_CONTROLS};
	cJSON *root = NULL;
	int rc = moat_json_parse("broker event", payload, len, &lim, &root, NULL, err);
	if (rc != 0) {
		return rc;
	}
	memset(out, 0, sizeof(*out));
	char reason[64], detail[200], client[MOAT_ID_BUF_LEN], audit_run[9];
	const cJSON *tm = cJSON_GetObjectItemCaseSensitive(root, "time_ms");
	const cJSON *count = cJSON_GetObjectItemCaseSensitive(root, "count");
	const cJSON *supp = cJSON_GetObjectItemCaseSensitive(root, "suppressed");
	int64_t n = 0, suppressed = 0;
	if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "kind"))) {
		rc = moat_err_set(err, MOAT_EINVAL, "broker event: no 'kind'");
	} else if (!tm || moat_json_int("broker event", "time_ms", tm, 0, INT64_C(1) << 52,
					&out->time_ms, err) != 0) {
		rc = tm ? MOAT_EINVAL
			: moat_err_set(err, MOAT_EINVAL, "broker event: no 'time_ms'");
	} else if ((count && moat_json_int("broker event", "count", count, 0, INT64_C(1) << 52, &n,
					   err) != 0) ||
		   (supp && moat_json_int("broker event", "suppressed", supp, 0, INT64_C(1) << 52,
					  &suppressed, err) != 0)) {
		rc = MOAT_EINVAL;
	} else if ((rc = opt_str(root, "kind", out->kind, sizeof(out->kind), err)) != 0 ||
		   (rc = opt_str(root, "identity", out->identity, sizeof(out->identity), err)) !=
			   0 ||
		   (rc = opt_str(root, "address", out->address, sizeof(out->address), err)) != 0 ||
		   (rc = opt_str(root, "run_id", out->run_id, sizeof(out->run_id), err)) != 0 ||
		   (rc = opt_str(root, "reason", reason, sizeof(reason), err)) != 0 ||
		   (rc = opt_str(root, "detail", detail, sizeof(detail), err)) != 0 ||
		   (rc = opt_str(root, "client_id", client, sizeof(client), err)) != 0 ||
		   (rc = audit_run_get(root, out->identity, audit_run, err)) != 0) {
		/* rc set */
	} else if (!out->kind[0]) {
		rc = moat_err_set(err, MOAT_EINVAL, "broker event: empty 'kind'");
	} else {
		snprintf(out->source, sizeof(out->source), "broker");
		out->severity = moat_monitor_plugin_severity(out->kind);
		/* quoted values: they may hold spaces. The detail is cut to 180 characters (the
		 * events file keeps it whole), so the audit's run and the rest always fit. */
		char audit[20] = ""; /* "audit_run=", 8 hex digits and a space */
		if (audit_run[0]) {
			snprintf(audit, sizeof(audit), "audit_run=%s ", audit_run);
		}
		int w = snprintf(
			out->evidence, sizeof(out->evidence),
			"%sreason=\"%s\" client_id=\"%s\" detail=\"%.180s\" suppressed=%lld", audit,
			reason, client, detail, (long long)suppressed);
		(void)w; /* fits: 19 + 46 + 63 + 64 + 180 + 20 < MOAT_EVENT_EVIDENCE_MAX_LEN */
		if (out_count) {
			*out_count = n;
		}
	}
	cJSON_Delete(root);
	return rc;
}

/* An IPv4 or IPv6 address, as moat_msg_diagnostics_build writes it. */
static bool ip_syntax(const char *s)
{
	unsigned char addr[16];
	return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

/* A text field of diagnostics: printable (no control or bidi character), 1..size-1 bytes. */
static int diag_text(const cJSON *root, const char *key, char *out, size_t size,
		     struct moat_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
	const char *text = NULL;
	size_t len = 0;
	if (!v) {
		return 0;
	}
	if (moat_json_str("diagnostics", key, v, size - 1, &text, &len, err) != 0 ||
	    !moat_json_text_ok(text, len, true)) {
		return moat_err_set(err, MOAT_EINVAL, "diagnostics: invalid '%s'", key);
	}
	memcpy(out, text, len);
	out[len] = '\0';
	return 0;
}

static int diag_load(const cJSON *root, struct moat_diag_summary *out, struct moat_err *err)
{
	const cJSON *load = cJSON_GetObjectItemCaseSensitive(root, "load");
	if (!load) {
		return 0;
	}
	if (!cJSON_IsArray(load) || cJSON_GetArraySize(load) != 3) {
		return moat_err_set(err, MOAT_EINVAL, "diagnostics: 'load' is not 3 numbers");
	}
	for (int k = 0; k < 3; k++) {
		const cJSON *n = cJSON_GetArrayItem(load, k);
		/* the reader accepts JSON numbers only, so a number is finite */
		if (!cJSON_IsNumber(n) || !(n->valuedouble >= 0 && n->valuedouble <= 1e9)) {
			return moat_err_set(err, MOAT_EINVAL,
					    "diagnostics: 'load' is not 3 numbers >= 0");
		}
		out->load[k] = n->valuedouble;
	}
	out->has_load = true;
	return 0;
}

int moat_diag_summary_parse(const void *payload, size_t len, struct moat_diag_summary *out,
			    struct moat_err *err)
{
	const struct moat_json_limits lim = {.max_bytes = MOAT_MSG_DIAGNOSTICS_MAX_BYTES,
					     .max_depth = 1,
					     .flags = 0};
	cJSON *root = NULL;
	memset(out, 0, sizeof(*out));
	int rc = moat_json_parse("diagnostics", payload, len, &lim, &root, NULL, err);
	if (rc != 0) {
		return rc;
	}
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "agent_version");
	const cJSON *days = cJSON_GetObjectItemCaseSensitive(root, "cert_days_left");
	const cJSON *iv = cJSON_GetObjectItemCaseSensitive(root, "interval_s");
	const char *text = NULL;
	size_t text_len = 0;
	const struct {
		const char *key;
		int64_t *dst;
	} counters[] = {
		{"timestamp", &out->timestamp_ms},
		{"uptime_ms", &out->uptime_ms},
		{"system_uptime_s", &out->system_uptime_s},
		{"rss_kb", &out->rss_kb},
		{"free_heap", &out->free_heap},
		{"seq", &out->seq},
		{"queued", &out->queued},
	};
	for (size_t i = 0; rc == 0 && i < sizeof(counters) / sizeof(counters[0]); i++) {
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, counters[i].key);
		*counters[i].dst = -1;
		if (c && moat_json_int("diagnostics", counters[i].key, c, 0, MOAT_DIAG_COUNTER_MAX,
				       counters[i].dst, err) != 0) {
			rc = MOAT_EINVAL;
		}
	}
	if (rc != 0) {
		/* refused below */
	} else if (v &&
		   (moat_json_str("diagnostics", "agent_version", v, sizeof(out->agent_version) - 1,
				  &text, &text_len, err) != 0 ||
		    !moat_json_text_ok(text, text_len, true))) {
		rc = moat_err_set(err, MOAT_EINVAL, "diagnostics: invalid 'agent_version'");
	} else if (days && moat_json_int("diagnostics", "cert_days_left", days, -100000, 100000,
					 &out->cert_days_left, err) != 0) {
		rc = MOAT_EINVAL;
	} else if (iv &&
		   moat_json_int("diagnostics", "interval_s", iv, MOAT_MSG_UPDATE_INTERVAL_MIN,
				 MOAT_MSG_UPDATE_INTERVAL_MAX, &out->interval_s, err) != 0) {
		rc = MOAT_EINVAL;
	} else if (diag_load(root, out, err) != 0 ||
		   diag_text(root, "ip_address", out->ip_address, sizeof(out->ip_address), err) !=
			   0 ||
		   diag_text(root, "mac_address", out->mac_address, sizeof(out->mac_address),
			     err) != 0 ||
		   diag_text(root, "kernel", out->kernel, sizeof(out->kernel), err) != 0 ||
		   diag_text(root, "cert_not_after", out->cert_not_after,
			     sizeof(out->cert_not_after), err) != 0) {
		rc = MOAT_EINVAL;
	} else if (out->ip_address[0] && !ip_syntax(out->ip_address)) {
		rc = moat_err_set(err, MOAT_EINVAL, "diagnostics: 'ip_address' is not an address");
	} else {
		if (text) {
			memcpy(out->agent_version, text, text_len);
			out->agent_version[text_len] = '\0';
		}
		out->has_cert_days = days != NULL;
	}
	cJSON_Delete(root);
	if (rc != 0) {
		memset(out, 0, sizeof(*out));
	}
	return rc;
}

void moat_diag_summary_foreach(const struct moat_diag_summary *d, moat_diag_field_cb cb, void *ctx)
{
	char v[48];
	const struct {
		const char *name;
		int64_t value;
	} counters[] = {
		{"uptime_ms", d->uptime_ms},
		{"system_uptime_s", d->system_uptime_s},
		{"rss_kb", d->rss_kb},
		{"free_heap", d->free_heap},
	};
	if (d->agent_version[0]) {
		cb("agent_version", d->agent_version, false, ctx);
	}
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		if (counters[i].value >= 0) {
			snprintf(v, sizeof(v), "%lld", (long long)counters[i].value);
			cb(counters[i].name, v, true, ctx);
		}
	}
	if (d->has_load) {
		static const char *const names[] = {"load_1m", "load_5m", "load_15m"};
		for (int k = 0; k < 3; k++) {
			snprintf(v, sizeof(v), "%.2f", d->load[k]);
			cb(names[k], v, true, ctx);
		}
	}
	if (d->ip_address[0]) {
		cb("ip_address", d->ip_address, false, ctx);
	}
	if (d->mac_address[0]) {
		cb("mac_address", d->mac_address, false, ctx);
	}
	if (d->kernel[0]) {
		cb("kernel", d->kernel, false, ctx);
	}
	if (d->cert_not_after[0]) {
		cb("cert_not_after", d->cert_not_after, false, ctx);
	}
	if (d->has_cert_days) {
		snprintf(v, sizeof(v), "%lld", (long long)d->cert_days_left);
		cb("cert_days_left", v, true, ctx);
	}
	if (d->interval_s > 0) {
		snprintf(v, sizeof(v), "%lld", (long long)d->interval_s);
		cb("interval_s", v, true, ctx);
	}
	if (d->seq >= 0) {
		snprintf(v, sizeof(v), "%lld", (long long)d->seq);
		cb("seq", v, true, ctx);
	}
	if (d->queued >= 0) {
		snprintf(v, sizeof(v), "%lld", (long long)d->queued);
		cb("queued", v, true, ctx);
	}
}
