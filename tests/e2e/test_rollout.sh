#!/usr/bin/env bash
# test_rollout.sh: tags, groups and phased rollouts through the deployment's own services
# (`moat up`: Mosquitto with the plugin, moatd with its ingest and its rollout tick).
#   - tags and a group by --where; the filter's rejections; device show names both;
#   - a four-phase rollout over four `moat sim` devices on virtual A/B slots completes,
#     one device per phase, each phase only after the previous one confirmed; moatd is
#     killed in the middle and the restarted one carries on;
#   - pause, resume and abort in the middle of a phase change what moatd offers at once;
#   - a halted rollout resumes only with --accept-failures, which accepts the failures so
#     far: a new failure halts it again; a device tagged into the group after the rollout's
#     creation is taken by it, offered the release, and counted;
#   - a rollout halts itself on injected reverts, another on a security signal (an ACL
#     denial of a device on the new release), another on an anomaly (event_jump: a device's
#     malformed payloads jump once the release reached it), naming the cause in its status
#     and moatd's log, and each halt is a security event (`moat events --kind rollout_halted`);
#   - a device of a started phase that reports nothing for --silent-after is silent and
#     counts as failed: it halts a rollout without a failure threshold;
#   - fw list names a release's rollout (id, state, phase) instead of its stale percentage;
#   - /metrics: rollouts by state and each unfinished one's progress, enrollments (promtool);
#   - status without an ID, abort --json, abort in the middle of a phase (no new offers);
#   - simulated devices whose trial really crashes (moat sim --fail-trial) revert by the
#     boot's rule and halt a rollout.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_moatd.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_update.sh"

upd_plugin_setup
moat identity add ops --role operator >/dev/null
moat device add dev2 --type "$TYPE" >/dev/null
moat device add dev3 --type "$TYPE" >/dev/null
moat device add dev4 --type "$TYPE" >/dev/null
moat_up_test
wait_for 30 grep -q "event=ingest_subscribed as=backend-service" "$D/log/moatd.log" ||
	fail "moatd ingest not subscribed: $(tail -5 "$D/log/moatd.log")"

head -c 50000 /dev/urandom >"$T/fw-1.0.0"
sign "$T/fw-1.0.0" 1.0.0 1 "$T/fw-1.0.0.json"
moat sim --create --devices 4 --prefix ro --type "$TYPE" --interval 1s --firmware "$T/fw-1.0.0" \
	--envelope "$T/fw-1.0.0.json" --update-jobs 4 >"$T/sim.out" 2>"$T/sim.err" &
SIM=$!
E2E_PIDS+=("$SIM")

# the devices exist once each checked for an update at its start
for i in 1 2 3 4; do
	wait_for 60 grep -q "event=update_event id=ro-00000$i stage=checked" "$D/log/moatd.log" ||
		fail "ro-00000$i did not check at start: $(tail -3 "$T/sim.err")"
done

# ---- tags and groups ----
for i in 1 2 3 4; do expect_ok "tag ro-00000$i" moat device tag "ro-00000$i" plant1; done
expect_ok "tag a zone" moat device tag ro-000004 zone:north spare
expect_ok "untag" moat device untag ro-000004 spare
expect_fail "untag a tag it does not carry" moat device untag ro-000004 spare
assert_contains "$errout" "has no tag 'spare'"
expect_fail "a bad tag" moat device tag ro-000001 Plant
assert_contains "$errout" "tag 'Plant'"
expect_fail "tagging an unknown device" moat device tag nosuch plant1
assert_contains "$errout" "nosuch"
expect_fail "tagging a service" moat device tag ops plant1
expect_ok "group add" moat group add plant1 --where "type=$TYPE and tag=plant1"
expect_ok "group add by zone" moat group add north --where "zone=north"
expect_ok "group add canary" moat group add canary --where "tag=canary"
for bad in "type=" "type=x; DROP TABLE identities" "colour=red" "(tag=x" "tag=x tag=y" "cert_age=3d"; do
	expect_fail "--where '$bad'" moat group add bad --where "$bad"
	assert_contains "$errout" "--where"
done
expect_fail "a group name taken" moat group add plant1 --where "tag=x"
assert_contains "$errout" "exists"
expect_fail "group add without --where" moat group add nowhere
expect_ok "group show" moat --json group show plant1
assert_contains "$out" '"devices":["ro-000001","ro-000002","ro-000003","ro-000004"]'
expect_ok "group show north" moat --json group show north
assert_contains "$out" '"devices":["ro-000004"]'
expect_ok "group list" moat --json group list
assert_contains "$out" '"group":"canary"'
expect_ok "device show" moat --json device show ro-000004
assert_contains "$out" '"tags":["plant1","zone:north"]'
assert_contains "$out" '"groups":["north","plant1"]'
pass "tags, groups by --where (type, tag, zone), the filter's rejections, device show"

# ---- a four-phase rollout completes; moatd restarts in the middle ----
head -c 50000 /dev/urandom >"$T/fw-1.1.0"
sign "$T/fw-1.1.0" 1.1.0 2 "$T/fw-1.1.0.json"
expect_ok "publish 1.1.0 to nobody" moat fw publish "$T/fw-1.1.0.json" "$T/fw-1.1.0" --rollout 0
expect_fail "--phases not ending at 100%" moat fw rollout create "$T/fw-1.1.0.json" --group plant1 \
	--phases 25%,50% --soak 1s
expect_fail "--soak without a unit" moat fw rollout create "$T/fw-1.1.0.json" --group plant1 \
	--phases 100% --soak 1
expect_fail "an unknown group" moat fw rollout create "$T/fw-1.1.0.json" --group nosuch --phases 100% --soak 1s
assert_contains "$errout" "no group 'nosuch'"
expect_fail "an empty group" moat fw rollout create "$T/fw-1.1.0.json" --group canary --phases 100% --soak 1s
assert_contains "$errout" "no active device"
expect_ok "rollout create" moat --json fw rollout create "$T/fw-1.1.0.json" --group plant1 \
	--phases 25%,50%,75%,100% --soak 1s --halt-on-failure 50%
assert_contains "$out" '"id":1,'
assert_contains "$out" '"devices":4'
expect_fail "a second rollout of the same release" moat fw rollout create "$T/fw-1.1.0.json" \
	--group plant1 --phases 100% --soak 1s
assert_contains "$errout" "has a rollout already"
dpid=$(cat "$D/run/moatd.pid")
restarted=0
rollout_state() { moat --json fw rollout status 1 | python3 -c 'import json,sys; r=json.load(sys.stdin)["rollout"]; print(r["state"], r["phase"])'; }
end=$((SECONDS + $(deadline 60)))
until [ "$(rollout_state)" = "completed 4" ]; do
	[ $SECONDS -lt $end ] || fail "rollout did not complete: $(moat fw rollout status 1; tail -5 "$D/log/moatd.log")"
	state=$(rollout_state)
	if [ $restarted = 0 ] && { [ "$state" = "running 2" ] || [ "$state" = "running 3" ]; }; then
		kill -KILL "$dpid"
		wait_for 30 sh -c "test -s '$D/run/moatd.pid' && [ \"\$(cat '$D/run/moatd.pid')\" != $dpid ]" ||
			fail "moatd not restarted after it died"
		restarted=1
	fi
	kill -USR1 "$SIM" # every device checks now: only those of a started phase are offered
	sleep 0.3
done
[ $restarted = 1 ] || fail "the rollout never was in phase 2 or 3 when checked: no restart tested"
expect_ok "rollout status" moat --json fw rollout status 1
for k in 1 2 3 4; do
	assert_contains "$out" "{\"phase\":$k,\"percent\":$((k * 25)),"
done
# every phase took one device and it confirmed
[ "$(grep -o '"devices":1,"offered":0,"downloading":0,"installed":0,"confirmed":1' <<<"$out" | wc -l)" = 4 ] ||
	fail "not one confirmed device per phase: $out"
# phase 2 started only after phase 1's one device confirmed, and so on
# (a device's "confirmed" sent while moatd was killed arrives when moatd is back, through
# the ingest's kept session; if it never did, its next check running 1.1.0 would stand in
# for it, as moatd counts it: tests/unit/test_server.c tests that rule)
python3 - "$D/log/moatd.log" <<'EOF' || fail "a phase started before the previous one confirmed: $(grep -E 'rollout_|stage=(confirmed|installed)' "$D/log/moatd.log")"
import re, sys
confirmed = set()
for line in open(sys.argv[1]):
    m = re.search(r"event=update_event id=(\S+) stage=(\w+) version=(\S+) running=(\S+)", line)
    if m:
        dev, stage, version, running = m.groups()
        if (stage == "confirmed" and version == "1.1.0") or \
                (stage == "checked" and running == "1.1.0"):
            confirmed.add(dev)
    m = re.search(r"event=rollout_advanced id=1 phase=(\d)", line)
    if m and len(confirmed) != int(m.group(1)) - 1:
        sys.exit(1)
sys.exit(0 if len(confirmed) == 4 else 1)
EOF
for i in 1 2 3 4; do
	expect_ok "slots of ro-00000$i" moat-boot --state "$D/run/sim/ro-00000$i/boot" --status
	assert_contains "$out" "slot_b=1.1.0"
done
expect_ok "rollout status text" moat fw rollout status 1
assert_contains "$out" "completed, phase 4 of 4"
expect_ok "fw list names the rollout" moat --json fw list
assert_contains "$out" '"rollout":{"id":1,"state":"completed","phase":4,"phases":4}}'
expect_ok "fw list text" moat fw list
grep -q "1.1.0 .* #1 completed 4/4 " <<<"$out" || fail "fw list does not name rollout 1: $out"
pass "a four-phase rollout completes, one phase after another confirmed, across a moatd restart"

# ---- pause, resume and abort in the middle of a phase; a halt on injected reverts ----
head -c 1000 /dev/urandom >"$T/fw-1.2.0"
sign "$T/fw-1.2.0" 1.2.0 3 "$T/fw-1.2.0.json"
expect_ok "publish 1.2.0 to nobody" moat fw publish "$T/fw-1.2.0.json" "$T/fw-1.2.0" --rollout 0
expect_ok "tag the canaries" moat device tag dev1 canary
expect_ok "tag the canaries" moat device tag dev2 canary
expect_status 204 "before its rollout nobody is offered 1.2.0" dev1 "$(url /api/firmware/version?current=1.1.0)"
expect_ok "rollout 2" moat fw rollout create "$T/fw-1.2.0.json" --group canary --phases 100% --soak 1s \
	--halt-on-failure 10%
expect_status 200 "running: offered" dev1 "$(url /api/firmware/version?current=1.1.0)"
expect_ok "pause" moat --json fw rollout pause 2
assert_contains "$out" '"state":"paused"'
expect_status 204 "paused: not offered" dev1 "$(url /api/firmware/version?current=1.1.0)"
expect_fail "pause twice" moat fw rollout pause 2
assert_contains "$errout" "is paused"
expect_ok "resume" moat fw rollout resume 2
assert_contains "$out" "running"
expect_status 200 "resumed: offered again" dev2 "$(url /api/firmware/version?current=1.1.0)"
broker_pub dev1 dev1 devices/dev1/diagnostics '{"event":"update","stage":"reverted","version":"1.2.0","running":"1.1.0","reason":"trial did not confirm"}'
wait_for 20 grep -q "event=rollout_halted id=2 phase=1 reason=failures" "$D/log/moatd.log" ||
	fail "no halt on a revert: $(moat fw rollout status 2; tail -3 "$D/log/moatd.log")"
expect_ok "status halted" moat --json fw rollout status 2
assert_contains "$out" '"state":"halted"'
assert_contains "$out" '"cause":"failures: 1 of 2 devices reverted, refused or silent (threshold 10%)"'
assert_contains "$out" '"reverted":1'
assert_contains "$out" '"silent_after_s":3600,'
halted_event() { moat --json events --kind rollout_halted | grep -F "rollout=$1 phase=1 reason=$2"; }
wait_for 20 halted_event 2 failures >/dev/null || fail "no rollout_halted event: $(moat events)"
out=$(halted_event 2 failures)
assert_contains "$out" '"severity":"high"'
assert_contains "$out" '"source":"moatd"'
assert_contains "$out" 'cause=\"failures: 1 of 2 devices'
expect_ok "fw list: halted" moat --json fw list
assert_contains "$out" '"rollout":{"id":2,"state":"halted","phase":1,"phases":1}}'
expect_status 204 "halted: not offered" dev2 "$(url /api/firmware/version?current=1.1.0)"
pass "pause, resume, a halt by itself on injected reverts (cause named)"

# ---- resuming a halted rollout accepts what halted it; a device that joins the group ----
expect_fail "resume a halted rollout without --accept-failures" moat fw rollout resume 2
assert_contains "$errout" "rollout 2 halted (failures: 1 of 2"
assert_contains "$errout" "resume --accept-failures"
expect_fail "--accept-failures outside resume" moat fw rollout pause 2 --accept-failures
expect_fail "--accept-failures with create" moat fw rollout create "$T/fw-1.2.0.json" --group canary \
	--phases 100% --soak 1s --accept-failures
assert_contains "$errout" "--accept-failures is an option of resume"
# dev4 joins the group while the rollout is halted: taken at its first tick once running
expect_ok "tag dev4" moat device tag dev4 canary
expect_ok "resume --accept-failures" moat --json fw rollout resume 2 --accept-failures
assert_contains "$out" '"state":"running"'
wait_for 20 grep -q "event=rollout_joined id=2 phase=1 devices=1" "$D/log/moatd.log" ||
	fail "dev4 did not join rollout 2: $(moat fw rollout status 2; tail -3 "$D/log/moatd.log")"
expect_status 200 "dev4, joined after the creation, is offered" dev4 "$(url /api/firmware/version?current=1.1.0)"
expect_ok "status after resume" moat --json fw rollout status 2
assert_contains "$out" '"devices":3,'
assert_contains "$out" '"reverted":1,"refused":0,"silent":0,"accepted":1}'
# a new failure after the resume counts: dev2 reverts (1 new of 3 > 10%), halted again
broker_pub dev2 dev2 devices/dev2/diagnostics '{"event":"update","stage":"reverted","version":"1.2.0","running":"1.1.0","reason":"trial did not confirm"}'
wait_for 20 sh -c "[ \$(grep -c 'event=rollout_halted id=2 phase=1 reason=failures' '$D/log/moatd.log') = 2 ]" ||
	fail "a new failure after the resume did not halt rollout 2: $(moat fw rollout status 2)"
expect_ok "status halted again" moat --json fw rollout status 2
assert_contains "$out" "failures: 2 of 3 devices reverted, refused or silent, 1 of them accepted before (threshold 10%)"
expect_ok "resume --accept-failures again" moat fw rollout resume 2 --accept-failures
# dev4 confirms: the accepted failures settle the phase, the rollout completes
broker_pub dev4 dev4 devices/dev4/diagnostics '{"event":"update","stage":"confirmed","version":"1.2.0","running":"1.2.0"}'
wait_for 20 grep -q "event=rollout_completed id=2" "$D/log/moatd.log" ||
	fail "rollout 2 did not complete with its failures accepted: $(moat fw rollout status 2)"
expect_ok "status completed" moat --json fw rollout status 2
assert_contains "$out" '"state":"completed"'
assert_contains "$out" '"devices":3,"offered":0,"downloading":0,"installed":0,"confirmed":1,"reverted":2,"refused":0,"silent":0,"accepted":2}'
expect_ok "status text" moat fw rollout status 2
assert_contains "$out" "accepted"
expect_fail "resume a completed rollout" moat fw rollout resume 2 --accept-failures
assert_contains "$errout" "is completed"
pass "a halted rollout resumes only with --accept-failures; only new failures halt it again; a device that joined the group is taken and offered"

# ---- a halt on a security signal of a device on the new release ----
head -c 1000 /dev/urandom >"$T/fw-1.3.0"
sign "$T/fw-1.3.0" 1.3.0 4 "$T/fw-1.3.0.json"
expect_ok "publish 1.3.0 to nobody" moat fw publish "$T/fw-1.3.0.json" "$T/fw-1.3.0" --rollout 0
expect_ok "tag" moat device tag dev3 canary
expect_ok "rollout 3" moat fw rollout create "$T/fw-1.3.0.json" --group canary --phases 100% --soak 1h \
	--halt-on-events
broker_pub dev2 dev2 devices/dev2/diagnostics '{"event":"update","stage":"confirmed","version":"1.3.0","running":"1.3.0"}'
wait_for 20 grep -q "event=update_event id=dev2 stage=confirmed version=1.3.0" "$D/log/moatd.log" ||
	fail "dev2's confirmation not recorded"
expect_ok "still running" moat --json fw rollout status 3
assert_contains "$out" '"state":"running"'
# dev2, now on 1.3.0, writes where it may not: the plugin's acl_denied event halts it
broker_pub dev2 dev2 devices/dev3/telemetry '{"temperature":1}' || true
wait_for 20 grep -q "event=rollout_halted id=3 phase=1 reason=security_events" "$D/log/moatd.log" ||
	fail "no halt on a security event: $(moat fw rollout status 3; grep -E 'security|rollout' "$D/log/moatd.log" | tail -3)"
expect_ok "status" moat --json fw rollout status 3
assert_contains "$out" '"state":"halted"'
assert_contains "$out" "security events: 1 of 1 devices on 1.3.0"
wait_for 20 halted_event 3 security_events >/dev/null ||
	fail "no rollout_halted event for rollout 3: $(moat events --kind rollout_halted)"
pass "a rollout halts itself when a device on the new release raises a security event"
expect_ok "abort" moat fw rollout abort 3
assert_contains "$out" "aborted"
expect_status 204 "aborted: not offered" dev3 "$(url /api/firmware/version?current=1.2.0)"
expect_fail "resume an aborted rollout" moat fw rollout resume 3 --accept-failures
assert_contains "$errout" "is aborted"
expect_fail "abort an unknown rollout" moat fw rollout abort 99
assert_contains "$errout" "no rollout 99"
pass "abort"

# ---- silent devices: settled, but failed ----
head -c 1000 /dev/urandom >"$T/fw-1.4.0"
sign "$T/fw-1.4.0" 1.4.0 5 "$T/fw-1.4.0.json"
expect_ok "publish 1.4.0 to nobody" moat fw publish "$T/fw-1.4.0.json" "$T/fw-1.4.0" --rollout 0
expect_fail "--silent-after without a unit" moat fw rollout create "$T/fw-1.4.0.json" --group canary \
	--phases 100% --soak 1s --silent-after 2
assert_contains "$errout" "--silent-after"
expect_fail "--silent-after outside create" moat fw rollout status 1 --silent-after 1s
# dev1, dev2, dev3 and dev4 never report on 1.4.0: silent after 1s, failed with any threshold
expect_ok "rollout 4" moat --json fw rollout create "$T/fw-1.4.0.json" --group canary --phases 100% \
	--soak 1s --silent-after 1s --halt-on-failure 50%
assert_contains "$out" '"silent_after_s":1,'
wait_for 20 halted_event 4 failures >/dev/null ||
	fail "silent devices did not halt rollout 4: $(moat fw rollout status 4)"
expect_ok "status" moat --json fw rollout status 4
assert_contains "$out" '"state":"halted"'
assert_contains "$out" '"silent":4'
assert_contains "$out" "failures: 4 of 4 devices reverted, refused or silent (threshold 50%)"
pass "devices silent for --silent-after count as failed and halt a rollout (a security event)"

# ---- a halt on an anomaly: dev2's security events jump once the release reached it ----
head -c 1000 /dev/urandom >"$T/fw-1.5.0"
sign "$T/fw-1.5.0" 1.5.0 6 "$T/fw-1.5.0.json"
expect_ok "publish 1.5.0 to nobody" moat fw publish "$T/fw-1.5.0.json" "$T/fw-1.5.0" --rollout 0
expect_ok "rollout 5" moat fw rollout create "$T/fw-1.5.0.json" --group canary --phases 100% --soak 1h \
	--halt-on-events
broker_pub dev2 dev2 devices/dev2/diagnostics '{"event":"update","stage":"confirmed","version":"1.5.0","running":"1.5.0"}'
wait_for 20 grep -q "event=update_event id=dev2 stage=confirmed version=1.5.0" "$D/log/moatd.log" ||
	fail "dev2's confirmation of 1.5.0 not recorded"
# malformed telemetry: payload_rejected is no signal by itself, but nine of them right after
# the release reached dev2 are an event_jump anomaly, and that halts the rollout
for _ in 1 2 3 4 5 6 7 8 9; do echo "not json"; done >"$T/garbage"
# shellcheck disable=SC2046
timeout "$(deadline 20)" mosquitto_pub $(broker_args dev2 dev2) -V mqttv5 -q 1 \
	-t devices/dev2/telemetry -l <"$T/garbage" || true
wait_for 20 grep -q "event=rollout_halted id=5 phase=1 reason=security_events" "$D/log/moatd.log" ||
	fail "no halt on an anomaly: $(moat fw rollout status 5; moat events --device dev2 | tail -5)"
expect_ok "the anomaly fired" moat --json events --kind anomaly --device dev2
assert_contains "$out" '"rule":"event_jump"'
expect_ok "status" moat --json fw rollout status 5
assert_contains "$out" '"state":"halted"'
assert_contains "$out" "security events: 1 of 1 devices on 1.5.0 (dev2: anomaly event_jump)"
wait_for 20 halted_event 5 security_events >/dev/null ||
	fail "no rollout_halted event for rollout 5: $(moat events --kind rollout_halted)"
assert_contains "$(halted_event 5 security_events)" "dev2: anomaly event_jump"
pass "an anomaly of a device on the new release (event_jump) halts the rollout, rollout_halted names it"

# ---- /metrics: rollouts from the rollout tables, enrollments; promtool accepts it ----
command -v promtool >/dev/null || fail "promtool not installed (scripts/bootstrap installs prometheus)"
expect_ok "a pending enrollment" moat device add enr1 --type other --enroll
metrics() {
	curl -sS --cacert "$D/pki/ca.crt" --cert "$D/pki/identities/ops/cert.pem" \
		--key "$D/pki/identities/ops/key.pem" -o "$T/metrics.txt" -w '%{http_code}' \
		"$(url /metrics)"
}
[ "$(metrics)" = 200 ] || fail "/metrics as an operator: $(head -c 200 "$T/metrics.txt")"
run_captured promtool check metrics <"$T/metrics.txt"
[ "$run_rc" = 0 ] || fail "promtool check metrics: $out $errout"
python3 - "$T/metrics.txt" <<'EOF2' || fail "rollout and enrollment metrics: $(grep -E 'rollout|enrollments' "$T/metrics.txt")"
import re, sys
m = {}
for line in open(sys.argv[1]):
    if not line.startswith("#"):
        k, v = line.rsplit(" ", 1)
        m[k] = float(v)
def need(k, v):
    assert m.get(k) == v, (k, m.get(k), v)
# rollouts 1 and 2 completed, 3 aborted, 4 and 5 halted
for state, n in (("running", 0), ("paused", 0), ("halted", 2), ("aborted", 1), ("completed", 2)):
    need('moat_rollouts{state="%s"}' % state, n)
# rollout 5: halted in its one phase; dev2 confirmed, dev1 and dev3 offered, nothing waits
need('moat_rollout_state{rollout="5",state="halted"}', 1)
need('moat_rollout_phase{rollout="5",version="1.5.0"}', 1)
need('moat_rollout_phases{rollout="5"}', 1)
need('moat_rollout_devices{rollout="5",status="confirmed"}', 1)
need('moat_rollout_devices{rollout="5",status="waiting"}', 0)
total = sum(v for k, v in m.items() if k.startswith('moat_rollout_devices{rollout="5"'))
need('moat_rollout_devices{rollout="5",status="reverted"}', 0)
assert total == 4, total  # the canary group: dev1, dev2, dev3, dev4
# rollout 4: its four devices silent
need('moat_rollout_devices{rollout="4",status="silent"}', 4)
# finished rollouts only count by state
assert not any(k.startswith('moat_rollout_state{rollout="1"') for k in m), "rollout 1 has series"
# 1.5.0's targets: the devices of its started phase (the rollout tables, not rollout_percent)
assert any(k.startswith('moat_rollout_target_devices{') and k.endswith('version="1.5.0"}') and v == 4
           for k, v in m.items()), [k for k in m if "target" in k]
need('moat_enrollments{state="pending"}', 1)
EOF2
pass "/metrics: rollouts by state, each unfinished one's phase, state and devices; enrollments; promtool check metrics"

# ---- status of every rollout (no ID); abort --json ----
expect_ok "status without an ID" moat --json fw rollout status
python3 - "$out" <<'EOF2' || fail "status of every rollout: $out"
import json, sys
rs = json.loads(sys.argv[1])
got = [(r["rollout"]["id"], r["rollout"]["state"]) for r in rs]
assert got == [(1, "completed"), (2, "completed"), (3, "aborted"), (4, "halted"), (5, "halted")], got
assert all(len(r["progress"]) == r["rollout"]["phases"].count("%") for r in rs), rs
EOF2
expect_ok "status text without an ID" moat fw rollout status
for i in 1 2 3 4 5; do assert_contains "$out" "rollout $i: "; done
expect_ok "abort --json" moat --json fw rollout abort 5
python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert (r["id"], r["state"], r["phase"]) == (5, "aborted", 1), r' "$out" ||
	fail "abort --json: $out"
pass "fw rollout status without an ID lists every rollout (text and --json); abort --json"

# ---- abort in the middle of a running phase: the phase's devices keep what they installed,
# no device of a later phase is offered anything ----
head -c 1000 /dev/urandom >"$T/fw-1.6.0"
sign "$T/fw-1.6.0" 1.6.0 7 "$T/fw-1.6.0.json"
expect_ok "publish 1.6.0 to nobody" moat fw publish "$T/fw-1.6.0.json" "$T/fw-1.6.0" --rollout 0
expect_ok "rollout 6" moat fw rollout create "$T/fw-1.6.0.json" --group plant1 --phases 50%,100% \
	--soak 1h --halt-on-failure 50%
confirmed_160() { grep -c "event=update_event id=ro-[0-9]* stage=confirmed version=1.6.0" "$D/log/moatd.log" || true; }
end=$((SECONDS + $(deadline 60)))
until [ "$(confirmed_160)" = 2 ]; do
	[ $SECONDS -lt $end ] || fail "phase 1 of rollout 6 did not confirm: $(moat fw rollout status 6)"
	kill -USR1 "$SIM"
	sleep 0.3
done
expect_ok "mid-phase" moat --json fw rollout status 6
assert_contains "$out" '"state":"running","phase":1,'
expect_ok "abort mid-phase" moat --json fw rollout abort 6
assert_contains "$out" '"state":"aborted"'
# every device checks again after the abort: the phase-2 ones get nothing
checks_before=$(grep -c "event=update_event id=ro-[0-9]* stage=checked" "$D/log/moatd.log" || true)
end=$((SECONDS + $(deadline 60)))
until [ "$(grep -c "event=update_event id=ro-[0-9]* stage=checked" "$D/log/moatd.log" || true)" -ge $((checks_before + 4)) ]; do
	[ $SECONDS -lt $end ] || fail "the devices did not check after the abort"
	kill -USR1 "$SIM"
	sleep 0.5
done
on_160=0
for i in 1 2 3 4; do
	out=$(moat-boot --state "$D/run/sim/ro-00000$i/boot" --status)
	grep -q "=1.6.0" <<<"$out" && on_160=$((on_160 + 1))
done
[ "$on_160" = 2 ] || fail "$on_160 devices hold 1.6.0 after the abort, expected phase 1's 2"
[ "$(confirmed_160)" = 2 ] || fail "a device of phase 2 installed 1.6.0 after the abort"
expect_ok "status after the abort" moat --json fw rollout status 6
assert_contains "$out" '"state":"aborted"'
pass "abort mid-phase: phase 1 keeps 1.6.0 (nothing downgraded), phase 2 is offered nothing"

# ---- simulated devices that really revert: a release whose trial crashes (moat sim
# --fail-trial) halts the rollout through the devices' own A/B path, no forged report ----
expect_fail "--fail-trial without --firmware" moat sim --devices 1 --prefix bad --fail-trial 1.7.0
expect_fail "--fail-trial not a version" moat sim --devices 1 --prefix bad --firmware "$T/fw-1.0.0" \
	--envelope "$T/fw-1.0.0.json" --fail-trial 1.7
head -c 1000 /dev/urandom >"$T/fw-1.7.0"
sign "$T/fw-1.7.0" 1.7.0 8 "$T/fw-1.7.0.json"
expect_ok "publish 1.7.0 to nobody" moat fw publish "$T/fw-1.7.0.json" "$T/fw-1.7.0" --rollout 0
moat sim --create --devices 2 --prefix bad --type "$TYPE" --interval 1s --firmware "$T/fw-1.0.0" \
	--envelope "$T/fw-1.0.0.json" --fail-trial 1.7.0 >"$T/badsim.out" 2>"$T/badsim.err" &
BADSIM=$!
E2E_PIDS+=("$BADSIM")
for i in 1 2; do
	wait_for 60 grep -q "event=update_event id=bad-00000$i stage=checked" "$D/log/moatd.log" ||
		fail "bad-00000$i did not check at start: $(tail -3 "$T/badsim.err")"
	moat device tag "bad-00000$i" bad >/dev/null
done
expect_ok "group bad" moat group add bad --where "tag=bad"
expect_ok "rollout 7" moat fw rollout create "$T/fw-1.7.0.json" --group bad --phases 100% --soak 1s \
	--halt-on-failure 10%
kill -USR1 "$BADSIM"
wait_for 30 grep -q "event=rollout_halted id=7 phase=1 reason=failures" "$D/log/moatd.log" ||
	fail "the crashing trials did not halt rollout 7: $(moat fw rollout status 7; tail -5 "$T/badsim.err")"
for i in 1 2; do
	# the device staged it, crashed on the trial, and its boot reverted it
	grep -q "id=bad-00000$i event=trial_crashed version=1.7.0" "$T/badsim.err" ||
		fail "bad-00000$i: no crashed trial: $(grep "bad-00000$i" "$T/badsim.err" | tail -3)"
	qgrep "event=update_event id=bad-00000$i stage=installed version=1.7.0" "$D/log/moatd.log" ||
		fail "bad-00000$i never installed 1.7.0"
	out=$(moat-boot --state "$D/run/sim/bad-00000$i/boot" --status)
	assert_contains "$out" "trial=-"
	grep -q "active=a" <<<"$out" || fail "bad-00000$i does not run its first slot again: $out"
done
wait_for 20 sh -c "[ \$(grep -c 'event=update_event id=bad-[0-9]* stage=reverted version=1.7.0' '$D/log/moatd.log') = 2 ]" ||
	fail "not both reverts reported: $(grep 'stage=reverted' "$D/log/moatd.log")"
expect_ok "status" moat --json fw rollout status 7
assert_contains "$out" '"state":"halted"'
assert_contains "$out" '"reverted":'
assert_contains "$out" "failures: "
pass "simulated devices whose trial crashes revert by their own boot rule and halt the rollout"
kill -TERM "$BADSIM"
wait "$BADSIM" || fail "the second moat sim did not stop cleanly: $(tail -3 "$T/badsim.err")"

kill -TERM "$SIM"
wait "$SIM" || fail "moat sim did not stop cleanly: $(tail -3 "$T/sim.err")"
agent_sanitizer_clean "$T/sim.err" "$T/badsim.err" "$D/log/moatd.log"
