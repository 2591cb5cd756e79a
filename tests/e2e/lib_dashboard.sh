# lib_dashboard.sh: the headless Chromium of the dashboard tests (sourced, not run).

# dash_require: skips unless Chromium, certutil, python3-websocket and jq are here.
dash_require() {
	command -v chromium >/dev/null || skip "chromium not installed (scripts/bootstrap installs it)"
	command -v certutil >/dev/null || skip "certutil not installed (libnss3-tools)"
	/usr/bin/python3 -c 'import websocket' 2>/dev/null || skip "python3-websocket not installed"
	command -v jq >/dev/null || skip "jq not installed"
}

# dash_browser_home DIR: a HOME for Chromium whose NSS database trusts the deployment's root
# CA, so moatd's certificate is verified like any site's (no switch turns that off).
dash_browser_home() {
	mkdir -p "$1/.pki/nssdb"
	certutil -N -d "sql:$1/.pki/nssdb" --empty-password
	certutil -A -d "sql:$1/.pki/nssdb" -n moat-e2e-root -t "C,," -i "$D/pki/ca.crt"
}
