#!/usr/bin/env bash
# test_plugin_leaf.sh: the broker accepts only client leaf certificates (issue #20, class 3).
# Every certificate here is signed by the test's own CA with the right CN, so the TLS
# handshake succeeds and the plugin's BASIC_AUTH is what refuses: a CA certificate
# (CA:TRUE), one without the clientAuth extended key usage, one whose OU is not the
# identity's role (another role, none, two), and one with two CNs. Each is refused (the
# client sees the connection refused) with its auth_refused reason; a proper certificate
# for the same identity connects (the positive control).
source "$MOAT_SRC/tests/e2e/lib.sh"
source "$MOAT_SRC/tests/e2e/lib_broker.sh"

plugin_require
plugin_pki
cat >>"$PB/pki/ca.cnf" <<EOF2
[ca_leaf]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
[no_eku]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
EOF2
# leaf NAME SUBJECT EXTENSIONS: $PB/pki/NAME.{crt,key} for SUBJECT, signed by the test CA.
leaf() {
	local p="$PB/pki"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$p/$1.key" \
		-out "$p/$1.csr" -subj "$2" -multivalue-rdn 2>/dev/null || fail "openssl req $1"
	openssl ca -batch -notext -preserveDN -config "$p/ca.cnf" -extensions "$3" \
		-in "$p/$1.csr" -out "$p/$1.crt" 2>/dev/null || fail "openssl ca $1"
	chmod 600 "$p/$1.key"
}
leaf good /OU=device/CN=dev-c client
leaf isca /OU=device/CN=dev-c ca_leaf
leaf noeku /OU=device/CN=dev-c no_eku
leaf service_ou /OU=service/CN=dev-c client
leaf no_ou /CN=dev-c client
leaf two_ou /OU=device/OU=device/CN=dev-c client
leaf two_cn /OU=device/CN=dev-c/CN=dev-c client
openssl x509 -in "$PB/pki/isca.crt" -noout -text | qgrep 'CA:TRUE' || fail "isca is not CA:TRUE"
openssl x509 -in "$PB/pki/two_ou.crt" -noout -subject | qgrep 'OU = device, OU = device' ||
	fail "two_ou does not have two OUs: $(openssl x509 -in "$PB/pki/two_ou.crt" -noout -subject)"
plugin_policy "moat-policy 1
flapping connects=0 window_s=60 ban_s=60
identity dev-c device active
end identities=1
"
plugin_conf
plugin_start

refused() { # NAME REASON [IDENTITY in the event]
	expect_fail "$1 connects" plugin_pub "$1" dev-c devices/dev-c/telemetry '{"seq":1}'
	plugin_expect_event auth_refused "${3-dev-c}" "$2"
}
refused isca certificate_is_ca
refused noeku not_a_client_certificate
refused service_ou role_mismatch
refused no_ou bad_certificate_role
refused two_ou bad_certificate_role
refused two_cn bad_certificate_name '' # no single CN: no identity
[ -z "$(plugin_events connected dev-c)" ] || fail "a refused certificate connected"
expect_ok "the leaf client certificate connects" \
	plugin_pub good dev-c devices/dev-c/telemetry '{"seq":2}'
plugin_expect_event connected dev-c
pass "only client leaf certificates with the identity's role connect"
