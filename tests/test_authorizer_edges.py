"""The authorizer at its edges: the header's shape, the second a token dies,
the clock-skew limit, nbf, the last_used_at window, and ids we never issue."""
import json
import logging

import jwt
import pytest

from chalicelib import authorizer
from conftest import SECRET, claims_of

ME = "/api/v1/users/me"
SKEW = 5  # seconds a token's iat or nbf may be ahead of our clock
WINDOW = 300  # the contract's resolution of last_used_at: 5 minutes


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

def test_a_token_is_denied_from_the_second_its_exp_is_reached(api, at, monkeypatch):
    monkeypatch.setenv("TOKEN_MAX_LIFETIME_SECONDS", "172800")  # exp: the record's expiry too
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
    # A use just recorded: the use at end - 1 writes nothing, so moves nothing.
    dynamodb.update_item(
        TableName=table_names["tokens"],
        Key={"user_id": {"S": claims["sub"]}, "token_id": {"S": claims["jti"]}},
        UpdateExpression="SET expires_at = :end, last_used_at = :used",
        ExpressionAttributeValues={":end": {"N": str(end)}, ":used": {"N": str(end - 1)}})
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
        dynamodb.meta.events.unregister("after-call.dynamodb.BatchGetItem",
                                        the_other_request_records_its_use)
        dynamodb.update_item(TableName=table_names["tokens"], Key=key,
                             UpdateExpression="SET last_used_at = :t",
                             ExpressionAttributeValues={":t": {"N": str(start - 1)}})

    dynamodb.meta.events.register("after-call.dynamodb.BatchGetItem",
                                  the_other_request_records_its_use)
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


# Sliding expiry: a lifetime without use, up to a cap after login

def record(dynamodb, table_names, token):
    claims = claims_of(token)
    return dynamodb.get_item(TableName=table_names["tokens"], Key={
        "user_id": {"S": claims["sub"]}, "token_id": {"S": claims["jti"]}}).get("Item")


@pytest.fixture
def lifetimes(monkeypatch):
    """Sets TOKEN_LIFETIME_SECONDS and TOKEN_MAX_LIFETIME_SECONDS."""
    def set_(lifetime, cap):
        monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", str(lifetime))
        monkeypatch.setenv("TOKEN_MAX_LIFETIME_SECONDS", str(cap))
    return set_


def test_a_token_used_every_second_outlives_its_lifetime(api, at, lifetimes):
    lifetimes(3, 60)
    start = 1_800_000_000
    at(start)
    token = api.user()
    for second in range(1, 13):
        at(start + second + 0.9)  # late in each second: the truncation's worst case
        assert status(api, token) == 200, second


def test_a_token_used_every_two_seconds_outlives_its_lifetime(api, at, lifetimes):
    lifetimes(3, 60)
    start = 1_800_000_000
    at(start)
    token = api.user()
    for second in range(2, 14, 2):
        at(start + second)
        assert status(api, token) == 200, second


def test_a_token_dies_a_lifetime_after_its_last_recorded_use(api, at, lifetimes):
    lifetimes(3, 60)
    start = 1_800_000_000
    at(start)
    token = api.user()
    at(start + 2)
    assert status(api, token) == 200
    at(start + 2 + 3)
    assert status(api, token) == 403


def test_a_token_in_constant_use_dies_at_its_cap(api, at, lifetimes, dynamodb, table_names):
    lifetimes(3, 10)
    start = 1_800_000_000
    at(start)
    token = api.user()
    assert claims_of(token)["exp"] == start + 10
    for second in range(1, 10):
        at(start + second)
        assert status(api, token) == 200, second
    assert record(dynamodb, table_names, token)["expires_at"] == {"N": str(start + 10)}
    at(start + 10)
    assert status(api, token) == 403


def test_a_cap_equal_to_the_lifetime_is_a_fixed_expiry(api, at, lifetimes, dynamodb, table_names):
    lifetimes(600, 600)
    start = 1_800_000_000
    at(start)
    token = api.user()
    at(start + 599)
    assert status(api, token) == 200
    assert record(dynamodb, table_names, token)["expires_at"] == {"N": str(start + 600)}
    at(start + 600)
    assert status(api, token) == 403


def test_the_expiry_moves_only_with_the_last_used_write(api, at, lifetimes, dynamodb,
                                                        table_names, updates):
    """Inside the window a use writes nothing, so the expiry stays where the
    window's first use put it: the hot path stays at one read."""
    lifetimes(3600, 86400)  # a window of 300 s
    start = 1_800_000_000
    at(start)
    token = api.user()
    at(start + 10)
    status(api, token)
    at(start + 10 + WINDOW)
    assert status(api, token) == 200
    assert len(updates) == 1
    assert record(dynamodb, table_names, token)["expires_at"] == {"N": str(start + 10 + 3600)}


def test_a_lowered_lifetime_never_moves_an_expiry_back(api, at, lifetimes, dynamodb, table_names):
    lifetimes(3600, 86400)
    start = 1_800_000_000
    at(start)
    token = api.user()
    lifetimes(60, 86400)
    at(start + 1000)
    assert status(api, token) == 200
    item = record(dynamodb, table_names, token)
    assert item["expires_at"] == {"N": str(start + 3600)}
    assert item["last_used_at"] == {"N": str(start + 1000)}  # the use is still recorded


def test_a_revocation_between_the_read_and_the_write_is_not_undone(api, at, dynamodb,
                                                                   table_names):
    """The write that moves the expiry must not recreate a revoked token."""
    token = api.user()
    claims = claims_of(token)
    key = {"user_id": {"S": claims["sub"]}, "token_id": {"S": claims["jti"]}}

    def revoked_meanwhile(**kwargs):
        dynamodb.meta.events.unregister("after-call.dynamodb.BatchGetItem", revoked_meanwhile)
        dynamodb.delete_item(TableName=table_names["tokens"], Key=key)

    dynamodb.meta.events.register("after-call.dynamodb.BatchGetItem", revoked_meanwhile)
    assert status(api, token) == 200  # the read decided; the next request is denied
    assert record(dynamodb, table_names, token) is None
    assert status(api, token) == 403


def test_a_write_that_lands_after_the_expiry_does_not_revive_the_token(api, at, lifetimes,
                                                                       dynamodb, table_names):
    """The read saw a live token; by the time of the write its expiry has
    passed (a stalled process, a slow retry): the write is refused."""
    lifetimes(60, 3600)
    start = 1_800_000_000
    at(start)
    token = api.user()
    at(start + 59)

    def clock_passes_the_expiry(**kwargs):
        dynamodb.meta.events.unregister("after-call.dynamodb.BatchGetItem", clock_passes_the_expiry)
        at(start + 60)

    dynamodb.meta.events.register("after-call.dynamodb.BatchGetItem", clock_passes_the_expiry)
    assert status(api, token) == 200
    assert record(dynamodb, table_names, token)["expires_at"] == {"N": str(start + 60)}
    assert status(api, token) == 403


def test_a_racing_write_that_moved_the_expiry_further_is_not_undone(api, at, lifetimes,
                                                                    dynamodb, table_names):
    """Between this request's read and its write another one moved the
    expiry further (under a longer lifetime, mid-deployment): the slower
    write must not pull it back."""
    lifetimes(60, 86400)
    start = 1_800_000_000
    at(start)
    token = api.user()
    claims = claims_of(token)
    key = {"user_id": {"S": claims["sub"]}, "token_id": {"S": claims["jti"]}}
    at(start + 30)
    further = start + 30 + 3600

    def moved_further_meanwhile(**kwargs):
        dynamodb.meta.events.unregister("after-call.dynamodb.BatchGetItem", moved_further_meanwhile)
        dynamodb.update_item(TableName=table_names["tokens"], Key=key,
                             UpdateExpression="SET expires_at = :far",
                             ExpressionAttributeValues={":far": {"N": str(further)}})

    dynamodb.meta.events.register("after-call.dynamodb.BatchGetItem", moved_further_meanwhile)
    assert status(api, token) == 200
    assert record(dynamodb, table_names, token)["expires_at"] == {"N": str(further)}
