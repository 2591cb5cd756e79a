#!/usr/bin/env python3
"""dashboard_events_live.py: the Security events page is live in a real headless Chromium.

usage: dashboard_events_live.py CHROMIUM HOME SIGNIN_URL DEVICE KIND TRIGGER_COMMAND

Signs in with the one-time link, opens /dashboard/events?kind=KIND, marks the page (a
property of window that a reload would lose), runs TRIGGER_COMMAND (a shell command that
makes the broker refuse DEVICE), and waits until a row appended by the page's script shows
that event with a link to DEVICE's page, without a reload. Prints one JSON object of what it
saw; exit 1 with a message otherwise. HOME's NSS database trusts the deployment's root CA.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dashboard_browser import SLOW, Browser, check  # noqa: E402


def main():
    chromium, home, signin, device, kind, trigger = sys.argv[1:7]
    base = signin.split("/dashboard/")[0] + "/dashboard"
    b = Browser(chromium, home)
    seen = {}
    try:
        b.goto(signin)
        b.goto(base + "/events?kind=" + kind)
        rows_before = b.js("document.querySelectorAll('#events tr').length")
        # the script opened the stream: its status line says so
        deadline = time.time() + 15 * SLOW
        while time.time() < deadline and not (b.text("#stream-status") or "").startswith("Live: new"):
            time.sleep(0.1)
        seen["status"] = b.text("#stream-status")
        check(seen["status"] == "Live: new events appear below.",
              "the stream did not open: %r" % seen["status"])
        b.js("window.moatMarker = 'not reloaded'")
        seen["after_seq"] = int(b.js("document.getElementById('events').getAttribute('data-after')"))
        subprocess.run(trigger, shell=True, check=False, timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sel = "#events tr.live a[href='/dashboard/device/%s']" % device
        deadline = time.time() + 20 * SLOW
        while time.time() < deadline and not b.js("!!document.querySelector(%s)" % json.dumps(sel)):
            time.sleep(0.2)
        check(b.js("!!document.querySelector(%s)" % json.dumps(sel)),
              "no live row for %s within 20 s" % device)
        seen["row"] = b.js("document.querySelector(%s).closest('tr').textContent"
                           % json.dumps(sel))
        seen["kind"] = b.js("document.querySelector(%s).closest('tr').children[1].textContent"
                            % json.dumps(sel))
        check(seen["kind"] == kind, "the live row's kind: %r" % seen["kind"])
        # the page's filter applies to the stream: no row of another kind was appended
        # (the shell test checks that events of other kinds were recorded meanwhile)
        kinds = b.js("Array.from(document.querySelectorAll('#events tr.live'))"
                     ".map(function (r) { return r.children[1].textContent; })")
        seen["live_kinds"] = sorted(set(kinds))
        check(seen["live_kinds"] == [kind], "live rows of other kinds: %r" % kinds)
        seen["marker"] = b.js("window.moatMarker || null")
        check(seen["marker"] == "not reloaded", "the page was reloaded")
        seen["rows_before"] = rows_before
        seen["rows_after"] = b.js("document.querySelectorAll('#events tr').length")
        check(seen["rows_after"] > rows_before, "no row was added")
        # the link works: the device's page opens
        b.click(sel)
        seen["device_page"] = b.text("h1")
        check(device in (seen["device_page"] or ""), "device page: %r" % seen["device_page"])
    finally:
        b.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
