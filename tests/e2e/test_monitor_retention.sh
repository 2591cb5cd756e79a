#!/usr/bin/env bash
# test_monitor_retention.sh: telemetry retention and downsampling end to end, with an
# injected clock (MOAT_INGEST_CLOCK_OFFSET, honoured only by -DMOAT_FAILPOINTS=ON builds):
# a device's messages are recorded raw; with moatd's clock 2 h ahead they are folded into
# minute and hour aggregates (raw past telemetry_retention); 2 days ahead the minute rows
# are pruned (past minute_retention) and the hour rows kept; 31 days ahead those go too.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
command -v jq >/dev/null || skip "jq not installed"

e2e_init
chmod 0755 "$T"
moat device add dev-r --type sensor >/dev/null
moat identity add backend-service --role service >/dev/null
cat >>"$D/moat.conf" <<EOF

[monitor]
telemetry_retention = 1h
minute_retention = 1d
hour_retention = 30d
EOF
expect_ok "config check" moat config check

kept() { moat --json device show dev-r | jq -c .telemetry_kept; }
up() { # [OFFSET]: moat up with moatd's ingest clock OFFSET ahead
	if [ -n "${1:-}" ]; then export MOAT_INGEST_CLOCK_OFFSET=$1; fi
	moat_up_test
	unset MOAT_INGEST_CLOCK_OFFSET
	wait_for 30 grep -q "event=ingest_subscribed" "$D/log/moatd.log" ||
		fail "moatd did not subscribe: $(tail -3 "$D/log/moatd.log")"
	if [ -n "${1:-}" ]; then
		grep -q "event=failpoint name=MOAT_INGEST_CLOCK_OFFSET" "$D/log/moatd.log" ||
			fail "moatd did not see MOAT_INGEST_CLOCK_OFFSET (a build without MOAT_FAILPOINTS?)"
	fi
}
down() {
	moat down --timeout "$(deadline 20s)" >/dev/null
	: >"$D/log/moatd.log"
}

up
ts=$(date +%s%3N)
for i in 1 2 3 4 5; do
	printf '{"device_id":"dev-r","device_type":"sensor","timestamp":%s,"telemetry":{"t":%s}}\n' "$ts" "$i"
done >"$T/r.lines"
# shellcheck disable=SC2046
timeout "$(deadline 20)" mosquitto_pub $(broker_args dev-r) -q 1 -t devices/dev-r/telemetry \
	-l <"$T/r.lines" || fail "dev-r could not publish"
raw5() { [ "$(kept)" = '{"raw":5,"minute":0,"hour":0}' ]; }
wait_for 20 raw5 || fail "5 raw messages not recorded: $(kept)"
pass "recorded raw: $(kept)"
down

# 2 h later: past telemetry_retention, the raw messages become aggregates
up 2h
folded() { grep -q "event=retention folded=5 " "$D/log/moatd.log"; }
wait_for 20 folded || fail "no retention pass folded the 5 messages: $(grep event=retention "$D/log/moatd.log")"
k=$(kept)
echo "$k" | jq -e '.raw == 0 and .minute >= 1 and .hour >= 1' >/dev/null ||
	fail "after 2h: raw not folded into minute and hour aggregates: $k"
moat --json device show dev-r | jq -e '.telemetry_messages == 5' >/dev/null ||
	fail "the message count changed"
pass "2h later, folded: $k"
down

# 2 days later: minute rows past minute_retention (1d) pruned, hour rows kept
up 2d
pruned() { grep -q "event=retention folded=0 minutes_dropped=[1-9]" "$D/log/moatd.log"; }
wait_for 20 pruned || fail "no retention pass dropped minutes: $(grep event=retention "$D/log/moatd.log")"
k2=$(kept)
echo "$k2" | jq -e --argjson k "$k" '.raw == 0 and .minute == 0 and .hour == $k.hour' >/dev/null ||
	fail "after 2d: expected minute rows pruned and hour rows kept: $k2 (was $k)"
pass "2 days later, minute aggregates pruned, hour aggregates kept: $k2"
down

# 31 days later: hour rows past hour_retention (30d) pruned too
up 31d
gone() { grep -q "event=retention .*hours_dropped=[1-9]" "$D/log/moatd.log"; }
wait_for 20 gone || fail "no retention pass dropped hours: $(grep event=retention "$D/log/moatd.log")"
[ "$(kept)" = '{"raw":0,"minute":0,"hour":0}' ] || fail "after 31d: $(kept)"
pass "31 days later, hour aggregates pruned too"
moat down --timeout "$(deadline 20s)" >/dev/null
