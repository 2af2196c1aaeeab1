"""Logs: one JSON line per request, audit events, and no secrets."""
import json
import logging
import subprocess
import sys
import textwrap

import pytest

from conftest import PASSWORD, ROOT, SECRET


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.INFO, logger="login-service")

    def read():
        return [json.loads(r.getMessage()) for r in caplog.records if r.name == "login-service"]
    return read


def scenario(api):
    """Every kind of request, good and bad; returns the tokens it saw."""
    from chalicelib import service

    service.signup("root", "root@example.com", PASSWORD, roles=["admin"])
    admin = api.token("root")
    api.signup("alice", password=PASSWORD)
    login = api.login("alice", description="laptop").json
    other = api.login("alice").json
    api.login("alice", "wrong password")
    api.login(PASSWORD, PASSWORD)  # a password typed into the username field
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
    assert requests[2]["user_id"] and requests[2]["request_id"]
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
    forbidden = [PASSWORD, "another password", SECRET, "$2b$"]
    forbidden += tokens + [t.split(".")[2] for t in tokens]
    for secret in forbidden:
        assert secret not in text
    assert "<malformed>" in text


# What Lambda's Python runtime does before it imports the handler: a handler
# of its own on the root logger (and stdout shipped to CloudWatch Logs).
LAMBDA_LIKE = textwrap.dedent("""
    import logging, sys
    logging.getLogger().addHandler(logging.StreamHandler(sys.stderr))

    import app

    class Context:
        aws_request_id = "req-1"

    event = {"resource": "/", "path": "/", "httpMethod": "GET", "headers": {},
             "multiValueHeaders": {}, "queryStringParameters": None,
             "multiValueQueryStringParameters": None, "pathParameters": None,
             "stageVariables": None, "isBase64Encoded": False, "body": None,
             "requestContext": {"resourcePath": "/", "httpMethod": "GET", "path": "/api/",
                                "stage": "api", "identity": {"sourceIp": "192.0.2.1"}}}
    assert app.app(event, Context())["statusCode"] == 200
""")


def test_a_deployed_function_writes_each_line_once_as_bare_json():
    run = subprocess.run([sys.executable, "-c", LAMBDA_LIKE], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(line["event"], line["route"], line["request_id"]) for line in lines] == [
        ("request", "/", "req-1")]
    assert '"event"' not in run.stderr  # not a second time through the root handler
