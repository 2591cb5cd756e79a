#!/usr/bin/env bash
# test_backup.sh: `moat backup` of a running deployment (moat up: Mosquitto with the plugin,
# moatd) while a device publishes, then `moat restore` into a fresh directory and `moat up`
# of the restored copy once the first is down: the device connects and its telemetry
# reaches a service, a revocation made before the backup still holds, the registry is as
# it was at the backup (a device added after it is absent), moatd answers, keys are 0600,
# and the restore refuses a non-empty target and a tampered archive, leaving nothing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_moatd.sh"
broker_require
command -v curl >/dev/null || skip "curl not installed"
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"
broker_deploy
moat identity add backend-service --role service >/dev/null
moat device add dev-c >/dev/null
expect_ok "revoke dev-b" moat device revoke dev-b
expect_ok "firmware signing key" moat fw keygen
moat fw trust --threshold 1 >/dev/null
# the device below connects once per message (mosquitto_pub): more connects than the
# flapping limit allows while a slow backup runs (0: off)
printf '\n[policy]\nflap_connects = 0\n' >>"$D/moat.conf"
moat_up_test
wait_for 20 grep -q "event=listening addr=127.0.0.1 port=$SERVER_PORT" "$D/log/moatd.log" ||
	fail "moatd not listening: $(tail -5 "$D/log/moatd.log")"
broker_sub_bg svc-1 svc-1 "$T/svc.out" 'devices/+/telemetry'
broker_pub dev-a dev-a devices/dev-a/telemetry '{"device_id":"dev-a","telemetry":{"n":0}}'
broker_wait_line "$T/svc.out" '{"device_id":"dev-a","telemetry":{"n":0}}'

# The device keeps publishing while the backup is taken (bounded: at most 60 messages).
(
	for i in $(seq 1 60); do
		[ -e "$T/stop" ] && break
		broker_pub dev-a dev-a devices/dev-a/telemetry "{\"device_id\":\"dev-a\",\"telemetry\":{\"n\":$i}}" ||
			exit 1
	done
) &
PUB=$!
E2E_PIDS+=("$PUB")
broker_wait_line "$T/svc.out" '"telemetry":{"n":1}'
expect_ok "backup while running" moat backup "$T/backup.tgz"
assert_contains "$out" "backup $T/backup.tgz"
[ "$(mode_of "$T/backup.tgz")" = 600 ] || fail "backup mode $(mode_of "$T/backup.tgz")"
touch "$T/stop"
wait "$PUB" || fail "the device's publishes failed while the backup ran"
ls -a "$T" | qgrep moat-backup && fail "temporary files left beside the backup"
tar tzf "$T/backup.tgz" >"$T/members"
[ "$(head -1 "$T/members")" = moat-backup.manifest ] || fail "manifest not first"
grep -q '^pki/ca.key$' "$T/members" || fail "no pki/ca.key in the backup"
grep -q '^registry.db$' "$T/members" || fail "no registry.db in the backup"
grep -qE '^(run|log)(/|$)' "$T/members" && fail "run/ or log/ in the backup"
tar xzf "$T/backup.tgz" -O pki/ca.key | qgrep "ENCRYPTED PRIVATE KEY" ||
	fail "the CA key is not encrypted in the backup"
pass "a backup of the running deployment: manifest first, CA key encrypted, no run/ or log/"

# After the backup: a device the restored copy must not know.
moat device add dev-late >/dev/null

# Refusals: a non-empty target, a tampered archive; nothing is left behind.
mkdir "$T/full" && touch "$T/full/x"
expect_fail "restore into a non-empty directory" moat restore "$T/backup.tgz" --dir "$T/full"
assert_contains "$errout" "not empty"
[ "$(ls "$T/full")" = x ] || fail "non-empty target changed"
python3 - "$T/backup.tgz" "$T/tampered.tgz" <<'EOF'
import gzip, sys
raw = bytearray(gzip.decompress(open(sys.argv[1], "rb").read()))
i = raw.find(b"BEGIN CERTIFICATE")  # a byte inside a member, not the manifest
raw[i + 30] ^= 1
open(sys.argv[2], "wb").write(gzip.compress(bytes(raw)))
EOF
expect_fail "restore a tampered archive" moat restore "$T/tampered.tgz" --dir "$T/r"
assert_contains "$errout" "SHA-256 differs from the manifest"
[ ! -e "$T/r" ] || fail "a refused restore left $T/r"
ls "$T" | qgrep 'r.restore-' && fail "a refused restore left its staging directory"
head -c 2000 "$T/backup.tgz" >"$T/cut.tgz"
expect_fail "restore a truncated archive" moat restore "$T/cut.tgz" --dir "$T/r"
[ ! -e "$T/r" ] || fail "a refused restore left $T/r"

# mosquitto_sub reconnects on its own: left running, the first subscriber would come back
# to the restored broker as svc-1 and take the client id over from the second one.
stop_pids "$BROKER_SUB_PID"
expect_ok "down (first deployment)" moat down --timeout "$(deadline 20s)"
expect_ok "restore" moat restore "$T/backup.tgz" --dir "$T/r"
R="$T/r"
fwkey=$(cd "$D" && ls firmware/keys/*.key)
for k in pki/ca.key pki/issuer.key pki/identities/dev-a/key.pem $fwkey; do
	[ "$(mode_of "$R/$k")" = 600 ] || fail "$k restored with mode $(mode_of "$R/$k")"
	cmp -s "$D/$k" "$R/$k" || fail "$k differs after restore"
done
cmp -s "$D/firmware/keys/trust.json" "$R/firmware/keys/trust.json" || fail "trust.json differs"
if [ "$(id -u)" -eq 0 ]; then
	# the ownership model of a deployment run by root: moatd's account owns the registry
	[ "$(stat -c %U "$R/registry.db")" = moat ] ||
		fail "restored registry.db owned by $(stat -c %U "$R/registry.db"), not moatd's account"
	[ "$(stat -c %U "$R/pki/ca.key")" = root ] || fail "restored pki/ca.key not root's"
fi
pass "restored: keys 0600 and as they were (CA and firmware keys still encrypted), owners per the model"
expect_ok "device list (restored)" moat --dir "$R" --json device list
devs=$out
[ "$(jq -r '.[] | select(.id=="dev-b") | .status' <<<"$devs")" = revoked ] ||
	fail "dev-b not revoked in the restored registry: $devs"
[ "$(jq -r '.[] | select(.id=="dev-c") | .status' <<<"$devs")" = active ] ||
	fail "dev-c missing from the restored registry: $devs"
assert_not_contains "$devs" "dev-late"
pass "the restored registry is the one at the backup (revocation kept, later device absent)"

export MOAT_DIR="$R" D="$R"
on_exit "moat --dir '$R' down --timeout $(deadline 20s)"
# shellcheck disable=SC2046
expect_ok "up (restored)" $(plugin_mosquitto_env) moat up --timeout "$(deadline 30s)"
wait_for 20 grep -q "event=listening addr=127.0.0.1 port=$SERVER_PORT" "$R/log/moatd.log" ||
	fail "restored moatd not listening: $(tail -5 "$R/log/moatd.log")"
expect_status 204 "restored moatd answers dev-a" dev-a "$(url /api/firmware/version)"
broker_sub_bg svc-1 svc-1 "$T/svc2.out" 'devices/+/telemetry'
broker_pub dev-a dev-a devices/dev-a/telemetry '{"device_id":"dev-a","telemetry":{"n":"restored"}}'
broker_wait_line "$T/svc2.out" '"telemetry":{"n":"restored"}'
pass "the device connects to the restored deployment and its telemetry reaches a service"
expect_fail "revoked dev-b on the restored broker" \
	broker_pub dev-b dev-b devices/dev-b/telemetry '{"device_id":"dev-b","telemetry":{}}'
pass "a revocation made before the backup still holds after restore"
