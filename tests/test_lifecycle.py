"""Account and session lifecycle: password change, deletion, cap, last use."""
import threading
import time

import pytest

from conftest import PASSWORD
from faults import after_the_check, client_error, inject, opens_session

ME = "/api/v1/users/me"
NEW = "a brand new password"


def status(api, token):
    return api.call("GET", ME, token=token).status


def change(api, token, current=PASSWORD, new=NEW):
    return api.call("POST", "/api/v1/users/me/password", token=token,
                    body={"current_password": current, "new_password": new})


def delete(api, token, password=PASSWORD):
    return api.call("DELETE", ME, token=token, body={"password": password})


# Password change

def test_a_password_change_revokes_every_other_token_and_keeps_this_one(api):
    current = api.user()
    others = [api.token() for _ in range(3)]
    reply = change(api, current)
    assert reply.status == 200 and reply.json == {"revoked": 3}
    assert status(api, current) == 200
    assert all(status(api, t) == 403 for t in others)


def test_after_a_password_change_only_the_new_password_logs_in(api):
    token = api.user()
    change(api, token)
    assert api.login(password=PASSWORD).status == 401
    assert api.login(password=NEW).status == 200


def test_a_wrong_current_password_is_403_and_changes_nothing(api):
    token = api.user()
    other = api.token()
    reply = change(api, token, current="not my password")
    assert reply.status == 403 and reply.json["error"] == "invalid_credentials"
    assert status(api, other) == 200
    assert api.login(password=PASSWORD).status == 200


@pytest.mark.parametrize("body,field", [
    ({"current_password": PASSWORD, "new_password": "short"}, "new_password"),
    ({"current_password": PASSWORD, "new_password": "x" * 1025}, "new_password"),
    ({"new_password": NEW}, "current_password"),
    ({"current_password": PASSWORD, "new_password": NEW, "extra": 1}, "extra"),
])
def test_the_new_password_follows_the_signup_rules(api, body, field):
    token = api.user()
    reply = api.call("POST", "/api/v1/users/me/password", token=token, body=body)
    assert reply.status == 422 and list(reply.json["fields"]) == [field]


def test_a_login_racing_a_password_change_does_not_survive_it(api, dynamodb):
    """A login that arrives after the change listed the tokens but before it
    wrote is held off by the change's fence, then finds the password
    changed: no token comes of it."""
    from chalicelib import service
    from chalicelib.errors import InvalidCredentials, ServiceUnavailable

    token = api.user()
    raced = []

    def attempt():
        try:
            raced.append(service.login.with_password("alice", PASSWORD, None, None))
        except (InvalidCredentials, ServiceUnavailable) as exc:
            # Held off by the fence, it finds the new password; on a machine
            # slow enough that the change outlasts its tries, it gives up
            # (503). Either way no session comes of it.
            raced.append(exc)

    opened = []

    def login_meanwhile(params, **kwargs):
        if opens_session(params):
            opened.append(None)  # the raced login's write, which meets the fence
        elif not raced and after_the_check(params):
            raced.append(threading.Thread(target=attempt))
            raced[0].start()
            deadline = time.monotonic() + 20
            while not opened and time.monotonic() < deadline:
                time.sleep(0.01)

    dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", login_meanwhile)
    assert change(api, token).status == 200
    raced[0].join(timeout=30)
    assert opened and isinstance(raced[1], (InvalidCredentials, ServiceUnavailable))
    assert status(api, token) == 200


def test_a_login_that_committed_before_the_fence_is_revoked_by_the_change(api, dynamodb):
    """A login whose write lands just before the change's fence goes up:
    the change lists its token after the fence, and revokes it."""
    token = api.user()
    raced = []

    def login_first(params, **kwargs):
        if not raced and b"fence_until" in params["body"]:
            raced.append(None)
            raced[0] = api.token()

    dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", login_first)
    assert change(api, token).status == 200
    assert raced and status(api, raced[0]) == 403
    assert status(api, token) == 200


def test_a_change_whose_token_listing_fails_leaves_no_fence(api, dynamodb):
    """A change that meets an outage after its fence went up (here, listing
    the tokens) takes the fence down: the owner's next login with the
    unchanged password is a 200, not a 503 for as long as the fence would
    stand."""
    token = api.user()
    failing = [True]
    inject(dynamodb, "Query", lambda p: client_error("ThrottlingException"),
           when=lambda p: failing[0])
    assert change(api, token).status == 503
    failing[0] = False
    assert api.login().status == 200
    assert change(api, token).status == 200


# Account deletion

def test_deleting_the_account_removes_the_user_and_every_token(api):
    token = api.user()
    other = api.token()
    reply = delete(api, token)
    assert reply.status == 200 and reply.json == {"deleted": True, "revoked": 2}
    assert status(api, token) == 403 and status(api, other) == 403
    assert api.login().status == 401


def test_a_deleted_users_username_and_email_are_free_again(api):
    token = api.user("alice")
    delete(api, token)
    reply = api.signup("ALICE", email="Alice@Example.com")
    assert reply.status == 201
    assert api.login("alice").status == 200


def test_deletion_needs_the_password(api):
    token = api.user()
    reply = delete(api, token, password="not my password")
    assert reply.status == 403 and reply.json["error"] == "invalid_credentials"
    assert status(api, token) == 200


def test_deletion_without_a_password_is_422(api):
    token = api.user()
    reply = api.call("DELETE", ME, token=token, body={})
    assert reply.status == 422 and list(reply.json["fields"]) == ["password"]


def test_a_failure_half_way_leaves_nothing_that_logs_in_and_a_retry_finishes(api, dynamodb,
                                                                             table_names):
    token = api.user()
    other = api.token()
    inject(dynamodb, "TransactWriteItems", lambda p: client_error("ThrottlingException"), times=1,
           when=after_the_check)
    assert delete(api, token).status == 503
    # Half-way: the user is whole but cannot log in; its tokens remain so
    # that the client can retry.
    assert api.login().status == 401
    assert api.signup("alice").status == 409
    assert status(api, token) == 200
    reply = delete(api, token)
    assert reply.status == 200 and reply.json == {"deleted": True, "revoked": 2}
    assert status(api, other) == 403
    assert dynamodb.scan(TableName=table_names["users"])["Count"] == 0
    assert dynamodb.scan(TableName=table_names["tokens"])["Count"] == 0


def test_two_deletions_of_one_account_at_once_give_one_200_and_one_404(api, dynamodb,
                                                                       table_names):
    """A double click: the second request finishes first, and the first
    finds the account gone (a 404, where it was a 500)."""
    token = api.user()
    second = []

    def delete_meanwhile(params, **kwargs):
        if not second and after_the_check(params):
            second.append(None)
            second[0] = delete(api, token)

    dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", delete_meanwhile)
    first = delete(api, token)
    assert second[0].status == 200
    assert first.status == 404 and first.json["error"] == "user_not_found"
    assert dynamodb.scan(TableName=table_names["users"])["Count"] == 0


def test_a_deletion_with_many_tokens_deletes_them_all(api, dynamodb, table_names, monkeypatch):
    monkeypatch.setenv("MAX_TOKENS_PER_USER", "150")
    tokens = [api.user()] + [api.token() for _ in range(119)]
    reply = delete(api, tokens[-1])
    assert reply.json == {"deleted": True, "revoked": 120}
    assert dynamodb.scan(TableName=table_names["tokens"])["Count"] == 0


# The token cap

def test_105_logins_leave_exactly_the_100_newest_tokens(api):
    api.signup()
    issued = [api.login().json["token_id"] for _ in range(105)]
    newest = issued[0]
    token = api.token()
    listed, cursor = [], None
    while True:
        page = api.call("GET", "/api/v1/tokens?limit=100" + (f"&cursor={cursor}" if cursor else ""),
                        token=token).json
        listed += [t["id"] for t in page["tokens"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(listed) == 100
    assert set(listed) == set(issued[-99:]) | {listed[0]}
    assert newest not in listed


def test_the_cap_comes_from_configuration(api, monkeypatch):
    monkeypatch.setenv("MAX_TOKENS_PER_USER", "2")
    first = api.user()
    second = api.token()
    third = api.token()
    assert status(api, first) == 403
    assert status(api, second) == status(api, third) == 200


def test_parallel_logins_never_hold_more_than_the_cap(api, monkeypatch, dynamodb, table_names,
                                                      one_call_at_a_time):
    """Four logins list the user's tokens at once, then write: each one's
    write is conditional on the login counter it read, so the losers list
    again, and the cap holds."""
    from chalicelib.token_store import TokenStore

    monkeypatch.setenv("MAX_TOKENS_PER_USER", "2")
    api.user()
    listed, barrier, first = TokenStore.all_keys, threading.Barrier(4), []

    def all_read_first(self, user_id):
        keys = listed(self, user_id)
        with one_call_at_a_time:
            waits = len(first) < 4
            first.append(None)
        if waits:
            barrier.wait(timeout=20)
        return keys

    monkeypatch.setattr(TokenStore, "all_keys", all_read_first)
    statuses = []
    threads = [threading.Thread(target=lambda: statuses.append(api.login().status))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * 4
    assert dynamodb.scan(TableName=table_names["tokens"])["Count"] <= 2


def login_during_the_next_transaction(api, dynamodb, act):
    """Runs ``act()`` once, just before the next TransactWriteItems that
    follows a password check."""
    done = []

    def meanwhile(params, **kwargs):
        if not done and after_the_check(params):
            done.append(None)  # once: ``act`` may write a transaction too
            done.append(act())

    dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", meanwhile)
    return done


def test_a_login_that_lost_the_race_lists_again_and_checks_no_password_again(
        api, dynamodb, table_names, monkeypatch):
    from chalicelib import passwords

    monkeypatch.setenv("MAX_TOKENS_PER_USER", "1")
    api.signup()
    checks = []
    checkpw = passwords.bcrypt.checkpw
    monkeypatch.setattr(passwords.bcrypt, "checkpw", lambda *a: checks.append(1) or checkpw(*a))
    other = login_during_the_next_transaction(api, dynamodb, api.token)
    token = api.token()
    assert checks == [1, 1]
    assert status(api, token) == 200 and status(api, other[1]) == 403
    assert dynamodb.scan(TableName=table_names["tokens"])["Count"] == 1


def test_a_login_whose_password_changed_before_its_write_is_refused(api, dynamodb):
    token = api.user()
    login_during_the_next_transaction(api, dynamodb, lambda: change(api, token))
    assert api.login().status == 401
    assert api.login("alice", NEW).status == 200


def test_a_login_that_loses_every_race_is_a_503_and_counts_no_failure(api, dynamodb):
    from chalicelib import backoff

    api.signup()
    racing = [True]
    inject(dynamodb, "TransactWriteItems",
           lambda p: client_error("TransactionCanceledException") if racing[0] else None,
           when=opens_session)
    assert [api.login().status for _ in range(backoff.THRESHOLD)] == [503] * backoff.THRESHOLD
    racing[0] = False
    assert api.login().status == 200


# last_used_at

def test_last_used_at_is_written_at_most_once_per_five_minutes(api, dynamodb, monkeypatch):
    token = api.user()
    writes = []
    dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", lambda **kw: writes.append(1))
    for _ in range(5):
        assert status(api, token) == 200
    assert len(writes) == 1
    start = time.time()
    monkeypatch.setattr("chalicelib.clock.now", lambda: start + 301)
    for _ in range(3):
        assert status(api, token) == 200
    assert len(writes) == 2


def test_last_used_at_shows_in_listings_and_moves(api, monkeypatch):
    token = api.user()
    first = api.call("GET", "/api/v1/tokens", token=token).json["tokens"][0]["last_used_at"]
    assert first is not None
    start = time.time()
    monkeypatch.setattr("chalicelib.clock.now", lambda: start + 600)
    later = api.call("GET", "/api/v1/tokens", token=token).json["tokens"][0]["last_used_at"]
    assert later > first


def test_a_fresh_token_has_no_last_use_until_it_is_used(api):
    token = api.user()
    unused = api.login().json["token_id"]
    listed = {t["id"]: t for t in api.call("GET", "/api/v1/tokens", token=token).json["tokens"]}
    assert listed[unused]["last_used_at"] is None


def test_touching_never_recreates_a_revoked_token(api, dynamodb, table_names):
    from chalicelib import service, stores

    token = api.user()
    session = api.call("GET", "/api/v1/tokens", token=token).json["tokens"][0]
    api.call("POST", "/api/v1/logout", token=token)
    user_id = api.login().json and service.admin.find_user("alice").user_id
    stores.tokens().touch(user_id, session["id"], time.time(), time.time(), time.time() + 3600)
    assert stores.tokens().get(user_id, session["id"]) is None


def test_a_login_racing_the_rehash_of_its_own_password_succeeds(api, dynamodb, monkeypatch):
    """After a change of BCRYPT_ROUNDS, a user's first login rehashes the
    password; a login of the same password racing it must not read the new
    hash as a changed password (401 for the right password)."""
    api.user()
    monkeypatch.setenv("BCRYPT_ROUNDS", "5")
    raced = []

    def login_first(params, **kwargs):
        if not raced and opens_session(params):
            raced.append(None)
            raced[0] = api.login()

    dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", login_first)
    reply = api.login()
    assert raced[0].status == 200
    assert reply.status == 200, reply.json
