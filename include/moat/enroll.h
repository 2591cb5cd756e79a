/* enroll.h: what the drivers of the device code see of enrollment and renewal
 * (src/device/enroll.c): the schedule's arithmetic, and the pool that bounds how many EST
 * calls the simulator's devices run at once and counts what they did. The identity itself
 * is the session's (moat/session.h); its files are described in src/device/enroll_internal.h
 * and the [enroll] section in moat/agent_conf.h.
 */
#ifndef MOAT_ENROLL_H
#define MOAT_ENROLL_H

#include <stdint.h>

/* When a certificate valid from not_before to not_after (seconds) is renewed: once
 * percent (1..99) of its lifetime has passed. */
int64_t moat_enroll_renew_time(int64_t not_before, int64_t not_after, int percent);

/* The wait before the next try after failures (>= 1) failed tries: min_ms doubled per
 * failure up to max_ms, then drawn uniformly in [d/2, d] with rnd (so a fleet does not
 * retry in step), and never more than half the time left before the certificate expires
 * (left_ms; < 0: no certificate) nor less than min_ms / 2. */
int64_t moat_enroll_backoff_ms(unsigned failures, int64_t min_ms, int64_t max_ms, int64_t left_ms,
			       uint64_t rnd);

/* EST calls running at once across the devices sharing a pool (max 0: no limit), and what
 * they did: a successful call is counted in enrolled (simpleenroll) or renewed
 * (simplereenroll), a failed or refused one in failed; first_ms and last_ms (monotonic)
 * span from the first call's start to the last success. The caller owns the pool, which
 * MUST outlive every session set to it. */
struct moat_enroll_pool {
	unsigned running, max;
	uint64_t enrolled, renewed, failed;
	int64_t first_ms, last_ms;
};

#endif
