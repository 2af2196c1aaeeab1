"""The custom authorizer: who gets through to a view, and who is denied."""
import base64
import hashlib
import hmac
import json
import logging
import time

import jwt
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from chalicelib import authorizer, clock, jwtcodec
from conftest import PROPERTY, SECRET, claims_of
from faults import client_error, inject, timeout

ME = "/api/v1/users/me"


def _b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forge(claims, key=SECRET, algorithm="HS256", headers=None):
    kid = jwt.get_unverified_header(jwtcodec.encode("u", "t", 0, 1))["kid"]
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid, **(headers or {})})


def me(api, token=None, header=None):
    headers = {"Authorization": header} if header is not None else None
    return api.call("GET", ME, token=token, headers=headers).status


def test_a_live_token_passes(api):
    assert me(api, api.user()) == 200


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_bearer_scheme_is_accepted_in_any_case(api, scheme):
    token = api.user()
    assert me(api, header=f"{scheme} {token}") == 200


def test_a_bare_token_without_scheme_is_accepted(api):
    token = api.user()
    assert me(api, header=token) == 200


def test_no_authorization_header_is_401(api):
    assert me(api) == 401


# (An empty header is a missing one, 401, before the authorizer runs:
# test_gateway.py.)
@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "garbage", "Bearer a.b.c",
                                    "Basic dXNlcjpwYXNz", "Bearer x y"])
def test_garbage_is_denied(api, header):
    api.user()
    assert me(api, header=header) == 403


def test_a_wrong_signature_is_denied(api):
    token = api.user()
    assert me(api, forge(claims_of(token), key="another-secret-of-at-least-32-bytes!!")) == 403


def test_a_tampered_payload_with_the_old_signature_is_denied(api):
    token = api.user()
    head, _, sig = token.split(".")
    claims = claims_of(token)
    claims["exp"] += 3600
    assert me(api, ".".join([head, _b64(claims), sig])) == 403


def test_alg_none_is_denied(api):
    token = api.user()
    head = _b64({"alg": "none", "typ": "JWT"})
    assert me(api, f"{head}.{_b64(claims_of(token))}.") == 403


def test_another_algorithm_is_denied(api):
    token = api.user()
    assert me(api, forge(claims_of(token), algorithm="HS512")) == 403


def test_an_unknown_kid_is_denied(api):
    token = api.user()
    assert me(api, forge(claims_of(token), headers={"kid": "forged"})) == 403


def test_an_expired_token_is_denied_even_while_its_record_exists(api, monkeypatch):
    token = api.user()
    later = time.time() + 172800 + 1
    monkeypatch.setattr("chalicelib.clock.now", lambda: later)
    assert me(api, token) == 403


def test_a_token_whose_record_expired_is_denied(api, set_record_expiry):
    token = api.user()
    set_record_expiry(token)
    assert me(api, token) == 403


def test_a_record_with_only_what_the_authorizer_may_write_is_denied(api, dynamodb, table_names,
                                                                   caplog):
    """The authorizer's own role may write user_id, token_id, last_used_at
    and expires_at and nothing else; a record made of those alone, however
    far its expiry, never lets a request through, and is a plain deny, not
    an error."""
    token = api.user()
    claims = claims_of(token)
    key = {"user_id": {"S": claims["sub"]}, "token_id": {"S": claims["jti"]}}
    dynamodb.delete_item(TableName=table_names["tokens"], Key=key)
    dynamodb.update_item(TableName=table_names["tokens"], Key=key,
                         UpdateExpression="SET last_used_at = :now, expires_at = :later",
                         ExpressionAttributeValues={":now": {"N": str(int(time.time()))},
                                                    ":later": {"N": str(claims["exp"])}})
    assert me(api, token) == 403
    assert "authorizer_error" not in caplog.text


@pytest.mark.parametrize("claim", ["sub", "jti", "iat", "exp"])
def test_each_required_claim_is_required(api, claim):
    token = api.user()
    claims = claims_of(token)
    del claims[claim]
    assert me(api, forge(claims)) == 403


def test_a_token_issued_in_the_future_is_denied(api):
    token = api.user()
    claims = claims_of(token)
    claims["iat"] += 600
    assert me(api, forge(claims)) == 403


def test_a_token_not_yet_valid_is_denied(api):
    token = api.user()
    claims = claims_of(token)
    claims["nbf"] = claims["iat"] + 600
    assert me(api, forge(claims)) == 403


def test_a_revoked_token_is_denied_on_its_next_request(api):
    token = api.user()
    assert api.call("POST", "/api/v1/logout", token=token).status == 200
    assert me(api, token) == 403


def test_a_signed_token_pointing_at_another_users_record_is_denied(api):
    alice = api.user("alice")
    bob = api.user("bob")
    claims = claims_of(alice)
    claims["jti"] = claims_of(bob)["jti"]
    assert me(api, forge(claims)) == 403


def test_an_oversized_or_non_ascii_header_is_denied_without_dynamodb(api, dynamodb):
    calls = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda **kw: calls.append(1))
    assert me(api, header="Bearer " + "a" * 5000) == 403
    assert me(api, header="Bearer tökén") == 403
    assert calls == []


def test_a_bad_signature_costs_no_dynamodb_call(api, dynamodb):
    token = api.user()
    calls = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda **kw: calls.append(1))
    assert me(api, forge(claims_of(token), key="another-secret-of-at-least-32-bytes!!")) == 403
    assert calls == []


def test_the_view_sees_who_the_authorizer_let_in(api):
    token = api.user("Alice")
    reply = api.call("GET", ME, token=token)
    assert reply.json["username"] == "Alice"
    assert reply.json["id"] == claims_of(token)["sub"]


def test_a_missing_signing_secret_fails_closed_without_a_deny(api, monkeypatch):
    token = api.user()
    monkeypatch.setenv("JWT_SECRET", "")
    assert me(api, token) == 503
    assert api.login().status == 500


@pytest.mark.parametrize("key", ["", "secret", "password", "changeme"])
def test_a_token_signed_with_an_empty_or_guessed_key_is_denied(api, key):
    token = api.user()
    head = _b64({"alg": "HS256", "typ": "JWT", "kid": jwt.get_unverified_header(token)["kid"]})
    body = _b64(claims_of(token))
    mac = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    assert me(api, f"{head}.{body}.{signature}") == 403


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "PS256"])
def test_algorithm_confusion_is_denied(api, algorithm):
    """A token in an asymmetric algorithm, with our kid, signed by a key
    of the attacker's: the verifier is pinned to HS256 and never asks."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    token = api.user()
    private = (ec.generate_private_key(ec.SECP256R1()) if algorithm == "ES256"
               else rsa.generate_private_key(public_exponent=65537, key_size=2048))
    kid = jwt.get_unverified_header(token)["kid"]
    forged = jwt.encode(claims_of(token), private, algorithm=algorithm, headers={"kid": kid})
    assert me(api, forged) == 403


def test_a_valid_token_of_a_deleted_user_is_denied(api):
    token = api.user()
    kept = api.token()
    api.call("DELETE", ME, token=token, body={"password": "correct horse battery"})
    assert me(api, kept) == 403
    assert me(api, token) == 403


# An outage is never a logout: when storage fails, the authorizer has no
# verdict and says so (API Gateway then answers 503); a deny would make
# clients throw away a token that is still good.

FAULTS = {
    "throttled": lambda p: client_error("ThrottlingException"),
    "5xx": lambda p: client_error("InternalServerError", status=500),
    "timeout": timeout,
}


def logged_errors(caplog):
    return [json.loads(r.getMessage()) for r in caplog.records
            if r.name == "login-service" and r.levelno == logging.ERROR]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_storage_failure_makes_the_authorizer_raise_not_deny(api, dynamodb, caplog, fault):
    token = api.user()
    inject(dynamodb, "BatchGetItem", FAULTS[fault])
    with pytest.raises(authorizer.Undecided):
        authorizer.decide(f"Bearer {token}")
    [line] = logged_errors(caplog)
    assert (line["event"], line["type"], line["operation"]) == (
        "authorizer_error", "ServiceUnavailable", "batch_get_item")


@pytest.mark.parametrize("fault", FAULTS)
def test_a_live_token_during_an_outage_gets_503_with_retry_after(api, dynamodb, fault):
    token = api.user()
    inject(dynamodb, "BatchGetItem", FAULTS[fault])
    reply = api.call("GET", ME, token=token)
    assert reply.status == 503
    assert reply.json["error"] == "service_unavailable"
    assert reply.headers["Retry-After"] == "1"


def test_the_token_works_again_once_storage_is_back(api, dynamodb):
    token = api.user()
    inject(dynamodb, "BatchGetItem", FAULTS["throttled"], times=1)
    assert me(api, token) == 503
    assert me(api, token) == 200


def test_the_lambda_handler_raises_and_never_allows_when_it_cannot_decide(api, dynamodb):
    from app import token_authorizer

    token = api.user()
    inject(dynamodb, "BatchGetItem", FAULTS["5xx"])
    event = {"type": "TOKEN", "authorizationToken": f"Bearer {token}",
             "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc/api/GET/api/v1/users/me"}
    with pytest.raises(authorizer.Undecided) as raised:
        token_authorizer(event, None)
    # API Gateway answers 401 to an authorizer error whose message is "Unauthorized".
    assert str(raised.value) != "Unauthorized"


def test_an_unexpected_error_is_no_verdict_and_logs_only_its_type(api, dynamodb, caplog):
    token = api.user()

    def fail(**kwargs):
        raise RuntimeError(f"boom {token}")  # a library's message may quote the token

    dynamodb.meta.events.register("before-call.dynamodb.BatchGetItem", fail)
    with pytest.raises(authorizer.Undecided) as raised:
        authorizer.decide(f"Bearer {token}")
    assert logged_errors(caplog) == [{"event": "authorizer_error", "type": "RuntimeError"}]
    assert token not in caplog.text and token not in str(raised.value)
    assert raised.value.__suppress_context__  # the cause stays out of Lambda's error log


@pytest.mark.parametrize("kind", ["garbage", "bad signature", "expired"])
def test_a_bad_token_is_still_denied_during_an_outage(api, dynamodb, monkeypatch, kind):
    token = api.user()
    inject(dynamodb, "BatchGetItem", FAULTS["throttled"])
    if kind == "garbage":
        token = "not-a-jwt"
    elif kind == "bad signature":
        token = forge(claims_of(token), key="another-secret-of-at-least-32-bytes!!")
    else:
        later = claims_of(token)["exp"] + 1  # the cap: the JWT alone says it is dead
        monkeypatch.setattr("chalicelib.clock.now", lambda: later)
    assert authorizer.decide(f"Bearer {token}") is None
    assert me(api, token) == 403


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failed_last_used_write_still_lets_a_live_token_through(api, dynamodb, fault):
    token = api.user()  # never used yet: its first use writes last_used_at
    seen = inject(dynamodb, "UpdateItem", FAULTS[fault])
    assert me(api, token) == 200
    assert len(seen) == 1


def test_a_write_the_role_may_not_make_lets_the_token_through_and_is_logged_as_an_error(
        api, dynamodb, caplog):
    token = api.user()
    inject(dynamodb, "UpdateItem", lambda p: client_error("AccessDeniedException", status=400))
    assert me(api, token) == 200
    [line] = logged_errors(caplog)
    assert (line["event"], line["type"], line["step"]) == (
        "authorizer_error", "ConfigurationError", "record_use")
    assert "AccessDeniedException" in line["problem"] and "table" in line["problem"]


# What the authorizer hands over, to this API and to any other API of the
# account that attaches it (docs/protect-your-api.md).

def test_the_context_is_the_caller_and_its_live_roles_as_one_string(api):
    from chalicelib import service

    service.account.signup("root", "root@example.com", "root password 1", roles=["admin", "auditor"])
    token = api.token("root", "root password 1")
    claims = claims_of(token)
    context = authorizer.decide(f"Bearer {token}")
    assert context == {"user_id": claims["sub"], "token_id": claims["jti"], "username": "root",
                       "roles": "admin,auditor"}
    # API Gateway refuses a context value that is not a string, number or boolean.
    assert all(isinstance(value, (str, int, bool)) for value in context.values())


def test_a_token_whose_users_profile_is_gone_is_denied(api, dynamodb, table_names):
    from chalicelib import stores

    token = api.user()
    dynamodb.delete_item(TableName=table_names["users"],
                         Key=stores.users().user_key(claims_of(token)["sub"]))
    assert me(api, token) == 403


def test_unprocessed_keys_are_no_verdict(api, dynamodb):
    from faults import answer

    token = api.user()
    inject(dynamodb, "BatchGetItem", lambda p: answer(200, {
        "Responses": {}, "UnprocessedKeys": json.loads(p["body"])["RequestItems"]}))
    with pytest.raises(authorizer.Undecided):
        authorizer.decide(f"Bearer {token}")
    assert me(api, token) == 503


OTHER_API = "arn:aws:execute-api:eu-west-1:123456789012:orders1234/prod"


def test_the_allow_covers_the_calling_apis_stage_and_nothing_else(api):
    """Another API of the account calls with its own method ARN: the policy
    allows every method and path of that API's stage (an answer it caches
    must fit its other routes), never this API or another stage."""
    from app import token_authorizer

    token = api.user()
    event = {"type": "TOKEN", "authorizationToken": f"Bearer {token}",
             "methodArn": OTHER_API + "/GET/orders/42"}
    answer = token_authorizer(event, None)
    (statement,) = answer["policyDocument"]["Statement"]
    assert (statement["Effect"], statement["Resource"]) == ("Allow", [OTHER_API + "/*/*"])
    assert answer["principalId"] == claims_of(token)["sub"]
    assert answer["context"] == authorizer.decide(f"Bearer {token}")


def test_another_api_gets_a_deny_for_a_revoked_token(api):
    from app import token_authorizer

    token = api.user()
    api.call("POST", "/api/v1/logout", token=token)
    event = {"type": "TOKEN", "authorizationToken": f"Bearer {token}",
             "methodArn": OTHER_API + "/GET/orders/42"}
    (statement,) = token_authorizer(event, None)["policyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"


# Properties, over generated input.

USER_ID = "0b6c3a9e-3f5a-4c1e-9d2b-7a8e4f6c1d20"
TOKEN_ID = "0189a3c4d5e6f7a1b2c3d4e5"


@PROPERTY
@given(st.uuids().map(str), st.from_regex(r"[0-9a-f]{24}", fullmatch=True),
       st.integers(min_value=0, max_value=2**31))
def test_a_token_decodes_to_what_was_encoded(environment, sub, jti, issued):
    token = jwtcodec.encode(sub, jti, issued, issued + 60)
    claims = jwtcodec.decode(token, issued + 1)
    assert (claims["sub"], claims["jti"]) == (sub, jti)


@PROPERTY
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_any_changed_byte_breaks_a_token(environment, position, value):
    token = jwtcodec.encode(USER_ID, TOKEN_ID, 1000, 2000).encode()
    assert jwtcodec.decode(token.decode(), 1500)["sub"] == USER_ID
    index = position % len(token)
    if token[index] == value:
        return
    changed = token[:index] + bytes([value]) + token[index + 1:]
    with pytest.raises(jwtcodec.InvalidToken):
        jwtcodec.decode(changed.decode("latin-1"), 1500)


@PROPERTY
@given(st.text(max_size=300))
def test_garbage_never_decodes(environment, text):
    with pytest.raises(jwtcodec.InvalidToken):
        jwtcodec.decode(text, 1500)


@PROPERTY
@given(st.text(max_size=100))
@example("Bearer x y")
@example("Bearer  x")
def test_the_header_parser_returns_one_word_or_nothing(environment, header):
    token = authorizer.bearer_token(header)
    assert token is None or (token and token.split() == [token])


def test_a_lowered_max_lifetime_shortens_every_live_token_at_once(api, monkeypatch):
    """The cap is in the JWT, but an operator who lowers the setting in an
    incident is obeyed from iat, with no read: older tokens are denied."""
    token = api.user()
    assert api.call("GET", "/api/v1/users/me", token=token).status == 200
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "60")
    monkeypatch.setenv("TOKEN_MAX_LIFETIME_SECONDS", "60")
    monkeypatch.setattr(clock, "now", lambda: time.time() + 61)
    assert api.call("GET", "/api/v1/users/me", token=token).status == 403


def test_a_lowered_max_lifetime_leaves_younger_tokens_alone(api, monkeypatch):
    token = api.user()
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "60")
    monkeypatch.setenv("TOKEN_MAX_LIFETIME_SECONDS", "600")
    monkeypatch.setattr(clock, "now", lambda: time.time() + 30)
    assert api.call("GET", "/api/v1/users/me", token=token).status == 200


def test_a_token_dead_by_a_lowered_max_lifetime_is_neither_listed_nor_counted(api, monkeypatch):
    """A token older than the cap in force is gone for the authorizer: the
    listing does not show it as a session, and a revocation does not count
    it as revoked (it was dead already)."""
    api.user()
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "60")
    monkeypatch.setenv("TOKEN_MAX_LIFETIME_SECONDS", "60")
    monkeypatch.setattr(clock, "now", lambda: time.time() + 61)
    fresh = api.login().json
    listed = api.call("GET", "/api/v1/tokens", token=fresh["token"]).json["tokens"]
    assert [t["id"] for t in listed] == [fresh["token_id"]]
    revoked = api.call("DELETE", "/api/v1/tokens?keep_current=true", token=fresh["token"])
    assert revoked.json == {"revoked": 0}
