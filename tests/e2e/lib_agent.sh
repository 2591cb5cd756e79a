# lib_agent.sh: helpers for the device-agent, simulator and cmd/watch tests (sourced after
# lib.sh). agent_broker_start runs a real Mosquitto with a TLS-only listener that requires
# client certificates from the deployment's CA (the minimal configuration of the task
# brief: use_identity_as_username + use_username_as_clientid, no anonymous access).

# agent_broker_start [extra mosquitto.conf lines...]: starts (or restarts, on the same
# port) the broker for deployment $D on $BROKER_PORT; sets $BROKER_PID.
agent_broker_start() {
	local bd="$T/broker"
	mkdir -p "$bd"
	chmod 0755 "$T" "$bd"
	# Mosquitto drops to the mosquitto user: give it copies it can read.
	cp "$D/pki/server.crt" "$D/pki/ca.crt" "$bd/"
	install -m 0640 -g mosquitto "$D/pki/server.key" "$bd/server.key" 2>/dev/null ||
		install -m 0644 "$D/pki/server.key" "$bd/server.key"
	{
		echo "per_listener_settings false"
		echo "allow_anonymous false"
		echo "persistence false"
		echo "log_dest file $bd/mosquitto.log"
		echo "log_type error"
		echo "log_type warning"
		echo "log_type notice"
		echo "log_type subscribe"
		echo "max_queued_messages 100000"
		echo "listener $BROKER_PORT 127.0.0.1"
		echo "cafile $bd/ca.crt"
		echo "certfile $bd/server.crt"
		echo "keyfile $bd/server.key"
		echo "require_certificate true"
		echo "use_identity_as_username true"
		echo "use_username_as_clientid true"
		echo "tls_version tlsv1.2"
		for l in "$@"; do echo "$l"; done
	} >"$bd/mosquitto.conf"
	touch "$bd/mosquitto.log"
	chmod 0666 "$bd/mosquitto.log"
	/usr/sbin/mosquitto -c "$bd/mosquitto.conf" >>"$bd/stdout.log" 2>&1 &
	BROKER_PID=$!
	E2E_PIDS+=("$BROKER_PID")
	wait_for 10 agent_port_open "$BROKER_PORT" || fail "broker did not start: $(tail -5 "$bd/mosquitto.log")"
}

agent_broker_stop() {
	kill "$BROKER_PID" 2>/dev/null || true
	wait "$BROKER_PID" 2>/dev/null || true
}

agent_port_open() {
	python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),1); s.close()' "$1"
}

# agent_client_certs NAME: an operator identity's files, for mosquitto_sub/pub.
agent_client_args() {
	local id=$1
	local dir="$D/pki/identities/$id"
	echo "-h localhost -p $BROKER_PORT --cafile $dir/ca.crt --cert $dir/cert.pem --key $dir/key.pem -i $id"
}

# agent_sub NAME OUTFILE TOPIC...: a background subscriber printing "topic payload" lines;
# returns once the broker has its subscriptions (the broker makes NAME its client id).
agent_sub() {
	local id=$1 out=$2; shift 2
	local topics=() mark
	for t in "$@"; do topics+=(-t "$t"); done
	mark=$(log_lines "$T/broker/mosquitto.log")
	# shellcheck disable=SC2046
	mosquitto_sub $(agent_client_args "$id") -q 1 -v "${topics[@]}" >"$out" 2>>"$out.err" &
	E2E_PIDS+=($!)
	SUB_PID=$!
	agent_wait_subscribed "$mark" "$id" "$@"
}

# agent_wait_subscribed MARK CLIENT_ID FILTER...: wait_subscribed on the agent broker's log.
agent_wait_subscribed() { wait_subscribed "$T/broker/mosquitto.log" "$@"; }

# watch_wait_subscribed LOG MARK NAME PID: `moat watch --as NAME` (process PID), started when
# LOG had MARK lines, has all its subscriptions in the broker that writes LOG (it subscribes
# to command_responses last, in one SUBSCRIBE). Its client id is NAME:watch-PID under the
# moat plugin, NAME alone under the agent broker (use_username_as_clientid).
watch_wait_subscribed() {
	local log=$1 mark=$2 name=$3 pid=$4
	wait_for 10 log_has_since "$log" "$mark" -E \
		" ($name|$name:watch-$pid) [0-2] devices/[^/ ]+/command_responses\$" ||
		fail "moat watch as $name (pid $pid) did not subscribe: $(tail -3 "$log")"
}

# agent_pub NAME TOPIC PAYLOAD
agent_pub() {
	# shellcheck disable=SC2046
	mosquitto_pub $(agent_client_args "$1") -q 1 -t "$2" -m "$3"
}

# agent_export ID: exports device ID's agent bundle to $T/ID; sets $CONF.
agent_export() {
	moat device export "$1" --format agent --out "$T/$1" >/dev/null
	CONF="$T/$1/agent.conf"
}

# agent_set CONF SECTION KEY VALUE: sets (replaces) a key in the agent's INI file.
agent_set() {
	python3 - "$@" <<'PY'
import sys
path, section, key, value = sys.argv[1:5]
lines = open(path).read().split("\n")
out, cur, done = [], None, False
for l in lines:
    s = l.strip()
    if s.startswith("[") and s.endswith("]"):
        if cur == section and not done:
            out.append(f"{key} = {value}"); done = True
        cur = s[1:-1]
    elif cur == section and s.split("=")[0].strip() == key:
        if not done:
            out.append(f"{key} = {value}"); done = True
        continue
    out.append(l)
if not done:
    if cur != section:
        out.append(f"[{section}]")
    out.append(f"{key} = {value}")
open(path, "w").write("\n".join(out) + "\n")
PY
}

# wait_grep SECONDS PATTERN FILE
wait_grep() { wait_for "$1" grep -q -- "$2" "$3"; }

# count_at_least N PATTERN FILE: true when FILE has at least N lines matching PATTERN.
count_at_least() { [ "$(grep -c -- "$2" "$3" 2>/dev/null)" -ge "$1" ]; }

# agent_plugin_init: a deployment (e2e_init) whose directory the broker's user can reach,
# for tests of moat-agent against `moat up` with the moat plugin.
agent_plugin_init() {
	[ -e "$MOAT_BUILD/moat_broker.so" ] || fail "moat_broker.so not built"
	e2e_init
	chmod 0755 "$T"
}

# agent_setup INTERVAL OPERATOR...: in the deployment, device dev1 and each OPERATOR as an
# operator identity; dev1's agent bundle exported ($CONF) with telemetry every INTERVAL.
agent_setup() {
	local interval=$1 op
	shift
	moat device add dev1 >/dev/null
	for op in "$@"; do
		moat identity add "$op" --role operator >/dev/null
	done
	agent_export dev1
	agent_set "$CONF" agent interval "$interval"
}

# agent_start [LOG]: starts moat-agent on $CONF in the background with its stderr in LOG
# ($T/agent.log unless given); sets $AGENT, which the EXIT trap stops.
agent_start() {
	moat-agent --config "$CONF" 2>"${1:-$T/agent.log}" &
	AGENT=$!
	E2E_PIDS+=("$AGENT")
}

# agent_telemetry_seqs FILE: the seq of every telemetry message in FILE (lines of
# `moat watch --json`; other lines are passed over), one a line, in arrival order.
agent_telemetry_seqs() {
	python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("kind") == "telemetry":
        print(m["message"]["metadata"]["seq"])
PY
}

# agent_sign_dated ID START END OUTDIR: a new key and a certificate for ID (CN=ID,
# OU=device, clientAuth) signed by the deployment CA with the given validity
# (YYYYMMDDHHMMSSZ), for tests of expired and not-yet-valid certificates. Uses openssl ca
# with the CA key decrypted by $MOAT_CA_PASSPHRASE.
agent_sign_dated() {
	local id=$1 start=$2 end=$3 out=$4 w="$T/dated-ca"
	mkdir -p "$out"
	test_ca_conf "$w"
	test_ca_sign "$w" "$id" "/OU=device/CN=$id" client -cert "$D/pki/ca.crt" \
		-keyfile "$D/pki/ca.key" -passin env:MOAT_CA_PASSPHRASE -startdate "$start" \
		-enddate "$end"
	mv "$w/$id.key" "$out/key.pem"
	mv "$w/$id.crt" "$out/cert.pem"
}

# agent_sanitizer_clean FILE...: fails when a sanitizer reported anything in the logs
# (ASan/UBSan builds write their reports to the programs' stderr).
agent_sanitizer_clean() {
	if grep -l -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$@" 2>/dev/null; then
		fail "sanitizer report in: $(grep -l -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$@" | tr '\n' ' ')"
	fi
	pass "no sanitizer reports"
}
