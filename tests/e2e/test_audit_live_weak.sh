#!/usr/bin/env bash
# test_audit_live_weak.sh: `moat audit --live` against a deployment weakened for real:
# [broker] plugin = no, so Mosquitto runs with the ACL file alone (the mode moat.conf
# allows, and calls weaker): client ids are not bound to certificates, subscriptions are
# not judged, and no refusal becomes a security event. Several probes FAIL, each with the
# evidence of what the broker let through, and the exit status is 1; the probes the ACL
# file alone still refuses (a write to another device's topics) FAIL too, because nothing
# recorded the refusal. --event-wait keeps the test short: nothing will be recorded.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
command -v jq >/dev/null || skip "jq not installed (scripts/bootstrap installs it)"
broker_deploy
printf '\n[broker]\nplugin = no\n' >>"$D/moat.conf"
moat_up_test
grep -q '^acl_file ' "$D/broker/mosquitto.conf" || fail "not in ACL-file mode: $(grep -E '^(plugin|acl_file)' "$D/broker/mosquitto.conf")"
wait_for 20 grep -q "event=listening" "$D/log/moatd.log" || fail "moatd not listening"

run_captured moat --json audit --live --event-wait 300ms
[ "$run_rc" = 1 ] || fail "audit of a broker without the plugin exited $run_rc: $errout"
run=$(printf '%s\n' "$errout" | sed -n 's/.*audit --live run \([0-9a-f]\{8\}\) .*/\1/p')
[ -n "$run" ] || fail "no run id on stderr: $errout"
# fails ID REGEX: live.ID is a high finding whose evidence matches REGEX.
fails() {
	jq -e --arg id "live.$1" --arg re "$2" '[.findings[] | select(.id == $id and .severity == "high"
		and (.title | startswith("not refused, or refused without a record")) and (.evidence | test($re)))] | length == 1' \
		>/dev/null <<<"$out" || fail "no FAIL of live.$1 with /$2/: $(jq -c --arg id "live.$1" '[.findings[] | select(.id == $id)]' <<<"$out")"
}
fails identity.takeover "client id 'audit-$run-v' accepted with audit-$run's certificate"
fails identity.second_session "client id 'audit-$run:second' accepted with audit-$run's certificate"
fails read.wildcard_hash "^SUBSCRIBE # granted"
fails read.other_commands "^SUBSCRIBE devices/audit-$run-v/commands/# granted"
fails read.sys '^SUBSCRIBE \$SYS/# granted'
fails limit.rate "but no security event was recorded in .*/log/security-events.jsonl"
fails write.other_command "PUBLISH devices/audit-$run-v/commands/reboot answered 'not authorized', but no security event was recorded"
n=$(jq '[.findings[] | select(.severity == "high")] | length' <<<"$out")
[ "$n" -ge 15 ] || fail "only $n probes FAIL without the plugin: $(jq -c '[.findings[] | .id]' <<<"$out")"
# what the ACL-file broker still refuses is not reported as accepted: plaintext MQTT on the
# TLS port is closed (a PASS when Mosquitto's log line shows within --event-wait, else a FAIL
# for the missing record, never for an accepted session)
jq -e '.checks | index("live.tls.plaintext")' >/dev/null <<<"$out" || fail "live.tls.plaintext did not run"
jq -e '[.findings[] | select(.id == "live.tls.plaintext") | select(.evidence | test("session accepted"))] | length == 0' \
	>/dev/null <<<"$out" || fail "plaintext MQTT accepted: $(jq -c '[.findings[] | select(.id == "live.tls.plaintext")]' <<<"$out")"
pass "[broker] plugin = no: $n probes FAIL with their evidence (takeover, wildcard reads, \$SYS, unrecorded refusals), exit 1"

expect_fail "--event-wait without a unit" moat audit --live --event-wait 300
[ "$run_rc" = 2 ] || fail "--event-wait 300: exit $run_rc"
assert_contains "$errout" "--event-wait"
expect_fail "--event-wait without --live" moat audit --event-wait 1s
[ "$run_rc" = 2 ] || fail "--event-wait without --live: exit $run_rc"
pass "--event-wait needs a unit and --live"
