# lib_pkcs11.sh: a SoftHSM2 token of the test's own (sourced after lib.sh, not run). The
# token lives in $T/softhsm (its own softhsm2.conf and token directory, exported through
# SOFTHSM2_CONF), so tests never touch the system's tokens or each other's.

P11_MODULE=/usr/lib/softhsm/libsofthsm2.so
P11_PIN=e2e-user-pin-4711
P11_SO_PIN=e2e-so-pin-0815

p11_require() {
	[ -r "$P11_MODULE" ] || fail "$P11_MODULE missing (scripts/bootstrap installs softhsm2)"
	command -v softhsm2-util >/dev/null || fail "softhsm2-util missing (softhsm2)"
	command -v pkcs11-tool >/dev/null || fail "pkcs11-tool missing (opensc)"
}

# token_init LABEL...: initializes one token per LABEL; writes $T/pin (0600) with the PIN.
token_init() {
	p11_require
	mkdir -p "$T/softhsm/tokens"
	printf 'directories.tokendir = %s/softhsm/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
		"$T" >"$T/softhsm/softhsm2.conf"
	export SOFTHSM2_CONF="$T/softhsm/softhsm2.conf"
	local label
	for label in "$@"; do
		softhsm2-util --init-token --free --label "$label" --so-pin "$P11_SO_PIN" \
			--pin "$P11_PIN" >/dev/null
	done
	printf '%s\n' "$P11_PIN" >"$T/pin"
	chmod 600 "$T/pin"
}

# p11 TOKEN ARGS...: pkcs11-tool logged in to TOKEN.
p11() {
	local token=$1; shift
	pkcs11-tool --module "$P11_MODULE" --token-label "$token" --login --pin "$P11_PIN" "$@"
}

# token_keygen TOKEN LABEL ID [KEYTYPE]: a key pair made inside the token (default P-256);
# pkcs11-tool marks the private key sensitive and not extractable.
token_keygen() {
	local token=$1 label=$2 id=$3 type=${4:-EC:prime256v1}
	p11 "$token" --keypairgen --key-type "$type" --label "$label" --id "$id" >/dev/null 2>&1 ||
		fail "pkcs11-tool --keypairgen $label in $token"
}

# token_pubkey TOKEN LABEL OUT: the public key object as PEM (SubjectPublicKeyInfo).
token_pubkey() {
	p11 "$1" --read-object --type pubkey --label "$2" -o "$T/.pub.der" >/dev/null 2>&1 ||
		fail "reading public key $2 from $1"
	openssl pkey -pubin -inform DER -in "$T/.pub.der" -out "$3"
}

# token_key_locked TOKEN LABEL: the private key object is sensitive and was never
# extractable (so its value never left the token), and reading it out fails.
token_key_locked() {
	local listing
	listing=$(p11 "$1" --list-objects --type privkey --label "$2" 2>/dev/null)
	assert_contains "$listing" "label:      $2"
	assert_contains "$listing" "sensitive"
	assert_contains "$listing" "never extractable"
	# pkcs11-tool asks for the value (and exits 0 either way): nothing may come out.
	rm -f "$T/.priv"
	p11 "$1" --read-object --type privkey --label "$2" -o "$T/.priv" >/dev/null 2>&1 || true
	[ ! -s "$T/.priv" ] || fail "the private key $2 could be read out of $1"

	pass "$2 in $1: sensitive, never extractable, unreadable"
}
