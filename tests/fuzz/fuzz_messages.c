/* fuzz_messages.c: libFuzzer harness for every message parser (messages.c).
 *
 * Byte 0 picks the parser: 0 command (no topic), 1 command with a topic name given as
 * "name\n" before the payload, 2 telemetry, 3 status, 4 command response, 5 a `moat cmd`
 * key=value argument. Besides crashes and leaks it checks that whatever a parser accepts
 * the matching builder writes back (unless the text grew past the size limit) and that
 * build -> parse -> build is stable, so the two sides cannot drift apart.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/messages.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX 4096

/* A builder may refuse only because the rebuilt text outgrew its limit. */
static void built_or_too_big(int rc, const struct moat_err *err)
{
	if (rc != 0 && !strstr(err->msg, "does not fit")) {
		abort();
	}
}

static void same(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen || memcmp(a, b, alen) != 0) {
		abort();
	}
}

static void command(const char *topic_name, const uint8_t *p, size_t n)
{
	struct moat_msg_command c, c2;
	struct moat_err err = {0};
	static char out[OUT_MAX], out2[OUT_MAX];
	size_t len, len2;

	if (moat_msg_command_parse(topic_name, p, n, &c, &err) != 0) {
		return;
	}
	if (c.arg_count > MOAT_MSG_ARGS_MAX || !moat_msg_command_name_ok(c.name)) {
		abort();
	}
	int64_t v = 0;
	if (moat_msg_command_int_arg(&c, "interval", MOAT_MSG_UPDATE_INTERVAL_MIN,
				     MOAT_MSG_UPDATE_INTERVAL_MAX, &v, NULL) == 0 &&
	    (v < MOAT_MSG_UPDATE_INTERVAL_MIN || v > MOAT_MSG_UPDATE_INTERVAL_MAX)) {
		abort();
	}
	int rc = moat_msg_command_build(&c, out, sizeof(out), &len, &err);
	built_or_too_big(rc, &err);
	if (rc != 0) {
		return;
	}
	if (moat_msg_command_parse(NULL, out, len, &c2, &err) != 0 ||
	    moat_msg_command_build(&c2, out2, sizeof(out2), &len2, &err) != 0) {
		abort();
	}
	same(out, len, out2, len2);
}

static void telemetry(const uint8_t *p, size_t n)
{
	struct moat_msg_telemetry t, t2;
	struct moat_err err = {0};
	static char out[OUT_MAX], out2[OUT_MAX];
	size_t len, len2;

	if (moat_msg_telemetry_parse(p, n, &t, &err) != 0) {
		return;
	}
	int rc = moat_msg_telemetry_build(&t, out, sizeof(out), &len, &err);
	built_or_too_big(rc, &err);
	if (rc != 0) {
		return;
	}
	if (moat_msg_telemetry_parse(out, len, &t2, &err) != 0 ||
	    moat_msg_telemetry_build(&t2, out2, sizeof(out2), &len2, &err) != 0) {
		abort();
	}
	same(out, len, out2, len2);
}

static void status(const uint8_t *p, size_t n)
{
	struct moat_msg_status s, s2;
	struct moat_err err = {0};
	static char out[OUT_MAX];
	size_t len;

	if (moat_msg_status_parse(p, n, &s, &err) != 0) {
		return;
	}
	int rc = moat_msg_status_build(&s, out, sizeof(out), &len, &err);
	built_or_too_big(rc, &err);
	if (rc == 0 &&
	    (moat_msg_status_parse(out, len, &s2, &err) != 0 || memcmp(&s, &s2, sizeof(s)) != 0)) {
		abort();
	}
}

static void response(const uint8_t *p, size_t n)
{
	struct moat_msg_response r, r2;
	struct moat_err err = {0};
	static char out[OUT_MAX];
	size_t len;

	if (moat_msg_response_parse(p, n, &r, &err) != 0) {
		return;
	}
	int rc = moat_msg_response_build(&r, out, sizeof(out), &len, &err);
	built_or_too_big(rc, &err);
	if (rc == 0 && (moat_msg_response_parse(out, len, &r2, &err) != 0 ||
			memcmp(&r, &r2, sizeof(r)) != 0)) {
		abort();
	}
}

static void add_arg(const uint8_t *p, size_t n)
{
	struct moat_msg_command c;
	char kv[512];
	static char out[OUT_MAX];
	size_t len;

	if (n >= sizeof(kv) || memchr(p, '\0', n)) {
		return;
	}
	memcpy(kv, p, n);
	kv[n] = '\0';
	memset(&c, 0, sizeof(c));
	memcpy(c.name, "x", 2);
	if (moat_msg_command_add_arg(&c, kv, NULL) == 0 &&
	    moat_msg_command_build(&c, out, sizeof(out), &len, NULL) != 0) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1) {
		return 0;
	}
	uint8_t which = data[0] % 6;
	data++;
	size--;
	switch (which) {
	case 0:
		command(NULL, data, size);
		break;
	case 1: {
		char name[MOAT_MSG_CMD_NAME_MAX_LEN + 8];
		const uint8_t *nl = memchr(data, '\n', size < sizeof(name) ? size : sizeof(name));
		if (!nl) {
			return 0;
		}
		size_t nlen = (size_t)(nl - data);
		memcpy(name, data, nlen);
		name[nlen] = '\0';
		command(name, nl + 1, size - nlen - 1);
		break;
	}
	case 2:
		telemetry(data, size);
		break;
	case 3:
		status(data, size);
		break;
	case 4:
		response(data, size);
		break;
	default:
		add_arg(data, size);
		break;
	}
	return 0;
}
