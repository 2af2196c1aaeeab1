"""Failed logins back off: 429 with Retry-After after 5 in a row."""
import hashlib
import threading
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


@pytest.mark.parametrize("typed", ["Tr0ub4dor3xyz", "my secret pw!"])
def test_the_table_holds_no_unkeyed_hash_of_a_name_as_typed(api, dynamodb, table_names, typed):
    """People type passwords into the username field: the attempts key of a
    name (rule-abiding or not) is keyed, never a plain hash to look up."""
    api.login(typed, "anything at all")
    keys = [i["pk"]["S"] for i in dynamodb.scan(TableName=table_names["users"])["Items"]]
    assert [k for k in keys if k.startswith("attempts#")]
    for guess in (typed, typed.lower()):
        digest = hashlib.sha256(guess.encode("utf-8")).hexdigest()
        assert not any(digest in key for key in keys)


def test_deleting_the_account_forgets_its_attempts(api, clock, dynamodb, table_names):
    token = api.user()
    fail(api, times=2)
    api.call("DELETE", "/api/v1/users/me", token=token, body={"password": PASSWORD})
    assert dynamodb.scan(TableName=table_names["users"])["Count"] == 0


# An outage after the right password is not a failed login.

def test_an_outage_during_right_logins_is_not_counted_as_failed_logins(api, clock, dynamodb):
    from faults import client_error, inject, opens_session

    api.signup()
    outage = [True]
    inject(dynamodb, "TransactWriteItems",
           lambda p: client_error("ThrottlingException") if outage[0] else None,
           when=opens_session)
    assert [api.login().status for _ in range(5)] == [503] * 5
    outage[0] = False
    assert api.login().status == 200


def test_when_the_release_fails_too_the_503_stands_and_a_line_says_so(api, clock, dynamodb,
                                                                        caplog):
    from faults import after_the_check, client_error, inject

    api.signup()
    # The login's transaction and then the release's.
    inject(dynamodb, "TransactWriteItems", lambda p: client_error("ThrottlingException"),
           when=after_the_check)
    reply = api.login()
    assert reply.status == 503
    assert reply.json["error"] == "service_unavailable"
    assert '"event":"login_release_failed"' in caplog.text


# At most 5 passwords checked per wait, however many attempts arrive at once.

@pytest.fixture
def checks(monkeypatch):
    """The passwords checked with bcrypt, in order."""
    from chalicelib import passwords

    seen = []
    verify = passwords.verify

    def counted(password, stored_hash):
        seen.append(password)
        return verify(password, stored_hash)

    monkeypatch.setattr(passwords, "verify", counted)
    return seen


@pytest.fixture
def together(monkeypatch, one_call_at_a_time):
    """Runs ``attempt(i)`` in ``count`` threads, each of which reads the
    attempts record and then waits until every other one has read it too:
    the widest window a burst of requests can open. Returns each attempt's
    HTTP status. Each DynamoDB call is made one at a time, as DynamoDB
    orders the writes to one item (``one_call_at_a_time``).
    """
    from chalicelib import contract
    from chalicelib.errors import ServiceError
    from chalicelib.login_store import LoginStore

    read = LoginStore.get_login_and_attempts

    def run(count, attempt):
        barrier = threading.Barrier(count)

        def after_all_have_read(self, username):
            found = read(self, username)
            barrier.wait(timeout=20)
            return found

        monkeypatch.setattr(LoginStore, "get_login_and_attempts", after_all_have_read)
        statuses = [None] * count

        def one(i):
            try:
                attempt(i)
                statuses[i] = 200
            except ServiceError as exc:
                statuses[i] = contract.status(exc)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        monkeypatch.setattr(LoginStore, "get_login_and_attempts", read)
        return statuses
    return run


def logins(username, password_of):
    """The ``i``-th attempt logs in as ``username`` with ``password_of(i)``."""
    from chalicelib import service

    return lambda i: service.login.with_password(username, password_of(i), None, None)


def test_parallel_wrong_guesses_check_at_most_five_passwords(api, clock, checks, together):
    api.signup()
    statuses = together(20, logins("alice", lambda i: f"wrong guess {i}"))
    assert len(checks) == 5
    assert sorted(statuses) == [401] * 5 + [429] * 15


def test_parallel_wrong_guesses_lock_the_right_password_out(api, clock, together):
    api.signup()
    together(20, logins("alice", lambda i: f"wrong guess {i}"))
    assert api.login().status == 429


def test_the_right_password_among_parallel_guesses_gets_only_the_last_free_check(
        api, clock, checks, together):
    api.signup()
    fail(api, times=4)
    checks.clear()
    statuses = together(20, logins("alice", lambda i: PASSWORD if i == 7 else "wrong guess"))
    assert len(checks) == 1
    assert statuses.count(429) == 19


def test_six_simultaneous_right_logins_check_five_and_refuse_the_sixth(
        api, clock, checks, together, monkeypatch):
    """The sixth arrives while five are being checked, and at most five are
    checked per wait: its 429 is inherent. It says Retry-After as for five
    failures, because nothing tells five checks in flight from five that
    failed: a failed check writes nothing after bcrypt (a failed login is
    two calls), and a success only deletes the record."""
    from chalicelib import passwords

    api.signup()
    verify = passwords.verify

    def as_slow_as_production(password, stored_hash):
        time.sleep(1)  # every check still runs when the sixth decides
        return verify(password, stored_hash)

    monkeypatch.setattr(passwords, "verify", as_slow_as_production)
    statuses = together(6, logins("alice", lambda i: PASSWORD))
    assert len(checks) == 5
    assert sorted(statuses) == [200] * 5 + [429]


# The password routes count in the same backoff as /login.

PASSWORD_ROUTE = "/api/v1/users/me/password"
ME = "/api/v1/users/me"


def change(api, token, current, new="a brand new password"):
    return api.call("POST", PASSWORD_ROUTE, token=token,
                    body={"current_password": current, "new_password": new})


def delete(api, token, password):
    return api.call("DELETE", ME, token=token, body={"password": password})


def test_wrong_current_passwords_lock_login(api, clock):
    token = api.user()
    assert [change(api, token, "wrong password").status for _ in range(5)] == [403] * 5
    assert api.login().status == 429


def test_a_locked_user_cannot_change_the_password_even_with_the_right_one(api, clock):
    token = api.user()
    fail(api, times=5)
    reply = change(api, token, PASSWORD)
    assert reply.status == 429
    assert reply.json["error"] == "too_many_attempts"
    assert 1 <= int(reply.headers["Retry-After"]) <= 900


def test_a_locked_user_cannot_delete_the_account_even_with_the_right_password(api, clock):
    token = api.user()
    fail(api, times=5)
    reply = delete(api, token, PASSWORD)
    assert reply.status == 429
    assert 1 <= int(reply.headers["Retry-After"]) <= 900
    assert api.call("GET", ME, token=token).status == 200


def test_wrong_passwords_on_account_deletion_count(api, clock):
    token = api.user()
    assert [delete(api, token, "wrong password").status for _ in range(5)] == [403] * 5
    assert api.login().status == 429


def test_login_and_the_password_routes_share_one_count(api, clock):
    token = api.user()
    fail(api, times=2)
    change(api, token, "wrong password")
    delete(api, token, "wrong password")
    fail(api)
    assert change(api, token, PASSWORD).status == 429


def test_a_wrong_current_password_is_still_a_403(api, clock):
    token = api.user()
    reply = change(api, token, "wrong password")
    assert reply.status == 403
    assert reply.json["error"] == "invalid_credentials"


def test_a_password_change_resets_the_count(api, clock):
    token = api.user()
    fail(api, times=4)
    assert change(api, token, PASSWORD, new="a brand new password").status == 200
    assert fail(api, times=4) == [401] * 4
    assert api.login("alice", "a brand new password").status == 200


def test_parallel_guesses_with_a_stolen_token_check_at_most_five_passwords(
        api, clock, checks, together):
    from chalicelib import service, stores
    from chalicelib.identity import Identity

    api.user()
    login = service.admin.find_user("alice")
    me = Identity(login.user_id, token_id="", username=login.username)
    checks.clear()
    statuses = together(20, lambda i: service.account.change_password(me, f"guess {i}", "a new password"))
    assert len(checks) == 5
    assert sorted(statuses) == [403] * 5 + [429] * 15


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


# The reservation's lost races.

def test_a_reservation_meeting_a_login_in_progress_reads_again_and_counts(api, clock, dynamodb):
    from faults import cancelled, inject, reserves

    api.signup()
    # Conflicts through every retry of one transaction: a login's is resetting the record.
    inject(dynamodb, "TransactWriteItems", cancelled("TransactionConflict"), times=4,
           when=reserves)
    assert fail(api) == [401]
    assert fail(api, times=4) == [401] * 4
    assert api.login().status == 429


def test_an_attempt_that_loses_every_race_waits_and_checks_nothing(api, clock, dynamodb, checks):
    from faults import cancelled, inject, reserves

    api.signup()
    checks.clear()
    inject(dynamodb, "TransactWriteItems", cancelled("ConditionalCheckFailed"), when=reserves)
    reply = api.login()
    assert reply.status == 429
    assert reply.headers["Retry-After"] == "1"
    assert checks == []
