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


def test_each_field_lists_its_messages_as_sentences(api):
    reply = api.call("POST", "/api/v1/signup",
                     {"username": "a", "email": "a@example.com", "password": "a fine password"})
    assert reply.json["fields"] == {"username": ["Use 3 to 32 characters: letters, digits, _ . -"]}


def test_another_media_type_is_a_4xx(api):
    reply = api.call("POST", "/api/v1/login", headers={"Content-Type": "text/plain"}, raw=b"x")
    assert reply.status == 415


def test_an_unknown_route_is_a_4xx(api):
    assert 400 <= api.call("GET", "/api/v1/nothing-here").status < 500


def test_a_wrong_method_is_the_gateways_not_found(api):
    # API Gateway answers a method a path does not have as it answers a path
    # it does not have; make run and the test client give the same answer.
    for token in (None, "whatever"):
        reply = api.call("PUT", "/api/v1/users/me", token=token)
        assert reply.status == 404 and reply.json["error"] == "not_found"
    assert api.call("PUT", "/api/v1/login", {}).status == 404


def test_an_unexpected_error_is_a_bare_500_without_details(api, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("secret detail: correct horse battery")

    monkeypatch.setattr(service.account, "signup", explode)
    reply = api.signup()
    assert reply.status == 500
    assert reply.json == {"error": "internal_error", "message": "An internal error occurred."}
    assert "correct horse" not in caplog.text
    assert "RuntimeError" in caplog.text


def test_an_unexpected_error_is_logged_as_an_error_naming_its_route_and_type(api, monkeypatch,
                                                                           caplog):
    import logging

    def explode(*args, **kwargs):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(service.account, "signup", explode)
    caplog.set_level(logging.INFO, logger="login-service")
    api.signup()
    errors = [json.loads(r.getMessage()) for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [{"event": "unhandled_error", "route": "signup", "type": "RuntimeError"}]


@pytest.mark.parametrize("status,call", [
    (400, lambda api: api.call("POST", "/api/v1/login", raw=b"[]")),
    (401, lambda api: api.login(password="not the password")),
    (422, lambda api: api.call("POST", "/api/v1/signup", {})),
])
def test_an_error_is_json_and_says_retry_after_only_when_waiting_helps(api, status, call):
    api.signup()
    reply = call(api)
    assert reply.status == status
    assert reply.headers["Content-Type"] == "application/json"
    assert "Retry-After" not in reply.headers


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


LOGIN = {"username": "alice", "password": "correct horse battery"}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le",
                                      "utf-8-sig"])
def test_a_body_in_another_encoding_than_plain_utf8_is_400_even_when_it_would_log_in(api, encoding):
    api.signup()
    reply = api.call("POST", "/api/v1/login", raw=json.dumps(LOGIN).encode(encoding))
    assert reply.status == 400
    assert is_error_shape(reply.json, "invalid_body")


def test_utf8_beyond_ascii_is_read_as_utf8(api):
    api.signup(password="pässwörd ☃ long")
    raw = json.dumps({"username": "alice", "password": "pässwörd ☃ long"}, ensure_ascii=False)
    assert api.call("POST", "/api/v1/login", raw=raw.encode("utf-8")).status == 200


@pytest.mark.parametrize("raw", [b'{"username": "alice", "password": "\xed\xa0\x80 surrogate"}',
                                 b'{"username": "alice", "password": "\xc0\xaf overlong"}'])
def test_bytes_that_are_not_strict_utf8_are_400(api, raw):
    reply = api.call("POST", "/api/v1/login", raw=raw)
    assert reply.status == 400 and reply.json["error"] == "invalid_body"


OVERSIZED = b"x" * (65 * 1024)


def test_logout_with_a_body_over_64_kb_is_413_and_revokes_nothing(api):
    token = api.user()
    reply = api.call("POST", "/api/v1/logout", token=token, raw=OVERSIZED)
    assert reply.status == 413
    assert is_error_shape(reply.json, "payload_too_large")
    assert api.call("GET", "/api/v1/users/me", token=token).status == 200


@pytest.mark.parametrize("method,path", [("GET", "/api/v1/users/me"), ("GET", "/api/v1/tokens"),
                                         ("DELETE", "/api/v1/tokens"), ("GET", "/")])
def test_a_body_over_64_kb_is_413_on_routes_that_read_no_body(api, method, path):
    token = api.user()
    reply = api.call(method, path, token=token, raw=OVERSIZED)
    assert reply.status == 413 and reply.json["error"] == "payload_too_large"
    assert len(api.call("GET", "/api/v1/tokens", token=token).json["tokens"]) == 1


def test_a_body_of_exactly_64_kb_is_read(api):
    body = json.dumps({"username": "alice", "password": ""}).encode()
    raw = body[:-1] + b" " * (64 * 1024 - len(body)) + b"}"
    assert len(raw) == 64 * 1024
    assert api.call("POST", "/api/v1/login", raw=raw).status == 422


def no_store(reply):
    return {k.lower(): v for k, v in reply.headers.items()}.get("cache-control") == "no-store"


def test_a_login_answer_is_never_stored_by_a_cache(api):
    api.signup()
    reply = api.login()
    assert reply.status == 200 and no_store(reply)


def test_every_api_answer_says_no_store_errors_included(api, monkeypatch):
    token = api.user()
    replies = [
        api.call("GET", "/api/v1/users/me", token=token),
        api.call("GET", "/api/v1/tokens", token=token),
        api.call("GET", "/api/v1/openapi.json"),
        api.call("POST", "/api/v1/login", raw=b"[]"),
        api.login(password="not the password"),
        api.call("GET", "/api/v1/tokens?limit=0", token=token),
        api.call("POST", "/api/v1/logout", token=token, raw=OVERSIZED),
        api.call("PUT", "/api/v1/login", {}),
        api.call("POST", "/api/v1/login", headers={"Content-Type": "text/plain"}, raw=b"x"),
    ]
    monkeypatch.setattr(service.account, "me", lambda identity: 1 / 0)
    replies.append(api.call("GET", "/api/v1/users/me", token=token))
    assert [r.status for r in replies] == [200, 200, 200, 400, 401, 422, 413, 404, 415, 500]
    assert all(no_store(r) for r in replies)


def test_every_answer_says_nosniff_the_gateways_and_the_index_included(api, monkeypatch):
    """A 422 names the fields it was sent: no browser may sniff an answer
    into HTML and run it."""
    token = api.user()
    replies = [
        api.call("GET", "/"),
        api.call("GET", "/", headers={"Accept": "text/html"}),
        api.call("GET", "/api/v1/users/me", token=token),
        api.call("POST", "/api/v1/login", {"<script>": 1}),
        api.login(password="not the password"),
        api.call("POST", "/api/v1/logout", token=token, raw=OVERSIZED),
        api.call("POST", "/api/v1/login", headers={"Content-Type": "text/plain"}, raw=b"x"),
        api.call("GET", "/api/v1/users/me"),
        api.call("GET", "/api/v1/users/me", token="a.b.c"),
        api.call("PUT", "/api/v1/login", {}),
    ]
    monkeypatch.setattr(service.account, "me", lambda identity: 1 / 0)
    replies.append(api.call("GET", "/api/v1/users/me", token=token))
    assert [r.status for r in replies] == [200, 200, 200, 422, 401, 413, 415, 401, 403, 404, 500]
    for reply in replies:
        headers = {k.lower(): v for k, v in reply.headers.items()}
        assert headers.get("x-content-type-options") == "nosniff", (reply.status, headers)
