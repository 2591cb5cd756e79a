/* test_publish.c: the payload rule for publishes and last wills (src/core/publish.c).
 *
 * One table: topic, payload, retain, and the reason word expected (NULL: delivered). Every
 * refusal has a row, and so does the neighbour that passes, so a rule that refuses too much
 * fails as well as one that refuses too little.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "moat/publish.h"
#include "moat/topic.h"

#define CAP 256u

struct row {
	const char *topic;
	const char *payload;
	bool retain;
	const char *want;
};

static const struct row rows[] = {
	/* telemetry: a JSON object; device_id, when present, is the sender */
	{"devices/dev-a/telemetry", "{\"seq\":1}", false, NULL},
	{"devices/dev-a/telemetry", "{\"device_id\":\"dev-a\",\"seq\":1}", true, NULL},
	{"devices/dev-a/telemetry", "{\"device_id\":\"dev-b\"}", false, "device_id_mismatch"},
	{"devices/dev-a/telemetry", "{\"device_id\":7}", false, "device_id_mismatch"},
	{"devices/dev-a/telemetry", "{\"device_id\":\"dev-a\",\"device_id\":\"dev-b\"}", false,
	 "not_json"},
	{"devices/dev-a/telemetry", "not json", false, "not_json"},
	{"devices/dev-a/telemetry", "[1,2]", false, "not_object"},
	{"devices/dev-a/telemetry", "", false, "empty"},
	{"devices/dev-a/telemetry", "", true, "empty"},
	/* responses: the same */
	{"devices/dev-a/command_responses", "{\"device_id\":\"dev-a\"}", false, NULL},
	{"devices/dev-a/command_responses", "{\"device_id\":\"dev-b\"}", false,
	 "device_id_mismatch"},
	/* status: a status message of the sender; empty only to clear a retained one */
	{"devices/dev-a/status", "{\"device_id\":\"dev-a\",\"status\":\"offline\"}", true, NULL},
	{"devices/dev-a/status", "{\"device_id\":\"dev-a\",\"status\":\"online\"}", false, NULL},
	{"devices/dev-a/status", "{\"device_id\":\"dev-b\",\"status\":\"offline\"}", true,
	 "device_id_mismatch"},
	{"devices/dev-a/status", "{\"device_id\":\"dev-a\",\"status\":\"hacked\"}", true,
	 "bad_status"},
	{"devices/dev-a/status", "{\"device_id\":\"dev-a\"}", true, "bad_status"},
	{"devices/dev-a/status", "{\"status\":\"online\"}", true, "bad_status"},
	{"devices/dev-a/status", "offline", true, "not_json"},
	{"devices/dev-a/status", "", true, NULL},
	{"devices/dev-a/status", "", false, "empty"},
	/* other topics: any bytes within the cap */
	{"devices/dev-a/diagnostics", "uptime 12s", false, NULL},
	{"devices/dev-b/commands/reboot", "x", false, NULL},
	{"somewhere/else", "", false, NULL},
};

static const char *check(const char *topic, const void *payload, size_t len, bool retain)
{
	const struct moat_publish m = {
		.sender = "dev-a",
		.topic = topic,
		.payload = payload,
		.len = len,
		.retain = retain,
	};
	return moat_publish_check(&m, CAP);
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		const char *got = check(r->topic, r->payload, strlen(r->payload), r->retain);
		if (!r->want) {
			if (got) {
				fail_msg("row %zu (%s %s): refused %s", i, r->topic, r->payload,
					 got);
			}
		} else if (!got || strcmp(got, r->want) != 0) {
			fail_msg("row %zu (%s %s): want %s, got %s", i, r->topic, r->payload,
				 r->want, got ? got : "delivered");
		}
	}
}

static void test_cap_on_every_topic(void **state)
{
	(void)state;
	char buf[CAP + 1];
	memset(buf, 'x', sizeof(buf));
	assert_null(check("devices/dev-a/diagnostics", buf, CAP, false));
	assert_string_equal(check("devices/dev-a/diagnostics", buf, CAP + 1, false), "too_large");
	assert_string_equal(check("devices/dev-a/status", buf, CAP + 1, true), "too_large");
	assert_null(check("devices/dev-a/status", NULL, 0, true));
}

/* moat_publish_check_kind gives moat_publish_check's result for the kind of the topic, and
 * follows the kind it is given (the plugin keeps the kind with the topic it granted). */
static void test_kind(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct moat_topic t;
		int kind = moat_topic_parse(r->topic, &t, NULL) == 0 ? (int)t.kind
								     : MOAT_PUBLISH_NOT_MOAT_TOPIC;
		const struct moat_publish m = {.sender = "dev-a",
					       .topic = r->topic,
					       .payload = r->payload,
					       .len = strlen(r->payload),
					       .retain = r->retain};
		const char *a = moat_publish_check(&m, CAP);
		const char *b = moat_publish_check_kind(&m, kind, CAP);
		if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0)) {
			fail_msg("row %zu (%s): %s against %s", i, r->topic, a ? a : "delivered",
				 b ? b : "delivered");
		}
	}
	const struct moat_publish bad = {.sender = "dev-a",
					 .topic = "devices/dev-a/telemetry",
					 .payload = "x",
					 .len = 1};
	assert_null(moat_publish_check_kind(&bad, MOAT_PUBLISH_NOT_MOAT_TOPIC, CAP));
	assert_null(moat_publish_check_kind(&bad, MOAT_TOPIC_DIAGNOSTICS, CAP));
	assert_string_equal(moat_publish_check_kind(&bad, MOAT_TOPIC_TELEMETRY, CAP), "not_json");
	assert_string_equal(moat_publish_check_kind(&bad, MOAT_PUBLISH_NOT_MOAT_TOPIC, 0),
			    "too_large");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_cap_on_every_topic),
		cmocka_unit_test(test_kind),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
