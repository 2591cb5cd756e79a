#!/usr/bin/env bash
# test_audit_live.sh: `moat audit --live` against a real deployment (moat up: Mosquitto with
# the plugin, moatd, a published release). On the healthy deployment every probe passes
# (exit 0), the run id marks the audit's events, the throwaway identities are gone
# afterwards, and a legitimate device keeps publishing all along. Then the deployment is
# weakened for real (moat.conf lifts the devices' message rate limit) and the probe that
# finds it FAILs with its evidence, exit 1.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
command -v jq >/dev/null || skip "jq not installed (scripts/bootstrap installs it)"
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"
broker_deploy
moat identity add backend-service --role service >/dev/null
export MOAT_FW_PASSPHRASE="fw-e2e-signing-passphrase"
moat fw keygen >/dev/null 2>&1
head -c 20000 /dev/urandom >"$T/fw.bin"
moat fw sign "$T/fw.bin" --type generic --version 1.0.0 --security-version 2 --out "$T/fw.json" 2>/dev/null
moat fw publish "$T/fw.json" "$T/fw.bin" >/dev/null
moat_up_test
wait_for 20 grep -q "event=listening" "$D/log/moatd.log" || fail "moatd not listening"
EV="$D/log/security-events.jsonl"

# A legitimate device publishing through both audits on one session (QoS 1, 5 messages a
# second: within its rate limit), counted by a service that subscribes to it.
broker_sub_bg svc-1 svc-1 "$T/legit.out" 'devices/dev-a/telemetry'
mkfifo "$T/legit.fifo"
exec 7<>"$T/legit.fifo" # a writer first, so the reader's open does not block
# shellcheck disable=SC2046
mosquitto_pub $(broker_args dev-a) -V mqttv5 -q 1 -t devices/dev-a/telemetry -l \
	<"$T/legit.fifo" 2>"$T/legit.err" &
LEGIT_PID=$!
E2E_PIDS+=("$LEGIT_PID")
(
	for i in $(seq 1 300); do
		[ -e "$T/stop" ] && break
		echo "{\"temperature\":$i}" >&7
		sleep 0.2
	done
) &
E2E_PIDS+=($!)
on_exit "touch '$T/stop'"
broker_wait_line "$T/legit.out" '"temperature":1}'

# ---- healthy: every probe passes ----
run_captured moat --json audit --live --sarif "$T/live.sarif" --junit "$T/live.xml"
[ "$run_rc" -eq 0 ] || fail "audit of a healthy deployment exited $run_rc: $errout $out"
summary=$(printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
ids = set(d["checks"])
for need in ("tls.plaintext", "tls.anonymous", "tls.version_1_0", "tls.version_1_1", "tls.cbc_suites",
             "cert.foreign", "cert.expired", "cert.revoked", "identity.takeover", "read.wildcard_hash",
             "read.sys", "read.shared", "write.other_command", "write.will_other", "payload.oversized",
             "limit.rate", "moatd.no_certificate", "moatd.other_device", "moatd.path_traversal",
             "moatd.oversized_request", "update.tampered", "update.downgraded"):
    assert "live." + need in ids, need
bad = [f for f in d["findings"] if f["severity"] != "info"]
assert not bad, bad
skipped = {f["id"] for f in d["findings"]}
assert skipped <= {"live.net.policy_from_namespace"}, skipped
# this deployment has no [network] section: the one SKIP says so (test_audit_live_net.sh
# probes a deployment that has one)
net = [f for f in d["findings"] if f["id"] == "live.net.policy_from_namespace"]
assert len(net) == 1 and "no [network] zone configured" in net[0]["title"], net
passed = len([i for i in ids if i.startswith("live.") and i not in skipped])
assert passed >= 30, passed
print(passed)
') || fail "healthy audit: $out"
run=$(printf '%s\n' "$errout" | sed -n 's/.*audit --live run \([0-9a-f]\{8\}\) .*/\1/p')
[ -n "$run" ] || fail "no run id on stderr: $errout"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))["runs"][0]["tool"]' "$T/live.sarif" || fail "no SARIF"
python3 "$MOAT_SRC/tests/e2e/sarif_validate.py" "$T/live.sarif" || fail "live SARIF violates the SARIF 2.1.0 schema"
grep -q 'name="live.tls.plaintext"' "$T/live.xml" || fail "no JUnit test case per probe"
pass "healthy deployment: $summary probes pass, exit 0, as JSON, SARIF and JUnit (run $run)"

grep -q "\"audit_run\":\"$run\"" "$EV" || fail "run id $run not in the security events"
grep "\"identity\":\"audit-$run" "$EV" | qgrep -v "\"audit_run\":\"$run\"" &&
	fail "an event of the audit's identities without its run id"
grep -q '"kind":"acl_denied",.*"identity":"audit-'"$run"'".*"detail":"subscribe #"' "$EV" ||
	fail "the wildcard probe's event is not marked"
# moatd's ingest records them with the run (at the head of their evidence), none without it
audit_recorded() { moat --json events --kind acl_denied | grep -F "\"evidence\":\"audit_run=$run reason=" >/dev/null; }
wait_for 20 audit_recorded || fail "the ingest did not record the audit's run: $(moat --json events --kind acl_denied | tail -3)"
unmarked=$(sqlite3 "$D/registry.db" "SELECT count(*) FROM security_events WHERE source = 'broker' AND identity LIKE 'audit-$run%' AND evidence NOT LIKE 'audit_run=$run %'")
[ "$unmarked" = 0 ] || fail "$unmarked recorded events of the audit's identities without its run"
pass "the audit's events carry \"audit_run\":\"$run\", and moatd's ingest records it"

# The TLS-level probes name no identity: the run was declared in run/audit-runs (run id,
# source address, window), and moatd marks the refused handshakes it records from there
# with audit_run=<run>; the same handshake failure after the run carries no run id.
grep -qE "^run=$run address=127\.0\.0\.1 from_ms=[0-9]+ until_ms=[0-9]+$" "$D/run/audit-runs" ||
	fail "run $run not declared: $(cat "$D/run/audit-runs" 2>&1)"
tls_marked() { [ "$(moat events --json --kind tls_refused | grep -c "audit_run=$run" || true)" -ge 4 ]; }
wait_for 10 tls_marked || fail "tls_refused events of run $run: $(moat events --json --kind tls_refused)"
moat events --json --kind tls_refused | grep "\"evidence\":\"audit_run=$run reason=" | qgrep 'reason=no_certificate' ||
	fail "tls.anonymous's refusal is not marked: $(moat events --json --kind tls_refused)"
moat events --json --kind tls_refused | grep "audit_run=$run" | qgrep 'reason=tls_policy' ||
	fail "an old TLS version's refusal is not marked: $(moat events --json --kind tls_refused)"
moat events --json --kind auth_refused | grep 'tls_handshake_failed' | qgrep "audit_run=$run" ||
	fail "the plugin's tls_handshake_failed events are not marked: $(moat events --json --kind auth_refused)"
# moatd's own refusals: without a certificate (declared address and time), and of the run's
# revoked identity (by its name)
moat events --json --kind auth_refused | grep 'service=https' | grep '"identity":"-"' | qgrep "audit_run=$run" ||
	fail "moatd's refusal of moatd.no_certificate is not marked: $(moat events --json --kind auth_refused | grep service=https | tail -3)"
moat events --json --kind auth_refused | grep 'service=https' | grep "\"identity\":\"audit-$run-r\"" | qgrep "audit_run=$run" ||
	fail "moatd's refusal of audit-$run-r is not marked: $(moat events --json --kind auth_refused | grep service=https | tail -3)"
until_ms=$(sed -n "s/^run=$run .* until_ms=\([0-9]*\)$/\1/p" "$D/run/audit-runs")
# an identical handshake (TLS without a client certificate, as tls.anonymous) after the
# run's window and its grace (2 s after its end): an attack until shown otherwise
while [ "$(($(date +%s%3N) - until_ms))" -le 3000 ]; do sleep 0.2; done
no_cert_count() { moat events --json --kind tls_refused | grep -c 'reason=no_certificate' || true; }
before=$(no_cert_count)
timeout "$(deadline 10)" mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$D/pki/ca.crt" -i intruder \
	-t x -m x >/dev/null 2>&1 && fail "a client without a certificate was accepted"
more_no_cert() { [ "$(no_cert_count)" -gt "$before" ]; }
wait_for 10 more_no_cert || fail "the intruder's refusal was not recorded: $(moat events --json --kind tls_refused | tail -3)"
moat events --json --kind tls_refused | grep 'reason=no_certificate' | tail -1 | qgrep -v 'audit_run=' ||
	fail "a refusal outside the audit's window is marked as the audit's: $(moat events --json --kind tls_refused | tail -1)"
last_plugin() { moat events --json --kind auth_refused | grep 'tls_handshake_failed' | tail -1; }
plugin_after() { [ "$(last_plugin | jq '.time_ms')" -gt "$((until_ms + 2000))" ]; }
wait_for 10 plugin_after || fail "the plugin's event of the intruder was not recorded: $(last_plugin)"
last_plugin | qgrep -v 'audit_run=' || fail "the plugin's event of the intruder is marked: $(last_plugin)"
pass "the TLS probes' refusals carry audit_run=$run (declared in run/audit-runs); the same refusal after the run does not"

expect_ok "device list" moat --json device list
assert_not_contains "$out" "audit-$run"
[ ! -e "$D/pki/identities/audit-$run" ] || fail "the audit's identity files were left behind"
pass "the throwaway identities are deleted"

# What stays of them: their three certificates, revoked and kept in the CRL (a certificate
# whose key existed must never turn valid again before it expires), issued for one day only,
# and marked as the audit's wherever the deletion is quoted.
for sfx in "" -v -r; do
	expect_fail "show the deleted audit-$run$sfx" moat device show "audit-$run$sfx"
	assert_contains "$errout" "kept in the CRL; a throwaway identity of moat audit --live)"
done
now=$(date +%s)
kept=$(sqlite3 "$D/registry.db" "SELECT count(*) FROM deleted_certificates WHERE identity LIKE 'audit-$run%' AND not_after <= $now + 86400 + 300 AND not_before >= $now - 3600")
[ "$kept" = 3 ] || fail "expected 3 one-day audit certificates in deleted_certificates, got $kept: $(sqlite3 "$D/registry.db" "SELECT identity, not_before, not_after FROM deleted_certificates WHERE identity LIKE 'audit-%'")"
# the registry keeps nothing else of them but the deletion records (their events are in log/)
left=$(sqlite3 "$D/registry.db" .dump | grep "audit-$run" | grep -v -E '^INSERT INTO (deleted_certificates|identity_deletions|security_events) ' || true)
[ -z "$left" ] || fail "the registry kept more of the audit's identities: $(printf '%s' "$left" | cut -c1-300 | head -5)"
# only the audit may use the prefix: every other way to create an identity refuses it
for cmd in "device add audit-$run" "device add audit-mine --enroll" "identity add audit-svc --role service"; do
	# shellcheck disable=SC2086
	expect_fail "moat $cmd" moat $cmd
	assert_contains "$errout" "the prefix 'audit-' is reserved for moat audit --live's throwaway identities"
	[ "$(printf '%s\n' "$errout" | wc -l)" = 1 ] || fail "moat $cmd: more than one line: $errout"
done
expect_ok "device list" moat --json device list
assert_not_contains "$out" '"audit-'
pass "the audit's certificates: one day, revoked in the CRL, marked; the audit- prefix is reserved"

# ---- weakened: devices may publish without limit ----
sed -i 's/^\[policy\]$/[policy]\ndevice_msgs_per_s = 0/' "$D/moat.conf"
grep -q '^device_msgs_per_s = 0' "$D/moat.conf" || printf '\n[policy]\ndevice_msgs_per_s = 0\n' >>"$D/moat.conf"
run_captured moat --json audit --live
[ "$run_rc" -eq 1 ] || fail "audit of a weakened deployment exited $run_rc: $out $errout"
printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
bad = [f for f in d["findings"] if f["severity"] != "info"]
assert [f["id"] for f in bad] == ["live.limit.rate"], bad
assert "60 messages at once" in bad[0]["evidence"], bad[0]
assert bad[0]["severity"] == "high", bad[0]
' || fail "weakened: not exactly live.limit.rate failing with its evidence: $out"
pass "weakened rate limit: limit.rate FAILs with its evidence, exit 1"

# ---- the legitimate device was never disturbed ----
kill -0 "$LEGIT_PID" 2>/dev/null || fail "the legitimate device's session ended during the audits: $(cat "$T/legit.err")"
touch "$T/stop"
n=$(grep -c 'devices/dev-a/telemetry' "$T/legit.out")
[ "$n" -ge 20 ] || fail "only $n legitimate messages arrived during the audits"
if grep '"identity":"dev-a"' "$EV" | qgrep -E '"kind":"(auth_refused|acl_denied|rate_limited|payload_rejected|flapping_banned)"'; then
	fail "the legitimate device got a refusal during the audit: $(grep '"identity":"dev-a"' "$EV" | grep -v connected | head -3)"
fi
pass "the legitimate device kept publishing ($n messages), never refused"
