#!/usr/bin/env bash
# test_plugin_limits.sh: moat_broker.so's MESSAGE limits in a real Mosquitto 2.0: the
# payload cap, JSON objects whose device_id is the sender on telemetry/status/responses,
# the per-identity message rate, and the flapping ban. Each drop is a security event, and
# what is within the limits is delivered: the limits drop what they should and nothing else.
source "$MOAT_SRC/tests/e2e/lib.sh"
source "$MOAT_SRC/tests/e2e/lib_broker.sh"

plugin_require
plugin_pki
for d in dev-a dev-b dev-f; do plugin_cert "$d" "$d"; done
plugin_cert svc svc-1 client service
plugin_policy "moat-policy 1
limits device msgs_per_s=1 bytes_per_s=1000000 burst=20 max_payload=256
flapping connects=8 window_s=600 ban_s=600
identity dev-a device active
identity dev-b device active
identity dev-f device active
identity svc-1 service active
end identities=4
"
plugin_conf
plugin_start
plugin_sub_bg svc svc-1 "$T/svc.out" 'devices/+/telemetry' 'devices/+/status' \
	'devices/+/command_responses' 'devices/+/diagnostics' 'moat/events/#'

# json_of_size N SEQ: a telemetry object from dev-a of exactly N bytes.
json_of_size() {
	local head="{\"device_id\":\"dev-a\",\"seq\":$2,\"pad\":\"" tail='"}'
	local pad=$(($1 - ${#head} - ${#tail}))
	printf '%s%*s%s' "$head" "$pad" '' "$tail" | tr ' ' x
}
delivered() { grep -c "^$1 " "$T/svc.out" || true; }

# --- payload cap and JSON checks: one session, one message per line -----------------------
ok256=$(json_of_size 256 1)
big257=$(json_of_size 257 2)
[ ${#ok256} = 256 ] && [ ${#big257} = 257 ] || fail "test payloads have the wrong size"
printf '%s\n' "$ok256" "$big257" 'not json' '{"device_id":"dev-b","seq":3}' '[1,2]' \
	'{"device_id":"dev-a","device_id":"dev-b"}' '{"device_id":7}' '{"seq":4} trailing' \
	'{"seq":5}' >"$T/lines"
# shellcheck disable=SC2046
timeout "$(deadline 30)" mosquitto_pub $(plugin_client_args dev-a) -V mqttv5 -q 1 -t devices/dev-a/telemetry \
	-l <"$T/lines" >/dev/null 2>&1 || true
plugin_expect_event payload_rejected dev-a too_large
plugin_expect_event payload_rejected dev-a not_json
plugin_expect_event payload_rejected dev-a device_id_mismatch
plugin_expect_event payload_rejected dev-a not_object
wait_for 10 grep -q '^devices/dev-a/telemetry {"seq":5}' "$T/svc.out" ||
	fail "the last valid message was not delivered"
[ "$(delivered devices/dev-a/telemetry)" = 2 ] ||
	fail "expected exactly 2 of dev-a's messages delivered: $(cat "$T/svc.out")"
grep -qF "devices/dev-a/telemetry $ok256" "$T/svc.out" || fail "the 256-byte message was dropped"
[ "$(plugin_events payload_rejected dev-a | wc -l)" = 7 ] ||
	fail "expected 7 payload_rejected events: $(plugin_events payload_rejected dev-a)"
pass "payload cap and JSON checks drop exactly the bad messages"

# Status and command responses are checked too; other device topics are not JSON-bound.
expect_ok "dev-a publishes a valid status" \
	plugin_pub dev-a dev-a devices/dev-a/status '{"device_id":"dev-a","status":"online"}'
plugin_pub dev-a dev-a devices/dev-a/status 'online' >/dev/null 2>&1 || true
plugin_pub dev-a dev-a devices/dev-a/command_responses '{"device_id":"dev-b"}' >/dev/null 2>&1 || true
expect_ok "dev-a publishes plain-text diagnostics" \
	plugin_pub dev-a dev-a devices/dev-a/diagnostics 'uptime 12s'
wait_for 10 grep -q '^devices/dev-a/diagnostics uptime 12s' "$T/svc.out" ||
	fail "diagnostics were not delivered"
[ "$(delivered devices/dev-a/status)" = 1 ] || fail "expected only the valid status delivered"
[ "$(delivered devices/dev-a/command_responses)" = 0 ] || fail "a forged response was delivered"
[ "$(plugin_events payload_rejected dev-a | wc -l)" = 9 ] || fail "expected 9 payload_rejected events"
pass "status and command_responses are checked"

# --- message rate: dev-b sends 60 messages at once, its bucket holds 20 -------------------
# the plugin's buckets run on CLOCK_MONOTONIC: so do these figures (the wall clock may be
# stepped between two readings: a step of 3.5 s once made a correct limiter fail here)
now_ms() { python3 -c 'import time; print(int(time.monotonic() * 1000))'; }
# flood FIRST: dev-b sends 60 messages (seq FIRST..FIRST+59) in one session, as fast as the
# client goes; mosquitto_pub -q 1 returns when the broker has handled each of them.
flood() {
	seq "$1" $(($1 + 59)) | sed 's/.*/{"device_id":"dev-b","seq":&}/' >"$T/flood"
	# shellcheck disable=SC2046
	timeout "$(deadline 60)" mosquitto_pub $(plugin_client_args dev-b) -V mqttv5 -q 1 \
		-t devices/dev-b/telemetry -l <"$T/flood" >/dev/null 2>&1 || true
}
# marker SEQ: a message of dev-a that the service receives after everything the broker
# handled before it, so counting once it arrived is exact.
marker() {
	expect_ok "dev-a publishes marker $1" plugin_pub dev-a dev-a devices/dev-a/telemetry "{\"seq\":$1}"
	wait_for 10 grep -q "^devices/dev-a/telemetry {\"seq\":$1}" "$T/svc.out" ||
		fail "dev-a's marker $1 was not delivered (dev-a limited by dev-b's flood?)"
}
delivered_in() { # FIRST LAST: how many of dev-b's messages with seq in FIRST..LAST arrived
	grep -oE '^devices/dev-b/telemetry \{"device_id":"dev-b","seq":[0-9]+\}$' "$T/svc.out" |
		grep -oE '[0-9]+\}$' | tr -d '}' | awk -v a="$1" -v b="$2" '$1 >= a && $1 <= b' | wc -l
}
t0=$(now_ms)
flood 1
t1=$(now_ms)
plugin_expect_event rate_limited dev-b rate_limited
wait_for 10 grep -q '^devices/dev-b/telemetry {"device_id":"dev-b","seq":20}' "$T/svc.out" ||
	fail "dev-b's burst was not delivered"
for i in $(seq 1 20); do
	grep -q "^devices/dev-b/telemetry {\"device_id\":\"dev-b\",\"seq\":$i}\$" "$T/svc.out" ||
		fail "message $i of dev-b's burst was dropped"
done
# Limits are per identity: dev-a's bucket is its own (and its message marks the end).
marker 6
n=$(delivered devices/dev-b/telemetry)
[ "$n" -lt 60 ] || fail "the rate limit dropped nothing"
# The burst, to within one message: 20, plus what 1 msg/s refilled while the flood lasted.
most=$((20 + (t1 - t0 + 999) / 1000))
[ "$n" -le "$most" ] ||
	fail "dev-b: $n of 60 delivered in $((t1 - t0)) ms: more than the burst of 20 (at most $most)"
echo "ok - dev-b: $n of 60 delivered in $((t1 - t0)) ms (burst 20, at most $most)"

# The rate, to within one message: after a pause, a second flood gets what 1 msg/s refilled
# since the first one (between the end of the first and the start of the second at least,
# between the start of the first and the end of the second at most).
sleep 4
t2=$(now_ms)
flood 101
t3=$(now_ms)
marker 8
n2=$(delivered_in 101 160)
least=$(((t2 - t1) / 1000 - 1))
most=$(((t3 - t0) / 1000 + 1))
[ "$n2" -ge "$least" ] && [ "$n2" -le "$most" ] ||
	fail "dev-b: $n2 of the second 60 delivered $((t2 - t1)) ms after the first flood: not 1 msg/s ($least..$most)"
echo "ok - dev-b: $n2 of the second 60 delivered $((t2 - t1)) ms after the first (1 msg/s: $least..$most)"
pass "the rate limit drops only over-rate messages of the flooding identity"

# --- flapping: more than 8 connects in 600 s bans dev-f ------------------------------------
for i in $(seq 1 8); do
	expect_ok "dev-f connect $i" plugin_pub dev-f dev-f devices/dev-f/telemetry "{\"seq\":$i}"
done
expect_fail "dev-f's 9th connect" plugin_pub dev-f dev-f devices/dev-f/telemetry '{"seq":9}'
plugin_expect_event flapping_banned dev-f flapping
expect_fail "dev-f while banned" plugin_pub dev-f dev-f devices/dev-f/telemetry '{"seq":10}'
plugin_expect_event auth_refused dev-f banned
expect_ok "dev-a is not banned" plugin_pub dev-a dev-a devices/dev-a/telemetry '{"seq":7}'

# The same refusals reached the service on moat/events/<kind>, with the identity.
for ke in payload_rejected:dev-a rate_limited:dev-b flapping_banned:dev-f auth_refused:dev-f; do
	wait_for 10 grep -q "^moat/events/${ke%%:*} .*\"identity\":\"${ke#*:}\"" "$T/svc.out" ||
		fail "the service did not receive moat/events/${ke%%:*} for ${ke#*:}"
done
pass "plugin limits"
