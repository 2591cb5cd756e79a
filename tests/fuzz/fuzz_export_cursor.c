/* fuzz_export_cursor.c: libFuzzer harness for the exporter's cursor file moatd reads at
 * start (moat_export_cursor_decode, src/monitor/siemqueue.c). Invariants: a refused file
 * leaves the seq 0; an accepted seq is in range, and what moat_export_cursor_encode writes
 * of it reads back the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/monitor_export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t seq = -1, back = -1;
	struct moat_err err;
	if (moat_export_cursor_decode(data, size, &seq, &err) != 0) {
		if (seq != 0) {
			abort();
		}
		return 0;
	}
	if (seq < 0 || seq > 9007199254740991LL) {
		abort();
	}
	char text[MOAT_EXPORT_CURSOR_MAX_BYTES];
	int len = moat_export_cursor_encode(seq, text, sizeof(text));
	if (len < 0 || moat_export_cursor_decode(text, (size_t)len, &back, &err) != 0 ||
	    back != seq) {
		abort();
	}
	return 0;
}
