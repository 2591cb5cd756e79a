#!/usr/bin/env bash
# test_watch_controls.sh: what a device writes never reaches the operator's terminal as
# control. A fake device (mosquitto_pub with its certificate) answers with a response whose
# detail carries U+009B (CSI), U+009D (OSC) and U+202E (right-to-left override), raw and as
# JSON escapes: the schema refuses it, so `moat cmd` ignores it and prints the device's
# next, valid answer; `moat watch` shows it as (invalid) with every such character escaped,
# as text and as JSON. No raw ESC, C1 or bidi byte appears in any output.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_agent.sh"
command -v mosquitto_pub >/dev/null || skip "mosquitto_pub not installed"
command -v mosquitto_sub >/dev/null || skip "mosquitto_sub not installed"
[ -x /usr/sbin/mosquitto ] || skip "mosquitto not installed"

e2e_init
moat device add dev1 >/dev/null
moat identity add ops --role operator >/dev/null
moat identity add watcher --role operator >/dev/null
agent_broker_start

CSI=$'\xc2\x9b' OSC=$'\xc2\x9d' RLO=$'\xe2\x80\xae' ESC=$'\x1b'
# resp ID DETAIL: a command response of dev1 (DETAIL is JSON string content)
resp() {
	printf '{"device_id":"dev1","command":"diagnostics","status":"completed","id":"%s","detail":"%s","timestamp":1}' "$1" "$2"
}
# no_controls FILE: no raw ESC, C1 control or bidi override/isolate in FILE
no_controls() {
	python3 - "$1" <<'PY'
import re, sys
data = open(sys.argv[1], "rb").read()
text = data.decode("utf-8")  # and valid UTF-8
bad = re.findall("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text)
sys.exit("raw control characters: %r" % bad if bad else 0)
PY
}

# ---- moat cmd: the bad answer is refused, the good one printed ----
# fake_device: answers the next command first with control characters, then validly.
fake_device() {
	# shellcheck disable=SC2046
	timeout "$(deadline 20)" mosquitto_sub $(agent_client_args dev1) -t 'devices/dev1/commands/+' \
		-C 1 >"$T/cmd.in" || return 1
	local id
	id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$T/cmd.in")
	agent_pub dev1 devices/dev1/command_responses "$(resp "$id" "owned${CSI}2J${RLO}txt.exe${OSC}0;x")"
	agent_pub dev1 devices/dev1/command_responses "$(resp "$id" 'owned\u009b2J\u202etxt')"
	agent_pub dev1 devices/dev1/command_responses "$(resp "$id" "all good")"
}
# moat cmd sends only to a device that is online: the fake device's retained status says so
# (cleared after, so the watches below see only what they are sent)
# shellcheck disable=SC2046
mosquitto_pub $(agent_client_args dev1) -t devices/dev1/status -r -q 1 \
	-m '{"device_id":"dev1","status":"online","timestamp":1}'
mark=$(log_lines "$T/broker/mosquitto.log")
fake_device &
FAKE=$!
E2E_PIDS+=("$FAKE")
agent_wait_subscribed "$mark" dev1 'devices/dev1/commands/+'
expect_ok "cmd answered with control characters, then validly" moat cmd dev1 diagnostics --as ops --timeout 15s
[ "$out" = "dev1 diagnostics: completed: all good" ] || fail "cmd printed: $(printf '%q' "$out")"
wait "$FAKE" || fail "the fake device did not answer"
# shellcheck disable=SC2046
mosquitto_pub $(agent_client_args dev1) -t devices/dev1/status -r -q 1 -n
pass "moat cmd: the response with C1/bidi controls is refused, the valid one printed"

# ---- moat watch: shown as (invalid), escaped ----
mark=$(log_lines "$T/broker/mosquitto.log")
moat watch dev1 --as watcher --count 4 --timeout "$(deadline 30s)" >"$T/watch.txt" 2>&1 &
W1=$!
moat --json watch dev1 --as ops --count 4 --timeout "$(deadline 30s)" >"$T/watch.json" 2>&1 &
W2=$!
E2E_PIDS+=("$W1" "$W2")
watch_wait_subscribed "$T/broker/mosquitto.log" "$mark" watcher "$W1"
watch_wait_subscribed "$T/broker/mosquitto.log" "$mark" ops "$W2"
agent_pub dev1 devices/dev1/command_responses "$(resp c1 "owned${CSI}2J${RLO}txt${ESC}[31m")"
agent_pub dev1 devices/dev1/command_responses "$(resp c2 'owned\u009d0;title\u0007')"
agent_pub dev1 devices/dev1/status "{\"device_id\":\"dev1\",\"online\":true,\"agent_version\":\"1.0${RLO}\",\"timestamp\":1}"
agent_pub dev1 devices/dev1/command_responses "$(resp c3 "fine")"
wait "$W1" || fail "watch (text) did not see 4 messages: $(cat "$T/watch.txt")"
wait "$W2" || fail "watch (json) did not see 4 messages: $(cat "$T/watch.json")"
cat "$T/watch.txt"
no_controls "$T/watch.txt" || fail "watch printed control characters"
no_controls "$T/watch.json" || fail "watch --json printed control characters"
[ "$(grep -c '(invalid)' "$T/watch.txt")" = 3 ] || fail "not 3 invalid messages: $(cat "$T/watch.txt")"
assert_contains "$(cat "$T/watch.txt")" 'owned\u009b2J\u202etxt\x1b[31m'
assert_contains "$(cat "$T/watch.txt")" '1.0\u202e'
grep -q 'command_responses diagnostics completed id=c3: fine$' "$T/watch.txt" ||
	fail "the valid response is not shown as such: $(cat "$T/watch.txt")"
python3 - "$T/watch.json" <<'PY' || fail "watch --json: $(cat "$T/watch.json")"
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
assert [m["valid"] for m in msgs] == [False, False, False, True], msgs
assert msgs[0]["message"].startswith('{"device_id"') and "\u009b2J\u202etxt\x1b[31m" in msgs[0]["message"], msgs[0]
assert msgs[3]["message"]["detail"] == "fine", msgs[3]
PY
pass "moat watch: responses and status with C1/bidi controls shown as (invalid), escaped"
