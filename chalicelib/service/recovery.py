"""Getting back in by email, and proving an address: the request side.

Every mail is asked for by one write to the outbox, which the mailer
(chalicelib/mailer.py) sends off the request path; these use cases never
call SES, and never tell, by answer, time or calls, whose an address is.

A forgotten password (:func:`forgot`): one write to the outbox, whatever
the address; the mailer finds the account, records the request in its
log, and sends a link only to a verified address within its limits.

A reset (:func:`reset`):

1. read the link's account and live links (one call; a link not of our
   shape is refused without a read);
2. refuse a link that is not the live reset link (400 invalid_link);
3. hash the new password;
4. as a password change does (account.replace_password): fence, list every
   token, one transaction: the new hash, the link spent, the failed attempts
   cleared, every token revoked, the reset recorded, a notice asked for.

A verification (:func:`verify`): the link's account and live links, then one
transaction: the address marked verified (or, for a new address, the
address changed and verified, its uniqueness guard moved, a notice asked
for to the old one), the link spent, the event recorded.

A change of address (:func:`change_email`): the password checked (counted
as a login), then one transaction: the new address free, the failed
attempts cleared, a verification link to the new address asked for. The
address changes only when that link is used.
"""
import dataclasses
import secrets

from chalicelib import audit, clock, login_store, passwords, stores
from chalicelib.errors import AlreadyVerified, EmailTaken, InvalidLink, UserNotFound
from chalicelib.event_store import new_event
from chalicelib.identity import NOWHERE, Identity
from chalicelib.link_store import NO_LINKS, parse
from chalicelib.service.account import replace_password
from chalicelib.service.login import check_password
from chalicelib.stores import StaleWrite, Transaction
from chalicelib.user_store import folded_email


def forgot(address, origin=NOWHERE):
    """Ask for a reset link to ``address``: the same one write whoever's it is."""
    outbox = stores.outbox()
    outbox.send(outbox.reset(address, origin))


def request_verification(identity, origin=NOWHERE):
    """Ask for a new verification link to the caller's own address."""
    user = stores.users().get_user(identity.user_id)
    if user is None:
        raise UserNotFound()
    if user.email_verified:
        raise AlreadyVerified()
    outbox = stores.outbox()
    outbox.send(outbox.verification(user.id, user.email, origin, user.email))


def change_email(identity, password, new_email, origin=NOWHERE):
    """Ask for a link that moves the caller to ``new_email`` (the steps above)."""
    check = check_password(identity, password, "email_change", origin)
    users, succeeded = stores.users(), check.succeeded()
    with check.released_on_outage():
        current = users.get_user(identity.user_id)
        if current is None:
            raise UserNotFound()
        tx = Transaction()
        tx.add(*succeeded, stores.outbox().verification(identity.user_id, new_email, origin,
                                                        current.email))
        if folded_email(new_email) != folded_email(current.email):
            # Free now; the link checks again when it is used.
            tx.add(users.email_free(new_email))
        try:
            tx.commit()
        except StaleWrite:
            # The address is another account's: the right password still
            # settles its check.
            if succeeded:
                cleared = Transaction()
                cleared.add(*succeeded)
                cleared.commit()
            check.uncount()
            raise EmailTaken() from None
        check.uncount()


def verify(link, origin=NOWHERE):
    """Spend a verification link; the user, its address verified."""
    user_id, secret = parse(link)
    now = clock.now()
    user, links = _read(user_id)
    if user is None or not links.matches("verify", secret, now):
        raise InvalidLink()
    users, log, store = stores.users(), stores.events(), stores.links()
    to = links.verify_to
    moving = to != user.email
    tx = Transaction()
    # A reset link went to the address in force: once the account moves
    # to another mailbox, the old one must hold no way back in.
    other_mailbox = folded_email(to) != folded_email(user.email)
    tx.add(store.spend(user.id, "verify", links.verify_hash, now,
                       killing=("reset",) if other_mailbox else ()),
           stores.logins().unchanged(Identity(user.id, None, user.username)))
    if not moving:
        tx.add(users.set_verified(user),
               log.record(user.id, new_event(now, "email_verified", "self", origin)))
        changed = False
    else:
        tx.add(*users.change_email(user, to),
               log.record(user.id, new_event(now, "email_changed", "self", origin)),
               log.record(user.id, new_event(now, "email_verified", "self", origin, after=1)))
        if user.email_verified:
            # The owner learns of the change at the address that was in force.
            tx.add(stores.outbox().notice(user.id, "email_changed", origin, address=user.email))
        changed = True
    try:
        tx.commit()
    except StaleWrite as exc:
        if exc.failed == {"email"}:
            raise EmailTaken() from None
        raise InvalidLink() from None
    audit.event("email_changed" if changed else "email_verified", user_id=user.id)
    return dataclasses.replace(user, email=to, email_verified=True)


def reset(link, new_password, origin=NOWHERE):
    """Spend a reset link: the new password set, every token revoked (the
    steps above); how many."""
    user_id, secret = parse(link)
    now = clock.now()
    user, links = _read(user_id)
    if user is None or not links.matches("reset", secret, now):
        raise InvalidLink()
    name = login_store.name(user.username)
    login = stores.logins().get_login(name)
    if login is None or login.deleting or login.user_id != user.id:
        raise InvalidLink()
    store, claim_id = stores.links(), secrets.token_hex(8)
    if not store.claim(user.id, "reset", links.reset_hash, now, claim_id):
        raise InvalidLink()  # used meanwhile, or being used by another request
    try:
        new_hash = passwords.hash_password(new_password)
        event = new_event(clock.now(), "password_reset", "self", origin)
        revoked = replace_password(
            login, name, new_hash, event, InvalidLink,
            # A change of address pending, asked for with the old password, dies.
            also=[store.spend(user.id, "reset", links.reset_hash, now, killing=("verify",),
                              claim_id=claim_id),
                  stores.outbox().notice(user.id, "password_reset", origin)],
            refusals={"link": InvalidLink}, checked=False,
            # A user with a second factor keeps its failed-login count: it
            # guards the codes too, and a reset is not a completed login.
            settled=[] if login.second_factor else None)
    except Exception:
        store.release(user.id, "reset", claim_id)
        raise
    audit.event("password_reset", user_id=user.id, revoked=revoked)
    return revoked


def _read(user_id):
    """The profile and the live links of ``user_id``, in one call."""
    user, links = stores.read(stores.users().read_user(user_id),
                              stores.links().read_links(user_id), attempts=3)
    return user, links or NO_LINKS
