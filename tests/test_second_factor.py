"""TOTP and recovery codes: set up, confirm, disable, renew, and the second
step of a password login (mfa_required, /login/mfa), with the backoff."""
import json
import logging

import pytest

from chalicelib import backoff, totp
from chalicelib.terms import MFA_TOKEN_SECONDS
from conftest import PASSWORD

MFA = "/api/v1/users/me/mfa"
EVENTS = "/api/v1/users/me/events"


@pytest.fixture
def clock(monkeypatch):
    """The service's clock, moved by hand: ``clock.tick(seconds)``."""
    import time

    class Clock:
        now = float(int(time.time()) // 30 * 30 + 10)  # 10 s into a step

        def tick(self, seconds=30):
            self.now += seconds

    c = Clock()
    monkeypatch.setattr("chalicelib.clock.now", lambda: c.now)
    return c


class Totp:
    """A user with TOTP enabled: its token, secret and recovery codes."""

    def __init__(self, api, clock, username="alice"):
        self.api, self.clock, self.username = api, clock, username
        self.token = api.user(username)
        setup = api.call("POST", MFA + "/totp", {"password": PASSWORD}, token=self.token)
        assert setup.status == 200, setup.json
        self.secret = setup.json["secret"]
        confirmed = api.call("POST", MFA + "/totp/confirm", {"code": self.code()}, token=self.token)
        assert confirmed.status == 200, confirmed.json
        self.recovery_codes = confirmed.json["recovery_codes"]

    def code(self, offset=0):
        """The code of the current step (after moving the clock one step on,
        so that no step is used twice by accident)."""
        self.clock.tick()
        return totp.code_at(self.secret, totp.step_of(self.clock.now) + offset)

    def mfa_token(self):
        reply = self.api.login(self.username)
        assert reply.status == 403, reply.json
        return reply.json["mfa_token"]

    def second_step(self, mfa_token, **factor):
        return self.api.call("POST", "/api/v1/login/mfa", {"mfa_token": mfa_token, **factor})


@pytest.fixture
def user(api, clock):
    return Totp(api, clock)


def events(api, token, kind=None):
    found = api.call("GET", EVENTS, token=token).json["events"]
    return [e for e in found if kind is None or e["type"] == kind]


# --- setting TOTP up ----------------------------------------------------------

def test_setup_needs_the_password_and_a_wrong_one_counts_as_a_failed_login(api):
    token = api.user()
    reply = api.call("POST", MFA + "/totp", {"password": "wrong password"}, token=token)
    assert reply.status == 403 and reply.json["error"] == "invalid_credentials"
    assert [e["type"] for e in events(api, token)][:1] == ["login_failed"]


def test_setup_answers_the_secret_its_uri_and_a_qr_code(api):
    token = api.user()
    reply = api.call("POST", MFA + "/totp", {"password": PASSWORD}, token=token)
    assert reply.status == 200
    assert set(reply.json) == {"secret", "otpauth_uri", "qr_svg"}
    assert f"secret={reply.json['secret']}" in reply.json["otpauth_uri"]
    assert reply.json["qr_svg"].startswith("<svg")


def test_totp_stays_pending_until_a_code_confirms_it(api):
    token = api.user()
    api.call("POST", MFA + "/totp", {"password": PASSWORD}, token=token)
    assert api.call("GET", MFA, token=token).json["totp"] is False
    assert api.login().status == 200  # no second step yet


def test_a_new_setup_replaces_a_pending_one(api, clock):
    token = api.user()
    first = api.call("POST", MFA + "/totp", {"password": PASSWORD}, token=token).json["secret"]
    second = api.call("POST", MFA + "/totp", {"password": PASSWORD}, token=token).json["secret"]
    old_code = totp.code_at(first, totp.step_of(clock.now))
    assert api.call("POST", MFA + "/totp/confirm", {"code": old_code}, token=token).status == 401
    new_code = totp.code_at(second, totp.step_of(clock.now))
    assert api.call("POST", MFA + "/totp/confirm", {"code": new_code}, token=token).status == 200


def test_a_wrong_confirmation_code_is_401_and_leaves_it_pending(api, clock):
    token = api.user()
    secret = api.call("POST", MFA + "/totp", {"password": PASSWORD}, token=token).json["secret"]
    wrong = api.call("POST", MFA + "/totp/confirm", {"code": "000000"}, token=token)
    assert wrong.status == 401 and wrong.json["error"] == "invalid_code"
    right = totp.code_at(secret, totp.step_of(clock.now))
    assert api.call("POST", MFA + "/totp/confirm", {"code": right}, token=token).status == 200


def test_confirming_with_nothing_pending_is_409(api):
    token = api.user()
    reply = api.call("POST", MFA + "/totp/confirm", {"code": "123456"}, token=token)
    assert reply.status == 409 and reply.json["error"] == "totp_not_pending"


def test_confirmation_yields_ten_different_recovery_codes(user, api):
    assert len(set(user.recovery_codes)) == 10
    assert api.call("GET", MFA, token=user.token).json == {
        "totp": True, "passkeys": [], "recovery_codes_left": 10}


def test_setup_while_totp_is_enabled_is_409(user, api):
    reply = api.call("POST", MFA + "/totp", {"password": PASSWORD}, token=user.token)
    assert reply.status == 409 and reply.json["error"] == "totp_enabled"


def test_the_secret_and_the_codes_are_stored_only_where_the_factors_live(user, dynamodb,
                                                                         table_names):
    """The codes only as hashes; the secret in the factors item alone."""
    items = [item for name in table_names.values()
             for item in dynamodb.scan(TableName=name)["Items"]]
    text = json.dumps(items)
    assert not any(code in text or code.replace("-", "") in text for code in user.recovery_codes)
    holders = [item["pk"]["S"] for item in items if user.secret in json.dumps(item)]
    assert len(holders) == 1 and holders[0].startswith("factors#")


def test_no_log_line_holds_the_secret_or_a_code(api, clock, caplog):
    caplog.set_level(logging.INFO, logger="login-service")
    user = Totp(api, clock)
    user.second_step(user.mfa_token(), recovery_code=user.recovery_codes[0])
    lines = "\n".join(r.getMessage() for r in caplog.records)
    assert user.secret not in lines
    assert not any(code in lines for code in user.recovery_codes)


# --- the second step of a login ------------------------------------------------

def test_a_password_login_answers_mfa_required_with_a_token_and_the_methods(user, api):
    reply = api.login()
    assert reply.status == 403
    assert reply.json["error"] == "mfa_required" and reply.json["message"]
    assert reply.json["methods"] == ["totp", "recovery_code"]
    assert len(reply.json["mfa_token"]) >= 40


def test_a_wrong_password_is_still_invalid_credentials(user, api):
    reply = api.login(password="wrong password")
    assert reply.status == 401 and "mfa_token" not in reply.json


def test_a_right_code_finishes_the_login_with_method_password_totp(user, api):
    reply = user.second_step(user.mfa_token(), code=user.code())
    assert reply.status == 200 and reply.json["token_type"] == "Bearer"
    [login] = events(api, reply.json["token"], "login")[:1]
    assert login["method"] == "password+totp" and login["token_id"] == reply.json["token_id"]


def test_a_code_is_accepted_once(user):
    code = user.code()
    assert user.second_step(user.mfa_token(), code=code).status == 200
    again = user.second_step(user.mfa_token(), code=code)
    assert again.status == 401 and again.json["error"] == "invalid_code"


def test_a_step_earlier_than_one_used_is_refused(user):
    later = user.code(offset=1)
    assert user.second_step(user.mfa_token(), code=later).status == 200
    current = totp.code_at(user.secret, totp.step_of(user.clock.now))
    assert user.second_step(user.mfa_token(), code=current).status == 401


def test_a_recovery_code_works_once_and_says_so_in_the_log(user, api):
    code = user.recovery_codes[3]
    user.clock.tick(1)  # apart from the confirmation's event
    reply = user.second_step(user.mfa_token(), recovery_code=code)
    assert reply.status == 200
    kinds = [(e["type"], e["method"]) for e in events(api, reply.json["token"])[:2]]
    assert kinds == [("recovery_code_used", None), ("login", "password+recovery_code")]
    assert user.second_step(user.mfa_token(), recovery_code=code).status == 401
    assert api.call("GET", MFA, token=user.token).json["recovery_codes_left"] == 9


def test_a_recovery_code_may_be_typed_without_dashes_in_any_case(user):
    typed = user.recovery_codes[0].replace("-", "").upper()
    assert user.second_step(user.mfa_token(), recovery_code=typed).status == 200


def test_the_mfa_token_works_once(user):
    mfa_token = user.mfa_token()
    assert user.second_step(mfa_token, code=user.code()).status == 200
    reply = user.second_step(mfa_token, code=user.code())
    assert reply.status == 400 and reply.json["error"] == "invalid_mfa_token"


def test_the_mfa_token_dies_after_300_seconds(user):
    mfa_token = user.mfa_token()
    user.clock.tick(MFA_TOKEN_SECONDS)
    reply = user.second_step(mfa_token, code=user.code())
    assert reply.status == 400 and reply.json["error"] == "invalid_mfa_token"


def test_an_unknown_mfa_token_is_400(user):
    assert user.second_step("not-a-token", code=user.code()).json["error"] == "invalid_mfa_token"


def test_a_wrong_code_leaves_the_token_usable(user):
    mfa_token = user.mfa_token()
    assert user.second_step(mfa_token, code="000000").status == 401
    assert user.second_step(mfa_token, code=user.code()).status == 200


def test_the_fifth_wrong_code_ends_the_token(user):
    mfa_token = user.mfa_token()
    for _ in range(4):
        assert user.second_step(mfa_token, code="000000").status == 401
    user.clock.tick(backoff.FIRST_WAIT)  # past the lock the fourth one set
    assert user.second_step(mfa_token, code="000000").status == 401
    user.clock.tick(2 * backoff.FIRST_WAIT)
    assert user.second_step(mfa_token, code=user.code()).json["error"] == "invalid_mfa_token"


def test_wrong_codes_count_in_the_failed_login_backoff(user):
    """The password's attempt and four wrong codes are five failures: the
    lock, even for the right code."""
    mfa_token = user.mfa_token()
    for _ in range(4):
        assert user.second_step(mfa_token, code="000000").status == 401
    right = totp.code_at(user.secret, totp.step_of(user.clock.now) + 1)
    reply = user.second_step(mfa_token, code=right)
    assert reply.status == 429 and int(reply.headers["Retry-After"]) > 0


def test_a_right_password_alone_does_not_clear_the_count(user, api):
    for _ in range(4):
        assert api.login(password="wrong password").status == 401
    assert api.login().status == 403  # the fifth failure: the right password did not clear it
    assert api.login().status == 429


def test_a_completed_login_clears_the_count(user, api):
    for _ in range(3):
        api.login(password="wrong password")
    assert user.second_step(user.mfa_token(), code=user.code()).status == 200
    for _ in range(4):
        assert api.login().status == 403


def test_a_wrong_code_is_recorded_as_mfa_failed(user, api):
    user.second_step(user.mfa_token(), code="000000")
    [failed] = events(api, user.token, "mfa_failed")
    assert failed["by"] == "unknown" and failed["method"] is None


def test_the_password_step_leaves_no_failed_login_in_the_log(user, api):
    user.mfa_token()
    assert events(api, user.token, "login_failed") == []


@pytest.mark.parametrize("body,fields", [
    ({}, {"code"}),
    ({"code": "123456", "recovery_code": "abcd"}, {"code", "recovery_code"}),
    ({"code": 123456}, {"code"}),
])
def test_the_second_step_takes_exactly_one_factor(user, body, fields):
    reply = user.second_step(user.mfa_token(), **body)
    assert reply.status == 422 and set(reply.json["fields"]) == fields


# --- disabling and renewing -------------------------------------------------------

def test_disabling_needs_the_password_and_a_code(user, api):
    wrong_password = api.call("DELETE", MFA + "/totp", {"password": "wrong password",
                                                        "code": user.code()}, token=user.token)
    assert wrong_password.status == 403
    wrong_code = api.call("DELETE", MFA + "/totp", {"password": PASSWORD, "code": "000000"},
                          token=user.token)
    assert wrong_code.status == 401 and wrong_code.json["error"] == "invalid_code"
    reply = api.call("DELETE", MFA + "/totp", {"password": PASSWORD, "code": user.code()},
                     token=user.token)
    assert reply.status == 200 and reply.json == {"totp": False}
    assert api.login().status == 200
    assert api.call("GET", MFA, token=user.token).json["recovery_codes_left"] == 0


def test_a_wrong_code_when_disabling_counts_as_a_failed_login(user, api):
    user.clock.tick(1)  # apart from the confirmation's event
    api.call("DELETE", MFA + "/totp", {"password": PASSWORD, "code": "000000"}, token=user.token)
    assert [e["type"] for e in events(api, user.token)][:1] == ["login_failed"]


def test_disabling_without_totp_is_409(api):
    token = api.user()
    reply = api.call("DELETE", MFA + "/totp", {"password": PASSWORD, "code": "123456"},
                     token=token)
    assert reply.status == 409 and reply.json["error"] == "totp_not_enabled"


def test_renewing_the_recovery_codes_kills_the_old_ones(user, api):
    reply = api.call("POST", MFA + "/recovery-codes", {"password": PASSWORD, "code": user.code()},
                     token=user.token)
    assert reply.status == 200 and len(set(reply.json["recovery_codes"])) == 10
    old = user.second_step(user.mfa_token(), recovery_code=user.recovery_codes[0])
    assert old.status == 401
    new = user.second_step(user.mfa_token(), recovery_code=reply.json["recovery_codes"][0])
    assert new.status == 200


def test_each_change_is_recorded_by_the_user(user, api):
    api.call("POST", MFA + "/recovery-codes", {"password": PASSWORD, "code": user.code()},
             token=user.token)
    api.call("DELETE", MFA + "/totp", {"password": PASSWORD, "code": user.code()},
             token=user.token)
    kinds = [e["type"] for e in events(api, user.token)
             if e["type"].startswith(("mfa_", "recovery"))]
    assert kinds == ["mfa_disabled", "recovery_codes_renewed", "mfa_enabled"]
    assert all(e["by"] == "self" and e["token_id"] for e in events(api, user.token)
               if e["type"] in kinds)


def test_a_plain_login_says_its_method_and_other_events_say_none(api):
    token = api.user()
    api.call("POST", "/api/v1/logout", token=token)
    found = events(api, api.token())
    assert {(e["type"], e["method"]) for e in found} == {("login", "password"), ("logout", None)}


def test_deleting_the_account_deletes_its_factors(user, api, dynamodb, table_names):
    assert api.call("DELETE", "/api/v1/users/me", {"password": PASSWORD},
                    token=user.token).status == 200
    keys = [i["pk"]["S"] for i in dynamodb.scan(TableName=table_names["users"])["Items"]]
    assert not any(k.startswith("factors#") for k in keys)


def test_a_password_change_ends_a_second_step_begun_with_the_old_password(user, api):
    mfa_token = user.mfa_token()
    assert api.call("POST", "/api/v1/users/me/password", token=user.token, body={
        "current_password": PASSWORD, "new_password": "a brand new password"}).status == 200
    reply = user.second_step(mfa_token, code=user.code())
    assert reply.status == 400 and reply.json["error"] == "invalid_mfa_token"


def test_the_fifth_wrong_confirmation_code_drops_the_pending_secret(api, clock):
    """A stolen token cannot enable, by guessing, a secret nobody holds."""
    token = api.user()
    secret = api.call("POST", MFA + "/totp", {"password": PASSWORD}, token=token).json["secret"]
    for _ in range(5):
        assert api.call("POST", MFA + "/totp/confirm", {"code": "000000"},
                        token=token).status == 401
    right = totp.code_at(secret, totp.step_of(clock.now))
    reply = api.call("POST", MFA + "/totp/confirm", {"code": right}, token=token)
    assert reply.status == 409 and reply.json["error"] == "totp_not_pending"


def test_four_wrong_confirmation_codes_leave_it_pending(api, clock):
    token = api.user()
    secret = api.call("POST", MFA + "/totp", {"password": PASSWORD}, token=token).json["secret"]
    for _ in range(4):
        api.call("POST", MFA + "/totp/confirm", {"code": "000000"}, token=token)
    right = totp.code_at(secret, totp.step_of(clock.now))
    assert api.call("POST", MFA + "/totp/confirm", {"code": right}, token=token).status == 200


def test_two_racing_requests_with_one_code_open_one_session(user, monkeypatch,
                                                            one_call_at_a_time):
    """Both have read the factors (the last step used) and found the code
    good before either writes: the condition on the step lets one through."""
    import threading

    from chalicelib import contract
    from chalicelib.errors import ServiceError
    from chalicelib.service import factor_logins

    code, tokens = user.code(), [user.mfa_token(), user.mfa_token()]
    barrier, matching = threading.Barrier(2), totp.matching_step

    def after_both_have_checked(*args, **kwargs):
        step = matching(*args, **kwargs)
        barrier.wait(timeout=20)
        return step

    monkeypatch.setattr(totp, "matching_step", after_both_have_checked)
    statuses = []

    def one(mfa_token):
        try:
            factor_logins.second_step(mfa_token, "203.0.113.7", code=code)
            statuses.append(200)
        except ServiceError as exc:
            statuses.append(contract.status(exc))

    threads = [threading.Thread(target=one, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(statuses) == [200, 401]
