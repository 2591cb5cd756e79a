#!/usr/bin/env bash
# test_registry_pg_concurrent: several writers at once on one PostgreSQL registry, as two
# machines would run them: two copies of one deployment directory (the same CA and moat.conf,
# so the same [registry] url), each with its own run/moat.lock, which therefore serializes
# nothing between them. Four `moat device add --prefix P --count N` at once (two per copy):
# every identity is there with one certificate and its files, every serial is unique. Then
# revocations from both copies at once: each is recorded, and meta's crl_number grew by
# exactly their number (no lost update: the number is claimed by one atomic UPDATE whose row
# lock serializes CRL generation until the transaction ends), and the CRL numbered last lists
# every revoked serial of both. Skipped when the PostgreSQL server binaries are missing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_pg.sh"
pg_require

pg_start
pg_createdb moat
url="postgresql://moat@127.0.0.1:$PG_PORT/moat?connect_timeout=10"
e2e_init --registry-url "$url"
D2=$T/d2
cp -a "$D" "$D2" # a second machine: the same deployment, its own run/moat.lock
N=40

crl0=$(pg_sql moat "SELECT value FROM meta WHERE key = 'crl_number'")
pids=()
for p in a b; do
	moat --dir "$D" device add --prefix "$p" --count "$N" --type sensor >"$T/add-$p.out" 2>&1 &
	pids+=($!)
done
for p in c d; do
	moat --dir "$D2" device add --prefix "$p" --count "$N" --type sensor >"$T/add-$p.out" 2>&1 &
	pids+=($!)
done
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || fail "device add $i failed: $(cat "$T"/add-*.out)"
done
[ "$(pg_sql moat "SELECT count(*) FROM identities WHERE role = 'device'")" = $((4 * N)) ] ||
	fail "not every device is in the registry: $(pg_sql moat "SELECT count(*) FROM identities")"
[ "$(pg_sql moat "SELECT count(DISTINCT serial) FROM certificates")" = \
	"$(pg_sql moat "SELECT count(*) FROM certificates")" ] || fail "a serial appears twice"
[ "$(pg_sql moat "SELECT count(*) FROM identities i WHERE (SELECT count(*) FROM certificates c
	WHERE c.identity = i.id) <> 1")" = 0 ] || fail "an identity has not exactly one certificate"
for p in a b c d; do
	dir=$D
	case $p in c | d) dir=$D2 ;; esac
	for i in 000001 $(printf '%06d' "$N"); do
		[ -f "$dir/pki/identities/$p-$i/cert.pem" ] || fail "no files for $p-$i in $dir"
	done
done
pass "4 x $N devices added at once from two directories: all there, one certificate each, serials unique"

# revocations from both "machines" at once
R=6
revoke_loop() {
	local dir=$1 p=$2 i
	for i in $(seq 1 "$R"); do
		moat --dir "$dir" device revoke "$p-$(printf '%06d' "$i")" >/dev/null || return 1
	done
}
revoke_loop "$D" a >"$T/rev-a.out" 2>&1 &
ra=$!
revoke_loop "$D2" c >"$T/rev-c.out" 2>&1 &
rc_=$!
wait "$ra" || fail "revocations in $D failed: $(cat "$T/rev-a.out")"
wait "$rc_" || fail "revocations in $D2 failed: $(cat "$T/rev-c.out")"
revoked=$(pg_sql moat "SELECT count(*) FROM certificates WHERE revoked_at IS NOT NULL")
[ "$revoked" = $((2 * R)) ] || fail "$revoked revoked certificates, not $((2 * R))"
crl1=$(pg_sql moat "SELECT value FROM meta WHERE key = 'crl_number'")
[ "$crl1" = $((crl0 + 2 * R)) ] ||
	fail "crl_number went from $crl0 to $crl1 after $((2 * R)) revocations: a lost update"
# the CRL numbered last (by either machine) was made after every other revocation committed:
# it lists all of them
crl_num() { openssl crl -in "$1/pki/crl.pem" -noout -crlnumber | sed 's/^crlNumber=//'; }
n1=$(($(crl_num "$D"))) n2=$(($(crl_num "$D2")))
last=$D
[ "$n2" -lt "$n1" ] || last=$D2
[ "$n1" != "$n2" ] || fail "both machines wrote CRL number $n1"
[ "$((n1 > n2 ? n1 : n2))" = "$crl1" ] || fail "the newest CRL is number $n1/$n2, the registry says $crl1"
listed=$(openssl crl -in "$last/pki/crl.pem" -noout -text | grep -c 'Serial Number:' || true)
[ "$listed" = $((2 * R)) ] || fail "the newest CRL ($last) lists $listed serials, not $((2 * R))"
pass "$((2 * R)) revocations at once from two directories: crl_number $crl0 -> $crl1, the newest CRL lists all"
