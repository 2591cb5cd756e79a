#!/usr/bin/env bash
# test_registry_url: moat.conf's [registry] url (a registry on PostgreSQL). `moat config
# check` accepts a well-formed URL and refuses, with exit 1 and one line naming file and
# line, a malformed one, a password in it, and an unknown key of the section; a deployment
# that sets it opens that database and never registry.db: with no server there, every command
# that opens it fails with one line naming the URL (without its user) and registry.db is left
# as it was; `moat backup` fails leaving nothing; `moat init
# --registry-url` refuses a bad URL before making anything, and a database it cannot reach
# leaves no directory behind. Without the key all is as before. (The registry working on a
# real PostgreSQL: test_registry_pg_deploy.)
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
refused "password parameter, encoded" "holds a password parameter" "" "[registry]" \
	"url = postgresql://moat@db/moat?pass%77ord=s3cret"
refused "a remote host without verified TLS" "without sslmode=verify-full" "" "[registry]" \
	"url = postgresql://moat@db.example/moat?sslmode=require"
refused "a parameter naming another host" "does not accept" "" "[registry]" \
	"url = postgresql://moat@127.0.0.1/moat?hostaddr=10.9.9.9"
refused "unknown key" "unknown key" "" "[registry]" "path = /var/lib/moat.db"

cp "$T/moat.conf.orig" "$C"
printf '\n[registry]\nurl = postgresql://moat@127.0.0.1:5432/moat?sslmode=verify-full\n' >>"$C"
expect_ok "a well-formed URL" moat config check
[ "$out" = "$C: ok" ] || fail "config check said '$out'"

# nothing listens on the URL's port: every command that opens the deployment says so, in one
# line naming the database, and registry.db is left as it was
pgport=$(free_port)
cp "$T/moat.conf.orig" "$C"
printf '\n[registry]\nurl = postgresql://moat@127.0.0.1:%s/moat?connect_timeout=5\n' "$pgport" >>"$C"
sum=$(sha256sum "$D/registry.db")
for cmd in "device list" "device add d2" "cert expiring" "status"; do
	# shellcheck disable=SC2086
	run_captured moat $cmd
	[ "$run_rc" -ne 0 ] || fail "moat $cmd ran with its PostgreSQL registry unreachable"
	assert_contains "$errout" "postgresql://127.0.0.1:$pgport/moat: "
	assert_not_contains "$errout" "moat@"
	[ "$(printf '%s\n' "$errout" | wc -l)" -eq 1 ] || fail "moat $cmd: not one line: $errout"
done
[ "$(sha256sum "$D/registry.db")" = "$sum" ] || fail "registry.db changed"
pass "commands open the PostgreSQL registry, not registry.db: $errout"

# moat backup: refused before the archive is begun (it would need the database's dump)
run_captured moat backup "$T/b.tar.gz"
[ "$run_rc" -ne 0 ] || fail "moat backup of a PostgreSQL registry succeeded"
assert_contains "$errout" "back it up with pg_dump"
[ ! -e "$T/b.tar.gz" ] || fail "moat backup left $T/b.tar.gz"
[ -z "$(find "$D" -maxdepth 1 -name '.moat-backup-*')" ] || fail "moat backup left a temporary"

# moat init --registry-url: a bad URL is a usage error and makes nothing; an unreachable
# database fails the init, which leaves no directory
run_captured moat --dir "$T/i1" init --registry-url "postgresql://moat:s3cret@db/moat"
[ "$run_rc" -ne 0 ] || fail "init took a URL with a password"
assert_contains "$errout" "--registry-url: holds a password"
assert_not_contains "$errout" "s3cret"
[ ! -e "$T/i1" ] || fail "a refused init made $T/i1"
run_captured moat --dir "$T/i2" init --registry-url \
	"postgresql://moat@127.0.0.1:$pgport/moat?connect_timeout=5"
[ "$run_rc" -ne 0 ] || fail "init succeeded with its database unreachable"
assert_contains "$errout" "postgresql://127.0.0.1:$pgport/moat: "
[ "$(printf '%s\n' "$errout" | wc -l)" -eq 1 ] || fail "init: not one line: $errout"
[ ! -e "$T/i2" ] || fail "a failed init left $T/i2"
pass "init --registry-url: refusals leave nothing"

cp "$T/moat.conf.orig" "$C"
run_captured moat device list
[ "$run_rc" -eq 0 ] || fail "without the key: $errout"
assert_contains "$out" "d1"
pass "without [registry]: the SQLite registry as before"
