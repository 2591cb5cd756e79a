/* test_ratelimit.c: the token bucket and the flap detector (src/core/ratelimit.c).
 * Time is passed in, so every test states exact instants and expects exact counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "moat/ratelimit.h"

static void test_bucket_init(void **state)
{
	struct moat_bucket b;
	struct moat_err err = {0};
	(void)state;

	assert_int_equal(moat_bucket_init(&b, 10, 20, &err), 0);
	assert_int_equal(moat_bucket_init(&b, 0, 0, &err), 0); /* unlimited */
	assert_int_equal(moat_bucket_init(&b, MOAT_BUCKET_MAX, MOAT_BUCKET_MAX, &err), 0);
	assert_int_equal(moat_bucket_init(&b, 10, 0, &err), MOAT_EINVAL);
	assert_int_equal(err.code, MOAT_EINVAL);
	assert_int_equal(moat_bucket_init(&b, MOAT_BUCKET_MAX + 1, 10, &err), MOAT_EINVAL);
	assert_int_equal(moat_bucket_init(&b, 10, MOAT_BUCKET_MAX + 1, &err), MOAT_EINVAL);
	assert_int_equal(moat_bucket_init(NULL, 10, 10, &err), MOAT_EINVAL);
}

static void test_bucket_burst_then_rate(void **state)
{
	struct moat_bucket b;
	(void)state;

	assert_int_equal(moat_bucket_init(&b, 10, 5, NULL), 0);
	/* starts full: exactly burst messages pass at once */
	for (int i = 0; i < 5; i++) {
		assert_true(moat_bucket_take(&b, 1, 1000));
	}
	assert_false(moat_bucket_take(&b, 1, 1000));
	/* 10/s is one token per 100 ms */
	assert_false(moat_bucket_take(&b, 1, 1099));
	assert_true(moat_bucket_take(&b, 1, 1100));
	assert_false(moat_bucket_take(&b, 1, 1100));
	/* a long pause refills to burst, not beyond */
	assert_int_equal(moat_bucket_tokens(&b, 1000000), 5);
	for (int i = 0; i < 5; i++) {
		assert_true(moat_bucket_take(&b, 1, 1000000));
	}
	assert_false(moat_bucket_take(&b, 1, 1000000));
}

static void test_bucket_sustained_rate(void **state)
{
	struct moat_bucket b;
	int passed = 0;
	(void)state;

	/* 3 per second, burst 2: over 10 s of attempts every ms, the 2 of the burst and the
	 * 30 minted pass; no fraction of a token is lost between attempts */
	assert_int_equal(moat_bucket_init(&b, 3, 2, NULL), 0);
	for (int64_t t = 0; t <= 10000; t++) {
		passed += moat_bucket_take(&b, 1, t);
	}
	assert_int_equal(passed, 32);
	/* with burst 1 the cap can clip a thousandth at the instant a token completes,
	 * so the bucket errs on the strict side, never above the rate */
	passed = 0;
	assert_int_equal(moat_bucket_init(&b, 3, 1, NULL), 0);
	for (int64_t t = 0; t <= 10000; t++) {
		passed += moat_bucket_take(&b, 1, t);
	}
	assert_true(passed >= 29 && passed <= 31);
}

static void test_bucket_bytes(void **state)
{
	struct moat_bucket b;
	(void)state;

	assert_int_equal(moat_bucket_init(&b, 1000, 4096, NULL), 0);
	assert_true(moat_bucket_take(&b, 4096, 0));
	assert_false(moat_bucket_take(&b, 1, 0));
	/* 1000 bytes/s: one byte per ms */
	assert_false(moat_bucket_take(&b, 500, 499));
	assert_true(moat_bucket_take(&b, 500, 500));
	/* a failed take leaves the tokens */
	assert_false(moat_bucket_take(&b, 200, 600));
	assert_true(moat_bucket_take(&b, 100, 600));
	/* more than burst never passes, however long one waits */
	assert_false(moat_bucket_take(&b, 4097, 1000000000));
	assert_int_equal(moat_bucket_wait_ms(&b, 4097, 1000000000), -1);
	assert_true(moat_bucket_take(&b, 4096, 1000000000));
	assert_int_equal(moat_bucket_wait_ms(&b, 10, 1000000000), 10);
	assert_int_equal(moat_bucket_wait_ms(&b, 10, 1000000005), 5);
	assert_int_equal(moat_bucket_wait_ms(&b, 10, 1000000010), 0);
}

static void test_bucket_slow_rate_fraction(void **state)
{
	struct moat_bucket b;
	(void)state;

	/* 1 per second: thousandths accumulate, 999 ms is not enough, 1000 ms is */
	assert_int_equal(moat_bucket_init(&b, 1, 1, NULL), 0);
	assert_true(moat_bucket_take(&b, 1, 5000));
	for (int64_t t = 5001; t < 6000; t += 7) {
		assert_false(moat_bucket_take(&b, 1, t));
	}
	assert_false(moat_bucket_take(&b, 1, 5999));
	assert_true(moat_bucket_take(&b, 1, 6000));
}

static void test_bucket_clock_back(void **state)
{
	struct moat_bucket b;
	(void)state;

	assert_int_equal(moat_bucket_init(&b, 10, 1, NULL), 0);
	assert_true(moat_bucket_take(&b, 1, 10000));
	/* going back then forth to the same instant mints nothing */
	assert_false(moat_bucket_take(&b, 1, 0));
	assert_false(moat_bucket_take(&b, 1, 10050));
	assert_false(moat_bucket_take(&b, 1, 5));
	assert_true(moat_bucket_take(&b, 1, 10100));
	assert_false(moat_bucket_take(&b, 1, 10100));
}

static void test_bucket_extremes(void **state)
{
	struct moat_bucket b;
	(void)state;

	/* largest rate and burst, largest time span: no overflow, capped at burst */
	assert_int_equal(moat_bucket_init(&b, MOAT_BUCKET_MAX, MOAT_BUCKET_MAX, NULL), 0);
	assert_true(moat_bucket_take(&b, MOAT_BUCKET_MAX, INT64_MIN));
	assert_false(moat_bucket_take(&b, 1, INT64_MIN));
	assert_int_equal(moat_bucket_tokens(&b, INT64_MAX), MOAT_BUCKET_MAX);
	assert_false(moat_bucket_take(&b, UINT64_MAX, INT64_MAX));
	assert_int_equal(moat_bucket_wait_ms(&b, UINT64_MAX, INT64_MAX), -1);

	/* unlimited */
	assert_int_equal(moat_bucket_init(&b, 0, 0, NULL), 0);
	for (int i = 0; i < 1000; i++) {
		assert_true(moat_bucket_take(&b, UINT64_MAX, 0));
	}
	assert_int_equal(moat_bucket_wait_ms(&b, UINT64_MAX, 0), 0);
	assert_false(moat_bucket_take(NULL, 1, 0));
	assert_int_equal(moat_bucket_wait_ms(NULL, 1, 0), -1);
	assert_int_equal(moat_bucket_tokens(NULL, 0), 0);
}

static void test_flap_init(void **state)
{
	struct moat_flap f;
	struct moat_err err = {0};
	(void)state;

	assert_int_equal(moat_flap_init(&f, 5, 10000, 60000, &err), 0);
	assert_int_equal(moat_flap_init(&f, 1, 10000, 60000, &err), MOAT_EINVAL);
	assert_int_equal(err.code, MOAT_EINVAL);
	assert_int_equal(moat_flap_init(&f, MOAT_FLAP_THRESHOLD_MAX + 1, 10000, 60000, &err),
			 MOAT_EINVAL);
	assert_int_equal(moat_flap_init(&f, 5, 0, 60000, &err), MOAT_EINVAL);
	assert_int_equal(moat_flap_init(&f, 5, 10000, -1, &err), MOAT_EINVAL);
	assert_int_equal(moat_flap_init(NULL, 5, 10000, 60000, &err), MOAT_EINVAL);
	/* a zeroed or failed detector never bans */
	assert_false(moat_flap_connect(&f, 0));
	assert_false(moat_flap_connect(NULL, 0));
	assert_false(moat_flap_banned(NULL, 0, NULL));
}

static void test_flap_ban(void **state)
{
	struct moat_flap f;
	int64_t until = 0;
	(void)state;

	/* 3 connects within 10 s ban for 60 s */
	assert_int_equal(moat_flap_init(&f, 3, 10000, 60000, NULL), 0);
	assert_false(moat_flap_connect(&f, 1000));
	assert_false(moat_flap_connect(&f, 5000));
	assert_false(moat_flap_banned(&f, 5000, &until));
	assert_true(moat_flap_connect(&f, 10999)); /* 9999 ms after the first */
	assert_true(moat_flap_banned(&f, 10999, &until));
	assert_int_equal(until, 70999);
	/* attempts during the ban are refused and do not extend it */
	assert_true(moat_flap_connect(&f, 20000));
	assert_true(moat_flap_connect(&f, 70998));
	assert_true(moat_flap_banned(&f, 70998, &until));
	assert_int_equal(until, 70999);
	assert_false(moat_flap_banned(&f, 70999, NULL));
	/* after the ban the history starts afresh */
	assert_false(moat_flap_connect(&f, 71000));
	assert_false(moat_flap_connect(&f, 71001));
	assert_true(moat_flap_connect(&f, 71002));
}

static void test_flap_slow_connects_never_ban(void **state)
{
	struct moat_flap f;
	(void)state;

	/* one connect every 5 s with 3 in 10 s as the limit: 3 span exactly 10 s, allowed */
	assert_int_equal(moat_flap_init(&f, 3, 10000, 60000, NULL), 0);
	for (int64_t t = 0; t < 1000000; t += 5000) {
		assert_false(moat_flap_connect(&f, t));
	}
	/* then one quick pair bans: the window slides over the latest connects */
	assert_false(moat_flap_connect(&f, 1000000));
	assert_true(moat_flap_connect(&f, 1000001));
}

static void test_flap_clock_back(void **state)
{
	struct moat_flap f;
	(void)state;

	assert_int_equal(moat_flap_init(&f, 2, 1000, 5000, NULL), 0);
	assert_false(moat_flap_connect(&f, 100000));
	/* earlier times count as the latest seen: this is within the window */
	assert_true(moat_flap_connect(&f, 0));
	/* and cannot end a ban early */
	assert_true(moat_flap_banned(&f, 0, NULL));
	assert_true(moat_flap_connect(&f, 104999));
	assert_false(moat_flap_connect(&f, 105000));
}

static void test_flap_extremes(void **state)
{
	struct moat_flap f;
	int64_t until = 0;
	(void)state;

	assert_int_equal(moat_flap_init(&f, 2, INT64_MAX, INT64_MAX, NULL), 0);
	assert_false(moat_flap_connect(&f, INT64_MIN));
	assert_true(moat_flap_connect(&f, INT64_MAX - 1));
	assert_true(moat_flap_banned(&f, INT64_MAX - 1, &until));
	assert_int_equal(until, INT64_MAX);
	/* the full threshold, wrapping the ring many times */
	assert_int_equal(moat_flap_init(&f, MOAT_FLAP_THRESHOLD_MAX, 1000, 10, NULL), 0);
	for (int64_t t = 0; t < 100 * MOAT_FLAP_THRESHOLD_MAX; t++) {
		assert_false(moat_flap_connect(&f, t * 100));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_init),
		cmocka_unit_test(test_bucket_burst_then_rate),
		cmocka_unit_test(test_bucket_sustained_rate),
		cmocka_unit_test(test_bucket_bytes),
		cmocka_unit_test(test_bucket_slow_rate_fraction),
		cmocka_unit_test(test_bucket_clock_back),
		cmocka_unit_test(test_bucket_extremes),
		cmocka_unit_test(test_flap_init),
		cmocka_unit_test(test_flap_ban),
		cmocka_unit_test(test_flap_slow_connects_never_ban),
		cmocka_unit_test(test_flap_clock_back),
		cmocka_unit_test(test_flap_extremes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
