#!/usr/bin/env bash
# The device side against the deployment's own broker (`moat up`: Mosquitto with the
# moat_broker.so plugin, its identity binding and least-privilege ACL): moat-agent's
# telemetry, status and command responses all pass the policy, the last will is
# delivered on SIGKILL, moat cmd and moat watch work as operators, and moat sim's newly
# provisioned devices are admitted after the policy is regenerated.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_agent.sh"

agent_plugin_init
agent_setup 1s ops watcher
# An ASan-built plugin loads into the uninstrumented broker only with the runtime preloaded.
moat_up_test

mark=$(log_lines "$D/log/mosquitto.log")
moat watch --all --json --as watcher --timeout "$(deadline 120s)" >"$T/watch.json" 2>"$T/watch.err" &
WATCH=$!
E2E_PIDS+=("$WATCH")
watch_wait_subscribed "$D/log/mosquitto.log" "$mark" watcher "$WATCH"
agent_start
wait_grep 15 '"kind":"telemetry"' "$T/watch.json" || fail "no telemetry through the plugin: $(tail -3 "$T/agent.log")"
pass "telemetry and status pass the plugin's policy"

expect_ok "cmd diagnostics through the plugin" moat cmd dev1 diagnostics --as ops --timeout "$(deadline 10s)"
assert_contains "$out" "completed"
set +e
moat cmd dev1 check_update --as ops --timeout "$(deadline 10s)" >/dev/null 2>&1; rc=$?
set -e
[ $rc -eq 1 ] || fail "refused command: exit $rc"
pass "commands and responses through the plugin"

kill -9 "$AGENT"
wait "$AGENT" 2>/dev/null || true
wait_grep 15 '"message":{"device_id":"dev1","status":"offline"}' "$T/watch.json" || fail "no last will through the plugin"
pass "last will on SIGKILL"

# moat sim provisions new devices; the regenerated policy admits them.
expect_ok "moat sim with new devices" moat sim --create --devices 20 --prefix psim --interval 1s --duration "$(deadline 8s)"
assert_contains "$out" "20 connected at peak, 20 published"
pass "20 new simulated devices admitted by the plugin"
kill -TERM "$WATCH"; wait "$WATCH" || true

agent_sanitizer_clean "$T"/*.log "$T"/*.err
