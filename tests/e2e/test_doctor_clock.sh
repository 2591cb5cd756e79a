#!/usr/bin/env bash
# test_doctor_clock.sh: `moat doctor` on what a clock and the firmware trust list decide, each
# produced for real in a deployment (no broker needed): a device certificate issued by moat
# under a clock 3 days behind for 1 day (expired) and one issued under a clock 2 days ahead
# (not yet valid), both by faketime; --envelope with a release whose manifest expired
# (signed under a clock 2 days behind for 1 day), one signed by a key the trust list no
# longer holds (moat fw key revoke) and one signed by 1 key when the trust list requires 2.
# Each refusal is checked for its words and values, in text and --json.
source "$(dirname "$0")/lib.sh"
command -v faketime >/dev/null || fail "faketime is not installed (scripts/bootstrap)"
e2e_init
export MOAT_FW_PASSPHRASE="fw-e2e-signing-passphrase"
# libfaketime is preloaded: under ASan the sanitizer runtime is then not first in the list
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

# doctor_expect RC CODE WORDS ARGS...: `moat doctor ARGS` exits RC, names problem CODE and
# says WORDS.
doctor_expect() {
	local want=$1 code=$2 words=$3
	shift 3
	run_captured moat doctor "$@"
	[ "$run_rc" -eq "$want" ] || fail "moat doctor $*: exit $run_rc, not $want: $out $errout"
	[ -z "$code" ] || assert_contains "$out" "[$code]"
	assert_contains "$out" "$words"
}
# iso CERT FIELD: the certificate's -startdate or -enddate as moat writes times
iso() { date -u -d "$(openssl x509 -noout "-$2" -in "$1" | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ; }

# ---- moat doctor DEVICE: expired and not yet valid ----
faketime -f '-3d' moat device add dev-old --days 1 >/dev/null
faketime -f '+2d' moat device add dev-future >/dev/null
I="$D/pki/identities"
old_end=$(iso "$I/dev-old/cert.pem" enddate)
future_start=$(iso "$I/dev-future/cert.pem" startdate)
[ "$(date -u -d "$old_end" +%s)" -lt "$(date +%s)" ] || fail "dev-old's certificate is not expired: $old_end"
[ "$(date -u -d "$future_start" +%s)" -gt "$(date +%s)" ] || fail "dev-future's certificate is valid: $future_start"
doctor_expect 1 expired "its certificate expired at $old_end (this host's clock says 20" dev-old
assert_contains "$out" "a clock that is ahead makes a valid certificate look expired): moat device renew dev-old"
doctor_expect 1 not_yet_valid "its certificate is not valid before $future_start: this host's clock (20" dev-future
assert_contains "$out" "is behind, or the certificate was issued by a host whose clock is ahead"
run_captured moat --json doctor dev-future
printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["healthy"] is False and [p["code"] for p in d["problems"]] == ["not_yet_valid"], d
' || fail "--json: $out"
moat device add dev-now >/dev/null
doctor_expect 0 "" "no problem found" dev-now
pass "certificates issued under a clock behind (expired) and ahead (not yet valid): named with their times"

# ---- moat doctor --envelope: expired, unknown key, below the threshold ----
k1=$(moat fw keygen 2>/dev/null)
k2=$(moat fw keygen 2>/dev/null)
head -c 5000 /dev/urandom >"$T/fw.bin"
S=(--type generic --version 1.0.0 --security-version 1)
moat fw sign "$T/fw.bin" "${S[@]}" --key "$k1" --out "$T/one.json" 2>/dev/null
moat fw sign "$T/fw.bin" "${S[@]}" --key "$k2" --out "$T/other.json" 2>/dev/null
faketime -f '-2d' moat fw sign "$T/fw.bin" "${S[@]}" --expires 1d --out "$T/expired.json" 2>/dev/null
E=(--image "$T/fw.bin" --device-type generic --floor 0)
doctor_expect 0 "" "accepted: version 1.0.0" --envelope "$T/one.json" "${E[@]}"

exp_at=$(python3 -c '
import json, sys, base64, time
e = json.load(open(sys.argv[1]))
m = json.loads(base64.b64decode(e["payload"]))
print(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(m["expires_at"])))
' "$T/expired.json")
doctor_expect 1 expired "the manifest has expired (or the device's clock is ahead)" --envelope "$T/expired.json" "${E[@]}"
assert_contains "$out" "it expired at $exp_at and this host's clock says 20"
assert_contains "$out" "sign the release again"
pass "an expired release: named, with its expiry and this host's clock"

moat fw trust --threshold 2 >/dev/null 2>&1
doctor_expect 1 threshold "fewer valid signatures by trusted keys than the trust list's threshold" \
	--envelope "$T/one.json" "${E[@]}"
assert_contains "$out" "1 valid signature by distinct trusted keys, 2 required"
assert_contains "$out" "signed by key ${k1:0:16}: in the trust list"
assert_contains "$out" "it carries signatures by 1 trusted key(s) and the trust list requires 2"
pass "an envelope below the trust list's threshold: 1 signature of 2 required, the key named"

moat fw key revoke "$k2" --threshold 1 >/dev/null 2>&1
doctor_expect 1 unknown_key "no signature by a key in the device's trust list" --envelope "$T/other.json" "${E[@]}"
assert_contains "$out" "signed by key ${k2:0:16}: NOT in the trust list"
assert_contains "$out" "none of its 1 signing key(s) is among the 1 key(s) of $D/firmware/keys/trust.json"
run_captured moat --json doctor --envelope "$T/other.json" "${E[@]}"
printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert [p["code"] for p in d["problems"]] == ["unknown_key"], d
assert any(f.startswith("signed by key " + sys.argv[1][:16] + ": NOT") for f in d["facts"]), d
' "$k2" || fail "--json: $out"
doctor_expect 0 "" "accepted" --envelope "$T/one.json" "${E[@]}"
pass "an envelope signed by a key the trust list no longer holds: the key named (text and JSON)"
