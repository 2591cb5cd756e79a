/* device_internal.h: struct moat_device and the calls its drivers make (device.c), shared
 * inside src/device only: the session (session.c) drives it, the update client
 * (update_client.c) plugs its hooks into it, diag.c reads it. Outside src/device the
 * device is opaque (moat/device.h). What the device does is described there.
 */
#ifndef MOAT_DEVICE_INTERNAL_H
#define MOAT_DEVICE_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/agent_conf.h"
#include "moat/agent_update.h"
#include "moat/device.h"
#include "moat/err.h"
#include "moat/messages.h"
#include "moat_device.h"

#include "queue_internal.h"
#include "sensors_internal.h"

#define MOAT_AGENT_SEQ_BLOCK 64	   /* seq numbers reserved per write of state_dir/seq */
#define MOAT_AGENT_INFLIGHT_MAX 32 /* telemetry messages awaiting PUBACK */
/* A telemetry message the broker refuses (MQTT 5 PUBACK reason >= 0x80, e.g. the plugin's
 * rate limit) stays queued and is sent again after MOAT_AGENT_REFUSED_BACKOFF_MS, and the
 * device halves how many messages it keeps in flight (growing back by one per window
 * acknowledged); one that is refused MOAT_AGENT_REFUSALS_MAX times in a row is dropped with
 * an error (a permanent refusal must not block the queue forever). */
#define MOAT_AGENT_REFUSED_BACKOFF_MS 1000
#define MOAT_AGENT_REFUSALS_MAX 30

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

/* The update hook: handles check_update and fills resp. */
typedef void (*moat_device_update_hook)(struct moat_device *dev, const struct mdev_command *cmd,
					struct moat_msg_response *resp, void *ctx);
/* Called on every tick with update_ctx: finishes a background update check (answers the
 * command, reports events) and starts the periodic ones. */
typedef void (*moat_device_update_poll)(struct moat_device *dev, void *ctx, int64_t now_mono_ms);
/* Called by the simulator's driver when it restarts a device (a simulated reboot), before
 * it connects again; false: the device cannot start (no slot verifies) and stays down. */
typedef bool (*moat_device_update_reboot)(struct moat_device *dev, void *ctx);

struct moat_device {
	struct moat_agent_conf conf;
	struct moat_device_io io;
	struct moat_sensor sensor;
	struct moat_queue queue;
	char seq_path[PATH_MAX];      /* "" when state is not persisted */
	char interval_path[PATH_MAX]; /* state_dir/interval: an update_interval command's value,
					 which outlasts restarts ("" : not persisted) */
	bool seq_no_fsync;
	int64_t next_seq;
	int64_t seq_reserved; /* persisted upper bound */
	int64_t interval_ms;
	int64_t start_mono_ms;
	int64_t next_telemetry_ms;  /* monotonic */
	int64_t pump_hold_until_ms; /* monotonic: after a refusal, nothing is sent before this */
	size_t inflight_limit;	    /* telemetry in flight at most: halved by a refusal, grows
				       by one per window acknowledged, up to the maximum */
	size_t acks_in_window;
	int64_t now_ms;		/* monotonic time of the last tick */
	int64_t cert_not_after; /* 0 when unknown */
	bool connected;
	bool reboot_requested; /* the driver restarts the device when set */
	bool quiet;	       /* the simulator: log only warnings and errors */
	moat_device_update_hook update_hook;
	moat_device_update_poll update_poll;
	moat_device_update_reboot update_reboot;
	void *update_ctx;
	struct moat_device_stats stats;
};

/* Initialises dev from conf (copied): opens state_dir (created 0700) with its seq file and
 * queue (state_dir "" keeps both in memory). io is the driver's. */
MOAT_MUST_CHECK int moat_device_init(struct moat_device *dev, const struct moat_agent_conf *conf,
				     const struct moat_device_io *io, int64_t now_mono_ms,
				     struct moat_err *err);
void moat_device_free(struct moat_device *dev);

/* The last will for the session: topic and payload ({"device_id","status":"offline"}). */
MOAT_MUST_CHECK int moat_device_will(const struct moat_device *dev, char *topic, size_t topic_size,
				     char *payload, size_t payload_size, size_t *out_len,
				     struct moat_err *err);
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

/* Plugs u into dev (hook, poll, reboot, ctx): update_client.c. */
void moat_agent_update_attach(struct moat_agent_update *u, struct moat_device *dev);

/* Fills the diagnostics of this device (real values of the Linux system): diag.c. */
void moat_diag_collect(const struct moat_device *dev, struct moat_msg_diagnostics *out);

#endif
