/* test_export.c: pins the contracts of src/monitor (monitor_export.h): the URL parser and
 * every rejection, the security-event reader and its refusals, the three SIEM framings
 * byte for byte (escaping included), the alert queue (deduplication, the bound, its file
 * and every way a file is refused), the webhook bodies, the HTTP status line, [monitor]'s
 * settings and their refusals, and the metrics text from a registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "moat/buf.h"
#include "moat/config.h"
#include "moat/identity.h"
#include "moat/monitor_export.h"
#include "moat/opclient.h"
#include "moat/registry.h"
#include "testutil.h"

static void test_url_accepts(void **state)
{
	(void)state;
	struct moat_export_url u;
	struct moat_err err = {0};
	assert_int_equal(moat_export_url_parse("tls://siem.example.com:6514", &u, &err), 0);
	assert_int_equal(u.scheme, MOAT_EXPORT_TLS);
	assert_string_equal(u.host, "siem.example.com");
	assert_false(u.host_is_ip);
	assert_int_equal(u.port, 6514);
	assert_string_equal(u.path, "");
	assert_int_equal(moat_export_url_parse("tcp://127.0.0.1:514/", &u, &err), 0);
	assert_true(u.host_is_ip);
	assert_int_equal(moat_export_url_parse("https://[::1]:8443/a/b?c=d", &u, &err), 0);
	assert_string_equal(u.host, "::1");
	assert_true(u.host_is_ip);
	assert_string_equal(u.path, "/a/b?c=d");
	assert_int_equal(moat_export_url_parse("https://hooks.example.com", &u, &err), 0);
	assert_int_equal(u.port, 443);
	assert_string_equal(u.path, "/");
	assert_int_equal(moat_export_url_parse("https://h?x=1", &u, &err), 0);
	assert_string_equal(u.path, "/?x=1");
}

static void test_url_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"udp://h:514",	   "http://h/x",      "TLS://h:1",	"tls://h",
		"tcp://h:0",	   "tcp://h:65536",   "tcp://h:123456", "tcp://h:1x",
		"tcp://:514",	   "tls://h:1/path",  "tls://h:1?q",	"https://u@h/",
		"https://h/#frag", "https://h /",     "https://h/\x01", "https://[::1/",
		"https://[zz]:1/", "https://[::1]x/", "https://-h/",	"https://h-/",
		"https://a..b/",   "https://.h/",     "https://h_1/",	"",
		"tls://[::1]:",	   "https://h:/x",    "tcp://h:-1",	"https://h\xc3\xa9/",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct moat_export_url u;
		struct moat_err err = {0};
		if (moat_export_url_parse(bad[i], &u, &err) != MOAT_EINVAL) {
			fail_msg("accepted: %s", bad[i]);
		}
		assert_true(strncmp(err.msg, "URL", 3) == 0);
	}
	struct moat_export_url u;
	struct moat_err err = {0};
	assert_int_equal(moat_export_url_parse(NULL, &u, &err), MOAT_EINVAL);
	char longurl[MOAT_EXPORT_URL_MAX_LEN + 16];
	memset(longurl, 'a', sizeof(longurl) - 1);
	longurl[sizeof(longurl) - 1] = '\0';
	memcpy(longurl, "https://h/", 10);
	assert_int_equal(moat_export_url_parse(longurl, &u, &err), MOAT_EINVAL);
	assert_non_null(strstr(err.msg, "longer"));
}

static const char ev_text[] =
	"{\"time\":\"x\",\"time_ms\":1796245200123,\"kind\":\"acl_denied\",\"identity\":\"dev1\","
	"\"client_id\":\"dev1\",\"address\":\"127.0.0.1\",\"reason\":\"r|=\\\\\","
	"\"detail\":\"a \\\"q\\\" ]d\",\"count\":2,\"suppressed\":1,\"topic\":\"x\"}";

static void test_event_parse(void **state)
{
	(void)state;
	struct moat_sec_event ev;
	struct moat_err err = {0};
	assert_int_equal(moat_sec_event_parse(ev_text, strlen(ev_text), &ev, &err), 0);
	assert_string_equal(ev.kind, "acl_denied");
	assert_int_equal(ev.time_ms, 1796245200123);
	assert_string_equal(ev.reason, "r|=\\");
	assert_string_equal(ev.detail, "a \"q\" ]d");
	assert_int_equal(ev.count, 2);
	assert_int_equal(ev.suppressed, 1);
	char json[1024];
	size_t len = 0;
	struct moat_sec_event back;
	assert_true(moat_sec_event_json(&ev, json, sizeof(json), &len));
	assert_int_equal(moat_sec_event_parse(json, len, &back, &err), 0);
	assert_memory_equal(&ev, &back, sizeof(ev));
	assert_false(moat_sec_event_json(&ev, json, 40, &len));
	assert_null(strstr(json, "repeats")); /* only when there are some */
	/* a record that stands for repeats says so, and reads back */
	ev.repeats = 4;
	assert_true(moat_sec_event_json(&ev, json, sizeof(json), &len));
	assert_non_null(strstr(json, ",\"suppressed\":1,\"repeats\":4}"));
	assert_int_equal(moat_sec_event_parse(json, len, &back, &err), 0);
	assert_memory_equal(&ev, &back, sizeof(ev));
	static const char bad_repeats[] = "{\"time_ms\":1,\"kind\":\"k\",\"repeats\":-1}";
	assert_int_equal(moat_sec_event_parse(bad_repeats, strlen(bad_repeats), &back, &err),
			 MOAT_EINVAL);
	assert_true(moat_sec_event_alerts("acl_denied"));
	assert_false(moat_sec_event_alerts("connected"));
	assert_false(moat_sec_event_alerts("disconnected"));
}

static void test_event_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"[]",
		"{\"time_ms\":1}",
		"{\"kind\":\"a\"}",
		"{\"kind\":\"Bad\",\"time_ms\":1}",
		"{\"kind\":\"a b\",\"time_ms\":1}",
		"{\"kind\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"time_ms\":1}",
		"{\"kind\":\"a\",\"time_ms\":-1}",
		"{\"kind\":\"a\",\"time_ms\":1.5}",
		"{\"kind\":\"a\",\"time_ms\":\"1\"}",
		"{\"kind\":\"a\",\"time_ms\":1e300}",
		"{\"kind\":\"a\",\"time_ms\":1,\"count\":-2}",
		"{\"kind\":\"a\",\"time_ms\":1,\"identity\":5}",
		"{\"kind\":\"a\",\"time_ms\":1,\"identity\":\"\\u00e9\"}",
		"{\"kind\":\"a\",\"time_ms\":1,\"detail\":\"x\\ny\"}",
		"{\"kind\":\"a\",\"kind\":\"b\",\"time_ms\":1}",
		"{\"kind\":\"a\",\"time_ms\":1}x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct moat_sec_event ev;
		struct moat_err err = {0};
		if (moat_sec_event_parse(bad[i], strlen(bad[i]), &ev, &err) == 0) {
			fail_msg("accepted: %s", bad[i]);
		}
	}
}

static struct moat_sec_event sample_event(void)
{
	struct moat_sec_event ev;
	struct moat_err err = {0};
	assert_int_equal(moat_sec_event_parse(ev_text, strlen(ev_text), &ev, &err), 0);
	return ev;
}

static void test_frames(void **state)
{
	(void)state;
	struct moat_sec_event ev = sample_event();
	char out[MOAT_SIEM_FRAME_MAX];
	size_t n = moat_siem_frame(MOAT_SIEM_RFC5424, &ev, "gw 1", out, sizeof(out));
	const char *rec = "<84>1 2026-12-02T21:00:00.123Z gw1 moat - acl_denied [moat@32473 "
			  "kind=\"acl_denied\" identity=\"dev1\" client_id=\"dev1\" "
			  "address=\"127.0.0.1\" reason=\"r|=\\\\\" detail=\"a \\\"q\\\" \\]d\" "
			  "count=\"2\" suppressed=\"1\"] security event acl_denied identity=dev1";
	char want[MOAT_SIEM_FRAME_MAX];
	snprintf(want, sizeof(want), "%zu %s", strlen(rec), rec);
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));

	n = moat_siem_frame(MOAT_SIEM_CEF, &ev, NULL, out, sizeof(out));
	assert_true(n > 0);
	assert_non_null(strstr(out, " moat - acl_denied - CEF:0|moat|moat|" MOAT_VERSION
				    "|acl_denied|acl_denied|5|rt=1796245200123 suser=dev1 "
				    "cs1Label=client_id cs1=dev1 src=127.0.0.1 reason=r|\\=\\\\ "
				    "msg=a \"q\" ]d cnt=2"));

	n = moat_siem_frame(MOAT_SIEM_JSON, &ev, "h", out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal(out[n - 1], '\n');
	assert_int_equal(out[0], '{');
	/* too small: nothing, never a cut record */
	assert_int_equal(moat_siem_frame(MOAT_SIEM_RFC5424, &ev, "h", out, 64), 0);
	assert_int_equal(moat_siem_frame(MOAT_SIEM_JSON, &ev, "h", out, 64), 0);
	assert_int_equal(moat_siem_frame(MOAT_SIEM_CEF, &ev, "h", out, 0), 0);
	/* repeats (the exporter's deduplication) in each format */
	ev.repeats = 7;
	assert_true(moat_siem_frame(MOAT_SIEM_RFC5424, &ev, "h", out, sizeof(out)) > 0);
	assert_non_null(strstr(out, "count=\"2\" suppressed=\"1\" repeats=\"7\"] security"));
	assert_true(moat_siem_frame(MOAT_SIEM_CEF, &ev, "h", out, sizeof(out)) > 0);
	assert_non_null(strstr(out, " cnt=2 cn1Label=repeats cn1=7"));
	assert_true(moat_siem_frame(MOAT_SIEM_JSON, &ev, "h", out, sizeof(out)) > 0);
	assert_non_null(strstr(out, "\"repeats\":7}\n"));

	enum moat_siem_format f;
	struct moat_err err = {0};
	assert_int_equal(moat_siem_format_parse("cef", &f, &err), 0);
	assert_int_equal(f, MOAT_SIEM_CEF);
	assert_int_equal(moat_siem_format_parse("CEF", &f, &err), MOAT_EINVAL);
	assert_int_equal(moat_siem_format_parse("leef", &f, &err), MOAT_EINVAL);
	assert_int_equal(moat_siem_format_parse(NULL, &f, &err), MOAT_EINVAL);
}

static void test_alert_queue(void **state)
{
	(void)state;
	struct moat_alert_queue q;
	moat_alert_queue_init(&q, 2);
	struct moat_sec_event ev = sample_event();
	assert_true(moat_alert_queue_add(&q, &ev, 100));
	assert_false(moat_alert_queue_add(&q, &ev, 200)); /* deduplicated */
	assert_int_equal(q.len, 1);
	assert_int_equal(q.items[0].count, 4);
	assert_int_equal(q.items[0].next_ms, 100);
	snprintf(ev.reason, sizeof(ev.reason), "other");
	assert_true(moat_alert_queue_add(&q, &ev, 300));
	snprintf(ev.reason, sizeof(ev.reason), "third");
	assert_true(moat_alert_queue_add(&q, &ev, 400)); /* full: the oldest goes */
	assert_int_equal(q.len, 2);
	assert_int_equal(q.dropped, 1);
	assert_string_equal(q.items[0].reason, "other");

	char *text = NULL;
	size_t len = 0;
	struct moat_err err = {0};
	assert_int_equal(moat_alert_queue_encode(&q, &text, &len, &err), 0);
	struct moat_alert_queue back;
	moat_alert_queue_init(&back, 10);
	assert_int_equal(moat_alert_queue_decode(text, len, &back, &err), 0);
	assert_int_equal(back.len, 2);
	assert_int_equal(back.dropped, 1);
	assert_memory_equal(back.items, q.items, 2 * sizeof(q.items[0]));
	/* a smaller bound drops the oldest and counts them */
	struct moat_alert_queue small;
	moat_alert_queue_init(&small, 1);
	assert_int_equal(moat_alert_queue_decode(text, len, &small, &err), 0);
	assert_int_equal(small.len, 1);
	assert_int_equal(small.dropped, 2);
	free(text);

	char *body = NULL;
	assert_int_equal(moat_alert_body(q.items, 1, 0, "dep", &body, &len, &err), 0);
	assert_non_null(strstr(body, "\"summary\":false"));
	assert_non_null(strstr(body, "\"deployment\":\"dep\""));
	free(body);
	assert_int_equal(moat_alert_body(q.items, 2, 7, "dep", &body, &len, &err), 0);
	assert_non_null(strstr(body, "\"summary\":true"));
	assert_non_null(strstr(body, "\"alerts\":2"));
	assert_non_null(strstr(body, "\"dropped\":7"));
	assert_non_null(strstr(body, "\"kinds\":{\"acl_denied\":4}"));
	free(body);

	moat_alert_queue_remove(&q, 0);
	assert_int_equal(q.len, 1);
	moat_alert_queue_remove(&q, 5);
	assert_int_equal(q.len, 1);
	moat_alert_queue_free(&q);
	moat_alert_queue_free(&back);
	moat_alert_queue_free(&small);
}

static void test_alert_queue_rejects(void **state)
{
	(void)state;
#define A(fields) "{\"version\":1,\"dropped\":0,\"alerts\":[{" fields "}]}"
#define OK_FIELDS                                                                             \
	"\"identity\":\"d\",\"reason\":\"r\",\"address\":\"a\",\"first_ms\":1,\"last_ms\":2," \
	"\"count\":3,\"attempts\":0,\"next_ms\":5"
	static const char *const bad[] = {
		"",
		"{}",
		"{\"version\":2,\"dropped\":0,\"alerts\":[]}",
		"{\"version\":1,\"dropped\":0,\"alerts\":{}}",
		"{\"version\":1,\"alerts\":[]}",
		"{\"version\":1,\"dropped\":-1,\"alerts\":[]}",
		"{\"version\":1,\"dropped\":0,\"alerts\":[1]}",
		A("\"kind\":\"Bad\"," OK_FIELDS),
		A("\"kind\":\"\"," OK_FIELDS),
		A(OK_FIELDS),
		A("\"kind\":\"k\",\"identity\":\"d\",\"reason\":\"r\",\"address\":\"a\","
		  "\"first_ms\":3,\"last_ms\":2,\"count\":3,\"attempts\":0,\"next_ms\":5"),
		A("\"kind\":\"k\",\"identity\":\"d\",\"reason\":\"r\",\"address\":\"a\","
		  "\"first_ms\":1,\"last_ms\":2,\"count\":0,\"attempts\":0,\"next_ms\":5"),
		A("\"kind\":\"k\",\"identity\":\"d\",\"reason\":\"r\",\"address\":\"a\","
		  "\"first_ms\":1,\"last_ms\":2,\"count\":1,\"attempts\":4294967296,\"next_ms\":5"),
		A("\"kind\":\"k\",\"identity\":\"\\n\",\"reason\":\"r\",\"address\":\"a\","
		  "\"first_ms\":1,\"last_ms\":2,\"count\":1,\"attempts\":0,\"next_ms\":5"),
		A("\"kind\":\"k\",\"identity\":\"d\",\"reason\":\"r\",\"address\":\"a\","
		  "\"first_ms\":1,\"last_ms\":2,\"count\":1.5,\"attempts\":0,\"next_ms\":5"),
		"{\"version\":1,\"dropped\":0,\"alerts\":[]}trailing",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct moat_alert_queue q;
		struct moat_err err = {0};
		moat_alert_queue_init(&q, 4);
		if (moat_alert_queue_decode(bad[i], strlen(bad[i]), &q, &err) == 0) {
			fail_msg("accepted: %s", bad[i]);
		}
		assert_int_equal(q.len, 0);
		moat_alert_queue_free(&q);
	}
	/* and the good one reads */
	struct moat_alert_queue q;
	struct moat_err err = {0};
	moat_alert_queue_init(&q, 4);
	const char *good = A("\"kind\":\"k\"," OK_FIELDS);
	assert_int_equal(moat_alert_queue_decode(good, strlen(good), &q, &err), 0);
	assert_int_equal(q.len, 1);
	moat_alert_queue_free(&q);
}

/* state/siem.status: what moatd writes reads back; every malformed field is refused */
static void test_siem_status(void **state)
{
	(void)state;
	struct moat_siem_status s = {.last_ok = 1796249924,
				     .last_error = 1796249925,
				     .error = "write to \"the\" collector \\ failed",
				     .pending = 3,
				     .oldest_pending = 1796249000},
				back;
	struct moat_err err = {0};
	char text[MOAT_SIEM_STATUS_MAX_BYTES];
	int len = moat_siem_status_encode(&s, text, sizeof(text));
	assert_true(len > 0);
	assert_int_equal(moat_siem_status_decode(text, (size_t)len, &back, &err), 0);
	assert_memory_equal(&s, &back, sizeof(s));
	assert_int_equal(moat_siem_status_encode(&s, text, 40), -1);
#define S(body) "{\"version\":1," body "}"
	static const char *const bad[] = {
		"",
		"[]",
		"{\"version\":2,\"last_ok\":0,\"last_error\":0,\"error\":\"\",\"pending\":0,"
		"\"oldest_pending\":0}",
		S("\"last_error\":0,\"error\":\"\",\"pending\":0,\"oldest_pending\":0"),
		S("\"last_ok\":-1,\"last_error\":0,\"error\":\"\",\"pending\":0,\"oldest_pending\":0"),
		S("\"last_ok\":1.5,\"last_error\":0,\"error\":\"\",\"pending\":0,\"oldest_pending\":0"),
		S("\"last_ok\":1e300,\"last_error\":0,\"error\":\"\",\"pending\":0,"
		  "\"oldest_pending\":0"),
		S("\"last_ok\":0,\"last_error\":0,\"error\":7,\"pending\":0,\"oldest_pending\":0"),
		S("\"last_ok\":0,\"last_error\":0,\"error\":\"\\n\",\"pending\":0,"
		  "\"oldest_pending\":0"),
		S("\"last_ok\":0,\"last_error\":0,\"error\":\"\",\"pending\":\"1\","
		  "\"oldest_pending\":0"),
		S("\"last_ok\":0,\"last_error\":0,\"error\":\"\",\"pending\":0}trailing"),
	};
#undef S
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (moat_siem_status_decode(bad[i], strlen(bad[i]), &back, &err) == 0) {
			fail_msg("accepted: %s", bad[i]);
		}
	}
}

/* state/export.cursor: written and read back the same; every malformed file refused, with
 * the seq left 0 */
static void test_export_cursor(void **state)
{
	(void)state;
	struct moat_err err = {0};
	char text[MOAT_EXPORT_CURSOR_MAX_BYTES];
	int64_t seq = -1;
	static const int64_t good[] = {0, 1, 4242, 9007199254740991LL};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int len = moat_export_cursor_encode(good[i], text, sizeof(text));
		assert_true(len > 0);
		assert_int_equal(moat_export_cursor_decode(text, (size_t)len, &seq, &err), 0);
		assert_int_equal(seq, good[i]);
	}
	assert_string_equal(text, "{\"version\":1,\"seq\":9007199254740991}\n");
	assert_int_equal(moat_export_cursor_encode(-1, text, sizeof(text)), -1);
	assert_int_equal(moat_export_cursor_encode(9007199254740992LL, text, sizeof(text)), -1);
	assert_int_equal(moat_export_cursor_encode(1, text, 10), -1);
	static const char *const bad[] = {
		"",
		"[]",
		"{}",
		"7",
		"{\"version\":2,\"seq\":1}",
		"{\"seq\":1}",
		"{\"version\":1}",
		"{\"version\":1,\"seq\":-1}",
		"{\"version\":1,\"seq\":1.5}",
		"{\"version\":1,\"seq\":\"1\"}",
		"{\"version\":1,\"seq\":9007199254740992}",
		"{\"version\":1,\"seq\":1e300}",
		"{\"version\":1,\"seq\":1,\"more\":2}",
		"{\"version\":1,\"seq\":1}trailing",
		"{\"version\":1,\"seq\":1,\"padding\":\""
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		seq = -1;
		if (moat_export_cursor_decode(bad[i], strlen(bad[i]), &seq, &err) == 0) {
			fail_msg("accepted: %s", bad[i]);
		}
		assert_int_equal(seq, 0);
		assert_int_equal(err.code, MOAT_EINVAL);
	}
}

/* state/siem.queue: a ring (wrapped) written and read back the same, oldest first; a
 * smaller bound keeps the newest; every malformed file refused whole */
static void test_siem_queue(void **state)
{
	(void)state;
	struct moat_sec_event ring[3];
	memset(ring, 0, sizeof(ring));
	for (int i = 0; i < 3; i++) {
		ring[i].time_ms = 1796249924000 + i;
		snprintf(ring[i].kind, sizeof(ring[i].kind), "acl_denied");
		snprintf(ring[i].identity, sizeof(ring[i].identity), "dev%d", i);
		snprintf(ring[i].detail, sizeof(ring[i].detail), "a \"quoted\" \\ detail %d", i);
		ring[i].count = 1;
		ring[i].suppressed = (uint64_t)i;
	}
	char *text = NULL;
	size_t len = 0, left_out = 9, n = 0;
	uint64_t dropped = 9;
	struct moat_err err = {0};
	/* head 2: the events in order are ring[2], ring[0] */
	assert_int_equal(moat_siem_queue_encode(ring, 3, 2, 2, &text, &len, &left_out, &err), 0);
	assert_int_equal(left_out, 0);
	assert_true(strncmp(text, "{\"version\":1,\"events\":2}\n", 25) == 0);
	struct moat_sec_event back[3];
	assert_int_equal(moat_siem_queue_decode(text, len, back, 3, &n, &dropped, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(dropped, 0);
	assert_memory_equal(&back[0], &ring[2], sizeof(ring[2]));
	assert_memory_equal(&back[1], &ring[0], sizeof(ring[0]));
	/* a bound of one keeps the newest, counts the other */
	assert_int_equal(moat_siem_queue_decode(text, len, back, 1, &n, &dropped, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(dropped, 1);
	assert_memory_equal(&back[0], &ring[0], sizeof(ring[0]));
	free(text);
	/* empty */
	assert_int_equal(moat_siem_queue_encode(ring, 3, 0, 0, &text, &len, &left_out, &err), 0);
	assert_string_equal(text, "{\"version\":1,\"events\":0}\n");
	assert_int_equal(moat_siem_queue_decode(text, len, back, 3, &n, &dropped, &err), 0);
	assert_int_equal(n, 0);
	free(text);
	assert_int_equal(moat_siem_queue_encode(ring, 3, 0, 4, &text, &len, &left_out, &err),
			 MOAT_EINVAL);

#define EV "{\"time_ms\":1,\"kind\":\"acl_denied\"}\n"
	static const char *const bad[] = {
		"",
		"{\"version\":1,\"events\":0}",		  /* no line end */
		"{\"version\":2,\"events\":0}\n",	  /* version */
		"{\"events\":0}\n",			  /* no version */
		"{\"version\":1}\n",			  /* no count */
		"{\"version\":1,\"events\":-1}\n",	  /* negative */
		"{\"version\":1,\"events\":1.5}\n",	  /* not whole */
		"{\"version\":1,\"events\":\"1\"}\n",	  /* not a number */
		"{\"version\":1,\"events\":0,\"x\":1}\n", /* another key */
		"[1]\n",				  /* not an object */
		"{\"version\":1,\"events\":1}\n",	  /* fewer events */
		"{\"version\":1,\"events\":0}\n" EV,	  /* more events */
		"{\"version\":1,\"events\":1}\n{\"time_ms\":1,\"kind\":\"acl_denied\"}", /* cut */
		"{\"version\":1,\"events\":1}\n{\"time_ms\":1,\"kind\":\"BAD\"}\n",
		"{\"version\":1,\"events\":1}\n{\"kind\":\"acl_denied\"}\n", /* no time */
		"{\"version\":1,\"events\":1}\n\n",			     /* empty line */
		"{\"version\":1,\"events\":2}\n" EV
		"{\"time_ms\":1,\"kind\":\"k\",\"detail\":\"\\u0001\"}\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(back, 0x55, sizeof(back));
		n = 7;
		if (moat_siem_queue_decode(bad[i], strlen(bad[i]), back, 3, &n, &dropped, &err) ==
		    0) {
			fail_msg("accepted: %s", bad[i]);
		}
		assert_int_equal(n, 0);
	}
	const char *good = "{\"version\":1,\"events\":2}\n" EV EV;
	assert_int_equal(moat_siem_queue_decode(good, strlen(good), back, 3, &n, &dropped, &err),
			 0);
	assert_int_equal(n, 2);
#undef EV
}

static void test_status_line(void **state)
{
	(void)state;
	int st = 0;
	const char *ok = "HTTP/1.1 204 No Content\r\n";
	assert_int_equal(moat_http_status_line_parse(ok, strlen(ok), &st), 0);
	assert_int_equal(st, 204);
	assert_int_equal(moat_http_status_line_parse("HTTP/1.0 503\r\n", 14, &st), 0);
	assert_int_equal(st, 503);
	static const char *const bad[] = {"HTTP/2 200 OK\r\n",	"HTTP/1.1 20 OK\r\n",
					  "HTTP/1.1 2000 OK\r", "http/1.1 200 OK\r\n",
					  "HTTP/1.1 099 x\r\n", "HTTP/1.1  200 OK\r\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(moat_http_status_line_parse(bad[i], strlen(bad[i]), &st),
				 MOAT_EINVAL);
	}
	assert_int_equal(moat_http_status_line_parse(ok, 5, &st), MOAT_EINVAL);
}

static int settings(const char *text, struct moat_export_settings *s, struct moat_err *err)
{
	struct moat_config *cfg = NULL;
	int rc = moat_config_parse("moat.conf", text, strlen(text), &cfg, err);
	if (rc == 0) {
		rc = moat_export_settings_load(cfg, s, err);
	}
	moat_config_free(cfg);
	return rc;
}

static void test_settings(void **state)
{
	(void)state;
	struct moat_export_settings s;
	struct moat_err err = {0};
	assert_int_equal(settings("[monitor]\n", &s, &err), 0);
	assert_false(s.siem);
	assert_false(s.webhook);
	assert_int_equal(s.siem_format, MOAT_SIEM_RFC5424);
	assert_int_equal(s.webhook_retry_min_ms, 1000);
	assert_int_equal(s.webhook_retry_max_ms, 300000);
	assert_int_equal(s.webhook_gather_ms, 2000);
	assert_int_equal(s.dedup_window_ms, 60000);
	assert_int_equal(settings("[monitor]\ndedup_window = 0s\n", &s, &err), 0);
	assert_int_equal(s.dedup_window_ms, 0);
	assert_int_equal(settings("[monitor]\ndedup_window = 5m\n", &s, &err), 0);
	assert_int_equal(s.dedup_window_ms, 300000);
	assert_int_equal(settings("[monitor]\nsiem_url = tls://c:6514\nsiem_format = json\n"
				  "webhook_url = https://h/x\nwebhook_retry_max = 10m\n"
				  "webhook_ca = /etc/ca.pem\n",
				  &s, &err),
			 0);
	assert_true(s.siem);
	assert_true(s.webhook);
	assert_int_equal(s.siem_format, MOAT_SIEM_JSON);
	assert_int_equal(s.webhook_retry_max_ms, 600000);
	assert_string_equal(s.webhook_ca, "/etc/ca.pem");
	static const char *const bad[] = {
		"[monitor]\nsiem_url = https://h/\n",
		"[monitor]\nwebhook_url = tls://h:1\n",
		"[monitor]\nsiem_url = tls://h\n",
		"[monitor]\nsiem_format = xml\n",
		"[monitor]\nsiem_ca = relative.pem\n",
		"[monitor]\nsiem_queue_max = 0\n",
		"[monitor]\nwebhook_queue_max = 100001\n",
		"[monitor]\nwebhook_retry_min = 0s\n",
		"[monitor]\nwebhook_retry_min = 10m\nwebhook_retry_max = 1m\n",
		"[monitor]\nwebhook_summary = 1\n",
		"[monitor]\nwebhook_gather = 2m\n",
		"[monitor]\nwebhook_gather = 2\n", /* a duration needs its unit */
		"[monitor]\ndedup_window = 2h\n",
		"[monitor]\ndedup_window = 60\n",
		"[monitor]\nunknown = 1\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (settings(bad[i], &s, &err) == 0) {
			fail_msg("accepted: %s", bad[i]);
		}
		assert_non_null(strstr(err.msg, "moat.conf"));
	}
}

static void test_metrics(void **state)
{
	(void)state;
	char dir[256], path[512];
	assert_int_equal(tu_tmpdir_make(dir, sizeof(dir), "monitor"), 0);
	tu_path(path, sizeof(path), dir, "registry.db");
	struct moat_registry *reg = NULL;
	struct moat_err err = {0};
	assert_int_equal(moat_registry_open(path, true, &reg, &err), 0);
	assert_int_equal(moat_registry_identity_insert(reg, "d1", MOAT_ROLE_DEVICE, "sen\"sor", 1,
						       &err),
			 0);
	assert_int_equal(moat_registry_identity_insert(reg, "d2", MOAT_ROLE_DEVICE, "sen\"sor", 1,
						       &err),
			 0);
	assert_int_equal(moat_registry_identity_insert(reg, "op", MOAT_ROLE_OPERATOR, "", 1, &err),
			 0);
	struct moat_buf b;
	moat_buf_init(&b, 1 << 20);
	assert_int_equal(moat_metrics_render(reg, NULL, NULL, NULL, 1000, &b, &err), 0);
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(moat_buf_take(&b, &text, &len), 0);
	/* without an ingest, no ingest metrics */
	assert_null(strstr(text, "moat_ingest_"));
	assert_null(strstr(text, "moat_rollout"));
	free(text);

	/* phased rollouts: by state, and each unfinished one's phase, state and devices */
	struct moat_metrics_rollouts *ro = calloc(1, sizeof(*ro));
	assert_non_null(ro);
	ro->by_state[MOAT_ROLLOUT_COMPLETED] = 3;
	ro->by_state[MOAT_ROLLOUT_HALTED] = 1;
	ro->active_count = 1;
	ro->active[0] = (struct moat_metrics_rollout){.id = 7,
						      .version = "1.2.0",
						      .state = MOAT_ROLLOUT_HALTED,
						      .phase = 2,
						      .phase_count = 4,
						      .waiting = 5};
	ro->active[0].by_state[MOAT_RD_CONFIRMED] = 2;
	ro->active[0].by_state[MOAT_RD_REVERTED] = 1;
	moat_buf_init(&b, 1 << 20);
	assert_int_equal(moat_metrics_render(reg, NULL, NULL, ro, 1000, &b, &err), 0);
	assert_int_equal(moat_buf_take(&b, &text, &len), 0);
	static const char *const rollout_lines[] = {
		"# TYPE moat_rollouts gauge\nmoat_rollouts{state=\"running\"} 0\n"
		"moat_rollouts{state=\"paused\"} 0\nmoat_rollouts{state=\"halted\"} 1\n"
		"moat_rollouts{state=\"aborted\"} 0\nmoat_rollouts{state=\"completed\"} 3\n",
		"# TYPE moat_rollout_phase gauge\nmoat_rollout_phase{rollout=\"7\",version=\"1.2.0\"} "
		"2\n",
		"# TYPE moat_rollout_phases gauge\nmoat_rollout_phases{rollout=\"7\"} 4\n",
		"# TYPE moat_rollout_state gauge\nmoat_rollout_state{rollout=\"7\",state=\"halted\"} "
		"1\n",
		"# TYPE moat_rollout_devices gauge\n"
		"moat_rollout_devices{rollout=\"7\",status=\"offered\"} 0\n"
		"moat_rollout_devices{rollout=\"7\",status=\"downloading\"} 0\n"
		"moat_rollout_devices{rollout=\"7\",status=\"installed\"} 0\n"
		"moat_rollout_devices{rollout=\"7\",status=\"confirmed\"} 2\n"
		"moat_rollout_devices{rollout=\"7\",status=\"reverted\"} 1\n"
		"moat_rollout_devices{rollout=\"7\",status=\"refused\"} 0\n"
		"moat_rollout_devices{rollout=\"7\",status=\"silent\"} 0\n"
		"moat_rollout_devices{rollout=\"7\",status=\"waiting\"} 5\n",
	};
	for (size_t i = 0; i < sizeof(rollout_lines) / sizeof(rollout_lines[0]); i++) {
		if (!strstr(text, rollout_lines[i])) {
			fail_msg("missing: %s\n%s", rollout_lines[i], text);
		}
	}
	free(text);
	/* finished ones only count by state */
	ro->active_count = 0;
	moat_buf_init(&b, 1 << 20);
	assert_int_equal(moat_metrics_render(reg, NULL, NULL, ro, 1000, &b, &err), 0);
	assert_int_equal(moat_buf_take(&b, &text, &len), 0);
	assert_non_null(strstr(text, "moat_rollouts{state=\"completed\"} 3\n"));
	assert_null(strstr(text, "moat_rollout_phase"));
	free(text);
	free(ro);

	/* with one: its lag in seconds, queue, messages and bytes, each with HELP and TYPE */
	const struct moat_metrics_ingest in = {.received = 7,
					       .recorded = 5,
					       .dropped = 1,
					       .bytes_received = 123456789012ULL,
					       .queued = 1,
					       .lag_ms = 1500};
	moat_buf_init(&b, 1 << 20);
	assert_int_equal(moat_metrics_render(reg, NULL, &in, NULL, 1000, &b, &err), 0);
	assert_int_equal(moat_buf_take(&b, &text, &len), 0);
	static const char *const ingest_lines[] = {
		"# TYPE moat_ingest_lag_seconds gauge\nmoat_ingest_lag_seconds 1.5\n",
		"# TYPE moat_ingest_queue_length gauge\nmoat_ingest_queue_length 1\n",
		"# TYPE moat_ingest_messages_received_total counter\n"
		"moat_ingest_messages_received_total 7\n",
		"# TYPE moat_ingest_messages_recorded_total counter\n"
		"moat_ingest_messages_recorded_total 5\n",
		"# TYPE moat_ingest_messages_dropped_total counter\n"
		"moat_ingest_messages_dropped_total 1\n",
		"# TYPE moat_ingest_bytes_received_total counter\n"
		"moat_ingest_bytes_received_total 123456789012\n",
		"# HELP moat_ingest_lag_seconds ",
		"# HELP moat_ingest_queue_length ",
		"# HELP moat_ingest_messages_received_total ",
		"# HELP moat_ingest_messages_recorded_total ",
		"# HELP moat_ingest_messages_dropped_total ",
		"# HELP moat_ingest_bytes_received_total ",
	};
	for (size_t i = 0; i < sizeof(ingest_lines) / sizeof(ingest_lines[0]); i++) {
		if (!strstr(text, ingest_lines[i])) {
			fail_msg("missing: %s\n%s", ingest_lines[i], text);
		}
	}
	assert_non_null(strstr(text, "# TYPE moat_devices gauge\n"));
	assert_non_null(strstr(text, "moat_devices{state=\"active\",type=\"sen\\\"sor\"} 2\n"));
	assert_non_null(strstr(text, "moat_identities{role=\"operator\",state=\"active\"} 1\n"));
	assert_non_null(strstr(text, "moat_scrape_timestamp_seconds 1000\n"));
	/* each metric's TYPE once */
	const char *first = strstr(text, "# TYPE moat_devices ");
	assert_null(strstr(first + 1, "# TYPE moat_devices "));
	free(text);
	moat_registry_close(reg);
	assert_int_equal(tu_tmpdir_remove(dir), 0);
}

/* The session suffix of one moatd among several: what, this host's name (first label,
 * lowercased, [a-z0-9-]), the port; a valid client id suffix at the longest port. */
static void test_instance_suffix(void **state)
{
	(void)state;
	char host[256] = "";
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	char want_host[256];
	size_t n = 0;
	for (; host[n] && host[n] != '.'; n++) {
		char c = host[n];
		c = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
		want_host[n] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '-';
	}
	want_host[n] = '\0';
	const struct {
		const char *what;
		int port;
	} cases[] = {{"ingest", 1}, {"export", 65535}, {"ingest", 8443}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char suffix[MOAT_CLIENT_SUFFIX_MAX_LEN + 1];
		moat_opclient_instance_suffix(cases[i].what, cases[i].port, suffix, sizeof(suffix));
		char want[128];
		int room = MOAT_CLIENT_SUFFIX_MAX_LEN - (int)strlen(cases[i].what) - 2 -
			   snprintf(NULL, 0, "%d", cases[i].port);
		if (want_host[0]) {
			snprintf(want, sizeof(want), "%s-%.*s-%d", cases[i].what, room, want_host,
				 cases[i].port);
		} else {
			snprintf(want, sizeof(want), "%s-%d", cases[i].what, cases[i].port);
		}
		assert_string_equal(suffix, want);
		assert_true(strlen(suffix) <= MOAT_CLIENT_SUFFIX_MAX_LEN);
		char id[MOAT_CLIENT_ID_MAX_LEN + 1];
		snprintf(id, sizeof(id), "backend-service:%s", suffix);
		assert_int_equal(moat_client_id_check(MOAT_ROLE_SERVICE, "backend-service", id),
				 MOAT_CLIENT_ID_OK);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_accepts),
		cmocka_unit_test(test_url_rejects),
		cmocka_unit_test(test_event_parse),
		cmocka_unit_test(test_event_rejects),
		cmocka_unit_test(test_frames),
		cmocka_unit_test(test_alert_queue),
		cmocka_unit_test(test_alert_queue_rejects),
		cmocka_unit_test(test_siem_status),
		cmocka_unit_test(test_siem_queue),
		cmocka_unit_test(test_export_cursor),
		cmocka_unit_test(test_status_line),
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_instance_suffix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
