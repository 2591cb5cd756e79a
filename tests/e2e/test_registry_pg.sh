#!/usr/bin/env bash
# test_registry_pg: the registry's statement layer and every file on it (src/registry/db.h)
# on a real PostgreSQL 15 (lib_pg.sh: initdb'd in this test's temporary directory, run as an
# unprivileged user, on 127.0.0.1 with SCRAM password authentication). The unit test
# test_registry_db runs against it; its test_backend proves it ran on PostgreSQL and not on
# SQLite. Skipped when the server binaries are not installed (scripts/bootstrap installs
# postgresql-15). A whole deployment on it: test_registry_pg_deploy.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_pg.sh"

pg_require
unit=$MOAT_BUILD/tests/test_registry_db
[ -x "$unit" ] || fail "no $unit (build the tests)"
pg_start
pg_createdb moat
pass "PostgreSQL 15 up on 127.0.0.1:$PG_PORT as ${PG_AS[*]:-$(id -un)}"

export MOAT_TEST_PG_URL="postgresql://moat@127.0.0.1:$PG_PORT/moat?connect_timeout=10"
run_captured "$unit"
[ "$run_rc" -eq 0 ] || fail "test_registry_db on PostgreSQL: $out $errout"
ran=$(sed -n 's/^\[==========\] Running \([0-9]*\) test(s)\./\1/p' <<<"$out" | head -1)
[ -n "$ran" ] && [ "$ran" -ge 37 ] || fail "test_registry_db ran ${ran:-no} tests"
assert_contains "$out $errout" "[  PASSED  ] $ran test(s)."
pass "test_registry_db: every test on PostgreSQL"

# the schema the migrations made is the one description's: a table of each migration
tables=$(pg_sql moat \
	"SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")
for t in identities certificates meta releases update_events deleted_certificates enrollments \
	device_tags jobs job_results rollouts rollout_phases rollout_devices security_events \
	telemetry_agg dashboard_links dashboard_sessions moat_schema; do
	case ",$tables," in *",$t,"*) ;; *) fail "no table $t in PostgreSQL: $tables" ;; esac
done
v=$(pg_sql moat "SELECT version FROM moat_schema")
[ "$v" -ge 10 ] || fail "moat_schema version $v"
pass "schema version $v from schema.c's migrations"
