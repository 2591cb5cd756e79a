#!/usr/bin/env bash
# test_enroll_client.sh: moat-agent's EST client against an EST server nobody here wrote
# (est_fake_server.py: python3's http.server and ssl, certificates signed by the openssl
# CLI), made to answer wrongly on purpose. The agent makes its own key (0600) and CSR,
# sends its token by HTTP Basic only to the server it verified, and accepts a certificate
# only when it is for its key and its CN, no CA, and chains to the pinned root (fetching
# cacerts when the answer lacks the issuing CA). Every wrong answer, HTTP refusal, server
# of another name or another CA is refused with a one-line reason, leaves no identity, and
# never shows the token.
source "$(dirname "$0")/lib.sh"

P=$T/pki
mkdir -p "$P"
TOKEN=0123456789abcdef0123456789abcdef

# a root, an issuing CA under it, the server's certificate, and a stranger's
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/ca.key" \
	-out "$P/ca.crt" -subj /CN=root -days 2 -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
cat >"$P/ext.cnf" <<'EOF'
[ica]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
[wrongname]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
EOF
issue() { # NAME CN SIGNER EXT
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/$1.key" \
		-out "$P/$1.csr" -subj "/CN=$2" 2>/dev/null
	openssl x509 -req -in "$P/$1.csr" -CA "$P/$3.crt" -CAkey "$P/$3.key" -days 1 \
		-extfile "$P/ext.cnf" -extensions "$4" -out "$P/$1.crt" 2>/dev/null
}
issue int issuing ca ica
issue srv localhost int server
issue wrongname wrong.example int wrongname
issue other dev-1 int client
cat "$P/srv.crt" "$P/int.crt" >"$P/srv.chain"
cat "$P/wrongname.crt" "$P/int.crt" >"$P/wrongname.chain"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/stranger.key" \
	-out "$P/stranger.crt" -subj /CN=localhost -days 2 -addext keyUsage=critical,keyCertSign \
	-addext subjectAltName=IP:127.0.0.1,DNS:localhost 2>/dev/null

start_server() { # CHAIN KEY -> $EST_PORT
	rm -f "$P/port"
	e2e_bg python3 "$MOAT_SRC/tests/e2e/est_fake_server.py" "$P/port" "$1" "$2" "$P"
	wait_for 10 test -s "$P/port" || fail "the EST server did not start"
	EST_PORT=$(cat "$P/port")
}
start_server "$P/srv.chain" "$P/srv.key"

n=0
# agent_conf HOST: a fresh agent directory for dev-1 with a token, enrolling from HOST
agent_conf() {
	n=$((n + 1))
	A=$T/agent$n
	mkdir -p "$A"
	cp "$P/ca.crt" "$A/ca.crt"
	cat >"$A/agent.conf" <<EOF
[agent]
id = dev-1
state_dir = state
[broker]
host = localhost
port = 1
ca = ca.crt
[enroll]
server = https://$1:$EST_PORT
token_file = token
EOF
	printf '%s\n' "$TOKEN" >"$A/token"
	chmod 600 "$A/token"
}

agent_conf localhost
expect_ok "the configuration is valid before enrollment" moat-agent --config "$A/agent.conf" --check
assert_contains "$out" "not enrolled yet"

# ---- a good answer ----
echo ok >"$P/mode"
: >"$P/requests.log"
expect_ok "enrolls with a token" moat-agent --config "$A/agent.conf" --enroll
assert_not_contains "$out$errout" "$TOKEN"
cur=$A/state/identity/current
[ -L "$cur" ] || fail "no current identity link"
[ "$(mode_of "$cur/key.pem")" = 600 ] || fail "key.pem is $(mode_of "$cur/key.pem"), not 600"
openssl pkey -in "$cur/key.pem" -noout -text | qgrep 'NIST CURVE: P-256' || fail "key not P-256"
# the certificate is for the key made on the device, chains to the root through the chain
# in the file, and the key never left: the request carried only the CSR
[ "$(openssl x509 -in "$cur/cert.pem" -noout -pubkey)" = "$(openssl pkey -in "$cur/key.pem" -pubout)" ] ||
	fail "the certificate is not for the device's key"
openssl verify -CAfile "$P/ca.crt" -untrusted "$cur/cert.pem" "$cur/cert.pem" >/dev/null ||
	fail "cert.pem (leaf and chain) does not verify against the root"
[ "$(grep -c 'BEGIN CERTIFICATE' "$cur/cert.pem")" -eq 2 ] || fail "cert.pem is not leaf + issuing CA"
basic=$(printf 'dev-1:%s' "$TOKEN" | base64 -w0)
grep -q "^POST /.well-known/est/simpleenroll auth=Basic $basic\$" "$P/requests.log" ||
	fail "the token did not go as HTTP Basic dev-1:TOKEN: $(cat "$P/requests.log")"
pass "the certificate is for the device's own key, chains to the root, key 0600"
expect_ok "--check with the identity" moat-agent --config "$A/agent.conf" --check
assert_contains "$out" "configuration and certificate ok"
: >"$P/requests.log"
expect_ok "an enrolled device does not enroll again" moat-agent --config "$A/agent.conf" --enroll
[ ! -s "$P/requests.log" ] || fail "a second enrollment was requested: $(cat "$P/requests.log")"

# ---- the answer lacks the issuing CA: cacerts supplies it ----
echo leaf >"$P/mode"
: >"$P/requests.log"
agent_conf localhost
expect_ok "enrolls from a leaf-only answer" moat-agent --config "$A/agent.conf" --enroll
grep -q '^GET /.well-known/est/cacerts ' "$P/requests.log" || fail "cacerts was not fetched"
grep -q '^GET /.well-known/est/cacerts auth=-$' "$P/requests.log" || fail "the token went to cacerts"
openssl verify -CAfile "$P/ca.crt" -untrusted "$A/state/identity/current/cert.pem" \
	"$A/state/identity/current/cert.pem" >/dev/null || fail "leaf-only: chain not completed"

# ---- every wrong answer is refused, leaves no identity and no key ----
refused() { # MODE REASON
	echo "$1" >"$P/mode"
	agent_conf localhost
	expect_fail "answer '$1'" moat-agent --config "$A/agent.conf" --enroll
	assert_contains "$errout" "$2"
	assert_not_contains "$out$errout" "$TOKEN"
	# the log lines (the refusal is an event), then the one-line error
	last=$(echo "$errout" | tail -n 1)
	case "$last" in "moat-agent: "*"$2"*) ;; *) fail "answer '$1': last line: $last" ;; esac
	echo "$errout" | qgrep 'level=error .*event=enroll_refused' || fail "answer '$1': no event"
	[ ! -e "$A/state/identity/current" ] || fail "answer '$1' left an identity"
	[ -z "$(find "$A/state/identity" -name key.pem)" ] || fail "answer '$1' left a key behind"
}
refused wrongkey "no certificate for this device's key"
refused wrongcn "does not name this device (CN is not dev-1)"
refused ca "is a CA certificate"
refused badp7 "not one DER PKCS#7 structure"
refused html "Content-Type 'text/html'"
refused 401 "the server refused: HTTP 401: bad token"
refused 500 "the server refused: HTTP 500: server trouble"

# ---- the server must be the pinned CA's, under the name the agent asked for ----
echo ok >"$P/mode"
agent_conf 127.0.0.1
expect_ok "enrolls by address (IP SAN)" moat-agent --config "$A/agent.conf" --enroll
kill "${E2E_PIDS[-1]}" && wait "${E2E_PIDS[-1]}" 2>/dev/null || true
start_server "$P/wrongname.chain" "$P/wrongname.key"
: >"$P/requests.log"
agent_conf localhost
expect_fail "a server certificate for another name" moat-agent --config "$A/agent.conf" --enroll
assert_contains "$errout" "does not verify for localhost"
kill "${E2E_PIDS[-1]}" && wait "${E2E_PIDS[-1]}" 2>/dev/null || true
start_server "$P/stranger.crt" "$P/stranger.key"
agent_conf localhost
expect_fail "a server certificate from another CA" moat-agent --config "$A/agent.conf" --enroll
assert_contains "$errout" "does not verify for localhost"
[ ! -s "$P/requests.log" ] || fail "a request reached an unverified server: $(cat "$P/requests.log")"
pass "no request, and so no token, reached a server that did not verify"
