/* job.h: jobs, one command sent to many devices (`moat job run|status`).
 *
 * Pure rules (src/core/job.c): the outcome of each device, what a device's response status
 * means, the --rate option, and the exit status of a run. The run itself
 * (src/fleet/job.c): one operator (or service) MQTT session through moat_opclient; the
 * devices' retained statuses read first (an offline device is "offline" and is sent
 * nothing); commands published at the rate asked, which must not be above what the broker
 * takes from the identity for devices (an operator: [policy] job_rate, its job bucket,
 * include/moat/policy.h "Jobs"; a service: its role's msgs_per_s), so the broker never
 * drops one and the operator's own rate limit is never tripped; responses matched
 * by the id each command carries (or, from firmware that sends none, by device and
 * command); every result recorded in the registry as it comes (jobs, job_results), so
 * `moat job status` shows a job while it runs and after. One session for the whole job:
 * it never trips the broker's limit on reconnections.
 */
#ifndef MOAT_JOB_H
#define MOAT_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/err.h"
#include "moat/identity.h"

enum moat_job_result {
	MOAT_JOB_PENDING, /* not answered yet (or the run was interrupted) */
	MOAT_JOB_DONE,	  /* accepted or completed */
	MOAT_JOB_REFUSED, /* refused, bad_request or failed */
	MOAT_JOB_UNKNOWN_COMMAND,
	MOAT_JOB_TIMEOUT, /* sent, no answer within --timeout */
	MOAT_JOB_OFFLINE, /* offline when its turn came, or went offline before answering */
	MOAT_JOB_RESULT_COUNT,
};
const char *moat_job_result_name(enum moat_job_result r);
MOAT_MUST_CHECK int moat_job_result_parse(const char *name, enum moat_job_result *out);
/* What a response's status says: accepted/completed -> done, unknown_command, anything
 * else (refused, bad_request, failed, a status this moat does not know) -> refused. */
enum moat_job_result moat_job_result_of_status(const char *status);

#define MOAT_JOB_RATE_MAX 10000
/* "50/s" or "600/m": 1..MOAT_JOB_RATE_MAX commands per second or per minute, into the
 * interval between two sends in microseconds. */
MOAT_MUST_CHECK int moat_job_rate_parse(const char *text, int64_t *out_interval_us,
					struct moat_err *err);

/* Exit status of `moat job run`: 0 when every device is done; 1 when one refused, did not
 * know the command or was offline; else 2 when one timed out or is pending. */
int moat_job_exit_status(const size_t counts[MOAT_JOB_RESULT_COUNT]);

/* ---- the run (src/fleet/job.c) ---- */

struct moat_deploy;
struct moat_msg_command;

struct moat_job_req {
	const struct moat_msg_command *cmd; /* name and arguments; its id is set per device */
	char *const *devices;		    /* active devices, each once */
	size_t count;
	const char *target; /* what the operator named: "group G" or "devices a,b" */
	const char *as;	    /* identity to act as; NULL: the first operator */
	const char *host;   /* broker host; NULL: moat.conf [client] host */
	int64_t interval_us;
	int64_t timeout_ms; /* per device, from its command's publish */
	/* the commands a second the broker takes from each role for devices (operator:
	 * [policy] job_rate; service: service_msgs_per_s; 0: no bound): a rate above the
	 * acting identity's is refused before anything is sent or recorded */
	uint32_t role_ceiling_per_s[MOAT_ROLE_COUNT];
	volatile int *stop;
};

struct moat_job_progress {
	int64_t job_id;
	size_t total, sent;
	size_t counts[MOAT_JOB_RESULT_COUNT];
	int64_t interval_us; /* the pace used */
};
typedef void (*moat_job_progress_cb)(const struct moat_job_progress *p, bool final, void *ctx);

/* Refuses (MOAT_EINVAL, one line naming the ceiling and its setting) a rate above the
 * acting identity's ceiling before connecting; then records the job, runs it, records each
 * result; progress is called at most every 200 ms
 * and once at the end (final). d must be open for writing. Returns 0 once every device has
 * a result (or MOAT_EINTR when *stop ended it early; what was answered is recorded). */
MOAT_MUST_CHECK int moat_job_run(struct moat_deploy *d, const struct moat_job_req *req,
				 moat_job_progress_cb progress, void *ctx,
				 struct moat_job_progress *out, struct moat_err *err);

#endif
