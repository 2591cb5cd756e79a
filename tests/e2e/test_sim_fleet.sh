#!/usr/bin/env bash
# moat sim with 500 devices in one process against a real Mosquitto: every device is
# provisioned, connects (TLS, its own certificate), says online, publishes telemetry that
# arrives at a subscriber, and says offline when the simulator stops. Then `moat cmd`
# commands one simulated device (same device code as moat-agent) while the fleet runs.
# The simulator's connected_peak is exact (counted at every connect and disconnect, not
# sampled every 200 ms): all N were connected at once before the simulator stopped.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_agent.sh"

N=${SIM_DEVICES:-500}
e2e_init
moat identity add ops --role operator >/dev/null
moat identity add ops2 --role operator >/dev/null
agent_broker_start

agent_sub ops "$T/sub.txt" 'devices/+/telemetry' 'devices/+/status'
moat --json sim --create --devices "$N" --prefix fleet --interval 2s --duration 600s >"$T/sim.json" 2>"$T/sim.err" &
SIM=$!
E2E_PIDS+=("$SIM")

# every device has published at least once (as seen by the subscriber)
all_published() {
	[ "$(grep '/telemetry ' "$T/sub.txt" | cut -d/ -f2 | sort -u | wc -l)" -ge "$N" ]
}
wait_for 300 all_published || fail "not all devices published: $(tail -3 "$T/sim.err")"

# While the fleet runs: a command to one simulated device answers like moat-agent.
expect_ok "moat cmd to a simulated device" moat cmd fleet-000007 update_interval --arg interval=3s --as ops2 --wait
assert_contains "$out" "completed"

kill -TERM "$SIM"
wait "$SIM" || fail "moat sim failed: $(tail -5 "$T/sim.err")"
cat "$T/sim.json"
# every device said offline before the simulator exited: wait until the subscriber has them
all_offline() {
	[ "$(grep '/status .*"offline"' "$T/sub.txt" | cut -d/ -f2 | sort -u | wc -l)" -ge "$N" ]
}
wait_for 30 all_offline || true # if not, the check below names who is missing
python3 - "$T/sub.txt" "$T/sim.json" "$N" <<'PY' || fail "not every device connected and published"
import json, sys
sub, simjson, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = json.load(open(simjson))
assert r["devices"] == n and r["connected_peak"] == n and r["published"] == n, r
tele, online, offline = set(), set(), set()
for line in open(sub):
    topic, _, payload = line.rstrip("\n").partition(" ")
    dev = topic.split("/")[1]
    m = json.loads(payload)
    assert m["device_id"] == dev
    if topic.endswith("/telemetry"):
        assert isinstance(m["metadata"]["seq"], int)
        tele.add(dev)
    elif m["status"] == "online":
        online.add(dev)
    else:
        offline.add(dev)
want = {f"fleet-{i:06d}" for i in range(1, n + 1)}
for name, got in (("telemetry", tele), ("online", online), ("offline", offline)):
    assert got == want, f"{name}: {len(got)} of {n}; missing {sorted(want - got)[:5]}"
print(f"{n} devices: all online, all published, all offline at the end")
PY
pass "$N simulated devices connected and published"

# A second run reuses the identities (nothing provisioned) and continues their sequences.
expect_ok "sim reuses identities" moat sim --devices 3 --prefix fleet --interval 1s --duration 2s
assert_not_contains "$errout" "provisioning"
pass "identities reused"

agent_sanitizer_clean "$T"/*.log "$T"/*.err
