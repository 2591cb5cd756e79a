# lib_monitor.sh: helpers for the export and metrics tests (sourced after lib.sh and
# lib_agent.sh, not run): the test's own PKI for collectors, a real rsyslog and an HTTPS
# webhook receiver on loopback.

# monitor_pki: $T/xpki/ca.crt and a server certificate (localhost, 127.0.0.1) for the
# collector and the webhook receiver, from a CA that is not the deployment's.
monitor_pki() {
	X="$T/xpki"
	mkdir -p "$X"
	test_ca_conf "$X"
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$X/ca.key" -subj "/CN=Collector Test CA" -days 2 -out "$X/ca.crt" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	test_ca_sign "$X" srv "/CN=localhost" server -cert "$X/ca.crt" -keyfile "$X/ca.key" -days 1
}

# rsyslog_start PORT OUT: Debian's rsyslogd in the foreground with its own configuration:
# one TLS listener (gtls, the test's certificate) on 127.0.0.1:PORT writing each record's
# raw message as one line of OUT.
rsyslog_start() {
	local port=$1 out=$2 rs="$T/rsyslog"
	[ -x /usr/sbin/rsyslogd ] || skip "rsyslog not installed (scripts/bootstrap installs it)"
	[ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ] ||
		skip "rsyslog-gnutls not installed (scripts/bootstrap installs it)"
	mkdir -p "$rs"
	: >"$out"
	cat >"$rs/rsyslog.conf" <<EOF2
global(workDirectory="$rs" maxMessageSize="16k"
       defaultNetstreamDriver="gtls"
       defaultNetstreamDriverCAFile="$X/ca.crt"
       defaultNetstreamDriverCertFile="$X/srv.crt"
       defaultNetstreamDriverKeyFile="$X/srv.key")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" port="$port" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%\n")
*.* action(type="omfile" file="$out" template="raw" flushOnTXEnd="on" asyncWriting="off")
EOF2
	e2e_bg /usr/sbin/rsyslogd -n -f "$rs/rsyslog.conf" -i "$rs/rsyslogd.pid" >"$rs/stdout" 2>&1
	RSYSLOG_PID=$!
	wait_for 10 agent_port_open "$port" || fail "rsyslogd did not listen: $(cat "$rs/stdout")"
}

# rsyslog_start_plain PORT OUT: the same rsyslogd with one plain TCP listener (imtcp, no
# TLS) on 127.0.0.1:PORT, for siem_url = tcp://.
rsyslog_start_plain() {
	local port=$1 out=$2 rs="$T/rsyslog-plain"
	[ -x /usr/sbin/rsyslogd ] || skip "rsyslog not installed (scripts/bootstrap installs it)"
	mkdir -p "$rs"
	: >"$out"
	cat >"$rs/rsyslog.conf" <<EOF2
global(workDirectory="$rs" maxMessageSize="16k")
module(load="imtcp")
input(type="imtcp" port="$port" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%\n")
*.* action(type="omfile" file="$out" template="raw" flushOnTXEnd="on" asyncWriting="off")
EOF2
	e2e_bg /usr/sbin/rsyslogd -n -f "$rs/rsyslog.conf" -i "$rs/rsyslogd.pid" >"$rs/stdout" 2>&1
	RSYSLOG_PID=$!
	wait_for 10 agent_port_open "$port" || fail "rsyslogd did not listen: $(cat "$rs/stdout")"
}

# webhook_start PORT OUT [FAIL_FIRST [CERT KEY]]: webhook_receiver.py with the test's
# certificate (or CERT and KEY).
webhook_start() {
	: >>"$2"
	e2e_bg python3 "$MOAT_SRC/tests/e2e/webhook_receiver.py" "$1" "${4:-$X/srv.crt}" \
		"${5:-$X/srv.key}" "$2" "${3:-0}"
	WEBHOOK_PID=$!
	wait_for 10 agent_port_open "$1" || fail "webhook receiver did not listen"
}

# ocurl ID ARGS...: curl as operator (or any identity) ID to moatd, verified.
ocurl() {
	local id=$1; shift
	curl -sS --max-time "$(deadline 60)" --cacert "$D/pki/ca.crt" \
		--cert "$D/pki/identities/$id/cert.pem" --key "$D/pki/identities/$id/key.pem" "$@"
}
