"""A real SMTP server for the alarm tests (aiosmtpd): AUTH PLAIN/LOGIN required (without TLS,
on loopback), each accepted message written to OUTDIR as <n>.eml with its envelope in the
first lines. Prints "ready" once it listens; runs until killed.

usage: smtp_sink.py PORT OUTDIR USER PASSWORD
"""
import asyncio
import os
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, outdir, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
os.makedirs(outdir, exist_ok=True)


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    return AuthResult(success=ok)


class Saver:
    def __init__(self):
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        head = "X-Envelope-From: %s\nX-Envelope-To: %s\nX-Authenticated: %s\n" % (
            envelope.mail_from,
            ",".join(envelope.rcpt_tos),
            session.authenticated,
        )
        data = envelope.content.decode("utf-8", "replace")
        path = os.path.join(outdir, "%d.eml" % self.n)
        with open(path + ".tmp", "w") as f:
            f.write(head + data)
        os.rename(path + ".tmp", path)
        return "250 OK"


controller = Controller(
    Saver(),
    hostname="127.0.0.1",
    port=port,
    authenticator=authenticator,
    auth_required=True,
    auth_require_tls=False,
)
controller.start()
print("ready", flush=True)
try:
    asyncio.get_event_loop().run_until_complete(asyncio.sleep(10**9))
finally:
    controller.stop()
