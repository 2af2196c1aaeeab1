"""Token introspection (RFC 7662): what a resource server may learn of a token.

A client learns exactly what the authorizer hands an API behind it (the
user, the token, the live roles), plus the token's times, and decided the
same way: the token's JWT first (a forged or malformed one costs no read of
the token), then :func:`authorizer.lookup`, the authorizer's own single
strongly consistent read. Nothing is written: introspecting a token never
moves its ``last_used_at`` or its expiry.

One DynamoDB call per request, whatever the answer: a token that verifies
is read with the client's item in the same BatchGetItem (three items, three
read units); any other costs only the client's GetItem (one read unit). A
wrong client gets 401 and nothing else, whatever its token.
"""
import logging

from chalicelib import audit, authorizer, clients, clock, jwtcodec
from chalicelib.errors import InvalidClient

INACTIVE = {"active": False}


def _claims(token, now):
    try:
        return authorizer.verified(token, now)
    except jwtcodec.InvalidToken:
        return None


def authenticate(client_id, client_secret):
    """InvalidClient unless ``client_secret`` is the secret of client
    ``client_id``, with the client's read alone (for a request whose body
    cannot be read: its credentials are answered first)."""
    _authenticated(clients.get(client_id) if clients.read(client_id) else None, client_secret)


def _authenticated(client, client_secret):
    try:
        clients.authenticate(client, client_secret)
    except InvalidClient:
        # A known id with a wrong secret is named; anything else is not ours.
        audit.event("introspection_refused", level=logging.WARNING,
                    client_id=client.client_id if client else None)
        raise


def introspect(client_id, client_secret, token):
    """RFC 7662's answer on ``token`` for the client ``client_id``;
    InvalidClient unless ``client_secret`` is that client's."""
    now = clock.now()
    claims = _claims(token, now)
    also = clients.read(client_id)
    live = None
    if also is None:
        client = None  # not an id of ours: nothing to read, the same check
    elif claims is None:
        client = clients.get(client_id)
    else:
        live, client = authorizer.lookup(claims, now, also=also)
    _authenticated(client, client_secret)
    audit.event("introspection", client_id=client_id, active=live is not None)
    if live is None:
        return INACTIVE
    session = live.session
    return {"active": True, "sub": session.user_id, "username": session.username,
            "roles": live.roles, "jti": session.token_id, "iat": claims["iat"],
            "exp": live.expires_at(claims), "token_type": "Bearer"}
