#!/usr/bin/env bash
# test_monitor_two_moatds.sh: two moatds of one deployment split the devices' messages
# (shared subscriptions) without taking each other's MQTT session, and what each records
# of a device adds up: every telemetry message in the registry once, device_state's
# telemetry count the sum of both, the connection state the newest whichever moatd saw it.
# Real Mosquitto with the moat plugin (`moat up`, which runs the first moatd), a second
# moatd started beside it on another port.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
command -v jq >/dev/null || skip "jq not installed"
command -v sqlite3 >/dev/null || skip "sqlite3 not installed"
command -v curl >/dev/null || skip "curl not installed"

broker_deploy
moat identity add backend-service --role service >/dev/null
# messages at once, above a device's default burst: none refused by the rate limit
printf '\n[policy]\ndevice_burst = 1000\n\n[monitor]\ningest_batch = 5\n' >>"$D/moat.conf"
expect_ok "config check" moat config check
moat_up_test
wait_for 30 grep -q "event=ingest_subscribed as=backend-service" "$D/log/moatd.log" ||
	fail "the first moatd did not subscribe: $(tail -3 "$D/log/moatd.log")"
P2=$(free_port)
e2e_bg moatd --dir "$D" --listen 127.0.0.1 --port "$P2" >>"$T/moatd2.log" 2>&1
wait_for 30 grep -q "event=ingest_subscribed as=backend-service" "$T/moatd2.log" ||
	fail "the second moatd did not subscribe: $(tail -3 "$T/moatd2.log")"

# each its own session: both connected, with the client ids of their ports
EVENTS="$D/log/security-events.jsonl"
session() { # PORT: the plugin saw that moatd's ingest session connect
	jq_any --arg p "$1" '.kind == "connected" and .identity == "backend-service" and (.client_id | test("^backend-service:ingest-[a-z0-9-]+-" + $p + "$"))' <"$EVENTS"
}
wait_for 10 session "$SERVER_PORT" || fail "no ingest session of the first moatd: $(grep backend-service "$EVENTS" | tail -3)"
wait_for 10 session "$P2" || fail "no ingest session of the second moatd: $(grep backend-service "$EVENTS" | tail -3)"
pass "two moatds, two ingest sessions: backend-service:ingest-<host>-$SERVER_PORT and -$P2"

# 60 telemetry messages from each of two devices, one connection each (QoS 1, in order)
tele() { printf '{"device_id":"%s","device_type":"generic","timestamp":%s,"telemetry":{"t":%s}}\n' "$1" "$(date +%s)" "$2"; }
for dev in dev-a dev-b; do
	for i in $(seq 1 60); do tele "$dev" "$i"; done >"$T/$dev.lines"
	# shellcheck disable=SC2046
	timeout "$(deadline 20)" mosquitto_pub $(broker_args "$dev") -V mqttv5 -q 1 \
		-t "devices/$dev/telemetry" -l <"$T/$dev.lines"
done
rows() { sqlite3 "$D/registry.db" "SELECT count(*) FROM telemetry WHERE device = '$1'"; }
all_rows() { [ "$(rows dev-a)" = 60 ] && [ "$(rows dev-b)" = 60 ]; }
wait_for 30 all_rows || fail "telemetry rows: dev-a $(rows dev-a), dev-b $(rows dev-b) (want 60 each)"
# both moatds recorded a share (a batch of each logged: ingest_batch is 5)
metric() { # PORT: messages that moatd recorded, from its /metrics
	curl -sS --cacert "$D/pki/ca.crt" --cert "$D/pki/identities/op-1/cert.pem" \
		--key "$D/pki/identities/op-1/key.pem" "https://localhost:$1/metrics" |
		sed -n 's/^moat_ingest_messages_recorded_total \([0-9]*\).*/\1/p'
}
m1=$(metric "$SERVER_PORT")
m2=$(metric "$P2")
[ "${m1:-0}" -gt 0 ] && [ "${m2:-0}" -gt 0 ] || fail "the messages were not split: $m1 and $m2 recorded"
pass "every telemetry message recorded once, split between the two moatds ($m1 and $m2)"

counted() { [ "$(moat --json device show "$1" | jq -r .telemetry_messages)" = "$2" ]; }
wait_for 20 counted dev-a 60 && wait_for 20 counted dev-b 60 ||
	fail "device_state's telemetry counts: dev-a $(moat --json device show dev-a | jq -r .telemetry_messages), dev-b $(moat --json device show dev-b | jq -r .telemetry_messages) (want 60: the sum of both moatds')"

# the connection state: online, then a second later offline (one moatd records each);
# then more telemetry of dev-a, which both moatds record and flush with the copy of the
# row they hold: the one that saw "online" must not write it back over the newer offline
state_is() { moat --json device show dev-a | jq -e --arg s "$1" '.state == $s' >/dev/null; }
status() { broker_pub dev-a dev-a devices/dev-a/status "{\"device_id\":\"dev-a\",\"status\":\"$1\",\"timestamp\":$(date +%s%3N)}"; }
status online
wait_for 20 state_is online || fail "dev-a not online: $(moat --json device show dev-a | jq -c .state)"
sleep 1 # moatd's clock orders the two (each stamped by the moatd that received it)
status offline
wait_for 20 state_is offline || fail "dev-a not offline: $(moat --json device show dev-a | jq -c .state)"
for i in $(seq 1 10); do tele dev-a "$i"; done >"$T/more.lines"
# shellcheck disable=SC2046
timeout "$(deadline 20)" mosquitto_pub $(broker_args dev-a) -V mqttv5 -q 1 \
	-t devices/dev-a/telemetry -l <"$T/more.lines"
wait_for 20 counted dev-a 70 || fail "dev-a's count after 10 more: $(moat --json device show dev-a | jq -r .telemetry_messages)"
state_is offline || fail "dev-a's state went back: $(moat --json device show dev-a | jq -c '{state, state_at_ms}')"
pass "device_state adds both moatds' counts and keeps the newest state"

# neither moatd's session was taken over by the other
if jq_any '.kind == "disconnected" and .identity == "backend-service" and (.client_id | test(":ingest"))' <"$EVENTS"; then
	fail "an ingest session was disconnected: $(grep '"disconnected"' "$EVENTS" | grep backend-service)"
fi
[ "$(grep -c event=ingest_subscribed "$T/moatd2.log")" = 1 ] || fail "the second moatd resubscribed"
[ "$(grep -c event=ingest_subscribed "$D/log/moatd.log")" = 1 ] || fail "the first moatd resubscribed"
pass "no ingest session kicked"
