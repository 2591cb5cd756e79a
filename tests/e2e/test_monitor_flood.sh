#!/usr/bin/env bash
# test_monitor_flood.sh: ingest under load, through `moat up` (real Mosquitto, plugin, moatd).
# 1. A flood of refused publishes (1500 ACL denials in one burst; the plugin turns into
#    events what its budgets allow) while a device publishes 300 telemetry messages: every
#    one of them is recorded, and ingest never falls behind.
# 2. Backpressure is said, never silent: with the registry writer slowed (the test-build
#    failpoint MOAT_INGEST_WRITER_DELAY) and [monitor] ingest_queue at its minimum, 3000
#    messages in a burst overflow the queue; ingest_behind events say how many were
#    dropped, and recorded + dropped is exactly what was published.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
command -v jq >/dev/null || skip "jq not installed"

e2e_init
chmod 0755 "$T"
moat device add dev-a --type sensor >/dev/null
moat device add dev-b --type sensor >/dev/null
moat identity add backend-service --role service >/dev/null
# the flood is one connection publishing as fast as it can: no rate limit for it here
cat >>"$D/moat.conf" <<EOF

[policy]
device_msgs_per_s = 100000
device_burst = 100000
device_bytes_per_s = 100000000

[monitor]
ingest_queue = 1000
ingest_batch = 100
ingest_lag_alert = $(deadline 1s)
EOF

tele_lines() { # DEVICE N
	local i ts
	ts=$(date +%s%3N)
	for i in $(seq 1 "$2"); do
		printf '{"device_id":"%s","device_type":"sensor","timestamp":%s,"telemetry":{"t":%s}}\n' "$1" "$ts" "$i"
	done
}
pub_lines() { # DEVICE TOPIC FILE
	# shellcheck disable=SC2046
	timeout "$(deadline 60)" mosquitto_pub $(broker_args "$1") -V mqttv5 -q 1 -t "$2" -l <"$3"
}
kept() { moat --json device show "$1" | jq -r .telemetry_messages; }
# moatd.log is appended across restarts: the new moatd's subscription is one line more than
# before (a line of the last run would let the test publish before ingest subscribed, and its
# session starts clean).
subscriptions() { grep -c "event=ingest_subscribed" "$D/log/moatd.log" 2>/dev/null || true; }
up() {
	local before
	before=$(subscriptions)
	moat_up_test
	subscribed_again() { [ "$(subscriptions)" -gt "${before:-0}" ]; }
	wait_for 30 subscribed_again ||
		fail "moatd did not subscribe: $(tail -3 "$D/log/moatd.log")"
}

# ---- 1. a flood of events does not stall telemetry
up
tele_lines dev-a 300 >"$T/a.lines"
tele_lines dev-a 1500 >"$T/flood.lines" # dev-b writes dev-a's topic: every one denied
start=$SECONDS
pub_lines dev-b devices/dev-a/telemetry "$T/flood.lines" >/dev/null 2>&1 &
FLOOD=$!
pub_lines dev-a devices/dev-a/telemetry "$T/a.lines" || fail "dev-a could not publish"
wait "$FLOOD" || true
all_kept() { [ "$(kept dev-a)" = 300 ]; }
wait_for 20 all_kept || fail "dev-a: $(kept dev-a) of 300 recorded"
denied=$(moat --json events --kind acl_denied --device dev-b | wc -l)
[ "$denied" -gt 0 ] || fail "the flood made no events"
[ -z "$(moat --json events --kind ingest_behind)" ] ||
	fail "ingest fell behind: $(moat events --kind ingest_behind)"
pass "300 telemetry messages recorded during a flood ($denied ACL events recorded; the plugin budgets the rest) in $((SECONDS - start))s, never behind"
moat down --timeout "$(deadline 20s)" >/dev/null

# ---- 2. backpressure: a slow writer, a small queue, a burst
export MOAT_INGEST_WRITER_DELAY=300ms
up
unset MOAT_INGEST_WRITER_DELAY
grep -q "event=failpoint name=MOAT_INGEST_WRITER_DELAY" "$D/log/moatd.log" ||
	fail "moatd did not see the failpoint (a build without MOAT_FAILPOINTS?)"
before=$(kept dev-b)
tele_lines dev-b 3000 >"$T/b.lines"
pub_lines dev-b devices/dev-b/telemetry "$T/b.lines" || fail "dev-b could not publish"
dropped_total() {
	moat --json events --kind ingest_behind | jq -r '.evidence' |
		sed -n 's/.*dropped_total=\([0-9]*\).*/\1/p' | sort -n | tail -1
}
# Every message is recorded or counted as dropped. The drops count every kind of message
# (dev-b's connected and disconnected events too), so the sum may pass 3000 by those few.
accounted() {
	local d n
	d=$(dropped_total)
	n=$(($(kept dev-b) - before))
	[ -n "$d" ] && [ $((n + d)) -ge 3000 ] && [ $((n + d)) -le 3005 ] && [ "$n" -le 3000 ]
}
wait_for 60 accounted ||
	fail "recorded $(($(kept dev-b) - before)) + dropped $(dropped_total) is not 3000: $(moat events --kind ingest_behind)"
d=$(dropped_total)
[ "$d" -gt 0 ] || fail "nothing dropped: the queue did not overflow"
moat --json events --kind ingest_behind | jq_any '.severity == "high" and .source == "moatd"' ||
	fail "no high-severity ingest_behind event"
pass "backpressure said: $d dropped and reported, $((3000 - d)) recorded, none lost silently"
moat down --timeout "$(deadline 20s)" >/dev/null
if grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$D/log/moatd.log"; then
	fail "sanitizer report in moatd.log"
fi
