#!/usr/bin/env bash
# test_enroll_claim.sh: moat-agent enrolls with a claim certificate (a manufacturer's
# certificate put on the device in the factory, from a CA registered with `moat ca claim
# add`) over EST against the real moatd, then connects to the deployment's broker (`moat up`,
# the moat plugin) and publishes. Refused, with nothing enrolled and nothing published: a
# claim certificate from a CA nobody registered, and a claim certificate that maps to
# another device than the agent's own id (whose claim stays unused).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_moatd.sh"
source "$(dirname "$0")/lib_broker.sh"

broker_require
agent_plugin_init
moat identity add ops --role operator >/dev/null

# The maker's factory CA and its claim certificates; another CA nobody registered.
M="$T/maker"
mkdir -p "$M"
test_ca_conf "$M"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$M/ca.key" \
	-subj "/O=Maker/CN=Maker Factory CA" -days 30 -out "$M/ca.crt" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
for n in 0007 0009; do
	test_ca_sign "$M" "sn$n" "/O=Maker/CN=SN-$n" client -cert "$M/ca.crt" -keyfile "$M/ca.key" -days 20
done
O="$T/other"
mkdir -p "$O"
test_ca_conf "$O"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$O/ca.key" \
	-subj "/CN=Unregistered CA" -days 30 -out "$O/ca.crt" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
test_ca_sign "$O" sn0008 "/O=Maker/CN=SN-0008" client -cert "$O/ca.crt" -keyfile "$O/ca.key" -days 20

expect_ok "moat ca claim add" moat ca claim add "$M/ca.crt"
for n in 7 8 9; do
	moat device add "dev$n" --type sensor --claim-cn "SN-000$n" >/dev/null
done
moat_up_test
wait_for 20 grep -q "event=listening addr=127.0.0.1 port=$SERVER_PORT" "$D/log/moatd.log" ||
	fail "moatd not listening: $(tail -5 "$D/log/moatd.log")"
mark=$(log_lines "$D/log/mosquitto.log")
moat watch --all --json --as ops --timeout "$(deadline 120s)" >"$T/watch.json" 2>"$T/watch.err" &
E2E_PIDS+=($!)
watch_wait_subscribed "$D/log/mosquitto.log" "$mark" ops $!

# claim_agent ID CLAIM_CERT CLAIM_KEY: ID's enrolling configuration (moat device export),
# with CLAIM_CERT and CLAIM_KEY as the factory put them on the device; sets $CONF.
claim_agent() {
	rm -rf "${T:?}/$1" # a fresh device each time: exports never overwrite
	expect_ok "export $1's enrolling configuration" moat device export "$1" --format agent --out "$T/$1"
	CONF="$T/$1/agent.conf"
	grep -q '^claim_cert' "$CONF" || fail "no claim_cert in $1's [enroll]: $(cat "$CONF")"
	[ -z "$(find "$T/$1" -name 'key.pem' -o -name 'cert.pem')" ] || fail "the export holds a key or certificate"
	cp "$2" "$T/$1/claim.crt"
	(umask 077 && cp "$3" "$T/$1/claim.key")
	agent_set "$CONF" agent interval 200ms
	agent_set "$CONF" broker reconnect_min 100ms
	agent_set "$CONF" broker reconnect_max 1000ms
	agent_set "$CONF" enroll retry_min 200ms
	agent_set "$CONF" enroll retry_max 1s
}
refused_count() { grep -c "event=est_refused.*reason=$1" "$D/log/moatd.log" || true; }

# ---- refused: a claim certificate from a CA nobody registered ----
claim_agent dev8 "$O/sn0008.crt" "$O/sn0008.key"
before=$(refused_count claim_not_verified)
agent_start "$T/agent8.log"
wait_for 20 count_at_least 2 'event=enroll_refused' "$T/agent8.log" ||
	fail "dev8 not refused: $(tail -5 "$T/agent8.log")"
wait_for 10 count_at_least $((before + 2)) "reason=claim_not_verified" "$D/log/moatd.log" ||
	fail "moatd did not refuse the unregistered claim CA: $(grep est_refused "$D/log/moatd.log" | tail -3)"
kill -TERM "$AGENT"
wait "$AGENT" || true
[ -z "$(find "$T/dev8" -name cert.pem)" ] || fail "dev8 got a certificate"
[ "$(moat --json device show dev8 | jq -r '.identity.status')" = active ] || fail "dev8 changed"
grep -q '"device_id":"dev8"' "$T/watch.json" && fail "dev8 published"
pass "a claim certificate from an unregistered CA: refused by moatd, nothing enrolled"

# ---- refused: a claim certificate that names another device (SN-0009 is dev9's) ----
claim_agent dev8 "$M/sn0009.crt" "$M/sn0009.key"
before=$(refused_count csr_for_another_identity)
agent_start "$T/agent8b.log"
wait_for 20 count_at_least 2 'event=enroll_refused' "$T/agent8b.log" ||
	fail "dev8 with dev9's claim not refused: $(tail -5 "$T/agent8b.log")"
wait_for 10 count_at_least $((before + 2)) "reason=csr_for_another_identity" "$D/log/moatd.log" ||
	fail "moatd did not refuse a CSR for another device: $(grep est_refused "$D/log/moatd.log" | tail -3)"
grep -q "event=est_refused.*id=dev9 claim=SN-0009.*reason=csr_for_another_identity" "$D/log/moatd.log" ||
	fail "the refusal does not name the claimed device: $(grep est_refused "$D/log/moatd.log" | tail -2)"
kill -TERM "$AGENT"
wait "$AGENT" || true
[ -z "$(find "$T/dev8" -name cert.pem)" ] || fail "dev8 got a certificate with dev9's claim"
[ ! -e "$D/pki/identities/dev9/cert.pem" ] || fail "dev9 was issued a certificate"
pass "a claim certificate mapping to another device: refused, and that device's claim stays unused"

# ---- enrolled with its own claim certificate, then connects and publishes ----
claim_agent dev7 "$M/sn0007.crt" "$M/sn0007.key"
agent_start "$T/agent7.log"
wait_grep 20 'event=enrolled' "$T/agent7.log" || fail "dev7 did not enroll: $(tail -5 "$T/agent7.log")"
grep -q "event=est_enrolled.*id=dev7" "$D/log/moatd.log" || fail "moatd logged no est_enrolled for dev7"
ident=$T/dev7/state/identity
[ "$(mode_of "$ident/current/key.pem")" = 600 ] || fail "key.pem mode $(mode_of "$ident/current/key.pem")"
openssl verify -CAfile "$D/pki/ca.crt" -untrusted "$ident/current/cert.pem" "$ident/current/cert.pem" >/dev/null ||
	fail "the enrolled certificate does not verify against the root"
openssl x509 -in "$ident/current/cert.pem" -noout -subject | qgrep "CN = dev7" ||
	fail "not dev7's certificate: $(openssl x509 -in "$ident/current/cert.pem" -noout -subject)"
[ ! -e "$D/pki/identities/dev7/key.pem" ] || fail "a key for dev7 exists on the operator's side"
wait_grep 20 '"device_id":"dev7"' "$T/watch.json" ||
	fail "no telemetry from dev7 through the plugin: $(tail -5 "$T/agent7.log")"
pass "moat-agent enrolled with its claim certificate over EST, connected to the broker and published"

# the claim is used: the same factory certificate cannot enroll again
expect_status_claim() {
	curl -sS -o /dev/null -w '%{http_code}' --cacert "$D/pki/ca.crt" --cert "$M/sn0007.crt" \
		--key "$M/sn0007.key" -H 'Content-Type: application/pkcs10' --data-binary x \
		"https://localhost:$SERVER_PORT/.well-known/est/simpleenroll" || true
}
[ "$(expect_status_claim)" = 403 ] || fail "dev7's claim certificate accepted a second time"
grep -q "event=est_refused.*reason=claim_used" "$D/log/moatd.log" || fail "no claim_used refusal"
pass "a used claim certificate is refused"
kill -TERM "$AGENT"
wait "$AGENT" || true
agent_sanitizer_clean "$T"/*.log
