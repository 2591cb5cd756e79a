#!/usr/bin/env bash
# test_layering.sh: the device binaries carry no operator code. moat-agent, moat-boot and
# moat-update are built from src/device (and core, util) only: no registry, CA, signing-key,
# PKCS#11 token (libp11) or SQLite symbol may appear in them, nor libp11 among their
# libraries, and moat-agent links no libcurl (its update checks run in moat-update). A
# layering mistake in CMake or an include that reaches across shows up here as a symbol,
# even when the link happened to succeed.
source "$(dirname "$0")/lib.sh"
command -v nm >/dev/null || fail "nm not installed (binutils)"

forbidden='moat_registry_|moat_pki_|moat_fwkeys_|moat_fw_sign_|moat_deploy_|moat_pkcs11_|PKCS11_|sqlite3_'
for b in moat-agent moat-boot moat-update; do
	bin="$MOAT_BUILD/$b"
	[ -x "$bin" ] || fail "$b not built: $bin"
	# Defined and undefined symbols alike: an undefined one would be resolved from a
	# shared library the device does not need.
	hits=$(nm "$bin" | awk '{print $NF}' | grep -E "^($forbidden)" | sort -u | head -20 || true)
	[ -z "$hits" ] || fail "$b carries operator symbols: $(echo $hits)"
	pass "$b: no registry, CA, signing-key, PKCS#11 or SQLite symbols"
	! grep -q 'libp11\.so' <<<"$(ldd "$bin")" || fail "$b links libp11"
done

# The check itself works: moat (the operator CLI) has them.
moat_syms=$(nm "$MOAT_BUILD/moat" | awk '{print $NF}')
grep -qxE 'moat_registry_open' <<<"$moat_syms" ||
	fail "nm found no moat_registry_open in moat: the symbol check would prove nothing"
pass "moat carries the registry (the check sees symbols)"
grep -qxE 'moat_pkcs11_key_load' <<<"$moat_syms" || fail "nm found no moat_pkcs11_key_load in moat"
grep -q 'libp11\.so' <<<"$(ldd "$MOAT_BUILD/moat")" || fail "moat does not link libp11: the check would prove nothing"
pass "moat carries the token code and libp11"

libs=$(ldd "$MOAT_BUILD/moat-agent")
if grep -qE 'libcurl|libsqlite3' <<<"$libs"; then
	fail "moat-agent links $(grep -oE 'libcurl[^ ]*|libsqlite3[^ ]*' <<<"$libs" | tr '\n' ' ')"
fi
pass "moat-agent links neither libcurl nor SQLite"
