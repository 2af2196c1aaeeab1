"""Logs: one JSON line per request, audit events, and no secrets."""
import json
import logging
import subprocess
import sys
import textwrap

import pytest

from conftest import PASSWORD, ROOT, SECRET

# Most passwords fit the username rules; people type them into that field.
PASSWORD_AS_NAME = "Tr0ub4dor.and.3"
UNKNOWN = "nobody.here"
KELVIN = "\u212aate"  # a Kelvin sign, then "ate": lower() makes it "kate"


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.INFO, logger="login-service")

    def read():
        return [json.loads(r.getMessage()) for r in caplog.records if r.name == "login-service"]
    return read


def scenario(api):
    """Every kind of request, good and bad; returns the tokens it saw."""
    from chalicelib import service

    service.account.signup("root", "root@example.com", PASSWORD, roles=["admin"])
    admin = api.token("root")
    api.signup("alice", password=PASSWORD)
    login = api.login("alice", description="laptop").json
    other = api.login("alice").json
    api.login("alice", "wrong password")
    api.login(PASSWORD, PASSWORD)  # a password typed into the username field
    api.login(PASSWORD_AS_NAME, PASSWORD)  # one that could be a username
    api.login(UNKNOWN, "wrong password")
    api.call("GET", "/api/v1/users/me", token=login["token"])
    api.call("GET", "/api/v1/tokens", token=login["token"])
    api.call("DELETE", f"/api/v1/tokens/{other['token_id']}", token=login["token"])
    api.call("POST", "/api/v1/users/me/password", token=login["token"],
             body={"current_password": PASSWORD, "new_password": "another password"})
    api.call("GET", "/api/v1/admin/users/alice/tokens", token=admin)
    api.call("DELETE", "/api/v1/admin/users/alice/tokens", token=admin)
    api.call("POST", "/api/v1/logout", token=admin)
    return [admin, login["token"], other["token"]]


def test_each_request_gets_one_structured_line(api, lines):
    api.signup()
    token = api.token()
    api.call("GET", "/api/v1/users/me", token=token)
    requests = [line for line in lines() if line["event"] == "request"]
    assert [(r["method"], r["route"], r["status"]) for r in requests] == [
        ("POST", "/api/v1/signup", 201), ("POST", "/api/v1/login", 200),
        ("GET", "/api/v1/users/me", 200)]
    assert requests[2]["user_id"] and requests[2]["lambda_request_id"]
    assert all(isinstance(r["latency_ms"], float) for r in requests)


def test_audit_events_cover_logins_backoff_and_every_revocation(api, lines):
    scenario(api)
    for _ in range(6):  # the scenario's password change reset the count
        api.login("alice", "wrong again")
    events = {line["event"] for line in lines()}
    assert {"login", "login_failed", "login_backoff", "revoke", "revoke_all",
            "password_changed", "logout"} <= events


def test_a_full_scenario_logs_no_token_password_or_hash(api, lines, caplog, capsys):
    tokens = scenario(api)
    text = caplog.text + capsys.readouterr().out + json.dumps(lines())
    forbidden = [PASSWORD, "another password", SECRET, "$2b$", PASSWORD_AS_NAME, UNKNOWN]
    forbidden += tokens + [t.split(".")[2] for t in tokens]
    for secret in forbidden:
        assert secret not in text


# What Lambda's Python runtime does before it imports the handler: a handler
# of its own on the root logger (and stdout shipped to CloudWatch Logs).
LAMBDA_LIKE = textwrap.dedent("""
    import logging, sys
    logging.getLogger().addHandler(logging.StreamHandler(sys.stderr))

    import app

    class Context:
        aws_request_id = "lambda-1"

    event = {"resource": "/", "path": "/", "httpMethod": "GET", "headers": {},
             "multiValueHeaders": {}, "queryStringParameters": None,
             "multiValueQueryStringParameters": None, "pathParameters": None,
             "stageVariables": None, "isBase64Encoded": False, "body": None,
             "requestContext": {"resourcePath": "/", "httpMethod": "GET", "path": "/api/",
                                "stage": "api", "identity": {"sourceIp": "192.0.2.1"},
                                "requestId": "req-1"}}
    assert app.app(event, Context())["statusCode"] == 200
""")


def test_a_deployed_function_writes_each_line_once_as_bare_json():
    run = subprocess.run([sys.executable, "-c", LAMBDA_LIKE], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(line["event"], line["route"], line["request_id"], line["lambda_request_id"])
            for line in lines] == [("request", "/", "req-1", "lambda-1")]
    assert '"event"' not in run.stderr  # not a second time through the root handler


def failures(lines):
    return [line for line in lines() if line["event"] == "login_failed"]


def test_a_failed_login_of_an_unknown_name_is_logged_without_the_name(api, lines, caplog):
    api.login(UNKNOWN, "wrong password")
    [line] = failures(lines)
    assert set(line) == {"event", "name_hash", "failures"}
    assert UNKNOWN not in caplog.text


def test_a_failed_login_of_a_user_names_it_by_id_and_stored_username(api, lines):
    from chalicelib import service

    api.signup("Alice")
    api.login("aLICE", "wrong password")
    [line] = failures(lines)
    assert line["username"] == "Alice"
    assert line["user_id"] == service.admin.find_user("alice").user_id
    assert "aLICE" not in json.dumps(lines())


def test_a_lookalike_shares_the_name_hash_of_the_name_it_imitates(api, lines):
    api.signup("kate")
    for name in ("kate", "KATE", KELVIN):
        api.login(name, "wrong password")
    kate, upper, kelvin = failures(lines)
    assert kate["name_hash"] == upper["name_hash"] == kelvin["name_hash"]
    assert kelvin["malformed"] is True and "malformed" not in kate
    assert "user_id" not in kelvin  # the lookalike is not kate's account


def test_names_that_differ_hash_apart(api, lines):
    api.login("kate", "wrong password")
    api.login("katie", "wrong password")
    first, second = failures(lines)
    assert first["name_hash"] != second["name_hash"]


def test_the_backoff_line_identifies_the_name_the_same_way(api, lines):
    api.signup("alice")
    for _ in range(6):
        api.login("alice", "wrong password")
    [backoff] = [line for line in lines() if line["event"] == "login_backoff"]
    assert backoff["user_id"] == failures(lines)[0]["user_id"]
    assert backoff["name_hash"] == failures(lines)[0]["name_hash"]


def test_a_wrong_current_password_is_logged_as_a_failed_login(api, lines):
    token = api.user("alice")
    api.call("POST", "/api/v1/users/me/password", token=token,
             body={"current_password": "wrong password", "new_password": "another password"})
    [line] = failures(lines)
    assert line["username"] == "alice" and line["via"] == "password_change"


def test_the_name_hash_is_keyed_by_the_signing_secret(monkeypatch):
    from chalicelib import audit

    before = audit.name_hash("kate")
    monkeypatch.setenv("JWT_SECRET", "another-secret-" + "0123456789abcdef" * 2)
    assert audit.name_hash("kate") != before
    assert len(before) == 16 and int(before, 16) >= 0
