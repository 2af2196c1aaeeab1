"""POST /api/v1/signup"""
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from chalicelib import schemas
from conftest import PASSWORD, PROPERTY

USER_FIELDS = {"id", "username", "email", "email_verified", "roles", "created_at"}


def test_signup_returns_the_user_as_typed(api):
    reply = api.signup("Alice.B-2", email="Alice@Example.COM")
    assert reply.status == 201
    assert set(reply.json) == USER_FIELDS
    assert reply.json["username"] == "Alice.B-2"
    assert reply.json["email"] == "Alice@Example.COM"
    assert reply.json["roles"] == []
    assert reply.json["created_at"].endswith("Z")


def test_signup_never_returns_the_password_or_its_hash(api):
    reply = api.signup()
    text = str(reply.json)
    assert PASSWORD not in text and "$2b$" not in text and "hash" not in text


def test_username_is_unique_without_regard_to_case(api):
    api.signup("alice")
    reply = api.signup("ALICE", email="other@example.com")
    assert reply.status == 409
    assert reply.json["error"] == "username_taken"


def test_email_is_unique_without_regard_to_case(api):
    api.signup("alice", email="alice@example.com")
    reply = api.signup("bob", email="ALICE@EXAMPLE.com")
    assert reply.status == 409
    assert reply.json["error"] == "email_taken"


def test_a_refused_signup_writes_nothing(api, dynamodb, table_names):
    api.signup("alice", email="alice@example.com")
    api.signup("bob", email="alice@example.com")
    keys = {i["pk"]["S"] for i in dynamodb.scan(TableName=table_names["users"])["Items"]}
    assert not any("bob" in k for k in keys)
    assert api.signup("bob", email="bob@example.com").status == 201


@pytest.mark.parametrize("username", ["ab", "a" * 33, "al ice", "alice ", " alice", "al/ice",
                                      "älice", "alice\n", ""])
def test_bad_usernames_are_422(api, username):
    reply = api.signup(username, email="someone@example.com")
    assert reply.status == 422
    assert reply.json["error"] == "validation_failed"
    assert list(reply.json["fields"]) == ["username"]


@pytest.mark.parametrize("email", ["not-an-email", " a@example.com", "a@example.com ", "a@b", ""])
def test_bad_emails_are_422(api, email):
    reply = api.signup("alice", email=email)
    assert reply.status == 422
    assert list(reply.json["fields"]) == ["email"]


@pytest.mark.parametrize("password", ["short", "x" * 1025, ""])
def test_password_length_is_8_to_1024_characters(api, password):
    reply = api.signup(password=password)
    assert reply.status == 422
    assert list(reply.json["fields"]) == ["password"]


def test_password_length_counts_code_points_not_bytes(api):
    assert api.signup(password="é" * 8).status == 201
    assert api.signup("bob", password="😀" * 1024).status == 201


def test_every_missing_or_mistyped_field_is_named(api):
    reply = api.call("POST", "/api/v1/signup", {"username": 5, "password": None})
    assert reply.status == 422
    assert set(reply.json["fields"]) == {"username", "email", "password"}


def test_unknown_fields_are_422(api):
    reply = api.call("POST", "/api/v1/signup", {"username": "alice", "email": "a@example.com",
                                                "password": PASSWORD, "roles": ["admin"]})
    assert reply.status == 422
    assert "roles" in reply.json["fields"]


def test_a_lone_surrogate_is_a_validation_error_not_a_crash(api):
    raw = b'{"username": "alice", "email": "a@example.com", "password": "abcdefgh\\ud800"}'
    reply = api.call("POST", "/api/v1/signup", raw=raw)
    assert reply.status == 422
    assert list(reply.json["fields"]) == ["password"]


@pytest.mark.parametrize("password", ["password", "PASSWORD", "12345678", "baseball",
                                      "iloveyou", "trustno1"])
def test_very_common_passwords_are_refused(api, password):
    reply = api.signup(password=password)
    assert reply.status == 422
    assert "common" in reply.json["fields"]["password"][0]


def test_a_common_new_password_is_refused_too(api):
    token = api.user()
    reply = api.call("POST", "/api/v1/users/me/password", token=token,
                     body={"current_password": PASSWORD, "new_password": "football"})
    assert reply.status == 422 and list(reply.json["fields"]) == ["new_password"]


def test_the_shipped_common_password_list_is_zxcvbns(tmp_path, monkeypatch):
    import gzip

    from chalicelib import passwords
    from deploy import common_passwords

    with open(passwords.COMMON_PASSWORDS, "rb") as f:
        shipped = f.read()
    monkeypatch.setattr(passwords, "COMMON_PASSWORDS", str(tmp_path / "list.gz"))
    assert common_passwords.build() > 10000
    assert gzip.decompress((tmp_path / "list.gz").read_bytes()) == gzip.decompress(shipped)


@pytest.mark.parametrize("email", [
    "alice@exampl\u212a.com",      # a Kelvin sign for the k
    "alice@\uff45xample.com",      # a fullwidth e
    "alice@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
])
def test_a_domain_with_compatibility_lookalikes_is_refused_with_how_to_fix_it(api, email):
    reply = api.signup("alice", email=email)
    assert reply.status == 422
    assert reply.json["fields"]["email"] == [
        "Type the domain in its plain form: it holds lookalike characters "
        "(such as a Kelvin sign or fullwidth letters)."]


def test_a_mailbox_with_compatibility_lookalikes_is_refused(api):
    reply = api.signup("alice", email="\uff41lice@example.com")
    assert reply.status == 422 and list(reply.json["fields"]) == ["email"]


@pytest.mark.parametrize("email", [
    "alice@exa\u00admple.com",     # a soft hyphen, which IDNA drops
    "alice@exa\u200bmple.com",     # a zero-width space, which IDNA drops
    "alice@stra\u00dfe.de",        # IDNA 2003 reads strasse.de, IDNA 2008 does not
    "alice@b\u00fccher" + "x" * 60 + ".example",  # a label over 63 bytes once encoded
])
def test_a_domain_that_is_not_idna_as_typed_is_refused(api, email):
    reply = api.signup("alice", email=email)
    assert reply.status == 422 and list(reply.json["fields"]) == ["email"]


@pytest.mark.parametrize("email", ["alice@b\u00fccher.example", "alice@B\u00dcCHER.example",
                                   "Alice@Example.COM", "alice@xn--bcher-kva.example"])
def test_a_plain_ascii_or_valid_idn_domain_is_kept_as_typed(api, email):
    reply = api.signup("alice", email=email)
    assert reply.status == 201 and reply.json["email"] == email


def test_an_idna_domain_and_its_ascii_form_are_one_address(api):
    assert api.signup("first", email="a@\u00e9xample.com").status == 201
    reply = api.signup("second", email="a@xn--xample-9ua.com")
    assert reply.status == 409 and reply.json["error"] == "email_taken"


# Properties, over generated input.

@PROPERTY
@given(st.text(max_size=40))
def test_a_username_is_accepted_exactly_when_it_follows_the_rule(environment, name):
    data = {"username": name, "email": "a@example.com", "password": "a fine password"}
    try:
        schemas.SignupIn().load(data)
        accepted = True
    except ValidationError as exc:
        accepted = "username" not in exc.messages
    assert accepted == bool(re.fullmatch(r"[A-Za-z0-9_.\-]{3,32}", name))


@PROPERTY
@given(st.text(min_size=8, max_size=1024).filter(lambda p: not p.isascii() or len(p) > 20))
def test_any_unicode_password_of_8_to_1024_characters_is_accepted(environment, password):
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        return
    data = {"username": "alice", "email": "a@example.com", "password": password}
    assert schemas.SignupIn().load(data)["password"] == password
