/* testutil_pki.c: the fixtures of testutil_pki.h, linked only into the unit tests that
 * link moat_pki (tests/CMakeLists.txt, MOAT_TEST_FIXTURES). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testutil_pki.h"

void tu_pki_issue_client(struct moat_ca *ca, const char *cn, enum moat_role role,
			 int64_t not_before, int64_t not_after,
			 const uint8_t serial[MOAT_SERIAL_BYTES], struct moat_issued *out)
{
	struct moat_err err;
	struct moat_issue_req req = {
		.cn = cn,
		.role = role,
		.kind = MOAT_CERT_CLIENT,
		.key_type = MOAT_KEY_EC_P256,
		.not_before = not_before,
		.not_after = not_after,
	};
	if (moat_pki_issue(ca, &req, serial, out, &err) != 0) {
		fail_msg("issue %s: %s", cn, err.msg);
	}
}
