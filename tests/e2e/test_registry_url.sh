#!/usr/bin/env bash
# test_registry_url: moat.conf's [registry] url (a registry on PostgreSQL). `moat config
# check` accepts a well-formed URL and refuses, with exit 1 and one line naming file and
# line, a malformed one, a password in it, and an unknown key of the section; a deployment
# that sets it is refused by every command that opens it (the registry on PostgreSQL is not
# complete) and nothing is written to registry.db meanwhile; without the key all is as before.
source "$(dirname "$0")/lib.sh"

e2e_init
C="$D/moat.conf"
cp "$C" "$T/moat.conf.orig"
base=$(wc -l <"$C")
moat device add d1 >/dev/null

refused() {
	local what=$1 msg=$2
	shift 2
	cp "$T/moat.conf.orig" "$C"
	printf '%s\n' "$@" >>"$C"
	run_captured moat config check
	[ "$run_rc" -eq 1 ] || fail "$what: exit $run_rc: $out $errout"
	assert_contains "$errout" "$C:$((base + 3)): "
	assert_contains "$errout" "$msg"
	[ "$(printf '%s\n' "$errout" | wc -l)" -eq 1 ] || fail "$what: not one line: $errout"
	assert_not_contains "$errout" "s3cret"
	pass "refused: $what: $errout"
}
refused "not postgresql" "[registry] url: must start with postgresql://" "" "[registry]" \
	"url = mysql://db/moat"
refused "no database" "names no database" "" "[registry]" "url = postgresql://db.example.com"
refused "bad port" "port that is not 1-65535" "" "[registry]" "url = postgresql://db:99999/moat"
refused "password in the URL" "holds a password: put it in ~/.pgpass" "" "[registry]" \
	"url = postgresql://moat:s3cret@db/moat"
refused "password parameter" "holds a password parameter" "" "[registry]" \
	"url = postgresql://moat@db/moat?password=s3cret"
refused "unknown key" "unknown key" "" "[registry]" "path = /var/lib/moat.db"

cp "$T/moat.conf.orig" "$C"
printf '\n[registry]\nurl = postgresql://moat@127.0.0.1:5432/moat?sslmode=verify-full\n' >>"$C"
expect_ok "a well-formed URL" moat config check
[ "$out" = "$C: ok" ] || fail "config check said '$out'"

# every command that opens the deployment refuses it, and registry.db is left as it was
sum=$(sha256sum "$D/registry.db")
for cmd in "device list" "device add d2" "cert expiring" "status"; do
	# shellcheck disable=SC2086
	run_captured moat $cmd
	[ "$run_rc" -ne 0 ] || fail "moat $cmd ran on a deployment naming a PostgreSQL registry"
	assert_contains "$errout" "[registry] url: a registry on PostgreSQL is not supported by this moat yet"
	[ "$(printf '%s\n' "$errout" | wc -l)" -eq 1 ] || fail "moat $cmd: not one line: $errout"
done
[ "$(sha256sum "$D/registry.db")" = "$sum" ] || fail "registry.db changed"
pass "commands refuse the deployment; registry.db untouched"

cp "$T/moat.conf.orig" "$C"
run_captured moat device list
[ "$run_rc" -eq 0 ] || fail "without the key: $errout"
assert_contains "$out" "d1"
pass "without [registry]: the SQLite registry as before"
