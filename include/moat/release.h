/* release.h: firmware releases as the server handles them (src/server/releases.c,
 * src/server/publish.c): publishing one, which devices a rollout includes, and which
 * release a device is offered. Used by moatd and by `moat fw publish|list|status`.
 *
 * Publishing: `moat fw publish` verifies an envelope and its image against the
 * deployment's trust list, copies both to firmware/releases/<type>/<version>/
 * {image.bin,envelope.json} (atomically, the copy re-hashed while written) and then
 * records the release in the registry (moat_registry_release_insert). A release reaches a
 * device when its rollout includes it: either a percentage
 * (moat_rollout_bucket(sha256, id) < percent) or an explicit list of ids.
 *
 * Contract: these functions read and write the registry only through registry.h; they
 * never print. struct moat_release and the rollout limits are the registry's.
 */
#ifndef MOAT_RELEASE_H
#define MOAT_RELEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/manifest.h"
#include "moat/registry.h"
#include "moat/rollout.h"

#define MOAT_STATUS_EVENTS_PER_DEVICE 5 /* update events `moat fw status` shows per device */

/* A stable bucket 0..99 for (release, device): the first 8 bytes of
 * SHA-256(sha256 || device_id), big-endian, mod 100. Pure. */
unsigned moat_rollout_bucket(const uint8_t sha256[MOAT_SHA256_BYTES], const char *device_id);

/* Does r's rollout include device_id? */
MOAT_MUST_CHECK int moat_release_includes(struct moat_registry *reg, const struct moat_release *r,
					  const char *device_id, bool *out, struct moat_err *err);
/* The newest release (semantic version order) of device_type; with device_id non-NULL,
 * the newest whose rollout includes it. *out_found false when there is none. */
MOAT_MUST_CHECK int moat_release_newest(struct moat_registry *reg, const char *device_type,
					const char *device_id, struct moat_release *out,
					bool *out_found, struct moat_err *err);

struct moat_deploy;

struct moat_publish_req {
	const char *envelope_path;
	const char *image_path;
	int rollout_percent;  /* 0..100, or -1 with devices */
	char *const *devices; /* identity names (rollout_percent == -1) */
	size_t device_count;
	int64_t now;
};

/* Verifies the envelope against firmware/keys/trust.json and the image against the
 * manifest (moat_fw_verify_image), refuses a version that is not newer, or a
 * security_version lower, than the newest release of the type, refuses listed devices that
 * are not devices of that type, then writes the release files and records it. The caller
 * MUST hold the deployment open for writing. On failure no row is written (files of a
 * failed publish may remain in the release directory and are overwritten by the next
 * attempt). */
MOAT_MUST_CHECK int moat_release_publish(struct moat_deploy *d, const struct moat_publish_req *req,
					 struct moat_release *out, struct moat_err *err);

/* ---- groups and phased rollouts (src/server/rollouts.c) ----
 *
 * A release with a rollout (moat fw rollout create) is offered by its rollout alone: to a
 * device the rollout took in a phase up to the current one, while the rollout is running
 * or completed; never while it is paused, halted or aborted (devices that installed it
 * keep it and follow their own rules; nothing is downgraded). Its rollout_percent and
 * device list no longer count. */

/* Calls cb for every active device of group (of device_type when non-NULL) in id order.
 * MOAT_ENOENT when there is no such group; the group's stored filter is parsed again. */
MOAT_MUST_CHECK int moat_group_members(struct moat_registry *reg, const char *group,
				       const char *device_type, int64_t now, moat_device_row_cb cb,
				       void *ctx, struct moat_err *err);
/* Every group device_id belongs to, as names separated by ", " into buf ("" for none). */
MOAT_MUST_CHECK int moat_group_names_of(struct moat_registry *reg, const char *device_id,
					int64_t now, char *buf, size_t size, struct moat_err *err);

struct moat_rollout_req {
	const char *sha256_hex; /* the release */
	const char *group;
	const int *percent;
	int phase_count;
	int64_t soak_s;
	int64_t silent_s;     /* > 0 */
	int halt_failure_pct; /* -1: none */
	bool halt_on_events;
	int64_t now;
};
/* Takes the group's active devices of the release's type, ranks them by a keyed hash with
 * a fresh random key (moat_rollout_rank) and records which phase takes each: one row,
 * running, phase 0 started now. MOAT_EINVAL when the group has no such device. */
MOAT_MUST_CHECK int moat_rollout_create(struct moat_registry *reg,
					const struct moat_rollout_req *req,
					struct moat_rollout_row *out, struct moat_err *err);

/* A rollout's progress: per phase, how many devices it added and where each stands. */
struct moat_rollout_progress {
	struct moat_rollout_row row;
	struct moat_release release;
	struct moat_rollout_phase_counts phases[MOAT_ROLLOUT_PHASES_MAX];
	size_t new_signalled, new_total, old_signalled, old_total;
	/* the first device on the new release with a signal and the signal: "dev-7: anomaly
	 * event_jump" ("" when none), for the halt's cause */
	char new_signal[MOAT_ID_BUF_LEN + MOAT_EVENT_KIND_MAX_LEN + MOAT_EVENT_RULE_MAX_LEN + 8];
};
MOAT_MUST_CHECK int moat_rollout_progress(struct moat_registry *reg, int64_t id, int64_t now,
					  struct moat_rollout_progress *out, struct moat_err *err);

/* Every rollout for moatd's /metrics (monitor_export.h): how many in each state, and the
 * progress of each unfinished one (moat_rollout_progress; the newest
 * MOAT_METRICS_ROLLOUTS_MAX). */
struct moat_metrics_rollouts;
MOAT_MUST_CHECK int moat_rollout_metrics(struct moat_registry *reg, int64_t now,
					 struct moat_metrics_rollouts *out, struct moat_err *err);

/* Operator actions: pause (running -> paused), resume (paused or halted -> running, the
 * soak and the silence bound of unreported devices starting again), abort (anything but
 * completed or aborted -> aborted). MOAT_ESTATE when the rollout is not in a state the
 * action applies to. A halted rollout resumes only with accept_failures (else MOAT_ESTATE
 * naming its cause and the option): what halted it would halt it again at once, so the
 * operator accepts it explicitly. accept_failures (resume only, else MOAT_EINVAL) marks
 * every device failed now (reverted, refused, silent) as accepted and sets accepted_at to
 * now: from then on only new failures count toward --halt-on-failure (the percentage is
 * still of each phase's devices) and only security events from now on count for
 * --halt-on-events. */
enum moat_rollout_action { MOAT_ROLLOUT_PAUSE, MOAT_ROLLOUT_RESUME, MOAT_ROLLOUT_ABORT };
MOAT_MUST_CHECK int moat_rollout_act(struct moat_registry *reg, int64_t id,
				     enum moat_rollout_action action, bool accept_failures,
				     int64_t now, struct moat_rollout_row *out,
				     struct moat_err *err);

/* What one tick did to one rollout (for moatd's log). */
struct moat_rollout_change {
	int64_t id;
	enum moat_rollout_decision decision; /* WAIT: only devices joined */
	int phase;			     /* the phase it is in afterwards */
	const char *cause;
	size_t joined; /* devices of the group it took at this tick */
};
typedef void (*moat_rollout_change_cb)(const struct moat_rollout_change *c, void *ctx);
/* moatd's step, once a second: for each running rollout, takes the devices that joined
 * its group since (the group is a filter evaluated again: a device tagged later, or
 * provisioned later, is a member), each in the phase its rank falls in among the devices
 * the rollout has (that of the next one by rank; the last phase when none ranks after it),
 * so phases stay prefixes of one spread order and no device taken ever changes phase; a
 * device that joins a phase already started is offered the release at once and the phase
 * waits for it like for the others. A device that leaves the group stays in the rollout.
 * Then it decides (moat_rollout_decide) and moves it (advance, complete, halt with a
 * cause). A move that lost a race with the operator is skipped. Paused, halted, completed
 * and aborted rollouts take nobody (a paused or halted one does at its first tick after
 * resuming). */
MOAT_MUST_CHECK int moat_rollout_tick(struct moat_registry *reg, int64_t now,
				      moat_rollout_change_cb cb, void *ctx, struct moat_err *err);

#endif
