/* job.c: the pure rules of jobs (moat/job.h): result names, what a device's response
 * status means, --rate, and the exit status of a run. */
#include <string.h>

#include "moat/job.h"
#include "moat/timeutil.h"

static const char *const result_names[MOAT_JOB_RESULT_COUNT] = {
	"pending", "done", "refused", "unknown_command", "timeout", "offline",
};

const char *moat_job_result_name(enum moat_job_result r)
{
	return (unsigned)r < MOAT_JOB_RESULT_COUNT ? result_names[r] : "unknown";
}

int moat_job_result_parse(const char *name, enum moat_job_result *out)
{
	for (int i = 0; i < MOAT_JOB_RESULT_COUNT; i++) {
		if (strcmp(name, result_names[i]) == 0) {
			*out = (enum moat_job_result)i;
			return 0;
		}
	}
	return MOAT_EINVAL;
}

enum moat_job_result moat_job_result_of_status(const char *status)
{
	if (strcmp(status, "accepted") == 0 || strcmp(status, "completed") == 0) {
		return MOAT_JOB_DONE;
	}
	if (strcmp(status, "unknown_command") == 0) {
		return MOAT_JOB_UNKNOWN_COMMAND;
	}
	return MOAT_JOB_REFUSED;
}

int moat_job_rate_parse(const char *text, int64_t *out_interval_us, struct moat_err *err)
{
	*out_interval_us = 0;
	const char *slash = strchr(text, '/');
	char num[16];
	size_t n = slash ? (size_t)(slash - text) : 0;
	int64_t count = 0;
	if (!slash || n == 0 || n >= sizeof(num) ||
	    (strcmp(slash, "/s") != 0 && strcmp(slash, "/m") != 0)) {
		return moat_err_set(err, MOAT_EINVAL, "--rate: '%.40s': N/s or N/m expected (50/s)",
				    text);
	}
	memcpy(num, text, n);
	num[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (num[i] < '0' || num[i] > '9') {
			return moat_err_set(err, MOAT_EINVAL,
					    "--rate: '%.40s': N/s or N/m expected (50/s)", text);
		}
	}
	if (moat_int_parse(num, 1, MOAT_JOB_RATE_MAX, &count, err) != 0) {
		return moat_err_set(err, MOAT_EINVAL, "--rate: from 1 to %d per second or minute",
				    MOAT_JOB_RATE_MAX);
	}
	int64_t per_us = slash[1] == 's' ? 1000000 : 60000000;
	*out_interval_us = per_us / count;
	return 0;
}

int moat_job_exit_status(const size_t counts[MOAT_JOB_RESULT_COUNT])
{
	if (counts[MOAT_JOB_REFUSED] || counts[MOAT_JOB_UNKNOWN_COMMAND] ||
	    counts[MOAT_JOB_OFFLINE]) {
		return 1;
	}
	if (counts[MOAT_JOB_TIMEOUT] || counts[MOAT_JOB_PENDING]) {
		return 2;
	}
	return 0;
}
