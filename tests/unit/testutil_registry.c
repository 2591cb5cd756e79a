/* testutil_registry.c: the fixtures of testutil_registry.h, linked only into the unit
 * tests that link moat_registry (tests/CMakeLists.txt, MOAT_TEST_FIXTURES). */
#include <stdio.h>
#include <string.h>

#include "testutil_registry.h"

struct moat_release tu_release(const char *device_type, const char *version, char fill, int pct)
{
	struct moat_release r;
	memset(&r, 0, sizeof(r));
	memset(r.sha256_hex, fill, MOAT_SHA256_HEX_LEN);
	snprintf(r.device_type, sizeof(r.device_type), "%s", device_type);
	snprintf(r.version, sizeof(r.version), "%s", version);
	r.security_version = 1;
	r.size = 10;
	r.issued_at = 1;
	r.expires_at = 2;
	r.published_at = 3;
	r.rollout_percent = pct;
	return r;
}
