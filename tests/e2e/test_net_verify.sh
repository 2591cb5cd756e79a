#!/usr/bin/env bash
# test_net_verify.sh: `moat net verify` proves the policy with real TCP connections in
# throwaway namespaces: the default policy of a fresh deployment and a custom one with more
# zones hold (exit 0, every row ok, drops logged); a ruleset broken on its way into nft is
# caught (exit 1, MISMATCH rows); SIGINT and SIGTERM in the middle leave no namespace behind;
# namespaces left by a killed run are removed by the next. Two hosts of one zone on one
# bridge reach each other neither over link-local IPv6 nor over addresses of no zone they
# give themselves, and a ruleset without the bridge-port rules is caught. Skipped (77) without root,
# namespaces, bridges or the nftables bridge family.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_net.sh"

net_need_namespaces
net_deploy

# run_verify ARGS...: runs moat net verify in the background so its pid (the namespace
# prefix) is known; sets $rc, $out, $errout and checks that nothing was left behind.
run_verify() {
	moat net verify "$@" >"$T/verify.out" 2>"$T/verify.err" &
	local pid=$!
	set +e
	wait $pid
	rc=$?
	set -e
	out=$(cat "$T/verify.out")
	errout=$(cat "$T/verify.err")
	[ -z "$(net_leftovers $pid)" ] || fail "namespaces left behind: $(net_leftovers $pid)"
}

run_verify
[ $rc -eq 0 ] || fail "verify of the default policy: exit $rc: $errout"$'\n'"$out"
KERNEL_TAGS=0
printf '%s\n' "$out" | qgrep "no 802.1Q devices" || KERNEL_TAGS=1
assert_contains "$out" ", 0 mismatches,"
assert_not_contains "$out" "MISMATCH"
# row FROM TO 'ADDRESS EXPECTED OBSERVED': the first matching IPv4 row; row6: IPv6.
row() { printf '%s\n' "$out" | grep -E "^$1 +$2 +v4 +$3 " | head -1; }
row6() { printf '%s\n' "$out" | grep -E "^$1 +$2 +v6 +$3 " | head -1; }
assert_contains "$(row iot-1 iot-2 '10.77.10.3:8883 +blocked +blocked')" " ok"
assert_contains "$(row iot-1 broker '10.77.1.10:8883 +open +open')" " ok"
# moatd beside the broker (the day-one layout): the update server is the broker's address.
assert_contains "$(row iot-1 broker '10.77.1.10:8443 +open +open')" " ok"
assert_contains "$(row iot-1 broker '10.77.1.10:2222 +blocked +blocked')" " ok"
# A host on the IoT trunk port sending untagged frames with an IoT address reaches nothing;
# where the kernel has 802.1Q, one tagging with the management VLAN reaches nothing either.
assert_contains "$(row iot-untagged broker '10.77.1.10:8883 +blocked +blocked')" " ok"
assert_contains "$(row iot-untagged iot-1 '[0-9.:]+ +blocked +blocked')" " ok"
# The gateway itself: DNS, NTP and DHCP for every zone, anything else from management only.
assert_contains "$(row iot-1 gateway '10.77.10.1:53/udp +open +open')" " ok"
assert_contains "$(row iot-1 gateway '10.77.10.1:53 +open +open')" " ok"
assert_contains "$(row iot-1 gateway '10.77.10.1:123/udp +open +open')" " ok"
assert_contains "$(row iot-1 gateway '10.77.10.1:67/udp +open +open')" " ok"
assert_contains "$(row iot-1 gateway '10.77.10.1:2222 +blocked +blocked')" " ok"
assert_contains "$(row guest-1 gateway '10.77.20.1:2222 +blocked +blocked')" " ok"
assert_contains "$(row mgmt gateway '10.77.1.1:2222 +open +open')" " ok"
assert_contains "$(row outside gateway '[0-9.]+:53/udp +blocked +blocked')" " ok"
assert_contains "$(row outside gateway '[0-9.]+:2222 +blocked +blocked')" " ok"
assert_contains "$(row iot-untagged gateway '10.77.10.1:53/udp +blocked +blocked')" " ok"
if [ $KERNEL_TAGS = 1 ]; then
	assert_contains "$(row iot-tag10 broker '10.77.1.10:8883 +blocked +blocked')" " ok"
	assert_contains "$(row iot-tag10 mgmt '[0-9.:]+ +blocked +blocked')" " ok"
else
	echo "note: this kernel has no 802.1Q (CONFIG_VLAN_8021Q): tagged rows not run"
	assert_not_contains "$out" "iot-tag10"
fi
assert_contains "$(row iot-1 guest-1 '[0-9.:]+ +blocked +blocked')" " ok"
assert_contains "$(row iot-1 outside '[0-9.:]+ +blocked +blocked')" " ok"
assert_contains "$(row guest-1 guest-2 '[0-9.:]+ +blocked +blocked')" " ok"
assert_contains "$(row guest-1 outside '[0-9.:]+ +open +open')" " ok"
assert_contains "$(row guest-1 broker '[0-9.:]+ +blocked +blocked')" " ok"
assert_contains "$(row mgmt iot-2 '[0-9.:]+ +open +open')" " ok"
assert_contains "$(row outside broker '[0-9.:]+ +blocked +blocked')" " ok"
assert_contains "$(row iot-1 broker '10.77.1.10:8883 +limited +limited')" "(connection flood)"
# Hosts of one zone on one bridge, at addresses they chose themselves: closed by the bridge
# ports, not by address. The same hosts still reach the broker and the gateway (above).
for pair in "iot-1 iot-2" "iot-2 iot-1" "guest-1 guest-2"; do
	set -- $pair
	assert_contains "$(row6 $1 $2 '\[fe80::77:[0-9a-f]+\]:8883 +blocked +blocked')" "ok (link-local)"
	assert_contains "$(row $1 $2 '198\.18\.77\.[0-9]+:8883 +blocked +blocked')" "ok (address of no zone)"
	assert_contains "$(row6 $1 $2 '\[fdff:77::[0-9a-f]+\]:8883 +blocked +blocked')" "ok (address of no zone)"
done
# no zone has an IPv6 prefix by default: the only IPv6 rows are those of the hosts' own
assert_not_contains "$(printf '%s\n' "$out" | grep ' v6 ' | grep -vE '\[(fe80::77|fdff:77::)')" " v6 "
drops=$(printf '%s\n' "$out" | grep ' drops logged$' | sed -n 's/.* \([0-9]*\) drops logged$/\1/p')
[ -n "$drops" ] && [ "$drops" -gt 0 ] || fail "no logged drops counted: $(printf '%s\n' "$out" | grep ' drops logged$')"
pass "default policy holds ($(printf '%s\n' "$out" | grep ' drops logged$'))"

# JSON form of the same matrix.
run_verify --json
[ $rc -eq 0 ] || fail "verify --json: exit $rc: $errout"
printf '%s' "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["mismatches"] == 0, r["mismatches"]
assert len(r["probes"]) > 20
assert all(p["ok"] for p in r["probes"])
assert any(p["flood"] and p["observed"] == "limited" for p in r["probes"])
assert all(p["family"] == "ipv4" for p in r["probes"] if not p["peer"])
assert any(p["peer"] and p["family"] == "ipv6" and p["observed"] == "blocked" for p in r["probes"])
' || fail "verify --json output"
printf '%s' "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["tagged"] == (sys.argv[1] == "1"), r["tagged"]
' $KERNEL_TAGS || fail "verify --json: tagged"
pass "verify --json"

# The day-one layout of docs/OPERATIONS.md: the broker host given by address. Whatever an
# exported agent is told to use for updates must be open from the IoT zone.
D1="$T/day1"
moat init --dir "$D1" --name day1 --broker-host 10.77.1.10 >/dev/null
MOAT_DIR="$D1" moat device add sensor-1 >/dev/null
MOAT_DIR="$D1" moat device export sensor-1 --format agent --out "$T/sensor-1" >/dev/null
url=$(sed -n '/^\[update\]/,/^\[/s/^server = //p' "$T/sensor-1/agent.conf")
[ -n "$url" ] || fail "no [update] server in the exported agent.conf"
hostport=${url#https://}
MOAT_DIR="$D1" run_verify
[ $rc -eq 0 ] || fail "verify of the day-one layout: exit $rc: $errout"
assert_contains "$(row iot-1 broker "${hostport//./\\.} +open +open")" " ok"
pass "day one: devices reach the update server they are given ($url)"

cp "$D/moat.conf" "$T/moat.conf.default"
# More zones, several subnets per zone, a second device zone and a zone with no subnets.
net_custom_section 10.30.0.0/29 >>"$D/moat.conf"
run_verify
[ $rc -eq 0 ] || fail "verify of the custom policy: exit $rc: $errout"$'\n'"$out"
assert_contains "$(row cameras-1 iot-1 '[0-9.:]+ +blocked +blocked')" " ok"
assert_contains "$(row cameras-1 cameras-2 '[0-9.:]+ +blocked +blocked')" " ok"
assert_contains "$(row cameras-2 server '10.2.0.7:8443 +open +open')" " ok"
assert_contains "$(row lab-1 guest-1 '[0-9.:]+ +blocked +blocked')" " ok"
assert_contains "$(row lab-1 outside '[0-9.:]+ +open +open')" " ok"
pass "custom policy holds ($(printf '%s\n' "$out" | grep ' drops logged$'))"

# Dual stack: every pair probed over IPv6 as over IPv4, IoT <-> IoT on one bridge too.
cp "$D/moat.conf" "$T/moat.conf.custom"
cp "$T/moat.conf.default" "$D/moat.conf"
net_dual_section >>"$D/moat.conf"
run_verify
[ $rc -eq 0 ] || fail "verify of the dual-stack policy: exit $rc: $errout"$'\n'"$out"
assert_contains "$out" ", 0 mismatches,"
own='(link-local)|(address of no zone)'
v4rows=$(printf '%s\n' "$out" | grep -E '^[^ ]+ +[^ ]+ +v4 ' | grep -cvE "$own" || true)
v6rows=$(printf '%s\n' "$out" | grep -E '^[^ ]+ +[^ ]+ +v6 ' | grep -cvE "$own" || true)
# every row has its twin, but the connection flood (IPv4 only)
[ "$v6rows" -eq $((v4rows - 1)) ] || fail "dual stack: $v4rows IPv4 rows but $v6rows IPv6 rows"
assert_contains "$(row6 iot-1 iot-2 '\[fd00:77:10::3\]:8883 +blocked +blocked')" " ok"
assert_contains "$(row6 iot-1 broker '\[fd00:77:1::a\]:8883 +open +open')" " ok"
assert_contains "$(row6 iot-1 broker '\[fd00:77:1::a\]:8443 +open +open')" " ok"
assert_contains "$(row6 iot-1 broker '\[fd00:77:1::a\]:2222 +blocked +blocked')" " ok"
assert_contains "$(row6 iot-1 guest-1 '[][0-9a-f:]+ +blocked +blocked')" " ok"
assert_contains "$(row6 iot-1 outside '[][0-9a-f:]+ +blocked +blocked')" " ok"
assert_contains "$(row6 iot-1 gateway '\[fd00:77:10::1\]:53/udp +open +open')" " ok"
assert_contains "$(row6 iot-1 gateway '\[fd00:77:10::1\]:123/udp +open +open')" " ok"
assert_contains "$(row6 iot-1 gateway '\[fd00:77:10::1\]:2222 +blocked +blocked')" " ok"
assert_contains "$(row6 guest-1 guest-2 '[][0-9a-f:]+ +blocked +blocked')" " ok"
assert_contains "$(row6 guest-1 outside '[][0-9a-f:]+ +open +open')" " ok"
assert_contains "$(row6 guest-1 broker '[][0-9a-f:]+ +blocked +blocked')" " ok"
assert_contains "$(row6 mgmt iot-2 '[][0-9a-f:]+ +open +open')" " ok"
assert_contains "$(row6 mgmt gateway '[][0-9a-f:]+:2222 +open +open')" " ok"
assert_contains "$(row6 outside broker '[][0-9a-f:]+ +blocked +blocked')" " ok"
assert_contains "$(row6 outside gateway '[][0-9a-f:]+:2222 +blocked +blocked')" " ok"
assert_contains "$(row6 iot-untagged broker '[][0-9a-f:]+ +blocked +blocked')" " ok"
assert_contains "$(row6 iot-1 iot-2 '\[fe80::77:[0-9a-f]+\]:8883 +blocked +blocked')" "ok (link-local)"
assert_contains "$(row6 iot-2 gateway '\[fd00:77:10::1\]:53/udp +open +open')" " ok"
pass "dual-stack policy holds over IPv6 ($v6rows rows)"

run_verify --json
[ $rc -eq 0 ] || fail "verify --json of the dual-stack policy: exit $rc: $errout"
printf '%s' "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
six = [p for p in r["probes"] if p["family"] == "ipv6" and not p["peer"]]
four = [p for p in r["probes"] if p["family"] == "ipv4" and not p["peer"]]
assert any(p["peer"] and p["dst"].startswith("fe80::") and p["observed"] == "blocked" for p in r["probes"])
assert r["mismatches"] == 0 and len(six) == len(four) - 1, (len(six), len(four))
pair = [p for p in six if p["from"] == "iot-1" and p["to"] == "iot-2"]
assert pair and pair[0]["dst"] == "fd00:77:10::3" and pair[0]["observed"] == "blocked", pair
assert any(p["to"] == "broker" and p["dst"] == "fd00:77:1::a" and p["observed"] == "open" for p in six)
' || fail "verify --json of the dual-stack policy"
pass "verify --json shows the family"

REAL_NFT=$(command -v nft)
mkdir -p "$T/shim"
# Without the IPv6 half of the bridged device rule, IoT <-> IoT over IPv6 is open, only there.
cat >"$T/shim/nft" <<SHIM
#!/bin/sh
if [ "\$1" = "-f" ] && [ "\$2" = "-" ]; then
	sed -e '/ip6 saddr @device_zones6 ip6 daddr @device_zones6/d' \
		-e '/no frame between its bridge ports/d' | "$REAL_NFT" -f -
else
	exec "$REAL_NFT" "\$@"
fi
SHIM
chmod +x "$T/shim/nft"
PATH="$T/shim:$PATH" run_verify
[ $rc -ne 0 ] || fail "verify passed a ruleset without the IPv6 device rule"
assert_contains "$(row6 iot-1 iot-2 '[][0-9a-f:]+ +blocked +open')" "MISMATCH"
assert_contains "$(row iot-1 iot-2 '[0-9.:]+ +blocked +blocked')" " ok"
# (without the port rules, the rows at the hosts' own addresses are open too)
[ "$(printf '%s\n' "$out" | grep MISMATCH | grep -cvE "$own")" -eq 2 ] ||
	fail "IPv6 device rule: other rows broke too"
pass "a missing IPv6 rule is caught: $errout"
# Without every IPv6 rule (an IPv4-only ruleset), the allowed IPv6 paths fail.
cat >"$T/shim/nft" <<SHIM
#!/bin/sh
if [ "\$1" = "-f" ] && [ "\$2" = "-" ]; then
	sed -e '/ip6 saddr\\|ip6 daddr/d' -e '/no frame between its bridge ports/d' |
		"$REAL_NFT" -f -
else
	exec "$REAL_NFT" "\$@"
fi
SHIM
PATH="$T/shim:$PATH" run_verify
[ $rc -ne 0 ] || fail "verify passed an IPv4-only ruleset of a dual-stack policy"
assert_contains "$(row6 iot-1 broker '[][0-9a-f:]+:8883 +open +blocked')" "MISMATCH"
assert_contains "$(row6 iot-1 iot-2 '[][0-9a-f:]+ +blocked +open')" "MISMATCH"
assert_contains "$(row iot-1 broker '[0-9.]+:8883 +open +open')" " ok"
pass "an IPv4-only ruleset is caught"
cp "$T/moat.conf.custom" "$D/moat.conf"

# A ruleset that lost its bridge rule on the way into nft: two devices on one bridge reach
# each other, and verify must say so and fail. The shim edits only what verify feeds to nft.
REAL_NFT=$(command -v nft)
mkdir -p "$T/shim"
cat >"$T/shim/nft" <<SHIM
#!/bin/sh
if [ "\$1" = "-f" ] && [ "\$2" = "-" ]; then
	sed -e '/devices never reach each other/d' -e '/no frame between its bridge ports/d' |
		"$REAL_NFT" -f -
else
	exec "$REAL_NFT" "\$@"
fi
SHIM
chmod +x "$T/shim/nft"
PATH="$T/shim:$PATH" run_verify
[ $rc -ne 0 ] || fail "verify passed a broken ruleset"
assert_contains "$(row iot-untagged broker '[0-9.:]+ +blocked +blocked')" " ok"
assert_contains "$errout" "did not match the policy"
assert_contains "$(row iot-1 iot-2 '[0-9.:]+ +blocked +open')" "MISMATCH"
assert_contains "$(row cameras-1 iot-1 '[0-9.:]+ +blocked +blocked')" " ok"
pass "a broken ruleset is caught: $errout"

# A ruleset without the bridge-port rules: the address rules still keep IoT from IoT at zone
# addresses, but at link-local or self-given addresses two hosts on one bridge reach each
# other. verify must catch it.
cp "$T/moat.conf.default" "$D/moat.conf"
cat >"$T/shim/nft" <<SHIM
#!/bin/sh
if [ "\$1" = "-f" ] && [ "\$2" = "-" ]; then
	sed '/no frame between its bridge ports/d' | "$REAL_NFT" -f -
else
	exec "$REAL_NFT" "\$@"
fi
SHIM
PATH="$T/shim:$PATH" run_verify
[ $rc -ne 0 ] || fail "verify passed a ruleset without the bridge-port rules"
assert_contains "$(row6 iot-1 iot-2 '\[fe80::77:[0-9a-f]+\]:8883 +blocked +open')" "MISMATCH"
assert_contains "$(row iot-1 iot-2 '198\.18\.77\.[0-9]+:8883 +blocked +open')" "MISMATCH"
assert_contains "$(row6 iot-1 iot-2 '\[fdff:77::[0-9a-f]+\]:8883 +blocked +open')" "MISMATCH"
assert_contains "$(row iot-1 iot-2 '10.77.10.3:8883 +blocked +blocked')" " ok"
assert_contains "$(row iot-1 broker '10.77.1.10:8883 +open +open')" " ok"
[ "$(printf '%s\n' "$out" | grep MISMATCH | grep -cvE "$own")" -eq 0 ] ||
	fail "without the port rules, rows at zone addresses broke too"
pass "a ruleset without the bridge-port rules is caught"

# An input chain that lost its NTP allowance on the way into nft: devices would get no time.
cat >"$T/shim/nft" <<SHIM
#!/bin/sh
if [ "\$1" = "-f" ] && [ "\$2" = "-" ]; then
	sed '/NTP on the gateway/d' | "$REAL_NFT" -f -
else
	exec "$REAL_NFT" "\$@"
fi
SHIM
cp "$T/moat.conf.default" "$D/moat.conf"
PATH="$T/shim:$PATH" run_verify
[ $rc -ne 0 ] || fail "verify passed a ruleset without NTP"
assert_contains "$(row iot-1 gateway '10.77.10.1:123/udp +open +blocked')" "MISMATCH"
assert_contains "$(row iot-1 gateway '10.77.10.1:53/udp +open +open')" " ok"
pass "a missing NTP allowance is caught"

# gateway_input = accept: no input chain, the gateway answers everyone.
printf '\n[network]\ngateway_input = accept\n' >>"$D/moat.conf"
run_verify
[ $rc -eq 0 ] || fail "verify with gateway_input = accept: exit $rc: $errout"
assert_contains "$(row outside gateway '[0-9.]+:2222 +open +open')" " ok"
pass "gateway_input = accept leaves the gateway open"

# Interrupted while the topology exists: everything is removed, the exit is non-zero.
for sig in INT TERM; do
	moat net verify >"$T/int.out" 2>"$T/int.err" &
	pid=$!
	wait_for 60 sh -c "ip netns list | grep '^moat-$pid-x' >/dev/null" ||
		fail "SIG$sig: the topology never appeared"
	kill -$sig $pid
	set +e
	wait $pid
	rc=$?
	set -e
	[ $rc -ne 0 ] || fail "SIG$sig: exit 0 after an interrupt"
	assert_contains "$(cat "$T/int.err")" "interrupted"
	[ -z "$(net_leftovers $pid)" ] || fail "SIG$sig left: $(net_leftovers $pid)"
	pass "SIG$sig: cleaned up ($(cat "$T/int.err"))"
done

# A run that was killed outright (SIGKILL) leaves namespaces; the next run removes them.
dead=4194000 # above most pid_max settings; in any case a pid that is not running
while kill -0 $dead 2>/dev/null; do dead=$((dead - 1)); done
ip netns add "moat-$dead-r"
on_exit "ip netns delete moat-$dead-r"
run_verify
[ $rc -eq 0 ] || fail "verify after a stale namespace: exit $rc: $errout"
[ -z "$(net_leftovers $dead)" ] || fail "stale namespace of pid $dead not removed"
pass "stale namespaces of a dead run removed"
