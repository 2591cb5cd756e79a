# lib.sh: shared helpers for end-to-end tests (sourced, not run). Every test gets its own
# temporary directory, its own PKI and its own ephemeral ports on 127.0.0.1; everything it
# starts is stopped by the EXIT trap.
set -euo pipefail

: "${MOAT_BUILD:?run through ctest (MOAT_BUILD unset)}"
: "${MOAT_SRC:?run through ctest (MOAT_SRC unset)}"
export PATH="$MOAT_BUILD:$PATH"
export MOAT_CA_PASSPHRASE="e2e-test-passphrase"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"

# E2E_SLOW: how many times longer every wait and timeout of a test is. The sanitizer build
# (MOAT_SANITIZE=ON) runs several times slower, and a deadline that holds in a normal build
# can run out there (test_agent_broker_restart once did): 3 there, else 1.
case "${MOAT_SANITIZE:-}" in
ON | on | 1 | TRUE | true | YES | yes) E2E_SLOW=3 ;;
*) E2E_SLOW=1 ;;
esac
export E2E_SLOW # the Python helpers (dashboard_*.py) scale their waits by it too

# deadline SECONDS: SECONDS (a number, optionally with an s suffix, which moat's duration
# options need: `--timeout "$(deadline 30s)"`) times E2E_SLOW. Every wait, `timeout N` and
# --timeout of a test goes through it.
deadline() {
	local n=${1%s} unit=${1##*[0-9.]}
	awk -v n="$n" -v k="$E2E_SLOW" -v u="$unit" 'BEGIN { printf "%g%s\n", n * k, u }'
}

T=$(mktemp -d /tmp/moat-e2e.XXXXXX)
# Daemons started as root switch to their own account (moatd to [server] user, Mosquitto
# to [broker] user) and must still reach the deployment inside: searchable, not listable.
chmod 0711 "$T"
E2E_PIDS=()
E2E_CLEANUP=()

E2E_PORTS=/tmp/moat-e2e-ports # free_port's reservations, shared by every test
e2e_cleanup() {
	local rc=$?
	for c in "${E2E_CLEANUP[@]:-}"; do [ -n "$c" ] && eval "$c" >/dev/null 2>&1 || true; done
	[ -z "${E2E_PIDS[*]:-}" ] || stop_pids "${E2E_PIDS[@]}"
	# A deployment still up (a test that started one itself and ended, or skipped, before
	# its own `moat down`): stopped here, or its broker and moatd outlive the test.
	local s
	while IFS= read -r s; do
		moat --dir "${s%/run/supervise.pid}" down --timeout 20s >/dev/null 2>&1 || true
	done < <(find "$T" -maxdepth 4 -path '*/run/supervise.pid' 2>/dev/null)
	# this test's port reservations (free_port)
	{ grep -lx "$$" "$E2E_PORTS"/* 2>/dev/null || true; } | xargs -r rm -f
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
		echo "--- test failed (rc=$rc); files kept in $T" >&2
	else
		rm -rf "$T"
	fi
	exit $rc
}
trap e2e_cleanup EXIT

# stop_pids PID...: SIGTERM to each background child, then waits for it, but at most 10 s
# in all: what is still there is killed (SIGKILL) and named on stderr. A bare `kill; wait`
# can hang a test until ctest's timeout: mosquitto_sub once ignored SIGTERM for ten minutes
# on a loaded machine (its handler disconnects from inside the signal).
stop_pids() {
	local p end=$((SECONDS + 10))
	for p in "$@"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	for p in "$@"; do
		[ -n "$p" ] || continue
		while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
		if kill -0 "$p" 2>/dev/null; then
			echo "note: pid $p ($(ps -o comm= -p "$p" 2>/dev/null)) outlived SIGTERM by 10 s: killed" >&2
			kill -9 "$p" 2>/dev/null || true
		fi
		wait "$p" 2>/dev/null || true
	done
}

# Runs "$@" in the background and remembers its pid for cleanup.
e2e_bg() { "$@" & E2E_PIDS+=($!); }
on_exit() { E2E_CLEANUP+=("$*"); }

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
pass() { echo "ok - $*"; }

# A TCP port on 127.0.0.1 that is free right now, and reserved for this test.
# Chosen at random below the kernel's ephemeral range (ip_local_port_range): a port from
# that range (bind to port 0) can be handed to any test's outgoing connection before the
# daemon binds it, and moatd once failed so in CI ("cannot listen"). Reserved in
# $E2E_PORTS (a file per port naming the test's pid, made with O_EXCL; a dead test's
# reservation is taken over): a test that restarts its daemon leaves the port free for a
# moment, and another test running beside it once took it then (test_monitor_export:
# "cannot listen" after a restart). Falls back to port 0 when the range leaves no room.
free_port() {
	mkdir -p -m 1777 "$E2E_PORTS"
	python3 - "$E2E_PORTS" "$$" <<'PY'
import os, random, socket, sys
d, me = sys.argv[1], sys.argv[2]
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])

def reserve(p):
    f = os.path.join(d, str(p))
    for _ in range(2):
        try:
            fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                owner = int(open(f).read().strip() or "0")
            except (OSError, ValueError):
                return False
            if owner > 0 and os.path.exists(f"/proc/{owner}"):
                return False
            try:
                os.unlink(f)  # a test that is gone: taken over (one O_EXCL wins)
            except FileNotFoundError:
                pass
            continue
        os.write(fd, me.encode())
        os.close(fd)
        return True
    return False

for _ in range(200):
    p = random.randint(10000, lo - 1) if lo > 11000 else 0
    if p and not reserve(p):
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        port = s.getsockname()[1]
    except OSError:
        if p:
            os.unlink(os.path.join(d, str(p)))
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("free_port: no free port below the ephemeral range")
PY
}

# run_captured cmd...: runs the command whatever its exit status; sets $out (stdout),
# $errout (stderr) and $run_rc (exit status).
run_captured() {
	set +e
	out=$("$@" 2>"$T/.stderr")
	run_rc=$?
	set -e
	errout=$(cat "$T/.stderr")
}

# expect_fail "what" cmd...: the command must exit non-zero and print one line on stderr
# that contains nothing secret; sets $out (stdout) and $errout (stderr).
expect_fail() {
	local what=$1; shift
	run_captured "$@"
	[ $run_rc -ne 0 ] || fail "$what: expected failure, got exit 0"
	[ -n "$errout" ] || fail "$what: failed without an error message"
	echo "ok - refused: $what: $errout"
}

# expect_ok "what" cmd...: sets $out.
expect_ok() {
	local what=$1; shift
	run_captured "$@"
	[ $run_rc -eq 0 ] || fail "$what: exit $run_rc: $errout"
	echo "ok - $what"
}

# test_ca_conf DIR [LINE...]: DIR/ca.cnf and its database, for `openssl ca` as a test CA:
# any CN, an optional OU, random serials, extension sections [client] (clientAuth) and
# [server] (serverAuth for 127.0.0.1 and localhost); each LINE goes into the CA section
# (certificate = ..., crlnumber = ...). Without certificate/private_key lines, pass -cert
# and -keyfile to test_ca_sign.
test_ca_conf() {
	local dir=$1; shift
	mkdir -p "$dir/newcerts"
	[ -f "$dir/index.txt" ] || : >"$dir/index.txt"
	{
		printf '[ca]\ndefault_ca = t\n[t]\n'
		printf 'database = %s/index.txt\nnew_certs_dir = %s/newcerts\n' "$dir" "$dir"
		printf 'default_md = sha256\npolicy = p\nunique_subject = no\nrand_serial = yes\n'
		[ $# -eq 0 ] || printf '%s\n' "$@"
		cat <<'EOF'
[p]
commonName = supplied
organizationalUnitName = optional
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
EOF
	} >"$dir/ca.cnf"
}

# test_ca_sign DIR NAME SUBJECT EXT [openssl ca option...]: a new P-256 key DIR/NAME.key
# (mode 600) and DIR/NAME.crt for SUBJECT with extension section EXT, signed with the CA
# of DIR/ca.cnf; the test fails when openssl ca does.
test_ca_sign() {
	local dir=$1 name=$2 subj=$3 ext=$4; shift 4
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/$name.key" \
		-out "$dir/$name.csr" -subj "$subj" 2>/dev/null
	chmod 600 "$dir/$name.key"
	openssl ca -batch -notext -config "$dir/ca.cnf" -extensions "$ext" "$@" \
		-in "$dir/$name.csr" -out "$dir/$name.crt" >/dev/null 2>"$dir/$name.err" ||
		fail "openssl ca for $name: $(cat "$dir/$name.err")"
}

assert_contains() { case "$1" in *"$2"*) ;; *) fail "expected '$2' in: $1" ;; esac; }
assert_not_contains() { case "$1" in *"$2"*) fail "did not expect '$2' in: $1" ;; *) ;; esac; }

# mode_of FILE: octal permission bits
mode_of() { stat -c '%a' "$1"; }

# A fresh deployment in $T/d with ephemeral ports; extra args go to moat init.
e2e_init() {
	BROKER_PORT=$(free_port)
	SERVER_PORT=$(free_port)
	D="$T/d"
	moat init --dir "$D" --name e2e --broker-port "$BROKER_PORT" --server-port "$SERVER_PORT" "$@" >/dev/null
	# The host's packet filter is never a test's to change: `moat up` would install the
	# connection guard there as root. test_guard.sh turns it on inside its own namespace.
	printf '\n[guard]\nenabled = no\n' >>"$D/moat.conf"
	export MOAT_DIR="$D"
}

# qgrep grep-option...: grep -q for the end of a pipeline. grep -q exits at the first match;
# a writer still writing then dies of SIGPIPE, and under pipefail the whole pipeline fails
# although the line was there (seen under load). qgrep reads everything, prints nothing.
qgrep() { grep "$@" >/dev/null; }

# jq_any [JQ-ARGS...] FILTER: true when at least one JSON value on stdin passes FILTER
# (`jq -e 'select(..)'` is true on an empty input: no good for "was it recorded?").
jq_any() {
	local filter=${*: -1}
	jq -ne "${@:1:$#-1}" "any(inputs; $filter)" >/dev/null
}

# flip_byte FILE OFFSET: inverts every bit of the byte at OFFSET in place, so the file is
# certainly changed (writing a fixed byte leaves a random image unchanged 1 time in 256).
flip_byte() {
	python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1)
    if len(b) != 1: sys.exit("flip_byte: offset past the end of " + sys.argv[1])
    f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xFF]))' "$1" "$2"
}

# count_gt FILE PATTERN N: whether more than N lines of FILE match PATTERN (grep -E). For
# wait_for, which runs it on every try: `wait_for 10 test "$(grep -c ...)" -gt N` would
# count once, before the first try, and wait in vain.
count_gt() { [ "$(grep -cE -- "$2" "$1" 2>/dev/null || true)" -gt "$3" ] 2>/dev/null; }

# log_lines FILE: how many lines FILE has now (0 if none): a mark, so that a wait looks only
# at what was written after it.
log_lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }

# log_has_since FILE MARK grep-option...: grep (with the options and patterns given) over the
# lines of FILE after line MARK (grep reads them all: no -q, whose early exit would make
# tail fail under pipefail).
log_has_since() {
	local f=$1 mark=$2
	shift 2
	tail -n +"$((mark + 1))" "$f" | grep "$@" >/dev/null
}

# wait_subscribed LOG MARK CLIENT_ID FILTER...: waits until the broker's LOG (log_type
# subscribe: "CLIENT_ID QOS FILTER" lines, written once the broker has added the
# subscription) shows, after line MARK, every FILTER subscribed by CLIENT_ID; from then on
# the broker delivers what matches. The positive signal that a subscriber is ready
# (mosquitto_sub and moat watch print none).
wait_subscribed() {
	local log=$1 mark=$2 id=$3 f
	shift 3
	for f in "$@"; do
		wait_for 10 log_has_since "$log" "$mark" -F -e " $id 0 $f" -e " $id 1 $f" -e " $id 2 $f" ||
			fail "$id did not subscribe to $f: $(tail -3 "$log")"
	done
}

# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds, for deadline SECONDS.
wait_for() {
	local limit=$1; shift
	local end=$((SECONDS + $(deadline "$limit")))
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.1
	done
}
