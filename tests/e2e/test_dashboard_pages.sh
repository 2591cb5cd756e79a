#!/usr/bin/env bash
# test_dashboard_pages.sh: every existing dashboard page and action in a real headless
# Chromium (dashboard_pages.py over the DevTools protocol), checked against the registry as
# the moat CLI reads it (--json). The deployment (`moat up`: broker with the plugin, moatd
# with its ingest) has four device types and 63 devices, three releases, tags, a group, a
# two-phase rollout with outcomes reported by its devices, a simulated device (`moat sim`)
# connected, and 8 days of telemetry of one sensor at one message every 10 minutes (written
# through the registry's API before moatd starts: tests/dash_telemetry_seed, as
# bench/dashboard does; ingest records a message when it arrives).
# In the browser: Fleet counts by status, state, type and release; the Firmware page's
# releases and the rollout's per-phase table (devices and every outcome column); the
# Device page's 1h/24h/7d switch, each plot holding the stored messages of its window;
# the Devices filters (type, status, state, release, group, tag, search, combined) each
# narrowing to the registry's set, typed into the form; the second page; the device links
# of the devices table and the events page. Actions by clicking, each first cancelled on its
# confirmation page (nothing changes) and then confirmed: disable and enable (the registry
# changes, an event names the operator), pause and resume the rollout (events), and a
# diagnostics command to the simulated device, whose answer the registry and the page show;
# a revoke is only cancelled (test_dashboard.sh confirms one). Fleet is read again after the
# disable.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_dashboard.sh"
dash_require
broker_require
SEED="$MOAT_BUILD/tests/dash_telemetry_seed"
[ -x "$SEED" ] || fail "not built: $SEED"

e2e_init
chmod 0755 "$T"
export MOAT_FW_PASSPHRASE="fw-e2e-signing-passphrase"
moat device add --prefix pg --count 55 --type meter >/dev/null
for d in s-1 s-2 s-3 s-4; do moat device add "$d" --type sensor >/dev/null; done
for d in l-1 l-2 l-3; do moat device add "$d" --type lamp >/dev/null; done
moat device add gw-1 --type gateway >/dev/null
for d in s-1 l-1 pg-000007; do moat device tag "$d" lab >/dev/null; done
moat identity add backend-service --role service >/dev/null
moat identity add op-1 --role operator >/dev/null
moat fw keygen >/dev/null 2>&1
release() {
	head -c 2048 /dev/urandom >"$T/$1-$2.bin"
	moat fw sign "$T/$1-$2.bin" --type "$1" --version "$2" --security-version 1 \
		--out "$T/$1-$2.json" 2>/dev/null
	moat fw publish "$T/$1-$2.json" "$T/$1-$2.bin" >/dev/null
}
release sensor 2.0.0
release sensor 2.1.0
release lamp 1.1.0
moat group add sensors --where 'type=sensor' >/dev/null
moat fw rollout create "$T/sensor-2.1.0.json" --group sensors --phases 50%,100% --soak 1h >/dev/null
# 8 days, one message every 600 s, ending now: 1 h holds 5, 24 h 143 (while the test takes
# under 10 minutes); 7 d what the registry keeps raw (retention folds the eighth day)
"$SEED" "$D/registry.db" 8 600 sensor s-1 >/dev/null
printf '\n[policy]\nflap_connects = 0\n' >>"$D/moat.conf"
moat_up_test
wait_for 30 grep -q "event=ingest_subscribed as=backend-service" "$D/log/moatd.log" ||
	fail "moatd did not subscribe: $(tail -3 "$D/log/moatd.log")"

# what the devices run, as each reports it (update events on its diagnostics topic)
declare -A running=([s-1]=2.1.0 [s-2]=2.1.0 [s-3]=2.1.0 [s-4]=2.0.0 [l-1]=1.1.0 [l-2]=1.1.0)
for d in "${!running[@]}"; do
	v=${running[$d]}
	broker_pub "$d" "$d" "devices/$d/diagnostics" \
		"{\"event\":\"update\",\"stage\":\"confirmed\",\"version\":\"$v\",\"running\":\"$v\"}"
done
reported() { [ "$(grep -c "event=update_event id=.* stage=confirmed" "$D/log/moatd.log")" -ge 6 ]; }
wait_for 20 reported || fail "update events not recorded: $(tail -3 "$D/log/moatd.log")"
# the simulated device that answers commands
e2e_bg moat sim gw-1 --interval 30s --duration "$(deadline 120s)" >"$T/sim.out" 2>"$T/sim.err"
online() { [ "$(moat --json device show gw-1 | jq -r .state)" = online ]; }
wait_for 20 online || fail "gw-1 not online: $(cat "$T/sim.err")"
# an event of a device, for the events page's link: its connection (the plugin's event)
wait_for 20 eval 'moat events --kind connected --json | jq -r .identity | qgrep -x l-2' ||
	fail "no event of l-2: $(moat events | tail -3)"

types=$(moat --json device list | jq -c 'map(select(.role == "device") | {(.id): .device_type}) | add')
run_json=$(for d in "${!running[@]}"; do echo "{\"$d\": \"${running[$d]}\"}"; done | jq -cs add)
cat >"$T/expect.json" <<EOF2
{"operator": "op-1", "rollout": 1, "telemetry_device": "s-1",
 "points": {"1h": 5, "24h": 143}, "toggle_device": "l-2", "keep_device": "l-3",
 "command_device": "gw-1",
 "event_device": "l-2", "types": $types, "running": $run_json,
 "releases": [["lamp", "1.1.0"], ["sensor", "2.0.0"], ["sensor", "2.1.0"]],
 "filter_release": "2.1.0",
 "filters": {"type=lamp": ["l-1", "l-2", "l-3"], "status=disabled": ["l-2"],
             "release": ["s-1", "s-2", "s-3"], "tag=lab": ["l-1", "pg-000007", "s-1"],
             "type=sensor,tag=lab": ["s-1"]}}
EOF2
BH="$T/browser"
dash_browser_home "$BH"
link=$(moat --json dashboard --operator op-1 | jq -r .url)
start=$(date +%s%3N)
E2E_SLOW=$E2E_SLOW /usr/bin/python3 "$(dirname "$0")/dashboard_pages.py" chromium "$BH" "$link" "$T/expect.json" >"$T/seen.json" ||
	fail "in the browser: $(cat "$T/seen.json") $(tail -5 "$BH/chromium.log")"
echo "browser: $(cat "$T/seen.json") ($(($(date +%s%3N) - start)) ms)"
pass "Chromium: Fleet, Firmware (rollout phases), Device (1h/24h/7d), Devices (filters, page 2, search), links, and every action (cancelled, then confirmed) match the registry"

expect_ok "moat down" moat down --timeout "$(deadline 20s)"
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$D/log/moatd.log"; then
	fail "sanitizer report in moatd.log: $(grep -E -A5 'Sanitizer|runtime error:' "$D/log/moatd.log" | head -20)"
fi
broker_check_logs
pass "moatd and the broker stopped with no sanitizer report"
