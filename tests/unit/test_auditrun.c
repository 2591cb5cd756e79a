/* test_auditrun.c: run/audit-runs, the live audit's declared runs (src/core/auditrun.c):
 * parsing, every rejection, matching by address and window, and put/format round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "moat/auditrun.h"

static int parse(const char *text, struct moat_audit_runs *out)
{
	struct moat_err err = {0};
	return moat_audit_runs_parse(text, strlen(text), out, &err);
}

static void test_parse(void **state)
{
	(void)state;
	struct moat_audit_runs r;
	assert_int_equal(parse("", &r), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(parse("run=0a1b2c3d address=127.0.0.1 from_ms=1000 until_ms=2000\n"
			       "run=ffffffff address=::1 from_ms=5 until_ms=5\n",
			       &r),
			 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.r[0].run, "0a1b2c3d");
	assert_string_equal(r.r[0].address, "127.0.0.1");
	assert_int_equal(r.r[0].from_ms, 1000);
	assert_int_equal(r.r[0].until_ms, 2000);
	assert_string_equal(r.r[1].address, "::1");
}

static void test_parse_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"run=0a1b2c3d address=127.0.0.1 from_ms=1000 until_ms=2000",	/* no newline */
		"run=0A1B2C3D address=127.0.0.1 from_ms=1000 until_ms=2000\n",	/* upper case */
		"run=0a1b2c3 address=127.0.0.1 from_ms=1000 until_ms=2000\n",	/* 7 digits */
		"run=0a1b2c3dd address=127.0.0.1 from_ms=1000 until_ms=2000\n", /* 9 digits */
		"run=0a1b2c3d address=localhost from_ms=1000 until_ms=2000\n",	/* a name */
		"run=0a1b2c3d address=127.0.0.256 from_ms=1000 until_ms=2000\n",
		"run=0a1b2c3d address=127.0.0.1 from_ms=2000 until_ms=1000\n", /* reversed */
		"run=0a1b2c3d address=127.0.0.1 from_ms=-1 until_ms=1000\n",
		"run=0a1b2c3d address=127.0.0.1 from_ms=1x until_ms=1000\n",
		"run=0a1b2c3d address=127.0.0.1 from_ms=1 until_ms=99999999999999999\n",
		"run=0a1b2c3d address=127.0.0.1 until_ms=2000 from_ms=1000\n", /* order */
		"run=0a1b2c3d address=127.0.0.1 from_ms=1000\n",	       /* missing */
		"run=0a1b2c3d address=127.0.0.1 from_ms=1000 until_ms=2000 x=1\n",
		"run=0a1b2c3d  address=127.0.0.1 from_ms=1000 until_ms=2000\n", /* two spaces */
		"run=0a1b2c3d address=127.0.0.1 from_ms= until_ms=2000\n",
		"\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct moat_audit_runs r;
		struct moat_err err = {0};
		if (moat_audit_runs_parse(bad[i], strlen(bad[i]), &r, &err) == 0) {
			fail_msg("accepted: %s", bad[i]);
		}
		assert_int_equal(err.code, MOAT_EINVAL);
		assert_int_equal(r.n, 0);
		assert_non_null(strstr(err.msg, MOAT_AUDIT_RUNS_FILE));
	}
	/* more lines than MOAT_AUDIT_RUNS_MAX, and more bytes than the bound */
	char many[MOAT_AUDIT_RUNS_MAX_BYTES * 2];
	size_t len = 0;
	for (int i = 0; i <= MOAT_AUDIT_RUNS_MAX; i++) {
		len += (size_t)snprintf(many + len, sizeof(many) - len,
					"run=%08x address=::1 from_ms=1 until_ms=2\n", i);
	}
	struct moat_audit_runs r;
	struct moat_err err = {0};
	assert_int_equal(moat_audit_runs_parse(many, len, &r, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "more than"));
	memset(many, 'a', sizeof(many));
	assert_int_equal(moat_audit_runs_parse(many, MOAT_AUDIT_RUNS_MAX_BYTES + 1, &r, &err),
			 MOAT_EINVAL);
}

static void test_match(void **state)
{
	(void)state;
	struct moat_audit_runs r;
	assert_int_equal(parse("run=00000001 address=127.0.0.1 from_ms=1000 until_ms=2000\n"
			       "run=00000002 address=127.0.0.1 from_ms=1500 until_ms=3000\n"
			       "run=00000003 address=10.0.0.5 from_ms=1000 until_ms=9000\n",
			       &r),
			 0);
	assert_null(moat_audit_runs_match(&r, "127.0.0.1", 999)); /* before */
	assert_string_equal(moat_audit_runs_match(&r, "127.0.0.1", 1000)->run, "00000001");
	assert_string_equal(moat_audit_runs_match(&r, "127.0.0.1", 1600)->run, "00000002");
	assert_string_equal(
		moat_audit_runs_match(&r, "127.0.0.1", 3000 + MOAT_AUDIT_RUN_GRACE_MS)->run,
		"00000002");
	assert_null(moat_audit_runs_match(&r, "127.0.0.1", 3001 + MOAT_AUDIT_RUN_GRACE_MS));
	assert_null(moat_audit_runs_match(&r, "127.0.0.2", 1600)); /* another address */
	assert_string_equal(moat_audit_runs_match(&r, "10.0.0.5", 5000)->run, "00000003");
	assert_null(moat_audit_runs_match(&r, "", 1600));
	assert_null(moat_audit_runs_match(&r, NULL, 1600));
}

static void test_put_format(void **state)
{
	(void)state;
	struct moat_audit_runs r;
	struct moat_err err = {0};
	memset(&r, 0, sizeof(r));
	struct moat_audit_run one = {.run = "0000abcd",
				     .address = "::1",
				     .from_ms = 1,
				     .until_ms = 600001};
	assert_int_equal(moat_audit_runs_put(&r, &one, &err), 0);
	one.until_ms = 42;
	assert_int_equal(moat_audit_runs_put(&r, &one, &err), 0); /* the same run: replaced */
	assert_int_equal(r.n, 1);
	assert_int_equal(r.r[0].until_ms, 42);
	for (int i = 0; i < MOAT_AUDIT_RUNS_MAX; i++) {
		struct moat_audit_run x = {.address = "192.168.1.1", .from_ms = i, .until_ms = i};
		snprintf(x.run, sizeof(x.run), "%08x", 0x10000 + i);
		assert_int_equal(moat_audit_runs_put(&r, &x, &err), 0);
	}
	assert_int_equal(r.n, MOAT_AUDIT_RUNS_MAX); /* the oldest dropped */
	assert_string_equal(r.r[0].run, "00010000");
	char text[MOAT_AUDIT_RUNS_MAX_BYTES + 1];
	size_t len = moat_audit_runs_format(&r, text, sizeof(text));
	struct moat_audit_runs back;
	assert_int_equal(moat_audit_runs_parse(text, len, &back, &err), 0);
	assert_int_equal(back.n, r.n);
	assert_memory_equal(&back, &r, sizeof(r));
	struct moat_audit_run bad = {.run = "nothex!!", .address = "::1"};
	assert_int_equal(moat_audit_runs_put(&r, &bad, &err), MOAT_EINVAL);
	/* the longest lines still fit the bound */
	memset(&r, 0, sizeof(r));
	for (int i = 0; i < MOAT_AUDIT_RUNS_MAX; i++) {
		struct moat_audit_run x = {.address =
						   "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
					   .from_ms = INT64_C(1) << 53,
					   .until_ms = INT64_C(1) << 53};
		snprintf(x.run, sizeof(x.run), "%08x", i);
		assert_int_equal(moat_audit_runs_put(&r, &x, &err), 0);
	}
	len = moat_audit_runs_format(&r, text, sizeof(text));
	assert_true(len <= MOAT_AUDIT_RUNS_MAX_BYTES);
	assert_int_equal(moat_audit_runs_parse(text, len, &back, &err), 0);
	assert_int_equal(back.n, MOAT_AUDIT_RUNS_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_put_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
