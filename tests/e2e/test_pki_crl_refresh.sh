#!/usr/bin/env bash
# test_pki_crl_refresh.sh: moatd keeps the CRL fresh with the issuing CA, without the
# passphrase, so no device is ever locked out; a stale CRL is named by `moat status` and
# `moat cert expiring` and is a security event. The CRL is made valid for 60 s ([pki]
# crl_validity): moatd must re-sign it at half that, and after the first CRL's nextUpdate
# has passed a device still connects to the real Mosquitto (whose own crlfile check refuses
# everyone under an expired CRL) and to moatd, while a revoked one is still refused. A
# single-tier deployment, which cannot be refreshed without the passphrase, goes stale.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_moatd.sh"
broker_require
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"

next_update() { date -d "$(openssl crl -in "$1" -noout -nextupdate | head -1 | cut -d= -f2)" +%s; }
dev_pub() {
	local i="$D/pki/identities/$1"
	timeout "$(deadline 20)" mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$i/ca.crt" \
		--cert "$i/cert.pem" --key "$i/key.pem" -i "$1" -V mqttv5 -q 1 \
		-t "devices/$1/telemetry" -m "{\"device_id\":\"$1\"}"
}

# --- a single-tier deployment with a 60 s CRL, left alone: it goes stale ------------------
S="$T/single"
moat init --dir "$S" --name single --single-tier --broker-port "$(free_port)" --server-port "$(free_port)" >/dev/null
moat --dir "$S" identity add backend-service --role service >/dev/null
echo "crl_validity = 59s" >>"$S/moat.conf"
expect_fail "crl_validity of 59 s" moat --dir "$S" cert crl
assert_contains "$errout" "crl_validity"
sed -i 's/^crl_validity = 59s$/crl_validity = 60s/' "$S/moat.conf"
expect_ok "single-tier cert crl (passphrase)" moat --dir "$S" cert crl
S_NEXT=$(next_update "$S/pki/crl.pem")
# its broker and moatd run while the CRL goes stale
on_exit "moat --dir '$S' down --timeout $(deadline 20s)"
# shellcheck disable=SC2046 # the prefix is words without spaces
expect_ok "moat up (single tier)" $(plugin_mosquitto_env) moat --dir "$S" up --timeout "$(deadline 30s)"

# --- the two-tier deployment under moat up ------------------------------------------------
e2e_init
sed -i "/^\\[pki\\]/a crl_validity = 60s" "$D/moat.conf"
moat device add dev-a >/dev/null
moat device add dev-r >/dev/null
moat identity add backend-service --role service >/dev/null
expect_ok "revoke dev-r" env -u MOAT_CA_PASSPHRASE moat device revoke dev-r
expect_ok "cert crl without the passphrase" env -u MOAT_CA_PASSPHRASE moat cert crl
FIRST_NEXT=$(next_update "$D/pki/crl.pem")
[ $((FIRST_NEXT - $(date +%s))) -le 61 ] || fail "the CRL is not valid for 60 s"
moat_up_test
expect_ok "dev-a connects" dev_pub dev-a
expect_fail "dev-r is refused" dev_pub dev-r
expect_ok "status with a fresh CRL" moat status
assert_contains "$out" "crl: "
assert_not_contains "$out" "STALE"

# moatd re-signs it once half its validity has passed, with no passphrase anywhere
wait_for 90 sh -c "[ \$(date -d \"\$(openssl crl -in '$D/pki/crl.pem' -noout -nextupdate | cut -d= -f2)\" +%s) -gt $FIRST_NEXT ]" ||
	fail "moatd did not re-sign the CRL: $(grep crl "$D/log/moatd.log" | tail -3)"
grep -q "event=crl_refreshed" "$D/log/moatd.log" || fail "no crl_refreshed in moatd's log"
openssl crl -in "$D/pki/crl.pem" -CAfile "$D/pki/chain.pem" -noout 2>&1 | qgrep "verify OK" ||
	fail "the re-signed CRL does not verify"
assert_contains "$(openssl crl -in "$D/pki/crl.pem" -noout -text)" \
	"$(moat --json device show dev-r | python3 -c 'import json,sys; print(json.load(sys.stdin)["serial"].upper())')"
pass "moatd re-signed the CRL before half its validity, without the passphrase"

# past the first CRL's nextUpdate: nobody is locked out, revocation still holds
wait_for 90 sh -c "[ \$(date +%s) -gt $((FIRST_NEXT + 1)) ]"
expect_ok "dev-a connects after the first CRL's nextUpdate" dev_pub dev-a
expect_fail "dev-r is still refused" dev_pub dev-r
expect_status 204 "moatd serves dev-a after the first CRL's nextUpdate" dev-a "$(url /api/firmware/version)"
expect_status 403 "moatd refuses dev-r" dev-r "$(url /api/firmware/version)"
expect_ok "status after the first nextUpdate" moat status
assert_not_contains "$out" "STALE"
# it never went stale: moatd re-signed it in time (checked after dev-a's connection above)
assert_not_contains "$(cat "$D/log/moatd.log")" "kind=crl_stale"
assert_not_contains "$(cat "$D/log/security-events.jsonl" 2>/dev/null)" '"stale"'
pass "devices are not locked out across the old CRL's nextUpdate"

# --- the single-tier deployment went stale: named, a security event, not healthy --------
wait_for 90 sh -c "[ \$(date +%s) -gt $S_NEXT ]"
set +e
moat --dir "$S" cert expiring >"$T/exp.out" 2>&1
rc=$?
set -e
[ $rc = 1 ] || fail "cert expiring with a stale CRL: exit $rc"
assert_contains "$(cat "$T/exp.out")" "STALE"
assert_contains "$(cat "$T/exp.out")" "crl"
set +e
moat --dir "$S" status >"$T/st.out" 2>&1
rc=$?
set -e
[ $rc = 1 ] || fail "status of a running broker with a stale CRL: exit $rc (want 1): $(cat "$T/st.out")"
moat --dir "$S" --json status >"$T/st.json" 2>/dev/null || true
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["crl"]["state"]=="stale", d' "$T/st.json" ||
	fail "status --json: $(cat "$T/st.json")"
assert_contains "$(cat "$T/st.out")" "crl: STALE"
# the broker's plugin and moatd report it as security events; moatd cannot re-sign it
wait_for 30 grep -q '"crl_rejected".*"stale"' "$S/log/security-events.jsonl" ||
	fail "no crl_rejected (stale) event from the plugin: $(tail -3 "$S/log/security-events.jsonl")"
wait_for 30 grep -q "event=security kind=crl_stale" "$S/log/moatd.log" ||
	fail "no crl_stale security event from moatd: $(tail -5 "$S/log/moatd.log")"
grep -q "event=crl_refresh_needs_passphrase" "$S/log/moatd.log" ||
	fail "moatd did not say it needs the passphrase"
pass "a stale CRL: moat status and cert expiring name it, the plugin and moatd report security events"
