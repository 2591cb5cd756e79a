#!/usr/bin/env bash
# An agent that was offline replays its queued telemetry through the moat plugin, whose
# per-device rate limit refuses what exceeds the burst. The agent speaks MQTT 5, so a
# refused PUBACK (0x87) keeps the message queued and it is sent again after a back-off:
# every sequence number arrives, and the plugin did refuse some (the test is not vacuous).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_agent.sh"

agent_plugin_init
# a tight device limit: 5 messages/s, burst 5
cat >>"$D/moat.conf" <<'EOF'

[policy]
device_msgs_per_s = 5
device_burst = 5
EOF
agent_setup 500ms watcher # 2/s: under the 5/s limit, so the replay can catch up
agent_set "$CONF" broker reconnect_min 100ms
agent_set "$CONF" broker reconnect_max 500ms

# The agent first runs pointed at a port where nothing listens: its telemetry queues on
# disk. It is stopped (the queue survives), the broker and a watcher come up, and the
# agent is started again at the right port: the backlog is replayed in one go.
port=$(grep -E '^port = ' "$CONF" | head -1 | awk '{print $3}')
agent_set "$CONF" broker port "$(free_port)"
agent_start "$T/agent-offline.log"
sleep 8 # about 16 messages queued: more than the burst of 5
kill -TERM "$AGENT"
wait "$AGENT" || true
agent_set "$CONF" broker port "$port"

moat_up_test
mark=$(log_lines "$D/log/mosquitto.log")
moat watch dev1 --json --as watcher --timeout "$(deadline 120s)" >"$T/watch.json" 2>"$T/watch.err" &
WATCH=$!
E2E_PIDS+=("$WATCH")
watch_wait_subscribed "$D/log/mosquitto.log" "$mark" watcher "$WATCH"
agent_start

# wait until the replay has caught up: the newest seq the agent produced has arrived
newest_arrived() { [ "$(agent_telemetry_seqs "$T/watch.json" | wc -l)" -ge 40 ]; }
wait_for 90 newest_arrived || fail "telemetry did not catch up: $(tail -3 "$T/agent.log")"
kill -TERM "$AGENT"
wait "$AGENT" || true

# The restart reserves a fresh block of sequence numbers (a gap marks a restart, numbers
# are never reused): expected are the N queued records and everything from next_seq on.
loaded=$(sed -n 's/.*event=queue_loaded records=\([0-9]*\) next_seq=\([0-9]*\).*/\1 \2/p' "$T/agent.log" | head -1)
[ -n "$loaded" ] || fail "the agent did not load its queue: $(head -3 "$T/agent.log")"
agent_telemetry_seqs "$T/watch.json" >"$T/seqs.txt"
python3 - "$T/seqs.txt" $loaded <<'PY' || fail "sequence check failed"
import sys
queued, next_seq = int(sys.argv[2]), int(sys.argv[3])
seqs = set(int(line) for line in open(sys.argv[1]))
assert queued > 5, f"only {queued} queued: not more than the burst"
lo, hi = min(seqs), max(seqs)
expected = set(range(lo, lo + queued)) | set(range(next_seq, hi + 1))
missing = sorted(expected - seqs)
assert not missing, f"missing seq {missing[:20]} (queued {lo}..{lo + queued - 1}, then {next_seq}..{hi})"
print(f"queued {lo}..{lo + queued - 1} and live {next_seq}..{hi}: none missing")
PY
refused=$(grep -c "event=telemetry_refused" "$T/agent.log" || true)
[ "$refused" -gt 0 ] || fail "the plugin never refused the replay: the test proves nothing"
grep -q '"kind":"rate_limited"' "$D"/log/*.jsonl || fail "no rate_limited security event"
! grep -q "event=telemetry_dropped" "$T/agent.log" || fail "telemetry dropped"
pass "a backlog replayed through the rate limit loses nothing ($refused refusals retried)"
kill -TERM "$WATCH" 2>/dev/null || true
agent_sanitizer_clean "$T"/*.log "$T"/*.err
