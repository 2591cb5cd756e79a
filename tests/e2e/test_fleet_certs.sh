#!/usr/bin/env bash
# test_fleet_certs.sh: `moat fleet`'s certificates field (text and --json): the current
# certificates of the fleet's devices that have expired and those expiring within 30 days;
# a revoked device and a service are not counted. The registry's not_after of one device is
# moved into the past (the clock injected there: no certificate can be issued expired).
source "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || skip "sqlite3 not installed"

e2e_init
moat device add fresh --type sensor >/dev/null
moat device add soon --type sensor --days 10 >/dev/null
moat device add later --type sensor --days 40 >/dev/null
moat device add gone --type sensor --days 5 >/dev/null
moat device add old --type sensor >/dev/null
moat identity add svc --role service --days 3 >/dev/null
fleet_certs() { moat --json fleet | python3 -c 'import json,sys; c=json.load(sys.stdin)["certificates"]; print(c["expired"], c["expiring_30d"])'; }
# every count by what the registry holds: none expired; soon, gone (5 days) expiring
[ "$(fleet_certs)" = "0 2" ] || fail "fresh fleet: $(moat --json fleet)"
expect_ok "revoke gone" moat device revoke gone
[ "$(fleet_certs)" = "0 1" ] || fail "a revoked device counted: $(moat --json fleet)"
sqlite3 "$D/registry.db" "UPDATE certificates SET not_after = strftime('%s','now') - 3600 WHERE identity = 'old'"
[ "$(fleet_certs)" = "1 1" ] || fail "an expired certificate not counted: $(moat --json fleet)"
expect_ok "fleet text" moat fleet
assert_contains "$out" "certificates: 1 expired, 1 expiring within 30 days"
pass "moat fleet counts expired and soon-expiring device certificates (text and --json), not revoked devices or services"
