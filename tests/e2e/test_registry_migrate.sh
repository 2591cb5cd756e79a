#!/usr/bin/env bash
# test_registry_migrate: `moat registry migrate --to postgresql://…` on a real PostgreSQL 15
# (lib_pg.sh). A SQLite deployment gets devices, certificates, a revocation, tags, a group,
# a published release and a rollout, then runs (`moat up`, two simulated devices) long enough
# for moatd to record device state, telemetry and security events (an ACL denial); after
# `moat down`:
#   - refused, with one line, and nothing changed (moat.conf, registry.db, the target's
#     tables): while `moat up` runs; while run/moat.lock is held; a database holding another table; an unreachable URL; a
#     copy that lost a revocation (the MOAT_REGISTRY_COPY_TAMPER failpoint), caught by the
#     proof, with nothing committed to the target;
#   - the migration prints every table's rows, checksum and last id on both sides, equal
#     (--json), writes [registry] url, keeps registry.db as registry.db.migrated-<time> (0600);
#   - `moat up` on PostgreSQL: the fleet's counts are those before, the revoked device is
#     still refused, the rollout is there, and a new security event gets a larger seq than
#     every migrated one (the SIEM exporter follows seq); a second migrate is refused.
# Skipped when the PostgreSQL server binaries are missing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_pg.sh"
pg_require
plugin_require
command -v jq >/dev/null || skip "jq not installed"

pg_start
pg_createdb moat
pg_createdb other
pg_sql other "CREATE TABLE unrelated (x int)" >/dev/null || fail "cannot make a table in other"
cp "$PGPASSFILE" "$T/moat.pgpass"
chmod 0600 "$T/moat.pgpass"
export PGPASSFILE=$T/moat.pgpass
url="postgresql://moat@127.0.0.1:$PG_PORT/moat?connect_timeout=10"

e2e_init
[ "$(id -u)" != 0 ] || chown moat: "$PGPASSFILE" # moatd's account reads it after the move
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
moat identity add backend-service --role service >/dev/null
moat fw keygen --type ed25519 >/dev/null 2>&1 || fail "fw keygen"
for i in 1 2 3; do moat device add "dev$i" --type sensor >/dev/null || fail "device add dev$i"; done
moat device tag dev1 plant1 >/dev/null
moat device tag dev2 plant1 >/dev/null
expect_ok "group add" moat group add plant --where "tag=plant1"
head -c 20000 /dev/urandom >"$T/fw"
moat fw sign "$T/fw" --type sensor --version 1.1.0 --security-version 1 --out "$T/fw.json" \
	>/dev/null 2>&1 || fail "fw sign"
expect_ok "publish" moat fw publish "$T/fw.json" "$T/fw" --rollout 0
expect_ok "rollout create" moat fw rollout create "$T/fw.json" --group plant --phases 50%,100% \
	--soak 1h
expect_ok "revoke dev3" moat device revoke dev3

moat_up_test
wait_for 30 grep -q "event=ingest_subscribed" "$D/log/moatd.log" ||
	fail "moatd did not subscribe: $(tail -3 "$D/log/moatd.log")"

# refused while the deployment runs: nothing changed
snapshot() {
	{
		sha256sum "$D/moat.conf" "$D/registry.db"
		ls "$D"
		pg_sql moat "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
	} 2>&1
}
unchanged() {
	[ "$(snapshot)" = "$before" ] || fail "$1 changed something: $(diff <(echo "$before") <(snapshot))"
	[ "$(pg_sql moat "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" = 0 ] ||
		fail "$1 left tables in the target"
}
one_line() { [ "$(printf '%s\n' "$errout" | wc -l)" -eq 1 ] || fail "$1: not one line: $errout"; }
run_captured moat registry migrate --to "$url"
[ "$run_rc" -ne 0 ] || fail "migrate ran while the deployment runs"
assert_contains "$errout" "is running (moat up"
one_line "running"
pass "refused while moat up runs: $errout"

moat sim --create --devices 2 --prefix mg --type sensor --interval 1s --duration 60s \
	>"$T/sim.out" 2>"$T/sim.err" &
SIM=$!
E2E_PIDS+=("$SIM")
fleet_json() { moat --json fleet 2>/dev/null; }
in_fleet() { fleet_json | jq -e '.state.online == 2 and .telemetry_messages >= 4' >/dev/null; }
wait_for 30 in_fleet || fail "the fleet was not recorded: $(fleet_json) $(tail -3 "$T/sim.err")"
# a security event: dev1 subscribes to every topic
i="$D/pki/identities/dev1"
timeout "$(deadline 10)" mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$i/ca.crt" \
	--cert "$i/cert.pem" --key "$i/key.pem" -i dev1 -t '#' -C 1 -W 2 >/dev/null 2>&1 || true
denied() { moat --json events --kind acl_denied 2>/dev/null | jq_any '.identity == "dev1"'; }
wait_for 15 denied || fail "the ACL denial was not recorded: $(moat --json events 2>&1 | tail -3)"
kill -TERM "$SIM"
wait "$SIM" || fail "moat sim failed: $(tail -5 "$T/sim.err")"
expect_ok "moat down" moat down --timeout "$(deadline 20s)"
# the figures the migration is checked against, and the files' state
take_before() {
	fleet_before=$(fleet_json | jq -c '{devices, state, telemetry_messages}')
	seq_before=$(moat --json events 2>/dev/null | jq -s 'map(.seq) | max')
	before=$(snapshot)
}
take_before
[ "$seq_before" -gt 0 ] || fail "no security events before the migration"

# refusals after down, nothing changed each time
run_captured moat registry migrate --to "postgresql://moat@127.0.0.1:$PG_PORT/other?connect_timeout=10"
[ "$run_rc" -ne 0 ] || fail "migrate took a database holding another table"
assert_contains "$errout" "other tables"
one_line "not empty"
unchanged "a refused target"
[ "$(pg_sql other "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" = 1 ] ||
	fail "the refused target was changed"
# another command holding run/moat.lock (flock(1) as a stand-in): refused at once
# (the subshell becomes sleep holding the locked descriptor: killing it frees the lock)
(exec 9>>"$D/run/moat.lock" && flock 9 && exec sleep 60) &
holder=$!
E2E_PIDS+=("$holder")
held() { ! flock -n "$D/run/moat.lock" true; }
wait_for 10 held || fail "the stand-in did not take run/moat.lock"
run_captured moat registry migrate --to "$url"
[ "$run_rc" -ne 0 ] || fail "migrate ran while run/moat.lock was held"
assert_contains "$errout" "run/moat.lock is held"
one_line "locked"
kill "$holder"
wait "$holder" 2>/dev/null || true
unchanged "a held lock"
# a moatd started by hand (as systemd starts one: no supervisor, no run/moatd.pid) holds
# run/moatd.lock: refused, nothing copied
mport=$(free_port)
e2e_bg moatd --dir "$D" --listen 127.0.0.1 --port "$mport" >"$T/moatd-hand.log" 2>&1
hand=$!
wait_for 20 grep -q "event=listening" "$T/moatd-hand.log" ||
	fail "moatd by hand did not start: $(tail -3 "$T/moatd-hand.log")"
run_captured moat registry migrate --to "$url"
[ "$run_rc" -ne 0 ] || fail "migrate ran beside a moatd started by hand"
assert_contains "$errout" "holds run/moatd.lock"
one_line "moatd by hand"
kill -TERM "$hand"
wait "$hand" || fail "moatd by hand exited with $? on SIGTERM"
# and while a migration holds run/moatd.lock (flock(1) as a stand-in), a moatd refuses to start
(exec 9<"$D/run/moatd.lock" && flock -x 9 && exec sleep 60) &
lockholder=$!
E2E_PIDS+=("$lockholder")
xheld() { ! flock -n -s "$D/run/moatd.lock" true; }
wait_for 10 xheld || fail "the stand-in did not take run/moatd.lock"
run_captured moatd --dir "$D" --listen 127.0.0.1 --port "$mport"
[ "$run_rc" -ne 0 ] || fail "moatd started while run/moatd.lock was held exclusively"
assert_contains "$errout" "held by \`moat registry migrate\`"
kill "$lockholder"
wait "$lockholder" 2>/dev/null || true
[ "$(pg_sql moat "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" = 0 ] ||
	fail "migrate beside a moatd left tables in the target"
# moatd itself wrote registry.db (its own events, its retention pass): the figures the
# migration is checked against are taken again
take_before
dead=$(free_port)
run_captured moat registry migrate --to "postgresql://moat@127.0.0.1:$dead/moat?connect_timeout=5"
[ "$run_rc" -ne 0 ] || fail "migrate to an unreachable server succeeded"
assert_contains "$errout" "127.0.0.1:$dead"
one_line "unreachable"
unchanged "an unreachable URL"
run_captured env MOAT_REGISTRY_COPY_TAMPER=revocation moat registry migrate --to "$url"
[ "$run_rc" -ne 0 ] || fail "a copy that lost a revocation was accepted"
assert_contains "$errout" "differs from"
assert_contains "$errout" "table identities"
one_line "tampered"
unchanged "a tampered copy"
pass "refused, nothing changed: a non-empty target, a held lock, an unreachable URL, a tampered copy ($errout)"

expect_ok "migrate" moat --json registry migrate --to "$url"
report=$out
echo "$report" | jq -e '(.tables | length) >= 20 and all(.tables[]; .equal and .rows == .rows_copy
	and .sha256 == .sha256_copy)' >/dev/null || fail "the proof is not all equal: $report"
for t in identities certificates releases rollouts rollout_devices device_state security_events \
	telemetry device_tags device_groups; do
	echo "$report" | jq -e --arg t "$t" 'any(.tables[]; .table == $t and .rows > 0)' >/dev/null ||
		fail "table $t was copied empty: $report"
done
# the last seq handed out (SQLite's sqlite_sequence: at least the newest kept event's, more
# when inserts refused as duplicates drew one) carried over as it is
echo "$report" | jq -e --argjson s "$seq_before" \
	'any(.tables[]; .table == "security_events" and .last_id >= $s and .last_id_copy == .last_id)' \
	>/dev/null || fail "security_events' last id is below $seq_before or differs: $report"
last_id=$(echo "$report" | jq '.tables[] | select(.table == "security_events") | .last_id')
grep -qxF "url = $url" "$D/moat.conf" || fail "moat.conf has no [registry] url"
[ ! -e "$D/registry.db" ] || fail "registry.db is still there"
kept=$(echo "$report" | jq -r .kept)
[ -f "$kept" ] && [ "$(mode_of "$kept")" = 600 ] || fail "registry.db was not kept 0600 as $kept"
case "$kept" in "$D"/registry.db.migrated-*) ;; *) fail "kept as $kept" ;; esac
expect_ok "config check" moat config check
run_captured moat registry migrate --to "$url"
[ "$run_rc" -ne 0 ] || fail "a second migrate succeeded"
assert_contains "$errout" "on PostgreSQL already"
pass "migrated and proven: $(echo "$report" | jq -c '[.rows, (.tables | length)]') rows and tables, kept $(basename "$kept")"

# the deployment on PostgreSQL
moat_up_test
wait_for 30 grep -q "event=ingest_subscribed" "$D/log/moatd.log" ||
	fail "moatd did not subscribe on PostgreSQL: $(tail -3 "$D/log/moatd.log")"
[ "$(fleet_json | jq -c '{devices, state: (.state | del(.online)), telemetry_messages}')" = \
	"$(echo "$fleet_before" | jq -c '{devices, state: (.state | del(.online)), telemetry_messages}')" ] ||
	fail "the fleet differs: before $fleet_before, after $(fleet_json)"
expect_ok "rollout status" moat --json fw rollout status
assert_contains "$out" '"devices":2'
i="$D/pki/identities/dev3"
expect_fail "revoked dev3 connects" timeout "$(deadline 20)" mosquitto_pub -h 127.0.0.1 \
	-p "$BROKER_PORT" --cafile "$i/ca.crt" --cert "$i/cert.pem" --key "$i/key.pem" \
	-i dev3 -t devices/dev3/telemetry -m '{}'
i="$D/pki/identities/dev2"
timeout "$(deadline 10)" mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$i/ca.crt" \
	--cert "$i/cert.pem" --key "$i/key.pem" -i dev2 -t '#' -C 1 -W 2 >/dev/null 2>&1 || true
newer() {
	moat --json events --kind acl_denied 2>/dev/null |
		jq_any --argjson s "$last_id" '.identity == "dev2" and .seq > $s'
}
wait_for 15 newer || fail "no new event with a seq above $last_id: $(moat --json events 2>&1 | tail -2)"
pass "moat up on PostgreSQL: the fleet as before, dev3 refused, the rollout there, new events after seq $last_id"
