#!/usr/bin/env bash
# moat cmd and moat watch against moat-agent and a real Mosquitto: exit status 0 when the
# device accepted or completed the command, 1 when it refused it, did not know it, is not a
# device of the registry or is offline (said at once), 2 on timeout (--wait for a device
# that never comes online); update_interval takes a duration with its unit; --as chooses
# the operator identity; watch shows telemetry, status and responses, as text and as JSON
# lines, says what is missing without devices, and exits 2 when --timeout ends it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_agent.sh"

e2e_init
moat device add dev1 >/dev/null
moat device add dev2 >/dev/null
agent_export dev1
agent_set "$CONF" agent interval 1s
agent_broker_start

# cmd --help lists the commands with their arguments and units.
expect_ok "cmd --help" moat cmd --help
for w in reboot diagnostics check_update "update_interval --arg interval=DURATION" "30s, 5m"; do
	assert_contains "$out" "$w"
done
pass "cmd --help lists the commands and the unit of update_interval"

# No operator identity yet: a clear error.
expect_fail "cmd without an operator identity" moat cmd dev1 diagnostics --timeout 2s
assert_contains "$errout" "moat identity add"
moat identity add ops --role operator >/dev/null
moat identity add watcher --role operator >/dev/null

mark=$(log_lines "$T/broker/mosquitto.log")
moat watch dev1 --json --as watcher --timeout "$(deadline 60s)" >"$T/watch.json" 2>"$T/watch.err" &
WATCH=$!
E2E_PIDS+=("$WATCH")
moat watch --all --as watcher2 --count 1 --timeout 5s >/dev/null 2>"$T/w2.err" && fail "watch as an unknown identity succeeded"
assert_contains "$(cat "$T/w2.err")" "watcher2"
watch_wait_subscribed "$T/broker/mosquitto.log" "$mark" watcher "$WATCH"

agent_start
wait_grep 10 'event=connected' "$T/agent.log" || fail "agent did not connect"

# connected is not yet online (the status may still be on its way): --wait waits for it
expect_ok "cmd diagnostics" moat cmd dev1 diagnostics --as ops --wait
assert_contains "$out" "dev1 diagnostics: completed"
expect_ok "cmd update_interval" moat cmd dev1 update_interval --arg interval=2s
assert_contains "$out" "completed (interval 2s)"
expect_ok "cmd update_interval in minutes" moat cmd dev1 update_interval --arg interval=1m
assert_contains "$out" "completed (interval 60s)"
expect_ok "cmd update_interval back to 2s" moat cmd dev1 update_interval --arg interval=2s
expect_ok "cmd --json" moat --json cmd dev1 diagnostics
python3 -c 'import json,sys; m=json.loads(sys.argv[1]); assert m["status"]=="completed" and m["id"].startswith("cmd-")' "$out" ||
	fail "cmd --json is not the response: $out"

# update_interval: a unit is required, whole seconds from 1s to 1d; refused before sending
for bad in 5000 0 0s 1500ms 2d 5x; do
	set +e
	moat cmd dev1 update_interval --arg interval=$bad >"$T/o" 2>&1; rc=$?
	set -e
	[ $rc -eq 1 ] || fail "update_interval $bad: exit $rc ($(cat "$T/o"))"
	assert_contains "$(cat "$T/o")" "interval"
done
assert_contains "$(moat cmd dev1 update_interval --arg interval=5000 2>&1 || true)" "give a unit"
expect_fail "update_interval without its interval" moat cmd dev1 update_interval
assert_contains "$errout" "--arg interval=DURATION"
pass "update_interval without a unit, or out of range, is refused: exit 1"
# what the device refuses: exit 1
set +e
moat cmd dev1 check_update >"$T/o" 2>&1; rc=$?
set -e
[ $rc -eq 1 ] || fail "refused command: exit $rc ($(cat "$T/o"))"
assert_contains "$(cat "$T/o")" "refused"
pass "refused: exit 1"
set +e
moat cmd dev1 self_destruct >"$T/o" 2>&1; rc=$?
set -e
[ $rc -eq 1 ] || fail "unknown command: exit $rc"
assert_contains "$(cat "$T/o")" "unknown_command"
pass "unknown command: exit 1"
# dev2 never connected: offline, said at once (nothing sent), exit 1
start=$SECONDS
set +e
moat cmd dev2 diagnostics --timeout 30s >"$T/o" 2>&1; rc=$?
set -e
[ $rc -eq 1 ] || fail "offline: exit $rc ($(cat "$T/o"))"
assert_contains "$(cat "$T/o")" "dev2 is offline"
[ $((SECONDS - start)) -lt "$(deadline 10)" ] || fail "offline was not said at once"
pass "offline device: exit 1 at once"
set +e
moat cmd dev2 diagnostics --wait --timeout 2s >"$T/o" 2>&1; rc=$?
set -e
[ $rc -eq 2 ] || fail "timeout: exit $rc ($(cat "$T/o"))"
assert_contains "$(cat "$T/o")" "did not come online within 2s"
pass "--wait for a device that never comes online: exit 2"
# no such device: fails at once, before connecting
expect_fail "cmd to an unknown device" moat cmd nosuch diagnostics --timeout 30s
assert_contains "$errout" "no device nosuch"
expect_fail "cmd to an operator" moat cmd ops diagnostics
assert_contains "$errout" "not a device"
expect_fail "bad argument" moat cmd dev1 update_interval --arg 'Bad Key=1'
expect_fail "bad command name" moat cmd dev1 'Reboot!'
expect_fail "bad device name" moat cmd 'dev/1' reboot
expect_fail "as a device identity" moat cmd dev1 diagnostics --as dev2

wait_for 10 count_at_least 3 '"kind":"telemetry"' "$T/watch.json" || fail "watch saw no telemetry"
kill -TERM "$WATCH"; wait "$WATCH" || fail "watch exit status on SIGTERM"
python3 - "$T/watch.json" <<'PY' || fail "watch --json output"
import json, sys
kinds = {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    assert m["device"] == "dev1" and (m["valid"] is True or m["kind"] == "diagnostics"), m
    kinds.setdefault(m["kind"], []).append(m["message"])
assert kinds["status"][0]["status"] == "online"
assert "seq" in kinds["telemetry"][0]["metadata"]
statuses = {r["status"] for r in kinds["command_responses"]}
assert {"completed", "refused", "unknown_command"} <= statuses, statuses
assert "diagnostics" in kinds
PY
pass "watch --json: status, telemetry, responses, diagnostics"

# text mode: dev1's telemetry (its status may come first), and an invalid payload shown as
# such (never as JSON); each asserted on its own.
expect_ok "watch dev1 --count 2" moat watch dev1 --as watcher --count 2 --timeout "$(deadline 20s)"
printf '%s\n' "$out" >"$T/watch.txt"
grep -q 'dev1 .*telemetry .*seq=' "$T/watch.txt" || fail "watch text, dev1 telemetry: $(cat "$T/watch.txt")"
moat watch dev2 --as watcher --count 1 --timeout "$(deadline 20s)" >"$T/watch2.txt" 2>&1 &
W2=$!
# The invalid message is sent until the watch (which stops at its first message) has seen
# it, so the check does not depend on when the watch subscribed.
end=$((SECONDS + $(deadline 20)))
while kill -0 "$W2" 2>/dev/null && [ $SECONDS -lt $end ]; do
	agent_pub ops devices/dev2/telemetry 'not json {"x"' >/dev/null 2>&1 || true
	sleep 0.2
done
wait "$W2" || fail "watch --count: $(cat "$T/watch2.txt")"
grep -q 'dev2 .*(invalid)' "$T/watch2.txt" || fail "watch text, invalid payload: $(cat "$T/watch2.txt")"
pass "watch text output"

# watch without devices says what is missing; --timeout before --count: exit 2
expect_fail "watch without devices" moat watch --count 1
assert_contains "$errout" "which devices? name them"
expect_fail "watch with devices and --all" moat watch dev1 --all --count 1
assert_contains "$errout" "not both"
set +e
moat watch nosuch --as watcher --count 1 --timeout 1s >"$T/o" 2>&1; rc=$?
set -e
[ $rc -eq 2 ] || fail "watch timeout: exit $rc ($(cat "$T/o"))"
assert_contains "$(cat "$T/o")" "--timeout 1s reached after 0 of 1 messages"
pass "watch: what is missing, and exit 2 on --timeout"

agent_sanitizer_clean "$T"/*.log "$T"/*.err
