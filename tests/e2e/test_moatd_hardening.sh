#!/usr/bin/env bash
# test_moatd_hardening.sh: what an attacker tries against moatd that a plain device test
# does not. Certificates made with the openssl CLI and signed by the deployment's own CA:
# a CA:TRUE certificate with a device's CN, a serverAuth-only one, one with two CNs, one
# with no extendedKeyUsage, one with the service role: each refused with 403 and an
# event=auth_refused line naming why, while a well-formed certificate made the same way is
# served (so the refusals are about the certificate's type, not the way it was made).
# Then %00 in the path and in ?current= (MHD's decoder would cut the string there): 400.
# Then log field injection: a device's update event whose reason is
# "ok stage=confirmed id=dev-b version=6.6.6" is one quoted field of moatd's log line.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_moatd.sh"
command -v curl >/dev/null || skip "curl not installed"
command -v openssl >/dev/null || skip "openssl not installed"
command -v mosquitto_pub >/dev/null || skip "mosquitto_pub not installed"
[ -x /usr/sbin/mosquitto ] || skip "mosquitto not installed"

e2e_init
moat device add dev1 --type sensor >/dev/null
moat device add dev-b --type sensor >/dev/null
moat identity add backend-service --role service >/dev/null

# forge NAME SUBJECT EXTENSIONS: a new key and a certificate signed by the deployment CA.
forge() {
	local name=$1 subj=$2 ext=$3
	printf '%b\n' "$ext" >"$T/$name.ext"
	openssl ecparam -name prime256v1 -genkey -noout -out "$T/$name.key" 2>/dev/null
	openssl req -new -key "$T/$name.key" -subj "$subj" -out "$T/$name.csr" \
		2>"$T/$name.err" || fail "openssl req $name: $(cat "$T/$name.err")"
	openssl x509 -req -in "$T/$name.csr" -CA "$D/pki/ca.crt" -CAkey "$D/pki/ca.key" \
		-passin env:MOAT_CA_PASSPHRASE -set_serial "0x$(openssl rand -hex 15)" -days 2 \
		-extfile "$T/$name.ext" -out "$T/$name.crt" 2>"$T/$name.err" ||
		fail "openssl x509 $name: $(cat "$T/$name.err")"
}
# fcurl NAME ARGS...: curl with a forged certificate; prints the HTTP status.
fcurl() {
	local name=$1; shift
	curl -sS --cacert "$D/pki/ca.crt" --cert "$T/$name.crt" --key "$T/$name.key" \
		-o "$T/body" -w '%{http_code}' "$@" 2>/dev/null || true
}

LEAF='basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature'
forge good "/OU=device/CN=dev1" "$LEAF\nextendedKeyUsage=clientAuth"
forge ca "/OU=device/CN=dev1" \
	'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,keyCertSign\nextendedKeyUsage=clientAuth'
forge server "/OU=device/CN=dev1" "$LEAF\nextendedKeyUsage=serverAuth"
forge twocn "/OU=device/CN=dev1/CN=dev-b" "$LEAF\nextendedKeyUsage=clientAuth"
forge noeku "/OU=device/CN=dev1" "$LEAF"
forge svc "/OU=service/CN=dev1" "$LEAF\nextendedKeyUsage=clientAuth"
openssl x509 -in "$T/twocn.crt" -noout -subject | qgrep 'CN = dev1, CN = dev-b' ||
	fail "the two-CN certificate does not carry two CNs: $(openssl x509 -in "$T/twocn.crt" -noout -subject)"

moatd_start

# ---- certificate types ----
code=$(fcurl good "$(url /api/firmware/version)")
[ "$code" = 204 ] || fail "a well-formed forged device certificate: HTTP $code ($(cat "$T/body"))"
pass "a leaf clientAuth certificate with one CN, made with openssl, is served (204)"
# refused NAME REASON WHAT: each from its own loopback address, since moatd budgets its
# auth_refused events per source (3 a second): one attacker's refusals may be summarised.
src_n=10
refused() {
	local code
	src_n=$((src_n + 1))
	code=$(fcurl "$1" --interface "127.0.0.$src_n" "$(url /api/firmware/version)")
	[ "$code" = 403 ] || fail "$3: HTTP $code, expected 403 ($(cat "$T/body"))"
	assert_contains "$(cat "$T/body")" "$2"
	wait_grep 10 "event=auth_refused client=127.0.0.$src_n id=.* reason=$2" "$T/moatd.log" ||
		fail "$3: no auth_refused event with reason=$2: $(grep auth_refused "$T/moatd.log")"
	wait_grep 10 "status=403 .*detail=$2" "$T/moatd.log" || fail "$3: request line without detail=$2"
	pass "$3: 403 $2"
}
refused ca certificate_is_ca "CA:TRUE certificate with the device's CN"
refused server not_a_client_certificate "serverAuth-only certificate"
refused twocn bad_certificate_name "certificate with two CNs"
refused noeku not_a_client_certificate "certificate without extendedKeyUsage"
refused svc not_a_device "certificate with the service role"
# moat's own server certificate (serverAuth only, the broker's and moatd's key) is no client
code=$(curl -sS --cacert "$D/pki/ca.crt" --cert "$D/pki/server.crt" --key "$D/pki/server.key" \
	-o "$T/body" -w '%{http_code}' "$(url /api/firmware/version)" 2>/dev/null) || true
[ "$code" = 403 ] || fail "the server certificate as a client: HTTP $code"
pass "the server certificate as a client: 403"
expect_status 204 "dev1's own certificate still served" dev1 "$(url /api/firmware/version)"

# ---- %00 ----
expect_status 400 "%00 in the path" dev1 "$(url '/api/firmware/version%00junk')"
# the access line is written once libmicrohttpd completed the request, which may be after
# curl has the answer
wait_for 10 grep -q 'status=400 .*detail=bad_path' "$T/moatd.log" || fail "%00 path not logged as bad_path"
expect_status 400 "%00 in ?current=" dev1 "$(url '/api/firmware/version?current=9.9.9%00x')"
expect_status 400 "%2500 (an escaped %00) in the path" dev1 "$(url '/api/firmware/version%2500')"
expect_status 204 "an ordinary escape still decodes" dev1 "$(url '/api/firmware/%76ersion')"

# ---- log field injection through an update event ----
agent_broker_start
wait_grep 30 "event=ingest_subscribed as=backend-service" "$T/moatd.log" ||
	fail "moatd did not subscribe: $(tail -3 "$T/moatd.log")"
agent_pub dev1 devices/dev1/diagnostics \
	'{"event":"update","stage":"refused","version":"2.0.0","running":"1.0.0","reason":"ok stage=confirmed id=dev-b version=6.6.6"}'
agent_pub dev1 devices/dev1/diagnostics \
	'{"event":"update","stage":"refused","version":"2.0.0","reason":"x\" forged=\"1\\"}'
wait_grep 20 'event=update_event id=dev1 stage=refused .*forged' "$T/moatd.log" ||
	fail "events not logged: $(grep update_event "$T/moatd.log")"
line=$(grep 'event=update_event id=dev1 stage=refused version=2.0.0 running=1.0.0' "$T/moatd.log")
assert_contains "$line" 'reason="ok stage=confirmed id=dev-b version=6.6.6"'
# parsed as logfmt, the line has exactly the fields moatd wrote, dev1's and no forged one
python3 - "$line" "$(grep 'forged' "$T/moatd.log")" <<'PY' || fail "forged fields in: $line"
import re, sys
tok = re.compile(r'\s*([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ ]*)')
def fields(line):
    out, pos = [], line.index("level=")
    while pos < len(line):
        m = tok.match(line, pos)
        assert m, "not key=value at %d: %s" % (pos, line[pos:])
        out.append((m.group(1), m.group(2)))
        pos = m.end()
    return out
f = fields(sys.argv[1])
keys = [k for k, _ in f]
assert keys == ["level", "prog", "event", "id", "stage", "version", "running", "reason"], keys
assert dict(f)["id"] == "dev1" and dict(f)["stage"] == "refused", f
g = dict(fields(sys.argv[2]))
assert "forged" not in g and g["reason"] == r'"x\" forged=\"1\\"', g
PY
pass "a reason with key=value pairs and quotes stays one quoted field"
moatd_stop
