#!/usr/bin/env bash
# test_moatd_events.sh: update events over MQTT into the registry. Devices publish
# {"event":"update",...} on their diagnostics topic through a real Mosquitto; moatd,
# subscribed as the backend-service identity, records them; `moat fw status` shows the
# version each device runs and its last events; the running version decides what
# /api/firmware/version offers (204 once the device runs the newest release). Malformed
# events are refused with one log line and do not stop ingest.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_moatd.sh"
command -v curl >/dev/null || skip "curl not installed"
command -v mosquitto_pub >/dev/null || skip "mosquitto_pub not installed"
[ -x /usr/sbin/mosquitto ] || skip "mosquitto not installed"

e2e_init
export MOAT_FW_PASSPHRASE="fw-e2e-signing-passphrase"
moat device add dev1 --type sensor >/dev/null
moat device add dev2 --type sensor >/dev/null
moat identity add backend-service --role service >/dev/null
moat fw keygen >/dev/null 2>&1
head -c 4096 /dev/urandom >"$T/a.bin"
moat fw sign "$T/a.bin" --type sensor --version 2.0.0 --security-version 1 --out "$T/a.json" 2>/dev/null
moat fw publish "$T/a.json" "$T/a.bin" >/dev/null

agent_broker_start
moatd_start
wait_grep 20 "event=ingest_subscribed as=backend-service" "$T/moatd.log" ||
	fail "moatd did not subscribe: $(tail -3 "$T/moatd.log")"

expect_status 200 "dev1 is offered 2.0.0 before reporting" dev1 "$(url /api/firmware/version)"

agent_pub dev1 devices/dev1/diagnostics '{"event":"update","stage":"checked","running":"1.0.0"}'
agent_pub dev1 devices/dev1/diagnostics '{"event":"update","stage":"downloading","version":"2.0.0","running":"1.0.0"}'
agent_pub dev1 devices/dev1/diagnostics '{"event":"update","stage":"verified","version":"2.0.0"}'
agent_pub dev1 devices/dev1/diagnostics '{"event":"update","stage":"installed","version":"2.0.0"}'
agent_pub dev1 devices/dev1/diagnostics '{"event":"update","stage":"confirmed","version":"2.0.0","running":"2.0.0"}'
agent_pub dev2 devices/dev2/diagnostics '{"event":"update","stage":"refused","version":"2.0.0","running":"1.0.0","reason":"bad_signature"}'
# Not update events: a diagnostics report (kept), or refused with a log line each.
agent_pub dev2 devices/dev2/diagnostics '{"event":"diagnostics","free_heap":1000}'
agent_pub dev2 devices/dev2/diagnostics '{"event":"update","stage":"exploded"}'
agent_pub dev2 devices/dev2/diagnostics 'not json'
agent_pub dev2 devices/dev2/diagnostics '{"event":"update","stage":"reverted","version":"2.0.0","running":"1.0.0","reason":"no_broker"}'

wait_grep 20 "event=update_event id=dev2 stage=reverted" "$T/moatd.log" ||
	fail "events not recorded: $(grep update_event "$T/moatd.log" | tail -5)"
grep -q "event=update_event id=dev1 stage=confirmed version=2.0.0 running=2.0.0" "$T/moatd.log" ||
	fail "confirmed event not logged"
[ "$(grep -c 'event=payload_refused id=dev2 topic=diagnostics' "$T/moatd.log")" = 2 ] ||
	fail "refused events not logged once each: $(grep payload_refused "$T/moatd.log")"
assert_not_contains "$(cat "$T/moatd.log")" "exploded"
pass "update events recorded, bad ones refused with one line each"

expect_ok "fw status" moat fw status
printf '%s\n' "$out"
echo "$out" | qgrep -E '^dev1 +sensor +2\.0\.0 +current' || fail "dev1 does not show running 2.0.0"
echo "$out" | qgrep -E '^dev2 +sensor +1\.0\.0 +2\.0\.0' || fail "dev2 does not show running 1.0.0"
assert_contains "$out" "confirmed"
assert_contains "$out" "reason=bad_signature"
assert_contains "$out" "reason=no_broker"
expect_ok "fw status dev2 --json" moat --json fw status dev2
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert len(d)==1 and d[0]["id"]=="dev2" and d[0]["running"]=="1.0.0" and d[0]["events"][0]["stage"]=="reverted", d' "$out" ||
	fail "fw status --json: $out"
expect_fail "fw status: unknown device" moat fw status nobody

expect_status 204 "dev1 runs the newest release: nothing to offer" dev1 "$(url /api/firmware/version)"
expect_status 200 "dev2 still runs 1.0.0: offered 2.0.0" dev2 "$(url /api/firmware/version)"

# A broker restart: ingest reconnects and goes on recording.
agent_broker_stop
agent_broker_start
subscribed_twice() { [ "$(grep -c 'event=ingest_subscribed' "$T/moatd.log")" -ge 2 ]; }
wait_for 40 subscribed_twice ||
	fail "ingest did not reconnect: $(tail -3 "$T/moatd.log")"
agent_pub dev2 devices/dev2/diagnostics '{"event":"update","stage":"checked","running":"1.0.0"}'
wait_grep 20 "event=update_event id=dev2 stage=checked" "$T/moatd.log" ||
	fail "no event recorded after the broker restarted"
pass "ingest reconnects after a broker restart"
moatd_stop
