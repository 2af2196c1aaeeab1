"""Another API behind this service's authorizer: the example resource
server of examples/orders_api/, fed what API Gateway would feed it.

chalice local runs no other app's custom authorizer, so the pair is tested
at the handlers: this service's authorizer answers a TOKEN event carrying
the orders API's method ARN; where its policy allows that ARN, the example's
Lambda handler gets a proxy event whose authorizer context is the one the
authorizer returned, as API Gateway would hand it over.
"""
import fnmatch
import importlib.util
import json
import os
import re
import time
from types import SimpleNamespace

import pytest

import bench
from conftest import ROOT

EXAMPLE = os.path.join(ROOT, "examples", "orders_api")
AUTHORIZER_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:login-service-prod-authorizer"
ORDERS_API = "arn:aws:execute-api:eu-west-1:123456789012:orders1234/api"


@pytest.fixture
def orders(monkeypatch):
    """The example app, imported as chalice package would import it: with
    its stage's LOGIN_AUTHORIZER_ARN."""
    monkeypatch.setenv("LOGIN_AUTHORIZER_ARN", AUTHORIZER_ARN)
    spec = importlib.util.spec_from_file_location("orders_api_app",
                                                  os.path.join(EXAMPLE, "app.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def gateway(api, orders):
    """GET /orders of the orders API with ``token``: (status, body)."""
    from app import token_authorizer

    def get(token):
        method_arn = ORDERS_API + "/GET/orders"
        answer = token_authorizer({"type": "TOKEN", "authorizationToken": f"Bearer {token}",
                                   "methodArn": method_arn}, bench.Context())
        (statement,) = answer["policyDocument"]["Statement"]
        resources = statement["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        if statement["Effect"] != "Allow" or not any(fnmatch.fnmatchcase(method_arn, r)
                                                     for r in resources):
            return 403, None  # API Gateway's ACCESS_DENIED; the example never runs
        context = {**answer["context"], "principalId": answer["principalId"]}
        reply = orders.app(bench.proxy_event("GET", "/orders", context), bench.Context())
        return reply["statusCode"], json.loads(reply["body"])
    return get


def test_a_live_token_reaches_the_example_which_knows_its_caller(api, gateway):
    token = api.user("Alice")
    status, body = gateway(token)
    assert status == 200
    me = api.call("GET", "/api/v1/users/me", token=token).json
    assert body == {"user_id": me["id"], "username": "Alice", "admin": False, "orders": []}


def test_the_example_sees_the_callers_live_roles(api, gateway):
    from chalicelib import service

    token = api.user("alice")
    service.admin.grant_admin("alice")
    assert gateway(token)[1]["admin"] is True
    service.admin.revoke_admin("alice")
    assert gateway(token)[1]["admin"] is False


def test_a_revoked_token_is_denied_before_the_example_runs(api, gateway):
    token = api.user()
    assert gateway(token)[0] == 200
    assert api.call("POST", "/api/v1/logout", token=token).status == 200
    assert gateway(token) == (403, None)


def test_an_expired_token_is_denied_before_the_example_runs(api, gateway, monkeypatch):
    token = api.user()
    later = time.time() + 172800 + 1
    monkeypatch.setattr("chalicelib.clock.now", lambda: later)
    assert gateway(token) == (403, None)


def test_the_example_attaches_the_exported_authorizer_uncached(orders):
    swagger = orders.app.routes["/orders"]["GET"].authorizer.to_swagger()
    settings = swagger["x-amazon-apigateway-authorizer"]
    assert settings["authorizerUri"] == (
        "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/"
        f"{AUTHORIZER_ARN}/invocations")
    assert settings["authorizerResultTtlInSeconds"] == 0
    assert (swagger["name"], settings["type"]) == ("Authorization", "token")


@pytest.mark.parametrize("value", [None, "", "login-service-dev-authorizer",
                                   "arn:aws:lambda:us-east-1:123:function:x"])
def test_the_example_refuses_to_build_without_a_function_arn(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("LOGIN_AUTHORIZER_ARN", raising=False)
    else:
        monkeypatch.setenv("LOGIN_AUTHORIZER_ARN", value)
    spec = importlib.util.spec_from_file_location("orders_api_bad",
                                                  os.path.join(EXAMPLE, "app.py"))
    with pytest.raises(RuntimeError, match="LOGIN_AUTHORIZER_ARN"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_the_examples_config_names_a_function_arn(monkeypatch):
    with open(os.path.join(EXAMPLE, ".chalice", "config.json"), encoding="utf-8") as f:
        stages = json.load(f)["stages"]
    for stage in stages.values():
        arn = stage["environment_variables"]["LOGIN_AUTHORIZER_ARN"]
        monkeypatch.setenv("LOGIN_AUTHORIZER_ARN", arn)
        spec = importlib.util.spec_from_file_location("orders_api_conf",
                                                      os.path.join(EXAMPLE, "app.py"))
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_the_docs_read_roles_from_the_context_as_a_list(api, orders):
    """docs/protect-your-api.md's reading of the context's roles, run as written."""
    from app import token_authorizer
    from chalicelib import service

    with open(os.path.join(ROOT, "docs", "protect-your-api.md"), encoding="utf-8") as f:
        code = re.search(r"<!-- roles from the context -->\s*```python\n(.*?)```", f.read(),
                         re.S).group(1)
    namespace = {}
    exec(code, namespace)  # the documentation's own code, as a reader would paste it
    token = api.user("alice")

    def roles():
        answer = token_authorizer({"type": "TOKEN", "authorizationToken": f"Bearer {token}",
                                   "methodArn": ORDERS_API + "/GET/orders"}, bench.Context())
        return namespace["roles"](SimpleNamespace(context={"authorizer": answer["context"]}))

    assert roles() == []
    service.admin.grant_admin("alice")
    assert roles() == ["admin"]
