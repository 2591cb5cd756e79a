#!/usr/bin/env bash
# test_doctor.sh: `moat doctor` explains real failures in words, each produced for real on a
# running deployment (moat up): a device rate-limited (mosquitto_pub -l over the burst), a
# failed TLS handshake from its address (openssl s_client without a certificate) and refused
# by moatd (its certificate on /metrics); a revoked and a disabled device, a device connecting with
# the wrong client id, banned for flapping, topics denied; --connect with an expired and a
# not-yet-valid certificate (openssl), a DSA certificate TLS 1.3 cannot send, an incomplete chain, a host name the server
# certificate does not carry, a revoked certificate, the wrong client id, an ACL denial, a
# broker that is down; --envelope with a tampered and a downgraded envelope through the
# device's verifier. The last diagnostics of a real moat-agent (moat cmd ID diagnostics) in
# moat doctor, moat device show and the dashboard's device page, and a device that never
# sent any. --json and the exit statuses (0 healthy, 1 problem, 2 could not run).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_fw.sh"
broker_require
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"
broker_deploy
moat device add dev-c >/dev/null
moat device add dev-d >/dev/null
moat device add dev-e >/dev/null
moat identity add backend-service --role service >/dev/null
export MOAT_FW_PASSPHRASE="fw-e2e-signing-passphrase"
moat fw keygen >/dev/null 2>&1
head -c 20000 /dev/urandom >"$T/fw.bin"
moat fw sign "$T/fw.bin" --type generic --version 1.0.0 --security-version 2 --out "$T/fw.json" 2>/dev/null
moat_up_test
I="$D/pki/identities"

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

# ---- healthy ----
broker_pub dev-a dev-a devices/dev-a/telemetry '{"temperature":20}'
doctor_expect 0 "" "no problem found" dev-a
assert_contains "$out" "last seen by the broker"
doctor_expect 0 "" "MQTT session accepted as dev-a" --connect "127.0.0.1:$BROKER_PORT" \
	--cert "$I/dev-a/cert.pem" --key "$I/dev-a/key.pem"
pass "a healthy device and its connection: no problem, exit 0"

# ---- dev-a rate-limited, a failed handshake from its address, refused by moatd ----
# 60 messages in one session, over the device burst of 20 ([policy] device_burst)
# shellcheck disable=SC2046
seq 1 60 | sed 's/.*/{"n":&}/' | timeout "$(deadline 20)" mosquitto_pub $(broker_args dev-a dev-a) -V mqttv5 -q 0 \
	-t devices/dev-a/telemetry -l || fail "mosquitto_pub -l"
wait_for 10 grep -q '"kind":"rate_limited".*"identity":"dev-a"' "$D/log/security-events.jsonl" ||
	fail "no rate_limited event for dev-a"
# after dev-a's last connection, a handshake from 127.0.0.1 without a client certificate
# A handshake that fails while Mosquitto accepts the connection (its data all there already,
# as on a loaded machine) never reaches the plugin: only moatd's reader of the broker's log
# records it (tls_refused). Either record is the refusal's security event; doctor reads both.
n_tls=$(grep -c '"tls_handshake_failed"' "$D/log/security-events.jsonl" || true)
n_refused=$(grep -c 'kind=tls_refused address=127.0.0.1 ' "$D/log/moatd.log" || true)
timeout "$(deadline 10)" openssl s_client -connect "127.0.0.1:$BROKER_PORT" -CAfile "$D/pki/ca.crt" \
	</dev/null >/dev/null 2>&1 || true
tls_recorded() {
	count_gt "$D/log/security-events.jsonl" '"tls_handshake_failed"' "$n_tls" ||
		count_gt "$D/log/moatd.log" 'kind=tls_refused address=127\.0\.0\.1 ' "$n_refused"
}
wait_for 10 tls_recorded || fail "the failed handshake was not recorded"
# dev-a's certificate on moatd's /metrics, which is for operators only
code=$(curl -s --cacert "$D/pki/ca.crt" --cert "$I/dev-a/cert.pem" --key "$I/dev-a/key.pem" \
	-o /dev/null -w '%{http_code}' "https://localhost:$SERVER_PORT/metrics") || true
[ "$code" = 403 ] || [ "$code" = 401 ] || fail "moatd answered dev-a's /metrics with $code"
wait_for 10 grep -q 'event=auth_refused .* id=dev-a ' "$D/log/moatd.log" || fail "moatd logged no refusal of dev-a"
doctor_expect 1 rate_limited "messages over its role's limits were dropped" dev-a
assert_contains "$out" "[tls_failure]"
assert_contains "$out" "the last TLS handshake failure from its address 127.0.0.1"
assert_contains "$out" "[moatd_refused]"
assert_contains "$out" "moatd refused it: "
assert_contains "$out" "id=dev-a"
pass "rate-limited, a failed TLS handshake from its address, refused by moatd: each named"

# ---- moat doctor DEVICE ----
moat device revoke dev-b >/dev/null
doctor_expect 1 revoked "is revoked" dev-b
assert_contains "$out" "moat device renew dev-b"
moat device disable dev-c >/dev/null
doctor_expect 1 disabled "it is disabled" dev-c
pass "revoked and disabled devices named"

broker_pub dev-d dev-d devices/dev-a/telemetry '{"x":1}' >/dev/null 2>&1 || true
broker_pub dev-d dev-a devices/dev-a/telemetry '{"x":1}' >/dev/null 2>&1 || true
wait_for 10 grep -q '"identity":"dev-d","client_id":"dev-a".*"client_id_mismatch"' "$D/log/security-events.jsonl" ||
	fail "the refusal was not recorded"
doctor_expect 1 client_id_mismatch "connects with client id 'dev-a', but its certificate's CN is 'dev-d'" dev-d
assert_contains "$out" "[topics_denied]"
assert_contains "$out" "write devices/dev-a/telemetry"
run_captured moat --json doctor dev-d
[ "$run_rc" -eq 1 ] || fail "--json: exit $run_rc"
printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["healthy"] is False and d["subject"] == "dev-d", d
codes = [p["code"] for p in d["problems"]]
assert "client_id_mismatch" in codes and "topics_denied" in codes, codes
' || fail "--json: $out"
pass "wrong client id and denied topics named, from the security events (and as JSON)"

# Flapping: more than 10 connects within 60 s bans a device.
for _ in $(seq 1 12); do broker_pub dev-d dev-d devices/dev-d/telemetry '{"t":1}' >/dev/null 2>&1 || true; done
wait_for 10 grep -q '"kind":"flapping_banned",.*"identity":"dev-d"' "$D/log/security-events.jsonl" ||
	fail "dev-d was not banned"
doctor_expect 1 banned_flapping "banned for flapping" dev-d
assert_contains "$out" "refused until 20"
pass "banned for flapping, and until when"

doctor_expect 1 unknown "is not in the registry" nosuch
run_captured moat doctor
[ "$run_rc" -eq 2 ] || fail "no DEVICE: exit $run_rc"
pass "an unknown device is named; bad usage exits 2"

# ---- moat doctor --connect ----
C=(--cert "$I/dev-a/cert.pem" --key "$I/dev-a/key.pem")
broker_ca_sign old dev-a expired
doctor_expect 1 certificate_expired "the certificate expired at 2020-01-02" --connect \
	"127.0.0.1:$BROKER_PORT" --cert "$T/x/old.crt" --key "$T/x/old.key"
test_ca_sign "$T/x" future "/OU=device/CN=dev-a" client -startdate 20990101000000Z \
	-enddate 20991231000000Z -cert "$D/pki/ca.crt" -keyfile "$D/pki/ca.key" -passin env:MOAT_CA_PASSPHRASE
doctor_expect 1 clock_not_synchronised "the clock is not synchronised" --connect \
	"127.0.0.1:$BROKER_PORT" --cert "$T/x/future.crt" --key "$T/x/future.key"
pass "expired and not-yet-valid certificates (openssl): expiry and clock named"

# a DSA certificate of dev-a's name, signed by the issuing CA: TLS 1.3 has no DSA signature,
# so the client sends no certificate at all and the broker asks for one
openssl genpkey -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:2048 -out "$T/dsa.param" 2>/dev/null
openssl req -newkey "param:$T/dsa.param" -nodes -keyout "$T/x/dsa.key" -subj "/OU=device/CN=dev-a" \
	-out "$T/x/dsa.csr" 2>/dev/null
openssl ca -batch -notext -config "$T/x/ca.cnf" -extensions client -cert "$D/pki/issuer.crt" \
	-keyfile "$D/pki/issuer.key" -days 30 -in "$T/x/dsa.csr" -out "$T/x/dsa.leaf" >/dev/null 2>&1 ||
	fail "openssl ca: DSA certificate"
cat "$T/x/dsa.leaf" "$D/pki/issuer.crt" >"$T/x/dsa.crt"
doctor_expect 1 no_client_certificate "requires a client certificate and none was sent" --connect \
	"127.0.0.1:$BROKER_PORT" --cert "$T/x/dsa.crt" --key "$T/x/dsa.key"
pass "a certificate TLS 1.3 cannot use (DSA): no client certificate sent, named"

openssl x509 -in "$I/dev-a/cert.pem" -out "$T/leaf-only.pem"
doctor_expect 1 chain_incomplete "chain is incomplete" --connect "127.0.0.1:$BROKER_PORT" \
	--cert "$T/leaf-only.pem" --key "$I/dev-a/key.pem"
pass "a certificate file without its issuing CA: chain incomplete"

doctor_expect 1 hostname_mismatch "the name 'broker.example' is not in the server certificate" \
	--connect "127.0.0.1:$BROKER_PORT" --server-name broker.example "${C[@]}"
assert_contains "$out" "it is for: "
pass "a host name the server certificate does not carry"

doctor_expect 1 client_id_mismatch "the client id 'dev-b' is not the certificate's CN 'dev-a'" \
	--connect "127.0.0.1:$BROKER_PORT" "${C[@]}" --client-id dev-b
doctor_expect 1 identity_refused "the broker refused the session" --connect \
	"127.0.0.1:$BROKER_PORT" --cert "$I/dev-c/cert.pem" --key "$I/dev-c/key.pem"
pass "wrong client id, and an identity the broker refuses"

doctor_expect 1 acl_denied "the broker's ACL denies dev-a the topic filter 'devices/dev-b/telemetry'" \
	--connect "127.0.0.1:$BROKER_PORT" "${C[@]}" --subscribe devices/dev-b/telemetry
pass "a topic the ACL denies"

cp "$I/dev-b/cert.pem" "$T/revoked.pem"
doctor_expect 1 certificate_revoked "as revoked" --connect "127.0.0.1:$BROKER_PORT" \
	--cert "$T/revoked.pem" --key "$I/dev-b/key.pem"
pass "a revoked certificate"

down_port=$(free_port)
doctor_expect 1 broker_unreachable "the broker is unreachable at 127.0.0.1 port $down_port" \
	--connect "127.0.0.1:$down_port" "${C[@]}"
run_captured moat --json doctor --connect "127.0.0.1:$down_port" "${C[@]}"
assert_contains "$out" '"code":"broker_unreachable"'
pass "a broker that is down (text and JSON)"

# A server that speaks only TLS 1.1 (openssl s_server with the deployment's certificate).
old_port=$(free_port)
openssl s_server -quiet -accept "$old_port" -cert "$D/pki/server.crt" -key "$D/pki/server.key" \
	-tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' >/dev/null 2>&1 </dev/null &
E2E_PIDS+=($!)
wait_for 10 python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$old_port" ||
	fail "openssl s_server did not start"
doctor_expect 1 version_or_cipher_mismatch "TLS version or cipher mismatch" \
	--connect "127.0.0.1:$old_port" "${C[@]}"
pass "a server that speaks only TLS 1.1: version mismatch"

# ---- moat doctor --envelope ----
E=(--image "$T/fw.bin" --device-type generic)
doctor_expect 0 "" "accepted: version 1.0.0" --envelope "$T/fw.json" "${E[@]}" --floor 2
env_edit "$T/fw.json" "$T/tampered.json" 'p["size"] = p["size"]; p["version"] = "9.9.9"; set_payload(p)'
doctor_expect 1 bad_signature "tampered with after signing" --envelope "$T/tampered.json" "${E[@]}" --floor 0
doctor_expect 1 downgrade "a downgrade: the security version is below the device's floor" \
	--envelope "$T/fw.json" "${E[@]}" --floor 3
assert_contains "$out" "The verifier says:"
doctor_expect 1 wrong_type "for another device type" --envelope "$T/fw.json" --image "$T/fw.bin" \
	--device-type camera --floor 0
pass "tampered, downgraded and mismatched envelopes explained by the device's verifier"

# ---- an update the device refused, as it reports it (moatd ingests it) ----
wait_for 30 grep -q "event=ingest_subscribed" "$D/log/moatd.log" || fail "moatd's ingest not subscribed"
broker_pub dev-a dev-a devices/dev-a/diagnostics \
	'{"event":"update","stage":"refused","version":"1.0.1","running":"1.0.0","reason":"bad_signature: signature by trusted key 0123 does not verify"}'
wait_for 20 grep -q "event=update_event id=dev-a stage=refused" "$D/log/moatd.log" || fail "refusal not ingested"
doctor_expect 1 update_refused "the device refused the update 1.0.1: bad_signature" dev-a
assert_contains "$out" "last update report: refused of 1.0.1"
pass "an update the device refused, with its reason, from moatd's records"

# ---- last diagnostics: a real moat-agent answers `moat cmd dev-e diagnostics` ----
doctor_expect 0 "" "no diagnostics report received from it (moat cmd dev-e diagnostics asks for one)" dev-e
run_captured moat --json doctor dev-e
assert_contains "$out" '"last_diagnostics":null'
moat device export dev-e --format agent --out "$T/dev-e" >/dev/null
moat-agent --config "$T/dev-e/agent.conf" 2>"$T/agent-e.log" &
AGENT_E=$!
E2E_PIDS+=("$AGENT_E")
t0_ms=$(date +%s%3N)
moat cmd dev-e diagnostics --wait --as op-1 --timeout "$(deadline 15s)" >"$T/cmd-e" 2>&1 ||
	fail "moat cmd dev-e diagnostics: $(cat "$T/cmd-e"); agent: $(tail -3 "$T/agent-e.log")"
assert_contains "$(cat "$T/cmd-e")" "dev-e diagnostics: completed"
# (doctor's exit status says whether it found problems: only its words matter here)
has_diagnostics() {
	local o
	o=$(moat doctor dev-e 2>/dev/null) || true
	qgrep "last diagnostics received at" <<<"$o"
}
wait_for 20 has_diagnostics || fail "moatd kept no diagnostics of dev-e: $(moat doctor dev-e)"
doctor_expect 0 "" "last diagnostics received at 20" dev-e
assert_contains "$out" "agent_version $(moat-agent --version | awk '{print $NF}')"
assert_contains "$out" "kernel $(uname -s) $(uname -r) $(uname -m)"
run_captured moat --json doctor dev-e
printf '%s' "$out" | python3 -c '
import json, sys, time
d = json.load(sys.stdin)
diag = d["last_diagnostics"]
f = diag["fields"]
t0 = int(sys.argv[1])
assert t0 <= diag["received_ms"] <= time.time() * 1000 + 1000, (t0, diag)
assert diag["received"].startswith(time.strftime("%Y-", time.gmtime())), diag
assert f["uptime_ms"] >= 0 and f["rss_kb"] > 0 and f["seq"] >= 0 and f["queued"] >= 0, f
assert f["interval_s"] >= 1 and "load_1m" in f and f["system_uptime_s"] > 0, f
' "$t0_ms" || fail "--json last_diagnostics: $out"
run_captured moat device show dev-e
assert_contains "$out" "diagnostics: received at 20"
assert_contains "$out" "rss_kb "
run_captured moat --json device show dev-e
printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["last_diagnostics"]["fields"]["rss_kb"] > 0, d
' || fail "device show --json: $out"
run_captured moat device show dev-c
assert_contains "$out" "diagnostics: none received"
kill -TERM "$AGENT_E"
wait "$AGENT_E" || fail "moat-agent did not stop cleanly: $(tail -3 "$T/agent-e.log")"
pass "a real agent's diagnostics (moat cmd): moat doctor and moat device show give its values and time; never sent: said so"

# the dashboard's device page: "Last diagnostics", and none for a device that never sent one
link=$(moat --json dashboard --operator op-1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
curl -sS --cacert "$D/pki/ca.crt" -o /dev/null -D "$T/dash-h" "$link" || fail "sign-in link"
cookie=$(sed -n 's/^[Ss]et-[Cc]ookie: \(moat_session=[0-9a-f]*\);.*/\1/p' "$T/dash-h")
[ -n "$cookie" ] || fail "no session cookie: $(cat "$T/dash-h")"
base="https://localhost:$SERVER_PORT/dashboard"
curl -sS --cacert "$D/pki/ca.crt" -H "Cookie: $cookie" -o "$T/page-e" "$base/device/dev-e" || fail "device page"
assert_contains "$(cat "$T/page-e")" "<h2>Last diagnostics</h2><table id=\"diagnostics\"><tr><th>received</th><td id=\"diag-received\">20"
assert_contains "$(cat "$T/page-e")" "<tr><th>kernel</th><td>$(uname -s) $(uname -r) $(uname -m)</td></tr>"
curl -sS --cacert "$D/pki/ca.crt" -H "Cookie: $cookie" -o "$T/page-c" "$base/device/dev-c" || fail "device page"
assert_contains "$(cat "$T/page-c")" '<p id="no-diagnostics">No diagnostics report received.</p>'
pass "the dashboard's device page: Last diagnostics, or none received"
