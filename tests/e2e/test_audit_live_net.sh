#!/usr/bin/env bash
# test_audit_live_net.sh: `moat audit --live --netns NAME` probes the [network] policy from a
# namespace in the IoT zone. Three namespaces this test creates: the broker host (moat up:
# Mosquitto with the plugin and moatd at 10.77.1.10, management zone), the gateway (routes
# between the zones, `moat net apply` loads the policy into its nftables) and an IoT host
# (10.77.10.50). With the policy applied, the broker's and the update server's ports answer
# from the IoT namespace and everything else there (SSH and plaintext MQTT on the broker's
# host, the gateway itself) is silent: every net.* probe passes, exit 0. With the policy
# removed (`moat net remove` on the gateway) the same probes FAIL, naming what was reached
# (--net-only: those probes alone, no identity issued). Without --netns, [network] zones are
# a finding; an unknown namespace is one too.
# (test_audit_live.sh covers the SKIP of a deployment without [network].)
# Skipped (77) without root, namespaces, nftables or Mosquitto.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_net.sh"
broker_require
net_need_namespaces
command -v jq >/dev/null || skip "jq not installed (scripts/bootstrap installs it)"
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"

# ---- the zones: broker host -- gateway -- IoT host ----
net_ns srv
SRV=$NS
net_ns gw
GW=$NS
net_ns iot
IOT=$NS
for ns in "$SRV" "$GW" "$IOT"; do ip -n "$ns" link set lo up; done
ip link add a3-srv netns "$SRV" type veth peer name mgmt0 netns "$GW"
ip link add a3-iot netns "$IOT" type veth peer name iot0 netns "$GW"
ip -n "$GW" addr add 10.77.1.1/24 dev mgmt0
ip -n "$GW" addr add 10.77.10.1/24 dev iot0
ip -n "$GW" link set mgmt0 up
ip -n "$GW" link set iot0 up
ip netns exec "$GW" sysctl -qw net.ipv4.ip_forward=1
ip -n "$SRV" addr add 10.77.1.10/24 dev a3-srv
ip -n "$SRV" link set a3-srv up
ip -n "$SRV" route add default via 10.77.1.1
ip -n "$IOT" addr add 10.77.10.50/24 dev a3-iot
ip -n "$IOT" link set a3-iot up
ip -n "$IOT" route add default via 10.77.10.1
in_srv() { ip netns exec "$SRV" "$@"; }

# ---- the deployment, on the broker host: everything at 10.77.1.10 ----
e2e_init --broker-host 10.77.1.10
moat device add dev-a >/dev/null
cat >>"$D/moat.conf" <<CONF

[network]
iot = 10.77.10.0/24
management = 10.77.1.0/24
broker_address = 10.77.1.10
vlans = none
CONF
sed -i "s/^\[server\]$/[server]\nlisten = 10.77.1.10/" "$D/moat.conf"
expect_ok "config check" moat config check
on_exit "ip netns exec $SRV env MOAT_DIR=$D $MOAT_BUILD/moat down --timeout $(deadline 20s)"
# shellcheck disable=SC2046
expect_ok "moat up on the broker host" in_srv $(plugin_mosquitto_env) moat up --timeout "$(deadline 30s)"
expect_ok "the policy on the gateway" ip netns exec "$GW" moat net apply

# audit_net RC [ARGS]: the live audit from the broker host; $out its JSON
audit_net() {
	local want=$1
	shift
	run_captured in_srv moat --json audit --live "$@"
	[ "$run_rc" = "$want" ] || fail "audit --live $*: exit $run_rc, expected $want: $errout $(jq -c '[.findings[] | select(.severity != "info")]' <<<"$out" 2>/dev/null)"
}
# net_result ID: "pass", or "<severity>: <title> | <evidence>" of live.ID's finding
net_result() {
	jq -r --arg id "live.$1" 'if (.checks | index($id)) == null then "did not run"
		else ([.findings[] | select(.id == $id) | .severity + ": " + .title + " | " + .evidence] | first // "pass") end' <<<"$out"
}

# ---- the policy applied: only the broker's and moatd's ports answer ----
audit_net 0 --netns "$IOT"
for id in zone_to_broker zone_to_update_server zone_to_broker_ssh zone_to_broker_plain_mqtt \
	zone_to_management zone_to_gateway; do
	[ "$(net_result net.$id)" = pass ] || fail "net.$id: $(net_result net.$id)"
done
assert_not_contains "$(jq -r '.checks[]' <<<"$out")" "live.net.policy_from_namespace"
pass "policy applied: from the IoT namespace only the broker's and moatd's ports answer"

# ---- the policy removed on the gateway: the same probes find the holes ----
expect_ok "remove the policy" ip netns exec "$GW" moat net remove
audit_net 1 --netns "$IOT" --net-only
assert_contains "$errout" "(network probes only)"
[ "$(jq '[.checks[] | select(startswith("live.net.") | not)] | length' <<<"$out")" = 0 ] ||
	fail "--net-only ran other probes: $(jq -c .checks <<<"$out")"
[ "$(net_result net.zone_to_broker)" = pass ] || fail "broker: $(net_result net.zone_to_broker)"
r=$(net_result net.zone_to_broker_ssh)
assert_contains "$r" "high: "
assert_contains "$r" "10.77.1.10:22 reached from 10.77.10.50 (namespace $IOT, zone iot), which the policy forbids: refused by the host"
assert_contains "$(net_result net.zone_to_broker_plain_mqtt)" "10.77.1.10:1883 reached"
assert_contains "$(net_result net.zone_to_management)" "10.77.1.1:22 reached"
assert_contains "$(net_result net.zone_to_gateway)" "10.77.10.1:22 reached"
pass "policy removed: every hole FAILs with what was reached"
expect_ok "the policy again" ip netns exec "$GW" moat net apply

# ---- zones but no probe: a finding, never a silent skip ----
audit_net 1 --net-only
assert_contains "$(net_result net.policy_from_namespace)" "high: "
assert_contains "$(net_result net.policy_from_namespace)" "--netns NAME"
audit_net 1 --net-only --netns moat-e2e-no-such-ns
assert_contains "$(net_result net.policy_from_namespace)" "cannot enter network namespace moat-e2e-no-such-ns"
expect_fail "--netns without --live" moat audit --netns "$IOT"
expect_fail "--net-only without --live" moat audit --net-only
pass "[network] zones without --netns, or with an unknown namespace, are findings"
