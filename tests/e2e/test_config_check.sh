#!/usr/bin/env bash
# test_config_check.sh: `moat config check` and docs/CONFIGURATION.md.
# - every key moat's readers accept (their key lists and every moat_config_get* call outside
#   the device side) has a row in docs/CONFIGURATION.md, under its section;
# - a moat.conf holding every documented key with its example value is accepted: the
#   documentation names nothing moat refuses;
# - every kind of mistake is refused with exit 1 and "<file>:<line>: <message>" naming the
#   right line: syntax, unknown section, unknown key (each section), reserved section, bad
#   value, out of range, cross-key rules.
source "$(dirname "$0")/lib.sh"

DOC="$MOAT_SRC/docs/CONFIGURATION.md"
e2e_init
C="$D/moat.conf"
cp "$C" "$T/moat.conf.orig"

expect_ok "a fresh deployment's moat.conf" moat config check
[ "$out" = "$C: ok" ] || fail "config check said '$out'"
expect_ok "config check --dir" moat config check --dir "$D"
expect_ok "config --help" moat config --help
assert_contains "$out" "docs/CONFIGURATION.md"

# ---- every key the readers accept is documented ----
python3 - "$MOAT_SRC" "$DOC" <<'EOF' || fail "keys missing from docs/CONFIGURATION.md"
import re, sys, pathlib
src, doc = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]).read_text()
arrays = re.compile(r'static const char \*const (\w+)\[\] = \{(.*?)\};', re.S)
def lists(path):
    return [(m.group(1), re.findall(r'"([a-z_0-9]+)"', m.group(2)))
            for m in arrays.finditer((src / path).read_text())]
want = set()
def add(section, keys):
    for k in keys:
        want.add((section, k))
for name, keys in lists("src/deploy/conf.c"):
    if name == "deployment_keys": add("deployment", keys)
    if name == "pki_keys": add("pki", keys)
b = [k for n, k in lists("src/broker/settings.c") if n == "keys"]
assert len(b) == 2, "src/broker/settings.c: expected the [broker] and [policy] key lists"
add("broker", b[0]); add("policy", b[1])
for path, section in (("src/server/httpd.c", "server"), ("src/server/est.c", "est"),
                      ("src/net/guard.c", "guard"), ("src/monitor/monitor.c", "monitor"),
                      ("src/monitor/settings.c", "monitor")):
    k = [k for n, k in lists(path) if n == "keys"]
    assert len(k) == 1, f"{path}: expected one key list"
    add(section, k[0])
for n, k in lists("src/net/policy.c"):
    if n in ("fixed_keys", "std_zones"): add("network", k)
# every direct read outside the device side (agent.conf is another file)
get = re.compile(r'moat_config_(?:get\w*|find)\(\s*[^,]+,\s*"(\w+)",\s*"(\w+)"')
for f in src.glob("src/**/*.c"):
    if "src/device/" in str(f): continue
    for s, k in get.findall(f.read_text()):
        want.add((s, k))
# the documented rows, by section
have, section = set(), None
for line in doc.splitlines():
    m = re.match(r'## `\[(\w+)\]`', line)
    if m: section = m.group(1)
    m = re.match(r'\| `(\w+)` \|', line)
    if m and section: have.add((section, m.group(1)))
missing = sorted(want - have)
for s, k in missing:
    print(f"docs/CONFIGURATION.md: no row for [{s}] {k}")
print(f"{len(want)} keys accepted, {len(have)} documented")
sys.exit(1 if missing else 0)
EOF
pass "every accepted key is in docs/CONFIGURATION.md"

# ---- every documented example is accepted ----
python3 - "$DOC" "$T/all.conf" <<'EOF' || fail "building moat.conf from the examples"
import re, sys
doc, out = open(sys.argv[1]).read(), sys.argv[2]
conf, section = {}, None
for line in doc.splitlines():
    m = re.match(r'## `\[(\w+)\]`', line)
    if m: section = m.group(1); conf[section] = []
    m = re.match(r'\| `(\w+)` \|.*\| `([^`]*)` \|$', line)
    if m and section: conf[section].append((m.group(1), m.group(2)))
    m = re.match(r'\| \*zone name\* \|.*\| `(\w+) = ([^`]*)` \|$', line)
    if m and section: conf[section].append((m.group(1), m.group(2)))
with open(out, "w") as f:
    for s, kv in conf.items():
        f.write(f"[{s}]\n")
        for k, v in kv:
            f.write(f"{k} = {v}\n")
print(sum(len(v) for v in conf.values()), "documented keys")
EOF
cp "$T/all.conf" "$C"
expect_ok "every documented key with its example" moat config check
cp "$T/moat.conf.orig" "$C"

# ---- rejections: exit 1, one line each, naming the line ----
# bad "what" EXPECTED_LINE TEXT-APPENDED...: appends the lines to the original moat.conf
# (whose last line is $base), then config check must fail naming EXPECTED_LINE.
base=$(wc -l <"$T/moat.conf.orig")
bad() {
	local what=$1 line=$2 msg=$3
	shift 3
	cp "$T/moat.conf.orig" "$C"
	printf '%s\n' "$@" >>"$C"
	run_captured moat config check
	[ $run_rc -eq 1 ] || fail "$what: exit $run_rc: $errout"
	assert_contains "$errout" "$C:$((base + line)): "
	assert_contains "$errout" "$msg"
	[ "$(printf '%s\n' "$errout" | wc -l)" -eq 1 ] || fail "$what: not one line: $errout"
	echo "ok - refused: $what: $errout"
}
bad "unknown section" 3 "unknown section [brokr]" "" "[brokr]" "port = 1"
bad "unknown [broker] key" 2 "unknown key 'prot'" "[broker]" "prot = 1"
bad "unknown [server] key" 2 "unknown key 'timeout'" "[server]" "timeout = 5"
bad "unknown [pki] key" 2 "unknown key 'days'" "[pki]" "days = 3"
bad "unknown [policy] key" 2 "unknown key 'device_rate'" "[policy]" "device_rate = 3"
bad "unknown [network] key" 2 "unknown key 'cameras'" "[network]" "cameras = 10.9.0.0/24"
bad "unknown [guard] key" 2 "unknown key 'limit'" "[guard]" "limit = 3"
bad "unknown [est] key" 2 "unknown key 'grace'" "[est]" "grace = 3"
bad "unknown [deployment] key" 2 "unknown key 'owner'" "[deployment]" "owner = me"
bad "a key in a reserved section" 2 "unknown key 'count' in [sim]" "[sim]" "count = 5"
bad "not a boolean" 2 "not true or false" "[policy]" "operator_write_commands = perhaps"
bad "not a number" 2 "[policy] device_burst" "[policy]" "device_burst = lots"
bad "out of range" 2 "out of range" "[policy]" "device_max_payload = 0"
bad "duration out of range" 2 "[server] idle_timeout" "[server]" "idle_timeout = 2s"
bad "handshake above header timeout" 2 "above header_timeout" "[server]" "handshake_timeout = 30s" \
	"header_timeout = 20s"
bad "moatd as root" 2 "[server] user" "[server]" "user = root"
bad "bad subnet" 2 "[network] iot" "[network]" "iot = 10.0.0.0/33"
bad "guard bound out of range" 2 "[guard] broker_per_source" "[guard]" "broker_per_source = 0"
bad "bad listen address" 2 "[broker] listen" "[broker]" "listen = broker.example"
bad "duplicate key" 2 "duplicate key 'name'" "[deployment]" "name = again"
# a key before any section: the parser's own error, line 1
{ echo "name = early"; cat "$T/moat.conf.orig"; } >"$C"
expect_fail "key outside a section" moat config check
assert_contains "$errout" "$C:1: key 'name' outside any [section]"
# a line longer than the parser takes
long=$(printf 'x%.0s' $(seq 1 250))
bad "line too long" 2 "longer than" "[est]" "reenroll_grace = $long"
# a mistake inside the original lines: [broker] port (deploy's core reader)
cp "$T/moat.conf.orig" "$C"
pline=$(grep -n '^port = ' "$C" | head -1 | cut -d: -f1)
sed -i "${pline}s/.*/port = 70000/" "$C"
expect_fail "port out of range" moat config check
assert_contains "$errout" "$C:$pline: [broker] port"
# e2e_init's [guard] enabled = no, made wrong in place
cp "$T/moat.conf.orig" "$C"
gline=$(grep -n '^enabled = no' "$C" | cut -d: -f1)
sed -i "${gline}s/.*/enabled = maybe/" "$C"
expect_fail "bad guard mode" moat config check
assert_contains "$errout" "$C:$gline: [guard] enabled: 'maybe': expected auto, yes or no"
# several mistakes: each is named
cp "$T/moat.conf.orig" "$C"
printf '[policy]\ndevice_burst = 0\n[est]\nfoo = 1\n[guard]\nexempt = example.org\n' >>"$C"
expect_fail "three mistakes" moat config check
[ "$(printf '%s\n' "$errout" | wc -l)" -eq 3 ] || fail "three mistakes, not three lines: $errout"
assert_contains "$errout" "$C:$((base + 2)): "
assert_contains "$errout" "$C:$((base + 4)): "
assert_contains "$errout" "$C:$((base + 6)): "
cp "$T/moat.conf.orig" "$C"
expect_ok "the original again" moat config check
pass "config check"
