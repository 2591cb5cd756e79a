#!/usr/bin/env bash
# test_job.sh: `moat job run` over a group through the deployment's own services (`moat up`)
# with `moat sim` devices: three update through moatd (check_update accepted), one has no
# update client (check_update refused), two are registered but never connected (offline,
# sent nothing). One operator session for the whole job (one CONNECT in the broker's log,
# no flapping ban), results per device, a summary, --json, the exit status by outcome, the
# record in `moat job status`; moatd killed in the middle of a job changes nothing of it;
# an unknown command; bad --rate and --timeout; the job budget ([policy] job_rate): 50/s over
# 100 devices with no refusal, a rate above it refused up front, one device's own bound kept.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_moatd.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_update.sh"

broker_require
command -v moatd >/dev/null || fail "moatd not built"
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"
upd_setup
chmod 0755 "$T"
moat identity add backend-service --role service >/dev/null
moat identity add ops --role operator >/dev/null
moat device add off1 --type "$TYPE" >/dev/null
moat_up_test

head -c 100000 /dev/urandom >"$T/fw-1.0.0"
sign "$T/fw-1.0.0" 1.0.0 1 "$T/fw-1.0.0.json"
moat sim --create --devices 3 --prefix up --type "$TYPE" --interval 1s --firmware "$T/fw-1.0.0" \
	--envelope "$T/fw-1.0.0.json" >"$T/sim1.out" 2>"$T/sim1.err" &
SIM1=$!
E2E_PIDS+=("$SIM1")
moat sim --create --devices 1 --prefix plain --type "$TYPE" --interval 1s >"$T/sim2.out" 2>"$T/sim2.err" &
SIM2=$!
E2E_PIDS+=("$SIM2")
# online: the device's retained status says so (what the job reads first)
online() {
	# shellcheck disable=SC2046
	timeout 5 mosquitto_sub $(broker_args ops ops:probe) -V mqttv5 -t "devices/$1/status" -C 1 -W 2 2>/dev/null |
		qgrep online
}
for id in up-000001 up-000002 up-000003 plain-000001; do
	wait_for 60 online "$id" || fail "$id not online: $(tail -3 "$T/sim1.err" "$T/sim2.err")"
done
expect_ok "tag" moat device tag dev1 fleet
for id in off1 up-000001 up-000002 up-000003 plain-000001; do moat device tag "$id" fleet >/dev/null; done
expect_ok "group" moat group add fleet --where "tag=fleet"

expect_fail "--rate without unit" moat job run diagnostics --group fleet --rate 50
assert_contains "$errout" "--rate"
expect_fail "--rate 0/s" moat job run diagnostics --group fleet --rate 0/s
expect_fail "--timeout without unit" moat job run diagnostics --group fleet --timeout 30
expect_fail "no target" moat job run diagnostics
expect_fail "both targets" moat job run diagnostics --group fleet --devices dev1
expect_fail "an unknown device" moat job run diagnostics --devices dev1,nosuch
assert_contains "$errout" "nosuch"
expect_fail "a service in --devices" moat job run diagnostics --devices ops
assert_contains "$errout" "not an active device"
expect_fail "an unknown group" moat job run diagnostics --group nosuch
pass "job run refuses bad --rate, --timeout, targets and devices before sending anything"

connects_before=$(grep -c "New client connected.* as ops:job-" "$D/log/mosquitto.log" || true)
dpid=$(cat "$D/run/moatd.pid")
# moatd killed while the job runs: the job does not depend on it
(sleep 0.5; kill -KILL "$dpid" && date +%s%N >"$T/killed_at") &
E2E_PIDS+=($!)
rc=0
out=$(moat --json job run check_update --group fleet --rate 2/s --timeout "$(deadline 5s)" --as ops 2>"$T/job.err") || rc=$?
job_end=$(date +%s%N)
[ -s "$T/killed_at" ] && [ "$(cat "$T/killed_at")" -lt "$job_end" ] ||
	fail "moatd was not killed while the job ran"
[ $rc = 1 ] || fail "job exit status $rc, expected 1 (refused and offline devices): $out $(cat "$T/job.err")"
python3 - "$out" <<'EOF' || fail "job results: $out"
import json, sys
j = json.loads(sys.argv[1])
r = {x["device"]: x["result"] for x in j["results"]}
assert j["summary"] == {"pending": 0, "done": 3, "refused": 1, "unknown_command": 0,
                       "timeout": 0, "offline": 2}, j["summary"]
assert r["plain-000001"] == "refused" and r["dev1"] == "offline" and r["off1"] == "offline", r
assert all(r["up-00000%d" % i] == "done" for i in (1, 2, 3)), r
assert j["finished_at"] > 0 and j["devices"] == 6 and j["target"] == "group fleet"
EOF
grep -q -E 'Sanitizer|runtime error:' "$T/job.err" && fail "sanitizer report from moat job run: $(cat "$T/job.err")"
connects_after=$(grep -c "New client connected.* as ops:job-" "$D/log/mosquitto.log" || true)
[ $((connects_after - connects_before)) = 1 ] || fail "the job used $((connects_after - connects_before)) sessions"
wait_for 30 sh -c "test -s '$D/run/moatd.pid' && [ \"\$(cat '$D/run/moatd.pid')\" != $dpid ]" ||
	fail "moatd was not killed and restarted during the job"
pass "a job over a group: done, refused, offline per device, one session, exit 1, across a moatd restart"

job=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["job"])' "$out")
expect_ok "job status" moat job status "$job"
assert_contains "$out" "done 3  refused 1  unknown_command 0  timeout 0  offline 2  pending 0"
assert_contains "$out" "plain-000001"
expect_ok "job status list" moat --json job status
assert_contains "$out" "\"job\":$job,"
expect_fail "an unknown job" moat job status 999
pass "moat job status shows the recorded job"

rc=0
out=$(moat job run frobnicate --devices up-000001,up-000002 --timeout "$(deadline 5s)" --as ops 2>&1) || rc=$?
[ $rc = 1 ] || fail "unknown command: exit $rc: $out"
assert_not_contains "$out" "Sanitizer"
assert_contains "$out" "unknown_command 2"
rc=0
out=$(moat job run diagnostics --devices up-000001,up-000002,up-000003 --rate 50/s --timeout "$(deadline 5s)" --as ops 2>&1) || rc=$?
[ $rc = 0 ] || fail "diagnostics: exit $rc: $out"
assert_contains "$out" "done 3"
pass "unknown_command per device; every device done is exit 0"

# --arg reaches each device: update_interval with interval=3s
expect_fail "update_interval without --arg" moat job run update_interval --devices up-000001 --as ops
assert_contains "$errout" "interval"
expect_fail "--arg interval without a unit" moat job run update_interval --arg interval=3 \
	--devices up-000001 --as ops
assert_contains "$errout" "interval"
expect_fail "--arg without '='" moat job run update_interval --arg interval --devices up-000001 --as ops
rc=0
out=$(moat --json job run update_interval --arg interval=3s --devices up-000001,up-000002 --timeout "$(deadline 5s)" \
	--as ops 2>"$T/job.err") || rc=$?
[ $rc = 0 ] || fail "update_interval --arg interval=3s: exit $rc: $out $(cat "$T/job.err")"
python3 -c 'import json,sys; j=json.loads(sys.argv[1]); assert j["summary"]["done"] == 2, j' "$out" ||
	fail "update_interval results: $out"
for id in up-000001 up-000002; do
	[ "$(cat "$D/run/sim/$id/interval")" = 3 ] || fail "$id did not take interval=3s: $(cat "$D/run/sim/$id/interval" 2>&1)"
done
[ ! -e "$D/run/sim/up-000003/interval" ] || fail "up-000003, not in --devices, changed its interval"
pass "job run --arg: each device gets the argument (update_interval interval=3s applied); a missing or unitless --arg refused up front"

# a device that stops answering: timeout, exit 2
kill -STOP "$SIM2"
rc=0
out=$(moat job run diagnostics --devices plain-000001 --timeout 1s --as ops 2>&1) || rc=$?
kill -CONT "$SIM2"
[ $rc = 2 ] || fail "timeout: exit $rc: $out"
assert_not_contains "$out" "Sanitizer"
assert_contains "$out" "timeout 1"
[ -s "$D/log/security-events.jsonl" ] || fail "no security events file"
grep -q "flapping_banned" "$D/log/security-events.jsonl" && fail "a job tripped the flapping limit"
pass "no answer in time is a timeout, exit 2"

# ---- the job budget ([policy] job_rate): 50/s over 100 devices, far above the operator's
# own 5 messages a second, with no refusal; a rate above it refused before anything is sent;
# one device still takes no more commands a second from an operator than before ----
moat sim --create --devices 100 --prefix many --type "$TYPE" --interval 1m >"$T/sim3.out" 2>"$T/sim3.err" &
SIM3=$!
E2E_PIDS+=("$SIM3")
many_online() {
	local n
	# shellcheck disable=SC2046
	n=$(timeout 5 mosquitto_sub $(broker_args ops ops:probe) -V mqttv5 -t 'devices/+/status' -W 2 -v 2>/dev/null |
		grep -o '^devices/many-[0-9]*/status .*"online"' | cut -d' ' -f1 | sort -u | wc -l)
	[ "$n" -ge 100 ]
}
wait_for 60 many_online || fail "100 simulated devices not online: $(tail -3 "$T/sim3.err")"
many=$(seq -f 'many-%06g' 1 100 | paste -sd,)
events="$D/log/security-events.jsonl"
limited_before=$(grep -c '"rate_limited"' "$events" || true)
jobs_before=$(moat --json job status | grep -o '"job":' | wc -l)
connects_before=$(grep -c "New client connected.* as ops:job-" "$D/log/mosquitto.log" || true)
expect_fail "--rate above [policy] job_rate" moat job run diagnostics --devices "$many" --rate 51/s --as ops
[ "$(printf '%s\n' "$errout" | wc -l)" = 1 ] || fail "not a one-line error: $errout"
assert_contains "$errout" "above the 50/s the broker takes from operator ops for devices ([policy] job_rate)"
[ "$(moat --json job status | grep -o '"job":' | wc -l)" = "$jobs_before" ] || fail "a refused job was recorded"
[ "$(grep -c "New client connected.* as ops:job-" "$D/log/mosquitto.log" || true)" = "$connects_before" ] ||
	fail "a refused job connected to the broker"
start=$SECONDS
rc=0
out=$(moat --json job run diagnostics --devices "$many" --rate 50/s --timeout "$(deadline 10s)" --as ops 2>"$T/job3.err") || rc=$?
[ $rc = 0 ] || fail "job at 50/s over 100 devices: exit $rc: $(cat "$T/job3.err") $out"
python3 - "$out" <<'EOF2' || fail "job at 50/s: $out"
import json, sys
j = json.loads(sys.argv[1])
assert j["summary"]["done"] == 100 and j["devices"] == 100, j["summary"]
assert len(j["results"]) == 100 and all(r["result"] == "done" for r in j["results"])
EOF2
[ $((SECONDS - start)) -ge 1 ] || fail "100 commands at 50/s took under a second: not paced"
[ "$(grep -c '"rate_limited"' "$events" || true)" = "$limited_before" ] ||
	fail "the job was rate limited: $(grep '"rate_limited"' "$events" | tail -2)"
pass "a job at 50/s over 100 devices: done for each, no rate refusal; 51/s refused up front"

# one session sending 15 commands to one device at once: the device's command bucket (the
# operator's limits, burst 10) refuses some, as the operator's own bucket did before jobs
seq 1 15 | sed 's/.*/{"id":"burst-&","command":"diagnostics"}/' >"$T/burst.txt"
# shellcheck disable=SC2046
timeout 20 mosquitto_pub $(broker_args ops ops:burst) -V mqttv5 -q 1 -t devices/many-000001/commands/diagnostics \
	-l <"$T/burst.txt" >/dev/null 2>&1 || true
wait_for 10 grep -q '"reason":"device_commands"' "$events" ||
	fail "15 commands at once to one device were not limited: $(tail -2 "$events")"
pass "one device still receives at most the operator's limit of commands a second"

kill -TERM "$SIM1" "$SIM2" "$SIM3"
wait "$SIM1" || true
wait "$SIM2" || true
wait "$SIM3" || true
agent_sanitizer_clean "$T/sim1.err" "$T/sim2.err" "$T/sim3.err" "$D/log/moatd.log"
