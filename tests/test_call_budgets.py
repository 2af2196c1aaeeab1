"""DynamoDB call budgets: a change that adds a call fails here.

The floor of a whitelist is one read per authorized request; these tests
hold every route to its number of calls, counted with botocore events.
"""
import math
import threading
import time

import jwt
import pytest

from chalicelib import authorizer, stores
from conftest import PASSWORD

ME = "/api/v1/users/me"


@pytest.fixture
def calls(dynamodb, monkeypatch):
    """The DynamoDB operations made, split into the authorizer's and the view's."""
    seen = {"authorizer": [], "view": []}
    where = ["view"]
    decide = authorizer.decide

    def traced(header):
        where[0] = "authorizer"
        try:
            return decide(header)
        finally:
            where[0] = "view"

    monkeypatch.setattr(authorizer, "decide", traced)
    dynamodb.meta.events.register(
        "before-call.dynamodb", lambda model, **kw: seen[where[0]].append(model.name))

    def reset():
        seen["authorizer"].clear()
        seen["view"].clear()
        return seen
    return reset


def warm(api, token):
    """One request, so that the token's last_used_at is fresh."""
    assert api.call("GET", ME, token=token).status == 200


def counted(api, calls, path):
    """The calls of one GET of ``path`` by a user whose token is warm."""
    token = api.user()
    warm(api, token)
    seen = calls()
    api.call("GET", path, token=token)
    return seen


def test_the_authorizer_makes_one_read(api, calls):
    """The token's record and its user's profile (for the live roles), together."""
    assert counted(api, calls, ME)["authorizer"] == ["BatchGetItem"]


def test_the_first_use_of_a_token_also_records_it(api, calls):
    api.signup()
    token = api.token()
    seen = calls()
    api.call("GET", ME, token=token)
    assert seen["authorizer"] == ["BatchGetItem", "UpdateItem"]


def test_parallel_uses_move_the_expiry_with_one_write_per_window(api, dynamodb, monkeypatch,
                                                                 one_call_at_a_time):
    """Twenty requests of one token at once, all reading the stale
    last_used_at before any writes: each makes its one conditional write,
    and exactly one lands. Twenty more in the same window write nothing."""
    from concurrent.futures import ThreadPoolExecutor

    token = api.user()
    start = time.time()
    monkeypatch.setattr("chalicelib.clock.now", lambda: start + 60)
    read, barrier = stores.read, threading.Barrier(20)

    def all_read_first(*reads):
        found = read(*reads)
        barrier.wait(timeout=20)
        return found

    monkeypatch.setattr(stores, "read", all_read_first)
    sent, landed = [], []
    dynamodb.meta.events.register("before-call.dynamodb",
                                  lambda model, **kw: sent.append(model.name))
    dynamodb.meta.events.register(
        "after-call.dynamodb.UpdateItem",
        lambda http_response, **kw: landed.append(1) if http_response.status_code == 200 else None)

    with ThreadPoolExecutor(20) as pool:
        assert all(pool.map(lambda _: authorizer.decide(f"Bearer {token}"), range(20)))
    assert sorted(sent) == ["BatchGetItem"] * 20 + ["UpdateItem"] * 20
    assert landed == [1]
    claims = jwt.decode(token, options={"verify_signature": False})
    moved = stores.tokens().get(claims["sub"], claims["jti"]).expires_at
    assert moved == int(start) + 60 + 172800
    sent.clear()
    with ThreadPoolExecutor(20) as pool:
        assert all(pool.map(lambda _: authorizer.decide(f"Bearer {token}"), range(20)))
    assert sent == ["BatchGetItem"] * 20


@pytest.mark.parametrize("kind", ["bad signature", "expired", "garbage"])
def test_a_bad_token_costs_no_call(api, calls, kind, monkeypatch):
    import time

    token = api.user()
    if kind == "bad signature":
        token = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    elif kind == "expired":
        later = time.time() + 2592000 + 10  # past the cap, the JWT's exp
        monkeypatch.setattr("chalicelib.clock.now", lambda: later)
    else:
        token = "not-a-jwt"
    seen = calls()
    assert api.call("GET", ME, token=token).status == 403
    assert seen["authorizer"] == []


def test_users_me_is_one_read(api, calls):
    assert counted(api, calls, ME)["view"] == ["GetItem"]


def test_a_listing_adds_exactly_one_query(api, calls):
    assert counted(api, calls, "/api/v1/tokens")["view"] == ["Query"]


def test_each_page_is_one_query(api, calls):
    token = api.user()
    for _ in range(5):
        api.token()
    warm(api, token)
    seen = calls()
    cursor = api.call("GET", "/api/v1/tokens?limit=2", token=token).json["next_cursor"]
    api.call("GET", f"/api/v1/tokens?limit=2&cursor={cursor}", token=token)
    assert seen["view"] == ["Query", "Query"]


# Every password check is first counted as a failure (a conditional update
# of the attempts record, before bcrypt), so that a burst of requests cannot
# all check a password on the same count; a success then resets the count
# inside the write it makes anyway. The count is a transaction, which also
# records the failed login in the user's log (a failure writes nothing after
# bcrypt); the login's own transaction records the login. No call is added.

RESERVED = ["BatchGetItem", "TransactWriteItems"]


def test_login_is_four_calls(api, calls):
    api.signup()
    seen = calls()
    api.login()
    assert seen["view"] == RESERVED + ["Query", "TransactWriteItems"]


def test_a_login_that_rehashes_the_password_is_still_four_calls(api, calls, monkeypatch):
    monkeypatch.setenv("BCRYPT_ROUNDS", "5")
    api.signup()
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    seen = calls()
    assert api.login().status == 200
    assert seen["view"] == RESERVED + ["Query", "TransactWriteItems"]


def totp_user(api):
    """A user with TOTP enabled; its secret."""
    from chalicelib import clock, totp

    token = api.user()
    secret = api.call("POST", "/api/v1/users/me/mfa/totp", {"password": PASSWORD},
                      token=token).json["secret"]
    api.call("POST", "/api/v1/users/me/mfa/totp/confirm",
             {"code": totp.code_at(secret, totp.step_of(clock.now()))}, token=token)
    return secret


def test_a_password_login_of_a_user_with_a_second_factor_costs_one_read_more(api, calls):
    """The factors, for the ways the second step may go; then the mfa
    token's write, which also deletes the reservation's failed login."""
    totp_user(api)
    seen = calls()
    assert api.login().status == 403
    assert seen["view"] == RESERVED + ["GetItem", "TransactWriteItems"]


def test_the_second_step_reads_the_token_then_the_rest_in_one_call(api, calls, monkeypatch):
    """The mfa token; the login, attempts and factors together; the
    code's reservation; the login's transaction (spending the code and the
    token in it)."""
    from chalicelib import clock, totp

    secret = totp_user(api)
    mfa_token = api.login().json["mfa_token"]
    later = clock.now() + 30
    monkeypatch.setattr("chalicelib.clock.now", lambda: later)
    seen = calls()
    reply = api.call("POST", "/api/v1/login/mfa", {
        "mfa_token": mfa_token, "code": totp.code_at(secret, totp.step_of(later))})
    assert reply.status == 200
    assert seen["view"] == ["GetItem"] + RESERVED + ["Query", "TransactWriteItems"]


def test_a_failed_login_is_two_calls(api, calls):
    api.signup()
    seen = calls()
    api.login(password="wrong password")
    assert seen["view"] == RESERVED


def test_a_failed_login_of_an_unknown_name_makes_the_same_calls(api, calls):
    """The same operations, so the same time: a transaction even with no
    event to record."""
    seen = calls()
    api.login("nobody", "wrong password")
    assert seen["view"] == RESERVED


def test_a_refused_login_is_one_read(api, calls):
    api.signup()
    for _ in range(5):
        api.login(password="wrong password")
    seen = calls()
    assert api.login().status == 429
    assert seen["view"] == ["BatchGetItem"]


def test_a_password_change_is_five_calls(api, calls):
    """The read and the reservation, the fence that holds logins off, the
    listing and the one transaction."""
    token = api.user()
    warm(api, token)
    seen = calls()
    api.call("POST", "/api/v1/users/me/password", token=token,
             body={"current_password": PASSWORD, "new_password": "another password"})
    assert seen["view"] == RESERVED + ["UpdateItem", "Query", "TransactWriteItems"]


def test_signup_is_one_write(api, calls):
    seen = calls()
    api.signup()
    assert seen["view"] == ["TransactWriteItems"]


@pytest.mark.parametrize("n", [1, 26, 98, 99, 124])
def test_revoke_all_is_the_query_and_one_transaction_plus_a_batch_per_25_beyond_98(
        api, calls, monkeypatch, n):
    """The transaction holds the event, the check that no deletion has
    begun, and up to 98 deletes; the oldest of any more go first, in batches."""
    monkeypatch.setenv("MAX_TOKENS_PER_USER", "150")
    token = api.user()
    for _ in range(n - 1):
        api.token()
    warm(api, token)
    seen = calls()
    assert api.call("DELETE", "/api/v1/tokens", token=token).json == {"revoked": n}
    batches = math.ceil(max(0, n - 98) / 25)
    assert seen["view"] == ["Query"] + ["BatchWriteItem"] * batches + ["TransactWriteItems"]


def test_revoking_all_of_no_token_is_the_query_alone(api, calls):
    """Nothing revoked, nothing recorded."""
    token = api.user()
    warm(api, token)
    seen = calls()
    assert api.call("DELETE", "/api/v1/tokens?keep_current=true", token=token).json == {
        "revoked": 0}
    assert seen["view"] == ["Query"]


def test_admin_revoke_is_one_lookup_more(api, calls, admin):
    """The one lookup reads the caller's current roles and the target together."""
    api.user("alice")
    for _ in range(29):
        api.token("alice")
    warm(api, admin)
    seen = calls()
    api.call("DELETE", "/api/v1/admin/users/alice/tokens", token=admin)
    assert seen["view"] == ["BatchGetItem", "Query", "TransactWriteItems"]


def test_an_admin_listing_is_one_lookup_and_one_query(api, calls, admin):
    api.user("alice")
    warm(api, admin)
    seen = calls()
    assert api.call("GET", "/api/v1/admin/users/alice/tokens", token=admin).status == 200
    assert seen == {"authorizer": ["BatchGetItem"], "view": ["BatchGetItem", "Query"]}


def test_a_non_admin_on_an_admin_route_costs_the_same_lookup(api, calls):
    api.user("bob")
    seen = counted(api, calls, "/api/v1/admin/users/bob/tokens")
    assert seen == {"authorizer": ["BatchGetItem"], "view": ["BatchGetItem"]}


def test_revoking_one_token_is_one_small_transaction(api, calls):
    """The delete, its event, and the check that no deletion has begun."""
    token = api.user()
    other = api.login().json["token_id"]
    warm(api, token)
    seen = calls()
    api.call("DELETE", f"/api/v1/tokens/{other}", token=token)
    assert seen["view"] == ["TransactWriteItems"]


def test_logout_is_one_small_transaction(api, calls):
    token = api.user()
    warm(api, token)
    seen = calls()
    api.call("POST", "/api/v1/logout", token=token)
    assert seen["view"] == ["TransactWriteItems"]


def test_the_security_log_is_one_query_a_page(api, calls):
    token = api.user()
    for _ in range(4):
        api.token()
    warm(api, token)
    seen = calls()
    cursor = api.call("GET", "/api/v1/users/me/events?limit=2", token=token).json["next_cursor"]
    api.call("GET", f"/api/v1/users/me/events?limit=2&cursor={cursor}", token=token)
    assert seen["view"] == ["Query", "Query"]


def test_an_admin_reading_a_log_is_one_lookup_and_one_query(api, calls, admin):
    api.user("alice")
    warm(api, admin)
    seen = calls()
    assert api.call("GET", "/api/v1/admin/users/alice/events", token=admin).status == 200
    assert seen["view"] == ["BatchGetItem", "Query"]
