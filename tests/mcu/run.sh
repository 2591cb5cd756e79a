#!/usr/bin/env bash
# run.sh ARCH ELF [CASES_DIR]: moat-device's MCU test under QEMU. Makes a deployment and
# firmware keys with `moat`, signs an image with `moat fw sign`, derives the tampered
# envelopes and images (one per refusal reason), writes cases.txt, and runs ELF
# (tests/mcu/mcu_test.c) with semihosting in that directory. The result is the program's
# exit status; its last line is "N passed, N failed".
# run.sh --cases DIR makes the cases into DIR only (ctest's fixture, shared by both
# targets); with CASES_DIR, run.sh uses them instead of making its own.
set -euo pipefail
arch=$1 elf=$2 cases=${3:-}
moat=${MOAT_BUILD:?MOAT_BUILD: the build directory}/moat
case "$arch" in
--cases) T=$elf; rm -rf "$T"; mkdir -p "$T" ;;
cortex-m3) qemu=(qemu-system-arm -M lm3s6965evb) ;;
rv32imc) qemu=(qemu-system-riscv32 -M virt -bios none) ;;
*) echo "run.sh: unknown arch '$arch'" >&2; exit 2 ;;
esac
if [ "$arch" != --cases ]; then
	command -v "${qemu[0]}" >/dev/null || { echo "run.sh: ${qemu[0]} is not installed" >&2; exit 77; }
	[ -f "$elf" ] || { echo "run.sh: $elf was not built" >&2; exit 1; }
	T=$(mktemp -d)
	trap 'rm -rf "$T"' EXIT
fi
if [ -n "$cases" ]; then
	[ -f "$cases/cases.txt" ] || { echo "run.sh: no cases in $cases" >&2; exit 1; }
	cp "$cases"/*.json "$cases"/*.bin "$cases"/*.der "$cases/cases.txt" "$T/"
else
export MOAT_FW_PASSPHRASE="mcu-test-signing-passphrase" MOAT_CA_PASSPHRASE="mcu-test-ca-passphrase"
mk_deploy() { # mk_deploy DIR: a deployment with one ec-p256 firmware key; prints its id
	"$moat" init --dir "$1" --name mcu --broker-port 1 --server-port 2 >/dev/null
	"$moat" --dir "$1" fw keygen --type ec-p256
}
A=$(mk_deploy "$T/d")
B=$("$moat" --dir "$T/d" fw keygen --type ec-p256)
U=$(mk_deploy "$T/u")
for k in "$T/d/firmware/keys/$A" "$T/d/firmware/keys/$B" "$T/u/firmware/keys/$U"; do
	openssl pkey -pubin -in "$k.pub" -outform DER -out "$T/$(basename "$k" | cut -c1-8).der"
done
A=${A:0:8} B=${B:0:8} U=${U:0:8}
head -c 4096 /dev/urandom >"$T/image.bin"
sign() { # sign DIR OUT KEY... : moat fw sign of image.bin (1.2.0, security version 3)
	local d=$1 o=$2
	shift 2
	local keys=()
	for k in "$@"; do keys+=(--key "$k"); done
	"$moat" --dir "$d" fw sign "$T/image.bin" --type mcu_sensor --version 1.2.0 \
		--security-version 3 --expires 30d "${keys[@]}" --out "$T/$o" >/dev/null 2>&1
}
"$moat" --dir "$T/d" fw trust --threshold 2 >/dev/null
sign "$T/d" env2.json "$A" "$B"
sign "$T/d" env1.json "$A"
sign "$T/u" envu.json "$U"
# Tampering, each a refusal reason (the signature covers the payload and its type).
python3 - "$T" <<'PY'
import base64, json, sys
t = sys.argv[1]
env = json.load(open(f"{t}/env2.json"))
def out(name, e):
    open(f"{t}/{name}", "w").write(json.dumps(e, separators=(",", ":")))
m = json.loads(base64.b64decode(env["payload"]))
m2 = dict(m, version="9.9.9")
e = dict(env, payload=base64.b64encode(json.dumps(m2, separators=(",", ":")).encode()).decode())
out("tampered_payload.json", e)
m3 = dict(m, security_version=99)
e = dict(env, payload=base64.b64encode(json.dumps(m3, separators=(",", ":")).encode()).decode())
out("tampered_secver.json", e)
out("bad_type.json", dict(env, payloadType="application/vnd.other+json"))
out("no_sigs.json", dict(env, signatures=[]))
sig = env["signatures"][0]
out("dup_sig.json", dict(env, signatures=[sig, sig]))
out("unknown_field.json", dict(env, extra=1))
out("bad_b64.json", dict(env, payload=env["payload"][:-1] + "!"))
raw = open(f"{t}/env2.json").read()
open(f"{t}/truncated.json", "w").write(raw[: len(raw) // 2])
img = bytearray(open(f"{t}/image.bin", "rb").read())
open(f"{t}/short.bin", "wb").write(img[:-1])
open(f"{t}/long.bin", "wb").write(img + b"\0")
img[100] ^= 1
open(f"{t}/flipped.bin", "wb").write(img)
PY
now=$(date +%s)
later=$((now + 3600))
year2100=4102444800
{
	echo "trust 1 $A.der $B.der"
	# verify ENV IMAGE EXPECT TYPE CURRENT FLOOR NOW LAST PURPOSE
	echo "verify env2.json image.bin accept mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify env1.json image.bin accept mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify env2.json image.bin accept mcu_sensor - 0 unknown 0 install"
	echo "verify env2.json image.bin accept mcu_sensor 1.2.0 3 $year2100 0 boot"
	echo "verify env2.json short.bin size_mismatch mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify env2.json long.bin size_mismatch mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify env2.json flipped.bin hash_mismatch mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify truncated.json - malformed mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify unknown_field.json - malformed mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify bad_b64.json - malformed mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify bad_type.json - bad_payload_type mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify tampered_payload.json - bad_signature mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify tampered_secver.json - bad_signature mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify no_sigs.json - unknown_key mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify envu.json - unknown_key mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify env1.json - expired mcu_sensor 1.1.0 3 $year2100 0 install"
	echo "verify env1.json - rollback mcu_sensor 1.1.0 3 $now $later install"
	echo "verify env1.json - wrong_type other_sensor 1.1.0 3 $now 0 install"
	echo "verify env1.json - downgrade mcu_sensor 1.1.0 4 $now 0 install"
	echo "verify env1.json - downgrade mcu_sensor 1.1.0 4 $now 0 boot"
	echo "verify env1.json - not_newer mcu_sensor 1.2.0 3 $now 0 install"
	echo "verify env1.json - not_newer mcu_sensor 2.0.0 3 $now 0 install"
	echo "trust 2 $A.der $B.der"
	echo "verify env2.json image.bin accept mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify env1.json - threshold mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify dup_sig.json - threshold mcu_sensor 1.1.0 3 $now 0 install"
	echo "trust 1 $U.der"
	echo "verify env2.json - unknown_key mcu_sensor 1.1.0 3 $now 0 install"
	echo "verify envu.json image.bin accept mcu_sensor 1.1.0 3 $now 0 install"
} >"$T/cases.txt"
[ "$arch" != --cases ] || exit 0
fi
cd "$T"
timeout 60 "${qemu[@]}" -nographic -monitor none -serial none \
	-semihosting-config enable=on,target=native -kernel "$elf" 2>&1 | tee "$T/out.txt"
rc=${PIPESTATUS[0]}
grep -Eq '^[0-9]+ passed, 0 failed$' "$T/out.txt" || rc=1
exit "$rc"
