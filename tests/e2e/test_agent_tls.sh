#!/usr/bin/env bash
# moat-agent refuses what it must refuse, with a clear one-line reason and no connection:
# a CA file that did not sign the broker's certificate, a broker host name that the
# broker's certificate does not name, an expired device certificate, and a system clock
# before the certificate's notBefore. There is no configuration key that turns
# verification off (an attempt is an unknown-key error).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_agent.sh"

# The broker certificate names only "localhost", so 127.0.0.1 is a wrong host name.
e2e_init --broker-host localhost
moat device add dev1 >/dev/null
agent_export dev1
agent_broker_start
connected() { grep -q "as dev1" "$T/broker/mosquitto.log"; }

# Control: the exported configuration connects.
moat-agent --config "$CONF" 2>"$T/ok.log" &
pid=$!
wait_grep 10 'event=connected' "$T/ok.log" || fail "control agent did not connect: $(cat "$T/ok.log")"
kill -TERM $pid; wait $pid || true
connected || fail "control: broker saw no connection"
pass "control: the exported configuration connects"
# forget the control connection in the broker log
agent_broker_stop
: >"$T/broker/mosquitto.log"
agent_broker_start

# run_refused NAME CONF PATTERN: runs the agent until it has been refused twice with
# PATTERN; it must never complete a connection. The second refusal is the positive signal:
# the agent retries only after its first attempt is over (had that attempt connected, the
# agent would have logged it, and sent the CONNECT the broker logs, before retrying), and
# the retry was refused as well.
run_refused() {
	local name=$1 conf=$2 pattern=$3
	moat-agent --config "$conf" 2>"$T/$name.log" &
	local p=$!
	E2E_PIDS+=("$p")
	wait_grep 10 "event=connect_failed .*attempt=2 .*$pattern" "$T/$name.log" ||
		fail "$name: not refused twice with '$pattern': $(cat "$T/$name.log")"
	kill -TERM $p; wait $p || true
	grep -q "event=connect_failed .*attempt=1 .*$pattern" "$T/$name.log" ||
		fail "$name: the first attempt was not refused with '$pattern': $(cat "$T/$name.log")"
	! grep -q 'event=connected' "$T/$name.log" || fail "$name: the agent connected"
	! connected || fail "$name: the broker accepted the agent"
	echo "ok - refused: $name: $(grep -m1 "$pattern" "$T/$name.log" | sed 's/.*error=//')"
}

# 1. a wrong CA file: another CA entirely
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
	-subj "/CN=impostor CA" -keyout "$T/other-ca.key" -out "$T/other-ca.crt" 2>/dev/null
cp -r "$T/dev1" "$T/wrongca"
agent_set "$T/wrongca/agent.conf" broker ca "$T/other-ca.crt"
run_refused wrong-ca "$T/wrongca/agent.conf" 'certificate verify failed'

# 2. a wrong broker host name (reaches the broker; the certificate does not name it)
cp -r "$T/dev1" "$T/wronghost"
agent_set "$T/wronghost/agent.conf" broker host 127.0.0.1
run_refused wrong-host "$T/wronghost/agent.conf" 'host name verification failed'

# 3. an expired certificate: refused before any connection
cp -r "$T/dev1" "$T/expired"
agent_sign_dated dev1 20200101000000Z 20200201000000Z "$T/expired"
expect_fail "expired certificate" moat-agent --config "$T/expired/agent.conf"
assert_contains "$errout" "expired on 2020-02-01"
[ "$(echo "$errout" | wc -l)" -eq 1 ] || fail "more than one line: $errout"

# 4. the clock before notBefore: the error names the clock
cp -r "$T/dev1" "$T/future"
agent_sign_dated dev1 20990101000000Z 21000101000000Z "$T/future"
expect_fail "clock before notBefore" moat-agent --config "$T/future/agent.conf"
assert_contains "$errout" "system clock"
assert_contains "$errout" "notBefore (2099-01-01"
! connected || fail "the broker saw a connection"
pass "expired and not-yet-valid certificates: no connection"

# 5. no way to turn verification off
cp -r "$T/dev1" "$T/insecure"
echo "insecure = true" >>"$T/insecure/agent.conf"
agent_set "$T/insecure/agent.conf" broker tls_insecure true
expect_fail "an option to disable verification" moat-agent --config "$T/insecure/agent.conf"
assert_contains "$errout" "insecure"

# 6. broken configuration files: one clear line each
printf '[agent]\nid = Bad/Id\n' >"$T/bad1.conf"
expect_fail "invalid identity" moat-agent --config "$T/bad1.conf"
cp "$CONF" "$T/bad2.conf"; agent_set "$T/bad2.conf" agent interval 0s
expect_fail "interval 0" moat-agent --config "$T/bad2.conf"
expect_fail "missing file" moat-agent --config "$T/nope.conf"

agent_sanitizer_clean "$T"/*.log "$T"/*.err
