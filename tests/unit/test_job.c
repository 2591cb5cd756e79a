/* test_job.c: the pure rules of jobs (src/core/job.c): what a device's response status
 * means, result names, --rate (every rejection) and the exit status of a run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "moat/job.h"

static void test_result_of_status(void **state)
{
	(void)state;
	assert_int_equal(moat_job_result_of_status("accepted"), MOAT_JOB_DONE);
	assert_int_equal(moat_job_result_of_status("completed"), MOAT_JOB_DONE);
	assert_int_equal(moat_job_result_of_status("unknown_command"), MOAT_JOB_UNKNOWN_COMMAND);
	assert_int_equal(moat_job_result_of_status("refused"), MOAT_JOB_REFUSED);
	assert_int_equal(moat_job_result_of_status("bad_request"), MOAT_JOB_REFUSED);
	assert_int_equal(moat_job_result_of_status("failed"), MOAT_JOB_REFUSED);
	assert_int_equal(moat_job_result_of_status("whatever"), MOAT_JOB_REFUSED);
	assert_int_equal(moat_job_result_of_status(""), MOAT_JOB_REFUSED);
	for (int i = 0; i < MOAT_JOB_RESULT_COUNT; i++) {
		enum moat_job_result r;
		assert_int_equal(moat_job_result_parse(moat_job_result_name(i), &r), 0);
		assert_int_equal(r, i);
	}
	enum moat_job_result r;
	assert_int_equal(moat_job_result_parse("Done", &r), MOAT_EINVAL);
}

static void test_rate(void **state)
{
	(void)state;
	int64_t us = 0;
	struct moat_err err = {0};
	assert_int_equal(moat_job_rate_parse("50/s", &us, &err), 0);
	assert_int_equal(us, 20000);
	assert_int_equal(moat_job_rate_parse("1/s", &us, &err), 0);
	assert_int_equal(us, 1000000);
	assert_int_equal(moat_job_rate_parse("600/m", &us, &err), 0);
	assert_int_equal(us, 100000);
	assert_int_equal(moat_job_rate_parse("10000/s", &us, &err), 0);
	assert_int_equal(us, 100);
	const char *bad[] = {
		"",	"50",	"/s",	"50/",	"50/h",	   "50/sec", "0/s",
		"-1/s", "+1/s", " 1/s", "1 /s", "10001/s", "1e3/s",  "99999999999999999999/s",
		"5/s/s"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (moat_job_rate_parse(bad[i], &us, &err) != MOAT_EINVAL) {
			fail_msg("accepted --rate '%s'", bad[i]);
		}
		assert_non_null(strstr(err.msg, "--rate"));
		assert_int_equal(us, 0);
	}
}

static void test_exit_status(void **state)
{
	(void)state;
	size_t c[MOAT_JOB_RESULT_COUNT] = {0};
	c[MOAT_JOB_DONE] = 5;
	assert_int_equal(moat_job_exit_status(c), 0);
	c[MOAT_JOB_TIMEOUT] = 1;
	assert_int_equal(moat_job_exit_status(c), 2);
	c[MOAT_JOB_OFFLINE] = 1;
	assert_int_equal(moat_job_exit_status(c), 1);
	memset(c, 0, sizeof(c));
	c[MOAT_JOB_PENDING] = 1;
	assert_int_equal(moat_job_exit_status(c), 2);
	memset(c, 0, sizeof(c));
	c[MOAT_JOB_UNKNOWN_COMMAND] = 1;
	assert_int_equal(moat_job_exit_status(c), 1);
	memset(c, 0, sizeof(c));
	c[MOAT_JOB_REFUSED] = 1;
	assert_int_equal(moat_job_exit_status(c), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_result_of_status),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_exit_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
