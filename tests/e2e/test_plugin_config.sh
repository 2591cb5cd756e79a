#!/usr/bin/env bash
# test_plugin_config.sh: moat_broker.so refuses to start the broker rather than run without
# its policy: missing options, an unknown option, a relative path, a policy file or CRL
# that does not parse. Each failure is one clear line in the broker's log.
source "$MOAT_SRC/tests/e2e/lib.sh"
source "$MOAT_SRC/tests/e2e/lib_broker.sh"

plugin_require
plugin_pki
plugin_policy "moat-policy 1
end identities=0
"
plugin_conf
cp "$PB/broker/mosquitto.conf" "$T/good.conf"

# refused_start WHAT EXPECTED-LOG-TEXT: mosquitto must exit non-zero, saying why.
refused_start() {
	: >"$PB/log/mosquitto.log"
	local env
	read -r -a env <<<"$(plugin_mosquitto_env)"
	set +e
	timeout "$(deadline 20)" "${env[@]}" /usr/sbin/mosquitto -c "$PB/broker/mosquitto.conf" >"$T/mosq.out" 2>&1
	local rc=$?
	set -e
	[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "$1: mosquitto did not refuse to start (rc=$rc)"
	grep -qF -- "$2" "$PB/log/mosquitto.log" "$T/mosq.out" ||
		fail "$1: no '$2' in the log: $(cat "$PB/log/mosquitto.log" "$T/mosq.out")"
	echo "ok - refused: $1"
}
conf_without() { grep -v "$1" "$T/good.conf" >"$PB/broker/mosquitto.conf"; }

conf_without plugin_opt_policy_file
refused_start "no policy file option" "plugin_opt_policy_file and plugin_opt_crl_file are required"
conf_without plugin_opt_crl_file
refused_start "no CRL option" "plugin_opt_policy_file and plugin_opt_crl_file are required"
{ cat "$T/good.conf"; echo "plugin_opt_polcy_file /x"; } >"$PB/broker/mosquitto.conf"
refused_start "a misspelt option" "unknown option plugin_opt_polcy_file"
sed 's|^plugin_opt_events_file .*|plugin_opt_events_file log/events.jsonl|' "$T/good.conf" \
	>"$PB/broker/mosquitto.conf"
refused_start "a relative events path" "plugin_opt_events_file must be an absolute path"

cp "$T/good.conf" "$PB/broker/mosquitto.conf"
plugin_policy "moat-policy 1
identity Bad device active
end identities=1
"
refused_start "a policy that does not parse" "policy:2: identity name 'Bad' is invalid"
rm -f "$PB/broker/policy"
refused_start "a missing policy file" "$PB/broker/policy"
plugin_policy "moat-policy 1
end identities=0
"
cp "$PB/pki/crl.pem" "$T/crl.good"
echo "not a CRL" >"$PB/pki/crl.pem"
sed "s|^crlfile .*|crlfile $T/crl.good|" "$T/good.conf" >"$PB/broker/mosquitto.conf"
refused_start "a CRL that does not parse" "crl.pem: not a PEM CRL"

# And with everything right, it starts.
cp "$T/crl.good" "$PB/pki/crl.pem"
cp "$T/good.conf" "$PB/broker/mosquitto.conf"
plugin_start
pass "plugin configuration is checked at start"
