"""The security log: what each account event records, how it is listed and
kept, and that an event is written with its action or not at all."""
import json
import time

import pytest

import manage
from chalicelib import login_store, service, stores
from conftest import Mailbox, PASSWORD
from faults import answer, inject, reserves, transact_items

EVENTS = "/api/v1/users/me/events"
EVENT_FIELDS = {"id", "type", "created_at", "ip", "device", "by", "token_id", "method"}
PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) " \
        "Chrome/131.0.0.0 Mobile Safari/537.36"


@pytest.fixture(autouse=True)
def local(monkeypatch):
    """manage.py's commands against the mocked DynamoDB."""
    monkeypatch.setattr("devserver.stage.use_endpoint", lambda endpoint: None)


def log(api, token, path=EVENTS):
    """Every event of the listing at ``path``, newest first."""
    reply = api.call("GET", path + "?limit=100", token=token)
    assert reply.status == 200, reply.json
    assert reply.json["next_cursor"] is None
    return reply.json["events"]


def kinds(events):
    return [(e["type"], e["by"]) for e in events]


def user_id(api, token):
    return api.call("GET", "/api/v1/users/me", token=token).json["id"]


def stored(dynamodb, table_names, kind="events"):
    return dynamodb.scan(TableName=table_names[kind])["Items"]


# What each event records.

def test_a_login_records_its_token_ip_and_device(api):
    api.signup()
    login = api.login(description="work laptop").json
    (event,) = log(api, login["token"])
    assert set(event) == EVENT_FIELDS
    assert event["type"] == "login" and event["by"] == "self"
    assert event["token_id"] == login["token_id"] and event["device"] == "work laptop"
    assert event["ip"]  # chalice's test client gives 127.0.0.1
    assert event["created_at"].endswith("Z")


def test_a_login_without_a_description_records_the_user_agent_cut_to_200(api):
    api.signup()
    agent = PHONE + " x" * 200
    reply = api.call("POST", "/api/v1/login", {"username": "alice", "password": PASSWORD},
                     headers={"User-Agent": agent})
    (event,) = log(api, reply.json["token"])
    assert event["device"] == agent[:200]


def test_a_failed_login_is_recorded_and_the_fifth_locks(api):
    api.signup()
    for _ in range(5):
        api.login(password="wrong password", description="attacker's box")
    # Logs are read with a token; the lock holds logins, so one is made directly.
    token = service_token("alice")
    events = log(api, token)
    assert kinds(events)[:2] == [("locked_out", "system"), ("login_failed", "unknown")]
    assert kinds(events)[2:] == [("login_failed", "unknown")] * 4
    assert {e["device"] for e in events} == {"attacker's box"}
    assert all(e["token_id"] is None for e in events)


def service_token(username):
    """A token made without the login route's backoff (which may be locked)."""
    from chalicelib import clock, jwtcodec
    from chalicelib.ids import new_timed_id
    from chalicelib.token_store import Session

    login = service.admin.find_user(username)
    now = clock.now()
    session = Session(user_id=login.user_id, token_id=new_timed_id(now),
                      expires_at=int(now) + 3600, username=login.username)
    tx = stores.Transaction()
    tx.add(stores.tokens().put(session))
    tx.commit()
    return jwtcodec.encode(login.user_id, session.token_id, int(now), session.expires_at)


def test_a_successful_login_leaves_no_failed_login_behind(api):
    """The attempt is recorded as a failure before bcrypt (the count's own
    write); the success deletes that event in its own transaction."""
    api.signup()
    api.login(password="wrong password")
    token = api.token()
    assert kinds(log(api, token)) == [("login", "self"), ("login_failed", "unknown")]


def test_failed_logins_of_names_that_do_not_exist_record_nothing(api, dynamodb, table_names):
    for name in ("nobody", "NoBody", "bad name!"):
        assert api.login(name, "wrong password").status == 401
    assert stored(dynamodb, table_names) == []


def test_logout_is_recorded_with_the_token(api, admin):
    token = api.user()
    token_id = api.call("GET", "/api/v1/tokens", token=token).json["tokens"][0]["id"]
    api.call("POST", "/api/v1/logout", token=token, headers={"User-Agent": "curl/8.5.0"})
    event = log(api, admin, "/api/v1/admin/users/alice/events")[0]
    assert (event["type"], event["by"], event["token_id"]) == ("logout", "self", token_id)
    assert event["device"] == "curl/8.5.0"


def test_revoking_one_token_is_recorded_with_its_id(api):
    token = api.user()
    other = api.login().json["token_id"]
    api.call("DELETE", f"/api/v1/tokens/{other}", token=token)
    event = log(api, token)[0]
    assert (event["type"], event["by"], event["token_id"]) == ("token_revoked", "self", other)


def test_revoking_a_token_that_is_not_live_records_nothing(api):
    token = api.user()
    before = log(api, token)
    assert api.call("DELETE", "/api/v1/tokens/" + "0" * 24, token=token).status == 404
    assert log(api, token) == before


def test_revoking_all_is_one_event_by_the_user(api):
    token = api.user()
    api.token()
    api.call("DELETE", "/api/v1/tokens?keep_current=true", token=token)
    event = log(api, token)[0]
    assert (event["type"], event["by"], event["token_id"]) == ("tokens_revoked", "self", None)


def test_an_admins_revocation_is_by_admin_and_does_not_name_the_admin(api, admin):
    api.user("alice")
    api.call("DELETE", "/api/v1/admin/users/alice/tokens", token=admin,
             headers={"User-Agent": "admin console"})
    event = log(api, admin, "/api/v1/admin/users/alice/events")[0]
    assert (event["type"], event["by"], event["device"]) == ("tokens_revoked", "admin",
                                                            "admin console")
    assert "root" not in json.dumps(event)


def test_an_eviction_by_the_cap_is_by_the_system_and_names_the_token(api, monkeypatch):
    monkeypatch.setenv("MAX_TOKENS_PER_USER", "2")
    api.signup()
    first = api.login().json["token_id"]
    api.login()
    third = api.login().json
    events = log(api, third["token"])
    assert kinds(events)[:2] == [("token_evicted", "system"), ("login", "self")]
    assert events[0]["token_id"] == first and events[1]["token_id"] == third["token_id"]


def test_a_password_change_is_recorded_and_a_wrong_one_is_a_failed_login(api):
    token = api.user()
    api.call("POST", "/api/v1/users/me/password", token=token,
             body={"current_password": "wrong password", "new_password": "a new password!"})
    api.call("POST", "/api/v1/users/me/password", token=token,
             body={"current_password": PASSWORD, "new_password": "a new password!"})
    events = log(api, token)
    assert kinds(events) == [("password_changed", "self"), ("login_failed", "self"),
                             ("login", "self")]
    token_id = events[-1]["token_id"]
    assert events[0]["token_id"] == events[1]["token_id"] == token_id


@pytest.mark.parametrize("command,kind", [("grant-admin", "role_granted"),
                                          ("revoke-admin", "role_revoked")])
def test_an_operators_role_change_is_by_operator_with_no_ip_or_device(api, command, kind):
    service.account.signup("alice", "alice@example.com", PASSWORD,
                   roles=["admin"] if command == "revoke-admin" else [])
    token = api.token()
    assert manage.main([command, "alice"]) == 0
    event = log(api, token)[0]
    assert (event["type"], event["by"], event["ip"], event["device"], event["token_id"]) == (
        kind, "operator", None, None, None)


def test_every_type_and_every_actor_is_reachable(api, admin, monkeypatch, dynamodb, table_names,
                                                 mailbox):
    """One account's life touches each of the fifteen types and the five actors."""
    monkeypatch.setenv("MAX_TOKENS_PER_USER", "3")
    api.user("alice")
    for _ in range(5):
        api.login("alice", "wrong password")
    token = service_token("alice")
    dynamodb.delete_item(TableName=table_names["users"], Key=login_store.name("alice").attempts_key)
    other = api.login("alice").json["token_id"]
    api.token("alice")  # the fourth: evicts the first
    api.call("DELETE", f"/api/v1/tokens/{other}", token=token)
    api.call("POST", "/api/v1/users/me/password", token=token,
             body={"current_password": PASSWORD, "new_password": "a new password!"})
    manage.main(["grant-admin", "alice"])
    manage.main(["revoke-admin", "alice"])
    api.call("DELETE", "/api/v1/admin/users/alice/tokens", token=admin)
    token = api.token("alice", "a new password!")
    api.call("DELETE", "/api/v1/tokens", token=token)
    token = api.token("alice", "a new password!")
    api.call("POST", "/api/v1/logout", token=token)
    # The address proven, a reset asked for and made, the address changed.
    api.call("POST", "/api/v1/email/verify", {"token": mailbox.link("alice@example.com",
                                                                     "verify")})
    start = time.time()
    monkeypatch.setattr("chalicelib.clock.now", lambda: start + 61)
    api.call("POST", "/api/v1/password/forgot", {"email": "alice@example.com"})
    api.call("POST", "/api/v1/password/reset", {
        "token": mailbox.link("alice@example.com", "reset"), "new_password": "newest password"})
    api.call("POST", "/api/v1/users/me/email", token=api.token("alice", "newest password"),
             body={"password": "newest password", "new_email": "alice@new.example"})
    api.call("POST", "/api/v1/email/verify", {"token": mailbox.link("alice@new.example",
                                                                     "verify")})
    events = log(api, admin, "/api/v1/admin/users/alice/events")
    from chalicelib.terms import EVENT_ACTORS as BY, EVENT_TYPES as TYPES, FACTOR_EVENT_TYPES
    # Second factors' types: tests/test_passkeys.py::test_every_second_factor_type_is_reachable
    assert {e["type"] for e in events} == set(TYPES) - set(FACTOR_EVENT_TYPES)
    assert {e["by"] for e in events} == set(BY)


@pytest.mark.parametrize("kind,by", [("signed_up", "self"), ("login", "somebody")])
def test_only_the_contracts_types_and_actors_can_be_recorded(kind, by):
    from chalicelib.event_store import new_event
    from chalicelib.identity import NOWHERE

    with pytest.raises(ValueError):
        new_event(time.time(), kind, by, NOWHERE)


# Listing: newest first, paged as tokens are.

def test_events_are_listed_newest_first_in_pages(api):
    token = api.user()
    for _ in range(4):
        api.token()
    seen, cursor = [], None
    while True:
        reply = api.call("GET", EVENTS + "?limit=2" + (f"&cursor={cursor}" if cursor else ""),
                         token=token).json
        assert len(reply["events"]) <= 2
        seen += [e["id"] for e in reply["events"]]
        cursor = reply["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)


@pytest.mark.parametrize("query,fields", [
    ("limit=0", {"limit"}), ("limit=101", {"limit"}), ("limit=x", {"limit"}),
    ("cursor=garbage", {"cursor"}), ("limit=0&cursor=garbage", {"limit", "cursor"}),
])
def test_a_bad_limit_or_cursor_is_422_naming_each(api, query, fields):
    token = api.user()
    reply = api.call("GET", f"{EVENTS}?{query}", token=token)
    assert reply.status == 422 and set(reply.json["fields"]) == fields


def cursor_of(api, token, path):
    api.token("alice")
    return api.call("GET", f"{path}?limit=1", token=token).json["next_cursor"]


def test_a_cursor_of_the_token_listing_is_refused(api):
    token = api.user()
    cursor = cursor_of(api, token, "/api/v1/tokens")
    assert api.call("GET", f"{EVENTS}?cursor={cursor}", token=token).status == 422


def test_a_cursor_of_another_users_log_is_refused(api):
    alice = api.user("alice")
    cursor = cursor_of(api, alice, EVENTS)
    bob = api.user("bob")
    assert api.call("GET", f"{EVENTS}?cursor={cursor}", token=bob).status == 422


def test_a_cursor_of_the_users_own_log_is_not_an_admin_listings(api, admin):
    alice = api.user("alice")
    cursor = cursor_of(api, alice, EVENTS)
    reply = api.call("GET", f"/api/v1/admin/users/alice/events?cursor={cursor}", token=admin)
    assert reply.status == 422


def test_a_user_sees_only_its_own_events(api):
    alice = api.user("alice")
    bob = api.user("bob")
    api.call("POST", "/api/v1/logout", token=bob)
    assert kinds(log(api, alice)) == [("login", "self")]


# The admin route.

def test_an_admin_reads_another_users_log_by_any_case(api, admin):
    api.user("Alice")
    assert kinds(log(api, admin, "/api/v1/admin/users/aLiCe/events")) == [("login", "self")]


@pytest.mark.parametrize("target", ["bob", "nobody"])
def test_a_non_admin_gets_403_whether_or_not_the_user_exists(api, target):
    alice = api.user("alice")
    api.user("bob")
    reply = api.call("GET", f"/api/v1/admin/users/{target}/events", token=alice)
    assert reply.status == 403 and reply.json["error"] == "forbidden"


@pytest.mark.parametrize("target", ["nobody", "bad%20name", "x" * 40])
def test_an_unknown_user_is_404(api, admin, target):
    reply = api.call("GET", f"/api/v1/admin/users/{target}/events", token=admin)
    assert reply.status == 404 and reply.json["error"] == "user_not_found"


# Retention.

def test_each_event_expires_after_the_retention_days(api, dynamodb, table_names, monkeypatch):
    monkeypatch.setenv("EVENT_RETENTION_DAYS", "7")
    api.user()
    (item,) = stored(dynamodb, table_names)
    created = int(item["event_id"]["S"][:14], 16) / 1_000_000
    assert int(item["expires_at"]["N"]) == int(created) + 7 * 86400


def test_the_retention_is_90_days_by_default(api, dynamodb, table_names):
    api.user()
    (item,) = stored(dynamodb, table_names)
    created = int(item["event_id"]["S"][:14], 16) / 1_000_000
    assert int(item["expires_at"]["N"]) == int(created) + 90 * 86400


def test_the_events_table_expires_items_by_that_attribute(dynamodb, table_names):
    ttl = dynamodb.describe_time_to_live(TableName=table_names["events"])
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"


def test_an_expired_event_is_not_listed_though_dynamodb_keeps_it_for_days(api, monkeypatch,
                                                                         dynamodb, table_names):
    monkeypatch.setenv("EVENT_RETENTION_DAYS", "1")
    token = api.user()
    later = time.time() + 86400 + 10
    monkeypatch.setattr("chalicelib.clock.now", lambda: later)
    assert log(api, token) == []
    assert len(stored(dynamodb, table_names)) == 1


# Deletion.

def test_deleting_the_account_deletes_its_log(api, dynamodb, table_names):
    token = api.user()
    api.token()
    api.login(password="wrong password")
    api.call("DELETE", "/api/v1/users/me", token=token, body={"password": PASSWORD})
    assert stored(dynamodb, table_names) == []


def test_an_operators_deletion_deletes_the_log(api, dynamodb, table_names):
    api.user()
    assert manage.main(["delete-user", "alice"]) == 0
    assert stored(dynamodb, table_names) == []


def test_a_log_too_long_for_one_transaction_is_deleted_all_the_same(api, dynamodb, table_names,
                                                                     monkeypatch):
    from chalicelib import unit_of_work

    token = api.user()
    for _ in range(6):
        api.token()
    monkeypatch.setattr(unit_of_work, "TRANSACTION_LIMIT", 8)
    reply = api.call("DELETE", "/api/v1/users/me", token=token, body={"password": PASSWORD})
    assert reply.status == 200
    assert stored(dynamodb, table_names) == [] and stored(dynamodb, table_names, "tokens") == []


def test_a_deletion_that_failed_half_way_is_finished_log_included(api, dynamodb, table_names,
                                                                   monkeypatch):
    """The log went first, then the transaction failed: the operator's
    deletion finishes, and nothing joined the log meanwhile."""
    from chalicelib import unit_of_work
    from faults import after_the_check, client_error

    token = api.user()
    for _ in range(6):
        api.token()
    monkeypatch.setattr(unit_of_work, "TRANSACTION_LIMIT", 8)
    inject(dynamodb, "TransactWriteItems", lambda p: client_error("ThrottlingException"),
           times=1, when=after_the_check)
    assert api.call("DELETE", "/api/v1/users/me", token=token,
                    body={"password": PASSWORD}).status == 503
    assert stored(dynamodb, table_names) == []  # it went first
    assert api.login(password="wrong password").status == 401  # not recorded: it has begun
    assert api.call("POST", "/api/v1/logout", token=token).json == {"revoked": 1}  # nor this
    assert stored(dynamodb, table_names) == []
    assert manage.main(["delete-user", "alice"]) == 0
    Mailbox().deliver()  # the signup's mail finds nobody, and goes
    assert all(stored(dynamodb, table_names, kind) == [] for kind in table_names)


def test_no_event_joins_a_log_once_its_deletion_has_begun(api, dynamodb, table_names):
    token = api.user()
    other = api.login().json["token_id"]
    login = service.admin.find_user("alice")
    stores.logins().mark_deleting(login, time.time())
    before = stored(dynamodb, table_names)
    assert api.call("DELETE", f"/api/v1/tokens/{other}", token=token).json == {"revoked": 1}
    assert api.call("DELETE", "/api/v1/tokens", token=token).json == {"revoked": 1}
    assert api.login(password="wrong password").status == 401
    assert stored(dynamodb, table_names) == before


def test_a_failed_login_racing_the_deletions_mark_records_nothing_and_still_counts(
        api, dynamodb, table_names):
    """The attempt read the login before the mark; its transaction checks
    the login again, and is sent once more without the event."""
    api.user()
    marked = []

    def mark_meanwhile(params, **kwargs):
        if not marked and reserves(params):
            marked.append(stores.logins().mark_deleting(service.admin.find_user("alice"), time.time()))

    dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", mark_meanwhile)
    before = stored(dynamodb, table_names)
    assert api.login(password="wrong password").status == 401
    assert marked == [True]
    assert stored(dynamodb, table_names) == before
    assert stores.logins().get_attempts(login_store.name("alice")).failures == 1


# An event that cannot be written leaves its action undone.

def event_refused(params):
    """The transaction refused, for the event's item (a throttle on the
    events table): nothing of it is written."""
    items = transact_items(params)
    reasons = [{"Code": "ThrottlingError" if "event_id" in i.get("Put", {}).get("Item", {})
                else "None"} for i in items]
    return answer(400, {"Error": {"Code": "TransactionCanceledException", "Message": "injected"},
                        "CancellationReasons": reasons,
                        "ResponseMetadata": {"HTTPStatusCode": 400}})


def records(params):
    return any("event_id" in i.get("Put", {}).get("Item", {}) for i in transact_items(params))


def everything(dynamodb, table_names):
    return {kind: sorted(map(repr, dynamodb.scan(TableName=name)["Items"]))
            for kind, name in table_names.items()}


def password_change(api, w):
    return api.call("POST", "/api/v1/users/me/password", token=w["token"],
                    body={"current_password": PASSWORD, "new_password": "another password"})


def after_the_check_records(params):
    return records(params) and not reserves(params)


# (the action, which of its transactions is refused)
ACTIONS = {
    "failed login": (lambda api, w: api.login(password="wrong password"), records),
    "login, at the check": (lambda api, w: api.login(), records),
    "login, at its write": (lambda api, w: api.login(), after_the_check_records),
    "logout": (lambda api, w: api.call("POST", "/api/v1/logout", token=w["token"]), records),
    "revoke": (lambda api, w: api.call("DELETE", f"/api/v1/tokens/{w['other']}",
                                       token=w["token"]), records),
    "revoke all": (lambda api, w: api.call("DELETE", "/api/v1/tokens", token=w["token"]),
                   records),
    "admin revoke": (lambda api, w: api.call("DELETE", "/api/v1/admin/users/alice/tokens",
                                             token=w["admin"]), records),
    "password, at the check": (password_change, records),
    "password, at its write": (password_change, after_the_check_records),
}


@pytest.mark.parametrize("action", ACTIONS)
def test_an_event_that_cannot_be_written_leaves_the_action_undone(api, admin, dynamodb,
                                                                  table_names, action):
    """A 503, and every table as it was: at its write, a right password's
    count and the failed login recorded before the check are undone too."""
    run, refused = ACTIONS[action]
    world = {"token": api.user(), "other": api.login().json["token_id"], "admin": admin}
    for token in (world["token"], admin):  # first uses write last_used_at
        api.call("GET", "/api/v1/users/me", token=token)
    before = everything(dynamodb, table_names)
    seen = inject(dynamodb, "TransactWriteItems", event_refused, when=refused)
    reply = run(api, world)
    assert seen, action
    assert reply.status == 503 and reply.json["error"] == "service_unavailable"
    assert reply.headers["Retry-After"] == "1"
    assert everything(dynamodb, table_names) == before


def test_a_right_deletion_password_followed_by_an_outage_leaves_no_failed_login(
        api, dynamodb, table_names):
    """The check recorded a failed login before bcrypt; the password was
    right and the deletion's first write (the mark) met an outage: a 503,
    and the log and the count as they were, as for a login or a password
    change (an outage is not a failed login)."""
    from faults import client_error

    token = api.user()
    api.call("GET", "/api/v1/users/me", token=token)  # the first use writes last_used_at
    before = everything(dynamodb, table_names)
    seen = inject(dynamodb, "UpdateItem", lambda p: client_error("ThrottlingException"),
                  when=lambda p: "deleting" in json.loads(p["body"])["UpdateExpression"])
    reply = api.call("DELETE", "/api/v1/users/me", token=token, body={"password": PASSWORD})
    assert seen and reply.status == 503
    assert everything(dynamodb, table_names) == before


def test_an_operators_role_change_whose_event_cannot_be_written_changes_no_role(
        api, dynamodb, table_names, capsys):
    api.signup()
    before = everything(dynamodb, table_names)
    inject(dynamodb, "TransactWriteItems", event_refused, when=records)
    assert manage.main(["grant-admin", "alice"]) == 1
    assert everything(dynamodb, table_names) == before
