#!/usr/bin/env bash
# test_dashboard.sh: moatd's dashboard in a real headless Chromium (dashboard_browser.py over
# the DevTools protocol). The browser trusts the deployment's root CA through an NSS database
# in its own HOME, so moatd's certificate is verified like any site's. Through `moat up`
# (broker with the plugin, moatd with its ingest): sign in with a one-time link from
# `moat dashboard --json`, open every page and check it against the registry (counts, the
# device table and its filters, a telemetry plot from stored messages, events filtered by
# kind, releases), revoke a connected device through the UI (confirmed) and see the broker
# close its connection. With curl: no cookie, a forged cookie, a used link, an expired link,
# an expired session and a forged CSRF token are refused, each a security event; an
# operator's certificate (mutual TLS) signs in without a link; the page headers carry the
# CSP, frame and sniffing rules.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_dashboard.sh"
PY=/usr/bin/python3
dash_require
broker_require

e2e_init
chmod 0755 "$T"
export MOAT_FW_PASSPHRASE="fw-e2e-signing-passphrase"
# DASH_SHOTS (scripts/dashboard-screenshots) also wants a certificate expiring soon (lamp-2)
for d in dev-a dev-b dev-c lamp-1 lamp-2; do
	days=()
	[ -n "${DASH_SHOTS:-}" ] && [ "$d" = lamp-2 ] && days=(--days 10)
	moat device add "$d" --type sensor "${days[@]}" >/dev/null
done
moat device tag lamp-1 lab >/dev/null
moat device tag dev-c lab >/dev/null
moat identity add backend-service --role service >/dev/null
moat identity add op-1 --role operator >/dev/null
moat fw keygen >/dev/null 2>&1
head -c 4096 /dev/urandom >"$T/a.bin"
moat fw sign "$T/a.bin" --type sensor --version 2.0.0 --security-version 1 --out "$T/a.json" 2>/dev/null
moat fw publish "$T/a.json" "$T/a.bin" >/dev/null
moat group add lamps --where 'type=sensor and not tag=lab' >/dev/null
moat fw rollout create "$T/a.json" --group lamps --phases 50%,100% --soak 1h >/dev/null
printf '\n[policy]\nflap_connects = 0\n' >>"$D/moat.conf"
# ... an anomaly and the network zones (the devices connect from 127.0.0.1: in iot)
[ -n "${DASH_SHOTS:-}" ] &&
	printf '[monitor]\nacl_burst = 2\n[network]\niot = 127.0.0.0/24\nguest = 10.77.20.0/24\n' >>"$D/moat.conf"
moat_up_test
wait_for 30 grep -q "event=ingest_subscribed as=backend-service" "$D/log/moatd.log" ||
	fail "moatd did not subscribe: $(tail -3 "$D/log/moatd.log")"
if [ -n "${DASH_SHOTS:-}" ]; then
	# ... and dev-a's last diagnostics; dev-c publishes twice on dev-a's topic: an acl_burst
	broker_pub dev-a dev-a devices/dev-a/diagnostics \
		"{\"agent_version\":\"1.4.2\",\"timestamp\":$(date +%s%3N),\"uptime_ms\":86400000,\"system_uptime_s\":172800,\"rss_kb\":5120,\"free_heap\":41943040,\"load\":[0.12,0.08,0.05],\"ip_address\":\"127.0.0.1\",\"kernel\":\"6.1.0-moat\",\"cert_days_left\":364}"
	for i in 1 2; do broker_pub dev-c dev-c devices/dev-a/telemetry x >/dev/null 2>&1 || true; done
	wait_for 15 eval '[ "$(moat events --kind anomaly --json | jq -r .rule | grep -c acl_burst)" -ge 1 ]' ||
		fail "no acl_burst anomaly for the screenshots: $(moat events --kind anomaly)"
fi

# stored telemetry for dev-a's plot
for i in 1 2 3 4 5; do
	broker_pub dev-a dev-a devices/dev-a/telemetry \
		"{\"device_id\":\"dev-a\",\"device_type\":\"sensor\",\"timestamp\":$(date +%s%3N),\"telemetry\":{\"temperature\":2$i.5,\"humidity\":40},\"metadata\":{\"signal_strength\":-6$i}}"
done
# dev-b connected: it must be kicked when revoked
broker_sub_bg dev-b dev-b "$T/sub-b" devices/dev-b/commands/#
SUB_B=$BROKER_SUB_PID
recorded() { [ "$(moat events --kind "$1" --json | wc -l)" -ge "$2" ]; }

base="https://localhost:$SERVER_PORT/dashboard"
# Each request from an address of its own (127.0.0.N): refusals are security events within
# the connection guard's budget per source (3 a second), and this test wants every one.
# (the counter is a file: hdrs runs in command substitutions)
echo 10 >"$T/src"
hdrs() {
	local src=$(($(cat "$T/src") + 1))
	echo "$src" >"$T/src"
	curl -sS --interface "127.0.0.$src" --cacert "$D/pki/ca.crt" -o "$T/body" -D "$T/headers" -w '%{http_code}' "$@"
}

# ---- refusals without a browser ----
got=$(hdrs "$base/devices")
[ "$got" = 401 ] || fail "no session: HTTP $got"
grep -qi "^content-security-policy: default-src 'none'; style-src 'self'" "$T/headers" ||
	fail "no strict CSP: $(cat "$T/headers")"
grep -qi "^x-frame-options: DENY" "$T/headers" || fail "no X-Frame-Options"
grep -qi "^x-content-type-options: nosniff" "$T/headers" || fail "no nosniff"
grep -q "Sign in" "$T/body" || fail "401 page: $(cat "$T/body")"
grep -q 'id="devices"' "$T/body" && fail "the device table was shown without a session"
pass "no session: 401 with CSP, X-Frame-Options DENY, nosniff; nothing of the fleet shown"
got=$(hdrs -H "Cookie: moat_session=$(printf '%064d' 0)" "$base/")
[ "$got" = 401 ] || fail "forged session cookie: HTTP $got"
got=$(hdrs -H "Cookie: moat_session=1; moat_session=2" "$base/")
[ "$got" = 401 ] || fail "malformed cookie: HTTP $got"
pass "a forged session token and a malformed cookie are refused"
got=$(hdrs --data "csrf=$(head -c 5000 /dev/zero | tr '\0' a)" "$base/signout")
[ "$got" = 413 ] || fail "a 5000-byte form: HTTP $got"
got=$(hdrs -X GET --data "a=1" "$base/")
[ "$got" = 400 ] || fail "a GET with a body: HTTP $got"
pass "a form over 4 KiB (413) and a GET with a body (400) are refused before they are read"

expect_fail "dashboard: unknown operator" moat dashboard --operator nobody
expect_fail "dashboard: a device is no operator" moat dashboard --operator dev-a
expect_fail "dashboard: a TTL without its unit" moat dashboard --link-ttl 30

# a link works once
link=$(moat --json dashboard | jq -r .url)
case "$link" in "https://localhost:$SERVER_PORT/dashboard/signin?token="*) ;; *) fail "link: $link" ;; esac
got=$(hdrs "$link")
[ "$got" = 303 ] || fail "sign-in link: HTTP $got"
grep -qi '^set-cookie: moat_session=[0-9a-f]\{64\}; Path=/dashboard; Max-Age=28800; HttpOnly; Secure; SameSite=Strict' "$T/headers" ||
	fail "session cookie: $(grep -i set-cookie "$T/headers")"
cookie=$(sed -n 's/^[Ss]et-[Cc]ookie: \(moat_session=[0-9a-f]*\);.*/\1/p' "$T/headers")
got=$(hdrs "$link")
[ "$got" = 403 ] || fail "a used link: HTTP $got"
grep -q "used already" "$T/body" || fail "used link page: $(cat "$T/body")"
pass "a sign-in link opens one session (HttpOnly, Secure, SameSite=Strict) and works once"
# the token is stored hashed only
token=${link##*token=}
grep -q "$token" "$D/registry.db" "$D/registry.db-wal" 2>/dev/null && fail "the link's token is stored in clear"
grep -q "${cookie#moat_session=}" "$D/registry.db" "$D/registry.db-wal" 2>/dev/null && fail "the session token is stored in clear"
grep -rq "$token" "$D/log" && fail "the link's token was logged"
pass "link and session tokens are neither stored nor logged in clear"

# CSRF: an action with the session but without its token, or with a forged one
got=$(hdrs -H "Cookie: $cookie" --data-urlencode action=disable --data-urlencode confirm=yes "$base/device/dev-c/action")
[ "$got" = 403 ] || fail "action without CSRF token: HTTP $got"
got=$(hdrs -H "Cookie: $cookie" --data "csrf=$(printf '%064d' 0)&action=disable&confirm=yes" "$base/device/dev-c/action")
[ "$got" = 403 ] || fail "forged CSRF token: HTTP $got"
grep -q "CSRF" "$T/body" || fail "CSRF page: $(cat "$T/body")"
[ "$(moat --json device show dev-c | jq -r .identity.status)" = active ] || fail "a forged form disabled dev-c"
# the right token (from the page) disables, after the confirmation step
hdrs -H "Cookie: $cookie" "$base/device/dev-c" >/dev/null
csrf=$(grep -o 'name="csrf" value="[0-9a-f]*"' "$T/body" | head -1 | sed 's/.*value="//; s/"//')
got=$(hdrs -H "Cookie: $cookie" --data "csrf=$csrf&action=disable" "$base/device/dev-c/action")
[ "$got" = 200 ] && grep -q 'id="confirm"' "$T/body" || fail "no confirmation step: HTTP $got"
[ "$(moat --json device show dev-c | jq -r .identity.status)" = active ] || fail "disabled before confirming"
got=$(hdrs -H "Cookie: $cookie" --data "csrf=$csrf&action=disable&confirm=yes" "$base/device/dev-c/action")
[ "$got" = 200 ] || fail "disable: HTTP $got $(cat "$T/body")"
[ "$(moat --json device show dev-c | jq -r .identity.status)" = disabled ] || fail "dev-c not disabled"
got=$(hdrs -H "Cookie: $cookie" --data "csrf=$csrf&action=enable&confirm=yes" "$base/device/dev-c/action")
[ "$(moat --json device show dev-c | jq -r .identity.status)" = active ] || fail "dev-c not enabled again"
pass "CSRF: missing and forged tokens refused (403); the session's token, confirmed, disables and enables"
# sign out ends the session
got=$(hdrs -H "Cookie: $cookie" --data "csrf=$csrf" "$base/signout")
[ "$got" = 303 ] || fail "sign out: HTTP $got"
got=$(hdrs -H "Cookie: $cookie" "$base/")
[ "$got" = 401 ] || fail "session after sign-out: HTTP $got"
pass "signing out ends the session"

# expired link and expired session
short=$(moat --json dashboard --link-ttl 1s | jq -r .url)
sess=$(moat --json dashboard --session-ttl 1s | jq -r .url)
hdrs "$sess" >/dev/null
scookie=$(sed -n 's/^[Ss]et-[Cc]ookie: \(moat_session=[0-9a-f]*\);.*/\1/p' "$T/headers")
[ -n "$scookie" ] || fail "no short session"
session_expired() { [ "$(hdrs -H "Cookie: $scookie" "$base/")" = 401 ] && grep -q "session has expired" "$T/body"; }
wait_for 10 session_expired || fail "an expired session was not refused: $(cat "$T/body")"
# the short link was made before that session, with the same lifetime: expired by now
got=$(hdrs "$short")
[ "$got" = 403 ] && grep -q "has expired" "$T/body" || fail "an expired link: HTTP $got $(cat "$T/body")"
pass "an expired link (403) and an expired session (401) are refused"

# an operator's certificate needs no link; a device's certificate is no operator's
op="$D/pki/identities/op-1"
got=$(hdrs --cert "$op/cert.pem" --key "$op/key.pem" "$base/")
[ "$got" = 200 ] && grep -q '<span id="operator">op-1</span>' "$T/body" || fail "operator certificate: HTTP $got"
if [ -z "${DASH_SHOTS:-}" ]; then
	grep -q 'id="zones"' "$T/body" && fail "a zone table without [network] in moat.conf"
	grep -q '<svg id="zone-map"' "$T/body" && fail "a zone map (SVG) without [network] in moat.conf"
fi
dv="$D/pki/identities/dev-a"
got=$(hdrs --cert "$dv/cert.pem" --key "$dv/key.pem" "$base/")
[ "$got" = 401 ] || fail "a device certificate opened the dashboard: HTTP $got"
pass "an operator's certificate signs in (mutual TLS); a device's does not"

# a command, sent by an operator signed in by certificate (its CSRF token from the page)
broker_sub_bg lamp-2 lamp-2 "$T/sub-lamp" devices/lamp-2/commands/#
opc=(--cert "$op/cert.pem" --key "$op/key.pem")
hdrs "${opc[@]}" "$base/device/lamp-2" >/dev/null
ocsrf=$(grep -o 'name="csrf" value="[0-9a-f]*"' "$T/body" | head -1 | sed 's/.*value="//; s/"//')
got=$(hdrs "${opc[@]}" --data "csrf=$ocsrf&action=command&command=update_interval&interval=45" "$base/device/lamp-2/action")
[ "$got" = 400 ] || fail "an interval without its unit: HTTP $got"
got=$(hdrs "${opc[@]}" --data "csrf=$ocsrf&action=command&command=selfdestruct" "$base/device/lamp-2/action")
[ "$got" = 400 ] || fail "an unknown command: HTTP $got"
got=$(hdrs "${opc[@]}" --data "csrf=$ocsrf&action=command&command=update_interval&interval=45s&confirm=yes" "$base/device/lamp-2/action")
[ "$got" = 200 ] || fail "command: HTTP $got $(cat "$T/body")"
broker_wait_line "$T/sub-lamp" 'devices/lamp-2/commands/update_interval {"command":"update_interval","id":"dash-'
grep -q '"interval":45' "$T/sub-lamp" || fail "command payload: $(cat "$T/sub-lamp")"
pass "a command from the dashboard reaches the device (update_interval 45s); bad ones refused"

wait_for 20 recorded dashboard_refused 11 ||
	fail "refusals not recorded as security events: $(moat events --kind dashboard_refused)"
moat events --kind dashboard_refused --json | jq -r '.evidence' | sort | uniq -c
for why in no_session unknown_session bad_cookie link_used bad_csrf link_expired session_expired body_too_large unexpected_body; do
	moat events --kind dashboard_refused --json | jq -r .evidence | qgrep "reason=$why " ||
		fail "refusal $why not recorded"
done
moat events --kind dashboard_action --json | jq -r .evidence | qgrep "operator=op-1 via=session action=disable outcome=done" ||
	fail "the disable action was not recorded with the operator: $(moat events --kind dashboard_action)"
moat events --kind dashboard_action --json | jq -r .evidence | qgrep "operator=op-1 via=certificate action=command command=update_interval id=dash-[0-9a-f]* outcome=sent" ||
	fail "the command was not recorded with the operator: $(moat events --kind dashboard_action)"
pass "every refusal and action is a security event (the operator named)"

# a flood of refused requests from one source: budgeted, not one event each
flood=()
for _ in $(seq 1 30); do flood+=(-o /dev/null "$base/"); done
curl -sS --interface 127.0.0.250 --cacert "$D/pki/ca.crt" "${flood[@]}"
wait_for 10 grep -q "event=request client=127.0.0.250 .*status=401" "$D/log/moatd.log" || fail "no flood"
n=$(grep -c "event=dashboard_refused client=127.0.0.250 " "$D/log/moatd.log" || true)
[ "$n" -ge 1 ] && [ "$n" -lt 30 ] || fail "30 refusals from one source gave $n events"
pass "30 refused requests from one source: $n events (the guard's budget per source)"

# ---- the browser ----
BH="$T/browser"
dash_browser_home "$BH"
ids=$(moat --json device list | jq -c '[.[] | select(.role == "device") | .id] | sort')
serial=$(moat --json device show dev-a | jq -r .identity.serial)
cat >"$T/expect.json" <<EOF2
{"operator": "op-1", "active": 5, "devices": 5, "device_ids": $ids,
 "search": "lamp", "search_total": 2, "tag": "lab", "tagged": ["dev-c", "lamp-1"],
 "telemetry_device": "dev-a", "points": 5, "serial": "$serial",
 "group": "lamps", "grouped": ["dev-a", "dev-b", "lamp-2"],
 "event_kind": "dashboard_refused", "versions": ["2.0.0"], "rollout": 1, "revoke": "dev-b"}
EOF2
wait_for 20 eval '[ "$(moat --json fleet | jq -r .telemetry_messages)" -ge 5 ] 2>/dev/null' || true
link=$(moat --json dashboard | jq -r .url)
start=$(date +%s%3N)
# DASH_SHOTS=DIR (scripts/dashboard-screenshots): also a PNG of every page at two widths
"$PY" "$(dirname "$0")/dashboard_browser.py" chromium "$BH" "$link" "$T/expect.json" ${DASH_SHOTS:+"$DASH_SHOTS"} >"$T/seen.json" ||
	fail "in the browser: $(cat "$T/seen.json") $(tail -5 "$BH/chromium.log")"
echo "browser: $(cat "$T/seen.json") ($(( $(date +%s%3N) - start )) ms)"
pass "Chromium: signed in with the link; Fleet, Devices (filters), Device (plot), Security events, Firmware match the registry"
[ "$(moat --json device show dev-b | jq -r .identity.status)" = revoked ] || fail "dev-b not revoked in the registry"
plugin_client_closed "$SUB_B" "$T/sub-b.err" dev-b
moat events --kind dashboard_action --json | jq -r .evidence | qgrep "operator=op-1 via=session action=revoke reason=keyCompromise outcome=done\|operator=op-1 via=session action=revoke reason=key-compromise outcome=done" ||
	fail "revoke not recorded: $(moat events --kind dashboard_action)"
got=$(broker_pub dev-b dev-b devices/dev-b/telemetry x 2>&1) && fail "revoked dev-b still publishes"
pass "revoked in the browser: dev-b is kicked by the broker and refused on reconnecting"
[ "$(moat fw rollout status 1 --json | jq -r '[.. | .state? | strings] | first')" = running ] ||
	fail "rollout after pause and resume: $(moat fw rollout status 1)"
moat events --kind dashboard_action --json | jq -r .evidence | qgrep "action=pause rollout-1 outcome=done" ||
	fail "pause not recorded: $(moat events --kind dashboard_action)"
pass "a rollout paused and resumed in the browser (confirmed, recorded)"

expect_ok "moat down" moat down --timeout "$(deadline 20s)"
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$D/log/moatd.log"; then
	fail "sanitizer report in moatd.log: $(grep -E -A5 'Sanitizer|runtime error:' "$D/log/moatd.log" | head -20)"
fi
broker_check_logs
pass "moatd and the broker stopped with no sanitizer report"
