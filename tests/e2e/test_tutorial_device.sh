#!/usr/bin/env bash
# Firmware written for the tutorial works unchanged: a device that speaks exactly as the
# tutorial's ESP32 sketch (tutorial_device.py: paho, MQTT 3.1.1, QoS 0, client id = device
# id, commands/#, a retained status and no last will, the tutorial's JSON, responses WITHOUT
# an id), with mutual TLS on its certificate from this deployment (verification on),
# against `moat up` (Mosquitto with the moat plugin and its payload rules). Every command
# round-trips through `moat cmd` (id-less responses matched by device and command:
# "matched":"by_command" in --json), and its telemetry, status, diagnostics and responses
# show in `moat watch`. Nothing it sends is refused by the plugin.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_agent.sh"

# Debian's python3-paho-mqtt is for Debian's python3 (another python3 may come first on PATH)
TPY=
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import paho.mqtt.client' 2>/dev/null; then TPY=$p && break; fi
done
[ -n "$TPY" ] || skip "python3-paho-mqtt is not installed (scripts/bootstrap installs it)"

ID=esp32-sensor-001
agent_plugin_init
moat device add "$ID" --type temperature_sensor >/dev/null
moat identity add ops --role operator >/dev/null
moat identity add watcher --role operator >/dev/null
moat_up_test

mark=$(log_lines "$D/log/mosquitto.log")
moat watch "$ID" --json --as watcher --timeout "$(deadline 120s)" >"$T/watch.json" 2>"$T/watch.err" &
WATCH=$!
E2E_PIDS+=("$WATCH")
watch_wait_subscribed "$D/log/mosquitto.log" "$mark" watcher "$WATCH"

P="$D/pki/identities/$ID"
"$TPY" "$MOAT_SRC/tests/e2e/tutorial_device.py" localhost "$BROKER_PORT" "$P/ca.crt" \
	"$P/cert.pem" "$P/key.pem" "$ID" "$(deadline 120)" >"$T/device.out" 2>"$T/device.err" &
DEV=$!
E2E_PIDS+=("$DEV")
wait_grep "$(deadline 15)" '^connected 1' "$T/device.out" ||
	fail "the tutorial device did not connect: $(cat "$T/device.out" "$T/device.err")"
pass "a tutorial device connects with mutual TLS, server verified"

# cmd_json NAME [ARGS...]: moat --json cmd to the device; $out is its one line
cmd_json() {
	expect_ok "cmd $1" moat --json cmd "$ID" "$@" --as ops --wait --timeout "$(deadline 15s)"
}
matched_by_command() {
	python3 - "$out" "$1" "$2" <<'PY' || fail "cmd --json: $out"
import json, sys
m = json.loads(sys.argv[1])
assert m["command"] == sys.argv[2] and m["status"] == sys.argv[3], m
assert "id" not in m and m["matched"] == "by_command", m
PY
}

cmd_json diagnostics
matched_by_command diagnostics completed
cmd_json update_interval --arg interval=1s
matched_by_command update_interval accepted
wait_grep "$(deadline 5)" '^interval 1$' "$T/device.out" || fail "the device did not read interval=1 (seconds)"
set +e
moat cmd "$ID" self_destruct --as ops --timeout "$(deadline 15s)" >"$T/o" 2>&1; rc=$?
set -e
[ $rc -eq 1 ] || fail "unknown command: exit $rc ($(cat "$T/o"))"
assert_contains "$(cat "$T/o")" "unknown_command"
set +e
moat cmd "$ID" check_update --as ops --timeout "$(deadline 15s)" >"$T/o" 2>&1; rc=$?
set -e
[ $rc -eq 1 ] || fail "check_update (unknown to the tutorial): exit $rc ($(cat "$T/o"))"
cmd_json reboot
matched_by_command reboot accepted
wait_grep "$(deadline 10)" '^connected 2' "$T/device.out" || fail "the device did not come back after reboot"
# after its restart it answers again
cmd_json diagnostics
matched_by_command diagnostics completed
pass "every command round-trips through moat cmd, id-less responses matched by command"

# moat-agent's responses carry the id: matched by it (unchanged)
wait_for "$(deadline 20)" count_at_least 3 '"kind":"telemetry"' "$T/watch.json" || fail "watch saw no telemetry"
kill -TERM "$WATCH"
wait "$WATCH" || fail "watch exit status on SIGTERM"
python3 - "$T/watch.json" "$ID" <<'PY' || fail "watch --json: $(head -c 2000 "$T/watch.json")"
import json, sys
kinds = {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    assert m["device"] == sys.argv[2], m
    if m["kind"] != "diagnostics":
        assert m["valid"] is True, m
    kinds.setdefault(m["kind"], []).append(m["message"])
t = kinds["telemetry"][0]
assert t["telemetry"]["temperature"] == 22.5 and t["metadata"]["signal_strength"] == -60, t
assert kinds["status"][0]["status"] == "online"
assert any("chip_model" in d for d in kinds["diagnostics"]), kinds["diagnostics"]
got = {(r["command"], r["status"]) for r in kinds["command_responses"]}
want = {("diagnostics", "completed"), ("update_interval", "accepted"),
        ("self_destruct", "unknown_command"), ("reboot", "accepted")}
assert want <= got, got
PY
pass "watch shows the tutorial device's telemetry, status, diagnostics and responses"

# the plugin refused nothing the tutorial device sent: its only events are its connections
refused=$(jq -c --arg id "$ID" 'select(.client_id == $id and .kind != "connected" and .kind != "disconnected")' \
	"$D/log/security-events.jsonl")
[ -z "$refused" ] || fail "the plugin refused something of the tutorial device: $refused"
grep -q "\"kind\":\"connected\",.*\"identity\":\"$ID\"" "$D/log/security-events.jsonl" ||
	fail "no connection event of the device (is the events file elsewhere?)"
pass "the plugin's payload rules accept the tutorial's messages"

kill -TERM "$DEV"
wait "$DEV" || fail "the tutorial device: $(cat "$T/device.err")"
agent_sanitizer_clean "$T"/*.err
