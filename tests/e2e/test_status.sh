#!/usr/bin/env bash
# test_status.sh: `moat status` and `moat up` tell the truth about what moat up supervises.
#   - nothing running: exit 3, text and --json say so for the broker and moatd;
#   - moatd not found (a moat alone in its directory, or $MOAT_MOATD naming nothing): moat up
#     fails with one line and starts nothing;
#   - all up: exit 0, --json healthy with both endpoints;
#   - the broker down (hung: SIGSTOP): exit 1, text and --json name it;
#   - moatd hung, and moatd not running (the supervisor cannot bring it back): exit 1;
#   - moatd dying while moat up starts: moat up fails with moatd's last word, nothing left.
# moatd runs through a wrapper that execs the real one unless $T/moatd.off exists, so the
# test can hold it down while the supervisor keeps trying.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
command -v jq >/dev/null || skip "jq not installed (scripts/bootstrap installs it)"
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"
broker_deploy
moat identity add backend-service --role service >/dev/null

# status_is RC [--json]: moat status exits RC; sets $out.
status_is() {
	local want=$1
	shift
	run_captured moat status "$@"
	[ "$run_rc" = "$want" ] || fail "status $*: exit $run_rc, expected $want: $out $errout"
}
# jq_true FILTER: the last --json output satisfies FILTER.
jq_true() { jq -e "$1" >/dev/null <<<"$out" || fail "status --json: not $1: $out"; }
nothing_left() {
	[ -z "$(pgrep -f "mosquitto -c $D/broker/mosquitto.conf" || true)" ] || fail "mosquitto left running"
	[ ! -s "$D/run/moatd.pid" ] || fail "moatd left running: $(cat "$D/run/moatd.pid")"
}

status_is 3
assert_contains "$out" "broker: not running"
assert_contains "$out" "moatd: not running"
status_is 3 --json
jq_true '.running == false and .healthy == false and .moatd.running == false and .moatd.pid == 0'
jq_true ".moatd.port == $SERVER_PORT and .port == $BROKER_PORT"
pass "nothing running: exit 3, both reported"

# moatd not found: moat up refuses before it starts anything.
mkdir "$T/alone"
cp "$MOAT_BUILD/moat" "$T/alone/moat"
expect_fail "moat up without moatd beside it" env -u MOAT_MOATD "$T/alone/moat" up --timeout "$(deadline 30s)"
[ "$(wc -l <<<"$errout")" = 1 ] || fail "more than one line: $errout"
assert_contains "$errout" "moatd not found: $T/alone/moatd: No such file or directory"
expect_fail "moat up with \$MOAT_MOATD naming nothing" env MOAT_MOATD="$T/none" moat up --timeout "$(deadline 30s)"
[ "$(wc -l <<<"$errout")" = 1 ] || fail "more than one line: $errout"
assert_contains "$errout" "moatd not found: \$MOAT_MOATD=$T/none"
status_is 3
nothing_left
pass "no moatd: moat up fails with one line and starts nothing"

cat >"$T/moatd-wrap" <<EOF
#!/bin/sh
if [ -e "$T/moatd.off" ]; then
	# as moatd says why it stops: the last line of its --log
	while [ \$# -gt 1 ] && [ "\$1" != --log ]; do shift; done
	echo "moatd-wrap: held down by the test" >>"\$2"
	exit 1
fi
exec "$MOAT_BUILD/moatd" "\$@"
EOF
chmod 755 "$T/moatd-wrap"
export MOAT_MOATD="$T/moatd-wrap"

# moatd dying while moat up starts: moat up fails, names moatd's last word, stops the rest.
touch "$T/moatd.off"
expect_fail "moat up with a moatd that exits" moat up --timeout "$(deadline 30s)"
[ "$(wc -l <<<"$errout")" = 1 ] || fail "more than one line: $errout"
assert_contains "$errout" "moatd exited 1 while starting: moatd-wrap: held down by the test"
assert_not_contains "$errout" "mosquitto:"
status_is 3
nothing_left
rm -f "$T/moatd.off"
pass "moatd dying at start fails moat up"

expect_ok "up" moat up --timeout "$(deadline 30s)"
assert_contains "$out" "moatd up on 127.0.0.1:$SERVER_PORT (pid "
status_is 0
assert_contains "$out" "moatd: running (pid $(cat "$D/run/moatd.pid")), accepting verified TLS connections on 127.0.0.1:$SERVER_PORT"
status_is 0 --json
jq_true '.running and .healthy and .accepting_tls and .mosquitto_pid > 0 and .crl.state == "fresh"'
jq_true ".moatd.running and .moatd.accepting_tls and .moatd.pid == $(cat "$D/run/moatd.pid")"
jq_true '(.moatd | has("probe_error")) | not'
pass "all up: exit 0, healthy"

# The broker hung: still a process, no longer accepting.
mpid=$(cat "$D/run/mosquitto.pid")
kill -STOP "$mpid"
on_exit "kill -CONT $mpid"
status_is 1
assert_contains "$out" "tls: DOWN: not accepting on 127.0.0.1:$BROKER_PORT"
status_is 1 --json
jq_true '.running and (.healthy | not) and (.accepting_tls | not) and (.probe_error | length > 0)'
jq_true '.moatd.accepting_tls'
kill -CONT "$mpid"
wait_for 20 moat status >/dev/null || fail "status not back to 0 once the broker runs again"
pass "broker down: exit 1, named"

# moatd hung.
dpid=$(cat "$D/run/moatd.pid")
kill -STOP "$dpid"
on_exit "kill -CONT $dpid"
status_is 1
assert_contains "$out" "moatd: DOWN: running (pid $dpid) but not accepting on 127.0.0.1:$SERVER_PORT"
status_is 1 --json
jq_true '.accepting_tls and (.healthy | not) and .moatd.running and (.moatd.accepting_tls | not)'
jq_true '.moatd.probe_error | length > 0'
kill -CONT "$dpid"
wait_for 20 moat status >/dev/null || fail "status not back to 0 once moatd runs again"
pass "moatd hung: exit 1, named"

# moatd not running: the supervisor restarts it, the wrapper keeps it down.
touch "$T/moatd.off"
kill -TERM "$dpid"
moatd_gone() { [ ! -s "$D/run/moatd.pid" ]; }
wait_for 20 moatd_gone || fail "moatd still running"
status_is 1
assert_contains "$out" "moatd: DOWN: not running"
status_is 1 --json
jq_true '.accepting_tls and (.healthy | not) and (.moatd.running | not) and .moatd.pid == 0'
rm -f "$T/moatd.off"
# the supervisor's back-off grew while moatd was held down (1 s doubling)
wait_for 60 moat status >/dev/null || fail "status not back to 0 once moatd is restarted"
pass "moatd down: exit 1, named"

expect_ok "down" moat down --timeout "$(deadline 20s)"
status_is 3
nothing_left
broker_check_logs
