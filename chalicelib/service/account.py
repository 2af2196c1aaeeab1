"""A user's own account: signup, the profile, a password change, the
security log, and the account's deletion.

A password change (:func:`change_password`):

1. check the current password (login.check_password: counted, 403 when
   wrong, 429 while locked);
2. hash the new one;
3. fence: hold new logins off (LoginStore.fence), so that the sessions
   listed next are all the sessions there are, however many logins race;
4. one transaction: the new hash (which takes the fence down), every other
   token deleted, the attempts cleared, the change recorded (the re-read
   after a lost race is part of this step); on an outage, take the fence
   down and release the check's reservation.

An account's deletion by its owner (:func:`delete`):

1. check the password, as above;
2. mark the login as being deleted, which stops new logins and new events;
3. erase: the user's items, its tokens and its log (:func:`erase`, which
   an operator's deletion shares).
"""
import secrets

from chalicelib import audit, clock, cursor, passwords, stores
from chalicelib.errors import (EmailTaken, ServiceUnavailable, UsernameTaken, UserNotFound,
                               WrongPassword)
from chalicelib.event_store import new_event
from chalicelib.identity import NOWHERE
from chalicelib.ids import new_user_id
from chalicelib.service.login import check_password, rereads
from chalicelib.stores import Contended, StaleWrite, Transaction, after_lost_race
from chalicelib.token_store import live_count
from chalicelib.user_store import User

# A password change that keeps meeting another change of the same account
# (the account's own logins cannot make it lose: see the fence).
_CHANGE_TRIES = 3


def signup(username, email, password, roles=(), origin=NOWHERE):
    """A new user; the username and the email must be free (any case). A
    verification link goes to the address (the mailer sends it)."""
    user = User(id=new_user_id(), username=username, email=email,
                created_at=clock.iso(clock.now()), roles=list(roles))
    tx = Transaction()
    tx.add(*stores.users().create(user),
           stores.logins().create(user, passwords.hash_password(password)),
           stores.outbox().verification(user.id, email, origin, email))
    try:
        tx.commit()
    except StaleWrite as exc:
        if "username" in exc.failed:
            raise UsernameTaken() from None
        if "email" in exc.failed:
            raise EmailTaken() from None
        raise
    return user


def me(identity):
    user = stores.users().get_user(identity.user_id)
    if user is None:
        raise UserNotFound()
    return user


def list_events(user_id, page):
    """A page (cursor.Page) of ``user_id``'s security log, newest first."""
    found, more = stores.events().page(user_id, clock.now(), page.limit, page.before)
    return {
        "events": [{"id": e.id, "type": e.type, "created_at": clock.iso(e.created_at),
                    "ip": e.ip, "device": e.device, "by": e.by, "token_id": e.token_id,
                    "method": e.method}
                   for e in found],
        "next_cursor": cursor.issue(page.scope, found[-1].id) if more else None,
    }


def change_password(identity, current, new, origin=NOWHERE):
    """Set a new password and revoke every other token (the steps above);
    a notice goes to the account's address."""
    check = check_password(identity, current, "password_change", origin)
    new_hash = passwords.hash_password(new)
    with check.released_on_outage():
        event = new_event(clock.now(), "password_changed", "self", origin, identity.token_id)
        revoked = replace_password(
            check.login, check.name, new_hash, event, WrongPassword, keep=identity.token_id,
            also=[stores.outbox().notice(identity.user_id, "password_changed", origin),
                  stores.links().kill(identity.user_id)], settled=check.succeeded())
    check.uncount()
    audit.event("password_changed", user_id=identity.user_id, revoked=revoked)
    return revoked


def replace_password(login, name, new_hash, event, error, keep=None, also=(), refusals=None,
                     checked=True, settled=None):
    """Fence, then the change's one transaction; the live tokens revoked.

    While the fence stands no login can commit, so the tokens listed after
    it went up are every session opened with the old password; the write
    is conditional on the fence still being this change's. The same
    transaction settles the failed attempts of ``name`` (``settled``, a
    password check's writes; by default the count is cleared, as a reset
    clears it), records ``event`` and makes the writes ``also`` (a notice,
    a link spent). Every token but ``keep`` goes. ``error`` is raised
    when the password changed, or a deletion began, since ``login`` was
    read, when the old password was ``checked`` (a reset checked none: it
    reads the login again and goes on); ``refusals`` maps the label of a
    write of ``also`` to the error its failed condition means.
    """
    logins, sessions, log = stores.logins(), stores.tokens(), stores.events()
    fence_id = secrets.token_hex(8)
    try:
        for login in rereads(login, _CHANGE_TRIES, error, any_password=not checked):
            if not _fenced(logins, login, fence_id):
                if checked:
                    raise error()  # the password changed, or a deletion began, meanwhile
                continue
            others = [k for k in sessions.all_keys(login.user_id) if k[0] != keep]
            tx = Transaction()
            tx.add(logins.set_password(login, new_hash, fence_id),
                   *(settled if settled is not None else [logins.forget_attempts(name)]),
                   log.record(login.user_id, event), *also)
            # The oldest go first, outside the transaction, if they do not fit in it.
            tx.add_spillable(*(sessions.delete(login.user_id, t) for t, _ in others))
            try:
                tx.commit()
            except StaleWrite as exc:
                refused = [label for label in exc.failed if label in (refusals or {})]
                if refused:
                    logins.unfence(login, fence_id)
                    raise refusals[refused[0]]() from None
                continue
            except Contended:
                continue
            return live_count(others, clock.now())
    except ServiceUnavailable:
        # Wherever the outage met the change once its fence may be up (the
        # fence's own write answered late, the listing, the commit, every
        # race lost), the fence comes down: otherwise every login of the
        # account would be a 503 until it expired. Best effort: it expires.
        logins.unfence(login, fence_id)
        raise


def _fenced(logins, login, fence_id):
    """Put the change's fence up; a write that met a running transaction
    (a login committing) is tried again."""
    for attempt in range(_CHANGE_TRIES):
        try:
            return logins.fence(login, clock.now(), fence_id)
        except Contended:
            after_lost_race(attempt)
    raise ServiceUnavailable(operation="fence", code="TransactionConflictException",
                             attempts=_CHANGE_TRIES)


def delete(identity, password, origin=NOWHERE):
    """The user's own deletion, with its password (the steps above)."""
    check = check_password(identity, password, "account_deletion", origin)
    with check.released_on_outage():
        if not begin_deletion(check.login):
            raise WrongPassword()  # the password changed meanwhile
        return erase(check.login, check.name, identity.token_id, "self")


def begin_deletion(login):
    """Mark the login as being deleted, which stops new logins; False when
    its password changed since it was read."""
    return login.deleting or stores.logins().mark_deleting(login, clock.now())


def erase(login, name, keep, by):
    """Remove the user, its uniqueness guards, its second factors, every
    token and its log.

    The user's items and its remaining tokens go in one transaction, so no
    failure can leave a user without its tokens' revocation or tokens
    without their user. The presented token ``keep`` is among the last to
    go: after a failure half-way it still works, and the client's retry
    finishes. The log is listed after the login was marked, when no event
    can join it any more (see LoginStore.unchanged); what does not fit in
    the transaction goes first, the events before the tokens, and a deletion
    run again (the owner's retry, or ``manage.py delete-user``) lists what
    is left. ``name`` is the login's, folded and keyed: its attempts go too.
    """
    users, sessions, log = stores.users(), stores.tokens(), stores.events()
    user = users.get_user(login.user_id)
    keys = sessions.all_keys(login.user_id)
    logged = log.all_ids(login.user_id)
    tx = Transaction()
    tx.add(*stores.logins().delete(login, name),
           *users.delete(login.user_id, user.email if user else None),
           *stores.links().delete(login.user_id, user.email if user else None),
           stores.factors().delete(login.user_id))
    tx.add(*(sessions.delete(login.user_id, t) for t, _ in keys if t == keep))
    # What does not fit goes first: the oldest events, then the oldest tokens.
    tx.add_spillable(*(log.delete(login.user_id, e) for e in logged),
                     *(sessions.delete(login.user_id, t) for t, _ in keys if t != keep))
    try:
        tx.commit()
    except StaleWrite:
        raise UserNotFound() from None  # another deletion finished first
    revoked = live_count(keys, clock.now())
    audit.event("account_deleted", user_id=login.user_id, revoked=revoked, by=by)
    return revoked

