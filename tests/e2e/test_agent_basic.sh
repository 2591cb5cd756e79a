#!/usr/bin/env bash
# moat-agent against a real Mosquitto: telemetry in the schema of docs/ARCHITECTURE.md with a growing
# metadata.seq, a retained online status with the agent's address, the retained last will
# ("offline") when the agent is killed with SIGKILL, an offline status on SIGTERM, and a
# sequence that keeps growing across a restart.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_agent.sh"

e2e_init
moat device add dev1 --type temperature_sensor >/dev/null
moat identity add ops --role operator >/dev/null
agent_export dev1
agent_set "$CONF" agent interval 1s
agent_broker_start

expect_ok "agent --check" moat-agent --config "$CONF" --check

agent_sub ops "$T/sub.txt" 'devices/dev1/#'
agent_start

wait_grep 10 '^devices/dev1/status .*"online"' "$T/sub.txt" || fail "no online status: $(cat "$T/agent.log")"
wait_for 10 count_at_least 3 '^devices/dev1/telemetry ' "$T/sub.txt" || fail "no telemetry"
pass "online status and telemetry"

python3 - "$T/sub.txt" <<'PY' || fail "telemetry or status not in the schema"
import json, sys
seqs = []
online = None
for line in open(sys.argv[1]):
    topic, _, payload = line.rstrip("\n").partition(" ")
    m = json.loads(payload)
    if topic == "devices/dev1/telemetry":
        assert m["device_id"] == "dev1" and m["device_type"] == "temperature_sensor"
        assert isinstance(m["timestamp"], int) and m["timestamp"] > 1.7e12
        t = m["telemetry"]
        assert isinstance(t["temperature"], (int, float)) and 17 <= t["temperature"] <= 28
        assert isinstance(t["humidity"], (int, float)) and 35 <= t["humidity"] <= 55
        md = m["metadata"]
        for k in ("signal_strength", "free_heap", "uptime_ms", "seq"):
            assert isinstance(md[k], int), k
        seqs.append(md["seq"])
    elif topic == "devices/dev1/status":
        online = m
assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
assert online["status"] == "online" and online["device_id"] == "dev1"
assert online["ip_address"] == "127.0.0.1", online
assert online["agent_version"]
PY
pass "telemetry schema, consecutive seq, status with address"

# The status is retained: a late subscriber sees it.
# shellcheck disable=SC2046
st=$(mosquitto_sub $(agent_client_args ops) -t devices/dev1/status -C 1 -W 5)
assert_contains "$st" '"online"'
pass "online status is retained"

# SIGKILL: the broker publishes the last will.
kill -9 "$AGENT"
wait "$AGENT" 2>/dev/null || true
# keepalive is 30 s, but the killed process's socket is closed at once, so the broker
# notices immediately and sends the will.
wait_grep 10 '^devices/dev1/status {"device_id":"dev1","status":"offline"}$' "$T/sub.txt" ||
	fail "no last will after SIGKILL: $(tail -3 "$T/sub.txt")"
pass "last will offline after SIGKILL"
last_seq=$(grep '^devices/dev1/telemetry ' "$T/sub.txt" | tail -1 | python3 -c 'import sys,json; print(json.loads(sys.stdin.read().split(" ",1)[1])["metadata"]["seq"])')

# Restart: the sequence continues above every number used before.
mark=$(wc -l <"$T/sub.txt")
moat-agent --config "$CONF" 2>"$T/agent2.log" &
AGENT=$!
E2E_PIDS+=("$AGENT")
after() { tail -n +$((mark + 1)) "$T/sub.txt"; }
telemetry_after() { after | qgrep '^devices/dev1/telemetry '; }
wait_for 10 telemetry_after || fail "no telemetry after restart"
first_seq=$(after | grep '^devices/dev1/telemetry ' | head -1 | python3 -c 'import sys,json; print(json.loads(sys.stdin.read().split(" ",1)[1])["metadata"]["seq"])')
[ "$first_seq" -gt "$last_seq" ] || fail "seq went back: $first_seq after $last_seq"
pass "seq grows across restarts ($last_seq -> $first_seq)"

# SIGTERM: offline published by the agent itself (with a timestamp), exit 0.
kill -TERM "$AGENT"
rc=0
wait "$AGENT" || rc=$?
[ $rc -eq 0 ] || fail "agent exit $rc on SIGTERM"
offline_after() { after | qgrep '^devices/dev1/status .*"offline".*"timestamp"'; }
wait_for 5 offline_after || fail "no offline status on SIGTERM"
grep -q 'event=stopped' "$T/agent2.log" || fail "no stopped event in the log"
pass "SIGTERM publishes offline and exits 0"

# Logs: one line per event, key=value, never the key.
grep -q 'event=connected' "$T/agent.log" || fail "no connected event"
assert_not_contains "$(cat "$T/agent.log" "$T/agent2.log")" "PRIVATE KEY"
pass "log lines"

agent_sanitizer_clean "$T"/*.log "$T"/*.err
