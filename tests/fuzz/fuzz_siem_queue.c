/* fuzz_siem_queue.c: libFuzzer harness for the SIEM's queue file moatd reads at start
 * (moat_siem_queue_decode, src/monitor/siemqueue.c). Invariants: a refused file yields no
 * event; an accepted one at most its bound of valid events, and what
 * moat_siem_queue_encode writes of them reads back the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/monitor_export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BOUND 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_sec_event evs[BOUND], back[BOUND];
	struct moat_err err;
	size_t n = 0, n2 = 0, left_out = 0;
	uint64_t dropped = 0;
	if (moat_siem_queue_decode(data, size, evs, BOUND, &n, &dropped, &err) != 0) {
		if (n != 0) {
			abort();
		}
		return 0;
	}
	if (n > BOUND) {
		abort();
	}
	for (size_t i = 0; i < n; i++) {
		if (!moat_sec_event_kind_ok(evs[i].kind)) {
			abort();
		}
	}
	char *text = NULL;
	size_t len = 0;
	/* written from a wrapped ring: head 1 of BOUND slots holds them in order */
	struct moat_sec_event ring[BOUND];
	memset(ring, 0, sizeof(ring));
	for (size_t i = 0; i < n; i++) {
		ring[(1 + i) % BOUND] = evs[i];
	}
	if (moat_siem_queue_encode(ring, BOUND, 1, n, &text, &len, &left_out, &err) != 0 ||
	    left_out != 0 ||
	    moat_siem_queue_decode(text, len, back, BOUND, &n2, &dropped, &err) != 0 || n2 != n ||
	    (n && memcmp(back, evs, n * sizeof(evs[0])) != 0)) {
		abort();
	}
	free(text);
	return 0;
}
