"""Links sent by mail, and how much mail an address got lately: items of
the users table.

``links#<user id>``    the account's live links, one of each kind at most:
                       ``reset_hash``/``reset_until``, and
                       ``verify_hash``/``verify_until``/``verify_to`` (the
                       address the link proves: the account's own, or the
                       new one it asked for)
``mailrate#<address>`` the times (epoch seconds) of the links sent to an
                       address in the last hour, with a version, and
                       ``expires_at`` (the TTL) an hour after the last

A link is ``<user id>.<secret>``: 256 random bits, of which only the
SHA-256 is stored, so the table (or its export) holds nothing that opens an
account. Issuing a link of a kind replaces the account's previous one of
that kind, which then no longer matches (superseded); spending it removes
it, on condition that it is still the one stored and alive, so it works
once however many requests race with it.
"""
import hashlib
import hmac
import re
import secrets
from collections import namedtuple

from chalicelib import dynamo, unit_of_work
from chalicelib.dynamo import N, S
from chalicelib.errors import InvalidLink, ServiceUnavailable
from chalicelib.ids import USER_ID
from chalicelib.user_store import folded_email

KINDS = ("reset", "verify")
# How long a request may hold a link it is spending: longer than a
# function's timeout, as a password change's fence is.
CLAIM_SECONDS = 20
# At most one message a minute and five an hour to one address, among those
# anyone can make the service send (links); notices are never limited.
PER_MINUTE_GAP = 60
PER_HOUR = 5
_HOUR = 3600
_LINK = re.compile(rf"({USER_ID.pattern})\.([A-Za-z0-9_-]{{43}})")


class Links(namedtuple("Links", "reset_hash reset_until verify_hash verify_until verify_to")):
    __slots__ = ()

    def matches(self, kind, secret, now):
        """Whether ``secret`` is the live link of ``kind`` (compared in
        constant time: the stored hash must not leak by timing)."""
        stored, until = getattr(self, f"{kind}_hash"), getattr(self, f"{kind}_until")
        return (stored is not None and until > now
                and hmac.compare_digest(stored, digest(secret)))


NO_LINKS = Links(None, 0, None, 0, None)


def _links(item):
    return Links(dynamo.text(item, "reset_hash"), dynamo.number(item, "reset_until") or 0,
                 dynamo.text(item, "verify_hash"), dynamo.number(item, "verify_until") or 0,
                 dynamo.text(item, "verify_to"))


def new_link(user_id):
    """A fresh link for ``user_id``: (the link, its secret's hash)."""
    secret = secrets.token_urlsafe(32)
    return f"{user_id}.{secret}", digest(secret)


def digest(secret):
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parse(link):
    """(user id, secret) of a link as a client sent it; InvalidLink for
    anything not of its shape (no read is made for those)."""
    found = _LINK.fullmatch(link) if isinstance(link, str) else None
    if not found:
        raise InvalidLink()
    return found.group(1), found.group(2)


def recent(sent, now):
    """The sends of ``sent`` within the last hour."""
    return [t for t in sent if t > now - _HOUR]


def allows(sent, now):
    """Whether another link may go to an address that got ``sent``."""
    lately = recent(sent, now)
    return len(lately) < PER_HOUR and all(now - t >= PER_MINUTE_GAP for t in lately)


class Rate(namedtuple("Rate", "sent version")):
    __slots__ = ()


def _rate(item):
    return Rate([int(t["N"]) for t in item.get("sent", {}).get("L", [])],
                dynamo.number(item, "version"))


def _removing(*kinds):
    """The update expression removing the links of ``kinds``."""
    fields = [f"{k}_{part}" for k in kinds for part in ("hash", "until", "claim", "claim_until")]
    return "REMOVE " + ", ".join(fields + (["verify_to"] if "verify" in kinds else []))


class LinkStore:
    def __init__(self, table):
        self.table = table

    @staticmethod
    def links_key(user_id):
        return {"pk": S("links#" + user_id)}

    @staticmethod
    def rate_key(address):
        return {"pk": S("mailrate#" + folded_email(address))}

    def read_links(self, user_id):
        return dynamo.Read(self.table, self.links_key(user_id), _links)

    def read_rate(self, address):
        return dynamo.Read(self.table, self.rate_key(address), _rate)

    def issue(self, user_id, kind, hashed, until, to=None):
        """The write making ``hashed`` the account's one live link of
        ``kind`` until ``until`` (the older one dies)."""
        values = {":h": S(hashed), ":u": N(int(until))}
        expression = f"SET {kind}_hash = :h, {kind}_until = :u"
        if kind == "verify":
            expression, values[":to"] = expression + ", verify_to = :to", S(to)
        return unit_of_work.update(self.table, self.links_key(user_id), expression, values)

    def claim(self, user_id, kind, hashed, now, claim_id):
        """Claim the live link ``hashed`` of ``kind`` for one request, for
        CLAIM_SECONDS at most; False when it is not the live one, or another
        request holds it. Requests racing with one link then meet here, one
        write each, and all but one answer at once that it does not work
        (rather than queue behind the password's fence)."""
        return dynamo.applied(
            "update_item", TableName=self.table, Key=self.links_key(user_id),
            UpdateExpression=f"SET {kind}_claim = :c, {kind}_claim_until = :cu",
            ConditionExpression=f"{kind}_hash = :h AND {kind}_until > :now AND "
                                f"(attribute_not_exists({kind}_claim_until) "
                                f"OR {kind}_claim_until < :now)",
            ExpressionAttributeValues={":c": S(claim_id), ":h": S(hashed), ":now": N(int(now)),
                                       ":cu": N(int(now) + CLAIM_SECONDS)})

    def release(self, user_id, kind, claim_id):
        """Give a claim up (the request failed): the link works again at
        once rather than after CLAIM_SECONDS. Best effort."""
        try:
            dynamo.applied("update_item", TableName=self.table, Key=self.links_key(user_id),
                           UpdateExpression=f"REMOVE {kind}_claim, {kind}_claim_until",
                           ConditionExpression=f"{kind}_claim = :c",
                           ExpressionAttributeValues={":c": S(claim_id)})
        except ServiceUnavailable:
            pass  # it expires

    def spend(self, user_id, kind, hashed, now, killing=(), claim_id=None):
        """The write spending the link ``hashed`` of ``kind`` (held by the
        claim ``claim_id``, when given), and killing the live links of the
        kinds ``killing``: refused (labelled ``link``) unless it is still
        the live one."""
        condition, values = f"{kind}_hash = :h AND {kind}_until > :now", {
            ":h": S(hashed), ":now": N(int(now))}
        if claim_id is not None:
            condition, values[":c"] = condition + f" AND {kind}_claim = :c", S(claim_id)
        return unit_of_work.update(self.table, self.links_key(user_id),
                                   _removing(kind, *killing), values, condition=condition,
                                   label="link")

    def restore(self, user_id, kind, issued, before):
        """The write undoing the issue of ``issued`` (a message SES did not
        take): the link of ``kind`` the account had ``before`` lives again,
        only while ``issued`` is still its live one."""
        old_hash, until = getattr(before, f"{kind}_hash"), getattr(before, f"{kind}_until")
        condition, values = f"{kind}_hash = :issued", {":issued": S(issued)}
        if old_hash is None:
            return unit_of_work.update(self.table, self.links_key(user_id), _removing(kind),
                                       values, condition=condition)
        expression = f"SET {kind}_hash = :h, {kind}_until = :u"
        values.update({":h": S(old_hash), ":u": N(until)})
        if kind == "verify":
            expression, values[":to"] = expression + ", verify_to = :to", S(before.verify_to)
        return unit_of_work.update(self.table, self.links_key(user_id), expression, values,
                                   condition=condition)

    def uncount(self, address, seen, now):
        """The write undoing :meth:`count_send` of ``seen`` at ``now`` (a
        message SES did not take), only while nothing counted since."""
        counted = (seen.version or 0) + 1 if seen else 1
        return unit_of_work.update(
            self.table, self.rate_key(address), "SET sent = :sent, version = :next",
            {":sent": {"L": [N(t) for t in recent(seen.sent if seen else [], now)]},
             ":next": N(counted + 1), ":counted": N(counted)},
            condition="version = :counted")

    def kill(self, user_id):
        """The write killing every live link of the account (a password
        changed: a change of address asked for with the old one, or a reset
        asked for before, must not outlive it)."""
        return unit_of_work.update(self.table, self.links_key(user_id), _removing(*KINDS), None)

    def delete(self, user_id, address=None):
        """The deletes of the account's links and of what its ``address``
        got lately (which names the address), for its deletion."""
        return [unit_of_work.delete(self.table, self.links_key(user_id))] + (
            [unit_of_work.delete(self.table, self.rate_key(address))] if address else [])

    def count_send(self, address, seen, now):
        """The write adding a send at ``now`` to ``address``'s record, only
        if the record is still ``seen`` (None: no record), labelled
        ``rate``: two mailers racing for one address cannot both pass."""
        if seen is None:
            sent, version, condition, values = [], 0, "attribute_not_exists(pk)", {}
        else:
            sent, version = recent(seen.sent, now), seen.version or 0
            condition, values = "version = :seen", {":seen": N(version)}
        return unit_of_work.update(
            self.table, self.rate_key(address),
            "SET sent = :sent, version = :next, expires_at = :e",
            {":sent": {"L": [N(t) for t in [*sent, int(now)]]}, ":next": N(version + 1),
             ":e": N(int(now) + _HOUR), **values},
            condition=condition, label="rate")
