"""Property tests: the schemas, the token codec, cursors and the header parser."""
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from chalicelib import authorizer, cursor, jwtcodec, schemas

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
NAME = re.compile(r"[A-Za-z0-9_.\-]{3,32}")


@FAST
@given(st.text(max_size=40))
def test_a_username_is_accepted_exactly_when_it_follows_the_rule(environment, name):
    data = {"username": name, "email": "a@example.com", "password": "a fine password"}
    try:
        schemas.SignupIn().load(data)
        accepted = True
    except ValidationError as exc:
        accepted = "username" not in exc.messages
    assert accepted == bool(NAME.fullmatch(name))


@FAST
@given(st.text(min_size=8, max_size=1024).filter(lambda p: not p.isascii() or len(p) > 20))
def test_any_unicode_password_of_8_to_1024_characters_is_accepted(environment, password):
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        return
    data = {"username": "alice", "email": "a@example.com", "password": password}
    assert schemas.SignupIn().load(data)["password"] == password


@FAST
@given(st.dictionaries(st.text(max_size=10), st.none() | st.integers() | st.text(max_size=10),
                       max_size=5))
def test_login_input_never_raises_anything_but_a_validation_error(environment, data):
    try:
        schemas.LoginIn().load(data)
    except ValidationError:
        pass


USER_ID = "0b6c3a9e-3f5a-4c1e-9d2b-7a8e4f6c1d20"
TOKEN_ID = "0189a3c4d5e6f7a1b2c3d4e5"


@FAST
@given(st.uuids().map(str), st.from_regex(r"[0-9a-f]{24}", fullmatch=True),
       st.integers(min_value=0, max_value=2**31))
def test_a_token_decodes_to_what_was_encoded(environment, sub, jti, issued):
    token = jwtcodec.encode(sub, jti, issued, issued + 60)
    claims = jwtcodec.decode(token, issued + 1)
    assert (claims["sub"], claims["jti"]) == (sub, jti)


@FAST
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_any_changed_byte_breaks_a_token(environment, position, value):
    token = jwtcodec.encode(USER_ID, TOKEN_ID, 1000, 2000).encode()
    assert jwtcodec.decode(token.decode(), 1500)["sub"] == USER_ID
    index = position % len(token)
    if token[index] == value:
        return
    changed = token[:index] + bytes([value]) + token[index + 1:]
    with pytest.raises(jwtcodec.InvalidToken):
        jwtcodec.decode(changed.decode("latin-1"), 1500)


@FAST
@given(st.text(max_size=300))
def test_garbage_never_decodes(environment, text):
    with pytest.raises(jwtcodec.InvalidToken):
        jwtcodec.decode(text, 1500)


@FAST
@given(st.text(max_size=100))
@example("Bearer x y")
@example("Bearer  x")
def test_the_header_parser_returns_one_word_or_nothing(environment, header):
    token = authorizer.bearer_token(header)
    assert token is None or (token and token.split() == [token])


@FAST
@given(st.from_regex(r"[0-9a-f]{24}", fullmatch=True), st.text(max_size=20))
def test_a_cursor_reads_back_only_in_its_own_listing(environment, token_id, other):
    issued = cursor.issue("self:alice", token_id)
    assert cursor.read("self:alice", issued) == token_id
    if other != "self:alice":
        assert cursor.read(other, issued) is None


@FAST
@given(st.text(max_size=80))
def test_made_up_cursors_are_refused(environment, text):
    assert cursor.read("self:alice", text) is None
