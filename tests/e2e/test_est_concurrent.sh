#!/usr/bin/env bash
# test_est_concurrent.sh: moatd serving from its thread pool ([server] threads = 4) under
# concurrent EST enrollments and update checks, with clients nobody here wrote (openssl
# req, curl). Every device's one-time token is posted twice at once (two curl processes
# racing): exactly one of the two gets a certificate, the other a refusal (token_used, or
# already_enrolled when both passed the token check before either committed). Meanwhile
# devices with certificates ask for updates. Afterwards: every certificate serial is
# unique, each device holds exactly one certificate that verifies against the root for
# its own key, every token is marked used, the registry passes SQLite's integrity check,
# and moatd stops cleanly (no sanitizer report). All requests are bounded (--max-time).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_moatd.sh"
command -v curl >/dev/null || skip "curl not installed"
command -v jq >/dev/null || skip "jq not installed"
command -v sqlite3 >/dev/null || skip "sqlite3 not installed"

N=${N_DEVICES:-24}
e2e_init
# the racing requests come from one address: let them all in, and let the losers of the
# races fail without locking the address out
sed -i 's/^\[server\]$/[server]\nthreads = 4\nunauthenticated_per_source = 256/' "$D/moat.conf"
cat >>"$D/moat.conf" <<'EOF'
[est]
token_failures = 1000
EOF
grep -q '^threads = 4' "$D/moat.conf" || fail "moat.conf has no [server] section to extend"
[ -f "$D/pki/issuer.crt" ] || fail "moat init made no issuing CA (pki/issuer.crt)"

declare -A TOK
for i in $(seq 1 "$N"); do
	id=$(printf 'cdev%03d' "$i")
	TOK[$id]=$(moat --json device add "$id" --enroll | jq -er .token) || fail "device add $id"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$id.key" \
		-subj "/CN=$id" -outform DER -out "$T/$id.der" 2>/dev/null || fail "openssl req $id"
	chmod 600 "$T/$id.key"
	base64 <"$T/$id.der" >"$T/$id.b64"
done
for u in upd1 upd2 upd3 upd4; do
	moat device add "$u" >/dev/null || fail "device add $u"
done
moatd_start
grep -q "event=listening.* threads=4" "$T/moatd.log" || fail "moatd did not start 4 threads"
pass "moatd serves with [server] threads = 4"

EST="https://localhost:$SERVER_PORT/.well-known/est"
post() { # id attempt: one simpleenroll, the HTTP status in $T/<id>.<attempt>.code
	curl -sS --max-time 120 --cacert "$D/pki/ca.crt" -u "$1:${TOK[$1]}" \
		-H 'Content-Type: application/pkcs10' --data-binary @"$T/$1.b64" \
		-o "$T/$1.$2.body" -w '%{http_code}' "$EST/simpleenroll" >"$T/$1.$2.code" 2>/dev/null ||
		true
}
check_updates() { # id: 20 update checks on one device's certificate
	local k
	for k in $(seq 1 20); do
		dcurl "$1" --max-time 60 "$(url /api/firmware/version)" >>"$T/$1.upd" 2>/dev/null ||
			echo err >>"$T/$1.upd"
		echo >>"$T/$1.upd"
	done
}
pids=()
for u in upd1 upd2 upd3 upd4; do
	check_updates "$u" &
	pids+=($!)
done
for id in "${!TOK[@]}"; do
	post "$id" a &
	pids+=($!)
	post "$id" b &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

for id in "${!TOK[@]}"; do
	a=$(cat "$T/$id.a.code") b=$(cat "$T/$id.b.code")
	case "$a/$b" in
	200/401 | 200/403) win=a lose=$b ;;
	401/200 | 403/200) win=b lose=$a ;;
	*) fail "$id: the two racing enrollments answered $a and $b, expected one 200" ;;
	esac
	base64 -d <"$T/$id.$win.body" | openssl pkcs7 -inform DER -print_certs -out "$T/$id.crt" ||
		fail "$id: the answer is not a PKCS#7"
	openssl verify -CAfile "$D/pki/ca.crt" -untrusted "$D/pki/issuer.crt" -purpose sslclient \
		"$T/$id.crt" >/dev/null || fail "$id: the certificate does not verify against the root"
	[ "$(openssl x509 -in "$T/$id.crt" -noout -pubkey)" = "$(openssl pkey -in "$T/$id.key" -pubout)" ] ||
		fail "$id: the certificate is not for the device's key"
	[ "$lose" = 401 ] && grep -q "est_refused.*id=$id .*reason=token_used" "$T/moatd.log" && continue
	[ "$lose" = 403 ] && grep -q "est_refused.*id=$id .*reason=already_enrolled" "$T/moatd.log" &&
		continue
	fail "$id: the losing request ($lose) has no est_refused event"
done
pass "$N tokens each raced by two requests: exactly one certificate each"

for u in upd1 upd2 upd3 upd4; do
	[ "$(grep -c -x 204 "$T/$u.upd")" -eq 20 ] ||
		fail "$u: update checks did not all answer 204: $(sort "$T/$u.upd" | uniq -c | tr '\n' ' ')"
done
pass "80 update checks alongside the enrollments, all answered"

q() { sqlite3 "file:$D/registry.db?mode=ro" "$1"; }
[ "$(q "SELECT count(*) FROM certificates WHERE identity LIKE 'cdev%'")" -eq "$N" ] ||
	fail "the registry holds $(q "SELECT count(*) FROM certificates WHERE identity LIKE 'cdev%'") certificates for $N devices"
[ "$(q "SELECT count(DISTINCT identity) FROM certificates WHERE identity LIKE 'cdev%'")" -eq "$N" ] ||
	fail "a device holds two certificates"
[ "$(q "SELECT count(*) FROM certificates")" -eq "$(q "SELECT count(DISTINCT serial) FROM certificates")" ] ||
	fail "two certificates share a serial"
[ "$(q "SELECT count(*) FROM enrollments WHERE identity LIKE 'cdev%' AND used_at IS NOT NULL")" -eq "$N" ] ||
	fail "not every token is marked used"
[ "$(q "PRAGMA integrity_check")" = ok ] || fail "registry integrity check"
for id in "${!TOK[@]}"; do
	serial=$(openssl x509 -in "$T/$id.crt" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')
	[ "$(q "SELECT identity FROM certificates WHERE lower(serial) = '$serial'")" = "$id" ] ||
		fail "$id: the registry does not hold the certificate it was sent"
done
pass "registry: $N certificates, unique serials, one per device, every token used, integrity ok"

# a token used in the race stays used: a third try is refused
id=cdev001
post "$id" c
[ "$(cat "$T/$id.c.code")" = 401 ] || fail "$id: a used token answered $(cat "$T/$id.c.code")"
pass "a used token is refused afterwards"
moatd_stop
