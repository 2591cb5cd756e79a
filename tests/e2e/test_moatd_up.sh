#!/usr/bin/env bash
# test_moatd_up.sh: `moat up` runs moatd beside the broker under one supervisor: moatd
# answers on [server] port with the deployment's PKI, logs to log/moatd.log, ingests
# update events through the broker as backend-service, is restarted when it dies, and
# `moat down` stops it with everything else. The deployment is made under umask 077, as on
# a hardened host: moatd (its own account) must still read what it needs.
umask 077
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_moatd.sh"
broker_require
command -v curl >/dev/null || skip "curl not installed"
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"
broker_deploy
moat identity add backend-service --role service >/dev/null

# secrets in the operator's environment: moatd may need the PIN, Mosquitto gets none of them
export MOAT_PKCS11_PIN=e2e-pin-unused MOAT_FW_PASSPHRASE=e2e-passphrase-unused
expect_ok "up" moat up --timeout "$(deadline 30s)"
unset MOAT_PKCS11_PIN MOAT_FW_PASSPHRASE
wait_for 20 test -s "$D/run/moatd.pid" || fail "moatd not started: $(tail -5 "$D/log/supervisor.log")"
dpid=$(cat "$D/run/moatd.pid")
mpid=$(cat "$D/run/mosquitto.pid") || fail "no run/mosquitto.pid"
tr '\0' '\n' <"/proc/$mpid/environ" >"$T/mosquitto.env" || fail "cannot read Mosquitto's environment"
tr '\0' '\n' <"/proc/$dpid/environ" >"$T/moatd.env" || fail "cannot read moatd's environment"
grep -qx "MOAT_PKCS11_PIN=e2e-pin-unused" "$T/moatd.env" || fail "moatd lost MOAT_PKCS11_PIN"
qgrep -E "^(MOAT_PKCS11_PIN|MOAT_FW_PASSPHRASE)=" "$T/mosquitto.env" &&
	fail "Mosquitto started with a secret: $(grep -E '^MOAT_' "$T/mosquitto.env")"
pass "Mosquitto starts without the operator's secrets; moatd keeps the PIN"
wait_for 20 grep -q "event=listening addr=127.0.0.1 port=$SERVER_PORT" "$D/log/moatd.log" ||
	fail "moatd not listening: $(tail -5 "$D/log/moatd.log")"
# moatd's log is its account's, so SIGHUP (the supervisor's, after a CRL or policy change;
# logrotate's) reopens it after moatd gave up root
user=$(awk '/^Uid:/ { print $2 }' "/proc/$dpid/status")
case "$(stat -c %u:%a "$D/log/moatd.log")" in
"$user:640" | "$user:600") ;; # 0640, less what this test's umask 077 takes
*) fail "log/moatd.log is $(stat -c %U:%a "$D/log/moatd.log"), not moatd's (uid $user) 0640" ;;
esac
kill -HUP "$dpid"
wait_for 10 grep -q "event=log_reopened" "$D/log/moatd.log" ||
	fail "SIGHUP did not reopen the log: $(tail -3 "$D/log/moatd.log")"
qgrep "event=log_reopen_failed" "$D/log/moatd.log" && fail "$(grep log_reopen_failed "$D/log/moatd.log")"
pass "log/moatd.log is moatd's account's: SIGHUP reopens it"
expect_status 204 "moatd under moat up: no release yet" dev-a "$(url /api/firmware/version)"
# The access line is written when MHD completes the request, which may be after curl has the
# response: wait for it.
wait_for 10 grep -q "id=dev-a method=GET path=/api/firmware/version status=204" "$D/log/moatd.log" ||
	fail "request not in log/moatd.log"

wait_for 30 grep -q "event=ingest_subscribed as=backend-service" "$D/log/moatd.log" ||
	fail "ingest not subscribed: $(grep ingest "$D/log/moatd.log" | tail -3)"
broker_pub dev-a dev-a devices/dev-a/diagnostics '{"event":"update","stage":"checked","running":"1.0.0"}'
wait_for 20 grep -q "event=update_event id=dev-a stage=checked" "$D/log/moatd.log" ||
	fail "event through the plugin broker not recorded"
expect_ok "fw status" moat fw status dev-a
assert_contains "$out" "checked"
# The plugin's ACL: a device cannot report for another one.
broker_pub dev-b dev-b devices/dev-a/diagnostics '{"event":"update","stage":"refused","running":"6.6.6","reason":"forged"}' || true
broker_pub dev-a dev-a devices/dev-a/diagnostics '{"event":"update","stage":"verified","version":"1.0.1"}'
wait_for 20 grep -q "event=update_event id=dev-a stage=verified" "$D/log/moatd.log" ||
	fail "marker event not recorded"
assert_not_contains "$(cat "$D/log/moatd.log")" "forged"
pass "a device cannot report update events for another"

kill -KILL "$dpid"
wait_for 30 sh -c "test -s '$D/run/moatd.pid' && [ \"\$(cat '$D/run/moatd.pid')\" != $dpid ]" ||
	fail "moatd not restarted after it died"
wait_for 20 sh -c "[ \$(grep -c 'event=listening' '$D/log/moatd.log') -ge 2 ]" || fail "restarted moatd not listening"
expect_status 204 "moatd answers again after a restart" dev-a "$(url /api/firmware/version)"
dpid=$(cat "$D/run/moatd.pid")

expect_ok "down" moat down --timeout "$(deadline 20s)"
wait_for 20 sh -c "! kill -0 $dpid 2>/dev/null" || fail "moatd $dpid still running after moat down"
[ ! -e "$D/run/moatd.pid" ] || fail "stale run/moatd.pid"
pass "moat down stops moatd"
if grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$D/log/moatd.log"; then
	fail "sanitizer report in log/moatd.log"
fi
