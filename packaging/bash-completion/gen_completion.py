#!/usr/bin/env python3
"""gen_completion.py MOAT OUT: writes bash completion for moat to OUT, from the built moat's
own help: `moat help` lists the commands, `moat CMD --help` a command's options and (for
groups) its subcommands, the lines indented by two spaces that start with a word; `moat CMD
SUB --help` a subcommand's options. So the completion says what --help says, and a new
option needs no edit here. Options are words of the form --name in the help text."""
import re
import subprocess
import sys

moat, out = sys.argv[1], sys.argv[2]


def help_of(*args):
    r = subprocess.run([moat, *args, "--help"], capture_output=True, text=True, timeout=30)
    return r.stdout if r.returncode == 0 else ""


def options(text):
    return sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)))


top = subprocess.run([moat, "help"], capture_output=True, text=True, timeout=30).stdout
commands = []
for line in top.splitlines():
    m = re.match(r"^  ([a-z][a-z-]*)\s", line)
    if m and m.group(1) not in commands:
        commands.append(m.group(1))
global_opts = options(top.split("\n", 1)[0] + " --help --version")

subs, opts = {}, {}
for cmd in commands:
    text = help_of(cmd)
    opts[cmd] = options(text)
    found = []
    # "usage: moat cert expiring ..." / "       moat cert crl": the subcommands named there
    for line in text.splitlines():
        m = re.match(r"^(?:usage:)?\s*moat %s ([a-z][a-z-]*)(\s|$)" % re.escape(cmd), line)
        if m and m.group(1) not in found:
            found.append(m.group(1))
    if re.search(r"<(sub)?command>", text.split("\n", 1)[0]):
        for line in text.splitlines():
            m = re.match(r"^  ([a-z][a-z-]*)(\s|$)", line)
            if m and m.group(1) not in found:
                found.append(m.group(1))
    subs[cmd] = found
    for sub in found:
        opts[cmd + " " + sub] = options(help_of(cmd, sub))

L = []
L.append("# bash completion for moat: generated from moat's own --help texts")
L.append("# (packaging/bash-completion/gen_completion.py); do not edit.")
L.append("_moat() {")
L.append("\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}")
L.append("\tlocal cmds=%s" % repr(" ".join(commands)).replace("'", '"'))
L.append("\tlocal global=%s" % repr(" ".join(global_opts)).replace("'", '"'))
L.append("\tlocal -A subs=(")
for k, v in subs.items():
    if v:
        L.append('\t\t[%s]="%s"' % (k, " ".join(v)))
L.append("\t)")
L.append("\tlocal -A opts=(")
for k, v in opts.items():
    L.append('\t\t["%s"]="%s"' % (k, " ".join(v)))
L.append("\t)")
L.append(r"""	# the command and subcommand typed so far (global options and their values skipped)
	local i=1 cmd= sub= w
	while [ $i -lt $COMP_CWORD ]; do
		w=${COMP_WORDS[i]}
		case $w in
		--dir | --passphrase-file) i=$((i + 1)) ;;
		-*) ;;
		*)
			if [ -z "$cmd" ]; then
				cmd=$w
			elif [ -z "$sub" ] && [ -n "${subs[$cmd]:-}" ]; then
				sub=$w
			fi
			;;
		esac
		i=$((i + 1))
	done
	case $prev in
	--dir | --out | --config | --state)
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return
		;;
	--*file | --trust | --image | --envelope | --csr | --firmware)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return
		;;
	esac
	if [ -z "$cmd" ]; then
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "$global" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "$cmds" -- "$cur")
		fi
	elif [ -z "$sub" ] && [ -n "${subs[$cmd]:-}" ] && [[ $cur != -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "${subs[$cmd]}" -- "$cur")
	elif [[ $cur == -* ]]; then
		local key=$cmd
		[ -n "$sub" ] && key="$cmd $sub"
		mapfile -t COMPREPLY < <(compgen -W "${opts[$key]:-${opts[$cmd]:-}}" -- "$cur")
	else
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	fi
}
complete -F _moat moat""")
with open(out + ".tmp", "w") as f:
    f.write("\n".join(L) + "\n")
import os

os.replace(out + ".tmp", out)
