#!/usr/bin/env python3
"""slowpeer.py: the slow clients of the moatd and broker flood tests (run by them, not by
ctest). Every mode is bounded in connections and in time, talks only to the address it is
given (127.0.0.1 or a namespace the test made), and writes its result as key=value lines
to the file named by --out, the last line being "done".

  idle     COUNT connections from each --source, opened and held without a byte; waits
           until the server closes each one (EOF or reset) or --limit seconds pass.
           Writes opened=N once all are open, then closed=N open=M (still open at --limit).
  trickle  a TLS session without a client certificate, then "GET ... HTTP/1.1" one byte a
           second; writes tls=done, then closed_after_bytes=N (the server cut it) or
           sent_all=1.
  slowtls  the TLS ClientHello one byte a second over raw TCP; writes closed_after_bytes=N
           or sent_all=1.
  stalltls the whole TLS ClientHello at once, then the server's answer read and nothing
           more sent: the server waits for the client's second flight. Writes stalled=1
           once the server's flight arrived, then closed=1 (the server cut it) or
           held=1 (--until exists or --limit passed, then closed by the client).
  body     a TLS session, headers with a large Content-Length, then the body one byte a
           second; writes status=CODE and closed=1 once the server closed.
  hold     COUNT connections from the first --source, one after another (TLS with --cert
           and --key when given, then nothing: no MQTT CONNECT, no request); writes
           results=ok,ok,...,refused (refused: reset or closed at once), then held=N, and
           holds them until the file --until exists or --limit seconds pass.
  churn    COUNT connections from the first --source, each reset at once; writes
           ok=N refused=M.
  device   --cert/--key: COUNT TLS sessions as that device, each sending one keep-alive
           request; writes status_I=CODE for each, then holds them until --limit or EOF.
"""
import argparse
import os
import select
import socket
import ssl
import struct
import sys
import time


def out_line(path, text):
    with open(path, "a") as f:
        f.write(text + "\n")


def connect(args, source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(10)
    s.connect((args.host, args.port))
    s.settimeout(None)
    return s


def closed_by_peer(s):
    """Called when select() says s is readable: true when the server closed it. A TLS
    socket may be readable for a record that carries no data (a TLS 1.3 session ticket),
    so it is read without blocking."""
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    except ssl.SSLError:
        return True
    finally:
        s.setblocking(True)


def idle(args):
    socks = []
    for src in args.source:
        for _ in range(args.count):
            try:
                socks.append(connect(args, src))
            except OSError as e:
                out_line(args.out, "connect_error=%s" % e.__class__.__name__)
                socks.append(None)
    out_line(args.out, "opened=%d" % sum(1 for s in socks if s))
    end = time.monotonic() + args.limit
    live = [s for s in socks if s]
    closed = len(socks) - len(live)
    while live and time.monotonic() < end:
        r, _, _ = select.select(live, [], [], 0.5)
        for s in r:
            if closed_by_peer(s):
                live.remove(s)
                s.close()
                closed += 1
    out_line(args.out, "closed=%d open=%d" % (closed, len(live)))
    out_line(args.out, "done")


def tls_context(args):
    ctx = ssl.create_default_context(cafile=args.ca)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    return ctx


def trickle_bytes(s, data, args):
    """Sends data one byte a second; returns how many were sent before the server cut."""
    end = time.monotonic() + args.limit
    for i, b in enumerate(data):
        if time.monotonic() > end:
            return None
        try:
            s.sendall(bytes([b]))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            return i
        r, _, _ = select.select([s], [], [], 1.0)
        if r and closed_by_peer(s):
            return i + 1
    return None


def trickle(args):
    raw = connect(args, args.source[0])
    s = tls_context(args).wrap_socket(raw, server_hostname="localhost")
    out_line(args.out, "tls=done")
    req = b"GET /api/firmware/version HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n"
    n = trickle_bytes(s, req, args)
    out_line(args.out, "sent_all=1" if n is None else "closed_after_bytes=%d" % n)
    out_line(args.out, "done")


def slowtls(args):
    ctx = ssl.create_default_context(cafile=args.ca)
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outg, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outg.read()
    s = connect(args, args.source[0])
    n = trickle_bytes(s, hello, args)
    out_line(args.out, "hello_bytes=%d" % len(hello))
    out_line(args.out, "sent_all=1" if n is None else "closed_after_bytes=%d" % n)
    out_line(args.out, "done")


def stalltls(args):
    ctx = ssl.create_default_context(cafile=args.ca)
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outg, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    s = connect(args, args.source[0])
    s.sendall(outg.read())
    end = time.monotonic() + args.limit
    r, _, _ = select.select([s], [], [], max(0.0, end - time.monotonic()))
    if not r or not s.recv(65536):
        out_line(args.out, "no_answer=1")
        out_line(args.out, "done")
        return
    out_line(args.out, "stalled=1")
    closed = False
    while time.monotonic() < end and not (args.until and os.path.exists(args.until)):
        r, _, _ = select.select([s], [], [], 0.1)
        if r:
            try:
                if not s.recv(65536):
                    closed = True
                    break
            except (ConnectionResetError, OSError):
                closed = True
                break
    s.close()
    out_line(args.out, "closed=1" if closed else "held=1")
    out_line(args.out, "done")


def read_status(s, end):
    buf = b""
    while b"\r\n" not in buf and time.monotonic() < end:
        try:
            chunk = s.recv(4096)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        buf += chunk
    parts = buf.split(b" ", 2)
    return parts[1].decode() if len(parts) > 1 else "none"


def body(args):
    raw = connect(args, args.source[0])
    s = tls_context(args).wrap_socket(raw, server_hostname="localhost")
    s.sendall(b"GET /api/firmware/version HTTP/1.1\r\nHost: localhost\r\n"
              b"Content-Length: 100000\r\n\r\n")
    s.sendall(b"x")
    end = time.monotonic() + args.limit
    out_line(args.out, "status=%s" % read_status(s, end))
    # the server must close: keep trickling until it does
    n = trickle_bytes(s, b"y" * int(args.limit), args)
    out_line(args.out, "closed=%d" % (0 if n is None else 1))
    out_line(args.out, "done")


def device(args):
    ctx = tls_context(args)
    socks = []
    end = time.monotonic() + args.limit
    for i in range(args.count):
        s = ctx.wrap_socket(connect(args, args.source[0]), server_hostname="localhost")
        s.sendall(b"GET /api/firmware/version HTTP/1.1\r\nHost: localhost\r\n\r\n")
        out_line(args.out, "status_%d=%s" % (i, read_status(s, end)))
        socks.append(s)
    out_line(args.out, "held=%d" % len(socks))
    while socks and time.monotonic() < end:
        r, _, _ = select.select(socks, [], [], 0.5)
        for s in r:
            try:
                if s.recv(4096) == b"":
                    socks.remove(s)
            except (ConnectionResetError, ssl.SSLError, OSError):
                socks.remove(s)
    out_line(args.out, "done")


def try_connect(args, ctx):
    try:
        s = connect(args, args.source[0])
    except (ConnectionRefusedError, ConnectionResetError):
        return None
    if ctx:
        try:
            s = ctx.wrap_socket(s, server_hostname="localhost")
        except (ConnectionResetError, ssl.SSLError, OSError):
            return None
    # a reset right after the handshake (a refused SYN shows as ECONNREFUSED above)
    r, _, _ = select.select([s], [], [], 0.2)
    if r and closed_by_peer(s):
        return None
    return s


def hold(args):
    import os
    ctx = tls_context(args) if args.cert else None
    socks = [try_connect(args, ctx) for _ in range(args.count)]
    out_line(args.out, "results=" + ",".join("ok" if s else "refused" for s in socks))
    live = [s for s in socks if s]
    out_line(args.out, "held=%d" % len(live))
    end = time.monotonic() + args.limit
    while time.monotonic() < end and not (args.until and os.path.exists(args.until)):
        time.sleep(0.1)
    for s in live:
        s.close()
    out_line(args.out, "done")


def churn(args):
    ok = refused = 0
    for _ in range(args.count):
        try:
            s = connect(args, args.source[0])
            # a reset, not a FIN: the connection is gone from conntrack at once, so only
            # the rate bound, never the per-source count, can refuse the next one
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            ok += 1
        except (ConnectionRefusedError, ConnectionResetError):
            refused += 1
    out_line(args.out, "ok=%d refused=%d" % (ok, refused))
    out_line(args.out, "done")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["idle", "trickle", "slowtls", "stalltls", "body", "device", "hold", "churn"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--source", action="append", default=[])
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--limit", type=float, default=60)
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--until")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if not args.source:
        args.source = ["127.0.0.1"]
    if args.count * len(args.source) > 2000:
        sys.exit("slowpeer: at most 2000 connections")
    {"idle": idle, "trickle": trickle, "slowtls": slowtls, "stalltls": stalltls, "body": body,
     "device": device, "hold": hold, "churn": churn}[args.mode](args)


if __name__ == "__main__":
    main()
