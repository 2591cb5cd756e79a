#!/usr/bin/env bash
# test_update.sh: the device side of signed updates end to end, over HTTPS with mutual TLS:
# a normal update (A to B on trial, confirmed, floor raised), then every refusal the issue
# lists, each leaving the device running its version: tampered image, endless image,
# truncated image, unknown key, threshold, payload changed after signing, freeze,
# rollback, downgrade, mix-and-match, a server from another CA, a revoked device; and a
# new image that crashes at start, reverted automatically and not staged again when it is
# offered again, while a release issued later is.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_fw.sh"
source "$(dirname "$0")/lib_update.sh"

upd_setup
srv_start

# ---- nothing offered ----
expect_ok "nothing newer (204)" update
assert_contains "$out" "up_to_date"
[ "$(state_field floor)" = 1 ] || fail "floor after provisioning: $(state_field floor)"

# ---- refusals: each leaves the device on 1.0.0 in slot a ----
make_image "$T/v2.sh" 1.1.0
sign "$T/v2.sh" 1.1.0 2 "$T/v2.json"

# A tampered image (one bit flipped) behind a valid envelope.
python3 -c 'import sys; b=bytearray(open(sys.argv[1],"rb").read()); b[5000]^=1; open(sys.argv[2],"wb").write(b)' \
	"$T/v2.sh" "$T/v2-bit.sh"
offer "$T/v2-bit.sh" "$T/v2.json"
expect_fail "one bit flipped" update
assert_contains "$errout" "refused (hash_mismatch)"
update_report
[ $rc -eq 1 ] && [ "$report" = "refused 1" ] || fail "report of a bad download: $rc $out"
[ "$(report_field verdict)" = hash_mismatch ] && [ "$(report_field version)" = 1.1.0 ] ||
	fail "refusal report: $out"
[ ! -e "$S/slots/b/image.part" ] || fail "a bad download was kept"
assert_unchanged "one bit"

# An image longer than its manifest (endless data): the client stops at the size, and
# hangs up: the server could send it no more than the image plus what the sockets' buffers
# hold (the kernel's largest TCP receive and send buffers), far below the 64 MiB offered.
offer "$T/v2.sh" "$T/v2.json"
echo endless > "$SRV/mode"
rm -f "$SRV/endless.sent"
expect_fail "endless image" update
assert_contains "$errout" "refused (size_mismatch)"
[ ! -e "$S/slots/b/image.part" ] || fail "an endless download was kept"
assert_unchanged "endless"
wait_for 20 test -s "$SRV/endless.sent" || fail "the server did not finish the endless download"
sent=$(cat "$SRV/endless.sent")
read -r _ _ rmem_max </proc/sys/net/ipv4/tcp_rmem
read -r _ _ wmem_max </proc/sys/net/ipv4/tcp_wmem
bound=$(($(stat -c %s "$T/v2.sh") + rmem_max + wmem_max + 1048576))
[ "$sent" -le "$bound" ] ||
	fail "endless image: the server sent $sent bytes, more than the image and socket buffers ($bound): the client kept downloading past the manifest's size"
echo "ok - endless image: the client hung up after $sent bytes (bound $bound, offered 67108864+)"

# A truncated image (the server sends half and says that is all).
echo short > "$SRV/mode"
expect_fail "truncated image" update
assert_contains "$errout" "refused (size_mismatch)"
assert_unchanged "truncated"

# An interrupted download: refused for now, resumed with a Range request afterwards.
echo cut > "$SRV/mode"
expect_fail "interrupted download" update
[ -s "$S/slots/b/image.part" ] || fail "the partial download was not kept"
assert_unchanged "interrupted"
echo normal > "$SRV/mode"

# An envelope signed by a key the device does not trust.
moat init --dir "$T/other" --name other --broker-port "$(free_port)" --server-port "$(free_port)" >/dev/null
MOAT_DIR="$T/other" moat fw keygen >/dev/null 2>&1
MOAT_DIR="$T/other" sign "$T/v2.sh" 1.1.0 2 "$T/v2-unknown.json"
offer "$T/v2.sh" "$T/v2-unknown.json"
expect_fail "unknown key" update
assert_contains "$errout" "refused (unknown_key)"
assert_unchanged "unknown key"

# The payload changed after signing.
env_edit "$T/v2.json" "$T/v2-payload.json" 'p["security_version"] = 7; set_payload(p)'
offer "$T/v2.sh" "$T/v2-payload.json"
expect_fail "payload changed after signing" update
assert_contains "$errout" "refused (bad_signature)"
assert_unchanged "payload"

# An expired manifest (freeze): the device's clock is past expires_at.
offer "$T/v2.sh" "$T/v2.json"
expires=$(manifest_field "$T/v2.json" expires_at)
expect_fail "expired manifest" update --now $((expires + 1))
assert_contains "$errout" "refused (expired)"
assert_unchanged "expired"

# An older manifest replayed (rollback): the device has verified a later one.
sed -i "s/^last_issued_at=.*/last_issued_at=$(( $(manifest_field "$T/v2.json" issued_at) + 100 ))/" "$S/boot.state"
expect_fail "older manifest replayed" update
assert_contains "$errout" "refused (rollback)"
assert_unchanged "rollback"
sed -i "s/^last_issued_at=.*/last_issued_at=$(manifest_field "$T/v1.json" issued_at)/" "$S/boot.state"

# A lower security_version with a valid signature (downgrade): floor 1, offered 0.
make_image "$T/v0.sh" 1.2.0
sign "$T/v0.sh" 1.2.0 0 "$T/v0.json"
offer "$T/v0.sh" "$T/v0.json"
expect_fail "downgrade" update
assert_contains "$errout" "refused (downgrade)"
update_report
[ $rc -eq 1 ] && [ "$report" = "refused 0" ] || fail "report of a refusal: $rc $out"
# (refused before the manifest was trusted: no version in the line)
[ "$(report_field verdict)" = downgrade ] && [ -z "$(report_field version)" ] ||
	fail "refusal report: $out"
[ -z "$errout" ] || fail "--report wrote to stderr: $errout"
assert_unchanged "downgrade"

# A manifest for another device type (mix-and-match).
SIGN_TYPE=gateway sign "$T/v2.sh" 1.1.0 2 "$T/v2-gw.json"
offer "$T/v2.sh" "$T/v2-gw.json"
expect_fail "another device type" update
assert_contains "$errout" "refused (wrong_type)"
assert_unchanged "mix-and-match"

# Not newer: the same version again.
offer "$T/v1.sh" "$T/v1.json"
expect_fail "same version" update
assert_contains "$errout" "refused (not_newer)"

# Fewer signatures than the threshold: the device's trust file asks for 2 of 2.
sign "$T/v2.sh" 1.1.0 2 "$T/v2-one.json" --key "${KEY_A:0:12}"
offer "$T/v2.sh" "$T/v2-one.json"
expect_fail "one signature of two" update
assert_contains "$errout" "refused (threshold)"
assert_unchanged "threshold"

# An update server whose certificate comes from another CA.
srv_stop
srv_start "$T/other/pki/server.crt" "$T/other/pki/server.key"
offer "$T/v2.sh" "$T/v2.json"
expect_fail "server from another CA" update
assert_contains "$errout" "TLS"
assert_unchanged "other CA"
srv_stop

# A device whose certificate is revoked: the server refuses the handshake.
moat device revoke dev1 >/dev/null
srv_start
offer "$T/v2.sh" "$T/v2.json"
requests=$(cat "$SRV/access.log" 2>/dev/null | wc -l)
expect_fail "revoked device" update
assert_unchanged "revoked"
srv_stop
# (The refusal was the handshake's: no request of the revoked device reached the server.)
[ "$(cat "$SRV/access.log" 2>/dev/null | wc -l)" = "$requests" ] ||
	fail "the revoked device's request reached the server: $(tail -n 1 "$SRV/access.log")"
# moatd itself refuses the revoked device when it checks for an update, and says why.
e2e_bg moatd --dir "$D" --listen 127.0.0.1 --port "$SERVER_PORT" --no-ingest >>"$T/moatd.log" 2>&1
MOATD_PID=$!
wait_for 20 curl -s --cacert "$D/pki/ca.crt" -o /dev/null "https://localhost:$SERVER_PORT/" ||
	fail "moatd did not start: $(tail -n 5 "$T/moatd.log")"
OLD_SRV_PORT=$SRV_PORT
SRV_PORT=$SERVER_PORT
expect_fail "revoked device checks moatd for an update" update
assert_contains "$errout" "403"
wait_for 10 grep -q "id=dev1 .*path=/api/firmware/version.* status=403 .*detail=certificate_revoked" "$T/moatd.log" ||
	fail "moatd did not refuse dev1 as revoked: $(grep 'event=request' "$T/moatd.log" | tail -n 3)"
assert_unchanged "revoked, moatd"
kill "$MOATD_PID" 2>/dev/null || true
wait "$MOATD_PID" 2>/dev/null || true
SRV_PORT=$OLD_SRV_PORT
pass "a revoked device is refused by moatd (certificate_revoked)"

# ---- a normal update: A to B, on trial, confirmed, floor raised ----
moat device add dev2 --type "$TYPE" >/dev/null
ID="$D/pki/identities/dev2"
srv_start
offer "$T/v2.sh" "$T/v2.json"
update_report
[ $rc -eq 0 ] && [ "$report" = "staged 1" ] || fail "update to 1.1.0 (resuming): $rc $out $errout"
# The progress line says where the download resumed, the outcome how much was reused.
offset=$(printf '%s\n' "$out" | head -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["offset"])')
[ "$offset" -gt 0 ] && [ "$(report_field resumed_from)" = "$offset" ] ||
	fail "resume not reported: $out"
echo "ok - update to 1.1.0 (resumed from byte $offset)"
grep -q "range=bytes=" "$SRV/access.log" || fail "the interrupted download was not resumed"
[ "$(state_field trial)" = b ] || fail "slot b not on trial"
[ "$(state_field floor)" = 1 ] || fail "floor rose before confirmation"
cmp -s "$S/slots/b/image" "$T/v2.sh" || fail "slot b image differs"
expect_ok "a second check while on trial does nothing" update
assert_contains "$out" "trial_pending"
: > "$RUNLOG"
expect_ok "boot: trial of 1.1.0, confirmed" boot_once
assert_contains "$(cat "$RUNLOG")" "1.1.0 slot=b trial=1"
[ "$(state_field active)" = b ] || fail "slot b not active after confirmation"
[ "$(state_field trial)" = - ] || fail "trial still pending"
[ "$(state_field floor)" = 2 ] || fail "floor not raised: $(state_field floor)"
: > "$RUNLOG"
expect_ok "boot again: 1.1.0 confirmed" boot_once
assert_contains "$(last_run)" "1.1.0 slot=b trial=0"
pass "normal update: A to B, confirmed, floor raised to 2"

# The old 1.0.0 (security_version 1) is now below the floor: it does not boot either.
expect_ok "status" moat-boot --state "$S" --status
assert_contains "$out" "slot_a=- (slot a: refused (downgrade)"
assert_contains "$out" "slot_b=1.1.0"

# ---- secure boot: an image modified on disk does not run ----
cp "$S/slots/b/image" "$T/b-good"
printf '#!/bin/sh\necho evil >> "$RUNLOG"\n' > "$S/slots/b/image"
: > "$RUNLOG"
expect_fail "modified active image" boot_once
assert_contains "$errout" "refusing to start"
assert_not_contains "$(cat "$RUNLOG")" "evil"
cp "$T/b-good" "$S/slots/b/image"

# ---- a new image that crashes at start: reverted automatically ----
make_image "$T/v3.sh" 1.2.0 crash
sign "$T/v3.sh" 1.2.0 3 "$T/v3.json"
offer "$T/v3.sh" "$T/v3.json"
expect_ok "update to crashing 1.2.0" update
assert_contains "$out" "staged"
[ "$(state_field trial)" = a ] || fail "slot a not on trial"
: > "$RUNLOG"
expect_ok "boot: the crash is reverted to 1.1.0" boot_once
assert_contains "$(head -n 1 "$RUNLOG")" "1.2.0 slot=a trial=1"
assert_contains "$(last_run)" "1.1.0 slot=b trial=0"
assert_contains "$errout" "event=revert"
[ "$(state_field active)" = b ] || fail "active slot not b after revert"
[ "$(state_field trial)" = - ] || fail "trial still pending after revert"
[ "$(state_field floor)" = 2 ] || fail "floor moved without confirmation"
[ "$(state_field reverted_issued_at)" = "$(manifest_field "$T/v3.json" issued_at)" ] ||
	fail "the revert did not record 1.2.0's issued_at: $(state_field reverted_issued_at)"
pass "crashing image reverted to the previous slot, floor unchanged"

# The server still offers the reverted 1.2.0: the device does not stage it again (no
# trial/revert loop), downloads nothing and leaves its slots alone.
cp "$S/boot.state" "$T/state-reverted"
(cd "$S/slots/a" && sha256sum image envelope.json) > "$T/slot-a-reverted"
downloads=$(grep -c "/api/firmware/download/" "$SRV/access.log" || true)
expect_ok "the reverted 1.2.0 offered again" update
assert_contains "$out" "up_to_date"
assert_contains "$out" "version 1.2.0 was reverted on this device; waiting for a newer release"
cmp -s "$S/boot.state" "$T/state-reverted" || fail "a reverted release changed the state"
(cd "$S/slots/a" && sha256sum -c --quiet "$T/slot-a-reverted") || fail "slot a was touched"
[ ! -e "$S/slots/a/image.part" ] && [ ! -e "$S/slots/a/envelope.part" ] ||
	fail "a reverted release was downloaded"
[ "$(grep -c "/api/firmware/download/" "$SRV/access.log" || true)" = "$downloads" ] ||
	fail "a reverted release was downloaded"
update_report
[ $rc -eq 0 ] || fail "report of the reverted release: exit $rc"
[ "$report" = "up_to_date 0" ] || fail "report of the reverted release: $out"
[ "$(report_field version)" = 1.2.0 ] || fail "reverted version not reported: $out"
: > "$RUNLOG"
expect_ok "boot: still 1.1.0" boot_once
[ "$(cat "$RUNLOG")" = "1.1.0 slot=b trial=0" ] || fail "booted: $(cat "$RUNLOG")"
pass "a reverted release offered again is not staged again"

# A trial that never confirms is killed at its deadline and reverted. Issued after the
# reverted 1.2.0, it is staged normally.
make_image "$T/v4.sh" 1.3.0
sed -i 's/^if \[ "\$MOAT_BOOT_TRIAL" = 1 \].*$/exec sleep 30/' "$T/v4.sh"
after_issue "$T/v3.json"
sign "$T/v4.sh" 1.3.0 3 "$T/v4.json"
offer "$T/v4.sh" "$T/v4.json"
expect_ok "update to silent 1.3.0 (issued after the reverted 1.2.0)" update
assert_contains "$out" "staged"
[ "$(state_field trial)" = a ] || fail "1.3.0 not on trial in slot a"
: > "$RUNLOG"
expect_ok "boot: deadline passes, reverted" moat-boot --state "$S" --trial-seconds 2 -- image
assert_contains "$errout" "event=deadline"
assert_contains "$(last_run)" "1.1.0 slot=b trial=0"
[ "$(state_field active)" = b ] || fail "active slot not b after the deadline"
[ "$(state_field reverted_issued_at)" = "$(manifest_field "$T/v4.json" issued_at)" ] ||
	fail "the deadline revert did not record 1.3.0's issued_at"
pass "trial without confirmation reverted at its deadline"
