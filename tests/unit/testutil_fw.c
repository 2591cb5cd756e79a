/* testutil_fw.c: the fixtures of testutil_fw.h, linked only into the unit tests that link
 * moat_firmware (tests/CMakeLists.txt, MOAT_TEST_FIXTURES). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testutil_fw.h"

char *tu_fw_sign(const char *image_path, EVP_PKEY *const *keys, size_t n, const char *version,
		 int64_t secver, int64_t issued_at, int64_t expires_at,
		 struct moat_manifest *out_manifest, size_t *out_len)
{
	struct moat_err err;
	struct moat_fw_sign_req req = {
		.image_path = image_path,
		.device_type = TU_FW_DEVICE_TYPE,
		.version = version,
		.security_version = secver,
		.issued_at = issued_at,
		.expires_at = expires_at,
	};
	char *json = NULL;
	if (moat_fw_sign_image(&req, keys, n, out_manifest, &json, out_len, &err) != 0) {
		fail_msg("sign %s: %s", image_path, err.msg);
	}
	return json;
}
