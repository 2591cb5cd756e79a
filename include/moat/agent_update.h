/* agent_update.h: signed updates in the agent and the simulator (update_client.c).
 * An update check (download, verification, staging) runs as a child process,
 * `moat-update --report` (src/device/update_main.c), whose report lines the poll loop reads
 * from a pipe: the session stays alive during a download, and the agent does not link the
 * HTTPS client. A check_update command is answered "accepted" at once, then with the
 * outcome; every step is also an update event on devices/ID/diagnostics (moatd's format:
 * checked, downloading, verified, installed, confirmed, reverted, refused with the
 * verdict). A check runs at every start and every update interval. A staged release asks
 * the device to restart (moat-agent exits MOAT_BOOT_RESTART_EXIT to moat-boot; a simulated
 * device boots its virtual slots with moat_boot_prepare), and the trial confirms on its
 * first accepted connection.
 *
 * struct moat_agent_update is opaque. It is handed to a session with
 * moat_session_set_update (moat/session.h), which then owns it.
 */
#ifndef MOAT_AGENT_UPDATE_H
#define MOAT_AGENT_UPDATE_H

#include "moat/agent_conf.h"
#include "moat/device.h"
#include "moat/err.h"
#include "moat/update.h" /* MOAT_BOOT_TRIAL_SECONDS_DEFAULT */

struct moat_agent_update;

/* Creates the update client of conf (NULL in *out when conf has no [update] server or no
 * state directory is known: the device then refuses check_update). */
MOAT_MUST_CHECK int moat_agent_update_new(const struct moat_agent_conf *conf,
					  struct moat_agent_update **out, struct moat_err *err);
/* Stops a running check (SIGTERM, reaped) and frees u. NULL is fine. */
void moat_agent_update_free(struct moat_agent_update *u);
/* A check is wanted as soon as the device is connected (and the pool has room). */
void moat_agent_update_check_soon(struct moat_agent_update *u);

/* Checks running at once across the devices sharing a pool (the simulator's N devices must
 * not start N downloads together). max 0: no limit. The caller owns the pool, which MUST
 * outlive every update client set to it. */
struct moat_agent_update_pool {
	unsigned running;
	unsigned max;
};
void moat_agent_update_set_pool(struct moat_agent_update *u, struct moat_agent_update_pool *pool);
/* The simulator: u's state directory holds virtual slots, booted now (and at every
 * simulated restart) by moat_boot_prepare, which verifies the slot as moat-boot does.
 * dev is the device u is attached to. MOAT_EVERIFY when no slot verifies. */
MOAT_MUST_CHECK int moat_agent_update_virtual_boot(struct moat_agent_update *u,
						   struct moat_device *dev, struct moat_err *err);
/* The simulator's bad release (moat sim --fail-trial): a trial of version (virtual slots
 * only) never confirms; the device restarts instead, as an image that crashes on start
 * does, and its next virtual boot reverts the trial (moat_boot_prepare: one start per
 * trial), which the device then reports as reverted. NULL or "": none. MOAT_EINVAL when
 * version is not a semantic version. */
MOAT_MUST_CHECK int moat_agent_update_set_fail_trial(struct moat_agent_update *u,
						     const char *version, struct moat_err *err);

/* The simulator's slow health check (moat sim --trial-hold): a device booted on trial
 * (virtual slots only) stays on trial, unconfirmed, for hold_ms after its virtual boot
 * before its health check decides (confirm, or the crash of --fail-trial), so an operator
 * can act while it is on trial. The boot state is the slots' own throughout: the trial's
 * deadline still holds, hence at most MOAT_AGENT_TRIAL_HOLD_MAX_MS (half the default
 * deadline). 0: decide at once. MOAT_EINVAL outside 0..MOAT_AGENT_TRIAL_HOLD_MAX_MS. */
#define MOAT_AGENT_TRIAL_HOLD_MAX_MS (MOAT_BOOT_TRIAL_SECONDS_DEFAULT / 2 * 1000)
MOAT_MUST_CHECK int moat_agent_update_set_trial_hold(struct moat_agent_update *u, int64_t hold_ms,
						     struct moat_err *err);

#endif
