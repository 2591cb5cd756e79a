#!/usr/bin/env bash
# test_monitor_export.sh: moatd exports security events to a real rsyslog (Debian's, with
# rsyslog-gnutls) over TLS verified against the test's own CA, in each of the three formats,
# every kind the broker plugin writes; and alerts go to a real HTTPS webhook receiver:
# retried with back-off after 503s, many at once as one summary, a burst of one refusal
# deduplicated into one alert with its count, and a queue that survives a moatd restart;
# the SIEM's queue survives a moatd restart while rsyslog is down; [monitor] dedup_window
# folds identical events into one record with their count of repeats.
# The events are published on moat/events/<kind> through a real Mosquitto (the plain test
# broker, which lets a service write there; under `moat up` only the plugin may).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_moatd.sh"
source "$(dirname "$0")/lib_monitor.sh"
command -v curl >/dev/null || skip "curl not installed"
command -v mosquitto_pub >/dev/null || skip "mosquitto_pub not installed"
command -v jq >/dev/null || skip "jq not installed (scripts/bootstrap installs it)"
[ -x /usr/sbin/mosquitto ] || skip "mosquitto not installed"
/usr/bin/python3 -c "import paho.mqtt.client" 2>/dev/null || skip "python3-paho-mqtt not installed"

e2e_init
moat device add dev1 --type sensor >/dev/null
moat identity add backend-service --role service >/dev/null
moat identity add backend-standby --role service >/dev/null # the second moatd's, below
moat identity add op1 --role operator >/dev/null
monitor_pki
RS_PORT=$(free_port)
WH_PORT=$(free_port)
RS_OUT="$T/rsyslog.out"
WH_OUT="$T/webhook.out"

# ---- configuration: accepted, and bad values refused naming the key ----
cp "$D/moat.conf" "$T/moat.conf.orig"
printf '\n[monitor]\nsiem_url = udp://127.0.0.1:514\n' >>"$D/moat.conf"
expect_fail "config check: udp" moat config check
assert_contains "$errout" "[monitor] siem_url"
cp "$T/moat.conf.orig" "$D/moat.conf"
printf '\n[monitor]\nwebhook_url = http://127.0.0.1:1/x\n' >>"$D/moat.conf"
expect_fail "config check: http webhook" moat config check
assert_contains "$errout" "webhook_url"
cp "$T/moat.conf.orig" "$D/moat.conf"
# ingest_session = 0: the first moatd is killed with a standby beside it (below); a kept
# ingest session would go on taking its share of moat/events/# (shared subscriptions count
# offline members) and the standby would see about half the events. This test is about the
# export; test_monitor_ingest_session.sh tests the kept session.
printf '\n[monitor]\nsiem_url = tls://localhost:%s\nsiem_ca = %s\nsiem_format = rfc5424\nwebhook_url = https://127.0.0.1:%s/hook\nwebhook_ca = %s\nwebhook_retry_min = 1s\nwebhook_retry_max = 1s\nwebhook_summary = 3\nwebhook_gather = 1s\ndedup_window = 0s\ningest_session = 0\n' \
	"$RS_PORT" "$X/ca.crt" "$WH_PORT" "$X/ca.crt" >>"$D/moat.conf"
expect_ok "config check" moat config check
pass "[monitor] accepted by moat config check, bad URLs refused"

KINDS="auth_refused acl_denied rate_limited payload_rejected revoked_kicked flapping_banned connected disconnected subscription_limited crl_rejected events_suppressed"
event() { # KIND IDENTITY REASON
	printf '{"time":"2026-12-02T21:00:00Z","time_ms":%s000,"kind":"%s","identity":"%s","client_id":"%s","address":"127.0.0.1","reason":"%s","detail":"a \\"quoted\\" ]detail","count":1,"suppressed":0}' \
		"$(date +%s)" "$1" "$2" "$2" "$3"
}
# moatd_up [--no-ingest]: the exporter follows the events the ingest records in the registry
# (from state/export.cursor); with --no-ingest it subscribes to moat/events/# itself
moatd_up() {
	MOATD_MARK=$(log_lines "$T/moatd.log")
	e2e_bg moatd --dir "$D" --listen 127.0.0.1 --port "$SERVER_PORT" "$@" >>"$T/moatd.log" 2>&1
	MOATD_PID=$!
	if [ "${1:-}" = --no-ingest ]; then
		moatd_wait "event=export_subscribed as=backend-service" || fail "moatd did not subscribe"
	else
		moatd_wait "event=ingest_subscribed as=backend-service" || fail "moatd did not subscribe"
	fi
}
# moatd_wait PATTERN: PATTERN in what the moatd started last logged
moatd_wait() {
	wait_for 20 log_has_since "$T/moatd.log" "$MOATD_MARK" -e "$1" ||
		{ echo "moatd log: $(tail -5 "$T/moatd.log")" >&2; return 1; }
}
moatd_down() {
	kill -TERM "$MOATD_PID"
	wait "$MOATD_PID" || fail "moatd exited with $? on SIGTERM"
	if grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/moatd.log" "$T"/m2.log* 2>/dev/null; then
		fail "sanitizer report in moatd's log"
	fi
}

rsyslog_start "$RS_PORT" "$RS_OUT"
webhook_start "$WH_PORT" "$WH_OUT" 2
agent_broker_start
moatd_up

# all at once (one MQTT session, QoS 1), so they fall within webhook_gather
for k in $KINDS; do printf 'moat/events/%s %s\n' "$k" "$(event "$k" dev1 "r-$k")"; done >"$T/events.txt"
timeout "$(deadline 20)" /usr/bin/python3 - "$BROKER_PORT" "$D/pki/ca.crt" "$D/pki/identities/op1" "$T/events.txt" <<'PY' ||
import ssl, sys, paho.mqtt.client as mqtt
port, ca, ident, path = sys.argv[1:5]
c = mqtt.Client(client_id="op1")
c.tls_set(ca_certs=ca, certfile=ident + "/cert.pem", keyfile=ident + "/key.pem",
          tls_version=ssl.PROTOCOL_TLS_CLIENT)
c.connect("localhost", int(port))
c.loop_start()
infos = [c.publish(t, p, qos=1) for t, p in (l.rstrip("\n").split(" ", 1) for l in open(path))]
for i in infos:
    i.wait_for_publish(10)
    assert i.is_published()
c.disconnect()
c.loop_stop()
PY
	fail "publishing the events failed"
for k in $KINDS; do
	wait_for 15 grep -q "kind=\"$k\"" "$RS_OUT" || fail "rsyslog did not get $k: $(cat "$RS_OUT")"
done
# RFC 5424: <PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD]; authpriv warning for refusals
grep -E '^<84>1 [0-9T:.-]+Z [^ ]+ moat - acl_denied \[moat@32473 kind="acl_denied" identity="dev1" client_id="dev1" address="127.0.0.1" reason="r-acl_denied" detail="a \\"quoted\\" \\]detail" count="1" suppressed="0"\]' "$RS_OUT" >/dev/null ||
	fail "RFC 5424 record not as expected: $(grep acl_denied "$RS_OUT")"
grep -qE '^<86>1 .* moat - connected ' "$RS_OUT" || fail "connected is not informational"
[ "$(wc -l <"$RS_OUT")" -eq 11 ] || fail "records: $(wc -l <"$RS_OUT"), expected 11"
grep -q "event=siem_connected host=localhost port=$RS_PORT tls=yes" "$T/moatd.log" ||
	fail "no TLS connection logged"
# moatd's record of it for moat audit: delivered, nothing waiting
wait_for 10 jq -e '.version == 1 and .last_ok > 0 and .pending == 0' "$D/state/siem.status" ||
	fail "state/siem.status: $(cat "$D/state/siem.status" 2>&1)"
pass "rsyslog got every kind over TLS as RFC 5424 with structured data"

# Webhook: two 503s first, then 9 alerts (every kind but connected/disconnected) due at
# once (more than webhook_summary = 3) go as one summary.
wait_for 20 grep -q '^{.*"summary":true' "$WH_OUT" || fail "no summary delivered: $(cat "$WH_OUT")"
[ "$(grep -c '^503 ' "$WH_OUT")" -eq 2 ] || fail "expected two refused attempts: $(cat "$WH_OUT")"
grep -q 'event=webhook_failed' "$T/moatd.log" || fail "failures not logged"
summary=$(grep '^{.*"summary":true' "$WH_OUT")
assert_contains "$summary" '"alerts":9'
assert_contains "$summary" '"acl_denied":1'
assert_not_contains "$summary" '"connected"'
pass "webhook: retried after 503 with back-off, then one summary of 9 alerts"

# Dedup and persistence: the receiver is away; five identical refusals are one queued
# alert with count 5, on disk; moatd restarts, loads it and delivers it once the
# receiver is back.
kill "$WEBHOOK_PID"
wait "$WEBHOOK_PID" 2>/dev/null || true
for i in 1 2 3 4 5; do agent_pub op1 moat/events/acl_denied "$(event acl_denied dev1 burst)"; done
wait_for 15 grep -q '"reason":"burst".*"count":5' "$D/state/alerts.queue" ||
	fail "queue file: $(cat "$D/state/alerts.queue" 2>&1)"
[ "$(stat -c %a "$D/state/alerts.queue")" = 600 ] || fail "queue file not 0600"
moatd_down
# the burst is one entry; the ingest's acl_burst anomaly rule fired on it too (an alert)
n=$(python3 -c 'import json,sys
q = json.load(open(sys.argv[1]))
b = [a for a in q["alerts"] if a["reason"] == "burst"]
assert q["version"] == 1 and len(b) == 1 and b[0]["count"] == 5, q
print(len(q["alerts"]))' "$D/state/alerts.queue") || fail "queue not as expected after stop"

# moat audit's monitor.sinks reads this queue: alerts moatd could not deliver for over an
# hour are a medium finding; fresh ones, and ones 59 minutes old, are not. The queue is the
# one moatd wrote, its times moved back (the injected clock: the file's own timestamps).
cp "$D/state/alerts.queue" "$T/alerts.queue.real"
# age_queue MINUTES: every alert of the real queue first fired MINUTES ago
age_queue() {
	python3 - "$T/alerts.queue.real" "$D/state/alerts.queue" "$1" <<'PY'
import json, sys, time
q = json.load(open(sys.argv[1]))
then = int((time.time() - int(sys.argv[3]) * 60) * 1000)
for a in q["alerts"]:
    a["last_ms"] = then + (a["last_ms"] - a["first_ms"])
    a["first_ms"] = then
json.dump(q, open(sys.argv[2], "w"))
PY
}
# webhook_finding: $wf := the audit's monitor.sinks findings about the webhook, or "" (not
# in a command substitution: a failing audit must fail the test)
webhook_finding() {
	run_captured moat --json audit --no-system
	[ "$run_rc" = 0 ] || [ "$run_rc" = 1 ] || fail "moat audit exited $run_rc: $errout"
	jq -e '.checks | index("monitor.sinks")' >/dev/null <<<"$out" || fail "monitor.sinks did not run: $out"
	wf=$(jq -r '[.findings[] | select(.id == "monitor.sinks" and (.title | test("webhook")))] |
		map(.severity + ": " + .title + " | " + .evidence) | join("\n")' <<<"$out")
}
webhook_finding
[ -z "$wf" ] || fail "fresh alerts reported as late: $wf"
age_queue 59
webhook_finding
[ -z "$wf" ] || fail "59-minute-old alerts reported as late: $wf"
age_queue 61
webhook_finding
assert_contains "$wf" "medium: $n alert(s) have not reached the webhook for over an hour"
assert_contains "$wf" "pending in state/alerts.queue"
cp "$T/alerts.queue.real" "$D/state/alerts.queue"
webhook_finding
[ -z "$wf" ] || fail "the real queue reported as late: $wf"
pass "moat audit: alerts undelivered for over an hour are a finding (61 min), not at 59 min"
: >"$WH_OUT"
webhook_start "$WH_PORT" "$WH_OUT"
moatd_up
moatd_wait "event=alert_queue_loaded alerts=$n" || fail "queue not loaded"
wait_for 20 grep -q '"kind":"acl_denied".*"reason":"burst".*"count":5' "$WH_OUT" ||
	fail "queued alert not delivered after restart: $(cat "$WH_OUT")"
[ "$(grep -c '"reason":"burst"' "$WH_OUT")" -eq 1 ] || fail "burst delivered more than once: $(cat "$WH_OUT")"
if [ "$n" -gt 1 ]; then
	wait_for 10 grep -q '"kind":"anomaly".*"reason":"acl_burst"' "$WH_OUT" ||
		fail "the anomaly alert was not delivered: $(cat "$WH_OUT")"
fi
pass "five identical alerts deduplicated, queued on disk across a restart, delivered once"

# /metrics reads what the ingest recorded and what the export did, and how the ingest
# keeps up: one telemetry message through this moatd's ingest, counted once recorded
tele=$(printf '{"device_id":"dev1","device_type":"sensor","timestamp":%s,"telemetry":{"temperature":21.5}}' "$(date +%s%3N)")
agent_pub dev1 devices/dev1/telemetry "$tele"
ingest_recorded() {
	ocurl op1 -o "$T/metrics.txt" -w '%{http_code}' "https://localhost:$SERVER_PORT/metrics" >/dev/null &&
		grep -qE '^moat_ingest_messages_recorded_total [1-9]' "$T/metrics.txt"
}
wait_for 10 ingest_recorded || fail "ingest recorded nothing: $(grep moat_ingest "$T/metrics.txt")"
code=$(ocurl op1 -o "$T/metrics.txt" -w '%{http_code}' "https://localhost:$SERVER_PORT/metrics")
[ "$code" = 200 ] || fail "/metrics: HTTP $code"
grep -qE '^moat_ingest_messages_received_total [1-9]' "$T/metrics.txt" || fail "no messages received counted"
bytes=$(sed -n 's/^moat_ingest_bytes_received_total //p' "$T/metrics.txt")
[ -n "$bytes" ] && [ "$bytes" -ge "${#tele}" ] ||
	fail "bytes received $bytes, expected at least ${#tele}"
grep -qE '^moat_ingest_messages_dropped_total 0$' "$T/metrics.txt" || fail "messages dropped: $(grep dropped "$T/metrics.txt")"
grep -qE '^moat_ingest_queue_length [0-9]+$' "$T/metrics.txt" || fail "no ingest queue length"
grep -qE '^moat_ingest_lag_seconds [0-9.e+-]+$' "$T/metrics.txt" || fail "no ingest lag"
grep -qE '^moat_security_events_recorded\{kind="acl_denied",severity="[a-z]+"\} [0-9]+$' "$T/metrics.txt" ||
	fail "no recorded acl_denied events: $(grep security_events "$T/metrics.txt")"
grep -qE '^moat_export_sent_total\{sink="webhook"\} [1-9]' "$T/metrics.txt" || fail "no webhook deliveries counted"
if [ "$n" -gt 1 ]; then
	grep -qE '^moat_anomalies_recorded\{rule="acl_burst"\} [1-9]' "$T/metrics.txt" ||
		fail "anomaly not in /metrics"
fi
if command -v promtool >/dev/null; then
	promtool check metrics <"$T/metrics.txt" >/dev/null 2>&1 || fail "promtool refuses /metrics"
fi
pass "/metrics shows recorded events, anomalies, deliveries and the ingest's messages, bytes, queue and lag"

# A corrupt queue file is set aside, never reused.
moatd_down
echo '{"version":1,"alerts":[{"kind":"BAD"}]}' >"$D/state/alerts.queue"
moatd_up
moatd_wait "event=alert_queue_refused" || fail "corrupt queue not refused"
ls "$D/state/" | qgrep '^alerts.queue.bad.' || fail "corrupt queue not kept aside"
pass "a corrupt queue file is refused and kept aside"

# The SIEM's queue survives a restart: with rsyslog stopped, three events wait on disk
# (state/siem.queue, 0600); moatd restarts and loads them; rsyslog starts and gets each once.
kill "$RSYSLOG_PID"
wait "$RSYSLOG_PID" 2>/dev/null || true
for i in 1 2 3; do agent_pub op1 moat/events/auth_refused "$(event auth_refused dev1 "away-$i")"; done
queued() { [ "$(grep -c '"reason":"away-' "$D/state/siem.queue" 2>/dev/null)" = "$1" ]; }
wait_for 15 queued 3 || fail "state/siem.queue: $(cat "$D/state/siem.queue" 2>&1)"
[ "$(stat -c %a "$D/state/siem.queue")" = 600 ] || fail "siem queue not 0600"
moatd_down
moatd_up
moatd_wait "event=siem_queue_loaded events=[1-9]" || fail "siem queue not loaded"
rsyslog_start "$RS_PORT" "$RS_OUT"
wait_for 20 grep -q "reason=\"away-3\"" "$RS_OUT" ||
	fail "queued events not delivered after the restart: $(cat "$RS_OUT")"
# a later event arrives after them: nothing more of the queue is coming
agent_pub op1 moat/events/auth_refused "$(event auth_refused dev1 marker)"
wait_for 15 grep -q 'reason="marker"' "$RS_OUT" || fail "marker not delivered"
for i in 1 2 3; do
	[ "$(grep -c "reason=\"away-$i\"" "$RS_OUT")" = 1 ] || fail "away-$i not delivered once: $(cat "$RS_OUT")"
done
wait_for 10 queued 0 || fail "delivered events still in state/siem.queue"
pass "rsyslog stopped, moatd restarted, rsyslog started: the queued events arrive once"
# A corrupt SIEM queue is set aside, never reused.
moatd_down
printf '{"version":1,"events":1}\n{"kind":"BAD"}\n' >"$D/state/siem.queue"
moatd_up
moatd_wait "event=siem_queue_refused" || fail "corrupt siem queue not refused"
ls "$D/state/" | qgrep '^siem.queue.bad.' || fail "corrupt siem queue not kept aside"
pass "a corrupt SIEM queue file is refused and kept aside"

# A moatd killed outright loses no event: the exporter follows the registry from its cursor
# (state/export.cursor), written only after the queue files that cover it. With rsyslog
# stopped and the SIEM's queue file held unwritten (a test-build failpoint: as if the kill
# came before its next rewrite), three events are recorded and moatd gets SIGKILL; the next
# moatd reads them again from the registry and rsyslog gets each once.
moatd_down
MOAT_EXPORT_SIEM_QUEUE_EVERY=1h moatd_up
moatd_wait "event=failpoint name=MOAT_EXPORT_SIEM_QUEUE_EVERY" || fail "the failpoint is not on"
moatd_wait "event=export_leading seq=[0-9]* took_over=no" || fail "the exporter did not lead"
kill "$RSYSLOG_PID"
wait "$RSYSLOG_PID" 2>/dev/null || true
for i in 1 2 3; do agent_pub op1 moat/events/auth_refused "$(event auth_refused dev1 "killed-$i")"; done
recorded() { [ "$(moat --json events --kind auth_refused | grep -c 'killed-')" = 3 ]; }
wait_for 15 recorded || fail "the events were not recorded: $(moat --json events --kind auth_refused)"
# the exporter has them queued (it tried the collector with one of them), none on disk
wait_for 15 log_has_since "$T/moatd.log" "$MOATD_MARK" -e "event=siem_unreachable" ||
	fail "the exporter did not try the collector"
grep -q 'killed-' "$D/state/siem.queue" 2>/dev/null && fail "the queue file holds them: the test proves nothing"
[ "$(stat -c %a "$D/state/export.cursor")" = 600 ] || fail "export.cursor not 0600"
# and the cursor on disk is before them: a cursor that ran ahead would lose them
first=$(moat --json events --kind auth_refused | jq -r 'select(.evidence | contains("killed-1")) | .seq')
[ "$(jq -r .seq "$D/state/export.cursor")" -lt "$first" ] ||
	fail "cursor $(cat "$D/state/export.cursor") past killed-1 (seq $first) before its delivery"
kill -KILL "$MOATD_PID"
wait "$MOATD_PID" 2>/dev/null || true
moatd_up
moatd_wait "event=export_leading seq=[0-9]* took_over=no" || fail "the exporter did not lead"
rsyslog_start "$RS_PORT" "$RS_OUT"
for i in 1 2 3; do
	wait_for 20 grep -q "reason=\"killed-$i\"" "$RS_OUT" ||
		fail "killed-$i lost with the SIGKILL: $(tail -5 "$RS_OUT")"
done
agent_pub op1 moat/events/auth_refused "$(event auth_refused dev1 after-kill)"
wait_for 15 grep -q 'reason="after-kill"' "$RS_OUT" || fail "after-kill not delivered"
for i in 1 2 3; do
	[ "$(grep -c "reason=\"killed-$i\"" "$RS_OUT")" = 1 ] || fail "killed-$i not delivered once"
done
pass "moatd killed with events queued and not on disk: the next moatd sends each from the registry, once"

# One moatd of a directory exports at a time: a second moatd of the deployment stands by
# (state/export.lock), and takes over, from the cursor, when the first is killed.
# the first moatd's cursor past after-kill (written within a second of its delivery)
seq=$(moat --json events --kind auth_refused | jq -r 'select(.evidence | contains("after-kill")) | .seq')
cursor_past() { [ "$(jq -r .seq "$D/state/export.cursor")" -ge "$seq" ]; }
wait_for 10 cursor_past || fail "cursor $(cat "$D/state/export.cursor") not past seq $seq"
P2=$(free_port)
# its own service identity: this test's broker makes the identity the client id
# (use_username_as_clientid), and two moatds under one would take each other's session;
# moatd (its own account when the test is root) reads that identity's key as it does its own
svc="$D/pki/identities/backend-service" stb="$D/pki/identities/backend-standby"
chgrp -R "$(stat -c %G "$svc")" "$stb"
chmod "$(stat -c %a "$svc")" "$stb"
chmod "$(stat -c %a "$svc/key.pem")" "$stb/key.pem"
e2e_bg moatd --dir "$D" --listen 127.0.0.1 --port "$P2" --as backend-standby >>"$T/m2.log.standby" 2>&1
M2_PID=$!
wait_for 20 grep -q "event=export_standby" "$T/m2.log.standby" || fail "the second moatd did not stand by: $(tail -3 "$T/m2.log.standby")"
wait_for 20 grep -q "event=ingest_subscribed" "$T/m2.log.standby" || fail "the second moatd's ingest did not subscribe"
# an event the first moatd had not delivered when it died (rsyslog away): the second sends it.
# The first moatd still holds its connection to rsyslog: syslog over TCP has no
# acknowledgement, so the first record written after rsyslog died may go into the dead
# connection (the collector's restart loses it; docs/OPERATIONS.md). Events until the first
# moatd finds that out, then the one that must not be lost.
kill "$RSYSLOG_PID"
wait "$RSYSLOG_PID" 2>/dev/null || true
M1_MARK=$(log_lines "$T/moatd.log")
for i in 1 2 3 4 5 6 7 8 9 10; do
	agent_pub op1 moat/events/auth_refused "$(event auth_refused dev1 "probe-$i")"
	wait_for 2 log_has_since "$T/moatd.log" "$M1_MARK" -e "event=siem_unreachable" && break
done
log_has_since "$T/moatd.log" "$M1_MARK" -e "event=siem_unreachable" ||
	fail "the first moatd did not find rsyslog gone: $(tail -3 "$T/moatd.log")"
agent_pub op1 moat/events/auth_refused "$(event auth_refused dev1 pending)"
pending() { moat --json events --kind auth_refused | qgrep 'pending'; }
wait_for 15 pending || fail "the pending event was not recorded"
kill -KILL "$MOATD_PID"
wait "$MOATD_PID" 2>/dev/null || true
wait_for 15 grep -q "event=export_leading seq=[0-9]* took_over=yes" "$T/m2.log.standby" ||
	fail "the second moatd did not take over: $(tail -3 "$T/m2.log.standby")"
rsyslog_start "$RS_PORT" "$RS_OUT"
wait_for 20 grep -q 'reason="pending"' "$RS_OUT" || fail "the event the first moatd had not delivered is lost"
agent_pub op1 moat/events/auth_refused "$(event auth_refused dev1 took-over)"
wait_for 15 grep -q 'reason="took-over"' "$RS_OUT" || fail "the second moatd did not export"
# (rsyslog's output starts afresh with each start: after-kill went to the one before)
grep -q 'reason="after-kill"' "$RS_OUT" && fail "after-kill sent again by the second moatd"
kill -TERM "$M2_PID"
wait "$M2_PID" || fail "the second moatd exited with $? on SIGTERM"
moatd_up
pass "a second moatd stands by, takes over the export when the first is killed: what was pending goes, nothing delivered is resent"

# A cursor that does not read is kept aside, never reused; one beyond the registry's newest
# event (a registry restored from an older copy) is brought back to it.
moatd_down
echo '{"version":1,"seq":"BAD"}' >"$D/state/export.cursor"
moatd_up
moatd_wait "event=export_cursor_refused" || fail "a corrupt cursor was not refused"
ls "$D/state/" | qgrep '^export.cursor.bad.' || fail "the corrupt cursor was not kept aside"
moatd_down
printf '{"version":1,"seq":999999999}\n' >"$D/state/export.cursor"
moatd_up
moatd_wait "event=export_cursor_reset from=999999999 to=[0-9]" || fail "a cursor beyond the registry was not reset"
pass "a corrupt cursor is kept aside; one beyond the registry is brought back to its newest event"

# Deduplication: with dedup_window = 2s, five identical events in a burst are not five
# records: the first goes at once, the repeats at the window's end as one record (the last
# of them) with their count (repeats="N"); the events the records stand for are exactly
# five, for the SIEM and in the webhook's alert counts.
moatd_down
sed -i "s/^dedup_window = .*/dedup_window = 2s/" "$D/moat.conf"
expect_ok "config check: dedup_window" moat config check
moatd_up
for i in 1 2 3 4 5; do event acl_denied dev1 dedup-1; echo; done >"$T/dedup.lines"
# shellcheck disable=SC2046
mosquitto_pub $(agent_client_args op1) -q 1 -t moat/events/acl_denied -l <"$T/dedup.lines" ||
	fail "publishing the burst failed"
siem_total() { # events of reason dedup-1 rsyslog heard of: a record with repeats="N" says N
	grep 'reason="dedup-1"' "$RS_OUT" | awk '{ if (match($0, / repeats="[0-9]+"/))
		n += substr($0, RSTART + 10, RLENGTH - 11); else n++ } END { print n + 0 }'
}
five() { [ "$(siem_total)" = 5 ]; }
wait_for 20 five || fail "records + repeats: $(siem_total), expected 5: $(grep dedup-1 "$RS_OUT")"
records=$(grep -c 'reason="dedup-1"' "$RS_OUT")
[ "$records" -lt 5 ] || fail "nothing was deduplicated: $records records"
grep -qE 'reason="dedup-1" .*count="1" suppressed="0" repeats="[1-4]"\]' "$RS_OUT" ||
	fail "no record says its repeats: $(grep dedup-1 "$RS_OUT")"
wh_total() {
	python3 -c 'import json,sys
n = 0
for l in open(sys.argv[1]):
    if l.startswith("{"):
        a = json.loads(l)
        if a.get("reason") == "dedup-1":
            n += a["count"]
print(n)' "$WH_OUT"
}
wh_five() { [ "$(wh_total)" = 5 ]; }
wait_for 20 wh_five || fail "webhook alert counts: $(wh_total), expected 5: $(grep dedup-1 "$WH_OUT")"
code=$(ocurl op1 -o "$T/metrics.txt" -w '%{http_code}' "https://localhost:$SERVER_PORT/metrics")
[ "$code" = 200 ] && grep -qE '^moat_export_deduplicated_total [1-4]$' "$T/metrics.txt" ||
	fail "deduplicated events not in /metrics: $(grep dedup "$T/metrics.txt")"
pass "dedup_window: 5 identical events sent as $records records with their repeats (SIEM and webhook)"

# CEF and JSON lines to the same collector.
for fmt in cef json; do
	moatd_down
	sed -i "s/^siem_format = .*/siem_format = $fmt/" "$D/moat.conf"
	moatd_up --no-ingest
	agent_pub op1 moat/events/crl_rejected "$(event crl_rejected dev1 "fmt-$fmt")"
	wait_for 15 grep -q "fmt-$fmt" "$RS_OUT" || fail "$fmt record not received"
done
grep -qE '^<84>1 [^ ]+ [^ ]+ moat - crl_rejected - CEF:0\|moat\|moat\|[0-9.]+\|crl_rejected\|crl_rejected\|8\|rt=[0-9]+ suser=dev1 cs1Label=client_id cs1=dev1 src=127.0.0.1 reason=fmt-cef msg=a "quoted" \]detail cnt=1$' "$RS_OUT" ||
	fail "CEF record: $(grep fmt-cef "$RS_OUT")"
line=$(grep fmt-json "$RS_OUT")
python3 -c 'import json,sys; e=json.loads(sys.argv[1]); assert e["kind"]=="crl_rejected" and e["reason"]=="fmt-json" and e["detail"]=="a \"quoted\" ]detail", e' "$line" ||
	fail "JSON line: $line"
pass "CEF and JSON lines received by rsyslog"

# A collector whose certificate does not verify (the deployment's root instead of the
# collector's CA) gets nothing, and moatd says why.
moatd_down
sed -i "s|^siem_ca = .*|siem_ca = $D/pki/ca.crt|" "$D/moat.conf"
lines=$(wc -l <"$RS_OUT")
moatd_up
agent_pub op1 moat/events/acl_denied "$(event acl_denied dev1 unverified)"
moatd_wait "event=siem_unreachable error=.*certificate refused" ||
	fail "unverified collector not refused: $(tail -3 "$T/moatd.log")"
[ "$(wc -l <"$RS_OUT")" -eq "$lines" ] || fail "an unverified collector got records"
# recorded: the event waits, and why (rewritten at most every 5 s)
wait_for 10 jq -e '.pending >= 1 and .oldest_pending > 0 and .last_error >= .last_ok and
	(.error | test("certificate refused"))' "$D/state/siem.status" ||
	fail "state/siem.status: $(cat "$D/state/siem.status" 2>&1)"
siem_refused() {
	moat --json events --kind peer_refused |
		jq_any '.severity == "high" and (.evidence | startswith("sink=siem ")) and (.evidence | test("certificate refused"))'
}
wait_for 10 siem_refused || fail "no peer_refused event for the collector: $(moat events --kind peer_refused)"
pass "a collector that does not verify gets nothing; a peer_refused event says so"

# SIGHUP reopens moatd's --log file (rotation by rename).
moatd_down
e2e_bg moatd --dir "$D" --listen 127.0.0.1 --port "$SERVER_PORT" --no-ingest --log "$T/m2.log"
MOATD_PID=$!
wait_grep 20 "event=export_subscribed" "$T/m2.log" || fail "moatd --log did not start"
# rotation as logrotate's "create" does it: rename, then a new file for moatd's account
mv "$T/m2.log" "$T/m2.log.1"
install -m 0640 -o "$(stat -c %u "/proc/$MOATD_PID")" /dev/null "$T/m2.log"
kill -HUP "$MOATD_PID"
wait_for 10 grep -q "event=log_reopened" "$T/m2.log" || fail "log not reopened on SIGHUP"
grep -q "event=log_reopened" "$T/m2.log.1" && fail "the line went to the rotated file"
moatd_down
pass "SIGHUP reopens moatd's log file"
