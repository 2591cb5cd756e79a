#!/usr/bin/env bash
# A full disk: moat init and a bulk add on a tiny tmpfs fail with a clear error and leave the
# deployment consistent (no key without its registry row, no row without its files).
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || skip "needs root to mount a tmpfs"
mkdir -p "$T/small"
mount -t tmpfs -o size=600k,nr_inodes=4000 tmpfs "$T/small" 2>/dev/null || skip "cannot mount a tmpfs here"
on_exit "umount -l '$T/small'"

D="$T/small/d"
expect_ok "init on a small filesystem" moat init --dir "$D" --name full
export MOAT_DIR="$D"
expect_ok "one device" moat device add first
# fill what is left with a bulk add far larger than the space
expect_fail "bulk add on a full disk" moat device add --prefix fill --count 20000
assert_contains "$errout" "No space left on device"
rows=$(moat --json identity list | python3 -c 'import json,sys; print("\n".join(sorted(x["id"] for x in json.load(sys.stdin))))')
dirs=$(ls "$D/pki/identities" | sort)
[ "$rows" = "first" ] || fail "registry changed by a failed bulk add: $rows"
[ "$dirs" = "first" ] || fail "files left by a failed bulk add: $(echo $dirs | head -c 200)"
! ls -d "$D"/pki/.staging-* >/dev/null 2>&1 || fail "staging left behind"
openssl verify -CAfile "$D/pki/ca.crt" -untrusted "$D/pki/identities/first/cert.pem" "$D/pki/identities/first/cert.pem" >/dev/null ||
	fail "first device damaged"
pass "bulk add on a full disk: refused, nothing added"

# init on a full disk: fails and leaves no half deployment
dd if=/dev/zero of="$T/small/ballast" bs=4k count=1000 2>/dev/null || true
expect_fail "init on a full disk" moat init --dir "$T/small/d2"
[ ! -e "$T/small/d2" ] || fail "failed init left $T/small/d2"
pass "init on a full disk: refused, nothing left"
