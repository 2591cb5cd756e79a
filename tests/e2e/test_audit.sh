#!/usr/bin/env bash
# test_audit.sh: `moat audit` on a running deployment (broker and moatd up): clean, it exits
# 0 and writes a SARIF 2.1.0 and a JUnit report that parse; then each thing broken for real,
# one at a time, is named by its check id, with the exit status --fail-on asks for, and put
# back:
#   the root CA key readable by others; acl.conf granting '#'; mosquitto.conf edited (drift,
#   TLS 1.1, and the running broker no longer on the file on disk, by content: the mtime
#   put back with touch -r); a server certificate
#   made by hand with openssl on an RSA-1024 key, then on a device's own key; the firmware
#   trust threshold set to 1; a CRL signed with openssl whose nextUpdate is past, then one
#   that revokes an active device; the broker policy of before a revocation put back; a
#   broker that has not loaded the current policy (drift.live_policy, from the digest it
#   logs), hung by SIGSTOP.
# Exit status 2: not a deployment, a duration without its unit.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
command -v jq >/dev/null || skip "jq not installed (scripts/bootstrap installs it)"
command -v xmllint >/dev/null || skip "xmllint not installed (scripts/bootstrap installs it)"
python3 -c 'import jsonschema' 2>/dev/null || skip "python3-jsonschema not installed (scripts/bootstrap installs it)"
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"
export MOAT_FW_PASSPHRASE="e2e-firmware-passphrase"
broker_deploy
moat fw keygen >/dev/null
moat fw keygen >/dev/null
moat fw trust --threshold 2 >/dev/null
moat_up_test

# audit_is RC [args]: moat audit --json exits RC; $out holds the document.
audit_is() {
	local want=$1
	shift
	run_captured moat --json audit "$@"
	[ "$run_rc" = "$want" ] || fail "audit $*: exit $run_rc, expected $want: $out $errout"
}
# has ID SEVERITY: the last audit has a finding ID of SEVERITY.
has() {
	jq -e --arg id "$1" --arg s "$2" '[.findings[] | select(.id == $id and .severity == $s)] | length > 0' \
		>/dev/null <<<"$out" || fail "no $2 finding $1 in: $(jq -c '[.findings[] | [.id, .severity, .title]]' <<<"$out")"
}
# none_at_least_high: the last audit has nothing high or critical.
none_high() {
	jq -e '.summary.critical == 0 and .summary.high == 0' >/dev/null <<<"$out" ||
		fail "findings: $(jq -c '[.findings[] | select(.severity == "high" or .severity == "critical") | [.id, .title]]' <<<"$out")"
}

# ---- clean ----
audit_is 0 --sarif "$T/audit.sarif" --junit "$T/audit.xml"
none_high
[ "$(jq '.checks | length' <<<"$out")" -ge 39 ] || fail "not every check ran: $out"
# devices made by moat device add: their keys are here (medium), which --fail-on medium fails
has pki.key_custody medium
audit_is 1 --fail-on medium
audit_is 0 --fail-on critical
run_captured moat audit
[ "$run_rc" = 0 ] || fail "text audit: exit $run_rc"
assert_contains "$out" "checks run,"
pass "a fresh deployment: exit 0, medium findings fail --fail-on medium only"

python3 - "$T/audit.sarif" <<'PY' || fail "SARIF report invalid"
import json, sys
doc = json.load(open(sys.argv[1]))
# SARIF 2.1.0: the required properties of sarifLog, run, tool, toolComponent, result, message
assert doc["version"] == "2.1.0", doc.get("version")
assert doc["$schema"].endswith("sarif-2.1.0.json")
for run in doc["runs"]:
    driver = run["tool"]["driver"]
    assert driver["name"] == "moat"
    ids = [r["id"] for r in driver["rules"]]
    assert len(ids) == len(set(ids)) and len(ids) >= 39, ids
    for res in run["results"]:
        assert res["message"]["text"], res
        assert res["ruleId"] == ids[res["ruleIndex"]], res
        assert res["level"] in ("none", "note", "warning", "error"), res
        for loc in res.get("locations", []):
            art = loc["physicalLocation"]["artifactLocation"]
            assert art["uri"] and " " not in art["uri"], art
            if "uriBaseId" in art:
                assert art["uriBaseId"] in run["originalUriBaseIds"], art
            assert loc["physicalLocation"].get("region", {"startLine": 1})["startLine"] >= 1
PY
# ... and valid against the SARIF 2.1.0 schema itself (tests/schema, OASIS), with findings
# that have a file and a line, so locations and regions are checked too
python3 "$MOAT_SRC/tests/e2e/sarif_validate.py" "$T/audit.sarif" || fail "SARIF report violates the SARIF 2.1.0 schema"
xmllint --noout "$T/audit.xml" || fail "JUnit report is not well-formed XML"
python3 - "$T/audit.xml" <<'PY' || fail "JUnit report invalid"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites"
suite = root.find("testsuite")
cases = suite.findall("testcase")
assert int(suite.get("tests")) == len(cases) >= 39
assert int(suite.get("failures")) == len([c for c in cases if c.find("failure") is not None])
assert any(c.get("name") == "pki.key_custody" and c.find("failure") is not None for c in cases)
PY
pass "SARIF 2.1.0 (valid against the OASIS schema) and JUnit reports parse, with every check"

# ---- the root CA key readable by others ----
chmod 644 "$D/pki/ca.key"
audit_is 1
has pki.ca_key critical
jq -e '.findings[] | select(.id == "pki.ca_key") | .fix | test("chmod 600")' >/dev/null <<<"$out" || fail "no chmod fix: $out"
chmod 600 "$D/pki/ca.key"
audit_is 0
pass "pki.ca_key: a readable CA key is critical; fixed, clean again"

# ---- acl.conf edited to grant everything ----
cp -p "$D/broker/acl.conf" "$T/acl.keep"
printf 'user dev-a\ntopic readwrite #\n' >>"$D/broker/acl.conf"
audit_is 1
has drift.acl critical
has broker.acl_grants critical
line=$(jq '.findings[] | select(.id == "broker.acl_grants") | .line' <<<"$out")
[ "$(sed -n "${line}p" "$D/broker/acl.conf")" = "topic readwrite #" ] || fail "acl_grants names line $line"
cp -p "$T/acl.keep" "$D/broker/acl.conf"
audit_is 0
pass "drift.acl and broker.acl_grants name the line that grants '#'"

# ---- mosquitto.conf edited under the running broker ----
cp -p "$D/broker/mosquitto.conf" "$T/conf.keep"
sed -i 's/^tls_version .*/tls_version tlsv1.1/' "$D/broker/mosquitto.conf"
audit_is 1
has drift.mosquitto_conf high
has broker.tls high
has drift.live_broker high
audit_is 0 --fail-on critical
jq -e '.findings[] | select(.id == "drift.live_broker") | .evidence |
	test("loaded line [0-9]+ \"tls_version tlsv1.2\" \\(run/mosquitto.conf.started\\); broker/mosquitto.conf has \"tls_version tlsv1.1\"")' \
	>/dev/null <<<"$out" || fail "drift.live_broker evidence: $(jq -c '[.findings[] | select(.id == "drift.live_broker")]' <<<"$out")"
cp -p "$T/conf.keep" "$D/broker/mosquitto.conf"
audit_is 0
pass "mosquitto.conf: drift, TLS below 1.2, and the running broker not on it"

# ---- the running broker's mosquitto.conf by content, not by mtime ----
# The same edit with the file's mtime put back (touch -r): an older mtime than the broker's
# start hides nothing; the content put back, with a new mtime, is clean.
touch -d '-1 hour' "$T/conf.keep"
cp -p "$T/conf.keep" "$T/conf.old"
sed -i 's/^tls_version .*/tls_version tlsv1.1/' "$D/broker/mosquitto.conf"
touch -r "$T/conf.old" "$D/broker/mosquitto.conf"
[ "$D/broker/mosquitto.conf" -ot "$D/run/mosquitto.pid" ] || fail "mtime not older than the broker's start"
audit_is 1
has drift.live_broker high
cp "$T/conf.keep" "$D/broker/mosquitto.conf" # content back, mtime now
touch "$D/broker/mosquitto.conf"
audit_is 0
jq -e '[.findings[] | select(.id == "drift.live_broker")] | length == 0' >/dev/null <<<"$out" ||
	fail "drift.live_broker on a new mtime with the loaded content: $out"
sed -i 's/^tls_version .*/tls_version tlsv1.1/' "$D/broker/mosquitto.conf"
touch -r "$T/conf.old" "$D/broker/mosquitto.conf"
audit_is 1
has drift.live_broker high
cp -p "$T/conf.keep" "$D/broker/mosquitto.conf"
audit_is 0
pass "drift.live_broker: what the running broker loaded against the file, by content (mtime put back with touch -r)"

# ---- hand-made server certificates, signed by the issuing CA with openssl ----
cp -p "$D/pki/server.crt" "$T/server.crt.keep"
test_ca_conf "$T/ca"
openssl req -new -newkey rsa:1024 -nodes -keyout "$T/weak.key" -subj "/CN=localhost" -out "$T/weak.csr" 2>/dev/null
openssl ca -batch -notext -config "$T/ca/ca.cnf" -extensions server -cert "$D/pki/issuer.crt" \
	-keyfile "$D/pki/issuer.key" -days 30 -in "$T/weak.csr" -out "$T/weak.crt" >/dev/null 2>&1 ||
	fail "openssl ca: weak server certificate"
cp "$T/weak.crt" "$D/pki/server.crt"
audit_is 1
has pki.weak_key high
jq -e '.findings[] | select(.id == "pki.weak_key") | .title | test("RSA 1024 bits")' >/dev/null <<<"$out" || fail "weak key: $out"
openssl req -new -key "$D/pki/identities/dev-a/key.pem" -subj "/CN=localhost" -out "$T/dup.csr" 2>/dev/null
openssl ca -batch -notext -config "$T/ca/ca.cnf" -extensions server -cert "$D/pki/issuer.crt" \
	-keyfile "$D/pki/issuer.key" -days 30 -in "$T/dup.csr" -out "$T/dup.crt" >/dev/null 2>&1 ||
	fail "openssl ca: server certificate on dev-a's key"
cp "$T/dup.crt" "$D/pki/server.crt"
audit_is 1
has pki.duplicate_key high
jq -e '.findings[] | select(.id == "pki.duplicate_key") | .title | test("dev-a and the server|the server and dev-a")' >/dev/null <<<"$out" || fail "duplicate: $out"
cp -p "$T/server.crt.keep" "$D/pki/server.crt"
audit_is 0
pass "pki.weak_key (RSA-1024 by openssl) and pki.duplicate_key (a device's key on the server)"

# ---- firmware trust threshold 1 ----
moat fw trust --threshold 1 >/dev/null
audit_is 1
has fw.threshold high
moat fw trust --threshold 2 >/dev/null
audit_is 0
pass "fw.threshold: one signature is not enough"

# ---- the running broker's policy, as it reported it, against broker/policy ----
jq -e '.checks | index("drift.live_policy")' >/dev/null <<<"$out" || fail "drift.live_policy did not run"
grep -qE 'moat: (plugin ready|policy reloaded): .*policy sha256 [0-9a-f]{64}$' "$D/log/mosquitto.log" ||
	fail "the plugin logged no policy digest: $(grep 'moat: ' "$D/log/mosquitto.log" | tail -3)"
# The broker hangs (SIGSTOP) before it reloads: the device added next is in the policy file,
# not in the policy the running broker enforces.
broker_pid=$(cat "$D/run/mosquitto.pid")
kill -0 "$broker_pid" || fail "no running broker (run/mosquitto.pid: $broker_pid)"
kill -STOP "$broker_pid"
on_exit "kill -CONT $broker_pid"
moat device add dev-late >/dev/null
touch -d '-10 seconds' "$D/broker/policy" # past the audit's grace for a reload under way
audit_is 1
has drift.live_policy high
jq -e '[.findings[] | select(.id == "drift.policy")] | length == 0' >/dev/null <<<"$out" ||
	fail "drift.policy flagged a file that matches the registry: $out"
jq -e '.findings[] | select(.id == "drift.live_policy") | .evidence | test("last logged policy sha256 [0-9a-f]{64}; broker/policy on disk has sha256 [0-9a-f]{64}")' \
	>/dev/null <<<"$out" || fail "drift.live_policy evidence: $out"
mark=$(log_lines "$D/log/mosquitto.log")
kill -CONT "$broker_pid"
wait_for 10 log_has_since "$D/log/mosquitto.log" "$mark" -F "moat: policy reloaded" ||
	fail "the broker did not reload: $(tail -3 "$D/log/mosquitto.log")"
moat device delete dev-late >/dev/null
audit_is 0
pass "drift.live_policy: a broker that could not load the current policy is named; reloaded, clean"

# the rest changes the CRL and the policy, which moatd and the plugin keep fresh: stop them
moat down --timeout "$(deadline 20s)" >/dev/null

# ---- a CRL whose nextUpdate is past, signed with openssl by the issuing CA ----
cp -p "$D/pki/crl.pem" "$T/crl.keep"
test_ca_conf "$T/crlca" "crlnumber = $T/crlca/crlnumber"
echo 1000 >"$T/crlca/crlnumber"
openssl ca -batch -config "$T/crlca/ca.cnf" -gencrl -cert "$D/pki/issuer.crt" -keyfile "$D/pki/issuer.key" \
	-crl_lastupdate 20200101000000Z -crl_nextupdate 20200201000000Z -out "$D/pki/crl.pem" 2>"$T/crl.err" ||
	fail "openssl ca -gencrl: $(cat "$T/crl.err")"
audit_is 1
has pki.crl high
jq -e '.findings[] | select(.id == "pki.crl") | .title | test("stale")' >/dev/null <<<"$out" || fail "crl: $out"
cp -p "$T/crl.keep" "$D/pki/crl.pem"
audit_is 0
pass "pki.crl: a CRL past its nextUpdate"

# ---- a CRL made with openssl ca -gencrl that revokes the active dev-a ----
serial_a=$(openssl x509 -in "$D/pki/identities/dev-a/cert.pem" -noout -serial | cut -d= -f2)
[ -n "$serial_a" ] || fail "no serial for dev-a"
test_ca_conf "$T/crlca2" "crlnumber = $T/crlca2/crlnumber"
echo 2000 >"$T/crlca2/crlnumber"
printf 'R\t301231000000Z\t%s\t%s\tunknown\t/CN=dev-a\n' "$(date -u +%y%m%d%H%M%SZ)" "$serial_a" \
	>"$T/crlca2/index.txt"
openssl ca -batch -config "$T/crlca2/ca.cnf" -gencrl -crldays 2 -cert "$D/pki/issuer.crt" \
	-keyfile "$D/pki/issuer.key" -out "$D/pki/crl.pem" 2>"$T/crl2.err" ||
	fail "openssl ca -gencrl: $(cat "$T/crl2.err")"
audit_is 1
has drift.crl critical
jq -e --arg s "$serial_a" '.findings[] | select(.id == "drift.crl") | .title |
	test("the active certificate " + $s + " of dev-a is listed as revoked"; "i")' >/dev/null <<<"$out" ||
	fail "drift.crl: $(jq -c '[.findings[] | select(.id == "drift.crl")]' <<<"$out")"
cp -p "$T/crl.keep" "$D/pki/crl.pem"
audit_is 0
pass "drift.crl: a CRL from openssl ca revoking an active device"

# ---- a weak identity signed with openssl and written into the registry behind moat's back
# (moat itself refuses an RSA-1024 CSR) ----
openssl req -new -newkey rsa:1024 -nodes -keyout "$T/weak1.key" -subj "/OU=device/CN=weak-1" -out "$T/weak1.csr" 2>/dev/null
# a 16-byte serial like moat's own (the registry's serials are 32 hex digits)
serial=4$(openssl rand -hex 15)a
printf 'basicConstraints = critical,CA:FALSE\nextendedKeyUsage = clientAuth\n' >"$T/client.ext"
openssl x509 -req -in "$T/weak1.csr" -CA "$D/pki/issuer.crt" -CAkey "$D/pki/issuer.key" \
	-set_serial "0x$serial" -days 30 -extfile "$T/client.ext" -out "$T/weak1.crt" 2>"$T/weak1.err" ||
	fail "openssl x509 -req: weak identity: $(cat "$T/weak1.err")"
nb=$(date -d "$(openssl x509 -in "$T/weak1.crt" -noout -startdate | cut -d= -f2)" +%s)
na=$(date -d "$(openssl x509 -in "$T/weak1.crt" -noout -enddate | cut -d= -f2)" +%s)
sqlite3 "$D/registry.db" "INSERT INTO identities (id, role, device_type, created_at) VALUES ('weak-1', 'device', 'generic', $nb);
	INSERT INTO certificates (serial, identity, not_before, not_after, pem) VALUES ('$serial', 'weak-1', $nb, $na, readfile('$T/weak1.crt'));"
audit_is 1
has pki.weak_key high
jq -e '.findings[] | select(.id == "pki.weak_key") | .title | test("device weak-1 has a weak key: RSA 1024 bits")' >/dev/null <<<"$out" || fail "weak identity: $out"
# and the broker's policy does not know it
has drift.policy critical
sqlite3 "$D/registry.db" "DELETE FROM certificates WHERE identity = 'weak-1'; DELETE FROM identities WHERE id = 'weak-1';"
audit_is 0
pass "pki.weak_key: an RSA-1024 identity made with openssl"

# ---- the policy of before a revocation ----
cp -p "$D/broker/policy" "$T/policy.keep"
moat device revoke dev-b >/dev/null
audit_is 0
cp "$T/policy.keep" "$D/broker/policy"
audit_is 1
has pki.revoked_in_policy critical
has drift.policy critical
moat broker config >/dev/null
audit_is 0
pass "a revoked device still active in broker/policy; moat broker config clears it"

# ---- --window ----
audit_is 0 --window 800d
has pki.cert_expiry medium
[ "$(jq '[.findings[] | select(.id == "pki.cert_expiry")] | length' <<<"$out")" = 3 ] || fail "800d: $out"
audit_is 0 --window 0s
[ "$(jq '[.findings[] | select(.id == "pki.cert_expiry")] | length' <<<"$out")" = 0 ] || fail "0s: $out"
expect_fail "--window without a unit" moat audit --window 30
[ "$run_rc" = 2 ] || fail "--window 30: exit $run_rc"
expect_fail "--fail-on nonsense" moat audit --fail-on severe
[ "$run_rc" = 2 ] || fail "--fail-on severe: exit $run_rc"
expect_fail "--sarif into a missing directory" moat audit --sarif "$T/missing/a.sarif"
[ "$run_rc" = 2 ] || fail "--sarif missing dir: exit $run_rc"
[ ! -e "$T/missing" ] || fail "--sarif made a directory"
mkdir "$T/empty"
expect_fail "audit of no deployment" moat --dir "$T/empty" audit
[ "$run_rc" = 2 ] || fail "no deployment: exit $run_rc"
pass "--window finds the certificates expiring in it; exit 2 when the audit cannot run"
