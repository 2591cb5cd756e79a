#!/usr/bin/env bash
# test_plugin_crl.sh: the plugin holds only a CRL that its CA signed and that is current
# (issue #20, "also found"). A CRL signed by another key under the same CA name, and a stale
# one (nextUpdate passed), each revoking dev-r, are refused with a crl_rejected event and the
# last good CRL stays in force: dev-r keeps connecting. A good CRL revoking dev-r (the
# positive control) kicks and refuses it. A broker whose CRL is stale at start does not
# start. A reload (SIGHUP) writes no auth_refused event for an offline persistent session.
source "$MOAT_SRC/tests/e2e/lib.sh"
source "$MOAT_SRC/tests/e2e/lib_broker.sh"

plugin_require
plugin_pki
for d in dev-r dev-p dev-x; do plugin_cert "$d" "$d"; done
plugin_policy "moat-policy 1
flapping connects=0 window_s=60 ban_s=60
identity dev-p device active
identity dev-r device active
identity dev-x device active
end identities=3
"
plugin_conf
plugin_start
p="$PB/pki"

# A copy of the CA database in which dev-r is revoked, for CRLs made outside plugin_crl.
mkdir -p "$T/alt/newcerts"
cp "$p/index.txt" "$p/crlnumber" "$T/alt/"
sed "s|^database = .*|database = $T/alt/index.txt|; s|^crlnumber = .*|crlnumber = $T/alt/crlnumber|" \
	"$p/ca.cnf" >"$T/alt/ca.cnf"
openssl ca -config "$T/alt/ca.cnf" -revoke "$p/dev-r.crt" 2>/dev/null || fail "revoke in the copy"
# install_crl FILE: replaces crl.pem atomically, as moat does.
install_crl() { cp "$1" "$p/crl.pem.tmp" && chmod 644 "$p/crl.pem.tmp" && mv -f "$p/crl.pem.tmp" "$p/crl.pem"; }

# 1. Same issuer name, another key: not signed by the CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-keyout "$T/alt/fake.key" -out "$T/alt/fake.crt" -subj "/CN=moat-test-ca" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	2>/dev/null
sed "s|^certificate = .*|certificate = $T/alt/fake.crt|; s|^private_key = .*|private_key = $T/alt/fake.key|" \
	"$T/alt/ca.cnf" >"$T/alt/fake.cnf"
openssl ca -gencrl -config "$T/alt/fake.cnf" -out "$T/alt/forged.pem" 2>/dev/null || fail "forged CRL"
install_crl "$T/alt/forged.pem"
plugin_expect_event crl_rejected "" not_verified
plugin_events crl_rejected | tail -1 | qgrep 'not signed by the CA' || fail "wrong crl_rejected detail"
expect_ok "dev-r connects under the last good CRL" plugin_pub dev-r dev-r devices/dev-r/telemetry '{}'

# 2. Signed by the CA, but stale.
openssl ca -gencrl -config "$T/alt/ca.cnf" -crl_lastupdate 20200101000000Z \
	-crl_nextupdate 20200102000000Z -out "$T/alt/stale.pem" 2>/dev/null || fail "stale CRL"
install_crl "$T/alt/stale.pem"
wait_for 10 plugin_more_events crl_rejected "" not_verified 1 || fail "the stale CRL was not rejected"
plugin_events crl_rejected | tail -1 | qgrep 'stale' || fail "wrong crl_rejected detail"
expect_ok "dev-r still connects" plugin_pub dev-r dev-r devices/dev-r/telemetry '{}'
pass "a forged or stale CRL leaves the last good one in force"

# 3. Positive control: the CA's current CRL revoking dev-r takes effect at once.
openssl ca -gencrl -config "$T/alt/ca.cnf" -out "$T/alt/good.pem" 2>/dev/null || fail "good CRL"
install_crl "$T/alt/good.pem"
wait_for 10 grep -q "moat: CRL reloaded: 1 revoked serials" "$PB/log/mosquitto.log" ||
	fail "the good CRL was not loaded"
expect_fail "revoked dev-r connects" plugin_pub dev-r dev-r devices/dev-r/telemetry '{}'
plugin_expect_event auth_refused dev-r revoked
pass "a good CRL is applied"

# 4. A reload does not report offline persistent sessions as refused.
# shellcheck disable=SC2046
timeout "$(deadline 20)" mosquitto_sub $(plugin_client_args dev-p) -V mqttv5 -q 1 -c -x 600 \
	-t devices/dev-p/commands/x -E >/dev/null 2>&1 || fail "dev-p's persistent session"
wait_for 10 plugin_more_events disconnected dev-p "" 0 || fail "dev-p did not disconnect"
kill -HUP "$PLUGIN_BROKER_PID"
wait_for 10 grep -q 'moat: policy reloaded' "$PB/log/mosquitto.log" ||
	fail "the broker did not reload"
# An event after the reload: had the reload written one for dev-p, it would be before this.
expect_ok "dev-x connects after the reload" plugin_pub dev-x dev-x devices/dev-x/telemetry '{}'
plugin_expect_event connected dev-x
[ -z "$(plugin_events auth_refused "" no_certificate)" ] ||
	fail "the reload reported an offline session: $(plugin_events auth_refused "" no_certificate)"
pass "no false auth_refused on reload"

# 5. A broker whose only CRL is stale does not start.
kill "$PLUGIN_BROKER_PID"
wait_for 10 sh -c "! kill -0 $PLUGIN_BROKER_PID" || fail "the broker did not stop"
install_crl "$T/alt/stale.pem"
: >"$PB/log/mosquitto.log"
# shellcheck disable=SC2046
if timeout "$(deadline 20)" $(plugin_mosquitto_env) /usr/sbin/mosquitto -c "$PB/broker/mosquitto.conf"; then
	fail "the broker started with a stale CRL"
fi
grep -q "stale" "$PB/log/mosquitto.log" || fail "no reason logged: $(tail -3 "$PB/log/mosquitto.log")"
pass "CRL verification"
