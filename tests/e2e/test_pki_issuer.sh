#!/usr/bin/env bash
# test_pki_issuer.sh: a single-tier deployment (the layout moat init made before the
# issuing CA: `moat init --single-tier`) keeps working, gains an issuing CA with
# `moat ca issuer create`, and lives through `moat ca issuer rotate` with no device
# re-enrolled. Against the real Mosquitto with the plugin and mosquitto_pub, each device
# using only the files it was given (its ca.crt, cert.pem, key.pem): a device issued before
# each step still connects, a device revoked before it is still refused, and the broker
# started afresh (Mosquitto reading a crlfile of several CRLs) decides the same.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"

e2e_init --single-tier
[ ! -e "$D/pki/issuer.crt" ] || fail "--single-tier made an issuing CA"

# dev_pub NAME: one publish with the device's own files, as the device would make it
dev_pub() {
	local i="$D/pki/identities/$1"
	timeout "$(deadline 20)" mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$i/ca.crt" \
		--cert "$i/cert.pem" --key "$i/key.pem" -i "$1" -V mqttv5 -q 1 \
		-t "devices/$1/telemetry" -m "{\"device_id\":\"$1\"}"
}
connects() { expect_ok "$1 connects ($2)" dev_pub "$1"; }
refused() { expect_fail "$1 is refused ($2)" dev_pub "$1"; }
nopass() { env -u MOAT_CA_PASSPHRASE "$@" </dev/null; }

# --- single tier: the root signs, every change needs the passphrase ----------------------
expect_ok "add old-a" moat device add old-a
expect_ok "add old-r" moat device add old-r
expect_ok "add old-k" moat device add old-k
expect_fail "add without the passphrase" nopass moat device add nope
assert_contains "$errout" "passphrase"
expect_ok "revoke old-r" moat device revoke old-r
moat_up_test
connects old-a "single tier"
refused old-r "single tier"
pass "single-tier deployment works as before"

# --- issuer create: needs the passphrase; the root is re-certified with pathlen 1 --------
root_key_before=$(openssl x509 -in "$D/pki/ca.crt" -noout -pubkey)
expect_fail "issuer create without the passphrase" nopass moat ca issuer create
expect_fail "issuer create with a wrong passphrase" env MOAT_CA_PASSPHRASE=wrong-passphrase-1 moat ca issuer create
[ ! -e "$D/pki/issuer.crt" ] || fail "a refused issuer create wrote pki/issuer.crt"
expect_ok "issuer create" moat ca issuer create
expect_fail "issuer create twice" moat ca issuer create
assert_contains "$errout" "rotate"
[ "$(mode_of "$D/pki/issuer.key")" = 600 ] || fail "issuer.key mode"
assert_contains "$(openssl x509 -in "$D/pki/ca.crt" -noout -text)" "pathlen:1"
[ "$(openssl x509 -in "$D/pki/ca.crt" -noout -pubkey)" = "$root_key_before" ] || fail "the root's key changed"
assert_contains "$(openssl x509 -in "$D/pki/issuer.crt" -noout -text)" "pathlen:0"
# the CRL file: the issuing CA's, and the root's for the certificates it signed
[ "$(grep -c 'BEGIN X509 CRL' "$D/pki/crl.pem")" = 2 ] || fail "crl.pem: not the issuer's and the root's CRL"
# from now on the issuing CA signs without the passphrase
expect_ok "add new-b without the passphrase" nopass moat device add new-b
expect_ok "add new-r without the passphrase" nopass moat device add new-r
expect_ok "revoke new-r without the passphrase" nopass moat device revoke new-r
openssl verify -CAfile "$D/pki/ca.crt" -untrusted "$D/pki/identities/new-b/cert.pem" \
	"$D/pki/identities/new-b/cert.pem" >/dev/null || fail "new-b does not verify under the root"
connects old-a "after issuer create, root-signed, the old root certificate as its trust"
refused old-r "after issuer create"
connects new-b "issued by the issuing CA"
refused new-r "revoked under the issuing CA"
# a root-signed certificate is revoked in the root's CRL: that needs the passphrase
connects old-k "before its revocation"
expect_fail "revoke root-signed old-k without the passphrase" nopass moat device revoke old-k
assert_contains "$errout" "passphrase"
expect_ok "revoke root-signed old-k" moat device revoke old-k
refused old-k "revoked in the root's CRL"
pass "issuer create: the issuing CA signs without the passphrase; old devices unaffected"

# --- rotate: a new issuing CA; devices of the old one keep working ------------------------
old_issuer_subject=$(openssl x509 -in "$D/pki/issuer.crt" -noout -subject)
expect_fail "rotate without the passphrase" nopass moat ca issuer rotate
expect_ok "rotate" moat ca issuer rotate
[ "$(openssl x509 -in "$D/pki/issuer.crt" -noout -subject)" != "$old_issuer_subject" ] ||
	fail "rotate kept the issuing CA's name"
[ "$(grep -c 'BEGIN CERTIFICATE' "$D/pki/issuers.pem")" = 2 ] || fail "issuers.pem: not the new and the old issuing CA"
[ "$(grep -c 'BEGIN X509 CRL' "$D/pki/crl.pem")" = 3 ] || fail "crl.pem: not three CRLs (new, old issuing CA, root)"
expect_ok "add new-c without the passphrase" nopass moat device add new-c
connects new-c "issued by the new issuing CA"
connects new-b "issued by the old issuing CA"
refused new-r "revoked under the old issuing CA"
connects old-a "root-signed, after rotate"
refused old-r "after rotate"
# a device of the old issuing CA is revoked without the passphrase, and refused
expect_ok "revoke new-b without the passphrase" nopass moat device revoke new-b
refused new-b "revoked after rotate"
pass "rotate: devices of the old issuing CA connect, revocations under it hold"

# --- no certificate outlives its issuer ------------------------------------------------------
expect_fail "device add --days 20000" nopass moat device add far --days 20000
assert_contains "$errout" "no certificate outlives its issuer"
[ ! -e "$D/pki/identities/far" ] || fail "a refused add left files"
expect_fail "renew --days 20000" nopass moat device renew new-c --days 20000
assert_contains "$errout" "--days 20000"
expect_fail "rotate --days 20000" moat ca issuer rotate --days 20000
assert_contains "$errout" "no certificate outlives its issuer"
end_issuer=$(date -d "$(openssl x509 -in "$D/pki/issuer.crt" -noout -enddate | cut -d= -f2)" +%s)
end_root=$(date -d "$(openssl x509 -in "$D/pki/ca.crt" -noout -enddate | cut -d= -f2)" +%s)
[ "$end_issuer" -le "$end_root" ] || fail "the issuing CA outlives the root"
pass "--days beyond the issuer is refused (identities, renewal, the issuing CA)"

# --- a broker started afresh reads every CRL -----------------------------------------------
expect_ok "down" moat down --timeout "$(deadline 20s)"
moat_up_test
connects new-c "after restart"
connects old-a "after restart"
refused new-r "after restart"
refused new-b "after restart"
refused old-r "after restart"
refused old-k "after restart"
pass "restarted broker: the same decisions from the crlfile of several CRLs"
