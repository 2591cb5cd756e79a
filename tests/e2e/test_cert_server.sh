#!/usr/bin/env bash
# test_cert_server.sh: `moat cert server --add-host NAME` and `moat cert server renew`
# reissue the certificate the broker and moatd present, while `moat up` runs them: the
# broker reloads it on the SIGHUP the command sends and moatd restarts its HTTPS listener
# (no restart of either by hand). Clients that verify the host name (mosquitto_pub against
# an added address, openssl s_client -verify_hostname and curl against an added DNS name)
# are refused before and connect after. Added hosts stay in moat.conf (the rest of the
# file as it was), so a later renewal keeps them. Every bad use is refused with one line
# and changes nothing.
source "$MOAT_SRC/tests/e2e/lib.sh"
source "$MOAT_SRC/tests/e2e/lib_broker.sh"
source "$MOAT_SRC/tests/e2e/lib_moatd.sh"

broker_require
command -v curl >/dev/null || skip "curl not installed"
e2e_init
# the broker listens on a second loopback address too: a name it has no certificate for yet
sed -i 's/^\[broker\]$/[broker]\nlisten = 127.0.0.1, 127.0.0.2/' "$D/moat.conf"
moat device add dev-1 >/dev/null
moat identity add backend-service --role service >/dev/null
on_exit "moat --dir '$D' down --timeout $(deadline 20s)"
moat_up_test
wait_for 20 grep -q "event=listening addr=127.0.0.1 port=$SERVER_PORT" "$D/log/moatd.log" ||
	fail "moatd not listening: $(tail -5 "$D/log/moatd.log")"
NAME=mqtt.e2e.test
I="$D/pki/identities/dev-1"

pub_to() { # ADDRESS: a verified publish as dev-1 to the broker at ADDRESS
	timeout "$(deadline 20)" mosquitto_pub -h "$1" -p "$BROKER_PORT" --cafile "$D/pki/ca.crt" \
		--cert "$I/cert.pem" --key "$I/key.pem" -i dev-1 -V mqttv5 -q 1 \
		-t devices/dev-1/telemetry -m '{"device_id":"dev-1"}'
}
# s_client_name PORT NAME: a TLS handshake with 127.0.0.1:PORT verifying the server's
# certificate for NAME; fails when it does not verify.
s_client_name() {
	timeout "$(deadline 20)" openssl s_client -connect "127.0.0.1:$1" -verify_hostname "$2" \
		-CAfile "$D/pki/ca.crt" -cert "$I/cert.pem" -cert_chain "$I/cert.pem" -key "$I/key.pem" -verify_return_error \
		-brief </dev/null >"$T/s_client.out" 2>&1 || { grep -m1 -i error "$T/s_client.out" >&2; return 1; }
}
served_serial() { # PORT: the serial of the certificate served on 127.0.0.1:PORT
	timeout "$(deadline 20)" openssl s_client -connect "127.0.0.1:$1" -CAfile "$D/pki/ca.crt" \
		</dev/null 2>/dev/null | openssl x509 -noout -serial | cut -d= -f2
}
serves() { [ "$(served_serial "$1")" = "$2" ]; }
curl_name() { # curl as dev-1 to moatd by NAME (resolved to 127.0.0.1), verifying it
	curl -sS --resolve "$NAME:$SERVER_PORT:127.0.0.1" --cacert "$D/pki/ca.crt" \
		--cert "$I/cert.pem" --key "$I/key.pem" -o /dev/null -w '%{http_code}' \
		"https://$NAME:$SERVER_PORT/api/firmware/version"
}
file_serial() { openssl x509 -in "$D/pki/server.crt" -noout -serial | cut -d= -f2; }
sans() { openssl x509 -in "$D/pki/server.crt" -noout -ext subjectAltName | tail -n +2; }

# --- before: the new names do not verify ---------------------------------------------------
expect_ok "dev-1 publishes to 127.0.0.1" pub_to 127.0.0.1
expect_fail "127.0.0.2 is not in the broker's certificate" pub_to 127.0.0.2
expect_fail "$NAME is not in the broker's certificate" s_client_name "$BROKER_PORT" "$NAME"
expect_fail "$NAME is not in moatd's certificate" curl_name

# --- refusals change nothing -----------------------------------------------------------------
sum_before=$(sha256sum "$D/moat.conf" "$D/pki/server.crt" "$D/pki/server.key")
expect_fail "no subcommand" moat cert server
expect_fail "an unknown subcommand" moat cert server rotate
expect_fail "renew with an operand too many" moat cert server renew now
expect_fail "renew and --add-host together" moat cert server renew --add-host "$NAME"
expect_fail "a bad host name" moat cert server --add-host 'bad_name!'
assert_contains "$errout" "not a host name or address"
expect_fail "a name already there" moat cert server --add-host localhost
assert_contains "$errout" "already a name"
expect_fail "a name already there, other case" moat cert server --add-host LocalHost
expect_fail "the same new name twice" moat cert server --add-host "$NAME" --add-host "$NAME"
expect_fail "--days 0" moat cert server renew --days 0
expect_fail "--days past 100 years" moat cert server renew --days 36501
many=()
for i in $(seq 1 15); do many+=(--add-host "h$i.e2e.test"); done
expect_fail "too many hosts" moat cert server "${many[@]}"
# the issuing CA signs it, without the passphrase; its key must be its owner's alone
chmod 0644 "$D/pki/issuer.key"
expect_fail "an issuing CA key readable by others" moat cert server renew
chmod 0600 "$D/pki/issuer.key"
[ "$(sha256sum "$D/moat.conf" "$D/pki/server.crt" "$D/pki/server.key")" = "$sum_before" ] ||
	fail "a refused command changed moat.conf or the server's files"
pass "bad uses of moat cert server are refused and change nothing"

# --- add a name and an address while everything runs ----------------------------------------
old=$(file_serial)
expect_ok "moat cert server --add-host" moat cert server --add-host 127.0.0.2 --add-host "$NAME"
assert_contains "$out" "$NAME"
new=$(file_serial)
[ "$new" != "$old" ] || fail "the certificate was not reissued"
sans | qgrep "DNS:$NAME" || fail "no DNS:$NAME in the new certificate: $(sans)"
sans | qgrep "IP Address:127.0.0.2" || fail "no 127.0.0.2 in the new certificate: $(sans)"
sans | qgrep "DNS:localhost" || fail "the old names are gone: $(sans)"
grep -q "^hosts = localhost, 127.0.0.1, 127.0.0.2, $NAME$" "$D/moat.conf" ||
	fail "moat.conf hosts: $(grep hosts "$D/moat.conf")"
grep -q "^# every one is a subjectAltName of pki/server.crt$" "$D/moat.conf" ||
	fail "the comments of moat.conf were lost"
grep -q "^listen = 127.0.0.1, 127.0.0.2$" "$D/moat.conf" || fail "the rest of moat.conf changed"
[ "$(mode_of "$D/pki/server.key")" = 640 ] || [ "$(id -u)" != 0 ] ||
	fail "server.key is $(mode_of "$D/pki/server.key"), not 640 for the broker's group"
[ "$(stat -c %G "$D/pki/server.key")" = "$(id -gn mosquitto 2>/dev/null || id -gn)" ] ||
	fail "server.key is not readable by the broker's group"

# the broker: reloaded by the command's SIGHUP, no restart
mpid=$(cat "$D/run/mosquitto.pid")
wait_for 20 serves "$BROKER_PORT" "$new" || fail "the broker still serves $(served_serial "$BROKER_PORT")"
[ "$(cat "$D/run/mosquitto.pid")" = "$mpid" ] || fail "the broker was restarted"
expect_ok "dev-1 publishes to 127.0.0.2, verifying it" pub_to 127.0.0.2
expect_ok "the broker verifies as $NAME" s_client_name "$BROKER_PORT" "$NAME"
# moatd: restarts its listener with the new pair
wait_for 20 grep -q "event=server_cert_reloaded" "$D/log/moatd.log" ||
	fail "moatd did not reload: $(tail -5 "$D/log/moatd.log")"
wait_for 20 serves "$SERVER_PORT" "$new" || fail "moatd still serves $(served_serial "$SERVER_PORT")"
[ "$(curl_name)" = 204 ] || fail "moatd does not answer as $NAME"
expect_ok "moatd verifies as $NAME" s_client_name "$SERVER_PORT" "$NAME"
pass "added names are served by the broker and moatd without a restart"

# --- renew: a new key and serial, the added names kept --------------------------------------
oldkey=$(openssl pkey -in "$D/pki/server.key" -pubout)
expect_ok "moat cert server renew --days 5" moat cert server renew --days 5
renewed=$(file_serial)
[ "$renewed" != "$new" ] || fail "renew issued no new certificate"
[ "$(openssl pkey -in "$D/pki/server.key" -pubout)" != "$oldkey" ] || fail "renew kept the key"
sans | qgrep "DNS:$NAME" || fail "renew dropped $NAME: $(sans)"
openssl x509 -in "$D/pki/server.crt" -noout -checkend $((5 * 86400 + 600)) >/dev/null &&
	fail "renew --days 5 made a certificate valid for longer"
openssl x509 -in "$D/pki/server.crt" -noout -checkend $((4 * 86400)) >/dev/null ||
	fail "renew --days 5 made a certificate valid for less than 4 days"
openssl verify -CAfile "$D/pki/ca.crt" -untrusted "$D/pki/issuer.crt" -purpose sslserver "$D/pki/server.crt" >/dev/null ||
	fail "the renewed certificate does not verify as a server certificate"
wait_for 20 serves "$BROKER_PORT" "$renewed" || fail "the broker serves $(served_serial "$BROKER_PORT")"
wait_for 20 serves "$SERVER_PORT" "$renewed" || fail "moatd serves $(served_serial "$SERVER_PORT")"
expect_ok "dev-1 publishes after the renewal" pub_to 127.0.0.2
[ "$(curl_name)" = 204 ] || fail "moatd does not answer after the renewal"
expect_ok "cert expiring names the server certificate" bash -c "moat cert expiring --within 6d; [ \$? = 1 ]"
pass "moat cert server renew"

expect_ok "moat down" moat down --timeout "$(deadline 20s)"
broker_check_logs
