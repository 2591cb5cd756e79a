#!/usr/bin/env bash
# test_net_plan.sh: `moat net plan` against golden files (nft and iptables, the default
# policy of a fresh deployment and a custom [network] section), and every refusal of a bad
# [network] section: one clear line on stderr, nothing on stdout, a non-zero exit.
# MOAT_UPDATE_GOLDEN=1 rewrites the golden files instead of comparing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_net.sh"

GOLDEN="$MOAT_SRC/tests/e2e/golden/net"
net_deploy
cp "$D/moat.conf" "$T/moat.conf.orig"

golden() {
	local name=$1; shift
	"$@" >"$T/$name" 2>"$T/.stderr" || fail "$name: exit $?: $(cat "$T/.stderr")"
	if [ "${MOAT_UPDATE_GOLDEN:-0}" = 1 ]; then
		cp "$T/$name" "$GOLDEN/$name"
		echo "updated $GOLDEN/$name"
		return
	fi
	diff -u "$GOLDEN/$name" "$T/$name" || fail "$name differs from the golden file"
	pass "golden $name"
}

# A deployment from moat init has no [network]: the defaults apply.
golden default.nft moat net plan
golden default.iptables moat net plan --format iptables
expect_ok "plan --format nft is the default" moat net plan --format nft
cmp -s <(echo "$out") <(moat net plan) || fail "--format nft differs from the default"

# The gateway's VLAN sub-interfaces: systemd-networkd files and ifupdown stanzas. Nothing
# checks networkd files offline (networkctl has no parse-only mode), so their exact bytes
# are pinned here, and test_net_apply checks that apply installs exactly these.
golden default.networkd moat net plan --interfaces
golden default.interfaces moat net plan --interfaces --format ifupdown
expect_ok "plan --interfaces --format networkd is the default" moat net plan --interfaces --format networkd
cmp -s <(echo "$out") <(moat net plan --interfaces) || fail "--format networkd differs from the default"
expect_fail "unknown interfaces format" moat net plan --interfaces --format nft
assert_contains "$errout" "unknown interfaces format 'nft' (networkd or ifupdown)"

# --json: the ruleset and the policy it came from, as one JSON document.
expect_ok "plan --json" moat net plan --json
printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["format"] == "nft", d["format"]
assert d["ruleset"] == open(sys.argv[1]).read()
z = {x["name"]: x for x in d["zones"]}
assert z["iot"]["kind"] == "devices" and z["iot"]["vlan"] == 20 and z["iot"]["parent"] == "eth0"
assert z["management"]["subnets"] == ["10.77.1.0/24"]
assert d["broker_address"] == "10.77.1.10" and d["broker_port"] == 8883
assert d["server_address"] == "10.77.1.10" and d["server_port"] == 8443
' "$GOLDEN/default.nft" || fail "plan --json"
expect_ok "plan --format iptables --json" moat net plan --format iptables --json
printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["format"] == "iptables" and d["ruleset"] == open(sys.argv[1]).read()
' "$GOLDEN/default.iptables" || fail "plan --format iptables --json"
expect_ok "plan --interfaces --format ifupdown --json" moat net plan --interfaces --format ifupdown --json
printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["format"] == "ifupdown" and d["text"] == open(sys.argv[1]).read()
' "$GOLDEN/default.interfaces" || fail "plan --interfaces --format ifupdown --json"
pass "plan --json"

net_custom_section >>"$D/moat.conf"
printf 'trunk = bond0\nvlans = management:10, iot:20, cameras:21@eth2, guest:30\n' >>"$D/moat.conf"
golden custom.networkd moat net plan --interfaces
golden custom.interfaces moat net plan --interfaces --format ifupdown
golden custom.nft moat net plan
golden custom.iptables moat net plan --format iptables
# The same policy from a copy of moat.conf, as a gateway would hold it.
cp "$D/moat.conf" "$T/gateway.conf"
expect_ok "plan --config" moat net plan --config "$T/gateway.conf"
cmp -s <(echo "$out") "$T/custom.nft" || fail "--config gave another ruleset"

# A dual-stack policy: every zone rule in both families, the gateway's IPv6 addresses.
cp "$T/moat.conf.orig" "$D/moat.conf"
net_dual_section >>"$D/moat.conf"
golden dual.nft moat net plan
golden dual.networkd moat net plan --interfaces
golden dual.interfaces moat net plan --interfaces --format ifupdown
expect_ok "plan --json of a dual-stack policy" moat net plan --json
printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
z = {x["name"]: x for x in d["zones"]}
assert z["guest"]["prefixes6"] == ["fd00:77:20::/64", "2001:db8:20::/56"], z["guest"]
assert d["broker_address6"] == "fd00:77:1::a" and d["server_address6"] == "fd00:77:1::a", d
assert d["ruleset"] == open(sys.argv[1]).read()
' "$GOLDEN/dual.nft" || fail "plan --json of a dual-stack policy"
expect_fail "iptables form of a dual-stack policy" moat net plan --format iptables
assert_contains "$errout" "the iptables form covers IPv4 only"
[ -z "$out" ] || fail "iptables form of a dual-stack policy printed a ruleset anyway"
cp "$T/moat.conf.orig" "$D/moat.conf"

# Usage errors.
expect_fail "unknown format" moat net plan --format pf
assert_contains "$errout" "unknown format 'pf'"
expect_fail "unknown subcommand" moat net deploy
assert_contains "$errout" "unknown command 'deploy'"
expect_fail "stray argument" moat net plan extra
expect_fail "--dry-run outside apply" moat net plan --dry-run
expect_fail "missing --config file" moat net plan --config "$T/absent.conf"

# Each bad [network] section (or port) is refused with a message naming the cause.
bad() {
	local what=$1 want=$2 section=$3
	cp "$T/moat.conf.orig" "$D/moat.conf"
	printf '%s\n' "$section" >>"$D/moat.conf"
	expect_fail "$what" moat net plan
	[ -z "$out" ] || fail "$what: printed a ruleset anyway"
	[ "$(printf '%s\n' "$errout" | wc -l)" -eq 1 ] || fail "$what: more than one error line"
	assert_contains "$errout" "moat.conf:"
	assert_contains "$errout" "$want"
}
bad "overlapping subnets" "[network] iot: subnet 10.77.0.0/16 overlaps 10.77.1.0/24 of zone management" \
	$'[network]\niot = 10.77.0.0/16'
bad "overlap inside a zone" "overlaps 10.9.0.0/16 of zone lab" \
	$'[network]\nextra_zones = lab\nlab = 10.9.0.0/16, 10.9.4.0/24'
bad "invalid subnet" "[network] guest: '10.77.20.0/33'" $'[network]\nguest = 10.77.20.0/33'
bad "garbage subnet" "not an IPv4 subnet" $'[network]\nguest = the-guest-wifi'
bad "host bits" "host bits set (the network is 10.77.10.0/24)" $'[network]\niot = 10.77.10.7/24'
bad "prefix too short" "between /8 and /30" $'[network]\niot = 10.0.0.0/4'
bad "unknown zone in device_zones" "[network] device_zones: unknown zone 'cameras'" \
	$'[network]\ndevice_zones = iot, cameras'
bad "zone key not declared" "unknown key 'cameras' in [network]" $'[network]\ncameras = 10.5.0.0/16'
bad "extra zone without subnets" "zone 'lab' has no subnets" $'[network]\nextra_zones = lab'
bad "bad zone name" "'Lab!' is not a zone name" $'[network]\nextra_zones = Lab!'
bad "management holds devices" "the management zone cannot hold devices" \
	$'[network]\ndevice_zones = management'
bad "broker outside management" "[network] broker_address: 10.77.10.4 is not inside the management zone" \
	$'[network]\nbroker_address = 10.77.10.4'
bad "server on the broadcast address" "is the broadcast address" \
	$'[network]\nserver_address = 10.77.1.255'
bad "ipv6 host bits" "[network] iot: 'fd00:77:10::1/64': host bits set (the network is fd00:77:10::/64)" \
	$'[network]\niot = 10.77.10.0/24, fd00:77:10::1/64'
bad "ipv6 prefix too long" "IPv6 prefix length must be between /16 and /64" \
	$'[network]\niot = 10.77.10.0/24, fd00:77:10::/96'
bad "ipv6 garbage" "'fd00:77:10:::/64': not an IPv6 prefix" $'[network]\niot = 10.77.10.0/24, fd00:77:10:::/64'
bad "ipv6 link-local" "not a unicast network" $'[network]\niot = 10.77.10.0/24, fe80::/64'
bad "ipv6 overlap" "[network] guest: prefix fd00:77::/32 overlaps fd00:77:10::/64 of zone iot" \
	$'[network]\niot = 10.77.10.0/24, fd00:77:10::/64\nguest = 10.77.20.0/24, fd00:77::/32'
bad "ipv6 only zone" "an IPv6 prefix needs an IPv4 subnet in the same zone" \
	$'[network]\nextra_zones = lab\nlab = fd00:9::/64'
bad "conn_rate zero" "[network] conn_rate" $'[network]\nconn_rate = 0'
bad "log_rate too high" "[network] log_rate" $'[network]\nlog_rate = 1000000'
bad "gateway_input typo" "[network] gateway_input: 'dorp': expected drop or accept" $'[network]\ngateway_input = dorp'
bad "dhcp value" "[network] dhcp: 'on': expected gateway or none" $'[network]\ndhcp = on'
bad "dns server in a device zone" "[network] dns: 10.77.10.53 is in device zone iot" $'[network]\ndns = 10.77.10.53'
bad "ntp by name" "[network] ntp: 'pool.ntp.org': not an IPv4 address" $'[network]\nntp = pool.ntp.org'
bad "too many dns servers" "more than 4 servers" $'[network]\ndns = 1.1.1.1, 1.0.0.1, 8.8.8.8, 8.8.4.4, 9.9.9.9'
bad "vlan item without id" "[network] vlans: 'iot': expected zone:id[@parent]" $'[network]\nvlans = iot'
bad "vlan of an unknown zone" "[network] vlans: unknown zone 'cameras'" $'[network]\nvlans = cameras:21'
bad "vlan id zero" "VLAN id must be 1 to 4094" $'[network]\nvlans = iot:0'
bad "vlan id too high" "VLAN id must be 1 to 4094" $'[network]\nvlans = iot:4095'
bad "vlan id twice on a trunk" "VLAN 20 on eth0 is already zone iot's" $'[network]\nvlans = iot:20, guest:20'
bad "zone on two vlans" "zone 'iot' listed twice" $'[network]\nvlans = iot:20, iot:21'
bad "bad parent" "'eth 1': not an interface name" $'[network]\nvlans = iot:20@eth 1'
bad "sub-interface name too long" "'enp0s31f6xy.2000' is longer than 15 characters" $'[network]\nvlans = iot:2000@enp0s31f6xy'
bad "bad trunk" "[network] trunk: 'a/b': not an interface name" $'[network]\ntrunk = a/b'
# The same refusals from plan --interfaces.
cp "$T/moat.conf.orig" "$D/moat.conf"
printf '[network]\nvlans = iot:99999\n' >>"$D/moat.conf"
expect_fail "plan --interfaces with a bad vlan" moat net plan --interfaces
assert_contains "$errout" "VLAN id must be 1 to 4094"
[ -z "$out" ] || fail "plan --interfaces printed files anyway"
# Ports come from the deployment's [broker] and [server] sections.
sed 's/^port = 8883$/port = 70000/' "$T/moat.conf.orig" >"$D/moat.conf"
expect_fail "broker port out of range" moat net plan
assert_contains "$errout" "[broker] port"
sed 's/^port = 8443$/port = 0/' "$T/moat.conf.orig" >"$D/moat.conf"
expect_fail "server port zero" moat net plan
assert_contains "$errout" "[server] port"
cp "$T/moat.conf.orig" "$D/moat.conf"
expect_ok "restored config plans again" moat net plan
