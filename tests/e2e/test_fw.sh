#!/usr/bin/env bash
# test_fw.sh: `moat fw` end to end: two signing keys encrypted at rest, threshold 2, sign,
# verify accept, then every refusal a device makes, through the CLI: tampering, unknown
# key, threshold, duplicate signatures, freeze, rollback, downgrade, mix-and-match, not
# newer, malformed envelopes, image size and hash; then key rotation and revocation.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fw.sh"

e2e_init
export MOAT_FW_PASSPHRASE="fw-e2e-signing-passphrase"
K="$D/firmware/keys"

# ---- keys ----
expect_fail "unknown key type" moat fw keygen --type rsa-1024
expect_fail "no deployment" moat --dir "$T/nowhere" fw keygen
expect_ok "keygen ec-p256" moat fw keygen --type ec-p256
A=$out
expect_ok "keygen ed25519" moat fw keygen --type ed25519
B=$out
[ ${#A} -eq 64 ] && [ ${#B} -eq 64 ] || fail "key ids: '$A' '$B'"
[ "$(mode_of "$K/$A.key")" = 600 ] || fail "private key mode $(mode_of "$K/$A.key")"
grep -q "BEGIN ENCRYPTED PRIVATE KEY" "$K/$A.key" || fail "key not encrypted at rest"
# Interoperable PKCS#8 (scrypt + AES-256-CBC): OpenSSL opens it with the passphrase only.
openssl pkey -in "$K/$A.key" -passin env:MOAT_FW_PASSPHRASE -noout || fail "openssl cannot open the key"
openssl pkey -in "$K/$B.key" -passin pass:wrong-passphrase -noout 2>/dev/null && fail "opened with a wrong passphrase"
openssl asn1parse -in "$K/$A.key" | qgrep scrypt || fail "key not under scrypt"
# The key id is the SHA-256 of the SubjectPublicKeyInfo.
kid=$(openssl pkey -pubin -in "$K/$A.pub" -outform DER | sha256sum | cut -d' ' -f1)
[ "$kid" = "$A" ] || fail "key id $A is not sha256(SPKI) $kid"
pass "keys encrypted at rest, ids are sha256(SPKI)"

expect_fail "threshold above key count" moat fw trust --threshold 3
expect_fail "threshold 0" moat fw trust --threshold 0
expect_ok "threshold 2" moat fw trust --threshold 2
assert_contains "$out" "threshold 2 of 2"

# ---- sign and accept ----
head -c 1048576 /dev/urandom > "$T/image.bin"
expect_ok "sign with both keys" moat fw sign "$T/image.bin" --type temp_sensor --version 1.2.0 \
	--security-version 3 --expires 30d --out "$T/env.json"
expect_ok "sign with key A only" moat fw sign "$T/image.bin" --type temp_sensor --version 1.2.0 \
	--security-version 3 --key "${A:0:12}" --out "$T/one.json"
assert_contains "$errout" "requires 2"
expect_fail "wrong key passphrase" env MOAT_FW_PASSPHRASE=not-the-passphrase \
	moat fw sign "$T/image.bin" --type temp_sensor --version 1.2.0 --security-version 3
assert_contains "$errout" "wrong passphrase"
assert_not_contains "$errout" "not-the-passphrase"
expect_fail "sign: bad version" moat fw sign "$T/image.bin" --type temp_sensor --version 1.2 \
	--security-version 3
expect_fail "sign: bad device type" moat fw sign "$T/image.bin" --type "Temp Sensor" \
	--version 1.2.0 --security-version 3
expect_fail "sign: negative security version" moat fw sign "$T/image.bin" --type temp_sensor \
	--version 1.2.0 --security-version -1
expect_fail "sign: unknown key" moat fw sign "$T/image.bin" --type temp_sensor --version 1.2.0 \
	--security-version 3 --key 0123456789abcdef
expect_fail "sign: missing image" moat fw sign "$T/missing.bin" --type temp_sensor \
	--version 1.2.0 --security-version 3 --out "$T/never.json"
[ ! -e "$T/never.json" ] || fail "an envelope was written for a missing image"

V="moat fw verify $T/image.bin"
POLICY=(--device-type temp_sensor --floor 2 --current-version 1.1.0)
expect_ok "verify: accept" $V "$T/env.json" "${POLICY[@]}"
assert_contains "$out" "accept:"
assert_contains "$out" "2 of 2"
expect_ok "verify: accept (json)" moat --json fw verify "$T/image.bin" "$T/env.json" "${POLICY[@]}"
assert_contains "$out" '"verdict":"accept"'
[ "$(manifest_field "$T/env.json" size)" = 1048576 ] || fail "manifest size"
[ "$(manifest_field "$T/env.json" sha256)" = "$(sha256sum "$T/image.bin" | cut -d' ' -f1)" ] ||
	fail "manifest sha256"
issued=$(manifest_field "$T/env.json" issued_at)
expires=$(manifest_field "$T/env.json" expires_at)
[ $((expires - issued)) -eq $((30 * 86400)) ] || fail "--expires 30d gave $((expires - issued)) s"

# ---- refusals, one per rule ----
expect_refused threshold $V "$T/one.json" "${POLICY[@]}"

env_edit "$T/env.json" "$T/tampered.json" 'p["size"] = 2048; set_payload(p)'
expect_refused bad_signature $V "$T/tampered.json" "${POLICY[@]}"
env_edit "$T/env.json" "$T/tampered2.json" 'p["security_version"] = 9; set_payload(p)'
expect_refused bad_signature $V "$T/tampered2.json" "${POLICY[@]}"

env_edit "$T/env.json" "$T/dup.json" 'e["signatures"] = [e["signatures"][0], e["signatures"][0]]'
expect_refused threshold $V "$T/dup.json" "${POLICY[@]}"

# A key from another deployment is unknown here.
D2="$T/other"
moat init --dir "$D2" --name other --broker-port "$(free_port)" --server-port "$(free_port)" >/dev/null
moat --dir "$D2" fw keygen >/dev/null 2>&1
moat --dir "$D2" fw sign "$T/image.bin" --type temp_sensor --version 1.2.0 --security-version 3 \
	--out "$T/foreign.json" 2>/dev/null
expect_refused unknown_key $V "$T/foreign.json" "${POLICY[@]}"
expect_ok "the other deployment accepts its own" $V "$T/foreign.json" "${POLICY[@]}" \
	--trust "$D2/firmware/keys/trust.json"

env_edit "$T/env.json" "$T/ptype.json" 'e["payloadType"] = "application/json"'
expect_refused bad_payload_type $V "$T/ptype.json" "${POLICY[@]}"

expect_refused expired $V "$T/env.json" "${POLICY[@]}" --now "$expires"
expect_refused rollback $V "$T/env.json" "${POLICY[@]}" --last-issued-at $((issued + 1))
expect_ok "same issue time is not a rollback" $V "$T/env.json" "${POLICY[@]}" --last-issued-at "$issued"
expect_refused downgrade $V "$T/env.json" --device-type temp_sensor --floor 4
expect_refused wrong_type $V "$T/env.json" --device-type door_lock
expect_refused not_newer $V "$T/env.json" --device-type temp_sensor --current-version 1.2.0
expect_refused not_newer $V "$T/env.json" --device-type temp_sensor --current-version 1.10.0
expect_ok "newer than a pre-release" $V "$T/env.json" --device-type temp_sensor --current-version 1.2.0-rc.1
# Booting an installed image ignores age and "newer", never type or floor.
expect_ok "boot: expired and not newer still boots" $V "$T/env.json" --boot \
	--device-type temp_sensor --current-version 1.2.0 --now $((expires + 86400))
expect_refused downgrade $V "$T/env.json" --boot --device-type temp_sensor --floor 4

# Malformed envelopes.
env_edit "$T/env.json" "$T/b64.json" 'e["payload"] = e["payload"] + "A"'
expect_refused malformed $V "$T/b64.json" "${POLICY[@]}"
# Non-canonical base64 of the same bytes: the last character's unused bits set.
env_edit "$T/env.json" "$T/b64nc.json" '
s = e["signatures"][0]["sig"]
alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
pad = len(s) - len(s.rstrip("="))
if pad == 0:
    s = s[:-4] + "ZZ=="  # force a padded group that is not canonical
else:
    i = len(s) - pad - 1
    s = s[:i] + alpha[alpha.index(s[i]) | 1] + s[i + 1:]
e["signatures"][0]["sig"] = s'
expect_refused malformed $V "$T/b64nc.json" "${POLICY[@]}"
assert_contains "$errout" "canonical base64"
env_edit "$T/env.json" "$T/unknown.json" 'e["comment"] = "x"'
expect_refused malformed $V "$T/unknown.json" "${POLICY[@]}"
assert_contains "$errout" "unknown field 'comment'"
env_edit "$T/env.json" "$T/missing.json" 'del e["signatures"]'
expect_refused malformed $V "$T/missing.json" "${POLICY[@]}"
assert_contains "$errout" "missing field 'signatures'"
env_edit "$T/env.json" "$T/dupfield.json" '
import json as j
raw = j.dumps(e)[:-1] + ", \"payload\": " + j.dumps(e["payload"]) + "}"'
expect_refused malformed $V "$T/dupfield.json" "${POLICY[@]}"
assert_contains "$errout" "duplicate field 'payload'"
env_edit "$T/env.json" "$T/big.json" 'raw = json.dumps(e) + " " * 40000'
expect_fail "oversize envelope" $V "$T/big.json" "${POLICY[@]}"
assert_contains "$errout" "larger than"

# The image: changed, short, long.
cp "$T/image.bin" "$T/orig.bin"
flip_byte "$T/image.bin" 4096
expect_refused hash_mismatch $V "$T/env.json" "${POLICY[@]}"
head -c 1048575 "$T/orig.bin" > "$T/image.bin"
expect_refused size_mismatch $V "$T/env.json" "${POLICY[@]}"
{ cat "$T/orig.bin"; printf x; } > "$T/image.bin"
expect_refused size_mismatch $V "$T/env.json" "${POLICY[@]}"
cp "$T/orig.bin" "$T/image.bin"
expect_ok "original image accepted again" $V "$T/env.json" "${POLICY[@]}"

# A missing file is said to be missing, not judged as an image.
expect_fail "verify: missing image" $V.missing "$T/env.json" "${POLICY[@]}"
assert_contains "$errout" "image $T/image.bin.missing: No such file"
assert_not_contains "$errout" "size_mismatch"
expect_fail "verify: missing envelope" $V "$T/nope.json" "${POLICY[@]}"
assert_contains "$errout" "envelope $T/nope.json: No such file"

# ---- help names every subcommand ----
expect_ok "fw --help" moat fw --help
for sub in keygen trust "key revoke" "key add" sign verify publish list status; do
	assert_contains "$out" "  $sub "
done

# ---- rotation and revocation ----
# 2-of-2 never silently becomes 1-of-1: revoking A is refused until the operator lowers the
# threshold explicitly; nothing changes meanwhile.
cp "$K/trust.json" "$T/trust.before"
expect_fail "revoke A under threshold 2" moat fw key revoke "${A:0:16}"
assert_contains "$errout" "would leave 1 key for a threshold of 2"
assert_contains "$errout" "--threshold 1"
[ "$(printf "%s\n" "$errout" | wc -l)" -eq 1 ] || fail "revoke refused: not one line: $errout"
cmp -s "$K/trust.json" "$T/trust.before" || fail "a refused revoke changed trust.json"
[ -e "$K/$A.key" ] || fail "a refused revoke moved A's key"
expect_fail "revoke A with a threshold above the keys left" moat fw key revoke "${A:0:16}" \
	--threshold 2
expect_ok "revoke A, threshold lowered explicitly" moat fw key revoke "${A:0:16}" --threshold 1
assert_contains "$out" "threshold now 1"
[ -e "$K/revoked/$A.key" ] && [ ! -e "$K/$A.key" ] || fail "A's key not moved to revoked/"
expect_refused unknown_key $V "$T/one.json" "${POLICY[@]}"
expect_ok "B's signature alone meets the new threshold" $V "$T/env.json" "${POLICY[@]}"
expect_fail "sign with a revoked key" moat fw sign "$T/image.bin" --type temp_sensor \
	--version 1.3.0 --security-version 3 --key "$A"
expect_fail "revoke the last key" moat fw key revoke "$B"
assert_contains "$errout" "last trusted key"
expect_ok "keygen a replacement" moat fw keygen --type rsa-3072
C=$out
expect_ok "revoke B after its replacement exists" moat fw key revoke "$B"
expect_ok "sign 1.3.0 with the new key" moat fw sign "$T/image.bin" --type temp_sensor \
	--version 1.3.0 --security-version 4 --out "$T/env3.json"
expect_ok "verify 1.3.0" $V "$T/env3.json" --device-type temp_sensor --floor 3 --current-version 1.2.0
expect_refused unknown_key $V "$T/env.json" "${POLICY[@]}"
expect_ok "trust list shows only C" moat fw trust
assert_contains "$out" "$C"
assert_not_contains "$out" "$A"
assert_not_contains "$out" "$B"
pass "fw e2e"
