#!/usr/bin/env bash
# test_agent_update_revert.sh: a release that verifies but does not work (it crashes
# before confirming) is staged by moat-agent, started on trial by moat-boot, reverted; the
# agent 1.0.0 starts again, reports "reverted" to moatd, keeps its floor, and does not
# stage the same release again, neither at start nor when asked (the device remembers the
# reverted release: no trial/revert loop); a newer release is staged and confirmed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_moatd.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_fw.sh"
source "$(dirname "$0")/lib_update.sh"
source "$(dirname "$0")/lib_agent_update.sh"

au_setup
au_start
make_image "$T/broken-1.1.0" 1.1.0 crash # a signed image that dies with SIGSEGV
sign "$T/broken-1.1.0" 1.1.0 2 "$T/broken-1.1.0.json"
expect_ok "publish broken 1.1.0" moat fw publish "$T/broken-1.1.0.json" "$T/broken-1.1.0" --devices dev1
expect_ok "check_update accepted" moat cmd dev1 check_update --as ops --wait
wait_grep 60 "event=start slot=b version=1.1.0 trial=yes" "$T/boot.log" ||
	fail "moat-boot did not start the trial: $(tail -5 "$T/boot.log")"
wait_grep 60 "event=revert" "$T/boot.log" || fail "no revert: $(tail -5 "$T/boot.log")"
au_wait_event reverted
grep "event=update stage=reverted" "$T/boot.log" | qgrep "version=1.1.0 running=1.0.0" ||
	fail "reverted event: $(grep 'stage=reverted' "$T/boot.log")"
expect_ok "boot status" moat-boot --state "$BS" --status
assert_contains "$out" "active=a"
assert_contains "$out" "trial=-"
assert_contains "$out" "floor=1"
expect_ok "fw status" moat fw status dev1
assert_contains "$out" "reverted"
pass "a trial that crashed is reverted; 1.0.0 runs again and reports it"

# The restarted agent must not stage the failed release again on its own.
expect_ok "diagnostics from the reverted agent" moat cmd dev1 diagnostics --as ops --wait
# The restarted agent checks for an update at its start; once that check is logged, a
# staging of the failed release would have happened.
wait_for 60 eval "awk '/event=revert/ { n = 0 } /event=update_checked/ { n++ } END { exit n < 1 }' '$T/boot.log'" ||
	fail "the restarted agent did not check for an update: $(tail -5 "$T/boot.log")"
[ "$(grep -c 'trial=yes' "$T/boot.log")" = 1 ] || fail "the failed release was started again"
[ "$(grep -c 'event=update_event id=dev1 stage=installed' "$D/log/moatd.log")" = 1 ] ||
	fail "the failed release was staged again at start"
pass "no automatic retry of the reverted release at start"

expect_ok "check_update after the revert" moat cmd dev1 check_update --as ops --wait
wait_for 60 grep -q 'reverted on this device' "$T/watch.json" ||
	fail "no outcome naming the reverted release: $(grep check_update "$T/watch.json" | tail -3)"
grep 'reverted on this device' "$T/watch.json" | qgrep '"status":"completed"' ||
	fail "the outcome is not 'completed': $(grep 'reverted on this device' "$T/watch.json")"
# A command answered after the outcome: the agent did not restart into a trial.
expect_ok "diagnostics after the outcome" moat cmd dev1 diagnostics --as ops --wait
[ "$(grep -c 'trial=yes' "$T/boot.log")" = 1 ] || fail "the reverted release was started again"
pass "asked again, the device does not stage the release it reverted"

au_image 1.1.1
after_issue "$T/broken-1.1.0.json" # issued in a later second than the reverted release
sign "$T/agent-1.1.1" 1.1.1 2 "$T/agent-1.1.1.json"
expect_ok "publish 1.1.1" moat fw publish "$T/agent-1.1.1.json" "$T/agent-1.1.1" --devices dev1
expect_ok "check_update for 1.1.1" moat cmd dev1 check_update --as ops --wait
wait_grep 60 "event=confirmed slot=b version=1.1.1" "$T/boot.log" ||
	fail "1.1.1 did not confirm: $(tail -8 "$T/boot.log")"
expect_ok "boot status" moat-boot --state "$BS" --status
assert_contains "$out" "active=b"
assert_contains "$out" "floor=2"
pass "a newer release after the reverted one is staged and confirmed"

# A new image must not confirm when the updater it depends on does not work: the trial
# restarts before confirming and moat-boot reverts it (health check).
{
	echo '#!/bin/sh'
	echo 'for a in "$@"; do [ "$a" = --probe ] && { echo broken >&2; exit 1; }; done'
	echo "exec \"$(command -v moat-update)\" \"\$@\""
} >"$T/updater-noprobe"
chmod 0755 "$T/updater-noprobe"
agent_set "$CONF" update updater "$T/updater-noprobe" # read by the next start: the trial
au_image 1.2.0
after_issue "$T/agent-1.1.1.json"
sign "$T/agent-1.2.0" 1.2.0 3 "$T/agent-1.2.0.json"
expect_ok "publish 1.2.0" moat fw publish "$T/agent-1.2.0.json" "$T/agent-1.2.0" --devices dev1
expect_ok "check_update for 1.2.0" moat cmd dev1 check_update --as ops --wait
wait_grep 60 "event=start slot=a version=1.2.0 trial=yes" "$T/boot.log" ||
	fail "moat-boot did not start 1.2.0 on trial: $(tail -5 "$T/boot.log")"
wait_grep 60 "event=health_check_failed" "$T/boot.log" ||
	fail "no failed health check: $(tail -5 "$T/boot.log")"
wait_for 60 count_at_least 2 "event=revert" "$T/boot.log" || fail "1.2.0 was not reverted: $(tail -5 "$T/boot.log")"
if grep -q "event=confirmed slot=a version=1.2.0" "$T/boot.log"; then
	fail "1.2.0 confirmed without a working updater"
fi
expect_ok "boot status" moat-boot --state "$BS" --status
assert_contains "$out" "active=b"
assert_contains "$out" "floor=2"
au_wait_event reverted 2
pass "a trial whose updater fails its probe is not confirmed and is reverted"
au_stop
