/* test_monitor.c: the anomaly rules of monitor.h as pure functions over explicit inputs
 * (each at, just below and just above its threshold), the [monitor] settings and every
 * refusal, the hook, and the security event record (secevent.h): JSON, the plugin's
 * events read back and every refusal, a device's diagnostics read for monitoring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "moat/messages.h"
#include "moat/monitor.h"
#include "moat/net.h"
#include "testutil.h"

static struct moat_monitor_settings defaults(void)
{
	struct moat_monitor_settings s;
	moat_monitor_settings_default(&s);
	return s;
}

static void test_rate(void **state)
{
	(void)state;
	struct moat_monitor_settings s = defaults(); /* k = 3 */
	char ev[200] = "";
	/* 60 s at a 10 s interval: 7 allowed, x3 = 21 */
	assert_false(moat_rule_rate(&s, 21, 60000, 10, ev, sizeof(ev)));
	assert_true(moat_rule_rate(&s, 22, 60000, 10, ev, sizeof(ev)));
	assert_string_equal(ev, "messages=22 window_ms=60000 interval_s=10 limit=21");
	/* no interval known: never */
	assert_false(moat_rule_rate(&s, 100000, 60000, 0, NULL, 0));
}

static void test_silence(void **state)
{
	(void)state;
	struct moat_monitor_settings s = defaults(); /* m = 3 */
	char ev[200] = "";
	assert_false(moat_rule_silence(&s, 1000, 1000 + 30000, 10, false, ev, sizeof(ev)));
	assert_true(moat_rule_silence(&s, 1000, 1000 + 30001, 10, false, ev, sizeof(ev)));
	assert_string_equal(ev, "silent_ms=30001 interval_s=10 limit_ms=30000 will=none");
	/* its last will said it went: not silence */
	assert_false(moat_rule_silence(&s, 1000, 1000 + 99999, 10, true, NULL, 0));
	/* never seen, or no interval */
	assert_false(moat_rule_silence(&s, 0, 99999, 10, false, NULL, 0));
	assert_false(moat_rule_silence(&s, 1000, 99999, 0, false, NULL, 0));
}

static void test_payload_size(void **state)
{
	(void)state;
	struct moat_monitor_settings s = defaults(); /* x4, 20 samples */
	char ev[200] = "";
	assert_false(moat_rule_payload_size(&s, 400, 100.0, 20, ev, sizeof(ev)));
	assert_true(moat_rule_payload_size(&s, 401, 100.0, 20, ev, sizeof(ev)));
	assert_string_equal(ev, "bytes=401 type_mean=100 samples=20 factor=4");
	assert_false(moat_rule_payload_size(&s, 25, 100.0, 20, NULL, 0));
	assert_true(moat_rule_payload_size(&s, 24, 100.0, 20, NULL, 0));
	/* too few samples for a usual size */
	assert_false(moat_rule_payload_size(&s, 100000, 100.0, 19, NULL, 0));
}

/* acl_burst's default (docs/CONFIGURATION.md): four denials within the window, what one
 * reconnection of an outdated but legitimate device may produce, are no anomaly; five are */
static void test_acl_burst_default(void **state)
{
	(void)state;
	struct moat_monitor_settings s = defaults();
	assert_int_equal(s.acl_burst, 5);
	assert_int_equal(s.burst_window_ms, 60000);
	struct moat_window w;
	memset(&w, 0, sizeof(w));
	bool fired = false;
	for (int i = 0; i < 4; i++) {
		fired |= moat_rule_burst(moat_window_add(&w, 1000 + i, s.burst_window_ms),
					 s.acl_burst, "denials", NULL, 0);
	}
	assert_false(fired);
	assert_true(moat_rule_burst(moat_window_add(&w, 1004, s.burst_window_ms), s.acl_burst,
				    "denials", NULL, 0));
}

static void test_burst_and_window(void **state)
{
	(void)state;
	struct moat_window w = {0};
	char ev[100] = "";
	assert_int_equal(moat_window_add(&w, 1000, 60000), 1);
	assert_int_equal(moat_window_add(&w, 2000, 60000), 2);
	assert_false(moat_rule_burst(2, 3, "refusals", ev, sizeof(ev)));
	assert_int_equal(moat_window_add(&w, 60999, 60000), 3);
	assert_true(moat_rule_burst(3, 3, "refusals", ev, sizeof(ev)));
	assert_string_equal(ev, "refusals=3 threshold=3");
	/* fires on reaching it, not again for the same burst */
	assert_false(moat_rule_burst(4, 3, "refusals", NULL, 0));
	/* a new window */
	assert_int_equal(moat_window_add(&w, 61000, 60000), 1);
	/* a clock that went back starts over */
	assert_int_equal(moat_window_add(&w, 500, 60000), 1);
}

static void test_release(void **state)
{
	(void)state;
	char ev[200] = "";
	assert_false(moat_rule_release("", "1.0.0", false, ev, sizeof(ev))); /* first report */
	assert_false(moat_rule_release("1.0.0", "1.0.0", false, NULL, 0));   /* no change */
	assert_false(moat_rule_release("1.0.0", "2.0.0", true, NULL, 0));    /* offered */
	assert_true(moat_rule_release("1.0.0", "6.6.6", false, ev, sizeof(ev)));
	assert_string_equal(ev, "previous=\"1.0.0\" running=\"6.6.6\" offered=no");
}

static void test_event_jump(void **state)
{
	(void)state;
	struct moat_monitor_settings s = defaults(); /* x4, at least 5 */
	char ev[200] = "";
	assert_false(moat_rule_event_jump(&s, 0, 4, ev, sizeof(ev)));
	assert_true(moat_rule_event_jump(&s, 0, 5, ev, sizeof(ev)));
	assert_string_equal(ev, "events_before=0 events_after=5 factor=4");
	assert_false(moat_rule_event_jump(&s, 2, 7, NULL, 0));
	assert_true(moat_rule_event_jump(&s, 2, 8, NULL, 0));
}

static void test_clone(void **state)
{
	(void)state;
	struct moat_monitor_settings s = defaults(); /* 3 within 5 min */
	struct moat_clone_track t;
	memset(&t, 0, sizeof(t));
	char ev[200] = "";
	/* a device that moves once (new network) and reconnects cleanly: nothing */
	const char *moves[] = {"10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2"};
	for (size_t i = 0; i < 4; i++) {
		assert_null(moat_clone_connected(&t, &s, moves[i], 1000 * (int64_t)i, NULL, 0));
		moat_clone_disconnected(&t);
	}
	/* A, B, A, B, A, B: back to the previous address 3 times fires on the third */
	memset(&t, 0, sizeof(t));
	const char *alt[] = {"10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2"};
	for (size_t i = 0; i < 3; i++) {
		assert_null(moat_clone_connected(&t, &s, alt[i], 1000 * (int64_t)i, NULL, 0));
		moat_clone_disconnected(&t);
	}
	assert_null(moat_clone_connected(&t, &s, alt[3], 3000, NULL, 0)); /* 2nd switch back */
	moat_clone_disconnected(&t);
	assert_string_equal(moat_clone_connected(&t, &s, "10.0.0.1", 4000, ev, sizeof(ev)),
			    MOAT_RULE_CLONE_ADDR);
	assert_string_equal(ev, "switches=3 addresses=10.0.0.1,10.0.0.2 window_ms=300000");
	/* two sessions: each connect while the other is open is a takeover */
	memset(&t, 0, sizeof(t));
	assert_null(moat_clone_connected(&t, &s, "10.0.0.1", 0, NULL, 0));
	assert_null(moat_clone_connected(&t, &s, "10.0.0.1", 1, NULL, 0));
	moat_clone_disconnected(&t);
	assert_null(moat_clone_connected(&t, &s, "10.0.0.1", 2, NULL, 0));
	moat_clone_disconnected(&t);
	assert_string_equal(moat_clone_connected(&t, &s, "10.0.0.1", 3, ev, sizeof(ev)),
			    MOAT_RULE_CLONE_SESSION);
	assert_string_equal(ev, "takeovers=3 window_ms=300000 address=10.0.0.1");
	/* more disconnects than connects seen (moatd started late): never below zero */
	memset(&t, 0, sizeof(t));
	moat_clone_disconnected(&t);
	assert_int_equal(t.sessions, 0);
}

static void test_zone(void **state)
{
	(void)state;
	struct moat_config *cfg = NULL;
	struct moat_err err = {0};
	static const char conf[] = "[network]\niot = 10.77.10.0/24, fd00:77:10::/64\n";
	assert_int_equal(moat_config_parse("moat.conf", conf, sizeof(conf) - 1, &cfg, &err), 0);
	struct moat_net_policy *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	assert_int_equal(moat_net_policy_from_config(cfg, p, &err), 0);
	char ev[200] = "";
	assert_false(moat_rule_zone(p, "10.77.10.5", ev, sizeof(ev)));
	assert_false(moat_rule_zone(p, "::ffff:10.77.10.5", NULL, 0));
	assert_false(moat_rule_zone(p, "fd00:77:10::9", NULL, 0));
	assert_true(moat_rule_zone(p, "10.77.1.20", ev, sizeof(ev))); /* management */
	assert_string_equal(ev, "address=10.77.1.20 zone=management");
	assert_true(moat_rule_zone(p, "192.0.2.1", ev, sizeof(ev)));
	assert_string_equal(ev, "address=192.0.2.1 zone=none");
	assert_true(moat_rule_zone(p, "2001:db8::1", NULL, 0));
	assert_false(moat_rule_zone(p, "not an address", NULL, 0));
	free(p);
	moat_config_free(cfg);
}

static int load(const char *text, struct moat_monitor_settings *s, struct moat_err *err)
{
	struct moat_config *cfg = NULL;
	int rc = moat_config_parse("moat.conf", text, strlen(text), &cfg, err);
	if (rc == 0) {
		rc = moat_monitor_settings_load(cfg, s, err);
	}
	moat_config_free(cfg);
	return rc;
}

static void test_settings(void **state)
{
	(void)state;
	struct moat_monitor_settings s;
	struct moat_err err = {0};
	assert_int_equal(load("", &s, &err), 0);
	assert_int_equal(s.telemetry_retention_ms, 7LL * 86400 * 1000);
	assert_false(s.zone_check);
	assert_int_equal(load("[network]\niot = 10.1.0.0/24\n", &s, &err), 0);
	assert_true(s.zone_check); /* on with a [network] section */
	assert_int_equal(load("[monitor]\ntelemetry_retention = 2d\nrate_factor = 2.5\n"
			      "zone_check = no\nauth_burst = 7\n",
			      &s, &err),
			 0);
	assert_int_equal(s.telemetry_retention_ms, 2LL * 86400 * 1000);
	assert_true(s.rate_factor == 2.5);
	assert_int_equal(s.auth_burst, 7);
	/* the ingest's kept session: 2 min by default, "0" (no unit needed) for none */
	assert_int_equal(s.session_ms, 120000);
	assert_int_equal(load("[monitor]\ningest_session = 0\n", &s, &err), 0);
	assert_int_equal(s.session_ms, 0);
	assert_int_equal(load("[monitor]\ningest_session = 1d\n", &s, &err), 0);
	assert_int_equal(s.session_ms, 86400000);
	static const struct {
		const char *text, *msg;
	} bad[] = {
		{"[monitor]\nnope = 1\n", "nope"},
		{"[monitor]\nrate_window = 10\n", "rate_window"}, /* no unit */
		{"[monitor]\nrate_window = 0s\n", "out of range"},
		{"[monitor]\ningest_session = 25h\n", "ingest_session"},
		{"[monitor]\ningest_session = soon\n", "ingest_session"},
		{"[monitor]\ningest_session = 00\n", "ingest_session"}, /* only "0" goes bare */
		{"[monitor]\nrate_window = 0\n", "rate_window"}, /* bare 0 only where 0 is allowed
								  */
		{"[monitor]\nrate_factor = 0.5\n", "rate_factor"},
		{"[monitor]\nrate_factor = 3x\n", "rate_factor"},
		{"[monitor]\nauth_burst = 0\n", "auth_burst"},
		{"[monitor]\nzone_check = maybe\n", "zone_check"},
		{"[monitor]\ntelemetry_retention = 40d\n", "retentions must grow"},
		{"[monitor]\nhour_retention = 10d\n", "retentions must grow"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		assert_int_equal(load(bad[i].text, &s, &err), MOAT_EINVAL);
		if (!strstr(err.msg, bad[i].msg)) {
			fail_msg("%s: '%s' lacks '%s'", bad[i].text, err.msg, bad[i].msg);
		}
	}
}

static int hook_calls;
static char hook_last[MOAT_EVENT_KIND_MAX_LEN + 1];

static void hook(const struct moat_security_event *ev, void *ctx)
{
	hook_calls += *(int *)ctx;
	snprintf(hook_last, sizeof(hook_last), "%s", ev->kind);
}

static void test_hook(void **state)
{
	(void)state;
	struct moat_err err = {0};
	int one = 1, ten = 10;
	struct moat_security_event ev;
	memset(&ev, 0, sizeof(ev));
	snprintf(ev.kind, sizeof(ev.kind), "anomaly");
	assert_int_equal(moat_monitor_subscribe(hook, &one, &err), 0);
	assert_int_equal(moat_monitor_subscribe(hook, &ten, &err), 0);
	moat_monitor_publish(&ev);
	assert_int_equal(hook_calls, 11);
	assert_string_equal(hook_last, "anomaly");
	moat_monitor_unsubscribe(hook, &ten);
	moat_monitor_publish(&ev);
	assert_int_equal(hook_calls, 12);
	for (int i = 1; i < MOAT_MONITOR_HOOKS_MAX; i++) {
		assert_int_equal(moat_monitor_subscribe(hook, &ten, &err), 0);
	}
	assert_int_equal(moat_monitor_subscribe(hook, &ten, &err), MOAT_ESTATE);
	for (int i = 1; i < MOAT_MONITOR_HOOKS_MAX; i++) {
		moat_monitor_unsubscribe(hook, &ten);
	}
	moat_monitor_unsubscribe(hook, &one);
	moat_monitor_publish(&ev);
	assert_int_equal(hook_calls, 12);
}

static void test_plugin_event(void **state)
{
	(void)state;
	struct moat_security_event ev;
	struct moat_err err = {0};
	int64_t count = 0;
	static const char line[] =
		"{\"time\":\"2026-11-25T18:00:00Z\",\"time_ms\":1795629600123,\"kind\":"
		"\"auth_refused\",\"run_id\":\"0f1e2d3c4b5a6978\",\"identity\":\"sensor-1\","
		"\"client_id\":\"sensor-2\",\"address\":\"127.0.0.1\",\"reason\":"
		"\"client_id_mismatch\",\"detail\":\"x\",\"count\":3,\"suppressed\":0}";
	assert_int_equal(moat_monitor_plugin_event_parse(line, sizeof(line) - 1, &ev, &count, &err),
			 0);
	assert_int_equal(count, 3);
	assert_int_equal(ev.time_ms, 1795629600123LL);
	assert_string_equal(ev.kind, "auth_refused");
	assert_string_equal(ev.source, "broker");
	assert_string_equal(ev.run_id, "0f1e2d3c4b5a6978");
	assert_string_equal(ev.identity, "sensor-1");
	assert_string_equal(ev.address, "127.0.0.1");
	assert_int_equal(ev.severity, MOAT_SEV_MEDIUM);
	assert_string_equal(ev.evidence, "reason=\"client_id_mismatch\" client_id=\"sensor-2\" "
					 "detail=\"x\" suppressed=0");
	char json[1024];
	assert_int_equal(moat_security_event_json(&ev, json, sizeof(json), &err), 0);
	assert_non_null(strstr(json, "\"severity\":\"medium\""));
	assert_non_null(strstr(json, "\"time\":\"2026-11-25T18:00:00Z\""));
	assert_int_equal(moat_security_event_json(&ev, json, 20, &err), MOAT_EINVAL);
	/* identity null (a TLS failure): "" */
	static const char tls[] = "{\"time_ms\":1,\"kind\":\"auth_refused\",\"identity\":null}";
	assert_int_equal(moat_monitor_plugin_event_parse(tls, sizeof(tls) - 1, &ev, NULL, &err), 0);
	assert_string_equal(ev.identity, "");
	assert_int_equal(moat_monitor_plugin_severity("revoked_kicked"), MOAT_SEV_HIGH);
	assert_int_equal(moat_monitor_plugin_severity("connected"), MOAT_SEV_INFO);
	assert_int_equal(moat_monitor_plugin_severity("a_new_kind"), MOAT_SEV_MEDIUM);
	static const char *const bad[] = {
		"",
		"[]",
		"{\"time_ms\":1}",		    /* no kind */
		"{\"kind\":\"x\"}",		    /* no time_ms */
		"{\"kind\":\"\",\"time_ms\":1}",    /* empty kind */
		"{\"kind\":3,\"time_ms\":1}",	    /* kind not a string */
		"{\"kind\":\"x\",\"time_ms\":-1}",  /* negative */
		"{\"kind\":\"x\",\"time_ms\":1.5}", /* not whole */
		"{\"kind\":\"x\",\"time_ms\":1,\"count\":\"2\"}",
		"{\"kind\":\"x\",\"time_ms\":1,\"address\":7}",
		"{\"kind\":\"x\",\"time_ms\":1,\"kind\":\"y\"}", /* duplicate key */
		"{\"kind\":\"x\",\"time_ms\":1}\n{}",		 /* two documents */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(moat_monitor_plugin_event_parse(bad[i], strlen(bad[i]), &ev, NULL,
								 &err),
				 MOAT_EINVAL);
	}
	char *big = malloc(MOAT_MONITOR_PLUGIN_EVENT_MAX_BYTES + 64);
	assert_non_null(big);
	int n = snprintf(big, MOAT_MONITOR_PLUGIN_EVENT_MAX_BYTES + 64,
			 "{\"kind\":\"x\",\"time_ms\":1,\"detail\":\"%0*d\"}",
			 MOAT_MONITOR_PLUGIN_EVENT_MAX_BYTES, 0);
	assert_int_equal(moat_monitor_plugin_event_parse(big, (size_t)n, &ev, NULL, &err),
			 MOAT_EINVAL);
	free(big);
	/* a control character outside printable ASCII in a string becomes '?' */
	static const char ctl[] = "{\"kind\":\"x\",\"time_ms\":1,\"identity\":\"a\\u001bb\"}";
	assert_int_equal(moat_monitor_plugin_event_parse(ctl, sizeof(ctl) - 1, &ev, NULL, &err), 0);
	assert_string_equal(ev.identity, "a?b");
}

/* The plugin's events about `moat audit --live`'s identities carry the audit's run. */
static void test_plugin_event_audit_run(void **state)
{
	(void)state;
	struct moat_security_event ev;
	struct moat_err err = {0};
	static const char line[] =
		"{\"time_ms\":1795629600123,\"kind\":\"acl_denied\",\"run_id\":\"0f1e2d3c\","
		"\"identity\":\"audit-0a1b2c3d-r\",\"reason\":\"publish\",\"detail\":\"x\","
		"\"count\":1,\"suppressed\":0,\"audit_run\":\"0a1b2c3d\"}";
	assert_int_equal(moat_monitor_plugin_event_parse(line, sizeof(line) - 1, &ev, NULL, &err),
			 0);
	assert_string_equal(ev.run_id, "0f1e2d3c");
	assert_string_equal(ev.identity, "audit-0a1b2c3d-r");
	assert_string_equal(ev.evidence, "audit_run=0a1b2c3d reason=\"publish\" client_id=\"\" "
					 "detail=\"x\" suppressed=0");
	static const char plain[] = "{\"time_ms\":1,\"kind\":\"acl_denied\",\"identity\":"
				    "\"audit-0a1b2c3d\",\"audit_run\":\"0a1b2c3d\"}";
	assert_int_equal(moat_monitor_plugin_event_parse(plain, sizeof(plain) - 1, &ev, NULL, &err),
			 0);
	assert_non_null(strstr(ev.evidence, "audit_run=0a1b2c3d "));
	/* a long detail does not cut the run off */
	char longer[1024];
	int n = snprintf(longer, sizeof(longer),
			 "{\"time_ms\":1,\"kind\":\"acl_denied\",\"identity\":\"audit-0a1b2c3d\","
			 "\"audit_run\":\"0a1b2c3d\",\"detail\":\"%0*d\"}",
			 600, 0);
	assert_int_equal(moat_monitor_plugin_event_parse(longer, (size_t)n, &ev, NULL, &err), 0);
	assert_int_equal(strncmp(ev.evidence, "audit_run=0a1b2c3d ", 19), 0);
	static const struct {
		const char *json, *msg;
	} bad[] = {
		{"{\"time_ms\":1,\"kind\":\"x\",\"identity\":\"audit-0a1b2c3d\",\"audit_run\":7}",
		 "8 lower-case hex"},
		{"{\"time_ms\":1,\"kind\":\"x\",\"identity\":\"audit-0a1b2c3d\","
		 "\"audit_run\":\"0A1B2C3D\"}",
		 "8 lower-case hex"},
		{"{\"time_ms\":1,\"kind\":\"x\",\"identity\":\"audit-0a1b2c3d\","
		 "\"audit_run\":\"0a1b2c3\"}",
		 "8 lower-case hex"},
		{"{\"time_ms\":1,\"kind\":\"x\",\"identity\":\"audit-0a1b2c3d\","
		 "\"audit_run\":\"0a1b2c3de\"}",
		 "8 lower-case hex"},
		/* another identity's events cannot pass for the audit's */
		{"{\"time_ms\":1,\"kind\":\"x\",\"identity\":\"sensor-1\","
		 "\"audit_run\":\"0a1b2c3d\"}",
		 "not the run its identity names"},
		{"{\"time_ms\":1,\"kind\":\"x\",\"identity\":\"audit-ffffffff\","
		 "\"audit_run\":\"0a1b2c3d\"}",
		 "not the run its identity names"},
		{"{\"time_ms\":1,\"kind\":\"x\",\"identity\":\"audit-0a1b2c3dx\","
		 "\"audit_run\":\"0a1b2c3d\"}",
		 "not the run its identity names"},
		{"{\"time_ms\":1,\"kind\":\"x\",\"audit_run\":\"0a1b2c3d\"}",
		 "not the run its identity names"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(moat_monitor_plugin_event_parse(bad[i].json, strlen(bad[i].json),
								 &ev, NULL, &err),
				 MOAT_EINVAL);
		assert_non_null(strstr(err.msg, bad[i].msg));
	}
}

static void test_severity_names(void **state)
{
	(void)state;
	struct moat_err err = {0};
	enum moat_severity s;
	for (int i = 0; i < MOAT_SEV_COUNT; i++) {
		assert_int_equal(moat_severity_parse(moat_severity_name((enum moat_severity)i), &s,
						     &err),
				 0);
		assert_int_equal(s, i);
	}
	assert_int_equal(moat_severity_parse("urgent", &s, &err), MOAT_EINVAL);
	assert_int_equal(moat_severity_parse(NULL, &s, &err), MOAT_EINVAL);
	assert_string_equal(moat_severity_name((enum moat_severity)99), "unknown");
}

/* "name=value " for each field, "#" after a number. */
static void list_field(const char *name, const char *value, bool number, void *ctx)
{
	char *out = ctx;
	size_t n = strlen(out);
	snprintf(out + n, 1024 - n, "%s=%s%s ", name, value, number ? "#" : "");
}

static void test_diag_summary(void **state)
{
	(void)state;
	struct moat_diag_summary d;
	struct moat_err err = {0};
	static const char ok[] = "{\"device_id\":\"d\",\"agent_version\":\"1.4.0\","
				 "\"cert_days_left\":-2,\"interval_s\":30,\"load\":[1,2,3]}";
	assert_int_equal(moat_diag_summary_parse(ok, sizeof(ok) - 1, &d, &err), 0);
	assert_string_equal(d.agent_version, "1.4.0");
	assert_true(d.has_cert_days);
	assert_int_equal(d.cert_days_left, -2);
	assert_int_equal(d.interval_s, 30);
	assert_true(d.has_load && d.load[0] == 1);
	assert_int_equal(d.seq, -1);
	/* everything moat_msg_diagnostics_build writes, read back and listed */
	struct moat_msg_diagnostics full = {.device_id = "dev-1",
					    .timestamp_ms = 1796263597496,
					    .uptime_ms = 5000,
					    .system_uptime_s = 77,
					    .rss_kb = 1234,
					    .free_heap = 99,
					    .load = {0.5, 1, 2.25},
					    .ip_address = "192.0.2.7",
					    .mac_address = "02:00:00:00:00:01",
					    .kernel = "Linux 6.1.0",
					    .agent_version = "1.4.0",
					    .cert_not_after = "2027-12-03T00:00:00Z",
					    .cert_days_left = 365,
					    .interval_s = 30,
					    .seq = 8,
					    .queued = 2};
	char buf[MOAT_MSG_DIAGNOSTICS_MAX_BYTES];
	size_t len = 0;
	assert_int_equal(moat_msg_diagnostics_build(&full, buf, sizeof(buf), &len, &err), 0);
	assert_int_equal(moat_diag_summary_parse(buf, len, &d, &err), 0);
	assert_int_equal(d.timestamp_ms, 1796263597496);
	assert_int_equal(d.uptime_ms, 5000);
	assert_int_equal(d.system_uptime_s, 77);
	assert_int_equal(d.rss_kb, 1234);
	assert_int_equal(d.free_heap, 99);
	assert_true(d.has_load && d.load[2] == 2.25);
	assert_string_equal(d.ip_address, "192.0.2.7");
	assert_string_equal(d.mac_address, "02:00:00:00:00:01");
	assert_string_equal(d.kernel, "Linux 6.1.0");
	assert_string_equal(d.cert_not_after, "2027-12-03T00:00:00Z");
	assert_int_equal(d.seq, 8);
	assert_int_equal(d.queued, 2);
	char listed[1024] = "";
	moat_diag_summary_foreach(&d, list_field, listed);
	assert_string_equal(listed,
			    "agent_version=1.4.0 uptime_ms=5000# system_uptime_s=77# rss_kb=1234# "
			    "free_heap=99# load_1m=0.50# load_5m=1.00# load_15m=2.25# "
			    "ip_address=192.0.2.7 mac_address=02:00:00:00:00:01 kernel=Linux 6.1.0 "
			    "cert_not_after=2027-12-03T00:00:00Z cert_days_left=365# interval_s=30# "
			    "seq=8# queued=2# ");
	static const char none[] = "{\"event\":\"diagnostics\"}";
	assert_int_equal(moat_diag_summary_parse(none, sizeof(none) - 1, &d, &err), 0);
	assert_false(d.has_cert_days);
	assert_int_equal(d.interval_s, 0);
	assert_string_equal(d.agent_version, "");
	static const char *const bad[] = {
		"not json",
		"{\"interval_s\":0}",
		"{\"interval_s\":86401}",
		"{\"interval_s\":\"30\"}",
		"{\"cert_days_left\":1.5}",
		"{\"agent_version\":7}",
		"{\"agent_version\":\"\"}",
		"{\"agent_version\":\"0123456789012345678901234567890123\"}",
		"{\"agent_version\":\"a\\u202eb\"}", /* a bidi override */
		"{\"seq\":-1}",
		"{\"rss_kb\":1.5}",
		"{\"uptime_ms\":\"5\"}",
		"{\"timestamp\":18014398509481984}",
		"{\"load\":[1,2]}",
		"{\"load\":[1,2,-3]}",
		"{\"load\":[1,2,\"3\"]}",
		"{\"load\":1}",
		"{\"ip_address\":\"not an address\"}",
		"{\"ip_address\":7}",
		"{\"mac_address\":\"012345678901234567890123\"}",
		"{\"kernel\":\"a\\u0007b\"}", /* a control character */
		"{\"cert_not_after\":\"\"}",
		"{\"kernel\":{\"x\":1}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(moat_diag_summary_parse(bad[i], strlen(bad[i]), &d, &err),
				 MOAT_EINVAL);
	}
}

/* The broker's log: each kind of line read; every malformed one refused. */
#define TS "2026-12-03T02:06:37: "
#define PLUGIN_TLS                                                                             \
	TS "moat: event {\"time\":\"2026-12-03T02:06:37Z\",\"time_ms\":1796263597496,"         \
	   "\"kind\":\"auth_refused\",\"run_id\":\"0b21e210d9d613fc\",\"identity\":null,"      \
	   "\"client_id\":null,\"address\":\"127.0.0.1\",\"reason\":\"tls_handshake_failed\"," \
	   "\"detail\":\"x\",\"count\":1,\"suppressed\":0}"

static int parse_line(const char *line, struct moat_broker_log_line *l)
{
	struct moat_err err = {0};
	return moat_broker_log_line_parse(line, strlen(line), l, &err);
}

static void test_broker_log_lines(void **state)
{
	(void)state;
	struct moat_broker_log_line l;
	assert_int_equal(
		parse_line(TS
			   "OpenSSL Error[0]: error:0A0000C7:SSL routines::peer did not return a "
			   "certificate",
			   &l),
		0);
	assert_int_equal(l.kind, MOAT_BLOG_TLS_ERROR);
	assert_string_equal(l.tls_reason, "peer did not return a certificate");
	/* its time, as Mosquitto wrote it in local time (here UTC): the plugin's event of the
	 * same second says 1796263597496 ms; a run of the audit is matched by it (auditrun.h) */
	setenv("TZ", "UTC", 1);
	tzset();
	assert_int_equal(parse_line(TS "Client <unknown> disconnected: Protocol error.", &l), 0);
	assert_int_equal(l.time_s, INT64_C(1796263597));
	struct moat_tls_refusal_track tt;
	struct moat_tls_refusal tr[2];
	memset(&tt, 0, sizeof(tt));
	struct moat_broker_log_line run[3];
	assert_int_equal(parse_line("2026-12-03T02:06:36: OpenSSL Error[0]: error:0A0000C7:SSL "
				    "routines::peer did not return a certificate",
				    &run[0]),
			 0);
	assert_int_equal(parse_line(TS "Client <unknown> disconnected: Protocol error.", &run[1]),
			 0);
	assert_int_equal(parse_line(PLUGIN_TLS, &run[2]), 0);
	assert_int_equal(moat_tls_refusal_feed(&tt, &run[0], tr), 0);
	assert_int_equal(moat_tls_refusal_feed(&tt, &run[1], tr), 0);
	assert_int_equal(moat_tls_refusal_feed(&tt, &run[2], tr), 1);
	assert_int_equal(tr[0].time_s, INT64_C(1796263596)); /* the run's first line */
	assert_string_equal(tr[0].address, "127.0.0.1");
	assert_int_equal(parse_line(TS "Client <unknown> disconnected: Protocol error.", &l), 0);
	assert_int_equal(l.kind, MOAT_BLOG_UNKNOWN_GONE);
	assert_int_equal(parse_line(PLUGIN_TLS, &l), 0);
	assert_int_equal(l.kind, MOAT_BLOG_PLUGIN_EVENT);
	assert_string_equal(l.ev.kind, "auth_refused");
	assert_string_equal(l.ev.address, "127.0.0.1");
	assert_int_equal(parse_line(TS "New connection from 127.0.0.1:49102 on port 35651.", &l),
			 0);
	assert_int_equal(l.kind, MOAT_BLOG_OTHER);
	assert_int_equal(parse_line(TS "Client \x01\xff odd", &l), 0); /* of no interest */
	assert_int_equal(l.kind, MOAT_BLOG_OTHER);

	static const char *const bad[] = {
		"",
		"OpenSSL Error[0]: error:0A0000C7:SSL routines::x", /* no timestamp */
		"2026-12-03 02:06:37: Client <unknown> disconnected.",
		"2026-12-03T02:06:3x: Client <unknown> disconnected.",
		TS "OpenSSL Error[]: error:0A0000C7:SSL routines::x",
		TS "OpenSSL Error[0] error:0A0000C7:SSL routines::x",
		TS "OpenSSL Error[0]: 0A0000C7:SSL routines::x",
		TS "OpenSSL Error[0]: error:0A0000C7:SSL routines:x", /* three colons */
		TS "OpenSSL Error[0]: error:0A0000C7:SSL routines::", /* empty reason */
		TS "OpenSSL Error[0]: error:0A0000C7:SSL routines::bad\x01",
		TS "moat: event {\"kind\":\"auth_refused\"}", /* no time_ms */
		TS "moat: event not json",
		TS "Client connection from  failed: error:0A00010B:SSL routines::x.", /* no address
										       */
		TS "Client connection from 127.0.0.1x failed: error:0A00010B:SSL routines::x.",
		TS "Client connection from 127.0.0.1 failed: 0A00010B:SSL routines::x.",
		TS "Client connection from 127.0.0.1 failed: error:0A00010B:SSL routines::.",
		TS "Client connection from "
		   "1111111111111111111111111111111111111111111111111111111111111111111 failed: "
		   "error:0A00010B:SSL routines::x.", /* address too long */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse_line(bad[i], &l) == 0) {
			fail_msg("accepted: %s", bad[i]);
		}
		assert_int_equal(l.kind, MOAT_BLOG_OTHER);
	}
	/* a line longer than the bound */
	char *long_line = malloc(MOAT_BROKER_LOG_LINE_MAX + 2);
	assert_non_null(long_line);
	memset(long_line, 'a', MOAT_BROKER_LOG_LINE_MAX + 1);
	memcpy(long_line, TS, strlen(TS));
	long_line[MOAT_BROKER_LOG_LINE_MAX + 1] = '\0';
	assert_int_equal(parse_line(long_line, &l), MOAT_EINVAL);
	free(long_line);

	assert_string_equal(moat_tls_refusal_reason("peer did not return a certificate"),
			    "no_certificate");
	assert_string_equal(moat_tls_refusal_reason("certificate verify failed"),
			    "certificate_not_verified");
	assert_string_equal(moat_tls_refusal_reason("wrong version number"), "not_tls");
	assert_string_equal(moat_tls_refusal_reason("no shared cipher"), "tls_policy");
	assert_string_equal(moat_tls_refusal_reason("something else"), "handshake_failed");
}

/* The run of lines of one refused handshake, across interleaved lines. */
static void test_tls_refusal_track(void **state)
{
	(void)state;
	struct moat_tls_refusal_track t = {0};
	struct moat_tls_refusal rr[2];
	struct moat_tls_refusal *r = rr;
	struct moat_broker_log_line err1, err2, gone, ev, other, ev_other;
	assert_int_equal(
		parse_line(TS "OpenSSL Error[0]: error:0A000086:SSL routines::certificate verify "
			      "failed",
			   &err1),
		0);
	assert_int_equal(parse_line(TS "OpenSSL Error[1]: error:0A000418:SSL routines::tlsv1 "
				       "alert unknown ca",
				    &err2),
			 0);
	assert_int_equal(parse_line(TS "Client <unknown> disconnected: Protocol error.", &gone), 0);
	assert_int_equal(parse_line(PLUGIN_TLS, &ev), 0);
	assert_int_equal(parse_line(TS "New connection from 127.0.0.1:1 on port 2.", &other), 0);
	assert_int_equal(
		parse_line(TS
			   "moat: event {\"time_ms\":1,\"kind\":\"connected\",\"address\":\"::1\"}",
			   &ev_other),
		0);
	/* the whole run: one refusal, the first error's reason, the plugin's address */
	assert_false(moat_tls_refusal_feed(&t, &other, rr));
	assert_false(moat_tls_refusal_feed(&t, &err1, rr));
	assert_false(moat_tls_refusal_feed(&t, &err2, rr));
	assert_false(moat_tls_refusal_feed(&t, &gone, rr));
	assert_true(moat_tls_refusal_feed(&t, &ev, rr));
	assert_string_equal(r->reason, "certificate_not_verified");
	assert_string_equal(r->openssl, "certificate verify failed");
	assert_string_equal(r->address, "127.0.0.1");
	/* the plugin's event alone (a health check closing early is not one): nothing */
	assert_false(moat_tls_refusal_feed(&t, &ev, rr));
	/* an error not followed by an unknown client's disconnection: nothing */
	assert_false(moat_tls_refusal_feed(&t, &err1, rr));
	assert_false(moat_tls_refusal_feed(&t, &other, rr));
	assert_false(moat_tls_refusal_feed(&t, &gone, rr));
	assert_false(moat_tls_refusal_feed(&t, &ev, rr));
	/* no plugin event after it (its budget): a refusal without address, and the next
	 * line may start another run */
	assert_false(moat_tls_refusal_feed(&t, &err1, rr));
	assert_false(moat_tls_refusal_feed(&t, &gone, rr));
	assert_true(moat_tls_refusal_feed(&t, &err2, rr));
	assert_string_equal(r->address, "");
	assert_string_equal(r->reason, "certificate_not_verified");
	assert_false(moat_tls_refusal_feed(&t, &gone, rr));
	assert_true(moat_tls_refusal_feed(&t, &ev_other, rr));
	assert_string_equal(r->openssl, "tlsv1 alert unknown ca");
	assert_string_equal(r->address, "");
	/* a failed accept is a refusal by itself, with its address; after a run cut short,
	 * both come out */
	struct moat_broker_log_line acc;
	assert_int_equal(parse_line(TS "Client connection from ::1 failed: error:0A00010B:SSL "
				       "routines::wrong version number.",
				    &acc),
			 0);
	assert_int_equal(acc.kind, MOAT_BLOG_ACCEPT_FAILED);
	assert_string_equal(acc.address, "::1");
	assert_string_equal(acc.tls_reason, "wrong version number");
	assert_int_equal(moat_tls_refusal_feed(&t, &acc, rr), 1);
	assert_string_equal(rr[0].reason, "not_tls");
	assert_string_equal(rr[0].address, "::1");
	assert_int_equal(moat_tls_refusal_feed(&t, &err1, rr), 0);
	assert_int_equal(moat_tls_refusal_feed(&t, &gone, rr), 0);
	assert_int_equal(moat_tls_refusal_feed(&t, &acc, rr), 2);
	assert_string_equal(rr[0].reason, "certificate_not_verified");
	assert_string_equal(rr[0].address, "");
	assert_string_equal(rr[1].address, "::1");
	/* after an error not followed by a disconnection, the accept still counts */
	assert_int_equal(moat_tls_refusal_feed(&t, &err1, rr), 0);
	assert_int_equal(moat_tls_refusal_feed(&t, &acc, rr), 1);
	assert_string_equal(rr[0].address, "::1");
	/* a refused line ends a run too */
	assert_false(moat_tls_refusal_feed(&t, &err1, rr));
	assert_false(moat_tls_refusal_feed(&t, &gone, rr));
	assert_true(moat_tls_refusal_feed(&t, NULL, rr));
	assert_false(moat_tls_refusal_feed(&t, NULL, rr));
}
#undef TS
#undef PLUGIN_TLS

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_silence),
		cmocka_unit_test(test_payload_size),
		cmocka_unit_test(test_burst_and_window),
		cmocka_unit_test(test_acl_burst_default),
		cmocka_unit_test(test_release),
		cmocka_unit_test(test_event_jump),
		cmocka_unit_test(test_clone),
		cmocka_unit_test(test_zone),
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_hook),
		cmocka_unit_test(test_plugin_event),
		cmocka_unit_test(test_plugin_event_audit_run),
		cmocka_unit_test(test_severity_names),
		cmocka_unit_test(test_diag_summary),
		cmocka_unit_test(test_broker_log_lines),
		cmocka_unit_test(test_tls_refusal_track),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
