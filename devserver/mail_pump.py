"""`make run`'s stand-in for the mail table's stream: the outbox handed to
the mailer, and every message it sends printed.

Deployed, DynamoDB's stream invokes the mailer function with each new
outbox item. Here a thread reads the outbox every POLL_SECONDS and hands
each item to the same code (chalicelib/mailer.py), which sends through the
embedded AWS's SES (moto: nothing leaves the machine). Each message sent is
also printed as one JSON line, ``{"event": "email", "to", "subject",
"text"}``, so that a developer opens the link from the terminal; the
deployed function never logs a message.
"""
import json
import os
import socket
import sys
import threading

from botocore.exceptions import ClientError

from chalicelib import audit, aws, mailer, stores

POLL_SECONDS = 0.25
# make run's sender, unless EMAIL_FROM says otherwise: nothing leaves the machine.
LOCAL_SENDER = "no-reply@login-service.localhost"


def use_local_ses(endpoint=None):
    """Send through ``endpoint`` (the embedded AWS), or, when make run uses a
    DynamoDB of the developer's own, through a moto server of its own on a
    free port: never through real SES. The sender is verified there, as SES
    requires. Returns what stops it (None for the embedded one)."""
    server = None
    if endpoint is None:
        from moto.server import ThreadedMotoServer

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        endpoint = f"http://127.0.0.1:{port}"
    os.environ["AWS_ENDPOINT_URL_SESV2"] = endpoint
    aws.reset()
    try:
        aws.sesv2().create_email_identity(EmailIdentity=os.environ["EMAIL_FROM"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "AlreadyExistsException":
            raise
    return server


class MailPump:
    def __init__(self, out=None, poll_seconds=POLL_SECONDS):
        self.out = out or sys.stdout
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._failed = set()  # items whose failure was logged once already
        self._thread = threading.Thread(target=self._run, name="mail-pump", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self):
        while not self._stop.wait(self.poll_seconds):
            self.pump()

    def pump(self):
        """Hand every waiting item to the mailer once; the messages sent."""
        sent = []
        try:
            waiting = stores.outbox().waiting()
        except Exception as exc:  # noqa: BLE001 - the pump outlives a bad moment
            audit.event("mail_pump_failed", type=type(exc).__name__, **audit.problem(exc))
            return sent
        for item in waiting:
            try:
                message = mailer.deliver(item)
            except Exception as exc:  # noqa: BLE001
                # The item stays in the outbox and is tried again next time,
                # as the stream retries a batch; its failure is said once.
                if item["id"]["S"] not in self._failed:
                    self._failed.add(item["id"]["S"])
                    audit.event("mail_pump_failed", type=type(exc).__name__,
                                **audit.problem(exc))
                continue
            if message is not None:
                self.print(message)
                sent.append(message)
        return sent

    def print(self, message):
        line = {"event": "email", "to": message.to, "subject": message.subject,
                "text": message.text}
        self.out.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.out.flush()
