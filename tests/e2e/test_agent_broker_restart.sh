#!/usr/bin/env bash
# No telemetry is lost when the broker restarts, nor when the agent itself restarts while
# the broker is away. The agent publishes every 100 ms; the broker is stopped and started
# twice; then, with the broker down, the agent is stopped (its queue is on disk), started
# again, and the broker comes back. A subscriber with a persistent session counts every
# sequence number.
#
# The claim about duplicates: delivery is at-least-once, so duplicates CAN occur (a
# message the broker received whose PUBACK was lost when it went down is sent again), and
# every duplicate is byte-identical to the first copy (same seq, same timestamp): a
# subscriber removes them by seq. The test checks exactly that.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_agent.sh"

e2e_init
moat device add dev1 >/dev/null
moat identity add ops --role operator >/dev/null
agent_export dev1
agent_set "$CONF" agent interval 100ms
agent_set "$CONF" broker reconnect_min 100ms
agent_set "$CONF" broker reconnect_max 1000ms
# the broker runs as the mosquitto user: its persistence directory must be its own
mkdir -p "$T/broker/persist"
chown mosquitto "$T/broker/persist" 2>/dev/null || chmod 0777 "$T/broker/persist"
PERSIST=("persistence true" "persistence_location $T/broker/persist/" "autosave_interval 1")
agent_broker_start "${PERSIST[@]}"

# A persistent session (-c, QoS 1): the broker keeps what arrives while it reconnects.
mark=$(log_lines "$T/broker/mosquitto.log")
# shellcheck disable=SC2046
mosquitto_sub $(agent_client_args ops) -c -q 1 -v -t devices/dev1/telemetry >"$T/sub.txt" 2>"$T/sub.err" &
E2E_PIDS+=($!)
agent_wait_subscribed "$mark" ops devices/dev1/telemetry

moat-agent --config "$CONF" 2>"$T/agent1.log" &
AGENT=$!
E2E_PIDS+=("$AGENT")
wait_for 10 count_at_least 10 telemetry "$T/sub.txt" || fail "no telemetry: $(cat "$T/agent1.log")"

for round in 1 2; do
	agent_broker_stop
	sleep 1.5   # about 15 messages produced while the broker is away
	agent_broker_start "${PERSIST[@]}"
	n=$(grep -c telemetry "$T/sub.txt")
	wait_for 15 count_at_least $((n + 20)) telemetry "$T/sub.txt" || fail "round $round: delivery did not resume"
	pass "broker restart $round: delivery resumed"
done
grep -q 'event=connection_lost' "$T/agent1.log" || fail "the agent did not notice the restarts"

# The broker goes away, the agent queues on disk and is restarted in the meantime.
agent_broker_stop
sleep 1
kill -TERM "$AGENT"
wait "$AGENT" || fail "agent exit status on SIGTERM"
[ -s "$T/dev1/state/queue" ] || fail "nothing queued on disk while the broker was down"
[ "$(mode_of "$T/dev1/state/queue")" = 600 ] || fail "queue file mode $(mode_of "$T/dev1/state/queue")"
moat-agent --config "$CONF" 2>"$T/agent2.log" &
AGENT=$!
E2E_PIDS+=("$AGENT")
wait_grep 5 'event=queue_loaded' "$T/agent2.log" || fail "queue not loaded after restart: $(cat "$T/agent2.log")"
sleep 1
agent_broker_start "${PERSIST[@]}"
n=$(grep -c telemetry "$T/sub.txt")
wait_for 15 count_at_least $((n + 20)) telemetry "$T/sub.txt" || fail "delivery did not resume after the agent restart"
kill -TERM "$AGENT"
wait "$AGENT" || fail "agent exit status on SIGTERM"
! grep -q "Permission denied" "$T/broker/mosquitto.log" || fail "broker could not persist"

# run 1 used [start1, stop1), run 2 [start2, stop2): every number must have arrived.
field() { sed -n "s/.*event=$2 .*next_seq=\([0-9]*\).*/\1/p" "$1" | head -1; }
start1=$(field "$T/agent1.log" started); stop1=$(field "$T/agent1.log" stopped)
start2=$(field "$T/agent2.log" started); stop2=$(field "$T/agent2.log" stopped)
# The agent's last number reaches the subscriber (in order, after every earlier one) once
# the broker has it; if it never does, the check below says what is missing.
wait_for 10 grep -qE "\"seq\":$((stop2 - 1))[,}]" "$T/sub.txt" || true
python3 - "$T/sub.txt" "$start1" "$stop1" "$start2" "$stop2" <<'PY' || fail "sequence check failed"
import json, sys
path, s1, e1, s2, e2 = sys.argv[1], *map(int, sys.argv[2:])
first = {}
dups = 0
for line in open(path):
    payload = line.rstrip("\n").split(" ", 1)[1]
    seq = json.loads(payload)["metadata"]["seq"]
    if seq in first:
        dups += 1
        assert first[seq] == payload, f"duplicate {seq} differs"
    else:
        first[seq] = payload
want = set(range(s1, e1)) | set(range(s2, e2))
missing = sorted(want - set(first))
extra = sorted(set(first) - want)
print(f"run1 {s1}..{e1 - 1}, run2 {s2}..{e2 - 1}: {len(first)} distinct, {dups} duplicates (identical)")
assert e1 - s1 > 40 and e2 - s2 > 10, "too few messages to mean anything"
assert not missing, f"missing {missing[:20]}"
assert not extra, f"unexpected {extra[:20]}"
PY
pass "no sequence number missing; duplicates, if any, are identical copies"

agent_sanitizer_clean "$T"/*.log "$T"/*.err
