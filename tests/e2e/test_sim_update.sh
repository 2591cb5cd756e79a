#!/usr/bin/env bash
# test_sim_update.sh: simulated devices update on virtual A/B slots with the code real
# devices use, through the deployment's own services (`moat up`: Mosquitto with the plugin,
# moatd with its event ingest). `moat sim --firmware` provisions each device's slots with a
# signed 1.0.0; a check_update command, then SIGUSR1 for the rest of the fleet, makes each
# device run moat-update: download, verify, stage, restart into the trial (verified as
# moat-boot verifies), confirm, floor raised, every step reported to moatd. A release
# altered in moatd's store is refused by every device. A virtual slot image changed on
# disk does not boot: the simulator refuses to start, naming the device.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_moatd.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_update.sh"

upd_plugin_setup
moat identity add ops --role operator >/dev/null
moat_up_test
wait_for 30 grep -q "event=ingest_subscribed as=backend-service" "$D/log/moatd.log" ||
	fail "moatd ingest not subscribed: $(tail -5 "$D/log/moatd.log")"

# Simulated firmware: bytes that are never executed, only verified.
head -c 300000 /dev/urandom >"$T/fw-1.0.0"
sign "$T/fw-1.0.0" 1.0.0 1 "$T/fw-1.0.0.json"
cp "$T/fw-1.0.0" "$T/fw-1.0.0.bad"
flip_byte "$T/fw-1.0.0.bad" 1000
expect_fail "a factory image that does not match its envelope" \
	moat sim --create --devices 1 --prefix bad --type "$TYPE" --firmware "$T/fw-1.0.0.bad" --envelope "$T/fw-1.0.0.json" --duration 5s
assert_contains "$errout" "bad-000001"
assert_contains "$errout" "hash_mismatch"
expect_fail "--firmware without --envelope" moat sim --create --devices 1 --prefix sim --firmware "$T/fw-1.0.0"
expect_fail "a device type no --firmware is for" moat sim --create --devices 1 --prefix other --type other_type \
	--firmware "$T/fw-1.0.0" --envelope "$T/fw-1.0.0.json" --duration 5s
assert_contains "$errout" "no --firmware for device type other_type"
for jobs in 0 65 four; do
	expect_fail "--update-jobs $jobs" moat sim --create --devices 1 --prefix sim --firmware "$T/fw-1.0.0" \
		--envelope "$T/fw-1.0.0.json" --update-jobs "$jobs"
	assert_contains "$errout" "--update-jobs"
done
expect_fail "an envelope that is not there" moat sim --create --devices 1 --prefix other --type other_type \
	--firmware "$T/fw-1.0.0" --envelope "$T/missing.json" --duration 5s
assert_contains "$errout" "missing.json"
echo '{"payloadType":"x"' >"$T/garbage.json"
expect_fail "an envelope that does not parse" moat sim --create --devices 1 --prefix other --type other_type \
	--firmware "$T/fw-1.0.0" --envelope "$T/garbage.json" --duration 5s
assert_contains "$errout" "garbage.json"
many=()
for _ in $(seq 17); do many+=(--firmware "$T/fw-1.0.0" --envelope "$T/fw-1.0.0.json"); done
expect_fail "17 firmware pairs" moat sim --create --devices 1 --prefix sim "${many[@]}"
assert_contains "$errout" "at most 16"
ID1="$D/pki/identities/dev1"
expect_fail "moat-update --probe without --report" moat-update --probe --state "$S" \
	--server "https://localhost:$SERVER_PORT" --ca "$ID1/ca.crt" --cert "$ID1/cert.pem" --key "$ID1/key.pem"
assert_contains "$errout" "usage"
pass "moat sim refuses firmware it cannot verify or read, --firmware alone, a type without firmware, bad --update-jobs"

sim_start() {
	moat sim --create --devices 3 --prefix sim --type "$TYPE" --interval 1s --firmware "$T/fw-1.0.0" \
		--envelope "$T/fw-1.0.0.json" --update-jobs 2 >"$T/sim.out" 2>"$T/sim.err" &
	SIM=$!
	E2E_PIDS+=("$SIM")
}
sim_start
# every device checks at its first connection: nothing newer yet
for i in 1 2 3; do
	wait_for 60 grep -q "event=update_event id=sim-00000$i stage=checked" "$D/log/moatd.log" ||
		fail "sim-00000$i did not check at start: $(tail -3 "$T/sim.err"; tail -3 "$D/log/moatd.log")"
done
bs() { echo "$D/run/sim/$1/boot"; }
expect_ok "virtual slots" moat-boot --state "$(bs sim-000001)" --status
assert_contains "$out" "active=a"
assert_contains "$out" "slot_a=1.0.0"
pass "simulated devices start on verified virtual slots and check for updates at start"

head -c 300000 /dev/urandom >"$T/fw-1.1.0"
sign "$T/fw-1.1.0" 1.1.0 2 "$T/fw-1.1.0.json"
expect_ok "publish 1.1.0" moat fw publish "$T/fw-1.1.0.json" "$T/fw-1.1.0" --rollout 100
expect_ok "check_update to one simulated device" moat cmd sim-000001 check_update --as ops --wait
assert_contains "$out" "accepted"
for stage in downloading verified installed confirmed; do
	wait_for 60 grep -q "event=update_event id=sim-000001 stage=$stage" "$D/log/moatd.log" ||
		fail "sim-000001: no $stage: $(grep sim-000001 "$D/log/moatd.log" | tail -4; tail -3 "$T/sim.err")"
done
expect_ok "virtual slots after the update" moat-boot --state "$(bs sim-000001)" --status
assert_contains "$out" "active=b"
assert_contains "$out" "trial=-"
assert_contains "$out" "floor=2"
assert_contains "$out" "slot_b=1.1.0"
expect_ok "fw status" moat fw status sim-000001
assert_contains "$out" "confirmed"
pass "one device: downloaded, verified, staged, restarted on trial, confirmed, floor raised"

kill -USR1 "$SIM"
for i in 2 3; do
	wait_for 60 grep -q "event=update_event id=sim-00000$i stage=confirmed" "$D/log/moatd.log" ||
		fail "sim-00000$i did not update after SIGUSR1: $(grep "sim-00000$i" "$D/log/moatd.log" | tail -3)"
	expect_ok "slots of sim-00000$i" moat-boot --state "$(bs "sim-00000$i")" --status
	assert_contains "$out" "active=b"
done
pass "SIGUSR1: the rest of the fleet checks now and updates"

# 1.2.0 altered in moatd's store: every device refuses it and keeps 1.1.0.
head -c 300000 /dev/urandom >"$T/fw-1.2.0"
sign "$T/fw-1.2.0" 1.2.0 3 "$T/fw-1.2.0.json"
expect_ok "publish 1.2.0" moat fw publish "$T/fw-1.2.0.json" "$T/fw-1.2.0" --rollout 100
stored=$(find "$D/firmware/releases" -path '*1.2.0*' -name image.bin | head -1)
[ -f "$stored" ] || fail "release store layout: no image.bin for 1.2.0 under $D/firmware/releases"
chmod u+w "$stored"
flip_byte "$stored" 100
kill -USR1 "$SIM"
for i in 1 2 3; do
	wait_for 60 grep -q "event=update_event id=sim-00000$i stage=refused" "$D/log/moatd.log" ||
		fail "sim-00000$i did not refuse: $(grep "sim-00000$i" "$D/log/moatd.log" | tail -3)"
	expect_ok "slots of sim-00000$i" moat-boot --state "$(bs "sim-00000$i")" --status
	assert_contains "$out" "active=b"
	assert_contains "$out" "floor=2"
done
expect_ok "fw status" moat fw status sim-000002
assert_contains "$out" "hash_mismatch"
kill -0 "$SIM" || fail "moat sim ended"
pass "an altered release is refused by every simulated device (hash_mismatch)"

kill -TERM "$SIM"
wait "$SIM" || fail "moat sim did not stop cleanly: $(tail -3 "$T/sim.err")"
# secure boot of a virtual slot: the active image of sim-000002 changed on disk
img="$(bs sim-000002)/slots/b/image"
chmod u+w "$img"
flip_byte "$img" 10
expect_fail "a simulator whose device has a modified active image" \
	moat sim --create --devices 3 --prefix sim --type "$TYPE" --firmware "$T/fw-1.0.0" \
	--envelope "$T/fw-1.0.0.json" --duration 5s
assert_contains "$errout" "sim-000002: refusing to start"
assert_contains "$errout" "hash_mismatch"
pass "a virtual slot changed on disk does not boot: moat sim names the device and stops"
agent_sanitizer_clean "$T/sim.err" "$D/log/moatd.log"
