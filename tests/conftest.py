"""A fresh mocked AWS world for every test, and a small API helper."""
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass

import jwt
import pytest
from hypothesis import HealthCheck, settings
from chalice.test import Client
from moto import mock_aws

from chalicelib import aws
from deploy import tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "test-secret-" + "0123456789abcdef" * 4
PASSWORD = "correct horse battery"
SENDER = "no-reply@login.example"
PUBLIC_URL = "http://localhost:8000/"  # make run's default; passkeys are bound to its origin
# Property tests: enough examples to find an edge, bounded for the suite's time.
PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    """Fake credentials, cheap bcrypt, and no way to reach a real endpoint."""
    for name in ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SESV2", "AWS_ENDPOINT_URL",
                 "AWS_PROFILE", "RESET_LINK_SECONDS", "VERIFY_LINK_SECONDS",
                 "JWT_PREVIOUS_SECRET", "JWT_SECRET_PARAMETER", "TOKEN_LIFETIME_SECONDS",
                 "TOKEN_MAX_LIFETIME_SECONDS", "MAX_TOKENS_PER_USER", "EVENT_RETENTION_DAYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    monkeypatch.setenv("EMAIL_FROM", SENDER)
    monkeypatch.setenv("PUBLIC_URL", PUBLIC_URL)
    # The service's log lines go only to their own stdout handler (see
    # chalicelib/audit.py); here they also reach pytest's caplog.
    monkeypatch.setattr(logging.getLogger("login-service"), "propagate", True)


@pytest.fixture
def one_call_at_a_time(monkeypatch):
    """Each DynamoDB call (``dynamo.call``) made one at a time across threads;
    the lock, for a test that orders steps of its own by it.

    DynamoDB applies each conditional write and each transaction atomically;
    moto's in-process backend does not (a thread switch can fall between its
    check and its write). Made one at a time, the calls of parallel requests
    land as DynamoDB itself orders the writes to one item."""
    from chalicelib import dynamo

    call, lock = dynamo.call, threading.Lock()

    def atomic(operation, **kwargs):
        with lock:
            return call(operation, **kwargs)

    monkeypatch.setattr(dynamo, "call", atomic)
    return lock


def claims_of(token):
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture
def table_names():
    return tables.stage_table_names(ROOT, "local")


@pytest.fixture
def dynamodb(environment, table_names, monkeypatch):
    """A mocked DynamoDB with every table; the service's client made inside it."""
    for kind, variable in tables.VARIABLES.items():
        monkeypatch.setenv(variable, table_names[kind])
    with mock_aws():
        aws.reset()
        tables.create_tables(aws.dynamodb(), table_names)
        # The sender is a verified identity, as SES requires.
        aws.sesv2().create_email_identity(EmailIdentity=SENDER)
        yield aws.dynamodb()
    aws.reset()


@pytest.fixture
def set_record_expiry(dynamodb, table_names):
    """Sets the expires_at of a token's record by hand (by default long
    past), as time passing or a use would; the JWT itself is left as it is."""
    def set_expiry(token, expires_at=1):
        claims = claims_of(token)
        dynamodb.update_item(
            TableName=table_names["tokens"],
            Key={"user_id": {"S": claims["sub"]}, "token_id": {"S": claims["jti"]}},
            UpdateExpression="SET expires_at = :e",
            ExpressionAttributeValues={":e": {"N": str(expires_at)}})
    return set_expiry


@dataclass
class Reply:
    status: int
    json: object
    headers: dict


class Api:
    """Drives the app through chalice's test client, speaking JSON."""

    def __init__(self, client):
        self.http = client.http

    def call(self, method, path, body=None, token=None, headers=None, raw=None):
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        reply = self.http.request(method, path, headers=sent, body=payload)
        try:
            data = json.loads(reply.body) if reply.body else None
        except ValueError:
            data = reply.body
        return Reply(reply.status_code, data, dict(reply.headers))

    def signup(self, username="alice", email=None, password=PASSWORD):
        email = f"{username}@example.com" if email is None else email
        return self.call("POST", "/api/v1/signup",
                         {"username": username, "email": email, "password": password})

    def login(self, username="alice", password=PASSWORD, **extra):
        return self.call("POST", "/api/v1/login",
                         {"username": username, "password": password, **extra})

    def token(self, username="alice", password=PASSWORD, **extra):
        reply = self.login(username, password, **extra)
        assert reply.status == 200, reply.json
        return reply.json["token"]

    def user(self, username="alice", password=PASSWORD):
        """Sign a user up and log it in; its token."""
        assert self.signup(username, password=password).status == 201
        return self.token(username, password)


@pytest.fixture
def api(dynamodb):
    from app import app
    from devserver.local_server import Gateway

    with Client(app, stage_name="local", project_dir=ROOT) as client:
        # API Gateway's own answers (401, 403, 404, 503) as `make run` gives them.
        client.http._local_gateway = Gateway(app, client.http._config)
        yield Api(client)


@pytest.fixture
def admin(api):
    """An admin's token (made the way manage.py makes one)."""
    from chalicelib import service

    service.account.signup("root", "root@example.com", PASSWORD, roles=["admin"])
    return api.token("root")


class Mailbox:
    """The outbox delivered by the mailer, and what SES (moto's) received."""

    def deliver(self):
        """Hand every waiting outbox item to the mailer, as the table's
        stream would; the messages it sent."""
        from chalicelib import mailer, stores

        return mailer.handle({"Records": [{"eventName": "INSERT", "dynamodb": {"NewImage": item}}
                                          for item in stores.outbox().waiting()]})

    @staticmethod
    def received():
        """Every message SES accepted, oldest first."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ses.models import ses_backends

        return list(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)

    def to(self, address):
        """The messages SES accepted for ``address``."""
        return [m for m in self.received() if address in m.destinations["ToAddresses"]]

    def link(self, address, kind):
        """Deliver, then the secret of the last ``kind`` link that went to ``address``."""
        self.deliver()
        for message in reversed(self.to(address)):
            found = re.search(rf"#{kind}=(\S+)", message.body)
            if found:
                return found.group(1)
        raise AssertionError(f"no {kind} link went to {address}")


@pytest.fixture
def mailbox(dynamodb):
    return Mailbox()


@pytest.fixture
def later(monkeypatch):
    """Moves the service's clock ``seconds`` ahead of the real one."""
    def move(seconds):
        monkeypatch.setattr("chalicelib.clock.now", lambda: time.time() + seconds)
    return move


@pytest.fixture
def clock_at(monkeypatch):
    """Stops the service's clock at ``seconds`` after the test began."""
    start = time.time()

    def move(seconds):
        monkeypatch.setattr("chalicelib.clock.now", lambda: start + seconds)
    move(0)
    return move


@pytest.fixture
def alice(api, mailbox, clock_at):
    """alice, her address verified (by an operator), no link sent to it in
    the last hour; her token."""
    from chalicelib import service

    api.signup()
    mailbox.deliver()
    service.admin.verify_email("alice")
    clock_at(3601)
    return api.token()
