#!/usr/bin/env python3
"""dashboard_browser.py: drives a real headless Chromium over the Chrome DevTools Protocol
for tests/e2e/test_dashboard.sh (and scripts/dashboard-screenshots).

usage: dashboard_browser.py CHROMIUM HOME SIGNIN_URL EXPECT_JSON [SHOTS_DIR]
       dashboard_browser.py --bench CHROMIUM HOME SIGNIN_URL PATHS_JSON ROUNDS

HOME must hold an NSS database ($HOME/.pki/nssdb) that trusts the deployment's root CA:
the browser verifies moatd's certificate like any other site (no switch turns that off).
It signs in with the one-time link, opens every page, checks what EXPECT_JSON says each
must show, revokes the device EXPECT["revoke"] through the UI (button, then the confirm
page), and prints one JSON object: what it saw. Exit 1 with a message on any mismatch.
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

# every wait scales with slow (sanitizer) builds, as the shell tests' deadline does
SLOW = float(os.environ.get("E2E_SLOW", "1"))

import websocket  # python3-websocket


class Browser:
    def __init__(self, chromium, home, width=1280, height=900):
        self.port = None
        self.profile = os.path.join(home, "profile")
        env = dict(os.environ, HOME=home)
        args = [chromium, "--headless=new", "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0", "--user-data-dir=" + self.profile,
                "--no-first-run", "--no-default-browser-check", "--disable-gpu",
                "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--mute-audio",
                "--window-size=%d,%d" % (width, height), "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to start as root otherwise
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(home, "chromium.log"), "w"))
        deadline = time.time() + 30 * SLOW
        pages = None
        # port 0: Chromium binds a free port itself and names it in DevToolsActivePort,
        # so no other test can take the port between a choice and the bind
        active = os.path.join(self.profile, "DevToolsActivePort")
        while time.time() < deadline:
            try:
                if self.port is None:
                    with open(active) as f:
                        first = f.readline().strip()
                    if not first.isdigit():
                        raise OSError("DevToolsActivePort not written yet")
                    self.port = int(first)
                with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % self.port,
                                            timeout=2) as r:
                    pages = [p for p in json.load(r) if p.get("type") == "page"]
                if pages:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        if not pages:
            self.close()
            raise SystemExit("chromium did not start: see chromium.log")
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=20,
                                              suppress_origin=True)
        self.next_id = 0
        self.events = []
        self.call("Page.enable")
        self.call("Network.enable")
        self.call("Runtime.enable")

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, name, timeout=20):
        timeout *= SLOW
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i, e in enumerate(self.events):
                if e.get("method") == name:
                    del self.events[i]
                    return e
            self.ws.settimeout(max(0.1, deadline - time.time()))
            try:
                self.events.append(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                break
        raise RuntimeError("no %s within %ss" % (name, timeout))

    def load(self, action):
        """Runs action (navigate, click) and waits for the page that results."""
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        action()
        self.wait_event("Page.loadEventFired")

    def goto(self, url):
        t0 = time.time()
        self.load(lambda: self.call("Page.navigate", url=url))
        return (time.time() - t0) * 1000

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError("%s: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def text(self, selector):
        return self.js("(e => e ? e.textContent : null)(document.querySelector(%s))"
                       % json.dumps(selector))

    def click(self, selector):
        self.load(lambda: self.js("document.querySelector(%s).click()" % json.dumps(selector)))

    def screenshot(self, path, width, height, full=0):
        """The viewport; full=N: the page from its top, at most N viewports high."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=width < 600)
        if full:
            page = self.js("document.documentElement.scrollHeight")
            height = min(max(int(page), height), full * height)
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                      deviceScaleFactor=1, mobile=width < 600)
        import base64
        data = self.call("Page.captureScreenshot", format="png",
                         captureBeyondViewport=False)["data"]
        if full:
            self.call("Emulation.clearDeviceMetricsOverride")
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)


def bench(chromium, home, signin, paths, rounds):
    """bench/dashboard: signs in, then loads each path `rounds` times; prints per path the
    times from navigation start to the load event (ms), as the browser measured them."""
    base = signin.split("/dashboard/")[0]
    b = Browser(chromium, home)
    out = {}
    try:
        b.goto(signin)
        for path in paths:
            times = []
            for _ in range(rounds):
                b.goto(base + path)
                t = b.js("(() => { const n = performance.getEntriesByType('navigation')[0];"
                         " return [n.responseStart - n.requestStart,"
                         " n.loadEventStart - n.startTime, document.title]; })()")
                check(t[2] != "Sign in - moat", "not signed in at " + path)
                times.append({"ttfb_ms": round(t[0], 1), "load_ms": round(t[1], 1)})
            out[path] = times
    finally:
        b.close()
    print(json.dumps(out))


def main():
    if sys.argv[1] == "--bench":
        chromium, home, signin, paths, rounds = sys.argv[2:7]
        bench(chromium, home, signin, json.loads(paths), int(rounds))
        return
    chromium, home, signin, expect_path = sys.argv[1:5]
    shots = sys.argv[5] if len(sys.argv) > 5 else None
    expect = json.load(open(expect_path))
    base = signin.split("/dashboard/")[0] + "/dashboard"
    b = Browser(chromium, home)
    seen = {}
    try:
        # the link: a redirect to the fleet page with the session cookie set
        seen["signin_ms"] = b.goto(signin)
        check(b.js("location.pathname") == "/dashboard",
              "sign-in did not land on /dashboard: %s" % b.js("location.href"))
        seen["operator"] = b.text("#operator")
        check(seen["operator"] == expect["operator"], "operator shown: %r" % seen["operator"])
        cookies = b.call("Network.getCookies", urls=[base])["cookies"]
        c = [c for c in cookies if c["name"] == "moat_session"]
        check(len(c) == 1, "no session cookie: %r" % cookies)
        check(c[0]["httpOnly"] and c[0]["secure"] and c[0]["sameSite"] == "Strict",
              "session cookie attributes: %r" % c[0])
        check(not b.js("document.cookie"), "the session cookie is readable by scripts")
        # Fleet
        seen["active"] = int(b.text("#devices-active"))
        check(seen["active"] == expect["active"], "fleet active devices: %r" % seen["active"])
        check(b.js("document.querySelectorAll('#events-plot rect').length") == 24,
              "no events plot")
        seen["fleet_by_type"] = b.text("#by-type")
        if shots:
            for w, h, tag in ((1280, 900, "desktop"), (390, 844, "phone")):
                b.screenshot(os.path.join(shots, "fleet-%s.png" % tag), w, h, full=3)
        # Devices: every device, then a filter, then a tag
        seen["devices_ms"] = b.goto(base + "/devices")
        seen["devices_total"] = int(b.text("#total"))
        check(seen["devices_total"] == expect["devices"],
              "devices listed: %r" % seen["devices_total"])
        rows = b.js("[...document.querySelectorAll('#devices tr td:first-child')]"
                    ".map(e => e.textContent)")
        check(rows == expect["device_ids"][:50], "device rows: %r" % rows[:5])
        b.goto(base + "/devices?q=" + expect["search"])
        seen["search_total"] = int(b.text("#total"))
        check(seen["search_total"] == expect["search_total"],
              "search %s: %r" % (expect["search"], seen["search_total"]))
        b.goto(base + "/devices?tag=" + expect["tag"])
        tagged = b.js("[...document.querySelectorAll('#devices tr td:first-child')]"
                      ".map(e => e.textContent)")
        check(tagged == expect["tagged"], "tag filter: %r" % tagged)
        b.goto(base + "/devices?group=" + expect["group"])
        grouped = b.js("[...document.querySelectorAll('#devices tr td:first-child')]"
                       ".map(e => e.textContent)")
        check(grouped == expect["grouped"], "group filter: %r" % grouped)
        if shots:
            b.goto(base + "/devices")
            for w, h, tag in ((1280, 900, "desktop"), (390, 844, "phone")):
                b.screenshot(os.path.join(shots, "devices-%s.png" % tag), w, h)
        # Device page of the one with telemetry
        dev = expect["telemetry_device"]
        b.goto(base + "/device/" + dev + "?window=1h")
        seen["device_status"] = b.text("#status")
        check(seen["device_status"] == "active", "device status: %r" % seen["device_status"])
        plots = b.js("[...document.querySelectorAll('svg.plot')].map(e => "
                     "[e.dataset.metric, +e.dataset.points])")
        seen["plots"] = plots
        check([m for m, n in plots if m == "temperature" and n >= expect["points"]],
              "telemetry plot: %r" % plots)
        check(b.text("#serial") == expect["serial"], "certificate serial: %r" % b.text("#serial"))
        chain = b.js("[...document.querySelectorAll('#chain tr td:first-child')]"
                     ".map(e => e.textContent)")
        check(len(chain) == 3 and "CN=" + dev in chain[0] and "Issuing CA" in chain[1]
              and "Issuing CA" not in chain[2],
              "certificate chain: %r" % chain)
        if shots:
            for w, h, tag in ((1280, 900, "desktop"), (390, 844, "phone")):
                b.screenshot(os.path.join(shots, "device-%s.png" % tag), w, h, full=2)
        # Security events, filtered by kind
        b.goto(base + "/events?kind=" + expect["event_kind"])
        seen["events_matching"] = int(b.text("#matching"))
        check(seen["events_matching"] >= 1, "no %s events shown" % expect["event_kind"])
        kinds = b.js("[...new Set([...document.querySelectorAll('#events tr td:nth-child(2)')]"
                     ".map(e => e.textContent))]")
        check(kinds == [expect["event_kind"]], "event filter: %r" % kinds)
        if shots:
            b.goto(base + "/events")
            for w, h, tag in ((1280, 900, "desktop"), (390, 844, "phone")):
                b.screenshot(os.path.join(shots, "events-%s.png" % tag), w, h)
        # Firmware
        b.goto(base + "/firmware")
        versions = b.js("[...document.querySelectorAll('#releases tr td:nth-child(2)')]"
                        ".map(e => e.textContent)")
        check(versions == expect["versions"], "releases: %r" % versions)
        if shots:
            for w, h, tag in ((1280, 900, "desktop"), (390, 844, "phone")):
                b.screenshot(os.path.join(shots, "firmware-%s.png" % tag), w, h)
        # Pause and resume the rollout through the UI, each confirmed
        if expect.get("rollout"):
            sel = "#rollout-%d" % expect["rollout"]
            check(b.text(sel + " .state") == "running", "rollout: %r" % b.text(sel))
            b.click(sel + " #do-pause")
            b.click("#confirm")
            check("paused" in (b.text("#result") or ""), "pause: %r" % b.text("#result"))
            b.goto(base + "/firmware")
            check(b.text(sel + " .state") == "paused", "after pause: %r" % b.text(sel))
            b.click(sel + " #do-resume")
            b.click("#confirm")
            check("running" in (b.text("#result") or ""), "resume: %r" % b.text("#result"))
        # Revoke through the UI: the button, then the confirmation page
        if expect.get("revoke"):
            b.goto(base + "/device/" + expect["revoke"])
            b.js("document.querySelector('select[name=reason]').value = 'key-compromise'")
            b.click("#do-revoke")
            check(b.text("#confirm-text").startswith("Revoke device " + expect["revoke"]),
                  "confirm page: %r" % b.text("#confirm-text"))
            b.click("#confirm")
            seen["revoke_result"] = b.text("#result")
            check(seen["revoke_result"] and "revoked" in seen["revoke_result"],
                  "revoke: %r" % seen["revoke_result"])
            b.goto(base + "/device/" + expect["revoke"])
            check(b.text("#status") == "revoked", "status after revoke: %r" % b.text("#status"))
        # CSP: no script ran and none may (the policy the browser received)
        seen["scripts"] = b.js("document.scripts.length")
    finally:
        b.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
