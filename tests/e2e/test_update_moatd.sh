#!/usr/bin/env bash
# test_update_moatd.sh: the updater against the real update service: `moat fw publish` a
# release for dev1, moatd serves it over mutual TLS, moat-update stages it, moat-boot
# starts it on trial and it confirms; the next check finds nothing newer; a revoked device
# is refused by moatd and keeps its version.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_update.sh"

command -v moatd >/dev/null || fail "moatd not built"
upd_setup
make_image "$T/v2.sh" 1.1.0
sign "$T/v2.sh" 1.1.0 2 "$T/v2.json"
expect_ok "publish 1.1.0 for dev1" moat fw publish "$T/v2.json" "$T/v2.sh" --devices dev1
e2e_bg moatd --dir "$D" --listen 127.0.0.1 --port "$SERVER_PORT" --no-ingest >>"$T/moatd.log" 2>&1
wait_for 20 curl -s --cacert "$D/pki/ca.crt" -o /dev/null "https://localhost:$SERVER_PORT/" ||
	fail "moatd did not start: $(tail -n 5 "$T/moatd.log")"
SRV_PORT=$SERVER_PORT

expect_ok "update from moatd" update
assert_contains "$out" "staged"
: > "$RUNLOG"
expect_ok "boot the trial" boot_once
assert_contains "$(cat "$RUNLOG")" "1.1.0 slot=b trial=1"
[ "$(state_field active)" = b ] && [ "$(state_field floor)" = 2 ] || fail "not confirmed"
expect_ok "nothing newer now" update
assert_contains "$out" "up_to_date"
pass "moatd release rolled out to dev1: staged, booted on trial, confirmed"

# A revoked device: moatd refuses it; its state is untouched.
moat device revoke dev1 >/dev/null
cp "$S/boot.state" "$T/before"
expect_fail "revoked device" update
cmp -s "$S/boot.state" "$T/before" || fail "a refused check changed the state"
if grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/moatd.log"; then
	fail "sanitizer report in moatd.log"
fi
