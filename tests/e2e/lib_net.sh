# lib_net.sh: helpers for the network segmentation tests (sourced after lib.sh, not run).
# Namespaces a test creates are named moat-e2e-<pid>-* and removed by the EXIT trap.

# net_need_namespaces: skips the test (exit 77) with the reason when this machine cannot run
# network namespaces with nftables and a bridge: not root, no ip(8) or nft(8), no netns.
net_need_namespaces() {
	[ "$(id -u)" -eq 0 ] || skip "needs root to create network namespaces"
	command -v ip >/dev/null || skip "ip (iproute2) not installed"
	command -v nft >/dev/null || skip "nft (nftables) not installed"
	local probe="moat-e2e-$$-probe"
	ip netns add "$probe" 2>/dev/null || skip "cannot create network namespaces here"
	local ok=1
	ip -n "$probe" link add br0 type bridge 2>/dev/null || ok=0
	if [ $ok -eq 1 ]; then
		printf 'table bridge t {\n\tchain f {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\n' |
			ip netns exec "$probe" nft -f - 2>/dev/null || ok=2
	fi
	ip netns delete "$probe"
	[ $ok -ne 0 ] || skip "the kernel cannot create bridges in a namespace"
	[ $ok -ne 2 ] || skip "the kernel lacks the nftables bridge family"
}

# net_ns NAME: creates namespace moat-e2e-<pid>-NAME, removed at exit, and sets $NS to it.
# (Not a command substitution: the cleanup must be registered in this shell.)
net_ns() {
	NS="moat-e2e-$$-$1"
	ip netns add "$NS"
	on_exit "ip netns delete $NS"
}

# net_leftovers PID: the namespaces a moat process with that pid left behind.
net_leftovers() { ip netns list | awk '{print $1}' | grep "^moat-$1-" || true; }

# net_deploy: a deployment in $T/d with the fixed ports the golden files use.
net_deploy() {
	D="$T/d"
	moat init --dir "$D" --name e2e --broker-port 8883 --server-port 8443 >/dev/null
	export MOAT_DIR="$D"
}

# net_conf NAME: copies the deployment's moat.conf to $T/NAME.conf and appends stdin.
net_conf() {
	cp "$D/moat.conf" "$T/$1.conf"
	cat >>"$T/$1.conf"
}

# net_custom_section [LAB]: prints a custom [network] section (after an empty line): more
# zones, several subnets per zone, a second device zone and a zone with no subnets; LAB is
# the lab zone's subnet (10.30.0.0/24 unless given).
net_custom_section() {
	cat <<CONF

[network]
iot = 10.10.0.0/16, 172.16.5.0/24
management = 10.1.0.0/24, 10.2.0.0/24
guest = 192.168.50.0/24
extra_zones = cameras, lab, printers
cameras = 10.20.0.0/22
lab = ${1:-10.30.0.0/24}
printers = none
device_zones = iot, cameras
broker_address = 10.1.0.5
server_address = 10.2.0.7
dns = 10.1.0.53, 9.9.9.9
ntp = 10.2.0.123
conn_rate = 5
log_rate = 3
CONF
}

# net_dual_section: prints a dual-stack [network] section (after an empty line): every standard
# zone with an IPv6 prefix beside its IPv4 subnet, the guests with two.
net_dual_section() {
	cat <<CONF

[network]
iot = 10.77.10.0/24, fd00:77:10::/64
management = 10.77.1.0/24, fd00:77:1::/64
guest = 10.77.20.0/24, fd00:77:20::/64, 2001:db8:20::/56
CONF
}
