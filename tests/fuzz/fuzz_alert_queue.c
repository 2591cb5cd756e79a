/* fuzz_alert_queue.c: libFuzzer harness for the webhook queue file moatd reads at start
 * (moat_alert_queue_decode, src/monitor/alerts.c). Invariants: a refused file leaves the
 * queue empty; an accepted one holds at most its bound of valid alerts, and what
 * moat_alert_queue_encode writes of it reads back the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/monitor_export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_alert_queue q, back;
	struct moat_err err;
	moat_alert_queue_init(&q, 8);
	if (moat_alert_queue_decode(data, size, &q, &err) != 0) {
		if (q.len != 0) {
			abort();
		}
		moat_alert_queue_free(&q);
		return 0;
	}
	if (q.len > q.max) {
		abort();
	}
	for (size_t i = 0; i < q.len; i++) {
		if (!moat_sec_event_kind_ok(q.items[i].kind) || q.items[i].count < 1) {
			abort();
		}
	}
	char *text = NULL;
	size_t len = 0;
	moat_alert_queue_init(&back, 8);
	if (moat_alert_queue_encode(&q, &text, &len, &err) != 0 ||
	    moat_alert_queue_decode(text, len, &back, &err) != 0 || back.len != q.len ||
	    back.dropped != q.dropped ||
	    (q.len && memcmp(back.items, q.items, q.len * sizeof(q.items[0])) != 0)) {
		abort();
	}
	free(text);
	moat_alert_queue_free(&q);
	moat_alert_queue_free(&back);
	return 0;
}
