#!/usr/bin/env bash
# test_plugin_subs.sh: subscriptions are bounded (issue #20, class 2): per SUBSCRIBE packet
# and per client (the broker's own count, kept across reconnects of a persistent session),
# from the policy's "subscriptions" line. Counted on the SUBACK codes the client gets: one
# SUBSCRIBE of 12 filters is granted exactly 8; a persistent session is granted exactly 20
# over any number of SUBSCRIBEs, then nothing more; each refusal is a subscription_limited
# event; a service within its bounds keeps subscribing and receiving.
source "$MOAT_SRC/tests/e2e/lib.sh"
source "$MOAT_SRC/tests/e2e/lib_broker.sh"

plugin_start_ab "subscriptions device per_client=20 per_packet=8
flapping connects=0 window_s=60 ban_s=60"

# suback NAME FROM TO [mosquitto_sub args]: one SUBSCRIBE of devices/NAME/commands/cFROM..cTO;
# prints the SUBACK codes, one per line.
suback() {
	local name=$1 from=$2 to=$3 args=() i
	shift 3
	for i in $(seq "$from" "$to"); do args+=(-t "devices/$name/commands/c$i"); done
	# shellcheck disable=SC2046
	timeout "$(deadline 20)" mosquitto_sub $(plugin_client_args "$name") -V mqttv5 -q 1 -d -E \
		"${args[@]}" "$@" 2>/dev/null | sed -n 's/^Subscribed (mid: [0-9]*): //p' | tr -d ' ' |
		tr ',' '\n'
}
granted() { grep -c '^1$' || true; }

# --- per packet: 12 filters in one SUBSCRIBE, 8 granted ---------------------------------
codes=$(suback dev-a 1 12)
[ "$(echo "$codes" | wc -l)" = 12 ] || fail "expected 12 SUBACK codes, got: $codes"
[ "$(echo "$codes" | granted)" = 8 ] || fail "expected 8 granted of 12: $codes"
[ "$(echo "$codes" | grep -c '^135$')" = 4 ] || fail "expected 4 refused (0x87) of 12: $codes"
[ "$(echo "$codes" | head -8 | granted)" = 8 ] || fail "the first 8 were not the granted ones"
plugin_expect_event subscription_limited dev-a too_many_in_subscribe
pass "one SUBSCRIBE adds at most per_packet=8 subscriptions"

# --- per client: a persistent session, SUBSCRIBEs of 8 until refused (bounded loop) -------
total=0
for round in $(seq 1 5); do
	codes=$(suback dev-b $((round * 8 - 7)) $((round * 8)) -c -x 600)
	[ "$(echo "$codes" | wc -l)" = 8 ] || fail "round $round: expected 8 SUBACK codes: $codes"
	n=$(echo "$codes" | granted)
	echo "round $round: $n of 8 granted"
	total=$((total + n))
done
[ "$total" = 20 ] || fail "expected exactly 20 subscriptions granted to dev-b's session, got $total"
plugin_expect_event subscription_limited dev-b too_many_subscriptions
pass "a session holds at most per_client=20 subscriptions across SUBSCRIBEs"
# The session is full: a new filter in a new SUBSCRIBE is refused as well.
[ "$(suback dev-b 100 100 -c -x 600 | granted)" = 0 ] || fail "a 21st subscription was granted"

# --- a service within its bounds subscribes and receives ----------------------------------
plugin_sub_bg svc svc-1 "$T/svc.out" 'devices/+/telemetry' 'moat/events/#'
expect_ok "dev-a publishes" plugin_pub dev-a dev-a devices/dev-a/telemetry '{"seq":1}'
wait_for 10 grep -q '^devices/dev-a/telemetry {"seq":1}' "$T/svc.out" ||
	fail "the service did not receive dev-a's telemetry"
pass "subscription bounds"
