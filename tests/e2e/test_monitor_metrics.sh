#!/usr/bin/env bash
# test_monitor_metrics.sh: moatd's /metrics: only an operator's certificate (mutual TLS)
# reads it; its text passes Debian's `promtool check metrics`; and a real Prometheus
# (Debian's), started with a configuration that scrapes moatd over mutual TLS with the
# test's operator certificate, has a sample that its HTTP API returns.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_agent.sh"
source "$(dirname "$0")/lib_moatd.sh"
source "$(dirname "$0")/lib_monitor.sh"
command -v curl >/dev/null || skip "curl not installed"
command -v promtool >/dev/null || skip "promtool not installed (scripts/bootstrap installs prometheus)"
command -v prometheus >/dev/null || skip "prometheus not installed (scripts/bootstrap installs it)"

e2e_init
moat device add dev1 --type sensor >/dev/null
moat device add dev2 --type sensor >/dev/null
moat device add cam1 --type camera >/dev/null
moat device disable cam1 >/dev/null
moat identity add op1 --role operator >/dev/null
moat identity add svc1 --role service >/dev/null
moatd_start

code=$(ocurl op1 -o "$T/metrics.txt" -w '%{http_code}' "$(url /metrics)")
[ "$code" = 200 ] || fail "operator: HTTP $code"
grep -q '^moat_devices{state="active",type="sensor"} 2$' "$T/metrics.txt" ||
	fail "devices by state and type: $(grep moat_devices "$T/metrics.txt")"
grep -q '^moat_devices{state="disabled",type="camera"} 1$' "$T/metrics.txt" ||
	fail "disabled camera not counted"
grep -q '^moat_certificate_expiry_horizon_seconds [0-9]' "$T/metrics.txt" ||
	fail "no certificate expiry horizon"
grep -q '^moat_security_events_total' "$T/metrics.txt" || qgrep '^# TYPE moat_security_events_total counter' "$T/metrics.txt" ||
	fail "no security events metric"
# the ingest (running, its broker away here) reports how it keeps up; test_monitor_export
# checks the values after traffic
for m in moat_ingest_lag_seconds:gauge moat_ingest_queue_length:gauge \
	moat_ingest_messages_received_total:counter moat_ingest_messages_recorded_total:counter \
	moat_ingest_messages_dropped_total:counter moat_ingest_bytes_received_total:counter; do
	grep -q "^# TYPE ${m%%:*} ${m#*:}$" "$T/metrics.txt" || fail "no TYPE ${m#*:} for ${m%%:*}"
	grep -q "^# HELP ${m%%:*} ." "$T/metrics.txt" || fail "no HELP for ${m%%:*}"
	grep -qE "^${m%%:*} [0-9]" "$T/metrics.txt" || fail "no sample of ${m%%:*}"
done
run_captured promtool check metrics <"$T/metrics.txt"
[ "$run_rc" = 0 ] || fail "promtool check metrics: $out $errout"
pass "an operator reads /metrics; promtool check metrics accepts it"

for who in dev1 svc1; do
	code=$(ocurl "$who" -o "$T/body" -w '%{http_code}' "$(url /metrics)") || true
	[ "$code" = 403 ] || fail "$who: HTTP $code, expected 403"
done
code=$(curl -sS --cacert "$D/pki/ca.crt" -o "$T/body" -w '%{http_code}' "$(url /metrics)") || true
[ "$code" = 403 ] || fail "no certificate: HTTP $code, expected 403"
grep -q "event=auth_refused .*reason=not_an_operator" "$T/moatd.log" || fail "refusal not logged"
pass "a device, a service and a caller without a certificate are refused (403, logged)"

# A real Prometheus scraping moatd over mutual TLS as op1.
P="$T/prom"
PPORT=$(free_port)
mkdir -p "$P/data"
cat >"$P/prometheus.yml" <<EOF2
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: moatd
    scheme: https
    tls_config:
      ca_file: $D/pki/ca.crt
      cert_file: $D/pki/identities/op1/cert.pem
      key_file: $D/pki/identities/op1/key.pem
      server_name: localhost
      insecure_skip_verify: false
    static_configs:
      - targets: ["127.0.0.1:$SERVER_PORT"]
EOF2
e2e_bg prometheus --config.file="$P/prometheus.yml" --storage.tsdb.path="$P/data" \
	--web.listen-address="127.0.0.1:$PPORT" --log.level=warn >"$P/log" 2>&1
q() { curl -sS --max-time 2 "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode "query=$1"; }
sensor_active() { q 'moat_devices{state="active",type="sensor"}' | qgrep '"value":\[[0-9.]*,"2"\]'; }
wait_for 30 sensor_active || fail "Prometheus has no sample: $(q 'up'); $(tail -5 "$P/log")"
q 'up{job="moatd"}' | qgrep '"value":\[[0-9.]*,"1"\]' || fail "target not up: $(q up)"
pass "Prometheus scrapes moatd over mutual TLS; its API returns moat_devices"
moatd_stop
