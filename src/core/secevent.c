/* secevent.c: the security event record: severity names, its JSON form, and the broker
 * plugin's events (src/broker/plugin/events.c) read back, strictly (moat_json_parse). */
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

/* A run id of `moat audit --live`: 8 lower-case hex digits (auditrun.h). */
static bool audit_run_ok(const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
			return false;
		}
	}
	return n == 8;
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
	char reason[64], detail[200], client[MOAT_ID_BUF_LEN], audit_run[16];
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
		   (rc = opt_str(root, "audit_run", audit_run, sizeof(audit_run), err)) != 0) {
		/* rc set */
	} else if (audit_run[0] && !audit_run_ok(audit_run)) {
		rc = moat_err_set(err, MOAT_EINVAL,
				  "broker event: 'audit_run' is not 8 lower-case hex digits");
	} else if (!out->kind[0]) {
		rc = moat_err_set(err, MOAT_EINVAL, "broker event: empty 'kind'");
	} else {
		snprintf(out->source, sizeof(out->source), "broker");
		out->severity = moat_monitor_plugin_severity(out->kind);
		/* quoted values: they may hold spaces */
		int w = snprintf(out->evidence, sizeof(out->evidence),
				 "reason=\"%s\" client_id=\"%s\" detail=\"%s\" suppressed=%lld",
				 reason, client, detail, (long long)suppressed);
		(void)w; /* a long detail is cut: the events file keeps it whole */
		/* the live audit's identities: monitoring tells the audit from an attack */
		size_t used = strlen(out->evidence);
		if (audit_run[0] && used + 20 < sizeof(out->evidence)) {
			snprintf(out->evidence + used, sizeof(out->evidence) - used,
				 " audit_run=%s", audit_run);
		}
		if (out_count) {
			*out_count = n;
		}
	}
	cJSON_Delete(root);
	return rc;
}

int moat_diag_summary_parse(const void *payload, size_t len, struct moat_diag_summary *out,
			    struct moat_err *err)
{
	const struct moat_json_limits lim = {.max_bytes = MOAT_MSG_DIAGNOSTICS_MAX_BYTES,
					     .max_depth = 1,
					     .flags = 0};
	cJSON *root = NULL;
	int rc = moat_json_parse("diagnostics", payload, len, &lim, &root, NULL, err);
	if (rc != 0) {
		return rc;
	}
	memset(out, 0, sizeof(*out));
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "agent_version");
	const cJSON *days = cJSON_GetObjectItemCaseSensitive(root, "cert_days_left");
	const cJSON *iv = cJSON_GetObjectItemCaseSensitive(root, "interval_s");
	const char *text = NULL;
	size_t text_len = 0;
	if (v && (moat_json_str("diagnostics", "agent_version", v, sizeof(out->agent_version) - 1,
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
	} else {
		if (text) {
			memcpy(out->agent_version, text, text_len);
			out->agent_version[text_len] = '\0';
		}
		out->has_cert_days = days != NULL;
	}
	cJSON_Delete(root);
	return rc;
}
