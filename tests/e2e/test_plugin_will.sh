#!/usr/bin/env bash
# test_plugin_will.sh: last wills meet every rule a publish meets (issue #20, class 1).
# Mosquitto 2.0 sends a will without the plugin's MESSAGE hook; the plugin checks the will's
# payload in the write ACL check that precedes it. A device sets a will on its own status
# or telemetry topic that carries another device's device_id, a non-JSON or oversized
# payload, or a forged status; it then drops off the network (killed: the will is sent);
# a subscribed service never receives any of them, each is a payload_rejected event saying
# "last will", and a valid will (the positive control) is received and retained. A device
# may also clear its own retained status with an empty retained payload.
source "$MOAT_SRC/tests/e2e/lib.sh"
source "$MOAT_SRC/tests/e2e/lib_broker.sh"

plugin_start_ab "limits device msgs_per_s=10 bytes_per_s=1000000 burst=20 max_payload=256
flapping connects=0 window_s=60 ban_s=60"
plugin_sub_bg svc svc-1 "$T/svc.out" 'devices/+/status' 'devices/+/telemetry'

WILLS=0 # dev-a's connections so far, each one subscribes once
subscribed_more() {
	[ "$(grep -cF -- " dev-a 1 devices/dev-a/commands/x" "$PB/log/mosquitto.log")" -gt "$1" ]
}
big=$(printf '{"device_id":"dev-a","pad":"%0300d"}' 0)
# will_then_die TOPIC PAYLOAD [RETAIN=1]: dev-a connects with that will, then is killed.
will_then_die() {
	local topic=$1 payload=$2 retain=${3:-1} before pid args=()
	[ "$retain" = 1 ] && args+=(--will-retain)
	before=$(plugin_events connected dev-a | wc -l)
	# shellcheck disable=SC2046
	e2e_bg mosquitto_sub $(plugin_client_args dev-a) -V mqttv5 -q 1 -t devices/dev-a/commands/x \
		--will-topic "$topic" --will-payload "$payload" --will-qos 1 "${args[@]}" \
		>/dev/null 2>&1
	pid=$!
	wait_for 10 plugin_more_events connected dev-a "" "$before" ||
		fail "dev-a did not connect"
	wait_for 10 subscribed_more "$WILLS" || fail "dev-a did not subscribe"
	WILLS=$((WILLS + 1))
	{ kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true
}
# refused_will REASON TOPIC PAYLOAD [RETAIN]: the will is refused with REASON.
refused_will() {
	local reason=$1 before
	shift
	before=$(plugin_events payload_rejected dev-a "$reason" | wc -l)
	will_then_die "$@"
	wait_for 10 plugin_more_events payload_rejected dev-a "$reason" "$before" ||
		fail "no payload_rejected $reason event for dev-a's will on $1"
	plugin_events payload_rejected dev-a "$reason" | tail -1 | qgrep -F '"detail":"last will: ' ||
		fail "the $reason event does not say it was a last will"
	pass "dev-a's will on $1 refused: $reason"
}

refused_will device_id_mismatch devices/dev-a/status '{"device_id":"dev-b","status":"offline"}'
refused_will device_id_mismatch devices/dev-a/telemetry '{"device_id":"dev-b","seq":1}' 0
refused_will not_json devices/dev-a/telemetry 'not json' 0
refused_will not_json devices/dev-a/status 'offline'
refused_will too_large devices/dev-a/telemetry "$big" 0
refused_will bad_status devices/dev-a/status '{"device_id":"dev-a","status":"hacked"}'
refused_will bad_status devices/dev-a/status '{"device_id":"dev-a"}'
refused_will empty devices/dev-a/status '' 0

# Positive control: a valid will is delivered, and retained. The service's subscription
# delivers in order, so receiving it means none of the refused ones was on its way.
will_then_die devices/dev-a/status '{"device_id":"dev-a","status":"offline"}'
wait_for 10 grep -qF 'devices/dev-a/status {"device_id":"dev-a","status":"offline"}' "$T/svc.out" ||
	fail "the valid will was not delivered: $(cat "$T/svc.out")"
[ "$(grep -c '^devices/dev-a/' "$T/svc.out")" = 1 ] ||
	fail "refused wills reached the service: $(cat "$T/svc.out")"
pass "only the valid will reached the service"
# A new subscriber (svc-1 again, once the first has left) reads the retained status.
kill "$PLUGIN_SUB_PID" 2>/dev/null || true
wait_for 10 plugin_more_events disconnected svc-1 "" 0 || fail "svc-1 did not leave"
# shellcheck disable=SC2046
got=$(timeout "$(deadline 10)" mosquitto_sub $(plugin_client_args svc svc-1) -V mqttv5 -q 1 \
	-t devices/dev-a/status -C 1 -v 2>/dev/null)
[ "$got" = 'devices/dev-a/status {"device_id":"dev-a","status":"offline"}' ] ||
	fail "the retained status is not the valid will: $got"
pass "the retained status is the valid will"

# A device clears its own retained status: an empty retained payload is accepted (PUBACK
# success), and afterwards a new subscriber gets dev-b's retained status but none of dev-a's.
expect_ok "dev-b publishes a retained status" \
	plugin_pub dev-b dev-b devices/dev-b/status '{"device_id":"dev-b","status":"online"}' -r
expect_ok "dev-a clears its retained status" plugin_pub dev-a dev-a devices/dev-a/status '' -r
# (mosquitto_pub exits 0 whatever the PUBACK says: the events and the subscriber tell.)
plugin_pub dev-a dev-a devices/dev-a/status '' >/dev/null 2>&1 || true
wait_for 10 plugin_more_events payload_rejected dev-a empty 1 ||
	fail "an empty status without retain was not refused"
plugin_pub dev-a dev-a devices/dev-b/status '' -r >/dev/null 2>&1 || true
plugin_expect_event acl_denied dev-a not_granted
# shellcheck disable=SC2046
got=$(timeout "$(deadline 10)" mosquitto_sub $(plugin_client_args svc svc-1) -V mqttv5 -q 1 \
	-t devices/dev-a/status -t devices/dev-b/status -C 1 -v 2>/dev/null)
[ "$got" = 'devices/dev-b/status {"device_id":"dev-b","status":"online"}' ] ||
	fail "expected only dev-b's retained status first, got: $got"
pass "a device clears its own retained status, and only its own"
