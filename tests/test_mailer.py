"""The mailer, off the request path: what each outbox item sends, the
per-address limits, one message per item however often it is delivered,
and what reaches the log (never a message's text, a link or an address)."""
import json
import time

import pytest

from chalicelib import aws, dynamo, mailer, service, stores
from chalicelib.identity import NOWHERE
from conftest import SENDER

ALICE = "alice@example.com"


@pytest.fixture
def clock_at(monkeypatch):
    start = time.time()

    def move(seconds):
        monkeypatch.setattr("chalicelib.clock.now", lambda: start + seconds)
    move(0)
    return move


@pytest.fixture
def alice(api, mailbox, clock_at):
    """alice, verified, with no link sent yet in the last hour."""
    api.signup()
    mailbox.deliver()
    service.admin.verify_email("alice")
    clock_at(3601)
    return ALICE


@pytest.fixture
def calls(monkeypatch):
    """The DynamoDB calls made from now on: (operation, tables)."""
    made, call = [], dynamo.call

    def counted(operation, **kwargs):
        made.append((operation, tuple(dynamo._tables_named(kwargs))))
        return call(operation, **kwargs)
    monkeypatch.setattr(dynamo, "call", counted)
    return made


def forgot(address=ALICE):
    service.recovery.forgot(address, NOWHERE)


def test_forgot_costs_one_write_whoever_the_address_is(api, mailbox, alice, calls):
    api.signup("bob")  # not verified
    shapes = []
    for address in (ALICE, "bob@example.com", "nobody@example.com"):
        calls.clear()
        api.call("POST", "/api/v1/password/forgot", {"email": address})
        shapes.append(list(calls))
    assert shapes[0] == shapes[1] == shapes[2] == [
        ("put_item", ("login-service-local-mail",))]


def test_the_message_goes_from_the_sender(mailbox, alice):
    forgot()
    mailbox.deliver()
    assert mailbox.to(ALICE)[-1].source == SENDER


def test_one_link_a_minute_goes_to_an_address(mailbox, alice, clock_at):
    forgot()
    clock_at(3601 + 59)
    forgot()
    assert len(mailbox.deliver()) == 1


def test_the_next_minute_another_link_goes(mailbox, alice, clock_at):
    forgot()
    mailbox.deliver()
    clock_at(3601 + 60)
    forgot()
    assert len(mailbox.deliver()) == 1


def test_five_links_an_hour_go_to_an_address(mailbox, alice, clock_at):
    sent = 0
    for minute in range(7):
        clock_at(3601 + 61 * minute)
        forgot()
        sent += len(mailbox.deliver())
    assert sent == 5


def test_an_hour_after_the_first_another_goes(mailbox, alice, clock_at):
    for minute in range(5):
        clock_at(3601 + 61 * minute)
        forgot()
        mailbox.deliver()
    clock_at(3601 + 3601)
    forgot()
    assert len(mailbox.deliver()) == 1


def test_the_limit_counts_whatever_asks(api, mailbox, alice, clock_at):
    token = api.token()
    api.call("POST", "/api/v1/users/me/email", token=token,
             body={"password": "correct horse battery", "new_email": "alice@new.example"})
    forgot()
    # A verification link to a new address and a reset link to the old: two
    # addresses, one each.
    assert sorted(m.to for m in mailbox.deliver()) == [ALICE, "alice@new.example"]


def test_a_request_over_the_limit_keeps_the_older_link_alive(api, mailbox, alice, clock_at):
    forgot()
    link = mailbox.link(ALICE, "reset")
    forgot()  # within the minute: nothing is sent, no new link
    assert mailbox.deliver() == []
    reply = api.call("POST", "/api/v1/password/reset",
                     {"token": link, "new_password": "a brand new passphrase"})
    assert reply.status == 200


def test_notices_are_not_limited(api, mailbox, alice):
    token = api.token()
    forgot()
    for new in ("first new passphrase", "second new passphrase"):
        api.call("POST", "/api/v1/users/me/password", token=token,
                 body={"current_password": "correct horse battery" if new.startswith("first")
                       else "first new passphrase", "new_password": new})
    assert len(mailbox.deliver()) == 3


def test_an_item_delivered_twice_sends_once(mailbox, alice):
    forgot()
    item = stores.outbox().waiting()[0]
    record = {"eventName": "INSERT", "dynamodb": {"NewImage": item}}
    before = len(mailbox.received())
    assert len(mailer.handle({"Records": [record, record]})) == 1
    assert len(mailbox.received()) == before + 1


def test_other_stream_records_are_ignored(mailbox, alice):
    forgot()
    item = stores.outbox().waiting()[0]
    assert mailer.handle({"Records": [{"eventName": "REMOVE",
                                       "dynamodb": {"OldImage": item}}]}) == []


def test_a_delivered_item_leaves_the_outbox(mailbox, alice):
    forgot()
    mailbox.deliver()
    assert stores.outbox().waiting() == []


def test_a_refused_message_is_logged_without_the_address_or_the_text(mailbox, alice, caplog):
    aws.sesv2().delete_email_identity(EmailIdentity=SENDER)  # SES now refuses the sender
    forgot()
    assert mailbox.deliver() == []
    lines = [json.loads(r.getMessage()) for r in caplog.records]
    refused = [line for line in lines if line["event"] == "email_not_sent"]
    assert refused and refused[0]["code"] == "MessageRejected"
    assert ALICE not in caplog.text


def test_the_log_never_holds_a_link_or_an_address(api, mailbox, alice, caplog):
    forgot()
    link = mailbox.link(ALICE, "reset")
    api.call("POST", "/api/v1/password/reset",
             {"token": link, "new_password": "a brand new passphrase"})
    mailbox.deliver()
    assert link.split(".")[1] not in caplog.text
    assert "#reset" not in caplog.text and ALICE not in caplog.text


def test_only_a_hash_of_the_link_is_stored(mailbox, alice, dynamodb, table_names):
    forgot()
    secret = mailbox.link(ALICE, "reset").split(".")[1]
    stored = json.dumps(dynamodb.scan(TableName=table_names["users"])["Items"])
    assert secret not in stored


def test_a_link_holds_at_least_128_random_bits(mailbox, alice):
    forgot()
    secret = mailbox.link(ALICE, "reset").split(".")[1]
    assert len(secret) * 6 >= 256


def test_an_internationalised_domain_is_sent_in_its_ascii_form(api, mailbox, clock_at):
    api.signup("zoe", email="zoe@bücher.example")
    mailbox.deliver()
    assert mailbox.to("zoe@xn--bcher-kva.example")


def test_a_deleted_accounts_mail_is_dropped(api, mailbox):
    token = api.user()
    api.call("DELETE", "/api/v1/users/me", token=token, body={"password": "correct horse battery"})
    assert mailbox.deliver() == []
    assert stores.outbox().waiting() == []


def test_a_second_factor_turned_on_is_noticed(api, mailbox, alice):
    from chalicelib import totp, clock

    token = api.token()
    secret = api.call("POST", "/api/v1/users/me/mfa/totp", {"password": "correct horse battery"},
                      token=token).json["secret"]
    api.call("POST", "/api/v1/users/me/mfa/totp/confirm",
             {"code": totp.code_at(secret, totp.step_of(clock.now()))}, token=token)
    assert "second factor was turned on" in mailbox.deliver()[-1].subject


def test_an_operators_reset_of_the_second_factors_is_noticed(api, mailbox, alice):
    from chalicelib import totp, clock
    from chalicelib.service import factors

    token = api.token()
    secret = api.call("POST", "/api/v1/users/me/mfa/totp", {"password": "correct horse battery"},
                      token=token).json["secret"]
    api.call("POST", "/api/v1/users/me/mfa/totp/confirm",
             {"code": totp.code_at(secret, totp.step_of(clock.now()))}, token=token)
    mailbox.deliver()
    assert factors.reset("alice")
    assert "second factor was turned off" in mailbox.deliver()[-1].subject


def ses_answers(monkeypatch, *codes):
    """SES answers each of ``codes`` (an error code) in turn, then as usual."""
    from botocore.exceptions import ClientError

    client, answers = aws.sesv2(), list(codes)
    send = client.send_email

    def answered(**kwargs):
        if answers:
            raise ClientError({"Error": {"Code": answers.pop(0), "Message": "no"}}, "SendEmail")
        return send(**kwargs)
    monkeypatch.setattr(client, "send_email", answered)


def test_a_message_ses_throttled_is_tried_again(mailbox, alice, monkeypatch):
    ses_answers(monkeypatch, "TooManyRequestsException")
    forgot()
    assert mailbox.deliver() == []
    assert [m.to for m in mailbox.deliver()] == [ALICE]


def test_a_message_ses_keeps_throttling_is_tried_three_times_in_all(mailbox, alice, monkeypatch):
    ses_answers(monkeypatch, *["TooManyRequestsException"] * 3)
    forgot()
    for _ in range(3):
        assert mailbox.deliver() == []
    assert stores.outbox().waiting() == []


def test_a_message_ses_refused_for_good_is_not_tried_again(mailbox, alice, monkeypatch):
    ses_answers(monkeypatch, "MessageRejected")
    forgot()
    assert mailbox.deliver() == []
    assert stores.outbox().waiting() == []


def test_a_message_tried_again_is_one_request_in_the_owners_log(api, mailbox, alice,
                                                              monkeypatch):
    ses_answers(monkeypatch, "TooManyRequestsException")
    forgot()
    mailbox.deliver()
    mailbox.deliver()
    events = api.call("GET", "/api/v1/users/me/events", token=api.token()).json["events"]
    assert [e["type"] for e in events].count("password_reset_requested") == 1


def test_a_message_ses_did_not_take_is_not_counted_against_the_address(mailbox, alice,
                                                                     monkeypatch):
    ses_answers(monkeypatch, "MessageRejected")
    forgot()
    mailbox.deliver()
    forgot()  # within the minute: the refused one did not count
    assert [m.to for m in mailbox.deliver()] == [ALICE]
