"""Opaque, tamper-proof page cursors.

A cursor names the last token of a page and is bound by an HMAC to the
listing that issued it (whose tokens, which route), so a cursor from another
user's listing, an edited one or an invented one is refused with a 422
instead of leaking or skipping anything.
"""
import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Optional

from chalicelib import signing_keys
from chalicelib.ids import TIMED_ID

_MAC_BYTES = 12


@dataclass(frozen=True)
class Page:
    """One page of a listing: how many items, and the id that the previous
    page ended with (None for the first page). Cursors of the next page are
    bound to ``scope``."""

    scope: str
    limit: int
    before: Optional[str] = None


def scope(listing, owner):
    """What a cursor is bound to: a kind of listing of one owner's items."""
    return f"{listing}:{owner}"


def _mac(scope, token_id):
    key = hmac.new(signing_keys.secrets()[0].encode("utf-8"), b"cursor-key", hashlib.sha256).digest()
    message = f"{scope}\x00{token_id}".encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES]


def issue(scope, token_id):
    # 12 bytes of token id and 12 of MAC: 32 characters, never any padding.
    raw = bytes.fromhex(token_id) + _mac(scope, token_id)
    return base64.urlsafe_b64encode(raw).decode("ascii")


def read(scope, cursor):
    """The token id inside ``cursor``, or None if this listing did not issue it.

    Anything but 24 bytes of base64 fails the token id's shape before any
    MAC is computed, so a cursor needs no length check of its own.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor)
    except ValueError:  # not ASCII, or not base64
        return None
    token_id, mac = raw[:-_MAC_BYTES].hex(), raw[-_MAC_BYTES:]
    if not TIMED_ID.fullmatch(token_id) or not hmac.compare_digest(mac, _mac(scope, token_id)):
        return None
    return token_id
