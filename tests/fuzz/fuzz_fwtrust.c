/* fuzz_fwtrust.c: the firmware trust file (threshold and PEM public keys). Whatever parses
 * must serialize and re-parse to the same key ids and threshold. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_fw_trust t, again;
	struct moat_err err;
	if (moat_fw_trust_parse(data, size, &t, &err) != 0) {
		if (t.count != 0) {
			abort();
		}
		return 0;
	}
	char *json = NULL;
	size_t len = 0;
	if (moat_fw_trust_serialize(&t, &json, &len, &err) != 0 ||
	    moat_fw_trust_parse(json, len, &again, &err) != 0 || again.count != t.count ||
	    again.threshold != t.threshold) {
		abort();
	}
	for (size_t i = 0; i < t.count; i++) {
		if (strcmp(t.keys[i].keyid, again.keys[i].keyid) != 0) {
			abort();
		}
	}
	free(json);
	moat_fw_trust_free(&t);
	moat_fw_trust_free(&again);
	return 0;
}
