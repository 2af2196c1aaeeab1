"""Attacks on email verification and account recovery: each test is one
attack, asserting what the service must do to hold (some since the fix
committed with them)."""
import re
import time

import pytest

from chalicelib import aws, service, stores
from conftest import PASSWORD, SENDER
from test_fault_sites import FAULTS, injector  # noqa: F401 (a fixture)

ALICE = "alice@example.com"
NEW = "alice@new.example"
FORGOT = "/api/v1/password/forgot"
RESET = "/api/v1/password/reset"
VERIFY = "/api/v1/email/verify"
CHANGE = "/api/v1/users/me/email"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def clock_at(monkeypatch):
    start = time.time()

    def move(seconds):
        monkeypatch.setattr("chalicelib.clock.now", lambda: start + seconds)
    move(0)
    return move


@pytest.fixture
def alice(api, mailbox, clock_at):
    """alice, her address verified, no link sent to it in the last hour; her token."""
    api.signup()
    mailbox.deliver()
    service.admin.verify_email("alice")
    clock_at(3601)
    return api.token()


def reset(api, link, password=NEW_PASSWORD):
    return api.call("POST", RESET, {"token": link, "new_password": password})


def test_a_change_of_address_kills_the_reset_link_sent_to_the_old_one(
        api, mailbox, alice, clock_at):
    api.call("POST", FORGOT, {"email": ALICE})
    old_mailbox_link = mailbox.link(ALICE, "reset")
    api.call("POST", CHANGE, {"password": PASSWORD, "new_email": NEW}, token=alice)
    assert api.call("POST", VERIFY, {"token": mailbox.link(NEW, "verify")}).status == 200
    reply = reset(api, old_mailbox_link)
    assert (reply.status, reply.json.get("error")) == (400, "invalid_link")


# The mailer issues the link (killing the older one), counts the send and
# records it before SES is asked: a refusal must undo all three.
def test_a_message_ses_refused_leaves_the_older_link_alive(api, mailbox, alice, clock_at):
    api.call("POST", FORGOT, {"email": ALICE})
    delivered = mailbox.link(ALICE, "reset")
    clock_at(3601 + 61)
    aws.sesv2().delete_email_identity(EmailIdentity=SENDER)  # SES now refuses
    api.call("POST", FORGOT, {"email": ALICE})
    assert mailbox.deliver() == []
    assert reset(api, delivered).status == 200


def test_a_password_change_kills_an_outstanding_reset_link(api, mailbox, alice):
    api.call("POST", FORGOT, {"email": ALICE})
    link = mailbox.link(ALICE, "reset")
    changed = api.call("POST", "/api/v1/users/me/password",
                       {"current_password": PASSWORD, "new_password": "another good passphrase"},
                       token=alice)
    assert changed.status == 200
    assert reset(api, link).status == 400


# (The same cause) the log must not record a link sent that SES refused.
def test_a_message_ses_refused_is_not_recorded_as_sent(api, mailbox, clock_at):
    token = api.user()
    mailbox.deliver()
    clock_at(61)
    aws.sesv2().delete_email_identity(EmailIdentity=SENDER)  # SES now refuses
    api.call("POST", "/api/v1/users/me/email/verification", token=token)
    assert mailbox.deliver() == []
    events = api.call("GET", "/api/v1/users/me/events", token=token).json["events"]
    assert [e["type"] for e in events].count("email_verification_sent") == 1  # signup's only


# Signup refused a Unicode local part only once mail went through SES, which cannot send to one.
def test_an_address_ses_cannot_mail_is_refused_at_signup(api):
    # SES takes only 7-bit ASCII before the @ (no SMTPUTF8): such an
    # address would never get its verification link, nor a reset link.
    reply = api.signup("jose", email="josé@example.com")
    assert (reply.status, list(reply.json.get("fields", {}))) == (422, ["email"])



# A DynamoDB fault at each call of the new routes: a 503, and nothing
# half-written (the link still works once the fault is gone).



@pytest.fixture
def fresh(api, mailbox, monkeypatch, injector):  # noqa: F811
    """A new verified user, its token and a live reset link, each time."""
    seq = iter(range(1000))
    base = time.time()

    def make():
        n = next(seq)
        monkeypatch.setattr("chalicelib.clock.now", lambda: base + n * 200)
        name = f"user{n}"
        token = api.user(name)
        mailbox.deliver()
        service.admin.verify_email(name)
        monkeypatch.setattr("chalicelib.clock.now", lambda: base + n * 200 + 61)
        service.recovery.forgot(f"{name}@example.com")
        link = mailbox.link(f"{name}@example.com", "reset")
        return {"name": name, "token": token, "link": link}
    return make


def _each_site(api, injector, fault, make, run):  # noqa: F811
    injector.update(calls=0, fail_at=None)
    w = make()
    injector["calls"] = 0
    run(w)
    sites = injector["calls"]
    failed = []
    for site in range(sites):
        w = make()
        injector.update(calls=0, fail_at=site, fault=FAULTS[fault])
        reply = run(w)
        injector["fail_at"] = None
        failed.append((site, reply.status, w))
    return failed


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_at_any_call_of_a_reset_is_503_and_the_link_still_works(
        api, injector, fresh, fault):  # noqa: F811
    for site, status, w in _each_site(api, injector, fault, fresh,
                                      lambda w: reset(api, w["link"])):
        assert status == 503, site
        assert reset(api, w["link"]).status == 200, site
        assert api.login(w["name"], NEW_PASSWORD).status == 200, site


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_at_any_call_of_forgot_is_503(api, injector, fresh, fault):  # noqa: F811
    for site, status, _ in _each_site(
            api, injector, fault, fresh,
            lambda w: api.call("POST", FORGOT, {"email": w["name"] + "@example.com"})):
        assert status == 503, site


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_at_any_call_of_a_change_of_address_is_503_and_counts_nothing(
        api, injector, fresh, fault):  # noqa: F811
    def run(w):
        return api.call("POST", CHANGE,
                        {"password": PASSWORD, "new_email": f"n{w['name']}@x.example"},
                        token=w["token"])
    for site, status, w in _each_site(api, injector, fault, fresh, run):
        assert status == 503, site
        assert run(w).status == 202, site


@pytest.fixture
def moving(api, mailbox, monkeypatch):
    """A new verified user with a live link to a new address, each time."""
    seq = iter(range(1000))
    base = time.time()

    def make():
        n = next(seq)
        monkeypatch.setattr("chalicelib.clock.now", lambda: base + n * 200)
        name = f"mover{n}"
        token = api.user(name)
        api.call("POST", VERIFY, {"token": mailbox.link(f"{name}@example.com", "verify")})
        api.call("POST", CHANGE, {"password": PASSWORD, "new_email": f"{name}@new.example"},
                 token=token)
        return {"name": name, "token": token,
                "link": mailbox.link(f"{name}@new.example", "verify")}
    return make


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_at_any_call_of_a_change_by_link_is_503_and_the_link_still_works(
        api, injector, moving, fault):  # noqa: F811
    def run(w):
        return api.call("POST", VERIFY, {"token": w["link"]})
    for site, status, w in _each_site(api, injector, fault, moving, run):
        assert status == 503, site
        reply = run(w)
        assert (reply.status, reply.json["email"]) == (200, f"{w['name']}@new.example"), site


# The mailer's transaction holds the profile as it read it.
def test_a_reset_link_decided_before_a_change_of_address_is_not_issued_after_it(
        api, mailbox, alice, dynamodb):
    api.call("POST", CHANGE, {"password": PASSWORD, "new_email": NEW}, token=alice)
    move = mailbox.link(NEW, "verify")
    api.call("POST", FORGOT, {"email": ALICE})  # the old address asks, before the change
    moved = []

    def change_first(params, **kwargs):
        # The mailer has read the account (old address, verified) and is
        # about to commit the link: the change by link lands in between.
        if not moved and "SET reset_hash" in params["body"].decode():
            moved.append("pending")
            moved[0] = api.call("POST", VERIFY, {"token": move}).status
    dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", change_first)
    sent = mailbox.deliver()
    assert moved == [200]
    assert [m.to for m in sent if "#reset=" in m.text] == []



# A verification of the address in force, delivered after a move, must not
# be taken for a change of address back to it (no password asked).
def test_a_late_verification_of_the_old_address_cannot_move_the_account_back(
        api, mailbox, clock_at):
    from chalicelib import mailer
    token = api.user()
    mailbox.deliver()  # the signup's link
    clock_at(61)
    # The old address asks again (a token is enough), then the owner moves
    # to a new address; a stream gives no order across items: the new
    # address's item goes first, the old one's after the move.
    api.call("POST", "/api/v1/users/me/email/verification", token=token)
    api.call("POST", CHANGE, {"password": PASSWORD, "new_email": NEW}, token=token)
    old_first = sorted(stores.outbox().waiting(), key=lambda item: item["to"]["S"] == ALICE)
    mailer.deliver(old_first[0])
    move = re.search(r"#verify=(\S+)", mailbox.to(NEW)[-1].body).group(1)
    assert api.call("POST", VERIFY, {"token": move}).status == 200
    mailer.deliver(old_first[1])
    late = [m for m in mailbox.to(ALICE) if "#verify=" in m.body][1:]
    if late:  # the old mailbox's link must not move the account back
        link = re.search(r"#verify=(\S+)", late[-1].body).group(1)
        api.call("POST", VERIFY, {"token": link})
    assert api.call("GET", "/api/v1/users/me", token=token).json["email"] == NEW


def test_a_verification_decided_before_a_move_is_not_issued_after_it(
        api, mailbox, dynamodb, clock_at):
    token = api.user()
    mailbox.deliver()  # the signup's link
    api.call("POST", CHANGE, {"password": PASSWORD, "new_email": NEW}, token=token)
    move = mailbox.link(NEW, "verify")
    clock_at(61)
    api.call("POST", "/api/v1/users/me/email/verification", token=token)
    moved = []

    def move_first(params, **kwargs):
        # The mailer has read the account at its old address and is about
        # to issue the old address's link: the move lands in between.
        if not moved and "SET verify_hash" in params["body"].decode():
            moved.append("pending")
            moved[0] = api.call("POST", VERIFY, {"token": move}).status
    dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", move_first)
    mailbox.deliver()
    assert moved == [200]
    late = [m for m in mailbox.to(ALICE) if "#verify=" in m.body][1:]
    assert late == []


# Lookalike and oversized input.

def test_another_users_id_with_a_valid_secret_is_refused(api, mailbox, alice):
    bob = api.signup("bob").json["id"]
    api.call("POST", FORGOT, {"email": ALICE})
    secret = mailbox.link(ALICE, "reset").split(".")[1]
    reply = reset(api, f"{bob}.{secret}")
    assert (reply.status, reply.json["error"]) == (400, "invalid_link")


@pytest.mark.parametrize("dressed", ["{} ", " {}", "{}\n", "{}=", "{}%3D", "#reset={}",
                                     "https://login.example/#reset={}", "{}".upper()])
def test_a_link_with_anything_around_it_is_refused(api, mailbox, alice, dressed):
    api.call("POST", FORGOT, {"email": ALICE})
    link = mailbox.link(ALICE, "reset")
    tampered = dressed.format(link) if dressed != "{}".upper() else link.upper()
    assert reset(api, tampered).status in (400, 422)
    assert reset(api, link).status == 200


@pytest.mark.parametrize("email", [
    "a" * 64 + "@" + "b" * 62 + "." + "b" * 62 + "." + "b" * 55 + ".example",  # 254
    "\u0390" * 240 + "@example.com",                               # casefold grows it threefold
    "alice@xn--bcher-kva.example", "ALICE@EXAMPLE.COM"])
def test_an_outsized_or_folded_address_is_an_ordinary_answer(api, email):
    assert len(email) <= 254
    assert api.call("POST", FORGOT, {"email": email}).status in (202, 422)
    assert api.signup("x", email=email).status in (201, 422)


def test_a_255_character_address_is_422(api):
    email = "a" * 64 + "@" + "b" * 62 + "." + "b" * 62 + "." + "b" * 56 + ".example"
    assert len(email) == 255
    assert api.call("POST", FORGOT, {"email": email}).status == 422


def test_an_idn_account_is_found_by_its_ascii_form(api, mailbox, clock_at):
    api.signup("zoe", email="zoe@bücher.example")
    mailbox.deliver()
    service.admin.verify_email("zoe")
    clock_at(61)
    api.call("POST", FORGOT, {"email": "ZOE@xn--bcher-kva.example"})
    assert mailbox.link("zoe@xn--bcher-kva.example", "reset")


def test_a_token_of_a_verification_does_not_open_the_reset_of_another_kind(api, mailbox):
    api.signup()
    link = mailbox.link(ALICE, "verify")
    assert reset(api, link).status == 400
    assert api.call("POST", VERIFY, {"token": link}).status == 200


# Operator commands in the wrong order.

def test_verify_email_on_a_user_being_deleted_is_refused(api, mailbox):
    from chalicelib import clock, login_store
    from chalicelib.errors import UserNotFound
    api.signup()
    login = stores.logins().get_login(login_store.name("alice"))
    assert stores.logins().mark_deleting(login, clock.now())
    with pytest.raises(UserNotFound):
        service.admin.verify_email("alice")


def test_delete_user_with_every_kind_of_mail_waiting_sends_none(api, mailbox, alice):
    api.call("POST", FORGOT, {"email": ALICE})
    api.call("POST", "/api/v1/users/me/password",
             {"current_password": PASSWORD, "new_password": "another good passphrase"},
             token=alice)
    api.call("POST", CHANGE, {"password": "another good passphrase", "new_email": NEW},
             token=alice)
    before = len(mailbox.received())
    service.admin.delete_user("alice")
    assert mailbox.deliver() == [] and len(mailbox.received()) == before
    assert stores.outbox().waiting() == []


# A reset link's log line names its account, though a reset item carries no
# user id: the log says which kind went for which account.
def test_a_sent_reset_link_is_logged_with_its_account(api, mailbox, alice, caplog):
    api.call("POST", FORGOT, {"email": ALICE})
    mailbox.deliver()
    user_id = api.call("GET", "/api/v1/users/me", token=alice).json["id"]
    lines = [r.getMessage() for r in caplog.records if '"email_sent"' in r.getMessage()]
    assert f'"kind":"reset","user_id":"{user_id}"' in lines[-1]


# A password known to an attacker is enough to ask for a change of address
# to the attacker's mailbox; the owner's remedy (a reset, or a change of the
# password) must kill that pending change, or the attacker uses the link
# afterwards, gets the address, and with it the next reset.
EVIL = "mallory@evil.example"


def test_a_reset_kills_a_pending_change_of_address(api, mailbox, alice, clock_at):
    api.call("POST", CHANGE, {"password": PASSWORD, "new_email": EVIL}, token=alice)
    stolen = mailbox.link(EVIL, "verify")
    api.call("POST", FORGOT, {"email": ALICE})
    assert reset(api, mailbox.link(ALICE, "reset")).status == 200
    reply = api.call("POST", VERIFY, {"token": stolen})
    assert (reply.status, reply.json.get("error")) == (400, "invalid_link")


def test_a_password_change_kills_a_pending_change_of_address(api, mailbox, alice):
    api.call("POST", CHANGE, {"password": PASSWORD, "new_email": EVIL}, token=alice)
    stolen = mailbox.link(EVIL, "verify")
    assert api.call("POST", "/api/v1/users/me/password",
                    {"current_password": PASSWORD, "new_password": "another good passphrase"},
                    token=alice).status == 200
    reply = api.call("POST", VERIFY, {"token": stolen})
    assert (reply.status, reply.json.get("error")) == (400, "invalid_link")


# Whoever holds an address unverified (anyone can sign up with any
# address) learns the IP address and browser of each person who asks for a
# reset at it, most likely the address's real owner.
def test_a_squatter_does_not_learn_who_asked_for_a_reset_of_their_address(api, mailbox):
    api.signup("squatter", email="victim@example.com")
    mailbox.deliver()
    squatter = api.token("squatter")
    api.call("POST", FORGOT, {"email": "victim@example.com"},
             headers={"User-Agent": "Victim's Browser 1.0"})
    mailbox.deliver()
    events = api.call("GET", "/api/v1/users/me/events", token=squatter).json["events"]
    asked = [e for e in events if e["type"] == "password_reset_requested"]
    assert all(e["device"] != "Victim's Browser 1.0" for e in asked)


# The mailer meeting a DynamoDB fault at each of its calls: the item stays
# for the stream's retry, which then sends one link and records one request.

@pytest.mark.parametrize("fault", ["throttled", "5xx"])
def test_a_fault_at_any_call_of_the_mailer_leaves_one_send_for_the_retry(
        api, mailbox, dynamodb, monkeypatch, fault):
    from chalicelib import mailer
    state = {"calls": 0, "fail_at": None}

    def hook(params, **kwargs):
        state["calls"] += 1
        if state["calls"] - 1 == state["fail_at"]:
            return FAULTS[fault](params)
        return None
    dynamodb.meta.events.register("before-call.dynamodb", hook)
    base = time.time()
    for site in range(3):  # the owner's id, the account and its limit, the transaction
        monkeypatch.setattr("chalicelib.clock.now", lambda: base + site * 200)
        name = f"user{site}"
        api.signup(name)
        mailbox.deliver()
        service.admin.verify_email(name)
        monkeypatch.setattr("chalicelib.clock.now", lambda: base + site * 200 + 61)
        service.recovery.forgot(f"{name}@example.com")
        (item,) = stores.outbox().waiting()
        state.update(calls=0, fail_at=site)
        try:
            mailer.deliver(item)
        except Exception:  # noqa: BLE001 - the stream retries the batch
            pass
        state["fail_at"] = None
        sent = mailbox.deliver()
        links = [m for m in mailbox.to(f"{name}@example.com") if "#reset=" in m.body]
        assert len(links) == 1, (site, sent)
        link = re.search(r"#reset=(\S+)", links[0].body).group(1)
        assert reset(api, link).status == 200, site
        events = api.call("GET", "/api/v1/users/me/events",
                          token=api.token(name, NEW_PASSWORD)).json["events"]
        assert [e["type"] for e in events].count("password_reset_requested") == 1, site
