#!/usr/bin/env bash
# test_monitor.sh: moatd's ingest and anomaly rules through `moat up` (real Mosquitto with
# the moat plugin, real moatd). Well-behaved simulated devices (moat sim, their interval
# commanded) run throughout and must never fire a rule; misbehaving devices, driven with
# mosquitto_pub under their own certificates, provoke each rule once: rate, silence,
# payload size, auth refusals per identity and per address, ACL denials, a cloned key
# (two addresses in turn; two sessions fighting for one client id), a connection from
# outside the device zone, a release moatd never offered, an event jump after a rollout.
# Messages the broker lets through but moatd's schemas refuse are payload_refused events,
# one per device however many it sends.
# Device state (online, last seen, address, release, certificate days, last command) shows
# in `moat device show` and `moat fleet`. A moatd killed and restarted by the supervisor
# loses no broker event: what was published while it was away is read from the events file.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_agent.sh"
broker_require
command -v jq >/dev/null || skip "jq not installed"

e2e_init
chmod 0755 "$T"
export MOAT_FW_PASSPHRASE="fw-e2e-signing-passphrase"
for d in dev-rate dev-silent dev-size dev-auth dev-acl dev-addr dev-zone dev-rel dev-jump \
	dev-badt dev-badr dev-badd dev-badu; do
	moat device add "$d" --type sensor >/dev/null
done
moat identity add backend-service --role service >/dev/null
moat identity add op-1 --role operator >/dev/null
moat fw keygen >/dev/null 2>&1
head -c 4096 /dev/urandom >"$T/a.bin"
moat fw sign "$T/a.bin" --type sensor --version 2.0.0 --security-version 1 --out "$T/a.json" 2>/dev/null
moat fw publish "$T/a.json" "$T/a.bin" >/dev/null
# Thresholds small enough to provoke in seconds; the device zone is 127.0.0.0/30, so a
# device connecting from 127.0.0.5 is outside it. Every connection of this test is new:
# no flapping limit.
cat >>"$D/moat.conf" <<EOF

[policy]
flap_connects = 0

[network]
iot = 127.0.0.0/30

[monitor]
rate_window = 10s
rate_factor = 2
silence_factor = 3
payload_min_samples = 5
auth_burst = 3
acl_burst = 4
burst_window = 60s
clone_switches = 2
event_jump_factor = 2
event_jump_min = 3
ingest_batch = 500
EOF
expect_ok "config check" moat config check
moat_up_test
wait_for 30 grep -q "event=ingest_subscribed as=backend-service" "$D/log/moatd.log" ||
	fail "moatd did not subscribe: $(tail -3 "$D/log/moatd.log")"
grep -q 'topic=$share/moatd/devices/+/telemetry' "$D/log/moatd.log" ||
	fail "ingest does not use a shared subscription: $(grep ingest_subscribed "$D/log/moatd.log")"

# ---- well-behaved devices: 3 simulated, interval commanded to 2s
moat sim --create --devices 3 --prefix good --type sensor --interval 2s --duration 120s \
	>"$T/sim.out" 2>"$T/sim.err" &
SIM=$!
E2E_PIDS+=("$SIM")
made() { moat device show good-000003 >/dev/null 2>&1; }
wait_for 30 made || fail "moat sim did not create its devices: $(tail -3 "$T/sim.err")"
for i in 1 2 3; do
	moat cmd "good-00000$i" update_interval --arg interval=2s --as op-1 --wait \
		--timeout "$(deadline 20s)" >/dev/null || fail "good-00000$i did not answer"
done

# moat events --follow prints anomalies as they are recorded
moat --json events --follow --kind anomaly >"$T/follow.out" 2>"$T/follow.err" &
FOLLOW=$!
E2E_PIDS+=("$FOLLOW")

pub() { # DEVICE TOPIC-SUFFIX PAYLOAD [mosquitto_pub args]
	local dev=$1 suffix=$2 payload=$3
	shift 3
	broker_pub "$dev" "$dev" "devices/$dev/$suffix" "$payload" "$@"
}
tele() { # DEVICE [PAD]: one telemetry message (PAD: an ignored field that makes it bigger)
	printf '{"device_id":"%s","device_type":"sensor","timestamp":%s,"telemetry":{"temperature":21.5,"humidity":40}%s}' \
		"$1" "$(date +%s%3N)" "${2:+,\"pad\":\"$2\"}"
}
now_ms() { date +%s%3N; }

# rate: interval 10s said by its diagnostics, then 12 messages at once (limit 2 x (10s/10s + 1))
pub dev-rate diagnostics '{"device_id":"dev-rate","interval_s":10,"agent_version":"1.2.3","cert_days_left":42}'
for i in $(seq 1 12); do tele dev-rate; echo; done >"$T/rate.lines"
# shellcheck disable=SC2046
timeout "$(deadline 20)" mosquitto_pub $(broker_args dev-rate) -V mqttv5 -q 1 \
	-t devices/dev-rate/telemetry -l <"$T/rate.lines"

# silence: online, interval 1s, one message, then nothing (no will: it never disconnected
# uncleanly; its status says online)
pub dev-silent diagnostics '{"device_id":"dev-silent","interval_s":1}'
pub dev-silent status "{\"device_id\":\"dev-silent\",\"status\":\"online\",\"timestamp\":$(now_ms)}"
pub dev-silent telemetry "$(tele dev-silent)"

# payload size: the sensor type's usual is ~110 bytes (the good devices and dev-size's
# first messages); then one of ~1 KiB
for i in 1 2 3 4 5 6; do echo "$(tele dev-size)"; done >"$T/size.lines"
# shellcheck disable=SC2046
timeout "$(deadline 20)" mosquitto_pub $(broker_args dev-size) -V mqttv5 -q 1 \
	-t devices/dev-size/telemetry -l <"$T/size.lines"
pub dev-size telemetry "$(tele dev-size "$(head -c 1000 /dev/zero | tr '\0' x)")"

# auth refusals: dev-auth's certificate with another client id, 3 times (also 3 from
# 127.0.0.1: the per-address rule)
for i in 1 2 3; do
	broker_pub dev-auth "not-dev-auth" devices/dev-auth/telemetry x >/dev/null 2>&1 || true
done

# ACL denials: dev-acl writes another device's topic 4 times
for i in 1 2 3 4; do
	broker_pub dev-acl dev-acl devices/dev-rate/telemetry "$(tele dev-rate)" >/dev/null 2>&1 || true
done

# cloned key, two addresses in turn: 127.0.0.1, 127.0.0.2, 127.0.0.1, 127.0.0.2
for a in 127.0.0.1 127.0.0.2 127.0.0.1 127.0.0.2; do
	pub dev-addr telemetry "$(tele dev-addr)" -A "$a"
done

# outside the device zone
pub dev-zone telemetry "$(tele dev-zone)" -A 127.0.0.5

# a release never offered: it ran 1.0.0, now says 6.6.6
pub dev-rel diagnostics '{"event":"update","stage":"checked","running":"1.0.0"}'
pub dev-rel diagnostics '{"event":"update","stage":"checked","running":"6.6.6"}'

# an event jump after a rollout: 1.0.0 -> 2.0.0 (offered: published, 100%), then 3 ACL
# denials (below acl_burst)
pub dev-jump diagnostics '{"event":"update","stage":"checked","running":"1.0.0"}'
pub dev-jump diagnostics '{"event":"update","stage":"confirmed","version":"2.0.0","running":"2.0.0"}'
for i in 1 2 3; do
	broker_pub dev-jump dev-jump devices/dev-rate/telemetry "$(tele dev-rate)" >/dev/null 2>&1 || true
done

# two sessions fighting for one client id: two moat-agents with dev-fight's identity
moat device add dev-fight --type sensor >/dev/null
agent_export dev-fight
cp -r "$T/dev-fight" "$T/dev-fight2"
moat-agent --config "$CONF" 2>"$T/fight1.log" &
E2E_PIDS+=("$!")
FIGHT1=$!
moat-agent --config "$T/dev-fight2/agent.conf" 2>"$T/fight2.log" &
E2E_PIDS+=("$!")
FIGHT2=$!

anomaly() { # RULE IDENTITY: the anomaly was recorded
	moat --json events --kind anomaly --rule "$1" --device "$2" | qgrep .
}
for want in "rate dev-rate" "silence dev-silent" "payload_size dev-size" "auth_burst dev-auth" \
	"auth_burst_addr dev-auth" "acl_burst dev-acl" "clone_addr dev-addr" "zone dev-zone" \
	"release_unoffered dev-rel" "event_jump dev-jump" "clone_session dev-fight"; do
	# shellcheck disable=SC2086
	wait_for 30 anomaly $want || fail "no anomaly $want: $(moat events --kind anomaly)"
	echo "ok - anomaly $want"
done
kill -TERM "$FIGHT1" "$FIGHT2" 2>/dev/null || true
wait "$FIGHT1" "$FIGHT2" 2>/dev/null || true

# each once, and none for the well-behaved devices
moat --json events --kind anomaly >"$T/anomalies.json"
python3 - "$T/anomalies.json" <<'PY' || fail "anomalies: $(cat "$T/anomalies.json")"
import collections, json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
seen = collections.Counter((e["rule"], e["identity"]) for e in evs)
for (rule, ident), n in seen.items():
    assert not ident.startswith("good-"), f"a well-behaved device fired {rule}"
    assert n == 1, f"{rule} {ident} fired {n} times"
for e in evs:
    assert e["source"] == "moatd" and e["severity"] in ("high", "critical") and e["evidence"], e
    assert len(e["run_id"]) == 16, e
print(len(evs), "anomalies, each once")
PY
pass "each rule fired once, for the device that provoked it; none for the good devices"

follow_all() { [ "$(wc -l <"$T/follow.out")" -ge 11 ]; }
wait_for 10 follow_all || fail "moat events --follow printed: $(cat "$T/follow.out" "$T/follow.err")"
kill -TERM "$FOLLOW"
wait "$FOLLOW" || fail "moat events --follow did not stop cleanly on SIGTERM"
pass "moat events --follow printed every anomaly as it was recorded"

expect_ok "events --since" moat --json events --kind anomaly --since 1h
[ "$(printf '%s\n' "$out" | grep -c .)" = 11 ] || fail "--since 1h: $out"
expect_ok "events --limit" moat --json events --kind anomaly --limit 2
[ "$(printf '%s\n' "$out" | grep -c .)" = 2 ] || fail "--limit 2: $out"
expect_fail "events --since without a unit" moat events --since 10
assert_contains "$errout" "--since"
expect_fail "events: an operand" moat events extra
pass "moat events: --since, --limit; a bare duration refused"

# ---- moatd's own events: an EST request without credentials is refused and recorded
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$D/pki/ca.crt" -X POST \
	-H 'Content-Type: application/pkcs10' --data x \
	"https://localhost:$SERVER_PORT/.well-known/est/simpleenroll") || true
[ "$code" -ge 400 ] || fail "EST without credentials: HTTP $code"
est_recorded() { moat --json events --kind est_refused | jq_any '.source == "moatd" and (.run_id | length) == 16'; }
wait_for 10 est_recorded || fail "moatd's own refusal not recorded: $(moat events --kind est_refused)"
pass "moatd's own security events are recorded with its run id"

# ---- an EST refusal names a device only once the request proved it is that device: a wrong
# token written for dev-size pins nothing on dev-size (its id stays in the evidence), while
# dev-zone's own certificate renewing with its current key is refused as dev-zone
sleep 1 # anonymous EST refusals are logged 3 a second per source: these are spaced
for i in 1 2 3 4 5 6; do
	[ "$i" = 1 ] || sleep 0.4
	code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$D/pki/ca.crt" -X POST \
		-u "dev-size:not-the-token-$i" -H 'Content-Type: application/pkcs10' --data x \
		"https://localhost:$SERVER_PORT/.well-known/est/simpleenroll") || true
	[ "$code" = 401 ] || fail "EST with a wrong token: HTTP $code"
done
zd="$D/pki/identities/dev-zone"
openssl req -new -key "$zd/key.pem" -subj /CN=dev-zone -outform DER 2>/dev/null |
	base64 >"$T/zone.b64" || fail "openssl req with dev-zone's key"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$D/pki/ca.crt" --cert "$zd/cert.pem" \
	--key "$zd/key.pem" -X POST -H 'Content-Type: application/pkcs10' \
	-H 'Content-Transfer-Encoding: base64' --data-binary @"$T/zone.b64" \
	"https://localhost:$SERVER_PORT/.well-known/est/simplereenroll") || true
[ "$code" = 400 ] || fail "simplereenroll with the current key: HTTP $code"
claimed_recorded() {
	[ "$(moat --json events --kind est_refused |
		jq -c 'select(.identity == "" and (.evidence | test("reason=bad_token claimed_id=dev-size$")))' |
		grep -c .)" = 6 ]
}
wait_for 10 claimed_recorded || fail "the claimed id's refusals: $(moat events --kind est_refused)"
proven_recorded() {
	moat --json events --kind est_refused |
		jq_any '.identity == "dev-zone" and (.evidence | startswith("status=400 reason=same_key"))'
}
wait_for 10 proven_recorded || fail "dev-zone's own refusal: $(moat events --kind est_refused)"
[ -z "$(moat --json events --device dev-size --kind est_refused)" ] ||
	fail "a wrong token named dev-size: $(moat events --device dev-size)"
pass "EST refusals: a claimed id is evidence only (6 for dev-size, none on it); a proven one names its device"

# ---- messages the broker's payload rule lets through (a JSON object with the sender's
# device_id; diagnostics unchecked) but moatd's schemas refuse: a payload_refused event per
# device, however many it sends; the log has every one
pub dev-badt telemetry '{"device_id":"dev-badt","device_type":"sensor","timestamp":1}'
pub dev-badt telemetry '{"device_id":"dev-badt","device_type":"sensor","timestamp":2}'
pub dev-badr command_responses '{"device_id":"dev-badr"}'
pub dev-badd diagnostics '{"device_id":"dev-badd","interval_s":"ten"}'
pub dev-badu diagnostics '{"event":"update","stage":"exploded","running":"1.0.0"}'
# a device clearing its own retained status is not refused (its status after that shows
# moatd got that far)
# shellcheck disable=SC2046
timeout "$(deadline 20)" mosquitto_pub $(broker_args dev-badr dev-badr) -V mqttv5 -q 1 \
	-t devices/dev-badr/status -r -n
pub dev-badr status "{\"device_id\":\"dev-badr\",\"status\":\"online\",\"timestamp\":$(now_ms)}"
badr_online() { moat --json device show dev-badr | jq -e '.state == "online"' >/dev/null; }
refused_event() { # DEVICE TOPIC
	moat --json events --kind payload_refused --device "$1" |
		jq_any --arg t "topic=$2 " '.source == "moatd" and .severity == "low" and (.evidence | startswith($t))'
}
for want in "dev-badt telemetry" "dev-badr command_responses" "dev-badd diagnostics" \
	"dev-badu diagnostics"; do
	# shellcheck disable=SC2086
	wait_for 20 refused_event $want || fail "no payload_refused $want: $(moat events --kind payload_refused)"
done
refused_logged() { [ "$(grep -c 'event=payload_refused id=dev-badt topic=telemetry' "$D/log/moatd.log")" = 2 ]; }
wait_for 10 refused_logged || fail "the second refusal is not in moatd.log: $(grep payload_refused "$D/log/moatd.log")"
[ "$(moat --json events --kind payload_refused --device dev-badt | grep -c .)" = 1 ] ||
	fail "two refusals in the window made more than one event: $(moat events --kind payload_refused)"
qgrep -F 'missing \"telemetry\""' "$D/log/moatd.log" ||
	fail "the refusal's reason is not logged: $(grep payload_refused "$D/log/moatd.log")"
wait_for 20 badr_online || fail "dev-badr's status after the clear: $(moat device show dev-badr)"
if grep -q 'payload_refused id=dev-badr topic=status' "$D/log/moatd.log"; then
	fail "a cleared retained status was refused"
fi
pass "payload refused by moatd's schemas: one security event per device and window, each logged"

# ---- device state
expect_ok "device show" moat --json device show dev-rate
echo "$out" | jq -e '.state == "unknown" and .agent_version == "1.2.3" and .cert_days_left == 42 and .interval_s == 10 and .address == "127.0.0.1" and (.last_seen_ms > 0) and (.events | map(.rule) | index("rate") != null)' >/dev/null ||
	fail "device show dev-rate: $out"
expect_ok "device show good" moat --json device show good-000001
echo "$out" | jq -e '.state == "online" and .interval_s == 2 and .last_command == "update_interval" and .last_command_status == "completed"' >/dev/null ||
	fail "device show good-000001: $out"
expect_ok "device show text" moat device show dev-rel
assert_contains "$out" "release:     6.6.6"
assert_contains "$out" "release_unoffered"
pass "device state: online, last seen, address, agent version, release, cert days, last command"

# ---- moat fleet
expect_ok "fleet" moat --json fleet
echo "$out" | jq -e '.devices == 17 and .state.online >= 3 and .types.sensor == 17 and .releases["6.6.6"] == 1 and .releases["2.0.0"] == 1 and .open_anomalies >= 11' >/dev/null ||
	fail "fleet: $out"
expect_ok "fleet text" moat fleet
assert_contains "$out" "anomalies:    "
pass "moat fleet: counts by state, type, release, open anomalies"

# ---- a moatd killed (its queue lost) and restarted by the supervisor loses no broker event
MOATD=$(cat "$D/run/moatd.pid")
kill -KILL "$MOATD"
gone() { ! kill -0 "$MOATD" 2>/dev/null; }
wait_for 10 gone || fail "moatd did not die"
# while it is away: refusals with a client id no one else uses
for i in 1 2; do
	broker_pub dev-auth "while-away-$i" devices/dev-auth/telemetry x >/dev/null 2>&1 || true
done
# and a line in the plugin's events file that is no event (the file is the broker's: a
# refusal there is a security event too)
printf '{"kind":"forged",\n' >>"$D/log/security-events.jsonl"
away() { moat --json events --kind auth_refused | qgrep "while-away-$1"; }
wait_for 40 away 1 && wait_for 10 away 2 ||
	fail "events published while moatd was away were lost: $(moat events --kind auth_refused)"
[ "$(moat --json events --kind auth_refused | grep -c while-away-1)" = 1 ] ||
	fail "an event read twice was recorded twice"
grep -Eq "event=ingest_catchup lines=[0-9]+ recorded=[1-9]" "$D/log/moatd.log" ||
	fail "the restarted moatd read nothing back: $(grep ingest_catchup "$D/log/moatd.log")"
forged_refused() {
	moat --json events --kind payload_refused |
		jq_any '.identity == "" and (.evidence | startswith("topic=log/security-events.jsonl "))'
}
wait_for 10 forged_refused || fail "a bad line in the events file: $(moat events --kind payload_refused)"
pass "moatd killed and restarted: the broker's events of the gap recorded, once; a bad line refused"

kill -TERM "$SIM" 2>/dev/null || true
wait "$SIM" || true
moat down --timeout "$(deadline 20s)" >/dev/null
if grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$D/log/moatd.log"; then
	fail "sanitizer report in moatd.log"
fi
