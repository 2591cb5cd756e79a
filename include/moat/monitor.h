/* monitor.h: security monitoring (src/monitor): the one record of a security event
 * (struct moat_security_event, secevent.h), the hook every consumer of events subscribes to, the
 [monitor] settings of moat.conf and the
 * anomaly rules, as pure functions over explicit inputs (no clocks, files or sockets: the
 * caller passes times and counts in).
 *
 * Events. Every security event moatd records (the broker plugin's, read from
 * moat/events/# or its events file, moatd's own, and the anomalies the rules find) is one
 * struct moat_security_event. moatd's ingest writes it to the registry (security_events)
 * and, once the transaction holding it has committed, calls moat_monitor_publish with it:
 * every hook subscribed with moat_monitor_subscribe then sees it, in the order recorded,
 * on moatd's ingest writer thread. A hook must return quickly (queue and return: it runs
 * while ingest waits) and must not call moat_monitor_subscribe/unsubscribe itself.

 */
#ifndef MOAT_MONITOR_H
#define MOAT_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/config.h"
#include "moat/err.h"
#include "moat/identity.h"
#include "moat/secevent.h"

/* ---- the hook ---- */

typedef void (*moat_security_event_hook)(const struct moat_security_event *ev, void *ctx);
#define MOAT_MONITOR_HOOKS_MAX 8
/* Adds fn(ctx) to the hooks (MOAT_ESTATE: already MOAT_MONITOR_HOOKS_MAX). Thread-safe. */
MOAT_MUST_CHECK int moat_monitor_subscribe(moat_security_event_hook fn, void *ctx,
					   struct moat_err *err);
/* Removes fn(ctx); once it returns, fn is not running and will not be called again. */
void moat_monitor_unsubscribe(moat_security_event_hook fn, void *ctx);
/* Calls every hook with ev, in subscription order. moatd calls it for every event it has
 * recorded (after the commit, so a hook never sees an event a crash could lose). */
void moat_monitor_publish(const struct moat_security_event *ev);

/* ---- [monitor] of moat.conf ---- */

struct moat_monitor_settings {
	int64_t telemetry_retention_ms; /* telemetry_retention: raw messages, default 7 d */
	int64_t minute_retention_ms;	/* minute_retention: minute aggregates, 14 d */
	int64_t hour_retention_ms;	/* hour_retention: hour aggregates, 400 d */
	int64_t event_retention_ms;	/* event_retention: security events, 400 d */
	int64_t queue_max;		/* ingest_queue: messages waiting for the writer */
	int64_t batch_max;		/* ingest_batch: messages per transaction */
	int64_t lag_alert_ms;		/* ingest_lag_alert: oldest queued message older */
	int64_t session_ms;		/* ingest_session: how long the broker keeps the
					   ingest's MQTT session (and queues for it) while
					   moatd is away; 0: a clean session */
	double rate_factor;		/* rate_factor: k, messages above k x the interval's */
	int64_t rate_window_ms;		/* rate_window */
	double silence_factor;		/* silence_factor: m, silent beyond m x interval */
	double payload_factor;		/* payload_factor: size beyond x or below 1/x of
					   the type's mean */
	int64_t payload_min_samples;	/* payload_min_samples: the mean needs as many */
	int64_t auth_burst;		/* auth_burst: refusals per identity or address */
	int64_t acl_burst;		/* acl_burst: ACL denials of one device */
	int64_t burst_window_ms;	/* burst_window: both bursts count over it */
	int64_t clone_switches;		/* clone_switches: address changes or takeovers */
	int64_t clone_window_ms;	/* clone_window */
	bool zone_check;		/* zone_check: device outside [network] device zones */
	double event_jump_factor;	/* event_jump_factor: events after a rollout vs before */
	int64_t event_jump_min;		/* event_jump_min: at least as many after */
	int64_t event_jump_window_ms;	/* event_jump_window: before and after */
	int64_t anomaly_open_ms;	/* anomaly_open: an anomaly counts as open, and its
					   rule does not fire again for the same subject */
};
/* Reads [monitor] (absent keys: the defaults of docs/CONFIGURATION.md); an unknown key or
 * a value out of range is refused naming file, line and key. zone_check defaults to on
 * when moat.conf has a [network] section, else off. */
MOAT_MUST_CHECK int moat_monitor_settings_load(const struct moat_config *cfg,
					       struct moat_monitor_settings *out,
					       struct moat_err *err);
void moat_monitor_settings_default(struct moat_monitor_settings *out);
/* The keys moat_monitor_settings_load reads (NULL-terminated). [monitor] is shared with the
 * export (monitor_export.h, moat_export_config_keys): both loaders refuse a key that is in
 * neither list (moat_monitor_keys_check). */
extern const char *const *const moat_monitor_config_keys;
MOAT_MUST_CHECK int moat_monitor_keys_check(const struct moat_config *cfg, struct moat_err *err);

/* ---- anomaly rules: pure, each true when it fires, evidence (may be NULL) says why ---- */

#define MOAT_RULE_RATE "rate"			    /* messages above k x interval */
#define MOAT_RULE_SILENCE "silence"		    /* silent beyond m x interval, no will */
#define MOAT_RULE_PAYLOAD_SIZE "payload_size"	    /* far from the device type's usual */
#define MOAT_RULE_AUTH_BURST "auth_burst"	    /* refusals of one identity */
#define MOAT_RULE_AUTH_BURST_ADDR "auth_burst_addr" /* refusals from one address */
#define MOAT_RULE_ACL_BURST "acl_burst"		    /* ACL denials of one device */
#define MOAT_RULE_CLONE_ADDR "clone_addr"	    /* one identity, two addresses in turn */
#define MOAT_RULE_CLONE_SESSION "clone_session"	    /* two sessions fighting for a client id */
#define MOAT_RULE_ZONE "zone"			    /* connected from outside its zone */
#define MOAT_RULE_RELEASE "release_unoffered"	    /* runs a release moatd never offered it */
#define MOAT_RULE_EVENT_JUMP "event_jump"	    /* events jumped after a rollout reached it */

/* count messages in window_ms of a device whose commanded interval is interval_s: more
 * than rate_factor x the messages the interval allows (window/interval, plus one). */
bool moat_rule_rate(const struct moat_monitor_settings *s, int64_t count, int64_t window_ms,
		    int64_t interval_s, char *evidence, size_t size);
/* Last message at last_ms, now now_ms; offline_by_will: the broker sent its will (a known
 * way of going silent). Fires beyond silence_factor x interval. */
bool moat_rule_silence(const struct moat_monitor_settings *s, int64_t last_ms, int64_t now_ms,
		       int64_t interval_s, bool offline_by_will, char *evidence, size_t size);
/* size bytes against the type's mean over samples messages. */
bool moat_rule_payload_size(const struct moat_monitor_settings *s, size_t size, double mean,
			    int64_t samples, char *evidence, size_t size_ev);
/* count events in the current window against threshold (auth_burst, acl_burst...). */
bool moat_rule_burst(int64_t count, int64_t threshold, const char *what, char *evidence,
		     size_t size);
/* A release change: prev running (""= first report), now running, offered: a release of
 * that version targeting the device exists. Fires for a change to an unoffered version. */
bool moat_rule_release(const char *prev, const char *now, bool offered, char *evidence,
		       size_t size);
struct moat_net_policy;
/* A device connected from addr (IPv4 or IPv6 text): fires when no device zone of the
 * policy ([network] device_zones) holds it. */
bool moat_rule_zone(const struct moat_net_policy *p, const char *addr, char *evidence, size_t size);
/* Security events of a device in the window before and after its release changed. */
bool moat_rule_event_jump(const struct moat_monitor_settings *s, int64_t before, int64_t after,
			  char *evidence, size_t size);

/* A tumbling window counter: count of what happened since start_ms. */
struct moat_window {
	int64_t start_ms;
	int64_t count;
};
/* Adds one at now_ms (a new window once window_ms passed) and returns the count. */
int64_t moat_window_add(struct moat_window *w, int64_t now_ms, int64_t window_ms);

/* Tracks one identity's connections for the clone rules. */
struct moat_clone_track {
	char last_addr[MOAT_EVENT_ADDR_MAX_LEN + 1];
	char prev_addr[MOAT_EVENT_ADDR_MAX_LEN + 1];
	int64_t sessions; /* connected minus disconnected seen */
	struct moat_window switches;
	struct moat_window takeovers;
};
/* A connection of the identity from addr at now_ms: CLONE_ADDR when it alternates between
 * two addresses clone_switches times within clone_window (A,B,A,B...), CLONE_SESSION when
 * it connects while a session is still open that often. Returns the rule id or NULL. */
const char *moat_clone_connected(struct moat_clone_track *t, const struct moat_monitor_settings *s,
				 const char *addr, int64_t now_ms, char *evidence, size_t size);
void moat_clone_disconnected(struct moat_clone_track *t);

/* ---- TLS refusals from the broker's log (src/monitor/brokerlog.c) ----
 * A client refused in the TLS handshake never reaches the plugin's hooks with a reason:
 * the plugin only sees a connection close before CONNECT without a verified certificate
 * (its auth_refused event, reason tls_handshake_failed, with the source address).
 * Mosquitto 2.0 logs why, in log/mosquitto.log (log_dest file, log_timestamp_format
 * %Y-%m-%dT%H:%M:%S, both set by moat), in one run of lines written together:
 *   2026-12-03T02:06:37: OpenSSL Error[0]: error:0A0000C7:SSL routines::peer did not return a
 * certificate 2026-12-03T02:06:37: Client <unknown> disconnected: Protocol error.
 *   2026-12-03T02:06:37: moat: event {"kind":"auth_refused",...,"address":"127.0.0.1",
 *                        "reason":"tls_handshake_failed",...}
 * or, when the handshake already fails as Mosquitto accepts the connection (the client's
 * first bytes were there: no plugin event at all), in one line:
 *   2026-12-03T02:36:37: Client connection from 127.0.0.1 failed: error:0A00010B:SSL
 * routines::wrong version number. moatd's ingest follows the log and turns each such run into a
 * tls_refused event with the address and the reason. Mosquitto 2.0.11 logs "certificate verify
 * failed" alike for an untrusted, a revoked and an expired certificate, so those share one reason.
 */

#define MOAT_EVENT_KIND_TLS_REFUSED "tls_refused"
#define MOAT_BROKER_LOG_LINE_MAX 8192 /* longer lines are refused */
#define MOAT_TLS_REASON_MAX_LEN 200

enum moat_broker_log_kind {
	MOAT_BLOG_OTHER = 0,	 /* a line of no interest here */
	MOAT_BLOG_TLS_ERROR,	 /* "OpenSSL Error[n]: error:<code>:<lib>:<func>:<reason>" */
	MOAT_BLOG_UNKNOWN_GONE,	 /* "Client <unknown> disconnected: ..." (closed before CONNECT) */
	MOAT_BLOG_PLUGIN_EVENT,	 /* "moat: event {...}" (the plugin's event, also in its log) */
	MOAT_BLOG_ACCEPT_FAILED, /* "Client connection from <address> failed: error:...:<reason>."
				  */
};

struct moat_broker_log_line {
	enum moat_broker_log_kind kind;
	int64_t time_s; /* its timestamp, Mosquitto's local time (mktime), seconds since the
			   epoch; -1 when mktime cannot say */
	char tls_reason[MOAT_TLS_REASON_MAX_LEN + 1]; /* TLS_ERROR, ACCEPT_FAILED: OpenSSL's
							 reason text */
	char address[MOAT_EVENT_ADDR_MAX_LEN + 1];    /* ACCEPT_FAILED */
	struct moat_security_event ev;		      /* PLUGIN_EVENT */
};

/* Reads one line of the broker's log (no newline). Refused (MOAT_EINVAL, one line): more
 * than MOAT_BROKER_LOG_LINE_MAX bytes, no "YYYY-MM-DDTHH:MM:SS: " timestamp, an OpenSSL
 * error line or a failed accept without its "error:" fields or with a reason that is empty
 * or not printable ASCII, a failed accept whose address is not an IPv4 or IPv6 address
 * (hex digits, '.', ':'; at most MOAT_EVENT_ADDR_MAX_LEN), a plugin event whose JSON
 * moat_monitor_plugin_event_parse refuses. Any other line is MOAT_BLOG_OTHER, whatever it holds. */
MOAT_MUST_CHECK int moat_broker_log_line_parse(const char *line, size_t len,
					       struct moat_broker_log_line *out,
					       struct moat_err *err);

/* One refused handshake. */
struct moat_tls_refusal {
	const char *reason; /* no_certificate, certificate_not_verified, not_tls, tls_policy,
			       handshake_failed */
	char openssl[MOAT_TLS_REASON_MAX_LEN + 1]; /* what Mosquitto logged */
	char address[MOAT_EVENT_ADDR_MAX_LEN + 1]; /* "" when the plugin's event was not
						      written (its budget) */
	int64_t time_s; /* when: the timestamp of the run's first line (-1: unknown) */
};
/* The reason class of OpenSSL's reason text. */
const char *moat_tls_refusal_reason(const char *openssl);

/* Matches the run of lines above across reads. */
struct moat_tls_refusal_track {
	int state;
	int64_t time_s; /* of the open run's first line */
	char openssl[MOAT_TLS_REASON_MAX_LEN + 1];
};
/* Feeds one line (a refused line: pass NULL). Returns how many refusals it completed
 * (0..2), in out[0] then out[1]: a run cut short after "Client <unknown> disconnected"
 * (no plugin event follows) is still one, without its address; a failed accept is one by
 * itself. */
size_t moat_tls_refusal_feed(struct moat_tls_refusal_track *t, const struct moat_broker_log_line *l,
			     struct moat_tls_refusal out[2]);

#endif
