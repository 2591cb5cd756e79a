#!/usr/bin/env bash
# test_plugin.sh: moat_broker.so in a real Mosquitto 2.0: identity binding (client id must
# be the certificate's CN, unknown identities refused), least-privilege ACL for devices,
# operators' commands only with operator_write_commands yes, and every refusal as a security event in the events file and on moat/events/<kind>.
source "$MOAT_SRC/tests/e2e/lib.sh"
source "$MOAT_SRC/tests/e2e/lib_broker.sh"

plugin_require
plugin_pki
plugin_cert dev-a dev-a
plugin_cert dev-b dev-b
plugin_cert svc svc-1 client service
plugin_cert op op-1 client operator
plugin_cert stranger stranger-1
policy_with() { # $1: operator_write_commands yes|no
	plugin_policy "moat-policy 1
operator_write_commands $1
flapping connects=0 window_s=60 ban_s=60
identity dev-a device active
identity dev-b device active
identity op-1 operator active
identity svc-1 service active
end identities=4
"
}
policy_with yes
plugin_conf
plugin_start

# A service watching telemetry and the security events, and device dev-a waiting for
# its commands.
plugin_sub_bg svc svc-1 "$T/svc.out" 'devices/+/telemetry' 'moat/events/#'
plugin_sub_bg dev-a dev-a "$T/dev-a.out" 'devices/dev-a/commands/#'
DEV_A_PID=$PLUGIN_SUB_PID

# --- identity binding -------------------------------------------------------------
expect_fail "dev-b's certificate with dev-a's client id" \
	plugin_pub dev-b dev-a devices/dev-a/telemetry '{"device_id":"dev-a"}'
plugin_expect_event auth_refused dev-b client_id_mismatch
expect_fail "a certificate whose identity is not in the policy" \
	plugin_pub stranger stranger-1 devices/stranger-1/telemetry '{}'
plugin_expect_event auth_refused stranger-1 unknown_identity
# The takeover attempt did not disconnect the real dev-a: it still gets its commands.
kill -0 "$DEV_A_PID" || fail "dev-a's subscriber died"
[ -z "$(plugin_events disconnected dev-a)" ] || fail "dev-a was disconnected by the takeover attempt"
# (An operator sends it: the service's one session is the subscriber above, since a client
# id is bound to its identity.)
expect_ok "an operator sends dev-a a command" \
	plugin_pub op op-1 devices/dev-a/commands/reboot '{"command":"reboot","id":"c1"}'
wait_for 10 grep -q 'devices/dev-a/commands/reboot {"command":"reboot","id":"c1"}' "$T/dev-a.out" ||
	fail "dev-a did not receive its command"
pass "dev-a kept its session and received its command"

# --- legitimate traffic -------------------------------------------------------------
expect_ok "dev-b publishes its own telemetry" \
	plugin_pub dev-b dev-b devices/dev-b/telemetry '{"device_id":"dev-b","seq":1}'
wait_for 10 grep -q 'devices/dev-b/telemetry {"device_id":"dev-b","seq":1}' "$T/svc.out" ||
	fail "the service did not receive dev-b's telemetry"
pass "the service received dev-b's telemetry"

# The username a client sends is ignored: the session is the certificate's identity.
plugin_pub dev-b dev-b devices/dev-a/telemetry '{"via":"username"}' -u dev-a -P x >/dev/null 2>&1 || true
wait_for 10 grep -qF '"identity":"dev-b","client_id":"dev-b","address":"127.0.0.1","reason":"not_granted","detail":"write devices/dev-a/telemetry"' \
	"$PB/log/events.jsonl" || fail "dev-b claiming username dev-a was not refused as dev-b"
echo "ok - refused: dev-b with username dev-a writes dev-a's telemetry"

# --- ACL --------------------------------------------------------------------------
# Subscriptions a device may not make: SUBACK refuses them, mosquitto_sub exits non-zero.
for filter in '#' 'devices/+/telemetry' 'devices/dev-a/telemetry' 'devices/dev-a/commands/#' \
	'moat/events/#' '$SYS/#'; do
	# shellcheck disable=SC2046
	out=$(timeout "$(deadline 20)" mosquitto_sub $(plugin_client_args dev-b) -V mqttv5 -t "$filter" -E 2>&1 || true)
	assert_contains "$out" "All subscription requests were denied"
	echo "ok - refused: dev-b subscribes to $filter"
	wait_for 10 grep -qF "\"detail\":\"subscribe $filter\"" "$PB/log/events.jsonl" ||
		fail "no acl_denied event for dev-b subscribing to $filter"
done
plugin_expect_event acl_denied dev-b
# The plugin writes at most 10 acl_denied events per identity a second (MP_EVENTS_PER_WINDOW:
# the events must not become a flood); the six above may have used this second's share.
sleep 1.1
# Publications a device may not make: the broker drops them (PUBACK 0x87 under MQTT 5).
for topic in devices/dev-a/telemetry devices/dev-a/commands/reboot devices/dev-b/commands/x \
	moat/events/auth_refused devices/dev-b/other; do
	plugin_pub dev-b dev-b "$topic" '{"device_id":"dev-b","forged":true}' >/dev/null 2>&1 || true
	wait_for 10 grep -qF "\"detail\":\"write $topic\"" "$PB/log/events.jsonl" ||
		fail "no acl_denied event for dev-b writing $topic"
	echo "ok - refused: dev-b writes $topic"
done
# None of it reached anyone: the only telemetry the service saw is dev-b's own, and
# dev-a got only the one command.
assert_not_contains "$(cat "$T/svc.out")" '"forged":true'
[ "$(grep -c 'devices/dev-a/commands/' "$T/dev-a.out")" = 1 ] ||
	fail "dev-a received a command it should not have: $(cat "$T/dev-a.out")"
pass "no denied message was delivered"

# --- events on moat/events/<kind> ----------------------------------------------------
for kind in auth_refused acl_denied connected; do
	wait_for 10 grep -q "^moat/events/$kind {" "$T/svc.out" ||
		fail "the service did not receive a moat/events/$kind message"
done
grep '^moat/events/auth_refused ' "$T/svc.out" | qgrep '"reason":"client_id_mismatch"' ||
	fail "moat/events/auth_refused lacks the client_id_mismatch refusal"
pass "security events published on moat/events/<kind>"

# --- a handshake with a certificate from another CA ----------------------------------
mkdir -p "$T/other"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
	-keyout "$T/other/key.pem" -out "$T/other/cert.pem" -subj "/CN=dev-a" 2>/dev/null
expect_fail "a certificate from another CA" \
	timeout "$(deadline 20)" mosquitto_pub -h 127.0.0.1 -p "$PLUGIN_PORT" --cafile "$PB/pki/ca.crt" \
	--cert "$T/other/cert.pem" --key "$T/other/key.pem" -i dev-a -t devices/dev-a/telemetry -m '{}'
plugin_expect_event auth_refused "" tls_handshake_failed
[ "$(plugin_events auth_refused "" tls_handshake_failed | jq -r .address | head -1)" = 127.0.0.1 ] ||
	fail "the handshake failure event lacks the address"

# Every event line is one JSON object with the documented fields.
jq -e 'has("time") and has("kind") and has("identity") and has("client_id") and has("address") and has("detail")' \
	"$PB/log/events.jsonl" >/dev/null || fail "an event lacks a field"

# --- SIGHUP reopens the events file: rotation by renaming loses nothing ---------------
mv "$PB/log/events.jsonl" "$PB/log/events.jsonl.1"
install -m 0640 -o "$(stat -c %u "$PB/log/events.jsonl.1")" /dev/null "$PB/log/events.jsonl"
kill -HUP "$PLUGIN_BROKER_PID"
wait_for 10 grep -q "moat: events file reopened" "$PB/log/mosquitto.log" ||
	fail "the plugin did not reopen its events file on SIGHUP"
expect_fail "a certificate from another CA, after the rotation" \
	timeout "$(deadline 20)" mosquitto_pub -h 127.0.0.1 -p "$PLUGIN_PORT" --cafile "$PB/pki/ca.crt" \
	--cert "$T/other/cert.pem" --key "$T/other/key.pem" -i dev-a -t devices/dev-a/telemetry -m '{}'
plugin_expect_event auth_refused "" tls_handshake_failed
pass "SIGHUP: the plugin writes its events to the new file"

# --- operator_write_commands no: the same operator command is refused ----------------
# The policy is reloaded live; the reload line in the broker log is the signal it is in force.
reloads=$(grep -c "moat: policy reloaded" "$PB/log/mosquitto.log" || true)
policy_with no
wait_for 10 eval '[ "$(grep -c "moat: policy reloaded" "$PB/log/mosquitto.log")" -gt "$reloads" ]' ||
	fail "the policy with operator_write_commands no was not reloaded"
plugin_pub op op-1 devices/dev-a/commands/reboot '{"command":"reboot","id":"c-no"}' >/dev/null 2>&1 || true
wait_for 10 eval "plugin_events acl_denied op-1 not_granted | qgrep -F '\"detail\":\"write devices/dev-a/commands/reboot\"'" ||
	fail "the operator's command was not refused with operator_write_commands no"
# The refusal event is written when the broker handles the publish, so by now it would
# have been delivered.
[ "$(grep -c 'devices/dev-a/commands/' "$T/dev-a.out")" = 1 ] ||
	fail "dev-a received a command from an operator with operator_write_commands no: $(cat "$T/dev-a.out")"
kill -0 "$DEV_A_PID" || fail "dev-a's subscriber died"
pass "operator_write_commands no: the plugin refuses an operator's command"

# --- a policy change applies to a session that is already connected ------------------
# The plugin caches each connection's grants (acl.c); a reload must void them. One
# operator session publishes a command while operator_write_commands is yes, then the same
# session publishes again after the reload to no: the second is refused.
policy_reload_to() { # $1: yes|no
	local before
	before=$(grep -c "moat: policy reloaded" "$PB/log/mosquitto.log" || true)
	policy_with "$1"
	wait_for 10 eval '[ "$(grep -c "moat: policy reloaded" "$PB/log/mosquitto.log")" -gt "$before" ]' ||
		fail "the policy with operator_write_commands $1 was not reloaded"
}
policy_reload_to yes
# A FIFO opened read-write does not block; the session reads its lines from it.
mkfifo "$T/op.fifo"
exec 7<>"$T/op.fifo"
# Not through e2e_bg: a background command's stdin would be /dev/null, not the FIFO.
# shellcheck disable=SC2046
mosquitto_pub $(plugin_client_args op op-1) -V mqttv5 -t devices/dev-a/commands/live -l <&7 &
E2E_PIDS+=($!)
echo '{"command":"reboot","id":"c-live1"}' >&7
wait_for 10 grep -qF '"id":"c-live1"' "$T/dev-a.out" ||
	fail "dev-a did not receive the command of the live operator session"
policy_reload_to no
echo '{"command":"reboot","id":"c-live2"}' >&7
wait_for 10 eval "plugin_events acl_denied op-1 not_granted | qgrep -F '\"detail\":\"write devices/dev-a/commands/live\"'" ||
	fail "the live operator session's command was not refused after the reload"
assert_not_contains "$(cat "$T/dev-a.out")" 'c-live2'
exec 7>&-
pass "a reload voids the grants a connected session has cached"
pass "plugin identity binding, ACL and events"
