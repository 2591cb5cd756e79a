#!/usr/bin/env bash
# test_plugin_budget.sh: a flood of one kind from one source does not blind the security log
# (issue #20, class 6). 1,000 idle TCP connections that the broker accepted, closed at once
# (each a tls_handshake_failed auth_refused event from 127.0.0.1), are followed by a device
# probing another device's commands: its acl_denied event IS written, the flood is cut to
# the per-address budget, an events_suppressed summary counts what was left out, and a
# legitimate device keeps publishing during the flood.
source "$MOAT_SRC/tests/e2e/lib.sh"
source "$MOAT_SRC/tests/e2e/lib_broker.sh"

command -v python3 >/dev/null || fail "python3 not installed (scripts/bootstrap installs it)"
plugin_start_ab
plugin_sub_bg svc svc-1 "$T/svc.out" 'devices/+/telemetry'

FLOOD=1000
handshakes() { plugin_events auth_refused "" tls_handshake_failed | wc -l; }
# The connections are closed once the broker has accepted every one (its log says so for
# each: "New connection from ...") and so waits for their TLS handshakes.
python3 - "$PLUGIN_PORT" "$FLOOD" "$PB/log/mosquitto.log" "$(deadline 60)" <<'PY' ||
import socket, sys, time
port, n, log, limit = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
def accepted():
    with open(log, errors="replace") as f:
        return sum(1 for line in f if "New connection from 127.0.0.1:" in line)
before = accepted()
conns = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]
end = time.monotonic() + limit
while accepted() - before < n:
    if time.monotonic() > end:
        sys.exit(f"the broker accepted {accepted() - before} of {n} connections")
    time.sleep(0.1)
for s in conns:
    s.close()
PY
	fail "the flood's connections were not all accepted"
# The probe right after the flood, and a legitimate publish.
plugin_pub dev-b dev-b devices/dev-a/commands/reboot '{"command":"reboot"}' >/dev/null 2>&1 || true
plugin_expect_event acl_denied dev-b not_granted
expect_ok "dev-a publishes during the flood" plugin_pub dev-a dev-a devices/dev-a/telemetry '{"seq":1}'
wait_for 10 grep -q '^devices/dev-a/telemetry {"seq":1}' "$T/svc.out" ||
	fail "dev-a's telemetry was not delivered"
# The broker has seen every connection close once the summary counts them all.
summed() {
	local n
	n=$(plugin_events events_suppressed | jq -r '.detail' |
		sed -n 's/.*auth_refused=\([0-9]*\).*/\1/p' | paste -sd+ | bc)
	[ "${n:-0}" -gt 0 ] && [ $((${n:-0} + $(handshakes))) -ge "$FLOOD" ]
}
wait_for 20 summed || fail "no events_suppressed summary accounts for the flood: $(plugin_events events_suppressed)"
n=$(handshakes)
[ "$n" -lt "$FLOOD" ] || fail "the flood was not cut: $n events"
echo "ok - $n of $FLOOD handshake failures written, the rest counted in events_suppressed"
pass "a handshake flood does not suppress acl_denied"
