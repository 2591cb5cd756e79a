#!/usr/bin/env bash
# test_broker_up.sh: `moat up/status/down` with the plugin, against the real Mosquitto and
# its stock clients: telemetry reaches a service, a command reaches only its device, and
# every TLS-level refusal (no certificate, another CA, self-signed, expired, revoked, TLS
# 1.0/1.1, non-AEAD 1.2 suites, plaintext MQTT). The supervisor restarts a broker that
# dies, and `moat down` leaves nothing running.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"
broker_deploy

# status: exit 3 when not running (as systemctl), 0 when running.
status_rc() { set +e; moat status >"$T/status.out" 2>&1; echo $?; set -e; }
[ "$(status_rc)" = 3 ] || fail "status before up: $(cat "$T/status.out")"
assert_contains "$(cat "$T/status.out")" "not running"
expect_ok "up" moat up --timeout "$(deadline 30s)"
assert_contains "$out" "broker up on 127.0.0.1:$BROKER_PORT (plugin"
expect_fail "up twice" moat up
assert_contains "$errout" "already running"
expect_ok "status" moat status --json
assert_contains "$out" '"running":true'
assert_contains "$out" '"accepting_tls":true'
assert_contains "$out" '"mode":"plugin"'
cp "$D/broker/mosquitto.conf" "$T/conf.running"
expect_fail "switching a running broker to the ACL file" moat broker config --no-plugin
assert_contains "$errout" "moat down"
cmp -s "$D/broker/mosquitto.conf" "$T/conf.running" || fail "refused switch rewrote mosquitto.conf"
expect_ok "broker config while running" moat broker config
assert_contains "$out" "reloaded"
mpid=$(cat "$D/run/mosquitto.pid")
spid=$(cat "$D/run/supervise.pid")
kill -0 "$mpid" || fail "no mosquitto at pid $mpid"
[ "$(stat -c %U /proc/"$mpid")" = "$( [ "$(id -u)" = 0 ] && echo mosquitto || id -un)" ] ||
	fail "mosquitto runs as $(stat -c %U /proc/"$mpid")"

# Telemetry: device -> service.
broker_sub_bg svc-1 svc-1 "$T/svc.out" 'devices/+/telemetry'
broker_pub dev-a dev-a devices/dev-a/telemetry '{"device_id":"dev-a","telemetry":{"temperature":21.5}}'
broker_wait_line "$T/svc.out" 'devices/dev-a/telemetry {"device_id":"dev-a"'
pass "telemetry reached the service"

# A command reaches its device only.
broker_sub_bg dev-a dev-a "$T/a.out" 'devices/dev-a/commands/+'
a_sub=$BROKER_SUB_PID
broker_sub_bg dev-b dev-b "$T/b.out" 'devices/dev-b/commands/+'
# commands come from the operator: svc-1 keeps its one session (client id = CN)
broker_pub op-1 op-1 devices/dev-a/commands/reboot '{"id":"c1","command":"reboot"}'
broker_pub op-1 op-1 devices/dev-b/commands/reboot '{"id":"marker","command":"reboot"}'
broker_wait_line "$T/a.out" '"id":"c1"'
broker_wait_line "$T/b.out" '"id":"marker"'
if grep -q '"id":"c1"' "$T/b.out"; then fail "dev-b received dev-a's command"; fi
pass "a command reached only its device"

broker_refusals "$T/svc.out"

# Revocation: moat revokes, moat_broker_sync reloads the broker; new connections refused.
broker_pub dev-b dev-b devices/dev-b/telemetry '{"device_id":"dev-b","n":1}'
expect_ok "revoke dev-b" moat device revoke dev-b
refused_now() { ! broker_pub dev-b dev-b devices/dev-b/telemetry revoked >/dev/null 2>&1; }
wait_for 15 refused_now || fail "revoked dev-b can still connect"
echo "ok - refused: revoked certificate (new connection)"

# The supervisor restarts a broker that dies; status reports the new one. dev-a's subscriber
# goes first: it would reconnect as dev-a and take over the session of the publish below.
stop_pids "$a_sub"
kill -9 "$mpid"
new_broker() {
	local p
	p=$(cat "$D/run/mosquitto.pid" 2>/dev/null) && [ -n "$p" ] && [ "$p" != "$mpid" ] &&
		moat status --json | qgrep -F '"accepting_tls":true'
}
wait_for 30 new_broker || fail "the supervisor did not restart mosquitto"
[ "$(cat "$D/run/supervise.pid")" = "$spid" ] || fail "supervisor changed"
broker_pub dev-a dev-a devices/dev-a/telemetry '{"device_id":"dev-a","after":"restart"}'
pass "the supervisor restarted the broker"

# SIGHUP (logrotate after renaming): the supervisor writes to a new supervisor.log
mv "$D/log/supervisor.log" "$D/log/supervisor.log.1"
install -m 0640 /dev/null "$D/log/supervisor.log"
kill -HUP "$spid"
wait_for 10 grep -q "event=reload" "$D/log/supervisor.log" ||
	fail "the supervisor did not reopen its log: $(tail -3 "$D/log/supervisor.log.1")"
pass "SIGHUP: the supervisor reopens its log"

expect_ok "down" moat down
assert_contains "$out" "broker stopped"
# (a zombie counts as gone: some sandboxes' pid 1 never reaps re-parented daemons)
case "$(ps -o stat= -p "$spid" 2>/dev/null || true)" in ""|Z*) ;; *) fail "supervisor $spid still alive" ;; esac
mpid=$(pgrep -f "mosquitto -c $D/broker/mosquitto.conf" || true)
[ -z "$mpid" ] || fail "mosquitto still running: $mpid"
[ ! -e "$D/run/mosquitto.pid" ] || fail "stale run/mosquitto.pid"
[ "$(status_rc)" = 3 ] || fail "status after down: $(cat "$T/status.out")"
expect_ok "down when stopped" moat down
assert_contains "$out" "not running"

# --foreground: stays attached, says when it is ready, Ctrl-C (SIGINT) stops everything.
moat up --foreground --no-plugin >"$T/fg.out" 2>"$T/fg.err" &
fg=$!
E2E_PIDS+=("$fg")
wait_for 30 grep -q "broker ready on 127.0.0.1:$BROKER_PORT" "$T/fg.out" ||
	fail "foreground broker not ready: $(cat "$T/fg.out" "$T/fg.err")"
[ "$(status_rc)" = 0 ] || fail "status while in the foreground: $(cat "$T/status.out")"
kill -INT "$fg"
wait "$fg" || fail "foreground moat up exited $?"
[ "$(status_rc)" = 3 ] || fail "still running after SIGINT"
[ -z "$(pgrep -f "mosquitto -c $D/broker/mosquitto.conf" || true)" ] || fail "mosquitto left behind"
pass "foreground up stops on SIGINT"
broker_check_logs
