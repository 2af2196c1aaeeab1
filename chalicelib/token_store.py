"""The tokens table: one item per login session, the whitelist itself.

Key: ``user_id`` (partition) and ``token_id`` (sort). A token id is
time-ordered (chalicelib/ids.py), so sorting by id is sorting by creation:
a listing is one Query read backwards, and ``created_at`` is read off the
id rather than stored twice.

Other attributes: username (copied at login, for the authorizer's context;
a username never changes), description, ip, expires_at (epoch seconds, also
the table's TTL attribute; it slides forward with use, up to the cap in the
token's own exp) and last_used_at (epoch seconds, absent until first
use). No roles: they change after login, and are read where needed.
"""
from dataclasses import dataclass
from typing import Optional

from chalicelib import config, dynamo, unit_of_work
from chalicelib.dynamo import N, S
from chalicelib.ids import created_at


@dataclass
class Session:
    user_id: str
    token_id: str
    expires_at: int
    username: str = ""
    description: Optional[str] = None
    ip: Optional[str] = None
    last_used_at: Optional[int] = None

    @property
    def created_at(self):
        return created_at(self.token_id)

    @property
    def expiry(self):
        return expiry(self.token_id, self.expires_at, config.token_max_lifetime_seconds())


def expiry(token_id, expires_at, max_lifetime):
    """When the token ``token_id`` dies without further use: its record's
    ``expires_at``, never past its issue plus ``max_lifetime`` (the
    TOKEN_MAX_LIFETIME_SECONDS in force, which an operator may have lowered
    since: authorizer.cap; the JWT's iat is the id's time, in whole seconds)."""
    return min(expires_at, int(created_at(token_id)) + max_lifetime)


def live_count(keys, now):
    """How many of ``keys`` (token_id, expires_at) are of live tokens."""
    max_lifetime = config.token_max_lifetime_seconds()
    return sum(1 for token_id, expires_at in keys
               if expiry(token_id, expires_at, max_lifetime) > now)


def _session(user_id, item):
    return Session(
        user_id=user_id, token_id=item["token_id"]["S"],
        expires_at=dynamo.number(item, "expires_at"),
        username=dynamo.text(item, "username") or "",
        description=dynamo.text(item, "description"), ip=dynamo.text(item, "ip"),
        last_used_at=dynamo.number(item, "last_used_at"),
    )


class TokenStore:
    def __init__(self, table):
        self.table = table

    @staticmethod
    def key(user_id, token_id):
        return {"user_id": S(user_id), "token_id": S(token_id)}

    def put(self, session):
        """The write of a new session, for a transaction."""
        item = {**self.key(session.user_id, session.token_id),
                "expires_at": N(session.expires_at),
                "username": S(session.username)}
        if session.description is not None:
            item["description"] = S(session.description)
        if session.ip is not None:
            item["ip"] = S(session.ip)
        return unit_of_work.put(self.table, item, "attribute_not_exists(token_id)", label="session")

    def delete(self, user_id, token_id):
        """The delete of one session, for a transaction."""
        return unit_of_work.delete(self.table, self.key(user_id, token_id))

    def get(self, user_id, token_id):
        """One strongly consistent read: a revocation is seen at once."""
        item = dynamo.call(
            "get_item", TableName=self.table, Key=self.key(user_id, token_id),
            ConsistentRead=True,
        ).get("Item")
        return _session(user_id, item) if item else None

    def read(self, user_id, token_id):
        """The session, as one read of a batch (dynamo.read)."""
        return dynamo.Read(self.table, self.key(user_id, token_id),
                           lambda item: _session(user_id, item))

    def touch(self, user_id, token_id, now, stale_before, expires_at):
        """Record a use at ``now`` and move the expiry to ``expires_at``,
        unless a use since ``stale_before`` is recorded already.

        The condition makes the write happen at most once per window even
        when many requests race; it never recreates a revoked token, never
        revives one whose expiry has passed meanwhile, and never moves an
        expiry back (a racing write may have moved it further).
        """
        try:
            dynamo.call(
                "update_item", TableName=self.table, Key=self.key(user_id, token_id),
                UpdateExpression="SET last_used_at = :now, expires_at = :expires",
                ConditionExpression="attribute_exists(token_id) AND expires_at > :now AND "
                                    "expires_at <= :expires AND "
                                    "(attribute_not_exists(last_used_at) OR last_used_at < :stale)",
                ExpressionAttributeValues={":now": N(int(now)), ":stale": N(int(stale_before)),
                                           ":expires": N(int(expires_at))},
                # Named, not left to the default: the authorizer's IAM policy
                # requires dynamodb:ReturnValues to be NONE, and that key is
                # in the request only when the request names it.
                ReturnValues="NONE",
            )
        except dynamo.ConditionFailed:
            pass

    def revoke_live(self, user_id, token_id, now):
        """The delete of one live session, for a transaction: labelled
        ``session``, its condition fails when the token is gone or expired."""
        return unit_of_work.delete(self.table, self.key(user_id, token_id),
                             condition="attribute_exists(token_id) AND expires_at > :now",
                             values={":now": N(int(now))}, label="session")

    def all_keys(self, user_id):
        """(token_id, expires_at) of every record of the user, oldest first."""
        return [(i["token_id"]["S"], dynamo.number(i, "expires_at")) for i in dynamo.every(
            "query", TableName=self.table, ConsistentRead=True,
            KeyConditionExpression="user_id = :u", ExpressionAttributeValues={":u": S(user_id)},
            ProjectionExpression="token_id, expires_at")]

    def page(self, user_id, now, limit, before=None):
        """Up to ``limit`` live sessions, newest first, older than ``before``;
        returns (sessions, more)."""
        items, more = dynamo.newest_unexpired(self.table, "token_id", user_id, now, limit, before)
        return [_session(user_id, item) for item in items], more

    def delete_many(self, user_id, token_ids):
        dynamo.batch_delete(self.table, [self.key(user_id, t) for t in token_ids])
