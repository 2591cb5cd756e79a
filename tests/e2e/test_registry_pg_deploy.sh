#!/usr/bin/env bash
# test_registry_pg_deploy: a whole deployment on a PostgreSQL registry (moat.conf's
# [registry] url) on a real PostgreSQL 15 (lib_pg.sh): `moat init --registry-url` writes the
# key and makes the schema there (a second init on that database is refused), and no
# registry.db ever appears; devices are added, `moat
# up` runs the broker and moatd (as its own account when run as root, reading the database's
# password from its PGPASSFILE), three simulated devices connect and publish, moatd's ingest
# records their state and telemetry in PostgreSQL (`moat fleet --json` counts them); one
# device revoked is kicked by the broker within 2 s, refused when it comes back, and its
# revoked_kicked event reaches the registry; a release published there is offered by moatd
# to its device only and downloaded whole; `moat backup` refuses the deployment naming
# pg_dump and writes nothing. Skipped when the PostgreSQL server binaries are missing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_pg.sh"
pg_require
plugin_require
command -v jq >/dev/null || skip "jq not installed"

pg_start
pg_createdb moat
# moatd runs as its own account when the test is root: the passfile is its (libpq wants it
# 0600 and root reads it anyway), outside the cluster's directory it cannot enter
cp "$PGPASSFILE" "$T/moat.pgpass"
chmod 0600 "$T/moat.pgpass"
export PGPASSFILE=$T/moat.pgpass
url="postgresql://moat@127.0.0.1:$PG_PORT/moat?connect_timeout=10"

e2e_init --registry-url "$url"
[ "$(id -u)" != 0 ] || chown moat: "$PGPASSFILE" # [server] user's default
grep -qxF "url = $url" "$D/moat.conf" || fail "moat.conf has no [registry] url: $(cat "$D/moat.conf")"
expect_ok "config check" moat config check
[ "$(pg_sql moat "SELECT version FROM moat_schema")" -ge 11 ] || fail "no schema in PostgreSQL"
[ "$(pg_sql moat "SELECT value FROM meta WHERE key = 'crl_number'")" = 1 ] ||
	fail "init's CRL number is not in PostgreSQL"
# a second deployment on the same database: refused, nothing made
run_captured moat init --dir "$T/d2" --registry-url "$url"
[ "$run_rc" -ne 0 ] || fail "a second init took a database that holds a registry"
assert_contains "$errout" "already holds a moat registry"
[ ! -e "$T/d2" ] || fail "the refused init left $T/d2"
pass "moat init --registry-url: the schema in PostgreSQL, the key in moat.conf; a second refused"

moat identity add backend-service --role service >/dev/null
moat_up_test
PLUGIN_EVENTS="$D/log/security-events.jsonl"
wait_for 30 grep -q "event=ingest_subscribed" "$D/log/moatd.log" ||
	fail "moatd did not subscribe: $(tail -3 "$D/log/moatd.log")"

moat sim --create --devices 3 --prefix pg --type sensor --interval 1s --duration 120s \
	>"$T/sim.out" 2>"$T/sim.err" &
SIM=$!
E2E_PIDS+=("$SIM")
fleet_json() { moat --json fleet 2>/dev/null; }
all_in() { fleet_json | jq -e '.devices == 3 and .state.online == 3 and .telemetry_messages >= 3' >/dev/null; }
wait_for 30 all_in || fail "moatd's ingest did not record the fleet: $(fleet_json) $(tail -3 "$T/sim.err")"
[ "$(pg_sql moat "SELECT count(*) FROM identities WHERE simulated = 1")" = 3 ] ||
	fail "the simulated devices are not in PostgreSQL"
pass "3 simulated devices online, their telemetry ingested: $(fleet_json)"

# revoke one while it is connected: kicked within 2 s, its event in the registry
plugin_wait_event connected pg-000002 "" 10 || fail "pg-000002 never connected"
expect_ok "revoke pg-000002" moat device revoke pg-000002
plugin_kicked_within pg-000002 certificate_revoked "$D/pki/crl.pem"
kick_recorded() { moat --json events --kind revoked_kicked 2>/dev/null | jq_any '.identity == "pg-000002"'; }
wait_for 15 kick_recorded || fail "the revoked_kicked event is not in the registry: $(moat --json events 2>&1 | tail -3)"
i="$D/pki/identities/pg-000002"
expect_fail "pg-000002 connects again" timeout "$(deadline 20)" mosquitto_pub -h 127.0.0.1 \
	-p "$BROKER_PORT" --cafile "$i/ca.crt" --cert "$i/cert.pem" --key "$i/key.pem" \
	-i pg-000002 -t devices/pg-000002/telemetry -m '{}'
[ "$(pg_sql moat "SELECT count(*) FROM certificates c JOIN identities i ON i.id = c.identity \
	WHERE i.id = 'pg-000002' AND c.revoked_at IS NOT NULL")" = 1 ] ||
	fail "the revocation is not in PostgreSQL"
# moat fleet counts active devices: the revoked one has left it
others_on() {
	fleet_json | jq -e '.devices == 2 and .state.online == 2' >/dev/null &&
		[ -z "$(plugin_events revoked_kicked pg-000001)$(plugin_events revoked_kicked pg-000003)" ]
}
others_on || fail "the others did not stay: $(fleet_json)"
before=$(fleet_json | jq .telemetry_messages)
more_tele() { [ "$(fleet_json | jq .telemetry_messages)" -gt "$before" ]; }
wait_for 15 more_tele || fail "ingest stopped after the revocation: $(fleet_json)"
pass "pg-000002 revoked, kicked and refused; the others go on: $(fleet_json)"

# a release published into the PostgreSQL registry and served by moatd from it: the
# device it names is offered it and downloads the image whole; another is not offered it
moat fw keygen >/dev/null 2>&1 || fail "fw keygen"
head -c 100000 /dev/urandom >"$T/fw.bin"
expect_ok "sign 1.1.0" moat fw sign "$T/fw.bin" --type sensor --version 1.1.0 \
	--security-version 1 --out "$T/fw.json"
expect_ok "publish 1.1.0 for pg-000001" moat fw publish "$T/fw.json" "$T/fw.bin" --devices pg-000001
[ "$(pg_sql moat "SELECT count(*) FROM releases WHERE version = '1.1.0'")" = 1 ] ||
	fail "the release is not in PostgreSQL"
fwcurl() { # ID PATH: the HTTP status of moatd's answer to device ID, its body in $T/body
	curl -sS --max-time "$(deadline 30)" --cacert "$D/pki/ca.crt" \
		--cert "$D/pki/identities/$1/cert.pem" --key "$D/pki/identities/$1/key.pem" \
		-H "X-Current-Version: 1.0.0" -o "$T/body" -w '%{http_code}' \
		"https://localhost:$SERVER_PORT$2"
}
[ "$(fwcurl pg-000001 /api/firmware/version)" = 200 ] ||
	fail "pg-000001 was not offered 1.1.0: $(head -c 200 "$T/body")"
sha=$(sha256sum "$T/fw.bin" | cut -d' ' -f1)
[ "$(fwcurl pg-000001 "/api/firmware/download/$sha")" = 200 ] || fail "download refused"
cmp -s "$T/body" "$T/fw.bin" || fail "the downloaded image differs"
[ "$(fwcurl pg-000003 /api/firmware/version)" = 204 ] || fail "pg-000003 was offered a release for pg-000001"
pass "a release in PostgreSQL: offered to its device and downloaded whole, not to another"

# moat backup: refused, nothing written
run_captured moat backup "$T/backup.tar.gz"
[ "$run_rc" -ne 0 ] || fail "moat backup of a PostgreSQL registry succeeded"
assert_contains "$errout" "pg_dump"
[ "$(printf '%s\n' "$errout" | wc -l)" -eq 1 ] || fail "backup: not one line: $errout"
[ ! -e "$T/backup.tar.gz" ] || fail "moat backup left an archive"
pass "moat backup refused: $errout"

kill -TERM "$SIM"
wait "$SIM" || fail "moat sim failed: $(tail -5 "$T/sim.err")"
[ ! -e "$D/registry.db" ] || fail "a registry.db appeared in the deployment"
if grep -E 'event=registry_error|postgresql://' "$D/log/moatd.log" >"$T/moatd.errors"; then
	fail "moatd logged errors: $(head -3 "$T/moatd.errors")"
fi
pass "no registry.db in the deployment, no registry error in moatd's log"
