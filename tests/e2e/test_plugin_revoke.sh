#!/usr/bin/env bash
# test_plugin_revoke.sh: live revocation with moat_broker.so in a real Mosquitto 2.0. When
# the CRL or the policy file is replaced, connected clients that are now revoked or
# disabled are kicked within 2 s (the kicked client itself sees its connection closed),
# without a broker restart, and cannot come back; everyone
# else stays connected; a policy file that does not parse leaves the previous one in force.
source "$MOAT_SRC/tests/e2e/lib.sh"
source "$MOAT_SRC/tests/e2e/lib_broker.sh"

plugin_require
plugin_pki
for d in dev-r dev-d dev-k; do plugin_cert "$d" "$d"; done
plugin_cert op op-1 client operator
policy_with() { # $1: status of dev-d
	plugin_policy "moat-policy 1
flapping connects=0 window_s=60 ban_s=60
identity dev-d device $1
identity dev-k device active
identity dev-r device active
identity op-1 operator active
end identities=4
"
}
policy_with active
plugin_conf
plugin_start
BROKER_PID=$PLUGIN_BROKER_PID

declare -A SUBS
for d in dev-r dev-d dev-k; do
	plugin_sub_bg "$d" "$d" "$T/$d.out" "devices/$d/commands/#"
	SUBS[$d]=$PLUGIN_SUB_PID
done

# --- revocation through the CRL ----------------------------------------------------------
plugin_revoke dev-r
plugin_kicked_within dev-r certificate_revoked "$PB/pki/crl.pem"
plugin_client_closed "${SUBS[dev-r]}" "$T/dev-r.out.err" dev-r
grep -q "moat: CRL reloaded" "$PB/log/mosquitto.log" || fail "no CRL reload in the broker log"
expect_fail "dev-r connects again" plugin_pub dev-r dev-r devices/dev-r/telemetry '{}'
plugin_expect_event auth_refused dev-r revoked
kill -0 "$BROKER_PID" || fail "the broker is gone"
pass "revoked certificate kicked and refused without a restart"

# --- disabling through the policy ----------------------------------------------------------
policy_with disabled
plugin_kicked_within dev-d disabled "$PB/broker/policy"
plugin_client_closed "${SUBS[dev-d]}" "$T/dev-d.out.err" dev-d
expect_fail "dev-d connects again" plugin_pub dev-d dev-d devices/dev-d/telemetry '{}'
plugin_expect_event auth_refused dev-d disabled

# --- a broken policy file changes nothing --------------------------------------------------
plugin_policy "moat-policy 1
identity dev-k device active
identity dev-d device active
"
wait_for 10 grep -q "keeping the previous policy" "$PB/log/mosquitto.log" ||
	fail "the broken policy was not reported"
expect_fail "dev-d is still disabled" plugin_pub dev-d dev-d devices/dev-d/telemetry '{}'

# dev-k was never touched: no kick, and it still receives its commands.
[ -z "$(plugin_events revoked_kicked dev-k)" ] || fail "dev-k was kicked"
kill -0 "${SUBS[dev-k]}" || fail "dev-k's subscriber died"
expect_ok "an operator commands dev-k" \
	plugin_pub op op-1 devices/dev-k/commands/diagnostics '{"command":"diagnostics","id":"k1"}'
wait_for 10 grep -q 'devices/dev-k/commands/diagnostics {"command":"diagnostics","id":"k1"}' \
	"$T/dev-k.out" || fail "dev-k did not receive its command"
[ "$(plugin_events connected dev-k | wc -l)" = 1 ] || fail "dev-k had to reconnect"
pass "plugin live revocation"
