/* fuzz_http_event.c: libFuzzer harness for the update-event parser moatd runs on every
 * device's diagnostics message (moat_update_event_parse in src/server/events.c). The input
 * is the payload. Invariants: an accepted event has a known stage, printable bounded
 * strings, and leaves the caller's device and time alone.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/update_event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_update_event ev;
	struct moat_err err;
	memset(&ev, 0, sizeof(ev));
	memcpy(ev.device, "dev1", 5);
	ev.at = 7;
	if (moat_update_event_parse(data, size, &ev, &err) != 0) {
		return 0;
	}
	if ((unsigned)ev.stage >= MOAT_UPDATE_STAGE_COUNT || strcmp(ev.device, "dev1") != 0 ||
	    ev.at != 7 || strlen(ev.reason) > MOAT_UPDATE_REASON_MAX_LEN ||
	    strlen(ev.version) > MOAT_FW_VERSION_MAX_LEN) {
		abort();
	}
	for (const char *p = ev.reason; *p; p++) {
		if (*p < 0x20 || *p > 0x7e) {
			abort();
		}
	}
	return 0;
}
