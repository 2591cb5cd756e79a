#!/usr/bin/env bash
# The operator's tools reach the broker by a name of their own: a deployment whose only
# broker host is a name devices resolve on their network (here one that resolves nowhere)
# gets [client] host = 127.0.0.1 from moat init, which the server certificate names too, so
# moat sim, watch and cmd connect with verification on; --host overrides it (and a name
# that does not resolve fails, saying so). moat sim makes no identity for an unknown ID
# without --create, marks what --create makes as simulated (device list, device show), and
# exits 1 naming the reason when its devices cannot connect; its progress shows on a
# terminal only.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_agent.sh"

e2e_init --broker-host mqtt.devices.invalid
grep -q '^host = 127.0.0.1$' "$D/moat.conf" || fail "moat init wrote no [client] host: $(cat "$D/moat.conf")"
san=$(openssl x509 -in "$D/pki/server.crt" -noout -ext subjectAltName)
assert_contains "$san" "DNS:mqtt.devices.invalid"
assert_contains "$san" "IP Address:127.0.0.1"
expect_ok "cert server reissues" moat cert server renew
assert_contains "$(openssl x509 -in "$D/pki/server.crt" -noout -ext subjectAltName)" "IP Address:127.0.0.1"
pass "moat init: [client] host 127.0.0.1, named by the server certificate (and when reissued)"
# devices are still given the broker host
moat device add real1 >/dev/null
agent_export real1
grep -q '^host = mqtt.devices.invalid$' "$CONF" || fail "the agent bundle lost the broker host: $(cat "$CONF")"
moat identity add ops --role operator >/dev/null
agent_broker_start

# an unknown ID: nothing made without --create
expect_fail "sim of an unknown device" moat sim typo-dev --duration 2s
assert_contains "$errout" "no device typo-dev"
assert_contains "$errout" "--create"
moat device list | qgrep typo-dev && fail "sim made an identity without --create"
pass "moat sim without --create makes no identity"

expect_ok "sim --create" moat sim --create sim-a sim-b --interval 1s --duration "$(deadline 4s)"
assert_contains "$out" "2 devices, 2 connected at peak"
# not on a terminal: the summary only, no progress lines
[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "sim printed progress off a terminal: $out"
moat device list >"$T/list"
grep -Eq '^sim-a .* simulated$' "$T/list" || fail "device list: $(cat "$T/list")"
grep -Eq '^real1 .* simulated$' "$T/list" && fail "a real device listed as simulated: $(cat "$T/list")"
moat --json device show sim-a | jq -e '.identity.simulated == true' >/dev/null || fail "device show --json: not simulated"
moat --json device show real1 | jq -e '.identity.simulated == false' >/dev/null || fail "device show --json: real1 simulated"
assert_contains "$(moat device show sim-a)" "simulated:"
pass "sim --create makes simulated devices, connected through [client] host with verification"
# on a terminal (script(1) gives it one): the live status line
script -qec "moat sim sim-a --interval 1s --duration $(deadline 3s)" /dev/null >"$T/tty.out" 2>&1 ||
	fail "sim on a terminal: $(cat "$T/tty.out")"
grep -q 'connected 1/1' "$T/tty.out" || fail "no progress on a terminal: $(cat -v "$T/tty.out")"
pass "sim shows progress on a terminal only"

# watch and cmd through [client] host; --host that does not resolve fails saying so
moat watch sim-a --as ops --count 1 --timeout "$(deadline 20s)" >"$T/w" 2>&1 &
W=$!
E2E_PIDS+=("$W")
moat sim sim-a --interval 1s --duration "$(deadline 6s)" >/dev/null 2>&1 &
S=$!
E2E_PIDS+=("$S")
wait "$W" || fail "watch through [client] host: $(cat "$T/w")"
expect_ok "cmd through [client] host" moat cmd sim-a diagnostics --as ops --wait --timeout "$(deadline 10s)"
wait "$S" || fail "sim sim-a"
expect_fail "cmd --host that does not resolve" moat cmd sim-a diagnostics --as ops --host mqtt.devices.invalid
assert_contains "$errout" "mqtt.devices.invalid"
expect_fail "watch --host that does not resolve" moat watch --all --as ops --count 1 --host mqtt.devices.invalid
pass "watch and cmd connect by [client] host; --host overrides it"

# devices that cannot connect: the run stops and says why (bounded by its attempts)
t0=$SECONDS
set +e
moat sim sim-a sim-b --host mqtt.devices.invalid --duration "$(deadline 120s)" >"$T/o" 2>&1
rc=$?
set -e
[ $rc -eq 1 ] || fail "sim that cannot connect: exit $rc ($(cat "$T/o"))"
assert_contains "$(cat "$T/o")" "stopped: 2 of 2 devices could not connect; sim-a:"
[ $((SECONDS - t0)) -lt "$(deadline 60)" ] || fail "sim did not give up"
pass "moat sim exits 1 when its devices cannot connect, saying why"
