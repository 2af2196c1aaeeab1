"""Introspection clients: their credentials, made, checked and dropped.

A client secret is 256 random bits, shown once (``manage.py create-client``);
only its SHA-256 is kept. A fast hash is the right one here, unlike for
passwords: bcrypt's cost exists to slow the guessing of secrets that people
choose, and nobody can enumerate 2^256 random secrets at any speed, while
bcrypt would add some 300 ms to every introspection. A leaked table gives
no secret back.

A check does the same work whether the id is known or not (one hash, one
constant-time compare, against a stand-in for an unknown id), so timing
tells no one which client ids exist.
"""
import hashlib
import hmac
import secrets

from chalicelib import audit, clock, stores
from chalicelib.client_store import CLIENT_ID, Client
from chalicelib.errors import ClientNotFound, InvalidClient, ValidationFailed

SECRET_BYTES = 32
NAME_LENGTH = 100
# A label of its own: this hash can never stand for another use's.
_LABEL = b"login-service/client-secret/v1:"


def secret_hash(secret):
    return hashlib.sha256(_LABEL + secret.encode("utf-8")).hexdigest()


# What an unknown id is checked against: the hash of a secret nobody holds.
_NOBODY = secret_hash(secrets.token_urlsafe(SECRET_BYTES))


def _ours(client_id):
    return isinstance(client_id, str) and CLIENT_ID.fullmatch(client_id) is not None


def read(client_id):
    """The read of the client's item, for a batch (stores.read); None,
    with nothing to read, for an id that is not of our shape."""
    return stores.clients().read(client_id) if _ours(client_id) else None


def get(client_id):
    """The client (one consistent GetItem), or None; for an id that
    :func:`read` has found to be of our shape."""
    return stores.clients().get(client_id)


def authenticate(client, secret):
    """``client`` when ``secret`` is its secret; InvalidClient otherwise,
    also for no client (None), after the same work."""
    expected = client.secret_hash if client is not None else _NOBODY
    matches = hmac.compare_digest(secret_hash(secret or ""), expected)
    if client is None or not matches:
        raise InvalidClient()
    return client


def create(name):
    """A new client named ``name``: (the client, its secret, shown this once)."""
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_LENGTH or not name.isprintable():
        raise ValidationFailed({"name": [f"1 to {NAME_LENGTH} printable characters."]})
    secret = secrets.token_urlsafe(SECRET_BYTES)
    client = Client(client_id=secrets.token_hex(16), name=name,
                    created_at=clock.iso(int(clock.now())), secret_hash=secret_hash(secret))
    stores.clients().create(client)
    audit.event("client_created", client_id=client.client_id)
    return client, secret


def all_clients():
    """Every client (ids, names, creation times; never a hash), oldest first."""
    return stores.clients().all()


def delete(client_id):
    """Delete a client: its next introspection is refused."""
    if not _ours(client_id) or not stores.clients().delete(client_id):
        raise ClientNotFound()
    audit.event("client_deleted", client_id=client_id)
