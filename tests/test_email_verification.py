"""Proving an address: the link mailed at signup and on request, and the
change of address, which takes effect only through a link to the new one."""

import pytest

from chalicelib import service
from conftest import PASSWORD, PUBLIC_URL

VERIFY = "/api/v1/email/verify"
RESEND = "/api/v1/users/me/email/verification"
CHANGE = "/api/v1/users/me/email"




def events_of(api, token):
    return [e["type"] for e in api.call("GET", "/api/v1/users/me/events", token=token).json["events"]]


def test_a_new_user_is_not_verified(api):
    assert api.signup().json["email_verified"] is False


def test_signup_mails_a_verification_link_to_the_address(api, mailbox):
    api.signup()
    sent = mailbox.deliver()
    assert [m.to for m in sent] == ["alice@example.com"]
    assert f"{PUBLIC_URL}#verify=" in sent[0].text


def test_the_link_verifies_the_address(api, mailbox):
    api.signup()
    reply = api.call("POST", VERIFY, {"token": mailbox.link("alice@example.com", "verify")})
    assert reply.status == 200
    assert reply.json["email_verified"] is True
    assert reply.json["email"] == "alice@example.com"


def test_users_me_shows_the_address_verified(api, mailbox):
    token = api.user()
    api.call("POST", VERIFY, {"token": mailbox.link("alice@example.com", "verify")})
    assert api.call("GET", "/api/v1/users/me", token=token).json["email_verified"] is True


def test_a_link_works_once(api, mailbox):
    api.signup()
    link = mailbox.link("alice@example.com", "verify")
    assert api.call("POST", VERIFY, {"token": link}).status == 200
    reply = api.call("POST", VERIFY, {"token": link})
    assert (reply.status, reply.json["error"]) == (400, "invalid_link")


def test_a_link_dies_after_its_lifetime(api, mailbox, monkeypatch, later):
    monkeypatch.setenv("VERIFY_LINK_SECONDS", "60")
    api.signup()
    link = mailbox.link("alice@example.com", "verify")
    later(61)
    assert api.call("POST", VERIFY, {"token": link}).json["error"] == "invalid_link"


def test_a_newer_link_kills_the_older_one(api, mailbox, later):
    token = api.user()
    first = mailbox.link("alice@example.com", "verify")
    later(61)  # past the one-a-minute limit
    assert api.call("POST", RESEND, token=token).status == 202
    second = mailbox.link("alice@example.com", "verify")
    assert first != second
    assert api.call("POST", VERIFY, {"token": first}).json["error"] == "invalid_link"
    assert api.call("POST", VERIFY, {"token": second}).status == 200


@pytest.mark.parametrize("link", ["", "x" * 200, "not-a-link",
                                  "00000000-0000-4000-8000-000000000000." + "A" * 43,
                                  "00000000-0000-4000-8000-000000000000." + "A" * 44])
def test_an_unknown_or_malformed_link_is_one_answer(api, link):
    reply = api.call("POST", VERIFY, {"token": link})
    if link == "":
        assert reply.status == 422
    else:
        assert (reply.status, reply.json["error"]) == (400, "invalid_link")


def test_a_reset_link_does_not_verify(api, mailbox, later):
    api.signup()
    mailbox.deliver()
    service.admin.verify_email("alice")
    later(61)  # past the one-a-minute limit
    service.recovery.forgot("alice@example.com")
    reset = mailbox.link("alice@example.com", "reset")
    assert api.call("POST", VERIFY, {"token": reset}).json["error"] == "invalid_link"


def test_asking_again_when_verified_is_a_conflict(api, mailbox):
    token = api.user()
    api.call("POST", VERIFY, {"token": mailbox.link("alice@example.com", "verify")})
    reply = api.call("POST", RESEND, token=token)
    assert (reply.status, reply.json["error"]) == (409, "already_verified")


def test_asking_again_answers_sent(api):
    token = api.user()
    reply = api.call("POST", RESEND, token=token)
    assert (reply.status, reply.json) == (202, {"sent": True})


def test_the_log_records_the_link_sent_and_the_address_verified(api, mailbox):
    token = api.user()
    api.call("POST", VERIFY, {"token": mailbox.link("alice@example.com", "verify")})
    assert events_of(api, token)[:2] == ["email_verified", "email_verification_sent"]


def test_the_verification_event_carries_the_requests_origin(api, mailbox):
    api.call("POST", "/api/v1/signup", {"username": "alice", "email": "alice@example.com",
                                        "password": PASSWORD},
             headers={"User-Agent": "Signup Browser"})
    mailbox.deliver()
    token = api.token()
    sent = [e for e in api.call("GET", "/api/v1/users/me/events", token=token).json["events"]
            if e["type"] == "email_verification_sent"]
    assert sent[0]["device"] == "Signup Browser" and sent[0]["by"] == "self"


# A change of address.

def change(api, token, new_email="alice@new.example", password=PASSWORD):
    return api.call("POST", CHANGE, {"password": password, "new_email": new_email}, token=token)


def verified_alice(api, mailbox):
    token = api.user()
    api.call("POST", VERIFY, {"token": mailbox.link("alice@example.com", "verify")})
    return token


def test_a_change_answers_sent_and_changes_nothing_yet(api, mailbox):
    token = verified_alice(api, mailbox)
    reply = change(api, token)
    assert (reply.status, reply.json) == (202, {"sent": True})
    me = api.call("GET", "/api/v1/users/me", token=token).json
    assert (me["email"], me["email_verified"]) == ("alice@example.com", True)


def test_a_change_mails_a_link_to_the_new_address(api, mailbox):
    token = verified_alice(api, mailbox)
    change(api, token)
    assert mailbox.link("alice@new.example", "verify")


def test_the_new_addresss_link_changes_the_address_verified(api, mailbox):
    token = verified_alice(api, mailbox)
    change(api, token)
    reply = api.call("POST", VERIFY, {"token": mailbox.link("alice@new.example", "verify")})
    assert (reply.json["email"], reply.json["email_verified"]) == ("alice@new.example", True)
    assert api.call("GET", "/api/v1/users/me", token=token).json["email"] == "alice@new.example"


def test_a_changed_address_is_noticed_at_the_old_one(api, mailbox):
    token = verified_alice(api, mailbox)
    change(api, token)
    api.call("POST", VERIFY, {"token": mailbox.link("alice@new.example", "verify")})
    mailbox.deliver()
    assert "address was changed" in mailbox.to("alice@example.com")[-1].subject


def test_a_changed_address_frees_the_old_one_and_takes_the_new_one(api, mailbox):
    token = verified_alice(api, mailbox)
    change(api, token)
    api.call("POST", VERIFY, {"token": mailbox.link("alice@new.example", "verify")})
    assert api.signup("bob", email="alice@example.com").status == 201
    assert api.signup("carol", email="ALICE@new.example").json["error"] == "email_taken"


def test_a_change_records_the_change_in_the_log(api, mailbox):
    token = verified_alice(api, mailbox)
    change(api, token)
    api.call("POST", VERIFY, {"token": mailbox.link("alice@new.example", "verify")})
    assert events_of(api, token)[:2] == ["email_verified", "email_changed"]


def test_a_change_with_a_wrong_password_is_refused_and_counted(api, mailbox):
    token = api.user()
    for _ in range(5):
        assert change(api, token, password="wrong password").status == 403
    assert change(api, token).status == 429


def test_a_change_to_another_accounts_address_is_a_conflict(api):
    token = api.user()
    api.signup("bob")
    reply = change(api, token, new_email="BOB@example.com")
    assert (reply.status, reply.json["error"]) == (409, "email_taken")


def test_a_change_to_a_taken_address_still_clears_the_failed_count(api):
    token = api.user()
    api.signup("bob")
    for _ in range(4):
        change(api, token, password="wrong password")
    change(api, token, new_email="bob@example.com")
    for _ in range(4):
        assert change(api, token, password="wrong password").status == 403


def test_an_address_taken_before_the_link_is_used_is_a_conflict(api, mailbox):
    token = verified_alice(api, mailbox)
    change(api, token)
    link = mailbox.link("alice@new.example", "verify")
    assert api.signup("bob", email="alice@new.example").status == 201
    reply = api.call("POST", VERIFY, {"token": link})
    assert (reply.status, reply.json["error"]) == (409, "email_taken")
    assert api.call("GET", "/api/v1/users/me", token=token).json["email"] == "alice@example.com"


def test_a_malformed_new_address_is_422(api):
    token = api.user()
    reply = change(api, token, new_email="not an address")
    assert (reply.status, list(reply.json["fields"])) == (422, ["new_email"])


def test_a_change_of_case_only_keeps_one_guard(api, mailbox, later):
    token = verified_alice(api, mailbox)
    later(61)  # the same address: past the one-a-minute limit
    change(api, token, new_email="Alice@Example.com")
    reply = api.call("POST", VERIFY, {"token": mailbox.link("Alice@Example.com", "verify")})
    assert reply.json["email"] == "Alice@Example.com"
    assert api.signup("bob", email="alice@example.com").json["error"] == "email_taken"
