# lib_update.sh: helpers for the device update e2e tests (sourced after lib.sh, not run).
# A deployment with a firmware key and a device, test "images" (shell scripts that log
# their runs and confirm when on trial), a device state directory provisioned with v1.0.0,
# and a small HTTPS update server (python3 ssl) with mutual TLS against the deployment CA
# that speaks moatd's two firmware routes and can misbehave on request.

export MOAT_FW_PASSPHRASE="fw-update-e2e-passphrase"
TYPE=temp_sensor
RUNLOG="$T/runs"
export RUNLOG

# make_image FILE VERSION [crash]: an executable script, padded to about 96 KiB so the
# download arrives in several chunks. On trial it confirms through moat-boot and exits 0;
# "crash" images die with SIGSEGV before confirming.
make_image() {
	local file=$1 version=$2 kind=${3:-ok}
	{
		echo '#!/bin/sh'
		echo "echo \"$version slot=\$MOAT_BOOT_SLOT trial=\$MOAT_BOOT_TRIAL\" >> \"\$RUNLOG\""
		if [ "$kind" = crash ]; then
			echo 'kill -SEGV $$'
		fi
		echo 'if [ "$MOAT_BOOT_TRIAL" = 1 ]; then moat-boot --state "$MOAT_BOOT_STATE" --confirm >/dev/null || exit 3; fi'
		echo 'exit 0'
		for _ in $(seq 1 1500); do echo "# padding padding padding padding padding padding $version"; done
	} > "$file"
	chmod 0755 "$file"
}

# sign IMAGE VERSION SECURITY_VERSION OUT [extra moat fw sign args...]
sign() {
	local img=$1 ver=$2 sv=$3 out=$4; shift 4
	moat fw sign "$img" --type "${SIGN_TYPE:-$TYPE}" --version "$ver" --security-version "$sv" \
		--out "$out" "$@" >/dev/null 2>&1 || fail "signing $ver failed"
}

# upd_plugin_setup: upd_setup for a test that runs `moat up` (the moat plugin, moatd) and
# simulated devices: the binaries checked, $MOAT_BROKER_PLUGIN set, $T reachable by the
# broker's user, and moatd's service identity added.
upd_plugin_setup() {
	broker_require
	command -v moatd >/dev/null || fail "moatd not built"
	command -v moat-update >/dev/null || fail "moat-update not built"
	export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
	[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"
	upd_setup
	chmod 0755 "$T"
	moat identity add backend-service --role service >/dev/null
}

# upd_setup: deployment $D, keys (threshold 2 of 2), device dev1, image v1.0.0 (sv 1) provisioned into $S.
upd_setup() {
	e2e_init
	# Two signing keys, both required: every release is signed by both.
	KEY_A=$(moat fw keygen --type ec-p256 2>/dev/null)
	moat fw keygen --type ed25519 >/dev/null 2>&1
	moat fw trust --threshold 2 >/dev/null
	moat device add dev1 --type "$TYPE" >/dev/null
	ID="$D/pki/identities/dev1"
	make_image "$T/v1.sh" 1.0.0
	sign "$T/v1.sh" 1.0.0 1 "$T/v1.json"
	S="$T/state"
	moat-boot --state "$S" --provision --device-type "$TYPE" \
		--trust "$D/firmware/keys/trust.json" --image "$T/v1.sh" --envelope "$T/v1.json" \
		>/dev/null || fail "provisioning failed"
}

# srv_start [CERT KEY]: the update server on $SRV_PORT, files in $SRV (envelope.json,
# image.bin, mode; in mode endless it writes the bytes it sent to endless.sent). Client certificates must chain to the deployment CA and not be revoked
# (pki/crl.pem, read at start).
srv_start() {
	local cert=${1:-$D/pki/server.crt} key=${2:-$D/pki/server.key}
	SRV="$T/srv"
	mkdir -p "$SRV"
	rm -f "$SRV/ready"
	SRV_PORT=$(free_port)
	cat > "$T/srv.py" <<'PY'
import http.server, os, ssl, sys
d, port, ca, crl, cert, key = sys.argv[1:7]
def rd(name, default=None):
    try:
        with open(os.path.join(d, name), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return default
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, fmt, *args):
        with open(os.path.join(d, "access.log"), "a") as f:
            f.write("%s range=%s\n" % (self.path, self.headers.get("Range", "-")))
    def send(self, code, body, headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        try:
            self.get()
        except OSError:
            self.close_connection = True  # the client went away (killed, or it hung up)
    def get(self):
        mode = (rd("mode", b"normal") or b"normal").decode().strip()
        if self.path.startswith("/api/firmware/version"):
            env = rd("envelope.json")
            if env is None:
                return self.send(204, b"")
            return self.send(200, env, [("Content-Type", "application/json")])
        if not self.path.startswith("/api/firmware/download/"):
            return self.send(404, b"")
        data = rd("image.bin", b"")
        if mode == "endless":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            sent = 0
            try:
                self.wfile.write(data)
                sent += len(data)
                for _ in range(4096):  # 64 MiB at most: the client must stop long before
                    self.wfile.write(b"\0" * 16384)
                    sent += 16384
                self.wfile.flush()
            except OSError:
                pass  # the client hung up, as it must
            # What the server could hand to the socket: the client's reads plus what the
            # kernel buffers of both ends held when it hung up.
            with open(os.path.join(d, "endless.sent"), "w") as f:
                f.write("%d\n" % sent)
            self.close_connection = True
            return
        if mode == "short":
            return self.send(200, data[: len(data) // 2])
        start = 0
        rng = self.headers.get("Range")
        if rng and mode != "norange":
            start = int(rng.split("=")[1].split("-")[0])
        body = data[start:]
        code, hdrs = 200, []
        if rng and mode != "norange":
            code = 206
            hdrs = [("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))]
        if mode == "cut":
            # Announces everything, sends half, drops the connection: an interruption.
            self.send_response(code)
            for k, v in hdrs:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send(code, body, hdrs)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.minimum_version = ssl.TLSVersion.TLSv1_2
ctx.load_cert_chain(cert, key)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(ca)
ctx.load_verify_locations(crl)
ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
open(os.path.join(d, "ready"), "w").close()
srv.serve_forever()
PY
	e2e_bg python3 "$T/srv.py" "$SRV" "$SRV_PORT" "$D/pki/ca.crt" "$D/pki/crl.pem" "$cert" "$key"
	SRV_PID=$!
	wait_for 10 test -e "$SRV/ready" || fail "update server did not start"
}

srv_stop() {
	kill "$SRV_PID" 2>/dev/null || true
	wait "$SRV_PID" 2>/dev/null || true
}

# offer IMAGE ENVELOPE: what the server offers next.
offer() {
	cp "$1" "$SRV/image.bin"
	cp "$2" "$SRV/envelope.json"
}

# update [extra args]: one check as dev1 against the server.
update() {
	moat-update --state "$S" --server "https://localhost:$SRV_PORT" --ca "$ID/ca.crt" \
		--cert "$ID/cert.pem" --key "$ID/key.pem" --timeout "$(deadline 30)" "$@"
}

# update_report [extra args]: one check with --report. Sets $out (stdout), $errout and
# $rc, and checks the report: every line one JSON object, "downloading" progress lines
# first, one outcome line last; $report is "<outcome> <number of progress lines>".
update_report() {
	set +e
	out=$(update --report "$@" 2>"$T/.stderr")
	rc=$?
	set -e
	errout=$(cat "$T/.stderr")
	report=$(printf '%s\n' "$out" | python3 -c '
import json, sys
lines = sys.stdin.read().split("\n")
assert lines[-1] == "", "no newline at the end"
lines = lines[:-1]
assert lines, "no line"
progress = 0
for i, text in enumerate(lines):
    assert len(text) + 1 <= 1024, "line too long"
    o = json.loads(text)
    assert isinstance(o, dict), "not an object"
    if i < len(lines) - 1:
        assert set(o) == {"stage", "version", "offset", "size"}, "progress keys %s" % sorted(o)
        assert o["stage"] == "downloading"
        assert isinstance(o["offset"], int) and isinstance(o["size"], int)
        assert 0 <= o["offset"] < o["size"]
        progress += 1
    else:
        assert o.get("outcome") in ("up_to_date", "staged", "refused", "trial_pending", "failed"), o
        assert isinstance(o.get("msg"), str), "no msg"
        if o["outcome"] == "staged":
            assert o["slot"] in ("a", "b") and isinstance(o["resumed_from"], int)
print(o["outcome"], progress)
') || fail "bad report lines: $out"
}

# report_field KEY: a field of the outcome line of the last update_report.
report_field() {
	printf '%s\n' "$out" | tail -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"
}

# after_issue ENVELOPE: waits until the clock is past ENVELOPE's issued_at, so the next
# release signed is issued later (issued_at counts whole seconds).
after_issue() {
	local t
	t=$(manifest_field "$1" issued_at)
	_past() { [ "$(date +%s)" -gt "$1" ]; }
	wait_for 5 _past "$t" || fail "the clock does not pass $t"
}

# state_field KEY: a field of the device's boot.state.
state_field() { sed -n "s/^$1=//p" "$S/boot.state"; }

# boot_once: moat-boot runs the device until the image exits 0 (not 75); appends to $RUNLOG.
boot_once() { moat-boot --state "$S" --trial-seconds 30 -- image; }

# last_run: the last line the images logged.
last_run() { tail -n 1 "$RUNLOG"; }

# assert_unchanged: the device still runs 1.0.0 from slot a, nothing staged.
assert_unchanged() {
	[ "$(state_field active)" = a ] || fail "$1: active slot changed"
	[ "$(state_field trial)" = - ] || fail "$1: a trial was staged"
	: > "$RUNLOG"
	boot_once >/dev/null 2>&1 || fail "$1: the device does not boot"
	assert_contains "$(last_run)" "1.0.0 slot=a trial=0"
}
