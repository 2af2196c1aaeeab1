"""API Gateway's own answers, as the local gateway gives them (`make run`,
and the test client of these tests): status, headers and body exactly as
the deployed Gateway Responses define them (deploy/gateway_responses.py)."""
import pytest

from deploy import gateway_responses
from faults import client_error, inject

ME = "/api/v1/users/me"


def raw(api, method, path, headers=None):
    return api.http.request(method, path, headers=headers or {}, body=b"")


def assert_answer(reply, kind):
    status, headers, body = gateway_responses.http(kind)
    assert reply.status_code == status
    assert {name: reply.headers.get(name) for name in headers} == headers
    assert reply.body == body


def test_no_authorization_header_is_the_unauthorized_answer(api):
    assert_answer(raw(api, "GET", ME), "UNAUTHORIZED")


@pytest.mark.parametrize("value", ["", "   "])
def test_a_blank_authorization_header_is_the_unauthorized_answer(api, value):
    """API Gateway takes a blank identity source for a missing one, and never
    calls the authorizer: a 403 would tell a client to drop its token."""
    assert_answer(raw(api, "GET", ME, {"Authorization": value}), "UNAUTHORIZED")


def test_a_denied_token_is_the_access_denied_answer(api):
    api.user()
    assert_answer(raw(api, "GET", ME, {"Authorization": "Bearer a.b.c"}), "ACCESS_DENIED")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer a.b.c"},
                                     {"Authorization": "Bearer tökén"}])
def test_an_unknown_route_is_the_not_found_answer(api, headers):
    assert_answer(raw(api, "GET", "/api/v1/nothing-here", headers), "MISSING_AUTHENTICATION_TOKEN")


def test_an_authorizer_without_a_verdict_is_the_unavailable_answer(api, dynamodb):
    token = api.user()
    inject(dynamodb, "BatchGetItem", lambda p: client_error("ThrottlingException"))
    reply = raw(api, "GET", ME, {"Authorization": f"Bearer {token}"})
    assert_answer(reply, "AUTHORIZER_CONFIGURATION_ERROR")

