#!/usr/bin/env bash
# test_agent_sessions.sh: moat's own tools share identities without kicking each other, on
# the deployment's broker (`moat up`, the moat_broker.so plugin). Two `moat watch`, `moat
# cmd` and moatd's ingest run at once as the same service identity (client ids
# <identity>:watch-<pid>, :cmd-<pid>, :ingest); eleven quick `moat cmd` calls do not ban
# the operator (flapping limits are per role); a device banned for flapping and an
# operator banned under a stricter limit get in again after `moat device unban` /
# `moat identity unban`, and the CLI names the broker's reason for refusing it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_moatd.sh"
command -v mosquitto_pub >/dev/null || skip "mosquitto_pub not installed"

agent_plugin_init
agent_setup 1s ops
moat device add dev2 >/dev/null
moat identity add backend-service --role service >/dev/null
moat_up_test
EVENTS=$D/log/security-events.jsonl
wait_for 30 grep -q "event=ingest_subscribed as=backend-service" "$D/log/moatd.log" ||
	fail "ingest not subscribed: $(grep ingest "$D/log/moatd.log" | tail -3)"

# --- one service identity, four sessions ------------------------------------------------
moat watch --all --json --as backend-service --timeout "$(deadline 120s)" >"$T/w1.json" 2>"$T/w1.err" &
W1=$!
E2E_PIDS+=("$W1")
moat watch --all --json --as backend-service --timeout "$(deadline 120s)" >"$T/w2.json" 2>"$T/w2.err" &
W2=$!
E2E_PIDS+=("$W2")
agent_start
for w in w1 w2; do
	wait_grep 15 '"kind":"telemetry"' "$T/$w.json" || fail "$w got no telemetry: $(cat "$T/$w.err")"
done
expect_ok "cmd as the watching service" moat cmd dev1 diagnostics --as backend-service --timeout "$(deadline 10s)"
assert_contains "$out" "completed"
for w in w1 w2; do
	wait_grep 15 '"kind":"command_responses"' "$T/$w.json" || fail "$w missed the response"
done
kill -0 "$W1" && kill -0 "$W2" || fail "a watch was kicked"
# (moatd may have tried before the broker listened: only what follows the subscription)
sed -n '/event=ingest_subscribed/,$p' "$D/log/moatd.log" | qgrep "event=ingest_disconnected" &&
	fail "moatd's ingest was kicked"
[ "$(grep -c event=ingest_subscribed "$D/log/moatd.log")" -eq 1 ] || fail "ingest resubscribed"
grep -q '"client_id":"backend-service:watch-' "$EVENTS" || fail "no watch-<pid> session"
grep -q "\"client_id\":\"backend-service:ingest-[a-z0-9-]*-$SERVER_PORT\"" "$EVENTS" || fail "no :ingest-<host>-<port> session"
[ -z "$(jq -c 'select(.kind=="disconnected" and .identity=="backend-service" and (.client_id|test("watch|ingest")))' "$EVENTS")" ] ||
	fail "a session of backend-service was disconnected"
pass "two watches, a cmd and moatd's ingest as one service, none kicked"

# --- eleven quick commands: the operator is not a device ------------------------------
for i in $(seq 1 11); do
	expect_ok "cmd $i" moat cmd dev1 diagnostics --as ops --timeout "$(deadline 10s)"
done
[ -z "$(jq -c 'select(.identity=="ops" and (.kind=="flapping_banned" or .kind=="auth_refused"))' "$EVENTS")" ] ||
	fail "the operator was refused"
pass "11 quick moat cmd calls: the operator is not banned"

# --- a device banned for flapping, unbanned ---------------------------------------------
for i in $(seq 1 10); do
	broker_pub dev2 dev2 devices/dev2/telemetry '{"device_id":"dev2"}' >/dev/null 2>&1 ||
		fail "dev2 connect $i"
done
expect_fail "dev2's 11th connect" broker_pub dev2 dev2 devices/dev2/telemetry '{"device_id":"dev2"}'
wait_for 10 grep -q '"kind":"flapping_banned",.*"identity":"dev2"' "$EVENTS" || fail "dev2 not banned"
expect_fail "dev2 while banned" broker_pub dev2 dev2 devices/dev2/telemetry '{"device_id":"dev2"}'
expect_ok "moat device unban" moat device unban dev2
assert_contains "$out" "unbanned dev2"
wait_for 10 grep -q 'flapping ban of dev2 lifted' "$D/log/mosquitto.log" || fail "dev2's ban not lifted"
expect_ok "dev2 after the unban" broker_pub dev2 dev2 devices/dev2/telemetry '{"device_id":"dev2"}'
expect_fail "moat identity unban of an unknown name" moat identity unban nobody

# --- an operator under a stricter limit: the CLI says why it was refused -------------
agent_set "$D/moat.conf" policy operator_flap_connects 2
mark=$(log_lines "$D/log/mosquitto.log")
moat identity add ops3 --role operator >/dev/null # writes the policy with the new limit
wait_for 10 grep -q "operator connects=2" "$D/broker/policy" || fail "policy not rewritten"
wait_for 10 log_has_since "$D/log/mosquitto.log" "$mark" -F "moat: policy reloaded" ||
	fail "the plugin did not reload the policy: $(tail -3 "$D/log/mosquitto.log")"
expect_ok "ops3 connect 1" moat cmd dev1 diagnostics --as ops3 --timeout "$(deadline 10s)"
expect_ok "ops3 connect 2" moat cmd dev1 diagnostics --as ops3 --timeout "$(deadline 10s)"
expect_fail "ops3 connect 3" moat cmd dev1 diagnostics --as ops3 --timeout 10s
assert_contains "$errout" "the broker refused ops3: Connection Refused: not authorised. (flapping: identity is banned for connecting too often until 20"
expect_fail "ops3 while banned" moat cmd dev1 diagnostics --as ops3 --timeout 10s
assert_contains "$errout" "not authorised. (banned: identity is banned for connecting too often until 20"
expect_ok "moat identity unban" moat identity unban ops3
wait_for 10 grep -q 'flapping ban of ops3 lifted' "$D/log/mosquitto.log" || fail "ops3's ban not lifted"
expect_ok "ops3 after the unban" moat cmd dev1 diagnostics --as ops3 --timeout "$(deadline 10s)"
pass "refusals name the broker's reason; unban lifts an operator's ban"

kill -TERM "$W1" "$W2"
wait "$W1" || fail "watch 1 exit status"
wait "$W2" || fail "watch 2 exit status"
agent_sanitizer_clean "$T"/*.log "$T"/*.err
