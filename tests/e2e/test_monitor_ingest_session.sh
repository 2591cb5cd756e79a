#!/usr/bin/env bash
# test_monitor_ingest_session.sh: moatd's ingest keeps its MQTT session when its
# connection is lost ([monitor] ingest_session, default 2m: MQTT v5 clean start 0 with that
# session expiry), so what a device publishes at QoS 1 while a moatd that died (SIGKILL) is
# away is queued by the broker and recorded once moatd is back, each message once; a moatd
# stopped on purpose (SIGTERM) ends its session (other moatds of a shared subscription
# then get everything), so the next start is a new session; with `ingest_session = 0` the
# session is clean and nothing is kept; a bad value is refused by moat config check.
# Real Mosquitto with the moat plugin, started from `moat broker config`'s mosquitto.conf
# without the supervisor (which would restart moatd at once), and moatd run directly, so
# the test decides how long moatd stays down.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
command -v jq >/dev/null || skip "jq not installed"
command -v sqlite3 >/dev/null || skip "sqlite3 not installed"

broker_deploy
moat identity add backend-service --role service >/dev/null
# dev-a connects once per batch of messages, some ten times within a minute: above the
# default flap_connects, and a batch of messages at once must not meet the burst limit
# rate_factor 1: dev-a says its interval is 60 s, so more than 2 telemetry messages within
# rate_window (60 s) raise the rate anomaly; a backlog replayed at once must not
printf '\n[policy]\nflap_connects = 0\ndevice_burst = 1000\n\n[monitor]\nrate_factor = 1\n' >>"$D/moat.conf"
cp "$D/moat.conf" "$T/moat.conf.orig"

# ---- configuration: a bad ingest_session refused, naming the key ----
# conf_check_bad VALUE: moat config check refuses [monitor] ingest_session = VALUE, with
# one line naming the key
conf_check_bad() {
	cp "$T/moat.conf.orig" "$D/moat.conf"
	printf '\n[monitor]\ningest_session = %s\n' "$1" >>"$D/moat.conf"
	expect_fail "config check: ingest_session = $1" moat config check
	assert_contains "$errout" "ingest_session"
	[ "$(printf '%s\n' "$errout" | wc -l)" = 1 ] || fail "not one line: $errout"
}
conf_check_bad soon
bad=soon
# beyond the range's upper end, once docs/CONFIGURATION.md states it as 1 day
# shellcheck disable=SC2016 # the backquotes are the table's, not a command
if grep -E '^\| `ingest_session` \|' "$MOAT_SRC/docs/CONFIGURATION.md" | grep -q '1 day'; then
	conf_check_bad 2d
	bad="soon and 2d"
fi
cp "$T/moat.conf.orig" "$D/moat.conf"
printf '\n[monitor]\ningest_session = 5m\n' >>"$D/moat.conf"
expect_ok "config check: ingest_session = 5m" moat config check
cp "$T/moat.conf.orig" "$D/moat.conf"
expect_ok "config check" moat config check
pass "moat config check: ingest_session = $bad refused naming the key, 5m accepted"

# ---- the broker alone: moat's mosquitto.conf, no supervisor ----
moat broker config >/dev/null
: >"$T/broker.out"
e2e_bg "${MOAT_MOSQUITTO:-/usr/sbin/mosquitto}" -c "$D/broker/mosquitto.conf" >>"$T/broker.out" 2>&1
BROKER_PID=$!
broker_ready() {
	grep -q "moat: plugin ready" "$D/log/mosquitto.log" &&
		grep -q "Opening ipv4 listen socket on port $BROKER_PORT" "$D/log/mosquitto.log"
}
wait_for 20 broker_ready || fail "the broker did not start: $(tail -5 "$D/log/mosquitto.log") $(cat "$T/broker.out")"

# ---- moatd, run directly on its port (the ingest's client id names it) ----
: >"$T/moatd.log"
moatd_up() { # SESSION: starts moatd, waits until its ingest subscribed with session=SESSION
	MOATD_MARK=$(log_lines "$T/moatd.log")
	e2e_bg moatd --dir "$D" --listen 127.0.0.1 --port "$SERVER_PORT" >>"$T/moatd.log" 2>&1
	MOATD_PID=$!
	wait_for 30 log_has_since "$T/moatd.log" "$MOATD_MARK" -E \
		"event=ingest_subscribed as=backend-service topic=[^ ]+ session=$1( |\$)" ||
		fail "moatd did not log session=$1: $(grep ingest_ "$T/moatd.log" | tail -3)"
}
EVENTS="$D/log/security-events.jsonl"
# ingest_gone_count: the ingest sessions' disconnections the plugin recorded so far
ingest_gone_count() {
	jq -c 'select(.kind == "disconnected" and .identity == "backend-service" and (.client_id | test(":ingest-")))' "$EVENTS" | wc -l
}
ingest_gone() { [ "$(ingest_gone_count)" -gt "$1" ]; } # N: more than N by now
moatd_stop() { # TERM|KILL: stops moatd, and waits until the broker saw its session go
	local sig=$1 gone rc=0
	gone=$(ingest_gone_count)
	kill "-$sig" "$MOATD_PID"
	wait "$MOATD_PID" 2>/dev/null || rc=$?
	if [ "$sig" = TERM ]; then
		[ "$rc" = 0 ] || fail "moatd exited with $rc on SIGTERM: $(tail -3 "$T/moatd.log")"
	else
		[ "$rc" = 137 ] || fail "moatd exited with $rc on SIGKILL"
	fi
	wait_for 15 ingest_gone "$gone" || fail "the broker did not see moatd's ingest go: $(tail -3 "$EVENTS")"
}

tele() { printf '{"device_id":"dev-a","device_type":"generic","timestamp":%s,"telemetry":{"t":%s}}\n' "$(date +%s)" "$1"; }
pub_lines() { # TOPIC: one connection of dev-a, a QoS 1 message per line of stdin
	# shellcheck disable=SC2046 # broker_args is words without spaces
	timeout "$(deadline 20)" mosquitto_pub $(broker_args dev-a) -V mqttv5 -q 1 -t "$1" -l ||
		fail "dev-a's publish on $1 failed"
}
pub_tele() { # K...: telemetry with t = each K, in one connection
	local k
	for k in "$@"; do tele "$k"; done | pub_lines devices/dev-a/telemetry
}
q() { sqlite3 "$D/registry.db" "$1"; }
rows_t() { q "SELECT count(*) FROM telemetry WHERE device = 'dev-a' AND instr(payload, '\"t\":$1}') > 0"; }
has_t() { [ "$(rows_t "$1")" -ge 1 ]; }
all_t() { local k; for k in "$@"; do has_t "$k" || return 1; done; }
# once K...: each telemetry message recorded exactly once
once() {
	local k n
	for k in "$@"; do
		n=$(rows_t "$k")
		[ "$n" = 1 ] || fail "telemetry t=$k recorded $n times (want 1)"
	done
}

# 1. a fresh deployment, ingest_session at its default: a new session
moatd_up new
echo '{"device_id":"dev-a","interval_s":60}' | pub_lines devices/dev-a/diagnostics
pub_tele 1
wait_for 20 has_t 1 || fail "telemetry t=1 not recorded: $(tail -3 "$T/moatd.log")"
once 1
pass "default ingest_session: the first connect is session=new, telemetry t=1 recorded"

# 2. a crash: what dev-a sends meanwhile waits in the broker for the same session, through
# a broker reload too (moat reloads it for CRL and policy changes: its plugin refuses the
# offline session's re-authentication, which must not cost the session)
moatd_stop KILL
pub_tele 2 3
mark=$(log_lines "$D/log/mosquitto.log")
kill -HUP "$BROKER_PID"
wait_for 10 log_has_since "$D/log/mosquitto.log" "$mark" -e "Reloading config" ||
	fail "the broker did not reload: $(tail -3 "$D/log/mosquitto.log")"
pub_tele 4 5 6
upd() { printf '{"event":"update","stage":"%s","version":"1.1.0","running":"%s","timestamp":%s}\n' "$1" "$2" "$(date +%s)"; }
{
	upd installed 1.0.0
	upd confirmed 1.1.0
} | pub_lines devices/dev-a/diagnostics
moatd_up resumed
wait_for 20 all_t 2 3 4 5 6 || fail "telemetry sent while moatd was dead not recorded: t=2..6 $(for k in 2 3 4 5 6; do printf '%s ' "$(rows_t "$k")"; done)"
updates() { q "SELECT stage || ' ' || version || ' ' || running FROM update_events WHERE device = 'dev-a' ORDER BY seq"; }
both_updates() { [ "$(updates | tr '\n' ',')" = "installed 1.1.0 1.0.0,confirmed 1.1.0 1.1.0," ]; }
wait_for 20 both_updates || fail "update events: $(updates | tr '\n' ',') (want installed, then confirmed of 1.1.0)"
once 1 2 3 4 5 6
rate_events() { q "SELECT count(*) FROM security_events WHERE kind = 'anomaly' AND rule = 'rate' AND identity = 'dev-a'"; }
[ "$(rate_events)" = 0 ] || fail "the replayed backlog raised the rate anomaly: $(rate_events)"
# one live message after it, in the same moatd (the rule's counts are per process): one in
# the window, not the backlog's five plus one. The anomaly an ingest rule raises is queued
# behind what was already waiting: a second message, sent once the first is recorded,
# comes after it, so once t=21 is recorded any anomaly t=20 raised is too. First a second
# with nothing sent: what arrives until the ingest's first quiet poll (half a second) counts
# as the backlog, and t=20 must be live.
sleep 1
pub_tele 20
wait_for 20 has_t 20 || fail "the live t=20 not recorded"
pub_tele 21
wait_for 20 has_t 21 || fail "the live t=21 not recorded"
[ "$(rate_events)" = 0 ] || fail "the live messages after the backlog raised the rate anomaly: the backlog was counted"
pass "SIGKILL: moatd came back with session=resumed; t=2..6 and both update events sent meanwhile recorded, each once, the backlog not taken for a flood"

# 3. a stop on purpose ends the session: the next start is a new one, and what was sent
# while moatd was stopped was queued for nobody (the marker t=9 after it is recorded)
moatd_stop TERM
pub_tele 7 8
moatd_up new
pub_tele 9
wait_for 20 has_t 9 || fail "the marker t=9, sent with moatd up, not recorded"
# queued messages would come before the marker: had the session been kept, t=7 and t=8
# would be in the registry by now
if has_t 7 || has_t 8; then
	fail "SIGTERM kept the session: t=7 $(rows_t 7), t=8 $(rows_t 8) recorded"
fi
once 1 2 3 4 5 6 9 20 21
# this moatd's first live message (t=9): no flood
[ "$(rate_events)" = 0 ] || fail "the rate anomaly was raised: the replayed backlog was counted"

# one client id for every connect of the ingest: "backend-service:ingest-<host>-<port>"
ids=$(jq -r 'select(.kind == "connected" and .identity == "backend-service") | .client_id' "$EVENTS" | sort | uniq -c)
if [ "$(printf '%s\n' "$ids" | wc -l)" != 1 ] ||
	! [[ $ids =~ ^\ *3\ backend-service:ingest-[a-z0-9.-]+-$SERVER_PORT$ ]]; then
	fail "the ingest's client ids over three starts: $ids"
fi
pass "SIGTERM: the session ended, the next start is session=new and t=7, t=8 sent meanwhile are not recorded; one client id for the three starts"

# the rate rule is live with these settings: three messages sent now are a flood
pub_tele 50 51 52
rate_raised() { [ "$(rate_events)" -ge 1 ]; }
wait_for 20 rate_raised || fail "three live messages did not raise the rate anomaly (the check above proves nothing)"
pass "the same rule raises the rate anomaly for three messages sent live"

# 4. ingest_session = 0: a clean session, as before; what is sent while moatd is down is
# lost: first what waits in the session the broker kept from before (clean start drops
# it), then what was sent after a moatd with a clean session died (none was kept). Killed,
# not stopped: only then is a kept session certain to outlive the connection.
moatd_stop KILL
printf '\n[monitor]\ningest_session = 0\n' >>"$D/moat.conf"
pub_tele 100
moatd_up clean
moatd_stop KILL
pub_tele 101
moatd_up clean
pub_tele 102
wait_for 20 has_t 102 || fail "the marker t=102, sent with moatd up, not recorded"
# the broker sends a session's queued messages before new ones: had it kept one, t=100 or
# t=101 would be in the registry by now; a little longer for good measure
if wait_for 2 has_t 100 || wait_for 1 has_t 101; then
	fail "ingest_session = 0: telemetry sent while moatd was down recorded: t=100 $(rows_t 100), t=101 $(rows_t 101)"
fi
once 102
pass "ingest_session = 0: session=clean; what was sent while moatd was down is not recorded, the marker sent after is"

moatd_stop TERM
stop_pids "$BROKER_PID"
if grep -qE 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$T/moatd.log" "$T/broker.out"; then
	fail "sanitizer report: $(grep -hE -A5 'Sanitizer|runtime error:' "$T/moatd.log" "$T/broker.out" | head -20)"
fi
pass "no sanitizer report from moatd or the broker"
