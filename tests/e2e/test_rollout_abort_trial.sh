#!/usr/bin/env bash
# test_rollout_abort_trial.sh: a rollout aborted while devices of its first phase are ON
# TRIAL (booted into the new slot, not confirmed), through the deployment's own services
# (`moat up`: Mosquitto with the plugin, moatd with its ingest and rollout tick) and
# `moat sim` devices on virtual A/B slots whose health check is held (--trial-hold):
#   - the options' refusals: --trial-hold without a unit, out of range, without --firmware;
#   - abort while both phase-1 devices are on trial (their boot state says so after it);
#   - the one whose trial fails (--fail-trial) reverts by its own boot rule, reports
#     "reverted" and runs the old slot again; the rollout stays aborted and counts it as
#     reverted in its phase;
#   - the one whose health check passes after the abort confirms and keeps the release:
#     nothing downgrades it;
#   - after the abort moatd offers the release to nobody (every version check in its access
#     log answers 204, the device of the phase that never started included);
#   - no device runs a slot below its floor, and no device reports running 1.0.0 once it
#     confirmed 1.1.0.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_moatd.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_update.sh"

upd_plugin_setup
for d in ta1 ta2 ta3; do
	moat device add "$d" --type "$TYPE" >/dev/null
	moat device tag "$d" trial >/dev/null
done
moat_up_test
wait_for 30 grep -q "event=ingest_subscribed as=backend-service" "$D/log/moatd.log" ||
	fail "moatd ingest not subscribed: $(tail -5 "$D/log/moatd.log")"

head -c 1000 /dev/urandom >"$T/fw-1.0.0"
sign "$T/fw-1.0.0" 1.0.0 1 "$T/fw-1.0.0.json"
head -c 1000 /dev/urandom >"$T/fw-1.1.0"
sign "$T/fw-1.1.0" 1.1.0 2 "$T/fw-1.1.0.json"
FW=(--firmware "$T/fw-1.0.0" --envelope "$T/fw-1.0.0.json")

# ---- --trial-hold's refusals: one line each, nothing started ----
for bad in 5 0s 61s 5x -1s; do
	expect_fail "--trial-hold $bad" moat sim ta3 "${FW[@]}" --trial-hold "$bad"
	assert_contains "$errout" "--trial-hold"
	[ "$(printf '%s\n' "$errout" | wc -l)" = 1 ] || fail "--trial-hold $bad: not one line: $errout"
done
expect_fail "--trial-hold without --firmware" moat sim ta3 --trial-hold 5s
assert_contains "$errout" "--trial-hold goes with --firmware and --envelope"
[ ! -e "$D/run/sim/ta3" ] || fail "a refused moat sim left state behind"
pass "moat sim refuses --trial-hold without a unit, out of 1ms..60s, or without --firmware"

# ---- a two-phase rollout; which two devices phase 1 took, as moatd offers it ----
expect_ok "publish 1.1.0 to nobody" moat fw publish "$T/fw-1.1.0.json" "$T/fw-1.1.0" --rollout 0
expect_ok "group" moat group add trial --where "tag=trial"
expect_ok "rollout" moat --json fw rollout create "$T/fw-1.1.0.json" --group trial --phases 66%,100% \
	--soak 1h
assert_contains "$out" '"id":1,'
phase1=() phase2=()
for d in ta1 ta2 ta3; do
	code=$(dcurl "$d" "$(url /api/firmware/version?current=1.0.0)") || true
	case $code in
	200) phase1+=("$d") ;;
	204) phase2+=("$d") ;;
	*) fail "$d: HTTP $code for its version check" ;;
	esac
done
{ [ ${#phase1[@]} = 2 ] && [ ${#phase2[@]} = 1 ]; } || fail "phases: 1=${phase1[*]} 2=${phase2[*]}"
BAD=${phase1[0]} GOOD=${phase1[1]} LATE=${phase2[0]}

# BAD's trial fails its health check, GOOD's passes; both are held on trial. LATE (phase 2,
# never started) runs with GOOD.
HOLD=$(deadline 6s)
moat sim "$BAD" "${FW[@]}" --fail-trial 1.1.0 --trial-hold "$HOLD" >"$T/bad.out" 2>"$T/bad.err" &
BADSIM=$!
E2E_PIDS+=("$BADSIM")
moat sim "$GOOD" "$LATE" "${FW[@]}" --trial-hold "$HOLD" >"$T/good.out" 2>"$T/good.err" &
GOODSIM=$!
E2E_PIDS+=("$GOODSIM")

boot_status() { moat-boot --state "$D/run/sim/$1/boot" --status; }
# on trial: booted into slot b (its one start counted), not confirmed
on_trial() { local s; s=$(boot_status "$1") && qgrep -x "trial=b" <<<"$s" && qgrep -x "attempts=1" <<<"$s"; }
wait_for 30 on_trial "$BAD" || fail "$BAD not on trial: $(boot_status "$BAD"; tail -3 "$T/bad.err")"
wait_for 30 on_trial "$GOOD" || fail "$GOOD not on trial: $(boot_status "$GOOD"; tail -3 "$T/good.err")"
for d in "$BAD" "$GOOD"; do
	wait_for 20 grep -q "event=update_event id=$d stage=installed version=1.1.0" "$D/log/moatd.log" ||
		fail "moatd did not record $d's installed 1.1.0"
done
expect_ok "status on trial" moat --json fw rollout status 1
assert_contains "$out" '"devices":2,"offered":0,"downloading":0,"installed":2,"confirmed":0,"reverted":0'

mark=$(log_lines "$D/log/moatd.log")
expect_ok "abort while on trial" moat --json fw rollout abort 1
assert_contains "$out" '"state":"aborted"'
# the abort really came while both were on trial: neither has decided yet
on_trial "$BAD" || fail "$BAD was no longer on trial at the abort: $(boot_status "$BAD")"
on_trial "$GOOD" || fail "$GOOD was no longer on trial at the abort: $(boot_status "$GOOD")"
qgrep "id=$BAD event=trial_held" "$T/bad.err" || fail "$BAD's trial was not held"
pass "abort while both phase-1 devices are on trial (booted into slot b, unconfirmed)"

# ---- they settle by their own rules ----
wait_for 30 grep -q "event=update_event id=$BAD stage=reverted version=1.1.0" "$D/log/moatd.log" ||
	fail "$BAD did not report its revert: $(tail -5 "$T/bad.err")"
qgrep "id=$BAD event=trial_crashed version=1.1.0" "$T/bad.err" || fail "$BAD: no crashed trial"
out=$(boot_status "$BAD")
assert_contains "$out" "trial=-"
qgrep -x "active=a" <<<"$out" || fail "$BAD does not run its first slot again: $out"
assert_contains "$out" "slot_a=1.0.0 security_version=1"
wait_for 30 grep -q "event=update_event id=$GOOD stage=confirmed version=1.1.0" "$D/log/moatd.log" ||
	fail "$GOOD did not confirm after the abort: $(tail -5 "$T/good.err")"
out=$(boot_status "$GOOD")
qgrep -x "active=b" <<<"$out" || fail "$GOOD does not run 1.1.0's slot: $out"
qgrep -x "floor=2" <<<"$out" || fail "$GOOD's floor did not rise: $out"
assert_contains "$out" "slot_b=1.1.0 security_version=2"
expect_ok "status after they settled" moat --json fw rollout status 1
assert_contains "$out" '"state":"aborted"'
assert_contains "$out" '{"phase":1,"percent":66,'
assert_contains "$out" '"devices":2,"offered":0,"downloading":0,"installed":0,"confirmed":1,"reverted":1,"refused":0,"silent":0'
pass "after the abort the failed trial reverts by the boot's rule (counted reverted in phase 1), the passing one keeps 1.1.0"

# ---- nothing is offered after the abort: every device checks, every answer is 204 ----
checked_since() { log_has_since "$D/log/moatd.log" "$mark" -E "event=update_event id=$1 stage=checked"; }
end=$((SECONDS + $(deadline 30)))
until checked_since "$BAD" && checked_since "$GOOD" && checked_since "$LATE"; do
	[ $SECONDS -lt $end ] || fail "not every device checked after the abort: $(tail -n +"$mark" "$D/log/moatd.log" | grep update_event)"
	kill -USR1 "$GOODSIM" "$BADSIM"
	sleep 0.3
done
expect_status 204 "aborted: the device of the phase that never started is not offered" "$LATE" \
	"$(url /api/firmware/version?current=1.0.0)"
expect_status 204 "aborted: the reverted device is not offered" "$BAD" "$(url /api/firmware/version?current=1.0.0)"
# moatd's access log after the abort: every version check of the three answered 204
# (status 1 at once on any other answer; 2 while a device's line is not written yet)
access_after_abort() {
	python3 - "$D/log/moatd.log" "$mark" "$BAD" "$GOOD" "$LATE" <<'EOF'
import re, sys
path, mark, devs = sys.argv[1], int(sys.argv[2]), set(sys.argv[3:])
seen = {d: 0 for d in devs}
for i, line in enumerate(open(path), 1):
    if i <= mark or "event=request " not in line or "path=/api/firmware/version" not in line:
        continue
    dev = re.search(r" id=(\S+)", line).group(1)
    if dev in devs:
        seen[dev] += 1
        if " status=204 " not in line:
            print("offered after the abort:", line.strip(), file=sys.stderr)
            sys.exit(1)
sys.exit(0 if all(seen.values()) else 2)
EOF
}
end=$((SECONDS + $(deadline 10)))
until access_after_abort; do
	[ $? = 2 ] || fail "a version check after the abort was answered other than 204"
	[ $SECONDS -lt $end ] || fail "moatd's access log lacks a device's check after the abort"
	sleep 0.1
done
for d in "$BAD" "$GOOD" "$LATE"; do
	if log_has_since "$D/log/moatd.log" "$mark" -E "event=update_event id=$d stage=(downloading|verified|installed|refused)"; then
		fail "$d was offered something after the abort: $(tail -n +"$mark" "$D/log/moatd.log" | grep "id=$d")"
	fi
done
out=$(boot_status "$LATE")
assert_contains "$out" "trial=-"
qgrep -x "active=a" <<<"$out" || fail "$LATE changed slots: $out"
assert_contains "$out" "slot_b=-"
pass "after the abort moatd offers 1.1.0 to nobody (every version check 204, phase 2's device included)"

# ---- no device below its floor, none downgraded ----
for d in "$BAD" "$GOOD" "$LATE"; do
	out=$(boot_status "$d")
	python3 - "$out" <<'EOF' || fail "$d runs a slot below its floor: $out"
import re, sys
s = sys.argv[1]
kv = dict(l.split("=", 1) for l in s.splitlines() if "=" in l and not l.startswith("slot_"))
active = kv["active"]
sv = int(re.search(r"^slot_%s=\S+ security_version=(\d+)$" % active, s, re.M).group(1))
sys.exit(0 if sv >= int(kv["floor"]) else 1)
EOF
done
python3 - "$D/log/moatd.log" "$GOOD" <<'EOF' || fail "$GOOD reported running 1.0.0 after it confirmed 1.1.0"
import sys
confirmed = False
for line in open(sys.argv[1]):
    if "event=update_event id=%s " % sys.argv[2] not in line:
        continue
    if confirmed and "running=1.0.0" in line:
        sys.exit(1)
    if "stage=confirmed version=1.1.0" in line:
        confirmed = True
sys.exit(0 if confirmed else 1)
EOF
! grep -q "event=boot_refused" "$T/bad.err" "$T/good.err" || fail "a simulated boot was refused"
pass "no device runs a slot below its floor; the device that confirmed 1.1.0 after the abort is not downgraded"

kill -TERM "$BADSIM" "$GOODSIM"
wait "$BADSIM" || fail "moat sim ($BAD) did not stop cleanly: $(tail -3 "$T/bad.err")"
wait "$GOODSIM" || fail "moat sim ($GOOD $LATE) did not stop cleanly: $(tail -3 "$T/good.err")"
agent_sanitizer_clean "$T/bad.err" "$T/good.err" "$D/log/moatd.log"
