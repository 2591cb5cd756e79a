#!/usr/bin/env bash
# test_plugin_sessions.sh: sessions of services and operators through moat_broker.so in a
# real Mosquitto. A service or operator may hold several sessions at once with client ids
# "<identity>:<suffix>" that never kick each other; a device keeps exactly one (a suffix is
# refused); the part before ':' must be the certificate's identity. Services may share a
# subscription on what they may read (the broker splits the messages between members);
# an operator's share is refused. Flapping limits are per role (an operator reconnecting
# often is not banned), and an unban line in the policy lifts a device's ban.
source "$MOAT_SRC/tests/e2e/lib.sh"
source "$MOAT_SRC/tests/e2e/lib_broker.sh"

plugin_require
plugin_pki
plugin_cert dev-a dev-a
plugin_cert dev-f dev-f
plugin_cert svc svc-1 client service
plugin_cert op op-1 client operator
POLICY_HEAD="moat-policy 1
operator_write_commands yes
flapping connects=3 window_s=600 ban_s=600
identity dev-a device active
identity dev-f device active
identity op-1 operator active
identity svc-1 service active
"
plugin_policy "${POLICY_HEAD}end identities=4
"
plugin_conf
plugin_start

# sub_bg NAME CLIENT_ID OUTFILE TOPIC: sub_bg for a session with a suffix (the
# connected event names the identity, not the client id: wait for the subscription).
sub_bg() {
	local name=$1 id=$2 out=$3 topic=$4
	: >"$out"
	# shellcheck disable=SC2046
	e2e_bg stdbuf -oL mosquitto_sub $(plugin_client_args "$name" "$id") -V mqttv5 -q 1 -v \
		-t "$topic" >"$out" 2>"$out.err"
	PLUGIN_SUB_PID=$!
	wait_for 10 grep -qF -- " $id 1 $topic" "$PB/log/mosquitto.log" ||
		fail "subscriber $id did not subscribe to $topic: $(cat "$out.err")"
}

# --- several sessions of one identity -------------------------------------------------
sub_bg svc svc-1:w1 "$T/w1.out" 'devices/+/telemetry'
W1=$PLUGIN_SUB_PID
sub_bg svc svc-1:w2 "$T/w2.out" 'devices/+/telemetry'
W2=$PLUGIN_SUB_PID
sub_bg op op-1:watch-1 "$T/o1.out" 'devices/+/telemetry'
O1=$PLUGIN_SUB_PID
sub_bg op op-1:watch-2 "$T/o2.out" 'devices/+/telemetry'
O2=$PLUGIN_SUB_PID
expect_ok "op-1:cmd-3 sends a command" \
	plugin_pub op op-1:cmd-3 devices/dev-a/commands/reboot '{"command":"reboot","id":"c1"}'
expect_ok "dev-a publishes" plugin_pub dev-a dev-a devices/dev-a/telemetry '{"device_id":"dev-a","seq":0}'
for f in w1 w2 o1 o2; do
	wait_for 10 grep -q '^devices/dev-a/telemetry {"device_id":"dev-a","seq":0}' "$T/$f.out" ||
		fail "session $f missed dev-a's telemetry"
done
for p in "$W1" "$W2" "$O1" "$O2"; do kill -0 "$p" || fail "a session was kicked"; done
[ -z "$(plugin_events disconnected svc-1)$(plugin_events disconnected op-1 | grep -v cmd-3)" ] ||
	fail "a session of svc-1 or op-1 was disconnected"
pass "two sessions of a service and three of an operator at once, none kicked"

# --- refusals of the client-id rule ---------------------------------------------------
expect_fail "a device with a suffix" plugin_pub dev-a dev-a:x devices/dev-a/telemetry '{"device_id":"dev-a"}'
plugin_expect_event auth_refused dev-a client_id_suffix_refused
expect_fail "svc-1 as op-1:x" plugin_pub svc op-1:x devices/dev-a/commands/reboot '{}'
plugin_expect_event auth_refused svc-1 client_id_mismatch
expect_fail "op-1 with a bad suffix" plugin_pub op 'op-1:Bad!' devices/dev-a/commands/reboot '{}'
plugin_expect_event auth_refused op-1 bad_client_id_suffix
for p in "$W1" "$W2" "$O1" "$O2"; do kill -0 "$p" || fail "a refused client kicked a session"; done
pass "the refused client ids took no session"

# --- shared subscriptions ---------------------------------------------------------------
sub_bg svc svc-1:s1 "$T/s1.out" '$share/g/devices/+/telemetry'
sub_bg svc svc-1:s2 "$T/s2.out" '$share/g/devices/+/telemetry'
# one connection (devices may connect only 3 times here), ten messages
for i in $(seq 1 10); do echo "{\"device_id\":\"dev-a\",\"seq\":$i}"; done |
	# shellcheck disable=SC2046
	timeout "$(deadline 20)" mosquitto_pub $(plugin_client_args dev-a dev-a) -V mqttv5 -q 1 \
		-t devices/dev-a/telemetry -l || fail "dev-a's telemetry"
total() { [ "$(cat "$T/s1.out" "$T/s2.out" | grep -c telemetry)" -ge 10 ]; }
wait_for 10 total || fail "the shared subscription lost messages"
n1=$(grep -c '^devices/dev-a/telemetry' "$T/s1.out" || true)
n2=$(grep -c '^devices/dev-a/telemetry' "$T/s2.out" || true)
[ "$n1" -ge 1 ] && [ "$n2" -ge 1 ] && [ $((n1 + n2)) -eq 10 ] ||
	fail "the share did not split 10 messages between its two members: $n1 + $n2"
pass "a service's \$share/g/devices/+/telemetry split 10 messages: $n1 + $n2"
# shellcheck disable=SC2046
timeout "$(deadline 10)" mosquitto_sub $(plugin_client_args op op-1:s) -V mqttv5 -q 1 \
	-t '$share/g/devices/+/telemetry' -C 1 -W 3 >"$T/os.out" 2>&1 || true
plugin_expect_event acl_denied op-1 dollar_topic
grep -q 'subscribe \$share/g/devices/+/telemetry' "$PLUGIN_EVENTS" || fail "no event for the operator's share"
pass "an operator's \$share is refused"

# --- flapping per role ----------------------------------------------------------------
for i in $(seq 1 11); do
	expect_ok "op-1 connect $i" plugin_pub op "op-1:cmd-$i" devices/dev-a/commands/reboot '{"command":"reboot","id":"x"}'
done
[ -z "$(plugin_events flapping_banned op-1)" ] || fail "the operator was banned for flapping"
pass "11 quick operator connects: no ban (devices' limit is 3)"
for i in 1 2 3; do
	expect_ok "dev-f connect $i" plugin_pub dev-f dev-f devices/dev-f/telemetry '{"device_id":"dev-f"}'
done
expect_fail "dev-f's 4th connect" plugin_pub dev-f dev-f devices/dev-f/telemetry '{"device_id":"dev-f"}'
plugin_expect_event flapping_banned dev-f flapping
expect_fail "dev-f while banned" plugin_pub dev-f dev-f devices/dev-f/telemetry '{"device_id":"dev-f"}'
plugin_expect_event auth_refused dev-f banned
plugin_events auth_refused dev-f banned | qgrep 'connecting too often until 20' ||
	fail "the ban's refusal does not say until when: $(plugin_events auth_refused dev-f banned)"
plugin_policy "${POLICY_HEAD}unban dev-f $(date +%s)
end identities=4
"
wait_for 10 grep -q 'flapping ban of dev-f lifted' "$PB/log/mosquitto.log" ||
	fail "the unban line was not applied"
expect_ok "dev-f after the unban" plugin_pub dev-f dev-f devices/dev-f/telemetry '{"device_id":"dev-f"}'
pass "an unban line lifts a device's ban"
