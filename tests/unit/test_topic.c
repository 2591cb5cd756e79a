/* test_topic.c: the topic scheme and the ACL decision (src/core/topic.c).
 *
 * The decision is tested with tables: each row is one (role, identity, access, topic)
 * and the expected outcome with its reason, so a refusal that happens for the wrong
 * reason fails too. The rows cover the flaws of the tutorial's ACL ("pattern read #",
 * devices reading each other) and the subscription rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "moat/topic.h"

#define D MOAT_ROLE_DEVICE
#define S MOAT_ROLE_SERVICE
#define O MOAT_ROLE_OPERATOR
#define R MOAT_ACCESS_READ
#define W MOAT_ACCESS_WRITE
#define SUB MOAT_ACCESS_SUBSCRIBE

struct row {
	enum moat_role role;
	const char *identity;
	enum moat_access access;
	const char *topic;
	enum moat_acl_reason want;
};

static const struct moat_acl_policy strict = {.operator_write_commands = false};
static const struct moat_acl_policy lenient = {.operator_write_commands = true};

static void run_rows(const struct row *rows, size_t count, const struct moat_acl_policy *pol)
{
	for (size_t i = 0; i < count; i++) {
		const struct row *r = &rows[i];
		enum moat_acl_reason got = (enum moat_acl_reason)99;
		bool ok = moat_acl_decide(r->role, r->identity, r->access, r->topic, pol, &got);

		if (got != r->want || ok != (r->want == MOAT_ACL_OK)) {
			fail_msg("row %zu: role=%d id=%s access=%d topic=%s: want %s, got %s (%d)",
				 i, (int)r->role, r->identity ? r->identity : "(null)",
				 (int)r->access, r->topic ? r->topic : "(null)",
				 moat_acl_reason_name(r->want), moat_acl_reason_name(got), ok);
		}
		/* the reason pointer is optional and must not change the answer */
		assert_int_equal(moat_acl_decide(r->role, r->identity, r->access, r->topic, pol,
						 NULL),
				 ok);
	}
}

#define RUN(rows, pol) run_rows(rows, sizeof(rows) / sizeof(rows[0]), pol)

static const struct row device_rows[] = {
	/* its own output */
	{D, "d1", W, "devices/d1/telemetry", MOAT_ACL_OK},
	{D, "d1", W, "devices/d1/status", MOAT_ACL_OK},
	{D, "d1", W, "devices/d1/diagnostics", MOAT_ACL_OK},
	{D, "d1", W, "devices/d1/command_responses", MOAT_ACL_OK},
	/* its own commands */
	{D, "d1", R, "devices/d1/commands/reboot", MOAT_ACL_OK},
	{D, "d1", R, "devices/d1/commands/update_interval", MOAT_ACL_OK},
	{D, "d1", SUB, "devices/d1/commands/#", MOAT_ACL_OK},
	{D, "d1", SUB, "devices/d1/commands/+", MOAT_ACL_OK},
	{D, "d1", SUB, "devices/d1/commands/reboot", MOAT_ACL_OK},
	{D, "d1", SUB, "devices/d1/commands/reboot/#", MOAT_ACL_OK},
	{D, "d1", SUB, "devices/d1/+/reboot", MOAT_ACL_OK},
	{D, "d1", SUB, "devices/d1/+/+", MOAT_ACL_OK},
	/* another device's topics */
	{D, "d1", W, "devices/d2/telemetry", MOAT_ACL_NOT_GRANTED},
	{D, "d1", W, "devices/d2/status", MOAT_ACL_NOT_GRANTED},
	{D, "d1", R, "devices/d2/telemetry", MOAT_ACL_NOT_GRANTED},
	{D, "d1", R, "devices/d2/commands/reboot", MOAT_ACL_NOT_GRANTED},
	{D, "d1", W, "devices/d2/commands/reboot", MOAT_ACL_NOT_GRANTED},
	{D, "d1", SUB, "devices/d2/commands/#", MOAT_ACL_NOT_GRANTED},
	{D, "d1", SUB, "devices/d2/telemetry", MOAT_ACL_NOT_GRANTED},
	/* prefixes and extensions of its own id are other ids */
	{D, "d1", R, "devices/d10/commands/reboot", MOAT_ACL_NOT_GRANTED},
	{D, "d10", R, "devices/d1/commands/reboot", MOAT_ACL_NOT_GRANTED},
	{D, "d1", W, "devices/d1x/telemetry", MOAT_ACL_NOT_GRANTED},
	/* wildcards that reach other devices or other kinds */
	{D, "d1", SUB, "#", MOAT_ACL_NOT_GRANTED},
	{D, "d1", SUB, "+/#", MOAT_ACL_NOT_GRANTED},
	{D, "d1", SUB, "devices/#", MOAT_ACL_NOT_GRANTED},
	{D, "d1", SUB, "devices/+/telemetry", MOAT_ACL_NOT_GRANTED},
	{D, "d1", SUB, "devices/+/commands/#", MOAT_ACL_NOT_GRANTED},
	{D, "d1", SUB, "devices/+/commands/reboot", MOAT_ACL_NOT_GRANTED},
	{D, "d1", SUB, "devices/d1/#", MOAT_ACL_NOT_GRANTED},
	{D, "d1", SUB, "devices/d1/+", MOAT_ACL_NOT_GRANTED},
	{D, "d1", SUB, "+/d1/commands/#", MOAT_ACL_OK},
	{D, "d1", SUB, "+/+/commands/#", MOAT_ACL_NOT_GRANTED},
	{D, "d1", SUB, "moat/events/#", MOAT_ACL_NOT_GRANTED},
	{D, "d1", SUB, "moat/#", MOAT_ACL_NOT_GRANTED},
	/* its own output is not for it to read */
	{D, "d1", R, "devices/d1/telemetry", MOAT_ACL_NOT_GRANTED},
	{D, "d1", R, "devices/d1/status", MOAT_ACL_NOT_GRANTED},
	{D, "d1", SUB, "devices/d1/telemetry", MOAT_ACL_NOT_GRANTED},
	/* nor its commands for it to write */
	{D, "d1", W, "devices/d1/commands/reboot", MOAT_ACL_NOT_GRANTED},
	/* events: nobody writes them, devices do not read them */
	{D, "d1", W, "moat/events/revoked", MOAT_ACL_NOT_GRANTED},
	{D, "d1", R, "moat/events/revoked", MOAT_ACL_NOT_GRANTED},
	/* '$' topics */
	{D, "d1", SUB, "$SYS/#", MOAT_ACL_DOLLAR},
	{D, "d1", R, "$SYS/broker/clients/connected", MOAT_ACL_DOLLAR},
	{D, "d1", W, "$share/g/devices/d1/telemetry", MOAT_ACL_DOLLAR},
	{D, "d1", SUB, "$share/g/devices/d1/commands/#", MOAT_ACL_DOLLAR},
	/* outside the scheme */
	{D, "d1", W, "foo", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", SUB, "foo/#", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", W, "devices/d1", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", W, "devices/d1/telemetry/x", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", W, "devices/d1/telemetry/", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", W, "/devices/d1/telemetry", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", W, "devices//telemetry", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", W, "Devices/d1/telemetry", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", W, "devices/d1/Telemetry", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", W, "devices/D1/telemetry", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", R, "devices/d1/commands", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", R, "devices/d1/commands/", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", R, "devices/d1/commands/a/b", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", R, "devices/d1/commands/Reboot", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", SUB, "devices/d1/commands", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", SUB, "devices/d1/commands/+/+", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", SUB, "a/b/c/d/e/f/g/#", MOAT_ACL_OUTSIDE_SCHEME},
	{D, "d1", SUB, "+/+/+/+/+/+", MOAT_ACL_OUTSIDE_SCHEME},
	/* wildcards in a publish or delivery topic, bad filters */
	{D, "d1", W, "devices/d1/#", MOAT_ACL_BAD_TOPIC},
	{D, "d1", W, "devices/+/telemetry", MOAT_ACL_BAD_TOPIC},
	{D, "d1", R, "devices/d1/commands/#", MOAT_ACL_BAD_TOPIC},
	{D, "d1", W, "devices/d1/tele+metry", MOAT_ACL_BAD_TOPIC},
	{D, "d1", SUB, "devices/d1/commands/#/x", MOAT_ACL_BAD_TOPIC},
	{D, "d1", SUB, "devices/d1/commands/re#", MOAT_ACL_BAD_TOPIC},
	{D, "d1", SUB, "devices/d1/commands/reboot+", MOAT_ACL_BAD_TOPIC},
	{D, "d1", SUB, "", MOAT_ACL_BAD_TOPIC},
	{D, "d1", W, "", MOAT_ACL_BAD_TOPIC},
	/* invalid identities and arguments */
	{D, "", W, "devices//telemetry", MOAT_ACL_BAD_INPUT},
	{D, NULL, W, "devices/d1/telemetry", MOAT_ACL_BAD_INPUT},
	{D, "d1", W, NULL, MOAT_ACL_BAD_INPUT},
	{D, "D1", W, "devices/D1/telemetry", MOAT_ACL_BAD_INPUT},
	{D, "d/1", W, "devices/d/1/telemetry", MOAT_ACL_BAD_INPUT},
	{D, "+", R, "devices/+/commands/x", MOAT_ACL_BAD_INPUT},
	{D, "#", SUB, "devices/#", MOAT_ACL_BAD_INPUT},
	{D, "d 1", W, "devices/d 1/telemetry", MOAT_ACL_BAD_INPUT},
	{D, "-d1", W, "devices/-d1/telemetry", MOAT_ACL_BAD_INPUT},
	{D, "d1", (enum moat_access)0, "devices/d1/telemetry", MOAT_ACL_BAD_INPUT},
	{D, "d1", (enum moat_access)3, "devices/d1/telemetry", MOAT_ACL_BAD_INPUT},
	{D, "d1", (enum moat_access)8, "devices/d1/telemetry", MOAT_ACL_BAD_INPUT},
	{(enum moat_role)3, "d1", W, "devices/d1/telemetry", MOAT_ACL_BAD_INPUT},
	{(enum moat_role) - 1, "d1", W, "devices/d1/telemetry", MOAT_ACL_BAD_INPUT},
};

static const struct row service_rows[] = {
	{S, "svc", R, "devices/d1/telemetry", MOAT_ACL_OK},
	{S, "svc", R, "devices/d2/status", MOAT_ACL_OK},
	{S, "svc", R, "devices/d1/diagnostics", MOAT_ACL_OK},
	{S, "svc", R, "devices/d1/command_responses", MOAT_ACL_OK},
	{S, "svc", R, "moat/events/revoked", MOAT_ACL_OK},
	{S, "svc", SUB, "devices/+/telemetry", MOAT_ACL_OK},
	{S, "svc", SUB, "devices/+/status", MOAT_ACL_OK},
	{S, "svc", SUB, "devices/+/+", MOAT_ACL_OK},
	{S, "svc", SUB, "devices/d1/+", MOAT_ACL_OK},
	{S, "svc", SUB, "moat/events/#", MOAT_ACL_OK},
	{S, "svc", SUB, "moat/#", MOAT_ACL_OK},
	{S, "svc", SUB, "moat/events/+", MOAT_ACL_OK},
	{S, "svc", SUB, "+/+/+", MOAT_ACL_OK},
	{S, "svc", W, "devices/d1/commands/reboot", MOAT_ACL_OK},
	{S, "svc", W, "devices/d2/commands/check_update", MOAT_ACL_OK},
	/* services do not read commands (other services' orders to devices) */
	{S, "svc", R, "devices/d1/commands/reboot", MOAT_ACL_NOT_GRANTED},
	{S, "svc", SUB, "devices/#", MOAT_ACL_NOT_GRANTED},
	{S, "svc", SUB, "devices/d1/#", MOAT_ACL_NOT_GRANTED},
	{S, "svc", SUB, "devices/+/commands/#", MOAT_ACL_NOT_GRANTED},
	{S, "svc", SUB, "#", MOAT_ACL_NOT_GRANTED},
	{S, "svc", SUB, "+/#", MOAT_ACL_NOT_GRANTED},
	{S, "svc", SUB, "+/+/+/+", MOAT_ACL_NOT_GRANTED},
	/* nor impersonate devices, nor write events */
	{S, "svc", W, "devices/d1/telemetry", MOAT_ACL_NOT_GRANTED},
	{S, "svc", W, "devices/d1/status", MOAT_ACL_NOT_GRANTED},
	{S, "svc", W, "devices/svc/telemetry", MOAT_ACL_NOT_GRANTED},
	{S, "svc", W, "moat/events/revoked", MOAT_ACL_NOT_GRANTED},
	{S, "svc", SUB, "$SYS/#", MOAT_ACL_DOLLAR},
	{S, "svc", R, "$SYS/broker/uptime", MOAT_ACL_DOLLAR},
	{S, "svc", SUB, "foo/#", MOAT_ACL_OUTSIDE_SCHEME},
	{S, "svc", SUB, "moat/other/#", MOAT_ACL_OUTSIDE_SCHEME},
	{S, "svc", R, "moat/events", MOAT_ACL_OUTSIDE_SCHEME},
	{S, "svc", R, "moat/events/a/b", MOAT_ACL_OUTSIDE_SCHEME},
	{S, "svc", W, "devices/d1/commands/#", MOAT_ACL_BAD_TOPIC},
	{S, "svc", W, "devices/+/commands/reboot", MOAT_ACL_BAD_TOPIC},
	{S, "Svc", R, "devices/d1/telemetry", MOAT_ACL_BAD_INPUT},
};

/* operators read like services; writing commands depends on the policy */
static const struct row operator_common_rows[] = {
	{O, "alice", R, "devices/d1/telemetry", MOAT_ACL_OK},
	{O, "alice", SUB, "devices/+/status", MOAT_ACL_OK},
	{O, "alice", SUB, "moat/events/#", MOAT_ACL_OK},
	{O, "alice", R, "devices/d1/commands/reboot", MOAT_ACL_NOT_GRANTED},
	{O, "alice", SUB, "#", MOAT_ACL_NOT_GRANTED},
	{O, "alice", W, "devices/d1/telemetry", MOAT_ACL_NOT_GRANTED},
	{O, "alice", W, "moat/events/x", MOAT_ACL_NOT_GRANTED},
	{O, "alice", SUB, "$SYS/#", MOAT_ACL_DOLLAR},
};

static const struct row operator_strict_rows[] = {
	{O, "alice", W, "devices/d1/commands/reboot", MOAT_ACL_NOT_GRANTED},
	{S, "svc", W, "devices/d1/commands/reboot", MOAT_ACL_OK},
};

static const struct row operator_lenient_rows[] = {
	{O, "alice", W, "devices/d1/commands/reboot", MOAT_ACL_OK},
	{O, "alice", W, "devices/d1/telemetry", MOAT_ACL_NOT_GRANTED},
	/* the switch gives operators writes, never devices */
	{D, "d1", W, "devices/d1/commands/reboot", MOAT_ACL_NOT_GRANTED},
	{D, "d1", W, "devices/d2/commands/reboot", MOAT_ACL_NOT_GRANTED},
};

static void test_device_table(void **state)
{
	(void)state;
	RUN(device_rows, &strict);
	RUN(device_rows, &lenient);
}

static void test_service_table(void **state)
{
	(void)state;
	RUN(service_rows, &strict);
	RUN(service_rows, &lenient);
}

static void test_operator_policy(void **state)
{
	(void)state;
	RUN(operator_common_rows, &strict);
	RUN(operator_common_rows, &lenient);
	RUN(operator_strict_rows, &strict);
	RUN(operator_lenient_rows, &lenient);
}

static void test_null_policy_refused(void **state)
{
	enum moat_acl_reason why = MOAT_ACL_OK;
	(void)state;
	assert_false(moat_acl_decide(D, "d1", W, "devices/d1/telemetry", NULL, &why));
	assert_int_equal(why, MOAT_ACL_BAD_INPUT);
}

/* builds a string of n copies of c */
static void fill(char *buf, size_t n, char c)
{
	memset(buf, c, n);
	buf[n] = '\0';
}

static void test_lengths(void **state)
{
	char id[MOAT_ID_MAX_LEN + 2];
	char topic[MOAT_TOPIC_MAX_LEN + 64];
	char name[MOAT_ID_MAX_LEN + 2];
	enum moat_acl_reason why;
	(void)state;

	/* the longest identity and command name make a valid topic */
	fill(id, MOAT_ID_MAX_LEN, 'a');
	fill(name, MOAT_ID_MAX_LEN, 'b');
	assert_int_equal(snprintf(topic, sizeof(topic), "devices/%s/commands/%s", id, name),
			 8 + 64 + 10 + 64);
	assert_true(moat_acl_decide(D, id, R, topic, &strict, &why));
	assert_int_equal(moat_acl_decide(S, "svc", W, topic, &strict, &why), true);

	/* one character more in the id or the name is outside the scheme */
	fill(name, MOAT_ID_MAX_LEN + 1, 'b');
	assert_true(snprintf(topic, sizeof(topic), "devices/%s/commands/%s", id, name) > 0);
	assert_false(moat_acl_decide(S, "svc", W, topic, &strict, &why));
	assert_int_equal(why, MOAT_ACL_OUTSIDE_SCHEME);

	fill(id, MOAT_ID_MAX_LEN + 1, 'a');
	assert_false(moat_acl_decide(D, id, W, "devices/a/telemetry", &strict, &why));
	assert_int_equal(why, MOAT_ACL_BAD_INPUT);
	assert_true(snprintf(topic, sizeof(topic), "devices/%s/telemetry", id) > 0);
	assert_false(moat_acl_decide(S, "svc", R, topic, &strict, &why));
	assert_int_equal(why, MOAT_ACL_OUTSIDE_SCHEME);

	/* overlong topics and filters */
	memset(topic, 'x', sizeof(topic));
	memcpy(topic, "devices/d1/", 11);
	topic[MOAT_TOPIC_MAX_LEN] = '\0';
	assert_false(moat_acl_decide(D, "d1", W, topic, &strict, &why));
	assert_int_equal(why, MOAT_ACL_OUTSIDE_SCHEME);
	topic[MOAT_TOPIC_MAX_LEN] = 'x';
	topic[MOAT_TOPIC_MAX_LEN + 1] = '\0';
	assert_false(moat_acl_decide(D, "d1", W, topic, &strict, &why));
	assert_int_equal(why, MOAT_ACL_BAD_TOPIC);
	assert_false(moat_acl_decide(D, "d1", R, topic, &strict, &why));
	assert_int_equal(why, MOAT_ACL_BAD_TOPIC);
	assert_false(moat_acl_decide(D, "d1", SUB, topic, &strict, &why));
	assert_int_equal(why, MOAT_ACL_BAD_TOPIC);
	assert_false(moat_topic_filter_valid(topic));

	/* a filter of many levels is judged, not truncated */
	char many[MOAT_TOPIC_MAX_LEN + 1];
	size_t n = 0;
	while (n + 2 < MOAT_TOPIC_MAX_LEN - 2) {
		many[n++] = '+';
		many[n++] = '/';
	}
	many[n++] = '#';
	many[n] = '\0';
	assert_true(moat_topic_filter_valid(many));
	assert_false(moat_acl_decide(S, "svc", SUB, many, &strict, &why));
	assert_int_equal(why, MOAT_ACL_OUTSIDE_SCHEME);
}

static void test_filter_valid(void **state)
{
	static const char *const good[] = {
		"#",	  "+",	     "a",  "a/b",  "a/+", "+/b",   "a/#",
		"+/#",	  "/",	     "//", "a//b", "/#",  "+/+/+", "devices/d1/commands/#",
		"$SYS/#", "a/+/c/#",
	};
	static const char *const bad[] = {
		"",   "a#",	"#a",	"a/#/b", "a/b#",   "##", "a+",
		"+a", "a/++/b", "a/+b", "#/#",	 "a/b/c#", "+#", "#+",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!moat_topic_filter_valid(good[i])) {
			fail_msg("'%s' should be a valid filter", good[i]);
		}
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (moat_topic_filter_valid(bad[i])) {
			fail_msg("'%s' should be an invalid filter", bad[i]);
		}
	}
	assert_false(moat_topic_filter_valid(NULL));
}

static void test_build(void **state)
{
	char buf[MOAT_TOPIC_BUF_LEN];
	struct moat_err err = {0};
	(void)state;

	assert_int_equal(moat_topic_build(MOAT_TOPIC_TELEMETRY, "d1", NULL, buf, sizeof(buf), &err),
			 0);
	assert_string_equal(buf, "devices/d1/telemetry");
	assert_int_equal(moat_topic_build(MOAT_TOPIC_STATUS, "d1", "ignored", buf, sizeof(buf),
					  &err),
			 0);
	assert_string_equal(buf, "devices/d1/status");
	assert_int_equal(moat_topic_build(MOAT_TOPIC_DIAGNOSTICS, "d1", NULL, buf, sizeof(buf),
					  &err),
			 0);
	assert_string_equal(buf, "devices/d1/diagnostics");
	assert_int_equal(moat_topic_build(MOAT_TOPIC_COMMAND_RESPONSES, "d1", NULL, buf,
					  sizeof(buf), &err),
			 0);
	assert_string_equal(buf, "devices/d1/command_responses");
	assert_int_equal(moat_topic_build(MOAT_TOPIC_COMMAND, "d1", "reboot", buf, sizeof(buf),
					  &err),
			 0);
	assert_string_equal(buf, "devices/d1/commands/reboot");
	assert_int_equal(moat_topic_build(MOAT_TOPIC_EVENT, NULL, "revoked", buf, sizeof(buf),
					  &err),
			 0);
	assert_string_equal(buf, "moat/events/revoked");

	/* the longest topic fits MOAT_TOPIC_BUF_LEN */
	char id[MOAT_ID_BUF_LEN], name[MOAT_ID_BUF_LEN];
	fill(id, MOAT_ID_MAX_LEN, 'a');
	fill(name, MOAT_ID_MAX_LEN, 'b');
	assert_int_equal(moat_topic_build(MOAT_TOPIC_COMMAND, id, name, buf, sizeof(buf), &err), 0);
	assert_int_equal(moat_topic_build(MOAT_TOPIC_COMMAND_RESPONSES, id, NULL, buf, sizeof(buf),
					  &err),
			 0);

	/* refusals */
	static const struct {
		enum moat_topic_kind kind;
		const char *id, *name;
	} refused[] = {
		{MOAT_TOPIC_TELEMETRY, NULL, NULL},
		{MOAT_TOPIC_TELEMETRY, "", NULL},
		{MOAT_TOPIC_TELEMETRY, "D1", NULL},
		{MOAT_TOPIC_TELEMETRY, "+", NULL},
		{MOAT_TOPIC_TELEMETRY, "#", NULL},
		{MOAT_TOPIC_TELEMETRY, "a/b", NULL},
		{MOAT_TOPIC_COMMAND, "d1", NULL},
		{MOAT_TOPIC_COMMAND, "d1", ""},
		{MOAT_TOPIC_COMMAND, "d1", "re/boot"},
		{MOAT_TOPIC_COMMAND, "d1", "#"},
		{MOAT_TOPIC_EVENT, NULL, NULL},
		{MOAT_TOPIC_EVENT, NULL, "+"},
		{(enum moat_topic_kind)MOAT_TOPIC_KIND_COUNT, "d1", "x"},
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		memset(buf, 'z', sizeof(buf));
		err.code = 0;
		if (moat_topic_build(refused[i].kind, refused[i].id, refused[i].name, buf,
				     sizeof(buf), &err) != MOAT_EINVAL) {
			fail_msg("build row %zu should be refused", i);
		}
		assert_int_equal(err.code, MOAT_EINVAL);
		assert_true(err.msg[0] != '\0');
		assert_int_equal(buf[0], '\0');
	}
	/* too small a buffer fails rather than truncates; 21 bytes is exactly enough */
	char small[20];
	assert_int_equal(moat_topic_build(MOAT_TOPIC_TELEMETRY, "d1", NULL, small, 20, &err),
			 MOAT_EINVAL);
	assert_int_equal(small[0], '\0');
	assert_int_equal(moat_topic_build(MOAT_TOPIC_TELEMETRY, "d1", NULL, buf, 21, NULL), 0);
	assert_int_equal(moat_topic_build(MOAT_TOPIC_TELEMETRY, "d1", NULL, buf, 0, NULL),
			 MOAT_EINVAL);
	assert_int_equal(moat_topic_build(MOAT_TOPIC_TELEMETRY, "d1", NULL, NULL, 10, NULL),
			 MOAT_EINVAL);
}

static void test_parse(void **state)
{
	struct moat_topic t;
	struct moat_err err = {0};
	char buf[MOAT_TOPIC_BUF_LEN];
	(void)state;

	assert_int_equal(moat_topic_parse("devices/d-1.x_y/telemetry", &t, &err), 0);
	assert_int_equal(t.kind, MOAT_TOPIC_TELEMETRY);
	assert_string_equal(t.id, "d-1.x_y");
	assert_string_equal(t.name, "");
	assert_int_equal(moat_topic_parse("devices/d1/commands/update_interval", &t, &err), 0);
	assert_int_equal(t.kind, MOAT_TOPIC_COMMAND);
	assert_string_equal(t.id, "d1");
	assert_string_equal(t.name, "update_interval");
	assert_int_equal(moat_topic_parse("moat/events/client_id_mismatch", &t, &err), 0);
	assert_int_equal(t.kind, MOAT_TOPIC_EVENT);
	assert_string_equal(t.id, "");
	assert_string_equal(t.name, "client_id_mismatch");

	/* build then parse gives back what went in, for every kind */
	for (int k = 0; k < MOAT_TOPIC_KIND_COUNT; k++) {
		assert_int_equal(moat_topic_build((enum moat_topic_kind)k, "dev7", "kind9", buf,
						  sizeof(buf), &err),
				 0);
		assert_int_equal(moat_topic_parse(buf, &t, &err), 0);
		assert_int_equal(t.kind, k);
		assert_string_equal(t.id, k == MOAT_TOPIC_EVENT ? "" : "dev7");
		assert_string_equal(t.name, (k == MOAT_TOPIC_COMMAND || k == MOAT_TOPIC_EVENT)
						    ? "kind9"
						    : "");
		assert_string_not_equal(moat_topic_kind_name((enum moat_topic_kind)k), "unknown");
	}
	assert_string_equal(moat_topic_kind_name((enum moat_topic_kind)42), "unknown");

	static const char *const bad[] = {
		"",
		"devices",
		"devices/d1",
		"devices/d1/telemetry/",
		"devices/d1/unknown",
		"devices/d1/commands",
		"devices/d1/commands/",
		"devices/d1/commands/a/b",
		"devices/+/telemetry",
		"devices/d1/#",
		"moat/events",
		"moat/events/",
		"moat/events/A",
		"moat/event/x",
		"$SYS/broker",
		"devices/D1/telemetry",
		"devices//telemetry",
		"/devices/d1/telemetry",
		"a/b/c/d/e/f/g/h/i",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&t, 0x5a, sizeof(t));
		err.code = 0;
		if (moat_topic_parse(bad[i], &t, &err) != MOAT_EINVAL) {
			fail_msg("'%s' should not parse", bad[i]);
		}
		assert_int_equal(err.code, MOAT_EINVAL);
		/* *out is zeroed on failure */
		struct moat_topic zero;
		memset(&zero, 0, sizeof(zero));
		assert_memory_equal(&t, &zero, sizeof(t));
	}
	/* topics come from the network: the message shows no control characters */
	assert_int_equal(moat_topic_parse("devices/\x1b[2J\n/telemetry", &t, &err), MOAT_EINVAL);
	for (const char *p = err.msg; *p; p++) {
		assert_true(*p >= 0x20 && *p != 0x7f);
	}
	assert_non_null(strstr(err.msg, "devices/?[2J?/telemetry"));
	assert_int_equal(moat_topic_parse(NULL, &t, &err), MOAT_EINVAL);
	assert_int_equal(moat_topic_parse("devices/d1/status", NULL, &err), MOAT_EINVAL);
}

static void test_reason_names(void **state)
{
	(void)state;
	assert_string_equal(moat_acl_reason_name(MOAT_ACL_OK), "ok");
	assert_string_equal(moat_acl_reason_name(MOAT_ACL_BAD_INPUT), "bad_input");
	assert_string_equal(moat_acl_reason_name(MOAT_ACL_BAD_TOPIC), "bad_topic");
	assert_string_equal(moat_acl_reason_name(MOAT_ACL_DOLLAR), "dollar_topic");
	assert_string_equal(moat_acl_reason_name(MOAT_ACL_OUTSIDE_SCHEME), "outside_scheme");
	assert_string_equal(moat_acl_reason_name(MOAT_ACL_NOT_GRANTED), "not_granted");
	assert_string_equal(moat_acl_reason_name(MOAT_ACL_BAD_SHARE), "bad_shared_subscription");
	assert_string_equal(moat_acl_reason_name((enum moat_acl_reason)77), "unknown");
}

/* Shared subscriptions: services on what they may read; every refusal path; for devices
 * and operators a share stays a '$' topic. */
static void test_shared_subscriptions(void **state)
{
	(void)state;
	static const struct {
		enum moat_role role;
		const char *filter;
		enum moat_acl_reason want;
	} cases[] = {
		{MOAT_ROLE_SERVICE, "$share/g/devices/+/telemetry", MOAT_ACL_OK},
		{MOAT_ROLE_SERVICE, "$share/moatd-ingest/devices/+/diagnostics", MOAT_ACL_OK},
		{MOAT_ROLE_SERVICE, "$share/a.b_c-9/devices/#", MOAT_ACL_NOT_GRANTED},
		{MOAT_ROLE_SERVICE, "$share/g/#", MOAT_ACL_NOT_GRANTED},
		{MOAT_ROLE_SERVICE, "$share/g/devices/d1/commands/+", MOAT_ACL_NOT_GRANTED},
		{MOAT_ROLE_SERVICE, "$share/g/moat/events/+", MOAT_ACL_OK},
		{MOAT_ROLE_SERVICE, "$share/g/other/x", MOAT_ACL_OUTSIDE_SCHEME},
		{MOAT_ROLE_SERVICE, "$share/g/$SYS/#", MOAT_ACL_DOLLAR},
		{MOAT_ROLE_SERVICE, "$share/g/$share/h/devices/+/status", MOAT_ACL_DOLLAR},
		{MOAT_ROLE_SERVICE, "$share/g/devices/+x/status", MOAT_ACL_BAD_TOPIC},
		{MOAT_ROLE_SERVICE, "$share/", MOAT_ACL_BAD_SHARE},
		{MOAT_ROLE_SERVICE, "$share/g", MOAT_ACL_BAD_SHARE},
		{MOAT_ROLE_SERVICE, "$share/g/", MOAT_ACL_BAD_SHARE},
		{MOAT_ROLE_SERVICE, "$share//devices/+/status", MOAT_ACL_BAD_SHARE},
		{MOAT_ROLE_SERVICE, "$share/+/devices/+/status", MOAT_ACL_BAD_SHARE},
		{MOAT_ROLE_SERVICE, "$share/#/devices/+/status", MOAT_ACL_BAD_SHARE},
		{MOAT_ROLE_SERVICE, "$share/G/devices/+/status", MOAT_ACL_BAD_SHARE},
		{MOAT_ROLE_SERVICE, "$share/-g/devices/+/status", MOAT_ACL_BAD_SHARE},
		{MOAT_ROLE_SERVICE, "$share/123456789012345678901234567890123/devices/+/status",
		 MOAT_ACL_BAD_SHARE},
		{MOAT_ROLE_SERVICE, "$share/12345678901234567890123456789012/devices/+/status",
		 MOAT_ACL_OK},
		{MOAT_ROLE_SERVICE, "$shared/g/devices/+/status", MOAT_ACL_DOLLAR},
		{MOAT_ROLE_OPERATOR, "$share/g/devices/+/telemetry", MOAT_ACL_DOLLAR},
		{MOAT_ROLE_DEVICE, "$share/g/devices/d1/commands/+", MOAT_ACL_DOLLAR},
	};
	struct moat_acl_policy ap = {.operator_write_commands = true};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum moat_acl_reason why = MOAT_ACL_OK;
		bool ok = moat_acl_decide(cases[i].role, "d1", MOAT_ACCESS_SUBSCRIBE,
					  cases[i].filter, &ap, &why);
		if (why != cases[i].want) {
			fail_msg("%s: %s, want %s", cases[i].filter, moat_acl_reason_name(why),
				 moat_acl_reason_name(cases[i].want));
		}
		assert_int_equal(ok, cases[i].want == MOAT_ACL_OK);
	}
	/* only SUBSCRIBE knows shares: a publish or a delivery on such a topic is '$' */
	enum moat_acl_reason why = MOAT_ACL_OK;
	assert_false(moat_acl_decide(MOAT_ROLE_SERVICE, "svc", MOAT_ACCESS_WRITE,
				     "$share/g/devices/d1/commands/reboot", &ap, &why));
	assert_int_equal(why, MOAT_ACL_DOLLAR);
	assert_false(moat_acl_decide(MOAT_ROLE_SERVICE, "svc", MOAT_ACCESS_READ,
				     "$share/g/devices/d1/status", &ap, &why));
	assert_int_equal(why, MOAT_ACL_DOLLAR);
}

/* Every topic of the scheme a device may read must be one its own commands subscription
 * delivers, and no other device's: cross-check READ against SUBSCRIBE for a grid of ids. */
static void test_read_matches_subscribe(void **state)
{
	static const char *const ids[] = {"a", "b", "a1", "a.b", "z-9"};
	char topic[MOAT_TOPIC_BUF_LEN];
	char filter[MOAT_TOPIC_BUF_LEN];
	(void)state;
	for (size_t i = 0; i < 5; i++) {
		assert_true(snprintf(filter, sizeof(filter), "devices/%s/commands/#", ids[i]) > 0);
		assert_true(moat_acl_decide(D, ids[i], SUB, filter, &strict, NULL));
		for (size_t j = 0; j < 5; j++) {
			for (int k = 0; k < MOAT_TOPIC_KIND_COUNT; k++) {
				assert_int_equal(moat_topic_build((enum moat_topic_kind)k, ids[j],
								  "reboot", topic, sizeof(topic),
								  NULL),
						 0);
				bool want_read = k == MOAT_TOPIC_COMMAND && i == j;
				bool want_write = k != MOAT_TOPIC_COMMAND &&
						  k != MOAT_TOPIC_EVENT && i == j;
				assert_int_equal(moat_acl_decide(D, ids[i], R, topic, &lenient,
								 NULL),
						 want_read);
				assert_int_equal(moat_acl_decide(D, ids[i], W, topic, &lenient,
								 NULL),
						 want_write);
				assert_int_equal(moat_acl_decide(D, ids[i], SUB, topic, &lenient,
								 NULL),
						 want_read);
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_device_table),
		cmocka_unit_test(test_service_table),
		cmocka_unit_test(test_operator_policy),
		cmocka_unit_test(test_null_policy_refused),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_filter_valid),
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_reason_names),
		cmocka_unit_test(test_shared_subscriptions),
		cmocka_unit_test(test_read_matches_subscribe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
