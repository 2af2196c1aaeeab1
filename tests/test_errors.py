"""Bad input gets a clear 4xx in the contract's shape; never a 5xx or a trace."""
import json

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
