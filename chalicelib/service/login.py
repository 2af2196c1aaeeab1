"""Logging in with a password, and every check of a password.

A login, top-down (:func:`with_password`):

1. fold and key the name as typed (login_store.name), once;
2. read its login and its failed attempts, in one call;
3. reserve: count this attempt before the password is checked, so that a
   burst of guesses cannot outrun the backoff (429 while locked);
4. check the password with bcrypt, exactly once whatever the name, so
   timing tells no account apart (401 when it is wrong);
5. open the session: one transaction writes the token, counts the login,
   clears the attempts and records the events (the re-read after a lost
   race is part of this step); on an outage, release the reservation;
   for a user with a second factor, instead, answer mfa_required with a
   token for the second step (service/factor_logins.py finishes the login);
6. sign the JWT.

The password routes (account.py) run steps 1 to 4 through
:func:`check_password`: a stolen token must not buy unlimited guesses at the
password, so each check counts in the same backoff as a login.
"""
import contextlib
import logging
import secrets
from collections import namedtuple

from chalicelib import audit, backoff, clock, config, jwtcodec, login_store, passwords, stores
from chalicelib.errors import (InvalidCredentials, MfaRequired, ServiceUnavailable,
                               TooManyAttempts, WrongPassword)
from chalicelib.event_store import new_event
from chalicelib.identity import Origin
from chalicelib.ids import new_timed_id
from chalicelib.login_store import attempts_of
from chalicelib.stores import Contended, StaleWrite, Transaction, after_lost_race
from chalicelib.token_store import Session

# A write that lost a race (a condition failed, or a transaction was still
# running on its item): read again and decide again.
LOST_RACE = (StaleWrite, Contended)
# Each lost race means another attempt was counted, and the THRESHOLD-th
# sets the lock: more tries are needed only while successes keep resetting
# the count under a flood of attempts at one name.
_RESERVE_TRIES = backoff.THRESHOLD + 3
# Each lost race means another login of the user committed, and at most
# THRESHOLD passwords of a name are checked at once before a success resets
# the count: as many tries as the reservation's cover a burst.
_OPEN_TRIES = _RESERVE_TRIES
# The owner of a token checking its password (to change it, or to delete the
# account) races the account's logins for the attempts record: it keeps
# trying longer, so that a flood of logins by whoever else knows the
# password cannot make the owner's change lose (each try is a write and a
# short wait, never a password check).
_OWNER_RESERVE_TRIES = 2 * _RESERVE_TRIES


def with_password(username, password, description, ip):
    """A token for ``username`` when ``password`` is right (the steps above)."""
    now, origin = clock.now(), Origin(ip, description)
    name = login_store.name(username)
    login, attempts = stores.logins().get_login_and_attempts(name)
    check = _reserve(name, login, attempts, now, origin)
    if not passwords.verify(password, _hash(login)) or login.deleting:
        raise _failed(check, InvalidCredentials)
    if login.second_factor:
        raise _second_step(check, now, description)
    session = _new_session(login, now, description, ip)
    with check.released_on_outage():
        evicted = _open(check, session, password, now, origin)
    audit.event("login", user_id=login.user_id, token_id=session.token_id, evicted=len(evicted))
    return _signed(session, int(now))


def check_password(identity, password, via, origin):
    """The :class:`Check` of the caller's ``password`` when it is right;
    WrongPassword otherwise (steps 1 to 4, counted as a failed login until
    the caller's own write clears the attempts)."""
    name = login_store.name(identity.username)
    login, attempts = stores.logins().get_login_and_attempts(name)
    check = _reserve(name, login, attempts, clock.now(), origin, identity.token_id,
                     tries=_OWNER_RESERVE_TRIES, via=via)
    if not passwords.verify(password, _hash(login)):
        raise _failed(check, WrongPassword, via=via)
    return check


class Check(namedtuple("Check", "name login counted failed before", defaults=(None,))):
    """A password check in progress: the ``name`` it was made for, the
    ``login`` it read, the attempts record ``counted`` that counts it (and
    the one ``before`` it), and the ids of the events its reservation
    ``failed`` recorded (a failed login, a lock), which the write of a
    success deletes."""

    __slots__ = ()

    def succeeded(self):
        """The writes, for the transaction of what a right password did,
        that settle this check: the events its reservation recorded go, and
        the count is cleared, as a login's success clears it. Not for a user
        with a second factor, whose count only a completed login clears (a
        right password on a password route must not buy more guesses at
        the codes): there :meth:`uncount` takes back this check's own count
        once the transaction is done."""
        events = [stores.events().delete(self.login.user_id, e) for e in self.failed]
        if self.login.second_factor:
            return events
        return [stores.logins().forget_attempts(self.name), *events]

    def uncount(self):
        """For a user with a second factor, after the right password's own
        transaction: the count as it was before this check (best effort; an
        attempt counted since keeps the record as it is)."""
        if self.login.second_factor:
            stores.logins().take_back(self.name, self.counted, self.before)

    @contextlib.contextmanager
    def released_on_outage(self):
        """Release the reservation when the block meets an outage.

        The password was right, so the outage must not count as a failed
        login (five of them would lock the user out); the success it would
        have been resets the count, so the record goes, with the events the
        reservation recorded. Best effort: when this write fails too, the
        count and the events stay, and the caller's 503 stands.
        """
        try:
            yield
        except ServiceUnavailable:
            tx = Transaction()
            tx.add(stores.logins().forget_attempts(self.name),
                   *(stores.events().delete(self.login.user_id, e) for e in self.failed))
            try:
                tx.commit()
            except ServiceUnavailable:
                audit.event("login_release_failed", level=logging.WARNING,
                            **audit.attempt(self.name, self.login))
            raise


def rereads(login, tries, error, password=None, any_password=False):
    """``login``, then, after each lost race and a short random wait, the
    login read again, for a compare-and-swap loop: ``for login in
    rereads(...)`` whose body returns once its write commits and goes on
    when it lost a race.

    A login read again must hold the same password with no deletion begun,
    or ``error`` is raised (the password checked is no longer the one
    stored); when every try lost, ServiceUnavailable. Given the
    ``password`` checked, a new hash that still matches it (another login
    rehashed it at a new cost: see :func:`_rehashed`) is the same password;
    bcrypt runs again only when the hash changed under the race. With
    ``any_password`` (a reset, which never checked the old one), only a
    deletion is refused.
    """
    yield login
    store = stores.logins()
    for attempt in range(tries - 1):
        after_lost_race(attempt)
        fresh = store.reread(login)
        if fresh is None or fresh.deleting or (
                not any_password and fresh.password_hash != login.password_hash
                and not (password and passwords.verify(password, fresh.password_hash))):
            raise error() from None
        login = fresh
        yield login
    raise ServiceUnavailable(operation="compare_and_swap", code="lost_races", attempts=tries)


def _hash(login):
    # None: passwords.verify checks a dummy hash, so an unknown name costs
    # one bcrypt check too.
    return login.password_hash if login else None


def _failed(check, error, **context):
    audit.event("login_failed", **audit.attempt(check.name, check.login),
                failures=check.counted.failures, **context)
    return error()


def _reserve(name, login, attempts, now, origin, token_id=None, tries=_RESERVE_TRIES,
             failure="login_failed", **context):
    """Count this attempt at the password of ``name`` before it is checked.

    A compare-and-swap on the attempts record as read: of any number of
    attempts that read the same record, one wins and the others decide again
    with the record it wrote, so at most ``backoff.THRESHOLD`` of them reach
    bcrypt before the lock. While locked: 429, with no write and no bcrypt.

    When ``name`` is a user's, the same transaction records the failed login
    in its log (and the lock, when this count sets one): a failure writes
    nothing after bcrypt, so this is the write it makes. A check that then
    succeeds deletes those events in its own write. An unknown name goes
    through a transaction too, so that both take the same time. A second
    step's code records ``failure`` "mfa_failed" instead.
    """
    store, log, owner = stores.logins(), stores.events(), login
    for attempt in range(tries):
        if attempt:
            after_lost_race(attempt - 1)
        wait = backoff.retry_after(attempts, now)
        if wait:
            break
        counted = backoff.after_failure(attempts, now)
        failed = _failure_events(owner, counted, now, origin, token_id, failure)
        tx = Transaction()
        tx.add(store.swap_attempts(name, attempts, counted))
        if failed:
            tx.add(store.unchanged(owner), *(log.record(owner.user_id, e) for e in failed))
        try:
            tx.commit()
            return Check(name, login, counted, [e.id for e in failed], attempts)
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


def _failure_events(login, counted, now, origin, token_id, failure="login_failed"):
    """The events of a failed attempt at ``login``'s password: none for a
    name that is nobody's (no one to show them to) or whose deletion has
    begun. An attempt made with one of the user's tokens (``token_id``, on
    a password route) is the user's own; one at /login is anybody's."""
    if login is None or login.deleting:
        return []
    failed = [new_event(now, failure, "self" if token_id else "unknown", origin, token_id)]
    if counted.locked_until:
        failed.append(new_event(now, "locked_out", "system", origin, token_id, after=1))
    return failed


def _new_session(login, now, description, ip):
    # The record holds the expiry without further use, which each use moves
    # forward (see authorizer.py), never past the cap that the JWT carries.
    issued = int(now)
    return Session(user_id=login.user_id, token_id=new_timed_id(now),
                   expires_at=min(issued + config.token_lifetime_seconds(), _cap(issued)),
                   username=login.username, description=description, ip=ip)


def _cap(issued):
    return issued + config.token_max_lifetime_seconds()


def _rehashed(login, password):
    """The password hashed anew when its hash has another cost (made before
    a cost change, or by an operator at another setting), for the login's
    write: afterwards a wrong password costs this user what it costs an
    unknown name. None when the hash is current, or when no password was
    given (a passkey, a second step)."""
    if password is None or not passwords.outdated(login.password_hash):
        return None
    return passwords.hash_password(password)


def _second_step(check, now, description):
    """A right password of a user with a second factor: no session yet.

    The attempt stays counted (only a completed login clears the count, so
    the password cannot be used to reset the backoff that guards the
    codes); the failed login its reservation recorded goes, in the write of
    the mfa_token that carries the login on (its lock, if it set one,
    stays). Costs one read more than a login without a second factor: the
    factors, for the ways the second step may go.
    """
    factors, login = stores.factors(), check.login
    methods = factors.get(login.user_id).methods
    token = secrets.token_urlsafe(32)
    tx = Transaction()
    tx.add(factors.new_mfa_token(token, login, description, now),
           *(stores.events().delete(login.user_id, e) for e in check.failed[:1]))
    tx.commit()
    audit.event("mfa_required", user_id=login.user_id, methods=methods)
    return MfaRequired(token, methods)


def _open(check, session, password, now, origin, method="password", spent=()):
    """Write ``session``, evicting the oldest tokens over the cap; returns
    the evicted ones.

    The transaction is conditional on the login counter as read, so two
    logins that listed the same tokens cannot both add one beyond the cap:
    the loser reads the login again and, unless the password changed or a
    deletion began, lists the tokens again, the winner's included. The
    password is checked again only when the hash changed meanwhile (see
    :func:`rereads`): it was right for the hash read.
    The same transaction records the login (by ``method``) and each
    eviction, deletes the events that the reservation recorded, and makes
    the writes ``spent`` (a second factor's code, token or counter, each
    labelled ``second_factor``): when one of those fails, the StaleWrite
    goes to the caller, since reading the login again cannot help.
    """
    sessions, logins, log = stores.tokens(), stores.logins(), stores.events()
    user_id = session.user_id
    rehashed = _rehashed(check.login, password)
    for login in rereads(check.login, _OPEN_TRIES, InvalidCredentials, password):
        tx = Transaction()
        # A success resets the count, this attempt's reservation included;
        # a hash another login made current meanwhile is left as it is.
        tx.add(sessions.put(session),
               logins.count_login(login, now,
                                  rehashed if passwords.outdated(login.password_hash) else None),
               logins.forget_attempts(check.name),
               log.record(user_id, new_event(now, "login", "self", origin, session.token_id,
                                             method=method)),
               *(log.delete(user_id, e) for e in check.failed), *spent)
        # Each eviction is two writes: the token's delete and its event.
        evicted = _over_cap(sessions.all_keys(user_id), now, tx.room // 2)
        for n, token_id in enumerate(evicted, 1):
            tx.add(sessions.delete(user_id, token_id),
                   log.record(user_id, new_event(now, "token_evicted", "system", origin,
                                                 token_id, after=n)))
        try:
            tx.commit()
            return evicted
        except StaleWrite as exc:
            if "second_factor" in exc.failed:
                raise
        except Contended:
            continue


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


def _signed(session, issued):
    token = jwtcodec.encode(session.user_id, session.token_id, issued, _cap(issued))
    return {"token": token, "token_type": "Bearer", "token_id": session.token_id,
            "expires_at": clock.iso(session.expires_at),
            "expires_in": session.expires_at - issued}
