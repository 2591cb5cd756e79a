/* agent.h: the device side of moat. One device behaviour (struct moat_device: telemetry,
 * status, command handling, the offline queue) written once and driven by two drivers: the
 * moat-agent daemon (one device) and `moat sim` (N devices in one process). Both drivers
 * run the same libmosquitto session code (struct moat_session) under one poll() loop.
 *
 * Delivery: every telemetry message gets the next per-device sequence number
 * (metadata.seq), is built once and kept, byte for byte, in the device's queue until the
 * broker acknowledges it (QoS 1 PUBACK). While disconnected the queue is mirrored to an
 * append-only file (state_dir/queue) so it survives an agent restart; after reconnecting
 * it is sent again from its head, in order. Delivery is therefore at-least-once: a message
 * whose PUBACK was lost (broker killed after receiving it) is sent again, and the copy is
 * identical to the original (same seq), so a subscriber drops duplicates by seq.
 *
 * Sequence numbers only grow: state_dir/seq holds a reserved upper bound, written
 * (atomically) a block of MOAT_AGENT_SEQ_BLOCK ahead, so a restarted agent continues above
 * every number it may have used (it may skip up to a block: a gap marks a restart).
 *
 * Verification: the session always verifies the broker's certificate chain against the
 * configured CA and its host name against the configured broker host. There is no option
 * to turn either off.
 */
#ifndef MOAT_AGENT_H
#define MOAT_AGENT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/identity.h"
#include "moat/messages.h"

#define MOAT_AGENT_CONF_MAX_BYTES (64u * 1024u)
#define MOAT_AGENT_CONF_LINE_MAX 198 /* the longest line the INI reader accepts */
#define MOAT_AGENT_HOST_MAX_LEN 253
#define MOAT_AGENT_SEQ_BLOCK 64
#define MOAT_AGENT_QUEUE_DEFAULT 10000     /* records */
#define MOAT_AGENT_QUEUE_MAX 1000000       /* records */
#define MOAT_AGENT_INFLIGHT_MAX 32         /* telemetry messages awaiting PUBACK */
/* A telemetry message the broker refuses (MQTT 5 PUBACK reason >= 0x80, e.g. the plugin's
 * rate limit) stays queued and is sent again after MOAT_AGENT_REFUSED_BACKOFF_MS, and the
 * device halves how many messages it keeps in flight (growing back by one per window
 * acknowledged); one that is refused MOAT_AGENT_REFUSALS_MAX times in a row is dropped with
 * an error (a permanent refusal must not block the queue forever). */
#define MOAT_AGENT_REFUSED_BACKOFF_MS 1000
#define MOAT_AGENT_REFUSALS_MAX 30
#define MOAT_AGENT_SENSOR_READ_MAX_BYTES 256
#define MOAT_AGENT_INTERVAL_DEFAULT_MS 10000
#define MOAT_AGENT_INTERVAL_MIN_MS 100
#define MOAT_AGENT_UPDATE_URL_MAX_LEN 512
#define MOAT_AGENT_UPDATE_INTERVAL_DEFAULT_S (24 * 3600)

enum moat_sensor_kind {
	MOAT_SENSOR_SIMULATED = 0, /* the tutorial's temperature and humidity */
	MOAT_SENSOR_FILE,          /* a number in a file, times scale */
	MOAT_SENSOR_COMMAND,       /* a number printed by a command (/bin/sh -c), times scale */
};

struct moat_sensor_conf {
	enum moat_sensor_kind kind;
	char name[MOAT_MSG_READING_NAME_MAX_LEN + 1]; /* reading name, default "temperature" */
	char path[PATH_MAX];                          /* file */
	char command[512];                            /* command */
	double scale;                                 /* default 1 */
};

/* The agent's INI file (written by `moat device export ID --format agent`):
 *   [agent]  id, device_type, interval (duration 1s..1d, or 100ms..), state_dir, queue_max,
 *            log (stderr|syslog), log_level (debug|info|warn|error)
 *   [broker] host, port, ca, cert, key, keepalive (duration), reconnect_min,
 *            reconnect_max (durations, ms precision with "ms" suffix allowed)
 *   [sensor] source (simulated|file|command), name, path, command, scale
 *   [update] server (https://host:port of moatd), state_dir (the device state directory
 *            of moat-boot; default: $MOAT_BOOT_STATE), interval (duration between update
 *            checks, 1h..30d, default 24h), updater (the moat-update program: a path, or a
 *            name looked up in PATH; default: moat-update next to the agent's executable,
 *            else in PATH). Without server the agent has no update client.
 * Relative paths are relative to the directory of the file. Unknown sections and keys are
 * errors (a typo must not silently fall back to a default). */
struct moat_agent_conf {
	char id[MOAT_ID_BUF_LEN];
	char device_type[MOAT_DEVICE_TYPE_MAX_LEN + 1];
	int64_t interval_ms; /* "interval": a duration, or "<n>ms" down to 100 ms */
	char state_dir[PATH_MAX];
	int64_t queue_max;
	bool use_syslog;
	int log_level; /* enum moat_log_level */

	char host[MOAT_AGENT_HOST_MAX_LEN + 1];
	int port;
	char ca_file[PATH_MAX];
	char cert_file[PATH_MAX];
	char key_file[PATH_MAX];
	int64_t keepalive_s;
	int64_t reconnect_min_ms;
	int64_t reconnect_max_ms;

	struct moat_sensor_conf sensor;

	char update_url[MOAT_AGENT_UPDATE_URL_MAX_LEN + 1]; /* "" : no update client */
	char update_state_dir[PATH_MAX];                      /* "" : $MOAT_BOOT_STATE */
	char updater[PATH_MAX];                               /* "" : the default */
	int64_t update_interval_s;

	/* not in the file: set by the simulator */
	bool no_fsync; /* state and queue writes skip fsync (many devices on one disk) */
	bool quiet;    /* log only warnings and errors */
};

/* Parses the INI text (len bytes, need not be NUL-terminated). name is used in messages;
 * base_dir resolves relative paths (NULL: the current directory). Pure: no I/O. */
MOAT_MUST_CHECK int moat_agent_conf_parse(const char *name, const char *text, size_t len,
					  const char *base_dir, struct moat_agent_conf *out,
					  struct moat_err *err);
MOAT_MUST_CHECK int moat_agent_conf_load(const char *path, struct moat_agent_conf *out,
					 struct moat_err *err);
/* Writes conf as INI text (paths as given) into a malloc'd buffer the caller frees;
 * MOAT_EINVAL when a line would be longer than MOAT_AGENT_CONF_LINE_MAX (never writes a
 * file the reader refuses). */
MOAT_MUST_CHECK int moat_agent_conf_format(const struct moat_agent_conf *conf, char **out_text,
					   size_t *out_len, struct moat_err *err);
/* Defaults for every field; id and host empty. */
void moat_agent_conf_defaults(struct moat_agent_conf *conf);

struct moat_deploy;
/* The configuration of device id of deployment d: broker host and port from moat.conf
 * (the first [broker] hosts entry), the identity's device type, and the deployment's own
 * paths (pki/identities/ID/{cert.pem,key.pem,ca.crt}); state_dir left empty. */
MOAT_MUST_CHECK int moat_agent_conf_for(struct moat_deploy *d, const char *id,
					struct moat_agent_conf *out, struct moat_err *err);

/* Refuses to run with a certificate the broker would refuse: MOAT_ESTATE naming the system
 * clock when now is before notBefore, MOAT_ESTATE when it has expired. Fills the cert's
 * notAfter (out_not_after may be NULL). */
MOAT_MUST_CHECK int moat_agent_check_cert(const char *cert_path, int64_t now,
					  int64_t *out_not_after, struct moat_err *err);

/* ---- sensors ---- */

struct moat_sensor {
	struct moat_sensor_conf conf;
	uint64_t rng; /* simulated readings; seeded per device */
};

void moat_sensor_init(struct moat_sensor *s, const struct moat_sensor_conf *conf,
		      uint64_t seed);
/* Fills readings (at most max) and signal strength (simulated only: *out_has_signal). */
MOAT_MUST_CHECK int moat_sensor_read(struct moat_sensor *s, struct moat_msg_reading *readings,
				     size_t max, size_t *out_count, bool *out_has_signal,
				     int64_t *out_signal, struct moat_err *err);
/* Parses the first number of a sensor file or command output (e.g. "48123\n"). Pure. */
MOAT_MUST_CHECK int moat_sensor_parse_value(const char *text, size_t len, double *out,
					    struct moat_err *err);

/* ---- the offline queue ---- */

struct moat_queue_rec {
	int64_t seq;
	char *payload; /* NUL-terminated JSON, no newline */
	size_t len;
	int mid;       /* MQTT message id while in flight, 0 otherwise */
	bool acked;
	bool on_disk;
	int refusals;  /* times the broker refused it (PUBACK reason >= 0x80) */
};

struct moat_queue {
	char path[PATH_MAX]; /* "" for a memory-only queue */
	struct moat_queue_rec *recs; /* ring buffer */
	size_t cap, head, count;
	size_t max;
	int fd;              /* the open file, -1 for memory only */
	bool no_fsync;
	uint64_t dropped;  /* oldest records dropped because the queue was full */
	size_t disk_recs;  /* records in the file (acked ones included) */
};

/* Opens (creating when absent) the queue file at path (NULL: memory only) and loads the
 * records it holds: lines of telemetry JSON; an incomplete last line (a crash mid-append)
 * and lines that do not parse as telemetry are skipped. At most max records are kept
 * (the newest). */
MOAT_MUST_CHECK int moat_queue_open(struct moat_queue *q, const char *path, size_t max,
				    bool no_fsync, struct moat_err *err);
void moat_queue_close(struct moat_queue *q);
/* Appends a record (copied). When full, the oldest record is dropped first. When
 * to_disk, the record is also appended to the file. */
MOAT_MUST_CHECK int moat_queue_push(struct moat_queue *q, int64_t seq, const char *payload,
				    size_t len, bool to_disk, struct moat_err *err);
/* The i-th record from the head, or NULL. */
struct moat_queue_rec *moat_queue_at(struct moat_queue *q, size_t i);
/* Marks the record in flight with mid as acknowledged and pops acknowledged records from
 * the head; truncates the file when the queue becomes empty. true when mid was found. */
bool moat_queue_ack(struct moat_queue *q, int mid, struct moat_err *err);
/* The broker refused the record in flight with mid: it is no longer in flight and will be
 * sent again. Returns the record (its refusals counted), or NULL when mid is unknown. */
struct moat_queue_rec *moat_queue_refused(struct moat_queue *q, int mid);
/* The connection is gone: clears every in-flight mark and appends every record that is
 * not yet in the file to it, in order. */
MOAT_MUST_CHECK int moat_queue_spill(struct moat_queue *q, struct moat_err *err);
/* The highest seq in the queue, or -1. */
int64_t moat_queue_max_seq(const struct moat_queue *q);

/* ---- the device behaviour ---- */

/* What a driver provides to the device: publishing and subscribing on its session. */
struct moat_device_io {
	/* Returns 0 and the message id, or a negative MOAT_E* code. */
	int (*publish)(void *ctx, const char *topic, const void *payload, size_t len, int qos,
		       bool retain, int *out_mid);
	int (*subscribe)(void *ctx, const char *filter, int qos);
	/* The local address of the connection ("" when unknown). */
	void (*local_addr)(void *ctx, char *buf, size_t size);
	void *ctx;
};

struct moat_device;
/* The update hook (filled by the update issue): handles check_update and fills resp. */
typedef void (*moat_device_update_hook)(struct moat_device *dev,
					const struct moat_msg_command *cmd,
					struct moat_msg_response *resp, void *ctx);
/* Called on every tick with update_ctx: finishes a background update check (answers the
 * command, reports events) and starts the periodic ones. */
typedef void (*moat_device_update_poll)(struct moat_device *dev, void *ctx,
					int64_t now_mono_ms);
/* Called by the simulator's driver when it restarts a device (a simulated reboot), before
 * it connects again; false: the device cannot start (no slot verifies) and stays down. */
typedef bool (*moat_device_update_reboot)(struct moat_device *dev, void *ctx);

struct moat_device_stats {
	uint64_t telemetry_sent;  /* acknowledged by the broker */
	uint64_t commands;
	uint64_t errors;
};

struct moat_device {
	struct moat_agent_conf conf;
	struct moat_device_io io;
	struct moat_sensor sensor;
	struct moat_queue queue;
	char seq_path[PATH_MAX]; /* "" when state is not persisted */
	char interval_path[PATH_MAX]; /* state_dir/interval: an update_interval command's value,
					 which outlasts restarts ("" : not persisted) */
	bool seq_no_fsync;
	int64_t next_seq;
	int64_t seq_reserved;    /* persisted upper bound */
	int64_t interval_ms;
	int64_t start_mono_ms;
	int64_t next_telemetry_ms; /* monotonic */
	int64_t pump_hold_until_ms; /* monotonic: after a refusal, nothing is sent before this */
	size_t inflight_limit;      /* telemetry in flight at most: halved by a refusal, grows
				       by one per window acknowledged, up to the maximum */
	size_t acks_in_window;
	int64_t now_ms;             /* monotonic time of the last tick */
	int64_t cert_not_after;    /* 0 when unknown */
	bool connected;
	bool reboot_requested;     /* the driver restarts the device when set */
	bool quiet;                /* the simulator: log only warnings and errors */
	moat_device_update_hook update_hook;
	moat_device_update_poll update_poll;
	moat_device_update_reboot update_reboot;
	void *update_ctx;
	struct moat_device_stats stats;
};

/* Initialises dev from conf (copied): opens state_dir (created 0700) with its seq file and
 * queue (state_dir "" keeps both in memory). io is the driver's. */
MOAT_MUST_CHECK int moat_device_init(struct moat_device *dev,
				     const struct moat_agent_conf *conf,
				     const struct moat_device_io *io, int64_t now_mono_ms,
				     struct moat_err *err);
void moat_device_free(struct moat_device *dev);

/* The last will for the session: topic and payload ({"device_id","status":"offline"}). */
MOAT_MUST_CHECK int moat_device_will(const struct moat_device *dev, char *topic,
				     size_t topic_size, char *payload, size_t payload_size,
				     size_t *out_len, struct moat_err *err);
/* The session is up: subscribes to commands, publishes the retained online status and
 * starts sending the queue. */
MOAT_MUST_CHECK int moat_device_on_connect(struct moat_device *dev, int64_t now_mono_ms,
					   struct moat_err *err);
/* The session is gone (clean: closed by this side, offline said): the queue is spilled to
 * disk. */
void moat_device_on_disconnect(struct moat_device *dev, bool clean);
/* A message arrived on one of the device's subscriptions. Never fails on bad input: a
 * malformed command gets a bad_request response. */
void moat_device_on_message(struct moat_device *dev, const char *topic, const void *payload,
			    size_t len);
/* The broker acknowledged message mid. */
void moat_device_on_publish(struct moat_device *dev, int mid);
/* The broker refused message mid (MQTT 5 PUBACK reason_code >= 0x80): queued telemetry is
 * kept and sent again after a back-off (see MOAT_AGENT_REFUSED_BACKOFF_MS). */
void moat_device_on_publish_refused(struct moat_device *dev, int mid, int reason_code);
/* Produces telemetry when due and sends what the queue holds. */
void moat_device_tick(struct moat_device *dev, int64_t now_mono_ms);
/* Milliseconds until the next telemetry is due (0 when due). */
int64_t moat_device_next_ms(const struct moat_device *dev, int64_t now_mono_ms);
/* Publishes the retained offline status (clean shutdown; QoS 1, its message id in
 * *out_mid, 0 when not connected); does not disconnect. */
MOAT_MUST_CHECK int moat_device_publish_offline(struct moat_device *dev, int *out_mid,
						struct moat_err *err);
/* Writes everything not yet delivered to disk (before exit). */
void moat_device_persist(struct moat_device *dev);

/* Publishes a command response (device_id and timestamp filled here) on
 * devices/ID/command_responses; failures are counted and logged. */
void moat_device_respond(struct moat_device *dev, struct moat_msg_response *r);

/* ---- signed updates in the agent and the simulator (update_client.c) ----
 * An update check (download, verification, staging) runs as a child process,
 * `moat-update --report` (src/device/update_main.c), whose report lines the poll loop reads
 * from a pipe: the session stays alive during a download, and the agent does not link the
 * HTTPS client. A check_update command is answered "accepted" at once, then with the
 * outcome; every step is also an update event on devices/ID/diagnostics (moatd's format:
 * checked, downloading, verified, installed, confirmed, reverted, refused with the
 * verdict). A check runs at every start and every update interval. A staged release asks
 * the device to restart (moat-agent exits MOAT_BOOT_RESTART_EXIT to moat-boot; a simulated
 * device boots its virtual slots with moat_boot_prepare), and the trial confirms on its
 * first accepted connection. */
struct moat_agent_update;
/* Creates the update client of conf (NULL in *out when conf has no [update] server or no
 * state directory is known: the device then refuses check_update). */
MOAT_MUST_CHECK int moat_agent_update_new(const struct moat_agent_conf *conf,
					  struct moat_agent_update **out, struct moat_err *err);
/* Plugs u into dev (hook, poll, reboot, ctx). */
void moat_agent_update_attach(struct moat_agent_update *u, struct moat_device *dev);
/* Stops a running check (SIGTERM, reaped) and frees u. NULL is fine. */
void moat_agent_update_free(struct moat_agent_update *u);
/* A check is wanted as soon as the device is connected (and the pool has room). */
void moat_agent_update_check_soon(struct moat_agent_update *u);

/* Checks running at once across the devices sharing a pool (the simulator's N devices must
 * not start N downloads together). max 0: no limit. */
struct moat_agent_update_pool {
	unsigned running;
	unsigned max;
};
void moat_agent_update_set_pool(struct moat_agent_update *u,
				struct moat_agent_update_pool *pool);
/* The simulator: u's state directory holds virtual slots, booted now (and at every
 * simulated restart) by moat_boot_prepare, which verifies the slot as moat-boot does.
 * MOAT_EVERIFY when no slot verifies. */
MOAT_MUST_CHECK int moat_agent_update_virtual_boot(struct moat_agent_update *u,
						   struct moat_device *dev,
						   struct moat_err *err);

/* Fills the diagnostics of this device (real values of the Linux system). */
void moat_diag_collect(const struct moat_device *dev, struct moat_msg_diagnostics *out);

/* ---- the libmosquitto session and the loop that drives N of them ---- */

enum moat_session_state {
	MOAT_SESSION_IDLE = 0,   /* waiting for the next attempt (backoff) */
	MOAT_SESSION_CONNECTING, /* TCP/TLS/MQTT handshake under way */
	MOAT_SESSION_UP,         /* CONNACK accepted */
	MOAT_SESSION_CLOSING,    /* offline published, DISCONNECT queued */
	MOAT_SESSION_DONE,       /* closed for good (shutdown) */
};

struct mosquitto;

struct moat_session {
	struct moat_device dev;
	struct mosquitto *mosq;
	enum moat_session_state state;
	int64_t next_attempt_ms;   /* monotonic */
	int64_t attempt_started_ms;
	int64_t connected_at_ms;
	unsigned failures;         /* consecutive, for the backoff */
	uint64_t rng;
	char last_error[256];      /* the last TLS/connection error, for the log */
	bool fail_pending;         /* a callback saw the connection fail */
	bool restart_after_close;  /* CLOSING because of a reboot command */
	int offline_mid;           /* CLOSING: the offline status, acknowledged before DISCONNECT */
	int64_t ack_wait_until_ms; /* CLOSING: DISCONNECT goes out by then even without it */
	bool disconnect_sent;      /* CLOSING: DISCONNECT queued */
	struct moat_agent_update *update; /* owned, freed with the session (the simulator) */
	int64_t close_deadline_ms;
};

/* Initialises libmosquitto once per process. */
void moat_session_lib_init(void);
void moat_session_lib_cleanup(void);

MOAT_MUST_CHECK int moat_session_init(struct moat_session *s,
				      const struct moat_agent_conf *conf, int64_t now_mono_ms,
				      struct moat_err *err);
void moat_session_free(struct moat_session *s);

struct moat_loop_stats {
	size_t sessions, up;
	size_t published;          /* devices with at least one acknowledged message */
	uint64_t telemetry_sent, errors;
};

/* Runs the sessions until *stop becomes non-zero (set from a signal handler); then
 * publishes offline for every connected device, disconnects and persists the queues.
 * on_tick (may be NULL) is called about every 200 ms with the loop's statistics; it
 * returns false to stop. A device's reboot request makes the loop return with
 * *out_reboot = true (moat-agent then re-executes itself); with out_reboot NULL (the
 * simulator) the loop restarts that device's session instead. */
typedef bool (*moat_loop_tick_cb)(const struct moat_loop_stats *stats, void *ctx);
MOAT_MUST_CHECK int moat_loop_run(struct moat_session **sessions, size_t count,
				  volatile int *stop, moat_loop_tick_cb on_tick, void *ctx,
				  bool *out_reboot, struct moat_err *err);

/* ---- the simulator driver ---- */

/* Firmware for simulated devices (moat sim --firmware): each device gets virtual A/B slots
 * in state_root/ID/boot, provisioned on first use with the image and envelope whose
 * manifest names its device type (verified against the deployment's firmware trust file,
 * as a factory would), and the update client of moat-agent, whose checks run at most
 * max_checks at once (0: 4). A device whose type no envelope names is an error. */
#define MOAT_SIM_FIRMWARE_MAX 16
struct moat_sim_firmware {
	const char *image[MOAT_SIM_FIRMWARE_MAX];
	const char *envelope[MOAT_SIM_FIRMWARE_MAX];
	size_t count;
	unsigned max_checks;
};
#define MOAT_SIM_MAX_CHECKS_DEFAULT 4

/* Creates one session per id of deployment d, each configured exactly as
 * `moat device export --format agent` would configure moat-agent, with interval_ms and
 * its state (seq, queue) under state_root/ID without fsync. With fw (may be NULL) every
 * device also runs signed updates on virtual slots (above); pool is where the checks are
 * counted and must outlive the sessions. Raises RLIMIT_NOFILE to what count sessions need
 * (or fails saying so). The caller runs them with moat_loop_run (out_reboot NULL) and frees
 * them with moat_sim_free. */
MOAT_MUST_CHECK int moat_sim_create(struct moat_deploy *d, char (*ids)[MOAT_ID_BUF_LEN],
				    size_t count, int64_t interval_ms, const char *state_root,
				    const struct moat_sim_firmware *fw,
				    struct moat_agent_update_pool *pool,
				    struct moat_session ***out_sessions, struct moat_err *err);
void moat_sim_free(struct moat_session **sessions, size_t count);

#endif
