#!/usr/bin/env bash
# test_update_powerfail.sh: the updater killed with SIGKILL at every step of an update (in
# the manner of mcuboot's power-fail simulator): for k = 1, 2, ... the update runs from the
# same starting state with MOAT_UPDATE_KILL_AT=k (the k-th state write, rename or
# downloaded chunk raises SIGKILL) until it completes without reaching step k. After every
# kill the device must boot a verified image (1.0.0, nothing staged), and the next check
# must complete the update (resuming what was downloaded) and boot 1.1.0 on trial. Then the
# boot stage itself: killed at its trial write, killed while the trial runs, and the
# trial's confirmation killed; each time the device starts a verified image.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_update.sh"

# The failpoints exist only in test builds (cmake -DMOAT_FAILPOINTS=ON, as scripts/check
# configures): without them nothing here could be killed.
for b in moat-update moat-boot; do
	grep -aq MOAT_UPDATE_KILL_AT "$MOAT_BUILD/$b" ||
		skip "$b was built without failpoints (configure with -DMOAT_FAILPOINTS=ON)"
done

upd_setup
srv_start
make_image "$T/v2.sh" 1.1.0
sign "$T/v2.sh" 1.1.0 2 "$T/v2.json"
offer "$T/v2.sh" "$T/v2.json"
cp -a "$S" "$T/pristine"

fresh() { rm -rf "$S"; cp -a "$T/pristine" "$S"; }

k=1
while :; do
	[ $k -le 100 ] || fail "more than 100 steps in one update"
	fresh
	set +e
	MOAT_UPDATE_KILL_AT=$k update >/dev/null 2>"$T/kill.err"
	rc=$?
	set -e
	if [ $rc -eq 0 ]; then
		break # the update has fewer than k steps: every step was interrupted once
	fi
	[ $rc -eq 137 ] || fail "step $k: exit $rc, not SIGKILL: $(cat "$T/kill.err")"
	[ "$(state_field trial)" = - ] || fail "step $k: a trial was staged by a killed update"
	: > "$RUNLOG"
	boot_once >/dev/null 2>&1 || fail "step $k: the device does not boot after the kill"
	[ "$(last_run)" = "1.0.0 slot=a trial=0" ] || fail "step $k: booted '$(last_run)'"
	update >"$T/after.out" 2>&1 || fail "step $k: the next check failed: $(cat "$T/after.out")"
	grep -q "staged" "$T/after.out" || fail "step $k: not staged: $(cat "$T/after.out")"
	: > "$RUNLOG"
	boot_once >/dev/null 2>&1 || fail "step $k: the update does not boot"
	assert_contains "$(cat "$RUNLOG")" "1.1.0 slot=b trial=1"
	[ "$(state_field active)" = b ] && [ "$(state_field floor)" = 2 ] ||
		fail "step $k: not confirmed after the resumed update"
	k=$((k + 1))
done
[ $k -gt 6 ] || fail "only $((k - 1)) steps: the download was not chunked"
grep -q "range=bytes=" "$SRV/access.log" || fail "no download was ever resumed"
pass "update killed at each of its $((k - 1)) steps: always booted a verified image, then completed"

# ---- the boot stage: the update is staged in $T/staged ----
fresh
update >/dev/null
cp -a "$S" "$T/staged"
st_staged() { rm -rf "$S"; cp -a "$T/staged" "$S"; }

# moat-boot killed at its own state write (counting the trial start): nothing changed,
# so the next boot gives the trial its start.
set +e
MOAT_UPDATE_KILL_AT=1 moat-boot --state "$S" -- image >/dev/null 2>&1
rc=$?
set -e
[ $rc -eq 137 ] || fail "moat-boot not killed at its state write (exit $rc)"
: > "$RUNLOG"
boot_once >/dev/null 2>&1 || fail "no boot after moat-boot was killed"
assert_contains "$(cat "$RUNLOG")" "1.1.0 slot=b trial=1"
[ "$(state_field active)" = b ] || fail "trial not confirmed after the boot-stage kill"
pass "moat-boot killed before the trial started: the trial runs and confirms next boot"

# Power lost while the trial ran (the trial start was written, no confirmation): the next
# boot reverts and starts the verified 1.0.0.
st_staged
sed -i "s/^attempts=.*/attempts=1/; s/^deadline=.*/deadline=$(( $(date +%s) + 600 ))/" "$S/boot.state"
: > "$RUNLOG"
boot_once >/dev/null 2>"$T/boot.err" || fail "no boot after power loss during the trial"
[ "$(last_run)" = "1.0.0 slot=a trial=0" ] || fail "booted '$(last_run)' after power loss"
grep -q "event=revert" "$T/boot.err" || fail "no revert logged"
[ "$(state_field trial)" = - ] && [ "$(state_field floor)" = 1 ] || fail "state after revert"
pass "power lost during the trial: reverted to the verified previous slot"

# The confirmation killed at its state write: not confirmed, so reverted.
st_staged
sed -i "s/^attempts=.*/attempts=1/; s/^deadline=.*/deadline=$(( $(date +%s) + 600 ))/" "$S/boot.state"
set +e
MOAT_UPDATE_KILL_AT=1 moat-boot --state "$S" --confirm >/dev/null 2>&1
rc=$?
set -e
[ $rc -eq 137 ] || fail "confirm not killed (exit $rc)"
[ "$(state_field trial)" = b ] && [ "$(state_field floor)" = 1 ] || fail "a killed confirm changed the state"
: > "$RUNLOG"
boot_once >/dev/null 2>&1 || fail "no boot after a killed confirm"
[ "$(last_run)" = "1.0.0 slot=a trial=0" ] || fail "booted '$(last_run)' after a killed confirm"
pass "confirmation killed: the unconfirmed trial is reverted, floor unchanged"
