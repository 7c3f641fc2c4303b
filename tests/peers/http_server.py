#!/usr/bin/env python3
"""An HTTP or HTTPS server on loopback for the tests, built on Python's
http.server: it keeps each request it receives and answers as a script
says.

  http_server.py --host 127.0.0.1 --port 8443 --out DIR
                 [--cert cert.pem --key key.pem] [--answers JSON]
                 [--service NAME --secrets JSON]

Each request is written to DIR as NNNN.req: the request line, the header
fields as received (name and value, in order), an empty line, and the body
(CRLF line ends), written to .tmp and renamed when whole.

--answers is a JSON list, one object per request in turn (the last one
answers all later requests too):
  status    the status code (default 200)
  headers   [[name, value], ...] sent after Server and Date
  body      the body, as text (default "")
  framing   "length" (Content-Length, default), "chunked" (RFC 9112 7.1,
            with a chunk extension and a trailer field), or "close" (no
            length: the body ends with the connection)
  interim   true: "100 Continue" first
  silent    true: read the request, then never answer (a hung service)
  as_service  true: status, headers and body are those the push service
            --service (ntfy, gotify, telegram, discord, slack, pushover,
            webhook) gives this request: push_contracts.py checks it
            against the service's documented contract, with --secrets
            ({"token": ..., "user": ..., "chat_id": ...})

It prints READY once it listens.
"""

import argparse
import http.server
import json
import os
import socket
import socketserver
import ssl
import sys
import threading
import time

import push_contracts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--answers", default='[{"status": 200}]')
    parser.add_argument("--service")
    parser.add_argument("--secrets", default="{}")
    args = parser.parse_args()
    answers = json.loads(args.answers)
    context = None
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
    counter = {"next": 0}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY: an answer's head and body are two writes, and Nagle
        # would hold the body until the client's delayed ACK (40 ms each).
        disable_nagle_algorithm = True

        def setup(self):
            # The handshake in the connection's own thread, so that a
            # client that never finishes it holds up no other.
            if context is not None:
                self.request = context.wrap_socket(self.request, server_side=True)
            super().setup()

        def log_message(self, *args):
            pass

        def handle_request(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with lock:
                number = counter["next"]
                counter["next"] += 1
            answer = answers[min(number, len(answers) - 1)]
            self.record(number, body)
            if answer.get("silent"):
                time.sleep(3600)
                return
            if answer.get("interim"):
                self.send_response_only(100)
                self.end_headers()
            if answer.get("as_service"):
                status, headers, text = push_contracts.answer(
                    args.service, json.loads(args.secrets), self.command, self.path,
                    self.headers, body)
            else:
                status = answer.get("status", 200)
                headers, text = answer.get("headers", []), answer.get("body", "")
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            payload = text.encode()
            framing = answer.get("framing", "length")
            if framing == "length":
                self.send_header("Content-Length", str(len(payload)))
            elif framing == "chunked":
                self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            if framing == "chunked":
                half = len(payload) // 2
                for piece in (payload[:half], payload[half:]):
                    if piece:
                        self.wfile.write(b"%x;piece=yes\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\nX-Checksum: none\r\n\r\n")
            else:
                self.wfile.write(payload)
            self.wfile.flush()
            self.close_connection = True
            if context is not None:
                try:
                    # close_notify: the end of a close-delimited body.
                    self.request.unwrap()
                except (OSError, ValueError):
                    pass

        def record(self, number, body):
            lines = [self.requestline]
            lines += ["%s: %s" % (name, value) for name, value in self.headers.items()]
            data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
            path = os.path.join(args.out, "%04d.req" % number)
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.rename(path + ".tmp", path)

        do_GET = do_POST = do_PUT = handle_request

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        address_family = socket.AF_INET6 if ":" in args.host else socket.AF_INET

        def server_bind(self):
            # HTTPServer's own asks the resolver for the host's name
            # (getfqdn); the tests never use the machine's DNS.
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = args.host, args.port

    server = Server((args.host, args.port), Handler)
    print("READY", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
