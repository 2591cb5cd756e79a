/* fuzz_http_event.c: libFuzzer harness for the update-event parser moatd runs on every
 * device's diagnostics message (moat_update_event_parse in src/core/update_event.c). The
 * input is the payload. Invariants: an accepted event has a known stage, printable bounded
 * strings, and leaves the caller's device and time alone; and the writer the agent uses
 * (moat_update_event_format) writes it so that it parses back the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/update_schema.h"

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
	char text[MOAT_UPDATE_EVENT_MAX_BYTES];
	size_t len = 0;
	struct moat_update_event back = ev;
	if (moat_update_event_format(&ev, 1700000000, text, sizeof(text), &len, &err) != 0 ||
	    moat_update_event_parse(text, len, &back, &err) != 0 || back.stage != ev.stage ||
	    strcmp(back.version, ev.version) != 0 || strcmp(back.running, ev.running) != 0 ||
	    strcmp(back.reason, ev.reason) != 0) {
		abort();
	}
	return 0;
}
