#!/usr/bin/env bash
# test_registry_pg: the registry's statement layer and the files converted to it
# (src/registry/db.h) on a real PostgreSQL 15: initdb'd in this test's temporary directory,
# run as an unprivileged user (nobody, when the test runs as root), listening on 127.0.0.1
# on a free port with SCRAM password authentication (the password in a 0600 passfile, never
# on a command line or in the URL). The unit test test_registry_db runs against it; its
# test_backend proves it ran on PostgreSQL and not on SQLite. Skipped when the server
# binaries are not installed (scripts/bootstrap installs postgresql-15).
source "$(dirname "$0")/lib.sh"

pgbin=/usr/lib/postgresql/15/bin
for b in initdb pg_ctl postgres; do
	[ -x "$pgbin/$b" ] || skip "PostgreSQL 15 server binaries not installed ($pgbin/$b)"
done
unit=$MOAT_BUILD/tests/test_registry_db
[ -x "$unit" ] || fail "no $unit (build the tests)"
command -v psql >/dev/null || skip "psql not installed"

pg=$T/pg
mkdir -m 0700 "$pg"
as=()
if [ "$(id -u)" = 0 ]; then
	chown nobody: "$pg"
	as=(runuser -u nobody --)
fi
umask 077
pw=$(openssl rand -hex 24)
printf '%s\n' "$pw" >"$pg/pwfile"
[ "${#as[@]}" -eq 0 ] || chown nobody: "$pg/pwfile"
# --locale=C: text sorts by bytes, as SQLite's BINARY collation does (db.h, "Known gaps")
"${as[@]}" "$pgbin/initdb" -D "$pg/data" -U moat --auth=scram-sha-256 --pwfile="$pg/pwfile" \
	-E UTF8 --locale=C --no-sync >"$pg/initdb.log" 2>&1 || fail "initdb: $(tail -3 "$pg/initdb.log")"
rm -f "$pg/pwfile"

port=$(free_port)
# loopback only; the socket in the test's directory; fsync off: a throwaway cluster
"${as[@]}" "$pgbin/pg_ctl" -D "$pg/data" -l "$pg/server.log" -w -t "$(deadline 30)" \
	-o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$pg -c fsync=off" \
	start >/dev/null || fail "PostgreSQL did not start: $(tail -5 "$pg/server.log")"
on_exit "${as[*]} $pgbin/pg_ctl -D $pg/data -m fast -t 20 stop"

export PGPASSFILE=$pg/pgpass
printf '127.0.0.1:%s:*:moat:%s\n' "$port" "$pw" >"$PGPASSFILE"
chmod 0600 "$PGPASSFILE"

# the password is required: without the passfile the server refuses the connection
if PGPASSFILE=/dev/null psql -w -h 127.0.0.1 -p "$port" -U moat -d postgres -c 'SELECT 1' \
	>/dev/null 2>&1; then
	fail "the test cluster accepted a connection without its password"
fi
psql -w -q -h 127.0.0.1 -p "$port" -U moat -d postgres -c 'CREATE DATABASE moat' ||
	fail "CREATE DATABASE failed"
pass "PostgreSQL 15 up on 127.0.0.1:$port as ${as[*]:-$(id -un)}"

export MOAT_TEST_PG_URL="postgresql://moat@127.0.0.1:$port/moat?connect_timeout=10"
run_captured "$unit"
[ "$run_rc" -eq 0 ] || fail "test_registry_db on PostgreSQL: $out $errout"
assert_contains "$out $errout" "[  PASSED  ] 34 test(s)."
pass "test_registry_db: every test on PostgreSQL"

# the schema the migrations made is the one description's: a table of each migration
tables=$(psql -w -At -h 127.0.0.1 -p "$port" -U moat -d moat -c \
	"SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")
for t in identities certificates meta releases update_events deleted_certificates enrollments \
	device_tags jobs job_results rollouts rollout_phases rollout_devices security_events \
	telemetry_agg dashboard_links dashboard_sessions moat_schema; do
	case ",$tables," in *",$t,"*) ;; *) fail "no table $t in PostgreSQL: $tables" ;; esac
done
v=$(psql -w -At -h 127.0.0.1 -p "$port" -U moat -d moat -c "SELECT version FROM moat_schema")
[ "$v" -ge 10 ] || fail "moat_schema version $v"
pass "schema version $v from schema.c's migrations"
