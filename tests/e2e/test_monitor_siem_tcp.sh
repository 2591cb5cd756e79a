#!/usr/bin/env bash
# test_monitor_siem_tcp.sh: moatd's export over plain TCP (siem_url = tcp://, for a collector
# on the same host) to a real rsyslog (Debian's imtcp, no TLS): RFC 5424 records of the
# broker plugin's events and of moatd's own (an anomaly its ingest rules fired, a refusal of
# its HTTPS service). And alerts to a webhook whose server presents a certificate from
# another CA, then an expired one, are refused: nothing reaches the receiver, each attempt is
# logged (event=webhook_failed naming the verification), counted in /metrics, one
# peer_refused security event for the episode, and the alert stays queued on disk.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_moatd.sh"
source "$(dirname "$0")/lib_monitor.sh"
command -v curl >/dev/null || skip "curl not installed"
command -v mosquitto_pub >/dev/null || skip "mosquitto_pub not installed"
[ -x /usr/sbin/mosquitto ] || skip "mosquitto not installed"

e2e_init
moat device add dev1 --type sensor >/dev/null
moat identity add backend-service --role service >/dev/null
moat identity add op1 --role operator >/dev/null
monitor_pki
# an expired server certificate from the webhook's own CA
test_ca_sign "$X" old "/CN=localhost" server -cert "$X/ca.crt" -keyfile "$X/ca.key" \
	-startdate 20200101000000Z -enddate 20200102000000Z
RS_PORT=$(free_port)
WH_PORT=$(free_port)
RS_OUT="$T/rsyslog.out"
WH_OUT="$T/webhook.out"
printf '\n[monitor]\nsiem_url = tcp://127.0.0.1:%s\nsiem_format = rfc5424\nwebhook_url = https://localhost:%s/hook\nwebhook_ca = %s\nwebhook_retry_min = 1s\nwebhook_retry_max = 1s\nacl_burst = 3\ndedup_window = 0s\n' \
	"$RS_PORT" "$WH_PORT" "$X/ca.crt" >>"$D/moat.conf"
expect_ok "config check" moat config check

rsyslog_start_plain "$RS_PORT" "$RS_OUT"
# the receiver presents the deployment's server certificate: not from webhook_ca
webhook_start "$WH_PORT" "$WH_OUT" 0 "$D/pki/server.crt" "$D/pki/server.key"
agent_broker_start
moatd_start
wait_for 20 grep -q "event=ingest_subscribed as=backend-service" "$T/moatd.log" ||
	fail "moatd ingest not subscribed: $(tail -5 "$T/moatd.log")"

# three ACL denials of dev1 (the plugin's kind), and with acl_burst = 3 moatd's own
# acl_burst anomaly; dev1 asking for /metrics: moatd's own auth_refused
ev() {
	printf '{"time_ms":%s,"kind":"acl_denied","identity":"dev1","client_id":"dev1","address":"127.0.0.1","reason":"publish","detail":"devices/dev2/telemetry #%s","count":%s,"suppressed":0}' \
		"$(date +%s%3N)" "$1" "$1"
}
for i in 1 2 3; do agent_pub op1 moat/events/acl_denied "$(ev "$i")"; done
code=$(ocurl dev1 -o /dev/null -w '%{http_code}' "$(url /metrics)") || true
[ "$code" = 403 ] || fail "dev1 on /metrics: HTTP $code"
# the exporter connects once it has something to send
wait_for 20 grep -q "event=siem_connected host=127.0.0.1 port=$RS_PORT tls=no" "$T/moatd.log" ||
	fail "no plain TCP connection to rsyslog: $(grep siem "$T/moatd.log" | tail -3)"
wait_for 20 grep -q ' moat - anomaly ' "$RS_OUT" || fail "rsyslog got no anomaly: $(cat "$RS_OUT")"
wait_for 20 grep -q 'reason="not_an_operator"\|not_an_operator' "$RS_OUT" ||
	fail "rsyslog got no refusal of moatd's: $(cat "$RS_OUT")"
[ "$(grep -c ' moat - acl_denied ' "$RS_OUT")" = 3 ] || fail "acl_denied records: $(cat "$RS_OUT")"
grep -E '^<[0-9]+>1 [0-9T:.-]+Z [^ ]+ moat - anomaly \[moat@32473 .*acl_burst' "$RS_OUT" >/dev/null ||
	fail "the anomaly is not an RFC 5424 record naming its rule: $(grep anomaly "$RS_OUT")"
grep -E '^<[0-9]+>1 [0-9T:.-]+Z [^ ]+ moat - auth_refused \[moat@32473 ' "$RS_OUT" >/dev/null ||
	fail "moatd's refusal is not an RFC 5424 record: $(grep auth_refused "$RS_OUT")"
pass "rsyslog over plain TCP got the plugin's events and moatd's own (anomaly, auth_refused) as RFC 5424"

# the webhook: every attempt refused by TLS verification, nothing delivered, counted
wait_for 20 sh -c "[ \$(grep -c 'event=webhook_failed' '$T/moatd.log') -ge 2 ]" ||
	fail "no failed webhook attempts: $(grep webhook "$T/moatd.log" | tail -3)"
grep 'event=webhook_failed' "$T/moatd.log" | qgrep -i 'certificate\|verif' ||
	fail "the failure does not name the certificate: $(grep webhook_failed "$T/moatd.log" | tail -2)"
[ ! -s "$WH_OUT" ] || fail "the receiver with a foreign certificate got: $(cat "$WH_OUT")"
metric() { ocurl op1 "$(url /metrics)" | sed -n "s/^$1 //p"; }
failures=$(metric 'moat_export_failures_total{sink="webhook"}')
[ "${failures%.*}" -ge 2 ] || fail "webhook failures not counted: $failures"
[ "$(metric 'moat_export_sent_total{sink="webhook"}')" = 0 ] || fail "a webhook delivery counted as sent"
grep -q '"kind":"anomaly"' "$D/state/alerts.queue" || fail "the alert is not kept queued: $(cat "$D/state/alerts.queue" 2>&1)"
# and it is a security event (high), once for the episode however many attempts failed,
# exported like any other
peer_events() { moat --json events --kind peer_refused; }
peer_refused_once() {
	[ "$(peer_events | grep -c .)" = 1 ] &&
		peer_events | jq_any '.source == "moatd" and .severity == "high" and .address == "localhost" and (.evidence | startswith("sink=webhook port='"$WH_PORT"' ")) and (.evidence | test("certificate refused"))'
}
wait_for 20 peer_refused_once || fail "peer_refused events: $(peer_events)"
wait_for 20 grep -q ' moat - peer_refused ' "$RS_OUT" || fail "rsyslog got no peer_refused: $(tail -3 "$RS_OUT")"
pass "a webhook server with a certificate from another CA is refused: logged, counted, nothing sent, alert kept, one peer_refused event"

# an expired certificate from the right CA: refused as well
kill "$WEBHOOK_PID"
wait "$WEBHOOK_PID" 2>/dev/null || true
before=$(grep -c 'event=webhook_failed' "$T/moatd.log")
webhook_start "$WH_PORT" "$WH_OUT" 0 "$X/old.crt" "$X/old.key"
wait_for 20 sh -c "[ \$(grep -c 'event=webhook_failed' '$T/moatd.log') -ge $((before + 1)) ]" ||
	fail "no failed attempts against the expired certificate: $(grep webhook "$T/moatd.log" | tail -3)"
[ ! -s "$WH_OUT" ] || fail "the receiver with an expired certificate got: $(cat "$WH_OUT")"
# the right certificate: the queued alerts go out
kill "$WEBHOOK_PID"
wait "$WEBHOOK_PID" 2>/dev/null || true
webhook_start "$WH_PORT" "$WH_OUT"
wait_for 20 grep -q '"kind":"anomaly"\|acl_burst' "$WH_OUT" || fail "the queued alert was not delivered: $(cat "$WH_OUT")"
[ "$(peer_events | grep -c .)" = 1 ] || fail "one refusal episode made more than one event: $(peer_events)"
wait_for 20 grep -q '"kind":"peer_refused"' "$WH_OUT" || fail "the peer_refused alert was not delivered once the webhook verified: $(cat "$WH_OUT")"
pass "an expired webhook certificate is refused too; the receiver with a valid one then gets the queued alerts"
moatd_stop
