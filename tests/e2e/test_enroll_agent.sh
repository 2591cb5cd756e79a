#!/usr/bin/env bash
# test_enroll_agent.sh: moat-agent makes its own key, enrolls with a one-time token over
# EST with the real moatd, connects to a real Mosquitto, renews by simplereenroll at half
# of its certificate's lifetime (seconds long here: MOAT_TEST_IDENTITY_SECONDS, a test
# build's knob), and keeps publishing across renewals, one of them landing while the
# broker is down: a subscriber with a persistent session sees every sequence number.
# Then, on the deployment's own broker (`moat up`, the moat plugin), revoking the device
# stops it: the broker kicks it and refuses it, and moatd refuses its renewal.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_moatd.sh"
source "$(dirname "$0")/lib_broker.sh"

grep -aq MOAT_TEST_IDENTITY_SECONDS "$MOAT_BUILD/moatd" ||
	skip "moatd was built without failpoints (configure with -DMOAT_FAILPOINTS=ON)"
[ -e "$MOAT_BUILD/moat_broker.so" ] || fail "moat_broker.so not built"

e2e_init
chmod 0755 "$T"
# moatd signs over EST with the online issuing CA that moat init makes
[ -e "$D/pki/issuer.crt" ] || fail "moat init made no online issuing CA"
printf '\n[est]\nreenroll_grace = 2s\n' >>"$D/moat.conf"
MOAT_TEST_IDENTITY_SECONDS=$(deadline 30)
export MOAT_TEST_IDENTITY_SECONDS
moat identity add ops --role operator >/dev/null
token=$(moat device add dev1 --type sensor --enroll --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
[ ${#token} -eq 32 ] || fail "no token from device add --enroll"
expect_ok "export an enrolling configuration" moat device export dev1 --format agent --out "$T/dev1"
assert_contains "$out" "no key was exported"
CONF=$T/dev1/agent.conf
[ -z "$(find "$T/dev1" -name '*.pem' -o -name '*.key')" ] || fail "the export holds a key or certificate"
grep -q '^\[enroll\]' "$CONF" || fail "no [enroll] section: $(cat "$CONF")"
(umask 077 && printf '%s\n' "$token" >"$T/dev1/enroll.token")
agent_set "$CONF" agent interval 200ms
agent_set "$CONF" broker reconnect_min 100ms
agent_set "$CONF" broker reconnect_max 1000ms
agent_set "$CONF" enroll renew_at 50%
agent_set "$CONF" enroll retry_min 200ms
agent_set "$CONF" enroll retry_max 2s
expect_ok "moat-agent --check before enrollment" moat-agent --config "$CONF" --check
assert_contains "$out" "not enrolled yet"

# ---- part 1: plain Mosquitto with persistence, moatd for EST ----
mkdir -p "$T/broker/persist"
chown mosquitto "$T/broker/persist" 2>/dev/null || chmod 0777 "$T/broker/persist"
PERSIST=("persistence true" "persistence_location $T/broker/persist/" "autosave_interval 1")
agent_broker_start "${PERSIST[@]}"
moatd_start
mark=$(log_lines "$T/broker/mosquitto.log")
# shellcheck disable=SC2046
mosquitto_sub $(agent_client_args ops) -c -q 1 -v -t devices/dev1/telemetry >"$T/sub.txt" 2>"$T/sub.err" &
E2E_PIDS+=($!)
agent_wait_subscribed "$mark" ops devices/dev1/telemetry

moat-agent --config "$CONF" 2>"$T/agent1.log" &
AGENT=$!
E2E_PIDS+=("$AGENT")
wait_grep 20 'event=enrolled' "$T/agent1.log" || fail "no enrollment: $(tail -5 "$T/agent1.log")"
ident=$T/dev1/state/identity
[ "$(mode_of "$ident/current/key.pem")" = 600 ] || fail "key.pem mode $(mode_of "$ident/current/key.pem")"
openssl verify -CAfile "$D/pki/ca.crt" -untrusted "$ident/current/cert.pem" "$ident/current/cert.pem" >/dev/null ||
	fail "the enrolled certificate does not verify against the root"
[ ! -e "$D/pki/identities/dev1/key.pem" ] || fail "a key for dev1 exists on the operator's side"
wait_for 15 count_at_least 10 telemetry "$T/sub.txt" || fail "no telemetry: $(tail -5 "$T/agent1.log")"
pass "enrolled with a token, key 0600 made on the device, publishing"

wait_grep 40 'event=identity_switched' "$T/agent1.log" ||
	fail "no renewal: $(grep -E 'renew|switch' "$T/agent1.log" | tail -5)"
serial1=$(openssl x509 -in "$ident/current/cert.pem" -noout -serial)
pass "renewed by simplereenroll and switched to the new identity"
[ "$(ls -d "$ident"/gen-* | wc -l)" -eq 1 ] || fail "old generations left: $(ls "$ident")"

# the next renewal lands while the broker is away: the agent keeps the old identity, queues
# telemetry, and switches once the broker is back
n_renewed=$(grep -c 'event=renewed ' "$T/agent1.log")
agent_broker_stop
wait_for 40 count_at_least $((n_renewed + 1)) 'event=renewed ' "$T/agent1.log" ||
	fail "no renewal while the broker was down: $(tail -5 "$T/agent1.log")"
[ -L "$ident/next" ] && [ -L "$ident/current" ] || fail "renewed while the broker was away, but current and next are not both kept"
agent_broker_start "${PERSIST[@]}"
n_sw=$(grep -c 'event=identity_switched' "$T/agent1.log")
wait_for 30 count_at_least $((n_sw + 1)) 'event=identity_switched' "$T/agent1.log" ||
	fail "no switch after the broker came back: $(tail -5 "$T/agent1.log")"
[ "$(openssl x509 -in "$ident/current/cert.pem" -noout -serial)" != "$serial1" ] || fail "the serial did not change"
n=$(grep -c telemetry "$T/sub.txt")
wait_for 15 count_at_least $((n + 10)) telemetry "$T/sub.txt" || fail "delivery did not resume"

# every number from the first to the highest received is there (the agent keeps running)
start1=$(sed -n 's/.*event=started .*next_seq=\([0-9]*\).*/\1/p' "$T/agent1.log" | head -1)
python3 - "$T/sub.txt" "$start1" <<'PY' || fail "sequence check failed"
import json, sys
path, s = sys.argv[1], int(sys.argv[2])
first, dups = {}, 0
for line in open(path):
    payload = line.rstrip("\n").split(" ", 1)[1]
    seq = json.loads(payload)["metadata"]["seq"]
    if seq in first:
        dups += 1
        assert first[seq] == payload, f"duplicate {seq} differs"
    else:
        first[seq] = payload
e = max(first) + 1
missing = sorted(set(range(s, e)) - set(first))
print(f"seq {s}..{e - 1}: {len(first)} distinct, {dups} duplicates (identical)")
assert e - s > 50, "too few messages to mean anything"
assert not missing, f"missing {missing[:20]}"
PY
pass "no sequence number missing across enrollment, renewals and a broker restart"

# ---- part 2: the deployment's broker (moat plugin) on the same ports; the agent keeps
# running and reconnects; revocation stops it ----
agent_broker_stop
moatd_stop
moat_up_test
moat watch --all --json --as ops --timeout "$(deadline 120s)" >"$T/watch.json" 2>"$T/watch.err" &
E2E_PIDS+=($!)
wait_grep 30 '"kind":"telemetry"' "$T/watch.json" || fail "no telemetry through the plugin: $(tail -3 "$T/agent1.log")"
pass "the enrolled identity passes the plugin (chain to the root, CN bound to the client id)"
n_lost=$(grep -c 'event=connection_lost' "$T/agent1.log" || true)
n_fail=$(grep -c 'event=connect_failed' "$T/agent1.log" || true)
n_renew=$(grep -c 'event=renew_\(refused\|failed\)' "$T/agent1.log" || true)
expect_ok "revoke dev1" moat device revoke dev1
# the plugin kicks it, and every later attempt is refused: the agent's own log says so
wait_for 20 count_at_least $((n_lost + 1)) 'event=connection_lost' "$T/agent1.log" ||
	fail "not kicked after revocation"
wait_for 30 count_at_least $((n_fail + 2)) 'event=connect_failed' "$T/agent1.log" ||
	fail "not refused after revocation: $(tail -3 "$T/agent1.log")"
wait_for 60 count_at_least $((n_renew + 1)) 'event=renew_\(refused\|failed\)' "$T/agent1.log" ||
	fail "moatd did not refuse the revoked device's renewal: $(grep renew "$T/agent1.log" | tail -3)"
pass "revoked: kicked, refused by the broker, its renewal refused by moatd"
kill -TERM "$AGENT"
wait "$AGENT" || true

agent_sanitizer_clean "$T"/*.log "$T"/*.err
