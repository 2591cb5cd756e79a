#!/usr/bin/env bash
# test_pkcs11_rotate.sh: an issuing CA whose key is in a PKCS#11 token (SoftHSM2, made by
# the test) under moat up with the real Mosquitto and moatd. moatd re-signs the 60 s CRL
# through the token with no passphrase, so devices are never locked out; `moat ca issuer
# rotate --pkcs11-uri` moves to a new key object in the token and `moat ca issuer rotate` to a
# key file, the retired token keys staying in the token (pki/retired/issuer-N.pkcs11) and
# signing their CRLs: devices of every generation keep connecting, revocations of each hold.
# Refusals, one line each, moat.conf untouched: the current key again, a missing object.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_pkcs11.sh"
broker_require
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"

token_init moat
token_keygen moat issuer1 01
token_keygen moat issuer2 02
unset MOAT_PKCS11_PIN
next_update() { date -d "$(openssl crl -in "$1" -noout -nextupdate | head -1 | cut -d= -f2)" +%s; }
dev_pub() {
	local i="$D/pki/identities/$1"
	timeout "$(deadline 20)" mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$i/ca.crt" \
		--cert "$i/cert.pem" --key "$i/key.pem" -i "$1" -V mqttv5 -q 1 \
		-t "devices/$1/telemetry" -m "{\"device_id\":\"$1\"}"
}
connects() { expect_ok "$1 connects ($2)" dev_pub "$1"; }
refused() { expect_fail "$1 is refused ($2)" dev_pub "$1"; }
nopass() { env -u MOAT_CA_PASSPHRASE "$@" </dev/null; }
one_line() { [ "$(printf '%s\n' "$errout" | wc -l)" -eq 1 ] || fail "$1: not one line: $errout"; }
# refreshed AFTER: waits until moatd re-signed pki/crl.pem to a nextUpdate past AFTER
refreshed() {
	wait_for 90 sh -c "[ \$(date -d \"\$(openssl crl -in '$D/pki/crl.pem' -noout -nextupdate | head -1 | cut -d= -f2)\" +%s) -gt $1 ]" ||
		fail "moatd did not re-sign the CRL: $(grep crl "$D/log/moatd.log" | tail -3)"
}

e2e_init --issuer-pkcs11-uri "pkcs11:token=moat;object=issuer1;type=private" \
	--pkcs11-module "$P11_MODULE" --pin-file "$T/pin"
sed -i "/^\\[pki\\]/a crl_validity = 60s" "$D/moat.conf"
chmod o+x "$T"
expect_ok "add dev-a" nopass moat device add dev-a
if [ "$(id -u)" = 0 ]; then
	# moatd runs as its own account ([server] user): a token it cannot use stops it at start
	# shellcheck disable=SC2046 # the prefix is words without spaces
	expect_fail "moat up with a token moatd cannot read" $(plugin_mosquitto_env) moat up \
		--timeout "$(deadline 30s)"
	assert_contains "$errout$(cat "$D/log/moatd.log")" \
		"the issuing CA's key in its PKCS#11 token, as user moat"
	moat down --timeout "$(deadline 20s)" >/dev/null 2>&1 || true
	pass "moatd refuses to start with a token its account cannot use"
	chown -R moat "$T/softhsm" "$T/pin"
fi
expect_ok "add dev-o" nopass moat device add dev-o
expect_ok "add dev-r" nopass moat device add dev-r
expect_ok "revoke dev-r" nopass moat device revoke dev-r
expect_ok "cert crl through the token" nopass moat cert crl
FIRST_NEXT=$(next_update "$D/pki/crl.pem")
moat_up_test
connects dev-a "token issuer"
refused dev-r "token issuer"

# --- moatd re-signs the CRL through the token, without the passphrase ---------------------
refreshed "$FIRST_NEXT"
grep -q "event=crl_refreshed" "$D/log/moatd.log" || fail "no crl_refreshed in moatd's log"
openssl crl -in "$D/pki/crl.pem" -CAfile "$D/pki/chain.pem" -noout 2>&1 | qgrep "verify OK" ||
	fail "the re-signed CRL does not verify"
wait_for 90 sh -c "[ \$(date +%s) -gt $((FIRST_NEXT + 1)) ]"
connects dev-a "after the first CRL's nextUpdate"
refused dev-r "after the first CRL's nextUpdate"
assert_not_contains "$(cat "$D/log/moatd.log")" "kind=crl_stale"
pass "moatd re-signs the CRL through the token; nobody is locked out"

# --- rotation refusals: one line, moat.conf unchanged -----------------------------------------
cp "$D/moat.conf" "$T/conf.before"
expect_fail "rotate to the current key" moat ca issuer rotate \
	--pkcs11-uri "pkcs11:token=moat;object=issuer1"
assert_contains "$errout" "a new issuing CA needs a new key object"
one_line "rotate to the current key"
expect_fail "rotate to a missing object" moat ca issuer rotate --pkcs11-uri "pkcs11:token=moat;object=nope"
assert_contains "$errout" "no private key object=nope"
one_line "rotate to a missing object"
expect_fail "rotate: module named twice" moat ca issuer rotate \
	--pkcs11-uri "pkcs11:token=moat;object=issuer2" --pkcs11-module "$P11_MODULE"
assert_contains "$errout" "pkcs11_module already"
one_line "rotate: module named twice"
cmp -s "$D/moat.conf" "$T/conf.before" || fail "a refused rotation changed moat.conf"
[ ! -e "$D/pki/retired" ] || fail "a refused rotation retired the issuing CA"
pass "rotation refusals: one line, nothing changed"

# --- rotation to a new key object in the token ----------------------------------------------
OLD_SUBJECT=$(openssl x509 -in "$D/pki/issuer.crt" -noout -subject)
expect_ok "rotate to issuer2 in the token" moat ca issuer rotate \
	--pkcs11-uri "pkcs11:token=moat;object=issuer2;type=private"
[ "$(openssl x509 -in "$D/pki/issuer.crt" -noout -subject)" != "$OLD_SUBJECT" ] || fail "same issuing CA"
[ ! -e "$D/pki/issuer.key" ] || fail "pki/issuer.key written for a key in a token"
[ ! -e "$D/pki/retired/issuer-1.key" ] || fail "a token key was written to pki/retired"
grep -qx "pkcs11:token=moat;object=issuer1;type=private?module-path=$P11_MODULE" \
	"$D/pki/retired/issuer-1.pkcs11" || fail "retired URI: $(cat "$D/pki/retired/issuer-1.pkcs11")"
grep -qx "issuer_pkcs11_uri = pkcs11:token=moat;object=issuer2;type=private" "$D/moat.conf" ||
	fail "moat.conf does not name issuer2"
[ "$(grep -c '^issuer_pkcs11_uri' "$D/moat.conf")" = 1 ] || fail "two issuer_pkcs11_uri lines"
token_pubkey moat issuer2 "$T/issuer2.pub"
cmp -s <(openssl x509 -in "$D/pki/issuer.crt" -pubkey -noout | openssl pkey -pubin -outform DER) \
	<(openssl pkey -pubin -in "$T/issuer2.pub" -outform DER) || fail "issuer.crt does not certify issuer2"
expect_ok "add dev-n under issuer2" nopass moat device add dev-n
expect_ok "add dev-m under issuer2" nopass moat device add dev-m
expect_ok "revoke old-issuer dev-o without the passphrase" nopass moat device revoke dev-o
connects dev-a "issued by the retired token CA"
connects dev-n "issued by the new token CA"
refused dev-o "revoked after rotation"
refused dev-r "revoked before rotation"
pass "rotation to a new token key: no device re-enrolled, revocations hold"

# moatd keeps re-signing both CRLs: the retired CA's through its key in the token
NEXT=$(next_update "$D/pki/crl.pem")
refreshed "$NEXT"
[ "$(grep -c 'BEGIN X509 CRL' "$D/pki/crl.pem")" = 2 ] || fail "crl.pem lacks the retired CA's CRL"
wait_for 90 sh -c "[ \$(date +%s) -gt $((NEXT + 1)) ]"
connects dev-a "retired token CA, after its CRL's nextUpdate"
refused dev-o "after its CRL's nextUpdate"
assert_not_contains "$(cat "$D/log/moatd.log")" "kind=crl_stale"
pass "moatd re-signs the retired token CA's CRL"

# --- rotation from the token to a key file ------------------------------------------------
expect_ok "rotate to a key file" moat ca issuer rotate
[ -f "$D/pki/issuer.key" ] || fail "no pki/issuer.key"
[ "$(stat -c %a "$D/pki/issuer.key")" = 600 ] || fail "pki/issuer.key not 0600"
grep -q '^issuer_pkcs11_uri' "$D/moat.conf" && fail "moat.conf still names a token key"
grep -qx "pkcs11:token=moat;object=issuer2;type=private?module-path=$P11_MODULE" \
	"$D/pki/retired/issuer-2.pkcs11" || fail "issuer2 not retired by URI"
expect_ok "add dev-f under the file key" nopass moat device add dev-f
expect_ok "revoke issuer2's dev-m" nopass moat device revoke dev-m
expect_ok "cert crl signs with both retired token keys" nopass moat cert crl
[ "$(grep -c 'BEGIN X509 CRL' "$D/pki/crl.pem")" = 3 ] || fail "crl.pem lacks a retired CA's CRL"
connects dev-f "file issuer"
connects dev-n "retired issuer2"
connects dev-a "retired issuer1"
refused dev-m "revoked under retired issuer2"
refused dev-o "revoked under retired issuer1"
token_key_locked moat issuer1
token_key_locked moat issuer2
pass "rotation from the token to a key file: every generation works"
