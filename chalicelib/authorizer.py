"""The custom authorizer's decision: allow a token only while it is listed.

A request passes when its JWT verifies (HS256, known kid, sub/jti/iat/exp
present, not expired), its record is still in the tokens table and not
expired there either (DynamoDB TTL deletes days late), and its user's
profile still exists. The record and the profile are read together, in one
strongly consistent BatchGetItem (:func:`lookup`, which introspection
shares), so the context can hand over the user's live roles. A token that
fails any of these is denied, and the deny never says why.

Two expiries: the cap, login plus TOKEN_MAX_LIFETIME_SECONDS, is the JWT's
exp, or ``iat`` plus the current setting when that is earlier (an operator
who lowers the setting shortens every live token at once, with no read);
the record's expires_at slides, a TOKEN_LIFETIME_SECONDS after the last
recorded use, moved by the same conditional write that records the use (at
most once per resolution window), so the hot path stays at one read.

When the authorizer cannot decide (DynamoDB or SSM unavailable, a missing
secret or table, a bug of ours) it raises :class:`Undecided`: a deny would tell the
client its token is dead, and clients throw such tokens away. API Gateway
answers a raising authorizer with its authorizer-failure Gateway Responses,
which the deployment maps to 503 (deploy/gateway_responses.py); the request
never reaches a view.
"""
import logging
from collections import namedtuple

from chalicelib import audit, clock, config, jwtcodec, stores
from chalicelib.errors import ServiceUnavailable
from chalicelib.identity import Identity

# Far beyond any token of ours; refused before any parsing or DynamoDB call.
MAX_HEADER_LENGTH = 4096


class Undecided(Exception):
    """The authorizer could not reach a verdict on the token."""

    def __init__(self):
        # A fixed text: it is what Lambda logs, and API Gateway turns an
        # authorizer error whose message is exactly "Unauthorized" into a 401.
        super().__init__("the token could not be checked")


def bearer_token(header):
    """The token of an Authorization header: ``Bearer <t>`` or a bare ``<t>``."""
    if not header or len(header) > MAX_HEADER_LENGTH or not header.isascii():
        return None
    parts = header.split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    return parts[0] if len(parts) == 1 else None


def cap(claims):
    """When a token dies however much it is used: its JWT's ``exp``, or
    its ``iat`` plus the current TOKEN_MAX_LIFETIME_SECONDS if earlier."""
    return min(claims["exp"], claims["iat"] + config.token_max_lifetime_seconds())


def verified(token, now):
    """The claims of ``token`` when its JWT verifies and it is within its
    cap at ``now`` (no read needed for either), with ``exp`` the cap in
    force (:func:`cap`, worked out once here); InvalidToken otherwise."""
    claims = jwtcodec.decode(token, now)
    claims["exp"] = cap(claims)
    if claims["exp"] <= now:
        raise jwtcodec.InvalidToken()
    return claims


class Live(namedtuple("Live", "session roles")):
    """A live token: its record (token_store.Session) and its user's current roles."""

    __slots__ = ()

    def expires_at(self, claims):
        """When the token dies without further use: its record's expiry,
        never past its cap (``exp`` of :func:`verified`'s claims)."""
        return min(claims["exp"], self.session.expires_at)


def lookup(claims, now, also=None):
    """Whether verified ``claims`` name a live token, at time ``now``.

    One strongly consistent BatchGetItem reads the token's record and its
    user's profile (and ``also``, one item a caller needs in the same call,
    as a store describes it); nothing is written. Returns (a :class:`Live`
    or None, what ``also`` read). Raises ServiceUnavailable when an item
    could not be read.
    """
    reads = [stores.tokens().read(claims["sub"], claims["jti"]),
             stores.users().read_roles(claims["sub"])]
    session, roles, *extra = stores.read(*reads, *([also] if also else []))
    # A record without an expiry or a username is not one of ours: the most
    # this function's own role could write (user_id, token_id, last_used_at,
    # expires_at) lacks the username, which only a login writes. No
    # profile: the user is gone.
    live = (session is not None and bool(session.username) and roles is not None
            and (session.expires_at or 0) > now)
    return (Live(session, roles) if live else None), (extra[0] if extra else None)


def _context(header):
    token = bearer_token(header)
    if token is None:
        return None
    now = clock.now()
    claims = verified(token, now)
    live, _ = lookup(claims, now)
    if live is None:
        return None
    session = live.session
    window = config.last_used_resolution_seconds()
    if session.last_used_at is None or session.last_used_at < int(now) - window:
        _record_use(stores.tokens(), session, window, claims["exp"])
    # The roles as they are now, read with the record: they may change
    # after login, so no token record holds them.
    return Identity(session.user_id, session.token_id, session.username).context(live.roles)


def _record_use(store, session, window, cap):
    """Move last_used_at to now and the expiry to a lifetime from now.

    The expiry slides only here, once per window, with the write the hot
    path made anyway: it never passes the cap (see :func:`cap`) and never
    moves back (a lowered lifetime leaves it as it is).
    The clock is read again for the write: its condition (the record not
    expired "now") must mean the moment of the write, not of the read, or
    a write delayed past the expiry (retries, a stalled process) would
    bring a dead token back.
    """
    now = int(clock.now())
    sliding = min(now + config.token_lifetime_seconds(), cap)
    try:
        store.touch(session.user_id, session.token_id, now, now - window,
                    max(session.expires_at, sliding))
    except ServiceUnavailable:
        pass  # the read above already decided; the next request tries again
    except Exception as exc:  # noqa: BLE001 - a refused write must not refuse the request
        # A role that may not make this write, say: the read decided, so the
        # request passes, and the line (the same as a failed decision's)
        # raises the alarm, since no use is recorded and no expiry slides.
        audit.event("authorizer_error", level=logging.ERROR, type=type(exc).__name__,
                    step="record_use", **audit.problem(exc))


def decide(header):
    """The authorizer context for an allowed request, or None for a deny.

    Raises Undecided when there is no verdict to give.
    """
    try:
        return _context(header)
    except jwtcodec.InvalidToken:
        return None
    except Exception as exc:  # noqa: BLE001 - no verdict is not a deny
        # The type only (a library's message may quote the token), and for
        # an outage what failed and how often it was tried.
        audit.event("authorizer_error", level=logging.ERROR, type=type(exc).__name__,
                    **getattr(exc, "cause", {}), **audit.problem(exc))
        raise Undecided() from None
