/* secevent.h: the record of one security event (src/core/secevent.c), shared by the
 * registry that stores it, moatd that records it (monitor.h: the hook) and the CLI that
 * prints it: severity names, its JSON form, and the broker plugin's events read back.
 *
 * Severity: info (a connection), low (a limit applied), medium (a refusal), high (an
 * anomaly or a revoked client), critical (a cloned key, an unoffered release).
 */
#ifndef MOAT_SECEVENT_H
#define MOAT_SECEVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/identity.h"

enum moat_severity {
	MOAT_SEV_INFO = 0,
	MOAT_SEV_LOW,
	MOAT_SEV_MEDIUM,
	MOAT_SEV_HIGH,
	MOAT_SEV_CRITICAL,
};
#define MOAT_SEV_COUNT 5
const char *moat_severity_name(enum moat_severity s); /* "info" ... "critical" */
/* "info".."critical" → MOAT_SEV_*; anything else MOAT_EINVAL. */
MOAT_MUST_CHECK int moat_severity_parse(const char *name, enum moat_severity *out,
					struct moat_err *err);

#define MOAT_EVENT_KIND_MAX_LEN 32
#define MOAT_EVENT_RULE_MAX_LEN 32
#define MOAT_EVENT_ADDR_MAX_LEN 64
#define MOAT_EVENT_EVIDENCE_MAX_LEN 400
#define MOAT_EVENT_RUN_ID_MAX_LEN 32
#define MOAT_EVENT_SOURCE_MAX_LEN 16

/* Kinds moatd itself records (the plugin's kinds are its own: auth_refused, acl_denied,
 * rate_limited, payload_rejected, revoked_kicked, flapping_banned, connected,
 * disconnected, subscription_limited, crl_rejected, events_suppressed). */
#define MOAT_EVENT_KIND_ANOMALY "anomaly"		  /* a rule fired; rule names which */
#define MOAT_EVENT_KIND_INGEST_BEHIND "ingest_behind"	  /* ingest dropped or lags: how far */
#define MOAT_EVENT_KIND_PAYLOAD_REFUSED "payload_refused" /* a message moatd's schemas refused */
#define MOAT_EVENT_KIND_ROLLOUT_HALTED "rollout_halted"	  /* moatd stopped a rollout: why */
/* a SIEM collector's or webhook's certificate or name that moatd refused */
#define MOAT_EVENT_KIND_PEER_REFUSED "peer_refused"

/* One security event. Strings are NUL-terminated; "" means not applicable. */
struct moat_security_event {
	int64_t seq;	 /* the registry's sequence number; 0 before it is recorded */
	int64_t time_ms; /* when it happened (wall clock, ms since the epoch) */
	char kind[MOAT_EVENT_KIND_MAX_LEN + 1];
	enum moat_severity severity;
	char source[MOAT_EVENT_SOURCE_MAX_LEN + 1];	/* "broker" (the plugin) or "moatd" */
	char identity[MOAT_ID_BUF_LEN];			/* the device or client concerned */
	char address[MOAT_EVENT_ADDR_MAX_LEN + 1];	/* its source address, when known */
	char rule[MOAT_EVENT_RULE_MAX_LEN + 1];		/* the anomaly rule's id (kind "anomaly") */
	char evidence[MOAT_EVENT_EVIDENCE_MAX_LEN + 1]; /* key=value words, printable ASCII */
	char run_id[MOAT_EVENT_RUN_ID_MAX_LEN + 1];	/* the run of the process that saw it: the
							   plugin's run id for broker events, else
							   the recording moatd's */
};

/* ev as one JSON object (keys: seq, time, time_ms, kind, severity, source, identity,
 * address, rule, evidence, run_id), NUL-terminated in buf. MOAT_EINVAL if it does not fit.
 */
MOAT_MUST_CHECK int moat_security_event_json(const struct moat_security_event *ev, char *buf,
					     size_t size, struct moat_err *err);

/* Reads one event of the broker plugin (a line of its events file or a moat/events/<kind>
 * payload: src/broker/plugin/events.c) into out, source "broker", severity from its kind
 * (moat_monitor_plugin_severity), evidence from reason, detail, client_id and suppressed,
 * led by "audit_run=<run>" for an event of `moat audit --live`'s own identities (the
 * plugin's "audit_run" key), so monitoring tells the audit's probes from an attack.
 * Refuses (MOAT_EINVAL, one line) anything but one strict JSON object of at most 4 KiB
 * with string kind and numeric time_ms, and an "audit_run" that is not 8 lower-case hex
 * digits or not the run the event's identity names ("audit-<run>" or "audit-<run>-..."). */
#define MOAT_MONITOR_PLUGIN_EVENT_MAX_BYTES 4096
MOAT_MUST_CHECK int moat_monitor_plugin_event_parse(const void *payload, size_t len,
						    struct moat_security_event *out,
						    int64_t *out_count, struct moat_err *err);
enum moat_severity moat_monitor_plugin_severity(const char *kind);

/* What moatd keeps of a device's diagnostics (messages.h, moat_msg_diagnostics_build): every
 * field the agent and moat-device send, checked; absent fields leave has_* false, counters
 * -1 and text "". Refuses (MOAT_EINVAL) anything but one strict JSON object of at most
 * MOAT_MSG_DIAGNOSTICS_MAX_BYTES whose known fields have their types and ranges (counters
 * whole numbers in [0, 2^53], load three finite numbers >= 0, ip_address an IPv4 or IPv6
 * address, the other text printable and within its length). Unknown fields are ignored. */
#define MOAT_DIAG_COUNTER_MAX (INT64_C(1) << 53)
struct moat_diag_summary {
	char agent_version[32];
	bool has_cert_days;
	int64_t cert_days_left;
	int64_t interval_s; /* 0: absent */
	/* -1: absent */
	int64_t timestamp_ms, uptime_ms, system_uptime_s, rss_kb, free_heap, seq, queued;
	bool has_load;
	double load[3];
	char ip_address[65];
	char mac_address[24];
	char kernel[128];
	char cert_not_after[32];
};
MOAT_MUST_CHECK int moat_diag_summary_parse(const void *payload, size_t len,
					    struct moat_diag_summary *out, struct moat_err *err);

/* Each field d holds, in the report's order, as its name (the report's key; load as load_1m,
 * load_5m, load_15m) and its value as text; number: the value is a JSON number (else a
 * string to quote). What moat doctor, moat device show and the dashboard show. */
typedef void (*moat_diag_field_cb)(const char *name, const char *value, bool number, void *ctx);
void moat_diag_summary_foreach(const struct moat_diag_summary *d, moat_diag_field_cb cb, void *ctx);

#endif
