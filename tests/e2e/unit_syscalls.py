#!/usr/bin/env python3
"""unit_syscalls.py SYSCALLS_C PROFILE UNIT [CALL...]: the system calls of a daemon's own seccomp
allow-list (the PROFILE_calls and PROFILE_arg_calls arrays of src/sandbox/syscalls.c) that
the systemd UNIT's SystemCallFilter= does not allow, one per line; exit 1 when there are
any. Groups (@system-service...) are expanded with `systemd-analyze syscall-filter`. For
test_install.sh: a call moatd's filter allows and systemd's forbids would fail at run time
only, when moatd first makes it."""
import re
import subprocess
import sys

src, profile, unit = sys.argv[1:4]
text = open(src).read()
calls = set(sys.argv[4:])
for arr in ("%s_calls" % profile, "%s_arg_calls" % profile):
    m = re.search(r"%s\[\] = \{(.*?)\n\};" % re.escape(arr), text, re.S)
    if not m:
        sys.exit("no array %s in %s" % (arr, src))
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    calls |= set(re.findall(r'"([a-z0-9_]+)"', body))

groups = {}


def expand(name, seen):
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    if name not in groups:
        out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True,
                             text=True, check=True).stdout
        groups[name] = [w.strip() for w in out.splitlines()[1:]
                        if w.strip() and not w.strip().startswith("#")]
    r = set()
    for w in groups[name]:
        r |= expand(w, seen)
    return r


allowed, denied = set(), set()
for line in open(unit):
    m = re.match(r"^SystemCallFilter=(~?)(.*)$", line.strip())
    if not m:
        continue
    names = set()
    for w in m.group(2).split():
        names |= expand(w, set())
    if m.group(1):
        denied |= names
        allowed -= names
    else:
        allowed |= names
missing = sorted(c for c in calls if c not in allowed)
for c in missing:
    print(c)
sys.exit(1 if missing else 0)
