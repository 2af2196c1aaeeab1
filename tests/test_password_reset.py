"""A way back in: a reset link asked for by address, and the reset itself."""

import pytest

from chalicelib import service
from conftest import PASSWORD, PUBLIC_URL

FORGOT = "/api/v1/password/forgot"
RESET = "/api/v1/password/reset"
NEW_PASSWORD = "a brand new passphrase"




@pytest.fixture
def verified(api, mailbox, later):
    """alice, her address verified, the signup's mail a minute old; her token."""
    token = api.user()
    mailbox.deliver()
    service.admin.verify_email("alice")
    later(61)
    return token


def forgot(api, email="alice@example.com", **headers):
    return api.call("POST", FORGOT, {"email": email}, headers=headers)


def reset(api, link, password=NEW_PASSWORD):
    return api.call("POST", RESET, {"token": link, "new_password": password})


def test_forgot_answers_sent(api, verified):
    reply = forgot(api)
    assert (reply.status, reply.json) == (202, {"sent": True})


@pytest.mark.parametrize("email", ["nobody@example.com", "alice@example.com"])
def test_forgot_answers_the_same_for_an_account_and_for_nobody(api, verified, email):
    assert (forgot(api, email).status, forgot(api, email).json) == (202, {"sent": True})


def test_forgot_mails_a_reset_link_to_a_verified_address(api, mailbox, verified):
    forgot(api, "ALICE@example.com")
    sent = mailbox.deliver()
    assert [m.to for m in sent] == ["alice@example.com"]
    assert PUBLIC_URL + "#reset=" in sent[0].text


def test_forgot_mails_nothing_to_an_unverified_address(api, mailbox, later):
    api.user()
    mailbox.deliver()
    later(61)
    forgot(api)
    assert mailbox.deliver() == []


def test_forgot_mails_nothing_for_nobodys_address(api, mailbox):
    forgot(api, "nobody@example.com")
    assert mailbox.deliver() == []
    assert mailbox.received() == []


def test_a_malformed_address_is_422(api):
    reply = forgot(api, "not an address")
    assert (reply.status, list(reply.json["fields"])) == (422, ["email"])


def test_a_request_shows_in_the_owners_log_with_its_origin(api, mailbox, verified):
    api.call("POST", FORGOT, {"email": "alice@example.com"},
             headers={"User-Agent": "Stranger Browser"})
    mailbox.deliver()
    event = api.call("GET", "/api/v1/users/me/events", token=verified).json["events"][0]
    assert (event["type"], event["by"], event["device"]) == ("password_reset_requested",
                                                             "unknown", "Stranger Browser")
    assert event["ip"]


def test_a_request_for_an_unverified_address_shows_in_its_log_too(api, mailbox, later):
    token = api.user()
    mailbox.deliver()
    forgot(api)
    mailbox.deliver()
    types = [e["type"] for e in api.call("GET", "/api/v1/users/me/events",
                                         token=token).json["events"]]
    assert types[0] == "password_reset_requested"


def test_reset_sets_the_password(api, mailbox, verified):
    forgot(api)
    assert reset(api, mailbox.link("alice@example.com", "reset")).status == 200
    assert api.login(password=NEW_PASSWORD).status == 200
    assert api.login(password=PASSWORD).status == 401


def test_reset_revokes_every_token(api, mailbox, verified):
    other = api.token()
    forgot(api)
    reply = reset(api, mailbox.link("alice@example.com", "reset"))
    assert reply.json == {"revoked": 2}
    for token in (verified, other):
        assert api.call("GET", "/api/v1/users/me", token=token).status == 403


def test_reset_clears_the_failed_count(api, mailbox, verified):
    for _ in range(5):
        api.login(password="wrong password")
    assert api.login().status == 429
    forgot(api)
    reset(api, mailbox.link("alice@example.com", "reset"))
    assert api.login(password=NEW_PASSWORD).status == 200


def test_a_reset_link_works_once(api, mailbox, verified):
    forgot(api)
    link = mailbox.link("alice@example.com", "reset")
    assert reset(api, link).status == 200
    reply = reset(api, link, "yet another passphrase")
    assert (reply.status, reply.json["error"]) == (400, "invalid_link")


def test_a_reset_link_dies_after_its_lifetime(api, mailbox, verified, later, monkeypatch):
    monkeypatch.setenv("RESET_LINK_SECONDS", "60")
    forgot(api)
    link = mailbox.link("alice@example.com", "reset")
    later(61 + 61)
    assert reset(api, link).json["error"] == "invalid_link"


def test_a_newer_reset_link_kills_the_older_one(api, mailbox, verified, later):
    forgot(api)
    first = mailbox.link("alice@example.com", "reset")
    later(61 + 61)
    forgot(api)
    second = mailbox.link("alice@example.com", "reset")
    assert reset(api, first).json["error"] == "invalid_link"
    assert reset(api, second).status == 200


def test_a_reset_checks_the_password_rules(api, mailbox, verified):
    forgot(api)
    reply = reset(api, mailbox.link("alice@example.com", "reset"), "short")
    assert (reply.status, list(reply.json["fields"])) == (422, ["new_password"])


def test_a_failed_reset_leaves_the_link_usable(api, mailbox, verified):
    forgot(api)
    link = mailbox.link("alice@example.com", "reset")
    reset(api, link, "password")  # a common password: 422
    assert reset(api, link).status == 200


def test_a_verification_link_does_not_reset(api, mailbox):
    api.signup()
    link = mailbox.link("alice@example.com", "verify")
    assert reset(api, link).json["error"] == "invalid_link"


def test_a_reset_is_noticed_at_the_address(api, mailbox, verified):
    forgot(api)
    reset(api, mailbox.link("alice@example.com", "reset"))
    mailbox.deliver()
    assert "password was reset" in mailbox.to("alice@example.com")[-1].subject


def test_a_reset_is_recorded(api, mailbox, verified):
    forgot(api)
    reset(api, mailbox.link("alice@example.com", "reset"))
    token = api.token(password=NEW_PASSWORD)
    types = [e["type"] for e in api.call("GET", "/api/v1/users/me/events",
                                         token=token).json["events"]]
    assert types[1:3] == ["password_reset", "password_reset_requested"]


def test_a_password_change_is_noticed_at_a_verified_address(api, mailbox, verified):
    api.call("POST", "/api/v1/users/me/password", token=verified,
             body={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    mailbox.deliver()
    assert "password was changed" in mailbox.to("alice@example.com")[-1].subject


def test_a_password_change_sends_nothing_to_an_unverified_address(api, mailbox):
    token = api.user()
    mailbox.deliver()
    api.call("POST", "/api/v1/users/me/password", token=token,
             body={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert mailbox.deliver() == []


def test_a_deleted_account_leaves_no_link_behind(api, mailbox, verified, dynamodb, table_names):
    forgot(api)
    mailbox.link("alice@example.com", "reset")
    api.call("DELETE", "/api/v1/users/me", token=verified, body={"password": PASSWORD})
    keys = [i["pk"]["S"] for i in dynamodb.scan(TableName=table_names["users"])["Items"]]
    assert not [k for k in keys if k.startswith("links#")]


def test_a_password_change_landing_while_a_reset_works_kills_its_link(api, mailbox, verified,
                                                                      monkeypatch):
    """The owner changes the password between the reset's read of the login
    and its fence: the change kills every outstanding link, so the reset is
    refused as a used link and the owner's new password stands."""
    from chalicelib.login_store import LoginStore

    forgot(api)
    link = mailbox.link("alice@example.com", "reset")
    fence, changed = LoginStore.fence, []

    def change_first(self, login, now, fence_id):
        if not changed:
            changed.append("under way")  # the change's own fence goes straight through
            changed[0] = api.call("POST", "/api/v1/users/me/password", token=verified, body={
                "current_password": PASSWORD, "new_password": "changed meanwhile"}).status
        return fence(self, login, now, fence_id)
    monkeypatch.setattr(LoginStore, "fence", change_first)
    assert reset(api, link).json["error"] == "invalid_link"
    assert changed == [200]
    assert api.login(password="changed meanwhile").status == 200


def test_a_deleted_account_leaves_no_trace_of_its_address(api, mailbox, verified, dynamodb,
                                                          table_names):
    forgot(api)
    mailbox.deliver()
    api.call("DELETE", "/api/v1/users/me", token=verified, body={"password": PASSWORD})
    stored = str(dynamodb.scan(TableName=table_names["users"])["Items"])
    assert "alice@example.com" not in stored


def test_a_reset_racing_one_in_flight_is_refused_at_once(api, mailbox, verified, monkeypatch):
    """The link is claimed before its password is hashed: a second request
    with it, while the first works, is a 400 at once, and never queues
    behind the password's fence (where, on a busy machine, it would end in
    a 503)."""
    from chalicelib.login_store import LoginStore

    forgot(api)
    link = mailbox.link("alice@example.com", "reset")
    fence, second, fences = LoginStore.fence, [], []

    def racer_first(self, login, now, fence_id):
        fences.append(fence_id)
        if not second:
            second.append("under way")
            second[0] = reset(api, link, "the racer's passphrase")
        return fence(self, login, now, fence_id)
    monkeypatch.setattr(LoginStore, "fence", racer_first)
    assert reset(api, link).status == 200
    assert (second[0].status, second[0].json["error"]) == (400, "invalid_link")
    assert len(fences) == 1  # the racer never reached the fence
    assert api.login(password=NEW_PASSWORD).status == 200
