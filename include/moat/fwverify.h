/* fwverify.h: a firmware image and its envelope checked from files, exactly as a device
 * checks them (src/device/fwverify.c). moat-boot, moat-update and the simulator verify
 * with it, and so do the operator's `moat fw verify` and moatd's publish check: one copy
 * of the device's decision. It reads files only; it never writes, signs or touches keys.
 */
#ifndef MOAT_FWVERIFY_H
#define MOAT_FWVERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/manifest.h"

#define MOAT_FW_IO_BUF_BYTES (1u << 20) /* one read of an image */

/* Reads the trust list (trust.json) at path. A missing file is MOAT_ENOENT. */
MOAT_MUST_CHECK int moat_fwtrust_load(const char *path, struct moat_fw_trust *out,
				      struct moat_err *err);

/* SHA-256 and size of a regular file, read in MOAT_FW_IO_BUF_BYTES chunks. Refuses files
 * over MOAT_FW_IMAGE_MAX_BYTES and empty files. */
MOAT_MUST_CHECK int moat_fw_image_digest(const char *path, uint8_t out_sha256[MOAT_SHA256_BYTES],
					 uint64_t *out_size, struct moat_err *err);

/* What a device decides for this image and envelope: moat_fw_decide on the envelope, then,
 * when it accepts, the image streamed through moat_fw_stream (never read past the
 * manifest's size). An unreadable image is MOAT_FW_SIZE_MISMATCH with the reason. */
enum moat_fw_verdict moat_fw_verify_image(const char *image_path, const void *envelope_json,
					  size_t len, const struct moat_fw_trust *trust,
					  const struct moat_fw_policy *policy,
					  struct moat_manifest *out_manifest,
					  struct moat_fw_decision *out);

/* moat_fw_verify_image with the trust list read from trust_path (moat_fwtrust_load), as an
 * error: 0 with *out_manifest the verified manifest when the image is accepted, else
 * MOAT_EVERIFY "refused (<verdict>): <reason>" (or the trust list's error) and
 * *out_manifest zeroed. moat-boot's provisioning and moatd's publish check call it. */
MOAT_MUST_CHECK int moat_fw_verify_trusted(const char *trust_path, const char *image_path,
					   const void *envelope_json, size_t len,
					   const struct moat_fw_policy *policy,
					   struct moat_manifest *out_manifest,
					   struct moat_err *err);

#endif
