"""Bad input gets a clear 4xx in the contract's shape; never a 5xx or a trace."""
import json
import re

import pytest

from chalicelib import service


def is_error_shape(body, code):
    return body["error"] == code and isinstance(body["message"], str) and body["message"]


def test_index_names_the_service(api):
    reply = api.call("GET", "/")
    assert reply.status == 200
    assert reply.json == {"service": "login-service", "version": "1.0.0"}


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"text"', b"null", b"{",
                                 b"\xff\xfe", b"[" * 20000 + b"]" * 20000])
@pytest.mark.parametrize("path", ["/api/v1/signup", "/api/v1/login"])
def test_a_body_that_is_not_a_json_object_is_400(api, path, raw):
    reply = api.call("POST", path, raw=raw)
    assert reply.status == 400
    assert is_error_shape(reply.json, "invalid_body")


def test_a_body_over_64_kb_is_413(api):
    raw = json.dumps({"username": "a" * (64 * 1024), "password": "x"}).encode()
    reply = api.call("POST", "/api/v1/login", raw=raw)
    assert reply.status == 413
    assert is_error_shape(reply.json, "payload_too_large")


def test_validation_errors_name_each_field(api):
    reply = api.call("POST", "/api/v1/signup", {})
    assert reply.status == 422
    assert is_error_shape(reply.json, "validation_failed")
    assert all(isinstance(v, list) and v for v in reply.json["fields"].values())


def test_another_media_type_is_a_4xx(api):
    reply = api.call("POST", "/api/v1/login", headers={"Content-Type": "text/plain"}, raw=b"x")
    assert reply.status == 415


def test_an_unknown_route_is_a_4xx(api):
    assert 400 <= api.call("GET", "/api/v1/nothing-here").status < 500


def test_a_wrong_method_is_a_4xx(api):
    assert api.call("PUT", "/api/v1/login", {}).status == 405


def test_an_unexpected_error_is_a_bare_500_without_details(api, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("secret detail: correct horse battery")

    monkeypatch.setattr(service, "signup", explode)
    reply = api.signup()
    assert reply.status == 500
    assert reply.json == {"error": "internal_error", "message": "An internal error occurred."}
    assert "correct horse" not in caplog.text
    assert "RuntimeError" in caplog.text


def test_every_4xx_the_app_produces_has_the_error_shape(api, admin):
    token = api.user("alice")
    bad = [
        ("POST", "/api/v1/signup", {"username": "x"}),
        ("POST", "/api/v1/signup", {"username": "alice", "email": "a@example.com",
                                    "password": "some password"}),
        ("POST", "/api/v1/login", {"username": "alice", "password": "nope nope"}),
        ("GET", "/api/v1/tokens?limit=0", None),
        ("GET", "/api/v1/tokens?cursor=x", None),
        ("DELETE", "/api/v1/tokens/abc", None),
        ("DELETE", "/api/v1/tokens?keep_current=maybe", None),
        ("POST", "/api/v1/users/me/password", {"current_password": "wrong", "new_password": "x"}),
        ("POST", "/api/v1/users/me/password", {"current_password": "wrong one",
                                               "new_password": "a new password"}),
        ("DELETE", "/api/v1/users/me", {"password": "wrong one"}),
        ("GET", "/api/v1/admin/users/nobody/tokens", None),
    ]
    for method, path, body in bad:
        reply = api.call(method, path, body, token=token)
        assert 400 <= reply.status < 500, (method, path)
        assert set(reply.json) - {"fields"} == {"error", "message"}, (method, path, reply.json)
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", reply.json["error"])
        assert ("fields" in reply.json) == (reply.status == 422)
    reply = api.call("GET", "/api/v1/admin/users/nobody/tokens", token=admin)
    assert reply.status == 404 and set(reply.json) == {"error", "message"}
