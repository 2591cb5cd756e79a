#!/usr/bin/env bash
# The foundation: moat init, identities, revocation, renewal, export, expiry, and every
# refusal of bad input, checked with the openssl CLI against the files moat writes.
. "$(dirname "$0")/lib.sh"

PASS="$MOAT_CA_PASSPHRASE"
D="$T/d"

# --- init -------------------------------------------------------------------------------
expect_ok "init" moat init --dir "$D" --name e2e --broker-host localhost --broker-host 127.0.0.1 \
	--broker-host ::1 --broker-host broker.example.test
export MOAT_DIR="$D"
for f in moat.conf registry.db pki/ca.crt pki/ca.key pki/crl.pem pki/server.crt pki/server.key; do
	[ -f "$D/$f" ] || fail "init did not write $f"
done
[ "$(mode_of "$D/pki/ca.key")" = 600 ] || fail "ca.key mode $(mode_of "$D/pki/ca.key")"
[ "$(mode_of "$D/pki/server.key")" = 600 ] || [ "$(mode_of "$D/pki/server.key")" = 640 ] ||
	fail "server.key mode $(mode_of "$D/pki/server.key")"
grep -q "ENCRYPTED PRIVATE KEY" "$D/pki/ca.key" || fail "ca.key is not encrypted PKCS#8"
openssl asn1parse -in "$D/pki/ca.key" | qgrep -i "scrypt\|id-scrypt" || fail "ca.key: no scrypt KDF"
openssl asn1parse -in "$D/pki/ca.key" | qgrep "aes-256" || fail "ca.key: not AES-256"
openssl pkey -in "$D/pki/ca.key" -passin "pass:$PASS" -noout || fail "ca.key does not open with the passphrase"
if openssl pkey -in "$D/pki/ca.key" -passin pass:wrong-passphrase -noout 2>/dev/null; then
	fail "ca.key opens with a wrong passphrase"
fi
# certificate files carry the chain: the leaf, then the issuing CA; peers trust the root only
openssl verify -CAfile "$D/pki/ca.crt" -untrusted "$D/pki/server.crt" "$D/pki/server.crt" >/dev/null ||
	fail "server.crt does not verify"
[ "$(grep -c 'BEGIN CERTIFICATE' "$D/pki/server.crt")" = 2 ] || fail "server.crt: not leaf + issuing CA"
san=$(openssl x509 -in "$D/pki/server.crt" -noout -ext subjectAltName)
for n in DNS:localhost "IP Address:127.0.0.1" "IP Address:0:0:0:0:0:0:0:1" DNS:broker.example.test; do
	assert_contains "$san" "$n"
done
openssl x509 -in "$D/pki/server.crt" -noout -ext extendedKeyUsage | qgrep "Server Authentication" ||
	fail "server.crt: no serverAuth"
ca_text=$(openssl x509 -in "$D/pki/ca.crt" -noout -text)
assert_contains "$ca_text" "CA:TRUE"
assert_contains "$ca_text" "Certificate Sign, CRL Sign"
ca_end=$(date -d "$(openssl x509 -in "$D/pki/ca.crt" -noout -enddate | cut -d= -f2)" +%s)
[ $((ca_end - $(date +%s))) -gt $((3649 * 86400)) ] || fail "CA validity under 10 years"
assert_contains "$ca_text" "pathlen:1"
openssl crl -in "$D/pki/crl.pem" -CAfile "$D/pki/chain.pem" -noout 2>&1 | qgrep "verify OK" || fail "empty CRL does not verify"
# the online issuing CA: signed by the root, pathlen 0, its key unencrypted and 0600
for f in pki/issuer.crt pki/issuer.key pki/chain.pem pki/issuers.pem; do
	[ -f "$D/$f" ] || fail "init did not write $f"
done
[ "$(mode_of "$D/pki/issuer.key")" = 600 ] || fail "issuer.key mode $(mode_of "$D/pki/issuer.key")"
openssl pkey -in "$D/pki/issuer.key" -noout -passin pass: || fail "issuer.key is not an unencrypted key"
openssl verify -CAfile "$D/pki/ca.crt" "$D/pki/issuer.crt" >/dev/null || fail "issuer.crt not signed by the root"
issuer_text=$(openssl x509 -in "$D/pki/issuer.crt" -noout -text)
assert_contains "$issuer_text" "CA:TRUE, pathlen:0"
assert_contains "$issuer_text" "Certificate Sign, CRL Sign"
[ "$(openssl x509 -in "$D/pki/issuer.crt" -noout -subject)" != "$(openssl x509 -in "$D/pki/ca.crt" -noout -subject)" ] ||
	fail "issuing CA has the root's name"
[ "$(openssl crl -in "$D/pki/crl.pem" -noout -issuer | sed 's/^issuer=//')" = "$(openssl x509 -in "$D/pki/issuer.crt" -noout -subject | sed 's/^subject=//')" ] ||
	fail "the CRL is not the issuing CA's"
cat "$D/pki/issuer.crt" "$D/pki/ca.crt" | cmp -s - "$D/pki/chain.pem" || fail "chain.pem is not issuer.crt then ca.crt"
pass "init: root and issuing CA, server certificate with every SAN and the chain, encrypted root key, signed empty CRL"

expect_fail "init over an existing deployment" moat init --dir "$D"
assert_contains "$errout" "already a moat deployment"
mkdir -p "$T/notempty" && touch "$T/notempty/file"
expect_fail "init in a non-empty directory" moat init --dir "$T/notempty"
[ -f "$T/notempty/file" ] && [ ! -e "$T/notempty/moat.conf" ] || fail "init touched a non-empty directory"
expect_fail "init with rsa-1024" moat init --dir "$T/weak" --key-type rsa-1024
[ ! -e "$T/weak" ] || fail "refused init left $T/weak"
expect_fail "init with an invalid name" moat init --dir "$T/badname" --name 'Bad Name'
expect_fail "init with a bad broker host" moat init --dir "$T/badhost" --broker-host 'bad host!'
expect_fail "init with equal ports" moat init --dir "$T/ports" --broker-port 9000 --server-port 9000
expect_fail "init with a short passphrase" env MOAT_CA_PASSPHRASE=short moat init --dir "$T/short"
[ ! -e "$T/short" ] || fail "refused init left a directory"
expect_fail "init without a passphrase and no terminal" env -u MOAT_CA_PASSPHRASE moat init --dir "$T/nopass" </dev/null
# passphrase files must not be readable by others
printf '%s\n' "$PASS" >"$T/pass" && chmod 644 "$T/pass"
expect_fail "world-readable passphrase file" env -u MOAT_CA_PASSPHRASE moat --passphrase-file "$T/pass" init --dir "$T/pf"
chmod 600 "$T/pass"
expect_ok "init with a passphrase file" env -u MOAT_CA_PASSPHRASE moat --passphrase-file "$T/pass" init --dir "$T/pf" --key-type rsa-2048 --single-tier
openssl x509 -in "$T/pf/pki/ca.crt" -noout -text | qgrep "rsaEncryption" || fail "rsa-2048 CA is not RSA"
# --single-tier: the layout moat init made before the issuing CA (the root signs, pathlen 0)
[ ! -e "$T/pf/pki/issuer.key" ] && [ ! -e "$T/pf/pki/issuer.crt" ] || fail "--single-tier made an issuing CA"
assert_contains "$(openssl x509 -in "$T/pf/pki/ca.crt" -noout -text)" "pathlen:0"
openssl verify -CAfile "$T/pf/pki/ca.crt" "$T/pf/pki/server.crt" >/dev/null || fail "single-tier server.crt"
# an unwritable directory: as an unprivileged user into a root-owned one
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	mkdir -p "$T/rootonly" && chmod 755 "$T/rootonly" && chmod 755 "$T"
	expect_fail "init into an unwritable directory" setpriv --reuid=65534 --regid=65534 --clear-groups \
		env MOAT_CA_PASSPHRASE="$PASS" "$(command -v moat)" init --dir "$T/rootonly/d"
	[ ! -e "$T/rootonly/d" ] || fail "failed init left a directory"
fi

# --- identities -------------------------------------------------------------------------
expect_ok "device add" moat device add esp32-sensor-001 --type temperature_sensor
expect_ok "device add (second)" moat device add esp32-actuator-001 --type actuator --days 30
expect_ok "identity add service" moat identity add backend-service --role service
expect_ok "identity add operator" moat identity add admin --role operator
I="$D/pki/identities/esp32-sensor-001"
[ "$(mode_of "$I/key.pem")" = 600 ] || fail "key.pem mode $(mode_of "$I/key.pem")"
openssl verify -CAfile "$D/pki/ca.crt" -untrusted "$I/cert.pem" "$I/cert.pem" >/dev/null || fail "device cert does not verify"
cat - "$D/pki/issuer.crt" <<<"$(openssl x509 -in "$I/cert.pem")" | cmp -s - "$I/cert.pem" ||
	fail "device cert.pem is not the certificate then the issuing CA"
if openssl verify -CAfile "$D/pki/ca.crt" "$I/cert.pem" >/dev/null 2>&1; then
	fail "device cert verifies without its issuing CA: not signed by it"
fi
cmp -s "$I/ca.crt" "$D/pki/ca.crt" || fail "identity ca.crt differs from pki/ca.crt"
openssl pkey -in "$I/key.pem" -check -noout >/dev/null || fail "device key invalid"
[ "$(openssl pkey -in "$I/key.pem" -pubout)" = "$(openssl x509 -in "$I/cert.pem" -pubkey -noout)" ] ||
	fail "device key does not match its certificate"
subj=$(openssl x509 -in "$I/cert.pem" -noout -subject -nameopt RFC2253)
assert_contains "$subj" "CN=esp32-sensor-001"
assert_contains "$subj" "OU=device"
openssl x509 -in "$I/cert.pem" -noout -ext extendedKeyUsage | qgrep "Client Authentication" || fail "no clientAuth"
openssl x509 -in "$I/cert.pem" -noout -text | qgrep "prime256v1" || fail "default key is not P-256"
serial=$(openssl x509 -in "$I/cert.pem" -noout -serial | cut -d= -f2)
[ ${#serial} -ge 16 ] || fail "serial $serial shorter than 64 bits"
svc_subj=$(openssl x509 -in "$D/pki/identities/admin/cert.pem" -noout -subject -nameopt RFC2253)
assert_contains "$svc_subj" "OU=operator"
act_end=$(date -d "$(openssl x509 -in "$D/pki/identities/esp32-actuator-001/cert.pem" -noout -enddate | cut -d= -f2)" +%s)
[ $((act_end - $(date +%s))) -le $((30 * 86400)) ] || fail "--days 30 not honoured"
dev_end=$(date -d "$(openssl x509 -in "$I/cert.pem" -noout -enddate | cut -d= -f2)" +%s)
[ $((dev_end - $(date +%s))) -gt $((729 * 86400)) ] || fail "default validity is not 730 days"
pass "identities: files, modes, CN, OU role, EKU, key type, serial, validity"

expect_ok "device add rsa-3072" moat device add rsa-dev --key-type rsa-3072
openssl x509 -in "$D/pki/identities/rsa-dev/cert.pem" -noout -text | qgrep "3072 bit" || fail "rsa-3072 not honoured"
expect_fail "device add rsa-1024" moat device add weak-dev --key-type rsa-1024
for bad in 'Upper' 'a/b' 'a+b' 'a#b' 'a b' '' '.dot' '-dash' "$(printf 'x%.0s' {1..65})"; do
	expect_fail "invalid identity name '$bad'" moat device add "$bad"
done
expect_fail "duplicate device" moat device add esp32-sensor-001
assert_contains "$errout" "already exists"
# a single-tier deployment signs with the root: the passphrase is needed, and checked
expect_fail "wrong passphrase" env MOAT_CA_PASSPHRASE=not-the-passphrase moat --dir "$T/pf" device add wrong-pass
assert_contains "$errout" "wrong passphrase"
expect_fail "single-tier without a passphrase" env -u MOAT_CA_PASSPHRASE moat --dir "$T/pf" device add no-pass </dev/null
assert_contains "$errout" "passphrase"
expect_fail "identity add with role device" moat identity add x --role device
expect_fail "identity add with an unknown role" moat identity add x --role root
expect_fail "missing deployment" moat --dir "$T/nope" device list
expect_fail "foreign directory" moat --dir "$T/notempty" device list
assert_contains "$errout" "not a moat deployment"
printf '[deployment]\nformat = other/9\nname = x\n' >"$T/notempty/moat.conf"
expect_fail "foreign moat.conf" moat --dir "$T/notempty" device list
expect_fail "device command on a service" moat device revoke backend-service
for bad in wrong-pass Upper weak-dev x; do
	[ ! -e "$D/pki/identities/$bad" ] || fail "refused add left pki/identities/$bad"
done
n_rows=$(moat --json device list | grep -o '"id"' | wc -l)
[ "$n_rows" = 3 ] || fail "expected 3 devices, registry has $n_rows"

# --- list, show -------------------------------------------------------------------------
expect_ok "device list" moat device list
assert_contains "$out" "esp32-sensor-001"
assert_not_contains "$out" "backend-service"
expect_ok "device list --json" moat device list --json
python3 -c 'import json,sys; d=json.load(sys.stdin); assert {x["id"] for x in d} == {"esp32-sensor-001","esp32-actuator-001","rsa-dev"}, d' <<<"$out" ||
	fail "device list --json"
expect_ok "identity list --json" moat --json identity list
python3 -c 'import json,sys; d=json.load(sys.stdin); r={x["id"]:x["role"] for x in d}; assert r["admin"]=="operator" and r["backend-service"]=="service", r' <<<"$out" ||
	fail "identity list --json roles"
expect_ok "device show" moat device show esp32-sensor-001
assert_contains "$out" "temperature_sensor"
expect_fail "show unknown" moat device show nobody
pass "list and show"

# --- revoke, renew ----------------------------------------------------------------------
old_serial=$(openssl x509 -in "$I/cert.pem" -noout -serial | cut -d= -f2)
expect_ok "device revoke" moat device revoke esp32-sensor-001 --reason key-compromise
openssl crl -in "$D/pki/crl.pem" -CAfile "$D/pki/chain.pem" -noout 2>&1 | qgrep "verify OK" || fail "CRL does not verify"
crl=$(openssl crl -in "$D/pki/crl.pem" -noout -text)
assert_contains "$crl" "$old_serial"
assert_contains "$crl" "Key Compromise"
if openssl verify -crl_check -CRLfile "$D/pki/crl.pem" -CAfile "$D/pki/ca.crt" -untrusted "$I/cert.pem" "$I/cert.pem" >/dev/null 2>&1; then
	fail "revoked certificate still verifies with the CRL"
fi
expect_fail "revoke twice" moat device revoke esp32-sensor-001
expect_fail "revoke with a bad reason" moat device revoke esp32-actuator-001 --reason because
expect_fail "revoke unknown" moat device revoke nobody
expect_fail "export a revoked device" moat device export esp32-sensor-001 --out "$T/exp-revoked"
# revoked for key compromise: renewed only with --force (test_lifecycle.sh has the rest)
expect_fail "renew after key compromise without --force" moat device renew esp32-sensor-001
expect_ok "device renew --force" moat device renew esp32-sensor-001 --force
new_serial=$(openssl x509 -in "$I/cert.pem" -noout -serial | cut -d= -f2)
[ "$new_serial" != "$old_serial" ] || fail "renew kept the serial"
[ ! -e "$I/.next" ] || fail "renew left .next"
openssl verify -crl_check -CRLfile "$D/pki/crl.pem" -CAfile "$D/pki/ca.crt" -untrusted "$I/cert.pem" "$I/cert.pem" >/dev/null ||
	fail "renewed certificate does not verify"
[ "$(openssl pkey -in "$I/key.pem" -pubout)" = "$(openssl x509 -in "$I/cert.pem" -pubkey -noout)" ] ||
	fail "renewed key does not match"
act_serial=$(openssl x509 -in "$D/pki/identities/esp32-actuator-001/cert.pem" -noout -serial | cut -d= -f2)
expect_ok "renew the actuator" moat device renew esp32-actuator-001
assert_contains "$(openssl crl -in "$D/pki/crl.pem" -noout -text)" "$act_serial"
[ "$(mode_of "$I/key.pem")" = 600 ] || fail "renewed key.pem mode"
pass "revoke and renew with the CRL rewritten"

# --- export -----------------------------------------------------------------------------
expect_ok "export pem" moat device export esp32-actuator-001 --out "$T/exp-pem"
[ "$(mode_of "$T/exp-pem/key.pem")" = 600 ] || fail "exported key.pem mode"
openssl verify -CAfile "$T/exp-pem/ca.crt" -untrusted "$T/exp-pem/cert.pem" "$T/exp-pem/cert.pem" >/dev/null || fail "exported pem"
echo "p12-password-1" >"$T/p12pass" && chmod 600 "$T/p12pass"
expect_ok "export p12" moat device export esp32-actuator-001 --out "$T/exp-p12" --format p12 --password-file "$T/p12pass"
openssl pkcs12 -in "$T/exp-p12/esp32-actuator-001.p12" -passin pass:p12-password-1 -nodes -out "$T/p12.pem" 2>/dev/null ||
	fail "p12 does not open"
grep -q "PRIVATE KEY" "$T/p12.pem" || fail "p12 has no key"
[ "$(grep -c 'BEGIN CERTIFICATE' "$T/p12.pem")" = 3 ] || fail "p12: not certificate, issuing CA and root"
expect_fail "export p12 with a short password" env MOAT_EXPORT_PASSWORD=short moat device export esp32-actuator-001 --out "$T/exp-p12c" --format p12
expect_fail "export p12 without a password" env -u MOAT_EXPORT_PASSWORD moat device export esp32-actuator-001 --out "$T/exp-p12b" --format p12
expect_ok "export c-header" moat device export esp32-actuator-001 --out "$T/exp-h" --format c-header
h="$T/exp-h/moat_credentials.h"
[ "$(mode_of "$h")" = 600 ] || fail "c-header with a key is not 0600"
for sym in CA_CERT DEVICE_CERT DEVICE_KEY; do grep -q "$sym" "$h" || fail "c-header lacks $sym"; done
printf '#include "%s"\nint main(void){return CA_CERT[0]==0;}\n' "$h" >"$T/h.c"
cc -Wall -Werror -o "$T/h" "$T/h.c" 2>/dev/null || fail "c-header does not compile"
expect_fail "export with an unknown format" moat device export esp32-actuator-001 --out "$T/x" --format der
expect_fail "export without --out" moat device export esp32-actuator-001
pass "export pem, p12, c-header"

# --- expiry -----------------------------------------------------------------------------
expect_ok "short-lived device" moat device add short-lived --days 45
set +e
moat cert expiring >"$T/exp.out" 2>&1; rc_30=$?
moat cert expiring --within 60d --json >"$T/exp.json" 2>&1; rc_60=$?
set -e
[ $rc_30 -eq 0 ] || fail "cert expiring (30d) exit $rc_30: $(cat "$T/exp.out")"
[ $rc_60 -eq 1 ] || fail "cert expiring --within 60d exit $rc_60 (short-lived expires in 45 days)"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert [x["name"] for x in d]==["short-lived"], d' "$T/exp.json" ||
	fail "expiring --json: $(cat "$T/exp.json")"
set +e
moat cert expiring --within 4000d >"$T/exp.out" 2>&1; rc=$?
set -e
[ $rc -eq 1 ] || fail "expiring --within 4000d exit $rc"
for n in ca server esp32-sensor-001 backend-service; do grep -q "$n\|^$n " "$T/exp.out" || fail "expiring misses $n"; done
expect_fail "expiring with a bad window" moat cert expiring --within soon
crl_no() { openssl crl -in "$D/pki/crl.pem" -noout -crlnumber | cut -d= -f2; }
before=$(crl_no)
expect_ok "cert crl" moat cert crl
[ "$((16#$(crl_no)))" -eq "$((16#$before + 1))" ] || fail "cert crl: CRL number $before -> $(crl_no)"
openssl crl -in "$D/pki/crl.pem" -CAfile "$D/pki/chain.pem" -noout 2>&1 | qgrep "verify OK" || fail "re-signed CRL does not verify"
assert_contains "$(openssl crl -in "$D/pki/crl.pem" -noout -text)" "$old_serial"
expect_fail "cert crl with an argument" moat cert crl now
# the issuing CA signs: no passphrase is asked for (none given, no terminal)
expect_ok "cert crl without the passphrase" env -u MOAT_CA_PASSPHRASE moat cert crl </dev/null
pass "cert expiring and cert crl"

# --- bulk provisioning ------------------------------------------------------------------
expect_ok "bulk add" moat device add --prefix bulk --count 300 --type sensor
[ "$(ls "$D/pki/identities" | grep -c '^bulk-')" = 300 ] || fail "bulk add: not 300 directories"
[ -d "$D/pki/identities/bulk-000300" ] || fail "bulk add naming"
openssl verify -CAfile "$D/pki/ca.crt" -untrusted "$D/pki/identities/bulk-000150/cert.pem" "$D/pki/identities/bulk-000150/cert.pem" >/dev/null ||
	fail "bulk cert"
expect_fail "bulk add overlapping existing ids" moat device add --prefix bulk --count 301
[ ! -e "$D/pki/identities/bulk-000301" ] || fail "refused bulk add left bulk-000301"
expect_fail "bulk add without --count" moat device add --prefix only
expect_fail "bulk add with an ID too" moat device add x --prefix p --count 2
expect_fail "bulk add with a bad prefix" moat device add --prefix 'Bad' --count 2
# moat sim checks device names before it provisions or connects anything
expect_fail "sim with an invalid device name" moat sim 'Bad/Name'
expect_fail "sim with names and --devices" moat sim dev-x --devices 2
expect_fail "sim with neither names nor --devices" moat sim
[ ! -e "$D/pki/identities/dev-x" ] || fail "refused sim provisioned dev-x"

# consistency: every directory has a row and every row a directory
check_consistent() {
	local rows dirs
	rows=$(moat --json identity list | python3 -c 'import json,sys; print("\n".join(sorted(x["id"] for x in json.load(sys.stdin))))')
	dirs=$(ls "$D/pki/identities" | sort)
	[ "$rows" = "$dirs" ] || fail "registry and pki/identities disagree ($1)"
	! ls -d "$D"/pki/.staging-* >/dev/null 2>&1 || fail "staging left behind ($1)"
}
check_consistent "after bulk add"

# staging_has PREFIX: the bulk add of PREFIX-... is under way: it has issued identities into
# its staging directory
staging_has() { ls -d "$D"/pki/.staging-*/"$1"-* >/dev/null 2>&1; }

# interrupted bulk add (SIGINT): nothing is added
moat device add --prefix intr --count 50000 >/dev/null 2>"$T/intr.err" &
pid=$!
wait_for 60 staging_has intr || fail "bulk add did not start"
kill -INT $pid
set +e; wait $pid; rc=$?; set -e
[ $rc -ne 0 ] || fail "interrupted bulk add exited 0"
grep -q "interrupted" "$T/intr.err" || fail "interrupted bulk add: $(cat "$T/intr.err")"
[ "$(ls "$D/pki/identities" | grep -c '^intr-' || true)" = 0 ] || fail "interrupted bulk add left identities"
check_consistent "after SIGINT"
pass "SIGINT during bulk add: nothing added"

# killed bulk add (SIGKILL): the next change repairs the directory
moat device add --prefix killed --count 50000 >/dev/null 2>&1 &
pid=$!
wait_for 60 staging_has killed || fail "bulk add did not start"
kill -KILL $pid
set +e; wait $pid; set -e
expect_ok "add after a killed bulk add" moat device add after-kill
check_consistent "after SIGKILL and the next change"
[ "$(moat --json device list | grep -c '"killed-' || true)" = 0 ] || fail "killed bulk add left rows"
pass "SIGKILL during bulk add: repaired on the next change"

# a renewal interrupted after its files were staged is undone on the next change
mkdir "$D/pki/identities/after-kill/.next"
cp "$D/pki/identities/esp32-actuator-001/cert.pem" "$D/pki/identities/after-kill/.next/cert.pem"
expect_ok "change after a staged renewal" moat device add after-renew
[ ! -e "$D/pki/identities/after-kill/.next" ] || fail "stale .next not removed"
[ "$(openssl x509 -in "$D/pki/identities/after-kill/cert.pem" -noout -subject -nameopt RFC2253)" = "subject=OU=device,O=e2e,CN=after-kill" ] ||
	[ "$(openssl x509 -in "$D/pki/identities/after-kill/cert.pem" -noout -subject -nameopt RFC2253)" = "subject=CN=after-kill,OU=device,O=e2e" ] ||
	fail "after-kill's certificate was replaced"
check_consistent "after a staged renewal"

# a renewal interrupted after its commit, before its files were moved, is finished
S="$D/pki/identities/esp32-sensor-001"
cur_serial=$(openssl x509 -in "$S/cert.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
mkdir "$S/.next" && cp "$S/cert.pem" "$S/key.pem" "$S/.next/" && chmod 600 "$S/.next/key.pem"
cp "$T/exp-pem/cert.pem" "$S/cert.pem"  # the old files: another certificate
expect_ok "change after a committed renewal" moat device add after-commit
[ ! -e "$S/.next" ] || fail ".next of a committed renewal not promoted"
[ "$(openssl x509 -in "$S/cert.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)" = "$cur_serial" ] ||
	fail "committed renewal not finished"
check_consistent "after a committed renewal"
pass "interrupted renewals are finished or undone"

# keys never reach the terminal
for cmd in "device list" "device show esp32-sensor-001" "identity list"; do
	# shellcheck disable=SC2086
	o=$(moat $cmd 2>&1)
	assert_not_contains "$o" "PRIVATE KEY"
done
pass "foundation"
