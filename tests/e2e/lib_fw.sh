# lib_fw.sh: helpers for the firmware e2e tests (sourced after lib.sh, not run).

# env_edit IN OUT PYTHON: loads envelope IN as `e` (a dict), runs the Python statements,
# writes the result to OUT. `b64d`/`b64e` convert the payload; `p` is the decoded payload
# as a dict when the statements use it (set_payload(p) writes it back).
env_edit() {
	local in=$1 out=$2 code=$3
	python3 - "$in" "$out" "$code" <<'PY'
import base64, json, sys
src, dst, code = sys.argv[1], sys.argv[2], sys.argv[3]
e = json.load(open(src))
def b64d(s): return base64.b64decode(s)
def b64e(b): return base64.b64encode(b).decode()
p = json.loads(b64d(e["payload"]))
def set_payload(d): e["payload"] = b64e(json.dumps(d, separators=(",", ":")).encode())
raw = None
exec(code)
with open(dst, "w") as f:
    f.write(raw if raw is not None else json.dumps(e))
PY
}

# manifest_field ENVELOPE FIELD: a field of the (unverified) manifest inside an envelope.
manifest_field() {
	python3 -c 'import base64,json,sys; e=json.load(open(sys.argv[1])); print(json.loads(base64.b64decode(e["payload"]))[sys.argv[2]])' "$1" "$2"
}

# expect_refused VERDICT CMD...: the command fails with "refused (VERDICT)" on one line.
expect_refused() {
	local verdict=$1; shift
	expect_fail "$verdict" "$@"
	assert_contains "$errout" "refused ($verdict)"
	[ "$(printf '%s\n' "$errout" | wc -l)" -eq 1 ] || fail "$verdict: more than one line: $errout"
}
