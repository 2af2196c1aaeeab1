"""The authorizer at its edges: the header's shape, the second a token dies,
the clock-skew limit, nbf, the last_used_at window, and ids we never issue."""
import json
import logging

import jwt
import pytest

from chalicelib import authorizer
from conftest import SECRET

ME = "/api/v1/users/me"
SKEW = 5  # seconds a token's iat or nbf may be ahead of our clock
WINDOW = 300  # the contract's resolution of last_used_at: 5 minutes


def claims_of(token):
    return jwt.decode(token, options={"verify_signature": False})


def resigned(token, **changes):
    """``token`` with its claims changed and signed again with our own key:
    a token only the service (or a bug of its own) could have made."""
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.encode({**claims_of(token), **changes}, SECRET, algorithm="HS256",
                      headers={"kid": kid})


def status(api, token):
    return api.call("GET", ME, token=token).status


@pytest.fixture
def at(monkeypatch):
    """Sets the service's clock."""
    return lambda moment: monkeypatch.setattr("chalicelib.clock.now", lambda: moment)


@pytest.fixture
def updates(dynamodb, table_names):
    """The writes to token records made from now on (the only one a request
    that merely uses its token makes is the last_used_at touch)."""
    calls = []

    def count(params, **kwargs):
        if params["TableName"] == table_names["tokens"]:
            calls.append(1)

    dynamodb.meta.events.register("provide-client-params.dynamodb.UpdateItem", count)
    return calls


def errors_logged(caplog):
    return [json.loads(r.getMessage()) for r in caplog.records if r.levelno >= logging.ERROR]


# The header: ``Bearer <token>`` or a bare ``<token>``, nothing else

@pytest.mark.parametrize("scheme", ["Basic", "Token", "JWT"])
def test_a_valid_token_under_another_scheme_is_denied(api, scheme):
    token = api.user()
    assert api.call("GET", ME, headers={"Authorization": f"{scheme} {token}"}).status == 403


@pytest.mark.parametrize("header", ["{token} extra", "Bearer {token} extra"])
def test_a_valid_token_followed_by_another_word_is_denied(api, header):
    token = api.user()
    assert api.call("GET", ME, headers={"Authorization": header.format(token=token)}).status == 403


@pytest.mark.parametrize("space", ["\u00a0", "\u2003", "\u3000"])
def test_a_valid_token_beside_a_non_ascii_space_is_denied(api, space):
    """Python's split() takes these for spaces; the header must be ASCII."""
    token = api.user()
    assert authorizer.decide(f"Bearer {token}{space}") is None
    assert authorizer.decide(f"Bearer{space}{token}") is None


@pytest.mark.parametrize("header", [None, "", " ", "Bearer", "Bearer ", "bearer x y", "é" * 10,
                                    "Bearer " + "a" * 5000])
def test_a_malformed_header_is_a_plain_deny_not_an_error(dynamodb, caplog, header):
    assert authorizer.decide(header) is None
    assert errors_logged(caplog) == []


# The second a token dies

def test_a_token_is_denied_from_the_second_its_exp_is_reached(api, at):
    token = api.user()
    exp = claims_of(token)["exp"]
    at(exp - 1)
    assert status(api, token) == 200
    at(exp)
    assert status(api, token) == 403


def test_a_token_is_denied_from_the_second_its_record_expires_whatever_its_exp(
        api, at, dynamodb, table_names):
    token = api.user()
    claims = claims_of(token)
    end = claims["iat"] + 600
    dynamodb.update_item(
        TableName=table_names["tokens"],
        Key={"user_id": {"S": claims["sub"]}, "token_id": {"S": claims["jti"]}},
        UpdateExpression="SET expires_at = :end", ExpressionAttributeValues={":end": {"N": str(end)}})
    at(end - 1)
    assert status(api, token) == 200
    at(end)
    assert status(api, token) == 403


def test_a_token_is_denied_from_the_second_its_exp_is_reached_while_its_record_lives(api, at):
    token = api.user()
    end = claims_of(token)["iat"] + 600
    short = resigned(token, exp=end)
    at(end - 1)
    assert status(api, short) == 200
    at(end)
    assert status(api, short) == 403


# Clocks of two hosts: iat and nbf may be up to SKEW seconds ahead

def test_a_token_issued_up_to_the_skew_limit_ahead_of_our_clock_is_accepted(api, at):
    token = api.user()
    at(claims_of(token)["iat"] - SKEW)
    assert status(api, token) == 200


def test_a_token_issued_further_ahead_than_the_skew_limit_is_denied(api, at):
    token = api.user()
    at(claims_of(token)["iat"] - SKEW - 1)
    assert status(api, token) == 403


def test_a_token_whose_nbf_has_passed_is_accepted(api):
    token = api.user()
    assert status(api, resigned(token, nbf=claims_of(token)["iat"] - 60)) == 200


def test_a_token_whose_nbf_is_at_the_skew_limit_is_accepted(api, at):
    token = api.user()
    iat = claims_of(token)["iat"]
    at(iat)
    assert status(api, resigned(token, nbf=iat + SKEW)) == 200


def test_a_token_whose_nbf_is_one_second_past_the_skew_limit_is_denied(api, at):
    token = api.user()
    iat = claims_of(token)["iat"]
    at(iat)
    assert status(api, resigned(token, nbf=iat + SKEW + 1)) == 403


# last_used_at: written at most once per window

def test_a_use_exactly_one_window_after_the_recorded_one_writes_nothing(api, at, updates):
    token = api.user()
    start = claims_of(token)["iat"] + 10
    at(start)
    assert status(api, token) == 200
    assert len(updates) == 1
    at(start + WINDOW)
    assert status(api, token) == 200
    assert len(updates) == 1


def test_a_use_one_second_past_the_window_records_it(api, at, updates, dynamodb, table_names):
    token = api.user()
    claims = claims_of(token)
    start = claims["iat"] + 10
    at(start)
    status(api, token)
    at(start + WINDOW + 1)
    assert status(api, token) == 200
    assert len(updates) == 2
    item = dynamodb.get_item(TableName=table_names["tokens"], Key={
        "user_id": {"S": claims["sub"]}, "token_id": {"S": claims["jti"]}})["Item"]
    assert item["last_used_at"] == {"N": str(start + WINDOW + 1)}


def test_a_use_racing_one_that_has_just_recorded_itself_writes_nothing(
        api, at, dynamodb, table_names):
    """Two requests may both read a stale last_used_at: only the first write lands."""
    token = api.user()
    claims = claims_of(token)
    key = {"user_id": {"S": claims["sub"]}, "token_id": {"S": claims["jti"]}}
    start = claims["iat"] + 10
    at(start)

    def the_other_request_records_its_use(**kwargs):
        dynamodb.meta.events.unregister("after-call.dynamodb.GetItem",
                                        the_other_request_records_its_use)
        dynamodb.update_item(TableName=table_names["tokens"], Key=key,
                             UpdateExpression="SET last_used_at = :t",
                             ExpressionAttributeValues={":t": {"N": str(start - 1)}})

    dynamodb.meta.events.register("after-call.dynamodb.GetItem", the_other_request_records_its_use)
    assert status(api, token) == 200
    item = dynamodb.get_item(TableName=table_names["tokens"], Key=key)["Item"]
    assert item["last_used_at"] == {"N": str(start - 1)}


# Ids we never issue

@pytest.mark.parametrize("claim,value", [("sub", ""), ("sub", "\ud800"), ("jti", "0" * 1100)])
def test_a_signed_token_with_an_id_we_never_issue_is_denied_without_a_lookup(
        api, dynamodb, claim, value):
    """DynamoDB would reject such a key; it never gets the chance."""
    token = api.user()
    calls = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda **kw: calls.append(1))
    assert status(api, resigned(token, **{claim: value})) == 403
    assert calls == []
