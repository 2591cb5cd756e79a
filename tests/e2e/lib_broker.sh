# lib_broker.sh: shared helpers for broker and plugin end-to-end tests (sourced after
# lib.sh, not run). Engineers "broker" and "plugin" both add functions here; each keeps to
# its own prefix (plugin_*: the moat_broker.so tests).

# ---- plugin_*: a broker with the moat_broker.so plugin, a test PKI made with the openssl
# CLI (the tests exercise the plugin, not moat's PKI), a policy file written by hand (it
# exercises the parser the way an operator's broken edit would). Layout under $T/pb:
#   pki/ca.crt ca.key crl.pem server.{crt,key} <id>.{crt,key}   (openssl ca database too)
#   broker/mosquitto.conf policy       log/events.jsonl mosquitto.log

PB="$T/pb"
# The plugin's events file; a test that runs a moat deployment points it at log/ there.
PLUGIN_EVENTS="$PB/log/events.jsonl"

# plugin_require: skips unless the real broker, its clients and the plugin are here.
plugin_require() {
	[ -x /usr/sbin/mosquitto ] || skip "no /usr/sbin/mosquitto"
	command -v mosquitto_pub >/dev/null || skip "no mosquitto_pub"
	command -v jq >/dev/null || skip "no jq"
	PLUGIN_SO="$MOAT_BUILD/moat_broker.so"
	[ -f "$PLUGIN_SO" ] || fail "plugin not built: $PLUGIN_SO"
	# Mosquitto started as root runs as user mosquitto: it must reach every file it reads.
	chmod 755 "$T"
	mkdir -p "$PB/pki" "$PB/broker" "$PB/log"
	chmod 755 "$PB" "$PB/pki" "$PB/broker"
	if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
		chown mosquitto "$PB/log"
	fi
	chmod 755 "$PB/log"
}

# plugin_pki: a CA, a server certificate for 127.0.0.1/localhost and an empty CRL.
plugin_pki() {
	local p="$PB/pki"
	echo 1000 >"$p/crlnumber"
	test_ca_conf "$p" "certificate = $p/ca.crt" "private_key = $p/ca.key" \
		"crlnumber = $p/crlnumber" "default_days = 2" "default_crl_days = 2"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$p/ca.key" -out "$p/ca.crt" -subj "/CN=moat-test-ca" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	plugin_cert server localhost server
	plugin_crl
	chmod 644 "$p/ca.crt" "$p/server.crt" "$p/crl.pem"
	# The broker's key: readable by the broker's user only.
	if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
		chown mosquitto "$p/server.key"
	fi
}

# plugin_cert NAME CN [client|server] [OU]: $PB/pki/NAME.{crt,key} signed by the test CA.
plugin_cert() {
	local name=$1 cn=$2 ext=${3:-client} ou=${4:-device}
	test_ca_sign "$PB/pki" "$name" "/OU=$ou/CN=$cn" "$ext"
}

# plugin_crl: regenerates crl.pem atomically (as moat does), from the CA database.
plugin_crl() {
	local p="$PB/pki"
	openssl ca -gencrl -config "$p/ca.cnf" -out "$p/crl.pem.tmp" 2>/dev/null
	chmod 644 "$p/crl.pem.tmp"
	mv -f "$p/crl.pem.tmp" "$p/crl.pem"
}

# plugin_revoke NAME: revokes NAME's certificate and rewrites the CRL.
plugin_revoke() {
	openssl ca -config "$PB/pki/ca.cnf" -revoke "$PB/pki/$1.crt" 2>/dev/null
	plugin_crl
}

# plugin_policy FILE-CONTENT: writes broker/policy atomically (temporary + rename).
plugin_policy() {
	printf '%s' "$1" >"$PB/broker/policy.tmp"
	chmod 644 "$PB/broker/policy.tmp"
	mv -f "$PB/broker/policy.tmp" "$PB/broker/policy"
}

# plugin_conf: a minimal TLS-only mosquitto.conf with the plugin on $PLUGIN_PORT.
plugin_conf() {
	PLUGIN_PORT=$(free_port)
	cat >"$PB/broker/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous false
persistence false
log_dest file $PB/log/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
connection_messages true
listener $PLUGIN_PORT 127.0.0.1
cafile $PB/pki/ca.crt
certfile $PB/pki/server.crt
keyfile $PB/pki/server.key
crlfile $PB/pki/crl.pem
require_certificate true
tls_version tlsv1.2
plugin $PLUGIN_SO
plugin_opt_policy_file $PB/broker/policy
plugin_opt_crl_file $PB/pki/crl.pem
plugin_opt_ca_file $PB/pki/ca.crt
plugin_opt_events_file $PB/log/events.jsonl
EOF
	chmod 644 "$PB/broker/mosquitto.conf"
}

# plugin_mosquitto_env: the command prefix that runs mosquitto with the plugin of this
# build. The plugin may be built with ASan/UBSan and the broker is not, so the runtimes
# must then be loaded first; Mosquitto's own allocations at exit are not ours to judge.
plugin_mosquitto_env() {
	if [ "${MOAT_SANITIZE:-OFF}" = ON ]; then
		echo "env LD_PRELOAD=$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so) ASAN_OPTIONS=detect_leaks=0:abort_on_error=0"
	fi
}

# moat_up_test [ARGS...]: `moat up ARGS` with what an ASan-built plugin needs in the
# uninstrumented broker (plugin_mosquitto_env); `moat down` runs at cleanup. Sets $out.
moat_up_test() {
	on_exit "moat down --timeout $(deadline 20s)"
	# shellcheck disable=SC2046 # the prefix is words without spaces
	expect_ok "moat up" $(plugin_mosquitto_env) moat up --timeout "$(deadline 30s)" "$@"
}

# plugin_start: starts mosquitto with $PB/broker/mosquitto.conf and waits until the plugin
# said it is ready (no probe connection: that would itself be a security event).
plugin_start() {
	local env
	read -r -a env <<<"$(plugin_mosquitto_env)"
	: >"$PB/log/mosquitto.log"
	[ "$(id -u)" = 0 ] && chown mosquitto "$PB/log/mosquitto.log" 2>/dev/null || true
	e2e_bg "${env[@]}" /usr/sbin/mosquitto -c "$PB/broker/mosquitto.conf"
	PLUGIN_BROKER_PID=$!
	local i
	for i in $(seq 1 "$(deadline 100)"); do
		grep -q "moat: plugin ready" "$PB/log/mosquitto.log" 2>/dev/null &&
			grep -q "Opening ipv4 listen socket on port $PLUGIN_PORT" "$PB/log/mosquitto.log" &&
			return 0
		kill -0 "$PLUGIN_BROKER_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$PB/log/mosquitto.log" >&2 || true
	fail "mosquitto with the plugin did not start"
}

# plugin_start_ab [POLICY_LINES]: the broker with the plugin for the usual cast of the
# plugin tests: devices dev-a and dev-b and the service svc-1 (certificate "svc"), with
# POLICY_LINES (limits, flapping, subscriptions...) before the identities of the policy.
plugin_start_ab() {
	plugin_require
	plugin_pki
	local d
	for d in dev-a dev-b; do plugin_cert "$d" "$d"; done
	plugin_cert svc svc-1 client service
	plugin_policy "moat-policy 1
${1:+$1
}identity dev-a device active
identity dev-b device active
identity svc-1 service active
end identities=3
"
	plugin_conf
	plugin_start
}

# plugin_client_args NAME [CLIENT_ID]: the TLS options of mosquitto_pub/sub for NAME's cert.
plugin_client_args() {
	local name=$1 id=${2:-$1}
	echo "-h 127.0.0.1 -p $PLUGIN_PORT --cafile $PB/pki/ca.crt --cert $PB/pki/$name.crt --key $PB/pki/$name.key -i $id"
}

# plugin_pub NAME CLIENT_ID TOPIC PAYLOAD [extra mosquitto_pub args]: one QoS 1 publish
# (MQTT v5, so a dropped message shows as a refused PUBACK).
plugin_pub() {
	local name=$1 id=$2 topic=$3 payload=$4
	shift 4
	# shellcheck disable=SC2046
	timeout "$(deadline 20)" mosquitto_pub $(plugin_client_args "$name" "$id") -V mqttv5 -q 1 \
		-t "$topic" -m "$payload" "$@"
}

# plugin_sub_bg NAME CLIENT_ID OUTFILE TOPIC...: a background subscriber printing
# "topic payload" lines to OUTFILE; returns once the plugin let it connect. Sets
# PLUGIN_SUB_PID (not a command substitution: the pid must reach lib.sh's cleanup).
plugin_sub_bg() {
	local name=$1 id=$2 out=$3
	shift 3
	local args=()
	for t in "$@"; do args+=(-t "$t"); done
	: >"$out"
	# shellcheck disable=SC2046
	e2e_bg stdbuf -oL mosquitto_sub $(plugin_client_args "$name" "$id") -V mqttv5 -q 1 -v \
		"${args[@]}" >"$out" 2>"$out.err"
	PLUGIN_SUB_PID=$!
	plugin_wait_event connected "$id" "" 10 || fail "subscriber $id did not connect"
	local last=${*: -1}
	wait_for 10 grep -qF -- " $id 1 $last" "$PB/log/mosquitto.log" ||
		fail "subscriber $id did not subscribe to $last"
}

# plugin_events KIND [IDENTITY] [REASON]: matching events in the events file, one per line.
plugin_events() {
	local kind=$1 ident=${2:-} reason=${3:-}
	[ -f "$PLUGIN_EVENTS" ] || return 0
	jq -c --arg k "$kind" --arg i "$ident" --arg r "$reason" \
		'select(.kind == $k and ($i == "" or .identity == $i) and ($r == "" or .reason == $r))' \
		"$PLUGIN_EVENTS"
}

# plugin_more_events KIND IDENTITY REASON N: more than N matching events were written (for
# wait_for, which runs its command again on every try).
plugin_more_events() { [ "$(plugin_events "$1" "$2" "$3" | wc -l)" -gt "$4" ]; }

# plugin_wait_event KIND IDENTITY REASON SECONDS: waits until such an event was written.
plugin_wait_event() {
	local kind=$1 ident=${2:-} reason=${3:-} limit=${4:-10}
	local end=$((SECONDS + $(deadline "$limit")))
	while [ -z "$(plugin_events "$kind" "$ident" "$reason")" ]; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.05
	done
}

# plugin_expect_event KIND IDENTITY REASON: fails the test unless such an event exists.
plugin_expect_event() {
	plugin_wait_event "$1" "${2:-}" "${3:-}" 10 ||
		fail "no $1 event for '${2:-any}' (reason '${3:-any}') in $PLUGIN_EVENTS"
	echo "ok - event $1 identity=${2:-any} reason=${3:-any}"
}

# ---- broker_*: the broker as `moat up` runs it, on a deployment made by moat init, with
# moat's own PKI. $D is the deployment (lib.sh's e2e_init), $BROKER_PORT its TLS port.

# broker_require: skips unless the real broker and its clients are here; makes the test's
# directory reachable by the broker's user (mktemp makes it 0700).
broker_require() {
	[ -x /usr/sbin/mosquitto ] || skip "no /usr/sbin/mosquitto"
	command -v mosquitto_pub >/dev/null || skip "no mosquitto_pub"
	command -v openssl >/dev/null || skip "no openssl"
	chmod 755 "$T"
	if [ "${MOAT_SANITIZE:-OFF}" = ON ]; then
		# The plugin is built with ASan/UBSan and Mosquitto is not: preload the runtimes
		# in the broker only, through the MOAT_MOSQUITTO override moat up honours.
		cat >"$T/mosquitto-asan" <<EOF2
#!/bin/sh
LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 exec /usr/sbin/mosquitto "\$@"
EOF2
		chmod 755 "$T/mosquitto-asan"
		export MOAT_MOSQUITTO="$T/mosquitto-asan"
	fi
}

# broker_deploy: a deployment with devices dev-a, dev-b, service svc-1 and operator op-1.
broker_deploy() {
	e2e_init
	moat device add dev-a >/dev/null
	moat device add dev-b >/dev/null
	moat identity add svc-1 --role service >/dev/null
	moat identity add op-1 --role operator >/dev/null
	on_exit "moat --dir '$D' down --timeout $(deadline 20s)"
}

# broker_args NAME [CLIENT_ID]: mosquitto_pub/sub TLS options for identity NAME.
broker_args() {
	local name=$1 id=${2:-$1} i="$D/pki/identities/$1"
	echo "-h 127.0.0.1 -p $BROKER_PORT --cafile $D/pki/ca.crt --cert $i/cert.pem --key $i/key.pem -i $id"
}

# broker_pub NAME CLIENT_ID TOPIC PAYLOAD [args]: one QoS 1 publish, MQTT v5.
broker_pub() {
	local name=$1 id=$2 topic=$3 payload=$4
	shift 4
	# shellcheck disable=SC2046
	timeout "$(deadline 20)" mosquitto_pub $(broker_args "$name" "$id") -V mqttv5 -q 1 -t "$topic" \
		-m "$payload" "$@"
}

# broker_sub_bg NAME CLIENT_ID OUTFILE TOPIC...: a background subscriber printing "topic
# payload" lines; returns once Mosquitto logged its last subscription. Sets BROKER_SUB_PID.
broker_sub_bg() {
	local name=$1 id=$2 out=$3
	shift 3
	local args=() t
	for t in "$@"; do args+=(-t "$t"); done
	: >"$out"
	# only the log after this mark: a line of an earlier subscriber with the same client id
	# and filter must not pass for this one (a publish right after would find nobody there)
	local mark
	mark=$(log_lines "$D/log/mosquitto.log")
	# shellcheck disable=SC2046
	e2e_bg stdbuf -oL mosquitto_sub $(broker_args "$name" "$id") -V mqttv5 -q 1 -v \
		"${args[@]}" >"$out" 2>"$out.err"
	BROKER_SUB_PID=$!
	local last=${*: -1}
	wait_for 15 log_has_since "$D/log/mosquitto.log" "$mark" -F -- " $id 1 $last" ||
		fail "subscriber $id did not subscribe to $last: $(cat "$out.err")"
}

# broker_wait_line FILE TEXT: waits until FILE has a line containing TEXT (messages are
# asserted by their arrival, with a marker message after the ones that must not arrive).
broker_wait_line() {
	wait_for 15 grep -qF -- "$2" "$1" || fail "'$2' never arrived in $1: $(cat "$1")"
}

# broker_ca_sign NAME CN [days|expired]: $T/x/NAME.{crt,key}, a client certificate from
# the deployment's CA made with the openssl CLI (for certificates moat would never issue).
broker_ca_sign() {
	local name=$1 cn=$2 when=${3:-1} x="$T/x"
	local dates=(-days "$when")
	[ "$when" = expired ] && dates=(-startdate 20200101000000Z -enddate 20200102000000Z)
	test_ca_conf "$x"
	test_ca_sign "$x" "$name" "/OU=device/CN=$cn" client "${dates[@]}" -cert "$D/pki/ca.crt" \
		-keyfile "$D/pki/ca.key" -passin env:MOAT_CA_PASSPHRASE
}

# broker_foreign NAME CN [self]: $T/x/NAME.{crt,key} from another CA, or self-signed.
broker_foreign() {
	local name=$1 cn=$2 x="$T/x"
	mkdir -p "$x"
	if [ "${3:-}" = self ]; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-keyout "$x/$name.key" -out "$x/$name.crt" -subj "/OU=device/CN=$cn" \
			-addext "extendedKeyUsage=clientAuth" 2>/dev/null
		return
	fi
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$x/other-ca.key" -out "$x/other-ca.crt" -subj "/CN=other CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$x/$name.key" \
		-out "$x/$name.csr" -subj "/OU=device/CN=$cn" 2>/dev/null
	printf 'extendedKeyUsage=clientAuth\n' >"$x/ext.cnf"
	openssl x509 -req -in "$x/$name.csr" -CA "$x/other-ca.crt" -CAkey "$x/other-ca.key" \
		-CAcreateserial -days 2 -extfile "$x/ext.cnf" -out "$x/$name.crt" 2>/dev/null
}

# What refused clients try to publish: valid telemetry, so only the refusal can stop it.
BROKER_REFUSED_MSG='{"device_id":"dev-a","refused":true}'

# broker_pub_cert CRT KEY CLIENT_ID TOPIC: a publish with an arbitrary certificate.
broker_pub_cert() {
	timeout "$(deadline 20)" mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$D/pki/ca.crt" \
		--cert "$1" --key "$2" -i "$3" -V mqttv5 -q 1 -t "$4" -m "$BROKER_REFUSED_MSG"
}

# broker_refusals: the refusals every mode shares (TLS level): run with a broker up and a
# subscriber of svc-1 writing to $1; none of the refused publishes may arrive.
broker_refusals() {
	local subout=$1 topic=devices/dev-a/telemetry
	expect_fail "no client certificate" timeout "$(deadline 20)" mosquitto_pub -h 127.0.0.1 \
		-p "$BROKER_PORT" --cafile "$D/pki/ca.crt" -i dev-a -V mqttv5 -q 1 -t $topic -m "$BROKER_REFUSED_MSG"
	broker_foreign other dev-a
	expect_fail "certificate from another CA" broker_pub_cert "$T/x/other.crt" "$T/x/other.key" dev-a $topic
	broker_foreign self dev-a self
	expect_fail "self-signed certificate" broker_pub_cert "$T/x/self.crt" "$T/x/self.key" dev-a $topic
	broker_ca_sign old dev-a expired
	expect_fail "expired certificate" broker_pub_cert "$T/x/old.crt" "$T/x/old.key" dev-a $topic
	# The server refuses the old protocol versions itself (the client is told to offer them).
	local v
	for v in tls1 tls1_1; do
		set +e
		out_v=$(openssl s_client -connect "127.0.0.1:$BROKER_PORT" -"$v" \
			-cipher 'DEFAULT@SECLEVEL=0' -CAfile "$D/pki/ca.crt" </dev/null 2>&1)
		set -e
		assert_contains "$out_v" "alert protocol version"
		echo "ok - refused: $v (server: protocol version alert)"
	done
	set +e
	out_v=$(openssl s_client -connect "127.0.0.1:$BROKER_PORT" -tls1_2 \
		-cipher ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256 -CAfile "$D/pki/ca.crt" \
		</dev/null 2>&1)
	set -e
	assert_contains "$out_v" "alert handshake failure"
	echo "ok - refused: TLS 1.2 without AEAD (CBC suites)"
	# Plaintext MQTT CONNECT on the TLS port: the broker must not answer with a CONNACK.
	expect_fail "plaintext MQTT on the broker port" timeout "$(deadline 20)" mosquitto_pub -h 127.0.0.1 \
		-p "$BROKER_PORT" -i dev-a -q 1 -t $topic -m "$BROKER_REFUSED_MSG"
	# Nothing refused arrived: a marker sent after them arrives alone.
	broker_pub dev-a dev-a $topic '{"device_id":"dev-a","marker":"refusals"}'
	broker_wait_line "$subout" '"marker":"refusals"'
	if grep -qF '"refused":true' "$subout"; then fail "a refused publish was delivered: $(cat "$subout")"; fi
	pass "no refused publish was delivered"
}

# plugin_kicked_within IDENTITY REASON FILE: waits for IDENTITY's revoked_kicked event and
# checks it came within 2 s of FILE's last change (the CRL or the policy: the requirement
# is measured from the change, not from the start of the command that made it).
plugin_kicked_within() {
	local ident=$1 reason=$2 file=$3
	plugin_wait_event revoked_kicked "$ident" "$reason" 10 || fail "$ident was not kicked ($reason)"
	local changed kicked took
	changed=$(date -r "$file" +%s%3N)
	kicked=$(plugin_events revoked_kicked "$ident" "$reason" | jq -r '.time_ms' | head -1)
	took=$((kicked - changed))
	[ "$took" -le 2000 ] || fail "$ident was kicked $took ms after $file changed"
	echo "ok - $ident kicked (${reason:-any reason}) $took ms after $(basename "$file") changed"
}

# plugin_client_closed PID ERRFILE IDENTITY: the client itself (a plugin_sub_bg or sub_bg
# subscriber, PID) saw its connection closed: it exits on its own within 10 s (mosquitto_sub
# stops when the broker disconnects it). The test never kills it, so a client the broker
# kept connected fails here.
plugin_client_closed() {
	local pid=$1 errfile=$2 ident=$3
	wait_for 10 eval "! kill -0 $pid" ||
		fail "$ident's own connection was not closed: its client is still running"
	local rc=0
	wait "$pid" 2>/dev/null || rc=$?
	echo "ok - $ident's client saw its connection closed (it exited, status $rc) $(tail -1 "$errfile")"
}

# broker_check_logs: the supervisor's log (its stderr and Mosquitto's, which loads the
# plugin) must hold no sanitizer report; run after moat down.
broker_check_logs() {
	local f="$D/log/supervisor.log"
	[ -f "$f" ] || return 0
	if grep -qE "AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:" "$f"; then
		cat "$f" >&2
		fail "sanitizer report in $f"
	fi
	pass "no sanitizer report from the supervisor or the broker"
}
