/* fuzz_duration.c: moat_duration_parse and moat_int_parse, the parsers behind every number
 * and duration moat reads from flags, moat.conf and the network. The first byte picks the
 * default unit and the integer range; the rest is the text. Results outside the asked
 * range, or a success on text with white space, signs other than a leading '-', or
 * garbage, abort; so does moat_duration_ms_parse accepting a number without its unit. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/timeutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > 4096) {
		return 0;
	}
	static const int64_t units[] = {1, 60, 3600, 86400, 7 * 86400, 365 * 86400, INT64_MAX, 0};
	static const int64_t ranges[][2] = {
		{INT64_MIN, INT64_MAX}, {0, 65535}, {-10, 10}, {1, 1}, {0, 0}, {5, -5},
	};
	int64_t unit = units[data[0] % (sizeof(units) / sizeof(units[0]))];
	size_t r = (size_t)(data[0] >> 3) % (sizeof(ranges) / sizeof(ranges[0]));
	char *text = malloc(size);
	if (!text) {
		return 0;
	}
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	size_t len = strlen(text);

	struct moat_err err;
	int64_t v = 0;
	if (moat_int_parse(text, ranges[r][0], ranges[r][1], &v, &err) == 0) {
		if (v < ranges[r][0] || v > ranges[r][1] || len == 0) {
			abort();
		}
		for (size_t i = 0; i < len; i++) {
			if (!isdigit((unsigned char)text[i]) && !(i == 0 && text[i] == '-')) {
				abort();
			}
		}
	}
	if (moat_duration_parse(text, unit, &v, &err) == 0) {
		if (v < 0 || unit <= 0 || len == 0) {
			abort();
		}
		for (size_t i = 0; i + 1 < len; i++) {
			if (!isdigit((unsigned char)text[i])) {
				abort();
			}
		}
	}
	/* the unit-required parser: a success has digits then one of ms s m h d w */
	if (moat_duration_ms_parse(text, &v, &err) == 0) {
		size_t digits = strspn(text, "0123456789");
		const char *suffix = text + digits;
		if (v < 0 || digits == 0 ||
		    (strcmp(suffix, "ms") != 0 &&
		     (strlen(suffix) != 1 || !strchr("smhdw", suffix[0])))) {
			abort();
		}
	}
	free(text);
	return 0;
}
