"""The events table: the security log, one item per account event.

Key: ``user_id`` (partition) and ``event_id`` (sort). An event id has a
token id's form (14 hex digits of the time in microseconds, then 10 random
ones), so sorting by id is sorting by time, a listing is one Query read
backwards, cursors work as for tokens, and ``created_at`` is read off the id.

Other attributes: type, by, and where present ip, device, token_id and
method (how a login was made);
expires_at (epoch seconds, the creation plus EVENT_RETENTION_DAYS) is the
table's TTL attribute. DynamoDB deletes expired items days late, so a
listing also skips them.

Events are never written on their own: each is a write for the transaction
of the action it records (see :meth:`EventStore.record`), so an event that
cannot be written leaves its action undone, and the reverse.
"""
from collections import namedtuple

from chalicelib import config, dynamo, unit_of_work
from chalicelib.dynamo import N, S
from chalicelib.ids import TIMED_ID as EVENT_ID, created_at, new_timed_id
from chalicelib.terms import EVENT_ACTORS, EVENT_TYPES, LOGIN_METHODS

__all__ = ["EVENT_ID", "Event", "EventStore", "new_event"]

_DAY = 86400


class Event(namedtuple("Event", "id type by ip device token_id method", defaults=(None,))):
    __slots__ = ()

    @property
    def created_at(self):
        return created_at(self.id)


def new_event(now, type, by, origin, token_id=None, after=0, method=None):
    """An event at ``now``; ``after`` (microseconds) orders the events of one
    action, which would otherwise share their time and sort at random. A
    ``login`` says its ``method``; no other event has one."""
    if type not in EVENT_TYPES or by not in EVENT_ACTORS or (
            method not in LOGIN_METHODS if type == "login" else method is not None):
        raise ValueError(f"not an event: {type} by {by} ({method})")
    return Event(new_timed_id(now, after), type, by, origin.ip, origin.device, token_id, method)


def _event(item):
    return Event(item["event_id"]["S"], item["type"]["S"], item["by"]["S"],
                 dynamo.text(item, "ip"), dynamo.text(item, "device"),
                 dynamo.text(item, "token_id"), _method(item))


def _method(item):
    # A login recorded before logins said how was made with a password.
    if item["type"]["S"] == "login":
        return dynamo.text(item, "method") or "password"
    return None


class EventStore:
    def __init__(self, table):
        self.table = table

    @staticmethod
    def key(user_id, event_id):
        return {"user_id": S(user_id), "event_id": S(event_id)}

    def record(self, user_id, event):
        """The write of ``event``, for the transaction of what it records."""
        expires_at = int(event.created_at) + config.event_retention_days() * _DAY
        item = {**self.key(user_id, event.id), "type": S(event.type), "by": S(event.by),
                "expires_at": N(expires_at)}
        for name in ("ip", "device", "token_id", "method"):
            if getattr(event, name) is not None:
                item[name] = S(getattr(event, name))
        return unit_of_work.put(self.table, item, "attribute_not_exists(event_id)", label="event")

    def delete(self, user_id, event_id):
        """The delete of one event, for a transaction."""
        return unit_of_work.delete(self.table, self.key(user_id, event_id))

    def all_ids(self, user_id):
        """The id of every event of the user, expired ones included, oldest first."""
        return [i["event_id"]["S"] for i in dynamo.every(
            "query", TableName=self.table, ConsistentRead=True,
            KeyConditionExpression="user_id = :u", ExpressionAttributeValues={":u": S(user_id)},
            ProjectionExpression="event_id")]

    def page(self, user_id, now, limit, before=None):
        """Up to ``limit`` unexpired events, newest first, older than
        ``before``; returns (events, more)."""
        items, more = dynamo.newest_unexpired(self.table, "event_id", user_id, now, limit, before)
        return [_event(item) for item in items], more
