"""A write that DynamoDB applied but answered too late: botocore times out
and sends it again, and the route still answers what happened.

The service runs against the embedded DynamoDB of `make run` (which honours
a transaction's ClientRequestToken as DynamoDB does), on a real socket, with
the client's read timeout cut to 0.4 s; the chosen write is applied at once
and its answer held 1 s, so botocore's own retry meets the applied write.
"""
import io
import json

import pytest
import requests
from botocore.config import Config

from chalicelib import aws, clients, service, stores
from conftest import PASSWORD
from deploy import tables
from servers import free_port

ME = "/api/v1/users/me"
HELD = 1.0


@pytest.fixture
def late():
    """The writes to answer late: each entry (operation, text in its body) is
    used once, by the first request that matches it."""
    return []


@pytest.fixture
def dynamodb(environment, table_names, monkeypatch, late):
    from devserver.embedded_dynamodb import EmbeddedDynamoDB

    def answer_late(environ):
        operation = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        for i, (wanted, text) in enumerate(late):
            if operation == wanted and text.encode() in body:
                del late[i]
                return HELD
        return 0

    server = EmbeddedDynamoDB("127.0.0.1", free_port(), answer_late=answer_late).start()
    # moto's state is the process's: every test starts from none.
    requests.post(server.endpoint + "/moto-api/reset", timeout=10)
    for kind, variable in tables.VARIABLES.items():
        monkeypatch.setenv(variable, table_names[kind])
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.endpoint)
    monkeypatch.setattr(aws, "_CLIENT_CONFIG", Config(
        retries={"mode": "standard", "max_attempts": 3}, connect_timeout=1, read_timeout=0.4))
    aws.reset()
    tables.create_tables(aws.dynamodb(), table_names)
    yield aws.dynamodb()
    server.stop()
    aws.reset()


def events(api, token):
    return [e["type"] for e in api.call("GET", ME + "/events", token=token).json["events"]]


def live_tokens(api, token):
    return [t["id"] for t in api.call("GET", "/api/v1/tokens", token=token).json["tokens"]]


def test_a_signup_answered_late_is_a_201_not_a_409(api, late, table_names):
    late.append(("TransactWriteItems", table_names["users"]))
    reply = api.signup()
    assert reply.status == 201, reply.json
    assert late == []


def test_a_login_answered_late_opens_one_session(api, late, table_names):
    token = api.user()
    late.append(("TransactWriteItems", table_names["tokens"]))
    reply = api.login()
    assert reply.status == 200 and late == []
    assert len(live_tokens(api, token)) == 2
    assert events(api, token) == ["login", "login"]


def test_a_logout_answered_late_reports_its_revocation(api, late, table_names):
    token = api.user()
    late.append(("TransactWriteItems", '"logout"'))
    reply = api.call("POST", "/api/v1/logout", token=token)
    assert (reply.status, reply.json) == (200, {"revoked": 1}) and late == []
    assert api.call("GET", ME, token=token).status == 403


def test_a_revocation_answered_late_is_a_200_not_a_404(api, late):
    token = api.user()
    other = api.login().json["token_id"]
    late.append(("TransactWriteItems", '"token_revoked"'))
    reply = api.call("DELETE", f"/api/v1/tokens/{other}", token=token)
    assert (reply.status, reply.json) == (200, {"revoked": 1}) and late == []
    assert live_tokens(api, token) != [] and other not in live_tokens(api, token)


def test_a_revoke_all_answered_late_reports_every_token(api, late):
    token = api.user()
    api.token()
    late.append(("TransactWriteItems", '"tokens_revoked"'))
    reply = api.call("DELETE", "/api/v1/tokens?keep_current=true", token=token)
    assert (reply.status, reply.json) == (200, {"revoked": 1}) and late == []


@pytest.mark.parametrize("step", [("UpdateItem", "fence_until"),
                                  ("TransactWriteItems", '"password_changed"')],
                         ids=["fence", "transaction"])
def test_a_password_change_answered_late_is_a_200_with_no_extra_event(api, late, step):
    token = api.user()
    late.append(step)
    reply = api.call("POST", ME + "/password", token=token,
                     body={"current_password": PASSWORD, "new_password": "a new password"})
    assert (reply.status, reply.json) == (200, {"revoked": 0}) and late == []
    assert events(api, token) == ["password_changed", "login"]
    assert api.login(password="a new password").status == 200


@pytest.mark.parametrize("step", [("UpdateItem", "deleting"), ("TransactWriteItems", "user#")],
                         ids=["mark", "transaction"])
def test_an_account_deletion_answered_late_is_a_200(api, late, step, dynamodb, table_names):
    token = api.user()
    late.append(step)
    reply = api.call("DELETE", ME, token=token, body={"password": PASSWORD})
    assert (reply.status, reply.json) == (200, {"deleted": True, "revoked": 1}) and late == []
    assert dynamodb.scan(TableName=table_names["users"])["Items"] == []


def test_an_admins_revocation_answered_late_reports_every_token(api, admin, late):
    api.user()
    late.append(("TransactWriteItems", '"tokens_revoked"'))
    reply = api.call("DELETE", "/api/v1/admin/users/alice/tokens", token=admin)
    assert (reply.status, reply.json) == (200, {"revoked": 1}) and late == []


def test_an_operators_role_change_answered_late_reports_the_change(api, late):
    api.user()
    late.append(("TransactWriteItems", '"role_granted"'))
    assert service.admin.grant_admin("alice") is True and late == []
    assert stores.users().get_user(service.admin.find_user("alice").user_id).roles == ["admin"]


def test_a_client_created_and_deleted_with_late_answers(api, late):
    late.append(("TransactWriteItems", "client#"))
    client, _ = clients.create("orders")
    assert late == []
    late.append(("TransactWriteItems", "client#"))
    clients.delete(client.client_id)
    assert late == [] and clients.all_clients() == []
