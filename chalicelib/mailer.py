"""The mailer: each item of the outbox (chalicelib/outbox.py) turned into a
message and sent with SES, off the request path.

Deployed, the mail table's stream invokes the mailer function
(``app.mailer``) with the new items; under `make run`, devserver/mail_pump.py
hands them over. For each item, in order:

1. read what the item needs: the account an address belongs to, its
   profile, its live links, what its address got in the last hour;
2. decide: a reset link goes only to an account whose address is verified;
   a verification link only to an address not yet verified; a link only
   while the address got none in the last minute and fewer than five in the
   last hour (link_store.allows); a notice always, to a verified address;
3. one transaction: take the item (so a record delivered twice sends once),
   issue the link (the older one of its kind dies), count the send, record
   the event, each only while the account is as read (a lost race reads
   and decides again);
4. send, with SES's SendEmail from EMAIL_FROM;
5. when SES does not take the message, undo step 3 but the take: the older
   link lives again, the send is not counted, the event goes; a refusal
   that may pass (throttling, an outage) puts the item back for another
   try, at most _TRIES_AT_SES times in all.

What a message says and where it went are never logged (the link is in
it); the log says which kind went, for which account, or why it did not.
:func:`handle` returns the messages sent, for `make run` to print.
"""
import logging
from collections import namedtuple

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import audit, aws, clock, config, dynamo, messages, stores
from chalicelib.errors import ServiceUnavailable
from chalicelib.event_store import new_event
from chalicelib.identity import NOWHERE, Identity, Origin
from chalicelib.link_store import NO_LINKS, allows, new_link
from chalicelib.stores import StaleWrite, Transaction, after_lost_race

# Lost races for one item (two mailers deciding for one address at once).
_TRIES = 4
# How often an item is handed to SES in all, when SES says to try later.
_TRIES_AT_SES = 3
# SES's answers that may pass: throttling, its own failures.
_PASSING = ("Throttling", "ThrottlingException", "TooManyRequestsException",
            "LimitExceededException", "ServiceUnavailable", "InternalFailure")


class Decided(namedtuple("Decided", "message user_id undo")):
    """A message to send for an account, and the writes that undo what its
    transaction did, should SES not take it."""

    __slots__ = ()


class NotSent(Exception):
    def __init__(self, code, passing):
        super().__init__(code)
        self.code, self.passing = code, passing


def handle(event):
    """The messages sent for a stream's records (new items only)."""
    sent = []
    for record in event.get("Records", []):
        if record.get("eventName") == "INSERT":
            message = deliver(record["dynamodb"]["NewImage"])
            if message is not None:
                sent.append(message)
    return sent


def deliver(item):
    """Send what the outbox item ``item`` asks for; the Message sent, or None."""
    kind = item["kind"]["S"]
    for attempt in range(_TRIES):
        try:
            decided = _DECIDE[kind](item, clock.now())
        except StaleWrite as exc:
            if "outbox" in exc.failed:
                return None  # another delivery of this record took it
            after_lost_race(attempt)
            continue
        if decided is None:
            return None
        try:
            _send(decided.message)
        except NotSent as exc:
            again = exc.passing and (dynamo.number(item, "tries") or 0) + 1 < _TRIES_AT_SES
            audit.event("email_not_sent", level=logging.WARNING, kind=kind,
                        user_id=decided.user_id, code=exc.code, tried_again=again)
            _undo([*decided.undo, *([stores.outbox().again(item)] if again else [])])
            return None
        audit.event("email_sent", kind=kind, user_id=decided.user_id)
        return decided.message
    raise ServiceUnavailable(operation="mailer", code="lost_races", attempts=_TRIES)


def _origin(item):
    return Origin(dynamo.text(item, "ip"), dynamo.text(item, "device"))


def _owner(user):
    """The account as a condition of the transaction (login_store.unchanged):
    still this user's, no deletion begun."""
    return Identity(user.id, None, user.username)


def _reset(item, now):
    """A reset link, asked for by address, by anyone."""
    take = stores.outbox().take(item["id"]["S"])
    user_id = stores.users().owner_of(item["to"]["S"])
    if user_id is None:
        return _only(take)  # nobody's address: nothing to record, nothing to send
    links = stores.links()
    user, rate, before = dynamo.read(stores.users().read_user(user_id),
                                     links.read_rate(item["to"]["S"]),
                                     links.read_links(user_id), attempts=3)
    if user is None:
        return _only(take)
    # Who asked is shown only to an owner the address is proven to be: an
    # address held unverified may be anyone's, and the person asking at it
    # is most likely its real owner.
    origin = _origin(item) if user.email_verified else NOWHERE
    tx = Transaction()
    tx.add(take, stores.logins().unchanged(_owner(user)))
    if not dynamo.number(item, "tries"):  # an item put back was recorded the first time
        tx.add(stores.events().record(user.id, new_event(now, "password_reset_requested",
                                                         "unknown", origin)))
    if not (user.email_verified and allows(rate.sent if rate else [], now)):
        return _committed(tx, take, None)
    seconds = config.link_seconds("reset")
    link, hashed = new_link(user.id)
    tx.add(stores.users().as_read(user), links.issue(user.id, "reset", hashed, now + seconds),
           links.count_send(user.email, rate, now))
    undo = [links.restore(user.id, "reset", hashed, before or NO_LINKS),
            links.uncount(user.email, rate, now)]
    return _committed(tx, take, Decided(messages.reset_link(
        user.email, user.username, f"{config.public_url()}#reset={link}", seconds), user.id, undo))


def _verify(item, now):
    """A verification link to the account's address, or to the new address
    it asked for."""
    take, to = stores.outbox().take(item["id"]["S"]), item["to"]["S"]
    links, user_id = stores.links(), item["user_id"]["S"]
    user, rate, before = dynamo.read(stores.users().read_user(user_id), links.read_rate(to),
                                     links.read_links(user_id), attempts=3)
    own = user is not None and to == user.email  # else a new address (or its case changed)
    asked_at = dynamo.text(item, "from")
    moved = user is not None and asked_at is not None and asked_at != user.email
    if user is None or moved or (own and user.email_verified) or not allows(
            rate.sent if rate else [], now):
        # Gone, or moved since it asked (a link to the address it left
        # would move it back), or nothing to prove, or over the limit.
        return _only(take)
    seconds = config.link_seconds("verify")
    link, hashed = new_link(user.id)
    event = new_event(now, "email_verification_sent", "self", _origin(item))
    tx = Transaction()
    tx.add(take, stores.logins().unchanged(_owner(user)), stores.users().as_read(user),
           links.issue(user.id, "verify", hashed, now + seconds, to=to),
           links.count_send(to, rate, now), stores.events().record(user.id, event))
    undo = [links.restore(user.id, "verify", hashed, before or NO_LINKS),
            links.uncount(to, rate, now), stores.events().delete(user.id, event.id)]
    return _committed(tx, take, Decided(messages.verify_link(
        to, user.username, f"{config.public_url()}#verify={link}", seconds), user.id, undo))


def _notice(item, now):
    """A notice of a change, to the address in force (never limited)."""
    take = stores.outbox().take(item["id"]["S"])
    user = stores.users().get_user(item["user_id"]["S"])
    to = dynamo.text(item, "to")
    if to is None:
        # The account's own address, when it is proven to be the owner's:
        # an address nobody verified could be anyone's, and notices are
        # not limited.
        to = user.email if user is not None and user.email_verified else None
    if to is None or user is None:
        return _only(take)
    return _committed(_one(take), take, Decided(
        messages.notice(to, user.username, item["notice"]["S"]), user.id, []))


_DECIDE = {"reset": _reset, "verify": _verify, "notice": _notice}


def _one(write):
    tx = Transaction()
    tx.add(write)
    return tx


def _only(take):
    """Take the item and send nothing."""
    _one(take).commit()
    return None


def _committed(tx, take, decided):
    """Commit ``tx``; when the account's address changed meanwhile, decide
    again; when only the account changed meanwhile (it is being deleted),
    take the item and send nothing."""
    try:
        tx.commit()
    except StaleWrite as exc:
        if exc.failed & {"outbox", "rate", "profile"}:
            raise
        return _only(take)
    return decided


def _send(message):
    """Hand ``message`` to SES; NotSent when SES does not take it."""
    try:
        aws.sesv2().send_email(
            FromEmailAddress=config.email_from(),
            Destination={"ToAddresses": [_ascii_domain(message.to)]},
            Content={"Simple": {"Subject": {"Data": message.subject, "Charset": "UTF-8"},
                                "Body": {"Text": {"Data": message.text, "Charset": "UTF-8"}}}})
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        raise NotSent(code, code in _PASSING or status >= 500) from None
    except BotoCoreError as exc:
        # A timeout or a refused connection, after botocore's own attempts.
        raise NotSent(type(exc).__name__, passing=True) from None


def _undo(writes):
    """Undo what a message's transaction did (best effort: a write that
    lost a race means something newer stands, and stays)."""
    if not writes:
        return
    tx = Transaction()
    tx.add(*writes)
    try:
        tx.commit()
    except (StaleWrite, ServiceUnavailable) as exc:
        audit.event("email_undo_failed", level=logging.WARNING, type=type(exc).__name__)


def _ascii_domain(address):
    """SES takes an internationalised domain in its xn-- form."""
    local, _, domain = address.rpartition("@")
    try:
        return local + "@" + domain.encode("idna").decode("ascii")
    except UnicodeError:
        return address
