/* metrics.c: the Prometheus text exposition of moatd's /metrics (format 0.0.4): every
 * metric with HELP and TYPE once, samples of one metric together, label values escaped
 * (backslash, double quote, newline).
 *
 * What moatd's ingest records (device connection state, telemetry messages, security
 * events and anomalies kept) is read from its registry tables (moat_registry_stats); how
 * it keeps up (lag, queue, messages and bytes in) from the caller's copy of its counters.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "moat/buf.h"
#include "moat/registry.h"
#include "monitor_internal.h"

static void label_value(struct moat_buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\') {
			moat_buf_append_str(b, "\\\\");
		} else if (*v == '"') {
			moat_buf_append_str(b, "\\\"");
		} else if (*v == '\n') {
			moat_buf_append_str(b, "\\n");
		} else {
			moat_buf_append(b, v, 1);
		}
	}
}

static void head(struct moat_buf *b, const char *name, const char *type, const char *help)
{
	moat_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{k1="v1",k2="v2"} value */
static void sample(struct moat_buf *b, const char *name, const char *k1, const char *v1,
		   const char *k2, const char *v2, double value)
{
	moat_buf_append_str(b, name);
	if (k1) {
		moat_buf_printf(b, "{%s=\"", k1);
		label_value(b, v1);
		moat_buf_append_str(b, "\"");
		if (k2) {
			moat_buf_printf(b, ",%s=\"", k2);
			label_value(b, v2);
			moat_buf_append_str(b, "\"");
		}
		moat_buf_append_str(b, "}");
	}
	moat_buf_printf(b, " %.17g\n", value);
}

struct stat_meta {
	const char *name, *type, *help, *k1, *k2;
};

static const struct stat_meta stat_meta[] = {
	[MOAT_STAT_DEVICES] = {"moat_devices", "gauge",
			       "Devices in the registry by state and type.", "state", "type"},
	[MOAT_STAT_IDENTITIES] = {"moat_identities", "gauge",
				  "Identities in the registry by role and state.", "role", "state"},
	[MOAT_STAT_CERT_NEXT_EXPIRY] = {"moat_certificate_next_expiry_timestamp_seconds", "gauge",
					"Earliest expiry of an unrevoked certificate of an active "
					"identity, by role.",
					"role", NULL},
	[MOAT_STAT_CERTS_EXPIRING] = {"moat_certificates_expiring", "gauge",
				      "Unrevoked certificates of active identities expiring within "
				      "the window.",
				      "window", NULL},
	[MOAT_STAT_ENROLLMENTS] = {"moat_enrollments", "gauge",
				   "EST enrollments by state (enrolled, pending, expired).",
				   "state", NULL},
	[MOAT_STAT_ROLLOUT_TARGETS] = {"moat_rollout_target_devices", "gauge",
				       "Devices a release is for: its phased rollout's devices in "
				       "started phases (0 once aborted), else its publish's share or "
				       "list.",
				       "type", "version"},
	[MOAT_STAT_ROLLOUT_RUNNING] = {"moat_rollout_running_devices", "gauge",
				       "Devices that report running a release.", "type", "version"},
	[MOAT_STAT_UPDATE_EVENTS] = {"moat_update_events", "gauge",
				     "Update events recorded in the registry, by stage.", "stage",
				     NULL},
	[MOAT_STAT_CONN_STATE] = {"moat_devices_connection", "gauge",
				  "Devices moatd's ingest has seen, by connection state.", "state",
				  NULL},
	[MOAT_STAT_TELEMETRY_MESSAGES] = {"moat_telemetry_messages_total", "counter",
					  "Telemetry messages recorded by moatd's ingest.", NULL,
					  NULL},
	[MOAT_STAT_LAST_MESSAGE] = {"moat_device_last_message_timestamp_seconds", "gauge",
				    "When the newest message of any device was recorded.", NULL,
				    NULL},
	[MOAT_STAT_SECURITY_EVENTS] = {"moat_security_events_recorded", "gauge",
				       "Security events kept in the registry (within "
				       "event_retention), by kind and severity.",
				       "kind", "severity"},
	[MOAT_STAT_ANOMALIES] = {"moat_anomalies_recorded", "gauge",
				 "Anomalies kept in the registry, by rule.", "rule", NULL},
};
#define STAT_COUNT (sizeof(stat_meta) / sizeof(stat_meta[0]))

struct render_ctx {
	struct moat_buf *b;
	bool headed[STAT_COUNT];
	int64_t now;
	bool have_expiry;
	double next_expiry; /* earliest expiry of any role */
};

static void on_stat(void *ctx, enum moat_registry_stat stat, const char *a, const char *bb,
		    double value)
{
	struct render_ctx *r = ctx;
	if ((size_t)stat >= STAT_COUNT) {
		return;
	}
	const struct stat_meta *m = &stat_meta[stat];
	if (!r->headed[stat]) {
		head(r->b, m->name, m->type, m->help);
		r->headed[stat] = true;
	}
	sample(r->b, m->name, m->k1, a, m->k2, bb, value);
	if (stat == MOAT_STAT_CERT_NEXT_EXPIRY && (!r->have_expiry || value < r->next_expiry)) {
		r->next_expiry = value;
		r->have_expiry = true;
	}
}

/* The ingest's own view: how far behind it is and how much it has taken in. */
static void render_ingest(struct moat_buf *b, const struct moat_metrics_ingest *in)
{
	head(b, "moat_ingest_lag_seconds", "gauge",
	     "Age of the oldest message waiting in moatd's ingest queue (0: none waiting).");
	sample(b, "moat_ingest_lag_seconds", NULL, NULL, NULL, NULL, (double)in->lag_ms / 1000.0);
	head(b, "moat_ingest_queue_length", "gauge", "Messages waiting in moatd's ingest queue.");
	sample(b, "moat_ingest_queue_length", NULL, NULL, NULL, NULL, (double)in->queued);
	head(b, "moat_ingest_messages_received_total", "counter",
	     "Messages moatd's ingest read from the broker.");
	sample(b, "moat_ingest_messages_received_total", NULL, NULL, NULL, NULL,
	       (double)in->received);
	head(b, "moat_ingest_messages_recorded_total", "counter",
	     "Messages moatd's ingest recorded in the registry.");
	sample(b, "moat_ingest_messages_recorded_total", NULL, NULL, NULL, NULL,
	       (double)in->recorded);
	head(b, "moat_ingest_messages_dropped_total", "counter",
	     "Messages moatd's ingest lost (full queue or failed batch; each in an "
	     "ingest_behind event).");
	sample(b, "moat_ingest_messages_dropped_total", NULL, NULL, NULL, NULL,
	       (double)in->dropped);
	head(b, "moat_ingest_bytes_received_total", "counter",
	     "Payload bytes of the messages moatd's ingest read from the broker.");
	sample(b, "moat_ingest_bytes_received_total", NULL, NULL, NULL, NULL,
	       (double)in->bytes_received);
}

/* The phased rollouts: how many in each state, and where each unfinished one stands. */
static void render_rollouts(struct moat_buf *b, const struct moat_metrics_rollouts *ro)
{
	char id[24];
	head(b, "moat_rollouts", "gauge", "Phased rollouts by state.");
	for (int s = 0; s < MOAT_METRICS_ROLLOUT_STATES; s++) {
		sample(b, "moat_rollouts", "state", moat_rollout_state_name(s), NULL, NULL,
		       (double)ro->by_state[s]);
	}
	if (ro->active_count == 0) {
		return;
	}
	head(b, "moat_rollout_phase", "gauge",
	     "The current phase (1-based) of each rollout running, paused or halted.");
	for (size_t i = 0; i < ro->active_count; i++) {
		const struct moat_metrics_rollout *r = &ro->active[i];
		snprintf(id, sizeof(id), "%lld", (long long)r->id);
		sample(b, "moat_rollout_phase", "rollout", id, "version", r->version,
		       (double)r->phase);
	}
	head(b, "moat_rollout_phases", "gauge", "The number of phases of each such rollout.");
	for (size_t i = 0; i < ro->active_count; i++) {
		snprintf(id, sizeof(id), "%lld", (long long)ro->active[i].id);
		sample(b, "moat_rollout_phases", "rollout", id, NULL, NULL,
		       (double)ro->active[i].phase_count);
	}
	head(b, "moat_rollout_state", "gauge",
	     "1 for the state each such rollout is in (running, paused, halted).");
	for (size_t i = 0; i < ro->active_count; i++) {
		snprintf(id, sizeof(id), "%lld", (long long)ro->active[i].id);
		sample(b, "moat_rollout_state", "rollout", id, "state",
		       moat_rollout_state_name(ro->active[i].state), 1);
	}
	head(b, "moat_rollout_devices", "gauge",
	     "Devices of each such rollout by progress: those of started phases as `moat fw "
	     "rollout status` counts them (offered, downloading, installed, confirmed, reverted, "
	     "refused, silent), the others waiting.");
	for (size_t i = 0; i < ro->active_count; i++) {
		const struct moat_metrics_rollout *r = &ro->active[i];
		snprintf(id, sizeof(id), "%lld", (long long)r->id);
		for (int s = 0; s < MOAT_RD_STATE_COUNT; s++) {
			sample(b, "moat_rollout_devices", "rollout", id, "status",
			       moat_rollout_dev_state_name(s), (double)r->by_state[s]);
		}
		sample(b, "moat_rollout_devices", "rollout", id, "status", "waiting",
		       (double)r->waiting);
	}
}

int moat_metrics_render(struct moat_registry *reg, struct moat_export *x,
			const struct moat_metrics_ingest *ingest,
			const struct moat_metrics_rollouts *rollouts, int64_t now,
			struct moat_buf *b, struct moat_err *err)
{
	struct render_ctx r = {.b = b, .now = now};
	int rc;
	if ((rc = moat_registry_stats(reg, now, on_stat, &r, err)) != 0) {
		return rc;
	}
	/* every metric is present even with no rows, so a dashboard sees a 0, not a gap */
	if (!r.headed[MOAT_STAT_DEVICES]) {
		head(b, "moat_devices", "gauge", stat_meta[MOAT_STAT_DEVICES].help);
	}
	if (r.have_expiry) {
		head(b, "moat_certificate_expiry_horizon_seconds", "gauge",
		     "Seconds until the earliest unrevoked certificate of an active identity "
		     "expires (negative: already expired).");
		sample(b, "moat_certificate_expiry_horizon_seconds", NULL, NULL, NULL, NULL,
		       r.next_expiry - (double)now);
	}
	head(b, "moat_scrape_timestamp_seconds", "gauge", "moatd's clock at this scrape.");
	sample(b, "moat_scrape_timestamp_seconds", NULL, NULL, NULL, NULL, (double)now);
	if (ingest) {
		render_ingest(b, ingest);
	}
	if (rollouts) {
		render_rollouts(b, rollouts);
	}
	if (!x) {
		return 0;
	}
	struct export_counters c;
	export_counters_get(x, &c);
	head(b, "moat_security_events_total", "counter",
	     "Security events received by moatd since it started, by kind.");
	for (size_t i = 0; i < c.kinds; i++) {
		sample(b, "moat_security_events_total", "kind", c.kind[i], NULL, NULL,
		       (double)c.events[i]);
	}
	head(b, "moat_security_event_last_timestamp_seconds", "gauge",
	     "When the newest security event happened (0: none since moatd started).");
	sample(b, "moat_security_event_last_timestamp_seconds", NULL, NULL, NULL, NULL,
	       (double)c.last_event_ms / 1000.0);
	head(b, "moat_export_sent_total", "counter", "Records delivered, by sink.");
	sample(b, "moat_export_sent_total", "sink", "siem", NULL, NULL, (double)c.siem_sent);
	sample(b, "moat_export_sent_total", "sink", "webhook", NULL, NULL, (double)c.webhook_sent);
	head(b, "moat_export_failures_total", "counter", "Failed deliveries, by sink.");
	sample(b, "moat_export_failures_total", "sink", "siem", NULL, NULL,
	       (double)c.siem_failures);
	sample(b, "moat_export_failures_total", "sink", "webhook", NULL, NULL,
	       (double)c.webhook_failures);
	head(b, "moat_export_dropped_total", "counter",
	     "Records dropped because a sink's queue was full, by sink.");
	sample(b, "moat_export_dropped_total", "sink", "siem", NULL, NULL, (double)c.siem_dropped);
	sample(b, "moat_export_dropped_total", "sink", "webhook", NULL, NULL,
	       (double)c.webhook_dropped);
	head(b, "moat_export_queue_length", "gauge", "Records waiting, by sink.");
	sample(b, "moat_export_queue_length", "sink", "siem", NULL, NULL, (double)c.siem_queue);
	sample(b, "moat_export_queue_length", "sink", "webhook", NULL, NULL, (double)c.alert_queue);
	head(b, "moat_webhook_summaries_total", "counter",
	     "Webhook deliveries that summarised many alerts at once.");
	sample(b, "moat_webhook_summaries_total", NULL, NULL, NULL, NULL,
	       (double)c.webhook_summaries);
	head(b, "moat_export_deduplicated_total", "counter",
	     "Identical events within dedup_window folded into a later record's repeats.");
	sample(b, "moat_export_deduplicated_total", NULL, NULL, NULL, NULL, (double)c.deduplicated);
	return 0;
}
