"""Failed logins back off: 429 with Retry-After after 5 in a row."""
import time

import pytest

from chalicelib import backoff
from conftest import PASSWORD


@pytest.fixture
def clock(monkeypatch):
    """A clock the test moves by hand, starting just before a whole second
    (where rounding mistakes show)."""
    now = [int(time.time()) + 0.9996]
    monkeypatch.setattr("chalicelib.clock.now", lambda: now[0])
    return now


def fail(api, username="alice", times=1):
    return [api.login(username, "wrong password").status for _ in range(times)]


def test_five_failures_then_even_the_right_password_waits(api, clock):
    api.signup()
    assert fail(api, times=5) == [401] * 5
    reply = api.login()
    assert reply.status == 429
    assert reply.json["error"] == "too_many_attempts"
    assert 1 <= int(reply.headers["Retry-After"]) <= 900


def test_the_wait_ends_and_the_right_password_works_again(api, clock):
    api.signup()
    fail(api, times=5)
    wait = int(api.login().headers["Retry-After"])
    clock[0] += wait
    assert api.login().status == 200


def test_a_success_resets_the_count(api, clock):
    api.signup()
    fail(api, times=4)
    assert api.login().status == 200
    assert fail(api, times=4) == [401] * 4
    assert api.login().status == 200


def test_unknown_and_existing_names_back_off_alike(api, clock):
    api.signup("alice")
    fail(api, "alice", times=5)
    fail(api, "nobody", times=5)
    known, unknown = api.login("alice"), api.login("nobody")
    assert known.status == unknown.status == 429
    assert known.json == unknown.json
    assert known.headers["Retry-After"] == unknown.headers["Retry-After"]


def test_the_count_ignores_case(api, clock):
    api.signup("alice")
    for name in ("alice", "ALICE", "Alice", "aLiCe", "alicE"):
        fail(api, name)
    assert api.login("alice").status == 429


def test_malformed_names_back_off_too(api, clock):
    fail(api, "not a valid name!", times=5)
    assert api.login("not a valid name!").status == 429


def test_other_usernames_are_not_affected(api, clock):
    api.signup("alice")
    api.signup("bob")
    fail(api, "alice", times=5)
    assert api.login("bob").status == 200


def test_the_wait_doubles_and_never_exceeds_15_minutes(api, clock):
    api.signup()
    waits = []
    fail(api, times=4)
    for _ in range(8):
        assert fail(api) == [401], waits
        wait = int(api.login().headers["Retry-After"])
        waits.append(wait)
        clock[0] += wait
    assert waits == [30, 60, 120, 240, 480, 900, 900, 900]


def test_a_day_without_failures_forgets_them(api, clock):
    api.signup()
    fail(api, times=4)
    clock[0] += backoff.MEMORY + 1
    assert fail(api, times=4) == [401] * 4
    assert api.login().status == 200


def test_refused_attempts_do_no_bcrypt_work(api, clock, monkeypatch):
    api.signup()
    fail(api, times=5)
    checks = []
    monkeypatch.setattr("chalicelib.passwords.bcrypt.checkpw", lambda *a: checks.append(1))
    assert api.login().status == 429
    assert checks == []


def test_deleting_the_account_forgets_its_attempts(api, clock, dynamodb, table_names):
    token = api.user()
    fail(api, times=2)
    api.call("DELETE", "/api/v1/users/me", token=token, body={"password": PASSWORD})
    assert dynamodb.scan(TableName=table_names["users"])["Count"] == 0


# A lookalike name (a Kelvin sign for the K) never counts against the real user.

KELVIN = "\u212aate"


def test_a_lookalike_name_never_locks_out_the_real_user(api, clock):
    assert KELVIN.lower() == "kate"  # why this needs a test
    api.signup("kate")
    assert fail(api, KELVIN, times=5) == [401] * 5
    assert api.login("kate").status == 200


def test_a_lookalike_name_backs_off_on_its_own(api, clock):
    api.signup("kate")
    fail(api, KELVIN, times=5)
    assert api.login(KELVIN).status == 429


def test_the_real_users_failures_do_not_lock_the_lookalike_name(api, clock):
    api.signup("kate")
    fail(api, "kate", times=5)
    assert api.login(KELVIN).status == 401
