/* ratelimit.h: a token bucket and a connect-flap detector (src/core/ratelimit.c).
 *
 * The broker plugin keeps one bucket per identity for messages per second and one for
 * bytes per second, and one flap detector per identity for reconnect storms; the agent
 * and the simulator may use the bucket to pace themselves.
 *
 * Contract: pure. No clock inside: every call takes the caller's time in milliseconds
 * from one monotonic source (CLOCK_MONOTONIC; never wall time, which jumps). Time that
 * runs backwards is treated as no time passing, never as a refill. No allocation, no
 * globals; the structs are plain values the caller owns (one per identity) and may copy.
 * Integer arithmetic only, so results are exact and cannot overflow within the limits.
 */
#ifndef MOAT_RATELIMIT_H
#define MOAT_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "moat/err.h"

/* Largest rate (per second) and burst a bucket accepts: 1e12 (a terabyte per second). */
#define MOAT_BUCKET_MAX 1000000000000ULL

/* A token bucket: holds at most burst tokens, gains rate_per_s tokens per second, starts
 * full. Tokens are kept in thousandths so a rate below 1000/s still refills every ms. */
struct moat_bucket {
	uint64_t rate_per_s; /* 0: unlimited, every take succeeds */
	uint64_t burst;
	uint64_t milli_tokens; /* current tokens * 1000, at most burst * 1000 */
	int64_t last_ms;       /* time of the last refill */
	bool started;	       /* false until the first take: the bucket is full then */
};

/* Sets up b. rate_per_s 0 means unlimited (burst is then ignored). Fails (MOAT_EINVAL)
 * when rate_per_s or burst exceeds MOAT_BUCKET_MAX, or burst is 0 with a rate set. */
MOAT_MUST_CHECK int moat_bucket_init(struct moat_bucket *b, uint64_t rate_per_s, uint64_t burst,
				     struct moat_err *err);

/* Refills b for the time up to now_ms, then takes cost tokens if that many are there.
 * Returns true when taken; false leaves the tokens as they were (after the refill). A cost
 * above burst never succeeds: set burst to at least the largest single cost (for a bytes
 * bucket, the largest payload allowed). */
bool moat_bucket_take(struct moat_bucket *b, uint64_t cost, int64_t now_ms);

/* Milliseconds from now_ms until cost tokens will be there (0: now), or -1 when cost is
 * above burst. Does not take anything; refills b like moat_bucket_take. */
int64_t moat_bucket_wait_ms(struct moat_bucket *b, uint64_t cost, int64_t now_ms);

/* Whole tokens in b at now_ms (refills b first). */
uint64_t moat_bucket_tokens(struct moat_bucket *b, int64_t now_ms);

/* A flap detector: threshold connects within window_ms ban the identity for ban_ms. */
#define MOAT_FLAP_THRESHOLD_MAX 32

struct moat_flap {
	unsigned threshold;
	int64_t window_ms;
	int64_t ban_ms;
	int64_t times[MOAT_FLAP_THRESHOLD_MAX]; /* ring of the latest connect times */
	unsigned count;				/* valid entries in times */
	unsigned head;				/* index of the oldest entry */
	int64_t latest_ms;			/* latest time seen, for clamping */
	bool banned;
	int64_t banned_until_ms; /* meaningful when banned */
};

/* Sets up f. threshold in [2, MOAT_FLAP_THRESHOLD_MAX], window_ms and ban_ms > 0, else
 * MOAT_EINVAL. */
MOAT_MUST_CHECK int moat_flap_init(struct moat_flap *f, unsigned threshold, int64_t window_ms,
				   int64_t ban_ms, struct moat_err *err);

/* Records a connect at now_ms and returns true when the identity is banned at now_ms: it
 * was already (attempts during a ban are not recorded and do not extend it), or this is the
 * threshold-th connect less than window_ms after the first of them (the ban then runs until
 * now_ms + ban_ms). When a ban has expired, the history starts afresh. */
bool moat_flap_connect(struct moat_flap *f, int64_t now_ms);

/* true while a ban holds at now_ms; *out_until_ms (when non-NULL) gets its end. Does not
 * record anything. */
bool moat_flap_banned(const struct moat_flap *f, int64_t now_ms, int64_t *out_until_ms);

#endif
