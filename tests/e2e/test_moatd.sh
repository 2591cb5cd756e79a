#!/usr/bin/env bash
# test_moatd.sh: moatd end to end with real TLS: `moat fw publish` and its refusals, then
# the update API as devices see it through curl with their own certificates: the version by
# type and rollout (percentage and device list), downloads with Range and resume, never a
# byte past the release's size, and every refusal: no client certificate, a certificate
# from another CA, a revoked device, a device-id header that differs, unknown digests,
# path traversal, bad ranges. One log line per request.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_moatd.sh"
command -v curl >/dev/null || skip "curl not installed"

e2e_init
export MOAT_FW_PASSPHRASE="fw-e2e-signing-passphrase"
for id in dev1 dev2 dev3 dev4 dev5 dev6 dev7 dev8; do
	moat device add "$id" --type sensor >/dev/null
done
moat device add cam1 --type camera >/dev/null
moat identity add backend-service --role service >/dev/null 2>&1 || true
moat fw keygen >/dev/null 2>&1

sign() { # sign IMAGE TYPE VERSION SECVER OUT
	moat fw sign "$1" --type "$2" --version "$3" --security-version "$4" --out "$5" 2>/dev/null
}
head -c 300000 /dev/urandom >"$T/s1.bin"
head -c 200000 /dev/urandom >"$T/s2.bin"
# Fixed content, so the 50% rollout below splits dev1..dev8 the same way every run.
yes moat-s3 | head -c 123457 >"$T/s3.bin" || true
head -c 5000 /dev/urandom >"$T/c1.bin"
sign "$T/s1.bin" sensor 1.0.0 2 "$T/s1.json"
sign "$T/s2.bin" sensor 1.1.0 2 "$T/s2.json"
sign "$T/s3.bin" sensor 1.2.0 2 "$T/s3.json"
sign "$T/s2.bin" sensor 0.9.0 2 "$T/old.json"
sign "$T/s2.bin" sensor 1.5.0 1 "$T/lowsec.json"
sign "$T/c1.bin" camera 1.0.0 0 "$T/c1.json"
S1=$(sha256sum "$T/s1.bin" | cut -d' ' -f1)
S3=$(sha256sum "$T/s3.bin" | cut -d' ' -f1)
C1=$(sha256sum "$T/c1.bin" | cut -d' ' -f1)

# ---- publish and its refusals ----
head -c 300000 /dev/urandom >"$T/other.bin"
expect_fail "publish: image does not match" moat fw publish "$T/s1.json" "$T/other.bin"
assert_contains "$errout" "refused (hash_mismatch)"
expect_fail "publish: image of another size" moat fw publish "$T/s1.json" "$T/s2.bin"
assert_contains "$errout" "refused (size_mismatch)"
python3 - "$T/s1.json" "$T/tampered.json" <<'PY'
import base64, json, sys
e = json.load(open(sys.argv[1]))
p = json.loads(base64.b64decode(e["payload"]))
p["version"] = "9.9.9"
e["payload"] = base64.b64encode(json.dumps(p, separators=(",", ":")).encode()).decode()
json.dump(e, open(sys.argv[2], "w"))
PY
expect_fail "publish: tampered envelope" moat fw publish "$T/tampered.json" "$T/s1.bin"
assert_contains "$errout" "refused (bad_signature)"
expect_fail "publish: --rollout 101" moat fw publish "$T/s1.json" "$T/s1.bin" --rollout 101
expect_fail "publish: --rollout and --devices" moat fw publish "$T/s1.json" "$T/s1.bin" \
	--rollout 5 --devices dev1
expect_fail "publish: unknown device" moat fw publish "$T/s1.json" "$T/s1.bin" --devices nobody
expect_fail "publish: device of another type" moat fw publish "$T/s1.json" "$T/s1.bin" \
	--devices cam1
expect_fail "publish: missing image" moat fw publish "$T/s1.json" "$T/none.bin"
[ -z "$(moat fw list --json | tr -d '[]\n')" ] || fail "a refused publish left a release"

expect_ok "publish sensor 1.0.0 to everyone" moat fw publish "$T/s1.json" "$T/s1.bin"
assert_contains "$out" "100%"
cmp "$D/firmware/releases/sensor/1.0.0/image.bin" "$T/s1.bin" || fail "image copy differs"
cmp "$D/firmware/releases/sensor/1.0.0/envelope.json" "$T/s1.json" || fail "envelope copy differs"
expect_fail "publish: same release again" moat fw publish "$T/s1.json" "$T/s1.bin"
assert_contains "$errout" "not newer"
expect_fail "publish: older version" moat fw publish "$T/old.json" "$T/s2.bin"
assert_contains "$errout" "not newer"
expect_fail "publish: lower security_version" moat fw publish "$T/lowsec.json" "$T/s2.bin"
assert_contains "$errout" "security_version"
expect_ok "publish sensor 1.1.0 to 0%" moat fw publish "$T/s2.json" "$T/s2.bin" --rollout 0
expect_ok "publish sensor 1.2.0 to 50%" moat fw publish "$T/s3.json" "$T/s3.bin" --rollout 50
expect_ok "publish camera 1.0.0 to cam1" moat fw publish "$T/c1.json" "$T/c1.bin" --devices cam1
expect_ok "fw list" moat fw list
assert_contains "$out" "1.2.0"
assert_contains "$out" "1 device "

# ---- moatd ----
moatd_start

expect_status 200 "version: camera device in the list" cam1 "$(url /api/firmware/version)"
cmp "$T/body" "$T/c1.json" || fail "version body is not the signed envelope"
# Percentage rollout: 1.2.0 to the devices whose bucket is below 50, else 1.0.0 (1.1.0 is
# at 0%: nobody).
in=0
outside=0
rollout_buckets "$S3" dev1 dev2 dev3 dev4 dev5 dev6 dev7 dev8 >"$T/buckets"
while read -r id bucket; do
	expect_status 200 "version for $id" "$id" "$(url /api/firmware/version)"
	if [ "$bucket" -lt 50 ]; then
		cmp -s "$T/body" "$T/s3.json" || fail "$id is in the 50% rollout but did not get 1.2.0"
		in=$((in + 1))
	else
		cmp -s "$T/body" "$T/s1.json" || fail "$id is outside the rollout but did not get 1.0.0"
		outside=$((outside + 1))
	fi
done <"$T/buckets"
[ "$in" -gt 0 ] && [ "$outside" -gt 0 ] || fail "the test devices do not split (in=$in): pick others"
pass "rollout 50%: $in devices got 1.2.0, $outside got 1.0.0"
expect_status 204 "version: nothing newer than current" dev1 "$(url '/api/firmware/version?current=1.2.0')"
expect_status 200 "version: older current" dev1 "$(url '/api/firmware/version?current=0.1.0')"
expect_status 204 "version: X-Current-Version header (the tutorial's)" dev1 \
	-H "X-Current-Version: 1.2.0" "$(url /api/firmware/version)"
expect_status 400 "version: X-Current-Version not a version" dev1 \
	-H "X-Current-Version: 1.2.0; rm -rf" "$(url /api/firmware/version)"
expect_status 400 "version: current not a version" dev1 "$(url '/api/firmware/version?current=1.x')"

# ---- downloads ----
expect_status 200 "download whole image" dev1 "$(url "/api/firmware/download/$S1")"
cmp "$T/body" "$T/s1.bin" || fail "downloaded image differs"
expect_status 206 "download: first part" dev1 -r 0-99999 "$(url "/api/firmware/download/$S1")"
cp "$T/body" "$T/partial.bin"
[ "$(stat -c %s "$T/partial.bin")" = 100000 ] || fail "first part has the wrong size"
curl -sS --cacert "$D/pki/ca.crt" --cert "$D/pki/identities/dev1/cert.pem" \
	--key "$D/pki/identities/dev1/key.pem" -C - -o "$T/partial.bin" \
	"$(url "/api/firmware/download/$S1")" || fail "resume failed"
cmp "$T/partial.bin" "$T/s1.bin" || fail "resumed image differs"
pass "download resumed with Range"
expect_status 206 "download: suffix range" dev1 -H 'Range: bytes=-10' "$(url "/api/firmware/download/$S1")"
tail -c 10 "$T/s1.bin" | cmp - "$T/body" || fail "suffix range differs"
# The file on disk grows past the release's size: nothing past the size is sent.
head -c 4096 /dev/urandom >>"$D/firmware/releases/sensor/1.0.0/image.bin"
expect_status 206 "download: range past the end is clamped" dev1 -H 'Range: bytes=299990-999999999' \
	"$(url "/api/firmware/download/$S1")"
[ "$(stat -c %s "$T/body")" = 10 ] || fail "sent $(stat -c %s "$T/body") bytes past offset 299990"
expect_status 200 "download: whole image of a grown file" dev1 "$(url "/api/firmware/download/$S1")"
cmp "$T/body" "$T/s1.bin" || fail "sent more or other than the release's bytes"
expect_status 416 "download: range starting at the size" dev1 -H 'Range: bytes=300000-' \
	"$(url "/api/firmware/download/$S1")"
expect_status 400 "download: two ranges" dev1 -H 'Range: bytes=0-1,5-9' \
	"$(url "/api/firmware/download/$S1")"
expect_status 400 "download: another unit" dev1 -H 'Range: items=0-1' \
	"$(url "/api/firmware/download/$S1")"
expect_status 404 "download: unknown sha256" dev1 \
	"$(url /api/firmware/download/0000000000000000000000000000000000000000000000000000000000000000)"
expect_status 404 "download: another type's release" dev1 "$(url "/api/firmware/download/$C1")"
expect_status 404 "download: upper-case digest" dev1 "$(url "/api/firmware/download/${S1^^}")"
expect_status 404 "path traversal" dev1 --path-as-is "$(url /api/firmware/download/../../../../etc/passwd)"
expect_status 404 "path traversal, escaped" dev1 --path-as-is \
	"$(url /api/firmware/download/..%2f..%2f..%2fmoat.conf)"
expect_status 404 "path traversal to a release file" dev1 --path-as-is \
	"$(url /api/firmware/../../firmware/releases/sensor/1.0.0/image.bin)"
expect_status 404 "unknown path" dev1 "$(url /api/firmware/version/)"
expect_status 405 "POST" dev1 -X POST "$(url /api/firmware/version)"
expect_status 405 "POST with a body" dev1 -d 'x=1' "$(url /api/firmware/version)"
head -c 2000000 /dev/zero >"$T/zeros"
expect_status 400 "GET with a 2 MB body, refused before it is read" dev1 -X GET \
	--data-binary @"$T/zeros" "$(url /api/firmware/version)"

# ---- TLS: 1.2 or newer, AEAD suites only ----
tls_try() { echo | timeout "$(deadline 10)" openssl s_client -connect "127.0.0.1:$SERVER_PORT" \
	-CAfile "$D/pki/ca.crt" "$@" 2>&1 | grep -E 'Cipher is' || true; }
assert_contains "$(tls_try -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0')" "Cipher is (NONE)"
assert_contains "$(tls_try -tls1_2 -cipher 'ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA')" "Cipher is (NONE)"
assert_contains "$(tls_try -tls1_2)" "GCM"
assert_contains "$(tls_try -tls1_3)" "TLSv1.3"
pass "TLS 1.1 and CBC suites refused; TLS 1.2 AEAD and 1.3 accepted"

# ---- who may ask ----
expect_status 200 "device-id header that matches" dev1 -H "X-Device-ID: dev1" \
	"$(url /api/firmware/version)"
expect_status 403 "device-id header that differs" dev1 -H "X-Device-ID: dev2" \
	"$(url /api/firmware/version)"
code=$(curl -sS --cacert "$D/pki/ca.crt" -o /dev/null -w '%{http_code}' "$(url /api/firmware/version)") || true
[ "$code" = 403 ] || fail "no client certificate: HTTP $code"
pass "no client certificate: HTTP 403"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
	-subj "/CN=impostor CA" -keyout "$T/other-ca.key" -out "$T/other-ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=dev1" \
	-keyout "$T/fake.key" -out "$T/fake.csr" 2>/dev/null
openssl x509 -req -in "$T/fake.csr" -CA "$T/other-ca.crt" -CAkey "$T/other-ca.key" \
	-CAcreateserial -days 30 -out "$T/fake.crt" 2>/dev/null
code=$(curl -sS --cacert "$D/pki/ca.crt" --cert "$T/fake.crt" --key "$T/fake.key" -o /dev/null \
	-w '%{http_code}' "$(url /api/firmware/version)" 2>/dev/null) || true
[ "$code" = 403 ] || [ "$code" = 000 ] || fail "certificate from another CA: HTTP $code"
pass "certificate from another CA refused ($code)"
expect_status 403 "a service identity is not a device" backend-service "$(url /api/firmware/version)"
expect_status 200 "dev2 before revocation" dev2 "$(url /api/firmware/version)"
moat device revoke dev2 >/dev/null 2>&1
expect_status 403 "revoked device" dev2 "$(url /api/firmware/version)"
wait_for 10 grep -q "id=dev2 .*status=403 .*detail=certificate_revoked" "$T/moatd.log" ||
	fail "revocation not logged as such"
expect_status 200 "dev1 still served after the CRL changed" dev1 "$(url /api/firmware/version)"

# ---- the log: one line per request ----
# settle NAME: a marker request whose log line, once there, follows every earlier one.
settle() {
	dcurl dev1 "$(url "/api/firmware/settle-$1")" >/dev/null || true
	wait_for 10 grep -q "path=/api/firmware/settle-$1 " "$T/moatd.log" || fail "marker $1 not logged"
}
i=0
for spec in "200 dev1 /api/firmware/version" "404 dev1 /api/firmware/nothing" \
	"403 dev2 /api/firmware/version"; do
	set -- $spec
	i=$((i + 1))
	settle "a$i"
	before=$(grep -c 'event=request' "$T/moatd.log")
	expect_status "$1" "logged: $3 as $2" "$2" "$(url "$3")"
	settle "b$i"
	after=$(grep -c 'event=request' "$T/moatd.log")
	[ $((after - before)) -eq 2 ] || fail "$((after - before - 1)) log lines for one request"
	grep -q "id=$2 method=GET path=$3 status=$1" "$T/moatd.log" || fail "not logged: $spec"
done
grep -q 'event=request client=127.0.0.1 id=dev1 method=GET path=/api/firmware/download/' "$T/moatd.log" ||
	fail "download not logged"
assert_not_contains "$(cat "$T/moatd.log")" "PRIVATE KEY"
pass "one log line per request"

expect_ok "fw status" moat fw status
assert_contains "$out" "dev1"
assert_contains "$out" "cam1"
moatd_stop
