#!/usr/bin/env bash
# test_update_moatd.sh: the updater against the real update service: `moat fw publish` a
# release for dev1, moatd serves it over mutual TLS, moat-update stages it, moat-boot
# starts it on trial and it confirms; the next check finds nothing newer; a release that
# crashes on trial is reverted and not staged again while moatd still offers it, a later
# one is; moat-update --report prints its progress and outcome as JSON lines (what
# moat-agent reads); a revoked device is refused by moatd and keeps its version. All under
# umask 077, as on a hardened host: moatd (its own account) must still read the releases.
umask 077
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fw.sh"
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

update_report
[ $rc -eq 0 ] || fail "update from moatd: exit $rc: $out $errout"
[ "$report" = "staged 1" ] || fail "report: $out"
assert_contains "$(printf '%s\n' "$out" | head -n 1)" '"stage":"downloading","version":"1.1.0","offset":0,"size":'
[ "$(report_field slot)" = b ] && [ "$(report_field version)" = 1.1.0 ] || fail "report: $out"
[ -z "$errout" ] || fail "--report wrote to stderr: $errout"
# one TLS connection for the check: the envelope and the image share moatd's conn= number
conns_of_check() {
	python3 - "$T/moatd.log" <<'PY'
import re, sys
lines = [l for l in open(sys.argv[1]) if "event=request " in l and " id=dev1 " in l]
env = [l for l in lines if "path=/api/firmware/version" in l]
img = [l for l in lines if "path=/api/firmware/download/" in l]
conn = lambda l: re.search(r" conn=(\d+)", l).group(1)
print(conn(env[-1]), conn(img[-1]) if img else "none", len(set(conn(l) for l in lines)))
PY
}
read -r env_conn img_conn n_conns <<<"$(conns_of_check)"
[ "$env_conn" = "$img_conn" ] && [ "$env_conn" != 0 ] ||
	fail "envelope and image not over one connection: $(grep 'event=request ' "$T/moatd.log")"
[ "$n_conns" = 1 ] || fail "the check opened $n_conns connections: $(grep 'event=request ' "$T/moatd.log")"
: > "$RUNLOG"
expect_ok "boot the trial" boot_once
assert_contains "$(cat "$RUNLOG")" "1.1.0 slot=b trial=1"
[ "$(state_field active)" = b ] && [ "$(state_field floor)" = 2 ] || fail "not confirmed"
expect_ok "nothing newer now" update
assert_contains "$out" "up_to_date"
update_report
[ $rc -eq 0 ] && [ "$report" = "up_to_date 0" ] || fail "report when up to date: $rc $out"
read -r env_conn2 _ n_conns <<<"$(conns_of_check)"
[ "$env_conn2" != "$env_conn" ] && [ "$n_conns" = 3 ] ||
	fail "each check is not its own connection: $(grep 'event=request ' "$T/moatd.log")"
pass "moatd release rolled out to dev1: staged (envelope and image over one TLS connection), booted on trial, confirmed"

# A release that crashes on trial: reverted by moat-boot; moatd keeps offering it, the
# device does not stage it again; a release issued later is staged.
make_image "$T/v3.sh" 1.2.0 crash
after_issue "$T/v2.json"
sign "$T/v3.sh" 1.2.0 2 "$T/v3.json"
expect_ok "publish crashing 1.2.0" moat fw publish "$T/v3.json" "$T/v3.sh" --devices dev1
expect_ok "update to 1.2.0" update
assert_contains "$out" "staged"
: > "$RUNLOG"
expect_ok "boot: 1.2.0 crashes, reverted" boot_once
assert_contains "$errout" "event=revert"
[ "$(last_run)" = "1.1.0 slot=b trial=0" ] || fail "after the revert: $(last_run)"
cp "$S/boot.state" "$T/state-reverted"
update_report
[ $rc -eq 0 ] && [ "$report" = "up_to_date 0" ] || fail "reverted 1.2.0 offered again: $rc $out"
assert_contains "$(report_field msg)" "version 1.2.0 was reverted on this device"
cmp -s "$S/boot.state" "$T/state-reverted" || fail "the reverted release changed the state"
[ ! -e "$S/slots/a/image.part" ] || fail "the reverted release was downloaded"
make_image "$T/v4.sh" 1.3.0
after_issue "$T/v3.json"
sign "$T/v4.sh" 1.3.0 2 "$T/v4.json"
expect_ok "publish 1.3.0" moat fw publish "$T/v4.json" "$T/v4.sh" --devices dev1
update_report
[ $rc -eq 0 ] && [ "$report" = "staged 1" ] || fail "1.3.0 after the revert: $rc $out"
[ "$(report_field version)" = 1.3.0 ] && [ "$(state_field trial)" = a ] || fail "1.3.0 not staged"
update_report
[ $rc -eq 0 ] && [ "$report" = "trial_pending 0" ] || fail "report while on trial: $rc $out"
: > "$RUNLOG"
expect_ok "boot the trial of 1.3.0" boot_once
assert_contains "$(cat "$RUNLOG")" "1.3.0 slot=a trial=1"
[ "$(state_field active)" = a ] || fail "1.3.0 not confirmed"
pass "reverted release not staged again while offered; a later release staged and confirmed"

# A revoked device: moatd refuses it; its state is untouched.
moat device revoke dev1 >/dev/null
cp "$S/boot.state" "$T/before"
expect_fail "revoked device" update
cmp -s "$S/boot.state" "$T/before" || fail "a refused check changed the state"
update_report
[ $rc -eq 1 ] && [ "$report" = "failed 0" ] || fail "report of a failed check: $rc $out"
[ -n "$(report_field msg)" ] || fail "a failed check without a message: $out"
cmp -s "$S/boot.state" "$T/before" || fail "a refused check changed the state"
pass "moat-update --report: failed check as one outcome line, exit 1"
if grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/moatd.log"; then
	fail "sanitizer report in moatd.log"
fi
