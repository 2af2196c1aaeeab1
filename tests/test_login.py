"""POST /api/v1/login"""
import time

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from chalicelib import clock, passwords, schemas
from conftest import PASSWORD, PROPERTY

LOGIN_FIELDS = {"token", "token_type", "token_id", "expires_at", "expires_in"}


def test_login_returns_exactly_the_contract_fields(api):
    api.signup()
    reply = api.login()
    assert reply.status == 200
    assert set(reply.json) == LOGIN_FIELDS
    assert reply.json["token_type"] == "Bearer"
    assert reply.json["expires_in"] == 172800
    assert reply.json["expires_at"].endswith("Z")


def test_login_accepts_any_case_of_the_username(api):
    api.signup("Alice")
    assert api.login("aLICE").status == 200


def test_token_lifetime_comes_from_configuration(api, monkeypatch):
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "3600")
    api.signup()
    assert api.login().json["expires_in"] == 3600


def test_wrong_password_and_unknown_user_get_the_same_401(api):
    api.signup()
    wrong = api.login(password="not the password")
    unknown = api.login(username="nobody")
    malformed = api.login(username="no body!")
    assert wrong.status == unknown.status == malformed.status == 401
    assert wrong.json == unknown.json == malformed.json
    assert wrong.json["error"] == "invalid_credentials"


def test_unknown_user_costs_one_bcrypt_check_like_a_wrong_password(api, monkeypatch):
    api.signup()
    checks = []
    real = passwords.bcrypt.checkpw
    monkeypatch.setattr(passwords.bcrypt, "checkpw", lambda *a: checks.append(1) or real(*a))
    for username in ("alice", "nobody", "bad name"):
        api.login(username=username, password="not the password")
    assert checks == [1, 1, 1]


@pytest.mark.parametrize("body,field", [
    ({"password": PASSWORD}, "username"),
    ({"username": "alice"}, "password"),
    ({"username": "", "password": PASSWORD}, "username"),
    ({"username": "alice", "password": ""}, "password"),
    ({"username": ["alice"], "password": PASSWORD}, "username"),
    ({"username": "alice", "password": 12345678}, "password"),
    ({"username": "alice", "password": PASSWORD, "description": "d" * 201}, "description"),
    ({"username": "alice", "password": PASSWORD, "description": 7}, "description"),
])
def test_missing_empty_or_non_string_fields_are_422(api, body, field):
    reply = api.call("POST", "/api/v1/login", body)
    assert reply.status == 422
    assert list(reply.json["fields"]) == [field]


def test_every_character_of_a_long_password_counts(api):
    long = "p" * 1024
    api.signup(password=long)
    # Same first 72 bytes (and far more): still a different password.
    assert api.login(password="p" * 1023 + "q").status == 401
    assert api.login(password="p" * 1023).status == 401
    assert api.login(password=long).status == 200


def test_a_password_over_72_bytes_at_login_is_401_not_500(api):
    api.signup()
    assert api.login(password="é" * 1000).status == 401


def test_description_defaults_to_the_user_agent_cut_to_200(api):
    token = api.user()
    agent = "A" * 250
    api.call("POST", "/api/v1/login", {"username": "alice", "password": PASSWORD},
             headers={"User-Agent": agent})
    listed = api.call("GET", "/api/v1/tokens", token=token).json["tokens"]
    assert listed[0]["description"] == "A" * 200
    assert listed[1]["description"] is None


def test_an_explicit_description_wins_over_the_user_agent(api):
    api.signup()
    token = api.token(description="work laptop")
    api.call("GET", "/api/v1/tokens", token=token)
    listed = api.call("GET", "/api/v1/tokens", token=token).json["tokens"]
    assert listed[0]["description"] == "work laptop"
    assert listed[0]["ip"] == "127.0.0.1"


def test_tokens_of_two_logins_are_different_sessions(api):
    api.signup()
    first, second = api.login().json, api.login().json
    assert first["token_id"] != second["token_id"]
    assert first["token"] != second["token"]


def test_login_works_again_after_time_passes(api, monkeypatch):
    api.signup()
    start = time.time()
    monkeypatch.setattr("chalicelib.clock.now", lambda: start + 3600)
    token = api.token()
    assert api.call("GET", "/api/v1/users/me", token=token).status == 200


@pytest.fixture
def bcrypt_runs(monkeypatch):
    """Every bcrypt run from now on, in a fresh passwords module (nothing it
    might have cached in an earlier test), as a fresh instance has it."""
    import importlib

    import bcrypt

    importlib.reload(passwords)
    runs = []
    for name in ("hashpw", "checkpw", "kdf"):
        def spy(*args, _real=getattr(bcrypt, name), _name=name, **kwargs):
            runs.append(_name)
            return _real(*args, **kwargs)
        monkeypatch.setattr(bcrypt, name, spy)
    return runs


@pytest.mark.parametrize("username,password", [
    ("nobody", "not the password"), ("alice", "not the password"), ("bad name", "not the password"),
    ("alice", PASSWORD)])
def test_every_login_even_the_first_of_an_instance_is_exactly_one_bcrypt_run(
        api, bcrypt_runs, username, password):
    api.signup()
    bcrypt_runs.clear()
    api.login(username=username, password=password)
    assert bcrypt_runs == ["checkpw"]


def test_login_gives_the_expiry_without_use_and_signs_the_cap_into_the_token(api, monkeypatch):
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "3600")
    monkeypatch.setenv("TOKEN_MAX_LIFETIME_SECONDS", "86400")
    api.signup()
    reply = api.login().json
    claims = jwt.decode(reply["token"], options={"verify_signature": False})
    assert reply["expires_in"] == 3600
    assert reply["expires_at"] == clock.iso(claims["iat"] + 3600)
    assert claims["exp"] == claims["iat"] + 86400


def test_login_with_a_cap_equal_to_the_lifetime_reports_the_cap(api, monkeypatch):
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "3600")
    monkeypatch.setenv("TOKEN_MAX_LIFETIME_SECONDS", "3600")
    api.signup()
    reply = api.login().json
    claims = jwt.decode(reply["token"], options={"verify_signature": False})
    assert reply["expires_in"] == 3600
    assert reply["expires_at"] == clock.iso(claims["exp"])


def test_a_one_second_lifetime_logs_in(api, monkeypatch):
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "1")
    api.signup()
    reply = api.login()
    assert reply.status == 200 and reply.json["expires_in"] == 1


def test_a_three_second_token_is_denied_after_three_seconds_without_use(api, monkeypatch):
    monkeypatch.setenv("TOKEN_LIFETIME_SECONDS", "3")
    api.signup()
    start = time.time()
    monkeypatch.setattr("chalicelib.clock.now", lambda: start)
    token = api.token()
    monkeypatch.setattr("chalicelib.clock.now", lambda: start + 3)
    assert api.call("GET", "/api/v1/users/me", token=token).status == 403


# A hash of another cost is replaced at the next login.

def stored_cost(username="alice"):
    from chalicelib import service

    return service.admin.find_user(username).password_hash.split("$")[2]


@pytest.fixture
def hashed_at_another_cost(api, monkeypatch):
    """alice, hashed at cost 5 (e.g. by manage.py create-admin at another
    setting), while the service runs at cost 4."""
    monkeypatch.setenv("BCRYPT_ROUNDS", "5")
    api.signup("alice")
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    assert stored_cost() == "05"


def test_a_login_rehashes_a_password_of_another_cost_at_the_configured_one(
        api, hashed_at_another_cost):
    assert api.login().status == 200
    assert stored_cost() == "04"
    assert api.login().status == 200


def test_after_that_login_a_wrong_password_costs_what_an_unknown_name_costs(
        api, hashed_at_another_cost, monkeypatch):
    api.login()
    costs = []
    checkpw = passwords.bcrypt.checkpw

    def recorded(password, hashed):
        costs.append(hashed.split(b"$")[2])
        return checkpw(password, hashed)

    monkeypatch.setattr(passwords.bcrypt, "checkpw", recorded)
    assert api.login("alice", "a wrong password").status == 401
    assert api.login("nobody", "a wrong password").status == 401
    assert costs == [b"04", b"04"]


def test_a_failed_login_leaves_a_hash_of_another_cost_as_it_is(api, hashed_at_another_cost):
    assert api.login("alice", "a wrong password").status == 401
    assert stored_cost() == "05"


# Properties, over generated input.

@PROPERTY
@given(st.dictionaries(st.text(max_size=10), st.none() | st.integers() | st.text(max_size=10),
                       max_size=5))
def test_login_input_never_raises_anything_but_a_validation_error(environment, data):
    try:
        schemas.LoginIn().load(data)
    except ValidationError:
        pass


@pytest.mark.parametrize("description", ["\u202egpj.exe", "laptop\u0000", "\u001b[2J",
                                         "tab\there", "zero\u200bwidth", "line\u2028break",
                                         "c1\u009b", "\u3164\u3164", "grapheme\u034fjoiner",
                                         "tag\U000e0080", "\uffa0"],
                         ids=["bidi override", "NUL", "escape", "tab", "zero-width space",
                              "line separator", "C1 control", "Hangul filler",
                              "combining grapheme joiner", "unassigned tag", "halfwidth filler"])
def test_a_description_with_a_hidden_or_disguising_character_is_422(api, description):
    api.signup()
    reply = api.login(description=description)
    assert reply.status == 422 and set(reply.json["fields"]) == {"description"}


def test_a_description_with_an_emoji_sequence_is_accepted(api):
    api.signup()
    assert api.login(description="Dad's \U0001F468\u200d\U0001F467 phone").status == 200


@pytest.mark.parametrize("description", ["\u0644\u067e\u200c\u062a\u0627\u067e \u0645\u0646",
                                         "\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E"
                                         "\U000E0067\U000E007F \u2764\ufe0f"],
                         ids=["Persian with a zero-width non-joiner", "emoji tag sequence"])
def test_a_description_in_a_script_or_emoji_that_needs_an_invisible_character_is_accepted(
        api, description):
    """Persian writes "laptop" with a zero-width non-joiner, and the flags of
    England, Scotland and Wales are tag sequences: none of them hides text."""
    api.signup()
    assert api.login(description=description).status == 200


def test_a_user_agent_is_stored_without_hidden_characters(api):
    token = api.user()
    api.call("POST", "/api/v1/login", body={"username": "alice", "password": PASSWORD},
             headers={"User-Agent": "\x1b[31mEvil\x9b \u202eBrowser"})
    shown = {t["description"] for t in api.call("GET", "/api/v1/tokens", token=token).json["tokens"]}
    assert "[31mEvil Browser" in shown
    devices = {e["device"] for e in api.call("GET", "/api/v1/users/me/events",
                                              token=token).json["events"]}
    assert "[31mEvil Browser" in devices


def test_a_user_agent_cut_inside_a_flag_keeps_none_of_its_tags(api):
    """The cut to the description's length may fall inside a flag's tag
    sequence: the tags left without their end would hide text, so they go."""
    token = api.user()
    flag = "\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F"
    api.call("POST", "/api/v1/login", body={"username": "alice", "password": PASSWORD},
             headers={"User-Agent": "a" * 197 + flag})
    shown = {t["description"] for t in api.call("GET", "/api/v1/tokens", token=token).json["tokens"]}
    assert "a" * 197 + "\U0001F3F4" in shown
