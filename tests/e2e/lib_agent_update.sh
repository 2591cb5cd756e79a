# lib_agent_update.sh: helpers for the moat-agent update tests (sourced after lib.sh,
# lib_broker.sh, lib_moatd.sh, lib_agent.sh and lib_update.sh; not run). The deployment's
# own services run under `moat up` (Mosquitto with the plugin, moatd with its event
# ingest); moat-agent itself is the firmware image, provisioned as 1.0.0 into a device
# state directory $BS and started by moat-boot.

# au_image VERSION: $T/agent-VERSION, the agent binary with a marker appended (an ELF file
# runs with trailing bytes) so each release has its own hash.
au_image() {
	cp "$AGENT_BIN" "$T/agent-$1"
	echo "moat-agent-update-e2e $1" >>"$T/agent-$1"
}

# au_setup: the deployment (upd_setup: two firmware keys, threshold 2, device dev1 of type
# $TYPE), operators ops (commands) and watcher (moat watch, its own client id), the
# agent's bundle $CONF with a 1 s interval, $BS provisioned with the agent as 1.0.0, and
# `moat up` with moatd's ingest subscribed.
au_setup() {
	broker_require
	command -v curl >/dev/null || skip "curl not installed"
	command -v moatd >/dev/null || fail "moatd not built"
	export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
	[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"
	AGENT_BIN=$(command -v moat-agent) || fail "moat-agent not built"
	upd_setup
	chmod 0755 "$T"
	moat identity add backend-service --role service >/dev/null
	moat identity add ops --role operator >/dev/null
	moat identity add watcher --role operator >/dev/null
	au_image 1.0.0
	sign "$T/agent-1.0.0" 1.0.0 1 "$T/agent-1.0.0.json"
	BS="$T/boot"
	moat-boot --state "$BS" --provision --device-type "$TYPE" \
		--trust "$D/firmware/keys/trust.json" --image "$T/agent-1.0.0" \
		--envelope "$T/agent-1.0.0.json" >/dev/null || fail "provisioning the agent image failed"
	agent_export dev1
	agent_set "$CONF" agent interval 1s
	moat_up_test
	wait_for 30 grep -q "event=ingest_subscribed as=backend-service" "$D/log/moatd.log" ||
		fail "moatd ingest not subscribed: $(tail -5 "$D/log/moatd.log")"
}

# au_start: moat watch as watcher into $T/watch.json, then moat-boot running the agent
# (log $T/boot.log, pid $BOOT); waits for its telemetry and its update check at start.
au_start() {
	local mark
	mark=$(log_lines "$D/log/mosquitto.log")
	moat watch --all --json --as watcher --timeout "$(deadline 300s)" >"$T/watch.json" 2>"$T/watch.err" &
	E2E_PIDS+=($!)
	watch_wait_subscribed "$D/log/mosquitto.log" "$mark" watcher $!
	moat-boot --state "$BS" --trial-seconds 60 -- moat-agent --config "$CONF" >"$T/boot.log" 2>&1 &
	BOOT=$!
	E2E_PIDS+=("$BOOT")
	wait_grep 30 '"kind":"telemetry"' "$T/watch.json" ||
		fail "no telemetry from the agent under moat-boot: $(tail -5 "$T/boot.log")"
	au_wait_event checked
}

# au_wait_event STAGE [N]: moatd recorded at least N (default 1) update events STAGE of dev1.
au_wait_event() {
	local n=${2:-1}
	wait_for 60 count_at_least "$n" "event=update_event id=dev1 stage=$1" "$D/log/moatd.log" ||
		fail "moatd did not record $1 (x$n): $(grep update_event "$D/log/moatd.log" | tail -5)"
}

# au_stop: moat-boot (and the agent) stop cleanly on SIGTERM; no sanitizer reports.
au_stop() {
	kill -TERM "$BOOT"
	wait "$BOOT" || fail "moat-boot did not stop cleanly on SIGTERM"
	agent_sanitizer_clean "$T"/*.log "$D/log/moatd.log"
}
