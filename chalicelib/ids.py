"""The forms of the service's ids, importable by every layer.

A user's id is a random UUID. A token's id, and an event's, is 14 hex
digits of its creation time in microseconds followed by 10 random hex
digits, so sorting by id is sorting by creation: a listing is one Query
read backwards, a cursor names the last id of a page, and ``created_at`` is
read off the id rather than stored twice.
"""
import re
import secrets
import uuid

# A user's id: a random UUID in its canonical, lower-case text form.
USER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A token's id, and an event's: time-ordered (see above).
TIMED_ID = re.compile(r"[0-9a-f]{24}")


def new_user_id():
    return str(uuid.uuid4())


def new_timed_id(now, after=0):
    """An id made at ``now``; ``after`` (microseconds) orders the ids of one
    action, which would otherwise share their time and sort at random."""
    return f"{int(now * 1_000_000) + after:014x}{secrets.token_hex(5)}"


def created_at(timed_id):
    return int(timed_id[:14], 16) / 1_000_000
