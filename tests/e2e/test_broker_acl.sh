#!/usr/bin/env bash
# test_broker_acl.sh: the fallback without the plugin (`moat up --no-plugin`): plain
# Mosquitto with the generated ACL file, use_identity_as_username and
# use_username_as_clientid. What it can enforce: telemetry reaches a service, a command
# only its device, a client id that is not the certificate's CN takes nobody's place, a
# device subscribing to `#` gets nothing of other devices, revoked certificates are refused
# once moat_broker_sync reloaded the broker, and the TLS-level refusals.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
broker_deploy
# One connection per identity at a time (the client id is the CN here): dev-a listens,
# dev-c talks, dev-b subscribes to '#', dev-d plays the impostor; svc-1 listens.
moat device add dev-c >/dev/null
moat device add dev-d >/dev/null
moat identity add svc-2 --role service >/dev/null # svc-1 listens, svc-2 commands
# The fallback must not need the plugin at all.
export MOAT_BROKER_PLUGIN=/nonexistent/moat_broker.so

expect_fail "up without a plugin" moat up
assert_contains "$errout" "--no-plugin"
expect_ok "up --no-plugin" moat up --no-plugin --timeout "$(deadline 30s)"
assert_contains "$out" "ACL file, no plugin"
expect_ok "status" moat status --json
assert_contains "$out" '"mode":"acl-file"'
assert_contains "$out" '"accepting_tls":true'
LOG="$D/log/mosquitto.log"

broker_sub_bg svc-1 svc-1 "$T/svc.out" 'devices/+/telemetry'
broker_sub_bg dev-a dev-a "$T/a.out" 'devices/dev-a/commands/+'
broker_sub_bg dev-b dev-b "$T/b.out" '#'

broker_pub dev-c dev-c devices/dev-c/telemetry '{"device_id":"dev-c","n":1}'
broker_wait_line "$T/svc.out" 'devices/dev-c/telemetry {"device_id":"dev-c","n":1}'
pass "telemetry reached the service"

broker_pub svc-2 svc-2 devices/dev-a/commands/reboot '{"id":"c1","command":"reboot"}'
broker_wait_line "$T/a.out" '"id":"c1"'
# A device cannot command another device, nor write another device's telemetry.
broker_pub dev-c dev-c devices/dev-a/commands/reboot '{"id":"forged"}' || true
broker_pub dev-c dev-c devices/dev-a/telemetry '{"device_id":"dev-a","forged":true}' || true

# Client id != CN: dev-d asks for dev-a's client id. use_username_as_clientid gives it
# its own (dev-d), so dev-a is not disconnected and nothing is published as dev-a.
grep -q "as dev-d (" "$LOG" && fail "dev-d connected before the test"
broker_pub dev-d dev-a devices/dev-a/telemetry '{"device_id":"dev-a","spoof":true}' || true
if grep -q "Client dev-a already connected" "$LOG"; then fail "a client with dev-a's id disconnected dev-a"; fi
grep -q "as dev-d (" "$LOG" || fail "the impostor did not get its own client id"
pass "client id != CN: took nobody's place"

# Markers sent last arrive; what was refused before them did not.
broker_pub svc-2 svc-2 devices/dev-b/commands/marker '{"id":"marker-b"}'
broker_pub dev-c dev-c devices/dev-c/telemetry '{"device_id":"dev-c","marker":true}'
broker_pub svc-2 svc-2 devices/dev-a/commands/marker '{"id":"marker-a"}'
broker_wait_line "$T/b.out" '"id":"marker-b"'
broker_wait_line "$T/svc.out" '"marker":true'
broker_wait_line "$T/a.out" '"id":"marker-a"'
if grep -qE 'dev-a|dev-c' "$T/b.out"; then fail "dev-b subscribed to # got other devices' messages: $(cat "$T/b.out")"; fi
pass "a device subscribed to # got nothing of other devices"
if grep -qE 'forged|spoof' "$T/svc.out" "$T/a.out"; then
	fail "a forged message was delivered: $(cat "$T/svc.out" "$T/a.out")"
fi
pass "forged commands and telemetry were dropped"

broker_refusals "$T/svc.out"

# Revocation without the plugin: the CRL reload on SIGHUP is all there is.
expect_ok "revoke dev-b" moat device revoke dev-b
refused_now() { ! broker_pub dev-b dev-b devices/dev-b/telemetry '{"device_id":"dev-b"}' >/dev/null 2>&1; }
wait_for 15 refused_now || fail "revoked dev-b can still connect"
echo "ok - refused: revoked certificate (new connection)"
grep -q "event=reload" "$D/log/supervisor.log" || fail "the supervisor forwarded no reload"

expect_ok "down" moat down
broker_check_logs
