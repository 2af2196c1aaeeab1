"""Token introspection (RFC 7662): POST /api/v1/introspect, for resource
servers that are not behind this API Gateway, with client credentials."""
import base64
import json
import time
import urllib.parse
from types import SimpleNamespace

import jwt
import pytest

from chalicelib import clients, service
from conftest import SECRET, claims_of
from faults import answer, client_error, inject

URL = "/api/v1/introspect"
FORM = "application/x-www-form-urlencoded"
INACTIVE = {"active": False}


def basic(client_id, secret):
    pair = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


@pytest.fixture
def client(dynamodb):
    """A client's (id, secret), as manage.py create-client hands them out."""
    made, secret = clients.create("orders")
    return made.client_id, secret


@pytest.fixture
def introspect(api, client):
    """POST a token as a form (or JSON), with the client's credentials unless
    ``authorization`` says otherwise (None: no header at all)."""
    def call(token, authorization="client", as_json=False, raw=None, content_type=None):
        headers = {"Content-Type": content_type or ("application/json" if as_json else FORM)}
        if authorization == "client":
            authorization = basic(*client)
        if authorization is not None:
            headers["Authorization"] = authorization
        if raw is None:
            raw = (json.dumps({"token": token}) if as_json
                   else urllib.parse.urlencode({"token": token})).encode()
        return api.call("POST", URL, headers=headers, raw=raw)
    return call


def resigned(token, key=SECRET, **changes):
    header = jwt.get_unverified_header(token)
    return jwt.encode({**claims_of(token), **changes}, key, algorithm="HS256", headers=header)


def record(dynamodb, table_names, token):
    claims = claims_of(token)
    return dynamodb.get_item(TableName=table_names["tokens"], Key={
        "user_id": {"S": claims["sub"]}, "token_id": {"S": claims["jti"]}}).get("Item")


# Live and not live

def test_a_live_token_is_active_with_who_it_is(api, introspect):
    assert api.signup("Alice").status == 201
    login = api.login("Alice").json
    token = login["token"]
    claims = claims_of(token)
    reply = introspect(token)
    assert reply.status == 200
    # exp: the sliding expiry, which is login's expires_at until a use moves it.
    assert reply.json == {"active": True, "sub": claims["sub"], "username": "Alice", "roles": [],
                          "jti": claims["jti"], "iat": claims["iat"],
                          "exp": claims["iat"] + login["expires_in"], "token_type": "Bearer"}


def test_the_roles_are_the_live_ones(api, introspect):
    token = api.user("alice")
    service.admin.grant_admin("alice")
    assert introspect(token).json["roles"] == ["admin"]
    service.admin.revoke_admin("alice")
    assert introspect(token).json["roles"] == []


@pytest.mark.parametrize("record_expiry,expected", [(-100, "record"), (+100, "jwt")])
def test_exp_is_the_earlier_of_the_jwts_and_the_records(api, introspect, set_record_expiry,
                                                        record_expiry, expected):
    """The record's expiry slides with use; the JWT's exp is the cap."""
    token = api.user()
    claims = claims_of(token)
    moved = claims["exp"] + record_expiry
    set_record_expiry(token, moved)
    assert introspect(token).json["exp"] == (moved if expected == "record" else claims["exp"])


def test_a_revoked_token_is_inactive_and_nothing_more(api, introspect):
    token = api.user()
    assert api.call("POST", "/api/v1/logout", token=token).status == 200
    reply = introspect(token)
    assert (reply.status, reply.json) == (200, INACTIVE)


@pytest.mark.parametrize("when", ["unused for its lifetime", "past its cap"])
def test_an_expired_token_is_inactive(api, introspect, monkeypatch, when):
    token = api.user()
    later = (time.time() + 172800 + 1 if when == "unused for its lifetime"
             else claims_of(token)["exp"] + 1)
    monkeypatch.setattr("chalicelib.clock.now", lambda: later)
    assert introspect(token).json == INACTIVE


def test_a_token_whose_record_expired_is_inactive(api, introspect, set_record_expiry):
    token = api.user()
    set_record_expiry(token)
    assert introspect(token).json == INACTIVE


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "Bearer x", "x" * 3000, "tökén"])
def test_a_malformed_token_is_inactive(api, introspect, token):
    api.user()
    reply = introspect(token)
    assert (reply.status, reply.json) == (200, INACTIVE)


def test_a_forged_token_is_inactive(api, introspect):
    token = api.user()
    assert introspect(resigned(token, key="another-secret-of-at-least-32-bytes!!")).json == INACTIVE


def test_a_signed_token_pointing_at_another_users_record_is_inactive(api, introspect):
    alice, bob = api.user("alice"), api.user("bob")
    assert introspect(resigned(alice, jti=claims_of(bob)["jti"])).json == INACTIVE


def test_each_users_token_tells_its_own_user(api, introspect):
    alice, bob = api.user("alice"), api.user("bob")
    assert introspect(alice).json["username"] == "alice"
    assert introspect(bob).json["username"] == "bob"
    assert introspect(alice).json["sub"] != introspect(bob).json["sub"]


def test_the_token_of_a_user_whose_profile_is_gone_is_inactive(api, introspect, dynamodb,
                                                               table_names):
    from chalicelib import stores

    token = api.user()
    dynamodb.delete_item(TableName=table_names["users"],
                         Key=stores.users().user_key(claims_of(token)["sub"]))
    assert introspect(token).json == INACTIVE


def test_introspection_moves_neither_last_use_nor_expiry(api, introspect, dynamodb, table_names):
    token = api.user()
    before = record(dynamodb, table_names, token)
    writes = []
    dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", lambda **kw: writes.append(1))
    assert introspect(token).json["active"] is True
    assert record(dynamodb, table_names, token) == before
    assert "last_used_at" not in before and writes == []


# Client credentials

def refused(reply):
    """A 401's parts; RFC 6749's error_description repeats the message."""
    assert reply.json.get("error_description") == reply.json.get("message")
    return (reply.status, reply.json["error"], reply.headers.get("WWW-Authenticate"),
            set(reply.json))


REFUSED = (401, "invalid_client", 'Basic realm="login-service"',
           {"error", "message", "error_description"})


def posted(token=None, as_json=False, **fields):
    """A body with ``token`` and ``fields`` (client_secret_post's client_id
    and client_secret, RFC 6749 section 2.3.1), as a form or as JSON."""
    fields = {**({"token": token} if token is not None else {}), **fields}
    return (json.dumps(fields) if as_json else urllib.parse.urlencode(fields)).encode()


def test_no_credentials_is_401_with_a_basic_challenge(api, introspect):
    assert refused(introspect(api.user(), authorization=None)) == REFUSED


def test_an_unknown_client_id_is_401(api, introspect, client):
    assert refused(introspect(api.user(), authorization=basic("0" * 32, client[1]))) == REFUSED


def test_a_wrong_secret_is_401(api, introspect, client):
    assert refused(introspect(api.user(), authorization=basic(client[0], "x" * 43))) == REFUSED


def test_another_clients_secret_is_401(api, introspect, client):
    _, other_secret = clients.create("billing")
    assert refused(introspect(api.user(), authorization=basic(client[0], other_secret))) == REFUSED


BAD_BODIES = [(b"x=1", False), (b"", False), (b"token=a&token=b", False), (b"{}", True),
              (b"{not json", True)]
BAD_BODY_IDS = ["unknown field", "empty", "repeated", "empty object", "not JSON"]


@pytest.mark.parametrize("raw,as_json", BAD_BODIES, ids=BAD_BODY_IDS)
def test_no_credentials_with_a_bad_body_is_401_not_400_or_422(api, introspect, raw, as_json):
    """Credentials are answered first: the body of a caller who is not a
    client is none of its business, and the contract says 401."""
    assert refused(introspect(None, authorization=None, raw=raw, as_json=as_json)) == REFUSED


@pytest.mark.parametrize("raw,as_json", BAD_BODIES, ids=BAD_BODY_IDS)
def test_wrong_credentials_with_a_bad_body_are_401_too(api, introspect, client, raw, as_json):
    wrong = basic(client[0], "x" * 43)
    assert refused(introspect(None, authorization=wrong, raw=raw, as_json=as_json)) == REFUSED


def test_a_deleted_client_is_refused_on_its_next_call(api, introspect, client):
    token = api.user()
    assert introspect(token).status == 200
    clients.delete(client[0])
    assert refused(introspect(token)) == REFUSED


@pytest.mark.parametrize("header", [
    "Basic !!!not-base64!!!",
    "Basic " + base64.b64encode(b"no colon here").decode(),
    "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    "Basic " + base64.b64encode(b"%ff%fe:%ff").decode(),
    "Basic " + base64.b64encode(b":").decode(),
    "Basic",
    "Basic ",
    "Bearer abc",
    "Basic " + "A" * 5000,
], ids=["bad base64", "no colon", "not UTF-8", "escapes not UTF-8", "empty pair", "no value",
        "blank value", "another scheme", "oversized"])
def test_a_malformed_basic_header_is_401_not_500(api, introspect, header):
    assert refused(introspect(api.user(), authorization=header)) == REFUSED


def test_the_basic_scheme_is_case_insensitive_and_the_pair_form_decoded(api, introspect, client):
    """RFC 6749 section 2.3.1: id and secret are form-encoded before Basic."""
    client_id, secret = client
    escaped = "".join(f"%{ord(c):02X}" for c in client_id) + ":" + secret
    header = "bAsIc " + base64.b64encode(escaped.encode()).decode()
    assert introspect(api.user(), authorization=header).json["active"] is True


def test_a_wrong_client_learns_nothing_of_a_live_token(api, introspect, client):
    token = api.user()
    reply = introspect(token, authorization=basic(client[0], "x" * 43))
    assert reply.status == 401 and token.split(".")[1] not in json.dumps(reply.json)
    assert "active" not in reply.json


@pytest.mark.parametrize("method", ["basic", "body"])
def test_an_unknown_id_costs_the_work_of_a_known_one(api, introspect, client, dynamodb,
                                                      monkeypatch, method):
    """One read, one hash, one constant-time compare, known id or not, in
    Basic or in the body: the timing says nothing about which ids exist."""
    import hmac

    token = api.user()
    work = []
    hashed, compare = clients.secret_hash, hmac.compare_digest
    monkeypatch.setattr(clients, "secret_hash", lambda s: work.append("hash") or hashed(s))
    monkeypatch.setattr(clients, "hmac", SimpleNamespace(
        compare_digest=lambda a, b: work.append("compare") or compare(a, b)))
    dynamodb.meta.events.register("before-call.dynamodb",
                                  lambda model, **kw: work.append(model.name))
    costs = {}
    for name, client_id in (("known", client[0]), ("unknown", "f" * 32)):
        work.clear()
        if method == "basic":
            reply = introspect(token, authorization=basic(client_id, "x" * 43))
        else:
            reply = introspect(None, authorization=None,
                               raw=posted(token, client_id=client_id, client_secret="x" * 43))
        assert reply.status == 401
        costs[name] = list(work)
    assert costs["known"] == costs["unknown"] == ["BatchGetItem", "hash", "compare"]


# Bodies

def test_a_json_body_is_accepted_too(api, introspect):
    token = api.user()
    assert introspect(token, as_json=True).json["active"] is True


def test_a_form_with_a_charset_and_a_token_type_hint_is_accepted(api, introspect):
    token = api.user()
    raw = urllib.parse.urlencode({"token": token, "token_type_hint": "access_token"}).encode()
    reply = introspect(None, raw=raw, content_type=FORM + "; charset=UTF-8")
    assert reply.json["active"] is True


@pytest.mark.parametrize("raw", [b"token=a&token=b", b"token=%ff", b"token=\xc3\xa9",
                                 b"just-text", b"token=a&&"],
                         ids=["repeated", "escape not UTF-8", "raw non-ASCII", "no =",
                              "empty field"])
def test_a_bad_form_is_400(api, introspect, raw):
    reply = introspect(None, raw=raw)
    assert (reply.status, reply.json["error"]) == (400, "invalid_body")


@pytest.mark.parametrize("raw", [b"token=%ff", b"token=a&token=b"], ids=["not UTF-8", "repeated"])
def test_a_bad_forms_400_says_what_a_form_must_be(api, introspect, raw):
    reply = introspect(None, raw=raw)
    assert "application/x-www-form-urlencoded" in reply.json["message"]


def test_a_form_naming_token_twice_is_400_even_when_one_is_empty(api, introspect):
    """An empty value is a value: dropping it would leave the other one to
    be checked, while a reader that keeps the first would see none."""
    raw = b"token=&token=" + api.user().encode()
    reply = introspect(None, raw=raw)
    assert (reply.status, reply.json["error"]) == (400, "invalid_body")


def test_a_form_of_more_than_twenty_fields_is_400(api, introspect):
    raw = b"token=" + api.user().encode() + b"".join(b"&f%d=x" % i for i in range(20))
    reply = introspect(None, raw=raw)
    assert (reply.status, reply.json["error"]) == (400, "invalid_body")


def test_a_bad_json_body_is_400(api, introspect):
    assert introspect(None, raw=b"{not json", as_json=True).status == 400


def test_a_json_body_naming_token_twice_is_400(api, introspect):
    """As a form's, a JSON body's fields come once: a proxy or firewall that
    reads the first of two would check another token than this service."""
    token = api.user()
    raw = b'{"token": "not-a-token", "token": "%s"}' % token.encode()
    reply = introspect(None, raw=raw, as_json=True)
    assert (reply.status, reply.json["error"]) == (400, "invalid_body")


@pytest.mark.parametrize("raw", [b"", b"token=", b"tokn=abc", b"token=a&scope=b"])
def test_a_missing_token_or_an_unknown_field_is_422_naming_it(api, introspect, raw):
    reply = introspect(None, raw=raw)
    assert reply.status == 422 and reply.json["error"] == "validation_failed"
    assert set(reply.json["fields"]) & {"token", "tokn", "scope"}
    assert "error_description" not in reply.json  # RFC 6749's shape is for 400 and 401


# client_secret_post: the client's credentials in the body (RFC 6749 section 2.3.1)

@pytest.mark.parametrize("as_json", [False, True], ids=["form", "JSON"])
def test_credentials_in_the_body_are_accepted(api, introspect, client, as_json):
    client_id, secret = client
    raw = posted(api.user(), as_json, client_id=client_id, client_secret=secret)
    reply = introspect(None, authorization=None, raw=raw, as_json=as_json)
    assert (reply.status, reply.json["active"]) == (200, True)


@pytest.mark.parametrize("fields", [
    {"client_id": "0" * 32}, {"client_id": "wrong"}, {"client_secret": "x" * 43},
    {"client_id": None}, {"client_secret": None}, {"client_id": 5}, {"client_secret": ["x"]},
    {"client_secret": "\ud800"}, {"client_id": "", "client_secret": ""},
], ids=["unknown id", "id not ours", "wrong secret", "null id", "null secret", "number id",
        "list secret", "lone surrogate", "empty both"])
def test_wrong_credentials_in_the_body_are_401_with_the_basic_challenge(api, introspect, client,
                                                                         fields):
    """RFC 6749 section 5.2 lets a server challenge a client that did not use
    Basic: the challenge says which method this server prefers."""
    client_id, secret = client
    sent = {"client_id": client_id, "client_secret": secret, **fields}
    # json.dumps escapes the lone surrogate, as a JSON client might send it.
    raw = json.dumps({"token": api.user(), **sent}).encode()
    assert refused(introspect(None, authorization=None, raw=raw, as_json=True)) == REFUSED


@pytest.mark.parametrize("missing", ["client_id", "client_secret"])
def test_half_the_credentials_in_a_form_are_401(api, introspect, client, missing):
    fields = dict(zip(("client_id", "client_secret"), client))
    del fields[missing]
    assert refused(introspect(None, authorization=None, raw=posted(api.user(), **fields))) == \
        REFUSED


@pytest.mark.parametrize("raw,as_json", [(b"x=1", False), (b"token=", False), (b"{}", True),
                                         (b'{"token": 5}', True)],
                         ids=["unknown field", "empty token", "no token", "token not text"])
def test_wrong_body_credentials_with_a_bad_body_are_401_not_400_or_422(api, introspect, client,
                                                                       raw, as_json):
    """Credentials are answered first, wherever the client put them."""
    wrong = {"client_id": client[0], "client_secret": "x" * 43}
    if as_json:
        raw = json.dumps({**json.loads(raw), **wrong}).encode()
    else:
        raw += b"&" + urllib.parse.urlencode(wrong).encode()
    assert refused(introspect(None, authorization=None, raw=raw, as_json=as_json)) == REFUSED


def test_right_body_credentials_with_a_bad_body_get_the_bodys_422(api, introspect, client):
    raw = posted(None, client_id=client[0], client_secret=client[1], tokn="abc")
    reply = introspect(None, authorization=None, raw=raw)
    assert (reply.status, set(reply.json["fields"])) == (422, {"token", "tokn"})


@pytest.mark.parametrize("fields", [("client_id", "client_secret"), ("client_secret",),
                                    ("client_id",)], ids=["both", "secret", "id"])
@pytest.mark.parametrize("header", ["client", "Bearer abc"])
def test_basic_and_body_credentials_together_are_400_invalid_request(api, introspect, client,
                                                                     calls, fields, header):
    """RFC 6749 section 2.3: a client uses one method per request. Neither is
    checked (no read), even when both are right: which one would count?"""
    token = api.user()
    body = dict(zip(("client_id", "client_secret"), client))
    calls.clear()
    reply = introspect(None, authorization=header,
                       raw=posted(token, **{name: body[name] for name in fields}))
    assert (reply.status, reply.json["error"]) == (400, "invalid_request")
    assert reply.json["error_description"] == reply.json["message"]
    assert "Basic" in reply.json["message"] and calls == []


def test_two_methods_are_refused_before_the_body_is_checked(api, introspect, client):
    raw = posted(None, client_id=client[0], client_secret=client[1], tokn="abc")
    assert introspect(None, raw=raw).json["error"] == "invalid_request"


# The requests an RFC 7662 client library sends (Authlib's, for one):
# a form of token and token_type_hint, its Content-Type without a space.
AUTHLIB_FORM = "application/x-www-form-urlencoded;charset=UTF-8"


def test_a_client_secret_basic_request_as_libraries_send_it(api, introspect):
    raw = posted(api.user(), token_type_hint="access_token")
    reply = introspect(None, raw=raw, content_type=AUTHLIB_FORM)
    assert (reply.status, reply.json["active"]) == (200, True)


def test_a_client_secret_post_request_as_libraries_send_it(api, introspect, client):
    raw = posted(api.user(), token_type_hint="access_token", client_id=client[0],
                 client_secret=client[1])
    reply = introspect(None, authorization=None, raw=raw, content_type=AUTHLIB_FORM)
    assert (reply.status, reply.json["active"]) == (200, True)


# RFC 6749's error_description, on introspection's OAuth errors alone

def test_a_bad_form_is_400_with_an_error_description(api, introspect):
    reply = introspect(None, raw=b"token=a&token=b")
    assert reply.json["error_description"] == reply.json["message"]


def test_the_other_routes_keep_the_contracts_error_shape(api):
    api.signup("alice")
    reply = api.call("POST", "/api/v1/login", body={"username": "alice", "password": "wrong!!!"})
    assert reply.status == 401 and set(reply.json) == {"error", "message"}
    reply = api.call("POST", "/api/v1/login", raw=b"{not json",
                     headers={"Content-Type": "application/json"})
    assert reply.status == 400 and set(reply.json) == {"error", "message"}


def test_an_oversized_body_is_413(api, introspect):
    reply = introspect(None, raw=b"token=" + b"a" * (64 * 1024))
    assert (reply.status, reply.json["error"]) == (413, "payload_too_large")


def test_another_media_type_is_415(api, introspect):
    assert introspect(None, raw=b"token=x", content_type="text/plain").status == 415


def test_every_answer_is_marked_no_store(api, introspect):
    token = api.user()
    assert introspect(token).headers["Cache-Control"] == "no-store"
    assert introspect(token, authorization=None).headers["Cache-Control"] == "no-store"


# What it costs, and outages

@pytest.fixture
def calls(dynamodb):
    seen = []
    dynamodb.meta.events.register(
        "provide-client-params.dynamodb",
        lambda model, params, **kw: seen.append((model.name, sorted(
            params.get("RequestItems") or [params.get("TableName")]))))
    return seen


def test_a_live_token_costs_one_read_of_client_record_and_profile(api, introspect, calls,
                                                                   table_names):
    token = api.user()
    calls.clear()
    assert introspect(token).json["active"] is True
    assert calls == [("BatchGetItem", sorted([table_names["tokens"], table_names["users"]]))]


@pytest.mark.parametrize("kind", ["forged", "malformed", "past its cap"])
def test_a_token_that_does_not_verify_costs_the_client_read_alone(api, introspect, calls,
                                                                  table_names, monkeypatch, kind):
    token = api.user()
    if kind == "forged":
        token = resigned(token, key="another-secret-of-at-least-32-bytes!!")
    elif kind == "malformed":
        token = "not-a-jwt"
    else:  # the JWT's own exp: login plus TOKEN_MAX_LIFETIME_SECONDS
        later = claims_of(token)["exp"] + 1
        monkeypatch.setattr("chalicelib.clock.now", lambda: later)
    calls.clear()
    assert introspect(token).json == INACTIVE
    assert calls == [("GetItem", [table_names["users"]])]


@pytest.mark.parametrize("method", ["basic", "body"])
def test_a_client_id_not_of_our_shape_costs_no_read(api, introspect, calls, method):
    token = api.user()
    calls.clear()
    if method == "basic":
        reply = introspect(token, authorization=basic("not-an-id", "x"))
    else:
        reply = introspect(None, authorization=None,
                           raw=posted(token, client_id="not-an-id", client_secret="x"))
    assert reply.status == 401
    assert calls == []


def test_a_storage_failure_is_503_never_inactive(api, introspect, dynamodb):
    token = api.user()
    inject(dynamodb, "BatchGetItem", lambda p: client_error("ThrottlingException"))
    reply = introspect(token)
    assert (reply.status, reply.json["error"], reply.headers["Retry-After"]) == (
        503, "service_unavailable", "1")


def test_unprocessed_keys_are_503_never_inactive(api, introspect, dynamodb):
    token = api.user()
    inject(dynamodb, "BatchGetItem",
           lambda p: answer(200, {"Responses": {},
                                  "UnprocessedKeys": json.loads(p["body"])["RequestItems"]}))
    assert introspect(token).status == 503


def test_a_token_older_than_a_lowered_max_lifetime_is_inactive(api, introspect, monkeypatch):
    from chalicelib import clock

    token = api.user()
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "60")
    monkeypatch.setenv("TOKEN_MAX_LIFETIME_SECONDS", "60")
    later = time.time() + 61
    monkeypatch.setattr(clock, "now", lambda: later)
    assert introspect(token).json == {"active": False}


def test_exp_is_never_past_a_lowered_max_lifetime(api, introspect, monkeypatch):
    token = api.user()
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "60")
    monkeypatch.setenv("TOKEN_MAX_LIFETIME_SECONDS", "600")
    answer = introspect(token).json
    assert answer["active"] and answer["exp"] == answer["iat"] + 600
