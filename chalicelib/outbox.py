"""The mail table: the outbox, mail waiting for the mailer.

A route never calls SES. It writes one item here (alone, or in the
transaction of what the mail is about), and the mailer (chalicelib/mailer.py)
turns each new item into a message, off the request path: deployed, the
table's stream invokes the mailer function; under `make run`,
devserver/mail_pump.py hands it the items. So what a request costs does not
depend on whether mail goes out, and ``POST /password/forgot`` costs the
same one write whoever's address it names.

Item: ``id`` (a timed id: items sort by when they were asked for), ``kind``
(one of :data:`KINDS`), ``to`` (an address, where the request names one),
``user_id`` (where the request knows the account), ``from`` (a
verification's: the account's address when it was asked for), ``notice`` (what a notice
is about), ``ip`` and ``device`` (the request's origin), ``expires_at`` (the
table's TTL: an item nobody took is dropped after a day). The mailer takes
an item by deleting it, on condition that it is still there
(:meth:`Outbox.take`), in the transaction that records what it did, so a
stream record delivered twice sends one message.
"""
from chalicelib import clock, dynamo, unit_of_work
from chalicelib.dynamo import N, S
from chalicelib.ids import new_timed_id

# reset: a reset link asked for by address, by anyone; verify: a
# verification link for the account's address, or for the new address it
# asked for; notice: a change the owner must learn of (never limited).
KINDS = ("reset", "verify", "notice")
NOTICES = ("password_changed", "password_reset", "email_changed", "mfa_enabled", "mfa_disabled",
           "recovery_codes_renewed", "passkey_added", "passkey_removed")
_KEPT_SECONDS = 86400


class Outbox:
    def __init__(self, table):
        self.table = table

    def _put(self, kind, origin, **fields):
        now = clock.now()
        item = {"id": S(new_timed_id(now)), "kind": S(kind),
                "expires_at": N(int(now) + _KEPT_SECONDS)}
        for name, value in (*fields.items(), ("ip", origin.ip), ("device", origin.device)):
            if value is not None:
                item[name] = S(value)
        return unit_of_work.put(self.table, item, "attribute_not_exists(id)")

    def reset(self, address, origin):
        """The write asking for a reset link to ``address`` (whoever's it is)."""
        return self._put("reset", origin, to=address)

    def verification(self, user_id, address, origin, in_force):
        """The write asking for a verification link to ``address`` for the
        account ``user_id``: its own address, or the new one it asked for;
        ``in_force`` is the account's address when asked (the mailer drops
        the item if the account has moved since)."""
        return self._put("verify", origin, user_id=user_id, to=address, **{"from": in_force})

    def notice(self, user_id, notice, origin, address=None):
        """The write asking for a notice of ``notice`` to the account's
        address, or to ``address`` (the old one, when the address changed)."""
        if notice not in NOTICES:
            raise ValueError(f"not a notice: {notice}")
        return self._put("notice", origin, user_id=user_id, notice=notice, to=address)

    @staticmethod
    def send(write):
        """One of these writes on its own, as one PutItem (a transaction of
        one item would cost twice the write capacity)."""
        dynamo.call("put_item", **write.params)

    def take(self, item_id):
        """The delete that takes item ``item_id`` for sending, for the
        mailer's transaction; refused (labelled ``outbox``) when another
        delivery of the same record took it first."""
        return unit_of_work.delete(self.table, {"id": S(item_id)},
                                   condition="attribute_exists(id)", label="outbox")

    def again(self, item):
        """The write putting ``item`` back, for another try after SES could
        not take its message (a new record for the stream); its ``tries``
        counted."""
        tries = (dynamo.number(item, "tries") or 0) + 1
        return unit_of_work.put(self.table, {**item, "tries": N(tries)},
                                "attribute_not_exists(id)")

    def waiting(self):
        """Every item not yet taken, oldest first (the local pump's scan)."""
        items = dynamo.every("scan", TableName=self.table, ConsistentRead=True)
        return sorted(items, key=lambda item: item["id"]["S"])
