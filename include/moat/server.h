/* server.h: moatd, the update service (src/server/): starting and stopping its HTTPS
 * service and its MQTT ingest of update events (moatd_main.c), and finding and supervising
 * the moatd executable for `moat up` (locate.c).
 *
 * HTTP API (HTTPS, mutual TLS against the deployment CA; the caller is its certificate's CN):
 *   GET /api/firmware/version[?current=V]   200 + the signed envelope of the newest release
 *                                           for the caller's type that includes it; 204 when
 *                                           there is none newer than V (else the header
 *                                           MOAT_SERVER_VERSION_HEADER, else the version the
 *                                           device last reported running)
 *   GET /api/firmware/download/<sha256>     the image; Range: bytes=a-b|a-|-n (one range),
 *                                           206/416; never a byte past the release's size
 *   GET /metrics                            Prometheus text (monitor_export.h); the caller
 *                                           must be an active operator (others: 403)
 * A request header MOAT_SERVER_DEVICE_HEADER that differs from the CN is refused (403).
 * EST (RFC 7030, src/server/est.c; docs/MOATD.md has the status codes):
 *   GET  /.well-known/est/cacerts          no client auth; certs-only PKCS#7 of the chain
 *   GET  /.well-known/est/csrattrs         no client auth; the CSR attributes moat asks for
 *   POST /.well-known/est/simpleenroll     HTTP Basic id:token, or a claim certificate
 *   POST /.well-known/est/simplereenroll   the device's current certificate
 * The dashboard (moat/dashboard.h, docs/DASHBOARD.md) under /dashboard: an operator's
 * certificate or a session cookie from a one-time link (`moat dashboard`), GET pages and
 * CSRF-protected POST actions.
 * Only these four paths and /dashboard authenticate otherwise; every other path needs the
 * client certificate as above.
 * Which release is offered: release.h; request parsing: http_parse.h; update events:
 * update_schema.h.
 *
 * Contract: a started service owns its thread and what it opened (the deployment, keys,
 * connections) until the matching stop, which ends the thread and frees them; stop
 * accepts NULL. The services log (moat_log) and never print.
 */
#ifndef MOAT_SERVER_H
#define MOAT_SERVER_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "moat/config.h"
#include "moat/err.h"
#include "moat/secevent.h"

/* The tutorial's firmware sends both headers: keep their names so it works unchanged. */
#define MOAT_SERVER_DEVICE_HEADER "X-Device-ID"
#define MOAT_SERVER_VERSION_HEADER "X-Current-Version"

/* ---- the HTTPS service (src/server/httpd.c) ---- */

struct moat_ingest;

struct moat_httpd_opts {
	const char *dir;	      /* the deployment directory */
	const char *listen_addr;      /* numeric IPv4 or IPv6 address; NULL: [server] listen, else
					 127.0.0.1 */
	int port;		      /* 0: [server] port of moat.conf */
	struct moat_export *exporter; /* counters for /metrics (may be NULL); outlives the
					 service */
	struct moat_ingest *ingest;   /* stats for /metrics (may be NULL); outlives the
					 service */
};

struct moat_httpd;
struct moat_export;

/* What moatd lets connections hold ([server] of moat.conf; include/moat/connguard.h says
 * how each is enforced). Both deadlines count from accept and no trickled byte resets them;
 * idle_timeout is libmicrohttpd's inactivity timeout, which activity does reset. */
struct moat_httpd_limits {
	int64_t handshake_timeout_s;	    /* handshake_timeout: TLS handshake complete */
	int64_t header_timeout_s;	    /* header_timeout: each request's headers in */
	int64_t idle_timeout_s;		    /* idle_timeout: no byte either way */
	int64_t max_connections;	    /* max_connections: open at once (also bounded by
					       the open-file limit) */
	int64_t unauthenticated_per_source; /* unauthenticated_per_source: per IPv4 address or
					       IPv6 /64, before authenticating */
	int64_t connections_per_device;	    /* connections_per_device: authenticated, per
					       identity */
	int64_t threads; /* threads: libmicrohttpd's thread pool (default: the CPUs online) */
};
#define MOAT_HTTPD_HANDSHAKE_TIMEOUT_DEFAULT 10
#define MOAT_HTTPD_HEADER_TIMEOUT_DEFAULT 20
#define MOAT_HTTPD_IDLE_TIMEOUT_DEFAULT 60
#define MOAT_HTTPD_MAX_CONNECTIONS_DEFAULT 1024
#define MOAT_HTTPD_UNAUTH_PER_SOURCE_DEFAULT 16
#define MOAT_HTTPD_PER_DEVICE_DEFAULT 4
#define MOAT_HTTPD_THREADS_MAX 64

/* Reads the limits from [server] of cfg (absent keys: the defaults above) and refuses, with
 * a message naming the file, line and key: an unknown [server] key, a value out of range
 * (timeouts: handshake 1 s-5 min, header 1 s-10 min, idle 5 s-1 h; max_connections
 * 16-65536; unauthenticated_per_source 1-65536; connections_per_device 1-1024), or a
 * handshake_timeout above header_timeout. out is written only on success. */
MOAT_MUST_CHECK int moat_httpd_limits_load(const struct moat_config *cfg,
					   struct moat_httpd_limits *out, struct moat_err *err);

/* [est] of moat.conf: EST enrollment's settings. */
struct moat_est_settings {
	int64_t reenroll_grace_s;	/* reenroll_grace: 0..30 days, default 1 h */
	int64_t token_failures;		/* token_failures: 1..100000, default 10 */
	int64_t token_failure_refill_s; /* token_failure_refill: 1 s..1 day, default 60 s */
};
/* Reads [est] (absent keys: the defaults above); an unknown key or a value out of range is
 * refused naming file, line and key. */
MOAT_MUST_CHECK int moat_est_settings_load(const struct moat_config *cfg,
					   struct moat_est_settings *out, struct moat_err *err);

/* Opens the deployment read-only, loads pki/server.{key,crt} (the certificate with its
 * chain), pki/ca.crt (the root: the only trust anchor) and pki/crl.pem, and serves the API
 * above on a pool of [server] threads threads (libmicrohttpd's), each request with a
 * registry handle of its own. Every request is authorized from the client certificate:
 * verified against the root by GnuTLS (the client presents its issuing CA), its serial in
 * none of pki/crl.pem's CRLs (re-read when the file changes, each verified against the root
 * or an issuing CA of pki/issuers.pem; a CRL that fails to load or verify refuses
 * everyone), its CN an active device in the registry. One log line per request (moat_log).
 * Connections are held to the limits of moat_httpd_limits_load (a bad [server] value fails the
 * start); every connection closed for a deadline or a limit is an event=connection_closed line
 * (budgeted: connguard.h). */
MOAT_MUST_CHECK int moat_httpd_start(const struct moat_httpd_opts *opts, struct moat_httpd **out,
				     struct moat_err *err);
void moat_httpd_stop(struct moat_httpd *h);
/* The exporter whose counters /metrics shows from now on (NULL: none). */
void moat_httpd_set_exporter(struct moat_httpd *h, struct moat_export *x);
/* The ingest whose stats /metrics shows from now on (NULL: none). */
void moat_httpd_set_ingest(struct moat_httpd *h, struct moat_ingest *ing);

/* ---- keeping the CRL fresh (src/server/crlkeep.c) ---- */

#define MOAT_CRL_KEEP_INTERVAL_MAX_S 60

struct moat_crl_keeper {
	int64_t interval_s; /* how long to wait until the next check (set by moat_crl_keep) */
	bool warned;	    /* the needs-the-passphrase warning was logged */
};
/* The check interval for a CRL validity: an eighth of it, at least 1 s, at most 60 s. */
int64_t moat_crl_keep_interval(int64_t validity_s);
/* One check of the deployment at dir: logs a stale CRL as a security event
 * (event=security kind=crl_stale) and, once half of a CRL's validity has passed, re-signs
 * pki/crl.pem with the issuing CA (no passphrase; moat_deploy_write_crl under the lock),
 * logging event=crl_refreshed. It does not signal the broker (moatd's account cannot): the
 * supervisor of `moat up` reloads Mosquitto when the file changes. A single-tier deployment cannot
 * be refreshed without the passphrase: logged once (event=crl_refresh_needs_passphrase). Returns 0
 * or the error it logged. moatd calls it at start and every k->interval_s. */
int moat_crl_keep(const char *dir, struct moat_crl_keeper *k);

/* ---- ingest over MQTT (src/server/ingest.c, ingest_store.c) ---- */

#define MOAT_SERVER_DEFAULT_SERVICE_IDENTITY "backend-service"
#define MOAT_INGEST_TOPIC "devices/+/diagnostics"
/* Everything ingest subscribes to (as a service, each under $share/moatd/, so that the
 * moatds of one deployment split the load). */
#define MOAT_INGEST_TOPICS                                                    \
	{                                                                     \
		"devices/+/telemetry", "devices/+/status", MOAT_INGEST_TOPIC, \
			"devices/+/command_responses", "moat/events/#"        \
	}
#define MOAT_INGEST_TOPIC_COUNT 5
#define MOAT_INGEST_SHARE_GROUP "moatd"

struct moat_ingest_opts {
	const char *dir; /* the deployment directory */
	const char *as;	 /* service identity; NULL: [server] service_identity, else
			    MOAT_SERVER_DEFAULT_SERVICE_IDENTITY */
	/* moatd's HTTPS port (0: [server] port): it names this moatd's MQTT session, client
	 * id "<as>:ingest-<host>-<port>" (moat_opclient_instance_suffix), so several moatds
	 * on one broker split the messages instead of taking each other's session */
	int port;
	/* The broker plugin's events file (MOAT_PLUGIN_EVENTS_FILE_NAME) opened for reading
	 * by the caller while it could (the broker's user owns it, 0640; moatd opens it
	 * before it gives up root): ingest reads it back at start and closes it. Without
	 * one, ingest opens it itself. */
	bool has_events_fd;
	int events_fd;
	/* The broker's log (MOAT_BROKER_LOG_FILE, the broker's user's, 0640), likewise:
	 * ingest follows it from its end for TLS refusals (monitor.h) and reopens it by name
	 * when it is rotated. Without one, ingest opens it itself. */
	bool has_broker_log_fd;
	int broker_log_fd;
};

struct moat_ingest;

/* Starts ingest: a reader thread that connects to the broker as the service identity
 * (moat_opclient: certificate, CA and host name verified), subscribes to
 * MOAT_INGEST_TOPICS and only queues what arrives (stamped with moatd's clock), and a
 * writer thread that takes the queue in batches of [monitor] ingest_batch, one
 * transaction each (registry.db is in WAL mode), and records:
 *   - device state (registry.h, struct moat_device_state): online/offline from status and
 *     the last will, last seen, source address (the broker's connected events), agent
 *     version, running release (update events), certificate days left and interval
 *     (diagnostics), last command result;
 *   - update events, as before (moat_update_event_parse);
 *   - every telemetry message (moat_msg_telemetry_parse; a refused one is a
 *     payload_refused event), folded into minute and hour aggregates once past
 *     [monitor] telemetry_retention (moat_registry_telemetry_compact, once a minute);
 *   - the broker plugin's security events, also read from its events file at start so
 *     that events published while moatd was away are recorded (once: their origin);
 *   - moatd's own events and the anomalies of the rules of monitor.h.
 * Every recorded event goes to moat_monitor_publish after its commit. The queue holds at
 * most [monitor] ingest_queue messages: beyond, a message is dropped and counted, never
 * silently: an ingest_behind event (severity high) says how many and how far behind, as
 * does a lag (the oldest queued message's age) above ingest_lag_alert.
 * The broker's ACL lets a device write only its own topics, so a topic's id is the
 * publisher. Reconnects with a back-off (1 s doubling to 30 s) when the broker is away;
 * refused payloads are logged (one line, never the payload). */
MOAT_MUST_CHECK int moat_ingest_start(const struct moat_ingest_opts *opts, struct moat_ingest **out,
				      struct moat_err *err);

/* How ingest is keeping up (for logs and /metrics); counters since start. */
struct moat_ingest_stats {
	uint64_t received;	 /* messages read from the broker */
	uint64_t recorded;	 /* messages whose batch committed */
	uint64_t dropped;	 /* lost to a full queue (ingest's or the MQTT client's) or a
				    failed batch; each one is in an ingest_behind event */
	uint64_t queued;	 /* waiting now */
	int64_t lag_ms;		 /* age of the oldest waiting message, 0 when none */
	uint64_t events;	 /* security events recorded */
	uint64_t anomalies;	 /* of which anomalies */
	uint64_t batches;	 /* transactions committed */
	uint64_t bytes_received; /* payload bytes of the messages read from the broker (not
				    of those the MQTT client's full queue lost) */
};
void moat_ingest_stats(struct moat_ingest *ing, struct moat_ingest_stats *out);
/* Records a security event of moatd's own (source "moatd", moatd's run id), from any
 * thread: it is queued like a message and never blocks. */
void moat_ingest_event(struct moat_ingest *ing, const struct moat_security_event *ev);
/* A security event of moatd's own from any of its parts (the HTTPS service's refusals,
 * the CRL keeper): recorded by the running ingest (moat_ingest_event, source "moatd"), or
 * only logged by the caller when ingest is off. kind, identity, address and evidence may
 * be NULL; they are cut to fit. Never blocks. */
void moat_server_security_event(const char *kind, enum moat_severity sev, const char *identity,
				const char *address, const char *evidence);
/* moatd's run id: 16 hex digits, random per start. */
const char *moat_ingest_run_id(const struct moat_ingest *ing);
void moat_ingest_stop(struct moat_ingest *ing);

/* ---- running moatd (src/server/locate.c) ---- */

#define MOAT_MOATD_ENV "MOAT_MOATD"
#define MOAT_MOATD_LOG_FILE "log/moatd.log"
#define MOAT_MOATD_PID_FILE "run/moatd.pid"
/* Every moatd of a deployment directory holds a shared flock on this file for its whole
 * life, however it was started (moat up, systemd, by hand); a command that must not run
 * beside any moatd (moat registry migrate) takes it exclusively, and a moatd that cannot
 * take its share refuses to start. */
#define MOAT_MOATD_LOCK_FILE "run/moatd.lock"

/* The moatd executable `moat up` starts: $MOAT_MOATD, else moatd beside the running
 * executable, else src/server/moatd below it (a build tree). MOAT_ENOENT when none is an
 * executable file. */
MOAT_MUST_CHECK int moat_server_moatd_path(char *buf, size_t size, struct moat_err *err);

struct moat_sup;
/* Adds moatd for deployment dir to a supervisor (moat up): logging to MOAT_MOATD_LOG_FILE,
 * pid in MOAT_MOATD_PID_FILE. No moatd executable (moat_server_moatd_path) is an error
 * (MOAT_ENOENT): moat up never runs the broker without it. */
MOAT_MUST_CHECK int moat_server_sup_add(struct moat_sup *sup, const char *dir,
					struct moat_err *err);

/* ---- is moatd serving (src/server/status.c) ---- */

#define MOAT_SERVER_ADDR_MAX_LEN 64

struct moat_deploy;

/* Where a readiness or status probe finds moatd, as copies (the deployment may be closed). */
struct moat_server_endpoint {
	char addr[MOAT_SERVER_ADDR_MAX_LEN]; /* [server] listen, its loopback when it is a
						wildcard, else 127.0.0.1 */
	int port;			     /* [server] port */
	char cafile[PATH_MAX];		     /* pki/ca.crt */
	char verify_name[256];		     /* the name pki/server.crt is checked against */
};

/* Fills out for the deployment in d; verify_name is the broker probe's (moatd presents the
 * same pki/server.crt). MOAT_EINVAL for a [server] listen that is not an IP address. */
MOAT_MUST_CHECK int moat_server_endpoint_get(const struct moat_deploy *d, const char *verify_name,
					     struct moat_server_endpoint *out,
					     struct moat_err *err);

/* One TLS handshake with moatd, without a client certificate (moatd's EST paths take such
 * connections), verifying its certificate: 0 when it accepts, else MOAT_EIO (no listener),
 * MOAT_ETIMEOUT or MOAT_EVERIFY (not our server). */
MOAT_MUST_CHECK int moat_server_probe(const struct moat_server_endpoint *e, int timeout_ms,
				      struct moat_err *err);

/* moatd as `moat up` runs it: the pid in MOAT_MOATD_PID_FILE of dir when that process is
 * alive, else 0. Trust it only while the supervisor runs (broker_supervisor.h). */
pid_t moat_server_pid(const char *dir);

#endif
