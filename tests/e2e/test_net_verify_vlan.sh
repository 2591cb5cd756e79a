#!/usr/bin/env bash
# test_net_verify_vlan.sh: `moat net verify` on real 802.1Q devices. This machine's kernel may
# lack CONFIG_VLAN_8021Q (verify then falls back to plain bridges and proves no tagging), so
# the run happens in a QEMU guest booted from Debian's kernel, where 8021q is a module: the
# zones' hosts sit on VLAN sub-interfaces of veth trunks, and the proof must say "tagged":
# true, pass every row, and show the host sending untagged frames and the one tagging with the
# management VLAN on the IoT port reaching nothing. Skipped (77) without root, QEMU, busybox
# or a Debian kernel (all from scripts/bootstrap).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_qemu.sh"

[ "$(id -u)" -eq 0 ] || skip "needs root (the guest runs verify as root; 9p maps files as is)"
qemu_need

# The deployment is made here; the guest sees it at the same path (its writes stay in the
# guest's overlay).
D="$T/d"
moat init --dir "$D" --name e2e --broker-port 8883 --server-port 8443 >/dev/null

cat >"$T/guest.sh" <<GUEST
# pid 1 in the guest: runs verify, writes the result to ttyS1 and powers off.
export PATH="$MOAT_BUILD:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export MOAT_DIR="$D" MOAT_CA_PASSPHRASE="$MOAT_CA_PASSPHRASE" HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs -o mode=0755 run /run
mkdir -p /run/netns /run/lock
for m in 8021q veth bridge nf_tables nf_tables_bridge nft_ct nft_limit nft_log nft_reject \\
	nft_reject_inet nft_reject_bridge nf_log_syslog nft_counter nft_fib_inet nft_masq nft_chain_nat; do
	modprobe \$m 2>/dev/null || echo "guest: no module \$m"
done
verify_rc=0
moat net verify --json >/tmp/verify.json 2>/tmp/verify.err || verify_rc=\$?
exec 3>/dev/ttyS1
stty -F /dev/ttyS1 raw -echo 2>/dev/null
{
	echo "moat-kernel \$(uname -r)"
	echo "moat-rc \$verify_rc"
	echo "moat-err-begin"
	cat /tmp/verify.err
	echo "moat-err-end"
	echo "moat-json-begin"
	cat /tmp/verify.json
	echo "moat-json-end"
} >&3
exec 3>&-
echo o >/proc/sysrq-trigger
sleep 60
GUEST

start=$(date +%s)
qemu_run "$(deadline 400)" "$T/guest.sh" "$T/result" || true
elapsed=$(($(date +%s) - start))
tr -d '\r' <"$T/result" >"$T/result.txt" 2>/dev/null || :
grep -q '^moat-json-end$' "$T/result.txt" ||
	fail "the guest gave no result in ${elapsed}s; console: $(tail -30 "$T/qemu-console.log" 2>/dev/null) $(cat "$T/qemu.out")"
sed -n 's/^moat-kernel //p' "$T/result.txt" | qgrep . || fail "no guest kernel line"
rc=$(sed -n 's/^moat-rc //p' "$T/result.txt")
errout=$(sed -n '/^moat-err-begin$/,/^moat-err-end$/p' "$T/result.txt" | sed '1d;$d')
sed -n '/^moat-json-begin$/,/^moat-json-end$/p' "$T/result.txt" | sed '1d;$d' >"$T/verify.json"
[ "$rc" = 0 ] || fail "verify in the guest: exit $rc: $errout"$'\n'"$(cat "$T/verify.json")"

python3 - "$T/verify.json" <<'PY' || fail "verify --json in the guest: $(cat "$T/verify.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["tagged"] is True, "not tagged: %r" % r["tagged"]
assert r["mismatches"] == 0, r["mismatches"]
probes = r["probes"]
assert len(probes) > 20, len(probes)
bad = [p for p in probes if not p["ok"]]
assert not bad, bad
def rows(src):
    return [p for p in probes if p["from"] == src]
# The rogue hosts on the IoT trunk port: untagged, and tagged with the management VLAN.
for rogue in ("iot-untagged", "iot-tag10"):
    rs = rows(rogue)
    assert rs, "no rows from " + rogue
    assert all(p["observed"] == "blocked" for p in rs), rs
    assert any(p["to"] == "broker" for p in rs), rogue + " never tried the broker"
    assert any(p["to"] == "gateway" for p in rs) or rogue == "iot-tag10", rogue + " never tried the gateway"
# A host on the IoT VLAN reaches the broker on its ports and nothing else of management.
def one(src, dst, port, proto="tcp"):
    m = [p for p in probes if p["from"] == src and p["to"] == dst and p["port"] == port
         and p["protocol"] == proto and not p["flood"]]
    assert m, (src, dst, port, proto)
    return m[0]["observed"]
assert one("iot-1", "broker", 8883) == "open"
assert one("iot-1", "broker", 8443) == "open"
assert one("iot-1", "broker", 2222) == "blocked"
assert one("iot-1", "iot-2", 8883) == "blocked"
# on tagged ports too: IoT to IoT at link-local and self-given addresses, closed by port
peers = [p for p in probes if p["peer"] and p["from"] == "iot-1" and p["to"] == "iot-2"]
assert len(peers) == 3 and all(p["observed"] == "blocked" for p in peers), peers
assert any(p["dst"].startswith("fe80:") for p in peers), peers
assert one("guest-1", "broker", 8883) == "blocked"
assert one("guest-1", "iot-1", 8883) == "blocked"
assert any(p["from"] == "mgmt" and p["to"] == "iot-2" and p["observed"] == "open" for p in probes)
assert any(p["flood"] and p["observed"] == "limited" for p in probes)
assert r["logged_drops"] > 0, r["logged_drops"]
PY
pass "802.1Q verify in a $(sed -n 's/^moat-kernel //p' "$T/result.txt") guest: tagged, every row ok, rogue hosts reach nothing (${elapsed}s)"
