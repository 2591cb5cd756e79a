/* fuzz_mdev_manifest.c: moat-device's manifest parser (src/device-core). It is stricter
 * than src/core's reader (no escapes, plain integers), never looser: whatever it accepts,
 * moat_manifest_parse accepts with the same fields. Versions compare as moat's do. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/manifest.h"
#include "moat_device.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mdev_manifest m;
	struct moat_manifest c;
	struct moat_err err;
	char msg[MDEV_MSG_MAX];
	if (mdev_manifest_parse(data, size, &m, msg) == 0) {
		if (moat_manifest_parse(data, size, &c, &err) != 0 ||
		    strcmp(m.device_type, c.device_type) != 0 ||
		    strcmp(m.version, c.version) != 0 || m.security_version != c.security_version ||
		    m.size != c.size || memcmp(m.sha256, c.sha256, sizeof(m.sha256)) != 0 ||
		    m.issued_at != c.issued_at || m.expires_at != c.expires_at) {
			abort();
		}
	} else if (memchr(msg, '\0', sizeof(msg)) == NULL || msg[0] == '\0') {
		abort(); /* every refusal says why, in one terminated line */
	}
	/* The input as two versions split at the first NUL: the same order as src/core's. */
	char a[MDEV_FW_VERSION_MAX_LEN + 1], b[MDEV_FW_VERSION_MAX_LEN + 1];
	const uint8_t *nul = memchr(data, 0, size);
	size_t alen = nul ? (size_t)(nul - data) : size;
	size_t blen = nul ? size - alen - 1 : 0;
	if (alen <= MDEV_FW_VERSION_MAX_LEN && blen <= MDEV_FW_VERSION_MAX_LEN) {
		memcpy(a, data, alen);
		a[alen] = '\0';
		if (nul) {
			memcpy(b, nul + 1, blen);
		}
		b[blen] = '\0';
		int x = 0, y = 0;
		if (mdev_semver_compare(a, b, &x) == 0) {
			if (mdev_semver_compare(b, a, &y) != 0 || (x > 0) != (y < 0) ||
			    (x == 0) != (y == 0)) {
				abort();
			}
		}
	}
	return 0;
}
