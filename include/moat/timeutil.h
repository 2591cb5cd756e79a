/* timeutil.h: durations ("30d", "10s", "90m", "12h", "2w"), wall-clock and monotonic time. */
#ifndef MOAT_TIMEUTIL_H
#define MOAT_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "moat/err.h"

/* Parses "<n>[s|m|h|d|w]" (no suffix means default_unit_seconds) into seconds.
 * Rejects empty, negative, overflowing, and trailing garbage. */
MOAT_MUST_CHECK int moat_duration_parse(const char *text, int64_t default_unit_seconds,
					int64_t *out_seconds, struct moat_err *err);

/* Parses "<n>ms" or "<n>[s|m|h|d|w]" into milliseconds: the unit is required, so a bare
 * number (whose unit a reader can only guess: 5000 meant as milliseconds once silenced a
 * device for 83 minutes) is refused with a message asking for one. Rejects what
 * moat_duration_parse rejects, and overflow of the milliseconds. */
MOAT_MUST_CHECK int moat_duration_ms_parse(const char *text, int64_t *out_ms, struct moat_err *err);

/* Parses a decimal integer in [min, max] with full strtoll checks. */
MOAT_MUST_CHECK int moat_int_parse(const char *text, int64_t min, int64_t max, int64_t *out_value,
				   struct moat_err *err);

/* Formats t (UTC) as "2026-11-25T18:00:00Z". buf must hold MOAT_TIME_ISO_LEN bytes. */
#define MOAT_TIME_ISO_LEN 21
void moat_time_iso(int64_t t, char buf[MOAT_TIME_ISO_LEN]);

int64_t moat_time_now(void);	 /* wall clock, seconds since the epoch */
int64_t moat_time_mono_ms(void); /* monotonic clock, milliseconds */
int64_t moat_time_wall_ms(void); /* wall clock, milliseconds since the epoch */

#endif
