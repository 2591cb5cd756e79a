/* ratelimit.c: token bucket and connect-flap detector (ratelimit.h).
 *
 * The bucket counts thousandths of a token: a rate of R per second is then exactly R
 * thousandths per millisecond, so refills are integer products with no rounding drift.
 * Products are bounded before they are formed (rate and burst are at most 1e12, so
 * burst * 1000 and any product below it fit in 64 bits).
 */
#include "moat/ratelimit.h"

#include <string.h>

#define MILLI 1000ULL

int moat_bucket_init(struct moat_bucket *b, uint64_t rate_per_s, uint64_t burst,
		     struct moat_err *err)
{
	if (!b) {
		return moat_err_set(err, MOAT_EINVAL, "rate limit: no bucket");
	}
	memset(b, 0, sizeof(*b));
	if (rate_per_s > MOAT_BUCKET_MAX || burst > MOAT_BUCKET_MAX) {
		return moat_err_set(err, MOAT_EINVAL,
				    "rate limit: rate %llu or burst %llu is above %llu",
				    (unsigned long long)rate_per_s, (unsigned long long)burst,
				    (unsigned long long)MOAT_BUCKET_MAX);
	}
	if (rate_per_s > 0 && burst == 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "rate limit: a burst of 0 would refuse everything");
	}
	b->rate_per_s = rate_per_s;
	b->burst = burst;
	return 0;
}

static void refill(struct moat_bucket *b, int64_t now_ms)
{
	uint64_t cap = b->burst * MILLI;

	if (!b->started) {
		b->started = true;
		b->last_ms = now_ms;
		b->milli_tokens = cap;
		return;
	}
	if (now_ms <= b->last_ms) {
		/* no time passed, or the caller's clock went back: no refill, and keep
		 * last_ms so that going back and forth cannot mint tokens */
		return;
	}
	uint64_t elapsed = (uint64_t)now_ms - (uint64_t)b->last_ms;
	b->last_ms = now_ms;
	if (b->milli_tokens >= cap || b->rate_per_s == 0) {
		return;
	}
	uint64_t need = cap - b->milli_tokens;
	/* elapsed * rate only when it is below need + rate, so it cannot overflow */
	if (elapsed >= (need + b->rate_per_s - 1) / b->rate_per_s) {
		b->milli_tokens = cap;
	} else {
		b->milli_tokens += elapsed * b->rate_per_s;
	}
}

bool moat_bucket_take(struct moat_bucket *b, uint64_t cost, int64_t now_ms)
{
	if (!b) {
		return false;
	}
	if (b->rate_per_s == 0) {
		return true;
	}
	refill(b, now_ms);
	if (cost > b->burst) {
		return false;
	}
	if (b->milli_tokens < cost * MILLI) {
		return false;
	}
	b->milli_tokens -= cost * MILLI;
	return true;
}

int64_t moat_bucket_wait_ms(struct moat_bucket *b, uint64_t cost, int64_t now_ms)
{
	if (!b) {
		return -1;
	}
	if (b->rate_per_s == 0) {
		return 0;
	}
	refill(b, now_ms);
	if (cost > b->burst) {
		return -1;
	}
	uint64_t need = cost * MILLI;
	if (b->milli_tokens >= need) {
		return 0;
	}
	/* at most 1e15 / 1 ms: fits int64_t */
	return (int64_t)((need - b->milli_tokens + b->rate_per_s - 1) / b->rate_per_s);
}

uint64_t moat_bucket_tokens(struct moat_bucket *b, int64_t now_ms)
{
	if (!b) {
		return 0;
	}
	if (b->rate_per_s == 0) {
		return UINT64_MAX;
	}
	refill(b, now_ms);
	return b->milli_tokens / MILLI;
}

int moat_flap_init(struct moat_flap *f, unsigned threshold, int64_t window_ms, int64_t ban_ms,
		   struct moat_err *err)
{
	if (!f) {
		return moat_err_set(err, MOAT_EINVAL, "flap detector: none given");
	}
	memset(f, 0, sizeof(*f));
	if (threshold < 2 || threshold > MOAT_FLAP_THRESHOLD_MAX) {
		return moat_err_set(err, MOAT_EINVAL,
				    "flap detector: threshold %u is not in [2, %d]", threshold,
				    MOAT_FLAP_THRESHOLD_MAX);
	}
	if (window_ms <= 0 || ban_ms <= 0) {
		return moat_err_set(err, MOAT_EINVAL,
				    "flap detector: window and ban must be positive");
	}
	f->threshold = threshold;
	f->window_ms = window_ms;
	f->ban_ms = ban_ms;
	return 0;
}

bool moat_flap_connect(struct moat_flap *f, int64_t now_ms)
{
	if (!f || f->threshold < 2 || f->threshold > MOAT_FLAP_THRESHOLD_MAX) {
		return false;
	}
	/* a clock that goes back must not make old connects look recent, nor end a ban */
	if (now_ms < f->latest_ms) {
		now_ms = f->latest_ms;
	}
	f->latest_ms = now_ms;
	if (f->banned) {
		if (now_ms < f->banned_until_ms) {
			return true;
		}
		f->banned = false;
		f->count = 0;
		f->head = 0;
	}
	if (f->count < f->threshold) {
		f->times[(f->head + f->count) % f->threshold] = now_ms;
		f->count++;
	} else {
		f->times[f->head] = now_ms;
		f->head = (f->head + 1) % f->threshold;
	}
	/* unsigned difference: exact since now_ms >= every recorded time */
	if (f->count == f->threshold &&
	    (uint64_t)now_ms - (uint64_t)f->times[f->head] < (uint64_t)f->window_ms) {
		f->banned = true;
		f->banned_until_ms = now_ms > INT64_MAX - f->ban_ms ? INT64_MAX
								    : now_ms + f->ban_ms;
		f->count = 0;
		f->head = 0;
		return true;
	}
	return false;
}

bool moat_flap_banned(const struct moat_flap *f, int64_t now_ms, int64_t *out_until_ms)
{
	if (!f || !f->banned) {
		return false;
	}
	if (now_ms < f->latest_ms) {
		now_ms = f->latest_ms;
	}
	if (now_ms >= f->banned_until_ms) {
		return false;
	}
	if (out_until_ms) {
		*out_until_ms = f->banned_until_ms;
	}
	return true;
}
