#!/usr/bin/env bash
# test_pkcs11_issuer.sh: the issuing CA's key in a PKCS#11 token (SoftHSM2, made by the
# test). `moat init --issuer-pkcs11-uri` certifies the token's key under the root and writes
# no pki/issuer.key; devices are then issued, revoked and the CRL re-signed through the
# token without the CA passphrase, and OpenSSL verifies each against the root; a firmware
# key in the same token signs an image a device accepts. Refusals, one line each, nothing
# left behind: wrong PIN, a PIN file others can read, missing token, missing object, URI
# syntax, a PIN in the URI, --single-tier; later a wrong PIN, a vanished token, a key that
# is not the certificate's, a stray pki/issuer.key and a bad URI in moat.conf. `moat ca issuer
# create --pkcs11-uri` adds such an issuing CA to a single-tier deployment.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fw.sh"
source "$(dirname "$0")/lib_pkcs11.sh"

token_init moat spare
token_keygen moat issuer 01
token_keygen moat other 02
token_keygen moat fw 03
token_key_locked moat issuer
unset MOAT_PKCS11_PIN
URI="pkcs11:token=moat;object=issuer;type=private"
BROKER_PORT=$(free_port)
SERVER_PORT=$(free_port)
D="$T/d"
init() {
	moat init --dir "$D" --name e2e --broker-port "$BROKER_PORT" --server-port "$SERVER_PORT" "$@"
}
one_line() { [ "$(printf '%s\n' "$errout" | wc -l)" -eq 1 ] || fail "$1: not one line: $errout"; }
nothing_left() { [ ! -e "$D" ] || [ -z "$(ls -A "$D")" ] || fail "$1 left files in $D: $(ls -A "$D")"; }

# ---- refusals at init: one line, no deployment ----
printf 'not-the-pin\n' >"$T/wrong.pin"
chmod 600 "$T/wrong.pin"
M=(--pkcs11-module "$P11_MODULE")
expect_fail "init: wrong PIN" init --issuer-pkcs11-uri "$URI" "${M[@]}" --pin-file "$T/wrong.pin"
assert_contains "$errout" "token 'moat': wrong PIN"
assert_not_contains "$errout" "not-the-pin"
one_line "init: wrong PIN"
nothing_left "init: wrong PIN"
cp "$T/pin" "$T/open.pin" && chmod 644 "$T/open.pin"
expect_fail "init: PIN file readable by others" init --issuer-pkcs11-uri "$URI" "${M[@]}" \
	--pin-file "$T/open.pin"
assert_contains "$errout" "readable by others"
nothing_left "init: PIN file readable by others"
expect_fail "init: missing token" init --issuer-pkcs11-uri "pkcs11:token=gone;object=issuer" \
	"${M[@]}" --pin-file "$T/pin"
assert_contains "$errout" "no initialized token matches token=gone"
one_line "init: missing token"
nothing_left "init: missing token"
expect_fail "init: missing object" init --issuer-pkcs11-uri "pkcs11:token=moat;object=nope" \
	"${M[@]}" --pin-file "$T/pin"
assert_contains "$errout" "no private key object=nope"
one_line "init: missing object"
nothing_left "init: missing object"
expect_fail "init: URI syntax" init --issuer-pkcs11-uri "pkcs11:token=moat;object=%zz" "${M[@]}"
assert_contains "$errout" "two hex digits"
one_line "init: URI syntax"
nothing_left "init: URI syntax"
expect_fail "init: PIN in the URI" init --issuer-pkcs11-uri "$URI?pin-value=$P11_PIN" "${M[@]}"
assert_contains "$errout" "pin-value refused"
nothing_left "init: PIN in the URI"
expect_fail "init: token and single tier" init --issuer-pkcs11-uri "$URI" --single-tier
assert_contains "$errout" "not with --single-tier"
expect_fail "init: no module" init --issuer-pkcs11-uri "$URI" --pin-file "$T/pin"
assert_contains "$errout" "no PKCS#11 module"
nothing_left "init: no module"
pass "init refusals leave nothing"

# ---- init with the issuing CA's key in the token ----
expect_ok "init with the issuer key in the token" init --issuer-pkcs11-uri "$URI" "${M[@]}" \
	--pin-file "$T/pin"
export MOAT_DIR="$D"
[ -f "$D/pki/issuer.crt" ] || fail "no pki/issuer.crt"
[ ! -e "$D/pki/issuer.key" ] || fail "pki/issuer.key written for a key in a token"
grep -qx "issuer_pkcs11_uri = $URI" "$D/moat.conf" || fail "moat.conf lacks the URI"
grep -qx "issuer_pin_file = $T/pin" "$D/moat.conf" || fail "moat.conf lacks the PIN file"
grep -qx "pkcs11_module = $P11_MODULE" "$D/moat.conf" || fail "moat.conf lacks the module"
grep -rqF "$P11_PIN" "$D" && fail "the PIN was written into the deployment"
token_pubkey moat issuer "$T/issuer.pub"
cmp -s <(openssl x509 -in "$D/pki/issuer.crt" -pubkey -noout | openssl pkey -pubin -outform DER) \
	<(openssl pkey -pubin -in "$T/issuer.pub" -outform DER) ||
	fail "pki/issuer.crt does not certify the token's key"
openssl verify -CAfile "$D/pki/ca.crt" "$D/pki/issuer.crt" >/dev/null || fail "issuer.crt not under the root"
openssl verify -CAfile "$D/pki/ca.crt" -untrusted "$D/pki/issuer.crt" "$D/pki/server.crt" >/dev/null ||
	fail "server.crt does not verify"
pass "issuing CA certifies the token's key; no key file"

# ---- issuance, revocation and CRLs through the token, no CA passphrase ----
unset MOAT_CA_PASSPHRASE
expect_ok "device add signs in the token" moat device add dev1 --type temp_sensor
expect_ok "bulk add signs in the token" moat device add --prefix bulk --count 20 --type temp_sensor
C="$D/pki/identities/dev1/cert.pem"
expect_ok "openssl verify dev1 against the root" openssl verify -CAfile "$D/pki/ca.crt" \
	-untrusted "$D/pki/issuer.crt" "$C"
openssl verify -CAfile "$D/pki/ca.crt" -untrusted "$D/pki/issuer.crt" \
	"$D/pki/identities/bulk-000020/cert.pem" >/dev/null || fail "bulk-0019 does not verify"
[ "$(openssl x509 -in "$C" -noout -issuer)" = "$(openssl x509 -in "$D/pki/issuer.crt" -noout -subject | sed 's/^subject/issuer/')" ] ||
	fail "dev1 not issued by the issuing CA"
expect_ok "revoke dev1" moat device revoke dev1 --reason key-compromise
expect_ok "CRL signed in the token verifies" openssl crl -in "$D/pki/crl.pem" \
	-CAfile "$D/pki/issuer.crt" -noout
assert_contains "$errout" "verify OK"
expect_fail "revoked dev1 refused by openssl with the CRL" openssl verify -crl_check \
	-CAfile "$D/pki/ca.crt" -untrusted "$D/pki/issuer.crt" -CRLfile "$D/pki/crl.pem" "$C"
assert_contains "$out$errout" "certificate revoked"
expect_ok "moat cert crl re-signs in the token" moat cert crl
openssl crl -in "$D/pki/crl.pem" -CAfile "$D/pki/issuer.crt" -noout 2>&1 | qgrep "verify OK" ||
	fail "re-signed CRL does not verify"
openssl verify -crl_check -CAfile "$D/pki/ca.crt" -untrusted "$D/pki/issuer.crt" \
	-CRLfile "$D/pki/crl.pem" "$D/pki/identities/bulk-000001/cert.pem" >/dev/null ||
	fail "an unrevoked device fails the CRL check"
token_key_locked moat issuer
pass "issued, revoked and CRL re-signed through the token without the passphrase"

# ---- a firmware key in the same token, its module from moat.conf ----
expect_ok "fw key add" moat fw key add --pkcs11-uri "pkcs11:token=moat;object=fw" --pin-file "$T/pin"
head -c 65536 /dev/urandom >"$T/image.bin"
expect_ok "fw sign in the token" moat fw sign "$T/image.bin" --type temp_sensor --version 1.0.0 \
	--security-version 1 --pin-file "$T/pin" --out "$T/fw.json"
expect_ok "device accepts the image" moat fw verify "$T/image.bin" "$T/fw.json" \
	--device-type temp_sensor
pass "firmware signed in the token, accepted"

# ---- refusals once running: one line, nothing issued ----
n=$(moat device list | wc -l)
cp "$T/pin" "$T/pin.good"
cp "$T/wrong.pin" "$T/pin"
expect_fail "wrong PIN in the PIN file" moat device add dev2 --type temp_sensor
assert_contains "$errout" "token 'moat': wrong PIN"
one_line "wrong PIN in the PIN file"
chmod 644 "$T/pin" && cp "$T/pin.good" "$T/pin"
expect_fail "PIN file readable by others" moat device add dev2 --type temp_sensor
assert_contains "$errout" "readable by others"
chmod 600 "$T/pin"
conf_uri() { sed -i "s|^issuer_pkcs11_uri = .*|issuer_pkcs11_uri = $1|" "$D/moat.conf"; }
conf_uri "pkcs11:token=gone;object=issuer"
expect_fail "token gone" moat device add dev2 --type temp_sensor
assert_contains "$errout" "no initialized token matches token=gone"
one_line "token gone"
conf_uri "pkcs11:token=moat;object=other"
expect_fail "another key than the certificate's" moat device add dev2 --type temp_sensor
assert_contains "$errout" "is not $D/pki/issuer.crt's"
one_line "another key than the certificate's"
conf_uri "pkcs11:token=moat;object=issuer;bad"
expect_fail "bad URI in moat.conf" moat device add dev2 --type temp_sensor
assert_contains "$errout" "[pki] issuer_pkcs11_uri: pkcs11 URI: bad has no '=value'"
one_line "bad URI in moat.conf"
conf_uri "$URI"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$D/pki/issuer.key" 2>/dev/null
chmod 600 "$D/pki/issuer.key"
expect_fail "issuer.key beside a token key" moat device add dev2 --type temp_sensor
assert_contains "$errout" "remove one of them"
rm "$D/pki/issuer.key"
[ "$(moat device list | wc -l)" = "$n" ] || fail "a refused add issued something"
expect_ok "works again" moat device add dev2 --type temp_sensor
pass "token refusals are one clear line each, nothing issued"

# ---- moat ca issuer create --pkcs11-uri on a single-tier deployment ----
token_keygen moat issuer2 04
export MOAT_CA_PASSPHRASE="e2e-test-passphrase"
D2="$T/d2"
moat init --dir "$D2" --name e2e2 --broker-port "$(free_port)" --server-port "$(free_port)" \
	--single-tier >/dev/null
export MOAT_DIR="$D2"
expect_ok "single-tier device" moat device add old1 --type temp_sensor
cp "$D2/moat.conf" "$T/conf.before"
expect_fail "issuer create: missing object" moat ca issuer create \
	--pkcs11-uri "pkcs11:token=moat;object=absent" "${M[@]}" --pin-file "$T/pin"
assert_contains "$errout" "no private key object=absent"
cmp -s "$D2/moat.conf" "$T/conf.before" || fail "a refused issuer create changed moat.conf"
[ ! -e "$D2/pki/issuer.crt" ] || fail "a refused issuer create left pki/issuer.crt"
expect_ok "issuer create in the token" moat ca issuer create \
	--pkcs11-uri "pkcs11:token=moat;object=issuer2" "${M[@]}" --pin-file "$T/pin"
[ ! -e "$D2/pki/issuer.key" ] || fail "pki/issuer.key written for a key in a token"
grep -qx "issuer_pkcs11_uri = pkcs11:token=moat;object=issuer2" "$D2/moat.conf" ||
	fail "moat.conf lacks the URI"
unset MOAT_CA_PASSPHRASE
expect_ok "device under the token's issuing CA" moat device add new1 --type temp_sensor
openssl verify -CAfile "$D2/pki/ca.crt" -untrusted "$D2/pki/issuer.crt" \
	"$D2/pki/identities/new1/cert.pem" >/dev/null || fail "new1 does not verify"
openssl verify -CAfile "$D2/pki/ca.crt" "$D2/pki/identities/old1/cert.pem" >/dev/null ||
	fail "old1 (root-signed) no longer verifies"
export MOAT_CA_PASSPHRASE="e2e-test-passphrase"
expect_ok "rotate a token issuing CA to a key file" moat ca issuer rotate
[ -f "$D2/pki/issuer.key" ] || fail "rotation to a key file wrote no pki/issuer.key"
grep -q "^issuer_pkcs11_uri" "$D2/moat.conf" && fail "moat.conf still names the token key"
[ -f "$D2/pki/retired/issuer-1.pkcs11" ] || fail "the retired token key's URI is not recorded"
unset MOAT_CA_PASSPHRASE
expect_ok "revoke new1 (retired token CA) without the passphrase" moat device revoke new1
export MOAT_CA_PASSPHRASE="e2e-test-passphrase"
cp "$D2/moat.conf" "$T/conf.before"
expect_fail "rotate: PIN file named twice" moat ca issuer rotate \
	--pkcs11-uri "pkcs11:token=moat;object=other" --pin-file "$T/pin"
assert_contains "$errout" "issuer_pin_file already"
cmp -s "$D2/moat.conf" "$T/conf.before" || fail "a refused rotation changed moat.conf"
# the retired CA's key leaves the token: its CRL cannot be signed, and moat names the record
p11 moat --delete-object --type privkey --label issuer2 >/dev/null 2>&1 || fail "deleting issuer2"
expect_fail "CRL without the retired token key" env -u MOAT_CA_PASSPHRASE moat cert crl
assert_contains "$errout" "pki/retired/issuer-1.pkcs11"
assert_contains "$errout" "no private key object=issuer2"
pass "moat ca issuer create --pkcs11-uri: issuing CA in the token"
