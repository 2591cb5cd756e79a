#!/usr/bin/env bash
# test_ca_key.sh: a damaged pki/ca.key is reported as damaged, not as a wrong passphrase:
# truncated, garbage and empty files each make a command that signs fail with
# "pki/ca.key: not a valid encrypted key (truncated or corrupt)", a wrong passphrase with
# "pki/ca.key: wrong passphrase", a plain (unencrypted) key is refused as such; nothing is
# written by the refused command, and the intact key works again afterwards. The command is
# one that needs the root key in a two-tier deployment: rotating the issuing CA.
source "$(dirname "$0")/lib.sh"

e2e_init
K="$D/pki/ca.key"
cp -p "$K" "$T/ca.key.good"
CORRUPT="moat: pki/ca.key: not a valid encrypted key (truncated or corrupt)"

# try WHAT WANT: `moat ca issuer rotate` must fail with exactly WANT and change no file of pki/.
try() {
	local before
	before=$(sha256sum "$D"/pki/issuer.crt "$D"/pki/issuer.key "$D"/pki/crl.pem)
	expect_fail "$1" moat ca issuer rotate
	[ "$errout" = "$2" ] || fail "$1: got '$errout', want '$2'"
	[ "$(sha256sum "$D"/pki/issuer.crt "$D"/pki/issuer.key "$D"/pki/crl.pem)" = "$before" ] ||
		fail "$1: the issuing CA or the CRL changed"
	[ ! -e "$D/pki/retired" ] || [ -z "$(ls -A "$D/pki/retired")" ] || fail "$1: an issuer was retired"
}

head -c "$(($(stat -c %s "$T/ca.key.good") / 2))" "$T/ca.key.good" >"$K"
try "truncated ca.key" "$CORRUPT"
# truncated inside the base64, the PEM lines around it intact
{ head -n 3 "$T/ca.key.good"; tail -n 1 "$T/ca.key.good"; } >"$K"
try "ca.key cut inside its body" "$CORRUPT"
head -c 600 /dev/urandom >"$K"
try "garbage ca.key" "$CORRUPT"
: >"$K"
try "empty ca.key" "$CORRUPT"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$K" 2>/dev/null
try "unencrypted ca.key" "moat: pki/ca.key: not an encrypted PKCS#8 key; moat keeps private keys encrypted at rest"
cp -p "$T/ca.key.good" "$K"
MOAT_CA_PASSPHRASE="not-the-passphrase" try "wrong passphrase" "moat: pki/ca.key: wrong passphrase"
expect_ok "the intact key with its passphrase" moat ca issuer rotate
pass "a damaged ca.key is named as such, a wrong passphrase as such"
