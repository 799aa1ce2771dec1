#!/usr/bin/env python3
"""Test HTTP(S) server for the snapshot source tests, on 127.0.0.1 only.

usage: https_server.py ROOT [--cert CRT --key KEY]

Prints the port on stdout once listening. Paths:
  /files/NAME      NAME from ROOT, with Range (206 + Content-Range) and an ETag
  /drop/NAME       like /files/NAME, but a request without Range gets the headers of the
                   whole file, half the body, then a closed connection (a dropped transfer)
  /norange/NAME    like /files/NAME but ignores Range (always 200 with the whole file)
  /redirect/NAME   302 to /files/NAME
  /auth/NAME       like /files/NAME, but only with `Authorization: Bearer <ROOT/.token>`
                   (401 otherwise)
  /loop            302 to /loop, forever
  POST /callback   stores the body as ROOT/callback-N.json, answers 204
  POST /flaky      503 on the first request, then like /callback
"""
import http.server
import os
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        sys.stderr.write("server: " + (fmt % args) + "\n")

    def send_file(self, name, drop=False, ignore_range=False):
        path = os.path.join(self.server.root, os.path.basename(name))
        try:
            data = open(path, "rb").read()
        except OSError:
            self.send_error(404)
            return
        etag = '"%x-%x"' % (len(data), int(os.path.getmtime(path)))
        rng = None if ignore_range else self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes="):-1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[start:]
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if drop and not rng:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        self.wfile.write(body)

    def authorized(self):
        try:
            token = open(os.path.join(self.server.root, ".token")).read().strip()
        except OSError:
            return False
        return self.headers.get("Authorization") == "Bearer " + token

    def do_GET(self):
        p = self.path.split("?", 1)[0]
        if p.startswith("/auth/"):
            if not self.authorized():
                self.send_response(401)
                self.send_header("WWW-Authenticate", "Bearer")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_file(p[len("/auth/"):])
        elif p.startswith("/files/"):
            self.send_file(p[len("/files/"):])
        elif p.startswith("/drop/"):
            self.send_file(p[len("/drop/"):], drop=True)
        elif p.startswith("/norange/"):
            self.send_file(p[len("/norange/"):], ignore_range=True)
        elif p.startswith("/redirect/"):
            self.redirect("/files/" + p[len("/redirect/"):])
        elif p == "/loop":
            self.redirect("/loop")
        else:
            self.send_error(404)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        p = self.path.split("?", 1)[0]
        if p == "/flaky" and not getattr(self.server, "flaked", False):
            self.server.flaked = True
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if p not in ("/callback", "/flaky"):
            self.send_error(404)
            return
        count = len([f for f in os.listdir(self.server.root) if f.startswith("callback-")])
        with open(os.path.join(self.server.root, "callback-%d.json" % count), "wb") as f:
            f.write(body)
        self.send_response(204)
        self.end_headers()

    def redirect(self, to):
        self.send_response(302)
        self.send_header("Location", to)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main():
    root = sys.argv[1]
    args = sys.argv[2:]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.root = root
    if "--cert" in args:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args[args.index("--cert") + 1], args[args.index("--key") + 1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
