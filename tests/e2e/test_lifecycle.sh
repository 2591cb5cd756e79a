#!/usr/bin/env bash
# test_lifecycle.sh: an identity's life after `moat device add`, on a deployment run by
# `moat up` (Mosquitto with moat_broker.so, and moatd):
# - `moat device disable`: the connected device is kicked within 2 s (its own client sees the
#   connection closed), the broker refuses it (auth_refused, reason disabled) and moatd
#   answers 403 identity_disabled with an auth_refused line; nothing is revoked (the CRL does
#   not list it) and `moat device enable` lets the same certificate in again. The same for a
#   service with `moat identity disable`.
# - `moat device renew` of a device revoked for key compromise is refused without --force;
#   with --force it says so and the device gets a new key, never the old one.
# - `moat device delete`: revokes (the client is kicked), removes the files and the registry
#   rows, keeps the revocation in the CRL (re-signed too) and a record of the deletion;
#   deleting twice is refused; the name can be added again, as a new identity with a new key,
#   while the old certificate stays refused by the broker and by moatd.
# Every refusal of the commands themselves is a one-line error and a non-zero exit.
source "$MOAT_SRC/tests/e2e/lib.sh"
source "$MOAT_SRC/tests/e2e/lib_broker.sh"
source "$MOAT_SRC/tests/e2e/lib_moatd.sh"

plugin_require
command -v curl >/dev/null || skip "curl not installed"
chmod 755 "$T"
e2e_init
PLUGIN_EVENTS="$D/log/security-events.jsonl"
PLUGIN_PORT=$BROKER_PORT
for d in dev-1 dev-2 dev-3 dev-4; do moat device add "$d" >/dev/null; done
moat identity add svc-1 --role service >/dev/null
moat identity add backend-service --role service >/dev/null
moat_up_test
wait_for 20 grep -q "event=listening addr=127.0.0.1 port=$SERVER_PORT" "$D/log/moatd.log" ||
	fail "moatd not listening: $(tail -5 "$D/log/moatd.log")"

# Client options for identity $1 from files in directory $2 (default: its deployment files).
client_args() {
	local i=${2:-$D/pki/identities/$1}
	echo "-h 127.0.0.1 -p $PLUGIN_PORT --cafile $D/pki/ca.crt --cert $i/cert.pem --key $i/key.pem -i $1"
}
sub_bg() { # ID OUTFILE TOPIC [DIR]: background subscriber; sets SUB_PID
	: >"$2"
	local before
	before=$(plugin_events connected "$1" | wc -l)
	# shellcheck disable=SC2046
	e2e_bg stdbuf -oL mosquitto_sub $(client_args "$1" "${4:-}") -V mqttv5 -q 1 -v -t "$3" \
		>"$2" 2>"$2.err"
	SUB_PID=$!
	wait_for 10 plugin_more_events connected "$1" "" "$before" || fail "$1 did not connect: $(cat "$2.err")"
}
pub() { # ID [DIR]: one telemetry message
	# shellcheck disable=SC2046
	timeout "$(deadline 20)" mosquitto_pub $(client_args "$1" "${2:-}") -V mqttv5 -q 1 \
		-t "devices/$1/telemetry" -m "{\"device_id\":\"$1\"}"
}
# curl as identity $1 from files in $2 (default: its deployment files): the HTTP status.
mcurl() {
	local i=${2:-$D/pki/identities/$1}
	curl -sS --cacert "$D/pki/ca.crt" --cert "$i/cert.pem" --key "$i/key.pem" -o "$T/body" \
		-w '%{http_code}' "$(url /api/firmware/version)" || true
}
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2 | tr '[:upper:]' '[:lower:]'; }
crl_lists() { # SERIAL: pki/crl.pem lists it
	local text
	text=$(openssl crl -in "$D/pki/crl.pem" -noout -text | tr '[:upper:]' '[:lower:]')
	grep -q "serial number: $1" <<<"$text"
}
status_of() { moat --json device show "$1" | jq -r .identity.status; }
pubkey_of() { openssl pkey -in "$1" -pubout; }

expect_status 204 "dev-1 is served by moatd before it is disabled" dev-1 "$(url /api/firmware/version)"

# --- disable: kicked, refused by the broker and by moatd, not revoked ------------------
sub_bg dev-1 "$T/dev-1.out" 'devices/dev-1/commands/#'
DEV1_SUB=$SUB_PID
serial1=$(serial_of "$D/pki/identities/dev-1/cert.pem")
expect_ok "moat device disable dev-1" moat device disable dev-1
assert_contains "$out" "disabled dev-1"
plugin_kicked_within dev-1 disabled "$D/broker/policy"
plugin_client_closed "$DEV1_SUB" "$T/dev-1.out.err" dev-1
expect_fail "dev-1 connects while disabled" pub dev-1
plugin_expect_event auth_refused dev-1 disabled
expect_status 403 "moatd refuses disabled dev-1" dev-1 "$(url /api/firmware/version)"
assert_contains "$(cat "$T/body")" "identity_disabled"
wait_for 10 grep -q "event=auth_refused client=127.0.0.1 id=dev-1 reason=identity_disabled" \
	"$D/log/moatd.log" || fail "moatd logged no auth_refused for disabled dev-1"
if crl_lists "$serial1"; then fail "disabling dev-1 put its certificate in the CRL"; fi
[ "$(status_of dev-1)" = disabled ] || fail "show: dev-1 is not disabled"
list=$(moat device list)
grep -Eq '^dev-1 +device +generic +disabled ' <<<"$list" || fail "list: dev-1 not disabled: $list"
pass "disabled dev-1 kicked and refused by broker and moatd, not revoked"

# refusals of the commands
expect_fail "disable twice" moat device disable dev-1
assert_contains "$errout" "already disabled"
expect_fail "renew a disabled device" moat device renew dev-1
assert_contains "$errout" "enable it before renewing"
expect_fail "export a disabled device" moat device export dev-1 --out "$T/x1"
expect_fail "enable an active device" moat device enable dev-2
assert_contains "$errout" "already active"
expect_fail "disable an unknown device" moat device disable nobody
assert_contains "$errout" "not found"
expect_fail "disable a service through moat device" moat device disable svc-1
assert_contains "$errout" "not a device"
expect_fail "disable with an operand too many" moat device disable dev-2 dev-3
expect_fail "disable with an option it does not take" moat device disable dev-2 --days 3
expect_fail "disable a bad name" moat device disable 'Bad/Name'

# --- enable: the same certificate is accepted again -------------------------------------
expect_ok "moat device enable dev-1" moat device enable dev-1
[ "$(serial_of "$D/pki/identities/dev-1/cert.pem")" = "$serial1" ] || fail "enable changed the certificate"
sub_bg dev-1 "$T/dev-1b.out" 'devices/dev-1/commands/#'
expect_ok "dev-1 publishes again" pub dev-1
expect_status 204 "moatd serves dev-1 again" dev-1 "$(url /api/firmware/version)"
[ "$(status_of dev-1)" = active ] || fail "show: dev-1 is not active"
pass "enabled dev-1 is back with the same certificate"

# --- a service: moat identity disable / enable --------------------------------------------
sub_bg svc-1 "$T/svc.out" 'devices/+/telemetry'
SVC_SUB=$SUB_PID
expect_ok "moat identity disable svc-1" moat identity disable svc-1
plugin_kicked_within svc-1 disabled "$D/broker/policy"
plugin_client_closed "$SVC_SUB" "$T/svc.out.err" svc-1
list=$(moat identity list)
grep -Eq '^svc-1 +service +- +disabled ' <<<"$list" || fail "identity list: svc-1 not disabled: $list"
expect_ok "moat identity enable svc-1" moat identity enable svc-1
sub_bg svc-1 "$T/svc2.out" 'devices/+/telemetry'
pass "a service disabled and enabled with moat identity"

# --- renew after key compromise -----------------------------------------------------------
cp "$D/pki/identities/dev-2/key.pem" "$T/dev-2-old.key"
mkdir -p "$T/dev-2-old" && cp "$D/pki/identities/dev-2/"* "$T/dev-2-old/"
serial2=$(serial_of "$D/pki/identities/dev-2/cert.pem")
expect_ok "revoke dev-2 for key compromise" moat device revoke dev-2 --reason key-compromise
expect_fail "renew a device revoked for key compromise" moat device renew dev-2
assert_contains "$errout" "key-compromise"
assert_contains "$errout" "--force"
[ "$(status_of dev-2)" = revoked ] || fail "the refused renewal changed dev-2's status"
[ "$(serial_of "$D/pki/identities/dev-2/cert.pem")" = "$serial2" ] || fail "the refused renewal wrote a certificate"
expect_fail "dev-2 stays refused" pub dev-2
expect_fail "disable a revoked device" moat device disable dev-2
assert_contains "$errout" "revoked"
expect_fail "enable never revives a revoked device" moat device enable dev-2
assert_contains "$errout" "never revives"
expect_fail "renew --force takes no value" moat device renew dev-2 --force=yes
expect_ok "renew dev-2 --force" moat device renew dev-2 --force
assert_contains "$errout" "was revoked for key-compromise"
assert_contains "$errout" "new key"
[ "$(serial_of "$D/pki/identities/dev-2/cert.pem")" != "$serial2" ] || fail "no new certificate"
[ "$(pubkey_of "$D/pki/identities/dev-2/key.pem")" != "$(pubkey_of "$T/dev-2-old.key")" ] ||
	fail "the renewed dev-2 kept its compromised key"
[ "$(status_of dev-2)" = active ] || fail "dev-2 not active after renew --force"
expect_ok "dev-2 publishes with its new key" pub dev-2
expect_fail "dev-2's compromised key stays refused" pub dev-2 "$T/dev-2-old"
crl_lists "$serial2" || fail "the compromised certificate left the CRL"
# A device renewed after compromise renews normally afterwards: the rule is about the
# current certificate.
expect_ok "renew dev-2 again without --force" moat device renew dev-2
# Other revocation reasons renew as before.
expect_ok "revoke dev-4 (superseded)" moat device revoke dev-4 --reason superseded
expect_ok "renew dev-4 without --force" moat device renew dev-4
pass "renewing after key compromise needs --force and gives a new key"

# --- delete ---------------------------------------------------------------------------------
sub_bg dev-3 "$T/dev-3.out" 'devices/dev-3/commands/#'
DEV3_SUB=$SUB_PID
mkdir -p "$T/dev-3-old" && cp "$D/pki/identities/dev-3/"* "$T/dev-3-old/"
serial3=$(serial_of "$D/pki/identities/dev-3/cert.pem")
expect_ok "moat device delete dev-3" moat device delete dev-3
assert_contains "$out" "deleted dev-3"
plugin_kicked_within dev-3 certificate_revoked "$D/pki/crl.pem"
plugin_client_closed "$DEV3_SUB" "$T/dev-3.out.err" dev-3
[ ! -e "$D/pki/identities/dev-3" ] || fail "pki/identities/dev-3 is still there"
crl_lists "$serial3" || fail "dev-3's certificate is not in the CRL"
list=$(moat device list)
if grep -q '^dev-3 ' <<<"$list"; then fail "list still shows dev-3"; fi
expect_fail "show a deleted device" moat device show dev-3
assert_contains "$errout" "deleted"
assert_contains "$errout" "$serial3"
expect_fail "delete twice" moat device delete dev-3
assert_contains "$errout" "not found"
expect_fail "delete an unknown device" moat device delete never-was
expect_fail "delete with a bad reason" moat device delete dev-4 --reason because
expect_fail "delete a service through moat device" moat device delete svc-1
# the registry: no rows of dev-3, its certificate kept, one deletion recorded
python3 - "$D/registry.db" "$serial3" <<'PY' || fail "registry rows of the deleted dev-3"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
q = lambda s, *a: db.execute(s, a).fetchone()[0]
assert q("SELECT COUNT(*) FROM identities WHERE id='dev-3'") == 0
assert q("SELECT COUNT(*) FROM certificates WHERE identity='dev-3'") == 0
assert q("SELECT COUNT(*) FROM deleted_certificates WHERE serial=? AND revoked_at IS NOT NULL", sys.argv[2]) == 1
assert q("SELECT reason FROM deleted_certificates WHERE serial=?", sys.argv[2]) == 5
assert q("SELECT COUNT(*) FROM identity_deletions WHERE id='dev-3' AND last_serial=?", sys.argv[2]) == 1
PY
# Mosquitto's own CRL check refuses it in the handshake: the plugin reports that refusal
handshakes=$(plugin_events auth_refused "" tls_handshake_failed | wc -l)
expect_fail "the deleted dev-3's certificate is refused by the broker" pub dev-3 "$T/dev-3-old"
wait_for 10 plugin_more_events auth_refused "" tls_handshake_failed "$handshakes" ||
	fail "no security event for the deleted dev-3's refused handshake"
[ "$(mcurl dev-3 "$T/dev-3-old")" = 403 ] || fail "moatd did not refuse the deleted dev-3"
assert_contains "$(cat "$T/body")" "certificate_revoked"
# re-signing the CRL from the registry keeps the deleted certificate
expect_ok "moat cert crl" moat cert crl
crl_lists "$serial3" || fail "a re-signed CRL dropped the deleted dev-3's certificate"
pass "deleted dev-3: revoked and kicked, files and rows gone, revocation and record kept"

# --- the name again: a new identity ---------------------------------------------------------
expect_ok "add dev-3 again" moat device add dev-3
serial3b=$(serial_of "$D/pki/identities/dev-3/cert.pem")
[ "$serial3b" != "$serial3" ] || fail "the new dev-3 reuses the old serial"
[ "$(pubkey_of "$D/pki/identities/dev-3/key.pem")" != "$(pubkey_of "$T/dev-3-old/key.pem")" ] ||
	fail "the new dev-3 has the old key"
moat --json device show dev-3 | jq -e '.certificates | length == 1' >/dev/null ||
	fail "the new dev-3 inherited certificates of the old one"
expect_ok "the new dev-3 publishes" pub dev-3
expect_fail "the old dev-3 certificate stays refused" pub dev-3 "$T/dev-3-old"
[ "$(mcurl dev-3)" = 204 ] || fail "moatd refused the new dev-3"
[ "$(mcurl dev-3 "$T/dev-3-old")" = 403 ] || fail "moatd accepted the old dev-3 certificate"
crl_lists "$serial3" || fail "adding dev-3 again dropped the old certificate from the CRL"
pass "a deleted name comes back only as a new identity; the old certificate stays revoked"

expect_ok "moat down" moat down --timeout "$(deadline 20s)"
broker_check_logs
if grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$D/log/moatd.log"; then
	fail "sanitizer report in log/moatd.log"
fi
pass "identity lifecycle"
