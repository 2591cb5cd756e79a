#!/usr/bin/env bash
# test_dashboard_live.sh: what the dashboard does live, beyond tests/e2e/test_dashboard.sh.
# Through `moat up` (broker with the plugin, moatd) and one deployment:
# - Disable and Enable reach the broker at once. moatd runs as an account that may not write
#   the broker's files, so it asks the supervisor of `moat up` to sync them
#   (state/broker-sync.request, broker_supervisor.h). A device connected with mosquitto_sub
#   is disabled with the dashboard's own forms (session from `moat dashboard`, CSRF token
#   from the device page, the confirmation step): its client sees the connection closed
#   within a bounded wait, another device's session stays up, it is refused on
#   reconnecting; enabled again, it connects and receives a message. A request written
#   while the deployment's lock is held waits for the lock, then syncs.
# - The Fleet page's certificates expiring ([pki] expiry_warning), open anomalies and the
#   zone map of [network], against the registry.
# - The Security events page is live (server-sent events): in headless Chromium
#   (dashboard_events_live.py) a refusal by the broker appears as a row linking to its
#   device without a reload; with curl: no stream without a session, at most 2 streams a
#   session (429), and a stream ends when its session expires.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
command -v jq >/dev/null || skip "jq not installed"
command -v flock >/dev/null || skip "flock not installed"
command -v chromium >/dev/null || skip "chromium not installed (scripts/bootstrap installs it)"
command -v certutil >/dev/null || skip "certutil not installed (libnss3-tools)"
/usr/bin/python3 -c 'import websocket' 2>/dev/null || skip "python3-websocket not installed"
broker_require

e2e_init
chmod 0755 "$T"
for d in dev-a dev-b; do moat device add "$d" --type sensor >/dev/null; done
moat identity add backend-service --role service >/dev/null
moat identity add op-1 --role operator >/dev/null
# certificates expiring: dev-c within [pki] expiry_warning (14d), dev-d after it
moat device add dev-c --type sensor --days 10 >/dev/null
moat device add dev-d --type sensor --days 20 >/dev/null
# reconnects in this test are deliberate: no flapping ban. The devices connect from
# 127.0.0.1: the iot zone holds it. Two ACL denials open an acl_burst anomaly.
printf '\n[policy]\nflap_connects = 0\n[pki]\nexpiry_warning = 14d\n[monitor]\nacl_burst = 2\n[network]\niot = 127.0.0.0/24\nguest = 10.77.20.0/24\n' >>"$D/moat.conf"
expect_ok "config check: the dashboard's keys" moat config check
cp "$D/moat.conf" "$T/good.conf"
sed -i 's/^expiry_warning = 14d$/expiry_warning = 14/' "$D/moat.conf"
expect_fail "config check: expiry_warning without its unit" moat config check
assert_contains "$errout" "[pki] expiry_warning"
cp "$T/good.conf" "$D/moat.conf"
moat_up_test
wait_for 30 grep -q "event=ingest_subscribed" "$D/log/moatd.log" ||
	fail "moatd did not subscribe: $(tail -3 "$D/log/moatd.log")"
base="https://localhost:$SERVER_PORT/dashboard"
web() { curl -sS --cacert "$D/pki/ca.crt" -o "$T/body" -w '%{http_code}' "$@"; }

link=$(moat --json dashboard | jq -r .url)
got=$(curl -sS --cacert "$D/pki/ca.crt" -o /dev/null -D "$T/headers" -w '%{http_code}' "$link")
[ "$got" = 303 ] || fail "sign-in link: HTTP $got"
cookie=$(sed -n 's/^[Ss]et-[Cc]ookie: \(moat_session=[0-9a-f]*\);.*/\1/p' "$T/headers")
[ -n "$cookie" ] || fail "no session cookie: $(cat "$T/headers")"
got=$(web -H "Cookie: $cookie" "$base/device/dev-a")
[ "$got" = 200 ] || fail "device page: HTTP $got"
csrf=$(grep -o 'name="csrf" value="[0-9a-f]*"' "$T/body" | head -1 | sed 's/.*value="//; s/"//')
[ -n "$csrf" ] || fail "no CSRF token on the device page"
grep -q 'value="disable"' "$T/body" || fail "no Disable button on the device page"
# action NAME: the device page's form for NAME on dev-a, confirmed
action() {
	local got
	got=$(web -H "Cookie: $cookie" --data "csrf=$csrf&action=$1" "$base/device/dev-a/action")
	[ "$got" = 200 ] && grep -q 'id="confirm"' "$T/body" || fail "$1: no confirmation step: HTTP $got"
	got=$(web -H "Cookie: $cookie" --data "csrf=$csrf&action=$1&confirm=yes" "$base/device/dev-a/action")
	[ "$got" = 200 ] || fail "$1: HTTP $got $(cat "$T/body")"
	grep -q "could not be asked" "$T/body" && fail "$1: the broker was not asked: $(cat "$T/body")"
	true
}

broker_sub_bg dev-a dev-a "$T/sub-a" devices/dev-a/commands/#
SUB_A=$BROKER_SUB_PID
broker_sub_bg dev-b dev-b "$T/sub-b" devices/dev-b/commands/#
start=$(date +%s%3N)
action disable
[ "$(moat --json device show dev-a | jq -r .identity.status)" = disabled ] || fail "dev-a not disabled"
plugin_client_closed "$SUB_A" "$T/sub-a.err" dev-a
took=$(($(date +%s%3N) - start))
[ "$took" -le 5000 ] || fail "dev-a's client was closed $took ms after Disable (more than 5 s)"
grep -q "event=sync_request action=synced" "$D/log/supervisor.log" ||
	fail "the supervisor did not sync: $(tail -5 "$D/log/supervisor.log")"
pass "Disable on the dashboard: dev-a's own client saw its connection closed within $took ms"
# the broker refuses it now; dev-b, untouched, still receives
got=$(broker_pub dev-a dev-a devices/dev-a/telemetry x 2>&1) && fail "disabled dev-a still connects"
broker_pub backend-service backend-service devices/dev-b/commands/diagnostics '{"command":"diagnostics","id":"t-1"}' ||
	fail "the service cannot publish to dev-b"
broker_wait_line "$T/sub-b" 'devices/dev-b/commands/diagnostics {"command":"diagnostics","id":"t-1"}'
pass "disabled dev-a is refused on reconnecting ($(echo "$got" | tail -1)); dev-b's session stayed up"

synced() { grep -c "event=sync_request action=synced" "$D/log/supervisor.log" || true; }
reloads() { grep -c "Reloading config" "$D/log/mosquitto.log" || true; }
before=$(synced)
reloads_before=$(reloads)
action enable
[ "$(moat --json device show dev-a | jq -r .identity.status)" = active ] || fail "dev-a not enabled"
# the supervisor's sync ends with a reload of Mosquitto (SIGHUP): the reconnection is
# tested once it is done
wait_for 10 eval '[ "$(synced)" -gt "$before" ] && [ "$(reloads)" -gt "$reloads_before" ]' ||
	fail "the supervisor did not sync and Mosquitto did not reload after Enable: $(tail -3 "$D/log/supervisor.log")"
start=$(date +%s%3N)
wait_for 10 broker_pub dev-a dev-a devices/dev-a/telemetry x ||
	fail "dev-a could not connect again after Enable: $(broker_pub dev-a dev-a devices/dev-a/telemetry x 2>&1)"
took=$(($(date +%s%3N) - start))
broker_sub_bg dev-a dev-a "$T/sub-a2" devices/dev-a/commands/#
broker_pub backend-service backend-service devices/dev-a/commands/diagnostics '{"command":"diagnostics","id":"t-2"}' ||
	fail "the service cannot publish to dev-a"
wait_for 10 grep -qF 'devices/dev-a/commands/diagnostics {"command":"diagnostics","id":"t-2"}' "$T/sub-a2" ||
	fail "the command never arrived at dev-a: $(cat "$T/sub-a2" "$T/sub-a2.err"); broker: $(grep -i 'dev-a' "$D/log/mosquitto.log" | tail -8); supervisor: $(tail -4 "$D/log/supervisor.log")"
pass "Enable on the dashboard: dev-a connects again (within $took ms) and receives a command"

# while a `moat` command holds the deployment's lock, the request waits, then syncs
before=$(synced)
# held until the test has seen the request deferred (a fixed hold could end first on a slow
# run; 60 s at most)
e2e_bg flock "$D/run/moat.lock" sh -c "i=0; until [ -e '$T/unlock' ] || [ \$i -ge 600 ]; do sleep 0.1; i=\$((i + 1)); done"
LOCKER=$!
wait_for 5 eval '! flock -n "$D/run/moat.lock" true' || fail "the lock was not taken"
broker_sub_bg dev-a dev-a "$T/sub-a3" devices/dev-a/commands/#
SUB_A3=$BROKER_SUB_PID
deferred() { grep -c "event=sync_request action=deferred" "$D/log/supervisor.log" || true; }
before_deferred=$(deferred)
# what moatd's moat_broker_sync_request writes (the supervisor reads only the file's stamp)
printf 'requested_by=test\n' >"$D/state/broker-sync.request.tmp"
mv "$D/state/broker-sync.request.tmp" "$D/state/broker-sync.request"
wait_for 10 eval '[ "$(deferred)" -gt "$before_deferred" ]' ||
	fail "the supervisor never looked at the request: $(tail -3 "$D/log/supervisor.log")"
[ "$(synced)" = "$before" ] || fail "the supervisor synced while the deployment's lock was held"
touch "$T/unlock"
wait "$LOCKER" || true
wait_for 10 eval '[ "$(synced)" -gt "$before" ]' || fail "the request was dropped while the lock was held"
kill -0 "$SUB_A3" 2>/dev/null || fail "a sync with nothing changed kicked dev-a"
pass "a request made while run/moat.lock is held waits for it, then syncs (nothing changed: dev-a stays)"

moat events --kind dashboard_action --json | jq -r .evidence | qgrep "operator=op-1 via=session action=disable outcome=done" ||
	fail "disable not recorded: $(moat events --kind dashboard_action)"
moat events --kind dashboard_action --json | jq -r .evidence | qgrep "operator=op-1 via=session action=enable outcome=done" ||
	fail "enable not recorded: $(moat events --kind dashboard_action)"
pass "both actions are security events naming the operator"

# ---- the Fleet page: certificates expiring, open anomalies, the zone map ----
# dev-b publishes twice on dev-a's topic: two ACL denials, an acl_burst anomaly
for i in 1 2; do broker_pub dev-b dev-b devices/dev-a/telemetry x >/dev/null 2>&1 || true; done
wait_for 15 eval '[ "$(moat events --kind anomaly --json | jq -r .rule | grep -c acl_burst)" -ge 1 ]' ||
	fail "no acl_burst anomaly: $(moat events --kind anomaly)"
# ingest has seen dev-a and dev-b connect (their address)
seen_addr() { moat --json device show "$1" | jq -e '[.. | objects | .address? | strings | select(. != "")] | length > 0' >/dev/null; }
wait_for 15 seen_addr dev-b || fail "ingest never saw dev-b's address: $(moat --json device show dev-b)"
got=$(web -H "Cookie: $cookie" "$base/")
[ "$got" = 200 ] || fail "fleet page: HTTP $got"
# the expiring list is moat cert expiring's identities within 14 days, soonest first
want=$(moat --json cert expiring --within 14d | jq -r '.[] | select(.kind != "crl" and .kind != "root" and .kind != "issuer" and .kind != "server") | .name' | sort | tr '\n' ' ' || true)
# table ID: that table of the page, one row a line
table() { grep -o "<table id=\"$1\">.*" "$T/body" | sed 's#</table>.*##; s#<tr>#\n<tr>#g'; }
listed=$(table expiring | sed -n 's#^<tr><td>\(.*\)#\1#p' | sed 's#</td>.*##; s#<[^>]*>##g' | sort | tr '\n' ' ')
[ "$listed" = "$want" ] || fail "expiring list: '$listed', the registry: '$want'"
assert_contains "$want" "dev-c"
assert_not_contains "$listed" "dev-d"
grep -q '<span id="expiring-total">1</span>' "$T/body" || fail "expiring total: $(grep -o 'expiring-total">[0-9]*' "$T/body")"
grep -q 'href="/dashboard/device/dev-c">dev-c</a></td><td>device</td><td>[^<]*</td><td class="days">9</td>' "$T/body" ||
	fail "dev-c's row (9 days left, linking to its page): $(table expiring)"
pass "Fleet: certificates expiring within [pki] expiry_warning (14d) as the registry says: dev-c, 9 days left; dev-d (20 days) not"
n=$(moat events --kind anomaly --json | jq -s 'length')
grep -q "<span id=\"anomalies-open\">$n</span>" "$T/body" || fail "open anomalies: want $n: $(grep -o 'anomalies-open">[0-9]*' "$T/body")"
table open-anomalies | qgrep '<td class="rule">acl_burst</td><td>[a-z]*</td><td><a href="/dashboard/device/dev-b">dev-b</a>' ||
	fail "the acl_burst anomaly of dev-b is not listed: $(table open-anomalies)"
pass "Fleet: open anomalies ($n) as recorded, dev-b's acl_burst linking to its page"
iot=$(sed -n 's/.*<tr id="zone-iot">\(.*\)/\1/p' "$T/body" | sed 's/<\/tr>.*//')
assert_contains "$iot" "127.0.0.0/24"
assert_contains "$iot" '<td class="count">2</td>'
assert_contains "$iot" 'href="/dashboard/device/dev-a">dev-a</a>'
assert_contains "$iot" 'href="/dashboard/device/dev-b">dev-b</a>'
guest=$(sed -n 's/.*<tr id="zone-guest">\(.*\)/\1/p' "$T/body" | sed 's/<\/tr>.*//')
assert_contains "$guest" '10.77.20.0/24</td><td class="count">0</td>'
grep -q '<span id="zone-unknown">2</span> devices with no address' "$T/body" ||
	fail "devices with no address: $(grep -o 'zone-unknown">[0-9]*' "$T/body")"
pass "Fleet: the network zones of [network] with their subnets; dev-a and dev-b last seen in iot, 2 devices never seen"
# the zone map: an inline SVG, a box per zone (its subnet, its device count) and the outside,
# an arrow per direction between them as the policy decides (management defaults 10.77.1.0/24)
svg=$(grep -o '<svg id="zone-map".*' "$T/body" | sed 's#</svg>.*#</svg>#')
[ -n "$svg" ] || fail "no zone map on the Fleet page"
# mapg ID: the map's element with that id, up to the end of its group
mapg() { printf '%s\n' "$svg" | grep -o "id=\"$1\".*" | sed 's#</g>.*##'; }
assert_contains "$(mapg map-zone-iot)" '>127.0.0.0/24</text>'
assert_contains "$(mapg map-zone-iot)" '>2 devices</text>'
assert_contains "$(mapg map-zone-iot)" '>hosts isolated from each other</text>'
assert_contains "$(mapg map-zone-guest)" '>10.77.20.0/24</text>'
assert_contains "$(mapg map-zone-guest)" '>0 devices</text>'
assert_contains "$(mapg map-zone-management)" '>10.77.1.0/24</text>'
assert_contains "$(mapg map-zone-_outside)" '>0 devices</text>'
assert_contains "$(mapg map-flow-management-iot)" 'data-flow="allow"'
mapg map-flow-iot-management | qgrep 'data-flow="except"><title>iot &#8594; management: blocked, except TCP [0-9]* to the broker 10.77.1.10, TCP [0-9]* to the update server 10.77.1.10</title><line class="flow except" [^>]*marker-end="url(#zhead-except)"/><text class="xmark except"' ||
	fail "iot -> management is not drawn blocked (but for the broker): $(mapg map-flow-iot-management)"
for f in iot-guest iot-_outside guest-management guest-iot _outside-iot _outside-management; do
	assert_contains "$(mapg "map-flow-$f")" 'data-flow="block"'
done
assert_contains "$(mapg map-flow-guest-_outside)" 'data-flow="allow"'
assert_contains "$(mapg map-flow-management-_outside)" 'data-flow="allow"'
grep -q '<li class="block" id="flow-iot-iot">iot &#8594; iot (its hosts to each other): blocked</li>' "$T/body" ||
	fail "the flow list does not say iot's hosts are isolated: $(grep -o '<ul id="zone-flows".*' "$T/body" | sed 's#</ul>.*##')"
assert_not_contains "$svg" ' style='
pass "Fleet: the zone map draws each zone with its subnet and device count, management -> iot allowed, iot -> management blocked but for the broker, guest -> outside only"

# ---- the Security events page, live ----
got=$(web "$base/events/stream")
[ "$got" = 401 ] || fail "a stream without a session: HTTP $got"
# two streams of one session are allowed, a third is not (each says hello at once)
for i in 1 2; do
	e2e_bg curl -sS -N --cacert "$D/pki/ca.crt" -H "Cookie: $cookie" -D "$T/stream$i.h" -o "$T/stream$i" "$base/events/stream?kind=nothing"
	eval "STREAM$i=\$!"
	wait_for 10 grep -q "^: heartbeat" "$T/stream$i" || fail "stream $i did not open: $(cat "$T/stream$i")"
done
got=$(web -H "Cookie: $cookie" "$base/events/stream")
[ "$got" = 429 ] || fail "a third stream of one session: HTTP $got"
# a position or filter that does not read is refused (400), never taken for "from now"
for q in "after=12x" "after=-1" "severity=loud"; do
	got=$(web -H "Cookie: $cookie" "$base/events/stream?$q")
	[ "$got" = 400 ] || fail "stream with $q: HTTP $got, expected 400"
done
assert_contains "$(cat "$T/body")" "severity is not info"
got=$(web -H "Cookie: $cookie" -H "Last-Event-ID: abc" "$base/events/stream")
[ "$got" = 400 ] || fail "stream with Last-Event-ID abc: HTTP $got, expected 400"
assert_contains "$(cat "$T/body")" "Last-Event-ID is not an event number"
grep -qi "^content-type: text/event-stream" "$T/stream1.h" || fail "not text/event-stream: $(cat "$T/stream1.h")"
kill "$STREAM1" "$STREAM2" 2>/dev/null || true
pass "event streams: none without a session (401), text/event-stream, at most 2 per session (the third: 429)"
# a stream ends (an 'ended' event, then the end of the response) once its session expired
short=$(moat --json dashboard --session-ttl "$(deadline 4s)" | jq -r .url)
curl -sS --cacert "$D/pki/ca.crt" -o /dev/null -D "$T/h-short" "$short"
scookie=$(sed -n 's/^[Ss]et-[Cc]ookie: \(moat_session=[0-9a-f]*\);.*/\1/p' "$T/h-short")
e2e_bg curl -sS -N --cacert "$D/pki/ca.crt" -H "Cookie: $scookie" -o "$T/stream-short" "$base/events/stream"
SHORT=$!
wait_for 10 grep -q "^: heartbeat" "$T/stream-short" || fail "the short session's stream did not open: $(cat "$T/stream-short")"
wait_for 10 eval '! kill -0 $SHORT 2>/dev/null' || fail "the stream outlived its session: $(cat "$T/stream-short")"
grep -q "^event: ended" "$T/stream-short" || fail "no ended event: $(cat "$T/stream-short")"
pass "an event stream ends when its session expires"
moat events --kind dashboard_refused --json | jq -r .evidence | qgrep "reason=stream_limit " ||
	fail "the stream limit's refusal is no security event"
BH="$T/browser"
mkdir -p "$BH/.pki/nssdb"
certutil -N -d "sql:$BH/.pki/nssdb" --empty-password
certutil -A -d "sql:$BH/.pki/nssdb" -n moat-e2e-root -t "C,," -i "$D/pki/ca.crt"
link=$(moat --json dashboard | jq -r .url)
# dev-b publishes on dev-a's topic with its own certificate: the broker refuses it
trigger="$(declare -f broker_pub broker_args deadline); D='$D' BROKER_PORT=$BROKER_PORT; broker_pub dev-b dev-b devices/dev-a/telemetry intruder"
/usr/bin/python3 "$(dirname "$0")/dashboard_events_live.py" chromium "$BH" "$link" dev-b acl_denied "$trigger" >"$T/live.json" ||
	fail "in the browser: $(cat "$T/live.json") $(tail -5 "$BH/chromium.log")"
echo "browser: $(cat "$T/live.json")"
# events of other kinds were recorded while the page watched: the filter kept them out
n_other=$(moat events --json | jq -s --argjson after "$(jq -r .after_seq "$T/live.json")" '[.[] | select(.seq > $after and .kind != "acl_denied")] | length')
[ "$n_other" -ge 1 ] || fail "no event of another kind was recorded while the page watched: the filter check proves nothing"
pass "Chromium: dev-b's acl_denied appeared on the Security events page without a reload, linking to dev-b's page"

expect_ok "moat down" moat down --timeout "$(deadline 20s)"
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$D/log/moatd.log"; then
	fail "sanitizer report in moatd.log: $(grep -E -A5 'Sanitizer|runtime error:' "$D/log/moatd.log" | head -20)"
fi
broker_check_logs
