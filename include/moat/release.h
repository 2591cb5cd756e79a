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

#endif
