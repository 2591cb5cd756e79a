#!/usr/bin/env bash
# test_privileges.sh: moatd and moat-agent keep only what they need once started
# (include/moat/sandbox.h). On a deployment run by `moat up` as root: moatd runs as its own
# account (every thread: Uid, no capabilities, NoNewPrivs, seccomp filter), registry.db and
# the issuing key are its own and nobody else's, and that account cannot read the CA key or
# a device's key. moat-agent under moat-boot (root, no [agent] user) holds no capability and
# runs filtered; with [agent] user it runs as that account. A full update flow (a device
# fetching a signed release from moatd, moatd ingesting its events) works under both
# filters. In failpoint builds a forbidden system call kills each daemon with SIGSYS: moatd
# is seen dying by the supervisor (and restarted), the agent by moat-boot.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
source "$(dirname "$0")/lib_moatd.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_update.sh"
source "$(dirname "$0")/lib_agent_update.sh"

[ "$(id -u)" -eq 0 ] ||
	skip "needs root: only a daemon started as root can switch to its own account and drop capabilities it holds"
command -v runuser >/dev/null || fail "runuser (util-linux) not installed"

NOCAPS=0000000000000000
SIGSYS_STATUS=$((128 + 31))

# field PID|PID/task/TID NAME: a field of /proc/.../status, tabs made single spaces.
field() {
	awk -v f="$2:" '$1 == f { $1 = ""; sub(/^ /, ""); gsub(/\t/, " "); print; exit }' "/proc/$1/status"
}

# expect_locked WHAT PID|PID/task/TID UID: the process (or thread) runs as UID (real,
# effective, saved, filesystem) with no capability, no_new_privs and a seccomp filter.
expect_locked() {
	local what=$1 p=$2 uid=$3
	[ "$(field "$p" Uid)" = "$uid $uid $uid $uid" ] || fail "$what: Uid $(field "$p" Uid), expected $uid"
	[ "$(field "$p" CapEff)" = $NOCAPS ] || fail "$what: CapEff $(field "$p" CapEff)"
	[ "$(field "$p" CapPrm)" = $NOCAPS ] || fail "$what: CapPrm $(field "$p" CapPrm)"
	[ "$(field "$p" CapAmb)" = $NOCAPS ] || fail "$what: CapAmb $(field "$p" CapAmb)"
	[ "$(field "$p" NoNewPrivs)" = 1 ] || fail "$what: NoNewPrivs $(field "$p" NoNewPrivs)"
	[ "$(field "$p" Seccomp)" = 2 ] || fail "$what: Seccomp $(field "$p" Seccomp) (2 is a filter)"
}

# expect_private FILE OWNER: FILE belongs to OWNER and nobody else may read or write it.
expect_private() {
	local owner mode
	owner=$(stat -c %U "$1")
	mode=$(stat -c %a "$1")
	[ "$owner" = "$2" ] || fail "$1: owner $owner, expected $2"
	[ $((8#$mode & 8#077)) -eq 0 ] || fail "$1: mode $mode lets group or others in"
}

# boot_child: the pid of the image moat-boot runs now.
boot_child() {
	local c
	c=$(cat "/proc/$BOOT/task/$BOOT/children" 2>/dev/null) || return 1
	c=${c%% *}
	[ -n "$c" ] && echo "$c"
}

au_setup
MOAT_UID=$(id -u moat) || fail "moat init and moat up as root did not create the account moat"
[ "$MOAT_UID" -ne 0 ] || fail "the account moat is root"
pass "moat init created moatd's own account moat (uid $MOAT_UID)"

# ---- moatd: its account, every thread locked ----
MOATD=$(cat "$D/run/moatd.pid")
kill -0 "$MOATD" || fail "moatd (pid $MOATD) is not running"
wait_grep 30 "event=sandbox profile=moatd user=moat uid=$MOAT_UID .*switched=yes capabilities=none no_new_privs=yes seccomp=kill_process" "$D/log/moatd.log" ||
	fail "moatd did not log its sandbox: $(grep -v request "$D/log/moatd.log" | tail -5)"
pass "moatd's log names the profile in force: $(grep -o 'event=sandbox.*' "$D/log/moatd.log" | tail -1)"
expect_locked moatd "$MOATD" "$MOAT_UID"
threads=0
for task in /proc/"$MOATD"/task/*; do
	expect_locked "moatd thread ${task##*/}" "$MOATD/task/${task##*/}" "$MOAT_UID"
	threads=$((threads + 1))
done
[ $threads -ge 3 ] || fail "moatd has $threads threads, expected main, HTTPS and ingest at least"
pass "moatd and each of its $threads threads: uid $MOAT_UID, CapEff 0, NoNewPrivs 1, Seccomp 2"

# ---- the deployment's files: moatd's own, root's own ----
expect_private "$D/registry.db" moat
for f in "$D/registry.db-wal" "$D/registry.db-shm" "$D/pki/issuer.key"; do
	[ ! -e "$f" ] || expect_private "$f" moat
done
expect_private "$D/pki/ca.key" root
expect_private "$D/pki/identities/dev1/key.pem" root
runuser -u moat -- cat "$D/pki/ca.key" >/dev/null 2>&1 && fail "moatd's account can read the CA key"
runuser -u moat -- cat "$D/pki/identities/dev1/key.pem" >/dev/null 2>&1 &&
	fail "moatd's account can read a device's key"
runuser -u moat -- mv "$D/moat.conf" "$D/moat.conf.x" 2>/dev/null && fail "moatd's account can rename moat.conf"
runuser -u moat -- mv "$D/pki/ca.crt" "$D/pki/ca.crt.x" 2>/dev/null && fail "moatd's account can rename the CA certificate"
runuser -u moat -- head -c 16 "$D/registry.db" >/dev/null || fail "moatd's account cannot read its registry"
pass "registry.db is moatd's alone; the CA key, devices' keys and root's files are out of its reach"

# ---- a full flow under both filters: telemetry, update check, release, trial, confirm ----
au_start
AGENT=$(boot_child) || fail "no image running under moat-boot"
expect_locked "moat-agent (root, no [agent] user)" "$AGENT" 0
[ "$(field "$AGENT" CapBnd)" = $NOCAPS ] || fail "moat-agent as root kept a bounding set: $(field "$AGENT" CapBnd)"
grep -q "event=sandbox profile=moat-agent user=root uid=0 switched=no capabilities=none" "$T/boot.log" ||
	fail "the agent did not log its sandbox: $(grep sandbox "$T/boot.log")"
pass "moat-agent started as root without [agent] user: uid 0 with no capability (bounding set empty), NoNewPrivs 1, Seccomp 2"

au_image 1.1.0
sign "$T/agent-1.1.0" 1.1.0 2 "$T/agent-1.1.0.json"
expect_ok "publish 1.1.0 for dev1" moat fw publish "$T/agent-1.1.0.json" "$T/agent-1.1.0" --devices dev1
expect_ok "check_update accepted" moat cmd dev1 check_update --as ops --wait
wait_grep 60 "event=confirmed slot=b version=1.1.0" "$T/boot.log" ||
	fail "the update did not go through under the filters: $(tail -8 "$T/boot.log")"
for stage in downloading verified installed confirmed; do au_wait_event $stage; done
pass "under the filters: moat-update fetched 1.1.0 from moatd, the agent restarted into it and confirmed; moatd ingested every stage"
AGENT=$(boot_child) || fail "no image running under moat-boot after the update"
expect_locked "moat-agent 1.1.0" "$AGENT" 0
[ "$(grep -c "event=sandbox profile=moatd" "$D/log/moatd.log")" = 1 ] || fail "moatd restarted during the flow"
pass "both daemons stayed up and locked through the flow"

# ---- [agent] user: the agent switches to it ----
moat device add dev2 >/dev/null
agent_export dev2
CONF2=$CONF
mkdir -p "$T/dev2/state"
agent_set "$CONF2" agent state_dir "$T/dev2/state"
agent_set "$CONF2" agent user nobody
chown -R nobody "$T/dev2"
NOBODY=$(id -u nobody)
moat-agent --config "$CONF2" 2>"$T/agent2.log" &
AGENT2=$!
E2E_PIDS+=("$AGENT2")
wait_grep 30 "event=connected" "$T/agent2.log" || fail "dev2 did not connect as nobody: $(tail -5 "$T/agent2.log")"
expect_locked "moat-agent with [agent] user = nobody" "$AGENT2" "$NOBODY"
pass "moat-agent started as root with [agent] user = nobody runs as uid $NOBODY, locked"

# ---- a developer's own account: no switch, still locked ----
mkdir "$T/devel"
chown nobody "$T/devel"
AS_NOBODY=(setpriv --reuid nobody --regid nogroup --clear-groups --)
DEV_PORT=$(free_port)
"${AS_NOBODY[@]}" "$MOAT_BUILD/moat" init --dir "$T/devel/d" --name devel --broker-port "$(free_port)" \
	--server-port "$DEV_PORT" >/dev/null || fail "moat init as nobody failed"
[ "$(stat -c %U "$T/devel/d/registry.db")" = nobody ] || fail "a developer's registry changed hands"
"${AS_NOBODY[@]}" "$MOAT_BUILD/moatd" --dir "$T/devel/d" --listen 127.0.0.1 --port "$DEV_PORT" --no-ingest \
	2>"$T/devel-moatd.log" &
DEVD=$!
E2E_PIDS+=("$DEVD")
wait_grep 30 "event=sandbox profile=moatd user=nobody uid=$NOBODY .*switched=\"no (not started as root)\"" "$T/devel-moatd.log" ||
	fail "moatd run by nobody did not say it stays nobody: $(tail -3 "$T/devel-moatd.log")"
expect_locked "moatd run by a developer's account" "$DEVD" "$NOBODY"
kill -TERM "$DEVD"
rc=0
wait "$DEVD" || rc=$?
[ $rc -eq 0 ] || fail "moatd run by nobody exited $rc on SIGTERM: $(tail -3 "$T/devel-moatd.log")"
pass "moatd run by another account stays that account (and says so), with NoNewPrivs, no capability and its filter"

# ---- a forbidden system call kills (failpoint builds) ----
if grep -aq failpoint_forbidden_syscall "$MOAT_BUILD/moatd"; then
	kill -USR2 "$MOATD"
	wait_grep 30 "event=child_died name=moatd pid=$MOATD signal=31" "$D/log/supervisor.log" ||
		fail "moatd was not killed by SIGSYS: $(tail -3 "$D/log/supervisor.log"; tail -3 "$D/log/moatd.log")"
	grep -q "event=failpoint_forbidden_syscall_survived" "$D/log/moatd.log" &&
		fail "moatd survived a forbidden system call"
	pass "moatd making a system call outside its list is killed by SIGSYS (supervisor: signal=31)"
	wait_for 30 count_at_least 2 "event=sandbox profile=moatd user=moat" "$D/log/moatd.log" ||
		fail "the supervisor did not restart moatd: $(tail -3 "$D/log/supervisor.log")"
	NEW=$(cat "$D/run/moatd.pid")
	[ "$NEW" != "$MOATD" ] || fail "moatd's pid file still names the killed process"
	expect_locked "restarted moatd" "$NEW" "$MOAT_UID"
	pass "the supervisor restarted moatd, locked again"

	kill -USR2 "$AGENT2"
	rc=0
	wait "$AGENT2" || rc=$?
	[ $rc -eq $SIGSYS_STATUS ] || fail "moat-agent (as nobody) ended with $rc, expected $SIGSYS_STATUS (SIGSYS)"
	AGENT=$(boot_child) || fail "no image running under moat-boot"
	kill -USR2 "$AGENT"
	rc=0
	wait "$BOOT" || rc=$?
	[ $rc -eq $SIGSYS_STATUS ] || fail "moat-boot ended with $rc, expected the image's $SIGSYS_STATUS"
	grep -q "event=exit slot=b status=$SIGSYS_STATUS" "$T/boot.log" ||
		fail "moat-boot did not report the agent killed: $(tail -3 "$T/boot.log")"
	pass "moat-agent making a system call outside its list is killed by SIGSYS (moat-boot: status $SIGSYS_STATUS)"
else
	[ "${CI:-}" != true ] || fail "built without failpoints: the forbidden-call checks cannot run"
	echo "# moatd was built without failpoints (-DMOAT_FAILPOINTS=ON): the SIGSYS checks need them"
	au_stop
fi
agent_sanitizer_clean "$T"/*.log "$D/log/moatd.log"
