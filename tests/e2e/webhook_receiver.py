#!/usr/bin/env python3
"""webhook_receiver.py PORT CERT KEY OUT [FAIL_FIRST]: an HTTPS server on 127.0.0.1:PORT (the
test's own certificate) that appends each POST's body as one line to OUT and answers 204;
the first FAIL_FIRST requests are answered 503 (and recorded as "503 <body>")."""
import http.server
import ssl
import sys

port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
fail_first = int(sys.argv[5]) if len(sys.argv) > 5 else 0
seen = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n).decode("utf-8", "replace").replace("\n", " ")
        seen += 1
        status = 503 if seen <= fail_first else 204
        with open(out, "a") as f:
            f.write(("503 " if status == 503 else "") + body + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.minimum_version = ssl.TLSVersion.TLSv1_2
ctx.load_cert_chain(cert, key)
srv = http.server.HTTPServer(("127.0.0.1", port), Handler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("listening", flush=True)
srv.serve_forever()
