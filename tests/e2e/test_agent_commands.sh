#!/usr/bin/env bash
# moat-agent's command handling against a real Mosquitto: every command (update_interval,
# diagnostics, check_update, reboot), an unknown command, malformed JSON, an oversized
# payload and update_interval out of range. Each response echoes the command's id, and
# the agent survives every bad input.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_agent.sh"

e2e_init
agent_setup 60s ops pubber
agent_broker_start

agent_sub ops "$T/sub.txt" 'devices/dev1/command_responses' 'devices/dev1/diagnostics' 'devices/dev1/status'
agent_start
wait_grep 10 '"online"' "$T/sub.txt" || fail "agent did not come online: $(cat "$T/agent.log")"

# send NAME PAYLOAD ID: publishes a command and waits for the response with that id;
# sets $resp.
send() {
	agent_pub pubber "devices/dev1/commands/$1" "$2"
	wait_grep 10 "\"id\":\"$3\"" "$T/sub.txt" || fail "no response to $1 ($3): $(tail -3 "$T/agent.log")"
	resp=$(grep "\"id\":\"$3\"" "$T/sub.txt" | head -1)
}
# send_noid NAME PAYLOAD MARKER: for payloads without a usable id; waits for a new
# response line containing MARKER.
send_noid() {
	local before
	before=$(grep -c 'command_responses' "$T/sub.txt" || true)
	agent_pub pubber "devices/dev1/commands/$1" "$2"
	wait_for 10 count_at_least $((before + 1)) 'command_responses' "$T/sub.txt" || fail "no response to $1"
	resp=$(grep 'command_responses' "$T/sub.txt" | tail -1)
}
alive() { kill -0 "$AGENT" 2>/dev/null || fail "agent died: $(tail -3 "$T/agent.log")"; }

send update_interval '{"command":"update_interval","id":"c1","interval":2}' c1
assert_contains "$resp" '"status":"completed"'
assert_contains "$resp" '"interval":2'
pass "update_interval 2 completed"

for bad in 0 86401 -5 1.5 '"ten"'; do
	id="bad$RANDOM"
	send update_interval "{\"command\":\"update_interval\",\"id\":\"$id\",\"interval\":$bad}" "$id"
	assert_contains "$resp" '"status":"refused"'
	assert_contains "$resp" '"interval":2'
	pass "update_interval $bad refused"
done
send update_interval '{"command":"update_interval","id":"c2"}' c2
assert_contains "$resp" '"status":"refused"'
pass "update_interval without interval refused"

send diagnostics '{"command":"diagnostics","id":"d1"}' d1
assert_contains "$resp" '"status":"completed"'
wait_grep 5 '^devices/dev1/diagnostics ' "$T/sub.txt" || fail "no diagnostics message"
python3 - "$T/sub.txt" "$(uname -r)" <<'PY' || fail "diagnostics values are not real"
import json, sys
for line in open(sys.argv[1]):
    topic, _, payload = line.rstrip("\n").partition(" ")
    if topic != "devices/dev1/diagnostics":
        continue
    d = json.loads(payload)
    assert d["device_id"] == "dev1"
    assert d["rss_kb"] > 100, d
    assert sys.argv[2] in d["kernel"], d
    assert d["ip_address"] == "127.0.0.1", d
    assert d["system_uptime_s"] > 0 and d["uptime_ms"] >= 0
    assert d["cert_days_left"] > 700, d
    assert d["interval_s"] == 2 and d["agent_version"]
    assert len(d["load"]) == 3
    break
else:
    raise SystemExit("no diagnostics")
PY
pass "diagnostics with real values"

send check_update '{"command":"check_update","id":"u1"}' u1
assert_contains "$resp" '"command":"check_update"'
assert_contains "$resp" '"status":"refused"'
pass "check_update answered (no update client configured)"

send dance '{"command":"dance","id":"x1"}' x1
assert_contains "$resp" '"status":"unknown_command"'
pass "unknown command"

send_noid diagnostics '{"command":"diagnostics","id":' x
assert_contains "$resp" '"status":"bad_request"'
alive
pass "malformed JSON: bad_request"

send_noid diagnostics 'not json at all' x
assert_contains "$resp" '"status":"bad_request"'
send_noid diagnostics '[1,2,3]' x
assert_contains "$resp" '"status":"bad_request"'
send_noid reboot '{"command":"diagnostics","id":"mismatch"}' x
assert_contains "$resp" '"status":"bad_request"'
alive
pass "non-object JSON and topic/command mismatch: bad_request (no reboot)"

big=$(python3 -c 'print("{\"command\":\"diagnostics\",\"id\":\"big\",\"pad\":\"" + "a" * 5000 + "\"}")')
send_noid diagnostics "$big" x
assert_contains "$resp" '"status":"bad_request"'
alive
pass "oversized payload: bad_request"

# reboot: answered, then the agent re-executes itself (same pid, a new start) and comes
# back online.
online_before=$(grep -c '"online"' "$T/sub.txt")
send reboot '{"command":"reboot","id":"r1"}' r1
assert_contains "$resp" '"status":"accepted"'
wait_for 10 count_at_least 2 'event=started' "$T/agent.log" || fail "agent did not restart"
wait_for 10 count_at_least $((online_before + 1)) '"online"' "$T/sub.txt" || fail "not online after reboot"
alive
grep -q '"status":"offline","timestamp"' "$T/sub.txt" || fail "no offline status before the reboot"
pass "reboot: accepted, offline, re-executed, online again"

# after the reboot the agent still answers, with the interval the operator set
send diagnostics '{"command":"diagnostics","id":"d2"}' d2
assert_contains "$resp" '"status":"completed"'
[ "$(cat "$T/dev1/state/interval")" = 2 ] || fail "state/interval: $(cat "$T/dev1/state/interval")"
[ "$(grep 'event=started' "$T/agent.log" | tail -1 | grep -o 'interval_ms=[0-9]*')" = interval_ms=2000 ] ||
	fail "the restarted agent forgot update_interval: $(grep 'event=started' "$T/agent.log" | tail -1)"
pass "answers after reboot, keeping the interval update_interval set"

# a state file that is not an interval is ignored with a warning, never fatal
echo "soon" >"$T/dev1/state/interval"
send reboot '{"command":"reboot","id":"r2"}' r2
wait_for 10 count_at_least 3 'event=started' "$T/agent.log" || fail "agent did not restart"
grep 'event=started' "$T/agent.log" | tail -1 | qgrep 'interval_ms=60000' ||
	fail "a bad state/interval was not ignored: $(grep 'event=started' "$T/agent.log" | tail -1)"
grep -q 'event=state_ignored.*interval' "$T/agent.log" || fail "no warning about state/interval"
alive
pass "a bad state/interval: warning, the configured interval"

agent_sanitizer_clean "$T"/*.log "$T"/*.err
