"""What the service does, in plain functions of plain values.

Views parse and shape; these functions decide. They raise the errors of
errors.py, never see an HTTP request, and reach the data only through the
stores and their unit of work (stores.py), in the domain's terms.
"""
import logging

from chalicelib import audit, backoff, clock, config, cursor, jwtcodec, passwords
from chalicelib.errors import (EmailTaken, Forbidden, InvalidCredentials, ServiceUnavailable,
                               TokenNotFound, TooManyAttempts, UsernameTaken, UserNotFound,
                               WrongPassword)
from chalicelib.event_store import new_event
from chalicelib.identity import NOWHERE, Origin
from chalicelib.rules import ADMIN
from chalicelib.stores import Contended, StaleWrite, Transaction, events, tokens, users
from chalicelib.token_store import TOKEN_ID, Session, new_token_id
from chalicelib.user_store import User, attempts_of, new_user_id

# Each lost race means another attempt was counted, and the THRESHOLD-th
# sets the lock: more tries are needed only while successes keep resetting
# the count under a flood of attempts at one name.
_RESERVE_TRIES = backoff.THRESHOLD + 3
# Each lost race means another login of the user committed, and at most
# THRESHOLD passwords of a name are checked at once before a success resets
# the count: as many tries as the reservation's cover a burst.
_OPEN_TRIES = _RESERVE_TRIES


def signup(username, email, password, roles=()):
    """A new user; the username and the email must be free (any case)."""
    user = User(id=new_user_id(), username=username, email=email,
                created_at=clock.iso(clock.now()), roles=list(roles))
    tx = Transaction()
    tx.add(*users().create(user, passwords.hash_password(password)))
    try:
        tx.commit()
    except StaleWrite as exc:
        if "username" in exc.failed:
            raise UsernameTaken() from None
        if "email" in exc.failed:
            raise EmailTaken() from None
        raise
    return user


def _reserve(store, name, login, attempts, now, origin, token_id=None, **context):
    """Count this attempt at the password of ``name`` before it is checked.

    A compare-and-swap on the attempts record as read: of any number of
    attempts that read the same record, one wins and the others decide again
    with the record it wrote, so at most ``backoff.THRESHOLD`` of them reach
    bcrypt before the lock. While locked: 429, with no write and no bcrypt.

    When ``name`` is a user's, the same transaction records the failed login
    in its log (and the lock, when this count sets one): a failure writes
    nothing after bcrypt, so this is the write it makes. A check that then
    succeeds deletes those events in its own write. An unknown name goes
    through a transaction too, so that both take the same time.
    Returns the record that counts this attempt and the ids of its events.
    """
    log, owner = events(), login
    for _ in range(_RESERVE_TRIES):
        wait = backoff.retry_after(attempts, now)
        if wait:
            break
        counted = backoff.after_failure(attempts, now)
        failed = _failure_events(owner, counted, now, origin, token_id)
        tx = Transaction()
        tx.add(store.swap_attempts(name, attempts, counted))
        if failed:
            tx.add(store.unchanged(owner), *(log.record(owner.user_id, e) for e in failed))
        try:
            tx.commit()
            return counted, [e.id for e in failed]
        except StaleWrite as exc:
            if "login" in exc.failed:
                owner = None  # its deletion has begun: its log takes nothing more
            if "attempts" in exc.failed:
                attempts = attempts_of(exc)
        except Contended:
            # A login's transaction is resetting this record right now.
            attempts = store.get_attempts(name)
    else:
        wait = 1  # lost every race: a flood of attempts at this one name
    audit.event("login_backoff", **audit.attempt(name, login), retry_after=wait, **context)
    raise TooManyAttempts(wait)


def _failure_events(login, counted, now, origin, token_id):
    """The events of a failed attempt at ``login``'s password: none for a
    name that is nobody's (no one to show them to) or whose deletion has
    begun."""
    if login is None or login.deleting:
        return []
    failed = [new_event(now, "login_failed", "self", origin, token_id)]
    if counted.locked_until:
        failed.append(new_event(now, "locked_out", "system", origin, token_id, after=1))
    return failed


def _verified(identity, password, via, origin):
    """The caller's login when ``password`` is right, and the ids of the
    events its reservation recorded; WrongPassword otherwise.

    A stolen token must not buy unlimited guesses at the password: each
    check counts as a failed login of the user, in the same backoff as
    /login, until the caller's change commits and resets the count.
    """
    store = users()
    login, attempts = store.get_login_and_attempts(identity.username)
    counted, failed = _reserve(store, identity.username, login, attempts, clock.now(), origin,
                               identity.token_id, via=via)
    if not passwords.verify(password, login.password_hash if login else None):
        audit.event("login_failed", **audit.attempt(identity.username, login),
                    failures=counted.failures, via=via)
        raise WrongPassword()
    return login, failed


def login(username, password, description, ip):
    """A token for ``username`` when ``password`` is right.

    Exactly one bcrypt check runs for a wrong password, an unknown user and
    a malformed name alike, so timing says nothing about which it was.
    """
    now = clock.now()
    store = users()
    origin = Origin(ip, description)
    login, attempts = store.get_login_and_attempts(username)
    counted, failed = _reserve(store, username, login, attempts, now, origin)
    ok = passwords.verify(password, login.password_hash if login else None)
    if not ok or login.deleting:
        audit.event("login_failed", **audit.attempt(username, login), failures=counted.failures)
        raise InvalidCredentials()
    # A hash of another cost (made before a cost change, or by an operator
    # at another setting) is replaced, inside the write below: afterwards a
    # wrong password costs this user what it costs an unknown name.
    rehashed = None
    if passwords.outdated(login.password_hash):
        rehashed = passwords.hash_password(password)
    issued = int(now)
    # The JWT carries the cap; the record the expiry without further use,
    # which each use moves forward (see authorizer.py), never past the cap.
    cap = issued + config.token_max_lifetime_seconds()
    session = Session(
        user_id=login.user_id, token_id=new_token_id(now),
        expires_at=min(issued + config.token_lifetime_seconds(), cap),
        username=login.username, description=description, ip=ip,
    )
    try:
        evicted = _open(store, login, session, rehashed, username, now, origin, failed)
    except ServiceUnavailable:
        _release(store, username, login, failed)
        raise
    audit.event("login", user_id=login.user_id, token_id=session.token_id, evicted=len(evicted))
    token = jwtcodec.encode(login.user_id, session.token_id, issued, cap)
    return {"token": token, "token_type": "Bearer", "token_id": session.token_id,
            "expires_at": clock.iso(session.expires_at),
            "expires_in": session.expires_at - issued}


def _open(store, login, session, rehashed, username, now, origin, failed):
    """Write ``session``, evicting the oldest tokens over the cap; returns
    the evicted ones.

    The transaction is conditional on the login counter as read, so two
    logins that listed the same tokens cannot both add one beyond the cap:
    the loser reads the login again and, unless the password changed or a
    deletion began, lists the tokens again, the winner's included. The
    password is not checked again: it was right for this very hash.
    The same transaction records the login and each eviction, and deletes
    the events ``failed`` that the reservation recorded.
    """
    sessions, log = tokens(), events()
    for _ in range(_OPEN_TRIES):
        tx = Transaction()
        # A success resets the count, this attempt's reservation included.
        tx.add(sessions.put(session), store.count_login(login, rehashed),
               store.forget_attempts(username),
               log.record(login.user_id, new_event(now, "login", "self", origin,
                                                   session.token_id)),
               *(log.delete(login.user_id, e) for e in failed))
        # Each eviction is two writes: the token's delete and its event.
        evicted = _over_cap(sessions.all_keys(login.user_id), now, tx.room // 2)
        for n, token_id in enumerate(evicted, 1):
            tx.add(sessions.delete(login.user_id, token_id),
                   log.record(login.user_id, new_event(now, "token_evicted", "system", origin,
                                                       token_id, after=n)))
        try:
            tx.commit()
            return evicted
        except (StaleWrite, Contended):  # a race lost, or still being run
            login = _still_valid(store, login, InvalidCredentials)
    raise ServiceUnavailable()


def _still_valid(store, login, error):
    """The login read again after a lost race: the same password, no deletion
    begun, or ``error`` (the password checked is no longer the one stored)."""
    fresh = store.get_login(login.username)
    if fresh is None or fresh.password_hash != login.password_hash or fresh.deleting:
        raise error() from None
    return fresh


def _release(store, username, login, failed):
    """Undo the reservation of a right password whose login then failed.

    The password was right, so the outage must not count as a failed
    login (five of them would lock the user out); the success it would have
    been resets the count, so the record goes, with the events ``failed``
    that the reservation recorded. Best effort: when this write fails too,
    the count and the events stay, and the caller's 503 stands.
    """
    tx = Transaction()
    tx.add(store.forget_attempts(username), *(events().delete(login.user_id, e) for e in failed))
    try:
        tx.commit()
    except ServiceUnavailable:
        audit.event("login_release_failed", level=logging.WARNING,
                    **audit.attempt(username, login))


def _over_cap(keys, now, room):
    """The oldest live tokens to drop so that a new one fits under the cap.

    Eviction rather than refusal: a user who lost track of old devices can
    still log in, and the sessions dropped are the stalest ones. They go
    in the login's own transaction, so at most ``room`` of them: a cap
    lowered by far is met over several logins.
    """
    live = [token_id for token_id, expires_at in keys if expires_at > now]
    excess = len(live) + 1 - config.max_tokens_per_user()
    return live[:min(max(excess, 0), room)]


def me(identity):
    user = users().get_user(identity.user_id)
    if user is None:
        raise UserNotFound()
    return user


def logout(identity, origin=NOWHERE):
    revoked = int(_revoke_one(identity, identity.token_id, "logout", origin))
    audit.event("logout", user_id=identity.user_id, token_id=identity.token_id, revoked=revoked)
    return revoked


def revoke(identity, token_id, origin=NOWHERE):
    if not TOKEN_ID.fullmatch(token_id) or not _revoke_one(identity, token_id, "token_revoked",
                                                           origin):
        raise TokenNotFound()
    audit.event("revoke", user_id=identity.user_id, token_id=token_id, by=identity.user_id)
    return 1


def _revoke_one(identity, token_id, kind, origin):
    """Revoke a live token of the caller and record it, in one small
    transaction; whether the token was live."""
    now, sessions = clock.now(), tokens()
    tx = Transaction()
    tx.add(sessions.revoke_live(identity.user_id, token_id, now), users().unchanged(identity),
           events().record(identity.user_id, new_event(now, kind, "self", origin, token_id)))
    try:
        tx.commit()
        return True
    except StaleWrite as exc:
        if "session" in exc.failed:
            return False  # gone or expired already: nothing to revoke, nothing to record
    # The account's deletion has begun, which deletes its log: the token
    # goes unrecorded, as it would with the rest of the account.
    return sessions.revoke(identity.user_id, token_id, now)


def revoke_all(owner, keep=None, admin=None, origin=NOWHERE):
    """Delete every token of ``owner`` (an Identity or a Login) but ``keep``,
    and record it, by the user itself or by the admin whose user id is
    ``admin``; the count of live ones."""
    store, now = tokens(), clock.now()
    doomed = [(t, exp) for t, exp in store.all_keys(owner.user_id) if t != keep]
    if doomed:
        tx = Transaction()
        tx.add(users().unchanged(owner),
               events().record(owner.user_id, new_event(now, "tokens_revoked",
                                                        "admin" if admin else "self", origin)))
        # Expired records first: when they do not all fit, the ones that go
        # before the transaction (and stay gone if it fails) are dead already.
        doomed.sort(key=lambda key: (key[1] > now, key[0]))
        tx.add_spillable(*(store.delete(owner.user_id, t) for t, _ in doomed))
        try:
            tx.commit()
        except StaleWrite:
            # The account's deletion has begun, which deletes its log.
            store.delete_many(owner.user_id, [t for t, _ in doomed])
    revoked = _live(doomed, now)
    audit.event("revoke_all", user_id=owner.user_id, kept=keep, revoked=revoked,
                by=admin or owner.user_id)
    return revoked


def list_tokens(caller, user_id, page):
    """A page (cursor.Page) of ``user_id``'s live tokens, newest first.

    ``current`` marks the token making the request, so an admin sees it in
    a listing of its own tokens and never in another user's.
    """
    sessions, more = tokens().page(user_id, clock.now(), page.limit, page.before)
    mine = caller.user_id == user_id
    return {
        "tokens": [_token_view(s, mine and s.token_id == caller.token_id) for s in sessions],
        "next_cursor": cursor.issue(page.scope, sessions[-1].token_id) if more else None,
    }


def _token_view(session, current):
    return {
        "id": session.token_id, "description": session.description, "ip": session.ip,
        "created_at": clock.iso(session.created_at),
        "expires_at": clock.iso(session.expires_at),
        "last_used_at": clock.iso(session.last_used_at) if session.last_used_at else None,
        "current": current,
    }


def _live(keys, now):
    return sum(1 for _, expires_at in keys if expires_at > now)


def list_events(user_id, page):
    """A page (cursor.Page) of ``user_id``'s security log, newest first."""
    found, more = events().page(user_id, clock.now(), page.limit, page.before)
    return {
        "events": [{"id": e.id, "type": e.type, "created_at": clock.iso(e.created_at),
                    "ip": e.ip, "device": e.device, "by": e.by, "token_id": e.token_id}
                   for e in found],
        "next_cursor": cursor.issue(page.scope, found[-1].id) if more else None,
    }


def change_password(identity, current, new, origin=NOWHERE):
    """Set a new password and revoke every other token, in one transaction.

    The transaction is conditional on the login counter, so a login that
    lands between the listing of the tokens and the write makes it fail and
    start over with that login's token included: no session opened with the
    old password survives the change. The same transaction resets the
    failed attempts that the check of ``current`` counted, records the
    change, and deletes the events that the check recorded as a failure.
    """
    login, failed = _verified(identity, current, "password_change", origin)
    new_hash = passwords.hash_password(new)
    try:
        return _change_password(identity, login, new_hash, failed, origin)
    except ServiceUnavailable:
        _release(users(), identity.username, login, failed)  # the password was right
        raise


def _change_password(identity, login, new_hash, failed, origin):
    store, sessions, log = users(), tokens(), events()
    for _ in range(3):
        others = [k for k in sessions.all_keys(identity.user_id) if k[0] != identity.token_id]
        tx = Transaction()
        tx.add(store.set_password(login, new_hash), store.forget_attempts(identity.username),
               log.record(identity.user_id, new_event(clock.now(), "password_changed", "self",
                                                      origin, identity.token_id)),
               *(log.delete(identity.user_id, e) for e in failed))
        # The oldest go first, outside the transaction, if they do not fit in it.
        tx.add_spillable(*(sessions.delete(identity.user_id, t) for t, _ in others))
        try:
            tx.commit()
            revoked = _live(others, clock.now())
            audit.event("password_changed", user_id=identity.user_id, revoked=revoked)
            return revoked
        except (StaleWrite, Contended):  # a race lost, or still being run
            login = _still_valid(store, login, WrongPassword)
    raise ServiceUnavailable()


def delete_account(identity, password, origin=NOWHERE):
    """The user's own deletion, with its password; see :func:`_delete`."""
    login, failed = _verified(identity, password, "account_deletion", origin)
    try:
        if not _begin_deletion(login):
            raise WrongPassword()  # the password changed meanwhile
        return _delete(login, identity.token_id, "self")
    except ServiceUnavailable:
        _release(users(), identity.username, login, failed)  # the password was right
        raise


def delete_user(username):
    """An operator's deletion: no password, and it also finishes a deletion
    that failed half-way (whose owner cannot log in to retry it)."""
    for _ in range(3):
        login = find_user(username)
        if _begin_deletion(login):
            return _delete(login, None, "operator")
        # The password changed between the read and the mark: read again.
    raise ServiceUnavailable()


def _begin_deletion(login):
    """Mark the login as being deleted, which stops new logins; False when
    its password changed since it was read."""
    return login.deleting or users().mark_deleting(login, clock.now())


def _delete(login, keep, by):
    """Remove the user, its uniqueness guards, every token and its log.

    The user's items and its remaining tokens go in one transaction, so no
    failure can leave a user without its tokens' revocation or tokens
    without their user. The presented token ``keep`` is among the last to
    go: after a failure half-way it still works, and the client's retry
    finishes. The log is listed after the login was marked, when no event
    can join it any more (see UserStore.unchanged); what does not fit in the
    transaction goes first, the events before the tokens, and a deletion
    run again (the owner's retry, or ``manage.py delete-user``) lists what
    is left.
    """
    store, sessions, log = users(), tokens(), events()
    user = store.get_user(login.user_id)
    keys = sessions.all_keys(login.user_id)
    logged = log.all_ids(login.user_id)
    tx = Transaction()
    tx.add(*store.delete_all(login, user.email if user else None))
    tx.add(*(sessions.delete(login.user_id, t) for t, _ in keys if t == keep))
    # What does not fit goes first: the oldest events, then the oldest tokens.
    tx.add_spillable(*(log.delete(login.user_id, e) for e in logged),
                     *(sessions.delete(login.user_id, t) for t, _ in keys if t != keep))
    try:
        tx.commit()
    except StaleWrite:
        raise UserNotFound() from None  # another deletion finished first
    revoked = _live(keys, clock.now())
    audit.event("account_deleted", user_id=login.user_id, revoked=revoked, by=by)
    return revoked


def find_user(username):
    """The login record of ``username`` (any case)."""
    login = users().get_login(username)
    if login is None:
        raise UserNotFound()
    return login


def admin_target(caller, username):
    """The login of ``username``, for an admin route called by ``caller``.

    The caller's current roles decide, not the ones it had at login: they
    are read with the target, in one strongly consistent read. A non-admin
    is refused before the target's existence counts, so the answer tells
    it nothing about which users exist.
    """
    roles, target = users().get_roles_and_login(caller.user_id, username)
    if roles is None or ADMIN not in roles:
        raise Forbidden()
    if target is None:
        raise UserNotFound()
    return target


def grant_admin(username):
    """Give ``username`` the admin role; its other roles are kept. Returns
    whether anything changed."""
    return _set_admin(username, True)


def revoke_admin(username):
    """Take the admin role from ``username``; its other roles are kept.
    Returns whether anything changed."""
    return _set_admin(username, False)


def _set_admin(username, admin):
    login = find_user(username)
    if login.deleting:
        raise UserNotFound("That user's deletion is under way.")
    user = users().get_user(login.user_id)
    if user is None:
        raise UserNotFound()
    if (ADMIN in user.roles) == admin:
        return False
    roles = user.roles + [ADMIN] if admin else [r for r in user.roles if r != ADMIN]
    tx = Transaction()
    tx.add(*users().set_roles(login, roles), events().record(login.user_id, new_event(
        clock.now(), "role_granted" if admin else "role_revoked", "operator", NOWHERE)))
    try:
        tx.commit()
    except StaleWrite:
        raise UserNotFound("That user was deleted, or its deletion began, meanwhile.") from None
    audit.event("role_granted" if admin else "role_revoked", user_id=login.user_id,
                role=ADMIN, by="operator")
    return True
