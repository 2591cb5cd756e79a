#!/usr/bin/env python3
"""notify_listener.py SOCKET PORT OUT: the service manager's side of sd_notify(3), for
test_moatd_notify.sh. Binds a unix datagram socket at SOCKET (mode 0666: moatd may have
switched to its own account), writes SOCKET.bound once it listens, then appends one line per
datagram to OUT: the datagram's assignments, and for one with READY=1 whether a TCP
connection to 127.0.0.1:PORT was accepted at that moment ("accepting=yes|no"). Ends after
STOPPING=1, or after 120 s without a datagram."""
import os
import socket
import sys

path, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
open(path + ".bound", "w").close()
s.settimeout(120)
with open(out, "a") as f:
    while True:
        try:
            msg = s.recv(4096).decode("utf-8", "replace")
        except socket.timeout:
            break
        line = " ".join(msg.split("\n")).strip()
        if "READY=1" in msg.split("\n"):
            try:
                c = socket.create_connection(("127.0.0.1", port), timeout=2)
                c.close()
                line += " accepting=yes"
            except OSError:
                line += " accepting=no"
        f.write(line + "\n")
        f.flush()
        if "STOPPING=1" in msg.split("\n"):
            break
