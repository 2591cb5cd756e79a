#!/usr/bin/env bash
# test_est.sh: EST (RFC 7030) in moatd, with clients nobody here wrote. `moat up` runs the
# real Mosquitto and moatd; `openssl req` makes the device's key and CSR, curl posts it
# (application/pkcs10, base64) with the one-time token, `openssl pkcs7 -print_certs` reads
# the answer, the certificate verifies against the root with `openssl verify -untrusted`,
# and mosquitto_pub with that key publishes telemetry a service receives. Then every
# refusal, each an HTTP error and an est_refused security event: a reused, wrong, expired
# or malformed token, no credentials, a CSR for another identity, a disabled device, a
# malformed CSR, no proof of possession, a weak key, an oversized body, a wrong content
# type, the wrong method, too many failures from one address (429, that address only);
# claim certificates (`moat ca claim add`): one enrollment each, unknown and unverified
# ones refused; simplereenroll with the current certificate (a new key only), the old
# certificate revoked when the grace period ends; and every other path still demands a
# client certificate.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_moatd.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
command -v curl >/dev/null || skip "curl not installed"
command -v jq >/dev/null || skip "jq not installed"

e2e_init
cat >>"$D/moat.conf" <<'EOF'
[est]
reenroll_grace = 3s
token_failures = 6
token_failure_refill = 1h
EOF
[ -f "$D/pki/issuer.crt" ] || fail "moat init made no issuing CA (pki/issuer.crt)"
moat identity add svc-1 --role service >/dev/null
moat identity add backend-service --role service >/dev/null
enroll() { moat --json device add "$1" --enroll "${@:2}" | jq -er .token; }
TOK1=$(enroll dev1 --type sensor)
TOK2=$(enroll dev2)
TOK3=$(enroll dev3)
TOK4=$(enroll dev4)
TOK6=$(enroll dev6)
TOK9=$(enroll dev9)
[ ${#TOK1} -eq 32 ] || fail "token: '$TOK1'"
pass "moat device add --enroll --json prints a token once"
grep -qF "$TOK1" "$D/registry.db" && fail "the token itself is in registry.db"
pass "only the token's hash is stored"
[ -d "$D/pki/identities/dev1" ] && fail "a device that enrolls itself got files at add"
moat_up_test
wait_for 20 grep -q "event=listening" "$D/log/moatd.log" || fail "moatd did not start"

EST="https://localhost:$SERVER_PORT/.well-known/est"
LOG="$D/log/moatd.log"
# est STATUS_WANT WHAT curl-args...: one EST request with the root as the only trust
# anchor; the body lands in $T/body.
est() {
	local want=$1 what=$2 got
	shift 2
	got=$(curl -sS --max-time "$(deadline 30)" --cacert "$D/pki/ca.crt" -o "$T/body" \
		-D "$T/headers" -w '%{http_code}' "$@") || true
	[ "$got" = "$want" ] || fail "$what: HTTP $got, expected $want ($(head -c 300 "$T/body"))"
	echo "ok - $what: HTTP $got"
}
# refused STATUS REASON WHAT curl-args...: est, and the est_refused event naming REASON.
# moatd logs at most 3 anonymous EST refusals a second from one source (the rest are counted
# in events_suppressed): refusals here are spaced at least 0.35 s apart, so each is logged.
LAST_REFUSAL_NS=0
pace_refusal() {
	local wait_ns=$((LAST_REFUSAL_NS + 350000000 - $(date +%s%N)))
	[ "$wait_ns" -le 0 ] || sleep "0.$(printf '%09d' "$wait_ns")"
	LAST_REFUSAL_NS=$(date +%s%N)
}
refused() {
	local want=$1 reason=$2 what=$3
	shift 3
	local before
	before=$(grep -c "event=est_refused.*reason=$reason" "$LOG" || true)
	pace_refusal
	est "$want" "$what" "$@"
	[ "$(grep -c "event=est_refused.*reason=$reason" "$LOG" || true)" -gt "$before" ] ||
		fail "$what: no est_refused event with reason=$reason: $(tail -3 "$LOG")"
}
# csr NAME SUBJECT [openssl req args]: $T/NAME.key and $T/NAME.b64 (DER CSR, base64).
csr() {
	local name=$1 subj=$2
	shift 2
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$name.key" \
		-subj "$subj" -outform DER -out "$T/$name.der" "$@" 2>/dev/null || fail "openssl req $name"
	chmod 600 "$T/$name.key"
	base64 <"$T/$name.der" >"$T/$name.b64"
}
P10=(-H 'Content-Type: application/pkcs10')
certs_of_body() { base64 -d <"$T/body" | openssl pkcs7 -inform DER -print_certs -out "$1"; }

# ---- cacerts and csrattrs: no client certificate needed ----
est 200 "cacerts without a client certificate" "$EST/cacerts"
grep -qi '^Content-Type: application/pkcs7-mime; smime-type=certs-only' "$T/headers" ||
	fail "cacerts: content type: $(cat "$T/headers")"
grep -qi '^Content-Transfer-Encoding: base64' "$T/headers" || fail "cacerts: no base64 header"
certs_of_body "$T/cacerts.pem" || fail "cacerts: not a PKCS#7"
[ "$(grep -c 'BEGIN CERTIFICATE' "$T/cacerts.pem")" -eq 2 ] || fail "cacerts: not the chain"
openssl x509 -in "$D/pki/issuer.crt" -noout -fingerprint >"$T/fp1"
openssl x509 -in "$T/cacerts.pem" -noout -fingerprint >"$T/fp2"
cmp -s "$T/fp1" "$T/fp2" || fail "cacerts: the issuing CA is not first"
pass "cacerts is the chain (issuing CA, then root) as a certs-only PKCS#7"
est 200 "csrattrs" "$EST/csrattrs"
base64 -d <"$T/body" | openssl asn1parse -inform DER | qgrep prime256v1 || fail "csrattrs"

# ---- enrollment with the token ----
csr dev1 "/CN=dev1/O=evil" -addext "basicConstraints=critical,CA:TRUE" \
	-addext "extendedKeyUsage=serverAuth" -addext "subjectAltName=DNS:evil.example"
est 200 "simpleenroll with the token" -u "dev1:$TOK1" "${P10[@]}" --data-binary @"$T/dev1.b64" \
	"$EST/simpleenroll"
grep -qi '^Content-Type: application/pkcs7-mime; smime-type=certs-only' "$T/headers" ||
	fail "simpleenroll: content type"
certs_of_body "$T/dev1.crt" || fail "simpleenroll: not a PKCS#7"
openssl verify -CAfile "$D/pki/ca.crt" -untrusted "$T/cacerts.pem" "$T/dev1.crt" ||
	fail "the certificate does not verify against the root"
pass "openssl verify -untrusted: the enrolled certificate chains to the root"
text=$(openssl x509 -in "$T/dev1.crt" -noout -subject -ext basicConstraints,extendedKeyUsage,subjectAltName 2>&1)
assert_contains "$text" "OU = device, CN = dev1"
assert_not_contains "$text" "evil"
assert_not_contains "$text" "CA:TRUE"
assert_not_contains "$text" "Server Authentication"
assert_contains "$text" "TLS Web Client Authentication"
pass "subject set by moat, requested extensions ignored"
[ "$(openssl x509 -in "$T/dev1.crt" -noout -pubkey)" = "$(openssl pkey -in "$T/dev1.key" -pubout)" ] ||
	fail "not the CSR's key"
[ -f "$D/pki/identities/dev1/cert.pem" ] || fail "no pki/identities/dev1/cert.pem"
[ -e "$D/pki/identities/dev1/key.pem" ] && fail "a key.pem was written for dev1"
[ -e "$D/pki/identities/dev1/ca.crt" ] && fail "a ca.crt was written for dev1 (cert.pem only)"
[ "$(grep -c 'BEGIN CERTIFICATE' "$D/pki/identities/dev1/cert.pem")" -eq 2 ] ||
	fail "cert.pem is not the leaf and the issuing CA"
moat device show dev1 | qgrep "$(openssl x509 -in "$T/dev1.crt" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')" ||
	fail "the registry does not hold the enrolled certificate"
grep -q "event=est_enrolled.*id=dev1" "$LOG" || fail "no est_enrolled event"
pass "registered like any identity: registry row, cert.pem (chain), no key.pem"

broker_sub_bg svc-1 svc-1 "$T/sub.out" 'devices/+/telemetry'
timeout "$(deadline 20)" mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$D/pki/ca.crt" \
	--cert "$D/pki/identities/dev1/cert.pem" --key "$T/dev1.key" -i dev1 -V mqttv5 -q 1 \
	-t devices/dev1/telemetry -m '{"temperature":21.5,"seq":1}' ||
	fail "mosquitto_pub with the enrolled key"
broker_wait_line "$T/sub.out" 'devices/dev1/telemetry {"temperature":21.5,"seq":1}'
pass "mosquitto_pub with the device's own key publishes telemetry"

# ---- refusals of simpleenroll ----
refused 401 token_used "the same token again" -u "dev1:$TOK1" "${P10[@]}" \
	--data-binary @"$T/dev1.b64" "$EST/simpleenroll"
csr dev2 "/CN=dev2"
refused 401 bad_token "a wrong token" -u "dev2:${TOK3}" "${P10[@]}" \
	--data-binary @"$T/dev2.b64" "$EST/simpleenroll"
grep -qi '^WWW-Authenticate: Basic' "$T/headers" || fail "401 without WWW-Authenticate"
refused 401 malformed_credentials "malformed Basic credentials" \
	-H "Authorization: Basic !!!" "${P10[@]}" --data-binary @"$T/dev2.b64" "$EST/simpleenroll"
# the token's expiry, as moat device add stored it, moved to the past
python3 - "$D/registry.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE enrollments SET expires_at = created_at - 1 WHERE identity = 'dev3'")
db.commit()
PY
csr dev3 "/CN=dev3"
refused 401 token_expired "an expired token" -u "dev3:$TOK3" "${P10[@]}" \
	--data-binary @"$T/dev3.b64" "$EST/simpleenroll"
refused 401 no_credentials "no token and no certificate" "${P10[@]}" \
	--data-binary @"$T/dev2.b64" "$EST/simpleenroll"
refused 403 csr_for_another_identity "dev4's token with a CSR naming dev2" -u "dev4:$TOK4" \
	"${P10[@]}" --data-binary @"$T/dev2.b64" "$EST/simpleenroll"
refused 415 wrong_content_type "Content-Type: text/plain" -u "dev4:$TOK4" \
	-H 'Content-Type: text/plain' --data-binary @"$T/dev2.b64" "$EST/simpleenroll"
printf 'not base64 at all!' >"$T/junk.b64"
refused 400 body_not_base64 "a body that is not base64" -u "dev4:$TOK4" "${P10[@]}" \
	--data-binary @"$T/junk.b64" "$EST/simpleenroll"
head -c 600 /dev/urandom | base64 >"$T/random.b64"
refused 400 bad_csr "base64 of no CSR" -u "dev4:$TOK4" "${P10[@]}" \
	--data-binary @"$T/random.b64" "$EST/simpleenroll"
csr dev4 "/CN=dev4"
python3 - "$T/dev4.der" "$T/dev4-badsig.b64" <<'PY'
import base64, sys
d = bytearray(open(sys.argv[1], "rb").read())
d[-3] ^= 0x55  # inside the signature
open(sys.argv[2], "wb").write(base64.encodebytes(bytes(d)))
PY
refused 400 csr_no_proof_of_possession "a CSR whose signature does not verify" \
	-u "dev4:$TOK4" "${P10[@]}" --data-binary @"$T/dev4-badsig.b64" "$EST/simpleenroll"
openssl req -new -newkey rsa:1024 -nodes -keyout /dev/null -subj /CN=dev4 -outform DER 2>/dev/null |
	base64 >"$T/rsa1024.b64"
refused 400 bad_csr "an RSA-1024 CSR" -u "dev4:$TOK4" "${P10[@]}" \
	--data-binary @"$T/rsa1024.b64" "$EST/simpleenroll"
assert_contains "$(cat "$T/body")" "1024"
head -c 40000 /dev/zero | base64 >"$T/big.b64"
# Expect: 100-continue: curl waits for moatd's verdict on the headers before sending the
# body, so the 413 is read, not lost to the reset of a close with unread bytes (seen under ASan)
refused 413 body_too_large "a 54 kB body" -u "dev4:$TOK4" "${P10[@]}" -H 'Expect: 100-continue' \
	--data-binary @"$T/big.b64" "$EST/simpleenroll"
refused 405 method_not_allowed "GET simpleenroll" "$EST/simpleenroll"
# a disabled device: its token is right, the device is not active
python3 - "$D/registry.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE identities SET status = 'disabled' WHERE id = 'dev6'")
db.commit()
PY
csr dev6 "/CN=dev6"
refused 403 identity_not_active "a disabled device with its token" -u "dev6:$TOK6" "${P10[@]}" \
	--data-binary @"$T/dev6.b64" "$EST/simpleenroll"
# none of those refusals spent dev4's token
est 200 "dev4 enrolls after the refusals" -u "dev4:$TOK4" "${P10[@]}" \
	--data-binary @"$T/dev4.b64" "$EST/simpleenroll"

# ---- failed tokens are limited per source address ----
csr dev9 "/CN=dev9"
got429=""
for i in 1 2 3 4 5 6 7 8 9; do
	code=$(curl -sS --max-time "$(deadline 30)" --interface 127.0.0.2 --cacert "$D/pki/ca.crt" \
		-o /dev/null -w '%{http_code}' \
		-u "dev9:0000000000000000000000000000000$i" "${P10[@]}" --data-binary @"$T/dev9.b64" \
		"$EST/simpleenroll") || true
	if [ "$code" = 429 ]; then got429=$i; break; fi
	[ "$code" = 401 ] || fail "wrong token $i from 127.0.0.2: HTTP $code"
done
[ "$got429" = 7 ] || fail "no 429 after 6 failures (got429=$got429)"
sleep 1 # those seven anonymous refusals spent this source's logging budget for the second
refused 429 too_many_failures "the right token from the limited address" --interface 127.0.0.2 \
	-u "dev9:$TOK9" "${P10[@]}" --data-binary @"$T/dev9.b64" "$EST/simpleenroll"
grep -qi '^Retry-After: ' "$T/headers" || fail "429 without Retry-After"
est 200 "the right token from another address" -u "dev9:$TOK9" "${P10[@]}" \
	--data-binary @"$T/dev9.b64" "$EST/simpleenroll"

# ---- claim certificates ----
M="$T/maker"
mkdir -p "$M"
test_ca_conf "$M"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$M/ca.key" \
	-subj "/O=Maker/CN=Maker Factory CA" -days 30 -out "$M/ca.crt" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
test_ca_sign "$M" claim7 "/O=Maker/CN=SN-0007" client -cert "$M/ca.crt" -keyfile "$M/ca.key" -days 20
test_ca_sign "$M" claim8 "/O=Maker/CN=SN-0008" client -cert "$M/ca.crt" -keyfile "$M/ca.key" -days 20
O="$T/other"
mkdir -p "$O"
test_ca_conf "$O"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$O/ca.key" \
	-subj "/CN=Unregistered CA" -days 30 -out "$O/ca.crt" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
test_ca_sign "$O" claim7 "/CN=SN-0007" client -cert "$O/ca.crt" -keyfile "$O/ca.key" -days 20
expect_ok "moat ca claim add" moat ca claim add "$M/ca.crt"
expect_fail "moat ca claim add of a leaf" moat ca claim add "$M/claim7.crt"
moat device add dev7 --claim-cn SN-0007 >/dev/null
claim() { echo --cert "$1.crt" --key "$1.key"; }
csr dev7 "/CN=dev7"
# shellcheck disable=SC2046
refused 403 claim_not_verified "a claim certificate from an unregistered CA" $(claim "$O/claim7") \
	"${P10[@]}" --data-binary @"$T/dev7.b64" "$EST/simpleenroll"
# shellcheck disable=SC2046
refused 403 unknown_claim "a claim certificate no device names" $(claim "$M/claim8") \
	"${P10[@]}" --data-binary @"$T/dev7.b64" "$EST/simpleenroll"
# shellcheck disable=SC2046
est 200 "simpleenroll with the claim certificate" $(claim "$M/claim7") "${P10[@]}" \
	--data-binary @"$T/dev7.b64" "$EST/simpleenroll"
certs_of_body "$T/dev7.crt"
openssl x509 -in "$T/dev7.crt" -noout -subject | qgrep "CN = dev7" || fail "claim: not dev7's certificate"
# shellcheck disable=SC2046
refused 403 claim_used "the claim certificate again" $(claim "$M/claim7") "${P10[@]}" \
	--data-binary @"$T/dev7.b64" "$EST/simpleenroll"

# ---- every other path still demands the client certificate ----
for path in /api/firmware/version /.well-known/est/serverkeygen /.well-known/est/cacerts/ \
	/.well-known/est/x/cacerts /; do
	est 403 "$path without a client certificate" "https://localhost:$SERVER_PORT$path"
done
# shellcheck disable=SC2046
est 403 "a claim certificate is no device certificate" $(claim "$M/claim7") \
	"https://localhost:$SERVER_PORT/api/firmware/version"
est 204 "dev1's enrolled certificate on the update API" --cert "$D/pki/identities/dev1/cert.pem" \
	--key "$T/dev1.key" "https://localhost:$SERVER_PORT/api/firmware/version"

# ---- simplereenroll ----
OLD="$T/dev1-old.pem"
cp "$D/pki/identities/dev1/cert.pem" "$OLD"
DEV1=(--cert "$OLD" --key "$T/dev1.key")
# files an earlier moat left beside cert.pem: a re-enrollment removes them
cp "$D/pki/ca.crt" "$D/pki/identities/dev1/ca.crt"
cp "$T/dev1.key" "$D/pki/identities/dev1/key.pem"
refused 400 same_key "simplereenroll with the same key" "${DEV1[@]}" "${P10[@]}" \
	--data-binary @"$T/dev1.b64" "$EST/simplereenroll"
csr dev1new "/CN=dev1"
refused 403 no_client_certificate "simplereenroll without a certificate" -u "dev1:$TOK1" \
	"${P10[@]}" --data-binary @"$T/dev1new.b64" "$EST/simplereenroll"
csr dev2x "/CN=dev2"
refused 403 csr_for_another_identity "simplereenroll for another identity" "${DEV1[@]}" \
	"${P10[@]}" --data-binary @"$T/dev2x.b64" "$EST/simplereenroll"
est 200 "simplereenroll with the current certificate and a new key" "${DEV1[@]}" "${P10[@]}" \
	--data-binary @"$T/dev1new.b64" "$EST/simplereenroll"
certs_of_body "$T/dev1new.crt"
openssl verify -CAfile "$D/pki/ca.crt" -untrusted "$T/cacerts.pem" "$T/dev1new.crt" >/dev/null ||
	fail "renewed certificate does not verify"
[ ! -e "$D/pki/identities/dev1/ca.crt" ] && [ ! -e "$D/pki/identities/dev1/key.pem" ] ||
	fail "the re-enrollment left ca.crt or key.pem beside cert.pem"
cmp -s <(openssl x509 -in "$D/pki/identities/dev1/cert.pem") <(openssl x509 -in "$T/dev1new.crt") ||
	fail "pki/identities/dev1/cert.pem is not the renewed certificate"
refused 403 not_current_certificate "simplereenroll with the replaced certificate" "${DEV1[@]}" \
	"${P10[@]}" --data-binary @"$T/dev1new.b64" "$EST/simplereenroll"
timeout "$(deadline 20)" mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$D/pki/ca.crt" \
	--cert "$D/pki/identities/dev1/cert.pem" --key "$T/dev1new.key" -i dev1 -V mqttv5 -q 1 \
	-t devices/dev1/telemetry -m '{"temperature":22.5,"seq":2}' || fail "publish with the new key"
broker_wait_line "$T/sub.out" '"seq":2}'
pass "the renewed certificate publishes"
# the grace period (3 s) ends: moatd revokes the old certificate itself
wait_for 30 grep -q "event=superseded count=1" "$LOG" || fail "old certificate never superseded"
est 403 "the superseded certificate on the update API" "${DEV1[@]}" \
	"https://localhost:$SERVER_PORT/api/firmware/version"
assert_contains "$(cat "$T/body")" "certificate_revoked"
moat device show dev1 | qgrep "revoked" || fail "registry: old certificate not revoked"
pass "the old certificate is revoked (superseded) when the grace period ends"
# ---- a flood of anonymous refusals: 40 requests without credentials on one connection. moatd
# logs and records at most 3 a second from that source; the rest are counted
# (events_suppressed kind=est_refused), none is lost from the count. Meanwhile another
# source's anonymous refusal and a proven one (the right token, used) are logged: the flood
# buries neither.
anon_lines() { grep -c "event=est_refused client=127.0.0.1 id=- proven=no path=/.well-known/est/simpleenroll status=401 reason=no_credentials" "$LOG" || true; }
suppressed_sum() { sed -n 's/.*event=events_suppressed kind=est_refused count=\([0-9]*\).*/\1/p' "$LOG" | awk '{ s += $1 } END { print s + 0 }'; }
sleep 1 # a fresh second for this source's budget
a0=$(anon_lines) s0=$(suppressed_sum)
urls=()
for _ in $(seq 1 40); do urls+=("$EST/simpleenroll"); done
codes=$(curl -sS --max-time "$(deadline 60)" --cacert "$D/pki/ca.crt" -X POST "${P10[@]}" --data x -o /dev/null \
	-w '%{http_code}\n' "${urls[@]}") || true
[ "$(grep -c '^401$' <<<"$codes")" = 40 ] || fail "the flood: not 40 answers 401: $(sort <<<"$codes" | uniq -c)"
LAST_REFUSAL_NS=0
refused 401 no_credentials "another source's anonymous refusal during the flood" \
	--interface 127.0.0.3 "${P10[@]}" --data x "$EST/simpleenroll"
grep -q "event=est_refused client=127.0.0.3 .*reason=no_credentials" "$LOG" ||
	fail "the other source's refusal is not logged as 127.0.0.3"
refused 401 token_used "a proven refusal during the flood" -u "dev1:$TOK1" "${P10[@]}" \
	--data-binary @"$T/dev1.b64" "$EST/simpleenroll"
grep -q "event=est_refused client=127.0.0.1 id=dev1 proven=yes .*reason=token_used" "$LOG" ||
	fail "the used token's refusal is not logged as proven"
all_counted() { [ $(($(anon_lines) - a0 + $(suppressed_sum) - s0)) -eq 40 ]; }
wait_for 10 all_counted ||
	fail "logged $(($(anon_lines) - a0)) + suppressed $(($(suppressed_sum) - s0)) of the flood's 40"
logged=$(($(anon_lines) - a0))
{ [ "$logged" -ge 1 ] && [ "$logged" -le 9 ]; } || fail "the flood: $logged of 40 logged, the budget is 3 a second"
pass "a flood of 40 anonymous refusals: $logged logged, $((40 - logged)) counted as suppressed; other sources and proven refusals still logged"

if grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$LOG"; then
	fail "sanitizer report in moatd.log"
fi
grep -qF "$TOK2" "$LOG" && fail "a token reached moatd's log"
pass "no token in moatd's log"
