/* fuzz_manifest.c: the manifest parser and semantic versions. Whatever parses must
 * serialize, re-parse to the same struct, and have a version that compares equal to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_manifest m, again;
	struct moat_err err;
	if (moat_manifest_parse(data, size, &m, &err) == 0) {
		char *json = NULL;
		size_t len = 0;
		if (moat_manifest_serialize(&m, &json, &len, &err) != 0 ||
		    moat_manifest_parse(json, len, &again, &err) != 0 ||
		    memcmp(&m, &again, sizeof(m)) != 0) {
			abort();
		}
		free(json);
		int cmp = 1;
		if (moat_semver_compare(m.version, m.version, &cmp, &err) != 0 || cmp != 0) {
			abort();
		}
	}
	/* The input as two versions split at the first NUL: compare must be antisymmetric. */
	char a[MOAT_FW_VERSION_MAX_LEN + 1], b[MOAT_FW_VERSION_MAX_LEN + 1];
	const uint8_t *nul = memchr(data, 0, size);
	size_t alen = nul ? (size_t)(nul - data) : size;
	size_t blen = nul ? size - alen - 1 : 0;
	if (alen <= MOAT_FW_VERSION_MAX_LEN && blen <= MOAT_FW_VERSION_MAX_LEN) {
		memcpy(a, data, alen);
		a[alen] = '\0';
		if (blen > 0) {
			memcpy(b, nul + 1, blen);
		}
		b[blen] = '\0';
		int ab = 0, ba = 0;
		if (moat_semver_compare(a, b, &ab, &err) == 0) {
			if (moat_semver_compare(b, a, &ba, &err) != 0 || ab != -ba) {
				abort();
			}
		}
	}
	return 0;
}
