#!/usr/bin/env bash
# test_broker_config.sh: `moat broker config` and moat_broker_sync: what the generated
# mosquitto.conf and acl.conf say (golden-ish: no plaintext listener, no `pattern read #`),
# who may read which file (the broker's user reads its files, never a private key of the
# CA or an identity), regeneration after identities change, and clear refusals.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_broker.sh"
broker_require
[ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1 || skip "needs root and a mosquitto user"
broker_deploy
export MOAT_BROKER_PLUGIN="$MOAT_BUILD/moat_broker.so"
[ -f "$MOAT_BROKER_PLUGIN" ] || fail "plugin not built: $MOAT_BROKER_PLUGIN"

expect_ok "broker config" moat broker config
C="$D/broker/mosquitto.conf"
A="$D/broker/acl.conf"
conf=$(cat "$C")
body=$(grep -v '^#' "$C")

# TLS on every listener, no plaintext one, nothing Mosquitto would add by default.
n_listen=$(grep -c '^listener ' "$C")
[ "$n_listen" -ge 1 ] || fail "no listener"
for k in "require_certificate true" "tls_version tlsv1.2" "cafile $D/pki/ca.crt" \
	"certfile $D/pki/server.crt" "keyfile $D/pki/server.key" "crlfile $D/pki/crl.pem"; do
	[ "$(grep -cxF "$k" "$C")" = "$n_listen" ] || fail "'$k' not on every listener"
done
grep -q "^listener $BROKER_PORT 127.0.0.1\$" "$C" || fail "listener not on 127.0.0.1:$BROKER_PORT"
assert_not_contains "$body" "port "
assert_not_contains "$body" "allow_anonymous true"
assert_contains "$body" "allow_anonymous false"
assert_contains "$body" "plugin $MOAT_BROKER_PLUGIN"
assert_contains "$body" "plugin_opt_policy_file $D/broker/policy"
assert_not_contains "$body" "use_identity_as_username"
assert_not_contains "$body" "acl_file"
grep -q '^ciphers ' "$C" || fail "no TLS 1.2 cipher list"
grep '^ciphers ' "$C" | tr ':' '\n' | sed 's/^ciphers //' | while read -r c; do
	case "$c" in ECDHE-*-GCM-*|ECDHE-*-CHACHA20-POLY1305) ;; *) fail "non-AEAD suite $c" ;; esac
done
pass "mosquitto.conf: TLS-only listener, plugin mode"

# The ACL: least privilege, nothing grants '#'; the tutorial's last line is absent.
acl=$(grep -v '^#' "$A")
assert_not_contains "$acl" "pattern read #"
if grep -v '^#' "$A" | qgrep -E '(^| )#$|/#$'; then fail "a line grants '#': $(grep '#$' "$A")"; fi
assert_contains "$acl" "pattern write devices/%u/telemetry"
assert_contains "$acl" "pattern read devices/%u/commands/+"
assert_contains "$acl" "user svc-1"
assert_contains "$acl" "user op-1"
assert_not_contains "$acl" "user dev-a"
pass "acl.conf: least privilege, no '#'"

# Who reads what: the broker's user reads its files and nothing secret of the PKI.
as_broker() { runuser -u mosquitto -- "$@"; }
for f in broker/mosquitto.conf broker/acl.conf broker/policy pki/server.key pki/server.crt \
	pki/ca.crt pki/crl.pem; do
	as_broker cat "$D/$f" >/dev/null 2>&1 || fail "user mosquitto cannot read $f"
done
for f in pki/ca.key pki/identities/dev-a/key.pem pki/identities/svc-1/key.pem registry.db; do
	if as_broker cat "$D/$f" >/dev/null 2>&1; then fail "user mosquitto can read $f"; fi
done
[ "$(stat -c '%a %U' "$D/pki/ca.key")" = "600 root" ] || fail "ca.key mode changed"
[ "$(stat -c '%a %G' "$D/pki/server.key")" = "640 mosquitto" ] || fail "server.key: $(stat -c '%a %G' "$D/pki/server.key")"
[ "$(stat -c '%a %G' "$D/broker")" = "2750 mosquitto" ] || fail "broker/: $(stat -c '%a %G' "$D/broker")"
as_broker touch "$D/broker/data/probe" || fail "user mosquitto cannot write broker/data"
if as_broker touch "$D/broker/x" 2>/dev/null; then fail "user mosquitto can write broker/"; fi
if as_broker touch "$D/log/x" 2>/dev/null; then fail "user mosquitto can write log/"; fi
pass "the broker's user reads its files, not the CA's or the identities' keys"

# moat_broker_sync: identities added and revoked reach the policy and the ACL at once.
moat identity add svc-2 --role service >/dev/null
grep -q '^user svc-2$' "$A" || fail "new service missing from acl.conf"
grep -q '^identity svc-2 service active$' "$D/broker/policy" || fail "new service missing from policy"
moat device add dev-c >/dev/null
grep -q '^identity dev-c device active$' "$D/broker/policy" || fail "new device missing from policy"
moat identity revoke svc-2 >/dev/null
grep -q '^identity svc-2 service revoked$' "$D/broker/policy" || fail "revoked service still active in policy"
if grep -q '^user svc-2$' "$A"; then fail "revoked service still in acl.conf"; fi
[ "$(stat -c '%a %G' "$A")" = "640 mosquitto" ] || fail "acl.conf after change: $(stat -c '%a %G' "$A")"
pass "identity changes regenerate policy and ACL"

# The ACL-file fallback.
expect_ok "broker config --no-plugin" moat broker config --no-plugin
body=$(grep -v '^#' "$C")
assert_contains "$body" "acl_file $D/broker/acl.conf"
[ "$(grep -c '^use_identity_as_username true$' "$C")" = "$n_listen" ] || fail "use_identity_as_username"
[ "$(grep -c '^use_username_as_clientid true$' "$C")" = "$n_listen" ] || fail "use_username_as_clientid"
assert_not_contains "$body" "plugin "
pass "ACL-file mode config"

# Refusals, each with one clear line and nothing half-written.
cp "$C" "$T/conf.before"
MOAT_BROKER_PLUGIN=/nonexistent/moat_broker.so expect_fail "missing plugin" moat broker config
assert_contains "$errout" "--no-plugin"
cmp -s "$C" "$T/conf.before" || fail "a failed run changed mosquitto.conf"
cp "$D/moat.conf" "$T/moat.conf.orig"
sed -i 's/^\[broker\]$/[broker]\nbogus_key = 1/' "$D/moat.conf"
expect_fail "unknown [broker] key" moat broker config
assert_contains "$errout" "bogus_key"
cp "$T/moat.conf.orig" "$D/moat.conf"
sed -i 's/^\[broker\]$/[broker]\nlisten = broker.example.com/' "$D/moat.conf"
expect_fail "listen is not an address" moat broker config
assert_contains "$errout" "not an IP address"
cp "$T/moat.conf.orig" "$D/moat.conf"
sed -i 's/^\[broker\]$/[broker]\nmax_connections = 0/' "$D/moat.conf"
expect_fail "max_connections = 0" moat broker config
cp "$T/moat.conf.orig" "$D/moat.conf"
chmod 700 "$T"
expect_fail "deployment unreachable by the broker's user" moat broker config
assert_contains "$errout" "$T (mode 0700) is not searchable"
chmod 755 "$T"
cmp -s "$C" "$T/conf.before" || fail "a failed run changed mosquitto.conf"
expect_ok "broker config again" moat broker config
pass "refusals"
