#!/usr/bin/env bash
# test_install.sh: what `make install` installs (cmake --install of the build under test,
# into a DESTDIR) is complete and works:
#   - the five programs, the broker plugin, a man page per program (help2man, from the
#     program's own --help), bash completion, the systemd units and the logrotate file;
#   - the bash completion completes commands, subcommands and their options (complete -p,
#     and the completion function run as bash runs it);
#   - `systemd-analyze verify` passes on every unit, silently (no systemd needed as pid 1;
#     ExecStart= is pointed into the DESTDIR, where the binaries are);
#   - the units' SystemCallFilter= allows every call of moatd's and moat-agent's own seccomp
#     allow-lists (src/sandbox/syscalls.c) and the calls that install them;
#   - logrotate rotates a deployment's logs with the installed file;
#   - the installed moat finds its plugin and moatd: moat up and moat status from there.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed"
[ -d "$MOAT_BUILD/packaging/man" ] || fail "no man pages in the build: help2man missing (scripts/bootstrap installs it)"
unset MOAT_BROKER_PLUGIN MOAT_MOATD
R="$T/root"
P=/usr/local
chmod 755 "$T"
run_captured env DESTDIR="$R" cmake --install "$MOAT_BUILD" --prefix "$P"
[ "$run_rc" = 0 ] || fail "cmake --install: $errout"
for f in bin/moat bin/moatd bin/moat-agent bin/moat-boot bin/moat-update; do
	[ -x "$R$P/$f" ] || fail "not installed: $P/$f"
done
[ -f "$R$P/lib/moat/moat_broker.so" ] || fail "plugin not installed: $(find "$R" -name '*.so')"
for m in man1/moat.1 man8/moatd.8 man8/moat-agent.8 man8/moat-boot.8 man8/moat-update.8; do
	[ -s "$R$P/share/man/$m" ] || fail "no man page $m"
	grep -q '^\.TH' "$R$P/share/man/$m" || fail "$m is not a man page"
done
grep -qF 'trial\-seconds' "$R$P/share/man/man8/moat-boot.8" || fail "moat-boot.8 lacks its options"
grep -q 'status' "$R$P/share/man/man1/moat.1" || fail "moat.1 lacks the commands"
UNITS="$R$P/lib/systemd/system"
for u in moat-broker@.service moatd@.service moat-agent.service moat-reload@.path moat-reload@.service; do
	[ -s "$UNITS/$u" ] || fail "unit not installed: $u"
done
grep -qx "ExecStart=$P/bin/moatd --dir %f --log %f/log/moatd.log" "$UNITS/moatd@.service" ||
	fail "moatd@.service does not run the installed moatd: $(grep ExecStart "$UNITS/moatd@.service")"
[ -s "$R/etc/logrotate.d/moat" ] || fail "no logrotate file"
pass "installed: programs, plugin, man pages, completion, units, logrotate"

# Bash completion, as bash runs it.
C="$R$P/share/bash-completion/completions/moat"
[ -s "$C" ] || fail "no bash completion"
complete_words() { # WORD... (the last one is completed)
	bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _moat; echo "${COMPREPLY[*]}"' \
		complete "$C" "$@"
}
[ "$(bash -c 'source "$1"; complete -p moat' complete "$C")" = "complete -F _moat moat" ] ||
	fail "complete -p moat: not registered"
assert_contains " $(complete_words moat st) " " status "
assert_contains " $(complete_words moat "") " " device "
assert_contains " $(complete_words moat "") " " up "
[ "$(complete_words moat device re)" = "revoke renew" ] || fail "device re: $(complete_words moat device re)"
assert_contains " $(complete_words moat device add --t) " " --type "
assert_contains " $(complete_words moat device add --t) " " --token-ttl "
assert_not_contains " $(complete_words moat device add --) " " --reason "
[ "$(complete_words moat --dir /tmp status --j)" = "--json" ] || fail "status --j after --dir"
[ "$(complete_words moat cert e)" = "expiring" ] || fail "cert e: $(complete_words moat cert e)"
assert_contains " $(complete_words moat --d) " " --dir "
pass "bash completion: commands, subcommands and options"

# systemd-analyze verify, on the installed units pointed at the installed programs.
e2e_init
moat identity add backend-service --role service >/dev/null
inst=$(systemd-escape --path "$D")
mkdir "$T/units"
for f in "$UNITS"/*; do
	sed "s|$P/bin/|$R$P/bin/|g" "$f" >"$T/units/$(basename "$f")"
done
for u in "moat-broker@$inst.service" "moatd@$inst.service" moat-agent.service \
	"moat-reload@$inst.path" "moat-reload@$inst.service"; do
	run_captured env MANPATH="$R$P/share/man:" systemd-analyze verify "$T/units/$u"
	[ "$run_rc" = 0 ] || fail "systemd-analyze verify $u: exit $run_rc: $out $errout"
	[ -z "$out$errout" ] || fail "systemd-analyze verify $u: $out $errout"
	pass "systemd-analyze verify $u"
done
for pair in "moatd moatd@.service" "agent moat-agent.service"; do
	set -- $pair
	run_captured python3 "$(dirname "$0")/unit_syscalls.py" "$MOAT_SRC/src/sandbox/syscalls.c" \
		"$1" "$UNITS/$2" seccomp prctl capset setresuid setresgid setgroups
	[ "$run_rc" = 0 ] || fail "$2 forbids what $1's own filter allows: $out $errout"
	pass "$2 allows every call of the $1 seccomp list"
done

# The installed moat: finds moatd beside it and its plugin in lib/moat; moat up, status.
B="$R$P/bin"
run_captured "$B/moat" broker config
[ "$run_rc" = 0 ] || fail "installed moat broker config: $errout"
grep -q "^plugin $R$P/lib/moat/moat_broker.so$" "$D/broker/mosquitto.conf" ||
	fail "mosquitto.conf does not load the installed plugin: $(grep '^plugin' "$D/broker/mosquitto.conf")"
on_exit "'$B/moat' --dir '$D' down --timeout $(deadline 20s)"
expect_ok "installed moat up" "$B/moat" up --timeout "$(deadline 30s)"
assert_contains "$out" "moatd up on 127.0.0.1:$SERVER_PORT"
[ "$(readlink "/proc/$(cat "$D/run/moatd.pid")/exe")" = "$B/moatd" ] || fail "moatd is not the installed one"
expect_ok "installed moat status" "$B/moat" status
expect_ok "installed moat down" "$B/moat" down --timeout "$(deadline 20s)"
pass "the installed moat runs the installed moatd and plugin"

# logrotate with the installed file, pointed at this deployment.
if command -v logrotate >/dev/null || [ -x /usr/sbin/logrotate ]; then
	sed "s|/var/lib/moat/|$D/|g" "$R/etc/logrotate.d/moat" >"$T/logrotate.conf"
	echo "a line" >>"$D/log/moatd.log"
	run_captured /usr/sbin/logrotate -f -s "$T/logrotate.state" "$T/logrotate.conf"
	[ "$run_rc" = 0 ] || fail "logrotate: $errout"
	[ -s "$D/log/moatd.log.1" ] || fail "moatd.log not rotated: $(ls "$D/log")"
	[ ! -s "$D/log/moatd.log" ] || fail "moatd.log not truncated"
	pass "logrotate rotates the deployment's logs"
else
	fail "logrotate not installed (scripts/bootstrap installs it)"
fi
