#!/usr/bin/env python3
"""est_fake_server.py: a small EST server (RFC 7030) for test_enroll_client.sh, written on
python3's http.server and ssl with certificates signed by the openssl CLI, so that the
device's EST client is tested against an implementation nobody here wrote, and made to
answer wrongly on purpose. Not a mock of moatd: test_enroll_agent.sh runs the real one.

usage: est_fake_server.py PORT_FILE CERT KEY DIR
  DIR/mode (read at every request) says how to answer simpleenroll:
    ok        the certificate for the CSR's key and CN, then the issuing CA
    leaf      the certificate alone (the client must fetch cacerts for the chain)
    wrongkey  a certificate for another key (DIR/other.crt)
    wrongcn   the CSR's key with CN dev-2
    ca        the CSR's key, but CA:TRUE
    badp7     base64 that is no PKCS#7
    html      200 with text/html
    401, 500  that status with a one-line reason
  Every request's method, path and Authorization header are appended to DIR/requests.log.
"""
import base64
import http.server
import os
import ssl
import subprocess
import sys

PORT_FILE, CERT, KEY, DIR = sys.argv[1:5]


def p7_of(*pems):
    args = ["openssl", "crl2pkcs7", "-nocrl", "-outform", "DER"]
    for p in pems:
        args += ["-certfile", p]
    der = subprocess.run(args, check=True, capture_output=True).stdout
    b64 = base64.b64encode(der).decode()
    return "\r\n".join(b64[i:i + 64] for i in range(0, len(b64), 64)) + "\r\n"


def sign(csr_der, cn, ext):
    with open(os.path.join(DIR, "req.der"), "wb") as f:
        f.write(csr_der)
    out = os.path.join(DIR, "issued.crt")
    subprocess.run(["openssl", "x509", "-req", "-inform", "DER", "-in",
                    os.path.join(DIR, "req.der"), "-CA", os.path.join(DIR, "int.crt"),
                    "-CAkey", os.path.join(DIR, "int.key"), "-subj", "/CN=" + cn,
                    "-days", "1", "-extfile", os.path.join(DIR, "ext.cnf"),
                    "-extensions", ext, "-out", out],
                   check=True, capture_output=True)
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def record(self):
        with open(os.path.join(DIR, "requests.log"), "a") as f:
            f.write("%s %s auth=%s\n" % (self.command, self.path,
                                         self.headers.get("Authorization", "-")))

    def answer(self, status, ctype, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if ctype.startswith("application/pkcs7"):
            self.send_header("Content-Transfer-Encoding", "base64")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.record()
        if self.path == "/.well-known/est/cacerts":
            self.answer(200, "application/pkcs7-mime",
                        p7_of(os.path.join(DIR, "int.crt"), os.path.join(DIR, "ca.crt")))
        else:
            self.answer(404, "text/plain", "not found\n")

    def do_POST(self):
        self.record()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/.well-known/est/simpleenroll":
            self.answer(404, "text/plain", "not found\n")
            return
        with open(os.path.join(DIR, "mode")) as f:
            mode = f.read().strip()
        csr = base64.b64decode(body)
        pkcs7 = "application/pkcs7-mime; smime-type=certs-only"
        if mode == "ok":
            self.answer(200, pkcs7, p7_of(sign(csr, "dev-1", "client"),
                                          os.path.join(DIR, "int.crt")))
        elif mode == "leaf":
            self.answer(200, pkcs7, p7_of(sign(csr, "dev-1", "client")))
        elif mode == "wrongkey":
            self.answer(200, pkcs7, p7_of(os.path.join(DIR, "other.crt"),
                                          os.path.join(DIR, "int.crt")))
        elif mode == "wrongcn":
            self.answer(200, pkcs7, p7_of(sign(csr, "dev-2", "client"),
                                          os.path.join(DIR, "int.crt")))
        elif mode == "ca":
            self.answer(200, pkcs7, p7_of(sign(csr, "dev-1", "ca"),
                                          os.path.join(DIR, "int.crt")))
        elif mode == "badp7":
            self.answer(200, pkcs7, "bm90IGEgUEtDUyM3IGF0IGFsbA==\r\n")
        elif mode == "html":
            self.answer(200, "text/html", "<html>login</html>\n")
        elif mode == "401":
            self.answer(401, "text/plain", "bad token\n")
        else:
            self.answer(int(mode), "text/plain", "server trouble\n")


srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
srv.serve_forever()
