#!/usr/bin/env bash
# test_monitor_tls.sh: clients the broker refuses in the TLS handshake become tls_refused
# security events, with their source address and the reason Mosquitto logged, through
# `moat up` (real Mosquitto with the plugin, real moatd following log/mosquitto.log):
# no client certificate (no_certificate); a certificate from another CA, a revoked one and
# an expired one (certificate_not_verified: Mosquitto 2.0 logs these alike); plain MQTT on
# the TLS port (not_tls). A device with its own certificate makes none. After a log
# rotation by renaming and SIGHUP, refusals are still recorded.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
command -v jq >/dev/null || skip "jq not installed"

e2e_init
chmod 0755 "$T"
moat device add dev-a --type sensor >/dev/null
moat device add dev-r --type sensor >/dev/null
moat identity add backend-service --role service >/dev/null
# the test's own CA, unknown to the deployment; and an expired certificate for dev-a,
# signed by the deployment's own issuing CA
X="$T/x"
mkdir -p "$X"
test_ca_conf "$X"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$X/ca.key" \
	-subj "/CN=Other CA" -days 2 -out "$X/ca.crt" -addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
test_ca_sign "$X" other "/CN=dev-a/OU=device" client -cert "$X/ca.crt" -keyfile "$X/ca.key" -days 1
test_ca_sign "$X" old "/CN=dev-a/OU=device" client -cert "$D/pki/issuer.crt" \
	-keyfile "$D/pki/issuer.key" -startdate 20200101000000Z -enddate 20200102000000Z
cat "$X/old.crt" "$D/pki/issuer.crt" >"$X/old.chain"

moat_up_test
wait_for 30 grep -q "event=ingest_subscribed" "$D/log/moatd.log" ||
	fail "moatd did not subscribe: $(tail -3 "$D/log/moatd.log")"
moat device revoke dev-r >/dev/null || fail "revoke dev-r"
wait_for 20 grep -q "CRL reloaded: 1 revoked" "$D/log/mosquitto.log" || fail "the broker did not reload the CRL"

refusals() { moat --json events --kind tls_refused; }
n_refusals() { refusals | wc -l; }
# refused LABEL REASON CLIENT-ARGS...: the client is refused, and one more tls_refused
# event says REASON from 127.0.0.1
refused() {
	local label=$1 reason=$2 before
	shift 2
	before=$(n_refusals)
	if timeout "$(deadline 10)" mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" -i dev-a -t devices/dev-a/telemetry -m x "$@" >/dev/null 2>&1; then
		fail "$label: the broker accepted it"
	fi
	more() { [ "$(n_refusals)" -gt "$before" ]; }
	wait_for 15 more || fail "$label: no tls_refused event (moatd: $(grep -E 'broker_log|tls_refused' "$D/log/moatd.log" | tail -2))"
	[ "$(n_refusals)" -eq $((before + 1)) ] || fail "$label: more than one event: $(refusals)"
	refusals | tail -1 | jq -e --arg r "$reason" '.kind == "tls_refused" and .source == "moatd" and
		.address == "127.0.0.1" and (.evidence | startswith("reason=" + $r + " openssl="))' >/dev/null ||
		fail "$label: not as expected: $(refusals | tail -1)"
	pass "$label: tls_refused reason=$reason from 127.0.0.1"
}

refused "no client certificate" no_certificate --cafile "$D/pki/ca.crt"
refused "a certificate from another CA" certificate_not_verified --cafile "$D/pki/ca.crt" \
	--cert "$X/other.crt" --key "$X/other.key"
refused "a revoked certificate" certificate_not_verified --cafile "$D/pki/ca.crt" \
	--cert "$D/pki/identities/dev-r/cert.pem" --key "$D/pki/identities/dev-r/key.pem" -i dev-r
refused "an expired certificate" certificate_not_verified --cafile "$D/pki/ca.crt" \
	--cert "$X/old.chain" --key "$X/old.key"
refused "plain MQTT on the TLS port" not_tls

# a device with its own certificate: accepted, and no refusal (its telemetry recorded first,
# then a last refusal, so nothing of the good one can still be on its way)
before=$(n_refusals)
# shellcheck disable=SC2046
timeout "$(deadline 10)" mosquitto_pub $(broker_args dev-a) -q 1 -t devices/dev-a/telemetry \
	-m "{\"device_id\":\"dev-a\",\"device_type\":\"sensor\",\"timestamp\":$(date +%s%3N),\"telemetry\":{\"t\":1}}" ||
	fail "dev-a could not publish"
refused "no client certificate, again" no_certificate --cafile "$D/pki/ca.crt"
[ "$(n_refusals)" -eq $((before + 1)) ] || fail "a good connection made a tls_refused event"
pass "a device with its own certificate makes no tls_refused event"

# rotation by renaming, then SIGHUP to moat up's supervisor (what a logrotate without
# copytruncate does): the supervisor creates both files again, owned as before (log/ is
# root's: the broker's user could not), Mosquitto and the plugin reopen them, and moatd
# follows the new broker log (its account's group reads it): refusals still recorded
own() { stat -c '%U:%G %a' "$1"; }
log_owner=$(own "$D/log/mosquitto.log")
events_owner=$(own "$D/log/security-events.jsonl")
case "$log_owner" in mosquitto:moat\ 640) ;; *) fail "log/mosquitto.log is $log_owner (want mosquitto:moat 640: moatd reads it by name)" ;; esac
mv "$D/log/mosquitto.log" "$D/log/mosquitto.log.1"
mv "$D/log/security-events.jsonl" "$D/log/security-events.jsonl.1"
kill -HUP "$(cat "$D/run/supervise.pid")"
wait_for 10 grep -q "event=log_created file=$D/log/security-events.jsonl" "$D/log/supervisor.log" ||
	fail "the supervisor did not create the logs again: $(tail -3 "$D/log/supervisor.log")"
wait_for 10 grep -q "events file reopened" "$D/log/mosquitto.log.1" ||
	fail "the plugin did not reopen its events file: $(tail -3 "$D/log/mosquitto.log.1")"
[ "$(own "$D/log/mosquitto.log")" = "$log_owner" ] || fail "new log/mosquitto.log: $(own "$D/log/mosquitto.log")"
[ "$(own "$D/log/security-events.jsonl")" = "$events_owner" ] || fail "new events file: $(own "$D/log/security-events.jsonl" 2>&1)"
refused "no client certificate, after the logs were rotated" no_certificate --cafile "$D/pki/ca.crt"
# (Mosquitto words a failed handshake "OpenSSL Error[0]: ..." or, when it fails while
# accepting, "Client connection from ... failed: ...")
grep -Eq "OpenSSL Error|Client connection from 127\.0\.0\.1 failed" "$D/log/mosquitto.log" ||
	fail "Mosquitto did not log the refusal into the new log/mosquitto.log: $(cat "$D/log/mosquitto.log")"
wait_for 10 grep -q '"kind":"auth_refused"' "$D/log/security-events.jsonl" ||
	fail "the plugin did not write into the new events file"
pass "logs rotated by renaming: created again by the supervisor, followed by moatd"
moat down --timeout "$(deadline 20s)" >/dev/null
if grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$D/log/moatd.log"; then
	fail "sanitizer report in moatd.log"
fi
