#!/usr/bin/env bash
# test_cli_edges.sh: the rough edges of the moat command an operator meets day to day:
# --json on every command that prints a list or a result (each answer parses as JSON),
# messages that read right, exports that never overwrite without --force and write all or
# nothing (p12 without a password creates nothing), the c-header export (compiled with cc,
# with the broker's host and port), and progress on a terminal only.
source "$(dirname "$0")/lib.sh"

e2e_init
export MOAT_FW_PASSPHRASE="fw-e2e-signing-passphrase"

# is_json WHAT TEXT: TEXT is one JSON document.
is_json() {
	printf '%s' "$2" | python3 -c 'import json, sys; json.load(sys.stdin)' ||
		fail "$1: not JSON: $2"
}
# json_get TEXT EXPR: python expression EXPR over the parsed document j.
json_get() { printf '%s' "$1" | python3 -c "import json, sys; j = json.load(sys.stdin); print($2)"; }

# ---- --json everywhere a command prints a list or a result ----
expect_ok "init --json" moat --json init --dir "$T/d2" --name other --broker-port "$(free_port)" \
	--server-port "$(free_port)"
is_json "init" "$out"
[ "$(json_get "$out" 'j["result"]')" = created ] || fail "init --json: $out"
expect_ok "device add --json" moat --json device add dev1
is_json "device add" "$out"
[ "$(json_get "$out" 'j["added"][0]["id"]')" = dev1 ] || fail "device add --json: $out"
expect_ok "bulk add --json" moat device add --prefix bulk --count 3 --json
is_json "bulk add" "$out"
[ "$(json_get "$out" 'len(j["added"])')" = 3 ] || fail "bulk add --json: $out"
expect_ok "identity add --json" moat --json identity add svc1 --role service
is_json "identity add" "$out"
for cmd in "device list" "device show dev1" "identity list" "cert expiring" "cert crl" \
	"device renew dev1" "device disable bulk-000001" "device enable bulk-000001" \
	"device unban bulk-000001" "device revoke bulk-000002" "device delete bulk-000003" \
	"cert server renew" "fw keygen" "fw trust" "fw list" "fw status" "broker config" \
	"ca claim list"; do
	run_captured moat --json $cmd
	[ $run_rc -eq 0 ] || fail "moat --json $cmd: exit $run_rc: $errout"
	is_json "$cmd" "$out"
	echo "ok - moat --json $cmd is JSON"
done
expect_ok "cert crl --json" moat cert crl --json
[ "$(json_get "$out" 'j["crl"]')" = pki/crl.pem ] || fail "cert crl --json: $out"
[ -n "$(json_get "$out" 'j["next_update"]')" ] || fail "cert crl --json: no next_update"
expect_ok "revoked reason in --json" moat --json device revoke bulk-000001 --reason superseded
[ "$(json_get "$out" 'j["reason"]')" = superseded ] || fail "revoke --json: $out"

# ---- messages read right ----
expect_ok "nothing within 1 day" moat cert expiring --within 1
[ "$out" = "nothing expires within 1 day" ] || fail "expiring --within 1: '$out'"
expect_ok "nothing within 12 hours" moat cert expiring --within 12h
[ "$out" = "nothing expires within 12 hours" ] || fail "expiring --within 12h: '$out'"
expect_ok "nothing within 30 days" moat cert expiring
[ "$out" = "nothing expires within 30 days" ] || fail "expiring: '$out'"

# ---- exports: never overwrite without --force, all or nothing ----
expect_ok "help names MOAT_EXPORT_PASSWORD" moat device --help
assert_contains "$out" "MOAT_EXPORT_PASSWORD"
assert_contains "$out" "--force"
expect_ok "identity help names MOAT_EXPORT_PASSWORD" moat identity --help
assert_contains "$out" "MOAT_EXPORT_PASSWORD"

expect_ok "export pem" moat device export dev1 --out "$T/pem"
sum_before=$(cat "$T/pem/cert.pem" "$T/pem/key.pem" "$T/pem/ca.crt" | sha256sum)
expect_ok "renew dev1" moat device renew dev1
expect_fail "export over existing files" moat device export dev1 --out "$T/pem"
assert_contains "$errout" "exists"
assert_contains "$errout" "--force"
[ "$(cat "$T/pem/cert.pem" "$T/pem/key.pem" "$T/pem/ca.crt" | sha256sum)" = "$sum_before" ] ||
	fail "a refused export changed the files"
# one file in the way: none of the others is written either
mkdir "$T/part" && echo keep >"$T/part/key.pem"
expect_fail "export with key.pem in the way" moat device export dev1 --out "$T/part"
[ "$(ls -A "$T/part")" = key.pem ] || fail "a refused export left files: $(ls -A "$T/part")"
[ "$(cat "$T/part/key.pem")" = keep ] || fail "a refused export touched key.pem"
expect_ok "export --force" moat device export dev1 --out "$T/pem" --force
[ "$(cat "$T/pem/cert.pem" "$T/pem/key.pem" "$T/pem/ca.crt" | sha256sum)" != "$sum_before" ] ||
	fail "--force did not write the renewed credentials"
[ "$(mode_of "$T/pem/key.pem")" = 600 ] || fail "key.pem mode after --force"
ls -A "$T/pem" | qgrep moat-export && fail "staging files left: $(ls -A "$T/pem")"

# p12 without a password: refused before anything is created
expect_fail "p12 without a password" env -u MOAT_EXPORT_PASSWORD \
	moat device export dev1 --out "$T/p12" --format p12
assert_contains "$errout" "MOAT_EXPORT_PASSWORD"
[ ! -e "$T/p12" ] || fail "a refused p12 export created $T/p12"
expect_ok "p12 with MOAT_EXPORT_PASSWORD" env MOAT_EXPORT_PASSWORD=p12-password-e2e \
	moat device export dev1 --out "$T/p12" --format p12
openssl pkcs12 -in "$T/p12/dev1.p12" -passin pass:p12-password-e2e -noout ||
	fail "the p12 does not open with its password"
expect_fail "p12 again without --force" env MOAT_EXPORT_PASSWORD=p12-password-e2e \
	moat device export dev1 --out "$T/p12" --format p12

# ---- the c-header: valid C, with the broker's host and port and the rules ----
expect_ok "export c-header" moat device export dev1 --out "$T/hdr" --format c-header
H="$T/hdr/moat_credentials.h"
assert_contains "$(cat "$H")" "#define MOAT_BROKER_HOST \"localhost\""
assert_contains "$(cat "$H")" "#define MOAT_BROKER_PORT $BROKER_PORT"
assert_contains "$(cat "$H")" "client id = DEVICE_ID"
assert_contains "$(cat "$H")" "devices/dev1/commands/#"
assert_contains "$(cat "$H")" "\"device_id\" is DEVICE_ID"
cat >"$T/hdr/main.c" <<'EOF'
#include <stdio.h>
#include "moat_credentials.h"
int main(void)
{
	printf("%s %s:%d %d %zu\n", DEVICE_ID, MOAT_BROKER_HOST, MOAT_BROKER_PORT,
	       MOAT_MAX_PAYLOAD, sizeof(DEVICE_KEY) > 100 ? (size_t)1 : (size_t)0);
	return 0;
}
EOF
cc -std=c11 -Wall -Wextra -Werror -I"$T/hdr" -o "$T/hdr/main" "$T/hdr/main.c" ||
	fail "the c-header does not compile"
[ "$("$T/hdr/main")" = "dev1 localhost:$BROKER_PORT 8192 1" ] ||
	fail "the compiled header says: $("$T/hdr/main")"
pass "the c-header compiles and names the broker"

# ---- bulk work: progress on a terminal, quiet otherwise ----
expect_ok "bulk add, not a terminal" moat device add --prefix quiet --count 40
[ -z "$errout" ] || fail "bulk add printed on a non-terminal stderr: $errout"
expect_ok "bulk export, not a terminal" moat device export --all --out "$T/all"
[ -z "$errout" ] || fail "bulk export printed on a non-terminal stderr: $errout"
[ -f "$T/all/quiet-000040/key.pem" ] && [ -f "$T/all/dev1/cert.pem" ] ||
	fail "bulk export missed devices: $(ls "$T/all" | head)"
[ ! -e "$T/all/svc1" ] || fail "device export --all exported a service"
assert_contains "$out" "devices (pem) to"
expect_fail "bulk export again without --force" moat device export --all --out "$T/all"
# script(1) gives the command a pseudo-terminal: the progress bar goes there
script -qec "moat device add --prefix tty --count 40" "$T/tty.log" >/dev/null ||
	fail "bulk add on a terminal failed: $(cat "$T/tty.log")"
grep -q "100% 40/40" "$T/tty.log" || fail "no progress on a terminal: $(cat "$T/tty.log")"
script -qec "moat device export --all --out $T/all2" "$T/tty2.log" >/dev/null ||
	fail "bulk export on a terminal failed: $(cat "$T/tty2.log")"
grep -q "100% " "$T/tty2.log" || fail "no export progress on a terminal: $(cat "$T/tty2.log")"
pass "progress on a terminal only"

# ---- a deployment on a read-only file system can still be read ----
# As root: a read-only bind mount in a mount namespace of its own (root ignores chmod). Else
# a directory without write permission, which is what the open checks too.
cat >"$T/ro.sh" <<EOF
set -e
export PATH="$PATH" MOAT_DIR="$D"
touch "$D/.probe" 2>/dev/null && { echo "still writable"; exit 9; }
moat device list >"$T/ro.list"
moat --json device list >"$T/ro.json"
moat device show dev1 >"$T/ro.show"
moat cert expiring --within 1 >"$T/ro.expiring"
moat net plan >"$T/ro.plan"
moat status >"$T/ro.status" 2>&1 || true
grep -q "not a moat registry" "$T/ro.status" && { cat "$T/ro.status"; exit 7; }
moat device add never 2>"$T/ro.add" && { echo "a write succeeded"; exit 6; }
ls -A "$D" >"$T/ro.ls"
EOF
if [ "$(id -u)" = 0 ]; then
	unshare -m bash -c "mount --make-rprivate / && mount --bind '$D' '$D' &&
		mount -o remount,ro,bind '$D' && bash '$T/ro.sh'" >"$T/ro.out" 2>&1 ||
		fail "reading a read-only deployment: $(cat "$T/ro.out")"
else
	chmod a-w "$D"
	bash "$T/ro.sh" >"$T/ro.out" 2>&1 || { chmod u+w "$D"; fail "read-only: $(cat "$T/ro.out")"; }
	chmod u+w "$D"
fi
grep -q "^dev1 " "$T/ro.list" || fail "device list on a read-only deployment: $(cat "$T/ro.list")"
is_json "read-only device list" "$(cat "$T/ro.json")"
grep -q "^id: *dev1" "$T/ro.show" || fail "device show: $(cat "$T/ro.show")"
grep -q "nothing expires within 1 day" "$T/ro.expiring" || fail "expiring: $(cat "$T/ro.expiring")"
grep -q "table inet moat" "$T/ro.plan" || fail "net plan: $(head -5 "$T/ro.plan")"
grep -q "Read-only file system\|Permission denied" "$T/ro.add" ||
	fail "the refused write said: $(cat "$T/ro.add")"
grep -q "registry.db-shm\|registry.db-wal" "$T/ro.ls" && fail "SQLite side files on the read-only mount"
pass "device list, show, cert expiring, net plan and status read a read-only deployment"
# ---- every duration option needs its unit (moat_duration_ms_parse), as update_interval does:
# a bare number is refused with a line naming the option, before anything runs ----
for c in "sim dev1 --interval" "sim dev1 --duration" "cmd dev1 diagnostics --timeout" \
	"watch dev1 --timeout" "up --timeout" "down --timeout"; do
	opt=${c##* }
	expect_fail "$c 2" moat $c 2
	case $errout in
	*"$opt: '2': give a unit (e.g. 500ms, 30s, 5m, 1h): a bare number is ambiguous"*) ;;
	*) fail "$c 2 said: $errout" ;;
	esac
done
expect_fail "sim --interval 1500ms" moat sim dev1 --interval 1500ms
[[ $errout == *"--interval: '1500ms' is not whole seconds from 1 second to 1 day"* ]] ||
	fail "sim --interval 1500ms said: $errout"
expect_fail "sim --interval 2d" moat sim dev1 --interval 2d
[[ $errout == *"--interval: '2d' is not whole seconds"* ]] || fail "sim --interval 2d: $errout"
expect_fail "cmd --timeout 2h" moat cmd dev1 diagnostics --timeout 2h
[[ $errout == *"--timeout: '2h' is not whole seconds from 1 second to 1 hour"* ]] ||
	fail "cmd --timeout 2h said: $errout"
expect_fail "down --timeout 0s" moat down --timeout 0s
[[ $errout == *"--timeout: '0s' is not whole seconds"* ]] || fail "down --timeout 0s: $errout"
pass "duration options: a bare number, a fraction of a second and out of range are refused"
pass "cli edges"
