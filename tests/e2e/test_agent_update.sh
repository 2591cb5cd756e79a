#!/usr/bin/env bash
# test_agent_update.sh: signed updates end to end through the deployment's own services
# (`moat up`: Mosquitto with the moat plugin, and moatd with its update-event ingest).
# moat-agent itself is the firmware image, started by moat-boot as 1.0.0. An operator's
# check_update is accepted at once (the check runs beside the MQTT session), the agent
# downloads 1.1.0 published with `moat fw publish`, answers with the outcome, restarts
# into the trial through moat-boot, reaches the broker, confirms, and the floor rises;
# moatd records checked, downloading, verified, installed and confirmed. The check runs in
# moat-update (moat-agent does not link the HTTPS client). A release whose image was
# altered in moatd's store is refused (hash_mismatch): refused response and event, and
# the agent keeps running 1.1.0.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_moatd.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_update.sh"
source "$(dirname "$0")/lib_agent_update.sh"

au_setup
libs=$(ldd "$AGENT_BIN") || fail "ldd $AGENT_BIN failed"
assert_contains "$libs" "libmosquitto"
assert_not_contains "$libs" "libcurl"
pass "moat-agent does not link libcurl (its update checks run in moat-update)"
grep -q "^server = https://localhost:$SERVER_PORT\$" "$CONF" ||
	fail "export wrote no [update] server: $(cat "$CONF")"
pass "moat device export --format agent names moatd in [update]"
au_start
pass "the agent checks for updates at start and reports it to moatd"

# ---- 1.1.0: staged, trial, confirmed ----
au_image 1.1.0
sign "$T/agent-1.1.0" 1.1.0 2 "$T/agent-1.1.0.json"
expect_ok "publish 1.1.0 for dev1" moat fw publish "$T/agent-1.1.0.json" "$T/agent-1.1.0" --devices dev1
expect_ok "check_update is accepted at once" moat cmd dev1 check_update --as ops --timeout "$(deadline 10s)" --wait
assert_contains "$out" "accepted"
wait_for 60 grep -q 'staged in slot b' "$T/watch.json" ||
	fail "no outcome response: $(grep check_update "$T/watch.json" | tail -3) $(tail -5 "$T/boot.log")"
grep 'staged in slot b' "$T/watch.json" | qgrep '"status":"accepted"' ||
	fail "the outcome is not 'accepted': $(grep 'staged in slot b' "$T/watch.json")"
pass "the outcome follows as a second response: staged"
wait_grep 60 "event=start slot=b version=1.1.0 trial=yes" "$T/boot.log" ||
	fail "moat-boot did not start the trial: $(tail -5 "$T/boot.log")"
wait_grep 60 "event=confirmed slot=b version=1.1.0" "$T/boot.log" ||
	fail "the trial did not confirm: $(tail -8 "$T/boot.log")"
expect_ok "boot status" moat-boot --state "$BS" --status
assert_contains "$out" "active=b"
assert_contains "$out" "trial=-"
assert_contains "$out" "floor=2"
pass "the agent restarted into 1.1.0 on trial, reached the broker and confirmed: floor 2"
for stage in downloading verified installed confirmed; do au_wait_event $stage; done
au_wait_event checked 2 # the check at the start of 1.1.0: nothing newer
expect_ok "fw status" moat fw status dev1
for stage in downloading verified installed confirmed; do assert_contains "$out" "$stage"; done
assert_contains "$out" "1.1.0"
pass "moat fw status shows downloading, verified, installed, confirmed"

# ---- 1.2.0 altered in moatd's store: refused, 1.1.0 keeps running ----
au_image 1.2.0
sign "$T/agent-1.2.0" 1.2.0 2 "$T/agent-1.2.0.json"
expect_ok "publish 1.2.0 for dev1" moat fw publish "$T/agent-1.2.0.json" "$T/agent-1.2.0" --devices dev1
stored=$(find "$D/firmware/releases" -path '*1.2.0*' -name image.bin | head -1)
[ -f "$stored" ] || fail "release store layout: no image.bin for 1.2.0 under $D/firmware/releases"
chmod u+w "$stored"
flip_byte "$stored" 100
starts=$(grep -c "event=start " "$T/boot.log")
expect_ok "check_update accepted" moat cmd dev1 check_update --as ops --timeout "$(deadline 10s)" --wait
wait_for 60 grep -q '"status":"refused".*hash_mismatch\|hash_mismatch.*"status":"refused"' "$T/watch.json" ||
	fail "no refused response: $(grep check_update "$T/watch.json" | tail -3)"
au_wait_event refused
expect_ok "fw status" moat fw status dev1
assert_contains "$out" "refused"
assert_contains "$out" "hash_mismatch"
# A command answered after the refusal: the agent went on instead of restarting.
expect_ok "diagnostics answered after the refusal" moat cmd dev1 diagnostics --as ops --timeout "$(deadline 10s)" --wait
[ "$(grep -c "event=start " "$T/boot.log")" = "$starts" ] || fail "the agent restarted after a refusal"
kill -0 "$BOOT" || fail "moat-boot ended"
expect_ok "boot status" moat-boot --state "$BS" --status
assert_contains "$out" "active=b"
assert_contains "$out" "trial=-"
expect_ok "diagnostics still answered" moat cmd dev1 diagnostics --as ops --timeout "$(deadline 10s)" --wait
pass "an altered release is refused (hash_mismatch) and the agent keeps running 1.1.0"
au_stop
