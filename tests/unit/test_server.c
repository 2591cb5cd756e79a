/* test_server.c: moatd's pure parts and its release store (src/server/).
 *
 * Tables for the request path and Range parsers (every refusal is a row), the rollout
 * bucket against values computed independently (Python hashlib), the update-event parser's
 * refusals, and the release store on a real registry in a temporary directory: newest by
 * semantic version, percentage and device-list rollouts, duplicates, update events.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "moat/codec.h"
#include "moat/config.h"
#include "moat/connguard.h"
#include "moat/fsutil.h"
#include "moat/http_parse.h"
#include "moat/release.h"
#include "moat/secevent.h"
#include "moat/server.h"
#include "moat/update_schema.h"
#include "testutil.h"
#include "testutil_registry.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_route(void **state)
{
	(void)state;
	static const struct {
		const char *path;
		enum moat_http_route want;
	} rows[] = {
		{"/api/firmware/version", MOAT_ROUTE_VERSION},
		{"/api/firmware/download/" HEX64, MOAT_ROUTE_DOWNLOAD},
		{"/api/firmware/version/", MOAT_ROUTE_NOT_FOUND},
		{"/api/firmware/version?x", MOAT_ROUTE_NOT_FOUND},
		{"/api/firmware//version", MOAT_ROUTE_NOT_FOUND},
		{"/api/firmware/download/" HEX64 "/", MOAT_ROUTE_NOT_FOUND},
		{"/api/firmware/download/" HEX64 "0", MOAT_ROUTE_NOT_FOUND},
		{"/api/firmware/download/0123456789abcdef", MOAT_ROUTE_NOT_FOUND},
		{"/api/firmware/download/0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
		 MOAT_ROUTE_NOT_FOUND},
		{"/api/firmware/download/../../../../../../../../../../../../../../etc/passwd",
		 MOAT_ROUTE_NOT_FOUND},
		{"/api/firmware/download/..%2f..%2fetc%2fpasswd", MOAT_ROUTE_NOT_FOUND},
		{"/api/firmware/download/", MOAT_ROUTE_NOT_FOUND},
		{"/api/firmware/../firmware/version", MOAT_ROUTE_NOT_FOUND},
		{"", MOAT_ROUTE_NOT_FOUND},
		{"/", MOAT_ROUTE_NOT_FOUND},
		{"/api/firmware/version%00", MOAT_ROUTE_BAD},
		{"/api/firmware/version%00.json", MOAT_ROUTE_BAD},
		{"/api/firmware/download/" HEX64 "%00", MOAT_ROUTE_BAD},
		{"%00/api/firmware/version", MOAT_ROUTE_BAD},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint8_t sha[MOAT_SHA256_BYTES];
		enum moat_http_route got = moat_http_route_parse(rows[i].path, sha);
		if (got != rows[i].want) {
			fail_msg("%s: route %d, want %d", rows[i].path, got, rows[i].want);
		}
		if (got == MOAT_ROUTE_DOWNLOAD) {
			assert_int_equal(sha[0], 0x01);
			assert_int_equal(sha[31], 0xef);
		}
	}
	assert_int_equal(moat_http_route_parse(NULL, NULL), MOAT_ROUTE_NOT_FOUND);
	char longpath[MOAT_HTTP_URL_MAX_LEN + 10];
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(moat_http_route_parse(longpath, NULL), MOAT_ROUTE_NOT_FOUND);
}

/* The decoder never makes a NUL: %00 stays as it is (and the route refuses it), every
 * other escape is decoded, a broken one stays. */
static void test_unescape(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		const char *out;
	} rows[] = {
		{"/api/firmware/version%00junk", "/api/firmware/version%00junk"},
		{"1.0.0%00x", "1.0.0%00x"},
		{"%2fa%2Fb%41", "/a/bA"},
		{"%2500", "%00"}, /* decoded once: the route still refuses it */
		{"%", "%"},
		{"%4", "%4"},
		{"%g1%1", "%g1%1"},
		{"%0%00%", "%0%00%"},
		{"a%20b", "a b"},
		{"%01%7f%ff", "\x01\x7f\xff"},
		{"", ""},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char buf[64];
		snprintf(buf, sizeof(buf), "%s", rows[i].in);
		size_t n = moat_http_unescape(buf);
		assert_string_equal(buf, rows[i].out);
		assert_int_equal(n, strlen(rows[i].out));
	}
	char path[] = "/api/firmware/version%00junk";
	moat_http_unescape(path);
	assert_int_equal(moat_http_route_parse(path, NULL), MOAT_ROUTE_BAD);
	char twice[] = "/api/firmware/version%2500";
	moat_http_unescape(twice);
	assert_int_equal(moat_http_route_parse(twice, NULL), MOAT_ROUTE_BAD);
}

static void test_range(void **state)
{
	(void)state;
	static const struct {
		const char *value;
		uint64_t size;
		enum moat_range_result want;
		uint64_t start;
		uint64_t len;
	} rows[] = {
		{NULL, 100, MOAT_RANGE_NONE, 0, 100},
		{"bytes=0-", 100, MOAT_RANGE_OK, 0, 100},
		{"bytes=0-9", 100, MOAT_RANGE_OK, 0, 10},
		{"bytes=90-", 100, MOAT_RANGE_OK, 90, 10},
		{"bytes=99-99", 100, MOAT_RANGE_OK, 99, 1},
		{"bytes=50-1000", 100, MOAT_RANGE_OK, 50, 50},
		{"bytes=-10", 100, MOAT_RANGE_OK, 90, 10},
		{"bytes=-1000", 100, MOAT_RANGE_OK, 0, 100},
		{"bytes=0-18446744073709551615", 100, MOAT_RANGE_MALFORMED, 0, 100},
		{"bytes=100-", 100, MOAT_RANGE_UNSATISFIABLE, 0, 100},
		{"bytes=100-200", 100, MOAT_RANGE_UNSATISFIABLE, 0, 100},
		{"bytes=-0", 100, MOAT_RANGE_UNSATISFIABLE, 0, 100},
		{"bytes=9-0", 100, MOAT_RANGE_MALFORMED, 0, 100},
		{"bytes=0-1,5-9", 100, MOAT_RANGE_MALFORMED, 0, 100},
		{"bytes= 0-1", 100, MOAT_RANGE_MALFORMED, 0, 100},
		{"bytes=0 -1", 100, MOAT_RANGE_MALFORMED, 0, 100},
		{"bytes=", 100, MOAT_RANGE_MALFORMED, 0, 100},
		{"bytes=-", 100, MOAT_RANGE_MALFORMED, 0, 100},
		{"bytes=+1-2", 100, MOAT_RANGE_MALFORMED, 0, 100},
		{"bytes=-1-2", 100, MOAT_RANGE_MALFORMED, 0, 100},
		{"items=0-1", 100, MOAT_RANGE_MALFORMED, 0, 100},
		{"Bytes=0-1", 100, MOAT_RANGE_MALFORMED, 0, 100},
		{"bytes=99999999999999999999-", 100, MOAT_RANGE_MALFORMED, 0, 100},
		{"bytes=0-1", 0, MOAT_RANGE_MALFORMED, 0, 0},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint64_t start = 77;
		uint64_t len = 77;
		enum moat_range_result got =
			moat_http_range_parse(rows[i].value, rows[i].size, &start, &len);
		if (got != rows[i].want || start != rows[i].start || len != rows[i].len) {
			fail_msg("%s: result %d [%llu +%llu], want %d [%llu +%llu]",
				 rows[i].value ? rows[i].value : "(none)", got,
				 (unsigned long long)start, (unsigned long long)len, rows[i].want,
				 (unsigned long long)rows[i].start,
				 (unsigned long long)rows[i].len);
		}
	}
}

static void test_rollout_bucket(void **state)
{
	(void)state;
	uint8_t sha[MOAT_SHA256_BYTES];
	/* Reference values from Python: int.from_bytes(sha256(sha + id)[:8], "big") % 100 */
	memset(sha, 0, sizeof(sha));
	assert_int_equal(moat_rollout_bucket(sha, "dev1"), 69);
	memset(sha, 0xff, sizeof(sha));
	assert_int_equal(moat_rollout_bucket(sha, "sensor-000001"), 33);
	assert_int_equal(
		moat_hex_decode("1f2e727d251929aafe7d99f525a18ae5d104b8253f0d63fbda029e0e5befff03",
				sha, sizeof(sha)),
		0);
	assert_int_equal(moat_rollout_bucket(sha, "dev1"), 17);
	/* Stable and spread: 1000 devices land in every decile. */
	unsigned deciles[10] = {0};
	for (int i = 0; i < 1000; i++) {
		char id[32];
		snprintf(id, sizeof(id), "d-%06d", i);
		unsigned b = moat_rollout_bucket(sha, id);
		assert_true(b < 100);
		assert_int_equal(b, moat_rollout_bucket(sha, id));
		deciles[b / 10]++;
	}
	for (int i = 0; i < 10; i++) {
		assert_true(deciles[i] > 50);
	}
}

static int parse_event(const char *json, struct moat_update_event *ev, struct moat_err *err)
{
	memset(ev, 0, sizeof(*ev));
	snprintf(ev->device, sizeof(ev->device), "dev1");
	ev->at = 42;
	return moat_update_event_parse(json, strlen(json), ev, err);
}

static void test_update_event_parse(void **state)
{
	(void)state;
	struct moat_update_event ev;
	struct moat_err err = {0};
	assert_int_equal(parse_event("{\"event\":\"update\",\"stage\":\"refused\",\"version\":"
				     "\"1.2.0\",\"running\":\"1.1.0\",\"reason\":\"bad_signature\","
				     "\"timestamp\":1700000000}",
				     &ev, &err),
			 0);
	assert_int_equal(ev.stage, MOAT_UPD_REFUSED);
	assert_string_equal(ev.version, "1.2.0");
	assert_string_equal(ev.running, "1.1.0");
	assert_string_equal(ev.reason, "bad_signature");
	assert_string_equal(ev.device, "dev1");
	assert_int_equal(ev.at, 42);
	assert_int_equal(parse_event("{\"event\":\"update\",\"stage\":\"checked\"}", &ev, &err), 0);
	assert_int_equal(ev.stage, MOAT_UPD_CHECKED);
	assert_string_equal(ev.version, "");

	assert_int_equal(parse_event("{\"event\":\"diagnostics\",\"free_heap\":1}", &ev, &err),
			 MOAT_ENOENT);
	assert_int_equal(parse_event("{\"free_heap\":1}", &ev, &err), MOAT_ENOENT);
	static const char *const bad[] = {
		"",
		"[]",
		"{\"event\":\"update\"",
		"{\"event\":\"update\"}",
		"{\"event\":\"update\",\"stage\":\"exploded\"}",
		"{\"event\":\"update\",\"stage\":7}",
		"{\"event\":\"update\",\"stage\":\"checked\",\"stage\":\"refused\"}",
		"{\"event\":\"update\",\"event\":\"update\",\"stage\":\"checked\"}",
		"{\"event\":\"update\",\"stage\":\"checked\",\"extra\":1}",
		"{\"event\":\"update\",\"stage\":\"checked\",\"version\":\"1.2\"}",
		"{\"event\":\"update\",\"stage\":\"checked\",\"running\":\"../x\"}",
		"{\"event\":\"update\",\"stage\":\"refused\",\"reason\":\"a\\nb\"}",
		"{\"event\":\"update\",\"stage\":\"refused\",\"reason\":5}",
		"{\"event\":\"update\",\"stage\":\"checked\",\"timestamp\":\"now\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse_event(bad[i], &ev, &err);
		if (rc != MOAT_EINVAL) {
			fail_msg("accepted or wrong code %d: %s", rc, bad[i]);
		}
		assert_true(err.msg[0] != '\0');
	}
	char big[MOAT_UPDATE_EVENT_MAX_BYTES + 64];
	int n = snprintf(big, sizeof(big),
			 "{\"event\":\"update\",\"stage\":\"refused\",\"reason\":\"");
	memset(big + n, 'x', MOAT_UPDATE_EVENT_MAX_BYTES);
	snprintf(big + n + MOAT_UPDATE_EVENT_MAX_BYTES,
		 sizeof(big) - (size_t)n - MOAT_UPDATE_EVENT_MAX_BYTES, "\"}");
	assert_int_equal(moat_update_event_parse(big, strlen(big), &ev, &err), MOAT_EINVAL);
	char longreason[512];
	n = snprintf(longreason, sizeof(longreason),
		     "{\"event\":\"update\",\"stage\":\"refused\",\"reason\":\"");
	memset(longreason + n, 'r', MOAT_UPDATE_REASON_MAX_LEN + 1);
	snprintf(longreason + n + MOAT_UPDATE_REASON_MAX_LEN + 1, 8, "\"}");
	assert_int_equal(parse_event(longreason, &ev, &err), MOAT_EINVAL);

	enum moat_update_stage st;
	for (int i = 0; i < MOAT_UPDATE_STAGE_COUNT; i++) {
		assert_int_equal(moat_update_stage_parse(moat_update_stage_name(i), &st, &err), 0);
		assert_int_equal(st, i);
	}
	assert_int_equal(moat_update_stage_parse("CHECKED", &st, &err), MOAT_EINVAL);
	assert_int_equal(moat_update_stage_parse(NULL, &st, &err), MOAT_EINVAL);
}

/* ---- the store on a real registry ---- */

struct store {
	char dir[TU_TMPDIR_MAX]; /* first: tu_state_make */
	char path[TU_TMPDIR_MAX + 16];
	struct moat_registry *reg;
};

static int store_setup(void **state)
{
	struct moat_err err = {0};
	if (tu_state_make(state, sizeof(struct store), "server") != 0) {
		return -1;
	}
	struct store *s = *state;
	tu_path(s->path, sizeof(s->path), s->dir, "registry.db");
	if (moat_registry_open(s->path, true, &s->reg, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	static const char *const ids[] = {"a1", "a2", "a3", "a4", "a5", "a6"};
	for (size_t i = 0; i < 6; i++) {
		if (moat_registry_identity_insert(s->reg, ids[i], MOAT_ROLE_DEVICE, "sensor", 1,
						  &err) != 0) {
			return -1;
		}
	}
	if (moat_registry_identity_insert(s->reg, "cam", MOAT_ROLE_DEVICE, "camera", 1, &err) !=
	    0) {
		return -1;
	}
	return 0;
}

static int store_teardown(void **state)
{
	struct store *s = *state;
	moat_registry_close(s->reg);
	assert_int_equal(tu_state_free(state), 0);
	return 0;
}

static void test_store_releases(void **state)
{
	struct store *s = *state;
	struct moat_err err = {0};
	struct moat_release r = tu_release("sensor", "1.10.0", 'a', 100);
	assert_int_equal(moat_registry_release_insert(s->reg, &r, NULL, 0, &err), 0);
	r = tu_release("sensor", "1.9.0", 'b', 100);
	assert_int_equal(moat_registry_release_insert(s->reg, &r, NULL, 0, &err), 0);
	/* Duplicate digest, duplicate (type, version). */
	r = tu_release("sensor", "2.0.0", 'a', 100);
	assert_int_equal(moat_registry_release_insert(s->reg, &r, NULL, 0, &err), MOAT_EEXIST);
	r = tu_release("sensor", "1.9.0", 'c', 100);
	assert_int_equal(moat_registry_release_insert(s->reg, &r, NULL, 0, &err), MOAT_EEXIST);
	/* Rollout arguments that do not fit together. */
	char *one[] = {"a1"};
	r = tu_release("sensor", "3.0.0", 'd', 50);
	assert_int_equal(moat_registry_release_insert(s->reg, &r, one, 1, &err), MOAT_EINVAL);
	r = tu_release("sensor", "3.0.0", 'd', -1);
	assert_int_equal(moat_registry_release_insert(s->reg, &r, NULL, 0, &err), MOAT_EINVAL);
	r = tu_release("sensor", "3.0.0", 'd', 101);
	assert_int_equal(moat_registry_release_insert(s->reg, &r, NULL, 0, &err), MOAT_EINVAL);
	/* A device list naming an unknown identity is refused whole. */
	char *unknown[] = {"a1", "nobody"};
	r = tu_release("sensor", "3.0.0", 'd', -1);
	assert_int_equal(moat_registry_release_insert(s->reg, &r, unknown, 2, &err), MOAT_EINVAL);
	struct moat_release got;
	assert_int_equal(moat_registry_release_get(s->reg, r.sha256_hex, &got, &err), MOAT_ENOENT);

	/* Newest by semantic version, not by text: 1.10.0 > 1.9.0. */
	bool found = false;
	assert_int_equal(moat_release_newest(s->reg, "sensor", NULL, &got, &found, &err), 0);
	assert_true(found);
	assert_string_equal(got.version, "1.10.0");
	assert_int_equal(moat_release_newest(s->reg, "camera", "cam", &got, &found, &err), 0);
	assert_false(found);

	/* 3.0.0 only to a2: a2 gets it, a1 still gets 1.10.0. */
	char *a2[] = {"a2"};
	r = tu_release("sensor", "3.0.0", 'd', -1);
	assert_int_equal(moat_registry_release_insert(s->reg, &r, a2, 1, &err), 0);
	assert_int_equal(moat_registry_release_get(s->reg, r.sha256_hex, &got, &err), 0);
	assert_int_equal(got.rollout_percent, -1);
	assert_int_equal(got.device_count, 1);
	assert_int_equal(moat_release_newest(s->reg, "sensor", "a2", &got, &found, &err), 0);
	assert_string_equal(got.version, "3.0.0");
	assert_int_equal(moat_release_newest(s->reg, "sensor", "a1", &got, &found, &err), 0);
	assert_string_equal(got.version, "1.10.0");

	/* 4.0.0 to 0%: nobody; then the percentage decides by bucket. */
	r = tu_release("sensor", "4.0.0", 'e', 0);
	assert_int_equal(moat_registry_release_insert(s->reg, &r, NULL, 0, &err), 0);
	assert_int_equal(moat_release_newest(s->reg, "sensor", "a1", &got, &found, &err), 0);
	assert_string_equal(got.version, "1.10.0");
	r = tu_release("sensor", "5.0.0", 'f', 50);
	assert_int_equal(moat_registry_release_insert(s->reg, &r, NULL, 0, &err), 0);
	uint8_t sha[MOAT_SHA256_BYTES];
	assert_int_equal(moat_hex_decode(r.sha256_hex, sha, sizeof(sha)), 0);
	static const char *const ids[] = {"a1", "a3", "a4", "a5", "a6"};
	for (size_t i = 0; i < 5; i++) {
		bool inc = false;
		assert_int_equal(moat_release_includes(s->reg, &r, ids[i], &inc, &err), 0);
		assert_int_equal(inc, moat_rollout_bucket(sha, ids[i]) < 50);
		assert_int_equal(moat_release_newest(s->reg, "sensor", ids[i], &got, &found, &err),
				 0);
		assert_string_equal(got.version, inc ? "5.0.0" : "1.10.0");
	}
	assert_int_equal(moat_release_newest(s->reg, "sensor", NULL, &got, &found, &err), 0);
	assert_string_equal(got.version, "5.0.0");
}

static int count_cb(const struct moat_update_event *ev, void *ctx)
{
	size_t *n = ctx;
	/* Newest first: the last recorded event comes first. */
	if (*n == 0) {
		assert_int_equal(ev->stage, MOAT_UPD_CONFIRMED);
	}
	(*n)++;
	return 0;
}

static int any_cb(const struct moat_update_event *ev, void *ctx)
{
	(void)ev;
	(*(size_t *)ctx)++;
	return 0;
}

static void test_store_events(void **state)
{
	struct store *s = *state;
	struct moat_err err = {0};
	char running[MOAT_FW_VERSION_MAX_LEN + 1];
	assert_int_equal(moat_registry_running_version(s->reg, "a1", running, &err), 0);
	assert_string_equal(running, "");
	struct moat_update_event ev;
	memset(&ev, 0, sizeof(ev));
	snprintf(ev.device, sizeof(ev.device), "a1");
	ev.at = 100;
	ev.stage = MOAT_UPD_CHECKED;
	snprintf(ev.running, sizeof(ev.running), "1.0.0");
	assert_int_equal(moat_registry_update_event_record(s->reg, &ev, &err), 0);
	for (int st = MOAT_UPD_DOWNLOADING; st <= MOAT_UPD_CONFIRMED; st++) {
		ev.stage = (enum moat_update_stage)st;
		snprintf(ev.version, sizeof(ev.version), "1.1.0");
		ev.running[0] = '\0';
		if (st == MOAT_UPD_CONFIRMED) {
			snprintf(ev.running, sizeof(ev.running), "1.1.0");
		}
		assert_int_equal(moat_registry_update_event_record(s->reg, &ev, &err), 0);
	}
	assert_int_equal(moat_registry_running_version(s->reg, "a1", running, &err), 0);
	assert_string_equal(running, "1.1.0");
	size_t n = 0;
	assert_int_equal(moat_registry_update_event_foreach(s->reg, "a1", 3, count_cb, &n, &err),
			 0);
	assert_int_equal(n, 3);
	n = 0;
	assert_int_equal(moat_registry_update_event_foreach(s->reg, "a1", 100, count_cb, &n, &err),
			 0);
	assert_int_equal(n, 5);
	/* Pruned to the last MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE per device; a2 keeps its own. */
	snprintf(ev.device, sizeof(ev.device), "a2");
	ev.stage = MOAT_UPD_CHECKED;
	assert_int_equal(moat_registry_update_event_record(s->reg, &ev, &err), 0);
	snprintf(ev.device, sizeof(ev.device), "a1");
	for (int i = 0; i < MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE + 7; i++) {
		/* (not checks: repeated identical checks are one event) */
		ev.stage = (i == MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE + 6) ? MOAT_UPD_CONFIRMED
									 : MOAT_UPD_DOWNLOADING;
		assert_int_equal(moat_registry_update_event_record(s->reg, &ev, &err), 0);
	}
	n = 0;
	assert_int_equal(moat_registry_update_event_foreach(s->reg, "a1", 1000, count_cb, &n, &err),
			 0);
	assert_int_equal(n, MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE);
	n = 0;
	assert_int_equal(moat_registry_update_event_foreach(s->reg, "a2", 1000, any_cb, &n, &err),
			 0);
	assert_int_equal(n, 1);
	snprintf(ev.device, sizeof(ev.device), "ghost");
	assert_int_equal(moat_registry_update_event_record(s->reg, &ev, &err), MOAT_ENOENT);
}

/* ---- the connection guard ---- */

static struct moat_cg_source src4(const char *a)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	assert_int_equal(inet_pton(AF_INET, a, &sin.sin_addr), 1);
	struct moat_cg_source s;
	struct moat_err err = {0};
	assert_int_equal(moat_cg_source_from((struct sockaddr *)&sin, sizeof(sin), &s, &err), 0);
	return s;
}

/* ---- a running rollout takes the devices that join its group ---- */

struct join_seen {
	size_t joined;
	int calls;
};

static void join_change_cb(const struct moat_rollout_change *c, void *ctx)
{
	struct join_seen *j = ctx;
	j->joined += c->joined;
	j->calls++;
}

struct member_list {
	char id[64][MOAT_ID_BUF_LEN];
	int phase[64];
	size_t n;
};

static int member_list_cb(const char *device, int phase, void *ctx)
{
	struct member_list *m = ctx;
	assert_true(m->n < 64);
	snprintf(m->id[m->n], sizeof(m->id[0]), "%s", device);
	m->phase[m->n++] = phase;
	return 0;
}

static int phase_in(const struct member_list *m, const char *id)
{
	for (size_t i = 0; i < m->n; i++) {
		if (strcmp(m->id[i], id) == 0) {
			return m->phase[i];
		}
	}
	return -1;
}

static void test_store_rollout_join(void **state)
{
	struct store *s = *state;
	struct moat_err err = {0};
	struct moat_group g = {.name = "all", .where = "type=sensor", .created_at = 1};
	assert_int_equal(moat_registry_group_insert(s->reg, &g, &err), 0);
	struct moat_release rel = tu_release("sensor", "2.0.0", 'e', 0);
	assert_int_equal(moat_registry_release_insert(s->reg, &rel, NULL, 0, &err), 0);
	static const int pct[] = {25, 50, 75, 100};
	struct moat_rollout_req req = {.sha256_hex = rel.sha256_hex,
				       .group = "all",
				       .percent = pct,
				       .phase_count = 4,
				       .soak_s = 3600,
				       .silent_s = 3600,
				       .halt_failure_pct = -1,
				       .now = 1000};
	struct moat_rollout_row row;
	assert_int_equal(moat_rollout_create(s->reg, &req, &row, &err), 0);
	assert_int_equal(row.device_count, 6);
	struct member_list before = {.n = 0}, after = {.n = 0};
	assert_int_equal(moat_registry_rollout_members(s->reg, row.id, member_list_cb, &before,
						       &err),
			 0);
	/* 30 sensors and a camera join after the creation */
	for (int i = 0; i < 31; i++) {
		char id[16];
		snprintf(id, sizeof(id), i < 30 ? "b%02d" : "cam%02d", i);
		assert_int_equal(moat_registry_identity_insert(s->reg, id, MOAT_ROLE_DEVICE,
							       i < 30 ? "sensor" : "camera", 1,
							       &err),
				 0);
	}
	/* paused: nobody joins */
	struct moat_rollout_row r2;
	assert_int_equal(moat_rollout_act(s->reg, row.id, MOAT_ROLLOUT_PAUSE, false, 1001, &r2,
					  &err),
			 0);
	struct join_seen seen = {0, 0};
	assert_int_equal(moat_rollout_tick(s->reg, 1002, join_change_cb, &seen, &err), 0);
	assert_int_equal(seen.joined, 0);
	/* --accept-failures belongs to resume; a paused one resumes without it */
	assert_int_equal(moat_rollout_act(s->reg, row.id, MOAT_ROLLOUT_ABORT, true, 1003, &r2,
					  &err),
			 MOAT_EINVAL);
	assert_int_equal(moat_rollout_act(s->reg, row.id, MOAT_ROLLOUT_RESUME, false, 1003, &r2,
					  &err),
			 0);
	assert_int_equal(r2.resumed_at, 1003);
	assert_int_equal(r2.started_at[0], 1000); /* a resume does not move the phase's start */
	assert_int_equal(moat_rollout_tick(s->reg, 1004, join_change_cb, &seen, &err), 0);
	assert_int_equal(seen.joined, 30); /* the sensors, not the camera */
	assert_int_equal(moat_registry_rollout_members(s->reg, row.id, member_list_cb, &after,
						       &err),
			 0);
	assert_int_equal(after.n, 36);
	/* nobody taken before moved */
	for (size_t i = 0; i < before.n; i++) {
		assert_int_equal(phase_in(&after, before.id[i]), before.phase[i]);
	}
	/* in the rollout's rank order the phases never go down: still prefixes of one order,
	 * and each newcomer has the phase of the next device by rank that was there before */
	uint8_t key[MOAT_ROLLOUT_KEY_BYTES];
	assert_int_equal(moat_hex_decode(row.rank_key_hex, key, sizeof(key)), 0);
	for (size_t i = 0; i < after.n; i++) {
		uint64_t ri = moat_rollout_rank(key, after.id[i]);
		for (size_t k = 0; k < after.n; k++) {
			uint64_t rk = moat_rollout_rank(key, after.id[k]);
			if (ri < rk) {
				assert_true(after.phase[i] <= after.phase[k]);
			}
		}
		if (phase_in(&before, after.id[i]) >= 0) {
			continue;
		}
		int want = 3;
		uint64_t best = UINT64_MAX;
		for (size_t k = 0; k < before.n; k++) {
			uint64_t rk = moat_rollout_rank(key, before.id[k]);
			if (rk > ri && rk <= best) {
				best = rk;
				want = before.phase[k];
			}
		}
		assert_int_equal(after.phase[i], want);
	}
	/* taken once: the next tick takes nobody */
	seen.joined = 0;
	assert_int_equal(moat_rollout_tick(s->reg, 1005, join_change_cb, &seen, &err), 0);
	assert_int_equal(seen.joined, 0);
	struct moat_rollout_progress *p = malloc(sizeof(*p));
	assert_non_null(p);
	assert_int_equal(moat_rollout_progress(s->reg, row.id, 1005, p, &err), 0);
	size_t total = 0;
	for (int k = 0; k < 4; k++) {
		total += p->phases[k].devices;
	}
	assert_int_equal(total, 36);
	free(p);
}

/* ---- resuming a halted rollout accepts what halted it; new failures still count ---- */

static void upd(struct store *s, const char *dev, enum moat_update_stage stage, const char *running,
		int64_t at)
{
	struct moat_err err = {0};
	struct moat_update_event ev = {.stage = stage, .at = at};
	snprintf(ev.device, sizeof(ev.device), "%s", dev);
	snprintf(ev.version, sizeof(ev.version), "2.0.0");
	snprintf(ev.running, sizeof(ev.running), "%s", running);
	assert_int_equal(moat_registry_update_event_record(s->reg, &ev, &err), 0);
}

static void acl_denied(struct store *s, const char *dev, int64_t at_ms)
{
	struct moat_err err = {0};
	struct moat_security_event ev = {.time_ms = at_ms, .severity = MOAT_SEV_MEDIUM};
	snprintf(ev.kind, sizeof(ev.kind), "acl_denied");
	snprintf(ev.source, sizeof(ev.source), "broker");
	snprintf(ev.identity, sizeof(ev.identity), "%s", dev);
	snprintf(ev.run_id, sizeof(ev.run_id), "0123456789abcdef");
	assert_int_equal(moat_registry_security_event_add(s->reg, &ev, NULL, NULL, &err), 0);
}

static enum moat_rollout_state state_after_tick(struct store *s, int64_t id, int64_t now,
						struct moat_rollout_row *r)
{
	struct moat_err err = {0};
	assert_int_equal(moat_rollout_tick(s->reg, now, NULL, NULL, &err), 0);
	assert_int_equal(moat_registry_rollout_get(s->reg, id, r, &err), 0);
	return r->state;
}

static void test_store_rollout_accept(void **state)
{
	struct store *s = *state;
	struct moat_err err = {0};
	struct moat_group g = {.name = "all", .where = "type=sensor", .created_at = 1};
	assert_int_equal(moat_registry_group_insert(s->reg, &g, &err), 0);
	struct moat_release rel = tu_release("sensor", "2.0.0", 'f', 0);
	assert_int_equal(moat_registry_release_insert(s->reg, &rel, NULL, 0, &err), 0);
	static const int pct[] = {100};
	struct moat_rollout_req req = {.sha256_hex = rel.sha256_hex,
				       .group = "all",
				       .percent = pct,
				       .phase_count = 1,
				       .soak_s = 3600,
				       .silent_s = 3600,
				       .halt_failure_pct = 20, /* 1 of 6 fits, 2 do not */
				       .halt_on_events = true,
				       .now = 1000};
	struct moat_rollout_row row, r;
	assert_int_equal(moat_rollout_create(s->reg, &req, &row, &err), 0);
	upd(s, "a1", MOAT_UPD_REVERTED, "1.0.0", 1001);
	upd(s, "a2", MOAT_UPD_REFUSED, "", 1001);
	assert_int_equal(state_after_tick(s, row.id, 1002, &r), MOAT_ROLLOUT_HALTED);
	assert_non_null(strstr(r.cause, "failures: 2 of 6 devices"));
	/* plain resume is refused: the same failures would halt it again */
	assert_int_equal(moat_rollout_act(s->reg, row.id, MOAT_ROLLOUT_RESUME, false, 1003, &r,
					  &err),
			 MOAT_ESTATE);
	assert_non_null(strstr(err.msg, "--accept-failures"));
	assert_int_equal(moat_rollout_act(s->reg, row.id, MOAT_ROLLOUT_RESUME, true, 1003, &r,
					  &err),
			 0);
	assert_int_equal(r.accepted_at, 1003);
	assert_int_equal(state_after_tick(s, row.id, 1004, &r), MOAT_ROLLOUT_RUNNING);
	struct moat_rollout_progress *p = malloc(sizeof(*p));
	assert_non_null(p);
	assert_int_equal(moat_rollout_progress(s->reg, row.id, 1004, p, &err), 0);
	assert_int_equal(p->phases[0].accepted, 2);
	assert_int_equal(p->phases[0].by_state[MOAT_RD_REVERTED], 1);
	/* one new failure is within 20% of 6: still running; a second one halts again */
	upd(s, "a3", MOAT_UPD_REVERTED, "1.0.0", 1005);
	assert_int_equal(state_after_tick(s, row.id, 1006, &r), MOAT_ROLLOUT_RUNNING);
	upd(s, "a4", MOAT_UPD_REVERTED, "1.0.0", 1007);
	assert_int_equal(state_after_tick(s, row.id, 1008, &r), MOAT_ROLLOUT_HALTED);
	assert_non_null(strstr(r.cause, "4 of 6 devices reverted, refused or silent, 2 of them "
					"accepted before (threshold 20%)"));
	/* security: a5 on the new release is denied; accepted, then a new denial halts again */
	assert_int_equal(moat_rollout_act(s->reg, row.id, MOAT_ROLLOUT_RESUME, true, 1009, &r,
					  &err),
			 0);
	upd(s, "a5", MOAT_UPD_CONFIRMED, "2.0.0", 1010);
	acl_denied(s, "a5", 1011000);
	assert_int_equal(state_after_tick(s, row.id, 1012, &r), MOAT_ROLLOUT_HALTED);
	assert_non_null(strstr(r.cause, "security events: 1 of 1 devices on 2.0.0"));
	assert_int_equal(moat_rollout_act(s->reg, row.id, MOAT_ROLLOUT_RESUME, true, 1013, &r,
					  &err),
			 0);
	assert_int_equal(state_after_tick(s, row.id, 1014, &r), MOAT_ROLLOUT_RUNNING);
	acl_denied(s, "a5", 1015000);
	assert_int_equal(state_after_tick(s, row.id, 1016, &r), MOAT_ROLLOUT_HALTED);
	/* a resume never moves the phase's start: the reports since it still count */
	assert_int_equal(r.started_at[0], 1000);
	free(p);
}

/* ---- a confirmation moatd did not hear; outcomes kept however often a device checks ---- */

static void test_store_rollout_unheard_confirm(void **state)
{
	struct store *s = *state;
	struct moat_err err = {0};
	struct moat_group g = {.name = "all", .where = "type=sensor", .created_at = 1};
	assert_int_equal(moat_registry_group_insert(s->reg, &g, &err), 0);
	struct moat_release rel = tu_release("sensor", "2.0.0", 'f', 0);
	assert_int_equal(moat_registry_release_insert(s->reg, &rel, NULL, 0, &err), 0);
	static const int pct[] = {100};
	struct moat_rollout_req req = {.sha256_hex = rel.sha256_hex,
				       .group = "all",
				       .percent = pct,
				       .phase_count = 1,
				       .soak_s = 3600,
				       .silent_s = 3600,
				       .halt_failure_pct = 100,
				       .now = 1000};
	struct moat_rollout_row row;
	assert_int_equal(moat_rollout_create(s->reg, &req, &row, &err), 0);
	struct moat_rollout_progress *p = malloc(sizeof(*p));
	assert_non_null(p);
	/* a1 installed it and is on trial */
	upd(s, "a1", MOAT_UPD_INSTALLED, "1.0.0", 1001);
	assert_int_equal(moat_rollout_progress(s->reg, row.id, 1002, p, &err), 0);
	assert_int_equal(p->phases[0].by_state[MOAT_RD_INSTALLED], 1);
	/* its "confirmed" was lost; its next check says it runs 2.0.0: confirmed */
	upd(s, "a1", MOAT_UPD_CHECKED, "2.0.0", 1003);
	assert_int_equal(moat_rollout_progress(s->reg, row.id, 1004, p, &err), 0);
	assert_int_equal(p->phases[0].by_state[MOAT_RD_INSTALLED], 0);
	assert_int_equal(p->phases[0].by_state[MOAT_RD_CONFIRMED], 1);
	/* a2 reverted, then checks far more often than the events a device keeps: the checks
	 * are one event, and it stays reverted */
	upd(s, "a2", MOAT_UPD_REVERTED, "1.0.0", 1005);
	for (int i = 0; i < 2 * MOAT_UPDATE_EVENTS_KEEP_PER_DEVICE; i++) {
		upd(s, "a2", MOAT_UPD_CHECKED, "1.0.0", 1006 + i);
	}
	assert_int_equal(moat_rollout_progress(s->reg, row.id, 2000, p, &err), 0);
	assert_int_equal(p->phases[0].by_state[MOAT_RD_REVERTED], 1);
	assert_int_equal(p->phases[0].by_state[MOAT_RD_CONFIRMED], 1);
	/* a3's "installed" itself says it runs 2.0.0: nothing after it, still on trial */
	upd(s, "a3", MOAT_UPD_INSTALLED, "2.0.0", 2001);
	/* a4's "reverted" was lost; its next check says it runs 1.0.0 again: reverted */
	upd(s, "a4", MOAT_UPD_INSTALLED, "1.0.0", 2001);
	upd(s, "a4", MOAT_UPD_CHECKED, "1.0.0", 2002);
	assert_int_equal(moat_rollout_progress(s->reg, row.id, 2003, p, &err), 0);
	assert_int_equal(p->phases[0].by_state[MOAT_RD_INSTALLED], 1);
	assert_int_equal(p->phases[0].by_state[MOAT_RD_REVERTED], 2);
	assert_int_equal(p->phases[0].by_state[MOAT_RD_CONFIRMED], 1);
	free(p);
}

static struct moat_connguard *guard(unsigned max, unsigned per_source, unsigned per_device)
{
	const struct moat_connguard_limits l = {.handshake_ms = 2000,
						.header_ms = 5000,
						.max_connections = max,
						.unauth_per_source = per_source,
						.per_device = per_device};
	struct moat_connguard *g = NULL;
	struct moat_err err = {0};
	assert_int_equal(moat_connguard_new(&l, &g, &err), 0);
	return g;
}

/* admit + add, as moatd does for each accepted connection */
static struct moat_cg_conn *open_from(struct moat_connguard *g, const char *a, int64_t now,
				      struct moat_cg_conn **victim, enum moat_cg_reason *why)
{
	struct moat_cg_source s = src4(a);
	if (!moat_connguard_admit(g, &s, now, victim, why)) {
		return NULL;
	}
	return moat_connguard_add(g, &s, now, NULL);
}

static void test_connguard_sources(void **state)
{
	(void)state;
	struct moat_connguard *g = guard(6, 2, 4);
	struct moat_cg_conn *v = NULL;
	enum moat_cg_reason why;
	struct moat_cg_conn *a1 = open_from(g, "10.0.0.1", 0, &v, &why);
	assert_null(v);
	struct moat_cg_conn *a2 = open_from(g, "10.0.0.1", 1, &v, &why);
	assert_null(v);
	/* a third from the same source closes its oldest, never refuses the newcomer */
	struct moat_cg_conn *a3 = open_from(g, "10.0.0.1", 2, &v, &why);
	assert_non_null(a3);
	assert_ptr_equal(v, a1);
	assert_int_equal(why, MOAT_CG_SOURCE_LIMIT);
	assert_true(moat_cg_conn_closing(a1));
	/* an authenticated connection of that source no longer counts against it */
	moat_connguard_tls_done(a2);
	assert_int_equal(moat_connguard_authenticated(g, a2, "dev1"), MOAT_CG_OK);
	assert_non_null(open_from(g, "10.0.0.1", 3, &v, &why));
	assert_null(v);
	moat_connguard_remove(g, a1);
	/* fill up: b holds 2 unauthenticated, c 1; 10.0.0.1 holds 2 (a3, a4) + a2 authed */
	struct moat_cg_conn *b1 = open_from(g, "10.0.0.2", 4, &v, &why);
	assert_null(v);
	assert_non_null(open_from(g, "10.0.0.2", 5, &v, &why));
	assert_null(v);
	struct moat_cg_counts n;
	moat_connguard_counts(g, &n);
	assert_int_equal(n.live, 5);
	assert_non_null(open_from(g, "10.0.0.3", 6, &v, &why));
	assert_null(v);
	/* full: the oldest of the heaviest sources (a3 of 10.0.0.1 ties b1 and is older) */
	assert_non_null(open_from(g, "10.0.0.4", 7, &v, &why));
	assert_ptr_equal(v, a3);
	assert_int_equal(why, MOAT_CG_SERVER_FULL);
	assert_non_null(open_from(g, "10.0.0.5", 8, &v, &why));
	assert_ptr_equal(v, b1);
	moat_connguard_free(g);
}

static void test_connguard_full_of_devices(void **state)
{
	(void)state;
	struct moat_connguard *g = guard(2, 4, 4);
	struct moat_cg_conn *v = NULL;
	enum moat_cg_reason why;
	struct moat_cg_conn *a = open_from(g, "10.0.0.1", 0, &v, &why);
	struct moat_cg_conn *b = open_from(g, "10.0.0.2", 0, &v, &why);
	assert_int_equal(moat_connguard_authenticated(g, a, "dev1"), MOAT_CG_OK);
	assert_int_equal(moat_connguard_authenticated(g, b, "dev2"), MOAT_CG_OK);
	/* authenticated connections are never closed to make room */
	struct moat_cg_source s = src4("10.0.0.3");
	assert_false(moat_connguard_admit(g, &s, 1, &v, &why));
	assert_null(v);
	assert_int_equal(why, MOAT_CG_SERVER_FULL);
	moat_connguard_free(g);
}

static void test_connguard_deadlines(void **state)
{
	(void)state;
	struct moat_connguard *g = guard(10, 10, 1);
	struct moat_cg_conn *v = NULL;
	enum moat_cg_reason why;
	struct moat_cg_conn *hs = open_from(g, "10.0.0.1", 0, &v, &why);
	struct moat_cg_conn *hd = open_from(g, "10.0.0.2", 0, &v, &why);
	struct moat_cg_conn *dev = open_from(g, "10.0.0.3", 0, &v, &why);
	moat_connguard_tls_done(hd);
	moat_connguard_tls_done(dev);
	assert_int_equal(moat_connguard_next_due(g, 0), 2000);
	assert_null(moat_connguard_expired(g, 1999, &why));
	/* trickled bytes are not a call here: nothing moves a deadline but the steps */
	assert_ptr_equal(moat_connguard_expired(g, 2000, &why), hs);
	assert_int_equal(why, MOAT_CG_HANDSHAKE_DEADLINE);
	assert_null(moat_connguard_expired(g, 2000, &why));
	moat_connguard_request_start(dev);
	assert_int_equal(moat_connguard_authenticated(g, dev, "dev1"), MOAT_CG_OK);
	assert_int_equal(moat_connguard_next_due(g, 2000), 3000);
	assert_ptr_equal(moat_connguard_expired(g, 5000, &why), hd);
	assert_int_equal(why, MOAT_CG_HEADER_DEADLINE);
	/* in a request (its response running): no deadline; after it, header_ms again */
	assert_null(moat_connguard_expired(g, 60000, &why));
	assert_int_equal(moat_connguard_next_due(g, 60000), -1);
	moat_connguard_request_done(dev, 60000);
	assert_null(moat_connguard_expired(g, 64999, &why));
	assert_ptr_equal(moat_connguard_expired(g, 65000, &why), dev);
	assert_int_equal(why, MOAT_CG_IDLE);
	moat_connguard_free(g);
}

static void test_connguard_per_device(void **state)
{
	(void)state;
	struct moat_connguard *g = guard(10, 10, 2);
	struct moat_cg_conn *v = NULL;
	enum moat_cg_reason why;
	struct moat_cg_conn *c[3];
	for (int i = 0; i < 3; i++) {
		c[i] = open_from(g, "10.0.0.1", 0, &v, &why);
	}
	assert_int_equal(moat_connguard_authenticated(g, c[0], "dev1"), MOAT_CG_OK);
	assert_int_equal(moat_connguard_authenticated(g, c[1], "dev1"), MOAT_CG_OK);
	assert_int_equal(moat_connguard_authenticated(g, c[2], "dev1"), MOAT_CG_DEVICE_LIMIT);
	assert_false(moat_cg_conn_authenticated(c[2]));
	assert_int_equal(moat_connguard_authenticated(g, c[2], "dev2"), MOAT_CG_OK);
	assert_int_equal(moat_connguard_authenticated(g, c[0], "dev1"), MOAT_CG_OK);
	moat_connguard_remove(g, c[0]);
	struct moat_cg_conn *d = open_from(g, "10.0.0.1", 0, &v, &why);
	assert_int_equal(moat_connguard_authenticated(g, d, "dev1"), MOAT_CG_OK);
	moat_connguard_free(g);
}

/* The source limit never closes a connection inside a request (an EST enrollment may be
 * committed, its answer on the way): the oldest between requests goes, and when every one
 * is inside a request the newcomer is refused. */
static void test_connguard_source_in_request(void **state)
{
	(void)state;
	struct moat_connguard *g = guard(16, 2, 4);
	struct moat_cg_conn *v = NULL;
	enum moat_cg_reason why;
	struct moat_cg_conn *a1 = open_from(g, "10.0.0.1", 0, &v, &why);
	struct moat_cg_conn *a2 = open_from(g, "10.0.0.1", 1, &v, &why);
	assert_non_null(a1);
	assert_non_null(a2);
	moat_connguard_tls_done(a1);
	moat_connguard_request_start(a1);
	struct moat_cg_conn *a3 = open_from(g, "10.0.0.1", 2, &v, &why);
	assert_non_null(a3);
	assert_ptr_equal(v, a2); /* not a1, the oldest: it is answering a request */
	assert_int_equal(why, MOAT_CG_SOURCE_LIMIT);
	assert_false(moat_cg_conn_closing(a1));
	moat_connguard_remove(g, a2);
	moat_connguard_tls_done(a3);
	moat_connguard_request_start(a3);
	v = NULL;
	assert_null(open_from(g, "10.0.0.1", 3, &v, &why));
	assert_null(v);
	assert_int_equal(why, MOAT_CG_SOURCE_LIMIT);
	assert_false(moat_cg_conn_closing(a1));
	assert_false(moat_cg_conn_closing(a3));
	/* once a request is answered its connection may make room again */
	moat_connguard_request_done(a1, 4);
	assert_non_null(open_from(g, "10.0.0.1", 5, &v, &why));
	assert_ptr_equal(v, a1);
	moat_connguard_free(g);
}

static void test_connguard_events(void **state)
{
	(void)state;
	struct moat_connguard *g = guard(10, 10, 2);
	struct moat_cg_source a = src4("10.0.0.1");
	struct moat_cg_source b = src4("10.0.0.2");
	uint64_t sup = 0;
	for (int i = 0; i < MOAT_CG_EVENTS_PER_SOURCE; i++) {
		assert_true(moat_connguard_event_allowed(g, MOAT_CG_HEADER_DEADLINE, &a, 0, &sup));
	}
	assert_false(moat_connguard_event_allowed(g, MOAT_CG_HEADER_DEADLINE, &a, 0, &sup));
	/* another kind from the same source, and another source, are not suppressed */
	assert_true(moat_connguard_event_allowed(g, MOAT_CG_SOURCE_LIMIT, &a, 0, &sup));
	assert_true(moat_connguard_event_allowed(g, MOAT_CG_HEADER_DEADLINE, &b, 0, &sup));
	/* the next one written for a and that kind says what was left out */
	assert_true(moat_connguard_event_allowed(g, MOAT_CG_HEADER_DEADLINE, &a, 1000, &sup));
	assert_int_equal(sup, 1);
	assert_int_equal(moat_connguard_suppressed(g, MOAT_CG_HEADER_DEADLINE), 1);
	assert_int_equal(moat_connguard_suppressed(g, MOAT_CG_HEADER_DEADLINE), 0);
	/* a kind's budget holds across sources */
	int written = 0;
	for (int i = 0; i < 100; i++) {
		char addr[32];
		snprintf(addr, sizeof(addr), "10.1.%d.%d", i / 200, i % 200 + 1);
		struct moat_cg_source s = src4(addr);
		written +=
			moat_connguard_event_allowed(g, MOAT_CG_HANDSHAKE_DEADLINE, &s, 5000, &sup);
	}
	assert_int_equal(written, MOAT_CG_EVENTS_PER_KIND);
	assert_int_equal(moat_connguard_suppressed(g, MOAT_CG_HANDSHAKE_DEADLINE),
			 100 - MOAT_CG_EVENTS_PER_KIND);
	assert_true(moat_connguard_event_allowed(g, MOAT_CG_AUTH_REFUSED, &a, 5000, &sup));
	moat_connguard_free(g);
}

static void test_connguard_refusals(void **state)
{
	(void)state;
	struct moat_err err = {0};
	struct moat_connguard *g = NULL;
	struct moat_connguard_limits l = {.handshake_ms = 3000,
					  .header_ms = 2000,
					  .max_connections = 1,
					  .unauth_per_source = 1,
					  .per_device = 1};
	assert_int_equal(moat_connguard_new(&l, &g, &err), MOAT_EINVAL);
	l.handshake_ms = 1000;
	l.max_connections = 0;
	assert_int_equal(moat_connguard_new(&l, &g, &err), MOAT_EINVAL);
	assert_null(g);
	struct sockaddr_un {
		sa_family_t f;
	} un = {.f = AF_UNIX};
	struct moat_cg_source s;
	assert_int_equal(moat_cg_source_from((struct sockaddr *)&un, sizeof(un), &s, &err),
			 MOAT_EINVAL);
	/* IPv6: one /64 is one source; IPv4-mapped counts as IPv4 */
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	struct sockaddr_in6 b6 = {.sin6_family = AF_INET6};
	assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:2::1", &a6.sin6_addr), 1);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:2:ffff::9", &b6.sin6_addr), 1);
	struct moat_cg_source sa, sb;
	assert_int_equal(moat_cg_source_from((struct sockaddr *)&a6, sizeof(a6), &sa, &err), 0);
	assert_int_equal(moat_cg_source_from((struct sockaddr *)&b6, sizeof(b6), &sb, &err), 0);
	assert_int_equal(sa.key_len, 8);
	assert_memory_equal(sa.key, sb.key, 8);
	assert_int_equal(inet_pton(AF_INET6, "::ffff:10.0.0.1", &a6.sin6_addr), 1);
	assert_int_equal(moat_cg_source_from((struct sockaddr *)&a6, sizeof(a6), &sa, &err), 0);
	struct moat_cg_source s4 = src4("10.0.0.1");
	assert_int_equal(sa.key_len, 4);
	assert_memory_equal(sa.key, s4.key, 4);
	assert_string_equal(sa.text, "10.0.0.1");
}

static void test_httpd_limits(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		const char *want; /* NULL: accepted */
	} rows[] = {
		{"", NULL},
		{"handshake_timeout = 5s\nheader_timeout = 5s", NULL},
		{"handshake_timeout = 0", "out of range"},
		{"handshake_timeout = 301s", "out of range"},
		{"handshake_timeout = 30", "needs a unit"},
		{"header_timeout = 11m", "out of range"},
		{"header_timeout = 5s", "above header_timeout"},
		{"idle_timeout = 4s", "out of range"},
		{"idle_timeout = x", "not a duration"},
		{"max_connections = 15", "out of range"},
		{"max_connections = 65537", "out of range"},
		{"unauthenticated_per_source = 0", "out of range"},
		{"connections_per_device = 1025", "out of range"},
		{"connections_per_device = -1", "out of range"},
		{"per_ip = 3", "unknown key"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), "[server]\nport = 8443\n%s\n", rows[i].line);
		struct moat_config *cfg = NULL;
		struct moat_err err = {0};
		assert_int_equal(moat_config_parse("moat.conf", text, strlen(text), &cfg, &err), 0);
		struct moat_httpd_limits l = {0};
		int rc = moat_httpd_limits_load(cfg, &l, &err);
		if (!rows[i].want) {
			assert_int_equal(rc, 0);
			assert_true(l.handshake_timeout_s <= l.header_timeout_s);
		} else {
			if (rc == 0 || !strstr(err.msg, rows[i].want)) {
				fail_msg("row %zu (%s): rc %d, '%s'", i, rows[i].line, rc, err.msg);
			}
			assert_int_equal(l.max_connections, 0); /* nothing written */
		}
		moat_config_free(cfg);
	}
	struct moat_config *cfg = NULL;
	struct moat_err err = {0};
	assert_int_equal(moat_config_parse("moat.conf", "", 0, &cfg, &err), 0);
	struct moat_httpd_limits l;
	assert_int_equal(moat_httpd_limits_load(cfg, &l, &err), 0);
	assert_int_equal(l.handshake_timeout_s, MOAT_HTTPD_HANDSHAKE_TIMEOUT_DEFAULT);
	assert_int_equal(l.header_timeout_s, MOAT_HTTPD_HEADER_TIMEOUT_DEFAULT);
	assert_int_equal(l.max_connections, MOAT_HTTPD_MAX_CONNECTIONS_DEFAULT);
	assert_int_equal(l.unauthenticated_per_source, MOAT_HTTPD_UNAUTH_PER_SOURCE_DEFAULT);
	assert_int_equal(l.connections_per_device, MOAT_HTTPD_PER_DEVICE_DEFAULT);
	moat_config_free(cfg);
}

static void test_est_routes(void **state)
{
	(void)state;
	assert_int_equal(moat_http_route_parse("/.well-known/est/cacerts", NULL),
			 MOAT_ROUTE_EST_CACERTS);
	assert_int_equal(moat_http_route_parse("/.well-known/est/simpleenroll", NULL),
			 MOAT_ROUTE_EST_SIMPLEENROLL);
	assert_int_equal(moat_http_route_parse("/.well-known/est/simplereenroll", NULL),
			 MOAT_ROUTE_EST_SIMPLEREENROLL);
	assert_int_equal(moat_http_route_parse("/.well-known/est/csrattrs", NULL),
			 MOAT_ROUTE_EST_CSRATTRS);
	static const char *const not_est[] = {
		"/.well-known/est/",	     "/.well-known/est/cacerts/",
		"/.well-known/est//cacerts", "/.well-known/est/label/cacerts",
		"/.well-known/est/CACERTS",  "/.well-known/est/serverkeygen",
		"/.well-known/est/fullcmc",  "//.well-known/est/cacerts",
	};
	for (size_t i = 0; i < sizeof(not_est) / sizeof(not_est[0]); i++) {
		enum moat_http_route r = moat_http_route_parse(not_est[i], NULL);
		if (moat_http_route_is_est(r)) {
			fail_msg("%s routed to EST", not_est[i]);
		}
	}
	assert_false(moat_http_route_is_est(MOAT_ROUTE_VERSION));
}

static void test_est_basic_auth(void **state)
{
	(void)state;
	char user[MOAT_ID_BUF_LEN];
	char pass[MOAT_EST_PASSWORD_MAX_LEN + 1];
	/* "dev-1:0123abcd" */
	assert_int_equal(moat_est_basic_auth_parse("Basic ZGV2LTE6MDEyM2FiY2Q=", user, pass),
			 MOAT_BASIC_OK);
	assert_string_equal(user, "dev-1");
	assert_string_equal(pass, "0123abcd");
	assert_int_equal(moat_est_basic_auth_parse("basic ZGV2LTE6MDEyM2FiY2Q=", user, pass),
			 MOAT_BASIC_OK);
	assert_int_equal(moat_est_basic_auth_parse(NULL, user, pass), MOAT_BASIC_NONE);
	static const char *const bad[] = {
		"Bearer ZGV2LTE6MDEyM2FiY2Q=", /* another scheme */
		"Basic",
		"Basic ",
		"Basic ZGV2LTE6MDEyM2FiY2Q",   /* unpadded */
		"Basic  ZGV2LTE6MDEyM2FiY2Q=", /* two spaces */
		"Basic ZGV2LTEwMTIzYWJjZA==",  /* "dev-10123abcd": no ':' */
		"Basic OnRva2Vu",	       /* ":token": no user */
		"Basic ZGV2LTE6",	       /* "dev-1:": no password */
		"Basic RGV2LTE6dG9rZW4=",      /* "Dev-1:token": not an identity */
		"Basic ZGV2LTE6dG8ga2Vu",      /* "dev-1:to ken": a space */
		"Basic ZGV2AC0xOnRva2Vu",      /* "dev\0-1:token": a NUL in the user */
		"Basic ZGV2LTE6dG9rAGVu",      /* "dev-1:tok\0en": a NUL in the password */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (moat_est_basic_auth_parse(bad[i], user, pass) != MOAT_BASIC_MALFORMED) {
			fail_msg("'%s' accepted", bad[i]);
		}
		assert_string_equal(user, "");
		assert_string_equal(pass, "");
	}
	char longv[MOAT_EST_HEADER_MAX_LEN + 16];
	memset(longv, 'A', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	memcpy(longv, "Basic ", 6);
	assert_int_equal(moat_est_basic_auth_parse(longv, user, pass), MOAT_BASIC_MALFORMED);
}

static void test_est_headers(void **state)
{
	(void)state;
	assert_true(moat_est_content_type_ok("application/pkcs10"));
	assert_true(moat_est_content_type_ok("Application/PKCS10"));
	assert_true(moat_est_content_type_ok("application/pkcs10; charset=binary"));
	assert_false(moat_est_content_type_ok(NULL));
	assert_false(moat_est_content_type_ok("application/pkcs7-mime"));
	assert_false(moat_est_content_type_ok("application/pkcs10x"));
	assert_false(moat_est_content_type_ok("text/plain; application/pkcs10"));
	assert_true(moat_est_transfer_encoding_ok(NULL));
	assert_true(moat_est_transfer_encoding_ok("base64"));
	assert_true(moat_est_transfer_encoding_ok("BASE64"));
	assert_false(moat_est_transfer_encoding_ok("binary"));
	assert_false(moat_est_transfer_encoding_ok("8bit"));
}

static void test_est_body(void **state)
{
	(void)state;
	unsigned char der[300];
	for (size_t i = 0; i < sizeof(der); i++) {
		der[i] = (unsigned char)(i * 7);
	}
	size_t len = 0;
	char *b64 = moat_est_body_encode(der, sizeof(der), &len);
	assert_non_null(b64);
	assert_int_equal(strlen(b64), len);
	assert_null(strchr(b64, '\r'));
	assert_int_equal(strcspn(b64, "\n"), 64);
	free(b64);
	b64 = moat_est_body_encode(der, sizeof(der), &len);
	unsigned char out[400];
	size_t n = 0;
	assert_int_equal(moat_est_body_decode(b64, len, out, sizeof(out), &n), 0);
	assert_int_equal(n, sizeof(der));
	assert_memory_equal(out, der, sizeof(der));
	/* too small a buffer, stray bytes, bad padding, nothing at all */
	assert_int_equal(moat_est_body_decode(b64, len, out, 10, &n), MOAT_EINVAL);
	free(b64);
	static const char *const bad[] = {"AAAA*AAA", "AAA", "AA=A", "\r\n \t", "AAAA\0AAA"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t blen = i == 4 ? 9 : strlen(bad[i]);
		if (moat_est_body_decode(bad[i], blen, out, sizeof(out), &n) == 0) {
			fail_msg("body %zu accepted", i);
		}
	}
	assert_int_equal(moat_est_body_decode(" QU\r\nJD\n", 8, out, sizeof(out), &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "ABC", 3);
	char *huge = malloc(MOAT_EST_BODY_MAX + 4);
	assert_non_null(huge);
	memset(huge, 'A', MOAT_EST_BODY_MAX + 4);
	assert_int_equal(moat_est_body_decode(huge, MOAT_EST_BODY_MAX + 4, out, sizeof(out), &n),
			 MOAT_EINVAL);
	free(huge);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route),
		cmocka_unit_test(test_unescape),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_est_routes),
		cmocka_unit_test(test_est_basic_auth),
		cmocka_unit_test(test_est_headers),
		cmocka_unit_test(test_est_body),
		cmocka_unit_test(test_rollout_bucket),
		cmocka_unit_test(test_update_event_parse),
		cmocka_unit_test(test_connguard_sources),
		cmocka_unit_test(test_connguard_source_in_request),
		cmocka_unit_test(test_connguard_full_of_devices),
		cmocka_unit_test(test_connguard_deadlines),
		cmocka_unit_test(test_connguard_per_device),
		cmocka_unit_test(test_connguard_events),
		cmocka_unit_test(test_connguard_refusals),
		cmocka_unit_test(test_httpd_limits),
		cmocka_unit_test_setup_teardown(test_store_releases, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_store_events, store_setup, store_teardown),
		cmocka_unit_test_setup_teardown(test_store_rollout_join, store_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_store_rollout_accept, store_setup,
						store_teardown),
		cmocka_unit_test_setup_teardown(test_store_rollout_unheard_confirm, store_setup,
						store_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
