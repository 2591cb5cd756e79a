/* test_messages.c: builders and parsers of the device messages (src/core/messages.c).
 *
 * Every refusal is checked for its reason (a substring of the error message) and for the
 * output being zeroed, so a parser that refuses for the wrong reason, or leaves half a
 * message behind, fails. Round trips check that what a builder writes parses back equal.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "moat/messages.h"

/* copies a string into a char array member, refusing to truncate */
#define SET(dst, src) assert_true(snprintf((dst), sizeof(dst), "%s", (src)) < (int)sizeof(dst))

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		if (b[i]) {
			return false;
		}
	}
	return true;
}

static void check_refusal(int rc, const struct moat_err *err, const void *out, size_t size,
			  const char *want, const char *input)
{
	if (rc != MOAT_EINVAL) {
		fail_msg("accepted (rc %d): %s", rc, input);
	}
	if (err->code != MOAT_EINVAL || !strstr(err->msg, want)) {
		fail_msg("refused for '%s', wanted '%s': %s", err->msg, want, input);
	}
	if (!all_zero(out, size)) {
		fail_msg("output not zeroed after refusing: %s", input);
	}
}

/* ---- commands ---- */

static void cmd_refused(const char *topic_name, const char *json, const char *want)
{
	struct moat_msg_command c;
	struct moat_err err = {0};
	memset(&c, 0x6b, sizeof(c));
	check_refusal(moat_msg_command_parse(topic_name, json, strlen(json), &c, &err), &err, &c,
		      sizeof(c), want, json);
}

static void test_command_parse_ok(void **state)
{
	struct moat_msg_command c;
	struct moat_err err = {0};
	const char *j;
	(void)state;

	/* the tutorial's commands, without id, name from the payload or the topic */
	j = "{\"command\":\"reboot\"}";
	assert_int_equal(moat_msg_command_parse("reboot", j, strlen(j), &c, &err), 0);
	assert_string_equal(c.name, "reboot");
	assert_int_equal(c.kind, MOAT_CMD_REBOOT);
	assert_string_equal(c.id, "");
	assert_int_equal(c.arg_count, 0);
	assert_int_equal(moat_msg_command_parse(NULL, j, strlen(j), &c, &err), 0);
	assert_int_equal(c.kind, MOAT_CMD_REBOOT);
	j = "{}";
	assert_int_equal(moat_msg_command_parse("diagnostics", j, 2, &c, &err), 0);
	assert_string_equal(c.name, "diagnostics");
	assert_int_equal(c.kind, MOAT_CMD_DIAGNOSTICS);

	j = " {\"command\":\"update_interval\",\"interval\":60,\"id\":\"c-1:2.x_Y\"}\r\n ";
	assert_int_equal(moat_msg_command_parse("update_interval", j, strlen(j), &c, &err), 0);
	assert_int_equal(c.kind, MOAT_CMD_UPDATE_INTERVAL);
	assert_string_equal(c.id, "c-1:2.x_Y");
	assert_int_equal(c.arg_count, 1);
	int64_t iv = 0;
	assert_int_equal(moat_msg_command_int_arg(&c, "interval", MOAT_MSG_UPDATE_INTERVAL_MIN,
						  MOAT_MSG_UPDATE_INTERVAL_MAX, &iv, &err),
			 0);
	assert_int_equal(iv, 60);

	/* unknown but well-formed: kind UNKNOWN, the agent answers unknown_command */
	j = "{\"command\":\"self_destruct\",\"s\":\"x\",\"n\":-1.5,\"b\":true,\"f\":false}";
	assert_int_equal(moat_msg_command_parse("self_destruct", j, strlen(j), &c, &err), 0);
	assert_int_equal(c.kind, MOAT_CMD_UNKNOWN);
	assert_int_equal(c.arg_count, 4);
	const struct moat_msg_arg *a = moat_msg_command_arg(&c, "s");
	assert_non_null(a);
	assert_int_equal(a->type, MOAT_ARG_STRING);
	assert_string_equal(a->str, "x");
	a = moat_msg_command_arg(&c, "n");
	assert_int_equal(a->type, MOAT_ARG_NUMBER);
	assert_true(a->num == -1.5);
	assert_true(moat_msg_command_arg(&c, "b")->boolean);
	assert_int_equal(moat_msg_command_arg(&c, "f")->type, MOAT_ARG_BOOL);
	assert_false(moat_msg_command_arg(&c, "f")->boolean);
	assert_null(moat_msg_command_arg(&c, "missing"));
	assert_null(moat_msg_command_arg(&c, "command"));
	assert_null(moat_msg_command_arg(NULL, "s"));

	/* exactly MOAT_MSG_ARGS_MAX arguments, and a string of the maximum length */
	char big[MOAT_MSG_COMMAND_MAX_BYTES + 1];
	char s128[MOAT_MSG_ARG_STR_MAX_LEN + 1];
	memset(s128, 'q', MOAT_MSG_ARG_STR_MAX_LEN);
	s128[MOAT_MSG_ARG_STR_MAX_LEN] = '\0';
	assert_true(snprintf(big, sizeof(big),
			     "{\"a1\":1,\"a2\":2,\"a3\":3,\"a4\":4,\"a5\":5,\"a6\":6,\"a7\":7,"
			     "\"a8\":\"%s\",\"command\":\"x\"}",
			     s128) < (int)sizeof(big));
	assert_int_equal(moat_msg_command_parse(NULL, big, strlen(big), &c, &err), 0);
	assert_int_equal(c.arg_count, MOAT_MSG_ARGS_MAX);
	assert_string_equal(moat_msg_command_arg(&c, "a8")->str, s128);

	/* UTF-8 text and escapes in string arguments */
	j = "{\"command\":\"x\",\"t\":\"caf\\u00e9 \\\"q\\\" \xe2\x82\xac\"}";
	assert_int_equal(moat_msg_command_parse(NULL, j, strlen(j), &c, &err), 0);
	assert_string_equal(moat_msg_command_arg(&c, "t")->str, "caf\xc3\xa9 \"q\" \xe2\x82\xac");

	/* the payload need not be NUL-terminated: parse only len bytes of a larger buffer */
	const char buf[] = "{\"command\":\"reboot\"}GARBAGE";
	assert_int_equal(moat_msg_command_parse(NULL, buf, 20, &c, &err), 0);
	assert_int_equal(c.kind, MOAT_CMD_REBOOT);
}

static void test_command_parse_refused(void **state)
{
	struct moat_msg_command c;
	struct moat_err err = {0};
	char big[MOAT_MSG_COMMAND_MAX_BYTES + 64];
	const char *j;
	(void)state;

	/* framing */
	memset(&c, 1, sizeof(c));
	check_refusal(moat_msg_command_parse("reboot", "", 0, &c, &err), &err, &c, sizeof(c),
		      "empty", "(empty)");
	check_refusal(moat_msg_command_parse("reboot", NULL, 5, &c, &err), &err, &c, sizeof(c),
		      "empty", "(null)");
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"command\":\"reboot\"}", 20);
	check_refusal(moat_msg_command_parse(NULL, big, MOAT_MSG_COMMAND_MAX_BYTES + 1, &c, &err),
		      &err, &c, sizeof(c), "over the limit", "(oversized)");
	/* exactly the limit is fine */
	assert_int_equal(moat_msg_command_parse(NULL, big, MOAT_MSG_COMMAND_MAX_BYTES, &c, &err),
			 0);
	const char nul[] = "{\"command\":\"reboot\"}\0";
	check_refusal(moat_msg_command_parse(NULL, nul, sizeof(nul) - 1, &c, &err), &err, &c,
		      sizeof(c), "NUL", "(trailing NUL)");
	const char nul2[] = "{\"command\":\"re\0boot\"}";
	check_refusal(moat_msg_command_parse(NULL, nul2, sizeof(nul2) - 1, &c, &err), &err, &c,
		      sizeof(c), "NUL", "(inner NUL)");

	cmd_refused("reboot", "{", "invalid JSON");
	cmd_refused("reboot", "{\"command\":\"reboot\",}", "invalid JSON");
	cmd_refused("reboot", "{'command':'reboot'}", "invalid JSON");
	cmd_refused("reboot", "reboot", "invalid JSON");
	cmd_refused("reboot", "{\"command\":\"reboot\"} {}", "data after");
	cmd_refused("reboot", "{\"command\":\"reboot\"}x", "data after");
	cmd_refused("reboot", "[\"reboot\"]", "not a JSON object");
	cmd_refused("reboot", "\"reboot\"", "not a JSON object");
	cmd_refused("reboot", "42", "not a JSON object");
	cmd_refused("reboot", "null", "not a JSON object");

	/* duplicate keys: cJSON keeps both and returns the first */
	cmd_refused("reboot", "{\"command\":\"reboot\",\"command\":\"diagnostics\"}",
		    "duplicate key \"command\"");
	cmd_refused(NULL, "{\"command\":\"x\",\"id\":\"a\",\"id\":\"b\"}", "duplicate key \"id\"");
	cmd_refused(NULL, "{\"command\":\"x\",\"n\":1,\"n\":2}", "duplicate key \"n\"");
	/* an escaped NUL would cut a string short in cJSON: "command\0y" would read as a
	 * second "command", and "reboot\0x" as "reboot" */
	cmd_refused(NULL, "{\"command\":\"x\",\"command\\u0000y\":\"z\"}", "escaped NUL");
	cmd_refused(NULL, "{\"command\":\"reboot\\u0000x\"}", "escaped NUL");
	cmd_refused(NULL, "{\"command\":\"x\",\"s\":\"\\\\\\u0000\"}", "escaped NUL");
	/* an escaped backslash followed by the text u0000 is no NUL */
	j = "{\"command\":\"x\",\"s\":\"a\\\\u0000\"}";
	assert_int_equal(moat_msg_command_parse(NULL, j, strlen(j), &c, &err), 0);
	assert_string_equal(moat_msg_command_arg(&c, "s")->str, "a\\u0000");

	/* the command name */
	cmd_refused(NULL, "{}", "missing \"command\"");
	cmd_refused(NULL, "{\"id\":\"1\"}", "missing \"command\"");
	cmd_refused(NULL, "{\"command\":1}", "must be a string");
	cmd_refused(NULL, "{\"command\":null}", "must be a string");
	cmd_refused(NULL, "{\"command\":[\"reboot\"]}", "must be a string");
	cmd_refused(NULL, "{\"command\":\"\"}", "invalid \"command\"");
	cmd_refused(NULL, "{\"command\":\"Reboot\"}", "invalid \"command\"");
	cmd_refused(NULL, "{\"command\":\"re boot\"}", "invalid \"command\"");
	cmd_refused(NULL, "{\"command\":\"re-boot\"}", "invalid \"command\"");
	cmd_refused(NULL, "{\"command\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		    "invalid \"command\""); /* 33 characters */
	/* topic and payload must agree */
	cmd_refused("reboot", "{\"command\":\"diagnostics\"}", "in the topic");
	cmd_refused("reboot", "{\"command\":\"rebooT\"}", "invalid \"command\"");
	cmd_refused("Reboot", "{\"command\":\"reboot\"}", "in topic");
	cmd_refused("re-boot", "{}", "in topic");
	cmd_refused("", "{}", "in topic");

	/* the id */
	cmd_refused("reboot", "{\"id\":\"\"}", "invalid \"id\"");
	cmd_refused("reboot", "{\"id\":\"a b\"}", "invalid \"id\"");
	cmd_refused("reboot", "{\"id\":\"a/b\"}", "invalid \"id\"");
	cmd_refused("reboot", "{\"id\":7}", "must be a string");
	cmd_refused("reboot",
		    "{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		    "invalid \"id\""); /* 65 characters */

	/* arguments */
	cmd_refused("reboot",
		    "{\"a1\":1,\"a2\":2,\"a3\":3,\"a4\":4,\"a5\":5,\"a6\":6,\"a7\":7,"
		    "\"a8\":8,\"a9\":9}",
		    "more than 8 arguments");
	cmd_refused("reboot", "{\"Interval\":1}", "invalid argument name");
	cmd_refused("reboot", "{\"\":1}", "invalid argument name");
	cmd_refused("reboot", "{\"a b\":1}", "invalid argument name");
	cmd_refused("reboot", "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":1}", "invalid argument name");
	cmd_refused("reboot", "{\"x\":null}", "string, number or boolean");
	cmd_refused("reboot", "{\"x\":{}}", "string, number or boolean");
	cmd_refused("reboot", "{\"x\":[1]}", "string, number or boolean");
	cmd_refused("reboot", "{\"x\":1e999}", "string, number or boolean");
	cmd_refused("reboot", "{\"x\":\"line\\nbreak\"}", "not printable");
	cmd_refused("reboot", "{\"x\":\"esc\\u001b[31m\"}", "not printable");
	cmd_refused("reboot", "{\"x\":\"bad \xff utf8\"}", "not printable");
	cmd_refused("reboot", "{\"x\":\"overlong \xc0\xaf\"}", "not printable");
	cmd_refused("reboot", "{\"x\":\"surrogate \xed\xa0\x80\"}", "not printable");
	cmd_refused("reboot", "{\"x\":\"cut \xe2\x82\"}", "not printable");
	char s129[MOAT_MSG_ARG_STR_MAX_LEN + 2];
	memset(s129, 'q', sizeof(s129) - 1);
	s129[sizeof(s129) - 1] = '\0';
	assert_true(snprintf(big, sizeof(big), "{\"x\":\"%s\"}", s129) < (int)sizeof(big));
	cmd_refused("reboot", big, "longer than 128");

	/* deep nesting is refused, not recursed into without bound */
	cmd_refused("reboot", "{\"x\":1,\"y\":[[[[[[[[[[1]]]]]]]]]]}", "nested deeper");

	assert_int_equal(moat_msg_command_parse(NULL, "{}", 2, NULL, &err), MOAT_EINVAL);
}

static void test_command_int_arg(void **state)
{
	struct moat_msg_command c;
	struct moat_err err = {0};
	int64_t v = 42;
	const char *j = "{\"command\":\"update_interval\",\"i\":0,\"big\":86401,\"f\":1.5,"
			"\"s\":\"60\",\"b\":true,\"neg\":-1,\"huge\":1e300,\"one\":1.0}";
	(void)state;

	assert_int_equal(moat_msg_command_parse(NULL, j, strlen(j), &c, &err), 0);
	assert_int_equal(moat_msg_command_int_arg(&c, "interval", 1, 86400, &v, &err), MOAT_ENOENT);
	assert_int_equal(err.code, MOAT_ENOENT);
	assert_int_equal(moat_msg_command_int_arg(&c, "i", 1, 86400, &v, &err), MOAT_EDENIED);
	assert_int_equal(moat_msg_command_int_arg(&c, "big", 1, 86400, &v, &err), MOAT_EDENIED);
	assert_int_equal(moat_msg_command_int_arg(&c, "neg", 1, 86400, &v, &err), MOAT_EDENIED);
	assert_int_equal(moat_msg_command_int_arg(&c, "f", 1, 86400, &v, &err), MOAT_EINVAL);
	assert_int_equal(moat_msg_command_int_arg(&c, "s", 1, 86400, &v, &err), MOAT_EINVAL);
	assert_int_equal(moat_msg_command_int_arg(&c, "b", 1, 86400, &v, &err), MOAT_EINVAL);
	assert_int_equal(moat_msg_command_int_arg(&c, "huge", 1, 86400, &v, &err), MOAT_EINVAL);
	assert_int_equal(v, 42); /* untouched on failure */
	assert_int_equal(moat_msg_command_int_arg(&c, "one", 1, 86400, &v, &err), 0);
	assert_int_equal(v, 1);
	assert_int_equal(moat_msg_command_int_arg(&c, "big", 1, 86401, &v, &err), 0);
	assert_int_equal(v, 86401);
	assert_int_equal(moat_msg_command_int_arg(&c, "neg", -1, -1, &v, &err), 0);
	assert_int_equal(v, -1);
}

static void test_command_kind_and_names(void **state)
{
	(void)state;
	assert_int_equal(moat_msg_command_kind("reboot"), MOAT_CMD_REBOOT);
	assert_int_equal(moat_msg_command_kind("update_interval"), MOAT_CMD_UPDATE_INTERVAL);
	assert_int_equal(moat_msg_command_kind("diagnostics"), MOAT_CMD_DIAGNOSTICS);
	assert_int_equal(moat_msg_command_kind("check_update"), MOAT_CMD_CHECK_UPDATE);
	assert_int_equal(moat_msg_command_kind("reboot2"), MOAT_CMD_UNKNOWN);
	assert_int_equal(moat_msg_command_kind("REBOOT"), MOAT_CMD_UNKNOWN);
	assert_int_equal(moat_msg_command_kind(NULL), MOAT_CMD_UNKNOWN);
	assert_true(moat_msg_command_name_ok("a"));
	assert_true(moat_msg_command_name_ok("check_update_2"));
	assert_true(moat_msg_command_name_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 32 */
	assert_false(moat_msg_command_name_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	assert_false(moat_msg_command_name_ok(""));
	assert_false(moat_msg_command_name_ok(NULL));
	assert_false(moat_msg_command_name_ok("a.b"));
	assert_false(moat_msg_command_name_ok("a/b"));
	assert_false(moat_msg_command_name_ok("A"));
	assert_true(moat_msg_command_id_ok("Az09._:-"));
	assert_false(moat_msg_command_id_ok(""));
	assert_false(moat_msg_command_id_ok(NULL));
	assert_false(moat_msg_command_id_ok("a b"));
	assert_false(moat_msg_command_id_ok("a\"b"));
	assert_false(moat_msg_command_id_ok("a/b"));
}

static void test_command_build_and_add_arg(void **state)
{
	struct moat_msg_command c, back;
	struct moat_err err = {0};
	char buf[MOAT_MSG_COMMAND_MAX_BYTES];
	size_t len = 99;
	(void)state;

	memset(&c, 0, sizeof(c));
	SET(c.name, "update_interval");
	SET(c.id, "op-17");
	assert_int_equal(moat_msg_command_add_arg(&c, "interval=30", &err), 0);
	assert_int_equal(moat_msg_command_add_arg(&c, "ratio=-0.25", &err), 0);
	assert_int_equal(moat_msg_command_add_arg(&c, "force=true", &err), 0);
	assert_int_equal(moat_msg_command_add_arg(&c, "dry=false", &err), 0);
	assert_int_equal(moat_msg_command_add_arg(&c, "note=say \"hi\" \\ o/", &err), 0);
	assert_int_equal(moat_msg_command_add_arg(&c, "empty=", &err), 0);
	assert_int_equal(moat_msg_command_add_arg(&c, "hexish=0x10", &err), 0);
	assert_int_equal(moat_msg_command_add_arg(&c, "sci=1e5", &err), 0);
	assert_int_equal(c.arg_count, 8);
	assert_int_equal(moat_msg_command_arg(&c, "interval")->type, MOAT_ARG_NUMBER);
	assert_int_equal(moat_msg_command_arg(&c, "force")->type, MOAT_ARG_BOOL);
	assert_int_equal(moat_msg_command_arg(&c, "hexish")->type, MOAT_ARG_STRING);
	assert_int_equal(moat_msg_command_arg(&c, "sci")->type, MOAT_ARG_STRING);
	assert_int_equal(moat_msg_command_arg(&c, "empty")->type, MOAT_ARG_STRING);

	assert_int_equal(moat_msg_command_build(&c, buf, sizeof(buf), &len, &err), 0);
	assert_int_equal(len, strlen(buf));
	assert_null(strchr(buf, '\n'));
	assert_string_equal(buf,
			    "{\"command\":\"update_interval\",\"id\":\"op-17\",\"interval\":30,"
			    "\"ratio\":-0.25,\"force\":true,\"dry\":false,"
			    "\"note\":\"say \\\"hi\\\" \\\\ o/\",\"empty\":\"\","
			    "\"hexish\":\"0x10\",\"sci\":\"1e5\"}");
	/* round trip */
	assert_int_equal(moat_msg_command_parse("update_interval", buf, len, &back, &err), 0);
	assert_string_equal(back.name, c.name);
	assert_string_equal(back.id, c.id);
	assert_int_equal(back.kind, MOAT_CMD_UPDATE_INTERVAL);
	assert_int_equal(back.arg_count, c.arg_count);
	for (size_t i = 0; i < c.arg_count; i++) {
		const struct moat_msg_arg *a = &c.args[i], *b = moat_msg_command_arg(&back, a->key);
		assert_non_null(b);
		assert_int_equal(a->type, b->type);
		assert_string_equal(a->str, b->str);
		assert_true(a->num == b->num);
		assert_int_equal(a->boolean, b->boolean);
	}

	/* add_arg refusals leave cmd as it was */
	struct moat_msg_command before = c;
	static const struct {
		const char *kv, *want;
	} bad[] = {
		{"noequals", "expected key=value"},
		{"=1", "1 to 32"},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1", "1 to 32"},
		{"Key=1", "[a-z0-9_]"},
		{"a-b=1", "[a-z0-9_]"},
		{"command=reboot", "reserved"},
		{"id=x", "reserved"},
		{"interval=5", "given twice"},
		{"extra=1", "more than 8"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.code = 0;
		assert_int_equal(moat_msg_command_add_arg(&c, bad[i].kv, &err), MOAT_EINVAL);
		if (!strstr(err.msg, bad[i].want)) {
			fail_msg("add_arg '%s': '%s' lacks '%s'", bad[i].kv, err.msg, bad[i].want);
		}
		assert_memory_equal(&c, &before, sizeof(c));
	}
	struct moat_msg_command d;
	memset(&d, 0, sizeof(d));
	SET(d.name, "x");
	assert_int_equal(moat_msg_command_add_arg(&d, "big=9007199254740992", &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "out of range"));
	assert_int_equal(moat_msg_command_add_arg(&d, "big=9007199254740991", &err), 0);
	assert_int_equal(moat_msg_command_add_arg(&d, "ctl=a\tb", &err), MOAT_EINVAL);
	char long_value[200];
	memset(long_value, 'v', sizeof(long_value));
	memcpy(long_value, "s=", 2);
	long_value[2 + MOAT_MSG_ARG_STR_MAX_LEN + 1] = '\0';
	assert_int_equal(moat_msg_command_add_arg(&d, long_value, &err), MOAT_EINVAL);
	long_value[2 + MOAT_MSG_ARG_STR_MAX_LEN] = '\0';
	assert_int_equal(moat_msg_command_add_arg(&d, long_value, &err), 0);
	assert_int_equal(moat_msg_command_add_arg(NULL, "a=1", &err), MOAT_EINVAL);
	assert_int_equal(moat_msg_command_add_arg(&d, NULL, &err), MOAT_EINVAL);

	/* build refusals: bad name, bad id, bad args, small buffer */
	struct moat_msg_command e;
	memset(&e, 0, sizeof(e));
	assert_int_equal(moat_msg_command_build(&e, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	assert_int_equal(buf[0], '\0');
	assert_int_equal(len, 0);
	SET(e.name, "reboot");
	SET(e.id, "bad id");
	assert_int_equal(moat_msg_command_build(&e, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	e.id[0] = '\0';
	e.arg_count = 1;
	SET(e.args[0].key, "id");
	assert_int_equal(moat_msg_command_build(&e, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	SET(e.args[0].key, "n");
	e.args[0].type = MOAT_ARG_NUMBER;
	e.args[0].num = NAN;
	assert_int_equal(moat_msg_command_build(&e, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	e.args[0].num = INFINITY;
	assert_int_equal(moat_msg_command_build(&e, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	e.args[0].num = 0.1;
	e.arg_count = 2;
	e.args[1] = e.args[0];
	assert_int_equal(moat_msg_command_build(&e, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "twice"));
	e.arg_count = MOAT_MSG_ARGS_MAX + 1;
	assert_int_equal(moat_msg_command_build(&e, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	e.arg_count = 1;
	assert_int_equal(moat_msg_command_build(&e, buf, sizeof(buf), &len, &err), 0);
	assert_string_equal(buf, "{\"command\":\"reboot\",\"n\":0.1}");
	/* exactly enough room, then one byte less */
	assert_int_equal(moat_msg_command_build(&e, buf, len + 1, &len, &err), 0);
	assert_int_equal(moat_msg_command_build(&e, buf, len, &len, &err), MOAT_EINVAL);
	assert_int_equal(buf[0], '\0');
	assert_non_null(strstr(err.msg, "does not fit"));
	assert_int_equal(moat_msg_command_build(NULL, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	assert_int_equal(moat_msg_command_build(&e, NULL, 10, &len, &err), MOAT_EINVAL);
}

static void test_number_round_trip(void **state)
{
	static const double values[] = {0,
					1,
					-1,
					0.1,
					-0.25,
					21.5,
					1e-300,
					1.7976931348623157e308,
					4.9e-324,
					123456.789,
					9007199254740991.0,
					9007199254740993.0,
					1e20,
					3.141592653589793};
	struct moat_msg_command c, back;
	char buf[MOAT_MSG_COMMAND_MAX_BYTES];
	size_t len;
	(void)state;

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		memset(&c, 0, sizeof(c));
		SET(c.name, "x");
		c.arg_count = 1;
		SET(c.args[0].key, "v");
		c.args[0].type = MOAT_ARG_NUMBER;
		c.args[0].num = values[i];
		assert_int_equal(moat_msg_command_build(&c, buf, sizeof(buf), &len, NULL), 0);
		assert_int_equal(moat_msg_command_parse("x", buf, len, &back, NULL), 0);
		if (back.args[0].num != values[i]) {
			fail_msg("%.17g came back as %.17g via %s", values[i], back.args[0].num,
				 buf);
		}
	}
}

/* ---- telemetry ---- */

static const char tutorial_telemetry[] =
	"{\"device_id\":\"esp32-sensor-001\",\"device_type\":\"temperature_sensor\","
	"\"timestamp\":123456,\"telemetry\":{\"temperature\":22.5,\"humidity\":45.2},"
	"\"metadata\":{\"signal_strength\":-67,\"free_heap\":180000,\"uptime_ms\":123456}}";

static void tel_refused(const char *json, const char *want)
{
	struct moat_msg_telemetry t;
	struct moat_err err = {0};
	memset(&t, 0x6b, sizeof(t));
	check_refusal(moat_msg_telemetry_parse(json, strlen(json), &t, &err), &err, &t, sizeof(t),
		      want, json);
}

static void test_telemetry_parse(void **state)
{
	struct moat_msg_telemetry t;
	struct moat_err err = {0};
	(void)state;

	assert_int_equal(moat_msg_telemetry_parse(tutorial_telemetry, strlen(tutorial_telemetry),
						  &t, &err),
			 0);
	assert_string_equal(t.device_id, "esp32-sensor-001");
	assert_string_equal(t.device_type, "temperature_sensor");
	assert_int_equal(t.timestamp_ms, 123456);
	assert_int_equal(t.reading_count, 2);
	assert_string_equal(t.readings[0].name, "temperature");
	assert_true(t.readings[0].value == 22.5);
	assert_string_equal(t.readings[1].name, "humidity");
	assert_true(t.has_signal_strength && t.has_free_heap && t.has_uptime_ms);
	assert_false(t.has_seq);
	assert_int_equal(t.signal_strength, -67);
	assert_int_equal(t.free_heap, 180000);

	/* metadata is optional; unknown keys are ignored at the top and in metadata */
	const char *j = "{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":0,"
			"\"telemetry\":{},\"extra\":{\"a\":[1,2]},\"metadata\":{\"seq\":"
			"9007199254740991,\"wifi_ssid\":\"x\"}}";
	assert_int_equal(moat_msg_telemetry_parse(j, strlen(j), &t, &err), 0);
	assert_int_equal(t.reading_count, 0);
	assert_true(t.has_seq);
	assert_int_equal(t.seq, MOAT_MSG_SEQ_MAX);
	j = "{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1.0e3,\"telemetry\":{\"x\":-1e-3}}";
	assert_int_equal(moat_msg_telemetry_parse(j, strlen(j), &t, &err), 0);
	assert_int_equal(t.timestamp_ms, 1000);
	assert_false(t.has_signal_strength || t.has_free_heap || t.has_uptime_ms || t.has_seq);

	tel_refused("", "empty");
	tel_refused("[]", "not a JSON object");
	tel_refused("{\"device_id\":\"d1\"", "invalid JSON");
	tel_refused("{\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{}}",
		    "missing \"device_id\"");
	tel_refused("{\"device_id\":\"d1\",\"timestamp\":1,\"telemetry\":{}}",
		    "missing \"device_type\"");
	tel_refused("{\"device_id\":\"d1\",\"device_type\":\"t\",\"telemetry\":{}}",
		    "missing \"timestamp\"");
	tel_refused("{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1}",
		    "missing \"telemetry\"");
	tel_refused("{\"device_id\":\"D1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{}}",
		    "invalid \"device_id\"");
	tel_refused("{\"device_id\":\"d/1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{}}",
		    "invalid \"device_id\"");
	tel_refused("{\"device_id\":1,\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{}}",
		    "\"device_id\" must be a string");
	tel_refused(
		"{\"device_id\":\"d1\",\"device_type\":\"T T\",\"timestamp\":1,\"telemetry\":{}}",
		"invalid \"device_type\"");
	tel_refused(
		"{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":\"1\",\"telemetry\":{}}",
		"\"timestamp\" must be an integer");
	tel_refused(
		"{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1.5,\"telemetry\":{}}",
		"\"timestamp\" must be an integer");
	tel_refused("{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":-1,\"telemetry\":{}}",
		    "\"timestamp\" must be an integer");
	tel_refused(
		"{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1e300,\"telemetry\":{}}",
		"\"timestamp\" must be an integer");
	tel_refused("{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":[]}",
		    "\"telemetry\" must be an object");
	tel_refused(
		"{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{\"x\":\"1\"}}",
		"reading \"x\" must be a number");
	tel_refused(
		"{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{\"x\":true}}",
		"reading \"x\" must be a number");
	tel_refused(
		"{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{\"x\":1e999}}",
		"reading \"x\" must be a number");
	tel_refused(
		"{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{\"X\":1}}",
		"invalid reading name");
	tel_refused(
		"{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{\"x\":1,\"x\":2}}",
		"duplicate key \"x\"");
	tel_refused(
		"{\"device_id\":\"d1\",\"device_id\":\"d2\",\"device_type\":\"t\",\"timestamp\":1,"
		"\"telemetry\":{}}",
		"duplicate key \"device_id\"");
	tel_refused("{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{},"
		    "\"metadata\":1}",
		    "\"metadata\" must be an object");
	tel_refused("{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{},"
		    "\"metadata\":{\"seq\":-1}}",
		    "\"seq\" must be an integer");
	tel_refused("{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{},"
		    "\"metadata\":{\"seq\":9007199254740992}}",
		    "\"seq\" must be an integer");
	tel_refused("{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{},"
		    "\"metadata\":{\"seq\":1.5}}",
		    "\"seq\" must be an integer");
	tel_refused("{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{},"
		    "\"metadata\":{\"free_heap\":\"lots\"}}",
		    "\"free_heap\" must be an integer");
	tel_refused("{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{},"
		    "\"metadata\":{\"uptime_ms\":-5}}",
		    "\"uptime_ms\" must be an integer");
	tel_refused("{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{},"
		    "\"metadata\":{\"signal_strength\":1001}}",
		    "\"signal_strength\" must be an integer");
	tel_refused("{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{},"
		    "\"metadata\":{\"seq\":1,\"seq\":2}}",
		    "duplicate key \"seq\"");

	/* 17 readings */
	char big[MOAT_MSG_TELEMETRY_MAX_BYTES + 16];
	int n = snprintf(
		big, sizeof(big),
		"{\"device_id\":\"d1\",\"device_type\":\"t\",\"timestamp\":1,\"telemetry\":{");
	for (int i = 0; i <= MOAT_MSG_READINGS_MAX; i++) {
		n += snprintf(big + n, sizeof(big) - (size_t)n, "%s\"r%d\":%d", i ? "," : "", i, i);
	}
	snprintf(big + n, sizeof(big) - (size_t)n, "}}");
	tel_refused(big, "more than 16 readings");

	/* oversized */
	memset(big, ' ', sizeof(big));
	memcpy(big, tutorial_telemetry, strlen(tutorial_telemetry));
	memset(&t, 1, sizeof(t));
	check_refusal(moat_msg_telemetry_parse(big, MOAT_MSG_TELEMETRY_MAX_BYTES + 1, &t, &err),
		      &err, &t, sizeof(t), "over the limit", "(oversized)");
	assert_int_equal(moat_msg_telemetry_parse(big, MOAT_MSG_TELEMETRY_MAX_BYTES, &t, &err), 0);
}

static void test_telemetry_build(void **state)
{
	struct moat_msg_telemetry t, back;
	struct moat_err err = {0};
	char buf[MOAT_MSG_TELEMETRY_MAX_BYTES];
	size_t len = 0;
	(void)state;

	memset(&t, 0, sizeof(t));
	SET(t.device_id, "d1");
	SET(t.device_type, "temperature_sensor");
	t.timestamp_ms = 1764000000000;
	t.reading_count = 2;
	SET(t.readings[0].name, "temperature");
	t.readings[0].value = 21.25;
	SET(t.readings[1].name, "humidity");
	t.readings[1].value = 0.1;
	t.has_signal_strength = t.has_seq = true;
	t.signal_strength = -70;
	t.seq = 12;
	assert_int_equal(moat_msg_telemetry_build(&t, buf, sizeof(buf), &len, &err), 0);
	assert_string_equal(buf, "{\"device_id\":\"d1\",\"device_type\":\"temperature_sensor\","
				 "\"timestamp\":1764000000000,\"telemetry\":{\"temperature\":21.25,"
				 "\"humidity\":0.1},\"metadata\":{\"signal_strength\":-70,"
				 "\"seq\":12}}");
	assert_int_equal(moat_msg_telemetry_parse(buf, len, &back, &err), 0);
	assert_memory_equal(&t, &back, sizeof(t));

	/* no metadata at all when no has_ flag is set */
	t.has_signal_strength = t.has_seq = false;
	t.signal_strength = t.seq = 0;
	assert_int_equal(moat_msg_telemetry_build(&t, buf, sizeof(buf), &len, &err), 0);
	assert_null(strstr(buf, "metadata"));
	assert_int_equal(moat_msg_telemetry_parse(buf, len, &back, &err), 0);
	assert_memory_equal(&t, &back, sizeof(t));

	/* the full set round-trips */
	t.has_signal_strength = t.has_free_heap = t.has_uptime_ms = t.has_seq = true;
	t.free_heap = 1 << 30;
	t.uptime_ms = 99;
	t.seq = MOAT_MSG_SEQ_MAX;
	t.reading_count = MOAT_MSG_READINGS_MAX;
	memset(t.readings, 0, sizeof(t.readings));
	for (int i = 0; i < MOAT_MSG_READINGS_MAX; i++) {
		snprintf(t.readings[i].name, sizeof(t.readings[i].name), "r%d", i);
		t.readings[i].value = i * 1.1 - 3;
	}
	assert_int_equal(moat_msg_telemetry_build(&t, buf, sizeof(buf), &len, &err), 0);
	assert_int_equal(moat_msg_telemetry_parse(buf, len, &back, &err), 0);
	assert_memory_equal(&t, &back, sizeof(t));

	/* refusals */
	struct moat_msg_telemetry bad = t;
	bad.seq = MOAT_MSG_SEQ_MAX + 1;
	assert_int_equal(moat_msg_telemetry_build(&bad, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	assert_int_equal(buf[0], '\0');
	bad = t;
	bad.timestamp_ms = -1;
	assert_int_equal(moat_msg_telemetry_build(&bad, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	bad = t;
	bad.readings[3].value = NAN;
	assert_int_equal(moat_msg_telemetry_build(&bad, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	bad = t;
	SET(bad.readings[3].name, "r0");
	assert_int_equal(moat_msg_telemetry_build(&bad, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	bad = t;
	bad.reading_count = MOAT_MSG_READINGS_MAX + 1;
	assert_int_equal(moat_msg_telemetry_build(&bad, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	bad = t;
	SET(bad.device_id, "Bad");
	assert_int_equal(moat_msg_telemetry_build(&bad, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	bad = t;
	bad.device_type[0] = '\0';
	assert_int_equal(moat_msg_telemetry_build(&bad, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	bad = t;
	bad.signal_strength = 5000;
	assert_int_equal(moat_msg_telemetry_build(&bad, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	assert_int_equal(moat_msg_telemetry_build(&t, buf, 100, &len, &err), MOAT_EINVAL);
	assert_int_equal(len, 0);
	assert_int_equal(buf[0], '\0');
}

/* ---- status ---- */

static void status_refused(const char *json, const char *want)
{
	struct moat_msg_status s;
	struct moat_err err = {0};
	memset(&s, 0x6b, sizeof(s));
	check_refusal(moat_msg_status_parse(json, strlen(json), &s, &err), &err, &s, sizeof(s),
		      want, json);
}

static void test_status(void **state)
{
	struct moat_msg_status s, back;
	struct moat_err err = {0};
	char buf[MOAT_MSG_STATUS_MAX_BYTES];
	size_t len;
	const char *j;
	(void)state;

	j = "{\"device_id\":\"esp32-sensor-001\",\"status\":\"online\",\"timestamp\":5,"
	    "\"ip_address\":\"192.168.1.50\"}";
	assert_int_equal(moat_msg_status_parse(j, strlen(j), &s, &err), 0);
	assert_true(s.online);
	assert_true(s.has_timestamp);
	assert_string_equal(s.ip_address, "192.168.1.50");
	/* the last will: device_id and status only */
	j = "{\"device_id\":\"d1\",\"status\":\"offline\"}";
	assert_int_equal(moat_msg_status_parse(j, strlen(j), &s, &err), 0);
	assert_false(s.online);
	assert_false(s.has_timestamp);

	memset(&s, 0, sizeof(s));
	SET(s.device_id, "d1");
	s.online = true;
	s.has_timestamp = true;
	s.timestamp_ms = 1764000000123;
	SET(s.ip_address, "fd00::17");
	SET(s.agent_version, "0.1.0+g1a2b~rc1");
	assert_int_equal(moat_msg_status_build(&s, buf, sizeof(buf), &len, &err), 0);
	assert_string_equal(buf, "{\"device_id\":\"d1\",\"status\":\"online\",\"timestamp\":"
				 "1764000000123,\"ip_address\":\"fd00::17\",\"agent_version\":"
				 "\"0.1.0+g1a2b~rc1\"}");
	assert_int_equal(moat_msg_status_parse(buf, len, &back, &err), 0);
	assert_memory_equal(&s, &back, sizeof(s));
	memset(&s, 0, sizeof(s));
	SET(s.device_id, "d1");
	assert_int_equal(moat_msg_status_build(&s, buf, sizeof(buf), &len, &err), 0);
	assert_string_equal(buf, "{\"device_id\":\"d1\",\"status\":\"offline\"}");
	assert_int_equal(moat_msg_status_parse(buf, len, &back, &err), 0);
	assert_memory_equal(&s, &back, sizeof(s));

	SET(s.ip_address, "999.1.1.1");
	assert_int_equal(moat_msg_status_build(&s, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	s.ip_address[0] = '\0';
	SET(s.agent_version, "1 0");
	assert_int_equal(moat_msg_status_build(&s, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	s.agent_version[0] = '\0';
	s.has_timestamp = true;
	s.timestamp_ms = -3;
	assert_int_equal(moat_msg_status_build(&s, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	s.timestamp_ms = 3;
	s.device_id[0] = '\0';
	assert_int_equal(moat_msg_status_build(&s, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	SET(s.device_id, "d1");
	assert_int_equal(moat_msg_status_build(&s, buf, 10, &len, &err), MOAT_EINVAL);

	status_refused("", "empty");
	status_refused("{\"status\":\"online\"}", "missing \"device_id\"");
	status_refused("{\"device_id\":\"d1\"}", "missing \"status\"");
	status_refused("{\"device_id\":\"d1\",\"status\":\"up\"}", "\"online\" or \"offline\"");
	status_refused("{\"device_id\":\"d1\",\"status\":\"Online\"}", "\"online\" or \"offline\"");
	status_refused("{\"device_id\":\"d1\",\"status\":true}", "must be a string");
	status_refused("{\"device_id\":\"d1\",\"status\":\"online\",\"status\":\"offline\"}",
		       "duplicate key");
	status_refused("{\"device_id\":\"d1\",\"status\":\"online\",\"timestamp\":-1}",
		       "\"timestamp\" must be an integer");
	status_refused("{\"device_id\":\"d1\",\"status\":\"online\",\"ip_address\":\"x\"}",
		       "invalid \"ip_address\"");
	status_refused("{\"device_id\":\"d1\",\"status\":\"online\",\"ip_address\":1}",
		       "must be a string");
	status_refused("{\"device_id\":\"d1\",\"status\":\"online\",\"agent_version\":\"\"}",
		       "invalid \"agent_version\"");
	status_refused("{\"device_id\":\"d1\",\"status\":\"online\",\"agent_version\":"
		       "\"0123456789012345678901234567890123\"}",
		       "invalid \"agent_version\"");
	status_refused("{\"device_id\":\"x\",\"status\":\"online\"}   ,", "data after");
	char big[MOAT_MSG_STATUS_MAX_BYTES + 2];
	memset(big, ' ', sizeof(big));
	memcpy(big, j, strlen(j));
	check_refusal(moat_msg_status_parse(big, sizeof(big), &s, &err), &err, &s, sizeof(s),
		      "over the limit", "(oversized)");
}

/* ---- responses ---- */

static void resp_refused(const char *json, const char *want)
{
	struct moat_msg_response r;
	struct moat_err err = {0};
	memset(&r, 0x6b, sizeof(r));
	check_refusal(moat_msg_response_parse(json, strlen(json), &r, &err), &err, &r, sizeof(r),
		      want, json);
}

static void test_response(void **state)
{
	struct moat_msg_response r, back;
	struct moat_err err = {0};
	char buf[MOAT_MSG_RESPONSE_MAX_BYTES];
	size_t len;
	const char *j;
	(void)state;

	/* the tutorial's response */
	j = "{\"device_id\":\"esp32-sensor-001\",\"command\":\"reboot\",\"status\":\"accepted\","
	    "\"timestamp\":991}";
	assert_int_equal(moat_msg_response_parse(j, strlen(j), &r, &err), 0);
	assert_string_equal(r.command, "reboot");
	assert_string_equal(r.status, "accepted");
	assert_string_equal(r.id, "");
	assert_false(r.has_interval);

	memset(&r, 0, sizeof(r));
	SET(r.device_id, "d1");
	SET(r.command, "update_interval");
	SET(r.status, "completed");
	r.timestamp_ms = 1764000000000;
	SET(r.id, "abc:1");
	SET(r.detail, "interval now 30 s \"ok\" \xc3\xa9");
	r.has_interval = true;
	r.interval = 30;
	assert_int_equal(moat_msg_response_build(&r, buf, sizeof(buf), &len, &err), 0);
	assert_string_equal(buf,
			    "{\"device_id\":\"d1\",\"command\":\"update_interval\",\"status\":"
			    "\"completed\",\"timestamp\":1764000000000,\"id\":\"abc:1\","
			    "\"detail\":\"interval now 30 s \\\"ok\\\" \xc3\xa9\",\"interval\":30}");
	assert_int_equal(moat_msg_response_parse(buf, len, &back, &err), 0);
	assert_memory_equal(&r, &back, sizeof(r));

	struct moat_msg_response bad = r;
	bad.interval = 0;
	assert_int_equal(moat_msg_response_build(&bad, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	bad = r;
	SET(bad.status, "Done");
	assert_int_equal(moat_msg_response_build(&bad, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	bad = r;
	SET(bad.detail, "two\nlines");
	assert_int_equal(moat_msg_response_build(&bad, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	bad = r;
	SET(bad.detail, "right\xe2\x80\xaetfel");
	assert_int_equal(moat_msg_response_build(&bad, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	bad = r;
	SET(bad.detail, "csi\xc2\x9b");
	assert_int_equal(moat_msg_response_build(&bad, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	bad = r;
	SET(bad.id, "a b");
	assert_int_equal(moat_msg_response_build(&bad, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	bad = r;
	bad.command[0] = '\0';
	assert_int_equal(moat_msg_response_build(&bad, buf, sizeof(buf), &len, &err), MOAT_EINVAL);

#define RESP_HEAD \
	"{\"device_id\":\"d1\",\"command\":\"reboot\",\"status\":\"accepted\",\"timestamp\":1"
	resp_refused("{\"command\":\"reboot\",\"status\":\"accepted\",\"timestamp\":1}",
		     "missing \"device_id\"");
	resp_refused("{\"device_id\":\"d1\",\"status\":\"accepted\",\"timestamp\":1}",
		     "missing \"command\"");
	resp_refused("{\"device_id\":\"d1\",\"command\":\"reboot\",\"timestamp\":1}",
		     "missing \"status\"");
	resp_refused("{\"device_id\":\"d1\",\"command\":\"reboot\",\"status\":\"accepted\"}",
		     "missing \"timestamp\"");
	resp_refused(
		"{\"device_id\":\"d1\",\"command\":\"reboot\",\"status\":\"ok1\",\"timestamp\":1}",
		"invalid \"status\"");
	resp_refused(
		"{\"device_id\":\"d1\",\"command\":\"Reboot\",\"status\":\"ok\",\"timestamp\":1}",
		"invalid \"command\"");
	resp_refused(RESP_HEAD ",\"id\":\"\"}", "invalid \"id\"");
	resp_refused(RESP_HEAD ",\"detail\":\"\"}", "invalid \"detail\"");
	resp_refused(RESP_HEAD ",\"detail\":\"a\\tb\"}", "invalid \"detail\"");
	/* C1 controls and bidi overrides, raw or escaped: terminal control, never text */
	resp_refused(RESP_HEAD ",\"detail\":\"a\xc2\x9b"
			       "2J\"}",
		     "invalid \"detail\"");
	resp_refused(RESP_HEAD ",\"detail\":\"a\\u009b2J\"}", "invalid \"detail\"");
	resp_refused(RESP_HEAD ",\"detail\":\"a\\u009d0;x\\u0007\"}", "invalid \"detail\"");
	resp_refused(RESP_HEAD ",\"detail\":\"txt.exe\xe2\x80\xae"
			       "fdp\"}",
		     "invalid \"detail\"");
	resp_refused(RESP_HEAD ",\"detail\":\"a\\u202eb\"}", "invalid \"detail\"");
	resp_refused(RESP_HEAD ",\"detail\":\"a\\u2066b\\u2069\"}", "invalid \"detail\"");
	resp_refused(RESP_HEAD ",\"interval\":0}", "\"interval\" must be an integer");
	resp_refused(RESP_HEAD ",\"interval\":86401}", "\"interval\" must be an integer");
	resp_refused(RESP_HEAD ",\"interval\":\"30\"}", "\"interval\" must be an integer");
	resp_refused(RESP_HEAD ",\"status\":\"x\"}", "duplicate key \"status\"");
	resp_refused(RESP_HEAD "}}", "data after");
	resp_refused("[" RESP_HEAD "}]", "not a JSON object");
	char detail[MOAT_MSG_DETAIL_MAX_LEN + 2];
	char big[MOAT_MSG_RESPONSE_MAX_BYTES];
	memset(detail, 'd', sizeof(detail) - 1);
	detail[sizeof(detail) - 1] = '\0';
	snprintf(big, sizeof(big), RESP_HEAD ",\"detail\":\"%s\"}", detail);
	resp_refused(big, "invalid \"detail\"");
	detail[sizeof(detail) - 2] = '\0';
	snprintf(big, sizeof(big), RESP_HEAD ",\"detail\":\"%s\"}", detail);
	assert_int_equal(moat_msg_response_parse(big, strlen(big), &r, &err), 0);
	assert_int_equal(strlen(r.detail), MOAT_MSG_DETAIL_MAX_LEN);
}

/* ---- diagnostics ---- */

static void test_diagnostics_build(void **state)
{
	struct moat_msg_diagnostics d;
	struct moat_err err = {0};
	char buf[MOAT_MSG_DIAGNOSTICS_MAX_BYTES];
	size_t len;
	(void)state;

	memset(&d, 0, sizeof(d));
	SET(d.device_id, "d1");
	d.timestamp_ms = 1764000000000;
	d.uptime_ms = 5000;
	d.system_uptime_s = 86400;
	d.rss_kb = 3000;
	d.free_heap = 1000000;
	d.load[0] = 0.5;
	d.load[1] = 0.25;
	d.load[2] = 0;
	d.interval_s = 10;
	d.seq = 3;
	assert_int_equal(moat_msg_diagnostics_build(&d, buf, sizeof(buf), &len, &err), 0);
	assert_string_equal(buf, "{\"device_id\":\"d1\",\"timestamp\":1764000000000,"
				 "\"uptime_ms\":5000,\"system_uptime_s\":86400,\"rss_kb\":3000,"
				 "\"free_heap\":1000000,\"load\":[0.5,0.25,0],\"interval_s\":10,"
				 "\"seq\":3,\"queued\":0}");
	SET(d.ip_address, "127.0.0.1");
	SET(d.mac_address, "02:00:00:00:00:01");
	SET(d.kernel, "Linux 6.1.0-13-amd64");
	SET(d.agent_version, "0.1.0");
	SET(d.cert_not_after, "2027-11-25T00:00:00Z");
	d.cert_days_left = 365;
	assert_int_equal(moat_msg_diagnostics_build(&d, buf, sizeof(buf), &len, &err), 0);
	assert_int_equal(len, strlen(buf));
	assert_non_null(strstr(buf, "\"kernel\":\"Linux 6.1.0-13-amd64\""));
	assert_non_null(strstr(buf, "\"cert_days_left\":365"));

	struct moat_msg_diagnostics bad = d;
	bad.load[1] = NAN;
	assert_int_equal(moat_msg_diagnostics_build(&bad, buf, sizeof(buf), &len, &err),
			 MOAT_EINVAL);
	assert_int_equal(buf[0], '\0');
	bad = d;
	bad.rss_kb = -1;
	assert_int_equal(moat_msg_diagnostics_build(&bad, buf, sizeof(buf), &len, &err),
			 MOAT_EINVAL);
	bad = d;
	SET(bad.kernel, "evil\x1b[2J");
	assert_int_equal(moat_msg_diagnostics_build(&bad, buf, sizeof(buf), &len, &err),
			 MOAT_EINVAL);
	bad = d;
	SET(bad.ip_address, "localhost");
	assert_int_equal(moat_msg_diagnostics_build(&bad, buf, sizeof(buf), &len, &err),
			 MOAT_EINVAL);
	bad = d;
	SET(bad.device_id, "-");
	assert_int_equal(moat_msg_diagnostics_build(&bad, buf, sizeof(buf), &len, &err),
			 MOAT_EINVAL);
	assert_int_equal(moat_msg_diagnostics_build(&d, buf, 50, &len, &err), MOAT_EINVAL);
	assert_int_equal(len, 0);
	assert_int_equal(moat_msg_diagnostics_build(NULL, buf, sizeof(buf), &len, &err),
			 MOAT_EINVAL);
}

/* The device's messages are built by moat-device (src/device-core). What moat-agent sent
 * before the library built them, byte for byte (recorded from moat's own builders before
 * the move): metadata present field by field (absent is not 0), numbers in their shortest
 * exact form, UTF-8 text kept and invalid or control text refused, the update event as
 * the agent has always published it. */
static void test_device_messages_unchanged(void **state)
{
	(void)state;
	char buf[2048];
	size_t len = 0;
	struct moat_err err;
	struct moat_msg_telemetry t;
	static const char *const names[] = {"temperature", "humidity", "pressure", "tiny",
					    "neg",	   "third",    "big"};
	const double values[] = {21.5, 0.1, 1013.25, 1e-7, -3, 1.0 / 3, 1e300};

	memset(&t, 0, sizeof(t));
	SET(t.device_id, "dev-1");
	SET(t.device_type, "temp_sensor");
	t.timestamp_ms = 1764729600123LL;
	for (size_t i = 0; i < 7; i++) {
		SET(t.readings[i].name, names[i]);
		t.readings[i].value = values[i];
	}
	t.reading_count = 7;
	t.has_free_heap = t.has_uptime_ms = t.has_seq = true;
	t.free_heap = 123456;
	t.uptime_ms = 5000;
	t.seq = 42;
	assert_int_equal(moat_msg_telemetry_build(&t, buf, sizeof(buf), &len, &err), 0);
	assert_string_equal(
		buf,
		"{\"device_id\":\"dev-1\",\"device_type\":\"temp_sensor\",\"timestamp\":"
		"1764729600123,\"telemetry\":{\"temperature\":21.5,\"humidity\":0.1,"
		"\"pressure\":1013.25,\"tiny\":1e-07,\"neg\":-3,\"third\":0.33333333333333331,"
		"\"big\":1e+300},\"metadata\":{\"free_heap\":123456,\"uptime_ms\":5000,\"seq\":"
		"42}}");
	assert_int_equal(len, strlen(buf));
	t.reading_count = 0;
	t.has_free_heap = t.has_uptime_ms = t.has_seq = false;
	assert_int_equal(moat_msg_telemetry_build(&t, buf, sizeof(buf), &len, &err), 0);
	assert_string_equal(buf, "{\"device_id\":\"dev-1\",\"device_type\":\"temp_sensor\","
				 "\"timestamp\":1764729600123,\"telemetry\":{}}");
	t.has_signal_strength = true; /* a signal of 0 is written, not left out */
	assert_int_equal(moat_msg_telemetry_build(&t, buf, sizeof(buf), &len, &err), 0);
	assert_string_equal(buf, "{\"device_id\":\"dev-1\",\"device_type\":\"temp_sensor\","
				 "\"timestamp\":1764729600123,\"telemetry\":{},\"metadata\":{"
				 "\"signal_strength\":0}}");

	struct moat_msg_status s;
	memset(&s, 0, sizeof(s));
	SET(s.device_id, "dev-1");
	s.online = s.has_timestamp = true;
	s.timestamp_ms = 1764729600123LL;
	SET(s.ip_address, "10.0.0.2");
	SET(s.agent_version, "0.9.0~rc1");
	assert_int_equal(moat_msg_status_build(&s, buf, sizeof(buf), &len, &err), 0);
	assert_string_equal(buf, "{\"device_id\":\"dev-1\",\"status\":\"online\",\"timestamp\":"
				 "1764729600123,\"ip_address\":\"10.0.0.2\",\"agent_version\":"
				 "\"0.9.0~rc1\"}");
	s.online = false; /* moat-agent's clean shutdown: offline with its timestamp */
	SET(s.ip_address, "::1");
	assert_int_equal(moat_msg_status_build(&s, buf, sizeof(buf), &len, &err), 0);
	assert_string_equal(buf, "{\"device_id\":\"dev-1\",\"status\":\"offline\",\"timestamp\":"
				 "1764729600123,\"ip_address\":\"::1\",\"agent_version\":"
				 "\"0.9.0~rc1\"}");
	SET(s.ip_address, "10.0.0.256"); /* the host checks addresses by inet_pton */
	assert_int_equal(moat_msg_status_build(&s, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
	assert_string_equal(buf, "");
	memset(&s, 0, sizeof(s));
	SET(s.device_id, "dev-1");
	assert_int_equal(moat_msg_status_build(&s, buf, sizeof(buf), &len, &err), 0);
	assert_string_equal(buf, "{\"device_id\":\"dev-1\",\"status\":\"offline\"}");

	struct moat_msg_response r;
	memset(&r, 0, sizeof(r));
	SET(r.device_id, "dev-1");
	SET(r.command, "update_interval");
	SET(r.status, "completed");
	r.timestamp_ms = 1764729600123LL;
	SET(r.id, "c-1:x");
	SET(r.detail, "temp\xc3\xa9rature 21 \xc2\xb0"
		      "C \xe2\x80\x94 \"ok\" \\ \xf0\x9f\x98\x80");
	r.has_interval = true;
	r.interval = 30;
	assert_int_equal(moat_msg_response_build(&r, buf, sizeof(buf), &len, &err), 0);
	assert_string_equal(buf,
			    "{\"device_id\":\"dev-1\",\"command\":\"update_interval\","
			    "\"status\":\"completed\",\"timestamp\":1764729600123,\"id\":"
			    "\"c-1:x\",\"detail\":\"temp\xc3\xa9rature 21 \xc2\xb0"
			    "C \xe2\x80\x94 \\\"ok\\\" \\\\ \xf0\x9f\x98\x80\",\"interval\":30}");
	/* a bidi override, a truncated sequence, a C1 control, an overlong '/', a surrogate */
	static const char *const bad_detail[] = {"bad \xe2\x80\xae bidi", "bad \xc3 utf8",
						 "c1 \xc2\x85",		  "over \xc0\xaf",
						 "sur \xed\xa0\x80",	  "tab\there"};
	for (size_t i = 0; i < sizeof(bad_detail) / sizeof(bad_detail[0]); i++) {
		SET(r.detail, bad_detail[i]);
		assert_int_equal(moat_msg_response_build(&r, buf, sizeof(buf), &len, &err),
				 MOAT_EINVAL);
		assert_string_equal(buf, "");
		assert_int_equal(len, 0);
	}
	r.detail[0] = '\0';
	r.interval = 0; /* has_interval with no interval */
	assert_int_equal(moat_msg_response_build(&r, buf, sizeof(buf), &len, &err), MOAT_EINVAL);

	struct moat_msg_diagnostics d;
	memset(&d, 0, sizeof(d));
	SET(d.device_id, "dev-1");
	d.timestamp_ms = 1764729600123LL;
	d.uptime_ms = 61000;
	d.system_uptime_s = 86400;
	d.rss_kb = 5120;
	d.free_heap = 1048576;
	d.load[0] = 0.15;
	d.load[1] = 1.5;
	SET(d.ip_address, "fe80::1");
	SET(d.mac_address, "02:00:00:aa:bb:cc");
	SET(d.kernel, "Linux 6.1.0-13-amd64");
	SET(d.agent_version, "0.9.0");
	SET(d.cert_not_after, "2027-01-01T00:00:00Z");
	d.cert_days_left = -3;
	d.interval_s = 30;
	d.seq = 7;
	d.queued = 2;
	assert_int_equal(moat_msg_diagnostics_build(&d, buf, sizeof(buf), &len, &err), 0);
	assert_string_equal(
		buf,
		"{\"device_id\":\"dev-1\",\"timestamp\":1764729600123,\"uptime_ms\":61000,"
		"\"system_uptime_s\":86400,\"rss_kb\":5120,\"free_heap\":1048576,\"load\":[0.15,"
		"1.5,0],\"ip_address\":\"fe80::1\",\"mac_address\":\"02:00:00:aa:bb:cc\","
		"\"kernel\":\"Linux 6.1.0-13-amd64\",\"agent_version\":\"0.9.0\","
		"\"cert_not_after\":\"2027-01-01T00:00:00Z\",\"cert_days_left\":-3,"
		"\"interval_s\":30,\"seq\":7,\"queued\":2}");
	d.cert_not_after[0] = d.ip_address[0] = d.mac_address[0] = d.kernel[0] = '\0';
	d.agent_version[0] = '\0';
	d.load[0] = 1.0 / 3;
	assert_int_equal(moat_msg_diagnostics_build(&d, buf, sizeof(buf), &len, &err), 0);
	assert_string_equal(buf, "{\"device_id\":\"dev-1\",\"timestamp\":1764729600123,"
				 "\"uptime_ms\":61000,\"system_uptime_s\":86400,\"rss_kb\":5120,"
				 "\"free_heap\":1048576,\"load\":[0.33333333333333331,1.5,0],"
				 "\"interval_s\":30,\"seq\":7,\"queued\":2}");
	SET(d.kernel, "Linux \xe2\x80\xae");
	assert_int_equal(moat_msg_diagnostics_build(&d, buf, sizeof(buf), &len, &err), MOAT_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_parse_ok),
		cmocka_unit_test(test_command_parse_refused),
		cmocka_unit_test(test_command_int_arg),
		cmocka_unit_test(test_command_kind_and_names),
		cmocka_unit_test(test_command_build_and_add_arg),
		cmocka_unit_test(test_number_round_trip),
		cmocka_unit_test(test_telemetry_parse),
		cmocka_unit_test(test_telemetry_build),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_response),
		cmocka_unit_test(test_diagnostics_build),
		cmocka_unit_test(test_device_messages_unchanged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
