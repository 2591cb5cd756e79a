/* monitor_export.h: moatd's export of security events (src/monitor/export*.c, alerts.c,
 * metrics.c): to a SIEM collector as RFC 5424 syslog over TCP or TLS (RFC 5425), as JSON
 * lines or as CEF, from a bounded queue persisted on disk; as HTTPS webhook alerts from
 * another bounded queue persisted on disk; and the Prometheus text of moatd's /metrics.
 *
 * The pure parts (URL, event, framing, the queue files, HTTP status line, metrics text)
 * read only what they are given, are bounded and fuzzed (tests/fuzz/fuzz_export_*.c). The
 * running exporter (struct moat_export) owns a thread; every network peer it talks to is
 * verified (TLS 1.2+, the configured CA or the deployment's root, the URL's host name or
 * address); there is no switch that turns that off.
 *
 * Where events come from: in moatd with its ingest and a sink configured, the exporter's
 * thread follows the registry's security_events by seq from a cursor on disk
 * (MOAT_EXPORT_CURSOR_FILE, written only after the queue files that cover it), woken by
 * the ingest's hook (monitor.h): every event any moatd of the deployment recorded (the
 * plugin's, moatd's own, anomalies) is exported, and a crash loses none of them. With no
 * sink, the hook only counts events for /metrics. moatd started without its ingest
 * (--no-ingest) has the exporter subscribe to moat/events/# itself instead
 * (moat_export_submit: its queue file is then the only record, rewritten at most every
 * second). Either way one moatd of a deployment directory exports at a time, the holder of
 * MOAT_EXPORT_LOCK_FILE; the others stand by (and do not subscribe). moat_export_submit is
 * thread-safe and never blocks on the network.
 *
 * Known limit: following by seq relies on seq being given in commit order, which holds for
 * SQLite (one writer at a time); on PostgreSQL a transaction that commits after a later
 * seq's could be passed over (issue #18's concurrent writers).
 */
#ifndef MOAT_MONITOR_EXPORT_H
#define MOAT_MONITOR_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/config.h"
#include "moat/err.h"
#include "moat/manifest.h"
#include "moat/rollout.h"
#include "moat/secevent.h"

/* ---- a security event (the broker plugin's JSON, src/broker/plugin/events.c) ---- */

#define MOAT_SEC_KIND_MAX_LEN 32
#define MOAT_SEC_FIELD_MAX_LEN 256
#define MOAT_SEC_EVENT_MAX_BYTES 4096

struct moat_sec_event {
	int64_t time_ms;			    /* when it happened, ms since the epoch */
	char kind[MOAT_SEC_KIND_MAX_LEN + 1];	    /* [a-z0-9_]+ */
	char identity[MOAT_SEC_FIELD_MAX_LEN + 1];  /* "" when absent; printable ASCII */
	char client_id[MOAT_SEC_FIELD_MAX_LEN + 1]; /* likewise */
	char address[MOAT_SEC_FIELD_MAX_LEN + 1];   /* likewise */
	char reason[MOAT_SEC_FIELD_MAX_LEN + 1];    /* likewise */
	char detail[MOAT_SEC_FIELD_MAX_LEN + 1];    /* likewise */
	uint64_t count;				    /* the plugin's count (0 when absent) */
	uint64_t suppressed;			    /* events of this kind not written before */
	uint64_t repeats; /* the exporter's deduplication ([monitor] dedup_window): this record
			     stands for that many identical events not sent one by one, and
			     is the last of them; 0: it stands for itself only */
};

/* Reads one event (a JSON object, at most MOAT_SEC_EVENT_MAX_BYTES, moat_json_parse): "kind"
 * and "time_ms" required; "identity", "client_id", "address", "reason", "detail" strings or
 * null, cut to MOAT_SEC_FIELD_MAX_LEN, refused when they hold anything but printable ASCII;
 * "count", "suppressed" and "repeats" non-negative integers; other keys ignored.
 * MOAT_EINVAL naming the field. */
MOAT_MUST_CHECK int moat_sec_event_parse(const void *text, size_t len, struct moat_sec_event *out,
					 struct moat_err *err);
/* The event as one JSON object (no newline) into out ("repeats" only when not 0); false
 * when it does not fit. */
bool moat_sec_event_json(const struct moat_sec_event *ev, char *out, size_t size, size_t *out_len);
/* Is kind 1..MOAT_SEC_KIND_MAX_LEN of [a-z0-9_]? */
bool moat_sec_event_kind_ok(const char *kind);
/* Is the kind one an operator is alerted about (refusals, bans, kicks; not connected,
 * disconnected)? */
bool moat_sec_event_alerts(const char *kind);

/* ---- where to send: [monitor] siem_url, webhook_url ---- */

enum moat_export_scheme {
	MOAT_EXPORT_TCP = 1, /* tcp://host:port   syslog without TLS (a collector on loopback) */
	MOAT_EXPORT_TLS,     /* tls://host:port   syslog over TLS (RFC 5425) */
	MOAT_EXPORT_HTTPS,   /* https://host[:port][/path]   webhooks (default port 443) */
};

#define MOAT_EXPORT_URL_MAX_LEN 512
#define MOAT_EXPORT_HOST_MAX_LEN 253

struct moat_export_url {
	enum moat_export_scheme scheme;
	char host[MOAT_EXPORT_HOST_MAX_LEN + 1]; /* a DNS name, or an address without brackets */
	bool host_is_ip;
	int port;
	char path[MOAT_EXPORT_URL_MAX_LEN + 1]; /* https only: "/" when absent; else "" */
};

/* Parses a URL of the schemes above (lower case). Refused: another scheme, user info, a
 * fragment, an empty or malformed host (names: letters, digits, '-', '.'; IPv6 in
 * brackets), a port outside 1..65535 or missing for tcp/tls, a path or query on tcp/tls,
 * bytes outside printable ASCII or spaces, more than MOAT_EXPORT_URL_MAX_LEN bytes. */
MOAT_MUST_CHECK int moat_export_url_parse(const char *s, struct moat_export_url *out,
					  struct moat_err *err);

/* ---- SIEM framing ---- */

enum moat_siem_format {
	MOAT_SIEM_RFC5424 = 1, /* RFC 5424, structured data [moat@32473 ...], octet-counted */
	MOAT_SIEM_JSON,	       /* the event's JSON, one per line (LF) */
	MOAT_SIEM_CEF,	       /* ArcSight CEF:0 as the MSG of an RFC 5424 record, octet-counted */
};
/* "rfc5424", "json", "cef". */
MOAT_MUST_CHECK int moat_siem_format_parse(const char *s, enum moat_siem_format *out,
					   struct moat_err *err);
const char *moat_siem_format_name(enum moat_siem_format f);

/* The private enterprise number in structured data: the example number of RFC 5424 is
 * 32473, used until moat has its own. */
#define MOAT_SIEM_SD_ID "moat@32473"
#define MOAT_SIEM_FRAME_MAX 8192

/* One event as it goes on the wire: for RFC 5424 and CEF "<len> <record>" (RFC 5425
 * octet counting), for JSON "<json>\n"; its repeats (when not 0) as the structured data's
 * repeats="N", CEF's cn1Label=repeats cn1=N, JSON's "repeats". host is the HOSTNAME field
 * (NILVALUE "-" when NULL or empty). Returns the bytes written, 0 when it does not fit. */
size_t moat_siem_frame(enum moat_siem_format f, const struct moat_sec_event *ev, const char *host,
		       char *out, size_t size);

/* ---- webhook alerts: a bounded queue, deduplicated, persisted ---- */

#define MOAT_ALERT_QUEUE_FILE "state/alerts.queue"
#define MOAT_ALERT_QUEUE_MAX 100000
#define MOAT_ALERT_QUEUE_FILE_MAX_BYTES (64u * 1024u * 1024u)

struct moat_alert {
	char kind[MOAT_SEC_KIND_MAX_LEN + 1];
	char identity[MOAT_SEC_FIELD_MAX_LEN + 1];
	char reason[MOAT_SEC_FIELD_MAX_LEN + 1];
	char address[MOAT_SEC_FIELD_MAX_LEN + 1];
	int64_t first_ms, last_ms; /* first and last time this alert fired */
	uint64_t count;		   /* how many times it fired (deduplicated into this entry) */
	uint32_t attempts;	   /* deliveries tried */
	int64_t next_ms;	   /* wall-clock ms of the next attempt */
};

struct moat_alert_queue {
	struct moat_alert *items; /* oldest first */
	size_t len, cap;
	size_t max;	  /* bound: adding to a full queue drops the oldest */
	uint64_t dropped; /* alerts dropped for the bound, reported in the next summary */
};

/* An empty queue of at most max (1..MOAT_ALERT_QUEUE_MAX) alerts. */
void moat_alert_queue_init(struct moat_alert_queue *q, size_t max);
void moat_alert_queue_free(struct moat_alert_queue *q);
/* Adds ev as an alert due at now_ms. An alert with the same kind, identity and reason
 * already queued counts it instead (deduplication); else a full queue drops its oldest.
 * Returns true when a new entry was made. MOAT_ENOMEM is reported as false with nothing
 * added. */
bool moat_alert_queue_add(struct moat_alert_queue *q, const struct moat_sec_event *ev,
			  int64_t now_ms);
/* Removes entry i. */
void moat_alert_queue_remove(struct moat_alert_queue *q, size_t i);
/* The queue as its file's text (JSON, version 1): malloc'd, the caller frees it. */
MOAT_MUST_CHECK int moat_alert_queue_encode(const struct moat_alert_queue *q, char **out,
					    size_t *out_len, struct moat_err *err);
/* Reads a queue file's text into q (initialised, empty): a strict reader; a file that
 * is not what moat_alert_queue_encode writes is refused whole (MOAT_EINVAL) and q stays
 * empty. Entries beyond q->max are dropped oldest first and counted in q->dropped. */
MOAT_MUST_CHECK int moat_alert_queue_decode(const void *text, size_t len,
					    struct moat_alert_queue *q, struct moat_err *err);
/* The JSON body of one alert (for the webhook), or of a summary of n alerts when n > 1:
 * {"summary":true,"alerts":n,"events":total,"dropped":d,"kinds":{...}}. */
MOAT_MUST_CHECK int moat_alert_body(const struct moat_alert *a, size_t n, uint64_t dropped,
				    const char *deployment, char **out, size_t *out_len,
				    struct moat_err *err);

/* The status code of an HTTP/1.x response's first line ("HTTP/1.1 204 No Content\r\n"):
 * MOAT_EINVAL when len bytes at buf do not start with one. */
MOAT_MUST_CHECK int moat_http_status_line_parse(const char *buf, size_t len, int *out_status);

/* ---- the SIEM's delivery as moatd last recorded it (src/monitor/siemstatus.c) ----
 * moatd rewrites the file atomically when it changes (at most every few seconds) and when
 * the exporter stops; `moat audit` reads it (monitor.sinks). Times in seconds since the
 * epoch, 0 = never. */

#define MOAT_SIEM_STATUS_FILE "state/siem.status"
#define MOAT_SIEM_STATUS_MAX_BYTES 4096

struct moat_siem_status {
	int64_t last_ok;	      /* the last event written to the collector */
	int64_t last_error;	      /* the last failure to connect or write */
	char error[MOAT_ERR_MSG_MAX]; /* its message (a moat_err), printable ASCII */
	uint64_t pending;	      /* events waiting for the collector */
	int64_t oldest_pending;	      /* when the oldest of them happened */
};

/* The file's text (one JSON object and a newline) into out; its length, or -1 when it does
 * not fit. */
int moat_siem_status_encode(const struct moat_siem_status *s, char *out, size_t size);
/* A strict reader of that text: version 1, every field present and in range. */
MOAT_MUST_CHECK int moat_siem_status_decode(const void *text, size_t len,
					    struct moat_siem_status *out, struct moat_err *err);

/* ---- the SIEM's queue on disk (src/monitor/siemqueue.c) ----
 * The events waiting for the collector, so a moatd restart while it is away loses none:
 * moatd rewrites the file atomically (0600) at most every second while the queue changes
 * (not while it is empty on disk and in memory) and when the exporter stops, and reads it
 * back at start (a file that does not read is renamed aside to "<file>.bad.<time>" and
 * logged). Text: {"version":1,"events":N} and a newline, then N lines, each one event
 * (moat_sec_event_json), oldest first. */

#define MOAT_SIEM_QUEUE_FILE "state/siem.queue"
#define MOAT_SIEM_QUEUE_FILE_MAX_BYTES (256u * 1024u * 1024u)

/* The n events of ring (cap slots, the oldest at head) as that text: malloc'd, the caller
 * frees it. Only the newest that fit in MOAT_SIEM_QUEUE_FILE_MAX_BYTES are written; how
 * many older ones were left out goes to out_dropped. */
MOAT_MUST_CHECK int moat_siem_queue_encode(const struct moat_sec_event *ring, size_t cap,
					   size_t head, size_t n, char **out, size_t *out_len,
					   size_t *out_dropped, struct moat_err *err);
/* A strict reader of that text into out (room for max events): the newest max events,
 * oldest first, in *out_n; the older ones left out counted in *out_dropped. A header that
 * is not version 1 with its count, a line that is not an event (moat_sec_event_parse),
 * a missing line end, more or fewer events than the header says: refused whole
 * (MOAT_EINVAL, *out_n 0). */
MOAT_MUST_CHECK int moat_siem_queue_decode(const void *text, size_t len, struct moat_sec_event *out,
					   size_t max, size_t *out_n, uint64_t *out_dropped,
					   struct moat_err *err);

/* ---- the exporter's place in the registry (src/monitor/siemqueue.c) ----
 * moatd's exporter follows the registry's security_events by seq (export.c). The cursor
 * file holds a seq such that every event up to it is delivered or waits in the queue files
 * above; it is written (atomically, 0600) only after them, so a moatd killed outright
 * starts again from it and loses no event: it may send again what it delivered after the
 * cursor was last written (at-least-once). Text: {"version":1,"seq":N} and a newline. */

#define MOAT_EXPORT_CURSOR_FILE "state/export.cursor"
#define MOAT_EXPORT_CURSOR_MAX_BYTES 128
/* One moatd of a deployment directory exports at a time: the one holding an exclusive
 * flock on this file; the others stand by and take over when it goes. */
#define MOAT_EXPORT_LOCK_FILE "state/export.lock"

/* The file's text for seq (0..2^53-1) into out; its length, or -1 when it does not fit or
 * seq is out of range. */
int moat_export_cursor_encode(int64_t seq, char *out, size_t size);
/* A strict reader of that text: one JSON object of exactly "version" 1 and "seq", an
 * integer 0..2^53-1, at most MOAT_EXPORT_CURSOR_MAX_BYTES. MOAT_EINVAL (*out_seq 0)
 * otherwise. */
MOAT_MUST_CHECK int moat_export_cursor_decode(const void *text, size_t len, int64_t *out_seq,
					      struct moat_err *err);

/* ---- configuration: [monitor] of moat.conf ---- */

struct moat_export_settings {
	bool siem;				 /* siem_url set */
	struct moat_export_url siem_url;	 /* siem_url */
	enum moat_siem_format siem_format;	 /* siem_format, default rfc5424 */
	char siem_ca[MOAT_CONFIG_VALUE_MAX + 1]; /* siem_ca: "" = the deployment's pki/ca.crt */
	int64_t siem_queue_max;			 /* siem_queue_max: 1..1000000, default 10000 */
	bool webhook;				 /* webhook_url set */
	struct moat_export_url webhook_url;	 /* webhook_url (https only) */
	char webhook_ca[MOAT_CONFIG_VALUE_MAX + 1];
	int64_t webhook_queue_max;	   /* 1..MOAT_ALERT_QUEUE_MAX, default 1000 */
	int64_t webhook_retry_min_ms;	   /* webhook_retry_min: 1 s..1 h, default 1 s */
	int64_t webhook_retry_max_ms;	   /* webhook_retry_max: >= min, ..1 day, default 5 min */
	int64_t webhook_summary_threshold; /* webhook_summary: 2..10000, default 5: more alerts
					      due at once than this go as one summary */
	int64_t webhook_gather_ms;	   /* webhook_gather: 0..1 min, default 2 s: a new
					      alert waits this long for others to join it */
	int64_t dedup_window_ms;	   /* dedup_window: 0 (off)..1 h, default 60 s: an
					      event identical to one sent less than this ago
					      (kind, identity, client id, address, reason,
					      detail) is not sent; at the window's end the
					      last of them goes with its count of repeats */
};

/* Every key of [monitor] this module reads (NULL-terminated): moat config check and the
 * deployment's section check accept these. */
extern const char *const *const moat_export_config_keys;

/* Reads [monitor] (absent keys: defaults; no siem_url and no webhook_url: nothing is
 * exported). An unknown key, a bad URL, a webhook_url that is not https, a siem_url that
 * is not tcp or tls, a value out of range: refused naming file, line and key. */
MOAT_MUST_CHECK int moat_export_settings_load(const struct moat_config *cfg,
					      struct moat_export_settings *out,
					      struct moat_err *err);

/* ---- the running exporter (src/monitor/export.c) ---- */

struct moat_export;

/* Records a security event of moatd's own (server.h's moat_server_security_event: monitor
 * may not use server). */
typedef void (*moat_export_security_event_fn)(const char *kind, enum moat_severity sev,
					      const char *identity, const char *address,
					      const char *evidence);

struct moat_export_opts {
	const char *dir; /* the deployment directory */
	bool subscribe;	 /* subscribe to moat/events/# itself when [monitor] names a sink
			    (moatd without its ingest); else take the ingest's hook */
	const char *as;	 /* as whom: NULL: [server] service_identity, else
			    MOAT_SERVER_DEFAULT_SERVICE_IDENTITY ("backend-service") */
	int port; /* moatd's HTTPS port (0: [server] port): its own session when it subscribes
		     is "<as>:export-<host>-<port>" (moat_opclient_instance_suffix) */
	/* NULL, or where a sink whose certificate or name moatd refused is said
	 * (MOAT_EVENT_KIND_PEER_REFUSED, high; address: the sink's host; once until the sink
	 * is accepted again) */
	moat_export_security_event_fn security_event;
};

/* Reads [monitor]; starts the exporter thread (also when nothing is configured: the
 * counters of /metrics still count). The alert queue is loaded from
 * MOAT_ALERT_QUEUE_FILE (a file that does not read is renamed aside to
 * "<file>.bad.<time>" and logged, never silently reused) and written atomically (0600)
 * after every change. */
MOAT_MUST_CHECK int moat_export_start(const struct moat_export_opts *opts, struct moat_export **out,
				      struct moat_err *err);
/* Queues one event for every sink. Thread-safe, never blocks on the network. */
void moat_export_submit(struct moat_export *x, const struct moat_sec_event *ev);
void moat_export_stop(struct moat_export *x);

/* ---- metrics (src/monitor/metrics.c) ---- */

struct moat_registry;
struct moat_buf;

/* How moatd's ingest keeps up, for /metrics: the caller copies server.h's
 * moat_ingest_stats here (monitor does not depend on server). Counters since start. */
struct moat_metrics_ingest {
	uint64_t received;	 /* messages read from the broker */
	uint64_t recorded;	 /* messages whose batch committed */
	uint64_t dropped;	 /* messages lost (full queue, failed batch) */
	uint64_t bytes_received; /* their payload bytes */
	uint64_t queued;	 /* waiting now */
	int64_t lag_ms;		 /* age of the oldest waiting message, 0 when none */
};

/* The phased rollouts, for /metrics: moatd computes their progress as `moat fw rollout
 * status` does (src/server/rollouts.c) and passes it here. Every rollout counts in
 * by_state; only those not finished (running, paused, halted: at most
 * MOAT_METRICS_ROLLOUTS_MAX of them, the newest) have series of their own, so finished
 * ones do not pile up in Prometheus. */
#define MOAT_METRICS_ROLLOUTS_MAX 64
#define MOAT_METRICS_ROLLOUT_STATES (MOAT_ROLLOUT_COMPLETED + 1)
struct moat_metrics_rollout {
	int64_t id;
	char version[MOAT_FW_VERSION_MAX_LEN + 1];
	enum moat_rollout_state state;
	int phase; /* the current one, 1-based as `moat fw rollout status` shows it */
	int phase_count;
	size_t waiting;			      /* devices of phases not started yet */
	size_t by_state[MOAT_RD_STATE_COUNT]; /* devices of started phases, by state */
};
struct moat_metrics_rollouts {
	size_t by_state[MOAT_METRICS_ROLLOUT_STATES]; /* every rollout, by state */
	struct moat_metrics_rollout active[MOAT_METRICS_ROLLOUTS_MAX];
	size_t active_count;
};

/* Appends the Prometheus text exposition (version 0.0.4) of moatd's metrics to b: from
 * the registry (devices by state and type, certificate expiry horizon, enrollments,
 * releases' targets, update events), from rollouts (phased rollouts: by state, and each
 * unfinished one's phase, state and devices by progress; NULL: left out), from x (security
 * events by kind, exports, alert queue; x may be NULL) and from ingest (lag, queue,
 * messages and bytes; NULL: moatd runs without its ingest, and these metrics are left
 * out). now is the wall clock in seconds. */
MOAT_MUST_CHECK int moat_metrics_render(struct moat_registry *reg, struct moat_export *x,
					const struct moat_metrics_ingest *ingest,
					const struct moat_metrics_rollouts *rollouts, int64_t now,
					struct moat_buf *b, struct moat_err *err);

#endif
