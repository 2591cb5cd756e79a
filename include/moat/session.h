/* session.h: one device's libmosquitto session and the single poll() loop that drives any
 * number of them (moat-agent runs one, `moat sim` thousands). A session owns its device
 * (moat/device.h) and, once given one, its update client (moat/agent_update.h); struct
 * moat_session is opaque and created only by moat_session_new.
 *
 * Verification: the session always verifies the broker's certificate chain against the
 * configured CA and its host name against the configured broker host. There is no option
 * to turn either off.
 */
#ifndef MOAT_SESSION_H
#define MOAT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/agent_conf.h"
#include "moat/device.h"
#include "moat/err.h"

struct moat_session;
struct moat_agent_update;
struct moat_enroll_pool;

/* Initialises libmosquitto once per process, before the first session; cleanup after the
 * last one is freed. */
void moat_session_lib_init(void);
void moat_session_lib_cleanup(void);

/* Creates the session of one device configured by conf (copied): refuses a certificate the
 * broker would refuse (moat_agent_check_cert), opens the device's state (seq, queue) and
 * schedules the first connection attempt at now_mono_ms. With conf->enroll the session
 * owns the device's identity instead (src/device/enroll_internal.h): it enrolls over EST
 * first when there is none (the MQTT connection waits for it), renews it on the loop
 * while connected, and reconnects with a renewed identity, keeping the old one until the
 * broker has accepted the new. The caller owns *out and frees it
 * with moat_session_free. */
MOAT_MUST_CHECK int moat_session_new(const struct moat_agent_conf *conf, int64_t now_mono_ms,
				     struct moat_session **out, struct moat_err *err);
/* The simulator: the session's EST calls count in pool (see moat/enroll.h); no effect on a
 * session that does not enroll. The pool MUST outlive the session. */
void moat_session_set_enroll_pool(struct moat_session *s, struct moat_enroll_pool *pool);
/* Makes the key and CSR of an enrollment to come now (before the simulator times them). */
MOAT_MUST_CHECK int moat_session_enroll_prepare(struct moat_session *s, struct moat_err *err);
/* true when the session has an identity to connect with (always, without [enroll]). */
bool moat_session_enrolled(const struct moat_session *s);
/* Stops the session's update client (if any), drops the connection without saying offline
 * and frees the session with its device. NULL is fine. */
void moat_session_free(struct moat_session *s);

/* Gives the session update client u: u is attached to the session's device (it answers
 * check_update and is polled on every tick) and owned by the session from now on (freed
 * with it). At most once per session. */
void moat_session_set_update(struct moat_session *s, struct moat_agent_update *u);
/* The session's update client, NULL when it has none. */
struct moat_agent_update *moat_session_update(struct moat_session *s);
/* The session's device, for calls that act on it (moat_agent_update_virtual_boot). */
struct moat_device *moat_session_device(struct moat_session *s);
/* The simulator spreads a fleet's start: the first connection attempt at
 * first_attempt_ms and the first telemetry at first_telemetry_ms (monotonic). */
void moat_session_schedule(struct moat_session *s, int64_t first_attempt_ms,
			   int64_t first_telemetry_ms);
/* What the device has done so far. */
const struct moat_device_stats *moat_session_device_stats(const struct moat_session *s);
/* Consecutive failed connection attempts (0 once connected). */
unsigned moat_session_failures(const struct moat_session *s);
/* true once the session has been connected (CONNACK accepted) at least once. */
bool moat_session_ever_up(const struct moat_session *s);
/* Why the last connection attempt failed or was lost ("" when none has): owned by s. */
const char *moat_session_failure(const struct moat_session *s);

struct moat_loop_stats {
	size_t sessions, up;
	/* the most sessions up at once so far: counted at every change of state, so a moment
	 * shorter than a tick is not missed */
	size_t up_peak;
	size_t published; /* devices with at least one acknowledged message */
	uint64_t telemetry_sent, errors;
};

/* Runs the sessions until *stop becomes non-zero (set from a signal handler); then
 * publishes offline for every connected device, disconnects and persists the queues.
 * on_tick (may be NULL) is called about every 200 ms with the loop's statistics (it
 * returns false to stop) and once more when every session is closed, with the final
 * figures (its return value is then ignored). A device's reboot request makes the loop return with
 * *out_reboot = true (moat-agent then re-executes itself); with out_reboot NULL (the
 * simulator) the loop restarts that device's session instead. The sessions stay the
 * caller's. */
typedef bool (*moat_loop_tick_cb)(const struct moat_loop_stats *stats, void *ctx);
MOAT_MUST_CHECK int moat_loop_run(struct moat_session **sessions, size_t count, volatile int *stop,
				  moat_loop_tick_cb on_tick, void *ctx, bool *out_reboot,
				  struct moat_err *err);

#endif
