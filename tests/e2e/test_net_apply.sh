#!/usr/bin/env bash
# test_net_apply.sh: `moat net apply`, `apply --dry-run` and `remove`, only ever inside a
# network namespace this test creates (never on the host). A table and an iptables chain
# that belong to someone else must survive every step; dry-run must change nothing; a bad
# [network] section and a missing nft must load nothing. Also loads the iptables form with
# iptables-restore --noflush and checks it leaves FORWARD's policy alone. bridge_ports are
# checked before anything loads, closed in the bridge table as planned, and isolated. `apply --interfaces
# --root` installs the VLAN interface files and removes only moat's stale ones. Skipped (77)
# without root, namespaces or nftables.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_net.sh"

net_need_namespaces
net_deploy
net_ns gw
in_ns() { ip netns exec "$NS" "$@"; }
tables() { in_ns nft list tables | sort | tr '\n' ' '; }

# Someone else's table, with a rule, that moat must never touch.
in_ns nft -f - <<'NFT'
table inet keepme {
	chain keep_forward {
		type filter hook forward priority 10; policy accept;
		tcp dport 4242 counter accept
	}
}
NFT
KEEP=$(in_ns nft list table inet keepme)

expect_ok "dry run" in_ns moat net apply --dry-run
assert_contains "$out" "nothing changed"
[ "$(tables)" = "table inet keepme " ] || fail "dry run changed the tables: $(tables)"

expect_ok "apply" in_ns moat net apply
assert_contains "$(tables)" "table bridge moat"
assert_contains "$(tables)" "table inet moat"
[ "$(in_ns nft list table inet keepme)" = "$KEEP" ] || fail "apply touched inet keepme"
RULESET=$(in_ns nft list table inet moat)
assert_contains "$RULESET" "policy drop"
assert_contains "$RULESET" 'log prefix "moat-drop: "'
assert_contains "$RULESET" "ip daddr 10.77.1.10 tcp dport 8883 accept"
assert_contains "$(in_ns nft list table bridge moat)" "devices never reach each other"

# Reapplying replaces moat's tables in one transaction: still exactly one of each.
expect_ok "apply again" in_ns moat net apply
[ "$(in_ns nft list tables | grep -c 'moat$')" -eq 2 ] || fail "duplicate moat tables"
[ "$(in_ns nft list ruleset | grep -c 'chain forward ')" -eq 2 ] || fail "chains duplicated"

# A changed policy replaces the old one.
printf '\n[network]\nbroker_address = 10.77.1.20\n' >>"$D/moat.conf"
expect_ok "apply a changed policy" in_ns moat net apply
assert_contains "$(in_ns nft list table inet moat)" "ip daddr 10.77.1.20 tcp dport 8883 accept"
assert_not_contains "$(in_ns nft list table inet moat)" "10.77.1.10"

# A dual-stack policy loads with its IPv6 rules in both tables.
cp "$D/moat.conf" "$T/moat.conf.v4"
net_dual_section >>"$D/moat.conf"
expect_ok "apply a dual-stack policy" in_ns moat net apply
assert_contains "$(in_ns nft list table inet moat)" "ip6 daddr fd00:77:1::14 tcp dport 8883 accept" # 10.77.1.20
assert_contains "$(in_ns nft list table inet moat)" "type ipv6_addr"
assert_contains "$(in_ns nft list table bridge moat)" "ip6 saddr @device_zones6 ip6 daddr @device_zones6"
pass "dual-stack policy applied"
cp "$T/moat.conf.v4" "$D/moat.conf"
expect_ok "apply the IPv4 policy again" in_ns moat net apply
assert_not_contains "$(in_ns nft list ruleset)" "ip6 saddr"

# A bad section loads nothing: the previous ruleset stays as it was.
BEFORE=$(in_ns nft list ruleset)
printf 'iot = 10.77.1.0/24\n' >>"$D/moat.conf"
expect_fail "apply a bad section" in_ns moat net apply
assert_contains "$errout" "overlaps"
[ "$(in_ns nft list ruleset)" = "$BEFORE" ] || fail "a refused apply changed the ruleset"
expect_fail "dry run of a bad section" in_ns moat net apply --dry-run
sed -i '$d' "$D/moat.conf"

# Without nft on PATH: a clear error, nothing changed.
expect_fail "apply without nft" ip netns exec "$NS" env PATH=/nonexistent \
	"$MOAT_BUILD/moat" net apply
assert_contains "$errout" "nft: not found in PATH"

expect_ok "remove" in_ns moat net remove
[ "$(tables)" = "table inet keepme " ] || fail "remove left or took tables: $(tables)"
[ "$(in_ns nft list table inet keepme)" = "$KEEP" ] || fail "remove touched inet keepme"
expect_ok "remove when absent" in_ns moat net remove
expect_ok "apply --json" in_ns moat net apply --json
printf '%s' "$out" | python3 -c 'import json,sys; assert json.load(sys.stdin)["loaded"] == ["inet moat", "bridge moat"]' ||
	fail "apply --json: $out"
expect_ok "apply --dry-run --json" in_ns moat net apply --dry-run --json
printf '%s' "$out" | python3 -c 'import json,sys; assert "checked" in json.load(sys.stdin)' ||
	fail "apply --dry-run --json: $out"
expect_ok "remove --json" in_ns moat net remove --json
printf '%s' "$out" | python3 -c 'import json,sys; assert json.load(sys.stdin)["removed"] == ["inet moat", "bridge moat"]' ||
	fail "remove --json: $out"
[ "$(tables)" = "table inet keepme " ] || fail "remove --json left or took tables: $(tables)"

# bridge_ports: every port checked before anything loads; then closed in the bridge table,
# as `net plan` prints it, and isolated.
in_ns ip link add brz type bridge
in_ns ip link add p1 type veth peer name q1
in_ns ip link add p2 type veth peer name q2
in_ns ip link set p1 master brz
in_ns ip link set p2 master brz
cp "$D/moat.conf" "$T/moat.conf.noports"
printf 'bridge_ports = iot:p1, iot:p2, guest:q1\n' >>"$D/moat.conf"
BEFORE=$(in_ns nft list ruleset)
expect_fail "apply with a port that is no bridge port" in_ns moat net apply
assert_contains "$errout" "q1 (zone guest) is not a bridge port here"
expect_fail "dry run with a port that is no bridge port" in_ns moat net apply --dry-run
[ "$(in_ns nft list ruleset)" = "$BEFORE" ] || fail "a refused apply changed the ruleset"
in_ns ip -d link show p1 | qgrep "isolated off" || fail "a refused apply isolated p1"
cp "$T/moat.conf.noports" "$D/moat.conf"
printf 'bridge_ports = iot:p1, iot:p2\n' >>"$D/moat.conf"
expect_ok "apply --dry-run with bridge ports" in_ns moat net apply --dry-run
assert_contains "$out" "every bridge port exists"
in_ns ip -d link show p1 | qgrep "isolated off" || fail "dry run isolated p1"
expect_ok "apply with bridge ports" in_ns moat net apply
assert_contains "$out" "isolated bridge port p2 (zone iot)"
for port in p1 p2; do
	in_ns ip -d link show $port | qgrep "isolated on" || fail "$port not isolated"
done
in_ns ip -d link show q1 | qgrep "isolated" && fail "q1 is no bridge port, yet isolated"
PLAN=$(moat net plan)
for dir in iifname oifname; do
	rule="$dir { \"p1\", \"p2\" } jump log_drop comment \"iot: no frame between its bridge ports\""
	assert_contains "$PLAN" "$rule"
	assert_contains "$(in_ns nft list table bridge moat)" "$rule"
done
assert_not_contains "$(in_ns nft list table inet moat)" "no frame between"
expect_ok "apply --json with bridge ports" in_ns moat net apply --json
printf '%s' "$out" | python3 -c 'import json,sys; assert json.load(sys.stdin)["isolated_ports"] == ["p1", "p2"]' ||
	fail "apply --json: $out"
cp "$T/moat.conf.noports" "$D/moat.conf"
in_ns ip link del brz
pass "bridge_ports checked first, closed by port as planned, and isolated"

# The iptables form loads with --noflush next to someone else's chain.
if command -v iptables-restore >/dev/null; then
	in_ns iptables -N KEEPME
	in_ns iptables -A KEEPME -p tcp --dport 4242 -j ACCEPT
	expect_ok "plan iptables" moat net plan --format iptables
	printf '%s\n' "$out" | in_ns iptables-restore --test --noflush || fail "iptables-restore --test"
	printf '%s\n' "$out" | in_ns iptables-restore --noflush || fail "iptables-restore"
	in_ns iptables -S MOAT-FORWARD | qgrep 'devices reach the broker' || fail "MOAT-FORWARD missing"
	in_ns iptables -S KEEPME | qgrep 4242 || fail "iptables-restore flushed KEEPME"
	# The host's FORWARD policy is not moat's to change: set it to ACCEPT and see it stay.
	in_ns iptables -P FORWARD ACCEPT
	printf '%s\n' "$out" | in_ns iptables-restore --noflush || fail "iptables-restore (policy)"
	[ "$(in_ns iptables -S FORWARD | head -1)" = "-P FORWARD ACCEPT" ] ||
		fail "loading the iptables form changed FORWARD: $(in_ns iptables -S FORWARD | head -1)"
	in_ns iptables -S | grep -v -- '-N \|-P \|-A MOAT-\|-A KEEPME' | grep . &&
		fail "the iptables form added rules outside moat's chains"
	# Loading twice replaces the MOAT chains instead of appending to them.
	n1=$(in_ns iptables -S MOAT-FORWARD | wc -l)
	printf '%s\n' "$out" | in_ns iptables-restore --noflush || fail "iptables-restore again"
	[ "$(in_ns iptables -S MOAT-FORWARD | wc -l)" -eq "$n1" ] || fail "MOAT-FORWARD grew"
	pass "iptables form loads with --noflush and keeps other chains"
else
	echo "note: iptables-restore not installed; iptables form not loaded"
fi

# The VLAN interfaces go into ROOT/etc/systemd/network, replacing moat's files and only them.
R="$T/root"
mkdir -p "$R/etc/systemd/network"
printf '[Match]\nName=eth9\n' >"$R/etc/systemd/network/10-keep.network"
printf 'stale\n' >"$R/etc/systemd/network/20-moat-eth0.99.netdev"
expect_ok "apply --interfaces --root" moat net apply --interfaces --root "$R"
assert_contains "$out" "$R/etc/systemd/network"
assert_contains "$out" "networkctl reload"
expect_ok "plan --interfaces --json" moat net plan --interfaces --json
printf '%s' "$out" | python3 -c '
import json, os, sys
d = json.load(sys.stdin)
root = sys.argv[1] + "/etc/systemd/network"
want = {f["name"]: f["text"] for f in d["files"]}
have = {n for n in os.listdir(root) if n.startswith("20-moat-")}
assert have == set(want), (have, set(want))
for n, t in want.items():
    assert open(os.path.join(root, n)).read() == t, n
    assert oct(os.stat(os.path.join(root, n)).st_mode & 0o777) == "0o644", n
' "$R" || fail "installed files differ from the plan"
[ -f "$R/etc/systemd/network/10-keep.network" ] || fail "apply --interfaces removed a foreign file"
expect_ok "apply --interfaces --json" moat net apply --interfaces --root "$R" --json
printf '%s' "$out" | python3 -c 'import json,sys; d = json.load(sys.stdin); assert d["directory"] == sys.argv[1] + "/etc/systemd/network", d' "$R" ||
	fail "apply --interfaces --json: $out"
[ ! -e "$R/etc/systemd/network/20-moat-eth0.99.netdev" ] || fail "a stale moat file stayed"
ls -a "$R/etc/systemd/network" | qgrep '\.tmp\.' && fail "temporary files left behind"
# A VLAN taken out of moat.conf takes its files along.
printf 'vlans = iot:20\n' >>"$D/moat.conf"
expect_ok "apply --interfaces with fewer VLANs" moat net apply --interfaces --root "$R"
[ ! -e "$R/etc/systemd/network/20-moat-eth0.10.netdev" ] || fail "VLAN 10's files stayed"
[ -e "$R/etc/systemd/network/20-moat-eth0.20.netdev" ] || fail "VLAN 20's files went"
# A bad section writes nothing.
before=$(cd "$R/etc/systemd/network" && cat ./*)
printf 'trunk = not/an/if\n' >>"$D/moat.conf"
expect_fail "apply --interfaces with a bad trunk" moat net apply --interfaces --root "$R"
assert_contains "$errout" "not an interface name"
[ "$(cd "$R/etc/systemd/network" && cat ./*)" = "$before" ] || fail "a refused apply wrote files"
expect_fail "--root without --interfaces" moat net apply --root "$R"
expect_fail "--interfaces with --dry-run" moat net apply --interfaces --dry-run
expect_fail "--interfaces for verify" moat net verify --interfaces
# An unwritable root: one clear line, non-zero.
printf 'x' >"$T/afile"
expect_fail "apply --interfaces under a file" moat net apply --interfaces --root "$T/afile"
pass "apply --interfaces installs, replaces and removes only moat's files"
