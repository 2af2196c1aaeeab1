"""Listing and revoking one's own tokens."""
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib import clock, cursor
from conftest import PROPERTY

TOKENS = "/api/v1/tokens"
TOKEN_FIELDS = {"id", "description", "ip", "created_at", "expires_at", "last_used_at", "current"}


def sessions(api, token, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    reply = api.call("GET", TOKENS + (f"?{query}" if query else ""), token=token)
    assert reply.status == 200, reply.json
    return reply.json


def test_listing_shows_every_live_token_newest_first(api):
    first = api.user()
    second = api.token()
    third = api.token()
    listed = sessions(api, second)
    assert listed["next_cursor"] is None
    assert [t["current"] for t in listed["tokens"]] == [False, True, False]
    assert all(set(t) == TOKEN_FIELDS for t in listed["tokens"])
    created = [t["created_at"] for t in listed["tokens"]]
    assert created == sorted(created, reverse=True)
    assert first and third


def test_listing_never_shows_a_token_or_a_hash(api):
    token = api.user()
    text = str(sessions(api, token))
    assert token not in text and token.split(".")[2] not in text


def test_listing_skips_expired_tokens(api, monkeypatch):
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "60")
    old = api.user()
    start = time.time()
    monkeypatch.setattr("chalicelib.clock.now", lambda: start + 120)
    fresh = api.token()
    listed = sessions(api, fresh)["tokens"]
    assert [t["current"] for t in listed] == [True]
    assert old


def test_listing_shows_the_expiry_moved_by_use(api, monkeypatch):
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "600")
    start = 1_800_000_000
    monkeypatch.setattr("chalicelib.clock.now", lambda: start)
    token = api.user()
    used = api.token()
    monkeypatch.setattr("chalicelib.clock.now", lambda: start + 100)
    listed = {t["current"]: t for t in sessions(api, token)["tokens"]}  # this request is a use
    assert listed[True]["expires_at"] == clock.iso(start + 100 + 600)
    assert listed[False]["expires_at"] == clock.iso(start + 600)  # unused since login
    assert used


def test_pages_follow_each_other_without_gaps_or_repeats(api):
    token = api.user()
    for _ in range(6):
        api.token()
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = sessions(api, token, **params)
        assert len(page["tokens"]) <= 3
        seen += [t["id"] for t in page["tokens"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7
    assert seen == sorted(seen, reverse=True)


def test_a_page_that_ends_exactly_has_no_cursor(api):
    token = api.user()
    api.token()
    assert sessions(api, token, limit=2)["next_cursor"] is None


def test_limit_defaults_to_50(api):
    token = api.user()
    for _ in range(51):
        api.token()
    page = sessions(api, token)
    assert len(page["tokens"]) == 50 and page["next_cursor"]


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "", "%2010"])
def test_a_bad_limit_is_422(api, limit):
    token = api.user()
    reply = api.call("GET", f"{TOKENS}?limit={limit}", token=token)
    assert reply.status == 422
    assert list(reply.json["fields"]) == ["limit"]


@pytest.mark.parametrize("cursor", ["garbage", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "é"])
def test_a_cursor_this_listing_did_not_issue_is_422(api, cursor):
    token = api.user()
    reply = api.call("GET", f"{TOKENS}?cursor={cursor}", token=token)
    assert reply.status == 422
    assert list(reply.json["fields"]) == ["cursor"]


def test_another_users_cursor_is_422(api):
    alice = api.user("alice")
    bob = api.user("bob")
    api.token("bob")
    cursor = sessions(api, bob, limit=1)["next_cursor"]
    reply = api.call("GET", f"{TOKENS}?cursor={cursor}", token=alice)
    assert reply.status == 422


def test_revoke_one_token(api):
    keep = api.user()
    other = api.login().json
    reply = api.call("DELETE", f"{TOKENS}/{other['token_id']}", token=keep)
    assert reply.status == 200 and reply.json == {"revoked": 1}
    assert api.call("GET", "/api/v1/users/me", token=other["token"]).status == 403
    assert [t["current"] for t in sessions(api, keep)["tokens"]] == [True]


def test_revoking_a_revoked_token_is_404(api):
    keep = api.user()
    other = api.login().json
    api.call("DELETE", f"{TOKENS}/{other['token_id']}", token=keep)
    reply = api.call("DELETE", f"{TOKENS}/{other['token_id']}", token=keep)
    assert reply.status == 404 and reply.json["error"] == "token_not_found"


def test_another_users_token_is_404_and_stays_live(api):
    alice = api.user("alice")
    api.signup("bob")
    bob = api.login("bob").json
    reply = api.call("DELETE", f"{TOKENS}/{bob['token_id']}", token=alice)
    assert reply.status == 404 and reply.json["error"] == "token_not_found"
    assert api.call("GET", "/api/v1/users/me", token=bob["token"]).status == 200


@pytest.mark.parametrize("token_id", ["nope", "..%2F..%2Fadmin", "0" * 24, "Z" * 24])
def test_an_unknown_or_malformed_token_id_is_404(api, token_id):
    token = api.user()
    reply = api.call("DELETE", f"{TOKENS}/{token_id}", token=token)
    assert reply.status == 404 and reply.json["error"] == "token_not_found"


def test_revoking_the_current_token_ends_this_session(api):
    token = api.user()
    token_id = sessions(api, token)["tokens"][0]["id"]
    assert api.call("DELETE", f"{TOKENS}/{token_id}", token=token).json == {"revoked": 1}
    assert api.call("GET", "/api/v1/users/me", token=token).status == 403


def test_revoke_all_revokes_every_token_including_this_one(api):
    tokens = [api.user()] + [api.token() for _ in range(3)]
    reply = api.call("DELETE", TOKENS, token=tokens[0])
    assert reply.status == 200 and reply.json == {"revoked": 4}
    assert all(api.call("GET", "/api/v1/users/me", token=t).status == 403 for t in tokens)


def test_revoke_all_can_keep_the_current_token(api):
    tokens = [api.user()] + [api.token() for _ in range(3)]
    reply = api.call("DELETE", f"{TOKENS}?keep_current=true", token=tokens[0])
    assert reply.json == {"revoked": 3}
    assert api.call("GET", "/api/v1/users/me", token=tokens[0]).status == 200
    assert all(api.call("GET", "/api/v1/users/me", token=t).status == 403 for t in tokens[1:])


def test_keep_current_false_revokes_everything(api):
    token = api.user()
    assert api.call("DELETE", f"{TOKENS}?keep_current=false", token=token).json == {"revoked": 1}


@pytest.mark.parametrize("value", ["yes", "1", "TRUE", ""])
def test_a_bad_keep_current_is_422(api, value):
    token = api.user()
    reply = api.call("DELETE", f"{TOKENS}?keep_current={value}", token=token)
    assert reply.status == 422 and list(reply.json["fields"]) == ["keep_current"]
    assert api.call("GET", "/api/v1/users/me", token=token).status == 200


def test_a_bad_keep_current_names_the_two_values_it_takes(api):
    token = api.user()
    reply = api.call("DELETE", f"{TOKENS}?keep_current=yes", token=token)
    assert reply.json["fields"] == {"keep_current": ["Must be true or false."]}


def test_revoke_all_touches_only_the_callers_tokens(api):
    alice = api.user("alice")
    bob = api.user("bob")
    api.call("DELETE", TOKENS, token=alice)
    assert api.call("GET", "/api/v1/users/me", token=bob).status == 200


def test_revoke_all_does_not_count_expired_tokens(api, monkeypatch):
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "60")
    api.user()
    start = time.time()
    monkeypatch.setattr("chalicelib.clock.now", lambda: start + 120)
    fresh = api.token()
    assert api.call("DELETE", TOKENS, token=fresh).json == {"revoked": 1}


def test_logout_revokes_only_the_presented_token(api):
    token = api.user()
    other = api.token()
    assert api.call("POST", "/api/v1/logout", token=token).json == {"revoked": 1}
    assert api.call("GET", "/api/v1/users/me", token=token).status == 403
    assert api.call("GET", "/api/v1/users/me", token=other).status == 200


def test_a_bad_limit_and_a_bad_cursor_are_both_named_in_one_422(api):
    token = api.user()
    reply = api.call("GET", f"{TOKENS}?limit=0&cursor=garbage", token=token)
    assert reply.status == 422
    assert reply.json["fields"] == {"limit": ["Must be a whole number from 1 to 100."],
                                    "cursor": ["Not a cursor this listing issued."]}


def test_a_bad_keep_current_says_what_it_must_be(api):
    token = api.user()
    reply = api.call("DELETE", f"{TOKENS}?keep_current=yes", token=token)
    assert reply.json["fields"] == {"keep_current": ["Must be true or false."]}


# Properties, over generated input.

@PROPERTY
@given(st.from_regex(r"[0-9a-f]{24}", fullmatch=True), st.text(max_size=20))
def test_a_cursor_reads_back_only_in_its_own_listing(environment, token_id, other):
    issued = cursor.issue("self:alice", token_id)
    assert cursor.read("self:alice", issued) == token_id
    if other != "self:alice":
        assert cursor.read(other, issued) is None


@PROPERTY
@given(st.text(max_size=80))
def test_made_up_cursors_are_refused(environment, text):
    assert cursor.read("self:alice", text) is None
