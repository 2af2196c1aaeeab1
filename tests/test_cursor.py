"""Page cursors: read back only in the listing that issued them, unchanged."""
import base64
import hashlib
import hmac
import re

import pytest

from chalicelib import cursor
from conftest import SECRET

SCOPE = "self:0b6c3a9e-3f5a-4c1e-9d2b-7a8e4f6c1d20"
TOKEN_ID = "0189a3c4d5e6f7a1b2c3d4e5"


def raw(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def text(data):
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def test_a_cursor_reads_back_as_its_token_id_in_its_own_listing():
    assert cursor.read(SCOPE, cursor.issue(SCOPE, TOKEN_ID)) == TOKEN_ID


@pytest.mark.parametrize("other", ["self:another-user", "admin:" + SCOPE[5:], "", SCOPE + " "])
def test_a_cursor_is_refused_in_any_other_listing(other):
    assert cursor.read(other, cursor.issue(SCOPE, TOKEN_ID)) is None


def test_a_cursor_issued_by_an_earlier_version_still_reads():
    """A known answer: a client paging through a deploy keeps its place."""
    assert cursor.read(SCOPE, "AYmjxNXm96Gyw9TlLsaRDtzMZQi9hzak") == TOKEN_ID


def test_a_cursor_is_url_safe_text_without_padding():
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor.issue(SCOPE, TOKEN_ID))


def test_a_cursor_with_its_token_id_changed_is_refused():
    data = raw(cursor.issue(SCOPE, TOKEN_ID))
    changed = bytes.fromhex("0189a3c4d5e6f7a1b2c3d4e6") + data[12:]
    assert cursor.read(SCOPE, text(changed)) is None


@pytest.mark.parametrize("index", range(12, 24))
def test_a_cursor_with_any_byte_of_its_mac_changed_is_refused(index):
    data = bytearray(raw(cursor.issue(SCOPE, TOKEN_ID)))
    data[index] ^= 0x01
    assert cursor.read(SCOPE, text(bytes(data))) is None


def test_a_cursor_with_bytes_inserted_between_id_and_mac_is_refused():
    data = raw(cursor.issue(SCOPE, TOKEN_ID))
    assert cursor.read(SCOPE, text(data[:12] + b"\x00" * 12 + data[12:])) is None


@pytest.mark.parametrize("edit", [lambda c: c[:-1], lambda c: c[:-4], lambda c: c + "A",
                                  lambda c: c + "AAAA", lambda c: "AAAA" + c])
def test_a_truncated_or_extended_cursor_is_refused(edit):
    assert cursor.read(SCOPE, edit(cursor.issue(SCOPE, TOKEN_ID))) is None


def test_a_cursor_made_under_another_secret_is_refused(monkeypatch):
    monkeypatch.setenv("JWT_SECRET", "another-secret-" + "0123456789abcdef" * 4)
    foreign = cursor.issue(SCOPE, TOKEN_ID)
    monkeypatch.setenv("JWT_SECRET", SECRET)
    assert cursor.read(SCOPE, foreign) is None


def test_a_cursor_macd_with_the_signing_secret_itself_is_refused():
    """The cursor key is derived from the secret, never the secret itself."""
    mac = hmac.new(SECRET.encode(), f"{SCOPE}\x00{TOKEN_ID}".encode(), hashlib.sha256).digest()
    assert cursor.read(SCOPE, text(bytes.fromhex(TOKEN_ID) + mac[:12])) is None


@pytest.mark.parametrize("value", ["", "é" * 32, "A" * 65, "A" * 10_000])
def test_a_cursor_that_cannot_be_ours_is_refused(value):
    assert cursor.read(SCOPE, value) is None
