"""A bench SMTP sink: aiosmtpd from Debian (python3-aiosmtpd), STARTTLS
required, AUTH (PLAIN/LOGIN, any credentials) after STARTTLS. Prints
`LISTEN <port>` once listening, then `+` for every message accepted.

    /usr/bin/python3 scripts/bench/aiosmtpd_sink.py <cert.pem> <key.pem>
"""
import signal
import socket
import ssl
import sys
import logging
import threading

# aiosmtpd logs, at every AUTH, that its own Session.login_data is deprecated.
logging.getLogger("mail.log").setLevel(logging.ERROR)

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Sink:
    async def handle_DATA(self, server, session, envelope):
        print("+", flush=True)
        return "250 OK"


def accept_any(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=True)


def main():
    cert, key = sys.argv[1], sys.argv[2]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        Sink(),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=accept_any,
        auth_require_tls=True,
        server_hostname="localhost",
    )
    controller.start()
    print(f"LISTEN {port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    controller.stop()


main()
