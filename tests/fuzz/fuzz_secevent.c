/* fuzz_secevent.c: what moatd's ingest reads from the network for monitoring
 * (src/core/secevent.c): the broker plugin's security events (moat/events/<kind> payloads
 * and lines of its events file) and a device's diagnostics. Whatever parses must have a
 * non-empty printable kind and fields that fit; an event read must format as JSON.
 * (The export's own reader of moat/events/#, src/monitor/event.c, is fuzz_export_event.) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/secevent.h"

/* every listed field has a name and a value that is not cut */
static void count_field(const char *name, const char *value, bool number, void *ctx)
{
	(void)number;
	if (!name[0] || strnlen(value, 200) == 200) {
		abort();
	}
	(*(size_t *)ctx)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void printable(const char *s, size_t size)
{
	size_t n = strnlen(s, size);
	if (n == size) {
		abort(); /* not terminated */
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f) {
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_security_event ev;
	struct moat_err err;
	int64_t count = -1;
	if (moat_monitor_plugin_event_parse(data, size, &ev, &count, &err) == 0) {
		if (!ev.kind[0] || count < 0 || ev.time_ms < 0) {
			abort();
		}
		printable(ev.kind, sizeof(ev.kind));
		printable(ev.identity, sizeof(ev.identity));
		printable(ev.address, sizeof(ev.address));
		printable(ev.run_id, sizeof(ev.run_id));
		printable(ev.evidence, sizeof(ev.evidence));
		char json[4096];
		if (moat_security_event_json(&ev, json, sizeof(json), &err) != 0) {
			abort();
		}
	}
	struct moat_diag_summary d;
	if (moat_diag_summary_parse(data, size, &d, &err) == 0) {
		if (strnlen(d.agent_version, sizeof(d.agent_version)) == sizeof(d.agent_version) ||
		    d.interval_s < 0 || d.interval_s > 86400 || d.seq < -1 || d.rss_kb < -1 ||
		    strnlen(d.kernel, sizeof(d.kernel)) == sizeof(d.kernel) ||
		    (d.has_load && !(d.load[0] >= 0 && d.load[1] >= 0 && d.load[2] >= 0))) {
			abort();
		}
		size_t fields = 0;
		moat_diag_summary_foreach(&d, count_field, &fields);
	}
	return 0;
}
