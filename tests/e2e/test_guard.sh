#!/usr/bin/env bash
# test_guard.sh: the connection guard `moat up` installs ([guard] of moat.conf, net.h), in a
# network namespace this test creates (the host's tables are never touched): the broker and
# moatd run inside it on its loopback, the attackers connect from other 127.0.0.x
# addresses of that loopback. Shown from the client side:
#   - connection N+1 from one source to the broker is reset, for plain TCP and for TLS
#     sessions that never send CONNECT, while another source still connects and a device
#     (from yet another address) still publishes and is received;
#   - the same on moatd's port with its own bound;
#   - a source opening connections faster than new_per_source is reset past the burst;
#   - the broker's max_connections holds in all (Mosquitto 2.0.11 alone lets more in);
#   - each kind of refusal is counted in the guard's table;
#   - bad [guard] values stop moat up with one line before anything is installed;
#   - moat down removes the table and nothing else.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_net.sh"
source "$(dirname "$0")/lib_broker.sh"
net_need_namespaces
broker_require
command -v python3 >/dev/null || skip "python3 not installed"
PEER="$(dirname "$0")/slowpeer.py"

e2e_init
moat device add dev1 --type sensor >/dev/null
moat device add dev2 --type sensor >/dev/null
moat identity add backend-service --role service >/dev/null
moat identity add watcher --role service >/dev/null
# One cleanup, in this order: moat down inside the namespace, then the namespace.
NS="moat-e2e-$$-guard"
ip netns add "$NS"
on_exit "ip netns exec $NS moat --dir '$D' down --timeout $(deadline 20s); ip netns delete $NS"
ip -n "$NS" link set lo up
nsx() { ip netns exec "$NS" "$@"; }
TABLE="moat_guard_$BROKER_PORT"

# guard_conf LINE...: the [guard] section (replacing e2e_init's "enabled = no") and more.
cp "$D/moat.conf" "$T/moat.conf.orig"
guard_conf() {
	sed '/^\[guard\]/,$d' "$T/moat.conf.orig" >"$D/moat.conf"
	printf '[guard]\n' >>"$D/moat.conf"
	printf '%s\n' "$@" >>"$D/moat.conf"
}

# ---- bad values ----
bad() {
	local what=$1 line=$2 want=$3
	case $line in enabled*) guard_conf "$line" ;; *) guard_conf "enabled = yes" "$line" ;; esac
	# shellcheck disable=SC2046 # the prefix is words without spaces
	run_captured nsx $(plugin_mosquitto_env) moat up --timeout "$(deadline 30s)"
	[ $run_rc -ne 0 ] || { nsx moat down >/dev/null 2>&1; fail "$what: moat up started"; }
	[ "$(printf '%s\n' "$errout" | wc -l)" -eq 1 ] || fail "$what: not one line: $errout"
	assert_contains "$errout" "$want"
	nsx nft list tables | qgrep "$TABLE" && fail "$what: the table was installed"
	echo "ok - refused: $what: $errout"
}
bad "broker_per_source 0" "broker_per_source = 0" "broker_per_source"
bad "server_per_source not a number" "server_per_source = many" "server_per_source"
bad "new_per_source too high" "new_per_source = 1000000" "new_per_source"
bad "enabled neither auto, yes nor no" "enabled = maybe" "auto, yes or no"
bad "exempt not an address" "exempt = localhost" "not an IP address"
bad "unknown key" "per_source = 3" "per_source"

# ---- up, in the namespace ----
guard_conf "enabled = yes" "broker_per_source = 5" "server_per_source = 3" "new_per_source = 5"
sed -i "s/^\[broker\]\$/[broker]\nmax_connections = 16/" "$D/moat.conf"
# shellcheck disable=SC2046
expect_ok "moat up in the namespace" nsx $(plugin_mosquitto_env) moat up --timeout "$(deadline 30s)"
assert_contains "$out" "guard: table inet $TABLE: per source 5 broker and 3 moatd connections, 5 new/s"
nsx nft list table inet "$TABLE" >"$T/table" || fail "no guard table in the namespace"
if nft list tables 2>/dev/null | qgrep "$TABLE"; then fail "the guard reached the host's tables"; fi
pass "the guard is installed in the namespace's tables only"
listening() { nsx ss -Htln "( sport = :$1 )" | qgrep .; }
wait_for 20 listening "$SERVER_PORT" || fail "moatd is not listening in the namespace"

counter() { nsx nft list counter inet "$TABLE" "$1" | sed -n 's/.*packets \([0-9]*\).*/\1/p'; }
result() { sed -n "s/^$2=//p" "$1" | tail -n 1; }
peer_wait() { wait_for "$3" grep -q "^$2" "$1" || fail "slowpeer $1: no $2 ($(cat "$1" 2>/dev/null))"; }

# ---- per source, on the broker: plain TCP and TLS without CONNECT ----
before=$(counter source_connections)
e2e_bg ip netns exec "$NS" python3 "$PEER" hold --port "$BROKER_PORT" --source 127.0.0.2 --count 6 \
	--until "$T/release" --limit "$(deadline 120)" --out "$T/tcp" 2>"$T/tcp.err"
e2e_bg ip netns exec "$NS" python3 "$PEER" hold --port "$BROKER_PORT" --source 127.0.0.5 --count 6 \
	--ca "$D/pki/ca.crt" --cert "$D/pki/identities/dev2/cert.pem" \
	--key "$D/pki/identities/dev2/key.pem" --until "$T/release" --limit "$(deadline 120)" \
	--out "$T/tls" 2>"$T/tls.err"
peer_wait "$T/tcp" held 30
peer_wait "$T/tls" held 30
[ "$(result "$T/tcp" results)" = "ok,ok,ok,ok,ok,refused" ] || fail "TCP from one source: $(cat "$T/tcp")"
pass "the 6th idle TCP connection from one source to the broker is reset"
[ "$(result "$T/tls" results)" = "ok,ok,ok,ok,ok,refused" ] || fail "TLS from one source: $(cat "$T/tls")"
pass "the 6th TLS session that never sends CONNECT from one source is reset"
[ "$(counter source_connections)" -ge $((before + 2)) ] || fail "source_connections not counted"

e2e_bg ip netns exec "$NS" python3 "$PEER" hold --port "$BROKER_PORT" --source 127.0.0.3 --count 1 \
	--until "$T/release" --limit "$(deadline 120)" --out "$T/other"
peer_wait "$T/other" held 30
[ "$(result "$T/other" results)" = ok ] || fail "another source: $(cat "$T/other")"
pass "another source still connects"

# a device from another address publishes and a service receives it
nsx mosquitto_sub -h localhost -p "$BROKER_PORT" --cafile "$D/pki/ca.crt" \
	--cert "$D/pki/identities/watcher/cert.pem" --key "$D/pki/identities/watcher/key.pem" \
	-i watcher -t 'devices/dev1/telemetry' -C 1 -W "$(deadline 20)" >"$T/sub" 2>"$T/sub.err" &
sub=$!
msg='{"device_id":"dev1","temperature":21.5}'
published=0
for _ in $(seq 1 "$(deadline 20)"); do
	if nsx mosquitto_pub -h localhost -A 127.0.0.4 -p "$BROKER_PORT" --cafile "$D/pki/ca.crt" \
		--cert "$D/pki/identities/dev1/cert.pem" --key "$D/pki/identities/dev1/key.pem" \
		-i dev1 -t devices/dev1/telemetry -m "$msg" 2>"$T/pub.err"; then
		published=1
	fi
	[ -s "$T/sub" ] && break
	sleep 1
done
wait "$sub" || true
[ $published -eq 1 ] || fail "the device could not publish: $(cat "$T/pub.err")"
grep -qF "$msg" "$T/sub" || fail "the service did not receive the device's message: $(cat "$T/sub.err")"
pass "a device from 127.0.0.4 publishes and a service receives it, while two sources are at their bound"

# ---- the broker's max_connections in all ----
est=$(nsx ss -Htn state established "( sport = :$BROKER_PORT )" | wc -l)
room=$((16 - est))
[ $room -ge 1 ] || fail "no room left below max_connections: $est established"
before=$(counter total_connections)
nsx python3 "$PEER" hold --port "$BROKER_PORT" --source 127.0.0.6 --count $((room + 1)) \
	--limit 1 --out "$T/total"
want=$(printf 'ok,%.0s' $(seq 1 $room))refused
[ "$(result "$T/total" results)" = "$want" ] || fail "max_connections 16 with $est open: $(cat "$T/total")"
[ "$(counter total_connections)" -gt "$before" ] || fail "total_connections not counted"
pass "the broker's max_connections (16) holds: with $est open, $room more get in and the next is reset"

# ---- moatd's port ----
nsx python3 "$PEER" hold --port "$SERVER_PORT" --source 127.0.0.8 --count 4 --limit 1 --out "$T/moatd"
[ "$(result "$T/moatd" results)" = "ok,ok,ok,refused" ] || fail "moatd port: $(cat "$T/moatd")"
pass "the 4th connection from one source to moatd is reset (server_per_source 3)"

# ---- new connections per second ----
before=$(counter source_rate)
nsx python3 "$PEER" churn --port "$BROKER_PORT" --source 127.0.0.9 --count 40 --out "$T/churn"
ok=$(sed -n 's/^ok=\([0-9]*\).*/\1/p' "$T/churn")
refused=$(sed -n 's/.*refused=\([0-9]*\)/\1/p' "$T/churn")
[ "$ok" -ge 10 ] && [ "$refused" -ge 10 ] || fail "40 quick connections at 5/s burst 10: $(cat "$T/churn")"
[ "$(counter source_rate)" -gt "$before" ] || fail "source_rate not counted"
pass "40 connections at once from one source: $ok through (burst 10 at 5/s), $refused reset"

touch "$T/release"
peer_wait "$T/tcp" done 30
peer_wait "$T/tls" done 30

# ---- down removes it ----
expect_ok "moat down" nsx moat --dir "$D" down --timeout "$(deadline 20s)"
if nsx nft list tables | qgrep "$TABLE"; then fail "moat down left the guard table"; fi
pass "moat down removed the guard table"
