/* fuzz_siem_status.c: libFuzzer harness for moatd's record of the SIEM's delivery that
 * `moat audit` reads (moat_siem_status_decode, src/monitor/siemstatus.c). Invariants: a
 * refused file leaves the output zeroed; an accepted one has a printable error, and what
 * moat_siem_status_encode writes of it reads back the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/monitor_export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_siem_status s, back, zero;
	struct moat_err err;
	memset(&zero, 0, sizeof(zero));
	if (moat_siem_status_decode(data, size, &s, &err) != 0) {
		if (memcmp(&s, &zero, sizeof(s)) != 0) {
			abort();
		}
		return 0;
	}
	for (const char *p = s.error; *p; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
			abort();
		}
	}
	char text[MOAT_SIEM_STATUS_MAX_BYTES];
	int len = moat_siem_status_encode(&s, text, sizeof(text));
	if (len < 0 || moat_siem_status_decode(text, (size_t)len, &back, &err) != 0 ||
	    back.last_ok != s.last_ok || back.last_error != s.last_error ||
	    back.pending != s.pending || back.oldest_pending != s.oldest_pending ||
	    strcmp(back.error, s.error) != 0) {
		abort();
	}
	return 0;
}
