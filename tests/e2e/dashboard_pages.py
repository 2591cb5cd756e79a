#!/usr/bin/env python3
"""dashboard_pages.py: every existing dashboard page and action, in a real headless Chromium
(dashboard_browser.Browser over the DevTools protocol), for tests/e2e/test_dashboard_pages.sh.

usage: dashboard_pages.py CHROMIUM HOME SIGNIN_URL EXPECT_JSON

What the browser shows is compared with what the registry says, read with the moat CLI
(`moat --json ...`; the deployment is $MOAT_DIR) at the moment of the check. Every action is
done by clicking: its button, then a Cancel on the confirmation page (nothing changes), then
the button again and Confirm (the registry changes, an event names the operator). Prints one
JSON object (what it saw) and exits 0, or exits 1 with the first mismatch.
"""
import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dashboard_browser import Browser, check  # noqa: E402


def moat(*args):
    """`moat --json ARGS`: its JSON."""
    return json.loads(subprocess.run(["moat", "--json"] + list(args), check=True,
                                     capture_output=True, text=True).stdout)


def moat_lines(*args):
    """`moat --json ARGS` that prints one JSON object a line (moat events)."""
    out = subprocess.run(["moat", "--json"] + list(args), check=True, capture_output=True,
                         text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def action_events():
    return [e["evidence"] + " subject=" + (e.get("identity") or "")
            for e in moat_lines("events", "--kind", "dashboard_action")]


def wait_until(what, cond, timeout=20):
    deadline = time.time() + timeout * float(os.environ.get("E2E_SLOW", "1"))
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise SystemExit("FAIL: " + what)


class Pages:
    def __init__(self, b, base, expect):
        self.b, self.base, self.x = b, base, expect
        self.seen = {}

    def col(self, table, n=1):
        return self.b.js("[...document.querySelectorAll('#%s tr td:nth-child(%d)')]"
                         ".map(e => e.textContent)" % (table, n))

    def rows(self, table):
        return self.b.js("[...document.querySelectorAll('#%s tr')].filter(r => r.querySelector"
                         "('td')).map(r => [...r.children].map(c => c.textContent))" % table)

    def fill_filters(self, values):
        """The Devices filter form, filled in and submitted with its button."""
        self.b.goto(self.base + "/devices")
        self.b.load(lambda: self.b.js(
            "(() => { const f = document.querySelector('form.filters'); const v = %s;"
            " for (const k in v) f.elements[k].value = v[k];"
            " f.querySelector('button[type=submit]').click(); })()" % json.dumps(values)))

    def fleet(self):
        b = self.b
        b.goto(self.base)
        fleet = moat("fleet")
        devs = moat("device", "list")
        devs = [d for d in devs if d["role"] == "device"]
        for status, card in (("active", "#devices-active"), ("disabled", "#devices-disabled"),
                             ("revoked", "#devices-revoked")):
            want = len([d for d in devs if d["status"] == status])
            check(int(b.text(card)) == want, "fleet %s: %s, registry %d"
                  % (status, b.text(card), want))
        for state in ("online", "offline"):
            got = int(b.text("#conn-" + state))
            check(got == fleet["state"].get(state, 0),
                  "fleet %s: %d, registry %r" % (state, got, fleet["state"]))
        check(fleet["state"].get("online", 0) >= 1, "no device online: %r" % fleet["state"])
        by_type = {}
        for t, status, n in self.rows("by-type"):
            by_type[t] = by_type.get(t, 0) + int(n)
            want = len([d for d in devs if d["device_type"] == t and d["status"] == status])
            check(int(n) == want, "by type %s/%s: %s, registry %d" % (t, status, n, want))
        check(by_type == fleet["types"], "by type %r, registry %r" % (by_type, fleet["types"]))
        by_release = {(t, v): int(n) for t, v, n in self.rows("by-release")}
        for t, v in self.x["releases"]:
            want = len([d for d in self.x["running"].items()
                        if d[1] == v and self.x["types"][d[0]] == t])
            got = by_release.get((t, v), 0)
            check(got == want, "by release %s %s: %d, reported %d" % (t, v, got, want))
            check(fleet["releases"].get(v, 0) == got,
                  "by release %s: %d, moat fleet %r" % (v, got, fleet["releases"]))
        check(sum(by_release.values()) >= 3, "by release: %r" % by_release)
        self.seen["by_type"] = by_type
        self.seen["by_release"] = {"%s %s" % k: n for k, n in by_release.items()}

    def firmware(self):
        b = self.b
        b.goto(self.base + "/firmware")
        rel = moat("fw", "list")
        check(sorted(self.rows("releases"), key=lambda r: (r[0], r[1])) and
              [(r[0], r[1]) for r in sorted(self.rows("releases"))]
              == sorted((r["device_type"], r["version"]) for r in rel),
              "releases: %r, registry %r" % (self.rows("releases"), rel))
        rid = self.x["rollout"]
        st = moat("fw", "rollout", "status", str(rid))
        sel = "#rollout-%d" % rid
        check(b.text(sel + " .state") == st["rollout"]["state"],
              "rollout state %r, registry %r" % (b.text(sel + " .state"), st["rollout"]["state"]))
        heads = b.js("[...document.querySelectorAll('%s table th')].map(e => e.textContent)"
                     % sel)
        table = b.js("[...document.querySelectorAll('%s table tr')].slice(1)"
                     ".map(r => [...r.children].map(c => c.textContent))" % sel)
        check(len(table) == len(st["progress"]), "phases: %r" % table)
        outcomes = 0
        for row, want in zip(table, st["progress"]):
            cells = dict(zip(heads, row))
            check(cells["phase"].split(" ")[0] == str(want["phase"]), "phase %r" % cells)
            check(cells["percent"] == "%d%%" % want["percent"], "percent %r" % cells)
            check(int(cells["devices"]) == want["devices"], "devices %r / %r" % (cells, want))
            for k in heads[3:]:
                check(int(cells[k]) == want[k], "phase %d %s: %s, registry %d"
                      % (want["phase"], k, cells[k], want[k]))
                outcomes += want[k]
        check(outcomes >= 3, "no outcome in the phases: %r" % st["progress"])
        check("(current)" in table[st["rollout"]["phase"] - 1][0], "current phase: %r" % table)
        self.seen["phases"] = table

    def device_plots(self):
        """The 1h/24h/7d switch: each window plots the stored messages it covers."""
        b = self.b
        dev = self.x["telemetry_device"]
        b.goto(self.base + "/device/" + dev)
        kept = moat("device", "show", dev)["telemetry_kept"]
        got = {}
        for win in ("1h", "24h", "7d"):
            if b.js("!!document.querySelector('a[href$=\"window=%s\"]')" % win):
                b.click("a[href$=\"window=%s\"]" % win)
            check(b.js("location.search") == "?window=" + win or
                  (win == "24h" and b.js("location.search") == ""), "window %s" % win)
            check(b.text("main p b") == win, "window shown as %r" % b.text("main p b"))
            plots = b.js("[...document.querySelectorAll('svg.plot')].map(e => [e.dataset.metric,"
                         " +e.dataset.points, e.querySelector('polyline').getAttribute('points')"
                         ".trim().split(' ').length])")
            got[win] = {m: [n, cols] for m, n, cols in plots}
            for metric in ("temperature", "humidity", "rssi", "free_heap"):
                check(metric in got[win], "%s: no %s plot: %r" % (win, metric, plots))
                n, cols = got[win][metric]
                want = self.x["points"][win] if win != "7d" else kept["raw"]
                check(n == want, "%s %s: %d points, stored %d" % (win, metric, n, want))
                check(cols == min(n, 670), "%s %s: %d columns for %d points" % (win, metric,
                                                                                 cols, n))
        self.seen["plots"] = got

    def links(self):
        b = self.b
        # the devices table: its first link opens that device's page
        b.goto(self.base + "/devices")
        first = self.col("devices")[0]
        b.click("#devices tr td:first-child a")
        check(b.js("location.pathname") == "/dashboard/device/" + first and
              b.js("document.querySelector('h1').textContent") == first,
              "devices table link: %r" % b.js("location.href"))
        # the events page: a device's event links to it
        dev = self.x["event_device"]
        b.goto(self.base + "/events?device=" + dev)
        check(int(b.text("#matching")) >= 1, "no event of %s" % dev)
        b.click("#events a[href=\"/dashboard/device/%s\"]" % dev)
        check(b.js("location.pathname") == "/dashboard/device/" + dev and
              b.text("#status") == moat("device", "show", dev)["identity"]["status"],
              "events link: %r" % b.js("location.href"))

    def online(self):
        """The devices online: the simulated one, as the registry's count says."""
        want = [self.x["command_device"]]
        check(moat("device", "show", want[0])["state"] == "online" and
              moat("fleet")["state"].get("online") == 1, "online: %r" % moat("fleet")["state"])
        return want

    def filters(self):
        b = self.b
        devs = sorted(d["id"] for d in moat("device", "list") if d["role"] == "device")
        cases = [({"type": "lamp"}, self.x["filters"]["type=lamp"]),
                 ({"status": "disabled"}, self.x["filters"]["status=disabled"]),
                 ({"conn": "online"}, self.online()),
                 ({"release": self.x["filter_release"]}, self.x["filters"]["release"]),
                 ({"group": "sensors"}, moat("group", "show", "sensors")["devices"]),
                 ({"tag": "lab"}, self.x["filters"]["tag=lab"]),
                 ({"q": "l-"}, [d for d in devs if "l-" in d]),
                 ({"type": "sensor", "tag": "lab"}, self.x["filters"]["type=sensor,tag=lab"])]
        for values, want in cases:
            self.fill_filters(values)
            for k, v in values.items():
                check(("%s=%s" % (k, v)) in b.js("decodeURIComponent(location.search)"),
                      "filter %r not in the URL: %r" % (values, b.js("location.search")))
            rows = self.col("devices")
            check(sorted(rows) == sorted(want) and int(b.text("#total")) == len(want),
                  "filter %r: %r (total %s), registry %r" % (values, rows, b.text("#total"),
                                                             want))
            check(0 < len(rows) < len(devs), "filter %r does not narrow: %r" % (values, rows))
        # paging: 50 a page, the second page holds the rest, in the same order
        b.goto(self.base + "/devices")
        page1 = self.col("devices")
        check(page1 == devs[:50], "page 1: %r" % page1[:3])
        b.click("#next")
        page2 = self.col("devices")
        check(b.text("#page") == "2" and page2 == devs[50:100], "page 2: %r" % page2)
        check(b.js("!!document.querySelector('#prev')"), "no previous link on page 2")
        self.seen["pages"] = [len(page1), len(page2)]

    def device_action(self, dev, action, status_after, said):
        """The button, Cancel (nothing changes), the button again, Confirm."""
        b = self.b
        before = moat("device", "show", dev)["identity"]["status"]
        n = len(action_events())
        b.goto(self.base + "/device/" + dev)
        b.click("#do-" + action)
        check(b.text("#confirm-text") == "%s device %s?" % (action.capitalize(), dev),
              "confirm page: %r" % b.text("#confirm-text"))
        b.click("#confirm + a")
        check(b.js("location.pathname") == "/dashboard", "cancel went to %r"
              % b.js("location.href"))
        check(moat("device", "show", dev)["identity"]["status"] == before,
              "%s happened although cancelled" % action)
        b.goto(self.base + "/device/" + dev)
        b.click("#do-" + action)
        b.click("#confirm")
        check(b.text("#result") == "%s: %s." % (dev, said), "result %r"
              % b.text("#result"))
        check(moat("device", "show", dev)["identity"]["status"] == status_after,
              "%s: registry %r" % (action, moat("device", "show", dev)["identity"]["status"]))
        evs = action_events()
        check(len(evs) == n + 1 and evs[-1].startswith(
            "operator=%s via=session action=%s outcome=done" % (self.x["operator"], action))
            and evs[-1].endswith("subject=" + dev), "%s event: %r" % (action, evs[n:]))
        b.goto(self.base + "/device/" + dev)
        check(b.text("#status") == status_after, "device page after %s: %r"
              % (action, b.text("#status")))

    def revoke_cancelled(self, dev):
        """Revoke is not undone: only its Cancel is taken here (test_dashboard confirms one)."""
        b = self.b
        n = len(action_events())
        b.goto(self.base + "/device/" + dev)
        b.js("document.querySelector('select[name=reason]').value = 'superseded'")
        b.click("#do-revoke")
        check(b.text("#confirm-text") == "Revoke device %s for superseded?" % dev,
              "confirm page: %r" % b.text("#confirm-text"))
        b.click("#confirm + a")
        check(b.js("location.pathname") == "/dashboard", "cancel went to %r"
              % b.js("location.href"))
        show = moat("device", "show", dev)
        check(show["identity"]["status"] == "active" and not show["identity"]["cert_revoked"],
              "revoked although cancelled: %r" % show["identity"])
        check(len(action_events()) == n, "a cancelled revoke was recorded")

    def rollout_action(self, action, state_after):
        b = self.b
        rid = self.x["rollout"]
        sel = "#rollout-%d" % rid
        n = len(action_events())
        b.goto(self.base + "/firmware")
        b.click(sel + " #do-" + action)
        check(b.text("#confirm-text") == "%s rollout %d?" % (action.capitalize(), rid),
              "confirm page: %r" % b.text("#confirm-text"))
        b.click("#confirm + a")
        check(moat("fw", "rollout", "status", str(rid))["rollout"]["state"] != state_after,
              "%s happened although cancelled" % action)
        b.goto(self.base + "/firmware")
        b.click(sel + " #do-" + action)
        b.click("#confirm")
        check(b.text("#result") == "Rollout %d: %s." % (rid, state_after), "result %r"
              % b.text("#result"))
        got = moat("fw", "rollout", "status", str(rid))["rollout"]["state"]
        check(got == state_after, "rollout after %s: %r" % (action, got))
        evs = action_events()
        check(len(evs) == n + 1 and evs[-1].startswith(
            "operator=%s via=session action=%s rollout-%d outcome=done"
            % (self.x["operator"], action, rid)), "%s event: %r" % (action, evs[n:]))
        b.goto(self.base + "/firmware")
        check(b.text(sel + " .state") == state_after, "firmware page after %s" % action)

    def command(self):
        """diagnostics to the simulated device: sent after Confirm, its answer recorded."""
        b = self.b
        dev = self.x["command_device"]
        n = len(action_events())
        b.goto(self.base + "/device/" + dev)
        b.js("document.querySelector('select[name=command]').value = 'diagnostics'")
        b.click("#do-command")
        check(b.text("#confirm-text") == "Send diagnostics to device %s?" % dev,
              "confirm page: %r" % b.text("#confirm-text"))
        b.click("#confirm + a")
        check(len(action_events()) == n, "a cancelled command was sent")
        b.goto(self.base + "/device/" + dev)
        b.js("document.querySelector('select[name=command]').value = 'diagnostics'")
        b.click("#do-command")
        b.click("#confirm")
        res = b.text("#result") or ""
        check(res.startswith("%s: diagnostics sent (id dash-" % dev), "command: %r" % res)
        cid = res.split("(id ")[1].split(")")[0]
        evs = action_events()
        check(len(evs) == n + 1 and evs[-1].startswith(
            "operator=%s via=session action=command command=diagnostics id=%s outcome=sent"
            % (self.x["operator"], cid)), "command event: %r" % evs[n:])
        # the device's answer, recorded by ingest, in the registry and on its page
        show = wait_until("no answer to the command recorded",
                          lambda: (lambda s: s if s["last_command"] == "diagnostics" else None)
                          (moat("device", "show", dev)))
        b.goto(self.base + "/device/" + dev)
        shown = b.js("[...document.querySelectorAll('#identity tr')].filter(r => r.querySelector"
                     "('th').textContent == 'last command')[0].querySelector('td').textContent")
        check(shown.startswith("diagnostics: " + show["last_command_status"] + " at "),
              "last command shown %r, registry %r" % (shown, show["last_command_status"]))
        self.seen["command"] = shown


def main():
    chromium, home, signin, expect_path = sys.argv[1:5]
    x = json.load(open(expect_path))
    base = signin.split("/dashboard/")[0] + "/dashboard"
    b = Browser(chromium, home)
    p = Pages(b, base, x)
    t0 = time.time()
    try:
        b.goto(signin)
        check(b.text("#operator") == x["operator"], "not signed in: %r" % b.js("location.href"))
        for step in (p.fleet, p.firmware, p.device_plots):
            step()
        p.device_action(x["toggle_device"], "disable", "disabled", "disabled")
        p.fleet()  # the disabled card and the by-type rows follow the registry
        p.revoke_cancelled(x["keep_device"])
        p.filters()
        p.device_action(x["toggle_device"], "enable", "active", "enabled")
        p.rollout_action("pause", "paused")
        p.rollout_action("resume", "running")
        p.command()
        p.links()
    finally:
        b.close()
    p.seen["ms"] = int((time.time() - t0) * 1000)
    print(json.dumps(p.seen))


if __name__ == "__main__":
    main()
