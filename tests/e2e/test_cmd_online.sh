#!/usr/bin/env bash
# `moat cmd` to a device that is just starting: a command is QoS 1 to a device session
# that is not persistent, so one the broker handles before the device's SUBSCRIBE reaches
# no one and is gone. moat cmd therefore reads the device's retained status first: the
# device subscribes to its commands before it publishes "online" on the same connection,
# and the broker handles one connection's packets in order, so "online" means subscribed.
# Offline is said at once (exit 1, nothing sent); with --wait it waits for "online".
# Proven by starting moat-agent and commanding it at once (moat cmd started just after the
# agent, or just before it), ROUNDS times, through `moat up` (the moat plugin), each round
# bounded by --timeout; then a device that stopped is reported offline at once.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_agent.sh"

ROUNDS=${ROUNDS:-12}
agent_plugin_init
agent_setup 1s ops
# every round is a new connection: more than the flapping limit allows (0: off)
# and each round publishes online, a response and offline: ROUNDS rounds in a few seconds
# are more messages than device_burst (20) allows, and a dropped "offline" leaves the
# retained status "online", which the last check reads
printf '\n[policy]\nflap_connects = 0\ndevice_burst = 1000\n' >>"$D/moat.conf"
moat_up_test

# odd rounds start the agent and then moat cmd at once; even rounds start moat cmd first
# and the agent once moat cmd has subscribed to the responses, so its command would go out
# before the device exists if it did not wait for "online"
start=$SECONDS
for i in $(seq 1 "$ROUNDS"); do
	if [ $((i % 2)) -eq 1 ]; then
		agent_start "$T/agent.$i.log"
	fi
	mark=$(log_lines "$D/log/mosquitto.log")
	moat cmd dev1 diagnostics --wait --as ops --timeout "$(deadline 15s)" >"$T/o" 2>"$T/e" &
	CMD=$!
	if [ $((i % 2)) -eq 0 ]; then
		wait_subscribed "$D/log/mosquitto.log" "$mark" "ops:cmd-$CMD" devices/dev1/command_responses
		agent_start "$T/agent.$i.log"
	fi
	set +e
	wait "$CMD"
	rc=$?
	set -e
	[ $rc -eq 0 ] || fail "round $i: exit $rc: $(cat "$T/o" "$T/e"); agent: $(tail -3 "$T/agent.$i.log")"
	assert_contains "$(cat "$T/o")" "dev1 diagnostics: completed"
	kill -TERM "$AGENT"
	wait "$AGENT" || fail "round $i: the agent did not stop cleanly: $(tail -3 "$T/agent.$i.log")"
done
pass "$ROUNDS devices commanded as they started: every one answered ($((SECONDS - start))s)"

# the last agent said offline when it stopped: without --wait that is an error at once
t0=$SECONDS
set +e
moat cmd dev1 diagnostics --as ops --timeout 30s >"$T/o" 2>&1
rc=$?
set -e
[ $rc -eq 1 ] || fail "offline: exit $rc ($(cat "$T/o"))"
assert_contains "$(cat "$T/o")" "dev1 is offline; nothing sent"
[ $((SECONDS - t0)) -lt "$(deadline 10)" ] || fail "offline was not said at once"
pass "a device that stopped is offline at once: exit 1, nothing sent"

agent_sanitizer_clean "$T"/agent.*.log
