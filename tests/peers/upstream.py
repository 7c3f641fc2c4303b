"""An upstream SMTP server for tinymta's delivery tests, built on aiosmtpd.

It stores every message it accepts as a file in --out: a few `X-` lines with
what the session looked like (sender, recipients, TLS version, AUTH user),
a blank line, then the message exactly as received. Prints READY when it
listens. Options add STARTTLS, implicit TLS, required AUTH, and recipients
to refuse.
"""
import argparse
import asyncio
import itertools
import os
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

counter = itertools.count()


class Handler:
    def __init__(self, out, refuse, rcpt_delay):
        self.out = out
        self.refuse = refuse
        self.rcpt_delay = rcpt_delay

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_delay:
            await asyncio.sleep(self.rcpt_delay)
        if self.refuse and self.refuse in address:
            return "550 5.1.1 <%s>: recipient refused" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        ssl_object = server.transport.get_extra_info("ssl_object")
        tls = ssl_object.version() if ssl_object else "none"
        user = session.auth_data.login.decode() if session.authenticated else "none"
        head = "X-Mail-From: <%s>\nX-TLS: %s\nX-Auth: %s\n" % (envelope.mail_from, tls, user)
        for rcpt in envelope.rcpt_tos:
            head += "X-Rcpt-To: <%s>\n" % rcpt
        name = os.path.join(self.out, "%06d.msg" % next(counter))
        with open(name + ".tmp", "wb") as f:
            f.write(head.encode() + b"\n" + envelope.original_content)
        os.rename(name + ".tmp", name)
        return "250 2.0.0 stored"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--max-tls", help="highest TLS version offered, e.g. TLSv1_1")
    parser.add_argument("--auth", help="user:password required before MAIL")
    parser.add_argument("--no-plain", action="store_true", help="offer AUTH LOGIN only")
    parser.add_argument("--refuse", help="refuse recipients containing this text")
    parser.add_argument("--rcpt-delay", type=float, default=0, help="seconds before each RCPT reply")
    args = parser.parse_args()

    context = None
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        if args.max_tls:
            context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            context.maximum_version = getattr(ssl.TLSVersion, args.max_tls)

    kwargs = dict(hostname=args.host, port=args.port, server_hostname="upstream.test")
    if args.implicit_tls:
        kwargs["ssl_context"] = context
    elif context:
        kwargs["tls_context"] = context
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
                and auth_data.password.decode() == password
            # handled=False: aiosmtpd itself answers 535 on failure.
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        kwargs.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=bool(context))
        if args.no_plain:
            kwargs["auth_exclude_mechanism"] = ["PLAIN"]
    controller = Controller(Handler(args.out, args.refuse, args.rcpt_delay), **kwargs)
    controller.start()
    print("READY", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
