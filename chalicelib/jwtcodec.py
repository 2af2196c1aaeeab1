"""Signing and verifying the service's JWTs.

HS256 only, pinned on both sides. Every token names its key in ``kid``; the
kid is derived from the secret itself, so rotating the secret needs no second
setting, and a token naming any other kid is refused before its signature is
even checked.

Every claim is checked here, by type and shape, before the authorizer uses
it as a DynamoDB key: anything malformed is an InvalidToken, never a
KeyError, a TypeError or a key DynamoDB itself would reject.
"""
import base64
import functools
import hashlib

from chalicelib import cold_start

with cold_start.without_cryptography():  # HS256 needs none of it: see cold_start
    import jwt

from chalicelib import signing_keys
from chalicelib.ids import TIMED_ID as TOKEN_ID, USER_ID

ALGORITHM = "HS256"
# A JWT of ours is ~300 bytes; anything far larger is not one of ours and is
# refused before any parsing.
MAX_TOKEN_LENGTH = 2048
# Lambdas' clocks are NTP-synced; a few seconds covers a login on one host
# and the next request's authorizer on another.
CLOCK_SKEW = 5


class InvalidToken(Exception):
    """The token is not one this service issued, or no longer valid."""


@functools.cache
def _kid(secret):
    digest = hashlib.sha256(b"kid:" + secret.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode("ascii")


def _keys():
    secrets = signing_keys.secrets()
    return _kid(secrets[0]), {_kid(s): s for s in secrets}


def encode(user_id, token_id, issued_at, expires_at):
    kid, keys = _keys()
    claims = {"sub": user_id, "jti": token_id, "iat": issued_at, "exp": expires_at}
    return jwt.encode(claims, keys[kid], algorithm=ALGORITHM, headers={"kid": kid})


def _time_claim(claims, name):
    """Whole seconds since the epoch, as we write them (JSON true is not 1)."""
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidToken()
    return value


def _check_id(claims, name, shape):
    """Only an id in the one shape we issue may become a DynamoDB key."""
    value = claims.get(name)
    if not isinstance(value, str) or not shape.fullmatch(value):
        raise InvalidToken()


def decode(token, now):
    """The verified claims of ``token`` at time ``now``, or InvalidToken.

    PyJWT checks the signature and the algorithm; the claims are checked
    here, the times against the service's own clock, the same clock that
    decides a token record's expiry.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise InvalidToken()
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = _keys()[1].get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken()
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError:
        raise InvalidToken() from None
    _check_id(claims, "sub", USER_ID)
    _check_id(claims, "jti", TOKEN_ID)
    if _time_claim(claims, "exp") <= now or _time_claim(claims, "iat") > now + CLOCK_SKEW:
        raise InvalidToken()
    if "nbf" in claims and _time_claim(claims, "nbf") > now + CLOCK_SKEW:
        raise InvalidToken()
    return claims
