#!/usr/bin/env bash
# test_broker_probe.sh: the readiness probes of `moat up` and `moat status` present a client
# identity of the deployment, so they leave no false auth_refused/tls_handshake_failed
# event in the plugin's security log; the negative check waits for a positive signal (a
# deliberate anonymous handshake, whose event must appear, and after which the earlier
# probes' events would have been written). A deployment with no usable service or
# operator identity still comes up: the probe goes anonymous and says so.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"

e2e_init
moat device add dev-a >/dev/null
moat identity add svc-1 --role service >/dev/null
on_exit "moat --dir '$D' down --timeout $(deadline 20s)"
EV="$D/log/security-events.jsonl"

# refusals: the auth_refused events of the security log, one per line
refusals() { grep '"kind":"auth_refused"' "$EV" 2>/dev/null || true; }

expect_ok "up" moat up --timeout "$(deadline 30s)"
grep -q 'event=ready .*probe_as=svc-1' "$D/log/supervisor.log" ||
	fail "the readiness probe did not go as svc-1: $(grep event=ready "$D/log/supervisor.log")"
for i in 1 2 3; do
	expect_ok "status $i" moat status
	assert_contains "$out" "tls: accepting verified TLS connections"
	assert_contains "$out" "probe: as svc-1"
done
expect_ok "status --json" moat status --json
assert_contains "$out" '"accepting_tls":true'
assert_contains "$out" '"probe_identity":"svc-1"'

# The positive signal: a device's connect, then one anonymous handshake, both recorded.
broker_pub dev-a dev-a devices/dev-a/telemetry '{"device_id":"dev-a","n":1}'
# stdin stays open until the refusal is recorded, so the client does not hang up before
# the broker has refused the handshake (a connection the client closes first leaves no
# event): s_client ends when the broker closes it.
# A handshake that already fails while Mosquitto accepts the connection (all its data there,
# as on a loaded machine) never reaches the plugin: then Mosquitto's own log line
# ("Client connection from ... failed") is the signal, and the plugin records nothing.
refused_seen() {
	grep -q '"tls_handshake_failed"' "$EV" ||
		grep -q "Client connection from 127.0.0.1 failed" "$D/log/mosquitto.log"
}
{ wait_for 20 refused_seen || true; } |
	timeout "$(deadline 20)" openssl s_client -connect "127.0.0.1:$BROKER_PORT" \
		-CAfile "$D/pki/ca.crt" >/dev/null 2>&1 || true
wait_for 20 refused_seen ||
	fail "the anonymous handshake was not recorded: $(tail -3 "$EV")"
grep -q '"kind":"connected".*"dev-a"' "$EV" || fail "dev-a's connect not recorded: $(cat "$EV")"
anonymous=$(grep -c '"tls_handshake_failed"' "$EV" || true)
[ "$(refusals | wc -l)" = "$anonymous" ] ||
	fail "probes left refusals in the security log: $(refusals)"
pass "moat up and four moat status probes: no auth_refused event (one deliberate anonymous handshake: one event)"

# Without a usable identity (the only service revoked), up still works and says why the
# broker records a failed handshake per probe.
expect_ok "down" moat down --timeout "$(deadline 20s)"
expect_ok "revoke svc-1" moat identity revoke svc-1
: >"$D/log/supervisor.log"
expect_ok "up without a probe identity" moat up --timeout "$(deadline 30s)"
grep -q 'event=probe_without_identity' "$D/log/supervisor.log" ||
	fail "no probe_without_identity line: $(cat "$D/log/supervisor.log")"
expect_ok "status without a probe identity" moat status
assert_contains "$out" "tls: accepting verified TLS connections"
assert_contains "$out" "probe: without a client identity"
expect_ok "status --json without a probe identity" moat status --json
assert_contains "$out" '"probe_identity":null'
# ... which is what the first half would have seen without an identity: the check bites
more_refusals() { [ "$(refusals | grep -c tls_handshake_failed)" -ge 2 ]; }
wait_for 20 more_refusals || fail "anonymous probes left no events: $(refusals)"
pass "no usable identity: the probe goes anonymous and says so"
expect_ok "down" moat down --timeout "$(deadline 20s)"
