/* test_rollout.c: the pure rules of groups and rollouts (src/core/rollout.c): the --where
 * parser (every rejection path) and its evaluation, tags, phase lists, the stable and
 * spread choice of each phase's devices, device states, the advance/halt decision and the
 * security-event reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "moat/rollout.h"

static bool matches(const char *where, const struct moat_device_attrs *dev)
{
	struct moat_where w;
	struct moat_err err = {0};
	assert_int_equal(moat_where_parse(where, &w, &err), 0);
	return moat_where_match(&w, dev);
}

static void test_where_match(void **state)
{
	(void)state;
	const char *tags[] = {"plant1", "zone:north"};
	struct moat_device_attrs dev = {
		.id = "s1",
		.type = "sensor",
		.release = "1.2.0",
		.tags = tags,
		.tag_count = 2,
		.cert_age_s = 40 * 86400,
	};
	assert_true(matches("type=sensor", &dev));
	assert_false(matches("type=valve", &dev));
	assert_true(matches("type=sensor and tag=plant1", &dev));
	assert_false(matches("type=sensor and tag=plant2", &dev));
	assert_true(matches("tag=plant2 or zone=north", &dev));
	assert_false(matches("zone=plant1", &dev)); /* zone is the zone: tag only */
	assert_true(matches("not release=1.1.0", &dev));
	assert_true(matches("release!=1.1.0 and release=1.2.0", &dev));
	assert_true(matches("cert_age>30d", &dev));
	assert_false(matches("cert_age<30d", &dev));
	assert_true(matches("cert_age>=40d and cert_age<=40d", &dev));
	/* precedence: and binds tighter than or; parentheses override */
	assert_true(matches("type=valve and tag=x or tag=plant1", &dev));
	assert_false(matches("type=valve and (tag=x or tag=plant1)", &dev));
	assert_true(matches("  ( ( type=sensor ) )  ", &dev));
	assert_true(matches("not not type=sensor", &dev));
	dev.cert_age_s = -1; /* no certificate: no age comparison holds */
	assert_false(matches("cert_age>0s", &dev));
	assert_false(matches("cert_age<1000d", &dev));
	dev.release = "";
	assert_true(matches("release!=1.2.0", &dev));
}

static void expect_reject(const char *where, const char *msg_part)
{
	struct moat_where w;
	struct moat_err err = {0};
	assert_int_equal(moat_where_parse(where, &w, &err), MOAT_EINVAL);
	if (!strstr(err.msg, msg_part)) {
		fail_msg("'%s': message '%s' lacks '%s'", where, err.msg, msg_part);
	}
	assert_int_equal(w.count, 0);
}

static void append(char *buf, size_t size, const char *s)
{
	size_t n = strlen(buf);
	snprintf(buf + n, size - n, "%s", s);
}

static void test_where_rejections(void **state)
{
	(void)state;
	expect_reject("", "attribute expected");
	expect_reject("   ", "attribute expected");
	expect_reject("colour=red", "unknown attribute");
	expect_reject("type", "operator expected");
	expect_reject("type==sensor", "value expected");
	expect_reject("type=", "value expected");
	expect_reject("type<sensor", "only cert_age");
	expect_reject("cert_age=3d", "cert_age is compared with");
	expect_reject("cert_age>3", "duration");
	expect_reject("cert_age>soon", "duration");
	expect_reject("type=sensor and", "attribute expected");
	expect_reject("type=sensor or or tag=x", "unknown attribute");
	expect_reject("type=sensor tag=x", "'and', 'or' or the end");
	expect_reject("(type=sensor", "')' expected");
	expect_reject("type=sensor)", "'and', 'or' or the end");
	expect_reject("type='sensor'", "value expected");
	expect_reject("type=sensor; DROP TABLE identities", "'and', 'or' or the end");
	expect_reject("TYPE=sensor", "unknown attribute");
	expect_reject("type=sensor AND tag=x", "'and', 'or' or the end");
	expect_reject("type=s\xc3\xa9nsor", "'and', 'or' or the end");
	char longval[MOAT_WHERE_VALUE_MAX_LEN + 8];
	memset(longval, 'a', sizeof(longval) - 1);
	longval[sizeof(longval) - 1] = '\0';
	char buf[MOAT_WHERE_VALUE_MAX_LEN + 32];
	snprintf(buf, sizeof(buf), "tag=%s", longval);
	expect_reject(buf, "value too long");
	/* nesting and size bounds */
	char deep[200] = "";
	for (int i = 0; i < MOAT_WHERE_MAX_DEPTH + 1; i++) {
		append(deep, sizeof(deep), "(");
	}
	append(deep, sizeof(deep), "tag=x");
	expect_reject(deep, "nested too deeply");
	char *many = malloc(MOAT_WHERE_MAX_LEN);
	assert_non_null(many);
	many[0] = '\0';
	for (int i = 0; i < MOAT_WHERE_MAX_NODES; i++) {
		append(many, MOAT_WHERE_MAX_LEN, i ? " or t" : "t");
		append(many, MOAT_WHERE_MAX_LEN, "ag=x");
	}
	expect_reject(many, "too many conditions");
	free(many);
	char *huge = malloc(MOAT_WHERE_MAX_LEN + 2);
	assert_non_null(huge);
	memset(huge, ' ', MOAT_WHERE_MAX_LEN + 1);
	huge[MOAT_WHERE_MAX_LEN + 1] = '\0';
	expect_reject(huge, "longer than");
	free(huge);
}

static void test_tags_and_names(void **state)
{
	(void)state;
	struct moat_err err = {0};
	assert_int_equal(moat_tag_check("plant1", &err), 0);
	assert_int_equal(moat_tag_check("zone:north-2.a_b", &err), 0);
	assert_int_equal(moat_tag_check("", &err), MOAT_EINVAL);
	assert_int_equal(moat_tag_check("Plant", &err), MOAT_EINVAL);
	assert_int_equal(moat_tag_check("a,b", &err), MOAT_EINVAL);
	assert_int_equal(moat_tag_check("-x", &err), MOAT_EINVAL);
	assert_int_equal(moat_tag_check("a b", &err), MOAT_EINVAL);
	char t[MOAT_TAG_MAX_LEN + 2];
	memset(t, 'a', sizeof(t) - 1);
	t[sizeof(t) - 1] = '\0';
	assert_int_equal(moat_tag_check(t, &err), MOAT_EINVAL);
	t[MOAT_TAG_MAX_LEN] = '\0';
	assert_int_equal(moat_tag_check(t, &err), 0);
	assert_int_equal(moat_group_name_check("plant1-sensors", &err), 0);
	assert_int_equal(moat_group_name_check("Plant", &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "group name"));
}

static void test_phases(void **state)
{
	(void)state;
	int pct[MOAT_ROLLOUT_PHASES_MAX];
	int n = 0;
	struct moat_err err = {0};
	char buf[64];
	assert_int_equal(moat_rollout_phases_parse("1%,10%,50%,100%", pct, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_int_equal(pct[0], 1);
	assert_int_equal(pct[3], 100);
	moat_rollout_phases_format(pct, n, buf, sizeof(buf));
	assert_string_equal(buf, "1%,10%,50%,100%");
	assert_int_equal(moat_rollout_phases_parse("100%", pct, &n, &err), 0);
	assert_int_equal(n, 1);
	const char *bad[] = {"",
			     "10",
			     "10%,",
			     "10%,5%,100%",
			     "10%,10%,100%",
			     "0%,100%",
			     "50%",
			     "101%",
			     "1%;100%",
			     "1% ,100%",
			     "-1%,100%",
			     "0100%",
			     "1%,2%,3%,4%,5%,6%,7%,8%,9%,10%,100%"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (moat_rollout_phases_parse(bad[i], pct, &n, &err) != MOAT_EINVAL) {
			fail_msg("accepted --phases '%s'", bad[i]);
		}
		assert_int_equal(n, 0);
	}
}

/* Cumulative shares: 1%,10%,50%,100% of 1000 devices take 10, 100, 500, 1000; of 4
 * devices 1, 1, 2, 4 (a phase may add nobody). */
static void test_phase_of(void **state)
{
	(void)state;
	const int pct[] = {1, 10, 50, 100};
	size_t per[4] = {0};
	for (size_t i = 0; i < 1000; i++) {
		per[moat_rollout_phase_of(i, 1000, pct, 4)]++;
	}
	assert_int_equal(per[0], 10);
	assert_int_equal(per[1], 90);
	assert_int_equal(per[2], 400);
	assert_int_equal(per[3], 500);
	assert_int_equal(moat_rollout_phase_of(0, 4, pct, 4), 0);
	assert_int_equal(moat_rollout_phase_of(1, 4, pct, 4), 2);
	assert_int_equal(moat_rollout_phase_of(2, 4, pct, 4), 3);
	assert_int_equal(moat_rollout_phase_of(3, 4, pct, 4), 3);
	/* monotonic: a later position is never in an earlier phase */
	for (size_t n = 1; n < 50; n++) {
		int last = 0;
		for (size_t i = 0; i < n; i++) {
			int k = moat_rollout_phase_of(i, n, pct, 4);
			assert_true(k >= last);
			last = k;
		}
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Stable for one key; different keys pick different first phases; spread over the group:
 * the first 10% of 1000 ranked devices come from all over the id range. */
static void test_rank_stable_and_spread(void **state)
{
	(void)state;
	uint8_t k1[MOAT_ROLLOUT_KEY_BYTES] = {1};
	uint8_t k2[MOAT_ROLLOUT_KEY_BYTES] = {2};
	assert_int_equal(moat_rollout_rank(k1, "dev-000001"), moat_rollout_rank(k1, "dev-000001"));
	assert_int_not_equal(moat_rollout_rank(k1, "dev-000001"),
			     moat_rollout_rank(k2, "dev-000001"));
	enum { N = 1000 };
	uint64_t *keyed = malloc(N * sizeof(uint64_t));
	assert_non_null(keyed);
	for (unsigned i = 0; i < N; i++) {
		char id[32];
		snprintf(id, sizeof(id), "dev-%06u", i);
		/* rank in the high bits, index in the low ones: sorting gives the order */
		keyed[i] = (moat_rollout_rank(k1, id) & ~(uint64_t)0x3ff) | i;
	}
	qsort(keyed, N, sizeof(uint64_t), cmp_u64);
	unsigned quarters[4] = {0};
	for (unsigned i = 0; i < N / 10; i++) {
		quarters[(keyed[i] & 0x3ff) * 4 / N]++;
	}
	for (int q = 0; q < 4; q++) {
		assert_true(quarters[q] >= 10); /* 25 expected; sequential choice would give 100/0
						 */
	}
	free(keyed);
}

static void test_dev_state(void **state)
{
	(void)state;
	assert_int_equal(moat_rollout_dev_state(NULL, false, 0, 100, 10, 105), MOAT_RD_OFFERED);
	assert_int_equal(moat_rollout_dev_state(NULL, false, 0, 100, 10, 110), MOAT_RD_SILENT);
	assert_int_equal(moat_rollout_dev_state(NULL, true, 0, 100, 10, 110), MOAT_RD_CONFIRMED);
	assert_int_equal(moat_rollout_dev_state("checked", false, 0, 100, 10, 101),
			 MOAT_RD_DOWNLOADING);
	assert_int_equal(moat_rollout_dev_state("downloading", false, 0, 100, 10, 101),
			 MOAT_RD_DOWNLOADING);
	assert_int_equal(moat_rollout_dev_state("verified", false, 0, 100, 10, 101),
			 MOAT_RD_INSTALLED);
	assert_int_equal(moat_rollout_dev_state("installed", false, 0, 100, 10, 101),
			 MOAT_RD_INSTALLED);
	/* its outcome unheard, but a later event says what it runs: the release (confirmed),
	 * another version (reverted); running the release with no later event (an "installed"
	 * that already said so, or an old report) is still the trial */
	assert_int_equal(moat_rollout_dev_state("installed", true, 1, 100, 10, 101),
			 MOAT_RD_CONFIRMED);
	assert_int_equal(moat_rollout_dev_state("verified", true, 1, 100, 10, 101),
			 MOAT_RD_CONFIRMED);
	assert_int_equal(moat_rollout_dev_state("installed", false, -1, 100, 10, 101),
			 MOAT_RD_REVERTED);
	assert_int_equal(moat_rollout_dev_state("installed", true, 0, 100, 10, 101),
			 MOAT_RD_INSTALLED);
	/* later reports count only after an install */
	assert_int_equal(moat_rollout_dev_state("reverted", false, 1, 100, 10, 101),
			 MOAT_RD_REVERTED);
	assert_int_equal(moat_rollout_dev_state("confirmed", true, 0, 100, 10, 101),
			 MOAT_RD_CONFIRMED);
	assert_int_equal(moat_rollout_dev_state("checked", true, 0, 100, 10, 101),
			 MOAT_RD_CONFIRMED);
	assert_int_equal(moat_rollout_dev_state("reverted", false, 0, 100, 10, 101),
			 MOAT_RD_REVERTED);
	assert_int_equal(moat_rollout_dev_state("refused", false, 0, 100, 10, 101),
			 MOAT_RD_REFUSED);
	assert_string_equal(moat_rollout_dev_state_name(MOAT_RD_SILENT), "silent");
	enum moat_rollout_state s;
	assert_int_equal(moat_rollout_state_parse("halted", &s), 0);
	assert_int_equal(s, MOAT_ROLLOUT_HALTED);
	assert_int_equal(moat_rollout_state_parse("HALTED", &s), MOAT_EINVAL);
	assert_string_equal(moat_rollout_state_name(MOAT_ROLLOUT_COMPLETED), "completed");
}

static void test_decide(void **state)
{
	(void)state;
	struct moat_rollout_phase_counts ph[3];
	memset(ph, 0, sizeof(ph));
	struct moat_rollout_view v = {
		.phase = 0,
		.phase_count = 3,
		.phase_started_at = 1000,
		.soak_s = 60,
		.halt_failure_pct = 5,
		.halt_on_events = true,
		.phases = ph,
	};
	ph[0].devices = 20;
	ph[0].by_state[MOAT_RD_CONFIRMED] = 19;
	ph[0].by_state[MOAT_RD_DOWNLOADING] = 1;
	assert_int_equal(moat_rollout_decide(&v, 2000), MOAT_ROLLOUT_WAIT); /* one not done */
	ph[0].by_state[MOAT_RD_DOWNLOADING] = 0;
	ph[0].by_state[MOAT_RD_CONFIRMED] = 20;
	assert_int_equal(moat_rollout_decide(&v, 1059), MOAT_ROLLOUT_WAIT); /* soaking */
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_ADVANCE);
	/* exactly the threshold (1 of 20 = 5%) does not halt, more does */
	ph[0].by_state[MOAT_RD_CONFIRMED] = 19;
	ph[0].by_state[MOAT_RD_REVERTED] = 1;
	assert_int_equal(moat_rollout_decide(&v, 1059), MOAT_ROLLOUT_WAIT);
	/* a failure within the threshold is settled: it does not block the next phase */
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_ADVANCE);
	ph[0].by_state[MOAT_RD_CONFIRMED] = 18;
	ph[0].by_state[MOAT_RD_REFUSED] = 1;
	assert_int_equal(moat_rollout_decide(&v, 1000), MOAT_ROLLOUT_HALT_FAILURES);
	/* resumed with both failures accepted: settled, not counted again; one new failure
	 * (1 of 20 = 5%) is within the threshold, a second one halts again */
	ph[0].accepted = 2;
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_ADVANCE);
	ph[0].by_state[MOAT_RD_CONFIRMED] = 17;
	ph[0].by_state[MOAT_RD_SILENT] = 1;
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_ADVANCE);
	ph[0].by_state[MOAT_RD_CONFIRMED] = 16;
	ph[0].by_state[MOAT_RD_REVERTED] = 2;
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_HALT_FAILURES);
	ph[0].accepted = 0;
	ph[0].by_state[MOAT_RD_CONFIRMED] = 18;
	ph[0].by_state[MOAT_RD_REVERTED] = 1;
	ph[0].by_state[MOAT_RD_SILENT] = 0;
	v.halt_failure_pct = -1; /* no threshold: failures never halt */
	assert_int_equal(moat_rollout_decide(&v, 5000), MOAT_ROLLOUT_ADVANCE);
	ph[0].by_state[MOAT_RD_CONFIRMED] = 17;
	ph[0].by_state[MOAT_RD_OFFERED] = 1; /* one not heard of yet blocks */
	assert_int_equal(moat_rollout_decide(&v, 5000), MOAT_ROLLOUT_WAIT);
	ph[0].by_state[MOAT_RD_OFFERED] = 0;
	ph[0].by_state[MOAT_RD_SILENT] = 1; /* a silent one is settled: it does not block */
	assert_int_equal(moat_rollout_decide(&v, 5000), MOAT_ROLLOUT_ADVANCE);
	ph[0].by_state[MOAT_RD_SILENT] = 0;
	ph[0].by_state[MOAT_RD_CONFIRMED] = 18;
	/* an earlier phase's failures count too */
	v.halt_failure_pct = 0;
	v.phase = 1;
	ph[1].devices = 5;
	ph[1].by_state[MOAT_RD_CONFIRMED] = 5;
	assert_int_equal(moat_rollout_decide(&v, 5000), MOAT_ROLLOUT_HALT_FAILURES);
	/* last phase, all confirmed: complete; a phase that took nobody does not block */
	v.halt_failure_pct = 5;
	memset(ph, 0, sizeof(ph));
	ph[0].devices = 1;
	ph[0].by_state[MOAT_RD_CONFIRMED] = 1;
	v.phase = 2;
	ph[2].devices = 3;
	ph[2].by_state[MOAT_RD_CONFIRMED] = 3;
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_COMPLETE);
	/* security: the new release's devices signal more than the others */
	v.new_signalled = 1;
	v.new_total = 4;
	v.old_signalled = 0;
	v.old_total = 10;
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_HALT_SECURITY);
	v.old_signalled = 3; /* 1/4 < 3/10: the old ones are as noisy */
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_COMPLETE);
	v.old_signalled = 0;
	v.old_total = 0; /* nobody left on the old release: any signal halts */
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_HALT_SECURITY);
	v.halt_on_events = false;
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_COMPLETE);
}

/* A silent device is settled (the phase does not wait for it for ever) but counts toward
 * the failure threshold, like a timed-out device in Mender or AWS IoT Jobs. */
static void test_silent(void **state)
{
	(void)state;
	/* silent after silent_s, whatever the soak: bounded by its own duration */
	assert_int_equal(moat_rollout_dev_state(NULL, false, 0, 100, 3600, 3699), MOAT_RD_OFFERED);
	assert_int_equal(moat_rollout_dev_state(NULL, false, 0, 100, 3600, 3700), MOAT_RD_SILENT);
	/* any report, or running it, and it is not silent */
	assert_int_equal(moat_rollout_dev_state("checked", false, 0, 100, 3600, 99999),
			 MOAT_RD_DOWNLOADING);
	assert_int_equal(moat_rollout_dev_state(NULL, true, 0, 100, 3600, 99999),
			 MOAT_RD_CONFIRMED);
	struct moat_rollout_phase_counts ph[2];
	memset(ph, 0, sizeof(ph));
	struct moat_rollout_view v = {
		.phase = 0,
		.phase_count = 2,
		.phase_started_at = 1000,
		.soak_s = 60,
		.halt_failure_pct = 10,
		.phases = ph,
	};
	ph[0].devices = 10;
	ph[0].by_state[MOAT_RD_CONFIRMED] = 9;
	ph[0].by_state[MOAT_RD_SILENT] = 1; /* 10%: within the threshold, settled */
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_ADVANCE);
	ph[0].by_state[MOAT_RD_CONFIRMED] = 8;
	ph[0].by_state[MOAT_RD_SILENT] = 2; /* 20%: halts */
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_HALT_FAILURES);
	ph[0].by_state[MOAT_RD_SILENT] = 1; /* silent + reverted add up */
	ph[0].by_state[MOAT_RD_REVERTED] = 1;
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_HALT_FAILURES);
	v.halt_failure_pct = -1; /* no threshold: silent devices never halt, nor block */
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_ADVANCE);
	v.phase = 1; /* the last phase completes with its silent devices */
	ph[1].devices = 3;
	ph[1].by_state[MOAT_RD_SILENT] = 3;
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_COMPLETE);
	v.halt_failure_pct = 0; /* the default: any silent device halts */
	ph[0].by_state[MOAT_RD_CONFIRMED] = 10;
	ph[0].by_state[MOAT_RD_SILENT] = 0;
	ph[0].by_state[MOAT_RD_REVERTED] = 0;
	assert_int_equal(moat_rollout_decide(&v, 1060), MOAT_ROLLOUT_HALT_FAILURES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_where_match),
		cmocka_unit_test(test_where_rejections),
		cmocka_unit_test(test_tags_and_names),
		cmocka_unit_test(test_phases),
		cmocka_unit_test(test_phase_of),
		cmocka_unit_test(test_rank_stable_and_spread),
		cmocka_unit_test(test_dev_state),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_silent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
