/* testutil_fw.h: firmware-signing fixtures for the unit tests that link moat_firmware
 * (tests/unit/testutil_fw.c; tests/CMakeLists.txt adds it to those tests only). Like
 * testutil.h's, each fixture fails the running test on any error. Include after <cmocka.h>. */
#ifndef MOAT_TESTUTIL_FW_H
#define MOAT_TESTUTIL_FW_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "moat/firmware.h"

/* The device type every fixture release is built for. */
#define TU_FW_DEVICE_TYPE "temp_sensor"

/* Signs the image file at image_path for TU_FW_DEVICE_TYPE with keys[0..n) as version /
 * security_version secver, valid from issued_at to expires_at. Returns the envelope JSON
 * (caller frees) and its length in *out_len; the manifest in *out_manifest when not NULL. */
char *tu_fw_sign(const char *image_path, EVP_PKEY *const *keys, size_t n, const char *version,
		 int64_t secver, int64_t issued_at, int64_t expires_at,
		 struct moat_manifest *out_manifest, size_t *out_len);

#endif
