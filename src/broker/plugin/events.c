/* events.c: security events, one JSON object each, published on moat/events/<kind> and
 * appended as one line to the events file.
 *
 * {"time":"2026-11-25T18:00:00Z","time_ms":1795629600123,"kind":"auth_refused",
 *  "run_id":"0f1e2d3c4b5a6978","identity":"sensor-1",
 *  "client_id":"sensor-2","address":"127.0.0.1","reason":"client_id_mismatch",
 *  "detail":"...","count":3,"suppressed":0}
 *
 * Strings that come from clients (client ids, topics) are cut to MP_EVENT_FIELD_MAX_LEN
 * bytes and anything outside printable ASCII becomes '?', so an event is always valid
 * JSON of bounded size and cannot forge a second line in the file. Budgets per source, per
 * kind and in total (budget.c) keep the events from becoming the flood they report without
 * letting one flood silence the others; the next event written for a source and kind says
 * how many were suppressed ("suppressed"), and events_suppressed sums them up.
 *
 * Events of the throwaway identities of `moat audit --live` (audit-<run>, audit-<run>-v,
 * audit-<run>-r: a run id of 8 hex digits) also carry "audit_run":"<run>", so monitoring
 * can tell the audit's probes from an attack. The identity is the certificate's CN, which
 * only the deployment's CA issues: a client cannot claim the mark with its client id.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "moat/timeutil.h"
#include "moat/topic.h"
#include "plugin_internal.h"

static const char *const kind_names[MP_EV_COUNT] = {
	"auth_refused",		"acl_denied",	   "rate_limited",	"payload_rejected",
	"revoked_kicked",	"flapping_banned", "connected",		"disconnected",
	"subscription_limited", "crl_rejected",	   "events_suppressed",
};

const char *moat_plugin_event_name(enum mp_event_kind kind)
{
	return (unsigned)kind < MP_EV_COUNT ? kind_names[kind] : "unknown";
}

static void clean_copy(char *dst, size_t size, const char *src)
{
	size_t i = 0;
	for (; src[i] && i + 1 < size; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
}

static bool add_str(cJSON *obj, const char *key, const char *value)
{
	if (!value) {
		return cJSON_AddNullToObject(obj, key) != NULL;
	}
	char buf[MP_EVENT_FIELD_MAX_LEN * 2 + 1];
	clean_copy(buf, sizeof(buf), value);
	return cJSON_AddStringToObject(obj, key, buf) != NULL;
}

void moat_plugin_events_reopen(struct mp_state *st)
{
	if (!st->events_path) {
		return;
	}
	int fd =
		open(st->events_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0) {
		/* keep writing to the file already open rather than lose events */
		mosquitto_log_printf(MOSQ_LOG_ERR, "moat: %s: not reopened: %s", st->events_path,
				     strerror(errno));
		return;
	}
	if (st->events_fd >= 0) {
		close(st->events_fd);
	}
	st->events_fd = fd;
	mosquitto_log_printf(MOSQ_LOG_INFO, "moat: events file reopened: %s", st->events_path);
}

static void write_line(struct mp_state *st, const char *json)
{
	if (st->events_fd < 0) {
		return;
	}
	size_t len = strlen(json);
	char *line = mosquitto_malloc(len + 2);
	if (!line) {
		return;
	}
	memcpy(line, json, len);
	line[len] = '\n';
	line[len + 1] = '\0';
	/* One write on an O_APPEND descriptor: lines from one process never interleave. */
	ssize_t n = write(st->events_fd, line, len + 1);
	if (n < 0 || (size_t)n != len + 1) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "moat: %s: event not written: %s",
				     st->events_path, n < 0 ? strerror(errno) : "short write");
	}
	mosquitto_free(line);
}

/* The run id of an audit identity ("audit-" 8 lower-case hex digits, then nothing or
 * "-" and more) into run (9 bytes); false for any other identity. */
static bool audit_run_of(const char *identity, char run[9])
{
	static const char prefix[] = "audit-";
	if (!identity || strncmp(identity, prefix, sizeof(prefix) - 1) != 0) {
		return false;
	}
	const char *p = identity + sizeof(prefix) - 1;
	for (int i = 0; i < 8; i++) {
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
			return false;
		}
		run[i] = p[i];
	}
	run[8] = '\0';
	return p[8] == '\0' || p[8] == '-';
}

void moat_plugin_event(struct mp_state *st, const struct mp_event *ev)
{
	if ((unsigned)ev->kind >= MP_EV_COUNT) {
		return;
	}
	st->counts[ev->kind]++;
	int64_t now_ms = moat_time_mono_ms();
	uint64_t suppressed = 0;
	if (!moat_plugin_budget_allows(st, ev, now_ms, &suppressed)) {
		return;
	}

	char when[MOAT_TIME_ISO_LEN];
	moat_time_iso(moat_time_now(), when);
	char *json = NULL;
	cJSON *obj = cJSON_CreateObject();
	if (!obj) {
		goto out;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double time_ms = (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000);
	bool ok = cJSON_AddStringToObject(obj, "time", when) != NULL &&
		  cJSON_AddNumberToObject(obj, "time_ms", time_ms) != NULL &&
		  cJSON_AddStringToObject(obj, "kind", kind_names[ev->kind]) != NULL &&
		  cJSON_AddStringToObject(obj, "run_id", st->run_id) != NULL &&
		  add_str(obj, "identity", ev->identity) &&
		  add_str(obj, "client_id", ev->client_id) &&
		  add_str(obj, "address", ev->address) && add_str(obj, "reason", ev->reason) &&
		  add_str(obj, "detail", ev->detail) &&
		  cJSON_AddNumberToObject(obj, "count", (double)st->counts[ev->kind]) != NULL &&
		  cJSON_AddNumberToObject(obj, "suppressed", (double)suppressed) != NULL;
	char run[9];
	if (ok && audit_run_of(ev->identity, run)) {
		ok = cJSON_AddStringToObject(obj, "audit_run", run) != NULL;
	}
	if (!ok) {
		goto out;
	}
	json = cJSON_PrintUnformatted(obj);
	if (!json) {
		goto out;
	}
	write_line(st, json);
	mosquitto_log_printf(MOSQ_LOG_INFO, "moat: event %s", json);
	char topic[MOAT_TOPIC_BUF_LEN];
	int n = snprintf(topic, sizeof(topic), "moat/events/%s", kind_names[ev->kind]);
	if (n > 0 && (size_t)n < sizeof(topic)) {
		/* QoS 1: services that subscribe with QoS 1 must not lose security events.
		 * Published as the broker, so no client's write access is involved. */
		int rc = mosquitto_broker_publish_copy(NULL, topic, (int)strlen(json), json, 1,
						       false, NULL);
		if (rc != MOSQ_ERR_SUCCESS) {
			mosquitto_log_printf(MOSQ_LOG_ERR, "moat: publishing %s failed: %s", topic,
					     mosquitto_strerror(rc));
		}
	}
out:
	if (!json) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "moat: out of memory building a %s event",
				     kind_names[ev->kind]);
	}
	cJSON_free(json);
	cJSON_Delete(obj);
}

void moat_plugin_client_event(struct mp_state *st, enum mp_event_kind kind,
			      const struct mosquitto *client, const char *identity,
			      const char *reason, const char *detail)
{
	struct mp_event ev = {
		.kind = kind,
		.identity = identity,
		.client_id = mosquitto_client_id(client),
		.address = mosquitto_client_address(client),
		.reason = reason,
		.detail = detail,
	};
	moat_plugin_event(st, &ev);
}

void moat_plugin_event_summary(struct mp_state *st, int64_t now_ms)
{
	if (now_ms - st->last_summary_ms < MP_EVENT_SUMMARY_MS) {
		return;
	}
	char detail[512] = "";
	size_t used = 0;
	for (int k = 0; k < MP_EV_COUNT; k++) {
		if (st->unreported[k] == 0) {
			continue;
		}
		int n = snprintf(detail + used, sizeof(detail) - used, "%s%s=%llu", used ? " " : "",
				 moat_plugin_event_name((enum mp_event_kind)k),
				 (unsigned long long)st->unreported[k]);
		if (n < 0 || (size_t)n >= sizeof(detail) - used) {
			break; /* cannot happen: 11 kinds of at most 40 bytes each */
		}
		used += (size_t)n;
	}
	if (used == 0) {
		return;
	}
	st->last_summary_ms = now_ms;
	memset(st->unreported, 0, sizeof(st->unreported));
	struct mp_event ev = {
		.kind = MP_EV_EVENTS_SUPPRESSED,
		.reason = "over_budget",
		.detail = detail,
	};
	moat_plugin_event(st, &ev);
}
