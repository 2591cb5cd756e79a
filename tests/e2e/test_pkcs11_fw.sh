#!/usr/bin/env bash
# test_pkcs11_fw.sh: firmware signing keys in a PKCS#11 token (SoftHSM2, made by the test).
# `moat fw key add --pkcs11-uri` trusts the token's key, `moat fw sign --key-uri` and
# `--key KEYID` sign through the token, the device's verifier (`moat fw verify`, moat-boot's
# code) accepts the image, and the key never left the token. Refusals, one line each: wrong
# PIN, no PIN, PIN file readable by others, missing token, missing object, URI syntax, a
# PIN in the URI, no module, a module that does not load, an untrusted token key, a key
# added twice, a trusted key replaced in the token.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fw.sh"
source "$(dirname "$0")/lib_pkcs11.sh"

e2e_init
K="$D/firmware/keys"
token_init moat spare
token_keygen moat fw1 01
token_keygen moat fw2 02
token_keygen moat rogue 03
token_key_locked moat fw1
unset MOAT_PKCS11_PIN
URI="pkcs11:token=moat;object=fw1;type=private"

# ---- trust a token key ----
expect_ok "fw key add from the token" moat fw key add --pkcs11-uri "$URI" \
	--pkcs11-module "$P11_MODULE" --pin-file "$T/pin"
A=$out
[ ${#A} -eq 64 ] || fail "key id '$A'"
[ -f "$K/$A.uri" ] && [ -f "$K/$A.pub" ] || fail "no $A.uri/.pub in $K"
[ ! -e "$K/$A.key" ] || fail "a private key file was written for a token key"
[ "$(mode_of "$K/$A.uri")" = 600 ] || fail "uri file mode $(mode_of "$K/$A.uri")"
assert_contains "$(cat "$K/$A.uri")" "module-path=$P11_MODULE"
assert_not_contains "$(cat "$K/$A.uri")" "$P11_PIN"
grep -rqF "$P11_PIN" "$D" && fail "the PIN was written into the deployment"
# The recorded public key is the token's own, and the key id its SPKI's SHA-256.
token_pubkey moat fw1 "$T/fw1.pub"
cmp -s <(openssl pkey -pubin -in "$T/fw1.pub" -outform DER) \
	<(openssl pkey -pubin -in "$K/$A.pub" -outform DER) || fail "$A.pub is not the token's key"
[ "$(openssl pkey -pubin -in "$T/fw1.pub" -outform DER | sha256sum | cut -d' ' -f1)" = "$A" ] ||
	fail "key id is not sha256(SPKI) of the token's key"
expect_ok "trust list" moat fw trust
assert_contains "$out" "$A  ec-p256  (in a PKCS#11 token)"
pass "token key trusted by its public half only"

# ---- sign through the token, verify as a device ----
head -c 300000 /dev/urandom >"$T/image.bin"
export MOAT_PKCS11_PIN="$P11_PIN"
expect_ok "fw sign --key (recorded URI, PIN from the environment)" moat fw sign "$T/image.bin" \
	--type temp_sensor --version 1.0.0 --security-version 1 --key "${A:0:12}" --out "$T/e1.json"
expect_ok "device accepts" moat fw verify "$T/image.bin" "$T/e1.json" --device-type temp_sensor
assert_contains "$out" "accept"
expect_ok "fw sign (every key here, token included)" moat fw sign "$T/image.bin" \
	--type temp_sensor --version 1.0.1 --security-version 1 --out "$T/e2.json"
expect_ok "device accepts" moat fw verify "$T/image.bin" "$T/e2.json" --device-type temp_sensor
unset MOAT_PKCS11_PIN
expect_ok "fw sign --key-uri, PIN file" moat fw sign "$T/image.bin" --type temp_sensor \
	--version 1.0.2 --security-version 1 --key-uri "$URI" --pkcs11-module "$P11_MODULE" \
	--pin-file "$T/pin" --out "$T/e3.json"
expect_ok "device accepts" moat fw verify "$T/image.bin" "$T/e3.json" --device-type temp_sensor
# The signature is the token key's: OpenSSL checks it over DSSE's PAE with the token's
# public key alone.
python3 - "$T/e3.json" "$T/pae.bin" "$T/sig.der" "$A" <<'PY'
import base64, json, sys
e = json.load(open(sys.argv[1]))
p = base64.b64decode(e["payload"])
t = e["payloadType"].encode()
open(sys.argv[2], "wb").write(b"DSSEv1 %d %s %d %s" % (len(t), t, len(p), p))
[s] = e["signatures"]
assert s["keyid"] == sys.argv[4], s["keyid"]
open(sys.argv[3], "wb").write(base64.b64decode(s["sig"]))
PY
openssl dgst -sha256 -verify "$T/fw1.pub" -signature "$T/sig.der" "$T/pae.bin" >/dev/null ||
	fail "openssl does not verify the token's signature"
# moat-boot's check (the boot purpose of the same verifier) accepts it too.
expect_ok "device accepts for boot" moat fw verify "$T/image.bin" "$T/e3.json" \
	--device-type temp_sensor --boot
# Tampering after signing is still caught.
env_edit "$T/e3.json" "$T/bad.json" 'p["security_version"] = 9; set_payload(p)'
expect_refused bad_signature moat fw verify "$T/image.bin" "$T/bad.json" --device-type temp_sensor
token_key_locked moat fw1
pass "signed in the token, accepted by the device's verifier"

# ---- a second token key, its module from moat.conf: threshold 2 ----
expect_fail "no module anywhere" moat fw key add --pkcs11-uri "pkcs11:token=moat;id=%02" \
	--pin-file "$T/pin"
assert_contains "$errout" "no PKCS#11 module: give its path"
sed -i "s|^\[pki\]\$|[pki]\npkcs11_module = $P11_MODULE|" "$D/moat.conf"
grep -qx "pkcs11_module = $P11_MODULE" "$D/moat.conf" || fail "moat.conf edit"
expect_ok "second token key, module from moat.conf" moat fw key add \
	--pkcs11-uri "pkcs11:token=moat;id=%02" --pin-file "$T/pin"
B=$out
assert_not_contains "$(cat "$K/$B.uri")" "module-path"
expect_ok "threshold 2" moat fw trust --threshold 2
expect_ok "sign with both token keys" env MOAT_PKCS11_PIN="$P11_PIN" moat fw sign "$T/image.bin" \
	--type temp_sensor --version 1.1.0 --security-version 2 --out "$T/e4.json"
expect_ok "device accepts two token signatures" moat fw verify "$T/image.bin" "$T/e4.json" \
	--device-type temp_sensor
expect_ok "sign with one" env MOAT_PKCS11_PIN="$P11_PIN" moat fw sign "$T/image.bin" \
	--type temp_sensor --version 1.1.1 --security-version 2 --key "${B:0:12}" --out "$T/e5.json"
expect_refused threshold moat fw verify "$T/image.bin" "$T/e5.json" --device-type temp_sensor

# ---- refusals ----
SIGN=(moat fw sign "$T/image.bin" --type temp_sensor --version 2.0.0 --security-version 2
	--out "$T/never.json")
one_line() { [ "$(printf '%s\n' "$errout" | wc -l)" -eq 1 ] || fail "$1: not one line: $errout"; }
printf 'not-the-pin\n' >"$T/wrong.pin"
chmod 600 "$T/wrong.pin"
expect_fail "wrong PIN" "${SIGN[@]}" --key "${A:0:12}" --pin-file "$T/wrong.pin"
assert_contains "$errout" "token 'moat': wrong PIN"
assert_not_contains "$errout" "not-the-pin"
one_line "wrong PIN"
expect_fail "no PIN" "${SIGN[@]}" --key "${A:0:12}"
assert_contains "$errout" "needs a PIN"
one_line "no PIN"
chmod 644 "$T/wrong.pin"
expect_fail "PIN file readable by others" "${SIGN[@]}" --key "${A:0:12}" --pin-file "$T/wrong.pin"
assert_contains "$errout" "readable by others"
export MOAT_PKCS11_PIN="$P11_PIN"
expect_fail "missing token" "${SIGN[@]}" --key-uri "pkcs11:token=absent;object=fw1"
assert_contains "$errout" "no initialized token matches token=absent"
one_line "missing token"
expect_fail "missing object" "${SIGN[@]}" --key-uri "pkcs11:token=moat;object=nothing"
assert_contains "$errout" "no private key object=nothing"
one_line "missing object"
expect_fail "URI syntax" "${SIGN[@]}" --key-uri "pkcs11:token=moat;object=fw 1"
assert_contains "$errout" "must be percent-encoded"
one_line "URI syntax"
expect_fail "not a pkcs11 URI" moat fw key add --pkcs11-uri "file:///etc/key.pem"
assert_contains "$errout" "must start with 'pkcs11:'"
expect_fail "PIN in the URI" moat fw key add --pkcs11-uri "pkcs11:token=moat;object=fw1?pin-value=$P11_PIN"
assert_contains "$errout" "pin-value refused"
expect_fail "unknown attribute" "${SIGN[@]}" --key-uri "pkcs11:token=moat;label=fw1"
assert_contains "$errout" "unknown path attribute 'label'"
expect_fail "untrusted token key" "${SIGN[@]}" --key-uri "pkcs11:token=moat;object=rogue"
assert_contains "$errout" "is not in the trust list"
expect_fail "key in the wrong token" "${SIGN[@]}" --key-uri "pkcs11:token=spare;object=fw1"
assert_contains "$errout" "token 'spare': no private key object=fw1"
expect_fail "module that does not load" "${SIGN[@]}" --key-uri "$URI" \
	--pkcs11-module "$T/no-such-module.so"
assert_contains "$errout" "no-such-module.so: does not load (cannot open shared object file"
one_line "module that does not load"
expect_fail "not a PKCS#11 module" "${SIGN[@]}" --key-uri "pkcs11:token=moat;object=fw2" \
	--pkcs11-module "$(ls /usr/lib/x86_64-linux-gnu/libcrypto.so.3)"
assert_contains "$errout" "not a PKCS#11 module"
one_line "not a PKCS#11 module"
expect_fail "module differs from the recorded one" "${SIGN[@]}" --key "${A:0:12}" \
	--pkcs11-module /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so
assert_contains "$errout" "differs from the URI's module-path"
expect_fail "key added twice" moat fw key add --pkcs11-uri "$URI"
assert_contains "$errout" "already trusted"
# The key behind a recorded URI is replaced in the token (same label, same id): moat signs
# with the key it trusted or not at all.
p11 moat --delete-object --type privkey --id 02 >/dev/null 2>&1 || fail "deleting key 02"
p11 moat --delete-object --type pubkey --id 02 >/dev/null 2>&1 || fail "deleting pubkey 02"
token_keygen moat fw2 02
expect_fail "key replaced in the token" "${SIGN[@]}" --key "${B:0:12}"
assert_contains "$errout" "the token holds key"
assert_contains "$errout" "not the trusted ${B:0:16}"
one_line "key replaced in the token"
[ ! -e "$T/never.json" ] || fail "an envelope was written by a refused signing"
n=$(ls "$K" | wc -l)
expect_fail "public-only type" moat fw key add --pkcs11-uri "pkcs11:token=moat;object=rogue;type=public"
assert_contains "$errout" "type=private"
[ "$(ls "$K" | wc -l)" = "$n" ] || fail "a refused key add left files in $K"
unset MOAT_PKCS11_PIN
pass "token refusals are one clear line each"

# ---- a token key revoked like any other ----
expect_ok "revoke token key" moat fw key revoke "${A:0:12}" --threshold 1
[ -f "$K/revoked/$A.uri" ] && [ ! -e "$K/$A.uri" ] || fail "revoked key's uri not moved"
expect_fail "signing with a revoked token key" env MOAT_PKCS11_PIN="$P11_PIN" "${SIGN[@]}" \
	--key-uri "$URI" --pkcs11-module "$P11_MODULE"
assert_contains "$errout" "is not in the trust list"
expect_refused unknown_key moat fw verify "$T/image.bin" "$T/e1.json" --device-type temp_sensor
pass "revoked token key no longer trusted"
