# lib_moatd.sh: helpers for the moatd end-to-end tests (sourced after lib.sh, not run).

# moatd_start: starts moatd on $SERVER_PORT of 127.0.0.1 for deployment $D, logging to
# $T/moatd.log, and waits until it answers TLS.
moatd_start() {
	e2e_bg moatd --dir "$D" --listen 127.0.0.1 --port "$SERVER_PORT" >>"$T/moatd.log" 2>&1
	MOATD_PID=${E2E_PIDS[${#E2E_PIDS[@]}-1]}
	wait_for 20 curl -s --cacert "$D/pki/ca.crt" -o /dev/null "https://localhost:$SERVER_PORT/" ||
		fail "moatd did not start: $(tail -n 5 "$T/moatd.log")"
}

# dcurl ID ARGS...: curl as device ID (its certificate and key from moat device add),
# verifying moatd against the deployment CA. Prints the HTTP status on stdout.
dcurl() {
	local id=$1; shift
	curl -sS --max-time "$(deadline 60)" --cacert "$D/pki/ca.crt" \
		--cert "$D/pki/identities/$id/cert.pem" --key "$D/pki/identities/$id/key.pem" \
		-o "$T/body" -w '%{http_code}' "$@"
}

# url PATH: the moatd URL of PATH.
url() { echo "https://localhost:$SERVER_PORT$1"; }

# expect_status WANT WHAT ID ARGS...: dcurl must answer WANT.
expect_status() {
	local want=$1 what=$2; shift 2
	local got
	got=$(dcurl "$@") || true
	[ "$got" = "$want" ] || fail "$what: HTTP $got, expected $want ($(head -c 200 "$T/body" 2>/dev/null))"
	echo "ok - $what: HTTP $got"
}

# rollout_buckets SHA256HEX ID...: "ID BUCKET" lines, moat_rollout_bucket computed
# independently (one python3 start: it is slow on a loaded machine).
rollout_buckets() {
	python3 -c 'import hashlib,sys
for i in sys.argv[2:]:
    d = hashlib.sha256(bytes.fromhex(sys.argv[1]) + i.encode()).digest()
    print(i, int.from_bytes(d[:8], "big") % 100)' "$@"
}

# moatd_stop: SIGTERM, then moatd must exit 0 with no sanitizer report in its log.
moatd_stop() {
	kill -TERM "$MOATD_PID"
	local rc=0
	wait "$MOATD_PID" || rc=$?
	[ $rc -eq 0 ] || fail "moatd exited with $rc on SIGTERM: $(tail -5 "$T/moatd.log")"
	if grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/moatd.log"; then
		fail "sanitizer report in moatd.log"
	fi
	pass "moatd stops cleanly on SIGTERM"
}
