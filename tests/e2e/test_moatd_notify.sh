#!/usr/bin/env bash
# test_moatd_notify.sh: moatd tells a service manager where it stands (sd_notify, what
# systemd's Type=notify waits for): READY=1 only once its port accepts connections, and
# after it has dropped its privileges and locked itself (the seccomp filter must let the
# notification through: moatd would be killed otherwise); RELOADING=1 then READY=1 around
# a SIGHUP; STOPPING=1 on SIGTERM. The service manager's socket is the test's own
# (notify_listener.py), as $NOTIFY_SOCKET.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_moatd.sh"
command -v python3 >/dev/null || skip "python3 not installed"
e2e_init
moat identity add backend-service --role service >/dev/null

e2e_bg python3 "$(dirname "$0")/notify_listener.py" "$T/notify.sock" "$SERVER_PORT" "$T/notify.log"
wait_for 20 test -e "$T/notify.sock.bound" || fail "listener did not bind"
NOTIFY_SOCKET="$T/notify.sock" e2e_bg moatd --dir "$D" --port "$SERVER_PORT" --log "$T/moatd.log"
pid=${E2E_PIDS[${#E2E_PIDS[@]}-1]}
wait_for 30 grep -q '^READY=1' "$T/notify.log" ||
	fail "no READY=1: $(cat "$T/notify.log" 2>/dev/null); moatd: $(tail -3 "$T/moatd.log")"
[ "$(head -1 "$T/notify.log")" = "READY=1 STATUS=serving accepting=yes" ] ||
	fail "first notification: $(head -1 "$T/notify.log") (READY=1 before the port accepted?)"
grep -q "event=sandbox profile=moatd" "$T/moatd.log" || fail "READY=1 before the sandbox lock"
kill -0 "$pid" || fail "moatd died after notifying: $(tail -3 "$T/moatd.log")"
pass "READY=1 once the port accepts, from the locked moatd"

kill -HUP "$pid"
two_more() { [ "$(wc -l <"$T/notify.log")" -ge 3 ]; }
wait_for 20 two_more || fail "no reload notifications: $(cat "$T/notify.log")"
[ "$(sed -n 2p "$T/notify.log")" = "RELOADING=1" ] || fail "second: $(sed -n 2p "$T/notify.log")"
assert_contains "$(sed -n 3p "$T/notify.log")" "READY=1"
assert_contains "$(sed -n 3p "$T/notify.log")" "accepting=yes"
pass "SIGHUP: RELOADING=1, then READY=1"

kill -TERM "$pid"
wait "$pid" || fail "moatd exited $? on SIGTERM: $(tail -3 "$T/moatd.log")"
grep -qx "STOPPING=1" "$T/notify.log" || fail "no STOPPING=1: $(cat "$T/notify.log")"
pass "SIGTERM: STOPPING=1, exit 0"
if grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/moatd.log"; then
	fail "sanitizer report in moatd.log"
fi
