/* sim.h: the simulator driver (src/fleet/sim.c): N devices of a deployment as N sessions
 * of the device code moat-agent runs, in one process. Operator side: device binaries
 * never link it.
 */
#ifndef MOAT_SIM_H
#define MOAT_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/agent_update.h"
#include "moat/enroll.h"
#include "moat/err.h"
#include "moat/identity.h"
#include "moat/session.h"

struct moat_deploy;

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
	/* a release whose trial crashes on every device (moat_agent_update_set_fail_trial);
	 * NULL: none */
	const char *fail_trial;
	/* how long a device booted on trial stays on it before its health check decides
	 * (moat_agent_update_set_trial_hold); 0: at once */
	int64_t trial_hold_ms;
};
#define MOAT_SIM_MAX_CHECKS_DEFAULT 4

/* Devices that enroll themselves (moat sim --enroll): each device makes its key (ahead,
 * in moat_sim_create, so enrollment is timed without it) and enrolls over EST with moatd
 * as moat-agent does, its identity in state_root/ID/identity. tokens[i] is device i's
 * one-time token, NULL for a device that enrolled in an earlier run (its identity is
 * there). Calls are bounded and counted by pool (max: calls at once). With no_connect the
 * devices enroll and never connect to the broker (the enrollment benchmark). */
struct moat_sim_enroll {
	const char *const *tokens;
	struct moat_enroll_pool *pool;
	bool no_connect;
};

/* Creates one session per id of deployment d, each configured exactly as
 * `moat device export --format agent` would configure moat-agent but connecting to host
 * (NULL: moat.conf's [client] host, as the simulator runs on the operator's side), with
 * interval_ms and
 * its state (seq, queue) under state_root/ID without fsync. With fw (may be NULL) every
 * device also runs signed updates on virtual slots (above); pool is where the checks are
 * counted and must outlive the sessions. Raises RLIMIT_NOFILE to what count sessions need
 * (or fails saying so). With enroll (may be NULL) the devices enroll themselves (above).
 * The caller runs them with moat_loop_run (out_reboot NULL) and frees
 * them with moat_sim_free. */
MOAT_MUST_CHECK int moat_sim_create(struct moat_deploy *d, char (*ids)[MOAT_ID_BUF_LEN],
				    size_t count, const char *host, int64_t interval_ms,
				    const char *state_root, const struct moat_sim_firmware *fw,
				    struct moat_agent_update_pool *pool,
				    const struct moat_sim_enroll *enroll,
				    struct moat_session ***out_sessions, struct moat_err *err);
/* Frees count sessions (NULL entries skipped) and the array. NULL is fine. */
void moat_sim_free(struct moat_session **sessions, size_t count);

#endif
