#!/usr/bin/env bash
# test_daemon_help.sh: every program's --help prints its usage on stdout and exits 0 with
# nothing on stderr, --version prints "NAME VERSION" (what help2man reads to make the man
# pages `make install` installs), and bad usage still exits 2 and says so on stderr.
source "$(dirname "$0")/lib.sh"
for p in moat moatd moat-agent moat-boot moat-update; do
	run_captured "$p" --help
	[ "$run_rc" = 0 ] || fail "$p --help: exit $run_rc: $errout"
	[ -z "$errout" ] || fail "$p --help wrote on stderr: $errout"
	assert_contains "$(head -1 <<<"$out")" "usage: $p "
	[ "$(wc -l <<<"$out")" -ge 3 ] || fail "$p --help says too little: $out"
	run_captured "$p" -h
	[ "$run_rc" = 0 ] || fail "$p -h: exit $run_rc"
	run_captured "$p" --version
	[ "$run_rc" = 0 ] || fail "$p --version: exit $run_rc: $errout"
	[[ "$out" =~ ^$p\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "$p --version: '$out'"
	pass "$p --help and --version"
done
for p in moatd moat-agent moat-boot moat-update; do
	run_captured "$p" --no-such-option
	[ "$run_rc" = 2 ] || fail "$p --no-such-option: exit $run_rc"
	# (moat-update, a child of the agent, names only the bad option)
	[ "$p" = moat-update ] || assert_contains "$errout" "usage: $p"
	assert_contains "$errout" "no-such-option"
	[ -z "$out" ] || fail "$p bad usage wrote on stdout: $out"
done
pass "bad usage: exit 2, on stderr"
