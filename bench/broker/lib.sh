# shellcheck shell=bash
# bench/broker/lib.sh: the deployment bench/broker/run and bench/broker/profile share
# (sourced, not run). The caller sets src and here and defines die before sourcing.
# shellcheck disable=SC2154 # here and src are the caller's
#
# broker_setup DEVICES: builds $T/loadgen, makes a deployment in $D on a free $port with
# DEVICES devices and the service bench-svc. Its [policy] turns the plugin's rate limits and
# flapping ban off, so what is measured is the plugin's per-message and per-connection cost,
# not its limits, and [broker] max_queued_messages is raised so that neither mode drops
# messages. Removed again on exit.

# shellcheck source=bench/common/lib.sh
source "$src/bench/common/lib.sh"

broker_setup() {
	local devices=$1
	bench_find_moat "$src"
	[ -x /usr/sbin/mosquitto ] || die "no /usr/sbin/mosquitto"
	T=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/moat-bench-broker.XXXXXX")
	chmod 755 "$T"
	D="$T/d"
	trap broker_cleanup EXIT
	export MOAT_CA_PASSPHRASE=bench-broker-passphrase
	cc -O2 -Wall -Wextra -Werror -I"$src/bench/common" -o "$T/loadgen" "$here/loadgen.c" \
		"$src/bench/common/bench.c" -lmosquitto -lssl -lcrypto -lpthread
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
	"$moat" init --dir "$D" --name bench --broker-port "$port" \
		--server-port $((port + 1)) >/dev/null
	# The service must be able to queue what N devices send at full speed (the default
	# 1000 queued messages per client would drop some, under either mode).
	sed -i 's/^\[broker\]$/[broker]\nmax_queued_messages = 1000000/' "$D/moat.conf"
	cat >>"$D/moat.conf" <<EOF2

[policy]
device_msgs_per_s = 0
device_bytes_per_s = 0
service_msgs_per_s = 0
service_bytes_per_s = 0
flap_connects = 0
EOF2
	"$moat" --dir "$D" device add --prefix dev --count "$devices" >/dev/null
	"$moat" --dir "$D" identity add bench-svc --role service >/dev/null
}

broker_cleanup() {
	"$moat" --dir "$D" down >/dev/null 2>&1 || true
	rm -rf "$T"
}

# broker_up bare|plugin [up options...]: starts the broker in that mode.
broker_up() {
	local flag=()
	[ "$1" = bare ] && flag=(--no-plugin)
	shift
	"$moat" --dir "$D" up "${flag[@]}" "$@" >/dev/null
}

# broker_down [SECONDS]: stops it, waiting at most SECONDS (a number; default 60).
broker_down() {
	"$moat" --dir "$D" down --timeout "${1:-60}s" >/dev/null
}

# loadgen MODE ARGS...: the load generator against this deployment (see loadgen.c).
loadgen() {
	local mode=$1
	shift
	"$T/loadgen" "$mode" 127.0.0.1 "$port" "$D/pki/ca.crt" "$D/pki/identities" "$@"
}
