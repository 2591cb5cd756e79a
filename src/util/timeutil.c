/* timeutil.c: duration and integer parsing with full error checks; clocks. */
#include "moat/timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int moat_int_parse(const char *text, int64_t min, int64_t max, int64_t *out_value,
		   struct moat_err *err)
{
	if (!text || !*text) {
		return moat_err_set(err, MOAT_EINVAL, "empty number");
	}
	if (strlen(text) > 32) {
		return moat_err_set(err, MOAT_EINVAL, "'%.32s...': number too long", text);
	}
	/* strtoll skips leading white space (tabs, newlines too) and takes a '+': a number
	 * here is an optional '-' and digits, nothing else */
	const char *digits = text[0] == '-' ? text + 1 : text;
	if (!isdigit((unsigned char)digits[0])) {
		return moat_err_set(err, MOAT_EINVAL, "'%s': not an integer", text);
	}
	char *end = NULL;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (errno == ERANGE || end == text || *end != '\0') {
		return moat_err_set(err, MOAT_EINVAL, "'%s': not an integer", text);
	}
	if (v < min || v > max) {
		return moat_err_set(err, MOAT_EINVAL, "'%s': out of range %" PRId64 "..%" PRId64,
				    text, min, max);
	}
	*out_value = v;
	return 0;
}

int moat_duration_parse(const char *text, int64_t default_unit_seconds, int64_t *out_seconds,
			struct moat_err *err)
{
	if (!text || !*text) {
		return moat_err_set(err, MOAT_EINVAL, "empty duration");
	}
	if (text[0] == '-') {
		/* "-0" would parse as zero: a duration has no sign at all */
		return moat_err_set(err, MOAT_EINVAL, "'%s': negative duration", text);
	}
	if (default_unit_seconds <= 0) {
		return moat_err_set(err, MOAT_EINVAL, "'%s': bad default unit %" PRId64, text,
				    default_unit_seconds);
	}
	size_t len = strlen(text);
	if (len > 24) {
		return moat_err_set(err, MOAT_EINVAL, "'%.24s...': duration too long", text);
	}
	char num[32];
	memcpy(num, text, len + 1);
	static const struct {
		char suffix;
		int64_t seconds;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
	int64_t unit = default_unit_seconds;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (num[len - 1] == units[i].suffix) {
			unit = units[i].seconds;
			num[len - 1] = '\0';
			break;
		}
	}
	int64_t n = 0;
	struct moat_err sub;
	if (moat_int_parse(num, 0, INT64_MAX, &n, &sub) != 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "'%s': not a duration (use e.g. 30s, 10m, 12h, 30d, 2w)", text);
	}
	/* the default unit may be larger than a week: bound by the unit actually used */
	if (n > INT64_MAX / unit) {
		return moat_err_set(err, MOAT_EINVAL, "'%s': duration too long", text);
	}
	*out_seconds = n * unit;
	return 0;
}

int moat_duration_ms_parse(const char *text, int64_t *out_ms, struct moat_err *err)
{
	size_t len = text ? strlen(text) : 0;
	int64_t v = 0;
	struct moat_err sub;
	if (len == 0) {
		return moat_err_set(err, MOAT_EINVAL, "empty duration");
	}
	if (len > 24) {
		return moat_err_set(err, MOAT_EINVAL, "'%.24s...': duration too long", text);
	}
	if (len > 2 && strcmp(text + len - 2, "ms") == 0) {
		char num[32];
		memcpy(num, text, len - 2);
		num[len - 2] = '\0';
		if (text[0] == '-' || moat_int_parse(num, 0, INT64_MAX, &v, &sub) != 0) {
			return moat_err_set(err, MOAT_EINVAL,
					    "'%s': not a duration (use e.g. 500ms, 30s, 5m, 1h)",
					    text);
		}
		*out_ms = v;
		return 0;
	}
	if (strchr("smhdw", text[len - 1]) == NULL) {
		return moat_err_set(err, MOAT_EINVAL,
				    "'%s': give a unit (e.g. 500ms, 30s, 5m, 1h): a bare number is "
				    "ambiguous",
				    text);
	}
	int rc = moat_duration_parse(text, 1, &v, err);
	if (rc != 0) {
		return rc;
	}
	if (v > INT64_MAX / 1000) {
		return moat_err_set(err, MOAT_EINVAL, "'%s': duration too long", text);
	}
	*out_ms = v * 1000;
	return 0;
}

void moat_time_iso(int64_t t, char buf[MOAT_TIME_ISO_LEN])
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) ||
	    strftime(buf, MOAT_TIME_ISO_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		snprintf(buf, MOAT_TIME_ISO_LEN, "invalid-time");
	}
}

int64_t moat_time_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

int64_t moat_time_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t moat_time_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
