/* fuzz_export_event.c: libFuzzer harness for the export's security-event reader, which
 * moatd runs on every message of moat/events/# (moat_sec_event_parse,
 * src/monitor/event.c), and the framing of what it accepts for the SIEM (moat_siem_frame).
 * (fuzz_secevent.c is another parser: core's moat_monitor_plugin_event_parse, which
 * ingest uses, and the diagnostics parser.) Invariants: an accepted event has a
 * valid kind and printable bounded fields; its JSON parses back the same; each framing
 * fits the frame bound, is one record (octet count matching, or one line) with no other
 * line break. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/monitor_export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_printable(const char *s)
{
	if (strlen(s) > MOAT_SEC_FIELD_MAX_LEN) {
		abort();
	}
	for (; *s; s++) {
		if (*s < 0x20 || *s > 0x7e) {
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_sec_event ev, back;
	struct moat_err err;
	if (moat_sec_event_parse(data, size, &ev, &err) != 0) {
		return 0;
	}
	if (!moat_sec_event_kind_ok(ev.kind)) {
		abort();
	}
	check_printable(ev.identity);
	check_printable(ev.client_id);
	check_printable(ev.address);
	check_printable(ev.reason);
	check_printable(ev.detail);
	char json[MOAT_SIEM_FRAME_MAX];
	size_t len = 0;
	if (!moat_sec_event_json(&ev, json, sizeof(json), &len) ||
	    moat_sec_event_parse(json, len, &back, &err) != 0 ||
	    memcmp(&ev, &back, sizeof(ev)) != 0) {
		abort();
	}
	static const enum moat_siem_format fmts[] = {MOAT_SIEM_RFC5424, MOAT_SIEM_JSON,
						     MOAT_SIEM_CEF};
	for (size_t f = 0; f < 3; f++) {
		char frame[MOAT_SIEM_FRAME_MAX + 16];
		size_t n = moat_siem_frame(fmts[f], &ev, "host", frame, sizeof(frame));
		if (n == 0 || n >= sizeof(frame) || strlen(frame) != n) {
			abort();
		}
		if (fmts[f] == MOAT_SIEM_JSON) {
			if (memchr(frame, '\n', n) != frame + n - 1) {
				abort();
			}
			continue;
		}
		unsigned long count = strtoul(frame, NULL, 10);
		const char *sp = strchr(frame, ' ');
		if (!sp || count != n - (size_t)(sp + 1 - frame) || memchr(frame, '\n', n)) {
			abort();
		}
	}
	return 0;
}
