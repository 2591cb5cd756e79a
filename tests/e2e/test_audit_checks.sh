#!/usr/bin/env bash
# test_audit_checks.sh: the static checks of `moat audit` that test_audit.sh does not reach,
# each produced for real on one deployment mutated step by step (and put back, the audit
# clean of that finding again), with its id, severity and evidence:
#   pki.root_expiry (the root re-signed with openssl on its own key for 10 days),
#   pki.issuer_expiry and pki.past_issuer (the issuing CA re-signed by the root for 10 days,
#   then expired), pki.revoked_in_policy (a disabled device still active in broker/policy),
#   pki.crl (a CRL signed by a foreign CA), broker.tls (weak suites, no ciphers line),
#   broker.limits, broker.persistence, broker.logging, broker.plugin (ACL-file mode and
#   neither), monitor.events_file (missing, then stale under a running broker), and net.live
#   in a network namespace this test creates (not applied, applied, then the rule that keeps devices apart deleted).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
command -v jq >/dev/null || skip "jq not installed (scripts/bootstrap installs it)"
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"
broker_deploy
moat broker config >/dev/null

audit_is() {
	local want=$1
	shift
	run_captured moat --json audit "$@"
	[ "$run_rc" = "$want" ] || fail "audit $*: exit $run_rc, expected $want: $out $errout"
}
# has ID SEVERITY REGEX: a finding ID of SEVERITY whose title or evidence matches REGEX.
has() {
	jq -e --arg id "$1" --arg s "$2" --arg re "$3" '[.findings[] | select(.id == $id and .severity == $s
		and ((.title + " | " + .evidence) | test($re)))] | length > 0' >/dev/null <<<"$out" ||
		fail "no $2 finding $1 matching /$3/ in: $(jq -c '[.findings[] | [.id, .severity, .title, .evidence]]' <<<"$out")"
}
# none ID...: the last audit has no finding with any of these ids.
none() {
	local id
	for id in "$@"; do
		jq -e --arg id "$id" '[.findings[] | select(.id == $id)] | length == 0' >/dev/null <<<"$out" ||
			fail "unexpected $id: $(jq -c --arg id "$id" '[.findings[] | select(.id == $id)]' <<<"$out")"
	done
}

# ---- clean: none of the findings this test produces ----
audit_is 0 --no-system
none pki.root_expiry pki.issuer_expiry pki.past_issuer pki.revoked_in_policy pki.crl broker.tls \
	broker.limits broker.persistence broker.logging broker.plugin
none monitor.events_file
mv "$D/log/security-events.jsonl" "$T/events.keep"
audit_is 0 --no-system
has monitor.events_file medium "no security events file"
mv "$T/events.keep" "$D/log/security-events.jsonl"
pass "a fresh deployment: none of the findings below; monitor.events_file when the events file is gone"

# ---- the root CA re-signed on its own key for 10 days ----
cp -p "$D/pki/ca.crt" "$T/ca.keep"
subj=$(openssl x509 -in "$D/pki/ca.crt" -noout -subject -nameopt compat | sed 's/^subject=//')
openssl req -x509 -new -key "$D/pki/ca.key" -passin env:MOAT_CA_PASSPHRASE -subj "$subj" -days 10 \
	-addext "basicConstraints=critical,CA:TRUE,pathlen:1" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-out "$D/pki/ca.crt" 2>"$T/root.err" || fail "openssl req -x509: $(cat "$T/root.err")"
audit_is 1 --no-system
has pki.root_expiry high "the root CA certificate expires in (9|10) days"
has pki.root_expiry high "notAfter [0-9]+ .*CN e2e CA"
cp -p "$T/ca.keep" "$D/pki/ca.crt"
audit_is 0 --no-system
none pki.root_expiry
pass "pki.root_expiry: a root CA 10 days from its end"

# ---- the issuing CA re-signed by the root: 10 days left, then expired ----
cp -p "$D/pki/issuer.crt" "$T/issuer.keep"
cp -p "$D/pki/issuers.pem" "$T/issuers.keep"
# the request keeps the subject's exact DER (string types), which certificates and the CRL name
openssl x509 -x509toreq -in "$D/pki/issuer.crt" -signkey "$D/pki/issuer.key" -out "$T/issuer.csr" 2>/dev/null ||
	fail "openssl x509 -x509toreq"
test_ca_conf "$T/ica" '[ica]' 'basicConstraints = critical,CA:TRUE,pathlen:0' \
	'keyUsage = critical,keyCertSign,cRLSign' 'subjectKeyIdentifier = hash' 'authorityKeyIdentifier = keyid'
short_issuer() { # START END: the issuing CA valid from START to END (openssl ca dates)
	openssl ca -batch -notext -config "$T/ica/ca.cnf" -extensions ica -cert "$D/pki/ca.crt" \
		-keyfile "$D/pki/ca.key" -passin env:MOAT_CA_PASSPHRASE -preserveDN -startdate "$1" -enddate "$2" \
		-in "$T/issuer.csr" -out "$T/issuer.new" >/dev/null 2>"$T/ica.err" || fail "openssl ca: $(cat "$T/ica.err")"
	cp "$T/issuer.new" "$D/pki/issuer.crt"
	cp "$T/issuer.new" "$D/pki/issuers.pem"
}
short_issuer "$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)" "$(date -u -d '+10 days' +%Y%m%d%H%M%SZ)"
audit_is 1 --no-system
has pki.issuer_expiry high "the issuing CA certificate expires in (9|10) days"
has pki.past_issuer medium "the certificate of dev-a outlives its issuer e2e Issuing CA 1 by [0-9]+ days"
has pki.past_issuer medium "notAfter [0-9]+ > issuer notAfter [0-9]+"
short_issuer 20200101000000Z 20200201000000Z
audit_is 1 --no-system
has pki.issuer_expiry critical "the issuing CA certificate expired"
cp -p "$T/issuer.keep" "$D/pki/issuer.crt"
cp -p "$T/issuers.keep" "$D/pki/issuers.pem"
audit_is 0 --no-system
none pki.issuer_expiry pki.past_issuer
pass "pki.issuer_expiry (10 days, then expired) and pki.past_issuer"

# ---- a disabled device still active in broker/policy ----
cp -p "$D/broker/policy" "$T/policy.keep"
moat device disable dev-b >/dev/null
audit_is 0 --no-system
none pki.revoked_in_policy
cp "$T/policy.keep" "$D/broker/policy"
audit_is 1 --no-system
has pki.revoked_in_policy critical "dev-b is active in broker/policy but is disabled in the registry"
has pki.revoked_in_policy critical "policy line: identity dev-b device active"
moat broker config >/dev/null
audit_is 0 --no-system
none pki.revoked_in_policy
moat device enable dev-b >/dev/null
pass "pki.revoked_in_policy: a disabled device the policy still lets in"

# ---- a CRL signed by a foreign CA ----
cp -p "$D/pki/crl.pem" "$T/crl.keep"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/foreign.key" \
	-subj "/O=e2e/CN=e2e Issuing CA 1" -days 30 -out "$T/foreign.crt" 2>/dev/null
test_ca_conf "$T/fca" "crlnumber = $T/fca/crlnumber"
echo 1000 >"$T/fca/crlnumber"
openssl ca -batch -config "$T/fca/ca.cnf" -gencrl -crldays 2 -cert "$T/foreign.crt" -keyfile "$T/foreign.key" \
	-out "$D/pki/crl.pem" 2>"$T/fcrl.err" || fail "openssl ca -gencrl: $(cat "$T/fcrl.err")"
audit_is 1 --no-system
has pki.crl critical "pki/crl.pem does not verify against the deployment's CAs"
cp -p "$T/crl.keep" "$D/pki/crl.pem"
audit_is 0 --no-system
none pki.crl
pass "pki.crl: a CRL signed by a foreign CA with the issuing CA's name"

# ---- mosquitto.conf weakened line by line ----
C="$D/broker/mosquitto.conf"
cp -p "$C" "$T/conf.keep"
# conf_is EXIT SED-EXPRESSION: the kept mosquitto.conf with one sed edit; audit exits EXIT.
conf_is() {
	sed "$2" "$T/conf.keep" >"$C"
	audit_is "$1" --no-system
	has drift.mosquitto_conf high "differs from what moat derives"
}
conf_is 1 's/^ciphers .*/ciphers ECDHE-RSA-AES128-GCM-SHA256:RC4-MD5/'
has broker.tls high "offers weak TLS 1.2 suites \\(RC4\\) \\| ciphers ECDHE-RSA-AES128-GCM-SHA256:RC4-MD5"
conf_is 1 's/^ciphers .*/ciphers ECDHE-RSA-AES128-SHA/'
has broker.tls high "offers weak TLS 1.2 suites \\(CBC\\)"
conf_is 1 's/^ciphers .*/ciphers ECDHE-RSA-AES128-GCM-SHA256:AES256-GCM-SHA384/'
has broker.tls high "offers weak TLS 1.2 suites \\(no forward secrecy\\)"
conf_is 1 '/^ciphers /d'
has broker.tls medium "leaves the TLS 1.2 suites to OpenSSL's defaults \\| no ciphers line"
conf_is 1 '/^max_connections /d;/^message_size_limit /d;/^max_keepalive /d'
has broker.limits medium "has no connection limit \\| max_connections absent or -1"
has broker.limits medium "message_size_limit is not set"
has broker.limits medium "max_keepalive is not set"
conf_is 1 's/^persistence true/persistence false/'
has broker.persistence low "persistence is off"
conf_is 1 '/^log_dest /d'
has broker.logging medium "the broker logs to no file or syslog"
conf_is 1 's/^connection_messages true/connection_messages false/'
has broker.logging medium "connection_messages is false"
conf_is 1 '/^plugin/d;$a acl_file '"$D"'/broker/acl.conf'
has broker.plugin high "the moat plugin is not loaded \\(ACL-file mode\\)"
conf_is 1 '/^plugin/d'
has broker.plugin critical "neither the moat plugin nor an ACL file"
cp -p "$T/conf.keep" "$C"
audit_is 0 --no-system
none broker.tls broker.limits broker.persistence broker.logging broker.plugin drift.mosquitto_conf
pass "broker.tls, broker.limits, broker.persistence, broker.logging, broker.plugin from mosquitto.conf edits"

# ---- monitor.events: written by the running broker, then a week old ----
moat_up_test
audit_is 0 --no-system
none monitor.events_file
touch -d '-8 days' "$D/log/security-events.jsonl"
audit_is 0 --no-system
has monitor.events_file low "the broker runs but wrote no security event for a week \\| last written 8 days ago"
touch "$D/log/security-events.jsonl"
audit_is 0 --no-system
none monitor.events_file
moat down --timeout "$(deadline 20s)" >/dev/null
pass "monitor.events: missing before the first start, stale under a running broker"

# ---- net.live, only in a network namespace of this test ----
if [ "$(id -u)" -eq 0 ] && command -v nft >/dev/null && command -v ip >/dev/null &&
	ip netns add "moat-e2e-$$-audit" 2>/dev/null; then
	on_exit "ip netns delete moat-e2e-$$-audit"
	in_ns() { ip netns exec "moat-e2e-$$-audit" "$@"; }
	printf '\n[network]\nbroker_address = 10.77.1.10\nserver_address = 10.77.1.10\n' >>"$D/moat.conf"
	run_captured in_ns moat --json audit
	has net.live medium "the network policy is not applied on this host \\(no table inet moat\\)"
	in_ns moat net apply >/dev/null || fail "moat net apply in the namespace"
	run_captured in_ns moat --json audit
	none net.live net.iot_to_management net.iot_to_iot net.policy
	in_ns nft list table inet moat >"$T/nft.live"
	# the rule that keeps devices apart, deleted by hand from the live table
	handle=$(in_ns nft -a list table inet moat | sed -n 's/.*"devices never reach each other" # handle \([0-9]*\)$/\1/p')
	[ -n "$handle" ] || fail "no device isolation rule in: $(cat "$T/nft.live")"
	in_ns nft delete rule inet moat forward handle "$handle"
	run_captured in_ns moat --json audit
	[ "$run_rc" = 1 ] || fail "audit with the isolation rule deleted: exit $run_rc"
	has net.live high "the live table inet moat differs from moat's policy, from line [0-9]+ \\| nft list line [0-9]+ is \".*\", expected \".*ip saddr @device_zones ip daddr @device_zones jump log_drop comment .devices never reach each other.\""
	in_ns moat net apply >/dev/null
	run_captured in_ns moat --json audit
	none net.live
	pass "net.live: not applied, applied, the device isolation rule deleted by hand (namespace moat-e2e-$$-audit)"
else
	echo "# net.live skipped: needs root, nft and network namespaces"
fi
