#!/usr/bin/env bash
# test_plugin_moat.sh: the plugin in a deployment made by moat itself: `moat init`,
# `moat device add`, `moat identity add`, `moat up` (the generated mosquitto.conf and
# broker/policy), then `moat device revoke` and `moat device renew` while the devices are
# connected: the old certificates' sessions are kicked within 2 s, the renewed device comes
# back with its new certificate, the others stay, and the service sees it all on
# moat/events/<kind>.
source "$MOAT_SRC/tests/e2e/lib.sh"
source "$MOAT_SRC/tests/e2e/lib_broker.sh"

plugin_require
chmod 755 "$T"
e2e_init
PLUGIN_EVENTS="$D/log/security-events.jsonl"
PLUGIN_PORT=$BROKER_PORT
for d in dev-1 dev-2 dev-3; do moat device add "$d" >/dev/null; done
moat identity add svc-1 --role service >/dev/null
moat_up_test
assert_contains "$out" "plugin"
grep -q "^plugin .*moat_broker.so" "$D/broker/mosquitto.conf" || fail "no plugin line in the config"

# moat's identity files, in the shape plugin_client_args expects.
moat_client_args() {
	local i="$D/pki/identities/$1"
	echo "-h 127.0.0.1 -p $PLUGIN_PORT --cafile $i/ca.crt --cert $i/cert.pem --key $i/key.pem -i $1"
}
sub_bg() { # ID OUTFILE TOPIC: background subscriber; sets SUB_PID
	: >"$2"
	# shellcheck disable=SC2046
	e2e_bg stdbuf -oL mosquitto_sub $(moat_client_args "$1") -V mqttv5 -q 1 -v -t "$3" \
		>"$2" 2>"$2.err"
	SUB_PID=$!
	plugin_wait_event connected "$1" "" 10 || fail "$1 did not connect"
	wait_for 10 grep -qF -- " $1 1 $3" "$D/log/mosquitto.log" || fail "$1 did not subscribe"
}

sub_bg svc-1 "$T/svc.out" 'moat/events/#'
declare -A SUBS
for d in dev-1 dev-2 dev-3; do
	sub_bg "$d" "$T/$d.out" "devices/$d/commands/#"
	SUBS[$d]=$SUB_PID
done

# --- revoke dev-1 while it is connected ---------------------------------------------------
expect_ok "moat device revoke dev-1" moat device revoke dev-1
plugin_kicked_within dev-1 certificate_revoked "$D/pki/crl.pem"
plugin_client_closed "${SUBS[dev-1]}" "$T/dev-1.out.err" dev-1
# shellcheck disable=SC2046
expect_fail "dev-1 connects again" timeout "$(deadline 20)" mosquitto_pub $(moat_client_args dev-1) \
	-t devices/dev-1/telemetry -m '{}'
wait_for 10 grep -q '^moat/events/revoked_kicked .*"identity":"dev-1"' "$T/svc.out" ||
	fail "the service did not see dev-1's revoked_kicked event"

# --- renew dev-2 while it is connected: the old certificate's session goes, the new one
# connects ------------------------------------------------------------------------------
old_serial=$(plugin_events connected dev-2 | jq -r .detail | head -1)
expect_ok "moat device renew dev-2" moat device renew dev-2
plugin_kicked_within dev-2 certificate_revoked "$D/pki/crl.pem"
plugin_client_closed "${SUBS[dev-2]}" "$T/dev-2.out.err" dev-2
sub_bg dev-2 "$T/dev-2b.out" 'devices/dev-2/commands/#'
new_serial=$(plugin_events connected dev-2 | jq -r .detail | tail -1)
[ "$old_serial" != "$new_serial" ] || fail "dev-2 reconnected with its old certificate"
pass "dev-2 is back with its renewed certificate"

# --- dev-3 was never touched -----------------------------------------------------------------
[ -z "$(plugin_events revoked_kicked dev-3)" ] || fail "dev-3 was kicked"
kill -0 "${SUBS[dev-3]}" || fail "dev-3's subscriber died"
[ "$(plugin_events connected dev-3 | wc -l)" = 1 ] || fail "dev-3 had to reconnect"
pass "plugin with a moat deployment"
