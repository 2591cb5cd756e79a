#!/usr/bin/env bash
# test_agent_disable.sh: `moat device disable` against a real moat-agent (under moat-boot,
# its update checks through moatd) connected to the deployment's broker (`moat up`, the moat
# plugin) and publishing: the plugin kicks it within 2 s of the policy change (measured from
# the file's change to the plugin's event, a bound, not a sleep); while disabled, each of its
# reconnects is refused by the broker (auth_refused reason disabled, the agent's own
# connect_failed) and no telemetry gets through, and moatd refuses its update check with the
# device's own certificate (403 identity_disabled, moat-update exactly as the agent runs it);
# nothing is revoked. `moat device enable` lets the same agent reconnect and publish again,
# with no restart, and moatd serves its update check again.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_moatd.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_update.sh"
source "$(dirname "$0")/lib_agent_update.sh"

au_setup
PLUGIN_EVENTS="$D/log/security-events.jsonl"
agent_set "$CONF" agent interval 200ms
agent_set "$CONF" broker reconnect_min 200ms
agent_set "$CONF" broker reconnect_max 1000ms
au_start
AGENT_LOG="$T/boot.log"
telemetry_count() { grep -c '"kind":"telemetry"' "$T/watch.json" || true; }
n=$(telemetry_count)
wait_for 10 sh -c "[ \$(grep -c '\"kind\":\"telemetry\"' '$T/watch.json') -ge $((n + 5)) ]" ||
	fail "the agent is not publishing"
pass "moat-agent connected through the plugin and publishing"

# moat-update exactly as moat-agent runs it for a check (update_client.c), with the
# device's own certificate; sets $out/$errout/$run_rc.
update_check() {
	run_captured timeout "$(deadline 30)" moat-update --state "$BS" \
		--server "https://localhost:$SERVER_PORT" --ca "$T/dev1/ca.crt" \
		--cert "$T/dev1/cert.pem" --key "$T/dev1/key.pem"
}
update_check
[ "$run_rc" -eq 0 ] || fail "update check before disable: exit $run_rc: $errout"

n_lost=$(grep -c 'event=connection_lost' "$AGENT_LOG" || true)
n_fail=$(grep -c 'event=connect_failed' "$AGENT_LOG" || true)
n_refused=$(plugin_events auth_refused dev1 disabled | wc -l)
expect_ok "moat device disable dev1" moat device disable dev1
plugin_kicked_within dev1 disabled "$D/broker/policy"
wait_for 10 count_at_least $((n_lost + 1)) 'event=connection_lost' "$AGENT_LOG" ||
	fail "the agent did not see its connection closed: $(tail -3 "$AGENT_LOG")"
pass "disabled: the connected agent was kicked within 2 s"

# It keeps trying: every reconnect is refused by the broker, and nothing gets through.
wait_for 20 plugin_more_events auth_refused dev1 disabled $((n_refused + 1)) ||
	fail "the broker did not refuse the disabled agent twice: $(plugin_events auth_refused dev1 | tail -2)"
wait_for 20 count_at_least $((n_fail + 2)) 'event=connect_failed' "$AGENT_LOG" ||
	fail "the agent's reconnects were not refused: $(tail -3 "$AGENT_LOG")"
n_dis=$(telemetry_count)
n_refused=$(plugin_events auth_refused dev1 disabled | wc -l)
wait_for 20 plugin_more_events auth_refused dev1 disabled $((n_refused + 1)) ||
	fail "the agent stopped retrying"
[ "$(telemetry_count)" -eq "$n_dis" ] || fail "telemetry got through while dev1 was disabled"
kill -0 "$BOOT" || fail "moat-boot (and the agent) exited while disabled"
pass "disabled: every reconnect refused by the broker (auth_refused reason disabled), no telemetry"

update_check
[ "$run_rc" -ne 0 ] || fail "moatd served the disabled device's update check"
assert_contains "$errout" "403"
wait_for 10 grep -q "event=auth_refused client=127.0.0.1 id=dev1 reason=identity_disabled" \
	"$D/log/moatd.log" || fail "moatd logged no auth_refused for disabled dev1"
pass "disabled: moatd refuses the device's update check (403 identity_disabled)"
serial=$(openssl x509 -in "$T/dev1/cert.pem" -noout -serial | cut -d= -f2 | tr '[:upper:]' '[:lower:]')
openssl crl -in "$D/pki/crl.pem" -noout -text | tr '[:upper:]' '[:lower:]' |
	qgrep "serial number: $serial" && fail "disable revoked the certificate"

n_conn=$(plugin_events connected dev1 | wc -l)
n=$(telemetry_count)
expect_ok "moat device enable dev1" moat device enable dev1
wait_for 20 plugin_more_events connected dev1 "" "$n_conn" ||
	fail "the agent did not reconnect after enable: $(tail -3 "$AGENT_LOG")"
wait_for 15 sh -c "[ \$(grep -c '\"kind\":\"telemetry\"' '$T/watch.json') -ge $((n + 5)) ]" ||
	fail "no telemetry after enable: $(tail -3 "$AGENT_LOG")"
pass "enabled: the same agent reconnected (no restart) and publishes again"
update_check
[ "$run_rc" -eq 0 ] || fail "update check after enable: exit $run_rc: $errout"
pass "enabled: moatd serves its update check again"
au_stop
